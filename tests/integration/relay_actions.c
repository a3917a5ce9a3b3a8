/* relay_actions.c — actions from phones to hosts against real relays and Redis: POST /v1/actions (once per aid,
 * by stamped, errors with code and field), the host's never-ending downlink (live, queued while away, pings,
 * HTTP/2 and HTTP/1.1), acks, team isolation, two relays on one Redis, revocation and graceful shutdown. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <curl/curl.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include "corral/buf.h"
#include "corral/codec.h"
#include "corral/envelope.h"
#include "corral/json.h"
#include "corral/mp.h"
#include "corral/ulid.h"
#include "mp_text.h"
#include "harness.h"
#include "http_client.h"
#include "proc.h"
#include "redis_server.h"
#include "relay_proc.h"

#define PING_MS 300  /* relay A's downlink ping interval (CORRAL_DOWNLINK_PING_MS) */
#define QUIET_MS 900 /* how long "nothing more arrives" is watched */

static cr_test_redis_t redis;
static cr_test_relay_t relay_a, relay_b; /* A pings every PING_MS; B keeps the default 20 s */
static redisContext *rc;
static char acme_host[64], acme_host2[64], acme_dev[64], other_host[64], other_dev[64], tok[64];
static char acme_host_id[32], acme_host2_id[32], acme_dev_id[32], other_host_id[32], other_dev_id[32];

/* ---- helpers --------------------------------------------------------------------------------------------------- */

static void sha256_hex(char out[65], const char *s)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)s, strlen(s), md);
    cr_hex_encode(out, md, sizeof(md));
}

/* The principal id of a token (from its record in Redis) into out. */
static void token_id(char *out, size_t outlen, const char *token)
{
    char hash[65];
    redisReply *x;
    sha256_hex(hash, token);
    x = redisCommand(rc, "HGET cr:tok:%s id", hash);
    snprintf(out, outlen, "%s", x != NULL && x->type == REDIS_REPLY_STRING ? x->str : "");
    if (x != NULL)
        freeReplyObject(x);
}

/* POSTs a JSON body to relay r at path; returns the status (0 when no response), the response in *resp. */
static long post_json(cr_test_resp_t *resp, const cr_test_relay_t *r, const char *path, const char *token, const char *json)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", r->url, path);
    if (cr_test_http_json(resp, "POST", url, token, json) != 0)
        return 0;
    return resp->status;
}

/* Starts session sid on the host of host_token, as a host does: its session.started event through the uplink. */
static void make_session(const char *host_token, const char *sid)
{
    char json[512];
    cr_test_resp_t resp = {0};
    snprintf(json, sizeof(json),
             "[{\"v\": 1, \"k\": \"session.started\", \"sid\": \"%s\", \"seq\": 1, \"ts\": 1700000000000, \"pri\": 1, "
             "\"b\": {\"name\": \"fix it\", \"agent\": \"claude\", \"branch\": \"corral/fix\", \"base\": \"main\", "
             "\"prompt\": \"fix the bug\"}}]",
             sid);
    okf(post_json(&resp, &relay_a, "/v1/host/events", host_token, json) == 200, "session %s started: %ld %s", sid, resp.status,
        resp.body);
    cr_test_resp_free(&resp);
}

/* POSTs an action {sid, k, aid, ...extra} as JSON to relay r and checks the status and, for errors, code and field. */
#define expect_action(r, token, json, status, code, field)                                                            \
    do {                                                                                                              \
        cr_test_resp_t r_ = {0};                                                                                      \
        char c_[64], f_[96];                                                                                          \
        const char *j_ = (json);                                                                                      \
        long st_ = post_json(&r_, (r), "/v1/actions", (token), j_);                                                   \
        okf(st_ == (status), "POST /v1/actions %s -> %ld (want %d): %s", j_ != NULL ? j_ : "(no body)", st_, (status), \
            r_.body);                                                                                                 \
        if ((code) != NULL)                                                                                           \
            okf(strcmp(cr_test_json_text(&r_, "error.code", c_, sizeof(c_)), (code) != NULL ? (code) : "") == 0,                  \
                "error code %s (want %s)", c_, (code) != NULL ? (code) : "");                                         \
        if ((field) != NULL)                                                                                          \
            okf(strcmp(cr_test_json_text(&r_, "error.field", f_, sizeof(f_)), (field) != NULL ? (field) : "") == 0,               \
                "error field %s (want %s)", f_, (field) != NULL ? (field) : "");                                      \
        cr_test_resp_free(&r_);                                                                                       \
    } while (0)

/* Posts action k for sid with a new aid (written to aid) from token through relay r; returns the status. */
static long post_new_action(const cr_test_relay_t *r, const char *token, const char *sid, char aid[CR_ULID_LEN + 1])
{
    char json[256];
    cr_test_resp_t resp = {0};
    long st;
    cr_ulid_new(aid);
    snprintf(json, sizeof(json), "{\"sid\": \"%s\", \"k\": \"task\", \"aid\": \"%s\", \"b\": {\"text\": \"do %s\"}}", sid, aid,
             aid);
    st = post_json(&resp, r, "/v1/actions", token, json);
    cr_test_resp_free(&resp);
    return st;
}

/* Opens token's downlink on relay r (after: NULL for none) and waits for its headers; NULL on failure. */
static cr_test_stream_t *downlink(const cr_test_relay_t *r, const char *token, const char *after, int flags)
{
    char url[256];
    cr_test_stream_t *s;
    snprintf(url, sizeof(url), "%s/v1/host/actions%s%s", r->url, after != NULL ? "?after=" : "", after != NULL ? after : "");
    if ((s = cr_test_stream_open(url, token, flags)) == NULL)
        return NULL;
    if (cr_test_stream_wait_headers(s, 5000) != 0) {
        cr_test_stream_close(s);
        return NULL;
    }
    return s;
}

/* The next frame that is not a ping, within timeout_ms, into frame (reset first); pings seen are added to *pings
 * (may be NULL). Returns 0, CR_EAGAIN on timeout, -1 when the stream ended. */
