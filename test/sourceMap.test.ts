/**
 * The Python source mapper (extension/sourceMap): tree-sitter index of model files, module paths ->
 * definition and call lines (0-based), watches, hooks, attention sites, metadata preference, and
 * graceful failure. Fixtures: test/gold/models.py and test/fixtures/python/*.py.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import {
  GRAMMAR_WASM,
  ModuleMapping,
  PythonParser,
  ResolvedModule,
  RUNTIME_WASM,
  SourceIndex,
  applySourceMetadata,
  createPythonParser,
  indexPythonSource,
  mapModulePaths,
  mapSource,
  nodeModulesWasmPaths,
  sameSourceFile,
} from '../extension/sourceMap';
import { repoRoot } from './helpers';

const read = (...p: string[]) => fs.readFileSync(path.join(repoRoot, ...p), 'utf8');
const fixture = (name: string) => read('test', 'fixtures', 'python', name);

/** 0-based line of the first line containing `text` at or after line `after` (0-based). */
function lineOf(source: string, text: string, after = 0): number {
  const lines = source.split('\n');
  const i = lines.findIndex((l, n) => n >= after && l.includes(text));
  assert.ok(i >= 0, `'${text}' not found`);
  return i;
}

/** `lineOf` inside a class: the first line with `text` after `class <name>`. */
const inClass = (source: string, cls: string, text: string) => lineOf(source, text, lineOf(source, `class ${cls}`));

const parser = (): Promise<PythonParser> => createPythonParser(nodeModulesWasmPaths(repoRoot));

function resolved(m: ModuleMapping, p: string): ResolvedModule {
  const r = m.resolved.get(p);
  assert.ok(r, `'${p}' is not resolved: ${m.unresolved.get(p)?.reason}`);
  return r;
}

function reason(m: ModuleMapping, p: string): string {
  const u = m.unresolved.get(p);
  assert.ok(u, `'${p}' unexpectedly resolved (line ${m.resolved.get(p)?.line})`);
  return u.reason;
}

test('parser: loads from explicit paths or a wasm directory, once; a bad path rejects', async () => {
  const a = await parser();
  const b = await createPythonParser(nodeModulesWasmPaths(repoRoot));
  assert.equal(a, b, 'cached');
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gl-wasm-'));
  const w = nodeModulesWasmPaths(repoRoot);
  fs.copyFileSync(w.runtimeWasm, path.join(dir, RUNTIME_WASM));
  fs.copyFileSync(w.grammarWasm, path.join(dir, GRAMMAR_WASM));
  const c = await createPythonParser(dir);
  const tree = c.parse('x = 1\n');
  assert.equal(tree.rootNode.type, 'module');
  tree.delete();
  await assert.rejects(createPythonParser({ runtimeWasm: w.runtimeWasm, grammarWasm: path.join(dir, 'missing.wasm') }));
  fs.rmSync(dir, { recursive: true, force: true });
});

