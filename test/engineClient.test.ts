/**
 * The webview's engine client for training runs (webview/engineClient.ts), against a scripted fake
 * worker: progress and completion, graceful stop, the terminate fallback, and superseding.
 */
import { describe, test, beforeEach } from 'node:test';
import assert from 'node:assert/strict';
import type { PageToWorker, TrainRequest, WorkerToPage } from '../extension/protocol';
import { DEFAULT_RUN_SETTINGS, DEFAULT_TRAIN_SETTINGS } from '../extension/protocol';
import { TRAINING_SCHEMA, TrainingRecord } from '../engine/train/record';
import { EngineClient } from '../webview/engineClient';
import { latestOnly } from '../webview/latestOnly';

class FakeWorker {
  static all: FakeWorker[] = [];
  posted: PageToWorker[] = [];
  terminated = false;
  onmessage: ((e: { data: WorkerToPage }) => void) | null = null;
  onerror: ((e: { message: string }) => void) | null = null;
  constructor() {
    FakeWorker.all.push(this);
  }
  postMessage(m: PageToWorker): void {
    this.posted.push(m);
  }
  terminate(): void {
    this.terminated = true;
  }
  emit(m: WorkerToPage): void {
    this.onmessage?.({ data: m });
  }
}

const g = globalThis as unknown as Record<string, unknown>;
g.Worker = FakeWorker;
g.fetch = async () => ({ ok: true, status: 200, text: async () => '/* worker */', arrayBuffer: async () => new ArrayBuffer(8) });

function rec(steps: number): TrainingRecord {
  const s = Array.from({ length: steps }, (_, i) => i + 1);
  return { schema: TRAINING_SCHEMA, producer: 'fake', model: { name: 'm.onnx' }, optimizer: { kind: 'adam', lr: 1e-3 }, steps: s, loss: s.map((i) => 1 / i), gradNormTotal: s.map(() => 1), modules: [] };
}

function request(runId: number): TrainRequest {
  return { runId, modelName: 'm.onnx', bytes: new Uint8Array([1, 2, 3]), settings: DEFAULT_RUN_SETTINGS, watches: [], train: { ...DEFAULT_TRAIN_SETTINGS, steps: 10 } };
}

/** Waits until the client has posted a message of this type (it fetches and probes first). */
async function posted(worker: () => FakeWorker | undefined, type: PageToWorker['type'], count = 1): Promise<FakeWorker> {
  for (let i = 0; i < 1000; i++) {
    const w = worker();
    if (w && w.posted.filter((m) => m.type === type).length >= count) return w;
    await new Promise((r) => setImmediate(r));
  }
  throw new Error(`no ${type} message was posted`);
}

const latest = () => FakeWorker.all[FakeWorker.all.length - 1];

