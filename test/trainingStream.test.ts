/**
 * The training stream (`gradient-lens/training-stream@1`, engine/train/stream.ts): read whole or in any chunking,
 * a torn last line ignored, broken lines rejected with an error naming the line and the field; the import entry
 * point (engine/train/importRecord.ts) tells the formats apart; StreamFollower (extension/training/follow.ts)
 * follows a growing file on node:fs, a replaced file and the newest stream of a folder.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as os from 'node:os';
import * as path from 'node:path';
import { parseTrainingStream, TrainingStreamReader, sliceTrainingRecord, appendTrainingRecord } from '../engine/train/stream';
import { parseTrainingRecord, serializeTrainingRecord, TrainingRecordError } from '../engine/train/record';
import { importTrainingFile } from '../engine/train/importRecord';
import { FileAccess, StreamFollower } from '../extension/training/follow';
import { liveText, agoText } from '../extension/training/liveText';
import { progressText } from '../webview/trainView';
import { repoRoot } from './helpers';

const START = {
  type: 'start', schema: 'gradient-lens/training-stream@1', producer: 'test', model: { name: 'Net', source: 'net.py' },
  optimizer: { kind: 'sgd', lr: 0.1 }, modules: [{ path: '', kind: 'Net', leaf: false }, { path: 'fc', kind: 'Linear' }, { path: 'act', kind: 'ReLU' }],
};
const LAYOUT = { type: 'layout', depth: [0, 1, 2], source: [null, { file: 'net.py', line: 9 }, { file: 'net.py', line: 10 }] };
const step = (s: number, g: number | string = 0.5) => ({ type: 'step', step: s, time: 1000 + s, loss: 2 / s, gradNormTotal: g, gradNorm: [g, g, null], actMean: [0.1, 0.2, 0.3] });
const lines = (...objs: unknown[]) => objs.map((o) => `${JSON.stringify(o)}\n`).join('');
const bytes = (s: string) => new TextEncoder().encode(s);

test('a stream reads the same whole, byte by byte and in odd chunks; a torn last line is ignored', () => {
  const text = lines(START, LAYOUT, step(1), step(3), { type: 'anomaly', step: 3, phase: 'backward', modulePath: 'fc', message: 'fc.weight.grad is NaN' }, { type: 'end' });
  const whole = parseTrainingStream(text, 'run.gradlens.jsonl');
  assert.equal(whole.ended, true);
  assert.equal(whole.tornBytes, 0);
  assert.deepEqual(whole.record.steps, [1, 3]);
  assert.deepEqual(whole.record.loss, [2, 2 / 3]);
  assert.deepEqual(whole.record.modules.map((m) => [m.path, m.depth, m.source?.line]), [['', 0, undefined], ['fc', 1, 9], ['act', 2, 10]]);
  assert.deepEqual(whole.record.modules[1].gradNorm, [0.5, 0.5]);
  assert.deepEqual(whole.record.modules[2].gradNorm, [null, null]);
  assert.deepEqual(whole.record.modules[1].paramNorm, [null, null], 'absent series are null, not 0');
  assert.equal(whole.record.anomaly?.modulePath, 'fc');
  // The stream's record is a valid training@1 record.
  assert.deepEqual(parseTrainingRecord(serializeTrainingRecord(whole.record)), whole.record);

  const data = bytes(text);
  for (const chunk of [1, 7, 64]) {
    const reader = new TrainingStreamReader();
    for (let i = 0; i < data.length; i += chunk) reader.push(data.subarray(i, i + chunk));
    assert.deepEqual(reader.record, whole.record, `chunks of ${chunk} bytes`);
    assert.equal(reader.ended, true);
  }

  // A job killed while writing step 5: the half line is ignored, steps 1 and 3 stay.
  const killed = lines(START, LAYOUT, step(1), step(3)) + JSON.stringify(step(5)).slice(0, 40);
  const k = parseTrainingStream(killed);
  assert.deepEqual([k.record.steps, k.ended, k.tornBytes], [[1, 3], false, 40]);
  const imported = importTrainingFile('runs/a.gradlens.jsonl', bytes(killed));
  assert.equal(imported.kind, 'stream');
  assert.match(imported.notes.join('\n'), /a\.gradlens\.jsonl has no end line.*2 recorded steps read \(an incomplete last line of 40 bytes ignored\)/);
  // Non-finite values written as strings come back as numbers.
  assert.ok(Number.isNaN(parseTrainingStream(lines(START, step(1, 'NaN'))).record.gradNormTotal[0]));
});

test('a broken stream is rejected with an error naming the file, the line and the field', () => {
  const cases: [string, RegExp][] = [
    ['', /s\.jsonl: no start line \(an empty stream/],
    [lines(step(1)), /s\.jsonl:1: the first line must be the start line/],
    [lines({ ...START, schema: 'gradient-lens/training-stream@9' }), /s\.jsonl:1: schema is "gradient-lens\/training-stream@9", expected "gradient-lens\/training-stream@1"/],
    [lines({ ...START, optimizer: { kind: 'sgd' } }), /s\.jsonl:1: optimizer needs a kind \(string\) and lr \(number\)/],
    [lines(START, step(1)) + '{"type": "step", "step": 2,\n', /s\.jsonl:3: not valid JSON/],
    [lines(START, step(2), step(2)), /s\.jsonl:3: step 2 after step 2 \(steps must increase\)/],
    [lines(START, { ...step(1), gradNorm: [1, 2] }), /s\.jsonl:2: gradNorm must hold one entry per module \(3\)/],
    [lines(START, { ...step(1), actMean: [1, 'big', 2] }), /s\.jsonl:2: actMean\[1\] \(fc\)/],
    [lines(START, { ...LAYOUT, depth: [0, 1] }), /s\.jsonl:2: layout\.depth must hold one number per module \(3\)/],
    [lines(START, START), /s\.jsonl:2: a second start line/],
    [lines(START, { type: 'end' }, step(1)), /s\.jsonl:3: a line after the end line/],
    [lines(START, [1, 2]), /s\.jsonl:2: expected a JSON object/],
  ];
  for (const [text, message] of cases) {
    assert.throws(() => parseTrainingStream(text, 's.jsonl'), (err: Error) => err instanceof TrainingRecordError && message.test(err.message), `${JSON.stringify(text.slice(0, 60))} should fail with ${message}`);
  }
  // A bad step line leaves the record as it was (nothing half-appended).
  const reader = new TrainingStreamReader();
  reader.push(bytes(lines(START, step(1))));
  assert.throws(() => reader.push(bytes(lines({ ...step(2), actStd: [1, 2] }))));
  assert.deepEqual([reader.record!.steps, reader.record!.modules[1].gradNorm], [[1], [0.5]]);
  // Files that are none of the formats.
  assert.throws(() => importTrainingFile('notes.txt', bytes('hello')), /notes\.txt: not a Gradient Lens training record \(JSON\), training stream \(JSON lines\) or TensorBoard event file/);
  assert.throws(() => importTrainingFile('x.json', bytes('{"schema": "other"}')), /x\.json/);
});

test('a record sent in slices (the live panel) appends to the same record', () => {
  const whole = parseTrainingStream(lines(START, LAYOUT, step(1), step(2), step(3), step(4))).record;
  const head = parseTrainingStream(lines(START, LAYOUT, step(1), step(2))).record;
  appendTrainingRecord(head, sliceTrainingRecord(whole, 2));
  assert.deepEqual(JSON.parse(serializeTrainingRecord(head)), JSON.parse(serializeTrainingRecord(whole)));
  // Steps the record already holds (a restored panel) are skipped, not added twice.
  const again = parseTrainingStream(lines(START, LAYOUT, step(1), step(2), step(3))).record;
  appendTrainingRecord(again, sliceTrainingRecord(whole, 1));
  assert.deepEqual(JSON.parse(serializeTrainingRecord(again)), JSON.parse(serializeTrainingRecord(whole)));
  appendTrainingRecord(again, sliceTrainingRecord(whole, 3));
  assert.deepEqual(again.steps, [1, 2, 3, 4]);
  // A slice that does not continue the record (its steps skip the record's last one) is refused.
  const odd = parseTrainingStream(lines(START, LAYOUT, step(1), step(3))).record;
  const evens = parseTrainingStream(lines(START, LAYOUT, step(2), step(4))).record;
  assert.throws(() => appendTrainingRecord(odd, evens), /do not continue the record's step 3/);
  assert.throws(() => appendTrainingRecord(head, { ...sliceTrainingRecord(whole, 4), modules: [] }), /other modules/);
});

/** FileAccess on node:fs (the extension passes one on vscode.workspace.fs). */
const nodeFiles: FileAccess = {
  async stat(p) {
    try {
      const s = fs.statSync(p);
      return s.isFile() ? { path: p, size: s.size, mtime: s.mtimeMs } : null;
    } catch {
      return null;
    }
  },
  async read(p, offset, max) {
    const all = fs.readFileSync(p);
    return new Uint8Array(all.subarray(offset, offset + max));
  },
  async streams(folder) {
    return fs.readdirSync(folder).filter((n) => n.endsWith('.gradlens.jsonl')).map((n) => {
      const p = path.join(folder, n);
      return { path: p, size: fs.statSync(p).size, mtime: fs.statSync(p).mtimeMs };
    });
  },
  label: (p) => path.basename(p),
};

