// WebGPU kernel tests in headless Chromium (SwiftShader adapter), reported through Node's test runner.
//
//   npm run test:webgpu            (= node --test --test-reporter=spec test/webgpu/webgpu.browser.test.mjs)
//
// 1. bundles test/webgpu/page.ts (kernels + the TypeScript reference backend) with esbuild, in memory;
// 2. serves it on 127.0.0.1 (random port) from an http server started and closed here;
// 3. starts /usr/lib/chromium/chromium --headless --enable-unsafe-webgpu (own process group, scratch
//    profile/XDG/TMPDIR) and drives it over CDP with playwright-core;
// 4. runs every kernel against the reference in the page and turns the page's report into one
//    node:test test per kernel (plus adapter, shader compilation, timings and the matmul benchmark).
//
// Every wait is bounded; the browser's process group is killed by its PID in `finally` and on exit.
//
// Environment:
//   GL_WEBGPU_CHROMIUM     browser binary (default /usr/lib/chromium/chromium)
//   GL_WEBGPU_TIMEOUT_MS   bound for the in-page run (default 600000)
//   GL_WEBGPU_NO_FLAG=1    launch without --enable-unsafe-webgpu (shows the "no adapter" report)
//   GL_WEBGPU_BENCH=0      skip kernel timings and the 512^3 matmul benchmark
//   GL_WEBGPU_REPORT=path  also write the page's JSON report there
//   GL_WEBGPU_ONLY=a,b     run only these kernels (e.g. matmul,softmax); the other kernel tests are skipped.
//                          'models' selects the model tests (inspect fixture models on WebGPU vs the reference)

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';
import { chromiumFlags } from '../chromium-flags.mjs';

const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
const CHROMIUM = process.env.GL_WEBGPU_CHROMIUM || '/usr/lib/chromium/chromium';
const RUN_TIMEOUT_MS = Number(process.env.GL_WEBGPU_TIMEOUT_MS || 600_000);
const STEP_TIMEOUT_MS = 30_000;
const WITH_FLAG = process.env.GL_WEBGPU_NO_FLAG !== '1';
const BENCH = process.env.GL_WEBGPU_BENCH !== '0';
const TOLERANCE = 1e-4;
const ONLY = (process.env.GL_WEBGPU_ONLY || '').split(',').map((s) => s.trim()).filter(Boolean);

/** Kernels the page must report on; each becomes one test. */
const KERNELS = [
  'device', 'unary', 'binary', 'where', 'reduce', 'argReduce', 'matmul', 'strided', 'stridedScatterAdd', 'concat',
  'softmax', 'softmaxBackward', 'layerNorm', 'layerNormBackward', 'im2col', 'col2im', 'gather', 'scatterAdd',
  'maxPool2d', 'maxPool2dBackward', 'avgPool2d', 'avgPool2dBackward',
];

/**
 * Models inspected on the WebGPU device backend and on the reference backend (float32 both): loss and
 * every parameter gradient must agree. Served from the repository by the test's http server.
 */
const MODELS = [
  { name: 'mlp_sigmoid_op13_loss', file: 'test/fixtures/onnx/mlp_sigmoid_op13_loss.onnx' },
  { name: 'mlp_residual_op17_loss', file: 'test/fixtures/onnx/mlp_residual_op17_loss.onnx' },
  { name: 'cnn_op13', file: 'test/fixtures/onnx/cnn_op13.onnx' },
  { name: 'gpt_op13_loss', file: 'test/fixtures/onnx/gpt_op13_loss.onnx' },
  { name: 'lora_op14_loss', file: 'test/fixtures/onnx/lora_op14_loss.onnx' },
  { name: 'examples/healthy_mlp', file: 'examples/healthy_mlp.onnx', options: { batch: 8 } },
  { name: 'examples/vanishing_mlp', file: 'examples/vanishing_mlp.onnx', options: { batch: 8 } },
  { name: 'examples/lora', file: 'examples/lora.onnx', options: { batch: 8 } },
  { name: 'examples/small_cnn', file: 'examples/small_cnn.onnx', options: { batch: 4 } },
  { name: 'examples/tiny_gpt', file: 'examples/tiny_gpt.onnx', options: { batch: 2, sequenceLength: 16 } },
  // Ops added for real architectures (3-D conv/pool/ConvTranspose; Resize; LRN, Sin, LpPool, DepthToSpace,
  // Einsum, RotaryEmbedding, Attention, CumSum, Atan): every kernel on the device, no host fallback.
  { name: 'video_dynamo', file: 'test/fixtures/onnx/video_dynamo.onnx' },
  { name: 'interp_dynamo', file: 'test/fixtures/onnx/interp_dynamo.onnx' },
  { name: 'new_ops_op23', file: 'test/fixtures/onnx/new_ops_op23.onnx' },
  // STFT and rfft / irfft (DFT) as matmuls with constant bases (test/gold/export_spectral.py).
  { name: 'spectro_dynamo', file: 'test/fixtures/onnx/spectro_dynamo.onnx' },
];
const RUN_MODELS = !ONLY.length || ONLY.includes('models');
/** The op gold cases (PyTorch) on the WebGPU backend: 'ops' in GL_WEBGPU_ONLY. */
const OPS_FILE = 'test/fixtures/ops.json';
const RUN_OPS = !ONLY.length || ONLY.includes('ops');


