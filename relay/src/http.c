/* http.c — the relay's HTTP side: h2o on the libuv loop (HTTP/1.1, h2c, TLS with ALPN h2), routing, authentication,
 * body decoding, responses in JSON or msgpack, and graceful shutdown. */
#include "relay.h"
#include "identity.h"
#include "corral/query.h"
#include "push_queue.h"
#include "auth.h"
#include "corral/error.h"
#include "corral/json.h"
#include "corral/log.h"
#include "corral/mp.h"
#include "corral/ulid.h"
#include <h2o/socket/uv-binding.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const relay_error_codes[] = {"other", "bad_request", "unauthorized", "forbidden", "not_found",
                                         "method_not_allowed", "unsupported_media_type", "too_large", "rate_limited",
                                         "unavailable", "internal", "truncated", "trailing_bytes", "bad_msgpack",
                                         "bad_encoding", "bad_json", "too_deep", "unsupported_version", "bad_envelope",
                                         "bad_body", "unknown_kind", "bad_seal", "conflict", NULL};

size_t relay_error_index(const char *code)
{
    for (size_t i = 1; relay_error_codes[i] != NULL; ++i)
        if (strcmp(relay_error_codes[i], code) == 0)
            return i;
    return 0;
}

/* Lives in the h2o request's pool; tells rr when the request is gone. */
struct st_relay_req_guard_t {
    relay_req_t *rr;
};

static void on_guard_dispose(void *p)
{
    struct st_relay_req_guard_t *g = p;
    if (g->rr != NULL) {
        g->rr->req = NULL;
        g->rr->guard = NULL;
    }
}

static void detach(relay_req_t *rr)
{
    if (rr->guard != NULL) {
        rr->guard->rr = NULL;
        rr->guard = NULL;
    }
}

void relay_req_release(relay_req_t *rr)
{
    --rr->relay->inflight;
    detach(rr);
    cr_buf_free(&rr->body);
    free(rr);
}

/* ---- responses ----------------------------------------------------------------------------------------------- */

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 204: return "No Content";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 408: return "Request Timeout";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 415: return "Unsupported Media Type";
    case 429: return "Too Many Requests";
    case 503: return "Service Unavailable";
    default: return status >= 500 ? "Internal Server Error" : "OK";
    }
}

static void send_bytes(relay_req_t *rr, int status, const char *ctype, const char *body, size_t len, const char *retry_after)
{
    h2o_req_t *req = rr->req;
    relay_req_release(rr); /* detaches first: the send below may end the request */
    if (req == NULL)
        return;
    req->res.status = status;
    req->res.reason = reason_of(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype, strlen(ctype));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    if (retry_after != NULL)
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, retry_after, strlen(retry_after));
    h2o_send_inline(req, body, len);
}

void relay_respond(relay_req_t *rr, int status, const char *mp, size_t len)
{
    cr_buf_t json;
    cr_limits_t lim = rr->relay->limits;
    if (rr->req == NULL || rr->want_msgpack) {
        send_bytes(rr, status, "application/msgpack", mp, len, NULL);
        return;
    }
    /* our own answers wrap whole envelopes ({"events": [{"e": envelope}]}): allow for the levels above them */
    lim.max_depth += 4;
    cr_buf_init(&json, 64 << 20);
    if (cr_json_from_msgpack(&json, mp, len, &lim) != 0) {
        cr_log(CR_LOG_ERROR, "cannot render a response as JSON: %s", cr_error_last()->message);
        cr_buf_free(&json);
        relay_respond_error(rr, 500, "internal", NULL, "the response could not be rendered as JSON");
        return;
    }
    send_bytes(rr, status, "application/json", json.base, json.len, NULL);
    cr_buf_free(&json);
}

