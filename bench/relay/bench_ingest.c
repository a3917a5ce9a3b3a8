/* bench_ingest.c — part (a) of the relay benchmark: hosts posting batches of events to POST /v1/host/events over
 * HTTP/2, events/s acknowledged (stored), then redis-benchmark's pipelined XADD on the same Redis for comparison. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench_relay.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIDS_PER_BATCH 4 /* the sessions a batch spreads over (each concurrent slot of a host has its own) */
#define TIMELINE_MAX 3600 /* seconds of per-second counts kept */
#define EVENT_TEXT "the agent wrote this line while working on the benchmark's task; nothing else to see"

/* One concurrent request slot of one host: its sessions, their next seqs, its call. */
typedef struct st_slot_t {
    call_t call;
    char sid[SIDS_PER_BATCH][48];
    uint64_t seq[SIDS_PER_BATCH];
} slot_t;

typedef struct st_ingest_t {
    CURLM *multi;
    slot_t *slots;
    size_t nslots;
    int batch;
    uint64_t t0, deadline_ns, acked, batches, failed, last_done;
    uint64_t per_second[TIMELINE_MAX]; /* events acknowledged in each second of the run */
    hist_t *lat;
} ingest_t;

/* Fills the slot's request with the next batch: events spread round robin over its sessions, seqs increasing. */
static void build_batch(slot_t *s, int batch)
{
    cr_buf_t *b = &s->call.req;
    b->len = 0;
    bench_reserve(b, 3 + (size_t)batch * (128 + sizeof(EVENT_TEXT)));
    b->base[0] = (char)0xdc; /* array 16 */
    b->base[1] = (char)(batch >> 8);
    b->base[2] = (char)batch;
    b->len = 3;
    for (int i = 0; i < batch; ++i) {
        int j = i % SIDS_PER_BATCH;
        b->len += bench_put_event(b->base + b->len, s->sid[j], ++s->seq[j], EVENT_TEXT, sizeof(EVENT_TEXT) - 1);
    }
    s->call.n = (uint64_t)batch;
}

static void on_batch_done(call_t *c, void *data)
{
    ingest_t *in = data;
    slot_t *s = c->owner;
    if (c->status == 200) {
        uint64_t sec = (c->t_done - in->t0) / 1000000000u;
        in->acked += c->n;
        if (sec < TIMELINE_MAX)
            in->per_second[sec] += c->n;
        ++in->batches;
        hist_add(in->lat, c->t_done - c->t_start);
    } else {
        if (in->failed++ < 3)
            fprintf(stderr, "  ingest: batch answered %ld (%s): %.*s\n", c->status, curl_easy_strerror(c->rc),
                    (int)(c->resp.len < 200 ? c->resp.len : 200), c->resp.base != NULL ? c->resp.base : "");
    }
    in->last_done = c->t_done;
    if (c->t_done < in->deadline_ns) {
        build_batch(s, in->batch);
        call_start(in->multi, c);
    }
}

/* Sends one command on a fresh connection to r and returns its reply (NULL on failure); freeReplyObject it. */
static redisReply *redis_cmd(const cr_test_redis_t *r, const char *cmd)
{
    redisContext *c = cr_test_redis_connect(r);
    redisReply *rep;
    if (c == NULL)
        return NULL;
    rep = redisCommand(c, cmd);
    redisFree(c);
    return rep;
}

/* A number from INFO (section), e.g. total_forks; -1 when absent. */
static long long redis_info(const cr_test_redis_t *r, const char *section, const char *name)
{
    char cmd[64];
    long long v = -1;
    redisReply *rep;
    const char *p;
    snprintf(cmd, sizeof(cmd), "INFO %s", section);
    if ((rep = redis_cmd(r, cmd)) == NULL)
        return -1;
    if (rep->type == REDIS_REPLY_STRING && (p = strstr(rep->str, name)) != NULL && p[strlen(name)] == ':')
        v = strtoll(p + strlen(name) + 1, NULL, 10);
    freeReplyObject(rep);
    return v;
}

/* Prints where Redis spent its time since the last CONFIG RESETSTAT: the commands with the most microseconds (those
 * run inside scripts counted too), so a reader sees what an ingest batch costs. */
