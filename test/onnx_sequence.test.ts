/**
 * Sequences, optionals and string tensors in a run (engine/onnx/values.ts, ops/sequence.ts): gradients flow
 * through sequences into the tensors they hold, inspection reports a model with sequence values inside, and
 * values of the wrong kind fail with an error naming the input or node.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import {
  backward, gradcheck, inspectOnnx, sum, loadOnnx, OnnxOptional, OnnxSequence, StringTensor, Tensor, tensorFrom,
} from '../engine';
import { buildModel, encodeModel, modelProto } from './onnx_builder';
import { assertCloseTo, expectOnnxError } from './pytorchGold';

const FLOAT = 1;
const INT64 = 7;
const STRING = 8;
const DOUBLE = 11;



const X = [0.5, -1, 2, 1.5, -0.25, 3];
const A = [1, 2, 3, 4, 5, 6];
const B = [-0.5, 0.25, 1, -2, 0.75, 1.5];

/** y = SequenceAt(SequenceConstruct(x * a.weight, x * b.weight), 1): only b.weight reaches the output. */
const constructAt = buildModel({
  opset: 17,
  inputs: [{ name: 'x', type: DOUBLE, dims: [2, 3] }],
  outputs: [{ name: 'y', type: DOUBLE, dims: [2, 3] }],
  initializers: [
    { name: 'a.weight', type: DOUBLE, dims: [2, 3], values: A },
    { name: 'b.weight', type: DOUBLE, dims: [2, 3], values: B },
    { name: 'position', type: INT64, dims: [], values: [1] },
  ],
  nodes: [
    { op: 'Mul', name: '/a/Mul', inputs: ['x', 'a.weight'], outputs: ['ya'] },
    { op: 'Mul', name: '/b/Mul', inputs: ['x', 'b.weight'], outputs: ['yb'] },
    { op: 'SequenceConstruct', name: '/SequenceConstruct', inputs: ['ya', 'yb'], outputs: ['s'] },
    { op: 'SequenceAt', name: '/SequenceAt', inputs: ['s', 'position'], outputs: ['y'] },
  ],
});

test('SequenceConstruct -> SequenceAt -> loss: the gradient reaches the weight of the chosen element only', () => {
  const model = loadOnnx(constructAt);
  assert.deepEqual([...model.parameters.keys()].sort(), ['a.weight', 'b.weight']);
  const run = model.run({ x: X }, { loss: 'meanSquare' });
  const y = run.outputs.get('y')!;
  assertCloseTo(y.data, X.map((x, i) => x * B[i]), 1e-9);
  backward(run.loss!);
  // L = mean((x b)^2) over 6 elements: dL/db = 2 x^2 b / 6.
  assertCloseTo(model.parameters.get('b.weight')!.grad!.data, X.map((x, i) => (2 * x * x * B[i]) / 6), 1e-9);
  const ga = model.parameters.get('a.weight')!.grad;
  assert.ok(ga === null || Array.from(ga.data).every((v) => v === 0), 'a.weight does not reach the loss');
  const s = run.otherValues.get('s')!;
  assert.ok(s.value instanceof OnnxSequence && s.value.length === 2);
  assert.equal(s.node?.opType, 'SequenceConstruct');
  assert.ok(!run.tensorsByName.has('s'), 'a sequence is not a tensor value');
});

test('a model with sequences inside is inspected: its tensors are reported, the sequence is skipped', async () => {
  const report = await inspectOnnx(constructAt, 'construct_at', { dtype: 'float64', feeds: { x: X }, lossSpec: 'meanSquare' });
  const b = report.modules.find((m) => m.path === 'b')!;
  const a = report.modules.find((m) => m.path === 'a')!;
  const expected = Math.hypot(...X.map((x, i) => (2 * x * x * B[i]) / 6));
  assert.ok(Math.abs(b.gradNorm! - expected) <= 1e-9 * expected, `${b.gradNorm} vs ${expected}`);
  assert.ok(!a.gradNorm, `a.weight gets no gradient, got ${a.gradNorm}`);
  assert.ok(Number.isFinite(report.loss.value));
});

