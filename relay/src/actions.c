/* actions.c — actions from phones to hosts: POST /v1/actions (accepted once by aid, queued on the session's host's
 * stream), the host's never-ending downlink GET /v1/host/actions, and POST /v1/host/actions/ack. */
#include "actions.h"
#include "streamid.h"
#include "corral/envelope.h"
#include "corral/error.h"
#include "corral/log.h"
#include "corral/ulid.h"
#include "live.h"
#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char relay_lua_action[];
extern const size_t relay_lua_action_len;
static relay_script_t action_script = {.name = "action"};

#define AID_TTL_S 604800             /* cr:{T}:aid:<aid> lives 7 days (DESIGN.md §5) */
#define MAX_QUEUED 10000             /* actions waiting for one host; more is refused (bounded per peer) */
#define DOWNLINK_BATCH_N 100         /* XRANGE COUNT per read, at most (fewer when the actions are large) */
#define DOWNLINK_PENDING_MAX (1u << 20) /* stop reading Redis while more than this waits for the client */
#define PING_FRAME "\x81\xa1k\xa4" "ping" /* {k:"ping"} */

static uint64_t ping_ms = 20000;

/* ---- small msgpack writers ------------------------------------------------------------------------------------ */


/* Copies the str value of `key` in the msgpack map mp into out (NUL-terminated, cut to outlen). Returns 0 or -1. */
static int mp_get_str(const char *mp, size_t len, const char *key, char *out, size_t outlen)
{
    cr_span_t v;
    cr_mp_item_t it;
    if (cr_mp_map_get(mp, len, key, &v) != 0 || cr_mp_read(v.base, v.base + v.len, &it) == 0 || it.type != MSGPACK_OBJECT_STR)
        return -1;
    snprintf(out, outlen, "%.*s", (int)it.bytes.len, it.bytes.base);
    return 0;
}

/* ---- submitting an action ------------------------------------------------------------------------------------- */

typedef struct st_submit_t {
    relay_t *relay;
    relay_action_done_cb done;
    void *data;
    char aid[65], sid[65], by[65];
    char k_aid[192], k_sess[192], prefix[96], channel[96], max_queued[16], ttl[16];
    cr_buf_t env; /* the envelope as queued: canonical, `by` stamped */
    /* the script's arguments: they must live until the reply (a NOSCRIPT retry sends them again) */
    const char *argv[10];
    size_t lens[10];
} submit_t;

/* Answers done with the error document {"error": {"code", "message", "field"?}}. */
static void submit_fail(relay_action_done_cb done, void *data, int status, const char *code, const char *field,
                        const char *message)
{
    cr_buf_t b;
    cr_buf_init(&b, 4096);
    cr_mpw_error_doc(&b, code, field, message, 1024);
    done(data, status, b.base, b.len);
    cr_buf_free(&b);
}

/* Answers done with cr_error_last() as 400 (413 for too_large, 500 for the relay's own trouble). */
static void submit_fail_cr(relay_action_done_cb done, void *data)
{
    const cr_error_t *e = cr_error_last();
    int status = e->code == CR_ETOOLARGE ? 413 : e->code == CR_ENOMEM || e->code == CR_ERR ? 500 : 400;
    char message[sizeof(e->message)], field[sizeof(e->field)];
    memcpy(message, e->message, sizeof(message));
    memcpy(field, e->field, sizeof(field));
    submit_fail(done, data, status, cr_err_code(e->code), field, message);
}

static void submit_answer(submit_t *s, int status, const char *flag)
{
    cr_buf_t b;
    cr_buf_init(&b, 256);
    cr_buf_append(&b, "\x82", 1);
    CR_MPW_LIT(&b, "aid");
    cr_mpw_str(&b, s->aid, strlen(s->aid));
    cr_mpw_str(&b, flag, strlen(flag));
    cr_buf_append(&b, "\xc3", 1); /* true */
    s->done(s->data, status, b.base, b.len);
    cr_buf_free(&b);
}

static void submit_free(submit_t *s)
{
    cr_buf_free(&s->env);
    free(s);
}

