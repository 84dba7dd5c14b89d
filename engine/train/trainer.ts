/**
 * "Train N steps" on an ONNX model: forward, backward, clipping and an optimiser step per call of
 * step(), recording per step and module the statistics of a TrainingRecord (gradient norm, parameter
 * norm, update ratio, activation mean/std, fraction of zeros) and stopping at the first NaN/Inf with
 * its origin (anomaly mode).
 *
 * step() is synchronous; callers that must stay responsive (the webview worker) yield between steps.
 */
import { backward } from '../autograd';
import type { FloatDType } from '../dtype';
import { Feeds, LossSpec, OnnxModel, OnnxValue } from '../onnx';
import { Tensor, readTransient } from '../tensor';
import { recycling } from '../recycling';
import { NonFiniteWatch } from '../inspect/anomaly';
import { moduleKinds, traceRun } from '../inspect/onnxInspect';
import { ancestors, moduleLayout, parentPath } from '../inspect/collect';
import { clipGradNorm, clipGradValue, createOptimizer, Optimizer, OptimizerConfig } from './optim';
import { ModuleSeries, TRAINING_SCHEMA, TrainingAnomaly, TrainingRecord } from './record';

export interface TrainOptions {
  optimizer: OptimizerConfig;
  /** clip_grad_norm_ max norm (applied first), clip_grad_value_ bound; 0 or absent = off. */
  clipNorm?: number;
  clipValue?: number;
  /** Seed of sampled inputs and targets (default 0). */
  seed?: number;
  batch?: number;
  sequenceLength?: number;
  loss?: LossSpec;
  dtype?: FloatDType;
  /**
   * Train/eval mode of Dropout and BatchNormalization (gradientLens.run.mode): true runs them as PyTorch trains
   * whatever mode the export was made in, false as model.eval(); absent: as the export says.
   */
  training?: boolean;
  /**
   * 'fixed' (default): the same seeded batch every step; 'fresh': seed + step - 1 at each step; 'text':
   * the feeds function supplies the data (only recorded as the data label).
   */
  data?: 'fixed' | 'fresh' | 'text';
  /** Inputs by name, the same every step or per step (inputs left out are sampled). */
  feeds?: Feeds | ((step: number) => Feeds | undefined);
  /** Find the first NaN/Inf op in forward and backward (default true; costs a scan of every value). */
  anomaly?: boolean;
  modelName: string;
  /** Written into the record, e.g. 'gradient-lens engine (wasm-simd)'. */
  producer?: string;
  /** The Python file the module paths belong to, when known. */
  source?: string;
}

export interface StepResult {
  step: number;
  loss: number;
  /** Set when this step found a NaN/Inf; the trainer refuses further steps. */
  anomaly?: TrainingAnomaly;
}

interface ModuleIndex {
  paths: string[];
  /** Value names whose tensor is each module's output (the last value computed in its subtree). */
  output: Map<string, string>;
  /** Parameters under each module, descendants included. */
  params: Map<string, Tensor[]>;
}

function sumSq(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i] * values[i];
  return s;
}

function moments(values: ArrayLike<number>): { mean: number; std: number; zeros: number } {
  const n = values.length;
  let sum = 0;
  let zeros = 0;
  for (let i = 0; i < n; i++) {
    sum += values[i];
    if (values[i] === 0) zeros++;
  }
  const mean = sum / Math.max(1, n);
  let ss = 0;
  for (let i = 0; i < n; i++) ss += (values[i] - mean) * (values[i] - mean);
  // Population std (unbiased = false): the spread of this batch's activations, not an estimator.
  return { mean, std: Math.sqrt(ss / Math.max(1, n)), zeros: zeros / Math.max(1, n) };
}

export class OnnxTrainer {
  readonly record: TrainingRecord;
  readonly optimizer: Optimizer;
  private readonly params: Tensor[];
  private readonly watch: NonFiniteWatch;
  private index: ModuleIndex | null = null;
  private readonly series = new Map<string, ModuleSeries>();
  private stepCount = 0;

