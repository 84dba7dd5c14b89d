/**
 * Attention capture on the exported GPT fixture equals PyTorch's retain_grad values: P, dL/dP and
 * dL/dS for every layer, head and sample, for the legacy and the dynamo-style export.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { findAttention, inspectOnnx, loadOnnx, tensorFrom } from '../engine';
import { decodeValues, relativeError, repoRoot } from './helpers';
import { loadModelFixture } from './fixture_models';

const onnx = (name: string) => new Uint8Array(fs.readFileSync(path.join(repoRoot, 'test', 'fixtures', 'onnx', name)));

for (const file of ['gpt_op13_loss.onnx', 'gpt_dynamo_op17.onnx']) {
  test(`${file}: P, dL/dP, dL/dS per layer, head and sample match PyTorch within 1e-4`, async () => {
    const gold = loadModelFixture('gpt');
    const idx = decodeValues(gold.inputs.idx);
    const targets = decodeValues(gold.inputs.targets);
    const model = loadOnnx(onnx(file));
    const feeds: Record<string, ArrayLike<number>> = { idx };
    if (model.inputs.some((i) => i.name === 'targets')) feeds.targets = targets;
    const [B, H, T] = [2, 4, 8];
    for (let b = 0; b < B; b++) {
      const report = await inspectOnnx(onnx(file), 'gpt', {
        feeds,
        attentionSample: b,
        // Without a loss in the graph, add the fixture's: cross-entropy of the logits against its targets.
        lossSpec: feeds.targets ? 'graph' : { kind: 'crossEntropy', targets: tensorFrom(targets, [2, 8], 'int32') },
      });
      assert.ok(Math.abs(report.loss.value - gold.loss) < 1e-5, `loss ${report.loss.value} vs gold ${gold.loss}`);
      assert.equal(report.attention!.length, 2, 'two attention layers');
      for (const cap of report.attention!) {
        assert.equal(cap.modulePath, `blocks.${cap.layer}.attn`);
        assert.deepEqual([cap.heads, cap.queries, cap.keys], [H, T, T]);
        for (const [key, ours] of [['P', cap.P], ['dP', cap.dP], ['dS', cap.dS]] as const) {
          const all = decodeValues(gold.extras[`attn.${cap.layer}.${key}`]) as Float64Array;
          for (let h = 0; h < H; h++) {
            const span = T * T;
            const goldHead = all.subarray((b * H + h) * span, (b * H + h + 1) * span);
            const err = relativeError(ours.subarray(h * span, (h + 1) * span), goldHead);
            assert.ok(err <= 1e-4, `layer ${cap.layer} head ${h} sample ${b} ${key}: relative error ${err.toExponential(2)}`);
          }
        }
        // Causal: weights above the diagonal are exactly zero, and so is dL/dS there.
        assert.equal(cap.P[1], 0);
        assert.equal(Math.abs(cap.dS[1]), 0);
        assert.ok(cap.summaries.every((s) => s.entropy >= 0 && s.maxWeight > 0 && s.maxWeight <= 1));
      }
    }
  });
}

test('attention sites are found in both exporters and in the tiny GPT example, with source lines', async () => {
  for (const file of ['gpt_op13_loss.onnx', 'gpt_dynamo_op17.onnx']) {
    const sites = findAttention(loadOnnx(onnx(file)).graph);
    assert.deepEqual(sites.map((s) => s.modulePath), ['blocks.0.attn', 'blocks.1.attn']);
  }
  const example = new Uint8Array(fs.readFileSync(path.join(repoRoot, 'examples', 'tiny_gpt.onnx')));
  const report = await inspectOnnx(example, 'tiny_gpt.onnx', { batch: 2, sequenceLength: 12 });
  assert.equal(report.attention!.length, 2);
  assert.deepEqual(report.attention![0].source, { file: 'tiny_gpt.py', line: report.attention![0].source!.line });
  assert.equal(report.tokens!.ids.length, 12);
  assert.equal(report.tokens!.labels!.length, 12, 'vocabulary from the model metadata');
  // No attention in an MLP.
  const mlp = loadOnnx(new Uint8Array(fs.readFileSync(path.join(repoRoot, 'examples', 'vanishing_mlp.onnx'))));
  assert.deepEqual(findAttention(mlp.graph), []);
});
