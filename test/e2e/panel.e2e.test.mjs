// End to end in a real VS Code: package the .vsix, install it into code-server, open a workspace in Debian
// Chromium (with and without WebGPU) and check what a user sees. Run with `npm run test:e2e`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ROOT,
  ensureCodeServer,
  launchChromium,
  log,
  makeScratch,
  openWorkbench,
  paintedPixels,
  packageVsix,
  run,
  startCodeServer,
  timed,
  writeTimings,
} from './harness.mjs';

const WORKSPACE_FIXTURE = join(dirname(fileURLToPath(import.meta.url)), 'workspace');
const NOT_STARTED = /starting engine/i;
const TEST_TIMEOUT = { timeout: 5 * 60_000 };

/** Why the webview chose its backend, for failure messages: the badge's title and any detail element. */
async function backendDetail(wb) {
  const frame = await wb.webviewFrame().frame();
  return frame.evaluate(() => {
    const badge = document.querySelector('[data-testid="backend"]');
    const detail = document.querySelector('[data-testid="backend-detail"]');
    return [badge?.getAttribute('title'), detail?.textContent].filter(Boolean).join(' | ');
  });
}


describe('Gradient Lens in code-server', () => {
  /** @type {Awaited<ReturnType<typeof startCodeServer>> | undefined} */
  let server;
  let codeServer;
  let vsix;
  const started = Date.now();

  before(async () => {
    codeServer = await timed('ensure code-server', () => ensureCodeServer());
    vsix = await packageVsix();
    // A fresh copy of the fixture workspace: nothing a test does can change the repo.
    const scratch = makeScratch('server');
    const workspace = join(scratch, 'workspace');
    cpSync(WORKSPACE_FIXTURE, workspace, { recursive: true });
    server = await startCodeServer({ workspace, vsix, codeServer, scratch });
  }, { timeout: 30 * 60_000 }); // a cold code-server install takes 2-3 minutes, more on a busy machine

  after(async () => {
    await server?.stop();
    const entry = writeTimings({ suite: 'panel.e2e', totalMs: Date.now() - started });
    log(`timings (ms): ${JSON.stringify(entry.ms)}`);
  });

  test('the .vsix is installed into code-server', async () => {
    const out = await run(codeServer.node, [codeServer.entry, '--user-data-dir', join(server.scratch, 'user-data'), '--extensions-dir', join(server.scratch, 'extensions'), '--list-extensions', '--show-versions'], {
      quiet: true,
      timeoutMs: 60_000,
    });
    assert.match(out, /^gradient-lens\.gradient-lens@\d+\.\d+\.\d+/m, `extension list:\n${out}`);
  }, TEST_TIMEOUT);

  for (const webgpu of [true, false]) {
    const label = webgpu ? 'webgpu' : 'no-webgpu';
    test(`Show Panel reports the engine backend (${webgpu ? 'WebGPU enabled' : 'WebGPU disabled'})`, async () => {
      const chrome = await launchChromium({ webgpu });
      let wb;
      try {
        wb = await openWorkbench(chrome, server, { name: label });
        await timed(`show panel (${label})`, async () => {
          await wb.runCommand('Gradient Lens: Show Panel');
          await wb.waitFor(wb.page.locator('.tabs-container .tab[aria-label^="Gradient Lens"]').first(), 'the "Gradient Lens" editor tab');
        });
        const backend = await timed(`engine backend (${label})`, () =>
          wb.webviewText('backend', { ok: (t) => t.length > 0 && !NOT_STARTED.test(t), what: 'the engine backend badge to name a backend' }),
        );
        const detail = await backendDetail(wb);
        log(`${label}: backend "${backend}" — ${detail}`);
        if (webgpu) {
          // The adapter is found (Chromium's software adapter); with the 'auto' setting a fallback adapter is skipped
          // (SwiftShader is slower than WebAssembly SIMD) and the engine says so.
          assert.match(detail, /WebGPU adapter: google swiftshader/i, `the WebGPU adapter should be detected; detail: ${detail}`);
          assert.match(detail, /only a fallback \(software\) WebGPU adapter is available/i, `the reason for skipping it; detail: ${detail}`);
          assert.match(backend, /^wasm-simd\b/i, `unexpected backend; detail: ${detail}`);
        } else {
          assert.doesNotMatch(backend, /webgpu/i, `without WebGPU the backend must fall back; detail: ${detail}`);
          assert.match(backend, /^wasm-simd\b/i, `unexpected backend; detail: ${detail}`);
          assert.match(detail, /WebGPU adapter: none/, detail);
          assert.match(detail, /skipped webgpu: no WebGPU adapter/, detail);
        }
        await wb.screenshot(`panel-${label}`);
      } catch (err) {
        const diag = wb ? await wb.captureFailure(`panel-${label}`) : '';
        err.message += `\n${diag}\ncode-server log tail:\n${server.logTail(2000)}`;
        throw err;
      } finally {
        await chrome.close();
      }
    }, TEST_TIMEOUT);
  }

  test('with WebGPU enabled and the backend setting "webgpu", Inspect runs on WebGPU and the panel shows the report', TEST_TIMEOUT, async () => {
    // Its own server: the examples as workspace and gradientLens.run.backend = webgpu (forces the software adapter).
    const scratch = makeScratch('server-webgpu');
    const workspace = join(scratch, 'examples');
    cpSync(join(ROOT, 'examples'), workspace, { recursive: true, filter: (src) => !/__pycache__/.test(src) });
    const gpuServer = await startCodeServer({ workspace, vsix, codeServer, scratch, name: 'server-webgpu', settings: { 'gradientLens.run.backend': 'webgpu' } });
    const chrome = await launchChromium({ webgpu: true, name: 'chromium-webgpu-inspect' });
    let wb;
    try {
      wb = await openWorkbench(chrome, gpuServer, { name: 'webgpu-inspect' });
      await wb.openFile('vanishing_mlp.py');
      await timed('inspect on webgpu', async () => {
        await wb.runCommand('Gradient Lens: Inspect Model');
        await wb.poll(() => wb.readDecorations(), (ds) => ds.some((d) => /‖∇‖ \d\.\de-?\d+/.test(d.after ?? '')), 'gradient decorations', 120_000, 500);
      });
      const panel = await wb.webviewFrame({ title: 'Gradient Lens' }).frame();
      const backend = await wb.webviewText('backend', { ok: (t) => t.length > 0 && !NOT_STARTED.test(t), what: 'the engine backend badge' });
      const detail = await panel.evaluate(() => document.querySelector('[data-testid="backend"]')?.getAttribute('title') ?? '');
      log(`webgpu inspect: backend "${backend}" — ${detail}`);
      assert.equal(backend.trim(), 'webgpu', `the WebGPU backend should run; the panel says: ${detail}`);
      assert.match(detail, /WebGPU adapter: google swiftshader/i, detail);
      const summary = await wb.webviewText('summary', { ok: (t) => /vanishing_mlp\.onnx/.test(t), what: 'the run summary' });
      assert.match(summary, /on webgpu \(float32, train mode\)/, summary);
      assert.match(summary, /loss crossEntropy = \d/, summary);
      assert.ok((await paintedPixels(panel, '#flow')) > 1000, 'the gradient-flow chart is drawn');
      const rows = await panel.evaluate(() => document.querySelectorAll('[data-testid="module-table"] tbody tr').length);
      assert.ok(rows >= 11, `module table rows: ${rows}`);
      await wb.screenshot('panel-webgpu-inspect');
    } catch (err) {
      const diag = wb ? await wb.captureFailure('panel-webgpu-inspect') : '';
      err.message += `\n${diag}\ncode-server log tail:\n${gpuServer.logTail(2000)}`;
      throw err;
    } finally {
      await chrome.close();
      await gpuServer.stop();
    }
  });
});
