/* link.c — corrald's link to the relay: uplink batches (one in flight, in order, acked per session, a refused envelope
 * dropped), the never-ending downlink read with proto's streaming reader, action acks, and full-jitter backoff; all
 * over net/'s cr_http client on the host's loop. */
#include "link.h"
#include "corral/error.h"
#include "corral/http.h"
#include "corral/json.h"
#include "corral/log.h"
#include "corral/reader.h"
#include <msgpack.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define DOWNLINK_VALUE_MAX (4u << 20) /* one frame: an action of 256 KiB plus up to 2 MiB of audio, with room */
#define ANSWER_MAX (256u << 10)       /* an uplink answer: {acked:{sid:seq}} for up to 512 sessions */
#define HOST_CONNECTIONS 4L           /* HTTP/1.1 (http://) needs one per concurrent request: downlink, uplink, ack */

/* One retried direction: its timer and backoff attempt. */
typedef struct st_host_link_retry_t {
    uv_timer_t timer;
    unsigned attempt;
    int armed;
} host_link_retry_t;

/* What the batch in flight holds, per envelope: enough to name a refused one. */
typedef struct st_host_link_item_t {
    char sid[65];
    uint64_t seq;
} host_link_item_t;

struct st_host_link_t {
    uv_loop_t *loop;
    cr_http_t *http;
    host_link_cbs_t cbs;
    void *data;
    char url[CR_HTTP_URL_MAX / 2];
    char *token; /* "Bearer <token>", sodium_malloc'd once (not per request: each sodium_malloc is four syscalls) */
    size_t token_len;
    char *ca_file;
    size_t batch_n, batch_bytes;
    long idle_ms, backoff_base_ms, backoff_max_ms;

    host_link_state_t state;
    char last_error[256];
    uint64_t events_acked, events_rejected, actions_in;

    /* uplink */
    host_link_retry_t up_retry;
    int up_busy;
    cr_span_t *spans;
    host_link_item_t *items;
    size_t nitems, shrink_to; /* shrink_to > 0: send at most this many (after a 400 that named no envelope) */
    char stuck_sid[65];       /* the first envelope of the last batch acked, to notice an ack that moved nothing */
    uint64_t stuck_seq;

    /* downlink */
    host_link_retry_t dl_retry;
    int dl_busy, dl_open;
    uint64_t dl_id;
    cr_reader_t reader;
    char cursor[HOST_LINK_CURSOR_MAX];

    /* acks */
    host_link_retry_t ack_retry;
    int ack_busy;
    char ack_want[HOST_LINK_CURSOR_MAX]; /* the newest cursor the owner confirmed, "" when sent */
    char ack_sent[HOST_LINK_CURSOR_MAX]; /* the cursor in flight */

    int started, closing, closes_pending, http_open;
    void (*on_closed)(void *data);
    void *closed_data;
};

static void host_link__pump(host_link_t *l);
static void host_link__open_downlink(host_link_t *l);
static void host_link__send_ack(host_link_t *l);

/* ---- small helpers ---------------------------------------------------------------------------------------------- */