static void on_submit_reply(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    submit_t *s = data;
    relay_t *relay = s->relay;
    const char *what = NULL;
    if (reply == NULL) {
        submit_fail(s->done, s->data, 503, "unavailable", NULL,
                    "the relay lost its storage while queueing the action; send it again (the same aid is safe)");
        goto done;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 || reply->element[0]->type != REDIS_REPLY_STRING) {
        cr_log_sid(CR_LOG_ERROR, s->sid, "action.lua submit: unexpected reply (type %d)", reply->type);
        submit_fail(s->done, s->data, 500, "internal", NULL, "the relay could not queue the action");
        goto done;
    }
    what = reply->element[0]->str;
    if (strcmp(what, "dup") == 0) {
        ++relay->metrics.actions_dup;
        cr_log_sid(CR_LOG_DEBUG, s->sid, "action %s: duplicate", s->aid);
        submit_answer(s, 200, "duplicate");
    } else if (strcmp(what, "queued") == 0 && reply->elements >= 3) {
        ++relay->metrics.actions_in;
        cr_log_sid(CR_LOG_INFO, s->sid, "action %s by %s queued for host %s as %s", s->aid, s->by, reply->element[2]->str,
                   reply->element[1]->str);
        submit_answer(s, 202, "queued");
    } else if (strcmp(what, "nosession") == 0) {
        submit_fail(s->done, s->data, 404, "not_found", "sid", "no such session");
    } else if (strcmp(what, "full") == 0) {
        cr_log_sid(CR_LOG_WARN, s->sid, "action %s refused: host %s has %d actions waiting", s->aid,
                   reply->elements >= 2 ? reply->element[1]->str : "?", MAX_QUEUED);
        submit_fail(s->done, s->data, 429, "rate_limited", NULL,
                    "the session's host has too many actions waiting; try again once it has taken some");
    } else {
        cr_log_sid(CR_LOG_ERROR, s->sid, "action.lua submit: unexpected answer %.40s", what);
        submit_fail(s->done, s->data, 500, "internal", NULL, "the relay could not queue the action");
    }
done:
    submit_free(s);
    (void)rdb;
}

/* Phones may leave out v and ts: when mp is a well-formed map without them, out receives a copy with v = 1 and/or
 * ts = the relay's clock added (the relay stamps the action anyway, and one clock for all phones is as good as
 * theirs), and *res points to it; otherwise *res is mp unchanged, and the decoder reports what is wrong. The
 * envelope is re-encoded canonically afterwards (cr_action_encode), so hosts always receive complete envelopes. */
static int complete_envelope(cr_buf_t *out, const char *mp, size_t len, const cr_limits_t *lim, const char **res,
                             size_t *reslen)
{
    cr_mp_item_t m;
    cr_span_t v;
    size_t used, hn;
    int need_v, need_ts, rc;
    unsigned char h[5];
    *res = mp, *reslen = len;
    if (cr_mp_check(mp, len, lim, cr_limits_max_action(lim), NULL, &used) != 0 || used != len)
        return 0;
    if ((hn = cr_mp_read(mp, mp + len, &m)) == 0 || m.type != MSGPACK_OBJECT_MAP || m.count > UINT32_MAX - 2)
        return 0;
    need_v = cr_mp_map_get(mp, len, "v", &v) != 0;
    need_ts = cr_mp_map_get(mp, len, "ts", &v) != 0;
    if (!need_v && !need_ts)
        return 0;
    uint32_t count = m.count + (uint32_t)need_v + (uint32_t)need_ts;
    h[0] = 0xdf, h[1] = (unsigned char)(count >> 24), h[2] = (unsigned char)(count >> 16), h[3] = (unsigned char)(count >> 8),
    h[4] = (unsigned char)count;
    if ((rc = cr_buf_append(out, h, 5)) != 0 || (rc = cr_buf_append(out, mp + hn, len - hn)) != 0)
        return rc;
    if (need_v && (rc = cr_buf_append(out, "\xa1v\x01", 3)) != 0)
        return rc;
    if (need_ts) {
        uint64_t now = cr_now_ms();
        unsigned char ts[12] = {0xa2, 't', 's', 0xcf};
        for (int i = 0; i < 8; ++i)
            ts[4 + i] = (unsigned char)(now >> (56 - 8 * i));
        if ((rc = cr_buf_append(out, ts, sizeof(ts))) != 0)
            return rc;
    }
    *res = out->base, *reslen = out->len;
    return 0;
}

