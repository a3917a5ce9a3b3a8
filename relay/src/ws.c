/* ws.c — the phones' WebSocket GET /v1/ws?after=ID (DESIGN.md §4): replay of the team's events from Redis, then
 * {k:"synced"}, then live frames; actions and pings as incoming frames; bounded queues per connection; closing on
 * token revocation (4401) and shutdown (1001). HTTP/1.1 Upgrade only (h2o 2.2's WebSocket support, on wslay). */
#include "actions.h"
#include "auth.h"
#include "corral/error.h"
#include "corral/json.h"
#include "corral/log.h"
#include "corral/mp.h"
#include "live.h"
#include "relay.h"
#include "streamid.h"
#include <h2o/websocket.h>
#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define WS_PAGE 200                  /* XRANGE COUNT of a replay page (fewer when events are big) */
#define WS_QUEUE_MAX (1u << 20)      /* more than this waiting for a phone that does not read: close 1008 */
#define WS_REPLAY_HIGH (256u << 10)  /* the replay waits while more than this is queued ... */
#define WS_REPLAY_LOW (64u << 10)    /* ... until the phone has taken all but this much */
#define WS_PAGE_BYTES WS_REPLAY_HIGH /* what later replay pages aim to stay under */
#define WS_QUEUE_MSGS_MAX 10000      /* ... or more than this many messages (answers to a phone's pings, say) */
#define WS_HELD_MAX (256u << 10)     /* live frames held back during a replay; past it they are re-read from Redis */
#define WS_OUT_CHUNK (64u << 10)     /* bytes gathered for one socket write */
#define WS_KEEP_BUF (8u << 10)       /* a write buffer up to this size is kept for the next write */
#define WS_ACTIONS_MAX 32            /* actions of one connection waiting for Redis */
#define WS_PING_MS 20000             /* {k:"ping"} after this long without a frame to the phone */
#define WS_LINGER_MS 3000            /* how long a close handshake may take before the socket is just closed */

/* ---- per connection -------------------------------------------------------------------------------------------- */

/* A live frame that arrived during the replay, held until the replay has caught up. */
typedef struct st_ws_held_t {
    struct st_ws_held_t *next;
    uint64_t ms, seq; /* its stream id */
    size_t len;
    char bytes[];
} ws_held_t;

/* The replay's state; freed once synced. */
typedef struct st_ws_replay_t {
    char start[STREAM_ID_MAX + 1]; /* XRANGE start of the next page: "-" or "(" + the last id sent */
    uint64_t last_ms, last_seq;    /* the last id replayed (or the after= id) */
    ws_held_t *held, **held_tail;
    size_t held_bytes;
    unsigned count;                /* XRANGE COUNT of the next page */
    uint8_t lost;                  /* held frames were dropped: read Redis once more before synced */
    uint8_t waiting;               /* paused until the phone has taken most of what is queued */
} ws_replay_t;

/* One phone's WebSocket. */
typedef struct st_ws_t {
    relay_listener_t l;         /* its team's live notices; its token's revocation */
    relay_req_t *rr;            /* the principal; held until the connection is freed (the relay's in-flight count) */
    h2o_websocket_conn_t *conn; /* NULL once the socket is closed */
    ws_replay_t *replay;        /* NULL once synced */
    uint64_t sent_ms, sent_seq; /* once synced: the id of the last event sent (live frames at or before it are not) */
    cr_buf_t out;               /* frames taken from wslay, not yet written */
    cr_buf_t wout;              /* the socket write in progress */
    h2o_timeout_entry_t timer;  /* ping while open, linger while closing */
    unsigned refs;              /* the socket, each Redis command and action in flight, each entry point running */
    uint16_t actions;           /* actions in flight */
    uint8_t closing;            /* a close frame is queued (or the socket is gone) */
    uint8_t in_msg;             /* inside h2o_websocket_proceed (an incoming message): do not call it again */
    uint8_t mid_frame;          /* wslay gave a frame header; its payload comes next */
} ws_t;

static h2o_timeout_t ping_timeout, linger_timeout;
static int timeouts_ready;

static void ws_flush(ws_t *w);
static void replay_next(ws_t *w);

static relay_t *relay_of(ws_t *w)
{
    return w->rr->relay;
}

static void held_free(ws_replay_t *rp)
{
    while (rp->held != NULL) {
        ws_held_t *h = rp->held;
        rp->held = h->next;
        free(h);
    }
    rp->held_tail = &rp->held;
    rp->held_bytes = 0;
}

