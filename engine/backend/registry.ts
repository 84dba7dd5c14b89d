import { Backend } from './backend';
import { referenceBackend } from './reference';

let current: Backend = referenceBackend;

/** The backend ops dispatch to. Starts as the TypeScript reference backend. */
export function getBackend(): Backend {
  return current;
}

export function setBackend(backend: Backend): void {
  current = backend;
}

/** Runs `fn` with `backend` active, restoring the previous one afterwards. */
export function withBackend<T>(backend: Backend, fn: () => T): T {
  const previous = current;
  current = backend;
  try {
    return fn();
  } finally {
    current = previous;
  }
}
