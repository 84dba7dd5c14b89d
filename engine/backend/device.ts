/**
 * Device backends (WebGPU): kernels over device-resident float32 buffers. A device backend is also a
 * host `Backend` (its typed-array kernels delegate to a host backend) so float64 and constant-folding
 * work keeps running while it is active; engine/backend/dispatch.ts decides which side runs an op.
 */
import { Backend, BinaryKernel, Conv2dGeometry, MatmulPlan, ReduceKernel, UnaryKernel } from './backend';
import { Shape } from '../shape';
import type { DeviceStorage } from '../tensor';

/** A device buffer (float32 unless stated). */
export type DeviceBuffer = DeviceStorage;

/**
 * The device kernel set (WebGpuDevice implements it): the Backend kernels on device buffers, float32
 * only, returning new buffers synchronously (work is encoded, not awaited). Method syntax on purpose:
 * implementations take their own buffer type.
 */
export interface DeviceKernels {
  readonly name: string;
  upload(data: Float32Array): DeviceBuffer;
  unary(op: UnaryKernel, x: DeviceBuffer, param?: number): DeviceBuffer;
  binary(op: BinaryKernel, a: DeviceBuffer, aShape: Shape, b: DeviceBuffer, bShape: Shape, outShape: Shape, param?: number): DeviceBuffer;
  where(cond: Uint8Array, condShape: Shape, a: DeviceBuffer, aShape: Shape, b: DeviceBuffer, bShape: Shape, outShape: Shape): DeviceBuffer;
  reduce(op: ReduceKernel, x: DeviceBuffer, shape: Shape, axes: readonly number[]): DeviceBuffer;
  matmul(a: DeviceBuffer, b: DeviceBuffer, plan: MatmulPlan): DeviceBuffer;
  strided(x: DeviceBuffer, outShape: Shape, strides: readonly number[], offset: number): DeviceBuffer;
  stridedScatterAdd(g: DeviceBuffer, gShape: Shape, strides: readonly number[], offset: number, size: number): DeviceBuffer;
  concat(parts: readonly DeviceBuffer[], outer: number, sizes: readonly number[]): DeviceBuffer;
  softmax(x: DeviceBuffer, outer: number, n: number, inner: number, log: boolean): DeviceBuffer;
  softmaxBackward(y: DeviceBuffer, g: DeviceBuffer, outer: number, n: number, inner: number, log: boolean): DeviceBuffer;
  layerNorm(x: DeviceBuffer, weight: DeviceBuffer | null, bias: DeviceBuffer | null, rows: number, n: number, eps: number, rms: boolean): { y: DeviceBuffer; mean: DeviceBuffer; rstd: DeviceBuffer };
  layerNormBackward(x: DeviceBuffer, weight: DeviceBuffer | null, g: DeviceBuffer, mean: DeviceBuffer, rstd: DeviceBuffer, rows: number, n: number, rms: boolean): { gx: DeviceBuffer; gw: DeviceBuffer; gb: DeviceBuffer };
  im2col(x: DeviceBuffer, geo: Conv2dGeometry): DeviceBuffer;
  col2im(cols: DeviceBuffer, geo: Conv2dGeometry): DeviceBuffer;
  gather(x: DeviceBuffer, outer: number, axisLen: number, inner: number, indices: Int32Array): DeviceBuffer;
  scatterAdd(g: DeviceBuffer, outer: number, axisLen: number, inner: number, indices: Int32Array): DeviceBuffer;
  /** argmax is an int32 device buffer, consumed by maxPool2dBackward. */
  maxPool2d(x: DeviceBuffer, geo: Conv2dGeometry): { y: DeviceBuffer; argmax: DeviceBuffer };
  maxPool2dBackward(g: DeviceBuffer, argmax: DeviceBuffer, geo: Conv2dGeometry): DeviceBuffer;
  avgPool2d(x: DeviceBuffer, geo: Conv2dGeometry, countIncludePad: boolean): DeviceBuffer;
  avgPool2dBackward(g: DeviceBuffer, geo: Conv2dGeometry, countIncludePad: boolean): DeviceBuffer;
  /** Submits pending work and resolves when the device has finished it. */
  sync(): Promise<void>;
  /** Runs `fn` and throws if the device reported an error (validation, out of memory, lost) meanwhile. */
  guard<T>(fn: () => Promise<T>): Promise<T>;
}

export interface DeviceBackend extends Backend {
  readonly device: DeviceKernels;
  /** The host backend its typed-array kernels delegate to. */
  readonly host: Backend;
}

export function isDeviceBackend(b: Backend): b is DeviceBackend {
  return (b as Partial<DeviceBackend>).device !== undefined;
}

/** A device backend named `name` whose host kernels are `host`'s. */
export function deviceBackend<E extends object = object>(name: string, device: DeviceKernels, host: Backend, extra?: E): DeviceBackend & E {
  const own: Record<string | symbol, unknown> = { ...extra, name, device, host };
  // Host kernels are called on `host` itself (the wasm backend keeps state on its instance).
  return new Proxy(host, {
    get: (target, key) => {
      if (key in own) return own[key];
      const v = Reflect.get(target, key, target) as unknown;
      return typeof v === 'function' ? (v as (...a: unknown[]) => unknown).bind(target) : v;
    },
    has: (target, key) => key in own || key in target,
    set: () => false,
  }) as DeviceBackend & E;
}