test('gold models.py: ModuleList indices, nested classes, parameters; the root follows the paths', async () => {
  const src = read('test', 'gold', 'models.py');
  const index = indexPythonSource(await parser(), src, 'test/gold/models.py');
  assert.deepEqual(index.errors, []);
  assert.deepEqual(
    index.classes.filter((c) => c.isModule).map((c) => c.name),
    ['MLPSigmoid', 'ResBlock', 'MLPResidual', 'CNN', 'CausalSelfAttention', 'MLP', 'Block', 'GPT', 'LoRALinear', 'LoRAModel'],
  );

  // mlp_sigmoid: every index of the comprehension maps to its element; calls come from the loop.
  const mlp = mapModulePaths(index, ['layers.3', 'layers.9', 'layers.0.weight']);
  assert.equal(mlp.root?.name, 'MLPSigmoid');
  assert.equal(resolved(mlp, 'layers.3').line, lineOf(src, '[nn.Linear(dims[i], dims[i + 1]) for i in range(len(dims) - 1)]'));
  assert.equal(resolved(mlp, 'layers.3').line, 20);
  assert.equal(resolved(mlp, 'layers.9').line, 20);
  assert.deepEqual(resolved(mlp, 'layers.3').callLines, [lineOf(src, 'x = layer(x)')]);
  assert.equal(resolved(mlp, 'layers.3').className, 'Linear');
  assert.equal(resolved(mlp, 'layers.3').approximate, undefined);
  assert.equal(resolved(mlp, 'layers.0.weight').kind, 'parameter');
  assert.equal(resolved(mlp, 'layers.0.weight').modulePath, 'layers.0');

  // gpt: blocks.N -> Block -> CausalSelfAttention.
  const gptPaths = ['blocks.0.attn.q_proj', 'blocks.1.attn.k_proj', 'blocks.1.attn.k_proj.bias', 'blocks.1', 'blocks', 'blocks.0.mlp.fc', 'blocks.1.ln2', 'tok_emb', 'lm_head.weight', ''];
  const gpt = mapModulePaths(index, gptPaths);
  assert.equal(gpt.root?.name, 'GPT');
  assert.deepEqual([...gpt.unresolved.values()], []);
  const k = resolved(gpt, 'blocks.1.attn.k_proj');
  assert.equal(k.line, inClass(src, 'CausalSelfAttention', 'self.k_proj = nn.Linear'));
  assert.equal(k.line, 86);
  assert.deepEqual(k.definition, { line: 86, column: 8, endColumn: 19 }, 'the `self.k_proj` target');
  assert.equal(k.expression, 'nn.Linear(n_embd, n_embd, bias=True)');
  assert.equal(k.className, 'Linear');
  assert.equal(k.ownerClass, 'CausalSelfAttention');
  assert.equal(k.kind, 'module');
  assert.equal(k.origin, 'source');
  assert.equal(k.file, 'test/gold/models.py');
  assert.deepEqual(resolved(gpt, 'blocks.0.attn.q_proj').callLines, [lineOf(src, 'q = self.q_proj(x)')]);
  const bias = resolved(gpt, 'blocks.1.attn.k_proj.bias');
  assert.deepEqual([bias.kind, bias.modulePath, bias.parameter, bias.line], ['parameter', 'blocks.1.attn.k_proj', 'bias', k.line]);
  assert.deepEqual(bias.callLines, [lineOf(src, 'k = self.k_proj(x)')]);
  const block = resolved(gpt, 'blocks.1');
  assert.equal(block.line, inClass(src, 'GPT', '[Block(n_embd, n_head, block_size) for _ in range(n_layer)]'));
  assert.deepEqual([block.className, block.classLine, block.kind], ['Block', lineOf(src, 'class Block('), 'module']);
  assert.deepEqual(block.callLines, [inClass(src, 'GPT', 'x = blk(x)')]);
  const blocks = resolved(gpt, 'blocks');
  assert.deepEqual([blocks.kind, blocks.className, blocks.line], ['container', 'ModuleList', inClass(src, 'GPT', 'self.blocks = nn.ModuleList(')]);
  assert.equal(resolved(gpt, 'blocks.0.mlp.fc').line, inClass(src, 'MLP(', 'self.fc = nn.Linear(n_embd, 4 * n_embd)'));
  assert.deepEqual(resolved(gpt, 'blocks.1.ln2').callLines, [lineOf(src, 'x = x + self.mlp(self.ln2(x))')]);
  assert.deepEqual(resolved(gpt, 'lm_head.weight').callLines, [inClass(src, 'GPT', 'return self.lm_head(self.ln_f(x))')]);
  assert.deepEqual([resolved(gpt, '').kind, resolved(gpt, '').line], ['root', lineOf(src, 'class GPT(')]);
  assert.deepEqual(gpt.instances.get('Block'), ['blocks.1']);

  // lora: nn.Parameter attributes are parameters, used (not called) in forward.
  const lora = mapModulePaths(index, ['l1.lora_A', 'l1.base', 'l2.lora_B', 'l1.base.weight']);
  assert.equal(lora.root?.name, 'LoRAModel');
  const a = resolved(lora, 'l1.lora_A');
  assert.deepEqual([a.kind, a.className, a.line], ['parameter', 'Parameter', lineOf(src, 'self.lora_A = nn.Parameter')]);
  assert.equal(a.line, 182);
  assert.deepEqual(a.callLines, [lineOf(src, 'return self.base(x) + (x @ self.lora_A.T')]);
  assert.equal(resolved(lora, 'l2.lora_B').line, lineOf(src, 'self.lora_B = nn.Parameter'));

  // cnn and the residual MLP.
  const cnn = mapModulePaths(index, ['conv1', 'bn1', 'conv2.weight', 'fc']);
  assert.equal(cnn.root?.name, 'CNN');
  assert.equal(resolved(cnn, 'conv1').line, lineOf(src, 'self.conv1 = nn.Conv2d'));
  assert.deepEqual(resolved(cnn, 'conv1').callLines, [lineOf(src, 'x = self.pool(F.relu(self.bn1(self.conv1(x))))')]);
  const res = mapModulePaths(index, ['inp', 'blocks.5.fc', 'blocks.5.ln', 'head']);
  assert.equal(res.root?.name, 'MLPResidual');
  assert.equal(resolved(res, 'blocks.5.fc').line, inClass(src, 'ResBlock', 'self.fc = nn.Linear(d, d)'));
  assert.equal(resolved(res, 'blocks.5.ln').ownerClass, 'ResBlock');

  // A requested root that lacks the attribute explains itself.
  const wrong = mapModulePaths(index, ['blocks.1.attn.k_proj', 'layers.0'], { rootClass: 'GPT' });
  assert.equal(resolved(wrong, 'blocks.1.attn.k_proj').line, k.line);
  assert.equal(reason(wrong, 'layers.0'), "no attribute 'layers' in class GPT");

  // Attention: the softmax line of CausalSelfAttention.
  assert.deepEqual(
    index.attention.map((s) => [s.line, s.kind, s.role, s.className]),
    [[lineOf(src, 'P = F.softmax(S, dim=-1)'), 'softmax', 'call', 'CausalSelfAttention']],
  );
});

