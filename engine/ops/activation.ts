import { Tensor } from '../tensor';
import { record } from '../autograd';
import { hardSigmoidK } from '../backend/dispatch';
import { addScalar, clamp, mul, mulScalar } from './elementwise';

/**
 * Hard sigmoid clamp(alpha x + beta, 0, 1) (ONNX HardSigmoid), or with `swish` x times it (HardSwish: alpha 1/6,
 * beta 1/2). The gradient passes inside the bounds, bounds included (torch.clamp's). On host backends one kernel
 * forward and one backward (the composite was about a dozen kernels per MobileNetV3 activation); on device
 * backends the composite of scale, add, clamp and mul.
 */
export function hardSigmoid(x: Tensor, alpha: number, beta: number, swish = false): Tensor {
  const k = hardSigmoidK(x, alpha, beta, swish);
  if (!k) {
    const t = clamp(addScalar(mulScalar(x, alpha), beta), 0, 1);
    return swish ? mul(x, t) : t;
  }
  return record(swish ? 'hard_swish' : 'hard_sigmoid', [x], k.y, (g) => [k.backward(g)]);
}
