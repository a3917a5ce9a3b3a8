/* http.c — the shared HTTP client: libcurl's multi interface driven by the libuv loop (one uv_poll_t per socket curl
 * watches, one uv_timer_t for curl's timeout), HTTP/2 multiplexing over one connection per origin, easy handles
 * reused from a free list, buffered or streamed answers. */
#include "corral/http.h"
#include "corral/error.h"
#include <curl/curl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>
#include <unistd.h>

/* One socket curl asked us to watch. Freed by the uv_close callback, never before. */
typedef struct st_cr_http_sock_t {
    uv_poll_t poll;
    curl_socket_t fd;
    int events; /* what the poll handle watches now (0: not started) */
    int corked;  /* TCP_CORK is on: curl runs (cr_http__run) */
    int no_cork; /* not a TCP socket (TCP_CORK refused) */
    cr_http_t *h;
    struct st_cr_http_sock_t *prev, *next; /* in h->socks while watched */
} cr_http_sock_t;

/* One request: an easy handle and what it needs while in flight. Kept on h->idle between requests. */
typedef struct st_cr_http_xfer_t {
    cr_http_t *h;
    CURL *easy;
    struct st_cr_http_xfer_t *prev, *next; /* in h->inflight; or h->waiting or h->idle (next only) */
    cr_http_req_t req;                          /* moved from the caller */
    struct curl_slist *headers;
    cr_http_cb cb;
    void *data;
    cr_buf_t body;                                 /* the answer's body, at most req.body_max */
    int64_t retry_after_ms;
    char kept[64];
    uint64_t id;                                   /* for cr_http_cancel */
    int aborted;                                   /* on_data asked to stop */
    char errbuf[CURL_ERROR_SIZE];
} cr_http_xfer_t;

struct st_cr_http_t {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer;
    cr_http_xfer_t *inflight; /* handed to curl */
    size_t ninflight;
    cr_http_xfer_t *waiting, *waiting_tail; /* prepared, waiting for one of max_active places */
    size_t nwaiting, max_active;
    cr_http_xfer_t *idle;
    size_t nidle;
    cr_http_sock_t *socks;
    long connect_ms, total_ms, host_connections;
    uint64_t connects, next_id;
    int closing;
    int in_curl;        /* inside curl_multi_socket_action: its callbacks (on_data, ...) may not add handles */
    int closes_pending; /* uv handles closing whose callback has not run */
    void (*on_closed)(void *data);
    void *closed_data;
};

static void cr_http__maybe_free(cr_http_t *h)
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

static void cr_http__on_sock_closed(uv_handle_t *handle)
{
    cr_http_sock_t *sk = handle->data;
    cr_http_t *h = sk->h;
    free(sk);
    --h->closes_pending;
    cr_http__maybe_free(h);
}

static void cr_http__uncork(cr_http_sock_t *sk);

/* Stops watching a socket before curl closes it, or when curl keeps its connection idle: uv_close takes the fd out of
 * epoll at once; what curl wrote to it leaves now. */
static void cr_http__sock_close(cr_http_sock_t *sk)
{
    cr_http_t *h = sk->h;
    cr_http__uncork(sk);
    if (sk->prev != NULL)
        sk->prev->next = sk->next;
    else
        h->socks = sk->next;
    if (sk->next != NULL)
        sk->next->prev = sk->prev;
    sk->prev = sk->next = NULL;
    ++h->closes_pending;
    uv_close((uv_handle_t *)&sk->poll, cr_http__on_sock_closed);
}

static void cr_http__on_timer_closed(uv_handle_t *handle)
{
    cr_http_t *h = handle->data;
    --h->closes_pending;
    cr_http__maybe_free(h);
}

/* Wall-clock unix time in milliseconds (Retry-After dates are absolute). */
static int64_t cr_http__now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

int64_t cr_http__retry_after_ms(const char *value, size_t len, int64_t now_ms)
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
            if (s * 1000 >= CR_HTTP_RETRY_AFTER_MAX_MS)
                return CR_HTTP_RETRY_AFTER_MAX_MS;
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
    return ms < 0 ? 0 : ms > CR_HTTP_RETRY_AFTER_MAX_MS ? CR_HTTP_RETRY_AFTER_MAX_MS : ms;
}

