/**
 * loadOnnx: ONNX bytes -> an OnnxModel whose run() evaluates the graph with engine ops, so that
 * backward(loss) fills parameter gradients and every intermediate value is addressable by its ONNX
 * value name (with the node and module path that produced it).
 */
import { onHost } from '../backend/dispatch';
import { Tensor, TensorOnDeviceError, markParameter } from '../tensor';
import { FloatDType, allocate, isFloat } from '../dtype';
import { MemoryLimitError, openMeter } from '../memory';
import { Rng } from '../random';
import { formatShape, sizeOf } from '../shape';
import { noGrad } from '../autograd';
import { isTransientCallback, keepTensor } from '../recycling';
import * as E from '../ops';
import { OnnxErrorCode, OnnxImportError, describeNode } from './errors';
import { DataType, ModelProto, TensorProto, dataTypeName, decodeModel } from './proto';
import { ExternalData, checkClaimedValueType, engineDtype, isFloatType, tensorFromProto } from './tensors';
import { OnnxOptional, OnnxSequence, OtherValue, RunValue, SequenceElement, StringTensor, describeValue, isOtherValue } from './values';
import { OnnxGraph, OnnxNode, OnnxSubgraph, OnnxValueSpec, buildGraph } from './graph';
import { AnyOpHandler, OPSET, ValueOpResult, isDifferentiableSlot } from './opset';
import { Body, OpContext, makeConstant } from './context';
import { ModuleNode, buildModuleTree, scopesFromParameters } from './modules';
import { checkSize, convert, mapValues } from './helpers';
import { integerBoundNodes } from './integerPaths';
import { ExportNote, restoreParameterIdentity } from './identity';
import { OnnxWarning, validateGraph } from './validate';
import { GeluChain, findGeluChains, fuseGelu } from './activationFusion';
import { BUDGET_HINT, MemoryEstimate, checkInitializerMemory, estimateRunMemory } from './memory';

// ---------------------------------------------------------------- public types

export interface LoadOptions {
  /**
   * Float dtype of the parameters and of runs. Default: 'float64' for a model whose float inputs and
   * initializers are all double, else 'float32' (float16/bfloat16/float64 data is converted).
   */
  dtype?: FloatDType;
  /** Initializers that must not be trained (e.g. a LoRA model's frozen base weights). */
  frozen?: readonly string[] | ((name: string) => boolean);
  /** Full override of the trainable-parameter rule (see InitializerInfo.trainable). */
  trainable?: (info: InitializerInfo) => boolean;
  /** Bytes of external data files (initializers saved with save_as_external_data), by location. */
  externalData?: ExternalData;
  /** Throw at load time for unsupported ops in the part of the graph the outputs need (default true). */
  strict?: boolean;
  /**
   * Bytes the model may take: a model whose initializers alone need more is refused (MEMORY_BUDGET) from
   * their dims, before any is decoded.
   */
  memoryBudget?: number;
}

/** An initializer and what the importer made of it. */
export interface InitializerInfo {
  name: string;
  /** ONNX element type ('float32', 'int64'...). */
  elemType: string;
  shape: number[];
  /**
   * 'parameter': a trainable tensor (requiresGrad): a float initializer that some node reads in an
   * input slot that carries gradients, unless it is an anonymous exporter scalar (`onnx::Mul_7`) or
   * frozen by the options. 'buffer': any other initializer (running statistics, masks, frozen
   * weights, shape constants, unused data).
   */
  role: 'parameter' | 'buffer';
  /** Why it got that role, in words. */
  reason: string;
  /** Nodes reading it: node name, op type, input slot. */
  consumers: { node: string; opType: string; slot: number }[];
}

/** A graph input and how sample data is made for it. */
export interface OnnxInputSpec extends OnnxValueSpec {
  /**
   * 'float': random normal data; 'tokens': ids for a Gather (embedding) table; 'labels': class ids
   * for a loss node; 'int': other integers (values in [0, intRange)); 'bool': all true; 'value': a sequence,
   * optional or string tensor (values.ts), which must be fed: no sample data is made up for it.
   */
  role: 'float' | 'tokens' | 'labels' | 'int' | 'bool' | 'value';
  /** For tokens / labels: where the id range comes from. */
  rangeFrom?: { node: string; input: number; dim: number };
}

/** Sample-data options (also accepted by run()). */
export interface SampleOptions {
  /** Seed of the random inputs and random targets (default 0). */
  seed?: number;
  /** Value of batch-like symbolic dims ('batch', 'batch_size', 'N'...), default 2. */
  batch?: number;
  /** Value of sequence-like symbolic dims ('seq', 'sequence_length', 'T'...), default 8. */
  seq?: number;
  /** Values of symbolic dims by name (dim_param), taking precedence over batch/seq. */
  dims?: Record<string, number>;
  /** Exclusive upper bound of sampled ids, by input name (overrides the inferred range). */
  intRange?: Record<string, number>;
}

export interface LossContext {
  outputs: Map<string, Tensor>;
  values: Map<string, OnnxValue>;
  inputs: Map<string, Tensor>;
}

/**
 * The loss of a run:
 * - 'auto' (default): a scalar float graph output if the model has one (exported with its loss);
 *   else cross-entropy on next-token targets for a language model (an int input feeding an
 *   embedding Gather whose table size is the logits' last dim), cross-entropy on random labels for
 *   a classifier (a 2-D output), and otherwise the mean of squares of the first float output;
 * - 'graph': the scalar float graph output (error if none); 'none': no loss;
 * - objects to choose the output and give targets; a function for anything else.
 */
export type LossSpec =
  | 'auto' | 'graph' | 'none' | 'crossEntropy' | 'meanSquare'
  | { kind: 'output'; name: string }
  | { kind: 'crossEntropy'; output?: string; targets?: Tensor; ignoreIndex?: number }
  | { kind: 'mse'; output?: string; target: Tensor }
  | { kind: 'meanSquare'; output?: string }
  | ((ctx: LossContext) => Tensor);

export interface RunOptions extends SampleOptions {
  loss?: LossSpec;
  /** Float dtype of this run; a different one than the model's converts the parameters (new tensors). */
  dtype?: FloatDType;
  /** Train/eval override for Dropout and BatchNormalization (default: as the model says). */
  training?: boolean;
  /** Write BatchNormalization running statistics into model.buffers (PyTorch semantics; default false). */
  updateBuffers?: boolean;
  /** retainGrad() on intermediate values that require grad: true for all, or a list of value names. */
  retainGrad?: boolean | readonly string[];
  /** Forward hook, called for every tensor value as it is produced; may return a replacement tensor. */
  onValue?: (value: OnnxValue) => Tensor | void;
  /**
   * Bytes of tensor memory the run (forward and the backward that follows) may take. When set, run()
   * first estimates the peak with a shape-only dry run (estimateMemory) and refuses a run above it with
   * OnnxImportError MEMORY_BUDGET naming the estimate, before allocating anything for it.
   */
  memoryBudget?: number;
  /**
   * Differentiate exporters' GELU decompositions (Div/Erf/Add/Mul/Mul, GPT-2's tanh form) as one op when nothing
   * can ask for the values in between (activationFusion.ts says when); forward values are unchanged. Default true.
   */
  fuseActivations?: boolean;
}

/** Feeds by input name: tensors (or plain numbers), and OnnxSequence / OnnxOptional / StringTensor for inputs of those types. */
export type Feeds = Record<string, Tensor | ArrayLike<number> | OtherValue>;

/** A tensor value of a run: what the ONNX name holds, who produced it and where it sits in the model (other values: OnnxOtherValue). */
export interface OnnxValue {
  name: string;
  tensor: Tensor;
  kind: 'input' | 'parameter' | 'buffer' | 'node';
  /** The producing node (null for inputs and initializers). */
  node: OnnxNode | null;
  /** Which output of the node. */
  outputIndex: number;
  /** Module path of the producer (for initializers: the module owning them). */
  modulePath: string;
  /** True when the value does not depend on input data or trainable parameters (constant-folded). */
  folded: boolean;
}

/**
 * A value of a run that is not an engine tensor (values.ts: a sequence, an optional or a string tensor), with
 * the same provenance as OnnxValue. Kept apart from the tensors (tensorsByName, onValue, the inspection
 * report, the overlays see tensors only): such a value carries no gradient of its own; the tensors inside a
 * sequence or optional are the tensors of the values that produced them.
 */
