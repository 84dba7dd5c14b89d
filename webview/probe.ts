/** WebGPU adapter probe for backend selection, usable in a page or a worker (WASM SIMD is probed by engine/backend/wasm). */

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
