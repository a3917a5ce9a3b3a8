// main.js — the phone app's entry point: loads the pairing and the last state from IndexedDB, draws at once (offline
// too), keeps the live feed (link.js) applying events to the state (state.js), routes between screens by the URL
// fragment, and sends actions (sealed with the team key when the phone holds it) through POST /v1/actions, keeping
// those that could not leave in an outbox until the network is back.
import './app.css';
import { ApiError, postEnvelope } from './api.js';
import { eventBody, makeAction } from './codec.js';
import { diffView } from './diffview.js';
import { h, morph, mount } from './dom.js';
import { Link } from './link.js';
import { enablePush, pair, parsePairLink } from './pair.js';
import { apply, emptyState, remember } from './state.js';
import * as store from './store.js';
import { talk } from './talk.js';
import { renderHome, renderPair, renderSession } from './views.js';

const root = document.getElementById('app');

const app = {
  auth: null,
  st: emptyState(),
  link: null,
  status: 'offline',
  everConnected: false,
  route: { name: 'home' },
  pending: {}, // aid -> {sid, seq, k, busy, state, text}
  outbox: [], // envelopes the relay has not taken yet
  drafts: {},
  notice: null,
  pairing: null,
  talking: false,
  ui: { rejecting: null, discard: false, fullLoading: {}, taskPending: {} },
  _hold: false,
  _dirty: false,
  _raf: 0,
};
window.corral = app; // for a person poking at it in the console (and the browser test)

// ---- rendering ----------------------------------------------------------------------------------------------------

app.render = () => {
  if (app._hold) {
    app._dirty = true;
    return;
  }
  if (app._raf) return;
  app._raf = requestAnimationFrame(() => {
    app._raf = 0;
    draw();
  });
};

app.holdRender = (on) => {
  app._hold = on;
  if (!on && app._dirty) {
    app._dirty = false;
    app.render();
  }
};

function draw() {
  // keep the focused field and its caret across a redraw
  const a = document.activeElement;
  const key = a?.dataset?.key;
  const sel = key && 'selectionStart' in a ? [a.selectionStart, a.selectionEnd] : null;
  let view;
  if (!app.auth) view = renderPair(app);
  else if (app.route.name === 'session') view = renderSession(app, app.route.sid, app.route.sub);
  else view = renderHome(app);
  const cur = root.firstElementChild;
  if (cur && cur.tagName === view.tagName && cur.getAttribute('key') === view.getAttribute('key')) morph(cur, view);
  else mount(root, view);
  // diffs are drawn once per slot: a redraw keeps them (static), a new key (the full diff) draws anew
  for (const slot of root.querySelectorAll('.diffslot')) {
    if (!slot.firstChild) slot.append(diffView(app.diffs.get(slot.getAttribute('key')) ?? ''));
  }
  app.diffs.clear();
  if (key && document.activeElement !== a) {
    const el = root.querySelector(`[data-key="${CSS.escape(key)}"]`);
    if (el) {
      el.focus({ preventScroll: true });
      if (sel) el.setSelectionRange(sel[0], sel[1]);
    }
  }
  document.title = titleOf();
}

function titleOf() {
  const n = Object.values(app.st.sessions).filter((s) => s.needs).length;
  return n ? `(${n}) Corral` : 'Corral';
}

/** A placeholder for the diff view of patch (see draw). */
app.diffSlot = (key, patch) => {
  app.diffs.set(key, patch);
  return h('div.diffslot', { key, static: '' });
};
app.diffs = new Map();

app.draft = (key) => app.drafts[key] ?? '';
app.setDraft = (key, v) => {
  app.drafts[key] = v;
};

// ---- routing ------------------------------------------------------------------------------------------------------

function parseRoute() {
  const m = /^#\/s\/([^/]+)(?:\/(diff|reply))?$/.exec(location.hash);
  if (m) return { name: 'session', sid: decodeURIComponent(m[1]), sub: m[2] ?? '' };
  return { name: 'home' };
}

app.go = (hash) => {
  if (location.hash !== hash) location.hash = hash;
  else onRoute();
};

function onRoute() {
  if (parsePairLink(location.hash)) {
    startPairing();
    return;
  }
  const prev = app.route;
  app.route = parseRoute();
  app.ui.rejecting = null;
  app.render();
  if (prev.name !== app.route.name || prev.sid !== app.route.sid) scrollTo(0, 0);
  if (app.route.sub === 'reply') {
    requestAnimationFrame(() => requestAnimationFrame(() => document.getElementById('reply')?.focus()));
  }
}

// ---- state, persistence -------------------------------------------------------------------------------------------

let saveTimer = 0;
function save() {
  clearTimeout(saveTimer);
  saveTimer = setTimeout(() => store.put('state', app.st).catch((e) => console.warn('saving the state:', e)), 250);
}

function onEvent(f) {
  const e = f.e;
  const b = eventBody(e, app.auth.team, app.auth.key);
  const s = apply(app.st, String(f.id), f.host, e, b);
  if (e.k === 'action.applied' && b) onApplied(s, b);
  save();
  app.render();
}

