/**
 * Inspects an ONNX model: one seeded forward + backward with the engine, traced per node, summarised
 * per module as an InspectionReport. This is what the webview worker runs.
 *
 * Asynchronous because a device backend (WebGPU) keeps values on the GPU: forward and backward only
 * encode work, hooks queue their reads (HostReads), and the values the report needs are read back
 * once after backward. On host backends every read is immediate and the numbers are unchanged.
 */
import { recyclingAsync } from '../recycling';
import { backward } from '../autograd';
import { getBackend } from '../backend/registry';
import { deviceIdle, deviceScope } from '../backend/dispatch';
import { isDeviceBackend } from '../backend/device';
import { readTensors } from '../tensor';
import { HostReads } from './hostReads';
import { ExternalData, Feeds, loadOnnx, LossSpec, OnnxModel, OnnxValue } from '../onnx';
import type { Tensor } from '../tensor';
import { InspectionRecorder, TracedOp, TracedParameter, WatchRequest, parentPath } from './collect';
import type { InspectionReport, ModuleKind } from './report';
import { explainZeroGradient } from './zeroReasons';
import { armAttentionCapture, findAttention } from './attention';
import { NonFiniteWatch, nonFinite, sourceOf } from './anomaly';
import { MemoryLimitError, openMeter } from '../memory';
import { OnnxImportError, describeEstimate, type MemoryEstimate, type OnnxRunResult, type RunOptions } from '../onnx';
import { RunCapture, RunCaptureRecorder } from './capture';

export interface InspectOptions {
  /** Bytes of the external data files the model names (e.g. `model.onnx.data`), by location. */
  externalData?: ExternalData;
  seed?: number;
  batch?: number;
  sequenceLength?: number;
  /** 'auto' | 'model' | 'cross-entropy' | 'next-token' | 'mse' */
  loss?: string;
  dtype?: 'float32' | 'float64';
  /**
   * How Dropout and BatchNormalization run: 'train' (default: batch statistics and dropping, as PyTorch
   * trains, whatever mode the export was made in) or 'eval' (running statistics, no dropout).
   */
  mode?: 'train' | 'eval';
  /** Values whose gradient to log: matched by source file basename and 1-based line, else by module. */
  watches?: { target: string; file: string; line: number; modulePath?: string }[];
  /** Initializers to keep frozen (e.g. LoRA base weights). Default: names containing 'base_layer' or '.base.'. */
  frozen?: (name: string) => boolean;
  /** Capture attention maps and their gradients for this sample (default 0); -1 turns capture off. */
  attentionSample?: number;
  /** Full loss specification (e.g. cross-entropy against given targets); overrides `loss`. */
  lossSpec?: LossSpec;
  /** Inputs to use instead of seeded samples, by graph input name. */
  feeds?: Feeds;
  onProgress?: (message: string) => void;
  /** When given, filled with every trainable parameter's gradient values (host copies), by name. */
  gradients?: Map<string, ArrayLike<number>>;
  /**
   * Bytes of tensor memory the inspection may take (forward and backward). Before anything runs, a
   * shape-only dry run estimates the peak; above the budget the inspection is refused (OnnxImportError
   * MEMORY_BUDGET naming the estimate). Default: no budget.
   */
  memoryBudget?: number;
  /** When given, called with what the run fed, used and computed (to repeat it in PyTorch). */
  onCapture?: (capture: RunCapture) => void;
}

function lossSpec(choice: string | undefined): LossSpec {
  switch (choice) {
    case 'model': return 'graph';
    case 'cross-entropy':
    case 'next-token': return 'crossEntropy';
    case 'mse': return 'meanSquare';
    default: return 'auto';
  }
}

function basename(file: string): string {
  return file.split(/[\\/]/).pop() ?? file;
}

