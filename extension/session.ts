import * as path from 'node:path';
import * as vscode from 'vscode';
import { diagnose, Finding } from '../engine/inspect/diagnose';
import { InspectionReport, withModuleKinds } from '../engine/inspect/report';
import { baselineOf, compareRuns, isPinnedRun, parseBaseline, RunBaseline } from '../engine/inspect/baseline';
import { configuredModel, memoryBudgetMB, panelPosition, runSettings, thresholds, trainSettings } from './config';
import { serializeTrainingRecord, TrainingRecord } from '../engine/train/record';
import { readTrainingImport } from './training/importFiles';
import { mapTrainingRecord } from './training/mapping';
import { anomalyDiagnostic, trainingOverlays } from './overlay/training';
import { LocatedModel, readModel } from './modelLocator';
import { PythonSupport, ExportMeta } from './python';
import type { ModelChoice } from './python/exports';
import { buildOverlays, lineDiagnostics, mergeOverlays, placeFindings } from './overlay/model';
import { hookOverlays } from './overlay/hooks';
import { OverlayPresenter } from './overlay/apply';
import { GradientLensPanel, PanelEvents, PanelRunResult } from './panel';
import { HostEngine } from './hostEngine/client';
import { BackendInfo, RunRequest, RunSettings, TrainSettings } from './protocol';
import { SourceMapper, DocumentMapping, sourceKinds } from './sourceAnchors';
import { formatRunTiming, RunEngine } from './runTiming';
import { withDelayedProgress } from './progress';
import { fileStamps, OwnExportCache } from './ownExportCache';
import type { ModelFiles } from './modelFiles';

interface LastRun {
  runId: number;
  document: vscode.Uri;
  model: LocatedModel;
  report: InspectionReport;
  findings: Finding[];
  mapping: DocumentMapping;
  settings: RunSettings;
  /** Set when Gradient Lens exported the model from the document. */
  exported?: ExportMeta;
  /** Module classes the source names where the export does not (sourceKinds). */
  kinds: Record<string, string>;
  /** False while a report of the extension host's engine is not yet in the panel (findings wait for it). */
  inPanel: boolean;
}

const BASELINE_KEY = 'gradientLens.baseline';

/** How long a panel opened for a run of the extension host's engine waits, so the overlays are painted first. */
const PANEL_AFTER_OVERLAYS_MS = 300;

/**
 * A run's cancellable notification appears only when it takes longer than this: the status bar item spins meanwhile.
 * A notification held on screen for VS Code's minimum of 800 ms is renderer work while the overlays should paint.
 */
const NOTIFICATION_AFTER_MS = 1000;

/** Larger exports are read anew for every Inspect, not held in the extension host between runs. */
const OWN_EXPORT_MAX_BYTES = 32 * 2 ** 20;

/** Larger models are not run a second time in the panel just to warm its engine up (memory and CPU). */
const WARM_UP_MAX_BYTES = 16 * 2 ** 20;

/** A training record shown on a document: from a run in the panel or imported from a file. */
interface TrainingView {
  document: vscode.Uri;
  record: TrainingRecord;
  mapping: DocumentMapping;
  origin: 'engine' | 'import' | 'live';
}

/** One inspection workflow: locate the model, run it in the webview engine, overlay the report on the source. */
export class InspectionSession implements vscode.Disposable, PanelEvents {
  private runCounter = 0;
  private last: LastRun | undefined;
  /** The latest inspection while it runs (settles, never rejects). */
  private inspecting: Promise<unknown> | undefined;
  private readonly presenter = new OverlayPresenter();
  private readonly diagnostics = vscode.languages.createDiagnosticCollection('gradient-lens');
  private readonly status = vscode.window.createStatusBarItem('gradientLens.status', vscode.StatusBarAlignment.Right, 100);
  private readonly changed = new vscode.EventEmitter<void>();
  /** Fires when a run finished or overlays were cleared (CodeLenses refresh on it). */
  readonly onDidChange = this.changed.event;
  private readonly cleared = new vscode.EventEmitter<void>();
  /** Fires when the user cleared the overlays (a followed training job stops drawing). */
  readonly onDidClear = this.cleared.event;
  private backend: BackendInfo | undefined;
  private running: vscode.CancellationTokenSource | undefined;
  private trainingRun: vscode.CancellationTokenSource | undefined;
  private trainingView: TrainingView | undefined;
  /** The pinned run new runs are compared with (kept in the workspace's storage). */
  private pinned: RunBaseline | null;
  /** The extension host's engine (a worker thread): inspections run there unless they need the panel's. */
  private readonly hostEngine: HostEngine;
  /** The last Inspect's own export and its bytes, reused while its files are unchanged. */
  private readonly ownExports = new OwnExportCache();
  /** Panels whose engine ran (or was given a warm-up run). */
  private readonly panelEngineWarm = new WeakSet<GradientLensPanel>();