export interface OnnxOtherValue {
  name: string;
  value: OtherValue;
  kind: 'input' | 'node';
  node: OnnxNode | null;
  outputIndex: number;
  modulePath: string;
}

export interface LossInfo {
  kind: 'graph' | 'crossEntropy' | 'mse' | 'meanSquare' | 'output' | 'custom' | 'none';
  /** The value the loss was computed from. */
  output?: string;
  description: string;
  /** Cross-entropy: the class dimension of the output (1, or -1 for class scores last) and the ignored target. */
  classAxis?: 1 | -1;
  ignoreIndex?: number;
}

export interface OnnxRunResult {
  /** Graph outputs by name. */
  outputs: Map<string, Tensor>;
  /** Scalar loss to call backward() on (null with loss 'none'). */
  loss: Tensor | null;
  lossInfo: LossInfo;
  /** The inputs used (fed or sampled). */
  inputs: Map<string, Tensor>;
  /** Targets the importer made for an added loss (random labels, next tokens), if any. */
  targets: Tensor | null;
  /** Every tensor value of the run by ONNX name: inputs, initializers and node outputs. */
  tensorsByName: Map<string, OnnxValue>;
  /** Every other value of the run (sequences, optionals, string tensors) by ONNX name, graph outputs included. */
  otherValues: Map<string, OnnxOtherValue>;
  /** The memory estimate made before the run (with options.memoryBudget). */
  memory?: MemoryEstimate;
  /** New BatchNormalization running statistics by buffer name (training runs). */
  bufferUpdates: Map<string, Tensor>;
  /** The tensor of a value (throws BAD_INPUT for an unknown name). */
  value(name: string): Tensor;
  /** Node-output values of a module (and its submodules with `deep`). */
  valuesOfModule(path: string, deep?: boolean): OnnxValue[];
}

// ---------------------------------------------------------------- helpers

const BATCH_NAMES = /^(n|b|bs|batch|batch_?size|num_?batch(es)?)$|batch/i;
const SEQ_NAMES = /^(t|l|s)$|seq|sequence|length|len$|tokens|time|position|context/i;

function isAnonymous(name: string): boolean {
  return /^onnx::/.test(name) || name.startsWith('/') || /_output_\d+$/.test(name) || /^_v_\d+$/.test(name) || /^(const|constant)(_\d+)?$/i.test(name);
}

function describeShape(dims: readonly (number | string | null)[] | null): string {
  return dims ? `[${dims.map((d) => (d === null ? '?' : d)).join(', ')}]` : '(unknown rank)';
}

export interface Plan {
  /** Folded value tensors (constants, shape computations) by value name. */
  folded: Map<string, Tensor>;
  /** Nodes whose outputs are all folded. */
  foldedNodes: Set<number>;
  /** Id ranges of sampled int inputs, once known. */
  ranges: Map<string, number>;
}

/** What a shape-only dry run (memory.ts) substitutes for the model's own state. */
export interface ExecEnv {
  plan?: Plan;
  dtype?: FloatDType;
  parameters?: Map<string, Tensor>;
  buffers?: Map<string, Tensor>;
  /** Host zeros standing in for a value without host data, for ops that read values. */
  hostValues?: (t: Tensor) => Tensor;
}

/** Every node of the nodes' If / Loop / Scan bodies, nested ones included. */
function bodyNodes(nodes: readonly OnnxNode[]): OnnxNode[] {
  const out: OnnxNode[] = [];
  for (const n of nodes) for (const sub of n.subgraphs ?? []) out.push(...sub.nodes, ...bodyNodes(sub.nodes));
  return out;
}

/** What one run's nodes share (top-level and body nodes alike). */
interface RunState {
  options: RunOptions;
  rng: Rng;
  dtype: FloatDType;
  env: ExecEnv;
}

/** Ops whose output is the (reshaped/retyped) input: followed when looking for an int input's use. */
const PASS_THROUGH = new Set(['Reshape', 'Flatten', 'Squeeze', 'Unsqueeze', 'Identity', 'Cast', 'Transpose', 'Expand', 'Slice', 'Concat', 'Tile']);

/** float64 when every float graph input and initializer of the model is double, else float32. */
function defaultDtype(proto: ModelProto): FloatDType {
  const g = proto.graph!;
  const types = [...g.input.map((v) => v.type?.elemType ?? 0), ...g.initializer.map((t) => t.dataType)].filter(isFloatType);
  return types.length > 0 && types.every((t) => t === DataType.DOUBLE) ? 'float64' : 'float32';
}

/** A 2-D tensor's transpose (a new tensor; for parameters an export stored transposed). */
function transposed2d(t: Tensor): Tensor {
  const [r, c] = t.shape;
  const src = t.data;
  const out = new (src.constructor as { new (n: number): typeof src })(src.length);
  for (let i = 0; i < r; i++) for (let j = 0; j < c; j++) out[j * r + i] = src[i * c + j];
  return new Tensor(out as never, [c, r]);
}

// ---------------------------------------------------------------- the model

export class OnnxModel {
  readonly graph: OnnxGraph;
  readonly irVersion: number;
  /** Opset version of the default ONNX domain. */
  readonly opsetVersion: number;
  /** Every imported opset, by domain ('' = default ONNX domain). */
  readonly opsets: Record<string, number>;
  readonly producer: { name: string; version: string };
  /** ModelProto metadata_props. */
  readonly metadata: Record<string, string>;
  readonly docString: string;
  /** Trainable parameters (requiresGrad) by initializer name. */
  parameters: Map<string, Tensor>;
  /** Every other initializer (running statistics, frozen weights, constants) by name. */
  buffers: Map<string, Tensor>;
  readonly initializers: InitializerInfo[];
  readonly inputs: OnnxInputSpec[];
  readonly outputs: OnnxValueSpec[];
  readonly moduleTree: ModuleNode;
  readonly modules: Map<string, ModuleNode>;
  /** Nodes the graph outputs depend on, in execution order (the rest is skipped). */
  readonly liveNodes: OnnxNode[];
  /** Ops of the live graph the importer cannot run (non-empty only with strict: false). */
  readonly unsupported: { opType: string; domain: string; nodes: string[] }[];
  /**
   * What a dynamo export did to PyTorch parameters (merged, transposed, folded, dropped), per module,
   * and whether the importer undid it (engine/onnx/identity.ts). Empty for other exports.
   */
  readonly exportNotes: ExportNote[];
  private floatDtype: FloatDType;
  private readonly functions: { name: string; domain: string }[];
  /** 1 for a live node (by index), else 0. */
  private readonly liveIndex: Uint8Array;
  private readonly plans = new Map<string, Plan>();
  private readonly bodyConstants = new Map<FloatDType, WeakMap<TensorProto, Tensor>>();
  private readonly nodeByName = new Map<string, OnnxNode>();
  private readonly inputSpecs = new Map<string, OnnxInputSpec>();
  private readonly outputNames: ReadonlySet<string>;
  /** Harmless oddities found while loading (an attribute the op does not define...), in words. */
  readonly warnings: OnnxWarning[];
  private readonly declaredTypes = new Map<string, number>();
  /** The float precision the export declares (a float64 run still computes integer-bound paths in it). */
  private readonly declaredFloat: FloatDType;
  /** Nodes whose float results only feed integer casts and comparisons (integerPaths.ts). */
  private readonly integerBound: Set<number>;
  /** GELU chains by the index of their last node (activationFusion.ts), found on the first run that may fuse. */
  private geluChains: Map<number, GeluChain> | undefined;

