/**
 * The panel's Training section: optimiser form, Train / Stop, the progress line, the anomaly banner,
 * the loss curve and the heat strip. Runs themselves go through the host (main.ts posts startTraining).
 */
import { parseTrainingRecord, serializeTrainingRecord, stepBaseNote, TrainingRecord } from '../engine/train/record';
import { appendTrainingRecord } from '../engine/train/stream';
import type { LiveStatus, TrainSettings, TrainStop } from '../extension/protocol';
import { liveText } from '../extension/training/liveText';
import { DEFAULT_TRAIN_SETTINGS } from '../extension/protocol';
import { sci } from '../extension/overlay/format';
import { HeatStrip } from './heatStrip';
import type { HeatMetric } from './heatStripModel';
import { LossChart } from './lossChart';

/** 'live': a record followed as a job writes it (Attach to Training Job). */
export type TrainOutcome = TrainStop | 'imported' | 'live';

export interface TrainViewState {
  settings: TrainSettings;
  metric: HeatMetric;
  open: boolean;
  /** The last record, serialized: webview state goes through JSON, which would turn NaN/Inf into null. */
  record: string | null;
  outcome: TrainOutcome | null;
  /** Steps requested for the last run (the progress line's "/ N"). */
  total: number;
}

export const DEFAULT_TRAIN_VIEW_STATE: TrainViewState = { settings: DEFAULT_TRAIN_SETTINGS, metric: 'gradNorm', open: false, record: null, outcome: null, total: 0 };

export interface TrainViewEvents {
  onTrain(train: TrainSettings): void;
  onStop(): void;
  reveal(path: string): void;
  onState(state: TrainViewState): void;
}

interface Field {
  key: keyof TrainSettings;
  label: string;
  options?: [string, string][];
  /** Accepts a typed number, or says no (the field then shows as invalid and keeps its last good value). */
  valid?: (v: number) => boolean;
  title?: string;
}

const FIELDS: Field[] = [
  { key: 'steps', label: 'Steps', valid: (v) => Number.isInteger(v) && v >= 1 && v <= 100_000 },
  { key: 'optimizer', label: 'Optimizer', options: [['sgd', 'SGD'], ['adam', 'Adam'], ['adamw', 'AdamW']] },
  { key: 'lr', label: 'Learning rate', valid: (v) => Number.isFinite(v) && v > 0 },
  { key: 'momentum', label: 'Momentum', valid: (v) => v >= 0 && v <= 1, title: 'SGD momentum (0 = plain SGD)' },
  { key: 'weightDecay', label: 'Weight decay', valid: (v) => Number.isFinite(v) && v >= 0, title: 'L2 for SGD and Adam, decoupled for AdamW' },
  { key: 'clipNorm', label: 'Clip norm', valid: (v) => Number.isFinite(v) && v >= 0, title: 'clip_grad_norm_ max norm; 0 = off' },
  { key: 'clipValue', label: 'Clip value', valid: (v) => Number.isFinite(v) && v >= 0, title: 'clip_grad_value_ bound; 0 = off' },
  { key: 'data', label: 'Data', options: [['fixed', 'fixed batch'], ['fresh', 'fresh batch per step'], ['text', 'text from the model']] },
];

function lastMeasured(s: (number | null)[]): number | null {
  for (let i = s.length - 1; i >= 0; i--) if (s[i] !== null) return s[i];
  return null;
}

const lossText = (v: number | null) => (v === null ? '—' : Number.isFinite(v) ? v.toPrecision(4) : sci(v));

/** " · FSDP2 × 8 ranks" for a record a distributed job wrote, and " · steps counted from 0" when they are. */
const ranksText = (record: TrainingRecord) =>
  `${record.distributed ? ` · ${record.distributed.strategy.toUpperCase()} × ${record.distributed.worldSize} ranks` : ''}${stepBaseNote(record) ? ` · ${stepBaseNote(record)}` : ''}`;

