/**
 * Report-to-overlay logic: which text, colour and hover each mapped source line gets. Pure (no vscode
 * import) so it is unit-tested; extension/overlay/apply.ts turns the result into VS Code decorations.
 */
import type { Finding } from '../../engine/inspect/diagnose';
import type { InspectionReport, ModuleReport } from '../../engine/inspect/report';
import { formatRatio, ModuleComparison, RunComparison } from '../../engine/inspect/baseline';
import { histogramRange, percent, sci, sciCompact, shapeCompact, shapeText, sparkline, statsRow } from './format';

/** Where a module appears in the source: its definition (`self.fc = ...`) or a call (`self.fc(x)`). 0-based line. */
export interface LineAnchor {
  modulePath: string;
  line: number;
  kind: 'definition' | 'call';
  /** For a call site: the call expression's columns on the line (0-based, end exclusive); absent for lines from metadata. */
  column?: number;
  endColumn?: number;
  /**
   * A call that runs the module without naming it: 'elements', a container whose elements the call runs
   * (`blk(x)` in a loop over `self.blocks`); 'container', an nn.Sequential element run by calling the Sequential.
   */
  through?: 'elements' | 'container';
}

export type Health = 'non-finite' | 'exploding' | 'vanishing' | 'dead' | 'zero' | 'healthy' | 'neutral';

export interface LineOverlay {
  /** 0-based line. */
  line: number;
  /** After-line text, most important number first, e.g. `‖∇‖ 3.1e-2 · [64,256]`. */
  text: string;
  /** A shorter text for long lines (the first number only), when it differs from `text`. */
  compact?: string;
  health: Health;
  modulePaths: string[];
  /** Markdown for the hover. */
  hover: string;
}

const HEALTH_ORDER: Health[] = ['non-finite', 'exploding', 'vanishing', 'dead', 'zero', 'healthy', 'neutral'];

function healthOf(findings: readonly Finding[], module: ModuleReport | undefined): Health {
  const kinds = new Set(findings.map((f) => f.kind));
  if (kinds.has('non-finite')) return 'non-finite';
  if (kinds.has('exploding')) return 'exploding';
  if (kinds.has('vanishing')) return 'vanishing';
  if (kinds.has('dead-units')) return 'dead';
  if (kinds.has('zero-gradient') || kinds.has('no-gradient')) return 'zero';
  return module && (module.gradNorm !== null || module.outputGrad) ? 'healthy' : 'neutral';
}

function worst(hs: Health[]): Health {
  return hs.reduce((a, b) => (HEALTH_ORDER.indexOf(b) < HEALTH_ORDER.indexOf(a) ? b : a), 'neutral' as Health);
}

/** ‖∇‖ (parameters) or ‖∇out‖ (output, for modules without parameters) and its value; null without either. */
function shownGradient(m: ModuleReport): { quantity: ModuleComparison['quantity']; value: number } | null {
  if (m.gradNorm !== null) return { quantity: '‖∇‖', value: m.gradNorm };
  return m.outputGrad ? { quantity: '‖∇out‖', value: m.outputGrad.norm } : null;
}

/** Modules whose parameters are all frozen (requires_grad=False): why they have no ‖∇‖. */
const frozen = (ms: readonly ModuleReport[]) => ms.every((m) => m.parameters.length > 0 && m.parameters.every((p) => !p.trainable));

/** ` (was 3.2e-8)` when the baseline has the same quantity for the module, ` (new)` when it did not have it. */
function wasText(c: ModuleComparison | undefined, quantity: string | undefined): string {
  if (!c) return '';
  if (c.status === 'new') return ' (new)';
  return c.status === 'matched' && c.was !== null && c.quantity === quantity ? ` (was ${sciCompact(c.was)})` : '';
}

/**
 * The after-line text for one module: its parameters' gradient norm (or its output gradient's), compared with
 * the baseline when there is one, then the output shape. `compact` drops the shape.
 */
export function moduleSummary(m: ModuleReport, c?: ModuleComparison): { text: string; compact: string } {
  const g = shownGradient(m);
  const grad = g ? `${g.quantity} ${sciCompact(g.value)}${wasText(c, g.quantity)}` : frozen([m]) ? 'frozen' : '∇ none';
  const shape = shapeCompact(m.outputShape);
  return { text: shape ? `${grad} · ${shape}` : grad, compact: grad };
}

