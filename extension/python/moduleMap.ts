/**
 * Maps module paths as PyTorch names them (`blocks.0.attn.q_proj`, parameters like
 * `blocks.0.attn.q_proj.bias`) to source lines, walking from the model class through attribute
 * constructors and container elements. Unresolvable paths get a reason, never an exception.
 */
import type { AttrInfo, ChildInfo, ClassInfo, SourceIndex } from './sourceIndex';

export interface MappedModule {
  path: string;
  /** 0-based line of the definition (`self.fc = nn.Linear(...)`, or the container element). */
  line: number;
  /** 0-based lines where it is called in forward. */
  callLines: number[];
  className?: string;
  kind: 'module' | 'parameter' | 'container' | 'root';
}

export interface ModuleMapping {
  root: ClassInfo | null;
  mapped: Map<string, MappedModule>;
  unmapped: { path: string; reason: string }[];
}

interface Cursor {
  cls: ClassInfo | null;
  /** Library class name when the walk left the file (nn.Linear...). */
  external?: string;
  line: number;
  callLines: number[];
  className?: string;
  kind: MappedModule['kind'];
}

function resolve(index: SourceIndex, root: ClassInfo, path: string): MappedModule | string {
  const byName = new Map(index.classes.map((c) => [c.name, c]));
  const classOf = (name?: string) => (name ? byName.get(name) ?? null : null);
  let cur: Cursor = { cls: root, line: root.line, callLines: [], kind: 'root' };
  if (path === '') return { path, line: root.line, callLines: [], className: root.name, kind: 'root' };
  const parts = path.split('.');
  let container: { attr: AttrInfo; owner: ClassInfo } | null = null;
  for (let i = 0; i < parts.length; i++) {
    const seg = parts[i];
    if (container) {
      const child: ChildInfo | undefined = container.attr.children.find((c) => c.key === seg) ?? container.attr.children.find((c) => c.key === '*');
      if (!child) return `${container.attr.className ?? 'container'} '${container.attr.name}' in class ${container.owner.name} has no element '${seg}' in the source`;
      // Elements are called in a loop over the container, by index, or through the container itself (Sequential).
      const calls = container.owner.childCalls.get(container.attr.name) ?? container.owner.calls.get(container.attr.name) ?? [];
      cur = { cls: classOf(child.className), external: classOf(child.className) ? undefined : child.className, line: child.line, callLines: calls, className: child.className, kind: 'module' };
      container = null;
      continue;
    }
    if (!cur.cls) {
      // Past the file's classes: only a parameter of a library module (weight, bias) can follow.
      if (i === parts.length - 1) return { path, line: cur.line, callLines: cur.callLines, className: cur.className, kind: 'parameter' };
      return `class ${cur.external ?? '?'} is not defined in this file, so '${parts.slice(i).join('.')}' cannot be located`;
    }
    const attr = cur.cls.attrs.get(seg);
    if (!attr) {
      if (i === parts.length - 1 && /^(weight|bias)$/.test(seg)) return { path, line: cur.line, callLines: cur.callLines, className: cur.className, kind: 'parameter' };
      return `no attribute '${seg}' is assigned in ${cur.cls.name}.__init__`;
    }
    const calls = cur.cls.calls.get(seg) ?? [];
    if (attr.kind === 'container') {
      container = { attr, owner: cur.cls };
      cur = { cls: null, external: attr.className, line: attr.line, callLines: calls, className: attr.className, kind: 'container' };
      continue;
    }
    cur = { cls: classOf(attr.className), external: attr.className, line: attr.line, callLines: calls, className: attr.className, kind: attr.kind === 'parameter' ? 'parameter' : 'module' };
  }
  return { path, line: cur.line, callLines: cur.callLines, className: cur.className, kind: container ? 'container' : cur.kind };
}

/** Maps paths from `root` (default: the nn.Module class that resolves the most paths, preferring unreferenced classes). */
export function mapModulePaths(index: SourceIndex, paths: readonly string[], rootClass?: string): ModuleMapping {
  const modules = index.classes.filter((c) => c.isModule);
  const candidates = rootClass ? index.classes.filter((c) => c.name === rootClass) : modules;
  if (candidates.length === 0) {
    return { root: null, mapped: new Map(), unmapped: paths.map((p) => ({ path: p, reason: rootClass ? `class ${rootClass} is not defined in this file` : 'this file defines no nn.Module class' })) };
  }
  const referenced = new Set(index.classes.flatMap((c) => [...c.attrs.values()].flatMap((a) => [a.className, ...a.children.map((ch) => ch.className)])));
  let best: { root: ClassInfo; score: number } | null = null;
  for (const c of candidates) {
    const score = paths.filter((p) => p !== '' && typeof resolve(index, c, p) !== 'string').length * 2 + (referenced.has(c.name) ? 0 : 1);
    if (!best || score > best.score) best = { root: c, score };
  }
  const root = best!.root;
  const mapped = new Map<string, MappedModule>();
  const unmapped: { path: string; reason: string }[] = [];
  for (const p of paths) {
    const r = resolve(index, root, p);
    if (typeof r === 'string') unmapped.push({ path: p, reason: r });
    else mapped.set(p, r);
  }
  return { root, mapped, unmapped };
}
