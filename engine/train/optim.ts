/**
 * Optimisers with PyTorch's update rules (torch.optim.SGD, Adam, AdamW as of torch 1.13-2.x, single
 * tensor path, no amsgrad/maximize), so that a run here can be checked step by step against PyTorch.
 *
 * Written by hand rather than built from engine ops: the update is a fused elementwise loop over the
 * parameter in place, with state and arithmetic in float64 (PyTorch keeps state in the parameter's
 * dtype; float64 state is at least as accurate, and is what makes float32 runs agree to ~1e-6).
 */
import { Tensor } from '../tensor';
import { transientFloatData } from '../ops/util';
import type { FloatArray } from '../dtype';

export interface SgdOptions {
  lr: number;
  momentum?: number;
  dampening?: number;
  nesterov?: boolean;
  /** L2 penalty added to the gradient. */
  weightDecay?: number;
}

export interface AdamOptions {
  lr: number;
  betas?: [number, number];
  eps?: number;
  /** Adam: L2 penalty added to the gradient; AdamW: decoupled decay of the weights (default 0.01). */
  weightDecay?: number;
}

/** Squared L2 norms of one step's update and of the parameter before it, per parameter. */
export interface UpdateNorms {
  deltaSq: number;
  paramSq: number;
}

export interface Optimizer {
  readonly kind: 'sgd' | 'adam' | 'adamw';
  readonly lr: number;
  /** Updates every parameter that has a gradient, in place; returns the update norms per parameter. */
  step(): Map<Tensor, UpdateNorms>;
  /** Settings as recorded in a training record. */
  settings(): Record<string, unknown>;
}

function checkLr(lr: number): void {
  if (!(lr >= 0) || !Number.isFinite(lr)) throw new RangeError(`learning rate must be a finite number >= 0, got ${lr}`);
}

function params(list: readonly Tensor[]): Tensor[] {
  for (const p of list) {
    if (!p.requiresGrad || !p.isLeaf) throw new Error(`cannot optimise ${p.name ?? p.toString()}: it is not a leaf tensor that requires grad`);
  }
  return [...list];
}

/**
 * Runs `update` on every parameter that has a gradient: it rewrites the values `w` in place (one fused loop)
 * and returns the update's norms. The values go back through the data setter, which drops any cached device
 * copy the in-place update made stale. Gradients are read with transientFloatData, here and in the clipping below
 * (nothing keeps them): a recycling step may reuse their arrays after the next zeroGrad() (engine/recycling.ts).
 */
function stepEach(params: readonly Tensor[], update: (p: Tensor, w: FloatArray, g: FloatArray) => UpdateNorms): Map<Tensor, UpdateNorms> {
  const norms = new Map<Tensor, UpdateNorms>();
  for (const p of params) {
    if (!p.grad) continue;
    const w = p.floatData;
    norms.set(p, update(p, w, transientFloatData(p.grad)));
    p.data = w;
  }
  return norms;
}

export class SGD implements Optimizer {
  readonly kind = 'sgd';
  readonly lr: number;
  private readonly momentum: number;
  private readonly dampening: number;
  private readonly nesterov: boolean;
  private readonly weightDecay: number;
  private readonly buffers = new Map<Tensor, Float64Array>();
  private readonly params: Tensor[];

  constructor(list: readonly Tensor[], options: SgdOptions) {
    checkLr(options.lr);
    this.params = params(list);
    this.lr = options.lr;
    this.momentum = options.momentum ?? 0;
    this.dampening = options.dampening ?? 0;
    this.nesterov = options.nesterov ?? false;
    this.weightDecay = options.weightDecay ?? 0;
    if (this.nesterov && (this.momentum <= 0 || this.dampening !== 0)) throw new RangeError('Nesterov momentum requires a momentum and zero dampening');
  }

  step(): Map<Tensor, UpdateNorms> {
    return stepEach(this.params, (p, w, g) => {
      let buf = this.buffers.get(p);
      const first = !buf;
      if (this.momentum !== 0 && !buf) this.buffers.set(p, (buf = new Float64Array(w.length)));
      let deltaSq = 0;
      let paramSq = 0;
      for (let i = 0; i < w.length; i++) {
        let d = g[i] + this.weightDecay * w[i];
        if (buf) {
          // torch: the first step's buffer is the gradient itself (no dampening).
          buf[i] = first ? d : this.momentum * buf[i] + (1 - this.dampening) * d;
          d = this.nesterov ? d + this.momentum * buf[i] : buf[i];
        }
        const before = w[i];
        w[i] = before - this.lr * d;
        const delta = w[i] - before;
        deltaSq += delta * delta;
        paramSq += before * before;
      }
      return { deltaSq, paramSq };
    });
  }

  settings(): Record<string, unknown> {
    return { kind: this.kind, lr: this.lr, momentum: this.momentum, nesterov: this.nesterov, weightDecay: this.weightDecay };
  }
}

