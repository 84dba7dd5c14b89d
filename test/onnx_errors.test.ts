/**
 * Bad input to the ONNX importer: every failure is an OnnxImportError whose code and message say
 * what is wrong (truncated or corrupt bytes, not a model, unsupported op / dtype, external data,
 * unresolved dims, out-of-range integers, bad feeds, failing nodes), and nothing crashes or hangs,
 * including on randomly damaged models.
 */
import { test, describe } from 'node:test';
import assert from 'node:assert/strict';
import * as fs from 'node:fs';
import * as path from 'node:path';
import { loadOnnx, LoadOptions, OnnxImportError, Rng, tensorFrom } from '../engine';
import { repoRoot } from './helpers';
import { buildModel } from './onnx_builder';
import { expectOnnxError } from './pytorchGold';

const FIXTURES = path.join(repoRoot, 'test', 'fixtures', 'onnx');
const bytesOf = (...parts: string[]) => new Uint8Array(fs.readFileSync(path.join(FIXTURES, ...parts)));

/** Asserts that fn throws an OnnxImportError with `code` and a message matching every pattern. */

const load = (bytes: Uint8Array, options?: LoadOptions) => loadOnnx(bytes, options);

describe('not a model', () => {
  test('empty file', () => {
    expectOnnxError(() => load(new Uint8Array(0)), 'EMPTY', /empty/);
  });
  test('a PNG image', () => {
    const png = new Uint8Array([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a, 0, 0, 0, 13, 0x49, 0x48, 0x44, 0x52]);
    expectOnnxError(() => load(png), 'NOT_ONNX', /not an ONNX model/, /PNG image/);
  });
  test('text and JSON', () => {
    const e = expectOnnxError(() => load(new TextEncoder().encode('import torch\nmodel = torch.nn.Linear(2, 3)\n')), 'NOT_ONNX', /text/);
    // The path may name any file (a key, a token): nothing of its content is echoed.
    assert.doesNotMatch(e.message, /import|torch|Linear/);
    const json = expectOnnxError(() => load(new TextEncoder().encode('{"name": "gpt", "secret": "s3cr3t"}')), 'NOT_ONNX', /JSON/);
    assert.doesNotMatch(json.message, /gpt|secret|s3cr3t/);
  });
  test('a zip archive (a PyTorch checkpoint)', () => {
    expectOnnxError(() => load(new Uint8Array([0x50, 0x4b, 0x03, 0x04, 20, 0, 0, 0, 8, 0])), 'NOT_ONNX', /ZIP archive/, /\.pt/);
  });
  test('valid protobuf that is not a ModelProto (a TensorProto)', () => {
    const tensor = bytesOf('errors', 'tensor_proto.pb');
    expectOnnxError(() => load(tensor), 'CORRUPT', /not an ONNX model/, /invalid protobuf data/);
    // A protobuf with no graph at all
    expectOnnxError(() => load(new Uint8Array([0x08, 0x07, 0x12, 0x02, 0x68, 0x69])), 'NOT_ONNX', /no graph/);
  });
  test('non-Uint8Array input', () => {
    expectOnnxError(() => load('model.onnx' as unknown as Uint8Array), 'NOT_ONNX', /Uint8Array/);
  });
});

