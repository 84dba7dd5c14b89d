/**
 * The Python interpreter with torch for tests (the venv scripts/setup.mjs --python builds; GRADLENS_PYTHON overrides).
 * Tests that need it call torchPython(t): null means skip, and the skip says why. With GRADLENS_REQUIRE_TORCH=1 (CI)
 * a missing environment fails the test instead of skipping it.
 */
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import * as crypto from 'node:crypto';
import { spawnSync } from 'node:child_process';
import { repoRoot } from './helpers';

export interface PythonEnv {
  python: string;
  torch: string;
}

function envDir(): string {
  if (process.env.GRADLENS_PY_ENV) return path.resolve(process.env.GRADLENS_PY_ENV);
  const hash = crypto.createHash('sha1').update(fs.readFileSync(path.join(repoRoot, 'python', 'requirements-test.txt'))).digest('hex').slice(0, 10);
  return path.join(process.env.XDG_CACHE_HOME || path.join(os.homedir(), '.cache'), 'gradient-lens', `python-${hash}`);
}

let cached: PythonEnv | null | undefined;

/** The torch environment, or null (with the reason in `pythonEnvMissing`). */
export function pythonEnv(): PythonEnv | null {
  if (cached !== undefined) return cached;
  if (process.env.GRADLENS_PYTHON) {
    const r = spawnSync(process.env.GRADLENS_PYTHON, ['-c', 'import torch; print(torch.__version__)'], { encoding: 'utf8' });
    cached = r.status === 0 ? { python: process.env.GRADLENS_PYTHON, torch: r.stdout.trim() } : null;
    return cached;
  }
  try {
    const env = JSON.parse(fs.readFileSync(path.join(envDir(), 'gradient-lens-ready.json'), 'utf8')) as PythonEnv;
    cached = fs.existsSync(env.python) ? env : null;
  } catch {
    cached = null;
  }
  return cached;
}

export const pythonEnvMissing = 'no Python test environment with torch (run `node scripts/setup.mjs --python`, or set GRADLENS_PYTHON)';

/** For test options: `{ skip }` when torch is unavailable and not required; throws when GRADLENS_REQUIRE_TORCH=1. */
export function skipWithoutTorch(): { skip: string | false } {
  if (pythonEnv()) return { skip: false };
  if (process.env.GRADLENS_REQUIRE_TORCH === '1') throw new Error(`GRADLENS_REQUIRE_TORCH=1 but ${pythonEnvMissing}`);
  return { skip: pythonEnvMissing };
}
