/**
 * Float computations whose only use is an integer: the nodes of a float32 model that a float64 run must still
 * compute in float32.
 *
 * A float64 run computes the model in double precision, which changes its numbers only by rounding, except
 * where floats become integers: T5's relative-position buckets are `Cast<int64>(log(n / max_exact) /
 * log(max_distance / max_exact) * k)`. PyTorch computes them in float32 (`.float()`) even in a float64 model,
 * and the export stores the constants in float32; in float64 `log(2) / f32(log 4)` is a hair under 0.5 where
 * float32's is exactly 0.5, so buckets land one lower and the model is another model. Rounding every result of
 * such a path to float32 computes it as float32 does (exactly for + - * / sqrt, whose float32 result is the
 * double result rounded; to the correctly rounded value for log and exp).
 */
import type { OnnxGraph } from './graph';
import { DataType } from './proto';

const FLOAT_TYPES = new Set<number>([DataType.FLOAT, DataType.DOUBLE, DataType.FLOAT16, DataType.BFLOAT16]);

/** Ops that turn floats into integers or booleans: where float rounding decides a discrete value. */
function isIntegerSink(op: string, to: number | undefined): boolean {
  if (op === 'Cast') return to !== undefined && !FLOAT_TYPES.has(to);
  return op === 'Less' || op === 'LessOrEqual' || op === 'Greater' || op === 'GreaterOrEqual' || op === 'Equal' || op === 'ArgMax' || op === 'ArgMin';
}

/**
 * Indices of the nodes whose every output is read only by integer sinks (Cast to an integer type, comparisons)
 * or by other such nodes: the float paths that exist only to compute an integer. Graph outputs never count.
 */
export function integerBoundNodes(graph: Pick<OnnxGraph, 'nodes' | 'consumers' | 'outputs'>): Set<number> {
  const bound = new Set<number>();
  const outputs = new Set(graph.outputs.map((o) => o.name));
  const sink = new Set<number>();
  for (const n of graph.nodes) if (isIntegerSink(n.opType, n.opType === 'Cast' ? n.attrs.int('to', 0) : undefined)) sink.add(n.index);
  // Nodes are in topological order: consumers come later, so one pass from the end decides each node.
  for (let i = graph.nodes.length - 1; i >= 0; i--) {
    const n = graph.nodes[i];
    if (sink.has(n.index)) continue;
    let uses = 0;
    const onlyInteger = n.outputs.every((o) => {
      if (o === '') return true;
      if (outputs.has(o)) return false;
      const readers = graph.consumers.get(o) ?? [];
      uses += readers.length;
      return readers.every((c) => sink.has(c.node) || bound.has(c.node));
    });
    if (onlyInteger && uses > 0) bound.add(n.index);
  }
  return bound;
}
