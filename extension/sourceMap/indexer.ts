/**
 * Indexes a PyTorch model file with tree-sitter: classes (nested ones too), the submodules and
 * parameters each assigns in `__init__` (also inside nn.Sequential / ModuleList / ModuleDict, built
 * literally, by comprehensions, or by append loops), the calls in forward, attention sites, functional
 * activations, `# gradlens: watch` comments and register_hook calls. Lines are 0-based, columns are
 * UTF-16 offsets. Never throws on odd input: syntax errors leave a partial tree, and what parses is indexed.
 */
import type { Tree } from 'web-tree-sitter';
import type { PythonParser } from './parser';
import { CONTAINER_TYPES, PARAMETER_CTORS, canonicalName, findClass, isTorchModuleClass } from './classes';
import {
  Node,
  compact,
  contains,
  field,
  keywordArg,
  keywordArgs,
  lastIdentifier,
  lineRange,
  namePattern,
  named,
  positionalArgs,
  rangeOf,
  selfAttribute,
  spanOf,
  stringValue,
  unparen,
  walk,
} from './syntax';
import type {
  ActivationSite,
  AttentionSite,
  AttributeAssignment,
  CallSite,
  ChildOrigin,
  ClassInfo,
  ConstructedValue,
  ContainerChild,
  ContainerType,
  ImportBinding,
  SourceIndex,
  SyntaxProblem,
  WatchSite,
} from './types';

// ------------------------------------------------------------------------------------------ context

interface FileCtx {
  lines: string[];
  classes: ClassInfo[];
  imports: ImportBinding[];
}

interface LocalDef {
  /** The assignment statement (position for "last assignment before"). */
  assign: Node;
  value: Node;
}

type MutationOp = 'append' | 'extend' | 'add_module' | 'item' | 'update' | 'insert';

interface Mutation {
  /** `self.<attr>` or a local name. */
  target: string;
  op: MutationOp;
  node: Node;
  value: Node | null;
  key: Node | null;
}

interface FnCtx {
  file: FileCtx;
  fn: Node;
  method: string;
  cls: ClassInfo;
  params: Set<string>;
  locals: Map<string, LocalDef[]>;
  /** Assignment statements per target (`name` or `self.<attr>`): a new value ends what mutations apply to the old one. */
  defs: Map<string, Node[]>;
  mutations: Mutation[];
}

const LOOPS = new Set(['for_statement', 'while_statement', 'list_comprehension', 'generator_expression', 'set_comprehension', 'dictionary_comprehension']);
const CONDITIONALS = new Set(['if_statement', 'elif_clause', 'else_clause', 'try_statement', 'except_clause', 'conditional_expression', 'match_statement', 'case_clause', 'boolean_operator']);
const MUTATORS: Record<string, MutationOp> = { append: 'append', extend: 'extend', add_module: 'add_module', register_module: 'add_module', update: 'update', insert: 'insert' };
const ACTIVATIONS = new Set([
  'relu', 'relu6', 'gelu', 'sigmoid', 'tanh', 'silu', 'swish', 'mish', 'elu', 'selu', 'celu', 'leaky_relu', 'softplus',
  'softsign', 'hardswish', 'hardsigmoid', 'hardtanh', 'glu', 'logsigmoid', 'prelu', 'rrelu', 'tanhshrink', 'softshrink', 'hardshrink',
]);
const HOOK_METHODS = new Set(['register_hook', 'register_full_backward_hook', 'register_backward_hook', 'register_full_backward_pre_hook', 'register_post_accumulate_grad_hook']);
const WATCH = /#\s*gradlens\s*:\s*watch\b/i;
const MAX_DEPTH = 8;

function targetKey(n: Node | null): string | null {
  if (!n) return null;
  const u = unparen(n);
  const attr = selfAttribute(u);
  if (attr) return `self.${attr}`;
  return u.type === 'identifier' ? u.text : null;
}

function funcName(fn: Node): string {
  return field(fn, 'name')?.text ?? '?';
}

/** The class-level method (or module-level function) around `n`, skipping nested functions. */
function enclosingFunction(n: Node, stop?: Node): Node | null {
  let found: Node | null = null;
  for (let p = n.parent; p && p.id !== stop?.id; p = p.parent) {
    if (p.type === 'function_definition') found = p;
    if (p.type === 'class_definition') break;
  }
  return found;
}

function enclosingClassNode(n: Node): Node | null {
  for (let p = n.parent; p; p = p.parent) if (p.type === 'class_definition') return p;
  return null;
}

// ---------------------------------------------------------------------------------------- values

function baseValue(n: Node, ctx: FnCtx): ConstructedValue {
  return { kind: 'value', expression: compact(n.text), span: spanOf(n), range: rangeOf(n, ctx.file.lines), children: [] };
}

function lastLocal(ctx: FnCtx, name: string, before: Node): LocalDef | undefined {
  const defs = ctx.locals.get(name);
  if (!defs) return undefined;
  let hit: LocalDef | undefined;
  for (const d of defs) if (d.assign.startIndex < before.startIndex && !contains(d.assign, before)) hit = d;
  return hit;
}

function containerTypeOf(callee: string, ctx: FnCtx): ContainerType | null {
  const last = lastIdentifier(callee);
  if (!CONTAINER_TYPES.has(last)) return null;
  if (findClass(ctx.file.classes, ctx.file.imports, callee, ctx.cls)) return null;
  return last as ContainerType;
}

/** What `n` constructs. */
function analyzeValue(input: Node, ctx: FnCtx, depth = 0): ConstructedValue {
  const n = unparen(input);
  const base = baseValue(n, ctx);
  if (depth > MAX_DEPTH) return base;
  if (n.type === 'call') {
    const fnNode = field(n, 'function');
    const callee = compact(fnNode?.text ?? '');
    const className = lastIdentifier(callee);
    if (className === 'deepcopy' || className === 'copy') {
      const inner = positionalArgs(n)[0];
      if (inner) {
        const v = analyzeValue(inner, ctx, depth + 1);
        return { ...v, expression: base.expression, span: base.span, range: base.range, note: `a copy of ${compact(inner.text)}` };
      }
    }
    const container = containerTypeOf(callee, ctx);
    if (container) return analyzeContainer(n, container, base, callee, ctx, depth);
    const inFile = findClass(ctx.file.classes, ctx.file.imports, callee, ctx.cls);
    if (!inFile && PARAMETER_CTORS.has(className)) return { ...base, kind: 'parameter', callee, className };
    const canonical = canonicalName(callee, ctx.file.imports);
    const kind = inFile || isTorchModuleClass(canonical) || /^[A-Z]/.test(className) ? 'module' : 'value';
    return kind === 'module' ? { ...base, kind, callee, className } : { ...base, callee };
  }
  if (n.type === 'identifier') {
    const local = lastLocal(ctx, n.text, n);
    if (local) {
      const v = analyzeValue(local.value, ctx, depth + 1);
      if (v.kind === 'container' && v.containerType) {
        const b = ChildBuilder.from(v);
        applyMutations(b, n.text, local.assign, ctx, depth + 1, mappingMode(v.containerType));
        return { ...v, children: b.children, openEnded: b.open || undefined };
      }
      return v;
    }
    if (ctx.params.has(n.text)) return { ...base, note: `passed in as argument '${n.text}' of ${ctx.method}` };
    return base;
  }
  if (n.type === 'conditional_expression') {
    const first = named(n)[0];
    if (first) return { ...analyzeValue(first, ctx, depth + 1), note: `one branch of \`${base.expression}\`` };
  }
  return base;
}

