/**
 * The ONNX importer's API: module trees and source locations from both exporters, trainable
 * parameter detection, constant folding of shape subgraphs, sample inputs and default losses,
 * addressable intermediate values with hooks, symbolic dims, dropout, and finite-difference
 * gradient checks through imported graphs covering the op registry.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backward, gradcheck, loadOnnx, LoadOptions, mean, OnnxModel, supportedOnnxOps, tensorFrom } from '../engine';
import { repoRoot } from './helpers';
import { buildModel } from './onnx_builder';
import { DataType } from '../engine/onnx/proto';

const FIXTURES = path.join(repoRoot, 'test', 'fixtures', 'onnx');

function load(file: string, options: LoadOptions = {}): OnnxModel {
  return loadOnnx(new Uint8Array(fs.readFileSync(path.join(FIXTURES, file))), options);
}

describe('module tree and source locations', () => {
  for (const file of ['gpt_op13_loss.onnx', 'gpt_dynamo_op17.onnx']) {
    test(`${file}: module paths, parameters and sources`, () => {
      const model = load(file);
      const dynamo = file.includes('dynamo');
      assert.equal(model.producer.name, 'pytorch');
      const q = model.modules.get('blocks.0.attn.q_proj');
      assert.ok(q, `no module blocks.0.attn.q_proj (have ${[...model.modules.keys()].join(', ')})`);
      assert.deepEqual(q.parameters.sort(), ['blocks.0.attn.q_proj.bias', 'blocks.0.attn.q_proj.weight']);
      assert.ok(q.nodes.length >= 2, 'q_proj has its Transpose/MatMul/Add nodes');
      // The innermost user frame: the line of CausalSelfAttention.forward that calls q_proj.
      assert.ok(q.source, 'q_proj has a source location');
      assert.match(q.source.file, /test[\\/]gold[\\/]models\.py$/);
      const src = fs.readFileSync(path.join(repoRoot, 'test', 'gold', 'models.py'), 'utf8').split('\n');
      assert.match(src[q.source.line - 1], /self\.q_proj\(x\)/);
      // The tree: root -> blocks -> blocks.0 -> attn -> q_proj
      const blocks = model.moduleTree.children.find((m) => m.name === 'blocks')!;
      const b0 = blocks.children.find((m) => m.name === '0')!;
      assert.ok(b0.children.some((m) => m.path === 'blocks.0.attn'));
      assert.ok(model.moduleTree.children.some((m) => m.path === 'lm_head'));
      const matmul = model.liveNodes.find((n) => n.modulePath === 'blocks.0.attn.q_proj' && n.opType === 'MatMul')!;
      if (dynamo) {
        assert.match(matmul.name, /^node_MatMul_\d+$/, 'dynamo-style names carry no path');
        assert.equal(q.className, 'torch.nn.modules.linear.Linear');
        assert.equal(model.modules.get('blocks.0.attn')!.className, 'models.CausalSelfAttention');
      } else {
        assert.equal(matmul.name, '/blocks.0/attn/q_proj/MatMul');
        assert.ok(matmul.stack.length >= 2 && matmul.stack[0].file.includes('torch'), 'the full stack (torch frame first) is kept');
      }
      assert.equal(matmul.source!.line, q.source.line);
      // The GELU's Erf sits in blocks.1.mlp.gelu and points at MLP.forward's return line.
      const erf = model.liveNodes.find((n) => n.opType === 'Erf' && n.modulePath.startsWith('blocks.1.mlp'))!;
      assert.equal(erf.modulePath, 'blocks.1.mlp.gelu');
      assert.match(src[erf.source!.line - 1], /self\.proj\(self\.gelu\(self\.fc\(x\)\)\)/);
    });
  }

  test('parameters vs buffers: gradients flow to parameters only', () => {
    const cnn = load('cnn_op13.onnx');
    assert.deepEqual([...cnn.buffers.keys()].sort(), ['bn1.running_mean', 'bn1.running_var', 'bn2.running_mean', 'bn2.running_var']);
    assert.equal(cnn.parameters.size, 10);
    const rm = cnn.initializers.find((i) => i.name === 'bn1.running_mean')!;
    assert.equal(rm.role, 'buffer');
    assert.match(rm.reason, /BatchNormalization input 3/);
    assert.ok([...cnn.parameters.values()].every((p) => p.requiresGrad && p.dtype === 'float32'));
    const misc = load('ops_misc.onnx');
    assert.deepEqual([...misc.parameters.keys()].sort(), ['bias', 'gamma', 'w']);
    assert.ok(misc.buffers.has('gidx') && misc.buffers.has('lo'));
    assert.match(misc.initializers.find((i) => i.name === 'lo')!.reason, /Clip input 1/);
  });
});

describe('running', () => {
  test('shape subgraphs are folded once per input signature and reused', () => {
    const model = load('gpt_dynamo_op17.onnx');
    const a = model.run(undefined, { batch: 2, seq: 8 });
    const shapeValues = [...a.tensorsByName.values()].filter((v) => v.node?.opType === 'Shape' || v.node?.opType === 'Concat');
    assert.ok(shapeValues.length > 10);
    assert.ok(shapeValues.every((v) => v.folded), 'Shape/Concat outputs are folded');
    const mask = [...a.tensorsByName.values()].find((v) => v.node?.opType === 'Not')!;
    assert.ok(mask.folded, 'the causal mask (Slice of a constant buffer, Not) is folded');
    const scores = [...a.tensorsByName.values()].find((v) => v.node?.opType === 'Softmax')!;
    assert.ok(!scores.folded && scores.tensor.requiresGrad);
    // Same shapes: the folded tensors are reused, not recomputed.
    const b = model.run(undefined, { batch: 2, seq: 8, seed: 5 });
    assert.equal(b.tensorsByName.get(mask.name)!.tensor, mask.tensor);
    // New shapes: folded again for them.
    const c = model.run(undefined, { batch: 3, seq: 5 });
    assert.deepEqual(c.outputs.get('logits')!.shape, [3, 5, 16]);
    assert.deepEqual(c.tensorsByName.get(mask.name)!.tensor.shape, [1, 1, 5, 5]);
  });

  test('a shape set by a fed value is not folded: Shape of x[:e] follows e from run to run, Shape of x stays folded', () => {
    const model = loadOnnx(buildModel({
      opset: 17,
      inputs: [{ name: 'x', dims: [6] }, { name: 'e', type: DataType.INT64, dims: [1] }],
      outputs: [{ name: 'cut_shape', type: DataType.INT64 }, { name: 'x_shape', type: DataType.INT64 }, { name: 'n', type: DataType.INT64 }],
      initializers: [{ name: 'zero', dims: [1], type: DataType.INT64, values: [0] }],
      nodes: [
        { op: 'Slice', inputs: ['x', 'zero', 'e'], outputs: ['cut'] },
        { op: 'Shape', inputs: ['cut'], outputs: ['cut_shape'] },
        { op: 'Shape', inputs: ['x'], outputs: ['x_shape'] },
        { op: 'ReduceSum', inputs: ['cut_shape'], outputs: ['n'], attrs: { keepdims: 0 } },
      ],
    }));
    const x = tensorFrom([1, 2, 3, 4, 5, 6], [6]);
    const runWith = (end: number) => model.run({ x, e: tensorFrom([end], [1], 'int32') }, { loss: 'none' });
    for (const end of [2, 4, 6, 3]) {
      const r = runWith(end);
      assert.deepEqual(r.outputs.get('cut_shape')!.toArray(), [end], `Shape of x[:${end}]`);
      assert.deepEqual(r.outputs.get('n')!.toArray(), [end], 'what is computed from that shape follows it too');
      assert.equal(r.tensorsByName.get('cut_shape')!.folded, false);
      assert.equal(r.tensorsByName.get('x_shape')!.folded, true, 'the shape of a fed input is folded per input signature');
    }
  });

  test('sample inputs: token ids and labels in range, seeded', () => {
    const gpt = load('gpt_op13_loss.onnx');
    assert.deepEqual(gpt.inputs.map((i) => [i.name, i.role]), [['idx', 'tokens'], ['targets', 'labels']]);
    const r = gpt.run(undefined, { seed: 1, batch: 3, seq: 6 });
    const idx = r.inputs.get('idx')!;
    const targets = r.inputs.get('targets')!;
    assert.deepEqual(idx.shape, [3, 6]);
    assert.equal(idx.dtype, 'int32');
    assert.ok(idx.toArray().every((v) => v >= 0 && v < 16));
    assert.ok(targets.toArray().every((v) => v >= 0 && v < 16), 'label range probed from the loss scores [N, 16]');
    assert.ok(new Set(targets.toArray()).size > 4);
    const again = gpt.run(undefined, { seed: 1, batch: 3, seq: 6 });
    assert.deepEqual(again.inputs.get('idx')!.toArray(), idx.toArray());
    assert.equal(again.loss!.item(), r.loss!.item());
    const mlp = load('mlp_sigmoid_op13_loss.onnx');
    const m = mlp.run();
    assert.ok(m.inputs.get('targets')!.toArray().every((v) => v >= 0 && v < 10));
    assert.equal(m.inputs.get('x')!.dtype, 'float32');
  });

  test('default losses: graph loss, next-token LM, classifier, mean of squares', () => {
    assert.equal(load('gpt_op13_loss.onnx').run().lossInfo.kind, 'graph');
    const lm = load('gpt_dynamo_op17.onnx').run(undefined, { seed: 2 });
    assert.equal(lm.lossInfo.kind, 'crossEntropy');
    assert.match(lm.lossInfo.description, /next-token/);
    const ids = lm.inputs.get('idx')!;
    const t = lm.targets!;
    assert.deepEqual(t.shape, ids.shape);
    assert.equal(t.data[0], ids.data[1]);
    assert.equal(t.data[7], -100, 'the last position has no next token');
    const cls = load('cnn_op13.onnx').run();
    assert.match(cls.lossInfo.description, /random labels in \[0, 10\)/);
    const other = load('opset18_ops.onnx').run();
    assert.equal(other.lossInfo.kind, 'meanSquare');
    const none = load('cnn_op13.onnx').run(undefined, { loss: 'none' });
    assert.equal(none.loss, null);
    const custom = load('lora_op17.onnx').run(undefined, { loss: ({ outputs }) => mean(outputs.get('logits')!) });
    assert.equal(custom.lossInfo.kind, 'custom');
    backward(custom.loss!);
  });

  test('every value is addressable; hooks, retained gradients and forward replacement', () => {
    const model = load('mlp_residual_op14.onnx');
    const run = model.run(undefined, { seed: 4, retainGrad: ['/blocks.3/Add_output_0'] });
    const v = run.tensorsByName.get('/blocks.3/Add_output_0')!;
    assert.equal(v.modulePath, 'blocks.3');
    assert.equal(v.node!.opType, 'Add');
    let hooked = 0;
    v.tensor.registerHook(() => {
      hooked++;
    });
    backward(run.loss!);
    assert.equal(hooked, 1);
    assert.ok(v.tensor.grad && v.tensor.grad.size === v.tensor.size);
    assert.ok(run.valuesOfModule('blocks.3', true).some((x) => x.modulePath === 'blocks.3.ln'));
    assert.equal(run.value('x'), run.inputs.get('x'));
    // A forward hook that zeroes a block's MLP branch changes the output.
    const zeroed = model.run(undefined, {
      seed: 4,
      onValue: (val) => (val.name === '/blocks.3/Relu_output_0' ? tensorFrom(new Array(val.tensor.size).fill(0), val.tensor.shape) : undefined),
    });
    assert.notEqual(zeroed.loss!.item(), run.loss!.item());
  });

  test('symbolic dims: batch/seq options, explicit dims, fed shapes', () => {
    const mlp = load('mlp_residual_op14.onnx');
    assert.deepEqual(mlp.inputs[0].dims, ['batch', 16]);
    assert.deepEqual(mlp.run(undefined, { batch: 5 }).outputs.get('logits')!.shape, [5, 10]);
    assert.deepEqual(mlp.run(undefined, { dims: { batch: 3 } }).outputs.get('logits')!.shape, [3, 10]);
    const x = tensorFrom(new Array(7 * 16).fill(0.1), [7, 16]);
    assert.deepEqual(mlp.run({ x }).outputs.get('logits')!.shape, [7, 10]);
    const heads = loadOnnx(new Uint8Array(fs.readFileSync(path.join(FIXTURES, 'errors', 'unresolved_dim.onnx'))));
    assert.deepEqual(heads.run(undefined, { dims: { n_heads: 3 }, loss: 'none' }).outputs.get('y')!.shape, [2, 3, 4]);
  });

  test('float64 runs; dtype switch converts the parameters', () => {
    const model = load('lora_op17.onnx');
    const a = model.run(undefined, { seed: 9, loss: 'meanSquare' });
    const b = model.run(undefined, { seed: 9, loss: 'meanSquare', dtype: 'float64' });
    assert.equal(model.dtype, 'float64');
    assert.ok([...model.parameters.values()].every((p) => p.dtype === 'float64' && p.requiresGrad));
    assert.equal(b.loss!.dtype, 'float64');
    assert.ok(Math.abs(a.loss!.item() - b.loss!.item()) < 1e-5);
  });

  test('Dropout in training mode: mask, scaling, eval override', () => {
    const model = load('dropout_train.onnx');
    const x = tensorFrom(Array.from({ length: 256 }, (_, i) => 1 + i / 256), [4, 64]);
    const r = model.run({ x }, { loss: 'none' });
    const y = r.outputs.get('y')!;
    const mask = r.outputs.get('mask')!;
    assert.equal(mask.dtype, 'bool');
    let kept = 0;
    for (let i = 0; i < 256; i++) {
      if (mask.data[i]) {
        kept++;
        assert.ok(Math.abs(y.data[i] - x.data[i] / 0.75) < 1e-5);
      } else assert.equal(y.data[i], 0);
    }
    assert.ok(kept > 150 && kept < 230, `kept ${kept} of 256 at p=0.25`);
    const evalRun = model.run({ x }, { loss: 'none', training: false });
    assert.deepEqual(evalRun.outputs.get('y')!.toArray(), x.toArray());
  });

  test('the registry covers the ops exporters emit', () => {
    const ops = supportedOnnxOps();
    for (const op of ['Conv', 'ConvTranspose', 'BatchNormalization', 'LayerNormalization', 'MaxPool', 'AveragePool', 'GlobalAveragePool',
      'Flatten', 'Gemm', 'MatMul', 'Erf', 'Softmax', 'Where', 'Trilu', 'Split', 'Slice', 'Range', 'ConstantOfShape', 'Expand', 'Equal',
      'Cast', 'Shape', 'Gather', 'Dropout', 'SoftmaxCrossEntropyLoss', 'NegativeLogLikelihoodLoss', 'ReduceMean', 'ReduceSum']) {
      assert.ok(ops.includes(op), op);
    }
  });
});

describe('finite-difference gradient checks through imported graphs (float64)', () => {
  for (const [file, input] of [['ops_cnn.onnx', 'x'], ['ops_misc.onnx', 'x'], ['opset18_ops.onnx', 'x'], ['ops_loss.onnx', 'scores'], ['ops_shape.onnx', 'x']] as const) {
    test(file, () => {
      const model = load(file, { dtype: 'float64' });
      const sample = model.sampleInputs({ seed: 11 });
      const x = sample.get(input)!;
      x.setRequiresGrad(true);
      const feeds = Object.fromEntries(sample);
      const params = [...model.parameters.values()];
      const fn = () => {
        const out = model.run(feeds, { loss: 'none' }).outputs;
        return [...out.values()].filter((t) => t.dtype === 'float64');
      };
      const result = gradcheck(fn, [x, ...params], { eps: 1e-6, atol: 1e-6, rtol: 1e-4 });
      assert.ok(result.ok, result.message);
    });
  }
});

test('a GPT export runs on a different sequence length than it was traced with', () => {
  const model = load('gpt_op13_loss.onnx');
  const r = model.run(undefined, { batch: 1, seq: 3 });
  assert.deepEqual(r.outputs.get('logits')!.shape, [1, 3, 16]);
  backward(r.loss!);
  assert.ok(model.parameters.get('pos_emb.weight')!.grad);
});