describe('damaged bytes', () => {
  test('truncated file', () => {
    const bytes = bytesOf('mlp_sigmoid_op13_loss.onnx');
    for (const keep of [10, 100, 1000, bytes.length >> 1, bytes.length - 3]) {
      expectOnnxError(() => load(bytes.subarray(0, keep)), 'TRUNCATED', /truncated/, /ends in the middle of a field/);
    }
  });
  test('corrupt protobuf (invalid wire type)', () => {
    const bytes = bytesOf('lora_op17.onnx').slice();
    bytes[0] = 0x0f; // field 1 with wire type 7, which does not exist
    expectOnnxError(() => load(bytes), 'CORRUPT', /corrupt/, /wire type/);
  });
  test('random damage never crashes or hangs', () => {
    const original = bytesOf('cnn_op17_loss.onnx');
    const rng = new Rng(17);
    const codes = new Map<string, number>();
    const started = Date.now();
    for (let trial = 0; trial < 150; trial++) {
      const bytes = original.slice();
      const flips = 1 + rng.int(4);
      // Damage the structure (the first bytes and node headers), not only weight data.
      for (let k = 0; k < flips; k++) bytes[rng.int(trial % 2 ? 4000 : bytes.length)] = rng.int(256);
      let outcome = 'ok';
      try {
        const model = load(bytes);
        model.run(undefined, { seed: trial, loss: 'auto' });
      } catch (e) {
        assert.ok(e instanceof OnnxImportError, `trial ${trial}: ${(e as Error)?.constructor?.name}: ${(e as Error)?.message}`);
        outcome = e.code;
      }
      codes.set(outcome, (codes.get(outcome) ?? 0) + 1);
    }
    assert.ok(Date.now() - started < 20000, 'took too long');
    assert.ok(codes.size > 2, `outcomes ${JSON.stringify([...codes])}`);
  });
});

describe('models the engine cannot run', () => {
  test('unsupported op names its type, node and module path', () => {
    const e = expectOnnxError(() => load(bytesOf('errors', 'unsupported_op.onnx')), 'UNSUPPORTED_OP',
      /Unique/, /node '\/encoder\/layers\.0\/attn\/Unique'/, /module encoder\.layers\.0\.attn/);
    assert.equal(e.node?.opType, 'Unique');
    assert.equal(e.node?.modulePath, 'encoder.layers.0.attn');
    // strict: false loads it for inspection (module tree...) and fails only when run.
    const model = load(bytesOf('errors', 'unsupported_op.onnx'), { strict: false });
    assert.deepEqual(model.unsupported.map((u) => u.opType), ['Unique']);
    assert.ok(model.modules.has('encoder.layers.0.attn'));
    expectOnnxError(() => model.run(undefined, { loss: 'none' }), 'UNSUPPORTED_OP', /Unique/);
  });
  test('unsupported ops in unused parts of the graph are tolerated', () => {
    const model = load(bytesOf('errors', 'dead_branch.onnx'));
    assert.equal(model.graph.nodes.length, 2);
    assert.deepEqual(model.liveNodes.map((n) => n.opType), ['Relu']);
    const x = tensorFrom([-1, 2, -3, 4, 5, -6, 7, -8], [2, 4]);
    assert.deepEqual(model.run({ x }, { loss: 'none' }).outputs.get('y')!.toArray(), [0, 2, 0, 4, 5, 0, 7, 0]);
  });
  test('unsupported dtype (complex input); a string input loads and must be fed', () => {
    const complexIn = buildModel({ nodes: [{ op: 'Identity', inputs: ['c'], outputs: ['y'] }], inputs: [{ name: 'c', type: 14, dims: [2] }], outputs: [{ name: 'y', type: 14, dims: [2] }] });
    expectOnnxError(() => load(complexIn), 'UNSUPPORTED_DTYPE', /graph input 'c'/, /complex64/);
    expectOnnxError(() => load(bytesOf('errors', 'string_input.onnx')).run(), 'BAD_INPUT', /input 's' is a string tensor/, /feed it \(as a StringTensor\)/);
  });
  test('windows of 4 or more spatial dims', () => {
    const conv4d = buildModel({
      opset: 23,
      irVersion: 10,
      nodes: [{ op: 'Conv', inputs: ['x', 'w'], outputs: ['y'] }],
      inputs: [{ name: 'x', type: 1, dims: [1, 1, 2, 2, 2, 2] }],
      outputs: [{ name: 'y', type: 1, dims: null }],
      initializers: [{ name: 'w', type: 1, dims: [1, 1, 1, 1, 1, 1], values: [1] }],
    });
    expectOnnxError(() => load(conv4d).run(undefined, { loss: 'none' }), 'UNSUPPORTED_FEATURE', /4-D Conv/, /1-D to 3-D windows/);
  });
  test('external data missing, then provided', () => {
    expectOnnxError(() => load(bytesOf('errors', 'external_data.onnx')), 'EXTERNAL_DATA', /initializer 'fc\.weight'/, /"weights\.bin"/, /externalData/);
    const model = load(bytesOf('errors', 'external_data.onnx'), { externalData: { 'weights.bin': bytesOf('errors', 'weights.bin') } });
    assert.deepEqual(model.parameters.get('fc.weight')!.toArray().map((v) => Math.round(v * 10)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11]);
    expectOnnxError(() => load(bytesOf('errors', 'external_data.onnx'), { externalData: { 'weights.bin': new Uint8Array(8) } }), 'EXTERNAL_DATA', /has 8 bytes/);
  });
  test('a dimension that cannot be resolved', () => {
    const model = load(bytesOf('errors', 'unresolved_dim.onnx'));
    expectOnnxError(() => model.run(), 'UNRESOLVED_DIM', /input 'x'/, /'n_heads'/, /options\.dims/);
  });
  test('an int64 value that does not fit int32', () => {
    const model = load(bytesOf('errors', 'int64_overflow.onnx'));
    expectOnnxError(() => model.run(undefined, { loss: 'none' }), 'VALUE_OUT_OF_RANGE', /1099511627776/, /int32/, /Constant/);
  });
  test('a value nobody defines', () => {
    expectOnnxError(() => load(bytesOf('errors', 'undefined_value.onnx')), 'INVALID_MODEL', /'ghost'/);
  });
});

