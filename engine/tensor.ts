import { DType, TypedArray, allocate, dtypeOf, isFloat, FloatArray } from './dtype';
import { Shape, assertValidShape, formatShape, sizeOf } from './shape';
import { metering, noteBuffer } from './memory';
import { keepArray, noteHolder, recyclingTracks, releaseGrad } from './recycling';

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
 * Host arrays of model parameters (markParameter). Their values never change in place: an optimiser step
 * replaces the array through the `data` setter. A backend may therefore keep its own copy of such an array
 * between calls, keyed by the array (the wasm backend keeps weights in WebAssembly memory). Only tensors the
 * model owns are marked, not every leaf that requires gradients: a caller's input buffer may be refilled.
 */
const parameterArrays = new WeakSet<TypedArray>();
const parameterTensors = new WeakSet<Tensor>();

/** True when `values` is the host array of a parameter (see parameterArrays). */
export function isParameterData(values: TypedArray): boolean {
  return parameterArrays.has(values);
}

/**
 * Marks `t` as a model parameter: its host arrays (now and after every `data` replacement) are never written in
 * place, so backends may cache copies of them.
 */
export function markParameter(t: Tensor): Tensor {
  parameterTensors.add(t);
  if (t.hasHostData) parameterArrays.add(t.data);
  return t;
}

/** Constructor argument for a device-only tensor (see Tensor.onDevice). */
class DeviceInit {
  constructor(readonly storage: DeviceStorage, readonly owner: object, readonly dtype: DType) {}
}

/** Constructor argument for a tensor whose host values are computed on first read (see Tensor.transposed). */
class LazyInit {
  constructor(readonly length: number, readonly dtype: DType, readonly compute: () => TypedArray, readonly transposeOf: Tensor) {}
}

/**
 * Values of a tensor held by a device backend (WebGPU). Lifetime is the device's run scope; after
 * release() the values are gone unless they were read back first.
 */
export interface DeviceStorage {
  readonly length: number;
  readonly released: boolean;
  /** Downloads the values (asynchronous: device readback needs the event loop). */
  read(): Promise<TypedArray>;
  /** Returns the buffer to its device's pool (idempotent). */
  release(): void;
}

/**
 * Host code asked for the values of a tensor that lives only on the device. Thrown instead of ever
 * reading stale or missing data; the message names the op (or code path) that needed the values.
 */
export class TensorOnDeviceError extends Error {
  constructor(readonly tensor: Tensor, readonly op?: string) {
    super(`${op ? `${op}: ` : ''}${tensor.name ?? tensor.toString()} lives on the device (${tensor.deviceName ?? 'device'}); its values are not on the host${tensor.storageReleased ? ' and its device buffer was released' : ' (await t.read() or readTensors([...]) first, or run this op on a host backend)'}`);
    this.name = 'TensorOnDeviceError';
  }
}

/**
 * Host code read a tensor whose values were recycled when its step ended (engine/recycling.ts): its array now
 * holds another step's values, so reading it throws instead.
 */
export class TensorReleasedError extends Error {
  constructor(readonly tensor: Tensor) {
    super(`${tensor.name ?? tensor.toString()} was released when its step ended (its memory was reused by a later step); read it inside the step, or return it from the step's function to keep it`);
    this.name = 'TensorReleasedError';
  }
}

/**
 * The values of `t` for a computation that finishes before it returns and keeps no reference to the array
 * (kernels, reductions to numbers, copies). Unlike `t.data` it leaves the array recyclable (engine/recycling.ts).
 */
export function readTransient(t: Tensor): TypedArray {
  return t.hostValues();
}

/**
 * A dense, row-major tensor. Data is never mutated in place by ops, so gradients and saved
 * forward values can be shared between tensors safely; only optimisers write parameter data.
 */