void relay_action_submit(relay_t *relay, const relay_principal_t *who, const char *mp, size_t len, relay_action_done_cb done,
                         void *data)
{
    cr_buf_t full;
    cr_action_t act;
    const char *env;
    size_t envlen;
    submit_t *s = NULL;

    cr_buf_init(&full, cr_limits_max_action(&relay->limits) + 64);
    if (complete_envelope(&full, mp, len, &relay->limits, &env, &envlen) != 0 ||
        cr_action_decode(&act, env, envlen, &relay->limits) != 0) {
        submit_fail_cr(done, data);
        goto done;
    }
    if ((s = calloc(1, sizeof(*s))) == NULL) {
        submit_fail(done, data, 500, "internal", NULL, "out of memory");
        goto done;
    }
    s->relay = relay;
    s->done = done;
    s->data = data;
    snprintf(s->aid, sizeof(s->aid), "%.*s", (int)act.aid.len, act.aid.base);
    snprintf(s->sid, sizeof(s->sid), "%.*s", (int)act.sid.len, act.sid.base);
    snprintf(s->by, sizeof(s->by), "%s", who->id);
    act.by = (cr_span_t){s->by, strlen(s->by)}; /* the relay's word, whatever the client said */
    cr_buf_init(&s->env, cr_limits_max_action(&relay->limits) + 256);
    if (cr_action_encode(&s->env, &act) != 0) {
        submit_fail_cr(done, data);
        submit_free(s);
        goto done;
    }
    snprintf(s->k_aid, sizeof(s->k_aid), "cr:{%s}:aid:%s", who->team, s->aid);
    snprintf(s->k_sess, sizeof(s->k_sess), "cr:{%s}:s:%s", who->team, s->sid);
    snprintf(s->prefix, sizeof(s->prefix), "cr:{%s}:", who->team);
    snprintf(s->channel, sizeof(s->channel), "cr:live:{%s}", who->team);
    snprintf(s->max_queued, sizeof(s->max_queued), "%d", MAX_QUEUED);
    snprintf(s->ttl, sizeof(s->ttl), "%d", AID_TTL_S);
    const char *argv[] = {s->k_aid, s->k_sess, "submit", s->prefix, s->aid, s->sid, s->env.base, s->channel, s->max_queued, s->ttl};
    memcpy(s->argv, argv, sizeof(argv));
    for (size_t i = 0; i < 10; ++i)
        s->lens[i] = i == 6 ? s->env.len : strlen(argv[i]);
    if (relay_rdb_script(&relay->rdb, &action_script, on_submit_reply, s, 2, 10, s->argv, s->lens) != 0) {
        submit_free(s);
        submit_fail(done, data, 503, "unavailable", NULL, "the relay's storage is unavailable; nothing was stored, try again");
    }
done:
    cr_buf_free(&full);
}

/* ---- POST /v1/actions ----------------------------------------------------------------------------------------- */

static void on_rest_submitted(void *data, int status, const char *mp, size_t len)
{
    relay_req_t *rr = data;
    char code[48], field[96], message[512];
    cr_span_t err;
    if (status < 400) {
        relay_respond(rr, status, mp, len);
        return;
    }
    if (status == 503) {
        relay_respond_unavailable(rr);
        return;
    }
    /* go through relay_respond_error so that error responses are counted and logged in one place */
    if (cr_mp_map_get(mp, len, "error", &err) != 0 || mp_get_str(err.base, err.len, "code", code, sizeof(code)) != 0) {
        relay_respond(rr, status, mp, len);
        return;
    }
    if (mp_get_str(err.base, err.len, "field", field, sizeof(field)) != 0)
        field[0] = '\0';
    if (mp_get_str(err.base, err.len, "message", message, sizeof(message)) != 0)
        message[0] = '\0';
    relay_respond_error(rr, status, code, field[0] != '\0' ? field : NULL, "%s", message);
}

static void on_post_action(relay_req_t *rr)
{
    relay_action_submit(rr->relay, &rr->who, rr->body.base, rr->body.len, on_rest_submitted, rr);
}

/* ---- GET /v1/host/actions: the downlink ----------------------------------------------------------------------- */

/* One host's downlink. It lives from the request until the response has ended (or the client left) and no Redis
 * call or timer refers to it any more. Frames are appended to `pending`; `sending` holds the bytes handed to h2o,
 * which stay untouched until its proceed callback (h2o's and HTTP/2's flow control). */
