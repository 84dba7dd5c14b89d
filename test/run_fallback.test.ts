/** The worker's rerun on the host backend when a WebGPU run fails (with the fake device backend). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { referenceBackend as ref } from '../engine/backend/reference';
import { getBackend, setBackend } from '../engine/backend/registry';
import { inspectOnnx } from '../engine/inspect/onnxInspect';
import { runWithFallback } from '../webview/runWithFallback';
import { repoRoot } from './helpers';
import { device } from './fakeDevice';

const fixture = (name: string) => new Uint8Array(fs.readFileSync(path.join(repoRoot, 'test', 'fixtures', 'onnx', name)));

test('a model with an op that needs host values fails on the device naming the node, then reruns on the host backend', async () => {
  const bytes = fixture('ops_misc.onnx');
  setBackend(device);
  try {
    // Less compares computed float values on the host (no device compare kernels yet).
    await assert.rejects(inspectOnnx(bytes, 'ops_misc'), /node '\/Less' \(Less\).*lives on the device \(fake-device\)/s);
    const reasons: string[] = [];
    const report = await runWithFallback(() => inspectOnnx(bytes, 'ops_misc'), ref, (reason, b) => reasons.push(`${b.name}: ${reason}`));
    assert.equal(reasons.length, 1);
    assert.match(reasons[0], /^typescript: WebGPU run failed \(node '\/Less'.*lives on the device.*\); reran on typescript$/s);
    assert.equal(getBackend(), ref, 'the host backend stays selected');
    assert.equal(report.backend, ref.name);
    const direct = await inspectOnnx(bytes, 'ops_misc');
    assert.deepEqual({ ...report, timings: null }, { ...direct, timings: null });
  } finally {
    setBackend(ref);
  }
});

test('models that run on the device are not rerun; host-backend failures are not retried', async () => {
  setBackend(device);
  try {
    let called = 0;
    const report = await runWithFallback(() => inspectOnnx(fixture('lora_op14_loss.onnx'), 'lora'), ref, () => called++);
    assert.equal(report.backend, 'fake-device');
    assert.equal(called, 0);
  } finally {
    setBackend(ref);
  }
  let runs = 0;
  await assert.rejects(runWithFallback(async () => {
    runs++;
    throw new Error('bad model');
  }, ref, () => assert.fail('no fallback from a host backend')), /bad model/);
  assert.equal(runs, 1);
});
