import { Tensor } from '../tensor';
import { record } from '../autograd';
import { binaryK, hostKernelsRun, swishBackwardK, unaryK } from '../backend/dispatch';

/**
 * x * s where s = sigmoid(x) (SiLU, as exporters write it: Mul(x, Sigmoid(x))) on a host backend: the product as
 * usual, but its VJP is one kernel giving x the whole gradient g s (1 + x (1 - s)), sigmoid's path included, and s
 * none from this product (its other uses still send it theirs). Exported SiLU's VJP was two products, sigmoid's
 * VJP and a sum, four full-size kernels (EfficientNet-B0 has 49 SiLUs). Only when nothing watches s's own
 * gradient (no hook, no retained grad; the ONNX runner attaches both when s is produced, before this product):
 * s.grad would miss this share. Null for any other operands; `mul` then runs the plain product.
 * (Kernels only, no ops: engine/ops/elementwise.ts's mul calls this.)
 */
export function swishProduct(x: unknown, s: unknown): Tensor | null {
  if (!(x instanceof Tensor) || !(s instanceof Tensor)) return null;
  const fn = s.gradFn;
  if (!fn || fn.op !== 'sigmoid' || fn.inputs[0] !== x || s.hooks.length > 0 || s.retainsGrad || !hostKernelsRun()) return null;
  const out = binaryK('mul', x, s, 0, 'mul');
  return record('mul', [x], out, (g) => [
    // (A device backend by backward time runs the same formula in its own kernels.)
    swishBackwardK(x, g) ??
      binaryK('mul', binaryK('mul', g, s), unaryK('addScalar', binaryK('mul', x, unaryK('addScalar', unaryK('neg', s), 1)), 1)),
  ]);
}
