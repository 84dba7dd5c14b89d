/**
 * Control flow carrying sequences and optionals (ops/control.ts with values.ts): If branches and Loop-carried
 * values that are sequences, SequenceMap's body run once per element, bodies reading outer sequences. Values
 * and gradients against hand-derived formulas; errors naming the node.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backward, loadOnnx, mul, OnnxSequence, sum, tensorFrom } from '../engine';
import { DataType } from '../engine/onnx/proto';
import { Tensor, readTensors } from '../engine/tensor';
import { deviceScope } from '../engine/backend/dispatch';
import { device, onDevice } from './fakeDevice';
import { GraphSpec, buildModel } from './onnx_builder';
import { assertCloseTo, expectOnnxError } from './pytorchGold';

const D = DataType.DOUBLE;
const I64 = DataType.INT64;
const BOOL = DataType.BOOL;



const X = [0.5, -1.5];
const W = [2, -0.25];

/** A Loop body that appends y_i = x * w * (i + 1) to the carried sequence (a scan output s_i = sum(y_i) too). */
const appendBody: GraphSpec = {
  nodes: [
    { op: 'Identity', inputs: ['c'], outputs: ['c_out'] },
    { op: 'Constant', inputs: [], outputs: ['one'], attrs: { value: { tensor: { type: D, dims: [], values: [1] } } } },
    { op: 'Cast', inputs: ['i'], outputs: ['fi'], attrs: { to: D } },
    { op: 'Add', inputs: ['fi', 'one'], outputs: ['k'] },
    { op: 'Mul', inputs: ['x', 'w'], outputs: ['xw'] },
    { op: 'Mul', inputs: ['xw', 'k'], outputs: ['y'] },
    { op: 'SequenceInsert', inputs: ['seq_in', 'y'], outputs: ['seq_out'] },
    { op: 'ReduceSum', inputs: ['y'], outputs: ['s'], attrs: { keepdims: 0 } },
  ],
  inputs: [{ name: 'i', type: I64, dims: [] }, { name: 'c', type: BOOL, dims: [] }, { name: 'seq_in', kind: 'sequence', type: D }],
  outputs: [{ name: 'c_out', type: BOOL, dims: [] }, { name: 'seq_out', kind: 'sequence', type: D }, { name: 's', type: D, dims: [] }],
};

test('Loop carries a sequence: elements appended per iteration, gradients through every element to the weight the body reads', () => {
  const model = loadOnnx(buildModel({
    opset: 17,
    inputs: [{ name: 'x', type: D, dims: [2] }],
    outputs: [{ name: 'z', type: D, dims: [6] }, { name: 'sums', type: D, dims: [3] }],
    initializers: [
      { name: 'w', type: D, dims: [2], values: W },
      { name: 'M', type: I64, dims: [], values: [3] },
      { name: 'yes', type: BOOL, dims: [], values: [1] },
    ],
    nodes: [
      { op: 'SequenceEmpty', inputs: [], outputs: ['empty'], attrs: { dtype: D } },
      { op: 'Loop', name: 'loop', inputs: ['M', 'yes', 'empty'], outputs: ['seq', 'sums'], attrs: { body: { graph: appendBody } } },
      { op: 'ConcatFromSequence', inputs: ['seq'], outputs: ['z'], attrs: { axis: 0 } },
    ],
  }));
  assert.deepEqual([...model.parameters.keys()], ['w']);
  const x = tensorFrom(X, [2], 'float64', { requiresGrad: true });
  const run = model.run({ x }, { loss: (ctx) => sum(mul(ctx.outputs.get('z')!, ctx.outputs.get('z')!)) });
  const xw = X.map((v, j) => v * W[j]);
  assertCloseTo(run.outputs.get('z')!.data, [1, 2, 3].flatMap((k) => xw.map((v) => v * k)), 1e-12);
  assertCloseTo(run.outputs.get('sums')!.data, [1, 2, 3].map((k) => k * (xw[0] + xw[1])), 1e-12);
  const seq = run.otherValues.get('seq')!;
  assert.ok(seq.value instanceof OnnxSequence && seq.value.length === 3);
  assert.equal(seq.node?.opType, 'Loop');
  // L = sum_k k^2 sum_j (x_j w_j)^2 = 14 sum_j (x_j w_j)^2: dL/dw_j = 28 x_j^2 w_j, dL/dx_j = 28 w_j^2 x_j.
  backward(run.loss!);
  assertCloseTo(model.parameters.get('w')!.grad!.data, X.map((v, j) => 28 * v * v * W[j]), 1e-12);
  assertCloseTo(x.grad!.data, X.map((v, j) => 28 * W[j] * W[j] * v), 1e-12);
});

