/**
 * What crosses into the editor from a model and from the webview: names from the model are literal text
 * in hovers (no links, images, HTML or icons: every character that opens Markdown is escaped),
 * every webview message is checked against the protocol before the host uses it, and the CSP nonce is
 * cryptographic.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { inspectOnnx, InspectionReport } from '../engine';
import { parseReport, serializeReport, ReportFormatError } from '../engine/inspect/reportCodec';
import { md } from '../extension/overlay/format';
import { moduleHover, multiModuleHover } from '../extension/overlay/model';
import { parseShowReport, parseWebviewMessage } from '../extension/webviewMessages';
import { makeNonce } from '../extension/nonce';
import { DEFAULT_RUN_SETTINGS, DEFAULT_TRAIN_SETTINGS } from '../extension/protocol';
import { repoRoot } from './helpers';

/** A Markdown-opening character not preceded by a backslash (a backslash itself escaped counts as text). */
function unescaped(markdown: string): string | null {
  for (let i = 0; i < markdown.length; i++) {
    const ch = markdown[i];
    if (ch === '\\') {
      i++;
      continue;
    }
    if ('[]()<>!`*_|$~#&@'.includes(ch)) return `${ch} at ${i}`;
  }
  return null;
}

/** The text a reader sees: backslash escapes removed. */
const visible = (markdown: string) => markdown.replace(/\\(.)/g, '$1');

const HOSTILE = [
  '[click me](https://evil.example/steal)',
  '![pixel](http://evil.example/track.png)',
  '<img src=x onerror=alert(1)>',
  '<a href="command:workbench.action.terminal.new">run</a>',
  '$(gear) $(error)',
  'line\n# Heading\n---\n| a | b |',
  'https://evil.example and www.evil.example and me@evil.example',
  '**bold** _it_ `code` ~~strike~~',
  '[ref]: http://evil.example',
  '1. ordered',
  '=== setext',
  'a\\]\\(http://x\\)',
];

