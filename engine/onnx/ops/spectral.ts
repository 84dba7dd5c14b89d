/**
 * Spectral ops: DFT and STFT as compositions of engine ops, and the window / mel-filter constant generators
 * (HannWindow, HammingWindow, BlackmanWindow, MelWeightMatrix). Semantics follow the ONNX reference
 * implementation (onnx/reference/ops/op_dft.py, op_stft.py, op_*_window.py, op_mel_weight_matrix.py).
 *
 * A DFT is one matmul of the signal with a constant cos / sin basis: O(n²) per transform rather than an FFT's
 * O(n log n), which is fine for the transform lengths models use (audio frames of a few hundred to a few
 * thousand samples) and means it runs on every backend (wasm, WebGPU) with the engine's own matmul gradient.
 */
import { Tensor } from '../../tensor';
import { formatShape, sizeOf } from '../../shape';
import * as E from '../../ops';
import { OpContext, computedConstant, makeConstant } from '../context';
import { DataType } from '../proto';
import { engineDtype } from '../tensors';
import { Kind, checkSize } from '../helpers';
import { OpHandler, axisOf, floatIn, need, scalarOf } from './common';

export interface DftOptions {
  /** Transform length: the signal is zero-padded or truncated to it along the axis (irfft: the spectrum to length/2+1 bins). */
  readonly length: number;
  readonly inverse: boolean;
  /** Forward: keep bins 0..length/2 only. Inverse: the input is such a half spectrum and the output is real (irfft). */
  readonly onesided: boolean;
}

/** cos and sin of 2πkt/L, with kt reduced mod L first so large products keep their precision. */
function angle(k: number, t: number, length: number): [number, number] {
  const a = (2 * Math.PI * ((k * t) % length)) / length;
  return [Math.cos(a), Math.sin(a)];
}

/**
 * The [n·c, K·co] basis mapping one signal (n samples of c = 1 real or 2 interleaved re/im parts) onto
 * K output bins of co parts. Rows past the transform length are zero (truncation); padding needs no rows.
 */
function dftBasis(n: number, c: number, opts: DftOptions, dtype: Tensor['dtype']): { basis: Tensor; bins: number; parts: number } {
  const L = opts.length;
  if (opts.inverse && opts.onesided) {
    // irfft: output t = (1/L) Σ_k w_k (Re X_k cos − Im X_k sin), w = 1 at DC and Nyquist, 2 between
    // (the Hermitian mirror). The imaginary parts of DC and Nyquist drop out (sin = 0 there), as in numpy.
    const half = Math.floor(L / 2) + 1;
    checkSize(n * c * L, `DFT basis [${n * c}, ${L}]`);
    const basis = computedConstant([n * c, L], dtype, (data) => {
      for (let k = 0; k < Math.min(n, half); k++) {
        const w = (k === 0 || 2 * k === L ? 1 : 2) / L;
        for (let t = 0; t < L; t++) {
          const [cos, sin] = angle(k, t, L);
          data[k * c * L + t] = w * cos;
          if (c === 2) data[(k * c + 1) * L + t] = -w * sin;
        }
      }
    });
    return { basis, bins: L, parts: 1 };
  }
  const bins = opts.onesided ? Math.floor(L / 2) + 1 : L;
  const cols = bins * 2;
  // Forward multiplies by e^{-iθ}, inverse by e^{+iθ}/L.
  const sg = opts.inverse ? -1 : 1;
  const scale = opts.inverse ? 1 / L : 1;
  checkSize(n * c * cols, `DFT basis [${n * c}, ${cols}]`);
  const basis = computedConstant([n * c, cols], dtype, (data) => {
    for (let t = 0; t < Math.min(n, L); t++) {
      for (let k = 0; k < bins; k++) {
        const [cos, sin] = angle(k, t, L);
        const re = t * c * cols + k * 2;
        data[re] = scale * cos; // Re x → Re X
        data[re + 1] = -sg * scale * sin; // Re x → Im X
        if (c === 2) {
          const im = re + cols;
          data[im] = sg * scale * sin; // Im x → Re X
          data[im + 1] = scale * cos; // Im x → Im X
        }
      }
    }
  });
  return { basis, bins, parts: 2 };
}

/**
 * ONNX DFT of `x` ([..., 1] real or [..., 2] complex) along `axis` (not the last one): the axis moves next to
 * the complex dim, the rest flattens into rows, one matmul with the basis, and the axes move back.
 */
