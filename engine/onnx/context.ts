/** What an op handler sees of the node it runs and of the run. */
import { Tensor } from '../tensor';
import { DType, FloatDType, TypedArray, allocate, isFloat } from '../dtype';
import { Rng } from '../random';
import { Shape, assertValidShape, sizeOf } from '../shape';
import { OnnxErrorCode, OnnxImportError, describeNode } from './errors';
import { AttrType, AttributeProto, TensorProto, utf8 } from './proto';
import type { OnnxNode, OnnxSubgraph } from './graph';
import type { RunValue } from './values';

/**
 * The decimal a float32 attribute was written as: the shortest decimal that rounds to it (1e-5 for the
 * float32 9.99999974737875e-6 an exporter stores for LayerNorm's eps=1e-5). ONNX float attributes are
 * float32, while PyTorch's eps, alpha and scale arguments are Python floats (float64): a float64 run uses
 * the decimal, so it computes PyTorch's float64 model rather than one with float32-rounded constants.
 * For a value computed in double (1/6 stored as 0.16666667) the decimal is as near as the float32 value.
 */
export function writtenDecimal(f: number): number {
  if (!Number.isFinite(f) || f === 0 || Math.fround(f) !== f) return f;
  for (let digits = 1; digits <= 9; digits++) {
    const d = Number(f.toPrecision(digits));
    if (Math.fround(d) === f) return d;
  }
  return f;
}

/** Typed access to a node's attributes; missing required ones throw INVALID_MODEL naming the node. */
export class Attrs {
  private written?: Attrs;

  constructor(
    private readonly node: OnnxNode,
    private readonly attributes: readonly AttributeProto[],
    /** Float attributes as the decimals they were written as (float64 runs). */
    private readonly decimals = false,
  ) {}

  /** The same attributes with float values read as written (writtenDecimal): what a float64 run uses. */
  asWritten(): Attrs {
    if (this.decimals) return this;
    return (this.written ??= new Attrs(this.node, this.attributes, true));
  }

  /** The attribute named `name` (the last one if repeated; validation rejects repeats). A scan: nodes have few. */
  private find(name: string): AttributeProto | undefined {
    for (let i = this.attributes.length - 1; i >= 0; i--) if (this.attributes[i].name === name) return this.attributes[i];
    return undefined;
  }

  has(name: string): boolean {
    return this.find(name) !== undefined;
  }

  names(): string[] {
    return [...new Set(this.attributes.map((a) => a.name))];
  }

  private get(name: string, types: number[], what: string): AttributeProto | undefined {
    const a = this.find(name);
    if (!a) return undefined;
    if (a.refAttrName) this.fail(`attribute '${name}' refers to a function attribute (${a.refAttrName}), which is only valid inside functions`);
    // Old models may leave `type` unset (0); trust the populated field then.
    if (a.type !== AttrType.UNDEFINED && !types.includes(a.type)) this.fail(`attribute '${name}' should be ${what}, got attribute type ${a.type}`);
    return a;
  }

  private fail(message: string): never {
    throw new OnnxImportError('INVALID_MODEL', `${describeNode(this.node)}: ${message}`, { node: this.node });
  }

  int(name: string, fallback?: number): number {
    const a = this.get(name, [AttrType.INT], 'an int');
    if (!a) return fallback ?? this.fail(`required attribute '${name}' is missing`);
    return a.i;
  }

  /**
   * An int attribute used as a flag. ONNX flags are ints read the way the spec's reference
   * implementation reads them: any nonzero value is true (transB = 2 transposes, count_include_pad =
   * -100 counts the padding), as onnxruntime does. Every handler reads flags through this one rule.
   */
  flag(name: string, fallback: boolean): boolean {
    return this.int(name, fallback ? 1 : 0) !== 0;
  }

  float(name: string, fallback?: number): number {
    const a = this.get(name, [AttrType.FLOAT], 'a float');
    if (!a) return fallback ?? this.fail(`required attribute '${name}' is missing`);
    return this.decimals ? writtenDecimal(a.f) : a.f;
  }

  string(name: string, fallback?: string): string {
    const a = this.get(name, [AttrType.STRING], 'a string');
    if (!a) return fallback ?? this.fail(`required attribute '${name}' is missing`);
    return utf8(a.s);
  }