const mappingMode = (t: ContainerType): 'sequence' | 'mapping' => (t === 'ModuleDict' || t === 'ParameterDict' ? 'mapping' : 'sequence');

class ChildBuilder {
  children: ContainerChild[] = [];
  /** Next positional index, or null once the count is unknown. */
  next: number | null = 0;
  open = false;

  static from(v: ConstructedValue): ChildBuilder {
    const b = new ChildBuilder();
    b.children = [...v.children];
    b.open = !!v.openEnded;
    b.next = v.children.some((c) => c.key === '*') || v.openEnded ? null : v.children.length;
    return b;
  }

  indexed(n: Node, origin: ChildOrigin, ctx: FnCtx, depth: number): void {
    const key = this.next === null ? '*' : String(this.next++);
    this.children.push({ ...analyzeValue(n, ctx, depth + 1), key, origin });
  }

  any(n: Node, origin: ChildOrigin, ctx: FnCtx, depth: number, cycle?: ContainerChild['cycle']): void {
    this.children.push({ ...analyzeValue(n, ctx, depth + 1), key: '*', origin, ...(cycle ? { cycle } : {}) });
  }

  named(key: string, n: Node, origin: ChildOrigin, ctx: FnCtx, depth: number): void {
    this.children.push({ ...analyzeValue(n, ctx, depth + 1), key, origin });
  }
}

function analyzeContainer(call: Node, type: ContainerType, base: ConstructedValue, callee: string, ctx: FnCtx, depth: number): ConstructedValue {
  const b = new ChildBuilder();
  const args = positionalArgs(call);
  if (type === 'Sequential') {
    if (args.length === 1 && isMappingLike(args[0], ctx, depth)) expandMapping(args[0], b, ctx, depth, 'ordered-dict');
    else {
      for (const a of args) {
        if (a.type === 'list_splat') {
          const inner = named(a)[0];
          if (inner) expandSequence(inner, b, ctx, depth, 'positional');
        } else b.indexed(a, 'positional', ctx, depth);
      }
    }
  } else if (type === 'ModuleList' || type === 'ParameterList') {
    const src = args[0] ?? keywordArg(call, 'modules') ?? keywordArg(call, 'values') ?? keywordArg(call, 'parameters');
    if (src) expandSequence(src, b, ctx, depth, 'positional');
  } else {
    const src = args[0] ?? keywordArg(call, 'modules') ?? keywordArg(call, 'parameters');
    if (src) expandMapping(src, b, ctx, depth, 'dict');
  }
  return { ...base, kind: 'container', containerType: type, callee, className: type, children: b.children, openEnded: b.open || undefined };
}

function isMappingLike(input: Node, ctx: FnCtx, depth: number): boolean {
  const n = unparen(input);
  if (n.type === 'dictionary' || n.type === 'dictionary_comprehension') return true;
  if (n.type === 'call') return /^(OrderedDict|dict)$/.test(lastIdentifier(field(n, 'function')?.text ?? ''));
  if (n.type === 'identifier' && depth < MAX_DEPTH) {
    const local = lastLocal(ctx, n.text, n);
    return !!local && isMappingLike(local.value, ctx, depth + 1);
  }
  return false;
}

/** Elements of a list-like expression, appended to `b` in order. */
function expandSequence(input: Node, b: ChildBuilder, ctx: FnCtx, depth: number, origin: ChildOrigin): void {
  const n = unparen(input);
  if (depth > MAX_DEPTH) {
    b.open = true;
    b.next = null;
    return;
  }
  switch (n.type) {
    case 'list':
    case 'tuple':
    case 'expression_list':
      for (const e of named(n)) {
        if (e.type === 'list_splat') {
          const inner = named(e)[0];
          if (inner) expandSequence(inner, b, ctx, depth + 1, origin);
        } else b.indexed(e, origin, ctx, depth);
      }
      return;
    case 'list_comprehension':
    case 'generator_expression': {
      const body = field(n, 'body') ?? named(n)[0];
      if (body) b.any(body, 'comprehension', ctx, depth);
      b.next = null;
      return;
    }
    case 'binary_operator': {
      const op = field(n, 'operator')?.text;
      const left = field(n, 'left');
      const right = field(n, 'right');
      if (op === '+' && left && right) {
        expandSequence(left, b, ctx, depth + 1, origin);
        expandSequence(right, b, ctx, depth + 1, origin);
        return;
      }
      if (op === '*' && left && right) {
        const seq = [left, right].map(unparen).find((s) => s.type === 'list' || s.type === 'tuple');
        if (seq) {
          for (const e of named(seq)) b.any(e, 'repeat', ctx, depth);
          b.next = null;
          return;
        }
      }
      break;
    }
    case 'call': {
      const callee = lastIdentifier(field(n, 'function')?.text ?? '');
      const arg = positionalArgs(n)[0];
      if ((callee === 'list' || callee === 'tuple') && arg) {
        expandSequence(arg, b, ctx, depth + 1, origin);
        return;
      }
      break;
    }
    case 'identifier': {
      const local = lastLocal(ctx, n.text, n);
      if (local) {
        expandSequence(local.value, b, ctx, depth + 1, origin);
        applyMutations(b, n.text, local.assign, ctx, depth + 1, 'sequence', n);
        return;
      }
      break;
    }
  }
  b.open = true;
  b.next = null;
}

