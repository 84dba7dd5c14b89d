/**
 * Maps module paths as PyTorch names them (`blocks.0.attn.q_proj`, `layers.3`, `features.0`, and
 * parameters such as `blocks.0.attn.q_proj.weight`) to source lines, walking from a root class through
 * attribute constructors, classes of the same file and container elements. Paths that cannot be
 * located get a reason, never an exception. Lines are 0-based.
 */
import { canonicalName, fileBases, findClass, isTorchModuleClass } from './classes';
import type {
  AttributeAssignment,
  CallSite,
  ClassInfo,
  ConstructedValue,
  ContainerChild,
  LineRange,
  MapOptions,
  MappedKind,
  ModuleMapping,
  ResolvedModule,
  SourceIndex,
  UnresolvedModule,
} from './types';

/** One resolved segment of a path. */
interface Step {
  segment: string;
  /** The attribute or container element this segment names. */
  value: AttributeAssignment | ContainerChild;
  /** The instance (class of this file) whose attribute tree holds the segment. */
  instance: ClassInfo;
  /** Index of the step that entered `instance` (its first attribute step): calls are chains from there. */
  instanceStart: number;
  /** Class whose source holds the assignment (differs from `instance` for inherited attributes). */
  owner: ClassInfo;
  approximate?: string;
}

/** Where the walk stands after some segments. */
type At =
  | { t: 'class'; cls: ClassInfo }
  | { t: 'container'; value: ConstructedValue; label: string }
  | { t: 'external'; value: ConstructedValue; label: string }
  | { t: 'parameter'; label: string };

interface Walk {
  steps: Step[];
  at: At;
  /** A trailing parameter of a module whose class is not in this file (`weight`). */
  parameter?: string;
  /** A trailing submodule inside a torch.nn module (`out_proj` of nn.MultiheadAttention). */
  librarySubmodule?: string;
}

class Resolver {
  private readonly calls = new Map<string, CallSite[]>();
  private readonly uses = new Map<string, ClassInfo['uses']>();

  constructor(private readonly index: SourceIndex) {}

  classOf(value: ConstructedValue, scope: ClassInfo): ClassInfo | undefined {
    return value.kind === 'module' ? findClass(this.index.classes, this.index.imports, value.callee, scope) : undefined;
  }

  /** The attribute `name` of instances of `cls`: its own assignments (__init__ first), then its bases', then dynamic patterns. */
  attribute(cls: ClassInfo, name: string, seen = new Set<string>()): { attr: AttributeAssignment; owner: ClassInfo; approximate?: string } | undefined {
    if (seen.has(cls.qualifiedName)) return undefined;
    seen.add(cls.qualifiedName);
    const own = cls.attributes.filter((a) => a.name === name && !a.namePattern);
    if (own.length > 0) {
      const best = own.find((a) => a.method === '__init__' && a.kind !== 'value') ?? own.find((a) => a.kind !== 'value') ?? own[0];
      return { attr: best, owner: cls };
    }
    for (const base of fileBases(this.index.classes, this.index.imports, cls)) {
      const hit = this.attribute(base, name, seen);
      if (hit) return hit;
    }
    const dynamic = cls.attributes.find((a) => a.namePattern && safeTest(a.namePattern, name));
    if (dynamic) return { attr: dynamic, owner: cls, approximate: `'${name}' matches the name ${dynamic.name} computed on line ${dynamic.target.line + 1}` };
    return undefined;
  }

  /** Calls (and uses) recorded in `cls` and the classes of this file it derives from. */
  callsOf(cls: ClassInfo): CallSite[] {
    const hit = this.calls.get(cls.qualifiedName);
    if (hit) return hit;
    const out: CallSite[] = [...cls.calls];
    this.calls.set(cls.qualifiedName, out);
    for (const base of fileBases(this.index.classes, this.index.imports, cls)) if (base !== cls) out.push(...this.callsOf(base));
    return out;
  }

  usesOf(cls: ClassInfo): ClassInfo['uses'] {
    const hit = this.uses.get(cls.qualifiedName);
    if (hit) return hit;
    const out: ClassInfo['uses'] = [...cls.uses];
    this.uses.set(cls.qualifiedName, out);
    for (const base of fileBases(this.index.classes, this.index.imports, cls)) if (base !== cls) out.push(...this.usesOf(base));
    return out;
  }

