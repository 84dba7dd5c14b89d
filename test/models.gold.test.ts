/**
 * The fixture models of test/gold/models.py, built from engine ops, against PyTorch: loss, logits,
 * every trainable parameter's gradient, batch-norm running stats and, for the GPT, the attention
 * probabilities P, dL/dP and dL/dS of every layer and head.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import { backward, slice, Tensor } from '../engine';
import { decodeValues, fixtureTensor, relativeError } from './helpers';
import { FIXTURE_MODELS, loadModelFixture, loadTensors, ModelFixture } from './fixture_models';

const TOLERANCE = { float64: 1e-9, float32: 1e-4 } as const;

function norm(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i] * values[i];
  return Math.sqrt(s);
}

/**
 * Per-parameter check. A gradient that PyTorch computes as exactly zero in exact arithmetic (e.g. a
 * conv bias right before train-mode batch norm: gold ~1e-17) has no meaningful relative error; such a
 * parameter (gold norm below 1e-12 of the model's largest gradient norm) must instead come out below
 * float rounding noise (1e-5 of that largest norm, float32) in ours.
 */
function checkGrads(f: ModelFixture, params: Record<string, Tensor>, dtype: 'float32' | 'float64') {
  const largest = Math.max(...f.trainable.map((n) => norm(decodeValues(f.grads[n]))));
  const report: string[] = [];
  for (const name of f.trainable) {
    const gold = decodeValues(f.grads[name]);
    const grad = params[name].grad;
    assert.ok(grad, `${name} got no gradient`);
    if (norm(gold) < 1e-12 * largest) {
      const ours = norm(grad.data);
      assert.ok(ours <= (dtype === 'float32' ? 1e-5 : 1e-12) * largest, `${name}: PyTorch's gradient is ~0 but ours has norm ${ours.toExponential(2)}`);
      report.push(`${name}: zero (ours ${ours.toExponential(1)})`);
      continue;
    }
    const err = relativeError(grad.data, gold);
    assert.ok(err <= TOLERANCE[dtype], `${name}: relative error ${err.toExponential(2)} (gold norm ${norm(gold).toExponential(2)})`);
    report.push(`${name}: ${err.toExponential(1)}`);
  }
  return report;
}

for (const dtype of ['float64', 'float32'] as const) {
  describe(`fixture models match PyTorch (${dtype})`, () => {
    for (const [name, build] of Object.entries(FIXTURE_MODELS)) {
      test(name, (t) => {
        const f = loadModelFixture(name);
        const loaded = loadTensors(f, dtype);
        const run = build(loaded, f.config);
        const lossErr = Math.abs(run.loss.item() - f.loss) / Math.abs(f.loss);
        assert.ok(lossErr <= TOLERANCE[dtype], `loss ${run.loss.item()} vs ${f.loss}`);
        const logitsErr = relativeError(run.logits.data, decodeValues(f.outputs.logits));
        assert.ok(logitsErr <= TOLERANCE[dtype], `logits relative error ${logitsErr.toExponential(2)}`);
        backward(run.loss);
        const report = checkGrads(f, loaded.params, dtype);
        for (const [buffer, gold] of Object.entries(f.buffers_after)) {
          if (gold.dtype !== 'float64') continue; // num_batches_tracked is not modelled
          const err = relativeError(loaded.buffers[buffer].data, decodeValues(gold));
          assert.ok(err <= TOLERANCE[dtype], `${buffer} after the step: relative error ${err.toExponential(2)}`);
        }
        // Frozen parameters (LoRA base) must not receive gradients.
        for (const p of Object.keys(f.params).filter((n) => !f.trainable.includes(n))) {
          assert.equal(loaded.params[p].grad, null, `${p} is frozen but got a gradient`);
        }
        t.diagnostic(`loss ${run.loss.item()}, per-parameter relative errors: ${report.join('; ')}`);
      });
    }

    test('gpt: attention P, dL/dP and dL/dS per layer and head', () => {
      const f = loadModelFixture('gpt');
      const run = FIXTURE_MODELS.gpt(loadTensors(f, dtype), f.config);
      backward(run.loss);
      const heads = f.config.n_head;
      for (let l = 0; l < f.config.n_layer; l++) {
        const S = run.retained[`attn.${l}.S`];
        const P = run.retained[`attn.${l}.P`];
        const checks: [string, Tensor][] = [[`attn.${l}.P`, P], [`attn.${l}.dP`, P.grad!], [`attn.${l}.dS`, S.grad!]];
        for (const [key, ours] of checks) {
          const goldTensor = fixtureTensor(f.extras[key], 'float64');
          for (let h = 0; h < heads; h++) {
            const sel = { starts: [h], ends: [h + 1], axes: [1] };
            const err = relativeError(slice(ours, sel).data, slice(goldTensor, sel).data);
            assert.ok(err <= TOLERANCE[dtype], `${key} head ${h}: relative error ${err.toExponential(2)}`);
          }
        }
      }
    });

    test('gpt: key-projection bias gradient is zero (softmax shift invariance)', () => {
      const f = loadModelFixture('gpt');
      const loaded = loadTensors(f, dtype);
      backward(FIXTURE_MODELS.gpt(loaded, f.config).loss);
      for (let l = 0; l < f.config.n_layer; l++) {
        const kb = norm(loaded.params[`blocks.${l}.attn.k_proj.bias`].grad!.data);
        const qb = norm(loaded.params[`blocks.${l}.attn.q_proj.bias`].grad!.data);
        const kw = norm(loaded.params[`blocks.${l}.attn.k_proj.weight`].grad!.data);
        // Every key gets the same bias, which shifts each score row by a constant: softmax ignores it.
        assert.ok(qb > 1e-6, `query bias gradient should be clearly nonzero, got ${qb}`);
        assert.ok(kb <= (dtype === 'float32' ? 1e-6 : 1e-15) * kw, `layer ${l}: key bias gradient norm ${kb.toExponential(2)} vs key weight ${kw.toExponential(2)}`);
      }
    });
  });
}
