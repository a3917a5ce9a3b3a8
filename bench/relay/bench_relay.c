/* bench_relay.c — the relay's benchmark (issue 3 item 11): (a) ingest rate beside redis-benchmark's pipelined XADD
 * on the same Redis, (b) fan-out latency to many phones, (c) RSS per idle WebSocket, (d) action round trip phone to
 * host. Starts its own redis-server and corral-relay processes and prints a table of figures against the targets.
 * Run on demand, never as a timed test. Usage: bench_relay [--seconds D] [--phones N] [--idle N] [--only a|b|c|d]
 * (--help for the rest). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench_relay.h"
#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/wait.h>
#include <fcntl.h>
#include <time.h>
#include <unistd.h>
#include "corral/ulid.h"
#include "http_client.h"
#include "redis_server.h"
#include "relay_proc.h"
#include "ws_client.h"

/* ---- options and the shared processes --------------------------------------------------------------------------- */

static struct {
    double secs;    /* (a) and (b): how long to post */
    int hosts;      /* (a) hosts, each with its own token and HTTP/2 connection */
    int inflight;   /* (a) concurrent requests per host */
    int batch;      /* (a) events per batch */
    long redis_n;   /* (a) redis-benchmark -n */
    int phones;     /* (b) phones connected */
    int rate;       /* (b) events per second */
    int idle;       /* (c) idle WebSockets */
    int actions;    /* (d) actions sent */
    const char *only;
    int perf;       /* record the relay with perf during each measurement */
} opt = {10, 4, 4, 512, 1000000, 1000, 1000, 10000, 2000, "abcd", 0};

static cr_test_redis_t redis;
static cr_test_relay_t relay;
static char run_id[CR_ULID_LEN + 1];

/* ---- clocks, histograms, the table of results ------------------------------------------------------------------- */

#define FINE_N 100000   /* 1 µs buckets up to 100 ms */
#define COARSE_N 100000 /* then 1 ms buckets up to 100 s; beyond lands in the last */

struct st_hist_t {
    uint64_t n, sum_ns, max_ns;
    uint32_t fine[FINE_N], coarse[COARSE_N];
};

hist_t *hist_new(void)
{
    hist_t *h = calloc(1, sizeof(*h));
    if (h == NULL) {
        fprintf(stderr, "bench_relay: out of memory\n");
        exit(1);
    }
    return h;
}

void hist_add(hist_t *h, uint64_t ns)
{
    uint64_t us = ns / 1000;
    ++h->n;
    h->sum_ns += ns;
    if (ns > h->max_ns)
        h->max_ns = ns;
    if (us < FINE_N)
        ++h->fine[us];
    else
        ++h->coarse[us / 1000 < COARSE_N ? us / 1000 : COARSE_N - 1];
}

uint64_t hist_count(const hist_t *h)
{
    return h->n;
}

double hist_pct_ms(const hist_t *h, double pct)
{
    uint64_t rank, seen = 0;
    if (h->n == 0)
        return 0;
    rank = (uint64_t)(pct / 100.0 * (double)h->n + 0.999999);
    if (rank < 1)
        rank = 1;
    for (size_t i = 0; i < FINE_N; ++i)
        if ((seen += h->fine[i]) >= rank)
            return (double)(i + 1) / 1000.0; /* the bucket's upper bound */
    for (size_t i = 0; i < COARSE_N; ++i)
        if ((seen += h->coarse[i]) >= rank)
            return (double)(i + 1);
    return (double)h->max_ns / 1e6;
}

double hist_max_ms(const hist_t *h)
{
    return (double)h->max_ns / 1e6;
}

void bench_reserve(cr_buf_t *b, size_t n)
{
    if (cr_buf_reserve(b, n) != 0) {
        fprintf(stderr, "bench_relay: out of memory (or over a buffer's limit) reserving %zu bytes\n", n);
        exit(1);
    }
}

/* ---- msgpack of our own (small, fixed shapes) --------------------------------------------------------------------- */

size_t mp_put_str(char *p, const char *s, size_t n)
{
    size_t h;
    if (n < 32) {
        p[0] = (char)(0xa0 | n);
        h = 1;
    } else if (n < 256) {
        p[0] = (char)0xd9;
        p[1] = (char)n;
        h = 2;
    } else {
        p[0] = (char)0xda;
        p[1] = (char)(n >> 8);
        p[2] = (char)n;
        h = 3;
    }
    memcpy(p + h, s, n);
    return h + n;
}

