/**
 * The WebAssembly SIMD backend against the TypeScript reference backend: every kernel on random
 * inputs (odd sizes, broadcasts, transposed and batched matmuls, special values), the PyTorch op
 * cases and the fixture models (loss, logits and every gradient) run under withBackend(wasm) in
 * float32, float64 delegation, and backend selection with its fallbacks.
 */
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as path from 'node:path';
import { backward, markParameter, Rng, Tensor, withBackend } from '../engine';
import { Backend, BinaryKernel, Conv2dGeometry, MatmulPlan, UnaryKernel } from '../engine/backend/backend';
import { referenceBackend } from '../engine/backend/reference';
import { createWasmBackend, selectBackend, wasmRelaxedSimdSupported, WASM_KERNEL_FILES } from '../engine/backend/wasm';
import { findKernelFile, loadWasmBackendNode, readKernelBytes } from '../engine/backend/wasm/node';
import { decodeValues, relativeError } from './helpers';
import { FIXTURE_MODELS, loadModelFixture, loadTensors } from './fixture_models';
import { asList, caseInputs, loadOpCases, runOp } from './op_cases';
import { Shape, sizeOf, stridesOf } from '../engine/shape';

let wasm: Backend;
const rng = new Rng(20261122);

before(async () => {
  wasm = await loadWasmBackendNode(WASM_KERNEL_FILES.simd);
});

function rand(n: number, lo = -2, hi = 2): Float32Array {
  return Float32Array.from({ length: n }, () => lo + (hi - lo) * rng.uniform());
}

/** Elementwise |a - e| <= atol + rtol |e|, with NaN where the reference has NaN and equal infinities. */
function assertClose(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number, what: string): void {
  assert.equal(actual.length, expected.length, `${what}: length`);
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(e)) {
      assert.ok(Number.isNaN(a), `${what}[${i}]: expected NaN, got ${a}`);
    } else if (!Number.isFinite(e)) {
      assert.equal(a, e, `${what}[${i}]`);
    } else {
      assert.ok(Math.abs(a - e) <= atol + rtol * Math.abs(e), `${what}[${i}]: ${a} vs ${e} (diff ${Math.abs(a - e)})`);
    }
  }
}

/** Norm-relative error; positions where both hold the same infinity (masked scores) are left out. */
function assertRel(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number, what: string): void {
  const keep = (_: number, i: number) => !(expected[i] === actual[i] && !Number.isFinite(expected[i]));
  const err = relativeError(Array.from(actual).filter(keep), Array.from(expected).filter(keep));
  assert.ok(err <= tol, `${what}: relative error ${err.toExponential(2)} > ${tol}`);
}

function geometry(n: number, c: number, h: number, w: number, kh: number, kw: number, sh: number, sw: number, ph: number, pw: number, dh: number, dw: number): Conv2dGeometry {
  const oh = Math.floor((h + 2 * ph - dh * (kh - 1) - 1) / sh) + 1;
  const ow = Math.floor((w + 2 * pw - dw * (kw - 1) - 1) / sw) + 1;
  return { n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow };
}

