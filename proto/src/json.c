/* json.c — the one generic msgpack <-> JSON converter: a zero-copy msgpack walker and a strict RFC 8259 parser. */
#include "corral/json.h"
#include "corral/error.h"
#include "corral/mp.h"
#include <float.h>
#include <inttypes.h>
#include <math.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* Nesting is capped here as in cr_mp_check, whatever lim says, so both directions agree and recursion is bounded. */
#define MAX_NEST 64
#define PATH_MAX_KEY 32
#define BIN_KEY "$bin"

/* One step of the dotted path of the value being converted, for error messages ("b.files.2.path"). The key is
 * copied because the bytes it came from may move (JSON keys live in the output buffer). */
typedef struct st_path_t {
    const struct st_path_t *up;
    size_t index;               /* array element, when !is_key */
    int is_key;                 /* a map member named key */
    char key[PATH_MAX_KEY + 1]; /* "?" when not printable ASCII */
} path_t;

static void path_set_key(path_t *node, const char *key, size_t len)
{
    size_t n = len > PATH_MAX_KEY ? PATH_MAX_KEY : len;
    node->is_key = 1;
    for (size_t i = 0; i < n; ++i) {
        unsigned char c = (unsigned char)key[i];
        if (c < 0x20 || c >= 0x7f || c == '"') {
            strcpy(node->key, "?");
            return;
        }
    }
    memcpy(node->key, key, n);
    node->key[n] = '\0';
}

static const char *path_format(char *buf, size_t size, const path_t *path)
{
    const path_t *chain[MAX_NEST + 1];
    int n = 0;
    size_t len = 0;
    for (; path != NULL && n < MAX_NEST + 1; path = path->up)
        chain[n++] = path;
    buf[0] = '\0';
    for (int i = n - 1; i >= 0 && len < size; --i) {
        const char *dot = len > 0 ? "." : "";
        if (chain[i]->is_key)
            len += (size_t)snprintf(buf + len, size - len, "%s%s", dot, chain[i]->key);
        else
            len += (size_t)snprintf(buf + len, size - len, "%s%zu", dot, chain[i]->index);
    }
    return buf;
}

#define FAIL_AT(path, code, ...)                                                                                       \
    do {                                                                                                               \
        char path_[sizeof(((cr_error_t *)0)->field)];                                                                  \
        return cr_error_set((code), path_format(path_, sizeof(path_), (path)), __VA_ARGS__);                           \
    } while (0)

/* ---- msgpack -> JSON ---------------------------------------------------------------------------------------- */

/* Writes d in the shortest of %.15g/%.16g/%.17g that reads back to d, with ".0" added when it would look like an
 * int. Any double with at most 15 significant digits prints so; subnormals carry fewer, so for them every precision
 * from 1 is tried (they print with an exponent whatever the precision). buf needs 32 bytes. Returns the length. */
static size_t format_double(char *buf, size_t size, double d)
{
    int n = 0;
    for (int prec = d != 0 && fabs(d) < DBL_MIN ? 1 : 15; prec <= 17; ++prec) {
        n = snprintf(buf, size, "%.*g", prec, d);
        if (strtod(buf, NULL) == d)
            break;
    }
    if (strpbrk(buf, ".eE") == NULL) {
        memcpy(buf + n, ".0", 3);
        n += 2;
    }
    return (size_t)n;
}