test('MLP shapes: Sequential (positional, OrderedDict, splat), ModuleList comprehension and append loops, nested containers', async () => {
  const src = fixture('mlp_shapes.py');
  const index = indexPythonSource(await parser(), src);

  const van = mapModulePaths(index, ['layers.0', 'layers.3', 'layers.9.bias']);
  assert.equal(van.root?.name, 'VanishingMLP');
  assert.equal(resolved(van, 'layers.3').line, 13);
  assert.deepEqual(resolved(van, 'layers.3').definition, { line: 13, column: 37, endColumn: 52 }, 'the element expression nn.Linear(a, b)');
  assert.deepEqual(resolved(van, 'layers.3').callLines, [17]);
  assert.equal(resolved(van, 'layers.9.bias').line, 13);

  const healthy = mapModulePaths(index, ['stem', 'blocks.3', 'blocks.3.fc', 'blocks.7.norm', 'head']);
  assert.equal(healthy.root?.name, 'HealthyMLP');
  assert.equal(resolved(healthy, 'blocks.3').line, 37);
  assert.equal(resolved(healthy, 'blocks.3').className, 'ResidualBlock');
  assert.deepEqual(resolved(healthy, 'blocks.3').callLines, [43], 'Sequential elements run where the Sequential is called');
  assert.equal(resolved(healthy, 'blocks.3.fc').line, 27);
  assert.deepEqual(resolved(healthy, 'blocks.3.fc').callLines, [30]);
  assert.equal(resolved(healthy, 'blocks.7.norm').line, 26);

  const paths = [
    'mlp', 'mlp.0', 'mlp.1', 'mlp.2', 'named.fc1', 'named.act', 'named.fc2', 'deep.0', 'deep.1', 'deep.4', 'deep.5',
    'stages.0', 'stages.1', 'stages.3.fc', 'towers.1', 'towers.1.0', 'towers.0.1', 'gen.2', 'tail.proj', 'mlp.3',
  ];
  const c = mapModulePaths(index, paths, { rootClass: 'Containers' });
  const lines = Object.fromEntries(paths.filter((p) => c.resolved.has(p)).map((p) => [p, c.resolved.get(p)!.line]));
  assert.deepEqual(lines, {
    mlp: 51,
    'mlp.0': 52,
    'mlp.1': 53,
    'mlp.2': 54,
    'named.fc1': 58,
    'named.act': 59,
    'named.fc2': 60,
    'deep.0': 65, // layers.append(nn.Linear) in a loop: even indices
    'deep.1': 66, // layers.append(nn.Tanh()): odd indices
    'deep.4': 65,
    'deep.5': 66,
    'stages.0': 70, // appended before the loop
    'stages.1': 72, // appended in the loop
    'stages.3.fc': 27,
    'towers.1': 74,
    'towers.1.0': 74,
    'towers.0.1': 74,
    'gen.2': 76,
    'tail.proj': 78, // add_module on a Sequential
  });
  assert.equal(resolved(c, 'deep.1').className, 'Tanh');
  assert.equal(resolved(c, 'deep.5').approximate, undefined, 'a regular loop gives exact indices');
  assert.deepEqual([resolved(c, 'towers.0.1').className, resolved(c, 'towers.1').className], ['ReLU', 'Sequential']);
  assert.equal(resolved(c, 'towers.1.0').definition.column, src.split('\n')[74].indexOf('nn.Linear(d, d)'));
  assert.deepEqual(resolved(c, 'mlp.0').callLines, [81]);
  assert.deepEqual(resolved(c, 'named.act').callLines, [82]);
  assert.deepEqual(resolved(c, 'stages.1').callLines, [85], 'for stage in self.stages: x = stage(x)');
  assert.deepEqual(resolved(c, 'stages.3.fc').callLines, [30]);
  assert.deepEqual(resolved(c, 'towers.1.0').callLines, [87], 'a loop over a ModuleList of Sequentials calls their elements');
  assert.deepEqual(resolved(c, 'gen.2').callLines, [88], 'self.gen[0](x) + self.gen[-1](x): -1 can be any element');
  assert.deepEqual(resolved(c, 'tail.proj').callLines, [89]);
  assert.deepEqual(resolved(c, 'mlp').callLines, [81]);
  assert.equal(reason(c, 'mlp.3'), "Sequential 'mlp' in class Containers has no element '3' in the source (3 found: 0, 1, 2)");
  assert.equal(c.unresolved.get('mlp.3')!.nearest?.line, 51);

  // The index itself: container children and their keys.
  const cls = index.classes.find((k) => k.name === 'Containers')!;
  const deep = cls.attributes.find((a) => a.name === 'deep')!;
  assert.deepEqual(
    deep.children.map((ch) => [ch.key, ch.className, ch.cycle]),
    [
      ['*', 'Linear', { start: 0, period: 2, phase: 0 }],
      ['*', 'Tanh', { start: 0, period: 2, phase: 1 }],
    ],
  );
  const named = cls.attributes.find((a) => a.name === 'named')!;
  assert.deepEqual(named.children.map((ch) => [ch.key, ch.origin]), [['fc1', 'ordered-dict'], ['act', 'ordered-dict'], ['fc2', 'ordered-dict']]);
});