/**
 * Module kinds the export can tell: the class name the exporter recorded (dynamo's class_hierarchy), else, for a
 * leaf module only, the PyTorch class its own ops unmistakably come from (a Gemm is a Linear). A container is never
 * named after one of its ops (a model whose first op is a Sigmoid is not a Sigmoid); without a recorded class it
 * gets no kind here, and the extension names it from the source (`self.attn = CausalSelfAttention(...)`).
 */
export function moduleKindInfo(model: OnnxModel): Map<string, ModuleKind> {
  const kinds = new Map<string, ModuleKind>();
  const byName = new Map(model.graph.nodes.map((n) => [n.name, n]));
  const isParameter = (name: string) => model.parameters.has(name) || model.buffers.has(name);
  for (const [path, m] of model.modules) {
    if (m.className) {
      kinds.set(path, { name: m.className.split('.').pop()!, from: 'export' });
      continue;
    }
    if (m.children.length > 0) continue;
    const nodes = m.nodes.map((n) => byName.get(n)).filter((n): n is NonNullable<typeof n> => n !== undefined);
    const name = leafKindFromOps(nodes.map((n) => ({ opType: n.opType, readsParameter: n.inputs.some(isParameter), weightRank: weightRank(model, n.inputs) })));
    if (name) kinds.set(path, { name, from: 'ops' });
  }
  return kinds;
}

/** Names only (the training record's kinds). */
export function moduleKinds(model: OnnxModel): Map<string, string> {
  return new Map([...moduleKindInfo(model)].map(([path, k]) => [path, k.name]));
}

function weightRank(model: OnnxModel, inputs: readonly string[]): number | undefined {
  for (const i of inputs) {
    const t = model.parameters.get(i) ?? model.buffers.get(i);
    if (t && t.rank >= 2) return t.rank;
  }
  return undefined;
}

/** Single-purpose ops of a leaf module and the torch.nn class they come from. */
const LEAF_OP_CLASSES: [string, string][] = [
  ['Relu', 'ReLU'], ['LeakyRelu', 'LeakyReLU'], ['Sigmoid', 'Sigmoid'], ['Tanh', 'Tanh'], ['Gelu', 'GELU'], ['Erf', 'GELU'],
  ['Elu', 'ELU'], ['Selu', 'SELU'], ['Softplus', 'Softplus'], ['HardSigmoid', 'Hardsigmoid'], ['HardSwish', 'Hardswish'],
  ['Softmax', 'Softmax'], ['LogSoftmax', 'LogSoftmax'], ['MaxPool', 'MaxPool'], ['AveragePool', 'AvgPool'],
  ['GlobalAveragePool', 'AdaptiveAvgPool'], ['GlobalMaxPool', 'AdaptiveMaxPool'], ['Dropout', 'Dropout'], ['Flatten', 'Flatten'],
];

/**
 * The torch.nn class a leaf module's own ops come from, or undefined when they do not say. Layers with weights
 * first (their ops are unambiguous), then single-purpose ops (an activation, a pool).
 */
export function leafKindFromOps(nodes: readonly { opType: string; readsParameter: boolean; weightRank?: number }[]): string | undefined {
  const has = (op: string, withParameter = false) => nodes.some((n) => n.opType === op && (!withParameter || n.readsParameter));
  const rank = nodes.find((n) => n.weightRank !== undefined)?.weightRank;
  if (has('Conv', true)) return rank && rank >= 3 && rank <= 5 ? `Conv${rank - 2}d` : 'Conv';
  if (has('ConvTranspose', true)) return rank && rank >= 3 && rank <= 5 ? `ConvTranspose${rank - 2}d` : 'ConvTranspose';
  if (has('Gemm', true) || has('MatMul', true)) return 'Linear';
  if (has('LayerNormalization')) return 'LayerNorm';
  if (has('BatchNormalization')) return 'BatchNorm';
  if (has('ReduceMean') && has('Sqrt') && has('Div') && nodes.some((n) => n.readsParameter)) return 'LayerNorm';
  if (has('Gather', true)) return 'Embedding';
  for (const [op, cls] of LEAF_OP_CLASSES) if (has(op)) return cls;
  return undefined;
}

