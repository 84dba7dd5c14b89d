// The wasm matmul kernel alone on the real models' shapes (what `profile-model.mjs --matmuls` lists), GFLOP/s per
// shape, for one or more kernel files side by side in one process (alternating blocks, best block per file), so a
// kernel change can be read against the build it replaces without the noise of separate runs.
//
//   node --experimental-wasm-relaxed-simd bench/matmul-shapes.mjs [--files=old.wasm,build/wasm/kernels-relaxed.wasm]
//        [--set=transformers|convnext|conv|attention|vitTiny|rows|short|stem|llama|square|all] [--rounds=5] [--check] [--copies=8]
// --copies=N rotates each call over N copies of both operands (different memory) so they come from L3 as in a model
// step, where a layer's weight and activations were last touched several MB of traffic ago (default 1: hot caches).
// --check compares every file's output with the first file's (max |difference| relative to the output's max |value|).
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ROOT, flag } from './lib/harness.mjs';

const require = createRequire(import.meta.url);
const { loadWasmBackendNode } = require(join(ROOT, 'build', 'engine', 'backend', 'wasm', 'node.js'));

// [batch, m, k, n, transA, transB]: the products of a training step of gpt2 / llama / t5 / vit / timm_vit_tiny
// (forward, dX = dY W, dW = X^T dY) and ConvNeXt-Tiny's MLP stages, as profile-model.mjs --matmuls lists them.
const SETS = {
  transformers: [
    [1, 34, 192, 768, 0, 1], [1, 34, 576, 192, 0, 0], [1, 768, 34, 192, 1, 0], [1, 192, 34, 768, 1, 0],
    [1, 34, 768, 192, 0, 1], [1, 34, 192, 576, 0, 1], [1, 576, 34, 192, 1, 0], [1, 34, 768, 192, 0, 0],
    [1, 34, 192, 768, 0, 0], [1, 34, 192, 192, 0, 1], [1, 192, 34, 192, 1, 0], [6, 17, 64, 17, 0, 0],
    [6, 17, 64, 17, 0, 1], [6, 17, 17, 64, 1, 0], [6, 17, 17, 64, 0, 0],
    [1, 64, 128, 512, 0, 1], [1, 512, 64, 128, 1, 0], [1, 64, 128, 512, 0, 0], [1, 64, 512, 128, 0, 0],
    [1, 64, 512, 128, 0, 1], [1, 128, 64, 384, 1, 0], [1, 64, 384, 128, 0, 1], [1, 64, 128, 128, 0, 1],
    [1, 64, 128, 128, 0, 0], [1, 128, 64, 128, 1, 0], [1, 64, 1000, 128, 0, 0], [1, 64, 128, 1000, 0, 1],
    [1, 1000, 64, 128, 1, 0], [1, 64, 128, 344, 0, 1], [1, 344, 64, 128, 1, 0], [1, 64, 344, 128, 0, 0],
    [8, 32, 32, 32, 0, 0], [8, 32, 32, 32, 0, 1], [8, 32, 32, 32, 1, 0],
    [1, 130, 512, 128, 0, 1], [1, 130, 128, 128, 0, 1], [1, 130, 512, 128, 0, 0], [1, 130, 128, 512, 0, 1],
    [1, 128, 130, 512, 1, 0], [1, 130, 128, 128, 0, 0], [1, 128, 130, 128, 1, 0], [8, 65, 32, 65, 0, 1],
    [8, 65, 65, 32, 1, 0],
  ],
  convnext: [
    [1, 32, 1536, 384, 0, 0], [1, 32, 1536, 384, 0, 1], [1, 1536, 32, 384, 1, 0], [1, 32, 384, 1536, 0, 1],
    [1, 32, 384, 1536, 0, 0], [1, 384, 32, 1536, 1, 0], [1, 8, 768, 3072, 0, 1], [1, 8, 3072, 768, 0, 0],
    [1, 768, 8, 3072, 1, 0], [1, 3072, 8, 768, 1, 0], [1, 8, 3072, 768, 0, 1], [1, 512, 384, 96, 0, 0],
  ],
  // ResNet-18 / ResNet-10t / EfficientNet convolutions on 2 images of 64 x 64 as conv.ts runs them: forward
  // W [O, C*9] x cols [C*9, N*L], input gradient W^T G (A read transposed), late stages n = N*L = 8 or 32.
  conv: [
    [1, 512, 4608, 8, 0, 0], [1, 4608, 512, 8, 1, 0], [1, 512, 2304, 8, 0, 0], [1, 2304, 512, 8, 1, 0],
    [1, 256, 2304, 32, 0, 0], [1, 2304, 256, 32, 1, 0], [1, 256, 1152, 32, 0, 0], [1, 512, 256, 8, 0, 0],
    [1, 1280, 320, 8, 0, 0], [1, 320, 1280, 8, 1, 0], [1, 1152, 192, 8, 0, 0], [1, 128, 1152, 128, 0, 0],
    [1, 1152, 128, 128, 1, 0], [1, 64, 576, 512, 0, 0], [1, 512, 8, 4608, 0, 1],
  ],
  attention: [
    [6, 17, 64, 17, 0, 0], [6, 17, 64, 17, 0, 1], [6, 17, 17, 64, 1, 0], [6, 17, 17, 64, 0, 0], [6, 64, 17, 17, 1, 0],
    [8, 32, 32, 32, 0, 0], [8, 32, 32, 32, 0, 1], [8, 32, 32, 32, 1, 0], [8, 65, 32, 65, 0, 1], [8, 65, 65, 32, 1, 0],
    [8, 65, 65, 32, 0, 0], [8, 32, 65, 65, 1, 0],
  ],
  vitTiny: [
    [1, 34, 192, 768, 0, 1], [1, 34, 576, 192, 0, 0], [1, 768, 34, 192, 1, 0], [1, 34, 768, 192, 0, 1], [1, 34, 768, 192, 0, 0],
    [1, 34, 192, 576, 0, 1],
  ],
  rows: [
    [1, 130, 512, 128, 0, 1], [1, 130, 128, 128, 0, 1], [1, 130, 512, 128, 0, 0], [1, 130, 128, 512, 0, 1],
    [1, 130, 128, 128, 0, 0], [1, 130, 128, 512, 0, 0], [1, 192, 576, 512, 0, 0], [1, 256, 1152, 128, 0, 0], [1, 300, 300, 300, 0, 1],
  ],
  short: [[1, 8, 768, 3072, 0, 1], [1, 8, 3072, 768, 0, 1], [1, 32, 1536, 384, 0, 1], [1, 32, 384, 1536, 0, 1], [1, 16, 768, 768, 0, 1]],
  // ResNet-10t's stem (24, 32, 64 channels at 32 x 32 on 2 images) and stage 1: forward, weight gradient (B = cols^T,
  // stored [n, k]), input gradient.
  stem: [
    [1, 24, 27, 2048, 0, 0], [1, 32, 216, 2048, 0, 0], [1, 64, 288, 2048, 0, 0], [1, 64, 576, 512, 0, 0],
    [1, 24, 2048, 27, 0, 1], [1, 32, 2048, 216, 0, 1], [1, 64, 2048, 288, 0, 1], [1, 64, 512, 576, 0, 1],
    [1, 216, 32, 2048, 1, 0], [1, 288, 64, 2048, 1, 0], [1, 576, 64, 512, 1, 0],
  ],
  llama: [[1, 64, 128, 344, 0, 1], [1, 64, 344, 128, 0, 0], [1, 344, 64, 128, 1, 0]],
  square: [[1, 512, 512, 512, 0, 0]],
};
const set = flag('set', 'all');
const shapes = set === 'all' ? [...SETS.transformers, ...SETS.convnext, ...SETS.conv, ...SETS.square] : SETS[set];
const files = flag('files', join(ROOT, 'build', 'wasm', 'kernels-relaxed.wasm')).split(',');
const rounds = Number(flag('rounds', '5'));
const check = process.argv.includes('--check');
const copies = Number(flag('copies', '1'));

