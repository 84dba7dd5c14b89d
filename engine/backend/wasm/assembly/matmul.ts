// @ts-nocheck -- AssemblyScript source (compiled by asc via engine/backend/wasm/build.mjs, not by tsc).
/**
 * Single-precision GEMM, C = A B, in the GotoBLAS/BLIS scheme:
 *   for each NC-wide block of columns, for each KC-deep slice of k: pack that part of B into NR-wide
 *   column panels (contiguous, zero-padded),
 *     for each MC-tall block of A: pack it into MR-tall row panels,
 *       for each NR panel of B, for each MR panel of A: the MR x NR register-blocked micro-kernel.
 * The micro-kernel keeps a 4 x 8 tile of C in eight f32x4 accumulators (4 rows x 2 vectors); per k
 * step it loads two B vectors and broadcasts four A values into eight 4-lane multiply-adds (64 flops)
 * with 11 xmm registers live. V8 allocates that without spills; 6x8, 5x8 and 4x12 tiles and an
 * unrolled k loop spill and run slower.
 * A packed B micro-panel (KC x NR floats = 8 KiB) stays in L1 while the ir loop walks the A block
 * (MC x KC floats = 96 KiB) out of L2.
 * With relaxed SIMD enabled at build time the multiply-add is f32x4.relaxed_madd (an FMA where the
 * hardware has one).
 * Shape-driven variants (gemmDirectA for outputs at most DIRECT_N wide, gemmOneBlock for m <= MC, short products
 * computed transposed) skip packing that would not be reused; every one sums the same products in the same order,
 * so all paths give the same bits (test "... give the same bits" in test/backend_wasm.test.ts).
 */

const MR: i32 = 4;
const NR: i32 = 8;
const KC: i32 = 256;
const MC: i32 = 96;
/** Column block: bounds the packed B panel (KC x NC floats = 512 KiB, about half of a typical L2). */
const NC: i32 = 512;

/** Bytes of scratch gemm needs for inner size k and output width n. */
function gemmScratchBytes(k: i32, n: i32): i32 {
  const kc = min(KC, k);
  const nPad = ((min(NC, n) + NR - 1) / NR) * NR;
  return (kc * nPad + MC * kc + MR * NR) * 4 + 64;
}

/**
 * Outputs at most this wide read A in place (row-major or transposed) instead of packing it: each A panel meets
 * at most DIRECT_N / NR panels of B, so packing A (a conv weight: up to 9 MB on ResNet-18's last stage, where
 * n = images x 2 x 2) cost about as much memory traffic as the product itself.
 */
const DIRECT_N: i32 = 32;

/**
 * Outputs at most this wide are computed transposed (C^T = B^T A^T, then copied into C): an n < NR output
 * makes every tile a partial edge tile (half of each 4x8 tile wasted at n = 4, plus the scalar edge copy) and
 * packs the tall A into MR panels that only n columns use. Convolutions on 2x2 feature maps (n = 4 output
 * positions per image) and their gradients hit this on every late layer. Transposed, the n rows become
 * one MR panel and the m columns full NR panels.
 */
const NARROW: i32 = 4;

/**
 * Short wide outputs with B stored transposed (at most DIRECT_N rows, a multiple of NR, at least SHORT_MIN_N
 * columns: ConvNeXt's last stages, 8 and 32 tokens, x W^T with W [384-3072, k]) are computed transposed too:
 * C^T = W A^T then has at most DIRECT_N columns, so gemm reads W's rows in place instead of packing all of W for
 * m / 4 uses. (With B row-major, B^T's rows would be columns n floats apart: slower than packing, measured.)
 */
const SHORT_MIN_N: i32 = 64;

@inline function narrowPays(m: i32, n: i32): bool {
  return n <= NARROW && m >= 4 * NR;
}

@inline function shortPays(m: i32, n: i32): bool {
  return m <= DIRECT_N && m % NR == 0 && n >= SHORT_MIN_N;
}

/** Bytes of scratch `product` needs for an [m, k] x [k, n] product. */
export function productScratchBytes(m: i32, k: i32, n: i32): i32 {
  const transposed = gemmScratchBytes(k, m) + n * m * 4 + 128;
  if (narrowPays(m, n)) return transposed;
  if (shortPays(m, n)) return max(transposed, gemmScratchBytes(k, n));
  return gemmScratchBytes(k, n);
}

