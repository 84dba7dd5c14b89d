/** Matrix products: MatMul and Gemm. */
import * as E from '../../ops';
import { layout } from '../helpers';
import { OpHandler, need } from './common';

export const MATMUL_OPS: Readonly<Record<string, OpHandler>> = {
  MatMul: { run: (ctx, inputs) => layout([need(ctx, inputs, 0, 'A'), need(ctx, inputs, 1, 'B')], ([a, b]) => E.matmul(a, b)) },
  Gemm: {
    run(ctx, inputs) {
      const a = ctx.attrs;
      return E.gemm(need(ctx, inputs, 0, 'A'), need(ctx, inputs, 1, 'B'), inputs[2] ?? null, {
        alpha: a.float('alpha', 1), beta: a.float('beta', 1), transA: a.flag('transA', false), transB: a.flag('transB', false),
      });
    },
  },
};