  constructor(private readonly context: vscode.ExtensionContext, private readonly output: vscode.OutputChannel, readonly mapper: SourceMapper, private readonly python: PythonSupport) {
    this.pinned = parseBaseline(context.workspaceState.get(BASELINE_KEY));
    this.hostEngine = new HostEngine(vscode.Uri.joinPath(context.extensionUri, 'dist', 'host-engine.js').fsPath);
    this.hostEngine.onBackend = (info) => this.output.appendLine(`extension host engine backend: ${info.name} (${info.reason})`);
    this.status.name = 'Gradient Lens';
    this.status.command = 'gradientLens.showPanel';
    this.updateStatus();
    context.subscriptions.push(
      vscode.workspace.onDidSaveTextDocument((d) => this.remap(d)),
      // Moving the cursor onto an overlaid line highlights that module in the panel's table.
      vscode.window.onDidChangeTextEditorSelection((e) => {
        if (!this.last || e.textEditor.document.uri.toString() !== this.last.document.toString()) return;
        const overlay = this.presenter.overlaysFor(e.textEditor.document.uri).find((o) => o.line === e.selections[0]?.active.line);
        if (overlay?.modulePaths[0] !== undefined) GradientLensPanel.existing?.focusModule(overlay.modulePaths[0]);
      }),
      vscode.workspace.onDidChangeConfiguration((e) => {
        if (e.affectsConfiguration('gradientLens.thresholds') && this.last) void this.apply(this.last);
      }),
    );
  }

  /**
   * Starts the extension host's engine (a worker thread; its kernels compile off this thread) so the first Inspect
   * finds it ready. Called when a file shows an "Inspect gradients" lens: a Python user with no model pays nothing.
   */
  prewarmEngine(): void {
    this.hostEngine.prewarm();
  }

  get lastRun(): LastRun | undefined {
    return this.last;
  }

  showPanel(preserveFocus = false): Promise<GradientLensPanel> {
    const scope = this.last?.document;
    return GradientLensPanel.show(this.context, this, runSettings(scope), trainSettings(scope), preserveFocus, panelPosition(scope));
  }

  /**
   * Inspects the model of `target` (or of the active Python editor): `model` when given, else the file's own
   * up-to-date export, else one Gradient Lens makes (`request`: the class whose CodeLens was clicked, or the
   * class to keep).
   */
  inspect(target?: vscode.Uri, settings?: RunSettings, model?: ModelChoice, request: { clicked?: string; className?: string } = {}): Promise<InspectionReport | undefined> {
    const run = this.inspectNow(target, settings, model, request);
    this.inspecting = run.catch(() => undefined);
    return run;
  }

