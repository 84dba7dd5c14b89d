/**
 * The fuzz child: runs cases (files named on the command line) through a full inspection, one after the
 * other, and prints one JSON line when it starts a case and one with its outcome. The parent (harness.ts)
 * enforces time and memory limits and restarts a child that died, so a crash or hang is pinned to its case.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { diagnose, inspectOnnx, loadOnnx, OnnxImportError } from '../../engine';
import { loadOrt, maxExcess, ORT_OPTIONS, OrtTensor, ortTensor } from '../ort';
import { classifyError, FuzzOutcome } from './classify';

/** Tensor memory a case may take: small, so budget refusals are exercised and the child stays far below its heap limit. */
const BUDGET = 256 * 2 ** 20;

function emit(o: object): void {
  fs.writeSync(1, `${JSON.stringify(o)}\n`);
}

async function runCase(file: string): Promise<{ outcome: FuzzOutcome; message: string }> {
  const bytes = new Uint8Array(fs.readFileSync(file));
  try {
    const report = await inspectOnnx(bytes, path.basename(file), { batch: 2, sequenceLength: 8, memoryBudget: BUDGET });
    const findings = diagnose(report);
    const flagged = findings.some((f) => f.kind === 'non-finite');
    const badLoss = !Number.isFinite(report.loss.value);
    const badGrad = report.modules.some((m) => m.gradNorm !== null && !Number.isFinite(m.gradNorm));
    if ((badLoss || badGrad) && !flagged) return { outcome: 'silent', message: `loss ${report.loss.value}, a non-finite value with no finding` };
    const reference = await compareWithOrt(bytes, flagged);
    if (reference.differs) return { outcome: 'silent', message: reference.note };
    return { outcome: 'ok', message: `${badLoss || badGrad ? `flagged: ${findings.find((f) => f.kind === 'non-finite')!.message}` : report.noGradient ?? `loss ${report.loss.value}`}; ${reference.note}` };
  } catch (e) {
    return classifyError(e, OnnxImportError);
  }
}

/** Graphs above this many nodes are not compared (onnxruntime-web's session setup would dominate the run). */
const MAX_COMPARED_NODES = 2000;
const RANDOM_OPS = new Set(['RandomNormal', 'RandomNormalLike', 'RandomUniform', 'RandomUniformLike', 'Bernoulli', 'Multinomial']);

/**
 * The forward outputs of a model the engine ran, against onnxruntime-web on the same inputs. A
 * difference beyond float32 tolerance is a silent wrong number, unless ours is a NaN/Inf the report flags
 * (`flagged`) or onnxruntime-web overflows float32 where the engine does not (beyondFloat32); a model
 * onnxruntime refuses is noted (the engine may be more lenient, e.g. with value_info it does not need).
 */