/**
 * Summary for a line that holds several modules (a ModuleList comprehension, a call in a block every layer
 * runs): the range of norms, the output shape when they share one, and how many.
 */
function multiSummary(ms: ModuleReport[]): { text: string; compact: string } {
  const norms = ms.map((m) => m.gradNorm).filter((v): v is number => v !== null);
  const shapes = new Set(ms.map((m) => shapeCompact(m.outputShape)));
  const shape = shapes.size === 1 && !shapes.has('') ? ` · ${[...shapes][0]}` : '';
  if (norms.length === 0) {
    const what = frozen(ms) ? 'frozen · ' : '';
    return { text: `${what}${ms.length} modules${shape}`, compact: `${what}${ms.length} modules` };
  }
  const range = `‖∇‖ ${sciCompact(Math.min(...norms))} … ${sciCompact(Math.max(...norms))}`;
  return { text: `${range}${shape} · ${ms.length} modules`, compact: range };
}

/** Summary for a line calling sibling modules (`self.tok(idx) + self.pos(pos)`): each, in call order. */
function callsSummary(ms: ModuleReport[], comparison: RunComparison | undefined): { text: string; compact: string } {
  const name = (m: ModuleReport) => m.path.slice(m.path.lastIndexOf('.') + 1) || '(model)';
  const parts = ms.map((m) => ({ name: name(m), ...moduleSummary(m, comparison?.byPath.get(m.path)) }));
  return { text: parts.map((p) => `${p.name} ${p.text}`).join(' │ '), compact: parts.map((p) => `${p.name} ${p.compact}`).join(' │ ') };
}

/** "‖∇‖ was 3.2e-8, now 4.1e-3 (×1.3e+05) since the baseline (pinned 12:03)", or why there is no comparison. */
export function comparisonText(c: ModuleComparison | undefined, comparison: RunComparison): string {
  const pinned = `the baseline (pinned ${comparison.baseline.pinnedAt.replace('T', ' ').slice(0, 16)})`;
  if (!c) return '';
  if (c.status === 'new') return `new since ${pinned}`;
  if (c.status === 'changed') return `changed since ${pinned}: ${c.reason}; no comparison`;
  if (c.was === null && c.now === null) return '';
  return `${c.quantity} was ${sciCompact(c.was)}, now ${sciCompact(c.now)}${c.ratio !== null ? ` (${formatRatio(c.ratio)})` : ''} since ${pinned}`;
}

const TABLE_HEAD = '| | ‖·‖ | mean | std | min | max | zeros |\n|---|---|---|---|---|---|---|';

/** Full statistics for the hover: parameters, activation, output gradient, a histogram and findings. */
export function moduleHover(m: ModuleReport, findings: readonly Finding[], comparison?: RunComparison): string {
  const lines: string[] = [];
  lines.push(`**${m.path || '(model)'}** · ${m.kind} · ${m.parameterCount.toLocaleString('en-US')} parameters${m.outputShape ? ` · output ${shapeText(m.outputShape)}` : ''}`);
  const was = comparison ? comparisonText(comparison.byPath.get(m.path), comparison) : '';
  if (was) lines.push('', was);
  for (const f of findings) lines.push(`\n${f.severity === 'error' ? '$(error)' : f.severity === 'warning' ? '$(warning)' : '$(info)'} ${f.message}`);
  const rows: string[] = [];
  for (const p of m.parameters) {
    const short = p.name.slice(p.name.lastIndexOf('.') + 1);
    if (p.grad) rows.push(`| ∇${short} ${shapeText(p.shape)} | ${statsRow(p.grad).join(' | ')} |`);
    else rows.push(`| ∇${short} ${shapeText(p.shape)} | ${p.trainable ? 'no gradient' : 'frozen'} | | | | | |`);
  }
  if (m.activation) rows.push(`| output | ${statsRow(m.activation).join(' | ')} |`);
  if (m.outputGrad) rows.push(`| ∇output | ${statsRow(m.outputGrad).join(' | ')} |`);
  if (rows.length) lines.push('', TABLE_HEAD, ...rows);
  const extras: string[] = [];
  if (m.gradNorm !== null) extras.push(`‖∇‖ ${sci(m.gradNorm, 2)}`);
  if (m.gradToWeight !== null) extras.push(`‖∇W‖/‖W‖ ${sci(m.gradToWeight, 2)}`);
  if (m.deadUnitFraction !== null) extras.push(`dead units ${percent(m.deadUnitFraction)}`);
  if (extras.length) lines.push('', extras.join(' · '));
  const hist = m.parameters.find((p) => p.grad && p.grad.histogram.counts.length)?.grad?.histogram ?? m.outputGrad?.histogram;
  if (hist && hist.counts.length) lines.push('', `gradient magnitudes \`${sparkline(hist.counts)}\` ${histogramRange(hist)}`);
  return lines.join('\n');
}