  private async inspectNow(target: vscode.Uri | undefined, settings: RunSettings | undefined, model: ModelChoice | undefined, request: { clicked?: string; className?: string }): Promise<InspectionReport | undefined> {
    const start = performance.now();
    const startEpoch = Date.now();
    const document = await this.pythonDocument(target);
    const budgetMB = memoryBudgetMB(document?.uri);
    this.hostEngine.prewarm();
    // The files alone may not exceed the run's budget: refused before they are read.
    const found = await this.modelAndFiles(document, model, request, budgetMB * 2 ** 20, start);
    if (!found) return undefined;
    const { choice, files, locateMs, readMs } = found;
    const modelUri = choice.uri;
    const runSettingsNow = settings ?? runSettings(document?.uri);
    const engine = this.engineFor(runSettingsNow);
    // The panel's engine needs the panel loaded; the host's does not, and the panel opens after the overlays.
    const panel = engine === 'panel' ? await this.showPanel(true) : undefined;
    if (panel) this.panelEngineWarm.add(panel);
    const runId = ++this.runCounter;
    const modelName = path.basename(modelUri.path);
    const tWatches = performance.now();
    const watches = document ? await this.mapper.watches(document) : [];
    const watchesMs = performance.now() - tWatches;
    this.running?.cancel();
    const cts = (this.running = new vscode.CancellationTokenSource());
    this.updateStatus(`$(sync~spin) ${modelName}`);
    this.output.appendLine(`[${new Date().toLocaleTimeString()}] inspecting ${vscode.workspace.asRelativePath(modelUri)} (seed ${runSettingsNow.seed}, batch ${runSettingsNow.batch}, loss ${runSettingsNow.loss}, backend ${runSettingsNow.backend}, ${runSettingsNow.dtype}, ${runSettingsNow.mode} mode)${engine === 'host' ? ' in the extension host engine' : ''}`);
    try {
      const request = { runId, modelName, bytes: files.bytes, externalData: files.externalData, settings: runSettingsNow, watches, memoryBudgetMB: budgetMB };
      const { report, phases, readyMs, roundTripMs } = await withDelayedProgress(`Gradient Lens: ${modelName}`, NOTIFICATION_AFTER_MS, (progress, token) => {
        token.onCancellationRequested(() => cts.cancel());
        const onProgress = (message: string) => progress({ message });
        return panel ? panel.run(request, onProgress, cts.token) : this.runInHost(request, onProgress, cts.token);
      });
      if (runId !== this.runCounter) return undefined; // superseded
      const tMapping = performance.now();
      const mapping = document ? await this.mapper.map(document, report) : { anchors: [], fallbackLine: 0, unmapped: [], watchLines: [], classOf: {}, instances: {} };
      const tOverlays = performance.now();
      this.last = { runId, document: document?.uri ?? modelUri, model: choice, report, findings: [], mapping, kinds: {}, settings: runSettingsNow, exported: choice.exported, inPanel: engine === 'panel' };
      await this.apply(this.last);
      const end = performance.now();
      // bench/click.mjs sets GRADIENT_LENS_CLICK_EPOCHS to split its click-to-paint time at these wall-clock stamps.
      const epochs = process.env.GRADIENT_LENS_CLICK_EPOCHS ? ` [command at ${startEpoch}, decorations set at ${Date.now()}]` : '';
      this.output.appendLine(`  ${formatRunTiming({ locateMs, readMs, watchesMs, readyMs, roundTripMs, mappingMs: tOverlays - tMapping, overlaysMs: end - tOverlays, totalMs: end - start }, report, phases, engine)}${epochs}`);
      if (engine === 'host') void this.showInPanel(this.last, request);
      return report;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.output.appendLine(`  failed: ${message}`);
      this.updateStatus();
      if (message !== 'cancelled' && !message.startsWith('superseded')) void vscode.window.showErrorMessage(`Gradient Lens could not inspect ${modelName}: ${message}`);
      return undefined;
    } finally {
      if (this.running === cts) this.running = undefined;
      cts.dispose();
    }
  }

  /**
   * The model of an Inspect and its files. The document's own up-to-date export comes from the own-export cache when
   * it was read before and none of its files changed since (ownExportCache.ts); anything else is located and read
   * now. Kept for next time: only the document's own export, without external data files, up to OWN_EXPORT_MAX_BYTES.
   */
  private async modelAndFiles(document: vscode.TextDocument | undefined, model: ModelChoice | undefined, request: { clicked?: string; className?: string }, maxBytes: number, start: number): Promise<{ choice: ModelChoice; files: ModelFiles; locateMs: number; readMs: number } | undefined> {
    const configured = configuredModel(document?.uri);
    const source = !model && !configured && document?.uri.scheme === 'file' ? document.uri.fsPath : undefined;
    const context = JSON.stringify((vscode.workspace.workspaceFolders ?? []).map((f) => f.uri.toString()));
    const hit = source ? await this.ownExports.lookup(source, context) : undefined;
    if (hit && hit.bytes.length <= maxBytes) {
      const choice: ModelChoice = { uri: vscode.Uri.file(hit.model), pickedByUser: false, ownUpToDate: true };
      return { choice, files: { bytes: hit.bytes, externalData: {}, totalBytes: hit.bytes.length }, locateMs: performance.now() - start, readMs: 0 };
    }
    const before = source ? await this.ownExports.stampSource(source) : undefined;
    const choice = model ?? (await this.python.exports.modelFor(document, request));
    if (!choice) return undefined;
    const tRead = performance.now();
    const keep = before && choice.ownUpToDate && choice.uri.scheme === 'file';
    const modelStamps = keep ? await fileStamps([choice.uri.fsPath]) : undefined;
    const files = await readModel(choice, maxBytes);
    if (!files) return undefined;
    if (before && modelStamps && Object.keys(files.externalData).length === 0 && files.totalBytes <= OWN_EXPORT_MAX_BYTES) void this.ownExports.store(before, context, choice.uri.fsPath, modelStamps, files.bytes);
    else this.ownExports.clear();
    return { choice, files, locateMs: tRead - start, readMs: performance.now() - tRead };
  }

