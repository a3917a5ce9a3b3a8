/* push_http.c — the push gateway's HTTP client: libcurl's multi interface driven by the libuv loop (one uv_poll_t
 * per socket curl watches, one uv_timer_t for curl's timeout), HTTP/2 multiplexing over one connection per origin,
 * easy handles reused from a free list. */
#include "push_http.h"
#include "corral/error.h"
#include <curl/curl.h>
#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* One socket curl asked us to watch. Freed by the uv_close callback, never before. */
typedef struct st_relay_push_http_sock_t {
    uv_poll_t poll;
    curl_socket_t fd;
    relay_push_http_t *h;
    struct st_relay_push_http_sock_t *prev, *next; /* in h->socks while watched */
} relay_push_http_sock_t;

/* One request: an easy handle and what it needs while in flight. Kept on h->idle between requests. */
typedef struct st_relay_push_http_xfer_t {
    relay_push_http_t *h;
    CURL *easy;
    struct st_relay_push_http_xfer_t *prev, *next; /* in h->inflight; or h->waiting or h->idle (next only) */
    relay_push_req_t req;                          /* moved from the caller */
    struct curl_slist *headers;
    relay_push_http_cb cb;
    void *data;
    cr_buf_t body;                                 /* the answer's body, at most RELAY_PUSH_ANSWER_MAX */
    int64_t retry_after_ms;
    char apns_id[64];
    char errbuf[CURL_ERROR_SIZE];
} relay_push_http_xfer_t;

struct st_relay_push_http_t {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    relay_push_http_xfer_t *inflight; /* handed to curl */
    size_t ninflight;
    relay_push_http_xfer_t *waiting, *waiting_tail; /* prepared, waiting for one of max_active places */
    size_t nwaiting, max_active;
    relay_push_http_xfer_t *idle;
    size_t nidle;
    relay_push_http_sock_t *socks;
    long connect_ms, total_ms;
    uint64_t connects;
    int closing;
    int closes_pending; /* uv handles closing whose callback has not run */
    void (*on_closed)(void *data);
    void *closed_data;
};

static void relay_push_http__maybe_free(relay_push_http_t *h)
{
    void (*on_closed)(void *) = h->on_closed;
    void *data = h->closed_data;
    if (!h->closing || h->closes_pending > 0)
        return;
    free(h);
    curl_global_cleanup();
    if (on_closed != NULL)
        on_closed(data);
}

static void relay_push_http__on_sock_closed(uv_handle_t *handle)
{
    relay_push_http_sock_t *sk = handle->data;
    relay_push_http_t *h = sk->h;
    free(sk);
    --h->closes_pending;
    relay_push_http__maybe_free(h);
}

/* Stops watching a socket before curl closes it: uv_close takes the fd out of epoll at once. */
static void relay_push_http__sock_close(relay_push_http_sock_t *sk)
{
    relay_push_http_t *h = sk->h;
    if (sk->prev != NULL)
        sk->prev->next = sk->next;
    else
        h->socks = sk->next;
    if (sk->next != NULL)
        sk->next->prev = sk->prev;
    sk->prev = sk->next = NULL;
    ++h->closes_pending;
    uv_close((uv_handle_t *)&sk->poll, relay_push_http__on_sock_closed);
}

static void relay_push_http__on_timer_closed(uv_handle_t *handle)
{
    relay_push_http_t *h = handle->data;
    --h->closes_pending;
    relay_push_http__maybe_free(h);
}

/* Wall-clock unix time in milliseconds (Retry-After dates are absolute). */
static int64_t relay_push_http__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t relay_push_http__retry_after_ms(const char *value, size_t len, int64_t now_ms)
{
    char text[64];
    size_t i;
    while (len > 0 && (*value == ' ' || *value == '\t'))
        ++value, --len;
    while (len > 0 && (value[len - 1] == ' ' || value[len - 1] == '\t' || value[len - 1] == '\r' || value[len - 1] == '\n'))
        --len;
    if (len == 0)
        return -1;
    for (i = 0; i < len && value[i] >= '0' && value[i] <= '9'; ++i)
        ;
    if (i == len) { /* delta-seconds */
        int64_t s = 0;
        for (i = 0; i < len; ++i) {
            s = s * 10 + (value[i] - '0');
            if (s * 1000 >= RELAY_PUSH_RETRY_AFTER_MAX_MS)
                return RELAY_PUSH_RETRY_AFTER_MAX_MS;
        }
        return s * 1000;
    }
    if (len >= sizeof(text) || !((value[0] >= 'A' && value[0] <= 'Z') || (value[0] >= 'a' && value[0] <= 'z')))
        return -1; /* every HTTP-date form starts with the day's name */
    memcpy(text, value, len);
    text[len] = '\0';
    time_t t = curl_getdate(text, NULL); /* IMF-fixdate, RFC 850 and asctime forms */
    if (t == (time_t)-1)
        return -1;
    int64_t ms = (int64_t)t * 1000 - now_ms;
    return ms < 0 ? 0 : ms > RELAY_PUSH_RETRY_AFTER_MAX_MS ? RELAY_PUSH_RETRY_AFTER_MAX_MS : ms;
}

