/* push_jwt.c — unit tests of relay/src/push_jwt.c: PEM keys, ES256/RS256 JWTs checked by OpenSSL and by the independent
 * tests/fakes/jwt_verify.py, APNs provider tokens, FCM assertions and service-account files. */
#include "harness.h"
#include "corral/buf.h"
#include "proc.h"
#include "push_jwt.h"
#include "corral/codec.h"
#include "corral/error.h"
#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char tmp[PATH_MAX], python[PATH_MAX], verifier[PATH_MAX];
static EVP_PKEY *ec_key, *rsa_key;

/* ---- helpers ---------------------------------------------------------------------------------------------------- */

static const char *tmp_path(const char *name)
{
    static char path[8][2 * PATH_MAX];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, 2 * PATH_MAX, "%s/%s", tmp, name);
    return p;
}

static void write_file(const char *path, const void *data, size_t len)
{
    FILE *fp = fopen(path, "wb");
    if (fp == NULL || fwrite(data, 1, len, fp) != len || fclose(fp) != 0)
        okf(0, "cannot write %s", path);
}

/* PEM text of a key: kind "pkcs8", "traditional", "public" or "encrypted". Returns a malloc'd string. */
static char *pem_of(EVP_PKEY *pkey, const char *kind)
{
    BIO *bio = BIO_new(BIO_s_mem());
    char *data, *copy;
    long n;
    int r;
    if (strcmp(kind, "pkcs8") == 0)
        r = PEM_write_bio_PrivateKey(bio, pkey, NULL, NULL, 0, NULL, NULL);
    else if (strcmp(kind, "traditional") == 0)
        r = PEM_write_bio_PrivateKey_traditional(bio, pkey, NULL, NULL, 0, NULL, NULL);
    else if (strcmp(kind, "public") == 0)
        r = PEM_write_bio_PUBKEY(bio, pkey);
    else
        r = PEM_write_bio_PKCS8PrivateKey(bio, pkey, EVP_aes_256_cbc(), "secret", 6, NULL, NULL);
    n = BIO_get_mem_data(bio, &data);
    copy = r == 1 && n > 0 ? cr_strndup(data, (size_t)n) : strdup("");
    BIO_free(bio);
    return copy;
}

static void write_pem(const char *name, EVP_PKEY *pkey, const char *kind)
{
    char *pem = pem_of(pkey, kind);
    write_file(tmp_path(name), pem, strlen(pem));
    free(pem);
}

/* Decodes base64url segment s[0..n) into a malloc'd NUL-terminated string (NULL on bad input). */
static char *b64_segment(const char *s, size_t n, size_t *outlen)
{
    cr_buf_t b;
    char *r = NULL;
    cr_buf_init(&b, 1 << 16);
    if (cr_base64url_decode(&b, s, n) == 0 && cr_buf_append(&b, "", 1) == 0) {
        r = b.base;
        if (outlen != NULL)
            *outlen = b.len - 1;
        b.base = NULL;
    }
    cr_buf_free(&b);
    return r;
}

/* Splits a compact JWS, checks its signature with OpenSSL (ES256: raw R||S turned back into DER) and returns 1 when
 * it verifies; *header and *claims get the decoded JSON texts (malloc'd). */
static int jwt_check_c(const char *token, EVP_PKEY *pub, char **header, char **claims)
{
    const char *d1 = strchr(token, '.'), *d2 = d1 != NULL ? strchr(d1 + 1, '.') : NULL;
    unsigned char *der = NULL;
    size_t siglen = 0;
    char *sig = NULL;
    EVP_MD_CTX *md = NULL;
    int good = 0, derlen;
    ECDSA_SIG *es = NULL;

    *header = *claims = NULL;
    if (d2 == NULL || strchr(d2 + 1, '.') != NULL)
        return 0;
    *header = b64_segment(token, (size_t)(d1 - token), NULL);
    *claims = b64_segment(d1 + 1, (size_t)(d2 - d1 - 1), NULL);
    if ((sig = b64_segment(d2 + 1, strlen(d2 + 1), &siglen)) == NULL)
        goto done;
    if (EVP_PKEY_get_base_id(pub) == EVP_PKEY_EC) {
        if (siglen != 64 || (es = ECDSA_SIG_new()) == NULL)
            goto done;
        ECDSA_SIG_set0(es, BN_bin2bn((unsigned char *)sig, 32, NULL), BN_bin2bn((unsigned char *)sig + 32, 32, NULL));
        if ((derlen = i2d_ECDSA_SIG(es, &der)) <= 0)
            goto done;
    } else {
        der = OPENSSL_memdup(sig, siglen);
        derlen = (int)siglen;
    }
    md = EVP_MD_CTX_new();
    good = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
           EVP_DigestVerify(md, der, (size_t)derlen, (const unsigned char *)token, (size_t)(d2 - token)) == 1;
done:
    EVP_MD_CTX_free(md);
    ECDSA_SIG_free(es);
    OPENSSL_free(der);
    free(sig);
    return good;
}