/** y = ConcatFromSequence(SequenceErase(SplitToSequence(x * w, axis 1), 0), axis 0, new_axis 1) */
const splitEraseConcat = buildModel({
  opset: 17,
  inputs: [{ name: 'x', type: DOUBLE, dims: [2, 3] }],
  outputs: [{ name: 'y', type: DOUBLE, dims: [2, 2] }, { name: 'n', type: INT64, dims: [] }],
  initializers: [
    { name: 'w', type: DOUBLE, dims: [2, 3], values: A },
    { name: 'first', type: INT64, dims: [], values: [0] },
  ],
  nodes: [
    { op: 'Mul', inputs: ['x', 'w'], outputs: ['xw'] },
    { op: 'SplitToSequence', inputs: ['xw'], outputs: ['parts'], attrs: { axis: 1, keepdims: 0 } },
    { op: 'SequenceErase', inputs: ['parts', 'first'], outputs: ['rest'] },
    { op: 'SequenceLength', inputs: ['rest'], outputs: ['n'] },
    { op: 'ConcatFromSequence', inputs: ['rest'], outputs: ['y'], attrs: { axis: 0, new_axis: 1 } },
  ],
});

test('SplitToSequence -> SequenceErase -> ConcatFromSequence: values, and gradients that pass gradcheck', () => {
  const model = loadOnnx(splitEraseConcat, { dtype: 'float64' });
  const run = model.run({ x: X }, { loss: 'none' });
  // Columns 1 and 2 of x*w ([2, 3]), stacked on a new axis 0: y[j][i] = (x w)[i][j + 1].
  const xw = X.map((x, i) => x * A[i]);
  assertCloseTo(run.outputs.get('y')!.data, [xw[1], xw[4], xw[2], xw[5]], 1e-9);
  assert.deepEqual(Array.from(run.outputs.get('n')!.data), [2]);
  const w = model.parameters.get('w')!;
  const x = tensorFrom(X, [2, 3], 'float64', { requiresGrad: true });
  const check = gradcheck((xi, wi) => {
    model.parameters.set('w', wi);
    return model.run({ x: xi }, { loss: 'none' }).outputs.get('y')!;
  }, [x, w]);
  model.parameters.set('w', w);
  assert.ok(check.ok, check.message);
});

/** A sequence graph input: y = ConcatFromSequence(SequenceInsert(seq, x, 0), axis 0) * w. */
const sequenceInput = buildModel({
  opset: 17,
  inputs: [{ name: 'seq', kind: 'sequence', type: FLOAT, dims: [null, 2] }, { name: 'x', type: FLOAT, dims: [1, 2] }],
  outputs: [{ name: 'y', type: FLOAT, dims: [null, 2] }],
  initializers: [{ name: 'w', type: FLOAT, dims: [2], values: [2, -3] }],
  nodes: [
    { op: 'SequenceInsert', inputs: ['seq', 'x', 'at'], outputs: ['s2'] },
    { op: 'ConcatFromSequence', inputs: ['s2'], outputs: ['cat'], attrs: { axis: 0 } },
    { op: 'Mul', inputs: ['cat', 'w'], outputs: ['y'] },
    { op: 'Constant', inputs: [], outputs: ['at'], attrs: { value: { tensor: { type: INT64, dims: [], values: [0] } } } },
  ],
});

