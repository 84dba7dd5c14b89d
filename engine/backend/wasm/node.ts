/**
 * Node-only loading of the WebAssembly kernels from disk. Kept apart from ./index.ts so browser
 * bundles of the engine never pull in node:fs.
 *
 * Lookup: an explicit path, else $GRADIENT_LENS_WASM_DIR, else walking up from this file for
 * build/wasm/<file> (repository and compiled tests) or <dir>/<file> (the bundled extension, dist/).
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Backend } from '../backend';
import { WASM_KERNEL_FILES, createWasmBackend, preferredKernelFile } from './index';

/** Path of a kernel file, or null when it is not built (run `npm run build:wasm`). */
export function findKernelFile(file: string = preferredKernelFile()): string | null {
  const candidates: string[] = [];
  const envDir = process.env.GRADIENT_LENS_WASM_DIR;
  if (envDir) candidates.push(path.join(envDir, file));
  for (let dir = __dirname; ; dir = path.dirname(dir)) {
    candidates.push(path.join(dir, 'build', 'wasm', file), path.join(dir, file));
    if (path.dirname(dir) === dir) break;
  }
  return candidates.find((p) => fs.existsSync(p)) ?? null;
}

/** The kernel bytes (relaxed-SIMD build when this Node accepts it, else SIMD128), or throws with a hint. */
export function readKernelBytes(file?: string): Uint8Array {
  const wanted = file ?? preferredKernelFile();
  const found = findKernelFile(wanted) ?? (file ? null : findKernelFile(WASM_KERNEL_FILES.simd));
  if (!found) throw new Error(`WebAssembly kernels ${wanted} not found; run \`npm run build:wasm\``);
  return fs.readFileSync(found);
}

/** The 'wasm-simd' backend, loaded from build/wasm (or `file`, a name or path). */
export async function loadWasmBackendNode(file?: string): Promise<Backend & { readonly relaxedSimd: boolean }> {
  const bytes = file && fs.existsSync(file) ? fs.readFileSync(file) : readKernelBytes(file);
  return createWasmBackend(bytes);
}
