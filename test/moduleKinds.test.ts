/**
 * Module kinds in the table and hovers: the class the exporter recorded, else the class the source constructs,
 * else (leaves only) the torch.nn class the module's own ops come from; never an op name for a container.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inspectOnnx, InspectionReport, leafKindFromOps, loadOnnx, moduleKindInfo, withModuleKinds } from '../engine';
import { createPythonParser, indexPythonSource } from '../extension/sourceMap';
import { documentMapping } from '../extension/sourceMapper';
import { sourceKinds } from '../extension/sourceAnchors';
import { repoRoot } from './helpers';

const bytes = (...p: string[]) => new Uint8Array(fs.readFileSync(path.join(repoRoot, ...p)));

/** Inspects an export and names its modules as the extension does (export, then source, then 'Module'). */
async function kindsOf(onnx: string[], py: string[]): Promise<{ report: InspectionReport; kinds: Map<string, string> }> {
  const report = await inspectOnnx(bytes(...onnx), onnx[onnx.length - 1], { batch: 2 });
  const file = path.join(repoRoot, ...py);
  const src = fs.readFileSync(file, 'utf8');
  const mapping = documentMapping(indexPythonSource(await createPythonParser(), src, file), report, file, src);
  const named = withModuleKinds(report, sourceKinds(report.modules, mapping.classOf));
  return { report: named, kinds: new Map(named.modules.map((m) => [m.path, m.kind])) };
}

/** ONNX op types: no container may be named after one. */
const OP_NAMES = /^(Add|Mul|Sub|Div|MatMul|Gemm|Transpose|Reshape|Relu|Sigmoid|Gather|Flatten|Erf|Conv|Concat|Slice|Softmax|Embedding)$/;

test('leafKindFromOps: a leaf is named after the torch.nn class its ops come from, or not at all', () => {
  const op = (opType: string, readsParameter = false, weightRank?: number) => ({ opType, readsParameter, weightRank });
  assert.equal(leafKindFromOps([op('Gemm', true, 2)]), 'Linear');
  assert.equal(leafKindFromOps([op('MatMul', true, 2), op('Add', true)]), 'Linear');
  assert.equal(leafKindFromOps([op('Conv', true, 4)]), 'Conv2d');
  assert.equal(leafKindFromOps([op('Conv', true, 3)]), 'Conv1d');
  assert.equal(leafKindFromOps([op('Gather', true, 2)]), 'Embedding');
  assert.equal(leafKindFromOps([op('ReduceMean'), op('Sub'), op('Pow'), op('ReduceMean'), op('Add'), op('Sqrt'), op('Div'), op('Mul', true), op('Add', true)]), 'LayerNorm');
  assert.equal(leafKindFromOps([op('Div'), op('Erf'), op('Add'), op('Mul'), op('Mul')]), 'GELU');
  assert.equal(leafKindFromOps([op('Relu')]), 'ReLU');
  // A MatMul between two activations (attention scores) is no Linear; a Gather of an index is no Embedding.
  assert.equal(leafKindFromOps([op('MatMul'), op('Transpose')]), undefined);
  assert.equal(leafKindFromOps([op('Gather'), op('Add')]), undefined);
});

test('dynamo export: every kind is the class the exporter recorded, containers included', async () => {
  const model = loadOnnx(bytes('test', 'fixtures', 'onnx', 'tiny_vit_dynamo.onnx'));
  const info = moduleKindInfo(model);
  assert.deepEqual(info.get(''), { name: 'TinyViT', from: 'export' });
  assert.deepEqual(info.get('blocks'), { name: 'Sequential', from: 'export' });
  assert.deepEqual(info.get('blocks.0'), { name: 'Block', from: 'export' });
  assert.deepEqual(info.get('blocks.0.attn'), { name: 'Attention', from: 'export' });
  assert.deepEqual(info.get('blocks.1.mlp.1'), { name: 'GELU', from: 'export' });
  assert.deepEqual(info.get('patch_embed'), { name: 'Conv2d', from: 'export' });
});