export function inspectOnnx(bytes: Uint8Array, modelName: string, options: InspectOptions = {}): Promise<InspectionReport> {
  // Device buffers of this run are released when the report is built (the report holds plain numbers).
  return deviceScope(() => inspect(bytes, modelName, options));
}

async function inspect(bytes: Uint8Array, modelName: string, options: InspectOptions): Promise<InspectionReport> {
  const progress = options.onProgress ?? (() => {});
  progress('loading the model');
  const tLoad = performance.now();
  const frozen = options.frozen ?? ((name: string) => /(^|\.)base(_layer)?\./.test(name));
  const budget = options.memoryBudget;
  const model = loadOnnx(bytes, { frozen, dtype: options.dtype, memoryBudget: budget, externalData: options.externalData });
  const dtype = options.dtype ?? model.dtype;
  const loadMs = performance.now() - tLoad;
  const runOptions = {
    seed: options.seed ?? 0,
    batch: options.batch,
    seq: options.sequenceLength,
    loss: options.lossSpec ?? lossSpec(options.loss),
    dtype,
    training: (options.mode ?? 'train') === 'train',
  };

  // Before anything is allocated: the memory estimate (a shape-only dry run, which also checks the
  // declared shapes against the computed ones), refused above the budget.
  progress('estimating memory');
  const memory = model.estimateMemory(options.feeds, { ...runOptions, memoryBudget: budget });
  // The run itself is metered as a backstop for what the dry run could not follow.
  const meter = budget !== undefined ? openMeter(Math.max(budget, memory.peak), 'this inspection') : null;
  try {
    // A recycling step (engine/recycling.ts): the next inspection reuses this run's output arrays. The report
    // holds plain numbers, read inside.
    return await recyclingAsync(() => inspectRun(model, modelName, options, runOptions, memory, budget ?? null, loadMs));
  } catch (e) {
    if (e instanceof MemoryLimitError) throw new OnnxImportError('MEMORY_BUDGET', `${e.message}: the estimate before the run was ${describeEstimate(memory)}`, { cause: e });
    throw e;
  } finally {
    meter?.close();
  }
}

