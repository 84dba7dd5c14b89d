/**
 * Where the time from "Inspect" to the overlays went, as one line for the Output channel: the host's own
 * steps, the webview's (worker start, backend selection) and the engine's (load, forward, backward, summary).
 * Each side measures durations with its own clock; what no side accounts for is message transit.
 * Pure (no vscode import) so it is tested directly.
 */
import type { InspectionReport } from '../engine/inspect/report';
import type { RunPhases } from './protocol';

export interface HostTimes {
  /** Finding the document and its model file (an export when it needs one). Not logged by older callers. */
  locateMs?: number;
  /** Reading the model file. */
  readMs: number;
  /** Finding the watched lines (tree-sitter index of the document). */
  watchesMs: number;
  /** Waiting for the webview to load (0 when the panel was open). */
  readyMs: number;
  /** From posting the run to the webview until its report arrived. */
  roundTripMs: number;
  /** Mapping modules to source lines. */
  mappingMs: number;
  /** Diagnosing and setting the decorations. */
  overlaysMs: number;
  /** The whole inspection, command to decorations. */
  totalMs: number;
}

/** Which engine ran: the panel's (webview worker) or the extension host's (Node worker, extension/hostEngine). */
export type RunEngine = 'panel' | 'host';

/**
 * The parts in order, in ms; `messages` is the round trip not accounted for by the page. For a run in the
 * extension host's engine, `phases` are that worker's: its start, and as `pageMs` the whole round trip, so what
 * the engine does not account for shows as 'worker' (messages to and from the thread, cloning the report).
 */
export function runTimingParts(host: HostTimes, report: InspectionReport, phases?: RunPhases, engine: RunEngine = 'panel'): [string, number][] {
  const t = report.timings;
  const engineParts: [string, number][] = [
    ['load', t.loadMs ?? 0],
    ['forward', t.forwardMs],
    ['backward', t.backwardMs],
    ['summary', t.summaryMs ?? 0],
  ];
  const engineMs = engineParts.reduce((s, [, v]) => s + v, 0);
  const page: [string, number][] = phases
    ? [['worker start', phases.workerStartMs], ['backend', phases.backendMs], ...engineParts, [engine === 'host' ? 'worker' : 'page', Math.max(0, phases.pageMs - phases.workerStartMs - phases.backendMs - engineMs)]]
    : engineParts;
  const pageMs = phases ? phases.pageMs : engineMs;
  const parts: [string, number][] = [
    ...(host.locateMs !== undefined ? [['locate', host.locateMs] as [string, number]] : []),
    ['read', host.readMs],
    ['watches', host.watchesMs],
    ['panel', host.readyMs],
    ...page,
    ['messages', Math.max(0, host.roundTripMs - pageMs)],
    ['mapping', host.mappingMs],
    ['overlays', host.overlaysMs],
  ];
  const known = parts.reduce((s, [, v]) => s + v, 0);
  parts.push(['other', Math.max(0, host.totalMs - known)]);
  return parts;
}

/** "time to overlays 812 ms: read 3, panel 420, ..." (parts under 0.5 ms left out; "(extension host engine)" when it ran there). */
export function formatRunTiming(host: HostTimes, report: InspectionReport, phases?: RunPhases, engine: RunEngine = 'panel'): string {
  const parts = runTimingParts(host, report, phases, engine).filter(([, v]) => v >= 0.5);
  return `time to overlays ${host.totalMs.toFixed(0)} ms${engine === 'host' ? ' (extension host engine)' : ''}: ${parts.map(([k, v]) => `${k} ${v.toFixed(0)}`).join(', ')}`;
}
