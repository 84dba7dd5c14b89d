import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor, tensorFrom, DType } from '../engine';
export { relativeError } from './metrics';

/** The repository root, found from the compiled test's location (build/test/...). */
export const repoRoot = (() => {
  let dir = __dirname;
  while (!fs.existsSync(path.join(dir, 'package.json'))) dir = path.dirname(dir);
  return dir;
})();

/**
 * The shared test data folder (`shared/`, beside the repo in CI: `<repoRoot>/../shared`); in a git worktree
 * nested deeper it is found on the nearest ancestor that has one. null when there is none.
 */
export function sharedDir(...parts: string[]): string | null {
  for (let dir = path.dirname(repoRoot); ; dir = path.dirname(dir)) {
    const candidate = path.join(dir, 'shared', ...parts);
    if (fs.existsSync(candidate)) return candidate;
    if (path.dirname(dir) === dir) return null;
  }
}

export interface FixtureTensor {
  shape: number[];
  dtype: 'float64' | 'int64' | 'bool';
  data: string | number[];
  grad?: boolean;
}

/** Decodes a gold fixture tensor (base64 little-endian float64, or int/bool lists). */
export function decodeValues(t: FixtureTensor): Float64Array | number[] {
  if (typeof t.data === 'string') {
    const buf = Buffer.from(t.data, 'base64');
    const copy = new Uint8Array(buf.length);
    copy.set(buf);
    return new Float64Array(copy.buffer);
  }
  return t.data;
}

/** A fixture tensor as an engine tensor: floats in `floatDtype`, int64 as int32, bool as bool. */
export function fixtureTensor(t: FixtureTensor, floatDtype: DType = 'float64', requiresGrad = false): Tensor {
  const values = decodeValues(t);
  const dtype: DType = t.dtype === 'float64' ? floatDtype : t.dtype === 'int64' ? 'int32' : 'bool';
  return tensorFrom(values, t.shape, dtype, { requiresGrad: requiresGrad && t.dtype === 'float64' });
}

export function readJson<T>(...parts: string[]): T {
  return JSON.parse(fs.readFileSync(path.join(repoRoot, ...parts), 'utf8')) as T;
}

/** Largest |a - b| over all elements (Infinity on a length mismatch or NaN). */
export function maxAbsDiff(actual: ArrayLike<number>, expected: ArrayLike<number>): number {
  if (actual.length !== expected.length) return Infinity;
  let m = 0;
  for (let i = 0; i < expected.length; i++) {
    const d = Math.abs(actual[i] - expected[i]);
    if (Number.isNaN(d)) return Infinity;
    m = Math.max(m, d);
  }
  return m;
}
