/**
 * A run request as engine options: the one translation both engines use (the panel's worker,
 * webview/engine-worker.ts, and the extension host's, extension/hostEngine/worker.ts), so the same request
 * computes the same numbers whichever engine runs it. No vscode import.
 */
import type { InspectOptions } from '../engine/inspect/onnxInspect';
import type { RunCapture } from '../engine/inspect/capture';
import type { RunRequest } from './protocol';

export function inspectOptions(request: RunRequest, onProgress: (message: string) => void, onCapture?: (capture: RunCapture) => void): InspectOptions {
  const s = request.settings;
  return {
    externalData: request.externalData,
    seed: s.seed,
    batch: s.batch,
    sequenceLength: s.sequenceLength,
    loss: s.loss,
    dtype: s.dtype,
    mode: s.mode,
    watches: request.watches,
    attentionSample: Math.min(s.attentionSample ?? 0, Math.max(0, s.batch - 1)),
    memoryBudget: request.memoryBudgetMB !== undefined ? request.memoryBudgetMB * 2 ** 20 : undefined,
    onProgress,
    onCapture: request.capture ? onCapture : undefined,
  };
}
