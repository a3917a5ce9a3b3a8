/* relay_push.c — the push gateway end to end: real redis-server, real corral-relay processes and the faithful fakes of
 * APNs, FCM and a Web Push service (tests/fakes/fake_push.c), which verify JWTs, headers, sizes and Web Push
 * encryption as the real services do. An event is posted by a host; what each device's provider received is read
 * from the fake's log. */
#include "corral/json.h"
#include "corral/mp.h"
#include "certs.h"
#include "fake_push.h"
#include "harness.h"
#include "http_client.h"
#include "mp_text.h"
#include "proc.h"
#include "redis_server.h"
#include "relay_proc.h"
#include <hiredis/hiredis.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <signal.h>
#include <sys/socket.h>
#include <unistd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define APNS_TOKEN "a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f90"
#define APNS_TOKEN2 "0f1e2d3c4b5a69788796a5b4c3d2e1f00f1e2d3c4b5a69788796a5b4c3d2e1f0"
#define FCM_TOKEN "fcm-registration-token-of-the-test-phone:APA91bHun4MxP5egoKMwt2KZFBaFUH-1RYqx"

static cr_test_redis_t redis;
static cr_test_fake_push_t fake;
static cr_test_relay_t relay_a, relay_b;
static char env_buf[16][PATH_MAX + 64];
static const char *relay_env[17];
static char tok_admin[128], tok_host[128], tok_apns[128], tok_fcm[128], tok_web[128], tok_none[128], tok_picky[128];
static char dev_apns[64], dev_fcm[64], dev_web[64];
static cr_test_webpush_sub_t sub;
static unsigned long long next_seq = 1;

/* ---- helpers ---------------------------------------------------------------------------------------------------- */

static const char *url_of(const cr_test_relay_t *r, const char *path)
{
    static char buf[4][256];
    static int i;
    i = (i + 1) % 4;
    snprintf(buf[i], sizeof(buf[i]), "%s%s", r->url, path);
    return buf[i];
}

/* The device id a device token registers as: its principal's id, from GET /v1/devices after registering. */
static int register_device(const cr_test_relay_t *r, const char *tok, const char *json, char *id_out, size_t idlen)
{
    cr_test_resp_t resp = {0};
    char id[128];
    int ok_ = cr_test_http_json(&resp, "POST", url_of(r, "/v1/devices"), tok, json) == 0 && resp.status == 201;
    if (!ok_)
        note("POST /v1/devices answered %ld: %s", resp.status, resp.body ? resp.body : "");
    cr_test_json_text(&resp, "id", id, sizeof(id));
    if (id_out != NULL)
        snprintf(id_out, idlen, "%s", id);
    cr_test_resp_free(&resp);
    return ok_ ? 0 : -1;
}

/* Posts one event as JSON from the host; returns the HTTP status. */
static long post_event(const cr_test_relay_t *r, const char *k, const char *sid, unsigned long long seq, int pri,
                       const char *idn, const char *body_json)
{
    char json[4096];
    cr_test_resp_t resp = {0};
    long st;
    snprintf(json, sizeof(json), "[{\"v\":1,\"k\":\"%s\",\"sid\":\"%s\",\"seq\":%llu,\"ts\":1700000000000,%s%s%s\"pri\":%d,\"b\":%s}]",
             k, sid, seq, idn ? "\"idn\":\"" : "", idn ? idn : "", idn ? "\"," : "", pri, body_json);
    if (cr_test_http_json(&resp, "POST", url_of(r, "/v1/host/events"), tok_host, json) != 0)
        st = 0;
    else
        st = resp.status;
    cr_test_resp_free(&resp);
    return st;
}

static long post_approval(const cr_test_relay_t *r, const char *sid, const char *summary)
{
    char body[512];
    snprintf(body, sizeof(body),
             "{\"rid\":\"01J0000000000000000000RID%llu\",\"tool\":\"Bash\",\"summary\":\"%s\",\"input\":{\"command\":\"%s\","
             "\"env\":\"SECRET_TOKEN=hunter2\"}}",
             next_seq % 10, summary, summary);
    return post_event(r, "approval.request", sid, next_seq++, 2, "feature-auth-agent", body);
}

