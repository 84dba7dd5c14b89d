// @jax-js/jax on its WebAssembly device in Node: jit(valueAndGrad(loss)) for the training workloads.
// jax-js arrays are reference counted: passing an array to a function consumes one reference, `.ref`
// adds one (see its README); the code below follows those rules.
import { blockUntilReady, defaultDevice, init, jit, lax, nn, numpy as np, tree, valueAndGrad } from '@jax-js/jax';
import { MATMUL, MLP, gflops, gptData, matmulData, measure, mlpData, pkgVersion, report, timingOptions } from '../lib/harness.mjs';

const devices = await init('wasm');
if (!devices.includes('wasm')) throw new Error(`jax-js: no wasm device (${devices})`);
defaultDevice('wasm');
const opts = timingOptions();
const result = { engine: '@jax-js/jax', version: pkgVersion('@jax-js/jax'), backend: 'wasm device (single thread)', notes: [] };

// matmul: resident operands (created once) and fresh ones (uploaded from Float32Arrays each call).
{
  const { m, k, n } = MATMUL;
  const { a, b } = matmulData();
  const A = np.array(a).reshape([m, k]);
  const B = np.array(b).reshape([k, n]);
  const resident = await measure(async () => np.matmul(A.ref, B.ref).data(), opts);
  const fresh = await measure(async () => np.matmul(np.array(a).reshape([m, k]), np.array(b).reshape([k, n])).data(), opts);
  const flops = 2 * m * k * n;
  result.matmul = { ...fresh, gflops: gflops(flops, fresh.median), gflopsBest: gflops(flops, fresh.min), mode: 'fresh operands' };
  result.matmulResident = { ...resident, gflops: gflops(flops, resident.median), gflopsBest: gflops(flops, resident.min), mode: 'resident operands' };
}

/** Mean cross-entropy of logits [N, C] against one-hot targets (consumes both). */
const crossEntropy = (logits, onehot) => nn.logSoftmax(logits, -1).mul(onehot).sum(-1).mean().neg();

// MLP training step: jit(valueAndGrad(loss)) over the parameter list (forward + backward).
{
  const { layers, x, targets } = mlpData();
  const params = layers.map((l) => [np.array(l.weight).reshape([l.out, l.in]), np.array(l.bias)]);
  const X = np.array(x).reshape([MLP.batch, MLP.sizes[0]]);
  const onehot = nn.oneHot(np.array(targets, { dtype: np.int32 }), 10).astype(np.float32);
  const lossFn = (ps, xb, oh) => {
    let h = xb;
    ps.forEach(([w, b], i) => {
      h = np.matmul(h, w.transpose()).add(b);
      if (i < ps.length - 1) h = nn.sigmoid(h);
    });
    return crossEntropy(h, oh);
  };
  const step = jit(valueAndGrad(lossFn));
  let loss = 0;
  const run = async () => {
    const [value, grads] = step(tree.ref(params), X.ref, onehot.ref);
    await blockUntilReady(grads);
    loss = (await value.data())[0];
    tree.dispose(grads);
  };
  const t = await measure(run, opts);
  result.mlp = { ...t, kind: 'forward + backward (jit(valueAndGrad))', loss };
}

// GPT fixture: the model of test/fixture_models.ts written with jax-js ops, forward + backward.
{
  const g = gptData();
  const { n_embd: C, n_head: H, n_layer: L, vocab_size: V } = g.config;
  const [B, T] = g.idx.shape;
  const hd = C / H;
  const names = Object.keys(g.params);
  const params = names.map((name) => np.array(g.params[name].data).reshape(g.params[name].shape));
  // jit(valueAndGrad) of np.take fails in jax-js 0.1.25 ("routine primitive scatter input is not imm"):
  // the token embedding is one-hot @ table, as in the tfjs version.
  const idx = nn.oneHot(np.array(g.idx.data, { dtype: np.int32 }), V).astype(np.float32);
  result.notes.push('GPT: token embedding as one-hot @ table (jit of np.take\'s gradient fails in this jax-js version)');
  const onehot = nn.oneHot(np.array(g.targets.data, { dtype: np.int32 }), V).astype(np.float32);
  const maskData = new Float32Array(T * T);
  for (let r = 0; r < T; r++) for (let c = r + 1; c < T; c++) maskData[r * T + c] = -1e9;
  const mask = np.array(maskData).reshape([T, T]);

  const lossFn = (ps, ids, oh, msk) => {
    const P = Object.fromEntries(names.map((n, i) => [n, ps[i]]));
    const linear = (x, name, bias = true) => {
      const y = np.matmul(x, P[`${name}.weight`].transpose());
      return bias ? y.add(P[`${name}.bias`]) : y;
    };
    const layerNorm = (x, name) => {
      const mu = np.mean(x.ref, -1, { keepdims: true });
      const d = x.sub(mu);
      const variance = np.mean(d.ref.mul(d.ref), -1, { keepdims: true });
      return d.div(np.sqrt(variance.add(1e-5))).mul(P[`${name}.weight`]).add(P[`${name}.bias`]);
    };
    const heads = (t) => t.reshape([B, T, H, hd]).transpose([0, 2, 1, 3]);
    const pos = P['pos_emb.weight'].shape[0] === T ? P['pos_emb.weight'] : P['pos_emb.weight'].slice([0, T]);
    let x = np.matmul(ids, P['tok_emb.weight']).reshape([B, T, C]).add(pos).reshape([B * T, C]);
    for (let l = 0; l < L; l++) {
      const pre = `blocks.${l}`;
      const h = layerNorm(x.ref, `${pre}.ln1`);
      const q = heads(linear(h.ref, `${pre}.attn.q_proj`));
      const k = heads(linear(h.ref, `${pre}.attn.k_proj`));
      const v = heads(linear(h, `${pre}.attn.v_proj`));
      const scores = np.matmul(q, k.transpose([0, 1, 3, 2])).mul(1 / Math.sqrt(hd)).add(msk.ref);
      const y = np.matmul(nn.softmax(scores, -1), v).transpose([0, 2, 1, 3]).reshape([B * T, C]);
      x = x.add(linear(y, `${pre}.attn.out_proj`));
      const m = linear(nn.gelu(linear(layerNorm(x.ref, `${pre}.ln2`), `${pre}.mlp.fc`), { approximate: false }), `${pre}.mlp.proj`);
      x = x.add(m);
    }
    msk.dispose();
    const logits = linear(layerNorm(x, 'ln_f'), 'lm_head', false);
    return crossEntropy(logits, oh);
  };
  const step = jit(valueAndGrad(lossFn));
  let loss = 0;
  const run = async () => {
    const [value, grads] = step(tree.ref(params), idx.ref, onehot.ref, mask.ref);
    await blockUntilReady(grads);
    loss = (await value.data())[0];
    tree.dispose(grads);
  };
  const t = await measure(run, opts);
  result.gpt = { ...t, kind: 'forward + backward (jit(valueAndGrad))', loss, lossError: Math.abs(loss - g.loss) / Math.abs(g.loss) };
}

report(result);
