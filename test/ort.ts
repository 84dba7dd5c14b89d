/**
 * onnxruntime-web as the reference runtime of the Node tests (wasm backend, 1 thread, loaded from
 * node_modules: works offline): its session API typed to what the tests use, tensors of exact ONNX element
 * types, and the tolerance check. Used by onnx_backend.test.ts and the fuzz child (test/fuzz/child.ts).
 */
import * as path from 'node:path';
import type { OnnxTensorProto, Tensor } from '../engine';

export interface OrtTensor {
  dims: readonly number[];
  type: string;
  data: ArrayLike<number | bigint>;
}
export interface OrtSession {
  inputNames: readonly string[];
  outputNames: readonly string[];
  run(feeds: Record<string, OrtTensor>): Promise<Record<string, OrtTensor>>;
  release(): Promise<void>;
}
export interface Ort {
  env: { wasm: { numThreads: number; wasmPaths: string; proxy: boolean }; logLevel: string };
  Tensor: new (type: string, data: unknown, dims: readonly number[]) => OrtTensor;
  InferenceSession: { create(bytes: Uint8Array, options?: { logSeverityLevel?: number; graphOptimizationLevel?: string }): Promise<OrtSession> };
}

/**
 * Graph optimizations off: the reference is the graph as written. (With them on, onnxruntime-web
 * 1.30 rewrites a training-mode BatchNormalization whose running-stat outputs are unused into
 * something that no longer normalizes with the batch statistics: off by 0.27 on the CNN fixture,
 * while the unoptimized session matches PyTorch and the ONNX spec.)
 */
export const ORT_OPTIONS = { logSeverityLevel: 3, graphOptimizationLevel: 'disabled' };

let loaded: Ort | undefined;

/** onnxruntime-web, set up once (1 thread, no proxy worker, wasm files from node_modules). */
export function loadOrt(): Ort {
  if (loaded) return loaded;
  // onnxruntime-web has no bundled types for require(); the surface used is typed above.
  const ort = require('onnxruntime-web') as Ort;
  ort.env.wasm.numThreads = 1;
  ort.env.wasm.proxy = false;
  ort.env.wasm.wasmPaths = path.dirname(require.resolve('onnxruntime-web')) + path.sep;
  ort.env.logLevel = 'error';
  return (loaded = ort);
}

/** An onnxruntime tensor with the exact ONNX element type of a TensorProto. */
export function ortTensor(proto: Pick<OnnxTensorProto, 'dims' | 'dataType'>, values: Tensor): OrtTensor {
  const ort = loadOrt();
  const dims = proto.dims;
  switch (proto.dataType) {
    case 1: return new ort.Tensor('float32', Float32Array.from(values.data), dims);
    case 11: return new ort.Tensor('float64', Float64Array.from(values.data), dims);
    case 6: return new ort.Tensor('int32', Int32Array.from(values.data), dims);
    case 7: return new ort.Tensor('int64', BigInt64Array.from(Array.from(values.data, (v) => BigInt(v))), dims);
    case 9: return new ort.Tensor('bool', Uint8Array.from(values.data), dims);
    default: throw new Error(`no onnxruntime tensor for data type ${proto.dataType}`);
  }
}

/** How far `actual` is beyond atol + rtol·|expected| at its worst element (≤ 0: within tolerance). */
export function maxExcess(actual: ArrayLike<number | bigint>, expected: ArrayLike<number | bigint>, atol: number, rtol: number): number {
  if (actual.length !== expected.length) return Infinity;
  let worst = 0;
  for (let i = 0; i < expected.length; i++) {
    const a = Number(actual[i]);
    const e = Number(expected[i]);
    if (Number.isNaN(a) && Number.isNaN(e)) continue;
    if (a === e) continue; // equal infinities
    const ex = Math.abs(a - e) - (atol + rtol * Math.abs(e));
    if (!(ex <= worst)) worst = Number.isNaN(ex) ? Infinity : ex;
  }
  return worst;
}