static int next_frame(cr_test_stream_t *s, cr_buf_t *frame, int timeout_ms, int *pings)
{
    int64_t deadline = cr_test_now_ms() + timeout_ms;
    for (;;) {
        char k[16];
        int64_t left = deadline - cr_test_now_ms();
        int rc2;
        cr_buf_reset(frame);
        if ((rc2 = cr_test_stream_next(s, frame, left > 0 ? (int)left : 0)) != 0)
            return rc2;
        if (strcmp(cr_test_mp_text(frame->base, frame->len, "k", k, sizeof(k)), "ping") != 0)
            return 0;
        if (pings != NULL)
            ++*pings;
    }
}

/* Reads the next act frame and checks its kind; returns 0 with its id and action envelope, or -1. */
static int next_act(cr_test_stream_t *s, cr_buf_t *frame, char id[48], cr_span_t *act)
{
    char k[16];
    int rc2 = next_frame(s, frame, 5000, NULL);
    okf(rc2 == 0, "an act frame arrives (%d)", rc2);
    if (rc2 != 0)
        return -1;
    ok_str(cr_test_mp_text(frame->base, frame->len, "k", k, sizeof(k)), "act");
    cr_test_mp_text(frame->base, frame->len, "id", id, 48);
    okf(id[0] != '\0' && strchr(id, '-') != NULL, "the frame's id is a stream id: %s", id);
    if (cr_mp_map_get(frame->base, frame->len, "act", act) != 0) {
        ok(!"the frame has act");
        return -1;
    }
    return 0;
}

/* Checks that no frame but pings arrives within QUIET_MS. */
static void expect_quiet(cr_test_stream_t *s, const char *what)
{
    cr_buf_t frame;
    int rc2;
    cr_buf_init(&frame, 4 << 20);
    rc2 = next_frame(s, &frame, QUIET_MS, NULL);
    okf(rc2 == CR_EAGAIN, "%s: nothing more arrives (%d, %zu bytes)", what, rc2, frame.len);
    cr_buf_free(&frame);
}

/* ---- tests ----------------------------------------------------------------------------------------------------- */

static char last_id[48]; /* the id of the last act frame the acme host received (for acks) */

