/** The Python source mapper (tree-sitter): module paths -> definition and call lines (0-based), watches, attention sites. */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadPythonParser, nodeModulesWasm } from '../extension/python/parser';
import { indexPythonSource } from '../extension/python/sourceIndex';
import { mapModulePaths } from '../extension/python/moduleMap';
import { repoRoot } from './helpers';

const read = (...p: string[]) => fs.readFileSync(path.join(repoRoot, ...p), 'utf8');
/** 0-based line of the first line containing `text` (after `after`, if given). */
function lineOf(source: string, text: string, after = 0): number {
  const lines = source.split('\n');
  const i = lines.findIndex((l, n) => n >= after && l.includes(text));
  assert.ok(i >= 0, `'${text}' not found`);
  return i;
}

async function parser() {
  const w = nodeModulesWasm(repoRoot);
  return loadPythonParser(w.runtime, w.grammar);
}

test('tiny GPT example: ModuleList indices, nested classes via constructors, calls, watch and attention', async () => {
  const src = read('examples', 'tiny_gpt.py');
  const index = indexPythonSource(await parser(), src);
  const paths = ['blocks.0.attn.q_proj', 'blocks.1.attn.k_proj.bias', 'blocks.1.mlp.fc', 'tok_emb', 'lm_head', 'blocks.1', 'blocks'];
  const m = mapModulePaths(index, paths);
  assert.equal(m.root?.name, 'TinyGPT');
  assert.deepEqual(m.unmapped, []);
  const at = (p: string) => m.mapped.get(p)!;
  assert.equal(at('blocks.0.attn.q_proj').line, lineOf(src, 'self.q_proj = nn.Linear'));
  assert.deepEqual(at('blocks.0.attn.q_proj').callLines, [lineOf(src, 'q = self.q_proj(x)')]);
  assert.equal(at('blocks.1.attn.k_proj.bias').line, lineOf(src, 'self.k_proj = nn.Linear'));
  assert.equal(at('blocks.1.attn.k_proj.bias').kind, 'parameter');
  assert.equal(at('blocks.1.mlp.fc').line, lineOf(src, 'self.fc = nn.Linear'));
  // Every ModuleList index maps to the comprehension element; calls come from the loop body.
  assert.equal(at('blocks.1').line, lineOf(src, 'self.blocks = nn.ModuleList'));
  assert.deepEqual(at('blocks.1').callLines, [lineOf(src, 'x = block(x)')]);
  assert.equal(at('blocks').kind, 'container');
  assert.deepEqual(index.watches.map((w) => [w.line, w.kind, w.className]), [[lineOf(src, '# gradlens: watch'), 'comment', 'Block']]);
  assert.deepEqual(index.classes.flatMap((c) => c.attention.map((a) => [c.name, a.line, a.kind])), [['CausalSelfAttention', lineOf(src, 'attn = F.softmax'), 'softmax']]);
});

test('gold fixture models.py: several models in one file; the root is chosen by the paths', async () => {
  const src = read('test', 'gold', 'models.py');
  const index = indexPythonSource(await parser(), src);
  const mlp = mapModulePaths(index, ['layers.3', 'layers.9']);
  assert.equal(mlp.root?.name, 'MLPSigmoid');
  // The comprehension's element expression (the nn.Linear call) is the definition of every index.
  assert.equal(mlp.mapped.get('layers.3')!.line, lineOf(src, '[nn.Linear(dims[i], dims[i + 1])'));
  const lora = mapModulePaths(index, ['l1.lora_A', 'l1.base', 'l2']);
  assert.equal(lora.root?.name, 'LoRAModel');
  assert.equal(lora.mapped.get('l1.lora_A')!.kind, 'parameter');
  assert.equal(lora.mapped.get('l1.lora_A')!.line, lineOf(src, 'self.lora_A = nn.Parameter'));
  const gpt = mapModulePaths(index, ['blocks.1.attn.k_proj', 'layers.0'], 'GPT');
  assert.equal(gpt.mapped.get('blocks.1.attn.k_proj')!.line, lineOf(src, 'self.k_proj', lineOf(src, 'class CausalSelfAttention')));
  assert.deepEqual(gpt.unmapped, [{ path: 'layers.0', reason: "no attribute 'layers' is assigned in GPT.__init__" }]);
});