  /**
   * Which engine runs an inspection. The extension host's (no webview on the way to the overlays) for the
   * WebAssembly and TypeScript backends; the panel's when WebGPU is asked for, or when 'auto' and the panel's
   * engine found a WebGPU device (once known: before the panel has started, 'auto' runs on WebAssembly).
   * Verify's captured runs and training always run in the panel.
   */
  private engineFor(settings: RunSettings): RunEngine {
    if (settings.backend === 'webgpu') return 'panel';
    if (settings.backend === 'auto' && this.backend?.name.startsWith('webgpu')) return 'panel';
    return 'host';
  }

  /** Runs in the extension host's engine, shaped like a panel run (its worker's start as the 'worker start' phase). */
  private async runInHost(request: RunRequest, onProgress: (message: string) => void, token: vscode.CancellationToken): Promise<PanelRunResult> {
    token.onCancellationRequested(() => this.hostEngine.cancel(request.runId));
    const { report, workerStartMs, roundTripMs } = await this.hostEngine.run(request, onProgress);
    return { report, phases: { workerStartMs, backendMs: 0, pageMs: workerStartMs + roundTripMs }, readyMs: 0, roundTripMs: workerStartMs + roundTripMs };
  }

  /** Shows a run the extension host's engine made in the panel (opened now if it is not), with its findings. */
  private async showInPanel(run: LastRun, request: RunRequest): Promise<void> {
    try {
      // Creating the panel (a new editor group, the webview) is 0.5-1 s of the workbench renderer's time (session 6's
      // breakdowns), the thread that paints the decorations: give it the overlays first.
      await new Promise((resolve) => setTimeout(resolve, PANEL_AFTER_OVERLAYS_MS));
      if (this.last !== run) return;
      // A panel in view is not revealed again (layout work for the workbench); a hidden or closed one is.
      const open = GradientLensPanel.existing;
      const panel = open?.visible ? open : await this.showPanel(true);
      if (this.last !== run) return;
      run.inPanel = true;
      await panel.showReport(run.runId, run.report, run.settings);
      // The findings of now (thresholds may have changed while the panel loaded).
      if (this.last === run) panel.showFindings(run.runId, run.findings, run.kinds);
      // A panel that has not run its engine yet runs this model once, so a Train N Steps right after starts on
      // compiled, tiered-up code, as it did when every Inspect ran in the panel.
      if (!this.panelEngineWarm.has(panel) && request.bytes.length <= WARM_UP_MAX_BYTES) {
        this.panelEngineWarm.add(panel);
        panel.warmUp({ ...request, runId: -request.runId });
      }
    } catch (err) {
      this.output.appendLine(`  the panel could not show the run: ${err instanceof Error ? err.message : String(err)}`);
    }
  }

  /** Re-runs the last inspection, optionally with new run settings from the panel. */
  async rerun(settings?: RunSettings): Promise<void> {
    if (!this.last) {
      await this.inspect(undefined, settings);
      return;
    }
    await this.inspect(this.last.document, settings, this.last.exported ? undefined : this.last.model, { className: this.last.exported?.className });
  }

  /** Inspects the last document again from its source (after an edit): a fresh export when it needs one. */
  async reinspect(): Promise<void> {
    if (this.last) await this.inspect(this.last.document, this.last.settings, undefined, { className: this.last.exported?.className });
  }

  /** Runs the model in PyTorch on exactly the last run's inputs and compares the gradients. */
  async verify(): Promise<void> {
    // An inspection under way (an inspect-on-save re-export) is the run to verify: comparing the previous run
    // with the newly saved source would report a mismatch that is only a matter of timing.
    await this.inspecting;
    if (!this.last) await this.inspect();
    if (this.last) await this.python.verifier.verify(this.last, await this.showPanel(true));
  }

  onVerify(): void {
    void this.verify();
  }

  clear(): void {
    this.presenter.clear();
    this.diagnostics.clear();
    this.last = undefined;
    this.trainingView = undefined;
    void vscode.commands.executeCommand('setContext', 'gradientLens.hasTraining', false);
    this.updateStatus();
    this.changed.fire();
    this.cleared.fire();
  }

