/* relay_ws.c — the phones' WebSocket GET /v1/ws against real relays and Redis: replay, synced, live, after=, auth by
 * header and subprotocol, teams kept apart, revocation (4401), shutdown (1001), slow phones (1008), oversized
 * messages (1009), pings, actions as frames, and two relays on one Redis. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <errno.h>
#include <openssl/sha.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>
#include "corral/buf.h"
#include "corral/codec.h"
#include "corral/envelope.h"
#include "corral/json.h"
#include "corral/mp.h"
#include "corral/ulid.h"
#include "mp_text.h"
#include "harness.h"
#include "http_client.h"
#include "redis_server.h"
#include "relay_proc.h"
#include "ws_client.h"

#define WAIT_MS 5000 /* for a frame that must come */
#define QUIET_MS 300 /* for a frame that must not */

static cr_test_redis_t redis;
static cr_test_relay_t relay_a, relay_b;
static redisContext *rc;

typedef struct st_team_t {
    const char *name;
    char admin[64], device[64], host[64];
    char host_id[65];
} team_t;
static team_t acme = {.name = "acme"}, beta = {.name = "beta"}, gam = {.name = "gamma"};

/* ---- helpers --------------------------------------------------------------------------------------------------- */

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* The raw msgpack value under key (len 0 when absent). */
static cr_span_t mp_value(const char *mp, size_t len, const char *key)
{
    cr_span_t v = {NULL, 0};
    size_t used;
    if (cr_mp_check(mp, len, NULL, len, NULL, &used) != 0 || cr_mp_map_get(mp, len, key, &v) != 0)
        v.len = 0;
    return v;
}

/* The error code of an error frame or document {error: {code}} ("" when none). */
static const char *error_code(const char *mp, size_t len, char *out, size_t outlen)
{
    cr_span_t e = mp_value(mp, len, "error");
    out[0] = '\0';
    if (e.len != 0)
        cr_test_mp_text(e.base, e.len, "code", out, outlen);
    return out;
}

static const char *k_of(const cr_buf_t *f, char *out, size_t outlen)
{
    return cr_test_mp_text(f->base, f->len, "k", out, outlen);
}

/* Hex SHA-256 of a token: what cr:tok:<hash> is keyed by. */
static void token_hash(char out[65], const char *token)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)token, strlen(token), md);
    cr_hex_encode(out, md, sizeof(md));
}

static int make_team(team_t *t)
{
    char hash[65];
    redisReply *r;
    if (cr_test_relay_admin(&relay_a, t->admin, sizeof(t->admin), "team", "create", t->name, NULL) != 0 ||
        cr_test_relay_admin(&relay_a, t->device, sizeof(t->device), "token", "create", "--team", t->name, "--kind", "device",
                            "--label", "phone", NULL) != 0 ||
        cr_test_relay_admin(&relay_a, t->host, sizeof(t->host), "token", "create", "--team", t->name, "--kind", "host",
                            "--label", "laptop", NULL) != 0)
        return -1;
    token_hash(hash, t->host);
    if ((r = redisCommand(rc, "HGET cr:tok:%s id", hash)) == NULL || r->type != REDIS_REPLY_STRING) {
        if (r != NULL)
            freeReplyObject(r);
        return -1;
    }
    snprintf(t->host_id, sizeof(t->host_id), "%s", r->str);
    freeReplyObject(r);
    return 0;
}

/* The envelope of agent.message seq in session sid; with big > 0, a sealed body of that many bytes instead (the
 * relay routes sealed bodies without opening them). */
static void make_event(cr_buf_t *out, const char *sid, uint64_t seq, size_t big)
{
    char json[128];
    cr_buf_t body;
    cr_event_t ev;
    cr_buf_init(&body, 1 << 21);
    if (big > 0) {
        unsigned char h[5] = {0xc6, (unsigned char)(big >> 24), (unsigned char)(big >> 16), (unsigned char)(big >> 8),
                              (unsigned char)big};
        cr_buf_append(&body, h, 5);
        cr_buf_reserve(&body, big);
        body.base[body.len] = 0x01;
        for (size_t i = 1; i < big; ++i)
            body.base[body.len + i] = (char)(i * 131 + seq);
        body.len += big;
    } else {
        snprintf(json, sizeof(json), "{\"text\":\"event %llu of %s\"}", (unsigned long long)seq, sid);
        cr_json_to_msgpack(&body, json, strlen(json), NULL);
    }
    memset(&ev, 0, sizeof(ev));
    ev.v = CR_PROTOCOL_VERSION;
    ev.kind = CR_EV_AGENT_MESSAGE;
    ev.k = CR_SPAN_LIT("agent.message");
    ev.sid = (cr_span_t){sid, strlen(sid)};
    ev.seq = seq;
    ev.ts = 1732000000000ull + seq;
    ev.pri = 1;
    ev.b.raw = (cr_span_t){body.base, body.len};
    cr_buf_init(out, 1 << 20);
    if (cr_event_encode(out, &ev) != 0)
        note("cr_event_encode: %s", cr_error_last()->message);
    cr_buf_free(&body);
}

