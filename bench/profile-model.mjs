// Profiles one model of the real-model set: runs its forward + backward `--steps` times after a warm-up,
// under `node --cpu-prof` when asked, and prints per-step CPU time and a per-kernel breakdown (time spent in each
// backend method including its copies, and in the copy helpers alone, in CPU time, measured by wrapping the
// backend; the wrapping adds about 2 us per call).
//
//   node bench/profile-model.mjs --id=timm_vit_tiny [--steps=20] [--backend=wasm-simd] [--kernels]
//   node --cpu-prof --cpu-prof-dir=/tmp/prof bench/profile-model.mjs --id=resnet18
//   node bench/profile-model.mjs --id=gpt2 --matmuls   # per matmul shape: calls, ms in the wasm kernel, GFLOP/s
// (after `node bench/models.mjs --only=ID` has exported the model into build/bench-models/).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, flag } from './lib/harness.mjs';

const id = flag('id', 'timm_vit_tiny');
const steps = Number(flag('steps', '20'));
const base = join(ROOT, 'build', 'bench-models');
const dir = readdirSync(base).map((d) => join(base, d)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
process.argv.push(`--dir=${dir}`);
const { prepare } = await import('./engines/ours-models.mjs');
const E = (await import('node:module')).createRequire(import.meta.url)(join(ROOT, 'build', 'engine', 'index.js'));

const kernels = new Map();
if (process.argv.includes('--kernels')) {
  const b = E.getBackend();
  for (const name of Object.getOwnPropertyNames(Object.getPrototypeOf(b))) {
    if (name === 'constructor' || typeof b[name] !== 'function') continue;
    const f = b[name].bind(b);
    // CPU time, not wall time: the machine is shared and a waiting process would inflate wall time.
    b[name] = (...args) => {
      const t = process.cpuUsage();
      try {
        return f(...args);
      } finally {
        const c = process.cpuUsage(t);
        const k = kernels.get(name) ?? { calls: 0, ms: 0 };
        k.calls++;
        k.ms += (c.user + c.system) / 1000;
        kernels.set(name, k);
      }
    };
  }
}

// Bytes copied into (put) and out of (take) wasm memory, when the backend has those helpers.
const copied = { put: 0, take: 0 };
if (process.argv.includes('--kernels')) {
  const b = E.getBackend();
  const put = b.put, take = b.take;
  if (typeof put === 'function') b.put = (ptr, data) => ((copied.put += data.length * 4), put(ptr, data));
  if (typeof take === 'function') b.take = (ptr, n) => ((copied.take += n * 4), take(ptr, n));
}

// Per matmul shape (batch x m x k x n, transposes): wall time inside the wasm kernel alone (no copies; process CPU
// time would add the GC's helper threads running meanwhile; wall time adds preemption on a loaded machine), so
// GFLOP/s is the kernel's. Needs the wasm backend (its `k.matmul` export).
const shapes = new Map();
if (process.argv.includes('--matmuls')) {
  const b = E.getBackend();
  const km = b.k?.matmul;
  if (typeof km !== 'function') throw new Error('--matmuls needs a wasm backend');
  const outer = b.matmul.bind(b);
  let plan = null;
  b.matmul = (a, bb, pl, dtype) => ((plan = pl), outer(a, bb, pl, dtype));
  const timed = (...args) => {
    const t = performance.now();
    km(...args);
    const ms = performance.now() - t;
    const key = `${plan.batch} x ${plan.m} x ${plan.k} x ${plan.n}${plan.transA ? ' tA' : ''}${plan.transB ? ' tB' : ''}`;
    const s = shapes.get(key) ?? { calls: 0, ms: 0, flops: 2 * plan.batch * plan.m * plan.k * plan.n };
    s.calls++;
    s.ms += ms;
    shapes.set(key, s);
  };
  const exports = b.k; // frozen wasm exports: wrap them in a proxy over a plain object
  b.k = new Proxy({}, { get: (_, name) => (name === 'matmul' ? timed : exports[name]) });
}

const p = prepare(id);
for (let i = 0; i < 5; i++) p.step();
kernels.clear();
shapes.clear();
copied.put = copied.take = 0;
const t0 = process.cpuUsage();
const w0 = performance.now();
for (let i = 0; i < steps; i++) p.step();
const cpu = process.cpuUsage(t0);
const perStep = (cpu.user + cpu.system) / 1000 / steps;
console.log(`${id}: ${perStep.toFixed(1)} ms CPU / step, ${((performance.now() - w0) / steps).toFixed(1)} ms wall / step, loss ${p.loss()} (PyTorch ${p.meta.loss})`);
if (kernels.size) {
  console.log(`  copied into wasm memory ${(copied.put / steps / 1e6).toFixed(1)} MB/step, out ${(copied.take / steps / 1e6).toFixed(1)} MB/step`);
  const rows = [...kernels].sort((a, b) => b[1].ms - a[1].ms);
  for (const [name, k] of rows) console.log(`  ${name.padEnd(20)} ${String(k.calls / steps).padStart(6)} calls ${(k.ms / steps).toFixed(2).padStart(8)} ms/step`);
}
if (shapes.size) {
  const rows = [...shapes].sort((a, b) => b[1].ms - a[1].ms);
  const total = rows.reduce((t, [, s]) => t + s.ms, 0);
  console.log(`  matmul kernel ${(total / steps).toFixed(2)} ms/step (wall, inside wasm), by shape (batch x m x k x n):`);
  for (const [key, s] of rows) {
    const gflops = (s.flops * s.calls) / (s.ms * 1e6);
    console.log(`  ${key.padEnd(28)} ${String(s.calls / steps).padStart(5)} calls ${(s.ms / steps).toFixed(3).padStart(8)} ms/step ${gflops.toFixed(1).padStart(6)} GFLOP/s`);
  }
}
