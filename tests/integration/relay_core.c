/* relay_core.c — the relay's cross-cutting behaviour against real processes: --help, admin commands, hashed tokens,
 * revocation, rate limits, health and readiness across a Redis crash, metrics, HTTP/1.1, h2c, TLS with ALPN, the
 * embedded Redis, and the answers to bad requests. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <curl/curl.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>
#include <openssl/x509v3.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "corral/buf.h"
#include "corral/json.h"
#include "corral/mp.h"
#include "mp_text.h"
#include "certs.h"
#include "h2_burst.h"
#include "harness.h"
#include "http_client.h"
#include "proc.h"
#include "redis_server.h"
#include "relay_proc.h"

static cr_test_redis_t redis;
static cr_test_relay_t relay;
static char tmp[PATH_MAX]; /* the test's own temp dir: captured output, certificates */
static char admin_tok[64], host_tok[64];

/* ---- helpers --------------------------------------------------------------------------------------------------- */

static const char *ecode(const cr_test_resp_t *r)
{
    static char code[64];
    return cr_test_json_text(r, "error.code", code, sizeof(code));
}

/* One request to base+path (flags as cr_test_http; a JSON body when json is not NULL). Returns the status (0: none). */
static long req(cr_test_resp_t *r, const char *base, const char *method, const char *path, const char *token,
                const char *json, int flags)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", base, path);
    if (cr_test_http(r, method, url, token, json != NULL ? "application/json" : NULL, json, json != NULL ? strlen(json) : 0,
                     flags) != 0)
        return 0;
    return r->status;
}

/* The same, freeing the response: just the status. */
static long status_of(const char *base, const char *method, const char *path, const char *token, const char *json, int flags)
{
    cr_test_resp_t r = {0};
    long st = req(&r, base, method, path, token, json, flags);
    cr_test_resp_free(&r);
    return st;
}

/* Polls GET base/readyz until it answers want (up to ms). Returns 1 when it did. */
static int wait_ready(const char *base, long want, int ms)
{
    for (int64_t end = cr_test_now_ms() + ms; cr_test_now_ms() < end; cr_test_sleep_ms(50))
        if (status_of(base, "GET", "/readyz", NULL, NULL, 0) == want)
            return 1;
    return 0;
}

/* Runs exe with argv (and env added), capturing stdout into *out (malloc'd). Returns the exit status, -1 when it
 * did not exit normally. */
