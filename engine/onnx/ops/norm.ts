/** Normalization ops: batch, instance, layer, RMS, Lp and local response normalization. */
import { Tensor } from '../../tensor';
import { noGrad } from '../../autograd';
import * as E from '../../ops';
import { OpHandler, axisOf, floatIn, need } from './common';
import { padAxis } from './layout';


function channelShape(x: Tensor): number[] {
  return x.shape.map((d, i) => (i === 1 ? d : 1));
}

const batchNormalization: OpHandler = {
  nonDiff: [3, 4],
  run(ctx, inputs) {
    const x = floatIn(ctx, need(ctx, inputs, 0, 'X'), 'BatchNormalization input');
    const scale = inputs[1] ?? null;
    const bias = inputs[2] ?? null;
    const mean = need(ctx, inputs, 3, 'input_mean');
    const variance = need(ctx, inputs, 4, 'input_var');
    const a = ctx.attrs;
    const eps = a.float('epsilon', 1e-5);
    const onnxMomentum = a.float('momentum', 0.9);
    if (ctx.opset < 9 && a.int('spatial', 1) === 0) ctx.fail('UNSUPPORTED_FEATURE', 'BatchNormalization with spatial=0 (per-activation statistics) is not supported');
    const outputsUsed = ctx.node.outputs.filter((o) => o !== '').length;
    const modelTraining = ctx.opset >= 14 ? a.int('training_mode', 0) === 1 : ctx.opset >= 7 ? outputsUsed > 1 : a.int('is_test', 0) === 0;
    const training = ctx.training ?? modelTraining;
    if (!training) return [E.batchNorm(x, scale, bias, mean, variance, { training: false, eps }), mean, variance];
    // Running statistics: updated in place only when asked (PyTorch semantics); else on copies,
    // returned as the node's running_mean / running_var outputs (ONNX semantics).
    // A copy is a new tensor on the same values: host data is copied (the update writes it in place),
    // device storage is shared (a device update swaps in new storage, never writes the old one).
    const copy = (t: Tensor) => (t.hasHostData ? new Tensor(t.data.slice(), t.shape) : t.view(t.shape));
    const rm = ctx.updateBuffers ? mean : copy(mean);
    const rv = ctx.updateBuffers ? variance : copy(variance);
    // The ONNX spec updates running_var with the population variance; PyTorch (whose exports say
    // producer_name 'pytorch') with the unbiased one, and a PyTorch model is trained as PyTorch would.
    const unbiasedRunningVar = ctx.producer.toLowerCase() === 'pytorch';
    const y = E.batchNorm(x, scale, bias, rm, rv, { training: true, momentum: 1 - onnxMomentum, eps, unbiasedRunningVar });
    const outs: (Tensor | null)[] = [y, ctx.wants(1) ? rm.detach() : null, ctx.wants(2) ? rv.detach() : null];
    if (ctx.opset < 14 && (ctx.wants(3) || ctx.wants(4))) {
      const axes = x.shape.map((_, i) => i).filter((i) => i !== 1);
      noGrad(() => {
        const mu = E.mean(x, axes, false);
        outs.push(mu, E.mean(E.square(E.sub(x, E.reshape(mu, channelShape(x)))), axes, false));
      });
    }
    return outs;
  },
};

const instanceNormalization: OpHandler = {
  run(ctx, inputs) {
    const x = floatIn(ctx, need(ctx, inputs, 0, 'input'), 'InstanceNormalization input');
    const scale = need(ctx, inputs, 1, 'scale');
    const bias = need(ctx, inputs, 2, 'B');
    const eps = ctx.attrs.float('epsilon', 1e-5);
    const axes = x.shape.map((_, i) => i).slice(2);
    const centered = E.sub(x, E.mean(x, axes, true));
    const y = E.mul(centered, E.rsqrt(E.addScalar(E.mean(E.square(centered), axes, true), eps)));
    return E.add(E.mul(y, E.reshape(scale, channelShape(x))), E.reshape(bias, channelShape(x)));
  },
};

