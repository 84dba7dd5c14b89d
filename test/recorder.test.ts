/**
 * python/gradlens_recorder.py: the PyTorch-side writer of `gradient-lens/training@1`. Runs its demo
 * on examples/vanishing_mlp.py and examples/tiny_gpt.py and a NaN-producing fixture
 * (test/fixtures/recorder/nan_model.py) with the test environment's torch (test/python.ts: required in CI),
 * parses the output with the extension's parser and maps its module paths with the extension's source
 * mapper. One test runs the recorder under Debian's torch 1.13 (/usr/bin/python3, when it has torch): the
 * recorder must keep working for single-process jobs on the torch older users have.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { ModuleSeries, parseTrainingRecord, serializeTrainingRecord, TRAINING_SCHEMA, TrainingRecord, TrainingRecordError } from '../engine/train/record';
import { documentMapping } from '../extension/sourceMapper';
import { trainingOverlays } from '../extension/overlay/training';
import { applySourceMetadata, createPythonParser, indexPythonSource, mapModulePaths, nodeModulesWasmPaths, sameSourceFile } from '../extension/sourceMap';
import { repoRoot } from './helpers';
import { pythonEnv, skipWithoutTorch } from './python';
import { parseTrainingStream } from '../engine/train/stream';

const DEBIAN_PYTHON = '/usr/bin/python3';
const RECORDER = path.join(repoRoot, 'python', 'gradlens_recorder.py');
const torch = skipWithoutTorch();

/**
 * Why Debian's torch 1.13 cannot run here, or null when it imports. Optional locally; CI installs it and sets
 * GRADLENS_REQUIRE_DEBIAN_TORCH=1, which turns the skip into a failure.
 */
const noDebianTorch: string | null = (() => {
  const r = spawnSync(DEBIAN_PYTHON, ['-c', 'import torch'], { encoding: 'utf8', timeout: 60_000 });
  if (r.error) return `${DEBIAN_PYTHON} cannot run: ${r.error.message}`;
  return r.status === 0 ? null : `${DEBIAN_PYTHON} has no torch: ${(r.stderr || '').trim().split('\n').pop()}`;
})();

function python(args: string[], interpreter = pythonEnv()?.python ?? DEBIAN_PYTHON): string {
  const r = spawnSync(interpreter, args, { cwd: repoRoot, encoding: 'utf8', timeout: 180_000 });
  assert.equal(r.status, 0, `${interpreter} ${args.join(' ')} failed (${r.status}):\n${r.stdout}\n${r.stderr}`);
  return r.stdout;
}

const tmp = () => fs.mkdtempSync(path.join(os.tmpdir(), 'gl-recorder-'));

