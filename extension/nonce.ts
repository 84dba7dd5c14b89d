import { randomBytes } from 'node:crypto';

/**
 * A CSP nonce for the webview's script tag: 192 bits from the OS's cryptographic source (Math.random is
 * predictable), base64 as the CSP grammar allows. No vscode import (test/webviewSecurity.test.ts).
 */
export function makeNonce(): string {
  return randomBytes(24).toString('base64');
}
