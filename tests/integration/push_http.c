/* push_http.c — the push gateway's HTTP client (relay/src/push_http.c) against a real corral-relay over TLS and the
 * fake APNs: answers with status, body, Retry-After and apns-id; many requests multiplexed over one HTTP/2
 * connection; connect, TLS and timeout failures; closing with requests in flight. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include <uv.h>
#include "certs.h"
#include "fake_push.h"
#include "harness.h"
#include "proc.h"
#include "push_http.h"
#include "push_jwt.h"
#include "relay_proc.h"

static uv_loop_t loop;
static cr_test_relay_t relay;
static char tmp[PATH_MAX];
static char cert[PATH_MAX + 16], key[PATH_MAX + 16], other_cert[PATH_MAX + 16], other_key[PATH_MAX + 16];
static char base[64]; /* https://127.0.0.1:TLSPORT */
static int in_send;   /* set while relay_push_http_send runs: a cb must never see it */
static int cb_in_send;

/* ---- helpers --------------------------------------------------------------------------------------------------- */

/* What one request's cb saw. */
typedef struct st_got_t {
    int calls;
    long status;
    char error[512];
    int has_error;
    char *body;
    size_t body_len;
    int http_version;
    long local_port;
    int64_t retry_after_ms;
    char apns_id[64];
    int *done; /* counted up once per cb */
    relay_push_http_t **close_hp; /* when *close_hp is set: close that client from inside the cb (once) */
    int *closed;                  /* its on_closed counter */
    relay_push_http_t *send_h;  /* when set: try to send on it from inside the cb (expected to fail) */
    int send_rc;
} got_t;

static void on_closed(void *data)
{
    ++*(int *)data;
}

static void on_answer(const relay_push_answer_t *a, void *data)
{
    got_t *g = data;
    if (in_send)
        ++cb_in_send;
    ++g->calls;
    g->status = a->status;
    g->has_error = a->error != NULL;
    snprintf(g->error, sizeof(g->error), "%s", a->error != NULL ? a->error : "");
    free(g->body);
    g->body = malloc(a->body_len + 1);
    if (a->body_len > 0)
        memcpy(g->body, a->body, a->body_len);
    g->body[a->body_len] = '\0';
    g->body_len = a->body_len;
    g->http_version = a->http_version;
    g->local_port = a->local_port;
    g->retry_after_ms = a->retry_after_ms;
    memcpy(g->apns_id, a->apns_id, sizeof(g->apns_id));
    if (g->done != NULL)
        ++*g->done;
    if (g->send_h != NULL) {
        relay_push_req_t req = {0};
        snprintf(req.url, sizeof(req.url), "%s/healthz", base);
        relay_push_req_header(&req, "x-test", "1");
        g->send_rc = relay_push_http_send(g->send_h, &req, on_answer, g);
        if (g->send_rc == 0 || req.nheaders != 1) /* refused: the request is still ours */
            g->send_rc = 99;
        relay_push_req_free(&req);
    }
    if (g->close_hp != NULL && *g->close_hp != NULL) {
        relay_push_http_t *h = *g->close_hp;
        *g->close_hp = NULL;
        relay_push_http_close(h, on_closed, g->closed);
    }
}

static void got_free(got_t *g, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        free(g[i].body);
        g[i].body = NULL;
    }
}

/* Sends method url (with an optional body and ca file). Returns what send returns. */
static int send_to(relay_push_http_t *h, got_t *g, const char *method, const char *url, const char *body, const char *ca)
{
    relay_push_req_t req = {0};
    int rc;
    snprintf(req.url, sizeof(req.url), "%s", url);
    req.method = method;
    req.ca_file = ca;
    cr_buf_init(&req.body, 1 << 20);
    if (body != NULL)
        cr_buf_append(&req.body, body, strlen(body));
    if (body != NULL && body[0] == '{')
        relay_push_req_header(&req, "content-type", "application/json");
    in_send = 1;
    rc = relay_push_http_send(h, &req, on_answer, g);
    in_send = 0;
    if (rc != 0)
        relay_push_req_free(&req);
    else if (req.url[0] != '\0' || req.body.base != NULL || req.nheaders != 0)
        okf(0, "send did not take the request's contents");
    return rc;
}

