/**
 * Spectral ops (engine/onnx/ops/spectral.ts) on built models: DFT against the direct formula (every form the
 * node suite leaves out: complex input on another axis, zero-padding, truncation, odd lengths), round trips,
 * gradients through DFT and STFT (gradcheck in float64), the window generators' edge cases, clear errors,
 * the same values on the WebAssembly kernels, and a torch 2.13 export's loss and gradients against PyTorch.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backward, gradcheck, loadOnnx, referenceBackend, Rng, sum, Tensor, tensorFrom, withBackend } from '../engine';
import { loadWasmBackendNode } from '../engine/backend/wasm/node';
import { buildModel, ModelSpec } from './onnx_builder';
import { checkGraphLossGold, expectOnnxError, GraphLossGold } from './pytorchGold';
import { repoRoot } from './helpers';

const F = 1;
const D = 11;
const I64 = 7;

function randn(shape: number[], seed: number, requiresGrad = true): Tensor {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tensorFrom(Array.from({ length: n }, () => rng.normal()), shape, 'float64', { requiresGrad });
}

interface DftAttrs { inverse?: number; onesided?: number }

/** An opset-20 DFT of x (dims) along `axis`, with an optional dft_length. */
function dftSpec(dims: number[], axis: number, attrs: DftAttrs = {}, length: number | null = null, type = D): ModelSpec {
  return {
    opset: 20,
    nodes: [{ op: 'DFT', inputs: ['x', length === null ? '' : 'len', 'axis'], outputs: ['y'], attrs: { ...attrs } }],
    inputs: [{ name: 'x', type, dims }],
    outputs: [{ name: 'y', type, dims: null }],
    initializers: [
      { name: 'axis', type: I64, dims: [], values: [axis] },
      ...(length === null ? [] : [{ name: 'len', type: I64, dims: [], values: [length] }]),
    ],
  };
}

function run(spec: ModelSpec, feeds: Record<string, Tensor>, dtype: 'float32' | 'float64' = 'float64'): Tensor {
  const model = loadOnnx(buildModel(spec), { dtype });
  return model.run(feeds, { loss: 'none' }).outputs.get(spec.outputs[0].name)!;
}

function checkGrad(spec: ModelSpec, feeds: Record<string, Tensor>): void {
  const names = Object.keys(feeds);
  const model = loadOnnx(buildModel(spec), { dtype: 'float64' });
  const r = gradcheck((...xs) => model.run(Object.fromEntries(names.map((n, i) => [n, xs[i]])), { loss: 'none' }).outputs.get(spec.outputs[0].name)!, names.map((n) => feeds[n]));
  assert.ok(r.ok, r.message);
}

/**
 * The direct formula, written independently of the basis: X_k = Σ_t x_t e^{∓2πikt/L} (/L when inverse) over a
 * [rows, n, c] signal zero-padded or truncated to L, for bins 0..bins-1. Returns [rows, bins, 2].
 */
function direct(x: ArrayLike<number>, rows: number, n: number, c: number, L: number, bins: number, inverse: boolean): number[] {
  const out: number[] = [];
  for (let r = 0; r < rows; r++) {
    for (let k = 0; k < bins; k++) {
      let re = 0;
      let im = 0;
      for (let t = 0; t < Math.min(n, L); t++) {
        const a = x[(r * n + t) * c];
        const b = c === 2 ? x[(r * n + t) * c + 1] : 0;
        const th = (2 * Math.PI * k * t) / L * (inverse ? 1 : -1);
        re += a * Math.cos(th) - b * Math.sin(th);
        im += a * Math.sin(th) + b * Math.cos(th);
      }
      out.push(inverse ? re / L : re, inverse ? im / L : im);
    }
  }
  return out;
}

function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    assert.ok(Math.abs(actual[i] - expected[i]) <= tol * Math.max(1, Math.abs(expected[i])), `${what}: element ${i}: ${actual[i]} vs ${expected[i]}`);
  }
}

