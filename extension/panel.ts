import * as vscode from 'vscode';
import type { InspectionReport } from '../engine/inspect/report';
import { serializeReport } from '../engine/inspect/reportCodec';
import type { Finding } from '../engine/inspect/diagnose';
import { parseTrainingRecord, serializeTrainingRecord, TrainingRecord } from '../engine/train/record';
import type { RunCapture } from '../engine/inspect/capture';
import { parseBaseline, RunBaseline } from '../engine/inspect/baseline';
import { BackendInfo, HostToWebview, LiveStatus, RunPhases, RunRequest, RunSettings, TrainRequest, TrainSettings, TrainStop, VerificationView } from './protocol';
import { CheckedWebviewMessage, parseWebviewMessage } from './webviewMessages';
import { makeNonce } from './nonce';

export interface PanelEvents {
  onRevealModule(path: string): void;
  onRerun(settings: RunSettings): void;
  onBackend(info: BackendInfo): void;
  onStartTraining(settings: RunSettings, train: TrainSettings): void;
  onVerify(): void;
  /** The panel pinned (or cleared) a baseline. */
  onBaseline(baseline: RunBaseline | null): void;
  /** The baseline a new panel starts with. */
  readonly baseline: RunBaseline | null;
}

/** Where a new panel opens: 'below' the editor (it keeps its width for the overlays) or 'beside' it. */
export type PanelPosition = 'below' | 'beside';

interface PendingTraining {
  resolve(result: { record: TrainingRecord; stopped: TrainStop }): void;
  reject(error: Error): void;
  onProgress(record: TrainingRecord): void;
}

/** A report from the panel's engine, with what the webview measured and how long the host waited. */
export interface PanelRunResult {
  report: InspectionReport;
  phases?: RunPhases;
  /** Waiting for the webview to load (0 when it was ready). */
  readyMs: number;
  /** From posting the run to receiving the report. */
  roundTripMs: number;
}

interface PendingRun {
  resolve(result: { report: InspectionReport; phases?: RunPhases }): void;
  reject(error: Error): void;
  onProgress(message: string): void;
  capture?: RunCapture;
}

/**
 * The Gradient Lens webview panel. It hosts the engine (in a worker inside the webview), so runs go
 * through here: `run()` posts the model and resolves with the report the webview sends back.
 */
export class GradientLensPanel implements vscode.Disposable {
  private static current: GradientLensPanel | undefined;
  private readonly disposables: vscode.Disposable[] = [];
  private readonly pending = new Map<number, PendingRun>();
  private readonly training = new Map<number, PendingTraining>();
  private readonly ready: Promise<void>;
  private markReady!: () => void;
  backend: BackendInfo | undefined;

  /** The open panel, or a new one below (or beside) the editor. */
  static async show(context: vscode.ExtensionContext, events: PanelEvents, settings: RunSettings, train: TrainSettings, preserveFocus = false, position: PanelPosition = 'below'): Promise<GradientLensPanel> {
    if (GradientLensPanel.current) {
      GradientLensPanel.current.panel.reveal(undefined, preserveFocus);
      return GradientLensPanel.current;
    }
    const editor = vscode.window.activeTextEditor;
    const viewColumn = position === 'below' ? await newGroupBelow() : vscode.ViewColumn.Beside;
    if (GradientLensPanel.current) return GradientLensPanel.current; // another call made it meanwhile
    const panel = vscode.window.createWebviewPanel('gradientLens.panel', 'Gradient Lens', { viewColumn, preserveFocus }, {
      enableScripts: true,
      retainContextWhenHidden: true,
      localResourceRoots: [vscode.Uri.joinPath(context.extensionUri, 'dist'), vscode.Uri.joinPath(context.extensionUri, 'media')],
    });
    panel.iconPath = vscode.Uri.joinPath(context.extensionUri, 'media', 'icon.png');
    GradientLensPanel.current = new GradientLensPanel(panel, context, events, settings, train);
    // The new group took the focus: give it back to the editor.
    if (preserveFocus && editor && position === 'below') await vscode.window.showTextDocument(editor.document, { viewColumn: editor.viewColumn, preserveFocus: false, selection: editor.selection });
    return GradientLensPanel.current;
  }

  static get existing(): GradientLensPanel | undefined {
    return GradientLensPanel.current;
  }

  /** Shown in its editor group (revealing it again is only layout work for the workbench). */
  get visible(): boolean {
    return this.panel.visible;
  }

  private constructor(private readonly panel: vscode.WebviewPanel, context: vscode.ExtensionContext, private readonly events: PanelEvents, private readonly settings: RunSettings, private readonly trainDefaults: TrainSettings) {
    this.ready = new Promise((resolve) => (this.markReady = resolve));
    panel.webview.html = this.html(panel.webview, context.extensionUri);
    panel.onDidDispose(() => this.dispose(), null, this.disposables);
    panel.webview.onDidReceiveMessage((raw: unknown) => this.receive(raw, context), null, this.disposables);
  }