static size_t relay_push_http__on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    relay_push_http_xfer_t *x = userdata;
    size_t n = size * nmemb, room = RELAY_PUSH_ANSWER_MAX - x->body.len;
    if (room > 0 && cr_buf_append(&x->body, ptr, n < room ? n : room) != 0)
        return 0; /* out of memory: fail the request */
    return n;     /* what does not fit is dropped */
}

/* Matches a header line "name: value" by name (any case); points value and vlen at the value, untrimmed. */
static int relay_push_http__header_is(const char *line, size_t len, const char *name, const char **value, size_t *vlen)
{
    size_t n = strlen(name);
    if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
        return 0;
    *value = line + n + 1;
    *vlen = len - n - 1;
    return 1;
}

static size_t relay_push_http__on_header(char *line, size_t size, size_t nmemb, void *userdata)
{
    relay_push_http_xfer_t *x = userdata;
    size_t len = size * nmemb, vlen;
    const char *v;
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) { /* a new response (after a 1xx): forget the last one's */
        x->retry_after_ms = -1;
        x->apns_id[0] = '\0';
        x->body.len = 0;
    } else if (relay_push_http__header_is(line, len, "retry-after", &v, &vlen)) {
        x->retry_after_ms = relay_push_http__retry_after_ms(v, vlen, relay_push_http__now_ms());
    } else if (relay_push_http__header_is(line, len, "apns-id", &v, &vlen)) {
        while (vlen > 0 && (*v == ' ' || *v == '\t'))
            ++v, --vlen;
        while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            --vlen;
        if (vlen >= sizeof(x->apns_id))
            vlen = sizeof(x->apns_id) - 1;
        memcpy(x->apns_id, v, vlen);
        x->apns_id[vlen] = '\0';
    }
    return len;
}

/* curl closes a socket: make sure uv no longer polls it (the REMOVE callback normally did that already). */
static int relay_push_http__on_closesocket(void *clientp, curl_socket_t fd)
{
    relay_push_http_t *h = clientp;
    for (relay_push_http_sock_t *sk = h->socks; sk != NULL; sk = sk->next)
        if (sk->fd == fd) {
            relay_push_http__sock_close(sk);
            break;
        }
    return close(fd);
}

/* Frees our copy of the request's headers, wiped first: authorization carries a credential. */
static void relay_push_http__free_headers(relay_push_http_xfer_t *x)
{
    for (struct curl_slist *l = x->headers; l != NULL; l = l->next)
        OPENSSL_cleanse(l->data, strlen(l->data));
    curl_slist_free_all(x->headers);
    x->headers = NULL;
}

static void relay_push_http__xfer_destroy(relay_push_http_xfer_t *x)
{
    relay_push_req_free(&x->req);
    relay_push_http__free_headers(x);
    cr_buf_free(&x->body);
    curl_easy_cleanup(x->easy);
    free(x);
}

/* Frees what the finished request held and keeps its easy handle for the next one (or frees it). */
static void relay_push_http__xfer_recycle(relay_push_http_t *h, relay_push_http_xfer_t *x)
{
    if (h->closing || h->nidle >= RELAY_PUSH_HTTP_IDLE_MAX) {
        relay_push_http__xfer_destroy(x);
        return;
    }
    relay_push_req_free(&x->req);
    memset(&x->req, 0, sizeof(x->req));
    relay_push_http__free_headers(x);
    if (x->body.cap > 4096)
        cr_buf_free(&x->body);
    x->body.len = 0;
    x->cb = NULL;
    x->data = NULL;
    curl_easy_reset(x->easy);
    x->prev = NULL;
    x->next = h->idle;
    h->idle = x;
    ++h->nidle;
}

