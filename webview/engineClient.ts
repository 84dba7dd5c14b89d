/** Runs the engine in a dedicated worker; cancelling a run terminates the worker and starts a fresh one. */
import type { BackendChoice, BackendInfo, PageToWorker, RunRequest, WorkerToPage } from '../extension/protocol';
import type { InspectionReport } from '../engine/inspect/report';
import { preferredKernelFile } from '../engine/backend/wasm/index';

export interface RunCallbacks {
  onProgress(message: string): void;
}

export class EngineClient {
  private worker: Worker | null = null;
  private script: string | null = null;
  private pending: { runId: number; resolve: (r: InspectionReport) => void; reject: (e: Error) => void; callbacks: RunCallbacks } | null = null;
  onBackend: (info: BackendInfo) => void = () => {};
  onError: (message: string) => void = () => {};

  constructor(private readonly scriptUrl: string, private readonly wasmBase: string) {}

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

  private lastChoice: BackendChoice = 'auto';
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

  async probe(backend: BackendChoice): Promise<void> {
    this.lastChoice = backend;
    const worker = await this.ensureWorker();
    const { bytes, error } = await this.kernels();
    // Each probe gets its own copy: the buffer is transferred to the worker.
    const wasm = bytes ? bytes.slice(0) : null;
    worker.postMessage({ type: 'probe', backend, wasm, wasmError: error } satisfies PageToWorker, wasm ? [wasm] : []);
  }

  async run(request: RunRequest, callbacks: RunCallbacks): Promise<InspectionReport> {
    const fresh = !this.worker;
    const worker = await this.ensureWorker();
    // A restarted worker (after a cancel), or a different backend choice, selects its backend first.
    if (fresh || request.settings.backend !== this.lastChoice) await this.probe(request.settings.backend);
    this.failPending(new Error('superseded by a newer run'));
    return new Promise((resolve, reject) => {
      this.pending = { runId: request.runId, resolve, reject, callbacks };
      const bytes = asBytes(request.bytes);
      worker.postMessage({ type: 'run', ...request, bytes } satisfies PageToWorker, [bytes.buffer]);
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

/** The model bytes as a Uint8Array we own (messages may carry them as a typed array, an ArrayBuffer or a plain array). */
function asBytes(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) return value.slice();
  if (value instanceof ArrayBuffer) return new Uint8Array(value.slice(0));
  if (Array.isArray(value)) return Uint8Array.from(value);
  const data = (value as { data?: unknown } | null)?.data;
  if (Array.isArray(data)) return Uint8Array.from(data);
  throw new Error('the model bytes did not reach the webview as binary data');
}
