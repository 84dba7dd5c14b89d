/**
 * The export helper (python/gradlens_export.py) run as the extension runs it (extension/python/helperProcess.ts)
 * with the test venv's torch: each rule that finds the model and its input, each error, the time limit and
 * Cancel, and Verify: the engine's run repeated in PyTorch gives the same loss and gradients.
 */
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { inspectOnnx } from '../engine';
import type { RunCapture } from '../engine/inspect/capture';
import { HelperAsk, HelperFailure, HelperResult, runHelper } from '../extension/python/helperProcess';
import { readBundle, writeCaptureBundle } from '../extension/python/bundle';
import { compareGradients, differingModules, Verification } from '../extension/python/compare';
import { describeFailure } from '../extension/python/messages';
import { pythonEnv, skipWithoutTorch } from './python';
import { repoRoot } from './helpers';

const SCRIPT = path.join(repoRoot, 'python', 'gradlens_export.py');
const FIXTURES = path.join(repoRoot, 'test', 'fixtures', 'python', 'export');
const EXAMPLES = path.join(repoRoot, 'examples');
const TIMEOUT = 180_000;
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'gl-export-'));
process.on('exit', () => fs.rmSync(scratch, { recursive: true, force: true }));

interface Run {
  result?: HelperResult;
  failure?: HelperFailure;
  asks: HelperAsk[];
  remembered: Record<string, unknown>[];
  progress: string[];
}

/** Runs the helper on `file`; `answers` answer its questions in order (undefined declines). */
async function helper(file: string, request: Record<string, unknown> = {}, answers: (string | undefined)[] = [], options: { timeoutMs?: number; signal?: AbortSignal } = {}): Promise<Run> {
  const run: Run = { asks: [], remembered: [], progress: [] };
  const out = fs.mkdtempSync(path.join(scratch, 'out-'));
  try {
    run.result = await runHelper(pythonEnv()!.python, SCRIPT, { mode: 'export', file, root: path.dirname(file), out, ...request }, {
      onProgress: (m) => run.progress.push(m),
      onAsk: async (ask) => {
        run.asks.push(ask);
        return answers.shift();
      },
      onRemember: (f) => run.remembered.push(f),
    }, { cwd: path.dirname(file), timeoutMs: options.timeoutMs ?? TIMEOUT, signal: options.signal });
  } catch (err) {
    if (!(err instanceof HelperFailure)) throw err;
    run.failure = err;
  }
  return run;
}

function ok(run: Run): HelperResult {
  assert.ok(run.result, `the helper failed: ${run.failure?.code}: ${run.failure?.message}\n${run.failure?.detail ?? run.failure?.stderr.slice(-2000) ?? ''}`);
  return run.result;
}

function failed(run: Run, code: string): HelperFailure {
  assert.ok(run.failure, `expected the helper to fail with ${code}, it returned ${JSON.stringify(run.result)}`);
  assert.equal(run.failure.code, code, run.failure.message);
  return run.failure;
}

const inputsOf = (r: HelperResult) => r.inputs as { name: string; shape: number[]; dtype: string }[];

