/**
 * Turns a report into findings: vanishing and exploding gradients across depth, dead ReLU units,
 * parameters whose gradient is zero or absent, and NaN/Inf. Pure, so the extension can re-run it when
 * the user changes thresholds without re-running the model.
 */
import { InspectionReport, ModuleReport, ParameterReport } from './report';

export interface Thresholds {
  /** A layer whose gradient RMS is below this fraction of the largest layer's is vanishing. */
  vanishingRatio: number;
  /** A layer whose gradient norm exceeds this is exploding... */
  explodingNorm: number;
  /** ...as is one whose ‖∇W‖/‖W‖ exceeds this. */
  explodingRatio: number;
  /** Warn when more than this fraction of a ReLU's units are zero for every sample. */
  deadUnitFraction: number;
  /** A gradient below this fraction of the median layer's RMS counts as zero (float rounding). */
  zeroRatio: number;
}

export const DEFAULT_THRESHOLDS: Thresholds = {
  vanishingRatio: 1e-3,
  explodingNorm: 1e2,
  explodingRatio: 10,
  deadUnitFraction: 0.25,
  zeroRatio: 1e-6,
};

/** 'export-lost': the export lost or altered a PyTorch parameter (its numbers are not PyTorch's); 'export-restored': the engine undid an export change. */
export type FindingKind = 'vanishing' | 'exploding' | 'dead-units' | 'zero-gradient' | 'no-gradient' | 'non-finite' | 'export-lost' | 'export-restored';

export interface Finding {
  kind: FindingKind;
  severity: 'error' | 'warning' | 'info';
  modulePath: string;
  parameter?: string;
  message: string;
}

const fmt = (v: number) => v.toExponential(1);

function median(values: number[]): number {
  const s = [...values].sort((a, b) => a - b);
  const m = s.length >> 1;
  return s.length % 2 ? s[m] : (s[m - 1] + s[m]) / 2;
}

function rms(p: ParameterReport): number {
  const count = p.shape.reduce((a, b) => a * b, 1);
  return p.grad ? p.grad.norm / Math.sqrt(Math.max(count, 1)) : 0;
}

export function diagnose(report: InspectionReport, thresholds: Thresholds = DEFAULT_THRESHOLDS): Finding[] {
  const findings: Finding[] = [];
  const layers = report.modules
    .filter((m) => m.leaf && m.gradRms !== null && m.gradRms > 0 && m.parameters.some((p) => p.trainable))
    .sort((a, b) => a.depth - b.depth);
  const typical = layers.length ? median(layers.map((m) => m.gradRms!)) : 0;

  findings.push(...nonFinite(report));
  findings.push(...exportFindings(report));
  findings.push(...vanishing(layers, thresholds));
  findings.push(...exploding(layers, thresholds));
  for (const m of report.modules) {
    if (m.deadUnitFraction !== null && m.deadUnitFraction > thresholds.deadUnitFraction) {
      findings.push({
        kind: 'dead-units',
        severity: 'warning',
        modulePath: m.path,
        message: `${(m.deadUnitFraction * 100).toFixed(0)}% of the units after ${m.path || 'this layer'}'s ReLU are zero for every sample: they pass no gradient (dead units).`,
      });
    }
    for (const p of m.parameters) {
      if (!p.trainable) continue;
      if (!p.grad) {
        findings.push({ kind: 'no-gradient', severity: 'warning', modulePath: m.path, parameter: p.name, message: `${p.name} gets no gradient: ${p.zeroReason ?? 'it does not affect the loss'}.` });
      } else if (p.grad.nanCount === 0 && p.grad.infCount === 0 && (p.grad.norm === 0 || rms(p) < thresholds.zeroRatio * typical)) {
        const size = p.grad.norm === 0 ? 'exactly zero' : `zero up to rounding (‖∇‖ ${fmt(p.grad.norm)})`;
        findings.push({ kind: 'zero-gradient', severity: p.zeroReason ? 'info' : 'warning', modulePath: m.path, parameter: p.name, message: `${p.name}'s gradient is ${size}${p.zeroReason ? `: ${p.zeroReason}` : ''}.` });
      }
    }
  }
  return findings;
}