export class Tensor {
  readonly id = nextId++;
  readonly shape: readonly number[];
  readonly dtype: DType;
  readonly size: number;
  /** Host values; undefined while the tensor lives only on the device, or until `pending` computes them. */
  private host: TypedArray | undefined;
  /** Computes the host values on first read (a transpose nobody may read: see Tensor.transposed). */
  private pending: (() => TypedArray) | undefined;
  /**
   * Set when this 2-D tensor's values are exactly the transpose of this (immutable) one: matmul reads it with
   * its transposed flag instead of materialising the copy (Linear weights exported as MatMul(x, Transpose(W))).
   */
  transposeOf: Tensor | undefined;
  /** Device copy: primary for device-computed tensors, a cached mirror of host values otherwise. */
  private device: DeviceStorage | undefined;
  /** Which device backend owns `device` (mirrors are cached per backend). */
  private deviceOwner: object | undefined;
  requiresGrad: boolean;
  grad: Tensor | null = null;
  gradFn: GradFn | null = null;
  /** Optional label (parameter name, module path) used in error messages and reports. */
  name: string | undefined;
  readonly hooks: GradHook[] = [];
  retainsGrad = false;
  /** Set when a recycling scope reused this tensor's array (see TensorReleasedError). */
  private released = false;

  constructor(data: TypedArray | DeviceInit | LazyInit, shape: Shape, options: { requiresGrad?: boolean; name?: string } = {}) {
    assertValidShape(shape);
    const length = data instanceof DeviceInit ? data.storage.length : data.length;
    if (sizeOf(shape) !== length) {
      throw new RangeError(`tensor data has ${length} elements but shape ${formatShape(shape)} needs ${sizeOf(shape)}`);
    }
    this.shape = Object.freeze([...shape]);
    if (data instanceof DeviceInit) {
      this.device = data.storage;
      this.deviceOwner = data.owner;
      this.dtype = data.dtype;
    } else if (data instanceof LazyInit) {
      this.pending = data.compute;
      this.transposeOf = data.transposeOf;
      this.dtype = data.dtype;
    } else {
      this.host = data;
      this.dtype = dtypeOf(data);
      noteHolder(this, data);
      // Buffers not made by allocate() (kernel outputs copied out of WebAssembly memory) count here.
      if (metering()) noteBuffer(data.buffer);
    }
    this.size = length;
    this.name = options.name;
    this.requiresGrad = false;
    if (options.requiresGrad) this.setRequiresGrad(true);
  }

  /** A tensor whose values live only on a device backend (`owner`). */
  static onDevice(storage: DeviceStorage, owner: object & { readonly name: string }, shape: Shape, dtype: DType): Tensor {
    return new Tensor(new DeviceInit(storage, owner, dtype), shape);
  }

  /**
   * The transpose of 2-D `source`, computed by `compute` only when its values are read: a matmul consuming it
   * reads `source` transposed instead (see `transposeOf`). `source` must be a snapshot whose values never change
   * (a view of the host array at this moment), so a later optimiser step cannot change what this tensor holds.
   */
  static transposed(source: Tensor, compute: () => TypedArray): Tensor {
    if (source.rank !== 2) throw new Error('internal: Tensor.transposed needs a 2-D source');
    return new Tensor(new LazyInit(source.size, source.dtype, compute, source), [source.shape[1], source.shape[0]]);
  }

  /**
   * Host values. Throws TensorOnDeviceError while the tensor lives only on the device, TensorReleasedError after
   * a recycling scope reused its array. The array is never recycled once read here (the caller may keep it).
   */
  get data(): TypedArray {
    const values = this.hostValues();
    if (recyclingTracks()) keepArray(values);
    return values;
  }

  /** Host values without keeping them (readTransient). */
  hostValues(): TypedArray {
    if (this.host) return this.host;
    if (this.pending) {
      const values = this.pending();
      if (values.length !== this.size || dtypeOf(values) !== this.dtype) throw new Error(`internal: lazy values of ${this.dtype}[${this.size}] came back as ${dtypeOf(values)}[${values.length}]`);
      this.host = values;
      this.pending = undefined;
      noteHolder(this, values);
      if (metering()) noteBuffer(values.buffer);
      return values;
    }
    if (this.released) throw new TensorReleasedError(this);
    throw new TensorOnDeviceError(this);
  }

  /** Called by a recycling scope's exit: forgets the values when this tensor still holds `data` (now reused). */
  revokeIfHolding(data: TypedArray): void {
    if (this.host !== data) return;
    this.host = undefined;
    this.released = true;
  }

  /** In-place replacement of the values (optimisers, batch-norm buffers): drops any device copy. */
  set data(values: TypedArray) {
    if (values.length !== this.size || dtypeOf(values) !== this.dtype) throw new RangeError(`data of ${this.dtype}[${this.size}] cannot be replaced by ${dtypeOf(values)}[${values.length}]`);
    if (recyclingTracks()) keepArray(values);
    this.host = values;
    this.released = false;
    if (parameterTensors.has(this)) parameterArrays.add(values);
    this.pending = undefined;
    this.transposeOf = undefined;
    this.device = undefined;
    this.deviceOwner = undefined;
  }

