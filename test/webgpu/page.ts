/**
 * Browser side of the WebGPU kernel tests (bundled by webgpu.browser.test.mjs with esbuild).
 *
 * Runs every WebGPU kernel on seeded random inputs (odd sizes, broadcasts, transA/transB, batch
 * offsets, -inf masks, NaN/inf specials) against the TypeScript reference backend, and times each
 * kernel plus a 512^3 matmul. `window.__runWebGpuTests()` resolves to a JSON-able PageReport; when
 * there is no adapter the report says so (adapter: null, reason).
 */
import { referenceBackend as ref } from '../../engine/backend/reference';
import { BinaryKernel, Conv2dGeometry, MatmulPlan, UnaryKernel } from '../../engine/backend/backend';
import { Rng } from '../../engine/random';
import { Shape, broadcastShapes, sizeOf, stridesOf, broadcastStrides } from '../../engine/shape';
import { GpuTensorBuffer, WebGpuDevice } from '../../engine/backend/webgpu';
import './models';
import './ops';

export const TOLERANCE = 1e-4;

export interface CaseResult {
  kernel: string;
  name: string;
  /**
   * Relative error as the project's other backend tests measure it (test/helpers.ts relativeError):
   * ||got - want||_2 / ||want||_2 over the finite entries; this is what TOLERANCE applies to.
   */
  maxRelErr: number;
  /** Stricter, informational: max_i |got_i - want_i| / max(|want_i|, 1e-3 max_j |want_j|). */
  maxElemErr: number;
  maxAbsErr: number;
  /** Entries that must match exactly and do not: non-finite values (NaN, +-inf) and integer outputs. */
  mismatches: number;
  ok: boolean;
  error?: string;
}

export interface KernelTiming {
  kernel: string;
  what: string;
  msPerCall: number;
  reps: number;
}

export interface PageReport {
  adapter: { vendor?: string; architecture?: string; description?: string; isFallbackAdapter?: boolean } | null;
  reason: string;
  userAgent: string;
  compileErrors: string[];
  cases: CaseResult[];
  timings: KernelTiming[];
  matmulBench: { m: number; k: number; n: number; msPerCall: number; gflops: number; reps: number; maxRelErr: number; maxElemErr: number } | null;
  totalMs: number;
}

// ---------------------------------------------------------------- data

const rng = new Rng(20261122);

function uniform(n: number, lo = -1, hi = 1): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + (hi - lo) * rng.uniform();
  return a;
}

function ints(n: number, k: number, lo = 0): Float32Array {
  const a = new Float32Array(n);
  for (let i = 0; i < n; i++) a[i] = lo + rng.int(k);
  return a;
}

function awayFromZero(n: number, lo = 0.1, hi = 3): Float32Array {
  const a = uniform(n, lo, hi);
  for (let i = 0; i < n; i++) if (rng.uniform() < 0.5) a[i] = -a[i];
  return a;
}

/** Random values with a sprinkling of specials at fixed positions. */
function withSpecials(a: Float32Array, specials: number[]): Float32Array {
  specials.forEach((v, i) => (a[(i * 7919) % a.length] = v));
  return a;
}

const SPECIALS = [NaN, Infinity, -Infinity, 0, -0, 1e-30, -1e-30, 88.5, -88.5, 1e30];

// ---------------------------------------------------------------- comparison

type Host = Float32Array | Float64Array | Int32Array | Uint8Array;

interface Comparison {
  maxRelErr: number;
  maxElemErr: number;
  maxAbsErr: number;
  mismatches: number;
  /** First offending entry, for the failure message. */
  first?: string;
}

function compare(got: Host, want: Host, integer = false): Comparison {
  if (got.length !== want.length) return { maxRelErr: Infinity, maxElemErr: Infinity, maxAbsErr: Infinity, mismatches: Math.abs(got.length - want.length), first: `length ${got.length} vs ${want.length}` };
  if (integer) {
    let mismatches = 0;
    let first: string | undefined;
    for (let i = 0; i < got.length; i++) {
      if (got[i] !== want[i]) {
        mismatches++;
        first ??= `[${i}] got ${got[i]} want ${want[i]}`;
      }
    }
    const e = mismatches ? Infinity : 0;
    return { maxRelErr: e, maxElemErr: e, maxAbsErr: e, mismatches, first };
  }
  let scale = 0;
  for (let i = 0; i < want.length; i++) if (Number.isFinite(want[i])) scale = Math.max(scale, Math.abs(want[i]));
  const floor = Math.max(1e-3 * scale, 1e-30);
  let maxElemErr = 0;
  let maxAbsErr = 0;
  let mismatches = 0;
  let num = 0;
  let den = 0;
  let first: string | undefined;
  for (let i = 0; i < want.length; i++) {
    const w = want[i];
    const g = got[i];
    if (!Number.isFinite(w) || !Number.isFinite(g)) {
      const same = (Number.isNaN(w) && Number.isNaN(g)) || w === g;
      if (!same) {
        mismatches++;
        first ??= `[${i}] got ${g} want ${w}`;
      }
      continue;
    }
    const abs = Math.abs(g - w);
    num += abs * abs;
    den += w * w;
    maxAbsErr = Math.max(maxAbsErr, abs);
    const e = abs / Math.max(Math.abs(w), floor);
    if (e > maxElemErr) {
      maxElemErr = e;
      if (e > TOLERANCE) first ??= `[${i}] got ${g} want ${w}`;
    }
  }
  const maxRelErr = mismatches ? Infinity : Math.sqrt(num) / Math.max(Math.sqrt(den), 1e-30);
  return { maxRelErr, maxElemErr: mismatches ? Infinity : maxElemErr, maxAbsErr, mismatches, first };
}

// ---------------------------------------------------------------- harness

let dev: WebGpuDevice;
const results: CaseResult[] = [];
const timings: KernelTiming[] = [];

