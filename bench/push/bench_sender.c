/* bench_sender.c — part (a) of the push benchmark: the relay's own push client (relay_push_http_t on a libuv loop) and
 * its APNs, FCM and Web Push request builders, in this process, sending N notifications per provider to the fake over
 * one HTTP/2 connection with a fixed number outstanding; notifications/s accepted and per-request latency. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench_push.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>
#include "corral/codec.h"
#include "corral/error.h"
#include "corral/ulid.h"
#include "proc.h"
#include "push_apns.h"
#include "push_fcm.h"
#include "push_http.h"
#include "push_jwt.h"
#include "push_webpush.h"
#include "webpush.h"

#define APNS_TOKEN "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
#define FCM_TOKEN "fcm-registration-token-of-the-bench-phone:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"
#define SUBJECT "mailto:bench@example.com"
#define SETUP_TIMEOUT_MS 10000
#define RUN_TIMEOUT_MS 600000 /* a whole provider's run, at most */
#define ERRORS_SHOWN 3

typedef struct st_sender_t sender_t;

/* One place for an outstanding request. */
typedef struct st_slot_t {
    sender_t *s;
    uint64_t t0; /* when its request started being built */
} slot_t;

struct st_sender_t {
    uv_loop_t loop;
    uv_timer_t tick;
    relay_push_http_t *http;
    const cr_test_fake_push_t *fake;
    int provider; /* BP_* */
    relay_push_device_t dev;
    relay_push_note_t note;
    relay_jwt_key_t apns_key;
    relay_apns_auth_t apns_auth;
    relay_service_account_t sa;
    relay_fcm_token_t fcm_token;
    relay_vapid_t vapid;
    char vapid_dir[PATH_MAX];
    uint64_t n, sent, answered, accepted, failed;
    uint64_t build_ns;       /* time spent building requests */
    long want_status;        /* what the fake answers a good push: 200, Web Push 201 */
    int http_version;        /* of the last answer */
    int timed_out, closed;
    int64_t deadline_ms;
    slot_t warm;             /* the slot of the first push, not measured */
    lat_t lat;               /* building the request to its answer */
};

/* ---- building and sending --------------------------------------------------------------------------------------- */

/* Builds the push of seq for the sender's device into *req. Returns 0, or -1 with cr_error_last() saying why. */
static int build(sender_t *s, relay_push_req_t *req, uint64_t seq)
{
    int64_t now_s = (int64_t)(cr_now_ms() / 1000);
    const char *jwt;
    int rc;
    memset(req, 0, sizeof(*req));
    s->note.seq = seq;
    switch (s->provider) {
    case BP_APNS:
        rc = relay_apns_auth_token(&s->apns_auth, now_s, &jwt) < 0
                 ? -1
                 : relay_apns_request(req, &s->note, &s->dev, s->fake->url, s->fake->apns_topic, jwt);
        break;
    case BP_FCM:
        rc = relay_fcm_request(req, &s->note, &s->dev, s->fake->url, s->sa.project_id, s->fcm_token.access_token, now_s);
        break;
    default:
        rc = relay_webpush_request(req, &s->note, &s->dev, &s->vapid, SUBJECT, now_s);
        break;
    }
    req->ca_file = s->fake->ca;
    return rc == 0 ? 0 : -1;
}

static void on_answer(const relay_push_answer_t *a, void *data);

/* Builds and sends the next notification from slot sl. Returns 0, or -1 (counted as failed). */
static int send_next(slot_t *sl)
{
    sender_t *s = sl->s;
    relay_push_req_t req;
    int built;
    sl->t0 = bench_now_ns();
    built = build(s, &req, ++s->sent) == 0;
    s->build_ns += bench_now_ns() - sl->t0;
    if (!built || relay_push_http_send(s->http, &req, on_answer, sl) != 0) {
        if (s->failed++ < ERRORS_SHOWN)
            fprintf(stderr, "  cannot send a %s push: %s\n", bench_provider_name(s->provider), cr_error_last()->message);
        relay_push_req_free(&req);
        return -1;
    }
    return 0;
}

