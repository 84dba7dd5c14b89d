import { Tensor } from '../tensor';
import { record } from '../autograd';
import { binaryK, hostKernelsRun, swishBackwardK, unaryK } from '../backend/dispatch';

/**
 * x * s where s = sigmoid(x) (SiLU, as exporters write it: Mul(x, Sigmoid(x))) on a host backend: the product as
 * usual, and a VJP that is one kernel giving x the whole gradient g s (1 + x (1 - s)), sigmoid's path included, and
 * s none from this product (its other uses still send it theirs). Exported SiLU's VJP was two products, sigmoid's
 * VJP and a sum, four full-size kernels (EfficientNet-B0 has 49 SiLUs).
 *
 * Whether to fuse is decided when the VJP runs, not here: the inspector hooks module outputs and watched values
 * (and its NaN watch every value) after the forward pass. If s has a hook or retains its gradient by then, the VJP
 * is the plain product's, [g s, g x], so s.grad and s's hooks see this product's share. Null for any other
 * operands; `mul` then runs the plain product. (Kernels only, no ops: engine/ops/elementwise.ts's mul calls this.)
 */
export function swishProduct(x: unknown, s: unknown): Tensor | null {
  if (!(x instanceof Tensor) || !(s instanceof Tensor)) return null;
  const fn = s.gradFn;
  if (!fn || fn.op !== 'sigmoid' || fn.inputs[0] !== x || !hostKernelsRun()) return null;
  const out = binaryK('mul', x, s, 0, 'mul');
  return record('mul', [x, s], out, (g) => {
    if (s.hooks.length > 0 || s.retainsGrad) return [binaryK('mul', g, s), binaryK('mul', g, x)];
    // (A device backend by backward time runs the same formula in its own kernels.)
    const gx = swishBackwardK(x, g) ??
      binaryK('mul', binaryK('mul', g, s), unaryK('addScalar', binaryK('mul', x, unaryK('addScalar', unaryK('neg', s), 1)), 1));
    return [gx, null];
  });
}
