/** Constants and casts: Constant, ConstantOfShape, Range, OneHot, EyeLike, Cast, CastLike. */
import { Tensor, TensorOnDeviceError } from '../../tensor';
import { FloatDType, isFloat } from '../../dtype';
import { formatShape, sizeOf } from '../../shape';
import { OpContext, computedConstant, filledConstant, makeConstant } from '../context';
import { DataType, dataTypeName } from '../proto';
import { engineDtype, tensorFromProto, toInt32 } from '../tensors';
import { Kind, checkSize, convert, mapValues } from '../helpers';
import { narrowing } from '../narrow';
import * as E from '../../ops';
import { OpHandler, axisOf, isF, kindOf, need, scalarOf, shapeValues } from './common';


/** Kind of the engine tensor an ONNX element type becomes. */
function kindForType(ctx: OpContext, dataType: number): Kind {
  const d = engineDtype(dataType, ctx.dtype, `${ctx.node.opType} node '${ctx.node.name}' target type`);
  return d as Kind;
}

/**
 * Float values rounded onto a narrower type's grid (float16, bfloat16, float8...), kept in the run's float
 * dtype; the gradient passes straight through where both sides are finite (as PyTorch's dtype casts).
 * The rounding is a host step (no device kernel rounds onto these grids): on a device-only tensor it throws
 * TensorOnDeviceError, so a WebGPU run repeats on the host backend and says why (webview/runWithFallback.ts)
 * instead of showing values up to half a unit in the target's last place away from PyTorch's.
 */
function roundFloat(x: Tensor, fn: (v: number) => number): Tensor {
  if (!x.hasHostData) throw new TensorOnDeviceError(x, 'Cast onto a narrower float type (rounded on the host)');
  const rounded = mapValues(x, x.dtype as Kind, fn, 'Cast result');
  if (!x.requiresGrad) return rounded;
  const finite = new Uint8Array(x.size);
  const delta = new Array<number>(x.size);
  for (let i = 0; i < x.size; i++) {
    finite[i] = Number.isFinite(x.data[i]) && Number.isFinite(rounded.data[i]) ? 1 : 0;
    delta[i] = finite[i] ? rounded.data[i] - x.data[i] : 0;
  }
  return E.where(new Tensor(finite, x.shape), E.add(x, makeConstant(delta, x.shape, x.dtype)), rounded);
}

/** Cast to ONNX element type `to`: float/int/bool moves (floats truncate into ints), then narrowing. */
function castTo(ctx: OpContext, x: Tensor, to: number, kind: Kind): Tensor {
  const narrow = narrowing(to, ctx.dtype === 'float64', { saturate: ctx.attrs.flag('saturate', true), roundMode: ctx.attrs.string('round_mode', 'up') });
  if (isF(x) && isFloat(kind as FloatDType)) {
    if (x.dtype !== kind) ctx.fail('INVALID_MODEL', `internal: float ${x.dtype} in a ${ctx.dtype} run`);
    return narrow ? roundFloat(x, narrow) : x;
  }
  const y = convert(x, kind, `Cast of '${ctx.node.inputs[0]}'`);
  if (!narrow || kind === 'bool') return y;
  return isFloat(kind as FloatDType) ? roundFloat(y, narrow) : mapValues(y, 'int32', narrow, 'Cast result');
}

function constantValue(ctx: OpContext): Tensor {
  const a = ctx.attrs;
  const t = a.tensor('value');
  if (t) return tensorFromProto(t, ctx.dtype, `Constant '${ctx.node.name}'`);
  if (a.has('value_float')) return ctx.constant([a.float('value_float')], [], 'float');
  if (a.has('value_floats')) {
    const v = a.floats('value_floats');
    return ctx.constant(v, [v.length], 'float');
  }
  // int64 attribute values go through toInt32: INT64_MAX / INT64_MIN "open end" sentinels (the
  // dynamo exporter's Slice ends) saturate instead of wrapping to 0 in an Int32Array.
  const what = `Constant '${ctx.node.name}'`;
  if (a.has('value_int')) return ctx.constant([toInt32(a.int('value_int'), what)], [], 'int32');
  if (a.has('value_ints')) {
    const v = a.ints('value_ints').map((x) => toInt32(x, what));
    return ctx.constant(v, [v.length], 'int32');
  }
  if (a.has('value_string') || a.has('value_strings')) return ctx.fail('UNSUPPORTED_DTYPE', 'string constants are not supported (the engine has no string type)');
  if (a.has('sparse_value')) return ctx.fail('UNSUPPORTED_FEATURE', 'sparse constants are not supported');
  return ctx.fail('INVALID_MODEL', 'Constant has no value attribute');
}

