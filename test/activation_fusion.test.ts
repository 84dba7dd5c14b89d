/**
 * GELU chains as exporters write them (engine/onnx/activationFusion.ts): differentiated as one op when nothing can
 * ask for the values in between, node by node otherwise. Forward values are the same bits either way; gradients
 * agree with the node-by-node path to float32 rounding and are exactly E.gelu's.
 */
import { test, describe, before } from 'node:test';
import assert from 'node:assert/strict';
import { Backend, Rng, Tensor, backward, gelu, loadOnnx, mul, referenceBackend, sum, tensorFrom, withBackend } from '../engine';
import type { OnnxRunResult, RunOptions } from '../engine';
import { loadWasmBackendNode } from '../engine/backend/wasm/node';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { buildModel, NodeSpec } from './onnx_builder';
import { EXPORTS_DIR, Gold, feedsOf, nodeFs } from './exportMatrix';
import { readModelFiles } from '../extension/modelFiles';

const F = 1;
const constant = (name: string, v: number): NodeSpec => ({ op: 'Constant', inputs: [], outputs: [name], attrs: { value: { tensor: { type: F, dims: [], values: [v] } } } });

/** The TorchScript exporter's exact GELU: Div(x, √2) → Erf → Add 1 → Mul x → Mul 0.5 (h = x W first, so x is a node value). */
const erfChain: NodeSpec[] = [
  constant('sqrt2', Math.fround(Math.SQRT2)), constant('one', 1), constant('half', 0.5),
  { op: 'Div', inputs: ['h', 'sqrt2'], outputs: ['d'] },
  { op: 'Erf', inputs: ['d'], outputs: ['e'] },
  { op: 'Add', inputs: ['e', 'one'], outputs: ['a'] },
  { op: 'Mul', inputs: ['h', 'a'], outputs: ['m'] },
  { op: 'Mul', inputs: ['m', 'half'], outputs: ['y'] },
];

/** GPT-2's tanh form as exported: 0.5 x · (1 + tanh(√(2/π) (x + 0.044715 x³))). */
const tanhChain: NodeSpec[] = [
  constant('half', 0.5), constant('three', 3), constant('k', 0.044715), constant('c', Math.sqrt(2 / Math.PI)), constant('one', 1),
  { op: 'Mul', inputs: ['h', 'half'], outputs: ['m0'] },
  { op: 'Pow', inputs: ['h', 'three'], outputs: ['p'] },
  { op: 'Mul', inputs: ['p', 'k'], outputs: ['m1'] },
  { op: 'Add', inputs: ['h', 'm1'], outputs: ['s'] },
  { op: 'Mul', inputs: ['s', 'c'], outputs: ['m2'] },
  { op: 'Tanh', inputs: ['m2'], outputs: ['t'] },
  { op: 'Add', inputs: ['t', 'one'], outputs: ['a'] },
  { op: 'Mul', inputs: ['m0', 'a'], outputs: ['y'] },
];

const ROWS = 5, IN = 4, OUT = 6;

function model(chain: NodeSpec[], extra: { nodes?: NodeSpec[]; outputs?: string[] } = {}) {
  const rng = new Rng(7);
  const w = Array.from({ length: IN * OUT }, () => rng.normal() * 1.5);
  return loadOnnx(buildModel({
    nodes: [{ op: 'MatMul', inputs: ['x', 'w'], outputs: ['h'] }, ...chain, ...(extra.nodes ?? [])],
    inputs: [{ name: 'x', type: F, dims: [ROWS, IN] }],
    outputs: ['y', ...(extra.outputs ?? [])].map((name) => ({ name, type: F })),
    initializers: [{ name: 'w', type: F, dims: [IN, OUT], values: w }],
  }));
}

const x = (() => {
  const rng = new Rng(3);
  return tensorFrom(Array.from({ length: ROWS * IN }, () => rng.normal()), [ROWS, IN]);
})();

/** Forward, then backward of sum(y · r) for a fixed r: y, dW and the run. */
function runOnce(m: ReturnType<typeof model>, options: RunOptions = {}): { y: Float32Array; dw: Float32Array; run: OnnxRunResult } {
  m.zeroGrad();
  const rng = new Rng(11);
  const r = tensorFrom(Array.from({ length: ROWS * OUT }, () => rng.normal()), [ROWS, OUT]);
  const run = m.run({ x }, { loss: (ctx) => sumOf(ctx.outputs.get('y')!, r), ...options });
  backward(run.loss!);
  return { y: run.outputs.get('y')!.data as Float32Array, dw: m.parameters.get('w')!.grad!.data as Float32Array, run };
}

const sumOf = (y: Tensor, r: Tensor): Tensor => sum(mul(y, r));

function assertClose(got: Float32Array, want: Float32Array, rel: number, what: string): void {
  const scale = Math.max(...Array.from(want, Math.abs));
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= rel * scale, `${what}[${i}]: ${got[i]} vs ${want[i]}`);
}

let wasm: Backend;
before(async () => {
  wasm = await loadWasmBackendNode('kernels.wasm');
});

