/**
 * Terminal demo of the engine: runs forward and backward on the gold fixture models and prints
 * each parameter's gradient norm on a log scale, showing vanishing gradients in the deep sigmoid
 * MLP next to the healthy residual one. Usage: npm run demo [-- model ...]
 */
import { backward } from '../engine';
import { FIXTURE_MODELS, loadModelFixture, loadTensors } from '../test/fixture_models';

function norm(values: ArrayLike<number>): number {
  let s = 0;
  for (let i = 0; i < values.length; i++) s += values[i] * values[i];
  return Math.sqrt(s);
}

/** A bar whose length is proportional to log10 of the norm, from 1e-10 (empty) to 1e2 (full). */
function logBar(value: number, width = 36): string {
  const t = value > 0 ? (Math.log10(value) + 10) / 12 : 0;
  const n = Math.max(0, Math.min(width, Math.round(t * width)));
  return '█'.repeat(n) + '·'.repeat(width - n);
}

const names = process.argv.slice(2).length ? process.argv.slice(2) : ['mlp_sigmoid', 'mlp_residual'];
for (const name of names) {
  const build = FIXTURE_MODELS[name];
  if (!build) {
    console.error(`unknown model "${name}"; choose from ${Object.keys(FIXTURE_MODELS).join(', ')}`);
    process.exit(2);
  }
  const fixture = loadModelFixture(name);
  const loaded = loadTensors(fixture, 'float32');
  const start = performance.now();
  const run = build(loaded, fixture.config);
  backward(run.loss);
  const ms = performance.now() - start;
  console.log(`\n${name}: loss ${run.loss.item().toFixed(4)}, forward + backward ${ms.toFixed(1)} ms (float32, ${fixture.trainable.length} parameter tensors)`);
  for (const p of fixture.trainable) {
    const g = loaded.params[p].grad;
    const n = g ? norm(g.data) : 0;
    console.log(`  ${p.padEnd(28)} ‖∇‖ ${n.toExponential(2).padStart(9)}  ${logBar(n)}`);
  }
}
