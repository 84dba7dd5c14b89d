/**
 * ONNX op imports checked directly on small built models (test/onnx_builder.ts): semantics the node suite
 * does not pin down (PyTorch vs ONNX conventions) and gradients of composite imports (gradcheck through
 * the importer in float64).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backward, gradcheck, loadOnnx, referenceBackend, Rng, sum, Tensor, tensorFrom, withBackend } from '../engine';
import { loadWasmBackendNode } from '../engine/backend/wasm/node';
import { buildModel, ModelSpec } from './onnx_builder';
import { checkGraphLossGold, GraphLossGold } from './pytorchGold';
import { repoRoot } from './helpers';

/** These tests' models: opset 23 and IR version 10 unless a spec says otherwise. */
const onnxModel = (spec: ModelSpec) => buildModel({ opset: 23, irVersion: 10, ...spec });
import { relativeError } from './metrics';

const F = 1;
const D = 11;

function randn(shape: number[], seed: number, requiresGrad = true): Tensor {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tensorFrom(Array.from({ length: n }, () => rng.normal()), shape, 'float64', { requiresGrad });
}

/** Runs a built model in float64 on `feeds` and returns its outputs in order. */
function run(spec: ModelSpec, feeds: Record<string, Tensor>): Tensor[] {
  const model = loadOnnx(onnxModel(spec), { dtype: 'float64' });
  const out = model.run(feeds, { loss: 'none' }).outputs;
  return spec.outputs.map((o) => out.get(o.name)!);
}

/** gradcheck of a built model with respect to the listed (float64, requiresGrad) feeds. */
function checkGrad(spec: ModelSpec, feeds: Record<string, Tensor>, outputs = [0]): void {
  const names = Object.keys(feeds);
  const model = loadOnnx(onnxModel(spec), { dtype: 'float64' });
  const r = gradcheck((...xs) => {
    const out = model.run(Object.fromEntries(names.map((n, i) => [n, xs[i]])), { loss: 'none' }).outputs;
    return outputs.map((i) => out.get(spec.outputs[i].name)!);
  }, names.map((n) => feeds[n]));
  assert.ok(r.ok, r.message);
}

describe('BatchNormalization training: running variance', () => {
  const spec = (producer: string): ModelSpec => ({
    producer,
    opset: 15,
    nodes: [{ op: 'BatchNormalization', inputs: ['x', 's', 'b', 'm', 'v'], outputs: ['y', 'rm', 'rv'], attrs: { training_mode: 1, momentum: 0.5 }, floatAttrs: ['momentum'] }],
    inputs: [{ name: 'x', type: F, dims: [4, 2] }],
    outputs: [{ name: 'y', type: F, dims: [4, 2] }, { name: 'rm', type: F, dims: [2] }, { name: 'rv', type: F, dims: [2] }],
    initializers: [
      { name: 's', type: F, dims: [2], values: [1, 1] }, { name: 'b', type: F, dims: [2], values: [0, 0] },
      { name: 'm', type: F, dims: [2], values: [0, 0] }, { name: 'v', type: F, dims: [2], values: [1, 1] },
    ],
  });
  const x = tensorFrom([1, 0, 2, 0, 3, 0, 6, 4], [4, 2], 'float64');
  // channel 0: values 1, 2, 3, 6: mean 3, population variance 3.5, unbiased 14/3
  test('ONNX semantics (population variance) for a non-PyTorch producer', () => {
    const [, rm, rv] = run(spec('backend-test'), { x });
    assert.deepEqual([rm.data[0], rv.data[0]], [1.5, 0.5 * 1 + 0.5 * 3.5]);
  });
  test('PyTorch semantics (unbiased variance) for a PyTorch export', () => {
    const [, , rv] = run(spec('pytorch'), { x });
    assert.ok(Math.abs(rv.data[0] - (0.5 + 0.5 * 14 / 3)) < 1e-12, String(rv.data[0]));
  });
});

