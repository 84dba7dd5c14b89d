/**
 * GELU as exporters decompose it, differentiated as one op.
 *
 * The TorchScript exporter writes exact GELU as Div(x, √2) → Erf → Add 1 → Mul x → Mul 0.5 and GPT-2's tanh form as
 * Pow 3 → Mul 0.044715 → Add x → Mul √(2/π) → Tanh → Add 1 → Mul (0.5 x); the version converter writes Gelu as
 * x · (0.5 · (1 + erf(x/√2))). Differentiating such a chain node by node
 * costs 6-11 kernels and as many full-size temporaries per layer; GELU's own VJP (recordGeluOf) is one kernel.
 *
 * What changes and what does not: every node still runs forward as written, so every value of the run (module
 * paths, values, activation statistics) is bit for bit what it was. Only the backward changes: the chain's output
 * gets GELU's VJP from the chain's input, and the interior values are cut from the graph (no gradFn, requiresGrad
 * false). So the rewrite is only applied when nothing can ask for an interior gradient: no onValue hook (the
 * inspector and the trainer's anomaly watch hook every value), no retainGrad on an interior value, interior values
 * read by no node outside the chain and not graph outputs, constants that are scalars not requiring grad with the
 * values GELU needs, and float32 runs only (a float64 run is the gradient-check path and differentiates the graph's
 * own float32-rounded constants exactly). A caller who hooks an interior value after the run, without onValue or
 * retainGrad, gets no gradient there: the decision is made during the forward pass (the inspector and the trainer's
 * anomaly mode always pass onValue); `fuseActivations: false` turns it off.
 */
import { Tensor } from '../tensor';
import { shapeEquals } from '../shape';
import { recordGeluOf } from '../ops/elementwise';
import { OnnxGraph, OnnxNode } from './graph';

/** A matched chain: `output` is GELU of `input` if the `constants` hold their expected values at run time. */
export interface GeluChain {
  approximate: 'none' | 'tanh';
  input: string;
  output: string;
  /** Values computed inside the chain (cut from the backward graph when fused). */
  interior: string[];
  constants: { name: string; value: number }[];
}

/** Relative tolerance on a chain's constants: float32 roundings of √2, √(2/π) and 0.044715 are within 3e-8. */
const CONSTANT_TOLERANCE = 1e-6;

/** What a part of a chain matched: the nodes it spans, the constants it assumes and the value it starts from. */
interface Part {
  x: string;
  nodes: number[];
  constants: { name: string; value: number }[];
}

/** `a` then `b`, or null if either failed. */
const join = (a: Part | null, b: Part | null): Part | null =>
  a && b ? { x: b.x, nodes: [...a.nodes, ...b.nodes], constants: [...a.constants, ...b.constants] } : null;

/** Structural matching over one graph (pure: every function returns what it matched, or null). */
class Matcher {
  constructor(private readonly graph: OnnxGraph, private readonly live: Uint8Array, private readonly initializers: ReadonlySet<string>) {}

  /** The live top-level single-output node producing `value` with op `opType`. */
  producer(value: string, opType: string): OnnxNode | null {
    const i = this.graph.producers.get(value);
    if (i === undefined || this.live[i] !== 1) return null;
    const n = this.graph.nodes[i];
    return n.opType === opType && n.domain === '' && n.outputs.length === 1 ? n : null;
  }

  /** An initializer or a Constant node's output: checked against its expected value at run time. */
  isConstant(value: string): boolean {
    return this.initializers.has(value) || this.producer(value, 'Constant') !== null;
  }

  /** `value` = op(x, c), or op(c, x) for Add and Mul, with c expected to equal `constant`. */
  withConstant(value: string, opType: string, constant: number): Part | null {
    const n = this.producer(value, opType);
    if (!n || n.inputs.length !== 2) return null;
    const [a, b] = n.inputs;
    const part = (x: string, c: string): Part => ({ x, nodes: [n.index], constants: [{ name: c, value: constant }] });
    if (this.isConstant(b) && !this.isConstant(a)) return part(a, b);
    if (this.isConstant(a) && !this.isConstant(b) && (opType === 'Mul' || opType === 'Add')) return part(b, a);
    return null;
  }

  /** 1 + erf(x / √2) or 1 + tanh(√(2/π) (x + 0.044715 x³)). */
  onePlus(value: string): (Part & { approximate: 'none' | 'tanh' }) | null {
    const add = this.withConstant(value, 'Add', 1);
    if (!add) return null;
    const erf = this.producer(add.x, 'Erf');
    if (erf) {
      const arg = this.withConstant(erf.inputs[0], 'Div', Math.SQRT2) ?? this.withConstant(erf.inputs[0], 'Mul', Math.SQRT1_2);
      const r = join(join(add, { x: erf.inputs[0], nodes: [erf.index], constants: [] }), arg);
      return r && { ...r, approximate: 'none' };
    }
    const tanh = this.producer(add.x, 'Tanh');
    if (!tanh) return null;
    const scaled = join(join(add, { x: tanh.inputs[0], nodes: [tanh.index], constants: [] }), this.withConstant(tanh.inputs[0], 'Mul', Math.sqrt(2 / Math.PI)));
    const sum = scaled && this.producer(scaled.x, 'Add');
    if (!scaled || !sum || sum.inputs.length !== 2) return null;
    for (const [x, cubic] of [[sum.inputs[0], sum.inputs[1]], [sum.inputs[1], sum.inputs[0]]]) {
      const cube = this.withConstant(cubic, 'Mul', 0.044715);
      const pow = cube && this.withConstant(cube.x, 'Pow', 3);
      const r = join(join(scaled, { x, nodes: [sum.index], constants: [] }), join(cube, pow));
      if (r && r.x === x) return { ...r, approximate: 'tanh' };
    }
    return null;
  }

