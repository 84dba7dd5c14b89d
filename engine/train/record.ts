/**
 * The training record: statistics per step and module over a run of optimiser steps, as plain JSON
 * (schema `gradient-lens/training@1`). The engine's trainer writes it, the Python recorder
 * (python/gradlens_recorder.py) writes the same schema from a PyTorch job, and the extension imports
 * either to draw the heat strip, the loss curve and the sparklines on source lines.
 * docs/training-schema.md documents the format for other writers.
 */
import type { SourceLocation } from '../inspect/report';

export const TRAINING_SCHEMA = 'gradient-lens/training@1';

/** A per-step series: one entry per recorded step; null where the value was not measured. */
export type Series = (number | null)[];

export interface OptimizerSettings {
  /** 'sgd' | 'adam' | 'adamw' (other writers may record other names). */
  kind: string;
  lr: number;
  momentum?: number;
  nesterov?: boolean;
  betas?: [number, number];
  eps?: number;
  weightDecay?: number;
  /** Gradient clipping: max total L2 norm (clip_grad_norm_) and/or max absolute value (clip_grad_value_). */
  clipNorm?: number;
  clipValue?: number;
}

export interface ModuleSeries {
  /** Module path as PyTorch names it ('blocks.0.attn'); '' is the whole model. */
  path: string;
  /** Class name when known ('Linear'). */
  kind?: string;
  /** Forward order of the module's first op (0 = nearest the input), for drawing layers top to bottom. */
  depth: number;
  /** True when no other recorded module lies below this one. */
  leaf: boolean;
  source?: SourceLocation;
  /** Combined L2 norm of the gradients of the trainable parameters under this module (before clipping). */
  gradNorm: Series;
  /** Combined L2 norm of those parameters, before the update. */
  paramNorm: Series;
  /** ‖Δθ‖ / ‖θ‖ of the update this step made, as stored in the parameters' dtype: updates below float32 resolution show as (near) 0. */
  updateRatio: Series;
  /** Mean, standard deviation and fraction of exact zeros of the module's output activation. */
  actMean: Series;
  actStd: Series;
  zeroFraction: Series;
}

export interface TrainingAnomaly {
  /** Step (1-based) at which the first NaN/Inf appeared; training stops there. */
  step: number;
  phase: 'forward' | 'backward' | 'update';
  /** ONNX node name, when the engine recorded it. */
  node?: string;
  modulePath: string;
  source?: SourceLocation;
  message: string;
}

export interface TrainingRecord {
  schema: typeof TRAINING_SCHEMA;
  /** Who wrote it, e.g. 'gradient-lens engine (wasm-simd)' or 'gradlens_recorder.py (torch 2.4.0)'. */
  producer: string;
  model: { name: string; /** The Python file the module paths belong to, when known. */ source?: string };
  optimizer: OptimizerSettings;
  /** Free-form run settings (seed, batch, data). */
  settings?: Record<string, string | number | boolean>;
  /** Step numbers of the recorded steps, as the producer numbered them (see stepBase). */
  steps: number[];
  /**
   * The number the producer gave the run's first optimiser step: 1 (absent: the recorder, the extension's
   * trainer), 0 (a 0-based counter such as Lightning's global_step), or null when the producer's numbering is
   * not known (a TensorBoard run without step 0). Step numbers are never shifted: they stay as the job's logs show them.
   */
  stepBase?: StepBase;
  /** Loss computed in each step's forward pass (before that step's update). */
  loss: Series;
  /** Total gradient norm over all trainable parameters before clipping. */
  gradNormTotal: Series;
  modules: ModuleSeries[];
  anomaly?: TrainingAnomaly;
  /** Written by a distributed job (python/gradlens_recorder.py under torchrun): the statistics combine every rank's. */
  distributed?: DistributedRun;
}

export type StepBase = 0 | 1 | null;

/** `stepBase` of a record or stream: absent means 1; anything but 0, 1 or null is an error. */
export function parseStepBase(v: unknown, where: string): StepBase {
  if (v === undefined) return 1;
  if (v === 0 || v === 1 || v === null) return v;
  throw new TrainingRecordError(`${where}: stepBase must be 0, 1 or null, got ${JSON.stringify(v)}`);
}

