/**
 * The gold fixture models of test/gold/models.py, written with engine ops, reading parameters by
 * their PyTorch state_dict names. Each returns the loss plus the tensors tests inspect.
 */
import * as E from '../engine';
import { Tensor, tensorFrom } from '../engine';
import { FixtureTensor, fixtureTensor, readJson } from './helpers';

export interface ModelFixture {
  name: string;
  config: Record<string, number>;
  params: Record<string, FixtureTensor>;
  trainable: string[];
  buffers: Record<string, FixtureTensor>;
  inputs: Record<string, FixtureTensor>;
  outputs: Record<string, FixtureTensor>;
  loss: number;
  grads: Record<string, FixtureTensor>;
  buffers_after: Record<string, FixtureTensor>;
  extras: Record<string, FixtureTensor>;
}

export function loadModelFixture(name: string): ModelFixture {
  return readJson<ModelFixture>('test', 'fixtures', 'models', `${name}.json`);
}

export type Dict = Record<string, Tensor>;

export interface Loaded {
  params: Dict;
  buffers: Dict;
  inputs: Dict;
}

export function loadTensors(f: ModelFixture, dtype: 'float32' | 'float64'): Loaded {
  const map = (src: Record<string, FixtureTensor>, grad: (n: string) => boolean) =>
    Object.fromEntries(Object.entries(src).map(([n, t]) => {
      const tensor = fixtureTensor(t, dtype, grad(n));
      tensor.name = n;
      return [n, tensor];
    }));
  return {
    params: map(f.params, (n) => f.trainable.includes(n)),
    buffers: map(f.buffers, () => false),
    inputs: map(f.inputs, () => false),
  };
}

export interface ModelRun {
  loss: Tensor;
  logits: Tensor;
  /** Tensors with retained gradients, by fixture name (gpt: attn.{l}.P and attn.{l}.S). */
  retained: Dict;
}

const linear = (p: Dict, name: string, x: Tensor) => E.linear(x, p[`${name}.weight`], p[`${name}.bias`] ?? null);
const layerNorm = (p: Dict, name: string, x: Tensor) =>
  E.layerNorm(x, [x.shape[x.rank - 1]], p[`${name}.weight`], p[`${name}.bias`], 1e-5);

export function mlpSigmoid({ params: p, inputs }: Loaded): ModelRun {
  let x = inputs.x;
  for (let i = 0; i < 10; i++) {
    x = linear(p, `layers.${i}`, x);
    if (i < 9) x = E.sigmoid(x);
  }
  return { logits: x, loss: E.crossEntropy(x, inputs.targets), retained: {} };
}

export function mlpResidual({ params: p, inputs }: Loaded): ModelRun {
  let x = linear(p, 'inp', inputs.x);
  for (let i = 0; i < 8; i++) x = E.add(x, E.relu(linear(p, `blocks.${i}.fc`, layerNorm(p, `blocks.${i}.ln`, x))));
  const logits = linear(p, 'head', layerNorm(p, 'ln_f', x));
  return { logits, loss: E.crossEntropy(logits, inputs.targets), retained: {} };
}

export function cnn({ params: p, buffers: b, inputs }: Loaded): ModelRun {
  const bn = (name: string, x: Tensor) =>
    E.batchNorm(x, p[`${name}.weight`], p[`${name}.bias`], b[`${name}.running_mean`], b[`${name}.running_var`], { training: true, momentum: 0.1, eps: 1e-5 });
  const conv = (name: string, x: Tensor) => E.conv2d(x, p[`${name}.weight`], p[`${name}.bias`], { padding: 1 });
  let x = E.relu(bn('bn1', conv('conv1', inputs.x)));
  x = E.maxPool2d(x, { kernel: 2 });
  x = E.relu(bn('bn2', conv('conv2', x)));
  const logits = linear(p, 'fc', E.flatten(E.globalAvgPool(x), 1));
  return { logits, loss: E.crossEntropy(logits, inputs.targets), retained: {} };
}

export function gpt({ params: p, inputs }: Loaded, config: Record<string, number>): ModelRun {
  const [B, T] = inputs.idx.shape;
  const C = config.n_embd;
  const H = config.n_head;
  const hd = C / H;
  const retained: Dict = {};
  const positions = tensorFrom(Array.from({ length: T }, (_, i) => i), [T], 'int32');
  let x = E.add(E.embedding(p['tok_emb.weight'], inputs.idx), E.embedding(p['pos_emb.weight'], positions));
  const heads = (t: Tensor) => E.transpose(E.reshape(t, [B, T, H, hd]), 1, 2);
  const causal = E.causalMask(T);
  for (let l = 0; l < config.n_layer; l++) {
    const pre = `blocks.${l}`;
    const h = layerNorm(p, `${pre}.ln1`, x);
    const q = heads(linear(p, `${pre}.attn.q_proj`, h));
    const k = heads(linear(p, `${pre}.attn.k_proj`, h));
    const v = heads(linear(p, `${pre}.attn.v_proj`, h));
    const scores = E.mulScalar(E.matmul(q, E.transpose(k, -2, -1)), 1 / Math.sqrt(hd));
    const S = E.where(causal, scores, -Infinity).retainGrad();
    const P = E.softmax(S, -1).retainGrad();
    retained[`attn.${l}.S`] = S;
    retained[`attn.${l}.P`] = P;
    const y = E.reshape(E.transpose(E.matmul(P, v), 1, 2), [B, T, C]);
    x = E.add(x, linear(p, `${pre}.attn.out_proj`, y));
    const m = linear(p, `${pre}.mlp.proj`, E.gelu(linear(p, `${pre}.mlp.fc`, layerNorm(p, `${pre}.ln2`, x))));
    x = E.add(x, m);
  }
  const logits = E.linear(layerNorm(p, 'ln_f', x), p['lm_head.weight']);
  const loss = E.crossEntropy(E.reshape(logits, [-1, config.vocab_size]), E.reshape(inputs.targets, [-1]));
  return { logits, loss, retained };
}

export function lora({ params: p, inputs }: Loaded, config: Record<string, number>): ModelRun {
  const scale = (config.alpha ?? 8) / (config.r ?? 4);
  const layer = (name: string, x: Tensor) => {
    const delta = E.matmul(E.matmul(x, E.transpose(p[`${name}.lora_A`])), E.transpose(p[`${name}.lora_B`]));
    return E.add(linear(p, `${name}.base`, x), E.mulScalar(delta, scale));
  };
  const logits = layer('l2', E.relu(layer('l1', inputs.x)));
  return { logits, loss: E.mseLoss(logits, inputs.target), retained: {} };
}

export const FIXTURE_MODELS: Record<string, (l: Loaded, config: Record<string, number>) => ModelRun> = {
  mlp_sigmoid: mlpSigmoid,
  mlp_residual: mlpResidual,
  cnn,
  gpt,
  lora,
};
