/* bench_e2e.c — part (b) of the push benchmark: a real redis-server and corral-relay configured against the fake,
 * one team and one device per provider; a host posts approval.request events one per POST at a fixed rate over h2c,
 * each carrying its CLOCK_MONOTONIC send time in its summary; the fake's log then gives, for every push, latency =
 * the fake's receipt time - the send time read back from the push's body ("Bash: t=<ns>"). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench_push.h"
#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/select.h>
#include <time.h>
#include <unistd.h>
#include "corral/buf.h"
#include "corral/mp.h"
#include "corral/ulid.h"
#include "http_client.h"
#include "mp_text.h"
#include "proc.h"
#include "redis_server.h"
#include "relay_proc.h"

#define APNS_TOKEN "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
#define FCM_TOKEN "fcm-registration-token-of-the-bench-phone:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"
#define INFLIGHT 64          /* POSTs in flight at most: below h2o's 100 streams, so curl keeps one connection */
#define DRAIN_MS 10000       /* how long the pushes of the last events may take to arrive */
#define WARM_MS 10000        /* how long the first push may take (connection, FCM access token) */
#define STAMP "Bash: t="     /* in a push's body: the tool, then the event's summary "t=<ns>" */
#define ERRORS_SHOWN 3

static cr_test_redis_t redis;
static cr_test_fake_push_t fake;
static cr_test_relay_t relay;

/* ---- the poster: single-event POSTs at a fixed rate over one h2c connection ------------------------------------- */

typedef struct st_post_t {
    CURL *easy;
    cr_buf_t body;
    int busy;
    uint64_t t0;
} post_t;

typedef struct st_poster_t {
    CURLM *multi;
    post_t posts[INFLIGHT];
    struct curl_slist *hdrs;
    char sid[48];
    uint64_t seq;                 /* the last seq posted */
    uint64_t sent, acked, failed; /* POSTs made, answered 200, not */
    uint64_t lag_max_ns;          /* how late the poster was on its schedule at worst */
    lat_t post_lat;               /* a POST to its answer */
} poster_t;

static size_t on_body_discard(char *p, size_t size, size_t n, void *data)
{
    (void)p, (void)data;
    return size * n;
}

/* Writes a batch of one approval.request event (pri 2, identity "bench-agent") whose summary is `summary` into b. */
static int put_event(cr_buf_t *b, const char *sid, uint64_t seq, const char *summary)
{
    char rid[32];
    int n = snprintf(rid, sizeof(rid), "r%llu", (unsigned long long)seq);
    b->len = 0;
    if (cr_mpw_array(b, 1) || cr_mpw_map(b, 8) || CR_MPW_LIT(b, "v") || cr_mpw_uint(b, 1) || CR_MPW_LIT(b, "k") ||
        CR_MPW_LIT(b, "approval.request") || CR_MPW_LIT(b, "sid") || cr_mpw_str(b, sid, strlen(sid)) ||
        CR_MPW_LIT(b, "seq") || cr_mpw_uint(b, seq) || CR_MPW_LIT(b, "ts") || cr_mpw_uint(b, cr_now_ms()) ||
        CR_MPW_LIT(b, "pri") || cr_mpw_uint(b, 2) || CR_MPW_LIT(b, "idn") || CR_MPW_LIT(b, "bench-agent") ||
        CR_MPW_LIT(b, "b") || cr_mpw_map(b, 3) || CR_MPW_LIT(b, "rid") || cr_mpw_str(b, rid, (size_t)n) ||
        CR_MPW_LIT(b, "tool") || CR_MPW_LIT(b, "Bash") || CR_MPW_LIT(b, "summary") ||
        cr_mpw_str(b, summary, strlen(summary)))
        return -1;
    return 0;
}

/* Opens the connection with GET /healthz and "Upgrade: h2c", on which the POSTs then multiplex. Not with prior
 * knowledge: libcurl 7.88.1 fails every request that reuses a prior-knowledge connection (bench/relay/README.md).
 * Returns 0, or -1 with a message. */