static void relay_push_http__unlink(relay_push_http_t *h, relay_push_http_xfer_t *x)
{
    if (x->prev != NULL)
        x->prev->next = x->next;
    else
        h->inflight = x->next;
    if (x->next != NULL)
        x->next->prev = x->prev;
    x->prev = x->next = NULL;
    --h->ninflight;
}

/* Hands the answer of a request curl is done with (already out of the multi and of h->inflight) to its cb. */
static void relay_push_http__finish(relay_push_http_t *h, relay_push_http_xfer_t *x, CURLcode result, const char *error)
{
    relay_push_answer_t a;
    long code = 0, version = 0, port = 0, connects = 0;

    memset(&a, 0, sizeof(a));
    a.retry_after_ms = x->retry_after_ms;
    memcpy(a.apns_id, x->apns_id, sizeof(a.apns_id));
    if (error == NULL) {
        curl_easy_getinfo(x->easy, CURLINFO_NUM_CONNECTS, &connects);
        h->connects += connects > 0 ? (uint64_t)connects : 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
        curl_easy_getinfo(x->easy, CURLINFO_HTTP_VERSION, &version);
        curl_easy_getinfo(x->easy, CURLINFO_LOCAL_PORT, &port);
        a.http_version = version == CURL_HTTP_VERSION_2_0 ? 2 : version == CURL_HTTP_VERSION_3 ? 3 : version != 0 ? 1 : 0;
        a.local_port = port;
        if (result == CURLE_OK && code > 0) {
            a.status = code;
            a.body = x->body.base != NULL ? x->body.base : "";
            a.body_len = x->body.len;
        } else {
            a.error = x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(result);
        }
    } else {
        a.error = error;
    }
    if (a.status == 0) {
        a.retry_after_ms = -1;
        a.apns_id[0] = '\0';
    }
    x->cb(&a, x->data);
    relay_push_http__xfer_recycle(h, x);
}

/* Hands waiting requests to curl while there is room. A request curl refuses is answered with an error. */
static void relay_push_http__start_waiting(relay_push_http_t *h)
{
    relay_push_http_xfer_t *x;
    while (!h->closing && h->ninflight < h->max_active && (x = h->waiting) != NULL) {
        if ((h->waiting = x->next) == NULL)
            h->waiting_tail = NULL;
        --h->nwaiting;
        x->next = NULL;
        if (curl_multi_add_handle(h->multi, x->easy) != CURLM_OK) {
            relay_push_http__finish(h, x, CURLE_OUT_OF_MEMORY, "cannot start the request");
            continue;
        }
        if ((x->next = h->inflight) != NULL)
            x->next->prev = x;
        h->inflight = x;
        ++h->ninflight;
    }
}

/* Collects every finished request after curl ran; stops as soon as a cb closed the client. */
static void relay_push_http__check_done(relay_push_http_t *h)
{
    CURLMsg *msg;
    int left;
    while (!h->closing && (msg = curl_multi_info_read(h->multi, &left)) != NULL) {
        relay_push_http_xfer_t *x = NULL;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(h->multi, easy);
        relay_push_http__unlink(h, x);
        relay_push_http__finish(h, x, result, NULL);
        relay_push_http__start_waiting(h);
    }
}

static void relay_push_http__on_poll(uv_poll_t *handle, int status, int events)
{
    relay_push_http_sock_t *sk = handle->data;
    relay_push_http_t *h = sk->h;
    int flags = 0, running;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    curl_multi_socket_action(h->multi, sk->fd, flags, &running);
    relay_push_http__check_done(h);
}

static void relay_push_http__on_timeout(uv_timer_t *timer)
{
    relay_push_http_t *h = timer->data;
    int running;
    curl_multi_socket_action(h->multi, CURL_SOCKET_TIMEOUT, 0, &running);
    relay_push_http__check_done(h);
}

/* CURLMOPT_TIMERFUNCTION: only (re)arms the uv timer; curl runs from the loop, never from inside itself. */
static int relay_push_http__on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    relay_push_http_t *h = userp;
    if (h->closing)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, relay_push_http__on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

