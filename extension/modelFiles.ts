/**
 * Reads an ONNX model and the external data files it names (torch.onnx.export's dynamo exporter writes
 * the weights to `model.onnx.data` next to the model by default). The model decides which files are
 * read, so every location is checked before anything is read: a relative path inside the model's
 * folder (engine/onnx/external.ts), a regular file (not a folder, not a symbolic link that could point
 * elsewhere), at least as large as the tensors stored in it say, and within a size budget.
 *
 * No `vscode` import: the file system comes in as an interface, so this runs under Node's test runner.
 */
import * as path from 'node:path';
import { externalFilesNeeded } from '../engine/onnx/external';

export interface ModelFileStat {
  type: 'file' | 'directory' | 'symlink' | 'other';
  size: number;
}

/** What readModelFiles needs of a file system: posix paths (a vscode.Uri's `path`). */
export interface ModelFileSystem {
  stat(filePath: string): Promise<ModelFileStat>;
  read(filePath: string): Promise<Uint8Array>;
}

export interface ModelFiles {
  bytes: Uint8Array;
  /** Bytes of each external file, by the `location` the model names it with. */
  externalData: Record<string, Uint8Array>;
  /** Model plus external files, in bytes. */
  totalBytes: number;
}

/** Largest model (model file plus external data) the extension reads: 2 GiB, beyond what a webview engine can run. */
export const MAX_MODEL_BYTES = 2 * 1024 ** 3;

export class ModelFileError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'ModelFileError';
  }
}

function mib(n: number): string {
  return `${(n / 1024 ** 2).toFixed(1)} MiB`;
}

/**
 * The model's bytes and its external data files. Throws ModelFileError naming the file at fault (or
 * an OnnxImportError when the model bytes are not ONNX at all).
 */
export async function readModelFiles(modelPath: string, fs: ModelFileSystem, maxBytes = MAX_MODEL_BYTES): Promise<ModelFiles> {
  const modelStat = await fs.stat(modelPath);
  if (modelStat.type !== 'file') throw new ModelFileError(`${modelPath} is not a regular file`);
  if (modelStat.size > maxBytes) throw new ModelFileError(`${modelPath} is ${mib(modelStat.size)}, more than the ${mib(maxBytes)} Gradient Lens can load`);
  const bytes = await fs.read(modelPath);
  const folder = path.posix.dirname(modelPath);
  const needs = externalFilesNeeded(bytes);
  let total = bytes.length;
  const externalData: Record<string, Uint8Array> = {};
  for (const need of needs) {
    const file = path.posix.join(folder, need.path);
    const what = `external data file "${need.location}" (named by ${need.tensors.length} tensor${need.tensors.length === 1 ? '' : 's'}, e.g. '${need.tensors[0]}')`;
    let stat: ModelFileStat;
    try {
      stat = await fs.stat(file);
    } catch {
      throw new ModelFileError(`the ${what} is missing: expected ${file} next to the model. Copy it there with the .onnx (torch.onnx.export writes both), or export with external_data=False for a single file.`);
    }
    if (stat.type === 'symlink') throw new ModelFileError(`the ${what} is a symbolic link; Gradient Lens reads only regular files inside the model's folder`);
    if (stat.type !== 'file') throw new ModelFileError(`the ${what} is not a regular file (${file})`);
    if (stat.size < need.bytesNeeded) throw new ModelFileError(`the ${what} has ${stat.size} bytes but its tensors need ${need.bytesNeeded}: the file is truncated or belongs to another export`);
    total += stat.size;
    if (total > maxBytes) throw new ModelFileError(`the model and its external data are ${mib(total)} or more, more than the ${mib(maxBytes)} Gradient Lens can load`);
    externalData[need.location] = await fs.read(file);
  }
  return { bytes, externalData, totalBytes: total };
}