test('a fed sequence: its tensors get gradients, and a float64 feed is converted to the run dtype', () => {
  const model = loadOnnx(sequenceInput);
  assert.equal(model.inputs.find((s) => s.name === 'seq')!.role, 'value');
  const e0 = tensorFrom([1, 2], [1, 2], 'float32', { requiresGrad: true });
  const e1 = tensorFrom([3, 4, 5, 6], [2, 2], 'float64');
  const run = model.run({ seq: new OnnxSequence([e0]), x: [7, 8] }, { loss: 'none' });
  assert.deepEqual(Array.from(run.outputs.get('y')!.data), [14, -24, 2, -6]);
  const summed = model.run({ seq: new OnnxSequence([e0]), x: [7, 8] }, { loss: (ctx) => sum(ctx.outputs.get('y')!) });
  backward(summed.loss!);
  assert.deepEqual(Array.from(e0.grad!.data), [2, -3]);
  assert.deepEqual(Array.from(model.parameters.get('w')!.grad!.data), [1 + 7, 2 + 8]);
  const converted = model.run({ seq: new OnnxSequence([e1]), x: [0, 0] }, { loss: 'none' });
  assertCloseTo(converted.outputs.get('y')!.data, [0, 0, 6, -12, 10, -18], 1e-9);
  // The memory estimate runs the same graph shape-only, with the fed sequence.
  assert.ok(model.estimateMemory({ seq: new OnnxSequence([e0]), x: [7, 8] }, { loss: 'none' }).peak > 0);
});

test('sequence, optional and string inputs must be fed as such; tensor ops refuse them by name', () => {
  const model = loadOnnx(sequenceInput);
  expectOnnxError(() => model.run({ x: [1, 2] }), 'BAD_INPUT', /input 'seq' is a sequence; no sample data can be made up for it: feed it \(as an OnnxSequence\)/);
  expectOnnxError(() => model.run({ seq: tensorFrom([1, 2], [1, 2]), x: [1, 2] }), 'BAD_INPUT', /input 'seq' is a sequence, got a float32 tensor \[1, 2\]/);
  expectOnnxError(() => model.run({ seq: new OnnxSequence([]), x: new OnnxSequence([]) }), 'BAD_INPUT', /input 'x' is a float32 tensor, got a sequence of 0 tensors/);
  const addSeq = buildModel({
    inputs: [{ name: 'seq', kind: 'sequence', type: FLOAT, dims: [2] }],
    outputs: [{ name: 'y', type: FLOAT, dims: [2] }],
    nodes: [{ op: 'Add', name: 'add', inputs: ['seq', 'seq'], outputs: ['y'] }],
  });
  expectOnnxError(() => loadOnnx(addSeq).run({ seq: new OnnxSequence([tensorFrom([1, 2], [2])]) }), 'UNSUPPORTED_DTYPE', /node 'add' \(Add\).*input 0 'seq' is a sequence of 1 float32 tensor; Add runs on tensors of numbers and bool only/);
  const stringAbs = buildModel({
    inputs: [{ name: 's', type: STRING, dims: [2] }],
    outputs: [{ name: 'y', type: STRING, dims: [2] }],
    nodes: [{ op: 'Abs', name: 'abs', inputs: ['s'], outputs: ['y'] }],
  });
  expectOnnxError(() => loadOnnx(stringAbs).run({ s: new StringTensor(['a', 'b'], [2]) }), 'UNSUPPORTED_DTYPE', /input 0 's' is a string tensor \[2\]; Abs runs on tensors/);
});