async function compareWithOrt(bytes: Uint8Array, flagged: boolean): Promise<{ differs: boolean; note: string }> {
  const model = loadOnnx(bytes);
  if (model.graph.nodes.length > MAX_COMPARED_NODES) return { differs: false, note: 'not compared (big graph)' };
  // Random ops draw from different generators in the two runtimes.
  const random = model.graph.nodes.find((n) => RANDOM_OPS.has(n.opType) || (n.opType === 'Dropout' && n.inputs.length >= 3 && n.inputs[2] !== ''));
  if (random) return { differs: false, note: `not compared (${random.opType} is random)` };
  const ours = model.run(undefined, { loss: 'none', seed: 3, batch: 2, seq: 8, memoryBudget: BUDGET });
  const ort = loadOrt();
  let session;
  try {
    session = await ort.InferenceSession.create(bytes, ORT_OPTIONS);
  } catch (e) {
    return { differs: false, note: `onnxruntime-web refuses it (${firstLine(e)})` };
  }
  try {
    const feeds: Record<string, OrtTensor> = {};
    for (const spec of model.inputs) {
      const t = ours.inputs.get(spec.name)!;
      try {
        feeds[spec.name] = ortTensor({ dims: [...t.shape], dataType: spec.dataType }, t);
      } catch (e) {
        return { differs: false, note: `not compared (${firstLine(e)})` };
      }
    }
    let theirs: Record<string, OrtTensor>;
    try {
      theirs = await session.run(feeds);
    } catch (e) {
      return { differs: false, note: `onnxruntime-web fails to run it (${firstLine(e)})` };
    }
    for (const o of model.outputs) {
      const mine = ours.outputs.get(o.name);
      const ref = theirs[o.name];
      if (!mine || !ref) continue;
      if (ref.dims.join() !== mine.shape.join()) return { differs: true, note: `output '${o.name}' has shape [${mine.shape}] here but [${ref.dims}] in onnxruntime-web` };
      const ex = maxExcess(mine.data, ref.data, 1e-4, 1e-3);
      if (ex > 0) {
        // A NaN/Inf of ours that the report flags is not shown as a number (the finding says why it may not be).
        const nonFinite = flagged && Array.prototype.some.call(mine.data, (v: number) => !Number.isFinite(v));
        const excuse = nonFinite ? 'the engine\'s output has NaN/Inf values, which the report flags' : beyondFloat32(bytes, model, ours, o.name);
        if (excuse) return { differs: false, note: `output '${o.name}' differs from onnxruntime-web (excess ${ex.toExponential(2)}): ${excuse}` };
        return { differs: true, note: `output '${o.name}' differs from onnxruntime-web (excess ${ex.toExponential(2)})` };
      }
    }
    return { differs: false, note: 'onnxruntime-web agrees' };
  } finally {
    await session.release();
  }
}

/** Above this magnitude a float32 square overflows (2^64): a LayerNorm's variance, a norm, a dot product. */
const SQUARE_SAFE = 2 ** 64;

/**
 * Why a float32 disagreement with onnxruntime-web is not a wrong number of ours, or null. A byte mutant
 * can leave a weight near float32's limit (1e37): onnxruntime and the ONNX reference then overflow inside
 * an op (LayerNormalization's variance becomes Inf) and PyTorch gives NaN, while the engine, which
 * accumulates such reductions in float64, keeps the exact value. Excused only when a weight is beyond
 * SQUARE_SAFE and the engine's float32 output equals its own float64 run (so float32 rounding in the
 * engine is not the cause); the float64 run is checked against the reference in the engine's tests.
 */
function beyondFloat32(bytes: Uint8Array, model: ReturnType<typeof loadOnnx>, ours: ReturnType<ReturnType<typeof loadOnnx>['run']>, output: string): string | null {
  let biggest = 0;
  for (const t of [...model.parameters.values(), ...model.buffers.values()]) {
    if (t.dtype !== 'float32' && t.dtype !== 'float64') continue;
    for (let i = 0; i < t.data.length; i++) biggest = Math.max(biggest, Math.abs(Number(t.data[i])));
  }
  if (!(biggest > SQUARE_SAFE)) return null;
  const wide = loadOnnx(bytes, { dtype: 'float64' }).run(Object.fromEntries(ours.inputs), { loss: 'none', seed: 3, batch: 2, seq: 8, memoryBudget: BUDGET });
  const exact = wide.outputs.get(output);
  const mine = ours.outputs.get(output)!;
  if (!exact || maxExcess(mine.data, exact.data, 1e-4, 1e-3) > 0) return null;
  return `a weight of magnitude ${biggest.toExponential(2)} overflows float32 arithmetic in onnxruntime-web; the engine's float32 output equals its float64 run`;
}

function firstLine(e: unknown): string {
  return (e instanceof Error ? e.message : String(e)).split('\n')[0].replace(/^.*ERROR_MESSAGE: /, '').slice(0, 200);
}

async function main(): Promise<void> {
  for (const file of process.argv.slice(2)) {
    emit({ start: file });
    const t0 = performance.now();
    const { outcome, message } = await runCase(file);
    emit({ file, outcome, message: message.slice(0, 600), ms: Math.round(performance.now() - t0) });
  }
}

void main();
