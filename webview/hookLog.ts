/** The hook log: gradients of watched values, in the order backward reached them. */
import type { InspectionReport } from '../engine/inspect/report';

const sci = (v: number) => (v === 0 ? '0' : v.toExponential(2));

export function renderHookLog(host: HTMLElement, report: InspectionReport, onSelect: (path: string) => void): void {
  if (report.hookLogs.length === 0) {
    const p = document.createElement('p');
    p.className = 'empty';
    p.textContent = 'No hooks. End a line with "# gradlens: watch", or call register_hook on a tensor, to log its gradient here.';
    host.replaceChildren(p);
    return;
  }
  const list = document.createElement('ol');
  list.className = 'hooklog';
  list.dataset.testid = 'hook-log';
  for (const e of report.hookLogs) {
    const item = document.createElement('li');
    const title = document.createElement('code');
    title.textContent = e.target;
    const where = document.createElement('span');
    where.className = 'where';
    where.textContent = `${e.modulePath || '(model)'}${e.source ? ` · ${e.source.file.split(/[\\/]/).pop()}:${e.source.line}` : ''} · [${e.shape.join(', ')}]`;
    const stats = document.createElement('span');
    stats.className = 'stats';
    const g = e.grad;
    stats.textContent = `‖∇‖ ${sci(g.norm)}  mean ${sci(g.mean)}  std ${sci(g.std)}  min ${sci(g.min)}  max ${sci(g.max)}  zeros ${(g.zeroFraction * 100).toFixed(1)}%${g.nanCount + g.infCount ? `  NaN/Inf ${g.nanCount + g.infCount}` : ''}`;
    item.append(title, where, stats);
    item.addEventListener('click', () => onSelect(e.modulePath));
    list.appendChild(item);
  }
  host.replaceChildren(list);
}
