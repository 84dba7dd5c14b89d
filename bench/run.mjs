// Runs every engine of the benchmark, one child process per engine, one after the other, and prints
// a side-by-side table; writes bench/results/latest.json. `npm run bench` builds first.
//
//   node bench/run.mjs [--quick] [--rounds=N] [--only=id,id]
//
// --rounds=N runs the whole set N times (engines interleaved per round) and keeps, per engine and
// workload, the round with the lowest median: use it on a busy machine. Every round is kept in the JSON.
import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { ROOT, MATMUL, MLP, flag } from './lib/harness.mjs';

const ENGINES = [
  { id: 'ours-wasm', label: 'Gradient Lens, wasm-simd', script: 'ours.mjs', args: ['--backend=wasm-simd'] },
  { id: 'ours-wasm-relaxed', label: 'Gradient Lens, wasm-simd + relaxed SIMD (FMA) [a]', script: 'ours.mjs', args: ['--backend=wasm-relaxed'], node: ['--experimental-wasm-relaxed-simd'] },
  { id: 'ours-ts', label: 'Gradient Lens, typescript reference', script: 'ours.mjs', args: ['--backend=typescript'] },
  { id: 'ort', label: 'onnxruntime-web (wasm, 1 thread)', script: 'ort.mjs', args: [] },
  { id: 'tfjs', label: 'tfjs-backend-wasm (1 thread)', script: 'tfjs.mjs', args: [] },
  { id: 'jax', label: '@jax-js/jax (wasm)', script: 'jax.mjs', args: [] },
];

const quick = process.argv.includes('--quick');
const rounds = Math.max(1, Number(flag('rounds', '1')));
const only = flag('only', '')?.split(',').filter(Boolean);
const engines = only.length ? ENGINES.filter((e) => only.includes(e.id)) : ENGINES;

for (const f of ['build/wasm/kernels.wasm', 'build/engine/index.js', 'build/test/fixture_models.js']) {
  if (!existsSync(join(ROOT, f))) {
    console.error(`${f} is missing: run \`npm run bench\` (it builds the kernels and the TypeScript first)`);
    process.exit(1);
  }
}

function runEngine(e) {
  const args = [...(e.node ?? []), join(ROOT, 'bench', 'engines', e.script), ...e.args, ...(quick ? ['--quick'] : [])];
  const t0 = Date.now();
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20, timeout: 15 * 60 * 1000 });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('@@RESULT '));
  if (r.status !== 0 || !line) {
    const why = (r.stderr || r.stdout || String(r.error ?? '')).trim().split('\n').slice(-6).join('\n');
    console.error(`  ${e.id}: failed (exit ${r.status})\n${why}`);
    return { id: e.id, label: e.label, error: why };
  }
  const result = JSON.parse(line.slice('@@RESULT '.length));
  console.error(`  ${e.id}: done in ${((Date.now() - t0) / 1000).toFixed(1)} s`);
  return { id: e.id, label: e.label, ...result };
}

const started = new Date();
const load = [loadavg()];
const all = [];
for (let r = 0; r < rounds; r++) {
  console.error(`round ${r + 1}/${rounds} (load average ${loadavg().map((x) => x.toFixed(2)).join(' ')})`);
  all.push(engines.map(runEngine));
}
load.push(loadavg());

// Per engine and workload: the round with the lowest median.
const WORKLOADS = ['matmul', 'matmulResident', 'mlp', 'gpt'];
const best = engines.map((e, i) => {
  const runs = all.map((round) => round[i]);
  const ok = runs.filter((x) => !x.error);
  if (ok.length === 0) return runs[0];
  const merged = { ...ok[0] };
  for (const w of WORKLOADS) {
    const candidates = ok.map((x) => x[w]).filter(Boolean);
    if (candidates.length) merged[w] = candidates.reduce((a, b) => (b.median < a.median ? b : a));
  }
  merged.notes = [...new Set(ok.flatMap((x) => x.notes ?? []))];
  return merged;
});

const get = (id) => best.find((b) => b.id === id && !b.error);
const fmt = (v, d = 1) => (v === undefined || v === null || Number.isNaN(v) ? '-' : v.toFixed(d));

