/**
 * TensorBoard event files (engine/train/tensorboard.ts, tensorboardRecord.ts): runs written by
 * torch.utils.tensorboard.SummaryWriter (test/fixtures/recorder/make_tensorboard.py, committed with the norms
 * torch computed in float64) import as training records whose module norms combine the logged parameter norms,
 * and map onto the example's source; checksums, a truncated file and a run without gradient tags give clear
 * errors or notes.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { spawnSync } from 'node:child_process';
import { Writer } from 'protobufjs/minimal';
import { crc32c, maskedCrc32c, readEvents, TensorBoardError } from '../engine/train/tensorboard';
import { classifyTag } from '../engine/train/tensorboardRecord';
import { importTrainingFile } from '../engine/train/importRecord';
import { parseTrainingRecord, serializeTrainingRecord, TrainingRecord } from '../engine/train/record';
import { documentMapping } from '../extension/sourceMapper';
import { trainingHover, trainingOverlays } from '../extension/overlay/training';
import { createPythonParser, indexPythonSource, nodeModulesWasmPaths } from '../extension/sourceMap';
import { repoRoot } from './helpers';
import { pythonEnv, skipWithoutTorch } from './python';

const FIXTURES = path.join(repoRoot, 'test', 'fixtures', 'recorder', 'tensorboard');

interface Expected {
  steps: number[];
  grad: Record<string, number>[];
  param?: Record<string, number>[];
  loss: number[];
}

function run(style: 'lightning' | 'histograms'): { file: string; bytes: Uint8Array; expected: Expected } {
  const folder = path.join(FIXTURES, style);
  const name = fs.readdirSync(folder).find((n) => n.startsWith('events.out.tfevents.'))!;
  const file = path.join(folder, name);
  return { file, bytes: new Uint8Array(fs.readFileSync(file)), expected: JSON.parse(fs.readFileSync(path.join(folder, 'expected.json'), 'utf8')) };
}

/** The L2 norm of the parameters under `module`, from torch's per-parameter norms. */
function combined(norms: Record<string, number>, module: string): number | null {
  const under = Object.entries(norms).filter(([p]) => module === '' || p.startsWith(`${module}.`));
  return under.length ? Math.sqrt(under.reduce((a, [, v]) => a + v * v, 0)) : null;
}

function assertNorms(record: TrainingRecord, expected: Expected, key: 'gradNorm' | 'paramNorm', tol: number): void {
  const norms = key === 'gradNorm' ? expected.grad : expected.param!;
  record.steps.forEach((s, i) => {
    for (const m of record.modules) {
      const want = combined(norms[i], m.path);
      const got = m[key][i];
      if (want === null || got === null) {
        assert.equal(got, want, `${m.path} ${key} at step ${s}`);
        continue;
      }
      const err = Math.abs(got - want) / Math.max(want, 1e-30);
      assert.ok(err <= tol, `${m.path || '<model>'} ${key} at step ${s}: ${got} against torch's ${want} (relative error ${err.toExponential(2)})`);
    }
  });
}

async function mapOnto(example: string, record: TrainingRecord) {
  const file = path.join(repoRoot, 'examples', example);
  const src = fs.readFileSync(file, 'utf8');
  const index = indexPythonSource(await createPythonParser(nodeModulesWasmPaths(repoRoot)), src, file);
  return { mapping: documentMapping(index, record, file, src), lines: src.split('\n') };
}

test('CRC-32C matches the standard check value; TFRecord masking', () => {
  const check = new TextEncoder().encode('123456789');
  assert.equal(crc32c(check), 0xe3069283);
  const c = 0xe3069283;
  assert.equal(maskedCrc32c(check), (((c >>> 15) | (c << 17)) + 0xa282ead8) >>> 0);
});

