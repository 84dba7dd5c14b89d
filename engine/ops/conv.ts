import { Tensor } from '../tensor';
import { record } from '../autograd';
import { avgPool2dBackwardK, avgPool2dK, col2imK, conv2dK, depthwiseConv2dK, im2colK, maxPool2dK } from '../backend/dispatch';
import { Conv2dGeometry } from '../backend/backend';
import { Shape, formatShape } from '../shape';
import { floatDtype } from './util';
import { concat, permute, reshape, slice } from './layout';
import { FloatDType, allocateFloat } from '../dtype';
import { matmul } from './matmul';
import { add } from './elementwise';
import { mean } from './reduce';

/** A per-axis (height, width) setting given as one number for both or as a pair. */
type Pair = number | readonly [number, number] | [number, number];

export interface Conv2dOptions {
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  groups?: number;
}

export interface Pool2dOptions {
  kernel: number | [number, number];
  /** Defaults to the kernel size, as in PyTorch. */
  stride?: number | [number, number];
  padding?: number | [number, number];
  dilation?: number | [number, number];
  /** avg_pool2d only: divide by the full window size, padding included (PyTorch's default true). */
  countIncludePad?: boolean;
}

/** Reads a (height, width) pair, checking each is an integer >= `min`. */
function pair(op: string, what: string, v: Pair | undefined, fallback: [number, number], min: number): [number, number] {
  let p: [number, number];
  if (v === undefined) p = fallback;
  else if (typeof v === 'number') p = [v, v];
  else if (Array.isArray(v) && v.length === 2) p = [v[0], v[1]];
  else throw new RangeError(`${op}: ${what} must be a number or a pair [h, w], got ${JSON.stringify(v)}`);
  if (!p.every((d) => Number.isInteger(d) && d >= min)) {
    throw new RangeError(`${op}: ${what} must be integers >= ${min}, got ${formatShape(p)}`);
  }
  return p;
}

/** Floor output size of a sliding window (ceil_mode false): floor((in + 2p - d(k-1) - 1) / s) + 1. */
function outSize(size: number, k: number, s: number, p: number, d: number): number {
  return Math.floor((size + 2 * p - d * (k - 1) - 1) / s) + 1;
}

function assertNchw(op: string, shape: Shape): void {
  if (shape.length !== 4) throw new RangeError(`${op}: expected input [N, C, H, W], got ${formatShape(shape)}`);
}

function windowGeometry(
  op: string, x: Shape, kh: number, kw: number, stride: [number, number], padding: [number, number], dilation: [number, number], context: string,
): Conv2dGeometry {
  const [n, c, h, w] = x;
  const oh = outSize(h, kh, stride[0], padding[0], dilation[0]);
  const ow = outSize(w, kw, stride[1], padding[1], dilation[1]);
  if (oh <= 0 || ow <= 0) {
    throw new RangeError(
      `${op}: output size would be ${oh}x${ow} for input ${formatShape(x)}${context} ` +
        `(kernel ${kh}x${kw}, stride ${formatShape(stride)}, padding ${formatShape(padding)}, dilation ${formatShape(dilation)}); the padded input is smaller than the dilated kernel`,
    );
  }
  return { n, c, h, w, kh, kw, sh: stride[0], sw: stride[1], ph: padding[0], pw: padding[1], dh: dilation[0], dw: dilation[1], oh, ow };
}

/**
 * Checks conv2d shapes and returns the im2col geometry. `x` is [N, C, H, W] and `weight`
 * [O, C/groups, kh, kw]. Throws a RangeError naming conv2d and the shapes on any mismatch.
 */
export function conv2dGeometry(xShape: Shape, weightShape: Shape, options: Conv2dOptions = {}): Conv2dGeometry {
  const op = 'conv2d';
  assertNchw(op, xShape);
  if (weightShape.length !== 4) throw new RangeError(`${op}: expected weight [O, C/groups, kh, kw], got ${formatShape(weightShape)}`);
  const groups = options.groups ?? 1;
  const c = xShape[1];
  const [o, cg, kh, kw] = weightShape;
  const shapes = `input ${formatShape(xShape)}, weight ${formatShape(weightShape)}`;
  if (!Number.isInteger(groups) || groups < 1) throw new RangeError(`${op}: groups must be a positive integer, got ${groups} (${shapes})`);
  if (c % groups !== 0 || o % groups !== 0) {
    throw new RangeError(`${op}: groups=${groups} must divide both the input channels (${c}) and the output channels (${o}) (${shapes})`);
  }
  if (cg * groups !== c) {
    throw new RangeError(`${op}: ${shapes}: the input has ${c} channels but the weight expects ${cg} per group x ${groups} group(s) = ${cg * groups}`);
  }
  if (kh < 1 || kw < 1) throw new RangeError(`${op}: empty kernel in weight ${formatShape(weightShape)}`);
  const stride = pair(op, 'stride', options.stride, [1, 1], 1);
  const padding = pair(op, 'padding', options.padding, [0, 0], 0);
  const dilation = pair(op, 'dilation', options.dilation, [1, 1], 1);
  return windowGeometry(op, xShape, kh, kw, stride, padding, dilation, ` and weight ${formatShape(weightShape)}`);
}

