/* fake_push.c — corral-fake-push: local fakes of Apple's APNs, Google's FCM HTTP v1 (with its OAuth2 token endpoint)
 * and a Web Push service on one TLS listener (h2o on libuv, ALPN h2 and http/1.1), for integration tests and
 * benchmarks of the relay's push gateway. This file: flags, TLS accept, routing, the log, counters, scripts and the
 * /_fake/ control endpoints. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "fake.h"
#include "corral/query.h"
#include "fake_crypto.h"
#include "corral/codec.h"
#include "corral/error.h"
#include "corral/json.h"
#include <errno.h>
#include <h2o/http1.h>
#include <h2o/http2.h>
#include <h2o/socket/uv-binding.h>
#include <msgpack.h>
#include <openssl/err.h>
#include <openssl/rand.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <uv.h>

#define PROGRAM "corral-fake-push"
#define MAX_ENTITY (1 << 20)      /* h2o answers larger bodies itself with a plain 413 */
#define REC_MAX (256 << 10)       /* bytes of one log entry */
#define LOG_PAGE_MAX 10000        /* entries in one GET /_fake/log */
#define SCRIPTS_MAX 1024
#define REASONS_MAX 256
#define SNIFF_TIMEOUT_MS 10000    /* TLS handshake and the first request line of an HTTP/1 connection */
#define SNIFF_MAX 8192

fk_config_t fk_conf;
const char *const fk_provider_names[FK_NPROVIDERS] = {"apns", "fcm", "oauth", "webpush", "control"};

static struct {
    uv_loop_t *loop;
    uv_tcp_t listener;
    uv_signal_t sig_term, sig_int;
    uv_timer_t stop_timer;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    SSL_CTX *ssl;
    char cert[PATH_MAX], key[PATH_MAX];
} srv;

/* ---- the log, counters and scripts ---------------------------------------------------------------------------- */

static struct {
    char **items;       /* entry n lives at (n - 1) % cap */
    uint32_t *lens;
    size_t cap;
    uint64_t last;      /* n of the newest entry; 0 before the first */
    uint64_t first;     /* n of the oldest entry kept; last + 1 when empty */
} ring;

static struct {
    uint64_t total;
    uint64_t by_status[FK_NPROVIDERS][600];
    struct {
        int provider;
        char reason[64];
        uint64_t count;
    } reasons[REASONS_MAX];
    size_t nreasons;
} stats;

static fk_script_t scripts[SCRIPTS_MAX];
static size_t nscripts;
static cr_buf_t rec_buf;

int64_t fk_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000000000 + ts.tv_nsec;
}

static void count(int provider, int status, const char *reason)
{
    ++stats.total;
    ++stats.by_status[provider][status >= 0 && status < 600 ? status : 0];
    if (reason == NULL || reason[0] == '\0')
        return;
    for (size_t i = 0; i < stats.nreasons; ++i)
        if (stats.reasons[i].provider == provider && strcmp(stats.reasons[i].reason, reason) == 0) {
            ++stats.reasons[i].count;
            return;
        }
    if (stats.nreasons < REASONS_MAX) {
        stats.reasons[stats.nreasons].provider = provider;
        snprintf(stats.reasons[stats.nreasons].reason, sizeof(stats.reasons[0].reason), "%s", reason);
        stats.reasons[stats.nreasons++].count = 1;
    }
}

/* Adds one entry to the log: members ("key":value, each followed by a comma) then status, reason, t_ns, http. */
static void record(int provider, const char *members, size_t mlen, int status, const char *reason, int64_t t_ns, int http)
{
    char head[64], tail[256];
    cr_buf_t b;
    int hn, tn;
    size_t slot;
    count(provider, status, reason);
    if (ring.cap == 0)
        return;
    hn = snprintf(head, sizeof(head), "{\"n\":%llu,\"provider\":\"%s\",", (unsigned long long)(ring.last + 1),
                  fk_provider_names[provider]);
    cr_buf_init(&b, REC_MAX + sizeof(head) + sizeof(tail) + 256);
    tn = snprintf(tail, sizeof(tail), "\"status\":%d,\"reason\":", status);
    if (cr_buf_append(&b, head, (size_t)hn) != 0 || cr_buf_append(&b, members, mlen) != 0 ||
        cr_buf_append(&b, tail, (size_t)tn) != 0)
        goto fail;
    fk_json_str(&b, reason != NULL ? reason : "", reason != NULL ? strlen(reason) : 0);
    tn = snprintf(tail, sizeof(tail), ",\"t_ns\":%lld,\"http\":%d}", (long long)t_ns, http);
    if (cr_buf_append(&b, tail, (size_t)tn) != 0)
        goto fail;
    ++ring.last;
    slot = (size_t)((ring.last - 1) % ring.cap);
    free(ring.items[slot]); /* the oldest, when the ring is full */
    ring.items[slot] = b.base;
    ring.lens[slot] = (uint32_t)b.len;
    if (ring.last - ring.first >= ring.cap)
        ring.first = ring.last - ring.cap + 1;
    return;
fail:
    cr_buf_free(&b);
}

static void log_clear(void)
{
    for (size_t i = 0; i < ring.cap; ++i) {
        free(ring.items[i]);
        ring.items[i] = NULL;
    }
    ring.first = ring.last + 1; /* n keeps counting: a reader's since= stays meaningful */
}

