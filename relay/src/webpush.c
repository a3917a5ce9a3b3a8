/* webpush.c — RFC 8291 message encryption (P-256 ECDH, HKDF-SHA-256, one AES-128-GCM record of RFC 8188) and the
 * relay's VAPID key and Authorization header (RFC 8292), over OpenSSL 3's EVP interfaces. */
#include "webpush.h"
#include "corral/codec.h"
#include "corral/error.h"
#include "corral/log.h"
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <limits.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/kdf.h>
#include <openssl/obj_mac.h>
#include <openssl/params.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/stat.h>
#include <unistd.h>

#define GCM_TAG_LEN 16
#define CEK_LEN 16
#define NONCE_LEN 12
#define SECRET_LEN 32
#define SUBJECT_MAX 512
#define ORIGIN_MAX 300

static char p256_name[] = "prime256v1";

static int ossl_fail(const char *what)
{
    unsigned long e = ERR_peek_last_error();
    const char *r = e != 0 ? ERR_reason_error_string(e) : NULL;
    int rc = cr_error_set(CR_ERR, NULL, "%s failed: %s", what, r != NULL ? r : "unknown OpenSSL error");
    ERR_clear_error();
    return rc;
}

/* ---- keys ------------------------------------------------------------------------------------------------------ */

/* Makes the public EVP_PKEY of an uncompressed P-256 point, checked to be on the curve. */
static int ua_key(EVP_PKEY **out, const uint8_t pub[RELAY_WEBPUSH_KEY_LEN])
{
    EVP_PKEY_CTX *ctx = NULL, *check = NULL;
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, p256_name, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)pub, RELAY_WEBPUSH_KEY_LEN),
        OSSL_PARAM_construct_end(),
    };
    int rc = CR_EBODY;

    *out = NULL;
    if (pub[0] != 0x04)
        return cr_error_set(CR_EBODY, "subscription.keys.p256dh", "p256dh must be an uncompressed P-256 point (65 bytes "
                                                                   "starting with 0x04)");
    if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL || EVP_PKEY_fromdata_init(ctx) != 1) {
        rc = ossl_fail("EVP_PKEY_fromdata_init");
        goto done;
    }
    if (EVP_PKEY_fromdata(ctx, out, EVP_PKEY_PUBLIC_KEY, params) != 1 ||
        (check = EVP_PKEY_CTX_new_from_pkey(NULL, *out, NULL)) == NULL ||
        EVP_PKEY_public_check_quick(check) != 1) /* on the curve: enough for P-256, whose cofactor is 1 */
        goto done;
    rc = 0;
done:
    if (rc == CR_EBODY) {
        ERR_clear_error();
        cr_error_set(CR_EBODY, "subscription.keys.p256dh", "p256dh is not a point on the P-256 curve");
    }
    if (rc != 0) {
        EVP_PKEY_free(*out);
        *out = NULL;
    }
    EVP_PKEY_CTX_free(check);
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

/* Writes the uncompressed public point of a P-256 key. */
static int public_point(const EVP_PKEY *pkey, uint8_t pub[RELAY_WEBPUSH_KEY_LEN])
{
    size_t n = 0;
    if (EVP_PKEY_get_octet_string_param(pkey, OSSL_PKEY_PARAM_PUB_KEY, pub, RELAY_WEBPUSH_KEY_LEN, &n) != 1)
        return ossl_fail("reading a P-256 public key");
    if (n != RELAY_WEBPUSH_KEY_LEN || pub[0] != 0x04)
        return cr_error_set(CR_ERR, NULL, "a P-256 public key is not in uncompressed form");
    return 0;
}