/* Posts events seq first..first+n-1 of sid as t's host to relay r (big: see make_event). Returns 0 or -1. */
static int post_events(team_t *t, cr_test_relay_t *r, const char *sid, uint64_t first, int n, size_t big)
{
    cr_buf_t env, batch;
    cr_test_resp_t resp;
    char url[128];
    int rcode = 0;
    cr_buf_init(&batch, 8 << 20);
    for (int i = 0; i < n;) {
        int m = 0;
        batch.len = 0;
        cr_buf_append(&batch, "\xdd\0\0\0\0", 5);
        for (; i < n && m < 500 && batch.len < (700u << 10); ++i, ++m) {
            make_event(&env, sid, first + (uint64_t)i, big);
            cr_buf_append(&batch, env.base, env.len);
            cr_buf_free(&env);
        }
        batch.base[3] = (char)(m >> 8), batch.base[4] = (char)m;
        snprintf(url, sizeof(url), "%s/v1/host/events", r->url);
        if (cr_test_http(&resp, "POST", url, t->host, "application/msgpack", batch.base, batch.len, CR_HTTP_H2C) != 0 ||
            resp.status != 200) {
            note("POST /v1/host/events: %ld %s", resp.status, resp.body != NULL ? resp.body : "");
            rcode = -1;
        }
        cr_test_resp_free(&resp);
        if (rcode != 0)
            break;
    }
    cr_buf_free(&batch);
    return rcode;
}

/* Connects a phone to relay r at path. Returns what cr_test_ws_connect does. */
static int phone(cr_test_ws_t *ws, cr_test_relay_t *r, const char *path, const char *token, const char *protocols)
{
    memset(ws, 0, sizeof(*ws));
    return cr_test_ws_connect(ws, r->port, path, token, protocols, WAIT_MS);
}

/* Receives one message into f (emptied first). */
static int next(cr_test_ws_t *ws, cr_buf_t *f, int timeout_ms)
{
    f->len = 0;
    return cr_test_ws_recv(ws, f, NULL, timeout_ms);
}

/* Reads ev frames until {k:"synced"}: checks that they are events seq first..first+n-1 of sid, in order, with the
 * envelope's exact bytes and t's host. Stores the last id in last_id (when not NULL). Returns the number of ev
 * frames that matched, or -1 when synced never came. */
static int expect_replay(cr_test_ws_t *ws, team_t *t, const char *sid, uint64_t first, int n, size_t big, char *last_id)
{
    cr_buf_t f, env;
    char k[16], id[64], host[80], prev[64] = "";
    int good = 0, i = 0;
    cr_buf_init(&f, CR_WS_MAX_MESSAGE);
    for (;; ++i) {
        if (next(ws, &f, WAIT_MS) != 0) {
            note("no synced after %d frames (close %d)", i, ws->close_code);
            good = -1;
            break;
        }
        k_of(&f, k, sizeof(k));
        if (strcmp(k, "synced") == 0)
            break;
        if (strcmp(k, "ev") != 0) {
            note("frame %d: k = '%s'", i, k);
            continue;
        }
        cr_test_mp_text(f.base, f.len, "id", id, sizeof(id));
        cr_test_mp_text(f.base, f.len, "host", host, sizeof(host));
        cr_span_t e = mp_value(f.base, f.len, "e");
        make_event(&env, sid, first + (uint64_t)i, big);
        if (i < n && e.len == env.len && memcmp(e.base, env.base, env.len) == 0 && strcmp(host, t->host_id) == 0 && id[0] != '\0' &&
            strcmp(id, prev) != 0)
            ++good;
        else if (good == i)
            note("frame %d differs (id %s, host %s, e %zu bytes, want %zu)", i, id, host, e.len, env.len);
        cr_buf_free(&env);
        snprintf(prev, sizeof(prev), "%s", id);
    }
    if (good >= 0 && i != n) {
        note("%d ev frames before synced, want %d", i, n);
        good = good > 0 ? -good : -1;
    }
    if (last_id != NULL)
        snprintf(last_id, 64, "%s", prev);
    cr_buf_free(&f);
    return good;
}

/* Waits for one live ev frame and checks it is event seq of sid. Returns 1 when it is. */
static int expect_live(cr_test_ws_t *ws, team_t *t, const char *sid, uint64_t seq, size_t big, char *id_out)
{
    cr_buf_t f, env;
    char k[16], host[80];
    int good = 0;
    cr_buf_init(&f, CR_WS_MAX_MESSAGE);
    if (next(ws, &f, WAIT_MS) != 0) {
        note("no live frame (close %d)", ws->close_code);
    } else {
        cr_span_t e = mp_value(f.base, f.len, "e");
        make_event(&env, sid, seq, big);
        good = strcmp(k_of(&f, k, sizeof(k)), "ev") == 0 && strcmp(cr_test_mp_text(f.base, f.len, "host", host, sizeof(host)), t->host_id) == 0 &&
               e.len == env.len && memcmp(e.base, env.base, env.len) == 0;
        if (id_out != NULL)
            cr_test_mp_text(f.base, f.len, "id", id_out, 64);
        if (!good)
            note("live frame: k %s, host %s, e %zu bytes (want seq %llu)", k, host, e.len, (unsigned long long)seq);
        cr_buf_free(&env);
    }
    cr_buf_free(&f);
    return good;
}

