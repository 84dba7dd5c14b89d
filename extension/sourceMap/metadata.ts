/**
 * Prefers the model's own file/line metadata (ONNX stack traces: 1-based lines) over tree-sitter when
 * it points into the open file; tree-sitter stays the fallback. Lines in the result are 0-based.
 */
import { lineRange } from './syntax';
import type { MetadataLocation, ModuleMapping, ResolvedModule } from './types';

function parts(file: string): string[] {
  return file
    .replace(/\\/g, '/')
    .replace(/^file:\/\//, '')
    .split('/')
    .filter((p) => p !== '' && p !== '.');
}

/**
 * Does a file named in model metadata (`tiny_gpt.py`, `examples/tiny_gpt.py`, `/home/u/x/tiny_gpt.py`)
 * denote `openFile` (an absolute path)? The metadata path's components must be a suffix of the open
 * file's (so a bare name matches by base name). Case-insensitive on Windows-style paths.
 */
export function sameSourceFile(metadataFile: string, openFile: string): boolean {
  if (!metadataFile || !openFile) return false;
  const insensitive = /^[a-zA-Z]:[\\/]/.test(openFile) || /^[a-zA-Z]:[\\/]/.test(metadataFile);
  const norm = (s: string) => (insensitive ? s.toLowerCase() : s);
  const a = parts(norm(metadataFile)).filter((p) => p !== '..');
  const b = parts(norm(openFile));
  if (a.length === 0 || a.length > b.length) return false;
  for (let i = 1; i <= a.length; i++) if (a[a.length - i] !== b[b.length - i]) return false;
  return true;
}

export interface MetadataOptions {
  /** The open file's path (what metadata files are compared with). */
  file: string;
  /** The open file's text, to place metadata-only anchors on the code of the line and to reject lines past the end. */
  source?: string;
}

/**
 * Returns a copy of `mapping` where every path (resolved or not) whose metadata points into
 * `options.file` is anchored on that line: `line` and `metadataLine` become the metadata line, which
 * is added to `callLines` (stack traces point at the forward-pass line that ran the module), and
 * `origin` says where the mapping came from. A path tree-sitter could not resolve becomes resolved
 * with origin 'metadata'. Metadata for other files, or past the end of the file, is ignored.
 */
export function applySourceMetadata(
  mapping: ModuleMapping,
  metadata: ReadonlyMap<string, MetadataLocation> | Readonly<Record<string, MetadataLocation>>,
  options: MetadataOptions,
): ModuleMapping {
  const entries: [string, MetadataLocation][] = metadata instanceof Map ? [...metadata.entries()] : Object.entries(metadata as Record<string, MetadataLocation>);
  const lines = options.source !== undefined ? options.source.split(/\r\n|\r|\n/) : null;
  const resolved = new Map(mapping.resolved);
  const unresolved = new Map(mapping.unresolved);
  for (const [path, loc] of entries) {
    if (!loc || typeof loc.line !== 'number' || !Number.isFinite(loc.line) || typeof loc.file !== 'string') continue;
    if (!sameSourceFile(loc.file, options.file)) continue;
    const line = Math.floor(loc.line) - 1;
    if (line < 0 || (lines && line >= lines.length)) continue;
    const existing = resolved.get(path);
    if (existing) {
      resolved.set(path, {
        ...existing,
        line,
        metadataLine: line,
        callLines: [...new Set([...existing.callLines, line])].sort((a, b) => a - b),
        origin: 'source+metadata',
      });
      continue;
    }
    const missing = unresolved.get(path);
    if (!missing) continue;
    const definition = lines ? lineRange(line, lines) : { line, column: 0, endColumn: 0 };
    const entry: ResolvedModule = {
      path,
      modulePath: path,
      file: mapping.file ?? options.file,
      line,
      definition,
      callLines: [line],
      calls: [],
      kind: 'module',
      origin: 'metadata',
      metadataLine: line,
      approximate: `from the model's metadata only (${missing.reason})`,
    };
    resolved.set(path, entry);
    unresolved.delete(path);
  }
  return { ...mapping, resolved, unresolved };
}
