/**
 * The heat strip's cell model (webview/heatStripModel.ts): which modules are rows and in what order,
 * log/linear colour scaling and its range, NaN/Inf and unmeasured cells, and folding long runs into columns.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadOnnx } from '../engine';
import { OnnxTrainer, ModuleSeries, Series, TRAINING_SCHEMA, TrainingRecord } from '../engine/train';
import { CELL_NON_FINITE, CELL_NULL, cellAt, cellValue, columnBuckets, heatGrid, heatRows, stepTicks } from '../webview/heatStripModel';
import { repoRoot } from './helpers';

function mod(path: string, depth: number, leaf: boolean, series: Partial<Record<'gradNorm' | 'paramNorm' | 'updateRatio' | 'actMean' | 'actStd' | 'zeroFraction', Series>>, n: number): ModuleSeries {
  const none = () => new Array<number | null>(n).fill(null);
  return { path, depth, leaf, gradNorm: none(), paramNorm: none(), updateRatio: none(), actMean: none(), actStd: none(), zeroFraction: none(), ...series };
}

function record(modules: ModuleSeries[], n: number): TrainingRecord {
  const steps = Array.from({ length: n }, (_, i) => i + 1);
  return { schema: TRAINING_SCHEMA, producer: 'test', model: { name: 'm.onnx' }, optimizer: { kind: 'sgd', lr: 0.1 }, steps, loss: steps.map(() => 1), gradNormTotal: steps.map(() => 1), modules };
}

describe('heat strip model on a hand-made record', () => {
  const n = 4;
  const rec = record([
    mod('', 0, false, { gradNorm: [1, 1, 1, 1], paramNorm: [1, 1, 1, 1] }, n),
    // Listed out of depth order on purpose.
    mod('head', 3, true, { gradNorm: [1e-3, 1e-2, 1e-1, NaN], paramNorm: [1, 1, 1, 1], zeroFraction: [0, 0, 0, 0], actStd: [2, 2, 2, 2] }, n),
    mod('embed', 1, true, { gradNorm: [1e-4, null, 1e-1, Infinity], paramNorm: [1, 1, 1, 1], updateRatio: [0, 1e-3, 1e-5, 1e-3], zeroFraction: [0, 0, 0, 0], actStd: [1, 4, 3, 2] }, n),
    mod('act', 2, true, { zeroFraction: [0.5, 0.25, 1, null], actStd: [0.5, 0.5, 0.5, 0.5] }, n),
  ], n);

  test('rows: leaf modules, input side first; parameterless leaves only for output metrics', () => {
    assert.deepEqual(heatRows(rec, 'gradNorm').map((m) => m.path), ['embed', 'head']);
    assert.deepEqual(heatRows(rec, 'updateRatio').map((m) => m.path), ['embed', 'head']);
    assert.deepEqual(heatRows(rec, 'zeroFraction').map((m) => m.path), ['embed', 'act', 'head']);
    assert.deepEqual(heatRows(rec, 'actStd').map((m) => m.path), ['embed', 'act', 'head']);
  });

  test('gradient norm: log10 colour between the finite extremes; NaN/Inf and unmeasured cells coded apart', () => {
    const g = heatGrid(rec, 'gradNorm');
    assert.equal(g.columns.length, n);
    assert.deepEqual(g.columns.map((c) => [c.first, c.last]), [[1, 1], [2, 2], [3, 3], [4, 4]]);
    assert.ok(g.log);
    // The range ignores the non-finite cells (one Inf must not flatten the rest).
    assert.deepEqual(g.range, { min: 1e-4, max: 1e-1 });
    const at = (r: number, c: number) => g.index[r * g.columns.length + c];
    assert.equal(at(0, 0), 0, 'minimum → first colour');
    assert.equal(at(0, 2), 255, 'maximum → last colour');
    assert.equal(at(0, 1), CELL_NULL);
    assert.equal(cellValue(g, 0, 1), null);
    assert.equal(at(0, 3), CELL_NON_FINITE);
    assert.equal(at(1, 3), CELL_NON_FINITE);
    assert.equal(cellValue(g, 0, 3), Infinity);
    assert.ok(Number.isNaN(cellValue(g, 1, 3)));
    // Decades are evenly spaced: 1e-4, 1e-3, 1e-2, 1e-1 at 0, 1/3, 2/3, 1 of the scale.
    assert.equal(at(1, 0), Math.round(255 / 3));
    assert.equal(at(1, 1), Math.round((2 * 255) / 3));
    assert.equal(cellValue(g, 1, 1), 1e-2);
  });

  test('update ratio: zero (below float32 resolution) sits at the bottom and stays out of the log range', () => {
    const g = heatGrid(rec, 'updateRatio');
    assert.deepEqual(g.range, { min: 1e-5, max: 1e-3 });
    assert.equal(g.index[0], 0);
    assert.equal(cellValue(g, 0, 0), 0);
    assert.equal(g.index[1], 255);
    assert.equal(g.index[2], 0);
    // 'head' recorded no update ratio at all.
    assert.ok([...g.index.slice(n)].every((i) => i === CELL_NULL));
  });

  test('zero fraction: fixed linear 0..1 range; activation std: the data range, linear', () => {
    const z = heatGrid(rec, 'zeroFraction');
    assert.ok(!z.log);
    assert.deepEqual(z.range, { min: 0, max: 1 });
    const act = 1; // row of 'act'
    assert.deepEqual([...z.index.slice(act * n, act * n + n)], [Math.round(0.5 * 255), Math.round(0.25 * 255), 255, CELL_NULL]);
    const s = heatGrid(rec, 'actStd');
    assert.deepEqual(s.range, { min: 0.5, max: 4 });
    assert.equal(s.index[1], 255); // embed, step 2: std 4
    assert.equal(s.index[2], Math.round(((3 - 0.5) / 3.5) * 255));
    assert.ok([...s.index.slice(n, 2 * n)].every((i) => i === 0), "act's constant 0.5 is the range's minimum");
  });

  test('a constant metric still gets a span, and its cells sit mid-scale', () => {
    const flat = record([mod('a', 0, true, { gradNorm: [0.2, 0.2, 0.2], paramNorm: [1, 1, 1] }, 3)], 3);
    const g = heatGrid(flat, 'gradNorm');
    assert.ok(g.range && g.range.min < 0.2 && g.range.max > 0.2);
    assert.ok([...g.index].every((i) => Math.abs(i - 128) <= 1));
    // Nothing measured: no range, every cell blank.
    const none = heatGrid(record([mod('a', 0, true, { paramNorm: [1, 1] }, 2)], 2), 'gradNorm');
    assert.equal(none.range, null);
    assert.ok([...none.index].every((i) => i === CELL_NULL));
  });

  test('cellAt: pointer fractions to cells, null off the grid', () => {
    const g = heatGrid(rec, 'gradNorm');
    assert.deepEqual(cellAt(g, 0, 0), { row: 0, col: 0 });
    assert.deepEqual(cellAt(g, 0.99, 0.99), { row: 1, col: 3 });
    assert.deepEqual(cellAt(g, 0.3, 0.6), { row: 1, col: 1 });
    assert.equal(cellAt(g, 1, 0.5), null);
    assert.equal(cellAt(g, -0.01, 0.5), null);
  });
});

describe('heat strip model on long runs', () => {
  test('steps fold into at most maxColumns columns covering every step once; a spike and a NaN stay visible', () => {
    const n = 5000;
    const grad: Series = Array.from({ length: n }, (_, i) => 1e-2 * (1 + 0.1 * Math.sin(i)));
    grad[3217] = 10;
    grad[4001] = NaN;
    const g = heatGrid(record([mod('w', 0, true, { gradNorm: grad, paramNorm: new Array(n).fill(1) }, n)], n), 'gradNorm', 2000);
    assert.equal(g.columns.length, 2000);
    assert.equal(g.columns[0].first, 1);
    assert.equal(g.columns[g.columns.length - 1].last, n);
    for (let c = 1; c < g.columns.length; c++) assert.equal(g.columns[c].first, g.columns[c - 1].last + 1);
    const top = [...g.index].flatMap((i, c) => (i === 255 ? [c] : []));
    assert.equal(top.length, 1);
    assert.ok(g.columns[top[0]].first <= 3218 && 3218 <= g.columns[top[0]].last, 'the spike (step 3218) is in the brightest column');
    const bad = [...g.index].flatMap((i, c) => (i === CELL_NON_FINITE ? [c] : []));
    assert.equal(bad.length, 1);
    assert.ok(g.columns[bad[0]].first <= 4002 && 4002 <= g.columns[bad[0]].last);
    assert.equal(columnBuckets(7, 2000).length, 7, 'short runs keep one column per step');
  });

  test('stepTicks: round, evenly spaced ticks inside the run', () => {
    for (const [first, last] of [[1, 25], [1, 1000], [1, 7], [101, 150], [1, 100000]]) {
      const t = stepTicks(first, last);
      assert.ok(t.length >= 2 && t.length <= 8, `${first}..${last}: ${t}`);
      assert.ok(t[0] >= first && t[t.length - 1] <= last);
      const gap = t[1] - t[0];
      assert.ok(t.every((v, i) => i === 0 || v - t[i - 1] === gap));
      assert.ok(t.every((v) => v % gap === 0));
      assert.match(String(gap), /^[125]0*$/);
    }
    assert.deepEqual(stepTicks(3, 3), [3]);
  });
});

test('heat strip model on a real run: the vanishing MLP trained 6 steps shows its Linear layers in order, gradients growing toward the output', () => {
  const model = loadOnnx(new Uint8Array(fs.readFileSync(path.join(repoRoot, 'examples', 'vanishing_mlp.onnx'))));
  const trainer = new OnnxTrainer(model, { optimizer: { kind: 'adam', lr: 1e-2 }, modelName: 'vanishing_mlp.onnx', batch: 8 });
  trainer.train(6);
  const g = heatGrid(trainer.record, 'gradNorm');
  const rows = g.rows.map((m) => m.path);
  assert.deepEqual(rows.filter((p) => /^layers\.\d+$/.test(p)), Array.from({ length: 10 }, (_, i) => `layers.${i}`));
  assert.ok(g.rows.every((m, i) => i === 0 || m.depth > g.rows[i - 1].depth));
  assert.equal(g.columns.length, 6);
  assert.ok([...g.index].every((i) => i >= 0 && i <= 255), 'a healthy run has every cell measured and finite');
  const first = rows.indexOf('layers.0');
  const last = rows.indexOf('layers.9');
  assert.ok(g.index[first * 6] < g.index[last * 6], 'the vanishing gradient shows as a darker input side');
  const z = heatGrid(trainer.record, 'zeroFraction');
  assert.ok(z.rows.length >= g.rows.length, 'output metrics add parameterless leaves (activations)');
});