// Each run imports torch (seconds): the runs of a group go in parallel.
describe('export helper: how the model and its input are found', { concurrency: 4, ...skipWithoutTorch() }, () => {
  test('rule 1: gradlens_example() gives the model and the input', async () => {
    const r = ok(await helper(path.join(FIXTURES, 'example_fn.py')));
    assert.equal(r.className, 'Net');
    assert.match(String(r.recipe), /^gradlens_example\(\) in example_fn\.py$/);
    assert.deepEqual(inputsOf(r), [{ name: 'features', shape: [5, 6], dtype: 'float32' }]);
    assert.equal(r.exporter, 'torchscript');
    assert.equal(r.opset, 17);
    assert.ok(fs.statSync(String(r.onnx)).size > 100);
  });

  test('rule 2: the arguments of the file\'s torch.onnx.export call, running only the assignments they need', async () => {
    const r = ok(await helper(path.join(FIXTURES, 'export_call.py')));
    assert.equal(r.className, 'Net');
    assert.match(String(r.recipe), /torch\.onnx\.export call on line 20/);
    // input_names from the call; [3, width=7] from the sliced assignments (the `raise` between them did not run).
    assert.deepEqual(inputsOf(r), [{ name: 'features', shape: [3, 7], dtype: 'float32' }]);
  });

  test('rule 3: defaults and an input inferred from the first Linear (the only class of the file)', async () => {
    const r = ok(await helper(path.join(EXAMPLES, 'vanishing_mlp.py')));
    assert.equal(r.className, 'VanishingMLP');
    assert.match(String(r.recipe), /VanishingMLP\(\) with its defaults; input \[2, 16\] inferred from layers\.0 \(Linear, in_features=16\)/);
    assert.deepEqual(inputsOf(r), [{ name: 'x', shape: [2, 16], dtype: 'float32' }]);
  });

  test('rule 3: a convolution gives an image input; an embedding gives token ids; the outermost class is the model', async () => {
    const [cnn, gpt] = await Promise.all([helper(path.join(EXAMPLES, 'small_cnn.py')), helper(path.join(EXAMPLES, 'tiny_gpt.py'))]);
    assert.deepEqual(inputsOf(ok(cnn)), [{ name: 'x', shape: [2, 3, 32, 32], dtype: 'float32' }]);
    const r = ok(gpt);
    // tiny_gpt.py defines CausalSelfAttention, MLP, Block and TinyGPT: only TinyGPT is used by no other class.
    assert.equal(r.className, 'TinyGPT');
    assert.deepEqual(inputsOf(r), [{ name: 'idx', shape: [2, 16], dtype: 'int64' }]);
    assert.match(String(r.recipe), /token ids \[2, 16\] inferred from tok_emb \(Embedding, num_embeddings=\d+\)/);
  });

  test('a clicked class is built; one that needs arguments is an error naming them; at the cursor it gives way to the model', async () => {
    const [clicked, cursor, healthy] = await Promise.all([
      helper(path.join(EXAMPLES, 'tiny_gpt.py'), { className: 'Block', classReason: 'codelens' }),
      helper(path.join(EXAMPLES, 'tiny_gpt.py'), { className: 'Block', classReason: 'cursor' }),
      helper(path.join(EXAMPLES, 'healthy_mlp.py'), { className: 'HealthyMLP', classReason: 'codelens' }),
    ]);
    const f = failed(clicked, 'needs-arguments');
    assert.match(f.message, /^Block\(\) needs constructor arguments \(n_embd, n_head, block_size\)/);
    assert.match(f.message, /def gradlens_example\(\): return Block\(n_embd=\.\.\., n_head=\.\.\., block_size=\.\.\.\), torch\.randn\(\.\.\.\)/);
    const r = ok(cursor);
    assert.equal(r.className, 'TinyGPT');
    assert.match((r.notes as string[]).join('\n'), /Block\(\) needs constructor arguments.*inspecting the model instead/);
    assert.equal(ok(healthy).className, 'HealthyMLP');
  });

  test('two unrelated models: the helper asks which one, and exports the answer', async () => {
    const r = await helper(path.join(FIXTURES, 'two_models.py'), {}, ['Other']);
    assert.equal(r.asks.length, 1);
    assert.equal(r.asks[0].kind, 'class');
    assert.deepEqual(r.asks[0].options?.map((o) => o.name), ['Small', 'Other']);
    assert.deepEqual(inputsOf(ok(r)), [{ name: 'x', shape: [2, 3], dtype: 'float32' }]);
    failed(await helper(path.join(FIXTURES, 'two_models.py'), {}, [undefined]), 'cancelled');
  });

  test('nothing to infer the input from: the helper asks for a shape, retries a wrong one, and says to remember the right one', async () => {
    const r = await helper(path.join(FIXTURES, 'no_layers.py'), {}, ['4, 7', '4, 5']);
    assert.equal(r.asks.length, 2);
    assert.equal(r.asks[0].kind, 'inputShape');
    assert.match(r.asks[0].prompt ?? '', /Input shape for Bare\.forward\(x\)/);
    assert.match(r.asks[1].tried?.join('\n') ?? '', /4, 7: RuntimeError/);
    assert.deepEqual(inputsOf(ok(r)), [{ name: 'x', shape: [4, 5], dtype: 'float32' }]);
    assert.deepEqual(r.remembered.map((m) => m.inputShape), ['4, 5']);
    // Given up front (remembered), no question.
    const again = await helper(path.join(FIXTURES, 'no_layers.py'), { inputShape: '4, 5' });
    assert.equal(again.asks.length, 0);
    assert.deepEqual(inputsOf(ok(again)), [{ name: 'x', shape: [4, 5], dtype: 'float32' }]);
  });

  test('a model in a package imports its sibling module; the export lists that local file with its hash', async () => {
    const r = ok(await helper(path.join(FIXTURES, 'pkg', 'model.py'), { root: FIXTURES }));
    assert.equal(r.className, 'PkgNet');
    const files = r.files as { path: string; sha256: string }[];
    assert.deepEqual(files.map((f) => path.relative(FIXTURES, f.path)).sort(), [path.join('pkg', '__init__.py'), path.join('pkg', 'layers.py')]);
    assert.match(files[0].sha256, /^[0-9a-f]{64}$/);
  });
});

