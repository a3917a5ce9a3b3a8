// state.test.mjs — the phone's picture of the sessions (src/state.js): what each session needs from the person and
// when an answer clears it, the home screen's grouping by identity with those that need the person first, and a full
// diff joined from its diff.full parts.
import assert from 'node:assert/strict';
import { test } from 'node:test';
import { apply, emptyState, groups, remember, status, summary } from '../src/state.js';

let n = 0;
function ev(st, sid, k, b, extra = {}) {
  n += 1;
  const e = { v: 1, k, sid, seq: n, ts: 1764000000000 + n, pri: 1, ...extra };
  return apply(st, `1764000000000-${n}`, 'host1', e, b);
}

test('a request is what the session needs until it is answered', () => {
  const st = emptyState();
  ev(st, 'A', 'session.started', { name: 'auth', agent: 'claude', branch: 'corral/auth', base: 'main' }, { idn: 'ana' });
  let s = ev(st, 'A', 'approval.request', { rid: 'r1', tool: 'Bash', summary: 'npm install stripe' }, { idn: 'ana', pri: 2 });
  assert.equal(s.needs.k, 'approval.request');
  assert.equal(s.needs.rid, 'r1');
  assert.deepEqual(status(s), { label: 'Needs approval', tone: 'need', urgent: true });
  assert.equal(summary(s), 'Bash: npm install stripe');
  assert.equal(st.lastId, `1764000000000-${n}`);

  // a failed answer keeps the request; a task this phone queued does not answer it
  s = ev(st, 'A', 'action.applied', { aid: 'X1', ok: false, detail: 'not understood', code: 'not_understood', heard: '' });
  assert.equal(s.needs.k, 'approval.request');
  assert.equal(s.outcome.code, 'not_understood');
  remember(st, 'T1', 'task', 'A');
  s = ev(st, 'A', 'action.applied', { aid: 'T1', ok: true, detail: 'queued (1 in tasks.md)' });
  assert.equal(s.needs.k, 'approval.request');
  assert.equal(s.outcome.k, 'task');
  // the CLI's task (an aid this phone did not send) is known by its detail
  s = ev(st, 'A', 'action.applied', { aid: 'T2', ok: true, detail: 'queued (2 in tasks.md)' });
  assert.ok(s.needs);
  // the approval, by voice
  remember(st, 'V1', 'reply', 'A');
  s = ev(st, 'A', 'action.applied', { aid: 'V1', ok: true, detail: 'approved r1', heard: 'approve' });
  assert.equal(s.needs, null);
  assert.equal(s.outcome.heard, 'approve');
  assert.equal(st.mine.V1.done, true);
  assert.deepEqual(status(s), { label: 'Waiting', tone: 'idle', urgent: false });
  s = ev(st, 'A', 'session.state', { state: 'running' });
  assert.equal(status(s).label, 'Running');
});

test('a session that moves on from waiting needs nothing; done is done', () => {
  const st = emptyState();
  let s = ev(st, 'B', 'question', { rid: 'q1', text: 'Which database?', options: ['staging', 'prod'] }, { pri: 2 });
  assert.equal(summary(s), 'Which database?');
  s = ev(st, 'B', 'session.state', { state: 'waiting' });
  assert.equal(s.needs.k, 'question');
  s = ev(st, 'B', 'session.state', { state: 'idle' });
  assert.equal(s.needs, null);
  s = ev(st, 'B', 'session.done', { summary: 'Fixed it' });
  assert.equal(status(s).label, 'Done');
  assert.equal(summary(s), 'Fixed it');
});

