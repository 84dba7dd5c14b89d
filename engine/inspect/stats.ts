/** Summary statistics of a tensor's values, as shown in hovers, tables and hook logs. */

export interface Histogram {
  /** Bin edges over log10 |x| (nonzero finite values), lowest first; counts has edges.length - 1 bins. */
  log10Edges: number[];
  counts: number[];
}

export interface TensorStats {
  count: number;
  /** L2 norm. */
  norm: number;
  mean: number;
  std: number;
  min: number;
  max: number;
  /** Fraction of exact zeros. */
  zeroFraction: number;
  nanCount: number;
  infCount: number;
  histogram: Histogram;
}

const HISTOGRAM_BINS = 12;

/**
 * Statistics over finite values (NaN and Inf are counted separately, so one bad element does not hide
 * the shape of the rest). Accumulates in float64. The histogram is of log10 |x|, which is what
 * matters when judging gradients that span many orders of magnitude.
 */
export function tensorStats(values: ArrayLike<number>): TensorStats {
  const n = values.length;
  let sum = 0;
  let sumSq = 0;
  let min = Infinity;
  let max = -Infinity;
  let zeros = 0;
  let nan = 0;
  let inf = 0;
  let finite = 0;
  let logMin = Infinity;
  let logMax = -Infinity;
  for (let i = 0; i < n; i++) {
    const v = values[i];
    if (v !== v) {
      nan++;
      continue;
    }
    if (v === Infinity || v === -Infinity) {
      inf++;
      continue;
    }
    finite++;
    sum += v;
    sumSq += v * v;
    if (v < min) min = v;
    if (v > max) max = v;
    if (v === 0) {
      zeros++;
    } else {
      const l = Math.log10(Math.abs(v));
      if (l < logMin) logMin = l;
      if (l > logMax) logMax = l;
    }
  }
  const mean = finite ? sum / finite : 0;
  const variance = finite ? Math.max(0, sumSq / finite - mean * mean) : 0;
  return {
    count: n,
    norm: Math.sqrt(sumSq),
    mean,
    std: Math.sqrt(variance),
    min: finite ? min : 0,
    max: finite ? max : 0,
    zeroFraction: n ? zeros / n : 0,
    nanCount: nan,
    infCount: inf,
    histogram: logHistogram(values, logMin, logMax),
  };
}

function logHistogram(values: ArrayLike<number>, logMin: number, logMax: number): Histogram {
  if (!(logMin <= logMax)) return { log10Edges: [], counts: [] };
  const lo = Math.floor(logMin);
  const hi = Math.max(Math.ceil(logMax), lo + 1);
  const width = (hi - lo) / HISTOGRAM_BINS;
  const counts = new Array<number>(HISTOGRAM_BINS).fill(0);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === 0 || !Number.isFinite(v)) continue;
    const b = Math.min(HISTOGRAM_BINS - 1, Math.floor((Math.log10(Math.abs(v)) - lo) / width));
    counts[b]++;
  }
  return { log10Edges: Array.from({ length: HISTOGRAM_BINS + 1 }, (_, i) => lo + i * width), counts };
}