/** When every path is an indexed element of one container (a loop over `self.layers`), all of them; else null. */
function containerElements(paths: string[]): string[] | null {
  if (paths.length < 2) return null;
  const parent = (p: string) => p.slice(0, Math.max(0, p.lastIndexOf('.')));
  const first = parent(paths[0]);
  return paths.every((p) => parent(p) === first && /^\d+$/.test(p.slice(p.lastIndexOf('.') + 1))) ? paths : null;
}

/** Hover for a line holding several modules (a ModuleList comprehension, a loop over it): one row per module. */
export function multiModuleHover(modules: readonly ModuleReport[], findings: readonly Finding[], comparison?: RunComparison): string {
  const sorted = [...modules].sort((a, b) => a.depth - b.depth);
  const delta = comparison !== undefined;
  const rows = sorted.map((m) => {
    const flags = findings.filter((f) => f.modulePath === m.path && f.severity !== 'info').map((f) => f.kind).join(', ');
    const c = comparison?.byPath.get(m.path);
    const d = delta ? ` ${c?.status === 'matched' ? formatRatio(c.ratio) : c?.status ?? ''} |` : '';
    return `| ${m.path} | ${m.kind} | ${sci(m.gradNorm, 2)} |${d} ${sci(m.gradRms, 2)} | ${sci(m.gradToWeight, 2)} | ${shapeText(m.outputShape)} | ${flags || 'ok'} |`;
  });
  const own = findings.filter((f) => modules.some((m) => m.path === f.modulePath) && f.severity !== 'info');
  const worst = own.find((f) => f.kind === 'vanishing' || f.kind === 'exploding' || f.kind === 'non-finite') ?? own[0];
  return [
    `**${sorted.length} modules on this line** · ${sorted.reduce((n, m) => n + m.parameterCount, 0).toLocaleString('en-US')} parameters`,
    ...(worst ? [`\n${worst.severity === 'error' ? '$(error)' : '$(warning)'} ${worst.message}`] : []),
    '',
    `| module | kind | ‖∇‖ |${delta ? ' Δ since baseline |' : ''} ∇ RMS | ‖∇W‖/‖W‖ | output | |`,
    `|---|---|---|${delta ? '---|' : ''}---|---|---|---|`,
    ...rows,
  ].join('\n');
}

/** `p` lies inside module `q` (q is an ancestor). */
const inside = (p: string, q: string) => q !== p && (q === '' || p.startsWith(`${q}.`));

/** A call site strictly inside another's expression (an argument of it). */
const nestedIn = (a: LineAnchor, o: LineAnchor) =>
  a.column !== undefined && o.column !== undefined && o.endColumn !== undefined && a.endColumn !== undefined &&
  o.column <= a.column && a.endColumn <= o.endColumn && (o.column < a.column || a.endColumn < o.endColumn);

/**
 * The modules a call line shows: what the line computes, i.e. its outermost call. Calls that name a module
 * directly come first (the call sites of a Sequential's elements or of a loop's container are implied by
 * them); a module whose ancestor is called on the line is part of that call (`mlp.0` in `self.mlp(...)`); a
 * call in another call's arguments feeds it (`self.norm2(x)` in `self.mlp(self.norm2(x))`). The result is one
 * group per outermost call, in call (forward) order: usually one call; sibling calls (`a(x) + b(x)`) each. A
 * group holds every module that call runs: one, or the instances of a class whose forward holds the line
 * (`blocks.0.mlp`, `blocks.1.mlp`), or the elements a loop calls.
 */
