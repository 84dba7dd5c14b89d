/**
 * What the user reads when exporting or verifying fails: one message that names the thing at fault and the
 * way out, and, for an exception in the user's code, a Problem at the user's line from the traceback.
 * No vscode import.
 */
import * as path from 'node:path';
import type { HelperFailure, UserFrame } from './helperProcess';
import type { Interpreter, InterpreterProbe } from './interpreter';

/** An interpreter and what its probe found. */
export type PythonInfo = Interpreter & Pick<InterpreterProbe, 'version' | 'torch'>;

export type FailureAction = 'openSettings' | 'selectInterpreter' | 'showOutput';

export interface FailureReport {
  message: string;
  actions: FailureAction[];
  /** Where the user's code failed (0-based line), for a Problem. */
  problem?: { file: string; line: number; message: string };
}

const SOURCE: Record<Interpreter['source'], string> = {
  setting: 'the gradientLens.python setting',
  'python-extension': 'the Python extension',
  path: 'PATH',
};

export function noInterpreterMessage(file: string, tried: readonly string[]): FailureReport {
  return {
    message: `Gradient Lens needs Python with PyTorch to export ${path.basename(file)}, and found no Python interpreter (tried ${tried.join('; ')}). Set gradientLens.python to an interpreter with torch, or export to ONNX yourself (see the README).`,
    actions: ['openSettings'],
  };
}

export function noTorchMessage(python: PythonInfo, detail?: string): FailureReport {
  return {
    message: `${python.path} (Python ${python.version}, from ${SOURCE[python.source]}) cannot import torch${detail ? `: ${detail}` : ''}. Pick an interpreter with PyTorch: set gradientLens.python, or select one with "Python: Select Interpreter".`,
    actions: ['openSettings', 'selectInterpreter'],
  };
}

/** The innermost frame in `file`, else the innermost frame in any of the user's files. */
export function userLine(frames: readonly UserFrame[], file: string): UserFrame | undefined {
  const inFile = frames.filter((f) => path.resolve(f.file) === path.resolve(file));
  return inFile[inFile.length - 1] ?? frames[frames.length - 1];
}

/** The report for a failed helper run (`what`: 'export' or 'verify'). */
export function describeFailure(f: HelperFailure, file: string, python: PythonInfo, what: 'export' | 'verify'): FailureReport {
  const name = path.basename(file);
  const doing = what === 'export' ? `export ${name}` : `verify ${name} against PyTorch`;
  const actions: FailureAction[] = ['showOutput'];
  switch (f.code) {
    case 'no-torch':
      return noTorchMessage(python, f.message.replace(/^.*cannot import torch: /, ''));
    case 'import-failed':
    case 'example-failed':
    case 'build-failed': {
      const at = userLine(f.frames, file);
      const message = `Gradient Lens could not ${doing}: ${f.message}${at ? ` (${path.basename(at.file)}:${at.line})` : ''}`;
      return { message, actions, problem: at && { file: at.file, line: Math.max(0, at.line - 1), message: f.message } };
    }
    case 'timeout':
      return { message: `Gradient Lens stopped the ${what} of ${name}: it ${f.message} (gradientLens.export.timeout). The model's import or construction may be slow, or wait for input.`, actions: ['openSettings', 'showOutput'] };
    case 'cancelled':
      return { message: 'cancelled', actions: [] };
    case 'crashed':
    case 'internal':
    case 'protocol':
      return { message: `Gradient Lens could not ${doing}: ${f.message}`, actions };
    default:
      // no-model-class, needs-arguments, input-unknown, export-failed (the exporter's own message), verify-failed
      return { message: `Gradient Lens could not ${doing}: ${f.message}`, actions };
  }
}