static void host_link__set_error(host_link_t *l, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void host_link__set_error(host_link_t *l, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(l->last_error, sizeof(l->last_error), fmt, ap);
    va_end(ap);
}

static void host_link__set_state(host_link_t *l, host_link_state_t st)
{
    if (l->state == st || l->state == HOST_LINK_REFUSED || l->state == HOST_LINK_STOPPED)
        return;
    l->state = st;
    if (l->cbs.on_state != NULL)
        l->cbs.on_state(l->data);
}

/* Whether s is a stream id: digits, '-', digits (the relay checks it too; this keeps junk out of URLs). */
static int host_link__is_cursor(const char *s)
{
    size_t i = 0, n = strlen(s);
    if (n == 0 || n >= HOST_LINK_CURSOR_MAX)
        return 0;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        ++i;
    if (i == 0 || i == n || s[i] != '-')
        return 0;
    if (++i == n)
        return 0;
    while (i < n && s[i] >= '0' && s[i] <= '9')
        ++i;
    return i == n;
}

/* Full jitter: a delay drawn uniformly from [0, min(max, base * 2^attempt)], and the attempt counted. */
static uint64_t host_link__backoff_ms(host_link_t *l, host_link_retry_t *r)
{
    uint64_t cap = (uint64_t)l->backoff_base_ms;
    for (unsigned i = 0; i < r->attempt && cap < (uint64_t)l->backoff_max_ms; ++i)
        cap *= 2;
    if (cap > (uint64_t)l->backoff_max_ms)
        cap = (uint64_t)l->backoff_max_ms;
    if (r->attempt < 64)
        ++r->attempt;
    return cap == 0 ? 0 : randombytes_uniform((uint32_t)(cap + 1));
}

static void host_link__arm(host_link_t *l, host_link_retry_t *r, uv_timer_cb cb, const char *what)
{
    uint64_t ms = host_link__backoff_ms(l, r);
    cr_log(CR_LOG_INFO, "relay link: %s again in %llu ms (attempt %u)", what, (unsigned long long)ms, r->attempt);
    r->armed = 1;
    uv_timer_start(&r->timer, cb, ms, 0);
}

/* A request to path on the relay with the host's bearer token; body (may be NULL) is moved into the request. */
static int host_link__request(host_link_t *l, cr_http_req_t *req, const char *method, const char *path, cr_buf_t *body)
{
    int rc = -1;
    memset(req, 0, sizeof(*req));
    if ((size_t)snprintf(req->url, sizeof(req->url), "%s%s", l->url, path) >= sizeof(req->url))
        return cr_error_set(CR_ETOOLARGE, "url", "the relay URL is too long"), -1;
    req->method = method;
    req->ca_file = l->ca_file;
    if (cr_http_req_header(req, "authorization", l->token) == 0 && cr_http_req_header(req, "accept", "application/msgpack") == 0 &&
        (body == NULL || cr_http_req_header(req, "content-type", "application/msgpack") == 0))
        rc = 0;
    if (rc != 0) {
        cr_http_req_free(req);
        return cr_error_set(CR_ENOMEM, NULL, "out of memory"), -1;
    }
    if (body != NULL) {
        req->body = *body; /* now owned by req */
        memset(body, 0, sizeof(*body));
    }
    return 0;
}

/* The error document of an answer ({error:{code,message,field}}, msgpack or JSON) into code/message/field. */
static void host_link__answer_error(const cr_http_answer_t *a, char *code, size_t codelen, char *message, size_t msglen,
                                    char *field, size_t fieldlen)
{
    cr_buf_t mp;
    const char *doc = a->body;
    size_t len = a->body_len, used;
    cr_span_t err, v;
    cr_mp_item_t it;
    struct {
        const char *key;
        char *out;
        size_t outlen;
    } want[] = {{"code", code, codelen}, {"message", message, msglen}, {"field", field, fieldlen}};

    code[0] = message[0] = field[0] = '\0';
    cr_buf_init(&mp, 2 * ANSWER_MAX);
    if (len == 0)
        goto done;
    if (cr_mp_check(doc, len, NULL, len, NULL, &used) != 0 || used != len) {
        if (cr_json_to_msgpack(&mp, doc, len, NULL) != 0)
            goto done;
        doc = mp.base, len = mp.len;
    }
    if (cr_mp_map_get(doc, len, "error", &err) != 0)
        goto done;
    for (size_t i = 0; i < sizeof(want) / sizeof(want[0]); ++i)
        if (cr_mp_map_get(err.base, err.len, want[i].key, &v) == 0 && cr_mp_read(v.base, v.base + v.len, &it) != 0 &&
            it.type == MSGPACK_OBJECT_STR)
            snprintf(want[i].out, want[i].outlen, "%.*s", (int)it.bytes.len, it.bytes.base);
done:
    cr_buf_free(&mp);
}

/* 401/403: the relay refuses this token; everything stops until a new one is configured. */
static void host_link__refused(host_link_t *l, long status)
{
    if (l->state == HOST_LINK_REFUSED)
        return;
    cr_log(CR_LOG_ERROR, "relay link: the relay refused the token (HTTP %ld); the link stops until the host token is "
           "replaced", status);
    host_link__set_error(l, "the relay refused the token (HTTP %ld)", status);
    host_link__set_state(l, HOST_LINK_REFUSED);
    uv_timer_stop(&l->up_retry.timer);
    uv_timer_stop(&l->dl_retry.timer);
    uv_timer_stop(&l->ack_retry.timer);
    if (l->dl_busy)
        cr_http_cancel(l->http, l->dl_id); /* its cb sees REFUSED and does nothing more */
}

static int host_link__stopped(const host_link_t *l)
{
    return l->closing || l->state == HOST_LINK_REFUSED;
}

/* ---- uplink ----------------------------------------------------------------------------------------------------- */

static void host_link__on_up_timer(uv_timer_t *t)
{
    host_link_t *l = t->data;
    l->up_retry.armed = 0;
    host_link__pump(l);
}

/* Reads sid and seq of one envelope (for naming it); "" and 0 when they cannot be read. */
static void host_link__item(host_link_item_t *it, const char *env, size_t len)
{
    cr_span_t v;
    cr_mp_item_t m;
    it->sid[0] = '\0';
    it->seq = 0;
    if (cr_mp_map_get(env, len, "sid", &v) == 0 && cr_mp_read(v.base, v.base + v.len, &m) != 0 &&
        m.type == MSGPACK_OBJECT_STR && m.bytes.len < sizeof(it->sid)) {
        memcpy(it->sid, m.bytes.base, m.bytes.len);
        it->sid[m.bytes.len] = '\0';
    }
    if (cr_mp_map_get(env, len, "seq", &v) == 0 && cr_mp_read(v.base, v.base + v.len, &m) != 0 &&
        m.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        it->seq = m.u;
}

/* Parses {acked:{sid:seq}} and reports each pair. Returns the number of pairs, or -1 when the answer is not that. */
static long host_link__acked(host_link_t *l, const char *mp, size_t len)
{
    cr_span_t acked;
    cr_mp_item_t m, k, v;
    const char *p, *end;
    size_t used, n;
    char sid[65];
    if (len == 0 || cr_mp_check(mp, len, NULL, len, NULL, &used) != 0 || used != len ||
        cr_mp_map_get(mp, len, "acked", &acked) != 0)
        return -1;
    p = acked.base, end = acked.base + acked.len;
    if ((n = cr_mp_read(p, end, &m)) == 0 || m.type != MSGPACK_OBJECT_MAP)
        return -1;
    p += n;
    for (uint32_t i = 0; i < m.count; ++i) {
        const char *vp;
        if ((n = cr_mp_read(p, end, &k)) == 0 || k.type != MSGPACK_OBJECT_STR)
            return -1;
        vp = cr_mp_skip(p, end);
        if ((n = cr_mp_read(vp, end, &v)) == 0 || v.type != MSGPACK_OBJECT_POSITIVE_INTEGER || k.bytes.len >= sizeof(sid))
            return -1;
        memcpy(sid, k.bytes.base, k.bytes.len);
        sid[k.bytes.len] = '\0';
        l->cbs.on_acked(sid, v.u, l->data);
        p = cr_mp_skip(vp, end);
    }
    return (long)m.count;
}

static void host_link__on_uplink(const cr_http_answer_t *a, void *data)
{
    host_link_t *l = data;
    char code[48], message[256], field[96];
    l->up_busy = 0;
    if (host_link__stopped(l))
        return;
    if (a->status == 200) {
        if (host_link__acked(l, a->body, a->body_len) < 0) {
            host_link__set_error(l, "the relay's answer to a batch is not {acked:{sid:seq}}");
            cr_log(CR_LOG_WARN, "relay link: %s", l->last_error);
            host_link__arm(l, &l->up_retry, host_link__on_up_timer, "uplink");
            return;
        }
        l->events_acked += l->nitems;
        l->up_retry.attempt = 0;
        l->shrink_to = 0;
        if (l->nitems > 0) {
            memcpy(l->stuck_sid, l->items[0].sid, sizeof(l->stuck_sid));
            l->stuck_seq = l->items[0].seq;
        }
        l->nitems = 0;
        host_link__pump(l);
        return;
    }
    if (a->status == 401 || a->status == 403) {
        host_link__refused(l, a->status);
        return;
    }
    if (a->status == 400 || a->status == 413) {
        /* nothing of the batch was stored: drop the envelope it names (its index leads the field) and send the rest */
        char *end = NULL;
        unsigned long idx;
        host_link__answer_error(a, code, sizeof(code), message, sizeof(message), field, sizeof(field));
        idx = field[0] >= '0' && field[0] <= '9' ? strtoul(field, &end, 10) : (unsigned long)-1;
        if (end != NULL && (*end == '\0' || *end == '.') && idx > 0 && idx < l->nitems) {
            /* the ones before it are good: send them first, so that a refused envelope is always the oldest pending */
            l->shrink_to = idx;
            l->nitems = 0;
            host_link__pump(l);
            return;
        }
        if (end != NULL && (*end == '\0' || *end == '.') && idx == 0 && l->nitems > 0) {
            host_link_item_t *it = &l->items[idx];
            cr_log_sid(CR_LOG_WARN, it->sid, "relay link: the relay refused event seq %llu (%s, field %s): %s; dropped",
                       (unsigned long long)it->seq, code, field, message);
            host_link__set_error(l, "the relay refused event %s/%llu: %s: %s", it->sid, (unsigned long long)it->seq, code,
                                 message);
            ++l->events_rejected;
            l->nitems = 0;
            l->cbs.on_rejected((size_t)idx, it->sid, it->seq, code, message, l->data);
            host_link__pump(l);
            return;
        }
        if (l->nitems > 1) { /* no envelope named: send them one by one to find it */
            cr_log(CR_LOG_WARN, "relay link: the relay refused a batch of %zu (HTTP %ld %s: %s); sending one at a time",
                   l->nitems, a->status, code, message);
            l->shrink_to = 1;
            l->nitems = 0;
            host_link__pump(l);
            return;
        }
        if (l->nitems == 1) {
            host_link_item_t *it = &l->items[0];
            cr_log_sid(CR_LOG_WARN, it->sid, "relay link: the relay refused event seq %llu (HTTP %ld %s: %s); dropped",
                       (unsigned long long)it->seq, a->status, code, message);
            host_link__set_error(l, "the relay refused event %s/%llu: %s: %s", it->sid, (unsigned long long)it->seq, code,
                                 message);
            ++l->events_rejected;
            l->nitems = 0;
            l->cbs.on_rejected(0, it->sid, it->seq, code, message, l->data);
            host_link__pump(l);
            return;
        }
    }
    /* 5xx, 429, anything else, or no answer: the same batch again later (the relay stores each seq once) */
    if (a->status == 0)
        host_link__set_error(l, "uplink: %s", a->error != NULL ? a->error : "no answer");
    else
        host_link__set_error(l, "uplink: HTTP %ld from the relay", a->status);
    cr_log(CR_LOG_WARN, "relay link: %s", l->last_error);
    l->nitems = 0;
    host_link__arm(l, &l->up_retry, host_link__on_up_timer, "uplink");
}

/* Sends the next batch when none is in flight and no retry is waiting. */
static void host_link__pump(host_link_t *l)
{
    cr_http_req_t req;
    cr_buf_t body;
    size_t n, max = l->shrink_to > 0 && l->shrink_to < l->batch_n ? l->shrink_to : l->batch_n, take = 0, bytes = 5;

    if (!l->started || l->up_busy || l->up_retry.armed || host_link__stopped(l))
        return;
    if ((n = l->cbs.next_batch(l->spans, max, l->data)) == 0)
        return;
    if (n > max)
        n = max;
    /* as many as fit the byte cap, at least one (one too large is refused by the relay and dropped) */
    while (take < n && (take == 0 || bytes + l->spans[take].len <= l->batch_bytes))
        bytes += l->spans[take++].len;
    cr_buf_init(&body, bytes + 16);
    if (cr_mpw_array(&body, (uint32_t)take) != 0)
        goto nomem;
    for (size_t i = 0; i < take; ++i) {
        host_link__item(&l->items[i], l->spans[i].base, l->spans[i].len);
        if (cr_buf_append(&body, l->spans[i].base, l->spans[i].len) != 0)
            goto nomem;
    }
    if (l->stuck_sid[0] != '\0' && l->up_retry.attempt == 0 && strcmp(l->items[0].sid, l->stuck_sid) == 0 &&
        l->items[0].seq == l->stuck_seq) {
        /* the last batch was acked yet its first envelope is still pending: do not spin */
        cr_log_sid(CR_LOG_WARN, l->stuck_sid, "relay link: seq %llu was sent and acked but is still pending",
                   (unsigned long long)l->stuck_seq);
        l->stuck_sid[0] = '\0';
        cr_buf_free(&body);
        host_link__arm(l, &l->up_retry, host_link__on_up_timer, "uplink");
        return;
    }
    l->stuck_sid[0] = '\0';
    if (host_link__request(l, &req, "POST", "/v1/host/events", &body) != 0)
        goto fail;
    req.body_max = ANSWER_MAX;
    l->nitems = take;
    if (cr_http_send(l->http, &req, host_link__on_uplink, l, NULL) != 0) {
        cr_http_req_free(&req);
        l->nitems = 0;
        goto fail;
    }
    l->up_busy = 1;
    return;
nomem:
    cr_error_set(CR_ENOMEM, NULL, "out of memory");
fail:
    cr_buf_free(&body);
    host_link__set_error(l, "uplink: %s", cr_error_last()->message);
    host_link__arm(l, &l->up_retry, host_link__on_up_timer, "uplink");
}

/* ---- downlink --------------------------------------------------------------------------------------------------- */

static void host_link__on_dl_timer(uv_timer_t *t)
{
    host_link_t *l = t->data;
    l->dl_retry.armed = 0;
    host_link__open_downlink(l);
}

/* Copies the str `key` of frame f into out. Returns 0, or -1 when it is absent, not a str or too long. */
static int host_link__str(cr_span_t f, const char *key, char *out, size_t outlen)
{
    cr_span_t v;
    cr_mp_item_t m;
    if (cr_mp_map_get(f.base, f.len, key, &v) != 0 || cr_mp_read(v.base, v.base + v.len, &m) == 0 ||
        m.type != MSGPACK_OBJECT_STR || m.bytes.len >= outlen)
        return -1;
    memcpy(out, m.bytes.base, m.bytes.len);
    out[m.bytes.len] = '\0';
    return 0;
}

/* One frame of the stream. Returns 0, or -1 when the stream is bad (it is then dropped and reopened). */
static int host_link__frame(host_link_t *l, cr_span_t f)
{
    cr_span_t v, act;
    cr_mp_item_t m;
    char id[HOST_LINK_CURSOR_MAX];
    if (cr_mp_map_get(f.base, f.len, "k", &v) != 0 || cr_mp_read(v.base, v.base + v.len, &m) == 0 ||
        m.type != MSGPACK_OBJECT_STR)
        return cr_mp_map_get(f.base, f.len, "error", &v) == 0 ? -1 : 0; /* an error frame ends the stream */
    int is_note = cr_span_eq(m.bytes, "note", 4);
    if (!cr_span_eq(m.bytes, "act", 3) && !is_note)
        return 0; /* ping and kinds of later versions */
    if (cr_mp_map_get(f.base, f.len, "id", &v) != 0 || cr_mp_read(v.base, v.base + v.len, &m) == 0 ||
        m.type != MSGPACK_OBJECT_STR || m.bytes.len >= sizeof(id))
        return -1;
    memcpy(id, m.bytes.base, m.bytes.len);
    id[m.bytes.len] = '\0';
    if (is_note) {
        char n[16], idn[64], mid[HOST_LINK_CURSOR_MAX];
        if (!host_link__is_cursor(id) || host_link__str(f, "n", n, sizeof(n)) != 0 ||
            host_link__str(f, "idn", idn, sizeof(idn)) != 0 || host_link__str(f, "mid", mid, sizeof(mid)) != 0)
            return -1;
        memcpy(l->cursor, id, sizeof(id));
        if (l->cbs.on_note != NULL)
            l->cbs.on_note(id, n, idn, mid, l->data);
        return 0;
    }
    if (!host_link__is_cursor(id) || cr_mp_map_get(f.base, f.len, "act", &act) != 0 ||
        cr_mp_read(act.base, act.base + act.len, &m) == 0 || m.type != MSGPACK_OBJECT_MAP)
        return -1;
    memcpy(l->cursor, id, sizeof(id));
    ++l->actions_in;
    l->cbs.on_action(id, act.base, act.len, l->data);
    return 0;
}

static int host_link__on_dl_data(const char *p, size_t n, void *data)
{
    host_link_t *l = data;
    cr_span_t f;
    int rc;
    if (host_link__stopped(l))
        return -1;
    if (!l->dl_open) {
        l->dl_open = 1;
        l->dl_retry.attempt = 0;
        cr_log(CR_LOG_INFO, "relay link: downlink open after %s", l->cursor[0] != '\0' ? l->cursor : "(the relay's cursor)");
        host_link__set_state(l, HOST_LINK_CONNECTED);
    }
    if (cr_reader_feed(&l->reader, p, n) != 0)
        goto bad;
    while ((rc = cr_reader_next(&l->reader, &f)) == 0)
        if (host_link__frame(l, f) != 0)
            goto bad;
    if (rc != CR_EAGAIN)
        goto bad;
    return host_link__stopped(l) ? -1 : 0;
bad:
    host_link__set_error(l, "downlink: the relay sent a frame that is not valid");
    cr_log(CR_LOG_WARN, "relay link: %s", l->last_error);
    return -1;
}

static void host_link__on_downlink(const cr_http_answer_t *a, void *data)
{
    host_link_t *l = data;
    int was_open = l->dl_open;
    char code[48], message[256], field[96];
    l->dl_busy = 0;
    l->dl_open = 0;
    if (host_link__stopped(l))
        return;
    if (a->status == 401 || a->status == 403) {
        host_link__refused(l, a->status);
        return;
    }
    if (a->status == 400) {
        host_link__answer_error(a, code, sizeof(code), message, sizeof(message), field, sizeof(field));
        cr_log(CR_LOG_WARN, "relay link: the relay refused the downlink cursor %s (%s); starting from its record", l->cursor,
               message);
        l->cursor[0] = '\0';
    }
    if (a->status == 200 || was_open)
        host_link__set_error(l, "downlink: the stream ended%s%s", a->error != NULL ? ": " : "", a->error != NULL ? a->error : "");
    else if (a->status == 0)
        host_link__set_error(l, "downlink: %s", a->error != NULL ? a->error : "no answer");
    else
        host_link__set_error(l, "downlink: HTTP %ld from the relay", a->status);
    cr_log(CR_LOG_INFO, "relay link: %s", l->last_error);
    host_link__set_state(l, HOST_LINK_CONNECTING);
    host_link__arm(l, &l->dl_retry, host_link__on_dl_timer, "downlink");
}

static void host_link__open_downlink(host_link_t *l)
{
    cr_http_req_t req;
    char path[96];
    if (!l->started || l->dl_busy || l->dl_retry.armed || host_link__stopped(l))
        return;
    if (l->cursor[0] != '\0')
        snprintf(path, sizeof(path), "/v1/host/actions?after=%s", l->cursor);
    else
        snprintf(path, sizeof(path), "/v1/host/actions");
    cr_reader_free(&l->reader);
    cr_reader_init(&l->reader, DOWNLINK_VALUE_MAX, NULL);
    if (host_link__request(l, &req, "GET", path, NULL) != 0)
        goto fail;
    req.total_ms = -1;
    req.idle_ms = l->idle_ms;
    req.on_data = host_link__on_dl_data;
    if (cr_http_send(l->http, &req, host_link__on_downlink, l, &l->dl_id) != 0) {
        cr_http_req_free(&req);
        goto fail;
    }
    l->dl_busy = 1;
    return;
fail:
    host_link__set_error(l, "downlink: %s", cr_error_last()->message);
    host_link__arm(l, &l->dl_retry, host_link__on_dl_timer, "downlink");
}

/* ---- acks ------------------------------------------------------------------------------------------------------- */

static void host_link__on_ack_timer(uv_timer_t *t)
{
    host_link_t *l = t->data;
    l->ack_retry.armed = 0;
    host_link__send_ack(l);
}

static void host_link__on_ack(const cr_http_answer_t *a, void *data)
{
    host_link_t *l = data;
    l->ack_busy = 0;
    if (host_link__stopped(l))
        return;
    if (a->status == 200) {
        l->ack_retry.attempt = 0;
        if (l->cbs.on_cursor != NULL)
            l->cbs.on_cursor(l->ack_sent, l->data);
        host_link__send_ack(l);
        return;
    }
    if (a->status == 401 || a->status == 403) {
        host_link__refused(l, a->status);
        return;
    }
    if (a->status == 400) { /* the relay will never take this cursor: forget it */
        cr_log(CR_LOG_WARN, "relay link: the relay refused the ack of cursor %s", l->ack_sent);
        host_link__send_ack(l);
        return;
    }
    if (l->ack_want[0] == '\0') /* retry this one unless a newer one waits */
        memcpy(l->ack_want, l->ack_sent, sizeof(l->ack_want));
    host_link__set_error(l, "ack: %s", a->status == 0 ? (a->error != NULL ? a->error : "no answer") : "HTTP error from the relay");
    host_link__arm(l, &l->ack_retry, host_link__on_ack_timer, "ack");
}

static void host_link__send_ack(host_link_t *l)
{
    cr_http_req_t req;
    cr_buf_t body;
    if (!l->started || l->ack_busy || l->ack_retry.armed || l->ack_want[0] == '\0' || host_link__stopped(l))
        return;
    cr_buf_init(&body, 128);
    if (cr_mpw_map(&body, 1) != 0 || CR_MPW_LIT(&body, "cursor") != 0 || cr_mpw_str(&body, l->ack_want, strlen(l->ack_want)) != 0 ||
        host_link__request(l, &req, "POST", "/v1/host/actions/ack", &body) != 0) {
        cr_buf_free(&body);
        goto fail;
    }
    if (cr_http_send(l->http, &req, host_link__on_ack, l, NULL) != 0) {
        cr_http_req_free(&req);
        goto fail;
    }
    memcpy(l->ack_sent, l->ack_want, sizeof(l->ack_sent));
    l->ack_want[0] = '\0';
    l->ack_busy = 1;
    return;
fail:
    host_link__set_error(l, "ack: %s", cr_error_last()->message);
    host_link__arm(l, &l->ack_retry, host_link__on_ack_timer, "ack");
}

/* ---- the public side -------------------------------------------------------------------------------------------- */

int host_link_new(host_link_t **out, uv_loop_t *loop, const host_link_config_t *conf, const host_link_cbs_t *cbs,
                  void *data)
{
    host_link_t *l = NULL;
    size_t ulen;
    *out = NULL;
    if (conf->url == NULL || (strncmp(conf->url, "http://", 7) != 0 && strncmp(conf->url, "https://", 8) != 0))
        return cr_error_set(CR_ECONFIG, "relay.url", "the relay URL must start with https:// (or http:// on loopback)"), -1;
    if ((ulen = strlen(conf->url)) >= sizeof(l->url))
        return cr_error_set(CR_ECONFIG, "relay.url", "the relay URL is too long"), -1;
    if (conf->token == NULL || conf->token[0] == '\0' || strpbrk(conf->token, "\r\n") != NULL)
        return cr_error_set(CR_ECONFIG, "relay.token", "the host token is missing or malformed"), -1;
    if (conf->cursor != NULL && conf->cursor[0] != '\0' && !host_link__is_cursor(conf->cursor))
        return cr_error_set(CR_ECONFIG, "cursor", "the downlink cursor is not a stream id"), -1;
    if (cbs->next_batch == NULL || cbs->on_acked == NULL || cbs->on_rejected == NULL || cbs->on_action == NULL)
        return cr_error_set(CR_ERR, NULL, "host_link_new: a required callback is missing"), -1;
    if (sodium_init() < 0)
        return cr_error_set(CR_ERR, NULL, "libsodium cannot start"), -1;
    if ((l = calloc(1, sizeof(*l))) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory"), -1;
    l->loop = loop;
    l->cbs = *cbs;
    l->data = data;
    memcpy(l->url, conf->url, ulen + 1);
    while (ulen > 0 && l->url[ulen - 1] == '/')
        l->url[--ulen] = '\0';
    l->token_len = strlen(conf->token);
    l->batch_n = conf->batch_n > 0 ? conf->batch_n : HOST_LINK_BATCH_N;
    l->batch_bytes = conf->batch_bytes > 0 ? conf->batch_bytes : HOST_LINK_BATCH_BYTES;
    l->idle_ms = conf->idle_ms > 0 ? conf->idle_ms : HOST_LINK_IDLE_MS;
    l->backoff_base_ms = conf->backoff_base_ms > 0 ? conf->backoff_base_ms : HOST_LINK_BACKOFF_BASE_MS;
    l->backoff_max_ms = conf->backoff_max_ms > 0 ? conf->backoff_max_ms : HOST_LINK_BACKOFF_MAX_MS;
    if (conf->cursor != NULL)
        snprintf(l->cursor, sizeof(l->cursor), "%s", conf->cursor);
    cr_reader_init(&l->reader, DOWNLINK_VALUE_MAX, NULL);
    if ((l->token = sodium_malloc(l->token_len + 8)) == NULL || (conf->ca_file != NULL && (l->ca_file = strdup(conf->ca_file)) == NULL) ||
        (l->spans = calloc(l->batch_n, sizeof(*l->spans))) == NULL || (l->items = calloc(l->batch_n, sizeof(*l->items))) == NULL) {
        cr_error_set(CR_ENOMEM, NULL, "out of memory");
        goto fail;
    }
    memcpy(l->token, "Bearer ", 7);
    memcpy(l->token + 7, conf->token, l->token_len + 1);
    if (cr_http_new(&l->http, loop) != 0)
        goto fail;
    l->http_open = 1;
    cr_http_set_host_connections(l->http, HOST_CONNECTIONS);
    uv_timer_init(loop, &l->up_retry.timer);
    uv_timer_init(loop, &l->dl_retry.timer);
    uv_timer_init(loop, &l->ack_retry.timer);
    l->up_retry.timer.data = l->dl_retry.timer.data = l->ack_retry.timer.data = l;
    *out = l;
    return 0;
fail:
    if (l->token != NULL)
        sodium_free(l->token);
    free(l->ca_file);
    free(l->spans);
    free(l->items);
    cr_reader_free(&l->reader);
    free(l);
    return -1;
}

void host_link_start(host_link_t *l)
{
    if (l->started || l->closing)
        return;
    l->started = 1;
    cr_log(CR_LOG_INFO, "relay link: to %s", l->url);
    host_link__open_downlink(l);
    host_link__pump(l);
    host_link__send_ack(l);
}

void host_link_kick(host_link_t *l)
{
    host_link__pump(l);
}

int host_link_ack(host_link_t *l, const char *cursor)
{
    if (cursor == NULL || !host_link__is_cursor(cursor))
        return cr_error_set(CR_EENVELOPE, "cursor", "not a stream id"), -1;
    snprintf(l->ack_want, sizeof(l->ack_want), "%s", cursor);
    host_link__send_ack(l);
    return 0;
}

void host_link_status(const host_link_t *l, host_link_status_t *out)
{
    memset(out, 0, sizeof(*out));
    out->state = l->closing ? HOST_LINK_STOPPED : l->state;
    out->uplink_retrying = l->up_retry.armed;
    memcpy(out->last_error, l->last_error, sizeof(out->last_error));
    out->backlog = l->cbs.backlog != NULL ? l->cbs.backlog(l->data) : l->nitems;
    out->events_acked = l->events_acked;
    out->events_rejected = l->events_rejected;
    out->actions_in = l->actions_in;
    memcpy(out->cursor, l->cursor, sizeof(out->cursor));
}

static void host_link__maybe_free(host_link_t *l)
{
    void (*on_closed)(void *) = l->on_closed;
    void *data = l->closed_data;
    if (l->closes_pending > 0)
        return;
    sodium_free(l->token); /* wipes it */
    free(l->ca_file);
    free(l->spans);
    free(l->items);
    cr_reader_free(&l->reader);
    free(l);
    if (on_closed != NULL)
        on_closed(data);
}

static void host_link__on_handle_closed(uv_handle_t *h)
{
    host_link_t *l = h->data;
    --l->closes_pending;
    host_link__maybe_free(l);
}

static void host_link__on_http_closed(void *data)
{
    host_link_t *l = data;
    --l->closes_pending;
    host_link__maybe_free(l);
}

void host_link_free(host_link_t *l, void (*on_closed)(void *data), void *data)
{
    if (l->closing)
        return;
    l->closing = 1;
    l->state = HOST_LINK_STOPPED;
    l->on_closed = on_closed;
    l->closed_data = data;
    l->closes_pending = 4;
    uv_close((uv_handle_t *)&l->up_retry.timer, host_link__on_handle_closed);
    uv_close((uv_handle_t *)&l->dl_retry.timer, host_link__on_handle_closed);
    uv_close((uv_handle_t *)&l->ack_retry.timer, host_link__on_handle_closed);
    cr_http_close(l->http, host_link__on_http_closed, l); /* requests in flight end now; their cbs see closing */
}