const backends = [];
for (const f of files) backends.push(await loadWasmBackendNode(f));

function setUp(be, [batch, m, k, n, tA, tB]) {
  const K = be.k;
  const al = (x) => (x + 63) & ~63;
  const aBytes = al(batch * m * k * 4), bBytes = al(batch * k * n * 4);
  const a = al(K.heapBase()), b = a + copies * aBytes, c = b + copies * bBytes;
  const ao = c + al(batch * m * n * 4), bo = ao + al(batch * 4), work = bo + al(batch * 4);
  const end = work + K.matmulScratchBytes(batch, m, k, n);
  const mem = K.memory;
  if (end > mem.buffer.byteLength) mem.grow(Math.ceil((end - mem.buffer.byteLength) / 65536));
  let seed = 12345;
  const rnd = () => ((seed = (seed * 1103515245 + 12345) >>> 0) / 2 ** 32) * 2 - 1;
  const f = new Float32Array(mem.buffer);
  for (let i = 0; i < batch * m * k; i++) f[a / 4 + i] = rnd();
  for (let i = 0; i < batch * k * n; i++) f[b / 4 + i] = rnd();
  for (let q = 1; q < copies; q++) {
    f.copyWithin((a + q * aBytes) / 4, a / 4, a / 4 + batch * m * k);
    f.copyWithin((b + q * bBytes) / 4, b / 4, b / 4 + batch * k * n);
  }
  const i32 = new Int32Array(mem.buffer);
  for (let p = 0; p < batch; p++) {
    i32[ao / 4 + p] = p * m * k;
    i32[bo / 4 + p] = p * k * n;
  }
  let q = 0;
  const run = () => {
    K.matmul(a + q * aBytes, b + q * bBytes, c, batch, m, k, n, ao, bo, tA, tB, work);
    q = (q + 1) % copies;
  };
  return { run, out: () => new Float32Array(mem.buffer, c, batch * m * n).slice() };
}

