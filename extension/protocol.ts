/**
 * The one typed message protocol between the extension host, the webview page and its engine worker.
 * Every side imports these types; nothing else crosses the boundaries.
 */
import type { InspectionReport } from '../engine/inspect/report';
import type { Finding } from '../engine/inspect/diagnose';
import type { TrainingRecord } from '../engine/train/record';
import type { RunCapture } from '../engine/inspect/capture';
import type { Verification } from './python/compare';
import type { RunBaseline } from '../engine/inspect/baseline';

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
  /**
   * How Dropout and BatchNorm run: 'train' (the default: batch statistics, dropout drops, as PyTorch trains,
   * whatever mode the export was made in) or 'eval' (running statistics, no dropout).
   */
  mode: RunMode;
}

export type RunMode = 'train' | 'eval';

export const DEFAULT_RUN_SETTINGS: RunSettings = { seed: 0, batch: 8, sequenceLength: 16, loss: 'auto', backend: 'auto', dtype: 'float32', attentionSample: 0, mode: 'train' };

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
  /** The external data files the model names (e.g. `model.onnx.data`), by their `location` in the model. */
  externalData?: Record<string, Uint8Array>;
  settings: RunSettings;
  watches: WatchSpec[];
  /** Tensor memory the run may take (gradientLens.run.memoryBudgetMB): refused before allocation above it. None: no budget. */
  memoryBudgetMB?: number;
  /** Also send what the run fed, used and computed ('capture', for Verify against PyTorch); the panel keeps its report. */
  capture?: boolean;
  /**
   * Run only to get the panel's engine going (its JavaScript and WebAssembly compiled and tiered up), after the
   * extension host's engine made the shown report: the page sends nothing back and shows nothing.
   */
  warmUp?: boolean;
}

/** Default of gradientLens.run.memoryBudgetMB: below what a webview's JS heap can hold. */
export const DEFAULT_MEMORY_BUDGET_MB = 2048;

/** The panel's "Verify against PyTorch" badge. */
export type VerificationView =
  | { status: 'running' }
  | { status: 'failed'; message: string }
  | { status: 'done'; result: Verification; badge: string };

/**
 * Where a run's time went inside the webview, in ms (each side measures its own durations, so clocks of the
 * host, the page and the worker never need to agree). The host adds its own parts for the Output channel.
 */
export interface RunPhases {
  /** Starting the engine worker for this run (fetching its script and the kernels), 0 when it was running. */
  workerStartMs: number;
  /** Time the run waited in the worker for the backend selection (compiling the WebAssembly kernels). */
  backendMs: number;
  /** From the run message reaching the page until the page posted the report. */
  pageMs: number;
}

export type OptimizerChoice = 'sgd' | 'adam' | 'adamw';

/** "Train N steps": optimiser and data settings (PyTorch's defaults and formulas, see engine/train/optim.ts). */
export interface TrainSettings {
  steps: number;
  optimizer: OptimizerChoice;
  lr: number;
  /** SGD momentum (0 = plain SGD). */
  momentum: number;
  /** L2 penalty for sgd/adam, decoupled decay for adamw. */
  weightDecay: number;
  /** clip_grad_norm_ max norm; 0 = off. */
  clipNorm: number;
  /** clip_grad_value_ bound; 0 = off. */
  clipValue: number;
  /**
   * 'fixed': the same seeded batch every step; 'fresh': a new seeded batch per step (seed + step);
   * 'text': windows of the text a language model ships in its metadata (engine/train/dataset.ts).
   */
  data: 'fixed' | 'fresh' | 'text';
}

export const DEFAULT_TRAIN_SETTINGS: TrainSettings = { steps: 50, optimizer: 'adam', lr: 1e-3, momentum: 0.9, weightDecay: 0, clipNorm: 0, clipValue: 0, data: 'fixed' };

export interface TrainRequest extends RunRequest {
  train: TrainSettings;
}

/**
 * A training record as serializeTrainingRecord writes it. Host <-> webview messages travel as JSON, which
 * turns NaN and Infinity into null; a record must keep them (they are what anomaly mode is about).
 * Worker <-> page messages are structured clones and carry the record as is.
 */
export type SerializedTrainingRecord = string;

/** Why a training run ended. */
export type TrainStop = 'done' | 'cancelled' | 'anomaly';

/** A training stream the extension follows ("Attach to Training Job"): what the status line says. */
export interface LiveStatus {
  /** The stream file, relative to the workspace when inside it. */
  file: string;
  /** waiting: no step recorded yet; live: the job appends; ended: the job closed the stream; detached: no longer followed. */
  state: 'waiting' | 'live' | 'ended' | 'detached';
  /** The last recorded step number. */
  step: number | null;
  /** Milliseconds since that step arrived, when the message was sent (the receiver adds the time since). */
  ageMs: number | null;
}

