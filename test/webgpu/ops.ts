/**
 * Browser side of the op gold tests on WebGPU: every case of test/fixtures/ops.json (PyTorch, float64)
 * run in float32 on the WebGPU device backend, forward outputs and input gradients compared within
 * 1e-4 relative, as test/ops.gold.test.ts does on the host backends. `window.__runWebGpuOps(url)`.
 * Inputs come from the host, so host value logic in VJPs (pow's 0**y mask) still sees real values here;
 * test/device_dispatch.test.ts covers the loud failure when such an input was computed on the device.
 */
import { Tensor, readTensors, TensorOnDeviceError } from '../../engine/tensor';
import { backward } from '../../engine/autograd';
import { getBackend, setBackend } from '../../engine/backend/registry';
import { referenceBackend } from '../../engine/backend/reference';
import { deviceScope, dispatchCounts } from '../../engine/backend/dispatch';
import { createWebGpuBackend } from '../../engine/backend/webgpu';
import { tensorFrom } from '../../engine/tensor';
import type { DType } from '../../engine/dtype';
import type { FixtureTensor } from '../helpers';
import { OpCase, asList, runOp } from '../op_cases';
import * as E from '../../engine/ops';
import { relativeError } from '../metrics';

export interface OpResult {
  name: string;
  op: string;
  ok: boolean;
  /** Worst relative error over outputs, gradients and updated buffers. */
  maxRelErr: number;
  error?: string;
  /** The error was a TensorOnDeviceError (a loud refusal, not a wrong number). */
  onDeviceError: boolean;
  kernels: { device: number; folded: number; host: number };
}


/** test/helpers.ts decodeValues/fixtureTensor without Node's Buffer (base64 little-endian float64). */
function decodeValues(t: FixtureTensor): Float64Array | number[] {
  if (typeof t.data !== 'string') return t.data;
  const bin = atob(t.data);
  const bytes = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) bytes[i] = bin.charCodeAt(i);
  return new Float64Array(bytes.buffer);
}

function fixtureTensor(t: FixtureTensor, floatDtype: DType, requiresGrad = false): Tensor {
  const dtype: DType = t.dtype === 'float64' ? floatDtype : t.dtype === 'int64' ? 'int32' : 'bool';
  return tensorFrom(decodeValues(t), t.shape, dtype, { requiresGrad: requiresGrad && t.dtype === 'float64' });
}

const caseInputs = (c: OpCase, dtype: DType) => c.inputs.map((t) => fixtureTensor(t, dtype, t.grad));

async function runCase(c: OpCase): Promise<OpResult> {
  const result: OpResult = { name: c.name, op: c.op, ok: false, maxRelErr: NaN, onDeviceError: false, kernels: { device: 0, folded: 0, host: 0 } };
  dispatchCounts(true);
  try {
    await deviceScope(async () => {
      const inputs = caseInputs(c, 'float32');
      const outputs = asList(runOp(c, inputs));
      outputs.forEach((out, j) => {
        if (out.requiresGrad) backward(out, fixtureTensor(c.upstream[j], 'float32'));
      });
      const grads = inputs.map((t) => t.grad);
      await readTensors([...outputs, ...grads, ...inputs]);
      const errs: number[] = [];
      const check = (what: string, got: Tensor | null | undefined, gold: Parameters<typeof decodeValues>[0]) => {
        if (!got) throw new Error(`${what}: missing`);
        if (got.shape.join() !== gold.shape.join()) throw new Error(`${what}: shape [${got.shape}] vs [${gold.shape}]`);
        errs.push(relativeError(got.data, decodeValues(gold)));
      };
      if (outputs.length !== c.outputs.length) throw new Error(`${outputs.length} outputs, expected ${c.outputs.length}`);
      outputs.forEach((out, j) => check(`output ${j}`, out, c.outputs[j]));
      c.grads.forEach((gold, i) => gold && check(`grad ${i}`, grads[i], gold));
      for (const [name, gold] of Object.entries(c.extra ?? {})) check(name, inputs[name === 'running_mean' ? 3 : 4], gold);
      result.maxRelErr = Math.max(0, ...errs);
      result.ok = result.maxRelErr <= 1e-4;
    });
  } catch (e) {
    result.onDeviceError = e instanceof TensorOnDeviceError;
    result.error = e instanceof Error ? `${e.name}: ${e.message}` : String(e);
  }
  result.kernels = dispatchCounts(true);
  return result;
}

/**
 * pow's tensor-exponent VJP on a base computed on the device needs host values: it must refuse with
 * TensorOnDeviceError (and .data of a device result must too), never read missing data.
 */
async function loudFailures(): Promise<string[]> {
  const problems: string[] = [];
  await deviceScope(async () => {
    const x = tensorFrom([0, 1, 2], [3], 'float32', { requiresGrad: true });
    const y = tensorFrom([2, 2, 2], [3], 'float32', { requiresGrad: true });
    const out = E.sum(E.pow(E.exp(x), y));
    try {
      void out.data;
      problems.push('.data of a device tensor did not throw');
    } catch (e) {
      if (!(e instanceof TensorOnDeviceError)) problems.push(`.data threw ${String(e)}`);
    }
    try {
      backward(out);
      problems.push('pow VJP on a device base did not throw');
    } catch (e) {
      if (!(e instanceof TensorOnDeviceError)) problems.push(`pow VJP threw ${String(e)}`);
    }
    // Clip on device values (clamp): torch.clamp values and gradient, bounds and NaN included.
    const c = tensorFrom([-2, -1, 0, 0.5, 1, 2, NaN], [7], 'float32', { requiresGrad: true });
    const cy = E.clamp(E.mulScalar(c, 1), -1, 1);
    backward(E.sum(E.mul(cy, tensorFrom([1, 2, 3, 4, 5, 6, 7], [7]))));
    await readTensors([cy, c.grad]);
    const same = (a: ArrayLike<number>, b: number[]) => a.length === b.length && b.every((v, i) => Object.is(a[i], v) || (v === 0 && a[i] === 0));
    if (!same(cy.data, [-1, -1, 0, 0.5, 1, 1, NaN])) problems.push(`clamp values ${Array.from(cy.data)}`);
    if (!same(c.grad!.data, [0, 2, 3, 4, 5, 0, 0])) problems.push(`clamp gradient ${Array.from(c.grad!.data)}`);
  });
  return problems;
}

export async function runWebGpuOps(url: string): Promise<{ adapter: string; results: OpResult[]; loudFailureProblems: string[] }> {
  const cases = ((await (await fetch(url)).json()) as { cases: OpCase[] }).cases;
  const gpu = await createWebGpuBackend({ allowFallbackAdapter: true, host: referenceBackend });
  const previous = getBackend();
  setBackend(gpu);
  const results: OpResult[] = [];
  let loudFailureProblems: string[] = [];
  try {
    for (const c of cases) results.push(await runCase(c));
    loudFailureProblems = await loudFailures();
  } finally {
    setBackend(previous);
  }
  const adapter = gpu.gpuDevice.name;
  gpu.gpuDevice.destroy();
  return { adapter, results, loudFailureProblems };
}

(globalThis as unknown as { __runWebGpuOps: typeof runWebGpuOps }).__runWebGpuOps = runWebGpuOps;
