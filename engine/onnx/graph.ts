/** The importer's view of an ONNX graph: nodes with module paths and sources, value specs, uses. */
import { OnnxImportError } from './errors';
import { AttributeProto, ModelProto, ValueInfoProto, dataTypeName } from './proto';
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
  return { name: v.name, elemType: dataTypeName(t?.elemType ?? 0), dataType: t?.elemType ?? 0, dims };
}

function normalizeDomain(domain: string): string {
  return domain === 'ai.onnx' ? '' : domain;
}

/** Builds the graph view: unique node names, topological order, scopes, use lists. */
export function buildGraph(model: ModelProto): OnnxGraph {
  const g = model.graph!;
  const initializerNames = g.initializer.map((t) => t.name);
  const initSet = new Set(initializerNames);
  const inputs = g.input.filter((v) => !initSet.has(v.name)).map(valueSpec);
  const available = new Set<string>([...initSet, ...g.input.map((v) => v.name), '']);

  // Topological order (exporters emit one already; tolerate models that do not).
  const protos = g.node;
  const order: number[] = [];
  const done = new Array<boolean>(protos.length).fill(false);
  let progress = true;
  while (order.length < protos.length && progress) {
    progress = false;
    for (let i = 0; i < protos.length; i++) {
      if (done[i] || !protos[i].input.every((n) => available.has(n))) continue;
      done[i] = true;
      order.push(i);
      protos[i].output.forEach((o) => available.add(o));
      progress = true;
    }
  }
  if (order.length < protos.length) {
    const stuck = protos.find((_, i) => !done[i])!;
    const missing = stuck.input.filter((n) => !available.has(n));
    throw new OnnxImportError('INVALID_MODEL', `invalid ONNX graph: node '${stuck.name || stuck.opType}' (${stuck.opType}) reads ${missing.map((m) => `'${m}'`).join(', ')}, which no node, graph input or initializer defines (or the graph has a cycle)`);
  }

  const usedNames = new Set<string>();
  const nodes: OnnxNode[] = order.map((protoIndex, index) => {
    const p = protos[protoIndex];
    let name = p.name || `${p.opType}_${index}`;
    if (usedNames.has(name)) name = `${name}__${index}`;
    usedNames.add(name);
    const metadata: Record<string, string> = {};
    for (const e of p.metadataProps) metadata[e.key] = e.value;
    const scope = nodeScope(name, p.docString, metadata);
    const node = {
      index, name, opType: p.opType, domain: normalizeDomain(p.domain), inputs: [...p.input], outputs: [...p.output],
      modulePath: scope.modulePath, moduleClass: scope.moduleClass, source: scope.source, stack: scope.stack,
      docString: p.docString, metadata, attributes: p.attribute, classes: scope.classes,
    } as OnnxNode;
    node.attrs = new Attrs(node, p.attribute);
    return node;
  });

  const producers = new Map<string, number>();
  const consumers = new Map<string, { node: number; slot: number }[]>();
  for (const n of nodes) {
    n.outputs.forEach((o) => {
      if (o === '') return;
      if (producers.has(o) || initSet.has(o)) throw new OnnxImportError('INVALID_MODEL', `invalid ONNX graph: value '${o}' is defined twice (by node '${n.name}' and earlier)`);
      producers.set(o, n.index);
    });
    n.inputs.forEach((v, slot) => {
      if (v === '') return;
      const list = consumers.get(v) ?? [];
      list.push({ node: n.index, slot });
      consumers.set(v, list);
    });
  }
  const valueInfo = new Map(g.valueInfo.map((v) => [v.name, valueSpec(v)] as [string, OnnxValueSpec]));
  return { name: g.name, nodes, inputs, outputs: g.output.map(valueSpec), initializerNames, producers, consumers, valueInfo };
}
