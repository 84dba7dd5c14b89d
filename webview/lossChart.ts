/** Loss per training step (left axis) and the total gradient norm (right axis, log scale); the anomaly step marked. */
import {
  Chart, Legend, LinearScale, LineController, LineElement, LogarithmicScale, Plugin, PointElement, Tooltip, TooltipItem,
} from 'chart.js';
import type { Series, TrainingRecord } from '../engine/train/record';
import { sci } from '../extension/overlay/format';
import { themeColor } from './theme';

Chart.register(LinearScale, LogarithmicScale, LineController, LineElement, PointElement, Tooltip, Legend);

/** Points Chart.js can draw: non-finite values become gaps (the anomaly marker says where they are). */
function points(steps: number[], s: Series, positiveOnly: boolean): { x: number; y: number | null }[] {
  return steps.map((x, i) => {
    const v = s[i];
    return { x, y: v !== null && Number.isFinite(v) && (!positiveOnly || v > 0) ? v : null };
  });
}

/** A dashed vertical line at the anomaly's step, labelled. */
const anomalyMarker: Plugin<'line'> = {
  id: 'gradientLensAnomaly',
  afterDatasetsDraw(chart) {
    const step = (chart.options.plugins as { gradientLensAnomaly?: { step?: number } } | undefined)?.gradientLensAnomaly?.step;
    if (step === undefined) return;
    const x = chart.scales.x.getPixelForValue(step);
    const { top, bottom } = chart.chartArea;
    const ctx = chart.ctx;
    ctx.save();
    ctx.strokeStyle = themeColor('--vscode-editorError-foreground', '#f14c4c');
    ctx.fillStyle = ctx.strokeStyle;
    ctx.setLineDash([4, 3]);
    ctx.beginPath();
    ctx.moveTo(x, top);
    ctx.lineTo(x, bottom);
    ctx.stroke();
    ctx.setLineDash([]);
    ctx.textAlign = x > chart.chartArea.right - 80 ? 'right' : 'left';
    ctx.fillText(`NaN/Inf at step ${step}`, x + (ctx.textAlign === 'right' ? -4 : 4), top + 10);
    ctx.restore();
  },
};

export class LossChart {
  private chart: Chart<'line', { x: number; y: number | null }[]> | null = null;

  constructor(private readonly canvas: HTMLCanvasElement) {}

  render(record: TrainingRecord): void {
    const loss = points(record.steps, record.loss, false);
    const grad = points(record.steps, record.gradNormTotal, true);
    const anomalyStep = record.anomaly?.step;
    const first = record.steps[0] ?? 1;
    // A one-step run still needs an x span, or Chart.js draws nothing.
    const last = Math.max(record.steps[record.steps.length - 1] ?? 1, anomalyStep ?? 0, first + 1);
    // During a run the chart is updated in place: re-creating it per progress message would flicker.
    if (this.chart) {
      this.chart.data.datasets[0].data = loss;
      this.chart.data.datasets[1].data = grad;
      (this.chart.options.plugins as Record<string, unknown>).gradientLensAnomaly = { step: anomalyStep };
      this.chart.options.scales!.x!.min = first;
      this.chart.options.scales!.x!.max = last;
      this.chart.update('none');
      return;
    }
    const fg = themeColor('--vscode-foreground', '#ccc');
    const grid = themeColor('--vscode-charts-lines', 'rgba(128,128,128,0.3)');
    const blue = themeColor('--vscode-charts-blue', '#3794ff');
    const orange = themeColor('--vscode-charts-orange', '#d18616');
    const pointRadius = (ctx: { dataset: { data: unknown[] } }) => (ctx.dataset.data.length > 60 ? 0 : 2);
    this.chart = new Chart(this.canvas, {
      type: 'line',
      data: {
        datasets: [
          { label: 'loss', data: loss, yAxisID: 'y', borderColor: blue, backgroundColor: blue, pointRadius, borderWidth: 1.5 },
          { label: 'total ‖∇‖ (log)', data: grad, yAxisID: 'y1', borderColor: orange, backgroundColor: orange, pointRadius, borderWidth: 1, borderDash: [4, 3] },
        ],
      },
      plugins: [anomalyMarker],
      options: {
        animation: false,
        responsive: true,
        maintainAspectRatio: false,
        interaction: { mode: 'index', intersect: false },
        scales: {
          x: { type: 'linear', min: first, max: last, ticks: { color: fg, precision: 0 }, grid: { color: grid }, title: { display: true, text: 'step', color: fg } },
          y: { type: 'linear', position: 'left', ticks: { color: fg }, grid: { color: grid }, title: { display: true, text: 'loss', color: fg } },
          y1: {
            type: 'logarithmic',
            position: 'right',
            // Two significant digits: within one decade the log axis puts ticks at 5e-01, 6e-01… which one digit cannot tell apart.
            ticks: { color: fg, maxTicksLimit: 6, callback: (v) => sci(Number(v), 1) },
            grid: { drawOnChartArea: false },
            title: { display: true, text: 'total gradient norm', color: fg },
          },
        },
        plugins: {
          legend: { labels: { color: fg } },
          tooltip: { callbacks: { label: (ctx: TooltipItem<'line'>) => `${ctx.dataset.label}: ${ctx.datasetIndex === 0 ? Number(ctx.parsed.y).toPrecision(5) : sci(ctx.parsed.y, 2)}` } },
          // Read by anomalyMarker (a plugin option Chart.js's types do not know).
          ...({ gradientLensAnomaly: { step: anomalyStep } } as object),
        },
      },
    });
  }

  destroy(): void {
    this.chart?.destroy();
    this.chart = null;
  }
}
