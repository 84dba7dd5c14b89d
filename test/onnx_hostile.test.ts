/**
 * Hostile and careless models, class by class (issue 15): the memory estimate and budget (refused before
 * allocation, with the estimate), one truthiness rule for int flags, graph validation against the ONNX
 * schemas (errors and warnings), graphs in any node order, declared shapes checked, and models with
 * nothing to differentiate. The fuzz test (test/fuzz) covers the same classes in bulk.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { backward, inspectOnnx, loadOnnx, OnnxImportError, Rng, tensorFrom } from '../engine';
import { metered } from '../engine/memory';
import { DataType } from '../engine/onnx/proto';
import { buildModel, tensorProto, ModelSpec, NodeSpec } from './onnx_builder';
import { repoRoot } from './helpers';

const F = DataType.FLOAT;

function importError(fn: () => unknown, code: string, ...patterns: RegExp[]): OnnxImportError {
  try {
    fn();
  } catch (e) {
    assert.ok(e instanceof OnnxImportError, `expected OnnxImportError, got ${(e as Error).name}: ${(e as Error).message}`);
    assert.equal(e.code, code, e.message);
    for (const p of patterns) assert.match(e.message, p);
    return e;
  }
  assert.fail(`expected OnnxImportError ${code}`);
}

function floats(name: string, dims: number[], rng: Rng) {
  const n = dims.reduce((a, b) => a * b, 1);
  return tensorProto(name, dims, F, Array.from({ length: n }, () => rng.uniform() - 0.5));
}

/** x [b, k] -> Gemm(w [n, k] or [k, n]) -> y. */
function gemm(attrs: NodeSpec['attrs'], wDims: number[], extra: Partial<ModelSpec> = {}, xDims: (number | string)[] = [2, 4]): Uint8Array {
  const rng = new Rng(3);
  return buildModel({
    nodes: [{ op: 'Gemm', inputs: ['x', 'w', 'b'], outputs: ['y'], attrs }],
    inputs: [{ name: 'x', dims: xDims }],
    outputs: [{ name: 'y' }],
    initializers: [floats('w', wDims, rng), floats('b', [3], rng)],
    ...extra,
  });
}