test('a host that says what is pending: a state that raced the question keeps it; nothing pending clears it', () => {
  const st = emptyState();
  ev(st, 'Q', 'session.started', { name: 'db' });
  let s = ev(st, 'Q', 'question', { rid: 'q7', text: 'Which region?', options: ['us-east', 'eu-west'] }, { pri: 2 });
  // the agent's turn started after the question was asked: running, but the question still waits
  s = ev(st, 'Q', 'session.state', { state: 'running', needs: 'question', rid: 'q7' });
  assert.equal(s.needs.k, 'question');
  assert.equal(s.needs.rid, 'q7');
  s = ev(st, 'Q', 'session.state', { state: 'waiting', needs: 'question', rid: 'q7' });
  assert.equal(summary(s), 'Which region?');
  // an answer from another device cleared it here; a later state naming it brings it back only if it still waits
  s.needs = null;
  s = ev(st, 'Q', 'session.state', { state: 'waiting', needs: 'question', rid: 'q7' });
  assert.equal(s.needs?.rid, 'q7');
  s = ev(st, 'Q', 'session.state', { state: 'running', needs: '' });
  assert.equal(s.needs, null);
  // a request it never saw: nothing to show (the state alone cannot make a card)
  s = ev(st, 'Q', 'session.state', { state: 'waiting', needs: 'approval.request', rid: 'zz' });
  assert.equal(s.needs, null);
});

test('a sealed request this phone cannot open still needs the person', () => {
  const st = emptyState();
  const s = ev(st, 'C', 'diff.ready', null, { pri: 2 });
  assert.equal(s.needs.k, 'diff.ready');
  assert.equal(s.needs.b, null);
  assert.match(summary(s), /cannot open/);
});

test('groups by identity, those that need the person first, the oldest request first', () => {
  const st = emptyState();
  ev(st, 'S1', 'session.started', { name: 'one' }, { idn: 'zed' });
  ev(st, 'S2', 'session.started', { name: 'two' }, { idn: 'amy' });
  ev(st, 'S3', 'session.started', { name: 'three' }, { idn: 'amy' });
  ev(st, 'S4', 'session.started', { name: 'four' });
  ev(st, 'S3', 'question', { rid: 'q', text: '?' }, { idn: 'amy', pri: 2 });
  ev(st, 'S2', 'approval.request', { rid: 'r', tool: 'Bash', summary: 'ls' }, { idn: 'amy', pri: 2 });
  ev(st, 'S1', 'session.done', { summary: 'ok' }, { idn: 'zed' });
  ev(st, 'S4', 'agent.message', { text: 'hello' });
  const g = groups(st);
  assert.deepEqual(g.map((x) => x.idn), ['amy', '', 'zed']);
  assert.deepEqual(g[0].sessions.map((s) => s.name), ['three', 'two']);
  assert.equal(g[0].urgent, 2);
  assert.equal(summary(st.sessions.S4), 'hello');
});

test('diff.full parts join in part order, whatever order they come in', () => {
  const st = emptyState();
  ev(st, 'D', 'diff.ready', { base: 'main', head: 'h1', files: [], add: 1, del: 0, patch: 'cut', truncated: true }, { pri: 2 });
  let s = ev(st, 'D', 'diff.full', { head: 'h1', part: 2, parts: 3, patch: 'b' });
  assert.equal(s.full.patch, null);
  s = ev(st, 'D', 'diff.full', { head: 'h1', part: 1, parts: 3, patch: 'a' });
  assert.equal(s.full.patch, null);
  s = ev(st, 'D', 'diff.full', { head: 'h1', part: 3, parts: 3, patch: 'c', truncated: true });
  assert.equal(s.full.patch, 'abc');
  assert.equal(s.full.truncated, true);
  // a new diff starts over
  s = ev(st, 'D', 'diff.ready', { base: 'main', head: 'h2', files: [], add: 1, del: 0, patch: 'x', truncated: true }, { pri: 2 });
  assert.equal(s.full, null);
});

test('the activity list keeps the last events only', () => {
  const st = emptyState();
  for (let i = 0; i < 100; i++) ev(st, 'F', 'agent.message', { text: `m${i}` });
  const s = st.sessions.F;
  assert.equal(s.feed.length, 60);
  assert.equal(s.feed.at(-1).b.text, 'm99');
  assert.equal(s.last, 'm99');
});