test('transformer shapes: nested classes, ModuleDict, loops, checkpoint, attention sites, watches and hooks', async () => {
  const src = fixture('transformer_shapes.py');
  const index = indexPythonSource(await parser(), src);
  const paths = [
    '', 'tok_emb', 'blocks.0.attn.q_proj', 'blocks.1.attn.out_proj.weight', 'blocks.1.mlp', 'blocks.1.mlp.fc', 'blocks.0', 'blocks.1',
    'mixers.mha', 'mixers.mha.out_proj', 'mixers.flash.qkv', 'pool', 'lm_head',
  ];
  const m = mapModulePaths(index, paths);
  assert.equal(m.root?.qualifiedName, 'TinyGPT');
  assert.deepEqual([...m.unresolved.keys()], []);
  assert.equal(resolved(m, 'blocks.0.attn.q_proj').line, 19);
  assert.deepEqual(resolved(m, 'blocks.0.attn.q_proj').callLines, [26]);
  assert.equal(resolved(m, 'blocks.1.attn.out_proj.weight').line, 22);
  assert.deepEqual(resolved(m, 'blocks.1.attn.out_proj.weight').callLines, [33]);
  // Block.MLP(n_embd): a class nested in Block.
  const mlp = resolved(m, 'blocks.1.mlp');
  assert.deepEqual([mlp.line, mlp.className, mlp.classLine], [61, 'MLP', 47]);
  assert.deepEqual(mlp.callLines, [66]);
  assert.equal(resolved(m, 'blocks.1.mlp.fc').line, 50);
  assert.equal(resolved(m, 'blocks.1.mlp.fc').ownerClass, 'Block.MLP');
  assert.deepEqual(resolved(m, 'blocks.1.mlp.fc').callLines, [54]);
  // for i, block in enumerate(self.blocks): x = checkpoint(block, x) if i == 0 else block(x)
  assert.equal(resolved(m, 'blocks.0').line, 75);
  assert.deepEqual(resolved(m, 'blocks.0').callLines, [89]);
  assert.deepEqual(
    resolved(m, 'blocks.0').calls.map((c) => c.via),
    ['checkpoint', 'loop'],
  );
  // ModuleDict: literal keys; self.mixers["mha"](...) and a loop over .items().
  assert.equal(resolved(m, 'mixers.mha').line, 77);
  assert.deepEqual(resolved(m, 'mixers.mha').callLines, [90, 93]);
  assert.equal(resolved(m, 'mixers.flash.qkv').line, 39);
  assert.deepEqual(resolved(m, 'mixers.flash.qkv').callLines, [42]);
  const inner = resolved(m, 'mixers.mha.out_proj');
  assert.equal(inner.line, 77);
  assert.match(inner.approximate ?? '', /submodule inside the torch.nn class MultiheadAttention/);
  assert.deepEqual(m.instances.get('Block'), ['blocks.0', 'blocks.1']);
  assert.deepEqual(m.instances.get('Block.MLP'), ['blocks.1.mlp']);

  // Attention: a module-level helper, F.softmax, SDPA, MHA built and called, nn.Softmax built and called.
  assert.deepEqual(
    index.attention.map((a) => [a.line, a.kind, a.role, a.className ?? null, a.attribute ?? null]),
    [
      [12, 'softmax', 'call', null, null],
      [30, 'softmax', 'call', 'CausalSelfAttention', null],
      [43, 'scaled_dot_product_attention', 'call', 'FlashAttention', null],
      [77, 'MultiheadAttention', 'construct', 'TinyGPT', 'mixers'],
      [80, 'softmax', 'construct', 'TinyGPT', 'pool'],
      [90, 'MultiheadAttention', 'call', 'TinyGPT', 'mixers.mha'],
      [94, 'softmax', 'call', 'TinyGPT', 'pool'],
    ],
  );
  assert.deepEqual(index.classes.find((c) => c.name === 'FlashAttention')!.attention.map((a) => a.line), [43]);

  // Watches: a trailing comment, a comment on its own line (watches the next line), two hooks.
  assert.deepEqual(
    index.watches.map((w) => [w.line, w.kind, w.targets, w.valueLine, w.className]),
    [
      [30, 'comment', ['attn'], 30, 'CausalSelfAttention'],
      [31, 'register_hook', ['attn'], 30, 'CausalSelfAttention'],
      [65, 'comment', ['x'], 66, 'Block'],
      [83, 'register_hook', ['self.lm_head.weight'], 83, 'TinyGPT'],
    ],
  );
  const [comment, hook, , paramHook] = index.watches;
  assert.equal(comment.expression, 'attn = F.softmax(scores, dim=-1)');
  assert.deepEqual(comment.range, { line: 30, column: 8, endColumn: 40 });
  assert.deepEqual([hook.receiver, hook.hookMethod, hook.method], ['attn', 'register_hook', 'forward']);
  assert.deepEqual(paramHook.receiverChain, ['lm_head', 'weight']);
  assert.deepEqual(index.classes.find((c) => c.name === 'Block')!.watches.map((w) => w.line), [65]);
  assert.deepEqual(index.activations.map((a) => [a.line, a.name, a.className]), [[54, 'gelu', 'Block.MLP']]);
});

