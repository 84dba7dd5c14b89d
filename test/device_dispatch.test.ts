/**
 * Device-backend plumbing without a GPU: a fake device backend whose buffers hold float32 arrays behind
 * an asynchronous read, computed by the reference kernels. Checks that ops really go through the
 * device path, that host reads of device tensors fail loudly (TensorOnDeviceError), that buffers are
 * released per run, and that inspecting models on the device path gives the reference's numbers.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { Tensor, TensorOnDeviceError, readTensors, tensorFrom } from '../engine/tensor';
import { referenceBackend as ref } from '../engine/backend/reference';
import { isDeviceBackend } from '../engine/backend/device';
import { deviceScope, dispatchCounts } from '../engine/backend/dispatch';
import * as E from '../engine/ops';
import { backward } from '../engine/autograd';
import { inspectOnnx } from '../engine/inspect/onnxInspect';
import { repoRoot } from './helpers';
import { device, live, onDevice, onDeviceAsync } from './fakeDevice';

test('a device backend is also a host backend: its typed-array kernels are the host\'s', () => {
  assert.ok(isDeviceBackend(device));
  assert.ok(!isDeviceBackend(ref));
  assert.equal(device.name, 'fake-device');
  assert.deepEqual(Array.from(device.unary('neg', new Float32Array([1, -2]), 0, 'float32')), [-1, 2]);
});

test('float32 ops run on the device: results are device tensors, .data throws TensorOnDeviceError, read() gives the values', async () => {
  const x = tensorFrom([1, 2, 3, 4], [2, 2]);
  const y = onDevice(() => E.matmul(x, E.exp(x)));
  assert.ok(y.isOnDevice);
  assert.throws(() => y.data, (e: unknown) => e instanceof TensorOnDeviceError && /lives on the device \(fake-device\)/.test(e.message));
  assert.throws(() => onDevice(() => E.sum(y)).item(), TensorOnDeviceError);
  const want = E.matmul(x, E.exp(x));
  assert.deepEqual(Array.from(await y.read()), Array.from(want.data));
  assert.ok(!y.isOnDevice, 'read() keeps the host copy');
  // Reshape shares storage: the view is on the device too and reads the same values.
  const v = onDevice(() => E.reshape(E.exp(x), [4]));
  assert.ok(v.isOnDevice);
  assert.deepEqual(Array.from(await v.read()), Array.from(E.exp(x).data));
});

test('float64 stays on the host under a device backend', () => {
  dispatchCounts(true);
  const x = tensorFrom([1, 2], [2], 'float64');
  const y = onDevice(() => E.exp(x));
  assert.ok(!y.isOnDevice);
  assert.equal(y.dtype, 'float64');
  assert.deepEqual(dispatchCounts(true), { device: 0, folded: 0, host: 1 });
});

test('gradients on the device equal host gradients; accumulation and hooks see device tensors', async () => {
  const build = () => {
    const w = tensorFrom([0.5, -1, 2, 0.25, 1.5, -0.75], [3, 2], 'float32', { requiresGrad: true });
    const x = tensorFrom([1, 2, 3, -1, 0.5, 4], [2, 3]);
    const h = E.gelu(E.matmul(x, w));
    const loss = E.sum(E.mul(E.softmax(E.add(h, h), -1), h));
    return { w, loss };
  };
  const host = build();
  backward(host.loss);
  const seen: Tensor[] = [];
  const dev = onDevice(() => {
    const r = build();
    r.loss.registerHook((g) => void seen.push(g));
    backward(r.loss);
    return r;
  });
  assert.ok(dev.w.grad!.isOnDevice);
  await readTensors([dev.w.grad, dev.loss]);
  assert.deepEqual(Array.from(dev.w.grad!.data), Array.from(host.w.grad!.data));
  assert.equal(dev.loss.item(), host.loss.item());
  assert.equal(seen.length, 1);
});

test('host value logic on a device tensor fails loudly, naming what needed the values', () => {
  const x = tensorFrom([0, 1, 2], [3], 'float32', { requiresGrad: true });
  const y = tensorFrom([2, 2, 2], [3], 'float32', { requiresGrad: true });
  onDevice(() => {
    const out = E.pow(E.exp(x), y);
    // pow with a tensor exponent builds its 0**y mask from host values in the VJP.
    assert.throws(() => backward(E.sum(out)), TensorOnDeviceError);
    // A where condition computed on the device cannot be turned into a host mask.
    assert.throws(() => E.where(E.exp(x), 1, 0), /where \(condition computed on the device\)/);
  });
});

test('clamp (Clip on device values): torch.clamp values and gradient on the host and on the device', async () => {
  const values = [-2, -1, 0, 0.5, 1, 2, NaN];
  const run = () => {
    const x = tensorFrom(values, [7], 'float32', { requiresGrad: true });
    const y = E.clamp(x, -1, 1);
    backward(E.sum(E.mul(y, tensorFrom([1, 2, 3, 4, 5, 6, 7], [7]))));
    return { x, y };
  };
  const host = run();
  const dev = onDevice(run);
  assert.ok(dev.y.isOnDevice);
  await readTensors([dev.y, dev.x.grad]);
  for (const r of [host, dev]) {
    assert.deepEqual(Array.from(r.y.data), [-1, -1, 0, 0.5, 1, 1, NaN]);
    assert.deepEqual(Array.from(r.x.grad!.data), [0, 2, 3, 4, 5, 0, 0]);
  }
  assert.equal(E.clamp(host.x, -Infinity, Infinity), host.x);
});

test('deviceScope releases every buffer of the run; released device tensors throw instead of reading', async () => {
  live.clear();
  let kept: Tensor | undefined;
  let read: Tensor | undefined;
  await onDeviceAsync(() =>
    deviceScope(async () => {
      const x = tensorFrom([1, 2, 3], [3]);
      kept = E.exp(x);
      read = E.neg(x);
      await read.read();
    }),
  );
  assert.ok(live.size >= 3, 'upload and two results');
  assert.ok([...live].every((b) => b.released), 'all released');
  assert.throws(() => kept!.data, /released/);
  await assert.rejects(kept!.read(), TensorOnDeviceError);
  assert.deepEqual(Array.from(read!.data), [-1, -2, -3]);
  // A host tensor whose device mirror was released uploads again.
  const x = tensorFrom([1, 2], [2]);
  const a = onDevice(() => E.exp(x));
  await deviceScope(async () => undefined);
  const b = onDevice(() => E.exp(x));
  assert.deepEqual(Array.from(await b.read()), Array.from(await a.read()));
});

/**
 * Deep equality where numbers may differ by `rtol` relative (plus `atol`): for models whose host run uses a
 * fused kernel the device composes from several (training-mode BatchNorm: host statistics in float64, device
 * ones from float32 reductions), so the two agree to float32 rounding rather than bit for bit.
 */