/** Entries of a mapping-like expression (dict literal, OrderedDict, list of pairs), appended to `b`. */
function expandMapping(input: Node, b: ChildBuilder, ctx: FnCtx, depth: number, origin: ChildOrigin): void {
  const n = unparen(input);
  if (depth > MAX_DEPTH) {
    b.open = true;
    return;
  }
  switch (n.type) {
    case 'dictionary':
      for (const e of named(n)) {
        if (e.type === 'pair') {
          const key = stringValue(field(e, 'key'));
          const value = field(e, 'value');
          if (!value) continue;
          if (key !== null) b.named(key, value, origin, ctx, depth);
          else b.any(value, origin, ctx, depth);
        } else b.open = true;
      }
      return;
    case 'dictionary_comprehension': {
      const value = field(field(n, 'body'), 'value');
      if (value) b.any(value, 'comprehension', ctx, depth);
      return;
    }
    case 'list':
    case 'tuple':
      for (const e of named(n)) {
        const pair = unparen(e);
        const parts = named(pair);
        if ((pair.type === 'tuple' || pair.type === 'list') && parts.length >= 2) {
          const key = stringValue(parts[0]);
          if (key !== null) b.named(key, parts[1], origin, ctx, depth);
          else b.any(parts[1], origin, ctx, depth);
        } else b.open = true;
      }
      return;
    case 'list_comprehension':
    case 'generator_expression': {
      const body = unparen(field(n, 'body') ?? named(n)[0]!);
      const parts = named(body);
      if ((body.type === 'tuple' || body.type === 'list') && parts.length >= 2) b.any(parts[1], 'comprehension', ctx, depth);
      else b.open = true;
      return;
    }
    case 'call': {
      const callee = lastIdentifier(field(n, 'function')?.text ?? '');
      if (callee === 'OrderedDict' || callee === 'dict') {
        const arg = positionalArgs(n)[0];
        if (arg) expandMapping(arg, b, ctx, depth + 1, origin);
        for (const kw of keywordArgs(n)) b.named(kw.name, kw.value, origin, ctx, depth);
        return;
      }
      break;
    }
    case 'identifier': {
      const local = lastLocal(ctx, n.text, n);
      if (local) {
        expandMapping(local.value, b, ctx, depth + 1, origin);
        applyMutations(b, n.text, local.assign, ctx, depth + 1, 'mapping', n);
        return;
      }
      break;
    }
  }
  b.open = true;
}

/** Loops and conditionals between `n` and the function, that do not also contain `def`. */
function scopesOf(n: Node, ctx: FnCtx, def: Node): { loops: Node[]; conditionals: Node[] } {
  const loops: Node[] = [];
  const conditionals: Node[] = [];
  for (let p = n.parent; p && p.id !== ctx.fn.id; p = p.parent) {
    if (contains(p, def)) break;
    if (LOOPS.has(p.type)) loops.push(p);
    else if (CONDITIONALS.has(p.type)) conditionals.push(p);
  }
  return { loops, conditionals };
}

/**
 * Adds what `target` receives after `def` (appends, extends, add_module, item assignments, update),
 * in source order. An unconditional loop appending k modules per iteration after s fixed ones gives
 * `'*'` children with a cycle (index i -> (i - s) % k); anything less regular gives plain `'*'`.
 */
function applyMutations(b: ChildBuilder, target: string, def: Node, ctx: FnCtx, depth: number, mode: 'sequence' | 'mapping', before?: Node): void {
  // Until the target is assigned again, and (for a list copied into a container) until it is used.
  const next = (ctx.defs.get(target) ?? []).find((d) => d.startIndex > def.startIndex);
  const limit = Math.min(next?.startIndex ?? Infinity, before?.startIndex ?? Infinity);
  const muts = ctx.mutations.filter((m) => m.target === target && m.node.startIndex >= def.endIndex && m.node.startIndex < limit);
  let i = 0;
  while (i < muts.length) {
    const m = muts[i];
    const { loops, conditionals } = scopesOf(m.node, ctx, def);
    if (loops.length === 0) {
      applyOne(b, m, conditionals.length > 0, ctx, depth, mode);
      i++;
      continue;
    }
    const outer = loops[loops.length - 1];
    const group: Mutation[] = [];
    while (i < muts.length && contains(outer, muts[i].node)) group.push(muts[i++]);
    const inner = loops[0];
    // Elements one iteration adds, when every iteration adds the same ones in the same order.
    const items: { node: Node; origin: ChildOrigin }[] = [];
    const regular =
      mode === 'sequence' &&
      b.next !== null &&
      group.every((g) => {
        const s = scopesOf(g.node, ctx, def);
        // Same innermost loop, and no condition inside the loops.
        if (s.loops[0]?.id !== inner.id || s.conditionals.some((c) => contains(outer, c)) || !g.value) return false;
        if (g.op === 'append') return items.push({ node: g.value, origin: 'append' }) > 0;
        const v = unparen(g.value);
        if (g.op === 'extend' && (v.type === 'list' || v.type === 'tuple') && named(v).every((e) => e.type !== 'list_splat')) {
          for (const e of named(v)) items.push({ node: e, origin: 'extend' });
          return true;
        }
        return false;
      });
    if (regular && items.length > 0) {
      const start = b.next!;
      items.forEach((it, phase) => b.any(it.node, it.origin, ctx, depth, { start, period: items.length, phase }));
      b.next = null;
    } else {
      for (const g of group) applyOne(b, g, true, ctx, depth, mode);
      b.next = null;
    }
  }
}

function applyOne(b: ChildBuilder, m: Mutation, any: boolean, ctx: FnCtx, depth: number, mode: 'sequence' | 'mapping'): void {
  switch (m.op) {
    case 'append':
      if (!m.value) return;
      if (any) {
        b.any(m.value, 'append', ctx, depth);
        b.next = null;
      } else b.indexed(m.value, 'append', ctx, depth);
      return;
    case 'insert':
      if (m.value) b.any(m.value, 'append', ctx, depth);
      b.next = null;
      return;
    case 'extend':
      if (!m.value) return;
      if (any) {
        const sub = new ChildBuilder();
        expandSequence(m.value, sub, ctx, depth + 1, 'extend');
        for (const c of sub.children) b.children.push({ ...c, key: '*', cycle: undefined });
        b.open ||= sub.open;
        b.next = null;
      } else expandSequence(m.value, b, ctx, depth + 1, 'extend');
      return;
    case 'add_module':
    case 'item': {
      if (!m.value) return;
      const key = m.key ? (stringValue(m.key) ?? (m.key.type === 'integer' ? m.key.text : null)) : null;
      const origin: ChildOrigin = m.op === 'item' ? 'item-assignment' : 'add_module';
      if (key !== null && !(any && m.op === 'item' && mode === 'sequence')) b.named(key, m.value, origin, ctx, depth);
      else b.any(m.value, origin, ctx, depth);
      return;
    }
    case 'update':
      if (m.value) expandMapping(m.value, b, ctx, depth + 1, 'dict');
      return;
  }
}

// ------------------------------------------------------------------------------- per function scan

function parameterNames(fn: Node): Set<string> {
  const out = new Set<string>();
  for (const p of named(field(fn, 'parameters'))) {
    const id = p.type === 'identifier' ? p : (field(p, 'name') ?? named(p).find((c) => c.type === 'identifier'));
    if (id) out.add(id.text);
  }
  return out;
}

