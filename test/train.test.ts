/**
 * The trainer beyond the gold runs: anomaly mode on models exported to produce NaN/Inf (forward,
 * backward, update), the recorded statistics, the record's JSON round trip, and the optimiser and
 * clipping edge cases.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadOnnx, Tensor, tensorFrom } from '../engine';
import { inspectOnnx } from '../engine/inspect/onnxInspect';
import { Adam, clipGradNorm, clipGradValue, OnnxTrainer, parseTrainingRecord, serializeTrainingRecord, SGD, TrainingRecordError } from '../engine/train';
import { textBatch, textDataset } from '../engine/train/dataset';
import { repoRoot } from './helpers';

const onnx = (name: string) => new Uint8Array(fs.readFileSync(path.join(repoRoot, 'test', 'fixtures', 'onnx', name)));
const example = (name: string) => new Uint8Array(fs.readFileSync(path.join(repoRoot, 'examples', name)));
/** The 1-based line of the first line of test/fixtures/python/nan_model.py containing `text`. */
function lineOf(text: string): number {
  const lines = fs.readFileSync(path.join(repoRoot, 'test', 'fixtures', 'python', 'nan_model.py'), 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes(text));
  assert.ok(i >= 0, `'${text}' not in nan_model.py`);
  return i + 1;
}

describe('anomaly mode', () => {
  test('a NaN made in the forward pass is traced to its node, module and line, and training stops', () => {
    const trainer = new OnnxTrainer(loadOnnx(onnx('nan_forward.onnx')), { optimizer: { kind: 'sgd', lr: 0.1 }, modelName: 'nan_forward.onnx', batch: 4 });
    const results = trainer.train(5);
    assert.equal(results.length, 1, 'training must stop at the anomalous step');
    const a = trainer.record.anomaly;
    assert.ok(a);
    assert.equal(a.step, 1);
    assert.equal(a.phase, 'forward');
    assert.equal(a.node, '/head/Log');
    assert.equal(a.modulePath, 'head');
    assert.deepEqual(a.source && { file: path.basename(a.source.file), line: a.source.line }, { file: 'nan_model.py', line: lineOf('torch.log(h - 10.0)') });
    assert.match(a.message, /NaN/);
    assert.ok(Number.isNaN(trainer.record.loss[0] as number));
    assert.throws(() => trainer.step(), /training stopped at step 1/);
    // No update ran: the parameters are as loaded.
    const fresh = loadOnnx(onnx('nan_forward.onnx'));
    for (const [name, p] of trainer.model.parameters) assert.deepEqual(Array.from(p.data), Array.from(fresh.parameters.get(name)!.data), name);
  });

  test('an infinite gradient with a finite forward pass is traced in backward order', () => {
    const trainer = new OnnxTrainer(loadOnnx(onnx('nan_backward.onnx')), { optimizer: { kind: 'adam', lr: 1e-3 }, modelName: 'nan_backward.onnx', batch: 4 });
    trainer.train(3);
    const a = trainer.record.anomaly;
    assert.ok(a);
    assert.equal(a.phase, 'backward');
    assert.equal(a.node, '/gate/Mul', 'the first value whose gradient turns non-finite is h * 0.0 (under the sqrt)');
    assert.equal(a.modulePath, 'gate');
    assert.equal(a.source?.line, lineOf('torch.sqrt(h * 0.0)'));
    assert.ok(Number.isFinite(trainer.record.loss[0] as number), 'the loss itself is finite');
  });

  test('one-shot inspection reports the same origin', async () => {
    const report = await inspectOnnx(onnx('nan_backward.onnx'), 'nan_backward.onnx', { batch: 4 });
    assert.equal(report.firstNonFinite?.node, '/gate/Mul');
    assert.equal(report.firstNonFinite?.phase, 'backward');
    assert.equal(report.firstNonFinite?.source?.line, lineOf('torch.sqrt(h * 0.0)'));
  });

  test('an update that overflows float32 is reported as an update anomaly on its module', () => {
    const trainer = new OnnxTrainer(loadOnnx(example('healthy_mlp.onnx')), { optimizer: { kind: 'sgd', lr: 1e42 }, modelName: 'healthy_mlp.onnx', batch: 8 });
    trainer.train(4);
    const a = trainer.record.anomaly;
    assert.ok(a, 'lr 1e42 must overflow float32');
    assert.equal(a.step, 1);
    assert.equal(a.phase, 'update');
    assert.match(a.message, /not finite after the sgd update/);
    assert.ok(trainer.record.modules.some((m) => m.path === a.modulePath), `${a.modulePath} is a recorded module`);
  });
});