type Pair = [label: string, got: GpuTensorBuffer, want: Host];

/** Kernels to run (all when null): options.only of runWebGpuTests. */
let only: Set<string> | null = null;

async function check(kernel: string, name: string, run: () => Pair[] | Promise<Pair[]>): Promise<void> {
  if (only && !only.has(kernel)) return;
  dev.gpu.pushErrorScope('validation');
  let error: string | undefined;
  let pairs: Pair[] = [];
  try {
    pairs = await run();
  } catch (e) {
    error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  }
  const scopeError = await dev.gpu.popErrorScope();
  if (scopeError) error = `${error ? `${error}; ` : ''}WebGPU validation: ${scopeError.message}`;
  let maxRelErr = 0;
  let maxElemErr = 0;
  let maxAbsErr = 0;
  let mismatches = 0;
  const notes: string[] = [];
  for (const [label, got, want] of pairs) {
    try {
      const host = await dev.read(got);
      const c = compare(host, want, want instanceof Int32Array);
      maxRelErr = Math.max(maxRelErr, c.maxRelErr);
      maxElemErr = Math.max(maxElemErr, c.maxElemErr);
      maxAbsErr = Math.max(maxAbsErr, c.maxAbsErr);
      mismatches += c.mismatches;
      if (c.mismatches || !(c.maxRelErr <= TOLERANCE)) notes.push(`${label}: relErr ${c.maxRelErr.toExponential(2)}, ${c.mismatches} mismatches, first ${c.first}`);
    } catch (e) {
      error = `${error ? `${error}; ` : ''}${label}: ${e instanceof Error ? e.message : String(e)}`;
    }
    got.release();
  }
  if (notes.length && !error) error = notes.join('; ');
  results.push({ kernel, name, maxRelErr, maxElemErr, maxAbsErr, mismatches, ok: !error && mismatches === 0 && maxRelErr <= TOLERANCE, error });
}

/** Times `fn` (encodes one kernel call and releases its outputs): calls until ~budget ms, one sync at the end. */
async function time(kernel: string, what: string, fn: () => void, budgetMs = 250): Promise<void> {
  if (only && !only.has(kernel)) return;
  fn();
  await dev.sync();
  let reps = 0;
  const start = performance.now();
  let batch = 1;
  while (performance.now() - start < budgetMs && reps < 2000) {
    for (let i = 0; i < batch; i++) fn();
    reps += batch;
    await dev.sync();
    batch = Math.min(batch * 2, 64);
  }
  const ms = (performance.now() - start) / reps;
  timings.push({ kernel, what, msPerCall: ms, reps });
}

const up = (a: Float32Array) => dev.upload(a);

// ---------------------------------------------------------------- cases

/** sin/cos/tan: the specials without 1e30 (the WGSL argument reduction holds for |x| < ~51000, wgsl.ts), plus 5e4. */
const TRIG_SPECIALS = [...SPECIALS.filter((v) => v !== 1e30), 5e4, -5e4];

const UNARY_DOMAIN: Record<UnaryKernel, { data: () => Float32Array; params?: number[]; specials?: boolean | number[] }> = {
  neg: { data: () => uniform(1037, -5, 5), specials: true },
  exp: { data: () => uniform(1037, -20, 20), specials: true },
  log: { data: () => uniform(1037, 0.01, 50), specials: true },
  sqrt: { data: () => uniform(1037, 0, 50), specials: true },
  rsqrt: { data: () => uniform(1037, 0.01, 50), specials: true },
  abs: { data: () => uniform(1037, -5, 5), specials: true },
  sign: { data: () => uniform(1037, -5, 5), specials: true },
  square: { data: () => uniform(1037, -30, 30), specials: true },
  reciprocal: { data: () => awayFromZero(1037, 0.01, 30), specials: true },
  tanh: { data: () => uniform(1037, -12, 12), specials: true },
  sigmoid: { data: () => uniform(1037, -40, 40), specials: true },
  relu: { data: () => uniform(1037, -5, 5), specials: true },
  erf: { data: () => uniform(1037, -6, 6), specials: true },
  gelu: { data: () => uniform(1037, -8, 8), specials: true },
  geluTanh: { data: () => uniform(1037, -8, 8), specials: true },
  leakyRelu: { data: () => uniform(1037, -5, 5), params: [0.01, 0.2], specials: true },
  powScalar: { data: () => uniform(1037, 0.01, 4), params: [2, 3, 0.5, -1.5, 2.7, -2, 0] },
  scale: { data: () => uniform(1037, -5, 5), params: [0.37, -3], specials: true },
  addScalar: { data: () => uniform(1037, -5, 5), params: [-1.25], specials: true },
  // The WGSL trig functions reduce the argument themselves (wgsl.ts): a wide range checks the reduction.
  sin: { data: () => uniform(1037, -200, 200), specials: TRIG_SPECIALS },
  cos: { data: () => uniform(1037, -200, 200), specials: TRIG_SPECIALS },
  tan: { data: () => uniform(1037, -1.5, 1.5), specials: TRIG_SPECIALS },
  asin: { data: () => uniform(1037, -1, 1), specials: true },
  acos: { data: () => uniform(1037, -1, 1), specials: true },
  atan: { data: () => uniform(1037, -60, 60), specials: true },
};

