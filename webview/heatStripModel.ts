/**
 * The heat strip's data side, pure (no DOM): which modules are rows, how steps fold into columns, and
 * each cell's colour index. heatStrip.ts only paints what this computes.
 */
import type { ModuleSeries, TrainingRecord } from '../engine/train/record';

export type HeatMetric = 'gradNorm' | 'updateRatio' | 'actStd' | 'zeroFraction';

export interface MetricInfo {
  label: string;
  /** Colour by log10 of the value (norms and ratios span decades). */
  log: boolean;
  /** A fixed range in value units (zero fraction is 0..1 by definition), else the data's range. */
  fixed?: [number, number];
  /** Measured on parameters (only modules with parameters have it) or on the module's output. */
  on: 'parameters' | 'output';
}

export const HEAT_METRICS: Record<HeatMetric, MetricInfo> = {
  gradNorm: { label: 'gradient norm ‖∇‖', log: true, on: 'parameters' },
  updateRatio: { label: 'update ratio ‖Δθ‖/‖θ‖', log: true, on: 'parameters' },
  actStd: { label: 'activation std', log: false, on: 'output' },
  zeroFraction: { label: 'zero fraction of the output', log: false, fixed: [0, 1], on: 'output' },
};

/** Cell codes besides colour indices 0..255. */
export const CELL_NULL = -1;
export const CELL_NON_FINITE = -2;

/** Widest ImageData drawn: canvases have size limits, and more columns than pixels say nothing more. */
export const MAX_COLUMNS = 2000;

const measured = (m: ModuleSeries, key: keyof Pick<ModuleSeries, 'gradNorm' | 'paramNorm' | HeatMetric>) => m[key].some((v) => v !== null);

/**
 * Rows: leaf modules, input side first (depth), path as tie-break. Parameter metrics show the leaves
 * with parameters; output metrics also show parameterless leaves that were measured (a ReLU's zero
 * fraction is where dead units show), so the row set depends on the metric.
 */
export function heatRows(record: TrainingRecord, metric: HeatMetric): ModuleSeries[] {
  const info = HEAT_METRICS[metric];
  const rows = record.modules.filter((m) => m.leaf && (measured(m, 'gradNorm') || measured(m, 'paramNorm') || (info.on === 'output' && measured(m, metric))));
  return rows.sort((a, b) => a.depth - b.depth || (a.path < b.path ? -1 : a.path > b.path ? 1 : 0));
}

export interface HeatGrid {
  metric: HeatMetric;
  log: boolean;
  rows: ModuleSeries[];
  /** Per column, the first and last step number it covers (one step each unless the run is longer than MAX_COLUMNS). */
  columns: { first: number; last: number }[];
  /** Row-major cell values in value units: the bucket's maximum, NaN/±Inf when any step in it was non-finite, null-coded in `index`. */
  values: Float64Array;
  /** Row-major colour index 0..255, or CELL_NULL / CELL_NON_FINITE. */
  index: Int16Array;
  /** Colour range in value units (for log metrics, positive values; the colour is linear in log10 between them). Null when nothing finite was measured. */
  range: { min: number; max: number } | null;
}

/** Folds steps into at most `maxColumns` buckets of consecutive steps. */
export function columnBuckets(stepCount: number, maxColumns = MAX_COLUMNS): [number, number][] {
  const w = Math.min(stepCount, Math.max(1, Math.floor(maxColumns)));
  const out: [number, number][] = [];
  for (let b = 0; b < w; b++) out.push([Math.floor((b * stepCount) / w), Math.floor(((b + 1) * stepCount) / w)]);
  return out;
}

export function heatGrid(record: TrainingRecord, metric: HeatMetric, maxColumns = MAX_COLUMNS): HeatGrid {
  const info = HEAT_METRICS[metric];
  const rows = heatRows(record, metric);
  const buckets = columnBuckets(record.steps.length, maxColumns);
  const cols = buckets.length;
  const values = new Float64Array(rows.length * cols);
  const index = new Int16Array(rows.length * cols).fill(CELL_NULL);
  // Bucket values: the maximum (a spike in a long run must stay visible); any non-finite value wins.
  rows.forEach((m, r) => {
    const s = m[metric];
    buckets.forEach(([start, end], c) => {
      let best: number | null = null;
      for (let i = start; i < end; i++) {
        const v = s[i];
        if (v === null || v === undefined) continue;
        if (!Number.isFinite(v)) {
          best = v;
          break;
        }
        if (best === null || v > best) best = v;
      }
      const k = r * cols + c;
      if (best === null) return;
      values[k] = best;
      index[k] = Number.isFinite(best) ? 0 : CELL_NON_FINITE;
    });
  });
  let range: { min: number; max: number } | null = null;
  if (info.fixed) {
    range = { min: info.fixed[0], max: info.fixed[1] };
  } else {
    let min = Infinity;
    let max = -Infinity;
    for (let k = 0; k < values.length; k++) {
      const v = values[k];
      if (index[k] !== 0 || (info.log && !(v > 0))) continue;
      min = Math.min(min, v);
      max = Math.max(max, v);
    }
    if (min <= max) range = { min, max };
  }
  if (range) {
    const t = info.log ? Math.log10 : (v: number) => v;
    let lo = t(range.min);
    let hi = t(range.max);
    // A constant row set still needs a span: half a decade (log) or ±50% (linear) around the value.
    if (hi === lo) {
      const pad = info.log ? 0.5 : Math.abs(lo) * 0.5 || 0.5;
      lo -= pad;
      hi += pad;
      range = info.log ? { min: 10 ** lo, max: 10 ** hi } : { min: lo, max: hi };
    }
    for (let k = 0; k < values.length; k++) {
      if (index[k] !== 0) continue;
      const v = values[k];
      // Non-positive values on a log scale (an update that underflowed to 0) sit at the bottom of the scale.
      const x = info.log ? (v > 0 ? Math.log10(v) : lo) : v;
      index[k] = Math.round(Math.min(1, Math.max(0, (x - lo) / (hi - lo))) * 255);
    }
  }
  return {
    metric,
    log: info.log,
    rows,
    columns: buckets.map(([start, end]) => ({ first: record.steps[start], last: record.steps[end - 1] })),
    values,
    index,
    range,
  };
}

/** The cell under a point of the strip, in grid coordinates; null off the grid. */
export function cellAt(grid: HeatGrid, fx: number, fy: number): { row: number; col: number } | null {
  if (!(fx >= 0 && fx < 1 && fy >= 0 && fy < 1) || grid.rows.length === 0 || grid.columns.length === 0) return null;
  return { row: Math.floor(fy * grid.rows.length), col: Math.floor(fx * grid.columns.length) };
}

/** The value of a cell in value units, null when not measured. */
export function cellValue(grid: HeatGrid, row: number, col: number): number | null {
  const k = row * grid.columns.length + col;
  return grid.index[k] === CELL_NULL ? null : grid.values[k];
}

/** Step ticks at round numbers (1, 2, 5 × 10^k apart), at most about `count` of them, within [first, last]. */
export function stepTicks(first: number, last: number, count = 6): number[] {
  if (!(last >= first)) return [];
  if (last === first) return [first];
  const raw = (last - first) / Math.max(1, count);
  const p = 10 ** Math.floor(Math.log10(raw));
  const step = [1, 2, 5, 10].map((m) => m * p).find((s) => s >= raw) ?? 10 * p;
  const spacing = Math.max(1, Math.round(step));
  const ticks: number[] = [];
  for (let t = Math.ceil(first / spacing) * spacing; t <= last; t += spacing) ticks.push(t);
  return ticks;
}
