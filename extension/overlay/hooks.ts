/** Inline hook-log overlays: the gradient logged at a watched line, shown at the end of that line. */
import type { InspectionReport } from '../../engine/inspect/report';
import { LineOverlay } from './model';
import { percent, sci, sciCompact, shapeCompact, shapeText, sparkline, histogramRange } from './format';

/** A watched source line: 0-based line and the 1-based line the model's metadata uses for it. */
export interface WatchLine {
  line: number;
  target: string;
}

export function hookOverlays(report: InspectionReport, watchLines: readonly WatchLine[]): LineOverlay[] {
  const out: LineOverlay[] = [];
  for (const w of watchLines) {
    const entries = report.hookLogs.filter((h) => h.target === w.target);
    if (entries.length === 0) continue;
    // Backward reaches the last instance first: show that one inline, every instance in the hover.
    const h = entries[0];
    const g = h.grad;
    const bad = entries.some((e) => e.grad.nanCount + e.grad.infCount > 0);
    out.push({
      line: w.line,
      text: `∇ ${sciCompact(g.norm)} · ${shapeCompact(h.shape)} · zeros ${percent(g.zeroFraction)}${entries.length > 1 ? ` · ×${entries.length}` : ''}`,
      compact: `∇ ${sciCompact(g.norm)}`,
      health: bad ? 'non-finite' : 'neutral',
      modulePaths: entries.map((e) => e.modulePath),
      hover: [
        `**hook** \`${h.target}\` · gradient ${shapeText(h.shape)}`,
        ...entries.map((e) => {
          const s = e.grad;
          const nonFinite = s.nanCount + s.infCount > 0 ? ` · NaN ${s.nanCount}, Inf ${s.infCount}` : '';
          const spark = s.histogram.counts.length ? ` \`${sparkline(s.histogram.counts)}\`` : '';
          return `\n${e.modulePath || '(model)'}: ‖∇‖ ${sci(s.norm, 3)} · mean ${sci(s.mean, 3)} · std ${sci(s.std, 3)} · min ${sci(s.min, 3)} · max ${sci(s.max, 3)} · zeros ${percent(s.zeroFraction)}${nonFinite}${spark}`;
        }),
        g.histogram.counts.length ? `\n${histogramRange(g.histogram)}` : '',
      ].join('\n'),
    });
  }
  return out;
}
