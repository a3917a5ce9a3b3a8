// views.js — the screens: pairing, home (sessions grouped by identity, those that need the person first) and a
// session (its request card — approval, question or diff — the outcome of the last action, a follow-up task composer
// and recent activity). Views only build DOM from app state and call app methods; main.js owns the state.
import { h, icon, when } from './dom.js';
import { groups, status, summary } from './state.js';
import { canRecord } from './voice.js';
import { swipeable } from './swipe.js';

// ---- shared pieces ------------------------------------------------------------------------------------------------

function connection(app) {
  const s = app.status;
  if (s === 'live') return h('span.pill.live', { role: 'status' }, h('span.dot'), 'Live');
  if (s === 'connecting' || s === 'syncing') return h('span.pill.wait', { role: 'status' }, h('span.dot'), 'Connecting…');
  if (s === 'revoked') return h('span.pill.off', { role: 'status' }, h('span.dot'), 'Unpaired');
  return h('span.pill.off', { role: 'status' }, h('span.dot'), 'Offline');
}

function topbar(app, { title, sub, back }) {
  return h('header.top',
    back ? h('button.iconbtn', { type: 'button', 'aria-label': 'Back to all sessions', onclick: () => app.go('#/') }, icon('back')) : null,
    h('div.titles', h('h1', title), sub ? h('p.sub', sub) : null),
    connection(app));
}

function banners(app) {
  const out = [];
  if (app.status === 'revoked') {
    out.push(h('div.banner.error', 'This phone was unpaired (its token was revoked). Open a new pairing link from ',
      h('code', 'corral pair'), '.'));
  } else if (app.status === 'offline' && app.everConnected !== true) {
    out.push(h('div.banner.offline', { id: 'offline' },
      `Offline — showing the last state${app.st.updated ? ` from ${when(app.st.updated)}` : ''}. `,
      'Actions are sent when the relay is back.'));
  } else if (app.status === 'offline') {
    out.push(h('div.banner.offline', { id: 'offline' }, 'Connection lost — reconnecting. Showing the last state.'));
  }
  if (app.outbox.length) {
    out.push(h('div.banner.wait', `${app.outbox.length} action${app.outbox.length === 1 ? '' : 's'} waiting for the network.`));
  }
  if (app.notice) {
    out.push(h(`div.banner.${app.notice.ok ? 'ok' : 'info'}`, { id: 'push-notice' }, h('span', app.notice.message),
      app.notice.canRetry ? h('button.btn.small', { type: 'button', onclick: () => app.enableNotifications() }, 'Turn on') : null,
      h('button.iconbtn.small', { type: 'button', 'aria-label': 'Dismiss', onclick: () => app.dismissNotice() }, icon('x'))));
  }
  return out;
}

function chip(st) {
  return h(`span.chip.${st.tone}`, st.label);
}

// ---- pairing ------------------------------------------------------------------------------------------------------

export function renderPair(app) {
  const p = app.pairing;
  return h('main.pair', { key: 'pair' },
    h('div.logo', { 'aria-hidden': 'true' }, h('img', { src: '/icon.svg', alt: '', width: 72, height: 72 })),
    h('h1', 'Corral'),
    p?.busy
      ? [h('p.lead', 'Pairing this phone…'), h('div.spinner', { role: 'progressbar', 'aria-label': 'Pairing' })]
      : [
          h('p.lead', 'Supervise your coding agents from this phone.'),
          h('ol.steps',
            h('li', 'On your computer, run ', h('code', 'corral pair'), '.'),
            h('li', 'Scan its QR code with this phone, or open the link it prints.'),
            h('li', 'Approve, reject and answer your agents from here.')),
        ],
    p?.error ? h('div.banner.error', { role: 'alert' }, p.error) : null);
}

// ---- home ---------------------------------------------------------------------------------------------------------

function sessionRow(app, s) {
  const st = status(s);
  return h('a.row', { key: s.sid, href: `#/s/${encodeURIComponent(s.sid)}`, class: st.urgent ? 'urgent' : '', dataset: { sid: s.sid } },
    h('div.rowmain',
      h('div.rowhead', h('span.name', s.name || s.sid), chip(st)),
      h('p.summary', summary(s) || ' '),
      h('p.meta', [s.agent, s.branch, when(s.ts)].filter(Boolean).join(' · '))));
}