static void on_answer(const relay_push_answer_t *a, void *data)
{
    slot_t *sl = data;
    sender_t *s = sl->s;
    lat_add(&s->lat, bench_now_ns() - sl->t0);
    ++s->answered;
    s->http_version = a->http_version;
    if (a->status == s->want_status)
        ++s->accepted;
    else if (s->failed++ < ERRORS_SHOWN)
        fprintf(stderr, "  %s answered %ld %.*s%s\n", bench_provider_name(s->provider), a->status,
                (int)(a->body_len < 200 ? a->body_len : 200), a->body != NULL ? a->body : "", a->error != NULL ? a->error : "");
    while (s->sent < s->n && send_next(sl) != 0)
        ++s->answered; /* a request that could not be sent is done at once */
}

/* ---- the loop --------------------------------------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    sender_t *s = t->data;
    if (cr_test_now_ms() > s->deadline_ms)
        s->timed_out = 1;
}

/* Runs the loop until *count reaches want or ms pass. Returns 0, or -1 on timeout. */
static int run_until(sender_t *s, const uint64_t *count, uint64_t want, int64_t ms)
{
    s->timed_out = 0;
    s->deadline_ms = cr_test_now_ms() + ms;
    while (*count < want && !s->timed_out)
        uv_run(&s->loop, UV_RUN_ONCE);
    return *count < want ? -1 : 0;
}

static void on_token(const relay_push_answer_t *a, void *data)
{
    sender_t *s = data;
    relay_push_outcome_t o;
    if (relay_fcm_token_parse(&s->fcm_token, &o, a, (int64_t)(cr_now_ms() / 1000)) != 0)
        fprintf(stderr, "  the fake's token endpoint answered %ld (%s)\n", a->status, o.reason);
    ++s->answered;
}

static void on_closed(void *data)
{
    ((sender_t *)data)->closed = 1;
}

/* ---- one provider ----------------------------------------------------------------------------------------------- */

/* Loads the provider's credentials, makes its device and opens the connection: an FCM access token, a Web Push
 * subscription with our VAPID key, then one push answered (not measured). Returns 0 or -1 with a message. */
static int setup(sender_t *s, cr_test_fake_push_t *fake)
{
    relay_push_req_t req = {0};
    int64_t now_s = (int64_t)(cr_now_ms() / 1000);
    snprintf(s->note.title, sizeof(s->note.title), "bench-agent needs approval");
    snprintf(s->note.body, sizeof(s->note.body), "Bash: npm install stripe");
    s->note.category = "CORRAL_APPROVAL";
    snprintf(s->note.sid, sizeof(s->note.sid), "S-bench");
    snprintf(s->note.k, sizeof(s->note.k), "approval.request");
    snprintf(s->note.host, sizeof(s->note.host), "bench-host");
    snprintf(s->note.id, sizeof(s->note.id), "1700000000000-0");
    s->note.expires_s = now_s + 3600;
    snprintf(s->dev.id, sizeof(s->dev.id), "bench-device");
    switch (s->provider) {
    case BP_APNS:
        s->dev.provider = RELAY_PUSH_APNS;
        snprintf(s->dev.token, sizeof(s->dev.token), "%s", APNS_TOKEN);
        s->want_status = 200;
        if (relay_jwt_key_load_file(&s->apns_key, fake->p8) != 0 ||
            relay_apns_auth_init(&s->apns_auth, &s->apns_key, fake->apns_key_id, fake->apns_team_id) != 0)
            goto fail;
        break;
    case BP_FCM:
        s->dev.provider = RELAY_PUSH_FCM;
        snprintf(s->dev.token, sizeof(s->dev.token), "%s", FCM_TOKEN);
        s->want_status = 200;
        if (relay_service_account_load_file(&s->sa, fake->service_account) != 0 ||
            relay_fcm_token_request(&req, &s->sa, NULL, now_s) != 0)
            goto fail;
        req.ca_file = fake->ca;
        if (relay_push_http_send(s->http, &req, on_token, s) != 0)
            goto fail;
        if (run_until(s, &s->answered, 1, SETUP_TIMEOUT_MS) != 0 || !relay_fcm_token_valid(&s->fcm_token, now_s)) {
            fprintf(stderr, "  no FCM access token\n");
            return -1;
        }
        s->answered = 0;
        break;
    default: {
        cr_test_webpush_sub_t sub;
        cr_buf_t k;
        int bad;
        s->dev.provider = RELAY_PUSH_WEBPUSH;
        s->want_status = 201;
        if (cr_test_make_temp_dir(s->vapid_dir, sizeof(s->vapid_dir), "bench_push-vapid", PATH_MAX - 1) != 0 ||
            relay_vapid_load_or_create(&s->vapid, s->vapid_dir) != 0)
            goto fail;
        if (cr_test_fake_push_subscribe(fake, &sub, s->vapid.public_b64) != 0) {
            fprintf(stderr, "  the fake made no Web Push subscription\n");
            return -1;
        }
        snprintf(s->dev.endpoint, sizeof(s->dev.endpoint), "%s", sub.endpoint);
        cr_buf_init(&k, 128);
        bad = cr_base64url_decode(&k, sub.p256dh, strlen(sub.p256dh)) != 0 || k.len != sizeof(s->dev.p256dh);
        if (!bad)
            memcpy(s->dev.p256dh, k.base, k.len);
        k.len = 0;
        bad = bad || cr_base64url_decode(&k, sub.auth, strlen(sub.auth)) != 0 || k.len != sizeof(s->dev.auth);
        if (!bad)
            memcpy(s->dev.auth, k.base, k.len);
        cr_buf_free(&k);
        if (bad) {
            fprintf(stderr, "  the fake's subscription has keys of the wrong size\n");
            return -1;
        }
        break;
    }
    }
    s->n = 1;
    s->warm.s = s;
    if (send_next(&s->warm) != 0 || run_until(s, &s->answered, 1, SETUP_TIMEOUT_MS) != 0 || s->accepted != 1) {
        fprintf(stderr, "  the first %s push was not accepted\n", bench_provider_name(s->provider));
        return -1;
    }
    s->sent = s->answered = s->accepted = s->failed = s->build_ns = 0;
    lat_free(&s->lat);
    return 0;
fail:
    relay_push_req_free(&req);
    fprintf(stderr, "  %s setup: %s\n", bench_provider_name(s->provider), cr_error_last()->message);
    return -1;
}

