import * as vscode from 'vscode';
import { ModuleCodeLensProvider } from './codeLens';
import { InspectionSession } from './session';
import { createSourceMapper } from './sourceMapper';
import { trainSettings } from './config';
import { PythonSupport } from './python';
import { inspectOnSave } from './python/inspectOnSave';
import { LiveTraining } from './training/live';

export function activate(context: vscode.ExtensionContext): void {
  const output = vscode.window.createOutputChannel('Gradient Lens');
  const mapper = createSourceMapper(context.extensionUri, output);
  const python = new PythonSupport(context, output, mapper);
  const session = new InspectionSession(context, output, mapper, python);
  const live = new LiveTraining(session, output);
  context.subscriptions.push(
    output,
    python,
    session,
    live,
    inspectOnSave(session),
    // From a CodeLens: the file and the class it sits on. Resolves with nothing: a command's result goes back to
    // the workbench as JSON, and the report (~180 KB for tiny_gpt) would arrive in the same batch as the overlays.
    vscode.commands.registerCommand('gradientLens.inspect', async (uri?: vscode.Uri, className?: string) => {
      await session.inspect(uri instanceof vscode.Uri ? uri : undefined, undefined, undefined, { clicked: typeof className === 'string' ? className : undefined });
    }),
    vscode.commands.registerCommand('gradientLens.verify', () => session.verify()),
    vscode.commands.registerCommand('gradientLens.showPanel', () => session.showPanel()),
    vscode.commands.registerCommand('gradientLens.clearOverlays', () => session.clear()),
    vscode.commands.registerCommand('gradientLens.rerun', () => session.rerun()),
    vscode.commands.registerCommand('gradientLens.revealModule', (path: string) => session.revealModule(path)),
    vscode.commands.registerCommand('gradientLens.showAttention', (modulePath: string) => session.showAttention(modulePath)),
    vscode.commands.registerCommand('gradientLens.train', async (uri?: vscode.Uri, steps?: number) => {
      const train = trainSettings(uri instanceof vscode.Uri ? uri : vscode.window.activeTextEditor?.document.uri);
      if (typeof steps !== 'number') {
        const answer = await vscode.window.showInputBox({
          title: `Train N steps (${train.optimizer}, lr ${train.lr}; change in Settings › Gradient Lens › Train)`,
          prompt: 'Number of optimiser steps',
          value: String(train.steps),
          validateInput: (v) => (/^\d+$/.test(v.trim()) && +v >= 1 && +v <= 100_000 ? undefined : 'a whole number from 1 to 100000'),
        });
        if (answer === undefined) return undefined;
        steps = Number(answer);
      }
      // Nothing to the workbench (the record can be megabytes): Export Training Statistics saves it.
      await session.train({ ...train, steps }, undefined, uri instanceof vscode.Uri ? uri : undefined);
      return undefined;
    }),
    vscode.commands.registerCommand('gradientLens.pinBaseline', () => session.pinBaseline()),
    vscode.commands.registerCommand('gradientLens.clearBaseline', () => session.clearBaseline()),
    vscode.commands.registerCommand('gradientLens.stopTraining', () => session.stopTraining()),
    vscode.commands.registerCommand('gradientLens.exportTraining', (uri?: vscode.Uri) => session.exportTraining(uri instanceof vscode.Uri ? uri : undefined)),
    vscode.commands.registerCommand('gradientLens.importTraining', (uri?: vscode.Uri) => session.importTraining(uri instanceof vscode.Uri ? uri : undefined)),
    vscode.commands.registerCommand('gradientLens.attachTraining', (uri?: vscode.Uri) => live.attach(uri instanceof vscode.Uri ? uri : undefined)),
    vscode.commands.registerCommand('gradientLens.detachTraining', () => live.detach()),
    vscode.languages.registerCodeLensProvider({ language: 'python' }, new ModuleCodeLensProvider(session)),
  );
}

export function deactivate(): void {}