#define PUT_LIT(p, s) mp_put_str((p), (s), sizeof(s) - 1)

static size_t put_be(char *p, uint64_t v, int bytes)
{
    for (int i = 0; i < bytes; ++i)
        p[i] = (char)(v >> (8 * (bytes - 1 - i)));
    return (size_t)bytes;
}

size_t bench_put_event(char *p, const char *sid, uint64_t seq, const char *text, size_t text_len)
{
    char *q = p;
    *q++ = (char)0x87;
    q += PUT_LIT(q, "v");
    *q++ = 1;
    q += PUT_LIT(q, "k");
    q += PUT_LIT(q, "agent.message");
    q += PUT_LIT(q, "sid");
    q += mp_put_str(q, sid, strlen(sid));
    q += PUT_LIT(q, "seq");
    *q++ = (char)0xce; /* always uint32: a template whose seq is patched in place */
    q += put_be(q, seq, 4);
    q += PUT_LIT(q, "ts");
    *q++ = (char)0xcf;
    q += put_be(q, cr_now_ms(), 8);
    q += PUT_LIT(q, "pri");
    *q++ = 1;
    q += PUT_LIT(q, "b");
    *q++ = (char)0x81;
    q += PUT_LIT(q, "text");
    q += mp_put_str(q, text, text_len);
    return (size_t)(q - p);
}

/* ---- HTTP/2 calls over curl multi --------------------------------------------------------------------------------- */

static size_t on_body(char *p, size_t size, size_t n, void *data)
{
    return cr_buf_append(data, p, size * n) == 0 ? size * n : 0;
}

static size_t on_body_discard(char *p, size_t size, size_t n, void *data)
{
    return size * n;
}

int call_init(call_t *c, const char *url, const char *token, struct curl_slist *resolve)
{
    char auth[256];
    memset(c, 0, sizeof(*c));
    cr_buf_init(&c->req, 8u << 20);
    cr_buf_init(&c->resp, 8u << 20);
    if ((c->easy = curl_easy_init()) == NULL)
        return -1;
    snprintf(auth, sizeof(auth), "Authorization: Bearer %s", token);
    c->hdrs = curl_slist_append(c->hdrs, auth);
    memset(auth, 0, sizeof(auth));
    c->hdrs = curl_slist_append(c->hdrs, "Content-Type: application/msgpack");
    c->hdrs = curl_slist_append(c->hdrs, "Accept: application/msgpack");
    c->hdrs = curl_slist_append(c->hdrs, "Expect:");
    if (c->hdrs == NULL)
        return -1;
    curl_easy_setopt(c->easy, CURLOPT_URL, url);
    curl_easy_setopt(c->easy, CURLOPT_HTTPHEADER, c->hdrs);
    /* HTTP/2 on the connection h2_warm upgraded (see there), never with prior knowledge */
    curl_easy_setopt(c->easy, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_0);
    curl_easy_setopt(c->easy, CURLOPT_PIPEWAIT, 1L);
    curl_easy_setopt(c->easy, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(c->easy, CURLOPT_CONNECTTIMEOUT_MS, 10000L);
    curl_easy_setopt(c->easy, CURLOPT_WRITEFUNCTION, on_body);
    curl_easy_setopt(c->easy, CURLOPT_WRITEDATA, &c->resp);
    curl_easy_setopt(c->easy, CURLOPT_PRIVATE, c);
    if (resolve != NULL)
        curl_easy_setopt(c->easy, CURLOPT_RESOLVE, resolve);
    if (getenv("BENCH_RELAY_VERBOSE") != NULL)
        curl_easy_setopt(c->easy, CURLOPT_VERBOSE, 1L);
    return 0;
}

void call_start(CURLM *m, call_t *c)
{
    c->resp.len = 0;
    c->status = 0;
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDS, c->req.base);
    curl_easy_setopt(c->easy, CURLOPT_POSTFIELDSIZE, (long)c->req.len);
    c->busy = 1;
    c->t_start = bench_now_ns();
    curl_multi_add_handle(m, c->easy);
}

