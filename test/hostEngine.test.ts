/**
 * The extension host's engine (extension/hostEngine): a real worker thread running the real engine. Its report
 * equals the one the panel's engine path computes for the same request (same translation, same kernels), a
 * cancel ends the worker and the next run gets a fresh one, a worker that runs out of heap fails the run with an
 * error naming the model, and a corrupt file gives the panel's error text.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { HostEngine } from '../extension/hostEngine/client';
import { inspectOptions } from '../extension/engineRequest';
import { DEFAULT_RUN_SETTINGS, RunRequest, RunSettings } from '../extension/protocol';
import { inspectOnnx } from '../engine/inspect/onnxInspect';
import type { InspectionReport } from '../engine/inspect/report';
import { setBackend } from '../engine/backend/registry';
import { referenceBackend } from '../engine/backend/reference';
import { loadWasmBackendNode } from '../engine/backend/wasm/node';
import { describeError } from '../webview/runWithFallback';
import { repoRoot } from './helpers';

const WORKER = join(__dirname, '..', 'extension', 'hostEngine', 'worker.js');
const example = (name: string) => new Uint8Array(readFileSync(join(repoRoot, 'examples', name)));

function request(runId: number, modelName: string, bytes: Uint8Array, settings: Partial<RunSettings> = {}): RunRequest {
  return { runId, modelName, bytes, settings: { ...DEFAULT_RUN_SETTINGS, backend: 'wasm', ...settings }, watches: [], memoryBudgetMB: 2048 };
}

/** The report without its wall-clock timings (the only part two runs of the same computation may differ in). */
function numbers(report: InspectionReport): unknown {
  const { timings, ...rest } = report;
  assert.ok(timings.forwardMs >= 0 && timings.backwardMs >= 0);
  return rest;
}

/** The panel's engine path in this process: the same request translation (inspectOptions) and kernel file. */
async function panelPathReport(r: RunRequest): Promise<InspectionReport> {
  setBackend(r.settings.backend === 'typescript' ? referenceBackend : await loadWasmBackendNode());
  try {
    return await inspectOnnx(r.bytes, r.modelName, inspectOptions(r, () => {}));
  } finally {
    setBackend(referenceBackend);
  }
}

test('the host engine prewarms, says which backend it selected, and reports the numbers the panel path computes', async () => {
  const engine = new HostEngine(WORKER);
  try {
    engine.prewarm();
    for (const [i, name] of ['small_cnn.onnx', 'tiny_gpt.onnx'].entries()) {
      const r = request(i + 1, name, example(name));
      const progress: string[] = [];
      const { report, workerStartMs, roundTripMs } = await engine.run(r, (m) => progress.push(m));
      assert.match(engine.backend?.name ?? '', /^wasm-simd/);
      assert.match(engine.backend?.reason ?? '', /^extension host engine: /);
      assert.equal(report.backend, 'wasm-simd');
      assert.ok(progress.includes('loading the model'), progress.join(' | '));
      assert.ok(workerStartMs >= 0 && roundTripMs > 0);
      const expected = await panelPathReport(r);
      assert.deepEqual(numbers(report), numbers(expected));
      assert.ok(report.modules.length > 3 && Number.isFinite(report.loss.value));
    }
  } finally {
    engine.dispose();
  }
});

test('the TypeScript backend setting runs on the reference backend, with the same numbers as the panel path', async () => {
  const engine = new HostEngine(WORKER);
  try {
    const r = request(1, 'healthy_mlp.onnx', example('healthy_mlp.onnx'), { backend: 'typescript', seed: 3, batch: 4 });
    const { report } = await engine.run(r, () => {});
    assert.equal(report.backend, 'typescript');
    assert.deepEqual(numbers(report), numbers(await panelPathReport(r)));
  } finally {
    engine.dispose();
  }
});

