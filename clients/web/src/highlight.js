// highlight.js — a small syntax highlighter for diff lines, by file extension: comments, strings, numbers and
// keywords for the C family (C, C++, JS/TS, Go, Rust, Java, Swift, Kotlin, C#), hash-comment languages (Python, shell,
// Ruby, YAML, TOML, CMake, Make), SQL, JSON, CSS and markup tags. A line is a list of [class, text] tokens; block
// comments carry over lines through a state object. Also the unified-diff parser the review screen renders.

const C_KW =
  'auto break case catch char class const constexpr continue default defer delete do double else enum export extends ' +
  'extern false final finally float fn for func function go goto if impl implements import in include define ' +
  'instanceof int interface let long match mod move mut namespace new nil null nullptr operator override package ' +
  'private protected pub public return self short signed sizeof static struct super switch this throw throws trait ' +
  'true try type typedef typeof union unsigned use using var void volatile where while yield async await of as from ' +
  'uint8_t uint16_t uint32_t uint64_t int64_t int32_t size_t bool string undefined';
const HASH_KW =
  'and as assert async await break class continue def del elif else except False finally for from global if import ' +
  'in is lambda None nonlocal not or pass raise return True try while with yield then fi do done case esac function ' +
  'local export echo set unset end begin module require true false null nil self elsif unless until';
const SQL_KW =
  'select from where and or not insert into values update set delete create table drop alter add index primary key ' +
  'foreign references join left right inner outer on group by order having limit offset as distinct null is in ' +
  'exists union all case when then else end begin commit rollback';

const kwset = (s, ci) => new Set((ci ? s.toLowerCase() : s).split(' '));

const LANGS = {
  c: { line: '//', block: ['/*', '*/'], kw: kwset(C_KW), str: '"\'`' },
  hash: { line: '#', kw: kwset(HASH_KW), str: '"\'' },
  sql: { line: '--', block: ['/*', '*/'], kw: kwset(SQL_KW, true), ci: true, str: '\'"' },
  json: { kw: new Set(['true', 'false', 'null']), str: '"' },
  css: { block: ['/*', '*/'], kw: new Set(['important']), str: '"\'' },
  markup: { markup: true },
  text: null,
};

const EXT = {
  c: 'c', h: 'c', cc: 'c', cpp: 'c', cxx: 'c', hpp: 'c', hh: 'c', m: 'c', mm: 'c', js: 'c', mjs: 'c', cjs: 'c',
  jsx: 'c', ts: 'c', tsx: 'c', java: 'c', go: 'c', rs: 'c', swift: 'c', kt: 'c', kts: 'c', cs: 'c', scala: 'c',
  dart: 'c', php: 'c', zig: 'c', proto: 'c', lua: 'sql',
  py: 'hash', sh: 'hash', bash: 'hash', zsh: 'hash', rb: 'hash', yml: 'hash', yaml: 'hash', toml: 'hash',
  ini: 'hash', cfg: 'hash', conf: 'hash', cmake: 'hash', mk: 'hash', pl: 'hash', r: 'hash', nix: 'hash',
  sql: 'sql', json: 'json', webmanifest: 'json', css: 'css', scss: 'css', less: 'css',
  html: 'markup', htm: 'markup', xml: 'markup', svg: 'markup', vue: 'markup',
};
const NAMES = { makefile: 'hash', dockerfile: 'hash', 'cmakelists.txt': 'hash', gnumakefile: 'hash' };

/** The language of a path: one of the keys of LANGS. */
export function langOf(path) {
  const base = String(path).split('/').pop().toLowerCase();
  if (NAMES[base]) return NAMES[base];
  const dot = base.lastIndexOf('.');
  return (dot >= 0 && EXT[base.slice(dot + 1)]) || 'text';
}

const IDENT = /[A-Za-z_$][\w$]*/y;
const NUM = /(?:0[xX][0-9a-fA-F_]+|0[bB][01_]+|\d[\d_]*(?:\.\d[\d_]*)?(?:[eE][+-]?\d+)?)[uUlLfF]*/y;
const TAG = /<\/?[A-Za-z][\w:-]*|\/?>|<!--.*?(?:-->|$)/y;

