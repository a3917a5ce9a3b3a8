/* mp.c — the bounded msgpack scanner: framing, limits, nesting and UTF-8 checked in one pass, no allocation. */
#include "corral/mp.h"
#include "corral/error.h"
#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#define MAX_STACK 64

const cr_limits_t cr_limits_default = {
    .max_envelope = 256 * 1024,
    .max_string = 64 * 1024,
    .max_bin = 2 * 1024 * 1024,
    .max_patch = 64 * 1024,
    .max_audio = 2 * 1024 * 1024,
    .max_message_text = 4 * 1024,
    .max_batch_events = 512,
    .max_batch_bytes = 1024 * 1024,
    .max_elements = 65536,
    .max_depth = 16,
};

static inline uint16_t be16(const unsigned char *p)
{
    return (uint16_t)((p[0] << 8) | p[1]);
}

static inline uint32_t be32(const unsigned char *p)
{
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8) | p[3];
}

static inline uint64_t be64(const unsigned char *p)
{
    return ((uint64_t)be32(p) << 32) | be32(p + 4);
}

int cr_utf8_valid(const char *str, size_t n)
{
    const unsigned char *s = (const unsigned char *)str, *end = s + n;
    while (s < end) {
        /* ASCII fast path, 8 bytes at a time */
        while (end - s >= 8) {
            uint64_t w;
            memcpy(&w, s, 8);
            if ((w & 0x8080808080808080ULL) != 0)
                break;
            s += 8;
        }
        if (s >= end)
            break;
        unsigned c = *s;
        if (c < 0x80) {
            ++s;
        } else if (c >= 0xc2 && c <= 0xdf) {
            if (end - s < 2 || (s[1] & 0xc0) != 0x80)
                return 0;
            s += 2;
        } else if (c >= 0xe0 && c <= 0xef) {
            if (end - s < 3 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80)
                return 0;
            if ((c == 0xe0 && s[1] < 0xa0) || (c == 0xed && s[1] > 0x9f)) /* overlong, surrogate */
                return 0;
            s += 3;
        } else if (c >= 0xf0 && c <= 0xf4) {
            if (end - s < 4 || (s[1] & 0xc0) != 0x80 || (s[2] & 0xc0) != 0x80 || (s[3] & 0xc0) != 0x80)
                return 0;
            if ((c == 0xf0 && s[1] < 0x90) || (c == 0xf4 && s[1] > 0x8f)) /* overlong, > U+10FFFF */
                return 0;
            s += 4;
        } else {
            return 0;
        }
    }
    return 1;
}

