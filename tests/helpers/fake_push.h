/* fake_push.h — runs corral-fake-push (local fakes of APNs, FCM HTTP v1 with its OAuth2 token endpoint, and a Web
 * Push service) for integration tests: keys, certificate and service account in a temp dir, a free loopback port,
 * and its control API (received-request log, counters, scripted errors, Web Push subscriptions). */
#ifndef CORRAL_TEST_FAKE_PUSH_H
#define CORRAL_TEST_FAKE_PUSH_H

#include "http_client.h"
#include "proc.h"
#include <stddef.h>
#include <sys/types.h>

/* How to start it. Zero it for the defaults; opts may be NULL. */
typedef struct st_cr_test_fake_push_opts_t {
    long apns_token_min_interval_s; /* a new APNs provider token at most this often, else 429
                                       TooManyProviderTokenUpdates: 0 = Apple's 20 min (1200 s); < 0 = no limit */
    long fcm_token_ttl_s;           /* expires_in of the access tokens /token issues: 0 = Google's 3599 s */
    long log_size;                  /* requests kept for the log: 0 = 10000; < 0 = none (counters only) */
    const char *apns_topic;         /* the app's bundle id: NULL = "com.example.corral" */
    int verbose;                    /* one line per push request in the fake's log file */
} cr_test_fake_push_opts_t;

/* One corral-fake-push child. Zero it (or use {0}) before cr_test_fake_push_start.
 *
 * The binary: $CORRAL_FAKE_PUSH_BIN when set, else $CORRAL_BINARY_DIR/bin/corral-fake-push, else
 * CORRAL_BINARY_DIR_DEFAULT "/bin/corral-fake-push". */
typedef struct st_cr_test_fake_push_t {
    pid_t pid;                       /* the fake; 0 when not running */
    int port;                        /* its TLS port on 127.0.0.1 (ALPN h2 and http/1.1) */
    char url[64];                    /* "https://127.0.0.1:PORT" (no trailing slash): every endpoint's base */
    char dir[PATH_MAX];              /* its temp dir, holding everything below; "" once removed */
    char log[PATH_MAX];              /* dir + "/fake_push.log": its stdout and stderr */
    char ca[PATH_MAX];               /* the TLS certificate (self-signed, IP:127.0.0.1): the CA file to trust */
    char tls_key[PATH_MAX];          /* its private key */
    char p8[PATH_MAX];               /* the APNs provider key: "AuthKey_<KEYID>.p8", PKCS#8 P-256 PEM */
    char service_account[PATH_MAX];  /* the FCM service-account JSON (RSA 2048; token_uri = url + "/token") */
    char apns_key_id[16];            /* 10 characters, as Apple's */
    char apns_team_id[16];           /* 10 characters, as Apple's */
    char apns_topic[128];
    char fcm_project[64];
    char fcm_client_email[160];
    char fcm_token_uri[96];          /* url + "/token" */
    char apns_url[64];               /* = url: POST /3/device/<token> */
    char fcm_url[160];               /* url + "/v1/projects/<project>/messages:send" */
    char exe[PATH_MAX];
    int _slot;
    char _tail[4097];
} cr_test_fake_push_t;

/* Makes a temp dir with a TLS certificate, an APNs .p8 (random key id and team id) and a service-account file,
 * picks a free port and starts the fake with its stdout and stderr in fp->log; waits until it answers
 * GET /_fake/health (up to 10 s), picking another port when the one chosen was taken meanwhile. Returns 0, or -1 with
 * a message and the log's tail on stderr (everything cleaned up). */
int cr_test_fake_push_start(cr_test_fake_push_t *fp, const cr_test_fake_push_opts_t *opts);

/* Stops it: SIGTERM, up to 5 s, then SIGKILL; removes the dir. Returns its exit status (0..255; 0 when it shut down
 * cleanly, which under ASan includes no leak report), -1 when it had to be killed or was not running. Idempotent;
 * also done at exit and on SIGINT/SIGTERM/SIGHUP/SIGPIPE. */
int cr_test_fake_push_stop(cr_test_fake_push_t *fp);

/* The last ~4 KiB of its log ("(empty)" when none), for failure messages. Valid until the next call on fp. */
const char *cr_test_fake_push_log_tail(cr_test_fake_push_t *fp);

/* One control request (HTTP/1.1 over TLS): method and path ("/_fake/stats"), json_body NULL or a JSON text. Same
 * returns as cr_test_http; free resp with cr_test_resp_free. */
