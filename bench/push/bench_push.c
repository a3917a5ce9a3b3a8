/* bench_push.c — the push gateway's benchmark: (a) the relay's own push client and request builders sending to the
 * local fakes of APNs, FCM and Web Push over one HTTP/2 connection (notifications/s, per-request latency), (b) end to
 * end latency from a host's POST of an event to a real relay until the fake receives the push. Prints a table of
 * figures against the targets. Run on demand, never as a timed test. Usage: bench_push [--only a|b] [--n N]
 * [--seconds D] [--rate R] [--providers LIST] (--help for the rest). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench_push.h"
#include <curl/curl.h>
#include <getopt.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

static struct {
    const char *only;
    int providers; /* BP_* bits */
    long n;        /* (a) notifications to APNs and FCM */
    long web_n;    /* (a) notifications to Web Push (each is encrypted and signed: ten times slower) */
    int active;    /* (a) requests handed to curl at once (relay_push_http_set_max_active) */
    int window;    /* (a) requests outstanding (built and sent, not answered) */
    double secs;   /* (b) how long to post */
    int rate;      /* (b) events per second */
} opt = {"ab", BP_APNS | BP_FCM | BP_WEBPUSH, 100000, 10000, 100, 0, 10, 1000};

/* ---- providers, clock, latencies -------------------------------------------------------------------------------- */

const char *bench_provider_name(int bit)
{
    return bit == BP_APNS ? "apns" : bit == BP_FCM ? "fcm" : "webpush";
}