async function inspectRun(model: OnnxModel, modelName: string, options: InspectOptions, runOptions: RunOptions, memory: MemoryEstimate, budget: number | null, loadMs: number): Promise<InspectionReport> {
  const progress = options.onProgress ?? (() => {});
  const dtype = runOptions.dtype ?? model.dtype;
  progress('forward pass');
  const reads = new HostReads();
  const watch = new NonFiniteWatch(model, reads);
  const capture = options.onCapture ? new RunCaptureRecorder() : null;
  const t0 = performance.now();
  const run = model.run(options.feeds, { ...runOptions, onValue: capture ? (v) => (capture.onValue(v), watch.onValue(v)) : watch.onValue });
  // On a device backend the passes only encode work: wait for the GPU so the timings are the real ones.
  await deviceIdle();
  const forwardMs = performance.now() - t0;
  if (!run.loss) throw new OnnxImportError('BAD_LOSS', 'the run produced no loss to differentiate');
  // Nothing to differentiate: still report shapes and activations, and say why there are no gradients.
  const noGradient = run.loss.requiresGrad ? undefined : whyNoGradient(model);

  const { nodeValues, ops, params } = traceRun(model, run.tensorsByName);

  const recorder = new InspectionRecorder(params, ops, moduleKindInfo(model), reads);
  recorder.attach(resolveWatches(options.watches ?? [], nodeValues, ops));

  const disarm = watch.armBackward(nodeValues);

  const sample = options.attentionSample ?? 0;
  const batch = [...run.inputs.values()][0]?.shape[0] ?? 1;
  const attention = sample >= 0 ? armAttentionCapture(findAttention(model.graph), run.tensorsByName, batch, sample) : null;

  progress(noGradient ? 'no backward pass (nothing to differentiate)' : 'backward pass');
  const t1 = performance.now();
  if (!noGradient) backward(run.loss);
  await deviceIdle();
  const backwardMs = performance.now() - t1;
  recorder.detach();
  disarm();

  progress('reading results');
  const tSummary = performance.now();
  await reads.flush();
  await readTensors([run.loss, ...recorder.tensorsToRead(), ...(attention?.tensors() ?? [])]);
  const captured = attention?.collect() ?? [];
  if (options.gradients) for (const p of params) if (p.trainable && p.tensor.grad) options.gradients.set(p.name, p.tensor.grad.data);
  if (capture) options.onCapture!(await capture.collect(model, run, dtype, runOptions.training === false ? 'eval' : 'train'));

  progress('summarising');
  // Explain gradients that are zero or far below the median parameter's (rounding of a structural zero).
  const rmsOf = new Map(params.filter((p) => p.trainable && p.tensor.grad).map((p) => [p, rms(p.tensor.grad!)]));
  const sorted = [...rmsOf.values()].sort((a, b) => a - b);
  const median = sorted[sorted.length >> 1] ?? 0;
  for (const p of params) {
    if (!p.trainable) continue;
    const r = rmsOf.get(p);
    if (r === undefined || r === 0 || r < 1e-6 * median) p.zeroReason = explainZeroGradient(model.graph, p.name, (n) => model.parameters.get(n) ?? model.buffers.get(n));
  }
  const shapes = [...run.inputs.values()];
  const lossValue = run.loss.item();
  const report = recorder.report({
    model: { name: modelName, producer: `${model.producer.name} ${model.producer.version}`.trim(), opset: model.opsetVersion, parameterCount: [...model.parameters.values()].reduce((n, t) => n + t.size, 0) },
    backend: backendName(dtype),
    dtype,
    mode: runOptions.training === false ? 'eval' : 'train',
    settings: { seed: options.seed ?? 0, batch: shapes[0]?.shape[0] ?? 0, sequenceLength: options.sequenceLength, loss: run.lossInfo.description },
    loss: { kind: run.lossInfo.kind, value: lossValue, note: Number.isFinite(lossValue) ? undefined : explainNonFiniteLoss(lossValue, model, run, watch.first?.node) },
    noGradient,
    timings: { forwardMs, backwardMs, loadMs, summaryMs: 0 },
    memory: {
      peak: memory.peak, parameters: memory.parameters, gradients: memory.gradients, activations: memory.activations, budget,
      inputs: memory.inputs, backward: memory.backward, workspace: memory.workspace, complete: memory.complete,
    },
    warnings: [...model.warnings, ...memory.warnings].map((w) => w.message),
    firstNonFinite: watch.first && { node: watch.first.node, modulePath: watch.first.modulePath, phase: watch.first.phase, source: watch.first.source },
    attention: captured,
    exportNotes: model.exportNotes.length ? model.exportNotes : undefined,
    tokens: captured.length ? sampleTokens(model, run.inputs, sample) : undefined,
  });
  report.timings.summaryMs = performance.now() - tSummary;
  return report;
}

/** Why a run's loss does not require grad, in words. */
function whyNoGradient(model: OnnxModel): string {
  if (model.parameters.size === 0) {
    const frozen = model.initializers.filter((i) => /frozen/.test(i.reason)).length;
    const floats = model.initializers.filter((i) => /^(float|bfloat)/.test(i.elemType)).length;
    const why = model.initializers.length === 0
      ? 'it has no initializers (weights)'
      : frozen > 0 ? `its ${frozen} float initializer${frozen === 1 ? ' is' : 's are'} frozen`
        : floats === 0 ? `its ${model.initializers.length} initializer${model.initializers.length === 1 ? ' holds' : 's hold'} no float data`
          : `none of its ${floats} float initializer${floats === 1 ? '' : 's'} is read where a gradient flows (${model.initializers.find((i) => /^(float|bfloat)/.test(i.elemType))!.reason})`;
    return `nothing to differentiate: the model has no trainable parameters (${why}); shapes and activations are shown`;
  }
  return `nothing to differentiate: the loss does not depend on any of the ${model.parameters.size} trainable parameters; shapes and activations are shown`;
}

