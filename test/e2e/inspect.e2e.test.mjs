// End to end: inspect the examples in a real VS Code (code-server + Chromium) and check what a user sees:
// decorations on mapped lines, a hover, Problems for the vanishing MLP and none for the healthy one, the
// gradient-flow chart and the attention heatmaps in the panel. Screenshots go to .e2e/screenshots.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, paintedPixels, log, timed, workbenchSuite } from './harness.mjs';

const TEST_TIMEOUT = { timeout: 6 * 60_000 };
/** The decoration on the line whose source contains `code` (the editor renders spaces as no-break spaces). */
const on = (decorations, code) => decorations.find((d) => (d.text ?? '').replace(/\u00a0/g, ' ').includes(code));

/** The extension's Output channel, as the server logged it (every window's extension host). */
function outputLog(scratch) {
  const texts = [];
  const walk = (dir) => {
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (/Gradient Lens\.log$/.test(e.name)) texts.push(readFileSync(join(dir, e.name), 'utf8'));
    }
  };
  walk(join(scratch, 'user-data', 'logs'));
  return texts.join('\n');
}

/** Copies examples/ (.py + .onnx only) into a scratch workspace. */
/** The module table's Kind column: { path: kind }. */
const tableKinds = (panel) => panel.evaluate(() => Object.fromEntries([...document.querySelectorAll('[data-testid="module-table"] tbody tr')]
  .map((r) => [r.dataset.path, r.querySelector('td[data-col="kind"]')?.textContent ?? ''])));

/** The module table's Δ column: { path: text }. */
const tableDeltas = (panel) => panel.evaluate(() => Object.fromEntries([...document.querySelectorAll('[data-testid="module-table"] tbody tr')]
  .map((r) => [r.dataset.path, r.querySelector('td[data-col="delta"]')?.textContent ?? null])));

/** The gradient-flow chart's data (its accessible table) and bar counts. */
const flowData = (panel) => panel.evaluate(() => {
  const canvas = document.querySelector('#flow');
  const head = [...document.querySelectorAll('[data-testid="flow-data"] thead td')].map((c) => c.textContent);
  const rows = Object.fromEntries([...document.querySelectorAll('[data-testid="flow-data"] tbody tr')]
    .map((r) => [r.dataset.path, Object.fromEntries([...r.cells].map((c, i) => [head[i], c.textContent]))]));
  return { bars: Number(canvas?.dataset.bars), ghostBars: Number(canvas?.dataset.ghostBars), rows };
});

function workspaceCopy(scratch) {
  const ws = join(scratch, 'examples');
  cpSync(join(ROOT, 'examples'), ws, { recursive: true, filter: (src) => !/__pycache__/.test(src) });
  return ws;
}