export function renderHome(app) {
  const gs = groups(app.st);
  const need = gs.reduce((n, g) => n + g.urgent, 0);
  return h('div.screen.home', { key: 'home' },
    topbar(app, { title: 'Corral', sub: need ? `${need} need${need === 1 ? 's' : ''} you` : gs.length ? 'Nothing needs you' : '' }),
    banners(app),
    h('main',
      gs.length === 0
        ? h('div.empty',
            h('p', 'No sessions yet.'),
            h('p', 'Start one on your computer:'),
            h('pre', 'corral new "add a /healthz endpoint" \\\n  --name health --identity api-agent'))
        : gs.map((g) => h('section.group', { dataset: { idn: g.idn } },
            h('h2', h('span.idn', g.idn || 'No identity'), g.urgent ? h('span.count', String(g.urgent)) : null),
            g.sessions.map((s) => sessionRow(app, s))))));
}

// ---- the request card ---------------------------------------------------------------------------------------------

function holdToTalk(app, s, label = 'Hold to talk') {
  if (!canRecord()) return null;
  const b = h('button.btn.talk.no-swipe', { type: 'button', 'aria-label': `${label}: hold while you speak, release to send` },
    icon('mic'), h('span', label));
  b.addEventListener('pointerdown', (e) => app.talk(s, e, b));
  b.addEventListener('contextmenu', (e) => e.preventDefault());
  return b;
}

function rejectSheet(app, s, kind) {
  const key = `reason:${s.sid}:${s.needs.seq}`;
  const isDiff = kind === 'diff.ready';
  return h('div.sheet.no-swipe', { role: 'group', 'aria-label': 'Reject' },
    h('label', { for: 'reason' }, isDiff ? 'Why reject these changes? (sent to the agent)' : 'Why? (optional, sent to the agent)'),
    h('textarea', { id: 'reason', rows: 2, dataset: { key }, value: app.draft(key),
      oninput: (e) => app.setDraft(key, e.target.value), placeholder: isDiff ? 'e.g. use the existing router' : 'e.g. not on the production database' }),
    isDiff ? h('label.check', h('input', { type: 'checkbox', id: 'discard', checked: !!app.ui.discard,
      onchange: (e) => (app.ui.discard = e.target.checked) }), 'Also discard the changes') : null,
    h('div.actions',
      h('button.btn.ghost', { type: 'button', onclick: () => app.closeReject() }, 'Cancel'),
      h('button.btn.reject', { type: 'button', id: 'confirm-reject', onclick: () => app.reject(s, app.draft(key)) }, icon('x'), 'Reject')));
}

function decisionButtons(app, s, approveLabel) {
  return h('div.actions.decide',
    h('button.btn.reject', { type: 'button', onclick: () => app.openReject(s) }, icon('x'), 'Reject'),
    h('button.btn.approve', { type: 'button', onclick: () => app.approve(s) }, icon('check'), approveLabel));
}

function inputDetails(input) {
  if (!input || typeof input !== 'object') return null;
  const rows = Object.entries(input).filter(([k, v]) => v !== null && v !== undefined && v !== '' && k !== 'command');
  if (!rows.length) return null;
  return h('dl.input', rows.slice(0, 8).map(([k, v]) => [h('dt', k),
    h('dd', typeof v === 'string' ? (v.length > 600 ? `${v.slice(0, 600)}…` : v) : JSON.stringify(v, (_, x) => (typeof x === 'bigint' ? String(x) : x)).slice(0, 600))]));
}

function approvalBody(s) {
  const b = s.needs.b;
  const cmd = typeof b.input?.command === 'string' ? b.input.command : b.summary;
  return [
    h('p.what', h('span.tool', b.tool || 'Tool'), ' wants to run'),
    h('pre.cmd', cmd || '(nothing said)'),
    b.input?.command && b.summary && b.summary !== b.input.command ? h('p.note', b.summary) : null,
    inputDetails(b.input),
  ];
}

function questionBody(app, s) {
  const b = s.needs.b;
  const key = `reply:${s.sid}:${s.needs.seq}`;
  const opts = Array.isArray(b.options) ? b.options.filter((o) => typeof o === 'string') : [];
  return [
    h('p.qtext', b.text || '(no text)'),
    opts.length ? h('div.options.no-swipe', opts.map((o, i) => h('button.btn.option', { type: 'button',
      onclick: () => app.reply(s, { text: o }), 'aria-label': `Option ${i + 1}: ${o}` }, h('span.num', String(i + 1)), o))) : null,
    h('form.replyform.no-swipe', { onsubmit: (e) => { e.preventDefault(); app.reply(s, { text: app.draft(key) }); } },
      h('input', { type: 'text', id: 'reply', dataset: { key }, value: app.draft(key), placeholder: 'Type a reply',
        autocomplete: 'off', enterkeyhint: 'send', oninput: (e) => app.setDraft(key, e.target.value), 'aria-label': 'Reply' }),
      h('button.btn.send', { type: 'submit', 'aria-label': 'Send reply' }, icon('send'))),
  ];
}

