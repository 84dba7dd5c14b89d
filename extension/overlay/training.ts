/**
 * Training-record-to-overlay logic: per mapped source line, the module's gradient norm over the steps as
 * a sparkline after the line, a hover with sparklines of every recorded series, and the anomaly as a
 * problem on its line. Pure (no vscode import), like model.ts.
 */
import { ModuleSeries, Series, stepBaseNote, TrainingRecord } from '../../engine/train/record';
import { md, sci } from './format';
import type { LineAnchor, LineDiagnostic, LineOverlay } from './model';
import { sparkline, sparklineSummary } from './sparkline';

/** Last recorded value of a series that is not null. */
function lastValue(s: Series): number | null {
  for (let i = s.length - 1; i >= 0; i--) if (s[i] !== null) return s[i];
  return null;
}

function hasNonFinite(s: Series): boolean {
  return s.some((v) => v !== null && !Number.isFinite(v));
}

function stepsText(record: TrainingRecord): string {
  const n = record.steps.length;
  const note = stepBaseNote(record);
  return `${n === 1 ? `step ${record.steps[0]}` : `steps ${record.steps[0]}–${record.steps[n - 1]}`}${note ? ` (${note})` : ''}`;
}

/** After-line text: `∇ ▁▂▄▆█ 3.1e-02` (gradient norm over the steps, its last value); for modules without parameters, the activation std. */
export function trainingSummary(m: ModuleSeries): string {
  if (m.gradNorm.some((v) => v !== null)) return `∇ ${sparkline(m.gradNorm, { log: true, width: 16 })} ${sci(lastValue(m.gradNorm))}`;
  if (m.actStd.some((v) => v !== null)) return `σ(out) ${sparkline(m.actStd, { width: 16 })} ${sci(lastValue(m.actStd))}`;
  return '';
}

export function trainingHover(m: ModuleSeries, record: TrainingRecord): string {
  // A TensorBoard import knows no optimiser ('unknown'): say nothing rather than "lr 0".
  const optimizer = record.optimizer.kind === 'unknown' ? '' : ` of ${md(record.optimizer.kind)} (lr ${md(record.optimizer.lr)})`;
  const ranks = record.distributed ? ` · ${md(record.distributed.strategy.toUpperCase())} × ${md(record.distributed.worldSize)} ranks` : '';
  const lines = [`**${m.path ? md(m.path) : '(model)'}**${m.kind ? ` · ${md(m.kind)}` : ''} · ${md(stepsText(record))}${optimizer} · ${md(record.producer)}${ranks}`, ''];
  if (record.anomaly && (record.anomaly.modulePath === m.path || record.anomaly.modulePath.startsWith(`${m.path}.`))) {
    lines.push(`$(error) step ${md(record.anomaly.step)}: ${md(record.anomaly.message)}`, '');
  }
  const rows: [keyof ModuleSeries, string, boolean][] = [
    ['gradNorm', '‖∇‖', true],
    ['paramNorm', '‖θ‖', true],
    ['updateRatio', '‖Δθ‖/‖θ‖', true],
    ['actMean', 'mean(out)', false],
    ['actStd', 'std(out)', true],
    ['zeroFraction', 'zeros(out)', false],
  ];
  for (const [key, label, log] of rows) {
    const s = m[key] as Series;
    if (!s.some((v) => v !== null)) continue;
    lines.push(`${sparklineSummary(s, label, { log })}  `);
  }
  return lines.join('\n');
}

/**
 * One overlay per anchored line, for modules the record has. On a line with several modules (a
 * ModuleList comprehension) the one with the most recorded gradient shows, and the hover lists all.
 */
export function trainingOverlays(record: TrainingRecord, anchors: readonly LineAnchor[]): LineOverlay[] {
  const byPath = new Map(record.modules.map((m) => [m.path, m]));
  const byLine = new Map<number, ModuleSeries[]>();
  for (const a of anchors) {
    const m = byPath.get(a.modulePath);
    if (!m) continue;
    const list = byLine.get(a.line) ?? [];
    if (!list.includes(m)) list.push(m);
    byLine.set(a.line, list);
  }
  const out: LineOverlay[] = [];
  for (const [line, list] of [...byLine.entries()].sort((a, b) => a[0] - b[0])) {
    // A container and its elements on one line: the innermost say more.
    const inner = list.filter((m) => !list.some((o) => o !== m && o.path.startsWith(`${m.path}.`)));
    const shown = [...inner].sort((a, b) => (lastValue(b.gradNorm) ?? -1) - (lastValue(a.gradNorm) ?? -1))[0];
    const text = trainingSummary(shown);
    if (!text) continue;
    const bad = inner.some((m) => hasNonFinite(m.gradNorm) || hasNonFinite(m.actStd)) || (record.anomaly !== undefined && inner.some((m) => m.path === record.anomaly!.modulePath));
    out.push({
      line,
      text: inner.length > 1 ? `${text} · ${inner.length} modules` : text,
      health: bad ? 'non-finite' : 'neutral',
      modulePaths: inner.map((m) => m.path),
      hover: inner.map((m) => trainingHover(m, record)).join('\n\n---\n\n'),
    });
  }
  return out;
}

/**
 * The anomaly as a problem: on its recorded source line when that line is in this document, else on
 * its module's line (nearest mapped ancestor), else on the model class.
 */
export function anomalyDiagnostic(record: TrainingRecord, anchors: readonly LineAnchor[], fallbackLine: number, documentFile: string): LineDiagnostic | null {
  const a = record.anomaly;
  if (!a) return null;
  const base = (f: string) => f.split(/[\\/]/).pop();
  let line: number | undefined;
  if (a.source && base(a.source.file) === base(documentFile)) line = a.source.line - 1;
  let p = a.modulePath;
  while (line === undefined) {
    line = anchors.find((x) => x.modulePath === p && x.kind === 'definition')?.line ?? anchors.find((x) => x.modulePath === p)?.line;
    if (line !== undefined || p === '') break;
    p = p.includes('.') ? p.slice(0, p.lastIndexOf('.')) : '';
  }
  const where = a.node ? ` in ${a.node}` : '';
  const message = `Training step ${a.step} (${a.phase}): ${a.message}${where && !a.message.includes(a.node!) ? where : ''}. Training stopped there.`;
  return {
    line: line ?? fallbackLine,
    severity: 'error',
    kind: 'non-finite',
    message,
    findings: [{ kind: 'non-finite', severity: 'error', modulePath: a.modulePath, message }],
  };
}
