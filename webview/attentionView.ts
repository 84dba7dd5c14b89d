/**
 * Attention maps and their gradients: a layers x heads grid of heatmaps (canvas, one ImageData each,
 * fast at 128 tokens x 12 heads), a toggle between P, dL/dP and dL/dS, per-head summaries, and a zoomed
 * view with token labels and values on hover.
 */
import type { AttentionCapture } from '../engine/inspect/attention';
import type { InspectionReport } from '../engine/inspect/report';
import { DIVERGING_LUT, paint, robustAbsMax, Scale, SEQUENTIAL } from './colormap';

export type AttentionQuantity = 'P' | 'dP' | 'dS';

const TITLES: Record<AttentionQuantity, string> = { P: 'attention P', dP: 'dL/dP', dS: 'dL/dS (pre-softmax)' };

export interface AttentionViewState {
  quantity: AttentionQuantity;
  zoom: { layer: number; head: number } | null;
}

function scaleFor(cap: AttentionCapture, quantity: AttentionQuantity): Scale {
  if (quantity === 'P') return { lut: SEQUENTIAL, min: 0, max: 1 };
  // One symmetric scale per layer so heads of a layer compare directly.
  const m = robustAbsMax(cap[quantity]);
  return { lut: DIVERGING_LUT, min: -m, max: m };
}

function drawMap(canvas: HTMLCanvasElement, cap: AttentionCapture, head: number, quantity: AttentionQuantity, scale: Scale): void {
  canvas.width = cap.keys;
  canvas.height = cap.queries;
  const ctx = canvas.getContext('2d')!;
  const image = ctx.createImageData(cap.keys, cap.queries);
  paint(image, cap[quantity], head * cap.queries * cap.keys, scale);
  ctx.putImageData(image, 0, 0);
}

function tokenLabels(report: InspectionReport, n: number): string[] {
  const t = report.tokens;
  return Array.from({ length: n }, (_, i) => {
    const label = t?.labels?.[i] ?? (t ? String(t.ids[i]) : String(i));
    return label === ' ' ? '␣' : label === '\n' ? '⏎' : label;
  });
}

/** Token labels along one side of the zoomed map, one grid track per token so they line up with its cells. */
function labelStrip(className: string, labels: string[], tracks: 'gridTemplateColumns' | 'gridTemplateRows'): HTMLDivElement {
  const strip = document.createElement('div');
  strip.className = className;
  strip.style[tracks] = `repeat(${labels.length}, 1fr)`;
  for (const label of labels) {
    const s = document.createElement('span');
    s.textContent = label;
    strip.appendChild(s);
  }
  return strip;
}

export class AttentionView {
  constructor(private readonly host: HTMLElement, private state: AttentionViewState, private readonly onState: (s: AttentionViewState) => void) {}