function diffBody(app, s, expanded) {
  const b = s.needs.b;
  const files = Array.isArray(b.files) ? b.files : [];
  const full = s.full?.patch && s.full.head === b.head ? s.full.patch : null;
  const loading = app.ui.fullLoading?.[s.sid];
  const statusMark = { added: 'A', modified: 'M', deleted: 'D', renamed: 'R', typechange: 'T' };
  return [
    h('p.what', h('span.tool', 'Changes'), ` ready to merge into ${b.base || 'the base branch'}`),
    h('p.totals', h('span.plus', `+${b.add ?? 0}`), ' ', h('span.minus', `−${b.del ?? 0}`),
      ` in ${files.length} file${files.length === 1 ? '' : 's'}`),
    h('ul.files', files.map((f) => h('li', h(`span.st.st-${f.status}`, { title: f.status }, statusMark[f.status] ?? '?'),
      h('span.path', f.path), h('span.counts', h('span.plus', `+${f.add}`), ' ', h('span.minus', `−${f.del}`))))),
    h('div.difftools.no-swipe',
      h('button.btn.ghost', { type: 'button', id: 'toggle-diff', onclick: () => app.go(expanded ? `#/s/${s.sid}` : `#/s/${s.sid}/diff`) },
        expanded ? 'Hide the diff' : 'Review the diff')),
    expanded ? [
      b.truncated && !full
        ? h('div.banner.info.truncated', 'This diff is large and was cut short. ',
            h('button.btn.small', { type: 'button', id: 'load-full', disabled: !!loading, onclick: () => app.loadFullDiff(s) },
              loading ? 'Loading the full diff…' : 'Load the full diff'))
        : null,
      full ? h('p.note', s.full.truncated ? 'The full diff, cut at the host\'s limit (4 MiB): see the rest with `corral diff` on the computer.' : 'The full diff.') : null,
      app.diffSlot(`diff:${s.sid}:${s.needs.seq}:${full ? 'full' : 'cut'}`, full ?? b.patch ?? ''),
    ] : null,
  ];
}

/** The card of what the session needs now, or null. */
export function requestCard(app, s, expanded) {
  const n = s.needs;
  if (!n) return null;
  const pend = app.pendingFor(s);
  if (pend?.busy) {
    return h('article.card.req.sent', { id: 'request', key: `req:${s.sid}:${n.seq}:sent`, dataset: { k: n.k, seq: String(n.seq), state: 'sent' } },
      h('div.spinner.small', { 'aria-hidden': 'true' }), h('p', { role: 'status' }, pend.text));
  }
  const kindClass = { 'approval.request': 'approval', question: 'question', 'diff.ready': 'review' }[n.k] ?? 'other';
  const sealed = !n.b;
  const title = { 'approval.request': 'Approval needed', question: 'Question', 'diff.ready': 'Review the changes' }[n.k];
  const card = h(`article.card.req.${kindClass}`, { id: 'request', key: `req:${s.sid}:${n.seq}`, dataset: { k: n.k, seq: String(n.seq) }, 'aria-label': title },
    h('div.swipehint.right', { 'aria-hidden': 'true' }, icon('check'), n.k === 'diff.ready' ? 'Merge' : 'Approve'),
    h('div.swipehint.left', { 'aria-hidden': 'true' }, icon('x'), 'Reject'),
    h('header.cardhead', h('span.kind', title), h('span.when', when(n.ts))),
    sealed
      ? h('p.note', 'This request is sealed with a team key this phone does not hold. Approving or rejecting still works; pair again to read it.')
      : n.k === 'approval.request' ? approvalBody(s)
        : n.k === 'question' ? questionBody(app, s) : diffBody(app, s, expanded),
    pend ? h(`div.pending.${pend.state}`, { role: 'status' }, pend.text) : null,
    app.ui.rejecting === `${s.sid}:${n.seq}` ? rejectSheet(app, s, n.k)
      : h('div.cardfoot',
          n.k === 'question' ? null : decisionButtons(app, s, n.k === 'diff.ready' ? 'Approve' : 'Approve'),
          holdToTalk(app, s, n.k === 'question' ? 'Hold to answer' : 'Hold to talk'),
          n.k !== 'question' ? h('p.hint', 'Swipe right to approve, left to reject.') : null));
  if (n.k !== 'question') {
    swipeable(card, {
      onRight: () => app.approve(s),
      onLeft: () => app.openReject(s),
      onMove: (active) => app.holdRender(active),
    });
  }
  return card;
}

