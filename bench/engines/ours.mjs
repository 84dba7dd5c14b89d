// Gradient Lens's engine (compiled to build/ by tsc) on one backend: --backend=wasm-simd | wasm-relaxed | typescript.
// wasm-relaxed loads the relaxed-SIMD (FMA) kernels; Node 20 needs --experimental-wasm-relaxed-simd for them.
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { MATMUL, MLP, ROOT, gflops, matmulData, measure, mlpData, pkgVersion, report, timingOptions, useBackendFlag } from '../lib/harness.mjs';

const require = createRequire(import.meta.url);
const E = require(join(ROOT, 'build', 'engine', 'index.js'));
const { loadWasmBackendNode } = require(join(ROOT, 'build', 'engine', 'backend', 'wasm', 'node.js'));
const { FIXTURE_MODELS, loadModelFixture, loadTensors } = require(join(ROOT, 'build', 'test', 'fixture_models.js'));

const { which, backend } = await useBackendFlag(E, loadWasmBackendNode);

const base = timingOptions();
// The TypeScript reference takes about a second per 512^3 matmul: fewer repetitions.
const opts = which === 'typescript' ? { ...base, minReps: 3, minMs: Math.min(base.minMs, 1500) } : base;
const result = {
  engine: 'gradient-lens',
  version: pkgVersion('..') ?? '',
  backend: `${backend.name}${backend.relaxedSimd ? ' (relaxed SIMD FMA)' : ''}`,
  notes: [],
};

// matmul through the engine op (tensors wrap the Float32Arrays; the backend copies them into wasm memory per call).
{
  const { m, k, n } = MATMUL;
  const { a, b } = matmulData();
  const t = await measure(() => E.matmul(new E.Tensor(a, [m, k]), new E.Tensor(b, [k, n])).data, opts);
  result.matmul = { ...t, gflops: gflops(2 * m * k * n, t.median), gflopsBest: gflops(2 * m * k * n, t.min), mode: 'fresh operands (= resident: every call copies in)' };
}

// MLP training step: forward, cross-entropy, backward (every parameter's gradient).
{
  const { layers, x, targets } = mlpData();
  const params = layers.map((l) => [
    new E.Tensor(l.weight, [l.out, l.in], { requiresGrad: true }),
    new E.Tensor(l.bias, [l.out], { requiresGrad: true }),
  ]);
  const xt = new E.Tensor(x, [MLP.batch, MLP.sizes[0]]);
  const yt = new E.Tensor(targets, [MLP.batch]);
  let loss = 0;
  const step = () => {
    for (const [w, b] of params) w.grad = b.grad = null;
    let h = xt;
    params.forEach(([w, b], i) => {
      h = E.linear(h, w, b);
      if (i < params.length - 1) h = E.sigmoid(h);
    });
    const l = E.crossEntropy(h, yt);
    E.backward(l);
    loss = l.item();
  };
  const t = await measure(step, opts);
  result.mlp = { ...t, kind: 'forward + backward (engine ops)', loss };
}

// GPT fixture (test/fixture_models.ts gpt() with the gold parameters), forward + backward.
{
  const f = loadModelFixture('gpt');
  const loaded = loadTensors(f, 'float32');
  const params = Object.values(loaded.params);
  let loss = 0;
  const step = () => {
    for (const p of params) p.grad = null;
    const run = FIXTURE_MODELS.gpt(loaded, f.config);
    E.backward(run.loss);
    loss = run.loss.item();
  };
  const t = await measure(step, opts);
  result.gpt = { ...t, kind: 'forward + backward (engine ops)', loss, lossError: Math.abs(loss - f.loss) / Math.abs(f.loss) };
}

report(result);