async function unaryCases(): Promise<void> {
  for (const op of Object.keys(UNARY_DOMAIN) as UnaryKernel[]) {
    const spec = UNARY_DOMAIN[op];
    for (const p of spec.params ?? [0]) {
      const x = spec.data();
      await check('unary', `${op}(p=${p}) n=1037`, () => [[op, dev.unary(op, up(x), p), ref.unary(op, x, p, 'float32')]]);
    }
    if (spec.specials) {
      const x = withSpecials(spec.data(), spec.specials === true ? SPECIALS : spec.specials);
      await check('unary', `${op} with NaN/inf/0 specials`, () => [[op, dev.unary(op, up(x), spec.params?.[0] ?? 0), ref.unary(op, x, spec.params?.[0] ?? 0, 'float32')]]);
    }
  }
  // Negative bases with integer exponents, and x = 0.
  const neg = uniform(513, -3, 3);
  neg[0] = 0;
  neg[1] = -0;
  for (const p of [2, 3, -1, -3, 0.5]) {
    await check('unary', `powScalar(p=${p}) mixed-sign base incl. 0`, () => [['pow', dev.unary('powScalar', up(neg), p), ref.unary('powScalar', neg, p, 'float32')]]);
  }
}

const BINARY_SHAPES: [Shape, Shape][] = [
  [[37, 29], [37, 29]],
  [[5, 1, 7], [3, 1]],
  [[37, 29], []],
  [[1, 29], [37, 29]],
  [[2, 3, 1, 5, 1], [4, 1, 6]],
];

function binaryData(op: BinaryKernel, which: 'a' | 'b', n: number): Float32Array {
  switch (op) {
    case 'div':
      return which === 'b' ? awayFromZero(n, 0.05, 4) : uniform(n, -5, 5);
    case 'pow':
      return which === 'a' ? uniform(n, 0.01, 4) : uniform(n, -2.5, 3);
    case 'eq':
    case 'max':
    case 'min':
      return ints(n, 4);
    case 'tanhGrad':
      return which === 'b' ? uniform(n, -1, 1) : uniform(n, -3, 3);
    case 'sigmoidGrad':
      return which === 'b' ? uniform(n, 0, 1) : uniform(n, -3, 3);
    case 'geluGrad':
    case 'geluTanhGrad':
    case 'erfGrad':
      // Not beyond -6: there the float64 reference itself loses relative accuracy (1 + tanh(u) and
      // 1 + erf(z) cancel: 3e-7 at x = -6, 7e-3 at x = -7), while the WGSL uses cancellation-free forms.
      return which === 'b' ? uniform(n, -6, 6) : uniform(n, -3, 3);
    default:
      return uniform(n, -5, 5);
  }
}

async function binaryCases(): Promise<void> {
  const ops: BinaryKernel[] = ['add', 'sub', 'mul', 'div', 'pow', 'max', 'min', 'eq', 'reluGrad', 'leakyReluGrad', 'absGrad', 'tanhGrad', 'sigmoidGrad', 'erfGrad', 'geluGrad', 'geluTanhGrad'];
  for (const op of ops) {
    for (const [as, bs] of BINARY_SHAPES) {
      const out = broadcastShapes(as, bs);
      const a = binaryData(op, 'a', sizeOf(as));
      const b = binaryData(op, 'b', sizeOf(bs));
      const p = op === 'leakyReluGrad' ? 0.02 : 0;
      await check('binary', `${op} [${as}] x [${bs}]`, () => [[op, dev.binary(op, up(a), as, up(b), bs, out, p), ref.binary(op, a, as, b, bs, out, 'float32', p)]]);
    }
  }
  // Specials: NaN propagation in max/min, pow of negative bases and zero, inf arithmetic.
  const a = withSpecials(uniform(257, -3, 3), SPECIALS);
  const b = withSpecials(ints(257, 5, -2), [NaN, 2, 3, -1, 0.5, Infinity]);
  for (const op of ['max', 'min', 'pow', 'add', 'mul', 'div', 'eq'] as BinaryKernel[]) {
    await check('binary', `${op} with NaN/inf/0 specials`, () => [[op, dev.binary(op, up(a), [257], up(b), [257], [257]), ref.binary(op, a, [257], b, [257], [257], 'float32')]]);
  }
}

async function whereCases(): Promise<void> {
  const cases: [Shape, Shape, Shape][] = [
    [[5, 1, 7], [1, 3, 7], []],
    [[37, 29], [37, 29], [37, 29]],
    [[29], [37, 29], [37, 1]],
  ];
  for (const [cs, as, bs] of cases) {
    const out = broadcastShapes(cs, as, bs);
    const cond = new Uint8Array(sizeOf(cs));
    for (let i = 0; i < cond.length; i++) cond[i] = rng.uniform() < 0.5 ? 1 : 0;
    const a = withSpecials(uniform(sizeOf(as)), [-Infinity]);
    const b = uniform(sizeOf(bs));
    await check('where', `cond [${cs}] a [${as}] b [${bs}] (device mask)`, () => [['where', dev.where(dev.uploadBool(cond), cs, up(a), as, up(b), bs, out), ref.where(cond, cs, a, as, b, bs, out, 'float32')]]);
    await check('where', `cond [${cs}] a [${as}] b [${bs}] (host mask)`, () => [['where', dev.where(cond, cs, up(a), as, up(b), bs, out), ref.where(cond, cs, a, as, b, bs, out, 'float32')]]);
  }
}

const REDUCE_CASES: [Shape, number[]][] = [
  [[17, 33, 9], [1]],
  [[17, 33, 9], [0, 2]],
  [[17, 33, 9], [0, 1, 2]],
  [[17, 33, 9], [2]],
  [[1000, 3], [0]],
  [[3, 5001], [1]],
  [[4, 1, 6], [1]],
  [[2, 3, 4, 5, 6], [1, 3]],
  [[0, 5], [0]],
  [[3, 20000], [1]],
];

async function reduceCases(): Promise<void> {
  for (const op of ['sum', 'max', 'min'] as const) {
    for (const [shape, axes] of REDUCE_CASES) {
      const x = uniform(sizeOf(shape), -4, 4);
      await check('reduce', `${op} [${shape}] axes [${axes}]`, () => [[op, dev.reduce(op, up(x), shape, axes), ref.reduce(op, x, shape, axes, 'float32')]]);
    }
    const x = withSpecials(uniform(6 * 50, -4, 4), [NaN, -Infinity, Infinity]);
    await check('reduce', `${op} [6,50] axes [1] with NaN/inf`, () => [[op, dev.reduce(op, up(x), [6, 50], [1]), ref.reduce(op, x, [6, 50], [1], 'float32')]]);
  }
}