static int poster_open(poster_t *p, const char *token)
{
    char url[160], auth[256];
    CURL *e = curl_easy_init();
    CURLMsg *msg;
    long status = 0, version = 0;
    int running, left, done = 0;
    if ((p->multi = curl_multi_init()) == NULL || e == NULL)
        goto fail;
    curl_multi_setopt(p->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    snprintf(url, sizeof(url), "%s/healthz", relay.url);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_0);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body_discard);
    curl_multi_add_handle(p->multi, e);
    while (!done) {
        curl_multi_poll(p->multi, NULL, 0, 100, NULL);
        curl_multi_perform(p->multi, &running);
        while ((msg = curl_multi_info_read(p->multi, &left)) != NULL)
            done |= msg->msg == CURLMSG_DONE && msg->easy_handle == e;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &version);
    curl_multi_remove_handle(p->multi, e); /* the connection stays in the multi's cache */
    curl_easy_cleanup(e);
    e = NULL;
    if (status != 200 || version != CURL_HTTP_VERSION_2_0) {
        fprintf(stderr, "  %s answered %ld, not 200 over HTTP/2 after Upgrade: h2c\n", url, status);
        return -1;
    }
    snprintf(url, sizeof(url), "%s/v1/host/events", relay.url);
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    p->hdrs = curl_slist_append(p->hdrs, auth);
    memset(auth, 0, sizeof(auth));
    p->hdrs = curl_slist_append(p->hdrs, "Content-Type: application/msgpack");
    p->hdrs = curl_slist_append(p->hdrs, "Expect:");
    if (p->hdrs == NULL)
        goto fail;
    for (int i = 0; i < INFLIGHT; ++i) {
        post_t *q = &p->posts[i];
        cr_buf_init(&q->body, 4096);
        if ((q->easy = curl_easy_init()) == NULL)
            goto fail;
        curl_easy_setopt(q->easy, CURLOPT_URL, url);
        curl_easy_setopt(q->easy, CURLOPT_HTTPHEADER, p->hdrs);
        curl_easy_setopt(q->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_0);
        curl_easy_setopt(q->easy, CURLOPT_PIPEWAIT, 1L);
        curl_easy_setopt(q->easy, CURLOPT_NOSIGNAL, 1L);
        curl_easy_setopt(q->easy, CURLOPT_TIMEOUT_MS, 30000L);
        curl_easy_setopt(q->easy, CURLOPT_WRITEFUNCTION, on_body_discard);
        curl_easy_setopt(q->easy, CURLOPT_PRIVATE, q);
    }
    return 0;
fail:
    if (e != NULL)
        curl_easy_cleanup(e);
    fprintf(stderr, "  cannot set up the poster (out of memory)\n");
    return -1;
}

static void poster_close(poster_t *p)
{
    for (int i = 0; i < INFLIGHT; ++i) {
        if (p->posts[i].easy != NULL) {
            if (p->posts[i].busy)
                curl_multi_remove_handle(p->multi, p->posts[i].easy);
            curl_easy_cleanup(p->posts[i].easy);
        }
        cr_buf_free(&p->posts[i].body);
    }
    if (p->multi != NULL)
        curl_multi_cleanup(p->multi);
    curl_slist_free_all(p->hdrs);
    lat_free(&p->post_lat);
    memset(p, 0, sizeof(*p));
}

/* Waits up to timeout_ms for activity (< 0: no wait), runs transfers and takes the answers. */
static void poster_step(poster_t *p, int timeout_ms)
{
    int running, left;
    CURLMsg *msg;
    if (timeout_ms >= 0)
        curl_multi_poll(p->multi, NULL, 0, timeout_ms, NULL);
    curl_multi_perform(p->multi, &running);
    while ((msg = curl_multi_info_read(p->multi, &left)) != NULL) {
        post_t *q = NULL;
        long status = 0;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&q);
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &status);
        if (status == 200) {
            ++p->acked;
            lat_add(&p->post_lat, bench_now_ns() - q->t0);
        } else if (p->failed++ < ERRORS_SHOWN) {
            fprintf(stderr, "  POST /v1/host/events answered %ld (%s)\n", status, curl_easy_strerror(msg->data.result));
        }
        curl_multi_remove_handle(p->multi, msg->easy_handle);
        q->busy = 0;
    }
}

/* Posts the next event; its summary is "t=<now>" when stamp is set, else "warm-up". Returns 0, or -1 when every
 * place is busy. */