describe('DFT against the direct formula (float64)', () => {
  const cases: [string, number, number, number, DftAttrs][] = [
    // name, n, c, L, attrs
    ['real input, full spectrum', 7, 1, 7, {}],
    ['complex input, zero-padded to 12', 5, 2, 12, {}],
    ['complex input, truncated to 4', 9, 2, 4, {}],
    ['real input, onesided, odd length 9', 9, 1, 9, { onesided: 1 }],
    ['complex inverse, padded to 8', 6, 2, 8, { inverse: 1 }],
  ];
  for (const [name, n, c, L, attrs] of cases) {
    test(name, () => {
      const x = randn([3, n, c], n * 10 + c, false);
      const y = run(dftSpec([3, n, c], -2, attrs, L === n ? null : L), { x });
      const bins = attrs.onesided ? Math.floor(L / 2) + 1 : L;
      assert.deepEqual(y.shape, [3, bins, 2]);
      assertClose(y.data, direct(x.data, 3, n, c, L, bins, !!attrs.inverse), 1e-12, name);
    });
  }
  test('along a middle axis, with opset 17\'s axis attribute: each column transforms alone', () => {
    const x = randn([2, 5, 3, 2], 71, false);
    const spec: ModelSpec = { opset: 17, nodes: [{ op: 'DFT', inputs: ['x'], outputs: ['y'], attrs: { axis: 1 } }], inputs: [{ name: 'x', type: D, dims: [2, 5, 3, 2] }], outputs: [{ name: 'y', type: D, dims: null }] };
    const y = run(spec, { x });
    assert.deepEqual(y.shape, [2, 5, 3, 2]);
    for (let b = 0; b < 2; b++) {
      for (let j = 0; j < 3; j++) {
        const col: number[] = [];
        for (let t = 0; t < 5; t++) col.push(x.data[((b * 5 + t) * 3 + j) * 2], x.data[((b * 5 + t) * 3 + j) * 2 + 1]);
        const want = direct(col, 1, 5, 2, 5, 5, false);
        for (let k = 0; k < 5; k++) {
          for (let p = 0; p < 2; p++) assert.ok(Math.abs(y.data[((b * 5 + k) * 3 + j) * 2 + p] - want[k * 2 + p]) < 1e-12, `b${b} j${j} k${k}`);
        }
      }
    }
  });
  test('an impulse transforms to all ones', () => {
    const x = tensorFrom([1, 0, 0, 0, 0, 0], [1, 6, 1], 'float64');
    const y = run(dftSpec([1, 6, 1], 1), { x });
    assertClose(y.data, [1, 0, 1, 0, 1, 0, 1, 0, 1, 0, 1, 0], 1e-15, 'impulse');
  });
});

describe('DFT round trips', () => {
  test('inverse of the full transform gives the complex signal back', () => {
    const x = randn([2, 8, 2], 3, false);
    const X = run(dftSpec([2, 8, 2], 1), { x });
    const back = run(dftSpec([2, 8, 2], 1, { inverse: 1 }), { x: X });
    assertClose(back.data, x.data, 1e-12, 'ifft(fft(x))');
  });
  for (const L of [8, 9]) {
    test(`irfft (inverse + onesided) of the onesided transform gives the real signal back (length ${L})`, () => {
      const x = randn([2, L, 1], L, false);
      const X = run(dftSpec([2, L, 1], 1, { onesided: 1 }), { x });
      assert.deepEqual(X.shape, [2, Math.floor(L / 2) + 1, 2]);
      // Without dft_length irfft assumes an even length 2(m-1); an odd signal needs it given.
      const back = run(dftSpec(X.shape as number[], 1, { inverse: 1, onesided: 1 }, L % 2 ? L : null), { x: X });
      assert.deepEqual(back.shape, [2, L, 1]);
      assertClose(back.data, x.data, 1e-12, 'irfft(rfft(x))');
    });
  }
});