async function argReduceCases(): Promise<void> {
  for (const op of ['max', 'min'] as const) {
    for (const [shape, axes] of REDUCE_CASES.filter(([s]) => sizeOf(s) > 0)) {
      const x = ints(sizeOf(shape), 7); // many ties: first index must win
      await check('argReduce', `${op} [${shape}] axes [${axes}] (ties)`, () => [[op, dev.argReduce(op, up(x), shape, axes), ref.argReduce(op, x, shape, axes)]]);
    }
    const x = withSpecials(uniform(6 * 50, -4, 4), [NaN, -Infinity, Infinity, NaN]);
    await check('argReduce', `${op} [6,50] axes [1] with NaN/inf`, () => [[op, dev.argReduce(op, up(x), [6, 50], [1]), ref.argReduce(op, x, [6, 50], [1])]]);
  }
}

function plan(batch: number, m: number, k: number, n: number, aOffsets: number[], bOffsets: number[], transA: boolean, transB: boolean): MatmulPlan {
  return { batch, m, k, n, aOffsets: Int32Array.from(aOffsets), bOffsets: Int32Array.from(bOffsets), transA, transB };
}

async function matmulCases(): Promise<void> {
  const sizes: [number, number, number][] = [[37, 53, 29], [1, 70, 33], [19, 1, 7], [130, 257, 67], [64, 64, 64], [5, 3, 1]];
  for (const [m, k, n] of sizes) {
    for (const ta of [false, true]) {
      for (const tb of [false, true]) {
        const a = uniform(m * k);
        const b = uniform(k * n);
        const p = plan(1, m, k, n, [0], [0], ta, tb);
        await check('matmul', `${m}x${k}x${n} transA=${ta} transB=${tb}`, () => [['C', dev.matmul(up(a), up(b), p), ref.matmul(a, b, p, 'float32')]]);
      }
    }
  }
  // Batched, with broadcast batch offsets ([2,3] x [3] style) and an offset into a larger buffer.
  const [m, k, n] = [19, 70, 33];
  for (const ta of [false, true]) {
    for (const tb of [false, true]) {
      const a = uniform(3 * m * k + 5);
      const b = uniform(2 * k * n);
      const p = plan(6, m, k, n, [5, 5 + m * k, 5 + 2 * m * k, 5, 5 + m * k, 5 + 2 * m * k], [0, 0, 0, k * n, k * n, k * n], ta, tb);
      await check('matmul', `batch 6 broadcast offsets ${m}x${k}x${n} transA=${ta} transB=${tb}`, () => [['C', dev.matmul(up(a), up(b), p), ref.matmul(a, b, p, 'float32')]]);
    }
  }
  await check('matmul', 'k = 0 gives zeros', () => [['C', dev.matmul(up(new Float32Array(0)), up(new Float32Array(0)), plan(2, 3, 0, 4, [0, 0], [0, 0], false, false)), new Float32Array(24)]]);
}

async function stridedCases(): Promise<void> {
  const x = uniform(4 * 5 * 6);
  const own = stridesOf([4, 5, 6]);
  await check('strided', 'permute [4,5,6] -> (2,0,1)', () => [['p', dev.strided(up(x), [6, 4, 5], [own[2], own[0], own[1]], 0), ref.strided(x, [6, 4, 5], [own[2], own[0], own[1]], 0, 'float32')]]);
  await check('strided', 'slice [1:4:2, ::-1, 1:5] (negative step, offset)', () => {
    const shape = [2, 5, 4];
    const strides = [own[0] * 2, -own[1], own[2]];
    const offset = 1 * own[0] + 4 * own[1] + 1 * own[2];
    return [['s', dev.strided(up(x), shape, strides, offset), ref.strided(x, shape, strides, offset, 'float32')]];
  });
  const row = uniform(7);
  await check('strided', 'expand [1,7] -> [5,7] (zero strides)', () => [['e', dev.strided(up(row), [5, 7], broadcastStrides([1, 7], [5, 7]), 0), ref.strided(row, [5, 7], broadcastStrides([1, 7], [5, 7]), 0, 'float32')]]);
  const big = uniform(3 * 7 * 11 * 13);
  const s4 = stridesOf([3, 7, 11, 13]);
  await check('strided', 'transpose last two of [3,7,11,13]', () => [['t', dev.strided(up(big), [3, 7, 13, 11], [s4[0], s4[1], s4[3], s4[2]], 0), ref.strided(big, [3, 7, 13, 11], [s4[0], s4[1], s4[3], s4[2]], 0, 'float32')]]);
}

async function stridedScatterAddCases(): Promise<void> {
  const own = stridesOf([4, 5, 6]);
  const shape = [2, 5, 4];
  const strides = [own[0] * 2, -own[1], own[2]];
  const offset = 1 * own[0] + 4 * own[1] + 1 * own[2];
  const g = uniform(sizeOf(shape));
  await check('stridedScatterAdd', 'slice VJP (negative step, offset)', () => [['s', dev.stridedScatterAdd(up(g), shape, strides, offset, 120), ref.stridedScatterAdd(g, shape, strides, offset, 120, 'float32')]]);
  const g2 = uniform(5 * 7);
  await check('stridedScatterAdd', 'expand VJP [5,7] -> [7] (zero strides, atomic path)', () => [['e', dev.stridedScatterAdd(up(g2), [5, 7], [0, 1], 0, 7), ref.stridedScatterAdd(g2, [5, 7], [0, 1], 0, 7, 'float32')]]);
  const g3 = uniform(9 * 4);
  await check('stridedScatterAdd', 'overlapping windows [9,4] strides [1,1] (atomic path)', () => [['o', dev.stridedScatterAdd(up(g3), [9, 4], [1, 1], 2, 15), ref.stridedScatterAdd(g3, [9, 4], [1, 1], 2, 15, 'float32')]]);
}