static size_t cr_http__on_body(char *ptr, size_t size, size_t nmemb, void *userdata)
{
    cr_http_xfer_t *x = userdata;
    size_t n = size * nmemb, max = x->req.body_max > 0 ? x->req.body_max : CR_HTTP_ANSWER_MAX, room;
    if (x->req.on_data != NULL) {
        long code = 0;
        curl_easy_getinfo(x->easy, CURLINFO_RESPONSE_CODE, &code);
        if (code >= 200 && code < 300) {
            if (x->req.on_data(ptr, n, x->data) != 0) {
                x->aborted = 1;
                return 0; /* CURLE_WRITE_ERROR ends the request */
            }
            return n;
        }
    }
    room = max > x->body.len ? max - x->body.len : 0;
    if (room > 0 && cr_buf_append(&x->body, ptr, n < room ? n : room) != 0)
        return 0; /* out of memory: fail the request */
    return n;     /* what does not fit is dropped */
}

void cr_http_req_free(cr_http_req_t *req)
{
    for (size_t i = 0; i < req->nheaders && i < CR_HTTP_HEADERS_MAX; ++i) {
        if (req->headers[i] != NULL) {
            sodium_memzero(req->headers[i], strlen(req->headers[i])); /* authorization carries a credential */
            free(req->headers[i]);
        }
        req->headers[i] = NULL;
    }
    req->nheaders = 0;
    if (req->body.base != NULL)
        sodium_memzero(req->body.base, req->body.len); /* a body may carry a credential (an OAuth assertion) */
    cr_buf_free(&req->body);
}

int cr_http_req_header(cr_http_req_t *req, const char *name, const char *value)
{
    size_t nlen = strlen(name), vlen = strlen(value);
    char *hv;
    if (req->nheaders >= CR_HTTP_HEADERS_MAX || strpbrk(name, "\r\n:") != NULL || strpbrk(value, "\r\n") != NULL)
        return -1;
    if ((hv = malloc(nlen + vlen + 3)) == NULL)
        return -1;
    memcpy(hv, name, nlen);
    memcpy(hv + nlen, ": ", 2);
    memcpy(hv + nlen + 2, value, vlen + 1);
    req->headers[req->nheaders++] = hv;
    return 0;
}

/* Matches a header line "name: value" by name (any case); points value and vlen at the value, untrimmed. */
static int cr_http__header_is(const char *line, size_t len, const char *name, const char **value, size_t *vlen)
{
    size_t n = strlen(name);
    if (len <= n || line[n] != ':' || strncasecmp(line, name, n) != 0)
        return 0;
    *value = line + n + 1;
    *vlen = len - n - 1;
    return 1;
}

static size_t cr_http__on_header(char *line, size_t size, size_t nmemb, void *userdata)
{
    cr_http_xfer_t *x = userdata;
    size_t len = size * nmemb, vlen;
    const char *v;
    if (len >= 5 && memcmp(line, "HTTP/", 5) == 0) { /* a new response (after a 1xx): forget the last one's */
        x->retry_after_ms = -1;
        x->kept[0] = '\0';
        x->body.len = 0;
    } else if (cr_http__header_is(line, len, "retry-after", &v, &vlen)) {
        x->retry_after_ms = cr_http__retry_after_ms(v, vlen, cr_http__now_ms());
    } else if (x->req.keep_header != NULL && cr_http__header_is(line, len, x->req.keep_header, &v, &vlen)) {
        while (vlen > 0 && (*v == ' ' || *v == '\t'))
            ++v, --vlen;
        while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == '\n' || v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
            --vlen;
        if (vlen >= sizeof(x->kept))
            vlen = sizeof(x->kept) - 1;
        memcpy(x->kept, v, vlen);
        x->kept[vlen] = '\0';
    }
    return len;
}

/* curl closes a socket: make sure uv no longer polls it (the REMOVE callback normally did that already). */
static int cr_http__on_closesocket(void *clientp, curl_socket_t fd)
{
    cr_http_t *h = clientp;
    for (cr_http_sock_t *sk = h->socks; sk != NULL; sk = sk->next)
        if (sk->fd == fd) {
            cr_http__sock_close(sk);
            break;
        }
    return close(fd);
}

