// pair.js — pairing and push registration. The link `corral pair` prints is <relay>/#pair=CODE&k=K: the code and the
// team key K sit after '#', so they never reach a server or its logs. The app takes them out of the address bar at
// once, claims the code (POST /v1/pair/claim → {token, device, team}), keeps token and K in IndexedDB, then asks for
// notifications, subscribes to Web Push with the relay's VAPID key and registers the device (POST /v1/devices).
import { ApiError, claim, registerDevice, vapid } from './api.js';
import { b64decode, KEY_LEN } from './codec.js';
import { saveAuth } from './store.js';

/** {code, key} from a location hash "#pair=CODE&k=K", or null when the hash is not a pairing link. */
export function parsePairLink(hash) {
  const h = String(hash).replace(/^#/, '');
  if (!/(^|&)pair=/.test(h)) return null;
  const p = new URLSearchParams(h);
  const code = (p.get('pair') || '').trim();
  const k = p.get('k');
  let key = null;
  if (k) {
    try {
      key = b64decode(k);
    } catch {
      key = null;
    }
    if (!key || key.length !== KEY_LEN) return { code, key: null, error: 'The team key in this link is damaged.' };
  }
  return { code, key };
}

/** A name for this device in the team's device list: "Chrome on Android", say. */
export function deviceName() {
  const ua = navigator.userAgent;
  const os = /Android/.test(ua) ? 'Android' : /iPhone|iPad/.test(ua) ? 'iOS' : /Mac OS X/.test(ua) ? 'macOS'
    : /Windows/.test(ua) ? 'Windows' : /Linux/.test(ua) ? 'Linux' : 'a browser';
  const br = /Edg\//.test(ua) ? 'Edge' : /Firefox\//.test(ua) ? 'Firefox' : /Chrom(e|ium)\//.test(ua) ? 'Chrome'
    : /Safari\//.test(ua) ? 'Safari' : 'Web app';
  return `${br} on ${os}`;
}

/** Claims the code and keeps the pairing. Returns the auth record; throws Error with a message for a person. */
export async function pair({ code, key }) {
  const name = deviceName();
  let r;
  try {
    r = await claim(code, name);
  } catch (e) {
    if (e instanceof ApiError && (e.status === 404 || e.status === 400)) {
      throw new Error('This pairing code has expired or was used already. Run `corral pair` again and open the new link.');
    }
    if (e instanceof ApiError && e.status === 429) throw new Error('Too many pairing attempts. Wait a minute and try again.');
    throw new Error(`Pairing failed: ${e.message}`);
  }
  const auth = { token: r.token, device: r.device, team: r.team, key, name, paired: Date.now(), push: null };
  await saveAuth(auth);
  return auth;
}

/** p, or a rejection with message after ms (a push service that never answers must not hang the app). */
function within(p, ms, message) {
  let t;
  return Promise.race([p, new Promise((_, reject) => (t = setTimeout(() => reject(new Error(message)), ms)))]).finally(() => clearTimeout(t));
}

function pushSupported() {
  return 'serviceWorker' in navigator && 'PushManager' in window && 'Notification' in window;
}

/**
 * Asks for notifications, subscribes to Web Push and registers the device; without push (no permission, no push
 * service: headless browsers, some platforms) it registers with provider "none" so the device is still listed.
 * Returns {ok, message} to show; never throws.
 */
export async function enablePush(auth) {
  let sub = null;
  let message = '';
  try {
    if (!pushSupported()) throw new Error('this browser has no Web Push');
    const perm = Notification.permission === 'default' ? await Notification.requestPermission() : Notification.permission;
    if (perm !== 'granted') throw new Error(perm === 'denied' ? 'notifications are blocked for this site' : 'notifications were not allowed');
    const reg = await within(navigator.serviceWorker.ready, 10000, 'the service worker did not start');
    const { public_key: pk } = await vapid();
    sub = await reg.pushManager.getSubscription();
    if (!sub) {
      sub = await within(reg.pushManager.subscribe({ userVisibleOnly: true, applicationServerKey: b64decode(pk) }), 10000,
        'the browser\'s push service did not answer');
    }
  } catch (e) {
    message = e?.message || String(e);
  }
  const reg = sub
    ? { name: auth.name, provider: 'webpush', subscription: sub.toJSON() }
    : { name: auth.name, provider: 'none' };
  try {
    await registerDevice(auth.token, reg);
  } catch (e) {
    return { ok: false, message: `The relay did not take this device's registration: ${e.message}` };
  }
  auth.push = sub ? 'on' : 'off';
  await saveAuth(auth);
  if (sub) return { ok: true, message: 'Notifications are on.' };
  return { ok: false, message: `Notifications are unavailable: ${message}. The app still works while it is open.` };
}
