// diffview.js — the unified diff as a person reads it on a phone: one block per file with its +/- counts, hunks with
// line numbers, syntax colouring (highlight.js), wrapped lines instead of sideways scrolling, and long files shown in
// pages so a huge diff does not freeze the page.
import { h, icon } from './dom.js';
import { langOf, parseDiff, tokens } from './highlight.js';

const PAGE = 1500; // lines of one file drawn before "show more"

function codeLine(l, lang, state) {
  const sign = l.t === '+' ? '+' : l.t === '-' ? '−' : ' ';
  const code = h('span.code');
  for (const [cls, text] of tokens(l.text, lang, state)) {
    code.append(cls ? h(`span.t-${cls}`, text) : document.createTextNode(text));
  }
  const cls = l.t === '+' ? 'add' : l.t === '-' ? 'del' : 'ctx';
  return h(`div.ln.${cls}`, h('span.no', l.t === '-' ? String(l.o) : String(l.n)), h('span.sg', sign), code);
}

function fileBlock(f, open) {
  const lang = langOf(f.path || f.old);
  const body = h('div.fbody');
  let shown = 0;
  // separate states for the old and new side: a block comment opened on a removed line does not colour added ones
  const state = { '+': {}, '-': {}, ' ': {} };
  const more = () => {
    const end = Math.min(f.lines.length, shown + PAGE);
    const frag = document.createDocumentFragment();
    for (; shown < end; shown++) {
      const l = f.lines[shown];
      if (l.t === 'hunk') {
        state['+'] = {};
        state['-'] = {};
        state[' '] = {};
        frag.append(h('div.hunk', l.text));
      } else if (l.t === 'meta') {
        if (/^(new|deleted) file|^rename|^Binary/.test(l.text)) frag.append(h('div.dmeta', l.text));
      } else if (l.t === '\\') frag.append(h('div.dmeta', l.text.replace(/^\\ /, '')));
      else {
        const st = state[l.t];
        frag.append(codeLine(l, lang, st));
        if (l.t === ' ') Object.assign(state['+'], st), Object.assign(state['-'], st);
      }
    }
    body.querySelector('.more')?.remove();
    body.append(frag);
    if (shown < f.lines.length) {
      body.append(h('button.more.btn.ghost', { type: 'button', onclick: more },
        `Show ${Math.min(PAGE, f.lines.length - shown)} more of ${f.lines.length - shown} lines`));
    }
  };
  const head = h('summary.fhead', icon('file'), h('span.path', f.path || f.old || '(unnamed)'),
    h('span.counts', h('span.plus', `+${f.add}`), ' ', h('span.minus', `−${f.del}`)));
  const det = h('details.file', { open }, head, body);
  if (open) more();
  else det.addEventListener('toggle', () => det.open && shown === 0 && more());
  return det;
}

/** The diff view of a patch text. */
export function diffView(patch) {
  const files = parseDiff(patch);
  if (!files.length) return h('div.diff.empty', 'The patch is empty.');
  const total = files.reduce((n, f) => n + f.lines.length, 0);
  return h('div.diff', files.map((f) => fileBlock(f, files.length <= 6 || total < 600)));
}
