/** Sparklines of training series (extension/overlay/sparkline.ts): scaling, markers, downsampling, summary line. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { downsampleMax, sparkline, sparklineSummary, SPARK_MAX_WIDTH } from '../extension/overlay/sparkline';
import { sci } from '../extension/overlay/format';

const BLOCKS = '▁▂▃▄▅▆▇█';
const levels = (s: string) => [...s].map((c) => BLOCKS.indexOf(c));

test('sparkline: a monotone series gives non-decreasing blocks from the lowest to the highest', () => {
  const values = Array.from({ length: 30 }, (_, i) => Math.sqrt(i + 1) * 0.37);
  const s = sparkline(values);
  assert.equal([...s].length, 30);
  const l = levels(s);
  assert.ok(l.every((v) => v >= 0), `only blocks: ${s}`);
  for (let i = 1; i < l.length; i++) assert.ok(l[i] >= l[i - 1], `non-decreasing at ${i}: ${s}`);
  assert.equal(l[0], 0);
  assert.equal(l[l.length - 1], BLOCKS.length - 1);
  // And a decreasing one mirrors it.
  const down = levels(sparkline([...values].reverse()));
  for (let i = 1; i < down.length; i++) assert.ok(down[i] <= down[i - 1]);
});

test('sparkline: the log scale separates decades a linear scale flattens', () => {
  const decades = [1e-4, 1e-3, 1e-2, 1e-1, 1];
  const lin = levels(sparkline(decades));
  const log = levels(sparkline(decades, { log: true }));
  // Linear: everything up to 1e-2 is under 1/14 of the top value, so it all draws as the lowest block.
  assert.deepEqual(lin.slice(0, 3), [0, 0, 0], `linear ${lin}`);
  for (let i = 1; i < log.length; i++) assert.ok(log[i] > log[i - 1], `log strictly increasing: ${log}`);
  // Equal ratios give (rounded) equal steps on the log scale.
  const steps = log.slice(1).map((v, i) => v - log[i]);
  assert.ok(Math.max(...steps) - Math.min(...steps) <= 1, `even steps ${steps}`);
  // Zero has no logarithm: an update below float32 resolution sits at the bottom, not as a marker.
  assert.equal(sparkline([0, 1e-3, 1e-1], { log: true })[0], BLOCKS[0]);
});

test('sparkline: NaN and ±Inf show as "!", unmeasured steps as spaces, and neither shifts the scale', () => {
  const s = sparkline([null, 1, NaN, 2, Infinity, 3, -Infinity, null]);
  assert.equal(s, ` ${BLOCKS[0]}!${sparkline([1, 2, 3])[1]}!${BLOCKS[7]}! `);
  assert.equal(sparkline([null, null]), '  ');
  // A flat series is drawn flat (mid height), not as its minimum.
  const flat = sparkline([5, 5, 5]);
  assert.equal(new Set(flat).size, 1);
  assert.notEqual(flat[0], BLOCKS[0]);
});

test('sparkline: long series are bucketed to at most 40 characters, keeping spikes and non-finite steps', () => {
  const long = Array.from({ length: 1000 }, (_, i) => 1 + (i % 7) * 1e-3);
  assert.equal([...sparkline(long)].length, SPARK_MAX_WIDTH);
  assert.equal([...sparkline(long, { width: 16 })].length, 16);
  assert.equal([...sparkline(long, { width: 500 })].length, SPARK_MAX_WIDTH, 'the width is capped');
  assert.equal([...sparkline(long.slice(0, 12), { width: 16 })].length, 12, 'short series are not stretched');
  // One spike among 1000 steps: the max-per-bucket keeps it (a mean or the last value would lose it).
  const spiky = new Array(1000).fill(1);
  spiky[503] = 100;
  const s = sparkline(spiky, { log: true });
  assert.equal([...s].filter((c) => c === BLOCKS[7]).length, 1, s);
  assert.equal([...s].indexOf(BLOCKS[7]), Math.floor((503 * SPARK_MAX_WIDTH) / 1000));
  const withNaN = [...spiky];
  withNaN[10] = NaN;
  assert.equal([...sparkline(withNaN)].filter((c) => c === '!').length, 1);
  // A bucket with no measured step stays blank.
  const gappy: (number | null)[] = Array.from({ length: 400 }, (_, i) => (i < 100 ? null : i));
  const g = sparkline(gappy);
  assert.equal(g.slice(0, 10), ' '.repeat(10));
  assert.ok(!g.slice(10).includes(' '));
  // The bucketing itself: buckets cover every step once.
  const d = downsampleMax(Array.from({ length: 100 }, (_, i) => i), 10);
  assert.deepEqual(d, [9, 19, 29, 39, 49, 59, 69, 79, 89, 99]);
});

test('sparklineSummary: label, sparkline, first → last measured value, step count, NaN/Inf count', () => {
  const series = [null, 1.2e-3, 3e-3, 8e-3, 2e-2, 4.5e-2];
  const line = sparklineSummary(series, 'grad norm', { log: true });
  assert.equal(line, `grad norm ${sparkline(series, { log: true })} ${sci(1.2e-3)} → ${sci(4.5e-2)} (6 steps)`);
  assert.match(line, /^grad norm [▁▂▃▄▅▆▇█ ]+ 1\.2e-03 → 4\.5e-02 \(6 steps\)$/);
  assert.match(sparklineSummary([1, NaN, 2], 'loss'), /^loss .*!.* 1\.0e\+00 → 2\.0e\+00 \(3 steps, 1 NaN\/Inf\)$/);
  assert.equal(sparklineSummary([null, null], 'std'), 'std — (2 steps)');
  assert.match(sparklineSummary([0.5], 'zeros'), /^zeros ▄ 5\.0e-01 \(1 step\)$/);
});