describe('bad feeds and failing nodes', () => {
  test('unknown input, wrong shape, wrong values, initializer fed', () => {
    const model = load(bytesOf('mlp_sigmoid_op13_loss.onnx'));
    expectOnnxError(() => model.run({ image: tensorFrom([1], [1]) }), 'BAD_INPUT', /unknown input 'image'/, /'x', 'targets'/);
    expectOnnxError(() => model.run({ x: tensorFrom(new Array(12).fill(0), [3, 4]) }), 'BAD_INPUT', /input 'x' must have shape \[8, 16\]/);
    expectOnnxError(() => model.run({ targets: tensorFrom(new Array(8).fill(0.5), [8]) }), 'BAD_INPUT', /integers/);
    expectOnnxError(() => model.run({ 'layers.0.weight': tensorFrom([1], [1]) }), 'BAD_INPUT', /initializer/);
  });
  test('inconsistent symbolic dims between inputs', () => {
    const model = load(bytesOf('gpt_op13_loss.onnx'));
    expectOnnxError(() => model.run({ idx: tensorFrom(new Array(8).fill(1), [2, 4], 'int32'), targets: tensorFrom(new Array(9).fill(1), [3, 3], 'int32') }),
      'BAD_INPUT', /symbolic dim 'batch'/);
  });
  test('a node that fails names itself, its module and its inputs', () => {
    // Sequence 9 > block_size 8: the position-embedding Gather reads past its table.
    const model = load(bytesOf('gpt_dynamo_op17.onnx'));
    const e = expectOnnxError(() => model.run(undefined, { seq: 9 }), 'NODE_FAILED', /module pos_emb/, /Gather/, /out of range/, /pos_emb\.weight: float32\[8, 32\]/);
    assert.equal(e.node?.modulePath, 'pos_emb');
  });
  test('a label out of range in the graph loss', () => {
    const model = load(bytesOf('mlp_sigmoid_op13_loss.onnx'));
    expectOnnxError(() => model.run({ targets: tensorFrom([0, 1, 2, 3, 4, 5, 6, 12], [8], 'int32') }), 'NODE_FAILED', /SoftmaxCrossEntropyLoss/, /target 12/);
  });
  test('bad loss options', () => {
    const model = load(bytesOf('cnn_op13.onnx'));
    expectOnnxError(() => model.run(undefined, { loss: 'graph' }), 'BAD_LOSS', /no scalar float output/);
    expectOnnxError(() => model.run(undefined, { loss: { kind: 'output', name: 'nope' } }), 'BAD_LOSS', /no value named 'nope'/);
    expectOnnxError(() => model.run(undefined, { loss: { kind: 'mse', target: tensorFrom([1, 2], [2]) } }), 'BAD_LOSS', /shape/);
  });
});
