/**
 * The training stream (`gradient-lens/training-stream@1`, docs/training-stream.md): the record a job
 * appends to as it runs, one JSON object per line, flushed after every recorded step. A job killed at any
 * moment leaves every complete line readable; the extension follows a growing stream live.
 *
 * TrainingStreamReader takes bytes as they arrive (any chunking: a line split across reads waits for its
 * newline) and keeps the record so far; parseTrainingStream reads a whole file.
 */
import type { SourceLocation } from '../inspect/report';
import {
  checkStepNumber, decodeNumber, isObject, ModuleSeries, parseAnomaly, parseDistributed, parseSource, parseStepBase, Series, SERIES_KEYS,
  TRAINING_SCHEMA, TrainingRecord, TrainingRecordError,
} from './record';

export const TRAINING_STREAM_SCHEMA = 'gradient-lens/training-stream@1';

/** True when a file's first line is a stream's start line. */
export function looksLikeTrainingStream(head: string): boolean {
  const end = head.indexOf('\n');
  return (end < 0 ? head : head.slice(0, end)).includes(TRAINING_STREAM_SCHEMA);
}

const NEWLINE = 0x0a;

export class TrainingStreamReader {
  private record_: TrainingRecord | null = null;
  /** The modules in the start line's order: the order of every step line's arrays. */
  private order: ModuleSeries[] = [];
  private pending: Uint8Array = new Uint8Array(0);
  private readonly decoder = new TextDecoder();
  /** Complete lines read so far. */
  lines = 0;
  /** The job wrote its end line (close()): no more steps will come. */
  ended = false;
  /** The job's clock (seconds since 1970) at its last step line, when it wrote one. */
  lastStepTime: number | null = null;
  /** Changes when module depths or source lines change (the record must be mapped onto the source again). */
  layoutVersion = 0;

  constructor(readonly origin = 'training stream') {}

  /** The record so far: null until the start line arrived. Its series grow in place as steps arrive. */
  get record(): TrainingRecord | null {
    return this.record_;
  }

  /** Bytes after the last newline: a line still being written, or torn by a killed job. */
  get tornBytes(): number {
    return this.pending.length;
  }

  /** Steps recorded so far. */
  get stepCount(): number {
    return this.record_?.steps.length ?? 0;
  }

  /** Reads the complete lines in `bytes` (after what came before); returns how many steps they added. */
  push(bytes: Uint8Array): number {
    const before = this.stepCount;
    let data = bytes;
    if (this.pending.length) {
      data = new Uint8Array(this.pending.length + bytes.length);
      data.set(this.pending);
      data.set(bytes, this.pending.length);
    }
    let start = 0;
    for (let i = data.indexOf(NEWLINE); i >= 0; i = data.indexOf(NEWLINE, start)) {
      this.line(this.decoder.decode(data.subarray(start, i)));
      start = i + 1;
    }
    this.pending = data.slice(start);
    return this.stepCount - before;
  }

  private line(text: string): void {
    this.lines++;
    if (text.trim() === '') return;
    const where = `${this.origin}:${this.lines}`;
    let obj: unknown;
    try {
      obj = JSON.parse(text);
    } catch (err) {
      throw new TrainingRecordError(`${where}: not valid JSON (${err instanceof Error ? err.message : String(err)})`);
    }
    if (!isObject(obj)) throw new TrainingRecordError(`${where}: expected a JSON object`);
    if (this.ended) throw new TrainingRecordError(`${where}: a line after the end line`);
    if (!this.record_) {
      if (obj.type !== 'start') throw new TrainingRecordError(`${where}: the first line must be the start line ({"type": "start", "schema": "${TRAINING_STREAM_SCHEMA}", ...}), got type ${JSON.stringify(obj.type)}`);
      this.record_ = start(obj, where);
      this.order = [...this.record_.modules];
      return;
    }
    switch (obj.type) {
      case 'start':
        throw new TrainingRecordError(`${where}: a second start line (one stream holds one run)`);
      case 'layout':
        layout(this.record_, this.order, obj, where);
        this.layoutVersion++;
        break;
      case 'step':
        step(this.record_, this.order, obj, where);
        if (typeof obj.time === 'number') this.lastStepTime = obj.time;
        break;
      case 'anomaly':
        this.record_.anomaly ??= parseAnomaly(obj, `${where}: anomaly`, this.record_.stepBase ?? 1);
        break;
      case 'end':
        this.ended = true;
        break;
      default:
        break; // unknown line types are for newer readers
    }
  }
}