static void print_commandstats(const cr_test_redis_t *r)
{
    struct {
        char name[40];
        unsigned long long calls, usec;
    } top[24];
    size_t n = 0;
    redisReply *rep = redis_cmd(r, "INFO commandstats");
    if (rep == NULL || rep->type != REDIS_REPLY_STRING) {
        if (rep != NULL)
            freeReplyObject(rep);
        return;
    }
    for (const char *p = rep->str; (p = strstr(p, "cmdstat_")) != NULL && n < sizeof(top) / sizeof(top[0]); ++p) {
        if (sscanf(p, "cmdstat_%39[^:]:calls=%llu,usec=%llu", top[n].name, &top[n].calls, &top[n].usec) == 3)
            ++n;
    }
    freeReplyObject(rep);
    for (size_t i = 0; i < n; ++i) /* by time, descending */
        for (size_t j = i + 1; j < n; ++j)
            if (top[j].usec > top[i].usec) {
                __typeof__(top[0]) t = top[i];
                top[i] = top[j];
                top[j] = t;
            }
    printf("  Redis time by command (scripts include the commands they call):");
    for (size_t i = 0; i < n && i < 8; ++i)
        printf("%s %s %.2f s / %llu calls", i == 0 ? "" : ",", top[i].name, (double)top[i].usec / 1e6, top[i].calls);
    printf("\n");
}

/* Runs redis-benchmark's pipelined XADD on Redis; returns its requests per second, 0 when it did not run. */
static double redis_benchmark(const cr_test_redis_t *r, long n)
{
    char cmd[1024], payload[151], buf[4096];
    cr_buf_t out;
    double rps = 0;
    FILE *p;
    memset(payload, 'x', 150);
    payload[150] = '\0';
    snprintf(cmd, sizeof(cmd),
             "redis-benchmark -h 127.0.0.1 -p %d -n %ld -P 64 -q XADD cr:bench:x '*' host h sid s seq 1 e %s 2>&1",
             r->port, n, payload);
    printf("  redis-benchmark -p %d -n %ld -P 64 -q XADD cr:bench:x '*' host h sid s seq 1 e <150 bytes>\n", r->port, n);
    if ((p = popen(cmd, "r")) == NULL) {
        perror("popen redis-benchmark");
        return 0;
    }
    cr_buf_init(&out, 1u << 20);
    for (size_t k; (k = fread(buf, 1, sizeof(buf), p)) > 0;)
        cr_buf_append(&out, buf, k);
    pclose(p);
    if (out.len > 0 && cr_buf_append(&out, "", 1) == 0) {
        /* "...: 408762.94 requests per second, p50=..." (earlier progress lines end in \r) */
        const char *hit = NULL;
        for (const char *q = out.base; (q = strstr(q, " requests per second")) != NULL; ++q)
            hit = q;
        if (hit != NULL) {
            const char *q = hit;
            while (q > out.base && (q[-1] == '.' || (q[-1] >= '0' && q[-1] <= '9')))
                --q;
            rps = strtod(q, NULL);
        } else {
            fprintf(stderr, "  redis-benchmark said: %.300s\n", out.base);
        }
    }
    cr_buf_free(&out);
    return rps;
}