  /** Diagnoses with the current thresholds and draws overlays, diagnostics, status and logs. */
  private async apply(run: LastRun): Promise<void> {
    run.findings = diagnose(run.report, thresholds(run.document));
    run.kinds = sourceKinds(run.report.modules, run.mapping.classOf);
    this.render(run.document);
    if (run.inPanel) GradientLensPanel.existing?.showFindings(run.runId, run.findings, run.kinds);
    const r = run.report;
    this.updateStatus(`$(pulse) ${r.backend} · ${path.basename(run.model.uri.path)} · ${(r.timings.forwardMs + r.timings.backwardMs).toFixed(0)} ms`);
    this.output.appendLine(`  ${r.backend} (${r.dtype}${r.mode ? `, ${r.mode} mode` : ''}): loss ${r.loss.kind} = ${r.loss.value.toPrecision(6)}, forward ${r.timings.forwardMs.toFixed(1)} ms, backward ${r.timings.backwardMs.toFixed(1)} ms; ${run.findings.length} findings; ${run.mapping.anchors.length} source anchors, ${run.mapping.unmapped.length} modules not found in the source`);
    for (const u of run.mapping.unmapped.slice(0, 20)) this.output.appendLine(`    unmapped ${u.path}: ${u.reason}`);
    for (const h of r.hookLogs) {
      const g = h.grad;
      this.output.appendLine(`  hook ${h.target}${h.source ? ` (${path.basename(h.source.file)}:${h.source.line})` : ''} grad [${h.shape.join(', ')}]: norm ${g.norm.toExponential(3)} mean ${g.mean.toExponential(3)} std ${g.std.toExponential(3)} min ${g.min.toExponential(3)} max ${g.max.toExponential(3)} zeros ${(g.zeroFraction * 100).toFixed(1)}%`);
    }
    this.changed.fire();
  }

  /**
   * Draws one document's overlays and problems from the last inspection and the training record shown
   * on it: on a line with both, the training text wins and the hover keeps both.
   */
  private render(document: vscode.Uri): void {
    const key = document.toString();
    const run = this.last?.document.toString() === key ? this.last : undefined;
    const view = this.trainingView?.document.toString() === key ? this.trainingView : undefined;
    const comparison = run && this.pinned && !isPinnedRun(this.pinned, run.report) ? compareRuns(run.report, this.pinned) : undefined;
    let overlays = run ? mergeOverlays(buildOverlays(withModuleKinds(run.report, run.kinds), run.mapping.anchors, run.findings, comparison), hookOverlays(run.report, run.mapping.watchLines)) : [];
    const problems = run ? lineDiagnostics(placeFindings(run.findings, run.mapping.anchors, run.mapping.fallbackLine)) : [];
    if (view) {
      overlays = mergeOverlays(overlays, trainingOverlays(view.record, view.mapping.anchors));
      const anomaly = anomalyDiagnostic(view.record, view.mapping.anchors, view.mapping.fallbackLine, document.fsPath);
      if (anomaly) problems.push(anomaly);
    }
    this.presenter.set(document, overlays);
    this.diagnostics.set(document, problems.map((g) => {
      const d = new vscode.Diagnostic(new vscode.Range(g.line, 0, g.line, Number.MAX_SAFE_INTEGER), g.message, severity(g.severity));
      d.source = 'Gradient Lens';
      d.code = g.kind;
      return d;
    }));
  }

  // ---------------------------------------------------------------- baseline

  get baseline(): RunBaseline | null {
    return this.pinned;
  }

  /** Pins the last run as the baseline later runs are compared with ("did my fix help?"). */
  pinBaseline(): RunBaseline | null {
    if (!this.last) {
      void vscode.window.showInformationMessage('Gradient Lens: inspect a model first, then pin its run as the baseline.');
      return null;
    }
    const baseline = baselineOf(this.last.report);
    this.setBaseline(baseline);
    GradientLensPanel.existing?.showBaseline(baseline);
    return baseline;
  }

  clearBaseline(): void {
    this.setBaseline(null);
    GradientLensPanel.existing?.showBaseline(null);
  }

  /** The panel pinned or cleared the baseline. */
  onBaseline(baseline: RunBaseline | null): void {
    this.setBaseline(baseline);
  }

  private setBaseline(baseline: RunBaseline | null): void {
    this.pinned = baseline;
    void this.context.workspaceState.update(BASELINE_KEY, baseline ?? undefined);
    if (baseline) this.output.appendLine(`baseline pinned: ${baseline.model} (loss ${baseline.loss.value.toPrecision(5)}, ${baseline.pinnedAt})`);
    else this.output.appendLine('baseline cleared');
    if (this.last) this.render(this.last.document);
    this.changed.fire();
  }

  // ---------------------------------------------------------------- training