  private post(message: HostToWebview): Thenable<boolean> {
    return this.panel.webview.postMessage(message);
  }

  /** Runs the model in the webview's engine. Rejects with the engine's error message, or 'cancelled'. */
  async run(request: RunRequest, onProgress: (message: string) => void, token: vscode.CancellationToken): Promise<PanelRunResult> {
    const start = performance.now();
    await this.ready;
    const posted = performance.now();
    const result = await new Promise<{ report: InspectionReport; phases?: RunPhases }>((resolve, reject) => {
      this.pending.set(request.runId, { resolve, reject, onProgress });
      token.onCancellationRequested(() => void this.post({ type: 'cancel', runId: request.runId }));
      void this.post({ type: 'run', ...request });
    });
    return { ...result, readyMs: posted - start, roundTripMs: performance.now() - posted };
  }

  /** Runs the model like run() and also resolves with what the run fed, used and computed (the panel keeps its report). */
  async runCaptured(request: RunRequest, onProgress: (message: string) => void, token: vscode.CancellationToken): Promise<{ report: InspectionReport; capture: RunCapture }> {
    await this.ready;
    return new Promise((resolve, reject) => {
      const pending: PendingRun = {
        resolve: ({ report }) => (pending.capture ? resolve({ report, capture: pending.capture }) : reject(new Error('the engine sent no capture of the run'))),
        reject,
        onProgress,
      };
      this.pending.set(request.runId, pending);
      token.onCancellationRequested(() => void this.post({ type: 'cancel', runId: request.runId }));
      void this.post({ type: 'run', ...request, capture: true });
    });
  }

  /** Shows a report computed elsewhere (the extension host's engine) as this panel's current run. */
  async showReport(runId: number, report: InspectionReport, settings: RunSettings): Promise<void> {
    await this.ready;
    await this.post({ type: 'showReport', runId, report: serializeReport(report), settings });
  }

  /** Runs `request` in the panel's engine only to warm it up (see RunRequest.warmUp); nothing comes back. */
  warmUp(request: RunRequest): void {
    void this.ready.then(() => this.post({ type: 'run', ...request, warmUp: true }));
  }

  showVerification(view: VerificationView): void {
    void this.ready.then(() => this.post({ type: 'verification', view }));
  }

  /**
   * Trains in the webview's engine. Resolves with the record when the run ends (done, stopped by
   * the token, or at an anomaly); rejects with the engine's error.
   */
  async train(request: TrainRequest, onProgress: (record: TrainingRecord) => void, token: vscode.CancellationToken): Promise<{ record: TrainingRecord; stopped: TrainStop }> {
    await this.ready;
    return new Promise((resolve, reject) => {
      this.training.set(request.runId, { resolve, reject, onProgress });
      token.onCancellationRequested(() => void this.post({ type: 'cancel', runId: request.runId }));
      void this.post({ type: 'train', ...request });
    });
  }

  /** Shows a record that did not come from this panel's engine (imported from a file). */
  showTraining(record: TrainingRecord): void {
    void this.ready.then(() => this.post({ type: 'showTraining', record: serializeTrainingRecord(record) }));
  }

  /** A followed training job: the whole record (append false) or the steps after those sent before. */
  showLiveTraining(record: TrainingRecord, append: boolean, status: LiveStatus): void {
    void this.ready.then(() => this.post({ type: 'liveTraining', record: serializeTrainingRecord(record), append, status }));
  }

  showLiveStatus(status: LiveStatus): void {
    void this.ready.then(() => this.post({ type: 'liveStatus', status }));
  }

  showFindings(runId: number, findings: Finding[], kinds: Record<string, string> = {}): void {
    void this.post({ type: 'findings', runId, findings, kinds });
  }

  showBaseline(baseline: RunBaseline | null): void {
    void this.ready.then(() => this.post({ type: 'baseline', baseline }));
  }

  showAttention(modulePath: string): void {
    void this.ready.then(() => this.post({ type: 'showAttention', modulePath }));
  }

  focusModule(path: string): void {
    void this.post({ type: 'focusModule', path });
  }