/* 1 when nothing arrives within QUIET_MS. */
static int quiet(cr_test_ws_t *ws)
{
    cr_buf_t f;
    int rcode;
    cr_buf_init(&f, CR_WS_MAX_MESSAGE);
    rcode = next(ws, &f, QUIET_MS);
    if (rcode == 0) {
        char k[16];
        note("unexpected frame k=%s", k_of(&f, k, sizeof(k)));
    }
    cr_buf_free(&f);
    return rcode == CR_EAGAIN;
}

/* Waits for the connection to end; returns the close code (1006 when none came). */
static int wait_close(cr_test_ws_t *ws, int timeout_ms)
{
    cr_buf_t f;
    int64_t deadline = now_ms() + timeout_ms;
    cr_buf_init(&f, CR_WS_MAX_MESSAGE);
    while (now_ms() < deadline && next(ws, &f, (int)(deadline - now_ms())) != -1)
        ;
    cr_buf_free(&f);
    return ws->close_code;
}

/* ---- tests ----------------------------------------------------------------------------------------------------- */

static char last_seen[64]; /* the last event id the phone of test_replay_synced_live saw */

static void test_replay_synced_live(void)
{
    cr_test_ws_t ws;
    char id[64];
    long long fanout0 = cr_test_relay_metric(&relay_b, "corral_fanout_frames_total");
    ok(post_events(&acme, &relay_a, "s1", 1, 3, 0) == 0);
    ok(phone(&ws, &relay_b, "/v1/ws", acme.device, NULL) == 0);
    ok(ws.status == 101);
    ok_str(ws.protocol, ""); /* no subprotocol offered, none answered */
    okf(expect_replay(&ws, &acme, "s1", 1, 3, 0, id) == 3, "the three stored events, in order, then synced");
    ok(cr_test_relay_metric(&relay_b, "corral_websockets_open") == 1);
    ok(post_events(&acme, &relay_a, "s1", 4, 1, 0) == 0);
    okf(expect_live(&ws, &acme, "s1", 4, 0, last_seen), "event 4 live, posted to relay A, seen on relay B");
    ok(post_events(&acme, &relay_a, "s1", 5, 2, 0) == 0);
    ok(expect_live(&ws, &acme, "s1", 5, 0, NULL));
    ok(expect_live(&ws, &acme, "s1", 6, 0, last_seen));
    ok(cr_test_relay_metric(&relay_b, "corral_fanout_frames_total") - fanout0 == 6);
    cr_test_ws_close(&ws);
    sleep_ms(100);
    ok(cr_test_relay_metric(&relay_b, "corral_websockets_open") == 0);
    ok(cr_test_relay_metric(&relay_b, "corral_websockets_total") >= 1);
}

static void test_reconnect_after(void)
{
    cr_test_ws_t ws;
    char path[128], id[64];
    /* the phone is away while events 7..9 are posted; it comes back with after= the last id it saw */
    ok(post_events(&acme, &relay_a, "s1", 7, 3, 0) == 0);
    snprintf(path, sizeof(path), "/v1/ws?after=%s", last_seen);
    ok(phone(&ws, &relay_a, path, acme.device, NULL) == 0);
    okf(expect_replay(&ws, &acme, "s1", 7, 3, 0, id) == 3, "only the three it missed");
    snprintf(last_seen, sizeof(last_seen), "%s", id);
    cr_test_ws_close(&ws);

    /* after= the very last id: nothing to replay */
    snprintf(path, sizeof(path), "/v1/ws?after=%s", last_seen);
    ok(phone(&ws, &relay_b, path, acme.device, NULL) == 0);
    ok(expect_replay(&ws, &acme, "s1", 10, 0, 0, NULL) == 0);
    ok(post_events(&acme, &relay_a, "s1", 10, 1, 0) == 0);
    ok(expect_live(&ws, &acme, "s1", 10, 0, last_seen));
    cr_test_ws_close(&ws);

    /* after=$ (and now): live only */
    ok(phone(&ws, &relay_b, "/v1/ws?after=$", acme.device, NULL) == 0);
    ok(expect_replay(&ws, &acme, "s1", 11, 0, 0, NULL) == 0);
    ok(post_events(&acme, &relay_a, "s1", 11, 1, 0) == 0);
    ok(expect_live(&ws, &acme, "s1", 11, 0, NULL));
    cr_test_ws_close(&ws);
    ok(phone(&ws, &relay_a, "/v1/ws?after=now", acme.device, NULL) == 0);
    ok(expect_replay(&ws, &acme, "s1", 12, 0, 0, NULL) == 0);
    cr_test_ws_close(&ws);

    /* a bad after= is refused before the upgrade */
    ok(phone(&ws, &relay_a, "/v1/ws?after=yesterday", acme.device, NULL) == 1);
    ok(ws.status == 400);
    char code[32];
    cr_buf_t mp;
    cr_buf_init(&mp, 1 << 16);
    ok(ws.body != NULL && cr_json_to_msgpack(&mp, ws.body, ws.body_len, NULL) == 0);
    ok_str(error_code(mp.base, mp.len, code, sizeof(code)), "bad_request");
    cr_buf_free(&mp);
    cr_test_ws_close(&ws);
}

