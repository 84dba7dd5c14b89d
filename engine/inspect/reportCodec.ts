/**
 * The inspection report as it crosses from the webview to the extension host: JSON text that keeps NaN
 * and ±Infinity (plain JSON would turn them into null, and a NaN loss would read as "no value"), without
 * the attention matrices (the panel keeps those; the host needs only their layer and module). parseReport
 * checks every field the host reads, so a report from a compromised or buggy webview is refused with a
 * message instead of being drawn on the user's source.
 */
import { decodeNumber, encodeNumber } from '../train/record';
import type { HookLogEntry, InspectionReport, ModuleReport, ParameterReport, SourceLocation } from './report';
import { REPORT_SCHEMA } from './report';
import type { TensorStats } from './stats';
import type { AttentionCapture } from './attention';
import { EXPORT_NOTE_KINDS, type ExportNote } from '../onnx/identity';

export class ReportFormatError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ReportFormatError';
  }
}

/** Report -> JSON text (NaN/±Infinity as strings; attention matrices left out). */
export function serializeReport(report: InspectionReport): string {
  return JSON.stringify(report, (key, value) => {
    if (typeof value === 'number') return encodeNumber(value);
    if (ArrayBuffer.isView(value)) return undefined;
    return value;
  });
}

/** Limits for strings and lists from the webview: far above any real report, far below harm. */
const MAX_STRING = 4096;
const MAX_LIST = 1_000_000;

type Json = Record<string, unknown>;

function fail(where: string, what: string): never {
  throw new ReportFormatError(`${where}: ${what}`);
}

function obj(v: unknown, where: string): Json {
  if (typeof v !== 'object' || v === null || Array.isArray(v)) fail(where, 'expected an object');
  return v as Json;
}

function str(v: unknown, where: string): string {
  if (typeof v !== 'string') fail(where, 'expected a string');
  if (v.length > MAX_STRING) fail(where, `string longer than ${MAX_STRING} characters`);
  return v;
}

function optStr(v: unknown, where: string): string | undefined {
  return v === undefined ? undefined : str(v, where);
}

function num(v: unknown, where: string): number {
  let n: number | null;
  try {
    n = decodeNumber(v, where);
  } catch (e) {
    return fail(where, (e as Error).message.replace(`${where}: `, ''));
  }
  if (n === null) fail(where, 'expected a number, got null');
  return n;
}

function nullableNum(v: unknown, where: string): number | null {
  return v === null ? null : num(v, where);
}

function count(v: unknown, where: string): number {
  const n = num(v, where);
  if (!Number.isSafeInteger(n) || n < 0) fail(where, `expected a non-negative integer, got ${n}`);
  return n;
}

function bool(v: unknown, where: string): boolean {
  if (typeof v !== 'boolean') fail(where, 'expected true or false');
  return v;
}

function list<T>(v: unknown, where: string, item: (x: unknown, at: string) => T): T[] {
  if (!Array.isArray(v)) fail(where, 'expected an array');
  if (v.length > MAX_LIST) fail(where, `more than ${MAX_LIST} entries`);
  return v.map((x, i) => item(x, `${where}[${i}]`));
}

function shape(v: unknown, where: string): number[] {
  return list(v, where, count);
}

function source(v: unknown, where: string): SourceLocation | undefined {
  if (v === undefined) return undefined;
  const o = obj(v, where);
  const line = count(o.line, `${where}.line`);
  return { file: str(o.file, `${where}.file`), line };
}

function stats(v: unknown, where: string): TensorStats {
  const o = obj(v, where);
  const h = obj(o.histogram, `${where}.histogram`);
  return {
    count: count(o.count, `${where}.count`),
    norm: num(o.norm, `${where}.norm`),
    mean: num(o.mean, `${where}.mean`),
    std: num(o.std, `${where}.std`),
    min: num(o.min, `${where}.min`),
    max: num(o.max, `${where}.max`),
    zeroFraction: num(o.zeroFraction, `${where}.zeroFraction`),
    nanCount: count(o.nanCount, `${where}.nanCount`),
    infCount: count(o.infCount, `${where}.infCount`),
    histogram: { log10Edges: list(h.log10Edges, `${where}.histogram.log10Edges`, num), counts: list(h.counts, `${where}.histogram.counts`, count) },
  };
}