/** Why the loss is NaN or ±Inf, as far as the run shows (empty values, non-finite weights or inputs, the first bad op). */
function explainNonFiniteLoss(value: number, model: OnnxModel, run: OnnxRunResult, firstBadNode: string | undefined): string {
  const what = Number.isNaN(value) ? 'NaN' : value > 0 ? '+Inf' : '-Inf';
  const output = run.lossInfo.output ? run.tensorsByName.get(run.lossInfo.output)?.tensor : undefined;
  if (output && output.size === 0) return `the loss is ${what}: '${run.lossInfo.output}' is empty (shape [${output.shape.join(', ')}]), and a mean over no elements is NaN`;
  for (const [name, t] of run.inputs) if (t.size === 0) return `the loss is ${what}: input '${name}' is empty (shape [${t.shape.join(', ')}])`;
  for (const [name, t] of [...model.parameters, ...model.buffers]) {
    if (t.hasHostData && (t.dtype === 'float32' || t.dtype === 'float64') && nonFinite(t).nan) return `the loss is ${what}: initializer '${name}' holds NaN values`;
    if (t.hasHostData && (t.dtype === 'float32' || t.dtype === 'float64') && nonFinite(t).inf) return `the loss is ${what}: initializer '${name}' holds infinite values`;
  }
  for (const [name, t] of run.inputs) if (t.hasHostData && (t.dtype === 'float32' || t.dtype === 'float64') && (nonFinite(t).nan || nonFinite(t).inf)) return `the loss is ${what}: input '${name}' holds NaN or infinite values`;
  if (firstBadNode) return `the loss is ${what}: the first NaN/Inf appears at node '${firstBadNode}'`;
  return `the loss is ${what}`;
}

/** The backend that computed the run: float64 runs never use a device backend, they run on its host kernels. */
function backendName(dtype: string): string {
  const b = getBackend();
  return isDeviceBackend(b) && dtype === 'float64' ? b.host.name : b.name;
}

/**
 * A run as the recorders see it: the first float output of every computed node (forward order) with its
 * module and source line, and every parameter with its owning module (frozen weights included, as not
 * trainable).
 */
export function traceRun(model: OnnxModel, values: Map<string, OnnxValue>): { nodeValues: OnnxValue[]; ops: TracedOp[]; params: TracedParameter[] } {
  const nodeValues = [...values.values()].filter((v) => v.kind === 'node' && v.node && !v.folded && v.outputIndex === 0 && (v.tensor.dtype === 'float32' || v.tensor.dtype === 'float64'));
  const ops: TracedOp[] = nodeValues.map((v) => ({ node: v.node!.name, opType: v.node!.opType, modulePath: v.modulePath, output: v.tensor, source: sourceOf(v.node) }));
  const owner = new Map<string, string>();
  for (const [path, m] of model.modules) for (const p of m.parameters) owner.set(p, path);
  const frozenWeights = model.initializers.filter((i) => i.role === 'buffer' && /frozen/.test(i.reason));
  const traced = (name: string, tensor: Tensor, trainable: boolean): TracedParameter => {
    const modulePath = owner.get(name) ?? parentPath(name);
    const tiedIn = tiedModules(model, name, modulePath);
    return { name, modulePath, tensor, trainable, ...(tiedIn.length ? { tiedIn } : {}) };
  };
  const params: TracedParameter[] = [
    ...[...model.parameters].map(([name, tensor]) => traced(name, tensor, true)),
    ...frozenWeights.map((i) => traced(i.name, model.buffers.get(i.name)!, false)),
  ];
  return { nodeValues, ops, params };
}