static int poster_post(poster_t *p, int stamp)
{
    char summary[48];
    post_t *q = NULL;
    for (int i = 0; i < INFLIGHT && q == NULL; ++i)
        if (!p->posts[i].busy)
            q = &p->posts[i];
    if (q == NULL)
        return -1;
    q->t0 = bench_now_ns();
    if (stamp)
        snprintf(summary, sizeof(summary), "t=%llu", (unsigned long long)q->t0);
    else
        snprintf(summary, sizeof(summary), "warm-up");
    if (put_event(&q->body, p->sid, ++p->seq, summary) != 0) {
        fprintf(stderr, "  cannot write an event\n");
        exit(1);
    }
    curl_easy_setopt(q->easy, CURLOPT_POSTFIELDS, q->body.base);
    curl_easy_setopt(q->easy, CURLOPT_POSTFIELDSIZE, (long)q->body.len);
    q->busy = 1;
    ++p->sent;
    curl_multi_add_handle(p->multi, q->easy);
    poster_step(p, -1); /* out now */
    return 0;
}

/* Waits up to ns nanoseconds, or less when curl wants to be called sooner, for the connection (pselect:
 * curl_multi_poll counts whole milliseconds, which would take a POST's answer up to a period late), then takes what
 * came. */
static void poster_wait(poster_t *p, uint64_t ns)
{
    fd_set r, w, e;
    int maxfd = -1;
    long curl_ms = -1;
    struct timespec ts;
    curl_multi_timeout(p->multi, &curl_ms);
    if (curl_ms >= 0 && (uint64_t)curl_ms * 1000000u < ns)
        ns = (uint64_t)curl_ms * 1000000u;
    if (ns > 0) {
        ts.tv_sec = (time_t)(ns / 1000000000u);
        ts.tv_nsec = (long)(ns % 1000000000u);
        FD_ZERO(&r);
        FD_ZERO(&w);
        FD_ZERO(&e);
        curl_multi_fdset(p->multi, &r, &w, &e, &maxfd);
        pselect(maxfd + 1, &r, &w, &e, &ts, NULL);
    }
    poster_step(p, -1);
}

static int poster_busy(const poster_t *p)
{
    for (int i = 0; i < INFLIGHT; ++i)
        if (p->posts[i].busy)
            return 1;
    return 0;
}

/* Posts rate events per second for secs seconds on schedule, then waits for the last answers. */
static void poster_run(poster_t *p, int rate, double secs)
{
    uint64_t total = (uint64_t)((double)rate * secs), period = 1000000000u / (uint64_t)rate, t0 = bench_now_ns();
    for (uint64_t i = 0; i < total;) {
        uint64_t now = bench_now_ns(), due = t0 + i * period;
        if (now >= due) {
            if (poster_post(p, 1) != 0) { /* all in flight: the relay is behind */
                poster_step(p, 1);
                continue;
            }
            if (now - due > p->lag_max_ns)
                p->lag_max_ns = now - due;
            ++i;
        } else {
            poster_wait(p, due - now);
        }
    }
    while (poster_busy(p))
        poster_step(p, 100);
}

/* ---- the relay and its devices ---------------------------------------------------------------------------------- */

