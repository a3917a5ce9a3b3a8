// state.js — the phone's picture of the team's sessions, made from the event stream (PROTOCOL.md §2) and nothing else:
// each event is applied once, in stream order, by apply(); what a session needs from the person comes from its last
// approval.request, question or diff.ready until something answers it. Pure data, no DOM: the page renders it and
// IndexedDB keeps it for offline use.

export const FEED_MAX = 60; // events of a session kept for its activity list

/** An empty state. */
export function emptyState() {
  return { lastId: '0', sessions: {}, mine: {}, updated: 0 };
}

function session(st, sid, host) {
  let s = st.sessions[sid];
  if (!s) {
    s = st.sessions[sid] = {
      sid, host: host ?? '', idn: '', name: '', agent: '', branch: '', base: '', prompt: '', state: '', reason: '',
      needs: null, outcome: null, full: null, done: null, last: '', lastSeq: 0, ts: 0, feed: [], reqs: [],
    };
  }
  s.reqs ??= []; // a state saved by an older version
  return s;
}

export const REQS_MAX = 8; // requests of a session kept, so that a later session.state can name one again

function feed(s, e, b) {
  s.feed.push({ k: e.k, seq: e.seq, ts: e.ts, b });
  if (s.feed.length > FEED_MAX) s.feed.splice(0, s.feed.length - FEED_MAX);
}

const str = (v) => (typeof v === 'string' ? v : '');

/**
 * Applies one event frame {id, host, e} whose body has been opened (b: the plain body, or null when sealed and not
 * openable). Returns the session it changed.
 */
export function apply(st, id, host, e, b) {
  const s = session(st, e.sid, host);
  if (host) s.host = host;
  if (e.idn) s.idn = e.idn;
  if (typeof e.seq === 'number' && e.seq > s.lastSeq) s.lastSeq = e.seq;
  s.ts = Math.max(s.ts, Number(e.ts) || 0);
  st.lastId = id;
  st.updated = Date.now();
  const body = b ?? {};
  switch (e.k) {
    case 'session.started':
      s.name = str(body.name) || s.name;
      s.agent = str(body.agent);
      s.branch = str(body.branch);
      s.base = str(body.base);
      s.prompt = str(body.prompt);
      s.state = 'running';
      break;
    case 'session.state':
      s.state = str(body.state) || s.state;
      s.reason = str(body.reason);
      if (typeof body.needs === 'string') {
        // the host says what is pending: nothing, or a request this phone saw (a state that raced it changes nothing)
        const rid = str(body.rid);
        if (!body.needs) s.needs = null;
        else if (!s.needs || s.needs.k !== body.needs || (rid && s.needs.rid !== rid)) {
          s.needs = s.reqs.findLast((r) => r.k === body.needs && (!rid || r.rid === rid)) ?? s.needs;
        }
      } else if (s.state !== 'waiting') {
        s.needs = null; // a host that does not say: a session that moved on needs nothing
      }
      break;
    case 'approval.request':
    case 'question':
    case 'diff.ready':
      s.needs = { k: e.k, seq: e.seq, ts: e.ts, rid: str(body.rid), b };
      s.reqs.push(s.needs);
      if (s.reqs.length > REQS_MAX) s.reqs.splice(0, s.reqs.length - REQS_MAX);
      s.state = 'waiting';
      if (e.k === 'diff.ready') s.full = null;
      feed(s, e, b);
      break;
    case 'action.applied': {
      const mine = st.mine[body.aid];
      s.outcome = { aid: str(body.aid), ok: body.ok === true, detail: str(body.detail), heard: str(body.heard),
        commit: str(body.commit), code: str(body.code), k: mine?.k ?? '', ts: e.ts };
      if (mine) mine.done = true;
      // An answer clears what the session needed; a queued task or a failed action does not (the host keeps
      // waiting). Actions of other devices or the CLI are known only by their detail.
      const answers = mine ? ['approve', 'reject', 'reply'].includes(mine.k) : !/^queued\b/.test(s.outcome.detail);
      if (s.outcome.ok && answers) s.needs = null;
      feed(s, e, b);
      break;
    }
    case 'diff.full': {
      // the whole patch of the pending diff, in parts: {head, part (1-based), parts, patch}
      const parts = Number(body.parts) || 1;
      const part = Number(body.part) || 1;
      if (!s.full || s.full.head !== body.head || s.full.parts.length !== parts) {
        s.full = { head: str(body.head), parts: new Array(parts).fill(null), patch: null };
      }
      if (part >= 1 && part <= parts) s.full.parts[part - 1] = str(body.patch);
      if (body.truncated === true) s.full.truncated = true;
      if (s.full.parts.every((p) => p !== null)) s.full.patch = s.full.parts.join('');
      break;
    }
    case 'session.done':
      s.done = { summary: str(body.summary) };
      s.state = 'done';
      s.needs = null;
      feed(s, e, b);
      break;
    case 'agent.message':
      s.last = str(body.text);
      feed(s, e, b);
      break;
    case 'agent.tool':
      s.last = `${str(body.tool)}: ${str(body.summary)}`;
      feed(s, e, b);
      break;
    default:
      if (e.pri >= 1) feed(s, e, b);
  }
  return s;
}

