/**
 * ONNX control flow (If, Loop, Scan) run eagerly: values and gradients against hand-unrolled equivalents
 * and finite differences, outer-scope reads (liveness, trainable parameters, folding), nesting, the
 * iteration cap and the errors that name the enclosing node.
 */
import { describe, test } from 'node:test';
import * as fs from 'node:fs';
import * as path from 'node:path';
import assert from 'node:assert/strict';
import { loadOnnx, inspectOnnx, OnnxImportError, Tensor, backward, gradcheck } from '../engine';
import { TensorOnDeviceError, readTensors } from '../engine/tensor';
import { deviceScope } from '../engine/backend/dispatch';
import { device, onDevice } from './fakeDevice';
import { DataType } from '../engine/onnx/proto';
import { LOOP_ITERATION_CAP } from '../engine/onnx/ops/control';
import { GraphSpec, ModelSpec, NodeSpec, buildModel } from './onnx_builder';
import { checkGraphLossGold, expectOnnxError, GraphLossGold } from './pytorchGold';
import { maxAbsDiff, repoRoot } from './helpers';

const D = DataType.DOUBLE;
const W = { name: 'W', type: D, dims: [3, 3], values: [0.5, -0.3, 0.2, 0.1, 0.4, -0.6, -0.2, 0.3, 0.7] };
const B = { name: 'b', type: D, dims: [3], values: [0.1, -0.2, 0.05] };
const X = [0.3, -1.2, 0.8, 1.5, 0.2, -0.7];

function f64(values: number[], shape: number[], grad = false): Tensor {
  const t = new Tensor(Float64Array.from(values), shape);
  if (grad) t.setRequiresGrad(true);
  return t;
}

/** h <- tanh(h W + b), three times; Loop form (scan output: every h) or unrolled. */
function rnnModel(unrolled: boolean): Uint8Array {
  const step = (h: string, out: string, p: string): NodeSpec[] => [
    { op: 'MatMul', inputs: [h, 'W'], outputs: [`${p}mm`] },
    { op: 'Add', inputs: [`${p}mm`, 'b'], outputs: [`${p}pre`] },
    { op: 'Tanh', inputs: [`${p}pre`], outputs: [out] },
  ];
  const tail: NodeSpec[] = [
    { op: 'ReduceSum', inputs: ['h_final'], outputs: ['s1'], attrs: { keepdims: 0 } },
    { op: 'Mul', inputs: ['hs', 'hs'], outputs: ['hs2'] },
    { op: 'ReduceSum', inputs: ['hs2'], outputs: ['s2'], attrs: { keepdims: 0 } },
    { op: 'Add', inputs: ['s1', 's2'], outputs: ['loss'] },
  ];
  const body: GraphSpec = {
    nodes: [{ op: 'Identity', inputs: ['c'], outputs: ['c_out'] }, ...step('h', 'h_new', 'in_'), { op: 'Identity', inputs: ['h_new'], outputs: ['h_scan'] }],
    inputs: [{ name: 'i', type: DataType.INT64, dims: [] }, { name: 'c', type: DataType.BOOL, dims: [] }, { name: 'h', type: D }],
    outputs: [{ name: 'c_out', type: DataType.BOOL, dims: [] }, { name: 'h_new', type: D }, { name: 'h_scan', type: D }],
  };
  const nodes: NodeSpec[] = unrolled
    ? [...step('x', 'h1', 'a'), ...step('h1', 'h2', 'b'), ...step('h2', 'h_final', 'c'),
      ...['h1', 'h2', 'h_final'].map((h, k): NodeSpec => ({ op: 'Unsqueeze', inputs: [h, 'axis0'], outputs: [`u${k}`] })),
      { op: 'Concat', inputs: ['u0', 'u1', 'u2'], outputs: ['hs'], attrs: { axis: 0 } }, ...tail]
    : [{ op: 'Loop', inputs: ['M', 'cond', 'x'], outputs: ['h_final', 'hs'], attrs: { body: { graph: body } } }, ...tail];
  return buildModel({
    opset: 17, nodes,
    inputs: [{ name: 'x', type: D, dims: [2, 3] }],
    outputs: [{ name: 'loss', type: D, dims: [] }, { name: 'hs', type: D, dims: [3, 2, 3] }],
    initializers: [W, B, { name: 'M', type: DataType.INT64, dims: [], values: [3] }, { name: 'cond', type: DataType.BOOL, dims: [], values: [1] }, { name: 'axis0', type: DataType.INT64, dims: [1], values: [0] }],
  });
}

