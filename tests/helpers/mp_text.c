/* mp_text.c — one value of a msgpack map or JSON body as text, for test assertions. */
#include "mp_text.h"
#include "corral/json.h"
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cr_test_mp_path(const char *mp, size_t len, const char *path, cr_span_t *out)
{
    cr_span_t cur = {mp, len};
    char key[64];
    while (*path != '\0') {
        const char *dot = strchr(path, '.');
        size_t n = dot != NULL ? (size_t)(dot - path) : strlen(path);
        if (n >= sizeof(key))
            return -1;
        memcpy(key, path, n);
        key[n] = '\0';
        cr_mp_item_t it;
        size_t hl = cr_mp_read(cur.base, cur.base + cur.len, &it);
        if (hl != 0 && it.type == MSGPACK_OBJECT_ARRAY && n > 0 && strspn(key, "0123456789") == n) {
            /* an index into an array: "devices.0.id" */
            unsigned long idx = strtoul(key, NULL, 10);
            const char *p = cur.base + hl, *end = cur.base + cur.len, *next;
            if (idx >= it.count)
                return -1;
            for (unsigned long i = 0; i < idx; ++i)
                if ((p = cr_mp_skip(p, end)) == NULL)
                    return -1;
            if ((next = cr_mp_skip(p, end)) == NULL)
                return -1;
            cur = (cr_span_t){p, (size_t)(next - p)};
        } else if (cr_mp_map_get(cur.base, cur.len, key, &cur) != 0) {
            return -1;
        }
        path += n + (dot != NULL);
    }
    *out = cur;
    return 0;
}

const char *cr_test_mp_text(const char *mp, size_t len, const char *path, char *out, size_t outlen)
{
    cr_span_t v;
    cr_mp_item_t it;
    size_t used;
    out[0] = '\0';
    if (cr_mp_check(mp, len, NULL, len, NULL, &used) != 0 || cr_test_mp_path(mp, len, path, &v) != 0 ||
        cr_mp_read(v.base, v.base + v.len, &it) == 0)
        return out;
    if (it.type == MSGPACK_OBJECT_STR)
        snprintf(out, outlen, "%.*s", (int)it.bytes.len, it.bytes.base);
    else if (it.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        snprintf(out, outlen, "%llu", (unsigned long long)it.u);
    else if (it.type == MSGPACK_OBJECT_BOOLEAN)
        snprintf(out, outlen, "%s", it.u ? "true" : "false");
    return out;
}

const char *cr_test_json_text(const cr_test_resp_t *r, const char *path, char *out, size_t outlen)
{
    cr_buf_t mp;
    out[0] = '\0';
    cr_buf_init(&mp, 1 << 20);
    if (r->body != NULL && cr_json_to_msgpack(&mp, r->body, r->body_len, NULL) == 0)
        cr_test_mp_text(mp.base, mp.len, path, out, outlen);
    cr_buf_free(&mp);
    return out;
}