static void tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until *done reaches want or ms pass. Returns 1 when it did. */
static int run_until(const int *done, int want, long ms)
{
    uv_timer_t t;
    int64_t end = cr_test_now_ms() + ms;
    uv_timer_init(&loop, &t);
    uv_timer_start(&t, tick, 20, 20);
    while (*done < want && cr_test_now_ms() < end)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&t, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return *done >= want;
}

/* Closes h and runs the loop until it says it is closed. */
static void close_client(relay_push_http_t *h)
{
    int closed = 0;
    relay_push_http_close(h, on_closed, &closed);
    ok(run_until(&closed, 1, 5000));
    ok(closed == 1);
}

static relay_push_http_t *new_client(void)
{
    relay_push_http_t *h = NULL;
    if (!ok(relay_push_http_new(&h, &loop) == 0))
        return NULL;
    return h;
}

/* ---- tests ----------------------------------------------------------------------------------------------------- */

static void test_answers(void)
{
    relay_push_http_t *h = new_client();
    got_t g[2] = {{0}};
    int done = 0;
    char url[128];
    if (h == NULL)
        return;
    g[0].done = g[1].done = &done;

    snprintf(url, sizeof(url), "%s/healthz", base);
    ok(send_to(h, &g[0], "GET", url, NULL, cert) == 0);
    ok(relay_push_http_inflight(h) == 1);
    ok(done == 0); /* never inside send */
    ok(run_until(&done, 1, 10000));
    ok(g[0].calls == 1);
    okf(g[0].status == 200, "status %ld error %s", g[0].status, g[0].error);
    ok(!g[0].has_error);
    ok(g[0].http_version == 2);
    ok(g[0].local_port > 0);
    ok(g[0].retry_after_ms == -1);
    ok_str(g[0].apns_id, "");
    ok(relay_push_http_inflight(h) == 0);
    note("GET /healthz: %ld %.*s", g[0].status, (int)(g[0].body_len > 80 ? 80 : g[0].body_len), g[0].body);

    /* an error answer with a JSON body, on the same connection */
    snprintf(url, sizeof(url), "%s/v1/host/events", base);
    ok(send_to(h, &g[1], "POST", url, "{}", cert) == 0);
    ok(run_until(&done, 2, 10000));
    ok(g[1].calls == 1);
    okf(g[1].status == 401, "status %ld error %s", g[1].status, g[1].error);
    ok(g[1].body_len > 0 && strstr(g[1].body, "\"unauthorized\"") != NULL);
    ok(g[1].local_port == g[0].local_port);
    ok(relay_push_http_connects(h) == 1);
    ok(cb_in_send == 0);
    close_client(h);
    got_free(g, 2);
}

static void test_one_connection(void)
{
    enum { N = 200 };
    relay_push_http_t *h = new_client();
    got_t *g = calloc(N, sizeof(*g));
    int done = 0, all_ok = 1, same_port = 1;
    char url[128];
    int64_t t0;
    if (h == NULL)
        return;
    snprintf(url, sizeof(url), "%s/healthz", base);
    for (int round = 0; round < 2; ++round) {
        done = 0;
        t0 = cr_test_now_ms();
        for (int i = 0; i < N; ++i) {
            g[i].done = &done;
            g[i].calls = 0;
            if (send_to(h, &g[i], "GET", url, NULL, cert) != 0)
                all_ok = 0;
        }
        ok(all_ok);
        ok(relay_push_http_inflight(h) == N);
        ok(run_until(&done, N, 30000));
        note("round %d: %d requests in %lld ms", round, N, (long long)(cr_test_now_ms() - t0));
        for (int i = 0; i < N; ++i) {
            if (g[i].calls != 1 || g[i].status != 200 || g[i].http_version != 2) {
                if (all_ok)
                    note("request %d: calls %d status %ld http %d error %s", i, g[i].calls, g[i].status,
                         g[i].http_version, g[i].error);
                all_ok = 0;
            }
            if (g[i].local_port != g[0].local_port || g[i].local_port == 0)
                same_port = 0;
        }
        ok(all_ok);
        ok(same_port);      /* one connection ... */
        okf(relay_push_http_connects(h) == 1, "connects %llu", (unsigned long long)relay_push_http_connects(h));
    }                       /* ... kept and reused for the second round */
    ok(relay_push_http_inflight(h) == 0);
    close_client(h);
    got_free(g, N);
    free(g);
}