/* Starts the relay on the benchmark's Redis with every provider pointed at the fake. Returns 0 or -1. */
static int relay_start(void)
{
    static char env[12][PATH_MAX + 64];
    const char *envp[13];
    int k = 0;
    snprintf(env[k++], sizeof(env[0]), "CORRAL_APNS_KEY_FILE=%s", fake.p8);
    snprintf(env[k++], sizeof(env[0]), "CORRAL_APNS_KEY_ID=%s", fake.apns_key_id);
    snprintf(env[k++], sizeof(env[0]), "CORRAL_APNS_TEAM_ID=%s", fake.apns_team_id);
    snprintf(env[k++], sizeof(env[0]), "CORRAL_APNS_TOPIC=%s", fake.apns_topic);
    snprintf(env[k++], sizeof(env[0]), "CORRAL_APNS_URL=%s", fake.url);
    snprintf(env[k++], sizeof(env[0]), "CORRAL_APNS_CA_FILE=%s", fake.ca);
    snprintf(env[k++], sizeof(env[0]), "CORRAL_FCM_SERVICE_ACCOUNT=%s", fake.service_account);
    snprintf(env[k++], sizeof(env[0]), "CORRAL_FCM_URL=%s", fake.url);
    snprintf(env[k++], sizeof(env[0]), "CORRAL_FCM_CA_FILE=%s", fake.ca);
    snprintf(env[k++], sizeof(env[0]), "CORRAL_WEBPUSH_SUBJECT=mailto:bench@example.com");
    snprintf(env[k++], sizeof(env[0]), "CORRAL_WEBPUSH_CA_FILE=%s", fake.ca);
    for (int i = 0; i < k; ++i)
        envp[i] = env[i];
    envp[k++] = "CORRAL_RATELIMIT_PER_SECOND=0";
    envp[k++] = "CORRAL_LOG_LEVEL=warn";
    envp[k] = NULL;
    if (cr_test_relay_start(&relay, cr_test_redis_url(&redis), envp) != 0)
        return -1;
    bench_print_build(relay.exe);
    printf("  relay pid %d on port %d\n", (int)relay.pid, relay.port);
    return 0;
}

/* Makes team `provider` with a host token (into host) and one device of that provider registered. Returns 0 or -1
 * with a message. */
static int make_team(int provider, char *host, size_t hostlen)
{
    const char *name = bench_provider_name(provider);
    char admin[128], dev[128], json[1024], url[128];
    cr_test_resp_t r = {0};
    int rc = -1;
    if (cr_test_relay_admin(&relay, admin, sizeof(admin), "team", "create", name, NULL) != 0 ||
        cr_test_relay_admin(&relay, host, hostlen, "token", "create", "--team", name, "--kind", "host", NULL) != 0 ||
        cr_test_relay_admin(&relay, dev, sizeof(dev), "token", "create", "--team", name, "--kind", "device", NULL) != 0) {
        fprintf(stderr, "  `corral-relay admin` could not make team %s and its tokens\n", name);
        goto done;
    }
    if (provider == BP_APNS) {
        snprintf(json, sizeof(json), "{\"name\":\"bench iPhone\",\"provider\":\"apns\",\"token\":\"%s\",\"env\":\"sandbox\"}",
                 APNS_TOKEN);
    } else if (provider == BP_FCM) {
        snprintf(json, sizeof(json), "{\"name\":\"bench Pixel\",\"provider\":\"fcm\",\"token\":\"%s\"}", FCM_TOKEN);
    } else {
        /* the browser subscribes with the relay's VAPID key */
        cr_test_webpush_sub_t sub;
        char key[128];
        snprintf(url, sizeof(url), "%s/v1/webpush/vapid", relay.url);
        if (cr_test_http(&r, "GET", url, NULL, NULL, NULL, 0, 0) != 0 || r.status != 200 ||
            cr_test_fake_push_subscribe(&fake, &sub, cr_test_json_text(&r, "public_key", key, sizeof(key))) != 0) {
            fprintf(stderr, "  no Web Push subscription with the relay's VAPID key\n");
            goto done;
        }
        snprintf(json, sizeof(json),
                 "{\"name\":\"bench browser\",\"provider\":\"webpush\",\"subscription\":{\"endpoint\":\"%s\",\"keys\":"
                 "{\"p256dh\":\"%s\",\"auth\":\"%s\"}}}",
                 sub.endpoint, sub.p256dh, sub.auth);
        cr_test_resp_free(&r);
    }
    snprintf(url, sizeof(url), "%s/v1/devices", relay.url);
    if (cr_test_http_json(&r, "POST", url, dev, json) != 0 || r.status != 201) {
        fprintf(stderr, "  POST /v1/devices answered %ld: %s\n", r.status, r.body != NULL ? r.body : "");
        goto done;
    }
    rc = 0;
done:
    cr_test_resp_free(&r);
    memset(admin, 0, sizeof(admin));
    memset(dev, 0, sizeof(dev));
    return rc;
}

/* The fake's count of requests of provider answered with any status. */
static long long fake_total(const char *provider)
{
    char path[64];
    snprintf(path, sizeof(path), "providers.%s.total", provider);
    return cr_test_fake_push_stat(&fake, path);
}

