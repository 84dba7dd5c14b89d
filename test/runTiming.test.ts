/** The Output channel's timing line for one inspection (extension/runTiming.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { formatRunTiming, runTimingParts } from '../extension/runTiming';
import type { InspectionReport } from '../engine/inspect/report';

const report = { timings: { loadMs: 20, forwardMs: 40, backwardMs: 60, summaryMs: 10 } } as InspectionReport;
const host = { readMs: 3, watchesMs: 0.25, readyMs: 400, roundTripMs: 300, mappingMs: 30, overlaysMs: 5, totalMs: 800 };

test('the parts add up to the total: page parts from the webview, message transit from the round trip, the rest as other', () => {
  const parts = Object.fromEntries(runTimingParts(host, report, { workerStartMs: 50, backendMs: 70, pageMs: 260 }));
  assert.deepEqual(parts, { read: 3, watches: 0.25, panel: 400, 'worker start': 50, backend: 70, load: 20, forward: 40, backward: 60, summary: 10, page: 10, messages: 40, mapping: 30, overlays: 5, other: 61.75 });
  const sum = Object.values(parts).reduce((a, b) => a + b, 0);
  assert.ok(Math.abs(sum - host.totalMs) < 1e-9);
});

test('without the webview phases (an older page) the engine parts still show; parts under 0.5 ms are left out of the line', () => {
  const line = formatRunTiming({ ...host, readyMs: 0 }, report);
  assert.equal(line, 'time to overlays 800 ms: read 3, load 20, forward 40, backward 60, summary 10, messages 170, mapping 30, overlays 5, other 462');
});

test("a run in the extension host's engine: no panel wait, the worker's start, and its message overhead as 'worker'", () => {
  const parts = Object.fromEntries(runTimingParts({ ...host, readyMs: 0, roundTripMs: 200 }, report, { workerStartMs: 15, backendMs: 0, pageMs: 200 }, 'host'));
  assert.deepEqual(parts, { read: 3, watches: 0.25, panel: 0, 'worker start': 15, backend: 0, load: 20, forward: 40, backward: 60, summary: 10, worker: 55, messages: 0, mapping: 30, overlays: 5, other: 561.75 });
  assert.match(formatRunTiming({ ...host, readyMs: 0, roundTripMs: 200 }, report, { workerStartMs: 15, backendMs: 0, pageMs: 200 }, 'host'), /^time to overlays 800 ms \(extension host engine\): read 3, worker start 15, load 20/);
});
