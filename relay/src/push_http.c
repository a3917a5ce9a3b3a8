/* push_http.c — the push gateway's HTTP client: push requests and answers (push.h) carried over net/'s shared cr_http
 * client, which does the work (curl multi on the loop, HTTP/2, connection reuse, bounded answers). */
#include "push_http.h"
#include "corral/error.h"
#include <stdlib.h>
#include <string.h>

struct st_relay_push_http_t {
    cr_http_t *c;
    void (*on_closed)(void *data);
    void *closed_data;
};

/* What one request's answer goes back to. */
typedef struct st_relay_push_http_call_t {
    relay_push_http_cb cb;
    void *data;
} relay_push_http_call_t;

int relay_push_http_new(relay_push_http_t **out, uv_loop_t *loop)
{
    relay_push_http_t *h;
    *out = NULL;
    if ((h = calloc(1, sizeof(*h))) == NULL) {
        cr_error_set(CR_ENOMEM, NULL, "push http: out of memory");
        return -1;
    }
    if (cr_http_new(&h->c, loop) != 0) {
        free(h);
        return -1;
    }
    *out = h;
    return 0;
}

void relay_push_http_set_timeouts(relay_push_http_t *h, long connect_ms, long total_ms)
{
    cr_http_set_timeouts(h->c, connect_ms, total_ms);
}

void relay_push_http_set_max_active(relay_push_http_t *h, size_t n)
{
    cr_http_set_max_active(h->c, n);
}

static void relay_push_http__on_answer(const cr_http_answer_t *ca, void *data)
{
    relay_push_http_call_t call = *(relay_push_http_call_t *)data;
    relay_push_answer_t a;
    free(data);
    memset(&a, 0, sizeof(a));
    a.status = ca->status;
    a.error = ca->error;
    a.body = ca->body;
    a.body_len = ca->body_len;
    a.retry_after_ms = ca->retry_after_ms;
    memcpy(a.apns_id, ca->kept, sizeof(a.apns_id) < sizeof(ca->kept) ? sizeof(a.apns_id) : sizeof(ca->kept));
    a.apns_id[sizeof(a.apns_id) - 1] = '\0';
    a.http_version = ca->http_version;
    a.local_port = ca->local_port;
    call.cb(&a, call.data);
}

int relay_push_http_send(relay_push_http_t *h, relay_push_req_t *req, relay_push_http_cb cb, void *data)
{
    relay_push_http_call_t *call;
    if ((call = malloc(sizeof(*call))) == NULL) {
        cr_error_set(CR_ENOMEM, NULL, "push http: out of memory");
        return -1;
    }
    call->cb = cb;
    call->data = data;
    req->body_max = RELAY_PUSH_ANSWER_MAX;
    req->keep_header = "apns-id";
    if (cr_http_send(h->c, req, relay_push_http__on_answer, call, NULL) != 0) {
        free(call);
        return -1; /* req still owns its headers and body */
    }
    return 0; /* req's contents are now the client's (cr_http_send zeroed it) */
}

size_t relay_push_http_inflight(const relay_push_http_t *h)
{
    return cr_http_inflight(h->c);
}

uint64_t relay_push_http_connects(const relay_push_http_t *h)
{
    return cr_http_connects(h->c);
}

static void relay_push_http__on_closed(void *data)
{
    relay_push_http_t *h = data;
    void (*on_closed)(void *) = h->on_closed;
    void *cdata = h->closed_data;
    free(h);
    if (on_closed != NULL)
        on_closed(cdata);
}

void relay_push_http_close(relay_push_http_t *h, void (*on_closed)(void *data), void *data)
{
    h->on_closed = on_closed;
    h->closed_data = data;
    cr_http_close(h->c, relay_push_http__on_closed, h);
}

int64_t relay_push_http__retry_after_ms(const char *value, size_t len, int64_t now_ms)
{
    return cr_http__retry_after_ms(value, len, now_ms);
}