static void replay_free(ws_t *w)
{
    if (w->replay != NULL) {
        held_free(w->replay);
        free(w->replay);
        w->replay = NULL;
    }
}

static void ws_hold(ws_t *w)
{
    ++w->refs;
}

/* Drops one reference; the last one frees w (the socket is already closed then). */
static void ws_drop(ws_t *w)
{
    if (--w->refs > 0)
        return;
    replay_free(w);
    cr_buf_free(&w->out);
    cr_buf_free(&w->wout);
    relay_req_release(w->rr);
    free(w);
}

/* The socket is gone (the peer left, a write failed, the close handshake ended, or the linger timed out). */
static void ws_closed(ws_t *w)
{
    h2o_websocket_conn_t *conn = w->conn;
    relay_t *relay = relay_of(w);
    if (conn == NULL)
        return;
    cr_log(CR_LOG_DEBUG, "ws: closed (team %s, %s %s, sent close %u, got close %u)", w->l.team,
           relay_principal_kind_name(w->rr->who.kind), w->rr->who.id, (unsigned)wslay_event_get_status_code_sent(conn->ws_ctx),
           (unsigned)wslay_event_get_status_code_received(conn->ws_ctx));
    w->conn = NULL;
    w->closing = 1;
    relay_live_remove(relay, &w->l);
    if (h2o_timeout_is_linked(&w->timer))
        h2o_timeout_unlink(&w->timer);
    h2o_websocket_close(conn); /* closes the socket; a write in flight is dropped (its callback never runs) */
    --relay->metrics.ws_open;
    ws_drop(w);
}

/* Bytes queued for the phone and not yet handed to the kernel. */
static size_t ws_queued(ws_t *w)
{
    return (w->conn != NULL ? wslay_event_get_queued_msg_length(w->conn->ws_ctx) : 0) + w->out.len + w->wout.len;
}

/* Queues one message (wslay copies it). Returns 0, or -1 when the connection is closing. */
static int ws_queue(ws_t *w, uint8_t opcode, const char *p, size_t len)
{
    struct wslay_event_msg m = {opcode, (const uint8_t *)p, len};
    if (w->closing || w->conn == NULL || wslay_event_queue_msg(w->conn->ws_ctx, &m) != 0)
        return -1;
    if (h2o_timeout_is_linked(&w->timer))
        h2o_timeout_unlink(&w->timer);
    h2o_timeout_link(relay_of(w)->loop, &ping_timeout, &w->timer);
    return 0;
}

/* Appends one binary message straight to the output as a single unmasked frame (a server's frames are the same bytes
 * for every phone), skipping wslay's per-message copy and queue: the fan-out's fast path. Falls back to ws_queue
 * while wslay holds messages, so that the order of messages is kept. Returns 0, or -1 (closing, or over the cap). */
static int ws_send_binary(ws_t *w, const char *p, size_t len)
{
    uint8_t hdr[10];
    size_t hl;
    if (w->closing || w->conn == NULL)
        return -1;
    if (w->mid_frame || wslay_event_get_queued_msg_count(w->conn->ws_ctx) > 0)
        return ws_queue(w, WSLAY_BINARY_FRAME, p, len);
    hdr[0] = 0x82; /* FIN, binary */
    if (len < 126) {
        hdr[1] = (uint8_t)len, hl = 2;
    } else if (len <= 0xffff) {
        hdr[1] = 126, hdr[2] = (uint8_t)(len >> 8), hdr[3] = (uint8_t)len, hl = 4;
    } else {
        hdr[1] = 127, hl = 10;
        for (int i = 0; i < 8; ++i)
            hdr[2 + i] = (uint8_t)((uint64_t)len >> (56 - 8 * i));
    }
    if (cr_buf_append(&w->out, hdr, hl) != 0)
        return -1;
    if (cr_buf_append(&w->out, p, len) != 0) {
        w->out.len -= hl;
        return -1;
    }
    return 0;
}

/* The close handshake has begun: nothing more is sent or listened to, and the socket is closed when it ends or
 * WS_LINGER_MS went by. */
static void ws_stop(ws_t *w)
{
    w->closing = 1;
    relay_live_remove(relay_of(w), &w->l);
    replay_free(w);
    if (h2o_timeout_is_linked(&w->timer))
        h2o_timeout_unlink(&w->timer);
    h2o_timeout_link(relay_of(w)->loop, &linger_timeout, &w->timer);
}