static int append_json_string(cr_buf_t *out, const char *s, size_t n)
{
    const char *run = s, *end = s + n;
    int rc;
    if ((rc = cr_buf_append(out, "\"", 1)) != 0)
        return rc;
    for (; s < end; ++s) {
        unsigned char c = (unsigned char)*s;
        char esc[8];
        size_t esclen = 2;
        if (c >= 0x20 && c != '"' && c != '\\')
            continue;
        if ((rc = cr_buf_append(out, run, (size_t)(s - run))) != 0)
            return rc;
        run = s + 1;
        esc[0] = '\\';
        switch (c) {
        case '"': esc[1] = '"'; break;
        case '\\': esc[1] = '\\'; break;
        case '\b': esc[1] = 'b'; break;
        case '\f': esc[1] = 'f'; break;
        case '\n': esc[1] = 'n'; break;
        case '\r': esc[1] = 'r'; break;
        case '\t': esc[1] = 't'; break;
        default: esclen = (size_t)snprintf(esc, sizeof(esc), "\\u%04x", c); break;
        }
        if ((rc = cr_buf_append(out, esc, esclen)) != 0)
            return rc;
    }
    if ((rc = cr_buf_append(out, run, (size_t)(end - run))) != 0)
        return rc;
    return cr_buf_append(out, "\"", 1);
}

static int append_json_bin(cr_buf_t *out, const char *bin, size_t n)
{
    size_t enclen = sodium_base64_ENCODED_LEN(n, sodium_base64_VARIANT_ORIGINAL);
    int rc;
    if ((rc = cr_buf_append(out, "{\"" BIN_KEY "\":\"", sizeof(BIN_KEY) + 4)) != 0 || (rc = cr_buf_reserve(out, enclen)) != 0)
        return rc;
    sodium_bin2base64(out->base + out->len, enclen, (const unsigned char *)bin, n, sodium_base64_VARIANT_ORIGINAL);
    out->len += enclen - 1; /* without the NUL */
    return cr_buf_append(out, "\"}", 2);
}

/* Writes the value at *pp (accepted by cr_mp_check) and advances *pp past it. Recursion is bounded by the check. */
static int write_json(cr_buf_t *out, const char **pp, const char *end, const path_t *path)
{
    cr_mp_item_t it;
    char num[40];
    size_t n = cr_mp_read(*pp, end, &it);
    int rc = 0;

    *pp += n;
    switch (it.type) {
    case MSGPACK_OBJECT_NIL:
        return cr_buf_append(out, "null", 4);
    case MSGPACK_OBJECT_BOOLEAN:
        return it.u ? cr_buf_append(out, "true", 4) : cr_buf_append(out, "false", 5);
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        return cr_buf_append(out, num, (size_t)snprintf(num, sizeof(num), "%" PRIu64, it.u));
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        return cr_buf_append(out, num, (size_t)snprintf(num, sizeof(num), "%" PRId64, it.i));
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        if (!isfinite(it.f))
            FAIL_AT(path, CR_EMSGPACK, "%s has no JSON form", isnan(it.f) ? "NaN" : "an infinite float");
        return cr_buf_append(out, num, format_double(num, sizeof(num), it.f));
    case MSGPACK_OBJECT_STR:
        return append_json_string(out, it.bytes.base, it.bytes.len);
    case MSGPACK_OBJECT_BIN:
        return append_json_bin(out, it.bytes.base, it.bytes.len);
    case MSGPACK_OBJECT_ARRAY: {
        path_t child = {.up = path};
        if ((rc = cr_buf_append(out, "[", 1)) != 0)
            return rc;
        for (uint32_t i = 0; i < it.count; ++i) {
            child.index = i;
            if ((i > 0 && (rc = cr_buf_append(out, ",", 1)) != 0) || (rc = write_json(out, pp, end, &child)) != 0)
                return rc;
        }
        return cr_buf_append(out, "]", 1);
    }
    case MSGPACK_OBJECT_MAP: {
        path_t child = {.up = path};
        if ((rc = cr_buf_append(out, "{", 1)) != 0)
            return rc;
        for (uint32_t i = 0; i < it.count; ++i) {
            cr_mp_item_t key, val;
            *pp += cr_mp_read(*pp, end, &key); /* cr_mp_check saw to it that keys are str */
            path_set_key(&child, key.bytes.base, key.bytes.len);
            if (it.count == 1 && cr_span_eq(key.bytes, BIN_KEY, sizeof(BIN_KEY) - 1) && cr_mp_read(*pp, end, &val) != 0 &&
                val.type == MSGPACK_OBJECT_STR)
                FAIL_AT(path, CR_EMSGPACK, "a map whose only key is \"$bin\" with a str value would read back from JSON as a bin");
            if ((i > 0 && (rc = cr_buf_append(out, ",", 1)) != 0) ||
                (rc = append_json_string(out, key.bytes.base, key.bytes.len)) != 0 || (rc = cr_buf_append(out, ":", 1)) != 0 ||
                (rc = write_json(out, pp, end, &child)) != 0)
                return rc;
        }
        return cr_buf_append(out, "}", 1);
    }
    default: /* cr_mp_check lets nothing else through */
        return cr_error_set(CR_EMSGPACK, NULL, "unexpected msgpack type");
    }
}

