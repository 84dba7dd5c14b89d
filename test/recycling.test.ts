/**
 * Recycled kernel output arrays (engine/recycling.ts): what a step's caller holds keeps its values across later
 * steps, a stale reference throws TensorReleasedError instead of reading another step's numbers, and training,
 * gradient accumulation and the inspector give bit-identical results with recycling on and off. On the wasm
 * backend (its kernel outputs are the recycled arrays) and, where it applies, the TypeScript reference (where a
 * scope must change nothing).
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  Backend, Tensor, TensorReleasedError, backward, loadOnnx, mul, add, exp, sum, reshape, tensorFrom, withBackend,
  recycling, recyclingAsync, recyclingCounts, getBackend, setBackend, setRecycling, referenceBackend, transientCallback, readTransient,
} from '../engine';
import { WASM_KERNEL_FILES } from '../engine/backend/wasm';
import { loadWasmBackendNode } from '../engine/backend/wasm/node';
import { inspectOnnx } from '../engine/inspect/onnxInspect';
import { OnnxTrainer } from '../engine/train';
import { repoRoot } from './helpers';

let wasm: Backend;
before(async () => {
  wasm = await loadWasmBackendNode(WASM_KERNEL_FILES.simd);
});
after(() => setRecycling(true));

const example = (name: string) => new Uint8Array(fs.readFileSync(path.join(repoRoot, 'examples', name)));
const ramp = (n: number, scale = 0.01, shift = 0) => tensorFrom(Array.from({ length: n }, (_, i) => shift + scale * ((i * 37) % 101) - 0.5), [n]);
const bits = (values: ArrayLike<number>) => Array.from(new Uint32Array(Float32Array.from(values).buffer));

/** One step of arithmetic on a 256-element input: the same sizes every time, so a later step reuses its arrays. */
function work(seed: number): Tensor {
  const x = ramp(256, 0.01, seed);
  return add(mul(x, x), exp(x));
}