/* Starts the close handshake with code and reason (see ws_stop). */
static void ws_close(ws_t *w, uint16_t code, const char *reason)
{
    if (w->closing || w->conn == NULL)
        return;
    ws_stop(w);
    wslay_event_queue_close(w->conn->ws_ctx, code, (const uint8_t *)reason, strlen(reason));
    cr_log(CR_LOG_DEBUG, "ws: closing with %u %s (team %s, %s)", (unsigned)code, reason, w->l.team, w->rr->who.id);
    ws_flush(w);
}

/* ---- output: wslay's bytes gathered into one socket write at a time ------------------------------------------- */

static void on_written(h2o_socket_t *sock, const char *err);

static void ws_write(ws_t *w)
{
    h2o_iovec_t buf;
    if (w->conn == NULL || w->conn->sock == NULL || h2o_socket_is_writing(w->conn->sock) || w->out.len == 0 || w->mid_frame)
        return;
    /* swap: the written buffer's memory takes what comes next (kept only while small: see on_written) */
    cr_buf_t spare = w->wout;
    w->wout = w->out;
    w->out = spare;
    w->out.len = 0;
    buf = h2o_iovec_init(w->wout.base, w->wout.len);
    h2o_socket_write(w->conn->sock, &buf, 1, on_written);
}

/* wslay's send callback: takes frames into w->out (up to WS_OUT_CHUNK, always a whole frame) and writes at once
 * when the socket is idle; what comes while a write is in progress goes out in the next one. */
static ssize_t on_wslay_send(wslay_event_context_ptr ctx, const uint8_t *data, size_t len, int flags, void *user_data)
{
    h2o_websocket_conn_t *conn = user_data;
    ws_t *w = conn->data;
    if (!w->mid_frame && w->out.len >= WS_OUT_CHUNK) {
        wslay_event_set_error(ctx, WSLAY_ERR_WOULDBLOCK);
        return -1;
    }
    if (cr_buf_append(&w->out, data, len) != 0) {
        wslay_event_set_error(ctx, WSLAY_ERR_CALLBACK_FAILURE);
        return -1;
    }
    w->mid_frame = (flags & WSLAY_MSG_MORE) != 0;
    ws_write(w);
    return (ssize_t)len;
}

static void on_written(h2o_socket_t *sock, const char *err)
{
    h2o_websocket_conn_t *conn = sock->data;
    ws_t *w = conn->data;
    ws_hold(w);
    if (w->wout.cap > WS_KEEP_BUF)
        cr_buf_free(&w->wout); /* after a burst: an idle phone should not keep a big buffer */
    w->wout.len = 0;
    if (err != NULL) {
        ws_closed(w);
        ws_drop(w);
        return;
    }
    ws_write(w); /* what gathered meanwhile, before wslay may give more (and before proceed may close the socket) */
    h2o_websocket_proceed(conn);
    if (w->conn != NULL && w->replay != NULL && w->replay->waiting && ws_queued(w) <= WS_REPLAY_LOW) {
        w->replay->waiting = 0;
        replay_next(w);
    }
    ws_drop(w);
}

/* Sends what is queued, unless inside wslay already (then its loop sends it) or the upgrade is still being written
 * (then h2o sends it once done). The caller holds a reference: the socket may close here. */
static void ws_flush(ws_t *w)
{
    if (w->conn == NULL || w->conn->sock == NULL || w->in_msg)
        return;
    h2o_websocket_proceed(w->conn);
}

/* ---- msgpack writers: each returns 0, or non-zero when the buffer is full (chain them with ||) ------------------ */

static int mp_raw(cr_buf_t *b, const void *p, size_t n)
{
    return cr_buf_append(b, p, n);
}


/* Sends a small frame of ours: binary msgpack, or JSON text to a phone that wrote text. */
static void send_small(ws_t *w, int text, const cr_buf_t *mp)
{
    if (text) {
        cr_buf_t json;
        cr_buf_init(&json, 1 << 20);
        if (cr_json_from_msgpack(&json, mp->base, mp->len, &relay_of(w)->limits) == 0)
            ws_queue(w, WSLAY_TEXT_FRAME, json.base, json.len);
        cr_buf_free(&json);
        return;
    }
    ws_queue(w, WSLAY_BINARY_FRAME, mp->base, mp->len);
}

