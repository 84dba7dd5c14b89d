/**
 * ONNX protobuf decoding: a hand-written static decoder for the onnx.proto messages the importer
 * reads (ModelProto, GraphProto, NodeProto, AttributeProto, TensorProto, ValueInfoProto, TypeProto,
 * OperatorSetIdProto, StringStringEntryProto), on protobufjs's minimal Reader.
 *
 * Field numbers follow onnx/onnx.proto (IR version 10, onnx 1.16+: NodeProto.metadata_props = 9,
 * GraphProto.metadata_props = 16). Unknown fields are skipped, so newer models decode too.
 * Static code rather than reflection: no `fs`, no `eval`/`new Function` (works in a browser bundle
 * and under a strict Content-Security-Policy), and typed results.
 */
import { Reader } from 'protobufjs/minimal';
import { OnnxImportError } from './errors';

/** ONNX TensorProto.DataType values. */
export const enum DataType {
  UNDEFINED = 0, FLOAT = 1, UINT8 = 2, INT8 = 3, UINT16 = 4, INT16 = 5, INT32 = 6, INT64 = 7,
  STRING = 8, BOOL = 9, FLOAT16 = 10, DOUBLE = 11, UINT32 = 12, UINT64 = 13, COMPLEX64 = 14,
  COMPLEX128 = 15, BFLOAT16 = 16, FLOAT8E4M3FN = 17, FLOAT8E4M3FNUZ = 18, FLOAT8E5M2 = 19, FLOAT8E5M2FNUZ = 20,
  UINT4 = 21, INT4 = 22, FLOAT4E2M1 = 23, FLOAT8E8M0 = 24, UINT2 = 25, INT2 = 26,
}

export const DATA_TYPE_NAMES: Record<number, string> = {
  0: 'undefined', 1: 'float32', 2: 'uint8', 3: 'int8', 4: 'uint16', 5: 'int16', 6: 'int32', 7: 'int64',
  8: 'string', 9: 'bool', 10: 'float16', 11: 'float64', 12: 'uint32', 13: 'uint64', 14: 'complex64',
  15: 'complex128', 16: 'bfloat16', 17: 'float8e4m3fn', 18: 'float8e4m3fnuz', 19: 'float8e5m2',
  20: 'float8e5m2fnuz', 21: 'uint4', 22: 'int4', 23: 'float4e2m1', 24: 'float8e8m0', 25: 'uint2', 26: 'int2',
};

export function dataTypeName(t: number): string {
  return DATA_TYPE_NAMES[t] ?? `data type ${t}`;
}

/** AttributeProto.AttributeType values. */
export const enum AttrType {
  UNDEFINED = 0, FLOAT = 1, INT = 2, STRING = 3, TENSOR = 4, GRAPH = 5, FLOATS = 6, INTS = 7, STRINGS = 8,
  TENSORS = 9, GRAPHS = 10, SPARSE_TENSOR = 11, SPARSE_TENSORS = 12, TYPE_PROTO = 13, TYPE_PROTOS = 14,
}

export interface StringEntry {
  key: string;
  value: string;
}

export interface TensorProto {
  name: string;
  dims: number[];
  dataType: number;
  /** A view into the model bytes (possibly unaligned): copy before viewing as a typed array. */
  rawData: Uint8Array | null;
  floatData: number[];
  int32Data: number[];
  int64Data: number[];
  doubleData: number[];
  uint64Data: number[];
  stringData: Uint8Array[];
  externalData: StringEntry[];
  /** 1 = EXTERNAL. */
  dataLocation: number;
  docString: string;
}

export interface AttributeProto {
  name: string;
  type: number;
  f: number;
  i: number;
  s: Uint8Array | null;
  t: TensorProto | null;
  g: GraphProto | null;
  floats: number[];
  ints: number[];
  strings: Uint8Array[];
  tensors: TensorProto[];
  graphs: GraphProto[];
  refAttrName: string;
  /** A TYPE_PROTO attribute's value (Optional's `type`). */
  tp?: TypeProto | null;
  /** Which fields were present (to tell an explicit 0 from a missing value in untyped old models). */
  present: Set<number>;
}