function assertDeepClose(got: unknown, want: unknown, rtol: number, atol: number, at: string): void {
  if (typeof want === 'number' && typeof got === 'number') {
    if (Number.isNaN(want) || !Number.isFinite(want)) return assert.ok(Object.is(got, want), `${at}: ${got} vs ${want}`);
    return assert.ok(Math.abs(got - want) <= rtol * Math.abs(want) + atol, `${at}: ${got} vs ${want}`);
  }
  if (want === null || typeof want !== 'object') return assert.deepEqual(got, want, at);
  assert.ok(got !== null && typeof got === 'object', `${at}: ${String(got)} is not an object`);
  const w = want as Record<string, unknown>;
  const g = got as Record<string, unknown>;
  assert.deepEqual(Object.keys(g).sort(), Object.keys(w).sort(), `${at}: keys`);
  // Histograms are discrete (a value near a bin edge, or a noise-level gradient's decade, may land either side);
  // the gradients they count are compared value by value.
  for (const k of Object.keys(w)) if (k !== 'histogram') assertDeepClose(g[k], w[k], rtol, atol, `${at}.${k}`);
}

// [file, inspect options, tolerance (exact when absent)]
const models: [string, object, number?][] = [
  ['test/fixtures/onnx/mlp_residual_op17_loss.onnx', {}],
  // Training-mode BatchNorm and convolutions: fused on the host, composed on the device.
  ['test/fixtures/onnx/cnn_op13.onnx', {}, 2e-5],
  ['test/fixtures/onnx/gpt_op13_loss.onnx', {}],
  ['test/fixtures/onnx/lora_op14_loss.onnx', {}],
  ['examples/tiny_gpt.onnx', { batch: 2, sequenceLength: 16 }],
  // Ops added for real architectures: 3-D conv / pooling / ConvTranspose, Resize, and one graph of LRN, Sin,
  // LpPool, DepthToSpace, Resize, Einsum, RotaryEmbedding, Attention, CumSum, Atan (test/gold/make_new_ops_model.py).
  // Dense convolutions run as one conv2d kernel on the host (weight gradient summed over all images before rounding)
  // and as im2col + matmul on the device (rounded per image, then summed): the two agree to float32 rounding.
  ['test/fixtures/onnx/video_dynamo.onnx', {}, 2e-5],
  ['test/fixtures/onnx/interp_dynamo.onnx', {}],
  ['test/fixtures/onnx/new_ops_op23.onnx', {}, 2e-5],
  // STFT and rfft / irfft (DFT) as matmuls with constant bases (test/gold/export_spectral.py).
  ['test/fixtures/onnx/spectro_dynamo.onnx', {}],
];