for (const [backendName, backendOf] of [['typescript', () => referenceBackend], ['wasm-simd', () => wasm]] as const) {
  describe(`GELU chain fusion (${backendName})`, () => {
    for (const [form, chain] of [['erf', erfChain], ['tanh', tanhChain]] as const) {
      test(`${form} form: same forward bits, gradient of the chain node by node to float32 rounding, and exactly E.gelu's`, () => {
        withBackend(backendOf(), () => {
          const m = model(chain);
          const fused = runOnce(m);
          const plain = runOnce(m, { fuseActivations: false });
          assert.equal(fused.run.value('y').gradFn?.op, 'gelu');
          assert.equal(plain.run.value('y').gradFn?.op, 'mul');
          assert.deepEqual(Array.from(fused.y), Array.from(plain.y));
          assertClose(fused.dw, plain.dw, 2e-6, 'dW');
          // Interior values keep their values but leave the backward graph.
          const interior = form === 'erf' ? ['d', 'e', 'a', 'm'] : ['m0', 'p', 'm1', 's', 'm2', 't', 'a'];
          for (const v of interior) {
            assert.equal(fused.run.value(v).requiresGrad, false, v);
            assert.equal(plain.run.value(v).requiresGrad, true, v);
            assert.deepEqual(Array.from(fused.run.value(v).data), Array.from(plain.run.value(v).data), v);
          }
          // dW = x^T (g · gelu'(h)) with E.gelu's own backward on the same h and g.
          const h = new Tensor(Float32Array.from(plain.run.value('h').data), [ROWS, OUT], { requiresGrad: true });
          const rng = new Rng(11);
          const r = tensorFrom(Array.from({ length: ROWS * OUT }, () => rng.normal()), [ROWS, OUT]);
          backward(sumOf(gelu(h, form === 'erf' ? 'none' : 'tanh'), r));
          const gh = h.grad!.data;
          const want = new Float32Array(IN * OUT);
          for (let i = 0; i < IN; i++) for (let j = 0; j < OUT; j++) {
            let s = 0;
            for (let k = 0; k < ROWS; k++) s += x.data[k * IN + i] * gh[k * OUT + j];
            want[i * OUT + j] = s;
          }
          assertClose(fused.dw, want, 1e-6, 'dW against E.gelu');
        });
      });
    }

    test('operands in the other order and x·(1/√2) instead of x/√2 are still GELU', () => {
      withBackend(backendOf(), () => {
        const swapped: NodeSpec[] = [
          constant('isqrt2', Math.fround(Math.SQRT1_2)), constant('one', 1), constant('half', 0.5),
          { op: 'Mul', inputs: ['isqrt2', 'h'], outputs: ['d'] },
          { op: 'Erf', inputs: ['d'], outputs: ['e'] },
          { op: 'Add', inputs: ['one', 'e'], outputs: ['a'] },
          { op: 'Mul', inputs: ['a', 'h'], outputs: ['m'] },
          { op: 'Mul', inputs: ['half', 'm'], outputs: ['y'] },
        ];
        const m = model(swapped);
        const fused = runOnce(m);
        const plain = runOnce(m, { fuseActivations: false });
        assert.equal(fused.run.value('y').gradFn?.op, 'gelu');
        assertClose(fused.dw, plain.dw, 2e-6, 'dW');
      });
    });

    test('not fused when something may ask for the values in between', () => {
      withBackend(backendOf(), () => {
        const m = model(erfChain);
        const plain = runOnce(m, { fuseActivations: false });
        const check = (options: RunOptions, what: string) => {
          const r = runOnce(m, options);
          assert.equal(r.run.value('y').gradFn?.op, 'mul', what);
          assert.deepEqual(Array.from(r.dw), Array.from(plain.dw), what);
          return r;
        };
        check({ onValue: () => {} }, 'onValue');
        const all = check({ retainGrad: true }, 'retainGrad: true');
        assert.ok(all.run.value('e').grad, 'the retained interior gradient is there');
        const one = check({ retainGrad: ['a'] }, "retainGrad: ['a']");
        assert.ok(one.run.value('a').grad);
        // Retaining the chain's input or output does not stop the fusion.
        const ends = runOnce(m, { retainGrad: ['h', 'y'] });
        assert.equal(ends.run.value('y').gradFn?.op, 'gelu');
        assert.ok(ends.run.value('h').grad && ends.run.value('y').grad);
      });
    });

    test('not fused when an interior value is read elsewhere, is a graph output, or a constant is not GELU\'s', () => {
      withBackend(backendOf(), () => {
        const cases: [string, ReturnType<typeof model>][] = [
          ['read by another node', model(erfChain, { nodes: [{ op: 'Neg', inputs: ['e'], outputs: ['z'] }], outputs: ['z'] })],
          ['a graph output', model(erfChain, { outputs: ['a'] })],
          ['0.6 instead of 0.5', model(erfChain.map((n) => (n.outputs[0] === 'half' ? constant('half', 0.6) : n)))],
          ['√3 instead of √2', model(erfChain.map((n) => (n.outputs[0] === 'sqrt2' ? constant('sqrt2', Math.sqrt(3)) : n)))],
          ['x³ with exponent 2', model(tanhChain.map((n) => (n.outputs[0] === 'three' ? constant('three', 2) : n)))],
        ];
        for (const [what, m] of cases) {
          const fused = runOnce(m);
          const plain = runOnce(m, { fuseActivations: false });
          assert.notEqual(fused.run.value('y').gradFn?.op, 'gelu', what);
          assert.deepEqual(Array.from(fused.dw), Array.from(plain.dw), what);
        }
      });
    });

    test('a trainable constant (an initializer, so a parameter) keeps its gradient: not fused', () => {
      withBackend(backendOf(), () => {
        const rng = new Rng(7);
        const m = loadOnnx(buildModel({
          nodes: [{ op: 'MatMul', inputs: ['x', 'w'], outputs: ['h'] }, ...erfChain.filter((n) => n.outputs[0] !== 'half')],
          inputs: [{ name: 'x', type: F, dims: [ROWS, IN] }],
          outputs: [{ name: 'y', type: F }],
          initializers: [{ name: 'w', type: F, dims: [IN, OUT], values: Array.from({ length: IN * OUT }, () => rng.normal()) }, { name: 'half', type: F, dims: [], values: [0.5] }],
        }));
        const r = runOnce(m);
        assert.equal(r.run.value('y').gradFn?.op, 'mul');
        assert.ok(m.parameters.get('half')?.grad, 'the scalar parameter got its gradient');
      });
    });
  });
}

