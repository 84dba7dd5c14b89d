/** The Gradient Lens panel: UI in the webview, the engine in a worker (engineClient.ts). */
import '@vscode-elements/elements/dist/vscode-badge';
import '@vscode-elements/elements/dist/vscode-button';
import '@vscode-elements/elements/dist/vscode-textfield';
import '@vscode-elements/elements/dist/vscode-single-select';
import '@vscode-elements/elements/dist/vscode-option';
import '@vscode-elements/elements/dist/vscode-progress-ring';
import type { Finding } from '../engine/inspect/diagnose';
import { InspectionReport, withModuleKinds } from '../engine/inspect/report';
import { baselineOf, compareRuns, isPinnedRun, RunBaseline } from '../engine/inspect/baseline';
import { parseTrainingRecord, serializeTrainingRecord, TrainingRecord } from '../engine/train/record';
import { serializeReport } from '../engine/inspect/reportCodec';
import { BackendInfo, DEFAULT_RUN_SETTINGS, HostToWebview, RunSettings, VerificationView, WebviewToHost } from '../extension/protocol';
import { EngineClient } from './engineClient';
import { parseShowReport } from '../extension/webviewMessages';
import { FlowChart } from './flowChart';
import { healthByModule } from './health';
import { renderHookLog } from './hookLog';
import { ModuleTable, SortState } from './moduleTable';
import { AttentionView, AttentionViewState } from './attentionView';
import { renderSettings } from './settingsForm';
import { DEFAULT_TRAIN_VIEW_STATE, TrainView, TrainViewState } from './trainView';
import { latestOnly } from './latestOnly';
import { VerifyView } from './verifyView';
import { renderRunDetails } from './runDetails';

interface PanelState {
  report: InspectionReport | null;
  findings: Finding[];
  settings: RunSettings;
  sort?: SortState;
  attention?: AttentionViewState;
  backend: BackendInfo | null;
  training?: TrainViewState;
  verification?: VerificationView | null;
  /** The pinned run this one is compared with; the host keeps it too (it outlives the panel). */
  baseline?: RunBaseline | null;
}

declare function acquireVsCodeApi(): { postMessage(m: WebviewToHost): void; getState(): PanelState | undefined; setState(s: PanelState): void };
const vscode = acquireVsCodeApi();
const post = (m: WebviewToHost) => vscode.postMessage(m);

const state: PanelState = vscode.getState() ?? { report: null, findings: [], settings: DEFAULT_RUN_SETTINGS, backend: null };
const save = () => vscode.setState(state);

const app = document.getElementById('app')!;
app.innerHTML = `
  <header>
    <h1>Gradient Lens</h1>
    <vscode-badge data-testid="backend" title="engine backend">starting engine…</vscode-badge>
    <span class="status" data-testid="status" role="status" aria-live="polite"></span>
  </header>
  <section id="verification-details" hidden></section>
  <div id="settings"></div>
  <p class="summary" data-testid="summary"></p>
  <section id="run-details" aria-label="Memory and load warnings"></section>
  <section id="findings" aria-label="Findings"></section>
  <section class="baseline" data-testid="baseline-bar">
    <vscode-button secondary data-testid="pin-baseline" title="Pin this run; after your next run, the chart, the table and the hovers compare with it">Pin as baseline</vscode-button>
    <vscode-button secondary data-testid="clear-baseline" hidden>Clear baseline</vscode-button>
    <span class="detail" data-testid="baseline-status"></span>
  </section>
  <section class="chart"><h2>Gradient flow across depth</h2><div class="canvas-box"><canvas id="flow" data-testid="flow-chart" role="img" aria-label="Gradient norm per layer, log scale"></canvas></div></section>
  <section id="training"></section>
  <section><h2>Modules</h2><div id="table"></div></section>
  <section id="attention-section"><h2>Attention and its gradients</h2><div id="attention"></div></section>
  <section><h2>Hook log</h2><div id="hooks"></div></section>`;

