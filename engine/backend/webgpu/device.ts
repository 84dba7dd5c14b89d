/**
 * WebGpuDevice: device-resident float32 tensors and the engine's kernel set as WGSL compute passes.
 *
 * Every kernel method takes GpuTensorBuffers (plus shapes and host-side metadata) and returns a NEW
 * GpuTensorBuffer synchronously: it only encodes a dispatch into the device's open command encoder.
 * Work reaches the GPU on flush() (also called by download/sync and when the parameter arena fills).
 * Only reading results back is asynchronous: `await device.download(buf)`.
 *
 * Ordering rules that make buffer recycling safe without fences:
 *  - All dispatches of one device go through one encoder/queue, so they run in call order, and a
 *    buffer released by the caller can be handed out again at once as another kernel's output.
 *  - queue.writeBuffer runs before any command buffer submitted after it, so upload() flushes the
 *    pending encoder first (else a recycled buffer could be overwritten before earlier kernels read it).
 *  - Kernel parameters are staged in a CPU arena and written to one uniform buffer right before the
 *    submit that uses them; the previous submit has already been queued, so reusing that buffer is safe.
 *  - Small per-call metadata (matmul batch offsets, host indices) goes into buffers created
 *    mappedAtCreation (no queue ordering involved) and destroyed two flushes later.
 */
import { Conv2dGeometry, MatmulPlan, BinaryKernel, UnaryKernel, ReduceKernel } from '../backend';
import { Shape, broadcastStrides, formatShape, mergeDims, mergeReduce, sizeOf, stridesOf } from '../../shape';
import {
  BufferUsage, GpuAdapterInfoLike, GpuBufferBinding, GpuBufferLike, GpuCommandEncoderLike, GpuComputePassLike,
  GpuComputePipelineLike, GpuBindGroupLayoutLike, GpuDeviceLike, GpuLike, MAP_MODE_READ, defaultGpu,
} from './gpu';
import * as K from './wgsl';

export type GpuDType = 'float32' | 'int32' | 'bool';

/** Bytes a tensor of `length` elements occupies on the device (bools are packed bytes, padded to 4). */
export function storageBytes(length: number, dtype: GpuDType): number {
  const raw = dtype === 'bool' ? length : length * 4;
  return Math.max(4, Math.ceil(raw / 4) * 4);
}

/** A device-resident tensor buffer. Owned by whoever received it; release() returns it to the pool. */
export class GpuTensorBuffer {
  private releasedFlag = false;

  constructor(
    readonly device: WebGpuDevice,
    readonly buffer: GpuBufferLike,
    /** Number of elements. */
    readonly length: number,
    readonly dtype: GpuDType,
  ) {}

  get byteLength(): number {
    return storageBytes(this.length, this.dtype);
  }

  get released(): boolean {
    return this.releasedFlag;
  }

  /** Returns the buffer to the device's pool; the tensor must not be used afterwards. Idempotent. */
  release(): void {
    if (this.releasedFlag) return;
    this.releasedFlag = true;
    this.device.recycle(this.buffer);
  }

  /** Asynchronous readback (float32 tensors). */
  read(): Promise<Float32Array> {
    return this.device.download(this);
  }
}

export class WebGpuUnavailableError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'WebGpuUnavailableError';
  }
}

export interface WebGpuDeviceOptions {
  /** navigator.gpu or dawn.node's GPU object (default: this realm's navigator.gpu). */
  gpu?: GpuLike;
  powerPreference?: 'low-power' | 'high-performance';
  /** Bytes of released buffers kept for reuse (default 256 MiB); beyond that they are destroyed. */
  maxPooledBytes?: number;
  /** destroy() also destroys the GPUDevice (default: true when create() made it, false for a device passed in). */
  ownsDevice?: boolean;
}

export interface WebGpuStats {
  dispatches: number;
  submits: number;
  pipelines: number;
  /** Bytes of live + pooled storage buffers created by this device. */
  allocatedBytes: number;
  pooledBytes: number;
  uploads: number;
  downloads: number;
}

/** Uniform parameters of one dispatch; layout matches `Params` in ./wgsl.ts. */
export class ParamBlock {
  static readonly BYTES = 256;
  /** Bytes the shader's Params struct spans (i: 16 words, f: 4, d: 32). */
  static readonly USED_BYTES = 208;
  readonly words = new Int32Array(ParamBlock.BYTES / 4);
  private readonly floats = new Float32Array(this.words.buffer);

  int(k: number, v: number): this {
    this.words[k] = v;
    return this;
  }

  float(k: number, v: number): this {
    this.floats[16 + k] = v;
    return this;
  }

  /** slot 0: shape, 1..3: strides of operands 0..2 (8 entries each). */
  dims(slot: number, values: readonly number[]): this {
    for (let j = 0; j < values.length; j++) this.words[20 + slot * 8 + j] = values[j];
    return this;
  }

  geometry(total: number, g: Conv2dGeometry, flag = 0): this {
    const vals = [total, g.n, g.c, g.h, g.w, g.kh, g.kw, g.sh, g.sw, g.ph, g.pw, g.dh, g.dw, g.oh, g.ow, flag];
    vals.forEach((v, i) => (this.words[i] = v));
    return this;
  }
}

// ---------------------------------------------------------------- layout helpers

/** True when distinct coordinates of `shape` map to distinct offsets under `strides` (sufficient test). */
function injective(shape: readonly number[], strides: readonly number[]): boolean {
  const dims = shape.map((d, i) => ({ d, s: Math.abs(strides[i]) })).filter((x) => x.d > 1);
  if (dims.some((x) => x.s === 0)) return false;
  dims.sort((a, b) => a.s - b.s);
  let reach = 0;
  for (const { d, s } of dims) {
    if (s <= reach) return false;
    reach += s * (d - 1);
  }
  return true;
}