test('StreamFollower: follows a growing stream, a replaced one, and the newest stream of a folder', async () => {
  const dir = fs.mkdtempSync(path.join(os.tmpdir(), 'gl-follow-'));
  try {
    const file = path.join(dir, 'a.gradlens.jsonl');
    let clock = 0;
    const f = new StreamFollower(nodeFiles, file, false, () => clock);
    assert.equal(await f.poll(), null, 'no file yet: nothing');
    fs.writeFileSync(file, '');
    assert.equal(await f.poll(), null, 'an empty file: nothing');
    fs.appendFileSync(file, lines(START, LAYOUT) + JSON.stringify(step(1)).slice(0, 10));
    let u = (await f.poll())!;
    assert.deepEqual([u.record?.steps, u.newSteps, u.relayout, u.ended], [[], 0, true, false]);
    clock = 5000;
    fs.appendFileSync(file, JSON.stringify(step(1)).slice(10) + '\n' + lines(step(2)));
    u = (await f.poll())!;
    assert.deepEqual([u.record?.steps, u.newSteps, u.relayout, u.reset, f.lastStepAt], [[1, 2], 2, false, false, 5000]);
    assert.equal(await f.poll(), null, 'nothing appended: nothing');
    fs.appendFileSync(file, lines(step(3, 'NaN'), { type: 'anomaly', step: 3, phase: 'backward', modulePath: 'fc', message: 'NaN' }));
    u = (await f.poll())!;
    assert.deepEqual([u.newSteps, u.newAnomaly, u.record?.anomaly?.step], [1, true, 3]);
    fs.appendFileSync(file, lines({ type: 'end' }));
    u = (await f.poll())!;
    assert.deepEqual([u.newSteps, u.newAnomaly, u.ended], [0, false, true]);
    // A new run of the same job replaces the file: start over.
    fs.writeFileSync(file, lines(START, step(1)));
    u = (await f.poll())!;
    assert.deepEqual([u.reset, u.record?.steps, u.ended], [true, [1], false]);
    // A broken line: the poll throws the reader's error, naming the line.
    fs.appendFileSync(file, 'oops\n');
    await assert.rejects(f.poll(), /a\.gradlens\.jsonl:3: not valid JSON/);

    // A folder: the newest stream, and the next one when a job starts.
    const runs = path.join(dir, 'runs');
    fs.mkdirSync(runs);
    const follow = new StreamFollower(nodeFiles, runs, true, () => clock, 0);
    assert.equal(await follow.poll(), null, 'an empty folder: nothing');
    const one = path.join(runs, 'one.gradlens.jsonl');
    fs.writeFileSync(one, lines(START, step(1)));
    fs.utimesSync(one, 1000, 1000);
    u = (await follow.poll())!;
    assert.deepEqual([u.file, u.reset, u.record?.steps], [one, true, [1]]);
    const two = path.join(runs, 'two.gradlens.jsonl');
    fs.writeFileSync(two, lines(START, step(7), step(8)));
    u = (await follow.poll())!;
    assert.deepEqual([u.file, u.reset, u.record?.steps, u.newSteps], [two, true, [7, 8], 2]);
  } finally {
    fs.rmSync(dir, { recursive: true, force: true });
  }
});

