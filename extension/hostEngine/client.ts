/**
 * Runs inspections in the extension host's own engine: a Node worker thread (./worker.ts), started ahead of
 * the first run (prewarm: thread up, kernels compiled) so the first Inspect does not wait for the panel.
 * The extension host thread never runs the engine. The worker's JS heap is capped (resourceLimits): a run that
 * exhausts it ends the worker, not the extension host, and the run fails with an error naming the model.
 * Cancelling terminates the worker (the engine has no yield points mid-op) and starts a fresh one.
 * No vscode import (tested in Node: test/hostEngine.test.ts).
 */
import { ResourceLimits, Worker } from 'node:worker_threads';
import type { InspectionReport } from '../../engine/inspect/report';
import type { BackendInfo, HostToEngine, RunRequest, WorkerToPage } from '../protocol';

/** The worker's JS heap cap. Tensor data lives in ArrayBuffers outside it; the run's memory budget guards those. */
export const HOST_ENGINE_HEAP_MB = 2048;

export interface HostRunResult {
  report: InspectionReport;
  /** Waiting for the worker to start and compile its kernels (0 when it was prewarmed). */
  workerStartMs: number;
  /** From posting the run until the report arrived (the engine's work plus the two messages). */
  roundTripMs: number;
}

interface Pending {
  runId: number;
  modelName: string;
  resolve(result: { report: InspectionReport }): void;
  reject(error: Error): void;
  onProgress(message: string): void;
}

interface Life {
  worker: Worker;
  /** Settles when the worker selected its backend (kernels compiled), or rejects when it died first. */
  ready: Promise<BackendInfo>;
}

export class HostEngine {
  private life: Life | null = null;
  private pending: Pending | null = null;
  /** The backend the worker selected, once known. */
  backend: BackendInfo | undefined;
  onBackend: (info: BackendInfo) => void = () => {};

  /** `script`: the worker file (dist/host-engine.js in the package, build/extension/hostEngine/worker.js in tests). */
  constructor(private readonly script: string, private readonly resourceLimits: ResourceLimits = { maxOldGenerationSizeMb: HOST_ENGINE_HEAP_MB }) {}

  /** Starts the worker if none runs (it compiles the kernels at once). Returns immediately. */
  prewarm(): void {
    this.start();
  }

  private start(): Life {
    if (this.life) return this.life;
    const worker = new Worker(this.script, { resourceLimits: this.resourceLimits });
    // An idle prewarmed worker must not keep a Node process (a test, a CLI) alive.
    worker.unref();
    let markReady!: (info: BackendInfo) => void;
    let fail!: (e: Error) => void;
    const ready = new Promise<BackendInfo>((resolve, reject) => {
      markReady = resolve;
      fail = reject;
    });
    ready.catch(() => {}); // observed by the run that awaits it, if any
    const life: Life = { worker, ready };
    worker.on('message', (m: WorkerToPage) => {
      if (this.life !== life) return;
      if (m.type === 'backend') {
        this.backend = m.info;
        markReady(m.info);
        this.onBackend(m.info);
      } else if (m.type === 'error') {
        fail(new Error(m.message));
      } else this.onMessage(m);
    });
    worker.on('error', (err: Error & { code?: string }) => {
      if (this.life !== life) return;
      this.died(err.code === 'ERR_WORKER_OUT_OF_MEMORY' ? 'ran out of memory' : `crashed (${err.message})`, fail);
    });
    worker.on('exit', (code) => {
      if (this.life !== life) return;
      this.died(`stopped (exit code ${code})`, fail);
    });
    this.life = life;
    return life;
  }

  /** The worker ended on its own: the pending run fails naming its model; the next run starts a new worker. */
  private died(how: string, fail: (e: Error) => void): void {
    const life = this.life;
    this.life = null;
    void life?.worker.terminate();
    const p = this.pending;
    const what = p ? `running ${p.modelName}` : 'while starting';
    const heap = this.resourceLimits.maxOldGenerationSizeMb;
    const hint = how === 'ran out of memory' ? ` (its JavaScript heap is capped at ${heap} MB; try a smaller batch or sequence length)` : '';
    const error = new Error(`the extension host's engine ${how} ${what}${hint}`);
    fail(error);
    this.failPending(error);
  }

  /** Inspects in the worker. Rejects with the engine's error message (the panel's text for the same failure), or 'cancelled'. */
  async run(request: RunRequest, onProgress: (message: string) => void): Promise<HostRunResult> {
    if (this.pending) this.cancel(this.pending.runId, 'superseded by a newer run');
    const start = performance.now();
    const life = this.start();
    // A run in flight keeps the process alive (an idle worker does not).
    life.worker.ref();
    try {
      return await this.runIn(life, request, onProgress, start);
    } finally {
      if (!this.pending) this.life?.worker.unref();
    }
  }

  private async runIn(life: Life, request: RunRequest, onProgress: (message: string) => void, start: number): Promise<HostRunResult> {
    let mine!: Pending;
    const failed = new Promise<never>((_, reject) => (mine = this.pending = { runId: request.runId, modelName: request.modelName, resolve: () => {}, reject, onProgress }));
    failed.catch(() => {});
    // A cancel or a dead worker while waiting for the kernels ends the wait too.
    await Promise.race([life.ready, failed]);
    // Cancelled or superseded just as the kernels were ready: `failed` holds why.
    if (this.pending !== mine) await failed;
    const posted = performance.now();
    const result = await new Promise<{ report: InspectionReport }>((resolve, reject) => {
      const p = mine;
      p.resolve = resolve;
      p.reject = reject;
      life.worker.postMessage({ type: 'run', ...request } satisfies HostToEngine);
    });
    return { report: result.report, workerStartMs: posted - start, roundTripMs: performance.now() - posted };
  }

  /** Stops a run at once: the worker is terminated and a fresh one started (prewarmed for the next run). */
  cancel(runId: number, reason = 'cancelled'): void {
    if (this.pending?.runId !== runId) return;
    this.terminate();
    this.failPending(new Error(reason));
    this.prewarm();
  }

  private terminate(): void {
    const life = this.life;
    this.life = null;
    void life?.worker.terminate();
  }

  private failPending(error: Error): void {
    const p = this.pending;
    this.pending = null;
    p?.reject(error);
  }

  private onMessage(m: WorkerToPage): void {
    const p = this.pending;
    if (!p || !('runId' in m) || m.runId !== p.runId) return;
    if (m.type === 'progress') p.onProgress(m.message);
    else if (m.type === 'report') {
      this.pending = null;
      p.resolve({ report: m.report });
    } else if (m.type === 'runError') this.failPending(new Error(m.message));
  }

  dispose(): void {
    this.terminate();
    this.failPending(new Error('the extension host engine was shut down'));
  }
}