typedef struct st_downlink_t {
    relay_listener_t listener;
    h2o_generator_t gen;
    relay_t *relay;
    relay_req_t *rr;              /* NULL once the response has ended or the client left */
    char host[65];
    char key[192];                /* cr:{T}:act:<host> */
    char last[STREAM_ID_MAX];     /* the last stream id read; the next read starts after it */
    char from[STREAM_ID_MAX + 1]; /* "(" + last: the exclusive start sent to XRANGE */
    char count[8];                /* the COUNT of the next XRANGE */
    unsigned batch;               /* the next COUNT: about DOWNLINK_PENDING_MAX bytes of actions as large as the last */
    unsigned asked;               /* the COUNT of the read out */
    cr_buf_t pending, sending;
    uv_timer_t ping;
    unsigned started : 1;         /* h2o_start_response was called */
    unsigned headers_out : 1;     /* the first h2o_send was made (it sends the headers) */
    unsigned in_h2o : 1;          /* h2o holds `sending`; wait for proceed */
    unsigned reading : 1;         /* a Redis call is out with this downlink as its data */
    unsigned want_read : 1;       /* there may be more to read */
    unsigned closing : 1;         /* end the response once nothing is in flight */
    unsigned ended : 1;           /* the response is over (or the client left) */
    unsigned timer_open : 1;
    unsigned active : 1;          /* an action went out since the last ping tick (no ping needed) */
} downlink_t;

static void on_read(relay_rdb_t *rdb, redisReply *reply, void *data);

static void downlink_maybe_free(downlink_t *d)
{
    if (!d->ended || d->reading || d->timer_open)
        return;
    cr_buf_free(&d->pending);
    cr_buf_free(&d->sending);
    free(d);
}

static void on_ping_closed(uv_handle_t *h)
{
    downlink_t *d = h->data;
    d->timer_open = 0;
    downlink_maybe_free(d);
}

/* Marks the downlink ended and lets go of everything that could call it back, including rr (if still held). The
 * caller frees it with downlink_maybe_free once it no longer uses it. */
static void downlink_detach(downlink_t *d)
{
    if (d->ended)
        return;
    d->ended = 1;
    relay_live_remove(d->relay, &d->listener);
    if (d->timer_open) {
        uv_timer_stop(&d->ping);
        uv_close((uv_handle_t *)&d->ping, on_ping_closed);
    }
    if (d->started)
        --d->relay->metrics.streams_open;
    if (d->rr != NULL) {
        relay_req_release(d->rr);
        d->rr = NULL;
    }
}

/* Ends a started response with what is pending and the end of the stream (HTTP/2 END_STREAM, HTTP/1.1's last
 * chunk). Only when h2o does not hold `sending`. d may be freed on return. */
static void downlink_end(downlink_t *d)
{
    h2o_req_t *req = d->rr != NULL ? d->rr->req : NULL;
    h2o_iovec_t buf = {NULL, 0};
    if (d->ended)
        return;
    if (req != NULL && d->pending.len != 0) {
        /* the request's pool keeps the last bytes alive until h2o has written them (no proceed follows FINAL) */
        buf.base = h2o_mem_alloc_pool(&req->pool, d->pending.len);
        memcpy(buf.base, d->pending.base, d->pending.len);
        buf.len = d->pending.len;
    }
    cr_log(CR_LOG_DEBUG, "downlink of host %s: ended after %s", d->host, d->last);
    downlink_detach(d); /* releases rr first: the send below may end the request */
    if (req != NULL)
        h2o_send(req, &buf, buf.len != 0 ? 1 : 0, H2O_SEND_STATE_FINAL);
    downlink_maybe_free(d);
}

/* Hands what is pending to h2o unless h2o still holds the previous bytes; the first call sends even nothing, which
 * lets the headers go out. */
static void downlink_flush(downlink_t *d)
{
    cr_buf_t t;
    h2o_iovec_t buf;
    if (d->ended || d->in_h2o || d->rr == NULL || d->rr->req == NULL || (d->pending.len == 0 && d->headers_out))
        return;
    t = d->sending, d->sending = d->pending, d->pending = t; /* `sending` was emptied at proceed */
    buf = h2o_iovec_init(d->sending.base, d->sending.len);
    d->in_h2o = 1;
    d->headers_out = 1;
    h2o_send(d->rr->req, &buf, buf.len != 0 ? 1 : 0, H2O_SEND_STATE_IN_PROGRESS);
}