export const CONSTANT_OPS: Readonly<Record<string, OpHandler>> = {
  Constant: { run: (ctx) => constantValue(ctx) },
  ConstantOfShape: {
    nonDiff: 'all',
    shapeFrom: 'all',
    run(ctx, inputs) {
      const shape = shapeValues(ctx, need(ctx, inputs, 0, 'input'), 'shape');
      if (shape.some((d) => !Number.isInteger(d) || d < 0)) ctx.fail('INVALID_MODEL', `invalid shape ${formatShape(shape)}: dims must be non-negative integers`);
      checkSize(sizeOf(shape), 'ConstantOfShape output');
      const t = ctx.attrs.tensor('value');
      const v = t ? tensorFromProto(t, ctx.dtype, 'ConstantOfShape value') : makeConstant([0], [1], ctx.dtype);
      if (v.size !== 1) ctx.fail('INVALID_MODEL', `the value attribute must hold one element, got shape ${formatShape(v.shape)}`);
      return filledConstant(shape, v.data[0], v.dtype);
    },
  },
  Range: {
    nonDiff: 'all',
    shapeFrom: 'all',
    run(ctx, inputs) {
      const start = need(ctx, inputs, 0, 'start');
      const s = scalarOf(ctx, start, 'start');
      const limit = scalarOf(ctx, need(ctx, inputs, 1, 'limit'), 'limit');
      const delta = scalarOf(ctx, need(ctx, inputs, 2, 'delta'), 'delta');
      if (![s, limit, delta].every(Number.isFinite)) ctx.fail('INVALID_MODEL', `Range(${s}, ${limit}, ${delta}) needs finite start, limit and delta`);
      if (delta === 0) ctx.fail('INVALID_MODEL', 'Range delta is 0');
      const n = Math.max(Math.ceil((limit - s) / delta), 0);
      checkSize(n, `Range(${s}, ${limit}, ${delta}) output`);
      return computedConstant([n], start.dtype, (data) => {
        for (let i = 0; i < n; i++) data[i] = s + i * delta;
      });
    },
  },
  OneHot: {
    nonDiff: 'all',
    shapeFrom: [1],
    run(ctx, inputs) {
      const idx = need(ctx, inputs, 0, 'indices');
      const depthValue = scalarOf(ctx, need(ctx, inputs, 1, 'depth'), 'depth');
      const depth = Math.trunc(depthValue);
      if (!(depth >= 1)) ctx.fail('INVALID_MODEL', `depth must be a positive number of classes, got ${depthValue}`);
      const values = need(ctx, inputs, 2, 'values');
      if (values.size !== 2) ctx.fail('INVALID_MODEL', `values must hold two elements [off_value, on_value], got shape ${formatShape(values.shape)}`);
      const axisAttr = ctx.attrs.int('axis', -1);
      const rank = idx.rank + 1;
      const axis = axisOf(ctx, axisAttr, rank);
      const shape = [...idx.shape.slice(0, axis), depth, ...idx.shape.slice(axis)];
      checkSize(sizeOf(shape), `OneHot output ${formatShape(shape)}`);
      const outer = sizeOf(idx.shape.slice(0, axis));
      const inner = sizeOf(idx.shape.slice(axis));
      const [off, on] = [values.data[0], values.data[1]];
      return computedConstant(shape, values.dtype, (out) => {
        out.fill(off);
        for (let o = 0; o < outer; o++) {
          for (let i = 0; i < inner; i++) {
            let k = Math.trunc(idx.data[o * inner + i]);
            if (k < 0) k += depth;
            if (k >= 0 && k < depth) out[(o * depth + k) * inner + i] = on;
          }
        }
      });
    },
  },
  EyeLike: {
    nonDiff: 'all',
    run(ctx, inputs) {
      const x = need(ctx, inputs, 0, 'input');
      if (x.rank !== 2) ctx.fail('INVALID_MODEL', `EyeLike input must be 2-D, got ${formatShape(x.shape)}`);
      const k = ctx.attrs.int('k', 0);
      const [n, m] = x.shape;
      const kind = ctx.attrs.has('dtype') ? kindForType(ctx, ctx.attrs.int('dtype')) : kindOf(x);
      return computedConstant([n, m], kind, (out) => {
        for (let i = 0; i < n; i++) if (i + k >= 0 && i + k < m) out[i * m + i + k] = 1;
      });
    },
  },
  Cast: {
    run(ctx, inputs) {
      const to = ctx.attrs.int('to');
      if (to === DataType.STRING) ctx.fail('UNSUPPORTED_DTYPE', `Cast to ${dataTypeName(to)} is not supported (the engine has no string type)`);
      return castTo(ctx, need(ctx, inputs, 0, 'input'), to, kindForType(ctx, to));
    },
  },
  CastLike: {
    nonDiff: [1],
    run(ctx, inputs) {
      const target = need(ctx, inputs, 1, 'target_type');
      // The declared ONNX type of target_type when the model gives it (float16, float8, int4... round),
      // else the engine kind of its value.
      const to = ctx.declaredType(1);
      return castTo(ctx, need(ctx, inputs, 0, 'input'), to, to ? kindForType(ctx, to) : kindOf(target));
    },
  },
};
