/** Inspection of real PyTorch exports: per-module numbers equal the engine's gradients, and the findings make sense. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { diagnose, inspectOnnx, InspectionReport } from '../engine';
import { decodeValues, repoRoot } from './helpers';
import { loadModelFixture } from './fixture_models';

const fixture = (name: string) => new Uint8Array(fs.readFileSync(path.join(repoRoot, 'test', 'fixtures', 'onnx', name)));
const moduleOf = (r: InspectionReport, p: string) => {
  const m = r.modules.find((x) => x.path === p);
  assert.ok(m, `module ${p} missing from the report (have ${r.modules.map((x) => x.path).join(', ')})`);
  return m;
};
const norm = (v: ArrayLike<number>) => Math.sqrt(Array.from(v).reduce((s, x) => s + x * x, 0));

test('sigmoid MLP export: layer gradient norms equal PyTorch gold, and the first layers are flagged as vanishing', async () => {
  const gold = loadModelFixture('mlp_sigmoid');
  const feeds = { x: decodeValues(gold.inputs.x), targets: decodeValues(gold.inputs.targets) };
  const report = await inspectOnnx(fixture('mlp_sigmoid_op13_loss.onnx'), 'mlp_sigmoid', { dtype: 'float64', feeds });
  assert.equal(report.loss.kind, 'graph');
  assert.ok(Math.abs(report.loss.value - gold.loss) < 1e-6);
  for (let i = 0; i < 10; i++) {
    const m = moduleOf(report, `layers.${i}`);
    const expected = Math.hypot(norm(decodeValues(gold.grads[`layers.${i}.weight`])), norm(decodeValues(gold.grads[`layers.${i}.bias`])));
    assert.ok(Math.abs(m.gradNorm! - expected) <= 1e-6 * expected, `layers.${i}: ${m.gradNorm} vs ${expected}`);
    assert.equal(m.kind, 'Linear');
  }
  assert.deepEqual(moduleOf(report, 'layers.0').outputShape, [8, 32]);
  const vanishing = diagnose(report).filter((f) => f.kind === 'vanishing').map((f) => f.modulePath);
  assert.equal(vanishing[0], 'layers.0');
  assert.ok(!vanishing.includes('layers.9'));
});

test('residual MLP export: no findings', async () => {
  const report = await inspectOnnx(fixture('mlp_residual_op17_loss.onnx'), 'mlp_residual');
  assert.deepEqual(diagnose(report).map((f) => `${f.kind}:${f.modulePath}`), []);
  assert.ok(moduleOf(report, 'blocks.0.fc').gradNorm! > 0);
  assert.equal(moduleOf(report, 'blocks.0.ln').kind, 'LayerNorm');
});

test('GPT export: key bias gradient explained by softmax shift invariance; q/v biases are not flagged', async () => {
  const report = await inspectOnnx(fixture('gpt_op13_loss.onnx'), 'gpt');
  const findings = diagnose(report);
  for (const l of [0, 1]) {
    const k = moduleOf(report, `blocks.${l}.attn.k_proj`).parameters.find((p) => p.name.endsWith('bias'))!;
    assert.match(k.zeroReason ?? '', /softmax ignores constant shifts/);
    const f = findings.find((x) => x.parameter === `blocks.${l}.attn.k_proj.bias`);
    assert.ok(f, 'a zero-gradient finding for the key bias');
    assert.equal(f.kind, 'zero-gradient');
    assert.equal(f.severity, 'info');
    assert.ok(!findings.some((x) => x.parameter === `blocks.${l}.attn.q_proj.bias`));
  }
  assert.ok(moduleOf(report, 'blocks.0.attn').source, 'legacy verbose export carries source lines');
});

test('CNN export: conv biases before train-mode batch norm are explained', async () => {
  const report = await inspectOnnx(fixture('cnn_op17_loss.onnx'), 'cnn');
  for (const c of ['conv1', 'conv2']) {
    const bias = moduleOf(report, c).parameters.find((p) => p.name === `${c}.bias`)!;
    assert.match(bias.zeroReason ?? '', /batch norm/);
  }
  assert.deepEqual(moduleOf(report, 'conv1').outputShape, [4, 8, 8, 8]);
});

test('LoRA export: frozen base weights are reported as frozen, LoRA factors get gradients', async () => {
  const report = await inspectOnnx(fixture('lora_op17.onnx'), 'lora');
  const l1 = moduleOf(report, 'l1');
  assert.deepEqual(l1.parameters.map((p) => `${p.name}:${p.trainable}`).sort(), ['l1.lora_A:true', 'l1.lora_B:true']);
  const base = moduleOf(report, 'l1.base');
  assert.ok(base.parameters.every((p) => !p.trainable && p.grad === null), 'base weights frozen');
  assert.ok(l1.gradNorm! > 0);
});

test('watches resolve by source line, falling back to the module output', async () => {
  const probe = await inspectOnnx(fixture('gpt_op13_loss.onnx'), 'gpt');
  const src = moduleOf(probe, 'blocks.0.attn').source!;
  const report = await inspectOnnx(fixture('gpt_op13_loss.onnx'), 'gpt', {
    watches: [
      { target: 'attention line', file: src.file, line: src.line },
      { target: 'mlp output', file: 'elsewhere.py', line: 1, modulePath: 'blocks.1.mlp' },
      { target: 'nowhere', file: 'elsewhere.py', line: 1 },
    ],
  });
  // The watched line runs once per block: one log entry per instance.
  assert.deepEqual(report.hookLogs.map((h) => h.target).sort(), ['attention line', 'attention line', 'mlp output']);
  assert.deepEqual(report.hookLogs.filter((h) => h.target === 'attention line').map((h) => h.modulePath.split('.').slice(0, 2).join('.')).sort(), ['blocks.0', 'blocks.1']);
  const mlp = report.hookLogs.find((h) => h.target === 'mlp output')!;
  assert.ok(mlp.grad.norm > 0);
  assert.equal(mlp.modulePath, 'blocks.1.mlp');
  // Backward reaches the later layer first.
  assert.ok(mlp.order < report.hookLogs.find((h) => h.target === 'attention line')!.order);
});

const example = (name: string) => new Uint8Array(fs.readFileSync(path.join(repoRoot, 'examples', name)));

test('examples: the vanishing MLP gets vanishing findings, the healthy one none (nn.Sequential paths resolve)', async () => {
  const vanishing = diagnose(await inspectOnnx(example('vanishing_mlp.onnx'), 'vanishing_mlp.onnx', { batch: 8 }));
  assert.ok(vanishing.filter((f) => f.kind === 'vanishing').length >= 3);
  const healthy = await inspectOnnx(example('healthy_mlp.onnx'), 'healthy_mlp.onnx', { batch: 8 });
  assert.deepEqual(diagnose(healthy).map((f) => `${f.kind}:${f.modulePath}`), []);
  // Legacy exporter scopes Sequential children as '/blocks/blocks.2/fc': the module is blocks.2.fc.
  assert.ok(healthy.modules.some((m) => m.path === 'blocks.2.fc' && m.parameters.length === 2));
  assert.ok(!healthy.modules.some((m) => m.path.startsWith('blocks.blocks')));
});

test('examples: a -inf attention mask is not reported as an anomaly; LoRA A with B = 0 is explained', async () => {
  const gpt = await inspectOnnx(example('tiny_gpt.onnx'), 'tiny_gpt.onnx', { batch: 2, sequenceLength: 16 });
  assert.equal(gpt.firstNonFinite, undefined);
  const lora = await inspectOnnx(example('lora.onnx'), 'lora.onnx', { batch: 8 });
  const a = lora.modules.flatMap((m) => m.parameters).find((p) => p.name === 'proj.lora_A')!;
  assert.match(a.zeroReason ?? '', /proj\.lora_B', which is all zeros/);
});