  /** Chains ending at `last`: (x · (1 + f)) · 0.5 (erf export), (0.5 x) · (1 + f) (GPT-2) or x · (0.5 (1 + f)), operands in either order. */
  geluAt(last: OnnxNode): (Part & { approximate: 'none' | 'tanh' }) | null {
    if (last.opType !== 'Mul' || last.domain !== '' || last.inputs.length !== 2 || last.outputs.length !== 1) return null;
    const [p, q] = last.inputs;
    for (const [half, other] of [[q, p], [p, q]]) {
      // (x · (1 + f)) · 0.5
      const prod = this.isConstant(half) ? this.producer(other, 'Mul') : null;
      if (prod && prod.inputs.length === 2) {
        for (const [x, f] of [[prod.inputs[0], prod.inputs[1]], [prod.inputs[1], prod.inputs[0]]]) {
          const r = this.onePlus(f);
          if (r && r.x === x) return { ...r, nodes: [last.index, prod.index, ...r.nodes], constants: [{ name: half, value: 0.5 }, ...r.constants] };
        }
      }
      // (0.5 · x) · (1 + f)
      const scaled = this.withConstant(half, 'Mul', 0.5);
      const r = scaled ? this.onePlus(other) : null;
      if (scaled && r && r.x === scaled.x) return { ...r, nodes: [last.index, ...scaled.nodes, ...r.nodes], constants: [...scaled.constants, ...r.constants] };
      // x · (0.5 · (1 + f)) (the version converter's decomposition of Gelu)
      const halved = this.withConstant(half, 'Mul', 0.5);
      const inner = halved ? this.onePlus(halved.x) : null;
      if (halved && inner && inner.x === other) return { ...inner, nodes: [last.index, ...halved.nodes, ...inner.nodes], constants: [...halved.constants, ...inner.constants] };
    }
    return null;
  }
}

/**
 * The GELU chains of a graph by the index of their last node (a Mul). Structural only: constants are checked
 * when the chain is fused (fuseGelu), where their values are known.
 */
export function findGeluChains(graph: OnnxGraph, live: Uint8Array, outputNames: ReadonlySet<string>): Map<number, GeluChain> {
  const matcher = new Matcher(graph, live, new Set(graph.initializerNames));
  const chains = new Map<number, GeluChain>();
  for (const last of graph.nodes) {
    if (live[last.index] !== 1) continue;
    const m = matcher.geluAt(last);
    if (!m) continue;
    const inside = new Set(m.nodes);
    if (inside.size !== m.nodes.length) continue;
    const interior = m.nodes.filter((i) => i !== last.index).map((i) => graph.nodes[i].outputs[0]);
    // Interior values: read only inside the chain, not graph outputs, and not the chain's input.
    const ok = !interior.includes(m.x) && interior.every((v) => !outputNames.has(v) && (graph.consumers.get(v) ?? []).every((c) => inside.has(c.node)));
    if (ok) chains.set(last.index, { approximate: m.approximate, input: m.x, output: last.outputs[0], interior, constants: m.constants });
  }
  return chains;
}

/**
 * Gives the chain's output GELU's VJP from its input and cuts the interior values from the backward graph, when
 * the run's values confirm the chain (constants, shapes, float32). `value` looks up a value of the run. Returns
 * whether it did. The forward values are not touched.
 */
export function fuseGelu(chain: GeluChain, value: (name: string) => Tensor | undefined): boolean {
  const x = value(chain.input);
  const out = value(chain.output);
  if (!x || !out || !out.gradFn || !x.requiresGrad || x.dtype !== 'float32' || out.dtype !== 'float32' || !shapeEquals(x.shape, out.shape)) return false;
  for (const c of chain.constants) {
    const t = value(c.name);
    if (!t || t.size !== 1 || t.requiresGrad || !t.hasHostData) return false;
    if (!(Math.abs(t.data[0] - c.value) <= CONSTANT_TOLERANCE * Math.abs(c.value))) return false;
  }
  const interior = chain.interior.map(value);
  // Each interior value must be a tensor of its own, made by its node in this run (never x or the output itself,
  // which a handler returning its input unchanged could make it): only those are cut from the graph.
  const own = new Set(interior);
  if (own.size !== interior.length || interior.some((t) => !t || t === x || t === out || !t.gradFn || t.retainsGrad || t.hooks.length > 0)) return false;
  recordGeluOf(out, x, chain.approximate);
  for (const t of interior) {
    t!.gradFn = null;
    t!.requiresGrad = false;
  }
  return true;
}
