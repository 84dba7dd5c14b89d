/**
 * Every message from the webview is checked against the protocol before the host uses it: the webview
 * renders names and strings from a model the user did not write, so the host treats what it sends as
 * untrusted input. A message that does not fit is refused with a ReportFormatError naming the field.
 * No vscode import (tested in Node: test/webviewMessages.test.ts).
 */
import { check, parseReport, ReportFormatError } from '../engine/inspect/reportCodec';
import type { InspectionReport } from '../engine/inspect/report';
import type { CapturedTensor, RunCapture } from '../engine/inspect/capture';
import { parseBaseline } from '../engine/inspect/baseline';
import type { BackendChoice, BackendInfo, LossChoice, OptimizerChoice, RunPhases, RunSettings, TrainSettings, TrainStop, WebviewToHost } from './protocol';

export { ReportFormatError };

const { fail, obj, str, num, count, bool } = check;

/** Messages (progress, errors) are shown to the user: one line, bounded. */
const MAX_MESSAGE = 2000;

const LOSSES: readonly LossChoice[] = ['auto', 'cross-entropy', 'next-token', 'mse', 'model'];
const BACKENDS: readonly BackendChoice[] = ['auto', 'webgpu', 'wasm', 'typescript'];
const OPTIMIZERS: readonly OptimizerChoice[] = ['sgd', 'adam', 'adamw'];
const DATA: readonly TrainSettings['data'][] = ['fixed', 'fresh', 'text'];
const STOPS: readonly TrainStop[] = ['done', 'cancelled', 'anomaly'];

function oneOf<T extends string>(v: unknown, allowed: readonly T[], where: string): T {
  if (typeof v !== 'string' || !(allowed as readonly string[]).includes(v)) fail(where, `expected one of ${allowed.map((a) => `"${a}"`).join(', ')}`);
  return v as T;
}

function int(v: unknown, where: string, min: number, max = Number.MAX_SAFE_INTEGER): number {
  const n = count(v, where);
  if (n < min || n > max) fail(where, `expected an integer from ${min} to ${max}, got ${n}`);
  return n;
}

function finite(v: unknown, where: string, min: number): number {
  const n = num(v, where);
  if (!Number.isFinite(n) || n < min) fail(where, `expected a finite number of at least ${min}, got ${n}`);
  return n;
}

function text(v: unknown, where: string): string {
  if (typeof v !== 'string') return fail(where, 'expected a string');
  return v.length > MAX_MESSAGE ? `${v.slice(0, MAX_MESSAGE)}…` : v;
}

export function parseRunSettings(v: unknown, where = 'settings'): RunSettings {
  const o = obj(v, where);
  return {
    seed: int(o.seed, `${where}.seed`, 0),
    batch: int(o.batch, `${where}.batch`, 1, 1 << 20),
    sequenceLength: int(o.sequenceLength, `${where}.sequenceLength`, 1, 1 << 24),
    loss: oneOf(o.loss, LOSSES, `${where}.loss`),
    backend: oneOf(o.backend, BACKENDS, `${where}.backend`),
    dtype: oneOf(o.dtype, ['float32', 'float64'] as const, `${where}.dtype`),
    attentionSample: int(o.attentionSample, `${where}.attentionSample`, 0),
    // Settings saved by a panel from before the setting existed have none: the default.
    mode: o.mode === undefined ? 'train' : oneOf(o.mode, ['train', 'eval'] as const, `${where}.mode`),
  };
}

export function parseTrainSettings(v: unknown, where = 'train'): TrainSettings {
  const o = obj(v, where);
  return {
    steps: int(o.steps, `${where}.steps`, 1, 100_000),
    optimizer: oneOf(o.optimizer, OPTIMIZERS, `${where}.optimizer`),
    lr: finite(o.lr, `${where}.lr`, 0),
    momentum: finite(o.momentum, `${where}.momentum`, 0),
    weightDecay: finite(o.weightDecay, `${where}.weightDecay`, 0),
    clipNorm: finite(o.clipNorm, `${where}.clipNorm`, 0),
    clipValue: finite(o.clipValue, `${where}.clipValue`, 0),
    data: oneOf(o.data, DATA, `${where}.data`),
  };
}

