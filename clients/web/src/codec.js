// codec.js — the wire format of proto/PROTOCOL.md for the phone app: msgpack (§1), sealing of bodies with the team
// key K (§5: XChaCha20-Poly1305-IETF, AD of the envelope), base64url, action ids (ULIDs). Shared by the page and the
// service worker; no DOM.
//
// Why these libraries: @msgpack/msgpack is the reference JavaScript msgpack codec, and @noble/ciphers gives
// XChaCha20-Poly1305 in about 10 KB of audited code. libsodium-wrappers would do the sealing too, but its
// WebAssembly build alone is several hundred KB, far over the app's 150 KB (gzip) budget for first-load JavaScript.
import { Decoder, Encoder, ExtensionCodec } from '@msgpack/msgpack';
import { xchacha20poly1305 } from '@noble/ciphers/chacha.js';

// PROTOCOL.md §1: ext types (the timestamp too) and non-string map keys are errors
const noExt = new ExtensionCodec();
const refuseExt = () => {
  throw new Error('bad_msgpack: an ext type');
};
noExt.register({ type: -1, encode: () => null, decode: refuseExt });
const decoder = new Decoder({
  useBigInt64: true,
  extensionCodec: noExt,
  mapKeyConverter: (key) => {
    if (typeof key !== 'string') throw new Error('bad_msgpack: a map key is not a string');
    return key;
  },
});
const encoder = new Encoder({ useBigInt64: true, ignoreUndefined: true });
const utf8 = new TextEncoder();

export const SEAL_VERSION = 0x01;
export const KEY_LEN = 32;
export const NONCE_LEN = 24;

// Integers beyond 32 bits become BigInt so that the encoder writes them as (u)int64, never as a float; a decoded
// BigInt that fits a double exactly becomes a Number again (so ts and seq are Numbers in practice).
function toWire(v) {
  if (typeof v === 'number') {
    return Number.isSafeInteger(v) && (v > 0xffffffff || v < -0x80000000) ? BigInt(v) : v;
  }
  if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return v;
  if (Array.isArray(v)) return v.map(toWire);
  const out = {};
  for (const k of Object.keys(v)) out[k] = toWire(v[k]);
  return out;
}

function fromWire(v) {
  if (typeof v === 'bigint') {
    const n = Number(v);
    return Number.isSafeInteger(n) ? n : v;
  }
  if (v === null || typeof v !== 'object' || v instanceof Uint8Array) return v;
  if (Array.isArray(v)) {
    for (let i = 0; i < v.length; i++) v[i] = fromWire(v[i]);
    return v;
  }
  const proto = Object.getPrototypeOf(v);
  if (proto !== Object.prototype && proto !== null) {
    throw new Error('bad_msgpack: an ext type');
  }
  for (const k of Object.keys(v)) v[k] = fromWire(v[k]);
  return v;
}

/** msgpack bytes of value (a map, array, string, number, Uint8Array for bin, boolean or null). */
export function pack(value) {
  return encoder.encode(toWire(value));
}

/** The value of one msgpack message (bin as Uint8Array; ints beyond 2^53 as BigInt). Throws on bad input. */
export function unpack(bytes) {
  return fromWire(decoder.decode(bytes instanceof Uint8Array ? bytes : new Uint8Array(bytes)));
}

// ---- base64url (RFC 4648 §5) and standard base64 ----------------------------------------------------------------

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';

/** Standard base64 with padding. */
export function b64encode(bytes) {
  let s = '';
  for (let i = 0; i < bytes.length; i += 3) {
    const n = (bytes[i] << 16) | ((bytes[i + 1] ?? 0) << 8) | (bytes[i + 2] ?? 0);
    s += B64[n >> 18] + B64[(n >> 12) & 63];
    s += i + 1 < bytes.length ? B64[(n >> 6) & 63] : '=';
    s += i + 2 < bytes.length ? B64[n & 63] : '=';
  }
  return s;
}

