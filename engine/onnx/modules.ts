/**
 * Module paths and source locations of ONNX nodes, for both PyTorch exporters:
 * - legacy TorchScript exporter: scoped node names (`/blocks.0/attn/q_proj/MatMul` -> module
 *   `blocks.0.attn.q_proj`) and, with verbose=True, a stack trace in `doc_string`
 *   (`/path/models.py(102): forward` lines, innermost frame first);
 * - dynamo exporter (torch >= 2.5): node metadata_props `pkg.torch.onnx.name_scopes` (a Python
 *   list literal of cumulative module paths, then the FX node name), `pkg.torch.onnx.class_hierarchy`
 *   (module classes, then the op) and `pkg.torch.onnx.stack_trace` (a Python traceback,
 *   outermost frame first).
 */

/** A position in the Python source that produced a node. */
export interface SourceLocation {
  file: string;
  line: number;
  /** The Python function (usually `forward`). */
  function?: string;
}

/** One module of the model (a PyTorch nn.Module), with its submodules, nodes and parameters. */
export interface ModuleNode {
  /** Dotted path as in state_dict keys ('' for the root, 'blocks.0.attn' ...). */
  path: string;
  /** Last path component ('' for the root). */
  name: string;
  /** Qualified class name when the exporter recorded it (dynamo metadata), e.g. 'torch.nn.modules.linear.Linear'. */
  className?: string;
  children: ModuleNode[];
  /** Names of the nodes whose module path is exactly this module. */
  nodes: string[];
  /** Names of the initializers (parameters and buffers) that belong directly to this module. */
  parameters: string[];
  /** The innermost user-code frame of the module's first node (where its computation is written). */
  source?: SourceLocation;
}

/** Library frames (PyTorch's own code, Python internals) that are not "the user's source". */
export function isLibraryFrame(file: string): boolean {
  return /[\\/](site|dist)-packages[\\/]torch[\\/]/.test(file) || /^<frozen /.test(file) || /[\\/]torch[\\/](nn|onnx|jit|fx|_dynamo|export|_ops|_tensor|functional|overrides)\b/.test(file);
}

/** Frames of a legacy verbose doc_string, innermost first. */
function parseLegacyTrace(doc: string): SourceLocation[] {
  const frames: SourceLocation[] = [];
  for (const line of doc.split(/\r?\n/)) {
    const m = /^\s*(.+?)\((\d+)\):\s*(\S+)?\s*$/.exec(line);
    if (m) frames.push({ file: m[1], line: Number(m[2]), function: m[3] });
  }
  return frames;
}

/** Frames of a Python traceback (`File "x", line N, in f`), returned innermost first. */
function parsePythonTrace(trace: string): SourceLocation[] {
  const frames: SourceLocation[] = [];
  const re = /File "([^"]+)", line (\d+)(?:, in ([^\s]+))?/g;
  for (let m = re.exec(trace); m; m = re.exec(trace)) frames.push({ file: m[1], line: Number(m[2]), function: m[3] });
  return frames.reverse();
}

/** Parses a Python list-of-strings literal such as "['', 'blocks.0', 'linear']". */
export function parsePythonStringList(text: string): string[] | null {
  const t = text.trim();
  if (!t.startsWith('[') || !t.endsWith(']')) return null;
  const out: string[] = [];
  const re = /'((?:[^'\\]|\\.)*)'|"((?:[^"\\]|\\.)*)"/g;
  for (let m = re.exec(t); m; m = re.exec(t)) out.push((m[1] ?? m[2]).replace(/\\(.)/g, '$1'));
  return out;
}

export interface NodeScope {
  modulePath: string;
  moduleClass?: string;
  /** Class of every module on the path, outermost first, when known. */
  classes?: { path: string; className: string }[];
  /** All frames, innermost first. */
  stack: SourceLocation[];
  /** Innermost frame outside the PyTorch library. */
  source?: SourceLocation;
}

/**
 * Module path from a legacy scoped node name: '/blocks.0/attn/MatMul' -> 'blocks.0.attn'. A called
 * container (nn.Sequential) scopes its children with its own name repeated: '/blocks/blocks.2/fc/Gemm'
 * is module 'blocks.2.fc', as the parameter names ('blocks.2.fc.weight') say.
 */
