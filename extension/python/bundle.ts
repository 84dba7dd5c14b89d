/**
 * Tensor bundles exchanged with the Python helper (python/gradlens_export.py read_bundle / write_bundle):
 * `<name>` is JSON (tensors with dtype, shape, byte offset and length, plus free fields) and `<name>.bin`
 * the raw little-endian data, one tensor after the other.
 */
import * as fs from 'node:fs/promises';
import type { CapturedTensor, RunCapture } from '../../engine/inspect/capture';
import type { DType, TypedArray } from '../../engine/dtype';

export interface BundleEntry {
  name: string;
  dtype: DType;
  shape: number[];
  offset: number;
  bytes: number;
}

const CTORS = { float32: Float32Array, float64: Float64Array, int32: Int32Array, bool: Uint8Array } as const;

const LITTLE_ENDIAN = new Uint8Array(new Uint16Array([1]).buffer)[0] === 1;

function bytesOf(data: TypedArray): Uint8Array {
  if (!LITTLE_ENDIAN) throw new Error('tensor bundles are little-endian; this machine is not');
  return new Uint8Array(data.buffer, data.byteOffset, data.byteLength);
}

/** Writes tensors and fields as a bundle at `path` (+ `.bin`). */
export async function writeBundle(path: string, tensors: readonly CapturedTensor[], fields: Record<string, unknown>): Promise<void> {
  const entries: BundleEntry[] = [];
  const chunks: Uint8Array[] = [];
  let offset = 0;
  for (const t of tensors) {
    const bytes = bytesOf(t.data);
    entries.push({ name: t.name, dtype: t.dtype, shape: t.shape, offset, bytes: bytes.byteLength });
    chunks.push(bytes);
    offset += bytes.byteLength;
  }
  await fs.writeFile(`${path}.bin`, Buffer.concat(chunks));
  await fs.writeFile(path, JSON.stringify({ ...fields, tensors: entries }));
}

/** Reads a bundle: its fields and its tensors by name. */
export async function readBundle(path: string): Promise<{ fields: Record<string, unknown>; tensors: Map<string, CapturedTensor> }> {
  const fields = JSON.parse(await fs.readFile(path, 'utf8')) as Record<string, unknown> & { tensors?: BundleEntry[] };
  const blob = await fs.readFile(`${path}.bin`);
  const tensors = new Map<string, CapturedTensor>();
  for (const e of fields.tensors ?? []) {
    const Ctor = CTORS[e.dtype];
    if (!Ctor) throw new Error(`${path}: tensor '${e.name}' has an unknown dtype '${e.dtype}'`);
    if (e.offset + e.bytes > blob.byteLength || e.bytes % Ctor.BYTES_PER_ELEMENT !== 0) throw new Error(`${path}: tensor '${e.name}' lies outside ${path}.bin`);
    // A copy at offset 0 of its own buffer (the Buffer's offset need not be aligned for the element size).
    const bytes = new Uint8Array(e.bytes);
    bytes.set(blob.subarray(e.offset, e.offset + e.bytes));
    const data = new Ctor(bytes.buffer);
    const size = e.shape.reduce((a, b) => a * b, 1);
    if (data.length !== size) throw new Error(`${path}: tensor '${e.name}' holds ${data.length} values for shape [${e.shape.join(', ')}]`);
    tensors.set(e.name, { name: e.name, dtype: e.dtype, shape: e.shape, data });
  }
  delete fields.tensors;
  return { fields, tensors };
}

/**
 * The bundle the helper's verify mode reads: the run's inputs (`input:<name>`), targets, the weights
 * (`value:<name>`) and dropout masks (`dropout:<node>`), with the loss, the names of the outputs, of the
 * parameters whose gradients to return and of every Dropout node run (in order).
 */
export async function writeCaptureBundle(path: string, capture: RunCapture): Promise<void> {
  const tensors: CapturedTensor[] = [
    ...capture.inputs.map((t) => ({ ...t, name: `input:${t.name}` })),
    ...capture.values.map((t) => ({ ...t, name: `value:${t.name}` })),
    ...capture.dropout.map((t) => ({ ...t, name: `dropout:${t.name}` })),
    ...(capture.loss.targets ? [{ ...capture.loss.targets, name: 'targets' }] : []),
  ];
  const { targets, ...loss } = capture.loss;
  await writeBundle(path, tensors, {
    dtype: capture.dtype,
    mode: capture.mode,
    outputs: capture.outputs,
    loss,
    values: capture.values.map((t) => t.name),
    gradients: capture.gradients.map((t) => t.name),
    dropoutNodes: capture.dropoutNodes,
  });
}

/**
 * A capture as it arrives from the webview. Typed arrays normally cross postMessage as typed arrays; an
 * older host may turn them into plain arrays or index-keyed objects: rebuild those instead of failing.
 */
export function normalizeCapture(capture: RunCapture): RunCapture {
  const fix = (t: CapturedTensor): CapturedTensor => {
    const Ctor = CTORS[t.dtype];
    if (t.data instanceof Ctor) return t;
    const values = Array.isArray(t.data) ? t.data : Object.values(t.data as unknown as Record<string, number>);
    return { ...t, data: Ctor.from(values) };
  };
  return {
    ...capture,
    inputs: capture.inputs.map(fix),
    values: capture.values.map(fix),
    gradients: capture.gradients.map(fix),
    dropout: capture.dropout.map(fix),
    loss: { ...capture.loss, targets: capture.loss.targets ? fix(capture.loss.targets) : null },
  };
}
