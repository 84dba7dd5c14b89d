/** The engine worker: loads and runs models off the UI thread so the panel stays responsive. */
import { setBackend } from '../engine/backend/registry';
import { BackendKind, selectBackend, wasmSimdSupported } from '../engine/backend/wasm/index';
import { inspectOnnx } from '../engine/inspect/onnxInspect';
import { OnnxImportError } from '../engine/onnx/errors';
import { Feeds, loadOnnx } from '../engine/onnx';
import { OnnxTrainer } from '../engine/train/trainer';
import { textBatch, textDataset } from '../engine/train/dataset';
import type { BackendChoice, BackendInfo, PageToWorker, RunRequest, TrainRequest, TrainStop, WorkerToPage } from '../extension/protocol';
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
  backendName = selection.name;
  const relaxed = (selection.backend as { relaxedSimd?: boolean }).relaxedSimd;
  return { name: selection.name + (relaxed ? ' (relaxed SIMD)' : ''), reason: selection.reason, webgpuAdapter, wasmSimd: wasmSimdSupported() };
}

function run(request: RunRequest): void {
  const report = inspectOnnx(request.bytes, request.modelName, {
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

const LOSS: Record<string, 'auto' | 'graph' | 'crossEntropy' | 'meanSquare'> = { auto: 'auto', model: 'graph', 'cross-entropy': 'crossEntropy', 'next-token': 'crossEntropy', mse: 'meanSquare' };

/** Runs whose stop was requested; checked between steps. */
const stopRequested = new Set<number>();
let backendName = 'typescript';

/** Frozen by default, as in the inspection: LoRA base weights. */
const frozen = (name: string) => /(^|\.)base(_layer)?\./.test(name);

/**
 * Trains step by step, yielding to the event loop between steps so a stop request (handled out of
 * turn) can end the run with the record so far. Progress is posted at most every 150 ms.
 */
async function train(request: TrainRequest): Promise<void> {
  const s = request.settings;
  const t = request.train;
  if (!(Number.isInteger(t.steps) && t.steps >= 1 && t.steps <= 100_000)) throw new RangeError(`steps must be a whole number from 1 to 100000, got ${t.steps}`);
  const model = loadOnnx(request.bytes, { frozen, dtype: s.dtype });
  let feeds: ((step: number) => Feeds) | undefined;
  if (t.data === 'text') {
    const ds = textDataset(model);
    if ('reason' in ds) throw new Error(`cannot train on text: ${ds.reason}`);
    feeds = (step) => textBatch(ds, step, s.batch, s.sequenceLength);
  }
  const trainer = new OnnxTrainer(model, {
    optimizer: { kind: t.optimizer, lr: t.lr, momentum: t.optimizer === 'sgd' ? t.momentum : undefined, weightDecay: t.weightDecay || undefined },
    clipNorm: t.clipNorm || undefined,
    clipValue: t.clipValue || undefined,
    seed: s.seed,
    batch: s.batch,
    sequenceLength: s.sequenceLength,
    loss: LOSS[s.loss] ?? 'auto',
    dtype: s.dtype,
    data: t.data,
    feeds,
    modelName: request.modelName,
    producer: `gradient-lens engine (${backendName})`,
  });
  let lastPost = 0;
  let stopped: TrainStop = 'done';
  for (let i = 0; i < t.steps; i++) {
    if (stopRequested.has(request.runId)) {
      stopped = 'cancelled';
      break;
    }
    const result = trainer.step();
    if (result.anomaly) {
      stopped = 'anomaly';
      break;
    }
    const now = performance.now();
    if (now - lastPost > 150 && i < t.steps - 1) {
      lastPost = now;
      post({ type: 'trainProgress', runId: request.runId, record: trainer.record });
      await new Promise((resolve) => setTimeout(resolve, 0));
    }
  }
  stopRequested.delete(request.runId);
  post({ type: 'trainDone', runId: request.runId, record: trainer.record, stopped });
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
  if (m.type === 'stopTraining') return;
  try {
    if (m.type === 'train') await train(m);
    else run(m);
  } catch (err) {
    const message = err instanceof OnnxImportError ? err.message : err instanceof Error ? `${err.name}: ${err.message}` : String(err);
    post({ type: 'runError', runId: m.runId, message });
  }
}

// Messages are handled one at a time: a run waits for the backend selection posted before it.
let queue = Promise.resolve();
self.onmessage = (event: MessageEvent<PageToWorker>) => {
  // A stop request must not wait behind the training run it stops.
  if (event.data.type === 'stopTraining') stopRequested.add(event.data.runId);
  queue = queue.then(() => handle(event.data));
};