export function modulePathFromNodeName(name: string): string | null {
  if (!name.startsWith('/')) return null;
  // The non-empty segments before the last one (the op itself, e.g. MatMul_1), found without split/filter:
  // this runs once per node.
  const parts: string[] = [];
  let start = 1;
  for (let slash = name.indexOf('/', start); slash >= 0; start = slash + 1, slash = name.indexOf('/', start)) {
    if (slash > start) parts.push(name.slice(start, slash));
  }
  if (start === name.length) parts.pop(); // a trailing '/': the last segment was the op
  if (parts.length === 1) return parts[0];
  const path: string[] = [];
  for (const seg of parts) {
    const last = path[path.length - 1];
    if (last !== undefined && seg.startsWith(`${last}.`)) path.pop();
    path.push(seg);
  }
  return path.join('.');
}

/** Module path, classes and source of a node from whichever exporter conventions it follows. */
export function nodeScope(name: string, docString: string, metadata: Record<string, string>): NodeScope {
  let modulePath: string | null = null;
  let moduleClass: string | undefined;
  let classes: { path: string; className: string }[] | undefined;
  const scopes = metadata['pkg.torch.onnx.name_scopes'] !== undefined ? parsePythonStringList(metadata['pkg.torch.onnx.name_scopes']) : null;
  if (scopes && scopes.length > 0) {
    const hierarchy = metadata['pkg.torch.onnx.class_hierarchy'] !== undefined ? parsePythonStringList(metadata['pkg.torch.onnx.class_hierarchy']) : null;
    let mods = [...scopes];
    let cls = hierarchy ? [...hierarchy] : null;
    // The exporter appends the FX node (name, target) to both lists. With the class hierarchy we
    // know for sure; without it, the last entry is a module only if it extends the previous path.
    const lastIsNode = cls && cls.length === mods.length
      ? true
      : mods.length > 1 && !(mods[mods.length - 2] === '' || mods[mods.length - 1].startsWith(`${mods[mods.length - 2]}.`));
    if (lastIsNode) {
      mods = mods.slice(0, -1);
      if (cls) cls = cls.slice(0, -1);
    }
    // name_scopes are cumulative ('', 'blocks.0', 'blocks.0.attn'); tolerate relative ones too.
    const cumulative = mods.every((m, i) => i === 0 || mods[i - 1] === '' || m.startsWith(`${mods[i - 1]}.`));
    modulePath = cumulative ? mods[mods.length - 1] ?? '' : mods.filter((m) => m !== '').join('.');
    if (cls && cls.length === mods.length) {
      const paths = cumulative ? mods : mods.map((_, i) => mods.slice(0, i + 1).filter((m) => m !== '').join('.'));
      classes = paths.map((p, i) => ({ path: p, className: cls![i] }));
      moduleClass = cls[cls.length - 1];
    }
  }
  if (modulePath === null) modulePath = modulePathFromNodeName(name) ?? '';
  let stack: SourceLocation[] = [];
  const trace = metadata['pkg.torch.onnx.stack_trace'];
  if (trace) stack = parsePythonTrace(trace);
  if (stack.length === 0 && docString) stack = parseLegacyTrace(docString);
  const source = stack.find((f) => !isLibraryFrame(f.file));
  return { modulePath, moduleClass, classes, stack, source };
}

/**
 * Module paths for nodes that have none (a dynamo export whose metadata an opset conversion stripped), from the
 * parameters they read: a node reading `blocks.0.fc.bias`, or a value computed from `blocks.0.fc.weight` alone
 * (the output of the Transpose that restores a transposed weight), is in `blocks.0.fc`. Only parameters that one node reads
 * count: a weight several layers read (merged equal LayerNorm weights, tied embeddings) tells no single module.
 * Gives leaves their ops back, hence output shapes, activations and their forward order; containers stay
 * without nodes.
 */
