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

function checkSize(size: number): void {
  if (!Number.isSafeInteger(size) || size < 0) throw new RangeError(`invalid tensor size ${size}`);
  if (size > MAX_TENSOR_ELEMENTS) {
    throw new RangeError(`a tensor of ${size.toLocaleString('en-US')} elements is too large (limit ${MAX_TENSOR_ELEMENTS.toLocaleString('en-US')}); use a smaller batch, sequence length or model`);
  }
}

export function allocate(dtype: DType, size: number): TypedArray {
  checkSize(size);
  switch (dtype) {
    case 'float32': return new Float32Array(size);
    case 'float64': return new Float64Array(size);
    case 'int32': return new Int32Array(size);
    case 'bool': return new Uint8Array(size);
  }
}

export function allocateFloat(dtype: FloatDType, size: number): FloatArray {
  checkSize(size);
  return dtype === 'float64' ? new Float64Array(size) : new Float32Array(size);
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
