/**
 * The WebGPU engine backend: a device backend (engine/backend/device.ts) around WebGpuDevice. Float32
 * ops run as WGSL kernels on device-resident tensors; float64 and constant folding use `host`.
 */
import { Backend } from '../backend';
import { DeviceBackend, deviceBackend } from '../device';
import { referenceBackend } from '../reference';
import { WebGpuDevice, WebGpuDeviceOptions } from './device';
import type { GpuAdapterInfoLike } from './gpu';

export interface WebGpuBackend extends DeviceBackend {
  readonly adapter: GpuAdapterInfoLike;
  readonly gpuDevice: WebGpuDevice;
}

export interface WebGpuBackendOptions extends WebGpuDeviceOptions {
  /** Host kernels for float64 and constant folding (default: the TypeScript reference). */
  host?: Backend;
  /**
   * Accept a fallback (software, e.g. SwiftShader) adapter. Default false: it is ~10x slower than
   * WebAssembly SIMD, so automatic selection should skip it; forcing WebGPU sets this.
   */
  allowFallbackAdapter?: boolean;
}

/** Thrown when only a fallback (software) adapter exists and it was not allowed. */
export class FallbackAdapterError extends Error {
  constructor(readonly adapter: GpuAdapterInfoLike) {
    super(`only a fallback (software) WebGPU adapter is available (${[adapter.vendor, adapter.architecture].filter(Boolean).join(' ') || 'unknown'}), slower than WebAssembly SIMD`);
    this.name = 'FallbackAdapterError';
  }
}

export async function createWebGpuBackend(options: WebGpuBackendOptions = {}): Promise<WebGpuBackend> {
  const device = await WebGpuDevice.create(options);
  if (device.adapterInfo.isFallbackAdapter && !options.allowFallbackAdapter) {
    device.destroy();
    throw new FallbackAdapterError(device.adapterInfo);
  }
  return deviceBackend('webgpu', device, options.host ?? referenceBackend, { adapter: device.adapterInfo, gpuDevice: device });
}
