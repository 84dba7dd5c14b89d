/**
 * ONNX models for tests, the one writer of the test suite:
 * - encodeModel: the inverse of engine/onnx/proto.ts's decoder, on protobufjs's minimal Writer. It writes
 *   exactly the fields the decoder reads (same field numbers), so a model can be decoded, changed field by
 *   field (the fuzzer's field mutants) and encoded again;
 * - buildModel: a model from a few lines of data (nodes, inputs, outputs, initializers as TensorProtos or
 *   as plain values stored as raw_data, attributes, subgraphs), for op tests and hostile models.
 */
import { Writer } from 'protobufjs/minimal';
import type { AttributeProto, DimProto, GraphProto, ModelProto, NodeProto, StringEntry, TensorProto, TypeProto, ValueInfoProto } from '../engine/onnx/proto';
import { AttrType, DataType } from '../engine/onnx/proto';

/** int64 varint of any JS number (negative values as two's complement, as protobuf wants). */
function int64(w: Writer, v: number): void {
  if (Number.isSafeInteger(v) && v >= 0 && v <= 0xffffffff) w.uint64(v);
  else w.int64(BigInt.asIntN(64, BigInt(Math.trunc(Number.isFinite(v) ? v : 0))).toString() as unknown as number);
}

function message(w: Writer, field: number, body: (w: Writer) => void): void {
  w.uint32((field << 3) | 2).fork();
  body(w);
  w.ldelim();
}

function str(w: Writer, field: number, s: string): void {
  if (s !== '') w.uint32((field << 3) | 2).string(s);
}

function bytes(w: Writer, field: number, b: Uint8Array): void {
  w.uint32((field << 3) | 2).bytes(b);
}

function varintField(w: Writer, field: number, v: number): void {
  w.uint32(field << 3);
  int64(w, v);
}

function packed(w: Writer, field: number, values: readonly number[], one: (w: Writer, v: number) => void): void {
  if (values.length === 0) return;
  message(w, field, (m) => values.forEach((v) => one(m, v)));
}

function entry(w: Writer, field: number, e: StringEntry): void {
  message(w, field, (m) => {
    str(m, 1, e.key);
    str(m, 2, e.value);
  });
}

function tensor(w: Writer, t: TensorProto): void {
  packed(w, 1, t.dims, int64);
  if (t.dataType) w.uint32(2 << 3).int32(t.dataType);
  packed(w, 4, t.floatData, (m, v) => m.float(v));
  packed(w, 5, t.int32Data, (m, v) => m.int32(v));
  for (const s of t.stringData) bytes(w, 6, s);
  packed(w, 7, t.int64Data, int64);
  str(w, 8, t.name);
  if (t.rawData) bytes(w, 9, t.rawData);
  packed(w, 10, t.doubleData, (m, v) => m.double(v));
  packed(w, 11, t.uint64Data, int64);
  str(w, 12, t.docString);
  for (const e of t.externalData) entry(w, 13, e);
  if (t.dataLocation) w.uint32(14 << 3).int32(t.dataLocation);
}

function attribute(w: Writer, a: AttributeProto): void {
  str(w, 1, a.name);
  const has = (no: number) => a.present.has(no);
  if (has(2) || a.type === AttrType.FLOAT) w.uint32((2 << 3) | 5).float(a.f);
  if (has(3) || a.type === AttrType.INT) varintField(w, 3, a.i);
  if (a.s) bytes(w, 4, a.s);
  if (a.t) message(w, 5, (m) => tensor(m, a.t!));
  if (a.g) message(w, 6, (m) => graph(m, a.g!));
  packed(w, 7, a.floats, (m, v) => m.float(v));
  packed(w, 8, a.ints, int64);
  for (const s of a.strings) bytes(w, 9, s);
  for (const t of a.tensors) message(w, 10, (m) => tensor(m, t));
  for (const g of a.graphs) message(w, 11, (m) => graph(m, g));
  if (a.tp) message(w, 14, (m) => type(m, a.tp!));
  if (a.type) w.uint32(20 << 3).int32(a.type);
  str(w, 21, a.refAttrName);
}