/* Sends XRANGE for the entries after `last`. Returns 0 (reading), or -1 when Redis is unavailable. */
static int downlink_xrange(downlink_t *d)
{
    const char *argv[6] = {"XRANGE", d->key, d->from, "+", "COUNT", d->count};
    size_t lens[6];
    snprintf(d->from, sizeof(d->from), "(%s", d->last);
    snprintf(d->count, sizeof(d->count), "%u", d->batch);
    d->asked = d->batch;
    for (int i = 0; i < 6; ++i)
        lens[i] = strlen(argv[i]);
    if (relay_rdb_command(&d->relay->rdb, on_read, d, 6, argv, lens) != 0)
        return -1;
    d->want_read = 0;
    d->reading = 1;
    return 0;
}

/* What a started downlink does whenever something changed: end when closing and nothing is in flight; otherwise
 * send what is pending and read more if there may be more and not too much waits for the client. d may be freed
 * on return. */
static void downlink_step(downlink_t *d)
{
    if (d->ended)
        return;
    if (!d->closing) {
        downlink_flush(d);
        if (d->want_read && !d->reading && d->pending.len <= DOWNLINK_PENDING_MAX && downlink_xrange(d) != 0) {
            cr_log(CR_LOG_WARN, "downlink of host %s: redis unavailable; ending the stream (the host reconnects)", d->host);
            d->closing = 1;
        }
    }
    if (d->closing && !d->in_h2o && !d->reading)
        downlink_end(d);
}

static void on_proceed(h2o_generator_t *gen, h2o_req_t *req)
{
    downlink_t *d = H2O_STRUCT_FROM_MEMBER(downlink_t, gen, gen);
    d->in_h2o = 0;
    if (d->sending.cap > 2 * DOWNLINK_PENDING_MAX)
        cr_buf_free(&d->sending); /* a backlog went out: do not keep its memory for the life of the stream */
    else
        cr_buf_reset(&d->sending);
    downlink_step(d);
    (void)req;
}

static void on_stop(h2o_generator_t *gen, h2o_req_t *req)
{
    downlink_t *d = H2O_STRUCT_FROM_MEMBER(downlink_t, gen, gen);
    cr_log(CR_LOG_DEBUG, "downlink of host %s: the client left", d->host);
    d->in_h2o = 0;
    downlink_detach(d);
    downlink_maybe_free(d);
    (void)req;
}

/* Appends {k:"act", id, act} with the queued envelope's bytes as they are. Returns 0, CR_ETOOLARGE or CR_ENOMEM. */
static int append_act(cr_buf_t *b, const char *id, size_t idlen, const char *a, size_t alen)
{
    int rc;
    if ((rc = cr_buf_reserve(b, alen + idlen + 32)) != 0)
        return rc;
    static const char head[] = "\x83\xa1k\xa3" "act" "\xa2" "id", key[] = "\xa3" "act";
    cr_buf_append(b, head, sizeof(head) - 1);
    cr_mpw_str(b, id, idlen);
    cr_buf_append(b, key, sizeof(key) - 1);
    cr_buf_append(b, a, alen);
    return 0;
}

/* Appends {k:"note", id, n, idn, mid}: something for the host to fetch (n "inbox": message mid of identity idn).
 * Returns 0, CR_ETOOLARGE or CR_ENOMEM. */
static int append_note(cr_buf_t *b, const char *id, size_t idlen, const redisReply *n, const redisReply *idn,
                       const redisReply *mid)
{
    int rc = cr_mpw_map(b, 5);
    rc |= CR_MPW_LIT(b, "k") | CR_MPW_LIT(b, "note") | CR_MPW_LIT(b, "id") | cr_mpw_str(b, id, idlen);
    rc |= CR_MPW_LIT(b, "n") | cr_mpw_str(b, n->str, n->len) | CR_MPW_LIT(b, "idn") | cr_mpw_str(b, idn->str, idn->len);
    rc |= CR_MPW_LIT(b, "mid") | cr_mpw_str(b, mid->str, mid->len);
    return rc != 0 ? CR_ETOOLARGE : 0;
}

/* Turns the entries of an XRANGE reply into frames. Returns how many entries the reply had, or -1 when it is not
 * an XRANGE reply or a frame does not fit (then the stream ends after what was appended). */