describe('recycling scope on the wasm backend', () => {
  test('a later step reuses the arrays of an earlier one (what the rest of the suite relies on)', () => {
    withBackend(wasm, () => {
      recycling(() => void work(0));
      recyclingCounts(true);
      recycling(() => void work(1));
      const c = recyclingCounts(true);
      assert.ok(c.reused >= 3 * 256 * 4, `the second step reused ${c.reused} bytes`);
      assert.equal(c.fresh, 0, 'nothing new was allocated');
    });
  });

  test('what the step returns, reads through .data, or keeps as .grad holds its values across later steps', () => {
    withBackend(wasm, () => {
      const w = ramp(256, 0.02).setRequiresGrad();
      let read: Float32Array | undefined;
      let snapshot: { y: number[]; read: number[] } | undefined;
      const returned = recycling(() => {
        const y = work(0);
        const r = work(0.25);
        read = r.data as Float32Array;
        backward(sum(mul(y, w)));
        snapshot = { y: bits(y.toArray()), read: bits(r.toArray()) }; // toArray copies without keeping
        return { y };
      }).y;
      const grad = w.grad!;
      assert.deepEqual(bits(grad.data), snapshot!.y, 'dL/dw = y');
      for (let s = 1; s <= 3; s++) recycling(() => void work(s));
      assert.deepEqual(bits(returned.data), snapshot!.y, 'returned tensor');
      assert.deepEqual(bits(read!), snapshot!.read, 'array read through .data');
      assert.deepEqual(bits(grad.data), snapshot!.y, '.grad of a leaf');
    });
  });

  test('a tensor neither read nor kept throws TensorReleasedError naming it, and so do its views', () => {
    withBackend(wasm, () => {
      let stale: Tensor | undefined;
      let view: Tensor | undefined;
      recycling(() => {
        stale = work(0);
        stale.name = 'the stale value';
        view = reshape(stale, [16, 16]);
      });
      recycling(() => void work(7)); // reuses the array
      assert.ok(stale!.isReleased);
      assert.throws(() => stale!.data, (e: unknown) => e instanceof TensorReleasedError && /the stale value was released when its step ended/.test(e.message));
      assert.throws(() => view!.data, TensorReleasedError);
      assert.throws(() => stale!.item(), RangeError); // size check first: still a clear error
      assert.throws(() => sum(stale!), TensorReleasedError, 'a kernel reading it throws too');
      assert.equal(stale!.isOnDevice, false);
    });
  });

  test('a value read through one view stays valid through every tensor sharing its array', () => {
    withBackend(wasm, () => {
      let y: Tensor | undefined;
      let v: Tensor | undefined;
      let expected: number[] = [];
      recycling(() => {
        y = work(0);
        v = reshape(y, [256]).detach();
        void v.data; // read (and so kept) through the view
        expected = bits(y.toArray());
      });
      recycling(() => void work(3));
      assert.deepEqual(bits(y!.data), expected);
      assert.deepEqual(bits(v!.data), expected);
    });
  });

  test('hook arguments and retained gradients are kept; a transient hook\'s argument is released', () => {
    withBackend(wasm, () => {
      const w = ramp(256).setRequiresGrad();
      const step = (hook: (g: Tensor) => void, retain: boolean) => {
        let expected: number[] = [];
        let h: Tensor | undefined;
        recycling(() => {
          h = mul(w, w);
          if (retain) h.retainGrad();
          else h.registerHook(hook);
          const y = exp(h);
          backward(sum(y));
          expected = bits(y.toArray()); // dL/dh = exp(h) = y
        });
        for (let s = 0; s < 2; s++) recycling(() => void backward(sum(exp(mul(w, w)))));
        return { expected, h: h! };
      };
      let hooked: Tensor | undefined;
      const a = step((g) => void (hooked = g), false);
      assert.deepEqual(bits(hooked!.data), a.expected, 'hooked gradient');
      const b = step(() => {}, true);
      assert.deepEqual(bits(b.h.grad!.data), b.expected, 'retained gradient');
      let transient: Tensor | undefined;
      step(transientCallback((g: Tensor) => void (transient = g)), false);
      assert.ok(transient!.isReleased, 'a transient hook keeps nothing: its argument was reused');
      assert.throws(() => transient!.data, TensorReleasedError);
    });
  });

  test('a leaf\'s gradient is reused after the next step\'s zeroGrad() unless it was read; a held old .grad then throws', () => {
    withBackend(wasm, () => {
      const w = ramp(256, 0.02).setRequiresGrad();
      const step = (s: number) => recycling(() => {
        w.zeroGrad();
        backward(sum(mul(exp(mul(w, w)), work(s))));
      });
      step(0);
      const unread = w.grad!;
      step(1);
      assert.ok(unread.isReleased, 'the first step\'s gradient, never read, was reused');
      assert.throws(() => unread.data, TensorReleasedError);
      const read = w.grad!;
      const expected = bits(read.data); // read between steps: kept for good
      step(2);
      step(3);
      assert.ok(!read.isReleased);
      assert.deepEqual(bits(read.data), expected);
    });
  });

  test('a gradient two leaves share is reused only when both dropped it', () => {
    withBackend(wasm, () => {
      const a = ramp(256, 0.01).setRequiresGrad();
      const b = ramp(256, 0.02).setRequiresGrad();
      recycling(() => backward(sum(mul(add(a, b), work(0))))); // add's VJP hands both leaves the same gradient
      const shared = b.grad!;
      assert.equal(readTransient(a.grad!), readTransient(shared), 'one array for both gradients');
      let snapshot: number[] = [];
      recycling(() => {
        snapshot = bits(shared.toArray());
        a.zeroGrad();
        void work(1);
      });
      recycling(() => void work(2));
      assert.ok(!shared.isReleased, 'b still holds it');
      assert.deepEqual(bits(shared.toArray()), snapshot);
    });
  });

  test('an asynchronous step keeps its scope open while another step starts and ends during its await', async () => {
    const previous = getBackend();
    setBackend(wasm);
    try {
      const slow = recyclingAsync(async () => {
        const y = work(0);
        const expected = bits(y.toArray());
        await new Promise((r) => setTimeout(r, 5));
        return { expected, after: bits(y.toArray()) };
      });
      const quick = recyclingAsync(async () => work(1).toArray().length);
      assert.equal(await quick, 256);
      recycling(() => void work(2));
      const r = await slow;
      assert.deepEqual(r.after, r.expected);
    } finally {
      setBackend(previous);
    }
  });

  test('a step of other sizes drops the free list once it has allocated half its bytes afresh; a repeated step drops nothing', () => {
    withBackend(wasm, () => {
      recycling(() => void work(0));
      recyclingCounts(true);
      recycling(() => void work(1));
      assert.equal(recyclingCounts(true).dropped, 0, 'the same sizes again: everything reused');
      let during = 0;
      recycling(() => {
        const x = ramp(1024);
        void add(mul(x, x), x);
        during = recyclingCounts().dropped; // dropped inside the step, not only at its end
      });
      const c = recyclingCounts(true);
      assert.equal(c.reused, 0);
      assert.ok(during >= 3 * 256 * 4, `dropped ${during} bytes of the 256-element arrays during the step`);
    });
  });

  test('raw arrays a backend returns outside dispatch are never reused', () => {
    withBackend(wasm, () => {
      const x = Float32Array.from({ length: 256 }, (_, i) => i / 256);
      let raw: Float32Array | undefined;
      recycling(() => {
        raw = wasm.unary('exp', x, 0, 'float32') as Float32Array;
      });
      const expected = bits(raw!);
      for (let s = 0; s < 3; s++) recycling(() => void work(s));
      assert.deepEqual(bits(raw!), expected);
    });
  });

  test('tensors made outside any scope are never touched', () => {
    withBackend(wasm, () => {
      const outside = work(0);
      const expected = bits(outside.data);
      recycling(() => void add(outside, outside));
      recycling(() => void work(2));
      assert.deepEqual(bits(outside.data), expected);
    });
  });

  test('gradient accumulation across steps without zeroGrad gives the same bits as without recycling', () => {
    const accumulate = (on: boolean) => withBackend(wasm, () => {
      setRecycling(on);
      const w = ramp(256, 0.03).setRequiresGrad();
      for (let s = 0; s < 4; s++) recycling(() => backward(sum(mul(exp(mul(w, w)), work(s)))));
      setRecycling(true);
      return bits(w.grad!.data);
    });
    assert.deepEqual(accumulate(true), accumulate(false));
  });
});

