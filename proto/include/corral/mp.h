/* mp.h — a bounded msgpack scanner: checks one value's framing, limits, nesting and UTF-8 without allocating. */
#ifndef CORRAL_MP_H
#define CORRAL_MP_H

#include <stddef.h>
#include <stdint.h>
#include "corral/limits.h"

/* A span of bytes inside a caller's buffer (not NUL-terminated). */
typedef struct st_cr_span_t {
    const char *base;
    size_t len;
} cr_span_t;

#define CR_SPAN_LIT(s) ((cr_span_t){(s), sizeof(s) - 1})

static inline int cr_span_eq(cr_span_t a, const char *lit, size_t litlen)
{
    return a.len == litlen && __builtin_memcmp(a.base, lit, litlen) == 0;
}

/* Checks that `p[0..len)` starts with one complete msgpack value of the kinds the protocol uses (nil, bool, int,
 * float, str, bin, array, map with str keys; no ext), within `lim` (depth, string, bin and element counts; NULL
 * means cr_limits_default) and with every str valid UTF-8. `max_total` caps the value's size in bytes.
 * On success stores the value's size in *used and returns 0. Returns CR_EAGAIN when the bytes end inside the
 * value (a stream decoder waits for more; a whole-buffer decoder reports CR_ETRUNCATED), or CR_EMSGPACK,
 * CR_ETOOLARGE, CR_ETOODEEP, CR_EENCODING with cr_error_last() naming the dotted path of the offending value
 * (`path_prefix` is prepended, may be NULL). */
int cr_mp_check(const char *p, size_t len, const cr_limits_t *lim, size_t max_total, const char *path_prefix,
                size_t *used);

/* Reads the header of the value at p (which cr_mp_check accepted). Sets *type to a MSGPACK_OBJECT_* constant,
 * and for str/bin the payload span, for array/map the count, for ints/floats/bools the value. Returns the header
 * size, or 0 if the bytes are not a value's start. Used by zero-copy walkers. */
typedef struct st_cr_mp_item_t {
    int type;          /* msgpack_object_type */
    uint32_t count;    /* array/map entries */
    cr_span_t bytes;   /* str/bin payload */
    uint64_t u;        /* POSITIVE_INTEGER, BOOLEAN */
    int64_t i;         /* NEGATIVE_INTEGER */
    double f;          /* FLOAT32/FLOAT64 */
} cr_mp_item_t;

size_t cr_mp_read(const char *p, const char *end, cr_mp_item_t *item);

/* Returns the end of the value starting at p, which cr_mp_check accepted. */
const char *cr_mp_skip(const char *p, const char *end);

/* Finds key `key` in the map value at mp[0..len) (checked) and stores its value's span. Returns 0 or
 * CR_ENOTFOUND (also when the value is not a map). */
int cr_mp_map_get(const char *mp, size_t len, const char *key, cr_span_t *out);

/* Reads the array of strings at mp[0..len) into out[0..*n) (spans into mp). Returns 0, CR_ENOTFOUND (not an array),
 * CR_ETOOLARGE (more than max elements) — *n is 0 then — or CR_EBODY (element *n is not a string, or is cut short:
 * the first *n were read). */
int cr_mp_str_array(const char *mp, size_t len, cr_span_t *out, size_t max, size_t *n);

/* Small canonical msgpack writers appending to a cr_buf_t, for messages built by hand (frames, error documents).
 * Each returns 0, or CR_ETOOLARGE / CR_ENOMEM when the buffer is full; they chain with ||. */
#include "corral/buf.h"
int cr_mpw_map(cr_buf_t *b, uint32_t n);
int cr_mpw_array(cr_buf_t *b, uint32_t n);
int cr_mpw_str(cr_buf_t *b, const char *s, size_t n);
int cr_mpw_uint(cr_buf_t *b, uint64_t v);
int cr_mpw_bool(cr_buf_t *b, int v);
int cr_mpw_nil(cr_buf_t *b);
#define CR_MPW_LIT(b, lit) cr_mpw_str((b), (lit), sizeof(lit) - 1)

/* The error object of Appendix A, {code, message, field?} (field left out when NULL or ""), with the message cut to
 * at most message_max bytes; cr_mpw_error_doc wraps it as the whole document {"error": {…}}. Same returns. */
int cr_mpw_error(cr_buf_t *b, const char *code, const char *field, const char *message, size_t message_max);
int cr_mpw_error_doc(cr_buf_t *b, const char *code, const char *field, const char *message, size_t message_max);

/* Returns 1 when s[0..n) is valid UTF-8 (no overlongs, no surrogates, at most U+10FFFF). */
int cr_utf8_valid(const char *s, size_t n);

#endif
