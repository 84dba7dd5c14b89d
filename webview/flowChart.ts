/** Gradient flow across depth: per-layer gradient norms on a log scale, coloured by health; a pinned run as a ghost. */
import {
  BarController, BarElement, CategoryScale, Chart, Legend, LineController, LineElement, LogarithmicScale, PointElement, Tooltip,
} from 'chart.js';
import type { InspectionReport } from '../engine/inspect/report';
import type { RunBaseline } from '../engine/inspect/baseline';
import { FlowLayer, flowWithBaseline, logTickLabels } from './flowModel';
import { healthColor, themeColor } from './theme';

Chart.register(BarController, BarElement, CategoryScale, LineController, LineElement, LogarithmicScale, PointElement, Tooltip, Legend);

const positive = (v: number | null | undefined) => (v !== null && v !== undefined && v > 0 && Number.isFinite(v) ? v : null);
const sci = (v: number | null | undefined) => (v === null || v === undefined ? '—' : v.toExponential(2));

export class FlowChart {
  private chart: Chart | null = null;

  constructor(private readonly canvas: HTMLCanvasElement, private readonly onSelect: (path: string) => void) {}

  render(report: InspectionReport, health: Map<string, string>, baseline: RunBaseline | null = null): void {
    const layers = flowWithBaseline(report, baseline);
    const ghost = layers.some((l) => l.ghost !== undefined);
    const fg = themeColor('--vscode-foreground', '#ccc');
    const grid = themeColor('--vscode-charts-lines', 'rgba(128,128,128,0.3)');
    const data = {
      labels: layers.map((l) => (l.path || '(model)') + (l.removed ? ' (removed)' : '')),
      datasets: [
        // The pinned run first, so its bar stands to the left of the new one's.
        ...(ghost ? [{
          type: 'bar' as const,
          label: 'baseline ‖∇W‖',
          data: layers.map((l) => positive(l.ghost)),
          backgroundColor: 'rgba(128,128,128,0.25)',
          borderColor: themeColor('--vscode-descriptionForeground', '#999'),
          borderWidth: 1,
          borderDash: [3, 2],
        }] : []),
        {
          type: 'bar' as const,
          label: '‖∇W‖ parameter gradient norm',
          data: layers.map((l) => positive(l.grad)),
          backgroundColor: layers.map((l) => healthColor(health.get(l.path) ?? 'healthy')),
          borderWidth: 0,
        },
        {
          type: 'line' as const,
          label: '‖∇out‖ output gradient norm',
          data: layers.map((l) => positive(l.outGrad)),
          borderColor: themeColor('--vscode-charts-blue', '#3794ff'),
          backgroundColor: themeColor('--vscode-charts-blue', '#3794ff'),
          pointRadius: 3,
          spanGaps: true,
        },
        {
          type: 'line' as const,
          label: '‖∇W‖/‖W‖',
          data: layers.map((l) => positive(l.gradToWeight)),
          borderColor: themeColor('--vscode-charts-purple', '#b180d7'),
          backgroundColor: themeColor('--vscode-charts-purple', '#b180d7'),
          borderDash: [4, 3],
          pointRadius: 2,
          spanGaps: true,
        },
      ],
    };
    this.chart?.destroy();
    this.chart = new Chart(this.canvas, {
      data,
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        onClick: (_event, elements) => {
          const l = elements.length ? layers[elements[0].index] : undefined;
          if (l && !l.removed) this.onSelect(l.path);
        },
        scales: {
          x: { ticks: { color: fg, autoSkip: true, maxRotation: 60 }, grid: { color: grid } },
          y: {
            type: 'logarithmic',
            // Chart.js computes the ticks; the labels are chosen from all of them at once so none repeats.
            afterTickToLabelConversion: (scale) => {
              const labels = logTickLabels(scale.ticks.map((t) => t.value));
              scale.ticks.forEach((t, i) => (t.label = labels[i]));
            },
            ticks: { color: fg },
            grid: { color: grid },
            title: { display: true, text: 'norm (log scale)', color: fg },
          },
        },
        plugins: {
          legend: { labels: { color: fg } },
          tooltip: {
            callbacks: {
              label: (ctx) => `${ctx.dataset.label}: ${Number(ctx.parsed.y).toExponential(2)}`,
            },
          },
        },
      },
    });
    this.describe(layers, ghost);
  }

  /**
   * The chart's numbers as a table inside the canvas (its accessible fallback content): what a screen reader
   * reads, and what the end-to-end test checks.
   */
  private describe(layers: FlowLayer[], ghost: boolean): void {
    const table = document.createElement('table');
    table.dataset.testid = 'flow-data';
    const head = table.createTHead().insertRow();
    for (const t of ['layer', '‖∇W‖', ...(ghost ? ['baseline ‖∇W‖'] : []), '‖∇out‖']) head.insertCell().textContent = t;
    const body = table.createTBody();
    for (const l of layers) {
      const row = body.insertRow();
      row.dataset.path = l.path;
      for (const v of [l.path || '(model)', sci(l.grad), ...(ghost ? [sci(l.ghost)] : []), sci(l.outGrad)]) row.insertCell().textContent = v;
    }
    this.canvas.replaceChildren(table);
    this.canvas.dataset.bars = String(layers.filter((l) => positive(l.grad) !== null).length);
    this.canvas.dataset.ghostBars = String(layers.filter((l) => positive(l.ghost) !== null).length);
  }

  destroy(): void {
    this.chart?.destroy();
    this.chart = null;
  }
}