  constructor(exported: ModelProto, options: LoadOptions = {}) {
    const identity = restoreParameterIdentity(exported);
    const proto = identity.model;
    this.exportNotes = identity.notes;
    this.declaredFloat = defaultDtype(proto);
    this.floatDtype = options.dtype ?? this.declaredFloat;
    this.functions = proto.functions;
    this.graph = buildGraph(proto);
    // Declared ONNX element types (inputs, initializers, value_info, outputs): CastLike's target type.
    for (const v of [...this.graph.inputs, ...this.graph.valueInfo.values(), ...this.graph.outputs]) if (v.dataType) this.declaredTypes.set(v.name, v.dataType);
    for (const t of proto.graph!.initializer) this.declaredTypes.set(t.name, t.dataType);
    this.irVersion = proto.irVersion;
    // Maps keyed by model strings have no prototype: a domain or key named 'constructor' is just a name.
    const opsets = new Map<string, number>();
    for (const o of proto.opsetImport) opsets.set(o.domain === 'ai.onnx' ? '' : o.domain, o.version);
    this.warnings = validateGraph(proto, this.graph, opsets);
    if (!opsets.has('')) opsets.set('', 1); // IR < 3 (no opset_import yet): the oldest opset
    this.opsets = Object.assign(Object.create(null) as Record<string, number>, Object.fromEntries(opsets));
    this.opsetVersion = opsets.get('')!;
    this.producer = { name: proto.producerName, version: proto.producerVersion };
    this.metadata = Object.assign(Object.create(null) as Record<string, string>, Object.fromEntries(proto.metadataProps.map((e) => [e.key, e.value])));
    this.docString = proto.docString;
    this.outputs = this.graph.outputs;
    for (const n of this.graph.nodes) this.nodeByName.set(n.name, n);

    // Live nodes: the ones graph outputs depend on (a walk over node indices: one map probe per value read).
    const nodes = this.graph.nodes;
    const live = new Uint8Array(nodes.length);
    const stack: number[] = [];
    const reach = (value: string) => {
      const p = this.graph.producers.get(value);
      if (p !== undefined && !live[p]) {
        live[p] = 1;
        stack.push(p);
      }
    };
    for (const o of this.graph.outputs) reach(o.name);
    while (stack.length) {
      const n = nodes[stack.pop()!];
      for (const i of n.inputs) if (i !== '') reach(i);
      // An outer value read only inside a live node's body is live too.
      if (n.implicitInputs) for (const i of n.implicitInputs) reach(i);
    }
    const initializerSet = new Set(this.graph.initializerNames);
    const inputSet = new Set(this.graph.inputs.map((i) => i.name));
    const outputSet = new Set<string>();
    for (const o of this.graph.outputs) {
      if (outputSet.has(o.name)) throw new OnnxImportError('INVALID_MODEL', `invalid ONNX graph: output '${o.name}' is listed twice`);
      outputSet.add(o.name);
      if (!this.graph.producers.has(o.name) && !initializerSet.has(o.name) && !inputSet.has(o.name)) {
        throw new OnnxImportError('INVALID_MODEL', `invalid ONNX graph: output '${o.name}' is not produced by any node`);
      }
    }
    this.outputNames = outputSet;
    this.liveNodes = nodes.filter((n) => live[n.index] === 1);
    this.liveIndex = live;
    this.integerBound = integerBoundNodes(this.graph);

    // Unsupported ops in the live graph.
    const bad = new Map<string, { opType: string; domain: string; nodes: string[] }>();
    let firstBad: OnnxNode | undefined;
    const check = (list: readonly OnnxNode[]) => {
      for (const n of list) {
        // Every node of a live node's bodies may run (which branch, how many iterations: known at run time).
        if (n.subgraphs) for (const sub of n.subgraphs) check(sub.nodes);
        if (this.handler(n)) continue;
        firstBad ??= n;
        const key = `${n.domain}:${n.opType}`;
        const entry = bad.get(key) ?? { opType: n.opType, domain: n.domain, nodes: [] };
        entry.nodes.push(n.name);
        bad.set(key, entry);
      }
    };
    check(this.liveNodes);
    this.unsupported = [...bad.values()];
    if (firstBad && options.strict !== false) throw this.unsupportedError(firstBad);

    // Initializers: parameters (trainable) vs buffers. Their memory is known from the dims before any is decoded.
    if (options.memoryBudget !== undefined) checkInitializerMemory(proto, this.floatDtype, options.memoryBudget);
    const frozen = options.frozen;
    const isFrozen = (name: string) => (typeof frozen === 'function' ? frozen(name) : frozen ? frozen.includes(name) : false);
    this.parameters = new Map();
    this.buffers = new Map();
    this.initializers = [];
    for (const t of proto.graph!.initializer) {
      // One pass over the uses (a shared weight may have 100k): the first live differentiable one names the reason.
      const consumers: InitializerInfo['consumers'] = [];
      let anyLive = false;
      let diffUse: InitializerInfo['consumers'][number] | undefined;
      let diffImplicit = false;
      for (const c of this.graph.consumers.get(t.name) ?? []) {
        const n = nodes[c.node];
        const use = { node: n.name, opType: n.opType, slot: c.slot };
        consumers.push(use);
        if (live[c.node] !== 1) continue;
        anyLive = true;
        if (!diffUse && isDifferentiableSlot(n.opType, c.slot)) {
          diffUse = use;
          diffImplicit = c.slot >= n.inputs.length;
        }
      }
      const float = isFloatType(t.dataType);
      let role: 'parameter' | 'buffer' = 'buffer';
      let reason: string;
      if (!float) reason = `${dataTypeName(t.dataType)} data`;
      else if (!anyLive) reason = 'not used by the graph outputs';
      else if (!diffUse) reason = `only read as ${consumers.map((c) => `${c.opType} input ${c.slot}`).join(', ')} (no gradient flows there)`;
      else if (identity.constants.has(t.name)) reason = identity.constants.get(t.name)!;
      else if (sizeOf(t.dims) <= 1 && isAnonymous(t.name)) reason = 'an anonymous exporter constant (scalar)';
      else if (isFrozen(t.name)) reason = 'frozen by the load options';
      else {
        role = 'parameter';
        reason = diffImplicit
          ? `read inside the subgraphs of ${diffUse.opType} node '${diffUse.node}'`
          : `read by ${diffUse.opType} node '${diffUse.node}' (input ${diffUse.slot})`;
      }
      const info: InitializerInfo = { name: t.name, elemType: dataTypeName(t.dataType), shape: [...t.dims], role, reason, consumers };
      if (options.trainable) {
        const want = options.trainable(info) && float;
        if (want !== (role === 'parameter')) {
          info.role = want ? 'parameter' : 'buffer';
          info.reason = 'chosen by the trainable option';
        }
      }
      this.initializers.push(info);
      let tensor = tensorFromProto(t, this.floatDtype, `initializer '${t.name}'`, options.externalData);
      if (identity.transposed.has(t.name)) tensor = transposed2d(tensor);
      tensor.name = t.name;
      if (info.role === 'parameter') {
        markParameter(tensor.setRequiresGrad(true));
        this.parameters.set(t.name, tensor);
      } else {
        this.buffers.set(t.name, tensor);
      }
    }

    if (identity.stripped) {
      // No node metadata: leaves get back the nodes that read their parameters (output shapes, order, activations).
      const scopes = scopesFromParameters(this.graph.nodes, (n) => this.parameters.has(n));
      for (const n of this.graph.nodes) {
        const path = scopes.get(n.name);
        if (path !== undefined) (n as { modulePath: string }).modulePath = path;
      }
    }
    const tree = buildModuleTree(this.graph.nodes, this.graph.initializerNames, bodyNodes(this.liveNodes));
    this.moduleTree = tree.root;
    this.modules = tree.byPath;
    this.inputs = this.graph.inputs.map((spec) => this.inputSpec(spec));
    for (const spec of this.inputs) this.inputSpecs.set(spec.name, spec);
  }

  /** Float dtype of parameters and runs. */
  get dtype(): FloatDType {
    return this.floatDtype;
  }

  /** Converts parameters and float buffers to `dtype` (new tensors: gradients start over). */
  setDtype(dtype: FloatDType): void {
    if (dtype === this.floatDtype) return;
    const conv = (m: Map<string, Tensor>, grad: boolean) => {
      for (const [k, t] of m) {
        if (!isFloat(t.dtype)) continue;
        const c = convert(t, dtype);
        c.name = k;
        if (grad) c.setRequiresGrad(true);
        m.set(k, c);
      }
    };
    conv(this.parameters, true);
    conv(this.buffers, false);
    this.floatDtype = dtype;
    this.plans.clear();
  }

  /** Clears .grad on every parameter. */
  zeroGrad(): void {
    for (const p of this.parameters.values()) p.zeroGrad();
  }

  private handler(n: OnnxNode): AnyOpHandler | undefined {
    if (n.domain !== '') return undefined;
    return Object.prototype.hasOwnProperty.call(OPSET, n.opType) ? OPSET[n.opType] : undefined;
  }

  private unsupportedError(n: OnnxNode): OnnxImportError {
    const others = this.unsupported.map((u) => (u.domain ? `${u.domain}:${u.opType}` : u.opType));
    const fn = this.functions.find((f) => f.name === n.opType && f.domain === n.domain);
    const why = fn
      ? `it calls the model-local function '${fn.domain}:${fn.name}', and the importer does not inline model-local functions`
      : n.domain !== '' ? `ops of domain '${n.domain}' are not supported (only the default ONNX domain)` : `the importer has no mapping for ONNX op ${n.opType}`;
    return new OnnxImportError('UNSUPPORTED_OP', `unsupported op: ${describeNode(n)}: ${why}${others.length > 1 ? ` (unsupported in this model: ${others.join(', ')})` : ''}`, { node: n });
  }