export function scopesFromParameters(
  nodes: readonly { name: string; modulePath: string; inputs: readonly string[]; outputs: readonly string[] }[],
  isParameter: (name: string) => boolean,
): Map<string, string> {
  const owner = (p: string) => (/^[A-Za-z_]\w*(\.\w+)+$/.test(p) ? p.slice(0, p.lastIndexOf('.')) : null);
  const readers = new Map<string, number>();
  for (const n of nodes) for (const i of n.inputs) if (isParameter(i)) readers.set(i, (readers.get(i) ?? 0) + 1);
  const derived = new Map<string, string>(); // value computed from one module's parameters alone -> module
  const scopes = new Map<string, string>();
  for (const n of nodes) {
    if (n.modulePath !== '') continue;
    const from = new Set<string>();
    let onlyParameters = n.inputs.length > 0;
    for (const i of n.inputs) {
      if (i === '') continue;
      const d = derived.get(i);
      if (d !== undefined) from.add(d);
      else if (isParameter(i) && readers.get(i) === 1 && owner(i) !== null) from.add(owner(i)!);
      else onlyParameters = false;
    }
    if (from.size !== 1) continue;
    const path = [...from][0];
    // A node of the parameters alone (a restored Transpose, at the graph's start) prepares a weight: it passes the
    // module on to the node that reads its output and stays out of the module's forward order itself.
    if (onlyParameters) {
      for (const o of n.outputs) if (o !== '') derived.set(o, path);
    } else {
      scopes.set(n.name, path);
    }
  }
  return scopes;
}

/**
 * Builds the module tree from node scopes and initializer names (`blocks.0.fc.weight` -> `blocks.0.fc`).
 * Linear in the number of nodes and path components: children are found through a map, the tree is
 * walked without recursion (a hostile name can nest thousands of scopes).
 */
export function buildModuleTree(
  nodes: readonly { name: string; modulePath: string; classes?: { path: string; className: string }[]; source?: SourceLocation }[],
  initializers: readonly string[],
  bodyNodes: readonly { modulePath: string; classes?: { path: string; className: string }[]; source?: SourceLocation }[] = [],
): { root: ModuleNode; byPath: Map<string, ModuleNode> } {
  const root: ModuleNode = { path: '', name: '', children: [], nodes: [], parameters: [] };
  const byPath = new Map<string, ModuleNode>([['', root]]);
  const ensure = (path: string): ModuleNode => {
    const known = byPath.get(path);
    if (known) return known;
    const dot = path.lastIndexOf('.');
    const parent = ensure(dot < 0 ? '' : path.slice(0, dot));
    const m: ModuleNode = { path, name: dot < 0 ? path : path.slice(dot + 1), children: [], nodes: [], parameters: [] };
    parent.children.push(m);
    byPath.set(path, m);
    return m;
  };
  const ensureDeep = (path: string): ModuleNode => {
    // Create ancestors shallowest first so ensure() never recurses deeply.
    if (byPath.has(path)) return byPath.get(path)!;
    let at = path.indexOf('.');
    while (at >= 0) {
      ensure(path.slice(0, at));
      at = path.indexOf('.', at + 1);
    }
    return ensure(path);
  };
  for (const n of nodes) {
    const m = ensureDeep(n.modulePath);
    m.nodes.push(n.name);
    if (!m.source && n.source) m.source = n.source;
    for (const c of n.classes ?? []) {
      const cm = ensureDeep(c.path);
      if (!cm.className) cm.className = c.className;
    }
  }
  // Nodes of If / Loop / Scan bodies (torch.cond branches) name modules, classes and sources too; their values are per
  // run of a body, so they are not a module's nodes.
  for (const n of bodyNodes) {
    const m = ensureDeep(n.modulePath);
    if (!m.source && n.source) m.source = n.source;
    for (const c of n.classes ?? []) {
      const cm = ensureDeep(c.path);
      if (!cm.className) cm.className = c.className;
    }
  }
  for (const name of initializers) {
    // Only names that look like state_dict keys (not '/x/Constant_output_0' or 'onnx::MatMul_12').
    if (!/^[A-Za-z_][\w]*(\.[\w]+)*$/.test(name)) {
      root.parameters.push(name);
      continue;
    }
    ensureDeep(name.slice(0, Math.max(0, name.lastIndexOf('.')))).parameters.push(name);
  }
  // A parent without nodes of its own takes the source of its first child: children before parents.
  const preorder: ModuleNode[] = [];
  const stack = [root];
  while (stack.length) {
    const m = stack.pop()!;
    preorder.push(m);
    for (let i = m.children.length - 1; i >= 0; i--) stack.push(m.children[i]);
  }
  for (let i = preorder.length - 1; i >= 0; i--) {
    const m = preorder[i];
    if (!m.source) m.source = m.children.find((c) => c.source)?.source;
  }
  // byPath in preorder (the order the recursive walk gave).
  return { root, byPath: new Map(preorder.map((m) => [m.path, m])) };
}
