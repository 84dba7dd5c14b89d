// Runs the ONNX backend node suite (../shared/onnx-backend-data/node) through the importer and prints every
// case that does not pass, with its reason, then the counts. Needs the compiled tests (tsc -p tsconfig.json).
// Usage: node scripts/onnx-node-suite.mjs [substring filter] [--all] [--wasm] [--dir=node|pytorch-converted|...]
// --wasm runs on the WebAssembly kernels (build:wasm) instead of the reference backend.
// --device runs on the fake device backend (test/fakeDevice.ts: device-only tensors, reference kernels) and
// says per case whether every kernel ran on the device or an op needed host values (WebGPU reruns those on
// the host backend), with a per-op table.
import { createRequire } from 'node:module';
import * as path from 'node:path';
import { fileURLToPath } from 'node:url';

const require = createRequire(import.meta.url);
const root = path.dirname(path.dirname(fileURLToPath(import.meta.url)));
const { runNodeSuite, formatNodeTable } = require(path.join(root, 'build', 'test', 'onnx_node_suite.js'));
const { sharedDir } = require(path.join(root, 'build', 'test', 'helpers.js'));
const args = process.argv.slice(2);
const all = args.includes('--all');
const filter = args.find((a) => !a.startsWith('--'));
const dir = sharedDir('onnx-backend-data', (args.find((a) => a.startsWith('--dir=')) ?? '--dir=node').slice(6));
if (args.includes('--wasm')) {
  const { loadWasmBackendNode } = require(path.join(root, 'build', 'engine', 'backend', 'wasm', 'node.js'));
  const { setBackend } = require(path.join(root, 'build', 'engine', 'backend', 'registry.js'));
  setBackend(await loadWasmBackendNode());
}
if (!dir) throw new Error('no shared/onnx-backend-data/node beside the repo or above it');
if (args.includes('--device')) {
  const { runNodeSuiteOnDevice } = require(path.join(root, 'build', 'test', 'onnx_node_suite.js'));
  const { device } = require(path.join(root, 'build', 'test', 'fakeDevice.js'));
  const results = await runNodeSuiteOnDevice(dir, device, filter ? (n) => n.includes(filter) : undefined);
  const counts = {};
  const byOp = new Map();
  for (const r of results) {
    counts[r.status] = (counts[r.status] ?? 0) + 1;
    if (all || !['device', 'float64', 'unsupported', 'not-comparable'].includes(r.status)) console.log(`${r.status.toUpperCase().padEnd(12)} ${r.name.padEnd(60)} ${r.detail}`);
    if (r.ops.length !== 1) continue;
    const e = byOp.get(r.ops[0]) ?? {};
    e[r.status] = (e[r.status] ?? 0) + 1;
    byOp.set(r.ops[0], e);
  }
  console.log('\nsingle-op cases by op (device / host-values / float64 / other):');
  for (const [op, e] of [...byOp].sort()) {
    const other = Object.entries(e).filter(([k]) => !['device', 'host-values', 'float64'].includes(k)).map(([k, v]) => `${v} ${k}`).join(', ');
    if (e.device || e['host-values']) console.log(`${op.padEnd(28)} ${String(e.device ?? 0).padStart(3)} / ${String(e['host-values'] ?? 0).padStart(3)} / ${String(e.float64 ?? 0).padStart(3)}  ${other}`);
  }
  console.log(`\n${results.length} cases: ${Object.entries(counts).map(([k, v]) => `${v} ${k}`).join(', ')}`);
  process.exit(0);
}
const t0 = performance.now();
const s = runNodeSuite(dir, filter ? (n) => n.includes(filter) : undefined);
const shown = all ? s.results : s.results.filter((r) => r.status !== 'pass');
console.log(formatNodeTable(shown));
const slow = [...s.results].sort((a, b) => b.ms - a.ms).slice(0, 5).map((r) => `${r.name} ${r.ms.toFixed(0)} ms`).join(', ');
console.log(`\n${s.results.length} cases in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${Object.entries(s.counts).map(([k, v]) => `${v} ${k}`).join(', ')}`);
console.log(`claimed-op cases not passing: ${s.claimedFailures.length}${s.claimedFailures.length ? '\n' + formatNodeTable(s.claimedFailures) : ''}`);
console.log(`slowest: ${slow}`);
