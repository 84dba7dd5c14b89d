/**
 * Control flow: If, Loop and Scan, run eagerly. The condition, trip count and scan length are read on the
 * host when the node runs (they are data of this run), and the chosen branch or each iteration's body runs
 * its nodes as engine ops: the tape records exactly what ran, so gradients reach the loop-carried values,
 * the scanned inputs and every outer value or parameter a body reads. No VJP of its own is needed.
 *
 * Reading a condition or trip count computed on a WebGPU device throws TensorOnDeviceError (`.data` of a
 * device-only tensor): the node fails with that cause and the run repeats on the host backend
 * (webview/runWithFallback.ts), as for every op that reads values.
 *
 * If branches and Loop-carried values may be any run value (values.ts): a sequence or optional crosses the
 * body boundary as it is, its tensors keeping their autograd. Trip counts, conditions, Loop scan outputs
 * and Scan's values are tensors. SequenceMap runs its body once per element through the same body runner.
 */
import { Tensor } from '../../tensor';
import * as E from '../../ops';
import { formatShape, normalizeAxis } from '../../shape';
import { allocate } from '../../dtype';
import { Body, OpContext } from '../context';
import type { OnnxValueSpec } from '../graph';
import { engineDtype, isFloatType } from '../tensors';
import { DataType } from '../proto';
import { layout, stackAlong } from '../helpers';
import { OpHandler, ValueOpHandler } from './common';
import { ElementKind, OnnxSequence, RunValue, SequenceElement, StringTensor, describeValue } from '../values';

/**
 * Iterations a Loop may run. A loop still going after that many (a condition that never turns false, an
 * exporter's INT64_MAX trip count) is refused rather than left to hang; the run's memory budget applies
 * on top, since every iteration's values stay on the tape.
 */
export const LOOP_ITERATION_CAP = 100_000;

/** A scalar read on the host (a device-only value throws TensorOnDeviceError: the run repeats on the host). */
function hostScalar(ctx: OpContext, t: Tensor, what: string): number {
  if (t.size !== 1) ctx.fail('INVALID_MODEL', `${what} must hold one value, got shape ${formatShape(t.shape)}`);
  return t.data[0];
}

/** Index `i` of `x` along `axis`, that axis removed. */
function take(x: Tensor, axis: number, i: number): Tensor {
  return layout([x], ([v]) => E.squeeze(E.slice(v, { starts: [i], ends: [i + 1], axes: [axis] }), axis));
}

/**
 * A scan output of zero iterations: empty along `axis`, the rest of its shape as the body declares it (no
 * iteration ran to show it).
 */
function emptyScanOutput(ctx: OpContext, spec: OnnxValueSpec, axis: number, which: string): Tensor {
  const dims = spec.dims;
  if (!dims || dims.some((d) => typeof d !== 'number')) {
    ctx.fail('UNSUPPORTED_FEATURE', `ran zero iterations, and the body does not declare the shape of ${which} '${spec.name}' (${dims ? `[${dims.map((d) => d ?? '?').join(', ')}]` : 'unknown rank'}), so its empty result has no known shape`);
  }
  const shape = [...(dims as number[])];
  shape.splice(normalizeAxis(axis, shape.length + 1), 0, 0);
  const dtype = isFloatType(spec.dataType) ? ctx.dtype : spec.dataType === DataType.BOOL ? 'bool' : 'int32';
  return new Tensor(allocate(dtype, 0), shape);
}

function present<T extends RunValue>(ctx: OpContext, inputs: readonly (T | null)[], what: string): T[] {
  return inputs.map((t, i) => t ?? ctx.fail('UNSUPPORTED_FEATURE', `${what} ${i} is missing (an empty input name); pass an Optional to carry "no value"`));
}

/** `v` as a tensor of numbers or bool, or a clear error naming `what` (Scan's values, Loop's scan outputs, conditions). */
function tensorOf(ctx: OpContext, v: RunValue | null | undefined, what: string): Tensor {
  if (v instanceof Tensor) return v;
  return ctx.fail('UNSUPPORTED_FEATURE', `${what} is ${describeValue(v ?? null)}; it must be a tensor of numbers or bool`);
}

