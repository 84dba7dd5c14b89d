/**
 * ONNX TensorProto -> engine Tensor, and the element-type rules of the importer:
 * - every floating type (float16, bfloat16, float32, float64) becomes the run's float dtype;
 * - every integer type becomes int32 (the engine's only integer type); int64 values that do not
 *   fit throw VALUE_OUT_OF_RANGE, except the "infinite" sentinels exporters use for open slice
 *   ends (|v| >= 2^62, e.g. INT64_MAX), which saturate to the int32 range;
 * - the narrow types (float8 variants, float4e2m1, float8e8m0 as floats; int4/uint4/int2/uint2 as int32)
 *   are unpacked exactly (narrow.ts);
 * - bool stays bool; string tensors are not engine tensors (values.ts reads them as StringTensor); complex
 *   types are rejected (UNSUPPORTED_DTYPE); which value types the importer claims: isClaimedValueType.
 */
import { Tensor } from '../tensor';
import { DType, FloatDType, allocate, allocateFrom } from '../dtype';
import { formatShape, sizeOf } from '../shape';
import { OnnxImportError } from './errors';
import { DataType, TensorProto, dataTypeName } from './proto';
import { decodeNarrow, isNarrowFloat, packedBits, unpack } from './narrow';

/** Where external tensor data comes from: file name (the `location` entry) -> bytes. */
export type ExternalData = Record<string, Uint8Array> | ((location: string) => Uint8Array | undefined);

const INT32_MIN = -2147483648;
const INT32_MAX = 2147483647;
const SENTINEL = 2 ** 62;

/** The engine dtype an ONNX element type maps to (throws UNSUPPORTED_DTYPE for the rest). */
export function engineDtype(dataType: number, floatDtype: FloatDType, what: string): DType {
  const dtype = engineDtypeOrNull(dataType, floatDtype);
  if (dtype) return dtype;
  throw new OnnxImportError('UNSUPPORTED_DTYPE', `${what} has ${dataType === DataType.UNDEFINED ? 'no element type (data_type 0)' : `element type ${dataTypeName(dataType)}`}, which the engine cannot represent (supported: floating types as ${floatDtype}, integer types as int32, bool)`);
}

/** A declared value type: ONNX TypeProto's kind, element type and, for a sequence or optional, its element. */
export interface DeclaredType {
  /** 'tensor' (also 'unknown': no declared type), 'sequence', 'optional', 'map', 'sparse_tensor'. */
  kind: string;
  elemType: number;
  elem: DeclaredType | null;
}

/**
 * The value types the importer claims its ops on (supportedOnnxOps): tensors whose element type the engine
 * represents (floats, integers, bool) and string tensors; sequences of such tensors; optionals of a tensor
 * or of such a sequence (values.ts). An undeclared element type is taken as claimed (the run checks each
 * value). Maps, sparse tensors, complex tensors and sequences of sequences / optionals are claimed by no op:
 * a graph input of such a type fails with UNSUPPORTED_DTYPE naming it (checkClaimedValueType).
 */
export function isClaimedValueType(type: DeclaredType): boolean {
  return unclaimedPart(type) === null;
}

/** The part of a declared type the importer does not run, in words (null when it runs all of it). */
function unclaimedPart(type: DeclaredType, inside = ''): string | null {
  const kind = type.kind === 'unknown' ? 'tensor' : type.kind;
  if (kind === 'tensor') {
    if (type.elemType === DataType.UNDEFINED || type.elemType === DataType.STRING || engineDtypeOrNull(type.elemType, 'float32') !== null) return null;
    return `${inside}tensors of element type ${dataTypeName(type.elemType)}`;
  }
  if (kind === 'sequence' || kind === 'optional') {
    if (!type.elem) return null;
    const inner = type.elem.kind === 'unknown' ? 'tensor' : type.elem.kind;
    if (inner !== 'tensor' && !(kind === 'optional' && inner === 'sequence')) return `${inside}${kind === 'optional' ? 'an optional' : 'a sequence'} of ${inner.replace('_', ' ')} values`;
    return unclaimedPart(type.elem, `${inside}${kind === 'optional' ? 'an optional' : 'a sequence'} of `);
  }
  return `${inside}${kind === 'map' ? 'a map' : kind === 'sparse_tensor' ? 'a sparse tensor' : `a ${kind}`} value`;
}

