// `npm run e2e:media -- NAME[:TARGET] ...`: copies .e2e/screenshots/NAME.png (written by the e2e tests) to
// media/TARGET.png (default: media/NAME.png) for the README. Without arguments: lists the screenshots.
import { copyFileSync, existsSync, mkdirSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { ROOT, SCREENSHOT_DIR, listScreenshots } from '../../test/e2e/harness.mjs';

const args = process.argv.slice(2);
if (args.length === 0) {
  const names = listScreenshots();
  console.log(names.length ? `screenshots in ${SCREENSHOT_DIR}:\n${names.map((n) => `  ${n}`).join('\n')}` : `no screenshots yet: run npm run test:e2e`);
  console.log('copy with: npm run e2e:media -- NAME[:TARGET] ...');
  process.exit(0);
}
const media = join(ROOT, 'media');
mkdirSync(media, { recursive: true });
let failed = false;
for (const arg of args) {
  const [name, target = name] = arg.replace(/\.png$/, '').split(':');
  const src = join(SCREENSHOT_DIR, `${name}.png`);
  if (!existsSync(src)) {
    console.error(`no screenshot ${src} (available: ${listScreenshots().join(', ') || 'none'})`);
    failed = true;
    continue;
  }
  const dest = join(media, `${target.replace(/\.png$/, '')}.png`);
  copyFileSync(src, dest);
  console.log(`${src} -> ${dest} (${Math.round(statSync(dest).size / 1024)} KB, taken ${statSync(src).mtime.toISOString()})`);
}
process.exit(failed ? 1 : 0);
