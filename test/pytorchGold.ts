/**
 * Checks for torch 2.13 exports whose graph computes its own loss (test/gold/export_*.py write them with PyTorch's
 * float64 loss and gradients from the same float32 weights), and for the importer's typed errors.
 */
import assert from 'node:assert/strict';
import { backward, OnnxImportError, OnnxModel, Tensor } from '../engine';
import type { OnnxErrorCode } from '../engine/onnx/errors';
import { relativeError } from './metrics';

/** One input and what PyTorch computed from it. */
export interface GraphLossGold {
  x: number[];
  shape: number[];
  loss: number;
  gx: number[];
  /** Per parameter; a parameter PyTorch gave no gradient (a branch not taken) is absent or all zeros. */
  grads: Record<string, number[]>;
}

/**
 * A float64 run of `model` on the gold input: the loss to 1e-12 and dL/dx and every parameter's gradient to 1e-10
 * relative of PyTorch's; a parameter PyTorch gave zeros gets none (or zeros) here. The model's parameters are the
 * ones PyTorch names, or with `absentMeansNoGradient` (a branch not taken, which the gold may leave out) a
 * parameter missing from the gold must get no gradient.
 */
export function checkGraphLossGold(model: OnnxModel, gold: GraphLossGold, { absentMeansNoGradient = false } = {}): void {
  model.zeroGrad();
  const x = new Tensor(Float64Array.from(gold.x), gold.shape).setRequiresGrad(true);
  const r = model.run({ [model.inputs[0].name]: x });
  assert.equal(r.lossInfo.kind, 'graph');
  backward(r.loss!);
  assert.ok(Math.abs(r.loss!.data[0] - gold.loss) < 1e-12 * Math.abs(gold.loss), `loss ${r.loss!.data[0]} vs ${gold.loss}`);
  assert.ok(relativeError(x.grad!.data, gold.gx) < 1e-10, `dL/dx off by ${relativeError(x.grad!.data, gold.gx)}`);
  if (absentMeansNoGradient) assert.ok(Object.keys(gold.grads).every((k) => model.parameters.has(k)), `parameters ${[...model.parameters.keys()]} vs ${Object.keys(gold.grads)}`);
  else assert.deepEqual([...model.parameters.keys()].sort(), Object.keys(gold.grads).sort());
  for (const [param, p] of model.parameters) {
    const want = gold.grads[param];
    if (!want || want.every((v) => v === 0)) {
      assert.ok(!p.grad || p.grad.data.every((v) => v === 0), `${param}: PyTorch gives it no gradient, the engine did`);
      continue;
    }
    const err = relativeError(p.grad!.data, want);
    assert.ok(err < 1e-10, `dL/d${param} off by ${err}`);
  }
}

/** `fn` throws an OnnxImportError with `code` whose message matches every pattern; returns it. */
export function expectOnnxError(fn: () => unknown, code: OnnxErrorCode, ...patterns: RegExp[]): OnnxImportError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof OnnxImportError, `expected OnnxImportError, got ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
    assert.equal(e.code, code, `code ${e.code}: ${e.message}`);
    for (const p of patterns) assert.match(e.message, p);
    return e;
  }
  assert.fail(`expected OnnxImportError ${code}, nothing was thrown`);
}

/** Element-wise |a - e| <= tol * (1 + |e|). */
export function assertCloseTo(actual: ArrayLike<number>, expected: ArrayLike<number>, tol: number): void {
  assert.equal(actual.length, expected.length);
  for (let i = 0; i < expected.length; i++) assert.ok(Math.abs(actual[i] - expected[i]) <= tol * (1 + Math.abs(expected[i])), `element ${i}: ${actual[i]} vs ${expected[i]}`);
}
