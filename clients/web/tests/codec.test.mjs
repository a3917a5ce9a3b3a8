// codec.test.mjs — the app's wire codec (src/codec.js) against proto/vectors/vectors.json: every valid vector decodes
// to its JSON twin and its body re-encodes byte for byte; sealing with the vectors' key and nonce gives their box,
// the AD bytes match, sealed twins open; base64url and ULIDs. Run: node --test tests/
import assert from 'node:assert/strict';
import { readFileSync } from 'node:fs';
import { test } from 'node:test';
import {
  actionAd, b64decode, b64encode, b64urlEncode, eventAd, eventBody, hex, isId, makeAction, open, pack, seal, sealBytes, ulid, unhex,
  unpack,
} from '../src/codec.js';

const RAW = readFileSync(new URL('../../../proto/vectors/vectors.json', import.meta.url), 'utf8');
// integers of 16 digits or more are read as BigInt from the source text (JSON.parse would round them)
const vectors = JSON.parse(RAW.replace(/([:[,]\s*)(-?\d{16,})(?=\s*[,\]}])/g, '$1"__big:$2"'));
const KEY = unhex(vectors.seal.key);
const NONCE = unhex(vectors.seal.nonce);
const TEAM = vectors.seal.team;

// The JSON twin as the app holds it: {"$bin": base64} as Uint8Array; integers beyond 2^53 as BigInt.
function twin(v) {
  if (typeof v === 'string' && v.startsWith('__big:')) {
    const n = BigInt(v.slice(6));
    return Number.isSafeInteger(Number(n)) ? Number(n) : n;
  }
  if (v === null || typeof v !== 'object') return v;
  if (Array.isArray(v)) return v.map(twin);
  const keys = Object.keys(v);
  if (keys.length === 1 && keys[0] === '$bin' && typeof v.$bin === 'string') return b64decode(v.$bin);
  const out = {};
  for (const k of keys) out[k] = twin(v[k]);
  return out;
}

test('every valid vector decodes to its JSON twin', () => {
  for (const v of vectors.valid) {
    const got = unpack(unhex(v.hex));
    assert.deepEqual(got, twin(v.json), v.name);
  }
});

// A JavaScript number cannot tell the float 3.0 from the int 3: bodies holding an integral float re-encode it as an
// int (the app never re-encodes what it receives; what it makes has no floats). They must still round-trip.
const INTEGRAL_FLOAT = /cb(?:[0-9a-f]{2}){8}/;
function exactInJs(v) {
  const body = unpack(unhex(v.body_hex));
  return hex(pack(body)) === v.body_hex || !INTEGRAL_FLOAT.test(v.body_hex);
}

test('bodies re-encode to the canonical bytes', () => {
  for (const v of vectors.valid) {
    const env = unpack(unhex(v.hex));
    if (exactInJs(v)) assert.equal(hex(pack(env.b ?? {})), v.body_hex, v.name);
    else assert.deepEqual(unpack(pack(env.b)), env.b, v.name);
  }
});

test('action envelopes re-encode to the canonical bytes', () => {
  for (const v of vectors.valid.filter((x) => x.type === 'action')) {
    assert.equal(hex(pack(twin(v.json))), v.hex, v.name);
  }
});

test('AD bytes of events and actions', () => {
  for (const v of vectors.valid) {
    const env = unpack(unhex(v.hex));
    const ad = v.type === 'event' ? eventAd(TEAM, env.sid, env.seq, env.k) : actionAd(TEAM, env.sid, env.aid, env.k);
    assert.equal(hex(ad), v.sealed.ad_hex, v.name);
  }
});

test('sealing with the vectors key and nonce gives their box, and the box opens', () => {
  for (const v of vectors.valid) {
    const env = unpack(unhex(v.hex));
    const ad = unhex(v.sealed.ad_hex);
    const box = sealBytes(KEY, unhex(v.body_hex), ad, NONCE);
    assert.equal(hex(box), v.sealed.box_hex, v.name);
    if (exactInJs(v)) assert.equal(hex(seal(KEY, env.b ?? {}, ad, NONCE)), v.sealed.box_hex, v.name);
    assert.deepEqual(open(KEY, box, ad), env.b ?? {}, v.name);
    // the whole sealed envelope: eventBody opens it with the AD made from the envelope itself
    const sealed = unpack(unhex(v.sealed.hex));
    assert.ok(sealed.b instanceof Uint8Array, v.name);
    if (v.type === 'event') assert.deepEqual(eventBody(sealed, TEAM, KEY), env.b ?? {}, v.name);
  }
});

