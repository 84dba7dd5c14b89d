/** How a fuzz case ended, and how an error is judged clear or not. */

/**
 * ok: ran, every non-finite number flagged; clear: refused with an OnnxImportError that names what is
 * wrong; unclear: an internal error or a message in JavaScript's words; crash: the process died (out of
 * memory, a stack overflow outside JS, an abort); hang: over the time limit; silent: a NaN/Inf result
 * shown without a finding.
 */
export type FuzzOutcome = 'ok' | 'clear' | 'unclear' | 'crash' | 'hang' | 'silent';

export const OUTCOMES: readonly FuzzOutcome[] = ['ok', 'clear', 'unclear', 'crash', 'hang', 'silent'];

/** Messages in the runtime's words, not ours: they name no node, value or rule a user could act on. */
const RAW_JS = [
  /Cannot read propert/i, /Cannot set propert/i, /\bundefined\b/, /is not a function/, /is not iterable/, /Invalid typed array length/,
  /Invalid array length/, /native code/, /Maximum call stack/, /\[object Object\]/, /out of memory/i, /Array buffer allocation failed/,
  /^internal:/, /Unexpected token/, /function \w*\(/,
];

export function classifyError(e: unknown, ImportError: abstract new (...args: never[]) => Error): { outcome: FuzzOutcome; message: string } {
  const err = e instanceof Error ? e : new Error(String(e));
  const message = `${err.name}: ${err.message}`;
  if (!(err instanceof ImportError)) return { outcome: 'unclear', message };
  if (RAW_JS.some((re) => re.test(err.message))) return { outcome: 'unclear', message };
  return { outcome: 'clear', message };
}
