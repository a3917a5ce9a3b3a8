/* sessions.c — the phone's views of sessions: GET /v1/sessions (summaries, newest first) and
 * GET /v1/sessions/{sid}/events?after=&limit= (a session's stored events in order), each one call of
 * relay/lua/sessions.lua. */
#include "relay.h"
#include "streamid.h"
#include "corral/error.h"
#include "corral/log.h"
#include "corral/ulid.h"
#include <inttypes.h>
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char relay_lua_sessions[];
extern const size_t relay_lua_sessions_len;
static relay_script_t sessions_script = {.name = "sessions"};

#define LIST_MAX "500"              /* sessions in one list answer */
#define EVENTS_DEFAULT 100          /* events in one page unless limit= says otherwise */
#define EVENTS_MAX 1000             /* the most limit= may ask for */
#define EVENTS_BUDGET "4194304"     /* a page stops once its envelopes reach 4 MiB (it has at least one event) */
#define LIST_FIELDS 10              /* sid + the 9 summary fields sessions.lua returns per session */

/* One view request between its call and Redis' answer: the script's arguments live here. */
typedef struct st_view_t {
    relay_req_t *rr;
    char keys[3][160];
    char prefix[160], sid[65], after[STREAM_ID_MAX], limit[16];
    const char *argv[8];
    size_t lens[8];
} view_t;

/* ---- helpers ------------------------------------------------------------------------------------------------- */

static int buf_write(void *data, const char *p, size_t n)
{
    return cr_buf_append(data, p, n) == 0 ? 0 : -1;
}

static int is_str(const redisReply *r)
{
    return r != NULL && (r->type == REDIS_REPLY_STRING || r->type == REDIS_REPLY_STATUS) && r->str != NULL;
}

/* Packs a string reply as str, anything else (a nil: the field is absent) as nil. */
static void pack_str_or_nil(msgpack_packer *pk, const redisReply *r)
{
    if (is_str(r))
        msgpack_pack_str_with_body(pk, r->str, r->len);
    else
        msgpack_pack_nil(pk);
}

/* Packs a decimal string reply as an unsigned int, anything else as nil. */
static void pack_uint_or_nil(msgpack_packer *pk, const redisReply *r)
{
    uint64_t v;
    if (is_str(r) && relay_parse_u64(r->str, r->len, &v) == 0)
        msgpack_pack_uint64(pk, v);
    else
        msgpack_pack_nil(pk);
}

/* Ends a view whose Redis call failed: 503 when Redis went away, 500 for anything else (logged). */
static int reply_failed(relay_req_t *rr, const redisReply *reply, const char *what)
{
    if (reply == NULL) {
        relay_respond_unavailable(rr);
        return 1;
    }
    if (reply->type == REDIS_REPLY_ERROR) {
        cr_log(CR_LOG_ERROR, "sessions.lua %s failed for team %s: %.200s", what, rr->who.team, reply->str);
        relay_respond_error(rr, 500, "internal", NULL, "the relay could not read the sessions");
        return 1;
    }
    if (reply->type != REDIS_REPLY_ARRAY) {
        cr_log(CR_LOG_ERROR, "sessions.lua %s: unexpected reply (type %d) for team %s", what, reply->type, rr->who.team);
        relay_respond_error(rr, 500, "internal", NULL, "the relay could not read the sessions");
        return 1;
    }
    return 0;
}

/* ---- GET /v1/sessions ---------------------------------------------------------------------------------------- */

