// @ts-nocheck -- AssemblyScript source (compiled by asc via engine/backend/wasm/build.mjs, not by tsc).
/**
 * Entry of the Gradient Lens WebAssembly kernels (float32, 128-bit SIMD). Memory is managed by the
 * TypeScript side (engine/backend/wasm/index.ts): every kernel takes raw pointers into linear memory
 * past heapBase(), and the host grows memory and lays out inputs, outputs and scratch per call.
 */
export { matmul, matmulScratchBytes } from './matmul';
export { conv2d, conv2dScratchBytes } from './conv';
export { depthwiseChannelsLast, depthwiseChannelsLastScratchBytes } from './depthwise';
export { hardSigmoid, swishBackward } from './activation';
export { maxPoolChannelsLast, maxPoolChannelsLastScratchBytes } from './pool';
export { unary, powScalar, binary, where } from './elementwise';
export { reduce3, reduceGeneral, argReduce, softmax, softmaxBackward, layerNorm, layerNormBackward, batchNorm, batchNormBackward } from './reduce';
export { strided, stridedScatterAdd, scatterAdd, im2col, col2im, depthwiseConv2d, depthwisePaddedFits, depthwisePaddedScratchBytes, maxPool2d, avgPool2d, avgPool2dBackward } from './layout';

/**
 * First byte the host may use: past static data and the few objects the module allocates at start
 * (the stub runtime's bump allocator is never used after that), rounded up to 64 bytes.
 */
export function heapBase(): usize {
  const p = heap.alloc(16);
  return (p + 16 + 63) & ~(<usize>63);
}

/** 1 when built with relaxed SIMD (fused multiply-add in matmul). */
export function relaxedSimd(): i32 {
  return ASC_FEATURE_RELAXED_SIMD ? 1 : 0;
}
