/** Number and statistics formatting shared by decorations, hovers and logs. No vscode import. */
import type { Histogram, TensorStats } from '../../engine/inspect/stats';

/** Compact scientific notation: 3.1e-02 style, as ML engineers read gradient norms. */
export function sci(v: number | null | undefined, digits = 1): string {
  if (v === null || v === undefined) return '—';
  if (Number.isNaN(v)) return 'NaN';
  if (!Number.isFinite(v)) return v > 0 ? 'Inf' : '-Inf';
  if (v === 0) return '0';
  const [m, e] = v.toExponential(digits).split('e');
  const exp = Number(e);
  return `${m}e${exp < 0 ? '-' : '+'}${String(Math.abs(exp)).padStart(2, '0')}`;
}

/**
 * Shorter still, for text after a line (where width is scarce): 3.1e-2, 1.2e0, 4.5e3 — one mantissa digit and an
 * unpadded exponent, in the same notation on every line so magnitudes compare at a glance. Hovers keep sci().
 */
export function sciCompact(v: number | null | undefined): string {
  if (v === null || v === undefined || !Number.isFinite(v) || v === 0) return sci(v);
  const [m, e] = v.toExponential(1).split('e');
  return `${m}e${Number(e)}`;
}

/** [8,17,32]: a shape without spaces, for text after a line. */
export function shapeCompact(shape: readonly number[] | null | undefined): string {
  return shape ? `[${shape.join(',')}]` : '';
}

export function shapeText(shape: readonly number[] | null | undefined): string {
  return shape ? `[${shape.join(', ')}]` : '';
}

export function percent(f: number): string {
  return `${(f * 100).toFixed(f > 0 && f < 0.01 ? 2 : 0)}%`;
}

const BLOCKS = '▁▂▃▄▅▆▇█';

/** A one-line histogram (Unicode blocks), empty bins as spaces. */
export function sparkline(counts: readonly number[]): string {
  const max = Math.max(0, ...counts);
  if (max === 0) return '';
  return counts.map((c) => (c === 0 ? ' ' : BLOCKS[Math.min(BLOCKS.length - 1, Math.floor((c / max) * (BLOCKS.length - 1)))])).join('');
}

/** "|x| from 1e-05 to 1e+00" range label for a log-magnitude histogram. */
export function histogramRange(h: Histogram): string {
  if (h.log10Edges.length < 2) return '';
  const lo = h.log10Edges[0];
  const hi = h.log10Edges[h.log10Edges.length - 1];
  return `|x| 1e${lo < 0 ? '' : '+'}${lo.toFixed(0)} … 1e${hi < 0 ? '' : '+'}${hi.toFixed(0)}`;
}

export function statsRow(s: TensorStats): string[] {
  return [sci(s.norm, 2), sci(s.mean, 2), sci(s.std, 2), sci(s.min, 2), sci(s.max, 2), percent(s.zeroFraction)];
}
