import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { configuredModel } from './config';
import { FileAccessError, insideWorkspace, readRegularFile, resolveConfiguredModel } from './fileAccess';
import { ModelFileError, ModelFileSystem, ModelFiles, readModelFiles } from './modelFiles';
import { OnnxImportError } from '../engine/onnx';

const REMEMBERED = 'gradientLens.modelFor';

/** A model file and how it was found: the user picked it (anywhere), or the workspace named or held it (inside only). */
export interface LocatedModel {
  uri: vscode.Uri;
  pickedByUser: boolean;
}

function workspaceFolders(): string[] {
  return (vscode.workspace.workspaceFolders ?? []).filter((f) => f.uri.scheme === 'file').map((f) => f.uri.fsPath);
}

/**
 * Finds the .onnx export for a Python file: the `gradientLens.model` setting (a path inside the workspace;
 * VS Code ignores a workspace's value of it while the workspace is untrusted), a remembered choice, an
 * .onnx with the same stem or the only one in the same folder, else asks (quick pick, then a file picker)
 * unless `ask` is false.
 */
export async function locateModel(pythonUri: vscode.Uri | undefined, memento: vscode.Memento, { ask = true }: { ask?: boolean } = {}): Promise<LocatedModel | undefined> {
  const configured = configuredModel(pythonUri);
  if (configured) {
    const folder = pythonUri ? vscode.workspace.getWorkspaceFolder(pythonUri) : undefined;
    const folders = workspaceFolders();
    try {
      // Relative paths resolve against the Python file's workspace folder.
      const real = await resolveConfiguredModel(configured, folder ? [folder.uri.fsPath, ...folders.filter((f) => f !== folder.uri.fsPath)] : folders);
      return { uri: vscode.Uri.file(real), pickedByUser: false };
    } catch (err) {
      void vscode.window.showWarningMessage(`Gradient Lens: ${err instanceof Error ? err.message : String(err)}; choose another.`);
    }
  }
  const remembered = pythonUri ? memento.get<Record<string, string>>(REMEMBERED, {})[pythonUri.toString()] : undefined;
  if (typeof remembered === 'string') {
    const uri = parseFileUri(remembered);
    if (uri && (await exists(uri))) return { uri, pickedByUser: true };
  }

  if (pythonUri) {
    const dir = vscode.Uri.joinPath(pythonUri, '..');
    const stem = path.basename(pythonUri.path, path.extname(pythonUri.path));
    const sameStem = vscode.Uri.joinPath(dir, `${stem}.onnx`);
    if (await exists(sameStem)) return { uri: sameStem, pickedByUser: false };
    const siblings = (await vscode.workspace.fs.readDirectory(dir)).filter(([n, t]) => t === vscode.FileType.File && n.endsWith('.onnx'));
    if (siblings.length === 1) return { uri: vscode.Uri.joinPath(dir, siblings[0][0]), pickedByUser: false };
  }
  if (!ask) return undefined;
  const found = await vscode.workspace.findFiles('**/*.onnx', '**/node_modules/**', 50);
  let picked: vscode.Uri | undefined;
  if (found.length) {
    const item = await vscode.window.showQuickPick(
      [...found.map((u) => ({ label: path.basename(u.path), description: vscode.workspace.asRelativePath(u), uri: u as vscode.Uri | undefined })), { label: 'Browse…', description: '', uri: undefined }],
      { title: 'Gradient Lens: which ONNX export of this model?', placeHolder: 'Pick the .onnx exported from this Python model' },
    );
    if (!item) return undefined;
    picked = item.uri;
  }
  if (!picked) {
    const chosen = await vscode.window.showOpenDialog({ canSelectMany: false, filters: { 'ONNX model': ['onnx'] }, title: 'Gradient Lens: choose the ONNX export' });
    picked = chosen?.[0];
  }
  if (picked && pythonUri) remember(pythonUri, picked, memento);
  return picked ? { uri: picked, pickedByUser: true } : undefined;
}

/**
 * The model's bytes and the external data files it names, or undefined after telling the user why they could
 * not be read: only regular files up to `maxBytes` in all, and, unless the user picked the file (or Gradient
 * Lens exported it), only inside the workspace (links followed); external files only in the model's folder.
 */
export async function readModel(model: LocatedModel, maxBytes: number): Promise<ModelFiles | undefined> {
  try {
    if (model.uri.scheme !== 'file') throw new FileAccessError(`${model.uri.toString()} is not a local file`);
    // A file the workspace named or held (a sibling .onnx may be a link to anywhere) is read only inside it.
    const file = model.pickedByUser ? await fs.promises.realpath(model.uri.fsPath).catch(() => model.uri.fsPath) : await insideWorkspace(model.uri.fsPath, workspaceFolders());
    // The model names its external data files (model.onnx.data); readModelFiles keeps them in the model's folder.
    return await readModelFiles(file, localFiles(maxBytes), maxBytes);
  } catch (err) {
    const known = err instanceof FileAccessError || err instanceof ModelFileError || err instanceof OnnxImportError;
    const message = known ? (err as Error).message : `cannot read ${path.basename(model.uri.fsPath)}`;
    void vscode.window.showErrorMessage(`Gradient Lens: ${message}`);
    return undefined;
  }
}

/** The local disk as readModelFiles sees it: links reported as links (not followed), reads as readRegularFile does them. */
function localFiles(maxBytes: number): ModelFileSystem {
  return {
    async stat(file) {
      const st = await fs.promises.lstat(file);
      return { type: st.isSymbolicLink() ? 'symlink' : st.isFile() ? 'file' : st.isDirectory() ? 'directory' : 'other', size: st.size };
    },
    read: (file) => readRegularFile(file, maxBytes, 'the file'),
  };
}

function parseFileUri(text: string): vscode.Uri | undefined {
  try {
    const uri = vscode.Uri.parse(text, true);
    return uri.scheme === 'file' ? uri : undefined;
  } catch {
    return undefined;
  }
}

async function exists(uri: vscode.Uri): Promise<boolean> {
  try {
    await vscode.workspace.fs.stat(uri);
    return true;
  } catch {
    return false;
  }
}

function remember(pythonUri: vscode.Uri, model: vscode.Uri, memento: vscode.Memento): void {
  const map = { ...memento.get<Record<string, string>>(REMEMBERED, {}), [pythonUri.toString()]: model.toString() };
  void memento.update(REMEMBERED, map);
}
