// The Python test environment (CPU torch 2.x and friends) in a cached venv outside the repo.
// Used by scripts/setup.mjs (creates it) and by tests and benchmarks (find it: test/python.ts reads the same file).
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { homedir } from 'node:os';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { spawnSync } from 'node:child_process';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '..');
export const REQUIREMENTS = join(ROOT, 'python', 'requirements-test.txt');

/** Where the venv lives: $GRADLENS_PY_ENV, else <XDG cache>/gradient-lens/python-<hash of the requirements>. */
export function pythonEnvDir() {
  if (process.env.GRADLENS_PY_ENV) return resolve(process.env.GRADLENS_PY_ENV);
  const hash = createHash('sha1').update(readFileSync(REQUIREMENTS)).digest('hex').slice(0, 10);
  return join(process.env.XDG_CACHE_HOME || join(homedir(), '.cache'), 'gradient-lens', `python-${hash}`);
}

/** Written into the venv once everything imported: { python, torch }. */
function markerPath(dir) {
  return join(dir, 'gradient-lens-ready.json');
}

function run(cmd, args, opts = {}) {
  return spawnSync(cmd, args, { encoding: 'utf8', maxBuffer: 64 << 20, ...opts });
}

/** pip index options from pip's own configuration: a local mirror is used as the index (the default one may be unreachable). */
function pipIndexArgs(python) {
  const extra = run(python, ['-m', 'pip', 'config', 'get', 'global.extra-index-url']).stdout?.trim();
  if (!extra) return [];
  const urls = extra.split(/\s+/).filter(Boolean);
  return ['--index-url', urls[0], ...urls.slice(1).flatMap((u) => ['--extra-index-url', u])];
}

/** Reads the ready marker of an existing environment, or null. */
export function readPythonEnv(dir = pythonEnvDir()) {
  try {
    const env = JSON.parse(readFileSync(markerPath(dir), 'utf8'));
    return existsSync(env.python) ? env : null;
  } catch {
    return null;
  }
}

/**
 * Creates the venv when it is missing (2-3 minutes from a local mirror, ~1 GB). Returns
 * { ok: true, python, torch } or { ok: false, reason }; throws instead when `required`.
 */
export function ensurePythonEnv({ log = console.log, required = false } = {}) {
  const dir = pythonEnvDir();
  const ready = readPythonEnv(dir);
  if (ready) return { ok: true, ...ready };
  const fail = (reason) => {
    if (required) throw new Error(`the Python test environment could not be set up: ${reason}`);
    return { ok: false, reason };
  };
  const base = process.env.GRADLENS_BASE_PYTHON || 'python3';
  if (run(base, ['--version']).status !== 0) return fail(`no ${base} on PATH`);
  log(`creating the Python test environment in ${dir} (torch CPU and friends; a few minutes, once)`);
  const started = Date.now();
  rmSync(dir, { recursive: true, force: true });
  mkdirSync(dirname(dir), { recursive: true });
  const venv = run(base, ['-m', 'venv', dir]);
  if (venv.status !== 0) return fail(`python3 -m venv failed: ${(venv.stderr || '').trim().split('\n').pop()}`);
  const python = join(dir, 'bin', 'python');
  const pip = run(python, ['-m', 'pip', 'install', '--disable-pip-version-check', '-q', ...pipIndexArgs(python), '-r', REQUIREMENTS], { stdio: ['ignore', 'inherit', 'pipe'], timeout: 20 * 60_000 });
  if (pip.status !== 0) {
    const tail = (pip.stderr || '').trim().split('\n').slice(-3).join(' | ');
    rmSync(dir, { recursive: true, force: true });
    return fail(`pip install -r python/requirements-test.txt failed: ${tail}`);
  }
  const probe = run(python, ['-c', 'import torch, onnx, onnxscript, onnxruntime; print(torch.__version__)']);
  if (probe.status !== 0) return fail(`the new venv cannot import torch: ${(probe.stderr || '').trim().split('\n').pop()}`);
  const env = { python, torch: probe.stdout.trim() };
  writeFileSync(markerPath(dir), JSON.stringify(env));
  log(`Python test environment ready in ${((Date.now() - started) / 1000).toFixed(0)} s`);
  return { ok: true, ...env };
}
