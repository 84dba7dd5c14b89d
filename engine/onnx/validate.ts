/**
 * Validation of an ONNX graph before it runs, against the ONNX operator schemas (onnxSchema.ts,
 * generated from the onnx package): opset imports, input and output counts, attribute names, types and
 * required attributes, declared dims. Errors (OnnxImportError INVALID_MODEL) for what makes a model
 * invalid, whose results would otherwise be a guess; warnings for harmless oddities (an attribute the op
 * does not define, most often a misspelling, an op used below the opset that introduced it).
 *
 * What needs run-time shapes (duplicate axes, split sizes, kernel shapes, declared vs computed shapes)
 * is checked by the op handlers and by the shape-only dry run that precedes a real run (memory.ts).
 */
import { OnnxErrorNode, OnnxImportError, describeNode } from './errors';
import { AttrType, ModelProto } from './proto';
import type { OnnxGraph, OnnxNode, OnnxValueSpec } from './graph';
import { ONNX_SCHEMA, OnnxSchemaVersion } from './onnxSchema';

/** Something odd but harmless about a model, shown next to its results. */
export interface OnnxWarning {
  code: 'UNKNOWN_ATTRIBUTE' | 'OP_VERSION' | 'NO_OPSET_IMPORT' | 'DECLARED_SHAPE' | 'IGNORED_INPUT';
  message: string;
  node?: OnnxErrorNode;
}

const TYPE_LETTER: Record<string, number> = {
  f: AttrType.FLOAT, i: AttrType.INT, s: AttrType.STRING, t: AttrType.TENSOR, g: AttrType.GRAPH, F: AttrType.FLOATS, I: AttrType.INTS,
  S: AttrType.STRINGS, T: AttrType.TENSORS, G: AttrType.GRAPHS, p: AttrType.SPARSE_TENSOR, P: AttrType.SPARSE_TENSORS, y: AttrType.TYPE_PROTO, Y: AttrType.TYPE_PROTOS,
};
const TYPE_WORDS: Record<number, string> = {
  [AttrType.FLOAT]: 'a float', [AttrType.INT]: 'an int', [AttrType.STRING]: 'a string', [AttrType.TENSOR]: 'a tensor', [AttrType.GRAPH]: 'a graph',
  [AttrType.FLOATS]: 'a list of floats', [AttrType.INTS]: 'a list of ints', [AttrType.STRINGS]: 'a list of strings', [AttrType.TENSORS]: 'a list of tensors',
  [AttrType.GRAPHS]: 'a list of graphs', [AttrType.SPARSE_TENSOR]: 'a sparse tensor', [AttrType.SPARSE_TENSORS]: 'a list of sparse tensors',
  [AttrType.TYPE_PROTO]: 'a type', [AttrType.TYPE_PROTOS]: 'a list of types',
};

interface AttrSpec {
  type: number;
  required: boolean;
}

const parsed = new Map<string, Map<string, AttrSpec>>();

/** Attribute specs of a schema entry (parsed once per distinct text). */
function parseAttrs(text: string): Map<string, AttrSpec> {
  const known = parsed.get(text);
  if (known) return known;
  const out = new Map<string, AttrSpec>();
  parsed.set(text, out);
  if (!text) return out;
  for (const item of text.split(',')) {
    const [name, t] = item.split(':');
    out.set(name, { type: TYPE_LETTER[t[0]], required: t.endsWith('!') });
  }
  return out;
}

/** The schema version an op runs as at `opset`: the newest one introduced at or before it. */
export function schemaFor(opType: string, opset: number): { version: OnnxSchemaVersion; introduced: number } | null {
  if (!Object.prototype.hasOwnProperty.call(ONNX_SCHEMA, opType)) return null;
  let byOpset = chosenCache.get(opType);
  if (!byOpset) chosenCache.set(opType, (byOpset = new Map()));
  let found = byOpset.get(opset);
  if (found === undefined) byOpset.set(opset, (found = lookupSchema(opType, opset)));
  return found;
}

