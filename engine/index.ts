/** Gradient Lens engine: a reverse-mode autograd in pure TypeScript. No VS Code or DOM imports. */
export * from './dtype';
export * from './shape';
export * from './tensor';
export * from './autograd';
export * from './random';
export { MemoryLimitError, formatBytes } from './memory';
export { recycling, recyclingAsync, recyclingActive, setRecycling, recyclingCounts, dropRecycledArrays, transientCallback, keepTensor } from './recycling';
export * from './gradcheck';
export * from './ops';
export { getBackend, setBackend, withBackend } from './backend/registry';
export type { Backend } from './backend/backend';
export { referenceBackend } from './backend/reference';
export { createWasmBackend, loadWasmBackend, selectBackend, wasmSimdSupported, wasmRelaxedSimdSupported, preferredKernelFile, WASM_KERNEL_FILES, type BackendKind, type BackendPreferences, type BackendEnvironment, type BackendAttempt, type BackendSelection, type WasmBytes } from './backend/wasm';
export * from './inspect';
export * from './onnx';