static void test_failures(void)
{
    relay_push_http_t *h = new_client();
    got_t g[4] = {{0}};
    int done = 0, port = cr_test_free_port(), lfd;
    struct sockaddr_in sa = {0};
    socklen_t salen = sizeof(sa);
    char url[128];
    int64_t t0;
    if (h == NULL)
        return;
    for (int i = 0; i < 4; ++i)
        g[i].done = &done;

    /* nobody listens */
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/", port);
    ok(send_to(h, &g[0], "POST", url, "x", cert) == 0);
    /* a certificate nobody trusts: the system's CAs, then another self-signed certificate */
    snprintf(url, sizeof(url), "%s/healthz", base);
    ok(send_to(h, &g[1], "GET", url, NULL, NULL) == 0);
    ok(send_to(h, &g[2], "GET", url, NULL, other_cert) == 0);
    ok(run_until(&done, 3, 15000));
    ok(g[0].calls == 1 && g[0].status == 0 && g[0].has_error);
    note("closed port: %s", g[0].error);
    ok(strstr(g[0].error, "onnect") != NULL);
    for (int i = 1; i <= 2; ++i) {
        ok(g[i].calls == 1 && g[i].status == 0 && g[i].has_error);
        note("untrusted: %s", g[i].error);
        ok(strstr(g[i].error, "SSL") != NULL || strstr(g[i].error, "certificate") != NULL);
        ok(g[i].retry_after_ms == -1 && g[i].body_len == 0);
    }

    /* a server that accepts the connection and never answers: the whole-request timeout */
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lfd, 8) == 0 &&
       getsockname(lfd, (struct sockaddr *)&sa, &salen) == 0);
    relay_push_http_set_timeouts(h, 5000, 300);
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/", ntohs(sa.sin_port));
    t0 = cr_test_now_ms();
    ok(send_to(h, &g[3], "GET", url, NULL, cert) == 0);
    ok(run_until(&done, 4, 10000));
    ok(g[3].calls == 1 && g[3].status == 0);
    note("silent server: %s after %lld ms", g[3].error, (long long)(cr_test_now_ms() - t0));
    ok(strstr(g[3].error, "timed out") != NULL);
    ok(cr_test_now_ms() - t0 < 3000);
    close(lfd);
    ok(cb_in_send == 0);
    close_client(h);
    got_free(g, 4);
}

