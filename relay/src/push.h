/* push.h — the push gateway's shared types (DESIGN.md §6): a provider-neutral notification, a device to reach, the
 * HTTP request a provider makes of them, and what the provider's answer means. */
#ifndef RELAY_PUSH_H
#define RELAY_PUSH_H

#include "corral/buf.h"
#include "corral/http.h"
#include <stddef.h>
#include <stdint.h>

/* What one notification says, whatever the provider. Strings are NUL-terminated UTF-8. */
typedef struct st_relay_push_note_t {
    char title[192];          /* "feature-auth-agent needs approval" */
    char body[512];           /* "Bash: npm install stripe", or the fallback for a sealed body */
    const char *category;     /* "CORRAL_APPROVAL" | "CORRAL_QUESTION" | "CORRAL_REVIEW" */
    char sid[65];             /* the session: APNs thread-id and collapse id, FCM collapse_key, Web Push Topic */
    uint64_t seq;
    char k[65];               /* the event's kind */
    char host[65];            /* the host id */
    char id[48];              /* the event's stream id in cr:{T}:ev */
    const uint8_t *sealed;    /* the sealed body's bytes (box), or NULL when the body is plain */
    size_t sealed_len;
    int64_t expires_s;        /* unix time after which the notification is worthless (apns-expiration, TTL) */
} relay_push_note_t;

typedef enum relay_push_provider_t {
    RELAY_PUSH_NONE = 0,
    RELAY_PUSH_APNS = 1,
    RELAY_PUSH_FCM = 2,
    RELAY_PUSH_WEBPUSH = 3,
} relay_push_provider_t;

/* One device, as its record in cr:{T}:dev says (see pair.c). */
typedef struct st_relay_push_device_t {
    char id[65];
    relay_push_provider_t provider;
    char token[512];          /* apns: lower-case hex; fcm: the registration token */
    int sandbox;              /* apns: env "sandbox" */
    char endpoint[1024];      /* webpush */
    uint8_t p256dh[65];       /* webpush: the subscription's P-256 public key, uncompressed */
    uint8_t auth[16];         /* webpush: the subscription's auth secret */
    uint64_t created_ms;      /* when this registration was made (APNs 410 timestamps are compared with it) */
} relay_push_device_t;

/* An HTTP request to a provider: the shared client's request (net/include/corral/http.h). Owned by whoever made it;
 * relay_push_req_free releases what it holds. */
typedef cr_http_req_t relay_push_req_t;
#define RELAY_PUSH_HEADERS_MAX CR_HTTP_HEADERS_MAX

/* A provider's answer, as the HTTP client hands it over. `body` is capped (RELAY_PUSH_ANSWER_MAX). */
#define RELAY_PUSH_ANSWER_MAX (16u << 10)
typedef struct st_relay_push_answer_t {
    long status;              /* 0 when there was no HTTP answer (connect, TLS, timeout) */
    const char *error;        /* the transport's error text when status is 0, else NULL */
    const char *body;
    size_t body_len;
    int64_t retry_after_ms;   /* from Retry-After (seconds or an HTTP date), -1 when absent */
    char apns_id[64];         /* the apns-id header, "" when absent */
    int http_version;         /* 1, 2 or 3: the HTTP version the answer came over, 0 when none */
    long local_port;          /* our end of the connection used (equal ports: one connection shared), 0 when none */
} relay_push_answer_t;

/* What an answer means for this notification and device. */
typedef enum relay_push_verdict_t {
    RELAY_PUSH_SENT = 0,      /* accepted by the provider */
    RELAY_PUSH_RETRY = 1,     /* 429, 5xx, transport errors, an expired provider token: again later */
    RELAY_PUSH_DEAD = 2,      /* the device token is gone: delete the device */
    RELAY_PUSH_FAILED = 3,    /* permanent: never retried (a bad request, a payload too large, bad credentials) */
} relay_push_verdict_t;

typedef struct st_relay_push_outcome_t {
    relay_push_verdict_t verdict;
    int64_t retry_after_ms;   /* RETRY: what the provider asked for, -1 for "use backoff" */
    int64_t dead_since_ms;    /* DEAD: APNs' 410 timestamp (ms), 0 when the provider gave none */
    int refresh_auth;         /* the provider token/JWT was refused as expired or invalid: make a new one */
    char reason[64];          /* the provider's reason code ("BadDeviceToken", "UNREGISTERED", "http_503", ...) */
} relay_push_outcome_t;

/* Frees what a request holds (headers and body, wiped); the struct itself belongs to the caller. Safe on a zeroed
 * request. */
static inline void relay_push_req_free(relay_push_req_t *req)
{
    cr_http_req_free(req);
}

/* Adds a header "name: value" (copied). Returns 0, or -1 when there are already RELAY_PUSH_HEADERS_MAX (or a CR/LF). */
static inline int relay_push_req_header(relay_push_req_t *req, const char *name, const char *value)
{
    return cr_http_req_header(req, name, value);
}

#endif