/** Whether module path `outer` is `inner` or one of its ancestors ('' is the model). */
function encloses(outer: string, inner: string): boolean {
  return outer === inner || outer === '' || inner.startsWith(`${outer}.`);
}

/**
 * Modules other than the owner and the modules enclosing it whose own ops read the parameter: tied weights
 * (GPT-2's lm_head reads transformer.wte.weight, T5's encoder.embed_tokens and lm_head read shared.weight,
 * BERT's cls.predictions.decoder reads its parent's cls.predictions.bias). In PyTorch the parameter belongs
 * to each of them (module.parameters() lists it, its .grad is the one shared gradient), so the report counts
 * it in each, once per subtree. (An enclosing module's op reading a submodule's parameter owns it anyway.)
 */
function tiedModules(model: OnnxModel, name: string, ownerPath: string): string[] {
  const out = new Set<string>();
  for (const c of model.graph.consumers.get(name) ?? []) {
    const path = model.graph.nodes[c.node].modulePath;
    if (!encloses(path, ownerPath)) out.add(path);
  }
  return [...out];
}

function rms(t: Tensor): number {
  let s = 0;
  for (let i = 0; i < t.size; i++) s += t.data[i] * t.data[i];
  return Math.sqrt(s / Math.max(1, t.size));
}

/** Watch requests: the last value a watched source line computes, else the watched module's output. */
function resolveWatches(watches: NonNullable<InspectOptions['watches']>, values: OnnxValue[], ops: TracedOp[]): WatchRequest[] {
  const out: WatchRequest[] = [];
  for (const w of watches) {
    const atLine = values.filter((v) => v.node?.source && v.node.source.line === w.line && basename(v.node.source.file) === basename(w.file) && v.tensor.requiresGrad);
    if (atLine.length) {
      // A line inside a module that runs several times (one per block) is watched in each instance:
      // the last value it computes in each module.
      // Calls to submodules on that line (self.ln1(x)) carry the same source line: keep the outermost modules.
      const paths = [...new Set(atLine.map((v) => v.modulePath))];
      const outer = new Set(paths.filter((p) => !paths.some((q) => q !== p && encloses(q, p))));
      const lastPerModule = new Map<string, OnnxValue>();
      for (const v of atLine) if (outer.has(v.modulePath)) lastPerModule.set(v.modulePath, v);
      for (const hit of lastPerModule.values()) out.push({ target: w.target, tensor: hit.tensor, modulePath: hit.modulePath, source: sourceOf(hit.node) });
      continue;
    }
    if (w.modulePath !== undefined) {
      const inModule = ops.filter((o) => (o.modulePath === w.modulePath || o.modulePath.startsWith(`${w.modulePath}.`)) && o.output.requiresGrad);
      const last = inModule[inModule.length - 1];
      if (last) out.push({ target: w.target, tensor: last.output, modulePath: w.modulePath, source: { file: w.file, line: w.line } });
    }
  }
  return out;
}

/** The token ids of one sample and, when the model carries a vocabulary (metadata `gradientlens.vocab`), their text. */
function sampleTokens(model: OnnxModel, inputs: Map<string, Tensor>, sample: number): { ids: number[]; labels?: string[] } | undefined {
  const spec = model.inputs.find((i) => i.role === 'tokens');
  const t = spec && inputs.get(spec.name);
  if (!t || t.rank < 2) return undefined;
  const len = t.shape[t.rank - 1];
  const ids = Array.from(t.data.subarray(sample * len, (sample + 1) * len) as ArrayLike<number>);
  let vocab: unknown;
  try {
    vocab = model.metadata['gradientlens.vocab'] ? JSON.parse(model.metadata['gradientlens.vocab']) : undefined;
  } catch {
    vocab = undefined;
  }
  const labels = Array.isArray(vocab) ? ids.map((id) => String(vocab[id] ?? id)) : undefined;
  return { ids, labels };
}
