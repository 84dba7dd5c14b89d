// End to end: Train N Steps in a real VS Code (code-server + Chromium). The panel trains the vanishing MLP
// and draws the heat strip and the loss curve; each mapped source line gets a gradient-norm sparkline; a model
// made to produce an infinite gradient stops training with a Problem on the line that made it.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, paintedPixels, log, timed, workbenchSuite } from './harness.mjs';

const TEST_TIMEOUT = { timeout: 6 * 60_000 };
const SPARK = /^∇ [▁▂▃▄▅▆▇█ !]+ \d\.\de[+-]\d\d/;
const on = (decorations, code) => decorations.find((d) => (d.text ?? '').replace(/\u00a0/g, ' ').includes(code));


describe('Train N steps in code-server', () => {
  let wb;
  let workspace;
  workbenchSuite('train', {
    prepare(scratch) {
      workspace = join(scratch, 'examples');
      cpSync(join(ROOT, 'examples'), workspace, { recursive: true, filter: (src) => !/__pycache__/.test(src) });
      // A model made to produce an infinite gradient (sqrt at 0), next to its source: the locator pairs them by stem.
      cpSync(join(ROOT, 'test', 'fixtures', 'python', 'nan_model.py'), join(workspace, 'nan_model.py'));
      cpSync(join(ROOT, 'test', 'fixtures', 'onnx', 'nan_backward.onnx'), join(workspace, 'nan_model.onnx'));
      // Statistics recorded by python/gradlens_recorder.py from a PyTorch run of examples/tiny_gpt.py.
      cpSync(join(ROOT, 'test', 'fixtures', 'recorder', 'tiny_gpt.training.json'), join(workspace, 'tiny_gpt.training.json'));
      return workspace;
    },
    ready: (suite) => { wb = suite.wb; },
  });

  test('vanishing MLP: sparklines on the source, heat strip and loss curve in the panel', () => wb.explainingFailures('train-vanishing', async () => {
    await wb.openFile('vanishing_mlp.py');
    await wb.runCommand('Gradient Lens: Train N Steps…', { input: 25 });
    const decorations = await timed('train vanishing_mlp', () => wb.poll(() => wb.readDecorations(), (ds) => ds.some((d) => SPARK.test(d.after ?? '')), 'sparkline decorations', 120_000, 500));
    const layers = on(decorations, 'self.layers = nn.ModuleList');
    assert.match(layers?.after ?? '', /^∇ [▁▂▃▄▅▆▇█ ]+ \d\.\de[+-]\d\d · 10 modules$/, JSON.stringify(layers));
    const panel = await wb.webviewFrame({ title: 'Gradient Lens' }).frame();
    const progress = await wb.webviewText('train-progress', { ok: (t) => /step 25 \/ 25/.test(t), what: 'the training progress line', timeout: 120_000 });
    log(`training: ${progress}`);
    assert.ok((await paintedPixels(panel, '[data-testid="heat-strip"] canvas, canvas[data-testid="heat-strip"]')) > 500, 'the heat strip is drawn');
    assert.ok((await paintedPixels(panel, '[data-testid="loss-chart"] canvas, canvas[data-testid="loss-chart"]')) > 500, 'the loss curve is drawn');
    const hover = await wb.hover('ModuleList');
    assert.match(hover, /‖∇‖ [▁▂▃▄▅▆▇█ ]+/);
    assert.match(hover, /‖Δθ‖\/‖θ‖/);
    await wb.page.mouse.move(0, 0);
    await wb.page.keyboard.press('Escape');
    await panel.locator('[data-testid="heat-strip"]').first().scrollIntoViewIfNeeded();
    await wb.screenshot('training');
  }), TEST_TIMEOUT);

  test('an infinite gradient stops training with a Problem on the line that made it', () => wb.explainingFailures('train-nan', async () => {
    await wb.openFile('nan_model.py');
    await wb.runCommand('Gradient Lens: Train N Steps…', { input: 10 });
    const source = readFileSync(join(ROOT, 'test', 'fixtures', 'python', 'nan_model.py'), 'utf8').split('\n');
    const line = source.findIndex((l) => l.includes('torch.sqrt(h * 0.0)')) + 1;
    const problems = await wb.poll(() => wb.readProblems(), (ps) => ps.some((p) => p.file === 'nan_model.py' && /Training step 1/.test(p.message)), 'the anomaly Problem', 120_000, 500);
    const p = problems.find((x) => x.file === 'nan_model.py' && /Training step 1/.test(x.message));
    assert.equal(p.line, line, JSON.stringify(p));
    assert.equal(p.severity, 'error');
    assert.match(p.message, /Inf first appears in the gradient of \/gate\/Mul/);
    await wb.screenshot('training-anomaly');
  }), TEST_TIMEOUT);

  test('statistics recorded by the PyTorch recorder import onto the source', () => wb.explainingFailures('import', async () => {
    // code-server's file dialog is a quick input holding a path: type the file's path and accept.
    await wb.runCommand('Gradient Lens: Import Training Statistics…', { input: join(workspace, 'tiny_gpt.training.json') });
    // Decorations exist only on rendered lines: with the panel below the editor and the Problems panel open, the
    // editor shows a dozen lines, so scroll to the line once the import has opened the file.
    await wb.waitFor(wb.page.locator('.tabs-container .tab.active[aria-label^="tiny_gpt.py"]'), 'tiny_gpt.py opened by the import', 60_000);
    await wb.goToLine(readFileSync(join(ROOT, 'examples', 'tiny_gpt.py'), 'utf8').split('\n').findIndex((l) => l.includes('self.q_proj = nn.Linear')) + 1);
    const decorations = await wb.poll(() => wb.readDecorations(), (ds) => !!on(ds, 'self.q_proj = nn.Linear'), 'decorations on tiny_gpt.py', 60_000, 500);
    const q = on(decorations, 'self.q_proj = nn.Linear');
    assert.match(q.after ?? '', /^∇ [▁▂▃▄▅▆▇█ ]+ \d\.\de[+-]\d\d · 2 modules$/, JSON.stringify(q));
    const summary = await wb.webviewText('train-progress', { ok: (t) => /imported/.test(t), what: 'the imported record in the panel' });
    assert.match(summary, /40 steps/);
    assert.match(summary, /gradlens_recorder\.py/);
    await wb.screenshot('training-import');
  }), TEST_TIMEOUT);
});
