// Click-to-overlay in a real VS Code (code-server + Debian Chromium, through the e2e harness): for every example
// (examples/*.py with its .onnx), the time from the click on the "Inspect gradients" CodeLens until the first
// ‖∇‖ decoration is painted, cold (a fresh window: new extension host, panel not open) and warm (re-runs with
// the panel open), and for Train N Steps the time until the first step's sparkline is painted.
//
//   node bench/click.mjs [--only=tiny_gpt,lora] [--warm=5] [--train=1|0] [--profile]
//
// Timed inside the page: a capturing mousedown listener stamps the click and a requestAnimationFrame loop
// stamps the first frame whose editor shows the decoration (~16 ms resolution), so no round trip to this
// process is counted. Needs the e2e setup (npm run e2e:setup) and a packaged extension (GL_E2E_VSIX=path
// skips `npm run package`). Writes bench/results/click.json. Not a test: nothing here asserts a speed.
import { cpSync, existsSync, mkdirSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cpus, loadavg } from 'node:os';
import { setTimeout as sleep } from 'node:timers/promises';
import { ROOT, ensureCodeServer, launchChromium, log, makeScratch, openWorkbench, packageVsix, startCodeServer, stopAllStarted } from '../test/e2e/harness.mjs';

const flag = (name, fallback) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3) ?? fallback;
const only = flag('only', '').split(',').filter(Boolean);
const warmRuns = Number(flag('warm', '5'));
const withTrain = flag('train', '1') !== '0';
// --profile: a CPU profile (Chrome DevTools Protocol) of the page, and of the webview frame when it runs in its own
// process, over the warm re-runs; summarised by script and by function into bench/results/click-profile-<example>.txt.
const profiling = process.argv.includes('--profile');

const examples = readdirSync(join(ROOT, 'examples'))
  .filter((f) => f.endsWith('.py') && !f.startsWith('_'))
  .map((f) => f.slice(0, -3))
  .filter((name) => readdirSync(join(ROOT, 'examples')).includes(`${name}.onnx`))
  .filter((name) => only.length === 0 || only.includes(name));

/**
 * In-page probe: stamps the trigger (the next mousedown, or the next Enter key) and the first frame whose editor
 * shows a decoration matching `pattern`.
 */
