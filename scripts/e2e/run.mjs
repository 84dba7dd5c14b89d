// `npm run test:e2e [-- filter]`: installs what is missing (scripts/e2e/setup.mjs), then runs
// test/e2e/*.e2e.test.mjs with Node's test runner. Kept out of `npm test` (see test/e2e/README.md).
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';

const root = new URL('../..', import.meta.url).pathname;
const dir = join(root, 'test', 'e2e');
const filter = process.argv[2] ?? '';
const files = readdirSync(dir)
  .filter((f) => f.endsWith('.e2e.test.mjs') && f.includes(filter))
  .sort()
  .map((f) => join(dir, f));
if (files.length === 0) {
  console.error(`no test/e2e/*.e2e.test.mjs matching "${filter}"`);
  process.exit(1);
}

const setup = spawnSync(process.execPath, [join(root, 'scripts', 'e2e', 'setup.mjs')], { stdio: 'inherit', cwd: root });
if (setup.status !== 0) process.exit(setup.status ?? 1);

// Every wait inside is bounded; this is the outer bound for the whole run (GL_E2E_RUN_TIMEOUT_MIN, default 30).
const limitMs = Number(process.env.GL_E2E_RUN_TIMEOUT_MIN || 30) * 60_000;
// Its own process group, so a stop reaches the test files' processes too (their harness then stops what it started).
const child = spawn(process.execPath, ['--test', '--test-reporter=spec', '--test-concurrency=1', ...files], { stdio: 'inherit', cwd: root, detached: true });
const signalGroup = (sig) => {
  try {
    process.kill(-child.pid, sig);
  } catch {}
};
const timer = setTimeout(() => {
  console.error(`e2e tests did not finish within ${limitMs / 60_000} min: stopping them`);
  signalGroup('SIGTERM');
  setTimeout(() => signalGroup('SIGKILL'), 10_000).unref();
}, limitMs);
for (const sig of ['SIGINT', 'SIGTERM', 'SIGHUP']) process.on(sig, () => signalGroup(sig));
child.on('exit', (code, signal) => {
  clearTimeout(timer);
  process.exit(code ?? (signal ? 1 : 0));
});