const badge = app.querySelector<HTMLElement>('[data-testid="backend"]')!;
const status = app.querySelector<HTMLElement>('[data-testid="status"]')!;
const revealModule = (path: string) => {
  table.highlight(path);
  post({ type: 'revealModule', path });
};
const chart = new FlowChart(app.querySelector<HTMLCanvasElement>('#flow')!, revealModule);
const table = new ModuleTable(app.querySelector<HTMLElement>('#table')!, revealModule, (s) => {
  state.sort = s;
  save();
}, state.sort);
const attention = new AttentionView(app.querySelector<HTMLElement>('#attention')!, state.attention ?? { quantity: 'P', zoom: null }, (s) => {
  state.attention = s;
  save();
});
const verify = new VerifyView(app.querySelector<HTMLElement>('header')!, app.querySelector<HTMLElement>('#verification-details')!, () => post({ type: 'verify' }));
const engine = new EngineClient(app.dataset.worker!, app.dataset.wasmBase!);
let activeRun = 0;
/** The training run in the engine, if any (its host 'cancel' stops it gracefully). */
let activeTraining = 0;

const training = new TrainView(app.querySelector<HTMLElement>('#training')!, { ...DEFAULT_TRAIN_VIEW_STATE, ...state.training }, {
  // The host trains (it owns the model bytes and maps the record onto the source), with the settings as shown.
  onTrain: (train) => post({ type: 'startTraining', settings: state.settings, train }),
  onStop: () => activeTraining && engine.stopTraining(activeTraining),
  reveal: (path) => revealModule(path),
  onState: (s) => {
    state.training = s;
    save();
  },
});

function showBackend(info: BackendInfo): void {
  state.backend = info;
  badge.textContent = info.name;
  badge.title = `${info.reason}. WebGPU adapter: ${info.webgpuAdapter ?? 'none'}; WebAssembly SIMD: ${info.wasmSimd ? 'yes' : 'no'}`;
  save();
}

function setStatus(text: string, busy = false): void {
  status.replaceChildren();
  if (busy) status.appendChild(document.createElement('vscode-progress-ring'));
  status.append(text);
}

/** Findings above the chart, one line per kind (the table and the editor carry the per-module detail). */
function renderFindings(findings: Finding[]): void {
  const host = app.querySelector<HTMLElement>('#findings')!;
  const byKind = new Map<string, Finding[]>();
  for (const f of findings.filter((x) => x.severity !== 'info')) byKind.set(f.kind, [...(byKind.get(f.kind) ?? []), f]);
  host.replaceChildren(...[...byKind.values()].map((group) => {
    const p = document.createElement('p');
    p.className = `finding ${group[0].severity}`;
    const names = group.map((f) => f.parameter ?? (f.modulePath || '(model)'));
    p.textContent = group.length === 1
      ? `${names[0]}: ${group[0].message}`
      : group[0].kind === 'export-lost'
      ? `${group.length} parameters or modules (${names.slice(0, 4).join(', ')}${group.length > 4 ? ', …' : ''}) were lost or altered by the export, so their numbers are not PyTorch's (hover for each; export with torch.onnx.export(..., optimize=False) to keep them)`
      : `${group.length} modules (${names.slice(0, 4).join(', ')}${group.length > 4 ? ', …' : ''}): ${group[0].message}`;
    p.title = group.map((f) => `${f.modulePath}: ${f.message}`).join('\n');
    p.addEventListener('click', () => revealModule(group[0].modulePath));
    return p;
  }));
}

function setBaseline(baseline: RunBaseline | null): void {
  state.baseline = baseline;
  save();
  post({ type: 'baseline', baseline });
  renderReport();
}

app.querySelector('[data-testid="pin-baseline"]')!.addEventListener('click', () => state.report && setBaseline(baselineOf(state.report)));
app.querySelector('[data-testid="clear-baseline"]')!.addEventListener('click', () => setBaseline(null));

/** The baseline bar: what is pinned and whether this run is compared with it. */
function renderBaseline(r: InspectionReport | null, b: RunBaseline | null): void {
  const status = app.querySelector<HTMLElement>('[data-testid="baseline-status"]')!;
  app.querySelector<HTMLElement>('[data-testid="pin-baseline"]')!.hidden = !r;
  app.querySelector<HTMLElement>('[data-testid="clear-baseline"]')!.hidden = !b;
  if (!b) {
    status.textContent = r ? 'Pin this run, change your model, re-run: the chart and the table then show what changed.' : '';
    return;
  }
  const when = b.pinnedAt.replace('T', ' ').slice(0, 16);
  if (!r) status.textContent = `Baseline: ${b.model}, pinned ${when}.`;
  else if (isPinnedRun(b, r)) status.textContent = `This run (${b.model}, loss ${b.loss.value.toPrecision(4)}) is the baseline, pinned ${when}. Re-run after your change to compare.`;
  else if (b.model !== r.model.name) status.textContent = `The baseline (pinned ${when}) is of ${b.model}; this run is of ${r.model.name}: not compared.`;
  else status.textContent = `Compared with the baseline pinned ${when}: loss ${b.loss.value.toPrecision(4)} → ${r.loss.value.toPrecision(4)}. Ghost bars: the baseline's ‖∇W‖; Δ: this run's ‖∇‖ over the baseline's.`;
}

