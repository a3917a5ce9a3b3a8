/* fake_crypto.c — ES256/RS256 verification, raw P-256 points and RFC 8291 Web Push decryption for corral-fake-push,
 * written from the RFC text on OpenSSL 3's EVP interfaces. */
#include "fake_crypto.h"
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <string.h>

static int verify_der(EVP_PKEY *key, const void *data, size_t len, const uint8_t *sig, size_t siglen)
{
    EVP_MD_CTX *md = EVP_MD_CTX_new();
    int ok = md != NULL && EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, key) == 1 &&
             EVP_DigestVerify(md, sig, siglen, data, len) == 1;
    EVP_MD_CTX_free(md);
    return ok;
}

int fk_verify_es256(EVP_PKEY *key, const void *data, size_t len, const uint8_t *sig, size_t siglen)
{
    ECDSA_SIG *es;
    BIGNUM *r, *s;
    unsigned char *der = NULL;
    int derlen, ok;
    if (key == NULL || siglen != 64 || EVP_PKEY_get_base_id(key) != EVP_PKEY_EC)
        return 0;
    r = BN_bin2bn(sig, 32, NULL);
    s = BN_bin2bn(sig + 32, 32, NULL);
    if ((es = ECDSA_SIG_new()) == NULL || r == NULL || s == NULL || ECDSA_SIG_set0(es, r, s) != 1) {
        BN_free(r);
        BN_free(s);
        ECDSA_SIG_free(es);
        return 0;
    }
    /* r and s now owned by es */
    derlen = i2d_ECDSA_SIG(es, &der);
    ok = derlen > 0 && verify_der(key, data, len, der, (size_t)derlen);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    return ok;
}

int fk_verify_rs256(EVP_PKEY *key, const void *data, size_t len, const uint8_t *sig, size_t siglen)
{
    if (key == NULL || EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA)
        return 0;
    return verify_der(key, data, len, sig, siglen);
}

EVP_PKEY *fk_p256_from_raw(const uint8_t *pt, size_t len)
{
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *key = NULL;
    if (len != 65 || pt[0] != 0x04)
        return NULL;
    if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, len) != 1 ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL || (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
        EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_PUBLIC_KEY, params) != 1)
        key = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    if (key != NULL) {
        /* fromdata does not check the point: do it, as a browser would refuse a bad key */
        EVP_PKEY_CTX *check = EVP_PKEY_CTX_new_from_pkey(NULL, key, NULL);
        if (check == NULL || EVP_PKEY_public_check(check) != 1) {
            EVP_PKEY_free(key);
            key = NULL;
        }
        EVP_PKEY_CTX_free(check);
    }
    return key;
}

EVP_PKEY *fk_p256_from_private(const uint8_t d[32])
{
    EC_GROUP *group = EC_GROUP_new_by_curve_name(NID_X9_62_prime256v1);
    EC_POINT *pub = NULL;
    BIGNUM *priv = BN_bin2bn(d, 32, NULL);
    OSSL_PARAM_BLD *bld = NULL;
    OSSL_PARAM *params = NULL;
    EVP_PKEY_CTX *ctx = NULL;
    EVP_PKEY *key = NULL;
    uint8_t pt[65];
    if (group == NULL || priv == NULL || BN_is_zero(priv) || BN_cmp(priv, EC_GROUP_get0_order(group)) >= 0 ||
        (pub = EC_POINT_new(group)) == NULL || EC_POINT_mul(group, pub, priv, NULL, NULL, NULL) != 1 ||
        EC_POINT_point2oct(group, pub, POINT_CONVERSION_UNCOMPRESSED, pt, sizeof(pt), NULL) != sizeof(pt))
        goto done;
    if ((bld = OSSL_PARAM_BLD_new()) == NULL ||
        OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) != 1 ||
        OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_PRIV_KEY, priv) != 1 ||
        OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pt, sizeof(pt)) != 1 ||
        (params = OSSL_PARAM_BLD_to_param(bld)) == NULL || (ctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL)) == NULL ||
        EVP_PKEY_fromdata_init(ctx) != 1 || EVP_PKEY_fromdata(ctx, &key, EVP_PKEY_KEYPAIR, params) != 1)
        key = NULL;
done:
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    OSSL_PARAM_BLD_free(bld);
    EC_POINT_free(pub);
    BN_clear_free(priv);
    EC_GROUP_free(group);
    return key;
}

