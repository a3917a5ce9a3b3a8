/* fuzz_json.c — libFuzzer target for the msgpack <-> JSON converter: every accepted input round-trips exactly. */
#include <stdint.h>
#include <stdlib.h>
#include "corral/buf.h"
#include "corral/json.h"

#define OUT_LIMIT (64u << 20)

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int same(const cr_buf_t *a, const cr_buf_t *b)
{
    if (a->len != b->len)
        return 0;
    for (size_t i = 0; i < a->len; ++i)
        if (a->base[i] != b->base[i])
            return 0;
    return 1;
}

/* As JSON: the msgpack it gives must come back unchanged through JSON. */
static void json_first(const char *in, size_t size)
{
    cr_buf_t mp1, json, mp2;
    cr_buf_init(&mp1, OUT_LIMIT);
    cr_buf_init(&json, OUT_LIMIT);
    cr_buf_init(&mp2, OUT_LIMIT);
    if (cr_json_to_msgpack(&mp1, in, size, NULL) == 0) {
        if (cr_json_from_msgpack(&json, mp1.base, mp1.len, NULL) != 0)
            abort();
        if (cr_json_to_msgpack(&mp2, json.base, json.len, NULL) != 0 || !same(&mp1, &mp2))
            abort();
    } else if (mp1.len != 0) {
        abort(); /* a failed conversion leaves the buffer as it was */
    }
    cr_buf_free(&mp1);
    cr_buf_free(&json);
    cr_buf_free(&mp2);
}

/* As msgpack: its JSON must come back unchanged through msgpack (a float32 comes back as a float64 of the same
 * value, which prints the same). */
static void msgpack_first(const char *in, size_t size)
{
    cr_buf_t json1, mp, json2;
    cr_buf_init(&json1, OUT_LIMIT);
    cr_buf_init(&mp, OUT_LIMIT);
    cr_buf_init(&json2, OUT_LIMIT);
    if (cr_json_from_msgpack(&json1, in, size, NULL) == 0) {
        if (cr_json_to_msgpack(&mp, json1.base, json1.len, NULL) != 0)
            abort();
        if (cr_json_from_msgpack(&json2, mp.base, mp.len, NULL) != 0 || !same(&json1, &json2))
            abort();
    } else if (json1.len != 0) {
        abort();
    }
    cr_buf_free(&json1);
    cr_buf_free(&mp);
    cr_buf_free(&json2);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    json_first((const char *)data, size);
    msgpack_first((const char *)data, size);
    return 0;
}
