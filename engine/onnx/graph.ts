/** The importer's view of an ONNX graph: nodes with module paths and sources, value specs, uses. */
import { OnnxImportError } from './errors';
import { AttributeProto, ModelProto, NodeProto, TypeProto, ValueInfoProto, dataTypeName } from './proto';
import { Attrs } from './context';
import { SourceLocation, nodeScope } from './modules';

export interface OnnxNode {
  /** Position in execution (topological) order. */
  index: number;
  /** Node name, made unique (`<OpType>_<index>` when the model leaves it empty). */
  name: string;
  opType: string;
  /** '' for the default ONNX domain (also when the model spells it 'ai.onnx'). */
  domain: string;
  /** Input value names; '' marks an omitted optional input. */
  inputs: string[];
  outputs: string[];
  /** Dotted module path ('' = the root module). */
  modulePath: string;
  /** Class of the module, when the exporter recorded it (dynamo metadata). */
  moduleClass?: string;
  /** Innermost user-code frame (file, line) of the node, from doc_string or pkg.torch.onnx.stack_trace. */
  source?: SourceLocation;
  /** Every recorded frame, innermost first. */
  stack: SourceLocation[];
  docString: string;
  metadata: Record<string, string>;
  /** Raw attributes (decoded on use by `attrs`). */
  attributes: AttributeProto[];
  attrs: Attrs;
  /** Classes along the module path (dynamo metadata), for the module tree. */
  classes?: { path: string; className: string }[];
}

/** Shape and type of a graph input or output as declared in the model. */
export interface OnnxValueSpec {
  name: string;
  /** ONNX element type name: 'float32', 'int64', 'bool'... */
  elemType: string;
  /** TensorProto.DataType number. */
  dataType: number;
  /** Declared dims: numbers, symbolic names (dim_param) or null (unknown); null for an unknown rank. */
  dims: (number | string | null)[] | null;
  /** 'tensor' (also for a value without a declared type), or the non-tensor kind: 'sequence', 'map', 'optional', 'sparse_tensor'. */
  valueKind: string;
  /** The declared element type of a sequence or optional (null when undeclared, and for other kinds). */
  elem: TypeProto | null;
}

export interface OnnxGraph {
  name: string;
  nodes: OnnxNode[];
  /** Real inputs (initializers that old models also list as inputs are left out). */
  inputs: OnnxValueSpec[];
  outputs: OnnxValueSpec[];
  initializerNames: string[];
  /** Value name -> index of the node that produces it. */
  producers: Map<string, number>;
  /** Value name -> the (node index, input slot) pairs that read it. */
  consumers: Map<string, { node: number; slot: number }[]>;
  /** Declared specs of intermediate values (value_info), when present. */
  valueInfo: Map<string, OnnxValueSpec>;
}

export function valueSpec(v: ValueInfoProto): OnnxValueSpec {
  const t = v.type;
  const dims = t?.shape ? t.shape.map((d) => (d.value !== null ? d.value : d.param ? d.param : null)) : null;
  const valueKind = !t || t.kind === 'unknown' ? 'tensor' : t.kind;
  return { name: v.name, elemType: dataTypeName(t?.elemType ?? 0), dataType: t?.elemType ?? 0, dims, valueKind, elem: t?.elem ?? null };
}

const NO_METADATA: Record<string, string> = Object.freeze(Object.create(null));

function normalizeDomain(domain: string): string {
  return domain === 'ai.onnx' ? '' : domain;
}

/** Min-heap of node indices: Kahn's sort takes ready nodes in file order, so a sorted file keeps its order. */
class IndexHeap {
  private readonly items: number[] = [];
  get size(): number {
    return this.items.length;
  }
  push(v: number): void {
    const a = this.items;
    a.push(v);
    let i = a.length - 1;
    while (i > 0) {
      const p = (i - 1) >> 1;
      if (a[p] <= v) break;
      a[i] = a[p];
      i = p;
    }
    a[i] = v;
  }
  pop(): number {
    const a = this.items;
    const top = a[0];
    const last = a.pop()!;
    if (a.length > 0) {
      let i = 0;
      for (;;) {
        const l = 2 * i + 1;
        if (l >= a.length) break;
        const c = l + 1 < a.length && a[l + 1] < a[l] ? l + 1 : l;
        if (a[c] >= last) break;
        a[i] = a[c];
        i = c;
      }
      a[i] = last;
    }
    return top;
  }
}

function invalid(message: string): OnnxImportError {
  return new OnnxImportError('INVALID_MODEL', `invalid ONNX graph: ${message}`);
}

/**
 * Node indices in execution order: Kahn's algorithm over the values each node reads, O(nodes + edges)
 * whatever order the file lists them in (exporters emit a sorted graph; others need not).
 */