/* Runs jwt_verify.py with a public key PEM file and a token; stores its stdout (one line, newline removed) and returns
 * its exit status (-1 when it could not run). */
static int jwt_check_python(const char *pubpem, const char *token, char *out, size_t outlen)
{
    char cmd[PATH_MAX * 3 + 4096];
    FILE *fp;
    size_t n;
    int st;
    snprintf(cmd, sizeof(cmd), "'%s' '%s' '%s' '%s'", python, verifier, pubpem, token);
    if ((fp = popen(cmd, "r")) == NULL)
        return -1;
    n = fread(out, 1, outlen - 1, fp);
    out[n] = '\0';
    if (n > 0 && out[n - 1] == '\n')
        out[n - 1] = '\0';
    st = pclose(fp);
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

/* ---- keys ------------------------------------------------------------------------------------------------------- */

static void test_load_keys(void)
{
    relay_jwt_key_t k;
    EVP_PKEY *p384 = EVP_EC_gen("P-384"), *rsa1024 = EVP_RSA_gen(1024),
             *ed = EVP_PKEY_Q_keygen(NULL, NULL, "ED25519");
    char *pem;

    write_pem("AuthKey_ABC123DEFG.p8", ec_key, "pkcs8");
    write_pem("ec_trad.pem", ec_key, "traditional");
    write_pem("rsa_pkcs8.pem", rsa_key, "pkcs8");
    write_pem("rsa_trad.pem", rsa_key, "traditional");
    write_pem("p384.pem", p384, "pkcs8");
    write_pem("rsa1024.pem", rsa1024, "traditional");
    write_pem("ed25519.pem", ed, "pkcs8");
    write_pem("public.pem", ec_key, "public");
    write_pem("encrypted.pem", ec_key, "encrypted");
    write_file(tmp_path("garbage.pem"), "hello\n", 6);

    pem = pem_of(ec_key, "pkcs8");
    ok(strstr(pem, "-----BEGIN PRIVATE KEY-----") != NULL);
    free(pem);
    pem = pem_of(ec_key, "traditional");
    ok(strstr(pem, "-----BEGIN EC PRIVATE KEY-----") != NULL);
    free(pem);
    pem = pem_of(rsa_key, "traditional");
    ok(strstr(pem, "-----BEGIN RSA PRIVATE KEY-----") != NULL);

    ok(relay_jwt_key_load_pem(&k, pem, strlen(pem), "memory") == 0 && k.alg == RELAY_JWT_RS256);
    ok(EVP_PKEY_eq(k.pkey, rsa_key) == 1);
    relay_jwt_key_free(&k);
    relay_jwt_key_free(&k); /* idempotent */
    ok(k.pkey == NULL);
    free(pem);

    ok(relay_jwt_key_load_file(&k, tmp_path("AuthKey_ABC123DEFG.p8")) == 0 && k.alg == RELAY_JWT_ES256);
    ok(EVP_PKEY_eq(k.pkey, ec_key) == 1);
    relay_jwt_key_free(&k);
    ok(relay_jwt_key_load_file(&k, tmp_path("ec_trad.pem")) == 0 && k.alg == RELAY_JWT_ES256);
    relay_jwt_key_free(&k);
    ok(relay_jwt_key_load_file(&k, tmp_path("rsa_pkcs8.pem")) == 0 && k.alg == RELAY_JWT_RS256);
    relay_jwt_key_free(&k);
    ok(relay_jwt_key_load_file(&k, tmp_path("rsa_trad.pem")) == 0 && k.alg == RELAY_JWT_RS256);
    relay_jwt_key_free(&k);

    static const struct {
        const char *file, *says;
        int code;
    } bad[] = {
        {"p384.pem", "P-256", CR_ECONFIG},
        {"rsa1024.pem", "2048", CR_ECONFIG},
        {"ed25519.pem", "ED25519", CR_ECONFIG},
        {"public.pem", "private key", CR_ECONFIG},
        {"encrypted.pem", "private key", CR_ECONFIG},
        {"garbage.pem", "private key", CR_ECONFIG},
        {"missing.p8", "cannot open", CR_EIO},
        {"", "not a regular file", CR_EIO}, /* the directory itself */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        const char *path = tmp_path(bad[i].file);
        int rc = relay_jwt_key_load_file(&k, path);
        okf(rc == bad[i].code && k.pkey == NULL, "%s: rc %d", bad[i].file, rc);
        okf(strstr(cr_error_last()->message, path) != NULL && strstr(cr_error_last()->message, bad[i].says) != NULL,
            "%s: message '%s'", bad[i].file, cr_error_last()->message);
    }
    EVP_PKEY_free(p384);
    EVP_PKEY_free(rsa1024);
    EVP_PKEY_free(ed);
}

/* ---- JWTs -------------------------------------------------------------------------------------------------------- */

static void test_sign_es256(void)
{
    relay_jwt_key_t k = {0};
    cr_buf_t out;
    char *h, *c, pyout[4096];
    int padded = 0, all_ok = 1;

    cr_buf_init(&out, 1 << 16);
    ok(relay_jwt_key_load_file(&k, tmp_path("AuthKey_ABC123DEFG.p8")) == 0);
    ok(relay_jwt_sign(&out, &k, "{\"alg\":\"ES256\"}", "{\"n\":1}") == 0);
    ok(strlen(out.base) == out.len); /* NUL-terminated, the NUL not counted */
    ok(jwt_check_c(out.base, ec_key, &h, &c));
    ok_str(h, "{\"alg\":\"ES256\"}");
    ok_str(c, "{\"n\":1}");
    free(h);
    free(c);
    ok(jwt_check_python(tmp_path("public.pem"), out.base, pyout, sizeof(pyout)) == 0);
    ok_str(pyout, "{\"claims\": {\"n\": 1}, \"header\": {\"alg\": \"ES256\"}}");

    /* other claims under this signature (taken from a token for {"n":3}) do not verify, for either checker */
    {
        cr_buf_t other, bad;
        cr_buf_init(&other, 1 << 16);
        cr_buf_init(&bad, 1 << 16);
        ok(relay_jwt_sign(&other, &k, "{\"alg\":\"ES256\"}", "{\"n\":3}") == 0);
        cr_buf_appendf(&bad, "%.*s%s", (int)(strrchr(other.base, '.') - other.base), other.base, strrchr(out.base, '.'));
        cr_buf_append(&bad, "", 1);
        ok(!jwt_check_c(bad.base, ec_key, &h, &c));
        ok_str(c, "{\"n\":3}");
        free(h);
        free(c);
        ok(jwt_check_python(tmp_path("public.pem"), bad.base, pyout, sizeof(pyout)) == 1);
        cr_buf_free(&other);
        cr_buf_free(&bad);
    }

    /* R and S are fixed 32-byte halves: sign until each half has had a leading zero byte, which a DER-to-raw
     * conversion without left-padding gets wrong (about 1 signature in 256 for each half); every one must verify */
    for (int i = 0; i < 5000 && padded != 3; ++i) {
        cr_buf_t sig;
        char *s;
        int lead;
        h = c = NULL;
        cr_buf_reset(&out);
        cr_buf_init(&sig, 256);
        if (relay_jwt_sign(&out, &k, "{\"alg\":\"ES256\"}", "{\"n\":2}") != 0 || (s = strrchr(out.base, '.')) == NULL ||
            cr_base64url_decode(&sig, s + 1, strlen(s + 1)) != 0 || sig.len != 64 || !jwt_check_c(out.base, ec_key, &h, &c)) {
            all_ok = 0;
            okf(0, "signature %d: %s", i, out.base);
        }
        lead = sig.len == 64 ? ((unsigned char)sig.base[0] == 0) | ((unsigned char)sig.base[32] == 0) << 1 : 0;
        if (lead != 0 && (padded & lead) != lead) {
            padded |= lead;
            if (jwt_check_python(tmp_path("public.pem"), out.base, pyout, sizeof(pyout)) != 0)
                all_ok = 0;
        }
        free(h);
        free(c);
        cr_buf_free(&sig);
        if (!all_ok)
            break;
    }
    okf(all_ok && padded == 3, "padded %d, all_ok %d", padded, all_ok);

    /* an error leaves out as it was */
    {
        cr_buf_t small;
        cr_buf_init(&small, 20);
        cr_buf_append(&small, "x", 1);
        ok(relay_jwt_sign(&small, &k, "{\"alg\":\"ES256\"}", "{}") == CR_ETOOLARGE && small.len == 1);
        cr_buf_free(&small);
    }
    relay_jwt_key_free(&k);
    cr_buf_reset(&out);
    ok(relay_jwt_sign(&out, &k, "{}", "{}") == CR_ERR && out.len == 0); /* no key */
    cr_buf_free(&out);
}

static void test_sign_rs256(void)
{
    relay_jwt_key_t k = {0};
    cr_buf_t out;
    char *h, *c, pyout[4096];

    write_pem("rsa_public.pem", rsa_key, "public");
    cr_buf_init(&out, 1 << 16);
    ok(relay_jwt_key_load_file(&k, tmp_path("rsa_trad.pem")) == 0);
    ok(relay_jwt_sign(&out, &k, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}", "{\"sub\":\"x\"}") == 0);
    ok(jwt_check_c(out.base, rsa_key, &h, &c));
    ok_str(h, "{\"alg\":\"RS256\",\"typ\":\"JWT\"}");
    ok_str(c, "{\"sub\":\"x\"}");
    free(h);
    free(c);
    ok(strlen(strrchr(out.base, '.') + 1) == 342); /* 256 signature bytes */
    ok(jwt_check_python(tmp_path("rsa_public.pem"), out.base, pyout, sizeof(pyout)) == 0);
    ok_str(pyout, "{\"claims\": {\"sub\": \"x\"}, \"header\": {\"alg\": \"RS256\", \"typ\": \"JWT\"}}");
    /* the wrong public key does not verify it */
    ok(jwt_check_python(tmp_path("public.pem"), out.base, pyout, sizeof(pyout)) == 1);
    relay_jwt_key_free(&k);
    cr_buf_free(&out);
}

static void test_apns_token(void)
{
    relay_jwt_key_t k = {0}, rsa = {0};
    cr_buf_t out;
    char *h, *c, pyout[4096];

    cr_buf_init(&out, 1 << 16);
    ok(relay_jwt_key_load_file(&k, tmp_path("AuthKey_ABC123DEFG.p8")) == 0);
    ok(relay_jwt_apns_token(&out, &k, "ABC123DEFG", "DEF123GHIJ", 1700000000) == 0);
    ok(jwt_check_c(out.base, ec_key, &h, &c));
    ok_str(h, "{\"alg\":\"ES256\",\"kid\":\"ABC123DEFG\"}");
    ok_str(c, "{\"iss\":\"DEF123GHIJ\",\"iat\":1700000000}");
    free(h);
    free(c);
    ok(jwt_check_python(tmp_path("public.pem"), out.base, pyout, sizeof(pyout)) == 0);
    ok_str(pyout, "{\"claims\": {\"iat\": 1700000000, \"iss\": \"DEF123GHIJ\"}, "
                  "\"header\": {\"alg\": \"ES256\", \"kid\": \"ABC123DEFG\"}}");

    /* strings are JSON-escaped */
    cr_buf_reset(&out);
    ok(relay_jwt_apns_token(&out, &k, "K\"1", "T\\\n", 5) == 0);
    ok(jwt_check_c(out.base, ec_key, &h, &c));
    ok_str(h, "{\"alg\":\"ES256\",\"kid\":\"K\\\"1\"}");
    ok_str(c, "{\"iss\":\"T\\\\\\u000a\",\"iat\":5}");
    free(h);
    free(c);

    /* APNs wants ES256: an RSA key and empty ids are refused, out unchanged */
    cr_buf_reset(&out);
    ok(relay_jwt_key_load_file(&rsa, tmp_path("rsa_pkcs8.pem")) == 0);
    ok(relay_jwt_apns_token(&out, &rsa, "ABC123DEFG", "DEF123GHIJ", 1) == CR_ECONFIG && out.len == 0);
    ok(relay_jwt_apns_token(&out, &k, "", "DEF123GHIJ", 1) == CR_ECONFIG && out.len == 0);
    ok_str(cr_error_last()->field, "key_id");
    ok(relay_jwt_apns_token(&out, &k, "ABC123DEFG", "", 1) == CR_ECONFIG && out.len == 0);
    ok_str(cr_error_last()->field, "team_id");
    relay_jwt_key_free(&rsa);
    relay_jwt_key_free(&k);
    cr_buf_free(&out);
}

/* ---- service accounts -------------------------------------------------------------------------------------------- */

/* JSON-escapes a PEM the way Google writes it (newlines as \n). */
static void append_escaped(cr_buf_t *b, const char *s)
{
    for (; *s != '\0'; ++s) {
        if (*s == '\n')
            cr_buf_append(b, "\\n", 2);
        else
            cr_buf_append(b, s, 1);
    }
}

/* A service-account JSON text; `skip` leaves that field out, `override` replaces its value with raw JSON. */
static char *sa_json(EVP_PKEY *pkey, const char *skip, const char *field, const char *raw)
{
    static const char *const names[] = {"type", "project_id", "private_key_id", "private_key", "client_email",
                                        "client_id", "auth_uri", "token_uri"};
    static const char *const values[] = {"\"service_account\"", "\"corral-test\"", "\"0123456789abcdef\"", NULL,
                                         "\"relay@corral-test.iam.gserviceaccount.com\"", "\"1234\"",
                                         "\"https://accounts.google.com/o/oauth2/auth\"",
                                         "\"https://oauth2.googleapis.com/token\""};
    cr_buf_t b;
    int first = 1;
    cr_buf_init(&b, 1 << 16);
    cr_buf_append(&b, "{\n", 2);
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); ++i) {
        if (skip != NULL && strcmp(skip, names[i]) == 0)
            continue;
        cr_buf_appendf(&b, "%s  \"%s\": ", first ? "" : ",\n", names[i]);
        first = 0;
        if (field != NULL && strcmp(field, names[i]) == 0) {
            cr_buf_appendf(&b, "%s", raw);
        } else if (values[i] != NULL) {
            cr_buf_appendf(&b, "%s", values[i]);
        } else {
            char *pem = pem_of(pkey, "pkcs8");
            cr_buf_append(&b, "\"", 1);
            append_escaped(&b, pem);
            cr_buf_append(&b, "\"", 1);
            free(pem);
        }
    }
    cr_buf_append(&b, "\n}\n", 4);
    return b.base;
}