  /** "Train N steps" on the model of the active Python file (or the last inspected one). */
  async train(train?: TrainSettings, settings?: RunSettings, target?: vscode.Uri): Promise<TrainingRecord | undefined> {
    const start = performance.now();
    const document = await this.pythonDocument(target ?? this.last?.document);
    const sameAsLast = this.last && document && this.last.document.toString() === document.uri.toString();
    const located = sameAsLast ? this.last!.model : await this.python.exports.modelFor(document);
    if (!located) return undefined;
    const budgetMB = memoryBudgetMB(document?.uri);
    const files = await readModel(located, budgetMB * 2 ** 20);
    if (!files) return undefined;
    const modelUri = located.uri;
    const trainNow = train ?? trainSettings(document?.uri);
    const settingsNow = settings ?? runSettings(document?.uri);
    const modelName = path.basename(modelUri.path);
    const panel = await this.showPanel(true);
    const runId = ++this.runCounter;
    this.trainingRun?.cancel();
    const cts = (this.trainingRun = new vscode.CancellationTokenSource());
    void vscode.commands.executeCommand('setContext', 'gradientLens.training', true);
    this.output.appendLine(`[${new Date().toLocaleTimeString()}] training ${vscode.workspace.asRelativePath(modelUri)}: ${trainNow.steps} steps of ${trainNow.optimizer} (lr ${trainNow.lr}${trainNow.optimizer === 'sgd' ? `, momentum ${trainNow.momentum}` : ''}${trainNow.weightDecay ? `, weight decay ${trainNow.weightDecay}` : ''}${trainNow.clipNorm ? `, clip norm ${trainNow.clipNorm}` : ''}${trainNow.clipValue ? `, clip value ${trainNow.clipValue}` : ''}), ${trainNow.data} data, batch ${settingsNow.batch}, seed ${settingsNow.seed}`);

    // The mapping is made once, from the first record (module paths do not change during a run).
    let mapping: Promise<DocumentMapping> | undefined;
    const show = async (record: TrainingRecord) => {
      // A run superseded by a newer one must not draw over it.
      if (!document || this.trainingRun !== cts || record.modules.length === 0) return;
      const first = !mapping;
      mapping ??= this.mapper.map(document, record);
      this.trainingView = { document: document.uri, record, mapping: await mapping, origin: 'engine' };
      this.render(document.uri);
      if (first) this.output.appendLine(`  time to the first step on the source ${(performance.now() - start).toFixed(0)} ms (${record.steps.length} step${record.steps.length === 1 ? '' : 's'} done)`);
    };
    try {
      const { record, stopped } = await withDelayedProgress(`Gradient Lens: training ${modelName}`, NOTIFICATION_AFTER_MS, (progress, token) => {
        token.onCancellationRequested(() => cts.cancel());
        let reported = 0;
        return panel.train({ runId, modelName, bytes: files.bytes, externalData: files.externalData, settings: settingsNow, watches: [], train: trainNow, memoryBudgetMB: budgetMB }, (rec) => {
          const k = rec.steps.length;
          const loss = rec.loss[k - 1];
          progress({ message: `step ${k} / ${trainNow.steps} · loss ${typeof loss === 'number' ? loss.toPrecision(4) : '—'}`, increment: ((k - reported) / trainNow.steps) * 100 });
          reported = k;
          void show(rec);
        }, cts.token);
      });
      await show(record);
      void vscode.commands.executeCommand('setContext', 'gradientLens.hasTraining', true);
      const k = record.steps.length;
      const first = record.loss[0];
      const lastLoss = record.loss[k - 1];
      this.output.appendLine(`  ${stopped === 'done' ? 'done' : stopped === 'cancelled' ? 'stopped' : 'stopped at an anomaly'} after ${k} steps: loss ${first?.toPrecision(5)} → ${lastLoss?.toPrecision(5)}`);
      if (record.anomaly) {
        const a = record.anomaly;
        this.output.appendLine(`  anomaly at step ${a.step} (${a.phase}): ${a.message}${a.source ? ` at ${path.basename(a.source.file)}:${a.source.line}` : ''}`);
        void vscode.window.showWarningMessage(`Gradient Lens: step ${a.step}: ${a.message}`, 'Show').then((choice) => {
          if (choice !== 'Show') return;
          // The recorded line when it is in this file (the op that made the NaN), else the module's line.
          if (document && a.source && path.basename(a.source.file) === path.basename(document.uri.fsPath)) void this.revealLine(document.uri, a.source.line - 1);
          else void this.revealModule(a.modulePath);
        });
      }
      this.changed.fire();
      return record;
    } catch (err) {
      const message = err instanceof Error ? err.message : String(err);
      this.output.appendLine(`  training failed: ${message}`);
      void vscode.window.showErrorMessage(`Gradient Lens could not train ${modelName}: ${message}`);
      return undefined;
    } finally {
      if (this.trainingRun === cts) {
        this.trainingRun = undefined;
        void vscode.commands.executeCommand('setContext', 'gradientLens.training', false);
      }
      cts.dispose();
    }
  }