async function concatCases(): Promise<void> {
  const sizes = [3, 11, 0, 1];
  const outer = 7;
  const parts = sizes.map((s) => uniform(outer * s));
  await check('concat', `outer 7 sizes [${sizes}]`, () => [['c', dev.concat(parts.map(up), outer, sizes), ref.concat(parts, outer, sizes, 'float32')]]);
  const single = [uniform(13)];
  await check('concat', 'one part, outer 1', () => [['c', dev.concat(single.map(up), 1, [13]), ref.concat(single, 1, [13], 'float32')]]);
}

function causalMasked(outer: number, n: number): Float32Array {
  // [outer, n, n] scores with -inf above the diagonal; the last row block is entirely -inf.
  const x = uniform(outer * n * n, -6, 6);
  for (let o = 0; o < outer; o++) {
    for (let r = 0; r < n; r++) {
      for (let c = 0; c < n; c++) if (c > r || o === outer - 1) x[(o * n + r) * n + c] = -Infinity;
    }
  }
  return x;
}

const SOFTMAX_SHAPES: [number, number, number][] = [[6, 37, 1], [3, 300, 1], [4, 13, 5], [2, 1, 3], [1, 1000, 1], [2, 20000, 1]];

async function softmaxCases(): Promise<void> {
  for (const log of [false, true]) {
    for (const [outer, n, inner] of SOFTMAX_SHAPES) {
      const x = uniform(outer * n * inner, -8, 8);
      await check('softmax', `${log ? 'log_' : ''}softmax [${outer},${n},${inner}]`, () => [['y', dev.softmax(up(x), outer, n, inner, log), ref.softmax(x, outer, n, inner, log, 'float32')]]);
    }
    const m = causalMasked(4, 19);
    await check('softmax', `${log ? 'log_' : ''}softmax causal -inf mask [76,19] (+ all -inf rows -> NaN)`, () => [['y', dev.softmax(up(m), 4 * 19, 19, 1, log), ref.softmax(m, 4 * 19, 19, 1, log, 'float32')]]);
  }
}

async function softmaxBackwardCases(): Promise<void> {
  for (const log of [false, true]) {
    for (const [outer, n, inner] of SOFTMAX_SHAPES) {
      const x = uniform(outer * n * inner, -8, 8);
      const y = ref.softmax(x, outer, n, inner, log, 'float32') as Float32Array;
      const g = uniform(x.length);
      await check('softmaxBackward', `${log ? 'log_' : ''}softmax VJP [${outer},${n},${inner}]`, () => [['gx', dev.softmaxBackward(up(y), up(g), outer, n, inner, log), ref.softmaxBackward(y, g, outer, n, inner, log, 'float32')]]);
    }
    const m = causalMasked(3, 17).slice(0, 2 * 17 * 17); // masked but no all -inf rows
    const y = ref.softmax(m, 2 * 17, 17, 1, log, 'float32') as Float32Array;
    const g = uniform(y.length);
    await check('softmaxBackward', `${log ? 'log_' : ''}softmax VJP with causal -inf mask`, () => [['gx', dev.softmaxBackward(up(y), up(g), 2 * 17, 17, 1, log), ref.softmaxBackward(y, g, 2 * 17, 17, 1, log, 'float32')]]);
  }
}

const NORM_CASES: { rows: number; n: number; w: boolean; b: boolean; rms: boolean }[] = [
  { rows: 7, n: 37, w: true, b: true, rms: false },
  { rows: 5, n: 300, w: false, b: false, rms: false },
  { rows: 9, n: 64, w: true, b: false, rms: true },
  { rows: 130, n: 17, w: true, b: true, rms: false },
  { rows: 3, n: 1031, w: true, b: true, rms: true },
  { rows: 2, n: 17000, w: true, b: true, rms: false },
];

async function layerNormCases(): Promise<void> {
  for (const c of NORM_CASES) {
    const x = uniform(c.rows * c.n, -3, 5);
    const w = c.w ? uniform(c.n, 0.5, 1.5) : null;
    const b = c.b ? uniform(c.n) : null;
    await check('layerNorm', `${c.rms ? 'rms' : 'layer'}Norm rows ${c.rows} n ${c.n} weight=${c.w} bias=${c.b}`, () => {
      const want = ref.layerNorm(x, w, b, c.rows, c.n, 1e-5, c.rms, 'float32');
      const got = dev.layerNorm(up(x), w && up(w), b && up(b), c.rows, c.n, 1e-5, c.rms);
      return [['y', got.y, want.y], ['mean', got.mean, Float32Array.from(want.mean)], ['rstd', got.rstd, Float32Array.from(want.rstd)]];
    });
  }
}

async function layerNormBackwardCases(): Promise<void> {
  for (const c of NORM_CASES) {
    const x = uniform(c.rows * c.n, -3, 5);
    const w = c.w ? uniform(c.n, 0.5, 1.5) : null;
    const g = uniform(x.length);
    await check('layerNormBackward', `${c.rms ? 'rms' : 'layer'}Norm VJP rows ${c.rows} n ${c.n} weight=${c.w}`, () => {
      const fwd = ref.layerNorm(x, w, null, c.rows, c.n, 1e-5, c.rms, 'float32');
      const want = ref.layerNormBackward(x, w, g, fwd.mean, fwd.rstd, c.rows, c.n, c.rms, 'float32');
      const xd = up(x);
      const wd = w && up(w);
      const gf = dev.layerNorm(xd, wd, null, c.rows, c.n, 1e-5, c.rms);
      gf.y.release();
      const got = dev.layerNormBackward(xd, wd, up(g), gf.mean, gf.rstd, c.rows, c.n, c.rms);
      return [['gx', got.gx, want.gx], ['gw', got.gw, want.gw], ['gb', got.gb, want.gb]];
    });
  }
}