static void respond_error_v(relay_req_t *rr, int status, const char *code, const char *field, const char *retry_after,
                            const char *fmt, va_list ap)
{
    char msg[512];
    cr_buf_t b;
    vsnprintf(msg, sizeof(msg), fmt, ap);
    ++rr->relay->metrics.errors[relay_error_index(code)];
    if (rr->req != NULL)
        cr_log(CR_LOG_DEBUG, "%s %.*s -> %d %s: %s", rr->route != NULL ? rr->route->name : "-", (int)rr->req->path.len,
               rr->req->path.base, status, code, msg);
    cr_buf_init(&b, 4096);
    cr_mpw_error_doc(&b, code, field, msg, 255); /* our own text: ASCII */
    if (retry_after != NULL) {
        cr_buf_t json;
        cr_buf_init(&json, 8192);
        if (rr->want_msgpack || cr_json_from_msgpack(&json, b.base, b.len, NULL) != 0)
            send_bytes(rr, status, "application/msgpack", b.base, b.len, retry_after);
        else
            send_bytes(rr, status, "application/json", json.base, json.len, retry_after);
        cr_buf_free(&json);
    } else {
        relay_respond(rr, status, b.base, b.len);
    }
    cr_buf_free(&b);
}

void relay_respond_error(relay_req_t *rr, int status, const char *code, const char *field, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    respond_error_v(rr, status, code, field, NULL, fmt, ap);
    va_end(ap);
}

static void respond_error_retry(relay_req_t *rr, int status, const char *code, const char *retry_after, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    respond_error_v(rr, status, code, NULL, retry_after, fmt, ap);
    va_end(ap);
}

void relay_respond_cr_error(relay_req_t *rr)
{
    const cr_error_t *e = cr_error_last();
    int status = e->code == CR_ETOOLARGE ? 413 : e->code == CR_ENOMEM || e->code == CR_ERR ? 500 : 400;
    relay_respond_error(rr, status, cr_err_code(e->code), e->field, "%s", e->message);
}

void relay_respond_unavailable(relay_req_t *rr)
{
    respond_error_retry(rr, 503, "unavailable", "1", "the relay's storage is unavailable; nothing was stored, try again");
}

/* ---- requests ------------------------------------------------------------------------------------------------ */

const char *relay_query(relay_req_t *rr, const char *name)
{
    h2o_req_t *req = rr->req;
    cr_span_t v;
    if (req == NULL || req->query_at == SIZE_MAX ||
        cr_query_param(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1, name, &v) == 0)
        return NULL;
    return h2o_strdup(&req->pool, v.base, v.len).base;
}

static int header_has(h2o_req_t *req, const h2o_token_t *token, const char *needle)
{
    ssize_t i = h2o_find_header(&req->headers, token, -1);
    if (i < 0)
        return 0;
    h2o_iovec_t v = req->headers.entries[i].value;
    size_t n = strlen(needle);
    for (size_t j = 0; j + n <= v.len; ++j)
        if (strncasecmp(v.base + j, needle, n) == 0)
            return 1;
    return 0;
}

/* Matches a pattern like "/v1/sessions/{}/events" against path, capturing {} segments. */
static int match(const char *pattern, h2o_iovec_t path, h2o_iovec_t *params, size_t *nparams)
{
    const char *p = pattern, *s = path.base, *end = path.base + path.len;
    *nparams = 0;
    while (*p != '\0') {
        if (p[0] == '{' && p[1] == '}') {
            const char *seg = s;
            while (s < end && *s != '/')
                ++s;
            if (s == seg || *nparams == 4)
                return 0;
            params[(*nparams)++] = h2o_iovec_init(seg, (size_t)(s - seg));
            p += 2;
            continue;
        }
        if (s >= end || *s != *p)
            return 0;
        ++s, ++p;
    }
    return s == end;
}

static void run_handler(relay_req_t *rr)
{
    rr->route->fn(rr);
}

static void on_principal(relay_t *relay, relay_req_t *rr, int rc, uint64_t retry_after_ms)
{
    char ra[24];
    switch (rc) {
    case RELAY_AUTH_OK:
        break;
    case RELAY_AUTH_UNAVAILABLE:
        relay_respond_unavailable(rr);
        return;
    case RELAY_AUTH_RATE_LIMITED:
        snprintf(ra, sizeof(ra), "%llu", (unsigned long long)((retry_after_ms + 999) / 1000));
        respond_error_retry(rr, 429, "rate_limited", ra, "too many requests with this token; retry after %s s", ra);
        return;
    default:
        relay_respond_error(rr, 401, "unauthorized", NULL, "a valid bearer token is needed (Authorization: Bearer crt_...)");
        return;
    }
    if (rr->req == NULL) {
        relay_req_release(rr);
        return;
    }
    if ((rr->who.kind & rr->route->kinds) == 0) {
        relay_respond_error(rr, 403, "forbidden", NULL, "a %s token cannot use %s", relay_principal_kind_name(rr->who.kind),
                            rr->route->name);
        return;
    }
    run_handler(rr);
    (void)relay;
}

