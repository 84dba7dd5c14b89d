/**
 * Browser side of the model tests: inspects ONNX fixture models on the WebGPU device backend and on
 * the TypeScript reference backend (both float32) and compares the loss and every trainable
 * parameter's gradient. `window.__runWebGpuModels(models)` resolves to a JSON-able ModelsReport.
 *
 * A run that needs host values of a device tensor fails with TensorOnDeviceError (never falls back
 * silently), and the dispatcher's counters show whether any float32 kernel ran on the host.
 */
import { referenceBackend } from '../../engine/backend/reference';
import type { Backend } from '../../engine/backend/backend';
import { getBackend, setBackend } from '../../engine/backend/registry';
import { dispatchCounts } from '../../engine/backend/dispatch';
import { createWebGpuBackend, WebGpuBackend } from '../../engine/backend/webgpu';
import { inspectOnnx, InspectOptions } from '../../engine/inspect/onnxInspect';
import type { InspectionReport } from '../../engine/inspect/report';
import { relativeError } from '../metrics';

export interface ModelSpec {
  name: string;
  url: string;
  options?: Pick<InspectOptions, 'batch' | 'sequenceLength' | 'seed'>;
}

export interface ParameterComparison {
  name: string;
  size: number;
  /** ||webgpu - reference|| / ||reference|| (test/helpers.ts relativeError). */
  relErr: number;
  refNorm: number;
  /** Reference gradient norm below 1e-6 of the model's largest: rounding noise of a structural zero, compared absolutely. */
  structuralZero: boolean;
  /** ||webgpu - reference|| / (largest reference parameter-gradient norm of the model). */
  absErrVsScale: number;
}

export interface ModelResult {
  name: string;
  ok: boolean;
  error?: string;
  backend?: string;
  loss?: { webgpu: number; reference: number; relErr: number };
  parameters: ParameterComparison[];
  /** Worst relErr over parameters that are not structural zeros. */
  maxRelErr: number;
  /** Module gradient norms in the report (what the panel shows), worst relative difference. */
  maxModuleGradNormRelErr: number;
  kernels?: { device: number; folded: number; host: number };
  ms: { webgpu: number; reference: number; webgpuWarm: number };
  firstNonFinite: [string | undefined, string | undefined];
}

export interface ModelsReport {
  adapter: string;
  results: ModelResult[];
}


const norm = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));

async function inspectOn(backend: Backend, bytes: Uint8Array, spec: ModelSpec): Promise<{ report: InspectionReport; grads: Map<string, ArrayLike<number>>; ms: number }> {
  const grads = new Map<string, ArrayLike<number>>();
  const previous = getBackend();
  setBackend(backend);
  const t0 = performance.now();
  try {
    const report = await inspectOnnx(bytes, spec.name, { ...spec.options, dtype: 'float32', gradients: grads });
    return { report, grads, ms: performance.now() - t0 };
  } finally {
    setBackend(previous);
  }
}

async function compareModel(gpu: WebGpuBackend, spec: ModelSpec): Promise<ModelResult> {
  const result: ModelResult = { name: spec.name, ok: false, parameters: [], maxRelErr: NaN, maxModuleGradNormRelErr: NaN, ms: { webgpu: NaN, reference: NaN, webgpuWarm: NaN }, firstNonFinite: [undefined, undefined] };
  try {
    const bytes = new Uint8Array(await (await fetch(spec.url)).arrayBuffer());
    const ref = await inspectOn(referenceBackend, bytes, spec);
    result.ms.reference = ref.ms;
    dispatchCounts(true);
    const got = await inspectOn(gpu, bytes, spec);
    result.kernels = dispatchCounts(true);
    result.ms.webgpu = got.ms;
    // Second run: pipelines compiled and buffers pooled (what a user's next Inspect costs).
    result.ms.webgpuWarm = (await inspectOn(gpu, bytes, spec)).ms;
    result.backend = got.report.backend;
    result.loss = { webgpu: got.report.loss.value, reference: ref.report.loss.value, relErr: relativeError([got.report.loss.value], [ref.report.loss.value]) };
    result.firstNonFinite = [got.report.firstNonFinite?.node, ref.report.firstNonFinite?.node];
    const scale = Math.max(0, ...[...ref.grads.values()].map(norm));
    for (const [name, want] of ref.grads) {
      const have = got.grads.get(name);
      const refNorm = norm(want);
      const diff = have && have.length === want.length ? norm(Array.from(want, (w, i) => have[i] - w)) : Infinity;
      result.parameters.push({
        name, size: want.length, refNorm,
        relErr: have ? relativeError(have, want) : Infinity,
        structuralZero: refNorm < 1e-6 * scale,
        absErrVsScale: diff / Math.max(scale, 1e-30),
      });
    }
    for (const name of got.grads.keys()) if (!ref.grads.has(name)) result.parameters.push({ name, size: 0, refNorm: 0, relErr: Infinity, structuralZero: false, absErrVsScale: Infinity });
    result.maxRelErr = Math.max(0, ...result.parameters.filter((p) => !p.structuralZero).map((p) => p.relErr));
    const refModules = new Map(ref.report.modules.map((m) => [m.path, m.gradNorm]));
    result.maxModuleGradNormRelErr = Math.max(0, ...got.report.modules.map((m) => {
      const want = refModules.get(m.path);
      if (want === undefined || want === null || m.gradNorm === null) return want === m.gradNorm ? 0 : Infinity;
      return want < 1e-6 * scale ? 0 : Math.abs(m.gradNorm - want) / want;
    }));
    result.ok = true;
  } catch (e) {
    result.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  }
  return result;
}

export async function runWebGpuModels(models: ModelSpec[]): Promise<ModelsReport> {
  let gpu: WebGpuBackend;
  try {
    gpu = await createWebGpuBackend({ allowFallbackAdapter: true, host: referenceBackend });
  } catch (e) {
    return { adapter: `none: ${e instanceof Error ? e.message : String(e)}`, results: [] };
  }
  const results: ModelResult[] = [];
  for (const m of models) results.push(await compareModel(gpu, m));
  const adapter = gpu.gpuDevice.name;
  gpu.gpuDevice.destroy();
  return { adapter, results };
}

(globalThis as unknown as { __runWebGpuModels: typeof runWebGpuModels }).__runWebGpuModels = runWebGpuModels;
