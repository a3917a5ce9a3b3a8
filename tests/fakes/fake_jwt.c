/* fake_jwt.c — compact JWS decoding for corral-fake-push: base64url parts, strict JSON header and claims. */
#include "fake_jwt.h"
#include "corral/codec.h"
#include "corral/error.h"
#include "corral/json.h"
#include <msgpack.h>
#include <stdio.h>
#include <string.h>

#define PART_MAX 4096 /* decoded bytes of the header or the claims */

static const cr_limits_t jwt_limits = {
    .max_envelope = PART_MAX, .max_string = PART_MAX, .max_bin = PART_MAX, .max_patch = PART_MAX, .max_audio = PART_MAX,
    .max_message_text = PART_MAX, .max_batch_events = 1, .max_batch_bytes = PART_MAX, .max_elements = 256, .max_depth = 8,
};

void fk_jwt_init(fk_jwt_t *jwt)
{
    memset(jwt, 0, sizeof(*jwt));
    cr_buf_init(&jwt->header, 2 * PART_MAX);
    cr_buf_init(&jwt->claims, 2 * PART_MAX);
    cr_buf_init(&jwt->json, 4 * PART_MAX);
}

void fk_jwt_free(fk_jwt_t *jwt)
{
    cr_buf_free(&jwt->header);
    cr_buf_free(&jwt->claims);
    cr_buf_free(&jwt->json);
}

/* Decodes one base64url JSON object part into mp (msgpack) and appends its compact JSON to jwt->json. */
static int decode_part(fk_jwt_t *jwt, cr_buf_t *mp, const char *p, size_t n, const char *what)
{
    cr_buf_t raw;
    cr_mp_item_t it;
    int rc = -1;
    cr_buf_init(&raw, PART_MAX);
    if (n == 0 || cr_base64url_decode(&raw, p, n) != 0) {
        snprintf(jwt->error, sizeof(jwt->error), "the %s is not base64url", what);
        goto done;
    }
    if (cr_json_to_msgpack(mp, raw.base, raw.len, &jwt_limits) != 0) {
        snprintf(jwt->error, sizeof(jwt->error), "the %s is not JSON: %s", what, cr_error_last()->message);
        goto done;
    }
    if (cr_mp_read(mp->base, mp->base + mp->len, &it) == 0 || it.type != MSGPACK_OBJECT_MAP) {
        snprintf(jwt->error, sizeof(jwt->error), "the %s is not a JSON object", what);
        goto done;
    }
    if (cr_json_from_msgpack(&jwt->json, mp->base, mp->len, &jwt_limits) != 0) {
        snprintf(jwt->error, sizeof(jwt->error), "the %s cannot be shown as JSON", what);
        goto done;
    }
    rc = 0;
done:
    cr_buf_free(&raw);
    return rc;
}

static void copy_str(char *out, size_t outlen, const cr_buf_t *mp, const char *key)
{
    cr_span_t v;
    cr_mp_item_t it;
    out[0] = '\0';
    if (cr_mp_map_get(mp->base, mp->len, key, &v) == 0 && cr_mp_read(v.base, v.base + v.len, &it) != 0 &&
        it.type == MSGPACK_OBJECT_STR && it.bytes.len < outlen && memchr(it.bytes.base, '\0', it.bytes.len) == NULL) {
        memcpy(out, it.bytes.base, it.bytes.len);
        out[it.bytes.len] = '\0';
    }
}

int fk_jwt_decode(fk_jwt_t *jwt, const char *token, size_t len)
{
    const char *dot1, *dot2;
    cr_buf_t sig;
    jwt->header.len = jwt->claims.len = jwt->json.len = 0;
    jwt->alg[0] = jwt->kid[0] = jwt->error[0] = '\0';
    jwt->sig_len = jwt->signed_len = 0;
    if (len > FK_JWT_MAX) {
        snprintf(jwt->error, sizeof(jwt->error), "the token is longer than %d bytes", FK_JWT_MAX);
        return -1;
    }
    if ((dot1 = memchr(token, '.', len)) == NULL || (dot2 = memchr(dot1 + 1, '.', (size_t)(token + len - dot1 - 1))) == NULL ||
        memchr(dot2 + 1, '.', (size_t)(token + len - dot2 - 1)) != NULL) {
        snprintf(jwt->error, sizeof(jwt->error), "the token is not three dot-separated parts");
        return -1;
    }
    cr_buf_append(&jwt->json, "{\"header\":", 10);
    if (decode_part(jwt, &jwt->header, token, (size_t)(dot1 - token), "header") != 0)
        return -1;
    cr_buf_append(&jwt->json, ",\"claims\":", 10);
    if (decode_part(jwt, &jwt->claims, dot1 + 1, (size_t)(dot2 - dot1 - 1), "claims") != 0)
        return -1;
    cr_buf_append(&jwt->json, "}", 1);
    cr_buf_init(&sig, sizeof(jwt->sig));
    if (cr_base64url_decode(&sig, dot2 + 1, (size_t)(token + len - dot2 - 1)) != 0) {
        cr_buf_free(&sig);
        snprintf(jwt->error, sizeof(jwt->error), "the signature is not base64url");
        return -1;
    }
    memcpy(jwt->sig, sig.base, sig.len);
    jwt->sig_len = sig.len;
    cr_buf_free(&sig);
    jwt->signed_len = (size_t)(dot2 - token);
    copy_str(jwt->alg, sizeof(jwt->alg), &jwt->header, "alg");
    copy_str(jwt->kid, sizeof(jwt->kid), &jwt->header, "kid");
    return 0;
}

int fk_jwt_str(const fk_jwt_t *jwt, const char *name, cr_span_t *out)
{
    cr_span_t v;
    cr_mp_item_t it;
    if (cr_mp_map_get(jwt->claims.base, jwt->claims.len, name, &v) != 0)
        return -1;
    if (cr_mp_read(v.base, v.base + v.len, &it) == 0 || it.type != MSGPACK_OBJECT_STR)
        return -2;
    *out = it.bytes;
    return 0;
}

int fk_jwt_num(const fk_jwt_t *jwt, const char *name, double *out)
{
    cr_span_t v;
    cr_mp_item_t it;
    if (cr_mp_map_get(jwt->claims.base, jwt->claims.len, name, &v) != 0)
        return -1;
    if (cr_mp_read(v.base, v.base + v.len, &it) == 0)
        return -2;
    switch (it.type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER:
        *out = (double)it.u;
        return 0;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER:
        *out = (double)it.i;
        return 0;
    case MSGPACK_OBJECT_FLOAT32:
    case MSGPACK_OBJECT_FLOAT64:
        *out = it.f;
        return 0;
    default:
        return -2;
    }
}