/* {k:"error", error:{code, message, field?}} */
static void send_error(ws_t *w, int text, const char *code, const char *field, const char *message)
{
    cr_buf_t b;
    cr_buf_init(&b, 8192);
    if (!(cr_mpw_map(&b, 2) || CR_MPW_LIT(&b, "k") || CR_MPW_LIT(&b, "error") || CR_MPW_LIT(&b, "error") ||
          cr_mpw_error(&b, code, field, message, 1024)))
        send_small(w, text, &b);
    cr_buf_free(&b);
    ++relay_of(w)->metrics.errors[relay_error_index(code)];
}

/* ---- stream ids ---------------------------------------------------------------------------------------------- */


static int id_after(uint64_t ms, uint64_t seq, uint64_t than_ms, uint64_t than_seq)
{
    return ms > than_ms || (ms == than_ms && seq > than_seq);
}

/* ---- replay -------------------------------------------------------------------------------------------------- */

/* Sends one replayed entry [id, [field, value, ...]] as {k:"ev", id, host, e}, the frame live.c makes of new
 * entries. Returns its size, or 0 when the entry is not one of ours (skipped). */
static size_t send_entry(ws_t *w, const redisReply *entry, cr_buf_t *b)
{
    const char *id = NULL;
    size_t idlen = 0;
    int rc;
    cr_buf_reset(b);
    rc = relay_live_frame(b, entry, &id, &idlen);
    if (id == NULL || idlen > STREAM_ID_MAX - 2 || relay_stream_id_parse(id, idlen, &w->replay->last_ms, &w->replay->last_seq) != 0)
        return 0;
    snprintf(w->replay->start, sizeof(w->replay->start), "(%.*s", (int)idlen, id);
    if (rc != 0) {
        cr_log(CR_LOG_WARN, "ws: entry %.*s of team %s is not an event or too large to replay; skipped", (int)idlen, id,
               w->l.team);
        return 0;
    }
    if (ws_queue(w, WSLAY_BINARY_FRAME, b->base, b->len) == 0)
        ++relay_of(w)->metrics.fanout_frames;
    return b->len;
}

/* The replay has caught up: {k:"synced"}, then the held live frames it did not already send. */
static void replay_done(ws_t *w)
{
    ws_replay_t *rp = w->replay;
    size_t n = 0;
    ws_queue(w, WSLAY_BINARY_FRAME, "\x81\xa1k\xa6synced", 10);
    w->sent_ms = rp->last_ms, w->sent_seq = rp->last_seq;
    for (ws_held_t *h = rp->held; h != NULL; h = h->next)
        if (id_after(h->ms, h->seq, w->sent_ms, w->sent_seq) && ws_queue(w, WSLAY_BINARY_FRAME, h->bytes, h->len) == 0) {
            w->sent_ms = h->ms, w->sent_seq = h->seq;
            ++n;
        }
    relay_of(w)->metrics.fanout_frames += n;
    cr_log(CR_LOG_DEBUG, "ws: synced (team %s, %s; %zu live frames held during the replay sent)", w->l.team, w->rr->who.id, n);
    replay_free(w);
}

static void on_page(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    ws_t *w = data; /* the command's reference */
    ws_replay_t *rp = w->replay;
    size_t bytes = 0, i;
    cr_buf_t b;
    if (w->conn == NULL || w->closing || rp == NULL)
        goto done;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY) {
        cr_log(CR_LOG_WARN, "ws: replay of team %s failed: %s", w->l.team,
               reply == NULL ? "redis went away" : reply->type == REDIS_REPLY_ERROR ? reply->str : "unexpected reply");
        ws_close(w, 1013, "storage unavailable; reconnect with after=");
        goto done;
    }
    /* queue entries while the phone keeps up; the rest of the page is read again later, from rp->start */
    cr_buf_init(&b, relay_of(w)->limits.max_envelope + 4096);
    for (i = 0; i < reply->elements && ws_queued(w) <= WS_REPLAY_HIGH; ++i)
        bytes += send_entry(w, reply->element[i], &b);
    cr_buf_free(&b);
    if (i < reply->elements || reply->elements >= rp->count) { /* there may be more */
        size_t avg = i > 0 ? bytes / i + 1 : 1;
        rp->count = avg * WS_PAGE > WS_PAGE_BYTES ? (unsigned)(WS_PAGE_BYTES / avg) + 1 : WS_PAGE;
        if (ws_queued(w) > WS_REPLAY_HIGH)
            rp->waiting = 1;
        else
            replay_next(w);
    } else if (rp->lost) { /* held frames were dropped: whatever they were is in Redis now */
        rp->lost = 0;
        held_free(rp);
        replay_next(w);
    } else {
        replay_done(w);
    }
    ws_flush(w);