static void test_paging(void)
{
    cr_test_ws_t ws;
    /* a session of 450 events replays across pages of 200, in order, with nothing lost or repeated; events posted
     * while it replays come after synced */
    ok(post_events(&beta, &relay_a, "long", 1, 450, 0) == 0);
    ok(phone(&ws, &relay_b, "/v1/ws", beta.device, NULL) == 0);
    okf(expect_replay(&ws, &beta, "long", 1, 450, 0, NULL) == 450, "450 events across three pages");
    ok(post_events(&beta, &relay_a, "long", 451, 1, 0) == 0);
    ok(expect_live(&ws, &beta, "long", 451, 0, NULL));
    cr_test_ws_close(&ws);
}

/* Reads until want ev frames came (and synced): 1 when they are seq 1..want once each, in order, with one synced
 * after at least the first `stored` of them and nothing after. */
static int read_all_once(cr_test_ws_t *ws, int want, int stored)
{
    cr_buf_t f;
    char k[16], seq[24];
    int n = 0, synced_at = -1, good = 1;
    cr_buf_init(&f, CR_WS_MAX_MESSAGE);
    while ((n < want || synced_at < 0) && next(ws, &f, WAIT_MS) == 0) {
        if (strcmp(k_of(&f, k, sizeof(k)), "synced") == 0) {
            if (synced_at >= 0)
                note("synced twice"), good = 0;
            synced_at = n;
            continue;
        }
        cr_span_t e = mp_value(f.base, f.len, "e");
        cr_test_mp_text(e.base, e.len, "seq", seq, sizeof(seq));
        if (atoi(seq) != n + 1 && good)
            note("frame %d is seq %s", n, seq), good = 0;
        ++n;
    }
    if (n != want || synced_at < stored)
        note("%d frames, synced after %d", n, synced_at), good = 0;
    cr_buf_free(&f);
    return good && quiet(ws);
}

static void test_live_during_replay(void)
{
    cr_test_ws_t ws;
    /* 40 events of ~200 KiB; the phone connects and reads nothing, so the replay waits for it while 2 more are
     * posted: held back, they come once each after synced (or within the replay, but never twice) */
    ok(post_events(&gam, &relay_a, "fat", 1, 40, 200000) == 0);
    ok(phone(&ws, &relay_b, "/v1/ws", gam.device, NULL) == 0);
    sleep_ms(300);
    ok(post_events(&gam, &relay_a, "fat", 41, 2, 0) == 0);
    okf(read_all_once(&ws, 42, 40), "42 events once each, in order, synced after the first 40");
    cr_test_ws_close(&ws);
    /* the same with 10 more big ones: more than the relay holds back, so it reads them from Redis again */
    ok(phone(&ws, &relay_b, "/v1/ws", gam.device, NULL) == 0);
    sleep_ms(300);
    ok(post_events(&gam, &relay_a, "fat", 43, 10, 200000) == 0);
    okf(read_all_once(&ws, 52, 42), "52 events once each, in order, synced after the first 42");
    cr_test_ws_close(&ws);
}

static void test_subprotocol(void)
{
    cr_test_ws_t ws;
    char protos[128];
    /* a browser: no Authorization header, the token in the subprotocol list; the relay answers corral.v1 */
    snprintf(protos, sizeof(protos), "corral.v1, bearer.%s", acme.device);
    ok(phone(&ws, &relay_a, "/v1/ws?after=$", NULL, protos) == 0);
    ok(ws.status == 101);
    ok_str(ws.protocol, "corral.v1");
    ok(expect_replay(&ws, &acme, "s1", 1, 0, 0, NULL) == 0);
    cr_test_ws_close(&ws);

    /* an admin token works too */
    snprintf(protos, sizeof(protos), "corral.v1,bearer.%s", acme.admin);
    ok(phone(&ws, &relay_a, "/v1/ws?after=$", NULL, protos) == 0);
    ok_str(ws.protocol, "corral.v1");
    cr_test_ws_close(&ws);

    /* protocols offered without corral.v1: nothing the relay could answer */
    snprintf(protos, sizeof(protos), "bearer.%s", acme.device);
    ok(phone(&ws, &relay_a, "/v1/ws?after=$", NULL, protos) == 1);
    ok(ws.status == 400);
    cr_test_ws_close(&ws);
}

