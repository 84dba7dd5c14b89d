/**
 * The ONNX operator registry: one entry per ONNX op type (default domain), mapping it onto engine
 * ops. Math the engine has is never re-implemented here: differentiable ops are engine ops or
 * compositions of them (so autograd derives their VJPs); only non-differentiable index, shape,
 * comparison and mask arithmetic is done on plain numbers (helpers.ts).
 *
 * Opset differences handled: attribute-vs-input forms (Reshape <5, Slice <10, Pad <11, Clip <11,
 * Squeeze/Unsqueeze/Split/ReduceSum <13, other Reduce* <18), Softmax's 2-D coercion before 13,
 * BatchNormalization's is_test (<7), output-count (7-13) and training_mode (14+) train flags,
 * Dropout's ratio/training_mode inputs (12+), Split's num_outputs (18), legacy broadcast attrs (<7).
 */
import { AnyOpHandler } from './ops/common';
import { ELEMENTWISE_OPS } from './ops/elementwise';
import { MATMUL_OPS } from './ops/matmul';
import { LAYOUT_OPS } from './ops/layout';
import { INDEXING_OPS } from './ops/indexing';
import { CONV_OPS } from './ops/conv';
import { REDUCE_OPS } from './ops/reduce';
import { SOFTMAX_OPS } from './ops/softmax';
import { NORM_OPS } from './ops/norm';
import { DROPOUT_OPS } from './ops/dropout';
import { LOSS_OPS } from './ops/loss';
import { CONSTANT_OPS } from './ops/constants';
import { ATTENTION_OPS } from './ops/attention';
import { RESIZE_OPS } from './ops/resize';
import { SEQUENCE_OPS } from './ops/sequence';
import { CONTROL_OPS } from './ops/control';
import { SPECTRAL_OPS } from './ops/spectral';

export type { AnyOpHandler, OpHandler, OpResult, ValueOpHandler, ValueOpResult } from './ops/common';

/** Every handler, by ONNX op type; each family lives in ops/<family>.ts, next to engine/ops/<family>.ts. */
export const OPSET: Readonly<Record<string, AnyOpHandler>> = Object.freeze(Object.assign(Object.create(null) as Record<string, AnyOpHandler>,
  ELEMENTWISE_OPS, MATMUL_OPS, LAYOUT_OPS, INDEXING_OPS, CONV_OPS, REDUCE_OPS, SOFTMAX_OPS, NORM_OPS, DROPOUT_OPS, LOSS_OPS, CONSTANT_OPS, ATTENTION_OPS, RESIZE_OPS,
  SEQUENCE_OPS, CONTROL_OPS, SPECTRAL_OPS));

/** Op types of the default domain the importer maps (sorted). */
export function supportedOps(): string[] {
  return Object.keys(OPSET).sort();
}

/** Whether input `slot` of an op can carry a gradient (used to decide which initializers are trainable). */
export function isDifferentiableSlot(opType: string, slot: number): boolean {
  const h = OPSET[opType];
  if (!h) return true;
  if (h.nonDiff === 'all') return false;
  return !(h.nonDiff ?? []).includes(slot);
}