  ints(name: string, fallback?: number[]): number[] {
    const a = this.get(name, [AttrType.INTS], 'a list of ints');
    if (!a) return fallback ?? this.fail(`required attribute '${name}' is missing`);
    return [...a.ints];
  }

  floats(name: string, fallback?: number[]): number[] {
    const a = this.get(name, [AttrType.FLOATS], 'a list of floats');
    if (!a) return fallback ?? this.fail(`required attribute '${name}' is missing`);
    return this.decimals ? a.floats.map(writtenDecimal) : [...a.floats];
  }

  tensor(name: string): TensorProto | undefined {
    const a = this.get(name, [AttrType.TENSOR], 'a tensor');
    if (a && !a.t) this.fail(`attribute '${name}' has no tensor value`);
    return a?.t ?? undefined;
  }

  /** The raw attribute (for Constant's many value_* forms). */
  raw(name: string): AttributeProto | undefined {
    return this.find(name);
  }
}

export interface OpContext {
  readonly node: OnnxNode;
  readonly attrs: Attrs;
  /** Opset version of the node's domain. */
  readonly opset: number;
  /** The model's producer_name ('pytorch' for both PyTorch exporters), for semantics that differ by origin. */
  readonly producer: string;
  /** Float dtype of this run. */
  readonly dtype: FloatDType;
  /** Run-level train/eval override (undefined: follow the model: training_mode attributes / inputs). */
  readonly training: boolean | undefined;
  /** Random stream of this run (dropout masks). */
  readonly rng: Rng;
  /** Write BatchNormalization running statistics back into the model's buffers. */
  readonly updateBuffers: boolean;
  /** Whether output `i` is used (has a non-empty name). */
  wants(i: number): boolean;
  /** The ONNX element type the model declares for input `i` (graph input, initializer, value_info), or 0. */
  declaredType(i: number): number;
  /** Throws an OnnxImportError naming this node. */
  fail(code: OnnxErrorCode, message: string): never;
  /** A constant (no grad) tensor; floats get this run's float dtype. */
  constant(values: ArrayLike<number>, shape: Shape, kind: 'float' | 'int32' | 'bool'): Tensor;
  /** The node's graph attribute `attribute` (an If branch, a Loop / Scan body), runnable in this node's scope. */
  body(attribute: string): Body;
}

/** A subgraph bound to the scope of the node that owns it. */
export interface Body {
  readonly graph: OnnxSubgraph;
  /**
   * Runs the subgraph once on values for its inputs (in order) and returns its outputs. Names it does not
   * define are read from the enclosing scopes. Engine ops record the tape as usual, so gradients reach
   * whatever outer values and parameters the body read. Values are any run values: tensors, and the
   * sequences, optionals and string tensors of values.ts (whose tensors keep their autograd).
   */
  run(inputs: readonly (RunValue | null)[]): RunValue[];
}

/** A constant from (small) values already at hand. Build large constants with filledConstant / computedConstant. */
export function makeConstant(values: ArrayLike<number>, shape: Shape, dtype: DType): Tensor {
  const data = allocate(dtype, values.length);
  if (dtype === 'bool') for (let i = 0; i < values.length; i++) data[i] = values[i] ? 1 : 0;
  else for (let i = 0; i < values.length; i++) data[i] = values[i];
  return new Tensor(data, shape);
}

/**
 * A constant of `shape` filled with `value`: allocated once through the checked path (size limit and
 * the run's memory budget) before any element is written, never built as a JS array first.
 */
export function filledConstant(shape: Shape, value: number, dtype: DType): Tensor {
  const data = allocate(dtype, checkedSize(shape));
  if (value !== 0) data.fill(dtype === 'bool' ? (value ? 1 : 0) : value);
  return new Tensor(data, shape);
}

/** A constant of `shape` whose elements `fill` writes into the (zeroed, checked) storage. */
export function computedConstant(shape: Shape, dtype: DType, fill: (data: TypedArray) => void): Tensor {
  const data = allocate(dtype, checkedSize(shape));
  fill(data);
  return new Tensor(data, shape);
}

function checkedSize(shape: Shape): number {
  assertValidShape(shape);
  return sizeOf(shape);
}

export function isFloatTensor(t: Tensor): boolean {
  return isFloat(t.dtype);
}
