/**
 * The ONNX project's backend node test suite (../shared/onnx-backend-data/node: 1,802 one-op models with
 * inputs and expected outputs) run through the importer, with ONNX's own comparison rule
 * (onnx/backend/test/runner: same shape, same element kind, allclose with rtol 1e-3 and atol 1e-7, rtol
 * 2^-6 for bfloat16 outputs; LOOSER_ATOL names the few cases given a looser atol, and why). Each case ends
 * in one status:
 * - pass: every output of every data set matches;
 * - unsupported: the importer refuses it with an UNSUPPORTED_* error (the message names the op, dtype or
 *   feature);
 * - wrong: it ran and an output differs (shape, kind or values): a wrong number, never acceptable;
 * - crash: any other error (a clear error for a case the importer should run, or a bug);
 * - not-comparable: the expected output is a random draw no other generator can reproduce.
 * Shared by test/onnx_node.test.ts and scripts/onnx-node-suite.mjs.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import {
  loadOnnx, OnnxImportError, decodeOnnxTensor, onnxTensorToEngine, OnnxTensorProto, Tensor, supportedOnnxOps, decodeOnnxModel, isClaimedOnnxValueType, OnnxModel,
  OnnxValueProto, OnnxRunValue, OnnxSequence, OnnxOptional, StringTensor, decodeOnnxValue, onnxStringTensor, onnxValueToEngine, describeOnnxValue, OnnxValueSpec, OnnxRunResult,
} from '../engine';
import { TensorOnDeviceError, readTensors } from '../engine/tensor';
import { DeviceBackend } from '../engine/backend/device';
import { deviceScope, dispatchCounts } from '../engine/backend/dispatch';
import { getBackend, setBackend } from '../engine/backend/registry';
import { isDifferentiableSlot } from '../engine/onnx/opset';
import type { NodeProto as OnnxNodeProto } from '../engine/onnx/proto';

export type NodeStatus = 'pass' | 'unsupported' | 'wrong' | 'crash' | 'not-comparable';

export interface NodeCaseResult {
  name: string;
  status: NodeStatus;
  /** Op types of the model's nodes (default domain, or domain:op). */
  ops: string[];
  /** Graph inputs and outputs whose type the importer does not claim (string tensors, sequences, optionals...). */
  unclaimedTypes: string[];
  /** Value kinds of the graph inputs and outputs that are not engine tensors: 'sequence', 'optional', 'string'. */
  valueKinds: string[];
  detail: string;
  ms: number;
}

/**
 * Cases whose expected output is numpy's random dropout mask (no other generator can match it); the
 * zero-ratio ones keep everything and are compared.
 */
const NOT_COMPARABLE = /^test_training_dropout(_default|_default_mask|_mask)?$/;

/**
 * Cases compared with a looser absolute tolerance than ONNX's default 1e-7, and why. The DFT cases' expected
 * outputs come from a float32 FFT, whose rounding error scales with the largest output (tens to thousands
 * here), not with each element: where the exact value is 0, test_dft_inverse stores 1.9e-7 (the float64
 * transform of the same inputs gives 7e-16). onnxruntime fails these cases at 1e-7 too (onnx/onnx#4798) and
 * runs its DFT tests with per-test tolerances (microsoft/onnxruntime#11775). rtol stays 1e-3.
 */
const LOOSER_ATOL: readonly (readonly [RegExp, number])[] = [[/^test_dft_inverse(_opset19)?$/, 1e-5]];
const DEFAULT_ATOL = 1e-7;

const UNSUPPORTED_CODES = new Set(['UNSUPPORTED_OP', 'UNSUPPORTED_FEATURE', 'UNSUPPORTED_DTYPE']);

// float, float16, double, bfloat16, the float8 variants, float4e2m1, float8e8m0
const FLOAT_TYPES = new Set([1, 10, 11, 16, 17, 18, 19, 20, 23, 24]);
const BFLOAT16 = 16;
const BOOL = 9;
const STRING = 8;

/** The engine kind an ONNX element type must come back as. */
function kindOfType(dataType: number): 'float' | 'int' | 'bool' {
  return FLOAT_TYPES.has(dataType) ? 'float' : dataType === BOOL ? 'bool' : 'int';
}
function kindOfTensor(t: Tensor): 'float' | 'int' | 'bool' {
  return t.dtype === 'float32' || t.dtype === 'float64' ? 'float' : t.dtype === 'bool' ? 'bool' : 'int';
}