/* CURLMOPT_SOCKETFUNCTION: what curl wants to hear about a socket. */
static int relay_push_http__on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    relay_push_http_t *h = userp;
    relay_push_http_sock_t *sk = socketp;
    int events = 0;

    if (what == CURL_POLL_REMOVE) {
        if (sk != NULL && !uv_is_closing((uv_handle_t *)&sk->poll))
            relay_push_http__sock_close(sk);
        return 0;
    }
    if (h->closing)
        return 0;
    if (sk == NULL) {
        if ((sk = calloc(1, sizeof(*sk))) == NULL)
            return -1;
        if (uv_poll_init_socket(h->loop, &sk->poll, fd) != 0) {
            free(sk);
            return -1;
        }
        sk->fd = fd;
        sk->h = h;
        sk->poll.data = sk;
        if ((sk->next = h->socks) != NULL)
            sk->next->prev = sk;
        h->socks = sk;
        curl_multi_assign(h->multi, fd, sk);
    }
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    return uv_poll_start(&sk->poll, events, relay_push_http__on_poll) == 0 ? 0 : -1;
}

int relay_push_http_new(relay_push_http_t **out, uv_loop_t *loop)
{
    relay_push_http_t *h;
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cr_error_set(CR_ERR, NULL, "push http: curl_global_init failed");
        return -1;
    }
    if ((h = calloc(1, sizeof(*h))) == NULL) {
        curl_global_cleanup();
        cr_error_set(CR_ENOMEM, NULL, "push http: out of memory");
        return -1;
    }
    h->loop = loop;
    h->connect_ms = RELAY_PUSH_HTTP_CONNECT_TIMEOUT_MS;
    h->total_ms = RELAY_PUSH_HTTP_TIMEOUT_MS;
    h->max_active = RELAY_PUSH_HTTP_ACTIVE_MAX;
    if ((h->multi = curl_multi_init()) == NULL || uv_timer_init(loop, &h->timer) != 0) {
        if (h->multi != NULL)
            curl_multi_cleanup(h->multi);
        free(h);
        curl_global_cleanup();
        cr_error_set(CR_ERR, NULL, "push http: cannot make the curl multi handle or the timer");
        return -1;
    }
    h->timer.data = h;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, relay_push_http__on_curl_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, relay_push_http__on_curl_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, RELAY_PUSH_HTTP_HOST_CONNECTIONS);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, RELAY_PUSH_HTTP_STREAMS);
    *out = h;
    return 0;
}

void relay_push_http_set_timeouts(relay_push_http_t *h, long connect_ms, long total_ms)
{
    if (connect_ms > 0)
        h->connect_ms = connect_ms;
    if (total_ms > 0)
        h->total_ms = total_ms;
}

void relay_push_http_set_max_active(relay_push_http_t *h, size_t n)
{
    h->max_active = n > 0 ? n : 1;
}

/* Whether the request names a header (case-insensitive), e.g. "content-type". */
static int relay_push_http__has_header(const relay_push_req_t *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->nheaders; ++i)
        if (req->headers[i] != NULL && strncasecmp(req->headers[i], name, n) == 0 && req->headers[i][n] == ':')
            return 1;
    return 0;
}

/* Sets the easy handle up for x->req. Returns 0 or -1. */
static int relay_push_http__prepare(relay_push_http_t *h, relay_push_http_xfer_t *x)
{
    CURL *e = x->easy;
    const relay_push_req_t *req = &x->req;
    const char *method = req->method != NULL ? req->method : req->body.len > 0 ? "POST" : "GET";
    int has_body = strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0;
    struct curl_slist *l;

    for (size_t i = 0; i < req->nheaders; ++i) {
        if (req->headers[i] == NULL)
            continue;
        if ((l = curl_slist_append(x->headers, req->headers[i])) == NULL)
            return -1;
        x->headers = l;
    }
    if (has_body) {
        /* no 100-continue round trip, and no made-up form content type */
        if ((l = curl_slist_append(x->headers, "Expect:")) == NULL)
            return -1;
        x->headers = l;
        if (!relay_push_http__has_header(req, "content-type")) {
            if ((l = curl_slist_append(x->headers, "Content-Type:")) == NULL)
                return -1;
            x->headers = l;
        }
    }
    x->errbuf[0] = '\0';
    x->retry_after_ms = -1;
    x->apns_id[0] = '\0';
    x->body.len = 0;
    if (x->body.limit == 0)
        cr_buf_init(&x->body, RELAY_PUSH_ANSWER_MAX);

    if (curl_easy_setopt(e, CURLOPT_URL, req->url) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK)
        return -1;
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, h->connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, h->total_ms);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 60L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 30L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, relay_push_http__on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, relay_push_http__on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, relay_push_http__on_closesocket);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETDATA, h);
    curl_easy_setopt(e, CURLOPT_HTTPHEADER, x->headers);
    if (req->ca_file != NULL) {
        if (curl_easy_setopt(e, CURLOPT_CAINFO, req->ca_file) != CURLE_OK)
            return -1;
        curl_easy_setopt(e, CURLOPT_CAPATH, NULL);
    }
    if (strcmp(method, "GET") == 0) {
        curl_easy_setopt(e, CURLOPT_HTTPGET, 1L);
    } else if (strcmp(method, "HEAD") == 0) {
        curl_easy_setopt(e, CURLOPT_NOBODY, 1L);
    } else {
        curl_easy_setopt(e, CURLOPT_POSTFIELDSIZE_LARGE, (curl_off_t)req->body.len);
        curl_easy_setopt(e, CURLOPT_POSTFIELDS, req->body.base != NULL ? req->body.base : "");
        if (strcmp(method, "POST") != 0 && curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, method) != CURLE_OK)
            return -1;
    }
    return 0;
}