int fk_p256_to_raw(EVP_PKEY *key, uint8_t out[65])
{
    size_t len = 0;
    if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, out, 65, &len) != 1 || len != 65 ||
        out[0] != 0x04)
        return -1;
    return 0;
}

EVP_PKEY *fk_load_public_pem(const char *pem, size_t len)
{
    BIO *bio = BIO_new_mem_buf(pem, (int)len);
    EVP_PKEY *key = NULL;
    if (bio == NULL)
        return NULL;
    key = PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL);
    if (key == NULL) {
        (void)BIO_reset(bio);
        key = PEM_read_bio_PrivateKey(bio, NULL, NULL, NULL); /* we verify only; the private half goes unused */
    }
    BIO_free(bio);
    return key;
}

EVP_PKEY *fk_load_public_pem_file(const char *path)
{
    FILE *fp = fopen(path, "r");
    char buf[16384];
    size_t n;
    EVP_PKEY *key;
    if (fp == NULL) {
        fprintf(stderr, "corral-fake-push: cannot open %s\n", path);
        return NULL;
    }
    n = fread(buf, 1, sizeof(buf), fp);
    fclose(fp);
    key = n > 0 && n < sizeof(buf) ? fk_load_public_pem(buf, n) : NULL;
    OPENSSL_cleanse(buf, sizeof(buf));
    if (key == NULL)
        fprintf(stderr, "corral-fake-push: %s holds no PEM public or private key\n", path);
    return key;
}

/* ---- RFC 8291 ------------------------------------------------------------------------------------------------ */

/* HKDF-Expand for one block (L <= 32): HMAC-SHA-256(prk, info || 0x01). */
static int hkdf_expand1(uint8_t out[32], const uint8_t prk[32], const void *info, size_t info_len)
{
    uint8_t msg[256];
    unsigned int outlen = 32;
    if (info_len + 1 > sizeof(msg))
        return -1;
    memcpy(msg, info, info_len);
    msg[info_len] = 0x01;
    return HMAC(EVP_sha256(), prk, 32, msg, info_len + 1, out, &outlen) != NULL ? 0 : -1;
}

static int hkdf_extract(uint8_t out[32], const void *salt, size_t salt_len, const void *ikm, size_t ikm_len)
{
    unsigned int outlen = 32;
    return HMAC(EVP_sha256(), salt, (int)salt_len, ikm, ikm_len, out, &outlen) != NULL ? 0 : -1;
}

static int ecdh(uint8_t out[32], EVP_PKEY *mine, EVP_PKEY *peer)
{
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new(mine, NULL);
    size_t len = 32;
    int ok = ctx != NULL && EVP_PKEY_derive_init(ctx) == 1 && EVP_PKEY_derive_set_peer(ctx, peer) == 1 &&
             EVP_PKEY_derive(ctx, out, &len) == 1 && len == 32;
    EVP_PKEY_CTX_free(ctx);
    return ok ? 0 : -1;
}

/* Decrypts one record with AES-128-GCM (the last 16 bytes are the tag). Returns the plaintext length or -1. */
static long open_record(uint8_t *out, const uint8_t *rec, size_t len, const uint8_t cek[16], const uint8_t nonce[12])
{
    EVP_CIPHER_CTX *c = EVP_CIPHER_CTX_new();
    int n = 0, fin = 0;
    long ret = -1;
    if (c == NULL || len < 17)
        goto done;
    if (EVP_DecryptInit_ex(c, EVP_aes_128_gcm(), NULL, NULL, NULL) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_IVLEN, 12, NULL) != 1 || EVP_DecryptInit_ex(c, NULL, NULL, cek, nonce) != 1 ||
        EVP_DecryptUpdate(c, out, &n, rec, (int)(len - 16)) != 1 ||
        EVP_CIPHER_CTX_ctrl(c, EVP_CTRL_GCM_SET_TAG, 16, (void *)(rec + len - 16)) != 1 ||
        EVP_DecryptFinal_ex(c, out + n, &fin) != 1)
        goto done;
    ret = n + fin;
done:
    EVP_CIPHER_CTX_free(c);
    return ret;
}

