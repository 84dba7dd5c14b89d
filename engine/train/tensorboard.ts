/**
 * TensorBoard event files (`events.out.tfevents.*`): a TFRecord stream of `Event` protobufs. Each record is
 * `uint64 length, uint32 masked CRC-32C of the length, data, uint32 masked CRC-32C of the data` (little
 * endian); the data is an Event (tensorflow/core/util/event.proto) whose Summary holds tagged values:
 * `simple_value` scalars (SummaryWriter.add_scalar), `histo` histograms (add_histogram) and `tensor`
 * scalars (new-style summaries). Decoded statically on protobufjs's Reader like engine/onnx/proto.ts (no
 * reflection, no eval: works under the webview's CSP). tensorboardRecord.ts maps the tags to modules.
 */
import { Reader } from 'protobufjs/minimal';
import { int64, lengthEnd, message, repeatedFixed } from '../onnx/proto';

export class TensorBoardError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'TensorBoardError';
  }
}

// CRC-32C (Castagnoli, reflected polynomial 0x82F63B78), table-driven. TFRecord checksums every length
// and record with it; it is a dozen lines, so no dependency for it.
const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0x82f63b78 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

export function crc32c(bytes: Uint8Array, start = 0, end = bytes.length): number {
  let c = 0xffffffff;
  for (let i = start; i < end; i++) c = CRC_TABLE[(c ^ bytes[i]) & 0xff] ^ (c >>> 8);
  return (c ^ 0xffffffff) >>> 0;
}

