/**
 * float64 runs compute the model a float32 export describes: a float path that only makes an integer (T5's
 * relative-position bucket, Cast<int64>(log(n / 4) / log(16 / 4) * 4)) is computed in float32, as PyTorch does
 * even in a float64 model; everything else in float64.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { loadOnnx } from '../engine';
import { buildModel, ModelSpec } from './onnx_builder';

/** Opset 23 and IR version 10, as this test's models were written for. */
const onnxModel = (spec: ModelSpec) => buildModel({ opset: 23, irVersion: 10, ...spec });

const FLOAT = 1;
const INT64 = 7;
/** The bucket formula of T5's decoder (8 buckets, max distance 16) for distances n, with `log` also an output when asked. */
function bucketModel(logIsOutput: boolean): Uint8Array {
  return onnxModel({
    nodes: [
      { op: 'Cast', inputs: ['n'], outputs: ['nf'], attrs: { to: FLOAT } },
      { op: 'Div', inputs: ['nf', 'exact'], outputs: ['ratio'] },
      { op: 'Log', inputs: ['ratio'], outputs: ['log'] },
      { op: 'Div', inputs: ['log', 'logRange'], outputs: ['scaled'] },
      { op: 'Mul', inputs: ['scaled', 'span'], outputs: ['large'] },
      { op: 'Cast', inputs: ['large'], outputs: ['bucket'], attrs: { to: INT64 } },
      // A float output beside it: computed in float64.
      { op: 'Mul', inputs: ['x', 'w'], outputs: ['y'] },
    ],
    inputs: [{ name: 'n', type: INT64, dims: [8] }, { name: 'x', type: FLOAT, dims: [3] }],
    outputs: [{ name: 'bucket', type: INT64, dims: [8] }, { name: 'y', type: FLOAT, dims: [3] }, ...(logIsOutput ? [{ name: 'log', type: FLOAT, dims: [8] }] : [])],
    initializers: [
      { name: 'exact', type: FLOAT, dims: [], values: [4] },
      // math.log(16 / 4), stored in float32 by the exporter.
      { name: 'logRange', type: FLOAT, dims: [], values: [Math.log(4)] },
      { name: 'span', type: FLOAT, dims: [], values: [4] },
      { name: 'w', type: FLOAT, dims: [3], values: [0.1, 0.2, 0.3] },
    ],
  });
}

const distances = [4, 5, 6, 7, 8, 9, 12, 15];
/** PyTorch's float32 buckets: 4 + log(n/4) / f32(log 4) * 4 computed in float32 (distance 8 is exactly 6). */
const float32Buckets = distances.map((n) => {
  const f = Math.fround;
  return Math.trunc(f(f(f(Math.log(f(n / 4))) / f(Math.log(4))) * 4));
});

function run(bytes: Uint8Array, dtype: 'float32' | 'float64') {
  const model = loadOnnx(bytes, { dtype });
  const r = model.run({ n: distances, x: [3, 3, 3] }, { loss: { kind: 'meanSquare', output: 'y' } });
  const value = (name: string) => Array.from(r.tensorsByName.get(name)!.tensor.data as ArrayLike<number>);
  return { bucket: value('bucket'), log: value('log'), y: value('y') };
}

test('float64 run: the bucket path is computed in float32 (distance 8 lands in bucket 2, not 1)', () => {
  assert.equal(float32Buckets[distances.indexOf(8)], 2);
  for (const dtype of ['float32', 'float64'] as const) assert.deepEqual(run(bucketModel(false), dtype).bucket, float32Buckets, dtype);
  // The float output is still float64: the double product of the float32 weight, not rounded to float32.
  const y = run(bucketModel(false), 'float64').y;
  assert.equal(y[0], Math.fround(0.1) * 3);
  assert.notEqual(y[0], Math.fround(Math.fround(0.1) * 3));
});

test('a value that is also used as a float (here a graph output) keeps float64', () => {
  const { log } = run(bucketModel(true), 'float64');
  assert.ok(log.some((v) => v !== Math.fround(v)), 'log(n/4) is computed in float64');
  assert.equal(log[distances.indexOf(8)], Math.log(2));
});

/** x -> LayerNormalization(eps) and LeakyRelu(alpha) outputs, run in `dtype`. */
function attributeRun(dtype: 'float32' | 'float64') {
  const bytes = onnxModel({
    nodes: [
      { op: 'LayerNormalization', inputs: ['x', 'scale'], outputs: ['ln'], attrs: { axis: -1, epsilon: 1e-5 } },
      { op: 'LeakyRelu', inputs: ['x'], outputs: ['leaky'], attrs: { alpha: 0.01 } },
    ],
    inputs: [{ name: 'x', type: FLOAT, dims: [4] }],
    outputs: [{ name: 'ln', type: FLOAT, dims: [4] }, { name: 'leaky', type: FLOAT, dims: [4] }],
    initializers: [{ name: 'scale', type: FLOAT, dims: [4], values: [1, 1, 1, 1] }],
  });
  const r = loadOnnx(bytes, { dtype }).run({ x: [0, 1e-3, -2e-3, -3] }, { loss: 'none' });
  const value = (name: string) => Array.from(r.tensorsByName.get(name)!.tensor.data as ArrayLike<number>);
  return { ln: value('ln'), leaky: value('leaky') };
}

test('float64 run: float attributes are the decimals PyTorch had (eps 1e-5, alpha 0.01), not their float32 roundings', () => {
  // The file holds float32 attributes: 1e-5 is stored as 9.99999974737875e-6, 0.01 as 0.009999999776482582.
  assert.notEqual(Math.fround(1e-5), 1e-5);
  const x = [0, 1e-3, -2e-3, -3];
  const mean = x.reduce((s, v) => s + v, 0) / 4;
  const variance = x.reduce((s, v) => s + (v - mean) ** 2, 0) / 4;
  const normalized = (eps: number) => x.map((v) => (v - mean) / Math.sqrt(variance + eps));
  const { ln, leaky } = attributeRun('float64');
  ln.forEach((v, i) => assert.ok(Math.abs(v - normalized(1e-5)[i]) <= 1e-15 * Math.abs(normalized(1e-5)[i]) + 1e-16, `ln[${i}] ${v}`));
  assert.equal(leaky[3], -3 * 0.01);
  assert.notEqual(leaky[3], -3 * Math.fround(0.01));
  // float32 runs keep the ONNX (float32) values.
  assert.equal(attributeRun('float32').leaky[3], Math.fround(-3 * Math.fround(0.01)));
});
