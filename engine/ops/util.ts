import { FloatArray, FloatDType, promoteFloat, isFloat } from '../dtype';
import { Tensor, readTransient } from '../tensor';
import { Shape, formatShape } from '../shape';

/** Wraps kernel output as a tensor. */
export function fromData(data: FloatArray, shape: Shape): Tensor {
  return new Tensor(data, shape);
}

/** Output dtype of a float op over these inputs (rejects int/bool operands with a clear message). */
export function floatDtype(op: string, ...inputs: Tensor[]): FloatDType {
  for (const t of inputs) {
    if (!isFloat(t.dtype)) throw new TypeError(`${op}: expected float tensors, got ${t.dtype} ${formatShape(t.shape)}`);
  }
  return promoteFloat(...inputs.map((t) => t.dtype));
}

/**
 * Float values of a tensor for a caller that finishes with them before returning (kernels, optimiser loops):
 * read with readTransient, so the array stays recyclable (engine/recycling.ts). Non-float tensors get floatData's
 * clear error.
 */
export function transientFloatData(t: Tensor): FloatArray {
  if (t.dtype !== 'float32' && t.dtype !== 'float64') return t.floatData;
  return readTransient(t) as FloatArray;
}

/**
 * Float data of a tensor converted to `dtype` (no copy when it already matches), for a caller that finishes with it
 * before returning or wraps it in a tensor: read with readTransient, so the array stays recyclable
 * (engine/recycling.ts) and a tensor made over it is revoked with it.
 */
export function dataAs(t: Tensor, dtype: FloatDType): FloatArray {
  const v = readTransient(t) as FloatArray;
  if (t.dtype === dtype) return v;
  return dtype === 'float64' ? Float64Array.from(v) : Float32Array.from(v);
}

/** Integer indices of an int (or integral float) tensor, checked against [-size, size) and wrapped. */
export function indexData(op: string, t: Tensor, size: number): Int32Array {
  const out = new Int32Array(t.size);
  for (let i = 0; i < t.size; i++) {
    const v = t.data[i];
    if (!Number.isInteger(v) || v < -size || v >= size) {
      throw new RangeError(`${op}: index ${v} is out of range for a dimension of size ${size}`);
    }
    out[i] = v < 0 ? v + size : v;
  }
  return out;
}