  stopTraining(): void {
    this.trainingRun?.cancel();
  }

  get trainingRecord(): TrainingRecord | undefined {
    return this.trainingView?.record;
  }

  /** Saves the shown training record as JSON (schema gradient-lens/training@1). */
  async exportTraining(target?: vscode.Uri): Promise<vscode.Uri | undefined> {
    const view = this.trainingView;
    if (!view) {
      void vscode.window.showInformationMessage('Gradient Lens: no training statistics to export yet. Run "Gradient Lens: Train N Steps…" first.');
      return undefined;
    }
    const stem = view.record.model.name.replace(/\.onnx$/i, '');
    const uri = target ?? (await vscode.window.showSaveDialog({
      defaultUri: vscode.Uri.joinPath(view.document, '..', `${stem}.training.json`),
      filters: { 'Gradient Lens training statistics': ['json'] },
      title: 'Export training statistics',
    }));
    if (!uri) return undefined;
    const record: TrainingRecord = { ...view.record, model: { ...view.record.model, source: view.record.model.source ?? path.basename(view.document.fsPath) } };
    await vscode.workspace.fs.writeFile(uri, new TextEncoder().encode(serializeTrainingRecord(record)));
    this.output.appendLine(`exported ${record.steps.length} steps × ${record.modules.length} modules to ${uri.fsPath}`);
    return uri;
  }

  /**
   * Shows statistics recorded elsewhere on the Python file they belong to (the record's source file if it
   * is in the workspace, else the active one): a record from python/gradlens_recorder.py (JSON, or the
   * stream of a running or killed job) or a TensorBoard run's event files.
   */
  async importTraining(file?: vscode.Uri): Promise<TrainingRecord | undefined> {
    const uri = file ?? (await vscode.window.showOpenDialog({
      canSelectMany: false,
      filters: { 'Training statistics (JSON, JSON lines)': ['json', 'jsonl'], 'TensorBoard event files, all files': ['*'] },
      title: 'Import training statistics (a Gradient Lens record or stream, or a TensorBoard event file)',
    }))?.[0];
    if (!uri) return undefined;
    let imported;
    try {
      imported = await readTrainingImport(uri);
    } catch (err) {
      void vscode.window.showErrorMessage(`Gradient Lens: cannot import ${uri.fsPath}: ${err instanceof Error ? err.message : err}`);
      return undefined;
    }
    const document = await this.documentForRecord(imported.record);
    if (!document) {
      void vscode.window.showErrorMessage(`Gradient Lens: imported ${path.basename(uri.fsPath)}, but found no Python file to show it on${imported.record.model.source ? ` (looked for ${path.basename(imported.record.model.source)})` : ''}: open the model's source file and import again.`);
      return undefined;
    }
    const { record, mapping } = await this.showTrainingOn(document, imported.record, 'import');
    (await this.showPanel(true)).showTraining(record);
    this.output.appendLine(`imported ${path.basename(uri.fsPath)} (${record.producer}): ${record.steps.length} steps, ${record.modules.length} modules, ${mapping.anchors.length} source anchors on ${vscode.workspace.asRelativePath(document.uri)}; ${mapping.unmapped.length} modules not found in the source`);
    for (const note of imported.notes) this.output.appendLine(`    ${note}`);
    for (const u of mapping.unmapped.slice(0, 20)) this.output.appendLine(`    unmapped ${u.path}: ${u.reason}`);
    await vscode.window.showTextDocument(document, { preview: false, preserveFocus: false, viewColumn: vscode.ViewColumn.One });
    this.changed.fire();
    return record;
  }

  /**
   * Draws a training record that came from outside the panel's engine (imported, or followed live) on
   * `document`. Maps it unless `mapping` is given (a live job's module layout rarely changes); returns
   * the record as drawn (paths may lose a prefix that kept them off the source) and its mapping.
   */
  async showTrainingOn(document: vscode.TextDocument, record: TrainingRecord, origin: 'import' | 'live', mapping?: DocumentMapping): Promise<{ record: TrainingRecord; mapping: DocumentMapping }> {
    const mapped = mapping ? { record, mapping } : await mapTrainingRecord(this.mapper, document, record);
    this.trainingView = { document: document.uri, record: mapped.record, mapping: mapped.mapping, origin };
    void vscode.commands.executeCommand('setContext', 'gradientLens.hasTraining', true);
    this.render(document.uri);
    return mapped;
  }

