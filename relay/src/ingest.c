/* ingest.c — the host uplink POST /v1/host/events: a batch of event envelopes, validated whole, then stored, deduped,
 * summarised and published by one call of relay/lua/ingest.lua, and acknowledged per session. */
#include "relay.h"
#include "push_queue.h"
#include "corral/envelope.h"
#include "corral/error.h"
#include "corral/log.h"
#include "corral/ulid.h"
#include <inttypes.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char relay_lua_ingest[];
extern const size_t relay_lua_ingest_len;
static relay_script_t ingest_script = {.name = "ingest"};

#define FIXED_KEYS 4 /* cr:{T}:seq, cr:{T}:ev, cr:{T}:sessions, cr:pushq:<n>; then two keys per session */
#define FIXED_ARGS 7 /* host, maxlen, now, channel, the number of sids; then the sids; team, n; then per event: */
#define ARGS_PER_EVENT 4     /* j, seq, e, m ('0', or '1' and SUMMARY_ARGS more) */
#define SUMMARY_ARGS 6       /* k, name, state, needs, rid, idn */
#define KEY_MAX 160  /* "cr:{" team(64) "}:sx:" sid(64) */

/* One batch between its validation and the script's answer. Every argv entry points into `arena`, into rr->body (the
 * envelopes and the strings of their bodies) or at a constant: all of it lives until the callback has run. */
typedef struct st_ingest_t {
    relay_req_t *rr;
    int nkeys, argc;
    const char **argv;
    size_t *lens;
    char *arena;
    size_t arena_used, arena_cap;
    char host[65];
} ingest_t;

static void ingest_free(ingest_t *in)
{
    free(in->argv);
    free(in->lens);
    free(in->arena);
    free(in);
}

/* Appends one argument (bytes that outlive the call). */
static void arg(ingest_t *in, const char *p, size_t n)
{
    in->argv[in->argc] = p;
    in->lens[in->argc] = n;
    ++in->argc;
}