export interface NodeProto {
  name: string;
  opType: string;
  domain: string;
  input: string[];
  output: string[];
  attribute: AttributeProto[];
  docString: string;
  metadataProps: StringEntry[];
}

export interface DimProto {
  /** null when the dimension is symbolic or unknown. */
  value: number | null;
  param: string | null;
}

export interface TypeProto {
  /** 'tensor', 'sequence', 'map', 'optional', 'sparse_tensor' or 'unknown'. */
  kind: string;
  elemType: number;
  /** null for an unknown rank. */
  shape: DimProto[] | null;
  /** The element type of a sequence or optional (null when not declared, and for the other kinds). */
  elem: TypeProto | null;
}

export interface ValueInfoProto {
  name: string;
  type: TypeProto | null;
  docString: string;
  /** The dynamo exporter's graph signature (`pkg.torch.export.graph_signature.InputSpec.kind`) and `folded_from`. */
  metadataProps: StringEntry[];
}

export interface GraphProto {
  name: string;
  node: NodeProto[];
  initializer: TensorProto[];
  sparseInitializerCount: number;
  input: ValueInfoProto[];
  output: ValueInfoProto[];
  valueInfo: ValueInfoProto[];
  docString: string;
  metadataProps: StringEntry[];
}

export interface OpsetImport {
  domain: string;
  version: number;
}

export interface ModelProto {
  irVersion: number;
  opsetImport: OpsetImport[];
  producerName: string;
  producerVersion: string;
  domain: string;
  modelVersion: number;
  docString: string;
  graph: GraphProto | null;
  metadataProps: StringEntry[];
  /** Model-local functions (FunctionProto name and domain); the importer does not inline them. */
  functions: { name: string; domain: string }[];
  /** Field numbers seen at the top level (used to tell an ONNX model from other protobufs). */
  fieldsSeen: Set<number>;
  /** Top-level fields whose wire type does not fit ModelProto (a sign of another message type). */
  mistyped: number[];
}

// ---------------------------------------------------------------- wire helpers (also used by engine/train/tensorboard.ts)

type Long = { toNumber(): number };

/** int64 from protobufjs (a Long when the `long` package is loaded, else a number) as a JS number. */
function longToNumber(v: number | Long): number {
  return typeof v === 'number' ? v : v.toNumber();
}

export function int64(r: Reader): number {
  return longToNumber(r.int64() as unknown as number | Long);
}

function uint64(r: Reader): number {
  return longToNumber(r.uint64() as unknown as number | Long);
}

/** End offset of a length-delimited field, checked against the buffer. */
export function lengthEnd(r: Reader): number {
  const len = r.uint32();
  const end = r.pos + len;
  if (end > r.len) throw new RangeError(`index out of range: ${r.pos} + ${len} > ${r.len}`);
  return end;
}

/** Repeated scalar field: packed (wire type 2) or one unpacked element. */
export function repeated(r: Reader, wire: number, out: number[], one: () => number): void {
  if (wire === 2) {
    const end = lengthEnd(r);
    while (r.pos < end) out.push(one());
    if (r.pos !== end) throw new Error('malformed packed field: elements overrun its length');
  } else {
    out.push(one());
  }
}

export function repeatedFixed(r: Reader, wire: number, out: number[], bytes: 4 | 8): void {
  if (wire !== 2) {
    out.push(bytes === 4 ? r.float() : r.double());
    return;
  }
  const end = lengthEnd(r);
  const n = (end - r.pos) / bytes;
  if (!Number.isInteger(n)) throw new RangeError('index out of range: packed float field has a partial element');
  const view = new DataView(r.buf.buffer, r.buf.byteOffset + r.pos, end - r.pos);
  for (let i = 0; i < n; i++) out.push(bytes === 4 ? view.getFloat32(i * 4, true) : view.getFloat64(i * 8, true));
  r.pos = end;
}

/** Thrown for data no ONNX writer produces (deprecated groups, subgraphs nested absurdly deep). */
class MalformedModel extends Error {
  constructor(message: string, readonly code: 'CORRUPT' | 'UNSUPPORTED_FEATURE' = 'CORRUPT') {
    super(message);
  }
}

