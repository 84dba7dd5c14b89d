// Shared by every engine process of the benchmark: workload definitions, deterministic data,
// the GPT fixture loader and the timing loop. Plain JavaScript so the foreign engines need no build.
import { readFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

export const ROOT = resolve(dirname(fileURLToPath(import.meta.url)), '../..');

export const MATMUL = { m: 512, k: 512, n: 512 };
export const MLP = { sizes: [784, 256, 256, 256, 10], batch: 64 };
export const GPT_FIXTURE = join(ROOT, 'test', 'fixtures', 'models', 'gpt.json');
export const GPT_ONNX = join(ROOT, 'test', 'fixtures', 'onnx', 'gpt_op13_loss.onnx');

/** mulberry32: the same numbers in every engine process. */
export function rng(seed) {
  let s = seed >>> 0;
  return () => {
    s = (s + 0x6d2b79f5) >>> 0;
    let t = Math.imul(s ^ (s >>> 15), s | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

export function uniform(n, seed, lo = -1, hi = 1) {
  const r = rng(seed);
  const out = new Float32Array(n);
  for (let i = 0; i < n; i++) out[i] = lo + (hi - lo) * r();
  return out;
}

export function matmulData() {
  const { m, k, n } = MATMUL;
  return { a: uniform(m * k, 1), b: uniform(k * n, 2) };
}

/** MLP parameters in PyTorch layout (weight [out, in], bias [out]), inputs x [batch, 784] and integer targets. */
export function mlpData() {
  const { sizes, batch } = MLP;
  const layers = [];
  for (let i = 0; i < sizes.length - 1; i++) {
    const bound = 1 / Math.sqrt(sizes[i]);
    layers.push({ in: sizes[i], out: sizes[i + 1], weight: uniform(sizes[i + 1] * sizes[i], 10 + i, -bound, bound), bias: uniform(sizes[i + 1], 20 + i, -bound, bound) });
  }
  const x = uniform(batch * sizes[0], 3, 0, 1);
  const r = rng(4);
  const targets = Int32Array.from({ length: batch }, () => Math.floor(r() * sizes[sizes.length - 1]));
  return { layers, x, targets };
}

function decodeF64(t) {
  const buf = Buffer.from(t.data, 'base64');
  const copy = new Uint8Array(buf.length);
  copy.set(buf);
  return new Float64Array(copy.buffer);
}

/** The GPT fixture (test/fixtures/models/gpt.json): float32 params by state_dict name, idx/targets as Int32Array, PyTorch's loss. */
export function gptData() {
  const f = JSON.parse(readFileSync(GPT_FIXTURE, 'utf8'));
  const params = {};
  for (const [name, t] of Object.entries(f.params)) params[name] = { shape: t.shape, data: Float32Array.from(decodeF64(t)) };
  return {
    config: f.config,
    params,
    idx: { shape: f.inputs.idx.shape, data: Int32Array.from(f.inputs.idx.data) },
    targets: { shape: f.inputs.targets.shape, data: Int32Array.from(f.inputs.targets.data) },
    loss: f.loss,
  };
}

/**
 * Times `fn` (sync or async): warm-up for at least `warmupMs` and 3 calls (so V8 tiers the wasm and JS
 * code up), then timed calls until at least `minMs` and `minReps` have passed (capped at maxReps).
 */
export async function measure(fn, { warmupMs = 600, minMs = 2000, minReps = 10, maxReps = 500 } = {}) {
  let t0 = performance.now();
  let warm = 0;
  while (warm < 3 || performance.now() - t0 < warmupMs) {
    await fn();
    warm++;
  }
  const times = [];
  const cpuTimes = [];
  t0 = performance.now();
  const cpu0 = process.cpuUsage();
  while ((times.length < minReps || performance.now() - t0 < minMs) && times.length < maxReps) {
    const c = process.cpuUsage();
    const s = performance.now();
    await fn();
    times.push(performance.now() - s);
    const d = process.cpuUsage(c);
    cpuTimes.push((d.user + d.system) / 1000);
  }
  const wall = performance.now() - t0;
  const cpu = process.cpuUsage(cpu0);
  const sorted = [...times].sort((a, b) => a - b);
  const q = (p) => sorted[Math.min(sorted.length - 1, Math.floor(p * sorted.length))];
  const cpuSorted = [...cpuTimes].sort((a, b) => a - b);
  // cpu/wall near 1 confirms a single thread did the work (above 1: helper threads; below 1: the machine was
  // busy and this process waited for a core, so wall times are inflated and cpuMedian is the fairer number).
  return {
    median: q(0.5), min: sorted[0], p90: q(0.9), reps: times.length, warmup: warm, cpuPerWall: (cpu.user + cpu.system) / 1000 / wall,
    cpuMedian: cpuSorted[Math.floor(cpuSorted.length / 2)], cpuMin: cpuSorted[0],
  };
}

export function gflops(flops, ms) {
  return flops / ms / 1e6;
}

/** Reads --name=value flags. */
export function flag(name, fallback) {
  const hit = process.argv.find((a) => a.startsWith(`--${name}=`));
  return hit ? hit.slice(name.length + 3) : fallback;
}

/**
 * Sets the engine's backend from --backend (typescript, wasm-simd, wasm-relaxed), one place for the bench
 * engines that time our engine. Returns the flag's value and the backend.
 */
export async function useBackendFlag(E, loadWasmBackendNode) {
  const which = flag('backend', 'wasm-simd');
  let backend;
  if (which === 'typescript') backend = E.referenceBackend;
  else if (which === 'wasm-simd') backend = await loadWasmBackendNode('kernels.wasm');
  else if (which === 'wasm-relaxed') backend = await loadWasmBackendNode('kernels-relaxed.wasm');
  else throw new Error(`unknown --backend=${which}`);
  E.setBackend(backend);
  return { which, backend };
}

export function timingOptions() {
  const quick = process.argv.includes('--quick');
  return quick ? { warmupMs: 200, minMs: 400, minReps: 3 } : { warmupMs: 800, minMs: 2500, minReps: 10 };
}

/** Prints the engine's result as the last stdout line (the orchestrator parses it). */
export function report(result) {
  process.stdout.write(`\n@@RESULT ${JSON.stringify(result)}\n`);
}

/** Installed version of an npm package (read from node_modules; some packages do not export package.json). */
export function pkgVersion(name) {
  const file = name === '..' ? join(ROOT, 'package.json') : join(ROOT, 'node_modules', name, 'package.json');
  return JSON.parse(readFileSync(file, 'utf8')).version;
}