/** [min, max] offset a strided view reaches (relative to its base offset). */
function stridedRange(shape: readonly number[], strides: readonly number[]): [number, number] {
  let lo = 0;
  let hi = 0;
  shape.forEach((d, i) => {
    const span = strides[i] * (d - 1);
    if (span < 0) lo += span;
    else hi += span;
  });
  return [lo, hi];
}

function capacityFor(bytes: number): number {
  if (bytes <= 256) return 256;
  // Power of two with quarter steps: at most 25% slack, few distinct sizes to pool.
  const p = 2 ** Math.floor(Math.log2(bytes));
  const step = Math.max(256, p / 4);
  return Math.ceil(bytes / step) * step;
}

const PARAM_SLOTS = 512;

/**
 * Threads per row for the one-workgroup-per-row kernels (softmax, norms, tree reductions): 64
 * (two warps / one wavefront) unless a few very long rows need more parallelism each. Smaller
 * workgroups also cost far fewer barrier rounds on software adapters (SwiftShader: 5x faster).
 */
function rowWorkgroup(rows: number, n: number): number {
  return n >= 16384 && rows < 256 ? 256 : 64;
}

// ---------------------------------------------------------------- the device

export class WebGpuDevice {
  /** The wrapped GPUDevice (for error scopes, timing and interop). */
  readonly gpu: GpuDeviceLike;
  readonly adapterInfo: GpuAdapterInfoLike;
  private readonly maxGroups: number;
  private readonly maxPooledBytes: number;
  private readonly pipelines = new Map<string, { pipeline: GpuComputePipelineLike; layout: GpuBindGroupLayoutLike }>();
  private readonly pool = new Map<number, GpuBufferLike[]>();
  private readonly uniform: GpuBufferLike;
  private readonly arena = new ArrayBuffer(PARAM_SLOTS * ParamBlock.BYTES);
  private readonly arenaWords = new Int32Array(this.arena);
  private paramCount = 0;
  private encoder: GpuCommandEncoderLike | null = null;
  private pass: GpuComputePassLike | null = null;
  private auxThisBatch: GpuBufferLike[] = [];
  private auxPreviousBatch: GpuBufferLike[] = [];
  private readonly dummy: GpuTensorBuffer;
  private lostMessage: string | null = null;
  private destroyed = false;
  private readonly ownsDevice: boolean;
  private readonly counters: Omit<WebGpuStats, 'pipelines'> = { dispatches: 0, submits: 0, allocatedBytes: 0, pooledBytes: 0, uploads: 0, downloads: 0 };

  constructor(device: GpuDeviceLike, adapterInfo: GpuAdapterInfoLike = {}, options: WebGpuDeviceOptions = {}) {
    this.gpu = device;
    this.adapterInfo = adapterInfo;
    this.maxGroups = device.limits.maxComputeWorkgroupsPerDimension || 65535;
    this.maxPooledBytes = options.maxPooledBytes ?? 256 * 1024 * 1024;
    this.ownsDevice = options.ownsDevice ?? false;
    this.uniform = device.createBuffer({ size: PARAM_SLOTS * ParamBlock.BYTES, usage: BufferUsage.UNIFORM | BufferUsage.COPY_DST, label: 'webgpu-params' });
    this.dummy = new GpuTensorBuffer(this, this.acquire(4), 1, 'float32');
    void device.lost.then((info) => {
      this.lostMessage = info.message || info.reason || 'device lost';
    });
  }

  /**
   * Requests an adapter and device. Throws WebGpuUnavailableError with the reason when there is no
   * navigator.gpu or no adapter (e.g. Chromium without --enable-unsafe-webgpu on a GPU-less machine).
   */
  static async create(options: WebGpuDeviceOptions = {}): Promise<WebGpuDevice> {
    const gpu = options.gpu ?? defaultGpu();
    if (!gpu) throw new WebGpuUnavailableError('navigator.gpu is not available (WebGPU is unsupported or disabled in this context; it needs a secure context)');
    const adapter = await gpu.requestAdapter(options.powerPreference ? { powerPreference: options.powerPreference } : undefined);
    if (!adapter) {
      throw new WebGpuUnavailableError('navigator.gpu.requestAdapter() returned null: no WebGPU adapter (on a machine without a GPU, Chromium needs --enable-unsafe-webgpu for its SwiftShader adapter)');
    }
    const limits = adapter.limits;
    const device = await adapter.requestDevice({
      requiredLimits: {
        maxStorageBufferBindingSize: limits.maxStorageBufferBindingSize,
        maxBufferSize: limits.maxBufferSize,
      },
    });
    const info: GpuAdapterInfoLike = adapter.info ?? {};
    return new WebGpuDevice(device, {
      vendor: info.vendor,
      architecture: info.architecture,
      device: info.device,
      description: info.description,
      isFallbackAdapter: info.isFallbackAdapter ?? adapter.isFallbackAdapter,
    }, { ...options, ownsDevice: options.ownsDevice ?? true });
  }

  get name(): string {
    const a = this.adapterInfo;
    return `webgpu (${[a.vendor, a.architecture].filter(Boolean).join(' ') || 'unknown adapter'})`;
  }

  stats(): WebGpuStats {
    return { ...this.counters, pipelines: this.pipelines.size };
  }

  // ---------------------------------------------------------------- buffers

  private assertUsable(): void {
    if (this.destroyed) throw new Error('WebGpuDevice: used after destroy()');
    if (this.lostMessage) throw new Error(`WebGpuDevice: the GPU device was lost (${this.lostMessage})`);
  }

  private acquire(bytes: number): GpuBufferLike {
    const cap = capacityFor(bytes);
    const list = this.pool.get(cap);
    if (list && list.length > 0) {
      this.counters.pooledBytes -= cap;
      return list.pop()!;
    }
    this.counters.allocatedBytes += cap;
    return this.gpu.createBuffer({ size: cap, usage: BufferUsage.STORAGE | BufferUsage.COPY_SRC | BufferUsage.COPY_DST });
  }