/* Converts the request body into rr->body (msgpack). Returns 0, or responds with an error and returns -1. */
static int read_body(relay_req_t *rr)
{
    h2o_req_t *req = rr->req;
    if (req->entity.base == NULL || req->entity.len == 0)
        return 0;
    if (rr->route->kinds & RELAY_ROUTE_RAW) {
        cr_buf_init(&rr->body, req->entity.len + 1);
        if (cr_buf_append(&rr->body, req->entity.base, req->entity.len) != 0) {
            relay_respond_cr_error(rr);
            return -1;
        }
    } else if (req->entity.len > rr->relay->limits.max_batch_bytes + cr_limits_max_action(&rr->relay->limits) + 65536) {
        /* h2o's own cap is as large as an inbound mail may be: every other body keeps the protocol's */
        relay_respond_error(rr, 413, "too_large", NULL, "the body is larger than the relay takes (%zu bytes)",
                            rr->relay->limits.max_batch_bytes + cr_limits_max_action(&rr->relay->limits) + 65536);
        return -1;
    } else if (header_has(req, H2O_TOKEN_CONTENT_TYPE, "application/json")) {
        /* a body may wrap envelopes (a batch is an array of them): the decoders check each envelope's own depth */
        cr_limits_t lim = rr->relay->limits;
        lim.max_depth += 4;
        if (cr_json_to_msgpack(&rr->body, req->entity.base, req->entity.len, &lim) != 0) {
            relay_respond_cr_error(rr);
            return -1;
        }
    } else if (header_has(req, H2O_TOKEN_CONTENT_TYPE, "msgpack")) {
        if (cr_buf_append(&rr->body, req->entity.base, req->entity.len) != 0) {
            relay_respond_cr_error(rr);
            return -1;
        }
    } else {
        relay_respond_error(rr, 415, "unsupported_media_type", NULL,
                            "send the body as application/json or application/msgpack");
        return -1;
    }
    return 0;
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    relay_t *relay = *(relay_t **)(self + 1);
    const relay_route_t *route = NULL;
    int path_known = 0;
    h2o_iovec_t params[4];
    size_t nparams = 0;
    relay_req_t *rr;

    ++relay->metrics.requests;
    for (size_t i = 0; i < relay->nroutes; ++i) {
        if (!match(relay->routes[i].pattern, req->path_normalized, params, &nparams))
            continue;
        path_known = 1;
        if (h2o_memis(req->method.base, req->method.len, relay->routes[i].method, strlen(relay->routes[i].method))) {
            route = &relay->routes[i];
            break;
        }
    }
    if ((rr = calloc(1, sizeof(*rr))) == NULL)
        return -1;
    ++relay->inflight;
    rr->relay = relay;
    rr->req = req;
    rr->route = route;
    rr->started_ns = uv_hrtime();
    cr_buf_init(&rr->body, relay->limits.max_batch_bytes + cr_limits_max_action(&relay->limits) + 65536);
    rr->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*rr->guard), on_guard_dispose);
    rr->guard->rr = rr;
    rr->want_msgpack = header_has(req, H2O_TOKEN_ACCEPT, "msgpack") ||
                       (h2o_find_header(&req->headers, H2O_TOKEN_ACCEPT, -1) < 0 && header_has(req, H2O_TOKEN_CONTENT_TYPE, "msgpack"));
    if (route == NULL) {
        if (!path_known && relay_web_serve(relay, req) == 0) {
            relay_req_release(rr);
            return 0;
        }
        if (path_known)
            relay_respond_error(rr, 405, "method_not_allowed", NULL, "%.*s is not allowed here", (int)req->method.len,
                                req->method.base);
        else
            relay_respond_error(rr, 404, "not_found", NULL, "no such endpoint");
        return 0;
    }
    memcpy(rr->params, params, sizeof(params));
    rr->nparams = nparams;
    if (relay->shutting_down) {
        respond_error_retry(rr, 503, "unavailable", "1", "the relay is shutting down");
        return 0;
    }
    if (read_body(rr) != 0)
        return 0;
    if ((route->kinds & RELAY_P_MASK) == 0) {
        run_handler(rr);
        return 0;
    }
    relay_authenticate(relay, rr, on_principal);
    return 0;
}

