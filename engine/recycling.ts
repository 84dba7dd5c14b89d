/**
 * Recycled kernel output arrays: the arrays a training step's kernels return are reused by the next step
 * instead of being left to the garbage collector (V8 collects external memory only past its own thresholds, so
 * six steps of a small transformer held 2-4x the memory one step needs, and the copies and collections cost
 * about a fifth of a step).
 *
 * Only inside `recycling(fn)`, the explicit scope of one step, and only arrays nothing outside the engine can
 * still see. At the scope's exit an output array goes back to the free list when all of these hold:
 *   - a backend handed it out in this scope (`outputArray`) and a kernel wrapped it in its output tensor
 *     (`claimOutput`, dispatch.ts): a raw array some other caller got from a backend is never reused;
 *   - it was never *kept*: read through the public `Tensor.data` (a caller may hold the array itself), or held by
 *     a tensor handed to a caller (`keepTensor`: run outputs, the loss, `.grad` of leaves and retained values,
 *     hook and onValue arguments, anything `fn` returns);
 * and every tensor made over it in this scope (views, reshapes and detached copies share the array) is then
 * revoked: reading it throws TensorReleasedError naming the tensor, so a stale reference can never read another
 * step's numbers. Kernels read their operands through `readTransient` (dispatch.ts), which keeps nothing.
 *
 * The free list is keyed by exact length (a training loop repeats its sizes) and holds only what the last scope
 * released: whatever the next scope does not reuse is dropped, so between steps it holds at most one step's
 * outputs. `dropRecycledArrays()` empties it. Device (WebGPU) buffers have their own run scope (deviceScope).
 */
import type { Tensor } from './tensor';

interface Claim {
  /** Every tensor made over the array in this scope (the kernel's output first), and later while carried. */
  readonly holders: Tensor[];
  kept: boolean;
  /** Leaves whose `.grad` it became (keepGrad): carried into the next scope instead of kept for good. */
  gradOf: Set<Tensor> | null;
}

class Scope {
  /** Calls of recycling / recyclingAsync running in this scope: it closes when the last one returns. */
  participants = 0;
  /** Arrays handed out by outputArray() in this scope, fresh or recycled. */
  readonly issued = new Set<Float32Array>();
  /** Bytes this scope allocated fresh (not from the free list). */
  freshBytes = 0;
  /** Issued arrays a kernel wrapped in its output tensor, in wrapping order. */
  readonly claims = new Map<Float32Array, Claim>();
}

let scope: Scope | null = null;
let free = new Map<number, Float32Array[]>();
/** Bytes in `free` when the last scope closed. */
let freeBytes = 0;
/**
 * Leaf gradients of the last scope, still tracked (holders, reads through .data) until the next scope ends:
 * `zeroGrad()` inside that scope hands the array back (gradients are a step's largest kept outputs: the weight
 * gradients of ViT-Tiny are 22 MB a step). What the next scope did not release is kept for good.
 */
let carried = new Map<Float32Array, Claim>();
/** Turns recycling off (the scopes still run): for A/B measurements and tests that compare both ways. */
let enabled = true;

/** Bytes of output arrays since the last reset: made fresh, reused from the free list, released and kept at scope exits. */
const counts = { fresh: 0, reused: 0, released: 0, kept: 0, unclaimed: 0, dropped: 0 };

export function recyclingCounts(reset = false): { fresh: number; reused: number; released: number; kept: number; unclaimed: number; dropped: number } {
  const c = { ...counts };
  if (reset) counts.fresh = counts.reused = counts.released = counts.kept = counts.unclaimed = counts.dropped = 0;
  return c;
}

/** Turns recycling on or off for later scopes (default on); returns the previous setting. */
export function setRecycling(on: boolean): boolean {
  const was = enabled;
  enabled = on;
  if (!on) dropRecycledArrays();
  return was;
}

/** True inside a recycling scope. */
export function recyclingActive(): boolean {
  return scope !== null;
}