static void test_close_in_flight(void)
{
    enum { N = 50 };
    relay_push_http_t *h = new_client();
    got_t g[N + 1];
    int done = 0, closed = 0, lfd, once = 1, shutdown = 0, answered = 0;
    struct sockaddr_in sa = {0};
    socklen_t salen = sizeof(sa);
    char url[128];
    if (h == NULL)
        return;
    relay_push_http_set_max_active(h, 10); /* most wait in our queue */
    memset(g, 0, sizeof(g));
    lfd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_family = AF_INET;
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    ok(lfd >= 0 && bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(lfd, 8) == 0 &&
       getsockname(lfd, (struct sockaddr *)&sa, &salen) == 0);

    snprintf(url, sizeof(url), "%s/healthz", base);
    for (int i = 0; i < N; ++i) {
        g[i].done = &done;
        if (send_to(h, &g[i], "GET", url, NULL, cert) != 0)
            once = 0;
    }
    ok(relay_push_http_inflight(h) == N);
    snprintf(url, sizeof(url), "https://127.0.0.1:%d/", ntohs(sa.sin_port)); /* never answers */
    g[N].done = &done;
    g[N].send_h = h;
    ok(send_to(h, &g[N], "GET", url, NULL, cert) == 0);
    uv_run(&loop, UV_RUN_NOWAIT); /* under way (on loopback some may even be answered already) */
    relay_push_http_close(h, on_closed, &closed);
    okf(done == N + 1, "done %d", done); /* every cb ran, inside close */
    for (int i = 0; i <= N; ++i) {
        if (g[i].calls != 1)
            once = 0;
        if (g[i].status == 0 && strcmp(g[i].error, "shutdown") == 0)
            ++shutdown;
        else if (g[i].status == 200)
            ++answered;
    }
    for (int i = 0; i <= N; ++i)
        if (g[i].calls != 1 || (g[i].status != 0 && g[i].status != 200))
            note("request %d: calls %d status %ld error %s", i, g[i].calls, g[i].status, g[i].error);
    ok(once);
    note("closed with %d shut down, %d answered before", shutdown, answered);
    ok(shutdown + answered == N + 1);
    ok(shutdown >= 1 && strcmp(g[N].error, "shutdown") == 0);
    ok(g[N].send_rc == -1); /* sending from a cb during close fails, the request left to its owner */
    ok(closed == 0);        /* on_closed comes later, from the loop */
    ok(run_until(&closed, 1, 5000));
    ok(closed == 1);
    close(lfd);
    got_free(g, N + 1);

    /* closed from inside a cb while other requests are in flight: the rest get "shutdown", each cb once */
    {
        relay_push_http_t *h2 = new_client();
        got_t g2[20];
        int done2 = 0, calls_ok = 1, closed2 = 0;
        if (h2 == NULL)
            return;
        memset(g2, 0, sizeof(g2));
        snprintf(url, sizeof(url), "%s/healthz", base);
        for (int i = 0; i < 20; ++i) {
            g2[i].done = &done2;
            g2[i].close_hp = &h2;
            g2[i].closed = &closed2;
            ok(send_to(h2, &g2[i], "GET", url, NULL, cert) == 0);
        }
        ok(run_until(&done2, 20, 10000));
        ok(h2 == NULL);
        ok(run_until(&closed2, 1, 5000));
        ok(closed2 == 1);
        shutdown = 0;
        for (int i = 0; i < 20; ++i) {
            if (g2[i].calls != 1)
                calls_ok = 0;
            shutdown += g2[i].status == 0 && strcmp(g2[i].error, "shutdown") == 0;
        }
        ok(calls_ok);
        note("closed from a cb: %d of 20 were shut down", shutdown);
        ok(shutdown >= 1 && shutdown < 20);
        got_free(g2, 20);
    }
}

/* An APNs request to the fake: a valid provider token, topic and payload. */
static int apns_req(relay_push_req_t *req, const cr_test_fake_push_t *fp, const char *jwt, const char *apns_id)
{
    static const char token[] = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    static const char payload[] = "{\"aps\":{\"alert\":{\"title\":\"t\",\"body\":\"b\"}}}";
    char bearer[1024];
    memset(req, 0, sizeof(*req));
    snprintf(req->url, sizeof(req->url), "%s/3/device/%s", fp->apns_url, token);
    req->method = "POST";
    req->ca_file = fp->ca;
    snprintf(bearer, sizeof(bearer), "bearer %s", jwt);
    cr_buf_init(&req->body, 4096);
    if (relay_push_req_header(req, "authorization", bearer) != 0 || relay_push_req_header(req, "apns-topic", fp->apns_topic) != 0 ||
        relay_push_req_header(req, "apns-push-type", "alert") != 0 ||
        (apns_id != NULL && relay_push_req_header(req, "apns-id", apns_id) != 0) ||
        cr_buf_append(&req->body, payload, sizeof(payload) - 1) != 0) {
        relay_push_req_free(req);
        return -1;
    }
    return 0;
}

/* A throughput run: each answer counts and sends the next request. */
typedef struct st_bench_t {
    relay_push_http_t *h;
    const cr_test_fake_push_t *fp;
    const char *jwt;
    int n, sent, fin, bad;
} bench_t;

static void bench_answer(const relay_push_answer_t *a, void *data);

static void bench_send(bench_t *b)
{
    relay_push_req_t req;
    if (apns_req(&req, b->fp, b->jwt, NULL) != 0)
        return;
    if (relay_push_http_send(b->h, &req, bench_answer, b) != 0) {
        relay_push_req_free(&req);
        return;
    }
    ++b->sent;
}

static void bench_answer(const relay_push_answer_t *a, void *data)
{
    bench_t *b = data;
    ++b->fin;
    b->bad += a->status != 200;
    if (b->sent < b->n)
        bench_send(b);
}