/** numpy.testing.assert_allclose: |a - e| <= atol + rtol |e|, NaN equal to NaN, equal infinities equal. */
function firstMismatch(actual: ArrayLike<number>, expected: ArrayLike<number>, rtol: number, atol: number): string | null {
  for (let i = 0; i < expected.length; i++) {
    const a = actual[i];
    const e = expected[i];
    if (Number.isNaN(a) && Number.isNaN(e)) continue;
    if (a === e) continue;
    if (!(Math.abs(a - e) <= atol + rtol * Math.abs(e))) return `element ${i}: ${a} vs expected ${e}`;
  }
  return null;
}

/** Op types of the nodes, those of If / Loop / Scan bodies included (a case claims every op that may run). */
function opTypes(nodes: readonly OnnxNodeProto[]): string[] {
  return nodes.flatMap((n) => [
    n.domain && n.domain !== 'ai.onnx' ? `${n.domain}:${n.opType}` : n.opType,
    ...n.attribute.flatMap((a) => [...(a.g ? [a.g] : []), ...a.graphs]).flatMap((g) => opTypes(g.node)),
  ]);
}

function dataFiles(dir: string, prefix: string): string[] {
  return fs.readdirSync(dir).filter((f) => f.startsWith(prefix) && f.endsWith('.pb')).sort((a, b) => Number(a.match(/\d+/)![0]) - Number(b.match(/\d+/)![0]));
}

function readProto(file: string): OnnxTensorProto {
  return decodeOnnxTensor(new Uint8Array(fs.readFileSync(file)));
}

/**
 * A stored value as ONNX's runner reads it (onnx/backend/test/runner: the file's message type follows the
 * graph's declared type): a TensorProto (numbers or strings), a SequenceProto or an OptionalProto.
 */
type Expected =
  | { kind: 'tensor'; proto: OnnxTensorProto; tensor: Tensor }
  | { kind: 'string'; value: StringTensor }
  | { kind: 'sequence'; items: Expected[] }
  | { kind: 'optional'; value: Expected | null };

function expectedTensor(proto: OnnxTensorProto, what: string): Expected {
  return proto.dataType === STRING ? { kind: 'string', value: onnxStringTensor(proto, what) } : { kind: 'tensor', proto, tensor: onnxTensorToEngine(proto, 'float64', what) };
}

function expectedValue(v: OnnxValueProto, what: string): Expected {
  if (v.otherCount || v.optionals.length || (v.kind === 'sequence' && v.sequences.length)) throw new OnnxImportError('UNSUPPORTED_DTYPE', `${what}: a ${v.kind} of maps, sparse tensors or nested values`);
  const items = [...v.tensors.map((t, i) => expectedTensor(t, `${what} element ${i}`)), ...v.sequences.map((q) => expectedValue(q, what))];
  return v.kind === 'sequence' ? { kind: 'sequence', items } : { kind: 'optional', value: items[0] ?? null };
}

/** Reads a stored input or output of the declared type `spec`. */
function readStored(file: string, spec: OnnxValueSpec, what: string): Expected {
  const bytes = new Uint8Array(fs.readFileSync(file));
  if (spec.valueKind === 'sequence' || spec.valueKind === 'optional') return expectedValue(decodeOnnxValue(bytes, spec.valueKind), what);
  return expectedTensor(decodeOnnxTensor(bytes), what);
}

/** A stored input as a feed (floats in the model's dtype). */
function feedOf(file: string, spec: OnnxValueSpec, model: OnnxModel, what: string): OnnxRunValue {
  const bytes = new Uint8Array(fs.readFileSync(file));
  if (spec.valueKind === 'sequence' || spec.valueKind === 'optional') return onnxValueToEngine(decodeOnnxValue(bytes, spec.valueKind), model.dtype, what);
  const p = decodeOnnxTensor(bytes);
  return p.dataType === STRING ? onnxStringTensor(p, what) : onnxTensorToEngine(p, model.dtype, what);
}

function errorResult(e: unknown, where: string): { status: NodeStatus; detail: string } {
  if (e instanceof OnnxImportError && UNSUPPORTED_CODES.has(e.code)) return { status: 'unsupported', detail: `${e.code}: ${e.message}` };
  const code = e instanceof OnnxImportError ? `${e.code}: ` : '';
  return { status: 'crash', detail: `${where}: ${code}${(e as Error).message ?? String(e)}` };
}

interface DataSet {
  name: string;
  feeds: Record<string, OnnxRunValue>;
  expected: Expected[];
  /** Absolute tolerance of the comparison (DEFAULT_ATOL unless LOOSER_ATOL names the case). */
  atol: number;
}