function backendInfo(v: unknown, where: string): BackendInfo {
  const o = obj(v, where);
  return {
    name: str(o.name, `${where}.name`),
    reason: text(o.reason, `${where}.reason`),
    webgpuAdapter: o.webgpuAdapter === null ? null : str(o.webgpuAdapter, `${where}.webgpuAdapter`),
    wasmSimd: bool(o.wasmSimd, `${where}.wasmSimd`),
  };
}

function phases(v: unknown, where: string): RunPhases {
  const o = obj(v, where);
  return { workerStartMs: finite(o.workerStartMs, `${where}.workerStartMs`, 0), backendMs: finite(o.backendMs, `${where}.backendMs`, 0), pageMs: finite(o.pageMs, `${where}.pageMs`, 0) };
}

/** A webview message as the host may use it; `report` arrives as serializeReport text and leaves parsed. */
export type CheckedWebviewMessage =
  | Exclude<WebviewToHost, { type: 'report' }>
  | { type: 'report'; runId: number; report: InspectionReport; phases?: RunPhases };

/**
 * Checks one message from the webview against the protocol. Throws ReportFormatError naming the first
 * field that does not fit. Training records stay JSON text here: the host parses them with
 * parseTrainingRecord, which checks every field.
 */
export function parseWebviewMessage(raw: unknown): CheckedWebviewMessage {
  const m = obj(raw, 'message');
  // Runs the host starts get positive ids; Verify's repeat runs (runCaptured) negative ones.
  const runId = () => {
    const id = num(m.runId, 'message.runId');
    if (!Number.isSafeInteger(id) || id === 0) fail('message.runId', `expected a non-zero integer, got ${id}`);
    return id;
  };
  switch (m.type) {
    case 'ready':
      return { type: 'ready' };
    case 'backend':
      return { type: 'backend', info: backendInfo(m.info, 'message.info') };
    case 'progress':
      return { type: 'progress', runId: runId(), message: text(m.message, 'message.message') };
    case 'report':
      return { type: 'report', runId: runId(), report: parseReport(m.report, 'message.report'), phases: m.phases === undefined ? undefined : phases(m.phases, 'message.phases') };
    case 'baseline': {
      if (m.baseline === null) return { type: 'baseline', baseline: null };
      const baseline = parseBaseline(m.baseline);
      return baseline ? { type: 'baseline', baseline } : fail('message.baseline', 'not a run baseline');
    }
    case 'runError':
      return { type: 'runError', runId: runId(), message: text(m.message, 'message.message') };
    case 'revealModule':
      return { type: 'revealModule', path: str(m.path, 'message.path') };
    case 'rerun':
      return { type: 'rerun', settings: parseRunSettings(m.settings, 'message.settings') };
    case 'startTraining':
      return { type: 'startTraining', settings: parseRunSettings(m.settings, 'message.settings'), train: parseTrainSettings(m.train, 'message.train') };
    case 'trainProgress':
      return { type: 'trainProgress', runId: runId(), record: recordText(m.record, 'message.record') };
    case 'trainDone':
      return { type: 'trainDone', runId: runId(), record: recordText(m.record, 'message.record'), stopped: oneOf(m.stopped, STOPS, 'message.stopped') };
    case 'error':
      return { type: 'error', message: text(m.message, 'message.message') };
    case 'verify':
      return { type: 'verify' };
    case 'capture':
      return { type: 'capture', runId: runId(), capture: runCapture(m.capture, 'message.capture') };
    default:
      return fail('message.type', `unknown message type ${typeof m.type === 'string' ? `"${m.type.slice(0, 40)}"` : typeof m.type}`);
  }
}