int cr_json_from_msgpack(cr_buf_t *out, const char *mp, size_t len, const cr_limits_t *lim)
{
    size_t old_len = out->len, used;
    const char *p = mp;
    int rc;

    if (len == 0)
        return cr_error_set(CR_ETRUNCATED, NULL, "empty input: no msgpack value");
    if ((rc = cr_mp_check(mp, len, lim, SIZE_MAX, NULL, &used)) != 0) {
        if (rc == CR_EAGAIN) {
            char field[sizeof(((cr_error_t *)0)->field)];
            memcpy(field, cr_error_last()->field, sizeof(field));
            return cr_error_set(CR_ETRUNCATED, field, "msgpack ends inside a value after %zu bytes", len);
        }
        return rc;
    }
    if (used < len)
        return cr_error_set(CR_ETRAILING, NULL, "%zu trailing byte(s) after the msgpack value, at offset %zu", len - used, used);
    if ((rc = write_json(out, &p, mp + len, NULL)) != 0)
        out->len = old_len;
    return rc;
}

/* ---- JSON -> msgpack ---------------------------------------------------------------------------------------- */

typedef struct st_parser_t {
    const char *base, *p, *end;
    cr_buf_t *out;
    const cr_limits_t *lim;
    unsigned max_depth;
    size_t max_bin_text; /* base64 length of the largest bin allowed */
} parser_t;

#define OFFSET(jp) ((size_t)((jp)->p - (jp)->base))

static void skip_ws(parser_t *jp)
{
    while (jp->p < jp->end && (*jp->p == ' ' || *jp->p == '\t' || *jp->p == '\n' || *jp->p == '\r'))
        ++jp->p;
}

/* Fails on the byte at jp->p, which cannot start what `expected` names. */
static int unexpected(parser_t *jp, const path_t *path, const char *expected)
{
    unsigned char c;
    if (jp->p >= jp->end)
        FAIL_AT(path, CR_EJSON, "input ends where %s was expected, at offset %zu", expected, OFFSET(jp));
    c = (unsigned char)*jp->p;
    if (c > 0x20 && c < 0x7f)
        FAIL_AT(path, CR_EJSON, "'%c' where %s was expected, at offset %zu", c, expected, OFFSET(jp));
    FAIL_AT(path, CR_EJSON, "byte 0x%02x where %s was expected, at offset %zu", c, expected, OFFSET(jp));
}

/* Builds the header of a str/bin/array/map of n entries or bytes from its fix base (0: none) and its 8/16/32-bit
 * type bytes (c8 0: none). Returns its size. */
static size_t sized_header(unsigned char *h, size_t n, unsigned fixbase, size_t fixmax, unsigned c8, unsigned c16, unsigned c32)
{
    if (fixbase != 0 && n <= fixmax) {
        h[0] = (unsigned char)(fixbase | n);
        return 1;
    }
    if (c8 != 0 && n <= 0xff) {
        h[0] = (unsigned char)c8;
        h[1] = (unsigned char)n;
        return 2;
    }
    if (n <= 0xffff) {
        h[0] = (unsigned char)c16;
        h[1] = (unsigned char)(n >> 8);
        h[2] = (unsigned char)n;
        return 3;
    }
    h[0] = (unsigned char)c32;
    for (int i = 0; i < 4; ++i)
        h[1 + i] = (unsigned char)(n >> (24 - 8 * i));
    return 5;
}

