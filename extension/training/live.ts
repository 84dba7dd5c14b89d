/**
 * "Attach to Training Job": follows the stream a running job writes (python/gradlens_recorder.py with
 * stream=...), or the newest stream in a folder such as runs/, and draws each step as it arrives: the
 * sparklines on the source, the panel's heat strip and loss curve, the status bar ("live · step 1,240 ·
 * 3 s ago") and, the moment the job reports one, the NaN/Inf as a Problem on its line.
 */
import * as path from 'node:path';
import * as vscode from 'vscode';
import type { TrainingRecord } from '../../engine/train/record';
import { sliceTrainingRecord } from '../../engine/train/stream';
import { GradientLensPanel } from '../panel';
import type { LiveStatus } from '../protocol';
import type { InspectionSession } from '../session';
import type { DocumentMapping } from '../sourceAnchors';
import { FollowUpdate, STREAM_SUFFIX, StreamFollower } from './follow';
import { liveText } from './liveText';
import { workspaceFileAccess } from './workspaceFiles';

/** How often the stream is checked; file watchers make it sooner where they work (they miss events on some remote and network file systems). */
const POLL_MS = 1000;

export class LiveTraining implements vscode.Disposable {
  private follower: StreamFollower | undefined;
  private timer: ReturnType<typeof setInterval> | undefined;
  private watcher: vscode.FileSystemWatcher | undefined;
  private document: vscode.TextDocument | undefined;
  private mapping: DocumentMapping | undefined;
  /** What the panel has: which panel, how many steps of the record. */
  private sent: { panel: GradientLensPanel; steps: number; state: LiveStatus['state'] } | undefined;
  private polling = false;
  private pollAgain = false;
  private missingDocumentReported = false;
  private readonly statusItem = vscode.window.createStatusBarItem('gradientLens.live', vscode.StatusBarAlignment.Right, 99);
  private readonly disposables: vscode.Disposable[] = [];

  constructor(private readonly session: InspectionSession, private readonly output: vscode.OutputChannel) {
    this.statusItem.name = 'Gradient Lens: live training';
    this.statusItem.command = 'gradientLens.showPanel';
    this.disposables.push(session.onDidClear(() => this.detach()));
  }

  get attached(): boolean {
    return this.follower !== undefined;
  }

  /** Follows `target` (a stream file or a folder of them), asking for it when not given. */
  async attach(target?: vscode.Uri): Promise<boolean> {
    const uri = target ?? (await this.pick());
    if (!uri) return false;
    let isFolder: boolean;
    try {
      isFolder = ((await vscode.workspace.fs.stat(uri)).type & vscode.FileType.Directory) !== 0;
    } catch {
      // Not there yet: a job about to start writes it. A name without the stream suffix is a folder to come.
      isFolder = !uri.path.endsWith(STREAM_SUFFIX) && !uri.path.endsWith('.jsonl');
    }
    this.detach();
    this.follower = new StreamFollower(workspaceFileAccess(), uri.toString(), isFolder);
    this.output.appendLine(`[${new Date().toLocaleTimeString()}] following ${isFolder ? `the newest *${STREAM_SUFFIX} in ` : ''}${vscode.workspace.asRelativePath(uri)}`);
    const pattern = new vscode.RelativePattern(isFolder ? uri : vscode.Uri.joinPath(uri, '..'), isFolder ? `**/*${STREAM_SUFFIX}` : path.posix.basename(uri.path));
    this.watcher = vscode.workspace.createFileSystemWatcher(pattern);
    this.watcher.onDidChange(() => void this.poll());
    this.watcher.onDidCreate(() => void this.poll());
    this.timer = setInterval(() => void this.poll(), POLL_MS);
    void vscode.commands.executeCommand('setContext', 'gradientLens.live', true);
    this.showStatus();
    await this.poll();
    return true;
  }

  /** Stops following; what was drawn stays. */
  detach(): void {
    if (!this.follower) return;
    const status = this.statusOf('detached');
    clearInterval(this.timer);
    this.watcher?.dispose();
    this.follower = undefined;
    this.timer = undefined;
    this.watcher = undefined;
    this.document = undefined;
    this.mapping = undefined;
    this.missingDocumentReported = false;
    if (this.sent) GradientLensPanel.existing?.showLiveStatus(status);
    this.sent = undefined;
    this.statusItem.hide();
    void vscode.commands.executeCommand('setContext', 'gradientLens.live', false);
  }

  private async pick(): Promise<vscode.Uri | undefined> {
    const folder = vscode.workspace.workspaceFolders?.[0]?.uri;
    const runs = folder && vscode.Uri.joinPath(folder, 'runs');
    let defaultUri = folder;
    if (runs) {
      try {
        await vscode.workspace.fs.stat(runs);
        defaultUri = runs;
      } catch {
        // no runs/ folder
      }
    }
    return (await vscode.window.showOpenDialog({
      canSelectFiles: true,
      canSelectFolders: true,
      canSelectMany: false,
      defaultUri,
      filters: { 'Gradient Lens training streams': ['jsonl'] },
      openLabel: 'Attach',
      title: `Attach to a training job: its stream (*${STREAM_SUFFIX}) or a folder to watch for the newest one`,
    }))?.[0];
  }

