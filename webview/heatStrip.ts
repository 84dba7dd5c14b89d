/**
 * The heat strip: modules (rows, input side on top) × training steps (columns), coloured by one metric.
 * Cells are painted into an ImageData at one pixel per cell and scaled up without smoothing, so
 * 50 rows × 1000 steps redraws in a few milliseconds during a run.
 */
import type { TrainingRecord } from '../engine/train/record';
import { sci } from '../extension/overlay/format';
import { SEQUENTIAL } from './colormap';
import { CELL_NON_FINITE, CELL_NULL, cellAt, cellValue, HEAT_METRICS, HeatGrid, heatGrid, HeatMetric, stepTicks } from './heatStripModel';
import { themeColor } from './theme';

const ROW_HEIGHT = 14;
const DENSE_ROW_HEIGHT = 8;

function rgb(css: string): [number, number, number] {
  // Resolve any CSS colour (theme variables are hex, rgb() or named) through a 1×1 canvas.
  const c = document.createElement('canvas').getContext('2d')!;
  c.fillStyle = '#000';
  c.fillStyle = css;
  c.fillRect(0, 0, 1, 1);
  const d = c.getImageData(0, 0, 1, 1).data;
  return [d[0], d[1], d[2]];
}

function formatValue(metric: HeatMetric, v: number | null): string {
  if (v === null) return 'not measured';
  if (metric === 'zeroFraction' && Number.isFinite(v)) return `${(v * 100).toFixed(1)}%`;
  return sci(v, 2);
}

export class HeatStrip {
  private record: TrainingRecord | null = null;
  private grid: HeatGrid | null = null;
  private readonly labels: HTMLElement;
  private readonly canvas: HTMLCanvasElement;
  private readonly axis: HTMLElement;
  private readonly bar: HTMLCanvasElement;
  private readonly barMin: HTMLElement;
  private readonly barMax: HTMLElement;
  private readonly nanLegend: HTMLElement;
  private readonly tip: HTMLElement;
  private select: HTMLElement & { value: string };
  private readonly empty: HTMLElement;
  private readonly frame: HTMLElement;

  constructor(host: HTMLElement, private metric: HeatMetric, private readonly reveal: (path: string) => void, private readonly onMetric: (m: HeatMetric) => void) {
    host.classList.add('heat-strip');
    host.innerHTML = `
      <div class="heat-toolbar">
        <label class="heat-metric">Metric </label>
        <span class="heat-colorbar"><span class="heat-min"></span><canvas width="128" height="10" aria-hidden="true"></canvas><span class="heat-max"></span></span>
        <span class="heat-nan" hidden><span class="swatch"></span>NaN / Inf</span>
        <span class="heat-null"><span class="swatch"></span>not measured</span>
        <span class="heat-axes">rows: leaf modules, input side on top · columns: steps</span>
      </div>
      <p class="empty" hidden></p>
      <div class="heat-frame">
        <div class="heat-labels"></div>
        <div class="heat-plot">
          <canvas class="heat-canvas" data-testid="heat-strip" role="img" aria-label="Heat strip: modules by training step"></canvas>
          <div class="heat-axis"></div>
        </div>
      </div>
      <div class="heat-tip" data-testid="heat-value" aria-live="polite"></div>`;
    this.select = this.metricSelect();
    host.querySelector('.heat-metric')!.appendChild(this.select);
    this.labels = host.querySelector('.heat-labels')!;
    this.canvas = host.querySelector('.heat-canvas')!;
    this.axis = host.querySelector('.heat-axis')!;
    this.bar = host.querySelector('.heat-colorbar canvas')!;
    this.barMin = host.querySelector('.heat-min')!;
    this.barMax = host.querySelector('.heat-max')!;
    this.nanLegend = host.querySelector('.heat-nan')!;
    this.tip = host.querySelector('.heat-tip')!;
    this.empty = host.querySelector('.empty')!;
    this.frame = host.querySelector('.heat-frame')!;
    this.canvas.addEventListener('mousemove', (e) => this.hover(e));
    this.canvas.addEventListener('mouseleave', () => (this.tip.textContent = ''));
    this.canvas.addEventListener('click', (e) => {
      const cell = this.cellOf(e);
      if (cell && this.grid) this.reveal(this.grid.rows[cell.row].path);
    });
    // The canvas backing store follows the panel's width.
    new ResizeObserver(() => this.paint()).observe(this.canvas);
  }