function start(obj: Record<string, unknown>, where: string): TrainingRecord {
  if (obj.schema !== TRAINING_STREAM_SCHEMA) throw new TrainingRecordError(`${where}: schema is ${JSON.stringify(obj.schema)}, expected "${TRAINING_STREAM_SCHEMA}"`);
  if (!isObject(obj.model) || typeof obj.model.name !== 'string') throw new TrainingRecordError(`${where}: model.name is missing`);
  if (!isObject(obj.optimizer) || typeof obj.optimizer.kind !== 'string' || typeof obj.optimizer.lr !== 'number') {
    throw new TrainingRecordError(`${where}: optimizer needs a kind (string) and lr (number)`);
  }
  if (!Array.isArray(obj.modules)) throw new TrainingRecordError(`${where}: modules must be an array`);
  const stepBase = parseStepBase(obj.stepBase, where);
  const modules = obj.modules.map((m, i): ModuleSeries => {
    if (!isObject(m) || typeof m.path !== 'string') throw new TrainingRecordError(`${where}: modules[${i}]: path (string) is missing`);
    return {
      path: m.path,
      kind: typeof m.kind === 'string' ? m.kind : undefined,
      depth: i,
      leaf: typeof m.leaf === 'boolean' ? m.leaf : true,
      gradNorm: [], paramNorm: [], updateRatio: [], actMean: [], actStd: [], zeroFraction: [],
    };
  });
  return {
    schema: TRAINING_SCHEMA,
    producer: typeof obj.producer === 'string' ? obj.producer : 'unknown',
    model: { name: obj.model.name, source: typeof obj.model.source === 'string' ? obj.model.source : undefined },
    optimizer: { ...obj.optimizer } as unknown as TrainingRecord['optimizer'],
    settings: isObject(obj.settings) ? (obj.settings as TrainingRecord['settings']) : undefined,
    steps: [],
    ...(stepBase === 1 ? {} : { stepBase }),
    loss: [],
    gradNormTotal: [],
    modules,
    distributed: obj.distributed === undefined || obj.distributed === null ? undefined : parseDistributed(obj.distributed, `${where}: distributed`),
  };
}

/** Module positions follow the start line's order; a layout line sets depth and source per module. */
function layout(record: TrainingRecord, byStart: ModuleSeries[], obj: Record<string, unknown>, where: string): void {
  const n = byStart.length;
  if (obj.depth !== undefined) {
    const depth = obj.depth;
    if (!Array.isArray(depth) || depth.length !== n || !depth.every((d) => typeof d === 'number')) {
      throw new TrainingRecordError(`${where}: layout.depth must hold one number per module (${n})`);
    }
    byStart.forEach((m, i) => (m.depth = depth[i] as number));
  }
  if (obj.source !== undefined) {
    if (!Array.isArray(obj.source) || obj.source.length !== n) throw new TrainingRecordError(`${where}: layout.source must hold one entry per module (${n})`);
    const sources = obj.source.map((s, i): SourceLocation | undefined => parseSource(s, `${where}: layout.source[${i}]`));
    byStart.forEach((m, i) => (m.source = sources[i]));
  }
  // The record lists modules in forward order, as the JSON writer does.
  record.modules.sort((a, b) => a.depth - b.depth);
}