test('If returns a sequence chosen by the data: the gradient reaches only the weight of the branch taken', () => {
  const branch = (weight: string): GraphSpec => ({
    nodes: [
      { op: 'Mul', inputs: ['x', weight], outputs: [`${weight}_y`] },
      { op: 'SequenceConstruct', inputs: [`${weight}_y`, 'x'], outputs: [`${weight}_seq`] },
    ],
    inputs: [],
    outputs: [{ name: `${weight}_seq`, kind: 'sequence', type: D }],
  });
  const model = loadOnnx(buildModel({
    opset: 17,
    inputs: [{ name: 'x', type: D, dims: [2] }, { name: 'cond', type: BOOL, dims: [] }],
    outputs: [{ name: 'y', type: D, dims: [2] }],
    initializers: [{ name: 'a', type: D, dims: [2], values: [3, 4] }, { name: 'b', type: D, dims: [2], values: [-1, 0.5] }, { name: 'zero', type: I64, dims: [], values: [0] }],
    nodes: [
      { op: 'If', name: 'pick', inputs: ['cond'], outputs: ['seq'], attrs: { then_branch: { graph: branch('a') }, else_branch: { graph: branch('b') } } },
      { op: 'SequenceAt', inputs: ['seq', 'zero'], outputs: ['y'] },
    ],
  }));
  for (const [cond, taken, other] of [[true, 'a', 'b'], [false, 'b', 'a']] as const) {
    for (const p of model.parameters.values()) p.grad = null;
    const run = model.run({ x: X, cond: tensorFrom([cond ? 1 : 0], [], 'bool') }, { loss: (ctx) => sum(ctx.outputs.get('y')!) });
    const wt = model.parameters.get(taken)!;
    assertCloseTo(run.outputs.get('y')!.data, X.map((v, j) => v * wt.data[j]), 1e-12);
    backward(run.loss!);
    assertCloseTo(wt.grad!.data, X, 1e-12);
    const g = model.parameters.get(other)!.grad;
    assert.ok(g === null || Array.from(g.data).every((v) => v === 0), `${other} is in the branch not taken`);
  }
});

/** y_i = x_i W for every x_i of the fed sequence (SequenceMap), the results concatenated along axis 0. */
const mapModel = buildModel({
  opset: 17,
  inputs: [{ name: 'xs', kind: 'sequence', type: D, dims: [null, 3] }],
  outputs: [{ name: 'y', type: D, dims: [null, 2] }],
  initializers: [{ name: 'W', type: D, dims: [3, 2], values: [0.5, -1, 2, 0.25, -0.75, 1.5] }],
  nodes: [
    {
      op: 'SequenceMap', name: 'map', inputs: ['xs'], outputs: ['ys'], attrs: {
        body: { graph: { nodes: [{ op: 'MatMul', inputs: ['xi', 'W'], outputs: ['yi'] }], inputs: [{ name: 'xi', type: D, dims: [null, 3] }], outputs: [{ name: 'yi', type: D, dims: [null, 2] }] } },
      },
    },
    { op: 'ConcatFromSequence', inputs: ['ys'], outputs: ['y'], attrs: { axis: 0 } },
  ],
});

test('SequenceMap: the body runs once per element; W (read inside the body) and the fed elements get their gradients', () => {
  const model = loadOnnx(mapModel);
  assert.deepEqual([...model.parameters.keys()], ['W']);
  const Wv = [0.5, -1, 2, 0.25, -0.75, 1.5];
  const rows = [[1, 2, -1], [0.5, 0, 3], [-2, 1, 1]];
  const e0 = tensorFrom(rows[0], [1, 3], 'float64', { requiresGrad: true });
  const e1 = tensorFrom([...rows[1], ...rows[2]], [2, 3], 'float64', { requiresGrad: true });
  const run = model.run({ xs: new OnnxSequence([e0, e1]) }, { loss: (ctx) => sum(mul(ctx.outputs.get('y')!, ctx.outputs.get('y')!)) });
  const y = rows.map((r) => [0, 1].map((c) => r.reduce((acc, v, k) => acc + v * Wv[k * 2 + c], 0)));
  assertCloseTo(run.outputs.get('y')!.data, y.flat(), 1e-12);
  backward(run.loss!);
  // L = sum (X W)^2: dL/dW = 2 X^T (X W), dL/dX = 2 (X W) W^T.
  assertCloseTo(model.parameters.get('W')!.grad!.data, [0, 1, 2].flatMap((k) => [0, 1].map((c) => rows.reduce((acc, r, i) => acc + 2 * r[k] * y[i][c], 0))), 1e-12);
  const dx = y.map((yr) => [0, 1, 2].map((k) => 2 * (yr[0] * Wv[k * 2] + yr[1] * Wv[k * 2 + 1])));
  assertCloseTo(e0.grad!.data, dx[0], 1e-12);
  assertCloseTo(e1.grad!.data, [...dx[1], ...dx[2]], 1e-12);
});