test('map and sparse graph inputs fail at load with UNSUPPORTED_DTYPE naming the input', () => {
  const mapIn = buildModel({
    inputs: [{ name: 'm', kind: 'map' }],
    outputs: [{ name: 'y', kind: 'map' }],
    nodes: [{ op: 'Identity', inputs: ['m'], outputs: ['y'] }],
  });
  expectOnnxError(() => loadOnnx(mapIn), 'UNSUPPORTED_DTYPE', /graph input 'm' is a map value/);
  const seqOfComplex = buildModel({
    inputs: [{ name: 'q', kind: 'sequence', type: 14, dims: [2] }],
    outputs: [{ name: 'y', kind: 'sequence', type: 14, dims: [2] }],
    nodes: [{ op: 'Identity', inputs: ['q'], outputs: ['y'] }],
  });
  expectOnnxError(() => loadOnnx(seqOfComplex), 'UNSUPPORTED_DTYPE', /graph input 'q' is a sequence of tensors of element type complex64/);
  const sparseIn = buildModel({
    inputs: [{ name: 'sp', kind: 'sparse_tensor', type: FLOAT, dims: [4, 4] }],
    outputs: [{ name: 'y', kind: 'sparse_tensor', type: FLOAT, dims: [4, 4] }],
    nodes: [{ op: 'Identity', inputs: ['sp'], outputs: ['y'] }],
  });
  expectOnnxError(() => loadOnnx(sparseIn), 'UNSUPPORTED_DTYPE', /graph input 'sp' is a sparse tensor value/);
  const proto = modelProto({
    inputs: [{ name: 'sm', kind: 'sequence' }],
    outputs: [{ name: 'y', kind: 'sequence' }],
    nodes: [{ op: 'Identity', inputs: ['sm'], outputs: ['y'] }],
  });
  proto.graph!.input[0].type!.elem = { kind: 'map', elemType: 0, shape: null, elem: null };
  expectOnnxError(() => loadOnnx(encodeModel(proto)), 'UNSUPPORTED_DTYPE', /graph input 'sm' is a sequence of map values/);
});

test('Equal on strings broadcasts; Identity and OptionalGetElement pass values through', () => {
  const model = loadOnnx(buildModel({
    opset: 18,
    inputs: [{ name: 'a', type: STRING, dims: [2, 2] }, { name: 'b', type: STRING, dims: [2] }, { name: 'o', kind: 'optional', type: STRING, dims: [2] }],
    outputs: [{ name: 'eq', type: 9, dims: [2, 2] }, { name: 'same', type: STRING, dims: [2] }, { name: 'has', type: 9, dims: [] }],
    nodes: [
      { op: 'Equal', inputs: ['a', 'b'], outputs: ['eq'] },
      { op: 'Identity', inputs: ['o'], outputs: ['o2'] },
      { op: 'OptionalGetElement', inputs: ['o2'], outputs: ['same'] },
      { op: 'OptionalHasElement', inputs: ['o'], outputs: ['has'] },
    ],
  }));
  const a = new StringTensor(['x', 'ü', 'x', 'y'], [2, 2]);
  const b = new StringTensor(['x', 'y'], [2]);
  const run = model.run({ a, b, o: new OnnxOptional(b) }, { loss: 'none' });
  assert.deepEqual(Array.from(run.outputs.get('eq')!.data), [1, 0, 1, 1]);
  assert.equal(run.otherValues.get('same')!.value, b);
  assert.deepEqual(Array.from(run.outputs.get('has')!.data), [1]);
  expectOnnxError(() => model.run({ a, b, o: new OnnxOptional(null) }, { loss: 'none' }), 'INVALID_MODEL', /OptionalGetElement.*the optional is empty/);
  expectOnnxError(() => model.run({ a, b: tensorFrom([1, 2], [2]) as unknown as StringTensor, o: new OnnxOptional(b) }), 'BAD_INPUT', /input 'b' is a string tensor, got a float32 tensor \[2\]/);
});

test('sequence positions out of range and mixed element types fail naming the node', () => {
  const at = (position: number) => loadOnnx(buildModel({
    opset: 17,
    inputs: [{ name: 'x', type: FLOAT, dims: [2] }],
    outputs: [{ name: 'y', type: FLOAT, dims: [2] }],
    initializers: [{ name: 'p', type: INT64, dims: [], values: [position] }],
    nodes: [
      { op: 'SequenceConstruct', inputs: ['x', 'x'], outputs: ['s'] },
      { op: 'SequenceAt', name: 'at', inputs: ['s', 'p'], outputs: ['y'] },
    ],
  }));
  assertCloseTo(at(-1).run({ x: [1, 2] }, { loss: 'none' }).outputs.get('y')!.data, [1, 2], 1e-9);
  expectOnnxError(() => at(2).run({ x: [1, 2] }, { loss: 'none' }), 'INVALID_MODEL', /node 'at' \(SequenceAt\).*position 2 is outside \[-2, 1\] for a sequence of 2 tensors/);
  const mixed = loadOnnx(buildModel({
    opset: 17,
    inputs: [{ name: 'x', type: FLOAT, dims: [2] }, { name: 'i', type: INT64, dims: [2] }],
    outputs: [{ name: 'y', kind: 'sequence', type: FLOAT, dims: [2] }],
    nodes: [{ op: 'SequenceConstruct', name: 'mix', inputs: ['x', 'i'], outputs: ['y'] }],
  }));
  expectOnnxError(() => mixed.run({ x: [1, 2], i: [1, 2] }, { loss: 'none' }), 'INVALID_MODEL', /node 'mix' \(SequenceConstruct\).*a sequence of float32 tensors cannot hold element 1, a int32 tensor/);
});

