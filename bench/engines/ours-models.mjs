// Gradient Lens's engine on the real-model set (bench/models/real_models.py exports): for each model, load the
// ONNX, feed PyTorch's inputs, cross-entropy against PyTorch's targets, forward + backward. Prints one
// @@RESULT line with per-model timings and the loss error against PyTorch's.
//
//   node bench/engines/ours-models.mjs --dir=DIR [--only=a,b] [--backend=wasm-simd|wasm-relaxed|typescript] [--quick]
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, flag, measure, report, timingOptions, useBackendFlag } from '../lib/harness.mjs';

const require = createRequire(import.meta.url);
const E = require(join(ROOT, 'build', 'engine', 'index.js'));
const { loadWasmBackendNode } = require(join(ROOT, 'build', 'engine', 'backend', 'wasm', 'node.js'));

const dir = flag('dir', '');
const only = flag('only', '').split(',').filter(Boolean);
const { backend } = await useBackendFlag(E, loadWasmBackendNode);

function decode(t, dtype) {
  const buf = Buffer.from(t.data, 'base64');
  const copy = new Uint8Array(buf.length);
  copy.set(buf);
  const f64 = new Float64Array(copy.buffer);
  return dtype === 'float32' ? Float32Array.from(f64) : Int32Array.from(f64);
}

/** One model: load, feeds, a step function (forward + loss + backward) and the loss error against PyTorch's. */
export function prepare(id) {
  const meta = JSON.parse(readFileSync(join(dir, `${id}.json`), 'utf8'));
  const model = E.loadOnnx(new Uint8Array(readFileSync(join(dir, `${id}.onnx`))));
  const feeds = {};
  for (const [name, t] of Object.entries(meta.inputs)) feeds[name] = new E.Tensor(decode(t, t.dtype === 'float32' ? 'float32' : 'int32'), t.shape);
  const targets = new E.Tensor(decode(meta.targets, 'int32'), meta.targets.shape);
  const runOptions = { loss: { kind: 'crossEntropy', targets } };
  let loss = NaN;
  // One recycling step (engine/recycling.ts), as the product's trainer and inspector run theirs: the next step
  // reuses this step's output arrays. The loss is read inside; the parameters' .grad stay valid.
  const step = () => E.recycling(() => {
    model.zeroGrad();
    const run = model.run(feeds, runOptions);
    E.backward(run.loss);
    loss = run.loss.item();
  });
  return { meta, model, feeds, runOptions, step, loss: () => loss };
}

const ids = only;
const result = { engine: 'gradient-lens', backend: `${backend.name}${backend.relaxedSimd ? ' (relaxed SIMD FMA)' : ''}`, models: {} };
const opts = timingOptions();
for (const id of ids) {
  if (!existsSync(join(dir, `${id}.onnx`))) {
    result.models[id] = { error: 'not exported' };
    continue;
  }
  try {
    const t0 = performance.now();
    const p = prepare(id);
    const loadMs = performance.now() - t0;
    const t = await measure(p.step, opts);
    result.models[id] = { ...t, loadMs, loss: p.loss(), lossError: Math.abs(p.loss() - p.meta.loss) / Math.abs(p.meta.loss) };
  } catch (e) {
    result.models[id] = { error: String(e?.message ?? e).slice(0, 500) };
  }
  console.error(`  ${id}: ${JSON.stringify(result.models[id])}`);
}
report(result);
