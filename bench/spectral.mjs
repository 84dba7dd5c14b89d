// What the spectral ops cost: forward + backward of a power spectrogram, STFT (a Hann window from HannWindow)
// then mean(|X|²), through the importer in float32, for speech-like frame sizes. DFT and STFT are one matmul
// with a constant cos / sin basis (O(n²) per frame, engine/onnx/ops/spectral.ts); the last columns give the
// basis size and the float32 result's largest error relative to the largest value of a float64 run.
//
//   node bench/spectral.mjs [--seconds=1,5] [--nfft=400,512] [--hop=160] [--reps=10] [--backend=typescript|wasm-simd]
//
// Needs the compiled TypeScript (npx tsc -p tsconfig.json) and, for wasm, the kernels (npm run build:wasm).
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ROOT, flag, useBackendFlag } from './lib/harness.mjs';

const require = createRequire(import.meta.url);
const E = require(join(ROOT, 'build', 'engine', 'index.js'));
const { loadWasmBackendNode } = require(join(ROOT, 'build', 'engine', 'backend', 'wasm', 'node.js'));
const { buildModel } = require(join(ROOT, 'build', 'test', 'onnx_builder.js'));
const { which: backendName } = await useBackendFlag(E, loadWasmBackendNode);

const SECONDS = flag('seconds', '1,5').split(',').map(Number);
const NFFT = flag('nfft', '400,512').split(',').map(Number);
const REPS = Number(flag('reps', '10'));
const HOP = Number(flag('hop', '160'));
const RATE = 16000;
const FLOAT = 1;
const INT64 = 7;

function model(samples, nfft, hop) {
  return buildModel({
    opset: 17,
    nodes: [
      { op: 'HannWindow', inputs: ['n'], outputs: ['w'] },
      { op: 'STFT', inputs: ['x', 'hop', 'w'], outputs: ['X'] },
      { op: 'Mul', inputs: ['X', 'X'], outputs: ['X2'] },
      { op: 'ReduceMean', inputs: ['X2'], outputs: ['loss'], attrs: { keepdims: 0 } },
    ],
    inputs: [{ name: 'x', type: FLOAT, dims: [1, samples, 1] }],
    outputs: [{ name: 'loss', type: FLOAT, dims: [] }],
    initializers: [{ name: 'n', type: INT64, dims: [], values: [nfft] }, { name: 'hop', type: INT64, dims: [], values: [hop] }],
  });
}

function signal(samples) {
  const rng = new E.Rng(5);
  return Array.from({ length: samples }, (_, t) => Math.sin((2 * Math.PI * 440 * t) / RATE) + 0.1 * rng.normal());
}

function time(m, xs, samples) {
  let grad = null;
  const run = () => {
    const x = E.tensorFrom(xs, [1, samples, 1], 'float32', { requiresGrad: true });
    const r = m.run({ x });
    E.backward(r.loss);
    grad = x.grad.data;
    return r.loss.data[0];
  };
  run();
  const ms = [];
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    run();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return { median: ms[ms.length >> 1], grad };
}

console.log(`backend ${backendName}, ${RATE} Hz, hop ${HOP}, ${REPS} reps (median ms of forward + backward)\n`);
console.log('| audio | n_fft | hop | frames | forward + backward (ms) | basis (MB, float32) | max dL/dx error / max |dL/dx| vs float64 |');
console.log('|---|---|---|---|---|---|---|');
for (const s of SECONDS) {
  for (const nfft of NFFT) {
    const samples = Math.round(s * RATE);
    const hop = HOP;
    const bytes = model(samples, nfft, hop);
    const xs = signal(samples);
    const f32 = time(E.loadOnnx(bytes), xs, samples);
    // float64 reference of the same gradient (host kernels)
    const m64 = E.loadOnnx(bytes, { dtype: 'float64' });
    const x64 = E.tensorFrom(xs.map((v) => Math.fround(v)), [1, samples, 1], 'float64', { requiresGrad: true });
    E.withBackend(E.referenceBackend, () => E.backward(m64.run({ x: x64 }).loss));
    let err = 0;
    let max = 0;
    for (let i = 0; i < samples; i++) {
      err = Math.max(err, Math.abs(f32.grad[i] - x64.grad.data[i]));
      max = Math.max(max, Math.abs(x64.grad.data[i]));
    }
    const frames = 1 + Math.floor((samples - nfft) / hop);
    const basisMB = (nfft * (Math.floor(nfft / 2) + 1) * 2 * 4) / 2 ** 20;
    console.log(`| ${s} s | ${nfft} | ${hop} | ${frames} | ${f32.median.toFixed(1)} | ${basisMB.toFixed(2)} | ${(err / max).toExponential(1)} |`);
  }
}
