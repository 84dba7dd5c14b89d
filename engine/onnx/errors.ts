/** Why an ONNX model could not be imported or run. */
export type OnnxErrorCode =
  /** No bytes at all. */
  | 'EMPTY'
  /** The bytes are something else (an image, an archive, text...), not a protobuf ModelProto. */
  | 'NOT_ONNX'
  /** The protobuf stream ends in the middle of a field (a cut-off download or copy). */
  | 'TRUNCATED'
  /** The protobuf stream is malformed (invalid wire types or lengths). */
  | 'CORRUPT'
  /** A structurally valid model that breaks an ONNX rule (a value used before it is defined...). */
  | 'INVALID_MODEL'
  /** An operator (or operator domain) the importer has no mapping for. */
  | 'UNSUPPORTED_OP'
  /** An operator used with attributes or inputs the importer does not handle (3-D conv, a wrap pad...). */
  | 'UNSUPPORTED_FEATURE'
  /** A tensor element type the engine cannot hold (string, complex...). */
  | 'UNSUPPORTED_DTYPE'
  /** Tensor data lives in an external file that was not provided. */
  | 'EXTERNAL_DATA'
  /** A symbolic input dimension (dim_param) with no value from the options. */
  | 'UNRESOLVED_DIM'
  /** An integer that does not fit the engine's int32 tensors. */
  | 'VALUE_OUT_OF_RANGE'
  /** A feed that is missing, unknown or of the wrong shape or type. */
  | 'BAD_INPUT'
  /** A node failed while running (shape mismatch, index out of range...): the message names it. */
  | 'NODE_FAILED'
  /** A loss could not be built from the options and outputs. */
  | 'BAD_LOSS'
  /** The run would need more memory than its budget (the message gives the estimate). */
  | 'MEMORY_BUDGET';

/** Where in the graph an error happened, when it concerns one node. */
export interface OnnxErrorNode {
  name: string;
  opType: string;
  domain: string;
  modulePath: string;
  /** For a node inside an If branch or a Loop / Scan body: which one, in words. */
  enclosing?: string;
}

/** The one error type the ONNX importer throws; `code` says what kind of problem it is. */
export class OnnxImportError extends Error {
  readonly code: OnnxErrorCode;
  readonly node: OnnxErrorNode | undefined;
  override readonly cause: unknown;

  constructor(code: OnnxErrorCode, message: string, options: { node?: OnnxErrorNode; cause?: unknown } = {}) {
    super(message);
    this.name = 'OnnxImportError';
    this.code = code;
    // A plain summary (the full node holds attributes and back-references).
    const n = options.node;
    this.node = n ? { name: n.name, opType: n.opType, domain: n.domain, modulePath: n.modulePath, ...(n.enclosing ? { enclosing: n.enclosing } : {}) } : undefined;
    this.cause = options.cause;
  }
}

/** "node '/blocks.0/attn/MatMul' (MatMul) in module blocks.0.attn" */
export function describeNode(node: OnnxErrorNode): string {
  const op = node.domain && node.domain !== 'ai.onnx' ? `${node.domain}:${node.opType}` : node.opType;
  const where = node.enclosing ? ` (in ${node.enclosing})` : '';
  return `node '${node.name}' (${op}) in module ${node.modulePath === '' ? '<root>' : node.modulePath}${where}`;
}
