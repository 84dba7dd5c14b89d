/**
 * Seeded fuzz cases for the importer and a full inspection: hand-made hostile models (the classes of
 * issue 15: huge allocations, bad dims, invalid graphs, odd attributes, deep nesting, big graphs in any
 * order), byte mutants (bit flips, truncation, overwritten, inserted and deleted runs) and field mutants
 * (one field of a decoded model changed, then encoded again) of the examples, test fixtures and ONNX test
 * data. The same seed gives the same cases.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Writer } from 'protobufjs/minimal';
import { Rng } from '../../engine';
import { decodeModel, DataType, AttrType } from '../../engine/onnx/proto';
import type { ModelProto, NodeProto } from '../../engine/onnx/proto';
import { attr, buildModel, encodeModel, tensorProto, ModelSpec, NodeSpec } from '../onnx_builder';
import type { TensorProto } from '../../engine/onnx/proto';
import { sharedDir } from '../helpers';

export interface FuzzCase {
  id: string;
  kind: 'structured' | 'bytes' | 'field';
  /** What the case does, for the report. */
  what: string;
  bytes: Uint8Array;
}

const F = DataType.FLOAT;
const I64 = DataType.INT64;

function ints(name: string, values: number[], dims = [values.length]) {
  return tensorProto(name, dims, I64, values);
}

function floats(name: string, dims: number[], fill: (i: number) => number = () => 0.1) {
  const n = dims.reduce((a, b) => a * b, 1);
  return tensorProto(name, dims, F, Array.from({ length: n }, (_, i) => fill(i)));
}

/** x [2, 4] -> Linear(4, 3) -> y: a trainable model the other cases vary. */
function linear(extra: Partial<ModelSpec> = {}, node: Partial<NodeSpec> = {}): Uint8Array {
  return buildModel({
    nodes: [{ op: 'Gemm', inputs: ['x', 'w', 'b'], outputs: ['y'], attrs: { transB: 1 }, ...node }],
    inputs: [{ name: 'x', dims: [2, 4] }],
    outputs: [{ name: 'y', dims: [2, 3] }],
    initializers: [floats('w', [3, 4], (i) => (i % 5) / 7 - 0.3), floats('b', [3])],
    ...extra,
  });
}

/** x -> op(...) -> Add with a weight -> y, the op's output feeding a trainable path. */
function withOp(op: NodeSpec, initializers: TensorProto[] = [], xDims: (number | string)[] = [2, 4], yDims?: (number | string)[]): Uint8Array {
  return buildModel({
    nodes: [op, { op: 'Mul', inputs: [op.outputs[0], 'w'], outputs: ['y'] }],
    inputs: [{ name: 'x', dims: xDims }],
    outputs: [{ name: 'y', dims: yDims }],
    initializers: [floats('w', [1], () => 0.5), ...initializers],
  });
}

/** A chain of n Relu-free Adds (x + w_i), stored in `order`. */
function chain(n: number, order: 'forward' | 'reverse' | 'shuffled', rng: Rng): Uint8Array {
  const nodes: NodeSpec[] = [];
  for (let i = 0; i < n; i++) nodes.push({ op: 'Add', inputs: [i === 0 ? 'x' : `v${i - 1}`, 'w'], outputs: [i === n - 1 ? 'y' : `v${i}`], name: `/layers.${i % 97}/Add_${i}` });
  if (order === 'reverse') nodes.reverse();
  if (order === 'shuffled') for (let i = nodes.length - 1; i > 0; i--) {
    const j = Math.floor(rng.uniform() * (i + 1));
    [nodes[i], nodes[j]] = [nodes[j], nodes[i]];
  }
  return buildModel({ nodes, inputs: [{ name: 'x', dims: [2, 4] }], outputs: [{ name: 'y', dims: [2, 4] }], initializers: [floats('w', [4])] });
}

/** Length-delimited field `field` holding `body` (protobuf wire type 2). */
function lenField(w: Writer, field: number, body: Uint8Array | string): Writer {
  w.uint32((field << 3) | 2);
  return typeof body === 'string' ? w.string(body) : w.bytes(body);
}