/** Locals and container mutations of a function (nested classes skipped). */
function scanFunction(fn: Node, cls: ClassInfo, file: FileCtx): FnCtx {
  const ctx: FnCtx = { file, fn, method: funcName(fn), cls, params: parameterNames(fn), locals: new Map(), defs: new Map(), mutations: [] };
  const body = field(fn, 'body');
  if (!body) return ctx;
  walk(body, (n) => {
    if (n.type === 'class_definition') return false;
    if (n.type === 'assignment' && n.parent?.type !== 'assignment') {
      for (const { target, value, statement } of assignmentPairs(n)) {
        const t = unparen(target);
        const defKey = targetKey(t);
        if (defKey) ctx.defs.set(defKey, [...(ctx.defs.get(defKey) ?? []), statement]);
        if (t.type === 'identifier') {
          const list = ctx.locals.get(t.text) ?? [];
          list.push({ assign: statement, value });
          ctx.locals.set(t.text, list);
        } else if (t.type === 'subscript') {
          const key = targetKey(field(t, 'value'));
          if (key) ctx.mutations.push({ target: key, op: 'item', node: statement, value, key: field(t, 'subscript') });
        }
      }
    } else if (n.type === 'augmented_assignment' && field(n, 'operator')?.text === '+=') {
      const key = targetKey(field(n, 'left'));
      if (key) ctx.mutations.push({ target: key, op: 'extend', node: n, value: field(n, 'right'), key: null });
    } else if (n.type === 'call') {
      const f = field(n, 'function');
      const op = f?.type === 'attribute' ? MUTATORS[field(f, 'attribute')?.text ?? ''] : undefined;
      const key = op ? targetKey(field(f, 'object')) : null;
      if (op && key) {
        const args = positionalArgs(n);
        const twoArgs = op === 'add_module' || op === 'insert';
        ctx.mutations.push({ target: key, op, node: n, value: (twoArgs ? args[1] : args[0]) ?? null, key: op === 'add_module' ? (args[0] ?? null) : null });
      }
    }
  });
  return ctx;
}

/** `a = b = v` and `a, b = x, y` as (target, value) pairs; the statement is the outermost assignment. */
function assignmentPairs(assign: Node): { target: Node; value: Node; statement: Node }[] {
  const targets: Node[] = [];
  let cur: Node | null = assign;
  let value: Node | null = null;
  while (cur && cur.type === 'assignment') {
    const left = field(cur, 'left');
    if (left) targets.push(left);
    value = field(cur, 'right');
    cur = value;
  }
  if (!value) return [];
  const out: { target: Node; value: Node; statement: Node }[] = [];
  for (const t of targets) {
    const tu = unparen(t);
    const vu = unparen(value);
    if ((tu.type === 'pattern_list' || tu.type === 'tuple_pattern' || tu.type === 'tuple') && (vu.type === 'expression_list' || vu.type === 'tuple')) {
      const ts = named(tu);
      const vs = named(vu);
      if (ts.length === vs.length) ts.forEach((x, i) => out.push({ target: x, value: vs[i], statement: assign }));
      continue;
    }
    out.push({ target: t, value, statement: assign });
  }
  return out;
}

// ------------------------------------------------------------------------------------- attributes

function indexAttributes(fn: Node, ctx: FnCtx): AttributeAssignment[] {
  const out: AttributeAssignment[] = [];
  const body = field(fn, 'body');
  if (!body) return out;
  const lines = ctx.file.lines;
  walk(body, (n) => {
    if (n.type === 'class_definition') return false;
    if (n.type === 'assignment' && n.parent?.type !== 'assignment') {
      for (const { target, value, statement } of assignmentPairs(n)) {
        const name = selfAttribute(unparen(target));
        if (!name) continue;
        let v = analyzeValue(value, ctx);
        if (v.kind === 'container' && v.containerType) {
          const b = ChildBuilder.from(v);
          applyMutations(b, `self.${name}`, statement, ctx, 0, mappingMode(v.containerType));
          v = { ...v, children: b.children, openEnded: b.open || undefined };
        }
        out.push({ ...v, name, target: rangeOf(target, lines), method: ctx.method, via: 'assignment' });
      }
      return;
    }
    if (n.type !== 'call') return;
    const f = field(n, 'function');
    const args = positionalArgs(n);
    let via: AttributeAssignment['via'] | null = null;
    let nameNode: Node | undefined;
    let valueNode: Node | undefined;
    if (f?.type === 'attribute' && field(f, 'object')?.text === 'self') {
      const method = field(f, 'attribute')?.text;
      if (method === 'add_module' || method === 'register_module' || method === 'register_parameter' || method === 'register_buffer') {
        via = method;
        [nameNode, valueNode] = args;
      }
    } else if (f?.type === 'identifier' && f.text === 'setattr' && args[0]?.text === 'self') {
      via = 'setattr';
      [, nameNode, valueNode] = args;
    }
    if (!via || !nameNode) return;
    const literal = stringValue(nameNode);
    const pattern = literal === null ? namePattern(nameNode) : null;
    let v: ConstructedValue = valueNode ? analyzeValue(valueNode, ctx) : baseValue(n, ctx);
    if (via === 'register_parameter') v = { ...v, kind: 'parameter', className: v.className ?? 'Parameter' };
    if (via === 'register_buffer') v = { ...v, kind: 'buffer' };
    out.push({
      ...v,
      name: literal ?? compact(nameNode.text),
      ...(pattern ? { namePattern: pattern } : {}),
      ...(literal === null && !pattern ? { note: `name computed at run time: ${compact(nameNode.text)}` } : {}),
      target: rangeOf(n, lines),
      method: ctx.method,
      via,
    });
  });
  return out;
}

// ------------------------------------------------------------------------------------ calls, uses

type Elem = { chain: string[]; via: CallSite['via'] } | { tuple: (Elem | null)[] };

interface CallScan {
  bindings: Map<string, { chain: string[]; via: CallSite['via'] }>;
}

function subscriptKey(n: Node | null): string | 'slice' {
  if (!n) return '*';
  const u = unparen(n);
  if (u.type === 'integer') return u.text;
  if (u.type === 'unary_operator' && field(u, 'operator')?.text === '-' && field(u, 'argument')?.type === 'integer') return `-${field(u, 'argument')!.text}`;
  if (u.type === 'slice') return 'slice';
  const s = stringValue(u);
  return s ?? '*';
}

