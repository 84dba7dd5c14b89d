/**
 * The extension's side of "inspect straight from the Python file", without running the user's model:
 * which interpreter is used (each source, in order), what it has (the probe), which class the editor asks
 * for, the export cache's keys and staleness, the message for each failure, and the engine-vs-PyTorch
 * comparison behind Verify.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { findInterpreter, fromPythonExtension, NoInterpreterError, probeInterpreter, resolveSetting } from '../extension/python/interpreter';
import { requestedClass } from '../extension/python/classChoice';
import { entryDir, ExportMeta, exportKey, ExportKeyParts, lookupExport, pruneExports, sha256, stagingDir } from '../extension/python/exportCache';
import { describeFailure, noInterpreterMessage, PythonInfo } from '../extension/python/messages';
import { HelperFailure } from '../extension/python/helperProcess';
import { compareGradients, differingModules, verificationBadge } from '../extension/python/compare';
import type { CapturedTensor } from '../engine/inspect/capture';
import { pythonEnv, skipWithoutTorch } from './python';

const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'gl-pysupport-'));
process.on('exit', () => fs.rmSync(scratch, { recursive: true, force: true }));

/** An executable shell script at `file` (a stand-in interpreter). */
function executable(file: string, body = 'exit 0'): string {
  fs.mkdirSync(path.dirname(file), { recursive: true });
  fs.writeFileSync(file, `#!/bin/sh\n${body}\n`, { mode: 0o755 });
  return file;
}

const posixOnly = process.platform === 'win32' ? { skip: 'stand-in interpreters are shell scripts' } : {};

describe('interpreter discovery: the setting, else the Python extension, else PATH', posixOnly, () => {
  const root = fs.mkdtempSync(path.join(scratch, 'interp-'));
  const workspace = path.join(root, 'ws');
  const venvPython = executable(path.join(workspace, '.venv', 'bin', 'python'));
  const pathDir = path.join(root, 'bin');
  const pathPython3 = executable(path.join(pathDir, 'python3'));
  const env = { PATH: pathDir };
  const extensionPython = executable(path.join(root, 'conda', 'bin', 'python'));
  const api = {
    environments: {
      getActiveEnvironmentPath: (r: unknown) => (r === 'model.py' ? { id: 'conda', path: path.join(root, 'conda') } : undefined),
      resolveEnvironment: async (e: { id: string }) => (e.id === 'conda' ? { executable: { uri: { fsPath: extensionPython } } } : undefined),
    },
  };

  test('the setting wins over the Python extension: absolute, relative, ${workspaceFolder}, ~ and a command on PATH', async () => {
    for (const setting of [venvPython, '.venv/bin/python', '${workspaceFolder}/.venv/bin/python']) {
      assert.deepEqual(await findInterpreter({ setting, workspaceFolder: workspace, pythonApi: api, resource: 'model.py', env }), { path: venvPython, source: 'setting' }, setting);
    }
    assert.equal(resolveSetting('python3', workspace, env), pathPython3);
    assert.equal(resolveSetting('~', workspace, env), undefined, 'the home folder is not an executable');
    const viaHome = resolveSetting(`~/${path.relative(os.homedir(), venvPython)}`, workspace, env);
    assert.equal(viaHome && path.resolve(viaHome), venvPython);
    assert.equal(resolveSetting('   ', workspace, env), undefined);
  });

  test('no setting: the interpreter the Python extension selected for the file (environments API, then the older settings API)', async () => {
    assert.deepEqual(await findInterpreter({ setting: '', workspaceFolder: workspace, pythonApi: api, resource: 'model.py', env }), { path: extensionPython, source: 'python-extension' });
    const older = { settings: { getExecutionDetails: () => ({ execCommand: [extensionPython] }) } };
    assert.equal(await fromPythonExtension(older, 'model.py'), extensionPython);
    // A command with arguments (`conda run ...`) is no interpreter path: not used.
    assert.equal(await fromPythonExtension({ settings: { getExecutionDetails: () => ({ execCommand: ['conda', 'run', 'python'] }) } }, 'x.py'), undefined);
  });

  test('a setting that is not an executable, and an extension with nothing selected or a broken API, fall through to python3 on PATH', async () => {
    const broken = { environments: { getActiveEnvironmentPath: () => { throw new Error('not ready'); } } };
    for (const pythonApi of [undefined, api, broken]) {
      const found = await findInterpreter({ setting: path.join(workspace, 'missing', 'python'), workspaceFolder: workspace, pythonApi, resource: 'other.py', env });
      assert.deepEqual(found, { path: pathPython3, source: 'path' });
    }
  });

  test('nothing found: the error lists every source tried', async () => {
    const err = await findInterpreter({ setting: 'nosuchpython', workspaceFolder: workspace, env: { PATH: path.join(root, 'empty') } }).catch((e) => e);
    assert.ok(err instanceof NoInterpreterError);
    assert.deepEqual(err.tried, ['gradientLens.python = "nosuchpython" (not an executable)', 'the Python extension (not installed)', 'python3 and python on PATH']);
    const report = noInterpreterMessage('/w/model.py', err.tried);
    assert.match(report.message, /to export model\.py, and found no Python interpreter \(tried gradientLens\.python = "nosuchpython" \(not an executable\); the Python extension \(not installed\); python3 and python on PATH\)\. Set gradientLens\.python/);
    assert.deepEqual(report.actions, ['openSettings']);
  });

  test('the probe: a program that is not Python is rejected with its name', async () => {
    const notPython = executable(path.join(root, 'not-python'), 'echo "Traceback: nope" >&2; exit 3');
    await assert.rejects(probeInterpreter(notPython), new RegExp(`^Error: ${notPython.replace(/[.*+?^${}()|[\]\\/]/g, '\\$&')} is not a working Python: Traceback: nope$`));
    await assert.rejects(probeInterpreter(path.join(root, 'absent')), /could not run .*absent: spawn .*ENOENT/);
  });
});