int cr_test_fake_push_control(cr_test_fake_push_t *fp, cr_test_resp_t *resp, const char *method, const char *path,
                              const char *json_body);

/* A number in GET /_fake/stats at a dotted path: "total", "providers.apns.total", "providers.apns.status.200",
 * "providers.fcm.reason.UNREGISTERED", "log.last" (n of the newest entry), "scripts". 0 when absent; -1 when the
 * fake did not answer. */
long long cr_test_fake_push_stat(cr_test_fake_push_t *fp, const char *path);

/* One received request, as GET /_fake/log gives it. */
typedef struct st_cr_test_fake_push_entry_t {
    long long n;           /* 1, 2, ... in the order they arrived (never reused, also across /_fake/reset) */
    char provider[16];     /* "apns", "fcm", "oauth", "webpush" */
    char method[16];
    char path[512];
    char id[512];          /* the device token, FCM token or topic, service account, or subscription id; "" if none */
    int status;            /* what the fake answered; 0 for an HTTP/1 request APNs refused at the connection */
    char reason[160];      /* APNs reason, FCM errorCode, OAuth error or autopush message; "" on success */
    long long t_ns;        /* CLOCK_MONOTONIC when it had arrived */
    int http;              /* 1 or 2 */
    char *payload;         /* the body (APNs, FCM) or the decrypted plaintext (Web Push), NUL-terminated; "" if none */
    size_t payload_len;
    char *_mp;             /* the whole entry as msgpack */
    size_t _mp_len;
} cr_test_fake_push_entry_t;

/* The log entries with n > since (of provider only, unless NULL), oldest first, at most 10000. Returns 0 with a
 * malloc'd array in *out (free with cr_test_fake_push_entries_free) and its length in *n, or -1. */
int cr_test_fake_push_entries(cr_test_fake_push_t *fp, long long since, const char *provider, cr_test_fake_push_entry_t **out,
                              size_t *n);

void cr_test_fake_push_entries_free(cr_test_fake_push_entry_t *entries, size_t n);

/* Any value of an entry at a dotted path, as text (cr_test_mp_text: strings, unsigned ints, bools):
 * "headers.apns-topic", "headers.ttl", "jwt.header.kid", "jwt.claims.iss", "priority", "collapse_key". Returns out. */
const char *cr_test_fake_push_entry_text(const cr_test_fake_push_entry_t *e, const char *path, char *out, size_t outlen);

/* Queues a scripted answer for requests of provider ("apns", "fcm", "oauth", "webpush") whose device token / FCM
 * token / service account / subscription id is match ("*": any): status with reason (an APNs reason or an FCM
 * errorCode; NULL for the status's usual one), Retry-After retry_after seconds (< 0: none), APNs 410 timestamp in ms
 * (< 0: now), for `times` requests (-1: forever). It applies only to requests that pass every check. Returns 0 or
 * -1. */
int cr_test_fake_push_script(cr_test_fake_push_t *fp, const char *provider, const char *match, int status,
                             const char *reason, long times, long retry_after, long long timestamp_ms);

/* A Web Push subscription the fake made, playing the browser: what PushSubscription.toJSON() gives. */
typedef struct st_cr_test_webpush_sub_t {
    char id[64];
    char endpoint[192];   /* url + "/push/<id>" */
    char p256dh[96];      /* base64url, 65-byte uncompressed P-256 point */
    char auth[32];        /* base64url, 16 bytes */
} cr_test_webpush_sub_t;

/* Creates a subscription; application_server_key (base64url P-256 point, or NULL) restricts it to pushes whose VAPID
 * k is that key (RFC 8292 §4). Returns 0 or -1. */
int cr_test_fake_push_subscribe(cr_test_fake_push_t *fp, cr_test_webpush_sub_t *out, const char *application_server_key);

/* Creates a subscription with the given browser keys (base64url: the 32-byte P-256 private scalar and the 16-byte
 * auth secret), to replay a known message such as RFC 8291's example. Returns 0 or -1. */
int cr_test_fake_push_subscribe_keys(cr_test_fake_push_t *fp, cr_test_webpush_sub_t *out, const char *ua_private,
                                     const char *auth);

/* Unsubscribes it: pushes get 410 from now on. Returns 0 or -1. */
int cr_test_fake_push_unsubscribe(cr_test_fake_push_t *fp, const char *id);

/* Clears the log, the counters, the scripts and the APNs provider tokens seen (so a new one is accepted at once);
 * subscriptions and FCM access tokens stay. Returns 0 or -1. */
int cr_test_fake_push_reset(cr_test_fake_push_t *fp);

#endif