/** "step 12 / 50 · loss 0.4132", then how the run ended; `live`: the status line of a followed job. */
export function progressText(record: TrainingRecord, total: number, outcome: TrainOutcome | null, live?: string): string {
  const k = record.steps.length;
  if (outcome === 'imported') {
    const first = record.loss.find((v) => v !== null) ?? null;
    return `imported · ${k} steps · loss ${lossText(first)} → ${lossText(lastMeasured(record.loss))} · ${record.producer}${ranksText(record)}`;
  }
  if (outcome === 'live') {
    return `${live ?? 'live'} · loss ${lossText(lastMeasured(record.loss))} · ${k.toLocaleString('en-US')} steps recorded${ranksText(record)}`;
  }
  const base = `step ${record.steps[k - 1] ?? 0} / ${total || k} · loss ${lossText(lastMeasured(record.loss))}`;
  switch (outcome) {
    case 'done':
      return `${base} · done`;
    case 'cancelled':
      return `${base} · stopped`;
    case 'anomaly':
      return `${base} · stopped at step ${record.anomaly?.step ?? k}: NaN/Inf`;
    default:
      return base;
  }
}

export class TrainView {
  private readonly details: HTMLDetailsElement;
  private readonly form: HTMLFormElement;
  private readonly progressLine: HTMLElement;
  private readonly banner: HTMLElement;
  private readonly results: HTMLElement;
  private readonly lossChart: LossChart;
  private readonly strip: HeatStrip;
  private trainButton!: HTMLElement;
  private stopButton!: HTMLElement;
  private running = false;
  private record: TrainingRecord | null = null;
  private frame = 0;
  /** A followed job: its status, when it arrived (the "3 s ago" keeps counting here), and the ticker that redraws it. */
  private liveState: { status: LiveStatus; receivedAt: number } | null = null;
  private ticker: ReturnType<typeof setInterval> | undefined;

  constructor(host: HTMLElement, private state: TrainViewState, private readonly events: TrainViewEvents) {
    host.innerHTML = `
      <details class="training" data-testid="training-section">
        <summary><h2>Training</h2> <span class="detail">train N optimiser steps and watch each layer's gradients over time</span></summary>
        <form class="settings train-form"></form>
        <p class="train-progress" data-testid="train-progress" role="status" aria-live="polite"></p>
        <p class="train-anomaly" data-testid="train-anomaly" role="alert" tabindex="0" hidden></p>
        <div class="train-results" hidden>
          <h3>Loss and total gradient norm</h3>
          <div class="canvas-box loss-box"><canvas data-testid="loss-chart" role="img" aria-label="Loss and total gradient norm per step"></canvas></div>
          <h3>Per module, per step</h3>
          <div class="heat-host"></div>
        </div>
      </details>`;
    this.details = host.querySelector('details')!;
    this.details.open = state.open;
    this.details.addEventListener('toggle', () => {
      this.update({ open: this.details.open });
      // The selects were built while hidden (see HeatStrip.refreshControls): rebuild them now they show.
      if (this.details.open) {
        this.renderForm();
        this.strip.refreshControls();
      }
    });
    this.form = host.querySelector('form')!;
    this.progressLine = host.querySelector('.train-progress')!;
    this.banner = host.querySelector('.train-anomaly')!;
    this.results = host.querySelector('.train-results')!;
    this.lossChart = new LossChart(host.querySelector<HTMLCanvasElement>('canvas[data-testid="loss-chart"]')!);
    this.strip = new HeatStrip(host.querySelector<HTMLElement>('.heat-host')!, state.metric, events.reveal, (metric) => this.update({ metric }));
    const revealAnomaly = () => this.record?.anomaly && events.reveal(this.record.anomaly.modulePath);
    this.banner.addEventListener('click', revealAnomaly);
    this.banner.addEventListener('keydown', (e) => e.key === 'Enter' && revealAnomaly());
    this.renderForm();
    if (state.record) {
      try {
        this.show(parseTrainingRecord(state.record, 'saved training record'), state.total, state.outcome);
      } catch {
        this.update({ record: null, outcome: null });
      }
    } else {
      this.progressLine.textContent = 'Not trained yet. Train uses the run settings above (seed, batch, loss, backend, precision) and these optimiser settings.';
    }
  }