void relay_route(relay_t *relay, const char *method, const char *pattern, unsigned kinds, relay_handler_fn fn, const char *name)
{
    CR_ASSERT(relay->nroutes < RELAY_ROUTES_MAX);
    relay->routes[relay->nroutes++] = (relay_route_t){method, pattern, kinds, fn, name};
}

/* ---- listeners ----------------------------------------------------------------------------------------------- */

static void on_accept(uv_stream_t *listener, int status)
{
    relay_t *relay = listener->data;
    h2o_accept_ctx_t *actx = listener == (uv_stream_t *)&relay->listener_tls ? &relay->accept_tls : &relay->accept_plain;
    uv_tcp_t *conn;
    h2o_socket_t *sock;
    if (status != 0)
        return;
    conn = h2o_mem_alloc(sizeof(*conn));
    uv_tcp_init(listener->loop, conn);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    uv_tcp_nodelay(conn, 1);
    ++relay->metrics.http_conns;
    sock = h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free);
    h2o_accept(actx, sock);
}

/* Parses "host:port" ("[v6]:port" too) into addr. */
static int parse_listen(const char *s, struct sockaddr_storage *addr, const char *key)
{
    char host[256];
    const char *colon = strrchr(s, ':');
    int port;
    if (colon == NULL || (size_t)(colon - s) >= sizeof(host) || sscanf(colon + 1, "%d", &port) != 1 || port < 0 || port > 65535)
        return cr_error_set(CR_ECONFIG, key, "%s must be host:port, got '%s'", key, s);
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 2 || host[n - 1] != ']')
            return cr_error_set(CR_ECONFIG, key, "%s: bad IPv6 address in '%s'", key, s);
        host[n - 1] = '\0';
        if (uv_ip6_addr(host + 1, port, (struct sockaddr_in6 *)addr) != 0)
            return cr_error_set(CR_ECONFIG, key, "%s: bad IPv6 address in '%s'", key, s);
        return 0;
    }
    if (uv_ip4_addr(host[0] != '\0' ? host : "0.0.0.0", port, (struct sockaddr_in *)addr) != 0)
        return cr_error_set(CR_ECONFIG, key, "%s: '%s' is not an IPv4 address (use [::1]:port for IPv6)", key, s);
    return 0;
}

static int listen_on(relay_t *relay, uv_tcp_t *listener, const char *addr_s, const char *key)
{
    struct sockaddr_storage addr;
    int rc;
    if (parse_listen(addr_s, &addr, key) != 0)
        return CR_ECONFIG;
    uv_tcp_init(relay->loop, listener);
    listener->data = relay;
    if ((rc = uv_tcp_bind(listener, (struct sockaddr *)&addr, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)listener, 1024, on_accept)) != 0) {
        uv_close((uv_handle_t *)listener, NULL);
        return cr_error_set(CR_EIO, key, "cannot listen on %s (%s): %s", addr_s, key, uv_strerror(rc));
    }
    cr_log(CR_LOG_INFO, "listening on %s (%s)", addr_s, key);
    return 0;
}

static SSL_CTX *make_ssl_ctx(const char *cert, const char *key)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (ctx == NULL)
        return NULL;
    SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION);
    SSL_CTX_set_options(ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_RENEGOTIATION);
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1 || SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1 ||
        SSL_CTX_check_private_key(ctx) != 1) {
        char err[256];
        ERR_error_string_n(ERR_get_error(), err, sizeof(err));
        cr_error_set(CR_ECONFIG, "http.tls_cert", "cannot load http.tls_cert / http.tls_key: %s", err);
        SSL_CTX_free(ctx);
        return NULL;
    }
    h2o_ssl_register_alpn_protocols(ctx, h2o_http2_alpn_protocols);
    return ctx;
}