size_t cr_mp_read(const char *p, const char *end, cr_mp_item_t *it)
{
    const unsigned char *u = (const unsigned char *)p;
    size_t avail = (size_t)(end - p), hdr = 1, plen;
    unsigned c;
    memset(it, 0, sizeof(*it));
    if (avail == 0)
        return 0;
    c = u[0];
    if (c <= 0x7f) {
        it->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        it->u = c;
        return 1;
    }
    if (c >= 0xe0) {
        it->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
        it->i = (int8_t)c;
        return 1;
    }
    if (c >= 0x80 && c <= 0x8f) {
        it->type = MSGPACK_OBJECT_MAP;
        it->count = c & 0x0f;
        return 1;
    }
    if (c >= 0x90 && c <= 0x9f) {
        it->type = MSGPACK_OBJECT_ARRAY;
        it->count = c & 0x0f;
        return 1;
    }
    if (c >= 0xa0 && c <= 0xbf) {
        it->type = MSGPACK_OBJECT_STR;
        plen = c & 0x1f;
        goto payload;
    }
    switch (c) {
    case 0xc0:
        it->type = MSGPACK_OBJECT_NIL;
        return 1;
    case 0xc2:
    case 0xc3:
        it->type = MSGPACK_OBJECT_BOOLEAN;
        it->u = c == 0xc3;
        return 1;
    case 0xc4: case 0xc5: case 0xc6:
    case 0xd9: case 0xda: case 0xdb: {
        int is_bin = c <= 0xc6;
        unsigned w = is_bin ? 1u << (c - 0xc4) : 1u << (c - 0xd9);
        it->type = is_bin ? MSGPACK_OBJECT_BIN : MSGPACK_OBJECT_STR;
        if (avail < 1 + w)
            return 0;
        plen = w == 1 ? u[1] : w == 2 ? be16(u + 1) : be32(u + 1);
        hdr = 1 + w;
        goto payload;
    }
    case 0xca: {
        float f;
        uint32_t b;
        if (avail < 5)
            return 0;
        b = be32(u + 1);
        memcpy(&f, &b, 4);
        it->type = MSGPACK_OBJECT_FLOAT32;
        it->f = f;
        return 5;
    }
    case 0xcb: {
        uint64_t b;
        if (avail < 9)
            return 0;
        b = be64(u + 1);
        memcpy(&it->f, &b, 8);
        it->type = MSGPACK_OBJECT_FLOAT64;
        return 9;
    }
    case 0xcc: case 0xcd: case 0xce: case 0xcf: {
        unsigned w = 1u << (c - 0xcc);
        if (avail < 1 + w)
            return 0;
        it->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
        it->u = w == 1 ? u[1] : w == 2 ? be16(u + 1) : w == 4 ? be32(u + 1) : be64(u + 1);
        return 1 + w;
    }
    case 0xd0: case 0xd1: case 0xd2: case 0xd3: {
        unsigned w = 1u << (c - 0xd0);
        int64_t v;
        if (avail < 1 + w)
            return 0;
        v = w == 1 ? (int8_t)u[1] : w == 2 ? (int16_t)be16(u + 1) : w == 4 ? (int32_t)be32(u + 1) : (int64_t)be64(u + 1);
        if (v >= 0) { /* as msgpack-c does: a non-negative signed int is a positive integer */
            it->type = MSGPACK_OBJECT_POSITIVE_INTEGER;
            it->u = (uint64_t)v;
        } else {
            it->type = MSGPACK_OBJECT_NEGATIVE_INTEGER;
            it->i = v;
        }
        return 1 + w;
    }
    case 0xdc: case 0xde:
        if (avail < 3)
            return 0;
        it->type = c == 0xdc ? MSGPACK_OBJECT_ARRAY : MSGPACK_OBJECT_MAP;
        it->count = be16(u + 1);
        return 3;
    case 0xdd: case 0xdf:
        if (avail < 5)
            return 0;
        it->type = c == 0xdd ? MSGPACK_OBJECT_ARRAY : MSGPACK_OBJECT_MAP;
        it->count = be32(u + 1);
        return 5;
    default: /* 0xc1 (never used) and ext types */
        it->type = -1;
        return 1;
    }
payload:
    if (avail < hdr || avail - hdr < plen) {
        /* report the declared size so callers can tell "too large" from "not yet here" */
        it->bytes.base = NULL;
        it->bytes.len = plen;
        return 0;
    }
    it->bytes.base = p + hdr;
    it->bytes.len = plen;
    return hdr + plen;
}

typedef struct st_frame_t {
    uint64_t remaining; /* values still to read; for maps keys and values both count */
    uint32_t index;
    uint8_t is_map;
    cr_span_t key;
} frame_t;

/* Formats the path of the value being read into buf, e.g. "b.files.2.path". */
static const char *format_path(char *buf, size_t size, const char *prefix, const frame_t *st, int sp, int reading_key)
{
    size_t n = 0;
    buf[0] = '\0';
    if (prefix != NULL && prefix[0] != '\0')
        n = (size_t)snprintf(buf, size, "%s", prefix);
    for (int i = 0; i < sp && n < size; ++i) {
        const char *dot = n > 0 ? "." : "";
        if (st[i].is_map) {
            if (i == sp - 1 && reading_key)
                break;
            size_t kl = st[i].key.len > 32 ? 32 : st[i].key.len;
            int printable = 1;
            for (size_t j = 0; j < kl; ++j)
                if ((unsigned char)st[i].key.base[j] < 0x20 || (unsigned char)st[i].key.base[j] >= 0x7f || st[i].key.base[j] == '"')
                    printable = 0;
            if (printable)
                n += (size_t)snprintf(buf + n, size - n, "%s%.*s", dot, (int)kl, st[i].key.base);
            else
                n += (size_t)snprintf(buf + n, size - n, "%s?", dot);
        } else {
            n += (size_t)snprintf(buf + n, size - n, "%s%u", dot, st[i].index);
        }
    }
    return buf;
}

