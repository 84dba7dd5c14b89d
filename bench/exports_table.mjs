// The export evidence table (issue 12): every fixture of test/fixtures/exports (test/gold/exporters/export_zoo.py)
// inspected in float32 and float64 and compared with PyTorch per parameter and per module, by the same checks as
// test/exports.gold.test.ts (test/exportMatrix.ts).
//
//   npx tsc -p tsconfig.json && node bench/exports_table.mjs [--json=out.json] [--only=gpt2,t5] [--backend=wasm]
//
// Columns: loads; worst per-parameter relative gradient error against PyTorch float32 (engine float32) and against
// PyTorch float64 (engine float64), over the parameters compared (those no note names as lost); parameters and
// modules compared / named lost / wrong (both float32 and float64 runs; the test fails on any); the export-lost
// warnings and export-restored infos the diagnosis shows; the notes the export carries, by kind (r = restored, the
// numbers shown are PyTorch's; ! = lost). '(model-wide)': a note on the whole model (BatchNorm folded, metadata
// lost) says no number is PyTorch's, so nothing is compared. Worst error: |got - want| / max(want, 1e-3 of the
// largest PyTorch gradient norm). Not a test: it prints, it asserts nothing.
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { createRequire } from 'node:module';

const require = createRequire(import.meta.url);
const root = join(import.meta.dirname ?? new URL('.', import.meta.url).pathname, '..');
const { loadGolds, checkExport, worstError } = require(join(root, 'build', 'test', 'exportMatrix.js'));

const flag = (name) => process.argv.find((a) => a.startsWith(`--${name}=`))?.slice(name.length + 3);
const only = (flag('only') ?? '').split(',').filter(Boolean);
// --backend=wasm: the WebAssembly SIMD kernels the extension runs (default: the TypeScript reference backend).
if (flag('backend') === 'wasm') {
  const { setBackend } = require(join(root, 'build', 'engine', 'index.js'));
  const { WASM_KERNEL_FILES } = require(join(root, 'build', 'engine', 'backend', 'wasm', 'index.js'));
  const { loadWasmBackendNode } = require(join(root, 'build', 'engine', 'backend', 'wasm', 'node.js'));
  setBackend(await loadWasmBackendNode(WASM_KERNEL_FILES.simd));
}

const fmt = (x) => (x === null ? '—' : x === 0 ? '0' : x.toExponential(1));
const rows = [];
for (const gold of loadGolds()) {
  if (only.length && !only.includes(gold.model)) continue;
  for (const file of gold.exports) {
    const exporter = file.slice(`${gold.model}_${gold.variant}_`.length, -'.onnx'.length);
    const c32 = await checkExport(gold, file, 'float32');
    const c64 = await checkExport(gold, file, 'float64');
    const count = (c, key, status) => c[key].filter((x) => x.status === status).length;
    const kinds = new Map();
    for (const n of c32.notes) {
      const k = `${n.kind}${n.restored ? ' r' : ' !'}`;
      kinds.set(k, (kinds.get(k) ?? 0) + 1);
    }
    const bad = [c32, c64].reduce((s, c) => s + count(c, 'parameters', 'wrong') + count(c, 'parameters', 'missing') + count(c, 'modules', 'wrong') + c.strangers.length, 0);
    rows.push({
      model: gold.model, variant: gold.variant, exporter, loads: c32.loads && c64.loads ? 'yes' : `no: ${c32.error ?? c64.error}`,
      worst32: worstError(c32), worst64: worstError(c64),
      lossErr32: c32.loss === undefined ? null : Math.abs(c32.loss - c32.wantLoss) / c32.wantLoss,
      lossErr64: c64.loss === undefined ? null : Math.abs(c64.loss - c64.wantLoss) / c64.wantLoss,
      params: `${count(c32, 'parameters', 'ok')}/${c32.parameters.length}`, lostParams: count(c32, 'parameters', 'lost'),
      modules: `${count(c32, 'modules', 'ok')}/${c32.modules.length}`, lostModules: count(c32, 'modules', 'lost'),
      wrong: bad, modelWide: c32.modelWide, warnings: c32.warnings, infos: c32.infos,
      notes: [...kinds].map(([k, n]) => `${k}×${n}`).join(', ') || '—',
    });
  }
}

const header = ['model', 'variant', 'exporter', 'loads', 'worst ∇ err f32', 'worst ∇ err f64', 'loss err f32', 'loss err f64', 'params ok', 'params lost', 'modules ok', 'modules lost', 'wrong', 'warnings / infos shown', 'notes (kind × count; r restored, ! lost)'];
const lines = [header, header.map(() => '---')];
for (const r of rows) {
  lines.push([r.model, r.variant, r.exporter, r.loads, fmt(r.worst32), fmt(r.worst64), fmt(r.lossErr32), fmt(r.lossErr64), r.params, String(r.lostParams),
    r.modules, String(r.lostModules), String(r.wrong), `${r.warnings} / ${r.infos}`, (r.modelWide ? '(model-wide) ' : '') + r.notes]);
}
console.log(lines.map((l) => `| ${l.join(' | ')} |`).join('\n'));
const json = flag('json');
if (json) writeFileSync(json, JSON.stringify(rows, null, 1));
