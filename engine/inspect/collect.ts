/**
 * Builds an InspectionReport from one traced forward + backward run: parameters with their module
 * paths and every op output in forward order. Independent of where the graph came from (ONNX import
 * or hand-written engine code), so both can be inspected the same way.
 */
import { Tensor } from '../tensor';
import { tensorStats, TensorStats } from './stats';
import { HostReads } from './hostReads';
import { HookLogEntry, InspectionReport, ModuleKind, ModuleReport, ParameterReport, REPORT_SCHEMA, SourceLocation } from './report';

export interface TracedParameter {
  name: string;
  /** Owning module path: the name without its last component. */
  modulePath: string;
  tensor: Tensor;
  trainable: boolean;
  /** Why this parameter's gradient is structurally zero, when the graph shows it. */
  zeroReason?: string;
  /** Other modules holding this same tensor as their own parameter (tied weights), outside the owner's line. */
  tiedIn?: string[];
}

export interface TracedOp {
  /** Node name, e.g. '/blocks.0/attn/MatMul'. */
  node: string;
  opType: string;
  modulePath: string;
  output: Tensor;
  source?: SourceLocation;
}

export interface WatchRequest {
  /** Label shown in logs: a source expression or a value name. */
  target: string;
  /** The traced value whose gradient to log. */
  tensor: Tensor;
  modulePath: string;
  source?: SourceLocation;
}

/** Op types whose zero outputs are "dead units" (no gradient passes through them). */
const RELU_LIKE = new Set(['Relu', 'relu']);

export function parentPath(path: string): string {
  const i = path.lastIndexOf('.');
  return i < 0 ? '' : path.slice(0, i);
}

/** The path and every enclosing module path, up to '' (the model). */
export function ancestors(path: string): string[] {
  const out = [path];
  while (path !== '') {
    path = parentPath(path);
    out.push(path);
  }
  return out;
}

/** Fewer samples per unit than this and "zero for every sample" is chance, not a dead unit. */
export const MIN_SAMPLES_FOR_DEAD_UNITS = 8;

/**
 * Fraction of units (channel axis 1 for rank-4 NCHW, else the last axis) that are zero for every
 * sample; null when there are too few samples per unit to tell.
 */
export function deadUnitFraction(t: Tensor): number | null {
  if (t.rank < 2 || t.size === 0) return null;
  const axis = t.rank === 4 ? 1 : t.rank - 1;
  const units = t.shape[axis];
  if (t.size / units < MIN_SAMPLES_FOR_DEAD_UNITS) return null;
  const inner = t.shape.slice(axis + 1).reduce((a, b) => a * b, 1);
  const alive = new Uint8Array(units);
  for (let i = 0; i < t.size; i++) {
    if (t.data[i] !== 0) alive[Math.floor(i / inner) % units] = 1;
  }
  let dead = 0;
  for (const a of alive) if (!a) dead++;
  return dead / units;
}

/** Where each module sits in a traced run: shared by the inspection report and the training record. */
export interface ModuleLayout {
  /** Every module path ('' = the model), in forward order: by first op, then shallowest first. */
  paths: string[];
  /** Index of the first op inside each module's subtree. */
  firstOp: Map<string, number>;
  /** The first source line recorded for an op directly in each module. */
  sources: Map<string, SourceLocation>;
  /** Each module's output: the last op computed inside its subtree. */
  outputs: Map<string, TracedOp>;
  /** Paths that have a submodule. */
  parents: Set<string>;
}

export function moduleLayout(ops: readonly TracedOp[], params: readonly TracedParameter[]): ModuleLayout {
  const paths = new Set<string>(['']);
  for (const p of params) for (const a of ancestors(p.modulePath)) paths.add(a);
  for (const op of ops) for (const a of ancestors(op.modulePath)) paths.add(a);
  const firstOp = new Map<string, number>();
  const sources = new Map<string, SourceLocation>();
  const outputs = new Map<string, TracedOp>();
  ops.forEach((op, i) => {
    for (const a of ancestors(op.modulePath)) {
      if (!firstOp.has(a)) firstOp.set(a, i);
      outputs.set(a, op);
    }
    if (op.source && !sources.has(op.modulePath)) sources.set(op.modulePath, op.source);
  });
  const depth = (p: string) => firstOp.get(p) ?? Number.MAX_SAFE_INTEGER;
  const all = [...paths];
  const parents = new Set(all.filter((p) => p !== '').map(parentPath));
  return { paths: all.sort((a, b) => depth(a) - depth(b) || a.length - b.length), firstOp, sources, outputs, parents };
}

export class InspectionRecorder {
  private readonly outputGrads = new Map<string, TensorStats>();
  private readonly hookLogs: HookLogEntry[] = [];
  private readonly layout: ModuleLayout;
  private readonly removers: (() => void)[] = [];

  constructor(
    private readonly params: readonly TracedParameter[],
    private readonly ops: readonly TracedOp[],
    /** Kinds the model tells (engine/inspect/onnxInspect.ts moduleKindInfo); other modules are 'Module'. */
    private readonly moduleKinds: ReadonlyMap<string, ModuleKind> = new Map(),
    /** Where hook statistics of device-resident gradients wait for their values. */
    private readonly reads: HostReads = new HostReads(),
  ) {
    this.layout = moduleLayout(ops, params);
  }