test('SequenceMap over a fed sequence of device-only tensors stays on the device (test/fakeDevice.ts) and matches the host', async () => {
  const model = loadOnnx(mapModel);
  const rows = [[1, 2, -1], [0.5, 0, 3], [-2, 1, 1]];
  const host = model.run({ xs: new OnnxSequence([tensorFrom(rows[0], [1, 3]), tensorFrom([...rows[1], ...rows[2]], [2, 3])]) }, { loss: 'none', dtype: 'float32' }).outputs.get('y')!;
  const y = await deviceScope(async () => {
    const up = (v: number[], shape: number[]) => Tensor.onDevice(device.device.upload(Float32Array.from(v)), device.device, shape, 'float32');
    const out = onDevice(() => model.run({ xs: new OnnxSequence([up(rows[0], [1, 3]), up([...rows[1], ...rows[2]], [2, 3])]) }, { loss: 'none', dtype: 'float32' }).outputs.get('y')!);
    assert.equal(out.hasHostData, false, 'the concatenated result stays on the device');
    await readTensors([out]);
    return Float32Array.from(out.data);
  });
  assert.deepEqual(Array.from(y), Array.from(host.data));
});

test('SequenceMap with an extra sequence and an extra tensor; sequences of different lengths fail naming the node', () => {
  const model = loadOnnx(buildModel({
    opset: 17,
    inputs: [{ name: 'a', kind: 'sequence', type: D, dims: [2] }, { name: 'b', kind: 'sequence', type: D, dims: [2] }, { name: 't', type: D, dims: [2] }],
    outputs: [{ name: 'sums', kind: 'sequence', type: D, dims: [2] }, { name: 'shapes', kind: 'sequence', type: I64, dims: [1] }],
    nodes: [{
      op: 'SequenceMap', name: 'map', inputs: ['a', 'b', 't'], outputs: ['sums', 'shapes'], attrs: {
        body: {
          graph: {
            nodes: [{ op: 'Add', inputs: ['ai', 'bi'], outputs: ['ab'] }, { op: 'Add', inputs: ['ab', 'ti'], outputs: ['s'] }, { op: 'Shape', inputs: ['s'], outputs: ['shape'] }],
            inputs: [{ name: 'ai', type: D, dims: [2] }, { name: 'bi', type: D, dims: [2] }, { name: 'ti', type: D, dims: [2] }],
            outputs: [{ name: 's', type: D, dims: [2] }, { name: 'shape', type: I64, dims: [1] }],
          },
        },
      },
    }],
  }));
  const f = (v: number[]) => tensorFrom(v, [v.length], 'float64');
  const run = model.run({ a: new OnnxSequence([f([1, 2]), f([3, 4])]), b: new OnnxSequence([f([10, 20]), f([30, 40])]), t: [100, 200] }, { loss: 'none' });
  const sums = run.otherValues.get('sums')!.value as OnnxSequence;
  assert.deepEqual(sums.items.map((t) => Array.from((t as { data: ArrayLike<number> }).data)), [[111, 222], [133, 244]]);
  const shapes = run.otherValues.get('shapes')!.value as OnnxSequence;
  assert.deepEqual(shapes.items.map((t) => Array.from((t as { data: ArrayLike<number> }).data)), [[2], [2]]);
  // Empty sequences map to empty sequences of the element types the body declares (no iteration shows them).
  const empty = model.run({ a: new OnnxSequence([], 'float64'), b: new OnnxSequence([], 'float64'), t: [0, 0] }, { loss: 'none' });
  const emptySums = empty.otherValues.get('sums')!.value as OnnxSequence;
  const emptyShapes = empty.otherValues.get('shapes')!.value as OnnxSequence;
  assert.deepEqual([emptySums.length, emptySums.elemKind], [0, 'float64']);
  assert.deepEqual([emptyShapes.length, emptyShapes.elemKind], [0, shapes.elemKind]);
  expectOnnxError(() => model.run({ a: new OnnxSequence([f([1, 2])]), b: new OnnxSequence([f([10, 20]), f([30, 40])]), t: [0, 0] }, { loss: 'none' }),
    'INVALID_MODEL', /node 'map' \(SequenceMap\).*input 1 is a sequence of 2 elements, input_sequence has 1/);
});

