// End to end: inspect the examples in a real VS Code (code-server + Chromium) and check what a user sees:
// decorations on mapped lines, a hover, Problems for the vanishing MLP and none for the healthy one, the
// gradient-flow chart and the attention heatmaps in the panel. Screenshots go to .e2e/screenshots.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, ensureCodeServer, paintedPixels, launchChromium, log, makeScratch, openWorkbench, packageVsix, startCodeServer, timed, writeTimings } from './harness.mjs';

const TEST_TIMEOUT = { timeout: 6 * 60_000 };
const NORM = /‖∇‖ \d\.\de[+-]\d\d/;
/** The decoration on the line whose source contains `code` (the editor renders spaces as no-break spaces). */
const on = (decorations, code) => decorations.find((d) => (d.text ?? '').replace(/\u00a0/g, ' ').includes(code));

/** Copies examples/ (.py + .onnx only) into a scratch workspace. */
function workspaceCopy(scratch) {
  const ws = join(scratch, 'examples');
  cpSync(join(ROOT, 'examples'), ws, { recursive: true, filter: (src) => !/__pycache__/.test(src) });
  return ws;
}


describe('Inspect the examples in code-server', () => {
  let server;
  let chrome;
  let wb;
  const started = Date.now();

  before(async () => {
    const codeServer = await timed('ensure code-server', () => ensureCodeServer());
    const vsix = await packageVsix();
    const scratch = makeScratch('inspect');
    const workspace = workspaceCopy(scratch);
    log(`workspace: ${readdirSync(workspace).join(', ')}`);
    server = await startCodeServer({ workspace, vsix, codeServer, scratch, name: 'inspect' });
    chrome = await launchChromium({ webgpu: false, name: 'chromium-inspect' });
    wb = await openWorkbench(chrome, server, { name: 'inspect' });
  }, { timeout: 30 * 60_000 });

  after(async () => {
    await chrome?.close();
    await server?.stop();
    writeTimings({ suite: 'inspect.e2e', totalMs: Date.now() - started });
  });

  async function inspect(file) {
    await wb.openFile(file);
    await wb.runCommand('Gradient Lens: Inspect Model');
    return wb.poll(() => wb.readDecorations(), (ds) => ds.some((d) => NORM.test(d.after ?? '')), `gradient decorations in ${file}`, 90_000, 500);
  }

  test('vanishing MLP: decorations, hover, vanishing diagnostics, gradient-flow chart', () => wb.explainingFailures('vanishing', async () => {
    const decorations = await timed('inspect vanishing_mlp', () => inspect('vanishing_mlp.py'));
    const layers = on(decorations, 'self.layers = nn.ModuleList');
    assert.ok(layers, `a decoration on the ModuleList line; got ${JSON.stringify(decorations)}`);
    assert.match(layers.after, /^‖∇‖ \d\.\de-\d\d … \d\.\de[+-]\d\d · 10 modules$/, layers.after);
    const hover = await wb.hover('ModuleList');
    assert.match(hover, /10 modules on this line/);
    assert.match(hover, /layers\.0\s+Linear/);
    assert.match(hover, /Vanishing gradient/);
    const problems = await wb.poll(() => wb.readProblems(), (ps) => ps.some((p) => /Vanishing gradient/.test(p.message)), 'vanishing-gradient problems');
    const vanishing = problems.filter((p) => p.file === 'vanishing_mlp.py' && /Vanishing gradient/.test(p.message));
    // One problem on the ModuleList line naming the vanishing layers.
    assert.equal(vanishing.length, 1, JSON.stringify(problems));
    assert.equal(vanishing[0].severity, 'warning');
    assert.equal(vanishing[0].line, layers.line);
    assert.match(vanishing[0].message, /^\d+ modules \(layers\.0, layers\.1/);
    await wb.screenshot('vanishing-overlays');
    const panel = await wb.webviewFrame({ title: 'Gradient Lens' }).frame();
    const backend = await wb.webviewText('backend', { ok: (t) => /wasm-simd|typescript/.test(t), what: 'the backend badge' });
    log(`panel backend: ${backend}`);
    const why = await panel.evaluate(() => document.querySelector('[data-testid="backend"]')?.getAttribute('title'));
    assert.match(backend, /^wasm-simd/, `WebAssembly SIMD runs when WebGPU is unavailable; the panel says: ${why}`);
    const summary = await wb.webviewText('summary', { ok: (t) => /vanishing_mlp\.onnx/.test(t), what: 'the run summary' });
    assert.match(summary, /loss crossEntropy = \d/);
    assert.ok((await paintedPixels(panel, '#flow')) > 1000, 'the gradient-flow chart is drawn');
    const rows = await panel.evaluate(() => document.querySelectorAll('[data-testid="module-table"] tbody tr').length);
    assert.ok(rows >= 11, `module table rows: ${rows}`);
    // A clean view of the chart: no hover over the editor, the chart scrolled into view.
    await wb.page.mouse.move(0, 0);
    await wb.page.keyboard.press('Escape');
    await panel.locator('#flow').scrollIntoViewIfNeeded();
    await wb.screenshot('panel-flow');
  }), TEST_TIMEOUT);

  test('healthy MLP: decorations and no problems', () => wb.explainingFailures('healthy', async () => {
    const decorations = await timed('inspect healthy_mlp', () => inspect('healthy_mlp.py'));
    const head = on(decorations, 'self.head = nn.Linear');
    assert.match(head?.after ?? '', /^‖∇‖ \d\.\de[+-]\d\d · \[8, 10\]$/, JSON.stringify(head));
    const problems = await wb.readProblems();
    assert.deepEqual(problems.filter((p) => p.file === 'healthy_mlp.py'), []);
    await wb.screenshot('healthy-overlays');
  }), TEST_TIMEOUT);

  test('tiny GPT: attention CodeLens, hook log on the watched line, attention heatmaps drawn', () => wb.explainingFailures('tiny-gpt', async () => {
    await timed('inspect tiny_gpt', () => inspect('tiny_gpt.py'));
    // Decorations exist only for rendered lines: bring the watched line into view first.
    const source = readFileSync(join(ROOT, 'examples', 'tiny_gpt.py'), 'utf8').split('\n');
    await wb.goToLine(source.findIndex((l) => l.includes('# gradlens: watch')) + 1);
    const decorations = await wb.poll(() => wb.readDecorations(), (ds) => !!on(ds, '# gradlens: watch'), 'the hook decoration');
    const watched = on(decorations, '# gradlens: watch');
    assert.match(watched?.after ?? '', /^∇ \d\.\de[+-]\d\d · \[\d+, \d+, 32\] · zeros \d+% · ×2$/, JSON.stringify(watched));
    await wb.goToLine(source.findIndex((l) => l.includes('attn = F.softmax')) + 1);
    const lenses = await wb.poll(() => wb.readCodeLenses(), (ls) => ls.some((l) => /Attention & gradients: layers 0, 1 · 4 heads/.test(l)), 'the attention CodeLens');
    assert.ok(lenses.some((l) => /Inspect gradients/.test(l)));
    const panel = await wb.webviewFrame({ title: 'Gradient Lens' }).frame();
    await wb.poll(() => panel.evaluate(() => document.querySelectorAll('[data-testid="attention-grid"] canvas.heatmap').length), (n) => n === 8, '8 heatmaps (2 layers x 4 heads)');
    assert.ok((await paintedPixels(panel, 'canvas.heatmap[data-layer="1"][data-head="3"]')) > 0);
    // Switch to dL/dS and zoom into one head.
    await panel.click('vscode-button[data-quantity="dS"]');
    await panel.click('canvas.heatmap[data-layer="0"][data-head="1"]');
    await panel.locator('[data-testid="attention-zoom"]').waitFor({ timeout: 10_000 });
    await panel.locator('[data-testid="attention-zoom"]').scrollIntoViewIfNeeded();
    await wb.screenshot('attention');
  }), TEST_TIMEOUT);
});
