/**
 * The values of a run that are not engine tensors: string tensors, sequences and optionals, ONNX's other
 * value types. They live on the host and never carry a gradient themselves: only engine Tensors do. A
 * sequence's elements (and an optional's value) are the Tensors some op produced, with their autograd, so
 * SequenceConstruct -> SequenceAt -> loss backpropagates into SequenceConstruct's inputs. A string tensor is
 * data only (no gradient, never a parameter); the ops that read strings are Identity, Equal and the sequence
 * ops (ops/sequence.ts). Every other op refuses them with UNSUPPORTED_DTYPE naming the op and input.
 */
import { Tensor } from '../tensor';
import { DType, FloatDType } from '../dtype';
import { formatShape, sizeOf } from '../shape';
import { OnnxImportError } from './errors';
import { DataType, TensorProto, ValueProto, VALUE_ELEM, utf8 } from './proto';
import { tensorFromProto } from './tensors';
import { broadcastMap } from './helpers';

/** A tensor of strings (row-major), as ONNX's tensor(string). */
export class StringTensor {
  readonly kind = 'string' as const;
  readonly shape: readonly number[];
  constructor(readonly data: readonly string[], shape: readonly number[]) {
    if (sizeOf(shape) !== data.length) throw new OnnxImportError('INVALID_MODEL', `a string tensor of shape ${formatShape(shape)} needs ${sizeOf(shape)} strings, got ${data.length}`);
    this.shape = [...shape];
  }
  get rank(): number {
    return this.shape.length;
  }
}

/** What a sequence holds: engine tensors of one dtype, or string tensors. */
export type SequenceElement = Tensor | StringTensor;
/** Element kind of a sequence: an engine dtype or 'string'. */
export type ElementKind = DType | 'string';

export function elementKind(t: SequenceElement): ElementKind {
  return t instanceof StringTensor ? 'string' : t.dtype;
}

/**
 * An ONNX sequence: an ordered list of tensors of one element type (shapes may differ). `elemKind` is known
 * for an empty sequence too (SequenceEmpty's dtype), or null when nothing says.
 */
export class OnnxSequence {
  readonly kind = 'sequence' as const;
  readonly items: readonly SequenceElement[];
  readonly elemKind: ElementKind | null;
  /** `elemKind` null: the kind of the first element (or unknown for an empty sequence). */
  constructor(items: readonly SequenceElement[], elemKind: ElementKind | null = null) {
    elemKind ??= items.length ? elementKind(items[0]) : null;
    for (const [i, t] of items.entries()) {
      if (elementKind(t) !== elemKind) throw new OnnxImportError('INVALID_MODEL', `a sequence of ${elemKind} tensors cannot hold element ${i}, a ${elementKind(t)} tensor (a sequence has one element type)`);
    }
    this.items = [...items];
    this.elemKind = elemKind;
  }
  get length(): number {
    return this.items.length;
  }
}

/** An ONNX optional: a tensor, a sequence, or none (`value` null). */
export class OnnxOptional {
  readonly kind = 'optional' as const;
  constructor(readonly value: SequenceElement | OnnxSequence | null) {}
}

/** A value of a run that is not an engine tensor. */
export type OtherValue = StringTensor | OnnxSequence | OnnxOptional;
/** Any value of a run. */
export type RunValue = Tensor | OtherValue;

export function isOtherValue(v: unknown): v is OtherValue {
  return v instanceof StringTensor || v instanceof OnnxSequence || v instanceof OnnxOptional;
}

/** What a value is, in words, for error messages: "a float32 tensor [2, 3]", "a sequence of 3 int32 tensors". */
export function describeValue(v: RunValue | null): string {
  if (v === null) return 'missing';
  if (v instanceof Tensor) return `a ${v.dtype} tensor ${formatShape(v.shape)}`;
  if (v instanceof StringTensor) return `a string tensor ${formatShape(v.shape)}`;
  if (v instanceof OnnxSequence) return `a sequence of ${v.length} ${v.elemKind ?? ''}${v.elemKind ? ' ' : ''}tensor${v.length === 1 ? '' : 's'}`;
  return v.value === null ? 'an empty optional' : `an optional holding ${describeValue(v.value)}`;
}

/** Equal on string tensors, with ONNX (numpy) broadcasting: a bool tensor (each distinct string as an id, compared by broadcastMap). */
export function stringEqual(a: StringTensor, b: StringTensor): Tensor {
  const ids = new Map<string, number>();
  const idOf = (v: string) => {
    let id = ids.get(v);
    if (id === undefined) ids.set(v, (id = ids.size));
    return id;
  };
  const idsOf = (t: StringTensor) => new Tensor(Int32Array.from(t.data, idOf), t.shape);
  return broadcastMap([idsOf(a), idsOf(b)], 'bool', (x, y) => (x === y ? 1 : 0), 'Equal output');
}

/** A string TensorProto as a StringTensor (UTF-8 decoded). */
export function stringTensorFromProto(t: TensorProto, what: string): StringTensor {
  if (t.dataType !== DataType.STRING) throw new OnnxImportError('INVALID_MODEL', `${what} is not a string tensor`);
  if (t.stringData.length !== sizeOf(t.dims)) throw new OnnxImportError('INVALID_MODEL', `${what}: has ${t.stringData.length} strings but shape ${formatShape(t.dims)} needs ${sizeOf(t.dims)}`);
  return new StringTensor(t.stringData.map((b) => utf8(b)), t.dims);
}

/** A TensorProto as a run value: a string tensor, or an engine tensor (floats as `floatDtype`). */
export function elementFromProto(t: TensorProto, floatDtype: FloatDType, what: string): SequenceElement {
  return t.dataType === DataType.STRING ? stringTensorFromProto(t, what) : tensorFromProto(t, floatDtype, what);
}

/**
 * A SequenceProto / OptionalProto (ONNX test data) as a run value. Elements the importer does not run (maps,
 * sparse tensors, sequences inside a sequence) throw UNSUPPORTED_DTYPE naming `what`.
 */
export function valueFromProto(v: ValueProto, floatDtype: FloatDType, what: string): OnnxSequence | OnnxOptional {
  const unsupported = (kind: string): never => {
    throw new OnnxImportError('UNSUPPORTED_DTYPE', `${what} is a ${v.kind} of ${kind} values; the importer runs sequences of tensors and optionals of a tensor or a sequence`);
  };
  if (v.otherCount > 0) unsupported(v.elemType === VALUE_ELEM.MAP ? 'map' : 'sparse tensor');
  if (v.kind === 'sequence') {
    if (v.sequences.length || v.optionals.length) unsupported(v.sequences.length ? 'sequence' : 'optional');
    return new OnnxSequence(v.tensors.map((t, i) => elementFromProto(t, floatDtype, `${what} element ${i}`)));
  }
  if (v.optionals.length) unsupported('optional');
  if (v.tensors.length + v.sequences.length > 1) throw new OnnxImportError('INVALID_MODEL', `${what}: an optional holds more than one value`);
  if (v.tensors.length) return new OnnxOptional(elementFromProto(v.tensors[0], floatDtype, what));
  if (v.sequences.length) return new OnnxOptional(valueFromProto(v.sequences[0], floatDtype, what) as OnnxSequence);
  return new OnnxOptional(null);
}
