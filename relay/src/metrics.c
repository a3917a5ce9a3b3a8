/* metrics.c — /healthz (the process answers), /readyz (Redis reachable) and /metrics (Prometheus text format). */
#include "live.h"
#include "relay.h"
#include "identity.h"
#include "push_queue.h"
#include <stdio.h>
#include <string.h>

static void send_text(relay_req_t *rr, int status, const char *ctype, const char *body, size_t len)
{
    h2o_req_t *req = rr->req;
    relay_req_release(rr);
    if (req == NULL)
        return;
    req->res.status = status;
    req->res.reason = status == 200 ? "OK" : "Service Unavailable";
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, ctype, strlen(ctype));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, body, len);
}

static void on_healthz(relay_req_t *rr)
{
    send_text(rr, 200, "text/plain", H2O_STRLIT("ok\n"));
}

static void on_readyz(relay_req_t *rr)
{
    if (relay_rdb_ready(&rr->relay->rdb) && !rr->relay->shutting_down)
        send_text(rr, 200, "text/plain", H2O_STRLIT("ready\n"));
    else
        send_text(rr, 503, "text/plain", H2O_STRLIT("not ready: redis unavailable or shutting down\n"));
}

#define COUNTER(name, help, value)                                                                                      \
    cr_buf_appendf(&b, "# HELP " name " " help "\n# TYPE " name " counter\n" name " %llu\n", (unsigned long long)(value))
#define GAUGE(name, help, value)                                                                                        \
    cr_buf_appendf(&b, "# HELP " name " " help "\n# TYPE " name " gauge\n" name " %llu\n", (unsigned long long)(value))

static void on_metrics(relay_req_t *rr)
{
    relay_t *relay = rr->relay;
    relay_metrics_t *m = &relay->metrics;
    relay_rdb_t *rdb = &relay->rdb;
    cr_buf_t b;
    uint64_t cum = 0;
    cr_buf_init(&b, 1 << 20);
    COUNTER("corral_http_requests_total", "HTTP requests received.", m->requests);
    COUNTER("corral_http_connections_total", "TCP connections accepted.", m->http_conns);
    COUNTER("corral_events_in_total", "Events accepted and stored.", m->events_in);
    COUNTER("corral_events_duplicate_total", "Events acknowledged again without storing (resends).", m->events_dup);
    COUNTER("corral_fanout_frames_total", "Event frames sent to live phones.", m->fanout_frames);
    COUNTER("corral_actions_in_total", "Actions accepted from phones.", m->actions_in);
    COUNTER("corral_actions_duplicate_total", "Actions answered as duplicates (same aid).", m->actions_dup);
    COUNTER("corral_actions_out_total", "Actions sent to hosts on their downlinks.", m->actions_out);
    GAUGE("corral_websockets_open", "Phone WebSockets open now.", m->ws_open);
    COUNTER("corral_websockets_total", "Phone WebSockets opened.", m->ws_total);
    GAUGE("corral_host_streams_open", "Host downlink streams open now.", m->streams_open);
    GAUGE("corral_live_listeners", "Live clients (WebSockets and downlinks) this relay delivers to.", relay_live_count(relay));
    GAUGE("corral_redis_up", "1 when Redis is reachable and the scripts are loaded.", relay_rdb_ready(rdb));
    COUNTER("corral_redis_commands_total", "Redis commands sent.", rdb->n_commands);
    COUNTER("corral_redis_failed_total", "Redis commands that failed or answered an error.", rdb->n_failed);
    COUNTER("corral_redis_reconnects_total", "Times the Redis connections were lost.", rdb->n_reconnects);
    COUNTER("corral_redis_noscript_total", "Script calls sent again after NOSCRIPT.", rdb->n_noscript);
    cr_buf_appendf(&b, "# HELP corral_redis_latency_seconds Redis command round trips.\n"
                       "# TYPE corral_redis_latency_seconds histogram\n");
    for (size_t i = 0; i < RELAY_RDB_LATENCY_BUCKETS; ++i) {
        cum += rdb->latency_hist[i];
        if (i + 1 < RELAY_RDB_LATENCY_BUCKETS)
            cr_buf_appendf(&b, "corral_redis_latency_seconds_bucket{le=\"%g\"} %llu\n", relay_rdb_latency_bounds_ms[i] / 1000,
                           (unsigned long long)cum);
        else
            cr_buf_appendf(&b, "corral_redis_latency_seconds_bucket{le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    cr_buf_appendf(&b, "corral_redis_latency_seconds_sum %.6f\ncorral_redis_latency_seconds_count %llu\n",
                   rdb->latency_sum_ms / 1000, (unsigned long long)cum);
    cr_buf_appendf(&b, "# HELP corral_errors_total Error responses by stable code.\n# TYPE corral_errors_total counter\n");
    for (size_t i = 0; relay_error_codes[i] != NULL; ++i)
        cr_buf_appendf(&b, "corral_errors_total{code=\"%s\"} %llu\n", relay_error_codes[i], (unsigned long long)m->errors[i]);
    relay_push_metrics(relay, &b);
    relay_inbound_metrics(&b);
    send_text(rr, 200, "text/plain; version=0.0.4", b.base, b.len);
    cr_buf_free(&b);
}

void relay_health_register(relay_t *relay)
{
    relay_route(relay, "GET", "/healthz", 0, on_healthz, "healthz");
    relay_route(relay, "GET", "/readyz", 0, on_readyz, "readyz");
    relay_route(relay, "GET", "/metrics", 0, on_metrics, "metrics");
}