void call_free(call_t *c)
{
    if (c->easy != NULL)
        curl_easy_cleanup(c->easy);
    curl_slist_free_all(c->hdrs);
    cr_buf_free(&c->req);
    cr_buf_free(&c->resp);
    memset(c, 0, sizeof(*c));
}

void multi_step(CURLM *m, int timeout_ms, call_done_fn fn, void *data)
{
    static int warned_h1;
    int running, left;
    long version = 0;
    CURLMsg *msg;
    if (timeout_ms >= 0)
        curl_multi_poll(m, NULL, 0, timeout_ms, NULL);
    curl_multi_perform(m, &running);
    while ((msg = curl_multi_info_read(m, &left)) != NULL) {
        call_t *c = NULL;
        if (msg->msg != CURLMSG_DONE)
            continue;
        curl_easy_getinfo(msg->easy_handle, CURLINFO_PRIVATE, (char **)&c);
        curl_easy_getinfo(msg->easy_handle, CURLINFO_RESPONSE_CODE, &c->status);
        curl_easy_getinfo(msg->easy_handle, CURLINFO_HTTP_VERSION, &version);
        if (c->status != 0 && version != CURL_HTTP_VERSION_2_0 && !warned_h1) {
            fprintf(stderr, "  WARNING: a response came over HTTP/1.1, not on the upgraded HTTP/2 connection\n");
            warned_h1 = 1;
        }
        c->rc = msg->data.result;
        c->t_done = bench_now_ns();
        curl_multi_remove_handle(m, msg->easy_handle);
        c->busy = 0;
        if (fn != NULL)
            fn(c, data);
    }
}

int h2_warm(CURLM *m, const char *base, struct curl_slist *resolve)
{
    char url[256];
    CURL *e = curl_easy_init();
    CURLMsg *msg;
    long status = 0, version = 0;
    int running, left, done = 0;
    if (e == NULL)
        return -1;
    snprintf(url, sizeof(url), "%s/healthz", base);
    curl_easy_setopt(e, CURLOPT_URL, url);
    curl_easy_setopt(e, CURLOPT_HTTP_VERSION, (long)CURL_HTTP_VERSION_2_0);
    curl_easy_setopt(e, CURLOPT_NOSIGNAL, 1L);
    curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, 10000L);
    curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_body_discard);
    if (resolve != NULL)
        curl_easy_setopt(e, CURLOPT_RESOLVE, resolve);
    curl_multi_add_handle(m, e);
    while (!done) {
        curl_multi_poll(m, NULL, 0, 100, NULL);
        curl_multi_perform(m, &running);
        while ((msg = curl_multi_info_read(m, &left)) != NULL)
            if (msg->msg == CURLMSG_DONE && msg->easy_handle == e)
                done = 1;
    }
    curl_easy_getinfo(e, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_getinfo(e, CURLINFO_HTTP_VERSION, &version);
    curl_multi_remove_handle(m, e); /* the connection stays in m's cache */
    curl_easy_cleanup(e);
    if (status != 200 || version != CURL_HTTP_VERSION_2_0) {
        fprintf(stderr, "bench_relay: %s answered %ld over HTTP/%s, not 200 over HTTP/2 after Upgrade: h2c\n", url, status,
                version == CURL_HTTP_VERSION_2_0 ? "2" : "1.1");
        return -1;
    }
    return 0;
}

CURLM *multi_new(void)
{
    CURLM *m = curl_multi_init();
    if (m != NULL)
        curl_multi_setopt(m, CURLMOPT_PIPELINING, (long)CURLPIPE_MULTIPLEX);
    return m;
}

/* ---- the relay and its teams -------------------------------------------------------------------------------------- */

static pid_t perf_pid;

int bench_relay_start(void)
{
    static const char *const env[] = {"CORRAL_RATELIMIT_PER_SECOND=0", "CORRAL_LOG_LEVEL=warn", NULL};
    static int printed;
    if (cr_test_relay_start(&relay, cr_test_redis_url(&redis), env) != 0)
        return -1;
    if (!printed++)
        bench_print_build(relay.exe);
    printf("  relay pid %d on port %d\n", (int)relay.pid, relay.port);
    fflush(stdout);
    return 0;
}

void bench_relay_stop(void)
{
    bench_perf_stop();
    cr_test_relay_stop(&relay);
}

const cr_test_relay_t *bench_relay(void)
{
    return &relay;
}