function renderReport(): void {
  const r = state.report;
  renderSettings(app.querySelector<HTMLElement>('#settings')!, state.settings, (settings) => {
    state.settings = settings;
    save();
    post({ type: 'rerun', settings });
  }, (settings) => {
    state.settings = settings;
    save();
  });
  const baseline = state.baseline ?? null;
  renderBaseline(r, baseline);
  if (!r) {
    app.querySelector<HTMLElement>('#run-details')!.replaceChildren();
    app.querySelector<HTMLElement>('[data-testid="summary"]')!.textContent = 'No model inspected yet. Run "Gradient Lens: Inspect Model" from a Python file.';
    return;
  }
  const comparison = baseline && !isPinnedRun(baseline, r) ? compareRuns(r, baseline) : undefined;
  app.querySelector<HTMLElement>('[data-testid="summary"]')!.textContent =
    `${r.model.name} · loss ${r.loss.kind} = ${r.loss.value.toPrecision(5)} · ${r.model.parameterCount.toLocaleString('en-US')} parameters · ` +
    `forward ${r.timings.forwardMs.toFixed(0)} ms, backward ${r.timings.backwardMs.toFixed(0)} ms on ${r.backend} (${r.dtype}${r.mode ? `, ${r.mode} mode` : ''})`;
  renderRunDetails(app.querySelector<HTMLElement>('#run-details')!, r);
  const health = healthByModule(state.findings);
  renderFindings(state.findings);
  chart.render(r, health, comparison?.comparable ? baseline : null);
  table.render(r, health, comparison);
  renderHookLog(app.querySelector<HTMLElement>('#hooks')!, r, revealModule);
  app.querySelector<HTMLElement>('#attention-section')!.hidden = !r.attention?.length;
  attention.render(r);
}

engine.onBackend = showBackend;
engine.onError = (message) => post({ type: 'error', message });
// Start the engine at once (worker script, kernels, backend selection) with the backend setting the host put in
// the page, instead of after the ready/hello round trip: the first run usually follows right away.
void engine.prepare((app.dataset.backend as RunSettings['backend'] | undefined) ?? state.settings.backend);

/**
 * The panel is drawn once per run, after the editor's overlays: the host sends the findings right after setting
 * the decorations, so the report is drawn with them then. In code-server this page runs on the workbench's
 * renderer thread (it shows in the workbench's CPU profile), so drawing first (and again with the findings)
 * delayed the overlays' paint (bench/click.mjs --profile).
 * Without findings (a superseded run, a host error) the report is drawn after a second anyway.
 */
let drawTimer: ReturnType<typeof setTimeout> | undefined;
function drawAfterOverlays(runId: number): void {
  clearTimeout(drawTimer);
  drawTimer = setTimeout(() => {
    if (runId === activeRun) drawSoon();
  }, 1000);
}

/** Saves the state and draws the panel after the next frame (the one painting the overlays). */
function drawSoon(): void {
  clearTimeout(drawTimer);
  save();
  requestAnimationFrame(() => {
    drawTimer = setTimeout(renderReport, 0);
  });
}