  private metricSelect(): HTMLElement & { value: string } {
    const select = document.createElement('vscode-single-select') as HTMLElement & { value: string };
    select.setAttribute('aria-label', 'Heat strip metric');
    select.dataset.testid = 'heat-metric';
    for (const [key, info] of Object.entries(HEAT_METRICS)) {
      const o = document.createElement('vscode-option');
      o.setAttribute('value', key);
      o.textContent = `${info.label}${info.log ? ' (log)' : ''}`;
      if (key === this.metric) o.setAttribute('selected', '');
      select.appendChild(o);
    }
    select.addEventListener('change', () => {
      this.metric = select.value as HeatMetric;
      this.onMetric(this.metric);
      if (this.record) this.render(this.record);
    });
    return select;
  }

  /**
   * Rebuilds the metric select. vscode-single-select reads its options' labels (innerText) when they are
   * slotted; inside a closed <details> that text is empty, so the select must be rebuilt once shown.
   */
  refreshControls(): void {
    const fresh = this.metricSelect();
    this.select.replaceWith(fresh);
    this.select = fresh;
  }

  render(record: TrainingRecord): void {
    this.record = record;
    const grid = (this.grid = heatGrid(record, this.metric));
    const rowH = grid.rows.length > 60 ? DENSE_ROW_HEIGHT : ROW_HEIGHT;
    this.frame.style.setProperty('--heat-row', `${rowH}px`);
    const none = grid.rows.length === 0 || grid.columns.length === 0;
    this.empty.hidden = !none;
    this.frame.hidden = none;
    this.empty.textContent = none ? `No ${HEAT_METRICS[this.metric].label} recorded for leaf modules yet.` : '';
    this.renderLabels(grid, rowH);
    this.canvas.style.height = `${grid.rows.length * rowH}px`;
    this.renderAxis(grid);
    this.renderColorbar(grid);
    this.paint();
  }

  private renderLabels(grid: HeatGrid, rowH: number): void {
    // Rebuilt only when the rows change: during a run only the columns grow.
    const key = grid.rows.map((m) => m.path).join('\n');
    if (this.labels.dataset.key === key && this.labels.dataset.rowH === String(rowH)) return;
    this.labels.dataset.key = key;
    this.labels.dataset.rowH = String(rowH);
    this.labels.replaceChildren(...grid.rows.map((m) => {
      const d = document.createElement('div');
      d.className = 'heat-label';
      d.textContent = m.path || '(model)';
      d.title = `${m.path || '(model)'}${m.kind ? ` · ${m.kind}` : ''}${m.source ? ` · ${m.source.file.split(/[\\/]/).pop()}:${m.source.line}` : ''} — click to reveal`;
      d.tabIndex = 0;
      d.setAttribute('role', 'button');
      d.addEventListener('click', () => this.reveal(m.path));
      d.addEventListener('keydown', (e) => e.key === 'Enter' && this.reveal(m.path));
      return d;
    }));
  }

  private renderAxis(grid: HeatGrid): void {
    const cols = grid.columns;
    this.axis.replaceChildren();
    if (cols.length === 0) return;
    const first = cols[0].first;
    const last = cols[cols.length - 1].last;
    for (const t of stepTicks(first, last)) {
      // Tick at the centre of the column holding step t.
      const c = cols.findIndex((x) => x.last >= t);
      const span = document.createElement('span');
      span.textContent = String(t);
      span.style.left = `${((c + 0.5) / cols.length) * 100}%`;
      this.axis.appendChild(span);
    }
  }

