/**
 * Runs the engine in a dedicated worker; cancelling a run terminates the worker and starts a fresh one.
 * A training run is stopped gracefully instead (the worker yields between steps and answers with the
 * record so far); only a worker that does not answer is terminated.
 */
import type { BackendChoice, BackendInfo, PageToWorker, RunRequest, TrainRequest, TrainStop, WorkerToPage } from '../extension/protocol';
import type { InspectionReport } from '../engine/inspect/report';
import type { RunCapture } from '../engine/inspect/capture';
import { TRAINING_SCHEMA, TrainingRecord } from '../engine/train/record';
import { preferredKernelFile } from '../engine/backend/wasm/index';

export interface RunCallbacks {
  onProgress(message: string): void;
  /** For a request with `capture`: what the run fed, used and computed (before the report). */
  onCapture?(capture: RunCapture): void;
}

export interface TrainCallbacks {
  onProgress(record: TrainingRecord): void;
}

/** A finished inspection and where its time went before and around the engine (see RunPhases). */
export interface RunResult {
  report: InspectionReport;
  workerStartMs: number;
  backendMs: number;
}

export interface TrainResult {
  record: TrainingRecord;
  stopped: TrainStop;
}

/** How long a stop request may take before the worker is terminated (one step of a big model can take a while). */
export const STOP_TIMEOUT_MS = 3000;

type Pending =
  | { kind: 'run'; runId: number; resolve: (r: RunResult) => void; reject: (e: Error) => void; callbacks: RunCallbacks; workerStartMs: number }
  | { kind: 'train'; runId: number; resolve: (r: TrainResult) => void; reject: (e: Error) => void; callbacks: TrainCallbacks; request: TrainRequest; last: TrainingRecord | null; stopTimer?: ReturnType<typeof setTimeout> };

/** The record of a run stopped before its first progress message: no steps, but the run's identity. */
function emptyRecord(request: TrainRequest): TrainingRecord {
  return {
    schema: TRAINING_SCHEMA,
    producer: 'gradient-lens engine',
    model: { name: request.modelName },
    optimizer: { kind: request.train.optimizer, lr: request.train.lr },
    steps: [],
    loss: [],
    gradNormTotal: [],
    modules: [],
  };
}

export class EngineClient {
  private worker: Worker | null = null;
  /** The worker with its backend selection posted, for `started.backend`; null until started (and after a terminate). */
  private started: { backend: BackendChoice; ready: Promise<Worker> } | null = null;
  private script: Promise<string> | null = null;
  private pending: Pending | null = null;
  /** How long stopTraining waits for the worker's answer before terminating it. */
  stopTimeoutMs = STOP_TIMEOUT_MS;
  onBackend: (info: BackendInfo) => void = () => {};
  onError: (message: string) => void = () => {};

  constructor(private readonly scriptUrl: string, private readonly wasmBase: string) {}

  /** Workers cannot load webview resource URLs directly (another origin): start one from a blob of the script. */
  private async startWorker(): Promise<Worker> {
    this.script ??= fetch(this.scriptUrl).then((r) => r.text());
    const script = await this.script;
    const worker = new Worker(URL.createObjectURL(new Blob([script], { type: 'text/javascript' })));
    worker.onmessage = (event: MessageEvent<WorkerToPage>) => {
      if (this.worker === worker) this.onMessage(event.data);
    };
    worker.onerror = (event) => {
      if (this.worker === worker) this.failPending(new Error(event.message || 'the engine worker crashed'));
    };
    return worker;
  }

  /** Replaced when the worker is terminated: a worker still starting for an older one is not kept. */
  private life = {};

  private terminate(): void {
    this.worker?.terminate();
    this.worker = null;
    this.started = null;
    this.life = {};
  }

  private kernelBytes: Promise<{ bytes: ArrayBuffer | null; error?: string }> | null = null;

  /** The WebAssembly kernels (relaxed-SIMD build where supported), fetched once by the page. */
  private kernels(): Promise<{ bytes: ArrayBuffer | null; error?: string }> {
    this.kernelBytes ??= (async () => {
      const url = `${this.wasmBase}${preferredKernelFile()}`;
      try {
        const response = await fetch(url);
        if (!response.ok) return { bytes: null, error: `fetching ${url}: HTTP ${response.status}` };
        return { bytes: await response.arrayBuffer() };
      } catch (err) {
        return { bytes: null, error: `fetching ${url}: ${err instanceof Error ? err.message : err}` };
      }
    })();
    return this.kernelBytes;
  }

  /**
   * The worker with a backend selection for `backend` posted ahead of anything else: started (worker script and
   * kernels fetched side by side) when there is none, re-selected when the choice changed. The worker handles
   * messages in order, so a run posted after this waits for the selection. Calling it early (when the page
   * opens) overlaps starting the engine with everything before the first run.
   */
  prepare(backend: BackendChoice): Promise<Worker> {
    if (this.started?.backend === backend) return this.started.ready;
    const previous = this.started?.ready ?? null;
    const life = this.life;
    const ready = (async () => {
      const kernels = this.kernels();
      let worker = previous ? await previous.catch(() => null) : null;
      if (!worker) {
        worker = await this.startWorker();
        if (life !== this.life) {
          // Terminated while starting: this worker is nobody's.
          worker.terminate();
          throw new Error('cancelled');
        }
        this.worker = worker;
      }
      const { bytes, error } = await kernels;
      // Each selection gets its own copy: the buffer is transferred to the worker.
      const wasm = bytes ? bytes.slice(0) : null;
      worker.postMessage({ type: 'probe', backend, wasm, wasmError: error } satisfies PageToWorker, wasm ? [wasm] : []);
      return worker;
    })();
    this.started = { backend, ready };
    return ready;
  }