/* Makes the P-256 key pair of a 32-byte big-endian scalar, and its public point. */
static int key_of_scalar(EVP_PKEY **out, uint8_t pub[RELAY_WEBPUSH_KEY_LEN], const uint8_t scalar[32])
{
    EC_GROUP *group = NULL;
    EC_POINT *point = NULL;
    BN_CTX *bnctx = NULL;
    BIGNUM *d = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    unsigned char native[32];
    int rc = CR_ERR, said = 0;

    *out = NULL;
    if ((group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1)) == NULL || (bnctx = BN_CTX_new()) == NULL ||
        (d = BN_secure_new()) == NULL || BN_bin2bn(scalar, 32, d) == NULL || (point = EC_POINT_new(group)) == NULL)
        goto done;
    if (BN_is_zero(d) || BN_cmp(d, EC_GROUP_get0_order(group)) >= 0) {
        cr_error_set(CR_ERR, NULL, "the ephemeral private key is not a P-256 scalar");
        said = 1;
        goto done;
    }
    if (EC_POINT_mul(group, point, d, NULL, NULL, bnctx) != 1 ||
        EC_POINT_point2oct(group, point, POINT_CONVERSION_UNCOMPRESSED, pub, RELAY_WEBPUSH_KEY_LEN, bnctx) !=
            RELAY_WEBPUSH_KEY_LEN ||
        BN_bn2nativepad(d, native, sizeof(native)) != sizeof(native))
        goto done;
    {
        OSSL_PARAM params[] = {
            OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, p256_name, 0),
            OSSL_PARAM_construct_BN(OSSL_PKEY_PARAM_PRIV_KEY, native, sizeof(native)),
            OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, pub, RELAY_WEBPUSH_KEY_LEN),
            OSSL_PARAM_construct_end(),
        };
        if ((ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL || EVP_PKEY_fromdata_init(ctx) != 1 ||
            EVP_PKEY_fromdata(ctx, out, EVP_PKEY_KEYPAIR, params) != 1)
            goto done;
    }
    rc = 0;
done:
    if (rc != 0 && !said)
        ossl_fail("making a P-256 key");
    OPENSSL_cleanse(native, sizeof(native));
    BN_clear_free(d);
    EC_POINT_free(point);
    BN_CTX_free(bnctx);
    EC_GROUP_free(group);
    EVP_PKEY_CTX_free(ctx);
    ERR_clear_error();
    return rc;
}

/* ---- RFC 8291 / RFC 8188 --------------------------------------------------------------------------------------- */

/* HKDF-SHA-256 (RFC 5869): extract with salt, expand with info to outlen bytes. */
static int hkdf(uint8_t *out, size_t outlen, const uint8_t *salt, size_t saltlen, const uint8_t *ikm, size_t ikmlen,
                const void *info, size_t infolen)
{
    static EVP_KDF *kdf; /* fetched once: a fetch per call cost as much as the derivation (the relay is one thread) */
    EVP_KDF_CTX *kctx = NULL;
    char digest[] = "SHA256";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, (void *)ikm, ikmlen),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_SALT, (void *)salt, saltlen),
        OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO, (void *)info, infolen),
        OSSL_PARAM_construct_end(),
    };
    int rc = 0;
    if ((kdf == NULL && (kdf = EVP_KDF_fetch(NULL, "HKDF", NULL)) == NULL) || (kctx = EVP_KDF_CTX_new(kdf)) == NULL ||
        EVP_KDF_derive(kctx, out, outlen, params) != 1)
        rc = ossl_fail("HKDF");
    EVP_KDF_CTX_free(kctx);
    return rc;
}

/* The shared ECDH secret of our private key and the peer's public key. */
static int ecdh(uint8_t secret[SECRET_LEN], EVP_PKEY *mine, EVP_PKEY *peer)
{
    EVP_PKEY_CTX *ctx = NULL;
    size_t n = SECRET_LEN;
    int rc = 0;
    if ((ctx = EVP_PKEY_CTX_new_from_pkey(NULL, mine, NULL)) == NULL || EVP_PKEY_derive_init(ctx) != 1 ||
        EVP_PKEY_derive_set_peer(ctx, peer) != 1 || EVP_PKEY_derive(ctx, secret, &n) != 1 || n != SECRET_LEN)
        rc = ossl_fail("ECDH");
    EVP_PKEY_CTX_free(ctx);
    return rc;
}

