/**
 * Training records on the source: which line shows which module's series, the hover, and where the
 * anomaly's Problem lands. Uses a real record from training the vanishing MLP example.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadOnnx } from '../engine';
import { OnnxTrainer, TrainingRecord } from '../engine/train';
import { anomalyDiagnostic, trainingOverlays } from '../extension/overlay/training';
import type { LineAnchor } from '../extension/overlay/model';
import { repoRoot } from './helpers';

function trained(file: string, steps: number, dir = 'examples'): TrainingRecord {
  const model = loadOnnx(new Uint8Array(fs.readFileSync(path.join(repoRoot, dir, file))));
  const trainer = new OnnxTrainer(model, { optimizer: { kind: 'adam', lr: 1e-2 }, modelName: file, batch: 8 });
  trainer.train(steps);
  return trainer.record;
}

describe('training overlays', () => {
  const record = trained('vanishing_mlp.onnx', 12);
  const first = record.modules.find((m) => m.path === 'layers.0')!;
  const last = record.modules.find((m) => m.path === 'layers.9')!;

  test('a line per anchored module: gradient norm sparkline and last value', () => {
    const anchors: LineAnchor[] = [
      { modulePath: 'layers.0', line: 4, kind: 'definition' },
      { modulePath: 'layers.9', line: 9, kind: 'definition' },
      { modulePath: 'not.in.record', line: 12, kind: 'definition' },
    ];
    const overlays = trainingOverlays(record, anchors);
    assert.deepEqual(overlays.map((o) => o.line), [4, 9]);
    const o = overlays[0];
    assert.match(o.text, /^∇ [▁▂▃▄▅▆▇█ ]+ \d\.\de[+-]\d\d$/);
    const shownLast = Number(o.text.split(' ').pop()!.replace(/e([+-])0?/, 'e$1'));
    const actual = first.gradNorm[first.gradNorm.length - 1] as number;
    assert.ok(Math.abs(shownLast - actual) <= 0.06 * actual, `${o.text} vs ${actual}`);
    assert.match(o.hover, /\*\*layers\.0\*\*/);
    for (const label of ['‖∇‖', '‖θ‖', '‖Δθ‖/‖θ‖', 'std\\(out\\)']) assert.match(o.hover, new RegExp(label));
    assert.equal(o.health, 'neutral');
    assert.ok((first.gradNorm[0] as number) < (last.gradNorm[0] as number), 'the record itself shows the vanishing gradient');
  });

  test('several modules on one line (a ModuleList comprehension): the innermost, all in the hover', () => {
    const anchors: LineAnchor[] = ['layers', ...record.modules.filter((m) => /^layers\.\d+$/.test(m.path)).map((m) => m.path)].map((p) => ({ modulePath: p, line: 7, kind: 'definition' as const }));
    const [o] = trainingOverlays(record, anchors);
    assert.ok(!o.modulePaths.includes('layers'), 'the container gives way to its elements');
    assert.match(o.text, / · 10 modules$/);
    assert.equal(o.hover.split('---').length, 10);
  });
});

describe('anomaly on the source', () => {
  const record = trained('nan_backward.onnx', 3, path.join('test', 'fixtures', 'onnx'));
  const source = fs.readFileSync(path.join(repoRoot, 'test', 'fixtures', 'python', 'nan_model.py'), 'utf8').split('\n');
  const sqrtLine = source.findIndex((l) => l.includes('torch.sqrt(h * 0.0)'));

  test('the recorded line wins when the document is the recorded file', () => {
    const d = anomalyDiagnostic(record, [{ modulePath: 'gate', line: 40, kind: 'definition' }], 0, '/home/u/project/nan_model.py');
    assert.ok(d);
    assert.equal(d.line, sqrtLine);
    assert.equal(d.severity, 'error');
    assert.match(d.message, /^Training step 1 \(backward\): Inf first appears in the gradient of \/gate\/Mul \(gate\)\. Training stopped there\.$/);
  });

  test('in another file, the module line (or its nearest mapped ancestor), else the model class', () => {
    assert.equal(anomalyDiagnostic(record, [{ modulePath: 'gate', line: 40, kind: 'definition' }], 3, 'other.py')?.line, 40);
    assert.equal(anomalyDiagnostic(record, [{ modulePath: 'embed', line: 41, kind: 'definition' }], 3, 'other.py')?.line, 3);
    const overlays = trainingOverlays(record, [{ modulePath: 'gate', line: 40, kind: 'definition' }]);
    assert.equal(overlays[0].health, 'non-finite');
    assert.match(overlays[0].hover, /\$\(error\) step 1: Inf first appears/);
  });
});
