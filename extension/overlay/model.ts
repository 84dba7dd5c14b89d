/**
 * Report-to-overlay logic: which text, colour and hover each mapped source line gets. Pure (no vscode
 * import) so it is unit-tested; extension/overlay/apply.ts turns the result into VS Code decorations.
 */
import type { Finding } from '../../engine/inspect/diagnose';
import type { InspectionReport, ModuleReport } from '../../engine/inspect/report';
import { histogramRange, md, percent, sci, shapeText, sparkline, statsRow } from './format';

/** Where a module appears in the source: its definition (`self.fc = ...`) or a call (`self.fc(x)`). 0-based line. */
export interface LineAnchor {
  modulePath: string;
  line: number;
  kind: 'definition' | 'call';
}

export type Health = 'non-finite' | 'exploding' | 'vanishing' | 'dead' | 'zero' | 'healthy' | 'neutral';

export interface LineOverlay {
  /** 0-based line. */
  line: number;
  /** After-line text, e.g. `‖∇‖ 3.1e-02 · [64, 256]`. */
  text: string;
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

/** The after-line text for one module: its parameters' gradient norm (or its output gradient's) and output shape. */
export function moduleSummary(m: ModuleReport): string {
  const grad = m.gradNorm !== null ? `‖∇‖ ${sci(m.gradNorm)}` : m.outputGrad ? `‖∇out‖ ${sci(m.outputGrad.norm)}` : '∇ none';
  const shape = shapeText(m.outputShape);
  return shape ? `${grad} · ${shape}` : grad;
}

/** Summary for a line that holds several modules (e.g. a ModuleList comprehension): the range of norms. */
function multiSummary(ms: ModuleReport[]): string {
  const norms = ms.map((m) => m.gradNorm).filter((v): v is number => v !== null);
  if (norms.length === 0) return `${ms.length} modules`;
  const lo = Math.min(...norms);
  const hi = Math.max(...norms);
  return `‖∇‖ ${sci(lo)} … ${sci(hi)} · ${ms.length} modules`;
}

const TABLE_HEAD = '| | ‖·‖ | mean | std | min | max | zeros |\n|---|---|---|---|---|---|---|';

/** Full statistics for the hover: parameters, activation, output gradient, a histogram and findings. */
export function moduleHover(m: ModuleReport, findings: readonly Finding[]): string {
  const lines: string[] = [];
  lines.push(`**${m.path ? md(m.path) : '(model)'}** · ${md(m.kind)} · ${m.parameterCount.toLocaleString('en-US')} parameters${m.outputShape ? ` · output ${shapeText(m.outputShape)}` : ''}`);
  for (const f of findings) lines.push(`\n${f.severity === 'error' ? '$(error)' : f.severity === 'warning' ? '$(warning)' : '$(info)'} ${md(f.message)}`);
  const rows: string[] = [];
  for (const p of m.parameters) {
    const short = md(p.name.slice(p.name.lastIndexOf('.') + 1));
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
export function multiModuleHover(modules: readonly ModuleReport[], findings: readonly Finding[]): string {
  const sorted = [...modules].sort((a, b) => a.depth - b.depth);
  const rows = sorted.map((m) => {
    const flags = findings.filter((f) => f.modulePath === m.path && f.severity !== 'info').map((f) => f.kind).join(', ');
    return `| ${md(m.path)} | ${md(m.kind)} | ${sci(m.gradNorm, 2)} | ${sci(m.gradRms, 2)} | ${sci(m.gradToWeight, 2)} | ${shapeText(m.outputShape)} | ${flags || 'ok'} |`;
  });
  const own = findings.filter((f) => modules.some((m) => m.path === f.modulePath) && f.severity !== 'info');
  const worst = own.find((f) => f.kind === 'vanishing' || f.kind === 'exploding' || f.kind === 'non-finite') ?? own[0];
  return [
    `**${sorted.length} modules on this line** · ${sorted.reduce((n, m) => n + m.parameterCount, 0).toLocaleString('en-US')} parameters`,
    ...(worst ? [`\n${worst.severity === 'error' ? '$(error)' : '$(warning)'} ${md(worst.message)}`] : []),
    '',
    '| module | kind | ‖∇‖ | ∇ RMS | ‖∇W‖/‖W‖ | output | |',
    '|---|---|---|---|---|---|---|',
    ...rows,
  ].join('\n');
}

/**
 * Overlays for every anchored line. A line that defines modules shows those (merged when several, e.g. a
 * ModuleList comprehension); a call line that calls several modules (`x + self.attn(self.ln1(x))`) shows
 * the biggest one, which is the call the line is about.
 */
export function buildOverlays(report: InspectionReport, anchors: readonly LineAnchor[], findings: readonly Finding[]): LineOverlay[] {
  const byPath = new Map(report.modules.map((m) => [m.path, m]));
  const byLine = new Map<number, LineAnchor[]>();
  for (const a of anchors) {
    if (!byPath.has(a.modulePath)) continue;
    const list = byLine.get(a.line) ?? [];
    if (!list.some((x) => x.modulePath === a.modulePath && x.kind === a.kind)) list.push(a);
    byLine.set(a.line, list);
  }
  const findingsFor = (path: string) => findings.filter((f) => f.modulePath === path);
  return [...byLine.entries()]
    .sort((a, b) => a[0] - b[0])
    .map(([line, list]) => {
      const defs = [...new Set(list.filter((a) => a.kind === 'definition').map((a) => a.modulePath))];
      // A module and its submodules on one line (a container and its elements, a block and the layer it
      // calls): the innermost say more.
      const innermost = (ps: string[]) => ps.filter((d) => !ps.some((o) => o.startsWith(`${d}.`)));
      const specific = innermost(defs);
      const calls = innermost([...new Set(list.map((a) => a.modulePath))]);
      const paths = specific.length ? specific : containerElements(calls) ?? [calls.map((p) => byPath.get(p)!).sort((a, b) => b.parameterCount - a.parameterCount || a.path.length - b.path.length)[0].path];
      const modules = paths.map((p) => byPath.get(p)!);
      const healths = modules.map((m) => healthOf(findingsFor(m.path), m));
      return {
        line,
        text: modules.length === 1 ? moduleSummary(modules[0]) : multiSummary(modules),
        health: worst(healths),
        modulePaths: paths,
        hover: modules.length === 1 ? moduleHover(modules[0], findingsFor(modules[0].path)) : multiModuleHover(modules, findings),
      };
    });
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
