/**
 * What the gradient-flow chart draws, as plain data (no chart.js, no DOM) so it is unit-tested: one entry per
 * layer in forward order, with the baseline's value beside it when a run is pinned, and the y-axis tick labels.
 */
import type { InspectionReport, ModuleReport } from '../engine/inspect/report';
import { ownGradNorm, parameterSignature, RunBaseline } from '../engine/inspect/baseline';

export interface FlowLayer {
  path: string;
  /** ‖∇W‖ of the module's own parameters (the bar); null without a gradient. */
  grad: number | null;
  /** ‖∇out‖ of its output (the line). */
  outGrad: number | null;
  /** ‖∇W‖/‖W‖ of its own parameters. */
  gradToWeight: number | null;
  /** The baseline's bar for the same module (absent: no baseline, or the module is not in it). */
  ghost?: number | null;
  /** Only in the baseline (removed since): no bar of the new run. */
  removed?: boolean;
}

function ownGradToWeight(m: ModuleReport): number | null {
  let g = 0;
  let w = 0;
  for (const p of m.parameters) {
    if (!p.grad) continue;
    g += p.grad.norm * p.grad.norm;
    w += p.valueNorm * p.valueNorm;
  }
  return w > 0 ? Math.sqrt(g) / Math.sqrt(w) : null;
}

/**
 * Layers: every module that owns parameters with a gradient (a LoRA wrapper owns lora_A and lora_B while its
 * frozen base is a submodule), and leaves without any that pass a gradient on (activations, pools). A bar is
 * the gradient of the module's own parameters, so a parent and its child never count the same parameter twice.
 */
export function flowLayers(report: InspectionReport): FlowLayer[] {
  return report.modules
    .filter((m) => ownGradNorm(m) !== null || (m.leaf && m.outputGrad))
    .sort((a, b) => a.depth - b.depth || a.path.length - b.path.length)
    .map((m) => ({ path: m.path, grad: ownGradNorm(m), outGrad: m.outputGrad?.norm ?? null, gradToWeight: ownGradToWeight(m) }));
}

/**
 * The layers with the baseline's bars beside them: modules matched by path (and parameter shapes, as the
 * comparison does); layers only the baseline has are inserted after their predecessor in the baseline's order.
 */
export function flowWithBaseline(report: InspectionReport, baseline: RunBaseline | null): FlowLayer[] {
  const layers = flowLayers(report);
  if (!baseline || baseline.model !== report.model.name) return layers;
  const now = new Map(report.modules.map((m) => [m.path, m]));
  const before = baseline.modules.filter((b) => b.ownGradNorm !== null || (b.leaf && b.outputGradNorm !== null));
  const beforeByPath = new Map(before.map((b) => [b.path, b]));
  for (const l of layers) {
    const b = beforeByPath.get(l.path);
    if (b && b.parameters === parameterSignature(now.get(l.path)!)) l.ghost = b.ownGradNorm;
  }
  const shown = new Set(layers.map((l) => l.path));
  const out = [...layers];
  let prev: string | null = null;
  for (const b of before) {
    if (!shown.has(b.path)) {
      const at = prev === null ? 0 : out.findIndex((l) => l.path === prev) + 1;
      out.splice(at, 0, { path: b.path, grad: null, outGrad: null, gradToWeight: null, ghost: b.ownGradNorm, removed: true });
      shown.add(b.path);
    }
    prev = b.path;
  }
  return out;
}

/**
 * Labels for a log axis's ticks, never the same text twice. Over more than a decade only powers of ten are
 * labelled (1e-3, 1e-2); within one, each tick gets the fewest significant digits that tell it from its
 * neighbours (2e-1, 2.5e-1, 3e-1 rather than 2e-1 three times). '' leaves a tick unlabelled.
 */
export function logTickLabels(values: readonly number[]): string[] {
  const finite = values.filter((v) => v > 0 && Number.isFinite(v));
  if (finite.length === 0) return values.map(() => '');
  const decades = Math.log10(Math.max(...finite)) - Math.log10(Math.min(...finite));
  const isDecade = (v: number) => v > 0 && Math.abs(Math.log10(v) - Math.round(Math.log10(v))) < 1e-9;
  const format = (v: number, digits: number) => {
    const [m, e] = v.toExponential(digits - 1).split('e');
    return `${m.replace(/\.?0+$/, '')}e${Number(e)}`;
  };
  if (decades >= 1 && values.filter(isDecade).length >= 2) return values.map((v) => (isDecade(v) ? format(v, 1) : ''));
  for (let digits = 1; digits <= 4; digits++) {
    const labels = values.map((v) => (v > 0 && Number.isFinite(v) ? format(v, digits) : ''));
    const nonEmpty = labels.filter((l) => l !== '');
    if (new Set(nonEmpty).size === nonEmpty.length) return labels;
  }
  // Still ambiguous at four digits: label the first of each run of equal texts only.
  const labels = values.map((v) => (v > 0 && Number.isFinite(v) ? format(v, 4) : ''));
  return labels.map((l, i) => (l !== '' && labels.indexOf(l) !== i ? '' : l));
}