static void on_list(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    view_t *v = data;
    relay_req_t *rr = v->rr;
    msgpack_packer pk;
    cr_buf_t out;
    size_t n;

    if (reply_failed(rr, reply, "list"))
        goto done;
    n = reply->elements / LIST_FIELDS;
    cr_buf_init(&out, 64 << 20);
    msgpack_packer_init(&pk, &out, buf_write);
    msgpack_pack_map(&pk, 1);
    msgpack_pack_str_with_body(&pk, "sessions", 8);
    msgpack_pack_array(&pk, (uint32_t)n);
    for (size_t i = 0; i < n; ++i) {
        redisReply **f = reply->element + i * LIST_FIELDS; /* sid host name idn state last_seq needs_k needs_seq needs_rid updated */
        msgpack_pack_map(&pk, 8);
        msgpack_pack_str_with_body(&pk, "sid", 3);
        pack_str_or_nil(&pk, f[0]);
        msgpack_pack_str_with_body(&pk, "host", 4);
        pack_str_or_nil(&pk, f[1]);
        msgpack_pack_str_with_body(&pk, "name", 4);
        pack_str_or_nil(&pk, f[2]);
        msgpack_pack_str_with_body(&pk, "idn", 3);
        pack_str_or_nil(&pk, f[3]);
        msgpack_pack_str_with_body(&pk, "state", 5);
        pack_str_or_nil(&pk, f[4]);
        msgpack_pack_str_with_body(&pk, "last_seq", 8);
        pack_uint_or_nil(&pk, f[5]);
        msgpack_pack_str_with_body(&pk, "needs", 5);
        if (is_str(f[6])) {
            int has_rid = is_str(f[8]);
            msgpack_pack_map(&pk, has_rid ? 3 : 2);
            msgpack_pack_str_with_body(&pk, "k", 1);
            pack_str_or_nil(&pk, f[6]);
            msgpack_pack_str_with_body(&pk, "seq", 3);
            pack_uint_or_nil(&pk, f[7]);
            if (has_rid) {
                msgpack_pack_str_with_body(&pk, "rid", 3);
                pack_str_or_nil(&pk, f[8]);
            }
        } else {
            msgpack_pack_nil(&pk);
        }
        msgpack_pack_str_with_body(&pk, "updated", 7);
        pack_uint_or_nil(&pk, f[9]);
    }
    relay_respond(rr, 200, out.base, out.len);
    cr_buf_free(&out);
done:
    free(v);
    (void)rdb;
}

static void on_get_sessions(relay_req_t *rr)
{
    view_t *v = calloc(1, sizeof(*v));
    if (v == NULL) {
        relay_respond_error(rr, 500, "no_memory", NULL, "the relay is out of memory");
        return;
    }
    v->rr = rr;
    snprintf(v->keys[0], sizeof(v->keys[0]), "cr:{%s}:sessions", rr->who.team);
    snprintf(v->prefix, sizeof(v->prefix), "cr:{%s}:s:", rr->who.team);
    const char *argv[] = {v->keys[0], "list", v->prefix, LIST_MAX};
    for (size_t i = 0; i < 4; ++i)
        v->argv[i] = argv[i], v->lens[i] = strlen(argv[i]);
    if (relay_rdb_script(&rr->relay->rdb, &sessions_script, on_list, v, 1, 4, v->argv, v->lens) != 0) {
        free(v);
        relay_respond_unavailable(rr);
    }
}

/* ---- GET /v1/sessions/{sid}/events ---------------------------------------------------------------------------- */

static void on_events(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    view_t *v = data;
    relay_req_t *rr = v->rr;
    msgpack_packer pk;
    cr_buf_t out;
    size_t n;
    const char *next = v->after[0] != '\0' ? v->after : "0-0";

    if (reply_failed(rr, reply, "events"))
        goto done;
    if (reply->elements < 1 || !is_str(reply->element[0]) || (reply->elements - 1) % 3 != 0) {
        cr_log(CR_LOG_ERROR, "sessions.lua events: unexpected answer for team %s", rr->who.team);
        relay_respond_error(rr, 500, "internal", NULL, "the relay could not read the session's events");
        goto done;
    }
    if (strcmp(reply->element[0]->str, "nosession") == 0) {
        relay_respond_error(rr, 404, "not_found", "sid", "no such session");
        goto done;
    }
    n = (reply->elements - 1) / 3;
    cr_buf_init(&out, 64 << 20);
    msgpack_packer_init(&pk, &out, buf_write);
    msgpack_pack_map(&pk, 2);
    msgpack_pack_str_with_body(&pk, "events", 6);
    msgpack_pack_array(&pk, (uint32_t)n);
    for (size_t i = 0; i < n; ++i) {
        redisReply **f = reply->element + 1 + 3 * i; /* id host e */
        if (!is_str(f[0]) || !is_str(f[1]) || !is_str(f[2])) {
            cr_buf_free(&out);
            relay_respond_error(rr, 500, "internal", NULL, "the relay could not read the session's events");
            goto done;
        }
        msgpack_pack_map(&pk, 3);
        msgpack_pack_str_with_body(&pk, "id", 2);
        msgpack_pack_str_with_body(&pk, f[0]->str, f[0]->len);
        msgpack_pack_str_with_body(&pk, "host", 4);
        msgpack_pack_str_with_body(&pk, f[1]->str, f[1]->len);
        msgpack_pack_str_with_body(&pk, "e", 1);
        cr_buf_append(&out, f[2]->str, f[2]->len); /* the envelope as stored: one msgpack map, verbatim */
        next = f[0]->str;
    }
    msgpack_pack_str_with_body(&pk, "next", 4);
    msgpack_pack_str_with_body(&pk, next, strlen(next));
    relay_respond(rr, 200, out.base, out.len);
    cr_buf_free(&out);
done:
    free(v);
    (void)rdb;
}