const log = (...a) => console.error('[webgpu]', ...a);

function withTimeout(promise, ms, what) {
  let timer;
  return Promise.race([
    promise,
    new Promise((_, reject) => {
      timer = setTimeout(() => reject(new Error(`timed out after ${ms} ms waiting for ${what}`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

// ---------------------------------------------------------------- processes we start

let browserChild = null;

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
  } catch {
    try {
      process.kill(pid, signal);
    } catch {
      /* already gone */
    }
  }
}

async function stopBrowser() {
  const child = browserChild;
  if (!child) return;
  browserChild = null;
  if (child.exitCode === null && child.signalCode === null) {
    const exited = new Promise((r) => child.once('exit', r));
    killGroup(child.pid, 'SIGTERM');
    await Promise.race([exited, sleep(5000)]);
  }
  killGroup(child.pid, 'SIGKILL'); // also any helper process left in its group
}

process.once('exit', () => {
  if (browserChild) killGroup(browserChild.pid, 'SIGKILL');
});

// ---------------------------------------------------------------- steps

async function bundlePage() {
  const esbuild = (await import('esbuild')).default;
  const result = await esbuild.build({
    entryPoints: [join(ROOT, 'test/webgpu/page.ts')],
    bundle: true,
    write: false,
    format: 'iife',
    platform: 'browser',
    target: 'es2022',
    sourcemap: 'inline',
    logLevel: 'silent',
    // test/helpers.ts (shared with the Node tests) imports node:fs/node:path; the page only uses its pure functions.
    define: { __dirname: '"/"' },
    plugins: [{
      name: 'node-stubs',
      setup(build) {
        build.onResolve({ filter: /^node:(fs|path)$/ }, (args) => ({ path: args.path, namespace: 'node-stub' }));
        build.onLoad({ filter: /.*/, namespace: 'node-stub' }, () => ({
          contents: 'export const existsSync = () => true; export const readFileSync = () => { throw new Error("no fs in the browser"); }; export const join = (...p) => p.join("/"); export const dirname = (p) => p;',
          loader: 'js',
        }));
      },
    }],
  });
  return result.outputFiles[0].text;
}

async function serve(bundle) {
  const html = '<!doctype html><meta charset="utf-8"><title>Gradient Lens WebGPU kernels</title><link rel="icon" href="data:,"><script src="/page.js"></script><body>WebGPU kernel tests</body>';
  const server = createServer((req, res) => {
    if (req.url === '/' || req.url === '/index.html') {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(html);
    } else if (req.url?.startsWith('/files/') && [...MODELS.map((m) => m.file), OPS_FILE].some((f) => `/files/${f}` === req.url)) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'cache-control': 'no-store' });
      res.end(readFileSync(join(ROOT, req.url.slice('/files/'.length))));
    } else if (req.url === '/page.js') {
      res.writeHead(200, { 'content-type': 'text/javascript; charset=utf-8', 'cache-control': 'no-store' });
      res.end(bundle);
    } else {
      res.writeHead(404).end();
    }
  });
  await withTimeout(new Promise((r, j) => server.once('error', j).listen(0, '127.0.0.1', r)), STEP_TIMEOUT_MS, 'http server');
  return server;
}

async function launchChromium(scratch) {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM} (apt-get install -y chromium, or set GL_WEBGPU_CHROMIUM)`);
  const args = [...chromiumFlags({ profile: join(scratch, 'profile'), webgpu: WITH_FLAG }), 'about:blank'];
  const env = { ...process.env, HOME: scratch, TMPDIR: scratch, XDG_CONFIG_HOME: join(scratch, 'config'), XDG_DATA_HOME: join(scratch, 'data'), XDG_CACHE_HOME: join(scratch, 'cache') };
  const child = spawn(CHROMIUM, args, { env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
  browserChild = child;
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  child.stderr.on('data', (d) => (out += d));
  const started = Date.now();
  for (;;) {
    const m = /DevTools listening on (ws:\/\/\S+)/.exec(out);
    if (m) return { ws: m[1], pid: child.pid, output: () => out };
    if (child.exitCode !== null || child.signalCode !== null) throw new Error(`Chromium exited (${child.signalCode ?? child.exitCode}) before DevTools was ready:\n${out.slice(-2000)}`);
    if (Date.now() - started > STEP_TIMEOUT_MS) throw new Error(`timed out after ${STEP_TIMEOUT_MS} ms waiting for Chromium's DevTools endpoint:\n${out.slice(-2000)}`);
    await sleep(100);
  }
}

async function runInBrowser() {
  const t0 = Date.now();
  const bundle = await withTimeout(bundlePage(), 60_000, 'esbuild bundle of test/webgpu/page.ts');
  log(`bundled page (${(bundle.length / 1024).toFixed(0)} KiB) in ${Date.now() - t0} ms`);
  const scratch = mkdtempSync(join(tmpdir(), 'gl-webgpu-'));
  let server = null;
  let browser = null;
  const pageErrors = [];
  try {
    server = await serve(bundle);
    const url = `http://127.0.0.1:${server.address().port}/`;
    const { chromium } = await import('playwright-core');
    const launched = await launchChromium(scratch);
    log(`chromium pid ${launched.pid}${WITH_FLAG ? ' with --enable-unsafe-webgpu' : ' WITHOUT --enable-unsafe-webgpu'}`);
    browser = await chromium.connectOverCDP(launched.ws, { timeout: STEP_TIMEOUT_MS });
    const context = browser.contexts()[0] ?? (await browser.newContext());
    const page = await withTimeout(context.newPage(), STEP_TIMEOUT_MS, 'a new page');
    page.setDefaultTimeout(STEP_TIMEOUT_MS);
    page.on('pageerror', (e) => pageErrors.push(String(e)));
    page.on('console', (m) => {
      if (m.type() === 'error' || m.type() === 'warning') pageErrors.push(`console.${m.type()}: ${m.text()}`);
    });
    await page.goto(url, { timeout: STEP_TIMEOUT_MS, waitUntil: 'load' });
    await page.waitForFunction(() => typeof globalThis.__runWebGpuTests === 'function', null, { timeout: STEP_TIMEOUT_MS });
    const t1 = Date.now();
    const report = await withTimeout(
      page.evaluate((opts) => globalThis.__runWebGpuTests(opts), { bench: BENCH, timing: BENCH, only: ONLY }),
      RUN_TIMEOUT_MS,
      'the in-page kernel run',
    );
    log(`page run took ${((Date.now() - t1) / 1000).toFixed(1)} s`);
    let models = null;
    if (RUN_MODELS) {
      const t2 = Date.now();
      models = await withTimeout(
        page.evaluate((specs) => globalThis.__runWebGpuModels(specs), MODELS.map((m) => ({ name: m.name, url: `/files/${m.file}`, options: m.options }))),
        RUN_TIMEOUT_MS,
        'the in-page model run',
      );
      log(`model run took ${((Date.now() - t2) / 1000).toFixed(1)} s`);
    }
    let ops = null;
    if (RUN_OPS) {
      const t3 = Date.now();
      ops = await withTimeout(page.evaluate((url) => globalThis.__runWebGpuOps(url), `/files/${OPS_FILE}`), RUN_TIMEOUT_MS, 'the in-page op run');
      log(`op run took ${((Date.now() - t3) / 1000).toFixed(1)} s`);
    }
    return { report, models, ops, pageErrors };
  } finally {
    if (browser) await withTimeout(browser.close(), 5000, 'browser.close()').catch(() => {});
    await stopBrowser();
    if (server) await withTimeout(new Promise((r) => server.close(r)), 5000, 'http server close').catch(() => {});
    rmSync(scratch, { recursive: true, force: true });
  }
}

// ---------------------------------------------------------------- run, then one test per kernel

let report = null;
let models = null;
let ops = null;
let setupError = null;
let pageErrors = [];
try {
  ({ report, models, ops, pageErrors } = await runInBrowser());
  if (process.env.GL_WEBGPU_REPORT) writeFileSync(process.env.GL_WEBGPU_REPORT, JSON.stringify({ ...report, models, ops }, null, 2));
} catch (e) {
  setupError = e;
}

const fmt = (x) => (x === Infinity ? 'inf' : x === 0 ? '0' : x.toExponential(2));

test('browser run (bundle, http server, Chromium, page)', () => {
  if (setupError) throw setupError;
  assert.ok(report, 'no report from the page');
});

test('WebGPU adapter', (t) => {
  if (!report) return t.skip('no report');
  t.diagnostic(report.reason);
  t.diagnostic(report.userAgent);
  assert.ok(report.adapter, `no WebGPU adapter in the page: ${report.reason}`);
});

test('every WGSL shader compiles', (t) => {
  if (!report?.adapter) return t.skip('no adapter');
  assert.deepEqual(report.compileErrors, []);
});

for (const kernel of KERNELS) {
  test(`kernel ${kernel} matches the reference (rel. err <= ${TOLERANCE})`, (t) => {
    if (!report?.adapter) return t.skip('no adapter');
    if (ONLY.length && !ONLY.includes(kernel)) return t.skip('not in GL_WEBGPU_ONLY');
    const cases = report.cases.filter((c) => c.kernel === kernel);
    assert.ok(cases.length > 0, `the page ran no cases for ${kernel}`);
    const worst = Math.max(...cases.map((c) => c.maxRelErr));
    const worstElem = Math.max(...cases.map((c) => c.maxElemErr));
    t.diagnostic(`${cases.length} cases, max relative error ${fmt(worst)} (max elementwise ${fmt(worstElem)})`);
    for (const tm of report.timings.filter((x) => x.kernel === kernel)) t.diagnostic(`time ${tm.what}: ${tm.msPerCall.toFixed(3)} ms/call`);
    const failed = cases.filter((c) => !c.ok);
    for (const c of failed) t.diagnostic(`FAIL ${c.name}: relErr ${fmt(c.maxRelErr)} elemErr ${fmt(c.maxElemErr)} absErr ${fmt(c.maxAbsErr)} mismatches ${c.mismatches}${c.error ? ` (${c.error})` : ''}`);
    assert.equal(failed.length, 0, `${failed.length} of ${cases.length} ${kernel} cases failed: ${failed.map((c) => c.name).join('; ')}`);
  });
}

for (const spec of MODELS) {
  test(`model ${spec.name}: inspected entirely on WebGPU, loss and parameter gradients match the reference (rel. err <= ${TOLERANCE})`, (t) => {
    if (!report?.adapter) return t.skip('no adapter');
    if (!RUN_MODELS) return t.skip('not in GL_WEBGPU_ONLY');
    const r = models?.results.find((x) => x.name === spec.name);
    assert.ok(r, `the page did not run ${spec.name}`);
    assert.ok(r.ok, `${spec.name} failed on WebGPU: ${r.error}`);
    t.diagnostic(`backend ${r.backend}; kernels on device ${r.kernels.device}, folded on host ${r.kernels.folded}, float64 on host ${r.kernels.host}`);
    t.diagnostic(`loss ${r.loss.webgpu} vs ${r.loss.reference} (rel. err ${fmt(r.loss.relErr)}); ${r.parameters.length} parameter gradients, max rel. err ${fmt(r.maxRelErr)}; module grad norms max rel. diff ${fmt(r.maxModuleGradNormRelErr)}`);
    t.diagnostic(`time: webgpu ${r.ms.webgpu.toFixed(0)} ms (warm ${r.ms.webgpuWarm.toFixed(0)} ms), reference ${r.ms.reference.toFixed(0)} ms`);
    const zeros = r.parameters.filter((p) => p.structuralZero);
    if (zeros.length) t.diagnostic(`gradients below 1e-6 of the largest (compared to it when their own rel. err is above tolerance): ${zeros.map((p) => `${p.name} rel ${fmt(p.relErr)} vs largest ${fmt(p.absErrVsScale)}`).join(', ')}`);
    assert.equal(r.backend, 'webgpu');
    assert.equal(r.kernels.host, 0, 'every float32 kernel ran on the device');
    assert.ok(r.kernels.device > 0, 'kernels ran on the device');
    assert.ok(r.parameters.length > 0, 'the model has trainable parameters');
    assert.ok(r.loss.relErr <= TOLERANCE, `loss ${r.loss.webgpu} vs reference ${r.loss.reference}`);
    for (const p of r.parameters) {
      // A gradient that is rounding noise of a structural zero (e.g. a key bias under softmax) has no
      // meaningful relative error; it must then be tiny against the model's largest gradient.
      const ok = p.relErr <= TOLERANCE || (p.structuralZero && p.absErrVsScale <= TOLERANCE);
      assert.ok(ok, `${p.name}: gradient rel. err ${p.relErr} (reference norm ${p.refNorm}, error vs largest ${p.absErrVsScale})`);
    }
    assert.ok(r.maxModuleGradNormRelErr <= TOLERANCE, `module gradient norms differ by ${r.maxModuleGradNormRelErr}`);
    assert.deepEqual(r.firstNonFinite[0], r.firstNonFinite[1], 'same first non-finite value');
  });
}

test(`op gold cases (PyTorch) on the WebGPU backend: outputs and gradients within ${TOLERANCE}, no float32 kernel on the host`, (t) => {
  if (!report?.adapter) return t.skip('no adapter');
  if (!RUN_OPS) return t.skip('not in GL_WEBGPU_ONLY');
  assert.ok(ops?.results.length > 100, 'the page ran the op cases');
  const results = ops.results;
  t.diagnostic(`${results.length} cases, max rel. err ${fmt(Math.max(...results.map((r) => r.maxRelErr)))}`);
  t.diagnostic(`views only (no kernel ran): ${results.filter((r) => r.kernels.device === 0).map((r) => r.name).join(', ')}`);
  const failed = results.filter((r) => !r.ok);
  for (const r of failed) t.diagnostic(`FAIL ${r.name}: ${r.error ?? `rel. err ${fmt(r.maxRelErr)}`}`);
  assert.deepEqual(failed.map((r) => r.name), []);
  const onHost = results.filter((r) => r.kernels.host > 0);
  assert.deepEqual(onHost.map((r) => `${r.name} (${JSON.stringify(r.kernels)})`), [], 'every case ran its kernels on the device');
});

test('host reads of device values fail loudly (TensorOnDeviceError) on the WebGPU backend; clamp on device values', (t) => {
  if (!report?.adapter) return t.skip('no adapter');
  if (!RUN_OPS) return t.skip('not in GL_WEBGPU_ONLY');
  assert.deepEqual(ops.loudFailureProblems, []);
});

test('matmul 512x512x512 throughput (informational)', (t) => {
  if (!report?.adapter) return t.skip('no adapter');
  if (!report.matmulBench) return t.skip('benchmark disabled (GL_WEBGPU_BENCH=0)');
  const b = report.matmulBench;
  t.diagnostic(`${b.m}x${b.k}x${b.n}: ${b.msPerCall.toFixed(1)} ms/call, ${b.gflops.toFixed(2)} GFLOP/s over ${b.reps} reps on ${report.reason}; rel. err ${fmt(b.maxRelErr)} (elementwise ${fmt(b.maxElemErr)})`);
  assert.ok(b.maxRelErr <= TOLERANCE, `512^3 matmul relative error ${b.maxRelErr}`);
});

test('no page errors', (t) => {
  if (!report) return t.skip('no report');
  for (const e of pageErrors) t.diagnostic(e);
  assert.deepEqual(pageErrors.filter((e) => !/console\.warning/.test(e)), []);
});

if (report) {
  // A compact summary for humans, after the runner's own output.
  const lines = [`WebGPU kernels: ${report.reason}; page run ${(report.totalMs / 1000).toFixed(1)} s`];
  for (const kernel of KERNELS) {
    const cases = report.cases.filter((c) => c.kernel === kernel);
    if (cases.length === 0) continue;
    const worst = cases.length ? Math.max(...cases.map((c) => c.maxRelErr)) : NaN;
    const worstElem = cases.length ? Math.max(...cases.map((c) => c.maxElemErr)) : NaN;
    const times = report.timings.filter((x) => x.kernel === kernel).map((x) => `${x.what} ${x.msPerCall.toFixed(2)} ms`);
    lines.push(`  ${kernel.padEnd(18)} ${String(cases.filter((c) => c.ok).length).padStart(3)}/${String(cases.length).padEnd(3)} pass  rel err ${fmt(worst).padEnd(8)} elementwise ${fmt(worstElem).padEnd(8)} ${times.join('; ')}`);
  }
  if (report.matmulBench) lines.push(`  matmul 512^3: ${report.matmulBench.gflops.toFixed(2)} GFLOP/s (${report.matmulBench.msPerCall.toFixed(1)} ms)`);
  process.on('beforeExit', () => console.log(lines.join('\n')));
}
