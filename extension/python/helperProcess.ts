/**
 * Runs python/gradlens_export.py in a child process: one JSON request on stdin, JSON-line messages back
 * (progress, questions for the user, then a result or an error). The user's code runs in that process, so it
 * is killed (its whole process group) on cancel and when the time limit passes; time spent waiting for the
 * user's answer does not count. No vscode import: the tests run it with a real interpreter.
 */
import { spawn } from 'node:child_process';

export const HELPER_PROTOCOL = 1;

/** A frame of the user's code from a Python traceback (1-based line). */
export interface UserFrame {
  file: string;
  line: number;
  name: string;
}

export type HelperErrorCode =
  | 'no-torch' | 'import-failed' | 'no-model-class' | 'needs-arguments' | 'example-failed' | 'build-failed'
  | 'input-unknown' | 'export-failed' | 'verify-failed' | 'cancelled' | 'timeout' | 'crashed' | 'internal' | 'protocol';

/** Why the helper failed, as the helper (or this runner) says. */
export class HelperFailure extends Error {
  constructor(readonly code: HelperErrorCode, message: string, readonly frames: UserFrame[] = [], readonly detail?: string, readonly stderr = '') {
    super(message);
    this.name = 'HelperFailure';
  }
}

export interface HelperAsk {
  id: number;
  kind: 'class' | 'inputShape';
  title?: string;
  prompt?: string;
  options?: { name: string; line: number; doc: string }[];
  tried?: string[];
}

export interface HelperHandlers {
  onProgress?(message: string): void;
  onHello?(hello: { python: string; pythonVersion: string; torch: string }): void;
  /** The user's answer, or undefined when they declined (the helper then stops with 'cancelled'). */
  onAsk?(ask: HelperAsk): Promise<string | undefined>;
  /** An answer that worked and is worth remembering (e.g. the input shape the user typed). */
  onRemember?(fields: Record<string, unknown>): void;
}

export interface HelperOptions {
  cwd: string;
  /** Wall-clock limit for the helper's own work (asks excluded). */
  timeoutMs: number;
  signal?: AbortSignal;
  env?: NodeJS.ProcessEnv;
  /** Keep this much of stderr for error reports. */
  stderrLimit?: number;
  /** Called with the child's process id once it started. */
  onSpawn?(pid: number): void;
}

export type HelperResult = Record<string, unknown>;

/** Runs one request; resolves with the helper's result, rejects with a HelperFailure. */
export function runHelper(python: string, script: string, request: Record<string, unknown>, handlers: HelperHandlers, options: HelperOptions): Promise<HelperResult> {
  return new Promise((resolve, reject) => {
    const limit = options.stderrLimit ?? 20_000;
    const child = spawn(python, ['-u', script], {
      cwd: options.cwd,
      env: { ...process.env, ...options.env, PYTHONIOENCODING: 'utf-8', PYTHONDONTWRITEBYTECODE: '1' },
      stdio: ['pipe', 'pipe', 'pipe'],
      // Its own process group, so that killing it also ends what the user's code started.
      detached: process.platform !== 'win32',
      windowsHide: true,
    });
    if (child.pid) options.onSpawn?.(child.pid);
    let stderr = '';
    let buffered = '';
    let settled = false;
    let outcome: { result?: HelperResult; failure?: HelperFailure } | undefined;
    let remaining = options.timeoutMs;
    let startedAt = Date.now();
    let timer: ReturnType<typeof setTimeout> | undefined;

    const kill = () => {
      try {
        if (process.platform !== 'win32' && child.pid) process.kill(-child.pid, 'SIGKILL');
        else child.kill('SIGKILL');
      } catch {
        child.kill('SIGKILL');
      }
    };
    const finish = (failure: HelperFailure | undefined, result?: HelperResult) => {
      if (settled) return;
      settled = true;
      if (timer) clearTimeout(timer);
      options.signal?.removeEventListener('abort', onAbort);
      if (failure) reject(failure);
      else resolve(result!);
    };
    const pause = () => {
      if (timer) clearTimeout(timer);
      timer = undefined;
      remaining -= Date.now() - startedAt;
    };
    const resume = () => {
      startedAt = Date.now();
      timer = setTimeout(() => {
        kill();
        finish(new HelperFailure('timeout', `took longer than ${Math.round(options.timeoutMs / 1000)} s`, [], undefined, stderr));
      }, Math.max(0, remaining));
    };
    const onAbort = () => {
      kill();
      finish(new HelperFailure('cancelled', 'cancelled'));
    };
    if (options.signal?.aborted) {
      onAbort();
      return;
    }
    options.signal?.addEventListener('abort', onAbort);
    resume();

    const answer = (id: number, value: string | undefined) => {
      if (child.stdin.writable) child.stdin.write(`${JSON.stringify(value === undefined ? { id, cancel: true } : { id, value })}\n`);
    };
    const onMessage = (m: Record<string, unknown>) => {
      switch (m.type) {
        case 'progress':
          handlers.onProgress?.(String(m.message));
          break;
        case 'hello':
          handlers.onHello?.(m as never);
          break;
        case 'remember':
          handlers.onRemember?.(m);
          break;
        case 'ask': {
          const ask = m as unknown as HelperAsk;
          if (!handlers.onAsk) {
            answer(ask.id, undefined);
            break;
          }
          pause();
          handlers.onAsk(ask).then((value) => {
            if (settled) return;
            resume();
            answer(ask.id, value);
          }, () => answer(ask.id, undefined));
          break;
        }
        case 'result': {
          const { type: _type, ...result } = m;
          outcome = { result };
          break;
        }
        case 'error':
          outcome = { failure: new HelperFailure(String(m.code) as HelperErrorCode, String(m.message), (m.frames as UserFrame[]) ?? [], m.detail ? String(m.detail) : undefined, stderr) };
          break;
      }
    };

    child.stdout.setEncoding('utf8');
    child.stdout.on('data', (chunk: string) => {
      buffered += chunk;
      for (let nl = buffered.indexOf('\n'); nl >= 0; nl = buffered.indexOf('\n')) {
        const line = buffered.slice(0, nl).trim();
        buffered = buffered.slice(nl + 1);
        if (!line) continue;
        try {
          onMessage(JSON.parse(line) as Record<string, unknown>);
        } catch {
          // Not a message of the helper (it writes only JSON lines to this pipe): keep it for the error report.
          stderr = (stderr + line + '\n').slice(-limit);
        }
      }
    });
    child.stderr.setEncoding('utf8');
    child.stderr.on('data', (chunk: string) => {
      stderr = (stderr + chunk).slice(-limit);
    });
    child.stdin.on('error', () => {}); // the helper may exit before reading an answer
    child.on('error', (err) => finish(new HelperFailure('crashed', `could not start ${python}: ${err.message}`, [], undefined, stderr)));
    child.on('close', (code, signal) => {
      if (outcome?.result) finish(undefined, outcome.result);
      else if (outcome?.failure) finish(new HelperFailure(outcome.failure.code, outcome.failure.message, outcome.failure.frames, outcome.failure.detail, stderr));
      else {
        const tail = stderr.trim().split('\n').slice(-3).join(' | ');
        finish(new HelperFailure('crashed', `the Python helper ended (${signal ?? `exit code ${code}`}) without a result${tail ? `: ${tail}` : ''}`, [], undefined, stderr));
      }
    });
    child.stdin.write(`${JSON.stringify({ protocol: HELPER_PROTOCOL, ...request })}\n`);
  });
}