function checkOutputs(ctx: OpContext, body: Body, outs: readonly RunValue[], want: number): void {
  if (outs.length !== want) ctx.fail('INVALID_MODEL', `its ${body.graph.attribute} has ${outs.length} outputs, but the node needs ${want}`);
}

// ---------------------------------------------------------------- If

const ifOp: ValueOpHandler = {
  nonDiff: [0],
  shapeFrom: 'all', // the branch taken (and so its output shapes) is the condition's value
  runValues(ctx, inputs) {
    const cond = tensorOf(ctx, inputs[0] ?? ctx.fail('INVALID_MODEL', 'required input 0 (cond) is missing'), 'cond');
    const body = ctx.body(hostScalar(ctx, cond, 'cond') !== 0 ? 'then_branch' : 'else_branch');
    const outs = body.run([]);
    checkOutputs(ctx, body, outs, ctx.node.outputs.length);
    return outs;
  },
};

// ---------------------------------------------------------------- Loop

const loopOp: ValueOpHandler = {
  nonDiff: [0, 1],
  shapeFrom: 'all', // the trip count and condition set how many iterations are stacked
  runValues(ctx, inputs) {
    const body = ctx.body('body');
    const g = body.graph;
    const tripInput = inputs[0] ? tensorOf(ctx, inputs[0], 'trip count M') : null;
    const condInput = inputs[1] ? tensorOf(ctx, inputs[1], 'cond') : null;
    let carried = present(ctx, inputs.slice(2), 'loop-carried input');
    const scanCount = g.outputs.length - 1 - carried.length;
    if (g.inputs.length !== carried.length + 2 || scanCount < 0) {
      ctx.fail('INVALID_MODEL', `its body takes ${g.inputs.length} inputs and gives ${g.outputs.length} outputs; with ${carried.length} loop-carried values it must take ${carried.length + 2} (iteration number, condition, values) and give at least ${carried.length + 1}`);
    }
    if (ctx.node.outputs.length > carried.length + scanCount) ctx.fail('INVALID_MODEL', `has ${ctx.node.outputs.length} outputs; its body gives ${carried.length} loop-carried values and ${scanCount} scan outputs`);
    const trips = tripInput ? hostScalar(ctx, tripInput, 'trip count M') : Infinity;
    // Without a cond input the loop is a plain for loop: the body's condition output is ignored (ONNX spec).
    let cond = condInput ? hostScalar(ctx, condInput, 'cond') !== 0 : true;
    if (!condInput && trips > LOOP_ITERATION_CAP) {
      ctx.fail('UNSUPPORTED_FEATURE', `${tripInput ? `its trip count is ${trips}` : 'it has neither a trip count nor a condition'}, more than the ${LOOP_ITERATION_CAP} iterations the importer runs`);
    }
    const scans: Tensor[][] = Array.from({ length: scanCount }, () => []);
    for (let i = 0; i < trips && cond; i++) {
      if (i === LOOP_ITERATION_CAP) {
        ctx.fail('UNSUPPORTED_FEATURE', `its condition is still true after ${LOOP_ITERATION_CAP} iterations${tripInput ? ` (trip count ${trips})` : ''}: the importer stops loops there rather than run on`);
      }
      const outs = body.run([ctx.constant([i], [], 'int32'), ctx.constant([cond ? 1 : 0], [], 'bool'), ...carried]);
      if (condInput) cond = hostScalar(ctx, tensorOf(ctx, outs[0], "the body's condition output"), "the body's condition output") !== 0;
      carried = outs.slice(1, 1 + carried.length);
      outs.slice(1 + carried.length).forEach((t, k) => scans[k].push(tensorOf(ctx, t, `scan output ${k}`)));
    }
    const stacked = scans.map((list, k) => (list.length ? stackAlong(list, 0) : emptyScanOutput(ctx, g.outputs[1 + carried.length + k], 0, `scan output ${k}`)));
    return [...carried, ...stacked];
  },
};

// ---------------------------------------------------------------- Scan

/** Axes and directions of one side of a Scan (inputs or outputs): attribute lists, defaults 0. */
function perSlot(ctx: OpContext, name: string, count: number): number[] {
  const v = ctx.attrs.ints(name, []);
  if (v.length === 0) return new Array<number>(count).fill(0);
  if (v.length !== count) ctx.fail('INVALID_MODEL', `attribute '${name}' has ${v.length} entries for ${count} ${name.includes('input') ? 'scan inputs' : 'scan outputs'}`);
  return v;
}