/** Adam and AdamW (decoupled weight decay, Loshchilov & Hutter), as torch.optim implements them. */
export class Adam implements Optimizer {
  readonly lr: number;
  private readonly beta1: number;
  private readonly beta2: number;
  private readonly eps: number;
  private readonly weightDecay: number;
  private readonly state = new Map<Tensor, { step: number; m: Float64Array; v: Float64Array }>();
  private readonly params: Tensor[];

  constructor(list: readonly Tensor[], options: AdamOptions, readonly kind: 'adam' | 'adamw' = 'adam') {
    checkLr(options.lr);
    this.params = params(list);
    this.lr = options.lr;
    [this.beta1, this.beta2] = options.betas ?? [0.9, 0.999];
    if (!(this.beta1 >= 0 && this.beta1 < 1 && this.beta2 >= 0 && this.beta2 < 1)) throw new RangeError(`Adam betas must lie in [0, 1), got ${this.beta1}, ${this.beta2}`);
    this.eps = options.eps ?? 1e-8;
    this.weightDecay = options.weightDecay ?? (kind === 'adamw' ? 0.01 : 0);
  }

  step(): Map<Tensor, UpdateNorms> {
    return stepEach(this.params, (p, w, g) => {
      let s = this.state.get(p);
      if (!s) this.state.set(p, (s = { step: 0, m: new Float64Array(w.length), v: new Float64Array(w.length) }));
      s.step++;
      const bc1 = 1 - this.beta1 ** s.step;
      const bc2Sqrt = Math.sqrt(1 - this.beta2 ** s.step);
      const stepSize = this.lr / bc1;
      const decay = this.kind === 'adamw' ? 1 - this.lr * this.weightDecay : 1;
      const l2 = this.kind === 'adam' ? this.weightDecay : 0;
      let deltaSq = 0;
      let paramSq = 0;
      for (let i = 0; i < w.length; i++) {
        const before = w[i];
        const gi = g[i] + l2 * before;
        s.m[i] = this.beta1 * s.m[i] + (1 - this.beta1) * gi;
        s.v[i] = this.beta2 * s.v[i] + (1 - this.beta2) * gi * gi;
        const denom = Math.sqrt(s.v[i]) / bc2Sqrt + this.eps;
        w[i] = before * decay - stepSize * (s.m[i] / denom);
        const delta = w[i] - before;
        deltaSq += delta * delta;
        paramSq += before * before;
      }
      return { deltaSq, paramSq };
    });
  }

  settings(): Record<string, unknown> {
    return { kind: this.kind, lr: this.lr, betas: [this.beta1, this.beta2], eps: this.eps, weightDecay: this.weightDecay };
  }
}

/**
 * torch.nn.utils.clip_grad_norm_ (norm type 2): scales every gradient by
 * min(1, maxNorm / (total + 1e-6)). Returns the total norm before clipping (NaN/Inf passes through).
 */
export function clipGradNorm(list: readonly Tensor[], maxNorm: number): number {
  let sq = 0;
  for (const p of list) if (p.grad) for (const v of transientFloatData(p.grad)) sq += v * v;
  const total = Math.sqrt(sq);
  const coef = Math.min(1, maxNorm / (total + 1e-6));
  // Gradients may be shared with other tensors (ops never mutate): replace rather than scale in place.
  if (coef < 1) for (const p of list) if (p.grad) p.grad = scaled(p.grad, coef);
  return total;
}

/** torch.nn.utils.clip_grad_value_: clamps every gradient element to [-clipValue, clipValue]. */
export function clipGradValue(list: readonly Tensor[], clipValue: number): void {
  if (!(clipValue > 0)) throw new RangeError(`clip value must be > 0, got ${clipValue}`);
  for (const p of list) {
    if (!p.grad) continue;
    const g = transientFloatData(p.grad);
    const out = g.slice();
    for (let i = 0; i < out.length; i++) out[i] = Math.min(clipValue, Math.max(-clipValue, g[i]));
    p.grad = withData(p.grad, out);
  }
}

function scaled(t: Tensor, coef: number): Tensor {
  const out = transientFloatData(t).slice();
  for (let i = 0; i < out.length; i++) out[i] *= coef;
  return withData(t, out);
}

function withData(t: Tensor, data: FloatArray): Tensor {
  return new Tensor(data, t.shape);
}

export interface OptimizerConfig {
  kind: 'sgd' | 'adam' | 'adamw';
  lr: number;
  momentum?: number;
  nesterov?: boolean;
  weightDecay?: number;
  betas?: [number, number];
  eps?: number;
}

export function createOptimizer(list: readonly Tensor[], c: OptimizerConfig): Optimizer {
  switch (c.kind) {
    case 'sgd': return new SGD(list, { lr: c.lr, momentum: c.momentum, nesterov: c.nesterov, weightDecay: c.weightDecay });
    case 'adam': return new Adam(list, { lr: c.lr, betas: c.betas, eps: c.eps, weightDecay: c.weightDecay }, 'adam');
    case 'adamw': return new Adam(list, { lr: c.lr, betas: c.betas, eps: c.eps, weightDecay: c.weightDecay }, 'adamw');
    default: throw new RangeError(`unknown optimizer ${JSON.stringify((c as { kind: unknown }).kind)} (expected sgd, adam or adamw)`);
  }
}
