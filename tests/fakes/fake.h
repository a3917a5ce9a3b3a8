/* fake.h — corral-fake-push's shared parts: its configuration, the request context each provider gets, the log of
 * received requests with its counters, scripted answers, and the small JSON writer and reader they all use. */
#ifndef CORRAL_FAKE_H
#define CORRAL_FAKE_H

#include "corral/buf.h"
#include "corral/mp.h"
#include <h2o.h>
#include <limits.h>
#include <openssl/evp.h>
#include <stdint.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
#endif

/* Who a request was for. The first four are logged and counted; control requests are neither. */
enum { FK_APNS, FK_FCM, FK_OAUTH, FK_WEBPUSH, FK_CONTROL, FK_NPROVIDERS };

/* Their names in the log, the stats and scripts: "apns", "fcm", "oauth", "webpush", "control". */
extern const char *const fk_provider_names[FK_NPROVIDERS];

/* What the flags said. APNs is on when apns_key is set, FCM when fcm_key is set; Web Push is always on. */
typedef struct st_fk_config_t {
    char listen[64];                   /* "127.0.0.1:PORT" */
    char origin[128];                  /* "https://127.0.0.1:PORT": Web Push endpoints and the VAPID audience */
    EVP_PKEY *apns_key;                /* the provider key's public half */
    char apns_key_id[64], apns_team_id[64], apns_topic[256];
    int64_t apns_token_min_interval_s; /* a new provider token at most this often (Apple: 20 min) */
    EVP_PKEY *fcm_key;                 /* the service account key's public half */
    char fcm_key_id[128], fcm_client_email[256], fcm_token_uri[512], fcm_project[128];
    int64_t fcm_token_ttl_s;           /* lifetime of the access tokens /token issues (Google: 3599 s) */
    size_t log_size;                   /* requests kept in the log; 0 keeps only the counters */
    int verbose;                       /* one line on stderr per request */
} fk_config_t;

extern fk_config_t fk_conf;

/* One request being answered. Handlers run to completion synchronously and end it with fk_respond exactly once. */
typedef struct st_fk_req_t {
    h2o_req_t *req;
    int provider;
    int64_t t_ns;     /* CLOCK_MONOTONIC when the whole request had arrived */
    int64_t now_s;    /* wall clock, seconds since the epoch */
    h2o_iovec_t path; /* the path as sent, without the query */
    cr_buf_t *rec;    /* the log entry's members so far ("key":value,...), NULL when nothing is logged */
} fk_req_t;

/* CLOCK_MONOTONIC in nanoseconds. */
int64_t fk_now_ns(void);

/* The value of request header `name` (lower case) in *out. Returns how many times the header occurs (0: absent,
 * *out empty). */
int fk_header(const fk_req_t *r, const char *name, h2o_iovec_t *out);

/* Adds a response header (name lower case, both copied). */
void fk_add_header(fk_req_t *r, const char *name, const char *value, size_t value_len);

/* Log members of the entry being built (no-ops when nothing is logged): a string (invalid UTF-8 escaped byte by
 * byte), an integer, verbatim JSON, bytes (a string when valid UTF-8, else "<key>_b64" in base64url), and the
 * listed request headers that are present as a "headers" object (names NULL-terminated). */
void fk_rec_str(fk_req_t *r, const char *key, const char *s, size_t n);
void fk_rec_int(fk_req_t *r, const char *key, long long v);
void fk_rec_json(fk_req_t *r, const char *key, const char *json, size_t n);
void fk_rec_bytes(fk_req_t *r, const char *key, const void *p, size_t n);
void fk_rec_headers(fk_req_t *r, const char *const *names);

/* Ends the request: records it (status, reason: an APNs reason, an FCM errorCode or our own word; "" on success)
 * in the log and counters, and sends status with the body. ctype NULL sends no Content-Type. */
void fk_respond(fk_req_t *r, int status, const char *reason, const char *ctype, const char *body, size_t len);

/* A scripted answer, as POST /_fake/script queued it. */
typedef struct st_fk_script_t {
    int provider;
    char match[512];      /* a device token, FCM token or subscription id; "*" for any */
    int status;
    char reason[128];     /* APNs reason or FCM errorCode; "" for the status's usual one */
    long retry_after;     /* seconds for Retry-After; -1: none */
    long long timestamp;  /* APNs 410 "timestamp" (ms); -1: none */
    long times;           /* answers left; -1: forever */
} fk_script_t;

/* Takes the first queued script of provider matching id (or "*"), counting one use. Returns 1 with a copy in *out,
 * or 0 when none applies. */
int fk_script_take(int provider, const char *id, size_t idlen, fk_script_t *out);

/* JSON text: appends s[0..n) as a JSON string, quotes included (invalid UTF-8 escaped byte by byte as \u00XX). */
void fk_json_str(cr_buf_t *b, const char *s, size_t n);

/* Parses JSON text into msgpack (cr_json_to_msgpack, strict, within the fake's limits) appended to mp. Returns 0 or
 * -1 (cr_error_last says why). */
int fk_json_parse(cr_buf_t *mp, const char *json, size_t len);

/* Reads member `key` of the msgpack map mp[0..len): a string into *out (0), an integer or float into *out (0).
 * Returns -1 when absent (or mp is not a map), -2 when of another type. */
int fk_mp_str(const char *mp, size_t len, const char *key, cr_span_t *out);
int fk_mp_num(const char *mp, size_t len, const char *key, double *out);

/* Fresh random bytes as base64url (no padding) into out (room for cr_base64url_encoded_len(n)). */
void fk_random_b64url(char *out, size_t n);

/* Provider handlers (fake_apns.c, fake_fcm.c, fake_webpush.c), and their parts of /_fake/reset. */
void fk_apns_handle(fk_req_t *r);
void fk_apns_reset(void);
int fk_fcm_load_account(const char *path); /* 0, or -1 with a message on stderr */
void fk_oauth_handle(fk_req_t *r);
void fk_fcm_handle(fk_req_t *r);
void fk_fcm_reset(void);
void fk_webpush_handle(fk_req_t *r);
void fk_webpush_subscribe(fk_req_t *r);
void fk_webpush_unsubscribe(fk_req_t *r);
void fk_webpush_dispose(void);

#endif