test('cancel rejects the run with "cancelled", terminates the worker, and the next run gets a fresh one', async () => {
  const engine = new HostEngine(WORKER);
  try {
    const r = request(1, 'tiny_gpt.onnx', example('tiny_gpt.onnx'));
    const run = engine.run(r, () => {});
    setTimeout(() => engine.cancel(1), 20);
    await assert.rejects(run, /^Error: cancelled$/);
    const again = await engine.run(request(2, 'healthy_mlp.onnx', example('healthy_mlp.onnx')), () => {});
    assert.equal(again.report.model.name, 'healthy_mlp.onnx');
    // A run superseded by a newer one is rejected as such; the newer one completes.
    const first = engine.run(request(3, 'tiny_gpt.onnx', example('tiny_gpt.onnx')), () => {});
    const second = engine.run(request(4, 'small_cnn.onnx', example('small_cnn.onnx')), () => {});
    await assert.rejects(first, /superseded by a newer run/);
    assert.equal((await second).report.model.name, 'small_cnn.onnx');
  } finally {
    engine.dispose();
  }
});

test('a worker that runs out of its heap ends, and the run fails with an error naming the model and the cap, not the calling process', async () => {
  // A heap cap too small for the engine: the worker dies of it, the test process does not.
  const tiny = new HostEngine(WORKER, { maxOldGenerationSizeMb: 2, maxYoungGenerationSizeMb: 1 });
  try {
    await assert.rejects(tiny.run(request(1, 'tiny_gpt.onnx', example('tiny_gpt.onnx')), () => {}), (err: Error) => {
      assert.match(err.message, /^the extension host's engine ran out of memory running tiny_gpt\.onnx \(its JavaScript heap is capped at 2 MB/);
      return true;
    });
  } finally {
    tiny.dispose();
  }
});

test('a corrupt .onnx fails with the error text the panel path gives, and the worker keeps serving', async () => {
  const engine = new HostEngine(WORKER);
  try {
    const good = example('small_cnn.onnx');
    const corrupt = good.slice(0, Math.floor(good.length / 3));
    corrupt[5] ^= 0xff;
    const r = request(1, 'broken.onnx', corrupt);
    const panelMessage = await panelPathReport(r).then(() => assert.fail('the corrupt model loaded'), describeError);
    assert.match(panelMessage, /^the ONNX file is truncated or corrupt/);
    await assert.rejects(engine.run(r, () => {}), (err: Error) => {
      assert.equal(err.message, panelMessage);
      return true;
    });
    const ok = await engine.run(request(2, 'small_cnn.onnx', good), () => {});
    assert.equal(ok.report.model.name, 'small_cnn.onnx');
  } finally {
    engine.dispose();
  }
});

test('the memory budget refuses a run before it allocates, with the estimate, as in the panel', async () => {
  const engine = new HostEngine(WORKER);
  try {
    const r = { ...request(1, 'tiny_gpt.onnx', example('tiny_gpt.onnx')), memoryBudgetMB: 0.05 };
    const panelMessage = await panelPathReport(r).then(() => assert.fail('the budget let the run through'), describeError);
    assert.match(panelMessage, /budget/i);
    await assert.rejects(engine.run(r, () => {}), (err: Error) => {
      assert.equal(err.message, panelMessage);
      return true;
    });
  } finally {
    engine.dispose();
  }
});

test('a warm re-run in the same worker reports exactly what a cold run in a fresh worker does, twice in a row, for every example, in train and eval mode', async () => {
  // The worker is kept between Inspects: nothing a run leaves behind (compiled code, wasm scratch memory, batch-norm
  // statistics, dropout's generator, anything cached) may change the next run's numbers.
  const names = readdirSync(join(repoRoot, 'examples')).filter((f) => f.endsWith('.onnx')).sort();
  assert.equal(names.length, 5, names.join(', '));
  const warm = new HostEngine(WORKER);
  let runId = 0;
  try {
    for (const mode of ['train', 'eval'] as const) {
      for (const name of names) {
        const r = () => request(++runId, name, example(name), { mode });
        const cold = new HostEngine(WORKER);
        let fresh: InspectionReport;
        try {
          fresh = (await cold.run(r(), () => {})).report;
        } finally {
          cold.dispose();
        }
        assert.equal(fresh.mode, mode);
        for (let i = 0; i < 2; i++) {
          const { report } = await warm.run(r(), () => {});
          assert.deepEqual(numbers(report), numbers(fresh), `${name} (${mode} mode), warm run ${i + 1}`);
        }
      }
    }
  } finally {
    warm.dispose();
  }
});