describe('DFT and STFT gradients (gradcheck through the importer, float64)', () => {
  test('onesided forward, zero-padded', () => {
    checkGrad(dftSpec([2, 5, 1], 1, { onesided: 1 }, 8), { x: randn([2, 5, 1], 11) });
  });
  test('inverse of a complex signal along axis 0', () => {
    checkGrad(dftSpec([4, 3, 2], 0, { inverse: 1 }), { x: randn([4, 3, 2], 12) });
  });
  test('irfft, truncating the spectrum', () => {
    checkGrad(dftSpec([1, 6, 2], 1, { inverse: 1, onesided: 1 }, 6), { x: randn([1, 6, 2], 13) });
  });
  test('STFT with a window: gradients reach the signal (overlapping frames add up) and the window', () => {
    const spec: ModelSpec = {
      opset: 17,
      nodes: [{ op: 'STFT', inputs: ['x', 'step', 'w'], outputs: ['y'] }],
      inputs: [{ name: 'x', type: D, dims: [2, 12, 1] }, { name: 'w', type: D, dims: [6] }],
      outputs: [{ name: 'y', type: D, dims: null }],
      initializers: [{ name: 'step', type: I64, dims: [], values: [3] }],
    };
    const x = randn([2, 12, 1], 14);
    const w = randn([6], 15);
    const y = run(spec, { x, w });
    assert.deepEqual(y.shape, [2, 3, 4, 2]);
    // frame 1 of batch 0 is samples 3..8 windowed, then a onesided 6-point DFT
    const frame = Array.from({ length: 6 }, (_, t) => x.data[3 + t] * w.data[t]);
    assertClose(Array.from(y.data.slice(8, 16)), direct(frame, 1, 6, 1, 6, 4, false), 1e-12, 'frame 1');
    checkGrad(spec, { x, w });
  });
});

describe('window and mel generators', () => {
  const windowSpec = (op: string, size: number, attrs: Record<string, number> = {}): ModelSpec => ({
    opset: 17,
    nodes: [{ op, inputs: ['n'], outputs: ['y'], attrs }],
    inputs: [],
    outputs: [{ name: 'y', type: attrs.output_datatype ?? F, dims: null }],
    initializers: [{ name: 'n', type: I64, dims: [], values: [size] }],
  });
  test('periodic windows of length N are the first N points of the symmetric window of length N + 1', () => {
    for (const op of ['HannWindow', 'HammingWindow', 'BlackmanWindow']) {
      const periodic = run(windowSpec(op, 8), {});
      const symmetric = run(windowSpec(op, 9, { periodic: 0 }), {});
      assertClose(periodic.data, Array.from(symmetric.data.slice(0, 8)), 1e-15, op);
    }
  });
  test('symmetric Hann: zero at both ends, one at the centre; a one-sample symmetric window is [1]', () => {
    assertClose(run(windowSpec('HannWindow', 5, { periodic: 0 }), {}).data, [0, 0.5, 1, 0.5, 0], 1e-15, 'hann 5');
    for (const op of ['HannWindow', 'HammingWindow', 'BlackmanWindow']) assert.deepEqual(Array.from(run(windowSpec(op, 1, { periodic: 0 }), {}).data), [1], op);
  });
  test('output_datatype: double comes out in the run\'s float dtype; int32 truncates', () => {
    const y = run(windowSpec('HammingWindow', 4, { output_datatype: D }), {}, 'float32');
    assert.equal(y.dtype, 'float32');
    const ints = run(windowSpec('HannWindow', 4, { output_datatype: 6 }), {});
    assert.equal(ints.dtype, 'int32');
    assert.deepEqual(Array.from(ints.data), [0, 0, 1, 0]);
  });
  test('MelWeightMatrix: triangular filters that each peak at 1 and sum over overlapping bands to at most 1', () => {
    const spec: ModelSpec = {
      opset: 17,
      nodes: [{ op: 'MelWeightMatrix', inputs: ['m', 'n', 'sr', 'lo', 'hi'], outputs: ['y'] }],
      inputs: [],
      outputs: [{ name: 'y', type: F, dims: null }],
      initializers: [
        { name: 'm', type: I64, dims: [], values: [10] }, { name: 'n', type: I64, dims: [], values: [64] },
        { name: 'sr', type: I64, dims: [], values: [16000] },
        { name: 'lo', type: F, dims: [], values: [20] }, { name: 'hi', type: F, dims: [], values: [8000] },
      ],
    };
    const y = run(spec, {});
    assert.deepEqual(y.shape, [33, 10]);
    for (let i = 0; i < 10; i++) {
      const col = Array.from({ length: 33 }, (_, j) => y.data[j * 10 + i]);
      assert.equal(Math.max(...col), 1, `band ${i}`);
    }
  });
});

