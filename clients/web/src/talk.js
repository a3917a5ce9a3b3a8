// talk.js — the hold-to-talk gesture and its overlay: press and hold the mic button, speak, release to send; slide
// the finger away before releasing to cancel. While recording it shows the level and the browser's running
// transcript; after release, the transcript for a glance (or that the host will listen to the audio), then sends.
import { h, icon } from './dom.js';
import { MAX_SECONDS, record } from './voice.js';

const CANCEL_PX = 120;
const MIN_SECONDS = 0.4;

/** Starts the gesture from the pointerdown event e on button btn, for session s's pending request. */
export function talk(app, s, e, btn) {
  e.preventDefault();
  if (app.talking || !s.needs) return;
  const needs = { ...s.needs };
  const pid = e.pointerId;
  const x0 = e.clientX;
  const y0 = e.clientY;
  let rec = null;
  let released = false;
  let cancelled = false;
  let finished = false;
  let cap;

  const ring = h('div.ring');
  const said = h('p.said', { id: 'voice-transcript', 'aria-live': 'polite' });
  const state = h('p.state', 'Starting the microphone…');
  const overlay = h('div.voice', { id: 'voice', role: 'dialog', 'aria-label': 'Voice reply' },
    h('div.mic', ring, icon('mic')), state, said,
    h('p.hint', 'Release to send · slide away to cancel'));
  document.body.append(overlay);
  app.talking = true;
  btn.classList.add('held');
  try {
    btn.setPointerCapture(pid);
  } catch {
    /* a synthetic pointer */
  }

  const close = (delay = 0) => {
    setTimeout(() => {
      overlay.classList.add('closing');
      setTimeout(() => overlay.remove(), 150);
      app.talking = false;
      btn.classList.remove('held');
      app.render();
    }, delay);
  };
  const detach = () => {
    btn.removeEventListener('pointermove', onMove);
    btn.removeEventListener('pointerup', onUp);
    btn.removeEventListener('pointercancel', onCancel);
    clearTimeout(cap);
  };
  const onMove = (ev) => {
    if (ev.pointerId !== pid) return;
    cancelled = Math.hypot(ev.clientX - x0, ev.clientY - y0) > CANCEL_PX;
    overlay.classList.toggle('cancel', cancelled);
    state.textContent = cancelled ? 'Release to cancel' : rec ? 'Listening…' : state.textContent;
  };
  const onUp = (ev) => {
    if (ev.pointerId !== pid) return;
    detach();
    released = true;
    finish();
  };
  const onCancel = (ev) => {
    if (ev.pointerId !== pid) return;
    detach();
    released = true;
    cancelled = true;
    finish();
  };
  btn.addEventListener('pointermove', onMove);
  btn.addEventListener('pointerup', onUp);
  btn.addEventListener('pointercancel', onCancel);

  async function finish() {
    if (!rec || finished) return; // record() has not answered yet: it calls finish when it does
    finished = true;
    if (cancelled) {
      rec.cancel();
      state.textContent = 'Cancelled';
      close(400);
      return;
    }
    overlay.classList.add('done');
    state.textContent = 'Processing…';
    const r = await rec.stop();
    if (r.seconds < MIN_SECONDS) {
      state.textContent = 'Hold the button while you speak.';
      close(1200);
      return;
    }
    said.textContent = r.transcript ? `“${r.transcript}”` : '';
    state.textContent = r.transcript ? 'Sending what you said…' : 'No transcript on this phone: the host will listen to it.';
    await app.sendVoice(s, needs, r);
    close(r.transcript ? 1000 : 700);
  }

  record({
    onLevel: (l) => ring.style.setProperty('--level', l.toFixed(3)),
    onText: (t) => (said.textContent = t ? `“${t}”` : ''),
  }).then(
    (r) => {
      rec = r;
      if (!released) {
        state.textContent = cancelled ? 'Release to cancel' : 'Listening…';
        overlay.classList.add('live');
        cap = setTimeout(() => { detach(); released = true; finish(); }, MAX_SECONDS * 1000);
      }
      if (released) finish();
    },
    (err) => {
      detach();
      finished = true;
      state.textContent = err?.name === 'NotAllowedError' ? 'The microphone is blocked for this site.'
        : err?.name === 'NotFoundError' ? 'This device has no microphone.' : `The microphone does not work: ${err?.message ?? err}`;
      overlay.classList.add('error');
      close(2500);
    },
  );
}
