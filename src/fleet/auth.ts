/**
 * Authentication of the fleet's WebSocket link, in two layers (the protocol is in ./contract.ts):
 *
 * 1. **At the HTTP upgrade**, before a WebSocket exists: the worker sends its name, a fresh nonce,
 *    the time, and MAC(token, "vilm-upgrade-v2|time|nonce|name"). The coordinator checks the MAC
 *    (constant time), the time (±CLOCK_WINDOW_MS) and that the nonce was not used before (a replay
 *    cache covering the window), so an unauthenticated peer costs one parsed HTTP request and never
 *    reaches a frame decoder. The coordinator answers with its own fresh nonce.
 * 2. **Every frame after it** carries HMAC-SHA256(sessionKey, seq ‖ SHA-256(payload)) as a 32-byte
 *    trailer (hash-then-MAC: the weights frame sent to every worker after a step is hashed once,
 *    and each connection only MACs 40 bytes; the trailer goes as a second WebSocket fragment, so
 *    the multi-MB payload is never copied).
 *    Each direction has its own key, derived from the token and both nonces, and its own implicit
 *    sequence number (0, 1, 2 … on the receiving side too), so an injected, altered, replayed,
 *    reordered or reflected frame fails the MAC. The coordinator's first frame (`welcome`) is sealed
 *    too: that is its proof of the token, and a worker refuses a coordinator that cannot give it.
 *
 * Without a token (a loopback coordinator, or `--insecure`) neither layer applies: frames travel
 * bare and the coordinator says `none` in its answer; a worker that has a token refuses it.
 * HMAC-SHA256 is Node's own (OpenSSL); the token itself never crosses the wire.
 */
import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

const EMPTY = new Uint8Array(0);

/** HTTP headers of the upgrade (lower case, as node:http hands them). */
export const HEADER = {
  protocol: 'x-vilm-protocol',
  name: 'x-vilm-name',
  nonce: 'x-vilm-nonce',
  time: 'x-vilm-time',
  auth: 'x-vilm-auth',
  /** coordinator → worker on a refusal: a short reason (printable ASCII) */
  refused: 'x-vilm-refused',
} as const;

/** The coordinator's `x-vilm-auth` answer when it has no token. */
export const NO_AUTH = 'none';

/** How far a worker's clock may be from the coordinator's (the replay cache spans twice this). */
export const CLOCK_WINDOW_MS = 300_000;

/** Bytes of the MAC trailer of every frame. */
export const MAC_BYTES = 32;

/** A worker name as it may appear in a header, a log line and a metric label. */
export const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,47}$/;

/** A fresh nonce: 32 random bytes, hex. */
export function newNonce(): string {
  return randomBytes(32).toString('hex');
}

const NONCE_PATTERN = /^[0-9a-f]{64}$/;

/** The worker's upgrade MAC (hex). */
export function upgradeMac(token: string, time: number, nonce: string, name: string): string {
  return createHmac('sha256', token).update(`vilm-upgrade-v2|${time}|${nonce}|${name}`).digest('hex');
}

/** The upgrade headers a worker sends. */
export function upgradeHeaders(token: string | undefined, name: string, nonce: string, protocol: number, now = Date.now()): Record<string, string> {
  const h: Record<string, string> = { [HEADER.protocol]: String(protocol), [HEADER.name]: name, [HEADER.nonce]: nonce, [HEADER.time]: String(now) };
  if (token) h[HEADER.auth] = upgradeMac(token, now, nonce, name);
  return h;
}

/** The two directions' keys of one session. */
export interface SessionKeys { send: Buffer; recv: Buffer }

/** Keys for `role`'s side of the session of worker nonce `wn` and coordinator nonce `cn`. */
export function sessionKeys(token: string, role: 'coordinator' | 'worker', wn: string, cn: string): SessionKeys {
  const key = (dir: string) => createHmac('sha256', token).update(`vilm-session-v2|${dir}|${wn}|${cn}`).digest();
  const c2w = key('c2w'), w2c = key('w2c');
  return role === 'coordinator' ? { send: c2w, recv: w2c } : { send: w2c, recv: c2w };
}

/** SHA-256 of payloads sent to several connections (the weights after a step), computed once. */
const digests = new WeakMap<Uint8Array, Buffer>();

function digestOf(payload: Uint8Array): Buffer {
  let d = digests.get(payload);
  if (!d) { d = createHash('sha256').update(payload).digest(); digests.set(payload, d); }
  return d;
}

