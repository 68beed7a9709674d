/**
 * Worker authentication: an HMAC-SHA256 challenge–response over a shared token. The coordinator
 * sends a fresh random nonce; the worker answers with MAC(token, context | nonce | name). The token
 * itself never crosses the wire.
 */
import { createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const AUTH_CONTEXT = 'vilm-auth-v1';

/** A fresh challenge nonce (32 random bytes, hex). */
export function newNonce(): string {
  return randomBytes(32).toString('hex');
}

/** The challenge–response MAC (hex). */
export function authMac(token: string, nonce: string, name: string): string {
  return createHmac('sha256', token).update(`${AUTH_CONTEXT}|${nonce}|${name}`).digest('hex');
}

/** Constant-time check of a worker's MAC. */
export function verifyMac(token: string, nonce: string, name: string, mac: string): boolean {
  const want = Buffer.from(authMac(token, nonce, name), 'hex');
  const got = Buffer.from(mac, 'hex');
  return got.length === want.length && timingSafeEqual(got, want);
}