/** base64url without padding. */
export function b64urlEncode(bytes) {
  return b64encode(bytes).replace(/=+$/, '').replace(/\+/g, '-').replace(/\//g, '_');
}

/** Decodes base64 or base64url, padded or not; throws on any other character or a bad length. */
export function b64decode(s) {
  const t = String(s).replace(/=+$/, '').replace(/-/g, '+').replace(/_/g, '/');
  if (!/^[A-Za-z0-9+/]*$/.test(t) || t.length % 4 === 1) throw new Error('bad_encoding: not base64');
  const out = new Uint8Array(Math.floor((t.length * 3) / 4));
  let o = 0;
  for (let i = 0; i < t.length; i += 4) {
    const n =
      (B64.indexOf(t[i]) << 18) |
      (B64.indexOf(t[i + 1]) << 12) |
      ((i + 2 < t.length ? B64.indexOf(t[i + 2]) : 0) << 6) |
      (i + 3 < t.length ? B64.indexOf(t[i + 3]) : 0);
    out[o++] = n >> 16;
    if (o < out.length) out[o++] = (n >> 8) & 255;
    if (o < out.length) out[o++] = n & 255;
  }
  return out;
}

export function hex(bytes) {
  return Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
}

export function unhex(s) {
  const out = new Uint8Array(s.length / 2);
  for (let i = 0; i < out.length; i++) out[i] = parseInt(s.substr(2 * i, 2), 16);
  return out;
}

// ---- sealing (PROTOCOL.md §5) ------------------------------------------------------------------------------------

function joinAd(parts) {
  const bytes = parts.map((p) => utf8.encode(String(p)));
  const out = new Uint8Array(bytes.reduce((n, b) => n + b.length + 1, -1));
  let o = 0;
  bytes.forEach((b, i) => {
    if (i > 0) out[o++] = 0;
    out.set(b, o);
    o += b.length;
  });
  return out;
}

/** AD of an event body: "corral1" 0 "e" 0 team 0 sid 0 decimal(seq) 0 k. seq may be a Number or a BigInt. */
export function eventAd(team, sid, seq, k) {
  return joinAd(['corral1', 'e', team, sid, String(seq), k]);
}

/** AD of an action body: "corral1" 0 "a" 0 team 0 sid 0 aid 0 k. */
export function actionAd(team, sid, aid, k) {
  return joinAd(['corral1', 'a', team, sid, aid, k]);
}

function randomBytes(n) {
  const b = new Uint8Array(n);
  crypto.getRandomValues(b);
  return b;
}

/** The sealed box 0x01 ‖ nonce ‖ ciphertext+tag of the body map under K with ad. nonce: for tests only. */
export function seal(key, body, ad, nonce = randomBytes(NONCE_LEN)) {
  return sealBytes(key, pack(body), ad, nonce);
}

/** The same for a body already in msgpack. */
export function sealBytes(key, plain, ad, nonce = randomBytes(NONCE_LEN)) {
  const ct = xchacha20poly1305(key, nonce, ad).encrypt(plain);
  const out = new Uint8Array(1 + NONCE_LEN + ct.length);
  out[0] = SEAL_VERSION;
  out.set(nonce, 1);
  out.set(ct, 1 + NONCE_LEN);
  return out;
}

/** The body map inside a sealed box, or throws Error('bad_seal: ...'). */
export function open(key, box, ad) {
  if (!(box instanceof Uint8Array) || box.length < 1 + NONCE_LEN + 16 || box[0] !== SEAL_VERSION) {
    throw new Error('bad_seal: not a sealed box of version 1');
  }
  let plain;
  try {
    plain = xchacha20poly1305(key, box.subarray(1, 1 + NONCE_LEN), ad).decrypt(box.subarray(1 + NONCE_LEN));
  } catch {
    throw new Error('bad_seal: the body does not open with this team key');
  }
  const body = unpack(plain);
  if (body === null || typeof body !== 'object' || Array.isArray(body) || body instanceof Uint8Array) {
    throw new Error('bad_seal: the opened body is not a map');
  }
  return body;
}

/** The plain body of an event envelope: opened with key when sealed (null when it cannot be: no key, bad seal). */
export function eventBody(env, team, key) {
  const b = env.b;
  if (b === undefined || b === null) return {};
  if (!(b instanceof Uint8Array)) return b;
  if (!key) return null;
  try {
    return open(key, b, eventAd(team, env.sid, env.seq, env.k));
  } catch {
    return null;
  }
}

// ---- ids ----------------------------------------------------------------------------------------------------------

const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** A ULID: 48 bits of milliseconds and 80 random bits in Crockford base32 (26 characters). */
export function ulid(now = Date.now()) {
  let s = '';
  let t = now;
  for (let i = 0; i < 10; i++) {
    s = CROCKFORD[t % 32] + s;
    t = Math.floor(t / 32);
  }
  const r = randomBytes(16);
  for (let i = 0; i < 16; i++) s += CROCKFORD[r[i] & 31];
  return s;
}

/** Whether s is a protocol id: 1 to 64 of [A-Za-z0-9._-]. */
export function isId(s) {
  return typeof s === 'string' && /^[A-Za-z0-9._-]{1,64}$/.test(s);
}

/**
 * An action envelope (PROTOCOL.md §3) ready for POST /v1/actions: b sealed with key when the app holds one.
 * { k, sid, b, ref } in; the envelope with a fresh aid out.
 */
export function makeAction({ k, sid, b = {}, ref }, team, key, aid = ulid()) {
  const env = { v: 1, k, sid, aid };
  if (ref) env.ref = ref;
  env.ts = Date.now();
  env.b = key ? seal(key, b, actionAd(team, sid, aid, k)) : b;
  return env;
}
