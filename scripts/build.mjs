// Bundles the extension host code (Node, CommonJS) and the webview + engine worker (browser) with esbuild.
import { build } from 'esbuild';
import { copyFileSync, existsSync, mkdirSync } from 'node:fs';

const production = process.argv.includes('--production');
const common = { bundle: true, sourcemap: !production, minify: production, logLevel: 'info', target: 'es2022' };

const targets = [
  { entryPoints: ['extension/extension.ts'], outfile: 'dist/extension.js', platform: 'node', format: 'cjs', external: ['vscode'] },
  { entryPoints: ['webview/main.ts'], outfile: 'dist/webview.js', platform: 'browser', format: 'iife' },
  { entryPoints: ['webview/engine-worker.ts'], outfile: 'dist/engine-worker.js', platform: 'browser', format: 'iife' },
].filter((t) => existsSync(t.entryPoints[0]));

await Promise.all(targets.map((t) => build({ ...common, ...t })));

mkdirSync('dist', { recursive: true });
copyFileSync('webview/webview.css', 'dist/webview.css');
