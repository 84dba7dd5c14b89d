/**
 * The export evidence matrix: each fixture of test/fixtures/exports (written by test/gold/exporters/export_zoo.py),
 * inspected the way the extension inspects it, compared with PyTorch's gradients per parameter and per module.
 * test/exports.gold.test.ts asserts on it; bench/exports_table.mjs prints it as the closing table.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { diagnose, FloatDType, inspectOnnx, loadOnnx, Tensor } from '../engine';
import type { ExportNote } from '../engine/onnx/identity';
import { ModelFileSystem, readModelFiles } from '../extension/modelFiles';
import { repoRoot } from './helpers';

export const EXPORTS_DIR = path.join(repoRoot, 'test', 'fixtures', 'exports');

export interface Gold {
  model: string;
  variant: string;
  /** Values as numbers, or (large float32 inputs) base64 of their little-endian float32 bytes. */
  inputs: Record<string, { shape: number[]; dtype: string; data?: number[]; float32?: string }>;
  targets: { shape: number[]; data: number[] };
  loss: { float32: number; float64: number };
  /** Ops PyTorch's float64 forward computes in float32 anyway (T5's LayerNorm variance): its float64 loss is no better. */
  float32OpsInFloat64?: string[];
  parameters: Record<string, { numel: number; grad32: number | null; grad64: number | null }>;
  /** Tied names -> the first name PyTorch reports the parameter under. */
  aliases: Record<string, string>;
  exports: string[];
  /** PyTorch in eval mode (fixtures exported after model.eval()). */
  eval?: { loss: { float32: number; float64: number }; parameters: Record<string, { grad32: number | null; grad64: number | null }> };
}

export function loadGolds(): Gold[] {
  return fs.readdirSync(EXPORTS_DIR).filter((f) => f.endsWith('.json')).sort()
    .map((f) => JSON.parse(fs.readFileSync(path.join(EXPORTS_DIR, f), 'utf8')) as Gold);
}

export const nodeFs: ModelFileSystem = {
  async stat(p) {
    const s = await fs.promises.lstat(p);
    return { type: s.isSymbolicLink() ? 'symlink' : s.isFile() ? 'file' : s.isDirectory() ? 'directory' : 'other', size: s.size };
  },
  read: async (p) => new Uint8Array(await fs.promises.readFile(p)),
};

export function feedsOf(gold: Gold): Record<string, ArrayLike<number>> {
  const feeds: Record<string, ArrayLike<number>> = {};
  for (const [k, v] of Object.entries(gold.inputs)) {
    if (v.data) feeds[k] = v.data;
    else {
      const bytes = Buffer.from(v.float32!, 'base64');
      feeds[k] = new Float32Array(bytes.buffer.slice(bytes.byteOffset, bytes.byteOffset + bytes.length));
    }
  }
  return feeds;
}

/** One PyTorch parameter in one run: the engine's gradient norm against PyTorch's. */
export interface ParameterCheck {
  name: string;
  want: number | null;
  got: number | null;
  /** |got - want| / want (absent when either is missing). */
  relError?: number;
  tolerance: number;
  /** 'ok' within tolerance; 'lost' named by a note (or the model-wide one); 'missing' / 'wrong' otherwise. */
  status: 'ok' | 'lost' | 'missing' | 'wrong' | 'no-gradient';
}

/** One module the report shows: its parameter count and gradient norm against PyTorch's module.parameters(). */
export interface ModuleCheck {
  path: string;
  count: number;
  wantCount: number;
  gradNorm: number | null;
  wantGradNorm: number;
  relError: number;
  /**
   * 'ok' equal; 'lost' equal to PyTorch's less exactly the parameters the notes name as lost, or under the
   * model-wide note; 'wrong' otherwise.
   */
  status: 'ok' | 'lost' | 'wrong';
}