static void teardown(sender_t *s)
{
    s->n = 0; /* the answers of an aborted run send nothing more */
    if (s->http != NULL) {
        relay_push_http_close(s->http, on_closed, s);
        s->http = NULL;
        while (!s->closed)
            uv_run(&s->loop, UV_RUN_ONCE);
    }
    uv_close((uv_handle_t *)&s->tick, NULL);
    uv_run(&s->loop, UV_RUN_DEFAULT);
    uv_loop_close(&s->loop);
    relay_apns_auth_free(&s->apns_auth);
    relay_jwt_key_free(&s->apns_key);
    relay_fcm_token_free(&s->fcm_token);
    relay_service_account_free(&s->sa);
    relay_vapid_free(&s->vapid);
    if (s->vapid_dir[0] != '\0')
        cr_test_rm_rf(s->vapid_dir);
    lat_free(&s->lat);
}

static void run_provider(int provider, long n, int active, int window, cr_test_fake_push_t *fake)
{
    sender_t *s = calloc(1, sizeof(*s));
    slot_t *slots = calloc((size_t)window, sizeof(*slots));
    const char *name = bench_provider_name(provider);
    char stat[64], fig[64];
    long long st0, st1;
    uint64_t t0, t1, connects = 0;
    double cpu0, cpu1, fcpu0, fcpu1, wall, rate = 0;
    int ok = 0, loop_ok = 0;

    printf("\n  %s: %ld notifications, %d outstanding, %d handed to curl at once\n", name, n, window, active);
    if (s == NULL || slots == NULL || uv_loop_init(&s->loop) != 0)
        goto done;
    loop_ok = 1;
    s->fake = fake;
    s->provider = provider;
    uv_timer_init(&s->loop, &s->tick);
    s->tick.data = s;
    uv_timer_start(&s->tick, on_tick, 100, 100);
    if (relay_push_http_new(&s->http, &s->loop) != 0)
        goto done;
    relay_push_http_set_max_active(s->http, (size_t)active);
    if (setup(s, fake) != 0)
        goto done;
    snprintf(stat, sizeof(stat), "providers.%s.status.%ld", name, s->want_status);
    st0 = cr_test_fake_push_stat(fake, stat);

    s->n = (uint64_t)n;
    cpu0 = bench_cpu_s(getpid());
    fcpu0 = bench_cpu_s(fake->pid);
    t0 = bench_now_ns();
    for (int i = 0; i < window && s->sent < s->n; ++i) {
        slots[i].s = s;
        if (send_next(&slots[i]) != 0)
            ++s->answered;
    }
    if (run_until(s, &s->answered, s->n, RUN_TIMEOUT_MS) != 0)
        fprintf(stderr, "  %s: only %llu of %llu answered in time\n", name, (unsigned long long)s->answered,
                (unsigned long long)s->n);
    t1 = bench_now_ns();
    cpu1 = bench_cpu_s(getpid());
    fcpu1 = bench_cpu_s(fake->pid);
    st1 = cr_test_fake_push_stat(fake, stat);
    connects = relay_push_http_connects(s->http);

    wall = (double)(t1 - t0) / 1e9;
    rate = wall > 0 ? (double)s->accepted / wall : 0;
    ok = s->accepted == s->n && st1 - st0 == (long long)n && connects == 1;
    printf("  %llu of %llu accepted (%ld) in %.2f s: %.0f notifications/s over HTTP/%d; the fake counted %lld %s;"
           " %llu connection(s) opened\n",
           (unsigned long long)s->accepted, (unsigned long long)s->n, s->want_status, wall, rate, s->http_version,
           st1 - st0, stat, (unsigned long long)connects);
    printf("  latency, building a request to its answer: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n", lat_pct_ms(&s->lat, 50),
           lat_pct_ms(&s->lat, 99), lat_max_ms(&s->lat));
    printf("  CPU: this benchmark %.0f%% of a core (%.1f us per notification, of which building the request %.1f us),"
           " the fake %.0f%% (%.1f us)\n",
           100 * (cpu1 - cpu0) / wall, 1e6 * (cpu1 - cpu0) / (double)n, (double)s->build_ns / 1e3 / (double)n,
           100 * (fcpu1 - fcpu0) / wall, 1e6 * (fcpu1 - fcpu0) / (double)n);
    snprintf(fig, sizeof(fig), "(a) %s notifications/s, one connection", name);
    if (provider == BP_APNS)
        bench_row(fig, ">= 20000", ok && rate >= 20000, "%.0f%s", rate, ok ? "" : " (NOT all accepted/1 conn)");
    else
        bench_row(fig, NULL, 0, "%.0f%s", rate, ok ? "" : " (NOT all accepted/1 conn)");
    snprintf(fig, sizeof(fig), "(a) %s request p50 / p99", name);
    bench_row(fig, NULL, 0, "%.2f / %.2f ms", lat_pct_ms(&s->lat, 50), lat_pct_ms(&s->lat, 99));
    snprintf(fig, sizeof(fig), "(a) %s CPU bench / fake", name);
    bench_row(fig, NULL, 0, "%.0f%% / %.0f%% of a core", 100 * (cpu1 - cpu0) / wall, 100 * (fcpu1 - fcpu0) / wall);
    goto out;
done:
    fprintf(stderr, "  (a) %s could not run\n", name);
    snprintf(fig, sizeof(fig), "(a) %s notifications/s, one connection", name);
    bench_row(fig, provider == BP_APNS ? ">= 20000" : NULL, 0, "failed");
out:
    if (loop_ok)
        teardown(s);
    free(slots);
    free(s);
}

void part_sender(int providers, long n, long web_n, int active, int window)
{
    cr_test_fake_push_t fake = {0};
    printf("\n(a) sender: the relay's push client and request builders in this process (compiled %s), to the fake\n",
#ifdef __OPTIMIZE__
           "optimized"
#else
           "WITHOUT optimization: the figures mean little"
#endif
    );
    if (bench_fake_start(&fake, -1) != 0) {
        bench_row("(a) apns notifications/s, one connection", ">= 20000", 0, "failed");
        return;
    }
    for (int bit = BP_APNS; bit <= BP_WEBPUSH; bit <<= 1)
        if (providers & bit)
            run_provider(bit, bit == BP_WEBPUSH ? web_n : n, active, window, &fake);
    cr_test_fake_push_stop(&fake);
}