/**
 * Skips a field of an unknown or unused number. Groups (wire types 3 and 4, deprecated, never written
 * by ONNX) are rejected: protobufjs skips them recursively, so a run of start-group tags would
 * exhaust the stack.
 */
function skip(r: Reader, wire: number): void {
  if (wire === 3 || wire === 4) throw new MalformedModel(`deprecated group wire type ${wire} at offset ${r.pos} (ONNX files do not use groups)`);
  r.skipType(wire);
}

/** If/Loop/Scan bodies nested deeper than this are not a real model (and would exhaust the decoder's stack). */
const MAX_SUBGRAPH_DEPTH = 64;
/** Sequences of optionals of sequences...: deeper than any model needs, shallow enough for the stack. */
const MAX_TYPE_DEPTH = 32;

/** Runs `field` for every field of the message ending at `end`. */
export function message(r: Reader, end: number, field: (no: number, wire: number) => void): void {
  while (r.pos < end) {
    const tag = r.uint32();
    const no = tag >>> 3;
    const wire = tag & 7;
    if (no === 0) throw new Error(`illegal tag: field number 0 at offset ${r.pos}`);
    field(no, wire);
  }
  // Overrunning the enclosing field (not the end of the data) means malformed data, not truncation.
  if (r.pos !== end) throw new Error(`malformed message: a field overruns its enclosing message at offset ${r.pos}`);
}

function expectWire(no: number, wire: number, want: number, what: string): void {
  if (wire !== want) throw new Error(`invalid wire type ${wire} for ${what} (field ${no})`);
}

// ---------------------------------------------------------------- messages

function stringEntry(r: Reader, end: number): StringEntry {
  const e: StringEntry = { key: '', value: '' };
  message(r, end, (no, wire) => {
    if (no === 1 && wire === 2) e.key = r.string();
    else if (no === 2 && wire === 2) e.value = r.string();
    else skip(r, wire);
  });
  return e;
}

function tensor(r: Reader, end: number): TensorProto {
  const t: TensorProto = {
    name: '', dims: [], dataType: 0, rawData: null, floatData: [], int32Data: [], int64Data: [], doubleData: [],
    uint64Data: [], stringData: [], externalData: [], dataLocation: 0, docString: '',
  };
  message(r, end, (no, wire) => {
    switch (no) {
      case 1: repeated(r, wire, t.dims, () => int64(r)); break;
      case 2: t.dataType = r.int32(); break;
      case 4: repeatedFixed(r, wire, t.floatData, 4); break;
      case 5: repeated(r, wire, t.int32Data, () => r.int32()); break;
      case 6: expectWire(no, wire, 2, 'TensorProto.string_data'); t.stringData.push(r.bytes()); break;
      case 7: repeated(r, wire, t.int64Data, () => int64(r)); break;
      case 8: t.name = r.string(); break;
      case 9: expectWire(no, wire, 2, 'TensorProto.raw_data'); t.rawData = r.bytes(); break;
      case 10: repeatedFixed(r, wire, t.doubleData, 8); break;
      case 11: repeated(r, wire, t.uint64Data, () => uint64(r)); break;
      case 12: t.docString = r.string(); break;
      case 13: expectWire(no, wire, 2, 'TensorProto.external_data'); t.externalData.push(stringEntry(r, lengthEnd(r))); break;
      case 14: t.dataLocation = r.int32(); break;
      default: skip(r, wire);
    }
  });
  return t;
}