  /** The Python file a record belongs to: an open editor or workspace file named like its model.source, else the active Python file. */
  async documentForRecord(record: TrainingRecord): Promise<vscode.TextDocument | undefined> {
    const name = record.model.source ? path.basename(record.model.source) : undefined;
    if (name) {
      const open = vscode.workspace.textDocuments.find((d) => path.basename(d.uri.fsPath) === name);
      if (open) return open;
      const [found] = await vscode.workspace.findFiles(`**/${name}`, '**/{node_modules,.git}/**', 1);
      if (found) return vscode.workspace.openTextDocument(found);
    }
    return this.pythonDocument();
  }

  onStartTraining(settings: RunSettings, train: TrainSettings): void {
    void this.train(train, settings);
  }

  /** After a save, lines may have moved: map the same report onto the new source without re-running. */
  private async remap(document: vscode.TextDocument): Promise<void> {
    const key = document.uri.toString();
    if (this.trainingView?.document.toString() === key) this.trainingView.mapping = await this.mapper.map(document, this.trainingView.record);
    if (this.last?.document.toString() === key) {
      this.last.mapping = await this.mapper.map(document, this.last.report);
      await this.apply(this.last);
    } else if (this.trainingView?.document.toString() === key) {
      this.render(document.uri);
    }
  }

  /** Opens the panel at a layer's attention maps. */
  async showAttention(modulePath: string): Promise<void> {
    const panel = await this.showPanel(true);
    panel.showAttention(modulePath);
  }

  private async revealLine(uri: vscode.Uri, line: number): Promise<void> {
    const editor = await vscode.window.showTextDocument(uri, { viewColumn: vscode.ViewColumn.One, preserveFocus: false });
    const range = editor.document.lineAt(Math.min(line, editor.document.lineCount - 1)).range;
    editor.selection = new vscode.Selection(range.start, range.start);
    editor.revealRange(range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
  }

  async revealModule(modulePath: string): Promise<void> {
    const run = this.last;
    if (!run) return;
    const anchor = placeFindings([{ kind: 'vanishing', severity: 'info', modulePath, message: '' }], run.mapping.anchors, run.mapping.fallbackLine)[0];
    let document: vscode.TextDocument;
    try {
      document = await vscode.workspace.openTextDocument(run.document);
    } catch (err) {
      void vscode.window.showWarningMessage(`Gradient Lens: cannot open ${run.document.fsPath} to show ${modulePath || 'the model'}: ${err instanceof Error ? err.message : err}`);
      return;
    }
    const editor = await vscode.window.showTextDocument(document, { viewColumn: vscode.ViewColumn.One, preserveFocus: false });
    const range = document.lineAt(Math.min(anchor.line, document.lineCount - 1)).range;
    editor.selection = new vscode.Selection(range.start, range.start);
    editor.revealRange(range, vscode.TextEditorRevealType.InCenterIfOutsideViewport);
  }

  onRevealModule(modulePath: string): void {
    void this.revealModule(modulePath);
  }

  onRerun(settings: RunSettings): void {
    void this.rerun(settings);
  }

  onBackend(info: BackendInfo): void {
    this.backend = info;
    this.output.appendLine(`engine backend: ${info.name} (${info.reason})`);
    if (!this.last) this.updateStatus();
  }

  private updateStatus(text?: string): void {
    this.status.text = text ?? `$(pulse) Gradient Lens${this.backend ? `: ${this.backend.name}` : ''}`;
    this.status.tooltip = this.backend ? `Engine backend: ${this.backend.name} — ${this.backend.reason}` : 'Gradient Lens: inspect gradients of the model in this file';
    this.status.show();
  }

  private async pythonDocument(target?: vscode.Uri): Promise<vscode.TextDocument | undefined> {
    if (target && target.path.endsWith('.py')) return vscode.workspace.openTextDocument(target);
    const active = vscode.window.activeTextEditor?.document;
    if (active?.languageId === 'python') return active;
    return vscode.window.visibleTextEditors.map((e) => e.document).find((d) => d.languageId === 'python');
  }

  dispose(): void {
    this.hostEngine.dispose();
    this.presenter.dispose();
    this.diagnostics.dispose();
    this.status.dispose();
    this.changed.dispose();
    this.cleared.dispose();
  }
}

function severity(s: Finding['severity']): vscode.DiagnosticSeverity {
  return s === 'error' ? vscode.DiagnosticSeverity.Error : s === 'warning' ? vscode.DiagnosticSeverity.Warning : vscode.DiagnosticSeverity.Information;
}