describe('Inspect the examples in code-server', () => {
  let wb;
  const suite = workbenchSuite('inspect', {
    prepare(scratch) {
      const workspace = workspaceCopy(scratch);
      log(`workspace: ${readdirSync(workspace).join(', ')}`);
      return workspace;
    },
    ready: (suite) => { wb = suite.wb; },
  });

  /** Focuses the editor group (a click in the panel moved the focus to the panel's group). */
  async function focusEditorGroup() {
    await wb.page.locator('.editor-group-container').first().locator('.tabs-container .tab.active').click();
  }

  /**
   * The decoration on the line of `file` holding `code`: scrolls it into view first (decorations exist only on
   * rendered lines, and the panel below the editor leaves it half the height), then waits for `ok`.
   */
  async function decorationOn(file, code, ok = (d) => !!d) {
    const line = readFileSync(join(ROOT, 'examples', file), 'utf8').split('\n').findIndex((l) => l.includes(code)) + 1;
    assert.ok(line > 0, `${code} is in ${file}`);
    await wb.goToLine(line);
    // Go to Line again while it is not there: on a loaded machine a keystroke can be lost.
    const ds = await wb.poll(async () => {
      const all = await wb.readDecorations();
      if (!ok(on(all, code))) await wb.goToLine(line);
      return all;
    }, (all) => ok(on(all, code)), `the decoration on ${file}:${line}`, 60_000, 300);
    return on(ds, code);
  }

  async function inspect(file) {
    await wb.openFile(file);
    await wb.runCommand('Gradient Lens: Inspect Model');
    // The run is done when the panel's summary names the model; the lines with decorations may be out of view
    // (the panel below the editor and the Problems panel leave it a dozen lines): decorationOn scrolls to them.
    const onnx = file.replace(/\.py$/, '.onnx');
    await wb.webviewText('summary', { ok: (t) => t.startsWith(`${onnx} · `), what: `the run summary of ${onnx}`, timeout: 90_000 });
  }

  test('the installed extension holds the built extension, its media, the export helper and the training recorder, nothing else', () => {
    const exts = join(suite.server.scratch, 'extensions');
    const dir = readdirSync(exts).find((d) => d.startsWith('gradient-lens.gradient-lens-'));
    assert.ok(dir, `installed extensions: ${readdirSync(exts).join(', ')}`);
    const files = (function walk(rel) {
      return readdirSync(join(exts, dir, rel), { withFileTypes: true }).flatMap((e) => (e.isDirectory() ? walk(join(rel, e.name)) : [join(rel, e.name)]));
    })('');
    // vsce writes readme.md, changelog.md and LICENSE.txt under those names.
    const shipped = [/^package\.json$/, /^readme\.md$/i, /^changelog\.md$/i, /^LICENSE(\.txt)?$/, /^media\//, /^dist\/[^/]+\.(js|css|wasm)$/, /^python\/gradlens_(recorder|export)\.py$/, /^\.vsixmanifest$/];
    for (const f of files) assert.ok(shipped.some((re) => re.test(f)), `${f} should not be shipped (${files.length} files)`);
    const manifest = JSON.parse(readFileSync(join(exts, dir, 'package.json'), 'utf8'));
    for (const f of [manifest.main.replace(/^\.\//, ''), 'dist/webview.js', 'dist/engine-worker.js', 'dist/host-engine.js', 'dist/kernels.wasm', 'dist/tree-sitter-python.wasm', 'python/gradlens_recorder.py', 'python/gradlens_export.py', 'media/icon.png']) {
      assert.ok(files.includes(f), `${f} missing from the installed extension`);
    }
    for (const w of manifest.contributes.walkthroughs) for (const step of w.steps) for (const m of Object.values(step.media)) assert.ok(files.includes(m), `${m} (walkthrough) missing`);
    log(`installed extension: ${files.length} files`);
  });

  test('vanishing MLP: decorations, hover, vanishing diagnostics, gradient-flow chart', () => wb.explainingFailures('vanishing', async () => {
    await timed('inspect vanishing_mlp', () => inspect('vanishing_mlp.py'));
    const layers = await decorationOn('vanishing_mlp.py', 'self.layers = nn.ModuleList');
    // A long line: the compact form (the range) past 120 columns, else with the module count.
    assert.match(layers.after, /^‖∇‖ \d\.\de-\d+ … \d\.\de-?\d+( · 10 modules)?$/, layers.after);
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
    // The first Inspect ran in the extension host's engine (no panel on the way to the overlays); the panel shows
    // that run's report: the same loss as the Output channel logged.
    const output = await wb.poll(async () => outputLog(suite.server.scratch), (t) => /wasm-simd[^:]*: loss crossEntropy/.test(t), 'the run in the Output channel log');
    assert.match(output, /inspecting vanishing_mlp\.onnx \([^)]*\) in the extension host engine/);
    const logged = /wasm-simd[^:]*: loss crossEntropy = ([\d.]+)/.exec(output)?.[1];
    assert.ok(logged && summary.includes(`crossEntropy = ${Number(logged).toPrecision(5)}`), `panel: ${summary}; output: ${logged}`);
    // The run's memory estimate under the summary, against gradientLens.run.memoryBudgetMB (default 2048 MB).
    const memory = await wb.webviewText('memory-estimate', { ok: (t) => t.startsWith('Memory estimate'), what: 'the memory estimate' });
    assert.match(memory, /^Memory estimate [\d.]+ (kB|MB) of the 2\.00 GB budget \(\d+%\): /);
    assert.match(memory, /parameters [\d.]+ (bytes|kB|MB)/);
    assert.match(memory, /saved activations [\d.]+ (bytes|kB|MB)/);
    assert.ok((await paintedPixels(panel, '#flow')) > 1000, 'the gradient-flow chart is drawn');
    const rows = await panel.evaluate(() => document.querySelectorAll('[data-testid="module-table"] tbody tr').length);
    assert.ok(rows >= 11, `module table rows: ${rows}`);
    // Kind: the classes the source constructs, never an op name (the model read 'Sigmoid' before).
    const kinds = await wb.poll(() => tableKinds(panel), (k) => k[''] === 'VanishingMLP', 'the model\'s class in the Kind column');
    assert.equal(kinds.layers, 'ModuleList');
    assert.equal(kinds['layers.0'], 'Linear');
    // A clean view of the chart: no hover over the editor, the chart scrolled into view.
    await wb.page.mouse.move(0, 0);
    await wb.page.keyboard.press('Escape');
    await panel.locator('#flow').scrollIntoViewIfNeeded();
    await wb.screenshot('panel-flow');
  }), TEST_TIMEOUT);

  test('healthy MLP: decorations and no problems', () => wb.explainingFailures('healthy', async () => {
    await timed('inspect healthy_mlp', () => inspect('healthy_mlp.py'));
    const head = await decorationOn('healthy_mlp.py', 'self.head = nn.Linear');
    assert.match(head?.after ?? '', /^‖∇‖ \d\.\de-?\d+ · \[8,10\]$/, JSON.stringify(head));
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
    assert.match(watched?.after ?? '', /^∇ \d\.\de-?\d+ · \[\d+,\d+,32\] · zeros \d+% · ×2$/, JSON.stringify(watched));
    const softmax = source.findIndex((l) => l.includes('attn = F.softmax')) + 1;
    const lenses = await wb.poll(async () => {
      await wb.goToLine(softmax); // a CodeLens is rendered only in view (the editor shows a dozen lines)
      return wb.readCodeLenses();
    }, (ls) => ls.some((l) => /Attention & gradients: layers 0, 1 · 4 heads/.test(l)), 'the attention CodeLens');
    log(`attention lens: ${lenses.find((l) => /Attention/.test(l))}`);
    const classLine = source.findIndex((l) => l.startsWith('class CausalSelfAttention')) + 1;
    await wb.poll(async () => {
      await wb.goToLine(classLine); // the class's own lens, a score of lines above (not in view with the panel below)
      return wb.readCodeLenses();
    }, (ls) => ls.some((l) => /Inspect gradients/.test(l)), 'the Inspect gradients CodeLens');
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

  test('LoRA: class kinds, bars for proj and head, CodeLens counts; a pinned baseline gives ghost bars, a Δ column and "was"', () => wb.explainingFailures('lora-baseline', async () => {
    // The tests before clicked in the panel: give the editor group the focus back, so the file opens there.
    await focusEditorGroup();
    await timed('inspect lora', () => inspect('lora.py'));
    assert.equal((await decorationOn('lora.py', 'self.base = nn.Linear')).after, 'frozen · 2 modules');
    const proj = await decorationOn('lora.py', 'self.proj = LoRALinear');
    assert.match(proj.after ?? '', /^‖∇‖ \d\.\de-\d+ · \[8,64\]$/, JSON.stringify(proj));
    // The class lens counts what the Problems panel lists (the lora_A zero gradients are Info items).
    const problems = await wb.poll(() => wb.readProblems(), (ps) => ps.some((p) => p.file === 'lora.py'), 'Problems for lora.py');
    const infos = problems.filter((p) => p.file === 'lora.py' && p.severity === 'info');
    assert.ok(infos.length > 0, JSON.stringify(problems));
    const classLine = readFileSync(join(ROOT, 'examples', 'lora.py'), 'utf8').split('\n').findIndex((l) => l.startsWith('class LoRAClassifier')) + 1;
    const lenses = await wb.poll(async () => {
      await wb.goToLine(classLine); // a CodeLens is rendered only in view
      return wb.readCodeLenses();
    }, (ls) => ls.some((l) => /^‖∇‖ .* · loss /.test(l)), 'the run summary CodeLens');
    const summary = lenses.find((l) => /· loss /.test(l));
    assert.match(summary, new RegExp(`· ${infos.length} info \\(zero-gradient\\)$`), summary);

    const panel = await wb.webviewFrame({ title: 'Gradient Lens' }).frame();
    await wb.webviewText('summary', { ok: (t) => /lora\.onnx/.test(t), what: 'the LoRA run summary' });
    const kinds = await wb.poll(() => tableKinds(panel), (k) => k.proj === 'LoRALinear', 'LoRALinear in the Kind column');
    assert.deepEqual(kinds, { '': 'LoRAClassifier', proj: 'LoRALinear', 'proj.base': 'Linear', head: 'LoRALinear', 'head.base': 'Linear' });
    const flow = await flowData(panel);
    assert.equal(flow.bars, 2, JSON.stringify(flow));
    for (const p of ['proj', 'head']) assert.match(flow.rows[p]?.['‖∇W‖'] ?? '', /^\d\.\d\de-\d+$/, JSON.stringify(flow));
    assert.ok((await paintedPixels(panel, '#flow')) > 1000, 'the gradient-flow chart is drawn');

    // Pin this run, change the seed, re-run: the chart, the table and the overlays compare.
    await panel.locator('[data-testid="pin-baseline"]').click();
    await wb.webviewText('baseline-status', { ok: (t) => /is the baseline/.test(t), what: 'the pinned-baseline status' });
    await panel.evaluate(() => {
      const seed = document.querySelector('#settings vscode-textfield[aria-label="Seed"]');
      seed.value = '1';
      seed.dispatchEvent(new Event('change'));
    });
    await panel.locator('#settings vscode-button').click();
    const status = await wb.webviewText('baseline-status', { ok: (t) => /^Compared with the baseline/.test(t), what: 'the comparison with the baseline', timeout: 90_000 });
    log(`baseline: ${status}`);
    const compared = await wb.poll(() => flowData(panel), (f) => f.ghostBars === 2, 'two ghost bars');
    for (const p of ['proj', 'head']) {
      assert.equal(compared.rows[p]['baseline ‖∇W‖'], flow.rows[p]['‖∇W‖'], 'the ghost is the pinned run\'s bar');
      assert.notEqual(compared.rows[p]['‖∇W‖'], flow.rows[p]['‖∇W‖'], 'another seed, another gradient');
    }
    const deltas = await tableDeltas(panel);
    for (const p of ['', 'proj', 'head']) assert.match(deltas[p] ?? '', /^×\d/, JSON.stringify(deltas));
    await panel.locator('[data-testid="flow-chart"]').scrollIntoViewIfNeeded();
    await wb.screenshot('baseline-panel');

    // The editor: "was" after the number, "was …, now …" in the hover.
    await focusEditorGroup();
    const was = await decorationOn('lora.py', 'self.proj = LoRALinear', (d) => /\(was \d/.test(d?.after ?? ''));
    assert.match(was.after, /^‖∇‖ \d\.\de-\d+ \(was \d\.\de-\d+\) · \[8,64\]$/);
    const hover = await wb.hover('LoRALinear', { line: was.line });
    assert.match(hover, /‖∇‖ was \d\.\de-\d+, now \d\.\de-\d+ \(×[\d.e+-]+\) since the baseline \(pinned /, hover);
    await wb.screenshot('baseline-overlays');

    // Clear: no comparison left.
    await panel.locator('[data-testid="clear-baseline"]').click();
    await wb.poll(() => tableDeltas(panel), (d) => d.proj === null, 'the Δ column to go');
    assert.equal((await flowData(panel)).ghostBars, 0);
  }), TEST_TIMEOUT);
});