/* Waits up to ms for the fake's count of provider's requests to reach want. Returns 0 or -1. */
static int wait_total(const char *provider, long long want, int ms)
{
    int64_t deadline = cr_test_now_ms() + ms;
    while (fake_total(provider) < want) {
        if (cr_test_now_ms() > deadline)
            return -1;
        cr_test_sleep_ms(10);
    }
    return 0;
}

/* Reads the fake's log of provider after n = since, page by page: every accepted push whose body carries a send
 * time gives one latency. *accepted counts those, *other the entries answered otherwise. */
static void read_log(const char *provider, long long since, int want_status, lat_t *lat, uint64_t *accepted, uint64_t *other)
{
    for (;;) {
        cr_test_fake_push_entry_t *e = NULL;
        size_t n = 0;
        if (cr_test_fake_push_entries(&fake, since, provider, &e, &n) != 0 || n == 0)
            break;
        for (size_t i = 0; i < n; ++i) {
            const char *t = strstr(e[i].payload, STAMP);
            uint64_t sent;
            if (e[i].status != want_status || t == NULL) {
                ++*other;
                continue;
            }
            sent = strtoull(t + strlen(STAMP), NULL, 10);
            lat_add(lat, (uint64_t)e[i].t_ns > sent ? (uint64_t)e[i].t_ns - sent : 0);
            ++*accepted;
        }
        since = e[n - 1].n;
        cr_test_fake_push_entries_free(e, n);
    }
}

/* ---- one provider ----------------------------------------------------------------------------------------------- */