/* Appends salt || rs || idlen || as_public || AES-128-GCM(plaintext || 0x02) to out. */
static int encrypt_record(cr_buf_t *out, EVP_PKEY *ua, const uint8_t ua_public[RELAY_WEBPUSH_KEY_LEN],
                          const uint8_t auth[RELAY_WEBPUSH_AUTH_LEN], const void *plaintext, size_t len, EVP_PKEY *as,
                          const uint8_t as_public[RELAY_WEBPUSH_KEY_LEN], const uint8_t salt[RELAY_WEBPUSH_SALT_LEN])
{
    static const char webpush_info[] = "WebPush: info"; /* followed by its NUL, ua_public and as_public */
    static const char cek_info[] = "Content-Encoding: aes128gcm";
    static const char nonce_info[] = "Content-Encoding: nonce";
    uint8_t secret[SECRET_LEN], ikm[SECRET_LEN], cek[CEK_LEN], nonce[NONCE_LEN];
    uint8_t key_info[sizeof(webpush_info) + 2 * RELAY_WEBPUSH_KEY_LEN], delimiter = 0x02;
    size_t old = out->len;
    EVP_CIPHER_CTX *cctx = NULL;
    unsigned char *p;
    int n, rc;

    if ((rc = cr_buf_reserve(out, RELAY_WEBPUSH_HEADER_LEN + len + 1 + GCM_TAG_LEN)) != 0)
        return rc;
    /* RFC 8291 §3.4: IKM = HKDF(auth, ecdh_secret, "WebPush: info" || 0x00 || ua_public || as_public, 32) */
    memcpy(key_info, webpush_info, sizeof(webpush_info));
    memcpy(key_info + sizeof(webpush_info), ua_public, RELAY_WEBPUSH_KEY_LEN);
    memcpy(key_info + sizeof(webpush_info) + RELAY_WEBPUSH_KEY_LEN, as_public, RELAY_WEBPUSH_KEY_LEN);
    if ((rc = ecdh(secret, as, ua)) != 0 ||
        (rc = hkdf(ikm, sizeof(ikm), auth, RELAY_WEBPUSH_AUTH_LEN, secret, sizeof(secret), key_info, sizeof(key_info))) != 0)
        goto done;
    /* RFC 8188 §2.2-2.3: CEK and NONCE from HKDF(salt, IKM, "Content-Encoding: ..." || 0x00) */
    if ((rc = hkdf(cek, sizeof(cek), salt, RELAY_WEBPUSH_SALT_LEN, ikm, sizeof(ikm), cek_info, sizeof(cek_info))) != 0 ||
        (rc = hkdf(nonce, sizeof(nonce), salt, RELAY_WEBPUSH_SALT_LEN, ikm, sizeof(ikm), nonce_info, sizeof(nonce_info))) != 0)
        goto done;

    /* RFC 8188 §2.1 header; the key id is the sender's public key (RFC 8291 §4) */
    p = (unsigned char *)out->base + out->len;
    memcpy(p, salt, RELAY_WEBPUSH_SALT_LEN);
    p += RELAY_WEBPUSH_SALT_LEN;
    *p++ = (unsigned char)(RELAY_WEBPUSH_RECORD_SIZE >> 24);
    *p++ = (unsigned char)(RELAY_WEBPUSH_RECORD_SIZE >> 16);
    *p++ = (unsigned char)(RELAY_WEBPUSH_RECORD_SIZE >> 8);
    *p++ = (unsigned char)RELAY_WEBPUSH_RECORD_SIZE;
    *p++ = RELAY_WEBPUSH_KEY_LEN;
    memcpy(p, as_public, RELAY_WEBPUSH_KEY_LEN);
    p += RELAY_WEBPUSH_KEY_LEN;

    /* the one (so last) record: plaintext || 0x02, no padding; its sequence number is 0, so the nonce is NONCE */
    if ((cctx = EVP_CIPHER_CTX_new()) == NULL || EVP_EncryptInit_ex(cctx, EVP_aes_128_gcm(), NULL, cek, nonce) != 1) {
        rc = ossl_fail("AES-128-GCM init");
        goto done;
    }
    if (len > 0) {
        if (EVP_EncryptUpdate(cctx, p, &n, plaintext, (int)len) != 1) {
            rc = ossl_fail("AES-128-GCM");
            goto done;
        }
        p += n;
    }
    if (EVP_EncryptUpdate(cctx, p, &n, &delimiter, 1) != 1) {
        rc = ossl_fail("AES-128-GCM");
        goto done;
    }
    p += n;
    if (EVP_EncryptFinal_ex(cctx, p, &n) != 1) {
        rc = ossl_fail("AES-128-GCM final");
        goto done;
    }
    p += n;
    if (EVP_CIPHER_CTX_ctrl(cctx, EVP_CTRL_GCM_GET_TAG, GCM_TAG_LEN, p) != 1) {
        rc = ossl_fail("AES-128-GCM tag");
        goto done;
    }
    p += GCM_TAG_LEN;
    out->len = (size_t)(p - (unsigned char *)out->base);
    CR_ASSERT(out->len == old + RELAY_WEBPUSH_HEADER_LEN + len + 1 + GCM_TAG_LEN);
done:
    if (rc != 0)
        out->len = old;
    EVP_CIPHER_CTX_free(cctx);
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(ikm, sizeof(ikm));
    OPENSSL_cleanse(cek, sizeof(cek));
    OPENSSL_cleanse(nonce, sizeof(nonce));
    return rc;
}

