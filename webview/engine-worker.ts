/** The engine worker: loads and runs models off the UI thread so the panel stays responsive. */
import { Backend } from '../engine/backend/backend';
import { getBackend, setBackend } from '../engine/backend/registry';
import { isDeviceBackend } from '../engine/backend/device';
import { BackendKind, loadWasmBackend, selectBackend, wasmSimdSupported } from '../engine/backend/wasm/index';
import { referenceBackend } from '../engine/backend/reference';
import { createWebGpuBackend } from '../engine/backend/webgpu/backend';
import { inspectOnnx } from '../engine/inspect/onnxInspect';
import { dropRecycledArrays } from '../engine/recycling';
import type { RunCapture } from '../engine/inspect/capture';
import { Feeds, loadOnnx, OnnxModel } from '../engine/onnx';
import { optimizerStateBytes } from '../engine/onnx/memory';
import { OnnxTrainer } from '../engine/train/trainer';
import { textBatch, textDataset } from '../engine/train/dataset';
import type { BackendChoice, BackendInfo, PageToWorker, RunRequest, TrainRequest, TrainStop, WorkerToPage } from '../extension/protocol';
import { describeWebGpuAdapter } from './probe';
import { describeError, runWithFallback } from './runWithFallback';
import { inspectOptions } from '../extension/engineRequest';

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

function inspect(request: RunRequest) {
  return inspectOnnx(request.bytes, request.modelName, inspectOptions(
    request,
    (message) => post({ type: 'progress', runId: request.runId, message }),
    // The arrays are the capture's own copies: transfer them instead of cloning.
    (capture) => (self as unknown as Worker).postMessage({ type: 'capture', runId: request.runId, capture } satisfies WorkerToPage, captureBuffers(capture)),
  ));
}

async function run(request: RunRequest, receivedAt: number): Promise<void> {
  const backendMs = performance.now() - receivedAt;
  const report = await runWithFallback(() => inspect(request), current?.fallback ?? null, (reason, fallback) => {
    const relaxed = (fallback as { relaxedSimd?: boolean }).relaxedSimd;
    current = { info: { ...current!.info, name: fallback.name + (relaxed ? ' (relaxed SIMD)' : ''), reason }, fallback: null };
    post({ type: 'backend', info: current.info });
    post({ type: 'progress', runId: request.runId, message: reason });
  });
  post({ type: 'report', runId: request.runId, report, backendMs });
}

function captureBuffers(c: RunCapture): ArrayBuffer[] {
  const all = [...c.inputs, ...c.values, ...c.gradients, ...c.dropout, ...(c.loss.targets ? [c.loss.targets] : [])];
  return [...new Set(all.map((t) => t.data.buffer as ArrayBuffer))];
}

const LOSS: Record<string, 'auto' | 'graph' | 'crossEntropy' | 'meanSquare'> = { auto: 'auto', model: 'graph', 'cross-entropy': 'crossEntropy', 'next-token': 'crossEntropy', mse: 'meanSquare' };

/** Runs whose stop was requested; checked between steps. */
const stopRequested = new Set<number>();

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
  const budget = request.memoryBudgetMB !== undefined ? request.memoryBudgetMB * 2 ** 20 : undefined;
  const model = loadOnnx(request.bytes, { frozen, dtype: s.dtype, memoryBudget: budget, externalData: request.externalData });
  let feeds: ((step: number) => Feeds) | undefined;
  if (t.data === 'text') {
    const ds = textDataset(model);
    if ('reason' in ds) throw new Error(`cannot train on text: ${ds.reason}`);
    feeds = (step) => textBatch(ds, step, s.batch, s.sequenceLength);
  }
  // One step's forward + backward must fit the budget beside the optimiser's state (momentum or Adam's
  // moments): refused before the first step, with the estimate.
  if (budget !== undefined) {
    const state = optimizerStateBytes(model, t.optimizer, t.optimizer === 'sgd' ? t.momentum : undefined, s.dtype);
    model.estimateMemory(feeds?.(1), { seed: s.seed, batch: s.batch, seq: s.sequenceLength, loss: LOSS[s.loss] ?? 'auto', dtype: s.dtype, memoryBudget: Math.max(0, budget - state) });
  }
  // Training reads parameters, gradients and statistics on the host at every step: on WebGPU it runs on
  // the device backend's host kernels (the WebAssembly build when available).
  const active = getBackend();
  const hostForTraining = isDeviceBackend(active) ? active.host : active;
  setBackend(hostForTraining);
  try {
    await trainSteps(request, model, feeds, hostForTraining.name);
  } finally {
    setBackend(active);
  }
}

async function trainSteps(request: TrainRequest, model: OnnxModel, feeds: ((step: number) => Feeds) | undefined, backendName: string): Promise<void> {
  const s = request.settings;
  const t = request.train;
  const trainer = new OnnxTrainer(model, {
    optimizer: { kind: t.optimizer, lr: t.lr, momentum: t.optimizer === 'sgd' ? t.momentum : undefined, weightDecay: t.weightDecay || undefined },
    clipNorm: t.clipNorm || undefined,
    clipValue: t.clipValue || undefined,
    seed: s.seed,
    batch: s.batch,
    sequenceLength: s.sequenceLength,
    loss: LOSS[s.loss] ?? 'auto',
    dtype: s.dtype,
    // The run mode the inspection uses (default train): an export made in eval mode still trains with batch statistics.
    training: (s.mode ?? 'train') === 'train',
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

async function handle(m: PageToWorker, receivedAt: number): Promise<void> {
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
    else await run(m, receivedAt);
  } catch (err) {
    post({ type: 'runError', runId: m.runId, message: describeError(err) });
  } finally {
    // An idle panel gives back the output arrays kept for a next step's reuse (engine/recycling.ts).
    dropRecycledArrays();
  }
}

// Messages are handled one at a time: a run waits for the backend selection posted before it.
let queue = Promise.resolve();
self.onmessage = (event: MessageEvent<PageToWorker>) => {
  // A stop request must not wait behind the training run it stops.
  if (event.data.type === 'stopTraining') stopRequested.add(event.data.runId);
  const receivedAt = performance.now();
  queue = queue.then(() => handle(event.data, receivedAt));
};
