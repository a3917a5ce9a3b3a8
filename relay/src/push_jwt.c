/* push_jwt.c — PEM signing keys, ES256/RS256 compact JWTs, APNs provider tokens, FCM assertions and the Google
 * service-account file, over OpenSSL 3's EVP interfaces. */
#include "push_jwt.h"
#include "corral/buf.h"
#include "corral/codec.h"
#include "corral/error.h"
#include "corral/json.h"
#include "corral/mp.h"
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <msgpack.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/obj_mac.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define ES256_HALF 32

/* The reason of the newest OpenSSL error (or `fallback`), and an empty OpenSSL error queue. */
static const char *ossl_reason(const char *fallback)
{
    static __thread char msg[160];
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    snprintf(msg, sizeof(msg), "%s", r != NULL ? r : fallback);
    ERR_clear_error();
    return msg;
}

/* Reads a whole regular file of at most max bytes into a malloc'd buffer (NUL-terminated, len without the NUL).
 * Returns 0 or CR_EIO / CR_ENOMEM with cr_error_last() naming the file. The caller wipes and frees *out. */
static int read_small_file(const char *path, size_t max, char **out, size_t *outlen)
{
    struct stat st;
    char *buf = NULL;
    size_t len = 0;
    int fd, rc = 0;

    *out = NULL;
    *outlen = 0;
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return cr_error_set(CR_EIO, NULL, "cannot open %s: %s", path, strerror(errno));
    if (fstat(fd, &st) != 0) {
        rc = cr_error_set(CR_EIO, NULL, "cannot stat %s: %s", path, strerror(errno));
        goto done;
    }
    if (!S_ISREG(st.st_mode)) {
        rc = cr_error_set(CR_EIO, NULL, "%s is not a regular file", path);
        goto done;
    }
    if ((buf = malloc(max + 2)) == NULL) {
        rc = cr_error_set(CR_ENOMEM, NULL, "out of memory reading %s", path);
        goto done;
    }
    for (;;) { /* reads up to max + 1 bytes, so a file that grew past the cap is noticed */
        ssize_t n = read(fd, buf + len, max + 1 - len);
        if (n < 0 && errno == EINTR)
            continue;
        if (n < 0) {
            rc = cr_error_set(CR_EIO, NULL, "cannot read %s: %s", path, strerror(errno));
            goto done;
        }
        if (n == 0)
            break;
        len += (size_t)n;
        if (len > max) {
            rc = cr_error_set(CR_EIO, NULL, "%s is larger than %zu bytes", path, max);
            goto done;
        }
    }
    buf[len] = '\0';
    *out = buf;
    *outlen = len;
    buf = NULL; /* now owned by the caller */
done:
    if (buf != NULL) {
        OPENSSL_cleanse(buf, max + 2);
        free(buf);
    }
    close(fd);
    return rc;
}

/* ---- keys ------------------------------------------------------------------------------------------------------ */

/* Never asks for a passphrase: an encrypted key is refused rather than prompted for on a terminal. */
static int no_passphrase(char *buf, int size, int rwflag, void *u)
{
    return -1;
}

const char *relay_jwt_alg_name(relay_jwt_alg_t alg)
{
    switch (alg) {
    case RELAY_JWT_ES256: return "ES256";
    case RELAY_JWT_RS256: return "RS256";
    default: return "none";
    }
}

int relay_jwt_key_from_pkey(relay_jwt_key_t *out, EVP_PKEY *pkey, const char *what)
{
    const char *src = what != NULL ? what : "the key";
    char group[64];
    int bits;

    out->pkey = NULL;
    out->alg = RELAY_JWT_NONE;
    switch (EVP_PKEY_get_base_id(pkey)) {
    case EVP_PKEY_EC:
        if (EVP_PKEY_get_utf8_string_param(pkey, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group), NULL) != 1) {
            ERR_clear_error();
            return cr_error_set(CR_ECONFIG, NULL, "%s: an EC key on an unnamed curve; a P-256 key is needed", src);
        }
        if (OBJ_sn2nid(group) != NID_X9_62_prime256v1 && EC_curve_nist2nid(group) != NID_X9_62_prime256v1)
            return cr_error_set(CR_ECONFIG, NULL, "%s: an EC key on curve %s; a P-256 (prime256v1) key is needed", src,
                                group);
        out->alg = RELAY_JWT_ES256;
        break;
    case EVP_PKEY_RSA:
        if ((bits = EVP_PKEY_get_bits(pkey)) < 2048)
            return cr_error_set(CR_ECONFIG, NULL, "%s: an RSA key of %d bits; at least 2048 bits are needed", src, bits);
        out->alg = RELAY_JWT_RS256;
        break;
    default:
        return cr_error_set(CR_ECONFIG, NULL, "%s: a %s key; a P-256 EC key (ES256) or an RSA key (RS256) is needed", src,
                            OBJ_nid2sn(EVP_PKEY_get_base_id(pkey)));
    }
    out->pkey = pkey; /* now owned by out */
    return 0;
}