static void test_live(void)
{
    char aid[CR_ULID_LEN + 1], aid2[CR_ULID_LEN + 1], id[48], json[512], buf[64];
    cr_test_stream_t *s = downlink(&relay_a, acme_host, NULL, CR_HTTP_H2C);
    cr_test_resp_t resp = {0};
    cr_buf_t frame, want;
    cr_span_t act;
    cr_action_t a;
    uint64_t before, after;

    cr_buf_init(&frame, 4 << 20);
    cr_buf_init(&want, 4 << 20);
    okf(s != NULL && cr_test_stream_status(s) == 200, "the downlink opens with 200 (%ld)",
        s != NULL ? cr_test_stream_status(s) : 0);
    if (s == NULL)
        goto done;

    /* a complete envelope, with a `by` of its own that the relay replaces */
    cr_ulid_new(aid);
    snprintf(json, sizeof(json),
             "{\"v\": 1, \"sid\": \"S1\", \"k\": \"approve\", \"aid\": \"%s\", \"ref\": 12, \"ts\": 1700000000123, "
             "\"by\": \"someone-else\", \"b\": {\"rid\": \"r1\"}, \"zz\": \"unknown keys are dropped\"}",
             aid);
    ok(post_json(&resp, &relay_a, "/v1/actions", acme_dev, json) == 202);
    ok_str(cr_test_json_text(&resp, "aid", buf, sizeof(buf)), aid);
    ok_str(cr_test_json_text(&resp, "queued", buf, sizeof(buf)), "true");
    cr_test_resp_free(&resp);
    if (next_act(s, &frame, id, &act) == 0) {
        memset(&a, 0, sizeof(a));
        a.v = 1, a.k = CR_SPAN_LIT("approve"), a.sid = CR_SPAN_LIT("S1"), a.aid = (cr_span_t){aid, strlen(aid)};
        a.ref = 12, a.ts = 1700000000123ull, a.by = (cr_span_t){acme_dev_id, strlen(acme_dev_id)};
        a.b.raw = CR_SPAN_LIT("\x81\xa3rid\xa2r1");
        ok(cr_action_encode(&want, &a) == 0);
        ok_bytes(act.base, act.len, want.base, want.len); /* the envelope as sent, canonical, by = the device */
        snprintf(last_id, sizeof(last_id), "%s", id);
    }
    /* what Redis holds: the queued row and the idempotency key */
    {
        char key[128];
        redisReply *x;
        snprintf(key, sizeof(key), "cr:{acme}:act:%s", acme_host_id);
        x = redisCommand(rc, "XRANGE %s %s %s", key, id, id);
        ok(x != NULL && x->type == REDIS_REPLY_ARRAY && x->elements == 1);
        if (x != NULL && x->type == REDIS_REPLY_ARRAY && x->elements == 1) {
            redisReply *f = x->element[0]->element[1];
            ok(f->elements == 6);
            ok(f->elements == 6 && strcmp(f->element[0]->str, "sid") == 0 && strcmp(f->element[1]->str, "S1") == 0);
            ok(f->elements == 6 && strcmp(f->element[2]->str, "aid") == 0 && strcmp(f->element[3]->str, aid) == 0);
            ok(f->elements == 6 && strcmp(f->element[4]->str, "a") == 0);
            if (f->elements == 6)
                ok_bytes(f->element[5]->str, f->element[5]->len, want.base, want.len);
        }
        if (x != NULL)
            freeReplyObject(x);
        snprintf(key, sizeof(key), "cr:{acme}:aid:%s", aid);
        x = redisCommand(rc, "GET %s", key);
        ok(x != NULL && x->type == REDIS_REPLY_STRING && strcmp(x->str, id) == 0);
        if (x != NULL)
            freeReplyObject(x);
        long long ttl = cr_test_redis_int(rc, "TTL %s", key);
        okf(ttl > 604700 && ttl <= 604800, "the aid is remembered 7 days (TTL %lld)", ttl);
    }

    /* a phone may leave out v and ts: the relay fills them in (ts from its clock) */
    cr_ulid_new(aid2);
    snprintf(json, sizeof(json), "{\"sid\": \"S1\", \"k\": \"reply\", \"aid\": \"%s\", \"b\": {\"text\": \"yes\"}}", aid2);
    before = cr_now_ms();
    ok(post_json(&resp, &relay_a, "/v1/actions", acme_dev, json) == 202);
    after = cr_now_ms();
    cr_test_resp_free(&resp);
    if (next_act(s, &frame, id, &act) == 0) {
        ok(cr_action_decode(&a, act.base, act.len, NULL) == 0);
        ok(a.v == 1 && a.kind == CR_ACT_REPLY && cr_span_eq(a.aid, aid2, strlen(aid2)));
        okf(a.ts >= before && a.ts <= after, "ts is the relay's clock: %llu in [%llu, %llu]", (unsigned long long)a.ts,
            (unsigned long long)before, (unsigned long long)after);
        ok(cr_span_eq(a.by, acme_dev_id, strlen(acme_dev_id)));
        okf(strcmp(id, last_id) > 0 || strlen(id) > strlen(last_id), "ids increase: %s after %s", id, last_id);
        snprintf(last_id, sizeof(last_id), "%s", id);
    }

    /* msgpack in, msgpack out; an admin token may act too, and `by` is then the admin's id */
    {
        char admin[64], admin_id[32];
        cr_ulid_new(aid);
        memset(&a, 0, sizeof(a));
        a.v = 1, a.k = CR_SPAN_LIT("interrupt"), a.sid = CR_SPAN_LIT("S1"), a.aid = (cr_span_t){aid, strlen(aid)};
        a.ts = 1700000000999ull;
        cr_buf_reset(&want);
        ok(cr_action_encode(&want, &a) == 0);
        ok(cr_test_relay_admin(&relay_a, admin, sizeof(admin), "token", "create", "--team", "acme", "--kind", "admin", NULL) == 0);
        token_id(admin_id, sizeof(admin_id), admin);
        char url[256];
        snprintf(url, sizeof(url), "%s/v1/actions", relay_a.url);
        ok(cr_test_http(&resp, "POST", url, admin, "application/msgpack", want.base, want.len,
                        CR_HTTP_H2C | CR_HTTP_ACCEPT_MSGPACK) == 0);
        okf(resp.status == 202 && strstr(resp.content_type, "msgpack") != NULL, "202 in msgpack (%ld %s)", resp.status,
            resp.content_type);
        ok_str(cr_test_mp_text(resp.body, resp.body_len, "aid", buf, sizeof(buf)), aid);
        cr_test_resp_free(&resp);
        if (next_act(s, &frame, id, &act) == 0) {
            a.by = (cr_span_t){admin_id, strlen(admin_id)};
            cr_buf_reset(&want);
            ok(cr_action_encode(&want, &a) == 0);
            ok_bytes(act.base, act.len, want.base, want.len);
            snprintf(last_id, sizeof(last_id), "%s", id);
        }
    }
    okf(cr_test_relay_metric(&relay_a, "corral_host_streams_open") == 1, "one downlink open (%lld)",
        cr_test_relay_metric(&relay_a, "corral_host_streams_open"));
    okf(cr_test_relay_metric(&relay_a, "corral_actions_in_total") == 3, "3 actions in (%lld)", cr_test_relay_metric(&relay_a, "corral_actions_in_total"));
    okf(cr_test_relay_metric(&relay_a, "corral_actions_out_total") == 3, "3 actions out (%lld)", cr_test_relay_metric(&relay_a, "corral_actions_out_total"));

    /* the same aid again: 200 duplicate, nothing queued, nothing sent */
    snprintf(json, sizeof(json), "{\"sid\": \"S1\", \"k\": \"reply\", \"aid\": \"%s\", \"b\": {\"text\": \"again\"}}", aid2);
    ok(post_json(&resp, &relay_a, "/v1/actions", acme_dev, json) == 200);
    ok_str(cr_test_json_text(&resp, "aid", buf, sizeof(buf)), aid2);
    ok_str(cr_test_json_text(&resp, "duplicate", buf, sizeof(buf)), "true");
    cr_test_resp_free(&resp);
    expect_quiet(s, "after a duplicate");
    snprintf(json, sizeof(json), "cr:{acme}:act:%s", acme_host_id);
    okf(cr_test_redis_int(rc, "XLEN %s", json) == 3, "3 actions queued (%lld)", cr_test_redis_int(rc, "XLEN %s", json));
    okf(cr_test_relay_metric(&relay_a, "corral_actions_duplicate_total") == 1, "1 duplicate counted");

done:
    cr_test_stream_close(s);
    cr_buf_free(&frame);
    cr_buf_free(&want);
}

