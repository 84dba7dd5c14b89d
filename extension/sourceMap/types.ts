/**
 * Types of the Python source mapper. Every line is 0-based and every column is a 0-based UTF-16
 * offset in its line (VS Code's `Position`). Everything is plain data (JSON-serialisable) except the
 * Maps of a `ModuleMapping`.
 */

/** A range on one line (0-based line, 0-based UTF-16 columns, `endColumn` exclusive). */
export interface LineRange {
  line: number;
  column: number;
  endColumn: number;
}

/** A range that may span lines (0-based lines and UTF-16 columns, end exclusive). */
export interface SourceSpan {
  line: number;
  column: number;
  endLine: number;
  endColumn: number;
}

/**
 * What an expression builds, as far as the source tells:
 * - `module`: a call of a class (`nn.Linear(16, 32)`, `Block(cfg)`);
 * - `container`: `nn.Sequential` / `nn.ModuleList` / `nn.ModuleDict` / `nn.ParameterList` / `nn.ParameterDict`;
 * - `parameter`: `nn.Parameter(...)` (or `register_parameter`);
 * - `buffer`: `register_buffer(...)`;
 * - `value`: anything else (a number, a tensor, an argument passed in, a helper's result).
 */
export type ValueKind = 'module' | 'container' | 'parameter' | 'buffer' | 'value';

export type ContainerType = 'Sequential' | 'ModuleList' | 'ModuleDict' | 'ParameterList' | 'ParameterDict';

/** An expression that (probably) constructs a module or a parameter. */
export interface ConstructedValue {
  kind: ValueKind;
  /** Source text of the expression, e.g. `nn.Linear(16, 32)` (whitespace runs collapsed). */
  expression: string;
  /** Where the expression is (0-based). */
  span: SourceSpan;
  /** The expression's first line (0-based; to the end of that line's code when it spans lines). */
  range: LineRange;
  /** Callee text when the expression is a call: `nn.Linear`, `Block`, `Mixer.Gate`. */
  callee?: string;
  /** Last identifier of the callee: `Linear`, `Block`, `Gate`. */
  className?: string;
  /** For containers: which one. */
  containerType?: ContainerType;
  /** For containers: the elements found in the source (possibly patterns, see `ContainerChild.key`). */
  children: ContainerChild[];
  /**
   * For containers: true when the source adds elements the indexer cannot enumerate (a list built by
   * a helper, `*args`, a conditional append...). Keys not found among `children` are then "unknown"
   * rather than "absent".
   */
  openEnded?: boolean;
  /** Why the value is what it is when that is not obvious (e.g. "passed in as argument 'encoder'"). */
  note?: string;
}

/** How an element got into its container. */
export type ChildOrigin =
  | 'positional'
  | 'ordered-dict'
  | 'dict'
  | 'comprehension'
  | 'append'
  | 'extend'
  | 'add_module'
  | 'item-assignment'
  | 'repeat';

/** One element of a container. */
export interface ContainerChild extends ConstructedValue {
  /**
   * The torch name of the element: `'0'`, `'fc'`; or `'*'` when it stands for several indices
   * (a comprehension element, an append in a loop), optionally narrowed by `cycle`.
   */
  key: string;
  /**
   * For `'*'` keys built by a loop that appends `period` modules per iteration after `start` fixed
   * ones: index `i` is this element when `i >= start && (i - start) % period === phase`.
   */
  cycle?: { start: number; period: number; phase: number };
  origin: ChildOrigin;
}

/** How an attribute got its value. */
export type AttributeVia = 'assignment' | 'add_module' | 'register_module' | 'register_parameter' | 'register_buffer' | 'setattr' | 'recovered';

/** `self.<name> = <expr>` (or `self.add_module('name', expr)` ...) in a class's `__init__` (or another method). */
export interface AttributeAssignment extends ConstructedValue {
  name: string;
  /** The `self.<name>` target (or the call for add_module / register_*). 0-based. */
  target: LineRange;
  /** Method the assignment is in (`__init__` usually). */
  method: string;
  via: AttributeVia;
  /**
   * For dynamic names (`setattr(self, f"layer{i}", ...)`, `self.add_module(f"block_{i}", ...)`): a
   * regular expression (source) matching the attribute names it can create. `name` is then the
   * name expression's text.
   */
  namePattern?: string;
}

