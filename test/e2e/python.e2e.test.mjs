// End to end: inspect straight from the Python file in code-server. A copy of examples/ without its .onnx
// files: Inspect on vanishing_mlp.py exports it with the user's Python (the test venv with torch, through the
// gradientLens.python setting) → overlays and the vanishing Problem; change the depth and save with inspect on
// save → the overlays follow; Verify → the "matches PyTorch" badge. In an untrusted workspace no Python starts
// (the interpreter is a wrapper that logs every start) and Inspect says why, but still inspects an existing .onnx.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ROOT, log, timed, workbenchSuite } from './harness.mjs';

const TEST_TIMEOUT = { timeout: 8 * 60_000 };
/** Exporting imports torch in a fresh process: seconds alone, a minute or more on a busy machine. */
const EXPORT_WAIT = 4 * 60_000;
const NORM = /‖∇‖ \d\.\de[+-]?\d+/;
const on = (decorations, code) => decorations.find((d) => (d.text ?? '').replace(/\u00a0/g, ' ').includes(code));

/** The test venv with torch (test/python.ts, compiled by `npm test` into build/). */
function torchPython() {
  const compiled = join(ROOT, 'build', 'test', 'python.js');
  if (!existsSync(compiled)) throw new Error(`${compiled} is missing: run \`npm test\` (or \`npx tsc -p tsconfig.json\`) first`);
  const env = createRequire(import.meta.url)(compiled).pythonEnv();
  if (!env) throw new Error('no Python with torch for the e2e test: run `node scripts/setup.mjs --python`');
  return env.python;
}

/** A stand-in interpreter that appends its arguments to `log` and runs the real one: proof of whether Python started. */
function loggingPython(scratch) {
  const starts = join(scratch, 'python-starts.log');
  const wrapper = join(scratch, 'python-logged');
  writeFileSync(wrapper, `#!/bin/sh\necho "$*" >> "${starts}"\nexec "${torchPython()}" "$@"\n`, { mode: 0o755 });
  return { wrapper, starts: () => (existsSync(starts) ? readFileSync(starts, 'utf8').trim().split('\n') : []) };
}

/** examples/ without the .onnx files `drop` matches. */
function workspaceCopy(scratch, drop) {
  const ws = join(scratch, 'examples');
  cpSync(join(ROOT, 'examples'), ws, { recursive: true, filter: (src) => !/__pycache__/.test(src) && !(src.endsWith('.onnx') && drop.test(src)) });
  return ws;
}

/** The extension's commands reach the palette once its host is up: slow on a busy machine, so wait longer than one UI wait. */
const FIRST_COMMAND = { timeout: 3 * 60_000 };

async function inspect(wb, file, ok = (ds) => ds.some((d) => NORM.test(d.after ?? ''))) {
  await wb.openFile(file);
  await wb.runCommand('Gradient Lens: Inspect Model', FIRST_COMMAND);
  return wb.poll(() => wb.readDecorations(), ok, `gradient decorations in ${file}`, EXPORT_WAIT, 500);
}