function attribute(r: Reader, end: number, depth: number): AttributeProto {
  const a: AttributeProto = {
    name: '', type: 0, f: 0, i: 0, s: null, t: null, g: null, floats: [], ints: [], strings: [], tensors: [], graphs: [],
    refAttrName: '', tp: null, present: new Set(),
  };
  message(r, end, (no, wire) => {
    a.present.add(no);
    switch (no) {
      case 1: a.name = r.string(); break;
      case 2: expectWire(no, wire, 5, 'AttributeProto.f'); a.f = r.float(); break;
      case 3: a.i = int64(r); break;
      case 4: a.s = r.bytes(); break;
      case 5: a.t = tensor(r, lengthEnd(r)); break;
      case 6: a.g = graph(r, lengthEnd(r), depth + 1); break;
      case 7: repeatedFixed(r, wire, a.floats, 4); break;
      case 8: repeated(r, wire, a.ints, () => int64(r)); break;
      case 9: a.strings.push(r.bytes()); break;
      case 10: a.tensors.push(tensor(r, lengthEnd(r))); break;
      case 11: a.graphs.push(graph(r, lengthEnd(r), depth + 1)); break;
      case 14: expectWire(no, wire, 2, 'AttributeProto.tp'); a.tp = type(r, lengthEnd(r)); break;
      case 20: a.type = r.int32(); break;
      case 21: a.refAttrName = r.string(); break;
      default: skip(r, wire);
    }
  });
  return a;
}

function node(r: Reader, end: number, depth: number): NodeProto {
  const n: NodeProto = { name: '', opType: '', domain: '', input: [], output: [], attribute: [], docString: '', metadataProps: [] };
  message(r, end, (no, wire) => {
    switch (no) {
      case 1: n.input.push(r.string()); break;
      case 2: n.output.push(r.string()); break;
      case 3: n.name = r.string(); break;
      case 4: n.opType = r.string(); break;
      case 5: n.attribute.push(attribute(r, lengthEnd(r), depth)); break;
      case 6: n.docString = r.string(); break;
      case 7: n.domain = r.string(); break;
      case 9: expectWire(no, wire, 2, 'NodeProto.metadata_props'); n.metadataProps.push(stringEntry(r, lengthEnd(r))); break;
      default: skip(r, wire);
    }
  });
  return n;
}

function dimension(r: Reader, end: number): DimProto {
  const d: DimProto = { value: null, param: null };
  message(r, end, (no, wire) => {
    if (no === 1 && wire === 0) d.value = int64(r);
    else if (no === 2 && wire === 2) d.param = r.string();
    else skip(r, wire);
  });
  return d;
}

function shape(r: Reader, end: number): DimProto[] {
  const dims: DimProto[] = [];
  message(r, end, (no, wire) => {
    if (no === 1 && wire === 2) dims.push(dimension(r, lengthEnd(r)));
    else skip(r, wire);
  });
  return dims;
}

function tensorType(r: Reader, end: number, t: TypeProto): void {
  message(r, end, (no, wire) => {
    if (no === 1 && wire === 0) t.elemType = r.int32();
    else if (no === 2 && wire === 2) t.shape = shape(r, lengthEnd(r));
    else skip(r, wire);
  });
}

/** The element type of TypeProto.Sequence / TypeProto.Optional (field 1). */
function elemType(r: Reader, end: number, depth: number): TypeProto | null {
  let elem: TypeProto | null = null;
  message(r, end, (no, wire) => {
    if (no === 1 && wire === 2) elem = type(r, lengthEnd(r), depth + 1);
    else skip(r, wire);
  });
  return elem;
}

function type(r: Reader, end: number, depth = 0): TypeProto {
  if (depth > MAX_TYPE_DEPTH) throw new MalformedModel(`a value type nests sequences / optionals more than ${MAX_TYPE_DEPTH} deep`, 'UNSUPPORTED_FEATURE');
  const t: TypeProto = { kind: 'unknown', elemType: 0, shape: null, elem: null };
  message(r, end, (no, wire) => {
    if (no === 1 && wire === 2) {
      t.kind = 'tensor';
      tensorType(r, lengthEnd(r), t);
    } else if (no === 8 && wire === 2) {
      t.kind = 'sparse_tensor';
      tensorType(r, lengthEnd(r), t);
    } else if ((no === 4 || no === 9) && wire === 2) {
      t.kind = no === 4 ? 'sequence' : 'optional';
      t.elem = elemType(r, lengthEnd(r), depth);
    } else if (no === 5 && wire === 2) {
      t.kind = 'map';
      skip(r, wire);
    } else {
      skip(r, wire);
    }
  });
  return t;
}