function node(w: Writer, n: NodeProto): void {
  for (const i of n.input) w.uint32((1 << 3) | 2).string(i);
  for (const o of n.output) w.uint32((2 << 3) | 2).string(o);
  str(w, 3, n.name);
  str(w, 4, n.opType);
  for (const a of n.attribute) message(w, 5, (m) => attribute(m, a));
  str(w, 6, n.docString);
  str(w, 7, n.domain);
  for (const e of n.metadataProps) entry(w, 9, e);
}

function dim(w: Writer, d: DimProto): void {
  if (d.value !== null) varintField(w, 1, d.value);
  if (d.param !== null) w.uint32((2 << 3) | 2).string(d.param);
}

function type(w: Writer, t: TypeProto): void {
  const field = t.kind === 'sparse_tensor' ? 8 : t.kind === 'sequence' ? 4 : t.kind === 'map' ? 5 : t.kind === 'optional' ? 9 : 1;
  message(w, field, (m) => {
    if ((field === 4 || field === 9) && t.elem) message(m, 1, (e) => type(e, t.elem!));
    if (field !== 1 && field !== 8) return;
    if (t.elemType) m.uint32(1 << 3).int32(t.elemType);
    if (t.shape) message(m, 2, (s) => t.shape!.forEach((d) => message(s, 1, (x) => dim(x, d))));
  });
}

function valueInfo(w: Writer, v: ValueInfoProto): void {
  str(w, 1, v.name);
  if (v.type) message(w, 2, (m) => type(m, v.type!));
  str(w, 3, v.docString);
  for (const e of v.metadataProps) entry(w, 4, e);
}

function graph(w: Writer, g: GraphProto): void {
  for (const n of g.node) message(w, 1, (m) => node(m, n));
  str(w, 2, g.name);
  for (const t of g.initializer) message(w, 5, (m) => tensor(m, t));
  str(w, 10, g.docString);
  for (const v of g.input) message(w, 11, (m) => valueInfo(m, v));
  for (const v of g.output) message(w, 12, (m) => valueInfo(m, v));
  for (const v of g.valueInfo) message(w, 13, (m) => valueInfo(m, v));
  for (const e of g.metadataProps) entry(w, 16, e);
}

/** ModelProto -> bytes (fields the decoder reads; model-local function bodies are not kept). */
export function encodeModel(m: ModelProto): Uint8Array {
  const w = Writer.create();
  if (m.irVersion) varintField(w, 1, m.irVersion);
  str(w, 2, m.producerName);
  str(w, 3, m.producerVersion);
  str(w, 4, m.domain);
  if (m.modelVersion) varintField(w, 5, m.modelVersion);
  str(w, 6, m.docString);
  if (m.graph) message(w, 7, (g) => graph(g, m.graph!));
  for (const o of m.opsetImport) message(w, 8, (x) => {
    str(x, 1, o.domain);
    varintField(x, 2, o.version);
  });
  for (const e of m.metadataProps) entry(w, 14, e);
  for (const f of m.functions) message(w, 25, (x) => {
    str(x, 1, f.name);
    str(x, 10, f.domain);
  });
  return w.finish();
}

// ---------------------------------------------------------------- building models from a few lines

/** A tensor given by its values, stored as raw_data (little-endian, as ONNX wants). */
export interface TensorSpec {
  name?: string;
  /** ONNX element type: 1 float, 2 uint8, 3 int8, 6 int32, 7 int64, 9 bool, 11 double. */
  type: number;
  dims: number[];
  values: ArrayLike<number>;
}

export type AttrValue =
  | number | number[] | string | { floats: number[] } | { float: number }
  | { tensor: TensorProto | TensorSpec } | { graph: GraphProto | GraphSpec } | { typeProto: ValueSpec };

