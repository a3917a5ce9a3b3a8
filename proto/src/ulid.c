/* ulid.c — ULIDs (48-bit ms + 80 random bits in Crockford base32), monotonic per process; protocol id checks; clock. */
#include "corral/ulid.h"
#include <pthread.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static const char crockford[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/* The generator's state: the last id made, so the next one in the same millisecond is its successor. */
static pthread_mutex_t ulid_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t ulid_last_ms;
static uint8_t ulid_last_rnd[10];
static int ulid_started;

uint64_t cr_now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

void cr_ulid_make(char out[CR_ULID_LEN + 1], uint64_t ms, const uint8_t rnd[10])
{
    uint8_t v[16];

    for (int i = 0; i < 6; ++i)
        v[i] = (uint8_t)(ms >> (8 * (5 - i)));
    memcpy(v + 6, rnd, 10);
    /* 26 digits of 5 bits are 130 bits: two zero bits, then the 128 bits of v, most significant first. */
    for (int i = 0; i < CR_ULID_LEN; ++i) {
        unsigned q = 0;
        for (int k = 5 * i; k < 5 * i + 5; ++k)
            q = (q << 1) | (k < 2 ? 0u : (unsigned)(v[(k - 2) / 8] >> (7 - (k - 2) % 8)) & 1u);
        out[i] = crockford[q];
    }
    out[CR_ULID_LEN] = '\0';
}

/* Adds one to the 80-bit big-endian number r. Returns 1 when it wrapped around to zero. */
static int cr_ulid__increment(uint8_t r[10])
{
    for (int i = 9; i >= 0; --i)
        if (++r[i] != 0)
            return 0;
    return 1;
}

static void cr_ulid__sleep_a_little(void)
{
    struct timespec ts = {0, 100 * 1000};
    nanosleep(&ts, NULL);
}

void cr_ulid_new(char out[CR_ULID_LEN + 1])
{
    uint64_t ms, id_ms;
    uint8_t rnd[10];

    pthread_mutex_lock(&ulid_lock);
    if (!ulid_started) {
        /* randombytes_buf works without it, but libsodium asks for sodium_init() first; it is idempotent. */
        if (sodium_init() < 0)
            abort();
        ulid_started = 1;
    }
    ms = cr_now_ms();
    if (ulid_last_ms != 0 && ms <= ulid_last_ms) {
        /* Same millisecond (or the clock stepped back: keep the last time so ids still sort in creation order):
         * the successor of the last id. */
        id_ms = ulid_last_ms;
        memcpy(rnd, ulid_last_rnd, sizeof(rnd));
        if (cr_ulid__increment(rnd)) {
            /* 2^80 ids in one millisecond: wait for the next one. If the clock is behind, step the time forward
             * ourselves rather than wait for it to catch up. */
            while ((ms = cr_now_ms()) == ulid_last_ms)
                cr_ulid__sleep_a_little();
            id_ms = ms > ulid_last_ms ? ms : ulid_last_ms + 1;
            randombytes_buf(rnd, sizeof(rnd));
        }
    } else {
        id_ms = ms;
        randombytes_buf(rnd, sizeof(rnd));
    }
    ulid_last_ms = id_ms;
    memcpy(ulid_last_rnd, rnd, sizeof(rnd));
    pthread_mutex_unlock(&ulid_lock);

    cr_ulid_make(out, id_ms, rnd);
    sodium_memzero(rnd, sizeof(rnd));
}

/* The value of a Crockford base32 digit (either case; I, L, O and U are not digits), or -1. */
static int cr_ulid__digit(unsigned char c)
{
    if (c >= 'a' && c <= 'z')
        c = (unsigned char)(c - 'a' + 'A');
    const char *p = c != '\0' ? strchr(crockford, c) : NULL;
    return p != NULL ? (int)(p - crockford) : -1;
}

int cr_ulid_parse(const char *s, uint64_t *ms)
{
    uint64_t t = 0;

    if (s == NULL)
        return 0;
    for (int i = 0; i < CR_ULID_LEN; ++i) {
        int d = cr_ulid__digit((unsigned char)s[i]);
        if (d < 0 || (i == 0 && d > 7))
            return 0;
        if (i < 10) /* the first 10 digits carry the 48-bit time (50 bits, the top two zero) */
            t = (t << 5) | (uint64_t)d;
    }
    if (s[CR_ULID_LEN] != '\0')
        return 0;
    if (ms != NULL)
        *ms = t;
    return 1;
}

/* 1 for the characters of [A-Za-z0-9._-] */
static const unsigned char id_chars[256] = {
    ['-'] = 1, ['.'] = 1, ['_'] = 1,
    ['0'] = 1, ['1'] = 1, ['2'] = 1, ['3'] = 1, ['4'] = 1, ['5'] = 1, ['6'] = 1, ['7'] = 1, ['8'] = 1, ['9'] = 1,
    ['A'] = 1, ['B'] = 1, ['C'] = 1, ['D'] = 1, ['E'] = 1, ['F'] = 1, ['G'] = 1, ['H'] = 1, ['I'] = 1, ['J'] = 1,
    ['K'] = 1, ['L'] = 1, ['M'] = 1, ['N'] = 1, ['O'] = 1, ['P'] = 1, ['Q'] = 1, ['R'] = 1, ['S'] = 1, ['T'] = 1,
    ['U'] = 1, ['V'] = 1, ['W'] = 1, ['X'] = 1, ['Y'] = 1, ['Z'] = 1,
    ['a'] = 1, ['b'] = 1, ['c'] = 1, ['d'] = 1, ['e'] = 1, ['f'] = 1, ['g'] = 1, ['h'] = 1, ['i'] = 1, ['j'] = 1,
    ['k'] = 1, ['l'] = 1, ['m'] = 1, ['n'] = 1, ['o'] = 1, ['p'] = 1, ['q'] = 1, ['r'] = 1, ['s'] = 1, ['t'] = 1,
    ['u'] = 1, ['v'] = 1, ['w'] = 1, ['x'] = 1, ['y'] = 1, ['z'] = 1,
};

int cr_id_valid(const char *s, size_t n)
{
    if (s == NULL || n == 0 || n > 64)
        return 0;
    for (size_t i = 0; i < n; ++i)
        if (!id_chars[(unsigned char)s[i]])
            return 0;
    return 1;
}