test('Loop: values and gradients (parameters read inside the body, the loop-carried input) equal the unrolled graph', () => {
  const results = [false, true].map((unrolled) => {
    const model = loadOnnx(rnnModel(unrolled));
    const x = f64(X, [2, 3], true);
    const run = model.run({ x });
    backward(run.loss!);
    return { model, run, x };
  });
  const [loop, flat] = results;
  assert.deepEqual([...loop.model.parameters.keys()].sort(), ['W', 'b']);
  assert.match(loop.model.initializers.find((i) => i.name === 'W')!.reason, /inside the subgraphs of Loop node/);
  assert.ok(Math.abs(loop.run.loss!.data[0] - flat.run.loss!.data[0]) < 1e-12);
  assert.deepEqual(loop.run.value('hs').shape, [3, 2, 3]);
  assert.ok(maxAbsDiff(loop.run.value('hs').data, flat.run.value('hs').data) < 1e-12);
  for (const p of ['W', 'b']) {
    const g = loop.model.parameters.get(p)!.grad!;
    assert.ok(g.data.some((v) => Math.abs(v) > 1e-3), `${p} gets a gradient`);
    assert.ok(maxAbsDiff(g.data, flat.model.parameters.get(p)!.grad!.data) < 1e-12, p);
  }
  assert.ok(maxAbsDiff(loop.x.grad!.data, flat.x.grad!.data) < 1e-12);
});

test('Loop without a cond input: a for loop whose body condition output is ignored; the body reads the iteration number', () => {
  // for i < 5: h = h * 2 + i (the body's condition, sum(h) < limit, is false from the start and ignored).
  const body: GraphSpec = {
    nodes: [
      { op: 'Cast', inputs: ['i'], outputs: ['fi'], attrs: { to: D } },
      { op: 'Mul', inputs: ['h', 'two'], outputs: ['h2'] },
      { op: 'Add', inputs: ['h2', 'fi'], outputs: ['h_new'] },
      { op: 'ReduceSum', inputs: ['h_new'], outputs: ['s'], attrs: { keepdims: 0 } },
      { op: 'Less', inputs: ['s', 'limit'], outputs: ['c_out'] },
    ],
    inputs: [{ name: 'i', type: DataType.INT64, dims: [] }, { name: 'c', type: DataType.BOOL, dims: [] }, { name: 'h', type: D }],
    outputs: [{ name: 'c_out', type: DataType.BOOL, dims: [] }, { name: 'h_new', type: D }],
  };
  const model = loadOnnx(buildModel({
    nodes: [{ op: 'Loop', inputs: ['M', '', 'h0'], outputs: ['h'], attrs: { body: { graph: body } } }],
    inputs: [{ name: 'h0', type: D, dims: [2] }, { name: 'limit', type: D, dims: [] }],
    outputs: [{ name: 'h', type: D }],
    initializers: [{ name: 'M', type: DataType.INT64, dims: [], values: [5] }, { name: 'two', type: D, dims: [], values: [2] }],
  }));
  let h = [1, 2];
  for (let i = 0; i < 5; i++) h = h.map((v) => v * 2 + i);
  const out = model.run({ h0: f64([1, 2], [2]), limit: f64([0], []) }, { loss: 'none' }).value('h');
  assert.deepEqual([...out.data], h);
});