/** Path from `self` of an expression (`self.blocks[0].attn` -> blocks, 0, attn), through loop/alias bindings. */
function chainOf(input: Node | null, scan: CallScan | null): { chain: string[]; via: CallSite['via'] } | null {
  if (!input) return null;
  const n = unparen(input);
  if (n.type === 'identifier') {
    if (n.text === 'self') return { chain: [], via: 'direct' };
    const b = scan?.bindings.get(n.text);
    return b ? { chain: [...b.chain], via: b.via } : null;
  }
  if (n.type === 'attribute') {
    const obj = chainOf(field(n, 'object'), scan);
    const attr = field(n, 'attribute')?.text;
    return obj && attr ? { chain: [...obj.chain, attr], via: obj.via } : null;
  }
  if (n.type === 'call' && field(n, 'function')?.text === 'getattr') {
    // getattr(self, "branch0")
    const [objNode, nameNode] = positionalArgs(n);
    const obj = chainOf(objNode ?? null, scan);
    const name = stringValue(nameNode);
    return obj && name !== null ? { chain: [...obj.chain, name], via: obj.via } : null;
  }
  if (n.type === 'subscript') {
    const obj = chainOf(field(n, 'value'), scan);
    if (!obj || obj.chain.length === 0) return null;
    const key = subscriptKey(field(n, 'subscript'));
    if (key === 'slice') return obj;
    return { chain: [...obj.chain, key], via: obj.via === 'direct' ? 'index' : obj.via };
  }
  return null;
}

/** What iterating `n` yields. */
function elementOf(input: Node | null, scan: CallScan): Elem | null {
  if (!input) return null;
  const n = unparen(input);
  if (n.type === 'call') {
    const f = field(n, 'function');
    const args = positionalArgs(n);
    if (f?.type === 'identifier') {
      if (f.text === 'enumerate') return { tuple: [null, elementOf(args[0] ?? null, scan)] };
      if (f.text === 'zip') return { tuple: args.map((a) => elementOf(a, scan)) };
      if (['reversed', 'list', 'iter', 'tuple', 'sorted'].includes(f.text)) return elementOf(args[0] ?? null, scan);
      return null;
    }
    if (f?.type === 'attribute') {
      const method = field(f, 'attribute')?.text;
      const obj = field(f, 'object');
      if (method === 'items') {
        const v = elementOf(obj, scan);
        return { tuple: [null, v] };
      }
      if (method === 'values' || method === 'children') return elementOf(obj, scan);
    }
    return null;
  }
  const c = chainOf(n, scan);
  if (!c || c.chain.length === 0) return null;
  return { chain: [...c.chain, '*'], via: 'loop' };
}

function bindPattern(target: Node | null, elem: Elem | null, scan: CallScan): void {
  if (!target || !elem) return;
  const t = unparen(target);
  if (t.type === 'identifier') {
    if ('chain' in elem) scan.bindings.set(t.text, { chain: elem.chain, via: 'loop' });
    return;
  }
  if ((t.type === 'pattern_list' || t.type === 'tuple_pattern' || t.type === 'list_pattern' || t.type === 'tuple') && 'tuple' in elem) {
    named(t).forEach((x, i) => bindPattern(x, elem.tuple[i] ?? null, scan));
  }
}

function indexCalls(fn: Node, cls: ClassInfo, lines: readonly string[]): { calls: CallSite[]; uses: ClassInfo['uses'] } {
  const method = funcName(fn);
  const scan: CallScan = { bindings: new Map() };
  const calls: CallSite[] = [];
  const uses: ClassInfo['uses'] = [];
  const body = field(fn, 'body');
  if (!body) return { calls, uses };
  // Bindings first (source order, so nested loops see outer ones).
  walk(body, (n) => {
    if (n.type === 'class_definition') return false;
    if (n.type === 'for_statement' || n.type === 'for_in_clause') bindPattern(field(n, 'left'), elementOf(field(n, 'right'), scan), scan);
    if (n.type === 'assignment') {
      const left = field(n, 'left');
      const right = field(n, 'right');
      const r = right ? unparen(right) : null;
      if (left?.type === 'identifier' && r && (r.type === 'attribute' || r.type === 'subscript')) {
        const c = chainOf(r, scan);
        if (c && c.chain.length > 0) scan.bindings.set(left.text, { chain: c.chain, via: 'alias' });
      }
    }
  });
  walk(body, (n) => {
    if (n.type === 'class_definition') return false;
    if (n.type === 'call') {
      let f = field(n, 'function');
      if (f?.type === 'attribute' && field(f, 'attribute')?.text === 'forward') f = field(f, 'object');
      const c = chainOf(f, scan);
      if (c && c.chain.length > 0) calls.push({ ...rangeOf(n, lines), chain: c.chain, method, via: c.via });
      else if (f && /(^|\.)checkpoint$/.test(f.text)) {
        const target = chainOf(positionalArgs(n)[0] ?? null, scan);
        if (target && target.chain.length > 0) calls.push({ ...rangeOf(n, lines), chain: target.chain, method, via: 'checkpoint' });
      }
      return;
    }
    if (n.type === 'attribute' || n.type === 'subscript' || n.type === 'identifier') {
      const p = n.parent;
      // Only maximal chains: not the object of a longer attribute/subscript.
      const is = (m: Node | null) => !!m && m.id === n.id;
      if (p && p.type === 'attribute') return; // the object of a longer chain, or an attribute name
      if (p && p.type === 'subscript' && is(field(p, 'value'))) return;
      if (p && p.type === 'call' && is(field(p, 'function'))) return;
      if (p && (p.type === 'assignment' || p.type === 'augmented_assignment') && is(field(p, 'left'))) return;
      if (p && (p.type === 'for_statement' || p.type === 'for_in_clause')) return;
      const c = chainOf(n, scan);
      if (c && c.chain.length > 0) uses.push({ ...rangeOf(n, lines), chain: c.chain, method });
    }
  });
  return { calls, uses };
}

// --------------------------------------------------------------------------- attention, activations

function siteScan(scope: Node, lines: readonly string[], className: string | undefined, method: string | undefined, attention: AttentionSite[], activations: ActivationSite[], inInit: boolean): void {
  const visit = (n: Node, fnName: string | undefined): void => {
    for (const c of n.namedChildren) {
      if (!c) continue;
      if (c.type === 'class_definition') continue;
      const name = c.type === 'function_definition' && method === undefined ? funcName(c) : fnName;
      if (c.type === 'call') {
        const f = field(c, 'function');
        const callee = f?.text ?? '';
        const last = lastIdentifier(callee);
        const isSelfCall = f ? chainOf(f, null) !== null : false;
        const base = { ...rangeOf(c, lines), expression: compact(c.text), ...(className ? { className } : {}), ...(name ? { method: name } : {}) };
        if (!isSelfCall) {
          if (last === 'softmax') attention.push({ ...base, kind: 'softmax', role: 'call' });
          else if (last === 'scaled_dot_product_attention') attention.push({ ...base, kind: 'scaled_dot_product_attention', role: 'call' });
          else if (last === 'multi_head_attention_forward') attention.push({ ...base, kind: 'MultiheadAttention', role: 'call' });
          else if (last === 'MultiheadAttention') attention.push({ ...base, kind: 'MultiheadAttention', role: 'construct' });
          else if (last === 'Softmax') attention.push({ ...base, kind: 'softmax', role: 'construct' });
          else if (!inInit && name !== '__init__' && ACTIVATIONS.has(last) && f && (f.type === 'attribute' || f.type === 'identifier')) {
            activations.push({ ...rangeOf(c, lines), name: last, ...(className ? { className } : {}), ...(name ? { method: name } : {}) });
          }
        }
      }
      visit(c, name);
    }
  };
  visit(scope, method);
}