int relay_init(relay_t *relay, uv_loop_t *loop, cr_config_t *conf)
{
    h2o_hostconf_t *host;
    h2o_pathconf_t *path;
    h2o_handler_t *handler;
    const char *tls_listen = cr_config_str(conf, "http.tls_listen");

    memset(relay, 0, sizeof(*relay));
    relay->loop = loop;
    relay->conf = conf;
    relay->limits = cr_limits_default;
    relay->rate_per_second = (double)cr_config_int(conf, "ratelimit.per_second");
    relay->rate_burst = (double)cr_config_int(conf, "ratelimit.burst");
    relay->events_maxlen = cr_config_int(conf, "events.maxlen");
    cr_ulid_new(relay->relay_id);

    h2o_config_init(&relay->h2o_config);
    relay->h2o_config.server_name = h2o_iovec_init(H2O_STRLIT("corral-relay"));
    relay->h2o_config.max_request_entity_size = relay->limits.max_batch_bytes + cr_limits_max_action(&relay->limits) + 65536;
    if ((size_t)cr_config_int(conf, "mail.max_size") + 65536 > relay->h2o_config.max_request_entity_size)
        relay->h2o_config.max_request_entity_size = (size_t)cr_config_int(conf, "mail.max_size") + 65536; /* inbound mail */
    relay->h2o_config.http2.idle_timeout = 3600 * 1000; /* downlink streams ping every 20 s; keep the connection */
    relay->h2o_config.http1.req_timeout = 3600 * 1000;
    host = h2o_config_register_host(&relay->h2o_config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    path = h2o_config_register_path(host, "/", 0);
    handler = h2o_create_handler(path, sizeof(*handler) + sizeof(relay_t *));
    *(relay_t **)(handler + 1) = relay;
    handler->on_req = on_req;
    h2o_context_init(&relay->h2o_ctx, loop, &relay->h2o_config);
    relay->accept_plain.ctx = &relay->h2o_ctx;
    relay->accept_plain.hosts = relay->h2o_config.hosts;
    relay->accept_tls = relay->accept_plain;

    if (listen_on(relay, &relay->listener_plain, cr_config_str(conf, "http.listen"), "http.listen") != 0)
        return CR_EIO;
    relay->listening_plain = 1;
    if (tls_listen[0] != '\0') {
        if ((relay->accept_tls.ssl_ctx = make_ssl_ctx(cr_config_str(conf, "http.tls_cert"), cr_config_str(conf, "http.tls_key"))) == NULL)
            return CR_ECONFIG;
        if (listen_on(relay, &relay->listener_tls, tls_listen, "http.tls_listen") != 0)
            return CR_EIO;
        relay->listening_tls = 1;
    }
    return 0;
}

/* Polls until in-flight requests have finished (or 10 s went by), then closes Redis and ends the loop. */
static void on_shutdown_timer(uv_timer_t *t)
{
    relay_t *relay = t->data;
    uint64_t waited = uv_now(relay->loop) - relay->shutdown_started;
    if ((relay->inflight > 0 || relay_push_busy(relay) > 0) && waited < 10000)
        return;
    if (relay->inflight > 0 || relay_push_busy(relay) > 0)
        cr_log(CR_LOG_WARN, "shutdown: %zu requests and %zu pushes still in flight after 10 s; closing anyway",
               relay->inflight, relay_push_busy(relay));
    else
        cr_log(CR_LOG_INFO, "shutdown: in-flight requests and pushes done");
    uv_timer_stop(t);
    uv_close((uv_handle_t *)t, NULL);
    relay_push_close(relay); /* what is still in flight stays pending in Redis: another relay takes it over */
    relay_rdb_close(&relay->rdb);
    uv_stop(relay->loop);
}

void relay_shutdown(relay_t *relay)
{
    if (relay->shutting_down)
        return;
    relay->shutting_down = 1;
    cr_log(CR_LOG_INFO, "shutdown: no longer accepting connections; finishing in-flight requests");
    if (relay->listening_plain)
        uv_close((uv_handle_t *)&relay->listener_plain, NULL), relay->listening_plain = 0;
    if (relay->listening_tls)
        uv_close((uv_handle_t *)&relay->listener_tls, NULL), relay->listening_tls = 0;
    relay_live_shutdown(relay);
    relay_push_shutdown(relay);
    relay_inbound_stop(relay);
    h2o_context_request_shutdown(&relay->h2o_ctx);
    uv_timer_init(relay->loop, &relay->shutdown_timer);
    relay->shutdown_timer.data = relay;
    relay->shutdown_started = uv_now(relay->loop);
    uv_timer_start(&relay->shutdown_timer, on_shutdown_timer, 20, 20);
}

void relay_dispose(relay_t *relay)
{
    if (relay->accept_tls.ssl_ctx != NULL)
        SSL_CTX_free(relay->accept_tls.ssl_ctx);
}
