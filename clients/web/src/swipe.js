// swipe.js — swipe a card right to approve and left to reject, with Pointer Events (touch, pen and mouse alike). The
// card follows the finger, tilts a little and shows which way it will go; past a third of its width it commits.
// Vertical movement stays the page's scroll (touch-action: pan-y in the CSS).

const COMMIT = 0.3; // share of the card's width
const SLOP = 10; // px before a horizontal move counts as a swipe

/** Makes el swipeable: onRight() / onLeft() on commit; onMove(active) when a drag starts and ends. */
export function swipeable(el, { onRight, onLeft, onMove = () => {} }) {
  let start = null;
  let dx = 0;
  let dragging = false;
  let quietUntil = 0; // a click right after a drag is the end of the drag, not a tap

  const set = (x) => {
    el.style.transform = x ? `translateX(${x}px) rotate(${x / 40}deg)` : '';
    const w = el.offsetWidth || 1;
    const f = Math.min(1, Math.abs(x) / (w * COMMIT));
    el.style.setProperty('--swipe', String(f));
    el.classList.toggle('to-right', x > 0);
    el.classList.toggle('to-left', x < 0);
    el.classList.toggle('armed', f >= 1);
  };

  const end = (commit) => {
    const w = el.offsetWidth || 1;
    const go = commit && Math.abs(dx) >= w * COMMIT ? Math.sign(dx) : 0;
    start = null;
    el.classList.remove('dragging');
    if (dragging) {
      onMove(false);
      quietUntil = Date.now() + 350;
    }
    dragging = false;
    if (go > 0) {
      el.classList.add('fly-right');
      set(w * 1.2);
      setTimeout(() => onRight(), 180);
    } else if (go < 0) {
      set(0);
      onLeft();
    } else {
      set(0);
    }
    dx = 0;
  };

  el.addEventListener('pointerdown', (e) => {
    if (e.button !== 0 || e.target.closest('input, textarea, select, .no-swipe')) return;
    start = { x: e.clientX, y: e.clientY, id: e.pointerId };
    dx = 0;
  });
  el.addEventListener('pointermove', (e) => {
    if (!start || e.pointerId !== start.id) return;
    const x = e.clientX - start.x;
    const y = e.clientY - start.y;
    if (!dragging) {
      if (Math.abs(x) < SLOP || Math.abs(x) < Math.abs(y)) {
        if (Math.abs(y) > SLOP) start = null; // a scroll
        return;
      }
      dragging = true;
      el.classList.add('dragging');
      try {
        el.setPointerCapture(e.pointerId);
      } catch {
        /* a synthetic pointer */
      }
      onMove(true);
    }
    dx = x;
    set(dx);
  });
  el.addEventListener('pointerup', (e) => start && e.pointerId === start.id && end(true));
  el.addEventListener('pointercancel', (e) => start && e.pointerId === start.id && end(false));
  // a drag that ends on a button is not a click on it
  el.addEventListener('click', (e) => {
    if (Date.now() < quietUntil) {
      e.stopPropagation();
      e.preventDefault();
    }
  }, true);
}