function step(record: TrainingRecord, modules: ModuleSeries[], obj: Record<string, unknown>, where: string): void {
  const s = checkStepNumber(obj.step, record.stepBase ?? 1, where);
  const last = record.steps[record.steps.length - 1];
  if (last !== undefined && s <= last) throw new TrainingRecordError(`${where}: step ${s} after step ${last} (steps must increase)`);
  const columns: Partial<Record<(typeof SERIES_KEYS)[number], Series>> = {};
  for (const key of SERIES_KEYS) {
    const v = obj[key];
    if (v === undefined || v === null) continue;
    if (!Array.isArray(v) || v.length !== modules.length) throw new TrainingRecordError(`${where}: ${key} must hold one entry per module (${modules.length})`);
    columns[key] = v.map((x, i) => decodeNumber(x, `${where}: ${key}[${i}] (${modules[i].path || '<model>'})`));
  }
  // Validated in full before anything is appended: a bad line leaves the record as it was.
  const loss = decodeNumber(obj.loss ?? null, `${where}: loss`);
  const total = decodeNumber(obj.gradNormTotal ?? null, `${where}: gradNormTotal`);
  record.steps.push(s);
  record.loss.push(loss);
  record.gradNormTotal.push(total);
  modules.forEach((m, i) => {
    for (const key of SERIES_KEYS) m[key].push(columns[key]?.[i] ?? null);
  });
}

export interface ParsedStream {
  record: TrainingRecord;
  /** The job closed the stream (false: still running, or killed). */
  ended: boolean;
  /** Bytes of an incomplete last line (a killed job), ignored. */
  tornBytes: number;
}

/** Reads a whole stream file. A torn last line (the job was killed while writing it) is ignored. */
export function parseTrainingStream(data: string | Uint8Array, origin = 'training stream'): ParsedStream {
  const reader = new TrainingStreamReader(origin);
  reader.push(typeof data === 'string' ? new TextEncoder().encode(data) : data);
  if (!reader.record) throw new TrainingRecordError(`${origin}: no start line (an empty stream: the job has not recorded a step yet)`);
  return { record: reader.record, ended: reader.ended, tornBytes: reader.tornBytes };
}

/** The steps of `record` from index `from` on, with the same modules (for sending only what is new). */
export function sliceTrainingRecord(record: TrainingRecord, from: number): TrainingRecord {
  return {
    ...record,
    steps: record.steps.slice(from),
    loss: record.loss.slice(from),
    gradNormTotal: record.gradNormTotal.slice(from),
    modules: record.modules.map((m) => ({
      ...m,
      gradNorm: m.gradNorm.slice(from), paramNorm: m.paramNorm.slice(from), updateRatio: m.updateRatio.slice(from),
      actMean: m.actMean.slice(from), actStd: m.actStd.slice(from), zeroFraction: m.zeroFraction.slice(from),
    })),
  };
}

/**
 * Appends the steps of `more` (a slice with the same module paths) to `record` in place; the anomaly
 * arrives with the slice that has it. Throws when the modules differ (the caller then asks for the whole record).
 */
export function appendTrainingRecord(record: TrainingRecord, more: TrainingRecord): void {
  const byPath = new Map(record.modules.map((m) => [m.path, m]));
  if (more.modules.length !== record.modules.length || more.modules.some((m) => !byPath.has(m.path))) {
    throw new TrainingRecordError('the appended steps have other modules than the record');
  }
  // A slice may repeat steps the record already holds (a panel restored from its saved state has more than the
  // host sent it): those are the same steps of the same stream, so only the ones after the last are added.
  const last = record.steps[record.steps.length - 1];
  const from = last === undefined ? 0 : more.steps.findIndex((s) => s > last);
  if (from < 0) return void (record.anomaly ??= more.anomaly);
  if (from > 0 && more.steps[from - 1] !== last) throw new TrainingRecordError(`the appended steps ${more.steps[0]}..${more.steps[more.steps.length - 1]} do not continue the record's step ${last}`);
  record.steps.push(...more.steps.slice(from));
  record.loss.push(...more.loss.slice(from));
  record.gradNormTotal.push(...more.gradNormTotal.slice(from));
  for (const m of more.modules) {
    const target = byPath.get(m.path)!;
    for (const key of SERIES_KEYS) target[key].push(...m[key].slice(from));
  }
  record.anomaly ??= more.anomaly;
}
