/** Feature probes for backend selection, usable in a page or a worker. */

/** A minimal module using a v128 instruction: validates only where WebAssembly SIMD is supported. */
const SIMD_PROBE = new Uint8Array([0, 97, 115, 109, 1, 0, 0, 0, 1, 5, 1, 96, 0, 1, 123, 3, 2, 1, 0, 10, 10, 1, 8, 0, 65, 0, 253, 15, 253, 98, 11]);

export function hasWasmSimd(): boolean {
  try {
    return typeof WebAssembly === 'object' && WebAssembly.validate(SIMD_PROBE);
  } catch {
    return false;
  }
}

/** Describes the WebGPU adapter, or null with no adapter (e.g. Chromium without --enable-unsafe-webgpu on Linux). */
export async function describeWebGpuAdapter(): Promise<string | null> {
  const gpu = (globalThis.navigator as Navigator & { gpu?: { requestAdapter(): Promise<any> } } | undefined)?.gpu;
  if (!gpu) return null;
  try {
    const adapter = await gpu.requestAdapter();
    if (!adapter) return null;
    const info = adapter.info ?? {};
    const parts = [info.vendor, info.architecture, info.device, info.description].filter((s: unknown) => typeof s === 'string' && s.length > 0);
    return parts.length ? parts.join(' ') : 'unknown adapter';
  } catch {
    return null;
  }
}
