/** Which model class of a file to export, as far as the editor can tell (the helper decides the rest). No vscode import. */
import type { ModuleClass } from '../sourceAnchors';

/**
 * 'codelens': clicked (strict: an error if it cannot be built); 'cursor': the class holding the cursor (a block
 * that needs constructor arguments gives way to the model); 'only': the file's only module class;
 * 'remembered': the class exported last time for this file.
 */
export type ClassReason = 'codelens' | 'cursor' | 'only' | 'remembered';

export interface ClassRequest {
  className?: string;
  reason?: ClassReason;
}

export function requestedClass(classes: readonly ModuleClass[], hints: { clicked?: string; cursorLine?: number; remembered?: string }): ClassRequest {
  if (hints.clicked) return { className: hints.clicked, reason: 'codelens' };
  if (classes.length === 1) return { className: classes[0].name, reason: 'only' };
  if (hints.cursorLine !== undefined) {
    // Innermost class holding the cursor (nested classes start later).
    const holding = classes.filter((c) => c.line <= hints.cursorLine! && hints.cursorLine! <= c.endLine).sort((a, b) => b.line - a.line)[0];
    if (holding) return { className: holding.name, reason: 'cursor' };
  }
  if (hints.remembered && classes.some((c) => c.name === hints.remembered)) return { className: hints.remembered, reason: 'remembered' };
  return {};
}
