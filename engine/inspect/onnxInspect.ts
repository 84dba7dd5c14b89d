/**
 * Inspects an ONNX model: one seeded forward + backward with the engine, traced per node, summarised
 * per module as an InspectionReport. This is what the webview worker runs.
 *
 * Asynchronous because a device backend (WebGPU) keeps values on the GPU: forward and backward only
 * encode work, hooks queue their reads (HostReads), and the values the report needs are read back
 * once after backward. On host backends every read is immediate and the numbers are unchanged.
 */
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
import { NonFiniteWatch, sourceOf } from './anomaly';
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
  const model = loadOnnx(bytes, { frozen, dtype: options.dtype, externalData: options.externalData });
  const dtype = options.dtype ?? model.dtype;
  const loadMs = performance.now() - tLoad;

  progress('forward pass');
  const reads = new HostReads();
  const watch = new NonFiniteWatch(model, reads);
  const capture = options.onCapture ? new RunCaptureRecorder() : null;
  const t0 = performance.now();
  const run = model.run(options.feeds, {
    seed: options.seed ?? 0,
    batch: options.batch,
    seq: options.sequenceLength,
    loss: options.lossSpec ?? lossSpec(options.loss),
    dtype,
    onValue: capture ? (v) => (capture.onValue(v), watch.onValue(v)) : watch.onValue,
  });
  // On a device backend the passes only encode work: wait for the GPU so the timings are the real ones.
  await deviceIdle();
  const forwardMs = performance.now() - t0;
  if (!run.loss) throw new Error('the run produced no loss to differentiate');

  const { nodeValues, ops, params } = traceRun(model, run.tensorsByName);

  const recorder = new InspectionRecorder(params, ops, moduleKindInfo(model), reads);
  recorder.attach(resolveWatches(options.watches ?? [], nodeValues, ops));

  const disarm = watch.armBackward(nodeValues);

  const sample = options.attentionSample ?? 0;
  const batch = [...run.inputs.values()][0]?.shape[0] ?? 1;
  const attention = sample >= 0 ? armAttentionCapture(findAttention(model.graph), run.tensorsByName, batch, sample) : null;

  progress('backward pass');
  const t1 = performance.now();
  backward(run.loss);
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
  if (capture) options.onCapture!(await capture.collect(model, run, dtype));

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
  const report = recorder.report({
    model: { name: modelName, producer: `${model.producer.name} ${model.producer.version}`.trim(), opset: model.opsetVersion, parameterCount: [...model.parameters.values()].reduce((n, t) => n + t.size, 0) },
    backend: backendName(dtype),
    dtype,
    settings: { seed: options.seed ?? 0, batch: shapes[0]?.shape[0] ?? 0, sequenceLength: options.sequenceLength, loss: run.lossInfo.description },
    loss: { kind: run.lossInfo.kind, value: run.loss.item() },
    timings: { forwardMs, backwardMs, loadMs, summaryMs: 0 },
    firstNonFinite: watch.first && { node: watch.first.node, modulePath: watch.first.modulePath, phase: watch.first.phase, source: watch.first.source },
    attention: captured,
    exportNotes: model.exportNotes.length ? model.exportNotes : undefined,
    tokens: captured.length ? sampleTokens(model, run.inputs, sample) : undefined,
  });
  report.timings.summaryMs = performance.now() - tSummary;
  return report;
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
  const params: TracedParameter[] = [
    ...[...model.parameters].map(([name, tensor]) => ({ name, modulePath: owner.get(name) ?? parentPath(name), tensor, trainable: true })),
    ...frozenWeights.map((i) => ({ name: i.name, modulePath: owner.get(i.name) ?? parentPath(i.name), tensor: model.buffers.get(i.name)!, trainable: false })),
  ];
  return { nodeValues, ops, params };
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
      const outer = new Set(paths.filter((p) => !paths.some((q) => q !== p && (q === '' || p.startsWith(`${q}.`)))));
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
