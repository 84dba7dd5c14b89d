import { Tensor } from '../tensor';
import { record } from '../autograd';
import { matmulK } from '../backend/dispatch';
import { MatmulPlan } from '../backend/backend';
import { Shape, broadcastShapes, formatShape, sizeOf, stridesOf } from '../shape';
import { floatDtype } from './util';
import { permute, reshape, transpose } from './layout';
import { add, mulScalar, unbroadcast } from './elementwise';

/**
 * Dims [from, to) of a shape, by index. Tensor shapes are frozen arrays, and V8's Array.prototype.slice on a frozen
 * array takes its generic path (0.2-0.7 us a call against 0.04 us on a plain array, Node 20): on a small product
 * the shape slices alone cost more than the kernel call.
 */
function dims(shape: Shape, from: number, to: number): number[] {
  const out = new Array<number>(Math.max(0, to - from));
  for (let i = 0; i < out.length; i++) out[i] = shape[from + i];
  return out;
}

/** Offsets of every broadcast batch's matrix in an operand with batch dims `own` read as `target`. */
function batchOffsets(own: readonly number[], target: readonly number[], matrixSize: number): Int32Array {
  const total = sizeOf(target);
  const offsets = new Int32Array(total);
  const ownStrides = stridesOf(own);
  const lead = target.length - own.length;
  const idx = new Array<number>(target.length).fill(0);
  for (let p = 0; p < total; p++) {
    let off = 0;
    for (let d = 0; d < own.length; d++) if (own[d] !== 1) off += idx[lead + d] * ownStrides[d];
    offsets[p] = off * matrixSize;
    for (let d = target.length - 1; d >= 0; d--) {
      if (++idx[d] < target[d]) break;
      idx[d] = 0;
    }
  }
  return offsets;
}

/**
 * Batched matrix product A' B' of operands at least 2-D, batch dims broadcast, where A' is `a` or, with
 * `transA`, its last two dims swapped (likewise B'). The kernels read transposed operands in place, so
 * neither `linear` nor the VJPs materialise a transpose.
 */
function matmul2d(a: Tensor, b: Tensor, transA = false, transB = false): Tensor {
  floatDtype('matmul', a, b);
  const ar = a.shape[a.rank - 2], ac = a.shape[a.rank - 1];
  const br = b.shape[b.rank - 2], bc = b.shape[b.rank - 1];
  const m = transA ? ac : ar, k = transA ? ar : ac;
  const k2 = transB ? bc : br, n = transB ? br : bc;
  if (k !== k2) throw new RangeError(`matmul: shapes ${formatShape(a.shape)} and ${formatShape(b.shape)} do not align (${k} vs ${k2})`);
  const aBatch = dims(a.shape, 0, a.rank - 2);
  const bBatch = dims(b.shape, 0, b.rank - 2);
  if (!transA && aBatch.length > 0 && b.rank <= a.rank && sizeOf(bBatch) === 1 && sizeOf(aBatch) > 1) {
    // One matrix B shared by every batch of A (a Linear layer on [B, T, D]): one [B*T, K] x [K, N] product
    // instead of a batch of small ones, and B's gradient comes out of one product, with no sum over the batch.
    const rows = reshape(a, [sizeOf(aBatch) * m, k]);
    const b2 = b.rank === 2 ? b : reshape(b, [br, bc]);
    return reshape(matmul2d(rows, b2, false, transB), [...aBatch, m, n]);
  }
  if (a.rank === 2 && b.rank === 2 && b.transposeOf) return matmulTransposedB(a, b, b.transposeOf, transA, transB);
  const batch = broadcastShapes(aBatch, bBatch);
  const plan: MatmulPlan = {
    batch: sizeOf(batch), m, k, n,
    aOffsets: batchOffsets(aBatch, batch, m * k),
    bOffsets: batchOffsets(bBatch, batch, k * n),
    transA, transB,
  };
  const out = matmulK(a, b, plan, [...batch, m, n]);
  // C = A'B': dA' = g B'^T and dB' = A'^T g, transposed back when the operand was read transposed.
  return record('matmul', [a, b], out, (g) => [
    a.requiresGrad ? (transA ? null : sharedAGrad(g, a, b, transB)) ?? unbroadcast(transA ? matmul2d(b, g, transB, true) : matmul2d(g, b, false, !transB), a.shape) : null,
    b.requiresGrad ? unbroadcast(transB ? matmul2d(g, a, true, transA) : matmul2d(a, g, !transA, false), b.shape) : null,
  ]);
}

/**
 * A' B' for 2-D `b` whose values are the transpose of `source` (a lazy transpose, see Tensor.transposed): the
 * kernel reads `source` with the transposed flag flipped, so the transpose is never copied. b's gradient
 * (A'^T g, or its transpose when transB) is returned as the lazy transpose of the product that has source's
 * layout, so the transpose's own VJP hands that product to source without a copy either.
 */
function matmulTransposedB(a: Tensor, b: Tensor, source: Tensor, transA: boolean, transB: boolean): Tensor {
  const [m, n] = [transA ? a.shape[1] : a.shape[0], transB ? b.shape[0] : b.shape[1]];
  const k = transA ? a.shape[0] : a.shape[1];
  const one = new Int32Array(1);
  const plan: MatmulPlan = { batch: 1, m, k, n, aOffsets: one, bOffsets: one, transA, transB: !transB };
  const out = matmulK(a, source, plan, [m, n]);
  return record('matmul', [a, b], out, (g) => [
    a.requiresGrad ? (transA ? matmul2d(source, g, !transB, true) : matmul2d(g, source, false, transB)) : null,
    // dB' = A'^T g is [k, n]; source holds B' transposed ([n, k]) unless transB: build the product in source's
    // layout (g^T A', or A'^T g when transB) and hand b the lazy transpose of it.
    b.requiresGrad ? transposedOf(transB ? matmul2d(a, g, !transA, false) : matmul2d(g, a, true, transA)) : null,
  ]);
}