/**
 * A graph input whose declared type the importer does not run, as an UNSUPPORTED_DTYPE error naming it;
 * nothing for a claimed type.
 */
export function checkClaimedValueType(type: DeclaredType, what: string): void {
  const part = unclaimedPart(type);
  if (part === null) return;
  throw new OnnxImportError('UNSUPPORTED_DTYPE', `${what} is ${/^(a|an|tensors) /.test(part) ? part : `a value holding ${part}`}; the importer runs tensors of numbers, bool or strings, sequences of them and optionals of a tensor or a sequence (not maps, sparse or complex tensors)`);
}

function engineDtypeOrNull(dataType: number, floatDtype: FloatDType): DType | null {
  switch (dataType) {
    case DataType.FLOAT:
    case DataType.DOUBLE:
    case DataType.FLOAT16:
    case DataType.BFLOAT16:
    case DataType.FLOAT8E4M3FN:
    case DataType.FLOAT8E4M3FNUZ:
    case DataType.FLOAT8E5M2:
    case DataType.FLOAT8E5M2FNUZ:
    case DataType.FLOAT4E2M1:
    case DataType.FLOAT8E8M0:
      return floatDtype;
    case DataType.INT4:
    case DataType.UINT4:
    case DataType.INT2:
    case DataType.UINT2:
    case DataType.INT8:
    case DataType.UINT8:
    case DataType.INT16:
    case DataType.UINT16:
    case DataType.INT32:
    case DataType.UINT32:
    case DataType.INT64:
    case DataType.UINT64:
      return 'int32';
    case DataType.BOOL:
      return 'bool';
    default:
      return null;
  }
}

/** Integer element types (int2 to int64, unsigned too): the engine holds them as int32. */
export function isIntegerType(dataType: number): boolean {
  return engineDtypeOrNull(dataType, 'float32') === 'int32';
}

export function isFloatType(dataType: number): boolean {
  return dataType === DataType.FLOAT || dataType === DataType.DOUBLE || dataType === DataType.FLOAT16 || dataType === DataType.BFLOAT16 || isNarrowFloat(dataType);
}

/** A model integer as an int32 value (sentinels saturate, other out-of-range values throw). */
export function toInt32(v: number, what: string): number {
  if (v >= INT32_MIN && v <= INT32_MAX) return v;
  if (v >= SENTINEL) return INT32_MAX;
  if (v <= -SENTINEL) return INT32_MIN;
  if (Number.isNaN(v)) throw new OnnxImportError('VALUE_OUT_OF_RANGE', `${what}: NaN cannot be converted to an integer`);
  throw new OnnxImportError('VALUE_OUT_OF_RANGE', `${what}: the integer ${v} does not fit the engine's int32 tensors (int64 values must lie in [-2^31, 2^31) except the +-2^63 "open end" sentinels)`);
}

function halfToFloat(h: number): number {
  const s = h & 0x8000 ? -1 : 1;
  const e = (h >> 10) & 0x1f;
  const f = h & 0x3ff;
  if (e === 0) return s * 2 ** -14 * (f / 1024);
  if (e === 31) return f ? NaN : s * Infinity;
  return s * 2 ** (e - 15) * (1 + f / 1024);
}

const bfloatView = new DataView(new ArrayBuffer(4));
function bfloatToFloat(b: number): number {
  bfloatView.setUint32(0, (b & 0xffff) << 16, false);
  return bfloatView.getFloat32(0, false);
}

