/**
 * "Verify against PyTorch": repeats the last inspection in the engine, capturing exactly what it fed and
 * used (inputs, targets, loss, weights, dropout masks) and the gradients it computed; the Python helper runs
 * the user's model in PyTorch on the same, and the per-module relative differences are shown: a badge in the
 * panel, and a warning naming the modules that differ.
 */
import * as fs from 'node:fs/promises';
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { InspectionReport } from '../../engine/inspect/report';
import type { GradientLensPanel } from '../panel';
import type { RunSettings } from '../protocol';
import { memoryBudgetMB } from '../config';
import { LocatedModel, readModel } from '../modelLocator';
import { normalizeCapture, readBundle, writeCaptureBundle } from './bundle';
import { compareGradients, differingModules, Verification, verificationBadge } from './compare';
import type { ExportMeta } from './exportCache';
import type { ModelExports } from './exports';
import { PythonRunner, ReportedFailure } from './runner';

/** What verification needs of the last inspection. */
export interface VerifiableRun {
  runId: number;
  document: vscode.Uri;
  model: LocatedModel;
  report: InspectionReport;
  settings: RunSettings;
  exported?: ExportMeta;
}

export class PytorchVerifier {
  private counter = 0;

  constructor(private readonly context: vscode.ExtensionContext, private readonly output: vscode.OutputChannel, private readonly runner: PythonRunner, private readonly exports: ModelExports) {}

  async verify(run: VerifiableRun, panel: GradientLensPanel): Promise<Verification | undefined> {
    const name = path.basename(run.document.fsPath);
    if (!vscode.workspace.isTrusted) {
      void vscode.window.showWarningMessage('Gradient Lens: verifying runs your model in PyTorch, and Gradient Lens runs no Python in an untrusted workspace. Trust the workspace to verify.');
      return undefined;
    }
    if (!run.document.fsPath.endsWith('.py')) {
      void vscode.window.showWarningMessage(`Gradient Lens: verifying needs the model's Python file; open it and inspect ${path.basename(run.model.uri.fsPath)} from there.`);
      return undefined;
    }
    this.output.appendLine(`[${new Date().toLocaleTimeString()}] verifying ${vscode.workspace.asRelativePath(run.model.uri)} against PyTorch (${name})`);
    // The model and its external data files, read the way the inspection read them (or undefined after saying why).
    const budgetMB = memoryBudgetMB(run.document);
    const files = await readModel(run.model, budgetMB * 2 ** 20);
    if (!files) return undefined;
    panel.showVerification({ status: 'running' });
    const dir = path.join(this.context.globalStorageUri.fsPath, 'verify', `${process.pid}-${++this.counter}`);
    try {
      const python = await this.runner.python(run.document);
      const cts = new vscode.CancellationTokenSource();
      const request = { runId: -this.counter, modelName: path.basename(run.model.uri.fsPath), bytes: files.bytes, externalData: files.externalData, settings: run.settings, watches: [], memoryBudgetMB: budgetMB };
      const { capture: raw } = await panel.runCaptured(request, () => {}, cts.token);
      cts.dispose();
      const capture = normalizeCapture(raw);
      await fs.mkdir(dir, { recursive: true });
      const bundle = path.join(dir, 'run.json');
      await writeCaptureBundle(bundle, capture);
      const document = await vscode.workspace.openTextDocument(run.document);
      const cls = run.exported ? { className: run.exported.className, reason: 'remembered' } : await this.exports.classRequest(document, {});
      const result = await this.runner.run(python, {
        mode: 'verify',
        document: run.document,
        title: `Gradient Lens: verifying ${name} against PyTorch`,
        request: { bundle, className: cls.className, classReason: cls.reason },
      });
      const torch = await readBundle(String(result.gradients));
      const owners = new Map<string, string>();
      for (const m of run.report.modules) for (const p of m.parameters) owners.set(p.name, m.path);
      const verification = compareGradients({
        dtype: capture.dtype,
        engine: capture.gradients,
        torch: torch.tensors,
        owners,
        engineLoss: capture.loss.value,
        torchLoss: Number(torch.fields.loss),
        notLoaded: torch.fields.notLoaded as string[],
        noCounterpart: torch.fields.noCounterpart as string[],
      });
      for (const note of (result.notes as string[] | undefined) ?? []) verification.notes.push(note);
      this.show(verification, panel, name);
      return verification;
    } catch (err) {
      const message = err instanceof ReportedFailure ? err.report.message : err instanceof Error ? err.message : String(err);
      panel.showVerification({ status: 'failed', message });
      if (!(err instanceof ReportedFailure)) {
        this.output.appendLine(`  verification failed: ${message}`);
        void vscode.window.showErrorMessage(`Gradient Lens could not verify ${name} against PyTorch: ${message}`);
      }
      return undefined;
    } finally {
      await fs.rm(dir, { recursive: true, force: true }).catch(() => {});
    }
  }

  private show(v: Verification, panel: GradientLensPanel, name: string): void {
    const badge = verificationBadge(v);
    panel.showVerification({ status: 'done', result: v, badge });
    this.output.appendLine(`  ${badge}: loss ${v.loss.engine.toPrecision(8)} (engine) vs ${v.loss.torch.toPrecision(8)} (PyTorch); ${v.compared} of ${v.total} parameter gradients compared, tolerance ${v.tolerance.toExponential(0)} (${v.dtype})`);
    for (const m of v.modules.slice(0, 40)) this.output.appendLine(`    ${(m.path || '(model)').padEnd(32)} ${m.relative.toExponential(2)}  (${m.parameters} parameter${m.parameters > 1 ? 's' : ''}, worst ${m.worst})`);
    for (const note of v.notes) this.output.appendLine(`    note: ${note}`);
    if (v.status === 'differ') {
      const differing = differingModules(v);
      const named = differing.slice(0, 5).map((m) => `${m.path || '(model)'} (${m.relative.toExponential(1)})`).join(', ');
      void vscode.window.showWarningMessage(`Gradient Lens: the engine's gradients of ${name} differ from PyTorch's${differing.length ? ` in ${differing.length} module${differing.length > 1 ? 's' : ''}: ${named}${differing.length > 5 ? ', …' : ''}` : `: the loss differs by ${v.loss.relative.toExponential(1)}`}. Details in the Output.`, 'Show Output').then((b) => b && this.output.show(true));
    } else if (v.status === 'inconclusive') {
      void vscode.window.showWarningMessage(`Gradient Lens could not verify ${name}: ${v.notes[0]}`);
    }
  }
}
