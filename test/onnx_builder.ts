/**
 * Builds small ONNX models in tests (protobufjs's Writer, field numbers of onnx/onnx.proto), so an op's
 * import can be checked directly: one node or a few, inputs, initializers, attributes, subgraphs.
 */
import { Writer } from 'protobufjs/minimal';

export type AttrValue =
  | number | string | number[] | { floats: number[] } | { tensor: TensorSpec } | { graph: GraphSpec };

export interface TensorSpec {
  name?: string;
  /** ONNX element type: 1 float, 6 int32, 7 int64, 9 bool, 11 double... */
  type: number;
  dims: number[];
  values: ArrayLike<number>;
}

export interface NodeSpec {
  op: string;
  inputs: string[];
  outputs: string[];
  name?: string;
  domain?: string;
  /** Integers are written as INT(S), other numbers as FLOAT(S) unless listed in `floatAttrs`. */
  attrs?: Record<string, AttrValue>;
  floatAttrs?: string[];
}

export interface ValueSpec {
  name: string;
  type: number;
  /** null: unknown rank. Strings are symbolic dims. */
  dims: (number | string)[] | null;
}

export interface GraphSpec {
  name?: string;
  nodes: NodeSpec[];
  inputs: ValueSpec[];
  outputs: ValueSpec[];
  initializers?: TensorSpec[];
}

export interface ModelSpec extends GraphSpec {
  opset?: number;
  producer?: string;
  extraOpsets?: { domain: string; version: number }[];
}

function tensorBytes(t: TensorSpec): Uint8Array {
  const n = t.values.length;
  const size = t.type === 7 || t.type === 11 ? 8 : t.type === 9 || t.type === 2 || t.type === 3 ? 1 : 4;
  const view = new DataView(new ArrayBuffer(n * size));
  for (let i = 0; i < n; i++) {
    const v = t.values[i];
    switch (t.type) {
      case 1: view.setFloat32(i * 4, v, true); break;
      case 11: view.setFloat64(i * 8, v, true); break;
      case 6: view.setInt32(i * 4, v, true); break;
      case 7: view.setBigInt64(i * 8, BigInt(Math.trunc(v)), true); break;
      case 9: case 2: view.setUint8(i, v ? (t.type === 9 ? 1 : v) : 0); break;
      case 3: view.setInt8(i, v); break;
      default: throw new Error(`onnx_builder: no raw encoding for type ${t.type}`);
    }
  }
  return new Uint8Array(view.buffer);
}

function writeTensor(w: Writer, t: TensorSpec): void {
  for (const d of t.dims) w.uint32(8).int64(d);
  w.uint32(16).int32(t.type);
  if (t.name) w.uint32(66).string(t.name);
  w.uint32(74).bytes(tensorBytes(t));
}

function sub(w: Writer, field: number, fill: (w: Writer) => void): void {
  w.uint32((field << 3) | 2).fork();
  fill(w);
  w.ldelim();
}

function writeAttr(w: Writer, name: string, v: AttrValue, float: boolean): void {
  w.uint32(10).string(name);
  if (typeof v === 'number') {
    if (Number.isInteger(v) && !float) w.uint32(24).int64(v).uint32(160).int32(2);
    else w.uint32(21).float(v).uint32(160).int32(1);
  } else if (typeof v === 'string') {
    w.uint32(34).bytes(new TextEncoder().encode(v)).uint32(160).int32(3);
  } else if (Array.isArray(v)) {
    if (float) {
      for (const x of v) w.uint32(61).float(x);
      w.uint32(160).int32(6);
    } else {
      for (const x of v) w.uint32(64).int64(x);
      w.uint32(160).int32(7);
    }
  } else if ('floats' in v) {
    for (const x of v.floats) w.uint32(61).float(x);
    w.uint32(160).int32(6);
  } else if ('tensor' in v) {
    sub(w, 5, (x) => writeTensor(x, v.tensor));
    w.uint32(160).int32(4);
  } else {
    sub(w, 6, (x) => writeGraph(x, v.graph));
    w.uint32(160).int32(5);
  }
}

function writeValue(w: Writer, v: ValueSpec): void {
  w.uint32(10).string(v.name);
  sub(w, 2, (t) => sub(t, 1, (tt) => {
    tt.uint32(8).int32(v.type);
    if (v.dims) {
      sub(tt, 2, (s) => {
        for (const d of v.dims!) sub(s, 1, (dim) => (typeof d === 'number' ? dim.uint32(8).int64(d) : dim.uint32(18).string(d)));
      });
    }
  }));
}

function writeGraph(w: Writer, g: GraphSpec): void {
  for (const n of g.nodes) {
    sub(w, 1, (x) => {
      for (const i of n.inputs) x.uint32(10).string(i);
      for (const o of n.outputs) x.uint32(18).string(o);
      if (n.name) x.uint32(26).string(n.name);
      x.uint32(34).string(n.op);
      for (const [k, v] of Object.entries(n.attrs ?? {})) sub(x, 5, (a) => writeAttr(a, k, v, n.floatAttrs?.includes(k) ?? false));
      if (n.domain) x.uint32(58).string(n.domain);
    });
  }
  w.uint32(18).string(g.name ?? 'g');
  for (const t of g.initializers ?? []) sub(w, 5, (x) => writeTensor(x, t));
  for (const v of g.inputs) sub(w, 11, (x) => writeValue(x, v));
  for (const v of g.outputs) sub(w, 12, (x) => writeValue(x, v));
}

/** The bytes of a ModelProto (IR version 10). */
export function onnxModel(spec: ModelSpec): Uint8Array {
  const w = Writer.create();
  w.uint32(8).int64(10);
  w.uint32(18).string(spec.producer ?? 'onnx_builder');
  sub(w, 7, (g) => writeGraph(g, spec));
  sub(w, 8, (o) => o.uint32(10).string('').uint32(16).int64(spec.opset ?? 23));
  for (const e of spec.extraOpsets ?? []) sub(w, 8, (o) => o.uint32(10).string(e.domain).uint32(16).int64(e.version));
  return w.finish();
}
