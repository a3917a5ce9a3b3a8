/* bench_proto.c — throughput of the shared core: envelope encode, decode+validate, sealing, JSON conversion,
 * with allocations per operation. Prints a table of medians over several runs. Usage: bench_proto [seconds] */
#include "corral/envelope.h"
#include "corral/error.h"
#include "corral/json.h"
#include "corral/seal.h"
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

/* ---- allocation counting: this executable's malloc family overrides libc's for every library it uses ---------- */
extern void *__libc_malloc(size_t);
extern void *__libc_calloc(size_t, size_t);
extern void *__libc_realloc(void *, size_t);
extern void __libc_free(void *);
static unsigned long long n_allocs;
void *malloc(size_t n);
void *calloc(size_t a, size_t b);
void *realloc(void *p, size_t n);
void free(void *p);
void *malloc(size_t n)
{
    ++n_allocs;
    return __libc_malloc(n);
}
void *calloc(size_t a, size_t b)
{
    ++n_allocs;
    return __libc_calloc(a, b);
}
void *realloc(void *p, size_t n)
{
    ++n_allocs;
    return __libc_realloc(p, n);
}
void free(void *p)
{
    __libc_free(p);
}

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec + ts.tv_nsec / 1e9;
}

static volatile size_t sink;

typedef struct st_result_t {
    double ops_per_s, mb_per_s, allocs_per_op;
} result_t;

typedef size_t (*op_fn)(void *ctx); /* returns bytes processed */