function onApplied(s, b) {
  const p = app.pending[b.aid];
  if (!p) return;
  delete app.pending[b.aid];
  if (p.k === 'task') {
    app.ui.taskPending[s.sid] = b.ok ? { state: 'ok', text: `Task ${b.detail || 'queued'}.` }
      : { state: 'error', text: `The task was not queued: ${b.detail}` };
  }
  if (p.k === 'diff') {
    app.ui.fullLoading[s.sid] = false;
    if (!b.ok) toast(`The full diff is not available: ${b.detail}`, true);
  }
}

// ---- actions ------------------------------------------------------------------------------------------------------

/** The action of this phone waiting for the host on s's current request: {busy, state, text} or null. */
app.pendingFor = (s) => {
  if (!s.needs) return null;
  for (const p of Object.values(app.pending)) {
    if (p.sid === s.sid && p.seq === s.needs.seq && p.answers) {
      // no answer for a long while: show the request again (with a note) so that the person can act on it anew
      if (p.busy && Date.now() - p.at > HOST_SILENT_MS) {
        p.busy = false;
        p.state = 'wait';
        p.text = 'Sent, but the host has not answered yet (is corrald running and connected?). You can try again.';
      }
      return p;
    }
  }
  return null;
};
const HOST_SILENT_MS = 60000;
setInterval(() => Object.values(app.pending).some((p) => p.busy) && app.render(), 15000);

const LABEL = { approve: 'Approving', reject: 'Rejecting', reply: 'Sending your reply' };

/** Sends action k for session s with body b (ref: the event it answers). Returns the aid. */
async function send(s, k, b, { ref, answers = false, text } = {}) {
  const env = makeAction({ k, sid: s.sid, b, ref }, app.auth.team, app.auth.key);
  remember(app.st, env.aid, k, s.sid);
  const p = (app.pending[env.aid] = { sid: s.sid, seq: s.needs?.seq, k, answers, busy: true, state: 'busy', at: Date.now(),
    text: text ?? `${LABEL[k] ?? 'Sending'}…` });
  app.render();
  try {
    await postEnvelope(app.auth.token, env);
    if (app.pending[env.aid]) p.text = text ? `${text} Waiting for the host…` : `${LABEL[k] ?? 'Sent'} — waiting for the host…`;
  } catch (e) {
    if (e instanceof ApiError && (e.status === 0 || e.status === 503)) {
      app.outbox.push(env);
      store.put('outbox', app.outbox);
      p.text = 'No connection: it will be sent when the relay is back.';
    } else {
      delete app.pending[env.aid];
      p.busy = false;
      toast(`Not sent: ${e.message}`, true);
      if (k === 'task') app.ui.taskPending[s.sid] = { state: 'error', text: `Not sent: ${e.message}` };
      if (k === 'diff') app.ui.fullLoading[s.sid] = false;
    }
  }
  app.render();
  return env.aid;
}

async function flushOutbox() {
  while (app.outbox.length) {
    try {
      await postEnvelope(app.auth.token, app.outbox[0]);
    } catch (e) {
      if (e instanceof ApiError && (e.status === 0 || e.status === 503)) return; // still away
      toast(`An action waiting for the network was refused: ${e.message}`, true);
      delete app.pending[app.outbox[0].aid];
    }
    app.outbox.shift();
    await store.put('outbox', app.outbox);
    app.render();
  }
}

function body(s, extra = {}) {
  const b = {};
  if (s.needs?.rid) b.rid = s.needs.rid;
  return Object.assign(b, extra);
}

app.approve = (s) => {
  if (!s.needs) return;
  app.ui.rejecting = null;
  send(s, 'approve', body(s), { ref: s.needs.seq, answers: true,
    text: s.needs.k === 'diff.ready' ? 'Approved: committing and merging…' : 'Approved.' });
};

app.openReject = (s) => {
  if (!s.needs) return;
  app.ui.rejecting = `${s.sid}:${s.needs.seq}`;
  app.ui.discard = false;
  app.render();
  requestAnimationFrame(() => requestAnimationFrame(() => document.getElementById('reason')?.focus()));
};

app.closeReject = () => {
  app.ui.rejecting = null;
  app.render();
};

app.reject = (s, reason) => {
  if (!s.needs) return;
  const extra = {};
  if (reason && reason.trim()) extra.reason = reason.trim();
  if (s.needs.k === 'diff.ready' && app.ui.discard) extra.discard = true;
  app.ui.rejecting = null;
  send(s, 'reject', body(s, extra), { ref: s.needs.seq, answers: true, text: 'Rejected.' });
};

app.reply = (s, { text }) => {
  if (!s.needs || !text || !text.trim()) return;
  const key = `reply:${s.sid}:${s.needs.seq}`;
  app.drafts[key] = '';
  send(s, 'reply', body(s, { text: text.trim() }), { ref: s.needs.seq, answers: true, text: `Replied “${text.trim()}”.` });
};

