/* push_http.h — the push gateway's HTTP client: net/'s shared cr_http (libcurl multi on the relay's libuv loop, HTTP/2
 * with one multiplexed, kept-alive connection per origin, bounded answers) speaking push requests (DESIGN.md §6). */
#ifndef RELAY_PUSH_HTTP_H
#define RELAY_PUSH_HTTP_H

#include "push.h"
#include "corral/http.h"
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

/* The engine is net/'s cr_http (corral/http.h); this is the relay's push-shaped face on it. */
#define RELAY_PUSH_HTTP_CONNECT_TIMEOUT_MS CR_HTTP_CONNECT_TIMEOUT_MS
#define RELAY_PUSH_HTTP_TIMEOUT_MS CR_HTTP_TIMEOUT_MS
#define RELAY_PUSH_HTTP_HOST_CONNECTIONS CR_HTTP_HOST_CONNECTIONS
#define RELAY_PUSH_HTTP_STREAMS CR_HTTP_STREAMS
#define RELAY_PUSH_HTTP_ACTIVE_MAX CR_HTTP_ACTIVE_MAX
#define RELAY_PUSH_HTTP_IDLE_MAX CR_HTTP_IDLE_MAX
#define RELAY_PUSH_RETRY_AFTER_MAX_MS CR_HTTP_RETRY_AFTER_MAX_MS

typedef struct st_relay_push_http_t relay_push_http_t;

/* Receives the answer to one request. `answer` and everything it points to (body, error) are valid only during the
 * call. */
typedef void (*relay_push_http_cb)(const relay_push_answer_t *answer, void *data);

/* Makes a client whose sockets and timer run on loop. On success *out owns it (release it with
 * relay_push_http_close). Returns 0, or -1 with cr_error_last() saying why. */
int relay_push_http_new(relay_push_http_t **out, uv_loop_t *loop);

/* Sets the connect timeout and the whole-request timeout (milliseconds, > 0) for requests sent from now on. */
void relay_push_http_set_timeouts(relay_push_http_t *h, long connect_ms, long total_ms);

/* Sets how many requests are handed to curl at once (>= 1; default RELAY_PUSH_HTTP_ACTIVE_MAX); the others wait, in
 * order, in our own queue (their timeout starts when they are handed over). Best at the server's stream limit
 * (SETTINGS_MAX_CONCURRENT_STREAMS: 100 at Google and h2o, up to 1000 at APNs): libcurl 7.88 handles transfers that
 * wait for a stream slowly — one connection to a 100-stream fake did 17k requests/s with 100, 7-10k with 1000. */
void relay_push_http_set_max_active(relay_push_http_t *h, size_t n);

/* Sends req: its url, method (NULL: POST when it has a body, else GET), headers, body, and ca_file (NULL: the
 * system's CAs). HTTPS goes over HTTP/2 when the server offers it (ALPN), else HTTP/1.1; requests to one origin share
 * one connection. On success the request's contents are moved into the client (the caller's req is zeroed; ca_file
 * must stay valid until cb has run) and cb runs exactly once, later, from the loop — never inside this call — with
 * status 0 and an error text when no HTTP answer came (connect, TLS, timeout, shutdown). The answer's body is cut
 * to RELAY_PUSH_ANSWER_MAX bytes. Returns 0, or -1 with cr_error_last() saying why (the client is closing, or out
 * of memory); then req is left as it was and cb never runs. */
int relay_push_http_send(relay_push_http_t *h, relay_push_req_t *req, relay_push_http_cb cb, void *data);

/* The number of requests sent whose cb has not run yet. */
size_t relay_push_http_inflight(const relay_push_http_t *h);

/* The number of connections opened so far (for /metrics: with reuse it stays far below the number of requests). */
uint64_t relay_push_http_connects(const relay_push_http_t *h);

/* Closes the client: every request in flight is aborted now, its cb running (inside this call) with status 0 and
 * error "shutdown"; connections are closed; h is freed once libuv has closed its handles, after which on_closed
 * (may be NULL) runs from the loop with data. Call it once; h must not be used afterwards, except that a cb running
 * inside this call may call relay_push_http_send, which fails. */
void relay_push_http_close(relay_push_http_t *h, void (*on_closed)(void *data), void *data);

/* Parses a Retry-After value (delta-seconds or an HTTP-date, RFC 9110 §10.2.3) of len bytes into milliseconds from
 * now_ms (unix time in ms), 0 for a date in the past, capped at RELAY_PUSH_RETRY_AFTER_MAX_MS. Returns -1 when it
 * is neither. */
int64_t relay_push_http__retry_after_ms(const char *value, size_t len, int64_t now_ms);

#endif
