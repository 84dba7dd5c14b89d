/**
 * WebGPU backend groundwork: device-resident float32 tensors and WGSL kernels for the engine's
 * kernel set. See ./DESIGN.md for how this integrates with the synchronous engine.
 *
 * No Node or DOM type imports: runs in a page, a VS Code webview and a web worker (anywhere
 * `navigator.gpu` exists), or in Node with a GPU object passed in (dawn.node).
 */
export { WebGpuDevice, GpuTensorBuffer, WebGpuUnavailableError, ParamBlock, storageBytes } from './device';
export type { GpuDType, WebGpuDeviceOptions, WebGpuStats } from './device';
export { defaultGpu } from './gpu';
export type { GpuLike, GpuDeviceLike, GpuAdapterLike, GpuAdapterInfoLike } from './gpu';

import { WebGpuDevice, WebGpuUnavailableError } from './device';
import { GpuLike, GpuAdapterInfoLike, defaultGpu } from './gpu';

export interface WebGpuProbe {
  available: boolean;
  /** Why not, or which adapter. */
  reason: string;
  adapter?: GpuAdapterInfoLike;
}

/** Whether a WebGPU adapter exists here, without keeping a device. */
export async function probeWebGpu(gpu: GpuLike | undefined = defaultGpu()): Promise<WebGpuProbe> {
  try {
    const device = await WebGpuDevice.create({ gpu });
    const adapter = device.adapterInfo;
    device.destroy();
    return { available: true, reason: `adapter ${[adapter.vendor, adapter.architecture].filter(Boolean).join(' ')}${adapter.isFallbackAdapter ? ' (fallback/software)' : ''}`, adapter };
  } catch (e) {
    return { available: false, reason: e instanceof WebGpuUnavailableError || e instanceof Error ? e.message : String(e) };
  }
}

export { createWebGpuBackend, FallbackAdapterError } from './backend';
export type { WebGpuBackend, WebGpuBackendOptions } from './backend';