int relay_jwt_key_load_pem(relay_jwt_key_t *out, const char *pem, size_t len, const char *what)
{
    const char *src = what != NULL ? what : "the key";
    EVP_PKEY *pkey = NULL;
    BIO *bio = NULL;
    int rc;

    out->pkey = NULL;
    out->alg = RELAY_JWT_NONE;
    if (len > RELAY_JWT_KEY_FILE_MAX)
        return cr_error_set(CR_ECONFIG, NULL, "%s: a PEM key of %zu bytes is over the limit of %d", src, len,
                            RELAY_JWT_KEY_FILE_MAX);
    if ((bio = BIO_new_mem_buf(pem, (int)len)) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory reading %s", src);
    if ((pkey = PEM_read_bio_PrivateKey(bio, NULL, no_passphrase, NULL)) == NULL) {
        rc = cr_error_set(CR_ECONFIG, NULL,
                          "%s: no unencrypted PEM private key (BEGIN PRIVATE KEY, EC PRIVATE KEY or RSA PRIVATE KEY): %s",
                          src, ossl_reason("unreadable"));
        goto done;
    }
    if ((rc = relay_jwt_key_from_pkey(out, pkey, src)) == 0)
        pkey = NULL; /* now owned by out */
done:
    EVP_PKEY_free(pkey);
    BIO_free(bio);
    ERR_clear_error();
    return rc;
}

int relay_jwt_key_load_file(relay_jwt_key_t *out, const char *path)
{
    char *pem;
    size_t len;
    int rc;

    out->pkey = NULL;
    out->alg = RELAY_JWT_NONE;
    if ((rc = read_small_file(path, RELAY_JWT_KEY_FILE_MAX, &pem, &len)) != 0)
        return rc;
    rc = relay_jwt_key_load_pem(out, pem, len, path);
    OPENSSL_cleanse(pem, len);
    free(pem);
    return rc;
}

void relay_jwt_key_free(relay_jwt_key_t *key)
{
    EVP_PKEY_free(key->pkey);
    key->pkey = NULL;
    key->alg = RELAY_JWT_NONE;
}

/* ---- signing --------------------------------------------------------------------------------------------------- */

/* Appends base64url(src[0..n)) to out. */
static int append_b64url(cr_buf_t *out, const void *src, size_t n)
{
    size_t need = cr_base64url_encoded_len(n); /* with the NUL */
    int rc;
    if ((rc = cr_buf_reserve(out, need)) != 0)
        return rc;
    out->len += cr_base64url_encode(out->base + out->len, src, n);
    return 0;
}

/* Signs msg with key into sig (at least EVP_PKEY_get_size bytes for RSA, 64 for EC); the JWS form. */
static int sign_raw(const relay_jwt_key_t *key, const char *msg, size_t msglen, unsigned char *sig, size_t *siglen)
{
    EVP_MD_CTX *md = NULL;
    EVP_PKEY_CTX *pctx = NULL;
    unsigned char *der = NULL;
    const unsigned char *p;
    ECDSA_SIG *es = NULL;
    const BIGNUM *r, *s;
    size_t derlen = 0;
    int rc = CR_ERR;

    if ((md = EVP_MD_CTX_new()) == NULL || EVP_DigestSignInit(md, &pctx, EVP_sha256(), NULL, key->pkey) != 1)
        goto done;
    if (key->alg == RELAY_JWT_RS256 && EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PADDING) != 1)
        goto done;
    if (EVP_DigestSign(md, NULL, &derlen, (const unsigned char *)msg, msglen) != 1 || (der = malloc(derlen)) == NULL ||
        EVP_DigestSign(md, der, &derlen, (const unsigned char *)msg, msglen) != 1)
        goto done;
    if (key->alg == RELAY_JWT_RS256) {
        memcpy(sig, der, derlen);
        *siglen = derlen;
    } else {
        /* OpenSSL writes ECDSA-Sig-Value (DER); JWS wants R || S, each a 32-byte big-endian integer */
        p = der;
        if ((es = d2i_ECDSA_SIG(NULL, &p, (long)derlen)) == NULL)
            goto done;
        ECDSA_SIG_get0(es, &r, &s);
        if (BN_bn2binpad(r, sig, ES256_HALF) != ES256_HALF || BN_bn2binpad(s, sig + ES256_HALF, ES256_HALF) != ES256_HALF)
            goto done;
        *siglen = 2 * ES256_HALF;
    }
    rc = 0;
done:
    if (rc != 0)
        cr_error_set(CR_ERR, NULL, "signing a %s JWT failed: %s", relay_jwt_alg_name(key->alg), ossl_reason("unknown"));
    ECDSA_SIG_free(es);
    free(der);
    EVP_MD_CTX_free(md);
    return rc;
}

