/** ONNX importer: load PyTorch-exported .onnx models into the engine and run forward/backward on them. */
export { loadOnnx, OnnxModel } from './model';
export type {
  LoadOptions, InitializerInfo, OnnxInputSpec, SampleOptions, LossSpec, LossContext, RunOptions, Feeds, OnnxValue,
  LossInfo, OnnxRunResult, OnnxOtherValue,
} from './model';
export { StringTensor, OnnxSequence, OnnxOptional, describeValue as describeOnnxValue } from './values';
export type { OtherValue as OnnxNonTensor, RunValue as OnnxRunValue, SequenceElement as OnnxSequenceElement } from './values';
export { stringTensorFromProto as onnxStringTensor, valueFromProto as onnxValueToEngine } from './values';
export { OnnxImportError } from './errors';
export type { OnnxWarning } from './validate';
export { describeEstimate, type MemoryEstimate } from './memory';
export type { OnnxErrorCode, OnnxErrorNode } from './errors';
export type { OnnxNode, OnnxGraph, OnnxValueSpec } from './graph';
export type { ModuleNode as OnnxModuleNode, SourceLocation as OnnxSourceLocation } from './modules';
export type { ExternalData } from './tensors';
export { externalFilesNeeded } from './external';
export type { ExternalFileNeed } from './external';
export { supportedOps as supportedOnnxOps } from './opset';
export { decodeModel as decodeOnnxModel } from './proto';
export { decodeTensor as decodeOnnxTensor } from './proto';
export { decodeValue as decodeOnnxValue } from './proto';
export type { TensorProto as OnnxTensorProto, ValueProto as OnnxValueProto } from './proto';
export { tensorFromProto as onnxTensorToEngine, isClaimedValueType as isClaimedOnnxValueType } from './tensors';