int fk_script_take(int provider, const char *id, size_t idlen, fk_script_t *out)
{
    for (size_t i = 0; i < nscripts; ++i) {
        fk_script_t *s = &scripts[i];
        if (s->provider != provider ||
            !(strcmp(s->match, "*") == 0 || (strlen(s->match) == idlen && memcmp(s->match, id, idlen) == 0)))
            continue;
        *out = *s;
        if (s->times > 0 && --s->times == 0) {
            memmove(s, s + 1, (nscripts - i - 1) * sizeof(*s));
            --nscripts;
        }
        return 1;
    }
    return 0;
}

/* ---- JSON ---------------------------------------------------------------------------------------------------- */

static const cr_limits_t fake_limits = {
    .max_envelope = MAX_ENTITY, .max_string = MAX_ENTITY, .max_bin = MAX_ENTITY, .max_patch = MAX_ENTITY,
    .max_audio = MAX_ENTITY, .max_message_text = MAX_ENTITY, .max_batch_events = 1, .max_batch_bytes = MAX_ENTITY,
    .max_elements = 4096, .max_depth = 32,
};

void fk_json_str(cr_buf_t *b, const char *s, size_t n)
{
    static const char hex[] = "0123456789abcdef";
    int utf8 = cr_utf8_valid(s, n);
    size_t run = 0;
    if (cr_buf_reserve(b, n + 2) != 0)
        return;
    cr_buf_append(b, "\"", 1);
    for (size_t i = 0; i < n; ++i) {
        unsigned char c = (unsigned char)s[i];
        char esc[6];
        size_t elen = 0;
        if (c == '"' || c == '\\') {
            esc[0] = '\\', esc[1] = (char)c, elen = 2;
        } else if (c < 0x20 || c == 0x7f || (c >= 0x80 && !utf8)) {
            esc[0] = '\\', esc[1] = 'u', esc[2] = '0', esc[3] = '0', esc[4] = hex[c >> 4], esc[5] = hex[c & 15], elen = 6;
        } else {
            ++run;
            continue;
        }
        cr_buf_append(b, s + i - run, run);
        run = 0;
        cr_buf_append(b, esc, elen);
    }
    cr_buf_append(b, s + n - run, run);
    cr_buf_append(b, "\"", 1);
}

int fk_json_parse(cr_buf_t *mp, const char *json, size_t len)
{
    return cr_json_to_msgpack(mp, json, len, &fake_limits) == 0 ? 0 : -1;
}

int fk_mp_str(const char *mp, size_t len, const char *key, cr_span_t *out)
{
    cr_span_t v;
    cr_mp_item_t it;
    if (cr_mp_map_get(mp, len, key, &v) != 0)
        return -1;
    if (cr_mp_read(v.base, v.base + v.len, &it) == 0 || it.type != MSGPACK_OBJECT_STR)
        return -2;
    *out = it.bytes;
    return 0;
}

int fk_mp_num(const char *mp, size_t len, const char *key, double *out)
{
    cr_span_t v;
    cr_mp_item_t it;
    if (cr_mp_map_get(mp, len, key, &v) != 0)
        return -1;
    if (cr_mp_read(v.base, v.base + v.len, &it) == 0)
        return -2;
    if (it.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        *out = (double)it.u;
    else if (it.type == MSGPACK_OBJECT_NEGATIVE_INTEGER)
        *out = (double)it.i;
    else if (it.type == MSGPACK_OBJECT_FLOAT32 || it.type == MSGPACK_OBJECT_FLOAT64)
        *out = it.f;
    else
        return -2;
    return 0;
}

void fk_random_b64url(char *out, size_t n)
{
    unsigned char raw[64];
    if (n > sizeof(raw))
        n = sizeof(raw);
    if (RAND_bytes(raw, (int)n) != 1)
        abort(); /* no randomness: nothing sensible to answer with */
    cr_base64url_encode(out, raw, n);
}

/* ---- requests and responses ---------------------------------------------------------------------------------- */

int fk_header(const fk_req_t *r, const char *name, h2o_iovec_t *out)
{
    size_t nlen = strlen(name);
    ssize_t i = h2o_find_header_by_str(&r->req->headers, name, nlen, -1);
    int n = 0;
    *out = h2o_iovec_init(NULL, 0);
    if (i < 0)
        return 0;
    *out = r->req->headers.entries[i].value;
    do
        ++n;
    while ((i = h2o_find_header_by_str(&r->req->headers, name, nlen, i)) >= 0);
    return n;
}

void fk_add_header(fk_req_t *r, const char *name, const char *value, size_t value_len)
{
    h2o_req_t *req = r->req;
    h2o_iovec_t v = h2o_strdup(&req->pool, value, value_len);
    h2o_add_header_by_str(&req->pool, &req->res.headers, name, strlen(name), 1, NULL, v.base, v.len);
}

static void rec_key(fk_req_t *r, const char *key)
{
    cr_buf_append(r->rec, "\"", 1);
    cr_buf_append(r->rec, key, strlen(key));
    cr_buf_append(r->rec, "\":", 2);
}

/* Whether n more bytes of JSON fit in the entry; when they do not, the entry gets "<key>_len": n instead. */
static int rec_fits(fk_req_t *r, const char *key, size_t n)
{
    if (r->rec->len + n + strlen(key) + 64 <= REC_MAX)
        return 1;
    if (r->rec->len + strlen(key) + 64 <= REC_MAX)
        cr_buf_appendf(r->rec, "\"%s_len\":%zu,", key, n);
    return 0;
}

void fk_rec_str(fk_req_t *r, const char *key, const char *s, size_t n)
{
    if (r->rec == NULL || !rec_fits(r, key, 6 * n + 2))
        return;
    rec_key(r, key);
    fk_json_str(r->rec, s, n);
    cr_buf_append(r->rec, ",", 1);
}

void fk_rec_int(fk_req_t *r, const char *key, long long v)
{
    if (r->rec == NULL || !rec_fits(r, key, 24))
        return;
    rec_key(r, key);
    cr_buf_appendf(r->rec, "%lld,", v);
}

void fk_rec_json(fk_req_t *r, const char *key, const char *json, size_t n)
{
    if (r->rec == NULL || !rec_fits(r, key, n))
        return;
    rec_key(r, key);
    cr_buf_append(r->rec, json, n);
    cr_buf_append(r->rec, ",", 1);
}

void fk_rec_bytes(fk_req_t *r, const char *key, const void *p, size_t n)
{
    char k[64], *b64;
    if (r->rec == NULL)
        return;
    if (cr_utf8_valid(p, n)) {
        fk_rec_str(r, key, p, n);
        return;
    }
    if ((b64 = malloc(cr_base64url_encoded_len(n))) == NULL)
        return;
    cr_base64url_encode(b64, p, n);
    snprintf(k, sizeof(k), "%s_b64", key);
    fk_rec_str(r, k, b64, strlen(b64));
    free(b64);
}

void fk_rec_headers(fk_req_t *r, const char *const *names)
{
    int any = 0;
    if (r->rec == NULL || r->rec->len + 65536 > REC_MAX)
        return;
    rec_key(r, "headers");
    cr_buf_append(r->rec, "{", 1);
    for (size_t i = 0; names[i] != NULL; ++i) {
        h2o_iovec_t v;
        if (fk_header(r, names[i], &v) == 0)
            continue;
        if (any)
            cr_buf_append(r->rec, ",", 1);
        fk_json_str(r->rec, names[i], strlen(names[i]));
        cr_buf_append(r->rec, ":", 1);
        fk_json_str(r->rec, v.base, v.len < 1024 ? v.len : 1024); /* the log shows at most 1 KiB of a header */
        any = 1;
    }
    cr_buf_append(r->rec, "},", 2);
}

static const char *reason_phrase(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 410: return "Gone";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 500: return "Internal Server Error";
    case 503: return "Service Unavailable";
    case 505: return "HTTP Version Not Supported";
    default: return "Status";
    }
}