int relay_jwt_sign(cr_buf_t *out, const relay_jwt_key_t *key, const char *header_json, const char *claims_json)
{
    size_t old = out->len, siglen = 0;
    unsigned char *sig = NULL;
    int rc;

    if (key->pkey == NULL || key->alg == RELAY_JWT_NONE)
        return cr_error_set(CR_ERR, NULL, "cannot sign a JWT without a key");
    if ((rc = append_b64url(out, header_json, strlen(header_json))) != 0 || (rc = cr_buf_append(out, ".", 1)) != 0 ||
        (rc = append_b64url(out, claims_json, strlen(claims_json))) != 0)
        goto done;
    if ((sig = malloc((size_t)EVP_PKEY_get_size(key->pkey) + 2 * ES256_HALF)) == NULL) {
        rc = cr_error_set(CR_ENOMEM, NULL, "out of memory signing a JWT");
        goto done;
    }
    if ((rc = sign_raw(key, out->base + old, out->len - old, sig, &siglen)) != 0)
        goto done;
    if ((rc = cr_buf_append(out, ".", 1)) != 0 || (rc = append_b64url(out, sig, siglen)) != 0 ||
        (rc = cr_buf_append(out, "", 1)) != 0)
        goto done;
    --out->len; /* the NUL stays behind len */
done:
    if (rc != 0)
        out->len = old;
    free(sig);
    return rc;
}

int relay_jwt__json_str(cr_buf_t *out, const char *s)
{
    size_t old = out->len;
    int rc = cr_buf_append(out, "\"", 1);
    for (const unsigned char *p = (const unsigned char *)s; rc == 0 && *p != '\0'; ++p) {
        if (*p == '"' || *p == '\\')
            rc = cr_buf_appendf(out, "\\%c", *p);
        else if (*p < 0x20)
            rc = cr_buf_appendf(out, "\\u%04x", *p);
        else
            rc = cr_buf_append(out, p, 1);
    }
    if (rc == 0)
        rc = cr_buf_append(out, "\"", 1);
    if (rc != 0)
        out->len = old;
    return rc;
}

/* Signs the NUL-terminated header and claims built in h and c. */
static int sign_built(cr_buf_t *out, const relay_jwt_key_t *key, cr_buf_t *h, cr_buf_t *c)
{
    int rc;
    if ((rc = cr_buf_append(h, "", 1)) != 0 || (rc = cr_buf_append(c, "", 1)) != 0)
        return rc;
    return relay_jwt_sign(out, key, h->base, c->base);
}

