/**
 * Which files Gradient Lens may read, and reading them safely. No vscode import, so the rules are tested in
 * Node (test/fileAccess.test.ts).
 *
 * - A model named by the `gradientLens.model` setting must resolve, symbolic links followed, to a file
 *   inside a workspace folder: a workspace's settings are the workspace author's, not the user's (VS Code
 *   also ignores that setting in untrusted workspaces: package.json `restrictedConfigurations`).
 * - Only regular files are read (not a directory, FIFO, socket or device such as /dev/zero), opened without
 *   blocking, checked again on the open descriptor (the path may change in between), and read up to a size
 *   limit: a file larger than the limit is refused before reading, one that grows while read is cut off and
 *   refused.
 * - Errors name the file and the rule; nothing of a file's content is ever put in a message.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

export class FileAccessError extends Error {
  constructor(message: string) {
    super(message);
    this.name = 'FileAccessError';
  }
}

/** "1.5 GB" for messages. */
function size(bytes: number): string {
  const mb = bytes / (1024 * 1024);
  return mb >= 1024 ? `${(mb / 1024).toFixed(1)} GB` : mb >= 1 ? `${mb.toFixed(mb >= 10 ? 0 : 1)} MB` : `${bytes} bytes`;
}

/** Whether `child` is `root` or lies under it (both absolute, already resolved). */
export function isInside(root: string, child: string): boolean {
  const rel = path.relative(root, child);
  // '..' as a whole first component, not as a prefix: a file named '..foo' is inside.
  return rel === '' || (rel !== '..' && !rel.startsWith(`..${path.sep}`) && !path.isAbsolute(rel));
}

/**
 * The real path of a model named by the `gradientLens.model` setting: relative paths against the first
 * workspace folder (the setting's own folder when known), absolute ones as given; links followed. Throws
 * FileAccessError unless it lies inside one of `folders` (absolute paths of the workspace folders).
 */
export async function resolveConfiguredModel(configured: string, folders: readonly string[]): Promise<string> {
  const text = configured.trim();
  if (!text) throw new FileAccessError('the gradientLens.model setting is empty');
  if (text.includes('\0')) throw new FileAccessError('the gradientLens.model setting is not a valid path');
  if (folders.length === 0) throw new FileAccessError(`the gradientLens.model setting ("${text}") needs an open workspace folder: models are read only from inside the workspace (use Inspect Model to pick a file instead)`);
  const candidate = path.isAbsolute(text) ? path.normalize(text) : path.resolve(folders[0], text);
  try {
    return await insideWorkspace(candidate, folders);
  } catch (e) {
    if (!(e instanceof FileAccessError)) throw e;
    throw new FileAccessError(e.message.startsWith('missing') ? `the configured model "${text}" does not exist` : `the configured model "${text}" is outside the workspace; gradientLens.model must name a file inside a workspace folder (use Inspect Model to pick a file elsewhere)`);
  }
}

/**
 * The real path of `file` (links followed) when it lies inside one of `folders`; else FileAccessError
 * ("missing ..." when it does not exist).
 */
export async function insideWorkspace(file: string, folders: readonly string[]): Promise<string> {
  let real: string;
  try {
    real = await fs.promises.realpath(file);
  } catch {
    throw new FileAccessError(`missing: ${path.basename(file)} does not exist`);
  }
  const roots = await Promise.all(folders.map((f) => fs.promises.realpath(f).catch(() => path.resolve(f))));
  if (!roots.some((r) => isInside(r, real))) throw new FileAccessError(`${path.basename(file)} resolves to a file outside the workspace`);
  return real;
}

/**
 * Reads a regular file of at most `maxBytes` bytes. Throws FileAccessError for anything else (missing,
 * not a regular file, too large), naming the file but never its content.
 */
export async function readRegularFile(file: string, maxBytes: number, what = 'the model'): Promise<Uint8Array> {
  const name = path.basename(file);
  let st: fs.Stats;
  try {
    st = await fs.promises.stat(file);
  } catch {
    throw new FileAccessError(`${what} ${name} does not exist or cannot be accessed`);
  }
  if (!st.isFile()) throw new FileAccessError(`${what} ${name} is not a regular file (${kind(st)}); only regular files are read`);
  if (st.size > maxBytes) throw new FileAccessError(`${what} ${name} is ${size(st.size)}, above the limit of ${size(maxBytes)} (gradientLens.run.memoryBudgetMB)`);
  // O_NONBLOCK: if the path was swapped for a FIFO since stat, opening must not wait for a writer.
  const handle = await fs.promises.open(file, fs.constants.O_RDONLY | (fs.constants.O_NONBLOCK ?? 0)).catch(() => {
    throw new FileAccessError(`${what} ${name} cannot be opened`);
  });
  try {
    const fst = await handle.stat();
    if (!fst.isFile()) throw new FileAccessError(`${what} ${name} is not a regular file (${kind(fst)}); only regular files are read`);
    if (fst.size > maxBytes) throw new FileAccessError(`${what} ${name} is ${size(fst.size)}, above the limit of ${size(maxBytes)} (gradientLens.run.memoryBudgetMB)`);
    // One byte more than allowed tells a file that grew past the limit from one that ends at it.
    const buffer = new Uint8Array(Math.min(maxBytes, fst.size) + 1);
    let filled = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buffer, filled, buffer.length - filled, filled);
      if (bytesRead === 0) break;
      filled += bytesRead;
      if (filled === buffer.length) break;
    }
    if (filled > maxBytes || filled > fst.size) throw new FileAccessError(`${what} ${name} grew while it was read (now over ${size(Math.min(filled, maxBytes))}); try again when it is written completely`);
    // Its own ArrayBuffer, exactly the bytes read (a Node Buffer would be pooled and not cross to the webview as bytes).
    return buffer.slice(0, filled);
  } finally {
    await handle.close();
  }
}

function kind(st: fs.Stats): string {
  if (st.isDirectory()) return 'a directory';
  if (st.isFIFO()) return 'a named pipe';
  if (st.isSocket()) return 'a socket';
  if (st.isCharacterDevice() || st.isBlockDevice()) return 'a device';
  return 'not a file';
}
