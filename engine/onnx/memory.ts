/**
 * The memory estimate of a run, before it runs: a dry run of forward and backward on the shape-only
 * device (engine/backend/meta.ts), which computes every shape and counts every allocation of the real
 * run without allocating or computing float data. The dry run also checks the declared shapes and
 * types of the graph's values against the computed ones, so a model whose declarations disagree with
 * what it computes is reported before anything runs.
 *
 * peak = parameters (every initializer, as held) + inputs + activations (everything the forward pass
 * allocates, kept for backward and the report) + gradients (one per trainable parameter) + backward
 * (what backward allocates besides them) + workspace (kernel scratch: twice the largest tensor, plus the
 * copies of the trainable parameters a backend may keep, at most WEIGHT_CACHE_BYTES: the wasm backend's pinned
 * weights). Nothing
 * is assumed freed, so it is an upper bound of the tensor memory of an inspection (forward + backward).
 */
import { backward } from '../autograd';
import { referenceBackend } from '../backend/reference';
import { withBackend } from '../backend/registry';
import { shapeOnlyBackend, ShapeOnlyCounter } from '../backend/meta';
import { DTYPE_BYTES, FloatDType, allocate, isFloat } from '../dtype';
import { MemoryLimitError, WEIGHT_CACHE_BYTES, formatBytes, openMeter } from '../memory';
import { formatShape, sizeOf } from '../shape';
import { Tensor, TensorOnDeviceError } from '../tensor';
import { OnnxImportError } from './errors';
import { DataType, ModelProto } from './proto';
import { engineDtype, isFloatType } from './tensors';
import { isDifferentiableSlot } from './opset';
import type { Feeds, OnnxModel, OnnxValue, Plan, RunOptions } from './model';
import type { OnnxValueSpec } from './graph';
import type { OnnxWarning } from './validate';

/** Bytes of each part of a run's tensor memory. */
export interface MemoryEstimate {
  parameters: number;
  gradients: number;
  inputs: number;
  activations: number;
  backward: number;
  workspace: number;
  /** Sum of the parts: an upper bound of the run's tensor memory. */
  peak: number;
  /** The largest value the run computes. */
  largest: { name: string; shape: number[]; bytes: number } | null;
  /** False when part of the dry run could not be followed (an op whose backward reads values): those parts are approximated. */
  complete: boolean;
  /** Declared shapes that disagree with the computed ones in ways that are not errors (symbolic dims). */
  warnings: OnnxWarning[];
}

/** Memory budget setting, for messages. */
export const BUDGET_HINT = 'gradientLens.run.memoryBudgetMB';

function mb(bytes: number): string {
  return formatBytes(bytes);
}

/** A one-line account: "1.2 GB (parameters 540 MB, gradients 540 MB, ...)". */
export function describeEstimate(e: MemoryEstimate): string {
  const parts: [string, number][] = [['parameters', e.parameters], ['gradients', e.gradients], ['inputs', e.inputs], ['activations', e.activations], ['backward', e.backward], ['workspace', e.workspace]];
  const largest = e.largest ? `; largest value '${e.largest.name}' ${formatShape(e.largest.shape)} ${mb(e.largest.bytes)}` : '';
  return `${mb(e.peak)} (${parts.filter(([, b]) => b > 0).map(([k, b]) => `${k} ${mb(b)}`).join(', ')}${largest})`;
}

function budgetError(what: string, budget: number): OnnxImportError {
  return new OnnxImportError('MEMORY_BUDGET', `${what}, above the memory budget of ${mb(budget)} (setting ${BUDGET_HINT}). Use a smaller batch or sequence length or a smaller model, or raise the budget if this machine has the memory.`);
}

