/** Gradient flow across depth: per-layer gradient norms on a log scale, coloured by health. */
import {
  BarController, BarElement, CategoryScale, Chart, Legend, LineController, LineElement, LogarithmicScale, PointElement, Tooltip,
} from 'chart.js';
import type { InspectionReport, ModuleReport } from '../engine/inspect/report';
import { healthColor, themeColor } from './theme';

Chart.register(BarController, BarElement, CategoryScale, LineController, LineElement, LogarithmicScale, PointElement, Tooltip, Legend);

/** Layers shown on the chart: leaf modules with trainable parameters, or any leaf with an output gradient. */
export function flowLayers(report: InspectionReport): ModuleReport[] {
  return report.modules.filter((m) => m.leaf && (m.gradNorm !== null || m.outputGrad)).sort((a, b) => a.depth - b.depth);
}

const positive = (v: number | null | undefined) => (v !== null && v !== undefined && v > 0 && Number.isFinite(v) ? v : null);

export class FlowChart {
  private chart: Chart | null = null;

  constructor(private readonly canvas: HTMLCanvasElement, private readonly onSelect: (path: string) => void) {}

  render(report: InspectionReport, health: Map<string, string>): void {
    const layers = flowLayers(report);
    const fg = themeColor('--vscode-foreground', '#ccc');
    const grid = themeColor('--vscode-charts-lines', 'rgba(128,128,128,0.3)');
    const data = {
      labels: layers.map((m) => m.path || '(model)'),
      datasets: [
        {
          type: 'bar' as const,
          label: '‖∇W‖ parameter gradient norm',
          data: layers.map((m) => positive(m.gradNorm)),
          backgroundColor: layers.map((m) => healthColor(health.get(m.path) ?? 'healthy')),
          borderWidth: 0,
        },
        {
          type: 'line' as const,
          label: '‖∇out‖ output gradient norm',
          data: layers.map((m) => positive(m.outputGrad?.norm)),
          borderColor: themeColor('--vscode-charts-blue', '#3794ff'),
          backgroundColor: themeColor('--vscode-charts-blue', '#3794ff'),
          pointRadius: 3,
          spanGaps: true,
        },
        {
          type: 'line' as const,
          label: '‖∇W‖/‖W‖',
          data: layers.map((m) => positive(m.gradToWeight)),
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
          if (elements.length) this.onSelect(layers[elements[0].index].path);
        },
        scales: {
          x: { ticks: { color: fg, autoSkip: true, maxRotation: 60 }, grid: { color: grid } },
          y: {
            type: 'logarithmic',
            ticks: { color: fg, callback: (v) => Number(v).toExponential(0) },
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
  }

  destroy(): void {
    this.chart?.destroy();
    this.chart = null;
  }
}
