/**
 * A fake device backend for Node tests: buffers hold arrays behind an asynchronous read, kernels are the
 * reference backend's in float32. Lets the device path (dispatch, TensorOnDeviceError, scopes, async
 * reads) be tested without a GPU.
 */
import { referenceBackend as ref } from '../engine/backend/reference';
import { setBackend, getBackend } from '../engine/backend/registry';
import { DeviceBuffer, DeviceKernels, deviceBackend } from '../engine/backend/device';
import { Shape } from '../engine/shape';

export class FakeBuffer implements DeviceBuffer {
  released = false;
  constructor(readonly values: Float32Array | Int32Array | Float64Array) {}
  get length(): number {
    return this.values.length;
  }
  async read(): Promise<Float32Array> {
    await Promise.resolve();
    if (this.released) throw new Error('read after release');
    return Float32Array.from(this.values);
  }
  release(): void {
    this.released = true;
  }
}

export const live = new Set<FakeBuffer>();
const f = (b: DeviceBuffer): Float32Array => {
  const fb = b as FakeBuffer;
  if (fb.released) throw new Error('kernel input was released');
  return fb.values as Float32Array;
};
// Float64Array only for layer-norm statistics, kept exact so the device path matches the host bit for bit.
const wrap = (a: Float32Array | Int32Array | Float64Array): FakeBuffer => {
  const b = new FakeBuffer(a);
  live.add(b);
  return b;
};
const F = 'float32';

const fake: DeviceKernels = {
  name: 'fake-device',
  upload: (d) => wrap(Float32Array.from(d)),
  unary: (op, x, p = 0) => wrap(ref.unary(op, f(x), p, F)),
  binary: (op, a, as: Shape, b, bs: Shape, os: Shape, p = 0) => wrap(ref.binary(op, f(a), as, f(b), bs, os, F, p)),
  where: (c, cs, a, as, b, bs, os) => wrap(ref.where(c, cs, f(a), as, f(b), bs, os, F)),
  reduce: (op, x, s, axes) => wrap(ref.reduce(op, f(x), s, axes, F)),
  matmul: (a, b, plan) => wrap(ref.matmul(f(a), f(b), plan, F)),
  strided: (x, os, st, off) => wrap(ref.strided(f(x), os, st, off, F)),
  stridedScatterAdd: (g, gs, st, off, size) => wrap(ref.stridedScatterAdd(f(g), gs, st, off, size, F)),
  concat: (parts, outer, sizes) => wrap(ref.concat(parts.map(f), outer, sizes, F)),
  softmax: (x, o, n, i, log) => wrap(ref.softmax(f(x), o, n, i, log, F)),
  softmaxBackward: (y, g, o, n, i, log) => wrap(ref.softmaxBackward(f(y), f(g), o, n, i, log, F)),
  layerNorm: (x, w, b, rows, n, eps, rms) => {
    const r = ref.layerNorm(f(x), w && f(w), b && f(b), rows, n, eps, rms, F);
    return { y: wrap(r.y), mean: wrap(r.mean), rstd: wrap(r.rstd) };
  },
  layerNormBackward: (x, w, g, mean, rstd, rows, n, rms) => {
    const r = ref.layerNormBackward(f(x), w && f(w), f(g), (mean as FakeBuffer).values as Float64Array, (rstd as FakeBuffer).values as Float64Array, rows, n, rms, F);
    return { gx: wrap(r.gx), gw: wrap(r.gw), gb: wrap(r.gb) };
  },
  im2col: (x, geo) => wrap(ref.im2col(f(x), geo, F)),
  col2im: (c, geo) => wrap(ref.col2im(f(c), geo, F)),
  gather: (x, o, a, i, idx) => wrap(ref.gather(f(x), o, a, i, idx, F)),
  scatterAdd: (g, o, a, i, idx) => wrap(ref.scatterAdd(f(g), o, a, i, idx, F)),
  maxPool2d: (x, geo) => {
    const r = ref.maxPool2d(f(x), geo, F);
    return { y: wrap(r.y), argmax: wrap(r.argmax) };
  },
  maxPool2dBackward: (g, argmax, geo) => wrap(ref.scatterAdd(f(g), 1, geo.n * geo.c * geo.h * geo.w, 1, (argmax as FakeBuffer).values as Int32Array, F)),
  avgPool2d: (x, geo, cip) => wrap(ref.avgPool2d(f(x), geo, cip, F)),
  avgPool2dBackward: (g, geo, cip) => wrap(ref.avgPool2dBackward(f(g), geo, cip, F)),
  guard: (fn) => fn(),
  sync: () => Promise.resolve(),
};

export const device = deviceBackend('fake-device', fake, ref);

export function onDevice<T>(fn: () => T): T {
  const previous = getBackend();
  setBackend(device);
  try {
    return fn();
  } finally {
    setBackend(previous);
  }
}

export async function onDeviceAsync<T>(fn: () => Promise<T>): Promise<T> {
  const previous = getBackend();
  setBackend(device);
  try {
    return await fn();
  } finally {
    setBackend(previous);
  }
}

