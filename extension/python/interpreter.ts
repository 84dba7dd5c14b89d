/**
 * Which Python runs the export: the `gradientLens.python` setting when the user set one (an explicit choice
 * for this extension), else the interpreter the Python extension has selected for the file, else python3
 * (or python) on PATH. And what it has: a quick probe that finds torch's version without importing torch
 * (importing it takes seconds). No vscode import: the extension passes the setting and the Python
 * extension's API object in.
 */
import { spawn } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';

export type InterpreterSource = 'setting' | 'python-extension' | 'path';

export interface Interpreter {
  path: string;
  source: InterpreterSource;
}

export interface InterpreterHints {
  /** The gradientLens.python setting, as written. */
  setting?: string;
  /** The folder a relative setting and `${workspaceFolder}` refer to. */
  workspaceFolder?: string;
  /** The exported API of the Python extension (ms-python.python), when installed and active. */
  pythonApi?: unknown;
  /** The Python file (for the Python extension's per-resource interpreter). */
  resource?: unknown;
  env?: NodeJS.ProcessEnv;
}

/** What was tried, for the "no interpreter" message. */
export class NoInterpreterError extends Error {
  constructor(readonly tried: string[]) {
    super(`no Python interpreter found (tried ${tried.join('; ')})`);
    this.name = 'NoInterpreterError';
  }
}

function isExecutable(file: string): boolean {
  try {
    if (!fs.statSync(file).isFile()) return false;
    if (process.platform !== 'win32') fs.accessSync(file, fs.constants.X_OK);
    return true;
  } catch {
    return false;
  }
}

/** The first executable named `command` on PATH (with PATHEXT on Windows). */
export function whichSync(command: string, env: NodeJS.ProcessEnv = process.env): string | undefined {
  const dirs = (env.PATH ?? env.Path ?? '').split(path.delimiter).filter(Boolean);
  const exts = process.platform === 'win32' ? (env.PATHEXT ?? '.EXE;.CMD;.BAT').split(';') : [''];
  for (const dir of dirs) for (const ext of exts) {
    const candidate = path.join(dir, command + ext);
    if (isExecutable(candidate)) return candidate;
  }
  return undefined;
}

/** The setting as a path: `~` and `${workspaceFolder}` expanded, relative paths from the workspace folder, bare names on PATH. */
export function resolveSetting(setting: string, workspaceFolder: string | undefined, env: NodeJS.ProcessEnv = process.env): string | undefined {
  let s = setting.trim();
  if (!s) return undefined;
  s = s.replace(/\$\{workspaceFolder\}/g, workspaceFolder ?? '').replace(/^~(?=$|[\\/])/, os.homedir());
  if (!s.includes('/') && !s.includes('\\')) return whichSync(s, env);
  const full = path.isAbsolute(s) ? s : path.resolve(workspaceFolder ?? process.cwd(), s);
  return isExecutable(full) ? full : undefined;
}

/**
 * The interpreter the Python extension uses for `resource`: its environments API
 * (`environments.getActiveEnvironmentPath` + `resolveEnvironment`), else the older
 * `settings.getExecutionDetails(resource).execCommand`.
 */
export async function fromPythonExtension(api: unknown, resource: unknown): Promise<string | undefined> {
  if (!api || typeof api !== 'object') return undefined;
  const a = api as {
    environments?: { getActiveEnvironmentPath?(r?: unknown): { id?: string; path?: string } | undefined; resolveEnvironment?(e: unknown): Promise<{ executable?: { uri?: { fsPath?: string } } } | undefined> };
    settings?: { getExecutionDetails?(r?: unknown): { execCommand?: string[] } | undefined };
  };
  try {
    const active = a.environments?.getActiveEnvironmentPath?.(resource);
    if (active) {
      const resolved = await a.environments?.resolveEnvironment?.(active);
      const exe = resolved?.executable?.uri?.fsPath;
      if (exe) return exe;
      if (active.path && isExecutable(active.path)) return active.path;
    }
    const exec = a.settings?.getExecutionDetails?.(resource)?.execCommand;
    if (exec?.length === 1 && exec[0]) return exec[0];
  } catch {
    // An API we do not understand: fall back to the other sources.
  }
  return undefined;
}

/** Finds the interpreter (see the module comment for the order); throws NoInterpreterError saying what was tried. */
export async function findInterpreter(hints: InterpreterHints): Promise<Interpreter> {
  const env = hints.env ?? process.env;
  const tried: string[] = [];
  if (hints.setting?.trim()) {
    const p = resolveSetting(hints.setting, hints.workspaceFolder, env);
    if (p) return { path: p, source: 'setting' };
    tried.push(`gradientLens.python = "${hints.setting}" (not an executable)`);
  } else {
    tried.push('the gradientLens.python setting (empty)');
  }
  if (hints.pythonApi) {
    const p = await fromPythonExtension(hints.pythonApi, hints.resource);
    if (p) return { path: p, source: 'python-extension' };
    tried.push('the Python extension (no interpreter selected)');
  } else {
    tried.push('the Python extension (not installed)');
  }
  for (const name of process.platform === 'win32' ? ['python', 'py'] : ['python3', 'python']) {
    const p = whichSync(name, env);
    if (p) return { path: p, source: 'path' };
  }
  tried.push(process.platform === 'win32' ? 'python on PATH' : 'python3 and python on PATH');
  throw new NoInterpreterError(tried);
}

export interface InterpreterProbe {
  /** sys.executable */
  executable: string;
  version: string;
  /** torch.__version__ read from torch/version.py, or null without torch. */
  torch: string | null;
}

// Finds torch without importing it (an import takes seconds): the version from torch/version.py.
const PROBE = `
import importlib.util, json, os, re, sys
spec = importlib.util.find_spec("torch")
version = None
if spec is not None and spec.origin:
    try:
        with open(os.path.join(os.path.dirname(spec.origin), "version.py")) as fh:
            version = re.search(r"__version__\\s*=\\s*['\\"]([^'\\"]+)", fh.read()).group(1)
    except Exception:
        version = "unknown"
print(json.dumps({"executable": sys.executable, "version": sys.version.split()[0], "torch": version}))
`;

/** Runs the probe (a few hundred ms); rejects when the interpreter does not start or answer. */
export function probeInterpreter(python: string, timeoutMs = 20_000): Promise<InterpreterProbe> {
  return new Promise((resolve, reject) => {
    const child = spawn(python, ['-c', PROBE], { stdio: ['ignore', 'pipe', 'pipe'], windowsHide: true });
    let out = '';
    let err = '';
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${python} did not answer within ${timeoutMs / 1000} s`));
    }, timeoutMs);
    child.stdout.on('data', (d) => (out += d));
    child.stderr.on('data', (d) => (err += d));
    child.on('error', (e) => {
      clearTimeout(timer);
      reject(new Error(`could not run ${python}: ${e.message}`));
    });
    child.on('close', (code) => {
      clearTimeout(timer);
      try {
        if (code !== 0) throw new Error(err.trim().split('\n').pop() || `exit code ${code}`);
        resolve(JSON.parse(out.trim().split('\n').pop() ?? '') as InterpreterProbe);
      } catch (e) {
        reject(new Error(`${python} is not a working Python: ${e instanceof Error ? e.message : e}`));
      }
    });
  });
}
