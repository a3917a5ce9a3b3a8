// link.js — the live feed: the relay's WebSocket GET /v1/ws?after=ID (DESIGN.md §4). The browser cannot set headers on
// a WebSocket, so the device token goes in the subprotocol list ['corral.v1', 'bearer.<token>'] (never in the URL).
// Frames are binary msgpack: a replay of the events after ID, {k:"synced"}, then live {k:"ev", id, host, e}. On a
// drop it reconnects with full-jitter backoff (0.5 s doubling to 30 s) after the last id it applied, so nothing is
// missed or applied twice.
import { unpack } from './codec.js';

const BACKOFF_MIN_MS = 500;
const BACKOFF_MAX_MS = 30000;
const STALE_MS = 50000; // the relay pings every 20 s: this long without a frame means the socket is dead

export const REVOKED = 4401; // the relay's close code for a revoked token

export class Link {
  /**
   * token: the device token. after(): the id to replay after. onEvent(frame): each {id, host, e}. onStatus(s): one of
   * 'connecting', 'syncing', 'live', 'offline' (with {retryMs}), 'revoked'.
   */
  constructor({ token, after, onEvent, onStatus }) {
    Object.assign(this, { token, after, onEvent, onStatus });
    this.ws = null;
    this.attempt = 0;
    this.timer = 0;
    this.stopped = true;
    this.lastFrame = 0;
    this.onOnline = () => this.kick();
  }

  start() {
    if (!this.stopped) return;
    this.stopped = false;
    addEventListener('online', this.onOnline);
    this.connect();
  }

  stop() {
    this.stopped = true;
    removeEventListener('online', this.onOnline);
    clearTimeout(this.timer);
    clearInterval(this.watch);
    if (this.ws) this.ws.close(1000);
    this.ws = null;
  }

  /** Reconnects now (the network came back, the app became visible) unless a socket is open. */
  kick() {
    if (this.stopped) return;
    if (this.ws && this.ws.readyState <= WebSocket.OPEN && Date.now() - this.lastFrame < STALE_MS) return;
    clearTimeout(this.timer);
    this.attempt = 0;
    this.connect();
  }

  connect() {
    if (this.ws) {
      this.ws.onclose = this.ws.onmessage = this.ws.onerror = null;
      this.ws.close();
    }
    const proto = location.protocol === 'https:' ? 'wss:' : 'ws:';
    const url = `${proto}//${location.host}/v1/ws?after=${encodeURIComponent(this.after() || '0')}`;
    this.onStatus('connecting');
    let ws;
    try {
      ws = new WebSocket(url, ['corral.v1', `bearer.${this.token}`]);
    } catch {
      this.retry();
      return;
    }
    ws.binaryType = 'arraybuffer';
    this.ws = ws;
    this.lastFrame = Date.now();
    ws.onopen = () => {
      this.lastFrame = Date.now();
      this.onStatus('syncing');
    };
    ws.onmessage = (m) => {
      this.lastFrame = Date.now();
      let f;
      try {
        f = unpack(new Uint8Array(typeof m.data === 'string' ? new TextEncoder().encode(m.data) : m.data));
      } catch {
        return; // not msgpack: nothing a phone can use
      }
      if (f.k === 'ev' && f.e && typeof f.e === 'object') this.onEvent(f);
      else if (f.k === 'synced') {
        this.attempt = 0;
        this.onStatus('live');
      } else if (f.k === 'error') console.warn('relay:', f.error?.code, f.error?.message);
    };
    ws.onclose = (c) => {
      if (this.ws !== ws) return;
      this.ws = null;
      if (c.code === REVOKED) {
        this.stopped = true;
        this.onStatus('revoked');
        return;
      }
      this.retry();
    };
    ws.onerror = () => {}; // onclose follows
    clearInterval(this.watch);
    this.watch = setInterval(() => {
      if (this.ws === ws && Date.now() - this.lastFrame > STALE_MS) ws.close(4000, 'stale');
    }, 10000);
  }

  retry() {
    if (this.stopped) return;
    const cap = Math.min(BACKOFF_MAX_MS, BACKOFF_MIN_MS * 2 ** this.attempt++);
    const wait = Math.max(250, Math.floor(Math.random() * cap));
    this.onStatus('offline', { retryMs: wait });
    clearTimeout(this.timer);
    this.timer = setTimeout(() => this.connect(), wait);
  }
}
