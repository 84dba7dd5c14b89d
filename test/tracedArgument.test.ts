/**
 * A forward argument with a default that the TorchScript exporter turned into a graph input (transformers'
 * logits_to_keep: an anonymous int64 scalar a Gather indexes the hidden states with, so the graph computes one
 * position's logits) is named in a warning on the model: the numbers shown are that graph's, not PyTorch's.
 */
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { diagnose, inspectOnnx, loadOnnx } from '../engine';
import { DataType } from '../engine/onnx/proto';
import { buildModel } from './onnx_builder';

/** ids [2, 4] -> Gather(table) -> hidden [2, 4, 3] -> Gather(axis 1, `pick`) -> logits [2, 3]. */
function lmHead(pick: string) {
  return buildModel({
    opset: 17,
    producer: 'pytorch',
    inputs: [{ name: 'input_ids', type: DataType.INT64, dims: [2, 4] }, { name: pick, type: DataType.INT64, dims: [] }],
    outputs: [{ name: 'logits', dims: [2, 3] }],
    initializers: [{ name: 'wte.weight', type: DataType.FLOAT, dims: [5, 3], values: Array.from({ length: 15 }, (_, i) => Math.sin(i)) }],
    nodes: [
      { op: 'Gather', inputs: ['wte.weight', 'input_ids'], outputs: ['hidden'], name: '/wte/Gather' },
      { op: 'Gather', inputs: ['hidden', pick], outputs: ['logits'], attrs: { axis: 1 }, name: '/Gather' },
    ],
  });
}

test('an anonymous int64 scalar input a Gather indexes with (legacy export of logits_to_keep): a warning on the model, in Problems', async () => {
  const model = loadOnnx(lmHead('onnx::Gather_2'));
  const notes = model.exportNotes.filter((n) => n.kind === 'traced-argument');
  assert.equal(notes.length, 1);
  assert.equal(notes[0].modulePath, '');
  assert.equal(notes[0].restored, false);
  assert.match(notes[0].message, /'onnx::Gather_2'.*logits_to_keep.*positionally/);
  const report = await inspectOnnx(lmHead('onnx::Gather_2'), 'lm.onnx', { attentionSample: -1 });
  const findings = diagnose(report).filter((f) => f.kind === 'export-lost');
  assert.equal(findings.length, 1);
  assert.equal(findings[0].severity, 'warning');
  assert.match(findings[0].message, /onnx::Gather_2/);
});

test('the same input named logits_to_keep is named too; a scalar the user named is their choice, no warning', () => {
  assert.equal(loadOnnx(lmHead('logits_to_keep')).exportNotes.filter((n) => n.kind === 'traced-argument').length, 1);
  assert.equal(loadOnnx(lmHead('position')).exportNotes.filter((n) => n.kind === 'traced-argument').length, 0);
});