describe('memory: estimated before the run, refused above the budget before allocation', () => {
  const example = new Uint8Array(fs.readFileSync(path.join(repoRoot, 'examples', 'healthy_mlp.onnx')));

  test('the estimate bounds what a real forward + backward allocates, and is not far above it', () => {
    const model = loadOnnx(example);
    const options = { batch: 16, seed: 1 };
    const estimate = model.estimateMemory(undefined, options);
    const { bytes: actual } = metered(Infinity, 'the measured run', () => {
      const run = model.run(undefined, options);
      backward(run.loss!);
    });
    const paramBytes = [...model.parameters.values()].reduce((n, t) => n + t.size * 4, 0);
    assert.equal(estimate.parameters, paramBytes + [...model.buffers.values()].reduce((n, t) => n + t.size * (t.dtype === 'float64' ? 8 : t.dtype === 'bool' ? 1 : 4), 0));
    assert.equal(estimate.gradients, paramBytes);
    // Workspace: kernel scratch (twice the largest value) and the copy of the weights the wasm backend pins.
    assert.ok(estimate.workspace >= 2 * estimate.largest!.bytes + Math.min(paramBytes, 64 * 2 ** 20), JSON.stringify(estimate));
    // The real run allocates activations, gradients and scratch; parameters were allocated at load.
    assert.ok(estimate.peak >= actual, `estimate ${estimate.peak} < measured ${actual}`);
    assert.ok(estimate.peak <= 4 * (actual + estimate.parameters), `estimate ${estimate.peak} far above measured ${actual} + parameters ${estimate.parameters}`);
    assert.ok(estimate.largest && estimate.largest.bytes > 0);
  });

  test('an oversized run is refused before anything of it is allocated, with its estimate', async () => {
    const model = loadOnnx(example);
    const budget = 2 * 2 ** 20;
    let error: unknown;
    const { bytes } = metered(Infinity, 'outside', () => {
      try {
        model.run(undefined, { batch: 20_000, memoryBudget: budget });
      } catch (e) {
        error = e;
      }
    });
    assert.ok(error instanceof OnnxImportError && error.code === 'MEMORY_BUDGET', String(error));
    assert.match(error.message, /above the memory budget of 2\.00 MB \(setting gradientLens\.run\.memoryBudgetMB\)/);
    assert.match(error.message, /parameters and gradients take|needs an estimated/);
    // The dry run counts in its own meter: the real run allocated nothing.
    assert.equal(bytes, 0);
    // The same through the inspection, which the webview runs.
    await assert.rejects(inspectOnnx(example, 'healthy_mlp.onnx', { batch: 20_000, memoryBudget: budget }), (e: Error) => e instanceof OnnxImportError && e.code === 'MEMORY_BUDGET'
      && /needs more than 2\.00 MB: parameters and gradients take [\d.]+ kB, and the shape-only dry run .* passed [\d.]+ MB more/.test(e.message));
    // Under the budget the inspection reports the estimate it checked.
    const report = await inspectOnnx(example, 'healthy_mlp.onnx', { batch: 4, memoryBudget: 256 * 2 ** 20 });
    assert.ok(report.memory && report.memory.peak > 0 && report.memory.budget === 256 * 2 ** 20);
  });

  test('the dry run reads the values of float initializers an op needs (Resize scales of a torch 2.13 interpolate export)', async () => {
    // The dynamo exporter stores F.interpolate's scales as a float initializer: a value-less stand-in read as
    // zeros made the estimate (and so every inspection) fail with 'Resize scales [0, 0, 0, 0] must be positive'.
    const bytes = new Uint8Array(fs.readFileSync(path.join(repoRoot, 'test', 'fixtures', 'onnx', 'interp_dynamo.onnx')));
    const model = loadOnnx(bytes);
    const estimate = model.estimateMemory();
    const { bytes: actual } = metered(Infinity, 'the measured run', () => backward(model.run().loss!));
    assert.ok(estimate.peak >= actual, `estimate ${estimate.peak} < measured ${actual}`);
    const report = await inspectOnnx(bytes, 'interp_dynamo.onnx', { memoryBudget: 256 * 2 ** 20 });
    assert.ok(report.memory && report.memory.peak === estimate.peak);
  });

  test('initializers larger than the budget are refused from their dims, before any is decoded', () => {
    // 2^15 x 2^15 float32 = 4 GiB declared (and no data: decoding would fail later, differently).
    const bytes = buildModel({
      nodes: [{ op: 'MatMul', inputs: ['x', 'w'], outputs: ['y'] }], inputs: [{ name: 'x', dims: [1, 32768] }], outputs: [{ name: 'y' }],
      initializers: [tensorProto('w', [32768, 32768], F, [])],
    });
    importError(() => loadOnnx(bytes, { memoryBudget: 256 * 2 ** 20 }), 'MEMORY_BUDGET', /initializers need 4\.00 GB as float32/);
  });

  test('16 tensors each under the per-tensor limit cannot together exceed the budget', () => {
    const nodes: NodeSpec[] = Array.from({ length: 16 }, (_, i) => ({ op: 'ConstantOfShape', inputs: ['shape'], outputs: [`c${i}`] }));
    nodes.push({ op: 'Sum', inputs: nodes.map((n) => n.outputs[0]), outputs: ['s'] }, { op: 'Add', inputs: ['s', 'x'], outputs: ['y'] });
    const bytes = buildModel({ nodes, inputs: [{ name: 'x', dims: [1] }], outputs: [{ name: 'y' }], initializers: [tensorProto('shape', [1], DataType.INT64, [2 ** 26])] });
    importError(() => loadOnnx(bytes).run(undefined, { memoryBudget: 512 * 2 ** 20 }), 'MEMORY_BUDGET', /memory budget of 512 MB/);
  });
});

