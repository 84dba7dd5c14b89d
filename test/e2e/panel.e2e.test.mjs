// End to end in a real VS Code: package the .vsix, install it into code-server, open a workspace in Debian
// Chromium (with and without WebGPU) and check what a user sees. Run with `npm run test:e2e`.
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import {
  ensureCodeServer,
  launchChromium,
  log,
  makeScratch,
  openWorkbench,
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
  const started = Date.now();

  before(async () => {
    codeServer = await timed('ensure code-server', () => ensureCodeServer());
    const vsix = await packageVsix();
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
          // The adapter is found (Chromium's software adapter); until the WGSL kernels are integrated the engine
          // falls back to WebAssembly and says why.
          assert.match(detail, /adapter is present \(google swiftshader/i, `the WebGPU adapter should be detected; detail: ${detail}`);
          assert.match(backend, /^wasm-simd\b/i, `unexpected backend; detail: ${detail}`);
        } else {
          assert.doesNotMatch(backend, /webgpu/i, `without WebGPU the backend must fall back; detail: ${detail}`);
          assert.match(backend, /^wasm-simd\b/i, `unexpected backend; detail: ${detail}`);
          assert.match(detail, /WebGPU adapter: none/, detail);
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

  test('with WebGPU enabled, the WebGPU backend runs', { ...TEST_TIMEOUT, todo: 'the WGSL kernels are not integrated into the engine yet (issue 4)' }, async () => {
    const chrome = await launchChromium({ webgpu: true, name: 'chromium-webgpu-todo' });
    try {
      const wb = await openWorkbench(chrome, server, { name: 'webgpu-todo' });
      await wb.runCommand('Gradient Lens: Show Panel');
      const backend = await wb.webviewText('backend', { ok: (t) => t.length > 0 && !NOT_STARTED.test(t), what: 'the engine backend badge' });
      assert.match(backend, /^webgpu\b/i);
    } finally {
      await chrome.close();
    }
  });
});
