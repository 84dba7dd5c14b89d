/**
 * conv2d, pooling, layer/RMS/batch norm and dropout: VJPs against finite differences (gradcheck),
 * values against naive loops and hand-computed numbers, and the error messages for bad shapes.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../engine';
import { backward, gradcheck, Rng, Tensor, tensorFrom } from '../engine';

function randn(shape: number[], seed: number, { offset = 0, requiresGrad = true } = {}): Tensor {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tensorFrom(Array.from({ length: n }, () => rng.normal() + offset), shape, 'float64', { requiresGrad });
}

const f64 = (values: number[], shape: number[], requiresGrad = false) => tensorFrom(values, shape, 'float64', { requiresGrad });

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol = 1e-12, what = 'values'): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol * Math.max(1, Math.abs(expected[i])), `${what}[${i}]: ${actual[i]} vs ${expected[i]}`);
  }
}

/** Direct-loop conv2d (PyTorch semantics), the value reference for the im2col + matmul version. */
function naiveConv2d(x: Tensor, w: Tensor, b: Tensor | null, s: [number, number], p: [number, number], d: [number, number], groups: number): { data: number[]; shape: number[] } {
  const [N, C, H, W] = x.shape;
  const [O, Cg, KH, KW] = w.shape;
  const OH = Math.floor((H + 2 * p[0] - d[0] * (KH - 1) - 1) / s[0]) + 1;
  const OW = Math.floor((W + 2 * p[1] - d[1] * (KW - 1) - 1) / s[1]) + 1;
  const Og = O / groups;
  const out: number[] = [];
  for (let n = 0; n < N; n++)
    for (let o = 0; o < O; o++)
      for (let oy = 0; oy < OH; oy++)
        for (let ox = 0; ox < OW; ox++) {
          let acc = b ? b.data[o] : 0;
          const g = Math.floor(o / Og);
          for (let cg = 0; cg < Cg; cg++) {
            const c = g * Cg + cg;
            for (let ki = 0; ki < KH; ki++)
              for (let kj = 0; kj < KW; kj++) {
                const iy = oy * s[0] - p[0] + ki * d[0];
                const ix = ox * s[1] - p[1] + kj * d[1];
                if (iy < 0 || iy >= H || ix < 0 || ix >= W) continue;
                acc += x.data[((n * C + c) * H + iy) * W + ix] * w.data[((o * Cg + cg) * KH + ki) * KW + kj];
              }
          }
          out.push(acc);
        }
  return { data: out, shape: [N, O, OH, OW] };
}

type Case = [string, () => E.GradcheckResult];