  // ---------------------------------------------------------------- inputs

  private inputSpec(spec: OnnxValueSpec): OnnxInputSpec {
    checkClaimedValueType({ kind: spec.valueKind, elemType: spec.dataType, elem: spec.elem }, `graph input '${spec.name}'`);
    if (spec.valueKind !== 'tensor' || spec.dataType === DataType.STRING) return { ...spec, role: 'value' };
    const float = isFloatType(spec.dataType);
    if (!float && spec.dataType !== DataType.BOOL) engineDtype(spec.dataType, this.floatDtype, `graph input '${spec.name}'`);
    if (float) return { ...spec, role: 'float' };
    if (spec.dataType === DataType.BOOL) return { ...spec, role: 'bool' };
    const use = this.rangeUse(spec.name);
    if (!use) return { ...spec, role: 'int' };
    return { ...spec, role: use.role, rangeFrom: { node: this.graph.nodes[use.node].name, input: use.input, dim: use.dim } };
  }

  /** Follows an int value through reshapes to a Gather (ids) or loss node (labels). */
  private rangeUse(name: string): { role: 'tokens' | 'labels'; node: number; input: number; dim: number } | null {
    const queue = [name];
    const seen = new Set<string>();
    for (let head = 0; head < queue.length; head++) {
      const v = queue[head];
      if (seen.has(v)) continue;
      seen.add(v);
      for (const c of this.graph.consumers.get(v) ?? []) {
        const n = this.graph.nodes[c.node];
        if (n.opType === 'Gather' && c.slot === 1) {
          const axis = n.attrs.int('axis', 0);
          return { role: 'tokens', node: n.index, input: 0, dim: axis };
        }
        if ((n.opType === 'SoftmaxCrossEntropyLoss' || n.opType === 'NegativeLogLikelihoodLoss') && c.slot === 1) {
          return { role: 'labels', node: n.index, input: 0, dim: 1 };
        }
        if (PASS_THROUGH.has(n.opType) && c.slot === 0) queue.push(...n.outputs.filter((o) => o !== ''));
      }
    }
    return null;
  }

  /** Concrete shape of an input from its declaration and the options. */
  resolveShape(spec: OnnxValueSpec, options: SampleOptions = {}, known: ReadonlyMap<string, number> = new Map()): number[] {
    if (!spec.dims) {
      throw new OnnxImportError('UNRESOLVED_DIM', `input '${spec.name}' has no declared shape (unknown rank); feed it explicitly`);
    }
    return spec.dims.map((d, i) => {
      if (typeof d === 'number') return d;
      if (d === null) {
        throw new OnnxImportError('UNRESOLVED_DIM', `dimension ${i} of input '${spec.name}' ${describeShape(spec.dims)} has neither a value nor a name; feed the input explicitly`);
      }
      const v = own(options.dims, d) ?? known.get(d) ?? (BATCH_NAMES.test(d) ? options.batch ?? 2 : SEQ_NAMES.test(d) ? options.seq ?? 8 : undefined);
      if (v === undefined) {
        throw new OnnxImportError('UNRESOLVED_DIM', `cannot resolve dimension ${i} of input '${spec.name}' ${describeShape(spec.dims)}: symbolic dim '${d}' is neither batch- nor sequence-like; pass options.dims = { "${d}": <size> } or feed the input`);
      }
      if (typeof v !== 'number' || !Number.isInteger(v) || v < 0) throw new OnnxImportError('UNRESOLVED_DIM', `symbolic dim '${d}' of input '${spec.name}' must be a non-negative integer, got ${typeof v === 'number' ? v : typeof v}`);
      return v;
    });
  }

  /**
   * Seeded sample inputs for every tensor graph input not in `feeds`: normal floats, ids in range for
   * embedding lookups and loss labels, all-true bools. `valueFeeds` (sequences, optionals, strings: never
   * sampled) take part in the probe run that finds an id range computed from them.
   */
  sampleInputs(options: SampleOptions = {}, feeds: Map<string, Tensor> = new Map(), valueFeeds: ReadonlyMap<string, OtherValue> = new Map()): Map<string, Tensor> {
    const rng = new Rng(options.seed ?? 0);
    const known = this.boundDims(feeds);
    const out = new Map(feeds);
    const ranges = this.inputs.some((s) => !feeds.has(s.name) && (s.role === 'tokens' || s.role === 'labels'))
      ? this.idRanges(options, feeds, known, valueFeeds)
      : new Map<string, number>();
    for (const spec of this.inputs) {
      if (out.has(spec.name) || spec.role === 'value') continue;
      const shape = this.sampleShape(spec, options, known);
      const n = sizeOf(shape);
      let t: Tensor;
      if (spec.role === 'float') {
        const data = allocate(this.floatDtype, n);
        for (let i = 0; i < n; i++) data[i] = rng.normal();
        t = new Tensor(data, shape);
      } else if (spec.role === 'bool') {
        t = new Tensor(allocate('bool', n).fill(1), shape);
      } else {
        const high = own(options.intRange, spec.name) ?? ranges.get(spec.name) ?? 2;
        if (!(Number.isInteger(high) && high >= 1)) throw new OnnxImportError('BAD_INPUT', `cannot sample ids for input '${spec.name}': the id range is ${high} (the table it indexes is empty?); pass options.intRange`);
        const data = allocate('int32', n);
        for (let i = 0; i < n; i++) data[i] = rng.int(high);
        t = new Tensor(data, shape);
      }
      t.name = spec.name;
      out.set(spec.name, t);
    }
    return out;
  }

  /** Symbolic dims bound by fed inputs. */
  private boundDims(feeds: Map<string, Tensor>): Map<string, number> {
    const known = new Map<string, number>();
    for (const spec of this.inputs) {
      const t = feeds.get(spec.name);
      spec.dims?.forEach((d, i) => {
        if (t && typeof d === 'string' && i < t.rank) known.set(d, t.shape[i]);
      });
    }
    return known;
  }

  /** The shape a sampled input gets, checked to be a tensor the engine can hold. */
  private sampleShape(spec: OnnxInputSpec, options: SampleOptions, known: ReadonlyMap<string, number>): number[] {
    const shape = this.resolveShape(spec, options, known);
    try {
      checkSize(sizeOf(shape), `sample input '${spec.name}' ${formatShape(shape)}`);
    } catch (e) {
      throw new OnnxImportError('BAD_INPUT', (e as Error).message);
    }
    return shape;
  }

  /** @internal Shapes of the inputs sampleInputs would make (those not in `feeds`). */
  inputShapes(options: SampleOptions, feeds: Map<string, Tensor>): Map<string, number[]> {
    const known = this.boundDims(feeds);
    const out = new Map<string, number[]>();
    for (const spec of this.inputs) if (!feeds.has(spec.name) && spec.role !== 'value') out.set(spec.name, this.sampleShape(spec, options, known));
    return out;
  }

  /** Id ranges of token / label inputs: the size of the table or class dim they index. */
  private idRanges(options: SampleOptions, feeds: Map<string, Tensor>, known: ReadonlyMap<string, number>, valueFeeds: ReadonlyMap<string, OtherValue>): Map<string, number> {
    const ranges = new Map<string, number>();
    const pending: OnnxInputSpec[] = [];
    for (const spec of this.inputs) {
      if (feeds.has(spec.name) || !spec.rangeFrom || own(options.intRange, spec.name) !== undefined) continue;
      const node = this.nodeByName.get(spec.rangeFrom!.node)!;
      const source = node.inputs[spec.rangeFrom.input];
      const init = this.parameters.get(source) ?? this.buffers.get(source);
      if (init && spec.rangeFrom.dim < init.rank) ranges.set(spec.name, init.shape[spec.rangeFrom.dim]);
      else pending.push(spec);
    }
    if (pending.length === 0) return ranges;
    // The indexed tensor is computed (e.g. loss scores): probe its shape with one forward pass
    // on zero ids (valid for any table), without gradients. Cached per input signature.
    const zeros = new Map(feeds);
    for (const spec of this.inputs) {
      if (zeros.has(spec.name) || spec.role === 'value') continue;
      const shape = this.sampleShape(spec, options, known);
      const n = sizeOf(shape);
      zeros.set(spec.name, isFloatType(spec.dataType) ? new Tensor(allocate(this.floatDtype, n), shape)
        : spec.dataType === DataType.BOOL ? new Tensor(allocate('bool', n).fill(1), shape) : new Tensor(allocate('int32', n), shape));
    }
    const plan = this.plan(zeros, valueFeeds);
    const missing = pending.filter((s) => !plan.ranges.has(s.name));
    if (missing.length) {
      const values = noGrad(() => this.execute(zeros, {}, {}, valueFeeds).values);
      for (const spec of missing) {
        const node = this.nodeByName.get(spec.rangeFrom!.node)!;
        const v = values.get(node.inputs[spec.rangeFrom!.input]);
        if (v && spec.rangeFrom!.dim < v.tensor.rank) plan.ranges.set(spec.name, v.tensor.shape[spec.rangeFrom!.dim]);
      }
    }
    for (const spec of pending) {
      const r = plan.ranges.get(spec.name);
      if (r !== undefined) ranges.set(spec.name, r);
    }
    return ranges;
  }