function valueInfo(r: Reader, end: number): ValueInfoProto {
  const v: ValueInfoProto = { name: '', type: null, docString: '', metadataProps: [] };
  message(r, end, (no, wire) => {
    if (no === 1 && wire === 2) v.name = r.string();
    else if (no === 2 && wire === 2) v.type = type(r, lengthEnd(r));
    else if (no === 3 && wire === 2) v.docString = r.string();
    else if (no === 4 && wire === 2) v.metadataProps.push(stringEntry(r, lengthEnd(r)));
    else skip(r, wire);
  });
  return v;
}

function graph(r: Reader, end: number, depth: number): GraphProto {
  if (depth > MAX_SUBGRAPH_DEPTH) {
    throw new MalformedModel(`control-flow subgraphs (If/Loop/Scan bodies) are nested more than ${MAX_SUBGRAPH_DEPTH} deep; no exporter nests graphs this deep`, 'UNSUPPORTED_FEATURE');
  }
  const g: GraphProto = { name: '', node: [], initializer: [], sparseInitializerCount: 0, input: [], output: [], valueInfo: [], docString: '', metadataProps: [] };
  message(r, end, (no, wire) => {
    if (wire !== 2) {
      skip(r, wire);
      return;
    }
    switch (no) {
      case 1: g.node.push(node(r, lengthEnd(r), depth)); break;
      case 2: g.name = r.string(); break;
      case 5: g.initializer.push(tensor(r, lengthEnd(r))); break;
      case 10: g.docString = r.string(); break;
      case 11: g.input.push(valueInfo(r, lengthEnd(r))); break;
      case 12: g.output.push(valueInfo(r, lengthEnd(r))); break;
      case 13: g.valueInfo.push(valueInfo(r, lengthEnd(r))); break;
      case 15: g.sparseInitializerCount++; skip(r, wire); break;
      case 16: g.metadataProps.push(stringEntry(r, lengthEnd(r))); break;
      default: skip(r, wire);
    }
  });
  return g;
}

function opsetImport(r: Reader, end: number): OpsetImport {
  const o: OpsetImport = { domain: '', version: 0 };
  message(r, end, (no, wire) => {
    if (no === 1 && wire === 2) o.domain = r.string();
    else if (no === 2 && wire === 0) o.version = int64(r);
    else skip(r, wire);
  });
  return o;
}

function functionHeader(r: Reader, end: number): { name: string; domain: string } {
  const f = { name: '', domain: '' };
  message(r, end, (no, wire) => {
    if (no === 1 && wire === 2) f.name = r.string();
    else if (no === 10 && wire === 2) f.domain = r.string();
    else skip(r, wire);
  });
  return f;
}

/** Wire type of each ModelProto field the decoder reads. */
const MODEL_WIRE: Record<number, number> = { 1: 0, 2: 2, 3: 2, 4: 2, 5: 0, 6: 2, 7: 2, 8: 2, 14: 2, 25: 2 };

function model(r: Reader): ModelProto {
  const m: ModelProto = {
    irVersion: 0, opsetImport: [], producerName: '', producerVersion: '', domain: '', modelVersion: 0, docString: '',
    graph: null, metadataProps: [], functions: [], fieldsSeen: new Set(), mistyped: [],
  };
  message(r, r.len, (no, wire) => {
    m.fieldsSeen.add(no);
    if (MODEL_WIRE[no] !== undefined && MODEL_WIRE[no] !== wire) {
      // Another message type (a TensorProto, a checkpoint...) shares field numbers with other types.
      m.mistyped.push(no);
      skip(r, wire);
      return;
    }
    switch (no) {
      case 1: m.irVersion = int64(r); break;
      case 2: m.producerName = r.string(); break;
      case 3: m.producerVersion = r.string(); break;
      case 4: m.domain = r.string(); break;
      case 5: m.modelVersion = int64(r); break;
      case 6: m.docString = r.string(); break;
      case 7: m.graph = graph(r, lengthEnd(r), 0); break;
      case 8: m.opsetImport.push(opsetImport(r, lengthEnd(r))); break;
      case 14: m.metadataProps.push(stringEntry(r, lengthEnd(r))); break;
      case 25: m.functions.push(functionHeader(r, lengthEnd(r))); break;
      default: skip(r, wire);
    }
  });
  return m;
}

