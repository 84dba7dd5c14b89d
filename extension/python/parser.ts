/** Loads tree-sitter's Python grammar once (WebAssembly, shipped inside the extension). No vscode import. */
import * as path from 'node:path';
// A require (not an ES import) so bundlers pick the package's CommonJS build: its ES build locates its
// files through import.meta.url, which a CommonJS extension bundle does not have.
import TreeSitter = require('web-tree-sitter');

const { Language, Parser } = TreeSitter;

export interface PythonParser {
  parse(source: string): import('web-tree-sitter').Tree;
}

let cached: Promise<PythonParser> | null = null;

/**
 * `wasmDir` holds tree-sitter.wasm (the runtime) and tree-sitter-python.wasm (the grammar): dist/ in the
 * packaged extension, or the node_modules copies in tests.
 */
export function loadPythonParser(runtimeWasm: string, grammarWasm: string): Promise<PythonParser> {
  cached ??= (async () => {
    await Parser.init({ locateFile: () => runtimeWasm });
    const language = await Language.load(grammarWasm);
    const parser = new Parser();
    parser.setLanguage(language);
    return {
      parse: (source: string) => {
        const tree = parser.parse(source);
        if (!tree) throw new Error('tree-sitter returned no tree');
        return tree;
      },
    };
  })();
  return cached;
}

/** The wasm files as installed in node_modules (tests, development). */
export function nodeModulesWasm(root: string): { runtime: string; grammar: string } {
  return {
    runtime: path.join(root, 'node_modules', 'web-tree-sitter', 'tree-sitter.wasm'),
    grammar: path.join(root, 'node_modules', 'tree-sitter-python', 'tree-sitter-python.wasm'),
  };
}