function frameMac(key: Buffer, seq: number, digest: Buffer): Buffer {
  const s = Buffer.allocUnsafe(8);
  s.writeBigUInt64BE(BigInt(seq));
  return createHmac('sha256', key).update(s).update(digest).digest();
}

/** A frame whose MAC did not verify: altered, injected, replayed, reordered, or the wrong key. */
export class FrameAuthError extends Error {}

/**
 * One direction's sealing (send) and opening (receive) of frames. Without a key (no token) frames
 * pass through unchanged.
 */
export class FrameSeal {
  private seq = 0;
  constructor(private readonly key: Buffer | null) {}

  /** The MAC trailer of the next frame (empty without a key); send it right after `payload`. */
  trailer(payload: Uint8Array): Uint8Array {
    if (!this.key) return EMPTY;
    return frameMac(this.key, this.seq++, digestOf(payload));
  }

  /** Payload and trailer in one buffer (a copy: for small frames and tests). */
  seal(payload: Uint8Array): Uint8Array {
    if (!this.key) return payload;
    return Buffer.concat([payload, this.trailer(payload)]);
  }

  /** The payload of a sealed frame; throws FrameAuthError when its MAC does not verify. */
  open(bytes: Uint8Array): Uint8Array {
    if (!this.key) return bytes;
    if (bytes.byteLength < MAC_BYTES) throw new FrameAuthError('frame shorter than its MAC');
    const payload = bytes.subarray(0, bytes.byteLength - MAC_BYTES);
    const got = bytes.subarray(bytes.byteLength - MAC_BYTES);
    if (!timingSafeEqual(got, frameMac(this.key, this.seq, createHash('sha256').update(payload).digest()))) throw new FrameAuthError(`frame ${this.seq} failed authentication (altered, injected, replayed or out of order)`);
    this.seq++;
    return payload;
  }
}

/** Why an upgrade is refused: the HTTP status and a short reason (never a peer's value). */
export interface Refusal { status: number; reason: string }

/**
 * The coordinator's check of a worker's upgrade headers. Remembers accepted nonces for twice the
 * clock window so a captured request cannot be replayed; at most `maxNonces` are kept (a flood of
 * valid requests needs the token, and is then refused with 503 rather than growing the cache).
 */
export class UpgradeVerifier {
  private readonly seen = new Map<string, number>();

  constructor(private readonly token: string | undefined, private readonly protocol: number, private readonly maxNonces = 100_000) {}

  /** A refusal, or the worker's name and nonce. */
  check(headers: Record<string, string | string[] | undefined>, now = Date.now()): Refusal | { name: string; nonce: string } {
    const one = (k: string) => { const v = headers[k]; return typeof v === 'string' ? v : undefined; };
    const protocol = one(HEADER.protocol);
    if (protocol !== String(this.protocol)) {
      return { status: 426, reason: `protocol version mismatch: the coordinator speaks version ${this.protocol} (update vilm on both ends)` };
    }
    const name = one(HEADER.name), nonce = one(HEADER.nonce), time = Number(one(HEADER.time));
    if (name === undefined || !NAME_PATTERN.test(name)) return { status: 400, reason: 'bad worker name (1-48 of A-Z a-z 0-9 . _ -)' };
    if (nonce === undefined || !NONCE_PATTERN.test(nonce)) return { status: 400, reason: 'bad nonce' };
    if (!Number.isSafeInteger(time)) return { status: 400, reason: 'bad time' };
    if (this.token) {
      const mac = one(HEADER.auth) ?? '';
      const want = Buffer.from(upgradeMac(this.token, time, nonce, name), 'hex');
      const got = Buffer.from(/^[0-9a-f]{64}$/.test(mac) ? mac : '', 'hex');
      if (got.length !== want.length || !timingSafeEqual(got, want)) return { status: 401, reason: 'authentication failed' };
      const skew = time - now;
      if (Math.abs(skew) > CLOCK_WINDOW_MS) {
        return { status: 401, reason: `clock differs from the coordinator's by ${Math.round(skew / 1000)} s (allowed ±${CLOCK_WINDOW_MS / 1000} s): sync the clocks` };
      }
      this.expire(now);
      if (this.seen.has(nonce)) return { status: 401, reason: 'replayed request' };
      if (this.seen.size >= this.maxNonces) return { status: 503, reason: 'too many connection attempts, retry later' };
      this.seen.set(nonce, now + 2 * CLOCK_WINDOW_MS);
    }
    return { name, nonce };
  }

  private expire(now: number): void {
    // insertion order is expiry order (a fixed lifetime from `now`, which only grows)
    for (const [n, until] of this.seen) { if (until > now) break; this.seen.delete(n); }
  }
}