const char *bench_run_id(void)
{
    return run_id;
}

int bench_team(const char *team)
{
    char admin[128];
    if (cr_test_relay_admin(&relay, admin, sizeof(admin), "team", "create", team, NULL) != 0) {
        fprintf(stderr, "bench_relay: `admin team create %s` failed\n", team);
        return -1;
    }
    memset(admin, 0, sizeof(admin));
    return 0;
}

int bench_token(char *out, size_t outlen, const char *team, const char *kind, const char *label)
{
    if (cr_test_relay_admin(&relay, out, outlen, "token", "create", "--team", team, "--kind", kind, "--label", label,
                            NULL) != 0 ||
        strncmp(out, "crt_", 4) != 0) {
        fprintf(stderr, "bench_relay: `admin token create --team %s --kind %s` failed\n", team, kind);
        return -1;
    }
    return 0;
}

uint64_t bench_metric(const char *name)
{
    char url[128];
    cr_test_resp_t resp;
    uint64_t v = 0;
    size_t n = strlen(name);
    snprintf(url, sizeof(url), "%s/metrics", relay.url);
    if (cr_test_http(&resp, "GET", url, NULL, NULL, NULL, 0, 0) != 0)
        return 0;
    for (const char *p = resp.body; p != NULL && *p != '\0'; p = strchr(p, '\n'), p = p != NULL ? p + 1 : NULL)
        if (strncmp(p, name, n) == 0 && p[n] == ' ') {
            v = strtoull(p + n + 1, NULL, 10);
            break;
        }
    cr_test_resp_free(&resp);
    return v;
}

/* --perf: perf record -g on the relay while a part measures, into /tmp/bench_relay.<part>.perf.data. */
void bench_perf_start(const char *part)
{
    char exe[PATH_MAX], out[128], pid[16];
    int devnull;
    if (!opt.perf || perf_pid > 0)
        return;
    if (cr_test_find_program(exe, sizeof(exe), "perf") != 0) {
        fprintf(stderr, "bench_relay: --perf: perf is not installed\n");
        return;
    }
    snprintf(out, sizeof(out), "/tmp/bench_relay.%s.perf.data", part);
    snprintf(pid, sizeof(pid), "%d", (int)relay.pid);
    const char *const argv[] = {"perf", "record", "-g", "-q", "-o", out, "-p", pid, NULL};
    devnull = open("/dev/null", O_WRONLY | O_CLOEXEC);
    perf_pid = cr_test_spawn(exe, argv, NULL, devnull, devnull);
    close(devnull);
    if (perf_pid > 0) {
        printf("  perf recording the relay into %s\n", out);
        cr_test_sleep_ms(300); /* let it attach */
    }
}

void bench_perf_stop(void)
{
    int st;
    if (perf_pid <= 0)
        return;
    kill(perf_pid, SIGINT);
    waitpid(perf_pid, &st, 0);
    perf_pid = 0;
}

/* ---- main ------------------------------------------------------------------------------------------------------------ */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_relay [options]\n"
            "  --only PARTS     which parts to run, any of a b c d (default abcd)\n"
            "                   a: ingest, events/s stored, beside redis-benchmark's pipelined XADD\n"
            "                   b: fan-out latency, host POST -> phone WebSocket frame\n"
            "                   c: RSS per idle WebSocket\n"
            "                   d: action round trip, phone POST -> host downlink frame\n"
            "  --seconds D      how long (a) and (b) post (default 10)\n"
            "  --hosts H        (a) hosts, one token and HTTP/2 connection each (default 4)\n"
            "  --inflight K     (a) concurrent batches per host (default 4)\n"
            "  --batch N        (a) events per batch (default 512)\n"
            "  --redis-n N      (a) redis-benchmark -n (default 1000000)\n"
            "  --phones N       (b) phones connected (default 1000)\n"
            "  --rate R         (b) events per second posted (default 1000)\n"
            "  --idle N         (c) idle WebSockets (default 10000)\n"
            "  --actions N      (d) actions sent one at a time (default 2000)\n"
            "  --perf           record the relay with `perf record -g` while each part measures\n"
            "                   (/tmp/bench_relay.<part>.perf.data)\n"
            "The relay binary: $CORRAL_RELAY_BIN, else $CORRAL_BINARY_DIR/bin/corral-relay, else the build's.\n");
}