/**
 * The host's 'showReport' message as the page may use it: a report the extension host's engine computed. The page
 * checks it like the host checks the page's reports (parseReport: every field, NaN and ±Inf kept), so a report
 * drawn in the panel went through the same validation whichever engine made it.
 */
export function parseShowReport(raw: unknown): { runId: number; report: InspectionReport; settings: RunSettings } {
  const m = obj(raw, 'message');
  if (m.type !== 'showReport') fail('message.type', 'expected "showReport"');
  const id = num(m.runId, 'message.runId');
  if (!Number.isSafeInteger(id) || id <= 0) fail('message.runId', `expected a positive integer, got ${id}`);
  return { runId: id, report: parseReport(m.report, 'message.report'), settings: parseRunSettings(m.settings, 'message.settings') };
}

/** A serialized training record: JSON text of any length (parseTrainingRecord checks its content). */
function recordText(v: unknown, where: string): string {
  if (typeof v !== 'string') return fail(where, 'expected the record as JSON text');
  return v;
}

const TENSOR_DTYPES = ['float32', 'float64', 'int32', 'bool'] as const;

/** A captured tensor: name, dtype, shape, and data with exactly as many numbers as the shape holds. */
function capturedTensor(v: unknown, where: string): CapturedTensor {
  const o = obj(v, where);
  const shape = Array.isArray(o.shape) ? o.shape.map((d, i) => count(d, `${where}.shape[${i}]`)) : fail(where + '.shape', 'expected an array');
  const size = shape.reduce((a, b) => a * b, 1);
  const data = o.data;
  const length = ArrayBuffer.isView(data) && !(data instanceof DataView) ? (data as unknown as ArrayLike<number>).length : Array.isArray(data) ? data.length : fail(`${where}.data`, 'expected a typed array or an array of numbers');
  if (length !== size) fail(`${where}.data`, `expected ${size} values for shape [${shape.join(', ')}], got ${length}`);
  return { name: str(o.name, `${where}.name`), dtype: oneOf(o.dtype, TENSOR_DTYPES, `${where}.dtype`), shape, data: data as CapturedTensor['data'] };
}

function tensors(v: unknown, where: string): CapturedTensor[] {
  return Array.isArray(v) ? v.map((t, i) => capturedTensor(t, `${where}[${i}]`)) : fail(where, 'expected an array');
}

/** What a capture run fed, used and computed (Verify against PyTorch writes it to a file for the Python helper). */
function runCapture(v: unknown, where: string): RunCapture {
  const o = obj(v, where);
  const loss = obj(o.loss, `${where}.loss`);
  const nodes = Array.isArray(o.dropoutNodes) ? o.dropoutNodes : fail(`${where}.dropoutNodes`, 'expected an array');
  return {
    ...(o as unknown as RunCapture),
    dtype: oneOf(o.dtype, ['float32', 'float64'] as const, `${where}.dtype`),
    mode: oneOf(o.mode, ['train', 'eval'] as const, `${where}.mode`),
    inputs: tensors(o.inputs, `${where}.inputs`),
    outputs: Array.isArray(o.outputs) ? o.outputs.map((x, i) => str(x, `${where}.outputs[${i}]`)) : fail(`${where}.outputs`, 'expected an array'),
    loss: { ...(loss as unknown as RunCapture['loss']), value: num(loss.value, `${where}.loss.value`), targets: loss.targets === null ? null : capturedTensor(loss.targets, `${where}.loss.targets`) },
    values: tensors(o.values, `${where}.values`),
    gradients: tensors(o.gradients, `${where}.gradients`),
    dropout: tensors(o.dropout, `${where}.dropout`),
    dropoutNodes: nodes.map((n, i) => {
      const x = obj(n, `${where}.dropoutNodes[${i}]`);
      return { name: str(x.name, `${where}.dropoutNodes[${i}].name`), dropped: bool(x.dropped, `${where}.dropoutNodes[${i}].dropped`) };
    }),
  };
}
