import * as path from 'node:path';
import * as vscode from 'vscode';
import { section } from './config';

const REMEMBERED = 'gradientLens.modelFor';

/**
 * Finds the .onnx export for a Python file: the `gradientLens.model` setting, a remembered choice, an
 * .onnx with the same stem or the only one in the same folder, else asks (quick pick, then a file picker)
 * unless `ask` is false.
 */
export async function locateModel(pythonUri: vscode.Uri | undefined, memento: vscode.Memento, { ask = true }: { ask?: boolean } = {}): Promise<vscode.Uri | undefined> {
  const configured = section(pythonUri).get<string>('model', '').trim();
  if (configured) {
    const folder = pythonUri ? vscode.workspace.getWorkspaceFolder(pythonUri) : vscode.workspace.workspaceFolders?.[0];
    const uri = path.isAbsolute(configured) || !folder ? vscode.Uri.file(configured) : vscode.Uri.joinPath(folder.uri, configured);
    if (await exists(uri)) return uri;
    void vscode.window.showWarningMessage(`Gradient Lens: the configured model "${configured}" does not exist; choose another.`);
  }
  const remembered = pythonUri ? memento.get<Record<string, string>>(REMEMBERED, {})[pythonUri.toString()] : undefined;
  if (remembered && (await exists(vscode.Uri.parse(remembered)))) return vscode.Uri.parse(remembered);

  if (pythonUri) {
    const dir = vscode.Uri.joinPath(pythonUri, '..');
    const stem = path.basename(pythonUri.path, path.extname(pythonUri.path));
    const sameStem = vscode.Uri.joinPath(dir, `${stem}.onnx`);
    if (await exists(sameStem)) return remember(pythonUri, sameStem, memento);
    const siblings = (await vscode.workspace.fs.readDirectory(dir)).filter(([n, t]) => t === vscode.FileType.File && n.endsWith('.onnx'));
    if (siblings.length === 1) return remember(pythonUri, vscode.Uri.joinPath(dir, siblings[0][0]), memento);
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
  return picked && pythonUri ? remember(pythonUri, picked, memento) : picked;
}

async function exists(uri: vscode.Uri): Promise<boolean> {
  try {
    await vscode.workspace.fs.stat(uri);
    return true;
  } catch {
    return false;
  }
}

function remember(pythonUri: vscode.Uri, model: vscode.Uri, memento: vscode.Memento): vscode.Uri {
  const map = { ...memento.get<Record<string, string>>(REMEMBERED, {}), [pythonUri.toString()]: model.toString() };
  void memento.update(REMEMBERED, map);
  return model;
}