void fk_respond(fk_req_t *r, int status, const char *reason, const char *ctype, const char *body, size_t len)
{
    h2o_req_t *req = r->req;
    int http = req->version >= 0x200 ? 2 : 1;
    if (r->provider != FK_CONTROL) {
        record(r->provider, r->rec != NULL ? r->rec->base : "", r->rec != NULL ? r->rec->len : 0, status, reason, r->t_ns,
               http);
        if (fk_conf.verbose)
            fprintf(stderr, PROGRAM ": %s %.*s %.*s -> %d %s\n", fk_provider_names[r->provider], (int)req->method.len,
                    req->method.base, (int)r->path.len, r->path.base, status, reason != NULL ? reason : "");
    }
    req->res.status = status;
    req->res.reason = reason_phrase(status);
    if (ctype != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype, strlen(ctype));
    if (http == 1)
        req->http1_is_persistent = 0; /* one request per HTTP/1 connection: the next one is looked at before h2o */
    h2o_send_inline(req, body, len);
}

static void respond_json(fk_req_t *r, int status, const char *json)
{
    fk_respond(r, status, NULL, "application/json", json, strlen(json));
}

static void respond_buf(fk_req_t *r, int status, const cr_buf_t *b)
{
    fk_respond(r, status, NULL, "application/json", b->base, b->len);
}

/* ---- control endpoints (/_fake/) ----------------------------------------------------------------------------- */

/* The value of query parameter name (not decoded), or NULL. */
static const char *query(fk_req_t *r, const char *name, size_t *len)
{
    h2o_req_t *req = r->req;
    cr_span_t v;
    /* only "name=value": a bare name counts as absent here */
    if (req->query_at == SIZE_MAX ||
        cr_query_param(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1, name, &v) != 1)
        return NULL;
    *len = v.len;
    return v.base;
}

static long long query_num(fk_req_t *r, const char *name, long long def)
{
    size_t len;
    const char *v = query(r, name, &len);
    char tmp[32];
    if (v == NULL || len == 0 || len >= sizeof(tmp))
        return def;
    memcpy(tmp, v, len);
    tmp[len] = '\0';
    return strtoll(tmp, NULL, 10);
}

