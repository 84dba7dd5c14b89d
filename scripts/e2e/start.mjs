// `npm start [-- --port 8080] [-- --folder examples] [-- --host 127.0.0.1]`
// Installs what is missing, packages the extension, and opens a folder (examples/ by default) in a real VS Code
// in the browser (code-server) with Gradient Lens installed. Prints the URL and runs until Ctrl+C, then stops
// the server it started. Rerun it after changing the extension (packaging takes a couple of seconds).
import { existsSync, mkdirSync } from 'node:fs';
import { createServer } from 'node:net';
import { createHash } from 'node:crypto';
import { join, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import { spawnSync } from 'node:child_process';
import { CACHE_DIR, E2E_DIR, ROOT, ensureCodeServer, log, packageVsix, startCodeServer, stoppingOnSignal, timed, writeTimings } from '../../test/e2e/harness.mjs';

const { values } = parseArgs({
  options: {
    port: { type: 'string', default: process.env.PORT },
    folder: { type: 'string', default: join(ROOT, 'examples') },
    host: { type: 'string', default: '127.0.0.1' },
  },
});

function portFree(port, host) {
  return new Promise((res) => {
    const s = createServer();
    s.once('error', () => res(false));
    s.listen(port, host, () => s.close(() => res(true)));
  });
}

const started = Date.now();
try {
  const folder = resolve(values.folder);
  mkdirSync(folder, { recursive: true });

  // The project's own npm packages (vsce, esbuild) are needed to package the extension.
  if (!existsSync(join(ROOT, 'node_modules', '@vscode', 'vsce')) || !existsSync(join(ROOT, 'node_modules', 'esbuild'))) {
    await timed('npm ci', async () => {
      const r = spawnSync('npm', ['ci', '--no-audit', '--no-fund'], { cwd: ROOT, stdio: 'inherit' });
      if (r.status !== 0) throw new Error('npm ci failed');
    });
  }
  const codeServer = await timed('ensure code-server', () => ensureCodeServer());
  const vsix = await packageVsix();

  // A fixed port (8080 unless --port/PORT) so the URL stays the same between runs; any free one if it is taken.
  let port = Number(values.port ?? 8080);
  if (!(await portFree(port, values.host))) {
    if (values.port) throw new Error(`port ${port} on ${values.host} is in use`);
    log(`port ${port} is in use; picking a free one`);
    port = 0;
  }
  if (values.host !== '127.0.0.1' && values.host !== 'localhost') {
    log(`WARNING: serving on ${values.host} without authentication: anyone who can reach it can run code as you`);
  }
  // Kept between runs (.e2e/start): your layout and settings survive a restart; the extension is reinstalled.
  // (Unix socket paths are limited to ~107 bytes: a deep checkout uses a folder in the cache instead.)
  let scratch = join(E2E_DIR, 'start');
  if (scratch.length > 60) scratch = join(CACHE_DIR, `start-${createHash('sha1').update(ROOT).digest('hex').slice(0, 8)}`);
  for (const sub of ['user-data', 'extensions', 'config', 'data', 'cache', 'tmp']) mkdirSync(join(scratch, sub), { recursive: true });
  const server = await startCodeServer({ workspace: folder, port, host: values.host, vsix, codeServer, scratch, preserveSettings: true });
  writeTimings({ suite: 'npm start', totalMs: Date.now() - started });

  const url = server.folderUrl;
  console.log(`
  Gradient Lens is running in VS Code (code-server ${codeServer.version}) with ${folder} open:

      ${url}

  Open it in a browser; run "Gradient Lens: Show Panel" from the command palette (F1).
  Server log: ${server.logFile}
  Press Ctrl+C to stop.
`);
  const why = await server.exited; // Ctrl+C is handled by the harness: it stops the server and exits
  if (stoppingOnSignal()) await new Promise(() => {}); // the harness exits once everything is stopped
  console.error(`code-server stopped by itself (${why}); log tail:\n${server.logTail(2000)}`);
  process.exit(1);
} catch (err) {
  console.error(`npm start failed: ${err.message}`);
  process.exit(1);
}