/** `float`: write a number (or numbers) as FLOAT(S) even when integral (NodeSpec.floatAttrs). */
export function attr(name: string, value: AttrValue, float = false): AttributeProto {
  const a: AttributeProto = { name, type: 0, f: 0, i: 0, s: null, t: null, g: null, floats: [], ints: [], strings: [], tensors: [], graphs: [], refAttrName: '', present: new Set() };
  if (typeof value === 'number') {
    if (Number.isInteger(value) && !float) {
      a.type = AttrType.INT;
      a.i = value;
    } else {
      a.type = AttrType.FLOAT;
      a.f = value;
    }
  } else if (Array.isArray(value)) {
    if (float) {
      a.type = AttrType.FLOATS;
      a.floats = value;
    } else {
      a.type = AttrType.INTS;
      a.ints = value;
    }
  } else if (typeof value === 'string') {
    a.type = AttrType.STRING;
    a.s = new TextEncoder().encode(value);
  } else if ('floats' in value) {
    a.type = AttrType.FLOATS;
    a.floats = value.floats;
  } else if ('float' in value) {
    a.type = AttrType.FLOAT;
    a.f = value.float;
  } else if ('tensor' in value) {
    a.type = AttrType.TENSOR;
    a.t = tensorOf(value.tensor);
  } else if ('typeProto' in value) {
    a.type = AttrType.TYPE_PROTO;
    a.tp = valueInfoOf(value.typeProto).type;
  } else {
    a.type = AttrType.GRAPH;
    a.g = 'nodes' in value.graph ? graphProto(value.graph) : value.graph;
  }
  return a;
}

/** A TensorProto with its values in the typed field of `dataType` (float_data, int64_data...). */
export function tensorProto(name: string, dims: number[], dataType: number, values: readonly number[]): TensorProto {
  const t: TensorProto = { name, dims, dataType, rawData: null, floatData: [], int32Data: [], int64Data: [], doubleData: [], uint64Data: [], stringData: [], externalData: [], dataLocation: 0, docString: '' };
  if (dataType === DataType.FLOAT) t.floatData = [...values];
  else if (dataType === DataType.DOUBLE) t.doubleData = [...values];
  else if (dataType === DataType.INT64) t.int64Data = [...values];
  else if (dataType === DataType.UINT64 || dataType === DataType.UINT32) t.uint64Data = [...values];
  else t.int32Data = [...values];
  return t;
}

/** raw_data bytes of a TensorSpec. */
function rawBytes(t: TensorSpec): Uint8Array {
  const n = t.values.length;
  const size = t.type === DataType.INT64 || t.type === DataType.DOUBLE ? 8 : t.type === DataType.BOOL || t.type === DataType.UINT8 || t.type === DataType.INT8 ? 1 : 4;
  const view = new DataView(new ArrayBuffer(n * size));
  for (let i = 0; i < n; i++) {
    const v = t.values[i];
    switch (t.type) {
      case DataType.FLOAT: view.setFloat32(i * 4, v, true); break;
      case DataType.DOUBLE: view.setFloat64(i * 8, v, true); break;
      case DataType.INT32: view.setInt32(i * 4, v, true); break;
      case DataType.INT64: view.setBigInt64(i * 8, BigInt(Math.trunc(v)), true); break;
      case DataType.BOOL: case DataType.UINT8: view.setUint8(i, v ? (t.type === DataType.BOOL ? 1 : v) : 0); break;
      case DataType.INT8: view.setInt8(i, v); break;
      default: throw new Error(`onnx_builder: no raw encoding for type ${t.type}`);
    }
  }
  return new Uint8Array(view.buffer);
}

/** A float initializer whose data lives in an external file (`location`, optional offset and length in bytes). */
export function externalTensor(name: string, dims: number[], location: string, offset?: number, length?: number): TensorProto {
  const entries = [['location', location], ['offset', offset], ['length', length]] as const;
  return {
    ...tensorProto(name, dims, DataType.FLOAT, []), dataLocation: 1,
    externalData: entries.filter(([, v]) => v !== undefined).map(([key, v]) => ({ key, value: String(v) })),
  };
}