describe('Inspect straight from the Python file (trusted workspace)', () => {
  let wb;
  let python;
  workbenchSuite('python', {
    prepare(scratch) {
      python = loggingPython(scratch);
      return workspaceCopy(scratch, /./);
    },
    settings: () => ({ 'gradientLens.python': python.wrapper, 'gradientLens.inspectOnSave': true }),
    ready: (s) => { wb = s.wb; },
  });

  test('no .onnx: Inspect exports vanishing_mlp.py with the user\'s Python, then overlays and the vanishing Problem', () => wb.explainingFailures('python-export', async () => {
    // The module count sits on the ModuleList line or on the line that calls the layers (as in inspect.e2e).
    const decorations = await timed('export + inspect vanishing_mlp', () => inspect(wb, 'vanishing_mlp.py', (ds) => NORM.test(on(ds, 'self.layers = nn.ModuleList')?.after ?? '') && ds.some((d) => /· 10 modules$/.test(d.after ?? ''))));
    assert.match(on(decorations, 'self.layers = nn.ModuleList').after, /^‖∇‖ \d\.\de-\d+ … \d\.\de-?\d+( · 10 modules)?$/);
    assert.ok(python.starts().some((l) => /gradlens_export\.py/.test(l)), `the helper ran with the configured Python: ${JSON.stringify(python.starts())}`);
    const problems = await wb.poll(() => wb.readProblems(), (ps) => ps.some((p) => /Vanishing gradient/.test(p.message)), 'the vanishing-gradient Problem');
    assert.equal(problems.filter((p) => p.file === 'vanishing_mlp.py' && /Vanishing gradient/.test(p.message)).length, 1, JSON.stringify(problems));
    await wb.screenshot('python-export-overlays');
  }), TEST_TIMEOUT);

  test('inspect on save: depth 10 → 4, save, the overlays follow', () => wb.explainingFailures('python-on-save', async () => {
    const source = readFileSync(join(ROOT, 'examples', 'vanishing_mlp.py'), 'utf8').split('\n');
    const line = source.findIndex((l) => l.includes('depth=10')) + 1;
    await wb.goToLine(line);
    const before = on(await wb.readDecorations(), 'self.layers = nn.ModuleList')?.after;
    await wb.page.keyboard.press('End');
    await wb.page.keyboard.press('Shift+Home'); // the line after its indent
    await wb.page.keyboard.insertText(source[line - 1].trim().replace('depth=10', 'depth=4'));
    await wb.page.keyboard.press('Control+S');
    const decorations = await timed('save → export + inspect', () =>
      wb.poll(() => wb.readDecorations(), (ds) => NORM.test(on(ds, 'self.layers = nn.ModuleList')?.after ?? '') && on(ds, 'self.layers = nn.ModuleList').after !== before, 'the ModuleList overlay of the depth-4 model', EXPORT_WAIT, 500));
    assert.ok(!decorations.some((d) => /· 10 modules$/.test(d.after ?? '')), JSON.stringify(decorations));
    // The panel's summary counts the depth-4 model's parameters (16·32+32 + 2·(32·32+32) + 32·10+10), so the
    // re-export has been inspected (and Verify below checks that run, not the depth-10 one).
    await wb.webviewText('summary', { ok: (t) => /· 2,986 parameters ·/.test(t), what: 'the depth-4 model in the panel summary', timeout: EXPORT_WAIT });
    await wb.screenshot('python-on-save');
  }), TEST_TIMEOUT);

  test('Verify Against PyTorch: the badge says the engine matches PyTorch', () => wb.explainingFailures('python-verify', async () => {
    await wb.runCommand('Gradient Lens: Verify Against PyTorch');
    const badge = await timed('verify', () => wb.webviewText('verification', { ok: (t) => /^(matches|differs|not verified|verification failed)/.test(t), what: 'the verification badge', timeout: EXPORT_WAIT }));
    assert.match(badge, /^matches PyTorch \(max \d\.\de-\d+\)$/);
    const max = Number(/max (\S+)\)/.exec(badge)[1]);
    assert.ok(max < 1e-4, badge);
    log(`verification: ${badge}`);
    const panel = await wb.webviewFrame({ title: 'Gradient Lens' }).frame();
    const rows = await panel.evaluate(() => [...document.querySelectorAll('[data-testid="verification-table"] tbody tr')].map((r) => r.textContent));
    assert.equal(rows.length, 4, `one row per Linear of the depth-4 model: ${JSON.stringify(rows)}`);
    await wb.screenshot('python-verify');
  }), TEST_TIMEOUT);
});

describe('Untrusted workspace: no Python runs', () => {
  let wb;
  let python;
  workbenchSuite('python-untrusted', {
    prepare(scratch) {
      python = loggingPython(scratch);
      return workspaceCopy(scratch, /vanishing_mlp/);
    },
    trusted: false,
    settings: () => ({ 'gradientLens.python': python.wrapper, 'gradientLens.inspectOnSave': true, 'security.workspace.trust.banner': 'never' }),
    ready: (s) => { wb = s.wb; },
  });

  test('Inspect on a file without an export says why and starts no Python; an existing .onnx is still inspected', () => wb.explainingFailures('python-untrusted', async () => {
    await wb.openFile('vanishing_mlp.py');
    await wb.runCommand('Gradient Lens: Inspect Model', FIRST_COMMAND);
    const shown = await wb.poll(() => wb.readNotifications(), (ns) => ns.some((n) => /untrusted workspace/.test(n)), 'the untrusted-workspace message');
    assert.match(shown.find((n) => /untrusted workspace/.test(n)), /^Gradient Lens runs no Python in an untrusted workspace, so it cannot export vanishing_mlp\.py/);
    await wb.screenshot('python-untrusted');
    await wb.page.keyboard.press('Escape');
    await inspect(wb, 'healthy_mlp.py');
    assert.deepEqual(python.starts(), [], 'no Python started in the untrusted workspace');
  }), TEST_TIMEOUT);
});
