/**
 * The model to inspect for a Python file: the user's own export when it is up to date, else (in a trusted
 * workspace) an export Gradient Lens makes with the user's Python into a cache, else the user's export even
 * if stale, saying so. In an untrusted workspace no Python runs: the user is told why and can pick a file.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { configuredModel } from '../config';
import { LocatedModel, locateModel } from '../modelLocator';
import type { SourceMapper } from '../sourceAnchors';
import { ClassRequest, requestedClass } from './classChoice';
import { ExportMeta, exportKey, lookupExport, pruneExports, stagingDir } from './exportCache';
import { PythonRunner, ReportedFailure } from './runner';

/** An .onnx this much older than its .py is taken as exported before the last edit (copies and checkouts give equal times). */
const STALE_AFTER_MS = 2000;
const CHOICES = 'gradientLens.pythonChoices';

export interface ModelChoice extends LocatedModel {
  /** Set when Gradient Lens exported it (into its own cache, read from there like a file the user picked). */
  exported?: ExportMeta;
  /** Set when it is the Python file's own export (found beside it, no model setting) and not older than the file. */
  ownUpToDate?: boolean;
}

interface Remembered {
  className?: string;
  inputShape?: string;
}

export class ModelExports {
  private readonly cacheRoot: string;

  constructor(private readonly context: vscode.ExtensionContext, private readonly output: vscode.OutputChannel, private readonly runner: PythonRunner, private readonly mapper: SourceMapper) {
    this.cacheRoot = path.join(context.globalStorageUri.fsPath, 'exports');
  }

  /**
   * The model for `document` (undefined: the user was told why, or cancelled). `clicked`: the class whose
   * CodeLens was clicked; `className`: a class to keep (a re-run of an export).
   */
  async modelFor(document: vscode.TextDocument | undefined, request: { clicked?: string; className?: string } = {}): Promise<ModelChoice | undefined> {
    const memento = this.context.workspaceState;
    if (!document || document.uri.scheme !== 'file') {
      return locateModel(document?.uri, memento);
    }
    if (configuredModel(document.uri)) {
      return locateModel(document.uri, memento); // the user's explicit choice
    }
    const own = await locateModel(document.uri, memento, { ask: false });
    const stale = own ? await olderThan(own.uri, document.uri) : false;
    // A remembered pick (locateModel's pickedByUser) is not the file's own export: the own-export cache keeps it out.
    if (own && !stale) return own.pickedByUser ? own : { ...own, ownUpToDate: true };
    const name = path.basename(document.uri.fsPath);
    if (!vscode.workspace.isTrusted) return this.untrusted(document, own);
    if (own) this.output.appendLine(`  ${path.basename(own.uri.fsPath)} is older than ${name}: exporting ${name} anew (delete or re-export ${path.basename(own.uri.fsPath)} to use your own)`);
    try {
      const meta = await this.export(document, request);
      return { uri: vscode.Uri.file(meta.onnx), pickedByUser: true, exported: meta };
    } catch (err) {
      if (!(err instanceof ReportedFailure)) throw err;
      if (own && err.report.message !== 'cancelled') {
        void vscode.window.showWarningMessage(`Gradient Lens: showing ${path.basename(own.uri.fsPath)}, which is older than ${name}: the overlays may not match the source.`);
        return own;
      }
      return undefined;
    }
  }

  /** No Python in an untrusted workspace: an existing export (even stale), else say why and offer a file. */
  private async untrusted(document: vscode.TextDocument, own: LocatedModel | undefined): Promise<ModelChoice | undefined> {
    const name = path.basename(document.uri.fsPath);
    this.output.appendLine(`  untrusted workspace: no Python runs, so ${name} is not exported`);
    if (own) {
      void vscode.window.showWarningMessage(`Gradient Lens: ${path.basename(own.uri.fsPath)} is older than ${name}, and Gradient Lens runs no Python in an untrusted workspace to export it anew: the overlays may not match the source.`);
      return own;
    }
    const choose = 'Choose an ONNX File…';
    const trust = 'Manage Workspace Trust';
    const answer = await vscode.window.showWarningMessage(
      `Gradient Lens runs no Python in an untrusted workspace, so it cannot export ${name} to inspect it. Trust this workspace, or export the model to ONNX yourself (README: "Export your own model") and choose the file.`,
      choose, trust,
    );
    if (answer === trust) void vscode.commands.executeCommand('workbench.trust.manage');
    if (answer !== choose) return undefined;
    return locateModel(document.uri, this.context.workspaceState);
  }