  /** @internal Called by GpuTensorBuffer.release(). */
  recycle(buffer: GpuBufferLike): void {
    if (this.destroyed) return;
    const cap = buffer.size;
    if (this.counters.pooledBytes + cap > this.maxPooledBytes) {
      this.counters.allocatedBytes -= cap;
      // Destroy only after pending work that may still read it has been submitted.
      this.auxThisBatch.push(buffer);
      return;
    }
    let list = this.pool.get(cap);
    if (!list) this.pool.set(cap, (list = []));
    list.push(buffer);
    this.counters.pooledBytes += cap;
  }

  /** An uninitialised device tensor. */
  empty(length: number, dtype: GpuDType = 'float32'): GpuTensorBuffer {
    this.assertUsable();
    return new GpuTensorBuffer(this, this.acquire(storageBytes(length, dtype)), length, dtype);
  }

  /** A device tensor of zeros. */
  zeros(length: number, dtype: GpuDType = 'float32'): GpuTensorBuffer {
    const t = this.empty(length, dtype);
    this.clear(t);
    return t;
  }

  private clear(t: GpuTensorBuffer): void {
    this.endPass();
    this.commandEncoder().clearBuffer(t.buffer, 0, t.byteLength);
  }

  /** Copies host data to a new device tensor (float64 input is rounded to float32). */
  upload(data: Float32Array | Float64Array | readonly number[]): GpuTensorBuffer {
    const f32 = data instanceof Float32Array ? data : Float32Array.from(data as ArrayLike<number>);
    const t = this.empty(f32.length, 'float32');
    this.write(t, f32);
    return t;
  }

  uploadInt32(data: Int32Array): GpuTensorBuffer {
    const t = this.empty(data.length, 'int32');
    this.write(t, data);
    return t;
  }

  /** A bool mask (one byte per element, nonzero = true), stored packed. */
  uploadBool(data: Uint8Array): GpuTensorBuffer {
    const t = this.empty(data.length, 'bool');
    let bytes = data;
    if (data.length % 4 !== 0) {
      bytes = new Uint8Array(storageBytes(data.length, 'bool'));
      bytes.set(data);
    }
    this.write(t, bytes);
    return t;
  }

  private write(t: GpuTensorBuffer, data: Float32Array | Int32Array | Uint8Array): void {
    if (data.byteLength === 0) return;
    // writeBuffer is ordered before the next submit, not after encoded-but-unsubmitted kernels.
    this.flush();
    this.gpu.queue.writeBuffer(t.buffer, 0, data as ArrayBufferView, 0, data.length);
    this.counters.uploads++;
  }

  /** A read-only storage buffer holding `data`, destroyed automatically after use. */
  private aux(data: Int32Array): GpuBufferLike {
    const bytes = Math.max(4, data.byteLength);
    const buf = this.gpu.createBuffer({ size: Math.ceil(bytes / 4) * 4, usage: BufferUsage.STORAGE, mappedAtCreation: true });
    new Int32Array(buf.getMappedRange()).set(data);
    buf.unmap();
    this.auxThisBatch.push(buf);
    return buf;
  }

  /** Reads a float32 tensor back. Snapshots the buffer at call time (later kernels do not affect the result). */
  async download(t: GpuTensorBuffer): Promise<Float32Array> {
    if (t.dtype !== 'float32') throw new TypeError(`download: expected a float32 buffer, got ${t.dtype} (use read())`);
    return (await this.read(t)) as Float32Array;
  }

  /** Reads any device tensor back as Float32Array, Int32Array or Uint8Array (bool). */
  async read(t: GpuTensorBuffer): Promise<Float32Array | Int32Array | Uint8Array> {
    this.check(t, t.length, 'read');
    const empty = t.dtype === 'float32' ? new Float32Array(0) : t.dtype === 'int32' ? new Int32Array(0) : new Uint8Array(0);
    if (t.length === 0) return empty;
    const bytes = storageBytes(t.length, t.dtype);
    const staging = this.gpu.createBuffer({ size: bytes, usage: BufferUsage.MAP_READ | BufferUsage.COPY_DST });
    this.endPass();
    this.commandEncoder().copyBufferToBuffer(t.buffer, 0, staging, 0, bytes);
    this.flush();
    this.counters.downloads++;
    try {
      await staging.mapAsync(MAP_MODE_READ);
      const copy = staging.getMappedRange().slice(0);
      staging.unmap();
      if (t.dtype === 'float32') return new Float32Array(copy, 0, t.length);
      if (t.dtype === 'int32') return new Int32Array(copy, 0, t.length);
      return new Uint8Array(copy, 0, t.length);
    } finally {
      staging.destroy();
    }
  }

  // ---------------------------------------------------------------- encoding and submission

  private commandEncoder(): GpuCommandEncoderLike {
    this.assertUsable();
    if (!this.encoder) this.encoder = this.gpu.createCommandEncoder();
    return this.encoder;
  }

  private computePass(): GpuComputePassLike {
    if (!this.pass) this.pass = this.commandEncoder().beginComputePass();
    return this.pass;
  }

  private endPass(): void {
    if (this.pass) {
      this.pass.end();
      this.pass = null;
    }
  }

  /** Submits everything encoded so far. Synchronous; does not wait for the GPU. */
  flush(): void {
    if (!this.encoder) return;
    this.endPass();
    if (this.paramCount > 0) this.gpu.queue.writeBuffer(this.uniform, 0, this.arena, 0, this.paramCount * ParamBlock.BYTES);
    this.gpu.queue.submit([this.encoder.finish()]);
    this.encoder = null;
    this.paramCount = 0;
    this.counters.submits++;
    for (const b of this.auxPreviousBatch) b.destroy();
    this.auxPreviousBatch = this.auxThisBatch;
    this.auxThisBatch = [];
  }