static long downlink_take(downlink_t *d, redisReply *reply)
{
    size_t before = d->pending.len;
    if (reply->type != REDIS_REPLY_ARRAY)
        return -1;
    for (size_t i = 0; i < reply->elements; ++i) {
        redisReply *e = reply->element[i], *fields;
        const char *a = NULL;
        size_t alen = 0;
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || e->element[0]->type != REDIS_REPLY_STRING ||
            e->element[0]->len >= STREAM_ID_MAX || (fields = e->element[1])->type != REDIS_REPLY_ARRAY)
            return -1;
        const redisReply *note = NULL, *idn = NULL, *mid = NULL;
        for (size_t j = 0; j + 1 < fields->elements; j += 2) {
            const redisReply *fk = fields->element[j], *fv = fields->element[j + 1];
            if (fk->type != REDIS_REPLY_STRING || fv->type != REDIS_REPLY_STRING || fk->len != 1)
                continue;
            if (fk->str[0] == 'a')
                a = fv->str, alen = fv->len;
            else if (fk->str[0] == 'n')
                note = fv;
            else if (fk->str[0] == 'i')
                idn = fv;
            else if (fk->str[0] == 'm')
                mid = fv;
        }
        if (note != NULL && idn != NULL && mid != NULL) { /* a note (identity.lua): mail for an identity of the host */
            if (append_note(&d->pending, e->element[0]->str, e->element[0]->len, note, idn, mid) != 0) {
                cr_log(CR_LOG_ERROR, "downlink of host %s: no room for note %s; ending the stream", d->host, e->element[0]->str);
                return -1;
            }
            d->active = 1;
        } else if (a == NULL || alen == 0 ||
            !(((unsigned char)a[0] & 0xf0) == 0x80 || (unsigned char)a[0] == 0xde || (unsigned char)a[0] == 0xdf)) {
            cr_log(CR_LOG_WARN, "downlink of host %s: entry %s holds no action envelope; skipped", d->host, e->element[0]->str);
        } else if (append_act(&d->pending, e->element[0]->str, e->element[0]->len, a, alen) != 0) {
            cr_log(CR_LOG_ERROR, "downlink of host %s: no room for action %s; ending the stream", d->host, e->element[0]->str);
            return -1;
        } else {
            ++d->relay->metrics.actions_out;
            d->active = 1;
        }
        memcpy(d->last, e->element[0]->str, e->element[0]->len + 1);
    }
    if (reply->elements != 0) { /* size the next batch so that it stays near DOWNLINK_PENDING_MAX bytes */
        size_t avg = (d->pending.len - before) / reply->elements + 1, n = DOWNLINK_PENDING_MAX / avg;
        d->batch = n < 1 ? 1 : n > DOWNLINK_BATCH_N ? DOWNLINK_BATCH_N : (unsigned)n;
    }
    return (long)reply->elements;
}

static void on_ping(uv_timer_t *t)
{
    downlink_t *d = t->data;
    if (d->ended || d->closing)
        return;
    if (!d->active && !d->in_h2o && d->pending.len == 0)
        cr_buf_append(&d->pending, PING_FRAME, sizeof(PING_FRAME) - 1);
    d->active = 0;
    /* a notice can be missed while the subscription is being made: look at the stream now and then anyway */
    d->want_read = 1;
    downlink_step(d);
}

static void downlink_start(downlink_t *d)
{
    h2o_req_t *req = d->rr->req;
    d->started = 1;
    ++d->relay->metrics.streams_open;
    req->res.status = 200;
    req->res.reason = "OK";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/msgpack"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    d->gen.proceed = on_proceed;
    d->gen.stop = on_stop;
    h2o_start_response(req, &d->gen);
    uv_timer_init(d->relay->loop, &d->ping);
    d->ping.data = d;
    d->timer_open = 1;
    /* the first tick comes within a second: it also reads the stream again, which catches an action queued while
     * the relay's SUBSCRIBE to cr:live:{T} (sent on another connection than the first XRANGE) was not yet active */
    uv_timer_start(&d->ping, on_ping, ping_ms < 1000 ? ping_ms : 1000, ping_ms);
    cr_log(CR_LOG_INFO, "downlink of host %s (team %s) open after %s", d->host, d->listener.team, d->last);
}

/* Answers 503 instead of starting the stream, and frees d. */
static void downlink_refuse(downlink_t *d)
{
    relay_req_t *rr = d->rr;
    d->rr = NULL;
    downlink_detach(d);
    downlink_maybe_free(d);
    if (rr->req == NULL)
        relay_req_release(rr);
    else
        relay_respond_unavailable(rr);
}