function tensorOf(t: TensorProto | TensorSpec): TensorProto {
  if (!('values' in t)) return t;
  return { ...tensorProto(t.name ?? '', t.dims, t.type, []), rawData: rawBytes(t) };
}

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  /** Integers are written as INT(S), other numbers as FLOAT(S), unless listed in `floatAttrs`. */
  attrs?: Record<string, AttrValue>;
  floatAttrs?: string[];
  docString?: string;
  metadata?: Record<string, string>;
}

export interface ValueSpec {
  name: string;
  /** DataType number; default FLOAT. */
  type?: number;
  /** Numbers, symbolic names, or null for an unknown dim; omitted or null for an unknown rank. */
  dims?: (number | string | null)[] | null;
  /** metadata_props (the dynamo exporter's parameter signature on value_info). */
  metadata?: Record<string, string>;
  /** A sequence / optional of tensors of `type` and `dims`, a sparse tensor, or a map (default: the tensor itself). */
  kind?: 'sequence' | 'optional' | 'map' | 'sparse_tensor';
}

export interface GraphSpec {
  name?: string;
  nodes: NodeSpec[];
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  initializers?: (TensorProto | TensorSpec)[];
  valueInfo?: ValueSpec[];
}

export interface ModelSpec extends GraphSpec {
  /** Default-domain opset; null for no opset import at all. Default 17. */
  opset?: number | null;
  /** Opset imports instead of the default one. */
  opsets?: { domain: string; version: number }[];
  /** Opset imports besides the default one. */
  extraOpsets?: { domain: string; version: number }[];
  /** Default 8. */
  irVersion?: number;
  producer?: string;
  metadata?: Record<string, string>;
}

function valueInfoOf(v: ValueSpec): ValueInfoProto {
  return {
    name: v.name,
    docString: '',
    metadataProps: Object.entries(v.metadata ?? {}).map(([key, value]) => ({ key, value })),
    type: v.kind === 'sparse_tensor' ? { ...tensorType(v), kind: v.kind } : v.kind ? { kind: v.kind, elemType: 0, shape: null, elem: v.kind === 'map' ? null : tensorType(v) } : tensorType(v),
  };
}

function tensorType(v: ValueSpec): TypeProto {
  return { kind: 'tensor', elemType: v.type ?? DataType.FLOAT, shape: v.dims === undefined || v.dims === null ? null : v.dims.map((d) => ({ value: typeof d === 'number' ? d : null, param: typeof d === 'string' ? d : null })), elem: null };
}

export function graphProto(spec: GraphSpec): GraphProto {
  return {
    name: spec.name ?? 'g',
    node: spec.nodes.map((n, i) => ({
      name: n.name ?? `${n.op}_${i}`, opType: n.op, domain: n.domain ?? '', input: n.inputs, output: n.outputs,
      attribute: Object.entries(n.attrs ?? {}).map(([k, v]) => attr(k, v, n.floatAttrs?.includes(k) ?? false)), docString: n.docString ?? '',
      metadataProps: Object.entries(n.metadata ?? {}).map(([key, value]) => ({ key, value })),
    })),
    initializer: (spec.initializers ?? []).map(tensorOf),
    sparseInitializerCount: 0,
    input: spec.inputs.map(valueInfoOf),
    output: spec.outputs.map(valueInfoOf),
    valueInfo: (spec.valueInfo ?? []).map(valueInfoOf),
    docString: '',
    metadataProps: [],
  };
}

export function modelProto(spec: ModelSpec): ModelProto {
  const opsets = spec.opsets ?? (spec.opset === null ? [] : [{ domain: '', version: spec.opset ?? 17 }]);
  return {
    irVersion: spec.irVersion ?? 8, opsetImport: [...opsets, ...(spec.extraOpsets ?? [])], producerName: spec.producer ?? 'gradient-lens-test', producerVersion: '1', domain: '',
    modelVersion: 0, docString: '', graph: graphProto(spec), metadataProps: Object.entries(spec.metadata ?? {}).map(([key, value]) => ({ key, value })), functions: [],
    fieldsSeen: new Set(), mistyped: [],
  };
}

/** ONNX bytes of a model given in a few lines. */
export function buildModel(spec: ModelSpec): Uint8Array {
  return encodeModel(modelProto(spec));
}