test('Loop: the condition stops it; a later run with other data is not served from a folded copy', () => {
  const body: GraphSpec = {
    nodes: [
      { op: 'Add', inputs: ['h', 'x'], outputs: ['h_new'] },
      { op: 'ReduceSum', inputs: ['h_new'], outputs: ['s'], attrs: { keepdims: 0 } },
      { op: 'Less', inputs: ['s', 'limit'], outputs: ['c_out'] },
    ],
    inputs: [{ name: 'i', type: DataType.INT64, dims: [] }, { name: 'c', type: DataType.BOOL, dims: [] }, { name: 'h', type: D }],
    outputs: [{ name: 'c_out', type: DataType.BOOL, dims: [] }, { name: 'h_new', type: D }],
  };
  // Every explicit input is a constant (folded); the body reads the graph inputs x and limit.
  const model = loadOnnx(buildModel({
    nodes: [
      { op: 'Constant', inputs: [], outputs: ['zero'], attrs: { value: { tensor: { type: D, dims: [2], values: [0, 0] } } } },
      { op: 'Loop', inputs: ['', 'yes', 'zero'], outputs: ['h'], attrs: { body: { graph: body } } },
    ],
    inputs: [{ name: 'x', type: D, dims: [2] }, { name: 'limit', type: D, dims: [] }],
    outputs: [{ name: 'h', type: D }],
    initializers: [{ name: 'yes', type: DataType.BOOL, dims: [], values: [1] }],
  }));
  const a = model.run({ x: f64([1, 2], [2]), limit: f64([10], []) }, { loss: 'none' });
  assert.deepEqual([...a.value('h').data], [4, 8]); // sums 3, 6, 9, 12: stops once the sum reaches 10
  assert.equal(a.tensorsByName.get('zero')!.folded, true);
  assert.equal(a.tensorsByName.get('h')!.folded, false);
  const b = model.run({ x: f64([1, 1], [2]), limit: f64([3], []) }, { loss: 'none' });
  assert.deepEqual([...b.value('h').data], [2, 2]);
});

/** Scan: s <- s * w + x_t over x's axis 1 in reverse, every s stacked along output axis 1; w is a graph input the body reads. */
function scanModel(): Uint8Array {
  const body: GraphSpec = {
    nodes: [
      { op: 'Mul', inputs: ['s', 'w'], outputs: ['sw'] },
      { op: 'Add', inputs: ['sw', 'xt'], outputs: ['s_new'] },
      { op: 'Sin', inputs: ['s_new'], outputs: ['y'] },
    ],
    inputs: [{ name: 's', type: D }, { name: 'xt', type: D }],
    outputs: [{ name: 's_new', type: D }, { name: 'y', type: D }],
  };
  return buildModel({
    nodes: [{ op: 'Scan', inputs: ['s0', 'x'], outputs: ['s_final', 'ys'], attrs: { body: { graph: body }, num_scan_inputs: 1, scan_input_axes: [1], scan_input_directions: [1], scan_output_axes: [1] } }],
    inputs: [{ name: 's0', type: D, dims: [2] }, { name: 'x', type: D, dims: [2, 4] }, { name: 'w', type: D, dims: [2] }],
    outputs: [{ name: 's_final', type: D }, { name: 'ys', type: D }],
  });
}

test('Scan: reverse direction, input axis 1, output axis 1: values by hand and gradients by finite differences', () => {
  const model = loadOnnx(scanModel());
  const s0 = [0.5, -0.25];
  const x = [0.1, 0.2, 0.3, 0.4, -0.5, 0.6, -0.7, 0.8];
  const w = [0.9, -1.1];
  const run = model.run({ s0: f64(s0, [2]), x: f64(x, [2, 4]), w: f64(w, [2]) }, { loss: 'none' });
  const s = [...s0];
  const ys: number[][] = [];
  for (let t = 3; t >= 0; t--) {
    for (let r = 0; r < 2; r++) s[r] = s[r] * w[r] + x[r * 4 + t];
    ys.push(s.map(Math.sin));
  }
  assert.ok(maxAbsDiff(run.value('s_final').data, s) < 1e-12);
  // Output axis 1: ys[r][k] = the k-th step's y (steps in scan order, forward output direction).
  assert.deepEqual(run.value('ys').shape, [2, 4]);
  const want = [0, 1].flatMap((r) => ys.map((y) => y[r]));
  assert.ok(maxAbsDiff(run.value('ys').data, want) < 1e-12);
  const check = gradcheck((a, b, c) => {
    const r = model.run({ s0: a, x: b, w: c }, { loss: 'none' });
    return [r.value('s_final'), r.value('ys')];
  }, [f64(s0, [2], true), f64(x, [2, 4], true), f64(w, [2], true)]);
  assert.ok(check.ok, check.message);
});

