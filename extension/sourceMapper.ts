/** The SourceMapper used by the extension: tree-sitter indexes of open Python documents, cached by version. */
import * as path from 'node:path';
import type * as vscode from 'vscode';
import type { InspectionReport } from '../engine/inspect/report';
import type { LineAnchor } from './overlay/model';
import type { WatchSpec } from './protocol';
import { loadPythonParser, PythonParser } from './python/parser';
import { indexPythonSource, SourceIndex } from './python/sourceIndex';
import { mapModulePaths } from './python/moduleMap';
import type { AttentionSite, DocumentMapping, ModuleClass, SourceMapper } from './sourceAnchors';

export function createSourceMapper(extensionUri: vscode.Uri, output: vscode.OutputChannel): SourceMapper {
  const dist = path.join(extensionUri.fsPath, 'dist');
  let parser: Promise<PythonParser> | null = null;
  const cache = new Map<string, { version: number; index: SourceIndex }>();

  async function indexOf(document: vscode.TextDocument): Promise<SourceIndex> {
    const key = document.uri.toString();
    const hit = cache.get(key);
    if (hit && hit.version === document.version) return hit.index;
    parser ??= loadPythonParser(path.join(dist, 'tree-sitter.wasm'), path.join(dist, 'tree-sitter-python.wasm')).catch((err) => {
      output.appendLine(`could not load the Python parser: ${err instanceof Error ? err.message : err}`);
      parser = null;
      throw err;
    });
    const index = indexPythonSource(await parser, document.getText());
    cache.set(key, { version: document.version, index });
    return index;
  }

  return {
    async watches(document): Promise<WatchSpec[]> {
      const index = await indexOf(document);
      const file = path.basename(document.uri.fsPath);
      return index.watches.map((w) => ({ target: w.target, file, line: w.valueLine + 1 }));
    },

    async map(document, report: InspectionReport, rootClass?: string): Promise<DocumentMapping> {
      const index = await indexOf(document);
      const paths = report.modules.map((m) => m.path).filter((p) => p !== '');
      const mapping = mapModulePaths(index, paths, rootClass);
      const anchors: LineAnchor[] = [];
      for (const [p, m] of mapping.mapped) {
        anchors.push({ modulePath: p, line: m.line, kind: 'definition' });
        for (const l of m.callLines) anchors.push({ modulePath: p, line: l, kind: 'call' });
      }
      // Stack-trace lines from the export, when they point into this file, are call sites too.
      const file = path.basename(document.uri.fsPath);
      for (const m of report.modules) {
        if (m.path !== '' && m.source && path.basename(m.source.file) === file && m.source.line - 1 < document.lineCount) {
          anchors.push({ modulePath: m.path, line: m.source.line - 1, kind: 'call' });
        }
      }
      return {
        anchors,
        fallbackLine: mapping.root?.line ?? 0,
        unmapped: mapping.unmapped.map((u) => ({ path: u.path, reason: u.reason })),
        watchLines: index.watches.map((w) => ({ line: w.line, target: w.target })),
        classOf: Object.fromEntries([...mapping.mapped].filter(([, m]) => m.className).map(([p, m]) => [p, m.className!])),
      };
    },

    async moduleClasses(document): Promise<ModuleClass[]> {
      return (await indexOf(document)).classes.filter((c) => c.isModule).map((c) => ({ name: c.name, line: c.line }));
    },

    async attentionSites(document): Promise<AttentionSite[]> {
      return (await indexOf(document)).classes.flatMap((c) => c.attention.map((a) => ({ line: a.line, className: c.name, kind: a.kind })));
    },
  };
}
