// What an ONNX Loop costs against the same recurrence unrolled into a flat graph: forward + backward of
// h <- tanh(h W + b) for T steps (every h stacked as the Loop's scan output), float32, one process.
//
//   node bench/control.mjs [--steps=16,128] [--hidden=64] [--batch=8] [--reps=20] [--backend=typescript|wasm-simd]
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

const STEPS = flag('steps', '16,128').split(',').map(Number);
const H = Number(flag('hidden', '64'));
const N = Number(flag('batch', '8'));
const REPS = Number(flag('reps', '20'));
const FLOAT = 1;
const INT64 = 7;
const BOOL = 9;

function values(n, seed) {
  const rng = new E.Rng(seed);
  return Array.from({ length: n }, () => rng.normal() * 0.2);
}

function model(steps, unrolled) {
  const step = (h, out, p) => [
    { op: 'MatMul', inputs: [h, 'W'], outputs: [`${p}mm`] },
    { op: 'Add', inputs: [`${p}mm`, 'b'], outputs: [`${p}pre`] },
    { op: 'Tanh', inputs: [`${p}pre`], outputs: [out] },
  ];
  const tail = [
    { op: 'Mul', inputs: ['hs', 'hs'], outputs: ['hs2'] },
    { op: 'ReduceMean', inputs: ['hs2'], outputs: ['loss'], attrs: { keepdims: 0 } },
  ];
  const body = {
    nodes: [{ op: 'Identity', inputs: ['c'], outputs: ['c_out'] }, ...step('h', 'h_new', 'in_'), { op: 'Identity', inputs: ['h_new'], outputs: ['h_scan'] }],
    inputs: [{ name: 'i', type: INT64, dims: [] }, { name: 'c', type: BOOL, dims: [] }, { name: 'h', type: FLOAT }],
    outputs: [{ name: 'c_out', type: BOOL, dims: [] }, { name: 'h_new', type: FLOAT }, { name: 'h_scan', type: FLOAT }],
  };
  const nodes = [];
  if (unrolled) {
    let h = 'x';
    for (let t = 0; t < steps; t++) {
      nodes.push(...step(h, `h${t}`, `s${t}_`), { op: 'Unsqueeze', inputs: [`h${t}`, 'axis0'], outputs: [`u${t}`] });
      h = `h${t}`;
    }
    nodes.push({ op: 'Concat', inputs: Array.from({ length: steps }, (_, t) => `u${t}`), outputs: ['hs'], attrs: { axis: 0 } });
  } else {
    nodes.push({ op: 'Loop', inputs: ['M', 'cond', 'x'], outputs: ['h_final', 'hs'], attrs: { body: { graph: body } } });
  }
  return buildModel({
    opset: 17, nodes: [...nodes, ...tail],
    inputs: [{ name: 'x', type: FLOAT, dims: [N, H] }],
    outputs: [{ name: 'loss', type: FLOAT, dims: [] }],
    initializers: [
      { name: 'W', type: FLOAT, dims: [H, H], values: values(H * H, 1) }, { name: 'b', type: FLOAT, dims: [H], values: values(H, 2) },
      { name: 'M', type: INT64, dims: [], values: [steps] }, { name: 'cond', type: BOOL, dims: [], values: [1] }, { name: 'axis0', type: INT64, dims: [1], values: [0] },
    ],
  });
}

function time(m, x) {
  const run = () => {
    m.zeroGrad();
    const r = m.run({ x });
    E.backward(r.loss);
    return r.loss.data[0];
  };
  run();
  const ms = [];
  let loss = 0;
  for (let i = 0; i < REPS; i++) {
    const t0 = performance.now();
    loss = run();
    ms.push(performance.now() - t0);
  }
  ms.sort((a, b) => a - b);
  return { median: ms[ms.length >> 1], loss, grad: m.parameters.get('W').grad.data };
}

console.log(`backend ${backendName}, hidden ${H}, batch ${N}, ${REPS} reps (median ms of forward + backward)\n`);
console.log('| steps | Loop | unrolled | Loop / unrolled | max |dW| difference |');
console.log('|---|---|---|---|---|');
const x = new E.Tensor(Float32Array.from(values(N * H, 3)), [N, H]);
for (const steps of STEPS) {
  const loop = time(E.loadOnnx(model(steps, false)), x);
  const flat = time(E.loadOnnx(model(steps, true)), x);
  let diff = 0;
  for (let i = 0; i < loop.grad.length; i++) diff = Math.max(diff, Math.abs(loop.grad[i] - flat.grad[i]));
  console.log(`| ${steps} | ${loop.median.toFixed(2)} | ${flat.median.toFixed(2)} | ${(loop.median / flat.median).toFixed(2)}x | ${diff.toExponential(1)} |`);
}