/** Checks pooling options against input [N, C, H, W] and returns the window geometry (floor mode). */
export function pool2dGeometry(xShape: Shape, options: Pool2dOptions, op = 'pool2d'): Conv2dGeometry {
  assertNchw(op, xShape);
  if (!options || options.kernel === undefined) throw new RangeError(`${op}: options.kernel is required`);
  const [kh, kw] = pair(op, 'kernel', options.kernel, [1, 1], 1);
  const stride = pair(op, 'stride', options.stride, [kh, kw], 1);
  const padding = pair(op, 'padding', options.padding, [0, 0], 0);
  const dilation = pair(op, 'dilation', options.dilation, [1, 1], 1);
  if (padding[0] > Math.floor(kh / 2) || padding[1] > Math.floor(kw / 2)) {
    // Same rule as PyTorch; it also guarantees every window holds at least one real input element.
    throw new RangeError(`${op}: padding ${formatShape(padding)} must be at most half the kernel ${formatShape([kh, kw])} (input ${formatShape(xShape)})`);
  }
  const geo = windowGeometry(op, xShape, kh, kw, stride, padding, dilation, '');
  // With dilation a window can still miss the input entirely (e.g. 2x2 kernel, padding 1, dilation 3
  // on a 2x2 input): its max would be -inf with no input element to send the gradient to.
  const hits = (out: number, size: number, k: number, s: number, p: number, d: number) => {
    for (let o = 0; o < out; o++) {
      let any = false;
      for (let i = 0; i < k && !any; i++) any = o * s - p + i * d >= 0 && o * s - p + i * d < size;
      if (!any) return false;
    }
    return true;
  };
  if (!hits(geo.oh, geo.h, kh, geo.sh, geo.ph, geo.dh) || !hits(geo.ow, geo.w, kw, geo.sw, geo.pw, geo.dw)) {
    throw new RangeError(
      `${op}: some pooling windows lie entirely in the padding for input ${formatShape(xShape)} ` +
        `(kernel ${formatShape([kh, kw])}, stride ${formatShape(stride)}, padding ${formatShape(padding)}, dilation ${formatShape(dilation)})`,
    );
  }
  return geo;
}

/** Runs an NCHW op on an unbatched [C, H, W] input by adding and removing a batch dim of 1. */
function unbatched(x: Tensor, fn: (x4: Tensor) => Tensor): Tensor {
  if (x.rank !== 3) return fn(x);
  const y = fn(reshape(x, [1, ...x.shape]));
  return reshape(y, y.shape.slice(1));
}

/**
 * im2col as a differentiable op: [N, C, H, W] -> columns [N, C*kh*kw, oh*ow] (torch's unfold).
 * Its VJP is col2im, which sums the gradient of overlapping windows back into the input.
 */
function im2col(x: Tensor, geo: Conv2dGeometry): Tensor {
  const shape = [geo.n, geo.c * geo.kh * geo.kw, geo.oh * geo.ow];
  const cols = im2colK(x, geo, shape);
  return record('im2col', [x], cols, (g) => [col2imK(g, geo, x)]);
}

/**
 * Depthwise convolution (groups = in = out channels) with its own kernels: the composite below would copy every
 * input kh*kw times and run n*c products of one row. Null on a device backend (which runs the composite).
 */
function depthwise(x: Tensor, weight: Tensor, geo: Conv2dGeometry): Tensor | null {
  const k = depthwiseConv2dK(x, weight, geo, [geo.n, geo.c, geo.oh, geo.ow]);
  if (!k) return null;
  return record('depthwise_conv2d', [x, weight], k.y, (g) => [
    x.requiresGrad ? k.inputGrad(g) : null,
    weight.requiresGrad ? k.weightGrad(g) : null,
  ]);
}

/**
 * Dense convolution with the backend's conv2d kernel, which keeps the im2col columns to itself (see Backend.conv2d).
 * Null on a device backend (which runs the composite below).
 */
