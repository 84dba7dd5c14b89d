/**
 * Sparklines of per-step training series for editor text and hovers: Unicode blocks ▁▂▃▄▅▆▇█, a space
 * where a step was not measured, '!' where a value was NaN or ±Inf. Pure (no vscode import).
 */
import type { Series } from '../../engine/train/record';
import { sci } from './format';

const BLOCKS = '▁▂▃▄▅▆▇█';
export const SPARK_NULL = ' ';
export const SPARK_NON_FINITE = '!';
/** Longest sparkline drawn: longer series are bucketed down to this many characters. */
export const SPARK_MAX_WIDTH = 40;

export interface SparklineOptions {
  /** log10 scale, for norms and ratios spanning decades; values ≤ 0 then draw as the lowest block. */
  log?: boolean;
  /** Characters at most (default and cap: 40). */
  width?: number;
}

/**
 * Downsamples to `width` buckets of consecutive steps. A bucket holds the maximum of its values, not
 * the last or the mean: for gradient norms and update ratios a one-step spike is the thing to see, and
 * averaging or sampling would hide it. Any NaN/Inf in a bucket makes the bucket non-finite (NaN) for the
 * same reason; a bucket with no measured value is null.
 */
export function downsampleMax(values: Series, width: number): Series {
  const n = values.length;
  const w = Math.max(1, Math.floor(width));
  if (n <= w) return values.slice();
  const out: Series = [];
  for (let b = 0; b < w; b++) {
    const start = Math.floor((b * n) / w);
    const end = Math.floor(((b + 1) * n) / w);
    let best: number | null = null;
    for (let i = start; i < end; i++) {
      const v = values[i];
      if (v === null) continue;
      if (!Number.isFinite(v)) {
        best = NaN;
        break;
      }
      if (best === null || v > best) best = v;
    }
    out.push(best);
  }
  return out;
}

export function sparkline(values: Series, options: SparklineOptions = {}): string {
  const width = Math.min(SPARK_MAX_WIDTH, Math.max(1, options.width ?? SPARK_MAX_WIDTH));
  const series = downsampleMax(values, width);
  const log = options.log === true;
  // On a log scale only positive values have a position; zeros (e.g. an update below float32 resolution) sit at the bottom.
  const scaled = series.map((v) => (v === null || !Number.isFinite(v) ? v : log ? (v > 0 ? Math.log10(v) : null) : v));
  let lo = Infinity;
  let hi = -Infinity;
  for (const v of scaled) {
    if (v !== null && Number.isFinite(v)) {
      lo = Math.min(lo, v);
      hi = Math.max(hi, v);
    }
  }
  return series
    .map((raw, i) => {
      if (raw === null) return SPARK_NULL;
      if (!Number.isFinite(raw)) return SPARK_NON_FINITE;
      const v = scaled[i];
      if (v === null) return BLOCKS[0];
      // A flat series draws flat at mid height, so it does not read as "at its minimum".
      if (hi === lo) return BLOCKS[3];
      return BLOCKS[Math.round(((v - lo) / (hi - lo)) * (BLOCKS.length - 1))];
    })
    .join('');
}

/** "grad norm ▁▂▃▅▇ 1.2e-03 → 4.5e-02 (50 steps)": first and last measured values, and the NaN/Inf count if any. */
export function sparklineSummary(series: Series, label: string, options: SparklineOptions = {}): string {
  const measured = series.filter((v): v is number => v !== null);
  const steps = `${series.length} step${series.length === 1 ? '' : 's'}`;
  if (measured.length === 0) return `${label} — (${steps})`;
  const nonFinite = measured.filter((v) => !Number.isFinite(v)).length;
  const first = measured[0];
  const last = measured[measured.length - 1];
  const range = measured.length === 1 ? sci(first) : `${sci(first)} → ${sci(last)}`;
  return `${label} ${sparkline(series, options)} ${range} (${steps}${nonFinite ? `, ${nonFinite} NaN/Inf` : ''})`;
}