/** Tokens [[cls, text], ...] of one line of code in language lang; state {block} carries an open block comment. */
export function tokens(line, lang, state = {}) {
  const L = LANGS[lang];
  if (!L) return [['', line]];
  const out = [];
  let plain = '';
  const push = (cls, text) => {
    if (plain) {
      out.push(['', plain]);
      plain = '';
    }
    out.push([cls, text]);
  };
  let i = 0;
  if (state.block) {
    const end = line.indexOf(L.block[1]);
    if (end < 0) return [['com', line]];
    out.push(['com', line.slice(0, end + L.block[1].length)]);
    i = end + L.block[1].length;
    state.block = false;
  }
  while (i < line.length) {
    const ch = line[i];
    if (L.markup) {
      TAG.lastIndex = i;
      const m = TAG.exec(line);
      if (m && m[0]) {
        push(m[0].startsWith('<!--') ? 'com' : 'kw', m[0]);
        i += m[0].length;
        continue;
      }
      if (ch === '"') {
        const end = line.indexOf('"', i + 1);
        const s = end < 0 ? line.slice(i) : line.slice(i, end + 1);
        push('str', s);
        i += s.length;
        continue;
      }
      plain += ch;
      i++;
      continue;
    }
    if (L.line && line.startsWith(L.line, i) && !(L.line === '#' && lang === 'hash' && line[i + 1] === '{')) {
      push('com', line.slice(i));
      break;
    }
    if (L.block && line.startsWith(L.block[0], i)) {
      const end = line.indexOf(L.block[1], i + L.block[0].length);
      if (end < 0) {
        push('com', line.slice(i));
        state.block = true;
        break;
      }
      push('com', line.slice(i, end + L.block[1].length));
      i = end + L.block[1].length;
      continue;
    }
    if (L.str && L.str.includes(ch)) {
      let j = i + 1;
      while (j < line.length && line[j] !== ch) j += line[j] === '\\' ? 2 : 1;
      push('str', line.slice(i, j + 1));
      i = j + 1;
      continue;
    }
    if (/[0-9]/.test(ch) && !/[\w$]/.test(line[i - 1] ?? '')) {
      NUM.lastIndex = i;
      const m = NUM.exec(line);
      if (m) {
        push('num', m[0]);
        i += m[0].length;
        continue;
      }
    }
    if (/[A-Za-z_$]/.test(ch)) {
      IDENT.lastIndex = i;
      const w = IDENT.exec(line)[0];
      if (L.kw.has(L.ci ? w.toLowerCase() : w)) push('kw', w);
      else if (line[i + w.length] === '(') push('fn', w);
      else plain += w;
      i += w.length;
      continue;
    }
    plain += ch;
    i++;
  }
  if (plain) out.push(['', plain]);
  return out;
}

// ---- unified diffs ------------------------------------------------------------------------------------------------

/**
 * Files of a unified diff (git's form): [{path, old, lines: [{t, text, o, n}]}] where t is one of 'hunk', '+', '-',
 * ' ', '\\' (no newline at end of file), 'meta'; o and n are old and new line numbers.
 */
export function parseDiff(patch) {
  const files = [];
  let f = null;
  let o = 0;
  let n = 0;
  const lines = String(patch).split('\n');
  if (lines.length && lines[lines.length - 1] === '') lines.pop();
  for (const line of lines) {
    if (line.startsWith('diff --git ')) {
      const m = /^diff --git a\/(.*) b\/(.*)$/.exec(line);
      f = { path: m ? m[2] : line.slice(11), old: m ? m[1] : '', lines: [], add: 0, del: 0 };
      files.push(f);
      continue;
    }
    if (!f) {
      f = { path: '', old: '', lines: [], add: 0, del: 0 };
      files.push(f);
    }
    const hunk = /^@@ -(\d+)(?:,\d+)? \+(\d+)(?:,\d+)? @@(.*)$/.exec(line);
    if (hunk) {
      o = Number(hunk[1]);
      n = Number(hunk[2]);
      f.lines.push({ t: 'hunk', text: line });
      f.inHunk = true;
    } else if (!f.inHunk) {
      if (line.startsWith('+++ ') && line !== '+++ /dev/null') f.path = line.slice(4).replace(/^b\//, '');
      else if (line.startsWith('--- ') && line !== '--- /dev/null') f.old = line.slice(4).replace(/^a\//, '');
      f.lines.push({ t: 'meta', text: line });
    } else if (line[0] === '+') {
      f.lines.push({ t: '+', text: line.slice(1), n: n++ });
      f.add++;
    } else if (line[0] === '-') {
      f.lines.push({ t: '-', text: line.slice(1), o: o++ });
      f.del++;
    } else if (line[0] === '\\') {
      f.lines.push({ t: '\\', text: line });
    } else {
      f.lines.push({ t: ' ', text: line.slice(1), o: o++, n: n++ });
    }
  }
  for (const x of files) delete x.inHunk;
  return files;
}
