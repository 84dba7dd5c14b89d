/**
 * Run-level memory accounting. A meter counts the bytes of tensor data created while it is open and
 * refuses, before allocating, the allocation that would take the total past its limit: a model that
 * needs more memory than the editor can give gets a clear error naming the amount instead of an
 * out-of-memory crash of the webview.
 *
 * Bytes are counted once per ArrayBuffer: in allocate() (dtype.ts) before the buffer exists, and in
 * the Tensor constructor for buffers made elsewhere (kernel outputs copied out of WebAssembly memory).
 * Views of a counted buffer are free. The count is cumulative (nothing is subtracted when a tensor
 * becomes garbage): for one forward + backward pass, which keeps its values for the report, that is
 * close to the live total. The cost is a null check per tensor when no meter is open, a WeakSet
 * lookup per tensor when one is: never per element.
 */

/**
 * Most bytes of parameter arrays a backend keeps its own copy of between calls (the wasm backend's pinned
 * weights). The memory estimate counts them: they are memory the run takes besides the tensors.
 */
export const WEIGHT_CACHE_BYTES = 64 * 1024 * 1024;

/** Thrown when a meter's limit would be exceeded; `needed` is the total the allocation would reach. */
export class MemoryLimitError extends RangeError {
  constructor(readonly limit: number, readonly needed: number, readonly what: string) {
    super(`${what} needs more than ${formatBytes(limit)} of tensor memory (an allocation would bring it to ${formatBytes(needed)})`);
    this.name = 'MemoryLimitError';
  }
}

export class MemoryMeter {
  /** Bytes counted so far. */
  used = 0;
  /** Largest single allocation seen. */
  largest = 0;

  constructor(readonly limit: number, readonly what: string, readonly isolated: boolean) {}

  check(bytes: number): void {
    const needed = this.used + bytes;
    if (needed > this.limit) throw new MemoryLimitError(this.limit, needed, this.what);
  }

  add(bytes: number): void {
    this.used += bytes;
    if (bytes > this.largest) this.largest = bytes;
  }
}

const meters: MemoryMeter[] = [];
/** Buffers already counted (by the meters open when they were made). */
let counted = new WeakSet<ArrayBufferLike>();

/** Whether any meter is open (the fast path of every allocation checks this only). */
export function metering(): boolean {
  return meters.length > 0;
}

/** The open meters an allocation counts in: from the innermost out to the nearest isolated one. */
function counting(): MemoryMeter[] {
  const out: MemoryMeter[] = [];
  for (let i = meters.length - 1; i >= 0; i--) {
    out.push(meters[i]);
    if (meters[i].isolated) break;
  }
  return out;
}

/** Counts `bytes` about to be allocated in every counting meter; throws MemoryLimitError (counting nothing) past a limit. */
export function reserveBytes(bytes: number): void {
  if (meters.length === 0) return;
  const ms = counting();
  for (const m of ms) m.check(bytes);
  for (const m of ms) m.add(bytes);
}

/** Marks a buffer counted by reserveBytes so tensors over it are not counted again. */
export function markCounted(buffer: ArrayBufferLike): void {
  if (meters.length) counted.add(buffer);
}

/** Counts a buffer allocated elsewhere, once. Throws after the fact when it takes a total past its limit. */
export function noteBuffer(buffer: ArrayBufferLike): void {
  if (meters.length === 0 || counted.has(buffer)) return;
  counted.add(buffer);
  reserveBytes(buffer.byteLength);
}

/**
 * Opens a meter (limit in bytes; Infinity only measures); `what` names the work in the error ("this
 * run"). Allocations count in every open meter out to the nearest `isolated` one (a dry run's
 * allocations must not count against the run it estimates). Close it with the returned function, also
 * on errors.
 */
export function openMeter(limit: number, what: string, options: { isolated?: boolean } = {}): { meter: MemoryMeter; close: () => void } {
  const meter = new MemoryMeter(limit, what, options.isolated ?? false);
  meters.push(meter);
  return {
    meter,
    close: () => {
      const i = meters.lastIndexOf(meter);
      if (i >= 0) meters.splice(i, 1);
      if (meters.length === 0) counted = new WeakSet();
    },
  };
}

/** Runs `fn` under a meter and returns its result with the bytes counted. */
export function metered<T>(limit: number, what: string, fn: (meter: MemoryMeter) => T, options: { isolated?: boolean } = {}): { result: T; bytes: number } {
  const { meter, close } = openMeter(limit, what, options);
  try {
    const result = fn(meter);
    return { result, bytes: meter.used };
  } finally {
    close();
  }
}

/** "1.5 GB", "340 MB", "12 kB" (powers of 1024, as memory is sized). */
export function formatBytes(bytes: number): string {
  if (!Number.isFinite(bytes)) return `${bytes} bytes`;
  const units = ['bytes', 'kB', 'MB', 'GB', 'TB'];
  let v = bytes;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${Math.round(v)} bytes` : `${v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2)} ${units[u]}`;
}