  /** Checks and converts user feeds (unknown names, dtypes, fixed dims, consistent symbolic dims). */
  /** @internal */
  prepareFeeds(feeds: Feeds | undefined, options: SampleOptions): Map<string, Tensor> {
    const out = new Map<string, Tensor>();
    if (!feeds) return out;
    const symbols = new Map<string, { value: number; from: string }>();
    for (const [name, raw] of Object.entries(feeds)) {
      const spec = this.inputSpecs.get(name);
      if (!spec) {
        if (this.parameters.has(name) || this.buffers.has(name)) throw new OnnxImportError('BAD_INPUT', `'${name}' is an initializer, not a graph input; change model.parameters / model.buffers instead of feeding it`);
        throw new OnnxImportError('BAD_INPUT', `unknown input '${name}'; the model's inputs are ${this.inputs.map((s) => `'${s.name}'`).join(', ') || '(none)'}`);
      }
      if (spec.role === 'value') continue; // prepareValueFeeds
      if (isOtherValue(raw)) throw new OnnxImportError('BAD_INPUT', `input '${name}' is a ${spec.elemType} tensor, got ${describeValue(raw)}`);
      let t: Tensor;
      if (raw instanceof Tensor) t = raw;
      else t = makeConstant(raw, this.resolveShape(spec, options), 'float64');
      const want = isFloatType(spec.dataType) ? this.floatDtype : spec.dataType === DataType.BOOL ? 'bool' : 'int32';
      if (t.dtype !== want) {
        if (t.requiresGrad) throw new OnnxImportError('BAD_INPUT', `input '${name}' requires grad but is ${t.dtype}; this run is ${want}: feed it as ${want}`);
        if (want === 'int32') {
          for (let i = 0; i < t.size; i++) if (!Number.isInteger(t.data[i])) throw new OnnxImportError('BAD_INPUT', `input '${name}' must hold integers (${spec.elemType}), got ${t.data[i]} at position ${i}`);
        }
        t = convert(t, want, `input '${name}'`);
      }
      if (spec.dims) {
        if (t.rank !== spec.dims.length) throw new OnnxImportError('BAD_INPUT', `input '${name}' must have rank ${spec.dims.length} ${describeShape(spec.dims)}, got shape ${formatShape(t.shape)}`);
        spec.dims.forEach((d, i) => {
          if (typeof d === 'number' && d !== t.shape[i]) throw new OnnxImportError('BAD_INPUT', `input '${name}' must have shape ${describeShape(spec.dims)}, got ${formatShape(t.shape)} (dim ${i})`);
          if (typeof d === 'string') {
            const prev = symbols.get(d);
            if (prev && prev.value !== t.shape[i]) throw new OnnxImportError('BAD_INPUT', `symbolic dim '${d}' is ${prev.value} in input '${prev.from}' but ${t.shape[i]} in input '${name}'`);
            symbols.set(d, { value: t.shape[i], from: name });
          }
        });
      }
      out.set(name, t);
    }
    return out;
  }

  /**
   * @internal The feeds of the inputs that are not engine tensors (role 'value': sequences, optionals, string
   * tensors), checked against the declared kind, with float elements in this run's dtype. Every such input
   * must be fed: nothing says how long a sample sequence would be or what strings mean.
   */
  prepareValueFeeds(feeds: Feeds | undefined): Map<string, OtherValue> {
    const out = new Map<string, OtherValue>();
    for (const spec of this.inputs) {
      if (spec.role !== 'value') continue;
      const what = spec.valueKind === 'tensor' ? 'a string tensor' : `${spec.valueKind === 'optional' ? 'an' : 'a'} ${spec.valueKind}`;
      const raw = own(feeds, spec.name);
      if (raw === undefined) throw new OnnxImportError('BAD_INPUT', `input '${spec.name}' is ${what}; no sample data can be made up for it: feed it (as ${spec.valueKind === 'tensor' ? 'a StringTensor' : spec.valueKind === 'optional' ? 'an OnnxOptional' : 'an OnnxSequence'})`);
      const fits = spec.valueKind === 'sequence' ? raw instanceof OnnxSequence : spec.valueKind === 'optional' ? raw instanceof OnnxOptional : raw instanceof StringTensor;
      if (!fits) throw new OnnxImportError('BAD_INPUT', `input '${spec.name}' is ${what}, got ${raw instanceof Tensor || isOtherValue(raw) ? describeValue(raw) : 'plain numbers'}`);
      out.set(spec.name, this.conformValue(raw as OtherValue, spec.name));
    }
    return out;
  }

  /** A fed sequence / optional with its float tensors in this run's dtype (as prepareFeeds does for tensors). */
  private conformValue(v: OtherValue, name: string): OtherValue {
    const element = <T extends RunValue>(t: T, what: string): T => {
      if (!(t instanceof Tensor) || !isFloat(t.dtype) || t.dtype === this.floatDtype) return t;
      if (t.requiresGrad) throw new OnnxImportError('BAD_INPUT', `${what} requires grad but is ${t.dtype}; this run is ${this.floatDtype}: feed it as ${this.floatDtype}`);
      return convert(t, this.floatDtype, what) as T;
    };
    if (v instanceof OnnxSequence) return new OnnxSequence(v.items.map((t, i) => element(t, `input '${name}' element ${i}`)), v.elemKind === 'float32' || v.elemKind === 'float64' ? this.floatDtype : v.elemKind);
    if (v instanceof OnnxOptional && v.value !== null) return new OnnxOptional(element(v.value instanceof OnnxSequence ? (this.conformValue(v.value, name) as OnnxSequence) : v.value, `input '${name}'`));
    return v;
  }

  // ---------------------------------------------------------------- running

  private plan(inputs: Map<string, Tensor>, valueInputs: ReadonlyMap<string, OtherValue> = new Map()): Plan {
    // Fed sequences / optionals / strings are part of the signature: a Shape of an element they hold is folded too.
    const others = [...valueInputs].map(([k, v]) => `${k}:${valueSignature(v)}`).sort().join(';');
    const key = `${this.floatDtype}|${[...inputs].map(([k, t]) => `${k}:${t.dtype}${formatShape(t.shape)}`).sort().join(';')}${others ? `|${others}` : ''}`;
    let plan = this.plans.get(key);
    if (!plan) {
      plan = { folded: new Map(), foldedNodes: new Set(), ranges: new Map() };
      if (this.plans.size > 32) this.plans.clear();
      this.plans.set(key, plan);
    }
    return plan;
  }

