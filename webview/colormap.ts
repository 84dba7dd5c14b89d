/**
 * Colour scales for heatmaps, as lookup tables: sequential (viridis) for attention weights, diverging
 * (blue–white–red, symmetric about zero) for gradients, where the sign is the message.
 */

// Viridis control points (matplotlib), interpolated linearly.
const VIRIDIS = [
  [68, 1, 84], [72, 40, 120], [62, 74, 137], [49, 104, 142], [38, 130, 142],
  [31, 158, 137], [53, 183, 121], [109, 205, 89], [180, 222, 44], [253, 231, 37],
];
// Diverging: RdBu reversed (negative blue, zero near white, positive red).
const DIVERGING = [
  [5, 48, 97], [33, 102, 172], [67, 147, 195], [146, 197, 222], [209, 229, 240], [247, 247, 247],
  [253, 219, 199], [244, 165, 130], [214, 96, 77], [178, 24, 43], [103, 0, 31],
];

function table(points: number[][]): Uint8ClampedArray {
  const lut = new Uint8ClampedArray(256 * 3);
  for (let i = 0; i < 256; i++) {
    const t = (i / 255) * (points.length - 1);
    const a = Math.floor(t);
    const b = Math.min(points.length - 1, a + 1);
    const f = t - a;
    for (let c = 0; c < 3; c++) lut[i * 3 + c] = points[a][c] + (points[b][c] - points[a][c]) * f;
  }
  return lut;
}

export const SEQUENTIAL = table(VIRIDIS);
export const DIVERGING_LUT = table(DIVERGING);

/** A scale maps values to LUT indices: [0, max] for weights, [-max, max] for gradients. */
export interface Scale {
  lut: Uint8ClampedArray;
  min: number;
  max: number;
}

/** 99th percentile of |v|: one extreme gradient must not wash out the rest of the map. */
export function robustAbsMax(values: ArrayLike<number>): number {
  const n = values.length;
  if (n === 0) return 1;
  const step = Math.max(1, Math.floor(n / 4096));
  const sample: number[] = [];
  for (let i = 0; i < n; i += step) {
    const v = Math.abs(values[i]);
    if (Number.isFinite(v)) sample.push(v);
  }
  sample.sort((a, b) => a - b);
  const q = sample[Math.min(sample.length - 1, Math.floor(sample.length * 0.99))] ?? 0;
  return q > 0 ? q : Math.max(...sample, 1e-30);
}

export function paint(image: ImageData, values: ArrayLike<number>, offset: number, scale: Scale): void {
  const { lut, min, max } = scale;
  const span = max - min || 1;
  const px = image.data;
  const count = image.width * image.height;
  for (let i = 0; i < count; i++) {
    const v = values[offset + i];
    const t = Number.isFinite(v) ? Math.min(255, Math.max(0, Math.round(((v - min) / span) * 255))) : 0;
    px[i * 4] = lut[t * 3];
    px[i * 4 + 1] = lut[t * 3 + 1];
    px[i * 4 + 2] = lut[t * 3 + 2];
    px[i * 4 + 3] = 255;
  }
}
