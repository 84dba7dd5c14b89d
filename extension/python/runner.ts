/**
 * Runs the Python helper for the extension: finds the interpreter and checks it has torch, shows a progress
 * notification with Cancel, answers the helper's questions with a quick pick or an input box, and turns a
 * failure into one clear message (with a Problem at the user's line for an exception in their code).
 * Never runs anything in an untrusted workspace.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import * as vscode from 'vscode';
import { section } from '../config';
import { HelperAsk, HelperFailure, HelperHandlers, HelperResult, runHelper } from './helperProcess';
import { findInterpreter, NoInterpreterError, probeInterpreter } from './interpreter';
import { describeFailure, FailureReport, noInterpreterMessage, noTorchMessage, PythonInfo } from './messages';
import { sha256 } from './exportCache';

/** A failure already explained to the user (callers stop quietly). */
export class ReportedFailure extends Error {
  constructor(readonly report: FailureReport) {
    super(report.message);
    this.name = 'ReportedFailure';
  }
}

export interface HelperRun {
  mode: 'export' | 'verify';
  document: vscode.Uri;
  request: Record<string, unknown>;
  /** Notification title, e.g. "Gradient Lens: exporting model.py". */
  title: string;
  onRemember?: HelperHandlers['onRemember'];
}

export class PythonRunner implements vscode.Disposable {
  private readonly problems = vscode.languages.createDiagnosticCollection('gradient-lens-python');
  readonly script: string;
  /** Hash of the helper script (part of export cache keys). */
  readonly scriptHash: string;

  constructor(context: vscode.ExtensionContext, private readonly output: vscode.OutputChannel) {
    this.script = context.asAbsolutePath(path.join('python', 'gradlens_export.py'));
    this.scriptHash = sha256(fs.readFileSync(this.script));
  }

  /** The interpreter for `resource`, with torch. Throws ReportedFailure (after telling the user) otherwise. */
  async python(resource: vscode.Uri): Promise<PythonInfo> {
    const folder = vscode.workspace.getWorkspaceFolder(resource)?.uri.fsPath;
    let found;
    try {
      found = await findInterpreter({ setting: section(resource).get<string>('python', ''), workspaceFolder: folder, pythonApi: await pythonExtensionApi(), resource });
    } catch (err) {
      if (err instanceof NoInterpreterError) throw this.fail(noInterpreterMessage(resource.fsPath, err.tried));
      throw err;
    }
    let probe;
    try {
      probe = await probeInterpreter(found.path);
    } catch (err) {
      throw this.fail({ message: `Gradient Lens: ${err instanceof Error ? err.message : err}. Set gradientLens.python to a Python interpreter with PyTorch.`, actions: ['openSettings'] });
    }
    const info: PythonInfo = { ...found, version: probe.version, torch: probe.torch };
    this.output.appendLine(`  python: ${found.path} (${found.source}), Python ${probe.version}, torch ${probe.torch ?? 'missing'}`);
    if (!probe.torch) throw this.fail(noTorchMessage(info));
    return info;
  }