export interface ExportCheck {
  file: string;
  dtype: FloatDType;
  loads: boolean;
  error?: string;
  loss?: number;
  wantLoss: number;
  lossTolerance: number;
  parameters: ParameterCheck[];
  modules: ModuleCheck[];
  notes: ExportNote[];
  /** A note on the whole model that is not restored: the numbers are not PyTorch's (BatchNorm folded, metadata lost). */
  modelWide: boolean;
  /** The export lost its node metadata (metadata-lost note): module attribution is from parameter names only. */
  metadataLost: boolean;
  /** Trainable names that are not PyTorch parameters and no note names. */
  strangers: string[];
  /** The backend the inspection ran on. */
  backend?: string;
  /** What the product shows for the export's notes: the diagnosis's warnings (lost) and infos (restored). */
  warnings: number;
  infos: number;
}

function l2(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i] * values[i];
  return Math.sqrt(s);
}

const under = (name: string, modulePath: string) => modulePath === '' || name.startsWith(`${modulePath}.`);

/**
 * Inspects `file` (train mode: batch statistics, as PyTorch computed the gold) with the fixture's inputs and targets
 * and compares with PyTorch. float32: 1e-4 relative, or PyTorch's own float32-vs-float64 difference where larger;
 * float64: 1e-6 relative. Tiny gradients are compared against the largest one (1e-6 / 1e-9 of it).
 */