const ELEMENT_BYTES: Record<number, number> = {
  [DataType.FLOAT]: 4, [DataType.DOUBLE]: 8, [DataType.FLOAT16]: 2, [DataType.BFLOAT16]: 2, [DataType.INT8]: 1,
  [DataType.UINT8]: 1, [DataType.INT16]: 2, [DataType.UINT16]: 2, [DataType.INT32]: 4, [DataType.UINT32]: 4,
  [DataType.INT64]: 8, [DataType.UINT64]: 8, [DataType.BOOL]: 1,
};

/** Reads element i of little-endian raw data of `dataType`. */
function rawReader(dataType: number, view: DataView): (i: number) => number {
  switch (dataType) {
    case DataType.FLOAT: return (i) => view.getFloat32(i * 4, true);
    case DataType.DOUBLE: return (i) => view.getFloat64(i * 8, true);
    case DataType.FLOAT16: return (i) => halfToFloat(view.getUint16(i * 2, true));
    case DataType.BFLOAT16: return (i) => bfloatToFloat(view.getUint16(i * 2, true));
    case DataType.INT8: return (i) => view.getInt8(i);
    case DataType.UINT8: return (i) => view.getUint8(i);
    case DataType.BOOL: return (i) => (view.getUint8(i) ? 1 : 0);
    case DataType.INT16: return (i) => view.getInt16(i * 2, true);
    case DataType.UINT16: return (i) => view.getUint16(i * 2, true);
    case DataType.INT32: return (i) => view.getInt32(i * 4, true);
    case DataType.UINT32: return (i) => view.getUint32(i * 4, true);
    case DataType.INT64: return (i) => view.getInt32(i * 8 + 4, true) * 4294967296 + view.getUint32(i * 8, true);
    case DataType.UINT64: return (i) => view.getUint32(i * 8 + 4, true) * 4294967296 + view.getUint32(i * 8, true);
    default: throw new Error(`internal: no raw reader for ${dataTypeName(dataType)}`);
  }
}

function externalBytes(t: TensorProto, what: string, external: ExternalData | undefined): Uint8Array {
  const info = new Map(t.externalData.map((e) => [e.key, e.value]));
  const location = info.get('location') ?? '';
  const data = typeof external === 'function' ? external(location) : external && Object.prototype.hasOwnProperty.call(external, location) ? external[location] : undefined;
  if (!(data instanceof Uint8Array)) {
    throw new OnnxImportError('EXTERNAL_DATA', `${what} stores its data outside the model, in the external file "${location || '?'}" (data_location EXTERNAL), which was not provided. Keep that file next to the .onnx (torch.onnx.export writes both; the engine API takes it as options.externalData = { "${location}": bytes }), or export a single file with torch.onnx.export(..., external_data=False).`);
  }
  const offset = Number(info.get('offset') ?? 0);
  const length = info.has('length') ? Number(info.get('length')) : data.length - offset;
  if (!(offset >= 0 && length >= 0 && offset + length <= data.length)) {
    throw new OnnxImportError('EXTERNAL_DATA', `${what}: external file "${location}" has ${data.length} bytes but the tensor needs bytes ${offset}..${offset + length}`);
  }
  return data.subarray(offset, offset + length);
}

