/**
 * The run's memory estimate and the importer's warnings, under the panel's summary. Both are in the report
 * (engine/inspect/report.ts); the text is built by pure functions (unit-tested) and set as textContent only.
 */
import type { InspectionReport } from '../engine/inspect/report';
import { formatBytes } from '../engine/memory';

/** Setting that holds the budget, named in the text so the user knows what to change. */
const BUDGET_SETTING = 'gradientLens.run.memoryBudgetMB';

export interface MemoryLine {
  /** "Memory estimate 1.2 GB of the 2 GB budget (59%)". */
  headline: string;
  /** "parameters 540 MB · gradients 540 MB · saved activations 80 MB · ..." (parts above 0, largest first). */
  parts: string;
  /** More than 80% of the budget: worth a look before a bigger batch. */
  nearBudget: boolean;
  /** Longer explanation for the tooltip. */
  title: string;
}

/** The memory estimate of a report in words, or null when the report has none (older versions). */
export function memoryLine(memory: InspectionReport['memory']): MemoryLine | null {
  if (!memory) return null;
  const named: [string, number | undefined][] = [
    ['parameters', memory.parameters], ['gradients', memory.gradients], ['inputs', memory.inputs], ['saved activations', memory.activations],
    ['backward', memory.backward], ['workspace', memory.workspace],
  ];
  const parts = named.filter((p): p is [string, number] => typeof p[1] === 'number' && p[1] > 0).sort((a, b) => b[1] - a[1]);
  const share = memory.budget ? memory.peak / memory.budget : null;
  const approx = memory.complete === false ? ' (partly approximated)' : '';
  const headline = memory.budget
    ? `Memory estimate ${formatBytes(memory.peak)}${approx} of the ${formatBytes(memory.budget)} budget (${Math.round(share! * 100)}%)`
    : `Memory estimate ${formatBytes(memory.peak)}${approx}, no budget`;
  return {
    headline,
    parts: parts.map(([k, b]) => `${k} ${formatBytes(b)}`).join(' · '),
    nearBudget: share !== null && share > 0.8,
    title: 'Tensor memory of one inspection (forward and backward), estimated by a shape-only dry run before anything was allocated; '
      + `nothing is assumed freed, so it is an upper bound. A run above the budget (setting ${BUDGET_SETTING}) is refused before it starts.`,
  };
}

/** The importer's warnings, each once, with a count for repeats ("… (3 times)"), at most `max` lines. */
export function warningLines(warnings: readonly string[] | undefined, max = 8): string[] {
  const counts = new Map<string, number>();
  for (const w of warnings ?? []) counts.set(w, (counts.get(w) ?? 0) + 1);
  const lines = [...counts].map(([w, n]) => (n > 1 ? `${w} (${n} times)` : w));
  return lines.length > max ? [...lines.slice(0, max), `… and ${lines.length - max} more`] : lines;
}

/** Draws both into `host` (an empty section when the report has neither). */
export function renderRunDetails(host: HTMLElement, report: InspectionReport): void {
  const children: HTMLElement[] = [];
  const memory = memoryLine(report.memory);
  if (memory) {
    const p = document.createElement('p');
    p.className = `memory${memory.nearBudget ? ' near-budget' : ''}`;
    p.dataset.testid = 'memory-estimate';
    p.title = memory.title;
    const head = document.createElement('span');
    head.textContent = memory.headline;
    const parts = document.createElement('span');
    parts.className = 'detail';
    parts.textContent = memory.parts;
    p.append(head, ': ', parts);
    children.push(p);
  }
  const warnings = warningLines(report.warnings);
  if (warnings.length) {
    const details = document.createElement('details');
    details.dataset.testid = 'load-warnings';
    const summary = document.createElement('summary');
    summary.textContent = `${report.warnings!.length} ${report.warnings!.length === 1 ? 'warning' : 'warnings'} from loading the model`;
    const list = document.createElement('ul');
    for (const w of warnings) {
      const li = document.createElement('li');
      li.textContent = w;
      list.appendChild(li);
    }
    details.append(summary, list);
    children.push(details);
  }
  host.replaceChildren(...children);
}