describe('recorded statistics', () => {
  test('per step and module: gradient and parameter norms, update ratios, activations', () => {
    const trainer = new OnnxTrainer(loadOnnx(example('vanishing_mlp.onnx')), { optimizer: { kind: 'sgd', lr: 0.1, momentum: 0.9 }, modelName: 'vanishing_mlp.onnx', batch: 16 });
    trainer.train(6);
    const r = trainer.record;
    assert.deepEqual(r.steps, [1, 2, 3, 4, 5, 6]);
    assert.ok(r.loss.every((l) => Number.isFinite(l)));
    assert.ok((r.loss[5] as number) < (r.loss[0] as number), `loss ${r.loss[0]} -> ${r.loss[5]}`);
    const linears = r.modules.filter((m) => m.leaf && m.gradNorm[0] !== null);
    assert.ok(linears.length >= 4, `${linears.length} leaf modules with parameters`);
    let checked = 0;
    for (const m of linears) {
      for (const key of ['gradNorm', 'paramNorm', 'updateRatio', 'actStd'] as const) {
        assert.equal(m[key].length, 6, `${m.path}.${key}`);
        assert.ok(m[key].every((v) => v !== null && Number.isFinite(v) && v >= 0), `${m.path}.${key}: ${m[key]}`);
      }
      // With SGD, step 1's update is lr * grad: the ratio is lr * ‖g‖ / ‖θ‖. The record holds the update that
      // actually happened in float32, so where it nears float32 resolution (the vanishing layers) it is rounded
      // or lost: compare only where it is well above that.
      const expected = 0.1 * (m.gradNorm[0] as number) / (m.paramNorm[0] as number);
      if (expected > 1e-3) {
        checked++;
        assert.ok(Math.abs((m.updateRatio[0] as number) - expected) <= 1e-3 * expected, `${m.path}: update ratio ${m.updateRatio[0]} vs ${expected}`);
      } else {
        assert.ok((m.updateRatio[0] as number) <= 2 * expected, `${m.path}: update ratio ${m.updateRatio[0]} vs at most ${expected}`);
      }
    }
    assert.ok(checked >= 2, `${checked} layers with updates above float32 resolution`);
    // Depth order, input side first: the deep sigmoid stack's first layer gets far less gradient than its last.
    const byDepth = [...linears].sort((a, b) => a.depth - b.depth);
    assert.ok((byDepth[0].gradNorm[0] as number) < 1e-2 * (byDepth[byDepth.length - 1].gradNorm[0] as number), 'vanishing gradient is visible in the record');
    // The model-level series sums all parameters: its gradient norm is the total.
    const root = r.modules.find((m) => m.path === '')!;
    assert.ok(Math.abs((root.gradNorm[2] as number) - (r.gradNormTotal[2] as number)) <= 1e-9 * (r.gradNormTotal[2] as number));
  });

  test('fresh data draws a new batch per step, fixed data repeats it', () => {
    const run = (data: 'fixed' | 'fresh') => {
      const t = new OnnxTrainer(loadOnnx(example('healthy_mlp.onnx')), { optimizer: { kind: 'sgd', lr: 0 }, modelName: 'm', batch: 8, data });
      t.train(3);
      return t.record.loss as number[];
    };
    const fixed = run('fixed');
    const fresh = run('fresh');
    assert.equal(fixed[0], fixed[2], 'lr 0 and the same batch: the same loss');
    assert.equal(fresh[0], fixed[0], 'step 1 uses the base seed either way');
    assert.notEqual(fresh[1], fresh[0]);
  });

  test('the record survives JSON with NaN and Infinity, and parse errors name the field', () => {
    const trainer = new OnnxTrainer(loadOnnx(onnx('nan_forward.onnx')), { optimizer: { kind: 'adamw', lr: 1e-3 }, modelName: 'nan_forward.onnx', batch: 4 });
    trainer.train(2);
    const text = serializeTrainingRecord(trainer.record);
    assert.ok(text.includes('"NaN"'));
    const back = parseTrainingRecord(text);
    assert.ok(Number.isNaN(back.loss[0] as number));
    assert.deepEqual(back.anomaly, JSON.parse(JSON.stringify(trainer.record.anomaly)));
    assert.equal(back.modules.length, trainer.record.modules.length);
    assert.equal(back.optimizer.kind, 'adamw');

    const bad = JSON.parse(text);
    bad.modules[1].gradNorm = [1, 2, 3];
    assert.throws(() => parseTrainingRecord(JSON.stringify(bad), 'run.json'), (e: Error) => e instanceof TrainingRecordError && /run\.json: modules\[1\] \([^)]*\)\.gradNorm: has 3 entries but the record has 1 steps/.test(e.message));
    assert.throws(() => parseTrainingRecord('{"schema":"gradient-lens/report@1"}'), /schema is "gradient-lens\/report@1", expected "gradient-lens\/training@1"/);
    assert.throws(() => parseTrainingRecord('{"schema":'), /not valid JSON/);
  });
});