/** A case loaded and its data sets read, or the result that ends it early (decode, load or data failure). */
type PreparedCase =
  | { done: NodeCaseResult }
  | { model: OnnxModel; sets: DataSet[]; result: (status: NodeStatus, detail: string) => NodeCaseResult };

function prepareCase(dir: string): PreparedCase {
  const name = path.basename(dir);
  const started = performance.now();
  const bytes = new Uint8Array(fs.readFileSync(path.join(dir, 'model.onnx')));
  let ops: string[] = [];
  let unclaimedTypes: string[] = [];
  let valueKinds: string[] = [];
  const result = (status: NodeStatus, detail: string): NodeCaseResult => ({ name, status, ops, unclaimedTypes, valueKinds, detail, ms: performance.now() - started });
  const done = (status: NodeStatus, detail: string) => ({ done: result(status, detail) });
  try {
    const proto = decodeOnnxModel(bytes);
    ops = [...new Set(opTypes(proto.graph!.node))];
    unclaimedTypes = [...proto.graph!.input, ...proto.graph!.output]
      .filter((v) => v.type && !isClaimedOnnxValueType(v.type))
      .map((v) => v.name);
    valueKinds = [...new Set([...proto.graph!.input, ...proto.graph!.output].flatMap((v) => {
      const kind = v.type?.kind ?? 'unknown';
      if (kind === 'tensor' || kind === 'unknown') return v.type?.elemType === STRING ? ['string'] : [];
      return [kind];
    }))].sort();
  } catch (e) {
    return done('crash', `decode: ${(e as Error).message}`);
  }
  if (NOT_COMPARABLE.test(name)) return done('not-comparable', 'the expected output is numpy\'s random dropout mask');
  let model: OnnxModel;
  try {
    model = loadOnnx(bytes);
  } catch (e) {
    const r = errorResult(e, 'load');
    return done(r.status, r.detail);
  }
  const sets: DataSet[] = [];
  for (const set of fs.readdirSync(dir).filter((d) => d.startsWith('test_data_set_')).sort()) {
    const setDir = path.join(dir, set);
    const feeds: Record<string, OnnxRunValue> = {};
    try {
      // Inputs bind by name when the file names one of the graph inputs, else by position.
      dataFiles(setDir, 'input_').forEach((f, i) => {
        const file = path.join(setDir, f);
        // (A sequence or optional input's file is not a TensorProto: it binds by position.)
        const positional = model.inputs[i];
        const name = positional && positional.valueKind !== 'tensor' ? '' : readProto(file).name;
        const spec = (name && model.inputs.find((s) => s.name === name)) || positional;
        if (!spec) throw new Error(`${set}/${f} has no matching graph input`);
        feeds[spec.name] = feedOf(file, spec, model, `${set}/${f}`);
      });
      const expected = dataFiles(setDir, 'output_').map((f, i) => {
        const spec = model.outputs[i];
        if (!spec) throw new Error(`${set}/${f} has no matching graph output`);
        return readStored(path.join(setDir, f), spec, `${set}/${f}`);
      });
      sets.push({ name: set, feeds, expected, atol: LOOSER_ATOL.find(([re]) => re.test(name))?.[1] ?? DEFAULT_ATOL });
    } catch (e) {
      const r = errorResult(e, `${set} data`);
      return done(r.status, r.detail);
    }
  }
  return { model, sets, result };
}

/** The first output of a data set that does not match (ONNX's comparison rule), or null. */
function compareOutputs(model: OnnxModel, set: DataSet, run: Pick<OnnxRunResult, 'outputs' | 'otherValues'>): { status: NodeStatus; detail: string } | null {
  for (let i = 0; i < model.outputs.length; i++) {
    const outName = model.outputs[i].name;
    const mine = run.outputs.get(outName) ?? run.otherValues.get(outName)?.value ?? null;
    const want = set.expected[i];
    if (!want) return { status: 'crash', detail: `${set.name}: no stored value for output ${i} '${outName}'` };
    const bad = compareValue(mine, want, `${set.name} output ${i} '${outName}'`, set.atol);
    if (bad) return { status: 'wrong', detail: bad };
  }
  return null;
}

