// Memory of the real-model set: the engine's estimate before a run against what the run really takes.
// For each model (bench/models/real_models.py exports, made by `node bench/models.mjs`), in its own Node
// process so the peaks do not mix:
//   - parameters + gradients + saved activations, from the estimate's parts (what the issue measures against),
//   - the estimate's peak (what a run is refused on: it adds inputs, backward temporaries and workspace),
//   - what the memory meter counted during one forward + backward (tensor bytes allocated),
//   - the measured peak of the memory outside V8's heap (typed arrays and the wasm memory, where tensor data
//     lives), sampled after every backend call, over one step and over five more (the garbage collector lets
//     garbage pile up between steps),
//   - the process's measured peak: growth of its maximum resident set from before the model was loaded (V8's
//     heap and compiled code included).
//
//   node bench/memory.mjs [--only=gpt2,resnet18] [--backend=wasm-relaxed|wasm-simd|typescript] [--no-recycling]
//
// Each step is a recycling step (engine/recycling.ts, as the trainer and the inspector run theirs: the next step
// reuses its output arrays); --no-recycling measures steps without it.
//
// Not a test: nothing here asserts; the figures go in the closing notes and bench/README.md.
import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, statSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join } from 'node:path';
import { ROOT, flag } from './lib/harness.mjs';

const require = createRequire(import.meta.url);
const base = join(ROOT, 'build', 'bench-models');
const MB = 2 ** 20;

function exportDir() {
  if (!existsSync(base)) return null;
  const dirs = readdirSync(base).map((d) => join(base, d)).filter((d) => existsSync(join(d, 'ids.json')));
  return dirs.sort((a, b) => statSync(b).mtimeMs - statSync(a).mtimeMs)[0] ?? null;
}

async function child(id) {
  const { prepare } = await import('./engines/ours-models.mjs'); // loads the engine and the chosen backend
  const E = require(join(ROOT, 'build', 'engine', 'index.js'));
  if (process.argv.includes('--no-recycling')) E.setRecycling(false);
  const { metered } = require(join(ROOT, 'build', 'engine', 'memory.js'));
  globalThis.gc?.();
  const rssBefore = process.memoryUsage().rss;
  const externalBefore = process.memoryUsage().external;
  const grown = () => process.resourceUsage().maxRSS * 1024 - rssBefore;
  // The external peak is sampled after every backend call (a kernel's output is the newest allocation).
  let externalPeak = 0;
  const backend = E.getBackend();
  for (const name of Object.getOwnPropertyNames(Object.getPrototypeOf(backend))) {
    if (name === 'constructor' || typeof backend[name] !== 'function') continue;
    const f = backend[name].bind(backend);
    backend[name] = (...args) => {
      const out = f(...args);
      externalPeak = Math.max(externalPeak, process.memoryUsage().external - externalBefore);
      return out;
    };
  }
  const p = prepare(id);
  const estimate = p.model.estimateMemory(p.feeds, p.runOptions);
  const { bytes: counted } = metered(Infinity, `${id}: one step`, () => p.step());
  const oneStep = { external: externalPeak, rss: grown() };
  for (let i = 0; i < 5; i++) p.step();
  const sixSteps = { external: externalPeak, rss: grown() };
  console.log(JSON.stringify({ id, estimate: { ...estimate, warnings: estimate.warnings.length }, counted, oneStep, sixSteps }));
}

function main() {
  const dir = exportDir();
  if (!dir) {
    console.log('No real-model exports: run `node bench/models.mjs` first (it needs the Python environment with torch).');
    return;
  }
  const only = flag('only', '').split(',').filter(Boolean);
  const ids = JSON.parse(readFileSync(join(dir, 'ids.json'), 'utf8')).filter((id) => only.length === 0 || only.includes(id));
  const backend = flag('backend', 'wasm-relaxed');
  const recycle = !process.argv.includes('--no-recycling');
  const nodeFlags = ['--expose-gc', ...(backend === 'wasm-relaxed' ? ['--experimental-wasm-relaxed-simd'] : [])];
  const rows = [];
  for (const id of ids) {
    const r = spawnSync(process.execPath, [...nodeFlags, new URL(import.meta.url).pathname, `--child=${id}`, `--dir=${dir}`, `--backend=${backend}`, ...(recycle ? [] : ['--no-recycling'])], { encoding: 'utf8', maxBuffer: 64 * MB });
    const line = r.stdout.split('\n').find((l) => l.startsWith('{"id"'));
    if (!line) {
      console.error(`${id}: failed (exit ${r.status}): ${(r.stderr || r.stdout).trim().split('\n').slice(-3).join(' ')}`);
      continue;
    }
    rows.push(JSON.parse(line));
    console.error(`  ${id} done`);
  }
  const f = (b) => (b / MB).toFixed(1);
  console.log(`\nMemory per forward + backward, ${backend}, recycling ${recycle ? 'on' : 'off'}, ${new Date().toISOString()} (MB = 2^20 bytes)\n`);
  console.log('| model | p + g + a | estimate (peak) | meter, 1 step | tensor memory peak, 1 step / 6 steps | measured / (p + g + a), 6 steps | process peak, 1 step / 6 steps | estimate ≥ meter |');
  console.log('|---|---|---|---|---|---|---|---|');
  for (const r of rows) {
    const e = r.estimate;
    const pga = e.parameters + e.gradients + e.activations;
    console.log(`| ${r.id} | ${f(pga)} | ${f(e.peak)} | ${f(r.counted)} | ${f(r.oneStep.external)} / ${f(r.sixSteps.external)} | ${(r.sixSteps.external / pga).toFixed(2)}x | ${f(r.oneStep.rss)} / ${f(r.sixSteps.rss)} | ${e.peak >= r.counted ? 'yes' : 'NO'} |`);
  }
  console.log('\np + g + a: parameters + gradients + saved activations, from the estimate. Meter: tensor bytes the engine allocated in one');
  console.log('forward + backward. Tensor memory peak: memory outside V8\'s heap (typed arrays and the wasm memory) above what it was');
  console.log('before the model was loaded, sampled after every backend call. Process peak: growth of the maximum resident set (V8\'s');
  console.log('heap and compiled code included).');
}

const childId = flag('child', '');
if (childId) await child(childId);
else main();
