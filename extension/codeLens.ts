import * as vscode from 'vscode';
import { InspectionSession } from './session';
import { sciCompact } from './overlay/format';
import { problemsSummary } from './overlay/model';

/** Gradient Lens's entries in the Problems panel for a document, as problemsSummary counts them. */
function listedProblems(uri: vscode.Uri): { severity: 'error' | 'warning' | 'info'; kind: string }[] {
  return vscode.languages.getDiagnostics(uri).filter((d) => d.source === 'Gradient Lens').map((d) => ({
    severity: d.severity === vscode.DiagnosticSeverity.Error ? 'error' : d.severity === vscode.DiagnosticSeverity.Warning ? 'warning' : 'info',
    kind: typeof d.code === 'object' ? String(d.code.value) : String(d.code ?? ''),
  }));
}

/** "Inspect gradients" above every nn.Module class; after a run, a summary lens above the model class. */
export class ModuleCodeLensProvider implements vscode.CodeLensProvider {
  readonly onDidChangeCodeLenses: vscode.Event<void>;

  constructor(private readonly session: InspectionSession) {
    this.onDidChangeCodeLenses = session.onDidChange;
  }

  async provideCodeLenses(document: vscode.TextDocument): Promise<vscode.CodeLens[]> {
    if (!vscode.workspace.getConfiguration('gradientLens', document.uri).get('codeLens.enabled', true)) return [];
    const classes = await this.session.mapper.moduleClasses(document);
    if (classes.length > 0) this.session.prewarmEngine();
    const last = this.session.lastRun;
    const lenses: vscode.CodeLens[] = [];
    for (const c of classes) {
      const range = new vscode.Range(c.line, 0, c.line, 0);
      lenses.push(new vscode.CodeLens(range, { title: '$(pulse) Inspect gradients', command: 'gradientLens.inspect', arguments: [document.uri, c.name], tooltip: `Run forward and backward on ${c.name} (its ONNX export, made for you when there is none) and overlay the gradients` }));
      if (last && last.document.toString() === document.uri.toString() && c.line === last.mapping.fallbackLine) {
        const root = last.report.modules.find((m) => m.path === '');
        // The same count as the Problems panel: the diagnostics this run set on the file, by severity.
        lenses.push(new vscode.CodeLens(range, {
          title: `‖∇‖ ${sciCompact(root?.gradNorm ?? null)} · loss ${last.report.loss.value.toPrecision(4)} · ${problemsSummary(listedProblems(document.uri))}`,
          command: 'gradientLens.showPanel',
          tooltip: 'Open the Gradient Lens panel',
        }));
      }
    }
    if (last && last.document.toString() === document.uri.toString() && last.report.attention?.length) {
      for (const site of await this.session.mapper.attentionSites(document)) {
        // Layers whose attention module is an instance of the class holding this line (or, for an
        // nn.MultiheadAttention attribute, whose parent is).
        const owners = new Set(last.mapping.instances[site.className] ?? []);
        const caps = last.report.attention.filter((c) => owners.has(c.modulePath) || owners.has(c.modulePath.slice(0, Math.max(0, c.modulePath.lastIndexOf('.')))));
        if (caps.length === 0) continue;
        const heads = caps[0].heads;
        lenses.push(new vscode.CodeLens(new vscode.Range(site.line, 0, site.line, 0), {
          title: `$(eye) Attention & gradients: layer${caps.length > 1 ? 's' : ''} ${caps.map((c) => c.layer).join(', ')} · ${heads} heads`,
          command: 'gradientLens.showAttention',
          arguments: [caps[0].modulePath],
          tooltip: 'Show the attention maps P, dL/dP and dL/dS of these layers in the Gradient Lens panel',
        }));
      }
    }
    return lenses;
  }
}