  /**
   * Runs `fn` inside validation, out-of-memory and internal error scopes and throws if the GPU
   * reported any error for work issued meanwhile: such errors are otherwise only logged, and the
   * results (read back inside `fn`) would be silently wrong.
   */
  async guard<T>(fn: () => Promise<T>): Promise<T> {
    const filters = ['validation', 'out-of-memory', 'internal'] as const;
    for (const f of filters) this.gpu.pushErrorScope(f);
    let result: T | undefined;
    let failure: unknown;
    try {
      result = await fn();
    } catch (e) {
      failure = e;
    }
    this.flush();
    const errors: string[] = [];
    for (const f of [...filters].reverse()) {
      const e = await this.gpu.popErrorScope();
      if (e) errors.push(`${f}: ${e.message}`);
    }
    if (this.lostMessage) errors.push(`device lost: ${this.lostMessage}`);
    if (errors.length) throw new Error(`WebGPU reported errors during the run: ${errors.join('; ')}`);
    if (failure !== undefined) throw failure;
    return result as T;
  }

  /** Flushes and resolves when the GPU has finished all submitted work. */
  async sync(): Promise<void> {
    this.flush();
    await this.gpu.queue.onSubmittedWorkDone();
  }

  private pipeline(key: string, source: () => string): { pipeline: GpuComputePipelineLike; layout: GpuBindGroupLayoutLike } {
    let p = this.pipelines.get(key);
    if (!p) {
      const module = this.gpu.createShaderModule({ code: source(), label: key });
      const pipeline = this.gpu.createComputePipeline({ layout: 'auto', compute: { module, entryPoint: 'main' }, label: key });
      p = { pipeline, layout: pipeline.getBindGroupLayout(0) };
      this.pipelines.set(key, p);
    }
    return p;
  }

  /** Compiles the WGSL of `key` now (tests/diagnostics); returns compiler messages when the platform reports them. */
  async compileInfo(key: string, source: string): Promise<string[]> {
    const module = this.gpu.createShaderModule({ code: source, label: key });
    const info = module.getCompilationInfo ? await module.getCompilationInfo() : { messages: [] };
    return info.messages.map((m) => `${key}:${m.lineNum}:${m.linePos} ${m.type}: ${m.message}`);
  }

  private dispatch(key: string, source: () => string, params: ParamBlock, bindings: (GpuTensorBuffer | GpuBufferLike)[], groups: readonly [number, number, number]): void {
    this.assertUsable();
    const { pipeline, layout } = this.pipeline(key, source);
    const slot = this.paramCount++;
    this.arenaWords.set(params.words, slot * (ParamBlock.BYTES / 4));
    const entries = [
      { binding: 0, resource: { buffer: this.uniform, offset: slot * ParamBlock.BYTES, size: ParamBlock.USED_BYTES } as GpuBufferBinding },
      ...bindings.map((b, i) => ({
        binding: i + 1,
        resource: b instanceof GpuTensorBuffer ? { buffer: b.buffer, offset: 0, size: b.byteLength } : { buffer: b, offset: 0, size: b.size },
      })),
    ];
    const group = this.gpu.createBindGroup({ layout, entries });
    const pass = this.computePass();
    pass.setPipeline(pipeline);
    pass.setBindGroup(0, group);
    pass.dispatchWorkgroups(groups[0], groups[1], groups[2]);
    this.counters.dispatches++;
    if (this.paramCount === PARAM_SLOTS) this.flush();
  }

  /** Grid for `n` threads in 256-thread workgroups, folded into y beyond the per-dimension limit. */
  private linearGrid(n: number): [number, number, number] {
    return this.rowGrid(Math.ceil(n / K.WG));
  }

  /** Grid of `groups` workgroups (one per row), folded into y beyond the per-dimension limit. */
  private rowGrid(groups: number): [number, number, number] {
    const x = Math.max(1, Math.min(groups, this.maxGroups));
    const y = Math.ceil(groups / x);
    if (y > this.maxGroups) throw new RangeError(`webgpu: ${groups} workgroups exceed the dispatch limit`);
    return [x, y, 1];
  }

  private check(t: GpuTensorBuffer, length: number, what: string, dtype: GpuDType = t.dtype): void {
    if (!(t instanceof GpuTensorBuffer) || t.device !== this) throw new TypeError(`${what}: expected a GpuTensorBuffer of this device`);
    if (t.released) throw new Error(`${what}: buffer used after release()`);
    if (t.dtype !== dtype) throw new TypeError(`${what}: expected a ${dtype} buffer, got ${t.dtype}`);
    if (t.length !== length) throw new RangeError(`${what}: buffer holds ${t.length} elements, expected ${length}`);
  }

  private checkRank(rank: number, what: string): void {
    if (rank > K.MAX_RANK) throw new RangeError(`${what}: rank ${rank} after merging dims exceeds the WebGPU kernels' ${K.MAX_RANK}`);
  }

  /** Releases pooled buffers (and the GPUDevice when this object owns it). Buffers still held by callers become invalid. */
  destroy(): void {
    if (this.destroyed) return;
    this.flush();
    this.destroyed = true;
    for (const list of this.pool.values()) for (const b of list) b.destroy();
    this.pool.clear();
    for (const b of [...this.auxPreviousBatch, ...this.auxThisBatch]) b.destroy();
    this.uniform.destroy();
    this.dummy.buffer.destroy();
    if (this.ownsDevice) this.gpu.destroy();
  }

  // ---------------------------------------------------------------- elementwise

  unary(op: UnaryKernel, x: GpuTensorBuffer, param = 0): GpuTensorBuffer {
    this.check(x, x.length, `unary ${op}`, 'float32');
    const n = x.length;
    const out = this.empty(n);
    if (n === 0) return out;
    this.dispatch(`unary:${op}`, () => K.unaryShader(op), new ParamBlock().int(0, n).float(0, param), [x, out], this.linearGrid(n));
    return out;
  }

