/**
 * The extension host's engine: a Node worker thread (started by ./client.ts) that runs inspections with the
 * same engine, the same WebAssembly kernels and the same request translation as the panel's worker, so the
 * first Inspect needs no webview. It compiles the kernels as soon as it starts (prewarm). No vscode import.
 */
import { parentPort } from 'node:worker_threads';
import { Backend } from '../../engine/backend/backend';
import { setBackend } from '../../engine/backend/registry';
import { referenceBackend } from '../../engine/backend/reference';
import { selectBackend, wasmSimdSupported } from '../../engine/backend/wasm/index';
import { readKernelBytes } from '../../engine/backend/wasm/node';
import { inspectOnnx } from '../../engine/inspect/onnxInspect';
import { dropRecycledArrays } from '../../engine/recycling';
import { describeError } from '../../webview/runWithFallback';
import { inspectOptions } from '../engineRequest';
import type { BackendInfo, HostToEngine, WorkerToPage } from '../protocol';

const port = parentPort;
if (!port) throw new Error('extension/hostEngine/worker.js runs as a worker thread');
const post = (m: WorkerToPage) => port.postMessage(m);

/** The WebAssembly backend (relaxed-SIMD build where this Node validates it, as in the panel), selected once. */
const wasm: Promise<{ backend: Backend; info: BackendInfo }> = (async () => {
  const selection = await selectBackend({ order: ['wasm', 'typescript'], wasm: () => readKernelBytes() });
  const relaxed = (selection.backend as { relaxedSimd?: boolean }).relaxedSimd;
  return {
    backend: selection.backend,
    info: { name: selection.name + (relaxed ? ' (relaxed SIMD)' : ''), reason: `extension host engine: ${selection.reason}`, webgpuAdapter: null, wasmSimd: wasmSimdSupported() },
  };
})();

const typescript: { backend: Backend; info: BackendInfo } = {
  backend: referenceBackend,
  info: { name: referenceBackend.name, reason: 'extension host engine: TypeScript reference backend (chosen in the settings)', webgpuAdapter: null, wasmSimd: wasmSimdSupported() },
};

void wasm.then(({ info }) => post({ type: 'backend', info }), (err) => post({ type: 'error', message: `backend selection failed: ${describeError(err)}` }));

async function handle(m: HostToEngine, receivedAt: number): Promise<void> {
  try {
    const chosen = m.settings.backend === 'typescript' ? typescript : await wasm;
    setBackend(chosen.backend);
    const backendMs = performance.now() - receivedAt;
    const report = await inspectOnnx(m.bytes, m.modelName, inspectOptions(m, (message) => post({ type: 'progress', runId: m.runId, message })));
    post({ type: 'report', runId: m.runId, report, backendMs });
  } catch (err) {
    post({ type: 'runError', runId: m.runId, message: describeError(err) });
  } finally {
    // The idle worker lives in the extension host's process: give back the arrays kept for reuse by a next step.
    dropRecycledArrays();
  }
}

// One run at a time, in order (the client cancels by terminating the worker).
let queue = Promise.resolve();
port.on('message', (m: HostToEngine) => {
  const receivedAt = performance.now();
  queue = queue.then(() => handle(m, receivedAt));
});