static void on_read(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    downlink_t *d = data;
    long n;
    d->reading = 0;
    if (d->ended) {
        downlink_maybe_free(d);
        return;
    }
    if (!d->started) {
        if (d->rr->req == NULL || reply == NULL || reply->type == REDIS_REPLY_ERROR) {
            downlink_refuse(d);
            return;
        }
        downlink_start(d);
    }
    if (reply == NULL || (n = downlink_take(d, reply)) < 0) {
        if (reply == NULL)
            cr_log(CR_LOG_WARN, "downlink of host %s: redis connection lost; ending the stream (the host reconnects)", d->host);
        d->closing = 1;
    } else if (n > 0 && (unsigned long)n >= d->asked) { /* a full batch: there may be more */
        d->want_read = 1;
    }
    downlink_step(d);
    (void)rdb;
}

static void on_notice(relay_listener_t *l, const char *msg, size_t len)
{
    downlink_t *d = H2O_STRUCT_FROM_MEMBER(downlink_t, listener, l);
    size_t hl = strlen(d->host);
    if (len != hl + 1 || msg[0] != RELAY_NOTICE_ACTION || memcmp(msg + 1, d->host, hl) != 0)
        return;
    d->want_read = 1;
    if (d->started)
        downlink_step(d);
    /* not started yet: the first read's answer looks again */
}

static void on_live_close(relay_listener_t *l, const char *why)
{
    downlink_t *d = H2O_STRUCT_FROM_MEMBER(downlink_t, listener, l);
    cr_log(CR_LOG_INFO, "downlink of host %s: ending (%s)", d->host, why);
    relay_live_remove(d->relay, l);
    d->closing = 1;
    if (d->started)
        downlink_step(d);
    /* not started yet: the first read's answer starts the response and ends it at once */
}

/* Starts listening and the first read; on failure answers 503. */
static void downlink_begin(downlink_t *d)
{
    relay_live_add(d->relay, &d->listener); /* before the first read, so that nothing queued meanwhile is missed */
    if (d->relay->shutting_down)
        d->closing = 1;
    if (downlink_xrange(d) != 0)
        downlink_refuse(d);
}

static void on_cursor(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    downlink_t *d = data;
    d->reading = 0;
    if (d->rr->req == NULL || reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        downlink_refuse(d);
        return;
    }
    if (reply->type == REDIS_REPLY_STRING && relay_stream_id_canon(reply->str, reply->len, d->last, NULL) != 0) {
        cr_log(CR_LOG_WARN, "host %s has a malformed acked cursor; sending its actions from the start", d->host);
        snprintf(d->last, sizeof(d->last), "0-0");
    }
    downlink_begin(d);
    (void)rdb;
}

static void on_get_actions(relay_req_t *rr)
{
    const char *after = relay_query(rr, "after");
    downlink_t *d;
    if ((d = calloc(1, sizeof(*d))) == NULL) {
        relay_respond_error(rr, 500, "internal", NULL, "out of memory");
        return;
    }
    snprintf(d->last, sizeof(d->last), "0-0");
    if (after != NULL && after[0] != '\0' && relay_stream_id_canon(after, strlen(after), d->last, NULL) != 0) {
        free(d);
        relay_respond_error(rr, 400, "bad_request", "after", "after must be a stream id like 1700000000000-0");
        return;
    }
    d->relay = rr->relay;
    d->rr = rr;
    snprintf(d->host, sizeof(d->host), "%s", rr->who.id);
    snprintf(d->key, sizeof(d->key), "cr:{%s}:act:%s", rr->who.team, rr->who.id);
    snprintf(d->listener.team, sizeof(d->listener.team), "%s", rr->who.team);
    snprintf(d->listener.token_hash, sizeof(d->listener.token_hash), "%s", rr->who.token_hash);
    d->listener.on_notice = on_notice;
    d->listener.on_close = on_live_close;
    /* reading stops above DOWNLINK_PENDING_MAX, and a batch is sized from the last one's actions; the cap allows one
     * batch of the largest actions more (its first read, or a sudden run of audio) */
    d->batch = DOWNLINK_BATCH_N;
    cr_buf_init(&d->pending, DOWNLINK_PENDING_MAX + DOWNLINK_BATCH_N * (cr_limits_max_action(&rr->relay->limits) + 128));
    cr_buf_init(&d->sending, d->pending.limit);
    if (after != NULL && after[0] != '\0') {
        downlink_begin(d);
        return;
    }
    /* no cursor given: start after the host's acked cursor, or from the start */
    if (relay_rdb_commandf(&rr->relay->rdb, on_cursor, d, "HGET cr:{%s}:hcur %s", rr->who.team, rr->who.id) != 0) {
        free(d);
        relay_respond_unavailable(rr);
        return;
    }
    d->reading = 1;
}

