/**
 * Runs fuzz cases in child processes (child.ts) with a time limit per case and a heap limit per process,
 * and classifies each (classify.ts). A child runs cases one after another (starting Node per case would
 * take most of the time); when it dies or overruns, the case it was on is a crash or a hang, the child is
 * killed, and a new one continues with the next case, so every case is judged on its own.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import type { FuzzCase } from './cases';
import { FuzzOutcome, OUTCOMES } from './classify';

export interface FuzzResult {
  id: string;
  kind: FuzzCase['kind'];
  what: string;
  outcome: FuzzOutcome;
  message: string;
  ms: number;
}

export interface FuzzOptions {
  /** Per case, wall clock. */
  timeoutMs?: number;
  /** V8 heap limit of a child (--max-old-space-size). */
  heapMB?: number;
  /** Children at once. */
  parallel?: number;
  onResult?: (r: FuzzResult) => void;
}

const CHILD = path.join(__dirname, 'child.js');

/** Int attributes the ONNX spec uses as booleans. */
const FLAGS = new Set(['is_causal', 'interleaved', 'fmod', 'saturate', 'antialias', 'exclude_outside', 'transA', 'transB', 'keepdims', 'count_include_pad', 'ceil_mode', 'allowzero', 'upper', 'noop_with_empty_axes', 'select_last_index', 'training_mode', 'exclusive', 'reverse', 'storage_order', 'center_point_box', 'align_corners', 'detect_negative', 'detect_positive', 'onesided', 'inverse', 'periodic', 'layout', 'new_axis', 'sorted', 'largest', 'broadcast', 'spatial', 'is_test']);

/** Runs `cases` and returns one result per case, in order. */
export async function runFuzz(cases: readonly FuzzCase[], options: FuzzOptions = {}): Promise<FuzzResult[]> {
  const timeoutMs = options.timeoutMs ?? 20_000;
  const heapMB = options.heapMB ?? 1024;
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gl-fuzz-'));
  const files = cases.map((c, i) => {
    const f = path.join(dir, `${i}.onnx`);
    fs.writeFileSync(f, c.bytes);
    return f;
  });
  const results: (FuzzResult | undefined)[] = new Array(cases.length);
  const record = (i: number, outcome: FuzzOutcome, message: string, ms: number) => {
    const c = cases[i];
    // An int attribute mutated outside {0, 1}: the ONNX reference reads flags as nonzero-is-true (as the
    // engine does: Attrs.flag), while onnxruntime-web reads some (Attention is_causal) as == 1. Such a
    // disagreement is onnxruntime's, not a silent wrong number of ours.
    const odd = /attribute (\w+) = (-?\d+)$/.exec(c.what);
    if (outcome === 'silent' && odd && FLAGS.has(odd[1]) && !['0', '1'].includes(odd[2]) && /in onnxruntime-web|from onnxruntime-web/.test(message)) {
      outcome = 'ok';
      message = `${message} (flag ${odd[1]} = ${odd[2]}: the ONNX reference reads nonzero as true, as the engine does)`;
    }
    results[i] = { id: c.id, kind: c.kind, what: c.what, outcome, message, ms };
    options.onResult?.(results[i]!);
  };
  let next = 0;

  /** One child over the cases from `next` on; resolves when it has ended (all done, or it died). */
  const worker = async (): Promise<void> => {
    while (next < cases.length) {
      const batch: number[] = [];
      while (next < cases.length && batch.length < 200) batch.push(next++);
      let pending = [...batch];
      while (pending.length) pending = await runChild(pending);
    }
  };

  /** Runs the cases in one child; returns the ones it did not get to (after a crash or hang). */
  const runChild = (indices: number[]): Promise<number[]> => new Promise((resolve) => {
    const child = spawn(process.execPath, [`--max-old-space-size=${heapMB}`, CHILD, ...indices.map((i) => files[i])], { stdio: ['ignore', 'pipe', 'pipe'] });
    const byFile = new Map(indices.map((i) => [files[i], i]));
    let current: number | null = null;
    let started = 0;
    let timer: NodeJS.Timeout | undefined;
    let killedForTime = false;
    let stderr = '';
    let buffer = '';
    const done = new Set<number>();
    child.stderr.on('data', (d: Buffer) => {
      stderr = (stderr + d.toString()).slice(-4000);
    });
    child.stdout.on('data', (d: Buffer) => {
      buffer += d.toString();
      let nl: number;
      while ((nl = buffer.indexOf('\n')) >= 0) {
        const line = buffer.slice(0, nl);
        buffer = buffer.slice(nl + 1);
        let msg: { start?: string; file?: string; outcome?: FuzzOutcome; message?: string; ms?: number };
        try {
          msg = JSON.parse(line);
        } catch {
          continue; // a case printed something: not a protocol line
        }
        if (msg.start !== undefined) {
          current = byFile.get(msg.start) ?? null;
          started = Date.now();
          clearTimeout(timer);
          timer = setTimeout(() => {
            killedForTime = true;
            child.kill('SIGKILL');
          }, timeoutMs);
        } else if (msg.file !== undefined && msg.outcome && OUTCOMES.includes(msg.outcome)) {
          const i = byFile.get(msg.file)!;
          clearTimeout(timer);
          record(i, msg.outcome, msg.message ?? '', msg.ms ?? 0);
          done.add(i);
          current = null;
        }
      }
    });
    child.on('close', (code, signal) => {
      clearTimeout(timer);
      if (current !== null && !done.has(current)) {
        const ms = Date.now() - started;
        if (killedForTime) record(current, 'hang', `no result after ${timeoutMs} ms`, ms);
        else record(current, 'crash', `the process died (${signal ?? `exit ${code}`}): ${lastLines(stderr)}`, ms);
        done.add(current);
      }
      const rest = indices.filter((i) => !done.has(i));
      // A child that died before starting any case would loop forever: judge the first case a crash.
      if (rest.length && rest.length === indices.length) {
        record(rest[0], 'crash', `the process died before the case started (${signal ?? `exit ${code}`}): ${lastLines(stderr)}`, 0);
        rest.shift();
      }
      resolve(rest);
    });
  });

  try {
    await Promise.all(Array.from({ length: Math.max(1, options.parallel ?? 1) }, worker));
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
  return results as FuzzResult[];
}

function lastLines(text: string): string {
  return text.trim().split('\n').slice(-3).join(' | ').slice(0, 400);
}

/** Counts per outcome, and per kind. */
export function summarize(results: readonly FuzzResult[]): Record<string, Record<FuzzOutcome, number>> {
  const out: Record<string, Record<FuzzOutcome, number>> = {};
  for (const r of results) {
    for (const key of ['all', r.kind]) {
      out[key] ??= Object.fromEntries(OUTCOMES.map((o) => [o, 0])) as Record<FuzzOutcome, number>;
      out[key][r.outcome]++;
    }
  }
  return out;
}