/** A call (or, for parameters, a use) of something reachable from `self`, in a method other than `__init__`. */
export interface CallSite extends LineRange {
  /**
   * Path from `self` of what is called: `['fc']` for `self.fc(x)`, `['blocks', '*']` for a loop
   * variable over `self.blocks`, `['heads', 'cls']` for `self.heads['cls'](x)`, `['layers', '-1']`.
   */
  chain: string[];
  method: string;
  /** `direct`: `self.fc(x)`; `index`: `self.layers[0](x)`; `loop`: a loop variable; `alias`: a local bound to it; `checkpoint`: passed to checkpoint(...). */
  via: 'direct' | 'index' | 'loop' | 'alias' | 'checkpoint';
  /**
   * In a module's `calls`: set when the call runs the module without naming it. `elements`: the module is a
   * container and the call runs one of its elements (`blk(x)` in `for blk in self.blocks`); `container`: the
   * module is an element of an nn.Sequential the call runs (`self.mlp(x)` runs `mlp.0`).
   */
  through?: 'elements' | 'container';
}

/** A non-call reference to `self.<...>` outside `__init__` (e.g. `x @ self.lora_A.T`). */
export interface UseSite extends LineRange {
  chain: string[];
  method: string;
}

export type AttentionKind = 'softmax' | 'scaled_dot_product_attention' | 'MultiheadAttention';

/** A line where attention probabilities are computed (for the attention CodeLens). */
export interface AttentionSite extends LineRange {
  kind: AttentionKind;
  /** `call`: the computation (F.softmax, SDPA, calling an MHA module); `construct`: nn.MultiheadAttention / nn.Softmax built in __init__. */
  role: 'call' | 'construct';
  /** Qualified name of the enclosing class, when there is one. */
  className?: string;
  method?: string;
  /** For module attention (MHA, nn.Softmax): the attribute holding it. */
  attribute?: string;
  /** Source text of the call. */
  expression: string;
}

/** A functional activation call in a forward pass (`F.relu(x)`, `torch.sigmoid(x)`, `x.relu()`). */
export interface ActivationSite extends LineRange {
  name: string;
  className?: string;
  method?: string;
}

/** A line whose gradient the user asked to log during backward. */
export interface WatchSite {
  /** 0-based line of the comment or of the register_hook call. */
  line: number;
  kind: 'comment' | 'register_hook';
  /** Assignment targets of the watched statement (`['x']`, `['a', 'b']`), empty when it assigns nothing. */
  targets: string[];
  /** Text of the watched statement (comment) or the hook's receiver (register_hook). */
  expression: string;
  /** For register_hook: the receiver expression text (`h`, `self.fc.weight`). */
  receiver?: string;
  /** For register_hook on `self.<...>`: its chain (`['fc', 'weight']`). */
  receiverChain?: string[];
  /** The hook method (`register_hook`, `register_full_backward_hook`, ...). */
  hookMethod?: string;
  /**
   * The line whose value is watched: the commented statement's first line; for register_hook the line
   * where the receiver was last assigned before the hook in the same function (else the hook's line).
   */
  valueLine: number;
  /** Column range of the watched code on `valueLine` (for a decoration). */
  range: LineRange;
  className?: string;
  method?: string;
}

export interface MethodInfo {
  name: string;
  line: number;
  endLine: number;
}

/** One class of the file (nested classes included). */
export interface ClassInfo {
  name: string;
  /** `Outer.Inner` for nested classes, else `name`. */
  qualifiedName: string;
  /** Enclosing class (qualified name) for a class defined in another class's body. */
  parent?: string;
  /** 0-based line of the `class` keyword (of the decorator, when decorated). */
  line: number;
  endLine: number;
  /** The class name identifier. */
  nameRange: LineRange;
  /** Base class expressions as written (`nn.Module`, `Block`). */
  bases: string[];
  /** Derives from nn.Module (or a torch.nn class, or another module class of this file). */
  isModule: boolean;
  methods: MethodInfo[];
  /** Attributes in source order; the same name may appear more than once (if/else, reassignment). */
  attributes: AttributeAssignment[];
  calls: CallSite[];
  uses: UseSite[];
  attention: AttentionSite[];
  activations: ActivationSite[];
  watches: WatchSite[];
}

