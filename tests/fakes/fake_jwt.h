/* fake_jwt.h — decoding compact JWS tokens (RFC 7515/7519) into header and claims, bounded, for the checks APNs,
 * Google's token endpoint and Web Push services make. */
#ifndef CORRAL_FAKE_JWT_H
#define CORRAL_FAKE_JWT_H

#include "corral/buf.h"
#include "corral/mp.h"
#include <stddef.h>
#include <stdint.h>

#define FK_JWT_MAX 8192 /* bytes of a token we look at */

typedef struct st_fk_jwt_t {
    cr_buf_t header;          /* the header as msgpack */
    cr_buf_t claims;          /* the claims as msgpack */
    cr_buf_t json;            /* {"header":{...},"claims":{...}}, compact, for the log */
    size_t signed_len;        /* bytes of the token that are signed: "<header>.<payload>" */
    uint8_t sig[1024];        /* the decoded signature */
    size_t sig_len;
    char alg[16];             /* the header's alg; "" when absent or not a string */
    char kid[128];            /* the header's kid; "" when absent or not a string */
    char error[320];          /* why fk_jwt_decode failed */
} fk_jwt_t;

/* Zeroes jwt's buffers; call once before the first decode. */
void fk_jwt_init(fk_jwt_t *jwt);

/* Decodes token[0..len): three base64url parts, the first two JSON objects. Returns 0, or -1 with jwt->error set.
 * jwt may be decoded into again (its buffers are reused). */
int fk_jwt_decode(fk_jwt_t *jwt, const char *token, size_t len);

/* A claim: a string into *out, a number (int or float) into *out. Returns 0, -1 when absent, -2 when of another
 * type. */
int fk_jwt_str(const fk_jwt_t *jwt, const char *name, cr_span_t *out);
int fk_jwt_num(const fk_jwt_t *jwt, const char *name, double *out);

/* Frees the buffers. */
void fk_jwt_free(fk_jwt_t *jwt);

#endif