static void test_errors(void)
{
    char aid[CR_ULID_LEN + 1], json[512];
    cr_ulid_new(aid);

    /* another team's session, and no session at all: 404, nothing queued */
    snprintf(json, sizeof(json), "{\"sid\": \"S1\", \"k\": \"approve\", \"aid\": \"%s\"}", aid);
    expect_action(&relay_a, other_dev, json, 404, "not_found", NULL);
    snprintf(json, sizeof(json), "{\"sid\": \"nope\", \"k\": \"approve\", \"aid\": \"%s\"}", aid);
    expect_action(&relay_a, acme_dev, json, 404, "not_found", NULL);
    snprintf(json, sizeof(json), "cr:{other}:aid:%s", aid);
    ok(cr_test_redis_int(rc, "EXISTS %s", json) == 0);
    snprintf(json, sizeof(json), "cr:{acme}:aid:%s", aid);
    ok(cr_test_redis_int(rc, "EXISTS %s", json) == 0);

    /* bad envelopes: 400 with the stable code and the field */
    expect_action(&relay_a, acme_dev, "{\"sid\": \"S1\", \"k\": \"approve\", \"aid\": \"bad aid\"}", 400, "bad_envelope", "aid");
    expect_action(&relay_a, acme_dev, "{\"sid\": \"S1\", \"k\": \"approve\"}", 400, "bad_envelope", "aid");
    expect_action(&relay_a, acme_dev, "{\"k\": \"approve\", \"aid\": \"A1x\"}", 400, "bad_envelope", "sid");
    expect_action(&relay_a, acme_dev, "{\"sid\": \"S1\", \"k\": \"approve\", \"aid\": \"A1x\", \"ref\": 0}", 400,
                  "bad_envelope", "ref");
    expect_action(&relay_a, acme_dev, "{\"sid\": \"S1\", \"k\": \"launch\", \"aid\": \"A1x\"}", 400, "unknown_kind", "k");
    expect_action(&relay_a, acme_dev, "{\"sid\": \"S1\", \"k\": \"agent.message\", \"aid\": \"A1x\"}", 400, "unknown_kind", "k");
    expect_action(&relay_a, acme_dev, "{\"sid\": \"S1\", \"k\": \"reply\", \"aid\": \"A1x\", \"b\": {}}", 400, "bad_body", "b");
    expect_action(&relay_a, acme_dev, "{\"sid\": \"S1\", \"k\": \"task\", \"aid\": \"A1x\", \"b\": {\"text\": 5}}", 400,
                  "bad_body", "b.text");
    expect_action(&relay_a, acme_dev, "{\"v\": 2, \"sid\": \"S1\", \"k\": \"task\", \"aid\": \"A1x\"}", 400,
                  "unsupported_version", "v");
    expect_action(&relay_a, acme_dev, "[1, 2]", 400, "bad_envelope", NULL);
    expect_action(&relay_a, acme_dev, "{\"sid\": \"S1\",", 400, "bad_json", NULL);
    expect_action(&relay_a, acme_dev, NULL, 400, "truncated", NULL);
    snprintf(json, sizeof(json), "cr:{acme}:aid:A1x");
    ok(cr_test_redis_int(rc, "EXISTS %s", json) == 0);

    /* who may post: devices and admins; a host token may not, nor nobody */
    snprintf(json, sizeof(json), "{\"sid\": \"S1\", \"k\": \"approve\", \"aid\": \"%s\"}", aid);
    expect_action(&relay_a, acme_host, json, 403, "forbidden", NULL);
    expect_action(&relay_a, NULL, json, 401, "unauthorized", NULL);
}

static void test_queued_while_away(void)
{
    char aids[3][CR_ULID_LEN + 1], ids[3][48], id[48], body[128], buf[64], key[128];
    cr_test_stream_t *s;
    cr_test_resp_t resp = {0};
    cr_buf_t frame;
    cr_span_t act;
    cr_action_t a;

    cr_buf_init(&frame, 4 << 20);
    snprintf(key, sizeof(key), "cr:{acme}:act:%s", acme_host_id);
    /* the host confirms what it has so far, then goes away */
    snprintf(body, sizeof(body), "{\"cursor\": \"%s\"}", last_id);
    ok(post_json(&resp, &relay_a, "/v1/host/actions/ack", acme_host, body) == 200);
    ok_str(resp.body, "{}");
    cr_test_resp_free(&resp);
    okf(cr_test_redis_int(rc, "XLEN %s", key) == 0, "acked actions are dropped from the stream (%lld left)",
        cr_test_redis_int(rc, "XLEN %s", key));

    /* three actions while no downlink is open: queued */
    for (int i = 0; i < 3; ++i)
        ok(post_new_action(&relay_a, acme_dev, "S1", aids[i]) == 202);
    ok(cr_test_redis_int(rc, "XLEN %s", key) == 3);

    /* it comes back without a cursor: the relay starts after its acked one; all 3, in order, once */
    s = downlink(&relay_a, acme_host, NULL, CR_HTTP_H2C);
    ok(s != NULL);
    for (int i = 0; s != NULL && i < 3; ++i) {
        ids[i][0] = '\0';
        if (next_act(s, &frame, ids[i], &act) == 0 && cr_action_decode(&a, act.base, act.len, NULL) == 0)
            okf(cr_span_eq(a.aid, aids[i], strlen(aids[i])), "action %d in order: %.*s (want %s)", i, (int)a.aid.len, a.aid.base,
                aids[i]);
    }
    if (s != NULL)
        expect_quiet(s, "after the queued three");
    cr_test_stream_close(s);

    /* an explicit cursor wins: after the first of them, the other two */
    s = downlink(&relay_a, acme_host, ids[0], CR_HTTP_H2C);
    ok(s != NULL);
    if (s != NULL) {
        ok(next_act(s, &frame, id, &act) == 0 && strcmp(id, ids[1]) == 0);
        ok(next_act(s, &frame, id, &act) == 0 && strcmp(id, ids[2]) == 0);
        expect_quiet(s, "after the cursor's two");
    }
    cr_test_stream_close(s);

    /* acks: bad cursors are refused; a cursor never goes back; the confirmed are dropped */
    snprintf(body, sizeof(body), "{\"cursor\": \"%s\"}", ids[2]);
    ok(post_json(&resp, &relay_a, "/v1/host/actions/ack", acme_host, body) == 200);
    cr_test_resp_free(&resp);
    snprintf(body, sizeof(body), "{\"cursor\": \"%s\"}", ids[0]);
    ok(post_json(&resp, &relay_a, "/v1/host/actions/ack", acme_host, body) == 200);
    cr_test_resp_free(&resp);
    {
        redisReply *x = redisCommand(rc, "HGET cr:{acme}:hcur %s", acme_host_id);
        okf(x != NULL && x->type == REDIS_REPLY_STRING && strcmp(x->str, ids[2]) == 0, "the cursor stays at %s (%s)", ids[2],
            x != NULL && x->type == REDIS_REPLY_STRING ? x->str : "-");
        if (x != NULL)
            freeReplyObject(x);
    }
    ok(cr_test_redis_int(rc, "XLEN %s", key) == 0);
    const char *bad[] = {"{\"cursor\": \"yesterday\"}", "{\"cursor\": 12}", "{}", "{\"cursor\": \"1-2-3\"}",
                         "{\"cursor\": \"99999999999999-0\"}", NULL};
    for (int i = 0; bad[i] != NULL; ++i) {
        long st = post_json(&resp, &relay_a, "/v1/host/actions/ack", acme_host, bad[i]);
        okf(st == 400 && strcmp(cr_test_json_text(&resp, "error.field", buf, sizeof(buf)), "cursor") == 0, "ack %s -> %ld %s", bad[i], st,
            resp.body);
        cr_test_resp_free(&resp);
    }
    ok(post_json(&resp, &relay_a, "/v1/host/actions/ack", acme_dev, "{\"cursor\": \"0-1\"}") == 403);
    cr_test_resp_free(&resp);

    /* after the ack a reconnect replays nothing; the stream still idles with pings */
    s = downlink(&relay_a, acme_host, NULL, CR_HTTP_H2C);
    ok(s != NULL);
    if (s != NULL) {
        int pings = 0, rc2 = next_frame(s, &frame, QUIET_MS, &pings);
        okf(rc2 == CR_EAGAIN && pings >= 1, "no action replayed (%d), pings only (%d)", rc2, pings);
    }
    cr_test_stream_close(s);
    {
        char url[256];
        snprintf(url, sizeof(url), "%s/v1/host/actions?after=not-an-id", relay_a.url);
        ok(cr_test_http(&resp, "GET", url, acme_host, NULL, NULL, 0, CR_HTTP_H2C) == 0);
        okf(resp.status == 400 && strcmp(cr_test_json_text(&resp, "error.field", buf, sizeof(buf)), "after") == 0, "after=not-an-id -> %ld %s",
            resp.status, resp.body);
        cr_test_resp_free(&resp);
    }
    snprintf(last_id, sizeof(last_id), "%s", ids[2]);
    cr_buf_free(&frame);
}