static size_t put_be(unsigned char *h, unsigned type, uint64_t v, unsigned width)
{
    h[0] = (unsigned char)type;
    for (unsigned i = 0; i < width; ++i)
        h[1 + i] = (unsigned char)(v >> (8 * (width - 1 - i)));
    return 1 + width;
}

static size_t uint_header(unsigned char *h, uint64_t v)
{
    if (v <= 0x7f) {
        h[0] = (unsigned char)v;
        return 1;
    }
    return v <= 0xff ? put_be(h, 0xcc, v, 1)
           : v <= 0xffff ? put_be(h, 0xcd, v, 2)
           : v <= 0xffffffff ? put_be(h, 0xce, v, 4)
                             : put_be(h, 0xcf, v, 8);
}

static size_t int_header(unsigned char *h, int64_t v)
{
    if (v >= 0)
        return uint_header(h, (uint64_t)v);
    if (v >= -32) {
        h[0] = (unsigned char)(int8_t)v;
        return 1;
    }
    return v >= INT8_MIN ? put_be(h, 0xd0, (uint64_t)v, 1)
           : v >= INT16_MIN ? put_be(h, 0xd1, (uint64_t)v, 2)
           : v >= INT32_MIN ? put_be(h, 0xd2, (uint64_t)v, 4)
                            : put_be(h, 0xd3, (uint64_t)v, 8);
}

/* Inserts a header in front of the bytes written since `at`. */
static int insert_header(cr_buf_t *out, size_t at, const unsigned char *h, size_t n)
{
    int rc;
    if ((rc = cr_buf_reserve(out, n)) != 0)
        return rc;
    memmove(out->base + at + n, out->base + at, out->len - at);
    memcpy(out->base + at, h, n);
    out->len += n;
    return 0;
}

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

/* Reads the 4 hex digits of a \u escape at jp->p (just after the 'u'). Returns the code unit or -1. */
static long read_hex4(parser_t *jp)
{
    long v = 0;
    if (jp->end - jp->p < 4)
        return -1;
    for (int i = 0; i < 4; ++i) {
        int d = hexval(jp->p[i]);
        if (d < 0)
            return -1;
        v = v * 16 + d;
    }
    jp->p += 4;
    return v;
}

