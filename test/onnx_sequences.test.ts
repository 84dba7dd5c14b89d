/**
 * SplitToSequence read by SequenceAt (the dynamo exporter's torch.split with optimize=False, GPT-2's
 * query/key/value) gives the same values and gradients as the Split it stands for, at constant positions and at
 * positions known only at run time.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { backward, loadOnnx } from '../engine';
import { buildModel, NodeSpec } from './onnx_builder';

const INT64 = 7;
const X = Array.from({ length: 2 * 3 * 5 }, (_, i) => Math.sin(i + 1));
const W = Array.from({ length: 2 * 3 * 5 }, (_, i) => 0.5 + Math.cos(3 * i));

/** y = x * w, cut into chunks a, b, c by `cut`, then z = [c, b, a] along `axis` (reversed: a wrong chunk shows). */
function model(cut: NodeSpec[], axis: number, extraInputs: { name: string; type: number; dims: number[] }[] = [], initializers: { name: string; type: number; dims: number[]; values: number[] }[] = []) {
  return buildModel({
    opset: 18,
    nodes: [{ op: 'Mul', inputs: ['x', 'w'], outputs: ['y'] }, ...cut, { op: 'Concat', inputs: ['c', 'b', 'a'], outputs: ['z'], attrs: { axis } }],
    inputs: [{ name: 'x', dims: [2, 3, 5] }, ...extraInputs],
    outputs: [{ name: 'z' }],
    initializers: [{ name: 'w', type: 1, dims: [2, 3, 5], values: W }, ...initializers],
  });
}

function run(bytes: Uint8Array, feeds: Record<string, number[]> = {}) {
  const m = loadOnnx(bytes, { dtype: 'float64' });
  const r = m.run({ x: X, ...feeds }, { loss: { kind: 'meanSquare', output: 'z' } });
  backward(r.loss!);
  return { z: Array.from(r.tensorsByName.get('z')!.tensor.data as ArrayLike<number>), shape: r.tensorsByName.get('z')!.tensor.shape, grad: Array.from(m.parameters.get('w')!.grad!.data as ArrayLike<number>) };
}

const at = (k: string, out: string): NodeSpec => ({ op: 'SequenceAt', inputs: ['seq', k], outputs: [out] });
const positions = [
  { name: 'p0', type: INT64, dims: [], values: [0] },
  { name: 'p1', type: INT64, dims: [], values: [1] },
  { name: 'p2', type: INT64, dims: [], values: [2] },
  { name: 'pLast', type: INT64, dims: [], values: [-1] },
];

test('a scalar split size: chunks of 2, 2 and the 1 left, as Split [2, 2, 1] gives them', () => {
  const want = run(model([{ op: 'Split', inputs: ['y', 'sizes'], outputs: ['a', 'b', 'c'], attrs: { axis: 2 } }], 2, [], [{ name: 'sizes', type: INT64, dims: [3], values: [2, 2, 1] }]));
  const got = run(model([
    { op: 'SplitToSequence', inputs: ['y', 'two'], outputs: ['seq'], attrs: { axis: 2 } },
    at('p0', 'a'), at('p1', 'b'), at('p2', 'c'),
  ], 2, [], [{ name: 'two', type: INT64, dims: [], values: [2] }, ...positions]));
  assert.deepEqual(got.shape, [2, 3, 5]);
  assert.deepEqual(got.z, want.z);
  assert.deepEqual(got.grad, want.grad);
});

test('split sizes, a negative position, and a Constant node for the split: as Split [1, 3, 1]', () => {
  const want = run(model([{ op: 'Split', inputs: ['y', 'sizes'], outputs: ['a', 'b', 'c'], attrs: { axis: 2 } }], 2, [], [{ name: 'sizes', type: INT64, dims: [3], values: [1, 3, 1] }]));
  const got = run(model([
    { op: 'Constant', inputs: [], outputs: ['sizes'], attrs: { value_ints: [1, 3, 1] } },
    { op: 'SplitToSequence', inputs: ['y', 'sizes'], outputs: ['seq'], attrs: { axis: 2 } },
    at('p0', 'a'), at('p1', 'b'), at('pLast', 'c'),
  ], 2, [], positions));
  assert.deepEqual(got.z, want.z);
  assert.deepEqual(got.grad, want.grad);
});

test('no split and keepdims=0: chunks of one, the axis squeezed out', () => {
  const squeezed = (name: string, k: number): NodeSpec[] => [
    { op: 'Slice', inputs: ['y', `s${k}`, `e${k}`, 'ax'], outputs: [`${name}1`] },
    { op: 'Squeeze', inputs: [`${name}1`, 'ax'], outputs: [name] },
  ];
  const bounds = [0, 1, 2].flatMap((k) => [{ name: `s${k}`, type: INT64, dims: [1], values: [k] }, { name: `e${k}`, type: INT64, dims: [1], values: [k + 1] }]);
  const want = run(model([...squeezed('a', 0), ...squeezed('b', 1), ...squeezed('c', 2)], 1, [], [...bounds, { name: 'ax', type: INT64, dims: [1], values: [1] }]));
  const got = run(model([
    { op: 'SplitToSequence', inputs: ['y'], outputs: ['seq'], attrs: { axis: 1, keepdims: 0 } },
    at('p0', 'a'), at('p1', 'b'), at('p2', 'c'),
  ], 1, [], positions));
  assert.deepEqual(got.shape, [2, 15]);
  assert.deepEqual(got.z, want.z);
  assert.deepEqual(got.grad, want.grad);
});

test('a position known only at run time: chunk k, as Split gives it, whatever k each run feeds', () => {
  const want = run(model([{ op: 'Split', inputs: ['y', 'sizes'], outputs: ['a', 'b', 'c'], attrs: { axis: 2 } }], 2, [], [{ name: 'sizes', type: INT64, dims: [3], values: [2, 2, 1] }]));
  const bytes = model([
    { op: 'SplitToSequence', inputs: ['y', 'two'], outputs: ['seq'], attrs: { axis: 2 } },
    at('k', 'a'), at('p1', 'b'), at('p2', 'c'),
  ], 2, [{ name: 'k', type: INT64, dims: [] }], [{ name: 'two', type: INT64, dims: [], values: [2] }, ...positions]);
  const got = run(bytes, { k: [0] });
  assert.deepEqual(got.z, want.z);
  assert.deepEqual(got.grad, want.grad);
  // k = 2 picks the last chunk (width 1) as a: z = [c, b, a] is 1 + 2 + 1 wide, where k = 0 gave 1 + 2 + 2.
  assert.deepEqual(run(bytes, { k: [2] }).shape, [2, 3, 4]);
});