static int check_len(size_t len)
{
    if (len > RELAY_WEBPUSH_MAX_PLAINTEXT)
        return cr_error_set(CR_ETOOLARGE, NULL, "a Web Push payload of %zu bytes is over the limit of %d", len,
                            RELAY_WEBPUSH_MAX_PLAINTEXT);
    return 0;
}

int relay_webpush__encrypt_with(cr_buf_t *out, const uint8_t ua_public[RELAY_WEBPUSH_KEY_LEN],
                                const uint8_t auth[RELAY_WEBPUSH_AUTH_LEN], const void *plaintext, size_t len,
                                const uint8_t as_private[32], const uint8_t salt[RELAY_WEBPUSH_SALT_LEN])
{
    EVP_PKEY *ua = NULL, *as = NULL;
    uint8_t as_public[RELAY_WEBPUSH_KEY_LEN];
    int rc;

    if ((rc = check_len(len)) != 0 || (rc = ua_key(&ua, ua_public)) != 0 ||
        (rc = key_of_scalar(&as, as_public, as_private)) != 0)
        goto done;
    rc = encrypt_record(out, ua, ua_public, auth, plaintext, len, as, as_public, salt);
done:
    EVP_PKEY_free(as);
    EVP_PKEY_free(ua);
    return rc;
}

int relay_webpush_encrypt(cr_buf_t *out, const uint8_t ua_public[RELAY_WEBPUSH_KEY_LEN],
                          const uint8_t auth[RELAY_WEBPUSH_AUTH_LEN], const void *plaintext, size_t len)
{
    EVP_PKEY *ua = NULL, *as = NULL;
    uint8_t as_public[RELAY_WEBPUSH_KEY_LEN], salt[RELAY_WEBPUSH_SALT_LEN];
    int rc;

    if ((rc = check_len(len)) != 0 || (rc = ua_key(&ua, ua_public)) != 0)
        goto done;
    if ((as = EVP_EC_gen("P-256")) == NULL || RAND_bytes(salt, sizeof(salt)) != 1) {
        rc = ossl_fail("making an ephemeral P-256 key and salt");
        goto done;
    }
    if ((rc = public_point(as, as_public)) != 0)
        goto done;
    rc = encrypt_record(out, ua, ua_public, auth, plaintext, len, as, as_public, salt);
done:
    EVP_PKEY_free(as);
    EVP_PKEY_free(ua);
    return rc;
}

/* ---- VAPID ----------------------------------------------------------------------------------------------------- */

void relay_vapid_free(relay_vapid_t *vapid)
{
    relay_jwt_key_free(&vapid->key);
    memset(vapid, 0, sizeof(*vapid));
}

/* Fills the public half of vapid from its key. */
static int vapid_public(relay_vapid_t *vapid, const char *path)
{
    if (vapid->key.alg != RELAY_JWT_ES256)
        return cr_error_set(CR_ECONFIG, NULL, "%s: the VAPID key must be a P-256 EC key, not %s", path,
                            relay_jwt_alg_name(vapid->key.alg));
    /* a key read from a file may carry the compressed form; the browser needs the uncompressed one */
    if (EVP_PKEY_set_utf8_string_param(vapid->key.pkey, OSSL_PKEY_PARAM_EC_POINT_CONVERSION_FORMAT, "uncompressed") != 1)
        return ossl_fail("setting the VAPID key's point format");
    if (public_point(vapid->key.pkey, vapid->public_key) != 0)
        return CR_ERR;
    cr_base64url_encode(vapid->public_b64, vapid->public_key, sizeof(vapid->public_key));
    return 0;
}

/* Writes a new PKCS#8 PEM key to a fresh temporary file in dir and links it to path. Returns 0, 1 when path
 * appeared meanwhile (the caller loads that one), or CR_EIO / CR_ERR. */
