import { Tensor, GradFn } from './tensor';
import { formatShape, shapeEquals } from './shape';
import { binaryK } from './backend/dispatch';
import { isTransientCallback, keepGrad, keepTensor, recyclingActive } from './recycling';

let gradDisabledDepth = 0;

export function isGradEnabled(): boolean {
  return gradDisabledDepth === 0;
}

/** Runs `fn` without recording the graph (PyTorch's `torch.no_grad()`). */
export function noGrad<T>(fn: () => T): T {
  gradDisabledDepth++;
  try {
    return fn();
  } finally {
    gradDisabledDepth--;
  }
}

/**
 * Attaches a VJP to `out` when grad mode is on and some input requires grad.
 * Every differentiable op ends with this call.
 */
export function record(op: string, inputs: readonly Tensor[], out: Tensor, backward: GradFn['backward']): Tensor {
  if (gradDisabledDepth === 0 && inputs.some((t) => t.requiresGrad)) {
    out.requiresGrad = true;
    out.gradFn = { op, inputs, backward };
  }
  return out;
}

/** Reverse topological order of the graph under `root` (iterative: deep nets would overflow recursion). */
function topologicalOrder(root: Tensor): Tensor[] {
  const order: Tensor[] = [];
  const visited = new Set<Tensor>([root]);
  const stack: [Tensor, number][] = [[root, 0]];
  while (stack.length) {
    const top = stack[stack.length - 1];
    const inputs = top[0].gradFn?.inputs ?? [];
    if (top[1] < inputs.length) {
      const child = inputs[top[1]++];
      if (child.requiresGrad && !visited.has(child)) {
        visited.add(child);
        stack.push([child, 0]);
      }
    } else {
      order.push(top[0]);
      stack.pop();
    }
  }
  return order.reverse();
}

/** Sum of two same-shaped gradients, always out of place (gradients may be shared). */
function accumulate(a: Tensor, b: Tensor): Tensor {
  return binaryK('add', a, b, 0, 'accumulate');
}

function castLike(grad: Tensor, like: Tensor): Tensor {
  if (grad.dtype === like.dtype) return grad;
  const data = like.dtype === 'float64' ? Float64Array.from(grad.data) : Float32Array.from(grad.data);
  return new Tensor(data, grad.shape);
}

/**
 * Reverse-mode backward pass from `root`. Without `gradient`, `root` must hold one element and
 * is seeded with 1. Leaf tensors that require grad accumulate into `.grad`; intermediates keep
 * theirs only after `retainGrad()`. Hooks run in registration order and may replace the gradient.
 * The backward pass itself is not recorded (no double backward).
 */
export function backward(root: Tensor, gradient?: Tensor): void {
  if (!root.requiresGrad) throw new Error(`backward() on ${root} which does not require grad`);
  let seed: Tensor;
  if (gradient) {
    if (!shapeEquals(gradient.shape, root.shape)) {
      throw new RangeError(`gradient shape ${formatShape(gradient.shape)} does not match tensor shape ${formatShape(root.shape)}`);
    }
    seed = castLike(gradient, root);
  } else {
    if (root.size !== 1) throw new RangeError(`backward() without a gradient needs a scalar, got shape ${formatShape(root.shape)}`);
    seed = new Tensor(root.dtype === 'float64' ? new Float64Array([1]) : new Float32Array([1]), root.shape);
  }

  const pending = new Map<Tensor, Tensor>([[root, seed]]);
  noGrad(() => {
    for (const t of topologicalOrder(root)) {
      let g = pending.get(t);
      if (!g) continue;
      pending.delete(t);
      for (const hook of [...t.hooks]) {
        // A hook may keep its argument past the step (engine/recycling.ts), unless it says it does not.
        if (recyclingActive() && !isTransientCallback(hook)) keepTensor(g);
        const replaced = hook(g);
        if (replaced instanceof Tensor) {
          if (!shapeEquals(replaced.shape, t.shape)) {
            throw new RangeError(`hook on ${t.name ?? t.toString()} returned shape ${formatShape(replaced.shape)}, expected ${formatShape(t.shape)}`);
          }
          g = castLike(replaced, t);
        }
      }
      if (!t.gradFn || t.retainsGrad) {
        t.grad = t.grad ? accumulate(t.grad, g) : g;
        // A leaf's gradient may be reused after the next step's zeroGrad(); a retained one is kept for good.
        if (t.gradFn) keepTensor(t.grad);
        else keepGrad(t, t.grad);
      }
      if (!t.gradFn) continue;
      const grads = t.gradFn.backward(g);
      t.gradFn.inputs.forEach((input, i) => {
        const gi = grads[i];
        if (!input.requiresGrad || !gi) return;
        if (!shapeEquals(gi.shape, input.shape)) {
          // A VJP returning the wrong shape is an engine bug; fail loudly rather than show a wrong number.
          throw new Error(`internal: ${t.gradFn!.op} backward produced shape ${formatShape(gi.shape)} for input ${i} of shape ${formatShape(input.shape)}`);
        }
        const cast = castLike(gi, input);
        const prev = pending.get(input);
        pending.set(input, prev ? accumulate(prev, cast) : cast);
      });
    }
  });
}