test('the live status line', () => {
  const s = { file: 'runs/a.gradlens.jsonl', step: 1240, ageMs: 3200 };
  assert.equal(liveText({ ...s, state: 'live' }), 'live · step 1,240 · 3 s ago');
  assert.equal(liveText({ ...s, state: 'live' }, 125_000), 'live · step 1,240 · 2 min ago');
  assert.equal(liveText({ ...s, state: 'waiting', step: null }), 'live · waiting for the first step · runs/a.gradlens.jsonl');
  assert.equal(liveText({ ...s, state: 'ended' }), 'finished · step 1,240');
  assert.equal(liveText({ ...s, state: 'detached' }), 'detached · step 1,240');
  assert.deepEqual([agoText(0), agoText(999), agoText(59_999), agoText(3_600_000)], ['just now', 'just now', '59 s ago', '1 h ago']);
});

test('the committed single-process record still imports through the import entry point', () => {
  const file = path.join(repoRoot, 'test', 'fixtures', 'recorder', 'tiny_gpt.training.json');
  const imported = importTrainingFile(file, new Uint8Array(fs.readFileSync(file)));
  assert.equal(imported.kind, 'record');
  assert.deepEqual(imported.notes, []);
  assert.deepEqual(imported.record, parseTrainingRecord(fs.readFileSync(file, 'utf8'), 'tiny_gpt.training.json'));
});

