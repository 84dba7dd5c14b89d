// @tensorflow/tfjs-core with @tensorflow/tfjs-backend-wasm (XNNPACK, SIMD build, 1 thread) in Node.
import { mkdirSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { buildSync } from 'esbuild';
import * as tf from '@tensorflow/tfjs-core';
import { setThreadsCount, setWasmPaths } from '@tensorflow/tfjs-backend-wasm';
import { MATMUL, MLP, ROOT, gflops, gptData, matmulData, measure, mlpData, pkgVersion, report, timingOptions } from '../lib/harness.mjs';

// tfjs-core's Node entry registers no gradients (the @tensorflow/tfjs umbrella package does that), and
// its ESM register_all_gradients uses extensionless imports Node cannot resolve: bundle it with esbuild.
// The gradient registry and the engine live on globalThis, so the bundle registers into the same engine.
const gradients = join(ROOT, 'build', 'bench', 'tfjs-gradients.cjs');
mkdirSync(join(ROOT, 'build', 'bench'), { recursive: true });
buildSync({ entryPoints: [join(ROOT, 'node_modules/@tensorflow/tfjs-core/dist/register_all_gradients.js')], bundle: true, platform: 'node', format: 'cjs', outfile: gradients, logLevel: 'error' });
createRequire(import.meta.url)(gradients);

setWasmPaths(join(ROOT, 'node_modules', '@tensorflow', 'tfjs-backend-wasm', 'dist') + '/');
setThreadsCount(1);
await tf.setBackend('wasm');
await tf.ready();
const opts = timingOptions();
const result = {
  engine: 'tfjs-backend-wasm',
  version: pkgVersion('@tensorflow/tfjs-backend-wasm'),
  backend: `${tf.getBackend()} (XNNPACK SIMD), threads=1`,
  notes: [],
};

// matmul. Resident: operands created once (XNNPACK then caches the packed right operand between calls);
// fresh: operands uploaded from Float32Arrays on every call (as ours and onnxruntime-web do).
{
  const { m, k, n } = MATMUL;
  const { a, b } = matmulData();
  const ta = tf.tensor2d(a, [m, k]);
  const tb = tf.tensor2d(b, [k, n]);
  const resident = await measure(() => {
    const c = tf.matMul(ta, tb);
    const d = c.dataSync();
    c.dispose();
    return d;
  }, opts);
  const fresh = await measure(() => {
    const x = tf.tensor2d(a, [m, k]);
    const y = tf.tensor2d(b, [k, n]);
    const c = tf.matMul(x, y);
    const d = c.dataSync();
    tf.dispose([x, y, c]);
    return d;
  }, opts);
  const flops = 2 * m * k * n;
  result.matmul = { ...fresh, gflops: gflops(flops, fresh.median), gflopsBest: gflops(flops, fresh.min), mode: 'fresh operands' };
  result.matmulResident = { ...resident, gflops: gflops(flops, resident.median), gflopsBest: gflops(flops, resident.min), mode: 'resident operands (packed B cached by XNNPACK)' };
}

/** Cross-entropy of logits [N, C] against one-hot targets, mean over N. */
const crossEntropy = (logits, onehot) => tf.neg(tf.mean(tf.sum(tf.mul(tf.logSoftmax(logits), onehot), 1)));

// MLP training step: tf.variableGrads of the loss (forward + backward, every parameter's gradient).
{
  const { layers, x, targets } = mlpData();
  const vars = layers.map((l, i) => ({
    w: tf.variable(tf.tensor2d(l.weight, [l.out, l.in]), true, `w${i}`),
    b: tf.variable(tf.tensor1d(l.bias), true, `b${i}`),
  }));
  const xt = tf.tensor2d(x, [MLP.batch, MLP.sizes[0]]);
  const onehot = tf.cast(tf.oneHot(tf.tensor1d(targets, 'int32'), 10), 'float32');
  const lossFn = () => {
    let h = xt;
    vars.forEach(({ w, b }, i) => {
      h = tf.add(tf.matMul(h, w, false, true), b);
      if (i < vars.length - 1) h = tf.sigmoid(h);
    });
    return crossEntropy(h, onehot);
  };
  let loss = 0;
  const step = () => {
    const { value, grads } = tf.variableGrads(lossFn);
    loss = value.dataSync()[0];
    for (const g of Object.values(grads)) g.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  };
  const t = await measure(step, opts);
  result.mlp = { ...t, kind: 'forward + backward (tf.variableGrads)', loss };
}

// GPT fixture: the model of test/fixture_models.ts written with tfjs ops, forward + backward.
{
  const g = gptData();
  const { n_embd: C, n_head: H, n_layer: L, vocab_size: V } = g.config;
  const [B, T] = g.idx.shape;
  const hd = C / H;
  const P = {};
  for (const [name, p] of Object.entries(g.params)) P[name] = tf.variable(tf.tensor(p.data, p.shape), true, name);
  // tfjs-backend-wasm lacks UnsortedSegmentSum (tf.gather's gradient): the token embedding is one-hot @ table.
  const idxOneHot = tf.cast(tf.oneHot(tf.tensor1d(g.idx.data, 'int32'), V), 'float32');
  result.notes.push('GPT: token embedding as one-hot @ table (tfjs-backend-wasm has no UnsortedSegmentSum kernel for tf.gather\'s gradient)');
  const onehot = tf.cast(tf.oneHot(tf.tensor1d(g.targets.data, 'int32'), V), 'float32');
  const maskData = new Float32Array(T * T);
  for (let r = 0; r < T; r++) for (let c = r + 1; c < T; c++) maskData[r * T + c] = -1e9;
  const mask = tf.tensor2d(maskData, [T, T]);
  const linear = (x, name, bias = true) => {
    const y = tf.matMul(x, P[`${name}.weight`], false, true);
    return bias ? tf.add(y, P[`${name}.bias`]) : y;
  };
  const layerNorm = (x, name) => {
    const { mean, variance } = tf.moments(x, -1, true);
    return tf.add(tf.mul(tf.div(tf.sub(x, mean), tf.sqrt(tf.add(variance, 1e-5))), P[`${name}.weight`]), P[`${name}.bias`]);
  };
  const gelu = (x) => tf.mul(tf.mul(x, 0.5), tf.add(1, tf.erf(tf.mul(x, Math.SQRT1_2))));
  const heads = (t) => tf.transpose(tf.reshape(t, [B, T, H, hd]), [0, 2, 1, 3]);
  const lossFn = () => {
    const pos = T === P['pos_emb.weight'].shape[0] ? P['pos_emb.weight'] : tf.slice(P['pos_emb.weight'], [0, 0], [T, C]);
    let x = tf.reshape(tf.add(tf.reshape(tf.matMul(idxOneHot, P['tok_emb.weight']), [B, T, C]), pos), [B * T, C]);
    for (let l = 0; l < L; l++) {
      const pre = `blocks.${l}`;
      const h = layerNorm(x, `${pre}.ln1`);
      const q = heads(linear(h, `${pre}.attn.q_proj`));
      const k = heads(linear(h, `${pre}.attn.k_proj`));
      const v = heads(linear(h, `${pre}.attn.v_proj`));
      const scores = tf.add(tf.mul(tf.matMul(q, k, false, true), 1 / Math.sqrt(hd)), mask);
      const y = tf.reshape(tf.transpose(tf.matMul(tf.softmax(scores), v), [0, 2, 1, 3]), [B * T, C]);
      x = tf.add(x, linear(y, `${pre}.attn.out_proj`));
      x = tf.add(x, linear(gelu(linear(layerNorm(x, `${pre}.ln2`), `${pre}.mlp.fc`)), `${pre}.mlp.proj`));
    }
    const logits = linear(layerNorm(x, 'ln_f'), 'lm_head', false);
    return crossEntropy(logits, onehot);
  };
  let loss = 0;
  const step = () => {
    const { value, grads } = tf.variableGrads(lossFn);
    loss = value.dataSync()[0];
    for (const gr of Object.values(grads)) gr.dataSync();
    tf.dispose([value, ...Object.values(grads)]);
  };
  const t = await measure(step, opts);
  result.gpt = { ...t, kind: 'forward + backward (tf.variableGrads)', loss, lossError: Math.abs(loss - g.loss) / Math.abs(g.loss) };
}

report(result);