/** A voice reply: the WAV and, when the browser's recognizer gave one, its transcript (DESIGN.md §7). */
app.sendVoice = (s, needs, r) => {
  const b = { audio: r.wav, mime: 'audio/wav' };
  if (needs.rid) b.rid = needs.rid;
  if (r.transcript) b.transcript = r.transcript;
  const cur = app.st.sessions[s.sid];
  return send(cur ?? s, 'reply', b, { ref: needs.seq, answers: true,
    text: r.transcript ? `You said “${r.transcript}”.` : 'Voice sent: the host is listening to it.' });
};

app.talk = (s, e, btn) => talk(app, s, e, btn);

app.queueTask = (s, text) => {
  if (!text || !text.trim()) return;
  app.drafts[`task:${s.sid}`] = '';
  app.ui.taskPending[s.sid] = { busy: true, state: 'busy', text: 'Queuing…' };
  send(s, 'task', { text: text.trim() }, { text: 'Queuing the task…' }).then(() => {
    if (app.ui.taskPending[s.sid]?.busy) app.ui.taskPending[s.sid] = { state: 'busy', text: 'Sent — waiting for the host…' };
    app.render();
  });
};

/** Asks the host for the whole diff of a truncated diff.ready: it answers with diff.full events. */
app.loadFullDiff = (s) => {
  app.ui.fullLoading[s.sid] = true;
  send(s, 'diff', {}, { ref: s.needs?.seq, text: 'Loading the full diff…' });
};

// ---- notifications ------------------------------------------------------------------------------------------------

app.enableNotifications = async () => {
  app.notice = { ok: true, message: 'Turning on notifications…' };
  app.render();
  const r = await enablePush(app.auth);
  app.notice = { ok: r.ok, message: r.message, canRetry: !r.ok && 'Notification' in window && Notification.permission === 'default' };
  store.put('notice', app.notice);
  app.render();
};

app.dismissNotice = () => {
  app.notice = null;
  store.put('notice', { dismissed: true });
  app.render();
};

let toastTimer = 0;
function toast(text, error = false) {
  let t = document.getElementById('toast');
  if (!t) {
    t = document.createElement('div');
    t.id = 'toast';
    t.setAttribute('role', 'status');
    document.body.append(t);
  }
  t.textContent = text;
  t.className = error ? 'show error' : 'show';
  clearTimeout(toastTimer);
  toastTimer = setTimeout(() => (t.className = ''), 4000);
}

// ---- pairing ------------------------------------------------------------------------------------------------------

async function startPairing() {
  const link = parsePairLink(location.hash);
  // the code and K never stay in the address bar, the history or a bookmark
  history.replaceState(null, '', location.pathname + location.search);
  if (!link) return;
  if (link.error || !link.code) {
    app.pairing = { error: link.error || 'This pairing link has no code. Run `corral pair` again.' };
    app.render();
    return;
  }
  app.pairing = { busy: true };
  app.render();
  try {
    const auth = await pair(link);
    if (app.link) app.link.stop();
    app.auth = auth;
    app.st = emptyState();
    await store.put('state', app.st);
    app.pairing = null;
    app.route = { name: 'home' };
    startLink();
    app.render();
    toast('This phone is paired.');
    app.enableNotifications();
  } catch (e) {
    app.pairing = { error: e.message };
    app.render();
  }
}

// ---- start --------------------------------------------------------------------------------------------------------

function startLink() {
  app.link = new Link({
    token: app.auth.token,
    after: () => app.st.lastId,
    onEvent,
    onStatus: (s) => {
      app.status = s;
      if (s === 'live') {
        app.everConnected = true;
        flushOutbox();
      }
      app.render();
    },
  });
  app.link.start();
}

async function boot() {
  if ('serviceWorker' in navigator) {
    navigator.serviceWorker.register('/sw.js', { scope: '/' }).catch((e) => console.warn('service worker:', e));
    navigator.serviceWorker.addEventListener('message', (e) => {
      if (typeof e.data?.open === 'string') app.go(e.data.open);
    });
  }
  const pairLink = parsePairLink(location.hash);
  try {
    const [auth, st, outbox, notice] = await Promise.all([store.loadAuth(), store.get('state'), store.get('outbox'), store.get('notice')]);
    app.auth = auth ?? null;
    if (st && st.sessions) app.st = Object.assign(emptyState(), st);
    app.outbox = Array.isArray(outbox) ? outbox : [];
    if (notice && !notice.dismissed) app.notice = notice;
  } catch (e) {
    console.warn('IndexedDB:', e);
  }
  addEventListener('hashchange', onRoute);
  if (pairLink) {
    startPairing();
  } else {
    app.route = parseRoute();
    draw();
    if (app.auth) startLink();
  }
  document.addEventListener('visibilitychange', () => document.visibilityState === 'visible' && app.link?.kick());
  performance.mark('corral-interactive');
  document.documentElement.dataset.ready = '1';
}

boot();
