/**
 * The ONNX project's backend node suite (../shared/onnx-backend-data/node, 1,802 one-op cases) through the
 * importer (test/onnx_node_suite.ts): no wrong number, no crash, every op the importer claims passes every
 * one of its cases, and every other case fails with an UNSUPPORTED_* error naming the op, dtype or feature.
 * Every case that does not pass is listed with its reason in the test diagnostics.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { sharedDir } from './helpers';
import { formatNodeTable, runNodeSuite } from './onnx_node_suite';
import { supportedOnnxOps } from '../engine';

const NODE_DIR = sharedDir('onnx-backend-data', 'node');

/** Passing cases today: a floor that only moves up. */
const MIN_PASS = 1543;
/** Claimed cases (claimed ops on claimed value types: isClaimedOnnxValueType) that fail: none. */
const MAX_CLAIMED_FAILURES = 0;

test('ONNX node suite: no wrong numbers or crashes; unsupported cases say why', { skip: NODE_DIR ? false : 'no shared/onnx-backend-data/node' }, (t) => {
  const s = runNodeSuite(NODE_DIR!);
  t.diagnostic(`${s.results.length} cases: ${Object.entries(s.counts).map(([k, v]) => `${v} ${k}`).join(', ')}`);
  const notPassing = s.results.filter((r) => r.status !== 'pass');
  for (const line of formatNodeTable(notPassing).split('\n')) t.diagnostic(line);
  const bad = s.results.filter((r) => r.status === 'wrong' || r.status === 'crash');
  assert.equal(bad.length, 0, `wrong numbers or crashes:\n${formatNodeTable(bad)}`);
  for (const r of s.results.filter((x) => x.status === 'unsupported')) assert.match(r.detail, /^UNSUPPORTED_(OP|FEATURE|DTYPE): /, r.name);
  assert.equal(s.counts['not-comparable'], 4, 'only the four random-mask dropout cases are not comparable');
  assert.ok(s.counts.pass >= MIN_PASS, `${s.counts.pass} cases pass, fewer than ${MIN_PASS}`);
  assert.ok(s.claimedFailures.length <= MAX_CLAIMED_FAILURES, `cases of claimed ops that fail:\n${formatNodeTable(s.claimedFailures)}`);
  // Claimed ops on sequence, optional and string values pass like the rest: no case of a claimed op is left
  // out of the claim for its value types. What still fails on such values is an unsupported op (string ops,
  // ai.onnx.ml). Control flow (If, Loop, SequenceMap) carries these values through its bodies.
  const claimedOps = new Set(supportedOnnxOps());
  const unclaimedTypes = s.results.filter((r) => r.unclaimedTypes.length > 0 && r.ops.every((o) => claimedOps.has(o)));
  assert.deepEqual(unclaimedTypes.map((r) => `${r.name}: ${r.unclaimedTypes.join(', ')}`), []);
  const otherValues = s.results.filter((r) => r.valueKinds.length > 0 || r.ops.some((o) => /^(Sequence|Optional|SplitToSequence$|ConcatFromSequence$)/.test(o)));
  t.diagnostic(`sequence / optional / string cases: ${otherValues.filter((r) => r.status === 'pass').length} pass of ${otherValues.length}`);
  for (const r of otherValues) {
    if (r.ops.every((o) => claimedOps.has(o))) assert.equal(r.status, 'pass', `${r.name}: ${r.detail}`);
    else assert.match(r.detail, /^UNSUPPORTED_OP: /, r.name);
  }
});

const PYTORCH_DIRS = ['pytorch-converted', 'pytorch-operator'].map((d) => sharedDir('onnx-backend-data', d));

test('ONNX backend data from PyTorch modules and operators (incl. 3-D conv and pooling): every case passes', { skip: PYTORCH_DIRS.every(Boolean) ? false : 'no shared/onnx-backend-data/pytorch-*' }, (t) => {
  for (const dir of PYTORCH_DIRS) {
    const s = runNodeSuite(dir!);
    t.diagnostic(`${dir}: ${s.results.length} cases: ${Object.entries(s.counts).map(([k, v]) => `${v} ${k}`).join(', ')}`);
    const notPassing = s.results.filter((r) => r.status !== 'pass');
    assert.equal(notPassing.length, 0, formatNodeTable(notPassing));
    assert.ok(s.results.length > 30, `${dir}: only ${s.results.length} cases found`);
  }
});

const SIMPLE_DIR = sharedDir('onnx-backend-data', 'simple');

test('ONNX simple models: the eight sequence models pass; the rest pass or are unsupported ops', { skip: SIMPLE_DIR ? false : 'no shared/onnx-backend-data/simple' }, (t) => {
  const s = runNodeSuite(SIMPLE_DIR!);
  t.diagnostic(`${s.results.length} cases: ${Object.entries(s.counts).map(([k, v]) => `${v} ${k}`).join(', ')}`);
  const sequences = s.results.filter((r) => r.name.startsWith('test_sequence_model'));
  assert.equal(sequences.length, 8);
  for (const r of sequences) assert.equal(r.status, 'pass', `${r.name}: ${r.detail}`);
  for (const r of s.results.filter((x) => x.status !== 'pass')) assert.match(r.detail, /^UNSUPPORTED_OP: /, r.name);
});
