/**
 * A minimal ONNX ModelProto writer for tests that need models no exporter writes (hostile external
 * data locations, crafted metadata): one graph of Identity/Add/MatMul-style nodes over float
 * initializers, with optional external data entries and metadata_props. Field numbers follow onnx.proto.
 */
import { Writer } from 'protobufjs/minimal';

export interface TestInitializer {
  name: string;
  dims: number[];
  /** float32 values stored in the model, or an external data reference. */
  values?: number[];
  external?: { location: string; offset?: number; length?: number };
}

export interface TestNode {
  opType: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  metadata?: Record<string, string>;
}

export interface TestModel {
  opset?: number;
  initializers: TestInitializer[];
  nodes: TestNode[];
  inputs?: { name: string; dims: number[] }[];
  outputs: { name: string; dims: number[] }[];
  /** value_info entries with metadata_props (the dynamo exporter's parameter signature). */
  valueInfo?: { name: string; dims: number[]; metadata: Record<string, string> }[];
}

function entry(w: Writer, field: number, key: string, value: string): void {
  w.uint32((field << 3) | 2).fork().uint32(10).string(key).uint32(18).string(value).ldelim();
}

function valueInfo(w: Writer, field: number, v: { name: string; dims: number[]; metadata?: Record<string, string> }): void {
  w.uint32((field << 3) | 2).fork();
  w.uint32(10).string(v.name);
  // TypeProto { tensor_type (1) { elem_type (1) = FLOAT, shape (2) { dim (1) { dim_value (1) } } } }
  w.uint32(18).fork().uint32(10).fork().uint32(8).int32(1).uint32(18).fork();
  for (const d of v.dims) w.uint32(10).fork().uint32(8).int64(d).ldelim();
  w.ldelim().ldelim().ldelim();
  for (const [k, val] of Object.entries(v.metadata ?? {})) entry(w, 4, k, val);
  w.ldelim();
}

/** Serializes a TestModel as ONNX bytes. */
export function writeOnnx(model: TestModel): Uint8Array {
  const w = Writer.create();
  w.uint32(8).int64(8); // ir_version
  w.uint32(66).fork().uint32(10).string('').uint32(16).int64(model.opset ?? 17).ldelim(); // opset_import
  w.uint32(58).fork(); // graph
  model.nodes.forEach((n, i) => {
    w.uint32(10).fork();
    for (const x of n.inputs) w.uint32(10).string(x);
    for (const y of n.outputs) w.uint32(18).string(y);
    w.uint32(26).string(n.name ?? `${n.opType}_${i}`);
    w.uint32(34).string(n.opType);
    for (const [k, v] of Object.entries(n.metadata ?? {})) entry(w, 9, k, v);
    w.ldelim();
  });
  w.uint32(18).string('test');
  for (const t of model.initializers) {
    w.uint32(42).fork();
    for (const d of t.dims) w.uint32(8).int64(d);
    w.uint32(16).int32(1); // FLOAT
    w.uint32(66).string(t.name);
    if (t.external) {
      entry(w, 13, 'location', t.external.location);
      if (t.external.offset !== undefined) entry(w, 13, 'offset', String(t.external.offset));
      if (t.external.length !== undefined) entry(w, 13, 'length', String(t.external.length));
      w.uint32(112).int32(1); // data_location EXTERNAL
    } else {
      const raw = new Uint8Array(new Float32Array(t.values ?? []).buffer);
      w.uint32(74).bytes(raw);
    }
    w.ldelim();
  }
  for (const i of model.inputs ?? []) valueInfo(w, 11, i);
  for (const o of model.outputs) valueInfo(w, 12, o);
  for (const v of model.valueInfo ?? []) valueInfo(w, 13, v);
  w.ldelim();
  return w.finish();
}