export type HostToWebview =
  | { type: 'hello'; version: string; settings: RunSettings; train: TrainSettings }
  | ({ type: 'run' } & RunRequest)
  | { type: 'cancel'; runId: number }
  | { type: 'focusModule'; path: string }
  /** Scroll to the attention maps of a layer (from the editor's attention CodeLens). */
  | { type: 'showAttention'; modulePath: string }
  /**
   * Diagnostics computed by the host with the user's thresholds, to colour the panel the same way, and the module
   * classes the source names where the export does not (`kinds`: path -> class), for the module table.
   */
  | { type: 'findings'; runId: number; findings: Finding[]; kinds?: Record<string, string> }
  /** The pinned run new runs are compared with, or null once cleared (sent after 'hello' and on every change). */
  | { type: 'baseline'; baseline: RunBaseline | null }
  /** Train N steps (cancel with 'cancel' and the same runId: the run stops after the current step). */
  | ({ type: 'train' } & TrainRequest)
  /** Show a training record that was imported from a file (e.g. written by python/gradlens_recorder.py). */
  | { type: 'showTraining'; record: SerializedTrainingRecord }
  | { type: 'verification'; view: VerificationView }
  /** A followed training stream: the whole record (append: false) or only the steps after those sent before (append: true). */
  | { type: 'liveTraining'; record: SerializedTrainingRecord; append: boolean; status: LiveStatus }
  /** The followed stream's state changed without new steps (ended, detached). */
  | { type: 'liveStatus'; status: LiveStatus }
  /**
   * A report the extension host's engine computed (the first Inspect runs there while the panel opens): shown
   * as if the panel had run it, with the settings it ran with. `report` is serializeReport text (keeps NaN and
   * ±Inf); the page checks it with parseShowReport (webviewMessages.ts) before showing it.
   */
  | { type: 'showReport'; runId: number; report: string; settings: RunSettings };

export type WebviewToHost =
  | { type: 'ready' }
  | { type: 'backend'; info: BackendInfo }
  | { type: 'progress'; runId: number; message: string }
  /** The report as serializeReport text (keeps NaN and ±Inf; the host checks it with parseReport). */
  | { type: 'report'; runId: number; report: string; phases?: RunPhases }
  | { type: 'runError'; runId: number; message: string }
  | { type: 'revealModule'; path: string }
  | { type: 'rerun'; settings: RunSettings }
  /** The panel's Pin / Clear baseline buttons. */
  | { type: 'baseline'; baseline: RunBaseline | null }
  /** The panel's Train button. */
  | { type: 'startTraining'; settings: RunSettings; train: TrainSettings }
  /** The record so far, after a step (throttled). */
  | { type: 'trainProgress'; runId: number; record: SerializedTrainingRecord }
  | { type: 'trainDone'; runId: number; record: SerializedTrainingRecord; stopped: TrainStop }
  | { type: 'error'; message: string }
  /** The panel's Verify button. */
  | { type: 'verify' }
  /** What a run with `capture` fed, used and computed (sent before its report). */
  | { type: 'capture'; runId: number; capture: RunCapture };

/**
 * `wasm`: the WebAssembly kernel bytes, fetched by the page (a worker started from a blob cannot fetch
 * webview resources itself), or why they could not be fetched.
 */
export type PageToWorker =
  | { type: 'probe'; backend: BackendChoice; wasm: ArrayBuffer | null; wasmError?: string }
  | ({ type: 'run' } & RunRequest)
  | ({ type: 'train' } & TrainRequest)
  /** Ends a training run after its current step (handled out of turn, the worker yields between steps). */
  | { type: 'stopTraining'; runId: number };

/** The extension host to its own engine worker (extension/hostEngine): an inspection, never a capture or training. */
export type HostToEngine = { type: 'run' } & RunRequest;

export type WorkerToPage =
  | { type: 'backend'; info: BackendInfo }
  | { type: 'progress'; runId: number; message: string }
  /** `backendMs`: how long the run waited for the backend selection before it started. */
  | { type: 'report'; runId: number; report: InspectionReport; backendMs?: number }
  | { type: 'runError'; runId: number; message: string }
  | { type: 'error'; message: string }
  | { type: 'trainProgress'; runId: number; record: TrainingRecord }
  | { type: 'trainDone'; runId: number; record: TrainingRecord; stopped: TrainStop }
  | { type: 'capture'; runId: number; capture: RunCapture };