test("Lightning's grad_norm logged with SummaryWriter imports: module norms equal torch's, train loss, AdamW, L∞ tags skipped, mapped onto tiny_gpt.py", async () => {
  const { file, bytes, expected } = run('lightning');
  const imported = importTrainingFile(file, bytes);
  assert.equal(imported.kind, 'tensorboard');
  const r = imported.record;
  assert.deepEqual(r.steps, expected.steps);
  // Lightning's global_step counts from 0: the steps stay as logged and the record says how they count.
  assert.equal(r.steps[0], 0);
  assert.equal(r.stepBase, 0);
  assert.ok(imported.notes.some((n) => /^steps 0–\d+ are TensorBoard's global_step as logged, counted from 0/.test(n)), imported.notes.join('\n'));
  assert.match(trainingHover(r.modules[1], r), /steps 0–\d+ \\\(steps counted from 0\\\)/ /* markdown-escaped */);
  // simple_value is a float32: the parameters' norms round to 6e-8; their combination stays within 1e-6.
  assertNorms(r, expected, 'gradNorm', 1e-6);
  r.steps.forEach((s, i) => {
    assert.ok(Math.abs((r.loss[i] as number) - expected.loss[i]) <= 1e-6 * expected.loss[i], `train/loss at step ${s}, not val/loss`);
    assert.ok(Math.abs((r.gradNormTotal[i] as number) - combined(expected.grad[i], '')!) <= 1e-6 * (r.gradNormTotal[i] as number), `grad_2.0_norm_total at step ${s}`);
  });
  assert.equal(r.optimizer.kind, 'adamw');
  assert.ok(r.modules.every((m) => m.paramNorm.every((v) => v === null) && m.updateRatio.every((v) => v === null)), 'not in the logs: null, not 0');
  assert.match(imported.notes[0], /^\d+ gradient and 0 weight tags used; loss: train\/loss; total gradient norm: grad_2\.0_norm_total$/);
  assert.ok(imported.notes.some((n) => /^\d+ tags not used \(an L∞ norm \(module norms combine L2 norms\)\): grad_inf_norm\//.test(n)), imported.notes.join('\n'));

  const { mapping, lines } = await mapOnto('tiny_gpt.py', r);
  assert.deepEqual(mapping.unmapped, []);
  const q = trainingOverlays(r, mapping.anchors).find((o) => lines[o.line].includes('self.q_proj = nn.Linear('));
  assert.ok(q, 'an overlay on the q_proj definition');
  assert.deepEqual(q.modulePaths.sort(), ['blocks.0.attn.q_proj', 'blocks.1.attn.q_proj']);
});

test('add_histogram of gradients and weights imports: exact L2 norms from the sums of squares, mapped onto vanishing_mlp.py', async () => {
  const { file, bytes, expected } = run('histograms');
  const imported = importTrainingFile(file, bytes);
  const r = imported.record;
  assert.deepEqual(r.steps, expected.steps);
  assert.deepEqual(r.steps, [1, 3, 5, 7, 9, 11]);
  // No step 0 and no Lightning tags: whether the writer counted from 0 or 1 is not known, and the record says so.
  assert.equal(r.stepBase, null);
  assert.ok(imported.notes.some((n) => /^steps 1–11 are TensorBoard's global_step as logged; .*not known/.test(n)), imported.notes.join('\n'));
  assert.match(trainingHover(r.modules[1], r), /steps 1–11 \\\(steps as logged\\\)/);
  assert.equal(parseTrainingRecord(serializeTrainingRecord(r)).stepBase, null, 'stepBase null survives the JSON round trip');
  // The histogram's sum of squares is accumulated in float32 by SummaryWriter.
  assertNorms(r, expected, 'gradNorm', 1e-5);
  assertNorms(r, expected, 'paramNorm', 1e-5);
  r.steps.forEach((s, i) => assert.ok(Math.abs((r.loss[i] as number) - expected.loss[i]) <= 1e-6 * expected.loss[i], `loss at step ${s}`));
  assert.equal(r.optimizer.kind, 'unknown', 'no learning rate logged');
  const { mapping } = await mapOnto('vanishing_mlp.py', r);
  assert.deepEqual(mapping.unmapped, []);
  assert.ok(mapping.anchors.length >= r.modules.filter((m) => m.leaf).length);
});

test('a truncated event file imports what it holds and says so; a corrupt one is rejected naming the record', () => {
  const { file, bytes, expected } = run('histograms');
  const whole = readEvents(bytes, 'run');
  const cut = bytes.subarray(0, Math.floor(bytes.length * 0.6));
  const part = readEvents(cut, 'run');
  assert.ok(part.events > 0 && part.events < whole.events);
  assert.ok(part.truncatedBytes > 0);
  const imported = importTrainingFile(file, cut);
  assert.ok(imported.record.steps.length < expected.steps.length && imported.record.steps.length > 0);
  assert.ok(imported.notes.some((n) => /bytes at the end of an event file do not make a whole record/.test(n)), imported.notes.join('\n'));

  const corrupt = new Uint8Array(bytes);
  corrupt[bytes.length >> 1] ^= 0x40;
  assert.throws(() => importTrainingFile(file, corrupt), (err: Error) => err instanceof TensorBoardError && /record \d+ at byte \d+ .*checksum is 0x[0-9a-f]{8}, expected 0x[0-9a-f]{8}/.test(err.message));
});

/** One TFRecord holding an Event with scalar summaries (what SummaryWriter.add_scalar writes). */
function scalarEvent(step: number, values: Record<string, number>): Uint8Array {
  const w = Writer.create();
  w.uint32((1 << 3) | 1).double(1_700_000_000 + step);
  w.uint32((2 << 3) | 0).int64(step);
  w.uint32((5 << 3) | 2).fork();
  for (const [tag, v] of Object.entries(values)) {
    w.uint32((1 << 3) | 2).fork().uint32((1 << 3) | 2).string(tag).uint32((2 << 3) | 5).float(v).ldelim();
  }
  w.ldelim();
  const data = w.finish();
  const out = new Uint8Array(12 + data.length + 4);
  const view = new DataView(out.buffer);
  view.setBigUint64(0, BigInt(data.length), true);
  view.setUint32(8, maskedCrc32c(out, 0, 8), true);
  out.set(data, 12);
  view.setUint32(12 + data.length, maskedCrc32c(data), true);
  return out;
}

const concat = (parts: Uint8Array[]) => {
  const out = new Uint8Array(parts.reduce((a, p) => a + p.length, 0));
  let at = 0;
  for (const p of parts) (out.set(p, at), (at += p.length));
  return out;
};

test('a run without per-parameter gradient tags is rejected naming the tags it has; wrapper prefixes are dropped', () => {
  const onlyLoss = concat([scalarEvent(0, { 'train/loss': 2.5, 'val/acc': 0.1 }), scalarEvent(1, { 'train/loss': 2.1 })]);
  assert.throws(() => importTrainingFile('runs/exp/events.out.tfevents.1.host', onlyLoss),
    /exp: no per-parameter gradient or weight statistics among its 2 tags \(train\/loss, val\/acc\).*grad_norm\(self, norm_type=2\)/);
  // DDP / torch.compile prefixes in the logged names; two files of one run merged (the later value of a step wins).
  const a = concat([scalarEvent(1, { 'grad_norm/module._orig_mod.fc.weight': 3, 'grad_norm/module._orig_mod.fc.bias': 4, loss: 1 })]);
  const b = concat([scalarEvent(1, { 'grad_norm/module._orig_mod.fc.weight': 6, 'grad_norm/module._orig_mod.fc.bias': 8 }), scalarEvent(2, { 'grad_norm/module._orig_mod.fc.weight': 1, 'grad_norm/module._orig_mod.fc.bias': 0 })]);
  const r = importTrainingFile('run/events.out.tfevents.1.h', a, [{ name: 'run/events.out.tfevents.2.h', bytes: b }]).record;
  assert.deepEqual(r.modules.map((m) => m.path), ['', 'fc']);
  assert.deepEqual(r.steps, [1, 2]);
  assert.deepEqual(r.modules[1].gradNorm, [10, 1]);
  assert.deepEqual(r.loss, [1, null]);
  assert.deepEqual(classifyTag('grad_norm/fc.weight', 'scalar'), { quantity: 'grad', param: 'fc.weight' });
  for (const stat of ['gradients/fc.weight/mean', 'grad_1.0_norm/fc.weight', 'grad_norm/fc.weight_std']) {
    const meaning = classifyTag(stat, 'scalar');
    assert.ok(meaning === null || meaning.unusable, `${stat} must not be taken for an L2 norm: ${JSON.stringify(meaning)}`);
  }
  assert.equal(classifyTag('val/loss', 'scalar'), null);
});

test("SummaryWriter of the test environment's torch writes a run that imports (both styles, fresh)", skipWithoutTorch(), () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gl-tensorboard-'));
  try {
    const r = spawnSync(pythonEnv()!.python, [path.join(repoRoot, 'test', 'fixtures', 'recorder', 'make_tensorboard.py'), dir, '--steps', '4'], { encoding: 'utf8', timeout: 300_000 });
    assert.equal(r.status, 0, `make_tensorboard.py failed:\n${r.stdout}\n${r.stderr}`);
    for (const style of ['lightning', 'histograms'] as const) {
      const folder = path.join(dir, style);
      const name = fs.readdirSync(folder).find((n) => n.startsWith('events.out.tfevents.'))!;
      const expected = JSON.parse(fs.readFileSync(path.join(folder, 'expected.json'), 'utf8')) as Expected;
      const record = importTrainingFile(path.join(folder, name), new Uint8Array(fs.readFileSync(path.join(folder, name)))).record;
      assert.deepEqual(record.steps, expected.steps, style);
      assertNorms(record, expected, 'gradNorm', 1e-5);
    }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});