async function arm(page, pattern, trigger = 'mousedown') {
  await page.evaluate(({ source, trigger }) => {
    const re = new RegExp(source);
    const probe = { clickAt: null, paintedAt: null };
    window.__glProbe = probe;
    const stamp = (e) => {
      if (probe.clickAt !== null || (trigger === 'enter' && e.key !== 'Enter')) return;
      probe.clickAt = performance.now();
    };
    addEventListener(trigger === 'enter' ? 'keydown' : 'mousedown', stamp, { capture: true });
    const painted = () => {
      for (const span of document.querySelectorAll('.editor-instance .monaco-editor .view-lines span')) {
        const c = getComputedStyle(span, '::after').content;
        if (c && c !== 'none' && re.test(c)) return true;
      }
      return false;
    };
    const tick = () => {
      if (probe.clickAt !== null && painted()) {
        probe.paintedAt = performance.now();
        return;
      }
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }, { source: pattern.source, trigger });
}

async function measured(wb, what, timeout = 120_000) {
  try {
    const r = await wb.poll(() => wb.page.evaluate(() => window.__glProbe), (p) => p && p.paintedAt !== null, what, timeout, 50);
    return r.paintedAt - r.clickAt;
  } catch (err) {
    await wb.screenshot(`FAILED-click-${what}`).catch(() => {});
    throw err;
  }
}

async function clickLens(wb, text) {
  const lens = wb.editor().locator('.codelens-decoration a', { hasText: text }).first();
  await wb.waitFor(lens, `the "${text}" CodeLens`, 60_000);
  await lens.click();
}

// The first overlay the run paints: a gradient norm, or on a frozen layer "frozen · N modules" (LoRA's base: once
// the panel opens below the editor, lora.py's LoRAClassifier lines are out of view and only the frozen line shows).
const NORM = /‖∇‖\s\d|frozen\s·\s/; // \s: the overlay text may hold non-breaking spaces
const SPARK = /^"?∇ [▁▂▃▄▅▆▇█ !]+/;

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

/** Output-channel files of the extension (one per window's extension host) under the server's user-data logs. */
function outputLogs(scratch) {
  const found = [];
  const walk = (dir) => {
    if (!existsSync(dir)) return;
    for (const e of readdirSync(dir, { withFileTypes: true })) {
      if (e.isDirectory()) walk(join(dir, e.name));
      else if (/Gradient Lens\.log$/.test(e.name)) found.push(join(dir, e.name));
    }
  };
  walk(join(scratch, 'user-data', 'logs'));
  return found;
}

/** Lines the extension logged since the last call ("time to overlays ...": where the time went, per run). */
function logReader(scratch) {
  const seen = new Map();
  return () => {
    const out = [];
    for (const f of outputLogs(scratch)) {
      const lines = readFileSync(f, 'utf8').split('\n');
      out.push(...lines.slice(seen.get(f) ?? 0).filter((l) => /time to/.test(l)).map((l) => l.trim()));
      seen.set(f, lines.length - 1);
    }
    return out;
  };
}

/** Starts CPU profilers on the page and on every frame with its own CDP session (out-of-process webviews). */
async function startProfiles(page) {
  const sessions = [];
  for (const frame of [null, ...page.frames().filter((f) => f !== page.mainFrame())]) {
    try {
      const cdp = await page.context().newCDPSession(frame ?? page);
      await cdp.send('Profiler.enable');
      await cdp.send('Profiler.setSamplingInterval', { interval: 500 });
      await cdp.send('Profiler.start');
      sessions.push({ cdp, what: frame ? `frame ${frame.url().slice(0, 80)}` : 'page (workbench and same-process frames)' });
    } catch {
      // A same-process frame has no session of its own: its scripts are in the page's profile.
    }
  }
  return async () => {
    const out = [];
    for (const { cdp, what } of sessions) {
      const { profile } = await cdp.send('Profiler.stop');
      out.push(`## ${what}\n${summariseProfile(profile)}`);
      await cdp.detach().catch(() => {});
    }
    return out.join('\n\n');
  };
}

/** Self time by script (webview, workbench, extension...) and the top functions, in ms. */
function summariseProfile(profile) {
  const byId = new Map(profile.nodes.map((n) => [n.id, n]));
  const self = new Map();
  profile.samples.forEach((id, i) => self.set(id, (self.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0) / 1000));
  const byScript = new Map();
  const byFunction = new Map();
  let total = 0;
  for (const [id, ms] of self) {
    const cf = byId.get(id).callFrame;
    const script = cf.url ? cf.url.replace(/^.*\/(static|stable-[^/]+)\//, '').replace(/\?.*$/, '').slice(-70) : cf.functionName || '(native)';
    const fn = `${cf.functionName || '(anonymous)'} ${script}:${cf.lineNumber + 1}`;
    byScript.set(script, (byScript.get(script) ?? 0) + ms);
    byFunction.set(fn, (byFunction.get(fn) ?? 0) + ms);
    total += ms;
  }
  const top = (m, n) => [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([k, v]) => `  ${v.toFixed(0).padStart(6)} ms ${((100 * v) / total).toFixed(1).padStart(5)}%  ${k}`).join('\n');
  return `sampled ${total.toFixed(0)} ms\nby script:\n${top(byScript, 12)}\nby function:\n${top(byFunction, 25)}`;
}

async function main() {
  const codeServer = await ensureCodeServer();
  const vsix = await packageVsix();
  const scratch = makeScratch('click');
  const workspace = join(scratch, 'examples');
  cpSync(join(ROOT, 'examples'), workspace, { recursive: true, filter: (src) => !/__pycache__/.test(src) });
  const server = await startCodeServer({ workspace, vsix, codeServer, scratch, name: 'click', settings: { 'gradientLens.train.steps': 5 } });
  const chrome = await launchChromium({ webgpu: false, name: 'chromium-click' });
  const newLogLines = logReader(scratch);
  const results = [];
  try {
    for (const name of examples) {
      // A fresh window per example: its own extension host, so the first Inspect is cold.
      const wb = await openWorkbench(chrome, server, { name: `click-${name}` });
      // A new window of the same folder restores the last one's editor layout: the group the panel opened below
      // the editor stays (empty: the webview is not restored), and the next panel opens below it, leaving the
      // editor a dozen lines high, with the overlaid lines out of view, so no overlay was ever seen painted
      // (why a run with several examples failed on the second). Each example starts from one editor group.
      await wb.runCommand('View: Close All Editor Groups');
      await wb.openFile(`${name}.py`);
      // The user reads the file for a moment before clicking; the lens appearing means the extension is active.
      await wb.waitFor(wb.editor().locator('.codelens-decoration a', { hasText: 'Inspect gradients' }).first(), 'the Inspect CodeLens', 60_000);
      await sleep(1000);
      await arm(wb.page, NORM);
      await clickLens(wb, 'Inspect gradients');
      const cold = await measured(wb, `the first overlay of ${name}`);
      await sleep(200);
      const coldBreakdown = newLogLines();
      const warm = [];
      const warmBreakdown = [];
      const stopProfiles = profiling ? await startProfiles(wb.page) : null;
      for (let i = 0; i < warmRuns; i++) {
        await wb.runCommand('Gradient Lens: Clear Overlays');
        await wb.poll(() => wb.readDecorations(), (ds) => !ds.some((d) => NORM.test(d.after ?? '')), 'overlays to clear');
        await sleep(300);
        await arm(wb.page, NORM);
        await clickLens(wb, 'Inspect gradients');
        warm.push(await measured(wb, `overlay re-run ${i + 1} of ${name}`));
        await sleep(200);
        warmBreakdown.push(...newLogLines());
      }
      if (stopProfiles) {
        const text = await stopProfiles();
        mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
        writeFileSync(join(ROOT, 'bench', 'results', `click-profile-${name}.txt`), `${name}: ${warmRuns} warm re-runs, ${new Date().toISOString()}, load ${loadavg().map((x) => x.toFixed(1)).join(' ')}\n\n${text}\n`);
        log(`  profile of the warm runs: bench/results/click-profile-${name}.txt`);
      }
      let trainFirstStep = null;
      if (withTrain) {
        // Train N Steps from the command palette (steps come from the setting): the click is on the palette row.
        // The start is the Enter that confirms the number of steps in the command's input box.
        await arm(wb.page, SPARK, 'enter');
        await wb.runCommand('Gradient Lens: Train N Steps…', { input: 5 });
        // Not fatal: LoRA's trained lines sit below the panel, so no sparkline of it is ever in view.
        trainFirstStep = await measured(wb, `the first training sparkline of ${name}`, 30_000).catch((err) => {
          log(`  ${name}: no training sparkline seen (${err.message.split('\n')[0]})`);
          return null;
        });
        await sleep(200);
      }
      const trainBreakdown = newLogLines();
      const row = { example: name, coldMs: cold, warmMs: warm, warmMedianMs: median(warm), warmBestMs: Math.min(...warm), trainFirstStepMs: trainFirstStep, coldBreakdown, warmBreakdown, trainBreakdown };
      log(`${name}: cold ${cold.toFixed(0)} ms, warm median ${row.warmMedianMs.toFixed(0)} ms (${warm.map((w) => w.toFixed(0)).join(', ')})${trainFirstStep !== null ? `, first training step ${trainFirstStep.toFixed(0)} ms` : ''}`);
      log(`  cold: ${coldBreakdown.join(' | ')}`);
      for (const l of warmBreakdown) log(`  warm: ${l}`);
      for (const l of trainBreakdown) log(`  train: ${l}`);
      results.push(row);
      await wb.page.close();
    }
  } finally {
    await chrome.close();
    await server.stop();
    await stopAllStarted();
  }
  const table = [
    '| example | cold: click to first overlay (ms) | warm re-run, median (best) ms | Train N Steps: first step shown (ms) |',
    '|---|---|---|---|',
    ...results.map((r) => `| ${r.example} | ${r.coldMs.toFixed(0)} | ${r.warmMedianMs.toFixed(0)} (${r.warmBestMs.toFixed(0)}) | ${r.trainFirstStepMs === null ? '-' : r.trainFirstStepMs.toFixed(0)} |`),
  ].join('\n');
  console.log(`\nClick-to-overlay in code-server, ${new Date().toISOString()} (${cpus().length} cores, load ${loadavg().map((x) => x.toFixed(1)).join(' ')})\n\n${table}\n`);
  mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
  writeFileSync(join(ROOT, 'bench', 'results', 'click.json'), JSON.stringify({ date: new Date().toISOString(), load: loadavg(), results, table }, null, 2));
}

main().catch(async (err) => {
  console.error(err);
  await stopAllStarted();
  process.exit(1);
});
