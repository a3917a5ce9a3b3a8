// api.js — the relay's REST endpoints the phone uses (README.md, "The relay"; DESIGN.md Appendix A): claim a pairing
// code, register for push, post an action. Same origin as the app; the device token travels only in the
// Authorization header, never in a URL. Used by the page and the service worker.
import { makeAction, pack } from './codec.js';

/** An error with the relay's {code, message, field} (or network / http_<status>). */
export class ApiError extends Error {
  constructor(status, code, message, field) {
    super(message);
    this.status = status;
    this.code = code;
    this.field = field;
  }
}

async function call(method, path, { token, json, msgpack } = {}) {
  const headers = { Accept: 'application/json' };
  let body;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (json !== undefined) {
    headers['Content-Type'] = 'application/json';
    body = JSON.stringify(json);
  } else if (msgpack !== undefined) {
    headers['Content-Type'] = 'application/msgpack';
    body = pack(msgpack);
  }
  let res;
  try {
    res = await fetch(path, { method, headers, body, cache: 'no-store', credentials: 'omit' });
  } catch (e) {
    throw new ApiError(0, 'network', `the relay cannot be reached (${e.message})`);
  }
  let doc = null;
  try {
    doc = await res.json();
  } catch {
    /* not JSON: an error page of something in between */
  }
  if (!res.ok) {
    const err = doc?.error ?? {};
    throw new ApiError(res.status, err.code ?? `http_${res.status}`, err.message ?? `HTTP ${res.status}`, err.field);
  }
  return doc ?? {};
}

/** POST /v1/pair/claim {code, name} → {token, device, team}. */
export const claim = (code, name) => call('POST', '/v1/pair/claim', { json: { code, name } });

/** GET /v1/webpush/vapid → {public_key} (base64url P-256 point). */
export const vapid = () => call('GET', '/v1/webpush/vapid');

/** POST /v1/devices: this device's push registration. */
export const registerDevice = (token, reg) => call('POST', '/v1/devices', { token, json: reg });

/** POST /v1/actions with a ready envelope (msgpack): {aid, queued} (202) or {aid, duplicate} (200). */
export const postEnvelope = (token, env) => call('POST', '/v1/actions', { token, msgpack: env });

/**
 * Makes and posts an action {k, sid, b, ref} as the paired device auth ({token, team, key}): the body sealed when
 * the app holds the team key. Returns the envelope (its aid) once the relay has queued it; throws ApiError.
 */
export async function act(auth, action) {
  const env = makeAction(action, auth.team, auth.key);
  await postEnvelope(auth.token, env);
  return env;
}
