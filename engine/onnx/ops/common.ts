/** What every ONNX op handler shares: the handler type and small input/attribute accessors. */
import { Tensor } from '../../tensor';
import { isFloat } from '../../dtype';
import { Shape, formatShape, normalizeAxis } from '../../shape';
import * as E from '../../ops';
import { OpContext, makeConstant } from '../context';
import { Kind, numbers } from '../helpers';
import { RunValue } from '../values';

export type OpResult = Tensor | null | readonly (Tensor | null)[];
/** What a handler of any run value returns: engine tensors, sequences, optionals or string tensors. */
export type ValueOpResult = RunValue | null | readonly (RunValue | null)[];

interface HandlerTraits {
  /** Input slots that never carry gradients (shapes, indices, masks, running statistics...). 'all' for none. */
  readonly nonDiff?: readonly number[] | 'all';
  /** The outputs depend only on the input shapes (Shape, Size): foldable once the shapes are known. */
  readonly shapeOnly?: boolean;
  /**
   * Input slots whose values, not only their shapes, set the output shapes (Reshape's target, Slice's bounds,
   * Range's limits); 'all' when any may. A Shape downstream is folded per input-shape signature only while no
   * such slot reads a value that changes between runs (a graph input's data): see `execute` in model.ts.
   */
  readonly shapeFrom?: readonly number[] | 'all';
  /** Random: never constant-folded. */
  readonly stochastic?: boolean;
}

/** An op on engine tensors: the executor refuses a sequence, optional or string input (UNSUPPORTED_DTYPE). */
export interface OpHandler extends HandlerTraits {
  run(ctx: OpContext, inputs: readonly (Tensor | null)[]): OpResult;
  readonly runValues?: undefined;
}

/** An op that takes any run value (values.ts): Identity, Equal on strings, the sequence and optional ops. */
export interface ValueOpHandler extends HandlerTraits {
  runValues(ctx: OpContext, inputs: readonly (RunValue | null)[]): ValueOpResult;
  readonly run?: undefined;
}

/** Any entry of the op registry. */
export type AnyOpHandler = OpHandler | ValueOpHandler;


export function isF(t: Tensor): boolean {
  return isFloat(t.dtype);
}

export function need(ctx: OpContext, inputs: readonly (Tensor | null)[], i: number, what: string): Tensor {
  const t = inputs[i];
  if (!t) ctx.fail('INVALID_MODEL', `required input ${i} (${what}) is missing`);
  return t;
}

export function floatIn(ctx: OpContext, t: Tensor, what: string): Tensor {
  if (!isF(t)) ctx.fail('INVALID_MODEL', `${what} must be a float tensor, got ${t.dtype} ${formatShape(t.shape)}`);
  return t;
}

/** A number from a 0-d or 1-element tensor. */
export function scalarOf(ctx: OpContext, t: Tensor, what: string): number {
  if (t.size !== 1) ctx.fail('INVALID_MODEL', `${what} must hold one value, got shape ${formatShape(t.shape)}`);
  return t.data[0];
}

export function kindOf(t: Tensor): Kind {
  return t.dtype as Kind;
}

export function axisOf(ctx: OpContext, axis: number, rank: number, what = 'axis'): number {
  try {
    return normalizeAxis(axis, rank, what);
  } catch (e) {
    return ctx.fail('INVALID_MODEL', (e as Error).message);
  }
}

/** A constant tensor in the dtype of `like` (the run's float dtype for floats). */
export function constLike(like: Tensor, values: ArrayLike<number>, shape: Shape): Tensor {
  return makeConstant(values, shape, like.dtype);
}

/** Legacy (opset < 7) broadcasting: B aligned with A starting at `axis`. */
export function legacyBroadcast(ctx: OpContext, a: Tensor, b: Tensor): Tensor {
  if (ctx.opset >= 7 || !ctx.attrs.has('axis') || !ctx.attrs.flag('broadcast', false)) return b;
  const axis = ctx.attrs.int('axis');
  const start = axis < 0 ? axis + a.rank : axis;
  const shape = [...new Array<number>(start).fill(1), ...b.shape, ...new Array<number>(Math.max(0, a.rank - start - b.rank)).fill(1)];
  return E.reshape(b, shape);
}

export function shapeValues(ctx: OpContext, t: Tensor, what: string): number[] {
  if (isF(t)) ctx.fail('INVALID_MODEL', `${what} must be an integer tensor, got ${t.dtype}`);
  return numbers(t);
}

/**
 * Axes normalised into [0, rank), rejecting repeats (ONNX leaves a repeated axis undefined; onnxruntime
 * rejects it): `[1, -1]` on a rank-2 tensor is the same axis twice.
 */
export function distinctAxes(ctx: OpContext, axes: readonly number[], rank: number, what = 'axes'): number[] {
  const out = axes.map((a) => axisOf(ctx, a, rank, `${what} entry`));
  const seen = new Set<number>();
  out.forEach((a, i) => {
    if (seen.has(a)) ctx.fail('INVALID_MODEL', `${what} ${formatShape(axes)} name axis ${a} twice (entry ${i}) for a tensor of rank ${rank}`);
    seen.add(a);
  });
  return out;
}

/** Axes from the attribute (before `inputSince`) or from input 1 (from `inputSince` on). null = not given. */
export function axesArg(ctx: OpContext, inputs: readonly (Tensor | null)[], inputSince: number, slot = 1): number[] | null {
  if (ctx.opset >= inputSince) {
    const t = inputs[slot];
    return t ? shapeValues(ctx, t, 'axes') : null;
  }
  return ctx.attrs.has('axes') ? ctx.attrs.ints('axes') : null;
}
