/**
 * The Python source mapper: tree-sitter index of a PyTorch model file, module paths -> source lines,
 * watch and attention sites. Pure Node (no `vscode`); all lines 0-based, columns UTF-16.
 *
 *   const parser = await createPythonParser(distDir);          // once
 *   const index = indexPythonSource(parser, text, fsPath);     // per document version
 *   const mapping = mapModulePaths(index, report.modules.map((m) => m.path));
 *   const anchored = applySourceMetadata(mapping, stackTraceLines, { file: fsPath, source: text });
 */
import type { PythonParser } from './parser';
import { indexPythonSource } from './indexer';
import { mapModulePaths } from './mapper';
import { applySourceMetadata } from './metadata';
import type { MapOptions, MetadataLocation, ModuleMapping, SourceIndex } from './types';

export * from './types';
export { createPythonParser, nodeModulesWasmPaths, RUNTIME_WASM, GRAMMAR_WASM } from './parser';
export type { PythonParser, PythonParserPaths } from './parser';
export { indexPythonSource } from './indexer';
export { mapModulePaths } from './mapper';
export { applySourceMetadata, sameSourceFile } from './metadata';
export type { MetadataOptions } from './metadata';
export { findClass } from './classes';

/** Index, map and (when given) apply metadata in one call. */
export function mapSource(
  parser: PythonParser,
  source: string,
  paths: readonly string[],
  options: MapOptions & { file?: string; metadata?: ReadonlyMap<string, MetadataLocation> | Readonly<Record<string, MetadataLocation>> } = {},
): { index: SourceIndex; mapping: ModuleMapping } {
  const index = indexPythonSource(parser, source, options.file);
  let mapping = mapModulePaths(index, paths, { rootClass: options.rootClass });
  if (options.metadata && options.file !== undefined) mapping = applySourceMetadata(mapping, options.metadata, { file: options.file, source });
  return { index, mapping };
}
