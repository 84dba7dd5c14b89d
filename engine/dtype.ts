import { markCounted, metering, reserveBytes } from './memory';

/** Element types the engine stores. Floats carry gradients; int32/bool hold indices and masks. */
export type DType = 'float32' | 'float64' | 'int32' | 'bool';
export type FloatDType = 'float32' | 'float64';

export type FloatArray = Float32Array | Float64Array;
export type TypedArray = Float32Array | Float64Array | Int32Array | Uint8Array;

/**
 * Largest tensor the engine allocates (2^28 elements: 1 GiB of float32). Beyond it the browser would fail
 * with an opaque allocation error or stall the editor; a clear error naming the size is better.
 */
export const MAX_TENSOR_ELEMENTS = 2 ** 28;

/** Bytes per element of each dtype. */
export const DTYPE_BYTES: Readonly<Record<DType, number>> = { float32: 4, float64: 8, int32: 4, bool: 1 };

/** Throws a RangeError naming the size when `size` elements cannot be a tensor (negative, fractional, too large). */
export function checkTensorSize(size: number): void {
  if (size > MAX_TENSOR_ELEMENTS) {
    const n = Number.isSafeInteger(size) ? size.toLocaleString('en-US') : size.toExponential(2);
    throw new RangeError(`a tensor of ${n} elements is too large (limit ${MAX_TENSOR_ELEMENTS.toLocaleString('en-US')}); use a smaller batch, sequence length or model`);
  }
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`invalid tensor size ${size}`);
}

/** Checks the size and counts the bytes in the open memory meter (if any) before anything is allocated. */
function reserve(dtype: DType, size: number): void {
  checkTensorSize(size);
  if (metering()) reserveBytes(size * DTYPE_BYTES[dtype]);
}

function counted<T extends TypedArray>(data: T): T {
  if (metering()) markCounted(data.buffer);
  return data;
}

/**
 * The one allocation path for tensor data: size-checked and counted against the run's memory meter
 * before the buffer exists. Ops and importers that build a tensor allocate here and fill in place
 * (never a plain JS array of the full size first).
 */
export function allocate(dtype: DType, size: number): TypedArray {
  reserve(dtype, size);
  return counted(raw(dtype, size));
}

function raw(dtype: DType, size: number): TypedArray {
  switch (dtype) {
    case 'float32': return new Float32Array(size);
    case 'float64': return new Float64Array(size);
    case 'int32': return new Int32Array(size);
    case 'bool': return new Uint8Array(size);
  }
}

export function allocateFloat(dtype: FloatDType, size: number): FloatArray {
  return allocate(dtype, size) as FloatArray;
}

/** A counted copy of `values` as `dtype` (bool: nonzero -> 1; int32: values as stored, the caller checks range). */
export function allocateFrom(dtype: DType, values: ArrayLike<number>): TypedArray {
  const out = allocate(dtype, values.length);
  if (dtype === 'bool') for (let i = 0; i < values.length; i++) out[i] = values[i] ? 1 : 0;
  else out.set(values as ArrayLike<number>);
  return out;
}

export function dtypeOf(data: TypedArray): DType {
  if (data instanceof Float32Array) return 'float32';
  if (data instanceof Float64Array) return 'float64';
  if (data instanceof Int32Array) return 'int32';
  return 'bool';
}

export function isFloat(dtype: DType): dtype is FloatDType {
  return dtype === 'float32' || dtype === 'float64';
}

/** Result dtype of a float op: float64 wins so a gradient check stays in float64 end to end. */
export function promoteFloat(...dtypes: DType[]): FloatDType {
  return dtypes.includes('float64') ? 'float64' : 'float32';
}
