/**
 * The ONNX node suite on a device backend (test/fakeDevice.ts: device-only float32 tensors, reference
 * kernels), as a WebGPU run executes it: float inputs that carry gradients are device-only, as values
 * computed by earlier ops are. Every case either runs all its float kernels on the device and matches, or
 * an op needs host values and says so (TensorOnDeviceError: a WebGPU run then repeats on the host backend,
 * webview/runWithFallback.ts). Never a wrong number. The WGSL kernels themselves are checked against the
 * reference in Chromium (npm run test:webgpu).
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedDir } from './helpers';
import { runNodeSuiteOnDevice } from './onnx_node_suite';
import { device } from './fakeDevice';

const NODE_DIR = sharedDir('onnx-backend-data', 'node');

/** Ops added for real architectures: each single-op case must run wholly on the device kernels. */
const DEVICE_OPS = [
  'Attention', 'RotaryEmbedding', 'Resize', 'Upsample', 'Conv', 'ConvTranspose', 'AveragePool', 'LpPool', 'LRN',
  'DepthToSpace', 'SpaceToDepth', 'Einsum', 'CumSum', 'CumProd', 'RMSNormalization', 'LpNormalization',
  'Sin', 'Cos', 'Tan', 'Asin', 'Acos', 'Atan', 'Sinh', 'Cosh', 'Asinh', 'Acosh', 'Atanh', 'DFT', 'STFT',
];

/**
 * Ops that read float values on the host (documented host paths): rounding casts, comparisons and masks on
 * floats, sorting (TopK), MaxPool's Indices output, Pow's 0^y mask, ReduceProd / ReduceLogSumExp, GridSample's
 * tap indices (from the grid's values), Mod's quotient.
 */
const HOST_VALUE_OPS = new Set([
  'Cast', 'CastLike', 'Ceil', 'Floor', 'Round', 'Sign', 'IsNaN', 'Equal', 'Less', 'Shrink', 'ThresholdedRelu', 'MaxPool', 'Pow',
  'ReduceLogSumExp', 'ReduceProd', 'TopK', 'GridSample', 'Mod',
]);
/**
 * Cases that need host values today: a ceiling that only moves down as host paths get kernels (it rose by 5
 * when control flow let the expanded Range cases (Ceil) and linear_attention_fp16 (CastLike) run at all).
 */
const MAX_HOST_VALUE_CASES = 243;

test('ONNX node suite on a device backend: no wrong number; the new ops run on device kernels', { skip: NODE_DIR ? false : 'no shared/onnx-backend-data/node' }, async (t) => {
  const results = await runNodeSuiteOnDevice(NODE_DIR!, device);
  const counts: Record<string, number> = {};
  for (const r of results) counts[r.status] = (counts[r.status] ?? 0) + 1;
  t.diagnostic(`${results.length} cases: ${Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(', ')}`);
  const bad = results.filter((r) => r.status === 'wrong' || r.status === 'crash');
  assert.deepEqual(bad.map((r) => `${r.name}: ${r.detail}`), []);
  const hostValues = results.filter((r) => r.status === 'host-values');
  for (const r of hostValues) {
    const op = r.detail.split(' ')[0];
    assert.ok(HOST_VALUE_OPS.has(op), `${r.name}: ${op} needs host values on a device: ${r.detail}`);
  }
  assert.ok(hostValues.length <= MAX_HOST_VALUE_CASES, `${hostValues.length} cases need host values, more than ${MAX_HOST_VALUE_CASES}`);
  for (const op of DEVICE_OPS) {
    const cases = results.filter((r) => r.ops.length === 1 && r.ops[0] === op && r.status !== 'unsupported');
    assert.ok(cases.length > 0, `no ${op} case ran`);
    for (const r of cases) {
      assert.equal(r.status, 'device', `${r.name}: ${r.detail}`);
      assert.equal(r.kernels.host, 0, `${r.name}: kernels ${JSON.stringify(r.kernels)}`);
    }
  }
  // Passes on the host are not lost on the device: every host pass is a device run or a host-values case.
  assert.ok((counts.device ?? 0) + hostValues.length >= 1543, `${counts.device} device + ${hostValues.length} host-values cases`);
});

const SIMPLE_DIR = sharedDir('onnx-backend-data', 'simple');

test('ONNX simple sequence models on a device backend: sequences hold device tensors, every kernel on the device', { skip: SIMPLE_DIR ? false : 'no shared/onnx-backend-data/simple' }, async () => {
  const results = await runNodeSuiteOnDevice(SIMPLE_DIR!, device, (name) => name.startsWith('test_sequence_model'));
  assert.equal(results.length, 8);
  for (const r of results) {
    assert.equal(r.status, 'device', `${r.name}: ${r.detail}`);
    assert.equal(r.kernels.host, 0, `${r.name}: kernels ${JSON.stringify(r.kernels)}`);
  }
});