/**
 * Batches whose products share one A (a convolution's weight across the images) and have outputs at most this
 * wide are folded into one product A [B_0 .. B_batch-1] (the B blocks side by side): A is packed once instead of
 * once per image, and the output gets batch times wider (2x2 maps of 2 images: 8 columns, one full NR panel).
 */
const FOLD_N: i32 = 64;

@inline function align64(bytes: i32): i32 {
  return (bytes + 63) & ~63;
}

/** Bytes of scratch matmul needs for a batch of [m, k] x [k, n] products. */
export function matmulScratchBytes(batch: i32, m: i32, k: i32, n: i32): i32 {
  const own = productScratchBytes(m, k, n);
  if (batch <= 1 || n > FOLD_N) return own;
  const bn = batch * n;
  return max(own, align64(k * bn * 4) + align64(m * bn * 4) + productScratchBytes(m, k, bn));
}

@inline function madd(a: v128, b: v128, c: v128): v128 {
  if (ASC_FEATURE_RELAXED_SIMD) return f32x4.relaxed_madd(a, b, c);
  return f32x4.add(c, f32x4.mul(a, b));
}

/** Transposes the 4x4 block whose rows are r0..r3 and stores its columns at dst, dst+step, ... */
@inline function transpose4Store(r0: v128, r1: v128, r2: v128, r3: v128, dst: usize, step: usize): void {
  const t0 = v128.shuffle<i32>(r0, r1, 0, 4, 1, 5);
  const t1 = v128.shuffle<i32>(r2, r3, 0, 4, 1, 5);
  const t2 = v128.shuffle<i32>(r0, r1, 2, 6, 3, 7);
  const t3 = v128.shuffle<i32>(r2, r3, 2, 6, 3, 7);
  v128.store(dst, v128.shuffle<i32>(t0, t1, 0, 1, 4, 5));
  v128.store(dst + step, v128.shuffle<i32>(t0, t1, 2, 3, 6, 7));
  v128.store(dst + 2 * step, v128.shuffle<i32>(t2, t3, 0, 1, 4, 5));
  v128.store(dst + 3 * step, v128.shuffle<i32>(t2, t3, 2, 3, 6, 7));
}

/**
 * Packs rows [ic, ic+mc) x columns [pc, pc+kc) of A, A(i, p) = a[i*rs + p*cs], into MR-row panels:
 * panel r holds, for each p, the MR values A(ic+r*MR .. +MR-1, pc+p) (zero past the last row).
 */
function packA(a: usize, rs: i32, cs: i32, ic: i32, mc: i32, pc: i32, kc: i32, dst: usize): void {
  for (let ir = 0; ir < mc; ir += MR) {
    const rows = min(MR, mc - ir);
    const i0 = ic + ir;
    if (rows == MR && cs == 1) {
      // Rows are contiguous along p: transpose 4x4 blocks.
      const r0 = a + (<usize>(i0 * rs + pc) << 2);
      const rsb = <usize>rs << 2;
      let p = 0;
      for (; p + 4 <= kc; p += 4) {
        const o = <usize>p << 2;
        transpose4Store(v128.load(r0 + o), v128.load(r0 + rsb + o), v128.load(r0 + 2 * rsb + o), v128.load(r0 + 3 * rsb + o), dst, 16);
        dst += 64;
      }
      for (; p < kc; p++) {
        const o = <usize>p << 2;
        store<f32>(dst, load<f32>(r0 + o));
        store<f32>(dst, load<f32>(r0 + rsb + o), 4);
        store<f32>(dst, load<f32>(r0 + 2 * rsb + o), 8);
        store<f32>(dst, load<f32>(r0 + 3 * rsb + o), 12);
        dst += 16;
      }
    } else if (rows == MR && rs == 1) {
      // A stored transposed: the MR values of each p are contiguous.
      for (let p = 0; p < kc; p++) {
        v128.store(dst, v128.load(a + (<usize>(i0 + (pc + p) * cs) << 2)));
        dst += 16;
      }
    } else {
      for (let p = 0; p < kc; p++) {
        for (let ii = 0; ii < MR; ii++) {
          let v: f32 = 0;
          if (ii < rows) v = load<f32>(a + (<usize>((i0 + ii) * rs + (pc + p) * cs) << 2));
          store<f32>(dst, v);
          dst += 4;
        }
      }
    }
  }
}