/* Waits up to ms for the fake to have logged at least n pushes (of provider, or of any but FCM's OAuth token endpoint
 * when NULL) with n > since. Returns the entries (free them) and their count in *got. */
static cr_test_fake_push_entry_t *wait_entries(long long since, const char *provider, size_t n, int ms, size_t *got)
{
    cr_test_fake_push_entry_t *e = NULL;
    int64_t deadline = cr_test_now_ms() + ms;
    *got = 0;
    for (;;) {
        if (e != NULL)
            cr_test_fake_push_entries_free(e, *got), e = NULL;
        if (cr_test_fake_push_entries(&fake, since, provider, &e, got) != 0)
            *got = 0, e = NULL;
        if (provider == NULL) { /* drop the token grants, keeping the order */
            size_t k = 0;
            for (size_t i = 0; i < *got; ++i) {
                if (strcmp(e[i].provider, "oauth") == 0) {
                    free(e[i].payload), free(e[i]._mp);
                    continue;
                }
                e[k++] = e[i];
            }
            *got = k;
        }
        if (*got >= n || cr_test_now_ms() > deadline)
            return e;
        cr_test_sleep_ms(20);
    }
}

static long long log_last(void)
{
    return cr_test_fake_push_stat(&fake, "log.last");
}

/* The text at path of the JSON in a fake log entry's payload ("aps.alert.title"). */
static const char *payload_text(const cr_test_fake_push_entry_t *e, const char *path, char *out, size_t outlen)
{
    cr_test_resp_t r = {0};
    r.body = e->payload;
    r.body_len = e->payload_len;
    snprintf(r.content_type, sizeof(r.content_type), "application/json");
    return cr_test_json_text(&r, path, out, outlen);
}

static size_t count_status(const cr_test_fake_push_entry_t *e, size_t n, const char *provider, const char *id, int status)
{
    size_t c = 0;
    for (size_t i = 0; i < n; ++i)
        if ((provider == NULL || strcmp(e[i].provider, provider) == 0) && (id == NULL || strcmp(e[i].id, id) == 0) &&
            e[i].status == status)
            ++c;
    return c;
}

static int devices_has(const cr_test_relay_t *r, const char *id)
{
    cr_test_resp_t resp = {0};
    int has = 0;
    if (cr_test_http(&resp, "GET", url_of(r, "/v1/devices"), tok_admin, NULL, NULL, 0, 0) == 0 && resp.status == 200)
        has = strstr(resp.body, id) != NULL;
    cr_test_resp_free(&resp);
    return has;
}

/* ---- tests ------------------------------------------------------------------------------------------------------ */

