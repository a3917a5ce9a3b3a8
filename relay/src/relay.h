/* relay.h — the relay process: its state, the request plumbing every handler uses, and the handler entry points. */
#ifndef RELAY_H
#define RELAY_H

#include "corral/buf.h"
#include "corral/config.h"
#include "corral/limits.h"
#include "rdb.h"
#include <h2o.h>
#include <stdint.h>
#include <uv.h>

typedef struct st_relay_t relay_t;
typedef struct st_relay_req_t relay_req_t;

/* Who a token belongs to (DESIGN.md §5); every handler derives the team from this alone. */
enum { RELAY_P_ADMIN = 1, RELAY_P_HOST = 2, RELAY_P_DEVICE = 4 };
/* A route flag next to the principal kinds: the request body is kept as sent (a mail, a form post) instead of being
 * read as JSON or msgpack, and no token is asked for (such routes check a signature themselves). */
#define RELAY_ROUTE_RAW 0x100u
#define RELAY_P_MASK 0xffu
typedef struct st_relay_principal_t {
    char team[65];
    char id[65];
    char label[129];
    char token_hash[65]; /* hex SHA-256 of the token: what Redis knows; never the token itself */
    unsigned kind;       /* RELAY_P_* */
} relay_principal_t;

/* A route's handler. It must end the request with relay_respond*() exactly once (now or from a callback), or take
 * the request over for streaming (see ws.c, downlink.c). */
typedef void (*relay_handler_fn)(relay_req_t *rr);

typedef struct st_relay_route_t {
    const char *method;      /* "GET", "POST", "DELETE" */
    const char *pattern;     /* "/v1/sessions/{}/events": {} matches one path segment, captured in params */
    unsigned kinds;          /* principals allowed (RELAY_P_*); 0 = no authentication */
    relay_handler_fn fn;
    const char *name;        /* for metrics and logs */
} relay_route_t;

/* One request in flight. Owned by the plumbing until the handler responds; `req` becomes NULL if the client goes
 * away first (then the handler's callbacks must only call relay_respond*, which then just frees). */
struct st_relay_req_t {
    relay_t *relay;
    h2o_req_t *req;
    struct st_relay_req_guard_t *guard;
    const relay_route_t *route;
    relay_principal_t who;
    h2o_iovec_t params[4];
    size_t nparams;
    int want_msgpack;        /* answer in msgpack (Accept, or a msgpack request without Accept) */
    cr_buf_t body;           /* the request body as msgpack (JSON bodies are converted), owned */
    uint64_t started_ns;
};

#define RELAY_ROUTES_MAX 64

/* Counters for /metrics; see metrics.c for their names. */
typedef struct st_relay_metrics_t {
    uint64_t requests, events_in, events_dup, fanout_frames, actions_in, actions_dup, actions_out;
    uint64_t ws_open, ws_total, streams_open, http_conns;
    uint64_t errors[32]; /* by error code, indexed by relay_error_index() */
} relay_metrics_t;

struct st_relay_t {
    uv_loop_t *loop;
    cr_config_t *conf;
    cr_limits_t limits;
    double rate_per_second, rate_burst; /* ratelimit.* (read once: the auth path runs on every request) */
    int64_t events_maxlen;              /* events.maxlen */
    char relay_id[27];            /* a ULID per process: consumer name, logs */
    h2o_globalconf_t h2o_config;
    h2o_context_t h2o_ctx;
    h2o_accept_ctx_t accept_plain, accept_tls;
    uv_tcp_t listener_plain, listener_tls;
    int listening_plain, listening_tls;
    relay_rdb_t rdb;
    relay_metrics_t metrics;
    relay_route_t routes[RELAY_ROUTES_MAX];
    size_t nroutes;
    uv_signal_t sig_term, sig_int;
    uv_timer_t shutdown_timer;
    uint64_t shutdown_started;
    int shutting_down;
    size_t inflight;              /* relay_req_t alive */
    /* live fan-out: teams this relay holds live clients of (ws.c, downlink.c keep them) */
    struct st_relay_live_t *live;
    /* the push worker (push_queue.c) */
    struct st_push_t *push;
};

/* ---- lifecycle (http.c) -------------------------------------------------------------------------------------- */

/* Sets up h2o, the listeners and Redis from conf. Returns 0 or CR_ECONFIG / CR_EIO with cr_error_last. */
int relay_init(relay_t *relay, uv_loop_t *loop, cr_config_t *conf);

/* Adds a route; handler modules call this from their relay_*_register function. */
void relay_route(relay_t *relay, const char *method, const char *pattern, unsigned kinds, relay_handler_fn fn,
                 const char *name);

/* Stops accepting, ends streams cleanly, lets in-flight requests finish (up to a timeout), then closes Redis. */
void relay_shutdown(relay_t *relay);

void relay_dispose(relay_t *relay);

/* ---- responding (http.c) ------------------------------------------------------------------------------------- */

/* Sends `mp` (one msgpack value) as the response, in msgpack or converted to JSON as the client wants, then frees rr.
 * If the client is gone, only frees rr. */
void relay_respond(relay_req_t *rr, int status, const char *mp, size_t len);

/* Sends the error document {"error":{"code","message","field"}} with a status, then frees rr. `field` may be NULL. */
void relay_respond_error(relay_req_t *rr, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

/* Sends the current cr_error_last() as a 400 (or 413 for too_large), then frees rr. */
void relay_respond_cr_error(relay_req_t *rr);

/* Answers 503 "unavailable" with Retry-After: 1 (Redis is away; nothing was stored). */
void relay_respond_unavailable(relay_req_t *rr);

/* Frees rr without responding: for handlers that took the request over (streams). */
void relay_req_release(relay_req_t *rr);

/* Returns the value of query parameter `name` (percent-decoding not needed for our ids) or NULL, in rr->req's pool. */
const char *relay_query(relay_req_t *rr, const char *name);

/* The stable index of an error code for metrics.errors[]. */
size_t relay_error_index(const char *code);
extern const char *const relay_error_codes[];

/* ---- handler modules: each registers its routes --------------------------------------------------------------- */

void relay_health_register(relay_t *relay);   /* /healthz, /readyz, /metrics (metrics.c) */

void relay_ingest_register(relay_t *relay);   /* POST /v1/host/events (ingest.c) */
void relay_sessions_register(relay_t *relay); /* GET /v1/sessions, GET /v1/sessions/{sid}/events (sessions.c) */
void relay_actions_register(relay_t *relay);  /* POST /v1/actions, GET /v1/host/actions, POST /v1/host/actions/ack */
void relay_pair_register(relay_t *relay);     /* POST /v1/host/pair, POST /v1/pair/claim, POST/DELETE /v1/devices */
void relay_ws_register(relay_t *relay);       /* GET /v1/ws (ws.c) */
/* identities, vaults, inboxes, audit (identity.c) and mail/SMS coming in (inbound.c): see identity.h */

/* Serves a file of the web app (web.root) for a GET or HEAD that no route takes (web.c). Returns 0 when it answered,
 * -1 when there is no such file (the caller answers 404). */
int relay_web_serve(relay_t *relay, h2o_req_t *req);

/* Registers every module's routes and scripts (register.c): the one list of what the relay serves. */
void relay_register_all(relay_t *relay);

/* Ends every live stream (WebSockets, host downlinks) cleanly: called once at shutdown (live.c). */
void relay_live_shutdown(relay_t *relay);

#endif