function topologicalOrder(protos: readonly NodeProto[], defined: ReadonlySet<string>, producerOf: ReadonlyMap<string, number>): number[] {
  const n = protos.length;
  // Edges producer -> reader (one per distinct value read), in compressed rows: no per-node allocation.
  const waiting = new Int32Array(n);
  const edgeFrom: number[] = [];
  const edgeTo: number[] = [];
  for (let i = 0; i < n; i++) {
    const inputs = protos[i].input;
    for (let k = 0; k < inputs.length; k++) {
      const v = inputs[k];
      if (v === '' || defined.has(v)) continue;
      // Each distinct value counts once (a node may read one value twice: Mul(x, x)).
      if (inputs.length <= 16 ? inputs.indexOf(v) < k : new Set(inputs.slice(0, k)).has(v)) continue;
      const p = producerOf.get(v);
      if (p === undefined) {
        throw invalid(`node '${protos[i].name || protos[i].opType}' (${protos[i].opType}) reads '${v}', which no node, graph input or initializer defines`);
      }
      waiting[i]++;
      edgeFrom.push(p);
      edgeTo.push(i);
    }
  }
  const start = new Int32Array(n + 1);
  for (const f of edgeFrom) start[f + 1]++;
  for (let i = 0; i < n; i++) start[i + 1] += start[i];
  const readers = new Int32Array(edgeTo.length);
  const fill = start.slice(0, n);
  for (let e = 0; e < edgeFrom.length; e++) readers[fill[edgeFrom[e]]++] = edgeTo[e];
  const ready = new IndexHeap();
  for (let i = 0; i < n; i++) if (waiting[i] === 0) ready.push(i);
  const order: number[] = [];
  while (ready.size) {
    const i = ready.pop();
    order.push(i);
    for (let e = start[i]; e < start[i + 1]; e++) if (--waiting[readers[e]] === 0) ready.push(readers[e]);
  }
  if (order.length < n) {
    const stuck = protos.findIndex((_, i) => waiting[i] > 0);
    const p = protos[stuck];
    throw invalid(`the graph has a cycle: node '${p.name || p.opType}' (${p.opType}) depends on its own output through ${p.input.filter((v) => producerOf.has(v)).map((v) => `'${v}'`).join(', ')}`);
  }
  return order;
}

/**
 * Builds the graph view: unique node names, topological order, scopes, use lists. Rejects what breaks
 * ONNX's single-assignment rule: a value defined twice (by two nodes, a node and a graph input or
 * initializer, two initializers or two graph inputs), and reads of values nothing defines.
 */
export function buildGraph(model: ModelProto): OnnxGraph {
  const g = model.graph!;
  const initializerNames = g.initializer.map((t) => t.name);
  const initSet = new Set<string>();
  for (const name of initializerNames) {
    if (initSet.has(name)) throw invalid(`initializer '${name}' is defined twice (which value would the model use?)`);
    initSet.add(name);
  }
  const inputSet = new Set<string>();
  for (const v of g.input) {
    if (inputSet.has(v.name)) throw invalid(`graph input '${v.name}' is declared twice`);
    inputSet.add(v.name);
  }
  const inputs = g.input.filter((v) => !initSet.has(v.name)).map(valueSpec);
  const defined = new Set<string>([...initSet, ...inputSet]);

  const protos = g.node;
  const producerOf = new Map<string, number>();
  protos.forEach((p, i) => {
    for (const o of p.output) {
      if (o === '') continue;
      const what = producerOf.has(o) ? `node '${protos[producerOf.get(o)!].name || protos[producerOf.get(o)!].opType}'` : initSet.has(o) ? 'an initializer' : inputSet.has(o) ? 'a graph input' : null;
      if (what) throw invalid(`value '${o}' is defined twice: by node '${p.name || p.opType}' (${p.opType}) and by ${what}`);
      producerOf.set(o, i);
    }
  });
  const order = topologicalOrder(protos, defined, producerOf);
  const rank = new Int32Array(protos.length);
  order.forEach((protoIndex, index) => (rank[protoIndex] = index));

  // Everything keyed by value or node name is built walking the file in its own order (the memory order of
  // the decoded strings), not the execution order: in a shuffled 100k-node file, walking the execution order
  // makes every map probe a cache miss. Results are placed by rank.
  const usedNames = new Set<string>();
  const nodes = new Array<OnnxNode>(protos.length);
  const producers = producerOf; // same keys: value -> file index becomes value -> execution index below
  const consumers = new Map<string, { node: number; slot: number }[]>();
  let unsortedUses = false;
  for (let protoIndex = 0; protoIndex < protos.length; protoIndex++) {
    const p = protos[protoIndex];
    const index = rank[protoIndex];
    let name = p.name || `${p.opType}_${index}`;
    if (usedNames.has(name)) name = `${name}__${index}`;
    usedNames.add(name);
    const metadata: Record<string, string> = p.metadataProps.length ? Object.create(null) : NO_METADATA;
    for (const e of p.metadataProps) metadata[e.key] = e.value;
    const scope = nodeScope(name, p.docString, metadata);
    const node = {
      index, name, opType: p.opType, domain: normalizeDomain(p.domain), inputs: p.input, outputs: p.output,
      modulePath: scope.modulePath, moduleClass: scope.moduleClass, source: scope.source, stack: scope.stack,
      docString: p.docString, metadata, attributes: p.attribute, classes: scope.classes,
    } as OnnxNode;
    node.attrs = new Attrs(node, p.attribute);
    nodes[index] = node;
    for (const o of p.output) if (o !== '') producers.set(o, index);
    for (let slot = 0; slot < p.input.length; slot++) {
      const v = p.input[slot];
      if (v === '') continue;
      const list = consumers.get(v);
      if (!list) consumers.set(v, [{ node: index, slot }]);
      else {
        if (list[list.length - 1].node > index) unsortedUses = true;
        list.push({ node: index, slot });
      }
    }
  }
  // Uses in execution order (then slot), as readers of `consumers` expect; a sorted file needs no sort.
  if (unsortedUses) for (const list of consumers.values()) if (list.length > 1) list.sort((a, b) => a.node - b.node || a.slot - b.slot);

  const valueInfo = new Map(g.valueInfo.map((v) => [v.name, valueSpec(v)] as [string, OnnxValueSpec]));
  return { name: g.name, nodes, inputs, outputs: g.output.map(valueSpec), initializerNames, producers, consumers, valueInfo };
}
