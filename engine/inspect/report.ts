/**
 * The inspection report: what one forward + backward run found, per module. It is plain JSON so it can
 * cross from the engine worker to the webview and the extension host, and be saved and loaded.
 */
import { TensorStats } from './stats';
import type { AttentionCapture } from './attention';
import type { ExportNote } from '../onnx/identity';

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
  /** Set when this module holds another module's parameter (tied weights): that parameter's name; same tensor, same gradient. */
  tiedTo?: string;
}

export interface ModuleReport {
  /** Module path as PyTorch names it ('blocks.0.attn.q_proj'); '' is the whole model. */
  path: string;
  /** Order of the module's first op in the forward pass (0 = nearest the input). */
  depth: number;
  /** True when no other module lies below this one. */
  leaf: boolean;
  /**
   * Module class: recorded by the exporter ('CausalSelfAttention'), else for a leaf the torch.nn class its ops
   * come from ('Linear' for a Gemm), else 'Module'. Never an op name for a container.
   */
  kind: string;
  /** Where `kind` came from; absent when nothing said ('Module'): the extension may name it from the source. */
  kindFrom?: ModuleKind['from'];
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

/** A module's class as the export tells it: recorded by the exporter, or read from a leaf's own ops. */
export interface ModuleKind {
  name: string;
  from: 'export' | 'ops' | 'source';
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
  /**
   * How Dropout and BatchNormalization ran: 'train' (batch statistics, dropping) or 'eval' (running statistics,
   * no dropout). Absent in reports from before the setting (they followed the export's own mode).
   */
  mode?: 'train' | 'eval';
  settings: { seed: number; batch: number; sequenceLength?: number; loss: string };
  /** The loss; `note` says why it is NaN or ±Inf when it is (its value is then not a number to read). */
  loss: { kind: string; value: number; note?: string };
  /**
   * Set when no backward pass ran: why there is nothing to differentiate (no trainable parameters, or a
   * loss that does not depend on any). Shapes and activations are still reported.
   */
  noGradient?: string;
  /**
   * Where the run's time went, in ms: loading the ONNX model, forward, backward (both including the device's
   * work), and reading results back and summarising them into this report.
   */
  timings: { forwardMs: number; backwardMs: number; loadMs?: number; summaryMs?: number };
  /**
   * The run's memory estimate (bytes, engine/onnx/memory.ts: an upper bound, the sum of the parts) and the
   * budget it was checked against (null: none). inputs, backward, workspace and complete are absent in
   * reports of older versions.
   */
  memory?: {
    peak: number; parameters: number; gradients: number; activations: number; budget: number | null;
    inputs?: number; backward?: number; workspace?: number;
    /** False when part of the dry run was approximated. */
    complete?: boolean;
  };
  /** What the importer found odd but harmless (an unknown attribute...), in words. */
  warnings?: string[];
  /** Every module, shallowest first within each depth. */
  modules: ModuleReport[];
  hookLogs: HookLogEntry[];
  /** Attention weights and their gradients per layer and head, for one sample. */
  attention?: AttentionCapture[];
  /** Token ids of that sample (for axis labels) and their text when the model carries a vocabulary. */
  tokens?: { ids: number[]; labels?: string[] };
  /**
   * What the exporter did to PyTorch parameters (dynamo exports): merged, transposed, folded, dropped,
   * and whether the engine undid it. Unrecovered ones mean a module's numbers are not PyTorch's.
   */
  exportNotes?: ExportNote[];
  /** The first op whose forward output or gradient is NaN/Inf, if any. */
  firstNonFinite?: { node: string; modulePath: string; phase: 'forward' | 'backward'; source?: SourceLocation };
}

/** The report with module kinds another source tells (the extension's source map), marked as from the source. */
export function withModuleKinds(report: InspectionReport, kinds: Readonly<Record<string, string>>): InspectionReport {
  if (Object.keys(kinds).length === 0) return report;
  const has = (p: string) => Object.prototype.hasOwnProperty.call(kinds, p);
  return { ...report, modules: report.modules.map((m) => (has(m.path) ? { ...m, kind: kinds[m.path], kindFrom: 'source' as const } : m)) };
}