test('a sealed body does not open with a wrong key, AD or byte', () => {
  const v = vectors.valid.find((x) => x.name === 'event.approval.request');
  const box = unhex(v.sealed.box_hex);
  const ad = unhex(v.sealed.ad_hex);
  const wrongKey = KEY.slice();
  wrongKey[0] ^= 1;
  assert.throws(() => open(wrongKey, box, ad), /bad_seal/);
  assert.throws(() => open(KEY, box, eventAd('team-2', 'x', 1, 'question')), /bad_seal/);
  const flipped = box.slice();
  flipped[flipped.length - 1] ^= 0x80;
  assert.throws(() => open(KEY, flipped, ad), /bad_seal/);
  const v2 = box.slice();
  v2[0] = 2;
  assert.throws(() => open(KEY, v2, ad), /bad_seal/);
  // an event the app cannot open has no body rather than a wrong one
  const sealed = unpack(unhex(v.sealed.hex));
  assert.equal(eventBody(sealed, 'team-2', KEY), null);
  assert.equal(eventBody(sealed, TEAM, null), null);
});

test('makeAction seals the body so the host opens it with the action AD', () => {
  const env = makeAction({ k: 'reply', sid: 'S1', b: { rid: 'r1', text: 'yes' }, ref: 7 }, TEAM, KEY, '01JD0000000000000000000001');
  assert.deepEqual(Object.keys(env), ['v', 'k', 'sid', 'aid', 'ref', 'ts', 'b']);
  assert.ok(env.b instanceof Uint8Array && env.b[0] === 1);
  assert.deepEqual(open(KEY, env.b, actionAd(TEAM, 'S1', '01JD0000000000000000000001', 'reply')), { rid: 'r1', text: 'yes' });
  const plain = makeAction({ k: 'task', sid: 'S1', b: { text: 'go' } }, TEAM, null);
  assert.deepEqual(plain.b, { text: 'go' });
  assert.equal(plain.ref, undefined);
  // ts is written as an integer (uint64), never a float
  const bytes = pack(plain);
  const i = hex(bytes).indexOf(hex(new TextEncoder().encode('ts')));
  assert.equal(hex(bytes).substr(i + 4, 2), 'cf');
});

test('base64url without padding, base64 with', () => {
  const k = new Uint8Array(32).map((_, i) => 255 - i * 3);
  const s = b64urlEncode(k);
  assert.equal(s.length, 43);
  assert.doesNotMatch(s, /[=+/]/);
  assert.deepEqual(b64decode(s), k);
  assert.equal(b64encode(new TextEncoder().encode('any carnal pleas')), 'YW55IGNhcm5hbCBwbGVhcw==');
  assert.equal(b64urlEncode(new Uint8Array([0xfb, 0xff])), '-_8');
  assert.deepEqual(b64decode('-_8'), new Uint8Array([0xfb, 0xff]));
  assert.deepEqual(b64decode('+/8='), new Uint8Array([0xfb, 0xff]));
  for (let n = 0; n < 40; n++) {
    const b = new Uint8Array(n).map((_, i) => (i * 37 + n) & 255);
    assert.deepEqual(b64decode(b64urlEncode(b)), b, `length ${n}`);
    assert.equal(b64encode(b), Buffer.from(b).toString('base64'));
  }
  assert.throws(() => b64decode('ab$d'), /bad_encoding/);
  assert.throws(() => b64decode('abcde'), /bad_encoding/);
});

test('ULIDs are ids, sortable by time', () => {
  const a = ulid(1764000000000);
  const b = ulid(1764000000001);
  assert.match(a, /^[0-9A-HJKMNP-TV-Z]{26}$/);
  assert.ok(isId(a));
  assert.ok(a.slice(0, 10) < b.slice(0, 10));
  assert.equal(ulid(0).slice(0, 10), '0000000000');
  assert.ok(!isId('a b'));
  assert.ok(!isId(''));
  assert.ok(!isId('x'.repeat(65)));
});

test('framing errors of the invalid vectors are refused', () => {
  let n = 0;
  for (const v of vectors.invalid.filter((x) => ['truncated', 'bad_msgpack', 'trailing_bytes'].includes(x.error))) {
    assert.throws(() => unpack(unhex(v.hex)), undefined, v.name);
    n++;
  }
  assert.ok(n > 5);
});
