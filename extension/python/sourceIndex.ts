/**
 * Indexes a PyTorch model file with tree-sitter: nn.Module classes, their submodule assignments in
 * __init__ (also inside nn.Sequential / ModuleList / ModuleDict), the calls in forward, attention
 * sites, `# gradlens: watch` comments and register_hook calls. Lines are 0-based. No vscode import.
 */
import type { Node as TSNode } from 'web-tree-sitter';
import type { PythonParser } from './parser';

export interface ChildInfo {
  /** '0', 'fc', or '*' when every index maps here (a comprehension or an append loop). */
  key: string;
  line: number;
  className?: string;
}

export interface AttrInfo {
  name: string;
  /** Line of the `self.<name> = ...` assignment. */
  line: number;
  column: number;
  kind: 'module' | 'parameter' | 'container' | 'value';
  /** Last identifier of the constructor called (`Linear` for nn.Linear(...)). */
  className?: string;
  children: ChildInfo[];
}

export interface ClassInfo {
  name: string;
  line: number;
  endLine: number;
  bases: string[];
  isModule: boolean;
  attrs: Map<string, AttrInfo>;
  /** Lines in forward (and helpers) that call `self.<attr>(...)`. */
  calls: Map<string, number[]>;
  /** Lines that call elements of a container attribute (`for blk in self.blocks: x = blk(x)`, `self.layers[0](x)`). */
  childCalls: Map<string, number[]>;
  attention: { line: number; kind: 'softmax' | 'scaled_dot_product_attention' | 'MultiheadAttention' }[];
}

export interface WatchLine {
  line: number;
  /** What is watched: the assignment target on that line, or the receiver of register_hook. */
  target: string;
  /** The line whose computation is watched (for register_hook: where the receiver was assigned). */
  valueLine: number;
  className?: string;
  kind: 'comment' | 'register_hook';
}

export interface SourceIndex {
  classes: ClassInfo[];
  watches: WatchLine[];
  /** Lines tree-sitter could not parse (the index covers the rest). */
  errorLines: number[];
}

const CONTAINERS = new Set(['Sequential', 'ModuleList', 'ModuleDict', 'ParameterList', 'ParameterDict']);
const PARAMETER_CTORS = new Set(['Parameter', 'UninitializedParameter']);

const line = (n: TSNode) => n.startPosition.row;

function lastIdentifier(text: string): string {
  const m = /([A-Za-z_][\w]*)\s*$/.exec(text);
  return m ? m[1] : text;
}

/** `self.<name>` -> name. */
function selfAttr(n: TSNode | null): string | null {
  if (!n || n.type !== 'attribute') return null;
  const obj = n.childForFieldName('object');
  const attr = n.childForFieldName('attribute');
  return obj?.type === 'identifier' && obj.text === 'self' && attr ? attr.text : null;
}