describe('wasm-simd kernels match the reference backend (float32)', () => {
  test('loads the SIMD128 build from build/wasm', () => {
    assert.equal(wasm.name, 'wasm-simd');
    assert.ok(findKernelFile(WASM_KERNEL_FILES.simd), 'kernels.wasm is built');
  });

  const SPECIAL = [0, -0, 1e-8, -1e-8, 0.3, -0.3, 0.7, -0.7, 5, -5, 20, -20, 90, -90, 200, -200, Infinity, -Infinity, NaN];

  test('unary ops (odd lengths, special values)', () => {
    const ops: [UnaryKernel, number, number, number][] = [
      // op, param, lo, hi
      ['neg', 0, -3, 3], ['exp', 0, -30, 30], ['log', 0, 1e-3, 50], ['sqrt', 0, 0, 50], ['rsqrt', 0, 1e-3, 50],
      ['abs', 0, -3, 3], ['sign', 0, -3, 3], ['square', 0, -3, 3], ['reciprocal', 0, 0.1, 3], ['tanh', 0, -6, 6],
      ['sigmoid', 0, -30, 30], ['relu', 0, -3, 3], ['erf', 0, -4, 4], ['gelu', 0, -6, 6], ['geluTanh', 0, -6, 6],
      ['leakyRelu', 0.1, -3, 3], ['powScalar', 3, -2, 2], ['powScalar', 2, -2, 2], ['powScalar', 0.5, 0, 4],
      ['powScalar', -1, 0.5, 4], ['powScalar', 1, -2, 2], ['powScalar', 1.7, 0, 4], ['powScalar', 0, -2, 2],
      ['scale', 0.37, -3, 3], ['addScalar', -1.25, -3, 3],
      ['sin', 0, -200, 200], ['cos', 0, -200, 200], ['tan', 0, -1.5, 1.5], ['asin', 0, -1, 1], ['acos', 0, -1, 1], ['atan', 0, -60, 60],
    ];
    for (const [op, param, lo, hi] of ops) {
      for (const n of [1, 3, 4, 17, 67]) {
        const x = rand(n, lo, hi);
        // Transcendentals are polynomial or float32-rounded float64: a few ulp from the reference.
        assertClose(wasm.unary(op, x, param, 'float32'), referenceBackend.unary(op, x, param, 'float32'), 2e-6, 1e-7, `${op}(${param}) n=${n}`);
      }
      const s = Float32Array.from(SPECIAL);
      assertClose(wasm.unary(op, s, param, 'float32'), referenceBackend.unary(op, s, param, 'float32'), 2e-6, 1e-30, `${op}(${param}) special values`);
    }
  });

  test('binary ops with broadcasting (same shape, scalars, rows, columns, general)', () => {
    const ops: BinaryKernel[] = ['add', 'sub', 'mul', 'div', 'pow', 'max', 'min', 'eq', 'reluGrad', 'leakyReluGrad', 'absGrad', 'tanhGrad', 'sigmoidGrad', 'erfGrad', 'geluGrad', 'geluTanhGrad'];
    const shapes: [Shape, Shape][] = [
      [[5, 7], [5, 7]], [[13], []], [[], [13]], [[4, 6], [6]], [[6], [4, 6]], [[4, 1], [4, 6]], [[4, 6], [4, 1]],
      [[2, 1, 3], [1, 5, 1]], [[3, 1, 5], [4, 5]], [[2, 3, 4, 5], [3, 1, 5]], [[1, 1], [1]], [[2, 2, 9], [2, 2, 9]], [[7, 1, 1, 3], [1, 2, 5, 1]],
    ];
    for (const op of ops) {
      for (const [as, bs] of shapes) {
        const out = as.length >= bs.length ? [...as] : [...bs];
        const rank = out.length;
        const pa = [...new Array(rank - as.length).fill(1), ...as];
        const pb = [...new Array(rank - bs.length).fill(1), ...bs];
        for (let i = 0; i < rank; i++) out[i] = Math.max(pa[i], pb[i]);
        const positive = op === 'pow' || op === 'div';
        const a = rand(sizeOf(as), positive ? 0.5 : -2, 2);
        const b = rand(sizeOf(bs), positive ? 0.5 : -2, 2);
        if (op === 'eq' || op === 'max' || op === 'min') for (let i = 0; i < Math.min(a.length, b.length); i += 3) a[i] = b[i];
        const got = wasm.binary(op, a, as, b, bs, out, 'float32', 0.05);
        const want = referenceBackend.binary(op, a, as, b, bs, out, 'float32', 0.05);
        assertClose(got, want, 2e-6, 1e-7, `${op} ${JSON.stringify(as)} ${JSON.stringify(bs)}`);
      }
      const s = Float32Array.from(SPECIAL);
      const t = Float32Array.from(SPECIAL).reverse();
      assertClose(wasm.binary(op, s, [s.length], t, [t.length], [s.length], 'float32', 0.05),
        referenceBackend.binary(op, s, [s.length], t, [t.length], [s.length], 'float32', 0.05), 2e-6, 1e-30, `${op} special values`);
    }
  });

  test('reduce sum/max/min over any axes, and NaN', () => {
    const cases: [Shape, number[]][] = [
      [[7], [0]], [[5, 9], [0]], [[5, 9], [1]], [[5, 9], [0, 1]], [[2, 3, 4, 5], [1]], [[2, 3, 4, 5], [0, 2]],
      [[2, 3, 4, 5], [1, 3]], [[2, 3, 4, 5], [0, 2, 3]], [[3, 1, 6], [1]], [[3, 1, 6], [0, 1]], [[1, 1], [0]], [[64, 256], [0]], [[3, 1000], [1]],
      // several reduced groups with long rows (a conv's bias / batch-norm sums over N, H, W): row-at-a-time sums
      [[2, 16, 9, 13], [0, 2, 3]], [[3, 5, 2, 37], [0, 2]], [[4, 3, 6, 2, 11], [1, 3]],
    ];
    for (const op of ['sum', 'max', 'min'] as const) {
      for (const [shape, axes] of cases) {
        const x = rand(sizeOf(shape));
        assertClose(wasm.reduce(op, x, shape, axes, 'float32'), referenceBackend.reduce(op, x, shape, axes, 'float32'), 1e-6, 1e-6, `${op} ${JSON.stringify(shape)} axes ${axes}`);
      }
      const x = rand(30);
      x[7] = NaN;
      assertClose(wasm.reduce(op, x, [5, 6], [1], 'float32'), referenceBackend.reduce(op, x, [5, 6], [1], 'float32'), 1e-6, 1e-6, `${op} with NaN`);
      assertClose(wasm.reduce(op, x, [5, 6], [0], 'float32'), referenceBackend.reduce(op, x, [5, 6], [0], 'float32'), 1e-6, 1e-6, `${op} with NaN, axis 0`);
      assertClose(wasm.reduce(op, x, [2, 3, 5], [0, 2], 'float32'), referenceBackend.reduce(op, x, [2, 3, 5], [0, 2], 'float32'), 1e-6, 1e-6, `${op} with NaN, axes 0 and 2`);
    }
  });

  test('argReduce (first on ties, NaN wins)', () => {
    for (const op of ['max', 'min'] as const) {
      for (const [shape, axes] of [[[5, 9], [1]], [[5, 9], [0]], [[2, 3, 4], [0, 2]], [[4, 1, 3], [0, 1]], [[6], [0]]] as [Shape, number[]][]) {
        const x = Float32Array.from({ length: sizeOf(shape) }, () => rng.int(4));
        assert.deepEqual(wasm.argReduce(op, x, shape, axes), referenceBackend.argReduce(op, x, shape, axes), `${op} ${JSON.stringify(shape)} ${axes}`);
      }
      const x = rand(12);
      x[5] = NaN;
      assert.deepEqual(wasm.argReduce(op, x, [3, 4], [1]), referenceBackend.argReduce(op, x, [3, 4], [1]));
    }
  });

  /** Unbatched m x k x n products, every transA / transB, against the reference. */
  function singleMatmulsMatch(sizes: readonly number[][]): void {
    for (const [m, k, n] of sizes) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const a = rand(m * k);
          const b = rand(k * n);
          const plan: MatmulPlan = { batch: 1, m, k, n, aOffsets: new Int32Array([0]), bOffsets: new Int32Array([0]), transA, transB };
          assertRel(wasm.matmul(a, b, plan, 'float32'), referenceBackend.matmul(a, b, plan, 'float32'), 2e-6, `matmul ${m}x${k}x${n} tA=${transA} tB=${transB}`);
        }
      }
    }
  }

  test('matmul: odd sizes, transA/transB, batch offsets, k = 0', () => {
    singleMatmulsMatch([[1, 1, 1], [3, 5, 2], [4, 8, 8], [7, 13, 5], [33, 9, 17], [5, 300, 11], [64, 70, 10], [97, 260, 45], [130, 257, 129], [9, 40, 1100]]);
    // Batched, with B broadcast over the batch (all offsets 0) and A read at shuffled offsets.
    const [m, k, n] = [6, 11, 9];
    const a = rand(4 * m * k);
    const b = rand(k * n);
    const plan: MatmulPlan = { batch: 5, m, k, n, aOffsets: Int32Array.from([3, 0, 2, 1, 3], (i) => i * m * k), bOffsets: new Int32Array(5), transA: false, transB: true };
    assertRel(wasm.matmul(a, b, plan, 'float32'), referenceBackend.matmul(a, b, plan, 'float32'), 2e-6, 'batched matmul');
    const empty: MatmulPlan = { batch: 2, m: 3, k: 0, n: 4, aOffsets: new Int32Array(2), bOffsets: new Int32Array(2), transA: false, transB: false };
    assert.deepEqual(Array.from(wasm.matmul(new Float32Array(0), new Float32Array(0), empty, 'float32')), new Array(24).fill(0));
    const emptyNarrow: MatmulPlan = { ...empty, m: 40 };
    assert.deepEqual(Array.from(wasm.matmul(new Float32Array(0), new Float32Array(0), emptyNarrow, 'float32')), new Array(320).fill(0));
  });

  test('matmul: narrow outputs (n <= 4, computed transposed) match the reference, batched and at offsets', () => {
    singleMatmulsMatch([[32, 5, 4], [40, 300, 4], [97, 70, 1], [33, 9, 3], [260, 600, 2], [1153, 37, 4], [31, 8, 4]]);
  });

  test('matmul: M = 1..70 (one A block) and outputs up to 32 wide (A read in place) match the reference', () => {
    // Every m from 1 to 70 (full and partial 4-row panels), widths on both sides of the 8-column panels and of the
    // in-place-A limit (32), k across the 256-deep slices; every transA / transB.
    const widths = [1, 3, 5, 8, 9, 16, 17, 31, 32, 33, 40, 65];
    const depths = [1, 5, 37, 256, 257, 300, 513];
    const sizes: number[][] = [];
    for (let m = 1; m <= 70; m++) {
      sizes.push([m, depths[m % depths.length], widths[m % widths.length]]);
      sizes.push([m, depths[(3 * m + 2) % depths.length], widths[(5 * m + 7) % widths.length]]);
    }
    singleMatmulsMatch(sizes);
    // A taller than one block (the blocked path) with narrow outputs (A read in place); short wide outputs
    // (8-32 rows, computed transposed with the weight read in place).
    singleMatmulsMatch([[97, 300, 8], [130, 257, 32], [517, 600, 9], [1153, 37, 24], [8, 300, 100], [16, 513, 64], [24, 37, 200], [32, 257, 129]]);
  });

  test('matmul: reading A in place, packing B per panel, the blocked path and short outputs computed transposed give the same bits', () => {
    // Column j of A B does not depend on B's other columns, and every path sums the same products in the same order:
    // the first 32 columns of an [m, 33] product (A packed) equal an [m, 32] product (A read in place) bit for bit,
    // for one A block (m <= 96, B packed per panel) and several (m > 96, the blocked path).
    for (const [m, k] of [[7, 300], [64, 513], [70, 37], [130, 600], [517, 257]]) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const a = rand(m * k);
          const wide = rand(k * 33);
          // B's first 32 columns, stored the same way (B [k, n], or [n, k] when transB).
          const narrow = transB ? wide.slice(0, 32 * k) : Float32Array.from({ length: k * 32 }, (_, i) => wide[Math.floor(i / 32) * 33 + (i % 32)]);
          const plan = (n: number): MatmulPlan => ({ batch: 1, m, k, n, aOffsets: new Int32Array(1), bOffsets: new Int32Array(1), transA, transB });
          const c33 = wasm.matmul(a, wide, plan(33), 'float32');
          const c32 = wasm.matmul(a, narrow, plan(32), 'float32');
          const firstColumns = Float32Array.from({ length: m * 32 }, (_, i) => c33[Math.floor(i / 32) * 33 + (i % 32)]);
          assert.deepEqual(c32, firstColumns, `${m}x${k} tA=${transA} tB=${transB}`);
        }
      }
    }
    // Likewise row i of A B does not depend on A's other rows: the first m rows of an [m + 1, n] product (one A
    // block, packed) equal an [m, n] product with m = 8, 16, 32 (computed transposed, B read in place).
    for (const [m, k, n] of [[8, 300, 64], [16, 37, 200], [32, 513, 129]]) {
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const tall = rand((m + 1) * k);
          const b = rand(k * n);
          // A's first m rows, stored the same way (A [m, k], or [k, m] when transA).
          const short = transA ? Float32Array.from({ length: k * m }, (_, i) => tall[Math.floor(i / m) * (m + 1) + (i % m)]) : tall.slice(0, m * k);
          const plan = (rows: number): MatmulPlan => ({ batch: 1, m: rows, k, n, aOffsets: new Int32Array(1), bOffsets: new Int32Array(1), transA, transB });
          const cTall = wasm.matmul(tall, b, plan(m + 1), 'float32');
          assert.deepEqual(wasm.matmul(short, b, plan(m), 'float32'), cTall.slice(0, m * n), `${m}x${k}x${n} tA=${transA} tB=${transB}`);
        }
      }
    }
  });

  test('matmul keeps parameter arrays in wasm memory, and only those: replaced or mutated values are always used', () => {
    const pinnedBytes = () => (wasm as unknown as { pinnedBytes: number }).pinnedBytes;
    const [m, k, n] = [9, 48, 40];
    const plan: MatmulPlan = { batch: 1, m, k, n, aOffsets: new Int32Array(1), bOffsets: new Int32Array(1), transA: false, transB: true };
    const w = markParameter(new Tensor(rand(n * k), [n, k], { requiresGrad: true }));
    const x = rand(m * k);
    const before = pinnedBytes();
    const check = (what: string) => assertRel(wasm.matmul(x, w.data as Float32Array, plan, 'float32'), referenceBackend.matmul(x, w.data as Float32Array, plan, 'float32'), 2e-6, what);
    check('first call');
    assert.ok(pinnedBytes() >= before + n * k * 4, 'the weight is pinned');
    check('second call (pinned copy)');
    w.data = rand(n * k); // an optimiser step: a new array
    check('after the weight was replaced');
    // x is not a parameter's array (not even as a leaf that requires gradients): writing it in place between
    // calls must show in the result.
    const pinned = pinnedBytes();
    new Tensor(x, [m, k], { requiresGrad: true });
    x.fill(0.5);
    check('after an input was written in place');
    assert.equal(pinnedBytes(), pinned, 'inputs are not pinned');
  });

  test('matmul: batches sharing one A (folded into one product) match the reference', () => {
    // A conv weight shared by 3 images (every A offset the same), each image's columns at its own offset; the
    // output widths cover the narrow path after folding (3 x 1), plain folding (3 x 4, 3 x 20) and none (3 x 65).
    for (const [m, k, n] of [[64, 72, 4], [40, 33, 1], [37, 300, 20], [9, 5, 65]]) {
      const a = rand(2 * m * k);
      const b = rand(3 * k * n);
      for (const transA of [false, true]) {
        for (const transB of [false, true]) {
          const plan: MatmulPlan = { batch: 3, m, k, n, aOffsets: new Int32Array(3).fill(m * k), bOffsets: Int32Array.from([2, 0, 1], (i) => i * k * n), transA, transB };
          assertRel(wasm.matmul(a, b, plan, 'float32'), referenceBackend.matmul(a, b, plan, 'float32'), 2e-6, `shared-A matmul ${m}x${k}x${n} tA=${transA} tB=${transB}`);
        }
      }
    }
  });

  test('strided copies (permute, transpose, slice, negative steps, expand) and their scatter-add', () => {
    const x = rand(2 * 3 * 4 * 5);
    const own = stridesOf([2, 3, 4, 5]);
    const views: [Shape, number[], number][] = [
      [[2, 4, 3, 5], [own[0], own[2], own[1], own[3]], 0], // permute
      [[5, 4, 3, 2], [...own].reverse(), 0], // full reverse permute
      [[2, 3, 5, 4], [own[0], own[1], own[3], own[2]], 0], // transpose last two
      [[2, 2, 4, 2], [own[0], own[1] * 2, own[2], 2], 1], // slice with steps
      [[2, 3, 2, 5], [own[0], own[1], -own[2], own[3]], 3 * own[2]], // negative step
      [[2, 3, 4, 5, 3], [...own, 0], 0], // expand a new trailing dim
      [[2, 3, 4, 5], [own[0], 0, own[2], own[3]], 0], // expand (broadcast a dim)
    ];
    for (const [shape, strides, offset] of views) {
      const what = `view ${JSON.stringify(shape)} strides ${strides} offset ${offset}`;
      assert.deepEqual(Array.from(wasm.strided(x, shape, strides, offset, 'float32')), Array.from(referenceBackend.strided(x, shape, strides, offset, 'float32')), what);
      const g = rand(sizeOf(shape));
      assertClose(wasm.stridedScatterAdd(g, shape, strides, offset, x.length, 'float32'), referenceBackend.stridedScatterAdd(g, shape, strides, offset, x.length, 'float32'), 1e-6, 1e-6, `scatter ${what}`);
    }
    // 2-D transposes of odd sizes (4x4 SIMD blocks plus edges).
    for (const [r, c] of [[37, 19], [4, 4], [5, 3], [256, 784]]) {
      const y = rand(r * c);
      assert.deepEqual(Array.from(wasm.strided(y, [c, r], [1, c], 0, 'float32')), Array.from(referenceBackend.strided(y, [c, r], [1, c], 0, 'float32')), `transpose ${r}x${c}`);
    }
  });

  test('concat, gather and scatterAdd (repeated indices)', () => {
    const parts = [rand(6), rand(9), rand(3)];
    assert.deepEqual(wasm.concat(parts, 3, [2, 3, 1], 'float32'), referenceBackend.concat(parts, 3, [2, 3, 1], 'float32'));
    const x = rand(2 * 7 * 5);
    const idx = Int32Array.from([6, 0, 3, 3, 6, 1]);
    assert.deepEqual(wasm.gather(x, 2, 7, 5, idx, 'float32'), referenceBackend.gather(x, 2, 7, 5, idx, 'float32'));
    for (const inner of [1, 5, 8]) {
      const g = rand(2 * idx.length * inner);
      assertClose(wasm.scatterAdd(g, 2, 7, inner, idx, 'float32'), referenceBackend.scatterAdd(g, 2, 7, inner, idx, 'float32'), 1e-6, 1e-6, `scatterAdd inner ${inner}`);
    }
  });

  test('softmax and log-softmax forward and backward ([outer, n, inner], -inf masks)', () => {
    for (const [outer, n, inner] of [[3, 7, 1], [2, 5, 3], [1, 16, 1], [4, 1, 2], [2, 33, 5], [8, 8, 1]]) {
      const x = rand(outer * n * inner, -5, 5);
      for (let i = 0; i < x.length; i += 5) x[i] = -Infinity; // masked scores (never a whole row here)
      for (const log of [false, true]) {
        const what = `${log ? 'log_' : ''}softmax [${outer}, ${n}, ${inner}]`;
        const y = wasm.softmax(x, outer, n, inner, log, 'float32');
        const yRef = referenceBackend.softmax(x, outer, n, inner, log, 'float32');
        // log-softmax near 0 is a difference of O(1) terms: float32 rounding leaves ~1e-7 absolute error.
        assertClose(y, yRef, 3e-6, log ? 5e-7 : 1e-7, what);
        const g = rand(x.length);
        assertClose(wasm.softmaxBackward(yRef, g, outer, n, inner, log, 'float32'), referenceBackend.softmaxBackward(yRef, g, outer, n, inner, log, 'float32'), 3e-6, 1e-6, `${what} backward`);
      }
    }
    const allMasked = Float32Array.from([-Infinity, -Infinity, -Infinity, 1, 2, 3]);
    for (const log of [false, true]) {
      assertClose(wasm.softmax(allMasked, 2, 3, 1, log, 'float32'), referenceBackend.softmax(allMasked, 2, 3, 1, log, 'float32'), 3e-6, 1e-7, 'all -inf row');
    }
  });

  test('layer norm and RMS norm forward and backward', () => {
    for (const [rows, n] of [[5, 7], [3, 32], [1, 1], [16, 33]]) {
      for (const rms of [false, true]) {
        for (const affine of [false, true]) {
          const x = rand(rows * n, -3, 3);
          const w = affine ? rand(n) : null;
          const b = affine && !rms ? rand(n) : null;
          const what = `${rms ? 'rms' : 'layer'} norm [${rows}, ${n}] affine=${affine}`;
          const got = wasm.layerNorm(x, w, b, rows, n, 1e-5, rms, 'float32');
          const want = referenceBackend.layerNorm(x, w, b, rows, n, 1e-5, rms, 'float32');
          assertClose(got.y, want.y, 2e-5, 2e-6, `${what} y`);
          assertClose(got.mean, want.mean, 1e-6, 1e-7, `${what} mean`);
          assertClose(got.rstd, want.rstd, 1e-6, 1e-7, `${what} rstd`);
          if (n === 1) continue; // the VJP is pure cancellation noise for a single element
          const g = rand(rows * n);
          const gb = wasm.layerNormBackward(x, w, g, want.mean, want.rstd, rows, n, rms, 'float32');
          const gr = referenceBackend.layerNormBackward(x, w, g, want.mean, want.rstd, rows, n, rms, 'float32');
          assertRel(gb.gx, gr.gx, 1e-5, `${what} gx`);
          assertRel(gb.gw, gr.gw, 1e-5, `${what} gw`);
          assertRel(gb.gb, gr.gb, 1e-5, `${what} gb`);
        }
      }
    }
  });

  test('training batch norm forward and backward (channels strided between images)', () => {
    for (const [outer, c, inner] of [[2, 3, 7], [1, 5, 16], [4, 2, 1], [3, 4, 33]]) {
      for (const affine of [false, true]) {
        const x = rand(outer * c * inner, -3, 3);
        const w = affine ? rand(c) : null;
        const b = affine ? rand(c) : null;
        const what = `batch norm [${outer}, ${c}, ${inner}] affine=${affine}`;
        const got = wasm.batchNorm(x, w, b, outer, c, inner, 1e-5, 'float32');
        const want = referenceBackend.batchNorm(x, w, b, outer, c, inner, 1e-5, 'float32');
        assertClose(got.y, want.y, 2e-5, 2e-6, `${what} y`);
        assertClose(got.mean, want.mean, 1e-6, 1e-7, `${what} mean`);
        assertClose(got.rstd, want.rstd, 1e-6, 1e-7, `${what} rstd`);
        const g = rand(outer * c * inner);
        const gb = wasm.batchNormBackward(x, w, g, want.mean, want.rstd, outer, c, inner, 'float32');
        const gr = referenceBackend.batchNormBackward(x, w, g, want.mean, want.rstd, outer, c, inner, 'float32');
        assertRel(gb.gx, gr.gx, 1e-5, `${what} gx`);
        assertRel(gb.gw, gr.gw, 1e-5, `${what} gw`);
        assertRel(gb.gb, gr.gb, 1e-5, `${what} gb`);
      }
    }
  });

  test('im2col / col2im (padding, stride, dilation, odd sizes)', () => {
    const geos = [
      geometry(2, 3, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1), geometry(1, 2, 7, 9, 3, 2, 2, 3, 1, 0, 1, 1),
      geometry(2, 1, 9, 7, 3, 3, 1, 2, 2, 2, 2, 2), geometry(1, 4, 5, 5, 1, 1, 1, 1, 0, 0, 1, 1), geometry(1, 1, 4, 4, 5, 5, 1, 1, 2, 2, 1, 1),
    ];
    for (const geo of geos) {
      const x = rand(geo.n * geo.c * geo.h * geo.w);
      const cols = wasm.im2col(x, geo, 'float32');
      assert.deepEqual(Array.from(cols), Array.from(referenceBackend.im2col(x, geo, 'float32')), `im2col ${JSON.stringify(geo)}`);
      const g = rand(cols.length);
      assertClose(wasm.col2im(g, geo, 'float32'), referenceBackend.col2im(g, geo, 'float32'), 1e-6, 1e-6, `col2im ${JSON.stringify(geo)}`);
    }
  });

  test('depthwise convolution and both its gradients (padding, stride, dilation, odd sizes)', () => {
    const geos = [
      geometry(2, 3, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1), geometry(1, 5, 9, 11, 5, 5, 2, 2, 2, 2, 1, 1),
      geometry(2, 2, 9, 7, 3, 3, 1, 2, 2, 2, 2, 2), geometry(1, 4, 5, 13, 7, 7, 1, 1, 3, 3, 1, 1), geometry(1, 1, 4, 4, 5, 5, 1, 1, 2, 2, 1, 1),
      // ConvNeXt's 7x7 filters on small planes, no padding, asymmetric padding, padding past kernel - 1 (the loop path)
      geometry(2, 6, 4, 4, 7, 7, 1, 1, 3, 3, 1, 1), geometry(1, 3, 2, 2, 7, 7, 1, 1, 3, 3, 1, 1), geometry(2, 2, 9, 10, 3, 3, 1, 1, 0, 0, 1, 1),
      geometry(1, 3, 6, 7, 3, 5, 1, 1, 2, 0, 1, 1), geometry(1, 2, 5, 6, 3, 3, 1, 1, 3, 1, 1, 1),
      // 8 channels or more: the channels-last kernel (stride 2, dilation, odd channel counts, non-square, 2x2 planes)
      geometry(2, 16, 9, 9, 3, 3, 2, 2, 1, 1, 1, 1), geometry(1, 10, 8, 11, 5, 5, 2, 2, 2, 2, 1, 1), geometry(3, 12, 7, 6, 3, 3, 1, 2, 2, 1, 2, 2),
      geometry(2, 9, 2, 2, 7, 7, 1, 1, 3, 3, 1, 1), geometry(1, 8, 4, 4, 5, 5, 1, 1, 2, 2, 1, 1), geometry(2, 13, 10, 9, 3, 2, 3, 1, 0, 1, 1, 3),
      geometry(1, 24, 5, 5, 1, 1, 2, 2, 0, 0, 1, 1),
      // a 32x32 stride-1 plane with many channels: the plane kernel again
      geometry(1, 8, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1),
    ];
    for (const geo of geos) {
      const x = rand(geo.n * geo.c * geo.h * geo.w);
      const w = rand(geo.c * geo.kh * geo.kw);
      const g = rand(geo.n * geo.c * geo.oh * geo.ow);
      for (const [mode, a, b] of [['forward', x, w], ['inputGrad', g, w], ['weightGrad', x, g]] as const) {
        // float32 sums against the reference's float64: absolute slack grows with the number of terms summed.
        const terms = mode === 'weightGrad' ? geo.n * geo.oh * geo.ow : geo.kh * geo.kw;
        assertClose(wasm.depthwiseConv2d(mode, a, b, geo, 'float32'), referenceBackend.depthwiseConv2d(mode, a, b, geo, 'float32'), 1e-5, Math.max(1e-5, 1e-7 * terms), `${mode} ${JSON.stringify(geo)}`);
      }
    }
  });

  /** The three conv2d products the im2col way (reference im2col, matmul and col2im): what conv2d composed before. */
  function im2colConv(mode: 'forward' | 'inputGrad' | 'weightGrad', a: Float32Array, b: Float32Array, geo: Conv2dGeometry, groups: number, o: number): Float32Array {
    const k = (geo.c / groups) * geo.kh * geo.kw;
    const l = geo.oh * geo.ow;
    const og = o / groups;
    const one = (m: number, kk: number, n: number, transA: boolean, transB: boolean, ao: number, bo: number): MatmulPlan =>
      ({ batch: 1, m, k: kk, n, aOffsets: Int32Array.of(ao), bOffsets: Int32Array.of(bo), transA, transB });
    const ref = referenceBackend;
    if (mode === 'forward') {
      const cols = ref.im2col(a, geo, 'float32');
      const y = new Float32Array(geo.n * o * l);
      for (let i = 0; i < geo.n; i++) for (let gr = 0; gr < groups; gr++) {
        y.set(ref.matmul(b, cols, one(og, k, l, false, false, gr * og * k, (i * groups + gr) * k * l), 'float32'), (i * o + gr * og) * l);
      }
      return y;
    }
    if (mode === 'inputGrad') {
      const cols = new Float32Array(geo.n * geo.c * geo.kh * geo.kw * l);
      for (let i = 0; i < geo.n; i++) for (let gr = 0; gr < groups; gr++) {
        cols.set(ref.matmul(b, a, one(k, og, l, true, false, gr * og * k, (i * o + gr * og) * l), 'float32'), (i * groups + gr) * k * l);
      }
      return ref.col2im(cols, geo, 'float32') as Float32Array;
    }
    const cols = ref.im2col(b, geo, 'float32');
    const gw = new Float64Array(o * k);
    for (let i = 0; i < geo.n; i++) for (let gr = 0; gr < groups; gr++) {
      const part = ref.matmul(a, cols, one(og, l, k, false, true, (i * o + gr * og) * l, (i * groups + gr) * k * l), 'float32');
      part.forEach((v, j) => (gw[gr * og * k + j] += v));
    }
    return Float32Array.from(gw);
  }

  test('dense conv2d and both its gradients against the im2col path (stride, padding, dilation, groups, 1x1, odd sizes, batches)', () => {
    const cases: [Conv2dGeometry, number, number][] = [
      [geometry(2, 3, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1), 1, 5],
      [geometry(1, 2, 7, 9, 3, 2, 2, 3, 1, 0, 1, 1), 1, 4],
      [geometry(3, 4, 9, 7, 3, 3, 1, 2, 2, 2, 2, 2), 2, 6],
      [geometry(2, 6, 5, 5, 1, 1, 1, 1, 0, 0, 1, 1), 3, 9], // 1x1, groups 3
      [geometry(1, 1, 4, 4, 5, 5, 1, 1, 2, 2, 1, 1), 1, 3],
      [geometry(2, 3, 11, 6, 7, 7, 2, 2, 3, 3, 1, 1), 1, 70], // ResNet-stem-like, m past one MR panel
      [geometry(2, 40, 2, 2, 3, 3, 1, 1, 1, 1, 1, 1), 1, 48], // 2x2 maps: 4-wide outputs per image
      [geometry(1, 37, 3, 5, 2, 2, 2, 2, 0, 0, 1, 1), 1, 33], // ConvNeXt-downsample-like, odd everything
      [geometry(2, 300, 3, 3, 1, 1, 1, 1, 0, 0, 1, 1), 1, 20], // k past one KC block
    ];
    for (const [geo, groups, o] of cases) {
      const x = rand(geo.n * geo.c * geo.h * geo.w);
      const w = rand(o * (geo.c / groups) * geo.kh * geo.kw);
      const g = rand(geo.n * o * geo.oh * geo.ow);
      for (const [mode, a, b] of [['forward', x, w], ['inputGrad', g, w], ['weightGrad', g, x]] as const) {
        const what = `${mode} groups ${groups} o ${o} ${JSON.stringify(geo)}`;
        const expected = im2colConv(mode, a, b, geo, groups, o);
        assertClose(referenceBackend.conv2d(mode, a, b, geo, groups, o, 'float32'), expected, 1e-5, 1e-5, `reference ${what}`);
        assertClose(wasm.conv2d(mode, a, b, geo, groups, o, 'float32'), expected, 1e-4, 1e-4, `wasm ${what}`);
      }
      const x64 = Float64Array.from(x);
      const w64 = Float64Array.from(w);
      assert.deepEqual(Array.from(wasm.conv2d('forward', x64, w64, geo, groups, o, 'float64')), Array.from(referenceBackend.conv2d('forward', x64, w64, geo, groups, o, 'float64')), 'float64 goes to the reference');
    }
  });

  test('dense conv2d refuses, by name, columns too large for wasm memory (instead of wrapping its i32 sizes)', () => {
    const geo = geometry(64, 256, 224, 224, 3, 3, 1, 1, 1, 1, 1, 1); // 64 images: ~26 GiB of columns
    assert.throws(() => wasm.conv2d('forward', new Float32Array(1), new Float32Array(1), geo, 1, 256, 'float32'), /conv2d: input \[64, 256, 224, 224\] with a 3x3 kernel needs [\d.]+ GiB/);
  });

  test('dense conv2d with a pinned weight sees the weight replaced between calls', () => {
    const geo = geometry(2, 3, 6, 6, 3, 3, 1, 1, 1, 1, 1, 1);
    const x = rand(geo.n * geo.c * geo.h * geo.w);
    for (let round = 0; round < 2; round++) {
      const w = markParameter(new Tensor(rand(4 * geo.c * 9), [4, geo.c, 3, 3])).floatData;
      assertClose(wasm.conv2d('forward', x, w, geo, 1, 4, 'float32'), referenceBackend.conv2d('forward', x, w, geo, 1, 4, 'float32'), 1e-5, 1e-5, `round ${round}`);
    }
  });

  test('hard sigmoid / hard swish and their VJP (bounds, NaN, infinities, odd lengths)', () => {
    const x = rand(37, -5, 5);
    x.set([-3, 3, -2.5, 2.5, NaN, Infinity, -Infinity, 0]);
    const g = rand(37);
    for (const [alpha, beta, swish] of [[1 / 6, 0.5, true], [0.2, 0.5, false], [1 / 6, 0.5, false]] as const) {
      const what = `alpha ${alpha} beta ${beta} swish ${swish}`;
      assertClose(wasm.hardSigmoid(x, null, alpha, beta, swish, 'float32'), referenceBackend.hardSigmoid(x, null, alpha, beta, swish, 'float32'), 1e-6, 1e-7, `forward ${what}`);
      assertClose(wasm.hardSigmoid(x, g, alpha, beta, swish, 'float32'), referenceBackend.hardSigmoid(x, g, alpha, beta, swish, 'float32'), 1e-6, 1e-7, `backward ${what}`);
    }
  });

  test('SiLU VJP (swishBackward) against the reference, tails, NaN, infinities, odd lengths', () => {
    const x = rand(41, -12, 12);
    x.set([-90, 90, 0, NaN, Infinity, -Infinity, -1e-8]);
    const g = rand(41);
    assertClose(wasm.swishBackward(x, g, 'float32'), referenceBackend.swishBackward(x, g, 'float32'), 2e-6, 1e-7, 'swishBackward');
  });

  test('max / avg pooling and the avg-pool VJP', () => {
    const geos = [geometry(2, 3, 8, 8, 2, 2, 2, 2, 0, 0, 1, 1), geometry(1, 2, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1), geometry(1, 1, 9, 9, 3, 2, 1, 2, 1, 1, 2, 1)];
    for (const geo of geos) {
      const x = rand(geo.n * geo.c * geo.h * geo.w);
      x[3] = x[4]; // a tie
      const got = wasm.maxPool2d(x, geo, 'float32');
      const want = referenceBackend.maxPool2d(x, geo, 'float32');
      assert.deepEqual(Array.from(got.y), Array.from(want.y), 'max pool values');
      assert.deepEqual(got.argmax, want.argmax, 'max pool argmax');
      if (geo.dh === 1 && geo.dw === 1) {
        for (const cip of [false, true]) {
          assertClose(wasm.avgPool2d(x, geo, cip, 'float32'), referenceBackend.avgPool2d(x, geo, cip, 'float32'), 1e-6, 1e-6, `avg pool cip=${cip}`);
          const g = rand(geo.n * geo.c * geo.oh * geo.ow);
          assertClose(wasm.avgPool2dBackward(g, geo, cip, 'float32'), referenceBackend.avgPool2dBackward(g, geo, cip, 'float32'), 1e-6, 1e-6, `avg pool backward cip=${cip}`);
        }
      }
    }
  });

  test('max pooling over 8+ channels (the channels-last kernel): ties, NaN, -inf, padding, stride, dilation, odd channel counts', () => {
    const geos = [
      geometry(2, 8, 32, 32, 3, 3, 2, 2, 1, 1, 1, 1), geometry(1, 9, 7, 9, 3, 3, 2, 2, 1, 1, 1, 1), geometry(3, 13, 9, 8, 3, 2, 1, 2, 1, 1, 2, 1),
      geometry(1, 16, 5, 5, 2, 2, 2, 2, 0, 0, 1, 1), geometry(2, 10, 6, 7, 5, 3, 3, 1, 2, 1, 1, 2),
    ];
    for (const geo of geos) {
      const x = rand(geo.n * geo.c * geo.h * geo.w);
      x[3] = x[4]; // a tie
      for (let i = 0; i < x.length; i += 7) x[i + 1] = x[i]; // more ties inside windows
      x[geo.h * geo.w + 5] = NaN;
      x[2 * geo.h * geo.w + 2] = NaN;
      x[2 * geo.h * geo.w + 3] = NaN; // two NaNs in one window: the first wins
      for (let i = 0; i < geo.h * geo.w; i++) x[3 * geo.h * geo.w + i] = -Infinity; // a plane of -inf: argmax is each window's first
      const got = wasm.maxPool2d(x, geo, 'float32');
      const want = referenceBackend.maxPool2d(x, geo, 'float32');
      assert.deepEqual(Array.from(got.y), Array.from(want.y), `values ${JSON.stringify(geo)}`);
      assert.deepEqual(got.argmax, want.argmax, `argmax ${JSON.stringify(geo)}`);
    }
  });

  test('where with broadcasting', () => {
    const cases: [Shape, Shape, Shape, Shape][] = [
      [[4, 6], [4, 6], [4, 6], [4, 6]], [[8, 8], [2, 4, 8, 8], [], [2, 4, 8, 8]], [[4, 1], [], [4, 6], [4, 6]], [[1, 5], [3, 5], [3, 1], [3, 5]],
    ];
    for (const [cs, as, bs, out] of cases) {
      const cond = Uint8Array.from({ length: sizeOf(cs) }, () => rng.int(2));
      const a = rand(sizeOf(as));
      const b = rand(sizeOf(bs));
      assert.deepEqual(Array.from(wasm.where(cond, cs, a, as, b, bs, out, 'float32')), Array.from(referenceBackend.where(cond, cs, a, as, b, bs, out, 'float32')), `where ${JSON.stringify([cs, as, bs])}`);
    }
  });

  test('float64 calls are delegated to the reference backend (bit-identical)', () => {
    const a = Float64Array.from(rand(12));
    const b = Float64Array.from(rand(12));
    const plan: MatmulPlan = { batch: 1, m: 3, k: 4, n: 3, aOffsets: new Int32Array(1), bOffsets: new Int32Array(1), transA: false, transB: false };
    assert.deepEqual(wasm.matmul(a, b, plan, 'float64'), referenceBackend.matmul(a, b, plan, 'float64'));
    assert.deepEqual(wasm.unary('gelu', a, 0, 'float64'), referenceBackend.unary('gelu', a, 0, 'float64'));
    assert.deepEqual(wasm.binary('mul', a, [3, 4], b, [3, 4], [3, 4], 'float64'), referenceBackend.binary('mul', a, [3, 4], b, [3, 4], [3, 4], 'float64'));
    assert.ok(wasm.softmax(a, 3, 4, 1, false, 'float64') instanceof Float64Array);
  });

  test('memory grows for a large call and stays usable for small ones', () => {
    const big = rand(3_000_000);
    const y = wasm.unary('neg', big, 0, 'float32');
    assert.equal(y[12345], -big[12345]);
    const small = rand(5);
    assert.deepEqual(Array.from(wasm.unary('neg', small, 0, 'float32')), Array.from(small, (v) => -v));
  });
});

