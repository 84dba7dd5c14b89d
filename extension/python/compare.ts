/**
 * Engine vs PyTorch, per module: the relative difference of the gradients of the parameters a module owns,
 * ‖g_engine − g_torch‖ / max(‖g_torch‖, ‖g_engine‖) over them (0 when both are zero), and of the loss.
 * No vscode import.
 */
import type { CapturedTensor } from '../../engine/inspect/capture';

/** Largest relative difference that still "matches": the project's gold standard per precision. */
export const TOLERANCE = { float32: 1e-4, float64: 1e-9 } as const;

export interface ModuleDifference {
  /** Module path ('' = parameters owned by the model itself). */
  path: string;
  relative: number;
  /** The parameter with the largest relative difference. */
  worst: string;
  parameters: number;
}

export interface Verification {
  status: 'match' | 'differ' | 'inconclusive';
  dtype: 'float32' | 'float64';
  tolerance: number;
  /** Largest module difference. */
  maxRelative: number;
  loss: { engine: number; torch: number; relative: number };
  /** Every module with parameters, largest difference first. */
  modules: ModuleDifference[];
  /** Parameters compared / gradients the engine computed. */
  compared: number;
  total: number;
  /** Why the comparison cannot be trusted (status 'inconclusive'), or remarks. */
  notes: string[];
}

export interface CompareInput {
  dtype: 'float32' | 'float64';
  engine: readonly CapturedTensor[];
  torch: ReadonlyMap<string, CapturedTensor>;
  /** Module paths owning each parameter, from the report (parameters found nowhere count under their name's prefix). */
  owners: ReadonlyMap<string, string>;
  engineLoss: number;
  torchLoss: number;
  /** PyTorch parameters the export had no value for (PyTorch used its own initial values). */
  notLoaded?: readonly string[];
  /** Engine parameters with no PyTorch parameter of that name. */
  noCounterpart?: readonly string[];
}

function relative(diff2: number, a2: number, b2: number): number {
  const scale = Math.sqrt(Math.max(a2, b2));
  return scale === 0 ? 0 : Math.sqrt(diff2) / scale;
}

function ownerOf(name: string, owners: ReadonlyMap<string, string>): string {
  return owners.get(name) ?? (name.includes('.') ? name.slice(0, name.lastIndexOf('.')) : '');
}

export function compareGradients(input: CompareInput): Verification {
  const tolerance = TOLERANCE[input.dtype];
  const notes: string[] = [];
  const perModule = new Map<string, { d2: number; e2: number; t2: number; worst: string; worstRel: number; n: number }>();
  let compared = 0;
  for (const e of input.engine) {
    const t = input.torch.get(e.name);
    if (!t) continue;
    if (t.data.length !== e.data.length) {
      notes.push(`${e.name}: the engine has ${e.data.length} values, PyTorch ${t.data.length}`);
      continue;
    }
    let d2 = 0;
    let e2 = 0;
    let t2 = 0;
    for (let i = 0; i < e.data.length; i++) {
      const a = e.data[i];
      const b = t.data[i];
      d2 += (a - b) * (a - b);
      e2 += a * a;
      t2 += b * b;
    }
    compared++;
    const owner = ownerOf(e.name, input.owners);
    const m = perModule.get(owner) ?? { d2: 0, e2: 0, t2: 0, worst: e.name, worstRel: -1, n: 0 };
    m.d2 += d2;
    m.e2 += e2;
    m.t2 += t2;
    m.n++;
    const r = relative(d2, e2, t2);
    if (!(r <= m.worstRel)) {
      m.worst = e.name;
      m.worstRel = r;
    }
    perModule.set(owner, m);
  }
  const modules: ModuleDifference[] = [...perModule].map(([path, m]) => ({ path, relative: relative(m.d2, m.e2, m.t2), worst: m.worst, parameters: m.n }));
  // NaN sorts first: a module whose gradients are not finite on one side is the worst news.
  modules.sort((a, b) => (Number.isNaN(b.relative) ? 1 : 0) - (Number.isNaN(a.relative) ? 1 : 0) || b.relative - a.relative);
  const maxRelative = modules.some((m) => Number.isNaN(m.relative)) ? NaN : modules.reduce((m, d) => Math.max(m, d.relative), 0);
  const lossRelative = relative((input.engineLoss - input.torchLoss) ** 2, input.engineLoss ** 2, input.torchLoss ** 2);
  const differ = !(maxRelative <= tolerance) || !(lossRelative <= tolerance);

  let inconclusive = false;
  if (input.notLoaded?.length) {
    inconclusive = true;
    notes.unshift(`PyTorch parameters missing from the export kept their own values, so PyTorch computed a different model: ${input.notLoaded.slice(0, 5).join(', ')}${input.notLoaded.length > 5 ? ', …' : ''}`);
  }
  if (input.noCounterpart?.length) notes.push(`${input.noCounterpart.length} engine parameters have no PyTorch parameter of that name (not compared): ${input.noCounterpart.slice(0, 5).join(', ')}${input.noCounterpart.length > 5 ? ', …' : ''}`);
  if (compared === 0) {
    inconclusive = true;
    notes.unshift('no parameter of the export has a PyTorch counterpart of the same name');
  }
  return {
    status: inconclusive ? 'inconclusive' : differ ? 'differ' : 'match',
    dtype: input.dtype,
    tolerance,
    maxRelative,
    loss: { engine: input.engineLoss, torch: input.torchLoss, relative: lossRelative },
    modules,
    compared,
    total: input.engine.length,
    notes,
  };
}

/** Modules above the tolerance, largest difference first. */
export function differingModules(v: Verification): ModuleDifference[] {
  return v.modules.filter((m) => !(m.relative <= v.tolerance));
}

/** "matches PyTorch (max 3.1e-7)" / "differs from PyTorch in 2 modules (max 4.0e-2)" / "inconclusive: …" */
export function verificationBadge(v: Verification): string {
  const max = Number.isNaN(v.maxRelative) ? 'NaN' : v.maxRelative.toExponential(1);
  if (v.status === 'match') return `matches PyTorch (max ${max})`;
  if (v.status === 'inconclusive') return `not verified: ${v.notes[0] ?? 'inconclusive'}`;
  const n = differingModules(v).length;
  return n ? `differs from PyTorch in ${n} module${n > 1 ? 's' : ''} (max ${max})` : `loss differs from PyTorch (${v.loss.relative.toExponential(1)})`;
}