#define FAIL(code, ...)                                                                                                 \
    do {                                                                                                                \
        char path_[96];                                                                                                 \
        return cr_error_set(code, format_path(path_, sizeof(path_), path_prefix, st, sp, reading_key), __VA_ARGS__);    \
    } while (0)

int cr_mp_check(const char *p, size_t len, const cr_limits_t *lim, size_t max_total, const char *path_prefix, size_t *used)
{
    frame_t st[MAX_STACK];
    int sp = 0, reading_key = 0;
    const char *pos = p, *end = p + len;
    unsigned max_depth;
    cr_mp_item_t it;

    if (lim == NULL)
        lim = &cr_limits_default;
    max_depth = lim->max_depth < MAX_STACK ? lim->max_depth : MAX_STACK;
    if (len > max_total)
        end = p + max_total;

    for (;;) {
        size_t n;
        reading_key = sp > 0 && st[sp - 1].is_map && (st[sp - 1].remaining & 1) == 0;
        if ((n = cr_mp_read(pos, end, &it)) == 0) {
            if ((it.type == MSGPACK_OBJECT_STR && it.bytes.len > lim->max_string) ||
                (it.type == MSGPACK_OBJECT_BIN && it.bytes.len > lim->max_bin))
                FAIL(CR_ETOOLARGE, "%s of %zu bytes is over the limit of %zu", it.type == MSGPACK_OBJECT_STR ? "string" : "bin",
                     it.bytes.len, it.type == MSGPACK_OBJECT_STR ? lim->max_string : lim->max_bin);
            if ((it.type == MSGPACK_OBJECT_STR || it.type == MSGPACK_OBJECT_BIN) && it.bytes.len > max_total - (size_t)(pos - p))
                FAIL(CR_ETOOLARGE, "a value of %zu bytes does not fit the limit of %zu", it.bytes.len, max_total);
            if (end != p + len || (size_t)(pos - p) >= max_total)
                FAIL(CR_ETOOLARGE, "value is over the limit of %zu bytes", max_total);
            if (pos == end) /* an empty input has no path to report */
                return cr_error_set(CR_EAGAIN, NULL, "input ends before the value is complete");
            FAIL(CR_EAGAIN, "input ends inside a value");
        }
        if (it.type < 0)
            FAIL(CR_EMSGPACK, "byte 0x%02x at offset %zu is not a msgpack type the protocol uses", (unsigned char)*pos,
                 (size_t)(pos - p));
        if (reading_key && it.type != MSGPACK_OBJECT_STR)
            FAIL(CR_EMSGPACK, "map keys must be strings");
        switch (it.type) {
        case MSGPACK_OBJECT_STR:
            if (it.bytes.len > lim->max_string)
                FAIL(CR_ETOOLARGE, "string of %zu bytes is over the limit of %zu", it.bytes.len, lim->max_string);
            if (!cr_utf8_valid(it.bytes.base, it.bytes.len))
                FAIL(CR_EENCODING, "string is not valid UTF-8");
            break;
        case MSGPACK_OBJECT_BIN:
            if (it.bytes.len > lim->max_bin)
                FAIL(CR_ETOOLARGE, "bin of %zu bytes is over the limit of %zu", it.bytes.len, lim->max_bin);
            break;
        case MSGPACK_OBJECT_ARRAY:
        case MSGPACK_OBJECT_MAP:
            if (it.count > lim->max_elements)
                FAIL(CR_ETOOLARGE, "%u entries are over the limit of %zu", it.count, lim->max_elements);
            if (it.count > max_total - (size_t)(pos - p))
                FAIL(CR_ETOOLARGE, "%u entries cannot fit the limit of %zu bytes", it.count, max_total);
            break;
        default:
            break;
        }
        if (reading_key)
            st[sp - 1].key = it.bytes;
        pos += n;
        if ((it.type == MSGPACK_OBJECT_ARRAY || it.type == MSGPACK_OBJECT_MAP) && (unsigned)sp + 1 > max_depth)
            FAIL(CR_ETOODEEP, "nesting is deeper than the limit of %u", max_depth);
        if ((it.type == MSGPACK_OBJECT_ARRAY || it.type == MSGPACK_OBJECT_MAP) && it.count > 0) {
            /* the slot taken by this container in its parent is accounted when the container completes */
            st[sp].remaining = it.type == MSGPACK_OBJECT_MAP ? (uint64_t)it.count * 2 : it.count;
            st[sp].is_map = it.type == MSGPACK_OBJECT_MAP;
            st[sp].index = 0;
            st[sp].key.base = NULL;
            st[sp].key.len = 0;
            ++sp;
            continue;
        }
        /* a complete value: pop every container it completes */
        while (sp > 0) {
            frame_t *f = &st[sp - 1];
            --f->remaining;
            if (!f->is_map || (f->remaining & 1) == 0)
                ++f->index;
            if (f->remaining != 0)
                break;
            --sp;
        }
        if (sp == 0)
            break;
    }
    *used = (size_t)(pos - p);
    return 0;
}