// ---------------------------------------------------------------- entry point

/** Recognisable non-ONNX formats, by their first bytes. */
function sniffOtherFormat(bytes: Uint8Array): string | null {
  const starts = (...sig: number[]) => sig.every((b, i) => bytes[i] === b);
  if (starts(0x89, 0x50, 0x4e, 0x47)) return 'a PNG image';
  if (starts(0xff, 0xd8, 0xff)) return 'a JPEG image';
  if (starts(0x47, 0x49, 0x46, 0x38)) return 'a GIF image';
  if (starts(0x25, 0x50, 0x44, 0x46)) return 'a PDF document';
  if (starts(0x50, 0x4b, 0x03, 0x04)) return 'a ZIP archive (a PyTorch .pt/.pth checkpoint or a zipped model?)';
  if (starts(0x1f, 0x8b)) return 'a gzip-compressed file';
  if (starts(0x80) && bytes.length > 1 && bytes[1] >= 2 && bytes[1] <= 5) return 'a Python pickle';
  if (starts(0x93, 0x4e, 0x55, 0x4d, 0x50, 0x59)) return 'a NumPy .npy array';
  if (bytes.length >= 8 && starts(0x47, 0x47, 0x55, 0x46)) return 'a GGUF model';
  // safetensors: 8-byte little-endian header length, then '{'
  if (bytes.length > 9 && bytes[0] !== 0x08 && bytes[8] === 0x7b && bytes[6] === 0 && bytes[7] === 0) return 'a safetensors file';
  // Text: the first bytes are all printable ASCII / UTF-8 / whitespace.
  const head = bytes.subarray(0, Math.min(bytes.length, 512));
  let printable = 0;
  for (const b of head) if (b === 9 || b === 10 || b === 13 || (b >= 32 && b < 127) || b >= 0xc2) printable++;
  if (printable === head.length) {
    // Say what kind of text, never what it says: the path may point at any file (a key, a token).
    const first = head.find((b) => b !== 9 && b !== 10 && b !== 13 && b !== 32);
    return first === 0x7b || first === 0x5b ? 'JSON text' : first === 0x3c ? 'XML/HTML text' : 'text (a source file or notes?), not a binary protobuf';
  }
  return null;
}

/**
 * Decodes ONNX ModelProto bytes. Throws OnnxImportError EMPTY / NOT_ONNX / TRUNCATED / CORRUPT.
 * Takes a Uint8Array (no file system access), so it runs in Node and in browser bundles.
 */
export function decodeModel(bytes: Uint8Array): ModelProto {
  if (!(bytes instanceof Uint8Array)) throw new OnnxImportError('NOT_ONNX', `expected the model bytes as a Uint8Array, got ${Object.prototype.toString.call(bytes)}`);
  if (bytes.length === 0) throw new OnnxImportError('EMPTY', 'the ONNX file is empty (0 bytes)');
  const other = sniffOtherFormat(bytes);
  if (other) throw new OnnxImportError('NOT_ONNX', `not an ONNX model: the bytes look like ${other}`);
  let m: ModelProto;
  try {
    m = model(Reader.create(bytes));
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    if (e instanceof MalformedModel && e.code === 'UNSUPPORTED_FEATURE') throw new OnnxImportError(e.code, `the ONNX model cannot be read: ${msg}`, { cause: e });
    // protobufjs reports reads past the end as "index out of range" (a RangeError); other RangeErrors are not truncation.
    if (/index out of range/.test(msg)) {
      throw new OnnxImportError('TRUNCATED', `the ONNX file is truncated or corrupt: the protobuf data ends in the middle of a field (${bytes.length} bytes; ${msg})`, { cause: e });
    }
    throw new OnnxImportError('CORRUPT', `the ONNX file is corrupt or not an ONNX model: invalid protobuf data (${msg})`, { cause: e });
  }
  if (!m.graph || (m.irVersion === 0 && m.opsetImport.length === 0)) {
    const what = m.graph ? 'no ir_version and no opset_import' : 'no graph';
    const mistyped = m.mistyped.length ? `; fields ${[...new Set(m.mistyped)].join(', ')} have the wrong types for a ModelProto, so this is probably another protobuf message` : '';
    throw new OnnxImportError('NOT_ONNX', `not an ONNX model: the protobuf data decodes but has ${what} (top-level fields ${[...m.fieldsSeen].sort((a, b) => a - b).join(', ') || 'none'}${mistyped})`);
  }
  return m;
}

