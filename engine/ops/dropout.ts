import { Tensor } from '../tensor';
import { record } from '../autograd';
import { binaryK } from '../backend/dispatch';
import { allocateFloat } from '../dtype';
import { Rng } from '../random';
import { Shape, sizeOf } from '../shape';
import { floatDtype } from './util';

export interface DropoutOptions {
  /** Drop only in training (default true, like torch.nn.functional.dropout); false returns x unchanged. */
  training?: boolean;
  /** Draw the mask from a fresh Rng(seed): the same seed gives the same mask. */
  seed?: number;
  /** Draw the mask from this generator (advancing it), so successive calls get different masks. */
  rng?: Rng;
}

/** Keep masks of dropout outputs, for dropoutMaskOf (weak: they go with the output). */
const masks = new WeakMap<Tensor, Tensor>();

/** Used when neither a seed nor an rng is given: a fixed-seed stream, so a run is reproducible. */
const defaultRng = new Rng(0x5eed);

function checkP(p: number): void {
  if (typeof p !== 'number' || !(p >= 0 && p <= 1)) {
    throw new RangeError(`dropout: probability has to be between 0 and 1, got ${p}`);
  }
}

/**
 * The keep mask dropout draws for `shape` (bool tensor, 1 = kept): element i is kept when the i-th
 * uniform draw is >= p, so each is kept with probability 1 - p. `source` is a seed (fresh Rng) or an
 * Rng to advance. dropout(x, p, { seed }) uses exactly dropoutMask(x.shape, p, seed).
 */
export function dropoutMask(shape: Shape, p: number, source: number | Rng = defaultRng): Tensor {
  checkP(p);
  const rng = typeof source === 'number' ? new Rng(source) : source;
  const keep = new Uint8Array(sizeOf(shape));
  for (let i = 0; i < keep.length; i++) keep[i] = rng.uniform() >= p ? 1 : 0;
  return new Tensor(keep, shape);
}

/**
 * Inverted dropout (torch.nn.functional.dropout): each element is kept with probability 1 - p and
 * scaled by 1 / (1 - p), else zeroed. Eval mode or p == 0 returns x itself; p == 1 gives zeros.
 * Explicit VJP: g * mask * scale (the same saved factors). The keep mask used is exposed on the
 * result as `dropoutMaskOf(out)`.
 */
export function dropout(x: Tensor, p: number, options: DropoutOptions = {}): Tensor {
  checkP(p);
  const dtype = floatDtype('dropout', x);
  const { training = true, seed, rng } = options;
  if (seed !== undefined && rng !== undefined) throw new TypeError('dropout: pass either seed or rng, not both');
  if (!training || p === 0) return x;
  const keep = dropoutMask(x.shape, p, rng ?? (seed !== undefined ? seed : defaultRng));
  const scale = p === 1 ? 0 : 1 / (1 - p);
  const factors = allocateFloat(dtype, x.size);
  for (let i = 0; i < factors.length; i++) factors[i] = keep.data[i] ? scale : 0;
  // The mask comes from the host Rng (the same on every backend); the factors go to the device once.
  const f = new Tensor(factors, x.shape);
  const out = binaryK('mul', x, f, 0, 'dropout');
  masks.set(out, keep);
  return record('dropout', [x], out, (g) => [binaryK('mul', g, f, 0, 'dropout')]);
}

/** The keep mask (bool, 1 = kept) a dropout call used for its output, or null if `out` did not come from dropout. */
export function dropoutMaskOf(out: Tensor): Tensor | null {
  return masks.get(out) ?? null;
}