  private enter(value: ConstructedValue, scope: ClassInfo, label: string): At {
    if (value.kind === 'container') return { t: 'container', value, label };
    if (value.kind === 'parameter' || value.kind === 'buffer') return { t: 'parameter', label };
    const cls = this.classOf(value, scope);
    if (cls) return { t: 'class', cls };
    return { t: 'external', value, label };
  }

  /** Walks `segments` from `root`; returns the walk or the reason it stopped (with the walk so far). */
  walk(root: ClassInfo, segments: string[]): { ok: true; walk: Walk } | { ok: false; reason: string; walk: Walk } {
    const steps: Step[] = [];
    let at: At = { t: 'class', cls: root };
    let instance = root;
    let instanceStart = 0;
    for (let i = 0; i < segments.length; i++) {
      const seg = segments[i];
      const here: Walk = { steps: [...steps], at };
      const rest = segments.slice(i).join('.');
      if (at.t === 'class') {
        const cls: ClassInfo = at.cls;
        const found = this.attribute(cls, seg);
        if (!found) {
          const externalBase = cls.bases.find((b) => !findClass(this.index.classes, this.index.imports, b) && !/(^|\.)(Module|LightningModule|object)$/.test(canonicalName(b, this.index.imports)));
          if (externalBase && i === segments.length - 1 && PARAMETER_NAME.test(seg)) {
            return { ok: true, walk: { ...here, parameter: seg } };
          }
          return { ok: false, reason: this.noAttributeReason(cls, seg, externalBase), walk: here };
        }
        instance = cls;
        instanceStart = i;
        steps.push({ segment: seg, value: found.attr, instance, instanceStart, owner: found.owner, ...(found.approximate ? { approximate: found.approximate } : {}) });
        at = this.enter(found.attr, found.owner, `'${found.attr.name}' in class ${found.owner.name}`);
        continue;
      }
      if (at.t === 'container') {
        const pick = this.child(at.value, seg, segments.slice(i + 1), instance);
        if (typeof pick === 'string') return { ok: false, reason: `${at.value.containerType} ${at.label} ${pick}`, walk: here };
        steps.push({ segment: seg, value: pick.child, instance, instanceStart, owner: steps[steps.length - 1]?.owner ?? instance, ...(pick.approximate ? { approximate: pick.approximate } : {}) });
        at = this.enter(pick.child, steps[steps.length - 1].owner, `element '${seg}' of ${at.label}`);
        continue;
      }
      if (at.t === 'external') {
        if (i === segments.length - 1 && this.libraryParameter(at.value, seg)) return { ok: true, walk: { ...here, parameter: seg } };
        if (i === segments.length - 1 && !/^-?\d+$/.test(seg) && isTorchModuleClass(canonicalName(at.value.callee ?? '', this.index.imports))) {
          return { ok: true, walk: { ...here, librarySubmodule: seg } };
        }
        return { ok: false, reason: this.externalReason(at.value, at.label, rest), walk: here };
      }
      return { ok: false, reason: `${at.label} is a parameter; it has no '${rest}'`, walk: here };
    }
    return { ok: true, walk: { steps, at } };
  }

  /** The element `seg` of a container, trying pattern elements against the rest of the path when several fit. */
  private child(container: ConstructedValue, seg: string, rest: string[], instance: ClassInfo): { child: ContainerChild; approximate?: string } | string {
    const children = container.children;
    const exactOnly = !container.openEnded && children.every((c) => c.key !== '*');
    let key = seg;
    if (/^-\d+$/.test(seg) && exactOnly) key = String(children.length + Number(seg));
    const exact = children.filter((c) => c.key === key);
    if (exact.length > 0) return { child: exact[exact.length - 1] };
    const n = /^\d+$/.test(key) ? Number(key) : NaN;
    const cyc = children.filter((c) => c.cycle && n >= c.cycle.start && (n - c.cycle.start) % c.cycle.period === c.cycle.phase);
    if (cyc.length > 0) return { child: cyc[0] };
    const any = children.filter((c) => c.key === '*' && !c.cycle);
    if (any.length === 1) {
      const c = any[0];
      const patterned = c.origin === 'comprehension' || c.origin === 'repeat';
      return { child: c, ...(patterned ? {} : { approximate: `element '${seg}' is one of the elements added on line ${c.range.line + 1}` }) };
    }
    if (any.length > 1) {
      // Several candidates: the first under which the rest of the path resolves.
      const fits = any.filter((c) => rest.length === 0 || this.fits(c, rest, instance));
      const chosen = fits[0] ?? any[0];
      const lines = [...new Set(any.map((c) => c.range.line + 1))].join(', ');
      return { child: chosen, approximate: `element '${seg}' could be any of the elements on lines ${lines}` };
    }
    if (container.openEnded) return `has elements the source builds dynamically; element '${seg}' cannot be located`;
    return `has no element '${seg}' in the source (${children.length} found: ${children.map((c) => c.key).join(', ') || 'none'})`;
  }