/**
 * Packs rows [pc, pc+kc) x columns [0, n) of B, B(p, j) = b[p*rs + j*cs], into NR-column panels:
 * panel j holds, for each p, the NR values B(pc+p, j*NR .. +NR-1) (zero past the last column).
 */
function packB(b: usize, rs: i32, cs: i32, pc: i32, kc: i32, n: i32, dst: usize): void {
  for (let jr = 0; jr < n; jr += NR) {
    const cols = min(NR, n - jr);
    if (cols == NR && cs == 1) {
      let src = b + (<usize>(pc * rs + jr) << 2);
      const rsb = <usize>rs << 2;
      for (let p = 0; p < kc; p++) {
        v128.store(dst, v128.load(src));
        v128.store(dst, v128.load(src, 16), 16);
        src += rsb;
        dst += 32;
      }
    } else if (cols == NR && rs == 1) {
      // B stored transposed ([n, k]): columns are contiguous along p; transpose 4x4 blocks.
      const c0 = b + (<usize>(jr * cs + pc) << 2);
      const csb = <usize>cs << 2;
      let p = 0;
      for (; p + 4 <= kc; p += 4) {
        const o = <usize>p << 2;
        transpose4Store(v128.load(c0 + o), v128.load(c0 + csb + o), v128.load(c0 + 2 * csb + o), v128.load(c0 + 3 * csb + o), dst, 32);
        const c4 = c0 + 4 * csb;
        transpose4Store(v128.load(c4 + o), v128.load(c4 + csb + o), v128.load(c4 + 2 * csb + o), v128.load(c4 + 3 * csb + o), dst + 16, 32);
        dst += 128;
      }
      for (; p < kc; p++) {
        for (let jj = 0; jj < NR; jj++) {
          store<f32>(dst, load<f32>(c0 + (<usize>(jj * cs + p) << 2)));
          dst += 4;
        }
      }
    } else {
      for (let p = 0; p < kc; p++) {
        for (let jj = 0; jj < NR; jj++) {
          let v: f32 = 0;
          if (jj < cols) v = load<f32>(b + (<usize>((pc + p) * rs + (jr + jj) * cs) << 2));
          store<f32>(dst, v);
          dst += 4;
        }
      }
    }
  }
}

/**
 * The 4x8 micro-kernel: C tile (row stride ldc floats) = [C +] A panel x packed B panel. The A panel holds the MR
 * values of each p contiguously, aStep bytes from one p to the next: a packed panel (aStep 16) or, read in place,
 * four rows of an A stored transposed ([k, m], aStep = m * 4).
 */
function kernel4x8(ap: usize, aStep: usize, bp: usize, kc: i32, c: usize, ldc: i32, accumulate: bool): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  for (let p = 0; p < kc; p++) {
    const b0 = v128.load(bp);
    const b1 = v128.load(bp, 16);
    let a = v128.load32_splat(ap);
    c00 = madd(a, b0, c00); c01 = madd(a, b1, c01);
    a = v128.load32_splat(ap, 4);
    c10 = madd(a, b0, c10); c11 = madd(a, b1, c11);
    a = v128.load32_splat(ap, 8);
    c20 = madd(a, b0, c20); c21 = madd(a, b1, c21);
    a = v128.load32_splat(ap, 12);
    c30 = madd(a, b0, c30); c31 = madd(a, b1, c31);
    ap += aStep;
    bp += 32;
  }
  storeTile(c, ldc, accumulate, c00, c01, c10, c11, c20, c21, c30, c31);
}

/**
 * The same micro-kernel reading four rows of a row-major A ([m, k], rows rowBytes apart) in place: the same
 * products summed in the same order as from a packed panel, so the results are bit-identical.
 */
