import { FloatArray, FloatDType } from '../dtype';
import { Shape } from '../shape';

/**
 * The small kernel set every backend implements. Ops (engine/ops) compose these for both their
 * forward and backward passes, so a new backend only has to provide these functions.
 * Kernels never mutate their inputs; they return freshly allocated outputs of `dtype`.
 */
export type UnaryKernel =
  | 'neg' | 'exp' | 'log' | 'sqrt' | 'rsqrt' | 'abs' | 'sign' | 'square' | 'reciprocal'
  | 'tanh' | 'sigmoid' | 'relu' | 'erf' | 'gelu' | 'geluTanh'
  | 'leakyRelu' /* param: slope */ | 'powScalar' /* param: exponent */ | 'scale' /* param: factor */
  | 'addScalar' /* param: addend */
  | 'sin' | 'cos' | 'tan' | 'asin' | 'acos' | 'atan';

/** Binary kernels with broadcasting. The `*Grad` kernels are fused VJPs: (g, x or y) -> input gradient. */
export type BinaryKernel =
  | 'add' | 'sub' | 'mul' | 'div' | 'pow' | 'max' | 'min' | 'eq' /* 1 where equal, else 0 */
  | 'reluGrad' /* g, x */ | 'leakyReluGrad' /* g, x; param slope */ | 'absGrad' /* g, x */
  | 'tanhGrad' /* g, y */ | 'sigmoidGrad' /* g, y */ | 'erfGrad' /* g, x */
  | 'geluGrad' /* g, x */ | 'geluTanhGrad' /* g, x */;

export type ReduceKernel = 'sum' | 'max' | 'min';

export interface MatmulPlan {
  /** Number of matrix products. */
  batch: number;
  m: number;
  k: number;
  n: number;
  /** Element offsets of each product's A and B operands (lets batch dims broadcast). */
  aOffsets: Int32Array;
  bOffsets: Int32Array;
  /** A is stored as [k, m] (resp. B as [n, k]) and read transposed. */
  transA: boolean;
  transB: boolean;
}

export type DepthwiseMode = 'forward' | 'inputGrad' | 'weightGrad';

/** The three products of a dense convolution (Backend.conv2d). */
export type Conv2dMode = DepthwiseMode;

export interface Conv2dGeometry {
  n: number; c: number; h: number; w: number;
  kh: number; kw: number;
  sh: number; sw: number;
  ph: number; pw: number;
  dh: number; dw: number;
  oh: number; ow: number;
}

