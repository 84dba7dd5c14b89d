import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../engine';
import { backward, DEFAULT_THRESHOLDS, diagnose, InspectionRecorder, tensorStats, TracedOp, TracedParameter, tensorFrom, deadUnitFraction } from '../engine';
import { loadModelFixture, loadTensors } from './fixture_models';

test('tensorStats: moments, zeros, non-finite counts and a log-magnitude histogram', () => {
  const s = tensorStats([0, 1, -1, 3, NaN, Infinity, 1e-4]);
  assert.equal(s.count, 7);
  assert.equal(s.nanCount, 1);
  assert.equal(s.infCount, 1);
  assert.ok(Math.abs(s.zeroFraction - 1 / 7) < 1e-12);
  assert.equal(s.min, -1);
  assert.equal(s.max, 3);
  assert.ok(Math.abs(s.norm - Math.sqrt(11 + 1e-8)) < 1e-12);
  const finite = [0, 1, -1, 3, 1e-4];
  const mean = finite.reduce((a, b) => a + b) / 5;
  assert.ok(Math.abs(s.mean - mean) < 1e-12);
  assert.equal(s.histogram.counts.reduce((a, b) => a + b), 4, 'nonzero finite values binned');
  assert.equal(s.histogram.log10Edges[0], -4);
});

test('deadUnitFraction counts units zero for every sample (last axis, or channels for NCHW)', () => {
  // 8 samples x 3 units: unit 1 fires once, units 0 and 2 never.
  const rows = Array.from({ length: 8 }, (_, i) => [0, i === 5 ? 1 : 0, 0]).flat();
  assert.equal(deadUnitFraction(tensorFrom(rows, [8, 3])), 2 / 3);
  // NCHW: channels are the units; channel 0 is all zero over 2 x 2 x 2 samples, channel 1 is not.
  const nchw = tensorFrom([0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0], [2, 2, 2, 2]);
  assert.equal(deadUnitFraction(nchw), 0.5);
  // Too few samples per unit to call any unit dead.
  assert.equal(deadUnitFraction(tensorFrom([0, 1, 0, 0, 2, 0], [2, 3])), null);
});

/** The gold-checked sigmoid MLP, traced by hand as the ONNX importer would trace it. */
function traceMlp(name: 'mlp_sigmoid' | 'mlp_residual') {
  const f = loadModelFixture(name);
  const { params, inputs } = loadTensors(f, 'float32');
  const ops: TracedOp[] = [];
  const traced = (node: string, opType: string, modulePath: string, output: E.Tensor) => {
    ops.push({ node, opType, modulePath, output });
    return output;
  };
  let x = inputs.x;
  if (name === 'mlp_sigmoid') {
    for (let i = 0; i < 10; i++) {
      x = traced(`/layers.${i}/Gemm`, 'Gemm', `layers.${i}`, E.linear(x, params[`layers.${i}.weight`], params[`layers.${i}.bias`]));
      if (i < 9) x = traced(`/Sigmoid_${i}`, 'Sigmoid', '', E.sigmoid(x));
    }
  } else {
    x = traced('/inp/Gemm', 'Gemm', 'inp', E.linear(x, params['inp.weight'], params['inp.bias']));
    for (let i = 0; i < 8; i++) {
      const b = `blocks.${i}`;
      const h = traced(`/${b}/ln/LayerNormalization`, 'LayerNormalization', `${b}.ln`, E.layerNorm(x, [32], params[`${b}.ln.weight`], params[`${b}.ln.bias`]));
      const fc = traced(`/${b}/fc/Gemm`, 'Gemm', `${b}.fc`, E.linear(h, params[`${b}.fc.weight`], params[`${b}.fc.bias`]));
      const r = traced(`/${b}/Relu`, 'Relu', b, E.relu(fc));
      x = traced(`/${b}/Add`, 'Add', b, E.add(x, r));
    }
    x = traced('/ln_f/LayerNormalization', 'LayerNormalization', 'ln_f', E.layerNorm(x, [32], params['ln_f.weight'], params['ln_f.bias']));
    x = traced('/head/Gemm', 'Gemm', 'head', E.linear(x, params['head.weight'], params['head.bias']));
  }
  const loss = E.crossEntropy(x, inputs.targets);
  const traceParams: TracedParameter[] = Object.entries(params).map(([n, t]) => ({ name: n, modulePath: n.slice(0, n.lastIndexOf('.')), tensor: t, trainable: true }));
  const recorder = new InspectionRecorder(traceParams, ops);
  recorder.attach([{ target: 'layers-output', tensor: x, modulePath: '' }]);
  backward(loss);
  recorder.detach();
  const report = recorder.report({
    model: { name, parameterCount: 0 },
    backend: 'typescript',
    dtype: 'float32',
    settings: { seed: 0, batch: 8, loss: 'cross_entropy' },
    loss: { kind: 'cross_entropy', value: loss.item() },
    timings: { forwardMs: 0, backwardMs: 0 },
  });
  return { report, params };
}

