import * as vscode from 'vscode';
import type { Thresholds } from '../engine/inspect/diagnose';
import { DEFAULT_THRESHOLDS } from '../engine/inspect/diagnose';
import type { PanelPosition } from './panel';
import { DEFAULT_MEMORY_BUDGET_MB, DEFAULT_RUN_SETTINGS, DEFAULT_TRAIN_SETTINGS, RunSettings, TrainSettings } from './protocol';

/** Typed access to the `gradientLens.*` settings declared in package.json. */
export function section(scope?: vscode.Uri): vscode.WorkspaceConfiguration {
  return vscode.workspace.getConfiguration('gradientLens', scope);
}

export function runSettings(scope?: vscode.Uri): RunSettings {
  const c = section(scope);
  return {
    seed: c.get('run.seed', DEFAULT_RUN_SETTINGS.seed),
    batch: c.get('run.batch', DEFAULT_RUN_SETTINGS.batch),
    sequenceLength: c.get('run.sequenceLength', DEFAULT_RUN_SETTINGS.sequenceLength),
    loss: c.get('run.loss', DEFAULT_RUN_SETTINGS.loss),
    backend: c.get('run.backend', DEFAULT_RUN_SETTINGS.backend),
    dtype: c.get('run.precision', DEFAULT_RUN_SETTINGS.dtype),
    attentionSample: c.get('run.attentionSample', DEFAULT_RUN_SETTINGS.attentionSample),
    mode: c.get('run.mode', DEFAULT_RUN_SETTINGS.mode) === 'eval' ? 'eval' : 'train',
  };
}

/** The model file the gradientLens.model setting names ('' when unset); it wins over any export beside the source. */
export function configuredModel(scope?: vscode.Uri): string {
  return section(scope).get<string>('model', '').trim();
}

/** Tensor memory a run may take, in MB (gradientLens.run.memoryBudgetMB); also the largest model file read. */
export function memoryBudgetMB(scope?: vscode.Uri): number {
  const v = section(scope).get<number>('run.memoryBudgetMB', DEFAULT_MEMORY_BUDGET_MB);
  return typeof v === 'number' && Number.isFinite(v) && v >= 16 ? v : DEFAULT_MEMORY_BUDGET_MB;
}

export function thresholds(scope?: vscode.Uri): Thresholds {
  const c = section(scope);
  return {
    vanishingRatio: c.get('thresholds.vanishingRatio', DEFAULT_THRESHOLDS.vanishingRatio),
    explodingNorm: c.get('thresholds.explodingNorm', DEFAULT_THRESHOLDS.explodingNorm),
    explodingRatio: c.get('thresholds.explodingRatio', DEFAULT_THRESHOLDS.explodingRatio),
    deadUnitFraction: c.get('thresholds.deadUnitFraction', DEFAULT_THRESHOLDS.deadUnitFraction),
    zeroRatio: c.get('thresholds.zeroRatio', DEFAULT_THRESHOLDS.zeroRatio),
  };
}

export function trainSettings(scope?: vscode.Uri): TrainSettings {
  const c = section(scope);
  const d = DEFAULT_TRAIN_SETTINGS;
  return {
    steps: c.get('train.steps', d.steps),
    optimizer: c.get('train.optimizer', d.optimizer),
    lr: c.get('train.lr', d.lr),
    momentum: c.get('train.momentum', d.momentum),
    weightDecay: c.get('train.weightDecay', d.weightDecay),
    clipNorm: c.get('train.clipNorm', d.clipNorm),
    clipValue: c.get('train.clipValue', d.clipValue),
    data: c.get('train.data', d.data),
  };
}

/** Where a new panel opens (gradientLens.panel.position). */
export function panelPosition(scope?: vscode.Uri): PanelPosition {
  return section(scope).get<string>('panel.position', 'below') === 'beside' ? 'beside' : 'below';
}