/** A float32 or bool tensor ValueInfoProto of fixed dims, encoded. */
function valueInfoBytes(name: string, elemType: number, dims: number[]): Uint8Array {
  const shape = Writer.create();
  for (const d of dims) lenField(shape, 1, Writer.create().uint32(8).int64(d).finish());
  const tensorType = Writer.create().uint32(8).int32(elemType);
  lenField(tensorType, 2, shape.finish());
  const type = lenField(Writer.create(), 1, tensorType.finish()).finish();
  return lenField(lenField(Writer.create(), 1, name), 2, type).finish();
}

/** GraphProto bytes: one If(c) -> r node with the given branch graphs (already encoded), plus `inputs`. */
function ifGraphBytes(thenBranch: Uint8Array, elseBranch: Uint8Array, inputs: Uint8Array[] = []): Uint8Array {
  const node = Writer.create();
  lenField(node, 1, 'c');
  lenField(node, 2, 'r');
  lenField(node, 4, 'If');
  for (const [name, g] of [['then_branch', thenBranch], ['else_branch', elseBranch]] as const) {
    const a = lenField(Writer.create(), 1, name);
    lenField(a, 6, g).uint32(20 << 3).int32(AttrType.GRAPH);
    lenField(node, 5, a.finish());
  }
  const graph = lenField(Writer.create(), 1, node.finish());
  for (const v of inputs) lenField(graph, 11, v);
  return lenField(graph, 12, valueInfoBytes('r', F, [2, 4])).finish();
}

/**
 * If subgraphs nested `depth` deep (each then-branch holds the next If; else-branches are a leaf),
 * encoded by hand from the inside out: a recursive encoder would overflow its own stack first.
 */
function nestedIf(depth: number): Uint8Array {
  const leafNode = lenField(lenField(lenField(Writer.create(), 1, 'x'), 2, 'r'), 4, 'Identity').finish();
  const leaf = lenField(lenField(Writer.create(), 1, leafNode), 12, valueInfoBytes('r', F, [2, 4])).finish();
  let inner = leaf;
  for (let d = 1; d < depth; d++) inner = ifGraphBytes(inner, leaf);
  const top = ifGraphBytes(inner, leaf, [valueInfoBytes('x', F, [2, 4]), valueInfoBytes('c', DataType.BOOL, [])]);
  const model = Writer.create().uint32(8).int64(8);
  lenField(model, 8, lenField(Writer.create(), 1, '').uint32(16).int64(17).finish());
  return lenField(model, 7, top).finish();
}