int relay_push_http_send(relay_push_http_t *h, relay_push_req_t *req, relay_push_http_cb cb, void *data)
{
    relay_push_http_xfer_t *x;
    int start_now = h->ninflight < h->max_active && h->nwaiting == 0; /* else wait in line, in order */

    if (h->closing) {
        cr_error_set(CR_ERR, NULL, "push http: the client is closing");
        return -1;
    }
    if ((x = h->idle) != NULL) {
        h->idle = x->next;
        --h->nidle;
        x->next = NULL;
    } else {
        if ((x = calloc(1, sizeof(*x))) == NULL || (x->easy = curl_easy_init()) == NULL) {
            free(x);
            cr_error_set(CR_ENOMEM, NULL, "push http: cannot make an easy handle");
            return -1;
        }
        x->h = h;
    }
    x->req = *req; /* now owned by x, given back on failure */
    memset(req, 0, sizeof(*req));
    x->cb = cb;
    x->data = data;
    if (relay_push_http__prepare(h, x) != 0 ||
        (start_now && curl_multi_add_handle(h->multi, x->easy) != CURLM_OK)) {
        *req = x->req;
        memset(&x->req, 0, sizeof(x->req));
        relay_push_http__xfer_recycle(h, x);
        cr_error_set(CR_ENOMEM, NULL, "push http: cannot set the request up");
        return -1;
    }
    x->prev = NULL;
    if (start_now) {
        if ((x->next = h->inflight) != NULL)
            x->next->prev = x;
        h->inflight = x;
        ++h->ninflight;
    } else { /* the places are taken: wait in line, without curl's pending list to go through on every event */
        x->next = NULL;
        if (h->waiting_tail != NULL)
            h->waiting_tail->next = x;
        else
            h->waiting = x;
        h->waiting_tail = x;
        ++h->nwaiting;
    }
    return 0;
}

size_t relay_push_http_inflight(const relay_push_http_t *h)
{
    return h->ninflight + h->nwaiting;
}

uint64_t relay_push_http_connects(const relay_push_http_t *h)
{
    return h->connects;
}

void relay_push_http_close(relay_push_http_t *h, void (*on_closed)(void *data), void *data)
{
    relay_push_http_xfer_t *x;

    if (h->closing)
        return;
    h->closing = 1;
    h->on_closed = on_closed;
    h->closed_data = data;
    while ((x = h->inflight) != NULL) {
        curl_multi_remove_handle(h->multi, x->easy);
        relay_push_http__unlink(h, x);
        relay_push_http__finish(h, x, CURLE_ABORTED_BY_CALLBACK, "shutdown");
    }
    while ((x = h->waiting) != NULL) {
        if ((h->waiting = x->next) == NULL)
            h->waiting_tail = NULL;
        --h->nwaiting;
        x->next = NULL;
        relay_push_http__finish(h, x, CURLE_ABORTED_BY_CALLBACK, "shutdown");
    }
    while ((x = h->idle) != NULL) {
        h->idle = x->next;
        relay_push_http__xfer_destroy(x);
    }
    h->nidle = 0;
    curl_multi_cleanup(h->multi); /* closes the connections: REMOVE / closesocket callbacks close their polls */
    h->multi = NULL;
    while (h->socks != NULL)
        relay_push_http__sock_close(h->socks);
    ++h->closes_pending;
    uv_close((uv_handle_t *)&h->timer, relay_push_http__on_timer_closed);
}