describe('elementwise edge cases', () => {
  test('Clip with min > max gives max everywhere (numpy, onnxruntime, torch.clamp)', () => {
    const spec: ModelSpec = {
      nodes: [{ op: 'Clip', inputs: ['x', 'lo', 'hi'], outputs: ['y'] }],
      inputs: [{ name: 'x', type: D, dims: [3] }],
      outputs: [{ name: 'y', type: D, dims: [3] }],
      initializers: [{ name: 'lo', type: D, dims: [], values: [2] }, { name: 'hi', type: D, dims: [], values: [1] }],
    };
    assert.deepEqual(Array.from(run(spec, { x: tensorFrom([-5, 1.5, 7], [3], 'float64') })[0].data), [1, 1, 1]);
  });
  test('LpNormalization of an all-zero slice is 0, and its gradient elsewhere is right', () => {
    const spec: ModelSpec = {
      nodes: [{ op: 'LpNormalization', inputs: ['x'], outputs: ['y'], attrs: { axis: 1, p: 2 } }],
      inputs: [{ name: 'x', type: D, dims: [2, 3] }],
      outputs: [{ name: 'y', type: D, dims: [2, 3] }],
    };
    assert.deepEqual(Array.from(run(spec, { x: tensorFrom([0, 0, 0, 3, 0, 4], [2, 3], 'float64') })[0].data), [0, 0, 0, 0.6, 0, 0.8]);
    checkGrad(spec, { x: randn([2, 3], 1) });
  });
});

test('raw initializer data is read right from a Node Buffer that starts inside a larger pool', () => {
  const spec: ModelSpec = {
    nodes: [{ op: 'Identity', inputs: ['w'], outputs: ['y'] }],
    inputs: [],
    outputs: [{ name: 'y', type: D, dims: [2] }],
    initializers: [{ name: 'w', type: D, dims: [2], values: [0.25, -3] }],
  };
  const bytes = onnxModel(spec);
  const pooled = Buffer.concat([Buffer.alloc(13, 7), Buffer.from(bytes)]).subarray(13);
  assert.ok(Buffer.isBuffer(pooled) && pooled.byteOffset % 8 !== 0);
  const model = loadOnnx(pooled, { dtype: 'float64' });
  assert.deepEqual(Array.from(model.run(undefined, { loss: 'none' }).outputs.get('y')!.data), [0.25, -3]);
});

test('CumSum and CumProd on a long axis match the sequential definition; int inputs stay int', () => {
  const n = 37;
  const values = Array.from({ length: n }, (_, i) => Math.sin(i) + 1.1);
  const spec = (op: string, attrs = {}): ModelSpec => ({
    nodes: [{ op, inputs: ['x', 'axis'], outputs: ['y'], attrs }],
    inputs: [{ name: 'x', type: D, dims: [1, n] }],
    outputs: [{ name: 'y', type: D, dims: [1, n] }],
    initializers: [{ name: 'axis', type: 7, dims: [], values: [1] }],
  });
  const x = tensorFrom(values, [1, n], 'float64');
  let s = 0;
  let p = 1;
  const sums = values.map((v) => (s += v));
  const prods = values.map((v) => (p *= v));
  run(spec('CumSum'), { x })[0].data.forEach((v, i) => assert.ok(Math.abs(v - sums[i]) <= 1e-12 * Math.abs(sums[i]), `sum ${i}`));
  run(spec('CumProd'), { x })[0].data.forEach((v, i) => assert.ok(Math.abs(v - prods[i]) <= 1e-12 * Math.abs(prods[i]), `prod ${i}`));
  const reverseExclusive = run(spec('CumSum', { reverse: 1, exclusive: 1 }), { x })[0].data;
  assert.ok(Math.abs(reverseExclusive[0] - (sums[n - 1] - values[0])) < 1e-12 && reverseExclusive[n - 1] === 0);
  const ids: ModelSpec = {
    nodes: [{ op: 'CumSum', inputs: ['m', 'axis'], outputs: ['y'] }],
    inputs: [{ name: 'm', type: 7, dims: [2, 4] }],
    outputs: [{ name: 'y', type: 7, dims: [2, 4] }],
    initializers: [{ name: 'axis', type: 7, dims: [], values: [1] }],
  };
  const y = run(ids, { m: tensorFrom([1, 1, 1, 0, 0, 1, 1, 1], [2, 4], 'int32') })[0];
  assert.equal(y.dtype, 'int32');
  assert.deepEqual(Array.from(y.data), [1, 2, 3, 3, 0, 1, 2, 3]);
});