  /** The class the editor asks for (lens, cursor, only one, remembered). */
  async classRequest(document: vscode.TextDocument, request: { clicked?: string; className?: string }): Promise<ClassRequest> {
    if (request.className) return { className: request.className, reason: 'remembered' };
    const editor = vscode.window.activeTextEditor;
    const cursorLine = editor?.document.uri.toString() === document.uri.toString() ? editor.selection.active.line : undefined;
    const classes = await this.mapper.moduleClasses(document).catch(() => []);
    return requestedClass(classes, { clicked: request.clicked, cursorLine, remembered: this.remembered(document.uri).className });
  }

  /** Exports `document` (from the cache when up to date). Throws ReportedFailure after telling the user. */
  async export(document: vscode.TextDocument, request: { clicked?: string; className?: string } = {}): Promise<ExportMeta> {
    const python = await this.runner.python(document.uri);
    const file = document.uri.fsPath;
    const name = path.basename(file);
    if (document.isDirty) this.output.appendLine(`  ${name} has unsaved changes: exporting the saved file`);
    const cls = await this.classRequest(document, request);
    const content = await fs.readFile(file);
    const remembered = this.remembered(document.uri);
    const shapeFor = (className: string | undefined) => (className && remembered.className === className ? remembered.inputShape : undefined);
    const keyOf = (className: string, inputShape: string | undefined) =>
      exportKey({ file, content, python: python.path, torch: python.torch!, helper: this.runner.scriptHash, className, inputShape });
    // Entries are keyed by the class exported: known here unless the helper has to find (or ask) it.
    const inputShape = shapeFor(cls.className);
    const hit = cls.className ? await lookupExport(this.cacheRoot, file, keyOf(cls.className, inputShape)) : undefined;
    if (hit && !hit.stale) {
      this.output.appendLine(`  using the export of ${hit.meta.className} made ${describeAge(hit.meta)} (${hit.meta.exporter} exporter, torch ${hit.meta.torch})`);
      return hit.meta;
    }
    if (hit?.stale) this.output.appendLine(`  ${hit.stale}: exporting again`);
    const staging = await stagingDir(this.cacheRoot, file);
    this.output.appendLine(`[${new Date().toLocaleTimeString()}] exporting ${vscode.workspace.asRelativePath(document.uri)}${cls.className ? ` (${cls.className}: ${cls.reason})` : ''}`);
    try {
      let typedShape: string | undefined;
      const result = await this.runner.run(python, {
        mode: 'export',
        document: document.uri,
        title: `Gradient Lens: exporting ${name}`,
        request: { out: staging.dir, className: cls.className, classReason: cls.reason, inputShape },
        onRemember: (f) => {
          if (typeof f.inputShape === 'string') typedShape = f.inputShape;
        },
      });
      const exported = result as unknown as ExportMeta;
      const shape = typedShape ?? shapeFor(exported.className);
      this.remember(document.uri, { className: exported.className, inputShape: shape });
      const meta = await staging.commit(exported, keyOf(exported.className, shape));
      this.output.appendLine(`  exported ${meta.className} (${meta.recipe}) with the ${meta.exporter} exporter, opset ${meta.opset}, torch ${meta.torch}`);
      for (const note of meta.notes) if (/dynamo exporter/.test(note)) void vscode.window.showWarningMessage(`Gradient Lens: ${note}.`);
      void pruneExports(this.cacheRoot);
      return meta;
    } catch (err) {
      await staging.discard();
      throw err;
    }
  }

  private remembered(uri: vscode.Uri): Remembered {
    return this.context.workspaceState.get<Record<string, Remembered>>(CHOICES, {})[uri.toString()] ?? {};
  }

  private remember(uri: vscode.Uri, fields: Remembered): void {
    const all = this.context.workspaceState.get<Record<string, Remembered>>(CHOICES, {});
    const before = all[uri.toString()] ?? {};
    // Another class forgets the input shape given for the previous one.
    const next = fields.className && fields.className !== before.className ? { ...fields } : { ...before, ...fields };
    if (next.inputShape === undefined) delete next.inputShape;
    void this.context.workspaceState.update(CHOICES, { ...all, [uri.toString()]: next });
  }
}

async function olderThan(model: vscode.Uri, source: vscode.Uri): Promise<boolean> {
  try {
    const [m, s] = await Promise.all([vscode.workspace.fs.stat(model), vscode.workspace.fs.stat(source)]);
    return m.mtime < s.mtime - STALE_AFTER_MS;
  } catch {
    return false;
  }
}

function describeAge(meta: ExportMeta & { exportedAt?: number }): string {
  return meta.exportedAt ? `at ${new Date(meta.exportedAt).toLocaleTimeString()}` : 'earlier';
}