describe('optimisers and clipping', () => {
  const param = (values: number[]) => tensorFrom(values, [values.length], 'float64', { requiresGrad: true, name: 'w' });
  const withGrad = (p: Tensor, g: number[]) => {
    p.grad = tensorFrom(g, [g.length], 'float64');
    return p;
  };

  test('clip_grad_norm_ scales by max / (total + 1e-6) and returns the norm before clipping', () => {
    const a = withGrad(param([0, 0]), [3, 0]);
    const b = withGrad(param([0]), [4]);
    const total = clipGradNorm([a, b], 1);
    assert.equal(total, 5);
    const coef = 1 / (5 + 1e-6);
    assert.deepEqual(Array.from(a.grad!.data), [3 * coef, 0]);
    assert.deepEqual(Array.from(b.grad!.data), [4 * coef]);
    const c = withGrad(param([0]), [0.5]);
    clipGradNorm([c], 1);
    assert.deepEqual(Array.from(c.grad!.data), [0.5], 'below the max norm nothing changes');
  });

  test('clip_grad_value_ clamps, and leaves shared gradient tensors alone', () => {
    const g = tensorFrom([-3, 0.2, 7], [3], 'float64');
    const p = param([0, 0, 0]);
    p.grad = g;
    clipGradValue([p], 1);
    assert.deepEqual(Array.from(p.grad.data), [-1, 0.2, 1]);
    assert.deepEqual(Array.from(g.data), [-3, 0.2, 7]);
    assert.throws(() => clipGradValue([p], 0), /clip value must be > 0/);
  });

  test('Adam\'s first step moves every weight by about lr (bias correction), AdamW also decays', () => {
    const p = withGrad(param([1, -2, 0.5]), [0.3, -4, 1e-3]);
    new Adam([p], { lr: 0.01 }).step();
    // m̂ = g, v̂ = g²: the step is lr * g / (|g| + eps).
    assert.deepEqual(Array.from(p.data).map((v) => +v.toFixed(9)), [0.99, -1.99, +(0.5 - 0.01 * 1e-3 / (1e-3 + 1e-8)).toFixed(9)]);
    const q = withGrad(param([1]), [0]);
    new Adam([q], { lr: 0.1, weightDecay: 0.5 }, 'adamw').step();
    assert.ok(Math.abs(q.data[0] - (1 - 0.1 * 0.5)) < 1e-12, `decoupled decay: ${q.data[0]}`);
  });

  test('an update drops a cached device copy of the parameter (it would be stale)', () => {
    const p = withGrad(param([1, 2]), [1, 1]);
    const owner = { name: 'fake-device' };
    const storage = { length: 2, released: false, read: async () => new Float64Array([1, 2]), release() {} };
    p.setDeviceCopy(owner, storage);
    assert.equal(p.deviceCopy(owner), storage);
    new SGD([p], { lr: 0.5 }).step();
    assert.equal(p.deviceCopy(owner), undefined);
    assert.deepEqual(Array.from(p.data), [0.5, 1.5]);
  });

  test('bad settings are refused with the reason', () => {
    const p = withGrad(param([1]), [1]);
    assert.throws(() => new SGD([p], { lr: -1 }), /learning rate must be a finite number >= 0/);
    assert.throws(() => new SGD([p], { lr: 0.1, nesterov: true }), /Nesterov momentum requires a momentum/);
    assert.throws(() => new Adam([p], { lr: 0.1, betas: [1, 0.9] }), /betas must lie in \[0, 1\)/);
    assert.throws(() => new SGD([tensorFrom([1], [1])], { lr: 0.1 }), /not a leaf tensor that requires grad/);
  });
});

describe('the text a model ships', () => {
  test('the tiny GPT trains on windows of its sample text and learns it', () => {
    const model = loadOnnx(example('tiny_gpt.onnx'));
    const ds = textDataset(model);
    assert.ok(!('reason' in ds), 'reason' in ds ? ds.reason : '');
    const vocab = JSON.parse(model.metadata['gradientlens.vocab']) as string[];
    assert.equal(ds.ids.map((i) => vocab[i]).join(''), model.metadata['gradientlens.sample_text']);
    const b1 = textBatch(ds, 1, 2, 8)[ds.input] as Tensor;
    assert.deepEqual(b1.shape, [2, 8]);
    assert.deepEqual(Array.from(b1.data), [...ds.ids.slice(0, 8), ...ds.ids.slice(4, 12)], 'windows half a window apart');
    const b2 = textBatch(ds, 2, 2, 8)[ds.input] as Tensor;
    assert.deepEqual(Array.from(b2.data.subarray(0, 8)), ds.ids.slice(8, 16), 'the next step walks on');
    const trainer = new OnnxTrainer(model, { optimizer: { kind: 'adam', lr: 1e-2 }, modelName: 'tiny_gpt.onnx', data: 'text', feeds: (step) => textBatch(ds, step, 4, 16) });
    trainer.train(30);
    const loss = trainer.record.loss as number[];
    assert.ok(loss[29] < 0.6 * loss[0], `next-token loss on the text ${loss[0]} -> ${loss[29]}`);
    assert.equal(trainer.record.settings?.data, 'text');
  });

  test('a model without shipped text says why', () => {
    const ds = textDataset(loadOnnx(example('vanishing_mlp.onnx')));
    assert.ok('reason' in ds);
    assert.match(ds.reason, /ships no dataset \(ONNX metadata gradientlens\.vocab and gradientlens\.sample_text/);
  });
});