/* ---- POST /v1/host/actions/ack -------------------------------------------------------------------------------- */

typedef struct st_ack_t {
    relay_req_t *rr;
    char k_hcur[128], k_act[192], host[65], cursor[STREAM_ID_MAX], next[STREAM_ID_MAX];
    const char *argv[6];
    size_t lens[6];
} ack_t;

static void on_ack_reply(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    ack_t *a = data;
    relay_req_t *rr = a->rr;
    if (reply == NULL) {
        relay_respond_unavailable(rr);
    } else if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 || reply->element[0]->type != REDIS_REPLY_STRING) {
        relay_respond_error(rr, 500, "internal", NULL, "the relay could not record the cursor");
    } else if (strcmp(reply->element[0]->str, "ahead") == 0) {
        relay_respond_error(rr, 400, "bad_request", "cursor", "cursor %s is past the last action queued for this host (%s)",
                            a->cursor, reply->element[1]->str);
    } else {
        cr_log(CR_LOG_DEBUG, "host %s acked %s (stored %s)", a->host, a->cursor, reply->element[1]->str);
        relay_respond(rr, 200, "\x80", 1);
    }
    free(a);
    (void)rdb;
}

static void on_ack(relay_req_t *rr)
{
    cr_span_t v;
    cr_mp_item_t it;
    size_t used;
    ack_t *a;
    if (rr->body.len == 0 || cr_mp_check(rr->body.base, rr->body.len, &rr->relay->limits, rr->body.len, NULL, &used) != 0 ||
        used != rr->body.len || cr_mp_map_get(rr->body.base, rr->body.len, "cursor", &v) != 0) {
        relay_respond_error(rr, 400, "bad_request", "cursor", "the body must be {\"cursor\": \"<stream id>\"}");
        return;
    }
    if ((a = calloc(1, sizeof(*a))) == NULL) {
        relay_respond_error(rr, 500, "internal", NULL, "out of memory");
        return;
    }
    if (cr_mp_read(v.base, v.base + v.len, &it) == 0 || it.type != MSGPACK_OBJECT_STR ||
        relay_stream_id_canon(it.bytes.base, it.bytes.len, a->cursor, a->next) != 0) {
        free(a);
        relay_respond_error(rr, 400, "bad_request", "cursor", "cursor must be a stream id like 1700000000000-0");
        return;
    }
    a->rr = rr;
    snprintf(a->host, sizeof(a->host), "%s", rr->who.id);
    snprintf(a->k_hcur, sizeof(a->k_hcur), "cr:{%s}:hcur", rr->who.team);
    snprintf(a->k_act, sizeof(a->k_act), "cr:{%s}:act:%s", rr->who.team, rr->who.id);
    const char *argv[] = {a->k_hcur, a->k_act, "ack", a->host, a->cursor, a->next};
    memcpy(a->argv, argv, sizeof(argv));
    for (size_t i = 0; i < 6; ++i)
        a->lens[i] = strlen(argv[i]);
    if (relay_rdb_script(&rr->relay->rdb, &action_script, on_ack_reply, a, 2, 6, a->argv, a->lens) != 0) {
        free(a);
        relay_respond_unavailable(rr);
    }
}

/* ---- registration --------------------------------------------------------------------------------------------- */

void relay_actions_register(relay_t *relay)
{
    ping_ms = (uint64_t)cr_config_int(relay->conf, "downlink.ping_ms");
    action_script.src = relay_lua_action;
    action_script.len = relay_lua_action_len;
    relay_rdb_add_script(&relay->rdb, &action_script);
    relay_route(relay, "POST", "/v1/actions", RELAY_P_DEVICE | RELAY_P_ADMIN, on_post_action, "actions");
    relay_route(relay, "GET", "/v1/host/actions", RELAY_P_HOST, on_get_actions, "host_actions");
    relay_route(relay, "POST", "/v1/host/actions/ack", RELAY_P_HOST, on_ack, "host_actions_ack");
}