static void test_right_devices(void)
{
    long long since = log_last();
    cr_test_fake_push_entry_t *e;
    size_t n;
    char v[512];

    okf(post_approval(&relay_a, "S-auth", "npm install stripe") == 200, "the event is stored");
    e = wait_entries(since, NULL, 3, 10000, &n);
    okf(n == 3, "3 pushes (APNs, FCM, Web Push) for 3 matching devices, got %zu\n%s", n, cr_test_fake_push_log_tail(&fake));
    for (size_t i = 0; i < n; ++i) {
        const cr_test_fake_push_entry_t *x = &e[i];
        okf(x->status == 200 || x->status == 201, "%s answered %d %s", x->provider, x->status, x->reason);
        ok(strstr(x->payload, "hunter2") == NULL); /* nothing of the request's input goes into a push */
        if (strcmp(x->provider, "apns") == 0) {
            ok_str(x->id, APNS_TOKEN);
            ok(x->http == 2);
            ok_str(cr_test_fake_push_entry_text(x, "headers.apns-topic", v, sizeof(v)), fake.apns_topic);
            ok_str(cr_test_fake_push_entry_text(x, "headers.apns-push-type", v, sizeof(v)), "alert");
            ok_str(cr_test_fake_push_entry_text(x, "headers.apns-priority", v, sizeof(v)), "10");
            ok_str(cr_test_fake_push_entry_text(x, "headers.apns-collapse-id", v, sizeof(v)), "S-auth");
            ok(cr_test_fake_push_entry_text(x, "headers.apns-expiration", v, sizeof(v))[0] != '\0');
            /* the fake verified the ES256 signature with the key's public half; the claims are Apple's */
            ok_str(cr_test_fake_push_entry_text(x, "jwt.header.kid", v, sizeof(v)), fake.apns_key_id);
            ok_str(cr_test_fake_push_entry_text(x, "jwt.claims.iss", v, sizeof(v)), fake.apns_team_id);
            ok_str(payload_text(x, "aps.alert.title", v, sizeof(v)), "feature-auth-agent needs approval");
            ok_str(payload_text(x, "aps.alert.body", v, sizeof(v)), "Bash: npm install stripe");
            ok_str(payload_text(x, "aps.category", v, sizeof(v)), "CORRAL_APPROVAL");
            ok_str(payload_text(x, "aps.thread-id", v, sizeof(v)), "S-auth");
            ok_str(payload_text(x, "cr.sid", v, sizeof(v)), "S-auth");
            ok_str(payload_text(x, "cr.k", v, sizeof(v)), "approval.request");
        } else if (strcmp(x->provider, "fcm") == 0) {
            ok_str(x->id, FCM_TOKEN);
            ok_str(payload_text(x, "message.token", v, sizeof(v)), FCM_TOKEN);
            ok_str(payload_text(x, "message.data.title", v, sizeof(v)), "feature-auth-agent needs approval");
            ok_str(payload_text(x, "message.data.body", v, sizeof(v)), "Bash: npm install stripe");
            ok_str(payload_text(x, "message.android.priority", v, sizeof(v)), "high");
            ok_str(payload_text(x, "message.android.collapse_key", v, sizeof(v)), "S-auth");
        } else if (strcmp(x->provider, "webpush") == 0) {
            /* the fake decrypted it with the subscription's private key (RFC 8291) and checked VAPID (RFC 8292) */
            ok_str(x->id, sub.id);
            ok_str(payload_text(x, "title", v, sizeof(v)), "feature-auth-agent needs approval");
            ok_str(payload_text(x, "body", v, sizeof(v)), "Bash: npm install stripe");
            ok_str(cr_test_fake_push_entry_text(x, "headers.urgency", v, sizeof(v)), "high");
            ok(cr_test_fake_push_entry_text(x, "headers.ttl", v, sizeof(v))[0] != '\0');
        } else {
            okf(0, "unexpected provider %s", x->provider);
        }
    }
    cr_test_fake_push_entries_free(e, n);
    /* the FCM token grant happened once, before the send */
    ok(cr_test_fake_push_stat(&fake, "providers.oauth.status.200") >= 1);

    /* pri 1 is not pushed */
    since = log_last();
    ok(post_event(&relay_a, "agent.message", "S-auth", next_seq++, 1, "feature-auth-agent", "{\"text\":\"working\"}") == 200);
    cr_test_sleep_ms(500);
    e = wait_entries(since, NULL, 1, 0, &n);
    okf(n == 0, "an agent.message pushed nothing (%zu requests)", n);
    cr_test_fake_push_entries_free(e, n);

    /* the outcome is visible per device */
    {
        cr_test_resp_t resp = {0};
        ok(cr_test_http(&resp, "GET", url_of(&relay_a, "/v1/devices"), tok_apns, NULL, NULL, 0, 0) == 0 && resp.status == 200);
        ok_str(cr_test_json_text(&resp, "devices.0.id", v, sizeof(v)), dev_apns);
        ok(cr_test_json_text(&resp, "devices.0.last_ok", v, sizeof(v))[0] != '\0');
        ok(strstr(resp.body, APNS_TOKEN) == NULL); /* the listing never shows push credentials */
        cr_test_resp_free(&resp);
    }
}