test('LoRA and CNN shapes: parameters, library subclasses, inherited attributes, computed names', async () => {
  const src = fixture('lora_cnn_shapes.py');
  const index = indexPythonSource(await parser(), src);
  const lora = mapModulePaths(index, ['proj.base', 'proj.lora_A', 'head.lora_B', 'proj.base.weight', 'head', 'proj.weight']);
  assert.equal(lora.root?.name, 'LoRAClassifier');
  assert.deepEqual([resolved(lora, 'proj.lora_A').line, resolved(lora, 'proj.lora_A').kind], [11, 'parameter']);
  assert.deepEqual(resolved(lora, 'proj.lora_A').callLines, [16]);
  assert.equal(resolved(lora, 'head.lora_B').line, 12);
  assert.deepEqual([resolved(lora, 'proj.base.weight').line, resolved(lora, 'proj.base.weight').parameter], [9, 'weight']);
  assert.deepEqual([resolved(lora, 'head').line, resolved(lora, 'head').className], [23, 'LoRALinear']);
  assert.equal(reason(lora, 'proj.weight'), "no attribute 'weight' in class LoRALinear");

  const cnnPaths = ['features.0', 'features.4', 'features.7', 'gated.conv', 'gated.bn.running_mean', 'gated.act', 'gated.gate', 'branch1', 'scales.1', 'classifier.weight'];
  const cnn = mapModulePaths(index, cnnPaths);
  assert.equal(cnn.root?.name, 'SmallCNN');
  assert.deepEqual([...cnn.unresolved.keys()], []);
  assert.deepEqual(
    cnnPaths.map((p) => resolved(cnn, p).line),
    [61, 65, 68, 39, 40, 49, 50, 72, 73, 74],
  );
  // Inherited from ConvBase (defined there, called in ConvBase.forward).
  assert.equal(resolved(cnn, 'gated.conv').ownerClass, 'ConvBase');
  assert.deepEqual(resolved(cnn, 'gated.conv').callLines, [43]);
  assert.deepEqual([resolved(cnn, 'gated.gate').kind, resolved(cnn, 'gated.gate').callLines], ['parameter', [54]]);
  assert.match(resolved(cnn, 'gated.act').note ?? '', /one branch/);
  assert.equal(resolved(cnn, 'gated.act').className, 'GELU');
  // setattr(self, f"branch{i}", ...): matched by pattern, called through getattr(self, "branch0").
  assert.match(resolved(cnn, 'branch1').approximate ?? '', /matches the name f"branch\{i\}"/);
  assert.deepEqual(mapModulePaths(index, ['branch0']).resolved.get('branch0')?.callLines, [78]);
  assert.deepEqual([resolved(cnn, 'scales.1').kind, resolved(cnn, 'scales.1').className], ['parameter', 'Parameter']);
  // ScaledLinear(nn.Linear): weight is inherited from the library class.
  assert.deepEqual([resolved(cnn, 'classifier.weight').kind, resolved(cnn, 'classifier.weight').className], ['parameter', 'ScaledLinear']);
  assert.deepEqual(resolved(cnn, 'features.4').callLines, [77]);
});