  render(report: InspectionReport): void {
    const caps = report.attention ?? [];
    this.host.replaceChildren();
    if (caps.length === 0) {
      const p = document.createElement('p');
      p.className = 'empty';
      p.textContent = 'No attention blocks found in this model (a Softmax between a query-key MatMul and a MatMul with values).';
      this.host.appendChild(p);
      return;
    }
    const bar = document.createElement('div');
    bar.className = 'attn-toolbar';
    bar.setAttribute('role', 'radiogroup');
    bar.setAttribute('aria-label', 'Quantity shown');
    for (const q of ['P', 'dP', 'dS'] as AttentionQuantity[]) {
      const b = document.createElement('vscode-button');
      b.textContent = TITLES[q];
      b.setAttribute('role', 'radio');
      b.setAttribute('aria-checked', String(this.state.quantity === q));
      if (this.state.quantity !== q) b.setAttribute('secondary', '');
      b.dataset.quantity = q;
      b.addEventListener('click', () => this.update({ ...this.state, quantity: q }, report));
      bar.appendChild(b);
    }
    const legend = document.createElement('span');
    legend.className = 'legend';
    legend.textContent = `sample ${caps[0].sample} · ${caps[0].queries} queries × ${caps[0].keys} keys · ${this.state.quantity === 'P' ? 'colour 0 → 1' : 'blue < 0 < red, per-layer symmetric scale'}`;
    bar.appendChild(legend);
    this.host.appendChild(bar);

    const grid = document.createElement('div');
    grid.className = 'attn-grid';
    grid.dataset.testid = 'attention-grid';
    const heads = Math.max(...caps.map((c) => c.heads));
    grid.style.gridTemplateColumns = `max-content repeat(${heads}, minmax(56px, 1fr))`;
    for (const cap of caps) {
      const label = document.createElement('div');
      label.className = 'attn-layer';
      label.textContent = `L${cap.layer}`;
      label.title = cap.modulePath;
      label.dataset.layer = String(cap.layer);
      grid.appendChild(label);
      const scale = scaleFor(cap, this.state.quantity);
      for (let h = 0; h < heads; h++) {
        const cell = document.createElement('figure');
        cell.className = 'attn-cell';
        if (h < cap.heads) {
          const canvas = document.createElement('canvas');
          canvas.className = 'heatmap';
          canvas.dataset.layer = String(cap.layer);
          canvas.dataset.head = String(h);
          canvas.setAttribute('role', 'img');
          canvas.setAttribute('aria-label', `layer ${cap.layer} head ${h} ${TITLES[this.state.quantity]}`);
          canvas.tabIndex = 0;
          drawMap(canvas, cap, h, this.state.quantity, scale);
          const open = () => this.update({ ...this.state, zoom: { layer: cap.layer, head: h } }, report);
          canvas.addEventListener('click', open);
          canvas.addEventListener('keydown', (e) => e.key === 'Enter' && open());
          const s = cap.summaries[h];
          const caption = document.createElement('figcaption');
          caption.textContent = `H${h} · ent ${s.entropy.toFixed(2)} · max ${s.maxWeight.toFixed(2)}`;
          caption.title = `entropy ${s.entropy.toFixed(3)} nats (uniform: ${Math.log(cap.keys).toFixed(2)}), mean max weight ${s.maxWeight.toFixed(3)}, ‖dL/dS‖ ${s.gradNorm.toExponential(2)}`;
          cell.append(canvas, caption);
        }
        grid.appendChild(cell);
      }
    }
    this.host.appendChild(grid);
    if (this.state.zoom) this.renderZoom(report, caps);
  }

  /** Scrolls to a layer's row (from the editor's attention CodeLens). */
  focusLayer(modulePath: string): void {
    const label = [...this.host.querySelectorAll<HTMLElement>('.attn-layer')].find((l) => l.title === modulePath);
    label?.scrollIntoView({ block: 'center' });
    label?.classList.add('flash');
    setTimeout(() => label?.classList.remove('flash'), 1200);
  }

  private update(state: AttentionViewState, report: InspectionReport): void {
    this.state = state;
    this.onState(state);
    this.render(report);
  }

  private renderZoom(report: InspectionReport, caps: AttentionCapture[]): void {
    const z = this.state.zoom!;
    const cap = caps.find((c) => c.layer === z.layer);
    if (!cap || z.head >= cap.heads) return;
    const q = this.state.quantity;
    const box = document.createElement('div');
    box.className = 'attn-zoom';
    box.dataset.testid = 'attention-zoom';
    const title = document.createElement('h3');
    title.textContent = `Layer ${cap.layer} (${cap.modulePath}) · head ${z.head} · ${TITLES[q]}`;
    const close = document.createElement('vscode-button');
    close.textContent = 'Close';
    close.setAttribute('secondary', '');
    close.addEventListener('click', () => this.update({ ...this.state, zoom: null }, report));
    const frame = document.createElement('div');
    frame.className = 'zoom-frame';
    const keys = tokenLabels(report, cap.keys);
    const queries = tokenLabels(report, cap.queries);
    const top = labelStrip('zoom-keys', keys, 'gridTemplateColumns');
    const left = labelStrip('zoom-queries', queries, 'gridTemplateRows');
    const canvas = document.createElement('canvas');
    canvas.className = 'heatmap zoomed';
    drawMap(canvas, cap, z.head, q, scaleFor(cap, q));
    const tip = document.createElement('div');
    tip.className = 'zoom-tip';
    tip.dataset.testid = 'attention-value';
    canvas.addEventListener('mousemove', (e) => {
      const r = canvas.getBoundingClientRect();
      const col = Math.min(cap.keys - 1, Math.floor(((e.clientX - r.left) / r.width) * cap.keys));
      const row = Math.min(cap.queries - 1, Math.floor(((e.clientY - r.top) / r.height) * cap.queries));
      const i = (z.head * cap.queries + row) * cap.keys + col;
      tip.textContent = `query ${row} '${queries[row]}' → key ${col} '${keys[col]}': P ${cap.P[i].toFixed(4)} · dL/dP ${cap.dP[i].toExponential(3)} · dL/dS ${cap.dS[i].toExponential(3)}`;
    });
    frame.append(document.createElement('span'), top, left, canvas);
    box.append(title, close, frame, tip);
    this.host.appendChild(box);
  }
}
