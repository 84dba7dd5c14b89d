/**
 * The one typed message protocol between the extension host, the webview page and its engine worker.
 * Every side imports these types; nothing else crosses the boundaries.
 */
import type { InspectionReport } from '../engine/inspect/report';
import type { Finding } from '../engine/inspect/diagnose';

/** Which engine backend runs in the webview, and why that one. */
export interface BackendInfo {
  /** 'webgpu' | 'wasm-simd' | 'typescript' */
  name: string;
  /** Human-readable reason for the choice, e.g. why faster backends were skipped. */
  reason: string;
  /** WebGPU adapter description when one was found, else null. */
  webgpuAdapter: string | null;
  /** Whether this browser validates WebAssembly SIMD modules. */
  wasmSimd: boolean;
}

export type LossChoice = 'auto' | 'cross-entropy' | 'next-token' | 'mse' | 'model';
export type BackendChoice = 'auto' | 'webgpu' | 'wasm' | 'typescript';

export interface RunSettings {
  seed: number;
  batch: number;
  sequenceLength: number;
  loss: LossChoice;
  backend: BackendChoice;
  dtype: 'float32' | 'float64';
  /** Which sample of the batch the attention maps show. */
  attentionSample: number;
}

export const DEFAULT_RUN_SETTINGS: RunSettings = { seed: 0, batch: 8, sequenceLength: 16, loss: 'auto', backend: 'auto', dtype: 'float32', attentionSample: 0 };

/** A value whose gradient the user asked to log (`# gradlens: watch`, `register_hook`). */
export interface WatchSpec {
  /** Label: the source expression. */
  target: string;
  /** Python file basename and 1-based line, matched against the model's stack-trace metadata. */
  file: string;
  line: number;
  /** Fallback when the model has no line metadata: log this module's output gradient. */
  modulePath?: string;
}

export interface RunRequest {
  runId: number;
  modelName: string;
  bytes: Uint8Array;
  settings: RunSettings;
  watches: WatchSpec[];
}

export type HostToWebview =
  | { type: 'hello'; version: string; settings: RunSettings }
  | ({ type: 'run' } & RunRequest)
  | { type: 'cancel'; runId: number }
  | { type: 'focusModule'; path: string }
  /** Scroll to the attention maps of a layer (from the editor's attention CodeLens). */
  | { type: 'showAttention'; modulePath: string }
  /** Diagnostics computed by the host with the user's thresholds, to colour the panel the same way. */
  | { type: 'findings'; runId: number; findings: Finding[] };

export type WebviewToHost =
  | { type: 'ready' }
  | { type: 'backend'; info: BackendInfo }
  | { type: 'progress'; runId: number; message: string }
  | { type: 'report'; runId: number; report: InspectionReport }
  | { type: 'runError'; runId: number; message: string }
  | { type: 'revealModule'; path: string }
  | { type: 'rerun'; settings: RunSettings }
  | { type: 'error'; message: string };

/**
 * `wasm`: the WebAssembly kernel bytes, fetched by the page (a worker started from a blob cannot fetch
 * webview resources itself), or why they could not be fetched.
 */
export type PageToWorker = { type: 'probe'; backend: BackendChoice; wasm: ArrayBuffer | null; wasmError?: string } | ({ type: 'run' } & RunRequest);

export type WorkerToPage =
  | { type: 'backend'; info: BackendInfo }
  | { type: 'progress'; runId: number; message: string }
  | { type: 'report'; runId: number; report: InspectionReport }
  | { type: 'runError'; runId: number; message: string }
  | { type: 'error'; message: string };
