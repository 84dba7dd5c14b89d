/** Name resolution shared by the indexer and the mapper: import aliases and class references. */
import type { ClassInfo, ImportBinding } from './types';

export const CONTAINER_TYPES = new Set(['Sequential', 'ModuleList', 'ModuleDict', 'ParameterList', 'ParameterDict']);
export const PARAMETER_CTORS = new Set(['Parameter', 'UninitializedParameter', 'UninitializedBuffer']);

/** The dotted origin of `text` through the file's imports (`nn.Linear` -> `torch.nn.Linear`). */
export function canonicalName(text: string, imports: readonly ImportBinding[]): string {
  const t = text.replace(/\s+/g, '');
  const dot = t.indexOf('.');
  const first = dot < 0 ? t : t.slice(0, dot);
  const rest = dot < 0 ? '' : t.slice(dot);
  let binding: ImportBinding | undefined;
  for (const b of imports) if (b.name === first) binding = b;
  if (binding) return binding.origin + rest;
  // The usual aliases, when the import is missing (a snippet) or not at top level.
  if (first === 'nn') return `torch.nn${rest}`;
  if (first === 'F') return `torch.nn.functional${rest}`;
  return t;
}

/** A torch.nn module class (not a function namespace like torch.nn.functional / torch.nn.init). */
export function isTorchModuleClass(canonical: string): boolean {
  return /^torch\.nn\.(?!functional\.|init\.|utils\.)/.test(canonical) && /\.[A-Z]\w*$/.test(canonical);
}

/**
 * The class of this file that `callee` names, seen from code in class `scope`: `Block` (a top-level or
 * function-local class, unless an import rebinds the name later), `Outer.Inner`, `self.Inner` /
 * `type(self).Inner` (a class nested in `scope` or its bases). `nn.Linear` never names a class of the
 * file, even when the file defines its own `Linear`.
 */
export function findClass(
  classes: readonly ClassInfo[],
  imports: readonly ImportBinding[],
  callee: string | undefined,
  scope?: ClassInfo,
  seen: Set<string> = new Set(),
): ClassInfo | undefined {
  if (!callee) return undefined;
  const name = callee.replace(/\s+/g, '');
  if (!/^[\w.()]+$/.test(name)) return undefined;
  const selfRef = /^(?:self|type\(self\)|self\.__class__)\.(.+)$/.exec(name);
  if (selfRef) {
    if (!scope) return undefined;
    return nestedIn(classes, imports, scope, selfRef[1], seen);
  }
  let hit: ClassInfo | undefined;
  for (const c of classes) if (c.qualifiedName === name) hit = c;
  if (!hit) return undefined;
  if (!name.includes('.')) {
    // `from x import Block` after `class Block` rebinds the name (Python runs __init__ later).
    const shadow = imports.some((b) => b.name === name && b.line > hit!.line);
    if (shadow) return undefined;
  }
  return hit;
}

function nestedIn(classes: readonly ClassInfo[], imports: readonly ImportBinding[], scope: ClassInfo, rest: string, seen: Set<string>): ClassInfo | undefined {
  if (seen.has(scope.qualifiedName)) return undefined;
  seen.add(scope.qualifiedName);
  let hit: ClassInfo | undefined;
  for (const c of classes) if (c.qualifiedName === `${scope.qualifiedName}.${rest}`) hit = c;
  if (hit) return hit;
  for (const b of scope.bases) {
    const base = findClass(classes, imports, b, undefined, seen);
    if (base) {
      const inBase = nestedIn(classes, imports, base, rest, seen);
      if (inBase) return inBase;
    }
  }
  return undefined;
}

/** Base classes of `cls` defined in this file (direct ones, in order). */
export function fileBases(classes: readonly ClassInfo[], imports: readonly ImportBinding[], cls: ClassInfo): ClassInfo[] {
  return cls.bases.map((b) => findClass(classes, imports, b)).filter((c): c is ClassInfo => !!c && c !== cls);
}