describe('ops match PyTorch under the wasm-simd backend (float32)', () => {
  test('every gold op case: outputs and input gradients within 1e-4', () => {
    for (const c of loadOpCases()) {
      withBackend(wasm, () => {
        const inputs = caseInputs(c, 'float32');
        const outputs = asList(runOp(c, inputs));
        outputs.forEach((out, j) => {
          const err = relativeError(out.data, decodeValues(c.outputs[j]));
          assert.ok(err <= 1e-4, `${c.name} output ${j}: relative error ${err.toExponential(2)}`);
          if (out.requiresGrad) backward(out, new Tensor(Float32Array.from(decodeValues(c.upstream[j])), out.shape));
        });
        c.grads.forEach((gold, i) => {
          if (!gold) return;
          const grad = inputs[i].grad;
          assert.ok(grad, `${c.name}: input ${i} got no gradient`);
          const err = relativeError(grad.data, decodeValues(gold));
          assert.ok(err <= 1e-4, `${c.name}: gradient of input ${i}: relative error ${err.toExponential(2)}`);
        });
      });
    }
  });
});

function norm(v: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < v.length; i++) s += v[i] * v[i];
  return Math.sqrt(s);
}

describe('fixture models: wasm-simd gradients match the reference backend and PyTorch (float32, 1e-4)', () => {
  for (const [name, build] of Object.entries(FIXTURE_MODELS)) {
    test(name, () => {
      const f = loadModelFixture(name);
      const run = (backend: Backend) => withBackend(backend, () => {
        const loaded = loadTensors(f, 'float32');
        const out = build(loaded, f.config);
        backward(out.loss);
        return { loaded, out };
      });
      const ref = run(referenceBackend);
      const ours = run(wasm);
      const lossErr = Math.abs(ours.out.loss.item() - ref.out.loss.item()) / Math.abs(ref.out.loss.item());
      assert.ok(lossErr <= 1e-4, `loss ${ours.out.loss.item()} vs reference ${ref.out.loss.item()}`);
      assert.ok(Math.abs(ours.out.loss.item() - f.loss) / Math.abs(f.loss) <= 1e-4, `loss ${ours.out.loss.item()} vs PyTorch ${f.loss}`);
      assertRel(ours.out.logits.data, ref.out.logits.data, 1e-4, 'logits vs reference');
      const largest = Math.max(...f.trainable.map((n) => norm(decodeValues(f.grads[n]))));
      for (const p of f.trainable) {
        const g = ours.loaded.params[p].grad;
        assert.ok(g, `${p} got no gradient`);
        const gold = decodeValues(f.grads[p]);
        if (norm(gold) < 1e-12 * largest) {
          // Exactly zero in exact arithmetic (e.g. a conv bias before batch norm): rounding noise only.
          assert.ok(norm(g.data) <= 1e-5 * largest, `${p}: expected ~0, got norm ${norm(g.data)}`);
          continue;
        }
        assertRel(g.data, ref.loaded.params[p].grad!.data, 1e-4, `${p} vs reference backend`);
        assertRel(g.data, gold, 1e-4, `${p} vs PyTorch`);
      }
      for (const [key, t] of Object.entries(ours.out.retained)) {
        assertRel(t.data, ref.out.retained[key].data, 1e-4, `${key} vs reference`);
        assertRel(t.grad!.data, ref.out.retained[key].grad!.data, 1e-4, `d${key} vs reference`);
      }
    });
  }
});