static void test_service_account(void)
{
    relay_service_account_t sa;
    cr_buf_t out;
    char *json, *h, *c, pyout[4096];
    const char *path = tmp_path("service-account.json");

    json = sa_json(rsa_key, NULL, NULL, NULL);
    write_file(path, json, strlen(json));
    ok(relay_service_account_load_file(&sa, path) == 0);
    ok_str(sa.project_id, "corral-test");
    ok_str(sa.private_key_id, "0123456789abcdef");
    ok_str(sa.client_email, "relay@corral-test.iam.gserviceaccount.com");
    ok_str(sa.token_uri, "https://oauth2.googleapis.com/token");
    ok(sa.key.alg == RELAY_JWT_RS256 && EVP_PKEY_eq(sa.key.pkey, rsa_key) == 1);

    cr_buf_init(&out, 1 << 16);
    ok(relay_jwt_fcm_assertion(&out, &sa, 1700000000) == 0);
    ok(jwt_check_c(out.base, rsa_key, &h, &c));
    ok_str(h, "{\"alg\":\"RS256\",\"typ\":\"JWT\",\"kid\":\"0123456789abcdef\"}");
    ok_str(c, "{\"iss\":\"relay@corral-test.iam.gserviceaccount.com\","
              "\"scope\":\"https://www.googleapis.com/auth/firebase.messaging\","
              "\"aud\":\"https://oauth2.googleapis.com/token\",\"iat\":1700000000,\"exp\":1700003600}");
    free(h);
    free(c);
    ok(jwt_check_python(tmp_path("rsa_public.pem"), out.base, pyout, sizeof(pyout)) == 0);
    ok_str(pyout, "{\"claims\": {\"aud\": \"https://oauth2.googleapis.com/token\", \"exp\": 1700003600, "
                  "\"iat\": 1700000000, \"iss\": \"relay@corral-test.iam.gserviceaccount.com\", "
                  "\"scope\": \"https://www.googleapis.com/auth/firebase.messaging\"}, "
                  "\"header\": {\"alg\": \"RS256\", \"kid\": \"0123456789abcdef\", \"typ\": \"JWT\"}}");
    relay_service_account_free(&sa);
    relay_service_account_free(&sa); /* idempotent */
    ok(sa.project_id == NULL && sa.key.pkey == NULL);
    cr_buf_reset(&out);
    ok(relay_jwt_fcm_assertion(&out, &sa, 1) == CR_ECONFIG && out.len == 0); /* no key */
    free(json);

    /* the same from memory */
    json = sa_json(rsa_key, NULL, NULL, NULL);
    ok(relay_service_account_load_json(&sa, json, strlen(json), NULL) == 0 && sa.key.alg == RELAY_JWT_RS256);
    relay_service_account_free(&sa);
    free(json);

    /* each required field missing, named by the error */
    static const char *const required[] = {"type", "project_id", "private_key_id", "private_key", "client_email",
                                           "token_uri"};
    for (size_t i = 0; i < sizeof(required) / sizeof(required[0]); ++i) {
        json = sa_json(rsa_key, required[i], NULL, NULL);
        write_file(path, json, strlen(json));
        int rc = relay_service_account_load_file(&sa, path);
        okf(rc == CR_ECONFIG, "without %s: rc %d", required[i], rc);
        ok_str(cr_error_last()->field, required[i]);
        okf(strstr(cr_error_last()->message, path) != NULL && strstr(cr_error_last()->message, required[i]) != NULL,
            "message '%s'", cr_error_last()->message);
        ok(sa.project_id == NULL && sa.key.pkey == NULL);
        free(json);
    }

    /* fields of the wrong type or value */
    static const struct {
        const char *field, *raw, *says;
    } bad[] = {
        {"type", "\"authorized_user\"", "service_account"},
        {"project_id", "42", "must be a string"},
        {"client_email", "\"\"", "is empty"},
        {"token_uri", "null", "must be a string"},
        {"private_key", "\"-----BEGIN PRIVATE KEY-----\\nAAAA\\n-----END PRIVATE KEY-----\\n\"", "private key"},
        {"private_key", "{\"pem\":1}", "must be a string"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        json = sa_json(rsa_key, NULL, bad[i].field, bad[i].raw);
        write_file(path, json, strlen(json));
        int rc = relay_service_account_load_file(&sa, path);
        okf(rc == CR_ECONFIG, "%s = %s: rc %d", bad[i].field, bad[i].raw, rc);
        ok_str(cr_error_last()->field, bad[i].field);
        okf(strstr(cr_error_last()->message, path) != NULL && strstr(cr_error_last()->message, bad[i].says) != NULL,
            "message '%s'", cr_error_last()->message);
        free(json);
    }

    /* an EC private key is not what Google hands out */
    json = sa_json(ec_key, NULL, NULL, NULL);
    ok(relay_service_account_load_json(&sa, json, strlen(json), "sa.json") == CR_ECONFIG);
    ok_str(cr_error_last()->field, "private_key");
    free(json);

    /* not JSON, not an object, no file */
    write_file(path, "{\"type\": \"service_account\",", 27);
    ok(relay_service_account_load_file(&sa, path) == CR_EJSON);
    ok(strstr(cr_error_last()->message, path) != NULL);
    write_file(path, "[1,2]", 5);
    ok(relay_service_account_load_file(&sa, path) == CR_ECONFIG);
    ok(strstr(cr_error_last()->message, "object") != NULL);
    ok(relay_service_account_load_file(&sa, tmp_path("nope.json")) == CR_EIO);
    ok(strstr(cr_error_last()->message, tmp_path("nope.json")) != NULL);
    {
        size_t big = RELAY_SERVICE_ACCOUNT_FILE_MAX + 1;
        char *junk = malloc(big);
        memset(junk, ' ', big);
        write_file(path, junk, big);
        ok(relay_service_account_load_file(&sa, path) == CR_EIO);
        ok(strstr(cr_error_last()->message, "larger") != NULL);
        free(junk);
    }
    cr_buf_free(&out);
}

int main(void)
{
    if (cr_test_make_temp_dir(tmp, sizeof(tmp), "push_jwt", 200) != 0 || cr_test_slot_add(tmp, 0) < 0)
        return 1;
    okf(cr_test_find_program(python, sizeof(python), "python3") == 0, "python3 not found");
    snprintf(verifier, sizeof(verifier), "%s/tests/fakes/jwt_verify.py", cr_test_source_dir());
    ok((ec_key = EVP_EC_gen("P-256")) != NULL);
    ok((rsa_key = EVP_RSA_gen(2048)) != NULL);

    subtest("load keys", test_load_keys);
    subtest("ES256", test_sign_es256);
    subtest("RS256", test_sign_rs256);
    subtest("APNs provider token", test_apns_token);
    subtest("service account and FCM assertion", test_service_account);

    EVP_PKEY_free(ec_key);
    EVP_PKEY_free(rsa_key);
    return done_testing();
}