static void run_provider(int provider, double secs, int rate)
{
    const char *name = bench_provider_name(provider);
    int want_status = provider == BP_WEBPUSH ? 201 : 200;
    poster_t *p = calloc(1, sizeof(*p));
    char host[128], fig[64];
    long long total0, since;
    uint64_t accepted = 0, other = 0, t0, t_posted, t_end;
    double cpu[4][2], wall;
    pid_t pids[4] = {relay.pid, redis.pid, fake.pid, getpid()};
    lat_t lat = {0};
    int met;

    printf("\n  %s: one device; a host posts 1 approval.request per POST at %d/s for %.0f s\n", name, rate, secs);
    if (p == NULL || make_team(provider, host, sizeof(host)) != 0 || poster_open(p, host) != 0)
        goto fail;
    memset(host, 0, sizeof(host));
    snprintf(p->sid, sizeof(p->sid), "S-bench-%s", name);
    /* one push first, not measured: the relay's connection to the fake, FCM's access token */
    total0 = fake_total(name);
    poster_post(p, 0);
    while (poster_busy(p))
        poster_step(p, 100);
    if (p->acked != 1 || wait_total(name, total0 + 1, WARM_MS) != 0) {
        fprintf(stderr, "  the first event (POST answered: %s) did not reach the fake's %s\n%s\n", p->acked ? "yes" : "no",
                name, cr_test_relay_log_tail(&relay));
        goto fail;
    }
    since = cr_test_fake_push_stat(&fake, "log.last");
    total0 = fake_total(name);
    p->sent = p->acked = p->failed = 0;
    lat_free(&p->post_lat);

    for (int i = 0; i < 4; ++i)
        cpu[i][0] = bench_cpu_s(pids[i]);
    t0 = bench_now_ns();
    poster_run(p, rate, secs);
    t_posted = bench_now_ns();
    if (wait_total(name, total0 + (long long)p->acked, DRAIN_MS) != 0)
        fprintf(stderr, "  the fake received %lld of %llu pushes within %d ms of the last POST\n", fake_total(name) - total0,
                (unsigned long long)p->acked, DRAIN_MS);
    t_end = bench_now_ns();
    for (int i = 0; i < 4; ++i)
        cpu[i][1] = bench_cpu_s(pids[i]);
    read_log(name, since, want_status, &lat, &accepted, &other);

    wall = (double)(t_end - t0) / 1e9;
    printf("  posted %llu events in %.2f s (the poster at most %.2f ms late), %llu stored, %llu failed; POST p50 %.2f ms,"
           " p99 %.2f ms\n",
           (unsigned long long)p->sent, (double)(t_posted - t0) / 1e9, (double)p->lag_max_ns / 1e6,
           (unsigned long long)p->acked, (unsigned long long)p->failed, lat_pct_ms(&p->post_lat, 50),
           lat_pct_ms(&p->post_lat, 99));
    printf("  pushes received %llu of %llu expected (%llu other answers in the fake's log)\n", (unsigned long long)accepted,
           (unsigned long long)p->acked, (unsigned long long)other);
    printf("  latency POST -> the fake's receipt: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n",
           lat_pct_ms(&lat, 50), lat_pct_ms(&lat, 99), lat_pct_ms(&lat, 99.9), lat_max_ms(&lat));
    printf("  CPU over %.1f s: relay %.0f%% of a core, redis-server %.0f%%, the fake %.0f%%, this benchmark %.0f%%\n", wall,
           100 * (cpu[0][1] - cpu[0][0]) / wall, 100 * (cpu[1][1] - cpu[1][0]) / wall, 100 * (cpu[2][1] - cpu[2][0]) / wall,
           100 * (cpu[3][1] - cpu[3][0]) / wall);
    met = lat.n > 0 && accepted == p->acked && p->acked == p->sent && lat_pct_ms(&lat, 99) <= 10.0;
    snprintf(fig, sizeof(fig), "(b) %s ingest->receipt p50 / p99 (%d/s)", name, rate);
    bench_row(fig, rate == 1000 ? "p99 <= 10 ms" : NULL, met, "%.2f / %.2f ms%s", lat_pct_ms(&lat, 50),
              lat_pct_ms(&lat, 99), accepted == p->acked ? "" : " (pushes lost)");
    snprintf(fig, sizeof(fig), "(b) %s p99.9 / max", name);
    bench_row(fig, NULL, 0, "%.2f / %.2f ms", lat_pct_ms(&lat, 99.9), lat_max_ms(&lat));
    snprintf(fig, sizeof(fig), "(b) %s received / expected", name);
    bench_row(fig, NULL, 0, "%llu / %llu", (unsigned long long)accepted, (unsigned long long)p->acked);
    snprintf(fig, sizeof(fig), "(b) %s CPU relay/redis/fake/bench", name);
    bench_row(fig, NULL, 0, "%.0f/%.0f/%.0f/%.0f %% of a core", 100 * (cpu[0][1] - cpu[0][0]) / wall,
              100 * (cpu[1][1] - cpu[1][0]) / wall, 100 * (cpu[2][1] - cpu[2][0]) / wall, 100 * (cpu[3][1] - cpu[3][0]) / wall);
    goto done;
fail:
    fprintf(stderr, "  (b) %s could not run\n", name);
    snprintf(fig, sizeof(fig), "(b) %s ingest->receipt p50 / p99 (%d/s)", name, rate);
    bench_row(fig, rate == 1000 ? "p99 <= 10 ms" : NULL, 0, "failed");
done:
    memset(host, 0, sizeof(host));
    if (p != NULL)
        poster_close(p);
    free(p);
    lat_free(&lat);
}

void part_e2e(int providers, double secs, int rate)
{
    long log_size = (long)((double)rate * secs) * 3 + 1000; /* every push of every provider, and room for retries */
    printf("\n(b) end to end: host POST -> relay -> Redis push queue -> relay's push client -> the fake's receipt\n");
    if (log_size > 10000000)
        log_size = 10000000;
    if (cr_test_redis_start(&redis) != 0) {
        bench_row("(b) ingest->receipt", NULL, 0, "failed: no redis-server");
        return;
    }
    printf("  redis-server pid %d on port %d\n", (int)redis.pid, redis.port);
    if (bench_fake_start(&fake, log_size) != 0 || relay_start() != 0) {
        bench_row("(b) ingest->receipt", NULL, 0, "failed: no fake or no relay");
        goto done;
    }
    for (int bit = BP_APNS; bit <= BP_WEBPUSH; bit <<= 1)
        if (providers & bit)
            run_provider(bit, secs, rate);
done:
    cr_test_relay_stop(&relay);
    cr_test_fake_push_stop(&fake);
    cr_test_redis_stop(&redis);
}
