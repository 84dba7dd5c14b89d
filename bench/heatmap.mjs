// How long the attention view's pixel work takes for 12 layers x 12 heads at 128 tokens (the target
// size): per-layer robust scale + painting every heatmap into ImageData. Run after a tsc build:
//   npx tsc -p tsconfig.json && node bench/heatmap.mjs
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const { paint, robustAbsMax, DIVERGING_LUT } = require('../build/webview/colormap.js');

const layers = 12;
const heads = 12;
const T = 128;
const span = heads * T * T;
const maps = Array.from({ length: layers }, (_, l) => {
  const a = new Float32Array(span);
  for (let i = 0; i < span; i++) a[i] = Math.sin(i * 0.37 + l) * Math.exp(-((i % T) / 40));
  return a;
});
const image = { width: T, height: T, data: new Uint8ClampedArray(T * T * 4) };

function once() {
  for (const m of maps) {
    const max = robustAbsMax(m);
    const scale = { lut: DIVERGING_LUT, min: -max, max };
    for (let h = 0; h < heads; h++) paint(image, m, h * T * T, scale);
  }
}

for (let i = 0; i < 5; i++) once(); // warm up
const runs = [];
for (let i = 0; i < 20; i++) {
  const t = performance.now();
  once();
  runs.push(performance.now() - t);
}
runs.sort((a, b) => a - b);
console.log(`attention heatmaps ${layers} layers x ${heads} heads x ${T}x${T}: median ${runs[10].toFixed(1)} ms, best ${runs[0].toFixed(1)} ms for ${(layers * heads * T * T / 1e6).toFixed(2)} M pixels`);
