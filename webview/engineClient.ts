/** Runs the engine in a dedicated worker; cancelling a run terminates the worker and starts a fresh one. */
import type { BackendChoice, BackendInfo, PageToWorker, RunRequest, WorkerToPage } from '../extension/protocol';
import type { InspectionReport } from '../engine/inspect/report';

export interface RunCallbacks {
  onProgress(message: string): void;
}

export class EngineClient {
  private worker: Worker | null = null;
  private script: string | null = null;
  private pending: { runId: number; resolve: (r: InspectionReport) => void; reject: (e: Error) => void; callbacks: RunCallbacks } | null = null;
  onBackend: (info: BackendInfo) => void = () => {};
  onError: (message: string) => void = () => {};

  constructor(private readonly scriptUrl: string) {}

  /** Workers cannot load webview resource URLs directly (another origin): start one from a blob of the script. */
  private async ensureWorker(): Promise<Worker> {
    if (this.worker) return this.worker;
    this.script ??= await (await fetch(this.scriptUrl)).text();
    const worker = new Worker(URL.createObjectURL(new Blob([this.script], { type: 'text/javascript' })));
    worker.onmessage = (event: MessageEvent<WorkerToPage>) => this.onMessage(event.data);
    worker.onerror = (event) => this.failPending(new Error(event.message || 'the engine worker crashed'));
    this.worker = worker;
    return worker;
  }

  async probe(backend: BackendChoice): Promise<void> {
    (await this.ensureWorker()).postMessage({ type: 'probe', backend } satisfies PageToWorker);
  }

  async run(request: RunRequest, callbacks: RunCallbacks): Promise<InspectionReport> {
    const worker = await this.ensureWorker();
    this.failPending(new Error('superseded by a newer run'));
    return new Promise((resolve, reject) => {
      this.pending = { runId: request.runId, resolve, reject, callbacks };
      worker.postMessage({ type: 'run', ...request } satisfies PageToWorker, [request.bytes.buffer]);
    });
  }

  /** Stops a run at once: the worker is terminated (the engine has no yield points mid-op) and restarted lazily. */
  cancel(runId: number): void {
    if (this.pending?.runId !== runId) return;
    this.worker?.terminate();
    this.worker = null;
    this.failPending(new Error('cancelled'));
  }

  private failPending(error: Error): void {
    const p = this.pending;
    this.pending = null;
    p?.reject(error);
  }

  private onMessage(m: WorkerToPage): void {
    switch (m.type) {
      case 'backend':
        this.onBackend(m.info);
        break;
      case 'progress':
        if (this.pending?.runId === m.runId) this.pending.callbacks.onProgress(m.message);
        break;
      case 'report':
        if (this.pending?.runId === m.runId) {
          const p = this.pending;
          this.pending = null;
          p.resolve(m.report);
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
