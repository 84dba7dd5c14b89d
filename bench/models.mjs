// The real-model benchmark: forward + backward of models people use (small configs of Hugging Face GPT-2, BERT,
// LLaMA, T5, ViT; torchvision ResNet-18, MobileNetV3, EfficientNet-B0, ConvNeXt; timm models), our engine against
// PyTorch on one thread, in the same run. `npm run bench` runs it after bench/run.mjs.
//
//   node bench/models.mjs [--rounds=N] [--only=gpt2,resnet18] [--quick] [--backends=wasm-simd,wasm-relaxed]
//
// The models are built and exported by bench/models/real_models.py (seeded random init, TorchScript exporter in
// TRAINING mode with do_constant_folding=False, the way the README tells users to export) into
// build/bench-models/ once, with PyTorch's inputs, targets and loss. Each round times PyTorch
// (torch.set_num_threads(1), a Python child process) and then our engine (a Node child process per backend) on
// the same inputs; the engine's loss is checked against PyTorch's. Without a Python environment with torch the
// bench says so and times the engine alone on exports left from an earlier run (or skips the set).
//
// Times are per-step CPU time of the process (median over repetitions, best median over rounds): on a shared
// machine a process waiting for a core inflates wall time but not CPU time. Wall medians are kept in the JSON.
import { spawnSync } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { cpus, loadavg } from 'node:os';
import { join } from 'node:path';
import { ROOT, flag } from './lib/harness.mjs';

const require = createRequire(import.meta.url);
const SCRIPT = join(ROOT, 'bench', 'models', 'real_models.py');
const rounds = Math.max(1, Number(flag('rounds', '1')));
const quick = process.argv.includes('--quick');
const backends = flag('backends', 'wasm-simd,wasm-relaxed').split(',').filter(Boolean);
const BACKEND_NODE_FLAGS = { 'wasm-relaxed': ['--experimental-wasm-relaxed-simd'] };

function python() {
  if (!existsSync(join(ROOT, 'build', 'test', 'python.js'))) return null;
  const { pythonEnv } = require(join(ROOT, 'build', 'test', 'python.js'));
  return pythonEnv()?.python ?? null;
}

function jsonLines(text) {
  return (text ?? '').split('\n').filter((l) => l.startsWith('{')).map((l) => JSON.parse(l));
}

const py = python();
// Exports are regenerated when the generator changes.
const stamp = createHash('sha1').update(readFileSync(SCRIPT)).digest('hex').slice(0, 10);
const dir = join(ROOT, 'build', 'bench-models', stamp);
const listed = py ? jsonLines(spawnSync(py, [SCRIPT, 'list'], { encoding: 'utf8' }).stdout)[0] : null;
const only = flag('only', '').split(',').filter(Boolean);
let ids = listed ? Object.keys(listed) : existsSync(dir) ? JSON.parse(readFileSync(join(dir, 'ids.json'), 'utf8')) : [];
if (only.length) ids = ids.filter((id) => only.includes(id));
const notes = [];
if (!py) notes.push('PyTorch is not available (no Python environment with torch: run `node scripts/setup.mjs --python`): engine timings only, on exports from an earlier run.');

if (py) {
  const missing = ids.filter((id) => !existsSync(join(dir, `${id}.onnx`)) || !existsSync(join(dir, `${id}.json`)));
  if (missing.length) {
    console.error(`exporting ${missing.join(', ')} into ${dir} (once)`);
    mkdirSync(dir, { recursive: true });
    const r = spawnSync(py, [SCRIPT, 'export', dir, '--only', missing.join(',')], { encoding: 'utf8', maxBuffer: 256 << 20, timeout: 30 * 60_000 });
    for (const line of jsonLines(r.stdout)) if (line.error) notes.push(`${line.id}: export failed: ${line.error}`);
    writeFileSync(join(dir, 'ids.json'), JSON.stringify(Object.keys(listed)));
  }
}
ids = ids.filter((id) => existsSync(join(dir, `${id}.onnx`)));
if (ids.length === 0) {
  console.log(`\nReal-model benchmark skipped: ${notes.join(' ') || 'no exported models'}`);
  process.exit(0);
}

function timeTorch() {
  const args = [SCRIPT, 'time', dir, '--only', ids.join(','), ...(quick ? ['--min-ms', '400', '--warmup-ms', '200'] : [])];
  const r = spawnSync(py, args, { encoding: 'utf8', maxBuffer: 64 << 20, timeout: 30 * 60_000, env: { ...process.env, OMP_NUM_THREADS: '1', MKL_NUM_THREADS: '1' } });
  return Object.fromEntries(jsonLines(r.stdout).map((x) => [x.id, x]));
}

