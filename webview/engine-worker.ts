/** The engine worker: runs the autograd engine off the UI thread so the panel stays responsive. */
import { getBackend } from '../engine';
import { BackendInfo, PageToWorker, WorkerToPage } from '../extension/protocol';
import { describeWebGpuAdapter, hasWasmSimd } from './probe';

const post = (m: WorkerToPage) => (self as unknown as Worker).postMessage(m);

async function probe(): Promise<BackendInfo> {
  const webgpuAdapter = await describeWebGpuAdapter();
  const wasmSimd = hasWasmSimd();
  const backend = getBackend();
  // Only the TypeScript reference kernels exist so far; the probes say what faster backends could use.
  return {
    name: backend.name,
    reason: 'the WebGPU and WebAssembly kernels are not available in this build yet',
    webgpuAdapter,
    wasmSimd,
  };
}

self.onmessage = async (event: MessageEvent<PageToWorker>) => {
  try {
    if (event.data.type === 'probe') post({ type: 'backend', info: await probe() });
  } catch (err) {
    post({ type: 'error', message: err instanceof Error ? err.message : String(err) });
  }
};
