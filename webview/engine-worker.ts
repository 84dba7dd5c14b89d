/** The engine worker: loads and runs models off the UI thread so the panel stays responsive. */
import { getBackend } from '../engine/backend/registry';
import { inspectOnnx } from '../engine/inspect/onnxInspect';
import { OnnxImportError } from '../engine/onnx/errors';
import type { BackendChoice, BackendInfo, PageToWorker, RunRequest, WorkerToPage } from '../extension/protocol';
import { describeWebGpuAdapter, hasWasmSimd } from './probe';

const post = (m: WorkerToPage) => (self as unknown as Worker).postMessage(m);

async function selectBackend(choice: BackendChoice): Promise<BackendInfo> {
  const webgpuAdapter = await describeWebGpuAdapter();
  const wasmSimd = hasWasmSimd();
  const backend = getBackend();
  const wanted = choice === 'auto' ? '' : ` (${choice} was requested)`;
  return {
    name: backend.name,
    reason: `only the TypeScript kernels are built into this version${wanted}`,
    webgpuAdapter,
    wasmSimd,
  };
}

function run(request: RunRequest): void {
  const report = inspectOnnx(request.bytes, request.modelName, {
    seed: request.settings.seed,
    batch: request.settings.batch,
    sequenceLength: request.settings.sequenceLength,
    loss: request.settings.loss,
    dtype: request.settings.dtype,
    watches: request.watches,
    onProgress: (message) => post({ type: 'progress', runId: request.runId, message }),
  });
  post({ type: 'report', runId: request.runId, report });
}

self.onmessage = async (event: MessageEvent<PageToWorker>) => {
  const m = event.data;
  if (m.type === 'probe') {
    try {
      post({ type: 'backend', info: await selectBackend(m.backend) });
    } catch (err) {
      post({ type: 'error', message: err instanceof Error ? err.message : String(err) });
    }
    return;
  }
  try {
    run(m);
  } catch (err) {
    const message = err instanceof OnnxImportError ? err.message : err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    post({ type: 'runError', runId: m.runId, message });
  }
};
