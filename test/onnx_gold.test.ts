/**
 * Gradients through imported ONNX models against PyTorch: the fixture models of test/gold/models.py,
 * exported by test/gold/export_onnx.py (legacy exporter, opsets 13/14/17, training mode, no constant
 * folding; one rewritten with dynamo-style metadata) with the parameter values of the gold fixtures
 * (test/fixtures/models/<name>.json), are loaded, run and differentiated by the engine; loss, logits,
 * every trainable parameter's gradient, BatchNorm running statistics and the GPT's attention
 * probabilities P, dL/dP and dL/dS are compared with PyTorch's float64 values.
 *
 * The exported parameters are float32 (as real exports are), so even a float64 run differs from the
 * float64 gold values by the float32 rounding of the parameters (~1e-7 relative).
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backward, loadOnnx, LossSpec, OnnxModel, OnnxRunResult, Tensor } from '../engine';
import { decodeValues, fixtureTensor, relativeError, repoRoot } from './helpers';
import { loadModelFixture } from './fixture_models';

const FIXTURES = path.join(repoRoot, 'test', 'fixtures', 'onnx');
const TOLERANCE = { float32: 1e-4, float64: 1e-5 } as const;

interface ManifestEntry {
  file: string;
  gold: string;
  opset: number;
  lossInGraph: boolean;
  inputs: string[];
  exporter: string;
}

const manifest = JSON.parse(fs.readFileSync(path.join(FIXTURES, 'manifest.json'), 'utf8')) as { models: ManifestEntry[] };

function norm(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i] * values[i];
  return Math.sqrt(s);
}

function load(file: string, dtype: 'float32' | 'float64'): OnnxModel {
  return loadOnnx(new Uint8Array(fs.readFileSync(path.join(FIXTURES, file))), { dtype });
}

/** Runs an exported fixture on the gold inputs with the gold loss; returns the run after backward. */
function runGold(entry: ManifestEntry, model: OnnxModel, dtype: 'float32' | 'float64', extra: { retainGrad?: string[] } = {}): OnnxRunResult {
  const f = loadModelFixture(entry.gold);
  const names = Object.keys(f.inputs); // [x | idx, targets | target]
  const feeds: Record<string, Tensor> = {};
  for (const name of entry.inputs) feeds[name] = fixtureTensor(f.inputs[name], dtype);
  let loss: LossSpec = 'auto';
  if (!entry.lossInGraph) {
    const target = fixtureTensor(f.inputs[names[1]], dtype);
    loss = entry.gold === 'lora' ? { kind: 'mse', target } : { kind: 'crossEntropy', targets: target };
  }
  const run = model.run(feeds, { loss, updateBuffers: true, retainGrad: extra.retainGrad });
  assert.ok(run.loss, 'no loss');
  backward(run.loss);
  return run;
}

for (const dtype of ['float32', 'float64'] as const) {
  describe(`imported ONNX fixtures match PyTorch gradients (${dtype})`, () => {
    for (const entry of manifest.models) {
      test(`${entry.file} (${entry.exporter}, opset ${entry.opset}${entry.lossInGraph ? ', loss in graph' : ''})`, (t) => {
        const f = loadModelFixture(entry.gold);
        const model = load(entry.file, dtype);
        assert.equal(model.opsetVersion, entry.opset);
        const run = runGold(entry, model, dtype);
        assert.equal(run.lossInfo.kind, entry.lossInGraph ? 'graph' : entry.gold === 'lora' ? 'mse' : 'crossEntropy');
        const lossErr = Math.abs(run.loss!.item() - f.loss) / Math.abs(f.loss);
        assert.ok(lossErr <= TOLERANCE[dtype], `loss ${run.loss!.item()} vs ${f.loss}`);
        const logitsErr = relativeError(run.outputs.get('logits')!.data, decodeValues(f.outputs.logits));
        assert.ok(logitsErr <= TOLERANCE[dtype], `logits relative error ${logitsErr.toExponential(2)}`);

        // Per-parameter gradients. PyTorch-exact zeros (a conv bias before train-mode batch norm,
        // the attention key bias) have no meaningful relative error: they must come out below
        // rounding noise relative to the model's largest gradient instead.
        const largest = Math.max(...f.trainable.map((n) => norm(decodeValues(f.grads[n]))));
        const report: string[] = [];
        let worst = 0;
        for (const name of f.trainable) {
          const p = model.parameters.get(name);
          assert.ok(p, `${name} is not a trainable parameter of the import (parameters: ${[...model.parameters.keys()].join(', ')})`);
          assert.ok(p.grad, `${name} got no gradient`);
          const gold = decodeValues(f.grads[name]);
          if (norm(gold) < 1e-12 * largest) {
            const ours = norm(p.grad.data);
            assert.ok(ours <= (dtype === 'float32' ? 1e-5 : 1e-10) * largest, `${name}: PyTorch's gradient is ~0 but ours has norm ${ours.toExponential(2)}`);
            report.push(`${name}: ~0 (ours ${ours.toExponential(1)})`);
            continue;
          }
          const err = relativeError(p.grad.data, gold);
          worst = Math.max(worst, err);
          assert.ok(err <= TOLERANCE[dtype], `${name}: relative error ${err.toExponential(2)} (gold norm ${norm(gold).toExponential(2)})`);
          report.push(`${name}: ${err.toExponential(1)}`);
        }
        for (const [buffer, gold] of Object.entries(f.buffers_after)) {
          if (gold.dtype !== 'float64') continue; // num_batches_tracked is not part of the ONNX graph
          const ours = model.buffers.get(buffer);
          assert.ok(ours, `buffer ${buffer} missing`);
          const err = relativeError(ours.data, decodeValues(gold));
          assert.ok(err <= TOLERANCE[dtype], `${buffer} after the step: relative error ${err.toExponential(2)}`);
          assert.ok(run.bufferUpdates.has(buffer), `${buffer} not reported in bufferUpdates`);
          report.push(`${buffer} (after): ${err.toExponential(1)}`);
        }
        t.diagnostic(`loss ${lossErr.toExponential(1)}, logits ${logitsErr.toExponential(1)}, worst gradient ${worst.toExponential(1)}`);
        t.diagnostic(report.join('; '));
      });
    }
  });
}

