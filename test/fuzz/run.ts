/**
 * The long fuzz run: `node build/test/fuzz/run.js [--count N] [--seed S] [--parallel P] [--out file.json]`
 * (scripts/fuzz.mjs builds and calls it). Prints counts per outcome and every case that is not ok or a
 * clear error; exits 1 if any case crashed, hung, was unclear or silent.
 */
import * as fs from 'node:fs';
import { fuzzCases } from './cases';
import { runFuzz, summarize } from './harness';
import { repoRoot } from '../helpers';

function arg(name: string, fallback: number): number {
  const i = process.argv.indexOf(`--${name}`);
  return i >= 0 ? Number(process.argv[i + 1]) : fallback;
}

async function main(): Promise<void> {
  const count = arg('count', 3000);
  const seed = arg('seed', 15);
  const parallel = arg('parallel', 1);
  const outIndex = process.argv.indexOf('--out');
  const t0 = Date.now();
  const cases = fuzzCases(repoRoot, seed, count);
  let n = 0;
  const results = await runFuzz(cases, {
    parallel,
    // Generous: the 20,000-node chains take 10-20 s on this shared 2-core machine; a hang never ends.
    timeoutMs: arg('timeout', 60_000),
    onResult: (r) => {
      n++;
      if (r.outcome !== 'ok' && r.outcome !== 'clear') console.log(`${r.outcome.toUpperCase()} ${r.id} ${r.what}\n    ${r.message}`);
      if (n % 250 === 0) console.log(`  ${n}/${cases.length} cases, ${((Date.now() - t0) / 1000).toFixed(0)} s`);
    },
  });
  const summary = summarize(results);
  console.log(`\n${cases.length} cases (seed ${seed}) in ${((Date.now() - t0) / 1000).toFixed(0)} s`);
  console.log('kind        ok  clear  unclear  crash  hang  silent');
  for (const [kind, c] of Object.entries(summary)) console.log(`${kind.padEnd(10)} ${[c.ok, c.clear, c.unclear, c.crash, c.hang, c.silent].map((v, i) => String(v).padStart([4, 6, 8, 6, 5, 7][i])).join('')}`);
  const slowest = [...results].sort((a, b) => b.ms - a.ms).slice(0, 5);
  console.log(`slowest: ${slowest.map((r) => `${r.id} ${r.ms} ms`).join(', ')}`);
  if (outIndex >= 0) fs.writeFileSync(process.argv[outIndex + 1], JSON.stringify({ seed, count: cases.length, summary, results: results.map(({ id, kind, what, outcome, message, ms }) => ({ id, kind, what, outcome, message, ms })) }, null, 1));
  const bad = summary.all.unclear + summary.all.crash + summary.all.hang + summary.all.silent;
  process.exit(bad ? 1 : 0);
}

void main();
