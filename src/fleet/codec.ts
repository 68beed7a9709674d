/**
 * Frames on the wire: one WebSocket binary message is one msgpack map (msgpackr, `moreTypes`:
 * typed arrays travel as raw little-endian bytes and come back as Float32Array / Int32Array /
 * Uint16Array), followed by its MAC when the link is authenticated (./auth.ts).
 *
 * A frame is data from a peer, so decoding accepts only what the protocol needs. msgpackr's decoder
 * always knows its built-in extensions (structured-clone ids and pointers — a 300-byte "billion
 * laughs" —, records, Set, Error, RegExp, BigInt, timestamps) and has no option to refuse all of
 * them, so `scanFrame` walks the bytes first, in one linear pass: maps with string keys, arrays,
 * strings, numbers, booleans, nil, and typed arrays of the three element types the protocol uses;
 * anything else, or nesting deeper than MAX_DEPTH, and the frame is refused before msgpackr sees
 * it. Then the version, the type, and every field of that type: exactly those keys, each of its
 * kind. Error messages never quote a peer's value.
 */
import { Packr } from 'msgpackr';
import type { RawData } from 'ws';
import { MAX_STRING_FIELD } from './constants.js';
import { PROTOCOL_VERSION, type Frame, type FrameType } from './contract.js';
import { GRAD_CODECS } from './grad-codec.js';

/** A frame that breaks the protocol; the message says what (one line). */
export class ProtocolError extends Error {
  constructor(message: string, readonly kind: 'version' | 'frame' = 'frame') { super(message); }
}

// plain maps (no records: a peer's record definitions would be state kept between frames)
const packr = new Packr({ moreTypes: true, useRecords: false, structuredClone: false });

export function encodeFrame(f: Frame): Uint8Array {
  return packr.pack(f);
}

/** The bytes of one received WebSocket message (ws hands a Buffer, an ArrayBuffer or fragments). */
export function messageBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}

type FieldKind = 'int' | 'num' | 'str' | 'bool' | 'f32' | 'i32' | 'u16' | 'obj' | 'codec';

/** The fields of every frame type; `satisfies` makes a new frame type without an entry a build error. */
const FIELDS = {
  welcome: { id: 'str', spec: 'obj', total: 'int', heartbeatMs: 'int' },
  weights: { version: 'int', weights: 'f32' },
  task: { step: 'int', version: 'int', taskId: 'int', level: 'int', index: 'int', shards: 'int', batchRows: 'int', seqLen: 'int', rowStart: 'int', tokens: 'u16', maxTokens: 'int', codec: 'codec' },
  result: { step: 'int', version: 'int', taskId: 'int', level: 'int', index: 'int', empty: 'bool', lossSum: 'num', tokenCount: 'int', rest: 'f32', embRows: 'i32', embValues: 'f32', computeSeconds: 'num' },
  result16: { step: 'int', version: 'int', taskId: 'int', level: 'int', index: 'int', empty: 'bool', lossSum: 'num', tokenCount: 'int', rest: 'u16', embRows: 'i32', embValues: 'u16', exps: 'i32', computeSeconds: 'num' },
  heartbeat: { time: 'num' },
  bye: { reason: 'str' },
} as const satisfies Record<FrameType, Record<string, FieldKind>>;

function checkField(t: string, k: string, kind: FieldKind, v: unknown): void {
  const ok = (() => {
    switch (kind) {
      case 'int': return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0;
      case 'num': return typeof v === 'number'; // finiteness is the result check's job (counted as 'nonfinite')
      case 'str': return typeof v === 'string' && v.length <= MAX_STRING_FIELD;
      case 'bool': return typeof v === 'boolean';
      case 'f32': return v instanceof Float32Array;
      case 'i32': return v instanceof Int32Array;
      case 'u16': return v instanceof Uint16Array;
      case 'obj': return v !== null && typeof v === 'object' && !Array.isArray(v);
      case 'codec': return typeof v === 'string' && (GRAD_CODECS as readonly string[]).includes(v);
      default: { const never: never = kind; return never; }
    }
  })();
  if (!ok) throw new ProtocolError(`frame '${t}': field '${k}' must be ${kind}`);
}

/** msgpackr's typed-array extension and the element types the protocol uses (Uint16, Int32, Float32). */
const EXT_TYPED_ARRAY = 0x74;
const TYPED_ARRAY_CODES: ReadonlyMap<number, number> = new Map([[4, 2], [5, 4], [7, 4]]);
/**
 * Nesting of maps/arrays allowed below a frame's own map: the coordinator's `welcome` carries the
 * replica spec (a map in a map); nothing a worker sends nests at all, so the coordinator decodes
 * with depth 0 and a padded frame (a million empty maps) dies in the scan, not in msgpackr.
 */
export const COORDINATOR_FRAME_DEPTH = 2;
export const WORKER_FRAME_DEPTH = 0;
/** Most entries of one map or array (a frame has at most 15 fields; a model config a few dozen). */
const MAX_ENTRIES = 64;

/**
 * Check that `b` is one msgpack value built only of what frames contain (see the file comment);
 * throws ProtocolError otherwise. Linear in the bytes: every item consumes at least one byte, so
 * lying container counts run out of input.
 */