function timeOurs(backend) {
  const args = [...(BACKEND_NODE_FLAGS[backend] ?? []), join(ROOT, 'bench', 'engines', 'ours-models.mjs'), `--dir=${dir}`, `--only=${ids.join(',')}`, `--backend=${backend}`, ...(quick ? ['--quick'] : [])];
  const r = spawnSync(process.execPath, args, { cwd: ROOT, encoding: 'utf8', maxBuffer: 64 << 20, timeout: 60 * 60_000 });
  const line = (r.stdout ?? '').split('\n').find((l) => l.startsWith('@@RESULT '));
  if (!line) return Object.fromEntries(ids.map((id) => [id, { error: (r.stderr || '').trim().split('\n').slice(-3).join(' ') }]));
  return JSON.parse(line.slice('@@RESULT '.length)).models;
}

/** The better of two timings of one model (lower CPU median); errors lose. */
const better = (a, b) => (!a || a.error ? b : !b || b.error ? a : b.cpuMedian < a.cpuMedian ? b : a);

const started = new Date();
const load = [loadavg()];
const all = [];
const best = { torch: {}, ...Object.fromEntries(backends.map((b) => [b, {}])) };
for (let r = 0; r < rounds; r++) {
  console.error(`round ${r + 1}/${rounds} (load average ${loadavg().map((x) => x.toFixed(2)).join(' ')})`);
  const round = {};
  if (py) {
    round.torch = timeTorch();
    console.error(`  pytorch: ${Object.entries(round.torch).map(([id, t]) => `${id} ${t.error ? 'failed' : t.cpuMedian.toFixed(1)}`).join(', ')}`);
  }
  for (const b of backends) {
    round[b] = timeOurs(b);
    console.error(`  ${b}: ${Object.entries(round[b]).map(([id, t]) => `${id} ${t.error ? 'failed' : t.cpuMedian.toFixed(1)}`).join(', ')}`);
  }
  for (const [k, v] of Object.entries(round)) for (const [id, t] of Object.entries(v)) best[k][id] = better(best[k][id], t);
  all.push(round);
}
load.push(loadavg());

const meta = Object.fromEntries(ids.map((id) => [id, JSON.parse(readFileSync(join(dir, `${id}.json`), 'utf8'))]));
const fmt = (t) => (!t ? '-' : t.error ? 'failed' : t.cpuMedian.toFixed(1));
const ratio = (ours, torch) => (ours && torch && !ours.error && !torch.error ? ours.cpuMedian / torch.cpuMedian : null);
const medianOf = (xs) => {
  const s = xs.filter((x) => x !== null).sort((a, b) => a - b);
  if (s.length === 0) return null;
  return s.length % 2 ? s[(s.length - 1) / 2] : (s[s.length / 2 - 1] + s[s.length / 2]) / 2;
};
const header = `| model | parameters | PyTorch ms | ${backends.map((b) => `ours ${b} ms | ratio`).join(' | ')} | loss vs PyTorch |`;
const rows = ids.map((id) => {
  const t = best.torch[id];
  const cells = backends.map((b) => {
    const r = ratio(best[b][id], t);
    return `${fmt(best[b][id])} | ${r === null ? '-' : `${r.toFixed(2)}x`}`;
  });
  const errs = backends.map((b) => best[b][id]?.lossError).filter((e) => e !== undefined);
  return `| ${id} | ${(meta[id].parameters / 1e6).toFixed(2)}M | ${py ? fmt(t) : 'no torch'} | ${cells.join(' | ')} | ${errs.length ? Math.max(...errs).toExponential(1) : '-'} |`;
});
const summary = backends.map((b) => {
  const rs = ids.map((id) => ratio(best[b][id], best.torch[id]));
  const m = medianOf(rs);
  const worst = Math.max(...rs.filter((x) => x !== null));
  return m === null ? `- ${b}: no PyTorch timings` : `- ${b}: median ${m.toFixed(2)}x PyTorch, worst ${worst.toFixed(2)}x (${ids[rs.indexOf(worst)]})`;
});
const table = [header, `|---|---|---|${backends.map(() => '---|---|').join('')}---|`, ...rows].join('\n');

console.log(`\nReal models, forward + backward, ${started.toISOString()} (${cpus()[0]?.model ?? 'cpu'}, Node ${process.version}, rounds ${rounds}${quick ? ', --quick' : ''})\n`);
console.log(table);
console.log(`\nRatios (ours / PyTorch CPU time per step; PyTorch ${meta[ids[0]]?.torch ?? '?'} with torch.set_num_threads(1)):\n${summary.join('\n')}`);
for (const id of ids) console.log(`- ${id}: ${meta[id].description}`);
for (const n of notes) console.log(`note: ${n}`);
console.log(`\nload average before ${load[0].map((x) => x.toFixed(2)).join(' ')}, after ${load[1].map((x) => x.toFixed(2)).join(' ')}`);

mkdirSync(join(ROOT, 'bench', 'results'), { recursive: true });
const out = join(ROOT, 'bench', 'results', 'models.json');
writeFileSync(out, JSON.stringify({ date: started.toISOString(), machine: { cpu: cpus()[0]?.model, cores: cpus().length, node: process.version, load }, dir, ids, best, rounds: all, table, notes }, null, 2));
console.log(`wrote ${out}`);