test('report: per-module gradient norms equal the norms of the parameter gradients', () => {
  const { report, params } = traceMlp('mlp_sigmoid');
  const l0 = report.modules.find((m) => m.path === 'layers.0')!;
  const expected = Math.hypot(tensorStats(params['layers.0.weight'].grad!.data).norm, tensorStats(params['layers.0.bias'].grad!.data).norm);
  assert.ok(Math.abs(l0.gradNorm! - expected) <= 1e-12 * expected);
  assert.deepEqual(l0.outputShape, [8, 32]);
  assert.equal(l0.leaf, true);
  assert.equal(l0.parameterCount, 16 * 32 + 32);
  assert.ok(l0.outputGrad && l0.outputGrad.norm > 0, 'output gradient captured by hook');
  const root = report.modules.find((m) => m.path === '')!;
  assert.equal(root.leaf, false);
  const all = Object.values(params).reduce((s, p) => s + tensorStats(p.grad!.data).norm ** 2, 0);
  assert.ok(Math.abs(root.gradNorm! - Math.sqrt(all)) <= 1e-9 * Math.sqrt(all));
  assert.deepEqual(report.modules.filter((m) => m.leaf).map((m) => m.path), Array.from({ length: 10 }, (_, i) => `layers.${i}`));
  assert.equal(report.hookLogs.length, 1);
  assert.deepEqual(report.hookLogs[0].shape, [8, 10]);
});

test('diagnose flags vanishing gradients in the deep sigmoid MLP, first layers worst', () => {
  const { report } = traceMlp('mlp_sigmoid');
  const findings = diagnose(report, DEFAULT_THRESHOLDS).filter((f) => f.kind === 'vanishing');
  assert.ok(findings.length >= 3, `expected several vanishing layers, got ${findings.map((f) => f.modulePath)}`);
  assert.equal(findings[0].modulePath, 'layers.0');
  assert.ok(!findings.some((f) => f.modulePath === 'layers.9'));
  assert.match(findings[0].message, /shrinking about [\d.]+× per layer/);
});

test('diagnose finds nothing wrong with the healthy residual MLP', () => {
  const { report } = traceMlp('mlp_residual');
  assert.deepEqual(diagnose(report, DEFAULT_THRESHOLDS).map((f) => `${f.kind} ${f.modulePath}`), []);
});