  binary(op: BinaryKernel, a: GpuTensorBuffer, aShape: Shape, b: GpuTensorBuffer, bShape: Shape, outShape: Shape, param = 0): GpuTensorBuffer {
    this.check(a, sizeOf(aShape), `binary ${op} (a ${formatShape(aShape)})`, 'float32');
    this.check(b, sizeOf(bShape), `binary ${op} (b ${formatShape(bShape)})`, 'float32');
    const n = sizeOf(outShape);
    const out = this.empty(n);
    if (n === 0) return out;
    const m = mergeDims(outShape, [broadcastStrides(aShape, outShape), broadcastStrides(bShape, outShape)]);
    this.checkRank(m.shape.length, `binary ${op}`);
    const params = new ParamBlock().int(0, n).int(1, m.shape.length).dims(0, m.shape).dims(1, m.strides[0]).dims(2, m.strides[1]).float(0, param);
    this.dispatch(`binary:${op}`, () => K.binaryShader(op), params, [a, b, out], this.linearGrid(n));
    return out;
  }

  /** cond ? a : b, all broadcast to outShape. `cond` is a bool device tensor or a host mask. */
  where(cond: GpuTensorBuffer | Uint8Array, condShape: Shape, a: GpuTensorBuffer, aShape: Shape, b: GpuTensorBuffer, bShape: Shape, outShape: Shape): GpuTensorBuffer {
    const c = cond instanceof Uint8Array ? this.uploadBool(cond) : cond;
    this.check(c, sizeOf(condShape), `where (cond ${formatShape(condShape)})`, 'bool');
    this.check(a, sizeOf(aShape), `where (a ${formatShape(aShape)})`, 'float32');
    this.check(b, sizeOf(bShape), `where (b ${formatShape(bShape)})`, 'float32');
    const n = sizeOf(outShape);
    const out = this.empty(n);
    if (n > 0) {
      const m = mergeDims(outShape, [broadcastStrides(condShape, outShape), broadcastStrides(aShape, outShape), broadcastStrides(bShape, outShape)]);
      this.checkRank(m.shape.length, 'where');
      const params = new ParamBlock().int(0, n).int(1, m.shape.length).dims(0, m.shape).dims(1, m.strides[0]).dims(2, m.strides[1]).dims(3, m.strides[2]);
      this.dispatch('where', K.whereShader, params, [c, a, b, out], this.linearGrid(n));
    }
    if (cond instanceof Uint8Array) c.release();
    return out;
  }

  // ---------------------------------------------------------------- reductions

  private reduceLayout(shape: Shape, axes: readonly number[]) {
    const { sizes, reduced } = mergeReduce(shape, axes);
    const strides = stridesOf(sizes);
    const kept = sizes.map((s, i) => ({ s, st: strides[i] })).filter((_, i) => !reduced[i]);
    const red = sizes.map((s, i) => ({ s, st: strides[i] })).filter((_, i) => reduced[i]);
    this.checkRank(Math.max(kept.length, red.length), 'reduce');
    const outSize = sizeOf(shape.map((d, i) => (axes.includes(i) ? 1 : d)));
    const count = red.reduce((n, r) => n * r.s, 1);
    const params = new ParamBlock()
      .int(0, outSize).int(1, kept.length).int(2, red.length).int(3, count)
      .dims(0, kept.map((k) => k.s)).dims(1, kept.map((k) => k.st))
      .dims(2, red.map((r) => r.s)).dims(3, red.map((r) => r.st));
    return { outSize, count, params };
  }

  /** Reduces `axes` (sorted, unique); the result has `shape` with those axes set to 1. */
  reduce(op: ReduceKernel, x: GpuTensorBuffer, shape: Shape, axes: readonly number[]): GpuTensorBuffer {
    this.check(x, sizeOf(shape), `reduce ${op} ${formatShape(shape)}`, 'float32');
    const { outSize, count, params } = this.reduceLayout(shape, axes);
    const out = this.empty(outSize);
    if (outSize === 0) return out;
    const tree = count >= 256 || (count > 16 && outSize < 1024);
    const wg = rowWorkgroup(outSize, count);
    if (tree) this.dispatch(`reduceTree:${op}:${wg}`, () => K.reduceTreeShader(op, wg), params, [x, out], this.rowGrid(outSize));
    else this.dispatch(`reduceSerial:${op}`, () => K.reduceSerialShader(op), params, [x, out], this.linearGrid(outSize));
    return out;
  }

  /** Flat input index of the max (min) of each reduced group, first on ties (int32). */
  argReduce(op: 'max' | 'min', x: GpuTensorBuffer, shape: Shape, axes: readonly number[]): GpuTensorBuffer {
    this.check(x, sizeOf(shape), `argReduce ${op} ${formatShape(shape)}`, 'float32');
    const { outSize, count, params } = this.reduceLayout(shape, axes);
    const out = this.empty(outSize, 'int32');
    if (outSize === 0) return out;
    const wg = rowWorkgroup(outSize, count);
    this.dispatch(`argReduce:${op}:${wg}`, () => K.argReduceShader(op, wg), params, [x, out], this.rowGrid(outSize));
    return out;
  }

  // ---------------------------------------------------------------- matmul

  matmul(a: GpuTensorBuffer, b: GpuTensorBuffer, plan: MatmulPlan): GpuTensorBuffer {
    const { batch, m, k, n, aOffsets, bOffsets, transA, transB } = plan;
    this.check(a, a.length, 'matmul (a)', 'float32');
    this.check(b, b.length, 'matmul (b)', 'float32');
    if (aOffsets.length !== batch || bOffsets.length !== batch) throw new RangeError(`matmul: plan has ${batch} products but ${aOffsets.length}/${bOffsets.length} offsets`);
    const offsets = new Int32Array(2 * batch);
    for (let p = 0; p < batch; p++) {
      if (aOffsets[p] < 0 || aOffsets[p] + m * k > a.length) throw new RangeError(`matmul: A offset ${aOffsets[p]} + ${m}x${k} exceeds its ${a.length} elements`);
      if (bOffsets[p] < 0 || bOffsets[p] + k * n > b.length) throw new RangeError(`matmul: B offset ${bOffsets[p]} + ${k}x${n} exceeds its ${b.length} elements`);
      offsets[2 * p] = aOffsets[p];
      offsets[2 * p + 1] = bOffsets[p];
    }
    const out = this.empty(batch * m * n);
    if (batch * m * n === 0) return out;
    const off = this.aux(offsets);
    const gx = Math.ceil(n / K.MM_TILE);
    const gy = Math.ceil(m / K.MM_TILE);
    if (gx > this.maxGroups || gy > this.maxGroups) throw new RangeError(`matmul: ${m}x${n} output exceeds the dispatch limit`);
    const key = `matmul:${transA ? 'T' : 'N'}${transB ? 'T' : 'N'}`;
    for (let base = 0; base < batch; base += this.maxGroups) {
      const z = Math.min(this.maxGroups, batch - base);
      this.dispatch(key, () => K.matmulShader(transA, transB), new ParamBlock().int(0, m).int(1, k).int(2, n).int(3, base), [a, b, off, out], [gx, gy, z]);
    }
    return out;
  }