static void test_backpressure(void)
{
    enum { N = 150, AUDIO = 64 << 10 }; /* more than one batch, over 1 MiB pending: reads wait for the client */
    static char want_ids[N][CR_ULID_LEN + 1];
    char url[256], body[128], id[48];
    cr_buf_t b, env, frame;
    cr_test_resp_t resp = {0};
    cr_test_stream_t *s;
    cr_span_t act;
    cr_action_t a;
    int got = 0, in_order = 1, exact = 1;

    /* N replies carrying 64 KiB of audio each (10 MiB) wait while the host is away ... */
    cr_buf_init(&b, 1 << 20);
    cr_buf_init(&env, 1 << 20);
    cr_buf_init(&frame, 4 << 20);
    snprintf(url, sizeof(url), "%s/v1/actions", relay_a.url);
    for (int i = 0; i < N; ++i) {
        unsigned char h[5] = {0xc6, 0, (unsigned char)(AUDIO >> 16), (unsigned char)(AUDIO >> 8), (unsigned char)AUDIO};
        cr_buf_reset(&b);
        cr_buf_append(&b, "\x82\xa5" "audio", 7);
        cr_buf_append(&b, h, 5);
        cr_buf_reserve(&b, AUDIO);
        memset(b.base + b.len, 'a' + i % 26, AUDIO);
        b.len += AUDIO;
        cr_buf_append(&b, "\xa4" "mime" "\xa9" "audio/wav", 15);
        cr_ulid_new(want_ids[i]);
        memset(&a, 0, sizeof(a));
        a.v = 1, a.k = CR_SPAN_LIT("reply"), a.sid = CR_SPAN_LIT("S1"), a.aid = (cr_span_t){want_ids[i], CR_ULID_LEN};
        a.ts = 1700000000000ull + (uint64_t)i, a.b.raw = (cr_span_t){b.base, b.len};
        cr_buf_reset(&env);
        if (cr_action_encode(&env, &a) != 0)
            okf(0, "action %d encodes", i);
        if (cr_test_http(&resp, "POST", url, acme_dev, "application/msgpack", env.base, env.len, CR_HTTP_H2C) != 0 ||
            resp.status != 202)
            okf(0, "action %d queued (%ld %s)", i, resp.status, resp.body);
        cr_test_resp_free(&resp);
    }
    /* ... then it connects and reads nothing for a while (the relay may only write as fast as the flow control lets it),
     * then everything, in order, byte for byte */
    /* hosts that leave in the middle of it, over HTTP/1.1 and HTTP/2, leave nothing behind */
    for (int i = 0; i < 2; ++i) {
        s = downlink(&relay_a, acme_host, NULL, i == 0 ? 0 : CR_HTTP_H2C);
        ok(s != NULL && next_frame(s, &frame, 5000, NULL) == 0);
        cr_test_stream_close(s);
    }
    {
        int64_t deadline = cr_test_now_ms() + 3000;
        while (cr_test_relay_metric(&relay_a, "corral_host_streams_open") != 0 && cr_test_now_ms() < deadline)
            cr_test_sleep_ms(20);
        okf(cr_test_relay_metric(&relay_a, "corral_host_streams_open") == 0, "no downlink left open (%lld)",
            cr_test_relay_metric(&relay_a, "corral_host_streams_open"));
    }
    s = downlink(&relay_a, acme_host, NULL, CR_HTTP_H2C);
    ok(s != NULL);
    cr_test_sleep_ms(1000);
    while (s != NULL && got < N && next_frame(s, &frame, 5000, NULL) == 0) {
        cr_test_mp_text(frame.base, frame.len, "id", id, sizeof(id));
        if (cr_mp_map_get(frame.base, frame.len, "act", &act) != 0 || cr_action_decode(&a, act.base, act.len, NULL) != 0 ||
            !cr_span_eq(a.aid, want_ids[got], CR_ULID_LEN)) {
            in_order = 0;
        } else {
            cr_span_t audio;
            cr_mp_item_t it;
            if (cr_mp_map_get(a.b.raw.base, a.b.raw.len, "audio", &audio) != 0 ||
                cr_mp_read(audio.base, audio.base + audio.len, &it) == 0 || it.bytes.len != AUDIO ||
                (unsigned char)it.bytes.base[AUDIO - 1] != 'a' + got % 26 || !cr_span_eq(a.by, acme_dev_id, strlen(acme_dev_id)))
                exact = 0;
        }
        ++got;
        snprintf(last_id, sizeof(last_id), "%s", id);
    }
    okf(got == N && in_order && exact, "%d of %d actions, in order %d, intact %d", got, N, in_order, exact);
    if (s != NULL)
        expect_quiet(s, "after the big backlog");
    cr_test_stream_close(s);
    snprintf(body, sizeof(body), "{\"cursor\": \"%s\"}", last_id);
    ok(post_json(&resp, &relay_a, "/v1/host/actions/ack", acme_host, body) == 200);
    cr_test_resp_free(&resp);
    cr_buf_free(&b);
    cr_buf_free(&env);
    cr_buf_free(&frame);
}

