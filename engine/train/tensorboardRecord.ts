/**
 * A TensorBoard run as a training record: per-parameter gradient and weight statistics that trainers
 * already log, mapped onto modules so an existing run shows on the source without re-running anything.
 *
 * Tags understood (parameter names as `named_parameters()` gives them):
 * - Lightning's `grad_norm` (`self.log_dict(grad_norm(self, norm_type=2))`): `grad_2.0_norm/<param>`
 *   and `grad_2.0_norm_total` (older versions: `grad_2.0_norm_<param>`);
 * - SummaryWriter.add_scalar of norms: `grad_norm/<param>`, `gradients/<param>`, `<param>/grad`,
 *   `<param>.grad`, `<param>_grad`; weights: `weight_norm/<param>`, `param_norm/<param>`, `weights/<param>`;
 * - SummaryWriter.add_histogram of values: the same names for gradients; a parameter's own name (or
 *   `weights/<param>`) for its values. A histogram keeps the sum of squares, so its L2 norm is exact;
 * - the loss (`loss`, `train/loss`, `train_loss`, `Loss/train`...), the total gradient norm
 *   (`grad_norm`, `grad_norm/total`, `grad_2.0_norm_total`) and the learning rate (`lr`, `lr-Adam`).
 * A module's norm combines its parameters' (root of the sum of squares) at a step where all of them were
 * logged, else it is null. Activation statistics and update ratios are not in TensorBoard logs: null.
 */
import type { ModuleSeries, Series, TrainingRecord } from './record';
import { TRAINING_SCHEMA } from './record';
import { mergeEvents, ScalarPoint, TensorBoardError, TensorBoardEvents } from './tensorboard';

type Quantity = 'grad' | 'param';

export interface TagMeaning {
  quantity: Quantity | 'loss' | 'gradTotal' | 'lr';
  /** The parameter's name (wrapper prefixes removed), for per-parameter tags. */
  param?: string;
  /** Why the tag is not used, when it looks relevant but cannot be (an L1 norm, a mean...). */
  unusable?: string;
}

const GRAD_WORDS = new Set(['grad', 'grads', 'gradient', 'gradients', 'grad_norm', 'grad_norms', 'gradnorm', 'gradient_norm', 'gradient_norms', 'grad_l2', 'grad_2.0_norm']);
const PARAM_WORDS = new Set(['weight', 'weights', 'param', 'params', 'parameter', 'parameters', 'param_norm', 'param_norms', 'weight_norm', 'weight_norms', 'parameter_norm']);
const STAT_WORDS = /(^|_)(mean|std|var|min|max|abs|sparsity|zeros?|hist|l1|l_1|inf|linf)(_|$)/i;
// Wrappers' child names that never belong in a module path (DDP, FSDP, activation checkpointing, torch.compile).
const WRAPPER_PARTS = new Set(['module', '_fsdp_wrapped_module', '_checkpoint_wrapped_module', '_orig_mod']);

/** `model.module._orig_mod.layers.0.weight` → `model.layers.0.weight`. */
export function cleanParameterName(name: string): string {
  return name.split('.').filter((p) => !WRAPPER_PARTS.has(p)).join('.');
}

const looksLikeParameter = (s: string) => /^[A-Za-z_][\w]*(\.[\w]+)*$/.test(s) && /[A-Za-z_]/.test(s);

/** What a tag holds, or null when it is none of the quantities above. */
export function classifyTag(tag: string, kind: 'scalar' | 'histogram'): TagMeaning | null {
  const lightning = /^grad_([0-9.]+|inf)_norm(?:[/_](.+))?$/.exec(tag) ?? /^grad_([0-9.]+|inf)_norm_total$/.exec(tag);
  if (lightning) {
    const p = lightning[1];
    const rest = tag.endsWith('_norm_total') ? 'total' : lightning[2];
    const l2 = p === '2' || p === '2.0';
    const unusable = l2 ? undefined : `an L${p === 'inf' ? '∞' : p} norm (module norms combine L2 norms)`;
    if (rest === 'total' || rest === undefined) return { quantity: 'gradTotal', unusable };
    return { quantity: 'grad', param: cleanParameterName(rest), unusable };
  }
  const parts = tag.split('/').filter(Boolean);
  const lower = parts.map((p) => p.toLowerCase());
  if (kind === 'scalar') {
    if (lower.some((p) => /^(train_?)?loss(_step|_epoch)?$|^training_loss$/.test(p)) && !lower.some((p) => /val|valid|test|eval/.test(p))) {
      return { quantity: 'loss' };
    }
    if (parts.length <= 2 && lower.every((p) => GRAD_WORDS.has(p) || p === 'total' || p === 'train' || p === 'grad_norm_total')) {
      if (lower.some((p) => GRAD_WORDS.has(p) || p === 'grad_norm_total')) return { quantity: 'gradTotal' };
    }
    if (lower.length === 1 && /^(lr|learning_rate)$|^lr-[\w]+/.test(lower[0])) return { quantity: 'lr' };
    if (lower.length === 2 && lower[0] === 'train' && /^(lr|learning_rate)$/.test(lower[1])) return { quantity: 'lr' };
  }
  // A quantity word as its own segment: grad_norm/<param>, weights/<param>, <param>/grad.
  const word = lower.findIndex((p) => GRAD_WORDS.has(p) || PARAM_WORDS.has(p));
  const stat = lower.find((p) => STAT_WORDS.test(p));
  if (word >= 0) {
    const others = parts.filter((_, i) => i !== word && !/^(train|training)$/i.test(parts[i]));
    if (others.length === 1 && looksLikeParameter(others[0])) {
      const quantity: Quantity = GRAD_WORDS.has(lower[word]) ? 'grad' : 'param';
      return stat ? { quantity, param: cleanParameterName(others[0]), unusable: `a ${stat} (not a norm)` } : { quantity, param: cleanParameterName(others[0]) };
    }
  }
  // One segment: <param>.grad, <param>_grad, or (histograms) a parameter's own name.
  if (parts.length === 1 && looksLikeParameter(parts[0])) {
    const m = /^(.+?)(?:\.grad|_grad)$/.exec(parts[0]);
    if (m) return { quantity: 'grad', param: cleanParameterName(m[1]) };
    if (kind === 'histogram' && parts[0].includes('.')) return { quantity: 'param', param: cleanParameterName(parts[0]) };
  }
  return null;
}