export function dft(x: Tensor, axis: number, opts: DftOptions): Tensor {
  const r = x.rank;
  const c = x.shape[r - 1];
  const n = x.shape[axis];
  const others = x.shape.map((_, i) => i).filter((i) => i !== axis && i !== r - 1);
  const perm = [...others, axis, r - 1];
  const moved = E.permute(x, perm);
  const rows = sizeOf(others.map((i) => x.shape[i]));
  const { basis, bins, parts } = dftBasis(n, c, opts, x.dtype);
  const y = E.matmul(E.reshape(moved, [rows, n * c]), basis);
  const shaped = E.reshape(y, [...others.map((i) => x.shape[i]), bins, parts]);
  const inverse = new Array<number>(r);
  perm.forEach((p, i) => (inverse[p] = i));
  return E.permute(shaped, inverse);
}

function lengthArg(ctx: OpContext, t: Tensor, what: string): number {
  const v = scalarOf(ctx, t, what);
  if (!Number.isInteger(v) || v < 1) ctx.fail('INVALID_MODEL', `${what} must be a positive integer, got ${v}`);
  return v;
}

function complexLast(ctx: OpContext, x: Tensor, what: string): void {
  const c = x.rank >= 2 ? x.shape[x.rank - 1] : 0;
  if (c !== 1 && c !== 2) ctx.fail('INVALID_MODEL', `${what} must have a last dim of 1 (real) or 2 (complex), got ${formatShape(x.shape)}`);
}

function dftOp(ctx: OpContext, inputs: readonly (Tensor | null)[]): Tensor {
  const x = floatIn(ctx, need(ctx, inputs, 0, 'input'), 'input');
  complexLast(ctx, x, 'DFT input');
  // Opset 20 moved axis from an attribute (default 1) to input 2 (default -2).
  const axisValue = ctx.opset >= 20 ? (inputs[2] ? scalarOf(ctx, inputs[2], 'axis') : -2) : ctx.attrs.int('axis', 1);
  const axis = axisOf(ctx, axisValue, x.rank);
  if (axis === x.rank - 1) ctx.fail('INVALID_MODEL', `axis ${axisValue} names the last dim of ${formatShape(x.shape)}, which holds the real / imaginary parts`);
  const inverse = ctx.attrs.flag('inverse', false);
  const onesided = ctx.attrs.flag('onesided', false);
  const n = x.shape[axis];
  const fallback = inverse && onesided ? 2 * (n - 1) : n;
  const length = inputs[1] ? lengthArg(ctx, inputs[1], 'dft_length') : fallback;
  if (length < 1) ctx.fail('INVALID_MODEL', `a DFT of length ${length} (the default for ${formatShape(x.shape)} along axis ${axis}${inverse && onesided ? ', irfft: 2 (bins - 1)' : ''}): give a positive dft_length`);
  return dft(x, axis, { length, inverse, onesided });
}

function stftOp(ctx: OpContext, inputs: readonly (Tensor | null)[]): Tensor {
  const x = floatIn(ctx, need(ctx, inputs, 0, 'signal'), 'signal');
  if (x.rank !== 3) ctx.fail('INVALID_MODEL', `signal must be [batch, length, 1 or 2], got ${formatShape(x.shape)}`);
  complexLast(ctx, x, 'signal');
  const step = lengthArg(ctx, need(ctx, inputs, 1, 'frame_step'), 'frame_step');
  const window = inputs[2] ? floatIn(ctx, inputs[2], 'window') : null;
  if (window && window.rank !== 1) ctx.fail('INVALID_MODEL', `window must be 1-D, got ${formatShape(window.shape)}`);
  const len = x.shape[1];
  const frameLength = inputs[3] ? lengthArg(ctx, inputs[3], 'frame_length') : window ? window.shape[0] : len;
  if (window && window.shape[0] !== frameLength) ctx.fail('INVALID_MODEL', `window length ${window.shape[0]} differs from frame_length ${frameLength}`);
  if (frameLength > len) ctx.fail('INVALID_MODEL', `frame_length ${frameLength} is longer than the signal (${len} samples)`);
  const frames = 1 + Math.floor((len - frameLength) / step);
  checkSize(frames * frameLength, `STFT frame indices [${frames}, ${frameLength}]`);
  const idx = new Int32Array(frames * frameLength);
  for (let f = 0; f < frames; f++) for (let t = 0; t < frameLength; t++) idx[f * frameLength + t] = f * step + t;
  // [batch, frames, frame_length, c]: one gather, so the gradient scatter-adds overlapping frames back.
  let framed = E.gather(x, makeConstant(idx, [frames, frameLength], 'int32'), 1);
  if (window) framed = E.mul(framed, E.reshape(window, [frameLength, 1]));
  return dft(framed, 2, { length: frameLength, inverse: false, onesided: ctx.attrs.flag('onesided', true) });
}

type WindowFn = (n: number, N: number) => number;