  /** Registers gradient hooks on every module output and on watched values. Call before backward. */
  attach(watches: readonly WatchRequest[] = []): void {
    for (const [path, op] of this.layout.outputs) {
      if (!op.output.requiresGrad) continue;
      this.removers.push(op.output.registerHook((g) => {
        this.reads.on([g], () => this.outputGrads.set(path, tensorStats(g.data)));
      }));
    }
    for (const w of watches) {
      if (!w.tensor.requiresGrad) continue;
      this.removers.push(w.tensor.registerHook((g) => {
        this.reads.on([g], () => this.hookLogs.push({ target: w.target, modulePath: w.modulePath, source: w.source, order: this.hookLogs.length, shape: [...g.shape], grad: tensorStats(g.data) }));
      }));
    }
  }

  detach(): void {
    while (this.removers.length) this.removers.pop()!();
  }

  /** Tensors whose values report() reads: module outputs, ReLU outputs, parameters and their gradients. */
  tensorsToRead(): Tensor[] {
    const out = [...this.layout.outputs.values()].map((op) => op.output);
    for (const op of this.ops) if (RELU_LIKE.has(op.opType)) out.push(op.output);
    for (const p of this.params) {
      out.push(p.tensor);
      if (p.trainable && p.tensor.grad) out.push(p.tensor.grad);
    }
    return out;
  }

  /** Call after the hooks' queued reads have been flushed and tensorsToRead() read. */
  report(meta: Omit<InspectionReport, 'schema' | 'modules' | 'hookLogs'>): InspectionReport {
    return { schema: REPORT_SCHEMA, ...meta, modules: this.modules(), hookLogs: [...this.hookLogs] };
  }

  private modules(): ModuleReport[] {
    const { paths, firstOp, sources, outputs, parents } = this.layout;
    const deadByModule = new Map<string, number>();
    for (const op of this.ops) {
      if (RELU_LIKE.has(op.opType)) {
        const f = deadUnitFraction(op.output);
        if (f !== null) deadByModule.set(op.modulePath, Math.max(f, deadByModule.get(op.modulePath) ?? 0));
      }
    }

    // Each parameter's statistics are computed once and summed into every ancestor module.
    const paramReports = new Map<string, ParameterReport[]>();
    const totals = new Map<string, { count: number; gradSq: number; weightSq: number; withGrad: number; trainableCount: number }>();
    const listIn = (path: string, r: ParameterReport) => {
      const list = paramReports.get(path) ?? [];
      list.push(r);
      paramReports.set(path, list);
    };
    const names = new Set(this.params.map((p) => p.name));
    for (const p of this.params) {
      const r = parameterReport(p);
      listIn(p.modulePath, r);
      // A tied parameter is listed under each module that holds it, as that module's attribute (lm_head.weight);
      // it counts once in every module above any of them, as PyTorch's module.parameters() does.
      const holders = new Set(ancestors(p.modulePath));
      for (const m of p.tiedIn ?? []) {
        const alias = `${m}.${p.name.slice(p.name.lastIndexOf('.') + 1)}`;
        listIn(m, { ...r, name: names.has(alias) ? p.name : alias, tiedTo: p.name });
        for (const a of ancestors(m)) holders.add(a);
      }
      for (const a of holders) {
        const t = totals.get(a) ?? { count: 0, gradSq: 0, weightSq: 0, withGrad: 0, trainableCount: 0 };
        t.count += p.tensor.size;
        if (r.grad) {
          t.gradSq += r.grad.norm * r.grad.norm;
          t.weightSq += r.valueNorm * r.valueNorm;
          t.withGrad++;
          t.trainableCount += p.tensor.size;
        }
        totals.set(a, t);
      }
    }

    return paths.map((path): ModuleReport => {
      const t = totals.get(path);
      const gradNorm = t?.withGrad ? Math.sqrt(t.gradSq) : null;
      const weightNorm = t?.withGrad ? Math.sqrt(t.weightSq) : null;
      const trainableCount = t?.trainableCount ?? 0;
      const out = outputs.get(path);
      const kind = this.moduleKinds.get(path);
      return {
        path,
        depth: firstOp.get(path) ?? Number.MAX_SAFE_INTEGER,
        leaf: !parents.has(path),
        kind: kind?.name ?? 'Module',
        ...(kind ? { kindFrom: kind.from } : {}),
        source: sources.get(path),
        parameters: paramReports.get(path) ?? [],
        parameterCount: t?.count ?? 0,
        gradNorm,
        gradRms: gradNorm !== null && trainableCount > 0 ? gradNorm / Math.sqrt(trainableCount) : null,
        weightNorm,
        gradToWeight: gradNorm !== null && weightNorm ? gradNorm / weightNorm : null,
        outputShape: out ? [...out.output.shape] : null,
        activation: out ? tensorStats(out.output.data) : null,
        outputGrad: this.outputGrads.get(path) ?? null,
        deadUnitFraction: deadByModule.get(path) ?? null,
      };
    });
  }
}

function parameterReport(p: TracedParameter): ParameterReport {
  const grad = p.trainable && p.tensor.grad ? tensorStats(p.tensor.grad.data) : null;
  const valueNorm = tensorStats(p.tensor.data).norm;
  return {
    name: p.name,
    shape: [...p.tensor.shape],
    trainable: p.trainable,
    grad,
    valueNorm,
    gradToWeight: grad && valueNorm > 0 ? grad.norm / valueNorm : null,
    zeroReason: p.zeroReason,
  };
}
