/** Module health in the panel, from the host's findings (same thresholds as the editor overlays). */
import type { Finding } from '../engine/inspect/diagnose';

const ORDER = ['non-finite', 'exploding', 'vanishing', 'dead-units', 'zero-gradient', 'no-gradient'];
const HEALTH: Record<string, string> = {
  'non-finite': 'non-finite', exploding: 'exploding', vanishing: 'vanishing', 'dead-units': 'dead', 'zero-gradient': 'zero', 'no-gradient': 'zero',
};

export function healthByModule(findings: readonly Finding[]): Map<string, string> {
  const out = new Map<string, string>();
  const sorted = [...findings].sort((a, b) => ORDER.indexOf(a.kind) - ORDER.indexOf(b.kind));
  // Export notes say where numbers come from, not how healthy the gradient is.
  for (const f of sorted) if (!out.has(f.modulePath) && HEALTH[f.kind]) out.set(f.modulePath, HEALTH[f.kind]);
  return out;
}