test('diagnose reports zero, absent and non-finite gradients and dead units', () => {
  const { report } = traceMlp('mlp_residual');
  const block = report.modules.find((m) => m.path === 'blocks.0.fc')!;
  block.parameters[1] = { ...block.parameters[1], grad: { ...block.parameters[1].grad!, norm: 0 }, zeroReason: 'a constant added before softmax' };
  block.parameters[0] = { ...block.parameters[0], grad: null, zeroReason: undefined };
  const head = report.modules.find((m) => m.path === 'head')!;
  head.parameters[0] = { ...head.parameters[0], grad: { ...head.parameters[0].grad!, nanCount: 2 } };
  report.modules.find((m) => m.path === 'blocks.3')!.deadUnitFraction = 0.5;
  const kinds = diagnose(report).map((f) => `${f.kind} ${f.parameter ?? f.modulePath}`);
  assert.ok(kinds.includes('zero-gradient blocks.0.fc.bias'));
  assert.ok(kinds.includes('no-gradient blocks.0.fc.weight'));
  assert.ok(kinds.includes('non-finite head.weight'));
  assert.ok(kinds.includes('dead-units blocks.3'));
  const zero = diagnose(report).find((f) => f.parameter === 'blocks.0.fc.bias')!;
  assert.equal(zero.severity, 'info');
  assert.match(zero.message, /exactly zero: a constant added before softmax/);
});

test('report: a tied weight counts in every module that holds it, once in the modules above them (PyTorch\'s module.parameters())', () => {
  // emb (owner) and head read one weight; head also has a bias of its own; head.extra holds a 'weight' of its own
  // and also reads the tied one, so there the tied entry keeps its own name.
  const w = tensorFrom([1, 2, 3, 4, 5, 6], [3, 2], 'float32', { requiresGrad: true });
  const b = tensorFrom([0.5, -0.5, 1], [3], 'float32', { requiresGrad: true });
  const v = tensorFrom([2, 2], [2], 'float32', { requiresGrad: true });
  const x = tensorFrom([1, -1], [1, 2]);
  const ops: TracedOp[] = [];
  const traced = (node: string, modulePath: string, output: E.Tensor) => (ops.push({ node, opType: 'MatMul', modulePath, output }), output);
  const e = traced('/emb/Gather', 'emb', E.mul(w, w));
  const h = traced('/head/Gemm', 'head', E.linear(x, w, b));
  const g = traced('/head.extra/Mul', 'head.extra', E.mul(E.sum(E.mul(w, w)), v));
  backward(E.add(E.add(E.sum(e), E.sum(h)), E.sum(g)));
  const params: TracedParameter[] = [
    { name: 'emb.weight', modulePath: 'emb', tensor: w, trainable: true, tiedIn: ['head', 'head.extra'] },
    { name: 'head.bias', modulePath: 'head', tensor: b, trainable: true },
    { name: 'head.extra.weight', modulePath: 'head.extra', tensor: v, trainable: true },
  ];
  const report = new InspectionRecorder(params, ops).report({
    model: { name: 'tied', parameterCount: 11 }, backend: 'typescript', dtype: 'float32', settings: { seed: 0, batch: 1, loss: 'sum' },
    loss: { kind: 'sum', value: 0 }, timings: { forwardMs: 0, backwardMs: 0 },
  });
  const m = (p: string) => report.modules.find((x) => x.path === p)!;
  const norm = (t: E.Tensor) => tensorStats(t.grad!.data).norm;
  assert.deepEqual(m('head').parameters.map((p) => [p.name, p.tiedTo]), [['head.weight', 'emb.weight'], ['head.bias', undefined]]);
  assert.deepEqual(m('head.extra').parameters.map((p) => [p.name, p.tiedTo]), [['emb.weight', 'emb.weight'], ['head.extra.weight', undefined]]);
  assert.equal(m('emb').parameterCount, 6);
  assert.equal(m('head.extra').parameterCount, 6 + 2);
  assert.equal(m('head').parameterCount, 6 + 3 + 2);
  assert.equal(m('').parameterCount, 6 + 3 + 2);
  assert.ok(Math.abs(m('head').gradNorm! - Math.hypot(norm(w), norm(b), norm(v))) <= 1e-6 * m('head').gradNorm!);
  assert.ok(Math.abs(m('').gradNorm! - Math.hypot(norm(w), norm(b), norm(v))) <= 1e-6 * m('').gradNorm!);
  assert.equal(m('emb').gradNorm, norm(w));
});