function geometry(n: number, c: number, h: number, w: number, kh: number, kw: number, sh: number, sw: number, ph: number, pw: number, dh: number, dw: number): Conv2dGeometry {
  const oh = Math.floor((h + 2 * ph - dh * (kh - 1) - 1) / sh) + 1;
  const ow = Math.floor((w + 2 * pw - dw * (kw - 1) - 1) / sw) + 1;
  return { n, c, h, w, kh, kw, sh, sw, ph, pw, dh, dw, oh, ow };
}

const CONV_GEOS: [string, Conv2dGeometry][] = [
  ['3x2 kernel stride (2,1) pad (1,0) dilation (2,1)', geometry(2, 3, 9, 11, 3, 2, 2, 1, 1, 0, 2, 1)],
  ['3x3 stride 1 pad 1', geometry(1, 4, 8, 8, 3, 3, 1, 1, 1, 1, 1, 1)],
  ['1x1', geometry(3, 5, 4, 7, 1, 1, 1, 1, 0, 0, 1, 1)],
  ['5x5 stride 3 pad 2', geometry(2, 2, 13, 10, 5, 5, 3, 3, 2, 2, 1, 1)],
];

const POOL_GEOS: [string, Conv2dGeometry][] = [
  ['3x3 stride 2 pad 1', geometry(2, 3, 9, 11, 3, 3, 2, 2, 1, 1, 1, 1)],
  ['2x2 stride 2', geometry(1, 4, 8, 7, 2, 2, 2, 2, 0, 0, 1, 1)],
  ['3x2 stride (1,2) pad (1,1)', geometry(2, 2, 7, 9, 3, 2, 1, 2, 1, 1, 1, 1)],
];

async function convCases(): Promise<void> {
  for (const [name, geo] of CONV_GEOS) {
    const x = uniform(geo.n * geo.c * geo.h * geo.w);
    await check('im2col', name, () => [['cols', dev.im2col(up(x), geo), ref.im2col(x, geo, 'float32')]]);
    const cols = uniform(geo.n * geo.c * geo.kh * geo.kw * geo.oh * geo.ow);
    await check('col2im', name, () => [['img', dev.col2im(up(cols), geo), ref.col2im(cols, geo, 'float32')]]);
  }
}

async function poolCases(): Promise<void> {
  const maxGeos: [string, Conv2dGeometry][] = [...POOL_GEOS, ['2x2 stride 1 dilation 2', geometry(1, 3, 8, 9, 2, 2, 1, 1, 0, 0, 2, 2)]];
  for (const [name, geo] of maxGeos) {
    const x = ints(geo.n * geo.c * geo.h * geo.w, 9); // ties: first max must win
    await check('maxPool2d', `${name} (ties)`, () => {
      const want = ref.maxPool2d(x, geo, 'float32');
      const got = dev.maxPool2d(up(x), geo);
      return [['y', got.y, want.y], ['argmax', got.argmax, want.argmax]];
    });
    const xs = withSpecials(uniform(x.length), [NaN, -Infinity, Infinity]);
    await check('maxPool2d', `${name} with NaN/inf`, () => {
      const want = ref.maxPool2d(xs, geo, 'float32');
      const got = dev.maxPool2d(up(xs), geo);
      return [['y', got.y, want.y], ['argmax', got.argmax, want.argmax]];
    });
    const g = uniform(geo.n * geo.c * geo.oh * geo.ow);
    await check('maxPool2dBackward', `${name} (device argmax) vs scatterAdd`, () => {
      const want = ref.scatterAdd(g, 1, x.length, 1, ref.maxPool2d(x, geo, 'float32').argmax, 'float32');
      const fwd = dev.maxPool2d(up(x), geo);
      fwd.y.release();
      return [['gx', dev.maxPool2dBackward(up(g), fwd.argmax, geo), want]];
    });
  }
  for (const [name, geo] of POOL_GEOS) {
    for (const cip of [true, false]) {
      const x = uniform(geo.n * geo.c * geo.h * geo.w);
      await check('avgPool2d', `${name} countIncludePad=${cip}`, () => [['y', dev.avgPool2d(up(x), geo, cip), ref.avgPool2d(x, geo, cip, 'float32')]]);
      const g = uniform(geo.n * geo.c * geo.oh * geo.ow);
      await check('avgPool2dBackward', `${name} countIncludePad=${cip}`, () => [['gx', dev.avgPool2dBackward(up(g), geo, cip), ref.avgPool2dBackward(g, geo, cip, 'float32')]]);
    }
  }
}

async function gatherCases(): Promise<void> {
  const cases: [number, number, number, number][] = [[3, 17, 5, 23], [1, 50, 64, 9], [4, 6, 1, 31]];
  for (const [outer, axisLen, inner, k] of cases) {
    const x = uniform(outer * axisLen * inner);
    const idx = new Int32Array(k);
    for (let j = 0; j < k; j++) idx[j] = rng.int(axisLen);
    idx[0] = axisLen - 1;
    await check('gather', `[${outer},${axisLen},${inner}] k=${k} host indices`, () => [['y', dev.gather(up(x), outer, axisLen, inner, idx), ref.gather(x, outer, axisLen, inner, idx, 'float32')]]);
    await check('gather', `[${outer},${axisLen},${inner}] k=${k} device indices`, () => [['y', dev.gather(up(x), outer, axisLen, inner, dev.uploadInt32(idx)), ref.gather(x, outer, axisLen, inner, idx, 'float32')]]);
    const g = uniform(outer * k * inner);
    await check('scatterAdd', `[${outer},${axisLen},${inner}] k=${k} repeated host indices (CSR)`, () => [['gx', dev.scatterAdd(up(g), outer, axisLen, inner, idx), ref.scatterAdd(g, outer, axisLen, inner, idx, 'float32')]]);
    await check('scatterAdd', `[${outer},${axisLen},${inner}] k=${k} repeated device indices (atomic)`, () => [['gx', dev.scatterAdd(up(g), outer, axisLen, inner, dev.uploadInt32(idx)), ref.scatterAdd(g, outer, axisLen, inner, idx, 'float32')]]);
  }
}

