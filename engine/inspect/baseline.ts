/**
 * "Did my fix help?": a pinned run (the baseline) and its comparison with a later run of the same model. A
 * baseline keeps per module only what the comparison shows (gradient norms, parameter shapes), so it is small
 * enough for the panel's state and the workspace's storage. Plain JSON, no vscode import.
 *
 * Modules are matched by path, and only when their parameters have the same shapes: after a layer is
 * inserted into an nn.Sequential the indices shift, and `layers.1` may now be a different layer. Such a
 * module is 'changed' and gets no ratio, rather than a ratio between two different layers.
 */
import type { InspectionReport, ModuleReport } from './report';

export const BASELINE_SCHEMA = 'gradient-lens/baseline@1';

export interface BaselineModule {
  path: string;
  kind: string;
  leaf: boolean;
  /** Own parameter shapes, e.g. 'weight[32,16] bias[32]' ('' without parameters): what a match requires. */
  parameters: string;
  parameterCount: number;
  /** ‖∇‖ of every parameter under the module (the overlay's and the table's number). */
  gradNorm: number | null;
  /** ‖∇‖ of the module's own parameters (the gradient-flow chart's bar). */
  ownGradNorm: number | null;
  outputGradNorm: number | null;
}

export interface RunBaseline {
  schema: typeof BASELINE_SCHEMA;
  /** The model file name the run inspected. */
  model: string;
  /** ISO time it was pinned. */
  pinnedAt: string;
  loss: { kind: string; value: number };
  /** With the loss, identifies the pinned run (a re-run never has the same timings). */
  timings: { forwardMs: number; backwardMs: number };
  settings: InspectionReport['settings'];
  modules: BaselineModule[];
}

/** ‖∇‖ of a module's own parameters (not its submodules'), null when none has a gradient. */
export function ownGradNorm(m: Pick<ModuleReport, 'parameters'>): number | null {
  let sq = 0;
  let any = false;
  for (const p of m.parameters) {
    if (!p.grad) continue;
    sq += p.grad.norm * p.grad.norm;
    any = true;
  }
  return any ? Math.sqrt(sq) : null;
}

/** Own parameter names and shapes, 'weight[32,16] bias[32]': what two runs' modules must share to be compared. */
export function parameterSignature(m: Pick<ModuleReport, 'parameters'>): string {
  return m.parameters.map((p) => `${p.name.slice(p.name.lastIndexOf('.') + 1)}[${p.shape.join(',')}]`).join(' ');
}

export function baselineOf(report: InspectionReport, pinnedAt: string = new Date().toISOString()): RunBaseline {
  return {
    schema: BASELINE_SCHEMA,
    model: report.model.name,
    pinnedAt,
    loss: { ...report.loss },
    timings: { ...report.timings },
    settings: { ...report.settings },
    modules: report.modules.map((m) => ({
      path: m.path,
      kind: m.kind,
      leaf: m.leaf,
      parameters: parameterSignature(m),
      parameterCount: m.parameterCount,
      gradNorm: m.gradNorm,
      ownGradNorm: ownGradNorm(m),
      outputGradNorm: m.outputGrad?.norm ?? null,
    })),
  };
}

/** Is `report` the very run the baseline was pinned from (nothing to compare yet)? */
export function isPinnedRun(baseline: RunBaseline, report: InspectionReport): boolean {
  return baseline.model === report.model.name && baseline.loss.value === report.loss.value
    && baseline.timings.forwardMs === report.timings.forwardMs && baseline.timings.backwardMs === report.timings.backwardMs;
}

export interface ModuleComparison {
  path: string;
  /** 'matched': same path and parameter shapes; 'new': not in the baseline; 'changed': same path, other parameters. */
  status: 'matched' | 'new' | 'changed';
  /** Which norm is compared: the parameters' gradient (‖∇‖) or, for modules without any, the output gradient's. */
  quantity: '‖∇‖' | '‖∇out‖';
  was: number | null;
  now: number | null;
  /** now / was; null when either is missing or was is 0. */
  ratio: number | null;
  /** For 'changed': what differs. */
  reason?: string;
}

