/**
 * A run on a device backend (WebGPU) that fails - an op that needs host values, device lost, out of
 * memory - is repeated on the host backend, which stays selected; the caller is told why. Runs on host
 * backends are not retried (their errors are the model's).
 */
import { Backend } from '../engine/backend/backend';
import { getBackend, setBackend } from '../engine/backend/registry';
import { isDeviceBackend } from '../engine/backend/device';
import { OnnxImportError } from '../engine/onnx/errors';

export function describeError(err: unknown): string {
  return err instanceof OnnxImportError ? err.message : err instanceof Error ? `${err.name}: ${err.message}` : String(err);
}

export async function runWithFallback<T>(run: () => Promise<T>, fallback: Backend | null, onFallback: (reason: string, backend: Backend) => void): Promise<T> {
  const backend = getBackend();
  try {
    return await run();
  } catch (err) {
    if (!isDeviceBackend(backend) || !fallback) throw err;
    const reason = `WebGPU run failed (${describeError(err)}); reran on ${fallback.name}`;
    setBackend(fallback);
    onFallback(reason, fallback);
    return run();
  }
}