static int vapid_create(EVP_PKEY *pkey, const char *dir, const char *path)
{
    char tmp[PATH_MAX];
    BIO *bio = NULL;
    int fd = -1, dfd, rc = CR_EIO;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s/.%s.XXXXXX", dir, RELAY_VAPID_FILE) >= sizeof(tmp))
        return cr_error_set(CR_EIO, NULL, "the data directory path %s is too long", dir);
    if ((fd = mkstemp(tmp)) < 0)
        return cr_error_set(CR_EIO, NULL, "cannot create a file in %s: %s", dir, strerror(errno));
    if (fchmod(fd, 0600) != 0) {
        cr_error_set(CR_EIO, NULL, "cannot chmod %s: %s", tmp, strerror(errno));
        goto done;
    }
    if ((bio = BIO_new_fd(fd, BIO_NOCLOSE)) == NULL || PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL) != 1 ||
        BIO_flush(bio) != 1) {
        cr_error_set(CR_EIO, NULL, "cannot write %s", tmp);
        ERR_clear_error();
        goto done;
    }
    if (fsync(fd) != 0) {
        cr_error_set(CR_EIO, NULL, "cannot fsync %s: %s", tmp, strerror(errno));
        goto done;
    }
    /* link, not rename: if another process made vapid.pem first, its key wins and ours is dropped */
    if (link(tmp, path) != 0) {
        if (errno == EEXIST)
            rc = 1;
        else
            cr_error_set(CR_EIO, NULL, "cannot create %s: %s", path, strerror(errno));
        goto done;
    }
    if ((dfd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC)) >= 0) {
        (void)fsync(dfd);
        close(dfd);
    }
    rc = 0;
done:
    BIO_free(bio);
    close(fd);
    unlink(tmp);
    return rc;
}

int relay_vapid_load_file(relay_vapid_t *out, const char *path)
{
    int rc;
    memset(out, 0, sizeof(*out));
    if ((rc = relay_jwt_key_load_file(&out->key, path)) == 0)
        rc = vapid_public(out, path);
    if (rc != 0)
        relay_vapid_free(out);
    return rc;
}

int relay_vapid_load_or_create(relay_vapid_t *out, const char *data_dir)
{
    char path[PATH_MAX];
    struct stat st;
    EVP_PKEY *pkey = NULL;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if ((size_t)snprintf(path, sizeof(path), "%s/%s", data_dir, RELAY_VAPID_FILE) >= sizeof(path) - 16)
        return cr_error_set(CR_EIO, NULL, "the data directory path %s is too long", data_dir);
    if (mkdir(data_dir, 0700) != 0 && errno != EEXIST)
        return cr_error_set(CR_EIO, NULL, "cannot create the data directory %s: %s", data_dir, strerror(errno));
    if (stat(path, &st) != 0) {
        if (errno != ENOENT)
            return cr_error_set(CR_EIO, NULL, "cannot stat %s: %s", path, strerror(errno));
        if ((pkey = EVP_EC_gen("P-256")) == NULL)
            return ossl_fail("making the VAPID key");
        if ((rc = vapid_create(pkey, data_dir, path)) < 0)
            goto done;
        if (rc == 0) {
            if ((rc = relay_jwt_key_from_pkey(&out->key, pkey, path)) != 0)
                goto done;
            pkey = NULL; /* now owned by out->key */
            cr_log(CR_LOG_INFO, "made a new VAPID key in %s", path);
        }
    }
    if (out->key.pkey == NULL) {
        if ((rc = relay_jwt_key_load_file(&out->key, path)) != 0)
            goto done;
        if (stat(path, &st) == 0 && (st.st_mode & 077) != 0)
            cr_log(CR_LOG_WARN, "%s can be read by others (mode %03o); chmod 600 it", path, (unsigned)(st.st_mode & 0777));
    }
    rc = vapid_public(out, path);
done:
    EVP_PKEY_free(pkey);
    if (rc != 0)
        relay_vapid_free(out);
    return rc;
}