function nonFinite(report: InspectionReport): Finding[] {
  const out: Finding[] = [];
  if (report.firstNonFinite) {
    const f = report.firstNonFinite;
    out.push({ kind: 'non-finite', severity: 'error', modulePath: f.modulePath, message: `First NaN/Inf appears in the ${f.phase} pass at ${f.node}${f.modulePath ? ` (${f.modulePath})` : ''}.` });
  }
  for (const m of report.modules) {
    for (const p of m.parameters) {
      if (p.grad && (p.grad.nanCount || p.grad.infCount)) {
        out.push({ kind: 'non-finite', severity: 'error', modulePath: m.path, parameter: p.name, message: `${p.name}'s gradient has ${p.grad.nanCount} NaN and ${p.grad.infCount} Inf values.` });
      }
    }
  }
  return out;
}

/**
 * Vanishing: layers whose gradient RMS is a tiny fraction of the largest. The message gives the average
 * shrink factor per layer between the largest and the smallest, which is what users act on.
 */
function vanishing(layers: ModuleReport[], t: Thresholds): Finding[] {
  if (layers.length < 2) return [];
  const top = layers.reduce((a, b) => (b.gradRms! > a.gradRms! ? b : a));
  const out: Finding[] = [];
  for (const m of layers) {
    const ratio = m.gradRms! / top.gradRms!;
    if (ratio >= t.vanishingRatio) continue;
    const steps = Math.abs(layers.indexOf(top) - layers.indexOf(m));
    const perLayer = steps > 0 ? Math.pow(1 / ratio, 1 / steps) : 1 / ratio;
    out.push({
      kind: 'vanishing',
      severity: 'warning',
      modulePath: m.path,
      message: `Vanishing gradient: RMS ${fmt(m.gradRms!)} is ${fmt(ratio)}× that of ${top.path} (${fmt(top.gradRms!)}), shrinking about ${perLayer.toFixed(1)}× per layer over ${steps} layers.`,
    });
  }
  return out;
}

function exploding(layers: ModuleReport[], t: Thresholds): Finding[] {
  const out: Finding[] = [];
  for (const m of layers) {
    const big = m.gradNorm !== null && m.gradNorm > t.explodingNorm;
    const steep = m.gradToWeight !== null && m.gradToWeight > t.explodingRatio;
    if (!big && !steep) continue;
    out.push({
      kind: 'exploding',
      severity: 'warning',
      modulePath: m.path,
      message: `Exploding gradient: ‖∇‖ ${fmt(m.gradNorm ?? 0)}${m.gradToWeight !== null ? `, ‖∇W‖/‖W‖ ${fmt(m.gradToWeight)}` : ''} (thresholds ${fmt(t.explodingNorm)} and ${fmt(t.explodingRatio)}).`,
    });
  }
  return out;
}

/**
 * The export's parameter changes, on the nearest module the report has (a folded BatchNorm or an embedding
 * folded into a constant has no node of its own left): a warning where the numbers are not PyTorch's.
 */
function exportFindings(report: InspectionReport): Finding[] {
  const paths = new Set(report.modules.map((m) => m.path));
  const nearest = (path: string): string => {
    for (let p = path; ; p = p.slice(0, Math.max(0, p.lastIndexOf('.')))) if (paths.has(p) || p === '') return p;
  };
  return (report.exportNotes ?? []).map((n) => ({
    kind: n.restored ? 'export-restored' as const : 'export-lost' as const,
    severity: n.restored ? 'info' as const : 'warning' as const,
    modulePath: nearest(n.modulePath),
    parameter: n.parameters.length === 1 ? n.parameters[0] : undefined,
    message: `Export: ${n.message}.`,
  }));
}