/* Appends one argument formatted into the arena (sized by the caller for every such argument). */
static void argf(ingest_t *in, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static void argf(ingest_t *in, const char *fmt, ...)
{
    va_list ap;
    char *p = in->arena + in->arena_used;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(p, in->arena_cap - in->arena_used, fmt, ap);
    va_end(ap);
    CR_ASSERT(n >= 0 && (size_t)n < in->arena_cap - in->arena_used);
    in->arena_used += (size_t)n + 1;
    arg(in, p, (size_t)n);
}

/* The str value of `key` in the plain body map b, or an empty span. The body was validated against its kind. */
static cr_span_t body_str(const cr_body_t *b, const char *key)
{
    cr_span_t v;
    cr_mp_item_t it;
    if (b->sealed || cr_mp_map_get(b->raw.base, b->raw.len, key, &v) != 0 || cr_mp_read(v.base, v.base + v.len, &it) == 0 ||
        it.type != MSGPACK_OBJECT_STR)
        return (cr_span_t){"", 0};
    return it.bytes;
}

/* Adds m and, for an event that changes its session's summary, k, name, state, needs, rid and idn (see ingest.lua).
 * Sealed bodies reveal only their kind. */
static void summary_args(ingest_t *in, const cr_event_t *ev)
{
    cr_span_t name = {"", 0}, state = {"", 0}, rid = {"", 0};
    const char *needs = "";
    switch (ev->kind) {
    case CR_EV_SESSION_STARTED:
        name = body_str(&ev->b, "name");
        state = CR_SPAN_LIT("running");
        break;
    case CR_EV_SESSION_STATE:
        if (!ev->b.sealed) {
            state = body_str(&ev->b, "state");
            if (!cr_span_eq(state, "waiting", 7))
                needs = "c";
        }
        break;
    case CR_EV_APPROVAL_REQUEST:
    case CR_EV_QUESTION:
        rid = body_str(&ev->b, "rid");
        /* fall through */
    case CR_EV_DIFF_READY:
        needs = "s";
        state = CR_SPAN_LIT("waiting");
        break;
    case CR_EV_ACTION_APPLIED:
        needs = "c";
        break;
    case CR_EV_SESSION_DONE:
        needs = "c";
        state = CR_SPAN_LIT("done");
        break;
    default:
        break;
    }
    if (ev->pri < 2 && name.len == 0 && state.len == 0 && needs[0] == '\0' && ev->idn.len == 0) {
        arg(in, "0", 1);
        return;
    }
    arg(in, ev->pri >= 2 ? "2" : "1", 1);
    arg(in, ev->k.base, ev->k.len);
    arg(in, name.base, name.len);
    arg(in, state.base, state.len);
    arg(in, needs, strlen(needs));
    arg(in, rid.base, rid.len);
    arg(in, ev->idn.len > 0 ? ev->idn.base : "", ev->idn.len);
}

/* ---- the answer ---------------------------------------------------------------------------------------------- */

static int buf_write(void *data, const char *p, size_t n)
{
    return cr_buf_append(data, p, n) == 0 ? 0 : -1;
}

static int is_transient(const char *err)
{
    static const char *const transient[] = {"LOADING", "BUSY", "MASTERDOWN", "READONLY", "OOM", "TRYAGAIN", "CLUSTERDOWN",
                                            NULL};
    for (size_t i = 0; transient[i] != NULL; ++i)
        if (strncmp(err, transient[i], strlen(transient[i])) == 0)
            return 1;
    return 0;
}

static void on_stored(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    ingest_t *in = data;
    relay_req_t *rr = in->rr;
    relay_t *relay = rr->relay;
    msgpack_packer pk;
    cr_buf_t out;
    size_t npairs;

    if (reply == NULL) {
        /* the script may or may not have run: the host resends, and dedupe makes that safe */
        relay_respond_unavailable(rr);
        goto done;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        cr_log(CR_LOG_ERROR, "ingest.lua failed for team %s host %s: %.200s", rr->who.team, in->host, reply->str);
        if (is_transient(reply->str))
            relay_respond_unavailable(rr);
        else
            relay_respond_error(rr, 500, "internal", NULL, "the relay could not store the batch");
        goto done;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 2 || reply->element[0]->type != REDIS_REPLY_INTEGER ||
        reply->element[1]->type != REDIS_REPLY_INTEGER || (reply->elements - 2) % 2 != 0) {
        cr_log(CR_LOG_ERROR, "ingest.lua: unexpected reply (type %d) for team %s host %s", reply->type, rr->who.team,
               in->host);
        relay_respond_error(rr, 500, "internal", NULL, "the relay could not store the batch");
        goto done;
    }
    relay->metrics.events_in += (uint64_t)reply->element[0]->integer;
    relay->metrics.events_dup += (uint64_t)reply->element[1]->integer;
    cr_log(CR_LOG_DEBUG, "ingest: team %s host %s: %lld stored, %lld duplicates", rr->who.team, in->host,
           reply->element[0]->integer, reply->element[1]->integer);

    npairs = (reply->elements - 2) / 2;
    cr_buf_init(&out, 64 + npairs * 96);
    msgpack_packer_init(&pk, &out, buf_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "acked", 5);
    msgpack_pack_map(&pk, (uint32_t)npairs);
    for (size_t i = 0; i < npairs; ++i) {
        redisReply *sid = reply->element[2 + 2 * i], *seq = reply->element[3 + 2 * i];
        msgpack_pack_str_with_body(&pk, sid->str != NULL ? sid->str : "", sid->str != NULL ? sid->len : 0);
        msgpack_pack_uint64(&pk, seq->str != NULL ? strtoull(seq->str, NULL, 10) : 0);
    }
    relay_respond(rr, 200, out.base, out.len);
    cr_buf_free(&out);
done:
    ingest_free(in);
    (void)rdb;
}

/* ---- POST /v1/host/events ------------------------------------------------------------------------------------ */

static int header_mentions(h2o_req_t *req, const h2o_token_t *token, const char *needle)
{
    size_t n = strlen(needle);
    for (ssize_t i = -1; (i = h2o_find_header(&req->headers, token, i)) >= 0;) {
        h2o_iovec_t v = req->headers.entries[i].value;
        for (size_t j = 0; j + n <= v.len; ++j)
            if (strncasecmp(v.base + j, needle, n) == 0)
                return 1;
    }
    return 0;
}

/* Answers the envelope's decoding error with the envelope's index in front of the field ("3.seq"). */
static void respond_envelope_error(relay_req_t *rr, uint32_t index)
{
    const cr_error_t *e = cr_error_last();
    char field[sizeof(e->field) + 16];
    int status = e->code == CR_ETOOLARGE ? 413 : e->code == CR_ENOMEM || e->code == CR_ERR ? 500 : 400;
    if (e->field[0] != '\0')
        snprintf(field, sizeof(field), "%" PRIu32 ".%s", index, e->field);
    else
        snprintf(field, sizeof(field), "%" PRIu32, index);
    relay_respond_error(rr, status, cr_err_code(e->code), field, "envelope %" PRIu32 ": %s", index, e->message);
}

/* One envelope of the batch: what the decoder made of it, its bytes, and its session among the batch's sids. */
typedef struct st_item_t {
    cr_event_t ev;
    cr_span_t raw;
    uint32_t sidx;
} item_t;

static void on_post_events(relay_req_t *rr)
{
    relay_t *relay = rr->relay;
    const char *team = rr->who.team;
    cr_batch_t it;
    item_t *items = NULL;
    uint32_t *first = NULL; /* distinct sid -> index of its first event */
    ingest_t *in = NULL;
    size_t nsids = 0, maxargs;

    /* hosts speak msgpack: answer in msgpack unless JSON is asked for */
    rr->want_msgpack = header_mentions(rr->req, H2O_TOKEN_ACCEPT, "msgpack") ||
                       !header_mentions(rr->req, H2O_TOKEN_ACCEPT, "json");

    if (cr_batch_open(&it, rr->body.base, rr->body.len, &relay->limits) != 0) {
        relay_respond_cr_error(rr);
        return;
    }
    if (it.count == 0) {
        relay_respond(rr, 200, "\x81\xa5" "acked\x80", 8);
        return;
    }
    if ((items = calloc(it.count, sizeof(*items))) == NULL || (first = calloc(it.count, sizeof(*first))) == NULL)
        goto nomem;
    /* validate all first: one bad envelope refuses the whole batch and nothing of it is stored */
    for (uint32_t i = 0; i < it.count; ++i) {
        item_t *x = &items[i];
        size_t j;
        if (!cr_batch_next(&it, &x->raw) || cr_event_decode(&x->ev, x->raw.base, x->raw.len, &relay->limits) != 0) {
            respond_envelope_error(rr, i);
            goto done;
        }
        for (j = 0; j < nsids; ++j) {
            cr_span_t o = items[first[j]].ev.sid;
            if (o.len == x->ev.sid.len && memcmp(o.base, x->ev.sid.base, o.len) == 0)
                break;
        }
        if (j == nsids)
            first[nsids++] = i;
        x->sidx = (uint32_t)j;
    }

    if ((in = calloc(1, sizeof(*in))) == NULL)
        goto nomem;
    in->rr = rr;
    in->nkeys = FIXED_KEYS + 2 * (int)nsids;
    maxargs = (size_t)in->nkeys + FIXED_ARGS + nsids + (size_t)(ARGS_PER_EVENT + SUMMARY_ARGS) * it.count;
    in->arena_cap = (FIXED_KEYS + 2 * nsids) * KEY_MAX + it.count * 40 + 256;
    if ((in->argv = calloc(maxargs, sizeof(*in->argv))) == NULL || (in->lens = calloc(maxargs, sizeof(*in->lens))) == NULL ||
        (in->arena = malloc(in->arena_cap)) == NULL)
        goto nomem;
    snprintf(in->host, sizeof(in->host), "%s", rr->who.id);

    argf(in, "cr:{%s}:seq", team);
    argf(in, "cr:{%s}:ev", team);
    argf(in, "cr:{%s}:sessions", team);
    argf(in, "cr:pushq:%u", relay_push_shard(relay, team));
    for (size_t j = 0; j < nsids; ++j) {
        cr_span_t sid = items[first[j]].ev.sid;
        argf(in, "cr:{%s}:s:%.*s", team, (int)sid.len, sid.base);
        argf(in, "cr:{%s}:sx:%.*s", team, (int)sid.len, sid.base);
    }
    arg(in, in->host, strlen(in->host));
    argf(in, "%" PRId64, relay->events_maxlen);
    argf(in, "%" PRIu64, cr_now_ms());
    argf(in, "cr:live:{%s}", team);
    argf(in, "%zu", nsids);
    for (size_t j = 0; j < nsids; ++j)
        arg(in, items[first[j]].ev.sid.base, items[first[j]].ev.sid.len);
    arg(in, team, strlen(team));
    argf(in, "%u", relay_push_shard(relay, team));
    for (uint32_t i = 0; i < it.count; ++i) {
        const item_t *x = &items[i];
        argf(in, "%" PRIu32, x->sidx + 1); /* Lua counts from 1 */
        argf(in, "%" PRIu64, x->ev.seq);
        arg(in, x->raw.base, x->raw.len);
        summary_args(in, &x->ev);
    }
    CR_ASSERT((size_t)in->argc <= maxargs);

    if (relay_rdb_script(&relay->rdb, &ingest_script, on_stored, in, in->nkeys, in->argc, in->argv, in->lens) != 0) {
        ingest_free(in);
        relay_respond_unavailable(rr);
    }
    /* otherwise in is now owned by on_stored */
    goto done;

nomem:
    if (in != NULL)
        ingest_free(in);
    relay_respond_error(rr, 500, "no_memory", NULL, "the relay is out of memory");
done:
    free(items);
    free(first);
}

void relay_ingest_register(relay_t *relay)
{
    ingest_script.src = relay_lua_ingest;
    ingest_script.len = relay_lua_ingest_len;
    relay_rdb_add_script(&relay->rdb, &ingest_script);
    relay_route(relay, "POST", "/v1/host/events", RELAY_P_HOST, on_post_events, "host.events");
}
