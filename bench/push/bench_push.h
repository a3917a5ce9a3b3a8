/* bench_push.h — what the parts of the push benchmark share: the clock, latency samples, the result table, the CPU a
 * process used, the providers measured and the fake push services they run against. */
#ifndef BENCH_PUSH_H
#define BENCH_PUSH_H

#include "bench_common.h"
#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>
#include "fake_push.h"

/* The providers, as a bit set (--providers). */
#define BP_APNS 0x1
#define BP_FCM 0x2
#define BP_WEBPUSH 0x4

/* "apns", "fcm" or "webpush" for one bit of the set. */
const char *bench_provider_name(int bit);

/* Latency samples, kept whole (at most a few hundred thousand per figure) so percentiles are exact. Zero it to
 * start; lat_free releases it. */
typedef struct st_lat_t {
    uint64_t *v;
    size_t n, cap;
    int sorted;
} lat_t;

/* Records one latency in nanoseconds (exits when out of memory). */
void lat_add(lat_t *l, uint64_t ns);

/* The pct-th percentile (0 < pct <= 100, nearest rank) in milliseconds; 0 when empty. Sorts the samples. */
double lat_pct_ms(lat_t *l, double pct);

/* The largest latency in milliseconds; 0 when empty. */
double lat_max_ms(lat_t *l);

void lat_free(lat_t *l);

/* Starts a fake for a part: providers' checks as in the tests, no limit on new APNs provider tokens, log_size
 * entries kept (< 0: counters only). Prints its pid. Returns 0 or -1 with a message. */
int bench_fake_start(cr_test_fake_push_t *fp, long log_size);

/* The parts; each adds its rows to the table. */
void part_sender(int providers, long n, long web_n, int active, int window);
void part_e2e(int providers, double secs, int rate);

#endif
