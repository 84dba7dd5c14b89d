import { Tensor } from '../tensor';
import { record, noGrad } from '../autograd';
import { batchNormK, layerNormK } from '../backend/dispatch';
import { formatShape, shapeEquals, sizeOf } from '../shape';
import { dataAs, floatDtype, fromData } from './util';
import { reshape } from './layout';
import { add, addScalar, mul, mulScalar, rsqrt, square, sub } from './elementwise';
import { mean } from './reduce';

function normalizedDims(op: string, x: Tensor, normalizedShape: number | readonly number[]): number[] {
  const dims = typeof normalizedShape === 'number' ? [normalizedShape] : [...normalizedShape];
  if (dims.length === 0 || dims.length > x.rank || !shapeEquals(dims, x.shape.slice(x.rank - dims.length))) {
    throw new RangeError(`${op}: normalized_shape ${formatShape(dims)} does not match the trailing dims of input ${formatShape(x.shape)}`);
  }
  return dims;
}

function assertParam(op: string, what: string, p: Tensor | null, dims: readonly number[]): void {
  if (p && !shapeEquals(p.shape, dims)) {
    throw new RangeError(`${op}: ${what} shape ${formatShape(p.shape)} does not match normalized_shape ${formatShape(dims)}`);
  }
}

/**
 * Shared layer / RMS norm over the trailing `n` elements of each row, on the fused backend kernels
 * (explicit VJP: backend.layerNormBackward gives the x, weight and bias gradients in one pass).
 */
function normOp(op: string, rms: boolean, x: Tensor, normalizedShape: number | readonly number[], weight: Tensor | null, bias: Tensor | null, eps: number): Tensor {
  const params = [weight, bias].filter((t): t is Tensor => t !== null);
  const dtype = floatDtype(op, x, ...params);
  const dims = normalizedDims(op, x, normalizedShape);
  assertParam(op, 'weight', weight, dims);
  assertParam(op, 'bias', bias, dims);
  const n = sizeOf(dims);
  const rows = n === 0 ? 0 : x.size / n;
  const { y: out, backward } = layerNormK(x, weight, bias, rows, n, eps, rms, dtype);
  return record(op, [x, ...params], out, (g) => {
    const { gx, gw, gb } = backward(g);
    const grads: (Tensor | null)[] = [x.requiresGrad ? gx : null];
    if (weight) grads.push(weight.requiresGrad ? reshape(gw, weight.shape) : null);
    if (bias) grads.push(bias.requiresGrad ? reshape(gb, bias.shape) : null);
    return grads;
  });
}

/**
 * Layer norm over the trailing dims given by `normalizedShape` (torch.nn.functional.layer_norm):
 * y = (x - mean) / sqrt(var + eps) * weight + bias, with the biased variance. weight and bias have
 * shape normalizedShape. Fused forward and VJP kernels.
 */
export function layerNorm(x: Tensor, normalizedShape: number | readonly number[], weight: Tensor | null = null, bias: Tensor | null = null, eps = 1e-5): Tensor {
  return normOp('layer_norm', false, x, normalizedShape, weight ?? null, bias ?? null, eps);
}

/** RMS norm over the trailing dims: y = x / sqrt(mean(x^2) + eps) * weight. Fused forward and VJP kernels. */
export function rmsNorm(x: Tensor, normalizedShape: number | readonly number[], weight: Tensor | null = null, eps = 1e-6): Tensor {
  return normOp('rms_norm', true, x, normalizedShape, weight ?? null, null, eps);
}

export interface BatchNormOptions {
  /** Normalise with batch statistics and update the running stats (default false, like torch's F.batch_norm). */
  training?: boolean;
  /** Weight of the new batch statistic in the running average (default 0.1). */
  momentum?: number;
  eps?: number;
  /**
   * Which batch variance goes into runningVar: the unbiased one (n / (n - 1) times the biased one; default
   * true, as PyTorch) or the population variance (false, as the ONNX BatchNormalization spec).
   */
  unbiasedRunningVar?: boolean;
}

/**
 * Training-mode batch norm on the fused host kernels (statistics, normalisation and affine in one pass over the
 * channel's values, and an explicit VJP), or null where the composite must run: on a device backend, or with
 * running statistics that live on the device.
 */
function fusedTrainingBatchNorm(
  x: Tensor, weight: Tensor | null, bias: Tensor | null, runningMean: Tensor | null, runningVar: Tensor | null,
  c: number, momentum: number, eps: number, unbiasedRunningVar: boolean,
): Tensor | null {
  if ((runningMean && !runningMean.hasHostData) || (runningVar && !runningVar.hasHostData)) return null;
  const params = [weight, bias].filter((t): t is Tensor => t !== null);
  const dtype = floatDtype('batch_norm', x, ...params);
  const outer = x.shape[0];
  const inner = outer * c === 0 ? 0 : x.size / (outer * c);
  const r = batchNormK(x, weight, bias, outer, c, inner, eps, dtype);
  if (!r) return null;
  const count = outer * inner;
  const unbiased = unbiasedRunningVar ? count / (count - 1) : 1;
  for (let ch = 0; ch < c; ch++) {
    // The biased batch variance, recovered in float64 from rstd = 1 / sqrt(var + eps).
    const variance = 1 / (r.rstd[ch] * r.rstd[ch]) - eps;
    if (runningMean) runningMean.data[ch] = (1 - momentum) * runningMean.data[ch] + momentum * r.mean[ch];
    if (runningVar) runningVar.data[ch] = (1 - momentum) * runningVar.data[ch] + momentum * variance * unbiased;
  }
  return record('batch_norm', [x, ...params], r.y, (g) => {
    const { gx, gw, gb } = r.backward(g);
    const grads: (Tensor | null)[] = [x.requiresGrad ? gx : null];
    if (weight) grads.push(weight.requiresGrad ? reshape(gw, weight.shape) : null);
    if (bias) grads.push(bias.requiresGrad ? reshape(gb, bias.shape) : null);
    return grads;
  });
}

