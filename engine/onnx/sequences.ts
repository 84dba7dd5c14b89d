/**
 * SplitToSequence read only by SequenceAt at constant positions, as tensor slices.
 *
 * The dynamo exporter with optimize=False writes `torch.split` (GPT-2's `query, key, value =
 * self.c_attn(x).split(n, dim=2)`) as a SplitToSequence whose sequence is read by one SequenceAt per
 * chunk; optimize=True turns it into a Split. The engine has no sequence values, but this pattern needs
 * none: chunk k of the sequence is a Slice of the input (and a Squeeze for keepdims=0 without split),
 * so each SequenceAt becomes that Slice, under its own name and metadata (its module and source line
 * stay). Any other use of a sequence is left as it is, and the import names the op it does not support.
 */
import { AttrType, AttributeProto, DataType, GraphProto, ModelProto, NodeProto, TensorProto } from './proto';
import { protoValues } from './tensors';

function intsConstant(name: string, values: number[], like: NodeProto): NodeProto {
  const attr: AttributeProto = {
    name: 'value_ints', type: AttrType.INTS, f: 0, i: 0, s: null, t: null, g: null, floats: [], ints: values, strings: [], tensors: [], graphs: [],
    refAttrName: '', present: new Set([8]),
  };
  return { name, opType: 'Constant', domain: '', input: [], output: [name], attribute: [attr], docString: '', metadataProps: like.metadataProps };
}

/** The integer values of a constant (a Constant node's value / value_int / value_ints, or an initializer), else null. */
function constantInts(name: string, constants: Map<string, NodeProto>, initializers: Map<string, TensorProto>): number[] | null {
  let t: TensorProto | null | undefined = initializers.get(name);
  const node = constants.get(name);
  if (!t && node) {
    const a = node.attribute.find((x) => x.name === 'value' || x.name === 'value_int' || x.name === 'value_ints');
    if (a?.name === 'value_int') return [a.i];
    if (a?.name === 'value_ints') return [...a.ints];
    t = a?.t;
  }
  if (!t || (t.dataType !== DataType.INT64 && t.dataType !== DataType.INT32) || t.dims.length > 1) return null;
  try {
    return Array.from(protoValues(t, name));
  } catch {
    return null; // external or malformed: the op stays, and the import says what it cannot do
  }
}

/** Start and end of chunk `k` along the axis, when they follow from the split input alone; else null. */
function chunkBounds(k: number, split: number[] | null, scalarSplit: boolean): [number, number] | null {
  if (split === null) return k >= 0 ? [k, k + 1] : null; // chunks of 1 (the axis length is not needed)
  if (scalarSplit) return k >= 0 && split[0] > 0 ? [k * split[0], (k + 1) * split[0]] : null; // Slice clamps the last chunk
  const i = k < 0 ? k + split.length : k;
  if (i < 0 || i >= split.length) return null;
  const start = split.slice(0, i).reduce((s, x) => s + x, 0);
  return [start, start + split[i]];
}

/** The model with each fully constant SplitToSequence / SequenceAt group rewritten as Slices; unchanged when there is none. */
export function lowerSequenceSplits(model: ModelProto): ModelProto {
  const graph = model.graph;
  if (!graph || !graph.node.some((n) => n.opType === 'SplitToSequence' && (n.domain === '' || n.domain === 'ai.onnx'))) return model;
  const opset = model.opsetImport.find((o) => o.domain === '' || o.domain === 'ai.onnx')?.version ?? 1;
  const constants = new Map<string, NodeProto>();
  for (const n of graph.node) if (n.opType === 'Constant' && n.output[0]) constants.set(n.output[0], n);
  const initializers = new Map(graph.initializer.map((t) => [t.name, t]));
  const readers = new Map<string, NodeProto[]>();
  for (const n of graph.node) for (const i of n.input) if (i) readers.set(i, [...(readers.get(i) ?? []), n]);
  const graphOutputs = new Set(graph.output.map((o) => o.name));

  const replaced = new Map<NodeProto, NodeProto[]>(); // node -> what stands in its place ([] = removed)
  for (const split of graph.node) {
    if (split.opType !== 'SplitToSequence' || !(split.domain === '' || split.domain === 'ai.onnx')) continue;
    const seq = split.output[0];
    const uses = readers.get(seq) ?? [];
    if (!seq || graphOutputs.has(seq) || uses.length === 0 || !uses.every((u) => u.opType === 'SequenceAt' && u.input[0] === seq)) continue;
    const intAttr = (name: string, fallback: number) => split.attribute.find((a) => a.name === name)?.i ?? fallback;
    const axis = intAttr('axis', 0);
    const keepdims = intAttr('keepdims', 1);
    const splitName = split.input[1] ?? '';
    const splitValues = splitName ? constantInts(splitName, constants, initializers) : null;
    if (splitName && splitValues === null) continue;
    const scalarSplit = !!splitName && (initializers.get(splitName)?.dims.length ?? constants.get(splitName)?.attribute.find((a) => a.name === 'value')?.t?.dims.length ?? 1) === 0;
    const plans: { at: NodeProto; bounds: [number, number] }[] = [];
    for (const at of uses) {
      const k = constantInts(at.input[1] ?? '', constants, initializers);
      const bounds = k && k.length === 1 ? chunkBounds(k[0], splitValues, scalarSplit) : null;
      if (!bounds) break;
      plans.push({ at, bounds });
    }
    if (plans.length !== uses.length) continue;
    replaced.set(split, []);
    for (const { at, bounds } of plans) {
      const base = at.name || at.output[0];
      const squeeze = !splitName && keepdims === 0;
      const sliced = squeeze ? `${at.output[0]}__chunk` : at.output[0];
      const nodes = [
        intsConstant(`${base}__starts`, [bounds[0]], at),
        intsConstant(`${base}__ends`, [bounds[1]], at),
        intsConstant(`${base}__axes`, [axis], at),
        { ...at, opType: 'Slice', input: [split.input[0], `${base}__starts`, `${base}__ends`, `${base}__axes`], output: [sliced], attribute: [] },
      ];
      if (squeeze) {
        nodes.push(opset >= 13
          ? { ...at, name: `${base}__squeeze`, opType: 'Squeeze', input: [sliced, `${base}__axes`], output: [at.output[0]], attribute: [] }
          : { ...at, name: `${base}__squeeze`, opType: 'Squeeze', input: [sliced], output: [at.output[0]], attribute: [{ ...nodes[2].attribute[0], name: 'axes' }] });
      }
      replaced.set(at, nodes);
    }
  }
  if (replaced.size === 0) return model;
  const node = graph.node.flatMap((n) => replaced.get(n) ?? [n]);
  const lowered: GraphProto = { ...graph, node };
  return { ...model, graph: lowered };
}
