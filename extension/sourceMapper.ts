/** The SourceMapper used by the extension: tree-sitter indexes of open Python documents, cached by version. */
import * as path from 'node:path';
import type * as vscode from 'vscode';
import type { LineAnchor } from './overlay/model';
import type { WatchSpec } from './protocol';
import { applySourceMetadata, createPythonParser, indexPythonSource, mapModulePaths, MetadataLocation, PythonParser, SourceIndex, WatchSite } from './sourceMap';
import type { AttentionSite, DocumentMapping, ModuleClass, ModuleSources, SourceMapper } from './sourceAnchors';

/** The label a watch is logged under: the same on the request to the engine and on the overlay. */
export function watchTarget(w: WatchSite): string {
  return w.expression.replace(/\s+/g, ' ').trim() || `line ${w.valueLine + 1}`;
}

/** Turns a report into the anchors, watches and fallbacks of one document (pure apart from the parser). */
export function documentMapping(index: SourceIndex, report: ModuleSources, file: string, source: string, rootClass?: string): DocumentMapping {
  const paths = report.modules.map((m) => m.path).filter((p) => p !== '');
  const metadata: Record<string, MetadataLocation> = {};
  for (const m of report.modules) if (m.path !== '' && m.source) metadata[m.path] = { file: m.source.file, line: m.source.line };
  const mapping = applySourceMetadata(mapModulePaths(index, paths, { rootClass }), metadata, { file, source });
  const anchors: LineAnchor[] = [];
  const classOf: Record<string, string> = {};
  for (const [p, m] of mapping.resolved) {
    anchors.push({ modulePath: p, line: m.definition.line, kind: 'definition' });
    // Call sites keep their columns (a line may nest calls: `self.mlp(self.norm2(x))`); lines known only from
    // the model's metadata have none.
    for (const c of m.calls) anchors.push({ modulePath: p, line: c.line, kind: 'call', column: c.column, endColumn: c.endColumn, ...(c.through ? { through: c.through } : {}) });
    for (const l of m.callLines) if (!m.calls.some((c) => c.line === l)) anchors.push({ modulePath: p, line: l, kind: 'call' });
    if (m.metadataLine !== undefined) anchors.push({ modulePath: p, line: m.metadataLine, kind: 'call' });
    // The class the source constructs, when it names it for sure (not a guess among loop elements, not a
    // submodule inside a torch.nn class, not a parameter).
    if (m.className && !m.approximate && m.kind !== 'parameter' && m.origin !== 'metadata') classOf[p] = m.className;
  }
  if (mapping.root) classOf[''] = mapping.root.name;
  return {
    anchors,
    fallbackLine: mapping.root?.line ?? 0,
    unmapped: [...mapping.unresolved.values()].map((u) => ({ path: u.path, reason: u.reason })),
    watchLines: index.watches.map((w) => ({ line: w.line, target: watchTarget(w) })),
    classOf,
    instances: Object.fromEntries(mapping.instances),
  };
}

export function createSourceMapper(extensionUri: vscode.Uri, output: vscode.OutputChannel): SourceMapper {
  const dist = path.join(extensionUri.fsPath, 'dist');
  const cache = new Map<string, { version: number; index: SourceIndex }>();
  let parser: Promise<PythonParser> | null = null;

  async function indexOf(document: vscode.TextDocument): Promise<SourceIndex> {
    const key = document.uri.toString();
    const hit = cache.get(key);
    if (hit && hit.version === document.version) return hit.index;
    parser ??= createPythonParser(dist).catch((err) => {
      output.appendLine(`could not load the Python parser: ${err instanceof Error ? err.message : err}`);
      parser = null;
      throw err;
    });
    const index = indexPythonSource(await parser, document.getText(), document.uri.fsPath);
    for (const e of index.errors.slice(0, 3)) output.appendLine(`${path.basename(document.uri.fsPath)}:${e.line + 1}: syntax error; overlays cover the code that parses`);
    cache.set(key, { version: document.version, index });
    return index;
  }

  return {
    async watches(document): Promise<WatchSpec[]> {
      const index = await indexOf(document);
      const file = path.basename(document.uri.fsPath);
      return index.watches.map((w) => ({ target: watchTarget(w), file, line: w.valueLine + 1 }));
    },
    async map(document, report, rootClass) {
      return documentMapping(await indexOf(document), report, document.uri.fsPath, document.getText(), rootClass);
    },
    async moduleClasses(document): Promise<ModuleClass[]> {
      return (await indexOf(document)).classes.filter((c) => c.isModule).map((c) => ({ name: c.name, line: c.line, endLine: c.endLine }));
    },
    async attentionSites(document): Promise<AttentionSite[]> {
      return (await indexOf(document)).attention.map((a) => ({ line: a.line, className: a.className ?? '', kind: a.kind }));
    },
  };
}