describe('EngineClient training runs', () => {
  let client: EngineClient;
  beforeEach(() => {
    FakeWorker.all = [];
    client = new EngineClient('worker.js', 'wasm/');
    client.stopTimeoutMs = 40;
  });

  test('progress for its run reaches the callback; trainDone resolves with the record and why it stopped', async () => {
    const seen: number[] = [];
    const done = client.train(request(7), { onProgress: (r) => seen.push(r.steps.length) });
    const w = await posted(latest, 'train');
    assert.equal(w.posted[0].type, 'probe', 'a fresh worker selects its backend first');
    w.emit({ type: 'trainProgress', runId: 7, record: rec(3) });
    w.emit({ type: 'trainProgress', runId: 99, record: rec(5) }); // another run's: ignored
    w.emit({ type: 'trainProgress', runId: 7, record: rec(6) });
    w.emit({ type: 'trainDone', runId: 7, record: rec(10), stopped: 'done' });
    const result = await done;
    assert.deepEqual(seen, [3, 6]);
    assert.equal(result.stopped, 'done');
    assert.equal(result.record.steps.length, 10);
  });

  test('stopTraining asks the worker to stop and keeps it; the worker answers with the record so far', async () => {
    const done = client.train(request(3), { onProgress: () => {} });
    const w = await posted(latest, 'train');
    w.emit({ type: 'trainProgress', runId: 3, record: rec(2) });
    client.stopTraining(3);
    client.stopTraining(3); // a second click does not post again
    assert.deepEqual(w.posted.filter((m) => m.type === 'stopTraining'), [{ type: 'stopTraining', runId: 3 }]);
    w.emit({ type: 'trainDone', runId: 3, record: rec(4), stopped: 'cancelled' });
    const result = await done;
    assert.equal(result.stopped, 'cancelled');
    assert.equal(result.record.steps.length, 4);
    await new Promise((r) => setTimeout(r, 80));
    assert.equal(w.terminated, false, 'an answered stop does not terminate the worker');
  });

  test('a worker that does not answer a stop is terminated; the run resolves with the last progress record', async () => {
    const done = client.train(request(4), { onProgress: () => {} });
    const w = await posted(latest, 'train');
    w.emit({ type: 'trainProgress', runId: 4, record: rec(5) });
    const t0 = Date.now();
    client.cancel(4); // the host's cancel for a training run stops it gracefully first
    assert.equal(w.terminated, false);
    const result = await done;
    assert.ok(Date.now() - t0 >= 35, 'it waited for the worker first');
    assert.equal(w.terminated, true);
    assert.equal(result.stopped, 'cancelled');
    assert.equal(result.record.steps.length, 5);
    w.emit({ type: 'trainDone', runId: 4, record: rec(9), stopped: 'cancelled' }); // too late: ignored
    // The next run starts a new worker, which probes its backend again.
    const next = client.train(request(5), { onProgress: () => {} });
    const w2 = await posted(() => FakeWorker.all[1], 'train');
    assert.notEqual(w2, w);
    assert.equal(w2.posted[0].type, 'probe');
    w2.emit({ type: 'trainDone', runId: 5, record: rec(1), stopped: 'done' });
    assert.equal((await next).record.steps.length, 1);
  });

  test('stopped before any progress: an empty record of the run, not an error', async () => {
    const done = client.train(request(6), { onProgress: () => {} });
    await posted(latest, 'train');
    client.stopTraining(6);
    const result = await done;
    assert.equal(result.stopped, 'cancelled');
    assert.equal(result.record.schema, TRAINING_SCHEMA);
    assert.equal(result.record.model.name, 'm.onnx');
    assert.equal(result.record.optimizer.kind, DEFAULT_TRAIN_SETTINGS.optimizer);
    assert.deepEqual(result.record.steps, []);
  });

  test('prepare starts one worker ahead of the run: the run reuses it, after its one backend selection', async () => {
    const early = client.prepare('auto');
    const again = client.prepare('auto');
    const run = client.run({ runId: 8, modelName: 'm.onnx', bytes: new Uint8Array([1]), settings: DEFAULT_RUN_SETTINGS, watches: [] }, { onProgress: () => {} });
    assert.equal(await early, await again);
    const w = await posted(latest, 'run');
    assert.equal(FakeWorker.all.length, 1);
    assert.deepEqual(w.posted.map((m) => m.type), ['probe', 'run']);
    w.emit({ type: 'report', runId: 8, report: { schema: 'x' } as never, backendMs: 12 });
    const result = await run;
    assert.equal(result.backendMs, 12);
    assert.ok(result.workerStartMs >= 0);
    // Another backend choice selects again on the same worker.
    const run2 = client.run({ runId: 9, modelName: 'm.onnx', bytes: new Uint8Array([1]), settings: { ...DEFAULT_RUN_SETTINGS, backend: 'typescript' }, watches: [] }, { onProgress: () => {} });
    await posted(latest, 'run', 2);
    assert.deepEqual(w.posted.map((m) => m.type), ['probe', 'run', 'probe', 'run']);
    assert.equal((w.posted[2] as { backend: string }).backend, 'typescript');
    w.emit({ type: 'runError', runId: 9, message: 'done' });
    await assert.rejects(run2, /done/);
    assert.equal(FakeWorker.all.length, 1);
  });

  test('a newer run supersedes a training run: it is rejected and the worker is told to stop it', async () => {
    const training = client.train(request(1), { onProgress: () => {} });
    const w = await posted(latest, 'train');
    const rejected = assert.rejects(training, /superseded/);
    const run = client.run({ runId: 2, modelName: 'm.onnx', bytes: new Uint8Array([1]), settings: DEFAULT_RUN_SETTINGS, watches: [] }, { onProgress: () => {} });
    await rejected;
    assert.ok(w.posted.some((m) => m.type === 'stopTraining' && m.runId === 1));
    await posted(latest, 'run');
    w.emit({ type: 'trainDone', runId: 1, record: rec(2), stopped: 'cancelled' }); // the old run's answer changes nothing
    w.emit({ type: 'runError', runId: 2, message: 'boom' });
    await assert.rejects(run, /boom/);
    assert.equal(w.terminated, false);
  });
});

describe('latestOnly (progress forwarded to the host)', () => {
  /** A manual clock: timers fire only when the test advances time. */
  function manualClock() {
    let now = 0;
    const timers: { at: number; fn: () => void; id: number }[] = [];
    let ids = 0;
    return {
      now: () => now,
      setTimeout: (fn: () => void, ms: number) => {
        timers.push({ at: now + ms, fn, id: ++ids });
        return ids;
      },
      clearTimeout: (id: unknown) => {
        const i = timers.findIndex((t) => t.id === id);
        if (i >= 0) timers.splice(i, 1);
      },
      advance(ms: number) {
        now += ms;
        for (const t of timers.filter((x) => x.at <= now)) {
          timers.splice(timers.indexOf(t), 1);
          t.fn();
        }
      },
    };
  }

  test('at most one send per window, always the newest value, and the last value is not lost', () => {
    const clock = manualClock();
    const sent: [number, number][] = [];
    const l = latestOnly<number>(200, (v) => sent.push([clock.now(), v]), clock);
    // The worker's pace: a record every 150 ms for 3 s.
    for (let i = 1; i <= 20; i++) {
      l.push(i);
      clock.advance(150);
    }
    clock.advance(1000);
    assert.deepEqual(sent[0], [0, 1], 'the first value goes at once');
    for (let i = 1; i < sent.length; i++) assert.ok(sent[i][0] - sent[i - 1][0] >= 200, `gap ${sent[i][0] - sent[i - 1][0]} ms`);
    assert.ok(sent.length <= 1 + Math.ceil(3000 / 200));
    assert.equal(sent[sent.length - 1][1], 20, 'the trailing send carries the newest value');
    assert.ok(sent.every(([, v], i) => i === 0 || v > sent[i - 1][1]), 'values only move forward');
  });

  test('cancel drops the pending value (the final record goes with trainDone)', () => {
    const clock = manualClock();
    const sent: number[] = [];
    const l = latestOnly<number>(200, (v) => sent.push(v), clock);
    l.push(1);
    l.push(2);
    l.cancel();
    clock.advance(1000);
    assert.deepEqual(sent, [1]);
  });
});