/**
 * Checks a step number against the run's numbering: a step 0 in a run that counts from 1 would be shown as a
 * step that never happened, so it is an error naming the fix rather than a silently mislabelled step.
 */
export function checkStepNumber(s: unknown, base: StepBase, where: string): number {
  if (typeof s !== 'number' || !Number.isInteger(s) || s < 0) throw new TrainingRecordError(`${where}: step must be a whole number >= 0, got ${JSON.stringify(s)}`);
  if (s === 0 && base === 1) throw new TrainingRecordError(`${where}: step 0, but this run's steps count from 1 (a 0-based counter such as Lightning's global_step: declare "stepBase": 0)`);
  return s;
}

/** How a record's step numbers read: '' when 1-based, else a short note for the hover and the panel. */
export function stepBaseNote(record: Pick<TrainingRecord, 'stepBase'>): string {
  if (record.stepBase === 0) return 'steps counted from 0';
  if (record.stepBase === null) return 'steps as logged';
  return '';
}

export interface DistributedRun {
  /** Ranks whose gradients, parameters, activations and losses the record combines. */
  worldSize: number;
  /** 'ddp' | 'fsdp' (v1) | 'fsdp2' (other writers may record other names). */
  strategy: string;
  /** torch.distributed backend ('nccl', 'gloo'). */
  backend?: string;
}

export class TrainingRecordError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TrainingRecordError';
  }
}

export const SERIES_KEYS = ['gradNorm', 'paramNorm', 'updateRatio', 'actMean', 'actStd', 'zeroFraction'] as const;

/**
 * JSON has no NaN or Infinity, and a training record must be able to hold them (that is when it is
 * most needed): non-finite numbers are written as the strings "NaN", "Infinity" and "-Infinity".
 */
/** NaN and ±Infinity as strings (JSON has no such numbers); shared with the inspection report's codec. */
export function encodeNumber(v: number | null): number | string | null {
  if (v === null || Number.isFinite(v)) return v;
  return Number.isNaN(v) ? 'NaN' : v > 0 ? 'Infinity' : '-Infinity';
}

export function decodeNumber(v: unknown, where: string): number | null {
  if (v === null || typeof v === 'number') return v;
  if (v === 'NaN') return NaN;
  if (v === 'Infinity') return Infinity;
  if (v === '-Infinity') return -Infinity;
  throw new TrainingRecordError(`${where}: expected a number, null, "NaN", "Infinity" or "-Infinity", got ${JSON.stringify(v)}`);
}

export function serializeTrainingRecord(record: TrainingRecord): string {
  return JSON.stringify(record, (_key, value) => (typeof value === 'number' ? encodeNumber(value) : value));
}

export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function series(v: unknown, length: number, where: string): Series {
  if (!Array.isArray(v)) throw new TrainingRecordError(`${where}: expected an array with one entry per step`);
  if (v.length !== length) throw new TrainingRecordError(`${where}: has ${v.length} entries but the record has ${length} steps`);
  return v.map((x, i) => decodeNumber(x, `${where}[${i}]`));
}

export function parseSource(v: unknown, where: string): SourceLocation | undefined {
  if (v === undefined || v === null) return undefined;
  if (!isObject(v) || typeof v.file !== 'string' || typeof v.line !== 'number' || !Number.isInteger(v.line) || v.line < 1) {
    throw new TrainingRecordError(`${where}: expected {file: string, line: positive integer}`);
  }
  return { file: v.file, line: v.line };
}

