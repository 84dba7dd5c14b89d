// A minimal ONNX ModelProto writer (protobuf wire format by hand), enough for the benchmark graphs
// fed to onnxruntime-web: float32 initializers, int attributes, static input/output shapes.
const enc = new TextEncoder();

function varint(n) {
  const out = [];
  let v = BigInt(n);
  if (v < 0n) v += 1n << 64n;
  do {
    let b = Number(v & 0x7fn);
    v >>= 7n;
    if (v > 0n) b |= 0x80;
    out.push(b);
  } while (v > 0n);
  return out;
}

const key = (field, wire) => varint((field << 3) | wire);
const concat = (parts) => {
  const n = parts.reduce((s, p) => s + p.length, 0);
  const out = new Uint8Array(n);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
};
const bytesField = (field, bytes) => concat([Uint8Array.from(key(field, 2)), Uint8Array.from(varint(bytes.length)), bytes]);
const stringField = (field, s) => bytesField(field, enc.encode(s));
const intField = (field, v) => Uint8Array.from([...key(field, 0), ...varint(v)]);

const FLOAT = 1;
const INT64 = 7;

function tensorShape(dims) {
  return concat(dims.map((d) => bytesField(1, typeof d === 'string' ? stringField(2, d) : intField(1, d))));
}

function valueInfo(name, elemType, dims) {
  const tensorType = concat([intField(1, elemType), bytesField(2, tensorShape(dims))]);
  return concat([stringField(1, name), bytesField(2, bytesField(1, tensorType))]);
}

function initializer(name, dims, data) {
  const raw = new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
  return concat([...dims.map((d) => intField(1, d)), intField(2, FLOAT), stringField(8, name), bytesField(9, raw)]);
}

function attribute(name, value) {
  // INT attribute (type 2).
  return concat([stringField(1, name), intField(3, value), intField(20, 2)]);
}

function node(op, inputs, outputs, name, attrs = {}) {
  return concat([
    ...inputs.map((i) => stringField(1, i)),
    ...outputs.map((o) => stringField(2, o)),
    stringField(3, name),
    stringField(4, op),
    ...Object.entries(attrs).map(([k, v]) => bytesField(5, attribute(k, v))),
  ]);
}

/**
 * graph: { nodes: [{op, inputs, outputs, attrs}], initializers: [{name, dims, data: Float32Array}],
 *          inputs: [{name, dims, type?}], outputs: [{name, dims}] } -> ONNX bytes (opset 13).
 */
export function buildModel(graph) {
  const g = concat([
    ...graph.nodes.map((n, i) => bytesField(1, node(n.op, n.inputs, n.outputs, n.name ?? `${n.op}_${i}`, n.attrs))),
    stringField(2, 'bench'),
    ...graph.initializers.map((t) => bytesField(5, initializer(t.name, t.dims, t.data))),
    ...graph.inputs.map((v) => bytesField(11, valueInfo(v.name, v.type === 'int64' ? INT64 : FLOAT, v.dims))),
    ...graph.outputs.map((v) => bytesField(12, valueInfo(v.name, FLOAT, v.dims))),
  ]);
  const opset = concat([stringField(1, ''), intField(2, 13)]);
  return concat([intField(1, 8), stringField(2, 'gradient-lens-bench'), bytesField(7, g), bytesField(8, opset)]);
}