test('a Loop body reads an outer sequence by name (SequenceAt at the iteration number): values and the gradient to the split input', () => {
  const body: GraphSpec = {
    nodes: [
      { op: 'Identity', inputs: ['c'], outputs: ['c_out'] },
      { op: 'SequenceAt', inputs: ['parts', 'i'], outputs: ['part'] },
      { op: 'Mul', inputs: ['part', 'part'], outputs: ['sq'] },
      { op: 'Add', inputs: ['h', 'sq'], outputs: ['h_new'] },
    ],
    inputs: [{ name: 'i', type: I64, dims: [] }, { name: 'c', type: BOOL, dims: [] }, { name: 'h', type: D, dims: [2] }],
    outputs: [{ name: 'c_out', type: BOOL, dims: [] }, { name: 'h_new', type: D, dims: [2] }],
  };
  const model = loadOnnx(buildModel({
    opset: 17,
    inputs: [{ name: 'x', type: D, dims: [6] }, { name: 'M', type: I64, dims: [] }],
    outputs: [{ name: 'h', type: D, dims: [2] }],
    initializers: [{ name: 'h0', type: D, dims: [2], values: [0, 0] }, { name: 'yes', type: BOOL, dims: [], values: [1] }, { name: 'two', type: I64, dims: [], values: [2] }],
    nodes: [
      { op: 'SplitToSequence', inputs: ['x', 'two'], outputs: ['parts'], attrs: { axis: 0 } },
      { op: 'Loop', name: 'loop', inputs: ['M', 'yes', 'h0'], outputs: ['h'], attrs: { body: { graph: body } } },
    ],
  }));
  const xs = [1, -2, 3, 0.5, -1, 4];
  for (const m of [2, 3]) {
    const x = tensorFrom(xs, [6], 'float64', { requiresGrad: true });
    const run = model.run({ x, M: tensorFrom([m], [], 'int32') }, { loss: (ctx) => sum(ctx.outputs.get('h')!) });
    const h = [0, 1].map((j) => Array.from({ length: m }, (_, i) => xs[2 * i + j] ** 2).reduce((p, q) => p + q, 0));
    assertCloseTo(run.outputs.get('h')!.data, h, 1e-12);
    backward(run.loss!);
    assertCloseTo(x.grad!.data, xs.map((v, k) => (k < 2 * m ? 2 * v : 0)), 1e-12);
  }
  expectOnnxError(() => model.run({ x: xs, M: tensorFrom([4], [], 'int32') }, { loss: 'none' }), 'INVALID_MODEL', /SequenceAt.*\(in the body of Loop node 'loop'\).*position 3 is outside \[-3, 2\]/);
});

test('a Loop scan output must be a tensor: a sequence there fails naming the Loop', () => {
  const body: GraphSpec = {
    nodes: [{ op: 'Identity', inputs: ['c'], outputs: ['c_out'] }, { op: 'SequenceConstruct', inputs: ['x'], outputs: ['s'] }],
    inputs: [{ name: 'i', type: I64, dims: [] }, { name: 'c', type: BOOL, dims: [] }],
    outputs: [{ name: 'c_out', type: BOOL, dims: [] }, { name: 's', kind: 'sequence', type: D }],
  };
  const model = loadOnnx(buildModel({
    opset: 17,
    inputs: [{ name: 'x', type: D, dims: [2] }],
    outputs: [{ name: 'y', type: D }],
    initializers: [{ name: 'M', type: I64, dims: [], values: [2] }],
    nodes: [{ op: 'Loop', name: 'loop', inputs: ['M', ''], outputs: ['y'], attrs: { body: { graph: body } } }],
  }));
  expectOnnxError(() => model.run({ x: X }, { loss: 'none' }), 'UNSUPPORTED_FEATURE', /node 'loop' \(Loop\).*scan output 0 is a sequence of 1 float64 tensor; it must be a tensor/);
});

test('a Shape of the element a fed position picks out of a sequence follows each run (not folded by input shapes)', () => {
  const model = loadOnnx(buildModel({
    opset: 17,
    inputs: [{ name: 'a', type: D, dims: [2] }, { name: 'b', type: D, dims: [3] }, { name: 'pos', type: I64, dims: [] }],
    outputs: [{ name: 'shape', type: I64, dims: [1] }],
    nodes: [
      { op: 'SequenceConstruct', inputs: ['a', 'b'], outputs: ['seq'] },
      { op: 'SequenceAt', inputs: ['seq', 'pos'], outputs: ['picked'] },
      { op: 'Shape', inputs: ['picked'], outputs: ['shape'] },
    ],
  }));
  const shapeAt = (p: number) => Array.from(model.run({ a: [1, 2], b: [1, 2, 3], pos: tensorFrom([p], [], 'int32') }, { loss: 'none' }).outputs.get('shape')!.data);
  assert.deepEqual(shapeAt(0), [2]);
  assert.deepEqual(shapeAt(1), [3]);
  assert.deepEqual(shapeAt(0), [2]);
});
