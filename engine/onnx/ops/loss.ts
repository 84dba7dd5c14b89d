/** Loss ops: SoftmaxCrossEntropyLoss and NegativeLogLikelihoodLoss. */
import { Tensor } from '../../tensor';
import { formatShape } from '../../shape';
import * as E from '../../ops';
import { OpContext } from '../context';
import { OpHandler, floatIn, need } from './common';
import { allocate } from '../../dtype';

/** Per-element negative log-likelihood of log-probabilities x [N, C, d...] with optional class weights. */
function nll(ctx: OpContext, x: Tensor, target: Tensor, weight: Tensor | null, reduction: string, ignore: number | null): Tensor {
  if (x.rank < 2) ctx.fail('INVALID_MODEL', `input must be [N, C, ...], got ${formatShape(x.shape)}`);
  const c = x.shape[1];
  const expected = [x.shape[0], ...x.shape.slice(2)];
  if (target.rank !== expected.length || target.shape.some((d, i) => d !== expected[i])) {
    ctx.fail('INVALID_MODEL', `target shape ${formatShape(target.shape)} does not match input ${formatShape(x.shape)}`);
  }
  const perm = [0, ...x.shape.slice(2).map((_, i) => i + 2), 1];
  const rows = E.reshape(E.permute(x, perm), [-1, c]);
  const m = target.size;
  const q = allocate(rows.dtype, m * c);
  let denom = 0;
  for (let i = 0; i < m; i++) {
    const t = target.data[i];
    if (ignore !== null && t === ignore) continue;
    if (!Number.isInteger(t) || t < 0 || t >= c) ctx.fail('NODE_FAILED', `target ${t} at position ${i} is out of range for ${c} classes`);
    const w = weight ? weight.data[t] : 1;
    if (w === undefined) ctx.fail('INVALID_MODEL', `class weights ${formatShape(weight!.shape)} have no entry for class ${t}`);
    q[i * c + t] = w;
    denom += w;
  }
  const perRow = E.neg(E.sum(E.mul(rows, new Tensor(q, [m, c])), 1));
  if (reduction === 'none') return E.reshape(perRow, expected);
  const total = E.sum(perRow);
  if (reduction === 'sum') return total;
  if (reduction !== 'mean') ctx.fail('INVALID_MODEL', `unknown reduction '${reduction}'`);
  return E.mulScalar(total, 1 / denom);
}

const softmaxCrossEntropyLoss: OpHandler = {
  nonDiff: [1, 2],
  run(ctx, inputs) {
    const scores = floatIn(ctx, need(ctx, inputs, 0, 'scores'), 'scores');
    const labels = need(ctx, inputs, 1, 'labels');
    const weights = inputs[2] ?? null;
    const reduction = ctx.attrs.string('reduction', 'mean');
    const ignore = ctx.attrs.has('ignore_index') ? ctx.attrs.int('ignore_index') : null;
    let loss: Tensor;
    if (!weights && scores.rank >= 2) {
      loss = E.crossEntropy(scores, labels, { ignoreIndex: ignore ?? Number.NaN, reduction: reduction as E.Reduction });
    } else {
      loss = nll(ctx, E.logSoftmax(scores, 1), labels, weights, reduction, ignore);
    }
    return ctx.wants(1) ? [loss, E.logSoftmax(scores, 1)] : loss;
  },
};

const negativeLogLikelihoodLoss: OpHandler = {
  nonDiff: [1, 2],
  run(ctx, inputs) {
    const x = floatIn(ctx, need(ctx, inputs, 0, 'input'), 'input');
    const ignore = ctx.attrs.has('ignore_index') ? ctx.attrs.int('ignore_index') : null;
    return nll(ctx, x, need(ctx, inputs, 1, 'target'), inputs[2] ?? null, ctx.attrs.string('reduction', 'mean'), ignore);
  },
};

export const LOSS_OPS: Readonly<Record<string, OpHandler>> = {
  SoftmaxCrossEntropyLoss: softmaxCrossEntropyLoss,
  NegativeLogLikelihoodLoss: negativeLogLikelihoodLoss,
};