/** Plain number values of a TensorProto (any numeric type), in row-major order. */
export function protoValues(t: TensorProto, what: string, external?: ExternalData): number[] | Float32Array | Float64Array {
  const n = sizeOf(t.dims);
  const dt = t.dataType;
  if (dt === DataType.STRING) throw new OnnxImportError('UNSUPPORTED_DTYPE', `${what} is a string tensor (${t.stringData.length} strings); the importer takes strings as graph inputs only (StringTensor feeds), not as initializers or constants`);
  const bytesPer = ELEMENT_BYTES[dt];
  const bits = packedBits(dt);
  if (bytesPer === undefined && bits === undefined) engineDtype(dt, 'float32', what); // throws UNSUPPORTED_DTYPE
  let raw = t.rawData;
  if (t.dataLocation === 1 || t.externalData.length > 0) raw = externalBytes(t, what, external);
  if (bits !== undefined) {
    // Packed narrow types: raw_data holds ceil(n * bits / 8) bytes, low bits first; int32_data holds one
    // value per entry for 8-bit types and the packed bytes for 4- and 2-bit ones.
    const fromRaw = !!raw && (raw.length > 0 || n === 0);
    const packed: ArrayLike<number> = fromRaw ? raw! : t.int32Data;
    const need = bits === 8 && !fromRaw ? n : Math.ceil((n * bits) / 8);
    if (packed.length !== need) throw new OnnxImportError('INVALID_MODEL', `${what}: ${fromRaw ? 'raw_data' : 'int32_data'} has ${packed.length} entries but shape ${formatShape(t.dims)} of ${dataTypeName(dt)} needs ${need}`);
    const out = new Array<number>(n);
    for (let i = 0; i < n; i++) out[i] = decodeNarrow(dt, unpack(packed, i, bits));
    return out;
  }
  if (raw && (raw.length > 0 || n === 0)) {
    if (raw.length !== n * bytesPer) {
      throw new OnnxImportError('INVALID_MODEL', `${what}: raw_data has ${raw.length} bytes but shape ${formatShape(t.dims)} of ${dataTypeName(dt)} needs ${n * bytesPer}`);
    }
    // Copy: raw_data is a view into the model bytes and may be unaligned for a typed-array view. (Not
    // raw.slice(): on a Node Buffer, which protobufjs returns for Buffer input, that is a view too.)
    const copy = new Uint8Array(raw);
    if (dt === DataType.FLOAT) return new Float32Array(copy.buffer, 0, n);
    if (dt === DataType.DOUBLE) return new Float64Array(copy.buffer, 0, n);
    const read = rawReader(dt, new DataView(copy.buffer));
    const out = new Array<number>(n);
    for (let i = 0; i < n; i++) out[i] = read(i);
    return out;
  }
  let values: number[];
  switch (dt) {
    case DataType.FLOAT: values = t.floatData; break;
    case DataType.DOUBLE: values = t.doubleData; break;
    case DataType.INT64: values = t.int64Data; break;
    case DataType.UINT32:
    case DataType.UINT64: values = t.uint64Data; break;
    case DataType.FLOAT16: values = t.int32Data.map(halfToFloat); break;
    case DataType.BFLOAT16: values = t.int32Data.map(bfloatToFloat); break;
    case DataType.BOOL: values = t.int32Data.map((v) => (v ? 1 : 0)); break;
    default: values = t.int32Data;
  }
  if (values.length !== n) {
    throw new OnnxImportError('INVALID_MODEL', `${what}: has ${values.length} values but shape ${formatShape(t.dims)} needs ${n}`);
  }
  return values;
}

/** An engine tensor holding a TensorProto's values (floats as `floatDtype`, ints as int32, bool). */
export function tensorFromProto(t: TensorProto, floatDtype: FloatDType, what: string, external?: ExternalData): Tensor {
  const dtype = engineDtype(t.dataType, floatDtype, what);
  for (const d of t.dims) {
    if (!Number.isSafeInteger(d) || d < 0) throw new OnnxImportError('INVALID_MODEL', `${what} has an invalid shape ${formatShape(t.dims)}`);
  }
  const values = protoValues(t, what, external);
  if (dtype === 'float32') return new Tensor(values instanceof Float32Array ? values : allocateFrom('float32', values), t.dims);
  if (dtype === 'float64') return new Tensor(values instanceof Float64Array ? values : allocateFrom('float64', values), t.dims);
  if (dtype === 'bool') return new Tensor(allocateFrom('bool', values), t.dims);
  const out = allocate('int32', values.length);
  for (let i = 0; i < values.length; i++) out[i] = toInt32(values[i], what);
  return new Tensor(out, t.dims);
}