static int run_capture(const char *exe, const char *const *argv, const char *const *env, char **out)
{
    char path[PATH_MAX + 16];
    int fd, status = 0;
    pid_t pid;
    snprintf(path, sizeof(path), "%s/out.txt", tmp);
    if ((fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0)
        return -1;
    int null = open("/dev/null", O_WRONLY);
    pid = cr_test_spawn(exe, argv, env, fd, null >= 0 ? null : 2);
    close(fd);
    if (null >= 0)
        close(null);
    if (pid < 0)
        return -1;
    cr_test_reap(pid, 1, &status);
    *out = cr_test_file_read(path, 0, 1 << 20);
    if (*out == NULL)
        *out = strdup("");
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* The value of the first sample line of a metric ("name" or "name{labels}") in Prometheus text; -1 when absent. */
static long long metric(const char *text, const char *sample)
{
    size_t n = strlen(sample);
    for (const char *p = text; p != NULL && *p != '\0'; p = strchr(p, '\n') != NULL ? strchr(p, '\n') + 1 : NULL)
        if (strncmp(p, sample, n) == 0 && p[n] == ' ')
            return strtoll(p + n + 1, NULL, 10);
    return -1;
}

static size_t discard(char *p, size_t size, size_t n, void *data)
{
    (void)p, (void)data;
    return size * n;
}

/* ---- tests ----------------------------------------------------------------------------------------------------- */

static void test_help(void)
{
    /* every key of the issue (and the others the relay reads), each with its default, from an independent list */
    static const struct {
        const char *key, *env, *def;
    } keys[] = {
        {"http.listen", "CORRAL_HTTP_LISTEN", "127.0.0.1:8080"},
        {"http.tls_listen", "CORRAL_HTTP_TLS_LISTEN", "(empty)"},
        {"http.tls_cert", "CORRAL_HTTP_TLS_CERT", "(empty)"},
        {"http.tls_key", "CORRAL_HTTP_TLS_KEY", "(empty)"},
        {"http.public_url", "CORRAL_HTTP_PUBLIC_URL", "(empty)"},
        {"redis.url", "CORRAL_REDIS_URL", "(empty)"},
        {"data_dir", "CORRAL_DATA_DIR", "./var/relay"},
        {"log.level", "CORRAL_LOG_LEVEL", "info"},
        {"ratelimit.per_second", "CORRAL_RATELIMIT_PER_SECOND", "100"},
        {"ratelimit.burst", "CORRAL_RATELIMIT_BURST", "400"},
        {"redis.server", "CORRAL_REDIS_SERVER", "redis-server"},
    };
    const char *argv[] = {"corral-relay", "--help", NULL};
    char *out = NULL;
    ok(run_capture(relay.exe, argv, NULL, &out) == 0);
    for (size_t i = 0; i < sizeof(keys) / sizeof(keys[0]); ++i) {
        char line[256];
        int found = 0;
        for (const char *p = out; p != NULL && *p != '\0' && !found; p = strchr(p, '\n') != NULL ? strchr(p, '\n') + 1 : NULL) {
            const char *nl = strchr(p, '\n');
            char k[64], e[64], t[16], d[64];
            snprintf(line, sizeof(line), "%.*s", (int)(nl != NULL ? nl - p : (long)strlen(p)), p);
            if (sscanf(line, " %63s %63s %15s %63s", k, e, t, d) == 4 && strcmp(k, keys[i].key) == 0)
                found = strcmp(e, keys[i].env) == 0 && strcmp(d, keys[i].def) == 0 ? 1 : -1;
        }
        okf(found == 1, "--help lists %s (%s) with default %s", keys[i].key, keys[i].env, keys[i].def);
    }
    ok(strstr(out, "admin team create") != NULL && strstr(out, "admin token revoke") != NULL);
    free(out);
    {
        const char *bad[] = {"corral-relay", "--no-such-flag", NULL};
        ok(run_capture(relay.exe, bad, NULL, &out) == 2);
        free(out);
    }
}

static void test_admin(void)
{
    char out[4096], tok[64];
    ok(strncmp(admin_tok, "crt_", 4) == 0 && strlen(admin_tok) == 47);
    ok(strncmp(host_tok, "crt_", 4) == 0 && strlen(host_tok) == 47);
    ok(cr_test_relay_admin(&relay, out, sizeof(out), "team", "ls", NULL) == 0);
    okf(strncmp(out, "acme\t", 5) == 0 || strstr(out, "\nacme\t") != NULL, "team ls: %s", out);
    /* acme has its admin and host tokens */
    {
        const char *line = strncmp(out, "acme\t", 5) == 0 ? out : strstr(out, "\nacme\t") + 1;
        char team[65];
        unsigned long long created = 0;
        int ntok = 0;
        ok(sscanf(line, "%64s %llu %d", team, &created, &ntok) == 3);
        ok(created > 1600000000000ull);
        okf(ntok >= 2, "tokens: %d", ntok);
    }
    ok(cr_test_relay_admin(&relay, tok, sizeof(tok), "token", "create", "--team", "acme", "--kind", "device", "--label",
                           "Ana's phone", NULL) == 0);
    ok(strncmp(tok, "crt_", 4) == 0);
    /* mistakes: non-zero exit, a message, no token printed */
    okf(cr_test_relay_admin(&relay, out, sizeof(out), "token", "create", "--team", "acme", "--kind", "root", NULL) > 0,
        "bad kind");
    ok_str(out, "");
    okf(strstr(cr_test_relay_log_tail(&relay), "--kind must be") != NULL, "a message: %s", cr_test_relay_log_tail(&relay));
    ok(cr_test_relay_admin(&relay, out, sizeof(out), "token", "create", "--team", "nosuch", "--kind", "host", NULL) > 0);
    ok(strstr(cr_test_relay_log_tail(&relay), "no team 'nosuch'") != NULL);
    ok(cr_test_relay_admin(&relay, out, sizeof(out), "team", "create", "acme", NULL) > 0); /* exists */
    ok(cr_test_relay_admin(&relay, out, sizeof(out), "team", "create", "bad team!", NULL) > 0);
    ok(cr_test_relay_admin(&relay, out, sizeof(out), "token", "revoke", "crt_nope", NULL) > 0);
    ok(cr_test_relay_admin(&relay, out, sizeof(out), "frobnicate", NULL) > 0);
}

/* Every key and value in Redis, the AOF and the relay's log: no token text anywhere (only SHA-256 hashes). */
static void test_tokens_hashed(void)
{
    char code[32] = "", dev_tok[64] = "", body[128];
    const char *tokens[3] = {admin_tok, host_tok, dev_tok};
    cr_test_resp_t r = {0};
    redisContext *c = cr_test_redis_connect(&redis);
    cr_buf_t all;
    unsigned long long cursor = 0;
    size_t nkeys = 0;

    /* a device token from pairing too */
    ok(req(&r, relay.url, "POST", "/v1/host/pair", host_tok, NULL, 0) == 200);
    cr_test_json_text(&r, "code", code, sizeof(code));
    cr_test_resp_free(&r);
    snprintf(body, sizeof(body), "{\"code\":\"%s\",\"name\":\"phone\"}", code);
    ok(req(&r, relay.url, "POST", "/v1/pair/claim", NULL, body, 0) == 200);
    cr_test_json_text(&r, "token", dev_tok, sizeof(dev_tok));
    cr_test_resp_free(&r);
    ok(strncmp(dev_tok, "crt_", 4) == 0);

    cr_buf_init(&all, 256u << 20);
    do {
        redisReply *s = redisCommand(c, "SCAN %llu COUNT 1000", cursor);
        if (s == NULL || s->type != REDIS_REPLY_ARRAY || s->elements != 2) {
            ok(0);
            break;
        }
        cursor = strtoull(s->element[0]->str, NULL, 10);
        for (size_t i = 0; i < s->element[1]->elements; ++i) {
            const char *key = s->element[1]->element[i]->str;
            redisReply *t = redisCommand(c, "TYPE %s", key), *v = NULL;
            ++nkeys;
            cr_buf_append(&all, key, strlen(key));
            if (strcmp(t->str, "string") == 0)
                v = redisCommand(c, "GET %s", key);
            else if (strcmp(t->str, "hash") == 0)
                v = redisCommand(c, "HGETALL %s", key);
            else if (strcmp(t->str, "set") == 0)
                v = redisCommand(c, "SMEMBERS %s", key);
            else if (strcmp(t->str, "zset") == 0)
                v = redisCommand(c, "ZRANGE %s 0 -1 WITHSCORES", key);
            else if (strcmp(t->str, "list") == 0)
                v = redisCommand(c, "LRANGE %s 0 -1", key);
            else if (strcmp(t->str, "stream") == 0)
                v = redisCommand(c, "XRANGE %s - +", key);
            if (v != NULL && v->type == REDIS_REPLY_STRING)
                cr_buf_append(&all, v->str, v->len);
            for (size_t j = 0; v != NULL && v->type == REDIS_REPLY_ARRAY && j < v->elements; ++j) {
                redisReply *e = v->element[j];
                if (e->type == REDIS_REPLY_STRING)
                    cr_buf_append(&all, e->str, e->len);
                for (size_t k = 0; e->type == REDIS_REPLY_ARRAY && k < e->elements; ++k) /* stream entries */
                    for (size_t m = 0; e->element[k]->type == REDIS_REPLY_ARRAY && m < e->element[k]->elements; ++m)
                        cr_buf_append(&all, e->element[k]->element[m]->str, e->element[k]->element[m]->len);
            }
            if (v != NULL)
                freeReplyObject(v);
            freeReplyObject(t);
        }
        freeReplyObject(s);
    } while (cursor != 0);
    okf(nkeys >= 5, "%zu keys scanned", nkeys);
    cr_buf_append(&all, "", 1);
    for (size_t i = 0; i < 3; ++i) {
        /* the secret part alone, in case something stripped the prefix */
        okf(memmem(all.base, all.len, tokens[i] + 4, strlen(tokens[i]) - 4) == NULL, "token %zu is not in Redis", i);
    }
    cr_buf_free(&all);
    redisFree(c);

    /* nor on disk (Redis's AOF) nor in the relay's log */
    {
        char dir[PATH_MAX + 32];
        DIR *d;
        struct dirent *de;
        size_t files = 0;
        snprintf(dir, sizeof(dir), "%s/appendonlydir", redis.dir);
        if ((d = opendir(dir)) != NULL) {
            while ((de = readdir(d)) != NULL) {
                char path[PATH_MAX + 300];
                char *text;
                if (de->d_name[0] == '.')
                    continue;
                snprintf(path, sizeof(path), "%s/%s", dir, de->d_name);
                if ((text = cr_test_file_read(path, 0, 64u << 20)) == NULL)
                    continue;
                ++files;
                for (size_t i = 0; i < 3; ++i)
                    okf(strstr(text, tokens[i] + 4) == NULL, "token %zu is not in %s", i, de->d_name);
                free(text);
            }
            closedir(d);
        }
        okf(files > 0, "read the AOF in %s", dir);
    }
    {
        char *log = cr_test_file_read(relay.log, 0, 64u << 20);
        ok(log != NULL);
        for (size_t i = 0; log != NULL && i < 3; ++i)
            okf(strstr(log, tokens[i] + 4) == NULL, "token %zu is not in the relay's log", i);
        free(log);
    }
}

static void test_revoke(void)
{
    char tok[64];
    cr_test_resp_t r = {0};
    ok(cr_test_relay_admin(&relay, tok, sizeof(tok), "token", "create", "--team", "acme", "--kind", "host", NULL) == 0);
    ok(status_of(relay.url, "POST", "/v1/host/pair", tok, NULL, 0) == 200);
    ok(cr_test_relay_admin(&relay, NULL, 0, "token", "revoke", tok, NULL) == 0);
    ok(req(&r, relay.url, "POST", "/v1/host/pair", tok, NULL, 0) == 401);
    ok_str(ecode(&r), "unauthorized");
    cr_test_resp_free(&r);
    ok(status_of(relay.url, "POST", "/v1/host/pair", tok, NULL, CR_HTTP_H2C) == 401);
    ok(status_of(relay.url, "POST", "/v1/host/pair", host_tok, NULL, 0) == 200); /* the others still work */
    ok(cr_test_relay_admin(&relay, NULL, 0, "token", "revoke", tok, NULL) > 0);  /* already revoked */
    /* tokens that never were, or are not tokens */
    ok(status_of(relay.url, "POST", "/v1/host/pair", "crt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", NULL, 0) == 401);
    ok(status_of(relay.url, "POST", "/v1/host/pair", "hunter2", NULL, 0) == 401);
}

static void test_rate_limit(void)
{
    const char *env[] = {"CORRAL_RATELIMIT_PER_SECOND=5", "CORRAL_RATELIMIT_BURST=5", NULL};
    cr_test_relay_t slow = {0};
    int n200 = 0, n429 = 0;
    char other[64];
    if (cr_test_relay_start(&slow, cr_test_redis_url(&redis), env) != 0) {
        ok(0);
        return;
    }
    for (int i = 0; i < 10; ++i) {
        cr_test_resp_t r = {0};
        long st = req(&r, slow.url, "POST", "/v1/host/pair", host_tok, NULL, 0);
        if (i < 5)
            okf(st == 200, "request %d of the burst: %ld", i, st);
        if (st == 200) {
            ++n200;
        } else if (st == 429) {
            if (n429++ == 0) {
                ok_str(ecode(&r), "rate_limited");
                okf(atoi(r.retry_after) >= 1, "Retry-After: '%s'", r.retry_after);
            }
        } else {
            okf(0, "status %ld", st);
        }
        cr_test_resp_free(&r);
    }
    okf(n200 >= 5 && n200 <= 7 && n429 >= 3, "%d answered, %d limited", n200, n429); /* 5/s refill meanwhile */
    /* per token: another token is not limited */
    ok(cr_test_relay_admin(&slow, other, sizeof(other), "token", "create", "--team", "acme", "--kind", "host", NULL) == 0);
    ok(status_of(slow.url, "POST", "/v1/host/pair", other, NULL, 0) == 200);
    /* and the bucket refills */
    cr_test_sleep_ms(1100);
    ok(status_of(slow.url, "POST", "/v1/host/pair", host_tok, NULL, 0) == 200);
    cr_test_relay_stop(&slow);
}

static void test_health_and_redis_crash(void)
{
    cr_test_resp_t r = {0};
    ok(req(&r, relay.url, "GET", "/healthz", NULL, NULL, 0) == 200);
    cr_test_resp_free(&r);
    ok(status_of(relay.url, "GET", "/readyz", NULL, NULL, 0) == 200);

    ok(cr_test_redis_kill(&redis) == 0);
    okf(wait_ready(relay.url, 503, 5000), "/readyz answers 503 while Redis is away");
    ok(status_of(relay.url, "GET", "/healthz", NULL, NULL, 0) == 200); /* the process itself is fine */
    ok(req(&r, relay.url, "POST", "/v1/host/pair", host_tok, NULL, 0) == 503);
    ok_str(ecode(&r), "unavailable");
    ok_str(r.retry_after, "1");
    cr_test_resp_free(&r);
    ok(status_of(relay.url, "POST", "/v1/pair/claim", NULL, "{\"code\":\"0000000000\",\"name\":\"x\"}", 0) == 503);

    ok(cr_test_redis_restart(&redis) == 0);
    okf(wait_ready(relay.url, 200, 15000), "/readyz answers 200 again after Redis restarts");
    ok(status_of(relay.url, "POST", "/v1/host/pair", host_tok, NULL, 0) == 200); /* tokens survived (AOF) */
}

static void test_metrics(void)
{
    cr_test_resp_t r = {0};
    long long req1, req2, unauth1, unauth2, nf1, nf2;
    ok(req(&r, relay.url, "GET", "/metrics", NULL, NULL, 0) == 200);
    okf(strncmp(r.content_type, "text/plain", 10) == 0, "Content-Type: %s", r.content_type);
    ok(strstr(r.body, "# TYPE corral_http_requests_total counter\n") != NULL);
    ok(strstr(r.body, "# TYPE corral_errors_total counter\n") != NULL);
    ok(strstr(r.body, "# TYPE corral_redis_latency_seconds histogram\n") != NULL);
    req1 = metric(r.body, "corral_http_requests_total");
    unauth1 = metric(r.body, "corral_errors_total{code=\"unauthorized\"}");
    nf1 = metric(r.body, "corral_errors_total{code=\"not_found\"}");
    ok(metric(r.body, "corral_redis_up") == 1);
    cr_test_resp_free(&r);
    ok(req1 > 0 && unauth1 >= 0 && nf1 >= 0);

    /* 3 requests without a token, 2 with a bad one, 1 to nowhere, 1 fine */
    for (int i = 0; i < 3; ++i)
        ok(status_of(relay.url, "POST", "/v1/host/pair", NULL, NULL, 0) == 401);
    for (int i = 0; i < 2; ++i)
        ok(status_of(relay.url, "POST", "/v1/host/pair", "crt_BBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBBB", NULL, 0) == 401);
    ok(status_of(relay.url, "GET", "/nowhere", NULL, NULL, 0) == 404);
    ok(status_of(relay.url, "GET", "/healthz", NULL, NULL, CR_HTTP_H2C) == 200);

    ok(req(&r, relay.url, "GET", "/metrics", NULL, NULL, 0) == 200);
    req2 = metric(r.body, "corral_http_requests_total");
    unauth2 = metric(r.body, "corral_errors_total{code=\"unauthorized\"}");
    nf2 = metric(r.body, "corral_errors_total{code=\"not_found\"}");
    cr_test_resp_free(&r);
    okf(req2 - req1 == 8, "requests %lld -> %lld (7 made, plus this /metrics)", req1, req2);
    okf(unauth2 - unauth1 == 5, "unauthorized %lld -> %lld", unauth1, unauth2);
    okf(nf2 - nf1 == 1, "not_found %lld -> %lld", nf1, nf2);
}

static void test_http_versions(void)
{
    cr_test_resp_t r = {0};
    char code[96];
    ok(req(&r, relay.url, "GET", "/healthz", NULL, NULL, 0) == 200);
    ok(r.http_version == 1);
    cr_test_resp_free(&r);
    ok(req(&r, relay.url, "GET", "/healthz", NULL, NULL, CR_HTTP_H2C) == 200);
    ok(r.http_version == 2);
    cr_test_resp_free(&r);
    /* an authenticated JSON exchange over each */
    ok(req(&r, relay.url, "POST", "/v1/host/pair", host_tok, NULL, 0) == 200);
    ok(r.http_version == 1 && strlen(cr_test_json_text(&r, "code", code, sizeof(code))) == 10);
    ok_str(cr_test_json_text(&r, "url", code, sizeof(code)), relay.url); /* no http.public_url: the URL the host used */
    cr_test_resp_free(&r);
    ok(req(&r, relay.url, "POST", "/v1/host/pair", host_tok, NULL, CR_HTTP_H2C) == 200);
    ok(r.http_version == 2 && strlen(cr_test_json_text(&r, "code", code, sizeof(code))) == 10);
    ok(strncmp(r.content_type, "application/json", 16) == 0);
    cr_test_resp_free(&r);
    ok(req(&r, relay.url, "POST", "/v1/host/pair", host_tok, NULL, CR_HTTP_H2C | CR_HTTP_ACCEPT_MSGPACK) == 200);
    ok(r.http_version == 2 && strncmp(r.content_type, "application/msgpack", 19) == 0);
    cr_test_resp_free(&r);
}

static void test_tls(void)
{
    char cert[PATH_MAX + 16], key[PATH_MAX + 16], listen[64], cert_env[PATH_MAX + 64], key_env[PATH_MAX + 64];
    char tls_env[96], base[64];
    cr_test_relay_t t = {0};
    cr_test_resp_t r = {0};
    int started = 0, port = 0;

    snprintf(cert, sizeof(cert), "%s/cert.pem", tmp);
    snprintf(key, sizeof(key), "%s/key.pem", tmp);
    if (!ok(cr_test_make_cert(cert, key) == 0))
        return;
    snprintf(cert_env, sizeof(cert_env), "CORRAL_HTTP_TLS_CERT=%s", cert);
    snprintf(key_env, sizeof(key_env), "CORRAL_HTTP_TLS_KEY=%s", key);
    for (int attempt = 0; attempt < 3 && !started; ++attempt) { /* the TLS port may be taken between pick and bind */
        const char *env[] = {tls_env, cert_env, key_env, NULL};
        port = cr_test_free_port();
        snprintf(listen, sizeof(listen), "127.0.0.1:%d", port);
        snprintf(tls_env, sizeof(tls_env), "CORRAL_HTTP_TLS_LISTEN=%s", listen);
        started = cr_test_relay_start(&t, cr_test_redis_url(&redis), env) == 0;
    }
    if (!ok(started))
        return;
    snprintf(base, sizeof(base), "https://127.0.0.1:%d", port);

    /* HTTP/2 by ALPN, and HTTP/1.1 when the client offers only that */
    ok(req(&r, base, "GET", "/healthz", NULL, NULL, CR_HTTP_H2 | CR_HTTP_INSECURE) == 200);
    ok(r.http_version == 2);
    cr_test_resp_free(&r);
    ok(req(&r, base, "POST", "/v1/host/pair", host_tok, NULL, CR_HTTP_H2 | CR_HTTP_INSECURE) == 200);
    ok(r.http_version == 2);
    cr_test_resp_free(&r);
    ok(req(&r, base, "GET", "/healthz", NULL, NULL, CR_HTTP_INSECURE) == 200);
    ok(r.http_version == 1);
    cr_test_resp_free(&r);

    /* a client's burst the size of h2o's read buffer keeps its connection (net/src/h2o_uv_read.c) */
    {
        static const size_t bursts[] = {4096, 8192, 8192, 16384, 12288, 32768};
        size_t n = sizeof(bursts) / sizeof(bursts[0]);
        int lived = cr_test_h2_tls_bursts(port, cert, bursts, n);
        okf(lived == (int)n, "the connection lived through %d of %zu bursts (4 to 32 KiB)", lived, n);
    }

    /* verified against our certificate (pinned as the only CA), by name */
    {
        CURL *h = curl_easy_init();
        char url[128];
        long code = 0, version = 0;
        snprintf(url, sizeof(url), "%s/healthz", base);
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_CAINFO, cert);
        curl_easy_setopt(h, CURLOPT_CAPATH, NULL);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYPEER, 1L);
        curl_easy_setopt(h, CURLOPT_SSL_VERIFYHOST, 2L);
        curl_easy_setopt(h, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
        CURLcode cc = curl_easy_perform(h);
        okf(cc == CURLE_OK, "pinned TLS: %s", curl_easy_strerror(cc));
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(h, CURLINFO_HTTP_VERSION, &version);
        ok(code == 200);
        ok(version == CURL_HTTP_VERSION_2_0);
        curl_easy_cleanup(h);
    }
    /* the plain listener still answers beside it */
    ok(status_of(t.url, "GET", "/healthz", NULL, NULL, CR_HTTP_H2C) == 200);
    cr_test_relay_stop(&t);
}

/* The pid of a child of parent named comm, or 0. */
static pid_t child_named(pid_t parent, const char *comm)
{
    DIR *d = opendir("/proc");
    struct dirent *de;
    pid_t found = 0;
    if (d == NULL)
        return 0;
    while ((de = readdir(d)) != NULL && found == 0) {
        char path[300], buf[512], name[64];
        int ppid = 0;
        FILE *fp;
        if (de->d_name[0] < '0' || de->d_name[0] > '9')
            continue;
        snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
        if ((fp = fopen(path, "r")) == NULL)
            continue;
        if (fgets(buf, sizeof(buf), fp) != NULL) {
            char *open = strchr(buf, '('), *close = strrchr(buf, ')');
            if (open != NULL && close != NULL && close > open) {
                snprintf(name, sizeof(name), "%.*s", (int)(close - open - 1), open + 1);
                if (sscanf(close + 2, "%*c %d", &ppid) == 1 && ppid == parent && strcmp(name, comm) == 0)
                    found = (pid_t)atoi(de->d_name);
            }
        }
        fclose(fp);
    }
    closedir(d);
    return found;
}

static void test_embedded_redis(void)
{
    cr_test_relay_t e = {0};
    char sock[PATH_MAX + 16], tok[64];
    struct stat st;
    pid_t rpid;
    int status = 0;
    if (!ok(cr_test_relay_start(&e, "", NULL) == 0))
        return;
    snprintf(sock, sizeof(sock), "%s/redis.sock", e.dir);
    ok(stat(sock, &st) == 0 && S_ISSOCK(st.st_mode));
    okf((rpid = child_named(e.pid, "redis-server")) > 0, "the relay runs redis-server as its child");
    ok(status_of(e.url, "GET", "/readyz", NULL, NULL, 0) == 200);
    /* admin commands reach the same Redis the relay serves from */
    ok(cr_test_relay_admin(&e, tok, sizeof(tok), "team", "create", "solo", NULL) == 0);
    ok(strncmp(tok, "crt_", 4) == 0);
    ok(status_of(e.url, "POST", "/v1/host/pair", tok, NULL, 0) == 200);
    {
        char out[256];
        ok(cr_test_relay_admin(&e, out, sizeof(out), "team", "ls", NULL) == 0);
        ok(strncmp(out, "solo\t", 5) == 0);
    }
    /* its data is kept with AOF under data_dir */
    {
        char aof[PATH_MAX + 32];
        snprintf(aof, sizeof(aof), "%s/appendonlydir", e.dir);
        ok(stat(aof, &st) == 0 && S_ISDIR(st.st_mode));
    }
    /* SIGTERM: the relay exits cleanly and takes its redis-server with it */
    ok(kill(e.pid, SIGTERM) == 0);
    for (int i = 0; i < 500 && !cr_test_reap(e.pid, 0, &status); ++i)
        cr_test_sleep_ms(20);
    okf(WIFEXITED(status) && WEXITSTATUS(status) == 0, "the relay exited with 0 (status %#x)", status);
    e.pid = 0;
    okf(rpid > 0 && kill(rpid, 0) != 0 && errno == ESRCH, "no redis-server left (pid %d)", (int)rpid);
    cr_test_relay_stop(&e);
}

static void test_bad_requests(void)
{
    cr_test_resp_t r = {0};
    cr_buf_t big;

    ok(req(&r, relay.url, "GET", "/no/such/thing", NULL, NULL, 0) == 404);
    ok(strncmp(r.content_type, "application/json", 16) == 0);
    ok_str(ecode(&r), "not_found");
    cr_test_resp_free(&r);
    ok(req(&r, relay.url, "GET", "/v1/host/pair", host_tok, NULL, 0) == 405);
    ok_str(ecode(&r), "method_not_allowed");
    cr_test_resp_free(&r);
    ok(req(&r, relay.url, "DELETE", "/healthz", NULL, NULL, CR_HTTP_H2C) == 405);
    ok_str(ecode(&r), "method_not_allowed");
    cr_test_resp_free(&r);

    /* malformed JSON, a body of the wrong type */
    ok(req(&r, relay.url, "POST", "/v1/devices", admin_tok, "{\"provider\": \"none\",}", 0) == 400);
    ok_str(ecode(&r), "bad_json");
    cr_test_resp_free(&r);
    ok(req(&r, relay.url, "POST", "/v1/pair/claim", NULL, "{\"code\"", CR_HTTP_H2C) == 400);
    ok_str(ecode(&r), "bad_json");
    cr_test_resp_free(&r);
    {
        char url[256];
        snprintf(url, sizeof(url), "%s/v1/devices", relay.url);
        ok(cr_test_http(&r, "POST", url, admin_tok, "text/plain", "hi", 2, 0) == 0);
        ok(r.status == 415);
        ok_str(ecode(&r), "unsupported_media_type");
        cr_test_resp_free(&r);
    }

    /* over 2 MiB: 413, over HTTP/1.1 and HTTP/2 */
    cr_buf_init(&big, 8u << 20);
    cr_buf_appendf(&big, "{\"provider\":\"none\",\"name\":\"");
    while (big.len < (2u << 20) + 4096)
        cr_buf_append(&big, "xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx", 64);
    cr_buf_append(&big, "\"}", 3);
    ok(req(&r, relay.url, "POST", "/v1/devices", admin_tok, big.base, 0) == 413);
    ok_str(ecode(&r), "too_large");
    cr_test_resp_free(&r);
    ok(req(&r, relay.url, "POST", "/v1/devices", admin_tok, big.base, CR_HTTP_H2C) == 413);
    ok_str(ecode(&r), "too_large");
    cr_test_resp_free(&r);
    /* far over what any request may carry: refused before it is read. HTTP/1.1 (with Expect: 100-continue, as curl
     * sends for big bodies) gets h2o's own 413 at once; HTTP/2 gets the stream refused (h2o's RST_STREAM
     * REFUSED_STREAM, which curl retries and then gives up) or a 413. */
    cr_buf_reset(&big);
    while (big.len < (6u << 20))
        cr_buf_append(&big, "[1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1,1]", 64);
    {
        char url[256], auth[128];
        CURL *h = curl_easy_init();
        struct curl_slist *hs = NULL;
        long code = 0;
        snprintf(url, sizeof(url), "%s/v1/devices", relay.url);
        snprintf(auth, sizeof(auth), "Authorization: Bearer %s", admin_tok);
        hs = curl_slist_append(hs, auth);
        hs = curl_slist_append(hs, "Content-Type: application/json");
        hs = curl_slist_append(hs, "Expect: 100-continue");
        curl_easy_setopt(h, CURLOPT_URL, url);
        curl_easy_setopt(h, CURLOPT_HTTPHEADER, hs);
        curl_easy_setopt(h, CURLOPT_POSTFIELDS, big.base);
        curl_easy_setopt(h, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)big.len);
        curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
        curl_easy_setopt(h, CURLOPT_TIMEOUT_MS, 10000L);
        CURLcode cc = curl_easy_perform(h);
        curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &code);
        okf(cc == CURLE_OK && code == 413, "HTTP/1.1 6 MiB: %s, status %ld", curl_easy_strerror(cc), code);
        curl_easy_cleanup(h);
        curl_slist_free_all(hs);
        cr_test_http(&r, "POST", url, admin_tok, "application/json", big.base, big.len, CR_HTTP_H2C);
        okf(r.status == 413 || (r.status == 0 && strstr(r.error, "died") != NULL), "HTTP/2 6 MiB: status %ld %s", r.status,
            r.error);
        cr_test_resp_free(&r);
    }
    cr_buf_free(&big);
    ok(status_of(relay.url, "GET", "/healthz", NULL, NULL, 0) == 200); /* still fine */
}