const gradcheckCases: Case[] = [
  ['conv2d padding 1 with bias', () => gradcheck((x, w, b) => E.conv2d(x, w, b, { padding: 1 }), [randn([1, 2, 4, 4], 1), randn([3, 2, 3, 3], 2), randn([3], 3)])],
  ['conv2d stride 2, dilation 2, padding [1, 2]', () =>
    gradcheck((x, w, b) => E.conv2d(x, w, b, { stride: 2, dilation: 2, padding: [1, 2] }), [randn([1, 2, 7, 6], 4), randn([2, 2, 3, 3], 5), randn([2], 6)])],
  ['conv2d asymmetric stride [2, 1], kernel 2x3', () =>
    gradcheck((x, w) => E.conv2d(x, w, null, { stride: [2, 1], padding: [0, 1] }), [randn([2, 1, 5, 4], 7), randn([2, 1, 2, 3], 8)])],
  ['conv2d groups 2, no bias', () => gradcheck((x, w) => E.conv2d(x, w, null, { groups: 2 }), [randn([1, 4, 4, 4], 9), randn([4, 2, 3, 3], 10)])],
  ['conv2d depthwise, stride 2, dilation 2, padding [2, 1], no bias', () =>
    gradcheck((x, w) => E.conv2d(x, w, null, { groups: 2, stride: 2, dilation: 2, padding: [2, 1] }), [randn([2, 2, 7, 6], 14), randn([2, 1, 3, 3], 15)])],
  ['conv2d depthwise (groups = C), padding 1', () =>
    gradcheck((x, w, b) => E.conv2d(x, w, b, { groups: 3, padding: 1 }), [randn([1, 3, 4, 4], 11), randn([3, 1, 3, 3], 12), randn([3], 13)])],
  ['conv2d depthwise multiplier 2 (O = 2C)', () =>
    gradcheck((x, w) => E.conv2d(x, w, null, { groups: 2 }), [randn([1, 2, 3, 3], 14), randn([4, 1, 2, 2], 15)])],
  ['conv2d 1x1', () => gradcheck((x, w, b) => E.conv2d(x, w, b), [randn([2, 3, 3, 3], 16), randn([2, 3, 1, 1], 17), randn([2], 18)])],
  ['conv2d unbatched [C, H, W]', () => gradcheck((x, w, b) => E.conv2d(x, w, b, { padding: 1 }), [randn([2, 3, 3], 19), randn([2, 2, 3, 3], 20), randn([2], 21)])],
  ['max_pool2d 2x2 stride 2', () => gradcheck((x) => E.maxPool2d(x, { kernel: 2 }), [randn([1, 2, 4, 4], 22)])],
  ['max_pool2d 3x3 stride 2 padding 1', () => gradcheck((x) => E.maxPool2d(x, { kernel: 3, stride: 2, padding: 1 }), [randn([1, 2, 5, 5], 23)])],
  ['max_pool2d overlapping, dilation 2', () => gradcheck((x) => E.maxPool2d(x, { kernel: 2, stride: 1, dilation: 2 }), [randn([1, 1, 5, 5], 24)])],
  ['avg_pool2d 2x2 stride 2', () => gradcheck((x) => E.avgPool2d(x, { kernel: 2 }), [randn([1, 2, 4, 4], 25)])],
  ['avg_pool2d 3x3 stride 2 padding 1, count_include_pad', () =>
    gradcheck((x) => E.avgPool2d(x, { kernel: 3, stride: 2, padding: 1, countIncludePad: true }), [randn([1, 2, 5, 5], 26)])],
  ['avg_pool2d 3x3 stride 2 padding 1, exclude pad', () =>
    gradcheck((x) => E.avgPool2d(x, { kernel: 3, stride: 2, padding: 1, countIncludePad: false }), [randn([1, 2, 5, 5], 27)])],
  ['global_avg_pool', () => gradcheck((x) => E.globalAvgPool(x), [randn([2, 2, 3, 2], 28)])],
  ['layer_norm over the last dim', () => gradcheck((x, w, b) => E.layerNorm(x, 4, w, b), [randn([2, 3, 4], 29), randn([4], 30), randn([4], 31)])],
  ['layer_norm over 2 trailing dims', () => gradcheck((x, w, b) => E.layerNorm(x, [3, 4], w, b, 1e-3), [randn([2, 3, 4], 32), randn([3, 4], 33), randn([3, 4], 34)])],
  ['layer_norm without affine', () => gradcheck((x) => E.layerNorm(x, [5]), [randn([3, 5], 35)])],
  ['rms_norm with weight', () => gradcheck((x, w) => E.rmsNorm(x, [4], w), [randn([2, 3, 4], 36), randn([4], 37)])],
  ['rms_norm over 2 dims, no weight', () => gradcheck((x) => E.rmsNorm(x, [2, 3], null, 1e-4), [randn([2, 2, 3], 38)])],
  ['batch_norm train [N, C, H, W]', () =>
    gradcheck((x, w, b) => E.batchNorm(x, w, b, f64([0, 0], [2]), f64([1, 1], [2]), { training: true }), [randn([3, 2, 2, 2], 39), randn([2], 40), randn([2], 41)])],
  ['batch_norm train [N, C]', () =>
    gradcheck((x, w, b) => E.batchNorm(x, w, b, null, null, { training: true, eps: 1e-3 }), [randn([4, 3], 42), randn([3], 43), randn([3], 44)])],
  ['batch_norm train without affine', () => gradcheck((x) => E.batchNorm(x, null, null, null, null, { training: true }), [randn([3, 2, 3], 45)])],
  ['batch_norm eval [N, C, H, W]', () =>
    gradcheck(
      (x, w, b) => E.batchNorm(x, w, b, f64([0.3, -0.2], [2]), f64([1.5, 0.7], [2]), { training: false }),
      [randn([2, 2, 2, 2], 46), randn([2], 47), randn([2], 48)],
    )],
  ['dropout p = 0.3, fixed seed', () => gradcheck((x) => E.dropout(x, 0.3, { seed: 123 }), [randn([4, 5], 49)])],
  ['composite: conv -> batch_norm -> relu -> max_pool -> global_avg_pool', () =>
    gradcheck(
      (x, w, g, b) => E.globalAvgPool(E.maxPool2d(E.relu(E.batchNorm(E.conv2d(x, w, null, { padding: 1 }), g, b, null, null, { training: true })), { kernel: 2 })),
      [randn([2, 1, 4, 4], 50), randn([2, 1, 3, 3], 51), randn([2], 52, { offset: 1 }), randn([2], 53)],
    )],
];