static void test_pings(void)
{
    /* over HTTP/2 and over HTTP/1.1 (chunked): {k:"ping"} on an idle downlink every PING_MS */
    int flags[2] = {CR_HTTP_H2C, 0};
    for (int i = 0; i < 2; ++i) {
        cr_test_stream_t *s = downlink(&relay_a, acme_host, last_id, flags[i]);
        cr_buf_t frame;
        int n = 0, other = 0;
        int64_t end = cr_test_now_ms() + 5 * PING_MS;
        cr_buf_init(&frame, 1 << 20);
        ok(s != NULL);
        while (s != NULL && cr_test_now_ms() < end) {
            char k[16];
            int64_t left = end - cr_test_now_ms();
            cr_buf_reset(&frame);
            if (cr_test_stream_next(s, &frame, left > 0 ? (int)left : 0) != 0)
                break;
            ok_bytes(frame.base, frame.len, "\x81\xa1k\xa4" "ping", 8);
            if (strcmp(cr_test_mp_text(frame.base, frame.len, "k", k, sizeof(k)), "ping") == 0)
                ++n;
            else
                ++other;
        }
        okf(n >= 3 && n <= 6 && other == 0, "HTTP/%s: %d pings in %d ms, %d other frames", flags[i] ? "2" : "1.1", n, 5 * PING_MS,
            other);
        cr_test_stream_close(s);
        cr_buf_free(&frame);
    }
}

static void test_isolation(void)
{
    char aid[CR_ULID_LEN + 1], id[48], url[256];
    cr_test_stream_t *mine = downlink(&relay_a, acme_host, last_id, CR_HTTP_H2C);
    cr_test_stream_t *theirs = downlink(&relay_a, other_host, "0", CR_HTTP_H2C);
    cr_test_stream_t *second = downlink(&relay_a, acme_host2, "0", CR_HTTP_H2C);
    cr_test_resp_t resp = {0};
    cr_buf_t frame;
    cr_span_t act;
    cr_action_t a;

    cr_buf_init(&frame, 4 << 20);
    ok(mine != NULL && theirs != NULL && second != NULL);
    if (mine == NULL || theirs == NULL || second == NULL)
        goto done;
    /* acme's action reaches acme's host only: not team other's host, not acme's other host */
    ok(post_new_action(&relay_a, acme_dev, "S1", aid) == 202);
    ok(next_act(mine, &frame, id, &act) == 0 && cr_action_decode(&a, act.base, act.len, NULL) == 0 &&
       cr_span_eq(a.aid, aid, strlen(aid)));
    snprintf(last_id, sizeof(last_id), "%s", id);
    expect_quiet(theirs, "team other's host, after acme's action");
    /* team other's action for its own session reaches its host, and not acme's */
    ok(post_new_action(&relay_a, other_dev, "S9", aid) == 202);
    ok(next_act(theirs, &frame, id, &act) == 0 && cr_action_decode(&a, act.base, act.len, NULL) == 0 &&
       cr_span_eq(a.aid, aid, strlen(aid)) && cr_span_eq(a.by, other_dev_id, strlen(other_dev_id)));
    expect_quiet(mine, "acme's host, after team other's action");
    expect_quiet(second, "acme's second host, which has no session");
    /* only host tokens have a downlink */
    snprintf(url, sizeof(url), "%s/v1/host/actions", relay_a.url);
    ok(cr_test_http(&resp, "GET", url, acme_dev, NULL, NULL, 0, CR_HTTP_H2C) == 0 && resp.status == 403);
    cr_test_resp_free(&resp);
    ok(cr_test_http(&resp, "GET", url, NULL, NULL, NULL, 0, CR_HTTP_H2C) == 0 && resp.status == 401);
    cr_test_resp_free(&resp);

    /* revoking a host's token ends its downlink at once, cleanly; the others go on */
    ok(cr_test_relay_admin(&relay_a, NULL, 0, "token", "revoke", acme_host2, NULL) == 0);
    {
        int rc2 = next_frame(second, &frame, 3000, NULL);
        okf(rc2 == -1 && cr_test_stream_ended(second), "the revoked host's downlink ended (%d)", rc2);
    }
    ok(!cr_test_stream_ended(mine) && !cr_test_stream_ended(theirs));
done:
    cr_test_stream_close(mine);
    cr_test_stream_close(theirs);
    cr_test_stream_close(second);
    cr_buf_free(&frame);
}