  /**
   * Evaluates the live graph on `inputs` (all graph inputs present, in the model's dtypes). `env`
   * replaces the model's state for a shape-only dry run (memory.ts): its own plan, float dtype and
   * stand-ins for the initializers, so nothing the real run uses is touched. `valueInputs` are the inputs that
   * are not engine tensors (prepareValueFeeds); such values of the run come back in `others`.
   */
  execute(inputs: Map<string, Tensor>, options: RunOptions, env: ExecEnv = {}, valueInputs: ReadonlyMap<string, OtherValue> = new Map()): { values: Map<string, OnnxValue>; others: Map<string, OnnxOtherValue>; bufferUpdates: Map<string, Tensor> } {
    const plan = env.plan ?? this.plan(inputs, valueInputs);
    const parameters = env.parameters ?? this.parameters;
    const buffers = env.buffers ?? this.buffers;
    const values = new Map<string, OnnxValue>();
    const foldable = new Set<string>();
    // Values whose shapes follow from the plan's key (the input shapes) and constants alone: a shape-only op
    // (Shape, Size) on one of them is folded. A value shaped by a graph input's data (Slice up to a fed index,
    // Reshape to a fed shape) is not, or a later run with other data would reuse the first run's shape.
    const shapeKnown = new Set<string>();
    const rng = new Rng((options.seed ?? 0) ^ 0x0d0e);
    const state: RunState = { options, rng, dtype: env.dtype ?? this.floatDtype, env };
    const bufferUpdates = new Map<string, Tensor>();
    const retain = options.retainGrad === true ? null : new Set(options.retainGrad || []);
    const moduleOf = (name: string) => {
      const parts = name.split('.');
      parts.pop();
      return this.modules.has(parts.join('.')) ? parts.join('.') : '';
    };
    const put = (v: OnnxValue) => {
      if (options.onValue) {
        // The callback may keep the value past a recycling step (engine/recycling.ts), unless it says it does not.
        if (!isTransientCallback(options.onValue)) keepTensor(v.tensor);
        const r = options.onValue(v);
        if (r instanceof Tensor) v.tensor = r;
      }
      values.set(v.name, v);
    };
    // Sequences, optionals and string tensors: beside the tensors, never folded, never seen by onValue.
    const others = new Map<string, OnnxOtherValue>();
    for (const [name, value] of valueInputs) others.set(name, { name, value, kind: 'input', node: null, outputIndex: 0, modulePath: '' });
    for (const [name, t] of inputs) put({ name, tensor: t, kind: 'input', node: null, outputIndex: 0, modulePath: '', folded: false });
    for (const [name, t] of parameters) put({ name, tensor: t, kind: 'parameter', node: null, outputIndex: 0, modulePath: moduleOf(name), folded: false });
    for (const [name, t] of buffers) {
      put({ name, tensor: t, kind: 'buffer', node: null, outputIndex: 0, modulePath: moduleOf(name), folded: !isFloat(t.dtype) });
      if (!isFloat(t.dtype)) foldable.add(name);
    }
    for (const name of values.keys()) shapeKnown.add(name); // inputs (shapes in the plan's key), parameters, buffers
    // No onValue (it sees and may hook every value), not every value retained, float32, a real run (not a dry run).
    const fusable = options.fuseActivations !== false && !options.onValue && options.retainGrad !== true && state.dtype === 'float32' && !env.plan;
    const chains = fusable ? (this.geluChains ??= findGeluChains(this.graph, this.liveIndex, this.outputNames)) : undefined;

    for (const node of this.liveNodes) {
      if (plan.foldedNodes.has(node.index)) {
        node.outputs.forEach((o, i) => {
          if (o === '') return;
          foldable.add(o);
          shapeKnown.add(o);
          put({ name: o, tensor: plan.folded.get(o)!, kind: 'node', node, outputIndex: i, modulePath: node.modulePath, folded: true });
        });
        continue;
      }
      const handler = this.handler(node);
      if (!handler) throw this.unsupportedError(node);
      const ins = node.inputs.map((n): RunValue | null => {
        if (n === '') return null;
        const v = values.get(n) ?? others.get(n);
        if (!v) throw new OnnxImportError('INVALID_MODEL', `${describeNode(node)} reads '${n}', which has no value (a graph input was not provided?)`, { node });
        return 'tensor' in v ? v.tensor : v.value;
      });
      const ctx = this.context(node, state, (n) => { const v = values.get(n) ?? others.get(n); return v && ('tensor' in v ? v.tensor : v.value); });
      const shapeFrom = handler.shapeFrom;
      const outputShapesKnown = node.inputs.every((n, i) => n === '' || foldable.has(n) || (shapeKnown.has(n) && !(shapeFrom === 'all' || shapeFrom?.includes(i))))
        && (!node.implicitInputs || node.implicitInputs.every((n) => foldable.has(n)));
      // A control-flow node is constant only when the outer values its bodies read are, and its bodies draw no random numbers.
      const isFolded = !handler.stochastic && ((handler.shapeOnly && outputShapesKnown) || (node.inputs.every((n) => n === '' || foldable.has(n))
        && (!node.implicitInputs || (node.implicitInputs.every((n) => foldable.has(n)) && !this.bodiesAreStochastic(node)))));
      const outs = this.runNode(node, handler, ctx, ins, isFolded, env);
      if (ctx.dtype === 'float64' && this.declaredFloat === 'float32' && this.integerBound.has(node.index)) {
        // A float path that only computes an integer (T5's position buckets): float32 as the export declared it.
        // No gradient crosses the integer it ends in, so the rounded copy needs none.
        outs.forEach((t, i) => {
          if (t instanceof Tensor && t.dtype === 'float64' && t.hasHostData) outs[i] = mapValues(t, 'float64', Math.fround, `${describeNode(node)} output`);
        });
      }
      let allFolded = true;
      node.outputs.forEach((o, i) => {
        if (o === '') return;
        const t = outs[i];
        if (!t) {
          const used = (this.graph.consumers.get(o) ?? []).some((c) => this.liveIndex[c.node] === 1) || this.outputNames.has(o);
          if (used) throw new OnnxImportError('NODE_FAILED', `${describeNode(node)} did not produce its output ${i} ('${o}'), which the graph uses`, { node });
          allFolded = false;
          return;
        }
        if (!(t instanceof Tensor)) {
          others.set(o, { name: o, value: t, kind: 'node', node, outputIndex: i, modulePath: node.modulePath });
          allFolded = false;
          return;
        }
        const folded = isFolded && !t.requiresGrad;
        if (outputShapesKnown || folded) shapeKnown.add(o);
        if (folded) {
          foldable.add(o);
          plan.folded.set(o, t);
          keepTensor(t); // cached for later runs: never recycled
        } else {
          allFolded = false;
        }
        if (t.requiresGrad && !t.isLeaf && (retain === null || retain.has(o))) t.retainGrad();
        if (node.opType === 'BatchNormalization' && (i === 1 || i === 2) && t) {
          const buf = node.inputs[i + 2];
          if (buffers.has(buf)) bufferUpdates.set(buf, t);
        }
        put({ name: o, tensor: t, kind: 'node', node, outputIndex: i, modulePath: node.modulePath, folded });
      });
      if (allFolded && isFolded) plan.foldedNodes.add(node.index);
      const chain = chains?.get(node.index);
      if (chain && !chain.interior.some((v) => retain?.has(v))) fuseGelu(chain, (n) => values.get(n)?.tensor);
    }
    return { values, others, bufferUpdates };
  }

  /**
   * Runs one node's handler (a graph node or a body node). `isFolded`: constant inputs, so it runs on the
   * host even under a device backend (handlers read their values synchronously; results are cached as host
   * constants). Failures become OnnxImportErrors naming the node.
   */
  private runNode(node: OnnxNode, handler: AnyOpHandler, ctx: OpContext, ins: (RunValue | null)[], isFolded: boolean, env: ExecEnv): (RunValue | null)[] {
    const run = runnerOf(node, handler, ins);
    const attempt = (inputs: (RunValue | null)[]) => (isFolded ? onHost(() => run(ctx, inputs)) : run(ctx, inputs));
    let result;
    try {
      try {
        result = attempt(ins);
      } catch (e) {
        // A dry run has no values: an op that reads them runs on zeros of the same shapes instead.
        if (!(env.hostValues && e instanceof TensorOnDeviceError)) throw e;
        const zeros = ins.map((t) => (t instanceof Tensor && t.isOnDevice ? env.hostValues!(t) : t));
        result = onHost(() => run(ctx, zeros));
      }
    } catch (e) {
      if (e instanceof MemoryLimitError) throw e;
      if (e instanceof OnnxImportError) {
        if (e.node) throw e;
        throw new OnnxImportError(e.code, `${describeNode(node)}: ${e.message}`, { node, cause: e });
      }
      const shapes = ins.map((t, i) => `${node.inputs[i] || '∅'}: ${t instanceof Tensor ? `${t.dtype}${formatShape(t.shape)}` : t ? describeValue(t) : 'none'}`).join(', ');
      throw new OnnxImportError('NODE_FAILED', `${describeNode(node)} failed: ${(e as Error).message} (inputs ${shapes})`, { node, cause: e });
    }
    return Array.isArray(result) ? (result as (RunValue | null)[]) : [result as RunValue | null];
  }

