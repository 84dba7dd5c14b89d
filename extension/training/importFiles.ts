/** Reads a file picked in "Import Training Statistics" through workspace.fs, with the other event files of a TensorBoard run. */
import * as vscode from 'vscode';
import { detectTrainingFile, ImportedTraining, importTrainingFile, isEventFileName } from '../../engine/train/importRecord';

export async function readTrainingImport(uri: vscode.Uri): Promise<ImportedTraining> {
  const bytes = new Uint8Array(await vscode.workspace.fs.readFile(uri));
  const siblings: { name: string; bytes: Uint8Array }[] = [];
  if (detectTrainingFile(bytes) === 'tensorboard') {
    // A run restarted into the same folder continues in a new event file: read them all.
    const folder = vscode.Uri.joinPath(uri, '..');
    for (const [name, type] of await vscode.workspace.fs.readDirectory(folder)) {
      const sibling = vscode.Uri.joinPath(folder, name);
      if (type & vscode.FileType.File && isEventFileName(name) && sibling.toString() !== uri.toString()) {
        siblings.push({ name: sibling.path, bytes: new Uint8Array(await vscode.workspace.fs.readFile(sibling)) });
      }
    }
  }
  return importTrainingFile(uri.path, bytes, siblings);
}