export interface Backend {
  readonly name: string;
  unary(op: UnaryKernel, x: FloatArray, param: number, dtype: FloatDType): FloatArray;
  binary(op: BinaryKernel, a: FloatArray, aShape: Shape, b: FloatArray, bShape: Shape, outShape: Shape, dtype: FloatDType, param?: number): FloatArray;
  /** Reduces `axes` (sorted, unique); the result has `shape` with those axes set to 1. */
  reduce(op: ReduceKernel, x: FloatArray, shape: Shape, axes: readonly number[], dtype: FloatDType): FloatArray;
  /** Flat input index of the max (min) of each reduced group, first on ties; used by max VJPs. */
  argReduce(op: 'max' | 'min', x: FloatArray, shape: Shape, axes: readonly number[]): Int32Array;
  matmul(a: FloatArray, b: FloatArray, plan: MatmulPlan, dtype: FloatDType): FloatArray;
  /** Copies the strided view (offset, strides) of `x` into a dense array of `outShape`. Covers permute, slice and expand. */
  strided(x: FloatArray, outShape: Shape, strides: readonly number[], offset: number, dtype: FloatDType): FloatArray;
  /** Adds dense `g` (shape gShape) into a zero array of `size` at the strided positions: the VJP of `strided`. */
  stridedScatterAdd(g: FloatArray, gShape: Shape, strides: readonly number[], offset: number, size: number, dtype: FloatDType): FloatArray;
  /** Concatenates [outer, sizes[i]] blocks along the second axis: the data movement of concat along any axis. */
  concat(parts: readonly FloatArray[], outer: number, sizes: readonly number[], dtype: FloatDType): FloatArray;
  /** Softmax (or log-softmax) over the middle axis of [outer, n, inner]. */
  softmax(x: FloatArray, outer: number, n: number, inner: number, log: boolean, dtype: FloatDType): FloatArray;
  softmaxBackward(y: FloatArray, g: FloatArray, outer: number, n: number, inner: number, log: boolean, dtype: FloatDType): FloatArray;
  /** Layer norm (or RMS norm when `rms`) of each row of [rows, n]; returns per-row mean and 1/std for the VJP. */
  layerNorm(x: FloatArray, weight: FloatArray | null, bias: FloatArray | null, rows: number, n: number, eps: number, rms: boolean, dtype: FloatDType): { y: FloatArray; mean: Float64Array; rstd: Float64Array };
  layerNormBackward(x: FloatArray, weight: FloatArray | null, g: FloatArray, mean: Float64Array, rstd: Float64Array, rows: number, n: number, rms: boolean, dtype: FloatDType): { gx: FloatArray; gw: FloatArray; gb: FloatArray };
  /**
   * Training-mode batch norm of x viewed as [outer, c, inner] (N, C, spatial): per channel, the mean and 1/std
   * (biased variance) over outer and inner, y = (x - mean) * rstd * weight + bias. One kernel instead of the
   * nine-op composite (and its backward of about twenty), whose passes and fresh arrays dominated conv nets.
   */
  batchNorm(x: FloatArray, weight: FloatArray | null, bias: FloatArray | null, outer: number, c: number, inner: number, eps: number, dtype: FloatDType): { y: FloatArray; mean: Float64Array; rstd: Float64Array };
  /** VJP of batchNorm with the batch statistics as variables: gx [outer, c, inner], gw and gb [c]. */
  batchNormBackward(x: FloatArray, weight: FloatArray | null, g: FloatArray, mean: Float64Array, rstd: Float64Array, outer: number, c: number, inner: number, dtype: FloatDType): { gx: FloatArray; gw: FloatArray; gb: FloatArray };
  /** [n, c, h, w] -> columns [n, c*kh*kw, oh*ow]. */
  im2col(x: FloatArray, geo: Conv2dGeometry, dtype: FloatDType): FloatArray;
  /** VJP of im2col: columns -> [n, c, h, w], summing overlaps. */
  col2im(cols: FloatArray, geo: Conv2dGeometry, dtype: FloatDType): FloatArray;
  /**
   * Depthwise convolution (groups = channels, one [kh, kw] filter per channel), without im2col.
   * 'forward': x [n, c, h, w] and filters [c, kh, kw] -> [n, c, oh, ow]; 'inputGrad': g [n, c, oh, ow] and the
   * filters -> [n, c, h, w]; 'weightGrad': g and x -> [c, kh, kw].
   */
  depthwiseConv2d(mode: DepthwiseMode, a: FloatArray, b: FloatArray, geo: Conv2dGeometry, dtype: FloatDType): FloatArray;
  /**
   * Dense (grouped) convolution with `o` output channels, the im2col columns kept inside the kernel: composed
   * from im2col and matmul, every convolution moved its kh*kw-times expanded columns through host memory three
   * times per step (most of a ResNet step's copies). 'forward': x [n, c, h, w] and weight [o, c/groups, kh, kw]
   * -> [n, o, oh, ow]; 'inputGrad': g [n, o, oh, ow] and the weight -> [n, c, h, w]; 'weightGrad': g and x ->
   * [o, c/groups, kh, kw].
   */
  conv2d(mode: Conv2dMode, a: FloatArray, b: FloatArray, geo: Conv2dGeometry, groups: number, o: number, dtype: FloatDType): FloatArray;
  /**
   * Hard sigmoid clamp(alpha x + beta, 0, 1), or with `swish` x times it (HardSwish), elementwise; with `g`, the
   * VJP instead (gradient inside the bounds, bounds included). One kernel each way instead of the dozen a
   * composite of scale, add, masks and selects ran on MobileNetV3's activations.
   */
  hardSigmoid(x: FloatArray, g: FloatArray | null, alpha: number, beta: number, swish: boolean, dtype: FloatDType): FloatArray;
  /**
   * VJP of SiLU x sigmoid(x) from x and g: g s (1 + x (1 - s)), s = sigmoid(x). Exporters write SiLU as
   * Mul(x, Sigmoid(x)), whose VJP was four full-size kernels (EfficientNet has 49 of them).
   */
  swishBackward(x: FloatArray, g: FloatArray, dtype: FloatDType): FloatArray;
  /** Gather along the middle axis of [outer, axisLen, inner] with indices (checked in range by the caller). */
  gather(x: FloatArray, outer: number, axisLen: number, inner: number, indices: Int32Array, dtype: FloatDType): FloatArray;
  /** VJP of gather: scatter-add [outer, indices.length, inner] back into [outer, axisLen, inner]. */
  scatterAdd(g: FloatArray, outer: number, axisLen: number, inner: number, indices: Int32Array, dtype: FloatDType): FloatArray;
  /** Max pooling windows; returns values and the flat input index of each max. */
  maxPool2d(x: FloatArray, geo: Conv2dGeometry, dtype: FloatDType): { y: FloatArray; argmax: Int32Array };
  avgPool2d(x: FloatArray, geo: Conv2dGeometry, countIncludePad: boolean, dtype: FloatDType): FloatArray;
  avgPool2dBackward(g: FloatArray, geo: Conv2dGeometry, countIncludePad: boolean, dtype: FloatDType): FloatArray;
  /** Elementwise select: cond ? a : b, all broadcast to outShape. */
  where(cond: Uint8Array, condShape: Shape, a: FloatArray, aShape: Shape, b: FloatArray, bShape: Shape, outShape: Shape, dtype: FloatDType): FloatArray;
}