function direct(x: Tensor, weight: Tensor, geo: Conv2dGeometry, groups: number): Tensor | null {
  const k = conv2dK(x, weight, geo, groups, [geo.n, weight.shape[0], geo.oh, geo.ow]);
  if (!k) return null;
  return record('conv2d', [x, weight], k.y, (g) => [
    x.requiresGrad ? k.inputGrad(g) : null,
    weight.requiresGrad ? k.weightGrad(g) : null,
  ]);
}

/**
 * 2-D convolution (cross-correlation), as torch.nn.functional.conv2d. x is [N, C, H, W] (or
 * unbatched [C, H, W]), weight [O, C/groups, kh, kw], bias [O]; the output is [N, O, oh, ow].
 *
 * On host backends one conv2d kernel per product (forward, input and weight gradients); depthwise ones have
 * their own kernel. On device backends, a composite: im2col (explicit VJP = col2im) followed by one batched
 * matmul that covers every group at once, since the columns are channel-major:
 *   cols [N, C*kh*kw, L] = [N, G, K, L] with K = (C/G)*kh*kw,  weight [O, C/G, kh, kw] = [G, O/G, K]
 *   out  = weight @ cols -> [N, G, O/G, L] = [N, O, oh, ow].
 * The weight and input-column gradients come from matmul's VJP (the weight's batch broadcast over N
 * is summed back), and the bias gradient from add's broadcast VJP.
 */
export function conv2d(x: Tensor, weight: Tensor, bias: Tensor | null = null, options: Conv2dOptions = {}): Tensor {
  floatDtype('conv2d', x, weight, ...(bias ? [bias] : []));
  if (x.rank !== 3 && x.rank !== 4) throw new RangeError(`conv2d: expected input [N, C, H, W] or [C, H, W], got ${formatShape(x.shape)}`);
  return unbatched(x, (x4) => {
    const geo = conv2dGeometry(x4.shape, weight.shape, options);
    const groups = options.groups ?? 1;
    const o = weight.shape[0];
    if (bias && (bias.rank !== 1 || bias.shape[0] !== o)) {
      throw new RangeError(`conv2d: bias shape ${formatShape(bias.shape)} does not match weight ${formatShape(weight.shape)} (expected [${o}])`);
    }
    if (groups === geo.c && o === geo.c && groups > 1) {
      const dw = depthwise(x4, weight, geo);
      if (dw) return bias ? add(dw, reshape(bias, [o, 1, 1])) : dw;
    }
    const fused = direct(x4, weight, geo, groups);
    if (fused) return bias ? add(fused, reshape(bias, [o, 1, 1])) : fused;
    const k = (geo.c / groups) * geo.kh * geo.kw;
    const l = geo.oh * geo.ow;
    const cols = reshape(im2col(x4, geo), [geo.n, groups, k, l]);
    const w = reshape(weight, [groups, o / groups, k]);
    let y = reshape(matmul(w, cols), [geo.n, o, geo.oh, geo.ow]);
    if (bias) y = add(y, reshape(bias, [o, 1, 1]));
    return y;
  });
}

/**
 * Max pooling over [N, C, H, W] windows (torch.nn.functional.max_pool2d, floor mode; padding is
 * -inf). The VJP scatter-adds each output gradient into the input element that held the window's
 * max (the first one on ties, as the kernel reports it).
 */
export function maxPool2d(x: Tensor, options: Pool2dOptions): Tensor {
  floatDtype('max_pool2d', x);
  if (x.rank !== 3 && x.rank !== 4) throw new RangeError(`max_pool2d: expected input [N, C, H, W] or [C, H, W], got ${formatShape(x.shape)}`);
  return unbatched(x, (x4) => {
    const geo = pool2dGeometry(x4.shape, options, 'max_pool2d');
    const { y: out, backward } = maxPool2dK(x4, geo, [geo.n, geo.c, geo.oh, geo.ow]);
    return record('max_pool2d', [x4], out, (g) => [backward(g)]);
  });
}

/**
 * Average pooling (torch.nn.functional.avg_pool2d, floor mode). With countIncludePad (default
 * true) windows overlapping the padding divide by the full kernel area, else by the in-bounds count.
 * PyTorch's avg_pool2d has no dilation, so only dilation 1 is accepted.
 */