static void test_two_relays(void)
{
    char aid[CR_ULID_LEN + 1], id[48];
    cr_buf_t frame;
    cr_span_t act;
    cr_action_t a;
    cr_test_stream_t *s;

    cr_buf_init(&frame, 4 << 20);
    /* posted on B, streamed from A */
    s = downlink(&relay_a, acme_host, last_id, CR_HTTP_H2C);
    ok(s != NULL);
    cr_test_sleep_ms(200); /* let A's subscription to the team's notices be made */
    ok(post_new_action(&relay_b, acme_dev, "S1", aid) == 202);
    ok(s != NULL && next_act(s, &frame, id, &act) == 0 && cr_action_decode(&a, act.base, act.len, NULL) == 0 &&
       cr_span_eq(a.aid, aid, strlen(aid)));
    snprintf(last_id, sizeof(last_id), "%s", id);
    cr_test_stream_close(s);

    /* posted on A, streamed from B, whose pings (and rereads) come only every 20 s: the notice carries it */
    s = downlink(&relay_b, acme_host, last_id, CR_HTTP_H2C);
    ok(s != NULL);
    cr_test_sleep_ms(1200); /* past B's first catch-up read, so that only the notice can bring the action */
    {
        int64_t t0 = cr_test_now_ms();
        ok(post_new_action(&relay_a, acme_dev, "S1", aid) == 202);
        ok(s != NULL && next_act(s, &frame, id, &act) == 0 && cr_action_decode(&a, act.base, act.len, NULL) == 0 &&
           cr_span_eq(a.aid, aid, strlen(aid)));
        okf(cr_test_now_ms() - t0 < 2000, "delivered through relay B in %lld ms", (long long)(cr_test_now_ms() - t0));
    }
    snprintf(last_id, sizeof(last_id), "%s", id);
    cr_test_stream_close(s);
    cr_buf_free(&frame);
}

/* Waits until relay r answers /readyz with 200 (Redis usable), up to 10 s. */
static int wait_ready(const cr_test_relay_t *r)
{
    char url[256];
    int64_t deadline = cr_test_now_ms() + 10000;
    snprintf(url, sizeof(url), "%s/readyz", r->url);
    while (cr_test_now_ms() < deadline) {
        cr_test_resp_t resp = {0};
        long st = cr_test_http(&resp, "GET", url, NULL, NULL, NULL, 0, 0) == 0 ? resp.status : 0;
        cr_test_resp_free(&resp);
        if (st == 200)
            return 0;
        cr_test_sleep_ms(50);
    }
    return -1;
}

static void test_redis_outage(void)
{
    char aid[CR_ULID_LEN + 1], id[48], json[256];
    cr_test_stream_t *s = downlink(&relay_a, acme_host, last_id, CR_HTTP_H2C);
    cr_test_resp_t resp = {0};
    cr_buf_t frame;
    cr_span_t act;
    cr_action_t a;

    cr_buf_init(&frame, 4 << 20);
    ok(s != NULL);
    /* Redis dies: the downlink ends (the host reconnects with backoff), actions answer 503 + Retry-After */
    ok(cr_test_redis_kill(&redis) == 0);
    {
        int rc2 = s != NULL ? next_frame(s, &frame, 3000, NULL) : -1;
        okf(rc2 == -1, "the downlink ended when Redis went away (%d)", rc2);
    }
    cr_test_stream_close(s);
    cr_ulid_new(aid);
    snprintf(json, sizeof(json), "{\"sid\": \"S1\", \"k\": \"approve\", \"aid\": \"%s\"}", aid);
    ok(post_json(&resp, &relay_a, "/v1/actions", acme_dev, json) == 503);
    ok_str(resp.retry_after, "1");
    cr_test_resp_free(&resp);
    /* it comes back (from its AOF): the same action goes through, and reaches a new downlink */
    ok(cr_test_redis_restart(&redis) == 0);
    redisFree(rc);
    rc = cr_test_redis_connect(&redis);
    ok(wait_ready(&relay_a) == 0);
    s = downlink(&relay_a, acme_host, last_id, CR_HTTP_H2C);
    ok(s != NULL);
    ok(post_json(&resp, &relay_a, "/v1/actions", acme_dev, json) == 202);
    cr_test_resp_free(&resp);
    ok(s != NULL && next_act(s, &frame, id, &act) == 0 && cr_action_decode(&a, act.base, act.len, NULL) == 0 &&
       cr_span_eq(a.aid, aid, strlen(aid)));
    snprintf(last_id, sizeof(last_id), "%s", id);
    cr_test_stream_close(s);
    ok(wait_ready(&relay_b) == 0);
    cr_buf_free(&frame);
}

/* ---- graceful shutdown, watched with libcurl itself to tell a clean end from a reset ---------------------------- */

typedef struct {
    size_t bytes;
} sink_t;

static size_t on_sink(char *p, size_t size, size_t n, void *data)
{
    ((sink_t *)data)->bytes += size * n;
    (void)p;
    return size * n;
}