int relay_jwt_apns_token(cr_buf_t *out, const relay_jwt_key_t *key, const char *key_id, const char *team_id, int64_t iat)
{
    cr_buf_t h, c;
    int rc;

    if (key->alg != RELAY_JWT_ES256)
        return cr_error_set(CR_ECONFIG, NULL, "an APNs token needs a P-256 (ES256) key, not %s", relay_jwt_alg_name(key->alg));
    if (key_id == NULL || *key_id == '\0')
        return cr_error_set(CR_ECONFIG, "key_id", "an APNs token needs the key id (kid)");
    if (team_id == NULL || *team_id == '\0')
        return cr_error_set(CR_ECONFIG, "team_id", "an APNs token needs the team id (iss)");
    cr_buf_init(&h, 4096);
    cr_buf_init(&c, 4096);
    if ((rc = cr_buf_appendf(&h, "{\"alg\":\"ES256\",\"kid\":")) != 0 || (rc = relay_jwt__json_str(&h, key_id)) != 0 ||
        (rc = cr_buf_append(&h, "}", 1)) != 0)
        goto done;
    if ((rc = cr_buf_appendf(&c, "{\"iss\":")) != 0 || (rc = relay_jwt__json_str(&c, team_id)) != 0 ||
        (rc = cr_buf_appendf(&c, ",\"iat\":%" PRId64 "}", iat)) != 0)
        goto done;
    rc = sign_built(out, key, &h, &c);
done:
    cr_buf_free(&h);
    cr_buf_free(&c);
    return rc;
}

int relay_jwt_fcm_assertion(cr_buf_t *out, const relay_service_account_t *sa, int64_t iat)
{
    cr_buf_t h, c;
    int rc;

    if (sa->key.alg != RELAY_JWT_RS256)
        return cr_error_set(CR_ECONFIG, NULL, "an FCM assertion needs an RSA (RS256) key, not %s",
                            relay_jwt_alg_name(sa->key.alg));
    cr_buf_init(&h, 4096);
    cr_buf_init(&c, 8192);
    if ((rc = cr_buf_appendf(&h, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":")) != 0 ||
        (rc = relay_jwt__json_str(&h, sa->private_key_id)) != 0 || (rc = cr_buf_append(&h, "}", 1)) != 0)
        goto done;
    if ((rc = cr_buf_appendf(&c, "{\"iss\":")) != 0 || (rc = relay_jwt__json_str(&c, sa->client_email)) != 0 ||
        (rc = cr_buf_appendf(&c, ",\"scope\":\"%s\",\"aud\":", RELAY_FCM_SCOPE)) != 0 ||
        (rc = relay_jwt__json_str(&c, sa->token_uri)) != 0 ||
        (rc = cr_buf_appendf(&c, ",\"iat\":%" PRId64 ",\"exp\":%" PRId64 "}", iat, iat + RELAY_FCM_ASSERTION_TTL_S)) != 0)
        goto done;
    rc = sign_built(out, &sa->key, &h, &c);
done:
    cr_buf_free(&h);
    cr_buf_free(&c);
    return rc;
}

/* ---- service accounts ------------------------------------------------------------------------------------------ */

/* Finds the non-empty string field `key` of the msgpack map mp and stores its bytes. */
static int sa_field(const char *mp, size_t len, const char *key, const char *src, cr_span_t *out)
{
    cr_span_t v;
    cr_mp_item_t it;
    if (cr_mp_map_get(mp, len, key, &v) != 0)
        return cr_error_set(CR_ECONFIG, key, "%s: the service account has no \"%s\"", src, key);
    if (cr_mp_read(v.base, v.base + v.len, &it) == 0 || it.type != MSGPACK_OBJECT_STR)
        return cr_error_set(CR_ECONFIG, key, "%s: \"%s\" must be a string", src, key);
    if (it.bytes.len == 0)
        return cr_error_set(CR_ECONFIG, key, "%s: \"%s\" is empty", src, key);
    if (memchr(it.bytes.base, '\0', it.bytes.len) != NULL)
        return cr_error_set(CR_ECONFIG, key, "%s: \"%s\" holds a NUL character", src, key);
    *out = it.bytes;
    return 0;
}