int fk_webpush_decrypt(cr_buf_t *out, const uint8_t *body, size_t len, EVP_PKEY *ua, const uint8_t ua_pub[65],
                       const uint8_t auth[16], char *err, size_t errlen)
{
    static const char key_label[] = "WebPush: info"; /* RFC 8291 §3.4, followed by a zero byte */
    static const char cek_label[] = "Content-Encoding: aes128gcm";
    static const char nonce_label[] = "Content-Encoding: nonce";
    uint8_t secret[32], prk_key[32], ikm[32], prk[32], cek[32], nonce[32], key_info[sizeof(key_label) + 130];
    uint8_t rec_out[4096 + 16];
    EVP_PKEY *as = NULL;
    const uint8_t *salt, *as_pub, *p, *end;
    uint32_t rs;
    uint64_t seq = 0;
    size_t start = out->len;
    int rc = -1;
    err[0] = '\0';

    /* RFC 8188 §2.1: salt(16) rs(4) idlen(1) keyid(idlen); RFC 8291 §4: keyid is the 65-byte as_public */
    if (len < 21 + 65 + 17) {
        snprintf(err, errlen, "the body is too short for an aes128gcm header and a record (%zu bytes)", len);
        goto done;
    }
    salt = body;
    rs = (uint32_t)body[16] << 24 | (uint32_t)body[17] << 16 | (uint32_t)body[18] << 8 | body[19];
    if (body[20] != 65) {
        snprintf(err, errlen, "keyid must be the 65-byte application server public key, idlen is %u", body[20]);
        goto done;
    }
    if (rs < 18) {
        snprintf(err, errlen, "record size %u is below 18", rs);
        goto done;
    }
    as_pub = body + 21;
    if ((as = fk_p256_from_raw(as_pub, 65)) == NULL) {
        snprintf(err, errlen, "keyid is not a P-256 point");
        goto done;
    }
    if (ecdh(secret, ua, as) != 0) {
        snprintf(err, errlen, "ECDH with the keyid failed");
        goto done;
    }
    /* §3.3-3.4: IKM = HKDF(auth, ecdh_secret, "WebPush: info" 0x00 ua_public as_public, 32) */
    memcpy(key_info, key_label, sizeof(key_label)); /* with its NUL */
    memcpy(key_info + sizeof(key_label), ua_pub, 65);
    memcpy(key_info + sizeof(key_label) + 65, as_pub, 65);
    if (hkdf_extract(prk_key, auth, 16, secret, 32) != 0 || hkdf_expand1(ikm, prk_key, key_info, sizeof(key_info)) != 0 ||
        /* RFC 8188 §2.2-2.3 */
        hkdf_extract(prk, salt, 16, ikm, 32) != 0 || hkdf_expand1(cek, prk, cek_label, sizeof(cek_label)) != 0 ||
        hkdf_expand1(nonce, prk, nonce_label, sizeof(nonce_label)) != 0) {
        snprintf(err, errlen, "key derivation failed");
        goto done;
    }
    p = body + 21 + 65;
    end = body + len;
    while (p < end) {
        size_t rlen = (size_t)(end - p) < rs ? (size_t)(end - p) : rs;
        int last = p + rlen == end;
        uint8_t iv[12];
        long n;
        memcpy(iv, nonce, 12);
        for (int i = 0; i < 8; ++i)
            iv[11 - i] ^= (uint8_t)(seq >> (8 * i));
        if (rlen > sizeof(rec_out) || (n = open_record(rec_out, p, rlen, cek, iv)) < 0) {
            snprintf(err, errlen, "record %llu does not decrypt (AES-128-GCM tag mismatch)", (unsigned long long)seq);
            goto done;
        }
        /* §2: data, a delimiter (2 in the last record, 1 before), then zero padding */
        while (n > 0 && rec_out[n - 1] == 0)
            --n;
        if (n == 0 || rec_out[n - 1] != (last ? 2 : 1)) {
            snprintf(err, errlen, "record %llu has no %s padding delimiter", (unsigned long long)seq, last ? "0x02" : "0x01");
            goto done;
        }
        if (cr_buf_append(out, rec_out, (size_t)n - 1) != 0) {
            snprintf(err, errlen, "the plaintext is too large");
            goto done;
        }
        p += rlen;
        ++seq;
    }
    rc = 0;
done:
    if (rc != 0)
        out->len = start;
    OPENSSL_cleanse(secret, sizeof(secret));
    OPENSSL_cleanse(prk_key, sizeof(prk_key));
    OPENSSL_cleanse(ikm, sizeof(ikm));
    OPENSSL_cleanse(prk, sizeof(prk));
    OPENSSL_cleanse(cek, sizeof(cek));
    OPENSSL_cleanse(rec_out, sizeof(rec_out));
    EVP_PKEY_free(as);
    return rc;
}