describe('backend selection', () => {
  const bytes = () => readKernelBytes(WASM_KERNEL_FILES.simd);

  test('WebGPU first when its factory gives a backend', async () => {
    const fake: Backend = { ...referenceBackend, name: 'webgpu-fake' };
    const s = await selectBackend({ webgpu: async () => fake, wasm: bytes }, { WebAssembly, gpu: {} });
    assert.equal(s.name, 'webgpu-fake');
    assert.equal(s.kind, 'webgpu');
    assert.deepEqual(s.tried.map((t) => [t.kind, t.ok]), [['webgpu', true]]);
  });

  test('falls back to WebAssembly when WebGPU is missing or fails, and says why', async () => {
    const noGpu = await selectBackend({ webgpu: async () => referenceBackend, wasm: bytes }, { WebAssembly, gpu: undefined });
    assert.equal(noGpu.name, 'wasm-simd');
    assert.match(noGpu.reason, /navigator\.gpu is not available/);
    const failing = await selectBackend({ webgpu: async () => { throw new Error('device lost'); }, wasm: bytes }, { WebAssembly, gpu: {} });
    assert.equal(failing.name, 'wasm-simd');
    assert.deepEqual(failing.tried.map((t) => [t.kind, t.ok]), [['webgpu', false], ['wasm', true]]);
    assert.match(failing.reason, /device lost/);
    const noFactory = await selectBackend({ wasm: bytes() });
    assert.equal(noFactory.name, 'wasm-simd');
    assert.match(noFactory.tried[0].reason, /no WebGPU backend factory/);
  });

  test('falls back to TypeScript without WebAssembly SIMD, without kernels, or with broken kernels', async () => {
    const noSimd = { validate: () => false } as unknown as typeof WebAssembly;
    const a = await selectBackend({ wasm: bytes }, { WebAssembly: noSimd });
    assert.equal(a.name, 'typescript');
    assert.match(a.reason, /SIMD is not supported/);
    const b = await selectBackend({}, { WebAssembly: undefined });
    assert.equal(b.name, 'typescript');
    assert.match(b.reason, /WebAssembly is not available/);
    const c = await selectBackend({ wasm: new Uint8Array([0, 97, 115, 109, 9, 9]) }, { WebAssembly });
    assert.equal(c.name, 'typescript');
    assert.match(c.reason, /failed to load/);
    const d = await selectBackend({}, { WebAssembly });
    assert.equal(d.name, 'typescript');
    assert.match(d.reason, /no WebAssembly kernel bytes/);
    assert.deepEqual(d.tried.map((t) => t.kind), ['webgpu', 'wasm', 'typescript']);
  });

  test('the relaxed-SIMD (FMA) build matches the reference where the engine enables it', async () => {
    const relaxed = findKernelFile(WASM_KERNEL_FILES.relaxed);
    assert.ok(relaxed, 'kernels-relaxed.wasm is built');
    // [m, k, n, transA, transB]: A read in place (row-major and transposed), one A block, the blocked path, and a
    // short product computed transposed.
    const shapes = [[7, 13, 5, 0, 0], [9, 70, 8, 1, 0], [64, 300, 33, 0, 0], [130, 257, 129, 0, 0], [32, 300, 129, 0, 1]];
    if (wasmRelaxedSimdSupported()) {
      const be = await createWasmBackend(readKernelBytes(WASM_KERNEL_FILES.relaxed));
      for (const [m, k, n, tA, tB] of shapes) {
        const a = rand(m * k);
        const b = rand(k * n);
        const plan: MatmulPlan = { batch: 1, m, k, n, aOffsets: new Int32Array(1), bOffsets: new Int32Array(1), transA: tA === 1, transB: tB === 1 };
        assertRel(be.matmul(a, b, plan, 'float32'), referenceBackend.matmul(a, b, plan, 'float32'), 2e-6, `relaxed matmul ${m}x${k}x${n}`);
      }
      return;
    }
    // Node 20 enables relaxed SIMD only behind a flag: check that build in a child process.
    const script = `
      const { createWasmBackend } = require(${JSON.stringify(path.join(__dirname, '../engine/backend/wasm/index.js'))});
      const { referenceBackend } = require(${JSON.stringify(path.join(__dirname, '../engine/backend/reference.js'))});
      createWasmBackend(require('fs').readFileSync(${JSON.stringify(relaxed)})).then((be) => {
        let worst = 0;
        for (const [m, k, n, tA, tB] of ${JSON.stringify(shapes)}) {
          const a = Float32Array.from({ length: m * k }, (_, i) => Math.sin(i));
          const b = Float32Array.from({ length: k * n }, (_, i) => Math.cos(i));
          const plan = { batch: 1, m, k, n, aOffsets: new Int32Array(1), bOffsets: new Int32Array(1), transA: tA === 1, transB: tB === 1 };
          const x = be.matmul(a, b, plan, 'float32'), y = referenceBackend.matmul(a, b, plan, 'float32');
          let num = 0, den = 0;
          for (let i = 0; i < y.length; i++) { num += (x[i] - y[i]) ** 2; den += y[i] ** 2; }
          worst = Math.max(worst, Math.sqrt(num / den));
        }
        console.log(JSON.stringify({ relaxed: be.relaxedSimd, worst }));
      });`;
    const r = spawnSync(process.execPath, ['--experimental-wasm-relaxed-simd', '-e', script], { encoding: 'utf8' });
    if (r.status !== 0 && /bad option/.test(r.stderr)) return; // a Node without the flag (and without relaxed SIMD)
    assert.equal(r.status, 0, r.stderr);
    const out = JSON.parse(r.stdout.trim());
    assert.equal(out.relaxed, true);
    assert.ok(out.worst <= 2e-6, `relaxed matmul relative error ${out.worst}`);
  });

  test('createWasmBackend accepts an ArrayBuffer', async () => {
    const u8 = bytes();
    const be = await createWasmBackend(u8.buffer.slice(u8.byteOffset, u8.byteOffset + u8.byteLength) as ArrayBuffer);
    assert.equal(be.name, 'wasm-simd');
  });
});

