// Installs what the end-to-end tests and `npm start` need, skipping what is already there:
// Debian Chromium (apt), then Node 24 and code-server (npm, cached outside the repo; see test/e2e/harness.mjs).
//   node scripts/e2e/setup.mjs [--no-chromium]
import { CACHE_DIR, CHROMIUM, codeServerInstalled, ensureCodeServer, ensureSystemPackages, log, timed, writeTimings } from '../../test/e2e/harness.mjs';

const start = Date.now();
try {
  // One apt-get run for all: Chromium, and libkrb5-dev when code-server still has to be built.
  const pkgs = [...(process.argv.includes('--no-chromium') ? [] : ['chromium']), ...(codeServerInstalled() ? [] : ['libkrb5-dev'])];
  await timed('ensure system packages', () => ensureSystemPackages(pkgs));
  const cs = await timed('ensure code-server', () => ensureCodeServer());
  log(`ready: code-server ${cs.version} (${cs.entry}), Node 24 (${cs.node}), Chromium (${CHROMIUM}); cache ${CACHE_DIR}`);
  writeTimings({ suite: 'setup', totalMs: Date.now() - start });
} catch (err) {
  console.error(`e2e setup failed: ${err.message}`);
  process.exit(1);
}