static int parse_args(int argc, char **argv)
{
    static const struct option longs[] = {
        {"only", required_argument, NULL, 'o'},     {"seconds", required_argument, NULL, 's'},
        {"hosts", required_argument, NULL, 'H'},    {"inflight", required_argument, NULL, 'K'},
        {"batch", required_argument, NULL, 'B'},    {"redis-n", required_argument, NULL, 'N'},
        {"phones", required_argument, NULL, 'p'},   {"rate", required_argument, NULL, 'r'},
        {"idle", required_argument, NULL, 'i'},     {"actions", required_argument, NULL, 'A'},
        {"perf", no_argument, NULL, 'P'},           {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "o:s:p:i:h", longs, NULL)) != -1) {
        switch (c) {
        case 'o':
            opt.only = optarg;
            if (strspn(optarg, "abcd") != strlen(optarg) || optarg[0] == '\0') {
                fprintf(stderr, "bench_relay: --only takes letters among a, b, c, d\n");
                return -1;
            }
            break;
        case 's':
            opt.secs = atof(optarg);
            break;
        case 'H':
            opt.hosts = atoi(optarg);
            break;
        case 'K':
            opt.inflight = atoi(optarg);
            break;
        case 'B':
            opt.batch = atoi(optarg);
            break;
        case 'N':
            opt.redis_n = atol(optarg);
            break;
        case 'p':
            opt.phones = atoi(optarg);
            break;
        case 'r':
            opt.rate = atoi(optarg);
            break;
        case 'i':
            opt.idle = atoi(optarg);
            break;
        case 'A':
            opt.actions = atoi(optarg);
            break;
        case 'P':
            opt.perf = 1;
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (optind != argc || opt.secs <= 0 || opt.secs > 3600 || opt.hosts < 1 || opt.hosts > 64 || opt.inflight < 1 ||
        opt.inflight > 64 || opt.batch < 1 || opt.batch > 512 || opt.redis_n < 1000 || opt.phones < 1 ||
        opt.phones > 50000 || opt.rate < 1 || opt.rate > 100000 || opt.idle < 1 || opt.idle > 60000 || opt.actions < 1 ||
        opt.actions > 1000000) {
        fprintf(stderr, "bench_relay: an option is out of range\n");
        usage(stderr);
        return -1;
    }
    return 0;
}

/* Prints what the figures were measured on: the cores everything shares and the load. */
static void print_machine(void)
{
    double load[3] = {0, 0, 0};
    getloadavg(load, 3);
    printf("bench_relay: %ld cores, shared by the relay (one process, one event loop), redis-server and this benchmark\n"
           "             (load average before starting: %.2f %.2f %.2f)\n",
           sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1], load[2]);
}

int main(int argc, char **argv)
{
    struct rlimit rl;
    if (parse_args(argc, argv) != 0)
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    /* (c) holds thousands of sockets, and so does the relay, which inherits this limit */
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0 && rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        setrlimit(RLIMIT_NOFILE, &rl);
    }
    getrlimit(RLIMIT_NOFILE, &rl);
    if (strchr(opt.only, 'c') != NULL && rl.rlim_cur < (rlim_t)opt.idle + 200) {
        fprintf(stderr, "bench_relay: (c) needs %d descriptors but RLIMIT_NOFILE is %llu; lower --idle or raise the hard limit\n",
                opt.idle + 200, (unsigned long long)rl.rlim_cur);
        return 2;
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return 1;
    cr_ulid_new(run_id);
    print_machine();
    if (cr_test_redis_start(&redis) != 0)
        return 1;
    printf("redis-server on port %d (AOF everysec), pid %d\n", redis.port, (int)redis.pid);

    if (strchr(opt.only, 'a') != NULL)
        part_ingest(opt.secs, opt.hosts, opt.inflight, opt.batch, opt.redis_n, &redis);
    if (strchr(opt.only, 'b') != NULL)
        part_fanout(opt.secs, opt.phones, opt.rate, &redis);
    if (strchr(opt.only, 'c') != NULL)
        part_idle(opt.idle);
    if (strchr(opt.only, 'd') != NULL)
        part_actions(opt.actions);

    cr_test_redis_stop(&redis);
    bench_print_table(44);
    curl_global_cleanup();
    return 0;
}