function nullableStats(v: unknown, where: string): TensorStats | null {
  return v === null ? null : stats(v, where);
}

function parameter(v: unknown, where: string): ParameterReport {
  const o = obj(v, where);
  return {
    name: str(o.name, `${where}.name`),
    shape: shape(o.shape, `${where}.shape`),
    trainable: bool(o.trainable, `${where}.trainable`),
    grad: nullableStats(o.grad, `${where}.grad`),
    valueNorm: num(o.valueNorm, `${where}.valueNorm`),
    gradToWeight: nullableNum(o.gradToWeight, `${where}.gradToWeight`),
    zeroReason: optStr(o.zeroReason, `${where}.zeroReason`),
    tiedTo: optStr(o.tiedTo, `${where}.tiedTo`),
  };
}

function moduleReport(v: unknown, where: string): ModuleReport {
  const o = obj(v, where);
  return {
    path: str(o.path, `${where}.path`),
    depth: num(o.depth, `${where}.depth`),
    leaf: bool(o.leaf, `${where}.leaf`),
    kind: str(o.kind, `${where}.kind`),
    source: source(o.source, `${where}.source`),
    parameters: list(o.parameters, `${where}.parameters`, parameter),
    parameterCount: count(o.parameterCount, `${where}.parameterCount`),
    gradNorm: nullableNum(o.gradNorm, `${where}.gradNorm`),
    gradRms: nullableNum(o.gradRms, `${where}.gradRms`),
    weightNorm: nullableNum(o.weightNorm, `${where}.weightNorm`),
    gradToWeight: nullableNum(o.gradToWeight, `${where}.gradToWeight`),
    outputShape: o.outputShape === null ? null : shape(o.outputShape, `${where}.outputShape`),
    activation: nullableStats(o.activation, `${where}.activation`),
    outputGrad: nullableStats(o.outputGrad, `${where}.outputGrad`),
    deadUnitFraction: nullableNum(o.deadUnitFraction, `${where}.deadUnitFraction`),
  };
}

function hookLog(v: unknown, where: string): HookLogEntry {
  const o = obj(v, where);
  return {
    target: str(o.target, `${where}.target`),
    modulePath: str(o.modulePath, `${where}.modulePath`),
    source: source(o.source, `${where}.source`),
    order: count(o.order, `${where}.order`),
    shape: shape(o.shape, `${where}.shape`),
    grad: stats(o.grad, `${where}.grad`),
  };
}

/** Attention captures without their matrices (empty arrays on the host). */
function exportNote(v: unknown, where: string): ExportNote {
  const o = obj(v, where);
  const kind = EXPORT_NOTE_KINDS.find((k) => k === o.kind) ?? fail(`${where}.kind`, `expected one of ${EXPORT_NOTE_KINDS.join(', ')}`);
  return {
    modulePath: str(o.modulePath, `${where}.modulePath`),
    kind,
    parameters: list(o.parameters, `${where}.parameters`, str),
    restored: bool(o.restored, `${where}.restored`),
    message: str(o.message, `${where}.message`),
  };
}

function attentionMeta(v: unknown, where: string): AttentionCapture {
  const o = obj(v, where);
  return {
    layer: count(o.layer, `${where}.layer`),
    modulePath: str(o.modulePath, `${where}.modulePath`),
    node: str(o.node, `${where}.node`),
    source: source(o.source, `${where}.source`),
    sample: count(o.sample, `${where}.sample`),
    heads: count(o.heads, `${where}.heads`),
    queries: count(o.queries, `${where}.queries`),
    keys: count(o.keys, `${where}.keys`),
    P: new Float32Array(0),
    dP: new Float32Array(0),
    dS: new Float32Array(0),
    summaries: list(o.summaries, `${where}.summaries`, (s, at) => {
      const x = obj(s, at);
      return { entropy: num(x.entropy, `${at}.entropy`), maxWeight: num(x.maxWeight, `${at}.maxWeight`), gradNorm: num(x.gradNorm, `${at}.gradNorm`) };
    }),
  };
}

/** The field checks, for the other messages that cross from the webview (extension/webviewMessages.ts). */
export const check = { fail, obj, str, optStr, num, count, bool, list };