static void test_apns_fake(void)
{
    cr_test_fake_push_t fp = {0};
    cr_test_fake_push_opts_t opts = {0};
    relay_jwt_key_t k = {0};
    cr_buf_t jwt;
    relay_push_http_t *h;
    relay_push_req_t req;
    got_t g[4] = {{0}};
    int done = 0;
    char url[256];
    static const char id1[] = "11111111-2222-3333-4444-555555555555";

    opts.log_size = 100;
    if (!ok(cr_test_fake_push_start(&fp, &opts) == 0))
        return;
    cr_buf_init(&jwt, 4096);
    if (!ok(relay_jwt_key_load_file(&k, fp.p8) == 0) ||
        !ok(relay_jwt_apns_token(&jwt, &k, fp.apns_key_id, fp.apns_team_id, (int64_t)time(NULL)) == 0) ||
        !ok(cr_buf_append(&jwt, "", 1) == 0) || (h = new_client()) == NULL) {
        relay_jwt_key_free(&k);
        cr_buf_free(&jwt);
        cr_test_fake_push_stop(&fp);
        return;
    }
    for (int i = 0; i < 4; ++i)
        g[i].done = &done;

    /* a scripted 429 with Retry-After, then a 200; both echo our apns-id */
    ok(cr_test_fake_push_script(&fp, "apns", "*", 429, NULL, 1, 7, -1) == 0);
    ok(apns_req(&req, &fp, jwt.base, id1) == 0);
    ok(relay_push_http_send(h, &req, on_answer, &g[0]) == 0);
    ok(run_until(&done, 1, 10000));
    okf(g[0].status == 429, "status %ld error %s", g[0].status, g[0].error);
    ok(g[0].retry_after_ms == 7000);
    ok_str(g[0].apns_id, id1);
    ok(strstr(g[0].body, "TooManyRequests") != NULL);
    ok(g[0].http_version == 2);

    ok(apns_req(&req, &fp, jwt.base, NULL) == 0);
    ok(relay_push_http_send(h, &req, on_answer, &g[1]) == 0);
    ok(run_until(&done, 2, 10000));
    okf(g[1].status == 200, "status %ld error %s body %s", g[1].status, g[1].error, g[1].body);
    ok(g[1].retry_after_ms == -1);
    ok(strlen(g[1].apns_id) == 36); /* the one APNs made up */
    ok(g[1].body_len == 0);

    /* an answer over RELAY_PUSH_ANSWER_MAX is cut there: the fake's request log, grown past it */
    for (int i = 0; i < 40; ++i) {
        got_t x = {0};
        int d = 0;
        x.done = &d;
        if (apns_req(&req, &fp, jwt.base, NULL) != 0 || relay_push_http_send(h, &req, on_answer, &x) != 0 ||
            !run_until(&d, 1, 10000)) {
            ok(0);
            break;
        }
        got_free(&x, 1);
    }
    snprintf(url, sizeof(url), "%s/_fake/log", fp.url);
    ok(send_to(h, &g[2], "GET", url, NULL, fp.ca) == 0);
    ok(run_until(&done, 3, 10000));
    okf(g[2].status == 200, "status %ld error %s", g[2].status, g[2].error);
    okf(g[2].body_len == RELAY_PUSH_ANSWER_MAX, "body %zu", g[2].body_len);
    ok(relay_push_http_connects(h) == 1);

    /* throughput over the one connection: `window` requests kept in flight, each answer sending the next (under ASan
     * this is a floor, not the benchmark; PUSH_HTTP_N sets the count) */
    {
        bench_t b = {0};
        b.h = h;
        b.fp = &fp;
        b.jwt = jwt.base;
        b.n = getenv("PUSH_HTTP_N") != NULL ? atoi(getenv("PUSH_HTTP_N")) : 3000;
        int window = getenv("PUSH_HTTP_WINDOW") != NULL ? atoi(getenv("PUSH_HTTP_WINDOW")) : 1000;
        if (getenv("PUSH_HTTP_ACTIVE") != NULL)
            relay_push_http_set_max_active(h, (size_t)atoi(getenv("PUSH_HTTP_ACTIVE")));
        int64_t t0 = cr_test_now_ms();
        for (int i = 0; i < window && b.sent < b.n; ++i)
            bench_send(&b);
        ok(run_until(&b.fin, b.n, 60000));
        int64_t ms = cr_test_now_ms() - t0;
        ok(b.fin == b.n);
        okf(b.bad == 0, "%d not 200", b.bad);
        note("%d APNs requests, %d in flight, in %lld ms: %.0f/s over %llu connection(s)", b.n, window, (long long)ms,
             ms > 0 ? b.n * 1000.0 / (double)ms : 0.0, (unsigned long long)relay_push_http_connects(h));
        ok(relay_push_http_connects(h) == 1);
    }

    close_client(h);
    got_free(g, 4);
    relay_jwt_key_free(&k);
    cr_buf_free(&jwt);
    ok(cr_test_fake_push_stop(&fp) == 0);
}

