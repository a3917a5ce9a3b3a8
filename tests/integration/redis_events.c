/* redis_events.c — envelopes in a real redis-server stream: byte-identical round trip, crash survival (AOF), cleanup. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <msgpack.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "corral/buf.h"
#include "corral/envelope.h"
#include "corral/error.h"
#include "corral/json.h"
#include "corral/mp.h"
#include "harness.h"
#include "redis_server.h"

#define N_EVENTS 200
#define STREAM "cr:{acme}:ev" /* team "acme" */
#define HOST "host-1"
#define SID "01JD3ZK4Q8V6N2B7C9XWRT5M0A"

static cr_test_redis_t redis;
static redisContext *conn;

/* What was sent: the envelope bytes, the body text inside, and the stream id XADD gave it. */
static struct {
    cr_buf_t env;
    char text[64];
    size_t textlen;
    char id[64];
} sent[N_EVENTS];

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

/* 1 when something accepts TCP connections on 127.0.0.1:port. */
static int port_accepts(int port)
{
    struct sockaddr_in sin;
    int fd = socket(AF_INET, SOCK_STREAM, 0), accepted;
    if (fd < 0)
        return 0;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    accepted = connect(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0;
    close(fd);
    return accepted;
}

/* The text of event i: every fourth one carries a NUL, CR LF and a non-ASCII letter, so that the envelope is
 * binary (and would break a client that treats values as C strings or RESP inline text). */
static void make_text(int i, char *json, size_t jsonlen)
{
    int n = snprintf(sent[i].text, sizeof(sent[i].text), "hello %d", i);
    if (i % 4 == 0) {
        memcpy(sent[i].text + n, "\0\r\n\xc3\xa9", 5);
        n += 5;
        snprintf(json, jsonlen, "{\"text\":\"hello %d\\u0000\\r\\n\\u00e9\"}", i);
    } else {
        snprintf(json, jsonlen, "{\"text\":\"hello %d\"}", i);
    }
    sent[i].textlen = (size_t)n;
}

/* Builds the envelope of agent.message number i (seq i + 1) into sent[i].env. */
static int make_event(int i)
{
    char json[128];
    cr_buf_t body;
    cr_event_t ev;
    int rc;
    make_text(i, json, sizeof(json));
    cr_buf_init(&body, 1 << 16);
    if ((rc = cr_json_to_msgpack(&body, json, strlen(json), NULL)) != 0) {
        note("cr_json_to_msgpack(%s): %s %s", json, cr_err_code(rc), cr_error_last()->message);
        cr_buf_free(&body);
        return rc;
    }
    memset(&ev, 0, sizeof(ev));
    ev.v = CR_PROTOCOL_VERSION;
    ev.kind = CR_EV_AGENT_MESSAGE;
    ev.k = CR_SPAN_LIT("agent.message");
    ev.sid = CR_SPAN_LIT(SID);
    ev.seq = (uint64_t)i + 1;
    ev.ts = 1732000000000ull + (uint64_t)i;
    if (i % 2 == 1)
        ev.idn = CR_SPAN_LIT("ana");
    ev.pri = 1;
    ev.b.raw = (cr_span_t){body.base, body.len};
    cr_buf_init(&sent[i].env, 1 << 20);
    if ((rc = cr_event_encode(&sent[i].env, &ev)) != 0)
        note("cr_event_encode(seq %d): %s %s", i + 1, cr_err_code(rc), cr_error_last()->message);
    cr_buf_free(&body);
    return rc;
}

/* XADD STREAM * host HOST sid SID seq N e <envelope>, with explicit lengths (the envelope is binary). */
static int xadd(int i)
{
    char seq[24];
    const char *argv[11] = {"XADD", STREAM, "*", "host", HOST, "sid", SID, "seq", seq, "e", sent[i].env.base};
    size_t argvlen[11];
    redisReply *reply;
    int good;
    snprintf(seq, sizeof(seq), "%d", i + 1);
    for (int a = 0; a < 10; ++a)
        argvlen[a] = strlen(argv[a]);
    argvlen[10] = sent[i].env.len;
    reply = redisCommandArgv(conn, 11, argv, argvlen);
    good = reply != NULL && reply->type == REDIS_REPLY_STRING && (size_t)reply->len < sizeof(sent[i].id);
    if (good)
        memcpy(sent[i].id, reply->str, (size_t)reply->len + 1);
    else
        note("XADD %d: %s", i + 1, reply == NULL ? conn->errstr : reply->type == REDIS_REPLY_ERROR ? reply->str : "not an id");
    if (reply != NULL)
        freeReplyObject(reply);
    return good;
}

static long long xlen(void)
{
    redisReply *reply = redisCommand(conn, "XLEN %s", STREAM);
    long long n = reply != NULL && reply->type == REDIS_REPLY_INTEGER ? reply->integer : -1;
    if (reply != NULL)
        freeReplyObject(reply);
    return n;
}

static const redisReply *field(const redisReply *fields, const char *name)
{
    for (size_t f = 0; f + 1 < fields->elements; f += 2)
        if (fields->element[f]->type == REDIS_REPLY_STRING && strcmp(fields->element[f]->str, name) == 0)
            return fields->element[f + 1];
    return NULL;
}

static int reply_is(const redisReply *r, const char *s, size_t n)
{
    return r != NULL && r->type == REDIS_REPLY_STRING && (size_t)r->len == n && memcmp(r->str, s, n) == 0;
}

/* Checks one XRANGE entry [id, [field, value, ...]] against what was sent as event i: the id, the host, sid and
 * seq fields, the envelope's bytes, and what it decodes to. Returns 1 when all agree, else 0 (and says why when
 * verbose). */
static int entry_matches(const redisReply *entry, int i, int verbose)
{
    const redisReply *fields, *e;
    cr_event_t ev;
    cr_span_t text;
    cr_mp_item_t item;
    char seq[24];
    int rc;

    if (entry->type != REDIS_REPLY_ARRAY || entry->elements != 2 || entry->element[1]->type != REDIS_REPLY_ARRAY) {
        if (verbose)
            note("entry %d is not [id, fields]", i);
        return 0;
    }
    fields = entry->element[1];
    snprintf(seq, sizeof(seq), "%d", i + 1);
    if (!reply_is(entry->element[0], sent[i].id, strlen(sent[i].id)) ||
        !reply_is(field(fields, "host"), HOST, strlen(HOST)) || !reply_is(field(fields, "sid"), SID, strlen(SID)) ||
        !reply_is(field(fields, "seq"), seq, strlen(seq))) {
        if (verbose)
            note("entry %d: id or host/sid/seq fields differ from what XADD wrote", i);
        return 0;
    }
    if ((e = field(fields, "e")) == NULL || e->type != REDIS_REPLY_STRING) {
        if (verbose)
            note("entry %d has no envelope field e", i);
        return 0;
    }
    if (!reply_is(e, sent[i].env.base, sent[i].env.len)) {
        if (verbose) {
            ok_bytes(e->str, (size_t)e->len, sent[i].env.base, sent[i].env.len);
            note("entry %d: envelope bytes differ", i);
        }
        return 0;
    }
    if ((rc = cr_event_decode(&ev, e->str, (size_t)e->len, NULL)) != 0) {
        if (verbose)
            note("entry %d does not decode: %s %s (field %s)", i, cr_err_code(rc), cr_error_last()->message,
                 cr_error_last()->field);
        return 0;
    }
    if (!cr_span_eq(ev.sid, SID, strlen(SID)) || ev.seq != (uint64_t)i + 1 || ev.kind != CR_EV_AGENT_MESSAGE ||
        !cr_span_eq(ev.k, "agent.message", strlen("agent.message")) || ev.b.sealed) {
        if (verbose)
            note("entry %d decodes to another sid/seq/kind (seq %llu)", i, (unsigned long long)ev.seq);
        return 0;
    }
    if (cr_mp_map_get(ev.b.raw.base, ev.b.raw.len, "text", &text) != 0 ||
        cr_mp_read(text.base, text.base + text.len, &item) == 0 || item.type != MSGPACK_OBJECT_STR ||
        item.bytes.len != sent[i].textlen || memcmp(item.bytes.base, sent[i].text, sent[i].textlen) != 0) {
        if (verbose)
            note("entry %d: the body's text is not \"hello %d\"", i, i);
        return 0;
    }
    return 1;
}

/* XRANGE the whole stream and compare every entry with what was sent. */
static void check_stream(void)
{
    redisReply *reply = redisCommand(conn, "XRANGE %s - +", STREAM);
    int bad = 0;
    okf(reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == N_EVENTS,
        "XRANGE gave %zu entries", reply != NULL && reply->type == REDIS_REPLY_ARRAY ? reply->elements : 0);
    if (reply == NULL)
        return;
    if (reply->type == REDIS_REPLY_ARRAY && reply->elements == N_EVENTS)
        for (int i = 0; i < N_EVENTS; ++i)
            bad += !entry_matches(reply->element[i], i, bad < 3);
    okf(bad == 0, "%d of %d entries differ from what was sent", bad, N_EVENTS);
    freeReplyObject(reply);
}

static void test_roundtrip(void)
{
    char url[64];
    int built = 0, added = 0, binary = 0;
    long long len;

    if (!ok(cr_test_redis_start(&redis) == 0))
        return;
    snprintf(url, sizeof(url), "redis://127.0.0.1:%d", redis.port);
    ok_str(cr_test_redis_url(&redis), url);
    if (!ok((conn = cr_test_redis_connect(&redis)) != NULL))
        return;

    for (int i = 0; i < N_EVENTS; ++i)
        built += make_event(i) == 0;
    okf(built == N_EVENTS, "%d of %d envelopes encoded", built, N_EVENTS);
    if (built != N_EVENTS)
        return;
    /* the test is only worth something if the bytes are not text: NUL, CR and LF inside */
    for (int i = 0; i < N_EVENTS; ++i)
        binary += memchr(sent[i].env.base, '\0', sent[i].env.len) != NULL &&
                  memmem(sent[i].env.base, sent[i].env.len, "\r\n", 2) != NULL;
    ok(binary >= N_EVENTS / 4);

    for (int i = 0; i < N_EVENTS; ++i)
        added += xadd(i);
    okf(added == N_EVENTS, "%d of %d XADDs answered with an id", added, N_EVENTS);
    len = xlen();
    okf(len == N_EVENTS, "XLEN is %lld", len);
    check_stream();
}

static void test_crash(void)
{
    redisReply *reply;
    struct stat st;
    int flushed = 0;
    long long len;

    if (!ok(redis.pid > 0 && conn != NULL))
        return;
    /* appendfsync everysec: redis write()s and fsyncs its AOF from a background thread about once a second (and
     * may hold a write back while an fsync is still running), so the last XADDs can be missing from the file for
     * up to a second or so. Give it that second, then confirm nothing is left in its AOF buffer, before killing
     * it; a lost tail would otherwise be the fsync policy working as documented, not a bug. */
    sleep_ms(1200);
    for (int tries = 0; tries < 500 && !flushed; ++tries) {
        reply = redisCommand(conn, "INFO persistence");
        flushed = reply != NULL && reply->type == REDIS_REPLY_STRING &&
                  strstr(reply->str, "aof_buffer_length:0\r\n") != NULL &&
                  strstr(reply->str, "aof_pending_bio_fsync:0\r\n") != NULL;
        if (reply != NULL)
            freeReplyObject(reply);
        if (!flushed)
            sleep_ms(10);
    }
    okf(flushed, "the AOF buffer was not flushed within 5 s");
    redisFree(conn);
    conn = NULL;

    ok(cr_test_redis_kill(&redis) == 0);
    ok(!port_accepts(redis.port));   /* it is really gone */
    ok(stat(redis.dir, &st) == 0);   /* and its data stays */

    if (!ok(cr_test_redis_restart(&redis) == 0))
        return;
    if (!ok((conn = cr_test_redis_connect(&redis)) != NULL))
        return;
    len = xlen();
    okf(len == N_EVENTS, "XLEN after the crash is %lld", len);

    /* the last envelope, as a client replaying the stream after the crash would read it */
    reply = redisCommand(conn, "XREVRANGE %s + - COUNT 1", STREAM);
    if (ok(reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 1 &&
           reply->element[0]->type == REDIS_REPLY_ARRAY && reply->element[0]->elements == 2 &&
           reply->element[0]->element[1]->type == REDIS_REPLY_ARRAY)) {
        const redisReply *entry = reply->element[0], *e = field(entry->element[1], "e");
        ok(reply_is(entry->element[0], sent[N_EVENTS - 1].id, strlen(sent[N_EVENTS - 1].id)));
        if (ok(e != NULL && e->type == REDIS_REPLY_STRING))
            ok_bytes(e->str, (size_t)e->len, sent[N_EVENTS - 1].env.base, sent[N_EVENTS - 1].env.len);
    }
    if (reply != NULL)
        freeReplyObject(reply);
    /* and every other one */
    check_stream();
}

static void test_stop(void)
{
    char dir[sizeof(redis.dir)];
    struct stat st;
    int port = redis.port;

    if (!ok(redis.pid > 0))
        return;
    memcpy(dir, redis.dir, sizeof(dir));
    if (conn != NULL)
        redisFree(conn);
    conn = NULL;
    cr_test_redis_stop(&redis);
    ok(redis.pid == 0);
    ok(stat(dir, &st) != 0 && errno == ENOENT);
    ok(!port_accepts(port));
    cr_test_redis_stop(&redis); /* idempotent */
    ok(redis.pid == 0 && redis.dir[0] == '\0');
}

int main(void)
{
    subtest("200 envelopes XADDed and XRANGEd back byte-identical", test_roundtrip);
    subtest("the stream survives a crash and restart (AOF)", test_crash);
    subtest("stop removes the temp dir and frees the port", test_stop);
    for (int i = 0; i < N_EVENTS; ++i)
        cr_buf_free(&sent[i].env);
    if (conn != NULL)
        redisFree(conn);
    cr_test_redis_stop(&redis);
    return done_testing();
}