describe('bad input: clear errors naming the fault', () => {
  const expectError = (fn: () => unknown, re: RegExp) => expectOnnxError(fn, 'INVALID_MODEL', re);
  test('DFT along the real/imaginary dim', () => {
    expectError(() => run(dftSpec([2, 4, 1], -1), { x: randn([2, 4, 1], 1, false) }), /last dim/);
  });
  test('DFT of a signal whose last dim is neither 1 nor 2', () => {
    expectError(() => run(dftSpec([2, 4, 3], 1), { x: randn([2, 4, 3], 1, false) }), /last dim of 1 \(real\) or 2 \(complex\)/);
  });
  test('irfft of a one-bin spectrum without dft_length (default length 0)', () => {
    expectError(() => run(dftSpec([1, 1, 2], 1, { inverse: 1, onesided: 1 }), { x: randn([1, 1, 2], 1, false) }), /give a positive dft_length/);
  });
  test('STFT frames longer than the signal', () => {
    const spec: ModelSpec = {
      opset: 17,
      nodes: [{ op: 'STFT', inputs: ['x', 'step', '', 'len'], outputs: ['y'] }],
      inputs: [{ name: 'x', type: D, dims: [1, 4, 1] }],
      outputs: [{ name: 'y', type: D, dims: null }],
      initializers: [{ name: 'step', type: I64, dims: [], values: [1] }, { name: 'len', type: I64, dims: [], values: [8] }],
    };
    expectError(() => run(spec, { x: randn([1, 4, 1], 1, false) }), /frame_length 8 is longer than the signal/);
  });
});

test('DFT and STFT on the wasm kernels: float32 values and gradients as the reference backend', async () => {
  const wasm = await loadWasmBackendNode();
  const spec = dftSpec([3, 16, 1], 1, { onesided: 1 }, null, F);
  const xs = Array.from(randn([3, 16, 1], 21, false).data);
  const results = [referenceBackend, wasm].map((backend) => withBackend(backend, () => {
    const x = tensorFrom(xs, [3, 16, 1], 'float32', { requiresGrad: true });
    const y = run(spec, { x }, 'float32');
    backward(sum(y));
    return { y: Array.from(y.data), g: Array.from(x.grad!.data) };
  }));
  assertClose(results[1].y, results[0].y, 1e-5, 'values');
  assertClose(results[1].g, results[0].g, 1e-5, 'gradients');
  // and both against the float64 formula
  assertClose(results[0].y, direct(xs, 3, 16, 1, 16, 9, false), 1e-5, 'reference vs formula');
});

test('a spectrogram model exported by torch 2.13 (dynamo: STFT and rfft / irfft as DFT): loss and gradients match PyTorch', () => {
  // test/gold/export_spectral.py: PyTorch's float64 loss and gradients from the same float32 weights.
  const dir = path.join(repoRoot, 'test', 'fixtures', 'onnx');
  const gold = JSON.parse(fs.readFileSync(path.join(dir, 'spectro_gold.json'), 'utf8')) as GraphLossGold;
  checkGraphLossGold(loadOnnx(new Uint8Array(fs.readFileSync(path.join(dir, 'spectro_dynamo.onnx'))), { dtype: 'float64' }), gold);
});