/* Frees our copy of the request's headers, wiped first: authorization carries a credential. */
static void cr_http__free_headers(cr_http_xfer_t *x)
{
    for (struct curl_slist *l = x->headers; l != NULL; l = l->next)
        sodium_memzero(l->data, strlen(l->data));
    curl_slist_free_all(x->headers);
    x->headers = NULL;
}

static void cr_http__xfer_destroy(cr_http_xfer_t *x)
{
    cr_http_req_free(&x->req);
    cr_http__free_headers(x);
    cr_buf_free(&x->body);
    curl_easy_cleanup(x->easy);
    free(x);
}

/* Frees what the finished request held and keeps its easy handle for the next one (or frees it). */
static void cr_http__xfer_recycle(cr_http_t *h, cr_http_xfer_t *x)
{
    if (h->closing || h->nidle >= CR_HTTP_IDLE_MAX) {
        cr_http__xfer_destroy(x);
        return;
    }
    cr_http_req_free(&x->req);
    memset(&x->req, 0, sizeof(x->req));
    cr_http__free_headers(x);
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

static void cr_http__unlink(cr_http_t *h, cr_http_xfer_t *x)
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
static void cr_http__finish(cr_http_t *h, cr_http_xfer_t *x, CURLcode result, const char *error)
{
    cr_http_answer_t a;
    long code = 0, version = 0, port = 0, connects = 0;

    memset(&a, 0, sizeof(a));
    a.retry_after_ms = x->retry_after_ms;
    memcpy(a.kept, x->kept, sizeof(a.kept));
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
        } else if (x->aborted) {
            a.error = "aborted";
        } else {
            a.error = x->errbuf[0] != '\0' ? x->errbuf : curl_easy_strerror(result);
        }
    } else {
        a.error = error;
    }
    if (a.status == 0) {
        a.retry_after_ms = -1;
        a.kept[0] = '\0';
    }
    x->cb(&a, x->data);
    cr_http__xfer_recycle(h, x);
}

/* Hands waiting requests to curl while there is room. A request curl refuses is answered with an error. */
static void cr_http__start_waiting(cr_http_t *h)
{
    cr_http_xfer_t *x;
    while (!h->closing && h->ninflight < h->max_active && (x = h->waiting) != NULL) {
        if ((h->waiting = x->next) == NULL)
            h->waiting_tail = NULL;
        --h->nwaiting;
        x->next = NULL;
        if (curl_multi_add_handle(h->multi, x->easy) != CURLM_OK) {
            cr_http__finish(h, x, CURLE_OUT_OF_MEMORY, "cannot start the request");
            continue;
        }
        if ((x->next = h->inflight) != NULL)
            x->next->prev = x;
        h->inflight = x;
        ++h->ninflight;
    }
}

/* Collects every finished request after curl ran; stops as soon as a cb closed the client. */
static void cr_http__check_done(cr_http_t *h)
{
    CURLMsg *msg;
    int left;
    while (!h->closing && (msg = curl_multi_info_read(h->multi, &left)) != NULL) {
        cr_http_xfer_t *x = NULL;
        CURL *easy = msg->easy_handle;
        CURLcode result = msg->data.result;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(easy, CURLINFO_PRIVATE, (char **)&x);
        curl_multi_remove_handle(h->multi, easy);
        cr_http__unlink(h, x);
        cr_http__finish(h, x, result, NULL);
        cr_http__start_waiting(h);
    }
}

/* Sets TCP_CORK on a socket or clears it (sending what it held). Returns 0, or -1 (not TCP, or no TCP_CORK here). */
static int cr_http__set_cork(curl_socket_t fd, int on)
{
#ifdef TCP_CORK
    return setsockopt(fd, IPPROTO_TCP, TCP_CORK, &on, sizeof(on));
#else
    (void)fd;
    (void)on;
    return -1;
#endif
}

/* Sends what curl wrote to a corked socket (cr_http__run). */
static void cr_http__uncork(cr_http_sock_t *sk)
{
    if (sk->corked) {
        sk->corked = 0;
        (void)cr_http__set_cork(sk->fd, 0);
    }
}

