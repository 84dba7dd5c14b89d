/**
 * Attention (opset 23/24): the fused scaled-dot-product attention newer exporters emit, as a composition
 * of engine ops (matmul, softmax, tanh, concat, broadcast), so it runs on every backend and autograd gives
 * the gradients of Q, K, V, the past cache and a float mask. Covers 3-D [B, S, H*D] and 4-D [B, H, S, D]
 * inputs, past/present key-value caches, grouped-query heads, softcap, bool or float masks (shorter masks
 * padded), bottom-right causal masking with the cache offset, nonpad_kv_seqlen, sliding windows
 * (left_window_size / right_window_size), the four qk_matmul_output modes, and zero output for query rows
 * with no key to attend.
 */
import { Tensor } from '../../tensor';
import { formatShape, sizeOf } from '../../shape';
import { noGrad } from '../../autograd';
import * as E from '../../ops';
import { OpContext, makeConstant } from '../context';
import { OpHandler, floatIn, isF, need } from './common';

/** [B, S, H*D] -> [B, H, S, D]. */
function splitHeads(ctx: OpContext, x: Tensor, heads: number, what: string): Tensor {
  const [b, s, hidden] = x.shape;
  if (!(heads > 0) || hidden % heads !== 0) ctx.fail('INVALID_MODEL', `${what} hidden size ${hidden} (${formatShape(x.shape)}) does not split into ${heads} heads`);
  return E.permute(E.reshape(x, [b, s, heads, hidden / heads]), [0, 2, 1, 3]);
}

/** Each of the H heads repeated `reps` times in place ([h0, h0, h1, h1, ...]): grouped-query attention. */
function repeatHeads(x: Tensor, reps: number): Tensor {
  if (reps === 1) return x;
  const [b, h, s, d] = x.shape;
  return E.reshape(E.broadcastTo(E.unsqueeze(x, 2), [b, h, reps, s, d]), [b, h * reps, s, d]);
}

/**
 * The additive bias [.., q, kv] from the mask inputs and attributes, or null for none: a float mask as
 * given (it may carry gradients), a bool mask as 0 / -inf, plus -inf outside the causal frontier, the
 * sliding window and each sample's non-padded keys. Masks shorter than kv are padded as masked.
 */
function attentionBias(ctx: OpContext, mask: Tensor | null, q: number, kv: number, batch: number, pastLen: number, nonpad: number[] | null): Tensor | null {
  const causal = ctx.attrs.flag('is_causal', false);
  const left = ctx.attrs.int('left_window_size', -1);
  const right = ctx.attrs.int('right_window_size', -1);
  let bias: Tensor | null = null;
  if (mask) {
    if (mask.rank < 1) ctx.fail('INVALID_MODEL', `attn_mask must have at least one dim, got ${formatShape(mask.shape)}`);
    const len = mask.shape[mask.rank - 1];
    if (len > kv) ctx.fail('INVALID_MODEL', `attn_mask ${formatShape(mask.shape)} is longer than the ${kv} keys`);
    if (isF(mask)) {
      bias = mask;
      if (len < kv) {
        const padShape = [...mask.shape.slice(0, -1), kv - len];
        bias = E.concat([mask, makeConstant(new Array<number>(sizeOf(padShape)).fill(-Infinity), padShape, mask.dtype)], mask.rank - 1);
      }
    } else {
      const outer = mask.size / Math.max(len, 1);
      const values = new Array<number>(outer * kv).fill(-Infinity);
      for (let o = 0; o < outer; o++) for (let j = 0; j < len; j++) values[o * kv + j] = mask.data[o * len + j] ? 0 : -Infinity;
      bias = makeConstant(values, [...mask.shape.slice(0, -1), kv], ctx.dtype);
    }
  }
  // Position rules known from shapes and nonpad_kv_seqlen: one host constant [batch or 1, 1, q, kv].
  if (!causal && left < 0 && right < 0 && !nonpad) return bias;
  const perBatch = nonpad !== null;
  const rows = perBatch ? batch : 1;
  const rule = new Array<number>(rows * q * kv).fill(0);
  for (let b = 0; b < rows; b++) {
    // offset: the valid keys before this query block (the cache, or the external cache's length - q).
    const offset = pastLen > 0 || !nonpad ? pastLen : nonpad[b] - q;
    for (let i = 0; i < q; i++) {
      for (let j = 0; j < kv; j++) {
        const diff = i + offset - j;
        const allowed = (!causal || diff >= 0) && (left < 0 || diff <= left) && (right < 0 || -diff <= right) && (!nonpad || j < nonpad[b]);
        if (!allowed) rule[(b * q + i) * kv + j] = -Infinity;
      }
    }
  }
  const ruleT = makeConstant(rule, [rows, 1, q, kv], ctx.dtype);
  return bias ? E.add(bias, ruleT) : ruleT;
}