  // ---------------------------------------------------------------- data movement

  /** Dense copy of the strided view (offset, strides) of `x`: permute, slice, expand. */
  strided(x: GpuTensorBuffer, outShape: Shape, strides: readonly number[], offset: number): GpuTensorBuffer {
    this.check(x, x.length, 'strided', 'float32');
    const n = sizeOf(outShape);
    const out = this.empty(n);
    if (n === 0) return out;
    const m = mergeDims(outShape, [strides]);
    this.checkRank(m.shape.length, 'strided');
    const [lo, hi] = stridedRange(m.shape, m.strides[0]);
    if (offset + lo < 0 || offset + hi >= x.length) throw new RangeError(`strided: view ${formatShape(outShape)} strides ${formatShape(strides)} offset ${offset} reads outside ${x.length} elements`);
    const params = new ParamBlock().int(0, n).int(1, m.shape.length).int(2, offset).dims(0, m.shape).dims(1, m.strides[0]);
    this.dispatch('strided', K.stridedShader, params, [x, out], this.linearGrid(n));
    return out;
  }

  /** Adds dense g (gShape) into zeros(size) at the strided positions: the VJP of strided. */
  stridedScatterAdd(g: GpuTensorBuffer, gShape: Shape, strides: readonly number[], offset: number, size: number): GpuTensorBuffer {
    this.check(g, sizeOf(gShape), `stridedScatterAdd (g ${formatShape(gShape)})`, 'float32');
    const out = this.zeros(size);
    const n = g.length;
    if (n === 0 || size === 0) return out;
    const m = mergeDims(gShape, [strides]);
    this.checkRank(m.shape.length, 'stridedScatterAdd');
    const [lo, hi] = stridedRange(m.shape, m.strides[0]);
    if (offset + lo < 0 || offset + hi >= size) throw new RangeError(`stridedScatterAdd: positions fall outside ${size} elements`);
    const params = new ParamBlock().int(0, n).int(1, m.shape.length).int(2, offset).dims(0, m.shape).dims(1, m.strides[0]);
    if (injective(m.shape, m.strides[0])) this.dispatch('stridedScatter', K.stridedScatterShader, params, [g, out], this.linearGrid(n));
    else this.dispatch('stridedScatterAtomic', K.stridedScatterAtomicShader, params, [g, out], this.linearGrid(n));
    return out;
  }

  /** Concatenates [outer, sizes[i]] blocks along the second axis. */
  concat(parts: readonly GpuTensorBuffer[], outer: number, sizes: readonly number[]): GpuTensorBuffer {
    if (parts.length !== sizes.length) throw new RangeError(`concat: ${parts.length} parts but ${sizes.length} sizes`);
    parts.forEach((p, i) => this.check(p, outer * sizes[i], `concat (part ${i})`, 'float32'));
    const total = sizes.reduce((s, v) => s + v, 0);
    const out = this.empty(outer * total);
    let at = 0;
    parts.forEach((p, i) => {
      const n = outer * sizes[i];
      if (n > 0) this.dispatch('concat', K.concatShader, new ParamBlock().int(0, n).int(1, sizes[i]).int(2, total).int(3, at), [p, out], this.linearGrid(n));
      at += sizes[i];
    });
    return out;
  }

  /** Gather along the middle axis of [outer, axisLen, inner]. Host indices are range-checked here. */
  gather(x: GpuTensorBuffer, outer: number, axisLen: number, inner: number, indices: Int32Array | GpuTensorBuffer): GpuTensorBuffer {
    this.check(x, outer * axisLen * inner, 'gather', 'float32');
    const k = indices.length;
    const out = this.empty(outer * k * inner);
    if (out.length === 0) return out;
    let idx: GpuTensorBuffer | GpuBufferLike;
    if (indices instanceof Int32Array) {
      for (let j = 0; j < k; j++) if (indices[j] < 0 || indices[j] >= axisLen) throw new RangeError(`gather: index ${indices[j]} out of range for axis of size ${axisLen}`);
      idx = this.aux(indices);
    } else {
      this.check(indices, k, 'gather (indices)', 'int32');
      idx = indices;
    }
    this.dispatch('gather', K.gatherShader, new ParamBlock().int(0, out.length).int(1, k).int(2, axisLen).int(3, inner), [x, idx, out], this.linearGrid(out.length));
    return out;
  }