  /** Settings the host trains with (from the user's configuration when the command started the run). */
  setSettings(settings: TrainSettings): void {
    this.update({ settings: { ...settings } });
    this.renderForm();
  }

  open(): void {
    this.details.open = true;
    this.update({ open: true });
  }

  start(total: number): void {
    this.liveState = null;
    this.running = true;
    this.open();
    this.update({ total, outcome: null });
    this.progressLine.textContent = `starting · ${total} steps…`;
    this.banner.hidden = true;
    this.setButtons();
  }

  /** A record so far; drawn on the next animation frame (progress can arrive faster than it is worth drawing). */
  progress(record: TrainingRecord, outcome?: TrainOutcome): void {
    this.record = record;
    if (outcome !== 'live') this.liveState = null;
    if (this.frame) return;
    this.frame = requestAnimationFrame(() => {
      this.frame = 0;
      if (this.record) this.draw(this.record, this.state.total, this.liveState ? 'live' : this.running ? null : this.state.outcome);
    });
  }

  finish(record: TrainingRecord, outcome: TrainOutcome): void {
    this.liveState = null;
    clearInterval(this.ticker);
    this.ticker = undefined;
    // An imported record can arrive during a run; the run's buttons stay as they are.
    if (outcome !== 'imported') this.running = false;
    this.setButtons();
    this.show(record, outcome === 'imported' ? record.steps.length : this.state.total, outcome);
    // Saved once per run, not per step: a long run's record is megabytes of JSON.
    this.update({ record: serializeTrainingRecord(record), outcome });
  }

  /** A followed job's record: all of it, or (append) the steps after those shown. */
  live(record: TrainingRecord, append: boolean, status: LiveStatus): void {
    if (append && this.liveState && this.record) {
      appendTrainingRecord(this.record, record);
    } else {
      this.record = record;
      this.open();
    }
    this.liveState = { status, receivedAt: Date.now() };
    this.liveStatus(status);
  }

  /** The followed job's state (ended, detached); ignored when the view shows another run by now. */
  liveStatus(status: LiveStatus): void {
    if (!this.record || !this.liveState) return;
    this.liveState = { status, receivedAt: Date.now() };
    const following = status.state === 'live' || status.state === 'waiting';
    if (following && !this.ticker) this.ticker = setInterval(() => this.liveState && this.progressLine && this.drawLiveLine(), 1000);
    if (!following) {
      clearInterval(this.ticker);
      this.ticker = undefined;
      // Kept across reloads once the job is done (not per step: a long run's record is megabytes).
      this.update({ record: serializeTrainingRecord(this.record), outcome: 'imported', total: this.record.steps.length });
    }
    this.progress(this.record, 'live');
  }

  private liveLine(): string {
    const { status, receivedAt } = this.liveState!;
    return liveText(status, status.ageMs === null ? null : status.ageMs + (Date.now() - receivedAt));
  }

  private drawLiveLine(): void {
    if (this.record) this.progressLine.textContent = progressText(this.record, 0, 'live', this.liveLine());
  }

  fail(message: string): void {
    this.running = false;
    this.setButtons();
    this.progressLine.textContent = message === 'cancelled' ? 'Training cancelled.' : `Training failed: ${message}`;
  }

  private show(record: TrainingRecord, total: number, outcome: TrainOutcome | null): void {
    this.record = record;
    if (this.frame) cancelAnimationFrame(this.frame);
    this.frame = 0;
    this.draw(record, total, outcome);
  }