export function callLineModules(list: readonly LineAnchor[], depthOf: (path: string) => number): string[][] {
  const calls = list.filter((a) => a.kind === 'call');
  const direct = calls.filter((a) => a.column !== undefined && !a.through);
  const pool = direct.length ? direct : calls;
  const paths = new Set(pool.map((a) => a.modulePath));
  const kept = pool.filter((a) => ![...paths].some((q) => inside(a.modulePath, q)) && !pool.some((o) => nestedIn(a, o)));
  // One group per call site (lines from metadata have no columns: one group per module).
  const groups = new Map<string, Set<string>>();
  for (const a of kept) {
    const key = a.column !== undefined ? `${a.column}:${a.endColumn}` : `path:${a.modulePath}`;
    groups.set(key, (groups.get(key) ?? new Set()).add(a.modulePath));
  }
  const first = (g: string[]) => Math.min(...g.map(depthOf));
  const out = [...groups.values()].map((g) => [...g].sort((x, y) => depthOf(x) - depthOf(y) || x.localeCompare(y)));
  // Metadata-only lines: the elements of one container are one loop's calls.
  if (out.every((g) => g.length === 1)) {
    const elements = containerElements(out.map((g) => g[0]));
    if (elements) return [elements.sort((x, y) => depthOf(x) - depthOf(y))];
  }
  return out.sort((x, y) => first(x) - first(y));
}

/** More calls than this on a line are summarised as a range, not listed one by one. */
const MAX_LISTED_CALLS = 3;

/**
 * Overlays for every anchored line. A line that defines modules shows those (merged when several, e.g. a
 * ModuleList comprehension); a call line shows the module it calls (see callLineModules). With a comparison,
 * each number says what it was in the baseline run.
 */
export function buildOverlays(report: InspectionReport, anchors: readonly LineAnchor[], findings: readonly Finding[], comparison?: RunComparison): LineOverlay[] {
  const byPath = new Map(report.modules.map((m) => [m.path, m]));
  const byLine = new Map<number, LineAnchor[]>();
  for (const a of anchors) {
    if (!byPath.has(a.modulePath)) continue;
    const list = byLine.get(a.line) ?? [];
    if (!list.some((x) => x.modulePath === a.modulePath && x.kind === a.kind && x.column === a.column)) list.push(a);
    byLine.set(a.line, list);
  }
  const findingsFor = (path: string) => findings.filter((f) => f.modulePath === path);
  const compared = comparison?.comparable ? comparison : undefined;
  return [...byLine.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([line, list]) => {
      const defs = [...new Set(list.filter((a) => a.kind === 'definition').map((a) => a.modulePath))];
      // A module and its submodules defined on one line (a container and its elements): the innermost say more.
      const specific = defs.filter((d) => !defs.some((o) => inside(o, d)));
      const calls = specific.length ? [] : callLineModules(list, (p) => byPath.get(p)!.depth);
      const paths = specific.length ? specific : calls.flat();
      const modules = paths.map((p) => byPath.get(p)!);
      const healths = modules.map((m) => healthOf(findingsFor(m.path), m));
      const siblings = calls.length > 1 && calls.length <= MAX_LISTED_CALLS && calls.every((g) => g.length === 1);
      const summary = modules.length === 1
        ? moduleSummary(modules[0], compared?.byPath.get(modules[0].path))
        : siblings ? callsSummary(modules, compared) : multiSummary(modules);
      return {
        line,
        text: summary.text,
        ...(summary.compact !== summary.text ? { compact: summary.compact } : {}),
        health: worst(healths),
        modulePaths: paths,
        hover: modules.length === 1 ? moduleHover(modules[0], findingsFor(modules[0].path), compared) : multiModuleHover(modules, findings, compared),
      };
    });
}

/**
 * Code plus overlay wider than this many columns takes the overlay's compact form (the first number, no shape).
 * VS Code does not tell an extension the editor's width. Measured in code-server at 1440 px with the Explorer
 * open and the panel below (full editor width): text past about 110 columns is under the minimap; beside the
 * panel, past about 60. 100 keeps the first number of most lines in view in the first case.
 */
