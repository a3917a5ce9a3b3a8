// dom.js — a tiny element builder. Text is always set as text (never parsed as HTML: everything shown comes from
// agents and the network), and nothing uses style attributes, which the relay's Content-Security-Policy forbids.

/** h('div.card.need', {onclick, title, ...attrs}, ...children): children are nodes, strings, arrays or falsy. */
export function h(tag, props, ...children) {
  const [name, ...classes] = tag.split('.');
  const el = document.createElement(name || 'div');
  if (classes.length) el.className = classes.join(' ');
  if (props && (typeof props !== 'object' || props instanceof Node || Array.isArray(props))) {
    children.unshift(props);
    props = null;
  }
  for (const [k, v] of Object.entries(props ?? {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith('on')) {
      (el._h ??= {})[k.slice(2)] = v;
      el.addEventListener(k.slice(2), dispatch);
    }
    else if (k === 'class') el.className += (el.className ? ' ' : '') + v;
    else if (k === 'dataset') Object.assign(el.dataset, v);
    else if (k === 'value') el.value = v;
    else if (k in el && typeof v !== 'string') el[k] = v;
    else el.setAttribute(k, v === true ? '' : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const c of children) {
    if (c === null || c === undefined || c === false || c === '') continue;
    if (Array.isArray(c)) append(el, c);
    else el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// Handlers live in el._h and one shared listener calls them, so that morph() can hand an element kept on screen the
// handlers of the element that replaces it.
function dispatch(e) {
  return this._h?.[e.type]?.call(this, e);
}

const sameNode = (a, b) =>
  a.nodeType === b.nodeType &&
  (a.nodeType !== 1 || (a.tagName === b.tagName && a.getAttribute('key') === b.getAttribute('key')));

/**
 * Makes the element `cur` (on screen) look like `next` (just built) while keeping every element that stays: a tap,
 * the focus, a caret, an open <details> or the scroll of a list survive a redraw. Children are matched by position,
 * and by their `key` attribute when they have one (another key: replaced). An element with a `static` attribute is
 * left alone once its key matches (an expensive subtree such as a diff).
 */
export function morph(cur, next) {
  if (cur.hasAttribute('static') && cur.getAttribute('key') === next.getAttribute('key')) return;
  for (const a of [...cur.attributes]) {
    if (!next.hasAttribute(a.name) && !(a.name === 'open' && cur.tagName === 'DETAILS')) cur.removeAttribute(a.name);
  }
  for (const a of next.attributes) if (cur.getAttribute(a.name) !== a.value) cur.setAttribute(a.name, a.value);
  if ('value' in next && cur.value !== next.value && cur.tagName !== 'BUTTON') cur.value = next.value;
  if ('checked' in next && cur.checked !== next.checked) cur.checked = next.checked;
  cur._h = next._h;
  for (const type of Object.keys(next._h ?? {})) cur.addEventListener(type, dispatch);
  const a = [...cur.childNodes];
  const b = [...next.childNodes];
  for (let i = 0; i < Math.max(a.length, b.length); i++) {
    const x = a[i];
    const y = b[i];
    if (!y) x.remove();
    else if (!x) cur.append(y);
    else if (!sameNode(x, y)) x.replaceWith(y);
    else if (x.nodeType === 1) morph(x, y);
    else if (x.nodeValue !== y.nodeValue) x.nodeValue = y.nodeValue;
  }
}

/** Replaces el's children. */
export function mount(el, ...children) {
  el.replaceChildren();
  append(el, children);
  return el;
}

/** "12:04", "yesterday 18:30" or "3 Mar" for a ms timestamp. */
export function when(ts) {
  if (!ts) return '';
  const d = new Date(ts);
  const now = new Date();
  const hm = d.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  if (d.toDateString() === now.toDateString()) return hm;
  const y = new Date(now);
  y.setDate(now.getDate() - 1);
  if (d.toDateString() === y.toDateString()) return `yesterday ${hm}`;
  return d.toLocaleDateString([], { day: 'numeric', month: 'short' });
}

/** Inline SVG icons (paths only; drawn with currentColor). */
const ICONS = {
  check: 'M5 12.5l4.5 4.5L19 7.5',
  x: 'M6 6l12 12M18 6L6 18',
  mic: 'M12 3a3 3 0 00-3 3v6a3 3 0 006 0V6a3 3 0 00-3-3zM5 11a7 7 0 0014 0M12 18v3',
  back: 'M15 5l-7 7 7 7',
  send: 'M4 12l16-8-6 16-3-7-7-1z',
  bell: 'M6 16V11a6 6 0 0112 0v5l2 2H4l2-2zM10 20a2 2 0 004 0',
  file: 'M7 3h7l5 5v13H7zM14 3v5h5',
};

export function icon(name) {
  const ns = 'http://www.w3.org/2000/svg';
  const svg = document.createElementNS(ns, 'svg');
  svg.setAttribute('viewBox', '0 0 24 24');
  svg.setAttribute('aria-hidden', 'true');
  svg.setAttribute('class', 'icon');
  const p = document.createElementNS(ns, 'path');
  p.setAttribute('d', ICONS[name]);
  svg.append(p);
  return svg;
}