const layerNormalization: OpHandler = {
  run(ctx, inputs) {
    const x = floatIn(ctx, need(ctx, inputs, 0, 'X'), 'LayerNormalization input');
    const scale = need(ctx, inputs, 1, 'Scale');
    const bias = inputs[2] ?? null;
    const axis = axisOf(ctx, ctx.attrs.int('axis', -1), x.rank);
    const eps = ctx.attrs.float('epsilon', 1e-5);
    const dims = x.shape.slice(axis);
    const exact = (t: Tensor | null) => !t || (t.rank === dims.length && t.shape.every((d, i) => d === dims[i]));
    let y: Tensor;
    if (exact(scale) && exact(bias)) {
      y = E.layerNorm(x, dims, scale, bias, eps);
    } else {
      y = E.mul(E.layerNorm(x, dims, null, null, eps), scale);
      if (bias) y = E.add(y, bias);
    }
    if (!ctx.wants(1) && !ctx.wants(2)) return y;
    const axes = dims.map((_, i) => axis + i);
    const mu = E.mean(x, axes, true);
    const inv = E.rsqrt(E.addScalar(E.mean(E.square(E.sub(x, mu)), axes, true), eps));
    return [y, mu, inv];
  },
};

export const NORM_OPS: Readonly<Record<string, OpHandler>> = {
  BatchNormalization: batchNormalization,
  InstanceNormalization: instanceNormalization,
  LayerNormalization: layerNormalization,
  RMSNormalization: {
    run(ctx, inputs) {
      const x = floatIn(ctx, need(ctx, inputs, 0, 'X'), 'RMSNormalization input');
      const axis = axisOf(ctx, ctx.attrs.int('axis', -1), x.rank);
      return E.rmsNorm(x, x.shape.slice(axis), need(ctx, inputs, 1, 'scale'), ctx.attrs.float('epsilon', 1e-5));
    },
  },
  LRN: {
    // y = x / (bias + alpha / size * (sum of x^2 over the `size` channels around c))^beta (AlexNet);
    // the channel window is floor((size-1)/2) before c and ceil((size-1)/2) after, zero padded.
    run(ctx, inputs) {
      const x = floatIn(ctx, need(ctx, inputs, 0, 'X'), 'LRN input');
      const a = ctx.attrs;
      const size = a.int('size');
      const alpha = a.float('alpha', 1e-4);
      const beta = a.float('beta', 0.75);
      const bias = a.float('bias', 1);
      if (x.rank < 3) ctx.fail('INVALID_MODEL', `LRN input must be [N, C, ...spatial], got ${x.rank}-D`);
      if (!(size >= 1)) ctx.fail('INVALID_MODEL', `LRN size must be >= 1, got ${size}`);
      const c = x.shape[1];
      const padded = padAxis(ctx, E.square(x), 1, Math.floor((size - 1) / 2), Math.ceil((size - 1) / 2), 'constant', 0);
      let sums = E.slice(padded, { starts: [0], ends: [c], axes: [1] });
      for (let k = 1; k < size; k++) sums = E.add(sums, E.slice(padded, { starts: [k], ends: [k + c], axes: [1] }));
      return E.div(x, E.pow(E.addScalar(E.mulScalar(sums, alpha / size), bias), beta));
    },
  },
  LpNormalization: {
    run(ctx, inputs) {
      const x = floatIn(ctx, need(ctx, inputs, 0, 'input'), 'LpNormalization input');
      const axis = axisOf(ctx, ctx.attrs.int('axis', -1), x.rank);
      const p = ctx.attrs.int('p', 2);
      if (p !== 1 && p !== 2) ctx.fail('INVALID_MODEL', `LpNormalization p must be 1 or 2, got ${p}`);
      const norm = p === 1 ? E.sum(E.abs(x), axis, true) : E.sqrt(E.sum(E.square(x), axis, true));
      // An all-zero slice stays 0 (the spec's x / (norm == 0 ? 1 : norm)), not 0/0.
      return E.div(x, E.add(norm, E.equalMask(norm, 0)));
    },
  },
};