/* Runs curl on a socket's events (fd) or on its timeout (CURL_SOCKET_TIMEOUT), with TCP_CORK on the sockets it
 * watches. libcurl 7.88 writes every HTTP/2 frame as a TLS record with a send() of its own — per request HEADERS, DATA
 * and, once the answer is in, a RST_STREAM for the stream already closed — and one run starts and answers dozens of
 * streams: corked, what it wrote leaves in a few full segments when it returns (or when it stops watching a socket),
 * not in three packets per request that each go the whole way through TCP/IP (on loopback, the receiver's half too).
 * Nothing waits: uncorking sends at once. */
static void cr_http__run(cr_http_t *h, curl_socket_t fd, int flags)
{
    int running;
    for (cr_http_sock_t *sk = h->socks; sk != NULL; sk = sk->next)
        if (!sk->no_cork) {
            if (cr_http__set_cork(sk->fd, 1) == 0)
                sk->corked = 1;
            else
                sk->no_cork = 1; /* not TCP */
        }
    ++h->in_curl;
    curl_multi_socket_action(h->multi, fd, flags, &running);
    --h->in_curl;
    for (cr_http_sock_t *sk = h->socks; sk != NULL; sk = sk->next)
        cr_http__uncork(sk);
}

static void cr_http__on_poll(uv_poll_t *handle, int status, int events)
{
    cr_http_sock_t *sk = handle->data;
    cr_http_t *h = sk->h;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    cr_http__run(h, sk->fd, flags);
    cr_http__check_done(h);
    cr_http__start_waiting(h); /* what a streaming callback sent while curl ran */
}

static void cr_http__on_timeout(uv_timer_t *timer)
{
    cr_http_t *h = timer->data;
    cr_http__run(h, CURL_SOCKET_TIMEOUT, 0);
    cr_http__check_done(h);
    cr_http__start_waiting(h); /* what a streaming callback sent while curl ran */
}

/* CURLMOPT_TIMERFUNCTION: only (re)arms the uv timer; curl runs from the loop, never from inside itself. */
static int cr_http__on_curl_timer(CURLM *multi, long timeout_ms, void *userp)
{
    cr_http_t *h = userp;
    if (h->closing)
        return 0;
    if (timeout_ms < 0)
        uv_timer_stop(&h->timer);
    else
        uv_timer_start(&h->timer, cr_http__on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

/* CURLMOPT_SOCKETFUNCTION: what curl wants to hear about a socket. */
static int cr_http__on_curl_socket(CURL *easy, curl_socket_t fd, int what, void *userp, void *socketp)
{
    cr_http_t *h = userp;
    cr_http_sock_t *sk = socketp;
    int events = 0;

    if (what == CURL_POLL_REMOVE) {
        if (sk != NULL && !uv_is_closing((uv_handle_t *)&sk->poll))
            cr_http__sock_close(sk);
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
    if (events == sk->events)
        return 0; /* uv_poll_start stops and starts the watch again: an epoll_ctl for nothing */
    sk->events = events;
    return uv_poll_start(&sk->poll, events, cr_http__on_poll) == 0 ? 0 : -1;
}

int cr_http_new(cr_http_t **out, uv_loop_t *loop)
{
    cr_http_t *h;
    *out = NULL;
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cr_error_set(CR_ERR, NULL, "http: curl_global_init failed");
        return -1;
    }
    if ((h = calloc(1, sizeof(*h))) == NULL) {
        curl_global_cleanup();
        cr_error_set(CR_ENOMEM, NULL, "http: out of memory");
        return -1;
    }
    h->loop = loop;
    h->connect_ms = CR_HTTP_CONNECT_TIMEOUT_MS;
    h->total_ms = CR_HTTP_TIMEOUT_MS;
    h->max_active = CR_HTTP_ACTIVE_MAX;
    h->host_connections = CR_HTTP_HOST_CONNECTIONS;
    if ((h->multi = curl_multi_init()) == NULL || uv_timer_init(loop, &h->timer) != 0) {
        if (h->multi != NULL)
            curl_multi_cleanup(h->multi);
        free(h);
        curl_global_cleanup();
        cr_error_set(CR_ERR, NULL, "http: cannot make the curl multi handle or the timer");
        return -1;
    }
    h->timer.data = h;
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETFUNCTION, cr_http__on_curl_socket);
    curl_multi_setopt(h->multi, CURLMOPT_SOCKETDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERFUNCTION, cr_http__on_curl_timer);
    curl_multi_setopt(h->multi, CURLMOPT_TIMERDATA, h);
    curl_multi_setopt(h->multi, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, h->host_connections);
    curl_multi_setopt(h->multi, CURLMOPT_MAX_CONCURRENT_STREAMS, CR_HTTP_STREAMS);
    *out = h;
    return 0;
}

void cr_http_set_timeouts(cr_http_t *h, long connect_ms, long total_ms)
{
    if (connect_ms > 0)
        h->connect_ms = connect_ms;
    if (total_ms > 0)
        h->total_ms = total_ms;
}

void cr_http_set_max_active(cr_http_t *h, size_t n)
{
    h->max_active = n > 0 ? n : 1;
}

void cr_http_set_host_connections(cr_http_t *h, long n)
{
    h->host_connections = n > 0 ? n : 1;
    curl_multi_setopt(h->multi, CURLMOPT_MAX_HOST_CONNECTIONS, h->host_connections);
}

/* Whether the request names a header (case-insensitive), e.g. "content-type". */
static int cr_http__has_header(const cr_http_req_t *req, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < req->nheaders; ++i)
        if (req->headers[i] != NULL && strncasecmp(req->headers[i], name, n) == 0 && req->headers[i][n] == ':')
            return 1;
    return 0;
}

