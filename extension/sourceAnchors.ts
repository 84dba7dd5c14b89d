/**
 * Connects the Python source mapper (extension/sourceMap, tree-sitter) to a report: which lines show
 * which module, which lines are watched, where the model classes are. No vscode import beyond types.
 */
import type * as vscode from 'vscode';
import type { SourceLocation } from '../engine/inspect/report';
import type { LineAnchor } from './overlay/model';
import type { WatchLine } from './overlay/hooks';
import type { WatchSpec } from './protocol';

export interface DocumentMapping {
  anchors: LineAnchor[];
  /** 0-based line for findings whose module is not in the source: the model class. */
  fallbackLine: number;
  unmapped: { path: string; reason: string }[];
  watchLines: WatchLine[];
  /** Class the source constructs for each module path it maps exactly (`self.attn = CausalSelfAttention(...)`). */
  classOf: Record<string, string>;
  /** For each class of the file (qualified name), the module paths that are instances of it. */
  instances: Record<string, string[]>;
}

/**
 * Module kinds the source tells better than the export: for every module whose class the exporter did not record
 * (legacy exports record none; dynamo's leave out containers it never calls, such as a ModuleList), the class
 * the source constructs. A leaf named from its ops ('Linear' for a Gemm) takes the source's exact class too.
 */
export function sourceKinds(modules: readonly { path: string; kind: string; kindFrom?: string }[], classOf: Readonly<Record<string, string>>): Record<string, string> {
  const kinds: Record<string, string> = {};
  for (const m of modules) {
    const cls = Object.prototype.hasOwnProperty.call(classOf, m.path) ? classOf[m.path] : undefined;
    if (cls && m.kindFrom !== 'export' && cls !== m.kind) kinds[m.path] = cls;
  }
  return kinds;
}

export interface ModuleClass {
  name: string;
  /** 0-based line of the `class` keyword. */
  line: number;
  /** 0-based last line of the class body. */
  endLine: number;
}

export interface AttentionSite {
  /** 0-based line. */
  line: number;
  className: string;
  kind: string;
}

/** What the mapper needs from an inspection report or a training record: module paths and their recorded lines. */
export interface ModuleSources {
  modules: readonly { path: string; source?: SourceLocation }[];
}

export interface SourceMapper {
  watches(document: vscode.TextDocument): Promise<WatchSpec[]>;
  /** `rootClass`: the model class to map from (default: the one that explains the most module paths). */
  map(document: vscode.TextDocument, report: ModuleSources, rootClass?: string): Promise<DocumentMapping>;
  moduleClasses(document: vscode.TextDocument): Promise<ModuleClass[]>;
  attentionSites(document: vscode.TextDocument): Promise<AttentionSite[]>;
}