// ------------------------------------------------------------------------------------------ watches

const SIMPLE_STATEMENTS = /(_statement|^decorated_definition|^function_definition|^class_definition)$/;

function statementAt(root: Node, row: number, column: number): Node | null {
  let n: Node | null = root.descendantForPosition({ row, column });
  while (n && !SIMPLE_STATEMENTS.test(n.type)) n = n.parent;
  return n;
}

function assignmentTargets(stmt: Node): string[] {
  const inner = stmt.type === 'expression_statement' ? named(stmt)[0] : null;
  if (!inner || (inner.type !== 'assignment' && inner.type !== 'augmented_assignment')) return [];
  const out: string[] = [];
  let cur: Node | null = inner;
  while (cur && (cur.type === 'assignment' || cur.type === 'augmented_assignment')) {
    const left = field(cur, 'left');
    if (left) {
      const l = unparen(left);
      if (l.type === 'pattern_list' || l.type === 'tuple_pattern' || l.type === 'tuple' || l.type === 'list_pattern') out.push(...named(l).map((x) => compact(x.text)));
      else out.push(compact(l.text));
    }
    cur = field(cur, 'right');
  }
  return out;
}

interface Scope {
  className?: string;
  method?: string;
}

function scopeOf(n: Node, classByNode: Map<number, ClassInfo>): Scope {
  const fn = enclosingFunction(n);
  const cls = enclosingClassNode(fn ?? n);
  const info = cls ? classByNode.get(cls.id) : undefined;
  return { ...(info ? { className: info.qualifiedName } : {}), ...(fn ? { method: funcName(fn) } : {}) };
}