test('If: the branch follows data; the gradient reaches only what the taken branch read', () => {
  const branch = (op: string, ins: string[]): GraphSpec => ({ nodes: [{ op, inputs: ins, outputs: ['r'] }], inputs: [], outputs: [{ name: 'r', type: D }] });
  const model = loadOnnx(buildModel({
    nodes: [
      { op: 'ReduceSum', inputs: ['x'], outputs: ['sum'], attrs: { keepdims: 0 } },
      { op: 'Greater', inputs: ['sum', 'zero'], outputs: ['positive'] },
      { op: 'If', inputs: ['positive'], outputs: ['y'], attrs: { then_branch: { graph: branch('Mul', ['x', 'scale']) }, else_branch: { graph: branch('Neg', ['x']) } } },
      { op: 'ReduceSum', inputs: ['y'], outputs: ['loss'], attrs: { keepdims: 0 } },
    ],
    inputs: [{ name: 'x', type: D, dims: [3] }],
    outputs: [{ name: 'loss', type: D, dims: [] }],
    initializers: [{ name: 'scale', type: D, dims: [3], values: [2, 3, 4] }, { name: 'zero', type: D, dims: [], values: [0] }],
  }));
  assert.deepEqual([...model.parameters.keys()], ['scale']);
  const pos = model.run({ x: f64([1, 2, -1], [3]) });
  assert.equal(pos.loss!.data[0], 2 + 6 - 4);
  backward(pos.loss!);
  assert.deepEqual([...model.parameters.get('scale')!.grad!.data], [1, 2, -1]);
  model.zeroGrad();
  const x = f64([1, -2, -1], [3], true);
  const neg = model.run({ x });
  assert.equal(neg.loss!.data[0], 2);
  backward(neg.loss!);
  assert.deepEqual([...x.grad!.data], [-1, -1, -1]);
  const g = model.parameters.get('scale')!.grad;
  assert.ok(!g || g.data.every((v) => v === 0), 'the branch not taken gets no gradient');
});

test('nested scopes: an If inside a Loop body reads the body\'s values and the graph\'s; a body input shadows an outer name, a body node may not redefine one', () => {
  // Loop 4 times: acc += (i is odd) ? x * k : x, where k is a graph initializer. The body's accumulator input
  // is named 'x2' like the graph's own x2 = x * x: inside the body 'x2' is the accumulator (the innermost
  // definition), outside it is x * x.
  const odd = (out: string): GraphSpec => ({ nodes: [{ op: 'Mul', inputs: ['x', 'k'], outputs: [out] }, { op: 'Identity', inputs: [out], outputs: ['r'] }], inputs: [], outputs: [{ name: 'r', type: D }] });
  const even: GraphSpec = { nodes: [{ op: 'Identity', inputs: ['x'], outputs: ['r'] }], inputs: [], outputs: [{ name: 'r', type: D }] };
  const body = (oddOut: string): GraphSpec => ({
    nodes: [
      { op: 'Mod', inputs: ['i', 'two'], outputs: ['m'] },
      { op: 'Equal', inputs: ['m', 'one'], outputs: ['is_odd'] },
      { op: 'If', inputs: ['is_odd'], outputs: ['term'], attrs: { then_branch: { graph: odd(oddOut) }, else_branch: { graph: even } } },
      { op: 'Add', inputs: ['x2', 'term'], outputs: ['acc_new'] },
      { op: 'Identity', inputs: ['c'], outputs: ['c_out'] },
    ],
    inputs: [{ name: 'i', type: DataType.INT64, dims: [] }, { name: 'c', type: DataType.BOOL, dims: [] }, { name: 'x2', type: D }],
    outputs: [{ name: 'c_out', type: DataType.BOOL, dims: [] }, { name: 'acc_new', type: D }],
    initializers: [{ name: 'two', type: DataType.INT64, dims: [], values: [2] }, { name: 'one', type: DataType.INT64, dims: [], values: [1] }],
  });
  const spec = (oddOut: string): ModelSpec => ({
    nodes: [
      { op: 'Mul', inputs: ['x', 'x'], outputs: ['x2'] },
      { op: 'Loop', inputs: ['M', '', 'zero'], outputs: ['acc'], attrs: { body: { graph: body(oddOut) } } },
      { op: 'Add', inputs: ['acc', 'x2'], outputs: ['y'] },
    ],
    inputs: [{ name: 'x', type: D, dims: [2] }],
    outputs: [{ name: 'y', type: D }],
    initializers: [{ name: 'M', type: DataType.INT64, dims: [], values: [4] }, { name: 'zero', type: D, dims: [2], values: [0, 0] }, { name: 'k', type: D, dims: [2], values: [10, 100] }],
  });
  const model = loadOnnx(buildModel(spec('xk')));
  assert.ok(model.parameters.has('k'), 'k, read only inside the nested branch, is trainable');
  const run = model.run({ x: f64([1, 2], [2]) }, { loss: 'none' });
  // i = 0..3: x + xk + x + xk = 2x + 2xk; plus the outer x2 = x*x
  assert.deepEqual([...run.value('y').data], [2 + 20 + 1, 4 + 400 + 4]);
  // The inner branch's Mul writing 'x2' would assign a value of an enclosing graph again.
  expectOnnxError(() => loadOnnx(buildModel(spec('x2'))), 'INVALID_MODEL', /node 'Mul_0' \(Mul\) in the then_branch of If node 'Loop_1\/body\/If_2' redefines 'x2'/);
});