  /** One poll at a time; a watcher event during a poll asks for another right after it. */
  private async poll(): Promise<void> {
    const follower = this.follower;
    if (!follower) return;
    if (this.polling) {
      this.pollAgain = true;
      return;
    }
    this.polling = true;
    try {
      do {
        this.pollAgain = false;
        const update = await follower.poll();
        if (update && follower === this.follower) await this.apply(update);
      } while (this.pollAgain && follower === this.follower);
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.output.appendLine(`  stopped following: ${message}`);
      void vscode.window.showErrorMessage(`Gradient Lens: cannot follow the training stream: ${message}`);
      if (follower === this.follower) this.detach();
    } finally {
      this.polling = false;
      if (follower === this.follower) this.showStatus();
    }
  }

  private async apply(update: FollowUpdate): Promise<void> {
    if (update.reset) {
      this.document = undefined;
      this.mapping = undefined;
      this.sent = undefined;
      this.output.appendLine(`  stream: ${vscode.workspace.asRelativePath(vscode.Uri.parse(update.file))}`);
    }
    const record = update.record;
    if (!record) return;
    if (!this.document) {
      this.document = await this.session.documentForRecord(record);
      if (!this.document) {
        if (!this.missingDocumentReported) {
          this.missingDocumentReported = true;
          void vscode.window.showWarningMessage(`Gradient Lens: following ${path.posix.basename(update.file)}, but found no Python file to show it on${record.model.source ? ` (looked for ${path.basename(record.model.source)})` : ''}: open the model's source file.`);
        }
        await this.updatePanel(record);
        return;
      }
    }
    if (update.relayout || !this.mapping || update.reset) this.mapping = undefined;
    const shown = await this.session.showTrainingOn(this.document, record, 'live', this.mapping);
    this.mapping = shown.mapping;
    await this.updatePanel(record);
    if (update.newAnomaly && record.anomaly) this.reportAnomaly(record);
    if (update.ended) this.output.appendLine(`  the job ended its stream after ${record.steps.length} recorded steps (step ${record.steps[record.steps.length - 1] ?? 0})`);
  }

  /** Sends the panel what it lacks: the whole record for a new panel or run, else the new steps. */
  private async updatePanel(record: TrainingRecord): Promise<void> {
    const status = this.statusOf();
    let panel = GradientLensPanel.existing;
    if (!panel && !this.sent) panel = await this.session.showPanel(true);
    if (!panel) return;
    const steps = record.steps.length;
    if (!this.sent || this.sent.panel !== panel) {
      panel.showLiveTraining(record, false, status);
    } else if (steps > this.sent.steps) {
      panel.showLiveTraining(sliceTrainingRecord(record, this.sent.steps), true, status);
    } else if (status.state !== this.sent.state) {
      panel.showLiveStatus(status);
    }
    this.sent = { panel, steps, state: status.state };
  }

  private reportAnomaly(record: TrainingRecord): void {
    const a = record.anomaly!;
    this.output.appendLine(`  anomaly at step ${a.step} (${a.phase}): ${a.message}${a.source ? ` at ${path.basename(a.source.file)}:${a.source.line}` : ''}`);
    const document = this.document;
    void vscode.window.showWarningMessage(`Gradient Lens: the training job reports step ${a.step}: ${a.message}`, 'Show').then((choice) => {
      if (choice !== 'Show' || !document) return;
      const problem = vscode.languages.getDiagnostics(document.uri).find((d) => d.source === 'Gradient Lens' && d.code === 'non-finite');
      if (problem) void vscode.window.showTextDocument(document, { selection: problem.range, viewColumn: vscode.ViewColumn.One });
    });
  }

  private statusOf(state?: LiveStatus['state']): LiveStatus {
    const f = this.follower;
    const record = f?.record;
    const file = f?.currentFile ? vscode.workspace.asRelativePath(vscode.Uri.parse(f.currentFile)) : f ? vscode.workspace.asRelativePath(vscode.Uri.parse(f.target)) : '';
    const step = record?.steps.length ? record.steps[record.steps.length - 1] : null;
    return {
      file,
      state: state ?? (!record || step === null ? 'waiting' : f?.ended ? 'ended' : 'live'),
      step,
      ageMs: f?.lastStepAt != null ? Date.now() - f.lastStepAt : null,
    };
  }

  private showStatus(): void {
    if (!this.follower) return;
    const status = this.statusOf();
    this.statusItem.text = `$(radio-tower) ${liveText(status)}`;
    this.statusItem.tooltip = `Gradient Lens is following ${status.file}. Detach: "Gradient Lens: Detach from Training Job".`;
    this.statusItem.show();
  }

  dispose(): void {
    this.detach();
    this.statusItem.dispose();
    for (const d of this.disposables) d.dispose();
  }
}
