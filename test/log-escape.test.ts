import test from 'node:test';
import assert from 'node:assert/strict';
import { log, setLogFormat } from '../src/util/log.ts';

/** What one log call writes to stderr. */
function captured(f: () => void): string {
  const write = process.stderr.write.bind(process.stderr);
  let out = '';
  (process.stderr as { write: unknown }).write = (chunk: string | Uint8Array) => { out += String(chunk); return true; };
  try { f(); } finally { (process.stderr as { write: unknown }).write = write; }
  return out;
}

test('text logs stay one line per record: peer strings cannot forge lines or fields', () => {
  setLogFormat('text');
  const forged = 'evil\nvilm: training finished step=999';
  const out = captured(() => log.warn(`worker ${forged} left`, { name: forged, note: 'a b', plain: 'x1', esc: '\u001b[31mred\u2028' }));
  assert.equal(out.split('\n').length, 2, JSON.stringify(out)); // the line and the final newline
  assert.equal(out, 'warn: worker evil\\nvilm: training finished step=999 left name="evil\\nvilm: training finished step=999" note="a b" plain=x1 esc="\\u001b[31mred\\u2028"\n');
  // JSON logs were already safe: one object a line
  setLogFormat('json');
  const j = captured(() => log.info('m', { name: forged }));
  setLogFormat('text');
  assert.equal(j.trim().split('\n').length, 1);
  assert.equal((JSON.parse(j) as { name: string }).name, forged);
});