  /** The worker, ready for a new run (see prepare); the pending run is superseded. */
  private async workerFor(request: RunRequest): Promise<Worker> {
    const worker = await this.prepare(request.settings.backend);
    this.supersede();
    return worker;
  }

  async run(request: RunRequest, callbacks: RunCallbacks): Promise<RunResult> {
    const start = performance.now();
    const worker = await this.workerFor(request);
    const workerStartMs = performance.now() - start;
    return new Promise((resolve, reject) => {
      this.pending = { kind: 'run', runId: request.runId, resolve, reject, callbacks, workerStartMs };
      const { bytes, externalData, transfer } = ownedFiles(request);
      worker.postMessage({ type: 'run', ...request, bytes, externalData } satisfies PageToWorker, transfer);
    });
  }

  /** Trains request.train.steps steps; resolves with the record when the run ends (done, stopped or at an anomaly). */
  async train(request: TrainRequest, callbacks: TrainCallbacks): Promise<TrainResult> {
    const worker = await this.workerFor(request);
    return new Promise((resolve, reject) => {
      this.pending = { kind: 'train', runId: request.runId, resolve, reject, callbacks, request, last: null };
      const { bytes, externalData, transfer } = ownedFiles(request);
      worker.postMessage({ type: 'train', ...request, bytes, externalData } satisfies PageToWorker, transfer);
    });
  }

  /**
   * Asks the worker to end a training run after its current step; it answers with trainDone and the
   * record. A worker stuck in a long step is terminated after STOP_TIMEOUT_MS and the run resolves with
   * the last progress record.
   */
  stopTraining(runId: number): void {
    const p = this.pending;
    if (p?.kind !== 'train' || p.runId !== runId || p.stopTimer) return;
    this.worker?.postMessage({ type: 'stopTraining', runId } satisfies PageToWorker);
    p.stopTimer = setTimeout(() => {
      if (this.pending !== p) return;
      this.pending = null;
      this.terminate();
      p.resolve({ record: p.last ?? emptyRecord(p.request), stopped: 'cancelled' });
    }, this.stopTimeoutMs);
  }

  /** Stops a run at once: the worker is terminated (the engine has no yield points mid-op) and restarted lazily. Training runs stop gracefully. */
  cancel(runId: number): void {
    if (this.pending?.runId !== runId) return;
    if (this.pending.kind === 'train') return this.stopTraining(runId);
    this.terminate();
    this.failPending(new Error('cancelled'));
  }

  /** A new run replaces the pending one; a training run being replaced is also told to stop, or the worker would finish it first. */
  private supersede(): void {
    const p = this.pending;
    if (p?.kind === 'train' && !p.stopTimer) this.worker?.postMessage({ type: 'stopTraining', runId: p.runId } satisfies PageToWorker);
    this.failPending(new Error('superseded by a newer run'));
  }

  private failPending(error: Error): void {
    const p = this.pending;
    this.pending = null;
    if (p?.kind === 'train' && p.stopTimer) clearTimeout(p.stopTimer);
    p?.reject(error);
  }

  private onMessage(m: WorkerToPage): void {
    switch (m.type) {
      case 'backend':
        this.onBackend(m.info);
        break;
      case 'progress':
        if (this.pending?.kind === 'run' && this.pending.runId === m.runId) this.pending.callbacks.onProgress(m.message);
        break;
      case 'capture':
        if (this.pending?.kind === 'run' && this.pending.runId === m.runId) this.pending.callbacks.onCapture?.(m.capture);
        break;
      case 'report':
        if (this.pending?.kind === 'run' && this.pending.runId === m.runId) {
          const p = this.pending;
          this.pending = null;
          p.resolve({ report: m.report, workerStartMs: p.workerStartMs, backendMs: m.backendMs ?? 0 });
        }
        break;
      case 'trainProgress':
        if (this.pending?.kind === 'train' && this.pending.runId === m.runId) {
          this.pending.last = m.record;
          this.pending.callbacks.onProgress(m.record);
        }
        break;
      case 'trainDone':
        if (this.pending?.kind === 'train' && this.pending.runId === m.runId) {
          const p = this.pending;
          this.pending = null;
          if (p.stopTimer) clearTimeout(p.stopTimer);
          p.resolve({ record: m.record, stopped: m.stopped });
        }
        break;
      case 'runError':
        if (this.pending?.runId === m.runId) this.failPending(new Error(m.message));
        break;
      case 'error':
        this.onError(m.message);
        break;
    }
  }
}

/** The model and external data bytes as arrays we own, and their buffers to transfer to the worker. */
function ownedFiles(request: RunRequest): { bytes: Uint8Array; externalData: Record<string, Uint8Array>; transfer: ArrayBuffer[] } {
  const bytes = asBytes(request.bytes);
  const externalData: Record<string, Uint8Array> = {};
  for (const [location, data] of Object.entries(request.externalData ?? {})) externalData[location] = asBytes(data);
  return { bytes, externalData, transfer: [bytes.buffer as ArrayBuffer, ...Object.values(externalData).map((d) => d.buffer as ArrayBuffer)] };
}

/** The model bytes as a Uint8Array we own (messages may carry them as a typed array, an ArrayBuffer or a plain array). */
function asBytes(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value.slice();
  if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
  if (Array.isArray(value)) return Uint8Array.from(value);
  const data = (value as { data?: unknown } | null)?.data;
  if (Array.isArray(data)) return Uint8Array.from(data);
  throw new Error('the model bytes did not reach the webview as binary data');
}