  private draw(record: TrainingRecord, total: number, outcome: TrainOutcome | null): void {
    this.progressLine.textContent = progressText(record, total, outcome, this.liveState ? this.liveLine() : undefined);
    const a = record.anomaly;
    this.banner.hidden = !a;
    if (a) {
      const where = [
        `module ${a.modulePath || '(model)'}`,
        a.node ? `node ${a.node}` : '',
        a.source ? `${a.source.file.split(/[\\/]/).pop()}:${a.source.line}` : '',
      ].filter(Boolean).join(' · ');
      this.banner.textContent = `Step ${a.step} (${a.phase}): ${a.message} — ${where}`;
      this.banner.title = 'Click to reveal the module in the editor';
    }
    this.results.hidden = record.steps.length === 0;
    if (record.steps.length === 0) return;
    this.lossChart.render(record);
    this.strip.render(record);
  }

  private update(patch: Partial<TrainViewState>): void {
    this.state = { ...this.state, ...patch };
    this.events.onState(this.state);
  }

  private setButtons(): void {
    this.trainButton.toggleAttribute('disabled', this.running);
    this.stopButton.toggleAttribute('disabled', !this.running);
  }

  private renderForm(): void {
    const current: TrainSettings = { ...this.state.settings };
    const commit = () => this.update({ settings: { ...current } });
    const momentumLabels: HTMLElement[] = [];
    const showMomentum = () => momentumLabels.forEach((l) => (l.hidden = current.optimizer !== 'sgd'));
    const nodes: HTMLElement[] = [];
    for (const f of FIELDS) {
      const label = document.createElement('label');
      label.textContent = f.label;
      if (f.title) label.title = f.title;
      let input: HTMLElement;
      if (f.options) {
        const select = document.createElement('vscode-single-select') as HTMLElement & { value: string };
        for (const [value, text] of f.options) {
          const o = document.createElement('vscode-option');
          o.textContent = text;
          o.setAttribute('value', value);
          if (String(current[f.key]) === value) o.setAttribute('selected', '');
          select.appendChild(o);
        }
        select.addEventListener('change', () => {
          (current as unknown as Record<string, unknown>)[f.key] = select.value;
          showMomentum();
          commit();
        });
        input = select;
      } else {
        const field = document.createElement('vscode-textfield') as HTMLElement & { value: string; invalid: boolean };
        // Fractional fields are text (validated here): a number input marks 0.01 invalid (step 1), and
        // vscode-textfield has no step="any".
        field.setAttribute('type', f.key === 'steps' ? 'number' : 'text');
        field.setAttribute('inputmode', f.key === 'steps' ? 'numeric' : 'decimal');
        field.setAttribute('value', String(current[f.key]));
        field.addEventListener('change', () => {
          const v = field.value.trim() === '' ? NaN : Number(field.value);
          const ok = f.valid ? f.valid(v) : Number.isFinite(v);
          field.invalid = !ok;
          if (!ok) return;
          (current as unknown as Record<string, unknown>)[f.key] = v;
          commit();
        });
        input = field;
      }
      input.setAttribute('aria-label', f.label);
      label.appendChild(input);
      if (f.key === 'momentum') momentumLabels.push(label);
      nodes.push(label);
    }
    this.trainButton = document.createElement('vscode-button');
    this.trainButton.textContent = 'Train';
    this.trainButton.setAttribute('icon', 'play');
    this.trainButton.dataset.testid = 'train-button';
    this.trainButton.addEventListener('click', () => {
      if (!this.running) this.events.onTrain({ ...current });
    });
    this.stopButton = document.createElement('vscode-button');
    this.stopButton.textContent = 'Stop';
    this.stopButton.setAttribute('icon', 'debug-stop');
    this.stopButton.setAttribute('secondary', '');
    this.stopButton.dataset.testid = 'train-stop';
    this.stopButton.addEventListener('click', () => {
      if (this.running) this.events.onStop();
    });
    const buttons = document.createElement('span');
    buttons.className = 'train-buttons';
    buttons.append(this.trainButton, this.stopButton);
    this.form.replaceChildren(...nodes, buttons);
    this.form.onsubmit = (e) => e.preventDefault();
    showMomentum();
    this.setButtons();
  }
}
