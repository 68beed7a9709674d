/**
 * Frames on the wire: one WebSocket binary message is one msgpack map packed with
 * `new Packr({ moreTypes: true })` (typed arrays travel as raw little-endian bytes and come back as
 * Float32Array / Int32Array / Uint16Array). Decoding validates the version first, then the type
 * and shape of every field of the frame's type (the frame types are in ./contract.ts).
 */
import { Packr } from 'msgpackr';
import type { RawData } from 'ws';
import { MAX_STRING_FIELD } from './constants.js';
import { PROTOCOL_VERSION, type Frame, type FrameType } from './contract.js';

/** A frame that breaks the protocol; the message says what (one line). */
export class ProtocolError extends Error {
  constructor(message: string, readonly kind: 'version' | 'frame' = 'frame') { super(message); }
}

const packr = new Packr({ moreTypes: true });

export function encodeFrame(f: Frame): Uint8Array {
  return packr.pack(f);
}

/** The bytes of one received WebSocket message (ws hands a Buffer, an ArrayBuffer or fragments). */
export function messageBytes(data: RawData): Uint8Array {
  if (Array.isArray(data)) return Buffer.concat(data);
  if (data instanceof ArrayBuffer) return new Uint8Array(data);
  return data;
}

type FieldKind = 'int' | 'num' | 'str' | 'bool' | 'f32' | 'i32' | 'u16' | 'obj';

/** The fields of every frame type; `satisfies` makes a new frame type without an entry a build error. */
const FIELDS = {
  hello: { name: 'str' },
  challenge: { nonce: 'str', tokenRequired: 'bool' },
  auth: { mac: 'str' },
  welcome: { id: 'str', spec: 'obj', total: 'int', heartbeatMs: 'int' },
  weights: { version: 'int', weights: 'f32' },
  task: { step: 'int', version: 'int', taskId: 'int', level: 'int', index: 'int', shards: 'int', batchRows: 'int', seqLen: 'int', rowStart: 'int', tokens: 'u16', maxTokens: 'int' },
  result: { step: 'int', version: 'int', taskId: 'int', level: 'int', index: 'int', empty: 'bool', lossSum: 'num', tokenCount: 'int', rest: 'f32', embRows: 'i32', embValues: 'f32', computeSeconds: 'num' },
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
      default: { const never: never = kind; return never; }
    }
  })();
  if (!ok) throw new ProtocolError(`frame '${t}': field '${k}' must be ${kind}`);
}

/** Decode and validate one frame (types of every field; version first). */
export function decodeFrame(data: Uint8Array): Frame {
  let raw: unknown;
  try { raw = packr.unpack(data); } catch (e) { throw new ProtocolError(`undecodable frame (${(e as Error).message.split('\n')[0]})`); }
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new ProtocolError('frame is not a map');
  const f = raw as Record<string, unknown>;
  if (f.v !== PROTOCOL_VERSION) {
    throw new ProtocolError(`protocol version ${JSON.stringify(f.v)} is not supported: this side speaks version ${PROTOCOL_VERSION} (update vilm on both ends)`, 'version');
  }
  const t = f.t;
  if (typeof t !== 'string' || !Object.hasOwn(FIELDS, t)) throw new ProtocolError(`unknown frame type ${JSON.stringify(t)}`);
  for (const [k, kind] of Object.entries(FIELDS[t as FrameType])) checkField(t, k, kind as FieldKind, f[k]);
  return f as unknown as Frame;
}