describe('names from the model are literal text in hovers', () => {
  test('md(): no link, image, HTML, heading, table, emphasis or code; the text reads as given', () => {
    for (const name of HOSTILE) {
      const out = md(name);
      assert.equal(unescaped(out), null, `${JSON.stringify(name)} -> ${out}`);
      assert.doesNotMatch(out, /[\r\n]/);
      assert.doesNotMatch(out, /[^\\]:\/\/|(^|[^\\])www\./i, 'URL shapes are broken');
      assert.doesNotMatch(out, /^\s*(\d+\.|=)/, 'no list or heading at the start');
      assert.equal(visible(out), name.replace(/\n/g, ' '), JSON.stringify(name));
    }
  });

  test('module and multi-module hovers escape paths, kinds, parameter names and finding messages', () => {
    const evil = '[x](https://evil.example)';
    const module = {
      path: `blocks.0.${evil}`, depth: 2, leaf: true, kind: '<img src=x>', parameters: [{ name: `w.![i](http://e/p.png)`, shape: [2], trainable: true, grad: null, valueNorm: 1, gradToWeight: null }],
      parameterCount: 2, gradNorm: 1, gradRms: 1, weightNorm: 1, gradToWeight: 1, outputShape: [2], activation: null, outputGrad: null, deadUnitFraction: null,
    } as InspectionReport['modules'][number];
    const finding = { kind: 'vanishing' as const, severity: 'warning' as const, modulePath: module.path, message: `see ${evil}` };
    for (const hover of [moduleHover(module, [finding]), multiModuleHover([module, { ...module, path: 'other' }], [finding])]) {
      assert.doesNotMatch(hover, /(^|[^\\])\[x\]\(|(^|[^\\])<img|(^|[^\\])!\[/, hover);
      assert.ok(hover.includes(md(evil)), 'the name is still shown, escaped');
      assert.ok(visible(hover).includes(evil));
    }
  });
});

describe('webview messages are checked against the protocol', () => {
  let report: InspectionReport;
  test('a real report round-trips through serializeReport/parseReport, NaN and Infinity kept', async () => {
    const bytes = new Uint8Array(fs.readFileSync(path.join(repoRoot, 'test', 'fixtures', 'onnx', 'mlp_residual_op17_loss.onnx')));
    report = await inspectOnnx(bytes, 'mlp.onnx', { batch: 2 });
    const withNaN: InspectionReport = { ...report, loss: { ...report.loss, value: NaN }, timings: { forwardMs: Infinity, backwardMs: -Infinity } };
    const back = parseWebviewMessage({ type: 'report', runId: 3, report: serializeReport(withNaN) });
    assert.equal(back.type, 'report');
    if (back.type !== 'report') return;
    assert.ok(Number.isNaN(back.report.loss.value));
    assert.equal(back.report.timings.forwardMs, Infinity);
    assert.equal(back.report.timings.backwardMs, -Infinity);
    assert.equal(back.report.modules.length, report.modules.length);
    assert.deepEqual(back.report.modules.map((m) => [m.path, m.gradNorm]), report.modules.map((m) => [m.path, m.gradNorm]));
    assert.equal(back.report.mode, 'train');
  });

  test('the export notes and the run mode cross from the webview (the extension puts the export warnings on module lines from them)', async () => {
    const dir = path.join(repoRoot, 'test', 'fixtures', 'exports');
    const file = 'cnn_bn_perturbed_dynamo.onnx';
    const r = await inspectOnnx(new Uint8Array(fs.readFileSync(path.join(dir, file))), file, {
      externalData: { [`${file}.data`]: new Uint8Array(fs.readFileSync(path.join(dir, `${file}.data`))) }, batch: 2, mode: 'eval',
    });
    assert.ok((r.exportNotes ?? []).some((n) => n.kind === 'bn-folded'));
    const back = parseReport(serializeReport(r));
    assert.deepEqual(back.exportNotes, r.exportNotes);
    assert.equal(back.mode, 'eval');
    const o = JSON.parse(serializeReport(r));
    o.exportNotes[0].kind = 'whatever';
    assert.throws(() => parseReport(JSON.stringify(o)), /exportNotes\[0\]\.kind/);
    o.exportNotes = undefined;
    o.mode = 'training';
    assert.throws(() => parseReport(JSON.stringify(o)), /\.mode: expected "train" or "eval"/);
  });

  test('a report that is not the protocol is refused, naming the field', () => {
    const text = serializeReport(report);
    const bad = (mutate: (o: Record<string, any>) => void) => {
      const o = JSON.parse(text);
      mutate(o);
      return JSON.stringify(o);
    };
    const refused = (raw: unknown, re: RegExp) => assert.throws(() => parseWebviewMessage(raw), (e: Error) => e instanceof ReportFormatError && re.test(e.message));
    refused({ type: 'report', runId: 1, report: JSON.parse(text) }, /message\.report: expected the report as JSON text/);
    refused({ type: 'report', runId: 1, report: '{' }, /not valid JSON/);
    refused({ type: 'report', runId: 1, report: bad((o) => (o.schema = 'other')) }, /message\.report\.schema/);
    refused({ type: 'report', runId: 1, report: bad((o) => (o.modules[0].path = { toString: 1 })) }, /message\.report\.modules\[0\]\.path: expected a string/);
    refused({ type: 'report', runId: 1, report: bad((o) => (o.modules[1].parameters = 'all')) }, /modules\[1\]\.parameters: expected an array/);
    refused({ type: 'report', runId: 1, report: bad((o) => (o.loss.value = 'lots')) }, /loss\.value/);
    refused({ type: 'report', runId: 1, report: bad((o) => (o.modules[0].path = 'x'.repeat(5000))) }, /longer than 4096/);
    refused({ type: 'report', runId: 0, report: text }, /message\.runId/); // negative ids are Verify's repeat runs
    assert.throws(() => parseReport(bad((o) => (o.dtype = 'int8'))), /dtype/);
  });

  test("the host's showReport (a run of the extension host's engine) is checked like the page's reports before the panel shows it", () => {
    const text = serializeReport(report);
    const shown = parseShowReport({ type: 'showReport', runId: 7, report: text, settings: DEFAULT_RUN_SETTINGS });
    assert.equal(shown.runId, 7);
    assert.deepEqual(shown.report, parseReport(text));
    assert.deepEqual(shown.settings, DEFAULT_RUN_SETTINGS);
    const o = JSON.parse(text);
    o.modules[0].path = { toString: 1 };
    const refused: [unknown, RegExp][] = [
      [{ type: 'report', runId: 7, report: text, settings: DEFAULT_RUN_SETTINGS }, /message\.type: expected "showReport"/],
      [{ type: 'showReport', runId: -1, report: text, settings: DEFAULT_RUN_SETTINGS }, /message\.runId/],
      [{ type: 'showReport', runId: 7, report: JSON.parse(text), settings: DEFAULT_RUN_SETTINGS }, /message\.report: expected the report as JSON text/],
      [{ type: 'showReport', runId: 7, report: JSON.stringify(o), settings: DEFAULT_RUN_SETTINGS }, /message\.report\.modules\[0\]\.path: expected a string/],
      [{ type: 'showReport', runId: 7, report: text, settings: { ...DEFAULT_RUN_SETTINGS, batch: 0 } }, /message\.settings\.batch/],
    ];
    for (const [raw, re] of refused) assert.throws(() => parseShowReport(raw), (e: Error) => e instanceof ReportFormatError && re.test(e.message), JSON.stringify(raw).slice(0, 80));
  });

  test('every other message type: valid ones pass, malformed ones are refused', () => {
    const ok = [
      { type: 'ready' },
      { type: 'backend', info: { name: 'wasm-simd', reason: 'no WebGPU', webgpuAdapter: null, wasmSimd: true } },
      { type: 'progress', runId: 2, message: 'forward pass' },
      { type: 'runError', runId: 2, message: 'failed' },
      { type: 'revealModule', path: 'blocks.0' },
      { type: 'rerun', settings: DEFAULT_RUN_SETTINGS },
      { type: 'startTraining', settings: DEFAULT_RUN_SETTINGS, train: DEFAULT_TRAIN_SETTINGS },
      { type: 'trainProgress', runId: 4, record: '{}' },
      { type: 'trainDone', runId: 4, record: '{}', stopped: 'done' },
      { type: 'error', message: 'x' },
    ];
    for (const m of ok) assert.deepEqual(parseWebviewMessage(m), m);
    const refused: [unknown, RegExp][] = [
      [null, /message: expected an object/],
      ['ready', /message: expected an object/],
      [{ type: 'exec', command: 'rm -rf /' }, /unknown message type "exec"/],
      [{ type: '__proto__' }, /unknown message type/],
      [{ type: 'rerun', settings: { ...DEFAULT_RUN_SETTINGS, batch: -1 } }, /settings\.batch/],
      [{ type: 'rerun', settings: { ...DEFAULT_RUN_SETTINGS, batch: 1e12 } }, /settings\.batch/],
      [{ type: 'rerun', settings: { ...DEFAULT_RUN_SETTINGS, loss: 'rm -rf' } }, /settings\.loss: expected one of/],
      [{ type: 'rerun', settings: { ...DEFAULT_RUN_SETTINGS, dtype: 'float16' } }, /settings\.dtype/],
      [{ type: 'startTraining', settings: DEFAULT_RUN_SETTINGS, train: { ...DEFAULT_TRAIN_SETTINGS, lr: 'NaN' } }, /train\.lr/],
      [{ type: 'startTraining', settings: DEFAULT_RUN_SETTINGS, train: { ...DEFAULT_TRAIN_SETTINGS, steps: 1e9 } }, /train\.steps/],
      [{ type: 'trainDone', runId: 4, record: {}, stopped: 'done' }, /message\.record/],
      [{ type: 'trainDone', runId: 4, record: '{}', stopped: 'exploded' }, /message\.stopped/],
      [{ type: 'backend', info: { name: 1 } }, /message\.info\.name/],
      [{ type: 'revealModule', path: ['a'] }, /message\.path/],
      [{ type: 'progress', runId: 1.5, message: '' }, /message\.runId/],
    ];
    for (const [raw, re] of refused) assert.throws(() => parseWebviewMessage(raw), (e: Error) => e instanceof ReportFormatError && re.test(e.message), JSON.stringify(raw));
    // Verify's capture of a run (negative run ids are its repeat runs): checked tensor by tensor.
    const tensor = (name: string, shape: number[], n = shape.reduce((a, b) => a * b, 1)) => ({ name, dtype: 'float32', shape, data: new Float32Array(n) });
    const capture = { dtype: 'float32', mode: 'train', inputs: [tensor('x', [2, 3])], outputs: ['y'], loss: { kind: 'mse', value: 0.5, targets: null }, values: [tensor('w', [3])], gradients: [tensor('w', [3])], dropout: [], dropoutNodes: [{ name: '/drop/Dropout', dropped: false }] };
    const captured = parseWebviewMessage({ type: 'capture', runId: -3, capture });
    assert.ok(captured.type === 'capture' && captured.runId === -3 && captured.capture.gradients[0].shape[0] === 3);
    assert.throws(() => parseWebviewMessage({ type: 'capture', runId: -3, capture: { ...capture, gradients: [tensor('w', [3], 2)] } }), /message\.capture\.gradients\[0\]\.data: expected 3 values/);
    assert.throws(() => parseWebviewMessage({ type: 'capture', runId: -3, capture: { ...capture, dtype: 'int8' } }), /message\.capture\.dtype/);
    assert.throws(() => parseWebviewMessage({ type: 'capture', runId: 0, capture }), /message\.runId/);
    assert.deepEqual(parseWebviewMessage({ type: 'verify' }), { type: 'verify' });
    // A long message is cut to a bounded length, not refused.
    const long = parseWebviewMessage({ type: 'error', message: 'x'.repeat(100_000) });
    assert.ok(long.type === 'error' && long.message.length <= 2001);
  });
});

test('the CSP nonce is cryptographic: 192 bits of base64, never repeated', () => {
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const n = makeNonce();
    assert.match(n, /^[A-Za-z0-9+/]{32}$/);
    seen.add(n);
  }
  assert.equal(seen.size, 2000);
  // Every character position varies (a constant or counter-like nonce would not).
  const first = [...seen].slice(0, 200);
  for (let i = 0; i < 32; i++) assert.ok(new Set(first.map((n) => n[i])).size > 20, `position ${i}`);
});
