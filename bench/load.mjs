// Load time of a big graph in any node order (issue 15): a chain of N Add nodes (x + w, N times) stored in
// execution order, reversed and shuffled, imported by loadOnnx (decode, parameter identity, graph checks,
// topological sort, schema validation, liveness, initializers, module tree). Target: under 2 s at 100k nodes
// whatever the order.
//
//   node bench/load.mjs [--nodes=100000] [--processes=5]      (after `npx tsc -p tsconfig.json`)
//
// Each order runs in --processes fresh Node processes, one after the other: the first load in a process is the
// cold one a user sees (the importer's code not yet optimised), then three warm loads. Times are process CPU
// time (user + system, GC helper threads included): on a shared machine waiting for a core inflates wall time,
// not CPU time. The table gives the best (min) and median over processes.
import { spawnSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { existsSync } from 'node:fs';
import { loadavg } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { ROOT, flag, rng } from './lib/harness.mjs';
import { buildModel } from './lib/onnx.mjs';

const ORDERS = ['forward', 'reverse', 'shuffled'];
const TARGET_MS = 2000;

/** The chain's ONNX bytes with its nodes stored in `order` (shuffled by a seeded Fisher-Yates). */
function chainModel(n, order) {
  const nodes = [];
  for (let i = 0; i < n; i++) {
    nodes.push({ op: 'Add', inputs: [i === 0 ? 'x' : `v${i - 1}`, 'w'], outputs: [i === n - 1 ? 'y' : `v${i}`], name: `/layers.${i % 97}/Add_${i}` });
  }
  if (order === 'reverse') nodes.reverse();
  if (order === 'shuffled') {
    const r = rng(15);
    for (let i = nodes.length - 1; i > 0; i--) {
      const j = Math.floor(r() * (i + 1));
      [nodes[i], nodes[j]] = [nodes[j], nodes[i]];
    }
  }
  return buildModel({ nodes, initializers: [{ name: 'w', dims: [4], data: new Float32Array(4).fill(0.1) }], inputs: [{ name: 'x', dims: [2, 4] }], outputs: [{ name: 'y', dims: [2, 4] }] });
}

const cpuMs = (since) => {
  const u = process.cpuUsage(since);
  return (u.user + u.system) / 1000;
};

/** One process: builds the model, then times a cold load and three warm ones. Prints one JSON line. */
function child(order, n) {
  const { loadOnnx } = createRequire(import.meta.url)(join(ROOT, 'build', 'engine', 'index.js'));
  const bytes = chainModel(n, order);
  const times = [];
  for (let rep = 0; rep < 4; rep++) {
    const c0 = process.cpuUsage();
    const t0 = performance.now();
    const model = loadOnnx(bytes);
    const wall = performance.now() - t0;
    if (model.graph.nodes.length !== n || model.graph.nodes[n - 1].outputs[0] !== 'y') throw new Error('the chain was not loaded in order');
    times.push({ cpu: cpuMs(c0), wall });
  }
  console.log(JSON.stringify({ order, n, mb: (bytes.length / 2 ** 20).toFixed(1), cold: times[0], warm: Math.min(...times.slice(1).map((t) => t.cpu)) }));
}

const fmt = (v) => v.toFixed(0);
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];

function main() {
  if (!existsSync(join(ROOT, 'build', 'engine', 'index.js'))) {
    console.error('build first: npx tsc -p tsconfig.json');
    process.exit(1);
  }
  const n = Number(flag('nodes', '100000'));
  const processes = Math.max(1, Number(flag('processes', '5')));
  console.log(`${n}-node Add chain, loadOnnx CPU ms, ${processes} processes per order; load average ${loadavg().map((l) => l.toFixed(1)).join(' ')}\n`);
  console.log('| order | cold best | cold median | warm best | cold wall median | target |');
  console.log('|---|---|---|---|---|---|');
  let worst = 0;
  for (const order of ORDERS) {
    const runs = [];
    for (let p = 0; p < processes; p++) {
      const r = spawnSync(process.execPath, ['--max-old-space-size=4096', fileURLToPath(import.meta.url), '--child', order, String(n)], { encoding: 'utf8' });
      if (r.status !== 0) throw new Error(`${order}: ${r.stderr}`);
      runs.push(JSON.parse(r.stdout.trim().split('\n').pop()));
    }
    const best = Math.min(...runs.map((r) => r.cold.cpu));
    worst = Math.max(worst, best);
    console.log(`| ${order} | ${fmt(best)} | ${fmt(median(runs.map((r) => r.cold.cpu)))} | ${fmt(Math.min(...runs.map((r) => r.warm)))} | ${fmt(median(runs.map((r) => r.cold.wall)))} | ${best < TARGET_MS ? 'met' : '**not met**'} |`);
  }
  console.log(`\nslowest order, best cold load: ${fmt(worst)} ms (target ${TARGET_MS} ms)`);
}

if (process.argv[2] === '--child') child(process.argv[3], Number(process.argv[4]));
else main();