// ---- a session ----------------------------------------------------------------------------------------------------

function outcomeBanner(app, s) {
  const o = s.outcome;
  // the outcome of the last action, while it is news: not older than the request shown now, nor than 5 minutes
  if (!o || !o.aid || Date.now() - o.ts > 300000 || (s.needs && s.needs.ts > o.ts)) return null;
  if (!o.k && o.ok) return null; // someone else's action that worked: the activity list has it
  const heard = o.heard ? h('span.heard', ` Heard “${o.heard}”.`) : null;
  const text = o.ok ? (o.k === 'task' ? `Task ${o.detail}.` : `Done: ${o.detail || 'applied'}.`) : `The host could not apply it: ${o.detail || o.code || 'failed'}.`;
  const commit = o.commit && !o.detail.includes(o.commit.slice(0, 10)) ? ` Commit ${o.commit.slice(0, 10)}.` : '';
  return h(`div.banner.${o.ok ? 'ok' : 'error'}.outcome`, { id: 'outcome', role: o.ok ? 'status' : 'alert' },
    h('span', text, heard, commit));
}

function composer(app, s) {
  const key = `task:${s.sid}`;
  const p = app.ui.taskPending?.[s.sid];
  return h('section.composer',
    h('h3', 'Queue a follow-up task'),
    h('form.no-swipe', { onsubmit: (e) => { e.preventDefault(); app.queueTask(s, app.draft(key)); } },
      h('textarea', { id: 'task', rows: 2, dataset: { key }, value: app.draft(key), 'aria-label': 'Follow-up task',
        placeholder: 'e.g. now add a test for it', oninput: (e) => app.setDraft(key, e.target.value) }),
      h('button.btn.primary', { type: 'submit', id: 'queue-task', disabled: !!p?.busy }, p?.busy ? 'Queuing…' : 'Queue task')),
    p?.text ? h(`p.note.${p.state}`, { id: 'task-status', role: 'status' }, p.text) : null,
    h('p.hint', 'It starts when the agent is idle; tasks wait in tasks.md on the host.'));
}

function feedItem(it) {
  const b = it.b ?? {};
  let text;
  let cls = `ev-${it.k.replace(/\./g, '-')}`;
  switch (it.k) {
    case 'agent.message': text = b.text; break;
    case 'agent.tool': text = `${b.tool}: ${b.summary}`; break;
    case 'approval.request': text = `Asked to run ${b.tool}: ${b.summary}`; break;
    case 'question': text = `Asked: ${b.text}`; break;
    case 'diff.ready': {
      const n = b.files?.length ?? 0;
      text = `Changes ready: +${b.add} −${b.del} in ${n} file${n === 1 ? '' : 's'}${b.truncated ? ' (large)' : ''}`;
      break;
    }
    case 'action.applied':
      text = `${b.ok ? '✓' : '✗'} ${b.detail || (b.ok ? 'applied' : 'failed')}${b.heard ? ` (heard “${b.heard}”)` : ''}`;
      cls += b.ok ? ' ok' : ' fail';
      break;
    case 'inbox.message': text = `${b.channel === 'sms' ? 'SMS' : 'Mail'} from ${b.from}${b.subject ? `: ${b.subject}` : ''}`; break;
    case 'session.done': text = `Done: ${b.summary}`; break;
    default: text = it.k;
  }
  if (!it.b) text = `${it.k} (sealed)`;
  return h('li', { class: cls }, h('span.t', when(it.ts)), h('span.x', text ?? ''));
}

export function renderSession(app, sid, sub) {
  const s = app.st.sessions[sid];
  if (!s) {
    return h('div.screen.session', { key: `session:${sid}` }, topbar(app, { title: 'Session', back: true }),
      h('main', h('div.empty', h('p', 'This session is not known to this phone (yet).'))));
  }
  const st = status(s);
  const items = s.feed.slice().reverse().slice(0, 30);
  return h('div.screen.session', { key: `session:${sid}`, dataset: { sid } },
    topbar(app, { title: s.name || s.sid, sub: s.idn || 'no identity', back: true }),
    banners(app),
    h('main',
      h('div.sesshead', chip(st), h('span.meta', [s.agent, s.branch].filter(Boolean).join(' · '))),
      outcomeBanner(app, s),
      requestCard(app, s, sub === 'diff'),
      s.done ? h('div.banner.ok', `Done: ${s.done.summary}`) : null,
      composer(app, s),
      h('section.activity', h('h3', 'Activity'), items.length ? h('ul.feed', items.map(feedItem)) : h('p.note', 'Nothing yet.'))));
}