describe('Attention (opset 23/24) gradients', () => {
  const spec = (attrs: Record<string, number>, inputs: string[], ranks: { q: number[]; k: number[]; v: number[]; mask?: number[]; past?: number[] }): ModelSpec => ({
    nodes: [{ op: 'Attention', inputs, outputs: ['y'], attrs, floatAttrs: ['softcap', 'scale'] }],
    inputs: [
      { name: 'q', type: D, dims: ranks.q }, { name: 'k', type: D, dims: ranks.k }, { name: 'v', type: D, dims: ranks.v },
      ...(ranks.mask ? [{ name: 'mask', type: D, dims: ranks.mask }] : []),
      ...(ranks.past ? [{ name: 'pk', type: D, dims: null }, { name: 'pv', type: D, dims: null }] : []),
    ],
    outputs: [{ name: 'y', type: D, dims: null }],
  });
  test('4-D, causal, softcap', () => {
    checkGrad(spec({ is_causal: 1, softcap: 2 }, ['q', 'k', 'v'], { q: [1, 2, 3, 4], k: [1, 2, 3, 4], v: [1, 2, 3, 4] }),
      { q: randn([1, 2, 3, 4], 31), k: randn([1, 2, 3, 4], 32), v: randn([1, 2, 3, 4], 33) });
  });
  test('3-D grouped-query heads with a past cache and a trainable float mask', () => {
    checkGrad(spec({ q_num_heads: 4, kv_num_heads: 2, is_causal: 1 }, ['q', 'k', 'v', 'mask', 'pk', 'pv'], { q: [1, 2, 8], k: [1, 2, 4], v: [1, 2, 6], mask: [2, 5], past: [1, 2, 3, 2] }),
      { q: randn([1, 2, 8], 34), k: randn([1, 2, 4], 35), v: randn([1, 2, 6], 36), mask: randn([2, 5], 37), pk: randn([1, 2, 3, 2], 38), pv: randn([1, 2, 3, 3], 39) });
  });
});

