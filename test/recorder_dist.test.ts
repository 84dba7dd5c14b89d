/**
 * python/gradlens_recorder.py on PyTorch distributed jobs: test/fixtures/recorder/dist_job.py trains the same
 * seeded model on the same global batch in one process and under `torchrun --nproc_per_node 2` (gloo, CPU) with
 * DDP (recorder on the wrapper and on `.module`), FSDP2 (fully_shard) and FSDP (v1, with activation
 * checkpointing). The distributed records must equal the single-process one (loss, per-module gradient and
 * parameter norms, update ratios, activation statistics), carry clean module paths and the world size, and be
 * written by rank 0 only; their total gradient norm must equal torch's own (clip_grad_norm_, FSDP's for FSDP).
 * The recorder issues exactly one all_reduce on a recorded step and none on the others.
 * A job SIGKILLed mid-run leaves a stream that imports; the stream grows at every recorded step.
 */
import { after, test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { execFile } from 'node:child_process';
import { parseTrainingRecord, serializeTrainingRecord, TrainingRecord, SERIES_KEYS } from '../engine/train/record';
import { parseTrainingStream } from '../engine/train/stream';
import { importTrainingFile } from '../engine/train/importRecord';
import { repoRoot } from './helpers';
import { pythonEnv, skipWithoutTorch } from './python';

const torch = skipWithoutTorch();
const JOB = path.join(repoRoot, 'test', 'fixtures', 'recorder', 'dist_job.py');
const MODES = ['ddp', 'ddp-module', 'fsdp2', 'fsdp'] as const;
const STRATEGY: Record<(typeof MODES)[number], string> = { ddp: 'ddp', 'ddp-module': 'ddp', fsdp2: 'fsdp2', fsdp: 'fsdp' };
const TOL = 1e-5;

interface Run {
  code: number | null;
  signal: string | null;
  out: string;
}

function run(args: string[], extraEnv: Record<string, string> = {}): Promise<Run> {
  const python = pythonEnv()!.python;
  return new Promise((resolve) => {
    execFile(python, args, { cwd: repoRoot, timeout: 600_000, maxBuffer: 1 << 24, env: { ...process.env, OMP_NUM_THREADS: '1', ...extraEnv } },
      (err, stdout, stderr) => {
        const e = err as (Error & { code?: number; signal?: string }) | null;
        resolve({ code: e ? (typeof e.code === 'number' ? e.code : 1) : 0, signal: e?.signal ?? null, out: `${stdout}\n${stderr}` });
      });
  });
}

/** torchrun on a free port (--standalone), so parallel jobs on one machine do not collide. */
const torchrun = (out: string, args: string[]) =>
  run(['-m', 'torch.distributed.run', '--standalone', '--nproc_per_node', '2', JOB, out, ...args]);

interface TorchMeasured {
  steps: number[];
  gradNormTotal: number[];
  modules: Record<string, number>[];
  stream: [bytes: number, lines: number][];
  /** Per step: the torch.distributed collectives the recorder's after_backward and after_step issued. */
  collectives: [step: number, calls: string[]][];
}

const readTorch = (folder: string) => JSON.parse(fs.readFileSync(path.join(folder, 'torch.json'), 'utf8')) as TorchMeasured;
const readRecord = (folder: string) => parseTrainingRecord(fs.readFileSync(path.join(folder, 'rank0.json'), 'utf8'), `${folder}/rank0.json`);
const plain = (r: TrainingRecord) => JSON.parse(serializeTrainingRecord(r));

function close(actual: number | null, expected: number | null, what: string, scale = Math.abs(expected ?? 0)): void {
  if (actual === null || expected === null) {
    assert.equal(actual, expected, `${what}: measured in one record and not in the other`);
    return;
  }
  const err = Math.abs(actual - expected) / (scale || 1);
  assert.ok(err <= TOL, `${what}: ${actual} against ${expected} (relative error ${err.toExponential(2)})`);
}

/** Every series of `got` equals `want`'s at the steps both recorded. */
function assertSameRun(got: TrainingRecord, want: TrainingRecord, label: string): void {
  const at = got.steps.map((s) => want.steps.indexOf(s));
  assert.ok(at.some((j) => j >= 0), `${label}: no step of ${got.steps} in ${want.steps}`);
  const both = (f: (j: number, i: number) => void) => at.forEach((j, i) => j >= 0 && f(j, i));
  both((j, i) => {
    close(got.loss[i], want.loss[j], `${label} loss at step ${got.steps[i]}`);
    close(got.gradNormTotal[i], want.gradNormTotal[j], `${label} gradNormTotal at step ${got.steps[i]}`);
  });
  assert.deepEqual(got.modules.map((m) => m.path), want.modules.map((m) => m.path), `${label}: module paths`);
  got.modules.forEach((m, k) => {
    const w = want.modules[k];
    assert.equal(m.kind, w.kind, `${label} ${m.path}: kind`);
    for (const key of SERIES_KEYS) {
      both((j, i) => {
        // The mean of a normalised output is near 0: its error is relative to the output's spread.
        const scale = key === 'actMean' ? Math.max(Math.abs(w.actMean[j] ?? 0), w.actStd[j] ?? 0) : undefined;
        close(m[key][i], w[key][j], `${label} ${m.path || '<model>'} ${key} at step ${got.steps[i]}`, scale);
      });
    }
  });
}

let runs: Promise<{ dir: string; single: Run; dist: Run; killed: Run }> | null = null;
after(async () => {
  if (runs) fs.rmSync((await runs).dir, { recursive: true, force: true });
});

/** One single-process reference, one torchrun of every mode, one torchrun killed at step 3 (run together). */
function jobs() {
  runs ??= (async () => {
    const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gl-recorder-dist-'));
    const [single, dist, killed] = await Promise.all([
      run([JOB, path.join(dir, 'ref'), '--modes', 'single']),
      torchrun(path.join(dir, 'dist'), ['--modes', MODES.join(',')]),
      torchrun(path.join(dir, 'killed'), ['--modes', 'fsdp2', '--steps', '20', '--every', '1', '--kill-after', '3']),
    ]);
    return { dir, single, dist, killed };
  })();
  return runs;
}

test('recorder under torchrun (2 ranks, gloo): DDP, FSDP2 and FSDP record the single-process run exactly, once, with clean paths', torch, async () => {
  const { dir, single, dist } = await jobs();
  assert.equal(single.code, 0, `single-process run failed:\n${single.out}`);
  assert.equal(dist.code, 0, `torchrun failed:\n${dist.out}`);

  const ref = readRecord(path.join(dir, 'ref', 'single'));
  const refTorch = readTorch(path.join(dir, 'ref', 'single'));
  assert.deepEqual(ref.steps, [1, 3, 5]);
  assert.equal(ref.distributed, undefined, 'one process: no distributed section');
  // The reference itself against torch: per-module gradient norms and the total.
  assert.deepEqual(refTorch.steps, ref.steps);
  ref.steps.forEach((s, i) => {
    close(ref.gradNormTotal[i], refTorch.gradNormTotal[i], `single gradNormTotal against clip_grad_norm_ at step ${s}`);
    const byTorch = refTorch.modules[i];
    for (const m of ref.modules) close(m.gradNorm[i], byTorch[m.path] ?? null, `single ${m.path || '<model>'} gradNorm against torch at step ${s}`);
  });
  assert.ok(ref.modules.some((m) => m.path === 'blocks.0.mlp.fc'));
  assert.ok(refTorch.collectives.length === 5 && refTorch.collectives.every(([, calls]) => calls.length === 0), 'one process: no collective');

  for (const mode of MODES) {
    const folder = path.join(dir, 'dist', mode);
    assert.deepEqual(fs.readdirSync(folder).sort(), ['rank0.gradlens.jsonl', 'rank0.json', 'torch.json'], `${mode}: rank 0 writes, rank 1 does not`);
    const rec = readRecord(folder);
    assert.equal(rec.model.name, 'TinyLM', `${mode}: the model's name, not its wrapper's`);
    assert.deepEqual(rec.distributed, { worldSize: 2, strategy: STRATEGY[mode], backend: 'gloo' }, `${mode}: distributed section`);
    assert.deepEqual(rec.steps, ref.steps);
    for (const m of rec.modules) assert.doesNotMatch(m.path, /(^|\.)(module|_fsdp_wrapped_module|_checkpoint_wrapped_module|_orig_mod)(\.|$)/, `${mode}: wrapper prefix in ${m.path}`);
    assertSameRun(rec, ref, mode);
    // torch's own total norm of the sharded / averaged gradients.
    const own = readTorch(folder);
    rec.steps.forEach((s, i) => close(rec.gradNormTotal[i], own.gradNormTotal[i], `${mode} gradNormTotal against torch's own at step ${s}`));
    // One all_reduce per recorded step (steps 1, 3, 5 of --every 2), none on the others.
    assert.deepEqual(own.collectives, [[1, ['all_reduce']], [2, []], [3, ['all_reduce']], [4, []], [5, ['all_reduce']]], `${mode}: the recorder's collectives per step`);
    // The stream written as the job ran holds the same record, and grew at every recorded step.
    const streamed = parseTrainingStream(fs.readFileSync(path.join(folder, 'rank0.gradlens.jsonl')), `${mode} stream`);
    assert.equal(streamed.ended, true);
    assert.deepEqual(plain(streamed.record), plain(rec), `${mode}: stream and JSON differ`);
    assert.equal(own.stream.length, rec.steps.length);
    own.stream.forEach(([bytes, lines], i) => {
      if (i === 0) return;
      assert.ok(bytes > own.stream[i - 1][0] && lines === own.stream[i - 1][1] + 1, `${mode}: the stream did not grow by one line at step ${rec.steps[i]}: ${JSON.stringify(own.stream)}`);
    });
  }
});

test('recorder under torchrun: a job SIGKILLed after step 3 leaves a stream that imports with steps 1-3', torch, async () => {
  const { dir, single, killed } = await jobs();
  assert.equal(single.code, 0, `single-process run failed:\n${single.out}`);
  assert.notEqual(killed.code, 0, 'the killed job must fail');
  assert.match(killed.out, /SIGKILL|Signal 9|exitcode\s*:\s*-9/, killed.out);
  const folder = path.join(dir, 'killed', 'fsdp2');
  assert.deepEqual(fs.readdirSync(folder).sort(), ['rank0.gradlens.jsonl', 'torch.json'], 'no JSON record: save() never ran');
  const file = path.join(folder, 'rank0.gradlens.jsonl');
  const imported = importTrainingFile(file, fs.readFileSync(file));
  assert.equal(imported.kind, 'stream');
  assert.deepEqual(imported.record.steps, [1, 2, 3]);
  assert.equal(imported.notes.length, 1);
  assert.match(imported.notes[0], /no end line.*3 recorded steps read/);
  // What the job measured before it died: the stream's size after each step (one more line each time).
  const own = readTorch(folder);
  assert.deepEqual(own.steps, [1, 2, 3]);
  assert.deepEqual(own.stream.map(([, lines]) => lines), [3, 4, 5], 'start and layout lines, then one line per step');
  assert.equal(fs.statSync(file).size, own.stream[2][0], 'nothing was lost at the kill');
  imported.record.steps.forEach((s, i) => close(imported.record.gradNormTotal[i], own.gradNormTotal[i], `killed gradNormTotal against torch's own at step ${s}`));
  assertSameRun(imported.record, readRecord(path.join(dir, 'ref', 'single')), 'killed fsdp2 (steps 1 and 3 of the reference)');
});
