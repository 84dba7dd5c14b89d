/**
 * The fuzz child: runs cases (files named on the command line) through a full inspection, one after the
 * other, and prints one JSON line when it starts a case and one with its outcome. The parent (harness.ts)
 * enforces time and memory limits and restarts a child that died, so a crash or hang is pinned to its case.
 */
import * as fs from 'node:fs';
import * as path from 'node:path';
import { diagnose, inspectOnnx, OnnxImportError } from '../../engine';
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
    return { outcome: 'ok', message: badLoss || badGrad ? `flagged: ${findings.find((f) => f.kind === 'non-finite')!.message}` : report.noGradient ?? `loss ${report.loss.value}` };
  } catch (e) {
    return classifyError(e, OnnxImportError);
  }
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