/** Best per-call ms over `rounds` blocks of at least 20 ms each. */
function time(run, reps) {
  const t = performance.now();
  for (let i = 0; i < reps; i++) run();
  return (performance.now() - t) / reps;
}

// Let V8 tier every kernel file's code up before the first timed shape (otherwise the first row reads low).
for (const be of backends) {
  const { run } = setUp(be, [1, 128, 256, 128, 0, 0]);
  const t = performance.now();
  while (performance.now() - t < 300) run();
}

console.log(`| shape (batch x m x k x n) | ${files.map((f) => f.split('/').slice(-2).join('/')).join(' | ')} GFLOP/s |${check ? ' max rel diff |' : ''}`);
console.log(`|---|${files.map(() => '---|').join('')}${check ? '---|' : ''}`);
for (const shape of shapes) {
  const [batch, m, k, n, tA, tB] = shape;
  const flops = 2 * batch * m * k * n;
  const runs = backends.map((be) => setUp(be, shape));
  const reps = Math.max(1, Math.round((2e7 / flops) * Number(flag("ms", "10")))); // about --ms ms at 20 GFLOP/s
  for (const r of runs) time(r.run, Math.max(1, reps >> 2));
  const best = runs.map(() => Infinity);
  for (let round = 0; round < rounds; round++) runs.forEach((r, i) => (best[i] = Math.min(best[i], time(r.run, reps))));
  let diff = '';
  if (check) {
    const ref = runs[0].out();
    let scale = 0;
    for (const v of ref) scale = Math.max(scale, Math.abs(v));
    const d = runs.slice(1).map((r) => { const o = r.out(); let e = 0; for (let i = 0; i < o.length; i++) e = Math.max(e, Math.abs(o[i] - ref[i])); return (e / scale).toExponential(1); });
    diff = ` ${d.join(', ')} |`;
  }
  const name = `${batch} x ${m} x ${k} x ${n}${tA ? ' tA' : ''}${tB ? ' tB' : ''}`;
  console.log(`| ${name} | ${best.map((ms) => (flops / ms / 1e6).toFixed(1)).join(' | ')} |${diff}`);
}
