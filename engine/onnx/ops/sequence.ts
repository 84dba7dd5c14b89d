/**
 * Sequence and optional ONNX ops (values.ts): building, reading and editing sequences of tensors, and
 * optionals. Only the tensors inside carry gradients, and these ops move them without copying: SequenceAt
 * returns the very tensor SequenceConstruct received, so its gradient reaches the producer. SplitToSequence
 * and ConcatFromSequence are engine slices / concats (their VJPs). SequenceMap runs a body, so it lives
 * with the other body runners in ops/control.ts. A sequence or optional is never folded nor counted as of known shape
 * (model.ts `execute`), so a Shape of anything read out of one is computed per run; `shapeFrom` still says
 * which slots' values choose shapes.
 */
import { Tensor } from '../../tensor';
import { formatShape } from '../../shape';
import * as E from '../../ops';
import { OpContext } from '../context';
import { DataType } from '../proto';
import { engineDtype } from '../tensors';
import { chunksAlong, layout, stackAlong } from '../helpers';
import { ElementKind, OnnxOptional, OnnxSequence, RunValue, SequenceElement, StringTensor, describeValue } from '../values';
import { ValueOpHandler, axisOf, scalarOf, shapeValues } from './common';

function sequenceIn(ctx: OpContext, inputs: readonly (RunValue | null)[], i: number, what: string): OnnxSequence {
  const v = inputs[i];
  if (!(v instanceof OnnxSequence)) return ctx.fail('INVALID_MODEL', `input ${i} (${what}) must be a sequence, got ${describeValue(v ?? null)}`);
  return v;
}

function elementIn(ctx: OpContext, inputs: readonly (RunValue | null)[], i: number, what: string): SequenceElement {
  const v = inputs[i];
  if (!(v instanceof Tensor || v instanceof StringTensor)) return ctx.fail('INVALID_MODEL', `input ${i} (${what}) must be a tensor, got ${describeValue(v ?? null)}`);
  return v;
}

/** A numeric (not string) tensor input: the ops that compute on elements. */
function numericIn(ctx: OpContext, v: SequenceElement, what: string): Tensor {
  if (v instanceof StringTensor) return ctx.fail('UNSUPPORTED_FEATURE', `${what} is a string tensor; the importer slices and concatenates tensors of numbers and bool only`);
  return v;
}

/** An optional position input (an int scalar), checked to lie in [-n, n - 1] (or [-n, n] with `end`). */
function positionOf(ctx: OpContext, t: RunValue | null, n: number, fallback: number, end: boolean): number {
  if (t === null) return fallback;
  if (!(t instanceof Tensor)) return ctx.fail('INVALID_MODEL', `position must be an integer scalar tensor, got ${describeValue(t)}`);
  const p = scalarOf(ctx, t, 'position');
  if (!Number.isInteger(p)) ctx.fail('INVALID_MODEL', `position must be an integer, got ${p}`);
  const high = end ? n : n - 1;
  if (p < -n || p > high) ctx.fail('INVALID_MODEL', `position ${p} is outside [${-n}, ${high}] for a sequence of ${n} tensor${n === 1 ? '' : 's'}`);
  return p < 0 ? p + n : p;
}

/** The element kind of ONNX element type `dataType` in this run (floats as the run's dtype). */
function kindOfType(ctx: OpContext, dataType: number, what: string): ElementKind {
  if (dataType === DataType.STRING) return 'string';
  try {
    return engineDtype(dataType, ctx.dtype, what);
  } catch (e) {
    return ctx.fail('UNSUPPORTED_DTYPE', (e as Error).message);
  }
}

function sequenceOf(ctx: OpContext, items: readonly SequenceElement[], kind: ElementKind | null): OnnxSequence {
  try {
    return new OnnxSequence(items, kind);
  } catch (e) {
    return ctx.fail('INVALID_MODEL', (e as Error).message);
  }
}

/** SplitToSequence's chunk sizes: one per element (no split), a scalar chunk length (last one shorter), or a list. */
function splitSizes(ctx: OpContext, split: Tensor | null, dim: number): { sizes: number[]; squeeze: boolean } {
  if (split === null) return { sizes: new Array<number>(dim).fill(1), squeeze: !ctx.attrs.flag('keepdims', true) };
  const values = shapeValues(ctx, split, 'split');
  if (values.some((n) => !Number.isInteger(n) || n < 0)) ctx.fail('INVALID_MODEL', `split ${formatShape(values)} must hold non-negative integers`);
  if (split.rank === 0) {
    const chunk = values[0];
    if (chunk < 1) ctx.fail('INVALID_MODEL', `split length ${chunk} must be positive`);
    const sizes: number[] = [];
    for (let at = 0; at < dim; at += chunk) sizes.push(Math.min(chunk, dim - at));
    return { sizes, squeeze: false };
  }
  if (split.rank !== 1) ctx.fail('INVALID_MODEL', `split must be a scalar or a 1-D tensor, got shape ${formatShape(split.shape)}`);
  if (values.reduce((p, q) => p + q, 0) !== dim) ctx.fail('INVALID_MODEL', `split sizes ${formatShape(values)} do not add up to the split dim (${dim})`);
  return { sizes: values, squeeze: false };
}