test('wasm GELU keeps relative precision in the negative tail, like the reference', async () => {
  const be = await createWasmBackend(readKernelBytes(WASM_KERNEL_FILES.simd));
  const x = new Float32Array([-7, -9, -3, 0.5]);
  for (const op of ['gelu', 'geluTanh'] as const) {
    const ours = be.unary(op, x, 0, 'float32');
    const ref = referenceBackend.unary(op, Float64Array.from(x), 0, 'float64');
    for (let i = 0; i < x.length; i++) {
      assert.ok(Math.abs(ours[i] / ref[i] - 1) < 1e-6, `${op}(${x[i]}): ${ours[i]} vs ${ref[i]}`);
    }
  }
  const g = new Float32Array([1, 1, 1, 1]);
  for (const op of ['geluGrad', 'geluTanhGrad'] as const) {
    const ours = be.binary(op, g, [4], x, [4], [4], 'float32');
    const ref = referenceBackend.binary(op, Float64Array.from(g), [4], Float64Array.from(x), [4], [4], 'float64');
    for (let i = 0; i < x.length; i++) assert.ok(Math.abs(ours[i] / ref[i] - 1) < 1e-6, `${op}(${x[i]}): ${ours[i]} vs ${ref[i]}`);
  }
});

test('erf, geluGrad and geluTanhGrad on float64 lane pairs round exactly as the reference (dense sweep, range edges, specials)', async () => {
  // Activations mostly fall in erf's small range, where these kernels evaluate two lanes at a time with their own
  // exp: the float32 results must still be the reference's, bit for bit, on both sides of every branch edge.
  const xs: number[] = [];
  for (let v = -12; v <= 12; v += 1 / 1024) xs.push(v);
  for (const c of [0.84375, 0.84375 / Math.SQRT1_2, 0.25 * Math.SQRT2, 1e-20, 1e-40, 30, 700, Infinity, NaN, 0]) {
    for (const s of [1, -1]) xs.push(s * c, Math.fround(s * c * (1 + 1e-7)), Math.fround(s * c * (1 - 1e-7)));
  }
  const x = Float32Array.from(xs);
  const n = x.length;
  const g = Float32Array.from(xs, (_, i) => (i % 7) - 3.3);
  const bits = (a: Float32Array) => new Int32Array(a.buffer, a.byteOffset, a.length);
  for (const be of [wasm, await createWasmBackend(readKernelBytes(WASM_KERNEL_FILES.relaxed)).catch(() => wasm)]) {
    const cases: [string, Float32Array, Float32Array][] = [
      ['erf', be.unary('erf', x, 0, 'float32') as Float32Array, referenceBackend.unary('erf', x, 0, 'float32') as Float32Array],
      ...(['geluGrad', 'geluTanhGrad'] as const).map((op): [string, Float32Array, Float32Array] =>
        [op, be.binary(op, g, [n], x, [n], [n], 'float32') as Float32Array, referenceBackend.binary(op, g, [n], x, [n], [n], 'float32') as Float32Array]),
    ];
    for (const [op, got, want] of cases) {
      const gb = bits(got), wb = bits(want);
      for (let i = 0; i < n; i++) {
        if (Number.isNaN(want[i])) assert.ok(Number.isNaN(got[i]), `${op}(${x[i]}): ${got[i]}, want NaN`);
        else assert.equal(gb[i], wb[i], `${op}(${x[i]}): ${got[i]} vs ${want[i]}`);
      }
    }
  }
});