/** Refuses, from the dims alone (nothing decoded yet), a model whose initializers exceed the budget. */
export function checkInitializerMemory(proto: ModelProto, floatDtype: FloatDType, budget: number): void {
  let bytes = 0;
  for (const t of proto.graph!.initializer) {
    if (t.dims.some((d) => !Number.isSafeInteger(d) || d < 0)) continue; // reported with a better message when decoded
    let dtype;
    try {
      dtype = engineDtype(t.dataType, floatDtype, `initializer '${t.name}'`);
    } catch {
      continue;
    }
    bytes += sizeOf(t.dims) * DTYPE_BYTES[dtype];
  }
  if (bytes > budget) throw budgetError(`the model's ${proto.graph!.initializer.length} initializers need ${mb(bytes)} as ${floatDtype}`, budget);
}

/** Element-type class of an ONNX type, as the engine holds it. */
function typeClass(dataType: number): 'float' | 'int' | 'bool' | null {
  if (dataType === DataType.UNDEFINED) return null;
  if (isFloatType(dataType)) return 'float';
  if (dataType === DataType.BOOL) return 'bool';
  if (dataType === DataType.STRING || dataType >= DataType.COMPLEX64) return null;
  return 'int';
}

/**
 * Declared shapes and element types (graph outputs, value_info) against the computed ones. A type or
 * rank that differs, or a fixed dim that differs while every input has its declared fixed shape, is an
 * error: the graph does not compute what it declares. Fixed dims that differ because the run chose a
 * symbolic input dim, and symbolic dims bound to two sizes, are warnings.
 */
export function checkDeclaredShapes(model: OnnxModel, values: Map<string, OnnxValue>, inputsAsDeclared: boolean): OnnxWarning[] {
  const warnings: OnnxWarning[] = [];
  const symbols = new Map<string, { size: number; value: string }>();
  const check = (spec: OnnxValueSpec, what: string) => {
    const v = values.get(spec.name);
    if (!v || v.kind !== 'node') return;
    const t = v.tensor;
    const declared = typeClass(spec.dataType);
    const computed = isFloat(t.dtype) ? 'float' : t.dtype === 'bool' ? 'bool' : 'int';
    if (declared && declared !== computed) {
      throw new OnnxImportError('INVALID_MODEL', `${what} '${spec.name}' is declared ${spec.elemType} but the graph computes ${t.dtype === 'int32' ? 'an integer' : t.dtype} tensor there (node '${v.node?.name}', ${v.node?.opType})`, { node: v.node ?? undefined });
    }
    if (!spec.dims) return;
    const shape = `${t.dtype}${formatShape(t.shape)}`;
    if (spec.dims.length !== t.rank) {
      throw new OnnxImportError('INVALID_MODEL', `${what} '${spec.name}' is declared with rank ${spec.dims.length} [${spec.dims.map((d) => d ?? '?').join(', ')}] but the graph computes ${shape} there (node '${v.node?.name}', ${v.node?.opType})`, { node: v.node ?? undefined });
    }
    spec.dims.forEach((d, i) => {
      if (typeof d === 'number' && d !== t.shape[i]) {
        const message = `${what} '${spec.name}' is declared [${spec.dims!.map((x) => x ?? '?').join(', ')}] but the graph computes ${shape} there (dim ${i}; node '${v.node?.name}', ${v.node?.opType})`;
        if (inputsAsDeclared) throw new OnnxImportError('INVALID_MODEL', message, { node: v.node ?? undefined });
        warnings.push({ code: 'DECLARED_SHAPE', message: `${message}: the run's input sizes differ from the export's`, node: v.node ?? undefined });
      } else if (typeof d === 'string') {
        const prev = symbols.get(d);
        if (prev && prev.size !== t.shape[i]) {
          warnings.push({ code: 'DECLARED_SHAPE', message: `symbolic dim '${d}' is ${prev.size} in '${prev.value}' but ${t.shape[i]} in '${spec.name}'`, node: v.node ?? undefined });
        } else if (!prev) symbols.set(d, { size: t.shape[i], value: spec.name });
      }
    });
  };
  for (const o of model.graph.outputs) check(o, 'graph output');
  for (const spec of model.graph.valueInfo.values()) check(spec, 'value');
  return warnings;
}

