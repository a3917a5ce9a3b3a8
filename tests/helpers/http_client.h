/* http_client.h — a small synchronous HTTP/1.1 and HTTP/2 client (libcurl) for tests, and a reader of never-ending
 * msgpack streams such as the host downlink. */
#ifndef CORRAL_TEST_HTTP_CLIENT_H
#define CORRAL_TEST_HTTP_CLIENT_H

#include <stddef.h>
#include "corral/buf.h"
#include "corral/error.h"

/* Flags. The default is HTTP/1.1 with curl's Accept header (any type). */
#define CR_HTTP_H2C 0x1            /* HTTP/2: with prior knowledge on http:// (h2c), by ALPN on https:// */
#define CR_HTTP_H2 CR_HTTP_H2C
#define CR_HTTP_ACCEPT_MSGPACK 0x2 /* Accept: application/msgpack */
#define CR_HTTP_INSECURE 0x4       /* https://: accept any certificate (a test's self-signed one) */

/* One response. Filled in entirely by cr_test_http (what was there before is overwritten, not freed). */
typedef struct st_cr_test_resp_t {
    long status;            /* the HTTP status; 0 when no response came (then error says why) */
    char *body;             /* the body, NUL-terminated (malloc'd; never NULL after cr_test_http) */
    size_t body_len;
    char content_type[128]; /* the Content-Type header, "" when none */
    char retry_after[32];   /* the Retry-After header, "" when none */
    long http_version;      /* 1 for HTTP/1.x, 2 for HTTP/2; 0 when no response came */
    char error[256];        /* why no response came (curl's message), "" otherwise */
} cr_test_resp_t;

/* Sends one request and waits for the whole response (10 s timeout, a fresh connection each time). token, when not
 * NULL, goes as "Authorization: Bearer TOKEN" and is never printed; content_type and body (body_len bytes) may be
 * NULL. Any method ("GET", "POST", "DELETE", ...); a body is sent with any method. Returns 0 when a response came
 * (whatever its status), -1 when none did (resp->error says why; also printed on stderr). Bodies over 64 MiB are a
 * failure. Free with cr_test_resp_free. */
int cr_test_http(cr_test_resp_t *resp, const char *method, const char *url, const char *token, const char *content_type,
                 const void *body, size_t body_len, int flags);

/* cr_test_http with more request headers: headers is NULL or a NULL-terminated list of "Name: value" ("Name:"
 * removes a header curl would add). */
int cr_test_http_ex(cr_test_resp_t *resp, const char *method, const char *url, const char *token,
                    const char *content_type, const char *const *headers, const void *body, size_t body_len, int flags);

/* Sends json_body (a NUL-terminated JSON text; NULL for none) as "Content-Type: application/json" over HTTP/1.1.
 * Same returns as cr_test_http. */
int cr_test_http_json(cr_test_resp_t *resp, const char *method, const char *url, const char *token,
                      const char *json_body);

/* Frees the body; resp may be reused. */
void cr_test_resp_free(cr_test_resp_t *resp);

/* A response that never ends, read as a stream of concatenated msgpack values (curl multi; nothing runs between
 * calls, so the server's writes wait in the socket buffers meanwhile). */
typedef struct st_cr_test_stream_t cr_test_stream_t;

/* Starts GET url (flags as for cr_test_http; the connect timeout is 10 s, the stream has none). Returns at once,
 * before the server has answered; NULL only when out of memory. Close with cr_test_stream_close. */
cr_test_stream_t *cr_test_stream_open(const char *url, const char *token, int flags);

/* Waits up to timeout_ms for one complete msgpack value of a 2xx response and appends its bytes to out_frame.
 * Returns 0, CR_EAGAIN on timeout, or -1 once the stream has ended or failed: the server closed it, the transfer
 * failed, the status was not 2xx (see cr_test_stream_status and cr_test_stream_body), or the bytes were not
 * msgpack or too large (a message on stderr). Values already received are still given out before -1. */
int cr_test_stream_next(cr_test_stream_t *s, cr_buf_t *out_frame, int timeout_ms);

/* Waits up to timeout_ms for the response's headers. Returns 0 (cr_test_stream_status gives the status),
 * CR_EAGAIN on timeout, or -1 when the transfer failed before any response came. */
int cr_test_stream_wait_headers(cr_test_stream_t *s, int timeout_ms);

/* The response's HTTP status; 0 while no headers have come. */
long cr_test_stream_status(cr_test_stream_t *s);

/* The body of a non-2xx response so far (NUL-terminated; "" when none), e.g. the JSON error of a 401. */
const char *cr_test_stream_body(cr_test_stream_t *s);

/* 1 once the transfer has ended (cleanly or not), else 0. */
int cr_test_stream_ended(cr_test_stream_t *s);

/* Aborts the transfer (closing the connection, or resetting the HTTP/2 stream) and frees s. NULL is fine. */
void cr_test_stream_close(cr_test_stream_t *s);

#endif