describe('interpreter probe on a real Python', skipWithoutTorch(), () => {
  test('finds torch\'s version without importing torch, and its absence', async () => {
    const env = pythonEnv()!;
    const probe = await probeInterpreter(env.python);
    assert.equal(probe.torch, env.torch);
    assert.match(probe.version, /^3\.\d+\.\d+/);
    // `python -S` skips site-packages: the same interpreter without torch.
    const bare = executable(path.join(scratch, 'python-no-site'), `exec "${env.python}" -S "$@"`);
    assert.equal((await probeInterpreter(bare)).torch, null);
  });
});

describe('which class the editor asks for', () => {
  const classes = [
    { name: 'Block', line: 2, endLine: 10 },
    { name: 'Inner', line: 5, endLine: 8 },
    { name: 'Model', line: 12, endLine: 20 },
  ];
  test('the clicked CodeLens, else the only class, else the innermost class at the cursor, else the remembered one, else the helper decides', () => {
    assert.deepEqual(requestedClass(classes, { clicked: 'Model', cursorLine: 6, remembered: 'Block' }), { className: 'Model', reason: 'codelens' });
    assert.deepEqual(requestedClass([classes[2]], { cursorLine: 6 }), { className: 'Model', reason: 'only' });
    assert.deepEqual(requestedClass(classes, { cursorLine: 6, remembered: 'Model' }), { className: 'Inner', reason: 'cursor' });
    assert.deepEqual(requestedClass(classes, { cursorLine: 3 }), { className: 'Block', reason: 'cursor' });
    assert.deepEqual(requestedClass(classes, { cursorLine: 11, remembered: 'Model' }), { className: 'Model', reason: 'remembered' });
    assert.deepEqual(requestedClass(classes, { remembered: 'Gone' }), {});
    assert.deepEqual(requestedClass([], {}), {});
  });
});

