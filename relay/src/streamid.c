/* streamid.c — parsing Redis stream ids and decimal numbers. */
#include "streamid.h"
#include <inttypes.h>
#include <stdio.h>
#include <string.h>

int relay_parse_u64(const char *s, size_t n, uint64_t *out)
{
    uint64_t v = 0;
    if (n == 0 || n > 20)
        return -1;
    for (size_t i = 0; i < n; ++i) {
        unsigned d;
        if (s[i] < '0' || s[i] > '9')
            return -1;
        d = (unsigned)(s[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return -1;
        v = v * 10 + d;
    }
    *out = v;
    return 0;
}

int relay_stream_id_parse(const char *s, size_t n, uint64_t *ms, uint64_t *seq)
{
    const char *dash = memchr(s, '-', n);
    *seq = 0;
    if (relay_parse_u64(s, dash != NULL ? (size_t)(dash - s) : n, ms) != 0)
        return -1;
    return dash != NULL ? relay_parse_u64(dash + 1, (size_t)(s + n - dash - 1), seq) : 0;
}

int relay_stream_id_canon(const char *s, size_t n, char *out, char *next)
{
    uint64_t ms, seq;
    if (relay_stream_id_parse(s, n, &ms, &seq) != 0)
        return -1;
    snprintf(out, STREAM_ID_MAX, "%" PRIu64 "-%" PRIu64, ms, seq);
    if (next != NULL) {
        if (seq != UINT64_MAX)
            snprintf(next, STREAM_ID_MAX, "%" PRIu64 "-%" PRIu64, ms, seq + 1);
        else if (ms != UINT64_MAX)
            snprintf(next, STREAM_ID_MAX, "%" PRIu64 "-0", ms + 1);
        else
            snprintf(next, STREAM_ID_MAX, "%s", out);
    }
    return 0;
}