function kernel4x8Rows(a0: usize, rowBytes: usize, bp: usize, kc: i32, c: usize, ldc: i32, accumulate: bool): void {
  let c00 = f32x4.splat(0), c01 = f32x4.splat(0);
  let c10 = f32x4.splat(0), c11 = f32x4.splat(0);
  let c20 = f32x4.splat(0), c21 = f32x4.splat(0);
  let c30 = f32x4.splat(0), c31 = f32x4.splat(0);
  const a1 = a0 + rowBytes, a2 = a1 + rowBytes, a3 = a2 + rowBytes;
  const end = <usize>kc << 2;
  for (let o: usize = 0; o < end; o += 4) {
    const b0 = v128.load(bp);
    const b1 = v128.load(bp, 16);
    let a = v128.load32_splat(a0 + o);
    c00 = madd(a, b0, c00); c01 = madd(a, b1, c01);
    a = v128.load32_splat(a1 + o);
    c10 = madd(a, b0, c10); c11 = madd(a, b1, c11);
    a = v128.load32_splat(a2 + o);
    c20 = madd(a, b0, c20); c21 = madd(a, b1, c21);
    a = v128.load32_splat(a3 + o);
    c30 = madd(a, b0, c30); c31 = madd(a, b1, c31);
    bp += 32;
  }
  storeTile(c, ldc, accumulate, c00, c01, c10, c11, c20, c21, c30, c31);
}

@inline function storeTile(c: usize, ldc: i32, accumulate: bool, c00: v128, c01: v128, c10: v128, c11: v128, c20: v128, c21: v128, c30: v128, c31: v128): void {
  const ld = <usize>ldc << 2;
  const r1 = c + ld, r2 = c + 2 * ld, r3 = c + 3 * ld;
  if (accumulate) {
    c00 = f32x4.add(c00, v128.load(c)); c01 = f32x4.add(c01, v128.load(c, 16));
    c10 = f32x4.add(c10, v128.load(r1)); c11 = f32x4.add(c11, v128.load(r1, 16));
    c20 = f32x4.add(c20, v128.load(r2)); c21 = f32x4.add(c21, v128.load(r2, 16));
    c30 = f32x4.add(c30, v128.load(r3)); c31 = f32x4.add(c31, v128.load(r3, 16));
  }
  v128.store(c, c00); v128.store(c, c01, 16);
  v128.store(r1, c10); v128.store(r1, c11, 16);
  v128.store(r2, c20); v128.store(r2, c21, 16);
  v128.store(r3, c30); v128.store(r3, c31, 16);
}

/** Adds (acc) or copies the valid rows x cols of a scratch tile (row stride NR) into C (row stride n). */
function flushTile(tile: usize, cp: usize, n: i32, rows: i32, cols: i32, acc: bool): void {
  for (let ii = 0; ii < rows; ii++) {
    const dst = cp + (<usize>(ii * n) << 2);
    const src = tile + (<usize>(ii * NR) << 2);
    for (let jj = 0; jj < cols; jj++) {
      const o = <usize>jj << 2;
      let v = load<f32>(src + o);
      if (acc) v += load<f32>(dst + o);
      store<f32>(dst + o, v);
    }
  }
}

/** Runs the micro-kernel over the MR panels of a packed A block against one packed B panel (C += or =). */
@inline function panelColumn(packedA: usize, bp: usize, kc: i32, mc: i32, cols: i32, c: usize, n: i32, acc: bool, tile: usize): void {
  for (let ir = 0; ir < mc; ir += MR) {
    const ap = packedA + (<usize>(ir * kc) << 2);
    const rows = min(MR, mc - ir);
    const cp = c + (<usize>(ir * n) << 2);
    if (rows == MR && cols == NR) {
      kernel4x8(ap, 16, bp, kc, cp, n, acc);
    } else {
      // Edge tile: compute the full tile into scratch, then add/copy the valid part.
      kernel4x8(ap, 16, bp, kc, tile, NR, false);
      flushTile(tile, cp, n, rows, cols, acc);
    }
  }
}

/**
 * gemm when A is one MC block (m <= MC: the small transformers' tokens, ConvNeXt's last stages): a packed B block
 * would be used by that one A block only, so B is packed one NR panel (KC x NR floats, 8 KiB) at a time and consumed
 * at once from L1, instead of a KC x NC block (up to 512 KiB, the whole L2) written and read back. Same products,
 * same order of summation as the blocked path: bit-identical results.
 */
