/**
 * Why a parameter's gradient is (structurally) zero, read off the ONNX graph. Each rule names a
 * pattern whose gradient is zero in exact arithmetic; the caller only asks about parameters whose
 * measured gradient is already ~0, so a rule explains a number, it never invents one.
 */
import type { OnnxGraph, OnnxNode } from '../onnx/graph';
import type { Tensor } from '../tensor';

/** Ops that only move or rename data between a parameter and the op that matters. */
const LAYOUT = new Set(['Reshape', 'Transpose', 'Unsqueeze', 'Squeeze', 'Identity', 'Cast', 'Flatten', 'Split', 'Slice', 'Expand', 'Concat']);
/** Ops that keep "a constant per softmax row" a constant per row (scale, mask, add). */
const ROW_PRESERVING = new Set([...LAYOUT, 'Div', 'Mul', 'Add', 'Sub', 'Where']);

function consumers(graph: OnnxGraph, value: string): OnnxNode[] {
  return (graph.consumers.get(value) ?? []).map((c) => graph.nodes[c.node]);
}

/** Values reachable from `start` through ops in `through`, with the node that stopped the walk. */
function walk(graph: OnnxGraph, start: string, through: Set<string>, stop: (n: OnnxNode, from: string) => boolean): OnnxNode | null {
  const queue = [start];
  const seen = new Set<string>();
  while (queue.length) {
    const v = queue.shift()!;
    if (seen.has(v)) continue;
    seen.add(v);
    for (const n of consumers(graph, v)) {
      if (stop(n, v)) return n;
      if (through.has(n.opType)) queue.push(...n.outputs.filter((o) => o !== ''));
    }
  }
  return null;
}

/**
 * Key bias under softmax: a bias added to the key projection shifts every score in a softmax row by
 * the same q·b, and softmax is shift invariant, so the bias gets no gradient.
 */
function keyBiasUnderSoftmax(graph: OnnxGraph, param: string): string | null {
  // The key side of scores = Q @ K^T is the MatMul's second operand.
  const scores = walk(graph, param, new Set([...LAYOUT, 'Add']), (n, from) => n.opType === 'MatMul' && n.inputs[1] === from);
  if (!scores) return null;
  const softmax = walk(graph, scores.outputs[0], ROW_PRESERVING, (n) => n.opType === 'Softmax' || n.opType === 'LogSoftmax');
  if (!softmax) return null;
  return 'it adds the same vector to every key, which shifts each row of attention scores by a constant, and softmax ignores constant shifts';
}

/** A bias right before train-mode batch norm: the batch mean subtraction removes any per-channel constant. */
function biasBeforeBatchNorm(graph: OnnxGraph, param: string): string | null {
  for (const n of consumers(graph, param)) {
    const isBiasSlot = (n.opType === 'Conv' && n.inputs[2] === param) || (n.opType === 'Gemm' && n.inputs[2] === param) || n.opType === 'Add';
    if (!isBiasSlot) continue;
    const bn = walk(graph, n.outputs[0], new Set(['Identity']), (c) => c.opType === 'BatchNormalization');
    if (bn && (bn.attrs.flag('training_mode', false) || bn.outputs.filter((o) => o !== '').length > 1)) {
      return 'a per-channel constant added right before train-mode batch norm is removed by its mean subtraction';
    }
  }
  return null;
}

/** Every path to the loss multiplies by an all-zero tensor (e.g. LoRA's B at initialisation). */
function multipliedByZeros(graph: OnnxGraph, param: string, valueOf: (name: string) => Tensor | undefined): string | null {
  const allZero = (name: string): boolean => {
    const t = valueOf(name);
    if (t && t.size > 0 && t.data.every((v) => v === 0)) return true;
    const producer = graph.producers.get(name);
    const p = producer === undefined ? null : graph.nodes[producer];
    return p !== null && LAYOUT.has(p.opType) && p.inputs.length > 0 && allZero(p.inputs[0]);
  };
  const product = walk(graph, param, new Set([...LAYOUT, 'MatMul', 'Gemm', 'Mul']), (n, from) =>
    (n.opType === 'MatMul' || n.opType === 'Gemm' || n.opType === 'Mul') && n.inputs.some((i, slot) => i !== from && slot < 2 && i !== '' && allZero(i)));
  if (!product) return null;
  // Name the all-zero tensor itself (the parameter behind any transpose or reshape).
  let zero = product.inputs.find((i) => i !== '' && allZero(i))!;
  for (let p = graph.producers.get(zero); p !== undefined && LAYOUT.has(graph.nodes[p].opType); p = graph.producers.get(zero)) zero = graph.nodes[p].inputs[0];
  return `every path to the loss multiplies by '${zero}', which is all zeros (as LoRA's B is at initialisation)`;
}

/**
 * Read only inside If branches or Loop / Scan bodies (implicit uses: slots past the node's inputs): a run that
 * takes the other branch, or a loop that runs zero times, records no op on it.
 */
function onlyInsideBodies(graph: OnnxGraph, param: string): string | null {
  const uses = graph.consumers.get(param) ?? [];
  if (uses.length === 0 || uses.some((c) => c.slot < graph.nodes[c.node].inputs.length)) return null;
  const where = [...new Set(uses.map((c) => c.node))].map((i) => {
    const n = graph.nodes[i];
    const subs = (n.subgraphs ?? []).filter((s) => s.reads.includes(param)).map((s) => s.attribute);
    return `the ${subs.join(' and ')} of ${n.opType} node '${n.name}'`;
  });
  return `it is read only inside ${where.join(', ')}: a run that takes the other branch, or a loop that runs zero times (a SequenceMap over an empty sequence), gives it no gradient`;
}

export function explainZeroGradient(graph: OnnxGraph, param: string, valueOf: (name: string) => Tensor | undefined): string | undefined {
  return keyBiasUnderSoftmax(graph, param) ?? biasBeforeBatchNorm(graph, param) ?? multipliedByZeros(graph, param, valueOf) ?? onlyInsideBodies(graph, param) ?? undefined;
}
