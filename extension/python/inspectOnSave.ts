/**
 * Inspect on save (gradientLens.inspectOnSave, off by default): saving the inspected model file, or a local
 * module it imports, inspects it again once the saves settle. Trusted workspaces only (it exports).
 */
import * as vscode from 'vscode';
import { section } from '../config';

/** Saves within this time of each other start one inspection. */
export const SAVE_DEBOUNCE_MS = 600;

export interface Reinspectable {
  readonly lastRun: { document: vscode.Uri; exported?: { files: { path: string }[] } } | undefined;
  reinspect(): Promise<unknown>;
}

export function inspectOnSave(session: Reinspectable): vscode.Disposable {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const subscription = vscode.workspace.onDidSaveTextDocument((saved) => {
    const last = session.lastRun;
    if (!last || !vscode.workspace.isTrusted || !section(last.document).get<boolean>('inspectOnSave', false)) return;
    const ours = saved.uri.toString() === last.document.toString() || !!last.exported?.files.some((f) => f.path === saved.uri.fsPath);
    if (!ours) return;
    if (timer) clearTimeout(timer);
    timer = setTimeout(() => {
      timer = undefined;
      void session.reinspect();
    }, SAVE_DEBOUNCE_MS);
  });
  return new vscode.Disposable(() => {
    if (timer) clearTimeout(timer);
    subscription.dispose();
  });
}