int main(void)
{
    int status;
    if (cr_test_make_temp_dir(tmp, sizeof(tmp), "relay_core", 80) != 0 || cr_test_slot_add(tmp, 0) < 0) {
        ok(0);
        return done_testing();
    }
    if (cr_test_redis_start(&redis) != 0 || cr_test_relay_start(&relay, cr_test_redis_url(&redis), NULL) != 0) {
        ok(0);
        return done_testing();
    }
    ok(cr_test_relay_admin(&relay, admin_tok, sizeof(admin_tok), "team", "create", "acme", NULL) == 0);
    ok(cr_test_relay_admin(&relay, host_tok, sizeof(host_tok), "token", "create", "--team", "acme", "--kind", "host", NULL) == 0);

    subtest("--help lists every config key with its default", test_help);
    subtest("admin commands", test_admin);
    subtest("tokens are stored only hashed", test_tokens_hashed);
    subtest("a revoked token gets 401 at once", test_revoke);
    subtest("per-token rate limit: 429 with Retry-After", test_rate_limit);
    subtest("/healthz, and /readyz across a Redis crash", test_health_and_redis_crash);
    subtest("/metrics counts what was done", test_metrics);
    subtest("HTTP/1.1 and h2c", test_http_versions);
    subtest("TLS with ALPN h2", test_tls);
    subtest("the embedded Redis", test_embedded_redis);
    subtest("bad requests get their status and code", test_bad_requests);

    status = done_testing();
    if (status != 0)
        note("relay log:\n%s", cr_test_relay_log_tail(&relay));
    cr_test_relay_stop(&relay);
    cr_test_redis_stop(&redis);
    return status;
}