/**
 * Scan (opset 9+ semantics): `states` carried from step to step; each step sees slice t of every scan
 * input (along its axis, from the end for direction 1); per-step scan outputs stacked along their axes
 * (in reverse for direction 1).
 */
function scan(ctx: OpContext, body: Body, states: Tensor[], scanned: Tensor[], inAxes: number[], inDirs: number[], outAxes: number[], outDirs: number[]): Tensor[] {
  const g = body.graph;
  const outCount = g.outputs.length - states.length;
  if (g.inputs.length !== states.length + scanned.length || outCount < 0) {
    ctx.fail('INVALID_MODEL', `its body takes ${g.inputs.length} inputs and gives ${g.outputs.length} outputs, for ${states.length} state values and ${scanned.length} scan inputs`);
  }
  const axes = scanned.map((x, j) => {
    try {
      return normalizeAxis(inAxes[j], x.rank, 'scan input axis');
    } catch (e) {
      return ctx.fail('INVALID_MODEL', `scan input ${j} ${formatShape(x.shape)}: ${(e as Error).message}`);
    }
  });
  if (scanned.length === 0) ctx.fail('INVALID_MODEL', 'has no scan inputs (num_scan_inputs must be at least 1)');
  const length = scanned[0].shape[axes[0]];
  scanned.forEach((x, j) => {
    if (x.shape[axes[j]] !== length) ctx.fail('INVALID_MODEL', `scan input ${j} ${formatShape(x.shape)} has ${x.shape[axes[j]]} steps along axis ${axes[j]}, scan input 0 has ${length}`);
  });
  const per: Tensor[][] = Array.from({ length: outCount }, () => []);
  for (let t = 0; t < length; t++) {
    const slices = scanned.map((x, j) => take(x, axes[j], inDirs[j] ? length - 1 - t : t));
    const outs = body.run([...states, ...slices]).map((v, i) => tensorOf(ctx, v, `Scan body output ${i}`));
    states = outs.slice(0, states.length);
    outs.slice(states.length).forEach((y, k) => per[k].push(y));
  }
  const outputs = per.map((list, k) => {
    if (list.length === 0) return emptyScanOutput(ctx, g.outputs[states.length + k], outAxes[k], `scan output ${k}`);
    const ordered = outDirs[k] ? [...list].reverse() : list;
    let axis: number;
    try {
      axis = normalizeAxis(outAxes[k], list[0].rank + 1, 'scan output axis');
    } catch (e) {
      return ctx.fail('INVALID_MODEL', `scan output ${k}: ${(e as Error).message}`);
    }
    return stackAlong(ordered, axis);
  });
  return [...states, ...outputs];
}

const scanOp: OpHandler = {
  shapeFrom: 'all', // a body may shape its outputs by the values it scans
  run(ctx, inputs) {
    const body = ctx.body('body');
    const m = ctx.attrs.int('num_scan_inputs');
    if (ctx.opset >= 9) {
      const all = present(ctx, inputs, 'input');
      const n = all.length - m;
      if (m < 1 || n < 0) ctx.fail('INVALID_MODEL', `num_scan_inputs is ${m}, but the node has ${all.length} inputs`);
      const k = body.graph.outputs.length - n;
      return scan(ctx, body, all.slice(0, n), all.slice(n), perSlot(ctx, 'scan_input_axes', m), perSlot(ctx, 'scan_input_directions', m),
        perSlot(ctx, 'scan_output_axes', Math.max(0, k)), perSlot(ctx, 'scan_output_directions', Math.max(0, k)));
    }
    // Opset 8: every value has a leading batch axis and is scanned along axis 1; the body sees one batch entry.
    const lens = inputs[0];
    const all = present(ctx, inputs.slice(1), 'input');
    const n = all.length - m;
    if (m < 1 || n < 0) ctx.fail('INVALID_MODEL', `num_scan_inputs is ${m}, but the node has ${all.length} state and scan inputs`);
    const batch = all[0].shape[0];
    if (all.some((x) => x.rank < 1 || x.shape[0] !== batch)) ctx.fail('INVALID_MODEL', `inputs must share the batch dimension ${batch}: ${all.map((x) => formatShape(x.shape)).join(', ')}`);
    const steps = m > 0 && all[n].rank > 1 ? all[n].shape[1] : 0;
    if (lens && Array.from(lens.data).some((l) => l !== steps)) {
      ctx.fail('UNSUPPORTED_FEATURE', `sequence_lens [${Array.from(lens.data).join(', ')}] differ from the scan length ${steps}; per-batch lengths are not supported`);
    }
    const dirs = perSlot(ctx, 'directions', m);
    const k = body.graph.outputs.length - n;
    const perBatch: Tensor[][] = [];
    for (let b = 0; b < batch; b++) {
      const entries = all.map((x) => take(x, 0, b));
      perBatch.push(scan(ctx, body, entries.slice(0, n), entries.slice(n), new Array<number>(m).fill(0), dirs, new Array<number>(Math.max(0, k)).fill(0), new Array<number>(Math.max(0, k)).fill(0)));
    }
    if (batch === 0) ctx.fail('UNSUPPORTED_FEATURE', 'has a batch of zero entries');
    return perBatch[0].map((_, i) => stackAlong(perBatch.map((outs) => outs[i]), 0));
  },
};