test('containers.py: append loop on self, ModuleDict, Mixer.Gate, add_module, MHA and SDPA, hooks', async () => {
  const src = fixture('containers.py');
  const index = indexPythonSource(await parser(), src);
  const m = mapModulePaths(index, ['stem.fc', 'stem.act', 'experts.2.down', 'heads.cls', 'gate.proj', 'mha', 'scale', 'extra']);
  assert.equal(m.root?.name, 'Mixer');
  assert.deepEqual([...m.unresolved.keys()], []);
  assert.equal(resolved(m, 'stem.fc').line, lineOf(src, '("fc", nn.Linear'));
  assert.deepEqual(resolved(m, 'stem.fc').callLines, [lineOf(src, 'x = self.stem(x)')]);
  assert.equal(resolved(m, 'experts.2.down').line, lineOf(src, 'self.down = nn.Linear'));
  assert.equal(resolved(m, 'experts.2.down').approximate, undefined);
  assert.equal(resolved(m, 'heads.cls').line, lineOf(src, '"cls": nn.Linear'));
  assert.deepEqual(resolved(m, 'heads.cls').callLines, [lineOf(src, 'return self.heads["cls"](out)')]);
  assert.equal(resolved(m, 'gate.proj').line, lineOf(src, 'self.proj = nn.Linear(d, n)'));
  assert.equal(resolved(m, 'scale').kind, 'parameter');
  assert.equal(resolved(m, 'extra').line, lineOf(src, 'self.add_module("extra"'));
  assert.deepEqual(
    index.attention.map((a) => [a.className, a.kind, a.role]),
    [
      ['Mixer.Gate', 'softmax', 'call'],
      ['Mixer', 'MultiheadAttention', 'construct'],
      ['Mixer', 'MultiheadAttention', 'call'],
      ['Mixer', 'scaled_dot_product_attention', 'call'],
    ],
  );
  const hook = index.watches.find((w) => w.kind === 'register_hook')!;
  assert.deepEqual([hook.receiver, hook.valueLine], ['h', lineOf(src, 'h = x  # gradlens: watch')]);
});

test('a local list reused for two containers, and appends after the copy, do not leak', async () => {
  const src = [
    'import torch.nn as nn',
    '',
    'class Net(nn.Module):',
    '    def __init__(self):',
    '        super().__init__()',
    '        layers = [nn.Linear(2, 2)]',
    '        self.a = nn.Sequential(*layers)',
    '        layers.append(nn.ReLU())',
    '        layers = []',
    '        layers.append(nn.Tanh())',
    '        self.b = nn.ModuleList(layers)',
    '',
  ].join('\n');
  const index = indexPythonSource(await parser(), src);
  const net = index.classes[0];
  assert.deepEqual(net.attributes.map((a) => [a.name, a.children.map((c) => `${c.key}:${c.className}`)]), [
    ['a', ['0:Linear']],
    ['b', ['0:Tanh']],
  ]);
  const m = mapModulePaths(index, ['a.0', 'a.1', 'b.0']);
  assert.deepEqual([resolved(m, 'a.0').line, resolved(m, 'b.0').line], [5, 9]);
  assert.match(reason(m, 'a.1'), /has no element '1'/);
});

