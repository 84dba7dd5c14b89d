/**
 * Loads tree-sitter's Python grammar (WebAssembly) once per process and hands out a reusable parser.
 * Pure Node: no `vscode` import, so the extension host and unit tests share it.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
// A require (not an ES import) so bundlers pick the package's CommonJS build: its ES build locates its
// files through import.meta.url, which a CommonJS extension bundle does not have.
import TreeSitter = require('web-tree-sitter');
import type { Tree } from 'web-tree-sitter';

/** A loaded Python parser. `parse` is synchronous and may be called any number of times. */
export interface PythonParser {
  /** Parses `source`; the caller owns the tree (call `tree.delete()` when done). Never returns null. */
  parse(source: string): Tree;
}

/** Where the two WebAssembly files are. */
export interface PythonParserPaths {
  /** The web-tree-sitter runtime, `tree-sitter.wasm`. */
  runtimeWasm: string;
  /** The Python grammar, `tree-sitter-python.wasm`. */
  grammarWasm: string;
}

/** File names of the runtime and grammar inside a `wasmDir` (the extension's dist/ holds both). */
export const RUNTIME_WASM = 'tree-sitter.wasm';
export const GRAMMAR_WASM = 'tree-sitter-python.wasm';

/** The node_modules copies below `root` (tests, development). */
export function nodeModulesWasmPaths(root: string): PythonParserPaths {
  return {
    runtimeWasm: path.join(root, 'node_modules', 'web-tree-sitter', RUNTIME_WASM),
    grammarWasm: path.join(root, 'node_modules', 'tree-sitter-python', GRAMMAR_WASM),
  };
}

function resolvePaths(where?: string | Partial<PythonParserPaths>): PythonParserPaths {
  if (typeof where === 'string') return { runtimeWasm: path.join(where, RUNTIME_WASM), grammarWasm: path.join(where, GRAMMAR_WASM) };
  if (where?.runtimeWasm && where.grammarWasm) return { runtimeWasm: where.runtimeWasm, grammarWasm: where.grammarWasm };
  // Default: the installed packages, found from this file upwards (works from build/ and from the sources).
  let dir = __dirname;
  for (;;) {
    const candidate = nodeModulesWasmPaths(dir);
    if (fs.existsSync(candidate.runtimeWasm) && fs.existsSync(candidate.grammarWasm)) {
      return { runtimeWasm: where?.runtimeWasm ?? candidate.runtimeWasm, grammarWasm: where?.grammarWasm ?? candidate.grammarWasm };
    }
    const up = path.dirname(dir);
    if (up === dir) throw new Error('tree-sitter wasm files not found: pass a wasmDir or explicit paths to createPythonParser');
    dir = up;
  }
}

/** The runtime is initialised once per process (a second init with another file would be ignored anyway). */
let runtime: Promise<void> | null = null;
const parsers = new Map<string, Promise<PythonParser>>();

/**
 * Loads the parser. `where` is a directory holding `tree-sitter.wasm` and `tree-sitter-python.wasm`
 * (the extension's dist/), or explicit paths; omitted, the node_modules copies are used.
 * The result is cached per grammar file: call it as often as convenient. A failed load is not cached.
 */
export function createPythonParser(where?: string | Partial<PythonParserPaths>): Promise<PythonParser> {
  let paths: PythonParserPaths;
  try {
    paths = resolvePaths(where);
  } catch (err) {
    return Promise.reject(err);
  }
  const key = path.resolve(paths.grammarWasm);
  const hit = parsers.get(key);
  if (hit) return hit;
  const loading = (async (): Promise<PythonParser> => {
    runtime ??= TreeSitter.Parser.init({ locateFile: () => paths.runtimeWasm }).catch((err: unknown) => {
      runtime = null;
      throw err;
    });
    await runtime;
    const language = await TreeSitter.Language.load(paths.grammarWasm);
    const parser = new TreeSitter.Parser();
    parser.setLanguage(language);
    return {
      parse(source: string): Tree {
        const tree = parser.parse(source);
        if (!tree) throw new Error('tree-sitter returned no tree');
        return tree;
      },
    };
  })();
  parsers.set(key, loading);
  loading.catch(() => parsers.delete(key));
  return loading;
}