describe('gradcheck: conv, pooling, norms, dropout', () => {
  for (const [name, run] of gradcheckCases) {
    test(name, () => {
      const result = run();
      assert.ok(result.ok, result.message);
    });
  }
});

describe('conv2d values', () => {
  const configs: { name: string; x: number[]; w: number[]; bias: boolean; s: [number, number]; p: [number, number]; d: [number, number]; g: number }[] = [
    { name: 'padding 1', x: [2, 3, 5, 5], w: [4, 3, 3, 3], bias: true, s: [1, 1], p: [1, 1], d: [1, 1], g: 1 },
    { name: 'stride 2, dilation 2, padding [1, 2]', x: [1, 2, 7, 7], w: [3, 2, 3, 3], bias: true, s: [2, 2], p: [1, 2], d: [2, 2], g: 1 },
    { name: 'groups 2, no bias', x: [1, 4, 5, 5], w: [6, 2, 3, 3], bias: false, s: [1, 1], p: [0, 0], d: [1, 1], g: 2 },
    { name: 'depthwise', x: [2, 4, 4, 4], w: [4, 1, 3, 3], bias: true, s: [1, 1], p: [1, 1], d: [1, 1], g: 4 },
    { name: 'depthwise 5x5, stride 2, dilation 2', x: [2, 3, 9, 8], w: [3, 1, 5, 5], bias: false, s: [2, 2], p: [2, 3], d: [2, 1], g: 3 },
    { name: 'rectangular kernel and stride', x: [1, 2, 6, 5], w: [2, 2, 2, 3], bias: true, s: [2, 1], p: [1, 0], d: [1, 2], g: 1 },
  ];
  for (const c of configs) {
    test(`matches a direct loop: ${c.name}`, () => {
      const x = randn(c.x, 60, { requiresGrad: false });
      const w = randn(c.w, 61, { requiresGrad: false });
      const b = c.bias ? randn([c.w[0]], 62, { requiresGrad: false }) : null;
      const y = E.conv2d(x, w, b, { stride: c.s, padding: c.p, dilation: c.d, groups: c.g });
      const ref = naiveConv2d(x, w, b, c.s, c.p, c.d, c.g);
      assert.deepEqual(y.shape, ref.shape);
      assertClose(y.data, ref.data);
    });
  }

  test('a 1x1 convolution equals a matmul over channels (plus bias)', () => {
    const x = randn([2, 3, 2, 4], 63, { requiresGrad: false });
    const w = randn([5, 3, 1, 1], 64, { requiresGrad: false });
    const b = randn([5], 65, { requiresGrad: false });
    const y = E.conv2d(x, w, b);
    const viaMatmul = E.add(E.matmul(E.reshape(w, [5, 3]), E.reshape(x, [2, 3, 8])), E.reshape(b, [5, 1]));
    assert.deepEqual(y.shape, [2, 5, 2, 4]);
    assertClose(y.data, viaMatmul.data);
  });

  test('a hand-computed 3x3 box filter', () => {
    const x = f64([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
    const w = f64(new Array(9).fill(1), [1, 1, 3, 3]);
    assert.deepEqual(E.conv2d(x, w).toArray(), [45]);
    // With padding 1 each output is the sum of its 3x3 neighbourhood.
    assert.deepEqual(E.conv2d(x, w, f64([1], [1]), { padding: 1 }).toArray(), [13, 22, 17, 28, 46, 34, 25, 40, 29]);
  });

  test('unbatched input gives an unbatched output equal to the batched one', () => {
    const x = randn([2, 4, 4], 66, { requiresGrad: false });
    const w = randn([3, 2, 3, 3], 67, { requiresGrad: false });
    const y = E.conv2d(x, w, null, { padding: 1 });
    assert.deepEqual(y.shape, [3, 4, 4]);
    assertClose(y.data, E.conv2d(E.unsqueeze(x, 0), w, null, { padding: 1 }).data);
  });

  test('float32 in, float32 out, with float32 gradients', () => {
    const x = tensorFrom(randn([1, 2, 3, 3], 68).data, [1, 2, 3, 3], 'float32', { requiresGrad: true });
    const w = tensorFrom(randn([2, 2, 2, 2], 69).data, [2, 2, 2, 2], 'float32', { requiresGrad: true });
    const y = E.conv2d(x, w);
    assert.equal(y.dtype, 'float32');
    backward(E.sum(y));
    assert.ok(x.grad!.data instanceof Float32Array);
    assert.ok(w.grad!.data instanceof Float32Array);
  });

  test('the weight gradient of sum(conv) is the sum of each kernel tap\'s input window', () => {
    const x = f64([1, 2, 3, 4, 5, 6, 7, 8, 9], [1, 1, 3, 3]);
    const w = f64([0, 0, 0, 0], [1, 1, 2, 2], true);
    backward(E.sum(E.conv2d(x, w)));
    assert.deepEqual(w.grad!.toArray(), [1 + 2 + 4 + 5, 2 + 3 + 5 + 6, 4 + 5 + 7 + 8, 5 + 6 + 8 + 9]);
  });
});

describe('pooling values', () => {
  const x = f64([
    1, 5, 2, 0,
    3, 4, 8, 1,
    -1, -2, 6, 7,
    0, 9, -3, 2,
  ], [1, 1, 4, 4], true);

  test('max_pool2d picks each window max and routes the gradient there', () => {
    x.grad = null;
    const y = E.maxPool2d(x, { kernel: 2 });
    assert.deepEqual(y.shape, [1, 1, 2, 2]);
    assert.deepEqual(y.toArray(), [5, 8, 9, 7]);
    backward(y, f64([10, 20, 30, 40], [1, 1, 2, 2]));
    assert.deepEqual(x.grad!.toArray(), [0, 10, 0, 0, 0, 0, 20, 0, 0, 0, 0, 40, 0, 30, 0, 0]);
  });

  test('max_pool2d with overlapping windows accumulates gradients on a shared max', () => {
    const z = f64([0, 0, 0, 0, 9, 0, 0, 0, 0], [1, 1, 3, 3], true);
    const y = E.maxPool2d(z, { kernel: 2, stride: 1 });
    assert.deepEqual(y.toArray(), [9, 9, 9, 9]);
    backward(E.sum(y));
    assert.deepEqual(z.grad!.toArray(), [0, 0, 0, 0, 4, 0, 0, 0, 0]);
  });

  test('max_pool2d pads with -inf, not 0', () => {
    const neg = f64([-1, -2, -3, -4], [1, 1, 2, 2]);
    assert.deepEqual(E.maxPool2d(neg, { kernel: 3, stride: 1, padding: 1 }).toArray(), [-1, -1, -1, -1]);
  });

  test('max_pool2d output sizes floor (ceil_mode false)', () => {
    assert.deepEqual(E.maxPool2d(randn([1, 1, 5, 7], 70, { requiresGrad: false }), { kernel: 2 }).shape, [1, 1, 2, 3]);
    assert.deepEqual(E.maxPool2d(randn([2, 3, 5, 5], 71, { requiresGrad: false }), { kernel: 3, stride: 2, padding: 1 }).shape, [2, 3, 3, 3]);
  });

  test('avg_pool2d averages windows', () => {
    assert.deepEqual(E.avgPool2d(x, { kernel: 2 }).toArray(), [13 / 4, 11 / 4, 6 / 4, 12 / 4]);
  });

  test('avg_pool2d count_include_pad divides by the full window, else by the in-bounds count', () => {
    const ones = E.ones([1, 1, 3, 3], 'float64');
    const incl = E.avgPool2d(ones, { kernel: 3, stride: 1, padding: 1 });
    assertClose(incl.data, [4 / 9, 6 / 9, 4 / 9, 6 / 9, 1, 6 / 9, 4 / 9, 6 / 9, 4 / 9]);
    const excl = E.avgPool2d(ones, { kernel: 3, stride: 1, padding: 1, countIncludePad: false });
    assertClose(excl.data, new Array(9).fill(1));
  });

  test('global_avg_pool keeps [N, C, 1, 1] and averages each plane', () => {
    const y = E.globalAvgPool(x);
    assert.deepEqual(y.shape, [1, 1, 1, 1]);
    assertClose(y.data, [(1 + 5 + 2 + 0 + 3 + 4 + 8 + 1 - 1 - 2 + 6 + 7 + 0 + 9 - 3 + 2) / 16]);
    assert.deepEqual(E.globalAvgPool(randn([2, 3, 4, 5], 72)).shape, [2, 3, 1, 1]);
  });

  test('unbatched [C, H, W] pooling', () => {
    const y = E.maxPool2d(E.reshape(x, [1, 4, 4]), { kernel: 2 });
    assert.deepEqual(y.shape, [1, 2, 2]);
    assert.deepEqual(y.toArray(), [5, 8, 9, 7]);
  });
});

describe('norm values', () => {
  test('layer_norm rows have zero mean and unit (biased) variance, then weight and bias apply', () => {
    const x = randn([3, 6], 80, { requiresGrad: false });
    const y = E.layerNorm(x, [6], null, null, 0);
    for (let r = 0; r < 3; r++) {
      const row = Array.from(y.data.slice(r * 6, r * 6 + 6));
      const m = row.reduce((a, b) => a + b, 0) / 6;
      const v = row.reduce((a, b) => a + (b - m) ** 2, 0) / 6;
      assert.ok(Math.abs(m) < 1e-12 && Math.abs(v - 1) < 1e-12, `row ${r}: mean ${m}, var ${v}`);
    }
    const w = f64([1, 2, 3, 4, 5, 6], [6]);
    const b = f64([0, 0, 0, 1, 1, 1], [6]);
    const ya = E.layerNorm(x, 6, w, b, 0);
    assertClose(ya.data, Array.from(y.data, (v, i) => v * w.data[i % 6] + b.data[i % 6]));
  });

  test('layer_norm by hand: [1, 2, 3] with eps 0', () => {
    const y = E.layerNorm(f64([1, 2, 3], [1, 3]), 3, null, null, 0);
    const s = Math.sqrt(2 / 3);
    assertClose(y.data, [-1 / s, 0, 1 / s]);
  });

  test('layer_norm over two trailing dims normalises each [3, 4] block', () => {
    const x = randn([2, 3, 4], 81, { requiresGrad: false });
    const a = E.layerNorm(x, [3, 4]);
    const b = E.reshape(E.layerNorm(E.reshape(x, [2, 12]), [12]), [2, 3, 4]);
    assertClose(a.data, b.data);
  });

  test('rms_norm by hand: x / sqrt(mean(x^2) + eps) * weight', () => {
    const y = E.rmsNorm(f64([3, 4, 0, 0, 1, -1], [2, 3]), [3], f64([1, 2, 3], [3]), 0);
    const r0 = Math.sqrt(25 / 3);
    const r1 = Math.sqrt(2 / 3);
    assertClose(y.data, [3 / r0, 8 / r0, 0, 0, 2 / r1, -3 / r1]);
  });

  test('batch_norm train: per-channel zero mean and unit variance, running stats updated in place', () => {
    const x = randn([4, 3, 2, 2], 82, { offset: 2 });
    const runningMean = f64([0, 0, 0], [3]);
    const runningVar = f64([1, 1, 1], [3]);
    const meanData = runningMean.data;
    const y = E.batchNorm(x, null, null, runningMean, runningVar, { training: true, momentum: 0.1, eps: 0 });
    assert.deepEqual(y.shape, [4, 3, 2, 2]);
    assert.equal(runningMean.data, meanData, 'running stats are written in place');
    for (let c = 0; c < 3; c++) {
      const xs: number[] = [];
      const ys: number[] = [];
      for (let n = 0; n < 4; n++) for (let i = 0; i < 4; i++) {
        xs.push(x.data[(n * 3 + c) * 4 + i]);
        ys.push(y.data[(n * 3 + c) * 4 + i]);
      }
      const m = (a: number[]) => a.reduce((s, v) => s + v, 0) / a.length;
      const ym = m(ys);
      const yv = m(ys.map((v) => (v - ym) ** 2));
      assert.ok(Math.abs(ym) < 1e-12 && Math.abs(yv - 1) < 1e-12, `channel ${c}: mean ${ym}, var ${yv}`);
      const xm = m(xs);
      const unbiased = xs.reduce((s, v) => s + (v - xm) ** 2, 0) / (xs.length - 1);
      assertClose([runningMean.data[c], runningVar.data[c]], [0.1 * xm, 0.9 + 0.1 * unbiased], 1e-12, `running stats channel ${c}`);
    }
  });

  test('batch_norm train running stats by hand ([N, C] input, momentum 0.5)', () => {
    const x = f64([1, 10, 3, 20], [2, 2]);
    const rm = f64([1, 1], [2]);
    const rv = f64([2, 2], [2]);
    const y = E.batchNorm(x, f64([2, 1], [2]), f64([0, 5], [2]), rm, rv, { training: true, momentum: 0.5, eps: 0 });
    // channel 0: values 1, 3 -> mean 2, biased var 1, unbiased var 2; channel 1: 10, 20 -> mean 15, var 25 / 50.
    assertClose(y.data, [-2, 4, 2, 6]);
    assertClose(rm.data, [0.5 * 1 + 0.5 * 2, 0.5 * 1 + 0.5 * 15]);
    assertClose(rv.data, [0.5 * 2 + 0.5 * 2, 0.5 * 2 + 0.5 * 50]);
  });

  test('batch_norm eval uses the running stats, leaves them unchanged and gives them no gradient', () => {
    const x = f64([1, 2, 3, 4], [2, 2], true);
    const rm = f64([1, -1], [2], true);
    const rv = f64([4, 0.25], [2], true);
    const w = f64([2, 3], [2], true);
    const b = f64([0.5, 0], [2], true);
    const y = E.batchNorm(x, w, b, rm, rv, { training: false, eps: 0 });
    assertClose(y.data, [(1 - 1) / 2 * 2 + 0.5, (2 + 1) / 0.5 * 3, (3 - 1) / 2 * 2 + 0.5, (4 + 1) / 0.5 * 3]);
    assert.deepEqual(rm.toArray(), [1, -1]);
    assert.deepEqual(rv.toArray(), [4, 0.25]);
    backward(E.sum(y));
    assertClose(x.grad!.data, [1, 6, 1, 6]);
    assertClose(w.grad!.data, [0 + 1, 6 + 10]);
    assertClose(b.grad!.data, [2, 2]);
    assert.equal(rm.grad, null);
    assert.equal(rv.grad, null);
  });

  test('batch_norm train without running stats just normalises', () => {
    const y = E.batchNorm(f64([1, 3], [2, 1]), null, null, null, null, { training: true, eps: 0 });
    assertClose(y.data, [-1, 1]);
  });
});

describe('dropout', () => {
  test('the same seed gives the same mask; other seeds give others', () => {
    const x = E.ones([50], 'float64');
    const a = E.dropout(x, 0.5, { seed: 7 });
    const b = E.dropout(x, 0.5, { seed: 7 });
    const c = E.dropout(x, 0.5, { seed: 8 });
    assert.deepEqual(a.toArray(), b.toArray());
    assert.notDeepEqual(a.toArray(), c.toArray());
    assert.deepEqual(E.dropoutMask([50], 0.5, 7).toArray(), E.dropoutMaskOf(a)!.toArray());
  });

  test('kept values are scaled by 1 / (1 - p), dropped ones are 0, and the kept fraction is near 1 - p', () => {
    const x = randn([100, 100], 90, { requiresGrad: false });
    const p = 0.3;
    const y = E.dropout(x, p, { seed: 2024 });
    const mask = E.dropoutMask(x.shape, p, 2024);
    assert.equal(mask.dtype, 'bool');
    let kept = 0;
    for (let i = 0; i < x.size; i++) {
      const expected = mask.data[i] ? x.data[i] / (1 - p) : 0;
      assert.ok(Math.abs(y.data[i] - expected) <= 1e-12, `element ${i}`);
      kept += mask.data[i];
    }
    const fraction = kept / x.size;
    assert.ok(Math.abs(fraction - 0.7) < 0.02, `kept fraction ${fraction}`);
  });

  test('the gradient is g * mask / (1 - p)', () => {
    const x = randn([20], 91);
    const y = E.dropout(x, 0.25, { seed: 5 });
    backward(y, f64(new Array(20).fill(2), [20]));
    const mask = E.dropoutMask([20], 0.25, 5);
    assertClose(x.grad!.data, Array.from(mask.data, (m) => (m ? 2 / 0.75 : 0)));
  });

  test('an Rng advances between calls, so masks differ; reusing its seed replays them', () => {
    const x = E.ones([40], 'float64');
    const rng = new Rng(3);
    const first = E.dropout(x, 0.5, { rng }).toArray();
    const second = E.dropout(x, 0.5, { rng }).toArray();
    assert.notDeepEqual(first, second);
    const replay = new Rng(3);
    assert.deepEqual(E.dropout(x, 0.5, { rng: replay }).toArray(), first);
    assert.deepEqual(E.dropout(x, 0.5, { rng: replay }).toArray(), second);
  });

  test('eval mode and p = 0 return x itself; p = 1 gives zeros and zero gradients', () => {
    const x = randn([3, 4], 92);
    assert.equal(E.dropout(x, 0.5, { training: false, seed: 1 }), x);
    assert.equal(E.dropout(x, 0), x);
    const y = E.dropout(x, 1, { seed: 1 });
    assert.ok(y.toArray().every((v) => v === 0)); // -0 for negative inputs, as x * 0
    backward(E.sum(y));
    assert.deepEqual(x.grad!.toArray(), new Array(12).fill(0));
  });

  test('p outside [0, 1] throws', () => {
    const x = E.ones([2]);
    assert.throws(() => E.dropout(x, 1.5), /dropout: probability has to be between 0 and 1, got 1.5/);
    assert.throws(() => E.dropout(x, -0.1), /dropout: probability/);
    assert.throws(() => E.dropout(x, NaN), /dropout: probability/);
  });
});

describe('errors name the op and the shapes', () => {
  const x = E.zeros([1, 3, 5, 5]);
  test('conv2d', () => {
    assert.throws(() => E.conv2d(x, E.zeros([4, 2, 3, 3])), (e: Error) => e instanceof RangeError && /conv2d: .*\[1, 3, 5, 5\].*\[4, 2, 3, 3\].*3 channels/.test(e.message));
    assert.throws(() => E.conv2d(x, E.zeros([4, 1, 3, 3]), null, { groups: 2 }), /conv2d: groups=2 must divide both the input channels \(3\) and the output channels \(4\) \(input \[1, 3, 5, 5\], weight \[4, 1, 3, 3\]\)/);
    assert.throws(() => E.conv2d(E.zeros([1, 4, 5, 5]), E.zeros([3, 2, 3, 3]), null, { groups: 2 }), /conv2d: groups=2 must divide .* output channels \(3\)/);
    assert.throws(() => E.conv2d(E.zeros([1, 1, 2, 2]), E.zeros([1, 1, 3, 3])), /conv2d: output size would be 0x0 for input \[1, 1, 2, 2\] and weight \[1, 1, 3, 3\]/);
    assert.throws(() => E.conv2d(E.zeros([1, 1, 5, 5]), E.zeros([1, 1, 3, 3]), null, { dilation: 3 }), /conv2d: output size would be -1x-1/);
    assert.throws(() => E.conv2d(x, E.zeros([4, 3, 3, 3]), E.zeros([3])), /conv2d: bias shape \[3\] does not match weight \[4, 3, 3, 3\] \(expected \[4\]\)/);
    assert.throws(() => E.conv2d(E.zeros([3, 5]), E.zeros([4, 3, 3, 3])), /conv2d: expected input \[N, C, H, W\] or \[C, H, W\], got \[3, 5\]/);
    assert.throws(() => E.conv2d(x, E.zeros([4, 3, 3])), /conv2d: expected weight \[O, C\/groups, kh, kw\], got \[4, 3, 3\]/);
    assert.throws(() => E.conv2d(x, E.zeros([4, 3, 3, 3]), null, { stride: 0 }), /conv2d: stride must be integers >= 1, got \[0, 0\]/);
    assert.throws(() => E.conv2d(x, E.zeros([4, 3, 3, 3]), null, { padding: [1, -1] }), /conv2d: padding must be integers >= 0/);
  });

  test('pooling', () => {
    assert.throws(() => E.maxPool2d(x, { kernel: 6 }), /max_pool2d: output size would be 0x0 for input \[1, 3, 5, 5\]/);
    assert.throws(() => E.maxPool2d(x, { kernel: 2, padding: 2 }), /max_pool2d: padding \[2, 2\] must be at most half the kernel \[2, 2\]/);
    assert.throws(() => E.maxPool2d(E.zeros([1, 1, 2, 2]), { kernel: 2, padding: 1, dilation: 3, stride: 1 }), /max_pool2d: some pooling windows lie entirely in the padding for input \[1, 1, 2, 2\]/);
    assert.throws(() => E.avgPool2d(x, { kernel: 2, dilation: 2 }), /avg_pool2d: dilation \[2, 2\] is not supported/);
    assert.throws(() => E.avgPool2d(E.zeros([5, 5]), { kernel: 2 }), /avg_pool2d: expected input \[N, C, H, W\] or \[C, H, W\], got \[5, 5\]/);
    assert.throws(() => E.globalAvgPool(E.zeros([2, 3])), /global_avg_pool: expected input \[N, C, H, W\]/);
  });

  test('norms', () => {
    const h = E.zeros([2, 3, 4]);
    assert.throws(() => E.layerNorm(h, [3]), /layer_norm: normalized_shape \[3\] does not match the trailing dims of input \[2, 3, 4\]/);
    assert.throws(() => E.layerNorm(h, [4], E.zeros([3])), /layer_norm: weight shape \[3\] does not match normalized_shape \[4\]/);
    assert.throws(() => E.layerNorm(h, [3, 4], E.zeros([3, 4]), E.zeros([12])), /layer_norm: bias shape \[12\] does not match normalized_shape \[3, 4\]/);
    assert.throws(() => E.rmsNorm(h, [5]), /rms_norm: normalized_shape \[5\] does not match the trailing dims of input \[2, 3, 4\]/);
    assert.throws(() => E.batchNorm(h, E.zeros([4]), null, null, null, { training: true }), /batch_norm: weight shape \[4\] does not match the 3 channels of input \[2, 3, 4\]/);
    assert.throws(() => E.batchNorm(h, null, null, E.zeros([2]), E.zeros([3]), { training: true }), /batch_norm: running_mean shape \[2\]/);
    assert.throws(() => E.batchNorm(h, null, null, null, null, { training: false }), /batch_norm: running_mean and running_var are required in eval mode/);
    assert.throws(() => E.batchNorm(E.zeros([1, 3]), null, null, null, null, { training: true }), /batch_norm: expected more than 1 value per channel when training, got input \[1, 3\]/);
    assert.throws(() => E.batchNorm(E.zeros([3]), null, null, null, null, { training: true }), /batch_norm: expected input \[N, C\] or \[N, C, \.\.\.\], got \[3\]/);
  });
});