export async function checkExport(gold: Gold, file: string, dtype: FloatDType): Promise<ExportCheck> {
  const wantLoss = gold.loss[dtype];
  const lossTolerance = (dtype === 'float32' ? 1e-5 : gold.float32OpsInFloat64?.length ? 1e-6 : 1e-9) * Math.max(1, wantLoss);
  const check: ExportCheck = { file, dtype, loads: false, wantLoss, lossTolerance, parameters: [], modules: [], notes: [], modelWide: false, metadataLost: false, strangers: [], warnings: 0, infos: 0 };
  let report;
  const gradients = new Map<string, ArrayLike<number>>();
  try {
    const files = await readModelFiles(path.join(EXPORTS_DIR, file), nodeFs);
    const model = loadOnnx(files.bytes, { externalData: files.externalData, dtype });
    check.notes = model.exportNotes;
    const targets = new Tensor(Int32Array.from(gold.targets.data), gold.targets.shape);
    report = await inspectOnnx(files.bytes, file, {
      externalData: files.externalData, dtype, attentionSample: -1, feeds: feedsOf(gold), gradients,
      lossSpec: { kind: 'crossEntropy', output: model.outputs[0].name, targets },
    });
    check.loads = true;
  } catch (e) {
    check.error = (e as Error).message;
    return check;
  }
  check.loss = report.loss.value;
  check.backend = report.backend;
  const findings = diagnose(report);
  check.warnings = findings.filter((f) => f.kind === 'export-lost' && f.severity === 'warning').length;
  check.infos = findings.filter((f) => f.kind === 'export-restored').length;
  const notes = check.notes.filter((n) => !n.restored);
  const lost = new Set(notes.flatMap((n) => n.parameters));
  // A note on the whole model naming no parameter that changes what it computes (BatchNorm folded into convolutions:
  // no number is PyTorch's). Lost metadata changes only where numbers are shown; the parameters are still compared.
  check.modelWide = notes.some((n) => n.modulePath === '' && n.parameters.length === 0 && n.kind !== 'metadata-lost');
  // Lost metadata (a dynamo export converted below opset 18): merged parameters cannot be told apart (the note says
  // so), modules are known from parameter names only, and the version converter decomposes ops with float32
  // constants (GELU into Erf with a float32 √2): float64 agrees to the 1e-6, not to rounding.
  const metadataLost = check.metadataLost = notes.some((n) => n.kind === 'metadata-lost');
  if (metadataLost && dtype === 'float64') check.lossTolerance = Math.max(check.lossTolerance, 1e-6 * Math.max(1, wantLoss));
  const torchName = (n: string) => gold.aliases[n] ?? n;
  for (const n of gradients.keys()) if (!gold.parameters[torchName(n)] && !lost.has(n)) check.strangers.push(n);

  const engineOf = new Map<string, string>();
  for (const n of gradients.keys()) if (!engineOf.has(torchName(n))) engineOf.set(torchName(n), n);
  const maxNorm = Math.max(...Object.values(gold.parameters).map((p) => (dtype === 'float32' ? p.grad32 : p.grad64) ?? 0));
  const gotNorm = new Map<string, number>(); // PyTorch name -> engine gradient norm
  for (const [name, p] of Object.entries(gold.parameters)) {
    const want = dtype === 'float32' ? p.grad32 : p.grad64;
    const tolerance = dtype === 'float32'
      ? Math.max(1e-4 * (want ?? 0), 2 * Math.abs((p.grad32 ?? 0) - (p.grad64 ?? 0)), 1e-6 * maxNorm)
      : Math.max(1e-6 * (want ?? 0), 1e-9 * maxNorm);
    const engineName = engineOf.get(name);
    const g = engineName === undefined ? undefined : gradients.get(engineName);
    const got = g === undefined ? null : l2(g);
    if (got !== null) gotNorm.set(name, got);
    const c: ParameterCheck = { name, want, got, tolerance, status: 'ok' };
    if (got !== null && want !== null) c.relError = want === 0 ? (got === 0 ? 0 : Infinity) : Math.abs(got - want) / want;
    if (lost.has(name) || check.modelWide) c.status = 'lost';
    else if (engineName === undefined) c.status = (want ?? 0) === 0 ? 'no-gradient' : metadataLost ? 'lost' : 'missing';
    else if (want === null) c.status = got === null || got === 0 ? 'no-gradient' : 'wrong';
    else if (got === null || Math.abs(got - want) > tolerance) c.status = 'wrong';
    check.parameters.push(c);
  }

  // Per module: PyTorch's sum(p.numel() for p in module.parameters()) and the norm of their gradients (tied
  // parameters once per module, under whichever name the module holds them).
  const torchNames = [...Object.keys(gold.parameters), ...Object.keys(gold.aliases)];
  const gradOf = (n: string) => (dtype === 'float32' ? gold.parameters[n].grad32 : gold.parameters[n].grad64) ?? 0;
  const toleranceOf = new Map(check.parameters.map((c) => [c.name, c.tolerance]));
  for (const m of report.modules) {
    const mine = new Set(torchNames.filter((n) => under(n, m.path)).map(torchName));
    const kept = [...mine].filter((n) => !lost.has(n));
    const count = (names: string[]) => names.reduce((s, n) => s + gold.parameters[n].numel, 0);
    const norm = (names: string[]) => Math.sqrt(names.reduce((s, n) => s + gradOf(n) ** 2, 0));
    const wantCount = count([...mine]);
    const wantGradNorm = norm([...mine]);
    const gradNorm = m.gradNorm;
    const relError = wantGradNorm === 0 ? (gradNorm ?? 0) === 0 ? 0 : Infinity : Math.abs((gradNorm ?? 0) - wantGradNorm) / wantGradNorm;
    // The module's tolerance: its parameters' tolerances combined (each parameter's error adds at most its own).
    const tolerance = Math.sqrt([...mine].reduce((s, n) => s + toleranceOf.get(n)! ** 2, 0)) + 1e-12;
    const matches = (names: string[]) => m.parameterCount === count(names) && Math.abs((gradNorm ?? 0) - norm(names)) <= tolerance;
    const status = matches([...mine]) ? 'ok' : check.modelWide || metadataLost || (kept.length < mine.size && matches(kept)) ? 'lost' : 'wrong';
    check.modules.push({ path: m.path, count: m.parameterCount, wantCount, gradNorm, wantGradNorm, relError, status });
  }
  return check;
}

/**
 * The worst gradient error over the parameters that are compared (none lost): |got - want| / max(want, 1e-3 of the
 * largest gradient norm). Relative for every gradient that matters; gradients that are zero up to rounding (a bias
 * before a BatchNorm: PyTorch's own is 1e-9 noise) are measured against the model's scale instead. null when none is.
 */
export function worstError(check: ExportCheck): number | null {
  const compared = check.parameters.filter((c) => c.status !== 'lost' && c.want !== null && c.got !== null);
  if (compared.length === 0) return null;
  const floor = 1e-3 * Math.max(...compared.map((c) => c.want!));
  return Math.max(...compared.map((c) => Math.abs(c.got! - c.want!) / Math.max(c.want!, floor)));
}