done:
    ws_drop(w);
    (void)rdb;
}

/* Asks Redis for the next page of the team's events. */
static void replay_next(ws_t *w)
{
    char key[96], count[16];
    snprintf(key, sizeof(key), "cr:{%s}:ev", w->l.team);
    snprintf(count, sizeof(count), "%u", w->replay->count);
    if (relay_rdb_commandf(&relay_of(w)->rdb, on_page, w, "XRANGE %s %s + COUNT %s", key, w->replay->start, count) != 0) {
        ws_close(w, 1013, "storage unavailable; reconnect with after=");
        return;
    }
    ws_hold(w);
}

/* ---- live notices -------------------------------------------------------------------------------------------- */

/* Holds a live frame that came during the replay (a copy: the frame lives only during the call). When they would be
 * too many, they are all dropped and the replay reads them from Redis instead. */
static void hold_frame(ws_t *w, const relay_live_frame_t *f)
{
    ws_replay_t *rp = w->replay;
    ws_held_t *h;
    if (rp->lost)
        return;
    if (rp->held_bytes + f->len > WS_HELD_MAX || (h = malloc(sizeof(*h) + f->len)) == NULL) {
        cr_log(CR_LOG_DEBUG, "ws: live frames of team %s during a replay are over %u bytes; reading them from Redis "
                             "instead", w->l.team, WS_HELD_MAX);
        rp->lost = 1;
        held_free(rp);
        return;
    }
    h->next = NULL;
    h->ms = f->ms, h->seq = f->seq, h->len = f->len;
    memcpy(h->bytes, f->p, f->len);
    *rp->held_tail = h;
    rp->held_tail = &h->next;
    rp->held_bytes += f->len;
}

static void on_events(relay_listener_t *l, const relay_live_frame_t *frames, size_t n)
{
    ws_t *w = H2O_STRUCT_FROM_MEMBER(ws_t, l, l);
    int sent = 0;
    if (w->closing)
        return;
    ws_hold(w);
    for (size_t i = 0; i < n && !w->closing; ++i) {
        const relay_live_frame_t *f = &frames[i];
        if (w->replay != NULL) {
            hold_frame(w, f);
        } else if (!id_after(f->ms, f->seq, w->sent_ms, w->sent_seq)) {
            continue; /* the replay sent it already (its read and the live one crossed) */
        } else if (ws_queued(w) > WS_QUEUE_MAX) {
            cr_log(CR_LOG_INFO, "ws: %s of team %s reads too slowly (%zu bytes waiting); closing", w->rr->who.id, w->l.team,
                   ws_queued(w));
            ws_close(w, 1008, "too slow; reconnect with after=");
        } else if (ws_send_binary(w, f->p, f->len) == 0) {
            w->sent_ms = f->ms, w->sent_seq = f->seq;
            ++relay_of(w)->metrics.fanout_frames;
            sent = 1;
        } else { /* never skip a frame silently: the phone would not know to read it again */
            ws_close(w, 1008, "too slow; reconnect with after=");
        }
    }
    if (sent) {
        if (h2o_timeout_is_linked(&w->timer))
            h2o_timeout_unlink(&w->timer);
        h2o_timeout_link(relay_of(w)->loop, &ping_timeout, &w->timer);
        ws_write(w);
    }
    ws_flush(w);
    ws_drop(w);
}

static void on_notice(relay_listener_t *l, const char *msg, size_t len)
{
    (void)l, (void)msg, (void)len; /* a phone gets actions' results through its own requests, not 'a' notices */
}

static void on_listener_close(relay_listener_t *l, const char *why)
{
    ws_t *w = H2O_STRUCT_FROM_MEMBER(ws_t, l, l);
    ws_hold(w);
    relay_live_remove(relay_of(w), &w->l);
    if (strcmp(why, "revoked") == 0)
        ws_close(w, 4401, "token revoked");
    else if (strcmp(why, "shutdown") == 0)
        ws_close(w, 1001, "going away");
    else /* "unavailable": Redis went away, notices may have been missed */
        ws_close(w, 1013, "try again later; reconnect with after=");
    ws_drop(w);
}