  private renderColorbar(grid: HeatGrid): void {
    const ctx = this.bar.getContext('2d')!;
    const image = ctx.createImageData(this.bar.width, this.bar.height);
    for (let x = 0; x < image.width; x++) {
      const i = Math.round((x / (image.width - 1)) * 255);
      for (let y = 0; y < image.height; y++) {
        const p = (y * image.width + x) * 4;
        image.data.set([SEQUENTIAL[i * 3], SEQUENTIAL[i * 3 + 1], SEQUENTIAL[i * 3 + 2], 255], p);
      }
    }
    ctx.putImageData(image, 0, 0);
    const r = grid.range;
    const fmt = (v: number) => formatValue(grid.metric, v);
    this.barMin.textContent = r ? fmt(r.min) : '—';
    this.barMax.textContent = r ? `${fmt(r.max)}${grid.log ? ' (log)' : ''}` : '—';
    let nonFinite = false;
    for (let k = 0; k < grid.index.length && !nonFinite; k++) nonFinite = grid.index[k] === CELL_NON_FINITE;
    this.nanLegend.hidden = !nonFinite;
  }

  private paint(): void {
    const grid = this.grid;
    if (!grid || grid.rows.length === 0 || grid.columns.length === 0) return;
    const rows = grid.rows.length;
    const cols = grid.columns.length;
    const cells = new ImageData(cols, rows);
    const px = cells.data;
    const [nr, ng, nb] = rgb(themeColor('--vscode-charts-red', '#f14c4c'));
    for (let k = 0; k < grid.index.length; k++) {
      const i = grid.index[k];
      const p = k * 4;
      if (i === CELL_NULL) continue; // transparent: the panel background shows through
      if (i === CELL_NON_FINITE) {
        px[p] = nr;
        px[p + 1] = ng;
        px[p + 2] = nb;
      } else {
        px[p] = SEQUENTIAL[i * 3];
        px[p + 1] = SEQUENTIAL[i * 3 + 1];
        px[p + 2] = SEQUENTIAL[i * 3 + 2];
      }
      px[p + 3] = 255;
    }
    const source = document.createElement('canvas');
    source.width = cols;
    source.height = rows;
    source.getContext('2d')!.putImageData(cells, 0, 0);
    const dpr = window.devicePixelRatio || 1;
    const w = Math.max(1, Math.round(this.canvas.clientWidth * dpr));
    const h = Math.max(1, Math.round(this.canvas.clientHeight * dpr));
    this.canvas.width = w;
    this.canvas.height = h;
    const ctx = this.canvas.getContext('2d')!;
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, w, h);
    ctx.drawImage(source, 0, 0, w, h);
    // Mark the anomaly's step: training stopped there.
    const a = this.record?.anomaly;
    if (a) {
      const c = grid.columns.findIndex((x) => x.first <= a.step && a.step <= x.last);
      if (c >= 0) {
        ctx.strokeStyle = themeColor('--vscode-editorError-foreground', '#f14c4c');
        ctx.lineWidth = Math.max(1, dpr);
        const x = (c / cols) * w;
        ctx.strokeRect(x, 0, Math.max(ctx.lineWidth, w / cols), h);
      }
    }
  }

  private cellOf(e: MouseEvent): { row: number; col: number } | null {
    if (!this.grid) return null;
    const r = this.canvas.getBoundingClientRect();
    return cellAt(this.grid, (e.clientX - r.left) / r.width, (e.clientY - r.top) / r.height);
  }

  private hover(e: MouseEvent): void {
    const cell = this.cellOf(e);
    const grid = this.grid;
    if (!cell || !grid) {
      this.tip.textContent = '';
      return;
    }
    const m = grid.rows[cell.row];
    const col = grid.columns[cell.col];
    const steps = col.first === col.last ? `step ${col.first}` : `steps ${col.first}–${col.last} (max)`;
    this.tip.textContent = `${m.path || '(model)'}${m.kind ? ` (${m.kind})` : ''} · ${steps} · ${HEAT_METRICS[grid.metric].label} ${formatValue(grid.metric, cellValue(grid, cell.row, cell.col))}`;
  }
}