static void test_dead_token(void)
{
    long long since = log_last();
    cr_test_fake_push_entry_t *e;
    size_t n;

    ok(cr_test_fake_push_script(&fake, "apns", APNS_TOKEN, 410, "Unregistered", 1, -1, -1) == 0);
    ok(post_approval(&relay_a, "S-dead", "rm -rf build") == 200);
    e = wait_entries(since, "apns", 1, 10000, &n);
    okf(n == 1 && e[0].status == 410, "APNs answered 410 (%zu requests)", n);
    cr_test_fake_push_entries_free(e, n);
    /* the device is deleted: the next event reaches the other devices only */
    for (int i = 0; i < 100 && devices_has(&relay_a, dev_apns); ++i)
        cr_test_sleep_ms(20);
    ok(!devices_has(&relay_a, dev_apns));
    since = log_last();
    ok(post_approval(&relay_a, "S-dead", "make test") == 200);
    e = wait_entries(since, NULL, 2, 10000, &n);
    cr_test_sleep_ms(300);
    cr_test_fake_push_entries_free(e, n);
    e = wait_entries(since, NULL, 2, 0, &n);
    okf(n == 2 && count_status(e, n, "apns", NULL, 200) == 0 && count_status(e, n, "apns", NULL, 410) == 0,
        "no APNs push to the deleted device (%zu requests)", n);
    cr_test_fake_push_entries_free(e, n);
    ok(cr_test_relay_metric(&relay_a, "corral_push_total{provider=\"apns\",outcome=\"dead\"}") == 1);
    /* it registers again (a new token): pushes resume */
    ok(register_device(&relay_a, tok_apns, "{\"name\":\"Ana's iPhone\",\"provider\":\"apns\",\"token\":\"" APNS_TOKEN2
                       "\",\"env\":\"sandbox\"}", dev_apns, sizeof(dev_apns)) == 0);
    /* a 410 whose timestamp is older than the registration (Apple saw an earlier life of the token die): kept */
    since = log_last();
    ok(cr_test_fake_push_script(&fake, "apns", APNS_TOKEN2, 410, "Unregistered", 1, -1, 1000000000000LL) == 0);
    ok(post_approval(&relay_a, "S-dead", "make install") == 200);
    e = wait_entries(since, "apns", 1, 10000, &n);
    ok(n == 1 && e[0].status == 410);
    cr_test_fake_push_entries_free(e, n);
    cr_test_sleep_ms(500);
    ok(devices_has(&relay_a, dev_apns));
}

static void test_retry_once(void)
{
    long long since = log_last();
    cr_test_fake_push_entry_t *e;
    size_t n;

    ok(cr_test_fake_push_script(&fake, "fcm", FCM_TOKEN, 503, "UNAVAILABLE", 1, 1, -1) == 0);
    ok(post_approval(&relay_a, "S-retry", "cargo build") == 200);
    /* 503 with Retry-After: 1, then the retry a second later */
    e = wait_entries(since, "fcm", 2, 15000, &n);
    okf(n == 2 && e[0].status == 503 && e[1].status == 200, "FCM: 503 then 200 (%zu requests)", n);
    if (n == 2)
        okf(e[1].t_ns - e[0].t_ns >= 900000000LL, "the retry waited for Retry-After (%lld ms)", (e[1].t_ns - e[0].t_ns) / 1000000);
    cr_test_fake_push_entries_free(e, n);
    cr_test_sleep_ms(1500);
    e = wait_entries(since, "fcm", 3, 0, &n);
    okf(count_status(e, n, "fcm", FCM_TOKEN, 200) == 1, "delivered exactly once (%zu FCM requests)", n);
    cr_test_fake_push_entries_free(e, n);
}

static void test_permanent(void)
{
    long long since = log_last();
    cr_test_fake_push_entry_t *e;
    size_t n;
    ok(cr_test_fake_push_script(&fake, "webpush", sub.id, 413, NULL, 1, -1, -1) == 0);
    ok(post_approval(&relay_a, "S-perm", "ls") == 200);
    e = wait_entries(since, "webpush", 1, 10000, &n);
    ok(n == 1 && e[0].status == 413);
    cr_test_fake_push_entries_free(e, n);
    cr_test_sleep_ms(2500); /* a retry would come by now */
    e = wait_entries(since, "webpush", 2, 0, &n);
    okf(n == 1, "a permanent error is not retried (%zu requests)", n);
    cr_test_fake_push_entries_free(e, n);
    ok(devices_has(&relay_a, dev_web)); /* and the device stays */
}