test('containers: Sequential(OrderedDict), append loops, ModuleDict, nested classes, add_module, MHA and SDPA, hooks', async () => {
  const src = read('test', 'fixtures', 'python', 'containers.py');
  const index = indexPythonSource(await parser(), src);
  const m = mapModulePaths(index, ['stem.fc', 'stem.act', 'experts.2.down', 'heads.cls', 'heads.reg', 'gate.proj', 'mha', 'scale', 'extra']);
  assert.equal(m.root?.name, 'Mixer');
  assert.deepEqual(m.unmapped, []);
  const at = (p: string) => m.mapped.get(p)!;
  assert.equal(at('stem.fc').line, lineOf(src, '("fc", nn.Linear'));
  assert.equal(at('stem.act').line, lineOf(src, '("act", nn.GELU'));
  assert.deepEqual(at('stem.fc').callLines, [lineOf(src, 'x = self.stem(x)')], 'Sequential elements run where the Sequential is called');
  assert.equal(at('experts.2.down').line, lineOf(src, 'self.down = nn.Linear'));
  assert.equal(m.mapped.get('experts.2.down')!.className, 'Linear');
  assert.equal(at('heads.cls').line, lineOf(src, '"cls": nn.Linear'));
  assert.equal(at('gate.proj').line, lineOf(src, 'self.proj = nn.Linear(d, n)'));
  assert.equal(at('scale').kind, 'parameter');
  assert.equal(at('extra').line, lineOf(src, 'self.add_module("extra"'));
  const experts = index.classes.find((c) => c.name === 'Mixer')!.childCalls.get('experts')!;
  assert.deepEqual(experts.sort((a, b) => a - b), [lineOf(src, 'y = y + expert(x)'), lineOf(src, 'self.experts[0](w)')]);
  const kinds = index.classes.flatMap((c) => c.attention.map((a) => `${c.name}:${a.kind}`)).sort();
  assert.deepEqual(kinds, ['Mixer.Gate:softmax', 'Mixer:MultiheadAttention', 'Mixer:scaled_dot_product_attention'].map((k) => k.replace('Mixer.Gate', 'Gate')).sort());
  const hook = index.watches.find((w) => w.kind === 'register_hook')!;
  assert.equal(hook.target, 'h');
  assert.equal(hook.valueLine, lineOf(src, 'h = x  # gradlens: watch'));
  assert.equal(index.watches.find((w) => w.kind === 'comment')!.target, 'h = x');
});

test('a broken file maps what it can and explains the rest', async () => {
  const src = read('test', 'fixtures', 'python', 'broken.py');
  const index = indexPythonSource(await parser(), src);
  assert.ok(index.errorLines.length > 0, 'the syntax error is noticed');
  const m = mapModulePaths(index, ['fc', 'block.inner.fc', 'a', 'proj'], 'Half');
  assert.equal(m.mapped.get('fc')!.line, lineOf(src, 'self.fc = nn.Linear'));
  const reasons = Object.fromEntries(m.unmapped.map((u) => [u.path, u.reason]));
  assert.match(reasons['block.inner.fc'], /class FancyBlock is not defined in this file/);
  assert.match(reasons.a, /no attribute 'a' is assigned in Half.__init__/);
  assert.match(reasons.proj, /no attribute 'proj'/);
  // No nn.Module at all, and an empty file: no throw, every path unmapped with a reason.
  const none = mapModulePaths(indexPythonSource(await parser(), 'x = 1\n'), ['fc']);
  assert.deepEqual(none.unmapped, [{ path: 'fc', reason: 'this file defines no nn.Module class' }]);
  assert.equal(mapModulePaths(indexPythonSource(await parser(), ''), ['fc']).root, null);
});

test('examples: Sequential children, LoRA parameters and the CNN map to their lines', async () => {
  const p = await parser();
  const healthy = read('examples', 'healthy_mlp.py');
  const h = mapModulePaths(indexPythonSource(p, healthy), ['blocks.3.fc', 'blocks.3', 'head']);
  assert.equal(h.mapped.get('blocks.3.fc')!.line, lineOf(healthy, 'self.fc = nn.Linear'));
  assert.equal(h.mapped.get('blocks.3')!.line, lineOf(healthy, 'self.blocks = nn.Sequential'));
  const cnn = read('examples', 'small_cnn.py');
  const c = mapModulePaths(indexPythonSource(p, cnn), ['features.0', 'features.4', 'classifier']);
  assert.equal(c.mapped.get('features.0')!.line, lineOf(cnn, 'nn.Conv2d(3, 16'));
  assert.equal(c.mapped.get('features.4')!.line, lineOf(cnn, 'nn.Conv2d(16, 32'));
  const lora = read('examples', 'lora.py');
  const l = mapModulePaths(indexPythonSource(p, lora), ['proj.lora_A', 'head.lora_B', 'proj.base']);
  assert.equal(l.root?.name, 'LoRAClassifier');
  assert.equal(l.mapped.get('head.lora_B')!.line, lineOf(lora, 'self.lora_B = nn.Parameter'));
});
