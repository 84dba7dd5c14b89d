// Runs the ONNX backend node suite (../shared/onnx-backend-data/node) through the importer and prints every
// case that does not pass, with its reason, then the counts. Needs the compiled tests (tsc -p tsconfig.json).
// Usage: node scripts/onnx-node-suite.mjs [substring filter] [--all] [--wasm] [--dir=node|pytorch-converted|...]
// --wasm runs on the WebAssembly kernels (build:wasm) instead of the reference backend.
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
const t0 = performance.now();
const s = runNodeSuite(dir, filter ? (n) => n.includes(filter) : undefined);
const shown = all ? s.results : s.results.filter((r) => r.status !== 'pass');
console.log(formatNodeTable(shown));
const slow = [...s.results].sort((a, b) => b.ms - a.ms).slice(0, 5).map((r) => `${r.name} ${r.ms.toFixed(0)} ms`).join(', ');
console.log(`\n${s.results.length} cases in ${((performance.now() - t0) / 1000).toFixed(1)} s: ${Object.entries(s.counts).map(([k, v]) => `${v} ${k}`).join(', ')}`);
console.log(`claimed-op cases not passing: ${s.claimedFailures.length}${s.claimedFailures.length ? '\n' + formatNodeTable(s.claimedFailures) : ''}`);
console.log(`slowest: ${slow}`);