  constructor(readonly model: OnnxModel, private readonly options: TrainOptions) {
    if (options.dtype) model.setDtype(options.dtype);
    this.params = [...model.parameters.values()];
    if (this.params.length === 0) throw new Error(`${options.modelName} has no trainable parameters to train`);
    if (options.clipNorm !== undefined && options.clipNorm !== 0 && !(options.clipNorm > 0)) throw new RangeError(`clip norm must be > 0 (or 0 for off), got ${options.clipNorm}`);
    this.optimizer = createOptimizer(this.params, options.optimizer);
    this.watch = new NonFiniteWatch(model);
    this.record = {
      schema: TRAINING_SCHEMA,
      producer: options.producer ?? 'gradient-lens engine',
      model: { name: options.modelName, source: options.source },
      optimizer: {
        ...(this.optimizer.settings() as unknown as TrainingRecord['optimizer']),
        ...(options.clipNorm ? { clipNorm: options.clipNorm } : {}),
        ...(options.clipValue ? { clipValue: options.clipValue } : {}),
      },
      settings: { seed: options.seed ?? 0, data: options.data ?? 'fixed', dtype: model.dtype, ...(options.batch ? { batch: options.batch } : {}), ...(options.sequenceLength ? { sequenceLength: options.sequenceLength } : {}) },
      steps: [],
      loss: [],
      gradNormTotal: [],
      modules: [],
    };
  }

  get steps(): number {
    return this.stepCount;
  }

  get stopped(): boolean {
    return this.record.anomaly !== undefined;
  }

  /**
   * One optimiser step; records its statistics. A recycling step (engine/recycling.ts): the run's values are read
   * here and its output arrays are reused by the next step; parameters and their `.grad` stay valid.
   */
  step(): StepResult {
    return recycling(() => this.runStep());
  }

  private runStep(): StepResult {
    if (this.record.anomaly) throw new Error(`training stopped at step ${this.record.anomaly.step}: ${this.record.anomaly.message}`);
    const n = ++this.stepCount;
    const o = this.options;
    const anomalyMode = o.anomaly ?? true;
    this.model.zeroGrad();
    this.watch.reset();
    const feeds = typeof o.feeds === 'function' ? o.feeds(n) : o.feeds;
    const run = this.model.run(feeds, {
      seed: (o.seed ?? 0) + (o.data === 'fresh' ? n - 1 : 0),
      batch: o.batch,
      seq: o.sequenceLength,
      loss: o.loss ?? 'auto',
      training: o.training,
      updateBuffers: true,
      onValue: anomalyMode ? this.watch.onValue : undefined,
    });
    if (!run.loss) throw new Error('the run produced no loss to train on');
    const index = (this.index ??= this.buildIndex(run.tensorsByName));
    const loss = run.loss.item();
    const disarm = anomalyMode ? this.watch.armBackward([...run.tensorsByName.values()].filter((v) => v.kind === 'node' && !v.folded)) : () => {};
    try {
      backward(run.loss);
    } finally {
      disarm();
    }

    // Norms before clipping (as PyTorch's clip_grad_norm_ returns them); a NaN gradient gives a NaN norm.
    const gradSq = new Map<Tensor, number>();
    for (const p of this.params) if (p.grad) gradSq.set(p, sumSq(readTransient(p.grad)));
    const total = Math.sqrt([...gradSq.values()].reduce((a, b) => a + b, 0));
    let anomaly = this.anomalyOf(n, loss, gradSq);
    let updates = new Map<Tensor, { deltaSq: number; paramSq: number }>();
    if (!anomaly) {
      if (o.clipNorm) clipGradNorm(this.params, o.clipNorm);
      if (o.clipValue) clipGradValue(this.params, o.clipValue);
      updates = this.optimizer.step();
      anomaly = this.updateAnomaly(n);
    }
    this.push(n, loss, total, index, run.tensorsByName, gradSq, updates);
    if (anomaly) this.record.anomaly = anomaly;
    return { step: n, loss, anomaly };
  }

  /** Runs up to `steps` steps (stops early at an anomaly). */
  train(steps: number): StepResult[] {
    const out: StepResult[] = [];
    for (let i = 0; i < steps && !this.stopped; i++) out.push(this.step());
    return out;
  }

