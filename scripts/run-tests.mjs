// Runs every compiled *.test.js under build/test with Node's built-in test runner.
// (Node 20's directory mode would also run helper modules that live under a folder named "test".)
import { readdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { spawnSync } from 'node:child_process';

function find(dir, filter) {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? find(p, filter) : name.endsWith('.test.js') && p.includes(filter) ? [p] : [];
  });
}

const filter = process.argv[2] ?? '';
const files = find('build/test', filter).sort();
if (files.length === 0) {
  console.error(`no test files under build/test matching "${filter}"`);
  process.exit(1);
}
const result = spawnSync(process.execPath, ['--test', '--test-reporter=spec', ...files], { stdio: 'inherit' });
process.exit(result.status ?? 1);
