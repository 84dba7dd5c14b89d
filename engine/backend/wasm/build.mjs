// Builds the WebAssembly kernels from the AssemblyScript sources in ./assembly with the `assemblyscript`
// npm package (no other toolchain, nothing downloaded). Two variants, both float32 with 128-bit SIMD:
//   build/wasm/kernels.wasm          SIMD128 (every engine with WebAssembly SIMD: Node 16.4+, Chrome 91+, Firefox 89+, Safari 16.4+)
//   build/wasm/kernels-relaxed.wasm  + relaxed SIMD (f32x4.relaxed_madd = FMA in the matmul; Chrome 114+, or Node with
//                                    --experimental-wasm-relaxed-simd). The loader picks it when WebAssembly.validate accepts it.
// Skips the compile when both outputs are newer than every source (pass --force to rebuild).
// Usage: node engine/backend/wasm/build.mjs [--force]
import { existsSync, mkdirSync, readdirSync, statSync } from 'node:fs';
import { dirname, join, relative, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const root = resolve(here, '../../..');
const srcDir = join(here, 'assembly');
const outDir = join(root, 'build', 'wasm');
const entry = join(srcDir, 'index.ts');

const variants = [
  { file: 'kernels.wasm', features: ['simd'] },
  { file: 'kernels-relaxed.wasm', features: ['simd', 'relaxed-simd'] },
];

function newestSource() {
  const files = readdirSync(srcDir).filter((f) => f.endsWith('.ts')).map((f) => join(srcDir, f));
  files.push(fileURLToPath(import.meta.url), join(root, 'node_modules', 'assemblyscript', 'package.json'));
  return Math.max(...files.filter(existsSync).map((f) => statSync(f).mtimeMs));
}

const force = process.argv.includes('--force');
const newest = newestSource();
const stale = variants.filter((v) => force || !existsSync(join(outDir, v.file)) || statSync(join(outDir, v.file)).mtimeMs < newest);
if (stale.length === 0) {
  console.log(`wasm kernels up to date (${variants.map((v) => relative(root, join(outDir, v.file))).join(', ')})`);
  process.exit(0);
}

const asc = (await import('assemblyscript/asc')).default;
mkdirSync(outDir, { recursive: true });
for (const v of stale) {
  const out = join(outDir, v.file);
  const args = [
    relative(process.cwd(), entry),
    '--outFile', relative(process.cwd(), out),
    '--optimizeLevel', '3', '--shrinkLevel', '0', '--noAssert',
    '--runtime', 'stub',
    ...v.features.flatMap((f) => ['--enable', f]),
    '--disableWarning', '112', // v128 values are never exchanged with the host; exported functions use pointers
  ];
  const t0 = Date.now();
  const { error, stderr } = await asc.main(args, {});
  if (error) {
    console.error(stderr.toString());
    console.error(`asc failed for ${v.file}: ${error.message}`);
    process.exit(1);
  }
  console.log(`built ${relative(root, out)} (${statSync(out).size} bytes, ${Date.now() - t0} ms)`);
}
