/* bench_relay.h — what the parts of the relay benchmark share: clocks, latency histograms, the result table, msgpack
 * of fixed shapes, HTTP/2 calls over curl multi, and the relay process with its teams and tokens. */
#ifndef BENCH_RELAY_H
#define BENCH_RELAY_H

#include <curl/curl.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "bench_common.h"
#include "corral/buf.h"
#include "redis_server.h"
#include "relay_proc.h"

/* A latency histogram: 1 µs buckets up to 100 ms, 1 ms buckets up to 100 s. */
typedef struct st_hist_t hist_t;

/* A zeroed histogram (exits when out of memory); free() it. */
hist_t *hist_new(void);

/* Records one latency in nanoseconds. */
void hist_add(hist_t *h, uint64_t ns);

/* The number of latencies recorded. */
uint64_t hist_count(const hist_t *h);

/* The pct-th percentile (0 < pct <= 100) in milliseconds, the upper bound of its bucket; 0 when empty. */
double hist_pct_ms(const hist_t *h, double pct);

/* The largest latency recorded, in milliseconds. */
double hist_max_ms(const hist_t *h);

/* cr_buf_reserve that exits with a message when it fails (the benchmark's own, bounded sizes). */
void bench_reserve(cr_buf_t *b, size_t n);

/* Writes a msgpack str of s[0..n) (n < 65536) at p; returns the bytes written. */
size_t mp_put_str(char *p, const char *s, size_t n);

/* Writes the envelope of one agent.message event at p (room for 64 + strlen(sid) + text_len bytes): v 1, sid, seq as
 * a uint32, ts the wall clock, pri 1, b {text}. Returns the bytes written. */
size_t bench_put_event(char *p, const char *sid, uint64_t seq, const char *text, size_t text_len);

/* One HTTP/2 request (h2c on a connection upgraded by h2_warm) that can be sent again and again on a persistent connection. */
typedef struct st_call_t {
    CURL *easy;
    struct curl_slist *hdrs;
    cr_buf_t req, resp;      /* the body sent (filled by the caller), the body received */
    uint64_t t_start, t_done; /* bench_now_ns() when added, when done */
    long status;             /* the HTTP status once done, 0 when none came */
    CURLcode rc;
    int busy;                /* added to its multi, not done yet */
    uint64_t n;              /* the caller's: what the request carries (events, an index) */
    void *owner;             /* the caller's */
} call_t;

/* Sets up a POST of application/msgpack to url with "Authorization: Bearer token" (token not kept). resolve, when
 * not NULL, is a CURLOPT_RESOLVE list (a made-up host name per connection wanted: curl shares a connection per host
 * name). Returns 0 or -1. */
int call_init(call_t *c, const char *url, const char *token, struct curl_slist *resolve);

/* Sends c->req as the body: adds c to multi m (stamping t_start). */
void call_start(CURLM *m, call_t *c);

/* Frees what c holds. */
void call_free(call_t *c);

/* Called for each call that completed (status, rc, t_done set; removed from the multi). */
typedef void (*call_done_fn)(call_t *c, void *data);

/* Waits up to timeout_ms for activity (timeout_ms < 0: no wait), runs transfers, and calls fn for completed calls. */
void multi_step(CURLM *m, int timeout_ms, call_done_fn fn, void *data);

/* Opens the HTTP/2 connection of multi m to base ("http://NAME:PORT") with GET /healthz and "Upgrade: h2c"; calls
 * then multiplex on it. Not with prior knowledge: libcurl 7.88.1 (Debian 12) fails every request that reuses a
 * prior-knowledge connection with "Error in the HTTP2 framing layer" (curl issue #10634, fixed in 8.0). Returns 0,
 * or -1 with a message when the answer was not 200 over HTTP/2. */
int h2_warm(CURLM *m, const char *base, struct curl_slist *resolve);

/* A multi handle that multiplexes HTTP/2 requests on one connection per host name. */
CURLM *multi_new(void);

/* Starts a fresh relay on the benchmark's Redis (rate limit off, log level warn). Returns 0 or -1. */
int bench_relay_start(void);

/* Stops it (and perf, when recording). */
void bench_relay_stop(void);

/* The running relay (url, port, pid). */
const cr_test_relay_t *bench_relay(void);

/* A ULID made at start: ids that do not collide across runs. */
const char *bench_run_id(void);

/* `corral-relay admin team create TEAM`. Returns 0 or -1. */
int bench_team(const char *team);

/* `corral-relay admin token create --team TEAM --kind KIND --label LABEL` into out. Returns 0 or -1. */
int bench_token(char *out, size_t outlen, const char *team, const char *kind, const char *label);

/* A counter or gauge from the relay's /metrics, 0 when absent. */
uint64_t bench_metric(const char *name);

/* With --perf, records the relay with perf until bench_perf_stop (or bench_relay_stop). */
void bench_perf_start(const char *part);
void bench_perf_stop(void);

/* The parts; each adds its rows to the table. */
void part_ingest(double secs, int hosts, int inflight, int batch, long redis_n, const cr_test_redis_t *r);
void part_fanout(double secs, int phones, int rate, const cr_test_redis_t *r);
void part_idle(int n);
void part_actions(int n);

#endif