  private fits(child: ContainerChild, rest: string[], instance: ClassInfo): boolean {
    const at = this.enter(child, instance, '');
    if (at.t === 'class') return this.walk(at.cls, rest).ok;
    if (at.t === 'container') return !!rest[0] && typeof this.child(at.value, rest[0], rest.slice(1), instance) !== 'string';
    if (at.t === 'external') return rest.length === 1;
    return false;
  }

  /** Can `seg` be a parameter (or buffer) of a module of a class not defined here? torch.nn classes: any name; others: weight/bias-like names. */
  private libraryParameter(value: ConstructedValue, seg: string): boolean {
    if (value.kind === 'value' || value.kind === 'container') return false;
    return PARAMETER_NAME.test(seg);
  }

  private noAttributeReason(cls: ClassInfo, seg: string, externalBase?: string): string {
    let reason = `no attribute '${seg}' in class ${cls.name}`;
    const dynamic = cls.attributes.filter((a) => a.via === 'setattr' || a.namePattern || (a.note ?? '').startsWith('name computed'));
    if (dynamic.length > 0) reason += ` (attributes set dynamically on line ${[...new Set(dynamic.map((d) => d.target.line + 1))].join(', ')} cannot be named statically)`;
    else if (externalBase) reason += ` (it may be inherited from ${externalBase}, which is not defined in this file)`;
    else if (!cls.methods.some((m) => m.name === '__init__')) reason += ` (class ${cls.name} has no __init__ in this file)`;
    return reason;
  }

  private externalReason(value: ConstructedValue, label: string, rest: string): string {
    if (value.kind === 'value' || !value.className) {
      const how = value.note ? `${value.note}` : `assigned from \`${value.expression}\``;
      return `${label} is ${how}, so its class is not known from this file and '${rest}' cannot be located`;
    }
    const callee = value.callee ?? value.className;
    const shadowed = this.index.classes.filter((c) => c.qualifiedName === callee).pop();
    const rebinding = shadowed ? this.index.imports.find((b) => b.name === callee && b.line > shadowed.line) : undefined;
    if (shadowed && rebinding) {
      return `class ${callee} defined on line ${shadowed.line + 1} is rebound by the import on line ${rebinding.line + 1} (from ${rebinding.origin.replace(/\.[^.]+$/, '')}), so the class used is not defined in this file and '${rest}' cannot be located`;
    }
    const canonical = canonicalName(callee, this.index.imports);
    const imported = this.index.imports.find((b) => b.name === (value.callee ?? '').split('.')[0]);
    const where = isTorchModuleClass(canonical) ? ' (it comes from torch.nn)' : imported ? ` (it is imported from ${imported.origin.replace(/\.[^.]+$/, '') || imported.origin})` : '';
    return `class ${value.className} is not defined in this file${where}, so '${rest}' cannot be located`;
  }
}

/** Names that are parameters or buffers of library modules, not submodules. */
const PARAMETER_NAME = /(^|_)(weight|bias)(_|$)|^(running_mean|running_var|num_batches_tracked|scale|gamma|beta)$|_orig$|^(in_proj|out_proj)_(weight|bias)$/;

function safeTest(pattern: string, name: string): boolean {
  try {
    return new RegExp(pattern).test(name);
  } catch {
    return false;
  }
}

/** Does a call/use chain name the path segments `segs`? `'*'` in the chain matches any element. */
function chainMatches(chain: readonly string[], segs: readonly string[], prefix: boolean): boolean {
  if (prefix ? chain.length < segs.length : chain.length !== segs.length) return false;
  for (let i = 0; i < segs.length; i++) if (chain[i] !== segs[i] && chain[i] !== '*' && !/^-\d+$/.test(chain[i])) return false;
  return true;
}

function sortedUnique(lines: number[]): number[] {
  return [...new Set(lines)].sort((a, b) => a - b);
}

