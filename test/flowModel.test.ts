/** The gradient-flow chart's data (webview/flowModel.ts): which layers get bars, ghosts of a baseline, tick labels. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { baselineOf, inspectOnnx, InspectionReport } from '../engine';
import { flowLayers, flowWithBaseline, logTickLabels } from '../webview/flowModel';
import { repoRoot } from './helpers';

const example = (name: string, options: Parameters<typeof inspectOnnx>[2] = {}) =>
  inspectOnnx(new Uint8Array(fs.readFileSync(path.join(repoRoot, 'examples', `${name}.onnx`))), `${name}.onnx`, options);
const param = (r: InspectionReport, name: string) => r.modules.flatMap((m) => m.parameters).find((p) => p.name === name)!;

test('LoRA: proj and head get bars (their own lora_A/lora_B gradients); the frozen bases get none', async () => {
  const report = await example('lora', { batch: 8 });
  const layers = flowLayers(report);
  const byPath = new Map(layers.map((l) => [l.path, l]));
  for (const p of ['proj', 'head']) {
    const l = byPath.get(p);
    assert.ok(l, `${p} is on the chart (have ${layers.map((x) => x.path).join(', ')})`);
    const expected = Math.hypot(param(report, `${p}.lora_A`).grad!.norm, param(report, `${p}.lora_B`).grad!.norm);
    assert.ok(expected > 0);
    assert.equal(l.grad, expected);
    // The module's own parameters only: the same as its total, since its base is frozen.
    assert.ok(Math.abs(l.grad! - report.modules.find((m) => m.path === p)!.gradNorm!) <= 1e-12 * expected);
  }
  assert.equal(byPath.get('head.base')?.grad ?? null, null, 'a frozen base has no bar');
  assert.ok(!byPath.has(''), 'the model owns no parameter of its own: no bar that double-counts its children');
  assert.deepEqual(layers.map((l) => l.path).filter((p) => p === 'proj' || p === 'head'), ['proj', 'head'], 'forward order');
});

test('MLP: one bar per Linear, each its own parameters\' norm, in forward order', async () => {
  const report = await example('vanishing_mlp', { batch: 8 });
  const layers = flowLayers(report);
  assert.deepEqual(layers.map((l) => l.path), Array.from({ length: 10 }, (_, i) => `layers.${i}`));
  for (const l of layers) assert.equal(l.grad, report.modules.find((m) => m.path === l.path)!.gradNorm);
});

test('with a baseline: ghost bars beside matching layers, removed layers kept in place, none for another model', async () => {
  const before = await example('vanishing_mlp', { batch: 8 });
  const after = await example('vanishing_mlp', { batch: 16 });
  const baseline = baselineOf(before, '2026-12-01T03:00:00.000Z');
  const layers = flowWithBaseline(after, baseline);
  assert.equal(layers.length, 10);
  for (const l of layers) {
    assert.equal(l.ghost, before.modules.find((m) => m.path === l.path)!.gradNorm);
    assert.notEqual(l.ghost, l.grad);
  }
  // A layer only the baseline has (removed since) keeps its ghost, after its predecessor.
  const fewer = { ...after, modules: after.modules.filter((m) => m.path !== 'layers.4') };
  const withRemoved = flowWithBaseline(fewer, baseline);
  assert.deepEqual(withRemoved.map((l) => l.path).slice(3, 6), ['layers.3', 'layers.4', 'layers.5']);
  assert.equal(withRemoved[4].removed, true);
  assert.equal(withRemoved[4].grad, null);
  assert.equal(withRemoved[4].ghost, baseline.modules.find((m) => m.path === 'layers.4')!.ownGradNorm);
  // A layer whose parameters changed shape gets no ghost: it is another layer under the same name.
  const reshaped = { ...after, modules: after.modules.map((m) => (m.path === 'layers.2' ? { ...m, parameters: m.parameters.map((p) => ({ ...p, shape: [p.shape[0] + 1, ...p.shape.slice(1)] })) } : m)) };
  assert.equal(flowWithBaseline(reshaped, baseline).find((l) => l.path === 'layers.2')!.ghost, undefined);
  const other = { ...after, model: { ...after.model, name: 'other.onnx' } };
  assert.ok(flowWithBaseline(other, baseline).every((l) => l.ghost === undefined));
  assert.ok(flowWithBaseline(after, null).every((l) => l.ghost === undefined));
});

test('log-axis tick labels never repeat', () => {
  // Chart.js's ticks within one decade (the LoRA chart: 2e-1 three times before).
  const within = [0.2, 0.25, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 1];
  const labels = logTickLabels(within);
  const shown = labels.filter((l) => l !== '');
  assert.equal(new Set(shown).size, shown.length, labels.join(' '));
  assert.deepEqual(labels.slice(0, 3), ['2e-1', '2.5e-1', '3e-1']);
  assert.equal(labels[9], '1e0');
  // Over several decades only powers of ten are labelled.
  assert.deepEqual(logTickLabels([1e-3, 2e-3, 5e-3, 1e-2, 2e-2, 1e-1]), ['1e-3', '', '', '1e-2', '', '1e-1']);
  // Values that agree to four digits: each text once.
  const close = logTickLabels([0.21, 0.21, 0.21000001]);
  assert.equal(close.filter((l) => l !== '').length, 1);
  assert.deepEqual(logTickLabels([]), []);
});
