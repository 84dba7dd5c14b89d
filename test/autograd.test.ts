import { test } from 'node:test';
import assert from 'node:assert/strict';
import { add, backward, mul, noGrad, sum, tensorFrom, Tensor, exp, matmul, zeros, expand } from '../engine';

const t = (values: number[], shape: number[], requiresGrad = true) => tensorFrom(values, shape, 'float64', { requiresGrad });

test('backward from a scalar fills leaf grads (d(sum(a*b))/da = b)', () => {
  const a = t([1, 2, 3], [3]);
  const b = t([4, 5, 6], [3]);
  backward(sum(mul(a, b)));
  assert.deepEqual(a.grad!.toArray(), [4, 5, 6]);
  assert.deepEqual(b.grad!.toArray(), [1, 2, 3]);
});

test('backward with an explicit upstream gradient', () => {
  const a = t([1, 2], [2]);
  const y = mul(a, a);
  backward(y, tensorFrom([10, 100], [2], 'float64'));
  assert.deepEqual(a.grad!.toArray(), [20, 400]);
});

test('backward without gradient on a non-scalar throws a clear error', () => {
  const a = t([1, 2], [2]);
  assert.throws(() => backward(mul(a, a)), /needs a scalar, got shape \[2\]/);
});

test('.grad accumulates across backward calls and through shared inputs', () => {
  const a = t([3], []);
  backward(add(a, a)); // d/da (a + a) = 2
  assert.deepEqual(a.grad!.toArray(), [2]);
  backward(mul(a, a)); // + 2a = 6
  assert.deepEqual(a.grad!.toArray(), [8]);
});

test('detach and noGrad cut the graph', () => {
  const a = t([2], []);
  const d = a.detach();
  assert.equal(d.requiresGrad, false);
  assert.equal(d.data, a.data);
  const y = noGrad(() => mul(a, a));
  assert.equal(y.requiresGrad, false);
  assert.equal(y.gradFn, null);
  const z = mul(a, d); // gradient only through a
  backward(z);
  assert.deepEqual(a.grad!.toArray(), [2]);
});

test('retainGrad keeps an intermediate gradient; others are not kept', () => {
  const a = t([1, 2], [2]);
  const h = exp(a).retainGrad();
  const k = mul(h, h);
  backward(sum(k));
  // dL/dh = 2h
  assert.deepEqual(h.grad!.toArray(), [2 * Math.exp(1), 2 * Math.exp(2)]);
  assert.equal(k.grad, null);
});

test('registerHook sees the gradient in backward and may replace it', () => {
  const a = t([1, 2], [2]);
  const h = mul(a, tensorFrom([3, 3], [2], 'float64'));
  const seen: number[][] = [];
  h.registerHook((g) => {
    seen.push(g.toArray());
  });
  h.registerHook((g) => mul(g, tensorFrom([0, 1], [2], 'float64')));
  backward(sum(h));
  assert.deepEqual(seen, [[1, 1]]);
  assert.deepEqual(a.grad!.toArray(), [0, 3]);
});

test('hooks on leaves run before accumulation and removers work', () => {
  const a = t([1, 2], [2]);
  const calls: number[] = [];
  const remove = a.registerHook(() => {
    calls.push(1);
  });
  backward(sum(a));
  remove();
  backward(sum(a));
  assert.deepEqual(calls, [1]);
  assert.deepEqual(a.grad!.toArray(), [2, 2]);
});

test('a deep chain (10k ops) does not overflow the stack', () => {
  const a = t([1.0001], []);
  let y: Tensor = a;
  for (let i = 0; i < 10000; i++) y = mul(y, tensorFrom([1], [], 'float64'));
  backward(y);
  assert.deepEqual(a.grad!.toArray(), [1]);
});

test('float32 tensors produce float32 gradients', () => {
  const a = tensorFrom([1, 2, 3, 4], [2, 2], 'float32', { requiresGrad: true });
  backward(sum(matmul(a, a)));
  assert.ok(a.grad!.data instanceof Float32Array);
  // d/dA sum(A A) = 1 A^T + A^T 1 → [[1+3+1+2, ...]]: check against the closed form
  const A = [1, 2, 3, 4];
  const expected = [0, 1, 2, 3].map((idx) => {
    const i = Math.floor(idx / 2);
    const j = idx % 2;
    // sum_{r,c} sum_k A[r,k] A[k,c]; d/dA[i,j] = sum_c A[j,c] + sum_r A[r,i]
    return A[j * 2] + A[j * 2 + 1] + A[i] + A[2 + i];
  });
  assert.deepEqual(a.grad!.toArray(), expected);
});

test('an oversized tensor is refused with a clear message, not an opaque allocation failure', () => {
  assert.throws(() => zeros([1 << 15, 1 << 15]), /a tensor of 1,073,741,824 elements is too large \(limit 268,435,456\)/);
  const a = tensorFrom([1], [1], 'float32');
  assert.throws(() => expand(a, [1 << 15, 1 << 14]), /too large/);
});