export function avgPool2d(x: Tensor, options: Pool2dOptions): Tensor {
  floatDtype('avg_pool2d', x);
  if (x.rank !== 3 && x.rank !== 4) throw new RangeError(`avg_pool2d: expected input [N, C, H, W] or [C, H, W], got ${formatShape(x.shape)}`);
  const dilation = pair('avg_pool2d', 'dilation', options?.dilation, [1, 1], 1);
  if (dilation[0] !== 1 || dilation[1] !== 1) {
    throw new RangeError(`avg_pool2d: dilation ${formatShape(dilation)} is not supported (PyTorch's avg_pool2d has none)`);
  }
  const countIncludePad = options.countIncludePad ?? true;
  return unbatched(x, (x4) => {
    const geo = pool2dGeometry(x4.shape, options, 'avg_pool2d');
    const out = avgPool2dK(x4, geo, countIncludePad, [geo.n, geo.c, geo.oh, geo.ow]);
    return record('avg_pool2d', [x4], out, (g) => [avgPool2dBackwardK(g, geo, countIncludePad, x4)]);
  });
}

/**
 * Global average pooling: the mean over every spatial dim, kept as size 1 ([N, C, H, W] ->
 * [N, C, 1, 1]), as adaptive_avg_pool2d(x, 1) / ONNX GlobalAveragePool. Composite (mean).
 */
export function globalAvgPool(x: Tensor): Tensor {
  floatDtype('global_avg_pool', x);
  if (x.rank < 3) throw new RangeError(`global_avg_pool: expected input [N, C, H, W] (or more spatial dims), got ${formatShape(x.shape)}`);
  return mean(x, x.shape.slice(2).map((_, i) => i + 2), true);
}

export interface Conv3dOptions {
  stride?: [number, number, number];
  padding?: [number, number, number];
  dilation?: [number, number, number];
  groups?: number;
}

/**
 * 3-D convolution (torch.nn.functional.conv3d): x [N, C, D, H, W], weight [O, C/groups, kd, kh, kw],
 * bias [O] -> [N, O, od, oh, ow]. Composite: for each kernel depth tap, the strided depth slices of the
 * (depth-padded) input are stacked into the batch and convolved in 2-D with that tap's weight plane;
 * the planes' outputs are summed. So it runs on every backend's 2-D kernels and autograd gives the VJP.
 */
export function conv3d(x: Tensor, weight: Tensor, bias: Tensor | null = null, options: Conv3dOptions = {}): Tensor {
  floatDtype('conv3d', x, weight, ...(bias ? [bias] : []));
  if (x.rank !== 5 || weight.rank !== 5) throw new RangeError(`conv3d: expected input [N, C, D, H, W] and weight [O, C/groups, kd, kh, kw], got ${formatShape(x.shape)} and ${formatShape(weight.shape)}`);
  const [sd, sh, sw] = options.stride ?? [1, 1, 1];
  const [pd, ph, pw] = options.padding ?? [0, 0, 0];
  const [dd, dh, dw] = options.dilation ?? [1, 1, 1];
  const [n, c, depth, h, w] = x.shape;
  const [o, , kd, kh, kw] = weight.shape;
  if (bias && (bias.rank !== 1 || bias.shape[0] !== o)) throw new RangeError(`conv3d: bias shape ${formatShape(bias.shape)} does not match weight ${formatShape(weight.shape)} (expected [${o}])`);
  const od = Math.floor((depth + 2 * pd - dd * (kd - 1) - 1) / sd) + 1;
  if (od <= 0) throw new RangeError(`conv3d: output depth would be ${od} for input ${formatShape(x.shape)} (kernel depth ${kd}, stride ${sd}, padding ${pd}, dilation ${dd})`);
  let xp = x;
  if (pd > 0) {
    const zeros = new Tensor(allocateFloat(x.dtype as FloatDType, n * c * pd * h * w), [n, c, pd, h, w]);
    xp = concat([zeros, x, zeros], 2);
  }
  let y: Tensor | null = null;
  for (let t = 0; t < kd; t++) {
    const start = t * dd;
    const planes = slice(xp, { starts: [start], ends: [start + (od - 1) * sd + 1], axes: [2], steps: [sd] });
    const batch = reshape(permute(planes, [0, 2, 1, 3, 4]), [n * od, c, h, w]);
    const wt = reshape(slice(weight, { starts: [t], ends: [t + 1], axes: [2] }), [o, weight.shape[1], kh, kw]);
    const part = conv2d(batch, wt, null, { stride: [sh, sw], padding: [ph, pw], dilation: [dh, dw], groups: options.groups ?? 1 });
    y = y ? add(y, part) : part;
  }
  const [, , oh, ow] = y!.shape;
  let out = permute(reshape(y!, [n, od, o, oh, ow]), [0, 2, 1, 3, 4]);
  if (bias) out = add(out, reshape(bias, [o, 1, 1, 1]));
  return out;
}