test('float64 runs differentiate the graph as written (the gradient-check path)', () => {
  const m = model(erfChain);
  const run = m.run({ x }, { loss: 'meanSquare', dtype: 'float64' });
  assert.equal(run.value('y').gradFn?.op, 'mul');
});

describe('GELU chain fusion on real exports against PyTorch', () => {
  // Export-matrix models whose GELU is a chain of nodes: the ViT converted to opset 17 (the version converter writes
  // GELU as Div/Erf/Add/Mul/Mul with a float32 √2) and GPT-2's tanh form (TorchScript export). A plain float32 run
  // (fusion on, as training and the benchmarks run) must give PyTorch's float32 gradients to the export matrix's
  // float32 tolerance, and agree with the node-by-node run.
  for (const [file, goldFile] of [['vit_init_op17.onnx', 'vit_init.json'], ['gpt2_init_legacy.onnx', 'gpt2_init.json']]) {
    test(file, async () => {
      const gold = JSON.parse(fs.readFileSync(path.join(EXPORTS_DIR, goldFile), 'utf8')) as Gold;
      const files = await readModelFiles(path.join(EXPORTS_DIR, file), nodeFs);
      const model = loadOnnx(files.bytes, { externalData: files.externalData });
      const targets = new Tensor(Int32Array.from(gold.targets.data), gold.targets.shape);
      const grads = (fuseActivations: boolean) => {
        model.zeroGrad();
        const run = model.run(feedsOf(gold), { loss: { kind: 'crossEntropy', output: model.outputs[0].name, targets }, fuseActivations });
        backward(run.loss!);
        const fused = [...run.tensorsByName.values()].filter((v) => v.tensor.gradFn?.op === 'gelu').length;
        return { fused, loss: run.loss!.item(), norms: new Map([...model.parameters].map(([n, p]) => [n, p.grad ? l2(p.grad.data) : 0])) };
      };
      const on = grads(true);
      const off = grads(false);
      assert.ok(on.fused > 0, 'some GELU chain was fused');
      assert.equal(off.fused, 0);
      assert.ok(Math.abs(on.loss - gold.loss.float32) <= 1e-5 * Math.max(1, gold.loss.float32), `loss ${on.loss} vs ${gold.loss.float32}`);
      const wants = Object.values(gold.parameters).map((p) => p.grad32 ?? 0);
      const maxNorm = Math.max(...wants);
      // Parameters the export merged (identical initial values deduplicated by the converter) are not PyTorch's.
      const lost = new Set(model.exportNotes.filter((n) => !n.restored).flatMap((n) => n.parameters));
      let compared = 0;
      for (const [name, got] of on.norms) {
        const p = gold.parameters[gold.aliases[name] ?? name];
        if (!p || p.grad32 === null || lost.has(name)) continue;
        compared++;
        const tolerance = Math.max(1e-4 * p.grad32, 2 * Math.abs(p.grad32 - (p.grad64 ?? p.grad32)), 1e-6 * maxNorm);
        assert.ok(Math.abs(got - p.grad32) <= tolerance, `${name}: ‖∇‖ ${got} vs PyTorch ${p.grad32} (tolerance ${tolerance})`);
        assert.ok(Math.abs(got - off.norms.get(name)!) <= 1e-5 * maxNorm, `${name}: fused ${got} vs node by node ${off.norms.get(name)}`);
      }
      assert.ok(compared >= 0.5 * on.norms.size, `${compared} of ${on.norms.size} parameters compared`);
    });
  }
});

function l2(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i] * values[i];
  return Math.sqrt(s);
}