// ---------------------------------------------------------------- SequenceMap

/** The element kind a body output declares (floats as this run's dtype), for an empty result sequence. */
function declaredKind(ctx: OpContext, spec: OnnxValueSpec): ElementKind | null {
  const t = spec.dataType;
  if (!t) return null;
  if (t === DataType.STRING) return 'string';
  try {
    return engineDtype(t, ctx.dtype, `SequenceMap output '${spec.name}'`);
  } catch {
    return null;
  }
}

/**
 * SequenceMap: the body runs once per element of input_sequence; each additional input is passed whole if
 * it is a tensor, or element by element if it is a sequence (of the same length). Output k is the
 * sequence of the body's output k over the iterations. Gradients flow through the elements' own tensors.
 */
const sequenceMapOp: ValueOpHandler = {
  shapeFrom: 'all', // a body may shape its outputs by the values it reads
  runValues(ctx, inputs) {
    const body = ctx.body('body');
    const g = body.graph;
    const all = present(ctx, inputs, 'input');
    const first = all[0];
    if (!(first instanceof OnnxSequence)) return ctx.fail('INVALID_MODEL', `input 0 (input_sequence) must be a sequence, got ${describeValue(first ?? null)}`);
    const n = first.length;
    all.forEach((v, i) => {
      if (v instanceof OnnxSequence && v.length !== n) ctx.fail('INVALID_MODEL', `input ${i} is a sequence of ${v.length} elements, input_sequence has ${n}`);
      if (!(v instanceof OnnxSequence || v instanceof Tensor || v instanceof StringTensor)) ctx.fail('INVALID_MODEL', `input ${i} must be a sequence or a tensor, got ${describeValue(v)}`);
    });
    if (g.inputs.length !== all.length) ctx.fail('INVALID_MODEL', `its body takes ${g.inputs.length} inputs, but the node passes ${all.length}`);
    if (ctx.node.outputs.length > g.outputs.length) ctx.fail('INVALID_MODEL', `has ${ctx.node.outputs.length} outputs; its body gives ${g.outputs.length}`);
    const per: SequenceElement[][] = g.outputs.map(() => []);
    for (let i = 0; i < n; i++) {
      const outs = body.run(all.map((v) => (v instanceof OnnxSequence ? v.items[i] : v)));
      outs.forEach((v, k) => {
        if (v instanceof Tensor || v instanceof StringTensor) per[k].push(v);
        else ctx.fail('UNSUPPORTED_FEATURE', `body output ${k} is ${describeValue(v)}; SequenceMap collects tensors`);
      });
    }
    return per.map((items, k) => {
      try {
        return new OnnxSequence(items, items.length ? null : declaredKind(ctx, g.outputs[k]));
      } catch (e) {
        return ctx.fail('INVALID_MODEL', `output ${k}: ${(e as Error).message}`);
      }
    });
  },
};

export const CONTROL_OPS: Record<string, OpHandler | ValueOpHandler> = { If: ifOp, Loop: loopOp, Scan: scanOp, SequenceMap: sequenceMapOp };