test('liveness: a node whose value only a body reads runs; a parameter read only there is trainable', () => {
  const body: GraphSpec = {
    nodes: [
      { op: 'Add', inputs: ['h', 'w2'], outputs: ['h_new'], metadata: { 'pkg.torch.onnx.name_scopes': "['', 'enc', 'add']", 'pkg.torch.onnx.class_hierarchy': "['__main__.Net', '__main__.Enc', 'aten.add.Tensor']" } },
      { op: 'Identity', inputs: ['c'], outputs: ['c_out'] },
    ],
    inputs: [{ name: 'i', type: DataType.INT64, dims: [] }, { name: 'c', type: DataType.BOOL, dims: [] }, { name: 'h', type: D }],
    outputs: [{ name: 'c_out', type: DataType.BOOL, dims: [] }, { name: 'h_new', type: D }],
  };
  const model = loadOnnx(buildModel({
    nodes: [
      { op: 'Mul', inputs: ['w', 'w'], outputs: ['w2'], name: 'square' },
      { op: 'Loop', inputs: ['M', '', 'x'], outputs: ['h'], attrs: { body: { graph: body } } },
      { op: 'ReduceSum', inputs: ['h'], outputs: ['loss'], attrs: { keepdims: 0 } },
    ],
    inputs: [{ name: 'x', type: D, dims: [2] }],
    outputs: [{ name: 'loss', type: D, dims: [] }],
    initializers: [{ name: 'M', type: DataType.INT64, dims: [], values: [3] }, { name: 'w', type: D, dims: [2], values: [0.5, -2] }],
  }));
  assert.ok(model.liveNodes.some((n) => n.name === 'square'));
  // Body nodes name modules and classes (dynamo metadata), though their per-iteration values belong to no module.
  assert.equal(model.modules.get('enc')?.className, '__main__.Enc');
  assert.deepEqual(model.modules.get('enc')?.nodes, []);
  assert.deepEqual([...model.parameters.keys()], ['w']);
  const run = model.run({ x: f64([1, 1], [2]) });
  backward(run.loss!);
  // loss = sum(x + 3 w^2): d/dw = 6 w
  assert.deepEqual([...model.parameters.get('w')!.grad!.data], [3, -12]);
  // The memory estimate's dry run follows the loop too.
  const estimate = model.estimateMemory({ x: f64([1, 1], [2]) });
  assert.ok(estimate.peak > 0 && estimate.activations > 0, JSON.stringify(estimate));
});

function loopModel(body: GraphSpec, inputs: string[], initializers: ModelSpec['initializers'] = []): Uint8Array {
  return buildModel({
    nodes: [{ op: 'Loop', inputs, outputs: ['h'], name: 'the_loop', attrs: { body: { graph: body } } }],
    inputs: [{ name: 'x', type: D, dims: [2] }],
    outputs: [{ name: 'h', type: D }],
    initializers,
  });
}

const passThrough: GraphSpec = {
  nodes: [{ op: 'Identity', inputs: ['c'], outputs: ['c_out'] }, { op: 'Identity', inputs: ['h'], outputs: ['h_new'] }],
  inputs: [{ name: 'i', type: DataType.INT64, dims: [] }, { name: 'c', type: DataType.BOOL, dims: [] }, { name: 'h', type: D }],
  outputs: [{ name: 'c_out', type: DataType.BOOL, dims: [] }, { name: 'h_new', type: D }],
};

