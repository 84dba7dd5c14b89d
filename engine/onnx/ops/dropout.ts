/** Dropout (train/eval from the model or the run). */
import * as E from '../../ops';
import { Tensor } from '../../tensor';
import { OpHandler, floatIn, need, scalarOf } from './common';

export const DROPOUT_OPS: Readonly<Record<string, OpHandler>> = {
  Dropout: {
    nonDiff: [1, 2],
    stochastic: true,
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'data');
      let ratio = 0.5;
      let modelTraining = false;
      if (ctx.opset >= 12) {
        if (inputs[1]) ratio = scalarOf(ctx, inputs[1], 'ratio');
        if (inputs[2]) modelTraining = !!scalarOf(ctx, inputs[2], 'training_mode');
      } else {
        ratio = ctx.attrs.float('ratio', 0.5);
        modelTraining = ctx.opset < 7 ? ctx.attrs.int('is_test', 0) === 0 : false;
      }
      const training = ctx.training ?? modelTraining;
      const seed = ctx.attrs.has('seed') ? ctx.attrs.int('seed') : undefined;
      const y = E.dropout(floatIn(ctx, x, 'Dropout input'), ratio, seed !== undefined ? { training, seed } : { training, rng: ctx.rng });
      if (!ctx.wants(1)) return y;
      // TorchScript's training export names the mask output even when nothing reads it: an all-kept mask in one fill.
      return [y, E.dropoutMaskOf(y) ?? new Tensor(new Uint8Array(x.size).fill(1), x.shape)];
    },
  },
};
