/** The importer's view of an ONNX graph: nodes with module paths and sources, value specs, uses. */
import { OnnxImportError } from './errors';
import { AttributeProto, GraphProto, ModelProto, NodeProto, TensorProto, TypeProto, ValueInfoProto, dataTypeName } from './proto';
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
  /** Graph-valued attributes (If branches, Loop / Scan bodies), when the node has any. */
  subgraphs?: OnnxSubgraph[];
  /**
   * Outer-scope values its subgraphs read by name (ONNX lets a body see every value of the enclosing
   * scopes): dependencies as real as `inputs` for ordering, liveness and folding, though no input slot names them.
   */
  implicitInputs?: string[];
  /** For a node of a subgraph: the enclosing node and attribute, in words ("the body of Loop node 'Loop_0'"). */
  enclosing?: string;
}

/** A graph attribute of a node (an If branch, a Loop or Scan body), with its nodes in execution order. */
export interface OnnxSubgraph {
  /** The attribute holding it: 'then_branch', 'else_branch', 'body'. */
  attribute: string;
  name: string;
  nodes: OnnxNode[];
  inputs: OnnxValueSpec[];
  outputs: OnnxValueSpec[];
  initializers: TensorProto[];
  /** Values of enclosing scopes its nodes (and their own subgraphs) read. */
  reads: string[];
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
function topologicalOrder(protos: readonly NodeProto[], defined: ReadonlySet<string>, producerOf: ReadonlyMap<string, number>, reads: readonly (readonly string[])[] = protos.map((p) => p.input)): number[] {
  const n = protos.length;
  // Edges producer -> reader (one per distinct value read), in compressed rows: no per-node allocation.
  const waiting = new Int32Array(n);
  const edgeFrom: number[] = [];
  const edgeTo: number[] = [];
  for (let i = 0; i < n; i++) {
    const inputs = reads[i];
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
  // A control-flow node depends on the outer values its bodies read, as on its inputs.
  const implicit = protos.map(implicitReads);
  const reads = implicit.some((r) => r.length > 0) ? protos.map((p, i) => (implicit[i].length ? [...p.input, ...implicit[i]] : p.input)) : undefined;
  const order = topologicalOrder(protos, defined, producerOf, reads);
  const scope: Scope = { has: (v) => defined.has(v) || producerOf.has(v) };
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
    const node = makeNode(p, index, name, name, '', undefined, scope);
    nodes[index] = node;
    // Implicit reads are uses too, in slots past the real inputs (so a parameter read only inside a body is live and trainable).
    const uses = node.implicitInputs ? [...p.input, ...node.implicitInputs] : p.input;
    for (const o of p.output) if (o !== '') producers.set(o, index);
    for (let slot = 0; slot < uses.length; slot++) {
      const v = uses[slot];
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

// ---------------------------------------------------------------- subgraphs (If / Loop / Scan bodies)

/** The graph-valued attributes of a node, by attribute name (a GRAPHS attribute gives `name[i]`). */
function graphAttributes(p: NodeProto): { attribute: string; graph: GraphProto }[] {
  const out: { attribute: string; graph: GraphProto }[] = [];
  for (const a of p.attribute) {
    if (a.g) out.push({ attribute: a.name, graph: a.g });
    a.graphs.forEach((g, i) => out.push({ attribute: `${a.name}[${i}]`, graph: g }));
  }
  return out;
}

/** Names a graph's nodes (and nested graphs) read that the graph itself does not define. */
function graphReads(g: GraphProto): string[] {
  const local = new Set<string>([...g.input.map((v) => v.name), ...g.initializer.map((t) => t.name)]);
  for (const p of g.node) for (const o of p.output) if (o !== '') local.add(o);
  const reads = new Set<string>();
  for (const p of g.node) for (const v of [...p.input, ...implicitReads(p)]) if (v !== '' && !local.has(v)) reads.add(v);
  return [...reads];
}

/** Outer values a node's subgraphs read (empty for a node without graph attributes). */
function implicitReads(p: NodeProto): string[] {
  if (!p.attribute.some((a) => a.g || a.graphs.length)) return [];
  const reads = new Set<string>();
  for (const { graph } of graphAttributes(p)) for (const v of graphReads(graph)) reads.add(v);
  return [...reads];
}

/** The names visible where a node sits (its graph's and every enclosing graph's). */
interface Scope {
  has(name: string): boolean;
}

function makeNode(p: NodeProto, index: number, name: string, scopeName: string, outerPath: string, enclosing: string | undefined, visible: Scope): OnnxNode {
  const metadata: Record<string, string> = p.metadataProps.length ? Object.create(null) : NO_METADATA;
  for (const e of p.metadataProps) metadata[e.key] = e.value;
  const scope = nodeScope(scopeName, p.docString, metadata);
  const node = {
    index, name, opType: p.opType, domain: normalizeDomain(p.domain), inputs: p.input, outputs: p.output,
    modulePath: scope.modulePath || outerPath, moduleClass: scope.moduleClass, source: scope.source, stack: scope.stack,
    docString: p.docString, metadata, attributes: p.attribute, classes: scope.classes,
  } as OnnxNode;
  node.attrs = new Attrs(node, p.attribute);
  if (enclosing) node.enclosing = enclosing;
  const graphs = graphAttributes(p);
  if (graphs.length) {
    node.subgraphs = graphs.map(({ attribute, graph }) => buildSubgraph(graph, attribute, node, visible));
    const reads = new Set<string>();
    for (const sub of node.subgraphs) for (const v of sub.reads) reads.add(v);
    node.implicitInputs = [...reads];
  }
  return node;
}

/**
 * A body's view: its nodes in execution order, named `<owner>/<attribute>/<node>` so that every message
 * about one names the control-flow node around it. Names it reads but does not define come from the
 * enclosing scopes at run time. ONNX scoping (as onnx.checker applies it): a body's inputs and initializers
 * may shadow an outer name (the innermost definition wins), its nodes' outputs may not (single assignment
 * across nested graphs).
 */
function buildSubgraph(g: GraphProto, attribute: string, owner: OnnxNode, outer: Scope): OnnxSubgraph {
  const where = `the ${attribute} of ${owner.opType} node '${owner.name}'`;
  const local = new Set<string>();
  for (const name of [...g.input.map((v) => v.name), ...g.initializer.map((t) => t.name)]) {
    if (local.has(name)) throw invalid(`value '${name}' is defined twice in ${where}`);
    local.add(name);
  }
  if (g.sparseInitializerCount) throw new OnnxImportError('UNSUPPORTED_FEATURE', `${where} has sparse initializers, which the importer does not support`);
  const producerOf = new Map<string, number>();
  g.node.forEach((p, i) => {
    for (const o of p.output) {
      if (o === '') continue;
      if (producerOf.has(o) || local.has(o)) throw invalid(`value '${o}' is defined twice in ${where}`);
      if (outer.has(o)) throw invalid(`node '${g.node[i].name || g.node[i].opType}' (${g.node[i].opType}) in ${where} redefines '${o}', a value of an enclosing graph (ONNX values are assigned once, nested graphs included)`);
      producerOf.set(o, i);
    }
  });
  const implicit = g.node.map(implicitReads);
  const reads = new Set<string>();
  g.node.forEach((p, i) => {
    for (const v of [...p.input, ...implicit[i]]) if (v !== '' && !local.has(v) && !producerOf.has(v)) reads.add(v);
  });
  const order = topologicalOrder(g.node, new Set([...local, ...reads]), producerOf, g.node.map((p, i) => [...p.input, ...implicit[i]]));
  const innerScope: Scope = { has: (v) => local.has(v) || producerOf.has(v) || outer.has(v) };
  const used = new Set<string>();
  const nodes = order.map((protoIndex, index) => {
    const p = g.node[protoIndex];
    let inner = p.name || `${p.opType}_${index}`;
    if (used.has(inner)) inner = `${inner}__${index}`;
    used.add(inner);
    return makeNode(p, index, `${owner.name}/${attribute}/${inner}`, inner, owner.modulePath, owner.enclosing ? `${where}, in ${owner.enclosing}` : where, innerScope);
  });
  return { attribute, name: g.name, nodes, inputs: g.input.map(valueSpec), outputs: g.output.map(valueSpec), initializers: g.initializer, reads: [...reads] };
}