  /** A body's initializer as a constant (no gradient: ONNX bodies hold constants, not parameters), decoded once per dtype. */
  private bodyConstant(t: TensorProto, dtype: FloatDType, where: string): Tensor {
    let byProto = this.bodyConstants.get(dtype);
    if (!byProto) this.bodyConstants.set(dtype, (byProto = new WeakMap()));
    let c = byProto.get(t);
    if (!c) byProto.set(t, (c = tensorFromProto(t, dtype, `initializer '${t.name}' of ${where}`)));
    return c;
  }

  /** Whether any node of the node's bodies (nested ones included) is random: such a node is never folded. */
  private bodiesAreStochastic(node: OnnxNode): boolean {
    return (node.subgraphs ?? []).some((sub) => sub.nodes.some((n) => this.handler(n)?.stochastic || this.bodiesAreStochastic(n)));
  }

  /**
   * Runs a subgraph of `owner` once: its inputs bound to `inputs`, its initializers as constants, every
   * other name looked up in `outer` (the enclosing scopes), its nodes eagerly in order. Body values are
   * per iteration and not folded (the owner folds as a whole when it may).
   */
  private runBody(owner: OnnxNode, sub: OnnxSubgraph, inputs: readonly (RunValue | null)[], outer: (name: string) => RunValue | undefined, state: RunState): RunValue[] {
    const where = `the ${sub.attribute} of ${describeNode(owner)}`;
    if (inputs.length !== sub.inputs.length) {
      throw new OnnxImportError('INVALID_MODEL', `${where} declares ${sub.inputs.length} inputs, but ${owner.opType} passes it ${inputs.length}`, { node: owner });
    }
    const local = new Map<string, RunValue>();
    sub.inputs.forEach((v, i) => {
      const t = inputs[i];
      if (t) local.set(v.name, t);
    });
    for (const t of sub.initializers) local.set(t.name, this.bodyConstant(t, state.dtype, where));
    const lookup = (name: string) => local.get(name) ?? outer(name);
    for (const node of sub.nodes) {
      const handler = this.handler(node);
      if (!handler) throw this.unsupportedError(node);
      const ins = node.inputs.map((n) => {
        if (n === '') return null;
        const t = lookup(n);
        if (!t) throw new OnnxImportError('INVALID_MODEL', `${describeNode(node)} reads '${n}', which has no value in its scope`, { node });
        return t;
      });
      const outs = this.runNode(node, handler, this.context(node, state, lookup), ins, false, state.env);
      node.outputs.forEach((o, i) => {
        const t = outs[i];
        if (o !== '' && t) local.set(o, t);
      });
    }
    return sub.outputs.map((o) => {
      const t = lookup(o.name);
      if (!t) throw new OnnxImportError('INVALID_MODEL', `${where}: its output '${o.name}' has no value`, { node: owner });
      return t;
    });
  }

  private context(node: OnnxNode, state: RunState, scope: (name: string) => RunValue | undefined): OpContext {
    const { options, rng, dtype } = state;
    return {
      node,
      // float64: float attributes (eps, alpha) as the decimals PyTorch had, not float32-rounded (context.ts).
      attrs: dtype === 'float64' ? node.attrs.asWritten() : node.attrs,
      opset: this.opsets[node.domain] ?? this.opsetVersion,
      producer: this.producer.name,
      dtype,
      training: options.training,
      rng,
      updateBuffers: options.updateBuffers ?? false,
      wants: (i) => (node.outputs[i] ?? '') !== '',
      declaredType: (i) => this.declaredTypes.get(node.inputs[i] ?? '') ?? 0,
      fail: (code: OnnxErrorCode, message: string): never => {
        throw new OnnxImportError(code, `${describeNode(node)}: ${message}`, { node });
      },
      constant: (values, shape, kind) => makeConstant(values, shape, kind === 'float' ? dtype : kind),
      body: (attribute: string): Body => {
        const sub = node.subgraphs?.find((g) => g.attribute === attribute);
        if (!sub) throw new OnnxImportError('INVALID_MODEL', `${describeNode(node)}: required graph attribute '${attribute}' is missing`, { node });
        return { graph: sub, run: (inputs) => this.runBody(node, sub, inputs, scope, state) };
      },
    };
  }

  /**
   * Runs the model: `feeds` by input name (any input left out is sampled from the options), then
   * the loss. Call backward(result.loss) to get parameter gradients (model.parameters .grad).
   */
  run(feeds?: Feeds, options: RunOptions = {}): OnnxRunResult {
    try {
      const memory = options.memoryBudget !== undefined ? this.estimateMemory(feeds, options) : undefined;
      if (!memory) return this.runUnchecked(feeds, options);
      // The estimate passed: the run itself is metered too, as a backstop for what a dry run cannot see.
      const { close } = openMeter(Math.max(options.memoryBudget!, memory.peak), 'this run');
      try {
        return { ...this.runUnchecked(feeds, options), memory };
      } finally {
        close();
      }
    } catch (e) {
      throw asImportError(e, 'could not run the model');
    }
  }

  /**
   * Estimates the tensor memory of run(feeds, options) and the backward after it, with a shape-only
   * dry run (nothing of the real run is allocated); with options.memoryBudget, refuses a run above it
   * (OnnxImportError MEMORY_BUDGET naming the estimate). See memory.ts.
   */
  estimateMemory(feeds?: Feeds, options: RunOptions = {}): MemoryEstimate {
    try {
      return estimateRunMemory(this, feeds, options);
    } catch (e) {
      throw asImportError(e, 'could not estimate the memory of the run');
    }
  }

  private runUnchecked(feeds: Feeds | undefined, options: RunOptions): OnnxRunResult {
    if (options.dtype) this.setDtype(options.dtype);
    const fed = this.prepareFeeds(feeds, options);
    const valueFeeds = this.prepareValueFeeds(feeds);
    const inputs = this.sampleInputs(options, fed, valueFeeds);
    const { values, others, bufferUpdates } = this.execute(inputs, options, {}, valueFeeds);
    const outputs = new Map<string, Tensor>();
    for (const o of this.graph.outputs) {
      const v = values.get(o.name);
      if (v) outputs.set(o.name, v.tensor);
      else if (!others.has(o.name)) throw new OnnxImportError('INVALID_MODEL', `graph output '${o.name}' has no value after the run`);
    }
    const { loss, info, targets } = this.buildLoss(options.loss ?? 'auto', { outputs, values, inputs }, options);
    // Handed to the caller: they stay valid after a recycling step (engine/recycling.ts).
    for (const t of outputs.values()) keepTensor(t);
    keepTensor(loss);
    return {
      outputs, loss, lossInfo: info, inputs, targets, tensorsByName: values, otherValues: others, bufferUpdates,
      value(name: string): Tensor {
        const v = values.get(name);
        if (!v) throw new OnnxImportError('BAD_INPUT', `no value named '${name}' in this run`);
        return v.tensor;
      },
      valuesOfModule(path: string, deep = false): OnnxValue[] {
        return [...values.values()].filter((v) => v.kind === 'node' && (v.modulePath === path || (deep && (path === '' || v.modulePath.startsWith(`${path}.`)))));
      },
    };
  }

  // ---------------------------------------------------------------- losses

  /** A language-model shape: the output's last dim is the size of an embedding table fed by an int input. */
  private languageModelInput(out: Tensor): string | null {
    if (out.rank < 3) return null;
    for (const spec of this.inputs) {
      if (spec.role !== 'tokens' || !spec.rangeFrom) continue;
      const node = this.nodeByName.get(spec.rangeFrom!.node)!;
      const table = this.parameters.get(node.inputs[0]) ?? this.buffers.get(node.inputs[0]);
      if (table && table.shape[spec.rangeFrom.dim] === out.shape[out.rank - 1]) return spec.name;
    }
    return null;
  }

  private pickOutput(ctx: LossContext, name: string | undefined, what: string): { name: string; tensor: Tensor } {
    if (name !== undefined) {
      const v = ctx.values.get(name);
      if (!v) throw new OnnxImportError('BAD_LOSS', `${what}: no value named '${name}' (graph outputs: ${[...ctx.outputs.keys()].join(', ')})`);
      return { name, tensor: v.tensor };
    }
    for (const [n, t] of ctx.outputs) if (isFloat(t.dtype) && t.size > 1) return { name: n, tensor: t };
    for (const [n, t] of ctx.outputs) if (isFloat(t.dtype)) return { name: n, tensor: t };
    throw new OnnxImportError('BAD_LOSS', `${what}: the model has no float output`);
  }

