/**
 * 2-D transposes on host backends are lazy (Tensor.transposed): matmul reads the source transposed and the
 * transpose of a lazy transpose hands back its source's values. These check that every value and gradient is
 * the one the eager copy gives, on the reference and wasm backends, and that a lazy tensor keeps the values it
 * was created with after its source's data is replaced (an optimiser step).
 */
import { before, test } from 'node:test';
import assert from 'node:assert/strict';
import { Backend, Tensor, backward, matmul, mul, permute, referenceBackend, sum, tensorFrom, transpose, withBackend } from '../engine';
import { loadWasmBackendNode } from '../engine/backend/wasm/node';

let wasm: Backend;
before(async () => {
  wasm = await loadWasmBackendNode('kernels.wasm');
});

const values = (n: number, seed: number) => Array.from({ length: n }, (_, i) => Math.sin(seed * 7.1 + i * 1.3) * 2);

/** Eager transpose of a [r, c] array (what a strided copy writes). */
function transposeValues(v: ArrayLike<number>, r: number, c: number): number[] {
  const out: number[] = [];
  for (let j = 0; j < c; j++) for (let i = 0; i < r; i++) out.push(v[i * c + j]);
  return out;
}

function close(got: ArrayLike<number>, want: ArrayLike<number>, tol: number, what: string): void {
  assert.equal(got.length, want.length, `${what}: length`);
  for (let i = 0; i < want.length; i++) assert.ok(Math.abs(got[i] - want[i]) <= tol * (1 + Math.abs(want[i])), `${what}[${i}]: ${got[i]} vs ${want[i]}`);
}

for (const [name, backend, dtype, tol] of [['reference', () => referenceBackend, 'float64', 1e-12], ['wasm-simd', () => wasm, 'float32', 1e-5]] as const) {
  test(`${name}: a lazy transpose reads as the transpose, and transposing it back gives the source values`, () => {
    withBackend(backend(), () => {
      const w = tensorFrom(values(12, 1), [3, 4], dtype);
      const wt = transpose(w);
      assert.deepEqual(wt.shape, [4, 3]);
      assert.ok(wt.transposeOf, 'the transpose is tagged');
      close(wt.data, transposeValues(w.data, 3, 4), 0, 'W^T');
      const back = permute(transpose(w), [1, 0]);
      close(back.data, w.data, 0, '(W^T)^T');
    });
  });

  test(`${name}: matmul through a lazy transpose gives the eager values and gradients (Linear as MatMul(x, Transpose(W)))`, () => {
    withBackend(backend(), () => {
      for (const [transA, m, k, n] of [[false, 5, 4, 3], [true, 5, 4, 3], [false, 1, 7, 9]] as const) {
        const xv = values(m * k, 2), wv = values(n * k, 3), gv = values(m * n, 4);
        const run = (lazy: boolean) => {
          const x = tensorFrom(xv, transA ? [k, m] : [m, k], dtype, { requiresGrad: true });
          const w = tensorFrom(wv, [n, k], dtype, { requiresGrad: true });
          // The eager reference: the transpose's values as a plain tensor that backpropagates through mul by 1.
          const wt = lazy ? transpose(w) : mul(tensorFrom(transposeValues(w.data, n, k), [k, n], dtype), 1);
          const y = transA ? matmul(transpose(x), wt) : matmul(x, wt);
          backward(sum(mul(y, tensorFrom(gv, [m, n], dtype))));
          return { y: [...y.data], gx: [...x.grad!.data], gw: lazy ? [...w.grad!.data] : null };
        };
        const lazy = run(true), eager = run(false);
        close(lazy.y, eager.y, tol, `y tA=${transA}`);
        close(lazy.gx, eager.gx, tol, `dx tA=${transA}`);
        // dW = (x'^T g)^T = g^T x' computed independently.
        const xp = transA ? transposeValues(xv, k, m) : xv;
        const gw: number[] = [];
        for (let j = 0; j < n; j++) for (let p = 0; p < k; p++) {
          let s = 0;
          for (let i = 0; i < m; i++) s += gv[i * n + j] * xp[i * k + p];
          gw.push(s);
        }
        close(lazy.gw!, gw, tol, `dW tA=${transA}`);
      }
    });
  });

  test(`${name}: a lazy transpose keeps its values when the source's data is replaced (optimiser step)`, () => {
    withBackend(backend(), () => {
      const w = tensorFrom(values(6, 5), [2, 3], dtype, { requiresGrad: true });
      const before = transposeValues(w.data, 2, 3);
      const wt = transpose(w);
      const y = matmul(tensorFrom(values(4, 6), [2, 2], dtype), transpose(wt));
      w.data = (dtype === 'float64' ? Float64Array : Float32Array).from(values(6, 9));
      close(wt.data, before, 0, 'W^T after the step');
      close(y.data, matmul(tensorFrom(values(4, 6), [2, 2], dtype), tensorFrom(transposeValues(before, 3, 2), [2, 3], dtype)).data, tol, 'product');
    });
  });
}

test('a lazy transpose that is never read is never computed, and the tag survives only while its values are the transpose', () => {
  const w = tensorFrom(values(6, 7), [2, 3]);
  let computed = 0;
  const wt = Tensor.transposed(w.view(w.shape), () => {
    computed++;
    return Float32Array.from(transposeValues(w.data, 2, 3));
  });
  assert.equal(computed, 0);
  assert.ok(wt.hasHostData && !wt.isOnDevice);
  assert.equal(wt.data[1], w.data[3]);
  assert.equal(computed, 1);
  void wt.data;
  assert.equal(computed, 1, 'computed once');
  wt.data = new Float32Array(6);
  assert.equal(wt.transposeOf, undefined, 'replaced values drop the tag');
});