  /**
   * VJP of gather: scatter-add [outer, k, inner] into [outer, axisLen, inner]. Host indices use a
   * deterministic gather over the inverse index map; device indices use atomic float adds.
   */
  scatterAdd(g: GpuTensorBuffer, outer: number, axisLen: number, inner: number, indices: Int32Array | GpuTensorBuffer): GpuTensorBuffer {
    const k = indices.length;
    this.check(g, outer * k * inner, 'scatterAdd', 'float32');
    const size = outer * axisLen * inner;
    if (indices instanceof Int32Array) {
      const out = this.empty(size);
      if (size === 0) return out;
      // CSR inverse map: start[a] .. start[a+1] index the positions j with indices[j] == a.
      const inv = new Int32Array(axisLen + 1 + k);
      for (let j = 0; j < k; j++) {
        const a = indices[j];
        if (a < 0 || a >= axisLen) throw new RangeError(`scatterAdd: index ${a} out of range for axis of size ${axisLen}`);
        inv[a + 1]++;
      }
      for (let a = 0; a < axisLen; a++) inv[a + 1] += inv[a];
      const fill = inv.slice(0, axisLen);
      for (let j = 0; j < k; j++) inv[axisLen + 1 + fill[indices[j]]++] = j;
      const buf = this.aux(inv);
      this.dispatch('scatterAddCsr', K.scatterAddCsrShader, new ParamBlock().int(0, size).int(1, k).int(2, axisLen).int(3, inner), [g, buf, out], this.linearGrid(size));
      return out;
    }
    this.check(indices, k, 'scatterAdd (indices)', 'int32');
    const out = this.zeros(size);
    const n = outer * k * inner;
    if (n > 0 && size > 0) this.dispatch('scatterAddAtomic', K.scatterAddAtomicShader, new ParamBlock().int(0, n).int(1, k).int(2, axisLen).int(3, inner), [g, indices, out], this.linearGrid(n));
    return out;
  }

  // ---------------------------------------------------------------- softmax and norms

  softmax(x: GpuTensorBuffer, outer: number, n: number, inner: number, log: boolean): GpuTensorBuffer {
    this.check(x, outer * n * inner, 'softmax', 'float32');
    const out = this.empty(x.length);
    const rows = outer * inner;
    if (x.length === 0) return out;
    const wg = rowWorkgroup(rows, n);
    this.dispatch(`softmax:${wg}`, () => K.softmaxShader(wg), new ParamBlock().int(0, rows).int(1, n).int(2, inner).int(3, log ? 1 : 0), [x, out], this.rowGrid(rows));
    return out;
  }

  softmaxBackward(y: GpuTensorBuffer, g: GpuTensorBuffer, outer: number, n: number, inner: number, log: boolean): GpuTensorBuffer {
    this.check(y, outer * n * inner, 'softmaxBackward (y)', 'float32');
    this.check(g, outer * n * inner, 'softmaxBackward (g)', 'float32');
    const out = this.empty(y.length);
    const rows = outer * inner;
    if (y.length === 0) return out;
    const wg = rowWorkgroup(rows, n);
    this.dispatch(`softmaxBackward:${wg}`, () => K.softmaxBackwardShader(wg), new ParamBlock().int(0, rows).int(1, n).int(2, inner).int(3, log ? 1 : 0), [y, g, out], this.rowGrid(rows));
    return out;
  }

  /** Layer norm (RMS norm when `rms`) of each row of [rows, n]; mean and 1/std per row stay on the device. */
  layerNorm(x: GpuTensorBuffer, weight: GpuTensorBuffer | null, bias: GpuTensorBuffer | null, rows: number, n: number, eps: number, rms: boolean): { y: GpuTensorBuffer; mean: GpuTensorBuffer; rstd: GpuTensorBuffer } {
    this.check(x, rows * n, 'layerNorm', 'float32');
    if (weight) this.check(weight, n, 'layerNorm (weight)', 'float32');
    if (bias) this.check(bias, n, 'layerNorm (bias)', 'float32');
    const y = this.empty(x.length);
    const mean = this.empty(rows);
    const rstd = this.empty(rows);
    if (rows > 0) {
      const wg = rowWorkgroup(rows, n);
      const params = new ParamBlock().int(0, rows).int(1, n).int(2, rms ? 1 : 0).int(3, weight ? 1 : 0).int(4, bias ? 1 : 0).float(0, eps);
      this.dispatch(`layerNorm:${wg}`, () => K.layerNormShader(wg), params, [x, weight ?? this.dummy, bias ?? this.dummy, y, mean, rstd], this.rowGrid(rows));
    }
    return { y, mean, rstd };
  }

  layerNormBackward(x: GpuTensorBuffer, weight: GpuTensorBuffer | null, g: GpuTensorBuffer, mean: GpuTensorBuffer, rstd: GpuTensorBuffer, rows: number, n: number, rms: boolean): { gx: GpuTensorBuffer; gw: GpuTensorBuffer; gb: GpuTensorBuffer } {
    this.check(x, rows * n, 'layerNormBackward (x)', 'float32');
    this.check(g, rows * n, 'layerNormBackward (g)', 'float32');
    this.check(mean, rows, 'layerNormBackward (mean)', 'float32');
    this.check(rstd, rows, 'layerNormBackward (rstd)', 'float32');
    if (weight) this.check(weight, n, 'layerNormBackward (weight)', 'float32');
    const gx = this.empty(x.length);
    if (rows === 0 || n === 0) return { gx, gw: this.zeros(n), gb: this.zeros(n) };
    const gw = this.empty(n);
    const gb = this.empty(n);
    const wg = rowWorkgroup(rows, n);
    this.dispatch(`layerNormBackward:${wg}`, () => K.layerNormBackwardShader(wg), new ParamBlock().int(0, rows).int(1, n).int(2, rms ? 1 : 0).int(3, weight ? 1 : 0), [x, weight ?? this.dummy, g, mean, rstd, gx], this.rowGrid(rows));
    this.dispatch('layerNormParamGrad', K.layerNormParamGradShader, new ParamBlock().int(0, rows).int(1, n), [x, g, mean, rstd, gw, gb], this.rowGrid(Math.ceil(n / 64)));
    return { gx, gw, gb };
  }

  // ---------------------------------------------------------------- convolution helpers and pooling

