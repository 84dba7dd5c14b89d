import { Tensor } from '../tensor';
import { allocateFloat } from '../dtype';
import { formatShape, sizeOf } from '../shape';
import { floatDtype } from './util';
import { mul, mulScalar, neg, square, sub } from './elementwise';
import { mean, sum } from './reduce';
import { permute, reshape } from './layout';
import { logSoftmax } from './softmax';

export type Reduction = 'mean' | 'sum' | 'none';

export interface CrossEntropyOptions {
  /** Targets equal to this contribute nothing and are left out of the mean (PyTorch's default -100). */
  ignoreIndex?: number;
  reduction?: Reduction;
  /** Mixes the one-hot target with a uniform distribution, as torch's label_smoothing. */
  labelSmoothing?: number;
}

/**
 * Cross-entropy of class scores `logits` [N, C] or [N, C, d1, ...] against integer `targets`
 * [N] or [N, d1, ...], as torch.nn.functional.cross_entropy. Built from log-softmax and a
 * constant target distribution q, loss = -sum_c q_c log p_c, so its gradient is p - q.
 */
export function crossEntropy(logits: Tensor, targets: Tensor, options: CrossEntropyOptions = {}): Tensor {
  const { ignoreIndex = -100, reduction = 'mean', labelSmoothing = 0 } = options;
  const dtype = floatDtype('cross_entropy', logits);
  if (logits.rank < 2) throw new RangeError(`cross_entropy: logits need shape [N, C, ...], got ${formatShape(logits.shape)}`);
  const classes = logits.shape[1];
  const expectedTargets = [logits.shape[0], ...logits.shape.slice(2)];
  if (targets.rank !== expectedTargets.length || targets.shape.some((d, i) => d !== expectedTargets[i])) {
    throw new RangeError(`cross_entropy: targets shape ${formatShape(targets.shape)} does not match logits ${formatShape(logits.shape)} (expected ${formatShape(expectedTargets)})`);
  }
  // Move the class axis last: [N, d..., C] -> [M, C].
  const perm = [0, ...logits.shape.slice(2).map((_, i) => i + 2), 1];
  const rows = reshape(permute(logits, perm), [-1, classes]);
  const m = sizeOf(expectedTargets);

  const q = allocateFloat(dtype, m * classes);
  let valid = 0;
  for (let i = 0; i < m; i++) {
    const t = targets.data[i];
    if (t === ignoreIndex) continue;
    if (!Number.isInteger(t) || t < 0 || t >= classes) {
      throw new RangeError(`cross_entropy: target ${t} at position ${i} is out of range for ${classes} classes`);
    }
    valid++;
    for (let k = 0; k < classes; k++) q[i * classes + k] = labelSmoothing / classes;
    q[i * classes + t] += 1 - labelSmoothing;
  }
  const perRow = neg(sum(mul(logSoftmax(rows, -1), new Tensor(q, [m, classes])), 1));
  if (reduction === 'none') return reshape(perRow, expectedTargets);
  const total = sum(perRow);
  // With every target ignored PyTorch returns NaN for the mean (0/0); so do we.
  return reduction === 'sum' ? total : mulScalar(total, 1 / valid);
}

/** Mean squared error, as torch.nn.functional.mse_loss (no broadcasting between a and b). */
export function mseLoss(a: Tensor, b: Tensor, reduction: Reduction = 'mean'): Tensor {
  if (a.rank !== b.rank || a.shape.some((d, i) => d !== b.shape[i])) {
    throw new RangeError(`mse_loss: shapes ${formatShape(a.shape)} and ${formatShape(b.shape)} differ`);
  }
  const sq = square(sub(a, b));
  return reduction === 'none' ? sq : reduction === 'sum' ? sum(sq) : mean(sq);
}