function gemmOneBlock(a: usize, ars: i32, acs: i32, b: usize, brs: i32, bcs: i32, c: usize, m: i32, k: i32, n: i32, work: usize): void {
  const kcMax = min(KC, k);
  const packedB = work;
  const packedA = packedB + (<usize>(kcMax * NR) << 2);
  const tile = packedA + (<usize>(MC * kcMax) << 2);
  for (let pc = 0; pc < k; pc += KC) {
    const kc = min(KC, k - pc);
    const acc = pc > 0;
    packA(a, ars, acs, 0, m, pc, kc, packedA);
    for (let jr = 0; jr < n; jr += NR) {
      const cols = min(NR, n - jr);
      packB(b + (<usize>(jr * bcs) << 2), brs, bcs, pc, kc, cols, packedB);
      panelColumn(packedA, packedB, kc, m, cols, c + (<usize>jr << 2), n, acc, tile);
    }
  }
}

@inline function directPays(m: i32, n: i32, ars: i32, acs: i32): bool {
  return n <= DIRECT_N && m >= MR && (acs == 1 || ars == 1);
}

/**
 * gemm for narrow outputs (directPays): B is packed whole per KC slice (at most KC x DIRECT_N floats), and each
 * full MR-row panel of A is read in place by the micro-kernel; only a last partial panel is packed (zero rows).
 * Same products in the same order as the packed path: bit-identical results.
 */
function gemmDirectA(a: usize, ars: i32, acs: i32, b: usize, brs: i32, bcs: i32, c: usize, m: i32, k: i32, n: i32, work: usize): void {
  const kcMax = min(KC, k);
  const nPad = ((n + NR - 1) / NR) * NR;
  const packedB = work;
  const edgeA = packedB + (<usize>(kcMax * nPad) << 2);
  const tile = edgeA + (<usize>(MR * kcMax) << 2);
  const rowBytes = <usize>ars << 2;
  for (let pc = 0; pc < k; pc += KC) {
    const kc = min(KC, k - pc);
    const acc = pc > 0;
    packB(b, brs, bcs, pc, kc, n, packedB);
    for (let ir = 0; ir < m; ir += MR) {
      const rows = min(MR, m - ir);
      const ap = a + (<usize>(ir * ars + pc * acs) << 2);
      if (rows < MR) packA(a, ars, acs, ir, rows, pc, kc, edgeA);
      for (let jr = 0; jr < n; jr += NR) {
        const bp = packedB + (<usize>(jr * kc) << 2);
        const cols = min(NR, n - jr);
        const cp = c + (<usize>(ir * n + jr) << 2);
        const full = rows == MR && cols == NR;
        const dst = full ? cp : tile;
        const ldc = full ? n : NR;
        const add = full && acc;
        if (rows < MR) kernel4x8(edgeA, 16, bp, kc, dst, ldc, add);
        else if (acs == 1) kernel4x8Rows(ap, rowBytes, bp, kc, dst, ldc, add);
        else kernel4x8(ap, <usize>acs << 2, bp, kc, dst, ldc, add);
        if (!full) flushTile(tile, cp, n, rows, cols, acc);
      }
    }
  }
}

/** One product C[m, n] = A B with A(i, p) = a[i*ars + p*acs] and B(p, j) = b[p*brs + j*bcs]. */
function gemm(a: usize, ars: i32, acs: i32, b: usize, brs: i32, bcs: i32, c: usize, m: i32, k: i32, n: i32, work: usize): void {
  if (k == 0) {
    memory.fill(c, 0, <usize>(m * n) << 2);
    return;
  }
  if (directPays(m, n, ars, acs)) {
    gemmDirectA(a, ars, acs, b, brs, bcs, c, m, k, n, work);
    return;
  }
  if (m <= MC) {
    gemmOneBlock(a, ars, acs, b, brs, bcs, c, m, k, n, work);
    return;
  }
  const kcMax = min(KC, k);
  const nPad = ((min(NC, n) + NR - 1) / NR) * NR;
  const packedB = work;
  const packedA = packedB + (<usize>(kcMax * nPad) << 2);
  const tile = packedA + (<usize>(MC * kcMax) << 2);
  for (let jc = 0; jc < n; jc += NC) {
    const nc = min(NC, n - jc);
    const bj = b + (<usize>(jc * bcs) << 2);
    for (let pc = 0; pc < k; pc += KC) {
      const kc = min(KC, k - pc);
      const acc = pc > 0;
      packB(bj, brs, bcs, pc, kc, nc, packedB);
      for (let ic = 0; ic < m; ic += MC) {
        const mc = min(MC, m - ic);
        packA(a, ars, acs, ic, mc, pc, kc, packedA);
        for (let jr = 0; jr < nc; jr += NR) {
          const bp = packedB + (<usize>(jr * kc) << 2);
          panelColumn(packedA, bp, kc, mc, min(NR, nc - jr), c + (<usize>(ic * n + jc + jr) << 2), n, acc, tile);
        }
      }
    }
  }
}