for (const [file, options, tolerance] of models) {
  test(`inspect ${path.basename(file)} through the device path: same report numbers as the host run${tolerance ? ` (to ${tolerance} relative)` : ''}, no float32 kernel on the host`, async () => {
    const bytes = new Uint8Array(fs.readFileSync(path.join(repoRoot, file)));
    const hostGrads = new Map<string, ArrayLike<number>>();
    const host = await inspectOnnx(bytes, file, { ...options, gradients: hostGrads });
    dispatchCounts(true);
    live.clear();
    const devGrads = new Map<string, ArrayLike<number>>();
    const dev = await onDeviceAsync(() => inspectOnnx(bytes, file, { ...options, gradients: devGrads }));
    const counts = dispatchCounts(true);
    assert.equal(counts.host, 0);
    assert.ok(counts.device > 20, `device kernels ${counts.device}`);
    assert.equal(dev.backend, 'fake-device');
    assert.deepEqual([...devGrads.keys()].sort(), [...hostGrads.keys()].sort());
    if (tolerance) {
      assertDeepClose(dev.loss.value, host.loss.value, tolerance, 0, 'loss');
      // Absolute slack on the scale of the largest gradient: a conv bias before a BatchNorm has a gradient that is
      // exactly 0 in exact arithmetic, so both runs show rounding noise there (1e-9 against 1e-10).
      const scale = Math.max(...[...hostGrads.values()].map((g) => Math.max(...Array.from(g, Math.abs))));
      for (const [name, g] of hostGrads) assertDeepClose(Array.from(devGrads.get(name)!), Array.from(g), tolerance, tolerance * scale, name);
      assertDeepClose({ ...dev, backend: '', timings: null }, { ...host, backend: '', timings: null }, tolerance, tolerance * scale, 'report');
    } else {
      assert.equal(dev.loss.value, host.loss.value);
      for (const [name, g] of hostGrads) assert.deepEqual(Array.from(devGrads.get(name)!), Array.from(g), name);
      // Everything derived from values: module statistics, hook logs, anomalies, attention.
      assert.deepEqual({ ...dev, backend: '', timings: null }, { ...host, backend: '', timings: null });
    }
    assert.ok(live.size > 0 && [...live].every((b) => b.released), 'the run released its device buffers');
  });
}