/* Runs fn repeatedly for about `secs`, returns rates. */
static result_t run(op_fn fn, void *ctx, double secs)
{
    result_t r;
    unsigned long long ops = 0, bytes = 0, a0;
    double t0, t;
    for (int i = 0; i < 1000; ++i) /* warm up */
        sink += fn(ctx);
    a0 = n_allocs;
    t0 = now();
    do {
        for (int i = 0; i < 1000; ++i)
            bytes += fn(ctx);
        ops += 1000;
    } while ((t = now()) - t0 < secs);
    r.ops_per_s = ops / (t - t0);
    r.mb_per_s = bytes / (t - t0) / 1e6;
    r.allocs_per_op = (double)(n_allocs - a0) / ops;
    return r;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

#define RUNS 5
static void report(const char *name, const char *size, op_fn fn, void *ctx, double secs)
{
    double ops[RUNS], mb[RUNS], allocs = 0;
    for (int i = 0; i < RUNS; ++i) {
        result_t r = run(fn, ctx, secs / RUNS);
        ops[i] = r.ops_per_s;
        mb[i] = r.mb_per_s;
        allocs = r.allocs_per_op;
    }
    qsort(ops, RUNS, sizeof(double), cmp_double);
    qsort(mb, RUNS, sizeof(double), cmp_double);
    printf("| %-28s | %9s | %14.0f | %9.1f | %11.2f | %6.0f-%-6.0f |\n", name, size, ops[RUNS / 2], mb[RUNS / 2], allocs,
           ops[0] / 1e3, ops[RUNS - 1] / 1e3);
}

/* ---- operations ---------------------------------------------------------------------------------------------- */

typedef struct st_ctx_t {
    cr_event_t ev;
    cr_buf_t out;
    const char *bytes;
    size_t len;
    uint8_t key[32];
    uint8_t ad[CR_SEAL_AD_MAX];
    size_t adlen;
    char *plain;
    size_t plain_len;
    cr_buf_t sealed;
} ctx_t;

static size_t op_encode(void *p)
{
    ctx_t *c = p;
    cr_buf_reset(&c->out);
    if (cr_event_encode(&c->out, &c->ev) != 0)
        abort();
    return c->out.len;
}

static size_t op_decode(void *p)
{
    ctx_t *c = p;
    cr_event_t ev;
    if (cr_event_decode(&ev, c->bytes, c->len, NULL) != 0)
        abort();
    sink += ev.seq;
    return c->len;
}

static size_t op_seal(void *p)
{
    ctx_t *c = p;
    cr_buf_reset(&c->out);
    if (cr_seal(&c->out, c->key, c->ad, c->adlen, c->plain, c->plain_len, NULL) != 0)
        abort();
    return c->plain_len;
}

static size_t op_open(void *p)
{
    ctx_t *c = p;
    cr_buf_reset(&c->out);
    if (cr_open(&c->out, c->key, c->ad, c->adlen, c->sealed.base, c->sealed.len) != 0)
        abort();
    return c->plain_len;
}

static size_t op_to_json(void *p)
{
    ctx_t *c = p;
    cr_buf_reset(&c->out);
    if (cr_json_from_msgpack(&c->out, c->bytes, c->len, NULL) != 0)
        abort();
    return c->len;
}

static size_t op_from_json(void *p)
{
    ctx_t *c = p;
    cr_buf_reset(&c->out);
    if (cr_json_to_msgpack(&c->out, c->plain, c->plain_len, NULL) != 0)
        abort();
    return c->plain_len;
}

static void make_event(ctx_t *c, cr_buf_t *store, const char *json_body, const char *kind)
{
    cr_buf_t body;
    cr_buf_init(&body, 1 << 20);
    if (cr_json_to_msgpack(&body, json_body, strlen(json_body), NULL) != 0) {
        fprintf(stderr, "bad body: %s\n", cr_error_last()->message);
        exit(1);
    }
    memset(&c->ev, 0, sizeof(c->ev));
    c->ev.k = (cr_span_t){kind, strlen(kind)};
    c->ev.sid = (cr_span_t){"01JD3XK5V0W6Q9R8T7Y6Z5A4B3", 26};
    c->ev.idn = (cr_span_t){"feature-auth-agent", 18};
    c->ev.seq = 1234;
    c->ev.ts = 1764000000000ULL;
    c->ev.pri = 2;
    c->ev.b.raw = (cr_span_t){body.base, body.len}; /* leaked on purpose: lives for the run */
    cr_buf_reset(store);
    if (cr_event_encode(store, &c->ev) != 0)
        abort();
    c->bytes = store->base;
    c->len = store->len;
}

int main(int argc, char **argv)
{
    double secs = argc > 1 ? atof(argv[1]) : 5.0;
    ctx_t c;
    cr_buf_t store, jsonbuf;
    if (sodium_init() < 0)
        return 1;
    memset(&c, 0, sizeof(c));
    cr_buf_init(&c.out, 8 << 20);
    cr_buf_init(&store, 8 << 20);
    cr_buf_init(&jsonbuf, 8 << 20);
    cr_buf_init(&c.sealed, 8 << 20);
    randombytes_buf(c.key, sizeof(c.key));

    printf("bench_proto: %.1f s per row, median of %d runs (one core)\n\n", secs, RUNS);
    printf("| %-28s | %9s | %14s | %9s | %11s | %13s |\n", "operation", "size", "ops/s", "MB/s", "allocs/op", "min-max kops");
    printf("|------------------------------|-----------|----------------|-----------|-------------|---------------|\n");

    /* a small envelope: what a phone mostly sees */
    make_event(&c, &store, "{\"rid\":\"toolu_01ABCDEF\",\"tool\":\"Bash\",\"summary\":\"npm install stripe\","
                           "\"input\":{\"command\":\"npm install stripe\",\"timeout\":120000}}", "approval.request");
    char size[32];
    snprintf(size, sizeof(size), "%zu B", c.len);
    report("encode approval.request", size, op_encode, &c, secs);
    report("decode+validate approval.req", size, op_decode, &c, secs);
    report("msgpack -> JSON", size, op_to_json, &c, secs);
    cr_buf_reset(&jsonbuf);
    cr_json_from_msgpack(&jsonbuf, c.bytes, c.len, NULL);
    c.plain = jsonbuf.base;
    c.plain_len = jsonbuf.len;
    report("JSON -> msgpack", size, op_from_json, &c, secs);

    /* a diff.ready with a 16 KiB patch */
    {
        cr_buf_t j;
        cr_buf_init(&j, 1 << 20);
        cr_buf_appendf(&j, "{\"base\":\"4b825dc642cb6eb9a060e54bf8d69288fbee4904\",\"head\":\"0123456789abcdef0123456789abcdef01234567\","
                           "\"files\":[{\"path\":\"src/auth.c\",\"status\":\"modified\",\"add\":200,\"del\":10},"
                           "{\"path\":\"src/auth.h\",\"status\":\"added\",\"add\":40,\"del\":0}],\"add\":240,\"del\":10,\"patch\":\"");
        for (int i = 0; i < 16384 / 32; ++i)
            cr_buf_appendf(&j, "+    return check_token(t, k);\\n");
        cr_buf_appendf(&j, "\",\"truncated\":false}");
        cr_buf_append(&j, "", 1);
        cr_buf_t store2;
        cr_buf_init(&store2, 8 << 20);
        make_event(&c, &store2, j.base, "diff.ready");
        snprintf(size, sizeof(size), "%zu B", c.len);
        report("encode diff.ready", size, op_encode, &c, secs);
        report("decode+validate diff.ready", size, op_decode, &c, secs);
    }

    /* sealing */
    static const size_t sizes[] = {200, 1024, 16384, 65536};
    c.adlen = cr_seal_ad_event(c.ad, "team-1", c.ev.sid, c.ev.seq, c.ev.k);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); ++i) {
        c.plain = malloc(sizes[i]);
        c.plain_len = sizes[i];
        randombytes_buf(c.plain, sizes[i]);
        cr_buf_reset(&c.sealed);
        cr_seal(&c.sealed, c.key, c.ad, c.adlen, c.plain, c.plain_len, NULL);
        snprintf(size, sizeof(size), "%zu B", sizes[i]);
        report("seal (XChaCha20-Poly1305)", size, op_seal, &c, secs);
        report("open", size, op_open, &c, secs);
        free(c.plain);
    }
    return 0;
}