  /** Checks a webview message against the protocol before anything uses it; refuses (and logs) one that does not fit. */
  private receive(raw: unknown, context: vscode.ExtensionContext): void {
    let message: CheckedWebviewMessage;
    try {
      message = parseWebviewMessage(raw);
    } catch (err) {
      const reason = err instanceof Error ? err.message : String(err);
      console.error(`Gradient Lens: refused a message from the panel: ${reason}`);
      // A run waiting for this report must not wait forever.
      const runId = typeof raw === 'object' && raw !== null ? (raw as { runId?: unknown }).runId : undefined;
      if (typeof runId === 'number') {
        const e = new Error(`the panel sent an invalid message (${reason})`);
        this.pending.get(runId)?.reject(e);
        this.pending.delete(runId);
        this.training.get(runId)?.reject(e);
        this.training.delete(runId);
      }
      return;
    }
    try {
      this.onMessage(message, context);
    } catch (err) {
      console.error(`Gradient Lens: could not handle the panel's ${message.type} message: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  private onMessage(message: CheckedWebviewMessage, context: vscode.ExtensionContext): void {
    switch (message.type) {
      case 'ready':
        void this.post({ type: 'hello', version: String(context.extension.packageJSON.version ?? ''), settings: this.settings, train: this.trainDefaults });
        void this.post({ type: 'baseline', baseline: this.events.baseline });
        this.markReady();
        break;
      case 'backend':
        this.backend = message.info;
        this.events.onBackend(message.info);
        break;
      case 'progress':
        this.pending.get(message.runId)?.onProgress(message.message);
        break;
      case 'capture': {
        const p = this.pending.get(message.runId);
        if (p) p.capture = message.capture;
        break;
      }
      case 'verify':
        this.events.onVerify();
        break;
      case 'report':
        this.pending.get(message.runId)?.resolve({ report: message.report, phases: message.phases });
        this.pending.delete(message.runId);
        break;
      case 'runError':
        this.pending.get(message.runId)?.reject(new Error(message.message));
        this.pending.delete(message.runId);
        this.training.get(message.runId)?.reject(new Error(message.message));
        this.training.delete(message.runId);
        break;
      case 'trainProgress':
        this.training.get(message.runId)?.onProgress(parseTrainingRecord(message.record, 'training progress'));
        break;
      case 'trainDone': {
        const waiting = this.training.get(message.runId);
        this.training.delete(message.runId);
        try {
          waiting?.resolve({ record: parseTrainingRecord(message.record, 'training record'), stopped: message.stopped });
        } catch (err) {
          waiting?.reject(err instanceof Error ? err : new Error(String(err)));
        }
        break;
      }
      case 'startTraining':
        this.events.onStartTraining(message.settings, message.train);
        break;
      case 'baseline': {
        const baseline = message.baseline === null ? null : parseBaseline(message.baseline);
        if (message.baseline === null || baseline) this.events.onBaseline(baseline);
        break;
      }
      case 'revealModule':
        this.events.onRevealModule(message.path);
        break;
      case 'rerun':
        this.events.onRerun(message.settings);
        break;
      case 'error':
        void vscode.window.showErrorMessage(`Gradient Lens: ${message.message}`);
        break;
    }
  }

  private html(webview: vscode.Webview, extensionUri: vscode.Uri): string {
    const nonce = makeNonce();
    // The page starts its engine with this choice before the ready/hello round trip (only known values reach the HTML).
    const backend = (['auto', 'webgpu', 'wasm', 'typescript'] as const).find((b) => b === this.settings.backend) ?? 'auto';
    const asset = (name: string) => webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist', name)).toString();
    // Strict CSP: only our nonce'd script runs; the engine worker starts from a blob of our own script;
    // 'wasm-unsafe-eval' lets the WebAssembly backend compile; fetch reaches only our own resources.
    const csp = [
      "default-src 'none'",
      `img-src ${webview.cspSource} data:`,
      `style-src ${webview.cspSource} 'unsafe-inline'`,
      `font-src ${webview.cspSource}`,
      `script-src 'nonce-${nonce}' 'wasm-unsafe-eval'`,
      'worker-src blob:',
      `connect-src ${webview.cspSource}`,
    ].join('; ');
    return `<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="UTF-8">
<meta http-equiv="Content-Security-Policy" content="${csp}">
<meta name="viewport" content="width=device-width, initial-scale=1.0">
<title>Gradient Lens</title>
<link rel="stylesheet" href="${asset('webview.css')}">
</head>
<body>
<div id="app" data-backend="${backend}" data-worker="${asset('engine-worker.js')}" data-wasm-base="${webview.asWebviewUri(vscode.Uri.joinPath(extensionUri, 'dist')).toString()}/"></div>
<script nonce="${nonce}" src="${asset('webview.js')}"></script>
</body>
</html>`;
  }

  dispose(): void {
    GradientLensPanel.current = undefined;
    for (const p of [...this.pending.values(), ...this.training.values()]) p.reject(new Error('the Gradient Lens panel was closed'));
    this.pending.clear();
    this.training.clear();
    this.panel.dispose();
    while (this.disposables.length) this.disposables.pop()?.dispose();
  }
}

/**
 * The column for the panel: an empty editor group left over from an earlier panel (a reloaded window restores the
 * group, not the webview), else a new group below the active one. Stacking a new group under the empty one left
 * the editor a dozen lines high.
 */
async function newGroupBelow(): Promise<vscode.ViewColumn> {
  const empty = vscode.window.tabGroups.all.find((g) => g.tabs.length === 0 && !g.isActive);
  if (empty) return empty.viewColumn;
  await vscode.commands.executeCommand('workbench.action.newGroupBelow');
  return vscode.window.tabGroups.activeTabGroup.viewColumn;
}
