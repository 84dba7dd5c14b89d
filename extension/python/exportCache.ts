/**
 * Exports made for the user, cached outside the workspace: one folder per key. The key covers what changes
 * the export: the file's content, the interpreter and torch version, the helper's code, the model class and
 * input the user chose, the export options. The local files the model imported (other modules of the
 * project) are recorded by the helper with their hashes and checked on every lookup, so editing a module the
 * model imports makes a new export too. No vscode import.
 */
import { createHash } from 'node:crypto';
import * as fs from 'node:fs/promises';
import * as path from 'node:path';

export interface ExportKeyParts {
  /** Absolute path of the Python file. */
  file: string;
  content: string | Uint8Array;
  python: string;
  torch: string;
  /** Hash of the helper script (a new helper version exports anew). */
  helper: string;
  className?: string | null;
  inputShape?: string | null;
  exporter?: string;
}

export function sha256(data: string | Uint8Array): string {
  return createHash('sha256').update(data).digest('hex');
}

export function exportKey(p: ExportKeyParts): string {
  return sha256(JSON.stringify({
    v: 1,
    file: path.resolve(p.file),
    content: sha256(p.content),
    python: p.python,
    torch: p.torch,
    helper: p.helper,
    className: p.className ?? null,
    inputShape: p.inputShape ?? null,
    exporter: p.exporter ?? 'auto',
  }));
}

/** What the helper reports about an export (its result message), plus where it is. */
export interface ExportMeta {
  onnx: string;
  className: string;
  recipe: string;
  exporter: 'torchscript' | 'dynamo';
  opset: number;
  torch: string;
  python: string;
  notes: string[];
  inputs: { name: string; shape: number[]; dtype: string }[];
  /** Local modules the model imported, with their content hashes. */
  files: { path: string; sha256: string }[];
  seconds: number;
  /** When the export was made (ms since the epoch). */
  exportedAt?: number;
}

export const META = 'gradlens-export.json';

/** The folder of a key: readable (file stem) and unique (key prefix). */
export function entryDir(root: string, file: string, key: string): string {
  return path.join(root, `${path.basename(file, path.extname(file))}-${key.slice(0, 16)}`);
}

/** The cached export of `key`, if it exists and every local module it imported is unchanged. */
export async function lookupExport(root: string, file: string, key: string): Promise<{ meta: ExportMeta; stale?: string } | undefined> {
  const dir = entryDir(root, file, key);
  let meta: ExportMeta;
  try {
    meta = JSON.parse(await fs.readFile(path.join(dir, META), 'utf8')) as ExportMeta;
    await fs.access(meta.onnx);
  } catch {
    return undefined;
  }
  for (const f of meta.files ?? []) {
    let now: string | undefined;
    try {
      now = sha256(await fs.readFile(f.path));
    } catch {
      now = undefined;
    }
    if (now !== f.sha256) return { meta, stale: `${path.basename(f.path)} changed` };
  }
  // Seen now: pruning keeps the recently used entries.
  const t = new Date();
  await fs.utimes(dir, t, t).catch(() => {});
  return { meta };
}

/**
 * A fresh folder for the helper to export into; commit() moves it into place under a key (known only after
 * the export: the class the helper settled on), discard() removes it.
 */
export async function stagingDir(root: string, file: string): Promise<{ dir: string; commit(meta: ExportMeta, key: string): Promise<ExportMeta>; discard(): Promise<void> }> {
  await fs.mkdir(root, { recursive: true });
  const dir = await fs.mkdtemp(path.join(root, '.staging-'));
  return {
    dir,
    async commit(meta: ExportMeta, key: string): Promise<ExportMeta> {
      const final = entryDir(root, file, key);
      const moved: ExportMeta = { ...meta, onnx: path.join(final, path.relative(dir, meta.onnx)), exportedAt: meta.exportedAt ?? Date.now() };
      await fs.writeFile(path.join(dir, META), JSON.stringify(moved, null, 2));
      await fs.rm(final, { recursive: true, force: true });
      await fs.rename(dir, final);
      return moved;
    },
    discard: () => fs.rm(dir, { recursive: true, force: true }),
  };
}

/** Removes all but the `keep` most recently used entries (and staging folders older than an hour). */
export async function pruneExports(root: string, keep = 30): Promise<void> {
  let names: string[];
  try {
    names = await fs.readdir(root);
  } catch {
    return;
  }
  const entries = await Promise.all(names.map(async (n) => ({ n, s: await fs.stat(path.join(root, n)).catch(() => undefined) })));
  const now = Date.now();
  const dirs = entries.filter((e) => e.s?.isDirectory());
  for (const e of dirs.filter((d) => d.n.startsWith('.staging-') && now - d.s!.mtimeMs > 3_600_000)) await fs.rm(path.join(root, e.n), { recursive: true, force: true });
  const live = dirs.filter((d) => !d.n.startsWith('.staging-')).sort((a, b) => b.s!.mtimeMs - a.s!.mtimeMs);
  for (const e of live.slice(keep)) await fs.rm(path.join(root, e.n), { recursive: true, force: true });
}
