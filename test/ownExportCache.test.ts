/**
 * The own-export cache (extension/ownExportCache.ts): a warm Inspect reuses the Python file's own .onnx and its bytes
 * only while the Python file, its folder and the .onnx are unchanged. Every change that could make a fresh locate or
 * read give something else (the export rewritten, even at the same size; replaced by a link; a sibling .onnx added;
 * the source saved; another context) makes the lookup miss.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, renameSync, rmSync, statSync, symlinkSync, utimesSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileStamps, OwnExportCache } from '../extension/ownExportCache';

function scratch(): { dir: string; py: string; onnx: string } {
  const dir = mkdtempSync(join(tmpdir(), 'gl-own-export-'));
  const py = join(dir, 'model.py');
  const onnx = join(dir, 'model.onnx');
  writeFileSync(py, 'class M: pass\n');
  writeFileSync(onnx, new Uint8Array([1, 2, 3, 4]));
  return { dir, py, onnx };
}

/** Stores the export as an Inspect does: source stamps before locating, model stamps before reading. */
async function stored(cache: OwnExportCache, py: string, onnx: string, context = 'ctx'): Promise<void> {
  const before = await cache.stampSource(py);
  assert.ok(before);
  const modelStamps = await fileStamps([onnx]);
  await cache.store(before, context, onnx, modelStamps, new Uint8Array(readFileSync(onnx)));
}

test('an unchanged export is reused, with the bytes it was read with', async () => {
  const { dir, py, onnx } = scratch();
  try {
    const cache = new OwnExportCache();
    await stored(cache, py, onnx);
    for (let i = 0; i < 2; i++) {
      const hit = await cache.lookup(py, 'ctx');
      assert.equal(hit?.model, onnx);
      assert.deepEqual([...hit!.bytes], [1, 2, 3, 4]);
    }
    assert.equal(await cache.lookup(join(dir, 'other.py'), 'ctx'), undefined, 'another source');
    assert.equal(await cache.lookup(py, 'other workspace folders'), undefined, 'another context');
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('any change to the export, its folder or the source makes the lookup miss', async () => {
  const changes: [string, (s: { dir: string; py: string; onnx: string }) => void][] = [
    ['the export rewritten at the same size, its modification time put back', ({ onnx }) => {
      const { atime, mtime } = statSync(onnx);
      writeFileSync(onnx, new Uint8Array([9, 9, 9, 9]));
      utimesSync(onnx, atime, mtime);
    }],
    ['the export replaced by another file', ({ dir, onnx }) => {
      writeFileSync(join(dir, 'new.bin'), new Uint8Array([1, 2, 3, 4]));
      renameSync(join(dir, 'new.bin'), onnx);
    }],
    ['the export replaced by a link', ({ dir, onnx }) => {
      writeFileSync(join(dir, 'elsewhere.bin'), new Uint8Array([1, 2, 3, 4]));
      rmSync(onnx);
      symlinkSync(join(dir, 'elsewhere.bin'), onnx);
    }],
    ['the export deleted', ({ onnx }) => rmSync(onnx)],
    ['a sibling .onnx added to the folder', ({ dir }) => writeFileSync(join(dir, 'other.onnx'), '')],
    ['the source saved', ({ py }) => writeFileSync(py, 'class M: pass  # edited\n')],
  ];
  for (const [what, change] of changes) {
    const s = scratch();
    try {
      const cache = new OwnExportCache();
      await stored(cache, s.py, s.onnx);
      assert.ok(await cache.lookup(s.py, 'ctx'), `${what}: a hit before the change`);
      change(s);
      assert.equal(await cache.lookup(s.py, 'ctx'), undefined, what);
    } finally {
      rmSync(s.dir, { recursive: true, force: true });
    }
  }
});

test('a change between the stamps and the store is not kept; a link is never kept', async () => {
  const { dir, py, onnx } = scratch();
  try {
    const cache = new OwnExportCache();
    const before = await cache.stampSource(py);
    const modelStamps = await fileStamps([onnx]);
    writeFileSync(onnx, new Uint8Array([5, 6, 7, 8])); // rewritten while it was being read
    await cache.store(before!, 'ctx', onnx, modelStamps, new Uint8Array([1, 2, 3, 4]));
    assert.equal(await cache.lookup(py, 'ctx'), undefined);

    const link = join(dir, 'link.onnx');
    symlinkSync(onnx, link);
    await cache.store((await cache.stampSource(py))!, 'ctx', link, await fileStamps([link]), new Uint8Array(readFileSync(onnx)));
    assert.equal(await cache.lookup(py, 'ctx'), undefined);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});
