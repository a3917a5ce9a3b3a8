// sw.js — the service worker: keeps the app shell cached so the app opens offline on its last state, and shows Web
// Push notifications. A push from the relay is the JSON {title, body, sid, seq, k, host, id, category, e?}
// (relay/src/push_webpush.c) whose title already names the identity; e, when present, is the sealed body (standard
// base64), opened here with the team key from IndexedDB for a richer text. Approve and Reject post the action
// (POST /v1/actions with the device token, sealed like the app's) without opening the app; Reply opens the app at
// that request.
import { act } from './api.js';
import { b64decode, eventAd, open } from './codec.js';
import { loadAuth } from './store.js';

/* global __SHELL__, __VERSION__ */
const VERSION = typeof __VERSION__ === 'string' ? __VERSION__ : 'dev';
const SHELL = typeof __SHELL__ !== 'undefined' ? __SHELL__ : ['/', '/index.html'];
const CACHE = `corral-shell-${VERSION}`;

self.addEventListener('install', (e) => {
  e.waitUntil(caches.open(CACHE).then((c) => c.addAll(SHELL)).then(() => self.skipWaiting()));
});

self.addEventListener('activate', (e) => {
  e.waitUntil(
    caches.keys()
      .then((keys) => Promise.all(keys.filter((k) => k.startsWith('corral-shell-') && k !== CACHE).map((k) => caches.delete(k))))
      .then(() => self.clients.claim()),
  );
});

self.addEventListener('fetch', (e) => {
  const req = e.request;
  const url = new URL(req.url);
  if (req.method !== 'GET' || url.origin !== location.origin || url.pathname.startsWith('/v1/')) return;
  if (req.mode === 'navigate') {
    // the page: fresh when the relay answers, else the cached shell (the app draws its last state from IndexedDB)
    e.respondWith(fetch(req).catch(() => caches.match('/index.html', { cacheName: CACHE })));
    return;
  }
  e.respondWith(caches.match(req, { cacheName: CACHE }).then((hit) => hit || fetch(req)));
});

// ---- push ---------------------------------------------------------------------------------------------------------

const ACTIONS = {
  CORRAL_APPROVAL: [{ action: 'approve', title: 'Approve' }, { action: 'reject', title: 'Reject' }, { action: 'reply', title: 'Reply' }],
  CORRAL_QUESTION: [{ action: 'reply', title: 'Reply' }],
  CORRAL_REVIEW: [{ action: 'approve', title: 'Approve' }, { action: 'reject', title: 'Reject' }, { action: 'reply', title: 'Reply' }],
};

/** The notification text of an opened body, like the relay writes for plain ones (relay/src/push_note.c). */
function bodyText(k, b) {
  if (k === 'approval.request') return [b.tool, b.summary].filter(Boolean).join(': ');
  if (k === 'question') return b.text ?? '';
  if (k === 'diff.ready') {
    const n = Array.isArray(b.files) ? b.files.length : 0;
    return `${n} file${n === 1 ? '' : 's'} changed, +${b.add ?? 0} -${b.del ?? 0}`;
  }
  return '';
}

/** {title, options} of the notification for a push payload. */
async function notification(p) {
  const data = { sid: String(p.sid ?? ''), seq: Number(p.seq) || 0, k: String(p.k ?? ''), category: p.category ?? '' };
  let body = String(p.body ?? '');
  if (typeof p.e === 'string' && p.e) {
    try {
      const auth = await loadAuth();
      if (auth?.key) {
        const b = open(auth.key, b64decode(p.e), eventAd(auth.team, data.sid, p.seq, data.k));
        body = bodyText(data.k, b) || body;
        if (typeof b.rid === 'string') data.rid = b.rid;
      }
    } catch {
      /* the fallback text stays */
    }
  }
  return {
    title: String(p.title || 'Corral'),
    options: {
      body,
      tag: `corral-${data.sid}`,
      renotify: true,
      requireInteraction: data.k !== 'diff.ready',
      icon: '/icon-192.png',
      badge: '/icon-192.png',
      data,
      actions: ACTIONS[data.category] ?? [], // a browser shows as many as it can (Notification.maxActions)
    },
  };
}

self.addEventListener('push', (e) => {
  let p;
  try {
    p = e.data ? e.data.json() : {};
  } catch {
    p = { title: 'Corral', body: e.data ? e.data.text() : '' };
  }
  e.waitUntil(notification(p).then((n) => self.registration.showNotification(n.title, n.options)));
});

async function openApp(hash) {
  const wins = await self.clients.matchAll({ type: 'window', includeUncontrolled: true });
  for (const w of wins) {
    if (new URL(w.url).origin === location.origin) {
      await w.focus().catch(() => {});
      w.postMessage({ open: hash });
      return;
    }
  }
  await self.clients.openWindow(`/${hash}`);
}

async function answer(d, k) {
  const auth = await loadAuth();
  if (!auth?.token) return openApp('#/');
  const b = {};
  if (d.rid) b.rid = d.rid;
  try {
    await act(auth, { k, sid: d.sid, b, ref: d.seq || undefined });
    await self.registration.showNotification(k === 'approve' ? 'Approved' : 'Rejected', {
      body: 'Sent to the host.', tag: `corral-${d.sid}`, silent: true, data: { sid: d.sid },
    });
  } catch (err) {
    await self.registration.showNotification('Not sent', {
      body: `${err.message}. Open Corral to try again.`, tag: `corral-${d.sid}`, data: { ...d, failed: true },
    });
  }
}

self.addEventListener('notificationclick', (e) => {
  const d = e.notification.data ?? {};
  e.notification.close();
  if (e.action === 'approve' || e.action === 'reject') e.waitUntil(answer(d, e.action));
  else if (d.sid) e.waitUntil(openApp(e.action === 'reply' || d.k === 'question' ? `#/s/${encodeURIComponent(d.sid)}/reply`
    : `#/s/${encodeURIComponent(d.sid)}${d.k === 'diff.ready' ? '/diff' : ''}`));
  else e.waitUntil(openApp('#/'));
});