/** A window generator: `size` samples of fn over period N (size if periodic, size − 1 if symmetric). */
function windowOp(fn: WindowFn): OpHandler {
  return {
    nonDiff: 'all',
    shapeFrom: 'all',
    run(ctx, inputs) {
      const size = scalarOf(ctx, need(ctx, inputs, 0, 'size'), 'size');
      if (!Number.isInteger(size) || size < 0) ctx.fail('INVALID_MODEL', `size must be a non-negative integer, got ${size}`);
      checkSize(size, `${ctx.node.opType} output`);
      const N = ctx.attrs.flag('periodic', true) ? size : size - 1;
      const kind = outputKind(ctx);
      return computedConstant([size], kind, (data) => {
        // A symmetric window of one sample has period 0; torch and scipy give [1].
        for (let i = 0; i < size; i++) data[i] = round(N === 0 ? 1 : fn(i, N), kind);
      });
    },
  };
}

function outputKind(ctx: OpContext): Kind {
  return engineDtype(ctx.attrs.int('output_datatype', DataType.FLOAT), ctx.dtype, `${ctx.node.opType} node '${ctx.node.name}' output_datatype`) as Kind;
}

/** Integer outputs truncate, as the reference's astype. */
function round(v: number, kind: Kind): number {
  return kind === 'int32' ? Math.trunc(v) : kind === 'bool' ? (v !== 0 ? 1 : 0) : v;
}

const hann: WindowFn = (n, N) => Math.sin((Math.PI * n) / N) ** 2;
const HAMMING_ALPHA = 25 / 46;
const hamming: WindowFn = (n, N) => HAMMING_ALPHA - (1 - HAMMING_ALPHA) * Math.cos((2 * Math.PI * n) / N);
const blackman: WindowFn = (n, N) => 0.42 - 0.5 * Math.cos((2 * Math.PI * n) / N) + 0.08 * Math.cos((4 * Math.PI * n) / N);

/** Triangular mel filters, [dft_length/2 + 1, num_mel_bins], step by step as the ONNX reference builds them. */
function melWeightMatrix(ctx: OpContext, inputs: readonly (Tensor | null)[]): Tensor {
  const int = (i: number, what: string): number => {
    const v = scalarOf(ctx, need(ctx, inputs, i, what), what);
    if (!Number.isInteger(v) || v < 1) ctx.fail('INVALID_MODEL', `${what} must be a positive integer, got ${v}`);
    return v;
  };
  const mels = int(0, 'num_mel_bins');
  const dftLength = int(1, 'dft_length');
  const rate = int(2, 'sample_rate');
  const lower = scalarOf(ctx, need(ctx, inputs, 3, 'lower_edge_hertz'), 'lower_edge_hertz');
  const upper = scalarOf(ctx, need(ctx, inputs, 4, 'upper_edge_hertz'), 'upper_edge_hertz');
  if (!(lower >= 0 && upper > lower)) ctx.fail('INVALID_MODEL', `need 0 <= lower_edge_hertz < upper_edge_hertz, got ${lower} and ${upper}`);
  const specBins = Math.floor(dftLength / 2) + 1;
  const toMel = (hz: number): number => (2595 * Math.log1p(hz / 700)) / Math.LN10;
  const low = toMel(lower);
  const step = (toMel(upper) - low) / (mels + 2);
  const edges: number[] = [];
  for (let i = 0; i < mels + 2; i++) {
    const hz = 700 * Math.expm1(((i * step + low) / 2595) * Math.LN10);
    edges.push(Math.floor(((dftLength + 1) * hz) / rate));
  }
  const bad = edges.find((e) => e < 0 || e >= specBins);
  if (bad !== undefined) ctx.fail('INVALID_MODEL', `a mel band edge falls on spectrum bin ${bad}, outside the ${specBins} bins of a ${dftLength}-point DFT (upper_edge_hertz ${upper} above sample_rate / 2?)`);
  checkSize(specBins * mels, `MelWeightMatrix output [${specBins}, ${mels}]`);
  const kind = outputKind(ctx);
  return computedConstant([specBins, mels], kind, (out) => {
    for (let i = 0; i < mels; i++) {
      const [left, center, right] = [edges[i], edges[i + 1], edges[i + 2]];
      if (center === left) out[center * mels + i] = 1;
      else for (let j = left; j <= center; j++) out[j * mels + i] = round((j - left) / (center - left), kind);
      if (right > center) for (let j = center; j < right; j++) out[j * mels + i] = round((right - j) / (right - center), kind);
    }
  });
}

export const SPECTRAL_OPS: Readonly<Record<string, OpHandler>> = {
  DFT: { nonDiff: [1, 2], shapeFrom: [1, 2], run: dftOp },
  STFT: { nonDiff: [1, 3], shapeFrom: [1, 3], run: stftOp },
  HannWindow: windowOp(hann),
  HammingWindow: windowOp(hamming),
  BlackmanWindow: windowOp(blackman),
  MelWeightMatrix: { nonDiff: 'all', shapeFrom: 'all', run: melWeightMatrix },
};