static size_t utf8_encode(char *buf, unsigned long cp)
{
    if (cp < 0x80) {
        buf[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        buf[0] = (char)(0xc0 | (cp >> 6));
        buf[1] = (char)(0x80 | (cp & 0x3f));
        return 2;
    }
    if (cp < 0x10000) {
        buf[0] = (char)(0xe0 | (cp >> 12));
        buf[1] = (char)(0x80 | ((cp >> 6) & 0x3f));
        buf[2] = (char)(0x80 | (cp & 0x3f));
        return 3;
    }
    buf[0] = (char)(0xf0 | (cp >> 18));
    buf[1] = (char)(0x80 | ((cp >> 12) & 0x3f));
    buf[2] = (char)(0x80 | ((cp >> 6) & 0x3f));
    buf[3] = (char)(0x80 | (cp & 0x3f));
    return 4;
}

/* Decodes the string at jp->p (on its opening quote) and appends it to out as a msgpack str of at most `max`
 * bytes. */
static int parse_string(parser_t *jp, const path_t *path, size_t max)
{
    size_t start = jp->out->len, str_offset = OFFSET(jp), n = 0;
    unsigned char h[5];
    int rc;

    ++jp->p;
    for (;;) {
        const char *run = jp->p;
        char u8[4];
        size_t u8len;
        long cu, lo;
        while (jp->p < jp->end && (unsigned char)*jp->p >= 0x20 && *jp->p != '"' && *jp->p != '\\')
            ++jp->p;
        if (jp->p > run) {
            size_t runlen = (size_t)(jp->p - run);
            if (runlen > max - n)
                FAIL_AT(path, CR_ETOOLARGE, "string at offset %zu is over the limit of %zu bytes", str_offset, max);
            if (!cr_utf8_valid(run, runlen))
                FAIL_AT(path, CR_EENCODING, "string at offset %zu is not valid UTF-8", str_offset);
            if ((rc = cr_buf_append(jp->out, run, runlen)) != 0)
                return rc;
            n += runlen;
        }
        if (jp->p >= jp->end)
            FAIL_AT(path, CR_EJSON, "unterminated string starting at offset %zu", str_offset);
        if (*jp->p == '"')
            break;
        if (*jp->p != '\\')
            FAIL_AT(path, CR_EJSON, "control character 0x%02x in a string at offset %zu", (unsigned char)*jp->p, OFFSET(jp));
        if (++jp->p >= jp->end)
            FAIL_AT(path, CR_EJSON, "unterminated string starting at offset %zu", str_offset);
        u8len = 1;
        switch (*jp->p++) {
        case '"': u8[0] = '"'; break;
        case '\\': u8[0] = '\\'; break;
        case '/': u8[0] = '/'; break;
        case 'b': u8[0] = '\b'; break;
        case 'f': u8[0] = '\f'; break;
        case 'n': u8[0] = '\n'; break;
        case 'r': u8[0] = '\r'; break;
        case 't': u8[0] = '\t'; break;
        case 'u':
            if ((cu = read_hex4(jp)) < 0)
                FAIL_AT(path, CR_EJSON, "\\u must be followed by 4 hex digits, at offset %zu", OFFSET(jp));
            if (cu >= 0xdc00 && cu <= 0xdfff)
                FAIL_AT(path, CR_EJSON, "unpaired low surrogate \\u%04lx at offset %zu", cu, OFFSET(jp) - 6);
            if (cu >= 0xd800 && cu <= 0xdbff) {
                if (jp->end - jp->p < 2 || jp->p[0] != '\\' || jp->p[1] != 'u')
                    FAIL_AT(path, CR_EJSON, "unpaired high surrogate \\u%04lx at offset %zu", cu, OFFSET(jp) - 6);
                jp->p += 2;
                if ((lo = read_hex4(jp)) < 0)
                    FAIL_AT(path, CR_EJSON, "\\u must be followed by 4 hex digits, at offset %zu", OFFSET(jp));
                if (lo < 0xdc00 || lo > 0xdfff)
                    FAIL_AT(path, CR_EJSON, "unpaired high surrogate \\u%04lx at offset %zu", cu, OFFSET(jp) - 12);
                cu = 0x10000 + ((cu - 0xd800) << 10) + (lo - 0xdc00);
            }
            u8len = utf8_encode(u8, (unsigned long)cu);
            break;
        default: {
            unsigned char c = (unsigned char)*--jp->p;
            FAIL_AT(path, CR_EJSON, "bad escape '\\%c' at offset %zu", c >= 0x20 && c < 0x7f ? c : '?', OFFSET(jp) - 1);
        }
        }
        if (u8len > max - n)
            FAIL_AT(path, CR_ETOOLARGE, "string at offset %zu is over the limit of %zu bytes", str_offset, max);
        if ((rc = cr_buf_append(jp->out, u8, u8len)) != 0)
            return rc;
        n += u8len;
    }
    ++jp->p; /* the closing quote */
    if (n > UINT32_MAX)
        FAIL_AT(path, CR_ETOOLARGE, "string at offset %zu is over the msgpack limit of 4 GiB", str_offset);
    return insert_header(jp->out, start, h, sized_header(h, n, 0xa0, 31, 0xd9, 0xda, 0xdb));
}

static int parse_number(parser_t *jp, const path_t *path)
{
    const char *s = jp->p, *q = s, *end = jp->end;
    int neg = 0, is_float = 0;
    unsigned char h[9];

#define DIGIT(x) ((x) < end && *(x) >= '0' && *(x) <= '9')
    if (*q == '-') {
        neg = 1;
        ++q;
    }
    if (!DIGIT(q))
        FAIL_AT(path, CR_EJSON, "a digit must follow '-', at offset %zu", (size_t)(q - jp->base));
    if (*q == '0') {
        if (DIGIT(q + 1))
            FAIL_AT(path, CR_EJSON, "number with a leading zero at offset %zu", (size_t)(s - jp->base));
        ++q;
    } else {
        while (DIGIT(q))
            ++q;
    }
    if (q < end && *q == '.') {
        is_float = 1;
        ++q;
        if (!DIGIT(q))
            FAIL_AT(path, CR_EJSON, "a digit must follow '.', at offset %zu", (size_t)(q - jp->base));
        while (DIGIT(q))
            ++q;
    }
    if (q < end && (*q == 'e' || *q == 'E')) {
        is_float = 1;
        ++q;
        if (q < end && (*q == '+' || *q == '-'))
            ++q;
        if (!DIGIT(q))
            FAIL_AT(path, CR_EJSON, "an exponent needs digits, at offset %zu", (size_t)(q - jp->base));
        while (DIGIT(q))
            ++q;
    }
#undef DIGIT
    jp->p = q;

    if (!is_float) {
        uint64_t v = 0;
        for (const char *d = s + neg; d < q; ++d) {
            unsigned digit = (unsigned)(*d - '0');
            if (v > (UINT64_MAX - digit) / 10)
                FAIL_AT(path, CR_EJSON, "integer out of range at offset %zu", (size_t)(s - jp->base));
            v = v * 10 + digit;
        }
        if (!neg)
            return cr_buf_append(jp->out, h, uint_header(h, v));
        if (v > (uint64_t)INT64_MAX + 1)
            FAIL_AT(path, CR_EJSON, "integer out of range at offset %zu", (size_t)(s - jp->base));
        return cr_buf_append(jp->out, h, int_header(h, v == (uint64_t)INT64_MAX + 1 ? INT64_MIN : -(int64_t)v));
    } else {
        /* strtod needs a NUL-terminated copy; the C locale (never changed by corral) reads '.' */
        size_t toklen = (size_t)(q - s);
        char small[64], *tok = toklen < sizeof(small) ? small : malloc(toklen + 1);
        double d;
        uint64_t bits;
        if (tok == NULL)
            return cr_error_set(CR_ENOMEM, NULL, "out of memory reading a number of %zu characters", toklen);
        memcpy(tok, s, toklen);
        tok[toklen] = '\0';
        d = strtod(tok, NULL);
        if (tok != small)
            free(tok);
        if (isinf(d))
            FAIL_AT(path, CR_EJSON, "number out of range at offset %zu", (size_t)(s - jp->base));
        memcpy(&bits, &d, 8);
        return cr_buf_append(jp->out, h, put_be(h, 0xcb, bits, 8));
    }
}

static int parse_value(parser_t *jp, const path_t *path, unsigned depth, size_t max_string);

static int parse_array(parser_t *jp, const path_t *path, unsigned depth)
{
    size_t start = jp->out->len, offset = OFFSET(jp), count = 0;
    path_t child = {.up = path};
    unsigned char h[5];
    int rc;

    ++jp->p;
    skip_ws(jp);
    if (jp->p < jp->end && *jp->p == ']') {
        ++jp->p;
    } else {
        for (;;) {
            if (count == jp->lim->max_elements)
                FAIL_AT(path, CR_ETOOLARGE, "array at offset %zu has more than %zu entries", offset, jp->lim->max_elements);
            child.index = count;
            if ((rc = parse_value(jp, &child, depth, jp->lim->max_string)) != 0)
                return rc;
            ++count;
            skip_ws(jp);
            if (jp->p < jp->end && *jp->p == ']') {
                ++jp->p;
                break;
            }
            if (jp->p >= jp->end || *jp->p != ',')
                return unexpected(jp, path, "',' or ']'");
            ++jp->p;
            skip_ws(jp);
            if (jp->p < jp->end && *jp->p == ']')
                FAIL_AT(path, CR_EJSON, "trailing comma in an array at offset %zu", OFFSET(jp));
        }
    }
    if (count > UINT32_MAX)
        FAIL_AT(path, CR_ETOOLARGE, "array is over the msgpack limit of 2^32-1 entries");
    return insert_header(jp->out, start, h, sized_header(h, count, 0x90, 15, 0, 0xdc, 0xdd));
}

/* Turns the map {"$bin": str} just written at out[start..] into a bin of the decoded base64. */
static int map_to_bin(parser_t *jp, const path_t *path, size_t start, size_t value_at, size_t value_offset)
{
    cr_mp_item_t str;
    size_t hlen = cr_mp_read(jp->out->base + value_at, jp->out->base + jp->out->len, &str), binlen = 0, maxlen;
    unsigned char h[5], *bin;
    int rc;

    if (hlen == 0 || str.type != MSGPACK_OBJECT_STR)
        return cr_error_set(CR_ERR, NULL, "internal: $bin value is not a str");
    maxlen = str.bytes.len / 4 * 3 + 3;
    if ((bin = malloc(maxlen)) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory decoding base64 of %zu characters", str.bytes.len);
    if (sodium_base642bin(bin, maxlen, str.bytes.base, str.bytes.len, NULL, &binlen, NULL, sodium_base64_VARIANT_ORIGINAL) != 0) {
        free(bin);
        FAIL_AT(path, CR_EENCODING, "\"$bin\" at offset %zu is not standard padded base64", value_offset);
    }
    if (binlen > jp->lim->max_bin) {
        free(bin);
        FAIL_AT(path, CR_ETOOLARGE, "bin of %zu bytes is over the limit of %zu", binlen, jp->lim->max_bin);
    }
    jp->out->len = start;
    hlen = sized_header(h, binlen, 0, 0, 0xc4, 0xc5, 0xc6);
    if ((rc = cr_buf_append(jp->out, h, hlen)) == 0)
        rc = cr_buf_append(jp->out, bin, binlen);
    free(bin);
    return rc;
}

static int parse_object(parser_t *jp, const path_t *path, unsigned depth)
{
    size_t start = jp->out->len, offset = OFFSET(jp), count = 0, value_at = 0, value_offset = 0;
    size_t bin_max = jp->max_bin_text > jp->lim->max_string ? jp->max_bin_text : jp->lim->max_string;
    path_t child = {.up = path};
    unsigned char h[5];
    int rc, bin_candidate = 0;

    ++jp->p;
    skip_ws(jp);
    if (jp->p < jp->end && *jp->p == '}') {
        ++jp->p;
    } else {
        for (;;) {
            size_t key_at = jp->out->len;
            cr_mp_item_t key;
            if (count == jp->lim->max_elements)
                FAIL_AT(path, CR_ETOOLARGE, "object at offset %zu has more than %zu entries", offset, jp->lim->max_elements);
            if (jp->p >= jp->end || *jp->p != '"')
                return unexpected(jp, path, "a string key");
            if ((rc = parse_string(jp, path, jp->lim->max_string)) != 0)
                return rc;
            cr_mp_read(jp->out->base + key_at, jp->out->base + jp->out->len, &key);
            path_set_key(&child, key.bytes.base, key.bytes.len);
            bin_candidate = count == 0 && cr_span_eq(key.bytes, BIN_KEY, sizeof(BIN_KEY) - 1);
            skip_ws(jp);
            if (jp->p >= jp->end || *jp->p != ':')
                return unexpected(jp, path, "':'");
            ++jp->p;
            skip_ws(jp);
            value_at = jp->out->len;
            value_offset = OFFSET(jp);
            /* the base64 of a bin may be longer than a string may be; checked below once the object is known */
            if ((rc = parse_value(jp, &child, depth, bin_candidate ? bin_max : jp->lim->max_string)) != 0)
                return rc;
            bin_candidate = bin_candidate && jp->base[value_offset] == '"';
            ++count;
            skip_ws(jp);
            if (jp->p < jp->end && *jp->p == '}') {
                ++jp->p;
                break;
            }
            if (jp->p >= jp->end || *jp->p != ',')
                return unexpected(jp, path, "',' or '}'");
            if (bin_candidate) { /* not a bin after all: an ordinary string */
                cr_mp_item_t str;
                cr_mp_read(jp->out->base + value_at, jp->out->base + jp->out->len, &str);
                if (str.bytes.len > jp->lim->max_string)
                    FAIL_AT(&child, CR_ETOOLARGE, "string at offset %zu is over the limit of %zu bytes", value_offset,
                            jp->lim->max_string);
            }
            ++jp->p;
            skip_ws(jp);
            if (jp->p < jp->end && *jp->p == '}')
                FAIL_AT(path, CR_EJSON, "trailing comma in an object at offset %zu", OFFSET(jp));
        }
    }
    if (count == 1 && bin_candidate)
        return map_to_bin(jp, path, start, value_at, value_offset);
    if (count > UINT32_MAX)
        FAIL_AT(path, CR_ETOOLARGE, "object is over the msgpack limit of 2^32-1 entries");
    return insert_header(jp->out, start, h, sized_header(h, count, 0x80, 15, 0, 0xde, 0xdf));
}

/* Parses the value at jp->p (after optional whitespace) that sits inside `depth` containers. */
static int parse_value(parser_t *jp, const path_t *path, unsigned depth, size_t max_string)
{
    static const struct {
        const char *text;
        size_t len;
        unsigned char mp;
    } literals[] = {{"null", 4, 0xc0}, {"false", 5, 0xc2}, {"true", 4, 0xc3}};

    skip_ws(jp);
    if (jp->p >= jp->end)
        return unexpected(jp, path, "a value");
    switch (*jp->p) {
    case '{':
    case '[':
        if (depth + 1 > jp->max_depth)
            FAIL_AT(path, CR_ETOODEEP, "nesting is deeper than the limit of %u at offset %zu", jp->max_depth, OFFSET(jp));
        return *jp->p == '{' ? parse_object(jp, path, depth + 1) : parse_array(jp, path, depth + 1);
    case '"':
        return parse_string(jp, path, max_string);
    case '-':
    case '0': case '1': case '2': case '3': case '4': case '5': case '6': case '7': case '8': case '9':
        return parse_number(jp, path);
    default:
        for (size_t i = 0; i < sizeof(literals) / sizeof(literals[0]); ++i) {
            if ((size_t)(jp->end - jp->p) >= literals[i].len && memcmp(jp->p, literals[i].text, literals[i].len) == 0) {
                jp->p += literals[i].len;
                return cr_buf_append(jp->out, &literals[i].mp, 1);
            }
        }
        return unexpected(jp, path, "a value");
    }
}

int cr_json_to_msgpack(cr_buf_t *out, const char *json, size_t len, const cr_limits_t *lim)
{
    parser_t jp = {.base = json, .p = json, .end = json + len, .out = out, .lim = lim != NULL ? lim : &cr_limits_default};
    size_t old_len = out->len;
    int rc;

    jp.max_depth = jp.lim->max_depth < MAX_NEST ? jp.lim->max_depth : MAX_NEST;
    jp.max_bin_text = jp.lim->max_bin / 3 * 4 + (jp.lim->max_bin % 3 != 0 ? 4 : 0);
    if ((rc = parse_value(&jp, NULL, 0, jp.lim->max_string)) == 0) {
        skip_ws(&jp);
        if (jp.p < jp.end)
            rc = cr_error_set(CR_EJSON, NULL, "trailing characters after the JSON value at offset %zu", OFFSET(&jp));
    }
    if (rc != 0)
        out->len = old_len;
    return rc;
}
