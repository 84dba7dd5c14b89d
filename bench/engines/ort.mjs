// onnxruntime-web (WebAssembly backend, 1 thread) in Node: forward passes only (it has no training API).
import { existsSync, readFileSync } from 'node:fs';
import * as ort from 'onnxruntime-web';
import { GPT_ONNX, MATMUL, MLP, gflops, gptData, matmulData, measure, mlpData, pkgVersion, report, timingOptions } from '../lib/harness.mjs';
import { buildModel } from '../lib/onnx.mjs';

ort.env.wasm.numThreads = 1;
ort.env.logLevel = 'error';
const opts = timingOptions();
const sessionOptions = { executionProviders: ['wasm'], graphOptimizationLevel: 'all' };
const result = { engine: 'onnxruntime-web', version: pkgVersion('onnxruntime-web'), backend: 'wasm (SIMD), numThreads=1', notes: [] };

// matmul: both operands are graph inputs, so each run copies them in (as every engine here does).
{
  const { m, k, n } = MATMUL;
  const { a, b } = matmulData();
  const model = buildModel({
    nodes: [{ op: 'MatMul', inputs: ['A', 'B'], outputs: ['Y'] }],
    initializers: [],
    inputs: [{ name: 'A', dims: [m, k] }, { name: 'B', dims: [k, n] }],
    outputs: [{ name: 'Y', dims: [m, n] }],
  });
  const session = await ort.InferenceSession.create(model, sessionOptions);
  const run = async () => {
    const out = await session.run({ A: new ort.Tensor('float32', a, [m, k]), B: new ort.Tensor('float32', b, [k, n]) });
    return out.Y.data;
  };
  const t = await measure(run, opts);
  result.matmul = { ...t, gflops: gflops(2 * m * k * n, t.median), gflopsBest: gflops(2 * m * k * n, t.min), mode: 'fresh operands (graph inputs)' };
}

// MLP: forward only (Gemm + Sigmoid chain, weights as initializers), batch 64.
{
  const { layers, x } = mlpData();
  const nodes = [];
  const initializers = [];
  let h = 'x';
  layers.forEach((l, i) => {
    initializers.push({ name: `w${i}`, dims: [l.out, l.in], data: l.weight }, { name: `b${i}`, dims: [l.out], data: l.bias });
    const out = i < layers.length - 1 ? `z${i}` : 'logits';
    nodes.push({ op: 'Gemm', inputs: [h, `w${i}`, `b${i}`], outputs: [out], attrs: { transB: 1 } });
    if (i < layers.length - 1) {
      nodes.push({ op: 'Sigmoid', inputs: [out], outputs: [`h${i}`] });
      h = `h${i}`;
    }
  });
  const model = buildModel({ nodes, initializers, inputs: [{ name: 'x', dims: [MLP.batch, MLP.sizes[0]] }], outputs: [{ name: 'logits', dims: [MLP.batch, 10] }] });
  const session = await ort.InferenceSession.create(model, sessionOptions);
  const run = async () => (await session.run({ x: new ort.Tensor('float32', x, [MLP.batch, MLP.sizes[0]]) })).logits.data;
  const t = await measure(run, opts);
  result.mlp = { ...t, kind: 'forward only' };
}

// GPT fixture: forward (with the loss in the graph) of test/fixtures/onnx/gpt_op13_loss.onnx, exported by test/gold/export_onnx.py.
if (existsSync(GPT_ONNX)) {
  const g = gptData();
  const session = await ort.InferenceSession.create(readFileSync(GPT_ONNX), sessionOptions);
  const feeds = () => ({
    idx: new ort.Tensor('int64', BigInt64Array.from(g.idx.data, BigInt), g.idx.shape),
    targets: new ort.Tensor('int64', BigInt64Array.from(g.targets.data, BigInt), g.targets.shape),
  });
  const names = session.outputNames;
  const first = await session.run(feeds());
  const lossName = names.find((n) => first[n].size === 1) ?? names[0];
  const loss = Number(first[lossName].data[0]);
  const run = async () => (await session.run(feeds()))[lossName].data;
  const t = await measure(run, opts);
  result.gpt = { ...t, kind: 'forward only (loss in graph)', loss, lossError: Math.abs(loss - g.loss) / Math.abs(g.loss) };
} else {
  result.notes.push(`GPT skipped: ${GPT_ONNX} not found`);
}

report(result);