  /** Runs the helper under a cancellable progress notification. Throws ReportedFailure, or a 'cancelled' one. */
  async run(python: PythonInfo, job: HelperRun): Promise<HelperResult> {
    if (!vscode.workspace.isTrusted) throw new Error('Gradient Lens runs no Python in an untrusted workspace'); // callers check first
    const file = job.document.fsPath;
    const folder = vscode.workspace.getWorkspaceFolder(job.document)?.uri.fsPath ?? path.dirname(file);
    const timeoutS = section(job.document).get<number>('export.timeout', 300);
    this.problems.delete(job.document);
    const started = Date.now();
    try {
      const result = await vscode.window.withProgress({ location: vscode.ProgressLocation.Notification, title: job.title, cancellable: true }, (progress, token) => {
        const abort = new AbortController();
        token.onCancellationRequested(() => abort.abort());
        return runHelper(python.path, this.script, { mode: job.mode, file, root: folder, ...job.request }, {
          onProgress: (message) => {
            progress.report({ message });
            this.output.appendLine(`  ${message}`);
          },
          onAsk: (ask) => askUser(ask),
          onRemember: job.onRemember,
        }, { cwd: path.dirname(file), timeoutMs: timeoutS * 1000, signal: abort.signal });
      });
      this.output.appendLine(`  ${job.mode} done in ${((Date.now() - started) / 1000).toFixed(1)} s`);
      for (const note of (result.notes as string[] | undefined) ?? []) this.output.appendLine(`  note: ${note}`);
      return result;
    } catch (err) {
      if (!(err instanceof HelperFailure)) throw err;
      this.output.appendLine(`  ${job.mode} failed (${err.code}): ${err.message}`);
      if (err.detail) this.output.appendLine(err.detail.replace(/^/gm, '    '));
      else if (err.stderr.trim() && err.code !== 'cancelled') this.output.appendLine(err.stderr.trim().split('\n').slice(-15).join('\n').replace(/^/gm, '    | '));
      const report = describeFailure(err, file, python, job.mode);
      if (report.problem) {
        const uri = vscode.Uri.file(report.problem.file);
        const d = new vscode.Diagnostic(new vscode.Range(report.problem.line, 0, report.problem.line, Number.MAX_SAFE_INTEGER), report.problem.message, vscode.DiagnosticSeverity.Error);
        d.source = 'Gradient Lens';
        d.code = job.mode === 'export' ? 'export-failed' : 'verify-failed';
        this.problems.set(uri, [d]);
      }
      throw err.code === 'cancelled' ? new ReportedFailure(report) : this.fail(report);
    }
  }

  /** Tells the user (an error notification with its buttons) and returns the error to throw. */
  fail(report: FailureReport): ReportedFailure {
    this.output.appendLine(`  ${report.message}`);
    const buttons: Record<string, () => void> = {};
    if (report.actions.includes('openSettings')) buttons['Open Settings'] = () => void vscode.commands.executeCommand('workbench.action.openSettings', 'gradientLens.python');
    if (report.actions.includes('selectInterpreter') && vscode.extensions.getExtension('ms-python.python')) buttons['Select Interpreter'] = () => void vscode.commands.executeCommand('python.setInterpreter');
    if (report.actions.includes('showOutput')) buttons['Show Output'] = () => this.output.show(true);
    void vscode.window.showErrorMessage(report.message, ...Object.keys(buttons)).then((b) => b && buttons[b]?.());
    return new ReportedFailure(report);
  }

  dispose(): void {
    this.problems.dispose();
  }
}

/** The Python extension's exported API, when it is installed (activating it if needed). */
async function pythonExtensionApi(): Promise<unknown> {
  const ext = vscode.extensions.getExtension('ms-python.python');
  if (!ext) return undefined;
  try {
    return ext.isActive ? ext.exports : await ext.activate();
  } catch {
    return undefined;
  }
}

async function askUser(ask: HelperAsk): Promise<string | undefined> {
  if (ask.kind === 'class') {
    const item = await vscode.window.showQuickPick(
      (ask.options ?? []).map((o) => ({ label: o.name, description: o.line ? `line ${o.line}` : '', detail: o.doc || undefined })),
      { title: `Gradient Lens: ${ask.title ?? 'which model?'}`, placeHolder: 'The nn.Module to export and inspect' },
    );
    return item?.label;
  }
  const tried = ask.tried?.length ? ` (tried: ${ask.tried.join('; ')})` : '';
  return vscode.window.showInputBox({
    title: 'Gradient Lens: the model\'s input',
    prompt: `${ask.prompt}${tried}`,
    placeHolder: '8, 3, 32, 32',
    validateInput: (v) => (/^\s*(int\s*\d+\s*:)?\s*\d+(\s*[,x]\s*\d+)*\s*$/i.test(v) ? undefined : 'whole numbers separated by commas, e.g. 8, 3, 32, 32 (token ids: int 1000: 8, 16)'),
    ignoreFocusOut: true,
  });
}
