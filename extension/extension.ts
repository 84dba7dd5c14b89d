import * as vscode from 'vscode';

/** Extension entry point. The inspection commands arrive with the extension issue; the engine lives in engine/. */
export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('Gradient Lens');
  context.subscriptions.push(output);
}

export function deactivate(): void {}
