/** The live status line ("live · step 1,240 · 3 s ago"), shared by the status bar and the panel. Pure. */
import type { LiveStatus } from '../protocol';

/** "just now", "3 s ago", "2 min ago", "1 h ago". */
export function agoText(ms: number): string {
  if (!(ms >= 1000)) return 'just now';
  const s = Math.floor(ms / 1000);
  if (s < 60) return `${s} s ago`;
  const min = Math.floor(s / 60);
  if (min < 60) return `${min} min ago`;
  return `${Math.floor(min / 60)} h ago`;
}

const stepText = (step: number | null) => (step === null ? 'no step yet' : `step ${step.toLocaleString('en-US')}`);

/** The status line; `ageMs` is the time since the last step now (the status's age plus what passed since it was sent). */
export function liveText(status: LiveStatus, ageMs: number | null = status.ageMs): string {
  switch (status.state) {
    case 'waiting':
      return `live · waiting for the first step · ${status.file}`;
    case 'live':
      return `live · ${stepText(status.step)}${ageMs === null ? '' : ` · ${agoText(ageMs)}`}`;
    case 'ended':
      return `finished · ${stepText(status.step)}`;
    case 'detached':
      return `detached · ${stepText(status.step)}`;
  }
}