/* Redis has confirmed the team's subscription: read what came before it (or, for after=$, begin live now). */
static void on_live_ready(relay_listener_t *l)
{
    ws_t *w = H2O_STRUCT_FROM_MEMBER(ws_t, l, l);
    ws_hold(w);
    if (!w->closing) {
        if (w->replay != NULL) {
            replay_next(w);
        } else {
            ws_queue(w, WSLAY_BINARY_FRAME, "\x81\xa1k\xa6synced", 10);
            ws_flush(w);
        }
    }
    ws_drop(w);
}

/* ---- timers ---------------------------------------------------------------------------------------------------- */

static void on_timer(h2o_timeout_entry_t *entry)
{
    ws_t *w = H2O_STRUCT_FROM_MEMBER(ws_t, timer, entry);
    ws_hold(w);
    if (w->closing) {
        ws_closed(w); /* the phone did not finish the close handshake in time */
    } else {
        ws_queue(w, WSLAY_BINARY_FRAME, "\x81\xa1k\xa4ping", 8);
        ws_flush(w);
    }
    ws_drop(w);
}

/* ---- incoming frames ------------------------------------------------------------------------------------------- */

typedef struct st_ws_action_t {
    ws_t *w;
    int text;
    char aid[65];
} ws_action_t;

/* {k:"ack", aid?, status, ...the answer's entries} */
static void on_action_done(void *data, int status, const char *mp, size_t len)
{
    ws_action_t *a = data;
    ws_t *w = a->w;
    cr_mp_item_t m;
    cr_span_t v;
    cr_buf_t b;
    size_t hn = cr_mp_read(mp, mp + len, &m);
    int add_aid;
    --w->actions;
    if (hn == 0 || m.type != MSGPACK_OBJECT_MAP)
        hn = len, m.count = 0; /* not a map: send the status alone */
    add_aid = a->aid[0] != '\0' && (m.count == 0 || cr_mp_map_get(mp, len, "aid", &v) != 0);
    cr_buf_init(&b, len + 256);
    if (!(cr_mpw_map(&b, 2 + (uint32_t)add_aid + m.count) || CR_MPW_LIT(&b, "k") || CR_MPW_LIT(&b, "ack") ||
          (add_aid && (CR_MPW_LIT(&b, "aid") || cr_mpw_str(&b, a->aid, strlen(a->aid)))) || CR_MPW_LIT(&b, "status") ||
          cr_mpw_uint(&b, (uint64_t)status) || mp_raw(&b, mp + hn, len - hn)))
        send_small(w, a->text, &b);
    cr_buf_free(&b);
    free(a);
    ws_flush(w);
    ws_drop(w); /* the action's reference */
}

/* Copies the str value of key in the (checked) map mp into out, cut to outlen; "" when absent or not a str. */
static void map_str(const char *mp, size_t len, const char *key, char *out, size_t outlen)
{
    cr_span_t v;
    cr_mp_item_t it;
    out[0] = '\0';
    if (cr_mp_map_get(mp, len, key, &v) == 0 && cr_mp_read(v.base, v.base + v.len, &it) != 0 && it.type == MSGPACK_OBJECT_STR &&
        it.bytes.len < outlen) {
        memcpy(out, it.bytes.base, it.bytes.len);
        out[it.bytes.len] = '\0';
    }
}