test('graceful failure: classes from elsewhere, dynamic construction, a shadowed name, a syntax error half way', async () => {
  const src = fixture('graceful_failure.py');
  const index = indexPythonSource(await parser(), src);
  assert.ok(index.errors.some((e) => e.line === lineOf(src, 'self.proj = nn.Linear(4,')), 'the syntax error is reported');
  assert.deepEqual(index.warnings, []);
  assert.ok(index.classes.some((c) => c.name === 'AfterError'), 'classes after the error are still indexed');

  const paths = ['embed', 'blocks.0.attn.q_proj', 'blocks.1', 'layer1.0.weight', 'head.weight', 'backbone.fc', 'enc.layers.0.linear1', 'q', 'shadow.fc'];
  const m = mapModulePaths(index, paths);
  assert.equal(m.root?.name, 'Encoder');
  assert.equal(resolved(m, 'embed').line, 16);
  assert.equal(resolved(m, 'blocks.1').line, 17, 'the element itself is in the file even if its class is not');
  assert.equal(
    reason(m, 'blocks.0.attn.q_proj'),
    "class TransformerBlock is not defined in this file (it is imported from mylib.blocks), so 'attn.q_proj' cannot be located",
  );
  assert.equal(m.unresolved.get('blocks.0.attn.q_proj')!.nearest?.line, 17);
  assert.equal(reason(m, 'layer1.0.weight'), "'layer1' in class Encoder is assigned from `self._make_layer(d, 2)`, so its class is not known from this file and '0.weight' cannot be located");
  assert.equal(reason(m, 'head.weight'), "'head' in class Encoder is assigned from `make_head(d)`, so its class is not known from this file and 'weight' cannot be located");
  assert.equal(reason(m, 'backbone.fc'), "'backbone' in class Encoder is passed in as argument 'backbone' of __init__, so its class is not known from this file and 'fc' cannot be located");
  assert.equal(reason(m, 'enc.layers.0.linear1'), "class TransformerEncoder is not defined in this file (it comes from torch.nn), so 'layers.0.linear1' cannot be located");
  assert.equal(reason(m, 'q'), "no attribute 'q' in class Encoder (attributes set dynamically on line 25 cannot be named statically)");
  assert.equal(
    reason(m, 'shadow.fc'),
    "class Block defined on line 8 is rebound by the import on line 37 (from other.module), so the class used is not defined in this file and 'fc' cannot be located",
  );

  // The broken class: what parsed, plus what was recovered from the broken line.
  const broken = mapModulePaths(index, ['fc', 'proj', 'out'], { rootClass: 'Broken' });
  assert.equal(resolved(broken, 'fc').line, 42);
  assert.equal(resolved(broken, 'proj').line, 43);
  assert.equal(resolved(broken, 'proj').className, 'Linear');
  assert.deepEqual(resolved(broken, 'proj').callLines, [46]);
  assert.equal(reason(broken, 'out'), "no attribute 'out' in class Broken");
  const after = mapModulePaths(index, ['out'], { rootClass: 'AfterError' });
  assert.deepEqual([resolved(after, 'out').line, resolved(after, 'out').callLines], [52, [55]]);

  assert.deepEqual(
    [...mapModulePaths(index, ['fc'], { rootClass: 'Missing' }).unresolved.values()],
    [{ path: 'fc', reason: 'class Missing is not defined in this file' }],
  );
});

test('odd input never throws: empty, no module, garbage, deep nesting, odd paths', async () => {
  const p = await parser();
  const cases: [string, string][] = [
    ['', 'this file defines no class'],
    ['x = 1\n', 'this file defines no class'],
    ['class A:\n    pass\n', 'this file defines no nn.Module class'],
    ['\u0000\u0001((((\n', 'this file defines no class'],
    ['class A(nn.Module):\n    def __init__(self):\n        self.a = ' + '['.repeat(2000) + '\n', 'this file defines no class'],
  ];
  for (const [src, why] of cases) {
    const index = indexPythonSource(p, src);
    const m = mapModulePaths(index, ['fc', 'blocks.0']);
    assert.equal(m.root, null);
    assert.deepEqual([...m.unresolved.values()].map((u) => u.reason), [why, why], JSON.stringify(src.slice(0, 20)));
  }
  const index = indexPythonSource(p, fixture('mlp_shapes.py'));
  const m = mapModulePaths(index, ['layers..3', 'layers.x', '', 'layers.-1'], { rootClass: 'VanishingMLP' });
  assert.equal(reason(m, 'layers..3'), "'layers..3' is not a module path");
  assert.equal(resolved(m, 'layers.x').line, 13, 'a comprehension stands for any key');
  assert.equal(resolved(m, 'layers.-1').line, 13);
  assert.equal(resolved(m, '').kind, 'root');
  assert.equal(indexPythonSource(p, null as unknown as string).classes.length, 0);
});

test('columns are UTF-16 offsets, lines 0-based, CRLF files map the same', async () => {
  const p = await parser();
  const src = 'import torch.nn as nn\r\n\r\nclass M(nn.Module):\r\n    def __init__(self):\r\n        s = "é😀"; self.fc = nn.Linear(1, 1)\r\n\r\n    def forward(self, x):\r\n        return self.fc(x)\r\n';
  const m = mapModulePaths(indexPythonSource(p, src), ['fc']);
  const fc = resolved(m, 'fc');
  const line = src.split('\r\n')[4];
  assert.deepEqual(fc.definition, { line: 4, column: line.indexOf('self.fc'), endColumn: line.indexOf('self.fc') + 'self.fc'.length });
  assert.deepEqual(fc.callLines, [7]);
});