/** The owning module of a parameter: its name without the last component ('' for a parameter of the model itself). */
export function ownerOf(param: string): string {
  const i = param.lastIndexOf('.');
  return i < 0 ? '' : param.slice(0, i);
}

interface ParamSeries {
  name: string;
  /** step -> L2 norm. */
  grad: Map<number, number>;
  param: Map<number, number>;
  /** First appearance in the logs (Lightning logs named_parameters() order): the module order when nothing better is known. */
  order: number;
}

/** Which loss tag to show: the most specific training loss (step-level before epoch-level). */
function pickLoss(tags: string[]): string | undefined {
  const rank = (t: string) => (/^loss$|^train\/loss$|^train_loss$/i.test(t) ? 0 : /step/i.test(t) ? 1 : /epoch/i.test(t) ? 3 : 2);
  return [...tags].sort((a, b) => rank(a) - rank(b) || a.localeCompare(b))[0];
}

export interface TensorBoardImport {
  record: TrainingRecord;
  /** Tags used, per meaning. */
  used: { grad: number; param: number; loss?: string; gradTotal?: string; lr?: string };
  /** Tags that look relevant but were not used, with the reason. */
  skipped: { tag: string; reason: string }[];
}

/**
 * Builds a training record from the events of one run. Throws a TensorBoardError naming the tags found
 * when none holds a per-parameter gradient or weight statistic.
 */