static void on_frame(ws_t *w, int text, const char *msg, size_t len)
{
    relay_t *relay = relay_of(w);
    size_t max = cr_limits_max_action(&relay->limits), used;
    const cr_error_t *e;
    cr_mp_item_t m;
    cr_buf_t conv;
    char k[16];
    ws_action_t *a;

    cr_buf_init(&conv, max + 4096);
    if (text) {
        if (cr_json_to_msgpack(&conv, msg, len, &relay->limits) != 0)
            goto bad;
        msg = conv.base, len = conv.len;
    }
    if (len > max) {
        ws_close(w, 1009, "message too big");
        goto done;
    }
    if (cr_mp_check(msg, len, &relay->limits, max, NULL, &used) != 0)
        goto bad;
    if (used != len) {
        send_error(w, text, "trailing_bytes", NULL, "one msgpack map per message");
        goto done;
    }
    if (cr_mp_read(msg, msg + len, &m) == 0 || m.type != MSGPACK_OBJECT_MAP) {
        send_error(w, text, "bad_request", NULL, "a message must be a map with a k key");
        goto done;
    }
    map_str(msg, len, "k", k, sizeof(k));
    if (strcmp(k, "ping") == 0) {
        send_small(w, text, &(cr_buf_t){(char *)"\x81\xa1k\xa4pong", 8, 8, 8});
        goto done;
    }
    if (strcmp(k, "pong") == 0)
        goto done;
    if (cr_mp_map_get(msg, len, "aid", &(cr_span_t){0}) != 0) {
        send_error(w, text, "bad_request", "k", "expected {k:\"ping\"} or an action envelope (with its aid)");
        goto done;
    }
    /* an action envelope: relay_action_submit checks the rest */
    if (w->actions >= WS_ACTIONS_MAX) {
        send_error(w, text, "rate_limited", NULL, "too many actions waiting for an answer on this connection");
        goto done;
    }
    if ((a = calloc(1, sizeof(*a))) == NULL) {
        send_error(w, text, "internal", NULL, "out of memory");
        goto done;
    }
    a->w = w;
    a->text = text;
    map_str(msg, len, "aid", a->aid, sizeof(a->aid));
    ++w->actions;
    ws_hold(w);
    relay_action_submit(relay, &w->rr->who, msg, len, on_action_done, a);
    goto done;
bad:
    e = cr_error_last();
    send_error(w, text, cr_err_code(e->code), e->field, e->message);
done:
    cr_buf_free(&conv);
}

static void on_ws_message(h2o_websocket_conn_t *conn, const struct wslay_event_on_msg_recv_arg *arg)
{
    ws_t *w = conn->data;
    if (arg == NULL) {
        ws_hold(w);
        if (w->conn == NULL) /* closed during the upgrade: h2o_upgrade_to_websocket has not returned yet */
            w->conn = conn;
        ws_closed(w);
        ws_drop(w);
        return;
    }
    ws_hold(w);
    w->in_msg = 1;
    if (w->closing) {
        /* nothing more: the close handshake is under way */
    } else if (ws_queued(w) > WS_QUEUE_MAX || wslay_event_get_queued_msg_count(conn->ws_ctx) > WS_QUEUE_MSGS_MAX) {
        ws_close(w, 1008, "too slow; reconnect with after="); /* it writes without reading our answers */
    } else if (arg->opcode == WSLAY_CONNECTION_CLOSE) {
        ws_stop(w); /* wslay answers the phone's close */
    } else if (!wslay_is_ctrl_frame(arg->opcode)) { /* wslay answers pings */
        on_frame(w, arg->opcode == WSLAY_TEXT_FRAME, (const char *)arg->msg, arg->msg_length);
    }
    w->in_msg = 0;
    ws_drop(w);
}

/* ---- the handshake --------------------------------------------------------------------------------------------- */

/* Looks through the offered subprotocols: *offered = 1 when there were any, *ours = 1 when corral.v1 was one. */
static void offered_protocols(h2o_req_t *req, int *offered, int *ours)
{
    *offered = *ours = 0;
    for (ssize_t i = -1; (i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("sec-websocket-protocol"), i)) != -1;) {
        h2o_iovec_t v = req->headers.entries[i].value;
        const char *p = v.base, *end = v.base + v.len;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p)), *stop = comma != NULL ? comma : end, *q = stop;
            while (p < stop && (*p == ' ' || *p == '\t'))
                ++p;
            while (q > p && (q[-1] == ' ' || q[-1] == '\t'))
                --q;
            if (q > p)
                *offered = 1;
            if (q - p == 9 && memcmp(p, "corral.v1", 9) == 0)
                *ours = 1;
            p = stop + 1;
        }
    }
}