/**
 * Batch norm over x [N, C] or [N, C, *], as torch.nn.functional.batch_norm: statistics per channel
 * (axis 1) over every other axis.
 * - training: normalise with the batch mean and biased variance, and update runningMean /
 *   runningVar IN PLACE (their `.data` is written: buffers are the one documented exception to
 *   tensor immutability) as running = (1 - momentum) * running + momentum * batch, using the
 *   UNBIASED batch variance for runningVar (PyTorch; `unbiasedRunningVar: false` gives the population one).
 * - eval: normalise with the running statistics, which are constants (no gradient reaches them).
 *
 * Training on host backends runs the fused kernels (fusedTrainingBatchNorm). Otherwise composite: built from
 * mean, sub, square, addScalar, rsqrt, mul, add and reshape, so autograd derives the VJP (including the terms
 * through the batch mean and variance in training).
 */
export function batchNorm(
  x: Tensor, weight: Tensor | null, bias: Tensor | null, runningMean: Tensor | null, runningVar: Tensor | null, options: BatchNormOptions = {},
): Tensor {
  const { training = false, momentum = 0.1, eps = 1e-5, unbiasedRunningVar = true } = options;
  const op = 'batch_norm';
  const dtype = floatDtype(op, x);
  if (x.rank < 2) throw new RangeError(`${op}: expected input [N, C] or [N, C, ...], got ${formatShape(x.shape)}`);
  const c = x.shape[1];
  const check = (what: string, t: Tensor | null) => {
    if (!t) return;
    floatDtype(op, t);
    if (t.rank !== 1 || t.shape[0] !== c) {
      throw new RangeError(`${op}: ${what} shape ${formatShape(t.shape)} does not match the ${c} channels of input ${formatShape(x.shape)} (expected [${c}])`);
    }
  };
  check('weight', weight);
  check('bias', bias);
  check('running_mean', runningMean);
  check('running_var', runningVar);
  if (typeof momentum !== 'number' || !(momentum >= 0 && momentum <= 1)) throw new RangeError(`${op}: momentum must be in [0, 1], got ${momentum}`);

  const axes = x.shape.map((_, i) => i).filter((i) => i !== 1);
  const channelShape = x.shape.map((d, i) => (i === 1 ? d : 1));
  const count = x.size / Math.max(c, 1);
  let y: Tensor;
  if (training) {
    if (count <= 1) throw new RangeError(`${op}: expected more than 1 value per channel when training, got input ${formatShape(x.shape)}`);
    const fused = fusedTrainingBatchNorm(x, weight, bias, runningMean, runningVar, c, momentum, eps, unbiasedRunningVar);
    if (fused) return fused;
    const mu = mean(x, axes, true);
    const centered = sub(x, mu);
    const variance = mean(square(centered), axes, true);
    y = mul(centered, rsqrt(addScalar(variance, eps)));
    noGrad(() => {
      const unbiased = unbiasedRunningVar ? count / (count - 1) : 1;
      if (mu.hasHostData && variance.hasHostData && (!runningMean || runningMean.hasHostData) && (!runningVar || runningVar.hasHostData)) {
        for (let ch = 0; ch < c; ch++) {
          if (runningMean) runningMean.data[ch] = (1 - momentum) * runningMean.data[ch] + momentum * mu.data[ch];
          if (runningVar) runningVar.data[ch] = (1 - momentum) * runningVar.data[ch] + momentum * variance.data[ch] * unbiased;
        }
        return;
      }
      // Statistics on the device: the same update as device ops (float32), swapped in as the buffers' storage.
      const blend = (running: Tensor, batch: Tensor, factor: number) =>
        running.assign(add(mulScalar(running.detach(), 1 - momentum), mulScalar(reshape(batch, [c]), momentum * factor)));
      if (runningMean) blend(runningMean, mu, 1);
      if (runningVar) blend(runningVar, variance, unbiased);
    });
  } else {
    if (!runningMean || !runningVar) throw new RangeError(`${op}: running_mean and running_var are required in eval mode (training false)`);
    // Constants in x's dtype: gradients flow to x, weight and bias only.
    const constant = (t: Tensor) => (t.dtype === dtype ? reshape(t.detach(), channelShape) : fromData(dataAs(t, dtype), channelShape));
    const rm = constant(runningMean);
    const rv = constant(runningVar);
    y = mul(sub(x, rm), rsqrt(addScalar(rv, eps)));
  }
  if (weight) y = mul(y, reshape(weight, channelShape));
  if (bias) y = add(y, reshape(bias, channelShape));
  return y;
}