static void test_retry_after_values(void)
{
    const int64_t date_s = 784111777; /* Sun, 06 Nov 1994 08:49:37 GMT */
    const int64_t now = (date_s - 30) * 1000;
#define RA(s, n) relay_push_http__retry_after_ms((s), strlen(s), (n))
    ok(RA("120", now) == 120000);
    ok(RA(" 5 \r\n", now) == 5000);
    ok(RA("0", now) == 0);
    ok(RA("99999999999999999999999", now) == RELAY_PUSH_RETRY_AFTER_MAX_MS);
    ok(RA("Sun, 06 Nov 1994 08:49:37 GMT", now) == 30000);
    ok(RA("Sunday, 06-Nov-94 08:49:37 GMT", now) == 30000);
    ok(RA("Sun Nov  6 08:49:37 1994", now) == 30000);
    ok(RA("Sun, 06 Nov 1994 08:49:37 GMT", now + 3600000) == 0); /* in the past */
    ok(RA("Sun, 06 Nov 2094 08:49:37 GMT", now) == RELAY_PUSH_RETRY_AFTER_MAX_MS);
    ok(RA("", now) == -1);
    ok(RA("soon", now) == -1);
    ok(RA("-5", now) == -1);
    ok(RA("5s", now) == -1);
    ok(RA("1.5", now) == -1);
#undef RA
}

int main(void)
{
    cr_test_relay_t *r = &relay;
    char listen_env[96], cert_env[PATH_MAX + 64], key_env[PATH_MAX + 64];
    int started = 0, port = 0, status;

    uv_loop_init(&loop);
    if (cr_test_make_temp_dir(tmp, sizeof(tmp), "push_http", 200) != 0 || cr_test_slot_add(tmp, 0) < 0)
        return 1;
    snprintf(cert, sizeof(cert), "%s/cert.pem", tmp);
    snprintf(key, sizeof(key), "%s/key.pem", tmp);
    snprintf(other_cert, sizeof(other_cert), "%s/other.pem", tmp);
    snprintf(other_key, sizeof(other_key), "%s/other.key", tmp);
    if (cr_test_make_cert(cert, key) != 0 || cr_test_make_cert(other_cert, other_key) != 0)
        return 1;
    snprintf(cert_env, sizeof(cert_env), "CORRAL_HTTP_TLS_CERT=%s", cert);
    snprintf(key_env, sizeof(key_env), "CORRAL_HTTP_TLS_KEY=%s", key);
    for (int attempt = 0; attempt < 3 && !started; ++attempt) { /* the TLS port may be taken between pick and bind */
        const char *env[] = {listen_env, cert_env, key_env, NULL};
        port = cr_test_free_port();
        snprintf(listen_env, sizeof(listen_env), "CORRAL_HTTP_TLS_LISTEN=127.0.0.1:%d", port);
        started = cr_test_relay_start(r, "", env) == 0;
    }
    if (!ok(started))
        return done_testing();
    snprintf(base, sizeof(base), "https://127.0.0.1:%d", port);

    subtest("Retry-After values", test_retry_after_values);
    subtest("answers: status, body, HTTP/2", test_answers);
    subtest("200 concurrent requests share one kept connection", test_one_connection);
    subtest("connect, TLS and timeout failures", test_failures);
    subtest("close with requests in flight", test_close_in_flight);
    subtest("APNs fake: Retry-After, apns-id, capped body, throughput", test_apns_fake);

    ok(uv_loop_close(&loop) == 0); /* every uv handle was closed */
    status = done_testing();
    if (status != 0)
        note("relay log:\n%s", cr_test_relay_log_tail(r));
    cr_test_relay_stop(r);
    cr_test_rm_rf(tmp);
    return status;
}