test('metadata: file/line from the model wins when it points into the open file', async () => {
  assert.ok(sameSourceFile('tiny_gpt.py', '/home/u/proj/examples/tiny_gpt.py'));
  assert.ok(sameSourceFile('examples/tiny_gpt.py', '/home/u/proj/examples/tiny_gpt.py'));
  assert.ok(sameSourceFile('/home/u/proj/examples/tiny_gpt.py', '/home/u/proj/examples/tiny_gpt.py'));
  assert.ok(sameSourceFile('C:\\Users\\u\\Proj\\Model.py', 'c:/users/u/proj/model.py'));
  assert.ok(!sameSourceFile('other/tiny_gpt.py', '/home/u/proj/examples/tiny_gpt.py'));
  assert.ok(!sameSourceFile('gpt.py', '/home/u/proj/examples/tiny_gpt.py'));
  assert.ok(!sameSourceFile('', '/x.py'));

  const src = read('test', 'gold', 'models.py');
  const file = path.join(repoRoot, 'test', 'gold', 'models.py');
  const { index, mapping } = mapSource(await parser(), src, ['blocks.0.attn.q_proj', 'blocks.0.attn.k_proj', 'lm_head', 'blocks.0.attn.mystery', 'mystery2'], {
    file,
    rootClass: 'GPT',
    metadata: {
      // 1-based, as stack traces print them.
      'blocks.0.attn.q_proj': { file: 'models.py', line: lineOf(src, 'q = self.q_proj(x)') + 1 },
      'blocks.0.attn.mystery': { file: 'gold/models.py', line: lineOf(src, 'y = P @ v') + 1 },
      lm_head: { file: 'elsewhere/train.py', line: 3 },
      mystery2: { file: 'models.py', line: 100000 },
    },
  });
  assert.equal(index.file, file);
  const q = resolved(mapping, 'blocks.0.attn.q_proj');
  assert.deepEqual([q.origin, q.line, q.metadataLine, q.definition.line], ['source+metadata', lineOf(src, 'q = self.q_proj(x)'), lineOf(src, 'q = self.q_proj(x)'), lineOf(src, 'self.q_proj = nn.Linear')]);
  assert.equal(resolved(mapping, 'blocks.0.attn.k_proj').origin, 'source');
  assert.equal(resolved(mapping, 'lm_head').origin, 'source', 'metadata for another file is ignored');
  const mystery = resolved(mapping, 'blocks.0.attn.mystery');
  assert.deepEqual([mystery.origin, mystery.line, mystery.definition.column], ['metadata', lineOf(src, 'y = P @ v'), 8]);
  assert.match(mystery.approximate ?? '', /no attribute 'mystery' in class CausalSelfAttention/);
  assert.equal(reason(mapping, 'mystery2'), "no attribute 'mystery2' in class GPT", 'a line past the end is ignored');

  // The input mapping is not modified.
  const plain = mapModulePaths(index, ['lm_head']);
  const withMap = applySourceMetadata(plain, new Map([['lm_head', { file: 'models.py', line: 1 }]]), { file });
  assert.equal(plain.resolved.get('lm_head')!.origin, 'source');
  assert.equal(withMap.resolved.get('lm_head')!.line, 0);
});

test('the example sources map like the fixtures', { skip: !fs.existsSync(path.join(repoRoot, 'examples', 'tiny_gpt.py')) && 'examples/ not present' }, async () => {
  const p = await parser();
  const load = (name: string): [string, SourceIndex] => {
    const src = read('examples', name);
    return [src, indexPythonSource(p, src, name)];
  };
  const [gptSrc, gpt] = load('tiny_gpt.py');
  const g = mapModulePaths(gpt, ['blocks.1.attn.k_proj', 'blocks.0.mlp.fc', 'lm_head']);
  assert.equal(g.root?.name, 'TinyGPT');
  assert.equal(resolved(g, 'blocks.1.attn.k_proj').line, lineOf(gptSrc, 'self.k_proj = nn.Linear'));
  assert.ok(gpt.attention.some((a) => a.kind === 'softmax' && a.line === lineOf(gptSrc, 'F.softmax(')));
  assert.ok(gpt.watches.some((w) => w.kind === 'comment' && w.line === lineOf(gptSrc, '# gradlens: watch')));
  const [vanSrc, van] = load('vanishing_mlp.py');
  assert.equal(resolved(mapModulePaths(van, ['layers.7']), 'layers.7').line, lineOf(vanSrc, 'nn.ModuleList(['));
  const [cnnSrc, cnn] = load('small_cnn.py');
  const c = mapModulePaths(cnn, ['features.0', 'features.4', 'classifier']);
  assert.equal(resolved(c, 'features.4').line, lineOf(cnnSrc, 'nn.Conv2d(16, 32'));
  const [loraSrc, lora] = load('lora.py');
  assert.equal(resolved(mapModulePaths(lora, ['proj.lora_A', 'head.lora_B']), 'head.lora_B').line, lineOf(loraSrc, 'self.lora_B = nn.Parameter'));
  const [healthySrc, healthy] = load('healthy_mlp.py');
  assert.equal(resolved(mapModulePaths(healthy, ['blocks.3.fc']), 'blocks.3.fc').line, lineOf(healthySrc, 'self.fc = nn.Linear'));
});