function indexWatches(root: Node, lines: readonly string[], classByNode: Map<number, ClassInfo>): WatchSite[] {
  const out: WatchSite[] = [];
  for (const comment of root.descendantsOfType('comment')) {
    if (!comment || !WATCH.test(comment.text)) continue;
    const row = comment.startPosition.row;
    const before = (lines[row] ?? '').slice(0, comment.startPosition.column);
    let stmt: Node | null = null;
    let valueRow = row;
    if (before.trim()) {
      stmt = statementAt(root, row, before.trimEnd().length - 1);
    } else {
      // A comment on its own line watches the next line of code.
      let r = row + 1;
      while (r < lines.length && (!lines[r].trim() || lines[r].trim().startsWith('#'))) r++;
      if (r >= lines.length) continue;
      valueRow = r;
      stmt = statementAt(root, r, lines[r].length - lines[r].trimStart().length);
    }
    const statementRow = stmt && stmt.type !== 'module' ? stmt.startPosition.row : valueRow;
    const header = stmt && /^(for|while|if|with|function_definition|class_definition|decorated_definition|try)/.test(stmt.type);
    const range = stmt && !header ? rangeOf(stmt, lines) : lineRange(valueRow, lines);
    const text = stmt && !header ? compact(stmt.text) : compact((lines[valueRow] ?? '').replace(/#.*$/, ''));
    out.push({
      line: row,
      kind: 'comment',
      targets: stmt && !header ? assignmentTargets(stmt) : [],
      expression: text,
      valueLine: stmt && !header ? statementRow : valueRow,
      range,
      ...scopeOf(comment, classByNode),
    });
  }
  for (const call of root.descendantsOfType('call')) {
    if (!call) continue;
    const f = field(call, 'function');
    const hookMethod = f?.type === 'attribute' ? field(f, 'attribute')?.text : undefined;
    if (!hookMethod || !HOOK_METHODS.has(hookMethod)) continue;
    const receiverNode = field(f, 'object');
    if (!receiverNode) continue;
    const receiver = compact(receiverNode.text);
    const row = call.startPosition.row;
    // The watched value is computed where the receiver was last assigned before the hook.
    const scopeNode = enclosingFunction(call) ?? root;
    let valueStmt: Node | null = null;
    walk(scopeNode, (n) => {
      if (n.startIndex >= call.startIndex) return false;
      if (n.type === 'expression_statement' && !contains(n, call) && assignmentTargets(n).includes(receiver)) valueStmt = n;
    });
    const stmt = valueStmt as Node | null;
    const chain = chainOf(receiverNode, null);
    out.push({
      line: row,
      kind: 'register_hook',
      targets: [receiver],
      expression: receiver,
      receiver,
      ...(chain && chain.chain.length > 0 ? { receiverChain: chain.chain } : {}),
      hookMethod,
      valueLine: stmt ? stmt.startPosition.row : row,
      range: stmt ? rangeOf(stmt, lines) : rangeOf(call, lines),
      ...scopeOf(call, classByNode),
    });
  }
  return out.sort((a, b) => a.line - b.line || a.range.column - b.range.column);
}

// ------------------------------------------------------------------------------------------ imports

function indexImports(root: Node): ImportBinding[] {
  const out: ImportBinding[] = [];
  const visit = (n: Node): void => {
    for (const c of n.namedChildren) {
      if (!c) continue;
      if (c.type === 'import_statement') {
        for (const name of c.childrenForFieldName('name')) {
          if (!name) continue;
          if (name.type === 'aliased_import') {
            const alias = field(name, 'alias')?.text;
            const dotted = field(name, 'name')?.text;
            if (alias && dotted) out.push({ name: alias, origin: dotted, line: c.startPosition.row });
          } else {
            const first = name.text.split('.')[0];
            out.push({ name: first, origin: first, line: c.startPosition.row });
          }
        }
      } else if (c.type === 'import_from_statement') {
        const module = field(c, 'module_name')?.text ?? '';
        for (const name of c.childrenForFieldName('name')) {
          if (!name) continue;
          if (name.type === 'aliased_import') {
            const alias = field(name, 'alias')?.text;
            const dotted = field(name, 'name')?.text;
            if (alias && dotted) out.push({ name: alias, origin: `${module}.${dotted}`, line: c.startPosition.row });
          } else out.push({ name: name.text, origin: `${module}.${name.text}`, line: c.startPosition.row });
        }
      } else visit(c);
    }
  };
  visit(root);
  return out.sort((a, b) => a.line - b.line);
}

// ------------------------------------------------------------------------------------------- errors

function indexErrors(root: Node, lines: readonly string[]): SyntaxProblem[] {
  const out: SyntaxProblem[] = [];
  if (!root.hasError) return out;
  const visit = (n: Node): void => {
    if (n.isMissing) {
      out.push({ ...rangeOf(n, lines), kind: 'missing', expected: n.type });
      return;
    }
    if (n.type === 'ERROR') out.push({ ...rangeOf(n, lines), kind: 'error' });
    for (const c of n.children) if (c && (c.hasError || c.isMissing || c.type === 'ERROR')) visit(c);
  };
  visit(root);
  return out;
}

// -------------------------------------------------------------------------------------- recovery

const RECOVER_ATTR = /^(\s*)self\.([A-Za-z_]\w*)\s*(?::[^=]+)?=(?!=)\s*(.*)$/;
const RECOVER_CALL = /self((?:\.[A-Za-z_]\w*)+)\s*\(/g;

/** The `def` a line belongs to, by indentation (for lines inside ERROR nodes, where the tree lost it). */
function textualMethod(lines: readonly string[], row: number, classLine: number): string | undefined {
  const indent = (lines[row] ?? '').length - (lines[row] ?? '').trimStart().length;
  for (let r = row; r > classLine; r--) {
    const m = /^(\s*)(?:async\s+)?def\s+(\w+)/.exec(lines[r] ?? '');
    if (m && m[1].length < indent) return m[2];
  }
  return undefined;
}

/** Attributes and calls that tree-sitter could only give as ERROR nodes, recovered from the text. */
function recoverFromErrors(classNode: Node, cls: ClassInfo, lines: readonly string[]): void {
  const rows = new Set<number>();
  for (const e of classNode.descendantsOfType('ERROR')) {
    if (!e || enclosingClassNode(e)?.id !== classNode.id) continue;
    for (let r = e.startPosition.row; r <= e.endPosition.row; r++) rows.add(r);
  }
  const assigned = new Set(cls.attributes.map((a) => a.target.line));
  const called = new Set(cls.calls.map((c) => c.line));
  for (const row of [...rows].sort((a, b) => a - b)) {
    const text = lines[row] ?? '';
    const method = textualMethod(lines, row, cls.line) ?? '?';
    const attr = RECOVER_ATTR.exec(text);
    if (attr && !assigned.has(row)) {
      const column = attr[1].length;
      const expression = attr[3].trim();
      const callee = /^([A-Za-z_][\w.]*)\s*\(/.exec(expression)?.[1];
      const className = callee ? lastIdentifier(callee) : undefined;
      const kind = className && CONTAINER_TYPES.has(className) ? 'container' : className && PARAMETER_CTORS.has(className) ? 'parameter' : className && /^[A-Z]/.test(className) ? 'module' : 'value';
      const exprColumn = text.indexOf(expression, column);
      cls.attributes.push({
        kind,
        expression: compact(expression),
        span: { line: row, column: exprColumn, endLine: row, endColumn: exprColumn + expression.length },
        range: { line: row, column: exprColumn, endColumn: exprColumn + expression.length },
        ...(callee ? { callee, className } : {}),
        ...(kind === 'container' ? { containerType: className as ContainerType, openEnded: true } : {}),
        children: [],
        note: 'recovered from a line with a syntax error',
        name: attr[2],
        target: { line: row, column, endColumn: column + 5 + attr[2].length },
        method,
        via: 'recovered',
      });
      continue;
    }
    if (method === '__init__' || called.has(row)) continue;
    for (const m of text.matchAll(RECOVER_CALL)) {
      const chain = m[1].slice(1).split('.');
      if (chain[chain.length - 1] === 'forward') chain.pop();
      cls.calls.push({ line: row, column: m.index ?? 0, endColumn: (m.index ?? 0) + m[0].length, chain, method, via: 'direct' });
    }
  }
}

// ------------------------------------------------------------------------------------------- classes

function methodsOf(classNode: Node): Node[] {
  const out: Node[] = [];
  for (const member of named(field(classNode, 'body'))) {
    const fn = member.type === 'decorated_definition' ? field(member, 'definition') : member;
    if (fn?.type === 'function_definition') out.push(fn);
  }
  return out;
}

function skeleton(node: Node, parent: ClassInfo | undefined, lines: readonly string[]): ClassInfo {
  const nameNode = field(node, 'name');
  const name = nameNode?.text ?? '?';
  const outer = node.parent?.type === 'decorated_definition' ? node.parent : node;
  const bases = named(field(node, 'superclasses'))
    .filter((b) => b.type !== 'keyword_argument' && b.type !== 'list_splat' && b.type !== 'dictionary_splat')
    .map((b) => compact(b.text));
  return {
    name,
    qualifiedName: parent ? `${parent.qualifiedName}.${name}` : name,
    ...(parent ? { parent: parent.qualifiedName } : {}),
    line: outer.startPosition.row,
    endLine: node.endPosition.row,
    nameRange: nameNode ? rangeOf(nameNode, lines) : rangeOf(node, lines),
    bases,
    isModule: false,
    methods: methodsOf(node).map((fn) => ({ name: funcName(fn), line: fn.startPosition.row, endLine: fn.endPosition.row })),
    attributes: [],
    calls: [],
    uses: [],
    attention: [],
    activations: [],
    watches: [],
  };
}

/** The class whose body directly holds `node` (through blocks and decorators only). */
function directParentClass(node: Node): Node | null {
  let p = node.parent;
  while (p && (p.type === 'block' || p.type === 'decorated_definition')) p = p.parent;
  return p?.type === 'class_definition' ? p : null;
}

function isModuleClass(cls: ClassInfo, file: FileCtx, seen: Set<string> = new Set()): boolean {
  if (seen.has(cls.qualifiedName)) return false;
  seen.add(cls.qualifiedName);
  for (const b of cls.bases) {
    const base = b.replace(/\[.*$/, '');
    const canonical = canonicalName(base, file.imports);
    if (/(^|\.)(Module|LightningModule)$/.test(canonical) || isTorchModuleClass(canonical)) return true;
    const scope = cls.parent ? file.classes.find((c) => c.qualifiedName === cls.parent) : undefined;
    const inFile = findClass(file.classes, file.imports, base, scope);
    if (inFile && inFile !== cls && isModuleClass(inFile, file, seen)) return true;
  }
  return false;
}

function indexClass(node: Node, cls: ClassInfo, file: FileCtx): void {
  const lines = file.lines;
  const methods = methodsOf(node);
  for (const fn of methods) {
    const ctx = scanFunction(fn, cls, file);
    cls.attributes.push(...indexAttributes(fn, ctx));
  }
  // __init__ first: the mapper prefers its assignments, and the order is otherwise the source's.
  cls.attributes.sort((a, b) => Number(b.method === '__init__') - Number(a.method === '__init__') || a.target.line - b.target.line || a.target.column - b.target.column);
  for (const fn of methods) {
    const name = funcName(fn);
    if (name !== '__init__') {
      const { calls, uses } = indexCalls(fn, cls, lines);
      cls.calls.push(...calls);
      cls.uses.push(...uses);
    }
    siteScan(fn, lines, cls.qualifiedName, name, cls.attention, cls.activations, name === '__init__');
  }
  recoverFromErrors(node, cls, lines);
  // Calling a MultiheadAttention / Softmax module held in an attribute (or a container element of one) computes attention there.
  for (const call of cls.calls) {
    const held = valueAtChain(cls, call.chain);
    if (held?.className === 'MultiheadAttention' || held?.className === 'Softmax') {
      const kind = held.className === 'MultiheadAttention' ? 'MultiheadAttention' : 'softmax';
      const text = compact((lines[call.line] ?? '').slice(call.column, call.endColumn));
      cls.attention.push({ line: call.line, column: call.column, endColumn: call.endColumn, kind, role: 'call', className: cls.qualifiedName, method: call.method, attribute: call.chain.join('.'), expression: text });
    }
  }
  for (const a of cls.attention) if (a.role === 'construct') a.attribute ??= cls.attributes.find((x) => x.target.line <= a.line && a.line <= x.span.endLine && x.span.line <= a.line)?.name;
  cls.attention.sort((a, b) => a.line - b.line || a.column - b.column);
}

/** The value a chain names inside one class (`['mixers', 'mha']`): attribute, then container elements. */
function valueAtChain(cls: ClassInfo, chain: readonly string[]): ConstructedValue | undefined {
  let cur: ConstructedValue | undefined = cls.attributes.find((a) => a.name === chain[0] && a.kind !== 'value');
  for (let i = 1; cur && i < chain.length; i++) {
    const key = chain[i];
    const children: ContainerChild[] = cur.children;
    if (key === '*') {
      // Any element: only when they are all of one class.
      const classes = new Set(children.map((c) => c.className));
      cur = classes.size === 1 ? children[0] : undefined;
    } else cur = children.find((c) => c.key === key) ?? children.find((c) => c.key === '*');
  }
  return cur;
}

function emptyIndex(file: string | undefined, lineCount: number, warning?: string): SourceIndex {
  return { ...(file !== undefined ? { file } : {}), lineCount, classes: [], imports: [], attention: [], watches: [], activations: [], errors: [], warnings: warning ? [warning] : [] };
}

/**
 * Indexes `source` (a Python file). `file` is only recorded (for mappings that say where they point).
 * Never throws: a parser failure gives an empty index with a warning.
 */
export function indexPythonSource(parser: PythonParser, source: string, file?: string): SourceIndex {
  const text = typeof source === 'string' ? source : '';
  const lines = text.split(/\r\n|\r|\n/);
  const trees: Tree[] = [];
  try {
    const whole = parser.parse(text);
    trees.push(whole);
    let roots: Node[] = [whole.rootNode];
    if (whole.rootNode.hasError) {
      // An unclosed bracket swallows everything after it. Parsed one top-level block at a time (each
      // padded with empty lines so rows stay the file's), an error only costs its own block.
      const chunks = topLevelChunks(lines);
      if (chunks.length > 1) {
        roots = chunks.map(({ start, end }) => {
          const t = parser.parse('\n'.repeat(start) + lines.slice(start, end).join('\n'));
          trees.push(t);
          return t.rootNode;
        });
      }
    }
    return indexRoots(roots, lines, file);
  } catch (err) {
    return emptyIndex(file, lines.length, `could not index: ${err instanceof Error ? err.message : String(err)}`);
  } finally {
    for (const t of trees) t.delete();
  }
}

/** Top-level blocks: a boundary at each column-0 `class`, `def`, decorator run, import or `if`. */
function topLevelChunks(lines: readonly string[]): { start: number; end: number }[] {
  const starts: number[] = [0];
  for (let i = 1; i < lines.length; i++) {
    const l = lines[i];
    if (!/^(class\s|def\s|async\s+def\s|@|from\s|import\s|if\s)/.test(l)) continue;
    // A class/def right under its decorators belongs to them.
    if (/^(class|def|async)\s/.test(l) && /^@/.test(lines[i - 1] ?? '')) continue;
    starts.push(i);
  }
  return starts.map((start, i) => ({ start, end: starts[i + 1] ?? lines.length }));
}

function indexRoots(roots: readonly Node[], lines: string[], file: string | undefined): SourceIndex {
  const index = emptyIndex(file, lines.length);
  index.imports = roots.flatMap(indexImports).sort((a, b) => a.line - b.line);
  index.errors = roots.flatMap((r) => indexErrors(r, lines));
  const file_: FileCtx = { lines, classes: index.classes, imports: index.imports };
  // Skeletons first (every class, nested ones included), so references between classes resolve.
  const nodes: Node[] = [];
  const byNode = new Map<number, ClassInfo>();
  for (const root of roots) {
    for (const node of root.descendantsOfType('class_definition')) {
      if (!node) continue;
      const parentNode = directParentClass(node);
      const parent = parentNode ? byNode.get(parentNode.id) : undefined;
      const info = skeleton(node, parent, lines);
      nodes.push(node);
      byNode.set(node.id, info);
      index.classes.push(info);
    }
  }
  for (const c of index.classes) c.isModule = isModuleClass(c, file_);
  nodes.forEach((node, i) => {
    try {
      indexClass(node, index.classes[i], file_);
    } catch (err) {
      index.warnings.push(`class ${index.classes[i].qualifiedName}: ${err instanceof Error ? err.message : String(err)}`);
    }
  });
  // Attention and activations outside classes (module-level helpers such as `def attention(q, k, v)`).
  const outside: AttentionSite[] = [];
  const outsideAct: ActivationSite[] = [];
  for (const root of roots) siteScan(root, lines, undefined, undefined, outside, outsideAct, false);
  const byPosition = <T extends { line: number; column: number }>(a: T, b: T) => a.line - b.line || a.column - b.column;
  index.attention = [...index.classes.flatMap((c) => c.attention), ...outside].sort(byPosition);
  index.activations = [...index.classes.flatMap((c) => c.activations), ...outsideAct].sort(byPosition);
  index.watches = roots.flatMap((root) => indexWatches(root, lines, byNode)).sort((a, b) => a.line - b.line || a.range.column - b.range.column);
  for (const w of index.watches) if (w.className) index.classes.find((c) => c.qualifiedName === w.className)?.watches.push(w);
  return index;
}