describe('GPT attention internals through the import', () => {
  for (const file of ['gpt_op13_loss.onnx', 'gpt_dynamo_op17.onnx']) {
    test(`${file}: P, dL/dP and dL/dS per layer, found by module path`, (t) => {
      const entry = manifest.models.find((m) => m.file === file)!;
      const f = loadModelFixture('gpt');
      const model = load(file, 'float32');
      // Softmax nodes of each attention module, by module path (node names carry no path in the
      // dynamo-style export): P is the Softmax output, S its (masked, scaled) input.
      const softmax = (l: number) => model.liveNodes.find((n) => n.opType === 'Softmax' && n.modulePath === `blocks.${l}.attn`);
      const names = [0, 1].flatMap((l) => [softmax(l)!.inputs[0], softmax(l)!.outputs[0]]);
      const run = runGold(entry, model, 'float32', { retainGrad: names });
      for (const l of [0, 1]) {
        const node = softmax(l);
        assert.ok(node, `no Softmax in blocks.${l}.attn`);
        const P = run.tensorsByName.get(node.outputs[0])!;
        const S = run.tensorsByName.get(node.inputs[0])!;
        assert.equal(P.modulePath, `blocks.${l}.attn`);
        assert.equal(P.node!.name, node.name);
        const errP = relativeError(P.tensor.data, decodeValues(f.extras[`attn.${l}.P`]));
        const errDP = relativeError(P.tensor.grad!.data, decodeValues(f.extras[`attn.${l}.dP`]));
        const errDS = relativeError(S.tensor.grad!.data, decodeValues(f.extras[`attn.${l}.dS`]));
        assert.ok(errP <= 1e-5, `layer ${l} P: ${errP}`);
        assert.ok(errDP <= 1e-4, `layer ${l} dP: ${errDP}`);
        assert.ok(errDS <= 1e-4, `layer ${l} dS: ${errDS}`);
        t.diagnostic(`layer ${l}: P ${errP.toExponential(1)}, dP ${errDP.toExponential(1)}, dS ${errDS.toExponential(1)}`);
      }
    });
  }
});

test('LoRA: frozen base weights are buffers, only the adapters train', () => {
  const frozen = ['l1.base.weight', 'l1.base.bias', 'l2.base.weight', 'l2.base.bias'];
  const model = loadOnnx(new Uint8Array(fs.readFileSync(path.join(FIXTURES, 'lora_op14_loss.onnx'))), { frozen });
  assert.deepEqual([...model.parameters.keys()].sort(), ['l1.lora_A', 'l1.lora_B', 'l2.lora_A', 'l2.lora_B']);
  for (const name of frozen) {
    assert.ok(model.buffers.has(name));
    assert.match(model.initializers.find((i) => i.name === name)!.reason, /frozen/);
  }
  const entry = manifest.models.find((m) => m.file === 'lora_op14_loss.onnx')!;
  runGold(entry, model, 'float32');
  const f = loadModelFixture('lora');
  for (const name of f.trainable) {
    assert.ok(relativeError(model.parameters.get(name)!.grad!.data, decodeValues(f.grads[name])) <= 1e-4, name);
  }
  for (const name of frozen) assert.equal(model.buffers.get(name)!.grad, null);
});