test('the default loss of a model whose only output is a sequence says there is no float output', () => {
  const model = loadOnnx(buildModel({
    opset: 17,
    inputs: [{ name: 'x', type: FLOAT, dims: [2, 4] }],
    outputs: [{ name: 's', kind: 'sequence', type: FLOAT, dims: [2, 2] }],
    initializers: [{ name: 'two', type: INT64, dims: [], values: [2] }],
    nodes: [{ op: 'SplitToSequence', inputs: ['x', 'two'], outputs: ['s'], attrs: { axis: 1 } }],
  }));
  expectOnnxError(() => model.run(), 'BAD_LOSS', /the model has no float output/);
  const run = model.run(undefined, { loss: 'none' });
  const s = run.otherValues.get('s')!.value as OnnxSequence;
  assert.deepEqual(s.items.map((t) => [...t.shape]), [[2, 2], [2, 2]]);
  assert.ok(s.items.every((t) => t instanceof Tensor));
});

test('Optional wraps a value or, without input, makes an empty optional of its type attribute', () => {
  const model = loadOnnx(buildModel({
    opset: 18,
    inputs: [{ name: 'x', type: FLOAT, dims: [2] }],
    outputs: [{ name: 'full', type: 9, dims: [] }, { name: 'empty', type: 9, dims: [] }, { name: 'back', type: FLOAT, dims: [2] }, { name: 'none', kind: 'optional', type: FLOAT, dims: [2] }],
    nodes: [
      { op: 'Optional', inputs: ['x'], outputs: ['ox'] },
      { op: 'OptionalHasElement', inputs: ['ox'], outputs: ['full'] },
      { op: 'OptionalGetElement', inputs: ['ox'], outputs: ['back'] },
      { op: 'Optional', inputs: [], outputs: ['none'], attrs: { type: { typeProto: { name: '', type: FLOAT, dims: [2] } } } },
      { op: 'OptionalHasElement', inputs: ['none'], outputs: ['empty'] },
    ],
  }));
  assert.deepEqual(model.warnings, []);
  const run = model.run({ x: [3, 4] }, { loss: 'none' });
  assert.deepEqual(Array.from(run.outputs.get('full')!.data), [1]);
  assert.deepEqual(Array.from(run.outputs.get('empty')!.data), [0]);
  assert.deepEqual(Array.from(run.outputs.get('back')!.data), [3, 4]);
  assert.equal((run.otherValues.get('none')!.value as OnnxOptional).value, null);
  const untyped = loadOnnx(buildModel({
    opset: 18,
    inputs: [],
    outputs: [{ name: 'has', type: 9, dims: [] }],
    nodes: [{ op: 'Optional', name: 'opt', inputs: [], outputs: ['o'] }, { op: 'OptionalHasElement', inputs: ['o'], outputs: ['has'] }],
  }));
  expectOnnxError(() => untyped.run(undefined, { loss: 'none' }), 'INVALID_MODEL', /node 'opt' \(Optional\).*an Optional without input needs its type attribute/);
});

