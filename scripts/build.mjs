// Bundles the extension host code (Node, CommonJS) and the webview + engine worker (browser) with esbuild.
import { build } from 'esbuild';
import { spawnSync } from 'node:child_process';
import { copyFileSync, mkdirSync, rmSync } from 'node:fs';

const production = process.argv.includes('--production');

// WebAssembly SIMD kernels (AssemblyScript -> build/wasm, skipped when up to date), copied next to the bundles.
const wasm = spawnSync(process.execPath, ['engine/backend/wasm/build.mjs'], { stdio: 'inherit' });
if (wasm.status !== 0) process.exit(wasm.status ?? 1);
// Start from an empty dist/ so no stale file (e.g. a source map of a dev build) reaches the .vsix.
rmSync('dist', { recursive: true, force: true });
mkdirSync('dist', { recursive: true });
for (const f of ['kernels.wasm', 'kernels-relaxed.wasm']) copyFileSync(`build/wasm/${f}`, `dist/${f}`);

const common = { bundle: true, sourcemap: !production, minify: production, logLevel: 'info', target: 'es2022' };

const targets = [
  { entryPoints: ['extension/extension.ts'], outfile: 'dist/extension.js', platform: 'node', format: 'cjs', external: ['vscode'] },
  // The extension host's engine: a worker thread the extension starts (extension/hostEngine); loads dist/kernels*.wasm.
  { entryPoints: ['extension/hostEngine/worker.ts'], outfile: 'dist/host-engine.js', platform: 'node', format: 'cjs' },
  { entryPoints: ['webview/main.ts'], outfile: 'dist/webview.js', platform: 'browser', format: 'iife' },
  { entryPoints: ['webview/engine-worker.ts'], outfile: 'dist/engine-worker.js', platform: 'browser', format: 'iife' },
];

await Promise.all(targets.map((t) => build({ ...common, ...t })));

copyFileSync('webview/webview.css', 'dist/webview.css');
// The Python grammar (tree-sitter, WebAssembly) that the extension host uses to map modules to lines.
copyFileSync('node_modules/web-tree-sitter/tree-sitter.wasm', 'dist/tree-sitter.wasm');
copyFileSync('node_modules/tree-sitter-python/tree-sitter-python.wasm', 'dist/tree-sitter-python.wasm');