  private anomalyOf(step: number, loss: number, gradSq: ReadonlyMap<Tensor, number>): TrainingAnomaly | undefined {
    const f = this.watch.first;
    if (f) {
      return { step, phase: f.phase, node: f.node, modulePath: f.modulePath, source: f.source, message: `${f.kind} first appears in the ${f.phase === 'forward' ? 'output' : 'gradient'} of ${f.node}${f.modulePath ? ` (${f.modulePath})` : ''}` };
    }
    if (!Number.isFinite(loss)) return { step, phase: 'forward', modulePath: '', message: `the loss is ${loss}` };
    for (const [name, p] of this.model.parameters) {
      const sq = gradSq.get(p);
      if (sq !== undefined && !Number.isFinite(sq)) {
        return { step, phase: 'backward', modulePath: parentPath(name), message: `the gradient of ${name} is not finite` };
      }
    }
    return undefined;
  }

  /** A finite gradient can still give a non-finite update (e.g. lr * huge gradient overflows float32). */
  private updateAnomaly(step: number): TrainingAnomaly | undefined {
    for (const [name, p] of this.model.parameters) {
      if (!Number.isFinite(sumSq(p.data))) {
        const path = parentPath(name);
        return { step, phase: 'update', modulePath: path, source: this.series.get(path)?.source, message: `${name} is not finite after the ${this.optimizer.kind} update` };
      }
    }
    return undefined;
  }

  private buildIndex(values: Map<string, OnnxValue>): ModuleIndex {
    const { nodeValues, ops, params } = traceRun(this.model, values);
    const layout = moduleLayout(ops, params);
    const trainable = new Map<string, Tensor[]>();
    for (const p of params) {
      if (!p.trainable) continue;
      for (const a of ancestors(p.modulePath)) trainable.set(a, [...(trainable.get(a) ?? []), p.tensor]);
    }
    const kinds = moduleKinds(this.model);
    layout.paths.forEach((path, depth) => {
      const s: ModuleSeries = { path, kind: kinds.get(path), depth, leaf: !layout.parents.has(path), source: layout.sources.get(path), gradNorm: [], paramNorm: [], updateRatio: [], actMean: [], actStd: [], zeroFraction: [] };
      this.series.set(path, s);
      this.record.modules.push(s);
    });
    // Outputs by value name: every step's run makes new tensors under the same names (ops[i] is nodeValues[i]).
    const nameOf = new Map(ops.map((op, i) => [op, nodeValues[i].name]));
    return { paths: layout.paths, output: new Map([...layout.outputs].map(([path, op]) => [path, nameOf.get(op)!])), params: trainable };
  }

  private push(step: number, loss: number, total: number, index: ModuleIndex, values: Map<string, OnnxValue>, gradSq: Map<Tensor, number>, updates: Map<Tensor, { deltaSq: number; paramSq: number }>): void {
    this.record.steps.push(step);
    this.record.loss.push(loss);
    this.record.gradNormTotal.push(total);
    for (const path of index.paths) {
      const s = this.series.get(path)!;
      const ps = index.params.get(path) ?? [];
      const withGrad = ps.filter((p) => gradSq.has(p));
      let g = 0;
      let w = 0;
      let d = 0;
      for (const p of withGrad) {
        g += gradSq.get(p)!;
        const u = updates.get(p);
        w += u ? u.paramSq : sumSq(p.data);
        d += u ? u.deltaSq : 0;
      }
      s.gradNorm.push(withGrad.length ? Math.sqrt(g) : null);
      s.paramNorm.push(withGrad.length ? Math.sqrt(w) : null);
      s.updateRatio.push(withGrad.length && updates.size ? (w > 0 ? Math.sqrt(d / w) : null) : null);
      const outName = index.output.get(path);
      const out = outName !== undefined ? values.get(outName)?.tensor : undefined;
      if (out) {
        const m = moments(readTransient(out));
        s.actMean.push(m.mean);
        s.actStd.push(m.std);
        s.zeroFraction.push(m.zeros);
      } else {
        s.actMean.push(null);
        s.actStd.push(null);
        s.zeroFraction.push(null);
      }
    }
  }
}