  /**
   * In-place replacement of the values by `src`'s storage (host or device): the device-side twin of
   * the `data` setter, for buffers updated during a run (batch-norm running statistics).
   */
  assign(src: Tensor): void {
    if (src.size !== this.size || src.dtype !== this.dtype) throw new RangeError(`cannot assign ${src.dtype}[${src.size}] to ${this.dtype}[${this.size}]`);
    this.host = src.hasHostData ? src.data : undefined;
    this.released = false;
    this.pending = undefined;
    this.transposeOf = undefined;
    this.device = src.device;
    this.deviceOwner = src.deviceOwner;
  }

  /** True when the values are not on the host (read them with `await t.read()`). */
  get isOnDevice(): boolean {
    return this.host === undefined && this.pending === undefined && !this.released;
  }

  /** True after a recycling scope reused this tensor's array (reading it throws TensorReleasedError). */
  get isReleased(): boolean {
    return this.released;
  }

  get hasHostData(): boolean {
    return this.host !== undefined || this.pending !== undefined;
  }

  /** Name of the device backend holding this tensor, if any. */
  get deviceName(): string | undefined {
    return (this.deviceOwner as { name?: string } | undefined)?.name;
  }

  get storageReleased(): boolean {
    return this.device?.released ?? false;
  }

  /** The device copy for `owner`, or undefined (not uploaded, another device, or released). */
  deviceCopy(owner: object): DeviceStorage | undefined {
    return this.deviceOwner === owner && this.device && !this.device.released ? this.device : undefined;
  }

  /** Caches a device mirror of host values (the tensor keeps its host copy). */
  setDeviceCopy(owner: object, storage: DeviceStorage): void {
    if (!this.hasHostData) throw new Error('internal: setDeviceCopy on a device-only tensor');
    this.device = storage;
    this.deviceOwner = owner;
  }

  /** Host values, downloading them once if needed (tensors are immutable, so the copy stays valid). */
  async read(): Promise<TypedArray> {
    if (this.hasHostData || this.released) return this.data;
    if (!this.device || this.device.released) throw new TensorOnDeviceError(this, 'read');
    this.host = await this.device.read();
    return this.host;
  }

  /** item() for tensors that may live on the device. */
  async itemAsync(): Promise<number> {
    if (this.size !== 1) throw new RangeError(`item() needs a one-element tensor, got shape ${formatShape(this.shape)}`);
    return (await this.read())[0];
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
    return this.hostValues()[0];
  }

  toArray(): number[] {
    return Array.from(this.hostValues());
  }

  /** A tensor sharing this data but cut from the graph. */
  detach(): Tensor {
    return this.view(this.shape, this.name);
  }

  /** A tensor sharing this tensor's storage (host or device) with another shape of the same size. */
  view(shape: Shape, name?: string): Tensor {
    // The view shares the array; it is registered as one more holder of a recyclable array (noteHolder).
    if (this.hasHostData || this.released) return new Tensor(this.hostValues(), shape, { name });
    if (!this.device || this.device.released) throw new TensorOnDeviceError(this, 'view');
    const t = Tensor.onDevice(this.device, this.deviceOwner as { name: string }, shape, this.dtype);
    t.name = name;
    return t;
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
    // Inside a recycling scope the previous step's gradient array may be reused (engine/recycling.ts releaseGrad).
    if (this.grad) releaseGrad(this, this.grad);
    this.grad = null;
  }

  toString(): string {
    return `Tensor(${formatShape(this.shape)}, ${this.dtype}${this.requiresGrad ? ', requiresGrad' : ''}${this.gradFn ? `, gradFn=${this.gradFn.op}` : ''})`;
  }
}

/** Reads every device-only tensor of `ts` back to the host (concurrently); host tensors are skipped. */
export async function readTensors(ts: Iterable<Tensor | null | undefined>): Promise<void> {
  const pending = [...new Set(ts)].filter((t): t is Tensor => t instanceof Tensor && t.isOnDevice);
  await Promise.all(pending.map((t) => t.read()));
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
