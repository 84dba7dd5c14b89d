/** A sortable table of every module's statistics; clicking a row reveals its source line. */
import type { InspectionReport, ModuleReport } from '../engine/inspect/report';
import { formatRatio, RunComparison } from '../engine/inspect/baseline';
import { healthColor } from './theme';

interface Column {
  key: string;
  title: string;
  value: (m: ModuleReport) => number | string | null;
  format?: (v: number) => string;
  numeric?: boolean;
  /** Text for a cell whose value is null (e.g. 'new' in the Δ column). */
  empty?: (m: ModuleReport) => string;
  /** Tooltip of a cell. */
  tooltip?: (m: ModuleReport) => string | undefined;
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

const pinnedTime = (c: RunComparison) => c.baseline.pinnedAt.replace('T', ' ').slice(0, 16);

/** The Δ column: this run's gradient norm over the baseline's, per module ("did my fix help?"). */
export function deltaColumn(c: RunComparison): Column {
  return {
    key: 'delta',
    title: 'Δ ‖∇‖',
    numeric: true,
    value: (m) => c.byPath.get(m.path)?.ratio ?? null,
    format: (v) => formatRatio(v),
    empty: (m) => {
      const d = c.byPath.get(m.path);
      return d?.status === 'new' ? 'new' : d?.status === 'changed' ? 'changed' : '';
    },
    tooltip: (m) => {
      const d = c.byPath.get(m.path);
      if (!d) return undefined;
      if (d.status === 'new') return `not in the baseline (pinned ${pinnedTime(c)})`;
      if (d.status === 'changed') return `${d.reason}: not compared`;
      const sci = (v: number | null) => (v === null ? '—' : v.toExponential(1));
      return `${d.quantity} was ${sci(d.was)}, now ${sci(d.now)} (baseline pinned ${pinnedTime(c)})`;
    },
  };
}

/** The table's columns: with a comparable baseline, Δ after ‖∇‖. */
export function columnsFor(comparison?: RunComparison): Column[] {
  if (!comparison?.comparable) return COLUMNS;
  const i = COLUMNS.findIndex((c) => c.key === 'grad') + 1;
  return [...COLUMNS.slice(0, i), deltaColumn(comparison), ...COLUMNS.slice(i)];
}

export interface SortState {
  key: string;
  descending: boolean;
}

export function sortModules(modules: readonly ModuleReport[], sort: SortState, columns: readonly Column[] = COLUMNS): ModuleReport[] {
  const col = columns.find((c) => c.key === sort.key) ?? columns[0];
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
  private comparison: RunComparison | undefined;

  constructor(private readonly host: HTMLElement, private readonly onSelect: (path: string) => void, private readonly onSort: (s: SortState) => void, initial?: SortState) {
    this.sort = initial ?? { key: 'depth', descending: false };
  }

  render(report: InspectionReport, health: Map<string, string>, comparison?: RunComparison): void {
    this.report = report;
    this.health = health;
    this.comparison = comparison;
    const columns = columnsFor(comparison);
    const table = document.createElement('table');
    table.className = 'modules';
    table.dataset.testid = 'module-table';
    const head = table.createTHead().insertRow();
    for (const c of columns) {
      const th = document.createElement('th');
      th.textContent = c.title + (this.sort.key === c.key ? (this.sort.descending ? ' ▼' : ' ▲') : '');
      th.className = c.numeric ? 'num' : '';
      th.tabIndex = 0;
      th.setAttribute('aria-sort', this.sort.key === c.key ? (this.sort.descending ? 'descending' : 'ascending') : 'none');
      const activate = () => {
        this.sort = { key: c.key, descending: this.sort.key === c.key ? !this.sort.descending : c.numeric === true && c.key !== 'depth' };
        this.onSort(this.sort);
        if (this.report) this.render(this.report, this.health, this.comparison);
      };
      th.addEventListener('click', activate);
      th.addEventListener('keydown', (e) => {
        if (e.key === 'Enter' || e.key === ' ') activate();
      });
      head.appendChild(th);
    }
    const body = table.createTBody();
    for (const m of sortModules(report.modules, this.sort, columns)) {
      const row = body.insertRow();
      row.tabIndex = 0;
      row.dataset.path = m.path;
      const h = health.get(m.path);
      if (h) row.style.setProperty('--health', healthColor(h));
      row.className = h ? 'flagged' : '';
      for (const c of columns) {
        const cell = row.insertCell();
        const v = c.value(m);
        cell.textContent = v === null ? c.empty?.(m) ?? '' : typeof v === 'number' && c.format ? c.format(v) : String(v);
        cell.dataset.col = c.key;
        const tip = c.tooltip?.(m);
        if (tip) cell.title = tip;
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