/** Runs the recorder's demo and parses what it wrote. */
function demo(example: string, extra: string[], interpreter?: string): { record: TrainingRecord; text: string; stream: string } {
  const dir = tmp();
  const out = path.join(dir, 'run.json');
  const stream = path.join(dir, 'run.gradlens.jsonl');
  try {
    python([RECORDER, '--demo', path.join('examples', example), '--out', out, '--stream', stream, ...extra], interpreter);
    const text = fs.readFileSync(out, 'utf8');
    return { record: parseTrainingRecord(text, example), text, stream: fs.readFileSync(stream, 'utf8') };
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
}

/** named_modules() of an example's model, asked of PyTorch directly (not through the recorder): [path, class, hasChildren]. */
function namedModules(example: string, cls: string): [string, string, boolean][] {
  const code = [
    'import json, sys',
    `sys.path.insert(0, 'examples')`,
    `from ${example} import ${cls}`,
    `m = ${cls}()`,
    'print(json.dumps([[n, type(x).__name__, any(True for _ in x.children())] for n, x in m.named_modules()]))',
  ].join('\n');
  return JSON.parse(python(['-c', code])) as [string, string, boolean][];
}

function mod(record: TrainingRecord, p: string): ModuleSeries {
  const m = record.modules.find((x) => x.path === p);
  assert.ok(m, `module '${p}' is not in the record (${record.modules.map((x) => x.path).join(', ')})`);
  return m;
}

const isPositiveFinite = (v: number | null): boolean => v !== null && Number.isFinite(v) && v > 0;

/** 0-based line of the first line containing `text` at or after line `after`. */
function lineOf(source: string, text: string, after = 0): number {
  const i = source.split('\n').findIndex((l, n) => n >= after && l.includes(text));
  assert.ok(i >= 0, `'${text}' not found`);
  return i;
}

/** A record as JSON carries it (absent and undefined fields alike), for comparing records built two ways. */
const plain = (r: TrainingRecord) => JSON.parse(serializeTrainingRecord(r));

const range = (a: number, b: number, step = 1) => Array.from({ length: Math.floor((b - a) / step) + 1 }, (_, i) => a + i * step);

test('recorder demo on vanishing_mlp.py: steps, losses, modules, update ratios, vanishing gradients, source lines', torch, async () => {
  const steps = 6;
  const { record, text, stream } = demo('vanishing_mlp.py', ['--steps', String(steps), '--optimizer', 'sgd', '--lr', '0.05']);
  assert.equal(record.schema, TRAINING_SCHEMA);
  // The stream written as the job ran holds the same record as the JSON written at its end.
  const streamed = parseTrainingStream(stream, 'run.gradlens.jsonl');
  assert.equal(streamed.ended, true);
  assert.deepEqual(plain(streamed.record), plain(record));
  assert.match(record.producer, /^gradlens_recorder\.py \(torch \d/);
  assert.equal(record.model.name, 'VanishingMLP');
  assert.equal(record.model.source, 'examples/vanishing_mlp.py', 'relative to the working directory');
  assert.deepEqual(record.steps, range(1, steps));
  assert.deepEqual([record.optimizer.kind, record.optimizer.lr, record.optimizer.momentum], ['sgd', 0.05, 0.9]);
  assert.ok(!text.includes('NaN') && !/Infinity/.test(text), 'a healthy run has no non-finite values');
  assert.equal(record.anomaly, undefined);

  // Losses: finite, positive, and the run learns the fixed batch.
  assert.ok(record.loss.every(isPositiveFinite), `losses ${record.loss}`);
  assert.ok(record.loss[steps - 1]! < record.loss[0]!, `loss should fall on a fixed batch: ${record.loss}`);

  // The module paths are exactly named_modules(); leaves and kinds as PyTorch says.
  const torchModules = namedModules('vanishing_mlp', 'VanishingMLP');
  assert.deepEqual(record.modules.map((m) => m.path).sort(), torchModules.map(([p]) => p).sort());
  const leaves = record.modules.filter((m) => m.leaf).map((m) => m.path);
  assert.deepEqual(leaves, torchModules.filter(([, , kids]) => !kids).map(([p]) => p));
  assert.deepEqual(leaves, range(0, 9).map((i) => `layers.${i}`), 'depth=10 Linear layers, in forward order');
  for (const [p, cls] of torchModules) assert.equal(mod(record, p).kind, cls);
  const depths = leaves.map((p) => mod(record, p).depth);
  assert.deepEqual(depths, [...depths].sort((a, b) => a - b), 'depth follows the forward order');
  assert.equal(mod(record, '').depth, 0);

  for (const p of leaves) {
    const m = mod(record, p);
    assert.ok(m.updateRatio.every(isPositiveFinite), `${p} is trained: update ratios ${m.updateRatio}`);
    assert.ok(m.paramNorm.every(isPositiveFinite), `${p} paramNorm ${m.paramNorm}`);
    assert.ok(m.actStd.every(isPositiveFinite), `${p} actStd ${m.actStd}`);
    assert.ok(m.zeroFraction.every((z) => z !== null && z >= 0 && z <= 1), `${p} zeroFraction ${m.zeroFraction}`);
  }
  // A ModuleList is never called: no activation of its own, but its parameters' norms.
  assert.deepEqual(mod(record, 'layers').actMean, new Array(steps).fill(null));
  assert.ok(mod(record, 'layers').gradNorm.every(isPositiveFinite));

  // Norms are consistent: descendants' norms combine into the parent's and the root's is the total.
  for (let s = 0; s < steps; s++) {
    const sumSq = leaves.reduce((a, p) => a + mod(record, p).gradNorm[s]! ** 2, 0);
    assert.ok(Math.abs(Math.sqrt(sumSq) - record.gradNormTotal[s]!) <= 1e-9 * record.gradNormTotal[s]!, `step ${s + 1}: leaves vs total`);
    assert.ok(Math.abs(mod(record, '').gradNorm[s]! - record.gradNormTotal[s]!) <= 1e-12 * record.gradNormTotal[s]!);
    // The model's output is the last layer's output.
    assert.equal(mod(record, '').actMean[s], mod(record, 'layers.9').actMean[s]);
  }

  // The point of the example: gradients vanish towards the input.
  for (let s = 0; s < steps; s++) {
    const g = leaves.map((p) => mod(record, p).gradNorm[s]!);
    assert.ok(g[0] < 1e-4 * g[9], `step ${s + 1}: first layer ${g[0]} vs last ${g[9]}`);
    for (let i = 1; i < g.length; i++) assert.ok(g[i - 1] < g[i], `step ${s + 1}: layers.${i - 1} ${g[i - 1]} >= layers.${i} ${g[i]}`);
  }

  // The paths map onto the example's source with the extension's mapper.
  const file = path.join(repoRoot, 'examples', 'vanishing_mlp.py');
  const src = fs.readFileSync(file, 'utf8');
  const index = indexPythonSource(await createPythonParser(nodeModulesWasmPaths(repoRoot)), src, file);
  const mapping = mapModulePaths(index, record.modules.map((m) => m.path).filter((p) => p !== ''));
  assert.equal(mapping.root?.name, 'VanishingMLP');
  assert.deepEqual([...mapping.unresolved.keys()], []);
  const definition = lineOf(src, 'nn.ModuleList([nn.Linear(a, b)');
  const call = lineOf(src, 'x = layer(x)');
  for (const p of leaves) {
    const r = mapping.resolved.get(p)!;
    assert.deepEqual([r.line, r.className, r.callLines], [definition, 'Linear', [call]], p);
    // The recorder's call sites (1-based, like stack traces) point at the same forward line.
    const source = mod(record, p).source;
    assert.ok(source && sameSourceFile(source.file, file), `${p} source ${JSON.stringify(source)}`);
    assert.equal(source.line - 1, call, `${p} is called from 'x = layer(x)'`);
  }
  // As metadata (what the extension does with module sources), they keep every leaf on that call line.
  const metadata = Object.fromEntries(record.modules.filter((m) => m.path !== '' && m.source).map((m) => [m.path, m.source!]));
  const anchored = applySourceMetadata(mapping, metadata, { file, source: src });
  for (const p of leaves) assert.deepEqual([anchored.resolved.get(p)!.line, anchored.resolved.get(p)!.origin], [call, 'source+metadata']);
});

test('recorder demo on tiny_gpt.py with every=2: recorded steps, all modules trained, Linear definitions and calls', torch, async () => {
  const { record } = demo('tiny_gpt.py', ['--steps', '7', '--every', '2', '--optimizer', 'adamw', '--lr', '0.003']);
  assert.deepEqual(record.steps, [1, 3, 5, 7]);
  assert.equal(record.settings?.every, 2);
  assert.equal(record.optimizer.kind, 'adamw');
  assert.deepEqual(record.optimizer.betas, [0.9, 0.999]);
  assert.ok(record.loss.every(isPositiveFinite), `losses ${record.loss}`);
  assert.ok(record.loss[3]! < record.loss[0]!, `loss falls: ${record.loss}`);

  const torchModules = namedModules('tiny_gpt', 'TinyGPT');
  assert.deepEqual(record.modules.map((m) => m.path).sort(), torchModules.map(([p]) => p).sort());
  const leaves = record.modules.filter((m) => m.leaf);
  assert.deepEqual(leaves.map((m) => m.path).sort(), torchModules.filter(([, , kids]) => !kids).map(([p]) => p).sort());
  for (const m of leaves) {
    assert.ok(m.updateRatio.every(isPositiveFinite), `${m.path} update ratios ${m.updateRatio}`);
    assert.ok(m.gradNorm.every(isPositiveFinite), `${m.path} grad norms ${m.gradNorm}`);
  }
  // Forward order: embeddings first, the head last; inside a block ln1 < attn.q_proj < mlp.fc.
  const depth = (p: string) => mod(record, p).depth;
  assert.ok(depth('tok_emb') < depth('blocks.0.ln1') && depth('blocks.0.ln1') < depth('blocks.0.attn.q_proj'));
  assert.ok(depth('blocks.0.attn.out_proj') < depth('blocks.0.mlp.fc') && depth('blocks.0.mlp.proj') < depth('blocks.1.ln1'));
  assert.equal(Math.max(...record.modules.map((m) => m.depth)), depth('lm_head'));
  // LayerNorm outputs are normalised (weight 1, bias 0 at the start).
  assert.ok(Math.abs(mod(record, 'blocks.0.ln1').actStd[0]! - 1) < 1e-3 && Math.abs(mod(record, 'blocks.0.ln1').actMean[0]!) < 1e-5);

  const file = path.join(repoRoot, 'examples', 'tiny_gpt.py');
  const src = fs.readFileSync(file, 'utf8');
  const lines = src.split('\n');
  // Next-token cross-entropy over the example's character vocabulary starts near ln(vocabulary size).
  const vocab = new Set(/^TEXT = "(.*)"$/m.exec(src)![1]).size;
  assert.ok(Math.abs(record.loss[0]! - Math.log(vocab)) < 0.7, `first loss ${record.loss[0]} vs ln(${vocab})`);
  const index = indexPythonSource(await createPythonParser(nodeModulesWasmPaths(repoRoot)), src, file);
  const mapping = mapModulePaths(index, record.modules.map((m) => m.path).filter((p) => p !== ''));
  assert.equal(mapping.root?.name, 'TinyGPT');
  assert.deepEqual([...mapping.unresolved.keys()], []);
  const linears = record.modules.filter((m) => m.kind === 'Linear');
  assert.equal(linears.length, 2 * 6 + 1, 'q/k/v/out_proj, fc, proj per block, and lm_head');
  for (const m of linears) {
    const attr = m.path.split('.').pop()!;
    const r = mapping.resolved.get(m.path)!;
    assert.ok(lines[r.line].includes(`self.${attr} = nn.Linear(`), `${m.path} -> line ${r.line + 1}: ${lines[r.line]}`);
  }
  for (const m of leaves) {
    const attr = m.path.split('.').pop()!;
    assert.ok(m.source && sameSourceFile(m.source.file, file), `${m.path} source ${JSON.stringify(m.source)}`);
    assert.ok(lines[m.source.line - 1].includes(`self.${attr}(`), `${m.path} called at line ${m.source.line}: ${lines[m.source.line - 1]}`);
    assert.ok(mapping.resolved.get(m.path)!.callLines.includes(m.source.line - 1), `${m.path}: the mapper's call lines contain the recorded one`);
  }
});

test('recorder: the first NaN names its module and step, stops the record there, and survives the round trip', torch, () => {
  const dir = tmp();
  try {
    const out = path.join(dir, 'nan.json');
    const fixture = path.join('test', 'fixtures', 'recorder', 'nan_model.py');
    python([fixture, out, '--bad-step', '3', '--steps', '6']);
    const text = fs.readFileSync(out, 'utf8');
    assert.ok(text.includes('"NaN"'), 'NaN is written as a string');
    assert.doesNotThrow(() => JSON.parse(text), 'strict JSON');
    const record = parseTrainingRecord(text, 'nan.json');
    assert.deepEqual(record.steps, [1, 2, 3], 'nothing recorded after the anomaly');
    assert.ok(record.anomaly, 'an anomaly');
    assert.deepEqual([record.anomaly.step, record.anomaly.phase, record.anomaly.modulePath], [3, 'forward', 'log']);
    assert.match(record.anomaly.message, /log/);
    const src = fs.readFileSync(path.join(repoRoot, fixture), 'utf8');
    assert.ok(record.anomaly.source && sameSourceFile(record.anomaly.source.file, path.join(repoRoot, fixture)));
    assert.equal(record.anomaly.source.line - 1, lineOf(src, 'x = self.log(x)'));

    // Before step 3 everything is finite; at step 3 the loss and log's output are NaN, fc's output is not.
    assert.ok(record.loss.slice(0, 2).every(isPositiveFinite));
    assert.ok(Number.isNaN(record.loss[2]));
    assert.ok(Number.isNaN(mod(record, 'log').actMean[2]) && Number.isFinite(mod(record, 'log').actMean[1]!));
    assert.ok(Number.isFinite(mod(record, 'fc').actMean[2]!) && mod(record, 'fc').actMean[2]! < 0, 'fc sees the negated batch');
    assert.ok(Number.isNaN(record.gradNormTotal[2]));

    // Round trip through the extension's serializer keeps NaN (not null, not a string).
    const again = parseTrainingRecord(serializeTrainingRecord(record), 'again');
    assert.ok(Number.isNaN(again.loss[2]) && Number.isNaN(mod(again, 'log').actMean[2]));
    assert.deepEqual(again.loss.slice(0, 2), record.loss.slice(0, 2));
    assert.deepEqual(again.anomaly, record.anomaly);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('parseTrainingRecord: bad input is rejected with an error that names the field', () => {
  const valid = {
    schema: TRAINING_SCHEMA,
    producer: 'test',
    model: { name: 'M' },
    optimizer: { kind: 'sgd', lr: 0.1 },
    steps: [1, 2],
    loss: [1, 'NaN'],
    gradNormTotal: [0.5, null],
    modules: [{ path: 'fc', depth: 0, leaf: true, gradNorm: [0.5, 'Infinity'], paramNorm: [1, 1], updateRatio: [0.01, null], actMean: [0, 0], actStd: [1, 1], zeroFraction: [0, 0] }],
  };
  const ok = parseTrainingRecord(JSON.stringify(valid), 'ok.json');
  assert.ok(Number.isNaN(ok.loss[1]) && ok.modules[0].gradNorm[1] === Infinity, 'the valid base parses');
  const bad = (mutate: (r: any) => void) => {
    const r = JSON.parse(JSON.stringify(valid));
    mutate(r);
    return JSON.stringify(r);
  };
  const rejects = (text: string, pattern: RegExp) =>
    assert.throws(() => parseTrainingRecord(text, 'run.json'), (err: unknown) => {
      assert.ok(err instanceof TrainingRecordError, `a TrainingRecordError, got ${err}`);
      assert.match(err.message, pattern);
      return true;
    });
  rejects(bad((r) => (r.schema = 'gradient-lens/training@2')), /run\.json: schema is "gradient-lens\/training@2", expected "gradient-lens\/training@1"/);
  rejects(bad((r) => delete r.schema), /schema is undefined/);
  rejects(bad((r) => (r.loss = [1])), /run\.json: loss: has 1 entries but the record has 2 steps/);
  rejects(bad((r) => (r.modules[0].updateRatio = [0.1, 0.2, 0.3])), /modules\[0\] \(fc\)\.updateRatio: has 3 entries but the record has 2 steps/);
  rejects(bad((r) => (r.modules[0].actStd = [1, 'nan'])), /modules\[0\] \(fc\)\.actStd\[1\]: expected a number, null, "NaN"/);
  rejects(bad((r) => (r.gradNormTotal = 3)), /gradNormTotal: expected an array/);
  rejects(bad((r) => (r.modules[0].source = { file: 'm.py', line: 0 })), /modules\[0\] \(fc\)\.source: expected \{file: string, line: positive integer\}/);
  rejects(bad((r) => (r.anomaly = { step: 2, phase: 'sideways', modulePath: 'fc' })), /anomaly needs step, phase/);
  rejects(bad((r) => delete r.optimizer.lr), /optimizer needs a kind \(string\) and lr \(number\)/);
  rejects('{"schema": ', /run\.json is not valid JSON/);
});

// Without PyTorch the tests above skip; this one reads a record the recorder wrote from a PyTorch run of
// examples/tiny_gpt.py (40 Adam steps, committed: `cd examples && /usr/bin/python3 ../python/gradlens_recorder.py
// --demo tiny_gpt.py --steps 40 --out ../test/fixtures/recorder/tiny_gpt.training.json`) and maps it like the
// Import command does: every module path onto the example's source, the training overlays onto its lines.
test('a committed PyTorch record of tiny_gpt.py imports and maps onto the example', async () => {
  const text = fs.readFileSync(path.join(repoRoot, 'test', 'fixtures', 'recorder', 'tiny_gpt.training.json'), 'utf8');
  const record = parseTrainingRecord(text, 'tiny_gpt.training.json');
  assert.match(record.producer, /^gradlens_recorder\.py \(torch /);
  assert.equal(record.steps.length, 40);
  assert.ok((record.loss[39] as number) < (record.loss[0] as number));
  const file = path.join(repoRoot, 'examples', 'tiny_gpt.py');
  const src = fs.readFileSync(file, 'utf8');
  const index = indexPythonSource(await createPythonParser(nodeModulesWasmPaths(repoRoot)), src, file);
  const mapping = documentMapping(index, record, file, src);
  assert.deepEqual(mapping.unmapped, []);
  const overlays = trainingOverlays(record, mapping.anchors);
  const lines = src.split('\n');
  const q = overlays.find((o) => lines[o.line].includes('self.q_proj = nn.Linear('));
  assert.ok(q, 'an overlay on the q_proj definition');
  assert.deepEqual(q.modulePaths.sort(), ['blocks.0.attn.q_proj', 'blocks.1.attn.q_proj']);
  assert.match(q.text, /^∇ [▁▂▃▄▅▆▇█ ]+ \d\.\de[+-]\d\d · 2 modules$/);
});

const requireDebianTorch = process.env.GRADLENS_REQUIRE_DEBIAN_TORCH === '1';

test('recorder under Debian torch 1.13 (single process): the demo writes a record and the same stream', { skip: requireDebianTorch ? false : (noDebianTorch ?? false) }, () => {
  assert.equal(noDebianTorch, null, 'GRADLENS_REQUIRE_DEBIAN_TORCH=1 but Debian torch 1.13 cannot run');
  const { record, stream } = demo('vanishing_mlp.py', ['--steps', '5', '--every', '2', '--optimizer', 'sgd', '--lr', '0.05'], DEBIAN_PYTHON);
  assert.match(record.producer, /^gradlens_recorder\.py \(torch 1\.13/);
  assert.deepEqual(record.steps, [1, 3, 5]);
  assert.ok(record.loss.every(isPositiveFinite) && record.gradNormTotal.every(isPositiveFinite));
  assert.equal(record.distributed, undefined, 'one process: no distributed section');
  for (const m of record.modules.filter((x) => x.leaf)) assert.ok(m.updateRatio.every(isPositiveFinite), `${m.path} update ratios ${m.updateRatio}`);
  const streamed = parseTrainingStream(stream, 'run.gradlens.jsonl');
  assert.equal(streamed.ended, true);
  assert.deepEqual(plain(streamed.record), plain(record));
});

test('recorder activation statistics: mean and std equal float64 references (no cancellation on shifted data); NaN and ±Inf inputs detected', torch, () => {
  const out = python(['-c', `
import json, sys
sys.path.insert(0, "python")
import torch
from gradlens_recorder import _moments, _any_non_finite
g = torch.Generator().manual_seed(0)
rows = []
for shift, dtype in [(0.0, torch.float32), (10.0, torch.float32), (1000.0, torch.float32), (3.0, torch.float16), (0.0, torch.float64)]:
    o = (torch.randn(8, 64, 1024, generator=g) * 0.5 + shift).to(dtype)
    relu = torch.relu(o.float() - shift)
    for t in (o, relu):
        mean, var, nz, n = _moments(t)
        d = t.double()
        rows.append({"mean": float(mean), "std": float(var) ** 0.5, "zeros": 1 - int(nz) / n,
                     "refMean": float(d.mean()), "refStd": float(d.std(unbiased=False)), "refZeros": float((d == 0).double().mean())})
bad = []
for v in (float("nan"), float("inf"), -float("inf"), 1.0):
    for dtype in (torch.float32, torch.float16):
        x = torch.randn(1000, generator=g)
        x[517] = v
        bad.append(bool(_any_non_finite(x.to(dtype))))
print(json.dumps({"rows": rows, "bad": bad, "empty": bool(_any_non_finite(torch.zeros(0)))}))
`]);
  const r = JSON.parse(out) as { rows: Record<string, number>[]; bad: boolean[]; empty: boolean };
  for (const [i, row] of r.rows.entries()) {
    assert.ok(Math.abs(row.mean - row.refMean) <= 1e-6 * Math.max(Math.abs(row.refMean), row.refStd), `case ${i} mean ${row.mean} against ${row.refMean}`);
    assert.ok(Math.abs(row.std - row.refStd) <= 1e-6 * row.refStd, `case ${i} std ${row.std} against ${row.refStd}`);
    assert.equal(row.zeros, row.refZeros, `case ${i} zero fraction`);
  }
  assert.deepEqual(r.bad, [true, true, true, true, true, true, false, false]);
  assert.equal(r.empty, false);
});