describe('recycling changes no result', () => {
  for (const backendName of ['wasm', 'typescript'] as const) {
    for (const file of ['tiny_gpt.onnx', 'small_cnn.onnx']) {
      test(`${file}: 4 training steps (Adam, anomaly mode) give the same losses, gradient norms and parameters, ${backendName}`, () => {
        const train = (on: boolean) => withBackend(backendName === 'wasm' ? wasm : referenceBackend, () => {
          setRecycling(on);
          try {
            const trainer = new OnnxTrainer(loadOnnx(example(file)), { optimizer: { kind: 'adam', lr: 1e-2 }, modelName: file, batch: 4 });
            trainer.train(4);
            const params = [...trainer.model.parameters.values()];
            return {
              loss: trainer.record.loss,
              norms: trainer.record.gradNormTotal,
              modules: trainer.record.modules.map((m) => [m.gradNorm, m.actMean, m.actStd]),
              params: params.map((p) => bits(p.data)),
              grads: params.map((p) => (p.grad ? bits(p.grad.data) : null)),
            };
          } finally {
            setRecycling(true);
          }
        });
        recyclingCounts(true);
        const on = train(true);
        const counts = recyclingCounts(true);
        if (backendName === 'wasm') assert.ok(counts.reused > 0, 'the wasm run reused arrays');
        else assert.equal(counts.reused + counts.fresh, 0, 'the reference backend never takes recycled arrays');
        assert.deepEqual(on, train(false));
      });
    }
  }

  const benchDir = (() => {
    const base = path.join(repoRoot, 'build', 'bench-models');
    if (!fs.existsSync(base)) return null;
    return fs.readdirSync(base).map((d) => path.join(base, d)).find((d) => fs.existsSync(path.join(d, 'gpt2.onnx'))) ?? null;
  })();
  test('a bench model (gpt2): 3 steps of forward + cross-entropy + backward give the same bits, wasm', { skip: benchDir ? false : 'no bench model export in build/bench-models' }, () => {
    const meta = JSON.parse(fs.readFileSync(path.join(benchDir!, 'gpt2.json'), 'utf8'));
    const decode = (t: { data: string; shape: number[] }, int: boolean) => {
      const f64 = new Float64Array(new Uint8Array(Buffer.from(t.data, 'base64')).buffer);
      return new Tensor(int ? Int32Array.from(f64) : Float32Array.from(f64), t.shape);
    };
    const run = (on: boolean) => withBackend(wasm, () => {
      setRecycling(on);
      try {
        const model = loadOnnx(new Uint8Array(fs.readFileSync(path.join(benchDir!, 'gpt2.onnx'))));
        const feeds: Record<string, Tensor> = {};
        for (const [name, t] of Object.entries<{ data: string; shape: number[]; dtype: string }>(meta.inputs)) feeds[name] = decode(t, t.dtype !== 'float32');
        const targets = decode(meta.targets, true);
        const out: number[][] = [];
        for (let s = 0; s < 3; s++) {
          recycling(() => {
            model.zeroGrad();
            const r = model.run(feeds, { loss: { kind: 'crossEntropy', targets } });
            backward(r.loss!);
            out.push([r.loss!.item()]);
          });
          for (const p of model.parameters.values()) if (p.grad) out.push(bits(p.grad.data));
        }
        return out;
      } finally {
        setRecycling(true);
      }
    });
    recyclingCounts(true);
    const on = run(true);
    assert.ok(recyclingCounts(true).reused > 1e6, 'gpt2 reused arrays');
    assert.deepEqual(on, run(false));
  });

  test('the inspector\'s report is identical with recycling on and off (tiny_gpt, wasm; twice, so the second reuses)', async () => {
    const previous = (await import('../engine/backend/registry')).getBackend();
    const { setBackend } = await import('../engine/backend/registry');
    setBackend(wasm);
    try {
      const inspect = async (on: boolean) => {
        setRecycling(on);
        const r = await inspectOnnx(example('tiny_gpt.onnx'), 'tiny_gpt.onnx', { batch: 2, gradients: new Map() });
        const plain = JSON.parse(JSON.stringify(r));
        delete plain.timings;
        return plain;
      };
      const first = await inspect(true);
      recyclingCounts(true);
      const second = await inspect(true);
      assert.ok(recyclingCounts(true).reused > 0, 'the second inspection reused the first one\'s arrays');
      const off = await inspect(false);
      assert.deepEqual(first, off);
      assert.deepEqual(second, off);
      // Two inspections at once share one scope, which closes after both: neither loses values to the other.
      const [x, y] = await Promise.all([inspect(true), inspect(true)]);
      assert.deepEqual(x, off);
      assert.deepEqual(y, off);
    } finally {
      setRecycling(true);
      setBackend(previous);
    }
  });
});