/** Buffer recycling and queue ordering: released inputs reused as outputs and upload targets before a flush. */
async function lifecycleCases(): Promise<void> {
  await check('device', 'recycled buffers keep call order (release -> reuse before flush)', async () => {
    const a = uniform(4099);
    const b = uniform(4099);
    const da = up(a);
    const s1 = dev.unary('exp', da, 0); // reads da
    da.release(); // da's buffer goes back to the pool while s1 is still unsubmitted
    const db = up(b); // may get da's buffer: upload must not overwrite it before s1 ran
    const s2 = dev.binary('add', s1, [4099], db, [4099], [4099]);
    s1.release();
    db.release();
    const want = ref.binary('add', ref.unary('exp', a, 0, 'float32'), [4099], b, [4099], [4099], 'float32');
    return [['chain', s2, want]];
  });
  await check('device', 'more than 65535 workgroups: linear grid folds into y (unary on 2^24 + 1001 elements)', () => {
    const n = (1 << 24) + 1001;
    const x = new Float32Array(n);
    for (let i = 0; i < n; i += 4099) x[i] = i;
    const want = ref.unary('neg', x, 0, 'float32');
    return [['neg', dev.unary('neg', up(x), 0), want]];
  });
  await check('device', 'more than 65535 rows: row grid folds (softmax [70001,3], argmax [66000,2], tree sum [66000,300])', () => {
    const x = uniform(70001 * 3, -3, 3);
    const y = ints(66000 * 2, 3);
    const z = uniform(66000 * 300);
    return [
      ['softmax', dev.softmax(up(x), 70001, 3, 1, false), ref.softmax(x, 70001, 3, 1, false, 'float32')],
      ['argmax', dev.argReduce('max', up(y), [66000, 2], [1]), ref.argReduce('max', y, [66000, 2], [1])],
      ['sum', dev.reduce('sum', up(z), [66000, 300], [1]), ref.reduce('sum', z, [66000, 300], [1], 'float32')],
    ];
  });
  await check('device', 'matmul batch > 65535 is split into several dispatches', () => {
    const batch = 65600;
    const a = uniform(batch * 2);
    const b = uniform(batch * 3);
    const p = plan(batch, 1, 2, 3, Array.from({ length: batch }, (_, i) => 2 * i), Array.from({ length: batch }, (_, i) => 3 * (batch - 1 - i)), false, false);
    p.k = 1;
    p.n = 3;
    p.aOffsets = Int32Array.from({ length: batch }, (_, i) => 2 * i + 1);
    return [['C', dev.matmul(up(a), up(b), p), ref.matmul(a, b, p, 'float32')]];
  });
  await check('device', '600 chained dispatches (parameter arena wraps) stay correct', () => {
    let x = up(new Float32Array(1000));
    for (let i = 0; i < 600; i++) {
      const y = dev.unary('addScalar', x, 1);
      x.release();
      x = y;
    }
    return [['sum', x, new Float32Array(1000).fill(600)]];
  });
}

// ---------------------------------------------------------------- timing