function unquote(n: TSNode): string | null {
  if (n.type !== 'string') return null;
  const m = /^[rbuRBU]*(['"]{1,3})([\s\S]*)\1$/.exec(n.text);
  return m ? m[2] : null;
}

function callee(call: TSNode): string {
  return lastIdentifier(call.childForFieldName('function')?.text ?? '');
}

function descendants(n: TSNode, type: string, out: TSNode[] = []): TSNode[] {
  for (const c of n.namedChildren) {
    if (!c) continue;
    if (c.type === type) out.push(c);
    descendants(c, type, out);
  }
  return out;
}

/** An element expression of a container: its class when it is a constructor call. */
function element(n: TSNode, key: string): ChildInfo {
  const call = n.type === 'call' ? n : null;
  return { key, line: line(n), className: call ? callee(call) : undefined };
}

function containerChildren(kind: string, args: TSNode | null): ChildInfo[] {
  if (!args) return [];
  const positional = args.namedChildren.filter((a): a is TSNode => !!a && a.type !== 'keyword_argument' && a.type !== 'comment');
  const children: ChildInfo[] = [];
  const fromSequence = (seq: TSNode) => {
    if (seq.type === 'list_comprehension' || seq.type === 'generator_expression') {
      const body = seq.childForFieldName('body') ?? seq.namedChildren[0];
      if (body) children.push(element(body, '*'));
    } else if (seq.type === 'list' || seq.type === 'tuple') {
      seq.namedChildren.forEach((e, i) => e && children.push(element(e, String(i))));
    }
  };
  if (kind === 'ModuleDict' || kind === 'ParameterDict') {
    const dict = positional[0];
    if (dict?.type === 'dictionary') {
      for (const pair of dict.namedChildren) {
        const key = pair?.childForFieldName('key');
        const value = pair?.childForFieldName('value');
        const k = key ? unquote(key) : null;
        if (k !== null && value) children.push(element(value, k));
      }
    } else if (dict?.type === 'dictionary_comprehension') {
      const value = dict.namedChildren[0]?.childForFieldName('value');
      if (value) children.push(element(value, '*'));
    }
    return children;
  }
  if (kind === 'Sequential') {
    // nn.Sequential(OrderedDict([('fc', nn.Linear(...)), ...]))
    const first = positional[0];
    if (positional.length === 1 && first?.type === 'call' && callee(first) === 'OrderedDict') {
      const list = first.childForFieldName('arguments')?.namedChildren[0];
      for (const t of list?.namedChildren ?? []) {
        if (t?.type !== 'tuple' || t.namedChildren.length < 2) continue;
        const k = unquote(t.namedChildren[0]!);
        if (k !== null) children.push(element(t.namedChildren[1]!, k));
      }
      return children;
    }
    let i = 0;
    for (const a of positional) {
      if (a.type === 'list_splat') {
        const inner = a.namedChildren[0];
        if (inner) fromSequence(inner);
        if (children.some((c) => c.key === '*')) return children;
        continue;
      }
      children.push(element(a, String(i++)));
    }
    return children;
  }
  // ModuleList / ParameterList
  if (positional[0]) fromSequence(positional[0]);
  return children;
}

function indexInit(fn: TSNode, cls: ClassInfo): void {
  for (const assign of descendants(fn, 'assignment')) {
    const name = selfAttr(assign.childForFieldName('left'));
    const right = assign.childForFieldName('right');
    if (!name || !right) continue;
    const attr: AttrInfo = { name, line: line(assign), column: assign.startPosition.column, kind: 'value', children: [] };
    if (right.type === 'call') {
      const ctor = callee(right);
      attr.className = ctor;
      if (CONTAINERS.has(ctor)) {
        attr.kind = 'container';
        attr.children = containerChildren(ctor, right.childForFieldName('arguments'));
      } else if (PARAMETER_CTORS.has(ctor)) {
        attr.kind = 'parameter';
      } else if (/^[A-Z]/.test(ctor)) {
        attr.kind = 'module';
      }
    }
    if (!cls.attrs.has(name)) cls.attrs.set(name, attr);
  }
  // self.layers.append(X(...)) in a loop; self.add_module('name', X(...)); self.register_parameter('n', nn.Parameter(...)).
  for (const call of descendants(fn, 'call')) {
    const fnNode = call.childForFieldName('function');
    const args = call.childForFieldName('arguments')?.namedChildren.filter((a): a is TSNode => !!a) ?? [];
    if (fnNode?.type !== 'attribute') continue;
    const method = fnNode.childForFieldName('attribute')?.text;
    const target = selfAttr(fnNode.childForFieldName('object'));
    if ((method === 'append' || method === 'extend') && target && cls.attrs.get(target)?.kind === 'container' && args[0]) {
      cls.attrs.get(target)!.children.push(element(args[0], '*'));
    }
    if ((method === 'add_module' || method === 'register_module' || method === 'register_parameter') && fnNode.childForFieldName('object')?.text === 'self' && args.length >= 2) {
      const key = unquote(args[0]);
      if (key !== null && !cls.attrs.has(key)) {
        const ctor = args[1].type === 'call' ? callee(args[1]) : undefined;
        cls.attrs.set(key, { name: key, line: line(call), column: call.startPosition.column, kind: method === 'register_parameter' ? 'parameter' : 'module', className: ctor, children: [] });
      }
    }
  }
}

function push(map: Map<string, number[]>, key: string, value: number): void {
  const list = map.get(key) ?? [];
  if (!list.includes(value)) list.push(value);
  map.set(key, list);
}

function indexMethods(body: TSNode, cls: ClassInfo): void {
  for (const call of descendants(body, 'call')) {
    const fnNode = call.childForFieldName('function');
    const attr = selfAttr(fnNode);
    if (attr) push(cls.calls, attr, line(call));
    // self.layers[0](x)
    if (fnNode?.type === 'subscript') {
      const base = selfAttr(fnNode.childForFieldName('value'));
      if (base) push(cls.childCalls, base, line(call));
    }
    const name = callee(call);
    if (name === 'softmax' || name === 'Softmax') cls.attention.push({ line: line(call), kind: 'softmax' });
    if (name === 'scaled_dot_product_attention') cls.attention.push({ line: line(call), kind: 'scaled_dot_product_attention' });
    if (name === 'MultiheadAttention') cls.attention.push({ line: line(call), kind: 'MultiheadAttention' });
  }
  // for blk in self.blocks: x = blk(x)   /   for i, layer in enumerate(self.layers): ...
  for (const loop of descendants(body, 'for_statement')) {
    const right = loop.childForFieldName('right');
    const left = loop.childForFieldName('left');
    const loopBody = loop.childForFieldName('body');
    if (!right || !left || !loopBody) continue;
    const containers = [right, ...descendants(right, 'attribute')].map(selfAttr).filter((a): a is string => !!a);
    if (containers.length === 0) continue;
    const vars = new Set([left, ...descendants(left, 'identifier')].filter((n) => n.type === 'identifier').map((n) => n.text));
    for (const call of descendants(loopBody, 'call')) {
      const fnNode = call.childForFieldName('function');
      if (fnNode?.type === 'identifier' && vars.has(fnNode.text)) for (const c of containers) push(cls.childCalls, c, line(call));
    }
  }
}

function indexClass(node: TSNode, out: ClassInfo[]): void {
  const name = node.childForFieldName('name')?.text ?? '?';
  const bases = (node.childForFieldName('superclasses')?.namedChildren ?? []).filter((b): b is TSNode => !!b && b.type !== 'keyword_argument').map((b) => b.text);
  const cls: ClassInfo = { name, line: line(node), endLine: node.endPosition.row, bases, isModule: false, attrs: new Map(), calls: new Map(), childCalls: new Map(), attention: [] };
  const body = node.childForFieldName('body');
  for (const member of body?.namedChildren ?? []) {
    const fn = member?.type === 'decorated_definition' ? member.childForFieldName('definition') : member;
    if (fn?.type !== 'function_definition') continue;
    const fname = fn.childForFieldName('name')?.text;
    if (fname === '__init__') indexInit(fn, cls);
    else indexMethods(fn, cls);
  }
  // nn.MultiheadAttention constructed in __init__ is an attention site too.
  for (const a of cls.attrs.values()) if (a.className === 'MultiheadAttention') cls.attention.push({ line: a.line, kind: 'MultiheadAttention' });
  out.push(cls);
}

function watches(root: TSNode, source: string, classes: ClassInfo[]): WatchLine[] {
  const out: WatchLine[] = [];
  const lines = source.split(/\r?\n/);
  const classAt = (l: number) => classes.filter((c) => c.line <= l && l <= c.endLine).sort((a, b) => b.line - a.line)[0]?.name;
  for (const comment of descendants(root, 'comment')) {
    if (!/#\s*gradlens:\s*watch\b/i.test(comment.text)) continue;
    const l = line(comment);
    const code = lines[l].slice(0, comment.startPosition.column).trim();
    const target = /^([\w.,\s[\]]+?)\s*(?:[+\-*/@]?=)(?!=)/.exec(code)?.[1]?.trim() ?? (code || `line ${l + 1}`);
    out.push({ line: l, target: code ? code.replace(/\s+/g, ' ') : target, valueLine: l, className: classAt(l), kind: 'comment' });
  }
  for (const call of descendants(root, 'call')) {
    const fnNode = call.childForFieldName('function');
    if (fnNode?.type !== 'attribute' || fnNode.childForFieldName('attribute')?.text !== 'register_hook') continue;
    const receiver = fnNode.childForFieldName('object')?.text ?? '';
    const l = line(call);
    // The watched value is computed where the receiver was last assigned before the hook, in the same function.
    let fn: TSNode | null = call.parent;
    while (fn && fn.type !== 'function_definition') fn = fn.parent;
    let valueLine = l;
    if (fn) {
      for (const a of descendants(fn, 'assignment')) {
        if (line(a) < l && a.childForFieldName('left')?.text === receiver) valueLine = Math.max(valueLine === l ? -1 : valueLine, line(a));
      }
      if (valueLine === -1) valueLine = l;
    }
    out.push({ line: l, target: receiver, valueLine, className: classAt(l), kind: 'register_hook' });
  }
  return out.sort((a, b) => a.line - b.line);
}

export function indexPythonSource(parser: PythonParser, source: string): SourceIndex {
  const tree = parser.parse(source);
  const root = tree.rootNode;
  const classes: ClassInfo[] = [];
  // Every class in the file, nested ones included (a module class may be defined inside another).
  for (const def of descendants(root, 'class_definition')) indexClass(def, classes);
  // nn.Module subclasses, transitively through classes of this file.
  const byName = new Map(classes.map((c) => [c.name, c]));
  const isModule = (c: ClassInfo, seen = new Set<string>()): boolean => {
    if (seen.has(c.name)) return false;
    seen.add(c.name);
    return c.bases.some((b) => /(^|\.)(Module|LightningModule)$/.test(b) || (byName.has(lastIdentifier(b)) && isModule(byName.get(lastIdentifier(b))!, seen)));
  };
  for (const c of classes) c.isModule = isModule(c);
  const errorLines = descendants(root, 'ERROR').map(line);
  const result = { classes, watches: watches(root, source, classes), errorLines };
  tree.delete();
  return result;
}