/** The lazy transpose of 2-D `t` (tagged, so transposing it back costs nothing). */
function transposedOf(t: Tensor): Tensor {
  return transpose(t);
}

/**
 * dA of C = A B' where A is shared by the leading batch dims of B (a convolution's weight across the images):
 * the sum over those dims of g_i B_i'^T as one product with them folded into the inner size, instead of one
 * product per batch element (`batch` copies of dA) and a sum over them. Null where the permutes this needs would
 * move more data than the per-batch products write, or where the layout does not fit (then the caller sums).
 */
function sharedAGrad(g: Tensor, a: Tensor, b: Tensor, transB: boolean): Tensor | null {
  const nb = g.rank - 2;
  if (transB) return null; // (no caller shares A with a transposed batched B)
  const aBatch = dims(a.shape, 0, a.rank - 2);
  const bBatch = dims(b.shape, 0, b.rank - 2);
  if (nb < 1 || bBatch.length !== nb || aBatch.length > nb) return null;
  const aPad = [...new Array<number>(nb - aBatch.length).fill(1), ...aBatch];
  let r = 0;
  while (r < nb && aPad[r] === 1) r++;
  for (let d = 0; d < nb; d++) if (bBatch[d] !== g.shape[d] || (d >= r && aPad[d] !== g.shape[d])) return null;
  const shared = sizeOf(dims(g.shape, 0, r));
  if (shared <= 1) return null;
  const m = g.shape[g.rank - 2], n = g.shape[g.rank - 1];
  const k = a.shape[a.rank - 1];
  const kept = sizeOf(dims(g.shape, r, nb));
  if (g.size + b.size >= shared * kept * m * k) return null;
  // g [shared, kept, m, n] -> [kept, m, shared * n]
  const g2 = reshape(permute(reshape(g, [shared, kept, m, n]), [1, 2, 0, 3]), [kept, m, shared * n]);
  // b [shared, kept, k, n] -> [kept, k, shared * n], read transposed
  const b2 = reshape(permute(reshape(b, [shared, kept, k, n]), [1, 2, 0, 3]), [kept, k, shared * n]);
  return reshape(matmul2d(g2, b2, false, true), a.shape);
}

/**
 * The 2-D tensor `b` is the transpose of, when autograd recorded it as one and nothing watches `b`'s own gradient
 * (no hook, no retained grad): exporters write a Linear on [B, T, D] as MatMul(x, Transpose(W)). matmul then reads
 * W transposed in place, so backward computes dW directly instead of dW^T and a transpose copy of it (for a
 * ConvNeXt or a ViT that transpose moved every weight gradient through memory twice). The transposed tensor then
 * gets no gradient of its own: a hook registered on it after this forward never fires (the inspector hooks module
 * outputs, and an exporter's Transpose(W) is never the last op of its module).
 */
function transposeSource(b: Tensor): Tensor | null {
  const fn = b.gradFn;
  if (b.rank !== 2 || !fn || fn.op !== 'permute' || b.hooks.length > 0 || b.retainsGrad) return null;
  const src = fn.inputs[0];
  return src.rank === 2 && src.shape[0] === b.shape[1] && src.shape[1] === b.shape[0] ? src : null;
}

/**
 * torch.matmul / numpy semantics: 1-D operands are promoted (a row vector on the left, a column
 * on the right) and the added dimension removed from the result; batch dimensions broadcast.
 */
export function matmul(a: Tensor, b: Tensor): Tensor {
  if (a.rank === 0 || b.rank === 0) throw new RangeError('matmul: both operands need at least one dimension');
  const bT = transposeSource(b);
  if (bT && a.rank >= 2) return matmul2d(a, bT, false, true);
  const a2 = a.rank === 1 ? reshape(a, [1, a.shape[0]]) : a;
  const b2 = b.rank === 1 ? reshape(b, [b.shape[0], 1]) : b;
  let out = matmul2d(a2, b2);
  if (a.rank === 1 || b.rank === 1) {
    const shape = [...out.shape];
    if (b.rank === 1) shape.splice(shape.length - 1, 1);
    if (a.rank === 1) shape.splice(shape.length - (b.rank === 1 ? 1 : 2), 1);
    out = reshape(out, shape);
  }
  return out;
}

export interface GemmOptions {
  alpha?: number;
  beta?: number;
  transA?: boolean;
  transB?: boolean;
}

/** ONNX Gemm: alpha * A' B' + beta * C with A', B' optionally transposed and C broadcast to [M, N]. */
export function gemm(a: Tensor, b: Tensor, c: Tensor | null = null, options: GemmOptions = {}): Tensor {
  const { alpha = 1, beta = 1, transA = false, transB = false } = options;
  if (a.rank !== 2 || b.rank !== 2) throw new RangeError(`gemm: A and B must be 2-D, got ${formatShape(a.shape)} and ${formatShape(b.shape)}`);
  let y = matmul2d(a, b, transA, transB);
  if (alpha !== 1) y = mulScalar(y, alpha);
  if (c) y = add(y, beta === 1 ? c : mulScalar(c, beta));
  return y;
}

/** y = x W^T + b, as torch.nn.functional.linear (W is [out, in]); W is read transposed in place. */
export function linear(x: Tensor, weight: Tensor, bias: Tensor | null = null): Tensor {
  const y = x.rank >= 2 && weight.rank === 2 ? matmul2d(x, weight, false, true) : matmul(x, transpose(weight));
  return bias ? add(y, bias) : y;
}