/** Notes an action this phone sent (so that its action.applied is read right). */
export function remember(st, aid, k, sid) {
  st.mine[aid] = { k, sid, ts: Date.now(), done: false };
  const aids = Object.keys(st.mine);
  if (aids.length > 200) for (const a of aids.slice(0, aids.length - 200)) delete st.mine[a];
}

// ---- what the home screen shows -----------------------------------------------------------------------------------

const NEED_LABEL = { 'approval.request': 'Needs approval', question: 'Question', 'diff.ready': 'Review' };
const STATE_LABEL = {
  running: 'Running', waiting: 'Waiting', idle: 'Idle', suspended: 'Suspended', done: 'Done', failed: 'Failed',
};

/** {label, tone, urgent} of what a session needs now: tone is one of need, run, idle, done, fail. */
export function status(s) {
  if (s.needs) return { label: NEED_LABEL[s.needs.k] ?? 'Needs you', tone: 'need', urgent: true };
  const label = STATE_LABEL[s.state] ?? (s.state || 'Starting');
  const tone = s.state === 'running' ? 'run' : s.state === 'failed' ? 'fail' : s.state === 'done' ? 'done' : 'idle';
  return { label, tone, urgent: false };
}

const RANK = { need: 0, run: 1, idle: 2, fail: 3, done: 4 };

/** Sessions grouped by identity: [{idn, sessions, urgent}], those that need the person first, then most recent. */
export function groups(st) {
  const by = new Map();
  for (const s of Object.values(st.sessions)) {
    const key = s.idn || '';
    if (!by.has(key)) by.set(key, []);
    by.get(key).push(s);
  }
  const out = [];
  for (const [idn, list] of by) {
    list.sort((a, b) => {
      const ra = RANK[status(a).tone];
      const rb = RANK[status(b).tone];
      if (ra !== rb) return ra - rb;
      if (ra === 0) return (a.needs.ts || 0) - (b.needs.ts || 0); // the oldest request first
      return b.ts - a.ts;
    });
    out.push({ idn, sessions: list, urgent: list.filter((s) => s.needs).length, ts: Math.max(...list.map((s) => s.ts)) });
  }
  out.sort((a, b) => (b.urgent > 0) - (a.urgent > 0) || b.ts - a.ts);
  return out;
}

/** One line about a session for lists: what it asks, else what it did last. */
export function summary(s) {
  const n = s.needs;
  if (n && n.b) {
    if (n.k === 'approval.request') return `${str(n.b.tool)}: ${str(n.b.summary)}`;
    if (n.k === 'question') return str(n.b.text);
    if (n.k === 'diff.ready') {
      const files = Array.isArray(n.b.files) ? n.b.files.length : 0;
      return `${files} file${files === 1 ? '' : 's'} changed, +${n.b.add ?? 0} −${n.b.del ?? 0}`;
    }
  }
  if (n) return 'Sealed request: this phone cannot open it';
  if (s.done?.summary) return s.done.summary;
  return s.last || s.reason || s.prompt || '';
}