/** True when a read through Tensor.data must be noted (inside a scope, or while leaf gradients are carried). */
export function recyclingTracks(): boolean {
  return scope !== null || carried.size > 0;
}

/**
 * Runs `fn` as one step whose kernel outputs may reuse the previous step's arrays and are themselves reused by
 * the next step (see the module comment). Read what you need inside `fn`, or return it: tensors `fn` returns
 * (also inside arrays, Maps, Sets and object literals) stay valid. A call made while a scope is open (nested, or
 * an asynchronous step still running) joins that scope, which closes when the last call in it returns.
 * Tensors made inside and neither kept nor read through `.data` throw TensorReleasedError afterwards.
 */
export function recycling<T>(fn: () => T): T {
  const s = enter();
  if (!s) return fn();
  try {
    const result = fn();
    keepTensors(result);
    return result;
  } finally {
    leave(s);
  }
}

/**
 * `recycling` for an asynchronous step (the inspector awaits device reads). Code that runs while it awaits
 * allocates in the same scope; a step started meanwhile joins it, and the scope closes only when every step in
 * it has returned, so no step's values are released under it.
 */
export async function recyclingAsync<T>(fn: () => Promise<T>): Promise<T> {
  const s = enter();
  if (!s) return fn();
  try {
    const result = await fn();
    keepTensors(result);
    return result;
  } finally {
    leave(s);
  }
}

function enter(): Scope | null {
  if (!enabled && !scope) return null;
  const s = (scope ??= new Scope());
  s.participants++;
  return s;
}

function leave(s: Scope): void {
  if (--s.participants > 0) return;
  if (scope === s) scope = null;
  close(s);
}

/**
 * Empties the free list (its arrays become garbage) and stops tracking carried gradients: for a caller that is
 * done stepping and wants the memory back (the free list otherwise holds one step's outputs until the next step).
 */
export function dropRecycledArrays(): void {
  dropFree();
  carried = new Map();
}

function dropFree(): void {
  for (const list of free.values()) for (const a of list) counts.dropped += a.length * 4;
  free = new Map();
  freeBytes = 0;
}

/** A Float32Array of `n` elements for a kernel's output: from the free list inside a scope, else fresh. Its contents are arbitrary. */
export function outputArray(n: number): Float32Array {
  const s = scope;
  if (!s) return new Float32Array(n);
  const list = free.get(n);
  let out = list?.pop();
  if (out) counts.reused += n * 4;
  else {
    out = new Float32Array(n);
    counts.fresh += n * 4;
    s.freshBytes += n * 4;
    // A step of another model (or other shapes) reuses little: once it has allocated half the free list's bytes
    // afresh, drop the rest instead of holding both (peak memory stays within 1.5x of one step's outputs).
    if (freeBytes > 0 && s.freshBytes * 2 > freeBytes) dropFree();
  }
  s.issued.add(out);
  return out;
}

/** Marks `data`, which a kernel just returned, as owned by the output tensor about to be made over it (dispatch.ts). */
export function claimOutput(data: ArrayLike<number>): void {
  const s = scope;
  if (!s || !(data instanceof Float32Array) || !s.issued.has(data) || s.claims.has(data)) return;
  s.claims.set(data, { holders: [], kept: false, gradOf: null });
}

function claimOf(data: ArrayLike<number>): Claim | undefined {
  return scope?.claims.get(data as Float32Array) ?? (carried.size ? carried.get(data as Float32Array) : undefined);
}

/** Called by the Tensor constructor (and wherever a tensor takes host values): `t` now holds `data`. */
export function noteHolder(t: Tensor, data: ArrayLike<number>): void {
  const c = claimOf(data);
  if (c) c.holders.push(t);
}

/** The array was handed to code outside the engine (Tensor.data): never reuse it. */
export function keepArray(data: ArrayLike<number>): void {
  const c = claimOf(data);
  if (c) c.kept = true;
}