  /** [n, c, h, w] -> columns [n, c*kh*kw, oh*ow]. */
  im2col(x: GpuTensorBuffer, geo: Conv2dGeometry): GpuTensorBuffer {
    this.check(x, geo.n * geo.c * geo.h * geo.w, 'im2col', 'float32');
    const size = geo.n * geo.c * geo.kh * geo.kw * geo.oh * geo.ow;
    const out = this.empty(size);
    if (size > 0) this.dispatch('im2col', K.im2colShader, new ParamBlock().geometry(size, geo), [x, out], this.linearGrid(size));
    return out;
  }

  /** VJP of im2col: columns -> [n, c, h, w], summing overlaps. */
  col2im(cols: GpuTensorBuffer, geo: Conv2dGeometry): GpuTensorBuffer {
    this.check(cols, geo.n * geo.c * geo.kh * geo.kw * geo.oh * geo.ow, 'col2im', 'float32');
    const size = geo.n * geo.c * geo.h * geo.w;
    const out = this.empty(size);
    if (size > 0) this.dispatch('col2im', K.col2imShader, new ParamBlock().geometry(size, geo), [cols, out], this.linearGrid(size));
    return out;
  }

  /** Max pooling; argmax holds the flat input index of each window's max (int32). */
  maxPool2d(x: GpuTensorBuffer, geo: Conv2dGeometry): { y: GpuTensorBuffer; argmax: GpuTensorBuffer } {
    this.check(x, geo.n * geo.c * geo.h * geo.w, 'maxPool2d', 'float32');
    const size = geo.n * geo.c * geo.oh * geo.ow;
    const y = this.empty(size);
    const argmax = this.empty(size, 'int32');
    if (size > 0) this.dispatch('maxPool2d', K.maxPoolShader, new ParamBlock().geometry(size, geo), [x, y, argmax], this.linearGrid(size));
    return { y, argmax };
  }

  /**
   * VJP of max pooling from device-resident argmax (not in the Backend interface, where the op uses
   * scatterAdd with host indices): each input element sums the gradients of the windows that chose it.
   */
  maxPool2dBackward(g: GpuTensorBuffer, argmax: GpuTensorBuffer, geo: Conv2dGeometry): GpuTensorBuffer {
    const outSize = geo.n * geo.c * geo.oh * geo.ow;
    this.check(g, outSize, 'maxPool2dBackward (g)', 'float32');
    this.check(argmax, outSize, 'maxPool2dBackward (argmax)', 'int32');
    const size = geo.n * geo.c * geo.h * geo.w;
    const out = this.empty(size);
    if (size > 0) this.dispatch('maxPool2dBackward', K.maxPoolBackwardShader, new ParamBlock().geometry(size, geo), [g, argmax, out], this.linearGrid(size));
    return out;
  }

  avgPool2d(x: GpuTensorBuffer, geo: Conv2dGeometry, countIncludePad: boolean): GpuTensorBuffer {
    this.check(x, geo.n * geo.c * geo.h * geo.w, 'avgPool2d', 'float32');
    const size = geo.n * geo.c * geo.oh * geo.ow;
    const out = this.empty(size);
    if (size > 0) this.dispatch('avgPool2d', K.avgPoolShader, new ParamBlock().geometry(size, geo, countIncludePad ? 1 : 0), [x, out], this.linearGrid(size));
    return out;
  }

  avgPool2dBackward(g: GpuTensorBuffer, geo: Conv2dGeometry, countIncludePad: boolean): GpuTensorBuffer {
    this.check(g, geo.n * geo.c * geo.oh * geo.ow, 'avgPool2dBackward', 'float32');
    const size = geo.n * geo.c * geo.h * geo.w;
    const out = this.empty(size);
    if (size > 0) this.dispatch('avgPool2dBackward', K.avgPoolBackwardShader, new ParamBlock().geometry(size, geo, countIncludePad ? 1 : 0), [g, out], this.linearGrid(size));
    return out;
  }

  /** Every WGSL source this device can compile, by pipeline key (for compile checks). */
  static shaderSources(): Record<string, string> {
    const out: Record<string, string> = {};
    for (const op of Object.keys(K.UNARY_WGSL) as UnaryKernel[]) out[`unary:${op}`] = K.unaryShader(op);
    for (const op of Object.keys(K.BINARY_WGSL) as BinaryKernel[]) out[`binary:${op}`] = K.binaryShader(op);
    for (const wg of [64, 256]) {
      for (const op of ['sum', 'max', 'min'] as const) out[`reduceTree:${op}:${wg}`] = K.reduceTreeShader(op, wg);
      for (const op of ['max', 'min'] as const) out[`argReduce:${op}:${wg}`] = K.argReduceShader(op, wg);
    }
    for (const op of ['sum', 'max', 'min'] as const) out[`reduceSerial:${op}`] = K.reduceSerialShader(op);
    for (const ta of [false, true]) for (const tb of [false, true]) out[`matmul:${ta ? 'T' : 'N'}${tb ? 'T' : 'N'}`] = K.matmulShader(ta, tb);
    out.where = K.whereShader();
    out.strided = K.stridedShader();
    out.stridedScatter = K.stridedScatterShader();
    out.stridedScatterAtomic = K.stridedScatterAtomicShader();
    out.concat = K.concatShader();
    for (const wg of [64, 256]) {
      out[`softmax:${wg}`] = K.softmaxShader(wg);
      out[`softmaxBackward:${wg}`] = K.softmaxBackwardShader(wg);
      out[`layerNorm:${wg}`] = K.layerNormShader(wg);
      out[`layerNormBackward:${wg}`] = K.layerNormBackwardShader(wg);
    }
    out.layerNormParamGrad = K.layerNormParamGradShader();
    out.im2col = K.im2colShader();
    out.col2im = K.col2imShader();
    out.maxPool2d = K.maxPoolShader();
    out.maxPool2dBackward = K.maxPoolBackwardShader();
    out.avgPool2d = K.avgPoolShader();
    out.avgPool2dBackward = K.avgPoolBackwardShader();
    out.gather = K.gatherShader();
    out.scatterAddCsr = K.scatterAddCsrShader();
    out.scatterAddAtomic = K.scatterAddAtomicShader();
    return out;
  }
}
