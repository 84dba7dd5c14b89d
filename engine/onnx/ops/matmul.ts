/** Matrix products: MatMul, Gemm and Einsum. */
import { Tensor } from '../../tensor';
import { formatShape, sizeOf } from '../../shape';
import * as E from '../../ops';
import { OpContext, makeConstant } from '../context';
import { layout } from '../helpers';
import { OpHandler, floatIn, need } from './common';

/**
 * Einsum as engine ops: repeated labels of one operand take its diagonal (a gather), labels no later
 * operand or the output needs are summed out, and operands are contracted pairwise with one batched
 * matmul ([batch, left, contracted] @ [batch, contracted, right]); ellipses broadcast right-aligned,
 * as numpy. Differentiable in every operand.
 */
function einsum(ctx: OpContext, equation: string, xs: Tensor[]): Tensor {
  const eq = equation.replace(/\s+/g, '');
  const arrow = eq.indexOf('->');
  const terms = (arrow < 0 ? eq : eq.slice(0, arrow)).split(',');
  if (terms.length !== xs.length) ctx.fail('INVALID_MODEL', `Einsum equation '${equation}' has ${terms.length} operand terms for ${xs.length} inputs`);
  const ellipsisDims = Math.max(0, ...terms.map((t, i) => (t.includes('...') ? xs[i].rank - (t.length - 3) : 0)));
  const ell = Array.from({ length: ellipsisDims }, (_, k) => String.fromCharCode(0x100 + k));
  const labelsOf = (term: string, rank: number | null): string[] => {
    const [pre, post] = term.includes('...') ? term.split('...') : [term, null];
    if (post === null) return [...pre];
    const n = rank === null ? ellipsisDims : rank - pre.length - post.length;
    return [...pre, ...ell.slice(ellipsisDims - n), ...post];
  };
  const ins = terms.map((t, i) => {
    const labels = labelsOf(t, xs[i].rank);
    if (labels.length !== xs[i].rank || labels.some((l) => !/^[a-zA-Z\u0100-\u01ff]$/.test(l))) {
      ctx.fail('INVALID_MODEL', `Einsum term '${t}' does not fit input ${i} ${formatShape(xs[i].shape)}`);
    }
    return labels;
  });
  let out: string[];
  if (arrow >= 0) out = labelsOf(eq.slice(arrow + 2), null);
  else {
    const counts = new Map<string, number>();
    for (const l of ins.flat()) if (l.charCodeAt(0) < 0x100) counts.set(l, (counts.get(l) ?? 0) + 1);
    out = [...ell, ...[...counts].filter(([, c]) => c === 1).map(([l]) => l).sort()];
  }
  const size = new Map<string, number>();
  ins.forEach((labels, i) => labels.forEach((l, d) => {
    const s = xs[i].shape[d];
    const prev = size.get(l);
    if (prev !== undefined && prev !== s && prev !== 1 && s !== 1) ctx.fail('INVALID_MODEL', `Einsum label '${l}' has sizes ${prev} and ${s}`);
    size.set(l, Math.max(prev ?? 1, s));
  }));
  for (const l of out) if (!size.has(l)) ctx.fail('INVALID_MODEL', `Einsum output label '${l}' is in no input`);

  /** Operand with each label once: repeated labels take the diagonal. */
  const diagonal = (x: Tensor, labels: string[]): [Tensor, string[]] => {
    const uniq = [...new Set(labels)];
    if (uniq.length === labels.length) return [x, labels];
    const shape = uniq.map((l) => x.shape[labels.indexOf(l)]);
    const strides = x.shape.map((_, d) => sizeOf(x.shape.slice(d + 1)));
    const idx = new Array<number>(sizeOf(shape));
    const coord = new Array<number>(uniq.length).fill(0);
    for (let i = 0; i < idx.length; i++) {
      idx[i] = labels.reduce((off, l, d) => off + coord[uniq.indexOf(l)] * strides[d], 0);
      for (let d = uniq.length - 1; d >= 0; d--) {
        if (++coord[d] < shape[d]) break;
        coord[d] = 0;
      }
    }
    return [E.gather(E.reshape(x, [x.size]), makeConstant(idx, shape, 'int32'), 0), uniq];
  };
  /** Sums out the labels not in `keep`. */
  const reduce = (x: Tensor, labels: string[], keep: Set<string>): [Tensor, string[]] => {
    const axes = labels.map((l, d) => (keep.has(l) ? -1 : d)).filter((d) => d >= 0);
    return axes.length ? [E.sum(x, axes), labels.filter((l) => keep.has(l))] : [x, labels];
  };
  const permuteTo = (x: Tensor, labels: string[], order: string[]): Tensor =>
    order.every((l, d) => labels[d] === l) ? x : E.permute(x, order.map((l) => labels.indexOf(l)));

  const ops = xs.map((x, i) => diagonal(x, ins[i]));
  const needed = (from: number) => new Set([...out, ...ops.slice(from).flatMap(([, l]) => l)]);
  let [acc, accLabels] = reduce(ops[0][0], ops[0][1], new Set([...needed(1)]));
  for (let i = 1; i < ops.length; i++) {
    const keep = needed(i + 1);
    let [b, bLabels] = ops[i];
    [acc, accLabels] = reduce(acc, accLabels, new Set([...keep, ...bLabels]));
    [b, bLabels] = reduce(b, bLabels, new Set([...keep, ...accLabels]));
    const batch = accLabels.filter((l) => bLabels.includes(l) && keep.has(l));
    const contracted = accLabels.filter((l) => bLabels.includes(l) && !keep.has(l));
    const left = accLabels.filter((l) => !bLabels.includes(l));
    const right = bLabels.filter((l) => !accLabels.includes(l));
    const dims = (x: Tensor, labels: string[], ls: string[]) => ls.map((l) => x.shape[labels.indexOf(l)]);
    const a2 = E.reshape(permuteTo(acc, accLabels, [...batch, ...left, ...contracted]), [...dims(acc, accLabels, batch), sizeOf(dims(acc, accLabels, left)), sizeOf(dims(acc, accLabels, contracted))]);
    const b2 = E.reshape(permuteTo(b, bLabels, [...batch, ...contracted, ...right]), [...dims(b, bLabels, batch), sizeOf(dims(b, bLabels, contracted)), sizeOf(dims(b, bLabels, right))]);
    const y = E.matmul(a2, b2);
    acc = E.reshape(y, [...y.shape.slice(0, batch.length), ...dims(acc, accLabels, left), ...dims(b, bLabels, right)]);
    accLabels = [...batch, ...left, ...right];
  }
  [acc, accLabels] = reduce(acc, accLabels, new Set(out));
  return permuteTo(acc, accLabels, out);
}

export const MATMUL_OPS: Readonly<Record<string, OpHandler>> = {
  MatMul: { run: (ctx, inputs) => layout([need(ctx, inputs, 0, 'A'), need(ctx, inputs, 1, 'B')], ([a, b]) => E.matmul(a, b)) },
  Einsum: {
    run(ctx, inputs) {
      const xs = inputs.filter((t): t is Tensor => t !== null).map((t, i) => floatIn(ctx, t, `Einsum input ${i}`));
      return einsum(ctx, ctx.attrs.string('equation'), xs);
    },
  },
  Gemm: {
    run(ctx, inputs) {
      const a = ctx.attrs;
      return E.gemm(need(ctx, inputs, 0, 'A'), need(ctx, inputs, 1, 'B'), inputs[2] ?? null, {
        alpha: a.float('alpha', 1), beta: a.float('beta', 1), transA: a.int('transA', 0) === 1, transB: a.int('transB', 0) === 1,
      });
    },
  },
};
