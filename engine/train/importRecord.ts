/**
 * One entry point for the files "Import Training Statistics" accepts: a training record (JSON,
 * `gradient-lens/training@1`), a training stream (JSON lines, `gradient-lens/training-stream@1`, complete or
 * still being written, or left by a killed job) or TensorBoard event files. Detects the format from the
 * content, not the name.
 */
import { parseTrainingRecord, StepBase, TrainingRecord, TrainingRecordError } from './record';
import { looksLikeTrainingStream, parseTrainingStream } from './stream';
import { looksLikeTfRecord, readEvents } from './tensorboard';
import { tensorboardRecord } from './tensorboardRecord';

export type TrainingFileKind = 'record' | 'stream' | 'tensorboard';

export interface ImportedTraining {
  record: TrainingRecord;
  kind: TrainingFileKind;
  /** What the user should know about the import (a torn last line, TensorBoard tags not used...). */
  notes: string[];
}

/** TensorBoard names its files events.out.tfevents.<time>.<host>...; a run folder may hold several. */
export const isEventFileName = (name: string) => /(^|[\\/])events\.out\.tfevents\./.test(name);

export function detectTrainingFile(bytes: Uint8Array): TrainingFileKind | null {
  if (looksLikeTfRecord(bytes)) return 'tensorboard';
  const head = new TextDecoder().decode(bytes.subarray(0, 4096)).replace(/^\uFEFF/, '').trimStart();
  if (looksLikeTrainingStream(head)) return 'stream';
  if (head.startsWith('{')) return 'record';
  return null;
}

/**
 * Reads one training file. `siblings` are the other event files of a TensorBoard run (same folder),
 * merged with it; ignored for the other formats.
 */
export function importTrainingFile(name: string, bytes: Uint8Array, siblings: { name: string; bytes: Uint8Array }[] = []): ImportedTraining {
  const kind = detectTrainingFile(bytes);
  const base = name.split(/[\\/]/).pop() ?? name;
  switch (kind) {
    case 'record':
      return { record: parseTrainingRecord(new TextDecoder().decode(bytes), base), kind, notes: [] };
    case 'stream': {
      const { record, ended, tornBytes } = parseTrainingStream(bytes, base);
      const notes: string[] = [];
      if (!ended) notes.push(`${base} has no end line: the job is still running or was stopped; ${record.steps.length} recorded steps read${tornBytes ? ` (an incomplete last line of ${tornBytes} bytes ignored)` : ''}`);
      return { record, kind, notes };
    }
    case 'tensorboard': {
      const files = [{ name: base, bytes }, ...siblings.filter((s) => s.name !== name)];
      const events = files.map((f) => readEvents(f.bytes, f.name.split(/[\\/]/).pop() ?? f.name));
      const folder = name.split(/[\\/]/).slice(-2, -1)[0] || base;
      const { record, used, skipped } = tensorboardRecord(events, folder);
      record.producer = `TensorBoard (${files.length === 1 ? base : `${files.length} event files`})`;
      const notes = [
        `${used.grad} gradient and ${used.param} weight tags used; loss: ${used.loss ?? 'none found'}; total gradient norm: ${used.gradTotal ?? 'combined from the parameters'}`,
        stepsNote(record.stepBase ?? 1, record.steps),
        ...skippedNotes(skipped),
      ];
      const truncated = events.reduce((a, e) => a + e.truncatedBytes, 0);
      if (truncated) notes.push(`${truncated} bytes at the end of an event file do not make a whole record (a writer still running or killed): ignored`);
      return { record, kind, notes };
    }
    default:
      throw new TrainingRecordError(`${base}: not a Gradient Lens training record (JSON), training stream (JSON lines) or TensorBoard event file`);
  }
}

/** How a TensorBoard run's step numbers read: they are its global_step as logged, never shifted. */
function stepsNote(base: StepBase, steps: number[]): string {
  const range = steps.length ? `steps ${steps[0]}–${steps[steps.length - 1]}` : 'no steps';
  if (base === 0) return `${range} are TensorBoard's global_step as logged, counted from 0 (step 0 is the first optimiser step)`;
  return `${range} are TensorBoard's global_step as logged; the run logged no step 0 and no Lightning tags, so whether it counts from 0 or 1 is not known`;
}

/** Tags not used, one note per reason: `37 tags not used (an L∞ norm …): grad_inf_norm/tok_emb.weight, …`. */
function skippedNotes(skipped: { tag: string; reason: string }[]): string[] {
  const byReason = new Map<string, string[]>();
  for (const s of skipped) byReason.set(s.reason, [...(byReason.get(s.reason) ?? []), s.tag]);
  return [...byReason].map(([reason, tags]) => `${tags.length === 1 ? 'tag' : `${tags.length} tags`} not used (${reason}): ${tags.slice(0, 3).join(', ')}${tags.length > 3 ? ', …' : ''}`);
}