/** Parses and validates a training record; errors name the field at fault. */
export function parseTrainingRecord(text: string, origin = 'training record'): TrainingRecord {
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (err) {
    throw new TrainingRecordError(`${origin} is not valid JSON: ${err instanceof Error ? err.message : String(err)}`);
  }
  if (!isObject(raw)) throw new TrainingRecordError(`${origin}: expected a JSON object`);
  if (raw.schema !== TRAINING_SCHEMA) {
    throw new TrainingRecordError(`${origin}: schema is ${JSON.stringify(raw.schema)}, expected "${TRAINING_SCHEMA}"`);
  }
  if (!Array.isArray(raw.steps)) throw new TrainingRecordError(`${origin}: steps must be an array of step numbers`);
  const stepBase = parseStepBase(raw.stepBase, origin);
  raw.steps.forEach((s, i) => checkStepNumber(s, stepBase, `${origin}: steps[${i}]`));
  const n = raw.steps.length;
  if (!isObject(raw.model) || typeof raw.model.name !== 'string') throw new TrainingRecordError(`${origin}: model.name is missing`);
  if (!isObject(raw.optimizer) || typeof raw.optimizer.kind !== 'string' || typeof raw.optimizer.lr !== 'number') {
    throw new TrainingRecordError(`${origin}: optimizer needs a kind (string) and lr (number)`);
  }
  if (!Array.isArray(raw.modules)) throw new TrainingRecordError(`${origin}: modules must be an array`);
  const modules = raw.modules.map((m, i): ModuleSeries => {
    const where = `${origin}: modules[${i}]`;
    if (!isObject(m) || typeof m.path !== 'string') throw new TrainingRecordError(`${where}: path (string) is missing`);
    const at = `${where} (${m.path || '<model>'})`;
    const out: ModuleSeries = {
      path: m.path,
      kind: typeof m.kind === 'string' ? m.kind : undefined,
      depth: typeof m.depth === 'number' ? m.depth : i,
      leaf: typeof m.leaf === 'boolean' ? m.leaf : true,
      source: parseSource(m.source, `${at}.source`),
    } as ModuleSeries;
    for (const key of SERIES_KEYS) out[key] = m[key] === undefined ? new Array(n).fill(null) : series(m[key], n, `${at}.${key}`);
    return out;
  });
  const anomaly = raw.anomaly === undefined || raw.anomaly === null ? undefined : parseAnomaly(raw.anomaly, `${origin}: anomaly`, stepBase);
  const optimizer = { ...(raw.optimizer as Record<string, unknown>) } as unknown as OptimizerSettings;
  return {
    schema: TRAINING_SCHEMA,
    producer: typeof raw.producer === 'string' ? raw.producer : 'unknown',
    model: { name: raw.model.name, source: typeof raw.model.source === 'string' ? raw.model.source : undefined },
    optimizer,
    settings: isObject(raw.settings) ? (raw.settings as TrainingRecord['settings']) : undefined,
    steps: raw.steps as number[],
    ...(stepBase === 1 ? {} : { stepBase }),
    loss: series(raw.loss, n, `${origin}: loss`),
    gradNormTotal: raw.gradNormTotal === undefined ? new Array(n).fill(null) : series(raw.gradNormTotal, n, `${origin}: gradNormTotal`),
    modules,
    anomaly,
    distributed: raw.distributed === undefined || raw.distributed === null ? undefined : parseDistributed(raw.distributed, `${origin}: distributed`),
  };
}

export function parseAnomaly(a: unknown, where: string, stepBase: StepBase = 1): TrainingAnomaly {
  if (!isObject(a) || typeof a.step !== 'number' || typeof a.modulePath !== 'string' || !['forward', 'backward', 'update'].includes(a.phase as string)) {
    throw new TrainingRecordError(`${where} needs step, phase ('forward' | 'backward' | 'update') and modulePath`);
  }
  checkStepNumber(a.step, stepBase, `${where}.step`);
  return {
    step: a.step,
    phase: a.phase as TrainingAnomaly['phase'],
    node: typeof a.node === 'string' ? a.node : undefined,
    modulePath: a.modulePath,
    source: parseSource(a.source, `${where}.source`),
    message: typeof a.message === 'string' ? a.message : 'NaN or Inf',
  };
}

export function parseDistributed(d: unknown, where: string): DistributedRun {
  if (!isObject(d) || typeof d.worldSize !== 'number' || !Number.isInteger(d.worldSize) || d.worldSize < 1 || typeof d.strategy !== 'string') {
    throw new TrainingRecordError(`${where} needs worldSize (a positive integer) and strategy (string)`);
  }
  return { worldSize: d.worldSize, strategy: d.strategy, backend: typeof d.backend === 'string' ? d.backend : undefined };
}
