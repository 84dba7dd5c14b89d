// The two engines agree across runtimes: for each example, the extension host's engine (dist/host-engine.js in a
// worker thread of Node 24, the Node code-server's extension host runs) and the panel's engine
// (dist/engine-worker.js in a Chromium worker, fed the kernels the page would fetch) compute the same report for the
// same request, number for number (test/hostEngine.test.ts proves it within one Node; this is VS Code's pair).
import { describe, test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, ensureNode24, launchChromium, log } from './harness.mjs';

const SETTINGS = { seed: 0, batch: 8, sequenceLength: 16, loss: 'auto', backend: 'wasm', dtype: 'float32', attentionSample: 0, mode: 'train' };
const EXAMPLES = readdirSync(join(ROOT, 'examples')).filter((f) => f.endsWith('.onnx')).sort();

/** JSON that keeps NaN and ±Infinity apart (a report may hold them), without the wall-clock timings. */
const HOST_SCRIPT = `
const { Worker } = require('node:worker_threads');
const fs = require('node:fs');
const [script, model, settings] = process.argv.slice(1);
const w = new Worker(script);
w.on('message', (m) => {
  if (m.type === 'report' || m.type === 'runError') {
    const { timings, ...rest } = m.report ?? {};
    process.stdout.write(JSON.stringify({ backend: m.report?.backend, message: m.message, report: rest }, (k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)));
    process.exit(0);
  }
});
w.postMessage({ type: 'run', runId: 1, modelName: model.split('/').pop(), bytes: new Uint8Array(fs.readFileSync(model)), settings: JSON.parse(settings), watches: [], memoryBudgetMB: 2048 });
`;

describe('The extension host engine (Node 24) and the panel engine (Chromium) agree', () => {
  let chrome;
  let node24;
  before(async () => {
    const built = spawnSync(process.execPath, ['scripts/build.mjs'], { cwd: ROOT, encoding: 'utf8' });
    assert.equal(built.status, 0, built.stderr);
    node24 = (await ensureNode24()).node;
    chrome = await launchChromium({ name: 'chromium-engines' });
  }, { timeout: 5 * 60_000 });
  after(async () => chrome?.close());

  for (const example of EXAMPLES) {
    test(example, async () => {
      const model = join(ROOT, 'examples', example);
      const host = spawnSync(node24, ['-e', HOST_SCRIPT, join(ROOT, 'dist', 'host-engine.js'), model, JSON.stringify(SETTINGS)], { encoding: 'utf8', timeout: 120_000 });
      assert.equal(host.status, 0, host.stderr);
      const fromHost = JSON.parse(host.stdout);
      const page = await chrome.context.newPage();
      try {
        const fromPage = await page.evaluate(async ({ script, wasm, bytes, settings, name }) => {
          const worker = new Worker(URL.createObjectURL(new Blob([script], { type: 'text/javascript' })));
          const done = new Promise((resolve) => {
            worker.onmessage = (e) => {
              const m = e.data;
              if (m.type === 'report' || m.type === 'runError') {
                const { timings, ...rest } = m.report ?? {};
                resolve(JSON.stringify({ backend: m.report?.backend, message: m.message, report: rest }, (k, v) => (typeof v === 'number' && !Number.isFinite(v) ? String(v) : v)));
              }
            };
          });
          const kernels = Uint8Array.from(wasm).buffer;
          worker.postMessage({ type: 'probe', backend: 'wasm', wasm: kernels }, [kernels]);
          worker.postMessage({ type: 'run', runId: 1, modelName: name, bytes: Uint8Array.from(bytes), settings, watches: [], memoryBudgetMB: 2048 });
          return done;
        }, {
          script: readFileSync(join(ROOT, 'dist', 'engine-worker.js'), 'utf8'),
          // Both runtimes validate relaxed SIMD: the page would fetch this build (preferredKernelFile).
          wasm: [...readFileSync(join(ROOT, 'dist', 'kernels-relaxed.wasm'))],
          bytes: [...readFileSync(model)],
          settings: SETTINGS,
          name: example,
        });
        const fromChromium = JSON.parse(fromPage);
        assert.equal(fromHost.message, undefined, `host engine: ${fromHost.message}`);
        assert.equal(fromChromium.message, undefined, `panel engine: ${fromChromium.message}`);
        assert.equal(fromHost.backend, 'wasm-simd');
        assert.equal(fromChromium.backend, 'wasm-simd');
        assert.deepEqual(fromHost.report, fromChromium.report);
        log(`${example}: loss ${fromHost.report.loss.value} from both engines, ${fromHost.report.modules.length} modules equal`);
      } finally {
        await page.close();
      }
    }, { timeout: 3 * 60_000 });
  }
});
