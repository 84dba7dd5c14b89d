// Installs what `npm test` and `npm start` need on a fresh clone, skipping what is already there. Node built-ins only
// (it runs before node_modules exists).
//   node scripts/setup.mjs            npm packages (npm ci when node_modules is missing or older than the lock file)
//   node scripts/setup.mjs --python   also the Python test environment: a venv with CPU torch, onnx, onnxscript,
//                                     onnxruntime, transformers, timm, torchvision, tensorboard (python/requirements-test.txt)
//
// The venv lives outside the repo (see pythonEnvDir in scripts/python-env.mjs) and is reused while the requirements
// file is unchanged. Packages come from pip's configured indexes (this machine: a local mirror). Without an index that
// has torch, the Python-backed tests skip and say why, unless GRADLENS_REQUIRE_TORCH=1 (CI), which makes it an error.
import { existsSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';
import { ROOT, ensurePythonEnv } from './python-env.mjs';

function log(message) {
  console.log(`[setup] ${message}`);
}

function ensureNodeModules() {
  const marker = join(ROOT, 'node_modules', '.package-lock.json');
  const lock = join(ROOT, 'package-lock.json');
  if (existsSync(marker) && statSync(marker).mtimeMs >= statSync(lock).mtimeMs) return;
  log('installing npm packages (npm ci)');
  const started = Date.now();
  const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: ROOT, stdio: 'inherit' });
  if (r.status !== 0) throw new Error(`npm ci failed (exit ${r.status})`);
  log(`npm packages installed in ${((Date.now() - started) / 1000).toFixed(0)} s`);
}

try {
  ensureNodeModules();
  if (process.argv.includes('--python')) {
    const env = ensurePythonEnv({ log, required: process.env.GRADLENS_REQUIRE_TORCH === '1' });
    log(env.ok ? `python test environment: ${env.python} (torch ${env.torch})` : `python test environment unavailable: ${env.reason}; tests that need torch will skip`);
  }
} catch (err) {
  console.error(`[setup] ${err.message}`);
  process.exit(1);
}