describe('int flags: nonzero is true, as the ONNX reference and onnxruntime read them', () => {
  const x = tensorFrom([1, 2, 3, 4, 5, 6, 7, 8], [2, 4]);
  const y = (bytes: Uint8Array) => [...loadOnnx(bytes).run({ x }, { loss: 'none' }).outputs.get('y')!.data];
  test('Gemm transB = 2 and -1 transpose like transB = 1', () => {
    const one = y(gemm({ transB: 1 }, [3, 4]));
    assert.deepEqual(y(gemm({ transB: 2 }, [3, 4])), one);
    assert.deepEqual(y(gemm({ transB: -1 }, [3, 4])), one);
    // transB = 0 with the same [3, 4] weight is a shape error, not a silent result.
    importError(() => y(gemm({ transB: 0 }, [3, 4])), 'NODE_FAILED', /Gemm/);
  });
  test('AveragePool count_include_pad = -100 counts the padding like 1', () => {
    const pool = (cip: number) => buildModel({
      nodes: [{ op: 'AveragePool', inputs: ['x'], outputs: ['y'], attrs: { kernel_shape: [3, 3], pads: [1, 1, 1, 1], count_include_pad: cip } }],
      inputs: [{ name: 'x', dims: [1, 1, 2, 4] }], outputs: [{ name: 'y' }],
    });
    const x4 = tensorFrom([1, 2, 3, 4, 5, 6, 7, 8], [1, 1, 2, 4]);
    const run = (b: Uint8Array) => [...loadOnnx(b).run({ x: x4 }, { loss: 'none' }).outputs.get('y')!.data];
    const counted = run(pool(1));
    assert.deepEqual(run(pool(-100)), counted);
    // Corner (0,0): window holds 1,2,5,6 of 9 places: 14/9 counting padding, 14/4 not.
    assert.ok(Math.abs(counted[0] - 14 / 9) < 1e-6, String(counted[0]));
    assert.ok(Math.abs(run(pool(0))[0] - 14 / 4) < 1e-6);
  });
});

describe('graph validation before running', () => {
  test('a misspelled attribute is a warning that suggests the right name; the model still runs', () => {
    const model = loadOnnx(gemm({ transB: 1, alpah: 2 } as never, [3, 4]));
    const w = model.warnings.find((x) => x.code === 'UNKNOWN_ATTRIBUTE');
    assert.ok(w, model.warnings.map((x) => x.message).join('; '));
    assert.match(w.message, /attribute 'alpah' is not an attribute of Gemm .* \(did you mean 'alpha'\?\)/);
  });
  test('a wrong attribute type, a repeated attribute, a wrong input count and a missing opset are errors', () => {
    importError(() => loadOnnx(gemm({ transB: 1, alpha: 'big' }, [3, 4])), 'INVALID_MODEL', /attribute 'alpha' must be a float, got a string/);
    importError(() => loadOnnx(buildModel({ nodes: [{ op: 'Relu', inputs: ['x', 'x'], outputs: ['y'] }], inputs: [{ name: 'x', dims: [2] }], outputs: [{ name: 'y' }] })), 'INVALID_MODEL', /has 2 inputs; Relu .* takes 1 inputs/);
    importError(() => loadOnnx(gemm({ transB: 1 }, [3, 4], { opset: null })), 'INVALID_MODEL', /imports no opset for the default domain/);
    importError(() => loadOnnx(buildModel({ nodes: [{ op: 'Concat', inputs: ['x', 'x'], outputs: ['y'] }], inputs: [{ name: 'x', dims: [2] }], outputs: [{ name: 'y' }] })), 'INVALID_MODEL', /required attribute 'axis' is missing/);
  });
  test('cycles, dangling reads, values defined twice and negative declared dims are errors naming the value', () => {
    const g = (nodes: NodeSpec[], extra: Partial<ModelSpec> = {}) => () => loadOnnx(buildModel({ nodes, inputs: [{ name: 'x', dims: [2] }], outputs: [{ name: 'y' }], ...extra }));
    importError(g([{ op: 'Add', inputs: ['x', 'b'], outputs: ['a'] }, { op: 'Relu', inputs: ['a'], outputs: ['b'] }, { op: 'Relu', inputs: ['b'], outputs: ['y'] }]), 'INVALID_MODEL', /cycle/);
    importError(g([{ op: 'Add', inputs: ['x', 'ghost'], outputs: ['y'] }]), 'INVALID_MODEL', /reads 'ghost', which no node, graph input or initializer defines/);
    importError(g([{ op: 'Relu', inputs: ['x'], outputs: ['y'] }, { op: 'Relu', inputs: ['x'], outputs: ['y'] }]), 'INVALID_MODEL', /value 'y' is defined twice/);
    importError(g([{ op: 'Relu', inputs: ['x'], outputs: ['x'] }, { op: 'Relu', inputs: ['x'], outputs: ['y'] }]), 'INVALID_MODEL', /value 'x' is defined twice.*a graph input/);
    importError(g([{ op: 'Relu', inputs: ['x'], outputs: ['y'] }], { inputs: [{ name: 'x', dims: [-4] }] }), 'INVALID_MODEL', /declares dimension 0 as -4/);
  });
  test('a declared output shape or type the graph does not compute is an error', () => {
    // Checked by the shape-only dry run that precedes every inspection (and every budgeted run).
    importError(() => loadOnnx(gemm({ transB: 1 }, [3, 4], { outputs: [{ name: 'y', dims: [2, 7] }] })).estimateMemory(), 'INVALID_MODEL', /graph output 'y' is declared \[2, 7\] but the graph computes float32\[2, 3\]/);
    importError(() => loadOnnx(gemm({ transB: 1 }, [3, 4], { outputs: [{ name: 'y', type: DataType.INT64, dims: [2, 3] }] })).estimateMemory(), 'INVALID_MODEL', /declared int64 but the graph computes/);
  });
  test('symbolic dims named like Object members are plain names', () => {
    for (const name of ['constructor', '__proto__', 'toString', 'valueOf']) {
      const bytes = gemm({ transB: 1 }, [3, 4], { outputs: [{ name: 'y', dims: [name, 3] }] }, [name, 4]);
      importError(() => loadOnnx(bytes).run(), 'UNRESOLVED_DIM', new RegExp(`symbolic dim '${name.replace(/_/g, '_')}' is neither batch- nor sequence-like`));
      const run = loadOnnx(bytes).run(undefined, { dims: { [name]: 5 } as Record<string, number> });
      assert.deepEqual(run.outputs.get('y')!.shape, [5, 3]);
    }
  });
});