const attention: OpHandler = {
  nonDiff: [6],
  run(ctx, inputs) {
    let q = floatIn(ctx, need(ctx, inputs, 0, 'Q'), 'Q');
    let k = floatIn(ctx, need(ctx, inputs, 1, 'K'), 'K');
    let v = floatIn(ctx, need(ctx, inputs, 2, 'V'), 'V');
    const mask = inputs[3] ?? null;
    const pastKey = inputs[4] ?? null;
    const pastValue = inputs[5] ?? null;
    const nonpadT = inputs[6] ?? null;
    const a = ctx.attrs;
    const rank = q.rank;
    if (rank !== 3 && rank !== 4) ctx.fail('INVALID_MODEL', `Q must be 3-D [B, S, H*D] or 4-D [B, H, S, D], got ${formatShape(q.shape)}`);
    if (k.rank !== rank || v.rank !== rank) ctx.fail('INVALID_MODEL', `Q, K and V must have the same rank, got ${formatShape(q.shape)}, ${formatShape(k.shape)}, ${formatShape(v.shape)}`);
    if (!pastKey !== !pastValue) ctx.fail('INVALID_MODEL', 'past_key and past_value must be given together');
    if (nonpadT && pastKey) ctx.fail('INVALID_MODEL', 'nonpad_kv_seqlen cannot be combined with past_key / past_value');
    const softcap = a.float('softcap', 0);
    const mode = a.int('qk_matmul_output_mode', 0);
    if (mode < 0 || mode > 3) ctx.fail('INVALID_MODEL', `qk_matmul_output_mode must be 0-3, got ${mode}`);
    if (rank === 3) {
      const qHeads = a.int('q_num_heads');
      const kvHeads = a.int('kv_num_heads');
      q = splitHeads(ctx, q, qHeads, 'Q');
      k = splitHeads(ctx, k, kvHeads, 'K');
      v = splitHeads(ctx, v, kvHeads, 'V');
    }
    const [batch, qHeads, qLen, headSize] = q.shape;
    if (k.shape[0] !== batch || v.shape[0] !== batch || k.shape[1] !== v.shape[1] || k.shape[2] !== v.shape[2] || k.shape[3] !== headSize) {
      ctx.fail('INVALID_MODEL', `K ${formatShape(k.shape)} and V ${formatShape(v.shape)} do not fit Q ${formatShape(q.shape)} (as [B, H, S, D])`);
    }
    const pastLen = pastKey ? pastKey.shape[2] : 0;
    const presentKey = pastKey ? E.concat([pastKey, k], 2) : k;
    const presentValue = pastValue ? E.concat([pastValue, v], 2) : v;
    const kvHeads = presentKey.shape[1];
    if (qHeads % kvHeads !== 0) ctx.fail('INVALID_MODEL', `${qHeads} query heads are not a multiple of ${kvHeads} key/value heads`);
    const kvLen = presentKey.shape[2];
    const nonpad = nonpadT ? Array.from(nonpadT.data) : null;
    if (nonpad && nonpad.length !== batch) ctx.fail('INVALID_MODEL', `nonpad_kv_seqlen has ${nonpad.length} entries for a batch of ${batch}`);

    // Q and K each scaled by sqrt(scale), as the spec does to keep the product in range.
    const scale = a.has('scale') ? a.float('scale') : 1 / Math.sqrt(headSize);
    const root = Math.sqrt(scale);
    const keys = repeatHeads(presentKey, qHeads / kvHeads);
    const values = repeatHeads(presentValue, qHeads / kvHeads);
    const qk = E.matmul(E.mulScalar(q, root), E.transpose(E.mulScalar(keys, root), -2, -1));
    const capped = softcap > 0 ? E.mulScalar(E.tanh(E.mulScalar(qk, 1 / softcap)), softcap) : qk;
    const bias = attentionBias(ctx, mask, qLen, kvLen, batch, pastLen, nonpad);
    const scores = bias ? E.add(capped, bias) : capped;
    let probs: Tensor;
    if (bias) {
      // A query row whose bias is -inf everywhere attends nothing: its output row is 0, not NaN.
      // From kernels only (max, compare, maximum), so a mask computed on a device stays there.
      const rowMasked = noGrad(() => E.equalMask(E.max(bias, -1, true), -Infinity));
      const finite = E.maximum(scores, -3.4e38);
      probs = E.mul(E.softmax(finite, -1), E.sub(1, rowMasked));
    } else {
      probs = E.softmax(scores, -1);
    }
    let y = E.matmul(probs, values);
    if (rank === 3) y = E.reshape(E.permute(y, [0, 2, 1, 3]), [batch, qLen, -1]);
    const qkOut = ctx.wants(3) ? [qk, capped, scores, probs][mode] : null;
    return [y, ctx.wants(1) ? presentKey : null, ctx.wants(2) ? presentValue : null, qkOut];
  },
};