/** JSON text from serializeReport -> a checked report. Throws ReportFormatError naming the first bad field. */
export function parseReport(text: unknown, origin = 'report'): InspectionReport {
  if (typeof text !== 'string') fail(origin, 'expected the report as JSON text');
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    return fail(origin, `not valid JSON (${(e as Error).message})`);
  }
  const o = obj(raw, origin);
  if (o.schema !== REPORT_SCHEMA) fail(`${origin}.schema`, `expected "${REPORT_SCHEMA}"`);
  const model = obj(o.model, `${origin}.model`);
  const settings = obj(o.settings, `${origin}.settings`);
  const loss = obj(o.loss, `${origin}.loss`);
  const timings = obj(o.timings, `${origin}.timings`);
  const dtype = o.dtype;
  if (dtype !== 'float32' && dtype !== 'float64') fail(`${origin}.dtype`, 'expected "float32" or "float64"');
  const first = o.firstNonFinite === undefined || o.firstNonFinite === null ? undefined : obj(o.firstNonFinite, `${origin}.firstNonFinite`);
  const memory = o.memory === undefined ? undefined : obj(o.memory, `${origin}.memory`);
  const tokens = o.tokens === undefined ? undefined : obj(o.tokens, `${origin}.tokens`);
  return {
    schema: REPORT_SCHEMA,
    model: {
      name: str(model.name, `${origin}.model.name`),
      producer: optStr(model.producer, `${origin}.model.producer`),
      opset: model.opset === undefined ? undefined : count(model.opset, `${origin}.model.opset`),
      parameterCount: count(model.parameterCount, `${origin}.model.parameterCount`),
    },
    backend: str(o.backend, `${origin}.backend`),
    dtype,
    mode: o.mode === undefined ? undefined : o.mode === 'train' || o.mode === 'eval' ? o.mode : fail(`${origin}.mode`, 'expected "train" or "eval"'),
    settings: {
      seed: num(settings.seed, `${origin}.settings.seed`),
      batch: count(settings.batch, `${origin}.settings.batch`),
      sequenceLength: settings.sequenceLength === undefined ? undefined : count(settings.sequenceLength, `${origin}.settings.sequenceLength`),
      loss: str(settings.loss, `${origin}.settings.loss`),
    },
    loss: { kind: str(loss.kind, `${origin}.loss.kind`), value: num(loss.value, `${origin}.loss.value`), note: optStr(loss.note, `${origin}.loss.note`) },
    noGradient: optStr(o.noGradient, `${origin}.noGradient`),
    timings: { forwardMs: num(timings.forwardMs, `${origin}.timings.forwardMs`), backwardMs: num(timings.backwardMs, `${origin}.timings.backwardMs`) },
    memory: memory && {
      peak: num(memory.peak, `${origin}.memory.peak`),
      parameters: num(memory.parameters, `${origin}.memory.parameters`),
      gradients: num(memory.gradients, `${origin}.memory.gradients`),
      activations: num(memory.activations, `${origin}.memory.activations`),
      budget: nullableNum(memory.budget, `${origin}.memory.budget`),
    },
    warnings: o.warnings === undefined ? undefined : list(o.warnings, `${origin}.warnings`, str),
    modules: list(o.modules, `${origin}.modules`, moduleReport),
    hookLogs: list(o.hookLogs, `${origin}.hookLogs`, hookLog),
    attention: o.attention === undefined ? undefined : list(o.attention, `${origin}.attention`, attentionMeta),
    // What the export did to parameters: the warnings on module lines are made from these on the extension's side.
    exportNotes: o.exportNotes === undefined ? undefined : list(o.exportNotes, `${origin}.exportNotes`, exportNote),
    tokens: tokens && {
      ids: list(tokens.ids, `${origin}.tokens.ids`, num),
      labels: tokens.labels === undefined ? undefined : list(tokens.labels, `${origin}.tokens.labels`, str),
    },
    firstNonFinite: first && {
      node: str(first.node, `${origin}.firstNonFinite.node`),
      modulePath: str(first.modulePath, `${origin}.firstNonFinite.modulePath`),
      phase: first.phase === 'forward' || first.phase === 'backward' ? first.phase : fail(`${origin}.firstNonFinite.phase`, 'expected "forward" or "backward"'),
      source: source(first.source, `${origin}.firstNonFinite.source`),
    },
  };
}