test('legacy export: containers get their class from the source, leaves from their ops, nothing an op name', async () => {
  const { report, kinds } = await kindsOf(['test', 'fixtures', 'onnx', 'tiny_vit_legacy.onnx'], ['test', 'fixtures', 'python', 'tiny_vit.py']);
  // The legacy exporter records no classes: nothing comes from the export.
  const before = moduleKindInfo(loadOnnx(bytes('test', 'fixtures', 'onnx', 'tiny_vit_legacy.onnx')));
  assert.ok([...before.values()].every((k) => k.from === 'ops'));
  assert.equal(before.has('blocks.0.attn'), false, 'a container gets no kind from its ops');
  assert.equal(kinds.get(''), 'TinyViT');
  assert.equal(kinds.get('blocks'), 'Sequential');
  assert.equal(kinds.get('blocks.0'), 'Block');
  assert.equal(kinds.get('blocks.0.attn'), 'Attention');
  assert.equal(kinds.get('blocks.0.mlp'), 'Sequential');
  assert.equal(kinds.get('blocks.0.mlp.0'), 'Linear');
  assert.equal(kinds.get('blocks.0.mlp.1'), 'GELU');
  assert.equal(kinds.get('blocks.0.norm1'), 'LayerNorm');
  assert.equal(kinds.get('patch_embed'), 'Conv2d');
  assert.equal(report.modules.find((m) => m.path === 'blocks.0.attn')!.kindFrom, 'source');
});

test('examples: the kinds the issue found wrong (the model, attn, blocks.N, mlp, LoRALinear, lm_head) name classes', async () => {
  const gpt = await kindsOf(['examples', 'tiny_gpt.onnx'], ['examples', 'tiny_gpt.py']);
  assert.equal(gpt.kinds.get(''), 'TinyGPT');
  assert.equal(gpt.kinds.get('blocks.0'), 'Block');
  assert.equal(gpt.kinds.get('blocks.0.attn'), 'CausalSelfAttention');
  assert.equal(gpt.kinds.get('blocks.1.mlp'), 'MLP');
  assert.equal(gpt.kinds.get('lm_head'), 'Linear');
  assert.equal(gpt.kinds.get('tok_emb'), 'Embedding');
  const lora = await kindsOf(['examples', 'lora.onnx'], ['examples', 'lora.py']);
  assert.deepEqual(Object.fromEntries(lora.kinds), { '': 'LoRAClassifier', proj: 'LoRALinear', 'proj.base': 'Linear', head: 'LoRALinear', 'head.base': 'Linear' });
  const cnn = await kindsOf(['examples', 'small_cnn.onnx'], ['examples', 'small_cnn.py']);
  assert.equal(cnn.kinds.get(''), 'SmallCNN');
  assert.equal(cnn.kinds.get('features'), 'Sequential');
  assert.equal(cnn.kinds.get('features.2'), 'ReLU');
  const vanishing = await kindsOf(['examples', 'vanishing_mlp.onnx'], ['examples', 'vanishing_mlp.py']);
  assert.equal(vanishing.kinds.get(''), 'VanishingMLP');
  for (const { report } of [gpt, lora, cnn, vanishing]) {
    for (const m of report.modules.filter((x) => !x.leaf)) assert.doesNotMatch(m.kind, OP_NAMES, `${report.model.name} ${m.path || '(model)'} is named ${m.kind}`);
  }
});

test('without a source the report says Module for a container, never its first op', async () => {
  const report = await inspectOnnx(bytes('examples', 'vanishing_mlp.onnx'), 'vanishing_mlp.onnx', { batch: 2 });
  const root = report.modules.find((m) => m.path === '')!;
  assert.equal(root.kind, 'Module');
  assert.equal(root.kindFrom, undefined);
  assert.equal(report.modules.find((m) => m.path === 'layers.0')!.kind, 'Linear');
});