/** A syntax problem tree-sitter recovered from. */
export interface SyntaxProblem extends LineRange {
  kind: 'error' | 'missing';
  /** For a missing node: what was expected (`)`, `identifier`). */
  expected?: string;
}

/** `import torch.nn as nn` binds `nn` to `torch.nn`; `from mylib.layers import FancyBlock` binds `FancyBlock`. */
export interface ImportBinding {
  name: string;
  /** Dotted origin (`torch.nn`, `mylib.layers.FancyBlock`; relative imports keep their dots). */
  origin: string;
  /** 0-based line. */
  line: number;
}

/** Everything the mapper needs from one Python file. */
export interface SourceIndex {
  file?: string;
  lineCount: number;
  classes: ClassInfo[];
  /** Names bound by imports, in source order. */
  imports: ImportBinding[];
  /** All attention sites, in classes or not, in source order. */
  attention: AttentionSite[];
  /** All watch sites, in classes or not, in source order. */
  watches: WatchSite[];
  activations: ActivationSite[];
  /** Syntax errors: the index covers what parsed around them. */
  errors: SyntaxProblem[];
  /** Problems of the indexer itself (a class it could not index); empty normally. */
  warnings: string[];
}

/** Kind of a mapped path. */
export type MappedKind = 'module' | 'parameter' | 'container' | 'root';

/** A module path mapped to the source. */
export interface ResolvedModule {
  /** The path as given (`blocks.0.attn.q_proj.weight`). */
  path: string;
  /** The module it belongs to (`blocks.0.attn.q_proj`; equal to `path` except for library parameters). */
  modulePath: string;
  /** For a parameter of a library module (`weight`), its name; the definition is the module's. */
  parameter?: string;
  file?: string;
  /**
   * The line to anchor this path on: the model's own file/line metadata when it points into this
   * file (see applySourceMetadata), else `definition.line`. 0-based.
   */
  line: number;
  /** The `self.<name>` target of the assignment, or the container element (0-based). */
  definition: LineRange;
  /** The constructing expression (`nn.Linear(16, 32)`), when known. */
  expression?: string;
  /** 0-based lines where it runs in forward (calls; for parameters, uses), sorted, unique. */
  callLines: number[];
  calls: CallSite[];
  /** Constructed class (last identifier): `Linear`, `Block`. */
  className?: string;
  /** The class definition in this file, when the constructed class is defined here (0-based line). */
  classLine?: number;
  kind: MappedKind;
  /** Class (qualified) whose `__init__` creates it. */
  ownerClass?: string;
  /** Where the mapping came from. */
  origin: 'source' | 'metadata' | 'source+metadata';
  /** Line from the model's metadata (0-based) when it was used. */
  metadataLine?: number;
  /** Set when the mapping is not exact (a pattern, an ambiguous loop), with the reason. */
  approximate?: string;
  /** What the indexer noted about the value (`one branch of ...`, `a copy of ...`, `passed in as argument ...`). */
  note?: string;
}

export interface UnresolvedModule {
  path: string;
  reason: string;
  /** The longest prefix of the path that did resolve (so a caller can still anchor somewhere). */
  nearest?: ResolvedModule;
}

export interface ModuleMapping {
  file?: string;
  /** The class paths were resolved from, or null when there is none. */
  root: { name: string; qualifiedName: string; line: number } | null;
  /** Why `root` was chosen (or why there is none). */
  rootReason: string;
  resolved: Map<string, ResolvedModule>;
  unresolved: Map<string, UnresolvedModule>;
  /** For each class of this file: the resolved module paths that are instances of it (for watches and attention sites inside it). */
  instances: Map<string, string[]>;
}

export interface MapOptions {
  /** The model class (simple or qualified name). Default: the module class that resolves the most paths. */
  rootClass?: string;
}

/** A 1-based source position from the model (ONNX stack traces). */
export interface MetadataLocation {
  file: string;
  /** 1-based, as stack traces print it. */
  line: number;
}
