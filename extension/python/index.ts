/**
 * Python for the user, in trusted workspaces only: exporting a model file to ONNX (exports.ts), verifying the
 * engine against PyTorch (verify.ts), inspecting again on save (inspectOnSave.ts). All run the helper shipped
 * in python/gradlens_export.py with the user's interpreter (runner.ts).
 */
import * as vscode from 'vscode';
import type { SourceMapper } from '../sourceAnchors';
import { ModelExports } from './exports';
import { PythonRunner } from './runner';
import { PytorchVerifier } from './verify';

export class PythonSupport implements vscode.Disposable {
  readonly runner: PythonRunner;
  readonly exports: ModelExports;
  readonly verifier: PytorchVerifier;

  constructor(context: vscode.ExtensionContext, output: vscode.OutputChannel, mapper: SourceMapper) {
    this.runner = new PythonRunner(context, output);
    this.exports = new ModelExports(context, output, this.runner, mapper);
    this.verifier = new PytorchVerifier(context, output, this.runner, this.exports);
  }

  dispose(): void {
    this.runner.dispose();
  }
}

export type { ModelChoice } from './exports';
export type { ExportMeta } from './exportCache';