window.addEventListener('message', async (event: MessageEvent<HostToWebview>) => {
  const m = event.data;
  switch (m.type) {
    case 'hello':
      state.settings = m.settings;
      // The user's configured defaults, unless a run of this panel already chose its own.
      if (!state.training?.record) training.setSettings(m.train);
      renderReport();
      void engine.prepare(m.settings.backend);
      break;
    case 'run': {
      if (m.warmUp) {
        // Nothing pending here (the host's engine made the shown report): run once so Train starts on warm code.
        engine.run(m, { onProgress: () => {} }).catch(() => {});
        break;
      }
      const received = performance.now();
      // A capture run repeats the shown run for Verify: the panel keeps its report and findings.
      if (!m.capture) {
        activeRun = m.runId;
        state.settings = m.settings;
      }
      setStatus(`Running ${m.modelName}…`, true);
      try {
        const { report, workerStartMs, backendMs } = await engine.run(m, {
          onProgress: (text) => {
            setStatus(text, true);
            post({ type: 'progress', runId: m.runId, message: text });
          },
          onCapture: (capture) => post({ type: 'capture', runId: m.runId, capture }),
        });
        // The overlays wait for this message: send it before drawing the panel.
        post({ type: 'report', runId: m.runId, report: serializeReport(report), phases: { workerStartMs, backendMs, pageMs: performance.now() - received } });
        setStatus('');
        if (!m.capture) {
          state.report = report;
          state.findings = [];
          state.verification = null;
          verify.render(null);
          drawAfterOverlays(m.runId);
        }
      } catch (err) {
        const message = err instanceof Error ? err.message : String(err);
        setStatus(message === 'cancelled' ? 'Cancelled.' : `Failed: ${message}`);
        post({ type: 'runError', runId: m.runId, message });
      }
      break;
    }
    case 'showReport': {
      // A run of the extension host's engine (the first Inspect, or any run that does not need this page's engine).
      let shown;
      try {
        shown = parseShowReport(m);
      } catch (err) {
        post({ type: 'error', message: `the panel refused a report from the extension host: ${err instanceof Error ? err.message : String(err)}` });
        break;
      }
      activeRun = shown.runId;
      state.settings = shown.settings;
      state.report = shown.report;
      state.findings = [];
      state.verification = null;
      verify.render(null);
      setStatus('');
      drawAfterOverlays(shown.runId);
      break;
    }
    case 'train': {
      activeTraining = m.runId;
      state.settings = m.settings;
      training.setSettings(m.train);
      training.start(m.train.steps);
      // At most 5 progress messages a second to the host (the worker posts up to ~7).
      const progress = latestOnly<TrainingRecord>(200, (record) => post({ type: 'trainProgress', runId: m.runId, record: serializeTrainingRecord(record) }));
      try {
        const { record, stopped } = await engine.train(m, { onProgress: (record) => {
          training.progress(record);
          progress.push(record);
        } });
        progress.cancel();
        // A run superseded by a newer one must not repaint the newer one's view.
        if (activeTraining === m.runId) training.finish(record, stopped);
        post({ type: 'trainDone', runId: m.runId, record: serializeTrainingRecord(record), stopped });
      } catch (err) {
        progress.cancel();
        const message = err instanceof Error ? err.message : String(err);
        if (activeTraining === m.runId) training.fail(message);
        post({ type: 'runError', runId: m.runId, message });
      } finally {
        if (activeTraining === m.runId) activeTraining = 0;
      }
      break;
    }
    case 'showTraining':
      training.finish(parseTrainingRecord(m.record, 'imported record'), 'imported');
      break;
    case 'liveTraining':
      try {
        training.live(parseTrainingRecord(m.record, 'followed training record'), m.append, m.status);
      } catch (err) {
        post({ type: 'error', message: `the followed training record cannot be shown: ${err instanceof Error ? err.message : String(err)}` });
      }
      break;
    case 'liveStatus':
      training.liveStatus(m.status);
      break;
    case 'cancel':
      if (m.runId === activeTraining) engine.stopTraining(m.runId);
      else engine.cancel(m.runId);
      break;
    case 'findings':
      if (m.runId === activeRun || activeRun === 0) {
        state.findings = m.findings;
        if (state.report && m.kinds) state.report = withModuleKinds(state.report, m.kinds);
        drawSoon();
      }
      break;
    case 'verification':
      state.verification = m.view;
      save();
      verify.render(m.view);
      break;
    case 'baseline':
      state.baseline = m.baseline;
      drawSoon();
      break;
    case 'focusModule':
      table.highlight(m.path);
      break;
    case 'showAttention':
      app.querySelector<HTMLElement>('#attention-section')!.scrollIntoView({ block: 'start' });
      attention.focusLayer(m.modulePath);
      break;
  }
});

if (state.backend) showBackend(state.backend);
verify.render(state.verification ?? null);
renderReport();
post({ type: 'ready' });