static void control_log(fk_req_t *r)
{
    long long since = query_num(r, "since", 0), limit = query_num(r, "limit", 1000);
    size_t plen = 0;
    const char *prov = query(r, "provider", &plen);
    uint64_t n = since < 0 ? 1 : (uint64_t)since + 1;
    cr_buf_t b;
    int first = 1, given = 0;
    if (limit <= 0 || limit > LOG_PAGE_MAX)
        limit = LOG_PAGE_MAX;
    if (n < ring.first)
        n = ring.first;
    cr_buf_init(&b, (size_t)LOG_PAGE_MAX * (REC_MAX + 512));
    cr_buf_appendf(&b, "{\"first\":%llu,\"last\":%llu,\"entries\":[", (unsigned long long)ring.first,
                   (unsigned long long)ring.last);
    for (; n <= ring.last && given < limit; ++n) {
        size_t slot = (size_t)((n - 1) % ring.cap);
        const char *e = ring.items[slot];
        if (e == NULL)
            continue;
        if (prov != NULL) {
            char want[48];
            int wn = snprintf(want, sizeof(want), "\"provider\":\"%.*s\",", (int)(plen < 16 ? plen : 16), prov);
            if (memmem(e, ring.lens[slot] < 96 ? ring.lens[slot] : 96, want, (size_t)wn) == NULL)
                continue;
        }
        if (!first)
            cr_buf_append(&b, ",", 1);
        cr_buf_append(&b, e, ring.lens[slot]);
        first = 0;
        ++given;
    }
    cr_buf_append(&b, "]}", 2);
    respond_buf(r, 200, &b);
    cr_buf_free(&b);
}

static void control_stats(fk_req_t *r)
{
    cr_buf_t b;
    cr_buf_init(&b, 1 << 20);
    cr_buf_appendf(&b, "{\"total\":%llu,\"providers\":{", (unsigned long long)stats.total);
    for (int p = 0; p < FK_CONTROL; ++p) {
        uint64_t total = 0;
        int any = 0;
        for (int s = 0; s < 600; ++s)
            total += stats.by_status[p][s];
        cr_buf_appendf(&b, "%s\"%s\":{\"total\":%llu,\"status\":{", p > 0 ? "," : "", fk_provider_names[p],
                       (unsigned long long)total);
        for (int s = 0; s < 600; ++s)
            if (stats.by_status[p][s] != 0) {
                cr_buf_appendf(&b, "%s\"%d\":%llu", any ? "," : "", s, (unsigned long long)stats.by_status[p][s]);
                any = 1;
            }
        cr_buf_append(&b, "},\"reason\":{", 12);
        any = 0;
        for (size_t i = 0; i < stats.nreasons; ++i)
            if (stats.reasons[i].provider == p) {
                if (any)
                    cr_buf_append(&b, ",", 1);
                fk_json_str(&b, stats.reasons[i].reason, strlen(stats.reasons[i].reason));
                cr_buf_appendf(&b, ":%llu", (unsigned long long)stats.reasons[i].count);
                any = 1;
            }
        cr_buf_append(&b, "}}", 2);
    }
    cr_buf_appendf(&b, "},\"log\":{\"first\":%llu,\"last\":%llu,\"capacity\":%zu},\"scripts\":%zu}",
                   (unsigned long long)ring.first, (unsigned long long)ring.last, ring.cap, nscripts);
    respond_buf(r, 200, &b);
    cr_buf_free(&b);
}

