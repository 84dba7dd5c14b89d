// Recycled output arrays on vs off (engine/recycling.ts), side by side in one process: for each model, after a
// warm-up, alternating blocks of steps with recycling on and off; CPU time per step (process CPU: V8's GC
// threads count, as in bench/models.mjs) and per-step counters: MB of output arrays copied out of wasm memory,
// MB of them freshly allocated, MB reused from the free list, and V8's garbage collections (count and pause ms
// per step, from perf_hooks 'gc' entries: main-thread pauses only).
//
//   node --experimental-wasm-relaxed-simd bench/recycling.mjs --models=gpt2,vit [--rounds=4] [--steps=10] [--backend=wasm-relaxed]
// (after `node bench/models.mjs --only=ID` has exported the models into build/bench-models/).
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';
import { PerformanceObserver } from 'node:perf_hooks';
import { ROOT, flag } from './lib/harness.mjs';

const only = flag('models', 'gpt2,vit,llama,t5,timm_vit_tiny').split(',').filter(Boolean);
const rounds = Number(flag('rounds', '4'));
const steps = Number(flag('steps', '10'));
const base = join(ROOT, 'build', 'bench-models');
const dir = readdirSync(base).map((d) => join(base, d)).sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0];
process.argv.push(`--dir=${dir}`);
if (!process.argv.some((a) => a.startsWith('--backend='))) process.argv.push('--backend=wasm-relaxed');
const { prepare } = await import('./engines/ours-models.mjs');
const E = createRequire(import.meta.url)(join(ROOT, 'build', 'engine', 'index.js'));

const backend = E.getBackend();
let taken = 0;
const take = backend.take;
if (typeof take === 'function') backend.take = (ptr, n) => ((taken += n * 4), take.call(backend, ptr, n));

const MB = 1e6;
const gcEntries = [];
new PerformanceObserver((list) => gcEntries.push(...list.getEntries())).observe({ entryTypes: ['gc'] });
const tick = () => new Promise((r) => setImmediate(r));
const rows = [];
for (const id of only) {
  const p = prepare(id);
  for (const on of [true, false, true]) {
    E.setRecycling(on);
    p.step();
  }
  const side = { true: { cpu: [], out: 0, fresh: 0, reused: 0, n: 0, gc: 0, gcMs: 0 }, false: { cpu: [], out: 0, fresh: 0, reused: 0, n: 0, gc: 0, gcMs: 0 } };
  for (let r = 0; r < rounds; r++) {
    for (const on of r % 2 ? [false, true] : [true, false]) {
      E.setRecycling(on);
      p.step(); // first step of a block: the free list refills (on) or drains (off)
      await tick();
      gcEntries.length = 0;
      E.recyclingCounts(true);
      taken = 0;
      const t0 = process.cpuUsage();
      for (let i = 0; i < steps; i++) p.step();
      const c = process.cpuUsage(t0);
      const k = E.recyclingCounts(true);
      await tick(); // delivers the block's gc entries
      const s = side[on];
      s.gc += gcEntries.length;
      s.gcMs += gcEntries.reduce((a, e) => a + e.duration, 0);
      s.cpu.push((c.user + c.system) / 1000 / steps);
      s.out += taken;
      s.fresh += on ? k.fresh : taken;
      s.reused += k.reused;
      s.n += steps;
    }
  }
  E.setRecycling(true);
  const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1];
  const row = { id, loss: p.loss() };
  for (const on of [true, false]) {
    const s = side[on];
    row[on ? 'on' : 'off'] = { cpuMs: median(s.cpu), cpuAll: s.cpu.map((x) => +x.toFixed(1)), outMB: s.out / s.n / MB, freshMB: s.fresh / s.n / MB, reusedMB: s.reused / s.n / MB, gcPerStep: s.gc / s.n, gcMsPerStep: s.gcMs / s.n };
  }
  rows.push(row);
  console.error(`  ${id}: ${JSON.stringify(row)}`);
}
console.log(`\nRecycling on vs off, ${backend.name}${backend.relaxedSimd ? ' (relaxed SIMD)' : ''}, ${rounds} rounds x ${steps} steps each side, ${new Date().toISOString()} (MB = 1e6 bytes)\n`);
console.log('| model | CPU ms/step off | CPU ms/step on | off / on | MB out per step | MB fresh per step, off -> on | MB reused per step | GCs per step, off -> on | GC pause ms per step, off -> on |');
console.log('|---|---|---|---|---|---|---|---|---|');
for (const r of rows) {
  console.log(`| ${r.id} | ${r.off.cpuMs.toFixed(1)} | ${r.on.cpuMs.toFixed(1)} | ${(r.off.cpuMs / r.on.cpuMs).toFixed(2)}x | ${r.on.outMB.toFixed(1)} | ${r.off.freshMB.toFixed(1)} -> ${r.on.freshMB.toFixed(1)} | ${r.on.reusedMB.toFixed(1)} | ${r.off.gcPerStep.toFixed(2)} -> ${r.on.gcPerStep.toFixed(2)} | ${r.off.gcMsPerStep.toFixed(2)} -> ${r.on.gcMsPerStep.toFixed(2)} |`);
}