/**
 * `grad` became the `.grad` of leaf `leaf` (autograd.backward): it stays valid after the scope like a kept tensor,
 * but once every leaf it is the gradient of has dropped it through zeroGrad() inside the next scope, and nothing
 * read it through `.data` meanwhile, its array is reused (releaseGrad).
 */
export function keepGrad(leaf: Tensor, grad: Tensor): void {
  if (!scope || !grad.hasHostData) return;
  const c = scope.claims.get(grad.hostValues() as Float32Array);
  if (c) (c.gradOf ??= new Set()).add(leaf);
}

/** `leaf.zeroGrad()` dropped `grad`: inside a scope, its array goes to the free list when no other leaf holds it. */
export function releaseGrad(leaf: Tensor, grad: Tensor): void {
  if (!scope || carried.size === 0 || !grad.hasHostData) return;
  const data = grad.hostValues() as Float32Array;
  const c = carried.get(data);
  if (!c || c.kept || !c.gradOf?.has(leaf)) return;
  c.gradOf.delete(leaf);
  if (c.gradOf.size > 0) return;
  carried.delete(data);
  release(data, c, free);
}

function release(data: Float32Array, c: Claim, into: Map<number, Float32Array[]>): void {
  for (const t of c.holders) t.revokeIfHolding(data);
  let list = into.get(data.length);
  if (!list) into.set(data.length, (list = []));
  list.push(data);
  counts.released += data.length * 4;
}

/** `t` is handed to a caller: its values stay valid after the scope (a tensor without host values is skipped). */
export function keepTensor(t: Tensor | null | undefined): void {
  if (scope && t && t.hasHostData) keepArray(t.data);
}

/** keepTensor on every tensor inside `value` (arrays, Maps, Sets and object literals, any depth). */
export function keepTensors(value: unknown): void {
  if (!scope) return;
  const seen = new Set<unknown>();
  const walk = (v: unknown): void => {
    if (v === null || typeof v !== 'object' || seen.has(v) || ArrayBuffer.isView(v)) return;
    seen.add(v);
    if (isTensor(v)) {
      keepTensor(v);
      return;
    }
    if (v instanceof Map) v.forEach((x) => walk(x));
    else if (v instanceof Set || Array.isArray(v)) for (const x of v) walk(x);
    else if (isPlain(v)) for (const x of Object.values(v)) walk(x);
  };
  walk(value);
}

/** Callbacks (onValue, gradient hooks) marked as reading their tensor at once and keeping no reference to it. */
const transientCallbacks = new WeakSet<object>();

/** Marks `fn` as reading its tensor arguments during the call only: the engine then does not keep them for it. */
export function transientCallback<F extends object>(fn: F): F {
  transientCallbacks.add(fn);
  return fn;
}

export function isTransientCallback(fn: object): boolean {
  return transientCallbacks.has(fn);
}

/** Object literals only: class instances (a model, a backend) are not searched. */
function isPlain(v: object): boolean {
  const proto = Object.getPrototypeOf(v);
  return proto === Object.prototype || proto === null;
}

function isTensor(v: object): v is Tensor {
  return typeof (v as { revokeIfHolding?: unknown }).revokeIfHolding === 'function';
}

function close(s: Scope): void {
  const next = new Map<number, Float32Array[]>();
  const nextCarried = new Map<Float32Array, Claim>();
  for (const [data, c] of s.claims) {
    if (c.kept || c.gradOf) {
      counts.kept += data.length * 4;
      if (!c.kept && enabled) nextCarried.set(data, c);
      continue;
    }
    release(data, c, next);
  }
  // Gradients carried from the scope before that were not handed back are kept for good (no longer tracked).
  carried = nextCarried;
  for (const data of s.issued) if (!s.claims.has(data)) counts.unclaimed += data.length * 4;
  // What this scope did not release (and the previous free list's leftovers) goes to the garbage collector.
  dropFree();
  if (enabled) {
    free = next;
    for (const list of next.values()) for (const a of list) freeBytes += a.length * 4;
  }
}