static void control_error(fk_req_t *r, int status, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void control_error(fk_req_t *r, int status, const char *fmt, ...)
{
    char msg[256];
    cr_buf_t b;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cr_buf_init(&b, 4096);
    cr_buf_append(&b, "{\"error\":", 9);
    fk_json_str(&b, msg, strlen(msg));
    cr_buf_append(&b, "}", 1);
    respond_buf(r, status, &b);
    cr_buf_free(&b);
}

static int span_to(char *out, size_t outlen, cr_span_t s)
{
    if (s.len >= outlen || memchr(s.base, '\0', s.len) != NULL)
        return -1;
    memcpy(out, s.base, s.len);
    out[s.len] = '\0';
    return 0;
}

static void control_script(fk_req_t *r)
{
    cr_buf_t mp;
    cr_span_t s;
    double num;
    fk_script_t sc = {.provider = -1, .match = "*", .retry_after = -1, .timestamp = -1, .times = 1};
    int rc;
    cr_buf_init(&mp, 1 << 16);
    if (fk_json_parse(&mp, r->req->entity.base, r->req->entity.len) != 0) {
        control_error(r, 400, "the body must be a JSON object: %s", cr_error_last()->message);
        goto done;
    }
    if (fk_mp_str(mp.base, mp.len, "provider", &s) == 0)
        for (int p = 0; p < FK_CONTROL; ++p)
            if (cr_span_eq(s, fk_provider_names[p], strlen(fk_provider_names[p])))
                sc.provider = p;
    if (sc.provider < 0) {
        control_error(r, 400, "provider must be apns, fcm, oauth or webpush");
        goto done;
    }
    if ((rc = fk_mp_str(mp.base, mp.len, "match", &s)) == -2 || (rc == 0 && span_to(sc.match, sizeof(sc.match), s) != 0)) {
        control_error(r, 400, "match must be a string (a token, a subscription id or \"*\")");
        goto done;
    }
    if (fk_mp_num(mp.base, mp.len, "status", &num) != 0 || num < 100 || num > 599) {
        control_error(r, 400, "status must be an HTTP status (100-599)");
        goto done;
    }
    sc.status = (int)num;
    if ((rc = fk_mp_str(mp.base, mp.len, "reason", &s)) == -2 || (rc == 0 && span_to(sc.reason, sizeof(sc.reason), s) != 0)) {
        control_error(r, 400, "reason must be a string");
        goto done;
    }
    if ((rc = fk_mp_num(mp.base, mp.len, "retry_after", &num)) == -2 || (rc == 0 && num < 0)) {
        control_error(r, 400, "retry_after must be seconds (>= 0)");
        goto done;
    }
    if (rc == 0)
        sc.retry_after = (long)num;
    if ((rc = fk_mp_num(mp.base, mp.len, "timestamp", &num)) == -2 || (rc == 0 && num < 0)) {
        control_error(r, 400, "timestamp must be milliseconds since the epoch");
        goto done;
    }
    if (rc == 0)
        sc.timestamp = (long long)num;
    if ((rc = fk_mp_num(mp.base, mp.len, "times", &num)) == -2 || (rc == 0 && (num == 0 || num < -1))) {
        control_error(r, 400, "times must be a count (>= 1) or -1 for forever");
        goto done;
    }
    if (rc == 0)
        sc.times = (long)num;
    if (nscripts == SCRIPTS_MAX) {
        control_error(r, 400, "%d scripts are queued already", SCRIPTS_MAX);
        goto done;
    }
    scripts[nscripts++] = sc;
    {
        char out[64];
        snprintf(out, sizeof(out), "{\"queued\":%zu}", nscripts);
        respond_json(r, 200, out);
    }
done:
    cr_buf_free(&mp);
}

static void control_reset(fk_req_t *r)
{
    log_clear();
    memset(&stats, 0, sizeof(stats));
    nscripts = 0;
    fk_apns_reset();
    fk_fcm_reset();
    respond_json(r, 200, "{\"reset\":true}");
}

static void control(fk_req_t *r)
{
    static const struct {
        const char *method, *path;
        void (*fn)(fk_req_t *r);
    } routes[] = {
        {"GET", "/_fake/log", control_log},
        {"GET", "/_fake/stats", control_stats},
        {"POST", "/_fake/script", control_script},
        {"POST", "/_fake/reset", control_reset},
        {"POST", "/_fake/webpush/subscribe", fk_webpush_subscribe},
        {"POST", "/_fake/unsubscribe", fk_webpush_unsubscribe},
    };
    h2o_req_t *req = r->req;
    int known = 0;
    if (h2o_memis(r->path.base, r->path.len, H2O_STRLIT("/_fake/health"))) {
        respond_json(r, 200, "{\"ok\":true}");
        return;
    }
    for (size_t i = 0; i < sizeof(routes) / sizeof(routes[0]); ++i) {
        if (!h2o_memis(r->path.base, r->path.len, routes[i].path, strlen(routes[i].path)))
            continue;
        known = 1;
        if (h2o_memis(req->method.base, req->method.len, routes[i].method, strlen(routes[i].method))) {
            routes[i].fn(r);
            return;
        }
    }
    if (known)
        control_error(r, 405, "%.*s is not allowed here", (int)req->method.len, req->method.base);
    else
        control_error(r, 404, "no such endpoint");
}

static int has_prefix(h2o_iovec_t s, const char *prefix)
{
    size_t n = strlen(prefix);
    return s.len >= n && memcmp(s.base, prefix, n) == 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    fk_req_t r = {.req = req, .provider = FK_CONTROL, .t_ns = fk_now_ns(), .now_s = (int64_t)time(NULL)};
    r.path = h2o_iovec_init(req->path.base, req->query_at != SIZE_MAX ? req->query_at : req->path.len);
    if (has_prefix(r.path, "/3/"))
        r.provider = FK_APNS;
    else if (h2o_memis(r.path.base, r.path.len, H2O_STRLIT("/token")))
        r.provider = FK_OAUTH;
    else if (has_prefix(r.path, "/v1/projects/"))
        r.provider = FK_FCM;
    else if (has_prefix(r.path, "/push/"))
        r.provider = FK_WEBPUSH;
    if (r.provider != FK_CONTROL && ring.cap > 0) {
        rec_buf.len = 0;
        r.rec = &rec_buf;
        fk_rec_str(&r, "method", req->method.base, req->method.len);
        fk_rec_str(&r, "path", r.path.base, r.path.len);
    }
    switch (r.provider) {
    case FK_APNS:
        fk_apns_handle(&r);
        break;
    case FK_OAUTH:
        fk_oauth_handle(&r);
        break;
    case FK_FCM:
        fk_fcm_handle(&r);
        break;
    case FK_WEBPUSH:
        fk_webpush_handle(&r);
        break;
    default:
        control(&r);
        break;
    }
    (void)self;
    return 0;
}

/* ---- TLS accept: HTTP/2 by ALPN; HTTP/1 connections are looked at first --------------------------------------- */

/* APNs speaks HTTP/2 only. A client that speaks HTTP/1.1 to it gets what an HTTP/2-only server sends to bytes that
 * are not the HTTP/2 preface: its SETTINGS, a GOAWAY with PROTOCOL_ERROR, and a closed connection; no HTTP/1
 * response (curl reports an HTTP/0.9 or protocol error). So the first request line of every HTTP/1 connection is
 * read here before h2o sees it (and each HTTP/1 connection carries one request: see fk_respond). */
static const char h2_refusal[] = {0, 0, 0, 4, 0, 0, 0, 0, 0,                   /* SETTINGS, empty */
                                  0, 0, 8, 7, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1}; /* GOAWAY(0, PROTOCOL_ERROR) */

typedef struct st_fk_conn_t {
    uv_timer_t timer;
    h2o_socket_t *sock;
    struct timeval connected_at;
} fk_conn_t;

static void on_conn_timer_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Ends our watch over a connection (the socket lives on, or was closed by the caller). */
static void conn_release(fk_conn_t *c)
{
    c->sock->data = NULL;
    uv_timer_stop(&c->timer);
    uv_close((uv_handle_t *)&c->timer, on_conn_timer_closed);
}

static void on_conn_timeout(uv_timer_t *t)
{
    fk_conn_t *c = t->data;
    h2o_socket_t *sock = c->sock;
    conn_release(c);
    h2o_socket_close(sock);
}

static void on_refusal_written(h2o_socket_t *sock, const char *err)
{
    h2o_socket_close(sock);
}

static void on_sniff(h2o_socket_t *sock, const char *err)
{
    fk_conn_t *c = sock->data;
    const char *buf = sock->input->bytes, *sp, *nl;
    size_t size = sock->input->size;
    struct timeval at = c->connected_at;
    if (err != NULL) {
        conn_release(c);
        h2o_socket_close(sock);
        return;
    }
    if ((nl = memchr(buf, '\n', size)) == NULL && size < SNIFF_MAX)
        return; /* more to come */
    h2o_socket_read_stop(sock);
    conn_release(c);
    if (nl != NULL && (sp = memchr(buf, ' ', (size_t)(nl - buf))) != NULL && (size_t)(nl - sp) > 4 &&
        memcmp(sp + 1, "/3/", 3) == 0) {
        const char *end = memchr(sp + 1, ' ', (size_t)(nl - sp - 1));
        int64_t t = fk_now_ns();
        cr_buf_t m;
        h2o_iovec_t out = h2o_iovec_init(h2_refusal, sizeof(h2_refusal));
        cr_buf_init(&m, 8192);
        cr_buf_append(&m, "\"method\":", 9);
        fk_json_str(&m, buf, (size_t)(sp - buf));
        cr_buf_append(&m, ",\"path\":", 8);
        fk_json_str(&m, sp + 1, (size_t)((end != NULL ? end : nl) - sp - 1));
        cr_buf_append(&m, ",", 1);
        record(FK_APNS, m.base, m.len, 0, "Http2Required", t, 1);
        cr_buf_free(&m);
        h2o_socket_write(sock, &out, 1, on_refusal_written);
        return;
    }
    h2o_http1_accept(&srv.accept, sock, at);
}

static void on_handshake(h2o_socket_t *sock, const char *err)
{
    fk_conn_t *c = sock->data;
    h2o_iovec_t proto;
    struct timeval at = c->connected_at;
    if (err != NULL) {
        conn_release(c);
        h2o_socket_close(sock);
        return;
    }
    proto = h2o_socket_ssl_get_selected_protocol(sock);
    if (h2o_memis(proto.base, proto.len, H2O_STRLIT("h2"))) {
        conn_release(c);
        h2o_http2_accept(&srv.accept, sock, at);
        return;
    }
    h2o_socket_read_start(sock, on_sniff);
    if (sock->input->size != 0)
        on_sniff(sock, NULL);
}

static void on_accept(uv_stream_t *listener, int status)
{
    uv_tcp_t *tcp;
    h2o_socket_t *sock;
    fk_conn_t *c;
    if (status != 0)
        return;
    tcp = h2o_mem_alloc(sizeof(*tcp));
    uv_tcp_init(listener->loop, tcp);
    if (uv_accept(listener, (uv_stream_t *)tcp) != 0) {
        uv_close((uv_handle_t *)tcp, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(tcp, 1);
    sock = h2o_uv_socket_create((uv_stream_t *)tcp, (uv_close_cb)free);
    c = h2o_mem_alloc(sizeof(*c));
    c->sock = sock;
    c->connected_at = *h2o_get_timestamp(&srv.ctx, NULL, NULL);
    uv_timer_init(listener->loop, &c->timer);
    c->timer.data = c;
    uv_timer_start(&c->timer, on_conn_timeout, SNIFF_TIMEOUT_MS, 0);
    sock->data = c;
    h2o_socket_ssl_handshake(sock, srv.ssl, NULL, on_handshake);
}

/* ---- setup --------------------------------------------------------------------------------------------------- */

static const h2o_iovec_t alpn_protocols[] = {{(char *)"h2", 2}, {(char *)"http/1.1", 8}, {NULL, 0}};

static SSL_CTX *make_ssl(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION); /* APNs: TLS 1.2 or later */
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 || SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        char err[256];
        ERR_error_string_n(ERR_get_error(), err, sizeof(err));
        fprintf(stderr, PROGRAM ": cannot load --cert %s / --key %s: %s\n", cert, key, err);
        SSL_CTX_free(ctx);
        return NULL;
    }
    h2o_ssl_register_alpn_protocols(ctx, alpn_protocols);
    return ctx;
}

static void on_stop_timer(uv_timer_t *t)
{
    uv_stop(t->loop);
}

static void on_signal(uv_signal_t *s, int signum)
{
    uv_signal_stop(&srv.sig_term);
    uv_signal_stop(&srv.sig_int);
    uv_close((uv_handle_t *)&srv.listener, NULL);
    h2o_context_request_shutdown(&srv.ctx); /* GOAWAY to HTTP/2 clients */
    uv_timer_init(srv.loop, &srv.stop_timer);
    uv_timer_start(&srv.stop_timer, on_stop_timer, 100, 0);
    (void)signum;
}

static int listen_on(const char *addr_s)
{
    char host[64];
    const char *colon = strrchr(addr_s, ':');
    struct sockaddr_in sin;
    int port, rc;
    if (colon == NULL || (size_t)(colon - addr_s) >= sizeof(host) || sscanf(colon + 1, "%d", &port) != 1 || port < 0 ||
        port > 65535) {
        fprintf(stderr, PROGRAM ": --listen must be IPv4:PORT, got '%s'\n", addr_s);
        return -1;
    }
    memcpy(host, addr_s, (size_t)(colon - addr_s));
    host[colon - addr_s] = '\0';
    if (uv_ip4_addr(host, port, &sin) != 0) {
        fprintf(stderr, PROGRAM ": --listen: '%s' is not an IPv4 address\n", host);
        return -1;
    }
    uv_tcp_init(srv.loop, &srv.listener);
    if ((rc = uv_tcp_bind(&srv.listener, (struct sockaddr *)&sin, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&srv.listener, 1024, on_accept)) != 0) {
        fprintf(stderr, PROGRAM ": cannot listen on %s: %s\n", addr_s, uv_strerror(rc));
        return -1;
    }
    return 0;
}

/* ---- flags --------------------------------------------------------------------------------------------------- */

static const struct {
    const char *name, *arg, *help;
} flags[] = {
    {"--listen", "IP:PORT", "where to listen (TLS; ALPN h2 and http/1.1), e.g. 127.0.0.1:8443 (required)"},
    {"--cert", "PEM", "the TLS certificate chain (required)"},
    {"--key", "PEM", "the TLS private key (required)"},
    {"--origin", "URL", "this service's origin: Web Push endpoints and the VAPID audience (default https://LISTEN)"},
    {"--apns-key", "PEM", "APNs: the provider key's public half, or the .p8 itself (enables APNs)"},
    {"--apns-key-id", "ID", "APNs: the key id the JWT's kid must name"},
    {"--apns-team-id", "ID", "APNs: the team id the JWT's iss must name"},
    {"--apns-topic", "TOPIC", "APNs: the app's bundle id, the one topic allowed (with the push types' suffixes)"},
    {"--apns-token-min-interval", "SECONDS", "APNs: a new provider token at most this often, else 429 (default 1200)"},
    {"--fcm-account", "JSON", "FCM: a service-account file; assertions verify with its key (enables FCM)"},
    {"--fcm-project", "ID", "FCM: the project messages:send accepts (default the account's project_id)"},
    {"--fcm-token-ttl", "SECONDS", "FCM: lifetime of the access tokens /token issues (default 3599)"},
    {"--log-size", "N", "requests kept for GET /_fake/log (default 10000; 0 keeps only the counters)"},
    {"--verbose", NULL, "one line on stderr per push request"},
    {"--help", NULL, "print this help"},
};

static void usage(FILE *fp)
{
    fprintf(fp, "Usage: " PROGRAM " --listen IP:PORT --cert PEM --key PEM [options]\n\n"
                "Local fakes of APNs (POST /3/device/<token>, HTTP/2 only), FCM HTTP v1 (POST /token, POST\n"
                "/v1/projects/<project>/messages:send) and a Web Push service (POST /push/<id>) that check requests as\n"
                "the real services do and answer with their errors. Control: GET /_fake/log?since=N&limit=M&provider=P,\n"
                "GET /_fake/stats, POST /_fake/script, POST /_fake/webpush/subscribe, POST /_fake/unsubscribe,\n"
                "POST /_fake/reset, GET /_fake/health.\n\nOptions:\n");
    for (size_t i = 0; i < sizeof(flags) / sizeof(flags[0]); ++i) {
        char lhs[64];
        snprintf(lhs, sizeof(lhs), "%s%s%s", flags[i].name, flags[i].arg != NULL ? " " : "",
                 flags[i].arg != NULL ? flags[i].arg : "");
        fprintf(fp, "  %-34s %s\n", lhs, flags[i].help);
    }
}

static int parse_num(const char *flag, const char *v, long long min, long long *out)
{
    char *end;
    errno = 0;
    *out = strtoll(v, &end, 10);
    if (errno != 0 || *end != '\0' || end == v || *out < min) {
        fprintf(stderr, PROGRAM ": %s needs a number >= %lld, got '%s'\n", flag, min, v);
        return -1;
    }
    return 0;
}

static int parse_flags(int argc, char **argv, const char **apns_key, const char **fcm_account)
{
    long long n;
    for (int i = 1; i < argc; ++i) {
        const char *f = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 0;
        if (strcmp(f, "--help") == 0) {
            usage(stdout);
            return 1;
        }
        if (strcmp(f, "--verbose") == 0) {
            fk_conf.verbose = 1;
            continue;
        }
        for (size_t k = 0; k < sizeof(flags) / sizeof(flags[0]); ++k)
            if (strcmp(f, flags[k].name) == 0)
                takes = flags[k].arg != NULL;
        if (!takes) {
            fprintf(stderr, PROGRAM ": unknown flag '%s' (see --help)\n", f);
            return -1;
        }
        if (v == NULL) {
            fprintf(stderr, PROGRAM ": %s needs a value\n", f);
            return -1;
        }
        ++i;
#define STR(flag, dst)                                                                                                   \
    if (strcmp(f, flag) == 0) {                                                                                          \
        if (strlen(v) >= sizeof(dst)) {                                                                                  \
            fprintf(stderr, PROGRAM ": %s is too long\n", flag);                                                         \
            return -1;                                                                                                   \
        }                                                                                                                \
        strcpy(dst, v);                                                                                                  \
        continue;                                                                                                        \
    }
        STR("--listen", fk_conf.listen)
        STR("--cert", srv.cert)
        STR("--key", srv.key)
        STR("--origin", fk_conf.origin)
        STR("--apns-key-id", fk_conf.apns_key_id)
        STR("--apns-team-id", fk_conf.apns_team_id)
        STR("--apns-topic", fk_conf.apns_topic)
        STR("--fcm-project", fk_conf.fcm_project)
#undef STR
        if (strcmp(f, "--apns-key") == 0) {
            *apns_key = v;
        } else if (strcmp(f, "--fcm-account") == 0) {
            *fcm_account = v;
        } else if (strcmp(f, "--apns-token-min-interval") == 0) {
            if (parse_num(f, v, 0, &n) != 0)
                return -1;
            fk_conf.apns_token_min_interval_s = n;
        } else if (strcmp(f, "--fcm-token-ttl") == 0) {
            if (parse_num(f, v, 1, &n) != 0)
                return -1;
            fk_conf.fcm_token_ttl_s = n;
        } else if (strcmp(f, "--log-size") == 0) {
            if (parse_num(f, v, 0, &n) != 0 || n > 10000000) {
                fprintf(stderr, PROGRAM ": --log-size must be 0..10000000\n");
                return -1;
            }
            fk_conf.log_size = (size_t)n;
        }
    }
    return 0;
}

int main(int argc, char **argv)
{
    const char *apns_key = NULL, *fcm_account = NULL;
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    h2o_handler_t *handler;
    int rc;

    fk_conf.apns_token_min_interval_s = 1200;
    fk_conf.fcm_token_ttl_s = 3599;
    fk_conf.log_size = 10000;
    if ((rc = parse_flags(argc, argv, &apns_key, &fcm_account)) != 0)
        return rc > 0 ? 0 : 2;
    if (fk_conf.listen[0] == '\0' || srv.cert[0] == '\0' || srv.key[0] == '\0') {
        fprintf(stderr, PROGRAM ": --listen, --cert and --key are required (see --help)\n");
        return 2;
    }
    if (fk_conf.origin[0] == '\0')
        snprintf(fk_conf.origin, sizeof(fk_conf.origin), "https://%s", fk_conf.listen);
    if (apns_key != NULL) {
        if (fk_conf.apns_key_id[0] == '\0' || fk_conf.apns_team_id[0] == '\0' || fk_conf.apns_topic[0] == '\0') {
            fprintf(stderr, PROGRAM ": --apns-key needs --apns-key-id, --apns-team-id and --apns-topic\n");
            return 2;
        }
        if ((fk_conf.apns_key = fk_load_public_pem_file(apns_key)) == NULL)
            return 2;
        if (EVP_PKEY_get_base_id(fk_conf.apns_key) != EVP_PKEY_EC || EVP_PKEY_get_bits(fk_conf.apns_key) != 256) {
            fprintf(stderr, PROGRAM ": --apns-key must be a P-256 key\n");
            return 2;
        }
    }
    if (fcm_account != NULL && fk_fcm_load_account(fcm_account) != 0)
        return 2;

    signal(SIGPIPE, SIG_IGN);
    if (fk_conf.log_size > 0) {
        ring.cap = fk_conf.log_size;
        if ((ring.items = calloc(ring.cap, sizeof(*ring.items))) == NULL ||
            (ring.lens = calloc(ring.cap, sizeof(*ring.lens))) == NULL) {
            fprintf(stderr, PROGRAM ": out of memory for a log of %zu entries\n", ring.cap);
            return 1;
        }
    }
    ring.first = 1;
    cr_buf_init(&rec_buf, REC_MAX);
    if ((srv.ssl = make_ssl(srv.cert, srv.key)) == NULL)
        return 2;

    srv.loop = uv_default_loop();
    h2o_config_init(&srv.config);
    srv.config.server_name = h2o_iovec_init(H2O_STRLIT(PROGRAM));
    srv.config.max_request_entity_size = MAX_ENTITY;
    srv.config.http2.idle_timeout = 3600 * 1000; /* a benchmark keeps one connection for its whole run */
    host = h2o_config_register_host(&srv.config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    path = h2o_config_register_path(host, "/", 0);
    handler = h2o_create_handler(path, sizeof(*handler));
    handler->on_req = on_req;
    h2o_context_init(&srv.ctx, srv.loop, &srv.config);
    srv.accept.ctx = &srv.ctx;
    srv.accept.hosts = srv.config.hosts;
    srv.accept.ssl_ctx = srv.ssl;
    if (listen_on(fk_conf.listen) != 0)
        return 1;
    uv_signal_init(srv.loop, &srv.sig_term);
    uv_signal_init(srv.loop, &srv.sig_int);
    uv_signal_start(&srv.sig_term, on_signal, SIGTERM);
    uv_signal_start(&srv.sig_int, on_signal, SIGINT);
    fprintf(stderr, PROGRAM ": listening on %s (apns: %s, fcm: %s, webpush: on)\n", fk_conf.origin,
            fk_conf.apns_key != NULL ? "on" : "off", fk_conf.fcm_key != NULL ? "on" : "off");

    uv_run(srv.loop, UV_RUN_DEFAULT);

    fprintf(stderr, PROGRAM ": stopped after %llu push requests\n", (unsigned long long)stats.total);
    log_clear();
    free(ring.items);
    free(ring.lens);
    cr_buf_free(&rec_buf);
    fk_webpush_dispose();
    fk_fcm_reset();
    EVP_PKEY_free(fk_conf.apns_key);
    EVP_PKEY_free(fk_conf.fcm_key);
    SSL_CTX_free(srv.ssl);
    return 0;
}
