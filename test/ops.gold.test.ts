/**
 * Every op against PyTorch: forward values and input gradients for the cases in
 * test/fixtures/ops.json, in float64 (tight) and float32 (within 1e-4 relative).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { backward, Tensor } from '../engine';
import { decodeValues, fixtureTensor, relativeError } from './helpers';
import { asList, caseInputs, loadOpCases, runOp } from './op_cases';

const TOLERANCE = { float64: 1e-9, float32: 1e-4 } as const;

for (const dtype of ['float64', 'float32'] as const) {
  describe(`ops match PyTorch (${dtype})`, () => {
    for (const c of loadOpCases()) {
      test(c.name, () => {
        const inputs = caseInputs(c, dtype);
        const outputs = asList(runOp(c, inputs));
        assert.equal(outputs.length, c.outputs.length, 'number of outputs');
        outputs.forEach((out, j) => {
          assert.deepEqual(out.shape, c.outputs[j].shape, `output ${j} shape`);
          const err = relativeError(out.data, decodeValues(c.outputs[j]));
          assert.ok(err <= TOLERANCE[dtype], `output ${j}: relative error ${err.toExponential(2)}`);
        });
        outputs.forEach((out, j) => {
          if (out.requiresGrad) backward(out, fixtureTensor(c.upstream[j], dtype));
        });
        c.grads.forEach((gold, i) => {
          if (!gold) return;
          const grad = inputs[i].grad as Tensor | null;
          assert.ok(grad, `input ${i} has no gradient`);
          assert.deepEqual(grad.shape, gold.shape, `grad ${i} shape`);
          const err = relativeError(grad.data, decodeValues(gold));
          assert.ok(err <= TOLERANCE[dtype], `grad of input ${i}: relative error ${err.toExponential(2)}`);
        });
        for (const [name, gold] of Object.entries(c.extra ?? {})) {
          const index = name === 'running_mean' ? 3 : 4;
          const err = relativeError(inputs[index].data, decodeValues(gold));
          assert.ok(err <= TOLERANCE[dtype], `${name} after the call: relative error ${err.toExponential(2)}`);
        }
      });
    }
  });
}

test('the gold file covers every op the engine core promises', () => {
  const ops = new Set(loadOpCases().map((c) => c.op));
  const promised = ['add', 'sub', 'mul', 'div', 'neg', 'pow', 'exp', 'log', 'sqrt', 'abs', 'tanh', 'sigmoid', 'relu',
    'leaky_relu', 'gelu', 'erf', 'matmul', 'gemm', 'transpose', 'permute', 'reshape', 'squeeze', 'unsqueeze', 'slice',
    'concat', 'split', 'gather', 'where', 'expand', 'softmax', 'log_softmax', 'layer_norm', 'rms_norm', 'batch_norm',
    'conv2d', 'max_pool2d', 'avg_pool2d', 'global_avg_pool', 'sum', 'mean', 'max', 'cross_entropy', 'mse_loss'];
  assert.deepEqual(promised.filter((op) => !ops.has(op)), []);
});