// Targets: our wasm matmul >= 0.9x onnxruntime-web and >= 2x tfjs-backend-wasm; our MLP step >= 5x faster than tfjs.
const ours = get('ours-wasm');
const ort = get('ort');
const tfjs = get('tfjs');
const targets = [];
if (ours && ort) targets.push({ target: 'matmul >= 0.9x onnxruntime-web', ratio: ours.matmul.gflops / ort.matmul.gflops, need: 0.9 });
if (ours && tfjs) {
  targets.push({ target: 'matmul >= 2x tfjs-backend-wasm (fresh operands)', ratio: ours.matmul.gflops / tfjs.matmul.gflops, need: 2 });
  if (tfjs.matmulResident) targets.push({ target: 'matmul >= 2x tfjs-backend-wasm (resident operands)', ratio: ours.matmul.gflops / tfjs.matmulResident.gflops, need: 2 });
  targets.push({ target: 'MLP training step >= 5x faster than tfjs-backend-wasm', ratio: tfjs.mlp.median / ours.mlp.median, need: 5 });
}
for (const t of targets) t.met = t.ratio >= t.need;

// Table (markdown, so it can be pasted into a README).
const rows = best.map((b) => {
  if (b.error) return `| ${b.label} | failed | | | | |`;
  const mm = b.matmul ? `${fmt(b.matmul.gflops)} (best ${fmt(b.matmul.gflopsBest)})` : '-';
  const mmr = b.matmulResident ? `${fmt(b.matmulResident.gflops)} (best ${fmt(b.matmulResident.gflopsBest)})` : 'same';
  const mlp = b.mlp ? `${fmt(b.mlp.median, 2)}${b.mlp.kind.startsWith('forward only') ? ' (fwd only)' : ''}` : '-';
  const gpt = b.gpt ? `${fmt(b.gpt.median, 2)}${b.gpt.kind.startsWith('forward only') ? ' (fwd only)' : ''}` : '-';
  const threads = Math.max(...WORKLOADS.map((w) => b[w]?.cpuPerWall ?? 0));
  return `| ${b.label} | ${mm} | ${mmr} | ${mlp} | ${gpt} | ${fmt(threads, 2)} |`;
});
const table = [
  `| engine | matmul ${MATMUL.m}x${MATMUL.k}x${MATMUL.n} GFLOP/s, fresh operands: median (best) | same, resident operands | MLP ${MLP.sizes.join('-')} sigmoid, batch ${MLP.batch}: train step ms | GPT fixture fwd+bwd ms | cpu/wall |`,
  '|---|---|---|---|---|---|',
  ...rows,
].join('\n');
const losses = best.filter((b) => !b.error).map((b) => `${b.id}: MLP loss ${b.mlp?.loss?.toFixed(6) ?? '-'}, GPT loss ${b.gpt?.loss?.toFixed(6) ?? '-'}${b.gpt?.lossError !== undefined ? ` (vs PyTorch ${b.gpt.lossError.toExponential(1)})` : ''}`);
const targetLines = targets.map((t) => `- ${t.target}: ${t.ratio.toFixed(2)}x -> ${t.met ? 'met' : 'NOT met'}`);

console.log(`\nGradient Lens benchmark, ${started.toISOString()} (${cpus()[0]?.model ?? 'cpu'}, ${cpus().length} cores, Node ${process.version}${quick ? ', --quick' : ''}, rounds ${rounds})\n`);
console.log(table);
console.log('\nTimes are medians of timed repetitions after warm-up; "best" is the fastest repetition. MLP/GPT: forward + backward unless marked fwd only.');
console.log('[a] relaxed-SIMD kernels need --experimental-wasm-relaxed-simd in Node 20; browsers with relaxed SIMD (Chrome 114+) load them by default.');
console.log(`\nTargets (ours = Gradient Lens wasm-simd, default Node flags):\n${targetLines.join('\n')}`);
console.log(`\nSame computation check:\n${losses.map((l) => `- ${l}`).join('\n')}`);
for (const b of best) for (const n of b.notes ?? []) console.log(`note (${b.id}): ${n}`);
console.log(`\nload average before ${load[0].map((x) => x.toFixed(2)).join(' ')}, after ${load[1].map((x) => x.toFixed(2)).join(' ')}`);

mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
const out = join(ROOT, 'bench', 'results', 'latest.json');
writeFileSync(out, JSON.stringify({
  date: started.toISOString(),
  machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version, loadBefore: load[0], loadAfter: load[1] },
  options: { quick, rounds, only },
  workloads: { matmul: MATMUL, mlp: MLP, gpt: 'test/fixtures/models/gpt.json (2 layers, n_embd 32, 4 heads, batch 2 x 8 tokens)' },
  best,
  targets,
  table,
  rounds: all,
}, null, 2));
console.log(`\nwrote ${out}`);