  /** @internal */
  buildLoss(spec: LossSpec, ctx: LossContext, options: RunOptions): { loss: Tensor | null; info: LossInfo; targets: Tensor | null } {
    const rng = new Rng(((options.seed ?? 0) + 1) * 7919);
    const scalarOutput = [...ctx.outputs].find(([, t]) => isFloat(t.dtype) && t.size === 1 && t.rank === 0);
    if (typeof spec === 'function') {
      const loss = spec(ctx);
      if (!(loss instanceof Tensor) || loss.size !== 1) throw new OnnxImportError('BAD_LOSS', 'the loss function must return a one-element tensor');
      return { loss, info: { kind: 'custom', description: 'custom loss function' }, targets: null };
    }
    if (spec === 'none') return { loss: null, info: { kind: 'none', description: 'no loss' }, targets: null };
    if (spec === 'graph' || (spec === 'auto' && scalarOutput)) {
      if (!scalarOutput) throw new OnnxImportError('BAD_LOSS', `loss 'graph': the model has no scalar float output (outputs: ${[...ctx.outputs].map(([n, t]) => `${n} ${formatShape(t.shape)}`).join(', ')})`);
      return { loss: scalarOutput[1], info: { kind: 'graph', output: scalarOutput[0], description: `the model's own loss output '${scalarOutput[0]}'` }, targets: null };
    }
    if (typeof spec === 'object' && spec.kind === 'output') {
      const { name, tensor } = this.pickOutput(ctx, spec.name, "loss 'output'");
      if (tensor.size !== 1 || !isFloat(tensor.dtype)) throw new OnnxImportError('BAD_LOSS', `loss output '${name}' must be a float scalar, got ${tensor.dtype}${formatShape(tensor.shape)}`);
      return { loss: tensor, info: { kind: 'output', output: name, description: `value '${name}'` }, targets: null };
    }
    if (typeof spec === 'object' && spec.kind === 'mse') {
      const { name, tensor } = this.pickOutput(ctx, spec.output, "loss 'mse'");
      const target = convert(spec.target, tensor.dtype);
      if (formatShape(target.shape) !== formatShape(tensor.shape)) throw new OnnxImportError('BAD_LOSS', `mse target shape ${formatShape(target.shape)} differs from output '${name}' ${formatShape(tensor.shape)}`);
      return { loss: E.mseLoss(tensor, target), info: { kind: 'mse', output: name, description: `mean squared error of '${name}' against the given target` }, targets: target };
    }
    const kind = typeof spec === 'object' ? spec.kind : spec;
    const outName = typeof spec === 'object' ? (spec as { output?: string }).output : undefined;
    const { name, tensor } = this.pickOutput(ctx, outName, `loss '${kind}'`);
    if (kind === 'meanSquare' || (kind === 'auto' && tensor.rank !== 2 && !this.languageModelInput(tensor))) {
      return { loss: E.mean(E.square(tensor)), info: { kind: 'meanSquare', output: name, description: `mean of squares of '${name}'` }, targets: null };
    }
    // Cross-entropy: class dim last for language-model logits [B, T, V], else dim 1 ([N, C, ...]).
    const given = typeof spec === 'object' && spec.kind === 'crossEntropy' ? spec : undefined;
    const lmInput = this.languageModelInput(tensor);
    const ignoreIndex = given?.ignoreIndex ?? -100;
    let targets: Tensor;
    let description: string;
    const classesLast = lmInput !== null || (given?.targets !== undefined && given.targets.rank === tensor.rank - 1 && formatShape(given.targets.shape) === formatShape(tensor.shape.slice(0, -1)) && tensor.rank > 2);
    if (given?.targets) {
      targets = convert(given.targets, 'int32', 'cross-entropy targets');
      description = `cross-entropy of '${name}' against the given targets`;
    } else if (lmInput) {
      // next-token targets: targets[..., t] = ids[..., t + 1]; the last position is ignored
      const ids = ctx.inputs.get(lmInput)!;
      const t = ids.shape[ids.rank - 1];
      const data = new Int32Array(ids.size);
      for (let i = 0; i < ids.size; i++) data[i] = i % t === t - 1 ? ignoreIndex : ids.data[i + 1];
      targets = new Tensor(data, ids.shape);
      description = `cross-entropy of '${name}' on next-token targets from input '${lmInput}' (last position ignored)`;
    } else {
      if (tensor.rank < 2) throw new OnnxImportError('BAD_LOSS', `cross-entropy needs class scores [N, C, ...], output '${name}' is ${formatShape(tensor.shape)}`);
      const c = tensor.shape[1];
      const shape = [tensor.shape[0], ...tensor.shape.slice(2)];
      const data = new Int32Array(sizeOf(shape));
      for (let i = 0; i < data.length; i++) data[i] = rng.int(c);
      targets = new Tensor(data, shape);
      description = `cross-entropy of '${name}' on random labels in [0, ${c})`;
    }
    let loss: Tensor;
    try {
      loss = classesLast
        ? E.crossEntropy(E.reshape(tensor, [-1, tensor.shape[tensor.rank - 1]]), E.reshape(targets, [-1]), { ignoreIndex })
        : E.crossEntropy(tensor, targets, { ignoreIndex });
    } catch (e) {
      throw new OnnxImportError('BAD_LOSS', `cross-entropy on '${name}' ${formatShape(tensor.shape)}: ${(e as Error).message}`, { cause: e });
    }
    return { loss, info: { kind: 'crossEntropy', output: name, description, classAxis: classesLast ? -1 : 1, ignoreIndex }, targets };
  }
}

/**
 * Imports an ONNX model from its bytes (a Uint8Array: no file system access, so it runs in Node
 * and in the browser). Throws OnnxImportError with a code saying what is wrong.
 */
export function loadOnnx(bytes: Uint8Array, options: LoadOptions = {}): OnnxModel {
  const proto = decodeModel(bytes);
  try {
    return new OnnxModel(proto, options);
  } catch (e) {
    throw asImportError(e, 'could not import the model');
  }
}

/** Every failure as an OnnxImportError: a memory limit as MEMORY_BUDGET, anything else unexpected wrapped with `what`. */
function asImportError(e: unknown, what: string): OnnxImportError {
  if (e instanceof OnnxImportError) return e;
  if (e instanceof MemoryLimitError) return new OnnxImportError('MEMORY_BUDGET', `${e.message}, above the memory budget (setting ${BUDGET_HINT})`, { cause: e });
  return new OnnxImportError('INVALID_MODEL', `${what}: ${(e as Error)?.message ?? String(e)}`, { cause: e });
}

/** An own property of a plain options object (never one inherited from Object.prototype, such as 'constructor'). */
function own<T>(record: Readonly<Record<string, T>> | undefined, key: string): T | undefined {
  return record !== undefined && Object.prototype.hasOwnProperty.call(record, key) ? record[key] : undefined;
}

/** The kinds and shapes of a sequence / optional / string value (its part of a plan's signature). */
function valueSignature(v: OtherValue | SequenceElement | null): string {
  if (v === null) return 'none';
  if (v instanceof Tensor) return `${v.dtype}${formatShape(v.shape)}`;
  if (v instanceof StringTensor) return `string${formatShape(v.shape)}`;
  if (v instanceof OnnxSequence) return `seq(${v.items.map(valueSignature).join(',')})`;
  return `opt(${valueSignature(v.value)})`;
}

/**
 * How the executor calls a node's handler: a value handler (ValueOpHandler) gets any run value; a tensor
 * handler gets engine tensors only, and a sequence, optional or string tensor input is refused with
 * UNSUPPORTED_DTYPE naming the node and the input.
 */
function runnerOf(node: OnnxNode, handler: AnyOpHandler, ins: readonly (RunValue | null)[]): (ctx: OpContext, inputs: readonly (RunValue | null)[]) => ValueOpResult {
  if (handler.runValues) return (ctx, inputs) => handler.runValues!(ctx, inputs);
  ins.forEach((v, i) => {
    if (v !== null && !(v instanceof Tensor)) {
      throw new OnnxImportError('UNSUPPORTED_DTYPE', `${describeNode(node)}: input ${i} '${node.inputs[i]}' is ${describeValue(v)}; ${node.opType} runs on tensors of numbers and bool only`, { node });
    }
  });
  return (ctx, inputs) => handler.run!(ctx, inputs as readonly (Tensor | null)[]);
}