describe('export cache', () => {
  const base: ExportKeyParts = { file: '/w/model.py', content: 'class M: pass\n', python: '/usr/bin/python3', torch: '2.13.0+cpu', helper: 'h1', className: 'M' };

  test('the key changes with the file\'s content, the interpreter, the torch version, the helper, the class, the input shape and the exporter, and only with them', () => {
    const key = exportKey(base);
    assert.match(key, /^[0-9a-f]{64}$/);
    assert.equal(exportKey({ ...base, content: new TextEncoder().encode(base.content as string) }), key, 'bytes and text of the same content');
    const changes: Partial<ExportKeyParts>[] = [
      { content: 'class M: pass  \n' }, { file: '/w/other.py' }, { python: '/venv/bin/python' }, { torch: '2.12.0' },
      { helper: 'h2' }, { className: 'N' }, { inputShape: '4, 5' }, { exporter: 'dynamo' },
    ];
    const keys = changes.map((c) => exportKey({ ...base, ...c }));
    for (const [i, k] of keys.entries()) assert.notEqual(k, key, JSON.stringify(changes[i]));
    assert.equal(new Set(keys).size, keys.length);
  });

  test('an entry is found after commit, is stale when a local module it imported changed, and gone without its .onnx', async () => {
    const root = fs.mkdtempSync(path.join(scratch, 'cache-'));
    const project = fs.mkdtempSync(path.join(scratch, 'proj-'));
    const layers = path.join(project, 'layers.py');
    fs.writeFileSync(layers, 'WIDTH = 4\n');
    const file = path.join(project, 'model.py');
    const key = exportKey({ ...base, file });
    assert.equal(await lookupExport(root, file, key), undefined);
    const staging = await stagingDir(root, file);
    fs.writeFileSync(path.join(staging.dir, 'model.onnx'), 'onnx bytes');
    const meta: ExportMeta = {
      onnx: path.join(staging.dir, 'model.onnx'), className: 'M', recipe: 'M()', exporter: 'torchscript', opset: 17, torch: '2.13.0+cpu',
      python: '/usr/bin/python3', notes: [], inputs: [], files: [{ path: layers, sha256: sha256('WIDTH = 4\n') }], seconds: 1,
    };
    const moved = await staging.commit(meta, key);
    assert.equal(moved.onnx, path.join(entryDir(root, file, key), 'model.onnx'));
    assert.equal(fs.readFileSync(moved.onnx, 'utf8'), 'onnx bytes');
    assert.ok(!fs.existsSync(staging.dir));
    const hit = await lookupExport(root, file, key);
    assert.deepEqual(hit, { meta: moved });
    fs.writeFileSync(layers, 'WIDTH = 8\n');
    assert.equal((await lookupExport(root, file, key))?.stale, 'layers.py changed');
    fs.rmSync(layers);
    assert.equal((await lookupExport(root, file, key))?.stale, 'layers.py changed');
    fs.rmSync(moved.onnx);
    assert.equal(await lookupExport(root, file, key), undefined);
    const discarded = await stagingDir(root, file);
    await discarded.discard();
    assert.ok(!fs.existsSync(discarded.dir));
  });

  test('pruning keeps the most recently used entries and drops old staging folders', async () => {
    const root = fs.mkdtempSync(path.join(scratch, 'prune-'));
    const old = new Date(Date.now() - 2 * 3_600_000);
    for (let i = 0; i < 5; i++) {
      const dir = path.join(root, `m-${i}`);
      fs.mkdirSync(dir);
      const t = new Date(Date.now() - (5 - i) * 60_000);
      fs.utimesSync(dir, t, t);
    }
    fs.mkdirSync(path.join(root, '.staging-old'));
    fs.utimesSync(path.join(root, '.staging-old'), old, old);
    fs.mkdirSync(path.join(root, '.staging-now'));
    await pruneExports(root, 2);
    assert.deepEqual(fs.readdirSync(root).sort(), ['.staging-now', 'm-3', 'm-4']);
  });
});

describe('failure messages', () => {
  const python: PythonInfo = { path: '/opt/py/bin/python', source: 'python-extension', version: '3.11.2', torch: '2.13.0' };

  test('each failure names what is at fault and the way out', () => {
    const file = '/w/pkg/model.py';
    const noTorch = describeFailure(new HelperFailure('no-torch', '/opt/py/bin/python cannot import torch: ImportError: libc10.so missing'), file, python, 'export');
    assert.equal(noTorch.message, '/opt/py/bin/python (Python 3.11.2, from the Python extension) cannot import torch: ImportError: libc10.so missing. Pick an interpreter with PyTorch: set gradientLens.python, or select one with "Python: Select Interpreter".');
    assert.deepEqual(noTorch.actions, ['openSettings', 'selectInterpreter']);

    // The innermost frame in the inspected file is the Problem, even when a deeper frame is in another user file.
    const frames = [{ file, line: 30, name: '<module>' }, { file, line: 12, name: '__init__' }, { file: '/w/pkg/layers.py', line: 4, name: 'make' }];
    const raised = describeFailure(new HelperFailure('build-failed', 'Model() raised: ValueError: bad width', frames), file, python, 'export');
    assert.equal(raised.message, 'Gradient Lens could not export model.py: Model() raised: ValueError: bad width (model.py:12)');
    assert.deepEqual(raised.problem, { file, line: 11, message: 'Model() raised: ValueError: bad width' });
    const elsewhere = describeFailure(new HelperFailure('import-failed', 'importing model.py raised: KeyError: 1', [frames[2]]), file, python, 'verify');
    assert.equal(elsewhere.message, 'Gradient Lens could not verify model.py against PyTorch: importing model.py raised: KeyError: 1 (layers.py:4)');
    assert.equal(elsewhere.problem?.file, '/w/pkg/layers.py');

    const timeout = describeFailure(new HelperFailure('timeout', 'took longer than 300 s'), file, python, 'export');
    assert.match(timeout.message, /^Gradient Lens stopped the export of model\.py: it took longer than 300 s \(gradientLens\.export\.timeout\)/);
    assert.equal(describeFailure(new HelperFailure('cancelled', 'cancelled'), file, python, 'export').message, 'cancelled');
    const exporter = describeFailure(new HelperFailure('export-failed', "torch.onnx.export failed: Exporting the operator 'aten::foo' is not supported"), file, python, 'export');
    assert.equal(exporter.message, "Gradient Lens could not export model.py: torch.onnx.export failed: Exporting the operator 'aten::foo' is not supported");
    assert.equal(exporter.problem, undefined);
  });
});

