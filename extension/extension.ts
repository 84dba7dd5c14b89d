import * as vscode from 'vscode';
import { ModuleCodeLensProvider } from './codeLens';
import { InspectionSession } from './session';
import { createSourceMapper } from './sourceMapper';

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('Gradient Lens');
  const session = new InspectionSession(context, output, createSourceMapper(context.extensionUri, output));
  context.subscriptions.push(
    output,
    session,
    vscode.commands.registerCommand('gradientLens.inspect', (uri?: vscode.Uri) => session.inspect(uri instanceof vscode.Uri ? uri : undefined)),
    vscode.commands.registerCommand('gradientLens.showPanel', () => session.showPanel()),
    vscode.commands.registerCommand('gradientLens.clearOverlays', () => session.clear()),
    vscode.commands.registerCommand('gradientLens.rerun', () => session.rerun()),
    vscode.commands.registerCommand('gradientLens.revealModule', (path: string) => session.revealModule(path)),
    vscode.commands.registerCommand('gradientLens.showAttention', (modulePath: string) => session.showAttention(modulePath)),
    vscode.languages.registerCodeLensProvider({ language: 'python' }, new ModuleCodeLensProvider(session)),
  );
}

export function deactivate(): void {}
