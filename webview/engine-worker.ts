/** The engine worker: loads and runs models off the UI thread so the panel stays responsive. */
import { Backend } from '../engine/backend/backend';
import { setBackend } from '../engine/backend/registry';
import { isDeviceBackend } from '../engine/backend/device';
import { BackendKind, loadWasmBackend, selectBackend, wasmSimdSupported } from '../engine/backend/wasm/index';
import { referenceBackend } from '../engine/backend/reference';
import { createWebGpuBackend } from '../engine/backend/webgpu/backend';
import { inspectOnnx } from '../engine/inspect/onnxInspect';
import type { BackendChoice, BackendInfo, PageToWorker, RunRequest, WorkerToPage } from '../extension/protocol';
import { describeWebGpuAdapter } from './probe';
import { describeError, runWithFallback } from './runWithFallback';

const post = (m: WorkerToPage) => (self as unknown as Worker).postMessage(m);

const ORDER: Record<BackendChoice, BackendKind[]> = {
  auto: ['webgpu', 'wasm', 'typescript'],
  webgpu: ['webgpu', 'wasm', 'typescript'],
  wasm: ['wasm', 'typescript'],
  typescript: ['typescript'],
};

/** What the worker runs on now, and the host backend to rerun on when a WebGPU run fails. */
let current: { info: BackendInfo; fallback: Backend | null } | null = null;

async function hostBackend(wasm: ArrayBuffer | null): Promise<Backend> {
  if (!wasm) return referenceBackend;
  try {
    return await loadWasmBackend(wasm.slice(0));
  } catch {
    return referenceBackend;
  }
}

/** Selects and installs the engine backend: WebGPU, then WebAssembly SIMD, then TypeScript, saying why. */
async function chooseBackend(choice: BackendChoice, wasm: ArrayBuffer | null, wasmError?: string): Promise<BackendInfo> {
  const webgpuAdapter = await describeWebGpuAdapter();
  // Host kernels next to WebGPU (float64 runs, constant folding) and the backend a failed WebGPU run reruns on.
  const host = ORDER[choice].includes('webgpu') && webgpuAdapter ? await hostBackend(wasm) : null;
  const selection = await selectBackend({
    order: ORDER[choice],
    // 'auto' skips a fallback (software) adapter: SwiftShader is ~10x slower than WebAssembly SIMD here.
    // Choosing 'webgpu' forces it (CI, demos).
    webgpu: webgpuAdapter ? () => createWebGpuBackend({ host: host ?? referenceBackend, allowFallbackAdapter: choice === 'webgpu' }) : async () => null,
    wasm: wasm ? wasm.slice(0) : (() => {
      throw new Error(wasmError ?? 'the kernel file was not provided');
    }),
  });
  setBackend(selection.backend);
  // (A device backend's host may be the relaxed-SIMD wasm build; that does not describe WebGPU.)
  const relaxed = !isDeviceBackend(selection.backend) && (selection.backend as { relaxedSimd?: boolean }).relaxedSimd;
  const info: BackendInfo = { name: selection.name + (relaxed ? ' (relaxed SIMD)' : ''), reason: selection.reason, webgpuAdapter, wasmSimd: wasmSimdSupported() };
  current = { info, fallback: isDeviceBackend(selection.backend) ? selection.backend.host : null };
  return info;
}

async function inspect(request: RunRequest) {
  return inspectOnnx(request.bytes, request.modelName, {
    seed: request.settings.seed,
    batch: request.settings.batch,
    sequenceLength: request.settings.sequenceLength,
    loss: request.settings.loss,
    dtype: request.settings.dtype,
    watches: request.watches,
    attentionSample: Math.min(request.settings.attentionSample ?? 0, Math.max(0, request.settings.batch - 1)),
    onProgress: (message) => post({ type: 'progress', runId: request.runId, message }),
  });
}

async function run(request: RunRequest): Promise<void> {
  const report = await runWithFallback(() => inspect(request), current?.fallback ?? null, (reason, fallback) => {
    const relaxed = (fallback as { relaxedSimd?: boolean }).relaxedSimd;
    current = { info: { ...current!.info, name: fallback.name + (relaxed ? ' (relaxed SIMD)' : ''), reason }, fallback: null };
    post({ type: 'backend', info: current.info });
    post({ type: 'progress', runId: request.runId, message: reason });
  });
  post({ type: 'report', runId: request.runId, report });
}

async function handle(m: PageToWorker): Promise<void> {
  if (m.type === 'probe') {
    try {
      post({ type: 'backend', info: await chooseBackend(m.backend, m.wasm, m.wasmError) });
    } catch (err) {
      post({ type: 'error', message: `backend selection failed: ${err instanceof Error ? err.message : String(err)}` });
    }
    return;
  }
  try {
    await run(m);
  } catch (err) {
    post({ type: 'runError', runId: m.runId, message: describeError(err) });
  }
}

// Messages are handled one at a time: a run waits for the backend selection posted before it.
let queue = Promise.resolve();
self.onmessage = (event: MessageEvent<PageToWorker>) => {
  queue = queue.then(() => handle(event.data));
};
