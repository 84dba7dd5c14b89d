// End to end: Attach to Training Job in a real VS Code (code-server + Chromium). A Python job
// (test/fixtures/recorder/live_job.py, the test environment's torch) streams its statistics while the editor
// follows the stream: the sparkline on a module line changes value as steps arrive, the status bar says
// "live · step N", and a NaN injected into the running job becomes a Problem on the line that made it.
// A second job's stream is reached only through a FileSystemProvider on a custom scheme (`gradlens-test:`,
// test/e2e/fs-provider-extension, standing in for Remote-SSH or a container): the overlay follows it the same way,
// so the extension reads streams through vscode.workspace.fs and not from the host's disk.
import { describe, test } from 'node:test';
import assert from 'node:assert/strict';
import { cpSync, existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { spawn } from 'node:child_process';
import { E2E_DIR, ROOT, log, run, timed, workbenchSuite } from './harness.mjs';
import { readPythonEnv } from '../../scripts/python-env.mjs';

const TEST_TIMEOUT = { timeout: 6 * 60_000 };
const on = (decorations, code) => decorations.find((d) => (d.text ?? '').replace(/\u00a0/g, ' ').includes(code));
/** The last value a sparkline shows: `∇ ▂▃▅ 1.2e-01 · …` → 1.2e-01. */
const lastValue = (after) => /^∇ [▁▂▃▄▅▆▇█ !]+ (\d\.\de[+-]\d\d)/.exec((after ?? '').replace(/\u00a0/g, ' '))?.[1];

const python = process.env.GRADLENS_PYTHON || readPythonEnv()?.python;
const noPython = python ? false : 'no Python test environment with torch (node scripts/setup.mjs --python)';
if (noPython && process.env.GRADLENS_REQUIRE_TORCH === '1') throw new Error(`GRADLENS_REQUIRE_TORCH=1 but ${noPython}`);

describe('Attach to a running training job in code-server', { skip: noPython }, () => {
  let wb;
  let workspace;
  let job;
  let jobOutput = '';
  let remoteDisk;
  workbenchSuite('attach', {
    async extraVsix() {
      const fsVsix = join(E2E_DIR, 'gradlens-fs-test.vsix');
      await timed('package the gradlens-test: file system extension', () =>
        run(join(ROOT, 'node_modules', '.bin', 'vsce'), ['package', '--allow-missing-repository', '--skip-license', '--no-dependencies', '--out', fsVsix], { cwd: join(ROOT, 'test', 'e2e', 'fs-provider-extension'), quiet: true }));
      return [fsVsix];
    },
    prepare(scratch) {
      workspace = join(scratch, 'job');
      // Outside the workspace: the editor sees this folder only as gradlens-test:/.
      remoteDisk = join(scratch, 'remote-disk');
      mkdirSync(join(workspace, 'runs'), { recursive: true });
      mkdirSync(remoteDisk, { recursive: true });
      for (const f of ['nan_model.py', 'live_job.py']) cpSync(join(ROOT, 'test', 'fixtures', 'recorder', f), join(workspace, f));
      cpSync(join(ROOT, 'python', 'gradlens_recorder.py'), join(workspace, 'gradlens_recorder.py'));
      return workspace;
    },
    settings: () => ({ 'gradlensTest.root': remoteDisk, 'gradlensTest.stream': '/run.gradlens.jsonl' }),
    ready: (suite) => { wb = suite.wb; },
    cleanup: () => {
      if (job && job.exitCode === null) job.kill('SIGKILL');
    },
  });

  test('the overlay follows the job step by step, and an injected NaN becomes a Problem at once', () => wb.explainingFailures('attach', async () => {
    const stream = join(workspace, 'runs', 'live.gradlens.jsonl');
    const trigger = join(workspace, 'inject-nan');
    job = spawn(python, ['live_job.py', stream, '--delay', '0.5', '--nan-trigger', trigger], { cwd: workspace, env: { ...process.env, OMP_NUM_THREADS: '1' } });
    job.stdout.on('data', (d) => (jobOutput += d));
    job.stderr.on('data', (d) => (jobOutput += d));
    await wb.poll(() => existsSync(stream) && readFileSync(stream, 'utf8').includes('"type":"step"'), (ok) => ok, `the job's first step (output: ${jobOutput.slice(-500)})`, 180_000, 500);

    await wb.openFile('nan_model.py');
    // code-server's file dialog is a quick input holding a path: type the stream's path and accept.
    await wb.runCommand('Gradient Lens: Attach to Training Job…', { input: stream });
    const fc = 'self.fc = nn.Linear(4, 4';
    // The panel opens below the editor: bring the fc line into view before reading its decoration.
    await wb.goToLine(readFileSync(join(workspace, 'nan_model.py'), 'utf8').split('\n').findIndex((l) => l.includes(fc)) + 1);
    const first = await wb.poll(() => wb.readDecorations(), (ds) => !!lastValue(on(ds, fc)?.after), 'a sparkline on the fc line', 60_000, 500);
    const a = lastValue(on(first, fc).after);
    const status = await wb.poll(() => wb.page.locator('.part.statusbar').innerText(), (t) => /live · step [\d,]+/.test(t), 'the live status', 30_000, 500);
    log(`attached: fc shows ${a}; status bar: ${/live · [^\n]*/.exec(status)?.[0]}`);
    // The job keeps training: the value on the same line changes without any action in the editor.
    const later = await wb.poll(() => wb.readDecorations(), (ds) => { const v = lastValue(on(ds, fc)?.after); return !!v && v !== a; }, `the fc value to change from ${a} as the job runs`, 90_000, 500);
    const b = lastValue(on(later, fc).after);
    log(`fc changed while the job ran: ${a} -> ${b}`);
    assert.notEqual(a, b);
    await wb.screenshot('attach-live');

    // A NaN in the running job: a Problem at the call that produced it.
    writeFileSync(trigger, '');
    const source = readFileSync(join(workspace, 'nan_model.py'), 'utf8').split('\n');
    const line = source.findIndex((l) => l.includes('x = self.log(x)')) + 1;
    const problems = await wb.poll(() => wb.readProblems(), (ps) => ps.some((p) => p.file === 'nan_model.py' && /Training step \d+/.test(p.message)), 'the anomaly Problem', 90_000, 500);
    const p = problems.find((x) => x.file === 'nan_model.py' && /Training step \d+/.test(x.message));
    log(`problem: ${p.message} at line ${p.line}`);
    assert.equal(p.line, line, JSON.stringify(p));
    assert.equal(p.severity, 'error');
    assert.match(p.message, /NaN first appears in the output of log/);
    await wb.poll(() => wb.page.locator('.part.statusbar').innerText(), (t) => /finished · step [\d,]+/.test(t), 'the finished status after the job closed its stream', 60_000, 500);
    await wb.screenshot('attach-nan');
  }), TEST_TIMEOUT);

  test('a stream on another file system (a FileSystemProvider on gradlens-test:) is followed through workspace.fs', () => wb.explainingFailures('attach-remote', async () => {
    if (job && job.exitCode === null) job.kill('SIGKILL');
    const stream = join(remoteDisk, 'run.gradlens.jsonl');
    jobOutput = '';
    job = spawn(python, ['live_job.py', stream, '--delay', '0.5'], { cwd: workspace, env: { ...process.env, OMP_NUM_THREADS: '1' } });
    job.stdout.on('data', (d) => (jobOutput += d));
    job.stderr.on('data', (d) => (jobOutput += d));
    await wb.poll(() => existsSync(stream) && readFileSync(stream, 'utf8').includes('"type":"step"'), (ok) => ok, `the job's first step (output: ${jobOutput.slice(-500)})`, 180_000, 500);
    const calls = async () => /gradlens-test: (\d+) stat, (\d+) readFile/.exec(await wb.page.locator('.part.statusbar').innerText())?.slice(1).map(Number) ?? [0, 0];
    const [, readsBefore] = await calls();

    await wb.openFile('nan_model.py');
    // The test extension runs gradientLens.attachTraining with gradlens-test:/run.gradlens.jsonl: a URI that
    // names no file on this machine's disk.
    await wb.runCommand('Gradient Lens Test: Attach Through gradlens-test:');
    const fc = 'self.fc = nn.Linear(4, 4';
    await wb.goToLine(readFileSync(join(workspace, 'nan_model.py'), 'utf8').split('\n').findIndex((l) => l.includes(fc)) + 1);
    const status = await wb.poll(() => wb.page.locator('.part.statusbar').innerText(), (t) => /live · step [\d,]+/.test(t), 'the live status of the gradlens-test: stream', 60_000, 500);
    const first = await wb.poll(() => wb.readDecorations(), (ds) => !!lastValue(on(ds, fc)?.after), 'a sparkline on the fc line', 60_000, 500);
    const a = lastValue(on(first, fc).after);
    const later = await wb.poll(() => wb.readDecorations(), (ds) => { const v = lastValue(on(ds, fc)?.after); return !!v && v !== a; }, `the fc value to change from ${a} as the job writes through gradlens-test:`, 90_000, 500);
    const b = lastValue(on(later, fc).after);
    const [stats, reads] = await calls();
    log(`gradlens-test: fc ${a} -> ${b}; status bar: ${/live · [^\n]*/.exec(status)?.[0]}; provider calls: ${stats} stat, ${reads} readFile`);
    assert.notEqual(a, b);
    // The values came through the provider: it served reads after the attach (and the file exists nowhere else the editor could see).
    assert.ok(reads > readsBefore + 1, `the provider served ${reads - readsBefore} readFile calls`);
    assert.ok(stats > 1, `the provider served ${stats} stat calls`);
    await wb.screenshot('attach-remote');
    job.kill('SIGKILL');
  }), TEST_TIMEOUT);
});