export function tensorboardRecord(files: TensorBoardEvents[], origin: string): TensorBoardImport {
  const events = mergeEvents(files);
  const params = new Map<string, ParamSeries>();
  const skipped: { tag: string; reason: string }[] = [];
  const lossTags: string[] = [];
  let totalTag: string | undefined;
  let lrTag: string | undefined;
  let order = 0;
  const series = (name: string) => {
    let s = params.get(name);
    if (!s) params.set(name, (s = { name, grad: new Map(), param: new Map(), order: order++ }));
    return s;
  };
  const used = { grad: 0, param: 0 } as TensorBoardImport['used'];
  // Tags in the order of their first value (the order the trainer logged them).
  const firstSeen = (points: { step: number; wallTime: number }[]) => points.reduce((a, p) => Math.min(a, p.wallTime), Infinity);
  const tags = [
    ...[...events.scalars.entries()].map(([tag, points]) => ({ tag, kind: 'scalar' as const, points, at: firstSeen(points) })),
    ...[...events.histograms.entries()].map(([tag, points]) => ({ tag, kind: 'histogram' as const, points, at: firstSeen(points) })),
  ].sort((a, b) => a.at - b.at);
  for (const { tag, kind, points } of tags) {
    const meaning = classifyTag(tag, kind);
    if (!meaning) continue;
    if (meaning.unusable) {
      skipped.push({ tag, reason: meaning.unusable });
      continue;
    }
    if (meaning.quantity === 'loss') lossTags.push(tag);
    else if (meaning.quantity === 'gradTotal') totalTag ??= tag;
    else if (meaning.quantity === 'lr') lrTag ??= tag;
    else {
      const s = series(meaning.param!);
      const target = meaning.quantity === 'grad' ? s.grad : s.param;
      if (target.size) {
        skipped.push({ tag, reason: `another tag already gives the ${meaning.quantity === 'grad' ? 'gradient' : 'weight'} of ${meaning.param}` });
        continue;
      }
      used[meaning.quantity]++;
      for (const p of points) {
        // Histograms hold the values: their L2 norm is the root of the sum of squares.
        target.set(p.step, kind === 'histogram' ? Math.sqrt((p as { sumSquares: number }).sumSquares) : (p as ScalarPoint).value);
      }
    }
  }
  for (const [tag, why] of events.skipped) if (classifyTag(tag, 'histogram')) skipped.push({ tag, reason: why });
  if (params.size === 0) {
    const found = [...events.scalars.keys(), ...events.histograms.keys()];
    throw new TensorBoardError(
      `${origin}: no per-parameter gradient or weight statistics among its ${found.length} tags` +
      `${found.length ? ` (${found.slice(0, 8).join(', ')}${found.length > 8 ? ', …' : ''})` : ''}. ` +
      'Log them by parameter name, e.g. Lightning\'s self.log_dict(grad_norm(self, norm_type=2)), or ' +
      'writer.add_histogram(f"gradients/{name}", p.grad, step) for name, p in model.named_parameters().',
    );
  }

  const stepSet = new Set<number>();
  for (const s of params.values()) for (const k of [...s.grad.keys(), ...s.param.keys()]) stepSet.add(k);
  const steps = [...stepSet].sort((a, b) => a - b);
  // Steps stay TensorBoard's global_step as logged. Its base is known when step 0 was logged, or from Lightning
  // (its grad_norm and LearningRateMonitor tags; its global_step counts optimiser steps from 0); else it is the
  // writer's choice, and the record says so (stepBase null) rather than claim the steps count from 1.
  const lightning = tags.some(({ tag }) => /^grad_([0-9.]+|inf)_norm/.test(tag) || /^lr-\w+/.test(tag));
  const stepBase = steps[0] === 0 || lightning ? 0 : null;

  // Modules: every parameter's owner and their ancestors; a module's parameters are those beneath it.
  const paths = new Set<string>(['']);
  for (const name of params.keys()) {
    const parts = ownerOf(name).split('.').filter(Boolean);
    for (let k = 1; k <= parts.length; k++) paths.add(parts.slice(0, k).join('.'));
  }
  const under = (path: string) => [...params.values()].filter((s) => path === '' || s.name.startsWith(`${path}.`));
  const combine = (list: ParamSeries[], key: Quantity): Series =>
    steps.map((step) => {
      if (!list.some((s) => s[key].size)) return null;
      let sum = 0;
      for (const s of list) {
        if (!s[key].size) continue; // a parameter never logged for this quantity (frozen, or not logged at all)
        const v = s[key].get(step);
        if (v === undefined) return null; // logged at other steps only: the combination would be partial
        sum += v * v;
      }
      return Math.sqrt(sum);
    });
  const firstOrder = (path: string) => Math.min(...under(path).map((s) => s.order));
  const ordered = [...paths].sort((a, b) => firstOrder(a) - firstOrder(b) || a.split('.').length - b.split('.').length || (a < b ? -1 : 1));
  const none = (): Series => steps.map(() => null);
  const modules: ModuleSeries[] = ordered.map((path, depth) => {
    const list = under(path);
    return {
      path,
      depth,
      leaf: ![...paths].some((p) => p !== path && (path === '' ? p !== '' : p.startsWith(`${path}.`))),
      gradNorm: combine(list, 'grad'),
      paramNorm: combine(list, 'param'),
      updateRatio: none(), actMean: none(), actStd: none(), zeroFraction: none(),
    };
  });

  const valuesAt = (tag: string | undefined): Series => {
    if (!tag) return none();
    const byStep = new Map(events.scalars.get(tag)!.map((p) => [p.step, p.value]));
    return steps.map((s) => byStep.get(s) ?? null);
  };
  const lossTag = pickLoss(lossTags);
  const root = modules.find((m) => m.path === '')!;
  const gradNormTotal = totalTag ? valuesAt(totalTag) : root.gradNorm;
  const lrPoints = lrTag ? events.scalars.get(lrTag)! : [];
  const optimizerKind = lrTag && /^lr-(\w+)/i.exec(lrTag)?.[1]?.toLowerCase();
  used.loss = lossTag;
  used.gradTotal = totalTag;
  used.lr = lrTag;
  const record: TrainingRecord = {
    schema: TRAINING_SCHEMA,
    producer: 'TensorBoard event file',
    model: { name: origin },
    // The record needs an lr; 0 with kind 'unknown' when the logs have none (the hover then names no optimiser).
    optimizer: { kind: optimizerKind || 'unknown', lr: lrPoints.length ? lrPoints[0].value : 0 },
    settings: { source: 'tensorboard', events: events.events, ...(lossTag ? { lossTag } : {}) },
    steps,
    stepBase,
    loss: valuesAt(lossTag),
    gradNormTotal,
    modules,
  };
  return { record, used, skipped };
}
