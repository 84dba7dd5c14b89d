/** "Did my fix help?": a pinned run, its comparison with the next run, and how the overlay, hover and table say it. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { baselineOf, compareRuns, diagnose, formatRatio, inspectOnnx, InspectionReport, isPinnedRun, parseBaseline } from '../engine';
import { buildOverlays, comparisonText, LineAnchor } from '../extension/overlay/model';
import { sciCompact } from '../extension/overlay/format';
import { columnsFor, deltaColumn, sortModules } from '../webview/moduleTable';
import { repoRoot } from './helpers';

const example = (name: string, options: Parameters<typeof inspectOnnx>[2] = {}) =>
  inspectOnnx(new Uint8Array(fs.readFileSync(path.join(repoRoot, 'examples', `${name}.onnx`))), `${name}.onnx`, options);
const mod = (r: InspectionReport, p: string) => r.modules.find((m) => m.path === p)!;
const l0Shape = (r: InspectionReport) => mod(r, 'layers.0').parameters[0].shape.join(',');
const PINNED = '2026-12-01T03:04:05.000Z';

test('a baseline keeps what the comparison needs and survives JSON (webview state, workspace storage)', async () => {
  const report = await example('vanishing_mlp', { batch: 8 });
  const b = baselineOf(report, PINNED);
  assert.equal(b.model, 'vanishing_mlp.onnx');
  assert.equal(b.modules.length, report.modules.length);
  const l0 = b.modules.find((m) => m.path === 'layers.0')!;
  assert.equal(l0.gradNorm, mod(report, 'layers.0').gradNorm);
  assert.equal(l0.parameters, `weight[${l0Shape(report)}] bias[32]`);
  assert.equal(l0.parameters, 'weight[32,16] bias[32]');
  assert.ok(isPinnedRun(b, report));
  const restored = parseBaseline(JSON.parse(JSON.stringify(b)));
  assert.deepEqual(restored, JSON.parse(JSON.stringify(b)));
  assert.ok(JSON.stringify(b).length < 20_000, 'small enough for webview state');
  for (const bad of [null, 3, {}, { ...b, schema: 'x' }, { ...b, modules: 'no' }, { ...b, loss: {} }, { ...b, modules: [{ path: 1 }] }]) assert.equal(parseBaseline(bad), null);
});

test('the next run: each module\'s ratio is now over was; the same run compares with itself as ×1', async () => {
  const before = await example('vanishing_mlp', { batch: 8 });
  const after = await example('vanishing_mlp', { batch: 32 });
  const b = baselineOf(before, PINNED);
  assert.equal(isPinnedRun(b, after), false);
  const c = compareRuns(after, b);
  assert.ok(c.comparable);
  for (const m of after.modules) {
    const d = c.byPath.get(m.path)!;
    assert.equal(d.status, 'matched', m.path);
    if (m.gradNorm === null) continue;
    assert.equal(d.was, mod(before, m.path).gradNorm);
    assert.equal(d.now, m.gradNorm);
    assert.equal(d.ratio, m.gradNorm / mod(before, m.path).gradNorm!);
  }
  const self = compareRuns(before, b);
  for (const d of self.byPath.values()) if (d.ratio !== null) assert.equal(d.ratio, 1);
  assert.deepEqual(c.removed, []);
});

test('modules added, removed or reshaped since the baseline are said so, never given a ratio between two layers', async () => {
  const before = await example('vanishing_mlp', { batch: 8 });
  const b = baselineOf(before, PINNED);
  const now = await example('vanishing_mlp', { batch: 8 });
  const edited: InspectionReport = {
    ...now,
    modules: [
      ...now.modules.filter((m) => m.path !== 'layers.9').map((m) => (m.path === 'layers.3'
        ? { ...m, parameters: m.parameters.map((p) => ({ ...p, shape: [64, ...p.shape.slice(1)] })) }
        : m)),
      { ...mod(now, 'layers.8'), path: 'norm' },
    ],
  };
  const c = compareRuns(edited, b);
  assert.equal(c.byPath.get('norm')!.status, 'new');
  assert.equal(c.byPath.get('layers.3')!.status, 'changed');
  assert.equal(c.byPath.get('layers.3')!.ratio, null);
  assert.match(c.byPath.get('layers.3')!.reason!, /layers\.3 had parameters weight\[32,32\] bias\[32\], now weight\[64,32\] bias\[64\]/);
  assert.deepEqual(c.removed.map((m) => m.path), ['layers.9']);
  const other = compareRuns({ ...now, model: { ...now.model, name: 'healthy_mlp.onnx' } }, b);
  assert.equal(other.comparable, false);
  assert.match(other.reason!, /baseline is of vanishing_mlp\.onnx, this run of healthy_mlp\.onnx/);
});

test('overlay and hover: "was …" after the number, "was 3.2e-8, now 4.1e-3 (×…)" in the hover', async () => {
  const before = await example('vanishing_mlp', { batch: 8 });
  const after = await example('vanishing_mlp', { batch: 32 });
  const c = compareRuns(after, baselineOf(before, PINNED));
  const anchors: LineAnchor[] = [{ modulePath: 'layers.0', line: 3, kind: 'definition' }];
  const [o] = buildOverlays(after, anchors, diagnose(after), c);
  const was = mod(before, 'layers.0').gradNorm!;
  const now = mod(after, 'layers.0').gradNorm!;
  assert.equal(o.text, `‖∇‖ ${sciCompact(now)} (was ${sciCompact(was)}) · [32,32]`);
  assert.equal(o.compact, `‖∇‖ ${sciCompact(now)} (was ${sciCompact(was)})`);
  const line = `‖∇‖ was ${sciCompact(was)}, now ${sciCompact(now)} (${formatRatio(now / was)}) since the baseline (pinned 2026-12-01 03:04)`;
  assert.equal(comparisonText(c.byPath.get('layers.0'), c), line);
  assert.ok(o.hover.includes(line), o.hover);
  // Without a baseline: no comparison anywhere.
  const [plain] = buildOverlays(after, anchors, diagnose(after));
  assert.equal(plain.text, `‖∇‖ ${sciCompact(now)} · [32,32]`);
  assert.doesNotMatch(plain.hover, /baseline/);
});

test('module table: a Δ column after ‖∇‖ with the ratio, "new" or "changed", sortable', async () => {
  const before = await example('vanishing_mlp', { batch: 8 });
  const after = await example('vanishing_mlp', { batch: 32 });
  const c = compareRuns(after, baselineOf(before, PINNED));
  const keys = columnsFor(c).map((col) => col.key);
  assert.deepEqual(keys.slice(keys.indexOf('grad'), keys.indexOf('grad') + 2), ['grad', 'delta']);
  assert.ok(!columnsFor(undefined).some((col) => col.key === 'delta'));
  assert.ok(!columnsFor({ ...c, comparable: false }).some((col) => col.key === 'delta'));
  const delta = deltaColumn(c);
  const l0 = mod(after, 'layers.0');
  const ratio = l0.gradNorm! / mod(before, 'layers.0').gradNorm!;
  assert.equal(delta.value(l0), ratio);
  assert.equal(delta.format!(ratio), formatRatio(ratio));
  assert.match(delta.tooltip!(l0)!, /^‖∇‖ was \d\.\de-?\d+, now \d\.\de-?\d+ \(baseline pinned 2026-12-01 03:04\)$/);
  const sorted = sortModules(after.modules.filter((m) => m.gradNorm !== null), { key: 'delta', descending: true }, columnsFor(c));
  const ratios = sorted.map((m) => delta.value(m) as number);
  assert.deepEqual(ratios, [...ratios].sort((a, b) => b - a));
  const fresh = compareRuns({ ...after, modules: [...after.modules, { ...l0, path: 'extra' }] }, baselineOf(before, PINNED));
  assert.equal(deltaColumn(fresh).empty!({ ...l0, path: 'extra' }), 'new');
  assert.equal(formatRatio(1), '×1.00');
  assert.equal(formatRatio(0.25), '×0.250');
  assert.equal(formatRatio(1.3e5), '×1.3e+5');
  assert.equal(formatRatio(null), '');
});