/** The hand-made hostile models. */
export function structuredCases(rng: Rng, bigGraph = 20_000): FuzzCase[] {
  const c = (id: string, what: string, bytes: () => Uint8Array): FuzzCase => ({ id: `s:${id}`, kind: 'structured', what, bytes: bytes() });
  const huge = 2 ** 28;
  return [
    c('range-huge', 'Range(0, 2^28)', () => withOp({ op: 'Range', inputs: ['s', 'l', 'd'], outputs: ['r'] }, [ints('s', [0], []), ints('l', [huge], []), ints('d', [1], [])])),
    c('range-inf', 'Range with an infinite limit', () => buildModel({ nodes: [{ op: 'Range', inputs: ['s', 'l', 'd'], outputs: ['y'] }], inputs: [{ name: 'x', dims: [1] }], outputs: [{ name: 'y' }], initializers: [floats('s', [], () => 0), floats('l', [], () => Infinity), floats('d', [], () => 1)] })),
    c('constofshape-huge', 'ConstantOfShape [2^28]', () => withOp({ op: 'ConstantOfShape', inputs: ['shape'], outputs: ['r'] }, [ints('shape', [huge])])),
    c('constofshape-2^40', 'ConstantOfShape [2^20, 2^20]', () => withOp({ op: 'ConstantOfShape', inputs: ['shape'], outputs: ['r'] }, [ints('shape', [2 ** 20, 2 ** 20])])),
    c('constofshape-neg', 'ConstantOfShape [-4]', () => withOp({ op: 'ConstantOfShape', inputs: ['shape'], outputs: ['r'] }, [ints('shape', [-4])])),
    c('sixteen-under-limit', '16 ConstantOfShape outputs each under the per-tensor limit, 4 GiB together', () => buildModel({
      nodes: [...Array.from({ length: 16 }, (_, i) => ({ op: 'ConstantOfShape', inputs: ['shape'], outputs: [`c${i}`], attrs: { value: { tensor: floats('v', [1], () => 1) } } })),
        { op: 'Sum', inputs: Array.from({ length: 16 }, (_, i) => `c${i}`), outputs: ['s'] }, { op: 'ReduceSum', inputs: ['s'], outputs: ['r'], attrs: { keepdims: 0 } }, { op: 'Mul', inputs: ['r', 'w'], outputs: ['y'] }],
      inputs: [{ name: 'x', dims: [1] }], outputs: [{ name: 'y' }], initializers: [floats('w', [1]), ints('shape', [2 ** 26])],
    })),
    c('onehot-huge', 'OneHot with depth 2^28', () => withOp({ op: 'OneHot', inputs: ['i', 'depth', 'vals'], outputs: ['r'] }, [ints('i', [1, 2]), ints('depth', [huge], []), floats('vals', [2], (i) => i) ])),
    c('onehot-negative', 'OneHot with depth -5', () => withOp({ op: 'OneHot', inputs: ['i', 'depth', 'vals'], outputs: ['r'] }, [ints('i', [1, 2]), ints('depth', [-5], []), floats('vals', [2], (i) => i) ])),
    c('tile-negative', 'Tile with negative repeats', () => withOp({ op: 'Tile', inputs: ['x', 'reps'], outputs: ['r'] }, [ints('reps', [-2, 1])])),
    c('expand-zero', 'Expand to a zero dim (empty loss)', () => withOp({ op: 'Expand', inputs: ['x', 'shape'], outputs: ['r'] }, [ints('shape', [0, 4])])),
    c('expand-neg', 'Expand to a negative dim', () => withOp({ op: 'Expand', inputs: ['x', 'shape'], outputs: ['r'] }, [ints('shape', [-3, 4])])),
    c('reshape-huge', 'Reshape to [2^31, 2^31]', () => withOp({ op: 'Reshape', inputs: ['x', 'shape'], outputs: ['r'] }, [ints('shape', [2 ** 31, 2 ** 31])])),
    c('neg-input-dim', 'graph input declared [-4, 4]', () => linear({ inputs: [{ name: 'x', dims: [-4, 4] }] })),
    c('huge-input-dim', 'graph input declared [2^40, 4]', () => linear({ inputs: [{ name: 'x', dims: [2 ** 40, 4] }] })),
    ...['constructor', '__proto__', 'toString', 'valueOf', 'hasOwnProperty'].map((name) => c(`symbolic-${name}`, `symbolic dim named ${name}`, () => linear({ inputs: [{ name: 'x', dims: [name, 4] }], outputs: [{ name: 'y', dims: [name, 3] }] }))),
    c('gemm-transB-2', 'Gemm transB = 2 (true)', () => linear({}, { attrs: { transB: 2 } })),
    c('gemm-transB-neg', 'Gemm transB = -1 (true)', () => linear({}, { attrs: { transB: -1 } })),
    c('avgpool-cip', 'AveragePool count_include_pad = -100', () => buildModel({
      nodes: [{ op: 'AveragePool', inputs: ['x'], outputs: ['p'], attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1], count_include_pad: -100 } }, { op: 'Mul', inputs: ['p', 'w'], outputs: ['y'] }],
      inputs: [{ name: 'x', dims: [1, 1, 4, 4] }], outputs: [{ name: 'y' }], initializers: [floats('w', [1])],
    })),
    c('attr-wrong-type', 'Gemm alpha given as a string', () => linear({}, { attrs: { transB: 1, alpha: 'big' } })),
    c('attr-misspelled', 'Gemm transb (misspelled)', () => linear({}, { attrs: { transb: 1 } })),
    c('attr-twice', 'an attribute given twice', () => encodeModel((() => {
      const m = decodeModel(linear());
      m.graph!.node[0].attribute.push(attr('transB', 0));
      return m;
    })())),
    c('no-opset', 'no opset import', () => linear({ opset: null })),
    c('unknown-domain', 'a node in a domain the model does not import', () => linear({}, { domain: 'com.evil' })),
    c('cycle', 'a cycle a -> b -> a', () => buildModel({
      nodes: [{ op: 'Add', inputs: ['x', 'b'], outputs: ['a'] }, { op: 'Mul', inputs: ['a', 'w'], outputs: ['b'] }, { op: 'Identity', inputs: ['b'], outputs: ['y'] }],
      inputs: [{ name: 'x', dims: [2] }], outputs: [{ name: 'y' }], initializers: [floats('w', [2])],
    })),
    c('self-loop', 'a node reading its own output', () => buildModel({ nodes: [{ op: 'Add', inputs: ['x', 'y'], outputs: ['y'] }], inputs: [{ name: 'x', dims: [2] }], outputs: [{ name: 'y' }] })),
    c('dangling', 'a node reading a value nobody defines', () => linear({}, { inputs: ['x', 'w', 'nobody'] })),
    c('dup-output', 'two nodes define one value', () => buildModel({
      nodes: [{ op: 'Relu', inputs: ['x'], outputs: ['a'] }, { op: 'Sigmoid', inputs: ['x'], outputs: ['a'] }, { op: 'Mul', inputs: ['a', 'w'], outputs: ['y'] }],
      inputs: [{ name: 'x', dims: [2] }], outputs: [{ name: 'y' }], initializers: [floats('w', [2])],
    })),
    c('redefine-input', 'a node output redefining a graph input', () => buildModel({
      nodes: [{ op: 'Relu', inputs: ['w'], outputs: ['x'] }, { op: 'Mul', inputs: ['x', 'w'], outputs: ['y'] }],
      inputs: [{ name: 'x', dims: [2] }], outputs: [{ name: 'y' }], initializers: [floats('w', [2])],
    })),
    c('dup-initializer', 'two initializers with one name', () => linear({ initializers: [floats('w', [3, 4]), floats('w', [3, 4], () => 9), floats('b', [3])] })),
    c('dup-axes', 'ReduceSum with axes [1, -1]', () => withOp({ op: 'ReduceSum', inputs: ['x', 'axes'], outputs: ['r'] }, [ints('axes', [1, -1])])),
    c('split-negative', 'Split sizes [6, -2]', () => buildModel({
      nodes: [{ op: 'Split', inputs: ['x', 'sp'], outputs: ['a', 'b'], attrs: { axis: 1 } }, { op: 'Mul', inputs: ['a', 'w'], outputs: ['y'] }],
      inputs: [{ name: 'x', dims: [2, 4] }], outputs: [{ name: 'y' }], initializers: [floats('w', [1]), ints('sp', [6, -2])],
    })),
    c('conv-kernel-mismatch', 'Conv kernel_shape [5, 5] with a 3x3 weight', () => buildModel({
      nodes: [{ op: 'Conv', inputs: ['x', 'w'], outputs: ['y'], attrs: { kernel_shape: [5, 5] } }],
      inputs: [{ name: 'x', dims: [1, 1, 6, 6] }], outputs: [{ name: 'y' }], initializers: [floats('w', [2, 1, 3, 3])],
    })),
    c('declared-shape-wrong', 'graph output declared [2, 7] but computed [2, 3]', () => linear({ outputs: [{ name: 'y', dims: [2, 7] }] })),
    c('declared-type-wrong', 'graph output declared int64 but computed float', () => linear({ outputs: [{ name: 'y', type: I64, dims: [2, 3] }] })),
    c('neg-inf-weight', 'a -Inf weight', () => buildModel({
      nodes: [{ op: 'Gemm', inputs: ['x', 'w', 'b'], outputs: ['y'], attrs: { transB: 1 } }], inputs: [{ name: 'x', dims: [2, 4] }], outputs: [{ name: 'y' }],
      initializers: [floats('w', [3, 4], (i) => (i === 5 ? -Infinity : 0.1)), floats('b', [3])],
    })),
    c('no-params', 'no trainable parameters', () => buildModel({ nodes: [{ op: 'Relu', inputs: ['x'], outputs: ['y'] }], inputs: [{ name: 'x', dims: [2, 4] }], outputs: [{ name: 'y' }] })),
    c('if-nested-200', 'If subgraphs nested 200 deep', () => nestedIf(200)),
    c('if-nested-1000', 'If subgraphs nested 1000 deep', () => nestedIf(1000)),
    c('deep-module-name', 'a node name nesting 5,000 scopes', () => linear({}, { name: `/${Array.from({ length: 5000 }, (_, i) => `m${i}`).join('/')}/Gemm` })),
    c('chain-reverse', `${bigGraph}-node chain stored in reverse order`, () => chain(bigGraph, 'reverse', rng)),
    c('chain-shuffled', `${bigGraph}-node chain stored shuffled`, () => chain(bigGraph, 'shuffled', rng)),
    c('empty-graph', 'a graph with no nodes and no outputs', () => buildModel({ nodes: [], inputs: [], outputs: [] })),
    c('output-is-input', 'a graph output that is its input', () => buildModel({ nodes: [], inputs: [{ name: 'x', dims: [2] }], outputs: [{ name: 'x' }] })),
    c('string-initializer', 'a string tensor initializer fed to Add', () => buildModel({
      nodes: [{ op: 'Add', inputs: ['x', 's'], outputs: ['y'] }], inputs: [{ name: 'x', dims: [1] }], outputs: [{ name: 'y' }],
      initializers: [{ ...tensorProto('s', [1], DataType.STRING, []), stringData: [new TextEncoder().encode('hi')] }],
    })),
    c('init-data-short', 'an initializer with fewer values than its dims', () => linear({ initializers: [tensorProto('w', [3, 4], F, [1, 2, 3]), floats('b', [3])] })),
    c('init-dims-huge', 'an initializer declaring [2^31, 2^31] with no data', () => linear({ initializers: [tensorProto('w', [2 ** 31, 2 ** 31], F, []), floats('b', [3])] })),
    c('clip-min-gt-max', 'Clip with min > max', () => withOp({ op: 'Clip', inputs: ['x', 'lo', 'hi'], outputs: ['r'] }, [floats('lo', [], () => 1), floats('hi', [], () => -1) ])),
    // Fuzz run of session 5: a byte mutant left a weight near float32's limit; onnxruntime-web overflows in
    // LayerNormalization's variance, the engine (float64 accumulation) keeps the exact value.
    c('layernorm-huge-weight', 'a 1e37 weight before LayerNormalization (float32 overflow in onnxruntime-web)', () => buildModel({
      nodes: [{ op: 'Gemm', inputs: ['x', 'w', 'b'], outputs: ['h'], attrs: { transB: 1 } }, { op: 'LayerNormalization', inputs: ['h', 'g', 'beta'], outputs: ['n'], attrs: { axis: -1 } },
        { op: 'Mul', inputs: ['n', 'm'], outputs: ['y'] }],
      inputs: [{ name: 'x', dims: [2, 4] }], outputs: [{ name: 'y', dims: [2, 3] }],
      initializers: [floats('w', [3, 4], (i) => (i === 5 ? 1e37 : (i % 5) / 7 - 0.3)), floats('b', [3]), floats('g', [3], () => 1), floats('beta', [3], () => 0), floats('m', [1], () => 0.5)],
    })),
    // ...and a flag set to 3: the ONNX reference reads nonzero as true (as the engine does), onnxruntime-web == 1.
    c('rotary-interleaved-3', 'RotaryEmbedding attribute interleaved = 3', () => buildModel({
      nodes: [{ op: 'RotaryEmbedding', inputs: ['x', 'cos', 'sin'], outputs: ['r'], attrs: { interleaved: 3 } }, { op: 'Mul', inputs: ['r', 'w'], outputs: ['y'] }],
      inputs: [{ name: 'x', dims: [2, 4, 3, 8] }, { name: 'cos', dims: [2, 3, 4] }, { name: 'sin', dims: [2, 3, 4] }], outputs: [{ name: 'y', dims: [2, 4, 3, 8] }],
      initializers: [floats('w', [1], () => 0.5)], opset: 23,
    })),
    c('attr-ref', 'an attribute referring to a function attribute', () => encodeModel((() => {
      const m = decodeModel(linear());
      m.graph!.node[0].attribute[0].refAttrName = 'outer';
      return m;
    })())),
    c('attr-type-undefined', 'an attribute with type 0 and no value', () => encodeModel((() => {
      const m = decodeModel(linear());
      m.graph!.node[0].attribute.push({ ...attr('alpha', 1), type: AttrType.UNDEFINED, present: new Set() });
      return m;
    })())),
  ];
}

