/**
 * The shape-only device: a device backend whose buffers hold no values. Ops run on it exactly as on
 * WebGPU (engine/backend/dispatch.ts sends every float32 kernel there), so a forward + backward pass
 * computes every shape and every allocation of a real run without allocating or computing anything
 * float; each buffer's bytes are counted in the open memory meter instead. Reading a value throws
 * TensorOnDeviceError, as on any device. Used for the memory estimate (engine/onnx/memory.ts).
 */
import { Backend, Conv2dGeometry, MatmulPlan } from './backend';
import { DeviceBackend, DeviceBuffer, DeviceKernels, deviceBackend } from './device';
import { checkTensorSize } from '../dtype';
import { reserveBytes } from '../memory';
import { Shape, sizeOf } from '../shape';
import { Tensor } from '../tensor';

/** Bytes of the buffers made on the shape-only device (open meters count them too, as they are made). */
export class ShapeOnlyCounter {
  bytes = 0;
  /** Largest single buffer, in bytes. */
  largest = 0;
  /** Bytes a float element stands for: 4, or 8 when estimating a float64 run (the device itself is float32). */
  constructor(readonly floatBytes = 4) {}
}

class EmptyBuffer implements DeviceBuffer {
  released = false;
  constructor(readonly length: number) {}
  read(): Promise<never> {
    return Promise.reject(new Error('internal: the shape-only device holds no values'));
  }
  release(): void {
    this.released = true;
  }
}

function shapeOnlyKernels(counter: ShapeOnlyCounter): DeviceKernels {
  const make = (length: number): DeviceBuffer => {
    checkTensorSize(length);
    const bytes = length * counter.floatBytes;
    reserveBytes(bytes);
    counter.bytes += bytes;
    if (bytes > counter.largest) counter.largest = bytes;
    return new EmptyBuffer(length);
  };
  const spatialIn = (g: Conv2dGeometry) => g.n * g.c * g.h * g.w;
  const spatialOut = (g: Conv2dGeometry) => g.n * g.c * g.oh * g.ow;
  return {
    name: 'shape-only',
    upload: (data) => make(data.length),
    unary: (_op, x) => make(x.length),
    binary: (_op, _a, _as, _b, _bs, outShape: Shape) => make(sizeOf(outShape)),
    where: (_c, _cs, _a, _as, _b, _bs, outShape: Shape) => make(sizeOf(outShape)),
    reduce: (_op, _x, shape: Shape, axes) => make(sizeOf(shape.map((d, i) => (axes.includes(i) ? 1 : d)))),
    matmul: (_a, _b, plan: MatmulPlan) => make(plan.batch * plan.m * plan.n),
    strided: (_x, outShape: Shape) => make(sizeOf(outShape)),
    stridedScatterAdd: (_g, _gs, _st, _off, size) => make(size),
    concat: (_parts, outer, sizes) => make(outer * sizes.reduce((a, b) => a + b, 0)),
    softmax: (x) => make(x.length),
    softmaxBackward: (y) => make(y.length),
    layerNorm: (_x, _w, _b, rows, n) => ({ y: make(rows * n), mean: make(rows), rstd: make(rows) }),
    layerNormBackward: (_x, _w, _g, _m, _r, rows, n) => ({ gx: make(rows * n), gw: make(n), gb: make(n) }),
    im2col: (_x, g) => make(g.n * g.c * g.kh * g.kw * g.oh * g.ow),
    col2im: (_cols, g) => make(spatialIn(g)),
    gather: (_x, outer, _len, inner, indices) => make(outer * indices.length * inner),
    scatterAdd: (_g, outer, axisLen, inner) => make(outer * axisLen * inner),
    maxPool2d: (_x, g) => ({ y: make(spatialOut(g)), argmax: make(spatialOut(g)) }),
    maxPool2dBackward: (_g, _argmax, g) => make(spatialIn(g)),
    avgPool2d: (_x, g) => make(spatialOut(g)),
    avgPool2dBackward: (_g, g) => make(spatialIn(g)),
    sync: async () => {},
    guard: (fn) => fn(),
  };
}

export interface ShapeOnlyBackend extends DeviceBackend {
  readonly counter: ShapeOnlyCounter;
  /** A float32 tensor of `shape` on this device, not counted (it stands for memory accounted elsewhere). */
  standIn(shape: Shape): Tensor;
}

/** A shape-only device backend; host work (constant folding, int/bool data) runs on `host`. */
export function shapeOnlyBackend(host: Backend, counter = new ShapeOnlyCounter()): ShapeOnlyBackend {
  const kernels = shapeOnlyKernels(counter);
  return deviceBackend('shape-only', kernels, host, {
    counter,
    standIn: (shape: Shape) => Tensor.onDevice(new EmptyBuffer(sizeOf(shape)), kernels, shape, 'float32'),
  });
}
