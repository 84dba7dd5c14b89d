/**
 * External tensor data (initializers saved with `save_as_external_data`, what torch.onnx.export's
 * dynamo exporter writes by default as `model.onnx.data`): which files a model names and how many
 * bytes of each it needs, so a host can read exactly those files (and check them) before loading.
 */
import { OnnxImportError } from './errors';
import { DataType, ModelProto, TensorProto, decodeModel } from './proto';
import { sizeOf } from '../shape';

/** One external file a model reads, with the bytes its tensors need. */
export interface ExternalFileNeed {
  /** The `location` entry as written in the model (a path relative to the model's folder). */
  location: string;
  /** The location as a normalized relative path with '/' separators ('weights/a.bin'). */
  path: string;
  /** Smallest file size that holds every tensor stored there: max(offset + length). */
  bytesNeeded: number;
  /** Names of the tensors stored in it. */
  tensors: string[];
}

const ELEMENT_BYTES: Record<number, number> = {
  [DataType.FLOAT]: 4, [DataType.DOUBLE]: 8, [DataType.FLOAT16]: 2, [DataType.BFLOAT16]: 2, [DataType.INT8]: 1,
  [DataType.UINT8]: 1, [DataType.INT16]: 2, [DataType.UINT16]: 2, [DataType.INT32]: 4, [DataType.UINT32]: 4,
  [DataType.INT64]: 8, [DataType.UINT64]: 8, [DataType.BOOL]: 1, [DataType.COMPLEX64]: 8, [DataType.COMPLEX128]: 16,
};

/**
 * The relative path an external-data `location` names, with '/' separators; throws EXTERNAL_DATA for
 * a location that could leave the model's folder (absolute, a drive or UNC path, a '..' segment) or is
 * not a plain path (empty, a NUL or control character, a URL).
 */
export function externalDataPath(location: string, tensor: string): string {
  const bad = (why: string): never => {
    throw new OnnxImportError('EXTERNAL_DATA', `tensor '${tensor}' names the external data file ${JSON.stringify(location)}, which ${why}; external data must be a file inside the model's folder (a relative path without '..')`);
  };
  if (location === '') bad('is empty');
  // eslint-disable-next-line no-control-regex
  if (/[\u0000-\u001f]/.test(location)) bad('contains control characters');
  if (/^[a-zA-Z][a-zA-Z0-9+.-]*:/.test(location)) bad('is a URL or a drive path');
  const normalized = location.replace(/\\/g, '/');
  if (normalized.startsWith('/')) bad('is an absolute path');
  const parts = normalized.split('/').filter((p) => p !== '' && p !== '.');
  if (parts.length === 0) bad('names a folder, not a file');
  if (parts.some((p) => p === '..')) bad("goes up a folder ('..')");
  return parts.join('/');
}

function entries(t: TensorProto): Record<string, string> {
  const info: Record<string, string> = {};
  for (const e of t.externalData) info[e.key] = e.value;
  return info;
}

/** Every TensorProto of a model that may hold external data: initializers and Constant values. */
function tensorsOf(model: ModelProto): TensorProto[] {
  const out = [...(model.graph?.initializer ?? [])];
  for (const n of model.graph?.node ?? []) for (const a of n.attribute) if (a.t) out.push(a.t);
  return out;
}

/** The external files a decoded model reads, with the bytes each must hold at least. */
export function externalFilesOf(model: ModelProto): ExternalFileNeed[] {
  const byPath = new Map<string, ExternalFileNeed>();
  for (const t of tensorsOf(model)) {
    if (t.dataLocation !== 1 && t.externalData.length === 0) continue;
    const info = entries(t);
    const location = info.location ?? '';
    const path = externalDataPath(location, t.name);
    const offset = Number(info.offset ?? 0);
    const elementBytes = ELEMENT_BYTES[t.dataType];
    const length = info.length !== undefined ? Number(info.length) : elementBytes !== undefined ? sizeOf(t.dims) * elementBytes : 0;
    if (!(Number.isSafeInteger(offset) && offset >= 0 && Number.isSafeInteger(length) && length >= 0)) {
      throw new OnnxImportError('EXTERNAL_DATA', `tensor '${t.name}' has an invalid external data range (offset ${info.offset}, length ${info.length}) in "${location}"`);
    }
    const need = byPath.get(path) ?? { location, path, bytesNeeded: 0, tensors: [] };
    need.bytesNeeded = Math.max(need.bytesNeeded, offset + length);
    need.tensors.push(t.name);
    byPath.set(path, need);
  }
  return [...byPath.values()];
}

/** The external files the model in `bytes` reads (decodes the model; throws OnnxImportError for bad bytes). */
export function externalFilesNeeded(bytes: Uint8Array): ExternalFileNeed[] {
  return externalFilesOf(decodeModel(bytes));
}