describe('export helper: errors', { concurrency: 4, ...skipWithoutTorch() }, () => {
  const python = () => ({ path: pythonEnv()!.python, source: 'setting' as const, version: '3', torch: pythonEnv()!.torch });

  test('an exception while importing the file: the message, and a Problem at the line that raised', async () => {
    const file = path.join(FIXTURES, 'import_error.py');
    const f = failed(await helper(file), 'import-failed');
    assert.match(f.message, /^importing import_error\.py raised: KeyError: 'large'$/);
    const report = describeFailure(f, file, python(), 'export');
    assert.deepEqual(report.problem, { file, line: 7, message: f.message });
    assert.match(report.message, /import_error\.py:8\)$/);
  });

  test('a syntax error: a Problem at its line', async () => {
    const file = path.join(FIXTURES, 'syntax_error.py');
    const f = failed(await helper(file), 'import-failed');
    assert.match(f.message, /syntax_error\.py has a syntax error: SyntaxError/);
    assert.equal(describeFailure(f, file, python(), 'export').problem?.line, 4);
  });

  test('a model that needs constructor arguments', async () => {
    const f = failed(await helper(path.join(FIXTURES, 'needs_args.py')), 'needs-arguments');
    assert.match(f.message, /^Needy\(\) needs constructor arguments \(d_in, d_out\)/);
  });

  test('an export failure reports the exporter\'s own message', async () => {
    const f = failed(await helper(path.join(FIXTURES, 'unexportable.py'), { exporter: 'torchscript' }), 'export-failed');
    assert.match(f.message, /Exporting the operator 'aten::special_zeta' to ONNX opset version 17 is not supported/);
  });

  test('without torch: the helper says which interpreter cannot import it', async () => {
    // `python -S` skips site-packages: the same interpreter without torch.
    const wrapper = path.join(scratch, 'python-without-site');
    fs.writeFileSync(wrapper, `#!/bin/sh\nexec "${pythonEnv()!.python}" -S "$@"\n`, { mode: 0o755 });
    const out = await runHelper(wrapper, SCRIPT, { file: path.join(EXAMPLES, 'vanishing_mlp.py'), out: scratch }, {}, { cwd: scratch, timeoutMs: TIMEOUT }).catch((e) => e);
    assert.ok(out instanceof HelperFailure);
    assert.equal(out.code, 'no-torch');
    assert.match(out.message, /cannot import torch: ModuleNotFoundError: No module named 'torch'/);
  });

  test('the time limit and Cancel kill the process', async () => {
    const file = path.join(FIXTURES, 'slow_import.py');
    const gone = async (pid: number) => {
      for (let i = 0; i < 50; i++) {
        try {
          process.kill(pid, 0);
        } catch {
          return true;
        }
        await new Promise((r) => setTimeout(r, 100));
      }
      return false;
    };
    let pid = 0;
    const timed = await runHelper(pythonEnv()!.python, SCRIPT, { file, out: scratch }, {}, { cwd: FIXTURES, timeoutMs: 1500, onSpawn: (p) => (pid = p) }).catch((e) => e);
    assert.equal(timed.code, 'timeout');
    assert.match(timed.message, /^took longer than 2 s$/);
    assert.ok(pid > 0 && (await gone(pid)), `the timed-out helper ${pid} was killed`);
    const abort = new AbortController();
    const cancelled = await runHelper(pythonEnv()!.python, SCRIPT, { file, out: scratch }, { onProgress: (m) => m.startsWith('importing slow') && abort.abort() }, { cwd: FIXTURES, timeoutMs: TIMEOUT, signal: abort.signal, onSpawn: (p) => (pid = p) }).catch((e) => e);
    assert.equal(cancelled.code, 'cancelled');
    assert.ok(await gone(pid), `the cancelled helper ${pid} was killed`);
  });
});