export interface RunComparison {
  /** False when the baseline is of another model: then nothing is compared and `reason` says why. */
  comparable: boolean;
  reason?: string;
  baseline: RunBaseline;
  byPath: Map<string, ModuleComparison>;
  /** Baseline modules the new run does not have. */
  removed: BaselineModule[];
}

/** The number an overlay shows for a module: the parameters' gradient norm, else the output gradient's. */
function shownNorm(gradNorm: number | null, outputGradNorm: number | null): { quantity: ModuleComparison['quantity']; value: number | null } {
  return gradNorm !== null ? { quantity: '‖∇‖', value: gradNorm } : { quantity: '‖∇out‖', value: outputGradNorm };
}

export function compareRuns(report: InspectionReport, baseline: RunBaseline): RunComparison {
  const byPath = new Map<string, ModuleComparison>();
  if (baseline.model !== report.model.name) {
    return { comparable: false, reason: `the baseline is of ${baseline.model}, this run of ${report.model.name}`, baseline, byPath, removed: [] };
  }
  const before = new Map(baseline.modules.map((m) => [m.path, m]));
  for (const m of report.modules) {
    const b = before.get(m.path);
    const now = shownNorm(m.gradNorm, m.outputGrad?.norm ?? null);
    if (!b) {
      byPath.set(m.path, { path: m.path, status: 'new', quantity: now.quantity, was: null, now: now.value, ratio: null });
      continue;
    }
    const sig = parameterSignature(m);
    if (sig !== b.parameters) {
      byPath.set(m.path, {
        path: m.path, status: 'changed', quantity: now.quantity, was: null, now: now.value, ratio: null,
        reason: `${m.path || '(model)'} had parameters ${b.parameters || 'none'}, now ${sig || 'none'}`,
      });
      continue;
    }
    // Compare like with like: when one run has a parameter gradient and the other not (a layer unfrozen),
    // fall back to the output gradient for both.
    const was = shownNorm(b.gradNorm, b.outputGradNorm);
    const both = was.quantity === now.quantity ? { was, now } : { was: shownNorm(null, b.outputGradNorm), now: shownNorm(null, m.outputGrad?.norm ?? null) };
    const ratio = both.was.value !== null && both.now.value !== null && both.was.value !== 0 ? both.now.value / both.was.value : null;
    byPath.set(m.path, { path: m.path, status: 'matched', quantity: both.now.quantity, was: both.was.value, now: both.now.value, ratio });
  }
  const paths = new Set(report.modules.map((m) => m.path));
  return { comparable: true, baseline, byPath, removed: baseline.modules.filter((m) => !paths.has(m.path)) };
}

/** A ratio as a factor: ×1.00, ×0.25, ×1.3e+05. */
export function formatRatio(r: number | null): string {
  if (r === null) return '';
  if (!Number.isFinite(r)) return Number.isNaN(r) ? '×NaN' : '×Inf';
  if (r === 0) return '×0';
  return r >= 0.01 && r < 1000 ? `×${r.toPrecision(3)}` : `×${r.toExponential(1)}`;
}

/** Checks a stored baseline (from the workspace or the panel's state): the value, or null when it is not one. */
export function parseBaseline(raw: unknown): RunBaseline | null {
  if (!raw || typeof raw !== 'object') return null;
  const b = raw as Partial<RunBaseline>;
  if (b.schema !== BASELINE_SCHEMA || typeof b.model !== 'string' || typeof b.pinnedAt !== 'string' || !Array.isArray(b.modules)) return null;
  if (!b.loss || typeof b.loss.value !== 'number' || !b.timings || typeof b.timings.forwardMs !== 'number') return null;
  const ok = b.modules.every((m) => m && typeof m.path === 'string' && typeof m.parameters === 'string' && (m.gradNorm === null || typeof m.gradNorm === 'number'));
  return ok ? (b as RunBaseline) : null;
}