/* Sets the easy handle up for x->req. Returns 0 or -1. */
static int cr_http__prepare(cr_http_t *h, cr_http_xfer_t *x)
{
    CURL *e = x->easy;
    const cr_http_req_t *req = &x->req;
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
        if (!cr_http__has_header(req, "content-type")) {
            if ((l = curl_slist_append(x->headers, "Content-Type:")) == NULL)
                return -1;
            x->headers = l;
        }
    }
    x->errbuf[0] = '\0';
    x->retry_after_ms = -1;
    x->kept[0] = '\0';
    x->aborted = 0;
    x->body.len = 0;
    {
        size_t max = req->body_max > 0 ? req->body_max : CR_HTTP_ANSWER_MAX;
        if (x->body.limit != max) {
            cr_buf_free(&x->body);
            cr_buf_init(&x->body, max);
        }
    }

    if (curl_easy_setopt(e, CURLOPT_URL, req->url) != CURLE_OK ||
        curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK)
        return -1;
    curl_easy_setopt(e, CURLOPT_PRIVATE, (char *)x);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2TLS);
    /* wait for a connection being made to learn whether it multiplexes: only HTTPS can (ALPN); plain http:// is
     * HTTP/1.1, where a waiting request would sit behind a never-ending response */
    curl_easy_setopt(e, CURLOPT_PIPEWAIT, strncasecmp(req->url, "https://", 8) == 0 ? 1L : 0L);
    curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, req->connect_ms > 0 ? req->connect_ms : h->connect_ms);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, req->total_ms < 0 ? 0L : req->total_ms > 0 ? req->total_ms : h->total_ms);
    if (req->idle_ms > 0) { /* under 1 byte/s for idle_ms (curl counts whole seconds) */
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L);
        curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, (req->idle_ms + 999) / 1000);
    }
    curl_easy_setopt(e, CURLOPT_TCP_KEEPALIVE, 1L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPIDLE, 60L);
    curl_easy_setopt(e, CURLOPT_TCP_KEEPINTVL, 30L);
    curl_easy_setopt(e, CURLOPT_ERRORBUFFER, x->errbuf);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, cr_http__on_body);
    curl_easy_setopt(e, CURLOPT_WRITEDATA, x);
    curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, cr_http__on_header);
    curl_easy_setopt(e, CURLOPT_HEADERDATA, x);
    curl_easy_setopt(e, CURLOPT_CLOSESOCKETFUNCTION, cr_http__on_closesocket);
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