void part_ingest(double secs, int hosts, int inflight, int batch, long redis_n, const cr_test_redis_t *r)
{
    ingest_t in = {0};
    struct curl_slist *resolve = NULL;
    char url[160], tok[128], label[32], line[96];
    uint64_t t0, stored, dups;
    double elapsed, rate, rps, cpu_relay, cpu_redis, cpu_self;
    long long forks;
    const cr_test_relay_t *rl;

    printf("\n(a) ingest: %d hosts x %d concurrent HTTP/2 batches of %d agent.message events, for %.0f s\n", hosts, inflight,
           batch, secs);
    if (bench_relay_start() != 0 || bench_team("ingest") != 0)
        goto fail;
    rl = bench_relay();
    in.multi = multi_new();
    in.batch = batch;
    in.lat = hist_new();
    in.nslots = (size_t)hosts * (size_t)inflight;
    if (in.multi == NULL || (in.slots = calloc(in.nslots, sizeof(*in.slots))) == NULL)
        goto fail;
    for (int h = 0; h < hosts; ++h) {
        /* a host name of its own per host: curl keeps one connection per name, so each host has its own */
        snprintf(line, sizeof(line), "h%d.bench:%d:127.0.0.1", h, rl->port);
        resolve = curl_slist_append(resolve, line);
    }
    for (int h = 0; h < hosts; ++h) {
        snprintf(label, sizeof(label), "host%d", h);
        if (bench_token(tok, sizeof(tok), "ingest", "host", label) != 0)
            goto fail;
        snprintf(url, sizeof(url), "http://h%d.bench:%d", h, rl->port);
        if (h2_warm(in.multi, url, resolve) != 0)
            goto fail;
        strncat(url, "/v1/host/events", sizeof(url) - strlen(url) - 1);
        for (int k = 0; k < inflight; ++k) {
            slot_t *s = &in.slots[h * inflight + k];
            if (call_init(&s->call, url, tok, resolve) != 0)
                goto fail;
            s->call.owner = s;
            for (int j = 0; j < SIDS_PER_BATCH; ++j)
                snprintf(s->sid[j], sizeof(s->sid[j]), "%s.h%d.k%d.s%d", bench_run_id(), h, k, j);
        }
        memset(tok, 0, sizeof(tok));
    }

    freeReplyObject(redis_cmd(r, "CONFIG RESETSTAT"));
    forks = redis_info(r, "stats", "total_forks");
    bench_perf_start("a");
    cpu_relay = bench_cpu_s(rl->pid);
    cpu_redis = bench_cpu_s(r->pid);
    cpu_self = bench_cpu_s(getpid());
    t0 = in.t0 = bench_now_ns();
    in.deadline_ns = t0 + (uint64_t)(secs * 1e9);
    for (size_t i = 0; i < in.nslots; ++i) {
        build_batch(&in.slots[i], batch);
        call_start(in.multi, &in.slots[i].call);
    }
    for (;;) {
        size_t busy = 0;
        multi_step(in.multi, 100, on_batch_done, &in);
        for (size_t i = 0; i < in.nslots; ++i)
            busy += (size_t)in.slots[i].call.busy;
        if (busy == 0)
            break;
    }
    cpu_relay = bench_cpu_s(rl->pid) - cpu_relay;
    cpu_redis = bench_cpu_s(r->pid) - cpu_redis;
    cpu_self = bench_cpu_s(getpid()) - cpu_self;
    bench_perf_stop();
    elapsed = (double)(in.last_done - t0) / 1e9;
    rate = elapsed > 0 ? (double)in.acked / elapsed : 0;
    stored = bench_metric("corral_events_in_total");
    dups = bench_metric("corral_events_duplicate_total");
    printf("  %llu events acknowledged in %llu batches over %.2f s: %.0f events/s (%llu batches failed)\n",
           (unsigned long long)in.acked, (unsigned long long)in.batches, elapsed, rate, (unsigned long long)in.failed);
    printf("  the relay counted %llu stored, %llu duplicates; batch latency p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
           (unsigned long long)stored, (unsigned long long)dups, hist_pct_ms(in.lat, 50), hist_pct_ms(in.lat, 99),
           hist_max_ms(in.lat));
    printf("  CPU: relay %.0f%% of a core, redis-server %.0f%%, this benchmark %.0f%%\n", 100 * cpu_relay / elapsed,
           100 * cpu_redis / elapsed, 100 * cpu_self / elapsed);
    print_commandstats(r);
    printf("  AOF rewrites (forks) during the run: %lld; events/s in each second:", redis_info(r, "stats", "total_forks") - forks);
    for (size_t sec = 0; sec < TIMELINE_MAX && sec + 1 < elapsed; ++sec)
        printf(" %.0fk", (double)in.per_second[sec] / 1000);
    printf("\n");
    if (stored != in.acked)
        printf("  WARNING: acknowledged and stored differ\n");
    bench_relay_stop();

    rps = redis_benchmark(r, redis_n);
    printf("  redis-benchmark: %.0f XADD/s pipelined; the relay reached %.0f%% of it\n", rps,
           rps > 0 ? 100.0 * rate / rps : 0.0);
    freeReplyObject(redis_cmd(r, "DEL cr:bench:x"));
    bench_row("(a) ingest, events/s stored", ">= 100000", rate >= 100000, "%.0f", rate);
    bench_row("(a) redis-benchmark XADD -P 64, req/s", NULL, 0, "%.0f", rps);
    bench_row("(a) ingest / redis-benchmark", ">= 50%", rps > 0 && rate >= 0.5 * rps, "%.0f%%",
              rps > 0 ? 100.0 * rate / rps : 0.0);
    bench_row("(a) batch latency p50 / p99", NULL, 0, "%.2f / %.2f ms", hist_pct_ms(in.lat, 50), hist_pct_ms(in.lat, 99));
    goto done;
fail:
    fprintf(stderr, "  (a) could not run\n");
    bench_row("(a) ingest, events/s stored", ">= 100000", 0, "failed");
    bench_relay_stop();
done:
    for (size_t i = 0; in.slots != NULL && i < in.nslots; ++i)
        call_free(&in.slots[i].call);
    free(in.slots);
    free(in.lat);
    if (in.multi != NULL)
        curl_multi_cleanup(in.multi);
    curl_slist_free_all(resolve);
}
