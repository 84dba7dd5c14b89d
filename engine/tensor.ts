import { DType, TypedArray, allocate, dtypeOf, isFloat, FloatArray } from './dtype';
import { Shape, assertValidShape, formatShape, sizeOf } from './shape';

/** A gradient hook, as PyTorch's `register_hook`: it sees the gradient during backward and may replace it. */
export type GradHook = (grad: Tensor) => Tensor | void;

/** The record an op leaves on its output so backward can call its VJP. */
export interface GradFn {
  /** Op name, e.g. 'matmul'. */
  readonly op: string;
  readonly inputs: readonly Tensor[];
  /** Vector-Jacobian product: gradient of the output -> gradient of each input (null where none flows). */
  readonly backward: (grad: Tensor) => readonly (Tensor | null | undefined)[];
}

let nextId = 1;

/**
 * A dense, row-major tensor. Data is never mutated in place by ops, so gradients and saved
 * forward values can be shared between tensors safely; only optimisers write parameter data.
 */
export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly dtype: DType;
  data: TypedArray;
  requiresGrad: boolean;
  grad: Tensor | null = null;
  gradFn: GradFn | null = null;
  /** Optional label (parameter name, module path) used in error messages and reports. */
  name: string | undefined;
  readonly hooks: GradHook[] = [];
  retainsGrad = false;

  constructor(data: TypedArray, shape: Shape, options: { requiresGrad?: boolean; name?: string } = {}) {
    assertValidShape(shape);
    if (sizeOf(shape) !== data.length) {
      throw new RangeError(`tensor data has ${data.length} elements but shape ${formatShape(shape)} needs ${sizeOf(shape)}`);
    }
    this.shape = Object.freeze([...shape]);
    this.data = data;
    this.dtype = dtypeOf(data);
    this.name = options.name;
    this.requiresGrad = false;
    if (options.requiresGrad) this.setRequiresGrad(true);
  }

  get size(): number {
    return this.data.length;
  }

  get rank(): number {
    return this.shape.length;
  }

  get isLeaf(): boolean {
    return this.gradFn === null;
  }

  setRequiresGrad(flag = true): this {
    if (flag && !isFloat(this.dtype)) throw new TypeError(`only float tensors can require gradients, not ${this.dtype}`);
    if (!flag && this.gradFn) throw new Error('cannot clear requiresGrad on a non-leaf tensor; use detach()');
    this.requiresGrad = flag;
    return this;
  }

  /** Float view of the data; throws for int/bool tensors. */
  get floatData(): FloatArray {
    if (!isFloat(this.dtype)) throw new TypeError(`expected a float tensor, got ${this.dtype}`);
    return this.data as FloatArray;
  }

  item(): number {
    if (this.size !== 1) throw new RangeError(`item() needs a one-element tensor, got shape ${formatShape(this.shape)}`);
    return this.data[0];
  }

  toArray(): number[] {
    return Array.from(this.data);
  }

  /** A tensor sharing this data but cut from the graph. */
  detach(): Tensor {
    return new Tensor(this.data, this.shape, { name: this.name });
  }

  /** Keep `.grad` on this intermediate tensor after backward (PyTorch's retain_grad). */
  retainGrad(): this {
    if (!this.requiresGrad) throw new Error("retainGrad() on a tensor that doesn't require grad");
    this.retainsGrad = true;
    return this;
  }

  /** Registers a hook called with this tensor's gradient during backward. Returns a remover. */
  registerHook(hook: GradHook): () => void {
    if (!this.requiresGrad) throw new Error("cannot register a hook on a tensor that doesn't require grad");
    this.hooks.push(hook);
    return () => {
      const i = this.hooks.indexOf(hook);
      if (i >= 0) this.hooks.splice(i, 1);
    };
  }

  zeroGrad(): void {
    this.grad = null;
  }

  toString(): string {
    return `Tensor(${formatShape(this.shape)}, ${this.dtype}${this.requiresGrad ? ', requiresGrad' : ''}${this.gradFn ? `, gradFn=${this.gradFn.op}` : ''})`;
  }
}

export function tensorFrom(values: ArrayLike<number>, shape: Shape, dtype: DType = 'float32', options: { requiresGrad?: boolean; name?: string } = {}): Tensor {
  const data = allocate(dtype, values.length);
  for (let i = 0; i < values.length; i++) data[i] = values[i];
  return new Tensor(data, shape, options);
}

export function scalar(value: number, dtype: DType = 'float32'): Tensor {
  return tensorFrom([value], [], dtype);
}

export function full(shape: Shape, value: number, dtype: DType = 'float32', options: { requiresGrad?: boolean; name?: string } = {}): Tensor {
  const data = allocate(dtype, sizeOf(shape));
  if (value !== 0) data.fill(value);
  return new Tensor(data, shape, options);
}

export function zeros(shape: Shape, dtype: DType = 'float32', options: { requiresGrad?: boolean; name?: string } = {}): Tensor {
  return full(shape, 0, dtype, options);
}

export function ones(shape: Shape, dtype: DType = 'float32', options: { requiresGrad?: boolean; name?: string } = {}): Tensor {
  return full(shape, 1, dtype, options);
}