test('SequenceEmpty takes its dtype: inserting another type fails, inserting the same type builds up', () => {
  const build = (dtype: number) => loadOnnx(buildModel({
    opset: 17,
    inputs: [{ name: 'x', type: FLOAT, dims: [2] }],
    outputs: [{ name: 'n', type: INT64, dims: [] }],
    nodes: [
      { op: 'SequenceEmpty', inputs: [], outputs: ['e'], attrs: { dtype } },
      { op: 'SequenceInsert', name: 'ins', inputs: ['e', 'x'], outputs: ['s1'] },
      { op: 'SequenceInsert', inputs: ['s1', 'x'], outputs: ['s2'] },
      { op: 'SequenceLength', inputs: ['s2'], outputs: ['n'] },
    ],
  }));
  assert.deepEqual(Array.from(build(FLOAT).run({ x: [1, 2] }, { loss: 'none' }).outputs.get('n')!.data), [2]);
  expectOnnxError(() => build(INT64).run({ x: [1, 2] }, { loss: 'none' }), 'INVALID_MODEL', /node 'ins' \(SequenceInsert\).*a sequence of int32 tensors cannot hold element 0, a float32 tensor/);
});

test('a Shape of a fed sequence element follows the sequence fed to each run (not a cached first one)', () => {
  const model = loadOnnx(buildModel({
    opset: 17,
    inputs: [{ name: 'seq', kind: 'sequence', type: FLOAT, dims: null }],
    outputs: [{ name: 'shape', type: INT64, dims: [null] }],
    initializers: [{ name: 'zero', type: INT64, dims: [], values: [0] }],
    nodes: [
      { op: 'SequenceAt', inputs: ['seq', 'zero'], outputs: ['first'] },
      { op: 'Shape', inputs: ['first'], outputs: ['shape'] },
    ],
  }));
  const shapeOf = (dims: number[]) => Array.from(model.run({ seq: new OnnxSequence([tensorFrom(new Array(dims.reduce((p, q) => p * q, 1)).fill(1), dims)]) }, { loss: 'none' }).outputs.get('shape')!.data);
  assert.deepEqual(shapeOf([2, 3]), [2, 3]);
  assert.deepEqual(shapeOf([4]), [4]);
  assert.deepEqual(shapeOf([2, 3]), [2, 3]);
});

test('labels for a loss on scores taken out of a fed sequence are sampled in the class range', () => {
  const model = loadOnnx(buildModel({
    opset: 17,
    inputs: [{ name: 'seq', kind: 'sequence', type: FLOAT, dims: [4, 5] }, { name: 'labels', type: INT64, dims: [4] }],
    outputs: [{ name: 'loss', type: FLOAT, dims: [] }],
    initializers: [{ name: 'zero', type: INT64, dims: [], values: [0] }],
    nodes: [
      { op: 'SequenceAt', inputs: ['seq', 'zero'], outputs: ['scores'] },
      { op: 'SoftmaxCrossEntropyLoss', inputs: ['scores', 'labels'], outputs: ['loss'] },
    ],
  }));
  assert.equal(model.inputs.find((s) => s.name === 'labels')!.role, 'labels');
  const scores = tensorFrom(Array.from({ length: 20 }, (_, i) => Math.sin(i)), [4, 5], 'float32', { requiresGrad: true });
  const run = model.run({ seq: new OnnxSequence([scores]) }, { seed: 3 });
  const labels = Array.from(run.inputs.get('labels')!.data);
  assert.ok(labels.every((l) => Number.isInteger(l) && l >= 0 && l < 5), `labels ${labels}`);
  // The graph's own loss: mean over rows of logsumexp(s) - s[label].
  const expected = labels.reduce((acc, l, r) => {
    const row = Array.from(scores.data.slice(r * 5, r * 5 + 5));
    const m = Math.max(...row);
    return acc + (m + Math.log(row.reduce((p, v) => p + Math.exp(v - m), 0)) - row[l]) / 4;
  }, 0);
  assertCloseTo([run.loss!.data[0]], [expected], 1e-6);
  backward(run.loss!);
  assert.ok(scores.grad && Array.from(scores.grad.data).some((g) => g !== 0), 'the fed scores get a gradient');
});