static void test_shutdown(void)
{
    cr_test_relay_t c = {0};
    const char *env[] = {"CORRAL_DOWNLINK_PING_MS=100", NULL};
    char url[256], auth[128];
    CURLM *m = curl_multi_init();
    CURL *e[2];
    struct curl_slist *hdrs = NULL;
    sink_t sink[2] = {{0}, {0}};
    CURLcode result[2] = {CURLE_GOT_NOTHING, CURLE_GOT_NOTHING};
    int running = 0, status = -1, done = 0;
    int64_t deadline;

    if (cr_test_relay_start(&c, cr_test_redis_url(&redis), env) != 0) {
        ok(!"relay C starts");
        curl_multi_cleanup(m);
        return;
    }
    snprintf(url, sizeof(url), "%s/v1/host/actions?after=%s", c.url, last_id);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", acme_host);
    hdrs = curl_slist_append(hdrs, auth);
    for (int i = 0; i < 2; ++i) {
        e[i] = curl_easy_init();
        curl_easy_setopt(e[i], CURLOPT_URL, url);
        curl_easy_setopt(e[i], CURLOPT_HTTPHEADER, hdrs);
        curl_easy_setopt(e[i], CURLOPT_HTTP_VERSION,
                         i == 0 ? (long)CURL_HTTP_VERSION_2_PRIOR_KNOWLEDGE : (long)CURL_HTTP_VERSION_1_1);
        curl_easy_setopt(e[i], CURLOPT_WRITEFUNCTION, on_sink);
        curl_easy_setopt(e[i], CURLOPT_WRITEDATA, &sink[i]);
        curl_easy_setopt(e[i], CURLOPT_PRIVATE, (char *)(intptr_t)i);
        curl_multi_add_handle(m, e[i]);
    }
    /* both streams are open once pings have come on each */
    deadline = cr_test_now_ms() + 5000;
    while ((sink[0].bytes == 0 || sink[1].bytes == 0) && cr_test_now_ms() < deadline) {
        curl_multi_poll(m, NULL, 0, 50, NULL);
        curl_multi_perform(m, &running);
    }
    okf(sink[0].bytes > 0 && sink[1].bytes > 0, "both downlinks are streaming (%zu, %zu bytes)", sink[0].bytes, sink[1].bytes);

    /* SIGTERM: the streams end with END_STREAM / the last chunk, and the relay exits 0 */
    kill(c.pid, SIGTERM);
    deadline = cr_test_now_ms() + 8000;
    while (done < 2 && cr_test_now_ms() < deadline) {
        CURLMsg *msg;
        int left;
        curl_multi_poll(m, NULL, 0, 50, NULL);
        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left)) != NULL) {
            char *priv;
            if (msg->msg != CURLMSG_DONE)
                continue;
            curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, &priv);
            result[(intptr_t)priv] = msg->data.result;
            ++done;
        }
    }
    okf(result[0] == CURLE_OK, "HTTP/2: the stream ended cleanly (%s)", curl_easy_strerror(result[0]));
    okf(result[1] == CURLE_OK, "HTTP/1.1: the stream ended cleanly (%s)", curl_easy_strerror(result[1]));
    deadline = cr_test_now_ms() + 8000;
    while (cr_test_reap(c.pid, 0, &status) == 0 && cr_test_now_ms() < deadline)
        cr_test_sleep_ms(20);
    okf(status != -1 && WIFEXITED(status) && WEXITSTATUS(status) == 0, "the relay exited 0 (wait status %d)", status);
    if (status == -1)
        note("relay C log:\n%s", cr_test_relay_log_tail(&c));
    c.pid = 0; /* reaped here */
    cr_test_relay_stop(&c);
    for (int i = 0; i < 2; ++i) {
        curl_multi_remove_handle(m, e[i]);
        curl_easy_cleanup(e[i]);
    }
    curl_slist_free_all(hdrs);
    curl_multi_cleanup(m);
}

/* A new token of team and kind into out (64 bytes), through `corral-relay admin`. Returns its exit status. */
static int make_token(char out[64], const char *team, const char *kind)
{
    return cr_test_relay_admin(&relay_a, out, 64, "token", "create", "--team", team, "--kind", kind, NULL);
}

int main(void)
{
    char ping_env[64];
    const char *env_a[] = {ping_env, NULL};
    snprintf(ping_env, sizeof(ping_env), "CORRAL_DOWNLINK_PING_MS=%d", PING_MS);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    if (cr_test_redis_start(&redis) != 0 || (rc = cr_test_redis_connect(&redis)) == NULL) {
        ok(0);
        return done_testing();
    }
    if (cr_test_relay_start(&relay_a, cr_test_redis_url(&redis), env_a) != 0 ||
        cr_test_relay_start(&relay_b, cr_test_redis_url(&redis), NULL) != 0) {
        ok(0);
        return done_testing();
    }
    ok(cr_test_relay_admin(&relay_a, tok, sizeof(tok), "team", "create", "acme", NULL) == 0);
    ok(cr_test_relay_admin(&relay_a, tok, sizeof(tok), "team", "create", "other", NULL) == 0);
    ok(make_token(acme_host, "acme", "host") == 0);
    ok(make_token(acme_host2, "acme", "host") == 0);
    ok(make_token(acme_dev, "acme", "device") == 0);
    ok(make_token(other_host, "other", "host") == 0);
    ok(make_token(other_dev, "other", "device") == 0);
    token_id(acme_host_id, sizeof(acme_host_id), acme_host);
    token_id(acme_host2_id, sizeof(acme_host2_id), acme_host2);
    token_id(acme_dev_id, sizeof(acme_dev_id), acme_dev);
    token_id(other_host_id, sizeof(other_host_id), other_host);
    token_id(other_dev_id, sizeof(other_dev_id), other_dev);
    make_session(acme_host, "S1");
    make_session(other_host, "S9");

    subtest("a phone's action reaches its host's downlink, once, with by stamped", test_live);
    subtest("bad actions get 400 with code and field; foreign sessions 404", test_errors);
    subtest("a host away gets its queued actions in order, once; acks drop them", test_queued_while_away);
    subtest("a slow host gets a 10 MiB backlog whole, in order (flow control)", test_backpressure);
    subtest("idle downlinks ping over HTTP/2 and HTTP/1.1", test_pings);
    subtest("a host sees only its own actions; revocation ends its downlink", test_isolation);
    subtest("two relays on one Redis deliver each other's actions", test_two_relays);
    subtest("Redis going away ends downlinks; actions wait for it (503), then flow again", test_redis_outage);
    subtest("SIGTERM ends downlinks cleanly and the relay exits 0", test_shutdown);

    int status = done_testing();
    if (status != 0) {
        note("relay A log:\n%s", cr_test_relay_log_tail(&relay_a));
        note("relay B log:\n%s", cr_test_relay_log_tail(&relay_b));
    }
    redisFree(rc);
    cr_test_relay_stop(&relay_a);
    cr_test_relay_stop(&relay_b);
    cr_test_redis_stop(&redis);
    curl_global_cleanup();
    return status;
}