test('Loop without a bound: stopped at the iteration cap with UNSUPPORTED_FEATURE naming the node, never a hang', () => {
  // A condition that stays true and no trip count.
  const forever = loadOnnx(loopModel(passThrough, ['', 'yes', 'x'], [{ name: 'yes', type: DataType.BOOL, dims: [], values: [1] }]));
  expectOnnxError(() => forever.run({ x: f64([1, 2], [2]) }, { loss: 'none' }), 'UNSUPPORTED_FEATURE', new RegExp(`node 'the_loop' \\(Loop\\).*still true after ${LOOP_ITERATION_CAP} iterations`));
  // A trip count above the cap without a condition is refused before it starts.
  const huge = loadOnnx(loopModel(passThrough, ['M', '', 'x'], [{ name: 'M', type: DataType.INT64, dims: [], values: [200_000] }]));
  expectOnnxError(() => huge.run({ x: f64([1, 2], [2]) }, { loss: 'none' }), 'UNSUPPORTED_FEATURE', /trip count is \d+, more than the 100000 iterations/);
  // Neither trip count nor condition: refused as well.
  const none = loadOnnx(loopModel(passThrough, ['', '', 'x']));
  expectOnnxError(() => none.run({ x: f64([1, 2], [2]) }, { loss: 'none' }), 'UNSUPPORTED_FEATURE', /neither a trip count nor a condition/);
});

test('bodies: an unsupported op is named with the node that encloses it, at load; zero iterations of an undeclared scan output say so', () => {
  const bad: GraphSpec = { ...passThrough, nodes: [passThrough.nodes[0], { op: 'NonZeroish', inputs: ['h'], outputs: ['h_new'] }] };
  expectOnnxError(() => loadOnnx(loopModel(bad, ['M', '', 'x'], [{ name: 'M', type: DataType.INT64, dims: [], values: [1] }])), 'UNSUPPORTED_OP', /NonZeroish/, /in the body of Loop node 'the_loop'/);
  // Body nodes are validated against the ONNX schemas like top-level ones.
  const mistyped: GraphSpec = { ...passThrough, nodes: [passThrough.nodes[0], { op: 'Softmax', inputs: ['h'], outputs: ['h_new'], attrs: { axis: 0.5 } }] };
  expectOnnxError(() => loadOnnx(loopModel(mistyped, ['M', '', 'x'], [{ name: 'M', type: DataType.INT64, dims: [], values: [1] }])), 'INVALID_MODEL',
    /node 'the_loop\/body\/Softmax_1' \(Softmax\) in module <root> \(in the body of Loop node 'the_loop'\): attribute 'axis' must be an int/);
  const scanOut: GraphSpec = { ...passThrough, nodes: [...passThrough.nodes, { op: 'Identity', inputs: ['h'], outputs: ['y'] }], outputs: [...passThrough.outputs, { name: 'y', type: D, dims: null }] };
  const zero = loadOnnx(buildModel({
    nodes: [{ op: 'Loop', inputs: ['M', '', 'x'], outputs: ['h', 'ys'], name: 'the_loop', attrs: { body: { graph: scanOut } } }],
    inputs: [{ name: 'x', type: D, dims: [2] }], outputs: [{ name: 'ys', type: D }],
    initializers: [{ name: 'M', type: DataType.INT64, dims: [], values: [0] }],
  }));
  expectOnnxError(() => zero.run({ x: f64([1, 2], [2]) }, { loss: 'none' }), 'UNSUPPORTED_FEATURE', /node 'the_loop'.*zero iterations, and the body does not declare the shape of scan output 0 'y'/);
  // With the shape declared, zero iterations give an empty stack.
  const declared: GraphSpec = { ...scanOut, outputs: [...passThrough.outputs, { name: 'y', type: D, dims: [2] }] };
  const empty = loadOnnx(buildModel({
    nodes: [{ op: 'Loop', inputs: ['M', '', 'x'], outputs: ['h', 'ys'], attrs: { body: { graph: declared } } }],
    inputs: [{ name: 'x', type: D, dims: [2] }], outputs: [{ name: 'h', type: D }, { name: 'ys', type: D }],
    initializers: [{ name: 'M', type: DataType.INT64, dims: [], values: [0] }],
  }));
  const r = empty.run({ x: f64([1, 2], [2]) }, { loss: 'none' });
  assert.deepEqual(r.value('ys').shape, [0, 2]);
  assert.deepEqual([...r.value('h').data], [1, 2]);
});

