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
// --trace: a Chromium performance trace of the last warm re-run (bench/results/click-trace-<example>.json, opens in
// the DevTools Performance panel), with the renderer's main-thread tasks between the click and the paint logged.
const tracing = process.argv.includes('--trace');

// The extension then logs each Inspect's wall-clock start and the moment its decorations were set (split()).
process.env.GRADIENT_LENS_CLICK_EPOCHS = '1';

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
    // Epoch stamps (Date.now) line up with the extension host's, on the same machine; long tasks say what held
    // the renderer's thread between the click and the paint.
    const probe = { clickAt: null, paintedAt: null, renderedAt: null, clickEpoch: null, paintedEpoch: null, longTasks: [] };
    window.__glProbe = probe;
    window.__glLongTasks?.disconnect();
    try {
      window.__glLongTasks = new PerformanceObserver((list) => {
        for (const e of list.getEntries()) probe.longTasks.push([Math.round(e.startTime), Math.round(e.duration)]);
      });
      window.__glLongTasks.observe({ entryTypes: ['longtask'] });
    } catch {
      // No long-task timing in this browser.
    }
    const stamp = (e) => {
      if (probe.clickAt !== null || (trigger === 'enter' && e.key !== 'Enter')) return;
      probe.clickAt = performance.now();
      probe.clickEpoch = Date.now();
    };
    addEventListener(trigger === 'enter' ? 'keydown' : 'mousedown', stamp, { capture: true });
    const painted = () => {
      for (const span of document.querySelectorAll('.editor-instance .monaco-editor .view-lines span')) {
        const c = getComputedStyle(span, '::after').content;
        if (c && c !== 'none' && re.test(c)) return true;
      }
      return false;
    };
    // The frame that first shows the decoration is seen one frame late when the probe's callback ran before the
    // editor's render in that frame, and later still when a long task runs in between: a mutation observer on the
    // editor's lines stamps the render itself (the paint follows it in the same frame).
    window.__glRendered?.disconnect();
    window.__glRendered = new MutationObserver((records) => {
      if (probe.clickAt === null || probe.renderedAt != null) return;
      if (!records.some((r) => r.target instanceof Element && r.target.closest('.view-lines'))) return;
      if (painted()) {
        probe.renderedAt = performance.now();
        window.__glRendered.disconnect();
      }
    });
    window.__glRendered.observe(document.body, { childList: true, subtree: true });
    const tick = () => {
      if (probe.clickAt !== null && painted()) {
        probe.paintedAt = performance.now();
        probe.paintedEpoch = Date.now();
        return;
      }
      requestAnimationFrame(tick);
    };
    requestAnimationFrame(tick);
  }, { source: pattern.source, trigger });
}

/** The last measured run's epoch stamps and the page's long tasks between its click and paint ("start+ms" after the click). */
let lastProbe = null;

async function measured(wb, what, timeout = 120_000) {
  try {
    const r = await wb.poll(() => wb.page.evaluate(() => window.__glProbe), (p) => p && p.paintedAt !== null, what, timeout, 50);
    const blocked = r.longTasks.filter(([start, ms]) => start + ms > r.clickAt && start < r.paintedAt).map(([start, ms]) => `${(start - r.clickAt).toFixed(0)}+${ms}`);
    lastProbe = { clickEpoch: r.clickEpoch, paintedEpoch: r.paintedEpoch, renderedMs: r.renderedAt === null ? null : r.renderedAt - r.clickAt, longTasks: blocked };
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

/**
 * Click to paint split at the extension's epoch stamps ("... [command at E1, decorations set at E2]" in its timing
 * line): VS Code before the command, the extension, VS Code after it; and the page's long tasks ("start+ms" after
 * the click).
 */
function split(probe, lines) {
  const m = lines.map((l) => /command at (\d+), decorations set at (\d+)/.exec(l)).find(Boolean);
  if (!probe) return '';
  const tasks = probe.longTasks.length ? `; long tasks ${probe.longTasks.join(' ')}` : '';
  if (!m) return tasks && ` (${tasks.slice(2)})`;
  const [command, set] = [Number(m[1]), Number(m[2])];
  const rendered = probe.renderedMs === null ? '' : `, rendered at ${probe.renderedMs.toFixed(0)}`;
  return ` (click to command ${command - probe.clickEpoch}, extension ${set - command}, set to paint ${probe.paintedEpoch - set}${rendered}${tasks})`;
}

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
  // The panel's own functions (its page runs on the workbench's thread in code-server): what the panel costs the paint.
  const panel = new Map([...byFunction].filter(([k]) => /dist\/webview\.js/.test(k)));
  return `sampled ${total.toFixed(0)} ms\nby script:\n${top(byScript, 12)}\nby function:\n${top(byFunction, 25)}\nthe panel's functions (dist/webview.js):\n${top(panel, 15)}`;
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
      const coldProbe = lastProbe;
      await sleep(200);
      const coldBreakdown = newLogLines();
      const warm = [];
      const warmProbes = [];
      const warmBreakdown = [];
      const stopProfiles = profiling ? await startProfiles(wb.page) : null;
      for (let i = 0; i < warmRuns; i++) {
        await wb.runCommand('Gradient Lens: Clear Overlays');
        await wb.poll(() => wb.readDecorations(), (ds) => !ds.some((d) => NORM.test(d.after ?? '')), 'overlays to clear');
        await sleep(300);
        await arm(wb.page, NORM);
        const traced = tracing && i === warmRuns - 1;
        if (traced) await chrome.browser.startTracing(wb.page, { categories: ['devtools.timeline', 'disabled-by-default-devtools.timeline', 'v8.execute', 'toplevel', 'blink.user_timing', 'disabled-by-default-devtools.timeline.frame'] });
        await clickLens(wb, 'Inspect gradients');
        warm.push(await measured(wb, `overlay re-run ${i + 1} of ${name}`));
        if (traced) {
          const trace = JSON.parse((await chrome.browser.stopTracing()).toString());
          mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
          writeFileSync(join(ROOT, 'bench', 'results', `click-trace-${name}.json`), JSON.stringify(trace));
          log(`  trace of the last warm run: bench/results/click-trace-${name}.json`);
        }
        warmProbes.push(lastProbe);
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
      const row = { example: name, coldMs: cold, warmMs: warm, warmMedianMs: median(warm), warmBestMs: Math.min(...warm), trainFirstStepMs: trainFirstStep, coldBreakdown, warmBreakdown, trainBreakdown, coldProbe, warmProbes };
      const rendered = warmProbes.map((p) => p?.renderedMs).filter((x) => typeof x === 'number');
      row.warmRenderedMs = rendered;
      log(`${name}: cold ${cold.toFixed(0)} ms, warm median ${row.warmMedianMs.toFixed(0)} ms (${warm.map((w) => w.toFixed(0)).join(', ')})${trainFirstStep !== null ? `, first training step ${trainFirstStep.toFixed(0)} ms` : ''}`);
      if (rendered.length) log(`  rendered (mutation observer): cold ${coldProbe?.renderedMs?.toFixed(0) ?? '-'} ms, warm median ${median(rendered).toFixed(0)} ms (${rendered.map((w) => w.toFixed(0)).join(', ')})`);
      log(`  cold: ${coldBreakdown.join(' | ')}${split(coldProbe, coldBreakdown)}`);
      warmBreakdown.forEach((l, i) => log(`  warm: ${l}${split(warmProbes[i], [l])}`));
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
