/**
 * Reading a model with its external data (extension/modelFiles.ts): the files a model names are read
 * from its folder and handed to the engine, and a model cannot make the extension read anything else
 * (a path out of the folder, an absolute path, a symbolic link, a folder) or load a truncated file.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { backward, loadOnnx } from '../engine';
import { externalFilesNeeded } from '../engine/onnx/external';
import { ModelFileError, ModelFileSystem, readModelFiles } from '../extension/modelFiles';
import { buildModel, externalTensor } from './onnx_builder';

/** The node file system in the shape the extension's adapter gives (lstat: symlinks are reported as such). */
const nodeFs: ModelFileSystem = {
  async stat(p) {
    const s = await fs.promises.lstat(p);
    return { type: s.isSymbolicLink() ? 'symlink' : s.isFile() ? 'file' : s.isDirectory() ? 'directory' : 'other', size: s.size };
  },
  read: async (p) => new Uint8Array(await fs.promises.readFile(p)),
};

function tempDir(): string {
  return fs.mkdtempSync(path.join(os.tmpdir(), 'gradlens-model-files-'));
}

/** y = x + w with w [2, 3] stored in an external file at `location`. */
function modelWithExternal(location: string, offset = 0): Uint8Array {
  return buildModel({
    initializers: [externalTensor('w', [2, 3], location, offset, 24)],
    nodes: [{ op: 'Add', inputs: ['x', 'w'], outputs: ['y'] }],
    inputs: [{ name: 'x', dims: [2, 3] }],
    outputs: [{ name: 'y', dims: [2, 3] }],
  });
}

const W = [1, -2, 3, -4, 5, -6];

async function expectFileError(dir: string, location: string, pattern: RegExp): Promise<void> {
  fs.writeFileSync(path.join(dir, 'm.onnx'), modelWithExternal(location));
  await assert.rejects(readModelFiles(path.join(dir, 'm.onnx'), nodeFs), (e: Error) => {
    assert.match(e.message, pattern);
    return true;
  });
}

describe('external data files', () => {
  test('the files a model names are read from its folder and the engine runs on them', async () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'weights'));
    const data = new Uint8Array(8 + 24);
    data.set(new Uint8Array(new Float32Array(W).buffer), 8);
    fs.writeFileSync(path.join(dir, 'weights', 'm.bin'), data);
    fs.writeFileSync(path.join(dir, 'm.onnx'), buildModel({
      initializers: [externalTensor('w', [2, 3], 'weights\\m.bin', 8, 24)],
      nodes: [{ op: 'Add', inputs: ['x', 'w'], outputs: ['y'] }],
      inputs: [{ name: 'x', dims: [2, 3] }],
      outputs: [{ name: 'y', dims: [2, 3] }],
    }));
    const files = await readModelFiles(path.join(dir, 'm.onnx'), nodeFs);
    assert.deepEqual(Object.keys(files.externalData), ['weights\\m.bin']);
    assert.equal(files.totalBytes, files.bytes.length + 32);
    const model = loadOnnx(files.bytes, { externalData: files.externalData });
    assert.deepEqual(Array.from(model.parameters.get('w')!.data), W);
    const run = model.run({ x: [0, 0, 0, 0, 0, 0] }, { loss: 'meanSquare' });
    backward(run.loss!);
    // d/dw mean((x + w)^2) = 2 w / 6
    assert.deepEqual(Array.from(model.parameters.get('w')!.grad!.data).map((v) => Math.round(v * 3e6) / 1e6), W);
  });

  test('external data given as a Node Buffer (fs.readFileSync) is read at its offset', () => {
    const data = Buffer.alloc(8 + 24);
    Buffer.from(new Float32Array(W).buffer).copy(data, 8);
    // Buffer#slice is a view, not a copy: the importer must not view the whole file from byte 0.
    const model = loadOnnx(modelWithExternal('m.bin', 8), { externalData: { 'm.bin': data } });
    assert.deepEqual(Array.from(model.parameters.get('w')!.data), W);
  });

  test('a model without external data reads one file', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'm.onnx'), buildModel({
      initializers: [{ name: 'w', type: 1, dims: [3], values: [1, 2, 3] }],
      nodes: [{ op: 'Identity', inputs: ['w'], outputs: ['y'] }],
      inputs: [],
      outputs: [{ name: 'y', dims: [3] }],
    }));
    const files = await readModelFiles(path.join(dir, 'm.onnx'), nodeFs);
    assert.deepEqual(files.externalData, {});
  });

  test('locations that leave the folder are refused before any file is read', async () => {
    const dir = tempDir();
    fs.mkdirSync(path.join(dir, 'inner'));
    fs.writeFileSync(path.join(dir, 'secret.bin'), new Uint8Array(24));
    for (const [location, why] of [['../secret.bin', /goes up a folder/], ['a/../../secret.bin', /goes up a folder/], ['/etc/hostname', /absolute path/],
      ['C:\\Windows\\x.bin', /URL or a drive path/], ['file:///etc/hostname', /URL or a drive path/], ['\\\\server\\share\\x.bin', /absolute path/], ['', /empty/], ['a\u0000b', /control characters/]] as const) {
      const inner = path.join(dir, 'inner', 'm.onnx');
      fs.writeFileSync(inner, modelWithExternal(location));
      await assert.rejects(readModelFiles(inner, nodeFs), (e: Error) => {
        assert.match(e.message, why, location);
        assert.match(e.message, /inside the model's folder/);
        return true;
      });
    }
  });

  test('a symbolic link, a folder, a missing or truncated file are named in the error', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'real.bin'), new Uint8Array(24));
    fs.symlinkSync(path.join(dir, 'real.bin'), path.join(dir, 'link.bin'));
    await expectFileError(dir, 'link.bin', /"link\.bin".*symbolic link/);
    fs.mkdirSync(path.join(dir, 'folder.bin'));
    await expectFileError(dir, 'folder.bin', /"folder\.bin".*not a regular file/);
    await expectFileError(dir, 'missing.bin', /"missing\.bin".*is missing.*external_data=False/);
    fs.writeFileSync(path.join(dir, 'short.bin'), new Uint8Array(20));
    await expectFileError(dir, 'short.bin', /"short\.bin".*has 20 bytes but its tensors need 24/);
  });

  test('the size budget covers the model and its external data', async () => {
    const dir = tempDir();
    fs.writeFileSync(path.join(dir, 'big.bin'), new Uint8Array(4096));
    fs.writeFileSync(path.join(dir, 'm.onnx'), modelWithExternal('big.bin'));
    await assert.rejects(readModelFiles(path.join(dir, 'm.onnx'), nodeFs, 2048), (e: Error) => e instanceof ModelFileError && /more than the/.test(e.message));
  });

  test('the engine lists the files and byte ranges a model needs', () => {
    const needs = externalFilesNeeded(modelWithExternal('./m.onnx.data', 40));
    assert.deepEqual(needs, [{ location: './m.onnx.data', path: 'm.onnx.data', bytesNeeded: 64, tensors: ['w'] }]);
  });
});
