/**
 * Models exported the way torch 2.13 exports them (test/gold/exporters/export_zoo.py: a hand-written ViT,
 * GPT-2, BERT, LLaMA, Qwen2 and T5 from transformers' configs with an attention mask, timm's ViT,
 * torchvision's MobileNetV3, a Conv-BatchNorm net; each through the dynamo exporter with its defaults —
 * optimize=True, weights in model.onnx.data — and with optimize=False, and through the legacy exporter; at
 * library init, where optimize=True merges equal initializers, and perturbed) are read the way the extension
 * reads them (with their external data) and inspected, and every PyTorch parameter and every module the report
 * shows is checked (test/exportMatrix.ts): gradient norm and parameter count equal PyTorch's (float32: 1e-4
 * relative, or PyTorch's own float32-vs-float64 difference where larger; float64: 1e-6 relative), or the model
 * says, in a note that is not marked restored, what the export did to it. No anonymous exporter constant is
 * trainable. bench/exports_table.mjs prints the same checks as a table.
 */
import { after, before, describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { diagnose, FloatDType, getBackend, inspectOnnx, loadOnnx, setBackend, Tensor } from '../engine';
import type { Backend } from '../engine/backend/backend';
import { WASM_KERNEL_FILES } from '../engine/backend/wasm';
import { loadWasmBackendNode } from '../engine/backend/wasm/node';
import { OnnxTrainer } from '../engine/train';
import { readModelFiles } from '../extension/modelFiles';
import { repoRoot } from './helpers';
import { withModuleKinds } from '../engine/inspect/report';
import { createPythonParser, indexPythonSource } from '../extension/sourceMap';
import { documentMapping } from '../extension/sourceMapper';
import { sourceKinds } from '../extension/sourceAnchors';
import { checkExport, EXPORTS_DIR as DIR, feedsOf, Gold, loadGolds, nodeFs } from './exportMatrix';

const golds = loadGolds();

/** Every PyTorch parameter and every module shown has PyTorch's gradient and count, or differs by what a note names. */
async function assertLikePyTorch(gold: Gold, file: string, dtype: FloatDType, backend?: string): Promise<void> {
  const c = await checkExport(gold, file, dtype);
  const what = `${file} ${dtype}${backend ? ` ${backend}` : ''}`;
  assert.ok(c.loads, `${file}: ${c.error}`);
  if (backend) assert.equal(c.backend, backend);
  // Nothing trainable that PyTorch does not have (anonymous constants such as val_24, expand, embedding_1), except
  // a layer's weights the exporter folded under an anonymous name, which a note names as not PyTorch's.
  assert.deepEqual(c.strangers, [], `${file}: trainable but not PyTorch parameters`);
  for (const p of c.parameters) {
    assert.notEqual(p.status, 'missing', `${file}: PyTorch parameter ${p.name} is missing and no note names it`);
    assert.notEqual(p.status, 'wrong', `${what}: ‖∇${p.name}‖ = ${p.got}, PyTorch ${p.want} (tolerance ${p.tolerance})`);
  }
  for (const m of c.modules) {
    assert.notEqual(m.status, 'wrong', `${what}: module '${m.path}' shows ${m.count} parameters, ‖∇‖ ${m.gradNorm}; PyTorch ${m.wantCount}, ${m.wantGradNorm}`);
  }
  if (!c.modelWide) {
    assert.ok(Math.abs(c.loss! - c.wantLoss) <= c.lossTolerance, `${what}: loss ${c.loss}, PyTorch ${c.wantLoss}`);
    const checked = c.parameters.filter((p) => p.status === 'ok').length;
    assert.ok(checked >= c.parameters.length / 2, `${file}: only ${checked} parameters checked`);
    // The whole model's count is PyTorch's less what the notes name as lost (with the metadata lost, merged parameters
    // cannot be told apart, and that note is on the model).
    const lost = new Set(c.notes.filter((n) => !n.restored).flatMap((n) => n.parameters));
    const root = c.modules.find((m) => m.path === '');
    if (root && !c.metadataLost) assert.equal(root.count, Object.entries(gold.parameters).filter(([n]) => !lost.has(n)).reduce((s, [, p]) => s + p.numel, 0));
  }
}

describe('torch 2.13 exports: every parameter and module has PyTorch\'s gradient and count, or a note saying what the export lost', () => {
  test('the matrix: every model through the three exporters, the text models at library init and perturbed', () => {
    const has = (model: string, variant: string, exporter: string) => golds.some((g) => g.model === model && g.variant === variant && g.exports.includes(`${model}_${variant}_${exporter}.onnx`));
    for (const model of ['vit', 'gpt2', 'bert', 'llama', 'qwen2', 't5', 'timm_vit', 'tv_mobilenet_v3', 'cnn_bn']) {
      for (const exporter of ['dynamo', 'noopt', 'legacy']) assert.ok(['init', 'perturbed'].some((v) => has(model, v, exporter)), `${model}: no ${exporter} export`);
    }
    for (const model of ['gpt2', 'bert', 'llama', 'qwen2', 't5']) for (const v of ['init', 'perturbed']) assert.ok(has(model, v, 'dynamo'), `${model} ${v}: no dynamo export`);
  });

  for (const gold of golds) {
    for (const file of gold.exports) {
      for (const dtype of ['float32', 'float64'] as FloatDType[]) test(`${file} (${dtype})`, () => assertLikePyTorch(gold, file, dtype));
    }
  }

  // The WebAssembly SIMD kernels the extension runs, float32.
  describe('on the wasm-simd backend', () => {
    let previous: Backend;
    before(async () => {
      previous = getBackend();
      setBackend(await loadWasmBackendNode(WASM_KERNEL_FILES.simd));
    });
    after(() => setBackend(previous));
    for (const gold of golds) for (const file of gold.exports) test(`${file} (float32, wasm-simd)`, () => assertLikePyTorch(gold, file, 'float32', 'wasm-simd'));
  });

  // A Conv-BN + Dropout model exported after model.eval(), with both exporters: the inspection runs it as PyTorch
  // trains it by default (batch statistics) and as model.eval() runs it with mode 'eval'.
  const evalGold = golds.find((g) => g.model === 'cnn_bn_drop')!;
  const gradsOf = async (file: string, mode: 'train' | 'eval' | undefined, dtype: FloatDType) => {
    const files = await readModelFiles(path.join(DIR, file), nodeFs);
    const gradients = new Map<string, ArrayLike<number>>();
    const targets = new Tensor(Int32Array.from(evalGold.targets.data), [evalGold.targets.data.length]);
    const report = await inspectOnnx(files.bytes, file, {
      externalData: files.externalData, dtype, attentionSample: -1, feeds: feedsOf(evalGold), gradients,
      lossSpec: { kind: 'crossEntropy', targets }, ...(mode ? { mode } : {}),
    });
    const norms = new Map([...gradients].map(([n, g]) => [n, Math.sqrt(Array.from(g).reduce((s, x) => s + x * x, 0))]));
    return { report, norms };
  };
  for (const file of evalGold.exports) {
    for (const dtype of ['float32', 'float64'] as FloatDType[]) {
      test(`${file} (exported in eval mode, ${dtype}): train-mode gradients by default, eval-mode gradients in eval mode`, async () => {
        const notes = loadOnnx(fs.readFileSync(path.join(DIR, file)), { externalData: fs.existsSync(path.join(DIR, `${file}.data`)) ? { [`${file}.data`]: fs.readFileSync(path.join(DIR, `${file}.data`)) } : undefined }).exportNotes;
        // BatchNorm folded into the convolution (dynamo's optimize=True, the TorchScript exporter's constant folding):
        // train mode cannot be PyTorch's, and the model says so.
        const folded = notes.some((n) => n.kind === 'bn-folded' && n.modulePath === '' && !n.restored);
        assert.equal(folded, /_(dynamo|legacy)_eval/.test(file), `${file}: ${notes.map((n) => n.kind)}`);
        const lost = new Set(notes.filter((n) => !n.restored).flatMap((n) => n.parameters));
        const tol = (want: number) => dtype === 'float32' ? Math.max(1e-4 * want, 1e-7) : Math.max(1e-6 * want, 1e-12);
        for (const mode of [undefined, 'eval'] as const) {
          const { report, norms } = await gradsOf(file, mode, dtype);
          assert.equal(report.mode, mode ?? 'train');
          const gold = mode === 'eval' ? evalGold.eval! : evalGold;
          if (folded && mode !== 'eval') {
            // The loss is not PyTorch's train-mode loss: the run could not use batch statistics.
            assert.ok(Math.abs(report.loss.value - gold.loss[dtype]) > 1e-3, `${file}: a folded BatchNorm gave the train-mode loss`);
            continue;
          }
          // Folded weights were computed by the exporter in float32: a float64 run of them is float32-exact only.
          const lossTol = (dtype === 'float32' || folded ? 1e-5 : 1e-10) * Math.max(1, gold.loss[dtype]);
          assert.ok(Math.abs(report.loss.value - gold.loss[dtype]) <= lossTol, `${file} ${mode ?? 'train'}: loss ${report.loss.value}, PyTorch ${gold.loss[dtype]}`);
          let checked = 0;
          for (const [name, p] of Object.entries(gold.parameters)) {
            const want = dtype === 'float32' ? p.grad32! : p.grad64!;
            const got = norms.get(name);
            if (got === undefined) {
              // Parameters the fold removed (the BatchNorm's) or renamed (the fused convolution weights) are named by a note.
              assert.ok(folded, `${file}: ${name} has no gradient`);
              continue;
            }
            if (lost.has(name)) continue;
            assert.ok(Math.abs(got - want) <= (folded ? Math.max(tol(want), 1e-5 * want) : tol(want)), `${file} ${mode ?? 'train'} ${dtype}: ‖∇${name}‖ = ${got}, PyTorch ${want}`);
            checked++;
          }
          assert.ok(checked >= (folded ? 2 : Object.keys(gold.parameters).length), `${file}: only ${checked} parameters checked`);
        }
      });
    }
  }

  test('Train N Steps follows the run mode too: its first step has PyTorch\'s train-mode loss on an eval-mode export (eval-mode loss in eval mode)', async () => {
    const file = 'cnn_bn_drop_perturbed_noopt_eval.onnx';
    const targets = new Tensor(Int32Array.from(evalGold.targets.data), [evalGold.targets.data.length]);
    for (const [training, want] of [[true, evalGold.loss.float64], [false, evalGold.eval!.loss.float64]] as const) {
      const files = await readModelFiles(path.join(DIR, file), nodeFs);
      const model = loadOnnx(files.bytes, { externalData: files.externalData, dtype: 'float64' });
      const trainer = new OnnxTrainer(model, {
        optimizer: { kind: 'sgd', lr: 0.1 }, feeds: feedsOf(evalGold), loss: { kind: 'crossEntropy', targets }, training, modelName: file, anomaly: false,
      });
      const step = trainer.step();
      assert.ok(Math.abs(step.loss - want) <= 1e-10 * want, `training ${training}: first-step loss ${step.loss}, PyTorch ${want}`);
    }
  });

  test('an eval-mode export says what train mode cannot undo: Dropout turned into an identity, BatchNorm folded', () => {
    const notes = (file: string) => {
      const data = path.join(DIR, `${file}.data`);
      return loadOnnx(fs.readFileSync(path.join(DIR, file)), { externalData: fs.existsSync(data) ? { [`${file}.data`]: fs.readFileSync(data) } : undefined }).exportNotes;
    };
    const noopt = notes('cnn_bn_drop_perturbed_noopt_eval.onnx');
    assert.ok(noopt.some((n) => n.kind === 'dropout-removed' && n.modulePath === 'drop' && !n.restored && /model\.train\(\)/.test(n.message)));
    assert.ok(noopt.some((n) => n.kind === 'eval-export' && n.modulePath === '' && n.restored && /drop/.test(n.message)));
    // A train-mode export of a Dropout with p=0 is an identity too: without a BatchNorm to tell the mode, only said.
    const t5 = notes('t5_init_noopt.onnx');
    assert.ok(t5.length > 0 && t5.every((n) => n.kind === 'dropout-removed' && n.restored && /p is 0/.test(n.message)), JSON.stringify(t5.slice(0, 2)));
    // optimize=True removes the identity too: only the model-wide note is left.
    assert.ok(notes('cnn_bn_drop_perturbed_dynamo_eval.onnx').some((n) => n.kind === 'eval-export'));
    // The TorchScript exporter's eval default: BatchNorm multiplied into anonymous convolution weights.
    const legacy = notes('cnn_bn_drop_perturbed_legacy_eval.onnx');
    assert.ok(legacy.some((n) => n.kind === 'bn-fused-weight' && n.modulePath === 'conv1' && n.parameters.every((p) => p.startsWith('onnx::Conv_')) && /do_constant_folding=False/.test(n.message)));
    // Without folding, nothing is lost (and the TorchScript export carries no metadata to tell its mode).
    assert.deepEqual(notes('cnn_bn_drop_perturbed_legacy_nofold_eval.onnx'), []);
  });

  test('what the default export loses is named on the modules that lost it', () => {
    const notes = (file: string) => {
      const bytes = fs.readFileSync(path.join(DIR, file));
      const model = loadOnnx(bytes, { externalData: { [`${file}.data`]: fs.readFileSync(path.join(DIR, `${file}.data`)) } });
      return model.exportNotes;
    };
    const vit = notes('vit_init_dynamo.onnx');
    // Equal fresh LayerNorms merged into one initializer: split back, one restored note per LayerNorm.
    assert.ok(vit.some((n) => n.kind === 'merged' && n.restored && n.parameters[0] === 'blocks.1.norm2.weight'));
    // Linear weights stored transposed as val_12...: mapped back.
    assert.ok(vit.some((n) => n.kind === 'transposed' && n.restored && n.parameters[0] === 'blocks.0.attn.qkv.weight'));
    // cls_token expanded over the static batch and folded into a constant: lost, on the root module.
    assert.ok(vit.some((n) => n.kind === 'folded' && !n.restored && n.modulePath === '' && n.parameters.includes('cls_token')));
    const gpt2 = notes('gpt2_init_dynamo.onnx');
    assert.ok(gpt2.some((n) => n.kind === 'folded' && n.modulePath === 'transformer.wpe' && /optimize=False/.test(n.message)));
    assert.ok(gpt2.some((n) => n.kind === 'dropped' && n.parameters.includes('transformer.h.0.attn.c_attn.bias')));
    const cnn = notes('cnn_bn_perturbed_dynamo.onnx');
    assert.ok(cnn.some((n) => n.kind === 'bn-folded' && n.modulePath === 'bn1' && n.parameters.includes('bn1.weight')));
    assert.ok(cnn.some((n) => n.kind === 'bn-fused-weight' && n.parameters[0] === 'conv1.weight'));
    // optimize=False keeps BatchNorm, in inference form: run with batch statistics as PyTorch did, and say so.
    const noopt = notes('cnn_bn_perturbed_noopt.onnx');
    assert.deepEqual(noopt.map((n) => `${n.kind}:${n.modulePath}:${n.restored}`), ['bn-inference:bn1:true', 'bn-inference:bn2:true']);
    // opset_version=17 converts the export and strips its metadata: said on the model, and a LayerNorm weight that
    // seven LayerNorms read (merged) is named; the transposed weights are still mapped back (folded_from survives).
    const op17 = notes('vit_init_op17.onnx');
    assert.ok(op17.some((n) => n.kind === 'metadata-lost' && n.modulePath === '' && !n.restored && /opset_version/.test(n.message)));
    assert.ok(op17.some((n) => n.kind === 'merged' && !n.restored && n.parameters[0] === 'blocks.0.norm1.weight' && /7 LayerNormalization/.test(n.message)));
    assert.ok(op17.some((n) => n.kind === 'transposed' && n.restored && n.parameters[0] === 'blocks.0.attn.qkv.weight'));
    // The legacy exporter carries no such metadata: no notes.
    assert.deepEqual(loadOnnx(fs.readFileSync(path.join(DIR, 'vit_init_legacy.onnx'))).exportNotes, []);
  });

  test('an export that lost its metadata (opset 17): classes from the source, leaves their ops back from their parameters', async () => {
    const inspect = async (file: string) => {
      const files = await readModelFiles(path.join(DIR, file), nodeFs);
      return inspectOnnx(files.bytes, file, { externalData: files.externalData, attentionSample: -1, batch: 2 });
    };
    const [op17, full] = await Promise.all([inspect('vit_init_op17.onnx'), inspect('vit_init_dynamo.onnx')]);
    // Class names: what the source constructs (`self.attn = Attention(dim, heads)`), as the extension names them.
    const src = path.join(repoRoot, 'test', 'gold', 'exporters', 'zoo.py');
    const text = fs.readFileSync(src, 'utf8');
    const mapping = documentMapping(indexPythonSource(await createPythonParser(), text, src), op17, src, text);
    const named = withModuleKinds(op17, sourceKinds(op17.modules, mapping.classOf));
    const kind = (p: string) => named.modules.find((m) => m.path === p)?.kind;
    assert.equal(kind(''), 'TinyViT');
    assert.equal(kind('blocks.1'), 'Block');
    assert.equal(kind('blocks.1.attn'), 'Attention');
    assert.equal(kind('blocks.2.mlp'), 'Mlp');
    assert.equal(kind('patch_embed'), 'PatchEmbed');
    // Output shapes and forward order of the layers, as the export with metadata has them.
    const leaves = ['patch_embed.proj', 'blocks.0.attn.qkv', 'blocks.0.attn.proj', 'blocks.0.mlp.fc1', 'blocks.1.mlp.fc2', 'blocks.2.attn.qkv', 'head'];
    for (const p of leaves) {
      const a = op17.modules.find((m) => m.path === p);
      const b = full.modules.find((m) => m.path === p)!;
      assert.deepEqual(a?.outputShape, b.outputShape, `${p}: output shape`);
      assert.ok(a!.activation && a!.outputGrad, `${p}: activation and its gradient`);
    }
    const depth = (r: typeof op17, p: string) => r.modules.find((m) => m.path === p)!.depth;
    const order = (r: typeof op17) => [...leaves].sort((x, y) => depth(r, x) - depth(r, y));
    assert.deepEqual(order(op17), order(full));
    assert.deepEqual(order(op17), leaves);
  });

  test('the inspection report carries the notes, and the diagnosis puts a warning on each module that lost a parameter', async () => {
    const file = 'gpt2_init_dynamo.onnx';
    const files = await readModelFiles(path.join(DIR, file), nodeFs);
    const report = await inspectOnnx(files.bytes, file, { externalData: files.externalData, attentionSample: -1 });
    const findings = diagnose(report);
    const lost = findings.filter((f) => f.kind === 'export-lost');
    assert.ok(lost.every((f) => f.severity === 'warning'));
    // wpe has no node left (folded into a constant): its warning goes to the nearest module the report has.
    assert.ok(lost.some((f) => /transformer\.wpe\.weight/.test(f.message) && report.modules.some((m) => m.path === f.modulePath)));
    assert.ok(lost.some((f) => f.modulePath === 'transformer.h.0.attn.c_attn' && /dropped/.test(f.message)));
    // The tied weight (PyTorch's lm_head.weight is transformer.wte.weight) is on both modules, with its one gradient.
    const tied = (p: string) => report.modules.find((m) => m.path === p)!;
    assert.deepEqual(tied('transformer.wte').parameters.map((p) => [p.name, p.tiedTo]), [['transformer.wte.weight', 'lm_head.weight']]);
    assert.deepEqual(tied('lm_head').parameters.map((p) => [p.name, p.tiedTo]), [['lm_head.weight', undefined]]);
    assert.equal(tied('transformer.wte').parameterCount, 64 * 16);
    assert.equal(tied('transformer.wte').gradNorm, tied('lm_head').gradNorm);
    const restored = findings.filter((f) => f.kind === 'export-restored');
    assert.ok(restored.length > 0 && restored.every((f) => f.severity === 'info'));
    // No exporter constant in the parameter count: PyTorch's count minus what the notes say was lost.
    const torch = golds.find((g) => g.model === 'gpt2' && g.variant === 'init')!;
    const lostNames = new Set((report.exportNotes ?? []).filter((n) => !n.restored).flatMap((n) => n.parameters));
    const expected = Object.entries(torch.parameters).filter(([n]) => !lostNames.has(n)).reduce((s, [, p]) => s + p.numel, 0);
    assert.equal(report.model.parameterCount, expected);
  });
});