export function scanFrame(b: Uint8Array, maxDepth = COORDINATOR_FRAME_DEPTH): void {
  const v = new DataView(b.buffer, b.byteOffset, b.byteLength);
  let p = 0;
  const need = (n: number) => { if (p + n > b.length) throw new ProtocolError('truncated frame'); };
  const u8 = () => { need(1); return b[p++]; };
  const u16 = () => { need(2); const x = v.getUint16(p); p += 2; return x; };
  const u32 = () => { need(4); const x = v.getUint32(p); p += 4; return x; };
  const skip = (n: number) => { need(n); p += n; };
  const str = (n: number, key: boolean) => {
    if (n > MAX_STRING_FIELD) throw new ProtocolError('string too long');
    need(n);
    // '__proto__' as a key would set the decoded object's prototype instead of a field
    if (key && n === 9 && Buffer.from(b.buffer, b.byteOffset + p, n).toString('latin1') === '__proto__') throw new ProtocolError('forbidden key');
    p += n;
  };
  const value = (depth: number, key = false): void => {
    const c = u8();
    if (key && !((c >= 0xa0 && c <= 0xbf) || c === 0xd9 || c === 0xda)) throw new ProtocolError('map key is not a string');
    if (c <= 0x7f || c >= 0xe0 || c === 0xc0 || c === 0xc2 || c === 0xc3) return; // fixints, nil, booleans
    if (c >= 0xa0 && c <= 0xbf) { str(c & 0x1f, key); return; }
    if (c >= 0x80 && c <= 0x8f) { container(c & 0x0f, 2, depth); return; }
    if (c >= 0x90 && c <= 0x9f) { container(c & 0x0f, 1, depth); return; }
    switch (c) {
      case 0xca: skip(4); return; // float32
      case 0xcb: skip(8); return; // float64
      case 0xcc: case 0xd0: skip(1); return;
      case 0xcd: case 0xd1: skip(2); return;
      case 0xce: case 0xd2: skip(4); return;
      case 0xcf: case 0xd3: skip(8); return; // 64-bit ints (the field checks refuse a BigInt)
      case 0xd9: str(u8(), key); return;
      case 0xda: str(u16(), key); return;
      case 0xdb: str(u32(), key); return;
      case 0xdc: container(u16(), 1, depth); return;
      case 0xdd: container(u32(), 1, depth); return;
      case 0xde: container(u16(), 2, depth); return;
      case 0xdf: container(u32(), 2, depth); return;
      case 0xc7: ext(u8()); return;
      case 0xc8: ext(u16()); return;
      case 0xc9: ext(u32()); return;
      default: throw new ProtocolError(`msgpack type 0x${c.toString(16)} is not allowed in a frame`);
    }
  };
  const container = (n: number, per: number, depth: number) => {
    if (depth >= maxDepth) throw new ProtocolError('frame nested too deeply');
    if (n > MAX_ENTRIES) throw new ProtocolError('map or array too large for a frame');
    for (let i = 0; i < n; i++) {
      if (per === 2) value(depth + 1, true);
      value(depth + 1);
    }
  };
  const ext = (len: number) => {
    const type = u8();
    if (type !== EXT_TYPED_ARRAY || len < 1) throw new ProtocolError(`msgpack extension 0x${type.toString(16)} is not allowed in a frame`);
    const size = TYPED_ARRAY_CODES.get(u8());
    if (size === undefined || (len - 1) % size !== 0) throw new ProtocolError('typed array of a kind frames do not use');
    skip(len - 1);
  };
  if (b.length === 0 || (b[0] & 0xf0) !== 0x80 && b[0] !== 0xde) throw new ProtocolError('frame is not a map');
  value(-1);
  if (p !== b.length) throw new ProtocolError('trailing bytes after the frame');
}

/**
 * Decode and validate one frame: allowed bytes, version, type, exactly its fields. `maxDepth`:
 * WORKER_FRAME_DEPTH for frames from workers, COORDINATOR_FRAME_DEPTH (default) from the coordinator.
 */
export function decodeFrame(data: Uint8Array, maxDepth = COORDINATOR_FRAME_DEPTH): Frame {
  scanFrame(data, maxDepth);
  let raw: unknown;
  try { raw = packr.unpack(data); } catch { throw new ProtocolError('undecodable frame'); }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw) || ArrayBuffer.isView(raw)) throw new ProtocolError('frame is not a map');
  const f = raw as Record<string, unknown>;
  if (f.v !== PROTOCOL_VERSION) {
    const said = typeof f.v === 'number' && Number.isSafeInteger(f.v) ? `protocol version ${f.v}` : 'an unknown protocol version';
    throw new ProtocolError(`${said} is not supported: this side speaks version ${PROTOCOL_VERSION} (update vilm on both ends)`, 'version');
  }
  const t = f.t;
  if (typeof t !== 'string' || !Object.hasOwn(FIELDS, t)) throw new ProtocolError('unknown frame type');
  const fields = FIELDS[t as FrameType] as Record<string, FieldKind>;
  for (const k of Object.keys(f)) if (k !== 't' && k !== 'v' && !Object.hasOwn(fields, k)) throw new ProtocolError(`frame '${t}': unexpected field`);
  for (const [k, kind] of Object.entries(fields)) checkField(t, k, kind, f[k]);
  return f as unknown as Frame;
}