static int sa_copy(const char *mp, size_t len, const char *key, const char *src, char **out)
{
    cr_span_t v;
    int rc;
    if ((rc = sa_field(mp, len, key, src, &v)) != 0)
        return rc;
    if ((*out = cr_strndup(v.base, v.len)) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory reading %s", src);
    return 0;
}

void relay_service_account_free(relay_service_account_t *sa)
{
    free(sa->project_id);
    free(sa->private_key_id);
    free(sa->client_email);
    free(sa->token_uri);
    relay_jwt_key_free(&sa->key);
    memset(sa, 0, sizeof(*sa));
}

int relay_service_account_load_json(relay_service_account_t *out, const char *json, size_t len, const char *what)
{
    const char *src = what != NULL ? what : "the service account";
    char keywhat[PATH_MAX + 32], why[sizeof(cr_error_last()->message)];
    cr_mp_item_t top;
    cr_span_t v;
    cr_buf_t mp;
    int rc;

    memset(out, 0, sizeof(*out));
    if (len > RELAY_SERVICE_ACCOUNT_FILE_MAX)
        return cr_error_set(CR_ECONFIG, NULL, "%s: %zu bytes is over the limit of %d", src, len,
                            RELAY_SERVICE_ACCOUNT_FILE_MAX);
    /* All the room the msgpack form can take is reserved up front, so the buffer holding the private key is never
     * moved by realloc (which would leave an unwiped copy behind). A JSON number becomes at most 3 times longer. */
    cr_buf_init(&mp, 3 * len + 64);
    if ((rc = cr_buf_reserve(&mp, mp.limit)) != 0)
        goto done;
    if ((rc = cr_json_to_msgpack(&mp, json, len, NULL)) != 0) {
        snprintf(why, sizeof(why), "%s", cr_error_last()->message);
        rc = cr_error_set(rc == CR_ENOMEM ? CR_ENOMEM : CR_EJSON, NULL, "%s: not valid JSON: %s", src, why);
        goto done;
    }
    if (cr_mp_read(mp.base, mp.base + mp.len, &top) == 0 || top.type != MSGPACK_OBJECT_MAP) {
        rc = cr_error_set(CR_ECONFIG, NULL, "%s: a service account is a JSON object", src);
        goto done;
    }
    if ((rc = sa_field(mp.base, mp.len, "type", src, &v)) != 0)
        goto done;
    if (!cr_span_eq(v, "service_account", 15)) {
        rc = cr_error_set(CR_ECONFIG, "type", "%s: \"type\" is \"%.*s\", not \"service_account\"", src,
                          (int)(v.len > 64 ? 64 : v.len), v.base);
        goto done;
    }
    if ((rc = sa_copy(mp.base, mp.len, "project_id", src, &out->project_id)) != 0 ||
        (rc = sa_copy(mp.base, mp.len, "private_key_id", src, &out->private_key_id)) != 0 ||
        (rc = sa_copy(mp.base, mp.len, "client_email", src, &out->client_email)) != 0 ||
        (rc = sa_copy(mp.base, mp.len, "token_uri", src, &out->token_uri)) != 0 ||
        (rc = sa_field(mp.base, mp.len, "private_key", src, &v)) != 0)
        goto done;
    snprintf(keywhat, sizeof(keywhat), "%s: \"private_key\"", src);
    if ((rc = relay_jwt_key_load_pem(&out->key, v.base, v.len, keywhat)) != 0) {
        snprintf(why, sizeof(why), "%s", cr_error_last()->message);
        cr_error_set(rc, "private_key", "%s", why);
        goto done;
    }
    if (out->key.alg != RELAY_JWT_RS256) {
        rc = cr_error_set(CR_ECONFIG, "private_key", "%s: \"private_key\" is not an RSA key", src);
        goto done;
    }
done:
    if (mp.base != NULL)
        OPENSSL_cleanse(mp.base, mp.cap);
    cr_buf_free(&mp);
    if (rc != 0)
        relay_service_account_free(out);
    return rc;
}

int relay_service_account_load_file(relay_service_account_t *out, const char *path)
{
    char *json;
    size_t len;
    int rc;

    memset(out, 0, sizeof(*out));
    if ((rc = read_small_file(path, RELAY_SERVICE_ACCOUNT_FILE_MAX, &json, &len)) != 0)
        return rc;
    rc = relay_service_account_load_json(out, json, len, path);
    OPENSSL_cleanse(json, len);
    free(json);
    return rc;
}