int relay_webpush_origin(char *out, size_t outlen, const char *url)
{
    const char *scheme, *auth, *end, *host, *hostend, *port = NULL;
    size_t hostlen, portlen = 0, n;
    unsigned long portnum = 0;

    if (strncasecmp(url, "https://", 8) == 0)
        scheme = "https", auth = url + 8;
    else if (strncasecmp(url, "http://", 7) == 0)
        scheme = "http", auth = url + 7;
    else
        return cr_error_set(CR_EBODY, "subscription.endpoint", "the push endpoint must be an https:// or http:// URL");
    end = auth + strcspn(auth, "/?#");
    if (memchr(auth, '@', (size_t)(end - auth)) != NULL)
        return cr_error_set(CR_EBODY, "subscription.endpoint", "the push endpoint must not carry user info");
    host = auth;
    if (*host == '[') { /* IPv6 literal */
        hostend = memchr(host, ']', (size_t)(end - host));
        if (hostend == NULL || hostend == host + 1)
            return cr_error_set(CR_EBODY, "subscription.endpoint", "the push endpoint has a bad IPv6 address");
        for (const char *c = host + 1; c < hostend; ++c)
            if (!(isxdigit((unsigned char)*c) || *c == ':' || *c == '.'))
                return cr_error_set(CR_EBODY, "subscription.endpoint", "the push endpoint has a bad IPv6 address");
        ++hostend;
        if (hostend < end && *hostend != ':')
            return cr_error_set(CR_EBODY, "subscription.endpoint", "the push endpoint has a bad IPv6 address");
    } else {
        hostend = memchr(host, ':', (size_t)(end - host));
        if (hostend == NULL)
            hostend = end;
        for (const char *c = host; c < hostend; ++c)
            if (!(isalnum((unsigned char)*c) || *c == '-' || *c == '.' || *c == '_'))
                return cr_error_set(CR_EBODY, "subscription.endpoint", "the push endpoint's host has a bad character");
    }
    if ((hostlen = (size_t)(hostend - host)) == 0)
        return cr_error_set(CR_EBODY, "subscription.endpoint", "the push endpoint has no host");
    if (hostend < end) { /* ":port" */
        port = hostend + 1;
        portlen = (size_t)(end - port);
        if (portlen > 5)
            return cr_error_set(CR_EBODY, "subscription.endpoint", "the push endpoint has a bad port");
        for (size_t i = 0; i < portlen; ++i) {
            if (!isdigit((unsigned char)port[i]))
                return cr_error_set(CR_EBODY, "subscription.endpoint", "the push endpoint has a bad port");
            portnum = portnum * 10 + (unsigned long)(port[i] - '0');
        }
        if (portlen > 0 && (portnum == 0 || portnum > 65535))
            return cr_error_set(CR_EBODY, "subscription.endpoint", "the push endpoint has a bad port");
        if (portlen == 0 || (portnum == 443 && scheme[4] == 's') || (portnum == 80 && scheme[4] == '\0'))
            portlen = 0; /* the scheme's default port is not part of the serialised origin */
    }
    n = strlen(scheme) + 3 + hostlen + (portlen > 0 ? 1 + 5 : 0) + 1;
    if (n > outlen)
        return cr_error_set(CR_ETOOLARGE, "subscription.endpoint", "the push endpoint's origin is too long");
    n = (size_t)snprintf(out, outlen, "%s://", scheme);
    for (size_t i = 0; i < hostlen; ++i)
        out[n++] = (char)tolower((unsigned char)host[i]);
    if (portlen > 0)
        n += (size_t)snprintf(out + n, outlen - n, ":%lu", portnum);
    out[n] = '\0';
    return 0;
}

int relay_vapid_authorization(cr_buf_t *out, const relay_vapid_t *vapid, const char *endpoint_url, const char *subject,
                              int64_t now)
{
    char origin[ORIGIN_MAX];
    size_t old = out->len;
    cr_buf_t claims;
    int rc;

    if (subject == NULL || (strncmp(subject, "mailto:", 7) != 0 && strncmp(subject, "https:", 6) != 0))
        return cr_error_set(CR_ECONFIG, "subject", "the VAPID subject must start with mailto: or https:");
    if (strlen(subject) > SUBJECT_MAX)
        return cr_error_set(CR_ECONFIG, "subject", "the VAPID subject is longer than %d bytes", SUBJECT_MAX);
    if ((rc = relay_webpush_origin(origin, sizeof(origin), endpoint_url)) != 0)
        return rc;
    cr_buf_init(&claims, 4096);
    if ((rc = cr_buf_appendf(&claims, "{\"aud\":")) != 0 || (rc = relay_jwt__json_str(&claims, origin)) != 0 ||
        (rc = cr_buf_appendf(&claims, ",\"exp\":%" PRId64 ",\"sub\":", now + RELAY_VAPID_TTL_S)) != 0 ||
        (rc = relay_jwt__json_str(&claims, subject)) != 0 || (rc = cr_buf_append(&claims, "}", 1)) != 0 ||
        (rc = cr_buf_append(&claims, "", 1)) != 0)
        goto done;
    if ((rc = cr_buf_appendf(out, "vapid t=")) != 0 ||
        (rc = relay_jwt_sign(out, &vapid->key, "{\"typ\":\"JWT\",\"alg\":\"ES256\"}", claims.base)) != 0 ||
        (rc = cr_buf_appendf(out, ", k=%s", vapid->public_b64)) != 0 || (rc = cr_buf_append(out, "", 1)) != 0)
        goto done;
    --out->len; /* the NUL stays behind len */
done:
    if (rc != 0)
        out->len = old;
    cr_buf_free(&claims);
    return rc;
}