static void test_two_relays(void)
{
    long long since = log_last();
    cr_test_fake_push_entry_t *e;
    size_t n, apns = 0;
    enum { EVENTS = 30 };
    if (!ok(cr_test_relay_start(&relay_b, cr_test_redis_url(&redis), relay_env) == 0))
        return;
    for (int i = 0; i < EVENTS; ++i)
        ok(post_approval(i % 2 ? &relay_a : &relay_b, "S-two", "step") == 200);
    e = wait_entries(since, NULL, EVENTS * 3, 20000, &n);
    cr_test_sleep_ms(500);
    cr_test_fake_push_entries_free(e, n);
    e = wait_entries(since, NULL, EVENTS * 3, 0, &n);
    okf(n == EVENTS * 3, "each event pushed once to each of 3 devices: %zu requests for %d", n, EVENTS * 3);
    okf(count_status(e, n, "apns", NULL, 200) + count_status(e, n, "fcm", NULL, 200) + count_status(e, n, "webpush", NULL, 201) ==
            EVENTS * 3,
        "and every one accepted (the relays share the VAPID key)");
    /* no id twice per provider */
    for (size_t i = 0; i < n; ++i) {
        char a[64], b[64];
        if (strcmp(e[i].provider, "apns") != 0 || e[i].status != 200)
            continue;
        ++apns;
        payload_text(&e[i], "cr.id", a, sizeof(a));
        for (size_t j = i + 1; j < n; ++j)
            if (strcmp(e[j].provider, "apns") == 0 && e[j].status == 200 &&
                strcmp(payload_text(&e[j], "cr.id", b, sizeof(b)), a) == 0)
                okf(0, "event %s pushed twice to APNs", a);
    }
    ok(apns == EVENTS);
    cr_test_fake_push_entries_free(e, n);
    ok(cr_test_relay_metric(&relay_a, "corral_push_jobs_done_total") > 0);
    ok(cr_test_relay_metric(&relay_b, "corral_push_jobs_done_total") > 0);
}

