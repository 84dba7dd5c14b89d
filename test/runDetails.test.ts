/** The panel's memory estimate and load warnings in words (webview/runDetails.ts). */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { memoryLine, warningLines } from '../webview/runDetails';

const MB = 2 ** 20;

test('memory estimate: total against the budget, the parts largest first, near-budget above 80%', () => {
  const line = memoryLine({ peak: 1700 * MB, parameters: 500 * MB, gradients: 500 * MB, activations: 600 * MB, inputs: 0, backward: 60 * MB, workspace: 40 * MB, budget: 2048 * MB, complete: true })!;
  assert.equal(line.headline, 'Memory estimate 1.66 GB of the 2.00 GB budget (83%)');
  assert.equal(line.parts, 'saved activations 600 MB · parameters 500 MB · gradients 500 MB · backward 60.0 MB · workspace 40.0 MB');
  assert.equal(line.nearBudget, true);
  assert.match(line.title, /gradientLens\.run\.memoryBudgetMB/);
  assert.match(line.title, /upper bound/);
});

test('memory estimate: no budget, an approximated dry run, a report of an older version', () => {
  const line = memoryLine({ peak: 3 * MB, parameters: MB, gradients: MB, activations: MB, budget: null, complete: false })!;
  assert.equal(line.headline, 'Memory estimate 3.00 MB (partly approximated), no budget');
  assert.equal(line.parts, 'parameters 1.00 MB · gradients 1.00 MB · saved activations 1.00 MB');
  assert.equal(line.nearBudget, false);
  assert.equal(memoryLine({ peak: 10 * MB, parameters: 0, gradients: 0, activations: 10 * MB, budget: 100 * MB })!.headline, 'Memory estimate 10.0 MB of the 100 MB budget (10%)');
  assert.equal(memoryLine(undefined), null);
});

test('load warnings: each once with a count, capped with the number left out', () => {
  assert.deepEqual(warningLines(undefined), []);
  assert.deepEqual(warningLines(['a', 'b', 'a', 'a']), ['a (3 times)', 'b']);
  const many = Array.from({ length: 11 }, (_, i) => `w${i}`);
  assert.deepEqual(warningLines(many, 8), [...many.slice(0, 8), '… and 3 more']);
});