/** Example, fixture and ONNX test-data models small enough to mutate quickly. */
export function seedModels(repoRoot: string, maxBytes = 256 * 1024): { name: string; bytes: Uint8Array }[] {
  const dirs = [path.join(repoRoot, 'examples'), path.join(repoRoot, 'test', 'fixtures', 'onnx')];
  const out: { name: string; bytes: Uint8Array }[] = [];
  for (const dir of dirs) {
    for (const f of fs.readdirSync(dir).sort()) {
      if (!f.endsWith('.onnx')) continue;
      const bytes = new Uint8Array(fs.readFileSync(path.join(dir, f)));
      if (bytes.length <= maxBytes) out.push({ name: path.relative(repoRoot, path.join(dir, f)), bytes });
    }
  }
  // ONNX's own test data (node tests), beside the repo (see test/helpers.ts sharedDir): a sample, if present.
  const backend = sharedDir('onnx-backend-data');
  if (backend) {
    const found: string[] = [];
    const walk = (d: string, depth: number) => {
      if (depth > 4 || found.length > 4000) return;
      for (const e of fs.readdirSync(d, { withFileTypes: true })) {
        if (e.isDirectory()) walk(path.join(d, e.name), depth + 1);
        else if (e.name === 'model.onnx') found.push(path.join(d, e.name));
      }
    };
    walk(backend, 0);
    found.sort();
    for (let i = 0; i < found.length; i += Math.max(1, Math.floor(found.length / 60))) {
      const bytes = new Uint8Array(fs.readFileSync(found[i]));
      if (bytes.length <= maxBytes) out.push({ name: path.relative(path.dirname(backend), found[i]), bytes });
    }
  }
  return out;
}

