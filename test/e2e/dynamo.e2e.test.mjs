// End to end: a model exported the way torch 2.9+ exports it by default (dynamo, optimize=True, the weights in
// model.onnx.data beside it) inspected in a real VS Code: the extension reads the external data file, the panel
// says the run mode, and what the exporter lost (BatchNorm folded into the convolutions) is a warning in Problems
// on the BatchNorm's line.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, mkdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, log, timed, workbenchSuite } from './harness.mjs';

const TEST_TIMEOUT = { timeout: 6 * 60_000 };
const on = (decorations, code) => decorations.find((d) => (d.text ?? '').replace(/\u00a0/g, ' ').includes(code));
const SOURCE = join(ROOT, 'test', 'fixtures', 'python', 'conv_bn.py');
const EXPORTS = join(ROOT, 'test', 'fixtures', 'exports');

describe('Inspect a dynamo export with its .onnx.data in code-server', () => {
  let wb;
  workbenchSuite('dynamo', {
    prepare(scratch) {
      const workspace = join(scratch, 'dynamo');
      mkdirSync(workspace, { recursive: true });
      // The source first, then its export (newer: up to date), paired by stem; the data file keeps the name the
      // model gives it (its external_data location).
      cpSync(SOURCE, join(workspace, 'conv_bn.py'));
      cpSync(join(EXPORTS, 'cnn_bn_perturbed_dynamo.onnx'), join(workspace, 'conv_bn.onnx'));
      cpSync(join(EXPORTS, 'cnn_bn_perturbed_dynamo.onnx.data'), join(workspace, 'cnn_bn_perturbed_dynamo.onnx.data'));
      return workspace;
    },
    ready: (suite) => { wb = suite.wb; },
  });

  test('the weights come from conv_bn.onnx.data; the summary says train mode; the folded BatchNorms are warnings on their lines', TEST_TIMEOUT, () => wb.explainingFailures('dynamo', async () => {
    await wb.openFile('conv_bn.py');
    await wb.runCommand('Gradient Lens: Inspect Model');
    const summary = await timed('inspect conv_bn', () => wb.webviewText('summary', { ok: (t) => t.startsWith('conv_bn.onnx · '), what: 'the run summary of conv_bn.onnx', timeout: 90_000 }));
    log(`summary: ${summary}`);
    assert.match(summary, /, train mode\)$/);
    // Parameters read from the .data file: the head's 90 and the convolutions' 216 + 576 + 8 (bn1's folded bias
    // stays a constant, the BatchNorms' own parameters are gone).
    assert.match(summary, /· 890 parameters ·/);
    const source = readFileSync(SOURCE, 'utf8').split('\n');
    const lineOf = (code) => source.findIndex((l) => l.includes(code)) + 1;
    const problems = await wb.poll(() => wb.readProblems(), (ps) => ps.some((p) => /folded this BatchNorm/.test(p.message)), 'the folded-BatchNorm warnings in Problems', 60_000, 500);
    const folded = problems.filter((p) => p.file === 'conv_bn.py' && /folded this BatchNorm/.test(p.message));
    assert.deepEqual(folded.map((p) => [p.severity, p.line]).sort(), [['warning', lineOf('self.bn1 = ')], ['warning', lineOf('self.bn2 = ')]], JSON.stringify(problems));
    assert.match(folded[0].message, /optimize=False/);
    // The head is not touched by the fold: a gradient norm on its line.
    await wb.goToLine(lineOf('self.head = '));
    const ds = await wb.poll(() => wb.readDecorations(), (all) => /‖∇‖/.test(on(all, 'self.head = ')?.after ?? ''), 'the decoration on the head line', 60_000, 300);
    log(`head: ${on(ds, 'self.head = ').after}`);
    await wb.screenshot('dynamo-conv-bn');
  }));
});