int cr_http_send(cr_http_t *h, cr_http_req_t *req, cr_http_cb cb, void *data, uint64_t *out_id)
{
    cr_http_xfer_t *x;
    /* else wait in line, in order; from inside curl (a streaming callback) always: curl refuses nested calls, and
     * the request starts as soon as curl returns */
    int start_now = !h->in_curl && h->ninflight < h->max_active && h->nwaiting == 0;

    if (h->closing) {
        cr_error_set(CR_ERR, NULL, "http: the client is closing");
        return -1;
    }
    if ((x = h->idle) != NULL) {
        h->idle = x->next;
        --h->nidle;
        x->next = NULL;
    } else {
        if ((x = calloc(1, sizeof(*x))) == NULL || (x->easy = curl_easy_init()) == NULL) {
            free(x);
            cr_error_set(CR_ENOMEM, NULL, "http: cannot make an easy handle");
            return -1;
        }
        x->h = h;
    }
    x->req = *req; /* now owned by x, given back on failure */
    memset(req, 0, sizeof(*req));
    x->cb = cb;
    x->data = data;
    x->id = ++h->next_id;
    if (cr_http__prepare(h, x) != 0 ||
        (start_now && curl_multi_add_handle(h->multi, x->easy) != CURLM_OK)) {
        *req = x->req;
        memset(&x->req, 0, sizeof(x->req));
        cr_http__xfer_recycle(h, x);
        cr_error_set(CR_ENOMEM, NULL, "http: cannot set the request up");
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
    if (out_id != NULL)
        *out_id = x->id;
    return 0;
}

int cr_http_cancel(cr_http_t *h, uint64_t id)
{
    cr_http_xfer_t *x, *prev = NULL;
    if (h->closing)
        return CR_ENOTFOUND;
    for (x = h->inflight; x != NULL; x = x->next)
        if (x->id == id) {
            curl_multi_remove_handle(h->multi, x->easy);
            cr_http__unlink(h, x);
            cr_http__finish(h, x, CURLE_ABORTED_BY_CALLBACK, "cancelled");
            cr_http__start_waiting(h);
            return 0;
        }
    for (x = h->waiting; x != NULL; prev = x, x = x->next)
        if (x->id == id) {
            if (prev != NULL)
                prev->next = x->next;
            else
                h->waiting = x->next;
            if (h->waiting_tail == x)
                h->waiting_tail = prev;
            --h->nwaiting;
            x->next = NULL;
            cr_http__finish(h, x, CURLE_ABORTED_BY_CALLBACK, "cancelled");
            return 0;
        }
    return CR_ENOTFOUND;
}

size_t cr_http_inflight(const cr_http_t *h)
{
    return h->ninflight + h->nwaiting;
}

uint64_t cr_http_connects(const cr_http_t *h)
{
    return h->connects;
}

void cr_http_close(cr_http_t *h, void (*on_closed)(void *data), void *data)
{
    cr_http_xfer_t *x;

    if (h->closing)
        return;
    h->closing = 1;
    h->on_closed = on_closed;
    h->closed_data = data;
    while ((x = h->inflight) != NULL) {
        curl_multi_remove_handle(h->multi, x->easy);
        cr_http__unlink(h, x);
        cr_http__finish(h, x, CURLE_ABORTED_BY_CALLBACK, "shutdown");
    }
    while ((x = h->waiting) != NULL) {
        if ((h->waiting = x->next) == NULL)
            h->waiting_tail = NULL;
        --h->nwaiting;
        x->next = NULL;
        cr_http__finish(h, x, CURLE_ABORTED_BY_CALLBACK, "shutdown");
    }
    while ((x = h->idle) != NULL) {
        h->idle = x->next;
        cr_http__xfer_destroy(x);
    }
    h->nidle = 0;
    curl_multi_cleanup(h->multi); /* closes the connections: REMOVE / closesocket callbacks close their polls */
    h->multi = NULL;
    while (h->socks != NULL)
        cr_http__sock_close(h->socks);
    ++h->closes_pending;
    uv_close((uv_handle_t *)&h->timer, cr_http__on_timer_closed);
}