export const LONG_LINE_COLUMNS = 100;

/** The text to draw after a line of `codeColumns` characters. */
export function overlayTextFor(o: Pick<LineOverlay, 'text' | 'compact'>, codeColumns: number): string {
  return o.compact !== undefined && codeColumns + 2 + o.text.length > LONG_LINE_COLUMNS ? o.compact : o.text;
}

export interface PlacedFinding {
  /** 0-based line. */
  line: number;
  finding: Finding;
  /** The module path whose line was used (the finding's own, or the nearest mapped ancestor's). */
  anchoredAt: string;
}

/**
 * Puts each finding on the definition line of its module (else a call line), walking up to the
 * nearest mapped ancestor; findings for unmapped modules land on `fallbackLine` (the model class).
 */
export function placeFindings(findings: readonly Finding[], anchors: readonly LineAnchor[], fallbackLine: number): PlacedFinding[] {
  const lineOf = (path: string) =>
    anchors.find((a) => a.modulePath === path && a.kind === 'definition')?.line ?? anchors.find((a) => a.modulePath === path)?.line;
  return findings.map((finding) => {
    let path = finding.modulePath;
    for (;;) {
      const line = lineOf(path);
      if (line !== undefined) return { line, finding, anchoredAt: path };
      if (path === '') return { line: fallbackLine, finding, anchoredAt: '' };
      const i = path.lastIndexOf('.');
      path = i < 0 ? '' : path.slice(0, i);
    }
  });
}

/** One overlay per line: a hook log the user asked for wins the line's text; the hover keeps both. */
export function mergeOverlays(modules: LineOverlay[], hooks: LineOverlay[]): LineOverlay[] {
  const byLine = new Map(modules.map((o) => [o.line, o]));
  for (const h of hooks) {
    const m = byLine.get(h.line);
    byLine.set(h.line, m ? { ...h, modulePaths: [...h.modulePaths, ...m.modulePaths], hover: `${h.hover}\n\n---\n\n${m.hover}` } : h);
  }
  return [...byLine.values()].sort((a, b) => a.line - b.line);
}

export interface LineDiagnostic {
  /** 0-based line. */
  line: number;
  severity: Finding['severity'];
  kind: Finding['kind'];
  message: string;
  findings: Finding[];
}

/**
 * One diagnostic per line and kind: six vanishing layers defined on one ModuleList line become one
 * problem naming them all (worst first), not six near-identical ones.
 */
export function lineDiagnostics(placed: readonly PlacedFinding[]): LineDiagnostic[] {
  const groups = new Map<string, PlacedFinding[]>();
  for (const p of placed) {
    const key = `${p.line}:${p.finding.kind}`;
    groups.set(key, [...(groups.get(key) ?? []), p]);
  }
  return [...groups.values()].map((g) => {
    const first = g[0].finding;
    const names = g.map((p) => p.finding.parameter ?? p.finding.modulePath ?? '(model)');
    const message = g.length === 1
      ? first.message
      : `${g.length} modules (${names.slice(0, 4).join(', ')}${g.length > 4 ? ', …' : ''}): ${first.message}`;
    return { line: g[0].line, severity: first.severity, kind: first.kind, message, findings: g.map((p) => p.finding) };
  }).sort((a, b) => a.line - b.line);
}

/**
 * The Problems a run put on a file, counted and named by severity as the Problems panel lists them:
 * "1 warning (vanishing) · 2 info (zero-gradient)", or "no problems" when it lists none.
 */
export function problemsSummary(problems: readonly { severity: Finding['severity']; kind: string }[]): string {
  const order: [Finding['severity'], string, string][] = [['error', 'error', 'errors'], ['warning', 'warning', 'warnings'], ['info', 'info', 'info']];
  const parts: string[] = [];
  for (const [severity, one, many] of order) {
    const of = problems.filter((p) => p.severity === severity);
    if (of.length === 0) continue;
    const kinds = [...new Set(of.map((p) => p.kind))];
    parts.push(`${of.length} ${of.length === 1 ? one : many} (${kinds.join(', ')})`);
  }
  return parts.length ? parts.join(' · ') : 'no problems';
}
