/** Report-to-overlay logic and diagnostics placement, on real example reports mapped onto their sources. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { diagnose, inspectOnnx, InspectionReport } from '../engine';
import { buildOverlays, callLineModules, LineAnchor, lineDiagnostics, LONG_LINE_COLUMNS, mergeOverlays, moduleSummary, overlayTextFor, placeFindings, problemsSummary } from '../extension/overlay/model';
import { hookOverlays } from '../extension/overlay/hooks';
import { sci, sciCompact, sparkline } from '../extension/overlay/format';
import { createPythonParser, indexPythonSource } from '../extension/sourceMap';
import { documentMapping, watchTarget } from '../extension/sourceMapper';
import { repoRoot } from './helpers';

const read = (f: string) => fs.readFileSync(path.join(repoRoot, 'examples', f), 'utf8');
const lineOf = (src: string, text: string) => src.split('\n').findIndex((l) => l.includes(text));

async function mapped(example: string, options: Parameters<typeof inspectOnnx>[2] = {}) {
  const src = read(`${example}.py`);
  const file = path.join(repoRoot, 'examples', `${example}.py`);
  const index = indexPythonSource(await createPythonParser(), src, file);
  const report = await inspectOnnx(new Uint8Array(fs.readFileSync(path.join(repoRoot, 'examples', `${example}.onnx`))), `${example}.onnx`, {
    ...options,
    watches: index.watches.map((x) => ({ target: watchTarget(x), file: `${example}.py`, line: x.valueLine + 1 })),
  });
  const mapping = documentMapping(index, report, file, src);
  return { src, report, anchors: mapping.anchors, mapping, root: { line: mapping.fallbackLine } };
}

test('format: scientific notation as shown after lines, and sparklines', () => {
  assert.equal(sci(0.0312), '3.1e-02');
  assert.equal(sci(1234.5), '1.2e+03');
  assert.equal(sci(0), '0');
  assert.equal(sci(NaN), 'NaN');
  assert.equal(sparkline([0, 1, 2, 4]), ' ▂▄█');
});

test('healthy MLP: definition lines show ‖∇‖ and the output shape, coloured healthy; hovers carry full statistics', async () => {
  const { src, report, anchors } = await mapped('healthy_mlp', { batch: 8 });
  const overlays = buildOverlays(report, anchors, diagnose(report));
  const head = overlays.find((o) => o.line === lineOf(src, 'self.head = nn.Linear'))!;
  const m = report.modules.find((x) => x.path === 'head')!;
  assert.equal(head.text, `‖∇‖ ${sciCompact(m.gradNorm)} · [8,10]`);
  assert.match(head.text, /^‖∇‖ \d\.\de-?\d+ · \[8,10\]$/);
  assert.equal(head.health, 'healthy');
  assert.match(head.hover, /\*\*head\*\* · Linear · 330 parameters · output \[8, 10\]/);
  assert.match(head.hover, /\| ∇weight \[10, 32\] \|/);
  assert.match(head.hover, /‖∇W‖\/‖W‖/);
  assert.match(head.hover, /gradient magnitudes `[ ▁▂▃▄▅▆▇█]+` \|x\| 1e/);
  // The Sequential of residual blocks: one definition line for 8 blocks, shown as a range.
  const blocks = overlays.find((o) => o.line === lineOf(src, 'self.blocks = nn.Sequential'))!;
  assert.match(blocks.text, /^‖∇‖ .+ … .+ · \d+ modules$/);
  assert.ok(overlays.every((o) => o.health === 'healthy' || o.health === 'neutral'));
});

test('vanishing MLP: the ModuleList line is coloured vanishing; diagnostics land on it; the loop call merges all layers', async () => {
  const { src, report, anchors, root } = await mapped('vanishing_mlp', { batch: 8 });
  const findings = diagnose(report);
  const overlays = buildOverlays(report, anchors, findings);
  const def = overlays.find((o) => o.line === lineOf(src, 'self.layers = nn.ModuleList'))!;
  assert.equal(def.health, 'vanishing');
  assert.equal(def.modulePaths.length, 10);
  // Its hover: one row per layer, the vanishing ones flagged, the worst finding on top.
  assert.match(def.hover, /^\*\*10 modules on this line\*\* · 9,322 parameters\n\n\$\(warning\) Vanishing gradient: RMS/);
  assert.match(def.hover, /\| layers\.0 \| Linear \| \d\.\d\de-\d\d \| .* \| \[8, 32\] \| vanishing \|/);
  assert.match(def.hover, /\| layers\.9 \| Linear \| .* \| \[8, 10\] \| ok \|/);
  const call = overlays.find((o) => o.line === lineOf(src, 'x = layer(x)'))!;
  assert.equal(call.modulePaths.length, 10, 'a loop over the container shows every layer');
  const placed = placeFindings(findings, anchors, root.line);
  assert.ok(placed.length >= 3);
  assert.ok(placed.every((p) => p.line === lineOf(src, 'self.layers = nn.ModuleList')));
  // One Problems entry for the line, naming the layers, worst first.
  const diags = lineDiagnostics(placed);
  assert.equal(diags.length, 1);
  assert.equal(diags[0].severity, 'warning');
  assert.match(diags[0].message, new RegExp(`^${placed.length} modules \\(layers\\.0, layers\\.1, layers\\.2, layers\\.3(, …)?\\): Vanishing gradient: RMS`));
});

test('tiny GPT: a call line shows the outermost call (mlp, not ln2 in its arguments) for every block; the watch line gets the hook overlay', async () => {
  const { src, report, anchors, mapping } = await mapped('tiny_gpt', { batch: 2, sequenceLength: 12 });
  const overlays = buildOverlays(report, anchors, diagnose(report));
  const callLine = lineOf(src, 'x = x + self.mlp(self.ln2(x))');
  const o = overlays.find((x) => x.line === callLine)!;
  // The line is in Block.forward, which both blocks run: both blocks' mlp, shown as a range with their shared shape.
  assert.deepEqual(o.modulePaths, ['blocks.0.mlp', 'blocks.1.mlp']);
  assert.match(o.text, /^‖∇‖ \d\.\de-?\d+ … \d\.\de-?\d+ · \[2,12,32\] · 2 modules$/, o.text);
  const hooks = hookOverlays(report, mapping.watchLines);
  assert.equal(hooks.length, 1);
  assert.equal(hooks[0].line, lineOf(src, '# gradlens: watch'));
  assert.match(hooks[0].text, /^∇ \d\.\de-?\d+ · \[2,12,32\] · zeros \d+% · ×2$/, hooks[0].text);
  // The watched line also calls self.attn: the hook text wins the line, the hover keeps both.
  const merged = mergeOverlays(overlays, hooks).filter((x) => x.line === hooks[0].line);
  assert.equal(merged.length, 1);
  assert.equal(merged[0].text, hooks[0].text);
  assert.match(merged[0].hover, /\*\*hook\*\*[\s\S]*\*\*2 modules on this line\*\*[\s\S]*\| blocks\.0\.attn \|[\s\S]*\| blocks\.1\.attn \|/);
  // The key bias: an info finding with the reason, placed on the k_proj definition line.
  const kb = diagnose(report).filter((f) => f.parameter?.endsWith('k_proj.bias'));
  assert.equal(kb.length, 2);
  const placed = placeFindings(kb, anchors, 0);
  assert.ok(placed.every((p) => p.line === lineOf(src, 'self.k_proj = nn.Linear')));
});

test('moduleSummary for a module without parameters uses its output gradient', () => {
  const m = {
    path: 'act', depth: 0, leaf: true, kind: 'Relu', parameters: [], parameterCount: 0, gradNorm: null, gradRms: null, weightNorm: null,
    gradToWeight: null, outputShape: [4, 8], activation: null, deadUnitFraction: null,
    outputGrad: { count: 32, norm: 0.5, mean: 0, std: 0, min: 0, max: 0, zeroFraction: 0, nanCount: 0, infCount: 0, histogram: { log10Edges: [], counts: [] } },
  } satisfies InspectionReport['modules'][number];
  assert.deepEqual(moduleSummary(m), { text: '‖∇out‖ 5.0e-1 · [4,8]', compact: '‖∇out‖ 5.0e-1' });
});

test('nested calls: `x = x + self.mlp(self.norm2(x))` shows mlp\'s output, not mlp.0\'s or norm2\'s (both exporters)', async () => {
  const file = path.join(repoRoot, 'test', 'fixtures', 'python', 'tiny_vit.py');
  const src = fs.readFileSync(file, 'utf8');
  const index = indexPythonSource(await createPythonParser(), src, file);
  for (const onnx of ['tiny_vit_legacy.onnx', 'tiny_vit_dynamo.onnx']) {
    const report = await inspectOnnx(new Uint8Array(fs.readFileSync(path.join(repoRoot, 'test', 'fixtures', 'onnx', onnx))), onnx, { batch: 8 });
    const { anchors } = documentMapping(index, report, file, src);
    const overlays = buildOverlays(report, anchors, diagnose(report));
    const at = (text: string) => overlays.find((o) => o.line === src.split('\n').findIndex((l) => l.trim() === text));
    const mlp = at('x = x + self.mlp(self.norm2(x))');
    assert.ok(mlp, `${onnx}: no overlay on the mlp call line`);
    assert.deepEqual(mlp.modulePaths, ['blocks.0.mlp', 'blocks.1.mlp'], onnx);
    // mlp's output is [8, 17, 16] (dim); mlp.0's is [8, 17, 32] (2 * dim): the line shows the former.
    assert.deepEqual(report.modules.find((m) => m.path === 'blocks.0.mlp.0')!.outputShape, [8, 17, 32]);
    assert.match(mlp.text, / · \[8,17,16\] · 2 modules$/, `${onnx}: ${mlp.text}`);
    const attn = at('x = x + self.attn(self.norm1(x))')!;
    assert.deepEqual(attn.modulePaths, ['blocks.0.attn', 'blocks.1.attn'], onnx);
    // `self.head(self.norm(x)[:, 0])`: head, not the norm in its argument.
    assert.deepEqual(at('return self.head(self.norm(x)[:, 0])')!.modulePaths, ['head'], onnx);
    const head = report.modules.find((m) => m.path === 'head')!;
    assert.equal(at('return self.head(self.norm(x)[:, 0])')!.text, `‖∇‖ ${sciCompact(head.gradNorm)} · [8,10]`);
  }
});

test('callLineModules: outermost call first; sibling calls each, in call order; Sequential elements inside the call', () => {
  const call = (modulePath: string, column: number, endColumn: number, through?: LineAnchor['through']): LineAnchor => ({ modulePath, line: 0, kind: 'call', column, endColumn, ...(through ? { through } : {}) });
  const depth = (p: string) => ({ tok: 0, pos: 1, 'blocks.0.mlp': 5, 'blocks.0.mlp.0': 6, 'blocks.0.norm2': 4 } as Record<string, number>)[p] ?? 9;
  // x = x + self.mlp(self.norm2(x)): mlp.0 runs through the Sequential's call; norm2 is an argument.
  assert.deepEqual(callLineModules([call('blocks.0.norm2', 17, 30), call('blocks.0.mlp', 8, 31), call('blocks.0.mlp.0', 8, 31, 'container')], depth), [['blocks.0.mlp']]);
  // x = self.tok(idx) + self.pos(pos): both, in forward order.
  assert.deepEqual(callLineModules([call('pos', 22, 35), call('tok', 4, 17)], depth), [['tok'], ['pos']]);
});

test('CodeLens: the class lens counts what the Problems panel lists, info items included (lora, small_cnn)', async () => {
  for (const [example, options] of [['lora', { batch: 8 }], ['small_cnn', { batch: 4 }]] as const) {
    const { report, anchors, root } = await mapped(example, options);
    const findings = diagnose(report);
    const problems = lineDiagnostics(placeFindings(findings, anchors, root.line));
    assert.ok(problems.length > 0, `${example}: the Problems panel lists something`);
    const summary = problemsSummary(problems);
    assert.notEqual(summary, 'no problems', example);
    const infos = problems.filter((p) => p.severity === 'info');
    if (infos.length) assert.match(summary, new RegExp(`${infos.length} info \\(${[...new Set(infos.map((p) => p.kind))].join(', ')}\\)`), `${example}: ${summary}`);
    const warnings = problems.filter((p) => p.severity === 'warning').length;
    if (warnings) assert.match(summary, new RegExp(`^${warnings} warnings? \\(`), `${example}: ${summary}`);
  }
  assert.equal(problemsSummary([]), 'no problems');
  assert.equal(problemsSummary([{ severity: 'warning', kind: 'vanishing' }, { severity: 'info', kind: 'zero-gradient' }, { severity: 'info', kind: 'zero-gradient' }]), '1 warning (vanishing) · 2 info (zero-gradient)');
});

test('long lines take the compact overlay: the first number, in the same notation', async () => {
  const { src, report, anchors } = await mapped('tiny_gpt', { batch: 2, sequenceLength: 12 });
  const overlays = buildOverlays(report, anchors, diagnose(report));
  const withCompact = overlays.filter((o) => o.compact !== undefined);
  assert.ok(withCompact.length > 0);
  for (const o of withCompact) {
    assert.ok(o.text.startsWith(o.compact!.split(' │ ')[0]), `${o.text} / ${o.compact}`);
    assert.ok(o.compact!.length < o.text.length);
    const code = src.split('\n')[o.line].trimEnd().length;
    assert.equal(overlayTextFor(o, code), code + 2 + o.text.length > LONG_LINE_COLUMNS ? o.compact : o.text);
  }
  const o = withCompact[0];
  assert.equal(overlayTextFor(o, 20), o.text);
  assert.equal(overlayTextFor(o, LONG_LINE_COLUMNS), o.compact);
  assert.equal(overlayTextFor({ text: 'x'.repeat(200) }, 90), 'x'.repeat(200), 'nothing shorter to show');
  assert.equal(sciCompact(0.0312), '3.1e-2');
  assert.equal(sciCompact(1234.5), '1.2e3');
  assert.equal(sciCompact(1.9), '1.9e0');
  assert.equal(sciCompact(0), '0');
});

test('LoRA: frozen base layers say "frozen" rather than nothing; the wrappers show their own gradient', async () => {
  const { src, report, anchors } = await mapped('lora', { batch: 8 });
  const overlays = buildOverlays(report, anchors, diagnose(report));
  const at = (text: string) => overlays.find((o) => o.line === lineOf(src, text))!;
  assert.equal(at('self.base = nn.Linear').text, 'frozen · 2 modules');
  assert.equal(at('self.proj = LoRALinear').text, `‖∇‖ ${sciCompact(report.modules.find((m) => m.path === 'proj')!.gradNorm)} · [8,64]`);
  // `self.head(torch.relu(self.proj(x)))`: head, the outermost call.
  assert.deepEqual(at('return self.head(torch.relu(self.proj(x)))').modulePaths, ['head']);
});
