// The long fuzz run (issue 15): thousands of hostile and mutated models, each judged in a child process.
// Usage: npm run fuzz -- [--count 3000] [--seed 15] [--parallel 1] [--out fuzz-results.json]
// Compiles first; exits 1 if any case crashed, hung, failed unclearly or showed a NaN silently.
import { spawnSync } from 'node:child_process';

const tsc = spawnSync(process.execPath, ['node_modules/typescript/bin/tsc', '-p', 'tsconfig.json'], { stdio: 'inherit' });
if (tsc.status !== 0) process.exit(tsc.status ?? 1);
const run = spawnSync(process.execPath, ['build/test/fuzz/run.js', ...process.argv.slice(2)], { stdio: 'inherit' });
process.exit(run.status ?? 1);