function pick<T>(rng: Rng, xs: readonly T[]): T {
  return xs[Math.floor(rng.uniform() * xs.length)];
}

function int(rng: Rng, n: number): number {
  return Math.floor(rng.uniform() * n);
}

/** One byte mutant: flips, truncation, an overwritten, inserted or deleted run. */
export function byteMutant(bytes: Uint8Array, rng: Rng): { bytes: Uint8Array; what: string } {
  const n = bytes.length;
  switch (int(rng, 5)) {
    case 0: {
      const out = bytes.slice();
      const k = 1 + int(rng, 8);
      for (let i = 0; i < k; i++) out[int(rng, n)] ^= 1 << int(rng, 8);
      return { bytes: out, what: `${k} bit flips` };
    }
    case 1: {
      const at = int(rng, n);
      return { bytes: bytes.slice(0, at), what: `truncated at ${at} of ${n}` };
    }
    case 2: {
      const out = bytes.slice();
      const at = int(rng, n);
      const len = 1 + int(rng, 16);
      for (let i = at; i < Math.min(n, at + len); i++) out[i] = pick(rng, [0x00, 0xff, 0x7f, 0x80, int(rng, 256)]);
      return { bytes: out, what: `${len} bytes overwritten at ${at}` };
    }
    case 3: {
      const at = int(rng, n);
      const len = 1 + int(rng, 16);
      const ins = Uint8Array.from({ length: len }, () => int(rng, 256));
      const out = new Uint8Array(n + len);
      out.set(bytes.subarray(0, at));
      out.set(ins, at);
      out.set(bytes.subarray(at), at + len);
      return { bytes: out, what: `${len} bytes inserted at ${at}` };
    }
    default: {
      const at = int(rng, n);
      const len = Math.min(1 + int(rng, 16), n - at);
      const out = new Uint8Array(n - len);
      out.set(bytes.subarray(0, at));
      out.set(bytes.subarray(at + len), at);
      return { bytes: out, what: `${len} bytes deleted at ${at}` };
    }
  }
}

