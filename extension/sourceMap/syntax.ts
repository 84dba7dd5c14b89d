/** Small helpers over tree-sitter nodes shared by the indexer. Lines and columns are 0-based (UTF-16 columns). */
import type { Node } from 'web-tree-sitter';
import type { LineRange, SourceSpan } from './types';

export type { Node };

/** Non-null named children. */
export function named(n: Node | null | undefined): Node[] {
  if (!n) return [];
  return n.namedChildren.filter((c): c is Node => !!c && c.type !== 'comment');
}

export function field(n: Node | null | undefined, name: string): Node | null {
  return n ? n.childForFieldName(name) : null;
}

export function spanOf(n: Node): SourceSpan {
  return { line: n.startPosition.row, column: n.startPosition.column, endLine: n.endPosition.row, endColumn: n.endPosition.column };
}

/** The part of `n` on its first line (to the end of the line's code when `n` spans lines). */
export function rangeOf(n: Node, lines: readonly string[]): LineRange {
  const line = n.startPosition.row;
  const endColumn = n.endPosition.row === line ? n.endPosition.column : (lines[line] ?? '').trimEnd().length;
  return { line, column: n.startPosition.column, endColumn: Math.max(endColumn, n.startPosition.column) };
}

/** Code of a whole line (first to last non-blank character), for lines without a node. */
export function lineRange(line: number, lines: readonly string[]): LineRange {
  const text = lines[line] ?? '';
  const column = text.length - text.trimStart().length;
  return { line, column, endColumn: Math.max(column, text.trimEnd().length) };
}

const MAX_TEXT = 240;

/** Source text with whitespace runs collapsed, shortened to a readable length. */
export function compact(text: string): string {
  const t = text.replace(/\s+/g, ' ').replace(/([([{]) /g, '$1').replace(/ ([)\]}])/g, '$1').trim();
  return t.length > MAX_TEXT ? `${t.slice(0, MAX_TEXT - 1)}…` : t;
}

/** Last identifier of a dotted expression: `nn.Linear` -> `Linear`. */
export function lastIdentifier(text: string): string {
  const m = /([A-Za-z_]\w*)\s*$/.exec(text);
  return m ? m[1] : text;
}

/** Value of a plain string literal (no interpolation), else null. */
export function stringValue(n: Node | null | undefined): string | null {
  if (!n) return null;
  if (n.type === 'concatenated_string') {
    const parts = named(n).map(stringValue);
    return parts.every((p) => p !== null) ? parts.join('') : null;
  }
  if (n.type !== 'string') return null;
  let out = '';
  for (const c of n.children) {
    if (!c) continue;
    if (c.type === 'interpolation') return null;
    if (c.type === 'string_start' && /f/i.test(c.text)) {
      if (n.children.some((k) => k?.type === 'interpolation')) return null;
    }
    if (c.type === 'string_content' || c.type === 'escape_sequence') out += c.text;
  }
  return out;
}

const escapeRe = (s: string) => s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&');

/**
 * A regular expression (source, anchored) for the names a dynamic name expression can produce:
 * f-strings (`f"layer{i}"`), `"layer" + str(i)`, `"layer{}".format(i)`, `"layer%d" % i`. Null when
 * there is no literal part to go on.
 */
export function namePattern(n: Node | null | undefined): string | null {
  if (!n) return null;
  const parts: string[] = [];
  let literal = false;
  const walk = (e: Node): void => {
    if (e.type === 'string') {
      for (const c of e.children) {
        if (!c) continue;
        if (c.type === 'string_content' || c.type === 'escape_sequence') {
          parts.push(escapeRe(c.text));
          if (c.text.length > 0) literal = true;
        } else if (c.type === 'interpolation') parts.push('.+');
      }
    } else if (e.type === 'binary_operator' && field(e, 'operator')?.text === '+') {
      walk(field(e, 'left')!);
      walk(field(e, 'right')!);
    } else if (e.type === 'binary_operator' && field(e, 'operator')?.text === '%') {
      const s = stringValue(field(e, 'left'));
      if (s !== null) {
        literal ||= s.replace(/%[-#0 +]*\d*(\.\d+)?[a-zA-Z%]/g, '').length > 0;
        parts.push(s.split(/%[-#0 +]*\d*(?:\.\d+)?[a-zA-Z]/).map(escapeRe).join('.+'));
      } else parts.push('.+');
    } else if (e.type === 'call' && field(field(e, 'function'), 'attribute')?.text === 'format') {
      const s = stringValue(field(field(e, 'function'), 'object'));
      if (s !== null) {
        literal ||= s.replace(/\{[^}]*\}/g, '').length > 0;
        parts.push(s.split(/\{[^}]*\}/).map(escapeRe).join('.+'));
      } else parts.push('.+');
    } else if (e.type === 'parenthesized_expression') {
      const inner = named(e)[0];
      if (inner) walk(inner);
    } else parts.push('.+');
  };
  walk(n);
  return literal ? `^${parts.join('')}$` : null;
}

/** Walks `n`'s descendants depth-first in source order; `visit` returning false skips a subtree. */
export function walk(n: Node, visit: (d: Node) => boolean | void): void {
  for (const c of n.namedChildren) {
    if (!c) continue;
    if (visit(c) === false) continue;
    walk(c, visit);
  }
}

/** `self.<name>` -> name. */
export function selfAttribute(n: Node | null | undefined): string | null {
  if (!n || n.type !== 'attribute') return null;
  const obj = field(n, 'object');
  const attr = field(n, 'attribute');
  return obj?.type === 'identifier' && obj.text === 'self' && attr ? attr.text : null;
}

/** Positional arguments of a call (no keywords, no comments); a generator argument counts as one. */
export function positionalArgs(call: Node): Node[] {
  const args = field(call, 'arguments');
  if (!args) return [];
  if (args.type === 'generator_expression') return [args];
  return named(args).filter((a) => a.type !== 'keyword_argument' && a.type !== 'dictionary_splat');
}

export function keywordArg(call: Node, name: string): Node | null {
  const args = field(call, 'arguments');
  for (const a of named(args)) if (a.type === 'keyword_argument' && field(a, 'name')?.text === name) return field(a, 'value');
  return null;
}

export function keywordArgs(call: Node): { name: string; value: Node }[] {
  const out: { name: string; value: Node }[] = [];
  for (const a of named(field(call, 'arguments'))) {
    const name = field(a, 'name');
    const value = field(a, 'value');
    if (a.type === 'keyword_argument' && name && value) out.push({ name: name.text, value });
  }
  return out;
}

/** Strips parentheses: `((x))` -> `x`. */
export function unparen(n: Node): Node {
  let cur = n;
  while (cur.type === 'parenthesized_expression') {
    const inner = named(cur)[0];
    if (!inner) break;
    cur = inner;
  }
  return cur;
}

/** Does `outer` contain `inner` (inclusive)? */
export function contains(outer: Node, inner: Node): boolean {
  return outer.startIndex <= inner.startIndex && inner.endIndex <= outer.endIndex;
}

export function isBefore(a: Node, b: Node): boolean {
  return a.startIndex < b.startIndex;
}