const char *cr_mp_skip(const char *p, const char *end)
{
    uint64_t pending = 1;
    cr_mp_item_t it;
    while (pending > 0) {
        size_t n = cr_mp_read(p, end, &it);
        if (n == 0 || it.type < 0)
            return NULL;
        p += n;
        --pending;
        if (it.type == MSGPACK_OBJECT_ARRAY)
            pending += it.count;
        else if (it.type == MSGPACK_OBJECT_MAP)
            pending += (uint64_t)it.count * 2;
    }
    return p;
}

int cr_mp_map_get(const char *mp, size_t len, const char *key, cr_span_t *out)
{
    const char *p = mp, *end = mp + len, *vend;
    size_t klen = strlen(key), n;
    cr_mp_item_t it;
    if ((n = cr_mp_read(p, end, &it)) == 0 || it.type != MSGPACK_OBJECT_MAP)
        return CR_ENOTFOUND;
    p += n;
    for (uint32_t i = 0; i < it.count; ++i) {
        cr_mp_item_t k;
        if ((n = cr_mp_read(p, end, &k)) == 0 || k.type != MSGPACK_OBJECT_STR)
            return CR_ENOTFOUND;
        p += n;
        if ((vend = cr_mp_skip(p, end)) == NULL)
            return CR_ENOTFOUND;
        if (k.bytes.len == klen && memcmp(k.bytes.base, key, klen) == 0) {
            out->base = p;
            out->len = (size_t)(vend - p);
            return 0;
        }
        p = vend;
    }
    return CR_ENOTFOUND;
}

int cr_mp_str_array(const char *mp, size_t len, cr_span_t *out, size_t max, size_t *n)
{
    const char *p = mp, *end = mp + len;
    cr_mp_item_t it;
    size_t hl;
    *n = 0;
    if ((hl = cr_mp_read(p, end, &it)) == 0 || it.type != MSGPACK_OBJECT_ARRAY)
        return CR_ENOTFOUND;
    if (it.count > max)
        return CR_ETOOLARGE;
    p += hl;
    for (uint32_t i = 0, count = it.count; i < count; ++i) {
        if ((hl = cr_mp_read(p, end, &it)) == 0 || it.type != MSGPACK_OBJECT_STR)
            return CR_EBODY;
        out[(*n)++] = it.bytes;
        p = it.bytes.base + it.bytes.len;
    }
    return 0;
}

/* ---- writers ------------------------------------------------------------------------------------------------- */

/* Appends a header: a fix form when n fits `fixmax` (OR-ed into `fix`), else the 8/16/32-bit form (codes c8, c16, c32;
 * c8 0 means there is none). */