export const SEQUENCE_OPS: Readonly<Record<string, ValueOpHandler>> = {
  SequenceEmpty: {
    runValues: (ctx) => sequenceOf(ctx, [], kindOfType(ctx, ctx.attrs.int('dtype', DataType.FLOAT), 'SequenceEmpty dtype')),
  },
  SequenceConstruct: {
    runValues(ctx, inputs) {
      if (inputs.length === 0) ctx.fail('INVALID_MODEL', 'SequenceConstruct needs at least one input');
      return sequenceOf(ctx, inputs.map((_, i) => elementIn(ctx, inputs, i, 'inputs')), null);
    },
  },
  SequenceAt: {
    nonDiff: [1],
    shapeFrom: [1], // the position picks the element, and so its shape
    runValues(ctx, inputs) {
      const seq = sequenceIn(ctx, inputs, 0, 'input_sequence');
      if (!inputs[1]) ctx.fail('INVALID_MODEL', 'required input 1 (position) is missing');
      return seq.items[positionOf(ctx, inputs[1], seq.length, 0, false)];
    },
  },
  SequenceInsert: {
    nonDiff: [2],
    shapeFrom: [2], // the position sets where the tensor goes
    runValues(ctx, inputs) {
      const seq = sequenceIn(ctx, inputs, 0, 'input_sequence');
      const t = elementIn(ctx, inputs, 1, 'tensor');
      const at = positionOf(ctx, inputs[2] ?? null, seq.length, seq.length, true);
      return sequenceOf(ctx, [...seq.items.slice(0, at), t, ...seq.items.slice(at)], seq.elemKind ?? null);
    },
  },
  SequenceErase: {
    nonDiff: [1],
    shapeFrom: [1], // the position sets which element goes
    runValues(ctx, inputs) {
      const seq = sequenceIn(ctx, inputs, 0, 'input_sequence');
      if (seq.length === 0) ctx.fail('INVALID_MODEL', 'cannot erase from an empty sequence');
      const at = positionOf(ctx, inputs[1] ?? null, seq.length, seq.length - 1, false);
      return sequenceOf(ctx, seq.items.filter((_, i) => i !== at), seq.elemKind);
    },
  },
  SequenceLength: {
    nonDiff: 'all',
    runValues: (ctx, inputs) => ctx.constant([sequenceIn(ctx, inputs, 0, 'input_sequence').length], [], 'int32'),
  },
  SplitToSequence: {
    nonDiff: [1],
    shapeFrom: [1], // the split sizes set the pieces' shapes
    runValues(ctx, inputs) {
      const x = numericIn(ctx, elementIn(ctx, inputs, 0, 'input'), 'input');
      const axis = axisOf(ctx, ctx.attrs.int('axis', 0), x.rank);
      const split = inputs[1] ?? null;
      if (split !== null && !(split instanceof Tensor)) return ctx.fail('INVALID_MODEL', `split must be an integer tensor, got ${describeValue(split)}`);
      const { sizes, squeeze } = splitSizes(ctx, split, x.shape[axis]);
      return sequenceOf(ctx, chunksAlong(x, axis, sizes, squeeze), x.dtype);
    },
  },
  ConcatFromSequence: {
    runValues(ctx, inputs) {
      const seq = sequenceIn(ctx, inputs, 0, 'input_sequence');
      if (seq.length === 0) ctx.fail('INVALID_MODEL', 'cannot concatenate an empty sequence');
      const xs = seq.items.map((t, i) => numericIn(ctx, t, `element ${i}`));
      const newAxis = ctx.attrs.flag('new_axis', false);
      const rank = xs[0].rank;
      // With new_axis the elements are stacked: axis counts in the output's rank (rank + 1).
      const axis = axisOf(ctx, ctx.attrs.int('axis'), newAxis ? rank + 1 : rank);
      for (const [i, t] of xs.entries()) {
        if (t.rank !== rank) ctx.fail('INVALID_MODEL', `element ${i} ${formatShape(t.shape)} has rank ${t.rank}, element 0 ${formatShape(xs[0].shape)} rank ${rank}`);
      }
      return newAxis ? stackAlong(xs, axis) : layout(xs, (ps) => E.concat(ps, axis));
    },
  },
  Optional: {
    runValues(ctx, inputs) {
      const v = inputs[0] ?? null;
      if (v === null) {
        if (!ctx.attrs.has('type')) ctx.fail('INVALID_MODEL', 'an Optional without input needs its type attribute');
        return new OnnxOptional(null);
      }
      if (v instanceof OnnxOptional) return ctx.fail('INVALID_MODEL', 'an optional cannot hold an optional');
      return new OnnxOptional(v);
    },
  },
  OptionalHasElement: {
    nonDiff: 'all',
    runValues(ctx, inputs) {
      const v = inputs[0] ?? null;
      // Since opset 18 the input may be a plain tensor or sequence (always present) or left out (absent).
      return ctx.constant([v instanceof OnnxOptional ? (v.value !== null ? 1 : 0) : v !== null ? 1 : 0], [], 'bool');
    },
  },
  OptionalGetElement: {
    runValues(ctx, inputs) {
      const v = inputs[0] ?? null;
      if (v === null) return ctx.fail('INVALID_MODEL', 'required input 0 (input) is missing');
      if (!(v instanceof OnnxOptional)) return v;
      if (v.value === null) return ctx.fail('INVALID_MODEL', 'the optional is empty (OptionalGetElement needs a value; test it with OptionalHasElement)');
      return v.value;
    },
  },
};