/** Op type -> opset -> the schema it runs as (no string key built per node: a graph has 100k nodes and few kinds). */
const chosenCache = new Map<string, Map<number, { version: OnnxSchemaVersion; introduced: number } | null>>();

function lookupSchema(opType: string, opset: number): { version: OnnxSchemaVersion; introduced: number } | null {
  const versions = Object.prototype.hasOwnProperty.call(ONNX_SCHEMA, opType) ? ONNX_SCHEMA[opType] : undefined;
  if (!versions) return null;
  let chosen: OnnxSchemaVersion | undefined;
  for (const v of versions) if (v[0] <= opset) chosen = v;
  return { version: chosen ?? versions[0], introduced: versions[0][0] };
}

function editDistance(a: string, b: string): number {
  const d = Array.from({ length: a.length + 1 }, (_, i) => [i, ...new Array<number>(b.length).fill(0)]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + (a[i - 1] === b[j - 1] ? 0 : 1));
  }
  return d[a.length][b.length];
}

/** The attribute the author probably meant: same letters in another case, or at most two edits away. */
function suggestion(name: string, known: Iterable<string>): string | null {
  let best: string | null = null;
  let bestD = 3;
  for (const k of known) {
    if (k.toLowerCase() === name.toLowerCase()) return k;
    if (Math.abs(k.length - name.length) > 2 || name.length > 64) continue;
    const dist = editDistance(k, name);
    if (dist < bestD) {
      bestD = dist;
      best = k;
    }
  }
  return best;
}

function countText(min: number, max: number, what: string): string {
  if (max === -1) return `at least ${min} ${what}`;
  return min === max ? `${min} ${what}` : `${min} to ${max} ${what}`;
}

function checkNode(n: OnnxNode, opset: number, warnings: OnnxWarning[]): void {
  const fail = (message: string): never => {
    throw new OnnxImportError('INVALID_MODEL', `invalid ONNX graph: ${describeNode(n)}: ${message}`, { node: n });
  };
  // A scan, no set per node: nodes have a handful of attributes, graphs up to 100k nodes.
  n.attributes.forEach((a, i) => {
    for (let j = 0; j < i; j++) if (n.attributes[j].name === a.name) fail(`attribute '${a.name}' is given twice`);
  });
  const found = schemaFor(n.opType, opset);
  if (!found) return; // not an ONNX op: the importer reports it as unsupported if the outputs need it
  const [since, attrText, minIn, maxIn, minOut, maxOut] = found.version;
  if (since > opset) {
    warnings.push({ code: 'OP_VERSION', node: n, message: `${describeNode(n)}: ${n.opType} is not part of opset ${opset} (it was introduced in opset ${found.introduced}); it runs as defined there` });
  }
  if (n.inputs.length > maxIn && maxIn !== -1) fail(`has ${n.inputs.length} inputs; ${n.opType} (opset ${since}) takes ${countText(minIn, maxIn, 'inputs')}`);
  const given = n.inputs.length;
  if (given < minIn) fail(`has ${given} inputs; ${n.opType} (opset ${since}) takes ${countText(minIn, maxIn, 'inputs')}`);
  if (n.outputs.length > maxOut && maxOut !== -1) fail(`has ${n.outputs.length} outputs; ${n.opType} (opset ${since}) has ${countText(minOut, maxOut, 'outputs')}`);
  if (n.outputs.length < minOut) fail(`has ${n.outputs.length} outputs; ${n.opType} (opset ${since}) has ${countText(minOut, maxOut, 'outputs')}`);
  const attrs = parseAttrs(attrText);
  for (const a of n.attributes) {
    const spec = attrs.get(a.name);
    if (!spec) {
      const everywhere = new Set<string>();
      for (const v of ONNX_SCHEMA[n.opType]) for (const k of parseAttrs(v[1]).keys()) everywhere.add(k);
      const meant = suggestion(a.name, everywhere);
      const other = everywhere.has(a.name) ? ` (it belongs to other opset versions of ${n.opType})` : meant ? ` (did you mean '${meant}'?)` : '';
      warnings.push({ code: 'UNKNOWN_ATTRIBUTE', node: n, message: `${describeNode(n)}: attribute '${a.name}' is not an attribute of ${n.opType} in opset ${since} and is ignored${other}` });
      continue;
    }
    // Old models leave the type unset (0): the importer then trusts the populated field.
    if (a.type !== AttrType.UNDEFINED && a.type !== spec.type) fail(`attribute '${a.name}' must be ${TYPE_WORDS[spec.type] ?? `type ${spec.type}`}, got ${TYPE_WORDS[a.type] ?? `attribute type ${a.type}`}`);
  }
  for (const [name, spec] of attrs) if (spec.required && !n.attributes.some((a) => a.name === name)) fail(`required attribute '${name}' is missing`);
}

