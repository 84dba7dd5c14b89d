import * as vscode from 'vscode';
import { GradientLensPanel } from './panel';

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('Gradient Lens');
  context.subscriptions.push(
    output,
    vscode.commands.registerCommand('gradientLens.showPanel', () => GradientLensPanel.show(context, output)),
  );
}

export function deactivate(): void {
  GradientLensPanel.current?.dispose();
}