static void on_get_events(relay_req_t *rr)
{
    h2o_iovec_t sid = rr->params[0];
    const char *after = relay_query(rr, "after"), *limit = relay_query(rr, "limit");
    uint64_t n = EVENTS_DEFAULT;
    view_t *v;

    if (!cr_id_valid(sid.base, sid.len)) {
        relay_respond_error(rr, 400, "bad_request", "sid", "a session id is 1 to 64 characters of [A-Za-z0-9._-]");
        return;
    }
    if (limit != NULL && (relay_parse_u64(limit, strlen(limit), &n) != 0 || n == 0)) {
        relay_respond_error(rr, 400, "bad_request", "limit", "limit must be a positive integer (at most %d is used)",
                            EVENTS_MAX);
        return;
    }
    if (n > EVENTS_MAX)
        n = EVENTS_MAX;
    if ((v = calloc(1, sizeof(*v))) == NULL) {
        relay_respond_error(rr, 500, "no_memory", NULL, "the relay is out of memory");
        return;
    }
    /* after= absent or empty: from the start */
    if (after != NULL && after[0] != '\0' && relay_stream_id_canon(after, strlen(after), v->after, NULL) != 0) {
        free(v);
        relay_respond_error(rr, 400, "bad_request", "after", "after must be an event id such as 1700000000000-0");
        return;
    }
    v->rr = rr;
    snprintf(v->sid, sizeof(v->sid), "%.*s", (int)sid.len, sid.base);
    snprintf(v->keys[0], sizeof(v->keys[0]), "cr:{%s}:s:%s", rr->who.team, v->sid);
    snprintf(v->keys[1], sizeof(v->keys[1]), "cr:{%s}:sx:%s", rr->who.team, v->sid);
    snprintf(v->keys[2], sizeof(v->keys[2]), "cr:{%s}:ev", rr->who.team);
    snprintf(v->limit, sizeof(v->limit), "%" PRIu64, n);
    const char *argv[] = {v->keys[0], v->keys[1], v->keys[2], "events", v->sid, v->after, v->limit, EVENTS_BUDGET};
    for (size_t i = 0; i < 8; ++i)
        v->argv[i] = argv[i], v->lens[i] = strlen(argv[i]);
    if (relay_rdb_script(&rr->relay->rdb, &sessions_script, on_events, v, 3, 8, v->argv, v->lens) != 0) {
        free(v);
        relay_respond_unavailable(rr);
    }
}

void relay_sessions_register(relay_t *relay)
{
    sessions_script.src = relay_lua_sessions;
    sessions_script.len = relay_lua_sessions_len;
    relay_rdb_add_script(&relay->rdb, &sessions_script);
    relay_route(relay, "GET", "/v1/sessions", RELAY_P_ADMIN | RELAY_P_DEVICE | RELAY_P_HOST, on_get_sessions, "sessions");
    relay_route(relay, "GET", "/v1/sessions/{}/events", RELAY_P_ADMIN | RELAY_P_DEVICE, on_get_events, "sessions.events");
}