/**
 * Estimates the tensor memory of `model.run(feeds, options)` followed by backward, with a shape-only dry
 * run. With options.memoryBudget (bytes) it throws OnnxImportError MEMORY_BUDGET when the estimate (or the
 * dry run itself) goes past it, before anything of the real run is allocated. Throws what the real run
 * would for invalid models and inputs (their shapes are computed the same way).
 */
export function estimateRunMemory(model: OnnxModel, feeds: Feeds | undefined, options: RunOptions): MemoryEstimate {
  const budget = options.memoryBudget ?? Infinity;
  const dtype: FloatDType = options.dtype ?? model.dtype;
  const floatBytes = DTYPE_BYTES[dtype];

  // Parameters as the run holds them (converted to the run's float dtype when it differs).
  let parameters = 0;
  let gradients = 0;
  for (const [, t] of model.parameters) {
    const bytes = t.size * (isFloat(t.dtype) ? floatBytes : DTYPE_BYTES[t.dtype]);
    parameters += bytes;
    gradients += bytes;
  }
  for (const [, t] of model.buffers) parameters += t.size * (isFloat(t.dtype) ? floatBytes : DTYPE_BYTES[t.dtype]);
  if (parameters + gradients > budget) throw budgetError(`this run needs at least ${mb(parameters + gradients)} for the parameters (${mb(parameters)}) and their gradients (${mb(gradients)})`, budget);

  const counter = new ShapeOnlyCounter(floatBytes);
  const meta = shapeOnlyBackend(referenceBackend, counter);
  const { meter, close } = openMeter(budget - parameters - gradients, 'the dry run', { isolated: true });
  let inputs = 0;
  let activations = 0;
  let backwardBytes = 0;
  let complete = true;
  let largest: MemoryEstimate['largest'] = null;
  let warnings: OnnxWarning[] = [];
  try {
    withBackend(meta, () => {
      // Inputs: fed values as given (their float data stands in), the rest by their resolved shapes;
      // integer inputs are zeros (valid ids for any table), which is all the shapes depend on.
      const fed = model.prepareFeeds(feeds, options);
      // Sequences, optionals and string tensors are fed (never sampled) and run as given.
      const valueFeeds = model.prepareValueFeeds(feeds);
      const shapes = model.inputShapes(options, fed);
      const runInputs = new Map<string, Tensor>();
      let inputsAsDeclared = true;
      for (const spec of model.inputs) {
        if (spec.role === 'value') continue;
        const given = fed.get(spec.name);
        const shape = given ? [...given.shape] : shapes.get(spec.name)!;
        if (spec.dims && spec.dims.some((d, i) => typeof d !== 'number' || d !== shape[i])) inputsAsDeclared = false;
        const bytes = sizeOf(shape) * (spec.role === 'float' ? floatBytes : spec.role === 'bool' ? 1 : 4);
        meter.check(bytes);
        meter.add(bytes);
        inputs += bytes;
        if (spec.role === 'float') {
          const t = meta.standIn(shape);
          if (given?.requiresGrad) t.setRequiresGrad(true);
          runInputs.set(spec.name, t);
        } else {
          runInputs.set(spec.name, given ?? new Tensor(allocate(spec.role === 'bool' ? 'bool' : 'int32', sizeOf(shape)), shape));
        }
      }
      // Initializers: float ones by stand-ins (already counted as parameters), the rest as they are. Float
      // buffers read only as values (Resize scales, Clip bounds: no gradient slot) keep their values, and
      // an op that reads another initializer's values gets the real ones: zeros there would fail the run
      // ('Resize scales [0, 0, 0, 0] must be positive' for every dynamo export of F.interpolate).
      const asFloat32 = (t: Tensor) => (t.dtype === 'float32' ? t : new Tensor(Float32Array.from(t.data), t.shape));
      const valuesOnly = new Set(model.initializers.filter((i) => i.consumers.length > 0 && i.consumers.every((c) => !isDifferentiableSlot(c.opType, c.slot))).map((i) => i.name));
      const originals = new Map<Tensor, Tensor>();
      const standIns = (m: Map<string, Tensor>, grad: boolean) => new Map([...m].map(([k, t]) => {
        if (!isFloat(t.dtype)) return [k, t];
        if (!grad && valuesOnly.has(k)) return [k, asFloat32(t)];
        const s = meta.standIn(t.shape);
        s.name = k;
        if (grad) s.setRequiresGrad(true);
        originals.set(s, asFloat32(t));
        return [k, s];
      }));
      const plan: Plan = { folded: new Map(), foldedNodes: new Set(), ranges: new Map() };
      const before = meter.used;
      const zeros = (t: Tensor) => new Tensor(allocate(isFloat(t.dtype) ? 'float32' : t.dtype, t.size), t.shape);
      const { values } = model.execute(runInputs, { ...options, onValue: undefined, retainGrad: false }, {
        plan, dtype: 'float32', parameters: standIns(model.parameters, true), buffers: standIns(model.buffers, false),
        hostValues: (t) => {
          const original = originals.get(t);
          if (original) return original;
          complete = false;
          return zeros(t);
        },
      }, valueFeeds);
      warnings = checkDeclaredShapes(model, values, inputsAsDeclared);
      const outputs = new Map<string, Tensor>();
      for (const o of model.graph.outputs) {
        const v = values.get(o.name);
        if (v) outputs.set(o.name, v.tensor);
      }
      const { loss } = model.buildLoss(options.loss ?? 'auto', { outputs, values, inputs: runInputs }, options);
      activations = meter.used - before;
      for (const v of values.values()) {
        if (v.kind !== 'node') continue;
        const bytes = v.tensor.size * (isFloat(v.tensor.dtype) ? floatBytes : DTYPE_BYTES[v.tensor.dtype]);
        if (!largest || bytes > largest.bytes) largest = { name: v.name, shape: [...v.tensor.shape], bytes };
      }
      if (loss && loss.requiresGrad) {
        const start = meter.used;
        try {
          backward(loss);
          backwardBytes = Math.max(0, meter.used - start - gradients);
        } catch (e) {
          if (!(e instanceof TensorOnDeviceError)) throw e;
          // A backward that reads values (e.g. Pow with a tensor exponent): about one gradient per activation.
          complete = false;
          backwardBytes = activations;
        }
      } else {
        gradients = 0;
      }
    });
  } catch (e) {
    if (e instanceof MemoryLimitError) {
      throw budgetError(`this run needs more than ${mb(budget)}: parameters and gradients take ${mb(parameters + gradients)}, and the shape-only dry run of forward and backward passed ${mb(e.needed)} more`, budget);
    }
    if (e instanceof TensorOnDeviceError) {
      throw new OnnxImportError('NODE_FAILED', `the memory estimate could not follow the graph: ${e.message}`, { cause: e });
    }
    throw e;
  } finally {
    close();
  }
  // Gradients are one per trainable parameter: the same bytes as the parameters a backend may keep a copy of.
  const workspace = 2 * Math.max(meter.largest, counter.largest) + Math.min(gradients, WEIGHT_CACHE_BYTES);
  const peak = parameters + inputs + activations + gradients + backwardBytes + workspace;
  const estimate: MemoryEstimate = { parameters, gradients, inputs, activations, backward: backwardBytes, workspace, peak, largest, complete, warnings };
  if (peak > budget) throw budgetError(`this run needs an estimated ${describeEstimate(estimate)}`, budget);
  return estimate;
}

/** Bytes of the optimiser state of a training run (per trainable parameter: momentum, or Adam's two moments). */
export function optimizerStateBytes(model: OnnxModel, kind: string, momentum: number | undefined, dtype: FloatDType): number {
  const slots = kind === 'sgd' ? (momentum ? 1 : 0) : 2;
  let n = 0;
  for (const t of model.parameters.values()) n += t.size;
  return n * slots * DTYPE_BYTES[dtype];
}

