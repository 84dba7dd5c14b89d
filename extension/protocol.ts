/**
 * The one typed message protocol between the extension host and the webview panel.
 * Both sides import these types; nothing else crosses the boundary.
 */

/** Which engine backend runs in the webview, and why that one. */
export interface BackendInfo {
  /** 'webgpu' | 'wasm-simd' | 'typescript' */
  name: string;
  /** Human-readable reason for the choice, e.g. why faster backends were skipped. */
  reason: string;
  /** WebGPU adapter description when one was found, else null. */
  webgpuAdapter: string | null;
  /** Whether this browser validates WebAssembly SIMD modules. */
  wasmSimd: boolean;
}

export type HostToWebview = { type: 'hello'; version: string };

export type WebviewToHost =
  | { type: 'ready' }
  | { type: 'backend'; info: BackendInfo }
  | { type: 'error'; message: string };

/** Messages between the webview page and its engine worker. */
export type PageToWorker = { type: 'probe' };
export type WorkerToPage = { type: 'backend'; info: BackendInfo } | { type: 'error'; message: string };