function checkDims(spec: OnnxValueSpec, what: string): void {
  spec.dims?.forEach((d, i) => {
    if (typeof d === 'number' && (d < 0 || !Number.isSafeInteger(d))) {
      throw new OnnxImportError('INVALID_MODEL', `invalid ONNX graph: ${what} '${spec.name}' declares dimension ${i} as ${d}; dimensions are non-negative integers`);
    }
  });
}

/**
 * Checks the graph before anything runs. Throws OnnxImportError INVALID_MODEL for invalid models; returns
 * warnings for harmless oddities. `opsets` are the model's imports by domain ('' = default).
 */
export function validateGraph(proto: ModelProto, graph: OnnxGraph, opsets: ReadonlyMap<string, number>): OnnxWarning[] {
  const warnings: OnnxWarning[] = [];
  const defaultOpset = opsets.get('');
  const usesDefault = graph.nodes.some((n) => n.domain === '');
  if (defaultOpset === undefined && usesDefault) {
    // IR versions 1 and 2 predate opset_import: such models are opset 1. Later models must import it.
    if (proto.irVersion >= 3) {
      throw new OnnxImportError('INVALID_MODEL', `invalid ONNX graph: the model (IR version ${proto.irVersion}) uses ONNX operators but imports no opset for the default domain (its opset_import list ${proto.opsetImport.length ? `names only ${proto.opsetImport.map((o) => `'${o.domain}'`).join(', ')}` : 'is empty'}), so which version of each operator it means is unknown`);
    }
    warnings.push({ code: 'NO_OPSET_IMPORT', message: `the model (IR version ${proto.irVersion}) imports no opset; it is read as opset 1` });
  }
  for (const o of proto.opsetImport) {
    if (!(Number.isSafeInteger(o.version) && o.version >= 1)) throw new OnnxImportError('INVALID_MODEL', `invalid ONNX graph: opset_import of domain '${o.domain}' has version ${o.version}`);
  }
  // Nodes of If / Loop / Scan bodies are checked as the top-level ones.
  const checkNodes = (nodes: readonly OnnxNode[]): void => {
    for (const n of nodes) {
      const opset = opsets.get(n.domain);
      if (opset === undefined) {
        if (n.domain !== '') throw new OnnxImportError('INVALID_MODEL', `invalid ONNX graph: ${describeNode(n)} uses domain '${n.domain}', which the model does not import (opset_import)`, { node: n });
        checkNode(n, 1, warnings);
      } else if (n.domain === '') {
        checkNode(n, opset, warnings);
      }
      if (n.subgraphs) for (const sub of n.subgraphs) checkNodes(sub.nodes);
    }
  };
  checkNodes(graph.nodes);
  for (const v of graph.inputs) checkDims(v, 'graph input');
  for (const v of graph.outputs) checkDims(v, 'graph output');
  for (const v of graph.valueInfo.values()) checkDims(v, 'value_info entry');
  return warnings;
}