static void on_ws(relay_req_t *rr)
{
    relay_t *relay = rr->relay;
    h2o_req_t *req = rr->req;
    const char *key = NULL, *after = relay_query(rr, "after");
    int offered, ours, now = 0;
    uint64_t ms = 0, seq = 0;
    ws_t *w;

    if (req->version >= 0x200 || h2o_is_websocket_handshake(req, &key) != 0 || key == NULL) {
        relay_respond_error(rr, 400, "bad_request", NULL, "GET /v1/ws is a WebSocket: send an HTTP/1.1 Upgrade request");
        return;
    }
    offered_protocols(req, &offered, &ours);
    if (offered && !ours) {
        relay_respond_error(rr, 400, "bad_request", "Sec-WebSocket-Protocol", "offer the corral.v1 subprotocol");
        return;
    }
    if (after != NULL && (strcmp(after, "$") == 0 || strcmp(after, "%24") == 0 || strcmp(after, "now") == 0))
        now = 1;
    else if (after != NULL && after[0] != '\0' && relay_stream_id_parse(after, strlen(after), &ms, &seq) != 0) {
        relay_respond_error(rr, 400, "bad_request", "after", "after must be an event id (ms-seq), \"$\" or \"now\"");
        return;
    }
    if (relay->shutting_down) {
        relay_respond_error(rr, 503, "unavailable", NULL, "the relay is shutting down");
        return;
    }
    if ((w = calloc(1, sizeof(*w))) == NULL || (!now && (w->replay = calloc(1, sizeof(*w->replay))) == NULL)) {
        free(w);
        relay_respond_error(rr, 500, "internal", NULL, "out of memory");
        return;
    }
    w->rr = rr; /* now owned by w */
    w->refs = 1; /* the socket's */
    memcpy(w->l.team, rr->who.team, sizeof(w->l.team));
    memcpy(w->l.token_hash, rr->who.token_hash, sizeof(w->l.token_hash));
    w->l.on_notice = on_notice;
    w->l.on_events = on_events;
    w->l.events = 1;
    w->l.on_close = on_listener_close;
    w->l.on_ready = on_live_ready;
    w->timer.cb = on_timer;
    /* room for everything ws_queued() allows, plus one more message of either kind */
    cr_buf_init(&w->out, WS_QUEUE_MAX + WS_OUT_CHUNK + relay->limits.max_envelope + cr_limits_max_action(&relay->limits) + 4096);
    cr_buf_init(&w->wout, w->out.limit);
    if (w->replay != NULL) {
        ws_replay_t *rp = w->replay;
        rp->held_tail = &rp->held;
        rp->count = WS_PAGE;
        rp->last_ms = ms, rp->last_seq = seq;
        if (after == NULL || after[0] == '\0')
            snprintf(rp->start, sizeof(rp->start), "-");
        else
            snprintf(rp->start, sizeof(rp->start), "(%" PRIu64 "-%" PRIu64, ms, seq);
    }
    if (ours)
        h2o_add_header_by_str(&req->pool, &req->res.headers, H2O_STRLIT("sec-websocket-protocol"), 0, NULL,
                              H2O_STRLIT("corral.v1"));
    ++relay->metrics.ws_open;
    ++relay->metrics.ws_total;
    cr_log(CR_LOG_DEBUG, "ws: open (team %s, %s %s, after %s)", w->l.team, relay_principal_kind_name(rr->who.kind), rr->who.id,
           after != NULL && after[0] != '\0' ? after : "start");

    ws_hold(w);
    h2o_websocket_conn_t *conn = h2o_upgrade_to_websocket(req, key, w, on_ws_message);
    if (w->conn == NULL && !w->closing) {
        struct wslay_event_callbacks cbs = conn->ws_callbacks;
        w->conn = conn;
        cbs.send_callback = on_wslay_send; /* gathers frames into fewer socket writes, see on_wslay_send */
        wslay_event_config_set_callbacks(conn->ws_ctx, &cbs);
        /* JSON text may carry an action's bin as base64: a third larger */
        wslay_event_config_set_max_recv_msg_length(conn->ws_ctx, cr_limits_max_action(&relay->limits) / 3 * 4 + 65536);
        h2o_timeout_link(relay->loop, &ping_timeout, &w->timer);
        /* listen first; the replay starts once Redis has confirmed the subscription (on_live_ready), so that nothing
         * published meanwhile is missed (live frames are held until synced) */
        relay_live_add(relay, &w->l);
    }
    ws_drop(w);
}

/* Registers GET /v1/ws for device and admin tokens (the relay authenticates before on_ws runs). */
void relay_ws_register(relay_t *relay)
{
    if (!timeouts_ready) {
        h2o_timeout_init(relay->loop, &ping_timeout, WS_PING_MS);
        h2o_timeout_init(relay->loop, &linger_timeout, WS_LINGER_MS);
        timeouts_ready = 1;
    }
    relay_route(relay, "GET", "/v1/ws", RELAY_P_DEVICE | RELAY_P_ADMIN, on_ws, "ws");
}
