/** A sortable table of every module's statistics; clicking a row reveals its source line. */
import type { InspectionReport, ModuleReport } from '../engine/inspect/report';
import { healthColor } from './theme';

interface Column {
  key: string;
  title: string;
  value: (m: ModuleReport) => number | string | null;
  format?: (v: number) => string;
  numeric?: boolean;
}

const sci = (v: number) => (v === 0 ? '0' : v.toExponential(2));
const pct = (v: number) => `${(v * 100).toFixed(1)}%`;

const COLUMNS: Column[] = [
  // A module with no op of its own in the export (only parameters) has no position: '—', not MAX_SAFE_INTEGER.
  { key: 'depth', title: '#', value: (m) => m.depth, numeric: true, format: (v) => (typeof v === 'number' && v >= Number.MAX_SAFE_INTEGER ? '—' : String(v)) },
  { key: 'path', title: 'Module', value: (m) => m.path || '(model)' },
  { key: 'kind', title: 'Kind', value: (m) => m.kind },
  { key: 'params', title: 'Params', value: (m) => m.parameterCount, numeric: true, format: (v) => v.toLocaleString('en-US') },
  { key: 'grad', title: '‖∇‖', value: (m) => m.gradNorm, numeric: true, format: sci },
  { key: 'rms', title: '∇ RMS', value: (m) => m.gradRms, numeric: true, format: sci },
  { key: 'ratio', title: '‖∇W‖/‖W‖', value: (m) => m.gradToWeight, numeric: true, format: sci },
  { key: 'outgrad', title: '‖∇out‖', value: (m) => m.outputGrad?.norm ?? null, numeric: true, format: sci },
  { key: 'shape', title: 'Output', value: (m) => (m.outputShape ? `[${m.outputShape.join(', ')}]` : null) },
  { key: 'mean', title: 'act mean', value: (m) => m.activation?.mean ?? null, numeric: true, format: sci },
  { key: 'std', title: 'act std', value: (m) => m.activation?.std ?? null, numeric: true, format: sci },
  { key: 'zeros', title: 'zeros', value: (m) => m.activation?.zeroFraction ?? null, numeric: true, format: pct },
  { key: 'dead', title: 'dead', value: (m) => m.deadUnitFraction, numeric: true, format: pct },
];

export interface SortState {
  key: string;
  descending: boolean;
}

export function sortModules(modules: readonly ModuleReport[], sort: SortState): ModuleReport[] {
  const col = COLUMNS.find((c) => c.key === sort.key) ?? COLUMNS[0];
  const sign = sort.descending ? -1 : 1;
  return [...modules].sort((a, b) => {
    const va = col.value(a);
    const vb = col.value(b);
    if (va === null) return vb === null ? 0 : 1; // empty cells last either way
    if (vb === null) return -1;
    return sign * (typeof va === 'number' && typeof vb === 'number' ? va - vb : String(va).localeCompare(String(vb)));
  });
}

export class ModuleTable {
  private sort: SortState;
  private report: InspectionReport | null = null;
  private health = new Map<string, string>();

  constructor(private readonly host: HTMLElement, private readonly onSelect: (path: string) => void, private readonly onSort: (s: SortState) => void, initial?: SortState) {
    this.sort = initial ?? { key: 'depth', descending: false };
  }

  render(report: InspectionReport, health: Map<string, string>): void {
    this.report = report;
    this.health = health;
    const table = document.createElement('table');
    table.className = 'modules';
    table.dataset.testid = 'module-table';
    const head = table.createTHead().insertRow();
    for (const c of COLUMNS) {
      const th = document.createElement('th');
      th.textContent = c.title + (this.sort.key === c.key ? (this.sort.descending ? ' ▼' : ' ▲') : '');
      th.className = c.numeric ? 'num' : '';
      th.tabIndex = 0;
      th.setAttribute('aria-sort', this.sort.key === c.key ? (this.sort.descending ? 'descending' : 'ascending') : 'none');
      const activate = () => {
        this.sort = { key: c.key, descending: this.sort.key === c.key ? !this.sort.descending : c.numeric === true && c.key !== 'depth' };
        this.onSort(this.sort);
        if (this.report) this.render(this.report, this.health);
      };
      th.addEventListener('click', activate);
      th.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') activate();
      });
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const m of sortModules(report.modules, this.sort)) {
      const row = body.insertRow();
      row.tabIndex = 0;
      row.dataset.path = m.path;
      const h = health.get(m.path);
      if (h) row.style.setProperty('--health', healthColor(h));
      row.className = h ? 'flagged' : '';
      for (const c of COLUMNS) {
        const cell = row.insertCell();
        const v = c.value(m);
        cell.textContent = v === null ? '' : typeof v === 'number' && c.format ? c.format(v) : String(v);
        if (c.numeric) cell.className = 'num';
        if (c.key === 'path') cell.style.paddingLeft = `${4 + 10 * (m.path ? m.path.split('.').length - 1 : 0)}px`;
      }
      row.addEventListener('click', () => this.onSelect(m.path));
      row.addEventListener('keydown', (e) => {
        if (e.key === 'Enter') this.onSelect(m.path);
      });
    }
    this.host.replaceChildren(table);
  }

  highlight(path: string): void {
    const row = this.host.querySelector<HTMLTableRowElement>(`tr[data-path="${CSS.escape(path)}"]`);
    this.host.querySelectorAll('tr.selected').forEach((r) => r.classList.remove('selected'));
    if (row) {
      row.classList.add('selected');
      row.scrollIntoView({ block: 'nearest' });
    }
  }
}