static int put_header(cr_buf_t *b, uint64_t n, unsigned fix, uint64_t fixmax, unsigned c8, unsigned c16, unsigned c32)
{
    unsigned char h[5];
    size_t hn;
    if (n <= fixmax)
        h[0] = (unsigned char)(fix | n), hn = 1;
    else if (c8 != 0 && n <= 0xff)
        h[0] = (unsigned char)c8, h[1] = (unsigned char)n, hn = 2;
    else if (n <= 0xffff)
        h[0] = (unsigned char)c16, h[1] = (unsigned char)(n >> 8), h[2] = (unsigned char)n, hn = 3;
    else
        h[0] = (unsigned char)c32, h[1] = (unsigned char)(n >> 24), h[2] = (unsigned char)(n >> 16), h[3] = (unsigned char)(n >> 8),
        h[4] = (unsigned char)n, hn = 5;
    return cr_buf_append(b, h, hn);
}

int cr_mpw_map(cr_buf_t *b, uint32_t n)
{
    return put_header(b, n, 0x80, 15, 0, 0xde, 0xdf);
}

int cr_mpw_array(cr_buf_t *b, uint32_t n)
{
    return put_header(b, n, 0x90, 15, 0, 0xdc, 0xdd);
}

int cr_mpw_str(cr_buf_t *b, const char *s, size_t n)
{
    int rc;
    if (n > UINT32_MAX)
        return cr_error_set(CR_ETOOLARGE, NULL, "a string of %zu bytes cannot be written", n);
    if ((rc = put_header(b, n, 0xa0, 31, 0xd9, 0xda, 0xdb)) != 0)
        return rc;
    return cr_buf_append(b, s, n);
}

int cr_mpw_uint(cr_buf_t *b, uint64_t v)
{
    unsigned char h[9];
    size_t hn;
    if (v < 128)
        h[0] = (unsigned char)v, hn = 1;
    else if (v <= 0xff)
        h[0] = 0xcc, h[1] = (unsigned char)v, hn = 2;
    else if (v <= 0xffff)
        h[0] = 0xcd, h[1] = (unsigned char)(v >> 8), h[2] = (unsigned char)v, hn = 3;
    else if (v <= 0xffffffffu)
        h[0] = 0xce, h[1] = (unsigned char)(v >> 24), h[2] = (unsigned char)(v >> 16), h[3] = (unsigned char)(v >> 8),
        h[4] = (unsigned char)v, hn = 5;
    else {
        h[0] = 0xcf;
        for (int i = 0; i < 8; ++i)
            h[1 + i] = (unsigned char)(v >> (56 - 8 * i));
        hn = 9;
    }
    return cr_buf_append(b, h, hn);
}

int cr_mpw_bool(cr_buf_t *b, int v)
{
    return cr_buf_append(b, v ? "\xc3" : "\xc2", 1);
}

int cr_mpw_nil(cr_buf_t *b)
{
    return cr_buf_append(b, "\xc0", 1);
}

int cr_mpw_error(cr_buf_t *b, const char *code, const char *field, const char *message, size_t message_max)
{
    int has_field = field != NULL && field[0] != '\0';
    int rc = cr_mpw_map(b, has_field ? 3 : 2) || CR_MPW_LIT(b, "code") || cr_mpw_str(b, code, strlen(code)) ||
             CR_MPW_LIT(b, "message") || cr_mpw_str(b, message, strnlen(message, message_max));
    if (rc == 0 && has_field)
        rc = CR_MPW_LIT(b, "field") || cr_mpw_str(b, field, strlen(field));
    return rc != 0 ? CR_ETOOLARGE : 0;
}

int cr_mpw_error_doc(cr_buf_t *b, const char *code, const char *field, const char *message, size_t message_max)
{
    if (cr_mpw_map(b, 1) != 0 || CR_MPW_LIT(b, "error") != 0)
        return CR_ETOOLARGE;
    return cr_mpw_error(b, code, field, message, message_max);
}