/* A TCP listener that takes connections into its backlog and never answers: a provider gone silent. */
static int blackhole(int *port)
{
    struct sockaddr_in sa = {.sin_family = AF_INET};
    socklen_t sl = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    sa.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (fd < 0 || bind(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0 || listen(fd, 64) != 0 ||
        getsockname(fd, (struct sockaddr *)&sa, &sl) != 0)
        return -1;
    *port = ntohs(sa.sin_port);
    return fd;
}

static void test_relay_killed(void)
{
    long long since = log_last();
    cr_test_fake_push_entry_t *e;
    size_t n;
    enum { EVENTS = 20 };
    char hole_env[96];
    const char *env_b[20];
    int port, hole = blackhole(&port), k = 0;
    if (!ok(hole >= 0))
        return;
    /* relay B alone takes the jobs; its APNs endpoint never answers, so each job stays unfinished (its FCM and Web
     * Push sends are done and noted); then B dies */
    cr_test_relay_stop(&relay_a);
    cr_test_relay_stop(&relay_b);
    snprintf(hole_env, sizeof(hole_env), "CORRAL_APNS_URL=https://127.0.0.1:%d", port);
    for (int i = 0; relay_env[i] != NULL; ++i)
        if (strncmp(relay_env[i], "CORRAL_APNS_URL=", 16) != 0)
            env_b[k++] = relay_env[i];
    env_b[k++] = hole_env;
    env_b[k] = NULL;
    if (!ok(cr_test_relay_start(&relay_b, cr_test_redis_url(&redis), env_b) == 0))
        return;
    for (int i = 0; i < EVENTS; ++i)
        ok(post_approval(&relay_b, "S-kill", "deploy") == 200);
    e = wait_entries(since, "fcm", EVENTS, 10000, &n);
    okf(count_status(e, n, "fcm", FCM_TOKEN, 200) == EVENTS, "relay B delivered the FCM pushes (%zu)", n);
    cr_test_fake_push_entries_free(e, n);
    ok(cr_test_relay_metric(&relay_b, "corral_push_jobs_open") == EVENTS);
    ok(cr_test_relay_kill(&relay_b) == 0);
    /* relay A comes back and takes B's unfinished jobs over (push.claim_idle_ms is 1 s here): APNs gets every event,
     * and FCM and Web Push, already served, get nothing again */
    if (!ok(cr_test_relay_start(&relay_a, cr_test_redis_url(&redis), relay_env) == 0))
        return;
    e = wait_entries(since, "apns", EVENTS, 20000, &n);
    cr_test_fake_push_entries_free(e, n);
    cr_test_sleep_ms(1000);
    e = wait_entries(since, NULL, 0, 0, &n);
    okf(count_status(e, n, "apns", NULL, 200) == EVENTS, "every event reached APNs after the relay died: %zu of %d",
        count_status(e, n, "apns", NULL, 200), EVENTS);
    okf(count_status(e, n, "fcm", FCM_TOKEN, 200) == EVENTS, "FCM was not pushed again by the relay taking over (%zu)",
        count_status(e, n, "fcm", FCM_TOKEN, 200));
    okf(count_status(e, n, "webpush", sub.id, 201) == EVENTS, "nor Web Push (%zu)", count_status(e, n, "webpush", sub.id, 201));
    cr_test_fake_push_entries_free(e, n);
    ok(cr_test_relay_metric(&relay_a, "corral_push_jobs_taken_over_total") == EVENTS);
    ok(cr_test_relay_metric(&relay_a, "corral_push_jobs_open") == 0);
    close(hole);
}

static void test_vapid(void)
{
    cr_test_resp_t r = {0};
    char v[128];
    ok(cr_test_http(&r, "GET", url_of(&relay_a, "/v1/webpush/vapid"), NULL, NULL, NULL, 0, 0) == 0 && r.status == 200);
    ok(strlen(cr_test_json_text(&r, "public_key", v, sizeof(v))) == 87); /* 65 bytes, base64url without padding */
    cr_test_resp_free(&r);
}

int main(void)
{
    char id[64];
    int k = 0;
    /* several relays each make their own APNs provider token: Apple's once-per-20-minutes rule is per connection */
    cr_test_fake_push_opts_t fopts = {.apns_token_min_interval_s = -1};
    if (!ok(cr_test_redis_start(&redis) == 0) || !ok(cr_test_fake_push_start(&fake, &fopts) == 0))
        return done_testing();
    snprintf(env_buf[k++], sizeof(env_buf[0]), "CORRAL_APNS_KEY_FILE=%s", fake.p8);
    snprintf(env_buf[k++], sizeof(env_buf[0]), "CORRAL_APNS_KEY_ID=%s", fake.apns_key_id);
    snprintf(env_buf[k++], sizeof(env_buf[0]), "CORRAL_APNS_TEAM_ID=%s", fake.apns_team_id);
    snprintf(env_buf[k++], sizeof(env_buf[0]), "CORRAL_APNS_TOPIC=%s", fake.apns_topic);
    snprintf(env_buf[k++], sizeof(env_buf[0]), "CORRAL_APNS_URL=%s", fake.url);
    snprintf(env_buf[k++], sizeof(env_buf[0]), "CORRAL_APNS_CA_FILE=%s", fake.ca);
    snprintf(env_buf[k++], sizeof(env_buf[0]), "CORRAL_FCM_SERVICE_ACCOUNT=%s", fake.service_account);
    snprintf(env_buf[k++], sizeof(env_buf[0]), "CORRAL_FCM_URL=%s", fake.url);
    snprintf(env_buf[k++], sizeof(env_buf[0]), "CORRAL_FCM_CA_FILE=%s", fake.ca);
    snprintf(env_buf[k++], sizeof(env_buf[0]), "CORRAL_WEBPUSH_SUBJECT=mailto:ops@example.com");
    snprintf(env_buf[k++], sizeof(env_buf[0]), "CORRAL_WEBPUSH_CA_FILE=%s", fake.ca);
    snprintf(env_buf[k++], sizeof(env_buf[0]), "CORRAL_PUSH_CLAIM_IDLE_MS=1000");
    snprintf(env_buf[k++], sizeof(env_buf[0]), "CORRAL_RATELIMIT_PER_SECOND=0");
    {
        /* relays on one Redis share one VAPID key (a subscription is bound to it) */
        char *pem = cr_test_make_ec_pem(), path[PATH_MAX + 32];
        snprintf(path, sizeof(path), "%s/vapid-shared.pem", fake.dir);
        ok(pem != NULL && cr_test_write_secret(path, pem) == 0);
        free(pem);
        snprintf(env_buf[k++], sizeof(env_buf[0]), "CORRAL_WEBPUSH_VAPID_KEY=%s", path);
    }
    for (int i = 0; i < k; ++i)
        relay_env[i] = env_buf[i];
    relay_env[k] = NULL;
    if (!ok(cr_test_relay_start(&relay_a, cr_test_redis_url(&redis), relay_env) == 0))
        return done_testing();
    ok(cr_test_relay_admin(&relay_a, tok_admin, sizeof(tok_admin), "team", "create", "acme", NULL) == 0);
    ok(cr_test_relay_admin(&relay_a, tok_host, sizeof(tok_host), "token", "create", "--team", "acme", "--kind", "host", NULL) == 0);
    ok(cr_test_relay_admin(&relay_a, tok_apns, sizeof(tok_apns), "token", "create", "--team", "acme", "--kind", "device", NULL) == 0);
    ok(cr_test_relay_admin(&relay_a, tok_fcm, sizeof(tok_fcm), "token", "create", "--team", "acme", "--kind", "device", NULL) == 0);
    ok(cr_test_relay_admin(&relay_a, tok_web, sizeof(tok_web), "token", "create", "--team", "acme", "--kind", "device", NULL) == 0);
    ok(cr_test_relay_admin(&relay_a, tok_none, sizeof(tok_none), "token", "create", "--team", "acme", "--kind", "device", NULL) == 0);
    ok(cr_test_relay_admin(&relay_a, tok_picky, sizeof(tok_picky), "token", "create", "--team", "acme", "--kind", "device", NULL) == 0);
    {
        /* the phone subscribes with the relay's VAPID key, as a browser does */
        cr_test_resp_t r = {0};
        char key[128], json[1024];
        cr_test_http(&r, "GET", url_of(&relay_a, "/v1/webpush/vapid"), NULL, NULL, NULL, 0, 0);
        cr_test_json_text(&r, "public_key", key, sizeof(key));
        cr_test_resp_free(&r);
        ok(cr_test_fake_push_subscribe(&fake, &sub, key) == 0);
        ok(register_device(&relay_a, tok_apns, "{\"name\":\"Ana's iPhone\",\"provider\":\"apns\",\"token\":\"" APNS_TOKEN
                           "\",\"env\":\"sandbox\"}", dev_apns, sizeof(dev_apns)) == 0);
        ok(register_device(&relay_a, tok_fcm, "{\"name\":\"Bo's Pixel\",\"provider\":\"fcm\",\"token\":\"" FCM_TOKEN "\"}",
                           dev_fcm, sizeof(dev_fcm)) == 0);
        snprintf(json, sizeof(json),
                 "{\"name\":\"laptop browser\",\"provider\":\"webpush\",\"subscription\":{\"endpoint\":\"%s\",\"keys\":"
                 "{\"p256dh\":\"%s\",\"auth\":\"%s\"}}}",
                 sub.endpoint, sub.p256dh, sub.auth);
        ok(register_device(&relay_a, tok_web, json, dev_web, sizeof(dev_web)) == 0);
        ok(register_device(&relay_a, tok_none, "{\"name\":\"no push\",\"provider\":\"none\"}", id, sizeof(id)) == 0);
        /* filtered out: another identity only, and this session muted */
        ok(register_device(&relay_a, tok_picky,
                           "{\"name\":\"picky\",\"provider\":\"fcm\",\"token\":\"picky-token\",\"filters\":{\"identities\":"
                           "[\"docs-agent\"],\"min_pri\":2}}",
                           id, sizeof(id)) == 0);
    }
    subtest("the VAPID public key is served", test_vapid);
    subtest("an approval.request reaches each matching device with the provider's headers and an identity-named title",
            test_right_devices);
    subtest("APNs 410 deletes the device and the next event does not push to it", test_dead_token);
    subtest("FCM 503 with Retry-After, then 200: delivered exactly once", test_retry_once);
    subtest("a permanent error (413) is not retried", test_permanent);
    subtest("two relays on one Redis push each event once", test_two_relays);
    subtest("a relay killed with pushes in flight loses none: another takes its jobs over, skipping what it had done",
            test_relay_killed);
    cr_test_relay_stop(&relay_a);
    cr_test_relay_stop(&relay_b);
    okf(cr_test_fake_push_stop(&fake) == 0, "the fake shut down cleanly");
    cr_test_redis_stop(&redis);
    return done_testing();
}