test('step 0: a run declares stepBase 0 and keeps its step numbers; an undeclared step 0 is an error naming the line, never a shifted step', () => {
  // A 0-based writer (Lightning's global_step) declares it in the start line: steps stay as written.
  const zero = parseTrainingStream(lines({ ...START, stepBase: 0 }, step(0, 0.25), step(10)), 'run.gradlens.jsonl').record;
  assert.deepEqual(zero.steps, [0, 10]);
  assert.equal(zero.stepBase, 0);
  assert.deepEqual(zero.modules.find((m) => m.path === 'fc')!.gradNorm, [0.25, 0.5]);
  // It survives the record's JSON and a live slice.
  assert.equal(parseTrainingRecord(serializeTrainingRecord(zero)).stepBase, 0);
  assert.equal(sliceTrainingRecord(zero, 1).stepBase, 0);
  // The panel's status line says how the steps count (the hover does too: test/tensorboard.test.ts).
  assert.match(progressText(zero, 2, 'live', 'live · step 10'), /^live · step 10 · .* · steps counted from 0$/);
  assert.doesNotMatch(progressText(parseTrainingStream(lines(START, step(1))).record, 1, 'imported'), /counted from|as logged/);
  // The recorder's streams (no stepBase) count from 1: a step 0 there is an error naming the line, not step "0" shown as the first step.
  assert.throws(() => parseTrainingStream(lines(START, step(0)), 'run.gradlens.jsonl'),
    (err: Error) => err instanceof TrainingRecordError && /^run\.gradlens\.jsonl:2: step 0, but this run's steps count from 1 .*"stepBase": 0/.test(err.message));
  assert.throws(() => parseTrainingStream(lines({ ...START, stepBase: 2 }, step(1)), 'run.gradlens.jsonl'),
    (err: Error) => /run\.gradlens\.jsonl:1: stepBase must be 0, 1 or null, got 2/.test(err.message));
  // The same rule in a training@1 record, for its steps and its anomaly.
  const record = JSON.parse(serializeTrainingRecord(zero)) as Record<string, unknown>;
  delete record.stepBase;
  assert.throws(() => parseTrainingRecord(JSON.stringify(record), 'run.json'), /^TrainingRecordError: run\.json: steps\[0\]: step 0, but this run's steps count from 1/);
  const anomalyAt0 = { ...JSON.parse(serializeTrainingRecord(zero)), steps: [1, 10], anomaly: { step: 0, phase: 'forward', modulePath: '', message: 'NaN' } };
  delete anomalyAt0.stepBase;
  assert.throws(() => parseTrainingRecord(JSON.stringify(anomalyAt0), 'run.json'), /run\.json: anomaly\.step: step 0, but this run's steps count from 1/);
  // 1-based records say nothing: stepBase stays absent (the default).
  assert.equal('stepBase' in parseTrainingStream(lines(START, step(1))).record, false);
});