/** TFRecord's masking: rotate right by 15 bits and add a constant (so a CRC of CRCs does not look valid). */
export function maskedCrc32c(bytes: Uint8Array, start = 0, end = bytes.length): number {
  const c = crc32c(bytes, start, end);
  return (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0;
}

export interface TfRecords {
  records: Uint8Array[];
  /** Bytes at the end that do not make a whole record (a writer still running or killed): ignored. */
  truncatedBytes: number;
}

const hex = (v: number) => `0x${v.toString(16).padStart(8, '0')}`;

/** Splits a TFRecord file into its records, checking both checksums of each. */
export function readTfRecords(bytes: Uint8Array, origin = 'TFRecord file'): TfRecords {
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  const records: Uint8Array[] = [];
  let pos = 0;
  while (pos < bytes.length) {
    if (bytes.length - pos < 12) break;
    const lengthCrc = view.getUint32(pos + 8, true);
    const computed = maskedCrc32c(bytes, pos, pos + 8);
    if (lengthCrc !== computed) {
      throw new TensorBoardError(`${origin}: record ${records.length + 1} at byte ${pos}: the length's checksum is ${hex(lengthCrc)}, expected ${hex(computed)}: the file is corrupt${records.length === 0 ? ' or not a TensorBoard event file' : ''}`);
    }
    const length = Number(view.getBigUint64(pos, true));
    if (pos + 12 + length + 4 > bytes.length) break;
    const data = bytes.subarray(pos + 12, pos + 12 + length);
    const dataCrc = view.getUint32(pos + 12 + length, true);
    const dataComputed = maskedCrc32c(data);
    if (dataCrc !== dataComputed) {
      throw new TensorBoardError(`${origin}: record ${records.length + 1} at byte ${pos} (${length} bytes): the data checksum is ${hex(dataCrc)}, expected ${hex(dataComputed)}: the record is corrupt`);
    }
    records.push(data);
    pos += 12 + length + 4;
  }
  return { records, truncatedBytes: bytes.length - pos };
}

export interface ScalarPoint {
  step: number;
  wallTime: number;
  value: number;
}

/** The statistics of a histogram summary (HistogramProto); buckets are not kept. */
export interface HistogramPoint {
  step: number;
  wallTime: number;
  min: number;
  max: number;
  num: number;
  sum: number;
  sumSquares: number;
}

export interface TensorBoardEvents {
  scalars: Map<string, ScalarPoint[]>;
  histograms: Map<string, HistogramPoint[]>;
  /** Tags whose values this reader does not take, with why (images, text, TF2 histogram tensors...). */
  skipped: Map<string, string>;
  events: number;
  truncatedBytes: number;
}

interface RawValue {
  tag: string;
  simple: number | null;
  histo: HistogramPoint | null;
  tensor: { dtype: number; dims: number[]; floats: number[]; doubles: number[]; content: Uint8Array | null } | null;
  plugin: string;
  other: string | null;
}

// tensorflow DataType values read as scalars.
const DT_FLOAT = 1;
const DT_DOUBLE = 2;

function histogram(r: Reader, end: number): HistogramPoint {
  const h: HistogramPoint = { step: 0, wallTime: 0, min: 0, max: 0, num: 0, sum: 0, sumSquares: 0 };
  message(r, end, (no, wire) => {
    if (wire !== 1) return void r.skipType(wire);
    if (no === 1) h.min = r.double();
    else if (no === 2) h.max = r.double();
    else if (no === 3) h.num = r.double();
    else if (no === 4) h.sum = r.double();
    else if (no === 5) h.sumSquares = r.double();
    else r.skipType(wire);
  });
  return h;
}

function tensorShape(r: Reader, end: number): number[] {
  const dims: number[] = [];
  message(r, end, (no, wire) => {
    if (no === 2 && wire === 2) {
      let size = 0;
      message(r, lengthEnd(r), (dn, dw) => {
        if (dn === 1 && dw === 0) size = int64(r);
        else r.skipType(dw);
      });
      dims.push(size);
    } else {
      r.skipType(wire);
    }
  });
  return dims;
}

function tensor(r: Reader, end: number): NonNullable<RawValue['tensor']> {
  const t: NonNullable<RawValue['tensor']> = { dtype: 0, dims: [], floats: [], doubles: [], content: null };
  message(r, end, (no, wire) => {
    if (no === 1 && wire === 0) t.dtype = r.int32();
    else if (no === 2 && wire === 2) t.dims = tensorShape(r, lengthEnd(r));
    else if (no === 4 && wire === 2) t.content = r.bytes();
    else if (no === 5) repeatedFixed(r, wire, t.floats, 4);
    else if (no === 6) repeatedFixed(r, wire, t.doubles, 8);
    else r.skipType(wire);
  });
  return t;
}

function pluginName(r: Reader, end: number): string {
  let name = '';
  message(r, end, (no, wire) => {
    if (no === 1 && wire === 2) {
      message(r, lengthEnd(r), (pn, pw) => {
        if (pn === 1 && pw === 2) name = r.string();
        else r.skipType(pw);
      });
    } else {
      r.skipType(wire);
    }
  });
  return name;
}

function value(r: Reader, end: number): RawValue {
  const v: RawValue = { tag: '', simple: null, histo: null, tensor: null, plugin: '', other: null };
  message(r, end, (no, wire) => {
    switch (no) {
      case 1: v.tag = r.string(); break;
      case 2: v.simple = r.float(); break;
      case 3: v.other = 'an old-style histogram'; r.skipType(wire); break;
      case 4: v.other = 'an image'; r.skipType(wire); break;
      case 5: v.histo = histogram(r, lengthEnd(r)); break;
      case 6: v.other = 'audio'; r.skipType(wire); break;
      case 8: v.tensor = tensor(r, lengthEnd(r)); break;
      case 9: v.plugin = pluginName(r, lengthEnd(r)); break;
      default: r.skipType(wire);
    }
  });
  return v;
}

/** The single number of a scalar tensor summary, or why it is not one. */
function tensorScalar(t: NonNullable<RawValue['tensor']>): number | string {
  const count = t.dims.reduce((a, b) => a * b, 1);
  if (count !== 1) return `a tensor of shape [${t.dims.join(', ')}]`;
  if (t.dtype === DT_FLOAT) {
    if (t.floats.length) return t.floats[0];
    if (t.content && t.content.length >= 4) return new DataView(t.content.buffer, t.content.byteOffset, 4).getFloat32(0, true);
  }
  if (t.dtype === DT_DOUBLE) {
    if (t.doubles.length) return t.doubles[0];
    if (t.content && t.content.length >= 8) return new DataView(t.content.buffer, t.content.byteOffset, 8).getFloat64(0, true);
  }
  return `a tensor of data type ${t.dtype}`;
}

/** Decodes every event of one file into scalar and histogram series per tag. */
export function readEvents(bytes: Uint8Array, origin = 'event file'): TensorBoardEvents {
  const { records, truncatedBytes } = readTfRecords(bytes, origin);
  const out: TensorBoardEvents = { scalars: new Map(), histograms: new Map(), skipped: new Map(), events: records.length, truncatedBytes };
  const plugins = new Map<string, string>(); // a tag's plugin is written with its first value only
  records.forEach((data, index) => {
    const r = Reader.create(data);
    let wallTime = 0;
    let step = 0;
    const values: RawValue[] = [];
    try {
      message(r, data.length, (no, wire) => {
        if (no === 1 && wire === 1) wallTime = r.double();
        else if (no === 2 && wire === 0) step = int64(r);
        else if (no === 5 && wire === 2) {
          message(r, lengthEnd(r), (sn, sw) => {
            if (sn === 1 && sw === 2) values.push(value(r, lengthEnd(r)));
            else r.skipType(sw);
          });
        } else r.skipType(wire);
      });
    } catch (err) {
      throw new TensorBoardError(`${origin}: record ${index + 1} is not an Event protobuf: ${err instanceof Error ? err.message : String(err)}`);
    }
    for (const v of values) {
      if (v.plugin) plugins.set(v.tag, v.plugin);
      if (v.simple !== null) {
        push(out.scalars, v.tag, { step, wallTime, value: v.simple });
      } else if (v.histo) {
        push(out.histograms, v.tag, { ...v.histo, step, wallTime });
      } else if (v.tensor) {
        const plugin = plugins.get(v.tag) ?? '';
        const x = plugin && plugin !== 'scalars' ? `a ${plugin} summary` : tensorScalar(v.tensor);
        if (typeof x === 'number') push(out.scalars, v.tag, { step, wallTime, value: x });
        else out.skipped.set(v.tag, x);
      } else if (v.other) {
        out.skipped.set(v.tag, v.other);
      }
    }
  });
  return out;
}

function push<T>(map: Map<string, T[]>, tag: string, point: T): void {
  const list = map.get(tag);
  if (list) list.push(point);
  else map.set(tag, [point]);
}

/**
 * Events of several files of one run (a job restarted writes a new file into the same folder), merged by
 * tag and step: at a step logged twice, the value written last (by wall time) wins.
 */
export function mergeEvents(files: TensorBoardEvents[]): TensorBoardEvents {
  const out: TensorBoardEvents = { scalars: new Map(), histograms: new Map(), skipped: new Map(), events: 0, truncatedBytes: 0 };
  const merge = <T extends { step: number; wallTime: number }>(target: Map<string, T[]>, source: Map<string, T[]>) => {
    for (const [tag, points] of source) for (const p of points) push(target, tag, p);
  };
  for (const f of files) {
    merge(out.scalars, f.scalars);
    merge(out.histograms, f.histograms);
    for (const [tag, why] of f.skipped) out.skipped.set(tag, why);
    out.events += f.events;
    out.truncatedBytes += f.truncatedBytes;
  }
  const latest = <T extends { step: number; wallTime: number }>(points: T[]): T[] => {
    const byStep = new Map<number, T>();
    for (const p of points) {
      const had = byStep.get(p.step);
      if (!had || p.wallTime >= had.wallTime) byStep.set(p.step, p);
    }
    return [...byStep.values()].sort((a, b) => a.step - b.step);
  };
  for (const [tag, points] of out.scalars) out.scalars.set(tag, latest(points));
  for (const [tag, points] of out.histograms) out.histograms.set(tag, latest(points));
  return out;
}

/** True when the bytes start with a TFRecord whose length checksum holds (a TensorBoard event file). */
export function looksLikeTfRecord(bytes: Uint8Array): boolean {
  if (bytes.length < 12) return false;
  const view = new DataView(bytes.buffer, bytes.byteOffset, 12);
  return view.getUint32(8, true) === maskedCrc32c(bytes, 0, 8);
}