void lat_add(lat_t *l, uint64_t ns)
{
    if (l->n == l->cap) {
        size_t cap = l->cap != 0 ? 2 * l->cap : 4096;
        uint64_t *v = realloc(l->v, cap * sizeof(*v));
        if (v == NULL) {
            fprintf(stderr, "bench_push: out of memory\n");
            exit(1);
        }
        l->v = v;
        l->cap = cap;
    }
    l->v[l->n++] = ns;
    l->sorted = 0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

double lat_pct_ms(lat_t *l, double pct)
{
    size_t rank;
    if (l->n == 0)
        return 0;
    if (!l->sorted) {
        qsort(l->v, l->n, sizeof(*l->v), cmp_u64);
        l->sorted = 1;
    }
    rank = (size_t)(pct / 100.0 * (double)l->n + 0.999999);
    if (rank < 1)
        rank = 1;
    if (rank > l->n)
        rank = l->n;
    return (double)l->v[rank - 1] / 1e6;
}

double lat_max_ms(lat_t *l)
{
    return lat_pct_ms(l, 100);
}

void lat_free(lat_t *l)
{
    free(l->v);
    memset(l, 0, sizeof(*l));
}

/* ---- the table of results, processes ---------------------------------------------------------------------------- */

int bench_fake_start(cr_test_fake_push_t *fp, long log_size)
{
    cr_test_fake_push_opts_t o = {.apns_token_min_interval_s = -1, .log_size = log_size};
    if (cr_test_fake_push_start(fp, &o) != 0) {
        fprintf(stderr, "bench_push: corral-fake-push did not start\n");
        return -1;
    }
    printf("  corral-fake-push %s, pid %d, on %s (%s)\n", fp->exe, (int)fp->pid, fp->url,
           log_size < 0 ? "counters only" : "keeping its log");
    return 0;
}

/* ---- main ------------------------------------------------------------------------------------------------------- */

static void usage(FILE *f)
{
    fprintf(f,
            "usage: bench_push [options]\n"
            "  --only PARTS       which parts to run, any of a b (default ab)\n"
            "                     a: the relay's push client sending to the fake over one HTTP/2 connection\n"
            "                     b: end to end, a host's POST to the relay -> the fake's receipt of the push\n"
            "  --providers LIST   comma-separated among apns, fcm, webpush (default all three)\n"
            "  --n N              (a) notifications to APNs and to FCM (default 100000)\n"
            "  --webpush-n N      (a) notifications to Web Push (default 10000: each one is encrypted and signed)\n"
            "  --active K         (a) requests handed to curl at once, relay_push_http_set_max_active (default 100)\n"
            "  --window W         (a) requests outstanding, built and not answered (default = --active)\n"
            "  --seconds D        (b) how long to post per provider (default 10)\n"
            "  --rate R           (b) events per second posted (default 1000)\n"
            "The relay binary: $CORRAL_RELAY_BIN, else $CORRAL_BINARY_DIR/bin/corral-relay, else the build's; the fake\n"
            "likewise with $CORRAL_FAKE_PUSH_BIN.\n");
}

static int parse_providers(const char *s)
{
    int set = 0;
    char buf[64], *save = NULL;
    snprintf(buf, sizeof(buf), "%s", s);
    for (char *t = strtok_r(buf, ",", &save); t != NULL; t = strtok_r(NULL, ",", &save)) {
        if (strcmp(t, "apns") == 0)
            set |= BP_APNS;
        else if (strcmp(t, "fcm") == 0)
            set |= BP_FCM;
        else if (strcmp(t, "webpush") == 0)
            set |= BP_WEBPUSH;
        else
            return -1;
    }
    return set != 0 ? set : -1;
}

static int parse_args(int argc, char **argv)
{
    static const struct option longs[] = {
        {"only", required_argument, NULL, 'o'},   {"providers", required_argument, NULL, 'p'},
        {"n", required_argument, NULL, 'n'},      {"active", required_argument, NULL, 'k'},
        {"window", required_argument, NULL, 'w'}, {"seconds", required_argument, NULL, 's'},
        {"rate", required_argument, NULL, 'r'},   {"webpush-n", required_argument, NULL, 'W'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "o:p:n:s:r:h", longs, NULL)) != -1) {
        switch (c) {
        case 'o':
            opt.only = optarg;
            if (strspn(optarg, "ab") != strlen(optarg) || optarg[0] == '\0') {
                fprintf(stderr, "bench_push: --only takes letters among a, b\n");
                return -1;
            }
            break;
        case 'p':
            if ((opt.providers = parse_providers(optarg)) < 0) {
                fprintf(stderr, "bench_push: --providers takes a comma-separated list among apns, fcm, webpush\n");
                return -1;
            }
            break;
        case 'n':
            opt.n = atol(optarg);
            break;
        case 'W':
            opt.web_n = atol(optarg);
            break;
        case 'k':
            opt.active = atoi(optarg);
            break;
        case 'w':
            opt.window = atoi(optarg);
            break;
        case 's':
            opt.secs = atof(optarg);
            break;
        case 'r':
            opt.rate = atoi(optarg);
            break;
        case 'h':
            usage(stdout);
            exit(0);
        default:
            usage(stderr);
            return -1;
        }
    }
    if (opt.window == 0)
        opt.window = opt.active;
    if (optind != argc || opt.n < 1 || opt.n > 10000000 || opt.web_n < 1 || opt.web_n > 10000000 || opt.active < 1 ||
        opt.active > 10000 || opt.window < 1 || opt.window > 10000 || opt.secs <= 0 || opt.secs > 3600 || opt.rate < 1 ||
        opt.rate > 100000 || opt.secs * opt.rate > 5000000) {
        fprintf(stderr, "bench_push: an option is out of range\n");
        usage(stderr);
        return -1;
    }
    return 0;
}

int main(int argc, char **argv)
{
    double load[3] = {0, 0, 0};
    if (parse_args(argc, argv) != 0)
        return 2;
    setvbuf(stdout, NULL, _IOLBF, 0);
    signal(SIGPIPE, SIG_IGN);
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != 0)
        return 1;
    getloadavg(load, 3);
    printf("bench_push: %ld cores, shared by this benchmark, corral-fake-push and in (b) the relay and redis-server\n"
           "            (load average before starting: %.2f %.2f %.2f)\n",
           sysconf(_SC_NPROCESSORS_ONLN), load[0], load[1], load[2]);
    if (strchr(opt.only, 'a') != NULL)
        part_sender(opt.providers, opt.n, opt.web_n, opt.active, opt.window);
    if (strchr(opt.only, 'b') != NULL)
        part_e2e(opt.providers, opt.secs, opt.rate);
    bench_print_table(48);
    curl_global_cleanup();
    return 0;
}