describe('Resize gradients (gradcheck through the importer)', () => {
  const spec = (attrs: Record<string, number | string>, dims: number[], scales: number[] | null, sizes: number[] | null): ModelSpec => ({
    opset: 19,
    nodes: [{ op: 'Resize', inputs: ['x', '', scales ? 'scales' : '', sizes ? 'sizes' : ''], outputs: ['y'], attrs, floatAttrs: ['cubic_coeff_a'] }],
    inputs: [{ name: 'x', type: D, dims }],
    outputs: [{ name: 'y', type: D, dims: null }],
    initializers: [
      ...(scales ? [{ name: 'scales', type: F, dims: [scales.length], values: scales }] : []),
      ...(sizes ? [{ name: 'sizes', type: 7, dims: [sizes.length], values: sizes }] : []),
    ],
  });
  test('bilinear upsample (half_pixel, as torch interpolate align_corners=False)', () => {
    checkGrad(spec({ mode: 'linear' }, [1, 2, 3, 3], [1, 1, 2, 1.5], null), { x: randn([1, 2, 3, 3], 41) });
  });
  test('bicubic antialiased downsample by sizes', () => {
    checkGrad(spec({ mode: 'cubic', antialias: 1, cubic_coeff_a: -0.5 }, [1, 1, 6, 5], null, [1, 1, 3, 2]), { x: randn([1, 1, 6, 5], 42) });
  });
  test('nearest: each input gets the sum of the gradients of its copies', () => {
    const model = loadOnnx(onnxModel(spec({ mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' }, [1, 3], [1, 2], null)), { dtype: 'float64' });
    const x = tensorFrom([1, 2, 3], [1, 3], 'float64', { requiresGrad: true });
    const y = model.run({ x }, { loss: 'none' }).outputs.get('y')!;
    assert.deepEqual(Array.from(y.data), [1, 1, 2, 2, 3, 3]);
    checkGrad(spec({ mode: 'nearest', coordinate_transformation_mode: 'asymmetric', nearest_mode: 'floor' }, [1, 3], [1, 2.5], null), { x: randn([1, 3], 43) });
  });
  test('tf_crop_and_resize: extrapolated outputs are the constant and carry no gradient', () => {
    const s: ModelSpec = {
      opset: 19,
      nodes: [{ op: 'Resize', inputs: ['x', 'roi', '', 'sizes'], outputs: ['y'], attrs: { mode: 'linear', coordinate_transformation_mode: 'tf_crop_and_resize', extrapolation_value: 7 }, floatAttrs: ['extrapolation_value'] }],
      inputs: [{ name: 'x', type: D, dims: [1, 4] }],
      outputs: [{ name: 'y', type: D, dims: null }],
      initializers: [{ name: 'roi', type: F, dims: [4], values: [0, -0.5, 1, 1.5] }, { name: 'sizes', type: 7, dims: [2], values: [1, 5] }],
    };
    const [y] = run(s, { x: tensorFrom([0, 10, 20, 30], [1, 4], 'float64') });
    // source coordinates -1.5, 0, 1.5, 3, 4.5 on an axis of 4
    assert.deepEqual(Array.from(y.data), [7, 0, 15, 30, 7]);
    checkGrad(s, { x: randn([1, 4], 44) });
  });
});

describe('models exported by torch 2.13 (both exporters): loss and gradients match PyTorch', () => {
  // test/gold/export_torch_models.py: interp (bilinear, bicubic align_corners, nearest) and video (grouped
  // strided Conv3d, ReLU, ceil-mode MaxPool3d, AvgPool3d without pad counting, ConvTranspose3d); PyTorch's
  // float64 loss and gradients from the same float32 weights.
  const dir = path.join(repoRoot, 'test', 'fixtures', 'onnx');
  for (const name of ['interp', 'video']) {
    const gold = JSON.parse(fs.readFileSync(path.join(dir, `${name}_gold.json`), 'utf8')) as GraphLossGold;
    for (const exporter of ['dynamo', 'legacy']) {
      test(`${name} (${exporter})`, () => {
        checkGraphLossGold(loadOnnx(new Uint8Array(fs.readFileSync(path.join(dir, `${name}_${exporter}.onnx`))), { dtype: 'float64' }), gold);
      });
    }
  }
});

describe('pooling built on 2-D stages: gradients (gradcheck through the importer)', () => {
  const pool = (op: string, attrs: Record<string, number | number[]>, dims: number[]): ModelSpec => ({
    opset: 19,
    nodes: [{ op, inputs: ['x'], outputs: ['y'], attrs }],
    inputs: [{ name: 'x', type: D, dims }],
    outputs: [{ name: 'y', type: D, dims: null }],
  });
  test('AveragePool with dilations, asymmetric pads and ceil mode (depthwise ones-kernel sums / counts)', () => {
    checkGrad(pool('AveragePool', { kernel_shape: [2, 2], dilations: [2, 1], pads: [1, 0, 0, 1], ceil_mode: 1, strides: [2, 2] }, [1, 2, 5, 4]), { x: randn([1, 2, 5, 4], 51) });
  });
  test('3-D LpPool (p = 3) and 3-D AveragePool counting pads', () => {
    checkGrad(pool('LpPool', { kernel_shape: [2, 2, 2], p: 3, strides: [1, 2, 1] }, [1, 1, 3, 4, 3]), { x: randn([1, 1, 3, 4, 3], 52) });
    checkGrad(pool('AveragePool', { kernel_shape: [3, 2, 2], pads: [1, 1, 0, 1, 0, 1], count_include_pad: 1 }, [1, 2, 3, 3, 3]), { x: randn([1, 2, 3, 3, 3], 53) });
  });
});

describe('hyperbolic functions and inverses: gradients, asinh accurate for large negative x', () => {
  const unary = (op: string): ModelSpec => ({
    nodes: [{ op, inputs: ['x'], outputs: ['y'] }],
    inputs: [{ name: 'x', type: D, dims: [6] }],
    outputs: [{ name: 'y', type: D, dims: [6] }],
  });
  test('Sinh, Cosh, Asinh (also at 0), Acosh, Atanh gradcheck', () => {
    const x = tensorFrom([-1.7, -0.4, 0, 0.3, 0.9, 2.2], [6], 'float64', { requiresGrad: true });
    for (const op of ['Sinh', 'Cosh', 'Asinh']) checkGrad(unary(op), { x });
    checkGrad(unary('Acosh'), { x: tensorFrom([1.1, 1.5, 2, 3, 7, 20], [6], 'float64', { requiresGrad: true }) });
    checkGrad(unary('Atanh'), { x: tensorFrom([-0.9, -0.5, 0, 0.2, 0.6, 0.8], [6], 'float64', { requiresGrad: true }) });
  });
  test('Asinh of large negative values in float32 (no cancellation)', () => {
    const model = loadOnnx(onnxModel({ ...unary('Asinh'), inputs: [{ name: 'x', type: F, dims: [6] }], outputs: [{ name: 'y', type: F, dims: [6] }] }));
    const xs = [-1e4, -300, -1, 0, 1, 1e4];
    const y = model.run({ x: tensorFrom(xs, [6], 'float32') }, { loss: 'none' }).outputs.get('y')!;
    xs.forEach((v, i) => assert.ok(Math.abs(y.data[i] - Math.asinh(v)) <= 1e-6 * Math.max(1, Math.abs(Math.asinh(v))), `asinh(${v}) = ${y.data[i]}`));
  });
});

describe('trigonometric functions: gradients on every host backend', () => {
  const unary = (op: string, type = D): ModelSpec => ({
    nodes: [{ op, inputs: ['x'], outputs: ['y'] }],
    inputs: [{ name: 'x', type, dims: [6] }],
    outputs: [{ name: 'y', type, dims: [6] }],
  });
  test('Sin, Cos, Tan, Asin, Acos, Atan gradcheck (float64)', () => {
    const x = tensorFrom([-2.9, -1.2, -0.4, 0, 0.7, 1.4], [6], 'float64', { requiresGrad: true });
    for (const op of ['Sin', 'Cos', 'Tan', 'Atan']) checkGrad(unary(op), { x });
    const inUnit = tensorFrom([-0.95, -0.5, -0.1, 0, 0.4, 0.9], [6], 'float64', { requiresGrad: true });
    for (const op of ['Asin', 'Acos']) checkGrad(unary(op), { x: inUnit });
  });
  test('float32 values and gradients on the wasm kernels match Math (large arguments, |x| near 1)', async () => {
    const wasm = await loadWasmBackendNode();
    const cases: [string, number[], (v: number) => number, (v: number) => number][] = [
      ['Sin', [-1000.5, -3, 0, 1e-4, 2.5, 123.4], Math.sin, Math.cos],
      ['Cos', [-1000.5, -3, 0, 1e-4, 2.5, 123.4], Math.cos, (v) => -Math.sin(v)],
      ['Tan', [-1.5, -0.7, 0, 1e-4, 0.9, 1.55], Math.tan, (v) => 1 + Math.tan(v) ** 2],
      ['Asin', [-0.999, -0.5, 0, 1e-4, 0.9, 0.9999], Math.asin, (v) => 1 / Math.sqrt(1 - v * v)],
      ['Acos', [-0.999, -0.5, 0, 1e-4, 0.9, 0.9999], Math.acos, (v) => -1 / Math.sqrt(1 - v * v)],
      ['Atan', [-1e4, -3, 0, 1e-4, 0.9, 50], Math.atan, (v) => 1 / (1 + v * v)],
    ];
    for (const backend of [referenceBackend, wasm]) {
      withBackend(backend, () => {
        for (const [op, xs, f, df] of cases) {
          const model = loadOnnx(onnxModel(unary(op, F)));
          const x = tensorFrom(xs, [6], 'float32', { requiresGrad: true });
          const y = model.run({ x }, { loss: 'none' }).outputs.get('y')!;
          backward(sum(y));
          xs.forEach((v0, i) => {
            const v = Math.fround(v0);
            assert.ok(Math.abs(y.data[i] - f(v)) <= 2e-7 * Math.max(1, Math.abs(f(v))), `${backend.name} ${op}(${v}) = ${y.data[i]}, want ${f(v)}`);
            assert.ok(Math.abs(x.grad!.data[i] - df(v)) <= 1e-5 * Math.max(1, Math.abs(df(v))), `${backend.name} ${op}'(${v}) = ${x.grad!.data[i]}, want ${df(v)}`);
          });
        }
      });
    }
  });
});

describe('Mod: values exact, gradients as PyTorch remainder (fmod 0) and fmod (fmod 1)', () => {
  const mod = (fmod: number): ModelSpec => ({
    nodes: [{ op: 'Mod', inputs: ['a', 'b'], outputs: ['y'], attrs: { fmod } }],
    inputs: [{ name: 'a', type: D, dims: [6] }, { name: 'b', type: D, dims: [6] }],
    outputs: [{ name: 'y', type: D, dims: [6] }],
  });
  // a / b kept away from integers (the jumps), signs mixed so floor and trunc differ.
  const a = () => tensorFrom([5.3, -5.3, 7.9, -0.4, 2.2, -9.1], [6], 'float64', { requiresGrad: true });
  const b = () => tensorFrom([2.1, 2.1, -3.3, 1.5, -0.7, -2.6], [6], 'float64', { requiresGrad: true });
  test('gradcheck for both inputs', () => {
    for (const fmod of [0, 1]) checkGrad(mod(fmod), { a: a(), b: b() });
  });
  test('values and gradients by hand', () => {
    for (const fmod of [0, 1]) {
      const [ta, tb] = [a(), b()];
      const [y] = run(mod(fmod), { a: ta, b: tb });
      backward(sum(y));
      const q = Array.from(ta.data, (x, i) => (fmod ? Math.trunc(x / tb.data[i]) : Math.floor(x / tb.data[i])));
      Array.from(ta.data).forEach((x, i) => {
        const v = tb.data[i];
        assert.equal(y.data[i], fmod ? x % v : x - Math.floor(x / v) * v);
        assert.equal(ta.grad!.data[i], 1);
        assert.equal(tb.grad!.data[i], -q[i]);
      });
    }
  });
});

describe('LRN, DepthToSpace, SpaceToDepth: gradients', () => {
  const one = (op: string, attrs: Record<string, number | string>, dims: number[]): ModelSpec => ({
    nodes: [{ op, inputs: ['x'], outputs: ['y'], attrs, floatAttrs: ['alpha', 'beta', 'bias'] }],
    inputs: [{ name: 'x', type: D, dims }],
    outputs: [{ name: 'y', type: D, dims: null }],
  });
  test('LRN with an even window (ONNX puts the extra channel after c)', () => {
    checkGrad(one('LRN', { size: 4, alpha: 0.3, beta: 0.75, bias: 2 }, [1, 5, 2, 2]), { x: randn([1, 5, 2, 2], 61) });
    const [y] = run(one('LRN', { size: 2, alpha: 2, beta: 1, bias: 1 }, [1, 3, 1, 1]), { x: tensorFrom([1, 2, 3], [1, 3, 1, 1], 'float64') });
    // windows {c, c+1}: sums 1+4, 4+9, 9 -> y = x / (1 + (2/2) * sum)
    assert.deepEqual(Array.from(y.data), [1 / 6, 2 / 14, 3 / 10]);
  });
  test('DepthToSpace (DCR and CRD) and SpaceToDepth', () => {
    checkGrad(one('DepthToSpace', { blocksize: 2, mode: 'CRD' }, [1, 8, 2, 3]), { x: randn([1, 8, 2, 3], 62) });
    const x = tensorFrom(Array.from({ length: 16 }, (_, i) => i), [1, 4, 2, 2], 'float64');
    const [y] = run(one('DepthToSpace', { blocksize: 2 }, [1, 4, 2, 2]), { x });
    assert.deepEqual(Array.from(y.data), [0, 4, 1, 5, 8, 12, 9, 13, 2, 6, 3, 7, 10, 14, 11, 15]);
    const [back] = run(one('SpaceToDepth', { blocksize: 2 }, [1, 1, 4, 4]), { x: tensorFrom(Array.from(y.data), [1, 1, 4, 4], 'float64') });
    assert.deepEqual(Array.from(back.data), Array.from(x.data));
  });
});

test('MaxPool Indices: flat indices over N and C, row- or column-major, first maximum on ties', () => {
  const spec = (order: number): ModelSpec => ({
    opset: 12,
    nodes: [{ op: 'MaxPool', inputs: ['x'], outputs: ['y', 'i'], attrs: { kernel_shape: [2, 2], pads: [0, 1, 0, 0], storage_order: order } }],
    inputs: [{ name: 'x', type: D, dims: [1, 2, 2, 3] }],
    outputs: [{ name: 'y', type: D, dims: null }, { name: 'i', type: 7, dims: null }],
  });
  // channel 0: [[1, 5, 2], [5, 0, 3]]; channel 1: [[0, 0, 0], [0, 0, 9]]; windows start at w = -1, 0, 1
  const x = tensorFrom([1, 5, 2, 5, 0, 3, 0, 0, 0, 0, 0, 9], [1, 2, 2, 3], 'float64');
  const [y, rowMajor] = run(spec(0), { x });
  assert.deepEqual(Array.from(y.data), [5, 5, 5, 0, 0, 9]);
  assert.deepEqual(Array.from(rowMajor.data), [3, 1, 1, 6, 6, 11]);
  const [, colMajor] = run(spec(1), { x });
  assert.deepEqual(Array.from(colMajor.data), [1, 2, 2, 6, 6, 11]);
});

describe('Cast narrows onto the target type', () => {
  const cast = (to: number, type = F, attrs: Record<string, number> = {}): ModelSpec => ({
    opset: 21,
    nodes: [{ op: 'Cast', inputs: ['x'], outputs: ['y'], attrs: { to, ...attrs } }],
    inputs: [{ name: 'x', type, dims: [6] }],
    outputs: [{ name: 'y', type: to, dims: [6] }],
  });
  const values = (spec: ModelSpec, xs: number[], dtype: 'float32' | 'int32' = 'float32') =>
    Array.from(loadOnnx(onnxModel(spec)).run({ x: tensorFrom(xs, [6], dtype) }, { loss: 'none' }).outputs.get('y')!.data);
  test('float16 and bfloat16: round to nearest even, overflow to inf', () => {
    assert.deepEqual(values(cast(10), [65519, 65520, 1 + 2 ** -11, 1 + 3 * 2 ** -11, 2 ** -25, -0.1]), [65504, Infinity, 1, 1 + 2 ** -9, 0, Math.fround(-0.0999755859375)]);
    assert.deepEqual(values(cast(16), [1 + 2 ** -8, 1 + 3 * 2 ** -8, 3.4e38, 1e-40, -300.5, 0.1]), [1, 1 + 2 ** -6, Infinity, Math.fround(1e-40 - (1e-40 % 2 ** -133)), -300, Math.fround(0.10009765625)]);
  });
  test('float8 e4m3fn: saturate (default) or NaN; fnuz has no negative zero', () => {
    // smallest subnormal 2^-9: 0.75 * 2^-9 rounds up to it, 2^-10 (a tie) to the even 0; 464 (a tie) to 448
    assert.deepEqual(values(cast(17), [464, 500, -Infinity, 0.75 * 2 ** -9, 2 ** -10, 3.3]), [448, 448, -448, 2 ** -9, 0, 3.25]);
    assert.ok(values(cast(17, F, { saturate: 0 }), [500, 1, 1, 1, 1, 1]).slice(0, 1).every(Number.isNaN));
    assert.ok(Object.is(values(cast(18), [-0, -1e-9, 1, 1, 1, 1])[0], 0) && Object.is(values(cast(18), [-0, -1e-9, 1, 1, 1, 1])[1], 0));
  });
  test('to narrow ints: truncate, then wrap (two\'s complement), as numpy astype', () => {
    assert.deepEqual(values(cast(2), [-3, -3.7, 255, 256, 300, 1.9]), [253, 253, 255, 0, 44, 1]);
    assert.deepEqual(values(cast(22), [-9, 8, 7, -8, 15, 16]), [7, -8, 7, -8, -1, 0]);
    assert.deepEqual(values(cast(2, 6), [-1, 256, 257, 0, 1, -256], 'int32'), [255, 0, 1, 0, 1, 0]);
  });
  test('the gradient of a float cast passes straight through (finite values)', () => {
    const model = loadOnnx(onnxModel(cast(10)));
    const x = tensorFrom([0.1, 1e5, -2.3, 0.5, 7, 1e-8], [6], 'float32', { requiresGrad: true });
    const y = model.run({ x }, { loss: 'none' }).outputs.get('y')!;
    backward(sum(y));
    assert.deepEqual(Array.from(x.grad!.data), [1, 0, 1, 1, 1, 1]);
  });
});

describe('Einsum and TopK', () => {
  const einsumSpec = (equation: string, dims: number[][]): ModelSpec => ({
    opset: 12,
    nodes: [{ op: 'Einsum', inputs: dims.map((_, i) => `x${i}`), outputs: ['y'], attrs: { equation } }],
    inputs: dims.map((d, i) => ({ name: `x${i}`, type: D, dims: d })),
    outputs: [{ name: 'y', type: D, dims: null }],
  });
  /** The definition: out[o] = sum over every other label of the product of the operands. */
  function naive(labels: string[], out: string, xs: Tensor[]): number[] {
    const size = new Map<string, number>();
    labels.forEach((ls, i) => [...ls].forEach((l, d) => size.set(l, xs[i].shape[d])));
    const all = [...size.keys()];
    const outSize = [...out].reduce((p, l) => p * size.get(l)!, 1);
    const res = new Array<number>(outSize).fill(0);
    const total = all.reduce((p, l) => p * size.get(l)!, 1);
    for (let c = 0; c < total; c++) {
      const val = new Map<string, number>();
      let r = c;
      for (const l of [...all].reverse()) { val.set(l, r % size.get(l)!); r = Math.floor(r / size.get(l)!); }
      const flat = (ls: string, shape: readonly number[]) => [...ls].reduce((off, l, d) => off * shape[d] + val.get(l)!, 0);
      let prod = 1;
      labels.forEach((ls, i) => { prod *= xs[i].data[flat(ls, xs[i].shape)]; });
      res[flat(out, [...out].map((l) => size.get(l)!))] += prod;
    }
    return res;
  }
  const cases: [string, string[], string, number[][]][] = [
    ['bhqd,bhkd->bhqk', ['bhqd', 'bhkd'], 'bhqk', [[2, 2, 3, 4], [2, 2, 5, 4]]],
    ['ij,jk,kl->il', ['ij', 'jk', 'kl'], 'il', [[2, 3], [3, 4], [4, 2]]],
    ['bii,bj->bij', ['bii', 'bj'], 'bij', [[2, 3, 3], [2, 4]]],
    ['ik,jk', ['ik', 'jk'], 'ij', [[3, 4], [2, 4]]],
    ['i,j->', ['i', 'j'], '', [[3], [4]]],
  ];
  for (const [eq, labels, out, dims] of cases) {
    test(`${eq}: values as the definition, gradients by gradcheck`, () => {
      const feeds = Object.fromEntries(dims.map((d, i) => [`x${i}`, randn(d, 70 + i)]));
      const [y] = run(einsumSpec(eq, dims), feeds);
      const want = naive(labels, out, dims.map((_, i) => feeds[`x${i}`]));
      assert.ok(relativeError(y.data, want) < 1e-12, `${eq}: ${Array.from(y.data)} vs ${want}`);
      checkGrad(einsumSpec(eq, dims), feeds);
    });
  }
  test('TopK: values carry gradients to the picked elements; ties keep the lower index', () => {
    const spec: ModelSpec = {
      opset: 11,
      nodes: [{ op: 'TopK', inputs: ['x', 'k'], outputs: ['v', 'i'], attrs: { axis: 0, largest: 0 } }],
      inputs: [{ name: 'x', type: D, dims: [4, 2] }],
      outputs: [{ name: 'v', type: D, dims: null }, { name: 'i', type: 7, dims: null }],
      initializers: [{ name: 'k', type: 7, dims: [1], values: [2] }],
    };
    const [v, i] = run(spec, { x: tensorFrom([3, 1, 1, 5, 2, 1, 1, 0], [4, 2], 'float64') });
    assert.deepEqual(Array.from(v.data), [1, 0, 1, 1]);
    assert.deepEqual(Array.from(i.data), [1, 3, 3, 0]);
    checkGrad(spec, { x: randn([4, 2], 80) });
  });
});

test('RotaryEmbedding gradients (input and caches; interleaved, partial rotary dim, position ids)', () => {
  const spec = (interleaved: number): ModelSpec => ({
    opset: 23,
    nodes: [{ op: 'RotaryEmbedding', inputs: ['x', 'cos', 'sin', 'pos'], outputs: ['y'], attrs: { interleaved, rotary_embedding_dim: 4, num_heads: 2 } }],
    inputs: [{ name: 'x', type: D, dims: [1, 3, 12] }, { name: 'cos', type: D, dims: [5, 2] }, { name: 'sin', type: D, dims: [5, 2] }],
    outputs: [{ name: 'y', type: D, dims: null }],
    initializers: [{ name: 'pos', type: 7, dims: [1, 3], values: [4, 0, 2] }],
  });
  for (const interleaved of [0, 1]) checkGrad(spec(interleaved), { x: randn([1, 3, 12], 90), cos: randn([5, 2], 91), sin: randn([5, 2], 92) });
});
