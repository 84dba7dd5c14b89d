/**
 * The inspection report: what one forward + backward run found, per module. It is plain JSON so it can
 * cross from the engine worker to the webview and the extension host, and be saved and loaded.
 */
import { TensorStats } from './stats';
import type { AttentionCapture } from './attention';

export const REPORT_SCHEMA = 'gradient-lens/report@1';

export interface SourceLocation {
  file: string;
  /** 1-based line, as stack traces print it. */
  line: number;
}

export interface ParameterReport {
  /** Full parameter name, e.g. 'blocks.0.attn.q_proj.weight'. */
  name: string;
  shape: number[];
  trainable: boolean;
  /** Gradient statistics; null when no gradient reached the parameter. */
  grad: TensorStats | null;
  valueNorm: number;
  /** ‖∇W‖ / ‖W‖: how big a plain SGD step at lr 1 would be relative to the weights. */
  gradToWeight: number | null;
  /** Why the gradient is zero or absent, when the engine can tell (e.g. key bias under softmax). */
  zeroReason?: string;
}

export interface ModuleReport {
  /** Module path as PyTorch names it ('blocks.0.attn.q_proj'); '' is the whole model. */
  path: string;
  /** Order of the module's first op in the forward pass (0 = nearest the input). */
  depth: number;
  /** True when no other module lies below this one. */
  leaf: boolean;
  /** Module class when the model says (e.g. 'Linear'), else the dominant op type. */
  kind: string;
  source?: SourceLocation;
  /** Parameters owned directly by this module. */
  parameters: ParameterReport[];
  /** Total parameters under this module (descendants included). */
  parameterCount: number;
  /** Combined L2 norm of the gradients of every parameter under this module; null without any. */
  gradNorm: number | null;
  /** gradNorm / sqrt(parameterCount): comparable across layers of different sizes. */
  gradRms: number | null;
  weightNorm: number | null;
  gradToWeight: number | null;
  outputShape: number[] | null;
  /** Statistics of the module's output activation and of the loss gradient with respect to it. */
  activation: TensorStats | null;
  outputGrad: TensorStats | null;
  /** For outputs of ReLU-like ops: the fraction of units that are zero for every sample. */
  deadUnitFraction: number | null;
}

export interface HookLogEntry {
  /** What was watched: a value name, a module path or a source expression. */
  target: string;
  modulePath: string;
  source?: SourceLocation;
  /** Order in which backward reached it. */
  order: number;
  shape: number[];
  grad: TensorStats;
}

export interface InspectionReport {
  schema: typeof REPORT_SCHEMA;
  model: { name: string; producer?: string; opset?: number; parameterCount: number };
  backend: string;
  dtype: 'float32' | 'float64';
  settings: { seed: number; batch: number; sequenceLength?: number; loss: string };
  loss: { kind: string; value: number };
  /**
   * Where the run's time went, in ms: loading the ONNX model, forward, backward (both including the device's
   * work), and reading results back and summarising them into this report.
   */
  timings: { forwardMs: number; backwardMs: number; loadMs?: number; summaryMs?: number };
  /** Every module, shallowest first within each depth. */
  modules: ModuleReport[];
  hookLogs: HookLogEntry[];
  /** Attention weights and their gradients per layer and head, for one sample. */
  attention?: AttentionCapture[];
  /** Token ids of that sample (for axis labels) and their text when the model carries a vocabulary. */
  tokens?: { ids: number[]; labels?: string[] };
  /** The first op whose forward output or gradient is NaN/Inf, if any. */
  firstNonFinite?: { node: string; modulePath: string; phase: 'forward' | 'backward'; source?: SourceLocation };
}