describe('Verify: engine vs PyTorch per module', () => {
  const t = (name: string, values: number[]): CapturedTensor => ({ name, dtype: 'float32', shape: [values.length], data: Float32Array.from(values) });
  const owners = new Map([['fc1.weight', 'fc1'], ['fc1.bias', 'fc1'], ['fc2.weight', 'fc2']]);
  const engine = [t('fc1.weight', [1, 2, 3]), t('fc1.bias', [0.5]), t('fc2.weight', [-4, 0])];

  test('equal gradients match; the module and its worst parameter are named when one differs', () => {
    const same = compareGradients({ dtype: 'float32', engine, torch: new Map(engine.map((e) => [e.name, e])), owners, engineLoss: 2.5, torchLoss: 2.5 });
    assert.equal(same.status, 'match');
    assert.equal(same.maxRelative, 0);
    assert.equal(same.compared, 3);
    assert.equal(verificationBadge(same), 'matches PyTorch (max 0.0e+0)');

    const torch = new Map(engine.map((e) => [e.name, e]));
    torch.set('fc1.bias', t('fc1.bias', [0.5 + 0.01]));
    const v = compareGradients({ dtype: 'float32', engine, torch, owners, engineLoss: 2.5, torchLoss: 2.5 });
    assert.equal(v.status, 'differ');
    // fc1: ‖(0,0,0,-0.01)‖ / max(‖(1,2,3,0.5)‖, ‖(1,2,3,0.51)‖)
    const expected = 0.01 / Math.hypot(1, 2, 3, Math.fround(0.51));
    assert.ok(Math.abs(v.modules[0].relative - expected) < 1e-6 * expected, `${v.modules[0].relative} vs ${expected}`);
    assert.deepEqual(differingModules(v).map((m) => [m.path, m.worst, m.parameters]), [['fc1', 'fc1.bias', 2]]);
    assert.equal(verificationBadge(v), `differs from PyTorch in 1 module (max ${v.maxRelative.toExponential(1)})`);
  });

  test('a loss that differs, a NaN gradient, and parameters PyTorch could not load are never a match', () => {
    const torch = new Map(engine.map((e) => [e.name, e]));
    const loss = compareGradients({ dtype: 'float32', engine, torch, owners, engineLoss: 2.5, torchLoss: 2.6 });
    assert.equal(loss.status, 'differ');
    assert.match(verificationBadge(loss), /^loss differs from PyTorch \(3\.8e-2\)$/);
    const nan = compareGradients({ dtype: 'float32', engine: [t('fc2.weight', [NaN, 0]), ...engine.slice(0, 2)], torch, owners, engineLoss: 2.5, torchLoss: 2.5 });
    assert.equal(nan.status, 'differ');
    assert.equal(nan.modules[0].path, 'fc2');
    assert.ok(Number.isNaN(nan.maxRelative));
    const partial = compareGradients({ dtype: 'float32', engine, torch, owners, engineLoss: 2.5, torchLoss: 2.5, notLoaded: ['fc3.weight'] });
    assert.equal(partial.status, 'inconclusive');
    assert.match(verificationBadge(partial), /^not verified: PyTorch parameters missing from the export kept their own values.*fc3\.weight$/);
    const none = compareGradients({ dtype: 'float32', engine, torch: new Map(), owners, engineLoss: 2.5, torchLoss: 2.5 });
    assert.equal(none.status, 'inconclusive');
    assert.equal(none.compared, 0);
  });
});