/**
 * RotaryEmbedding (opset 23): rotates pairs of features by the cached cos / sin of each position, as
 * engine slices, products and concats (differentiable in the input and the caches). Pairs are the two
 * halves of the rotated part, or neighbours with `interleaved`; only the first rotary_embedding_dim
 * features rotate. Inputs [B, H, S, D] or [B, S, H*D] (num_heads); caches [max_pos, rd/2] indexed by
 * position_ids [B, S], or [B, S, rd/2] without them.
 */
const rotaryEmbedding: OpHandler = {
  nonDiff: [3],
  run(ctx, inputs) {
    const x = floatIn(ctx, need(ctx, inputs, 0, 'X'), 'RotaryEmbedding input');
    let cos = floatIn(ctx, need(ctx, inputs, 1, 'cos_cache'), 'cos_cache');
    let sin = floatIn(ctx, need(ctx, inputs, 2, 'sin_cache'), 'sin_cache');
    const positions = inputs[3] ?? null;
    const a = ctx.attrs;
    const interleaved = a.flag('interleaved', false);
    let t: Tensor;
    if (x.rank === 4) t = E.permute(x, [0, 2, 1, 3]);
    else if (x.rank === 3) {
      const heads = a.int('num_heads', 0);
      if (!(heads > 0) || x.shape[2] % heads !== 0) ctx.fail('INVALID_MODEL', `a 3-D input ${formatShape(x.shape)} needs num_heads dividing its hidden size, got ${heads}`);
      t = E.reshape(x, [x.shape[0], x.shape[1], heads, x.shape[2] / heads]);
    } else return ctx.fail('INVALID_MODEL', `RotaryEmbedding input must be 3-D or 4-D, got ${formatShape(x.shape)}`);
    const d = t.shape[3];
    const rd = a.int('rotary_embedding_dim', 0) || d;
    if (rd > d || rd % 2 !== 0) ctx.fail('INVALID_MODEL', `rotary_embedding_dim ${rd} must be even and at most the head size ${d}`);
    if (positions) {
      cos = E.gather(cos, positions, 0);
      sin = E.gather(sin, positions, 0);
    }
    if (cos.shape[cos.rank - 1] !== rd / 2 || sin.shape[sin.rank - 1] !== rd / 2) {
      ctx.fail('INVALID_MODEL', `cos / sin caches ${formatShape(cos.shape)} / ${formatShape(sin.shape)} must end in rotary_embedding_dim / 2 = ${rd / 2}`);
    }
    cos = E.unsqueeze(cos, 2);
    sin = E.unsqueeze(sin, 2);
    const rot = rd === d ? t : E.slice(t, { starts: [0], ends: [rd], axes: [3] });
    const half = (start: number) => (interleaved
      ? E.slice(rot, { starts: [start], ends: [rd], axes: [3], steps: [2] })
      : E.slice(rot, { starts: [start * (rd / 2)], ends: [(start + 1) * (rd / 2)], axes: [3] }));
    const x1 = half(0);
    const x2 = half(1);
    const real = E.sub(E.mul(cos, x1), E.mul(sin, x2));
    const imag = E.add(E.mul(sin, x1), E.mul(cos, x2));
    let rotated = interleaved ? E.reshape(E.concat([E.unsqueeze(real, 4), E.unsqueeze(imag, 4)], 4), rot.shape) : E.concat([real, imag], 3);
    if (rd < d) rotated = E.concat([rotated, E.slice(t, { starts: [rd], ends: [d], axes: [3] })], 3);
    return x.rank === 4 ? E.permute(rotated, [0, 2, 1, 3]) : E.reshape(rotated, x.shape);
  },
};

export const ATTENTION_OPS: Readonly<Record<string, OpHandler>> = {
  Attention: attention,
  RotaryEmbedding: rotaryEmbedding,
};
