/**
 * Anomaly mode: finds the first op whose forward output or backward gradient holds NaN or Inf, with
 * its node, module path and source line. Shared by the one-shot inspection and the trainer.
 */
import type { OnnxModel, OnnxValue } from '../onnx';
import type { OnnxNode } from '../onnx/graph';
import { Tensor, readTransient } from '../tensor';
import { transientCallback } from '../recycling';
import { isFloat } from '../dtype';
import type { SourceLocation } from './report';
import { HostReads } from './hostReads';

export interface NonFiniteOrigin {
  node: string;
  modulePath: string;
  phase: 'forward' | 'backward';
  source?: SourceLocation;
  /** What was found: 'NaN' or 'Inf'. */
  kind: 'NaN' | 'Inf';
}

export function sourceOf(node: OnnxNode | null | undefined): SourceLocation | undefined {
  return node?.source ? { file: node.source.file, line: node.source.line } : undefined;
}

export function nonFinite(t: Tensor): { nan: boolean; inf: boolean } {
  let nan = false;
  let inf = false;
  const d = readTransient(t); // scanned now, not kept (engine/recycling.ts)
  for (let i = 0; i < d.length; i++) {
    const v = d[i];
    if (v !== v) nan = true;
    else if (v === Infinity || v === -Infinity) inf = true;
  }
  return { nan, inf };
}

/**
 * Watches one forward + backward pass. Pass `onValue` to OnnxModel.run, then call `armBackward`
 * before backward() and the returned remover after it; `first` holds the origin, if any.
 *
 * Checks go through `reads`: on host backends they run at once; values on a device (WebGPU) are
 * checked, in the same order, when the caller flushes the reads after backward.
 */
export class NonFiniteWatch {
  first: NonFiniteOrigin | undefined;
  private readonly seen = new Map<string, Tensor>();

  constructor(private readonly model: OnnxModel, private readonly reads: HostReads = new HostReads()) {}

  /** Forward check, value by value in execution order. */
  readonly onValue = transientCallback((v: OnnxValue): void => {
    this.seen.set(v.name, v.tensor);
    const node = v.node;
    if (this.first || v.kind !== 'node' || !node || v.folded || !isFloat(v.tensor.dtype)) return;
    const inputs = node.inputs.map((n) => this.seen.get(n) ?? this.model.buffers.get(n)).filter((t): t is Tensor => t !== undefined && isFloat(t.dtype));
    this.reads.on([v.tensor, ...inputs], () => {
      if (this.first) return;
      // Constants are intended. NaN elsewhere is an anomaly; an Inf is one only when no input already held it (a -inf attention
      // mask and the masked scores it produces are intended).
      const bad = nonFinite(v.tensor);
      if (bad.nan || (bad.inf && !inputs.some((t) => nonFinite(t).inf))) {
        this.first = { node: node.name, modulePath: v.modulePath, phase: 'forward', source: sourceOf(node), kind: bad.nan ? 'NaN' : 'Inf' };
      }
    });
  });

  /** Backward check: the first gradient to turn NaN/Inf in backward order (after the forward checks: a forward anomaly wins). Returns a remover. */
  armBackward(values: readonly OnnxValue[]): () => void {
    if (this.first) return () => {};
    const removers = values.filter((v) => v.node && v.tensor.requiresGrad).map((v) => v.tensor.registerHook(transientCallback((g: Tensor) => {
      this.reads.on([g], () => {
        if (this.first) return;
        const bad = nonFinite(g);
        if (bad.nan || bad.inf) this.first = { node: v.node!.name, modulePath: v.modulePath, phase: 'backward', source: sourceOf(v.node), kind: bad.nan ? 'NaN' : 'Inf' };
      });
    })));
    return () => removers.forEach((r) => r());
  }

  /** Clears the per-pass state (the trainer reuses one watch across steps). */
  reset(): void {
    this.first = undefined;
    this.seen.clear();
  }
}