static void test_refused(void)
{
    cr_test_ws_t ws;
    cr_test_resp_t resp;
    cr_buf_t mp;
    char url[128], code[32], protos[128];
    cr_buf_init(&mp, 1 << 16);

    /* a bad token: the 401 JSON error, no upgrade */
    ok(phone(&ws, &relay_a, "/v1/ws", "crt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL) == 1);
    ok(ws.status == 401);
    ok(ws.body != NULL && cr_json_to_msgpack(&mp, ws.body, ws.body_len, NULL) == 0);
    ok_str(error_code(mp.base, mp.len, code, sizeof(code)), "unauthorized");
    cr_test_ws_close(&ws);
    ok(phone(&ws, &relay_a, "/v1/ws", NULL, NULL) == 1);
    ok(ws.status == 401);
    cr_test_ws_close(&ws);
    snprintf(protos, sizeof(protos), "corral.v1, bearer.crt_nottoken");
    ok(phone(&ws, &relay_a, "/v1/ws", NULL, protos) == 1);
    ok(ws.status == 401);
    cr_test_ws_close(&ws);

    /* a host token is not a phone's */
    ok(phone(&ws, &relay_a, "/v1/ws", acme.host, NULL) == 1);
    ok(ws.status == 403);
    cr_test_ws_close(&ws);

    /* not a WebSocket: 400 bad_request, over HTTP/1.1 and HTTP/2 */
    snprintf(url, sizeof(url), "%s/v1/ws", relay_a.url);
    ok(cr_test_http(&resp, "GET", url, acme.device, NULL, NULL, 0, 0) == 0);
    ok(resp.status == 400);
    mp.len = 0;
    ok(cr_json_to_msgpack(&mp, resp.body, resp.body_len, NULL) == 0);
    ok_str(error_code(mp.base, mp.len, code, sizeof(code)), "bad_request");
    cr_test_resp_free(&resp);
    ok(cr_test_http(&resp, "GET", url, acme.device, NULL, NULL, 0, CR_HTTP_H2C) == 0);
    ok(resp.status == 400 && resp.http_version == 2);
    cr_test_resp_free(&resp);
    ok(cr_test_http(&resp, "GET", url, NULL, NULL, NULL, 0, 0) == 0);
    ok(resp.status == 401);
    cr_test_resp_free(&resp);
    cr_buf_free(&mp);
}

static void test_teams_apart(void)
{
    cr_test_ws_t a, b;
    char k[16];
    cr_buf_t f;
    cr_buf_init(&f, CR_WS_MAX_MESSAGE);
    /* beta's phone replays only beta's events (the 451 of test_paging), never acme's */
    ok(phone(&b, &relay_a, "/v1/ws", beta.device, NULL) == 0);
    ok(expect_replay(&b, &beta, "long", 1, 451, 0, NULL) == 451);
    ok(phone(&a, &relay_b, "/v1/ws?after=$", acme.device, NULL) == 0);
    ok(expect_replay(&a, &acme, "s1", 1, 0, 0, NULL) == 0);
    /* acme's live events reach acme's phone only */
    ok(post_events(&acme, &relay_b, "s2", 1, 2, 0) == 0);
    ok(expect_live(&a, &acme, "s2", 1, 0, NULL));
    ok(expect_live(&a, &acme, "s2", 2, 0, NULL));
    okf(quiet(&b), "nothing of acme on beta's socket");
    /* and beta's reach beta's only */
    ok(post_events(&beta, &relay_b, "long", 452, 1, 0) == 0);
    ok(expect_live(&b, &beta, "long", 452, 0, NULL));
    okf(quiet(&a), "nothing of beta on acme's socket");
    /* the connection is still fine */
    ok(cr_test_ws_send(&a, CR_WS_BINARY, "\x81\xa1k\xa4ping", 8) == 0);
    ok(next(&a, &f, WAIT_MS) == 0 && strcmp(k_of(&f, k, sizeof(k)), "pong") == 0);
    cr_test_ws_close(&a);
    cr_test_ws_close(&b);
    cr_buf_free(&f);
}

static void test_frames(void)
{
    cr_test_ws_t ws;
    cr_buf_t f, act;
    char k[16], code[32], v[64], aid[27], json[256];
    int op = 0;
    cr_buf_init(&f, CR_WS_MAX_MESSAGE);
    cr_buf_init(&act, 1 << 16);
    ok(phone(&ws, &relay_a, "/v1/ws?after=$", acme.device, NULL) == 0);
    ok(expect_replay(&ws, &acme, "s1", 1, 0, 0, NULL) == 0);

    /* {k:"ping"} -> {k:"pong"}, in msgpack and in JSON */
    ok(cr_test_ws_send(&ws, CR_WS_BINARY, "\x81\xa1k\xa4ping", 8) == 0);
    ok(next(&ws, &f, WAIT_MS) == 0 && strcmp(k_of(&f, k, sizeof(k)), "pong") == 0);
    ok(cr_test_ws_send(&ws, CR_WS_TEXT, "{\"k\": \"ping\"}", 13) == 0);
    f.len = 0;
    ok(cr_test_ws_recv(&ws, &f, &op, WAIT_MS) == 0 && op == CR_WS_TEXT);
    ok_bytes(f.base, f.len, "{\"k\":\"pong\"}", 12);

    /* anything else: an error frame, and the connection stays */
    ok(cr_test_ws_send(&ws, CR_WS_BINARY, "\xc1\x00", 2) == 0);
    ok(next(&ws, &f, WAIT_MS) == 0 && strcmp(k_of(&f, k, sizeof(k)), "error") == 0);
    ok_str(error_code(f.base, f.len, code, sizeof(code)), "bad_msgpack");
    ok(cr_test_ws_send(&ws, CR_WS_BINARY, "\x92\x01\x02", 3) == 0);
    ok(next(&ws, &f, WAIT_MS) == 0 && strcmp(k_of(&f, k, sizeof(k)), "error") == 0);
    ok_str(error_code(f.base, f.len, code, sizeof(code)), "bad_request");
    ok(cr_test_ws_send(&ws, CR_WS_BINARY, "\x81\xa1k\xa5hello", 9) == 0);
    ok(next(&ws, &f, WAIT_MS) == 0 && strcmp(k_of(&f, k, sizeof(k)), "error") == 0);
    ok_str(error_code(f.base, f.len, code, sizeof(code)), "bad_request");
    ok(cr_test_ws_send(&ws, CR_WS_TEXT, "{\"k\":", 5) == 0);
    f.len = 0;
    ok(cr_test_ws_recv(&ws, &f, &op, WAIT_MS) == 0 && op == CR_WS_TEXT && memmem(f.base, f.len, "bad_json", 8) != NULL);
    ok(cr_test_ws_send(&ws, CR_WS_BINARY, "\x81\xa1k\xa4ping", 8) == 0);
    ok(next(&ws, &f, WAIT_MS) == 0 && strcmp(k_of(&f, k, sizeof(k)), "pong") == 0);

    /* an action as a frame: acked with the aid and the relay's answer; the same aid again is a duplicate */
    cr_ulid_new(aid);
    snprintf(json, sizeof(json), "{\"v\":1,\"k\":\"approve\",\"sid\":\"s1\",\"aid\":\"%s\",\"ts\":1732000000000,\"b\":{}}", aid);
    ok(cr_json_to_msgpack(&act, json, strlen(json), NULL) == 0);
    ok(cr_test_ws_send(&ws, CR_WS_BINARY, act.base, act.len) == 0);
    ok(next(&ws, &f, WAIT_MS) == 0 && strcmp(k_of(&f, k, sizeof(k)), "ack") == 0);
    ok_str(cr_test_mp_text(f.base, f.len, "aid", v, sizeof(v)), aid);
    okf(strcmp(cr_test_mp_text(f.base, f.len, "status", v, sizeof(v)), "202") == 0, "status %s", v);
    ok(mp_value(f.base, f.len, "queued").len == 1);
    ok(cr_test_ws_send(&ws, CR_WS_BINARY, act.base, act.len) == 0);
    ok(next(&ws, &f, WAIT_MS) == 0 && strcmp(k_of(&f, k, sizeof(k)), "ack") == 0);
    ok_str(cr_test_mp_text(f.base, f.len, "status", v, sizeof(v)), "200");
    ok(mp_value(f.base, f.len, "duplicate").len == 1);
    /* in JSON: the answer in JSON */
    cr_ulid_new(aid);
    snprintf(json, sizeof(json), "{\"k\":\"reply\",\"sid\":\"s1\",\"aid\":\"%s\",\"b\":{\"text\":\"yes\"}}", aid);
    ok(cr_test_ws_send(&ws, CR_WS_TEXT, json, strlen(json)) == 0);
    f.len = 0;
    ok(cr_test_ws_recv(&ws, &f, &op, WAIT_MS) == 0 && op == CR_WS_TEXT);
    act.len = 0;
    ok(cr_json_to_msgpack(&act, f.base, f.len, NULL) == 0);
    ok_str(cr_test_mp_text(act.base, act.len, "k", v, sizeof(v)), "ack");
    ok_str(cr_test_mp_text(act.base, act.len, "aid", v, sizeof(v)), aid);
    ok_str(cr_test_mp_text(act.base, act.len, "status", v, sizeof(v)), "202");
    /* a bad action: acked with its error */
    snprintf(json, sizeof(json), "{\"k\":\"approve\",\"sid\":\"nosuch\",\"aid\":\"%s\"}", "01JD3ZK4Q8V6N2B7C9XWRT5M0Z");
    act.len = 0;
    ok(cr_json_to_msgpack(&act, json, strlen(json), NULL) == 0);
    ok(cr_test_ws_send(&ws, CR_WS_BINARY, act.base, act.len) == 0);
    ok(next(&ws, &f, WAIT_MS) == 0 && strcmp(k_of(&f, k, sizeof(k)), "ack") == 0);
    ok_str(cr_test_mp_text(f.base, f.len, "status", v, sizeof(v)), "404");
    ok_str(cr_test_mp_text(f.base, f.len, "aid", v, sizeof(v)), "01JD3ZK4Q8V6N2B7C9XWRT5M0Z");
    ok_str(error_code(f.base, f.len, code, sizeof(code)), "not_found");

    /* a message over the action limit: close 1009 */
    size_t big = (256u << 10) + (2u << 20) + 16;
    char *junk = calloc(1, big);
    ok(junk != NULL && cr_test_ws_send(&ws, CR_WS_BINARY, junk, big) == 0);
    free(junk);
    ok(wait_close(&ws, WAIT_MS) == 1009);
    cr_test_ws_close(&ws);
    cr_buf_free(&f);
    cr_buf_free(&act);
}

static void test_revoked(void)
{
    cr_test_ws_t ws, mute, other;
    char token[64], c;
    int64_t t0;
    long long open0 = cr_test_relay_metric(&relay_b, "corral_websockets_open");
    /* a second device of acme with two sockets; its token is revoked while they are open */
    ok(cr_test_relay_admin(&relay_a, token, sizeof(token), "token", "create", "--team", "acme", "--kind", "device", NULL) == 0);
    ok(phone(&ws, &relay_b, "/v1/ws?after=$", token, NULL) == 0);
    ok(expect_replay(&ws, &acme, "s1", 1, 0, 0, NULL) == 0);
    ok(phone(&mute, &relay_b, "/v1/ws?after=$", token, NULL) == 0);
    ok(phone(&other, &relay_b, "/v1/ws?after=$", acme.device, NULL) == 0);
    ok(expect_replay(&other, &acme, "s1", 1, 0, 0, NULL) == 0);
    ok(cr_test_relay_metric(&relay_b, "corral_websockets_open") == open0 + 3);
    t0 = now_ms();
    ok(cr_test_relay_admin(&relay_a, NULL, 0, "token", "revoke", token, NULL) == 0);
    okf(wait_close(&ws, WAIT_MS) == 4401, "closed with 4401 (got %d, reason '%s')", ws.close_code, ws.close_reason);
    okf(now_ms() - t0 < 2000, "at once (%lld ms)", (long long)(now_ms() - t0));
    cr_test_ws_close(&ws);
    /* the socket that never answers the close handshake is cut off a few seconds later */
    sleep_ms(3500);
    ok(cr_test_relay_metric(&relay_b, "corral_websockets_open") == open0 + 1);
    ok(wait_close(&mute, WAIT_MS) == 4401);
    ok(recv(cr_test_ws_fd(&mute), &c, 1, MSG_DONTWAIT) == 0); /* and closed by the relay */
    cr_test_ws_close(&mute);
    /* and it cannot come back */
    ok(phone(&ws, &relay_b, "/v1/ws?after=$", token, NULL) == 1);
    ok(ws.status == 401);
    cr_test_ws_close(&ws);
    /* the other device's socket is untouched */
    ok(post_events(&acme, &relay_a, "s1", 12, 1, 0) == 0);
    ok(expect_live(&other, &acme, "s1", 12, 0, NULL));
    cr_test_ws_close(&other);
}

static void test_slow_phone(void)
{
    cr_test_ws_t ws;
    cr_buf_t f;
    int n = 0, rcode;
    /* a phone that does not read while 60 events of ~200 KiB are published: the relay keeps at most about 1 MiB
     * for it (beyond the kernel's buffers) and closes with 1008; the phone gets what was queued, then the close */
    ok(phone(&ws, &relay_a, "/v1/ws?after=$", acme.device, NULL) == 0);
    ok(expect_replay(&ws, &acme, "s1", 1, 0, 0, NULL) == 0);
    ok(post_events(&acme, &relay_b, "fat", 1, 60, 200000) == 0);
    cr_buf_init(&f, CR_WS_MAX_MESSAGE);
    while ((rcode = next(&ws, &f, WAIT_MS)) == 0)
        ++n;
    okf(ws.close_code == 1008, "closed with 1008 (got %d '%s') after %d frames", ws.close_code, ws.close_reason, n);
    ok(n < 60);
    cr_buf_free(&f);
    cr_test_ws_close(&ws);
    /* it reconnects and replays what it missed */
}

static void test_ping_flood(void)
{
    cr_test_ws_t ws;
    int sent = 0;
    long long open0 = cr_test_relay_metric(&relay_a, "corral_websockets_open"), open1 = -1;
    /* a phone that sends pings and never reads the pongs: the relay keeps a bounded queue for it, then closes the
     * connection (1008, which cannot reach a phone that does not read; the socket is cut WS_LINGER_MS later) */
    ok(phone(&ws, &relay_a, "/v1/ws?after=$", acme.device, NULL) == 0);
    /* a small receive window, so that the pongs pile up in the relay rather than in the kernel's buffers; how many
     * pings that takes depends on the machine's speed: send until the socket is cut, or 20 s */
    int rcvbuf = 4096;
    setsockopt(cr_test_ws_fd(&ws), SOL_SOCKET, SO_RCVBUF, &rcvbuf, sizeof(rcvbuf));
    int64_t until = now_ms() + 20000;
    int cut = 0;
    while (!cut && now_ms() < until)
        for (int i = 0; i < 10000; ++i, ++sent)
            if (cr_test_ws_send(&ws, CR_WS_PING, NULL, 0) != 0) {
                cut = 1;
                break;
            }
    /* either the relay cut the socket (its queue of pongs went over the bound), or it stopped reading and TCP flow
     * control stopped the phone: both keep the relay's memory bounded, which is what this checks */
    okf(cut, "the phone could not go on sending (after %d pings)", sent);
    cr_test_ws_close(&ws);
    /* the relay frees it when its next write fails: at once if one is pending, else at the keepalive (20 s) */
    for (int i = 0; i < 250 && (open1 = cr_test_relay_metric(&relay_a, "corral_websockets_open")) != open0; ++i)
        sleep_ms(100);
    if (!okf(open1 == open0, "its socket is gone (%lld open, %lld before)", open1, open0))
        note("relay log: %s", cr_test_relay_log_tail(&relay_a));
}

/* Waits until relay r answers /readyz with 200 (Redis reachable again), up to 10 s. */
static int wait_ready(cr_test_relay_t *r)
{
    cr_test_resp_t resp;
    char url[128];
    long status = 0;
    snprintf(url, sizeof(url), "%s/readyz", r->url);
    for (int i = 0; i < 100 && status != 200; ++i) {
        if (cr_test_http(&resp, "GET", url, NULL, NULL, NULL, 0, 0) == 0)
            status = resp.status;
        cr_test_resp_free(&resp);
        if (status != 200)
            sleep_ms(100);
    }
    return status == 200;
}

static void test_redis_outage(void)
{
    cr_test_ws_t ws;
    char id[64], path[128];
    /* Redis goes away: live notices could be missed meanwhile, so phones are told to come back (1013); once Redis is
     * back they reconnect with after= and get what they missed, nothing twice */
    ok(phone(&ws, &relay_b, "/v1/ws?after=$", acme.device, NULL) == 0);
    ok(expect_replay(&ws, &acme, "s1", 1, 0, 0, NULL) == 0);
    ok(post_events(&acme, &relay_a, "out", 1, 1, 0) == 0);
    ok(expect_live(&ws, &acme, "out", 1, 0, id));
    ok(cr_test_redis_kill(&redis) == 0);
    okf(wait_close(&ws, WAIT_MS) == 1013, "closed with 1013 (got %d '%s')", ws.close_code, ws.close_reason);
    cr_test_ws_close(&ws);
    ok(cr_test_redis_restart(&redis) == 0);
    ok(wait_ready(&relay_a) && wait_ready(&relay_b));
    redisFree(rc);
    rc = cr_test_redis_connect(&redis);
    ok(post_events(&acme, &relay_a, "out", 2, 2, 0) == 0);
    snprintf(path, sizeof(path), "/v1/ws?after=%s", id);
    ok(phone(&ws, &relay_b, path, acme.device, NULL) == 0);
    okf(expect_replay(&ws, &acme, "out", 2, 2, 0, NULL) == 2, "the two it missed, then synced");
    ok(post_events(&acme, &relay_a, "out", 4, 1, 0) == 0);
    ok(expect_live(&ws, &acme, "out", 4, 0, NULL));
    cr_test_ws_close(&ws);
}

static void test_shutdown(void)
{
    cr_test_relay_t c = {0};
    cr_test_ws_t ws;
    int64_t t0;
    int status = 0;
    /* a third relay; SIGTERM closes its phones with 1001 and it exits once they have answered */
    ok(cr_test_relay_start(&c, cr_test_redis_url(&redis), NULL) == 0);
    ok(phone(&ws, &c, "/v1/ws?after=$", acme.device, NULL) == 0);
    ok(expect_replay(&ws, &acme, "s1", 1, 0, 0, NULL) == 0);
    t0 = now_ms();
    ok(kill(c.pid, SIGTERM) == 0);
    okf(wait_close(&ws, WAIT_MS) == 1001, "closed with 1001 (got %d)", ws.close_code);
    cr_test_ws_close(&ws);
    for (int i = 0; i < 200 && waitpid(c.pid, &status, WNOHANG) == 0; ++i)
        sleep_ms(10);
    okf(now_ms() - t0 < 2000, "the relay exited quickly (%lld ms)", (long long)(now_ms() - t0));
    c.pid = 0; /* reaped */
    cr_test_relay_stop(&c);
}

int main(void)
{
    if (cr_test_redis_start(&redis) != 0 || (rc = cr_test_redis_connect(&redis)) == NULL ||
        cr_test_relay_start(&relay_a, cr_test_redis_url(&redis), NULL) != 0 ||
        cr_test_relay_start(&relay_b, cr_test_redis_url(&redis), NULL) != 0) {
        ok(!"redis and two relays start");
        return done_testing();
    }
    ok(make_team(&acme) == 0 && make_team(&beta) == 0 && make_team(&gam) == 0);

    subtest("replay, then synced, then live across relays", test_replay_synced_live);
    subtest("reconnect with after= replays only what was missed", test_reconnect_after);
    subtest("replay in pages", test_paging);
    subtest("live events during a replay", test_live_during_replay);
    subtest("auth by subprotocol answers corral.v1", test_subprotocol);
    subtest("refused before the upgrade", test_refused);
    subtest("teams never see each other's events", test_teams_apart);
    subtest("frames from the phone", test_frames);
    subtest("a revoked token's socket closes at once", test_revoked);
    subtest("a phone that does not read", test_slow_phone);
    subtest("a phone that writes and never reads", test_ping_flood);
    subtest("Redis going away closes phones with 1013; nothing is lost", test_redis_outage);
    subtest("graceful shutdown closes with 1001", test_shutdown);

    cr_test_relay_stop(&relay_a);
    cr_test_relay_stop(&relay_b);
    redisFree(rc);
    cr_test_redis_stop(&redis);
    return done_testing();
}