/** Exports `file`, runs the engine on it with a capture, and verifies the capture in PyTorch. */
async function exportInspectVerify(file: string, options: { dtype?: 'float32' | 'float64'; tamper?: (c: RunCapture) => void; batch?: number; mode?: 'train' | 'eval' } = {}): Promise<Verification> {
  const exported = ok(await helper(file));
  let capture: RunCapture | undefined;
  const report = await inspectOnnx(new Uint8Array(fs.readFileSync(String(exported.onnx))), path.basename(file), { batch: options.batch ?? 6, dtype: options.dtype, mode: options.mode, onCapture: (c) => (capture = c) });
  assert.ok(capture, 'the engine sent a capture');
  options.tamper?.(capture);
  const bundle = path.join(fs.mkdtempSync(path.join(scratch, 'verify-')), 'run.json');
  await writeCaptureBundle(bundle, capture);
  const verified = ok(await helper(file, { mode: 'verify', bundle, className: exported.className, classReason: 'remembered' }));
  const torch = await readBundle(String(verified.gradients));
  const owners = new Map<string, string>();
  for (const m of report.modules) for (const p of m.parameters) owners.set(p.name, m.path);
  const v = compareGradients({ dtype: capture.dtype, engine: capture.gradients, torch: torch.tensors, owners, engineLoss: capture.loss.value, torchLoss: Number(torch.fields.loss), notLoaded: torch.fields.notLoaded as string[], noCounterpart: torch.fields.noCounterpart as string[] });
  v.notes.push(...(verified.notes as string[])); // as extension/python/verify.ts does
  return v;
}

describe('Verify against PyTorch: the engine\'s run repeated in PyTorch', { concurrency: 4, ...skipWithoutTorch() }, () => {
  test('vanishing MLP (cross-entropy on random labels): every module matches, float32 and float64', async () => {
    const v32 = await exportInspectVerify(path.join(EXAMPLES, 'vanishing_mlp.py'));
    assert.equal(v32.status, 'match', JSON.stringify(v32));
    assert.equal(v32.compared, 20);
    assert.equal(v32.modules.length, 10);
    assert.ok(v32.maxRelative < 1e-5, `max ${v32.maxRelative}`);
    assert.ok(v32.loss.relative < 1e-6);
    const v64 = await exportInspectVerify(path.join(EXAMPLES, 'vanishing_mlp.py'), { dtype: 'float64' });
    assert.equal(v64.status, 'match');
    assert.ok(v64.maxRelative < 1e-12, `max ${v64.maxRelative}`);
  });

  test('batch norm and dropout in training mode (the engine\'s masks replayed), and the tiny GPT (next-token loss)', async () => {
    const [drop, gpt] = await Promise.all([exportInspectVerify(path.join(FIXTURES, 'dropout_net.py')), exportInspectVerify(path.join(EXAMPLES, 'tiny_gpt.py'), { batch: 3 })]);
    assert.equal(drop.status, 'match', JSON.stringify(drop));
    assert.deepEqual(drop.modules.map((m) => m.path).sort(), ['fc1', 'fc2', 'norm']);
    assert.equal(gpt.status, 'match', JSON.stringify(gpt.modules.slice(0, 3)));
    assert.ok(gpt.maxRelative < 1e-4);
    assert.ok(gpt.compared > 20);
  });

  test('eval mode (gradientLens.run.mode): running statistics, no dropout, and PyTorch repeats it in model.eval()', async () => {
    const v = await exportInspectVerify(path.join(FIXTURES, 'dropout_net.py'), { mode: 'eval' });
    assert.equal(v.status, 'match', JSON.stringify(v));
    assert.deepEqual(v.modules.map((m) => m.path).sort(), ['fc1', 'fc2', 'norm']);
    assert.ok(v.maxRelative < 1e-4, `max ${v.maxRelative}`);
    assert.deepEqual(v.notes, []);
  });

  test('attention dropout inside scaled_dot_product_attention (exported in inference form): the engine drops there in train mode, and PyTorch replays its mask', async () => {
    const v = await exportInspectVerify(path.join(FIXTURES, 'sdpa_dropout.py'), { batch: 3 });
    assert.equal(v.status, 'match', JSON.stringify(v));
    assert.deepEqual(v.modules.map((m) => m.path).sort(), ['emb', 'head', 'proj', 'qkv']);
    assert.ok(v.maxRelative < 1e-4, `max ${v.maxRelative}`);
    // The inspection runs in train mode by default: the Dropout node drops (an inference-form export no longer
    // turns it off), so PyTorch had nothing to repeat without it.
    assert.deepEqual(v.notes, []);
  });

  test('an engine gradient that is wrong is caught and its module named', async () => {
    const v = await exportInspectVerify(path.join(EXAMPLES, 'vanishing_mlp.py'), {
      tamper: (c) => {
        const g = c.gradients.find((t) => t.name === 'layers.3.weight')!;
        g.data[5] += 1e-3 * Math.abs(g.data[5]) + 1e-9;
        g.data[6] *= 1.01;
      },
    });
    assert.equal(v.status, 'differ');
    assert.deepEqual(differingModules(v).map((m) => m.path), ['layers.3']);
    assert.equal(differingModules(v)[0].worst, 'layers.3.weight');
  });
});