/** Where `mine` differs from the stored value (kind, shape, element kind, values), or null. */
function compareValue(mine: OnnxRunValue | null, want: Expected, where: string, atol: number): string | null {
  if (want.kind === 'sequence') {
    if (!(mine instanceof OnnxSequence)) return `${where}: ${describeOnnxValue(mine)} vs an expected sequence`;
    if (mine.length !== want.items.length) return `${where}: a sequence of ${mine.length} vs ${want.items.length} expected`;
    for (let k = 0; k < want.items.length; k++) {
      const bad = compareValue(mine.items[k], want.items[k], `${where} element ${k}`, atol);
      if (bad) return bad;
    }
    return null;
  }
  if (want.kind === 'optional') {
    if (!(mine instanceof OnnxOptional)) return `${where}: ${describeOnnxValue(mine)} vs an expected optional`;
    if ((mine.value === null) !== (want.value === null)) return `${where}: ${describeOnnxValue(mine)} vs an expected ${want.value ? 'non-empty' : 'empty'} optional`;
    return want.value ? compareValue(mine.value, want.value, `${where} value`, atol) : null;
  }
  const shape = want.kind === 'string' ? want.value.shape : want.tensor.shape;
  if (!(mine instanceof Tensor || mine instanceof StringTensor)) return `${where}: ${describeOnnxValue(mine)} vs an expected tensor`;
  if (mine.shape.join() !== shape.join()) return `${where}: shape [${mine.shape}] vs expected [${shape}]`;
  if (want.kind === 'string') {
    if (!(mine instanceof StringTensor)) return `${where}: ${describeOnnxValue(mine)} vs an expected string tensor`;
    const k = want.value.data.findIndex((v, j) => v !== mine.data[j]);
    return k < 0 ? null : `${where}: element ${k}: ${JSON.stringify(mine.data[k])} vs expected ${JSON.stringify(want.value.data[k])}`;
  }
  if (!(mine instanceof Tensor)) return `${where}: a string tensor vs an expected ${kindOfType(want.proto.dataType)} tensor`;
  const kind = kindOfType(want.proto.dataType);
  if (kindOfTensor(mine) !== kind) return `${where}: ${mine.dtype} vs an expected ${kind} tensor`;
  const rtol = want.proto.dataType === BFLOAT16 ? 2 ** -6 : 1e-3;
  const bad = firstMismatch(mine.data, want.tensor.data, rtol, atol);
  return bad ? `${where}: ${bad}` : null;
}

function atolNote(sets: readonly DataSet[]): string {
  const atol = sets[0]?.atol ?? DEFAULT_ATOL;
  return atol === DEFAULT_ATOL ? '' : ` at atol ${atol} (LOOSER_ATOL)`;
}

/** Runs one node-suite case directory. */
export function runNodeCase(dir: string): NodeCaseResult {
  const c = prepareCase(dir);
  if ('done' in c) return c.done;
  for (const set of c.sets) {
    let outputs: OnnxRunResult;
    try {
      outputs = c.model.run(set.feeds, { loss: 'none' });
    } catch (e) {
      const r = errorResult(e, `${set.name} run`);
      return c.result(r.status, r.detail);
    }
    const bad = compareOutputs(c.model, set, outputs);
    if (bad) return c.result(bad.status, bad.detail);
  }
  return c.result('pass', `${c.sets.length} data set(s) match${atolNote(c.sets)}`);
}

/**
 * Where a case runs under a device backend (WebGPU; tests use test/fakeDevice.ts):
 * - device: every float32 kernel ran on the device and the outputs match;
 * - host-values: an op read values of a device tensor (TensorOnDeviceError): under WebGPU the whole run
 *   repeats on the host backend (webview/runWithFallback.ts), so the numbers are the host's;
 * (a double model runs on the host by design, the device being float32: here it runs in float32, so its op
 * is tried on the device too);
 * - or the host statuses (unsupported, wrong, crash, not-comparable).
 */
export type DeviceStatus = NodeStatus | 'device' | 'host-values';

export interface DeviceCaseResult extends Omit<NodeCaseResult, 'status'> {
  status: DeviceStatus;
  kernels: { device: number; folded: number; host: number };
}

/**
 * Runs one case on the active device backend `device`. Float inputs of slots that carry gradients are
 * device-only tensors, as values computed by earlier ops are in a real model, so an op that reads their
 * values is found out; the other float inputs (scales, bounds...) stay on the host, as the constants
 * they are in exported models.
 */
