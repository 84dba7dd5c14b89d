/**
 * Finds attention blocks in an imported graph (scores from a MatMul of queries and keys, optional scale
 * and mask, Softmax, then a MatMul with values) whatever reshape/transpose layout the exporter used, and
 * captures, for one sample, the attention weights P, dL/dP and dL/dS (S = the softmax input) per head.
 */
import type { OnnxGraph, OnnxNode } from '../onnx/graph';
import type { OnnxValue } from '../onnx';
import type { Tensor } from '../tensor';
import type { SourceLocation } from './report';

/** Ops allowed between the scores MatMul and the Softmax: scaling, masking, bias. */
const SCORE_PATH = new Set(['Div', 'Mul', 'Add', 'Sub', 'Where', 'Cast', 'Identity']);
/** Ops allowed between the Softmax and the MatMul with values. */
const PROB_PATH = new Set(['Dropout', 'Cast', 'Identity']);

export interface AttentionSite {
  /** 0-based order among the attention blocks of the forward pass. */
  layer: number;
  modulePath: string;
  softmax: OnnxNode;
  /** Value names of the scores fed to softmax (S) and the weights it returns (P). */
  scores: string;
  probs: string;
  source?: SourceLocation;
}

export interface HeadSummary {
  /** Mean over query rows of the entropy of the row's weights, in nats. */
  entropy: number;
  /** Mean over query rows of the largest weight. */
  maxWeight: number;
  /** Norm of dL/dS for this head. */
  gradNorm: number;
}

export interface AttentionCapture {
  layer: number;
  modulePath: string;
  node: string;
  source?: SourceLocation;
  sample: number;
  heads: number;
  queries: number;
  keys: number;
  /** Row-major [heads, queries, keys] for the chosen sample. */
  P: Float32Array;
  dP: Float32Array;
  dS: Float32Array;
  summaries: HeadSummary[];
}

function producer(graph: OnnxGraph, value: string): OnnxNode | null {
  const p = graph.producers.get(value);
  return p === undefined ? null : graph.nodes[p];
}

/** Whether `value` is computed from a `want` node through `through` ops only (any input). */
function reachesUp(graph: OnnxGraph, value: string, through: Set<string>, want: string): boolean {
  const queue = [value];
  const seen = new Set<string>();
  while (queue.length) {
    const v = queue.shift()!;
    if (seen.has(v)) continue;
    seen.add(v);
    const n = producer(graph, v);
    if (!n) continue;
    if (n.opType === want) return true;
    if (through.has(n.opType)) queue.push(...n.inputs.filter((i) => i !== ''));
  }
  return false;
}

function feedsValuesMatmul(graph: OnnxGraph, value: string): boolean {
  for (const c of graph.consumers.get(value) ?? []) {
    const n = graph.nodes[c.node];
    if (n.opType === 'MatMul' && c.slot === 0) return true;
    if (PROB_PATH.has(n.opType) && feedsValuesMatmul(graph, n.outputs[0])) return true;
  }
  return false;
}

/** Softmax nodes that sit between a query-key MatMul and a MatMul with values, in execution order. */
export function findAttention(graph: OnnxGraph): AttentionSite[] {
  const sites: AttentionSite[] = [];
  for (const n of graph.nodes) {
    if (n.opType !== 'Softmax') continue;
    if (!reachesUp(graph, n.inputs[0], SCORE_PATH, 'MatMul')) continue;
    if (!feedsValuesMatmul(graph, n.outputs[0])) continue;
    sites.push({ layer: sites.length, modulePath: n.modulePath, softmax: n, scores: n.inputs[0], probs: n.outputs[0], source: n.source ? { file: n.source.file, line: n.source.line } : undefined });
  }
  return sites;
}

/** Arms gradient capture on the run's S and P tensors; call `collect` after backward. */
export function armAttentionCapture(sites: AttentionSite[], values: Map<string, OnnxValue>, batch: number, sample: number) {
  const grads = new Map<string, Tensor>();
  const removers: (() => void)[] = [];
  for (const s of sites) {
    for (const name of [s.scores, s.probs]) {
      const t = values.get(name)?.tensor;
      if (t?.requiresGrad) removers.push(t.registerHook((g) => void grads.set(name, g)));
    }
  }
  return {
    /** What collect() reads: every captured P and gradient (read them first on a device backend). */
    tensors(): Tensor[] {
      const out = [...grads.values()];
      for (const s of sites) {
        const P = values.get(s.probs)?.tensor;
        if (P) out.push(P);
      }
      return out;
    },
    collect(): AttentionCapture[] {
      removers.forEach((r) => r());
      const out: AttentionCapture[] = [];
      for (const s of sites) {
        const P = values.get(s.probs)?.tensor;
        if (!P || P.rank < 3) continue;
        const keys = P.shape[P.rank - 1];
        const queries = P.shape[P.rank - 2];
        // [B, H, T, S] directly; [B*H, T, S] (e.g. nn.MultiheadAttention) split by the batch size.
        const lead = P.size / (queries * keys);
        const perSample = P.rank === 4 ? P.shape[1] : Math.max(1, Math.round(lead / Math.max(1, batch)));
        const samples = lead / perSample;
        if (!Number.isInteger(samples) || sample >= samples) continue;
        const span = perSample * queries * keys;
        const cut = (t: Tensor | undefined) => (t ? Float32Array.from(t.data.subarray(sample * span, (sample + 1) * span) as ArrayLike<number>) : new Float32Array(span));
        const p = cut(P);
        const dP = cut(grads.get(s.probs));
        const dS = cut(grads.get(s.scores));
        out.push({
          layer: s.layer, modulePath: s.modulePath, node: s.softmax.name, source: s.source, sample,
          heads: perSample, queries, keys, P: p, dP, dS, summaries: summarize(p, dS, perSample, queries, keys),
        });
      }
      return out;
    },
  };
}

function summarize(P: Float32Array, dS: Float32Array, heads: number, queries: number, keys: number): HeadSummary[] {
  return Array.from({ length: heads }, (_, h) => {
    let entropy = 0;
    let maxWeight = 0;
    let g = 0;
    for (let q = 0; q < queries; q++) {
      const base = (h * queries + q) * keys;
      let rowMax = 0;
      for (let k = 0; k < keys; k++) {
        const p = P[base + k];
        if (p > 0) entropy -= p * Math.log(p);
        if (p > rowMax) rowMax = p;
        g += dS[base + k] * dS[base + k];
      }
      maxWeight += rowMax;
    }
    return { entropy: entropy / queries, maxWeight: maxWeight / queries, gradNorm: Math.sqrt(g) };
  });
}
