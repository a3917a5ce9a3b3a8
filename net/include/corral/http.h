/* http.h — the shared HTTP client of corral-relay (push providers) and corrald (its relay link): libcurl's multi
 * interface on a libuv loop, HTTP/2 with one multiplexed, kept-alive connection per origin, bounded answers, and a
 * streaming mode for never-ending responses. */
#ifndef CORRAL_HTTP_H
#define CORRAL_HTTP_H

#include "corral/buf.h"
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define CR_HTTP_CONNECT_TIMEOUT_MS 10000L /* default: connecting, TLS included */
#define CR_HTTP_TIMEOUT_MS 30000L         /* default: a whole request, from the moment it is sent */
#define CR_HTTP_HOST_CONNECTIONS 1L       /* default connections per origin: every request to it is one more stream */
#define CR_HTTP_STREAMS 1000L             /* streams per connection we allow (the server may allow fewer) */
#define CR_HTTP_ACTIVE_MAX 100            /* default: requests handed to curl at once; the rest wait in line */
#define CR_HTTP_IDLE_MAX 512              /* idle easy handles kept for reuse */
#define CR_HTTP_RETRY_AFTER_MAX_MS (86400LL * 1000) /* a Retry-After is capped at one day */
#define CR_HTTP_HEADERS_MAX 12            /* request headers of one request */
#define CR_HTTP_ANSWER_MAX (16u << 10)    /* default cap of an answer's body */
#define CR_HTTP_URL_MAX 2048

typedef struct st_cr_http_t cr_http_t;

/* Receives a streamed response's body as it arrives (only for a 2xx status; other statuses are buffered into the
 * answer as usual). Return 0 to go on, -1 to abort the request (its cb then runs with status 0, error "aborted").
 * Must not call cr_http_cancel or cr_http_close (return -1 instead). */
typedef int (*cr_http_data_cb)(const char *p, size_t n, void *data);

/* One request. Owned by whoever made it; cr_http_req_free releases what it holds. Zero it before use. */
typedef struct st_cr_http_req_t {
    char url[CR_HTTP_URL_MAX];
    const char *method;                    /* NULL: POST with a body, else GET */
    char *headers[CR_HTTP_HEADERS_MAX];    /* "name: value", malloc'd each (cr_http_req_header) */
    size_t nheaders;
    cr_buf_t body;
    const char *ca_file;                   /* NULL: the system's CAs; must outlive the request */
    long connect_ms;                       /* 0: the client's default */
    long total_ms;                         /* 0: the client's default; -1: no total timeout (streams) */
    long idle_ms;                          /* > 0: fail when nothing arrives for this long (stalled stream) */
    size_t body_max;                       /* 0: CR_HTTP_ANSWER_MAX; the buffered answer is cut there */
    const char *keep_header;               /* a response header whose value the answer keeps (e.g. "apns-id") */
    cr_http_data_cb on_data;               /* non-NULL: stream a 2xx body to it instead of buffering it */
} cr_http_req_t;

/* An answer. Everything it points to is valid only during the callback. */
typedef struct st_cr_http_answer_t {
    long status;            /* 0 when there was no HTTP answer (connect, TLS, timeout, abort, cancel, shutdown) */
    const char *error;      /* the transport's error text when status is 0, else NULL */
    const char *body;       /* the buffered body ("" when streamed) */
    size_t body_len;
    int64_t retry_after_ms; /* from Retry-After (seconds or an HTTP date), -1 when absent */
    char kept[64];          /* the value of req.keep_header, "" when absent */
    int http_version;       /* 1, 2 or 3: the HTTP version the answer came over, 0 when none */
    long local_port;        /* our end of the connection used (equal ports: one connection shared), 0 when none */
} cr_http_answer_t;

/* Receives the answer to one request (also the end of a streamed one). */
typedef void (*cr_http_cb)(const cr_http_answer_t *answer, void *data);

/* Frees what a request holds (headers and body, wiped first: they may carry credentials); the struct itself belongs
 * to the caller. Safe on a zeroed request. */
void cr_http_req_free(cr_http_req_t *req);

/* Adds a header "name: value" (copied). Returns 0, or -1 when there are already CR_HTTP_HEADERS_MAX, a name or value
 * holds CR/LF (or the name ':'), or memory runs out. */
int cr_http_req_header(cr_http_req_t *req, const char *name, const char *value);

/* Makes a client whose sockets and timer run on loop. On success *out owns it (release it with cr_http_close).
 * Returns 0, or -1 with cr_error_last() saying why. */
int cr_http_new(cr_http_t **out, uv_loop_t *loop);

/* Sets the default connect timeout and whole-request timeout (milliseconds, > 0) for requests sent from now on. */
void cr_http_set_timeouts(cr_http_t *h, long connect_ms, long total_ms);

/* Sets how many requests are handed to curl at once (>= 1; default CR_HTTP_ACTIVE_MAX); the others wait, in order,
 * in our own queue (their timeout starts when they are handed over). */
void cr_http_set_max_active(cr_http_t *h, size_t n);

/* Sets how many connections one origin may have (default CR_HTTP_HOST_CONNECTIONS). HTTP/1.1 needs one per
 * request at a time: a client that keeps a never-ending response open beside other requests needs 2 or more. */
void cr_http_set_host_connections(cr_http_t *h, long n);

/* Sends req. HTTPS goes over HTTP/2 when the server offers it (ALPN), else HTTP/1.1; plain http:// goes over
 * HTTP/1.1 (libcurl 7.88 mishandles reused HTTP/2 prior-knowledge connections). Requests to one origin share
 * connections. On success the request's contents are moved into the client (the caller's req is zeroed) and cb runs
 * exactly once, later, from the loop — never inside this call — with status 0 and an error text when no HTTP answer
 * came. *out_id (may be NULL) receives an id for cr_http_cancel. Returns 0, or -1 with cr_error_last() saying why
 * (the client is closing, or out of memory); then req is left as it was and cb never runs. */
int cr_http_send(cr_http_t *h, cr_http_req_t *req, cr_http_cb cb, void *data, uint64_t *out_id);

/* Cancels the request of id if its cb has not run yet: the cb runs inside this call with status 0 and error
 * "cancelled". Returns 0, or CR_ENOTFOUND when there is no such request (done already). Not from inside an on_data
 * callback. */
int cr_http_cancel(cr_http_t *h, uint64_t id);

/* The number of requests sent whose cb has not run yet. */
size_t cr_http_inflight(const cr_http_t *h);

/* The number of connections opened so far (with reuse it stays far below the number of requests). */
uint64_t cr_http_connects(const cr_http_t *h);

/* Closes the client: every request in flight is aborted now, its cb running (inside this call) with status 0 and
 * error "shutdown"; connections are closed; h is freed once libuv has closed its handles, after which on_closed
 * (may be NULL) runs from the loop with data. Call it once; h must not be used afterwards, except that a cb running
 * inside this call may call cr_http_send, which fails. */
void cr_http_close(cr_http_t *h, void (*on_closed)(void *data), void *data);

/* Parses a Retry-After value (delta-seconds or an HTTP-date, RFC 9110 §10.2.3) of len bytes into milliseconds from
 * now_ms (unix time in ms), 0 for a date in the past, capped at CR_HTTP_RETRY_AFTER_MAX_MS. Returns -1 when it is
 * neither. */
int64_t cr_http__retry_after_ms(const char *value, size_t len, int64_t now_ms);

#endif