/** C[m, n] = A B (strides as gemm), computing C^T = B^T A^T when the output is narrow, or short with B transposed. */
export function product(a: usize, ars: i32, acs: i32, b: usize, brs: i32, bcs: i32, c: usize, m: i32, k: i32, n: i32, work: usize): void {
  if (!narrowPays(m, n) && !(shortPays(m, n) && brs == 1)) {
    gemm(a, ars, acs, b, brs, bcs, c, m, k, n, work);
    return;
  }
  // C^T [n, m] lands in scratch past gemm's own, then is copied into C (n * m values, small next to the
  // k * m * n multiply-adds). B^T(i, p) = B(p, i) and A^T(p, j) = A(j, p): the strides swap roles.
  const ct = work + <usize>align64(gemmScratchBytes(k, m));
  gemm(b, bcs, brs, a, acs, ars, ct, n, k, m, work);
  for (let i = 0; i < m; i++) {
    for (let j = 0; j < n; j++) store<f32>(c + (<usize>(i * n + j) << 2), load<f32>(ct + (<usize>(j * m + i) << 2)));
  }
}

/**
 * Batched matmul of MatmulPlan: product p multiplies A at element offset aOffsets[p] by B at
 * bOffsets[p] into C's p-th [m, n] block. transA: A stored [k, m]; transB: B stored [n, k].
 */
export function matmul(a: usize, b: usize, c: usize, batch: i32, m: i32, k: i32, n: i32, aOffsets: usize, bOffsets: usize, transA: i32, transB: i32, work: usize): void {
  const ars = transA ? 1 : k;
  const acs = transA ? m : 1;
  const brs = transB ? 1 : n;
  const bcs = transB ? k : 1;
  if (batch > 1 && n <= FOLD_N && m > 0 && k > 0 && n > 0) {
    const a0 = load<i32>(aOffsets);
    let shared = true;
    for (let p = 1; p < batch; p++) shared = shared && load<i32>(aOffsets + (<usize>p << 2)) == a0;
    if (shared) {
      // Gather the B blocks side by side into Bf [k, batch * n], one product, scatter the columns back.
      const bn = batch * n;
      const bf = work;
      const cf = bf + <usize>align64(k * bn * 4);
      const rest = cf + <usize>align64(m * bn * 4);
      for (let q = 0; q < batch; q++) {
        const bo = b + (<usize>load<i32>(bOffsets + (<usize>q << 2)) << 2);
        for (let p = 0; p < k; p++) {
          const dst = bf + (<usize>(p * bn + q * n) << 2);
          for (let j = 0; j < n; j++) store<f32>(dst + (<usize>j << 2), load<f32>(bo + (<usize>(p * brs + j * bcs) << 2)));
        }
      }
      product(a + (<usize>a0 << 2), ars, acs, bf, bn, 1, cf, m, k, bn, rest);
      for (let q = 0; q < batch; q++) {
        const cq = c + (<usize>(q * m * n) << 2);
        for (let i = 0; i < m; i++) memory.copy(cq + (<usize>(i * n) << 2), cf + (<usize>(i * bn + q * n) << 2), <usize>n << 2);
      }
      return;
    }
  }
  for (let p = 0; p < batch; p++) {
    const ao = a + (<usize>load<i32>(aOffsets + (<usize>p << 2)) << 2);
    const bo = b + (<usize>load<i32>(bOffsets + (<usize>p << 2)) << 2);
    product(ao, ars, acs, bo, brs, bcs, c + (<usize>(p * m * n) << 2), m, k, n, work);
  }
}