/** Builds the mapped record for a walk. */
function record(resolver: Resolver, root: ClassInfo, path: string, walk: Walk, file: string | undefined): ResolvedModule {
  const { steps, at, parameter, librarySubmodule } = walk;
  const segments = steps.map((s) => s.segment);
  const modulePath = parameter !== undefined ? segments.join('.') : path;
  if (steps.length === 0) {
    return {
      path,
      modulePath,
      ...(parameter !== undefined ? { parameter } : {}),
      ...(file !== undefined ? { file } : {}),
      line: root.nameRange.line,
      definition: root.nameRange,
      callLines: [],
      calls: [],
      className: root.name,
      classLine: root.line,
      kind: parameter !== undefined ? 'parameter' : 'root',
      ownerClass: root.qualifiedName,
      origin: 'source',
    };
  }
  const last = steps[steps.length - 1];
  const value = last.value;
  const definition: LineRange = 'target' in value ? value.target : value.range;
  const kind: MappedKind = parameter !== undefined || value.kind === 'parameter' || value.kind === 'buffer' ? 'parameter' : value.kind === 'container' ? 'container' : 'module';
  // Calls: chains from each instance on the way down that name the rest of the path exactly, or a
  // prefix of it that ends at an nn.Sequential whose elements (and their Sequential elements) follow.
  const calls: CallSite[] = [];
  for (let k = 0; k < steps.length; k++) {
    if (steps[k].instanceStart !== k) continue;
    const rel = segments.slice(k);
    const all = resolver.callsOf(steps[k].instance);
    for (const c of all) {
      if (chainMatches(c.chain, rel, false)) calls.push(c);
      // A container runs where its elements are called (`for blk in self.blocks: blk(x)`).
      else if (kind === 'container' && c.chain.length === rel.length + 1 && chainMatches(c.chain, rel, true)) calls.push({ ...c, through: 'elements' });
      else {
        for (let m = k; m < steps.length - 1; m++) {
          const seqRun = steps.slice(m + 1).every((s, j) => {
            const holder = steps[m + j].value;
            return holder.kind === 'container' && holder.containerType === 'Sequential' && 'key' in s.value;
          });
          if (seqRun && chainMatches(c.chain, segments.slice(k, m + 1), false)) {
            calls.push({ ...c, through: 'container' });
            break;
          }
        }
      }
    }
    if (kind === 'parameter') {
      const usesRel = parameter !== undefined ? [...rel, parameter] : rel;
      for (const u of resolver.usesOf(steps[k].instance)) {
        if (chainMatches(u.chain, usesRel, true)) calls.push({ line: u.line, column: u.column, endColumn: u.endColumn, chain: u.chain, method: u.method, via: 'direct' });
      }
    }
  }
  const seen = new Set<string>();
  const uniqueCalls = calls
    .filter((c) => {
      const key = `${c.line}:${c.column}`;
      if (seen.has(key)) return false;
      seen.add(key);
      return true;
    })
    .sort((a, b) => a.line - b.line || a.column - b.column);
  const approximate = steps.map((s) => s.approximate).filter((a): a is string => !!a);
  if (librarySubmodule !== undefined) approximate.push(`'${librarySubmodule}' is a submodule inside the torch.nn class ${value.className}; shown where that module is defined`);
  const cls = at.t === 'class' ? at.cls : undefined;
  const className =
    value.kind === 'buffer' && parameter === undefined ? undefined : kind === 'parameter' && parameter === undefined ? value.className ?? 'Parameter' : value.containerType ?? value.className;
  return {
    path,
    modulePath,
    ...(parameter !== undefined ? { parameter } : {}),
    ...(file !== undefined ? { file } : {}),
    line: definition.line,
    definition,
    ...(value.expression ? { expression: value.expression } : {}),
    callLines: sortedUnique(uniqueCalls.map((c) => c.line)),
    calls: uniqueCalls,
    ...(className ? { className } : {}),
    ...(cls ? { classLine: cls.line } : {}),
    kind,
    ownerClass: last.owner.qualifiedName,
    origin: 'source',
    ...(approximate.length > 0 ? { approximate: approximate.join('; ') } : {}),
    ...(value.note ? { note: value.note } : {}),
  };
}

function noRoot(index: SourceIndex, paths: readonly string[], reason: string): ModuleMapping {
  return {
    ...(index.file !== undefined ? { file: index.file } : {}),
    root: null,
    rootReason: reason,
    resolved: new Map(),
    unresolved: new Map(paths.map((p) => [p, { path: p, reason }])),
    instances: new Map(),
  };
}