describe('torch 2.13 exports with control flow: loss and gradients match PyTorch', () => {
  // test/gold/export_control_flow.py: torch.cond -> If (dynamo exporter), a scripted loop -> Loop (legacy
  // exporter); PyTorch's float64 loss and gradients from the same float32 weights, two inputs per model.
  const dir = path.join(repoRoot, 'test', 'fixtures', 'onnx');
  const gold = JSON.parse(fs.readFileSync(path.join(dir, 'control_gold.json'), 'utf8')) as Record<string, GraphLossGold[]>;
  for (const [name, cases] of Object.entries(gold)) {
    test(name, () => {
      const model = loadOnnx(new Uint8Array(fs.readFileSync(path.join(dir, `${name}.onnx`))), { dtype: 'float64' });
      assert.ok(model.graph.nodes.some((n) => n.opType === (name.startsWith('cond') ? 'If' : 'Loop')));
      // A parameter of the branch not taken: PyTorch gives it no gradient (or zeros, torch.cond), nor may the engine.
      for (const c of cases) checkGraphLossGold(model, c, { absentMeansNoGradient: true });
    });
  }
});

describe('control flow on a device backend (test/fakeDevice.ts, as under WebGPU)', () => {
  test('a Loop whose body reads device-only values runs on the device and matches the host', async () => {
    const model = loadOnnx(rnnModel(false));
    const host = model.run({ x: f64(X, [2, 3]) }, { loss: 'none', dtype: 'float32' }).value('hs');
    const hs = await deviceScope(async () => {
      const x = Tensor.onDevice(device.device.upload(Float32Array.from(X)), device.device, [2, 3], 'float32');
      const out = onDevice(() => model.run({ x }, { loss: 'none', dtype: 'float32' }).value('hs'));
      assert.equal(out.hasHostData, false, 'the stacked scan output stays on the device');
      await readTensors([out]);
      return Float32Array.from(out.data);
    });
    assert.ok(maxAbsDiff(hs, host.data) < 1e-6);
  });
  test('an If whose condition lives on the device fails naming the If, with TensorOnDeviceError as cause (WebGPU reruns on the host)', async () => {
    const branch = (op: string): GraphSpec => ({ nodes: [{ op, inputs: ['x'], outputs: ['r'] }], inputs: [], outputs: [{ name: 'r', type: DataType.FLOAT }] });
    const model = loadOnnx(buildModel({
      nodes: [{ op: 'If', inputs: ['c'], outputs: ['y'], name: 'choose', attrs: { then_branch: { graph: branch('Neg') }, else_branch: { graph: branch('Abs') } } }],
      inputs: [{ name: 'c', type: DataType.BOOL, dims: [] }, { name: 'x', type: DataType.FLOAT, dims: [2] }],
      outputs: [{ name: 'y', type: DataType.FLOAT }],
    }));
    await deviceScope(async () => {
      const c = Tensor.onDevice(device.device.upload(Float32Array.from([1])), device.device, [], 'bool');
      assert.throws(() => onDevice(() => model.run({ c, x: new Tensor(Float32Array.from([1, -2]), [2]) }, { loss: 'none' })), (e: unknown) => {
        assert.ok(e instanceof OnnxImportError, String(e));
        assert.equal(e.node?.name, 'choose');
        assert.ok(e.cause instanceof TensorOnDeviceError, String(e.cause));
        return true;
      });
    });
  });
});

test('inspection: a parameter of the branch not taken shows no gradient and says why', async () => {
  const dir = path.join(repoRoot, 'test', 'fixtures', 'onnx');
  const gold = JSON.parse(fs.readFileSync(path.join(dir, 'control_gold.json'), 'utf8')) as Record<string, { x: number[]; shape: number[] }[]>;
  const positive = gold.cond_dynamo[0];
  const report = await inspectOnnx(new Uint8Array(fs.readFileSync(path.join(dir, 'cond_dynamo.onnx'))), 'cond_dynamo.onnx', { dtype: 'float64', feeds: { x: f64(positive.x, positive.shape) } });
  const params = new Map(report.modules.flatMap((m) => m.parameters).map((p) => [p.name, p]));
  assert.ok(params.get('a.weight')!.grad!.norm > 0, 'the taken branch (sum(x) > 0: then) has gradients');
  for (const name of ['b.weight', 'b.bias']) {
    const p = params.get(name)!;
    assert.ok(!p.grad || p.grad.norm === 0, `${name}: ${JSON.stringify(p.grad)}`);
    assert.match(p.zeroReason ?? '', /read only inside the else_branch of If node 'node_cond__0': a run that takes the other branch/);
  }
  assert.equal(params.get('a.weight')!.zeroReason, undefined);
});