const ODD_INTS = [-1, 0, 1, 2, 3, -100, 7, 2 ** 31 - 1, -(2 ** 31), 2 ** 40, 1e15];
const ODD_DIMS: (number | string)[] = [0, 1, -1, -4, 3, 2 ** 20, 2 ** 31, 2 ** 40, '__proto__', 'constructor', 'toString', 'N'];
const OP_TYPES = ['Add', 'MatMul', 'Gemm', 'Relu', 'Reshape', 'Transpose', 'Softmax', 'Conv', 'Concat', 'Gather', 'Range', 'OneHot', 'ConstantOfShape', 'Identity', 'Loop', 'Scan', 'If', 'NoSuchOp', ''];
const DATA_TYPES = [0, DataType.FLOAT, DataType.INT64, DataType.INT32, DataType.BOOL, DataType.STRING, DataType.DOUBLE, DataType.FLOAT16, DataType.UINT8, 99];

/** One field mutant of a decoded model (null when the chosen field does not exist in it). */
export function fieldMutant(source: Uint8Array, rng: Rng): { bytes: Uint8Array; what: string } | null {
  let m: ModelProto;
  try {
    m = decodeModel(source);
  } catch {
    return null;
  }
  const g = m.graph;
  if (!g) return null;
  const node = (): NodeProto | null => (g.node.length ? pick(rng, g.node) : null);
  const valueNames = [...g.input.map((v) => v.name), ...g.initializer.map((t) => t.name), ...g.node.flatMap((n) => n.output)];
  let what: string;
  switch (int(rng, 12)) {
    case 0: {
      const n = node();
      const a = n?.attribute.length ? pick(rng, n.attribute) : null;
      if (!n || !a) return null;
      if (a.ints.length) {
        const i = int(rng, a.ints.length);
        a.ints[i] = pick(rng, ODD_INTS);
        what = `${n.opType} '${n.name}' attribute ${a.name}[${i}] = ${a.ints[i]}`;
      } else {
        a.i = pick(rng, ODD_INTS);
        a.type = a.type || AttrType.INT;
        what = `${n.opType} '${n.name}' attribute ${a.name} = ${a.i}`;
      }
      break;
    }
    case 1: {
      const v = g.input.length ? pick(rng, g.input) : null;
      const dims = v?.type?.kind === 'tensor' ? v.type.shape : null;
      if (!v || !dims || dims.length === 0) return null;
      const i = int(rng, dims.length);
      const d = pick(rng, ODD_DIMS);
      dims[i] = typeof d === 'number' ? { value: d, param: null } : { value: null, param: d };
      what = `graph input '${v.name}' dim ${i} = ${d}`;
      break;
    }
    case 2: {
      const t = g.initializer.length ? pick(rng, g.initializer) : null;
      if (!t || t.dims.length === 0) return null;
      const i = int(rng, t.dims.length);
      t.dims[i] = pick(rng, ODD_DIMS.filter((d): d is number => typeof d === 'number'));
      what = `initializer '${t.name}' dim ${i} = ${t.dims[i]}`;
      break;
    }
    case 3: {
      const n = node();
      if (!n || n.input.length === 0) return null;
      const i = int(rng, n.input.length);
      n.input[i] = rng.uniform() < 0.5 ? pick(rng, valueNames) : 'nobody_defines_this';
      what = `${n.opType} '${n.name}' input ${i} = '${n.input[i]}'`;
      break;
    }
    case 4: {
      const n = node();
      if (!n || n.output.length === 0) return null;
      n.output[0] = pick(rng, valueNames);
      what = `${n.opType} '${n.name}' output 0 = '${n.output[0]}' (defined elsewhere too)`;
      break;
    }
    case 5: {
      const n = node();
      if (!n) return null;
      const old = n.opType;
      n.opType = pick(rng, OP_TYPES);
      what = `node '${n.name}' op ${old} -> ${n.opType}`;
      break;
    }
    case 6: {
      const t = g.initializer.length ? pick(rng, g.initializer) : null;
      if (!t) return null;
      t.dataType = pick(rng, DATA_TYPES);
      what = `initializer '${t.name}' data type -> ${t.dataType}`;
      break;
    }
    case 7: {
      g.node.reverse();
      what = 'nodes stored in reverse order';
      break;
    }
    case 8: {
      if (g.node.length === 0) return null;
      const i = int(rng, g.node.length);
      const [gone] = g.node.splice(i, 1);
      what = `node '${gone.name}' (${gone.opType}) removed`;
      break;
    }
    case 9: {
      m.opsetImport = rng.uniform() < 0.5 ? [] : m.opsetImport.map((o) => ({ ...o, version: pick(rng, [0, 1, 6, 9, 13, 99, -3]) }));
      what = `opset imports -> ${JSON.stringify(m.opsetImport)}`;
      break;
    }
    case 10: {
      const n = node();
      if (!n) return null;
      n.attribute.push(attr(pick(rng, ['axis', 'transA', 'keepdims', 'perm', 'axes', 'alpah', 'kernel_shape']), pick(rng, [1, -1, [0, 0], [2, 2], 'x'] as const)));
      what = `${n.opType} '${n.name}' gets extra attribute ${n.attribute[n.attribute.length - 1].name}`;
      break;
    }
    default: {
      const t = g.initializer.length ? pick(rng, g.initializer) : null;
      if (!t) return null;
      if (t.rawData && t.rawData.length > 0) {
        t.rawData = t.rawData.slice(0, int(rng, t.rawData.length));
        what = `initializer '${t.name}' raw data cut to ${t.rawData.length} bytes`;
      } else if (t.floatData.length) {
        t.floatData[int(rng, t.floatData.length)] = pick(rng, [NaN, Infinity, -Infinity, 1e38]);
        what = `initializer '${t.name}' gets a non-finite value`;
      } else return null;
    }
  }
  return { bytes: encodeModel(m), what };
}

/** `count` seeded cases: every structured case first, then byte and field mutants of the seed models in turn. */
export function fuzzCases(repoRoot: string, seed: number, count: number, bigGraph?: number): FuzzCase[] {
  const rng = new Rng(seed);
  const cases = structuredCases(rng, bigGraph).slice(0, count);
  const seeds = seedModels(repoRoot);
  let k = 0;
  let misses = 0;
  while (cases.length < count && misses < 10 * count) {
    const s = seeds[k % seeds.length];
    const field = k % 2 === 1;
    k++;
    const m = field ? fieldMutant(s.bytes, rng) : byteMutant(s.bytes, rng);
    if (!m) {
      misses++;
      continue;
    }
    cases.push({ id: `${field ? 'f' : 'b'}:${cases.length}`, kind: field ? 'field' : 'bytes', what: `${s.name}: ${m.what}`, bytes: m.bytes });
  }
  return cases;
}