/**
 * Resolves each dotted module path from a root class: `options.rootClass` (simple or qualified
 * name), or else the nn.Module class whose attribute tree resolves the most paths (ties: a class no
 * other class of the file constructs, then the later one). Never throws.
 */
export function mapModulePaths(index: SourceIndex, paths: readonly string[], options: MapOptions = {}): ModuleMapping {
  const list = [...new Set(paths.filter((p) => typeof p === 'string'))];
  try {
    return mapChecked(index, list, options);
  } catch (err) {
    return noRoot(index, list, `the source mapper failed: ${err instanceof Error ? err.message : String(err)}`);
  }
}

function mapChecked(index: SourceIndex, paths: string[], options: MapOptions): ModuleMapping {
  const resolver = new Resolver(index);
  const { classes } = index;
  let candidates: ClassInfo[];
  if (options.rootClass) {
    candidates = classes.filter((c) => c.qualifiedName === options.rootClass || c.name === options.rootClass);
    if (candidates.length === 0) return noRoot(index, paths, `class ${options.rootClass} is not defined in this file`);
  } else {
    candidates = classes.filter((c) => c.isModule);
    if (candidates.length === 0) {
      // No class derives visibly from nn.Module (a base imported from elsewhere?): try classes with attributes.
      candidates = classes.filter((c) => c.attributes.some((a) => a.kind !== 'value'));
      if (candidates.length === 0) return noRoot(index, paths, classes.length === 0 ? 'this file defines no class' : 'this file defines no nn.Module class');
    }
  }
  const constructed = new Set<string>();
  const collect = (v: ConstructedValue, scope: ClassInfo) => {
    const c = resolver.classOf(v, scope);
    if (c) constructed.add(c.qualifiedName);
    for (const ch of v.children) collect(ch, scope);
  };
  for (const c of classes) for (const a of c.attributes) collect(a, c);
  let best: { cls: ClassInfo; score: number[] } | null = null;
  for (const cls of candidates) {
    // Exact resolutions count double: a guess into a library class should not pick the root.
    let resolvedCount = 0;
    for (const p of paths) {
      if (p === '') continue;
      const w = resolver.walk(cls, p.split('.'));
      if (w.ok) resolvedCount += w.walk.librarySubmodule !== undefined || w.walk.steps.some((s) => s.approximate) ? 1 : 2;
    }
    const score = [resolvedCount, constructed.has(cls.qualifiedName) ? 0 : 1, cls.isModule ? 1 : 0, cls.line];
    if (!best || compareScores(score, best.score) > 0) best = { cls, score };
  }
  const root = best!.cls;
  const rootReason = options.rootClass
    ? `class ${root.qualifiedName} was requested`
    : `class ${root.qualifiedName} resolves the most paths${candidates.length > 1 ? ` of ${candidates.length} candidate classes` : ''}`;
  const resolved = new Map<string, ResolvedModule>();
  const unresolved = new Map<string, UnresolvedModule>();
  const instances = new Map<string, string[]>([[root.qualifiedName, ['']]]);
  for (const path of paths) {
    const segments = path === '' ? [] : path.split('.');
    if (segments.some((s) => s === '')) {
      unresolved.set(path, { path, reason: `'${path}' is not a module path` });
      continue;
    }
    const result = resolver.walk(root, segments);
    if (result.ok) {
      const r = record(resolver, root, path, result.walk, index.file);
      resolved.set(path, r);
      if (result.walk.at.t === 'class' && result.walk.parameter === undefined && path !== '') {
        const list = instances.get(result.walk.at.cls.qualifiedName) ?? [];
        list.push(path);
        instances.set(result.walk.at.cls.qualifiedName, list);
      }
    } else {
      const nearest = result.walk.steps.length > 0 ? record(resolver, root, result.walk.steps.map((s) => s.segment).join('.'), result.walk, index.file) : undefined;
      unresolved.set(path, { path, reason: result.reason, ...(nearest ? { nearest } : {}) });
    }
  }
  return {
    ...(index.file !== undefined ? { file: index.file } : {}),
    root: { name: root.name, qualifiedName: root.qualifiedName, line: root.line },
    rootReason,
    resolved,
    unresolved,
    instances,
  };
}

function compareScores(a: number[], b: number[]): number {
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return a[i] - b[i];
  return 0;
}
