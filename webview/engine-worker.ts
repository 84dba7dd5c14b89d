/** The engine worker: loads and runs models off the UI thread so the panel stays responsive. */
import { setBackend } from '../engine/backend/registry';
import { BackendKind, selectBackend, wasmSimdSupported } from '../engine/backend/wasm/index';
import { inspectOnnx } from '../engine/inspect/onnxInspect';
import { OnnxImportError } from '../engine/onnx/errors';
import type { BackendChoice, BackendInfo, PageToWorker, RunRequest, WorkerToPage } from '../extension/protocol';
import { describeWebGpuAdapter } from './probe';

const post = (m: WorkerToPage) => (self as unknown as Worker).postMessage(m);

const ORDER: Record<BackendChoice, BackendKind[]> = {
  auto: ['webgpu', 'wasm', 'typescript'],
  webgpu: ['webgpu', 'wasm', 'typescript'],
  wasm: ['wasm', 'typescript'],
  typescript: ['typescript'],
};

/** Selects and installs the engine backend: WebGPU, then WebAssembly SIMD, then TypeScript, saying why. */
async function chooseBackend(choice: BackendChoice, wasm: ArrayBuffer | null, wasmError?: string): Promise<BackendInfo> {
  const webgpuAdapter = await describeWebGpuAdapter();
  const selection = await selectBackend({
    order: ORDER[choice],
    // WGSL kernels are not part of this build yet: with an adapter present, say so in the reason.
    webgpu: webgpuAdapter ? async () => { throw new Error(`an adapter is present (${webgpuAdapter}) but the WebGPU kernels are not in this version`); } : undefined,
    wasm: wasm ?? (() => {
      throw new Error(wasmError ?? 'the kernel file was not provided');
    }),
  });
  setBackend(selection.backend);
  const relaxed = (selection.backend as { relaxedSimd?: boolean }).relaxedSimd;
  return { name: selection.name + (relaxed ? ' (relaxed SIMD)' : ''), reason: selection.reason, webgpuAdapter, wasmSimd: wasmSimdSupported() };
}

async function run(request: RunRequest): Promise<void> {
  const report = await inspectOnnx(request.bytes, request.modelName, {
    seed: request.settings.seed,
    batch: request.settings.batch,
    sequenceLength: request.settings.sequenceLength,
    loss: request.settings.loss,
    dtype: request.settings.dtype,
    watches: request.watches,
    attentionSample: Math.min(request.settings.attentionSample ?? 0, Math.max(0, request.settings.batch - 1)),
    onProgress: (message) => post({ type: 'progress', runId: request.runId, message }),
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
    const message = err instanceof OnnxImportError ? err.message : err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    post({ type: 'runError', runId: m.runId, message });
  }
}

// Messages are handled one at a time: a run waits for the backend selection posted before it.
let queue = Promise.resolve();
self.onmessage = (event: MessageEvent<PageToWorker>) => {
  queue = queue.then(() => handle(event.data));
};