async function timeKernels(): Promise<void> {
  const n = 1 << 20;
  const x = up(uniform(n, 0.1, 2));
  const y = up(uniform(n, 0.1, 2));
  const shape = [1024, 1024];
  await time('unary', 'gelu 1M', () => dev.unary('gelu', x).release());
  await time('unary', 'exp 1M', () => dev.unary('exp', x).release());
  await time('binary', 'add 1M same shape', () => dev.binary('add', x, shape, y, shape, shape).release());
  const row = up(uniform(1024));
  await time('binary', 'mul 1M x row broadcast', () => dev.binary('mul', x, shape, row, [1024], shape).release());
  const mask = dev.uploadBool(Uint8Array.from({ length: n }, (_, i) => i & 1));
  await time('where', 'where 1M', () => dev.where(mask, shape, x, shape, y, shape, shape).release());
  await time('reduce', 'sum 1M rows [1024,1024] axis 1', () => dev.reduce('sum', x, shape, [1]).release());
  await time('reduce', 'sum 1M cols [1024,1024] axis 0', () => dev.reduce('sum', x, shape, [0]).release());
  await time('reduce', 'sum all 1M', () => dev.reduce('sum', x, shape, [0, 1]).release());
  await time('argReduce', 'argmax [1024,1024] axis 1', () => dev.argReduce('max', x, shape, [1]).release());
  const p256 = plan(1, 256, 256, 256, [0], [0], false, false);
  const a256 = up(uniform(256 * 256));
  await time('matmul', '256x256x256', () => dev.matmul(a256, a256, p256).release());
  await time('strided', 'transpose [1024,1024]', () => dev.strided(x, shape, [1, 1024], 0).release());
  const half = up(uniform(n / 2));
  await time('stridedScatterAdd', 'slice VJP [512,1024] of [1024,1024]', () => dev.stridedScatterAdd(half, [512, 1024], [2048, 1], 0, 2048 * 512).release());
  await time('concat', 'concat 2 x [512,1024] axis 1', () => dev.concat([half, half], 512, [1024, 1024]).release());
  await time('softmax', 'softmax [1024,1024]', () => dev.softmax(x, 1024, 1024, 1, false).release());
  const sm = dev.softmax(x, 1024, 1024, 1, false);
  await time('softmaxBackward', 'softmax VJP [1024,1024]', () => dev.softmaxBackward(sm, y, 1024, 1024, 1, false).release());
  const w = up(uniform(1024));
  await time('layerNorm', 'layerNorm [1024,1024]', () => {
    const r = dev.layerNorm(x, w, w, 1024, 1024, 1e-5, false);
    r.y.release();
    r.mean.release();
    r.rstd.release();
  });
  const ln = dev.layerNorm(x, w, w, 1024, 1024, 1e-5, false);
  await time('layerNormBackward', 'layerNorm VJP [1024,1024]', () => {
    const r = dev.layerNormBackward(x, w, y, ln.mean, ln.rstd, 1024, 1024, false);
    r.gx.release();
    r.gw.release();
    r.gb.release();
  });
  const geo = geometry(8, 16, 32, 32, 3, 3, 1, 1, 1, 1, 1, 1);
  const img = up(uniform(8 * 16 * 32 * 32));
  await time('im2col', 'im2col [8,16,32,32] 3x3', () => dev.im2col(img, geo).release());
  const cols = dev.im2col(img, geo);
  await time('col2im', 'col2im [8,16,32,32] 3x3', () => dev.col2im(cols, geo).release());
  const pgeo = geometry(8, 16, 32, 32, 2, 2, 2, 2, 0, 0, 1, 1);
  await time('maxPool2d', 'maxPool 2x2 [8,16,32,32]', () => {
    const r = dev.maxPool2d(img, pgeo);
    r.y.release();
    r.argmax.release();
  });
  const mp = dev.maxPool2d(img, pgeo);
  await time('maxPool2dBackward', 'maxPool VJP 2x2 [8,16,32,32]', () => dev.maxPool2dBackward(mp.y, mp.argmax, pgeo).release());
  await time('avgPool2d', 'avgPool 2x2 [8,16,32,32]', () => dev.avgPool2d(img, pgeo, true).release());
  await time('avgPool2dBackward', 'avgPool VJP 2x2 [8,16,32,32]', () => dev.avgPool2dBackward(mp.y, pgeo, true).release());
  const emb = up(uniform(5000 * 128));
  const ids = new Int32Array(512).map(() => rng.int(5000));
  const dids = dev.uploadInt32(ids);
  await time('gather', 'embedding 512 ids of [5000,128]', () => dev.gather(emb, 1, 5000, 128, dids).release());
  const ge = up(uniform(512 * 128));
  await time('scatterAdd', 'embedding VJP 512 ids -> [5000,128] (host ids, CSR)', () => dev.scatterAdd(ge, 1, 5000, 128, ids).release());
  await time('scatterAdd', 'embedding VJP 512 ids -> [5000,128] (device ids, atomic)', () => dev.scatterAdd(ge, 1, 5000, 128, dids).release());
  for (const t of [x, y, row, mask, a256, half, sm, w, ln.y, ln.mean, ln.rstd, img, cols, mp.y, mp.argmax, emb, dids, ge]) t.release();
}

async function matmulBench(): Promise<PageReport['matmulBench']> {
  const [m, k, n] = [512, 512, 512];
  const a = uniform(m * k);
  const b = uniform(k * n);
  const p = plan(1, m, k, n, [0], [0], false, false);
  const da = up(a);
  const db = up(b);
  const first = dev.matmul(da, db, p);
  const got = await dev.download(first);
  first.release();
  const want = ref.matmul(a, b, p, 'float32');
  const { maxRelErr, maxElemErr } = compare(got, want);
  let reps = 0;
  const start = performance.now();
  while (reps < 3 || (performance.now() - start < 3000 && reps < 50)) {
    dev.matmul(da, db, p).release();
    reps++;
    await dev.sync();
  }
  const ms = (performance.now() - start) / reps;
  da.release();
  db.release();
  return { m, k, n, msPerCall: ms, gflops: (2 * m * k * n) / (ms * 1e6), reps, maxRelErr, maxElemErr };
}

// ---------------------------------------------------------------- entry

async function compileAll(): Promise<string[]> {
  const errors: string[] = [];
  for (const [key, source] of Object.entries(WebGpuDevice.shaderSources())) {
    dev.gpu.pushErrorScope('validation');
    const messages = await dev.compileInfo(key, source);
    const scope = await dev.gpu.popErrorScope();
    errors.push(...messages.filter((m) => /error/i.test(m)));
    if (scope) errors.push(`${key}: ${scope.message}`);
  }
  return errors;
}

export async function runWebGpuTests(options: { bench?: boolean; timing?: boolean; only?: string[] } = {}): Promise<PageReport> {
  const start = performance.now();
  only = options.only?.length ? new Set(options.only) : null;
  const report: PageReport = { adapter: null, reason: '', userAgent: navigator.userAgent, compileErrors: [], cases: results, timings, matmulBench: null, totalMs: 0 };
  try {
    dev = await WebGpuDevice.create();
  } catch (e) {
    report.reason = e instanceof Error ? e.message : String(e);
    report.totalMs = performance.now() - start;
    return report;
  }
  report.adapter = { ...dev.adapterInfo };
  report.reason = `adapter: ${dev.name}${dev.adapterInfo.isFallbackAdapter ? ' (fallback adapter)' : ''}`;
  report.compileErrors = await compileAll();
  await lifecycleCases();
  await unaryCases();
  await binaryCases();
  await whereCases();
  await reduceCases();
  await argReduceCases();
  await matmulCases();
  await stridedCases();
  await stridedScatterAddCases();
  await concatCases();
  await softmaxCases();
  await softmaxBackwardCases();
  await layerNormCases();
  await layerNormBackwardCases();
  await convCases();
  await poolCases();
  await gatherCases();
  if (options.timing !== false) await timeKernels();
  if (options.bench !== false && (!only || only.has('matmul'))) report.matmulBench = await matmulBench();
  report.totalMs = performance.now() - start;
  dev.destroy();
  return report;
}

(globalThis as unknown as { __runWebGpuTests: typeof runWebGpuTests }).__runWebGpuTests = runWebGpuTests;