describe('graphs in any node order load in linear time', () => {
  const chain = (n: number, order: (nodes: NodeSpec[]) => NodeSpec[]) => {
    const nodes: NodeSpec[] = Array.from({ length: n }, (_, i) => ({ op: i % 2 ? 'Mul' : 'Add', inputs: [i === 0 ? 'x' : `v${i - 1}`, 'w'], outputs: [i === n - 1 ? 'y' : `v${i}`] }));
    return buildModel({ nodes: order(nodes), inputs: [{ name: 'x', dims: [2, 4] }], outputs: [{ name: 'y' }], initializers: [tensorProto('w', [4], F, [1.001, 0.999, 1, 0.5])] });
  };
  test('a 5,000-node chain stored forward, reversed and shuffled computes the same', () => {
    const rng = new Rng(7);
    const shuffle = (xs: NodeSpec[]) => {
      for (let i = xs.length - 1; i > 0; i--) {
        const j = Math.floor(rng.uniform() * (i + 1));
        [xs[i], xs[j]] = [xs[j], xs[i]];
      }
      return xs;
    };
    const x = tensorFrom([1, 2, 3, 4, 0.5, 0.25, 0, -1], [2, 4]);
    const outputs = [(n: NodeSpec[]) => n, (n: NodeSpec[]) => n.reverse(), shuffle].map((order) => {
      const model = loadOnnx(chain(5000, order));
      assert.equal(model.graph.nodes.length, 5000);
      return [...model.run({ x }, { loss: 'none' }).outputs.get('y')!.data];
    });
    assert.deepEqual(outputs[1], outputs[0]);
    assert.deepEqual(outputs[2], outputs[0]);
  });
});

test('a model with nothing to differentiate reports shapes and says why there are no gradients', async () => {
  const bytes = new Uint8Array(fs.readFileSync(path.join(repoRoot, 'test', 'fixtures', 'onnx', 'dropout_train.onnx')));
  const report = await inspectOnnx(bytes, 'dropout_train.onnx', { batch: 2 });
  assert.match(report.noGradient!, /nothing to differentiate: the model has no trainable parameters/);
  assert.ok(report.modules.some((m) => m.outputShape && m.outputShape.length > 0));
});
