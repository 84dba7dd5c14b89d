/**
 * Which files the extension reads (extension/fileAccess.ts): a model named by the workspace's
 * `gradientLens.model` setting only inside the workspace (links followed), only regular files, under a
 * size limit, and no file content in any message. Also the manifest: the setting is restricted in
 * untrusted workspaces.
 */
import { test, describe, before, after } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFileSync } from 'node:child_process';
import { FileAccessError, insideWorkspace, isInside, readRegularFile, resolveConfiguredModel } from '../extension/fileAccess';
import { repoRoot } from './helpers';

async function rejects(p: Promise<unknown>, ...patterns: RegExp[]): Promise<FileAccessError> {
  try {
    await p;
  } catch (e) {
    assert.ok(e instanceof FileAccessError, `expected FileAccessError, got ${(e as Error)?.name}: ${(e as Error)?.message}`);
    for (const re of patterns) assert.match(e.message, re);
    return e;
  }
  assert.fail('expected a FileAccessError');
}

describe('models named by the workspace setting stay inside the workspace', () => {
  let tmp: string;
  let ws: string;
  let outside: string;
  before(() => {
    tmp = fs.realpathSync(fs.mkdtempSync(path.join(os.tmpdir(), 'gl-access-')));
    ws = path.join(tmp, 'ws');
    outside = path.join(tmp, 'secret');
    fs.mkdirSync(path.join(ws, 'models'), { recursive: true });
    fs.mkdirSync(outside);
    fs.writeFileSync(path.join(ws, 'models', 'net.onnx'), new Uint8Array([8, 7]));
    fs.writeFileSync(path.join(outside, 'id_rsa'), 'PRIVATE KEY material');
    fs.symlinkSync(path.join(outside, 'id_rsa'), path.join(ws, 'models', 'link.onnx'));
    fs.symlinkSync(outside, path.join(ws, 'escape'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('a relative or absolute path inside a folder resolves to its real path', async () => {
    assert.equal(await resolveConfiguredModel('models/net.onnx', [ws]), path.join(ws, 'models', 'net.onnx'));
    assert.equal(await resolveConfiguredModel(`  ${path.join(ws, 'models', 'net.onnx')} `, [ws]), path.join(ws, 'models', 'net.onnx'));
    // Relative paths resolve against the first folder given (the Python file's own folder first).
    const other = path.join(tmp, 'other');
    fs.mkdirSync(other, { recursive: true });
    assert.equal(await resolveConfiguredModel('models/net.onnx', [ws, other]), path.join(ws, 'models', 'net.onnx'));
  });

  test('absolute paths, ../ and links that lead outside are refused, naming the setting and the rule', async () => {
    const e1 = await rejects(resolveConfiguredModel(path.join(outside, 'id_rsa'), [ws]), /outside the workspace/, /gradientLens\.model/);
    assert.doesNotMatch(e1.message, /PRIVATE/);
    await rejects(resolveConfiguredModel('../secret/id_rsa', [ws]), /outside the workspace/);
    await rejects(resolveConfiguredModel('models/link.onnx', [ws]), /outside the workspace/);
    await rejects(resolveConfiguredModel('escape/id_rsa', [ws]), /outside the workspace/);
    await rejects(resolveConfiguredModel('/etc/passwd', [ws]), /outside the workspace/);
  });

  test('missing files, no workspace, empty and NUL paths are clear errors', async () => {
    await rejects(resolveConfiguredModel('models/none.onnx', [ws]), /"models\/none\.onnx" does not exist/);
    await rejects(resolveConfiguredModel('models/net.onnx', []), /needs an open workspace folder/);
    await rejects(resolveConfiguredModel('   ', [ws]), /setting is empty/);
    await rejects(resolveConfiguredModel('a\0b', [ws]), /not a valid path/);
  });

  test('a sibling .onnx that is a link out of the workspace is refused too', async () => {
    assert.equal(await insideWorkspace(path.join(ws, 'models', 'net.onnx'), [ws]), path.join(ws, 'models', 'net.onnx'));
    await rejects(insideWorkspace(path.join(ws, 'models', 'link.onnx'), [ws]), /link\.onnx resolves to a file outside the workspace/);
  });

  test('isInside compares path components, not prefixes', () => {
    assert.equal(isInside('/a/ws', '/a/ws/m.onnx'), true);
    assert.equal(isInside('/a/ws', '/a/ws'), true);
    assert.equal(isInside('/a/ws', '/a/ws2/m.onnx'), false);
    assert.equal(isInside('/a/ws', '/a/m.onnx'), false);
    assert.equal(isInside('/a/ws', '/a/ws/..foo'), true); // a file named "..foo" inside the folder
  });
});

describe('only regular files under the size limit are read', () => {
  let tmp: string;
  before(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'gl-read-'));
  });
  after(() => fs.rmSync(tmp, { recursive: true, force: true }));

  test('a regular file: exactly its bytes, in its own ArrayBuffer', async () => {
    const file = path.join(tmp, 'm.onnx');
    const bytes = new Uint8Array(70_000).map((_, i) => (i * 31) & 255);
    fs.writeFileSync(file, bytes);
    const read = await readRegularFile(file, 1 << 20);
    assert.deepEqual(read, bytes);
    assert.equal(read.byteOffset, 0);
    assert.equal(read.buffer.byteLength, bytes.length);
    assert.ok(!Buffer.isBuffer(read));
    assert.deepEqual(await readRegularFile(file, bytes.length), bytes); // exactly at the limit
  });

  test('too large: refused before reading, with both sizes and the setting', async () => {
    const file = path.join(tmp, 'big.onnx');
    fs.writeFileSync(file, new Uint8Array(3 * 1024 * 1024));
    await rejects(readRegularFile(file, 1024 * 1024), /big\.onnx is 3\.0 MB, above the limit of 1\.0 MB/, /memoryBudgetMB/);
  });

  test('a directory, a device and a named pipe are refused without blocking', async () => {
    await rejects(readRegularFile(tmp, 1 << 20), /not a regular file \(a directory\)/);
    await rejects(readRegularFile('/dev/zero', 1 << 20), /zero is not a regular file \(a device\)/);
    const fifo = path.join(tmp, 'pipe.onnx');
    execFileSync('mkfifo', [fifo]);
    await rejects(readRegularFile(fifo, 1 << 20), /not a regular file \(a named pipe\)/);
  });

  test('errors name the file, never its content', async () => {
    const file = path.join(tmp, 'token.txt');
    fs.writeFileSync(file, 'ghp_SECRET_TOKEN_VALUE'.repeat(100));
    const e = await rejects(readRegularFile(file, 10), /token\.txt/);
    assert.doesNotMatch(e.message, /SECRET/);
    await rejects(readRegularFile(path.join(tmp, 'nope.onnx'), 10), /nope\.onnx does not exist/);
  });
});

describe('the manifest restricts the model setting in untrusted workspaces', () => {
  const manifest = JSON.parse(fs.readFileSync(path.join(repoRoot, 'package.json'), 'utf8'));
  test('gradientLens.model and gradientLens.python are restricted configurations (limited support)', () => {
    const trust = manifest.capabilities.untrustedWorkspaces;
    // VS Code honours restrictedConfigurations only with "limited" support.
    assert.equal(trust.supported, 'limited');
    // The model path and the Python interpreter: a workspace must not point the extension at files or programs.
    for (const key of ['gradientLens.model', 'gradientLens.python']) {
      assert.ok(trust.restrictedConfigurations.includes(key), key);
      assert.ok(manifest.contributes.configuration.properties[key], key);
    }
  });
  test('the memory budget setting exists with a sane default', () => {
    const budget = manifest.contributes.configuration.properties['gradientLens.run.memoryBudgetMB'];
    assert.equal(budget.type, 'integer');
    assert.ok(budget.default >= 256 && budget.default <= 8192, String(budget.default));
  });
});