/** UTF-8 text of a bytes attribute or string_data entry. */
export function utf8(bytes: Uint8Array | null): string {
  return bytes ? new TextDecoder().decode(bytes) : '';
}

/** Decodes a serialized TensorProto (e.g. the input_0.pb / output_0.pb files of ONNX test data). */
export function decodeTensor(bytes: Uint8Array): TensorProto {
  try {
    return tensor(Reader.create(bytes), bytes.length);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new OnnxImportError(/index out of range/.test(msg) ? 'TRUNCATED' : 'CORRUPT', `invalid TensorProto data (${bytes.length} bytes; ${msg})`, { cause: e });
  }
}

/**
 * A SequenceProto or OptionalProto (the input_N.pb / output_N.pb files of ONNX test data for sequence and
 * optional values). `elemType` is the proto's enum: 0 undefined, 1 tensor, 2 sparse tensor, 3 sequence,
 * 4 map, 5 optional. A sequence lists its elements; an optional holds one element or none.
 */
export interface ValueProto {
  kind: 'sequence' | 'optional';
  name: string;
  elemType: number;
  tensors: TensorProto[];
  /** Nested sequences (a sequence of sequences, or an optional holding a sequence). */
  sequences: ValueProto[];
  optionals: ValueProto[];
  /** Elements of a kind the importer does not read (sparse tensors, maps), counted. */
  otherCount: number;
}

export const VALUE_ELEM = { UNDEFINED: 0, TENSOR: 1, SPARSE_TENSOR: 2, SEQUENCE: 3, MAP: 4, OPTIONAL: 5 } as const;

function valueProto(r: Reader, end: number, kind: 'sequence' | 'optional', depth: number): ValueProto {
  if (depth > MAX_TYPE_DEPTH) throw new MalformedModel(`a sequence / optional value nests more than ${MAX_TYPE_DEPTH} deep`);
  const v: ValueProto = { kind, name: '', elemType: 0, tensors: [], sequences: [], optionals: [], otherCount: 0 };
  // SequenceProto: 3 tensor_values, 4 sparse_tensor_values, 5 sequence_values, 6 map_values, 7 optional_values;
  // OptionalProto: the same numbers for its single value.
  message(r, end, (no, wire) => {
    if (no === 1 && wire === 2) v.name = r.string();
    else if (no === 2 && wire === 0) v.elemType = r.int32();
    else if (no === 3 && wire === 2) v.tensors.push(tensor(r, lengthEnd(r)));
    else if (no === 5 && wire === 2) v.sequences.push(valueProto(r, lengthEnd(r), 'sequence', depth + 1));
    else if (no === 7 && wire === 2) v.optionals.push(valueProto(r, lengthEnd(r), 'optional', depth + 1));
    else if ((no === 4 || no === 6) && wire === 2) {
      v.otherCount++;
      skip(r, wire);
    } else skip(r, wire);
  });
  return v;
}

/** Decodes a serialized SequenceProto or OptionalProto (test data of sequence / optional values). */
export function decodeValue(bytes: Uint8Array, kind: 'sequence' | 'optional'): ValueProto {
  try {
    return valueProto(Reader.create(bytes), bytes.length, kind, 0);
  } catch (e) {
    const msg = e instanceof Error ? e.message : String(e);
    throw new OnnxImportError(/index out of range/.test(msg) ? 'TRUNCATED' : 'CORRUPT', `invalid ${kind === 'sequence' ? 'SequenceProto' : 'OptionalProto'} data (${bytes.length} bytes; ${msg})`, { cause: e });
  }
}
