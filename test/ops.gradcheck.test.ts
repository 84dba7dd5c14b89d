/**
 * Every op's VJP against float64 central finite differences (engine/gradcheck.ts): each gold case's
 * inputs, plus cases PyTorch gold does not cover (negative-step slices, masked softmax, helpers).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as E from '../engine';
import { gradcheck, Rng, Tensor, tensorFrom } from '../engine';
import { asList, caseInputs, loadOpCases, runOp } from './op_cases';

describe('gradcheck on every gold op case', () => {
  for (const c of loadOpCases()) {
    if (!c.inputs.some((t) => t.grad)) continue;
    test(c.name, () => {
      const inputs = caseInputs(c, 'float64');
      const result = gradcheck((...xs) => asList(runOp(c, xs)), inputs);
      assert.ok(result.ok, result.message);
    });
  }
});

function randn(shape: number[], seed: number, offset = 0): Tensor {
  const rng = new Rng(seed);
  const n = shape.reduce((a, b) => a * b, 1);
  return tensorFrom(Array.from({ length: n }, () => rng.normal() + offset), shape, 'float64', { requiresGrad: true });
}

const extra: [string, () => E.GradcheckResult][] = [
  ['slice with negative steps', () => gradcheck((x) => E.slice(x, { starts: [-1, 4], ends: [-100, 0], axes: [0, 1], steps: [-1, -2] }), [randn([3, 5], 1)])],
  ['softmax under a causal -inf mask', () => gradcheck((x) => E.softmax(E.where(E.causalMask(4), x, -Infinity), -1), [randn([2, 4, 4], 2)])],
  ['maximum', () => gradcheck((a, b) => E.maximum(a, b), [randn([3, 4], 3), randn([4], 4)])],
  ['rsqrt, square, scalar mul/add', () => gradcheck((x) => E.addScalar(E.mulScalar(E.square(E.rsqrt(x)), 3), 1), [randn([5], 5, 3)])],
  ['linear', () => gradcheck((x, w, b) => E.linear(x, w, b), [randn([2, 3, 4], 6), randn([5, 4], 7), randn([5], 8)])],
  ['flatten then matmul', () => gradcheck((x, w) => E.matmul(E.flatten(x, 1), w), [randn([2, 3, 2], 9), randn([6, 2], 10)])],
  ['embedding with repeated ids', () => gradcheck((w) => E.embedding(w, tensorFrom([1, 1, 0, 3], [2, 2], 'int32')), [randn([4, 3], 11)])],
  ['gather with negative indices', () => gradcheck((x) => E.gather(x, tensorFrom([-1, 0], [2], 'int32'), 1), [randn([2, 3], 12)])],
  ['split into equal parts', () => gradcheck((x) => E.split(x, 3, 1), [randn([2, 6], 13)])],
  ['composite: attention-like block', () =>
    gradcheck((q, k, v) => E.matmul(E.softmax(E.mulScalar(E.matmul(q, E.transpose(k)), 0.5), -1), v), [randn([3, 4], 14), randn([3, 4], 15), randn([3, 2], 16)])],
];

describe('gradcheck on cases beyond the gold file', () => {
  for (const [name, run] of extra) {
    test(name, () => {
      const result = run();
      assert.ok(result.ok, result.message);
    });
  }
});

test('gradcheck catches a wrong VJP', () => {
  // A deliberately wrong backward (factor 2 missing) must fail the check.
  const wrongSquare = (x: Tensor) => E.mul(x, x.detach().setRequiresGrad(false));
  const result = gradcheck(wrongSquare, [randn([4], 17)]);
  assert.equal(result.ok, false);
});