export async function runNodeCaseOnDevice(dir: string, device: DeviceBackend): Promise<DeviceCaseResult> {
  dispatchCounts(true);
  const withKernels = (r: NodeCaseResult, status: DeviceStatus = r.status): DeviceCaseResult => ({ ...r, status, kernels: dispatchCounts(true) });
  const c = prepareCase(dir);
  if ('done' in c) return withKernels(c.done);
  // A double model runs on the host by design; here it runs in float32 so its op is tried on the device too.
  const double = c.model.dtype === 'float64';
  for (const set of c.sets) {
    try {
      const bad = await deviceScope(async () => {
        const feeds: Record<string, OnnxRunValue> = {};
        for (const [name, t] of Object.entries(set.feeds)) {
          if (!(t instanceof Tensor)) {
            feeds[name] = t; // sequences, optionals, strings: host values, as a WebGPU run gets them fed
            continue;
          }
          const slots = c.model.graph.nodes.flatMap((n) => n.inputs.map((x, slot) => (x === name ? isDifferentiableSlot(n.opType, slot) : false)));
          const float = t.dtype === 'float32' || t.dtype === 'float64';
          feeds[name] = float && slots.some(Boolean) ? Tensor.onDevice(device.device.upload(Float32Array.from(t.data)), device.device, t.shape, 'float32') : t;
        }
        const run = c.model.run(feeds, { loss: 'none', dtype: 'float32' });
        await readTensors([...run.outputs.values(), ...[...run.otherValues.values()].flatMap((v) => tensorsIn(v.value))]);
        return compareOutputs(c.model, set, run);
      });
      if (bad) return withKernels(c.result(bad.status, bad.detail));
    } catch (e) {
      const cause = e instanceof OnnxImportError && e.cause instanceof TensorOnDeviceError ? e.cause : e;
      const at = e instanceof OnnxImportError && e.node ? e.node.opType : '?';
      if (cause instanceof TensorOnDeviceError) return withKernels(c.result('pass', `${at} needs host values: ${cause.message}`), 'host-values');
      const r = errorResult(e, `${set.name} run`);
      return withKernels(c.result(r.status, r.detail));
    }
  }
  return withKernels(c.result('pass', `${c.sets.length} data set(s) match${atolNote(c.sets)}${double ? ' (a double model, run in float32)' : ''}`), 'device');
}

/** The engine tensors inside a sequence or optional (to read them back from a device). */
function tensorsIn(v: OnnxRunValue | null): Tensor[] {
  if (v instanceof Tensor) return [v];
  if (v instanceof OnnxSequence) return v.items.flatMap(tensorsIn);
  if (v instanceof OnnxOptional) return tensorsIn(v.value);
  return [];
}

/** Case directories of the suite, sorted. */
export function nodeCaseDirs(root: string): string[] {
  return fs.readdirSync(root).sort().map((d) => path.join(root, d)).filter((d) => fs.existsSync(path.join(d, 'model.onnx')));
}

export interface NodeSuiteSummary {
  results: NodeCaseResult[];
  counts: Record<NodeStatus, number>;
  /**
   * Claimed cases that do not pass: every op of the model is in supportedOnnxOps and every graph input and
   * output has a type the importer claims (isClaimedOnnxValueType: tensors of float, integer or bool elements).
   */
  claimedFailures: NodeCaseResult[];
}

export function runNodeSuite(root: string, filter?: (name: string) => boolean): NodeSuiteSummary {
  const claimed = new Set(supportedOnnxOps());
  const results = nodeCaseDirs(root).filter((d) => !filter || filter(path.basename(d))).map(runNodeCase);
  const counts: Record<NodeStatus, number> = { pass: 0, unsupported: 0, wrong: 0, crash: 0, 'not-comparable': 0 };
  for (const r of results) counts[r.status]++;
  const claimedFailures = results.filter((r) => r.status !== 'pass' && r.status !== 'not-comparable' && r.ops.length > 0 && r.ops.every((o) => claimed.has(o)) && r.unclaimedTypes.length === 0);
  return { results, counts, claimedFailures };
}

export function formatNodeTable(results: readonly NodeCaseResult[]): string {
  const w = Math.max(0, ...results.map((r) => r.name.length));
  return results.map((r) => `${r.status.toUpperCase().padEnd(14)} ${r.name.padEnd(w)}  ${r.detail}`).join('\n');
}

/** Every case on the device backend `device` (made active for the run), one after the other. */
export async function runNodeSuiteOnDevice(root: string, device: DeviceBackend, filter?: (name: string) => boolean): Promise<DeviceCaseResult[]> {
  const previous = getBackend();
  setBackend(device);
  try {
    const results: DeviceCaseResult[] = [];
    for (const dir of nodeCaseDirs(root).filter((d) => !filter || filter(path.basename(d)))) results.push(await runNodeCaseOnDevice(dir, device));
    return results;
  } finally {
    setBackend(previous);
  }
}
