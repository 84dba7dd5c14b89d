/**
 * The model file an Inspect of a Python file found beside it (the file's own .onnx, up to date) and that file's
 * bytes, kept for the next Inspect of the same file: a warm re-run skips locating and reading the export (each
 * awaited file-system call is a turn of the extension host's event loop, 13-133 ms in all under load, session 7)
 * and pays one batch of lstat calls instead.
 *
 * An entry is used only while nothing that chose or filled it changed: the Python file (its modification time
 * decides whether the export is stale), its folder (an .onnx added, removed or renamed there changes which export is
 * found), the .onnx itself (device, inode, size, modification and change times: a rewrite, a replacement or a link
 * put in its place), and the context the caller names (the workspace folders, the model setting). Stamps are taken
 * before the work they vouch for, so a change made meanwhile is seen by the next lookup. No vscode import.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';

/** Files' identity and version as lstat sees them (links are not followed), or undefined if one is missing. */
export async function fileStamps(files: readonly string[]): Promise<string | undefined> {
  try {
    const stats = await Promise.all(files.map((f) => fs.promises.lstat(f, { bigint: true })));
    return stats.map((s) => `${s.isFile() ? 'f' : s.isDirectory() ? 'd' : 'o'}:${s.dev}:${s.ino}:${s.size}:${s.mtimeNs}:${s.ctimeNs}`).join('|');
  } catch {
    return undefined;
  }
}

/** What a lookup gives back: the export's path and its bytes, exactly as they were read. */
export interface OwnExport {
  model: string;
  bytes: Uint8Array;
}

interface Entry extends OwnExport {
  source: string;
  context: string;
  /** Stamps of the source, its folder and the model, in that order. */
  stamps: string;
}

/** The stamps of a source and its folder, taken before locating its export. */
export interface SourceStamps {
  source: string;
  stamps: string;
}

export class OwnExportCache {
  private entry: Entry | undefined;

  /** The stamps of `source` and its folder, to take before locating its export (store() needs them). */
  async stampSource(source: string): Promise<SourceStamps | undefined> {
    const stamps = await fileStamps([source, path.dirname(source)]);
    return stamps === undefined ? undefined : { source, stamps };
  }

  /**
   * Keeps `model` (a regular file, not a link) and its bytes for `source`, when the source and its folder still
   * have the stamps taken before locating, and the model has those it had before it was read (`modelStamps`).
   */
  async store(before: SourceStamps, context: string, model: string, modelStamps: string | undefined, bytes: Uint8Array): Promise<void> {
    this.entry = undefined;
    if (modelStamps === undefined || !modelStamps.startsWith('f:')) return;
    const now = await fileStamps([before.source, path.dirname(before.source), model]);
    if (now !== `${before.stamps}|${modelStamps}`) return;
    this.entry = { source: before.source, context, model, bytes, stamps: now };
  }

  /** The kept export of `source` in `context` if none of its files changed since; else undefined (and forgotten). */
  async lookup(source: string, context: string): Promise<OwnExport | undefined> {
    const e = this.entry;
    if (!e || e.source !== source || e.context !== context) return undefined;
    const now = await fileStamps([source, path.dirname(source), e.model]);
    if (now !== e.stamps) {
      if (this.entry === e) this.entry = undefined;
      return undefined;
    }
    return { model: e.model, bytes: e.bytes };
  }

  clear(): void {
    this.entry = undefined;
  }
}
