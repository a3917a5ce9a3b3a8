/* webpush.c — unit tests of relay/src/webpush.c: RFC 8291's example byte for byte, round trips through the independent
 * receiver tests/fakes/webpush_decrypt.py, size limits, bad subscription keys, the VAPID key file and the
 * Authorization header checked by OpenSSL and by tests/fakes/jwt_verify.py. */
#include "harness.h"
#include "webpush_check.h"
#include "proc.h"
#include "webpush.h"
#include "corral/codec.h"
#include "corral/error.h"
#include <dirent.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>

static char tmp[PATH_MAX], python[PATH_MAX], decryptor[PATH_MAX], verifier[PATH_MAX];

/* ---- helpers ---------------------------------------------------------------------------------------------------- */

static const char *tmp_path(const char *name)
{
    static char path[8][2 * PATH_MAX];
    static int next;
    char *p = path[next++ % 8];
    snprintf(p, 2 * PATH_MAX, "%s/%s", tmp, name);
    return p;
}

/* Decodes base64url text that must give exactly n bytes. */
static int unb64(void *out, size_t n, const char *s)
{
    cr_buf_t b;
    int good;
    cr_buf_init(&b, 1 << 16);
    good = cr_base64url_decode(&b, s, strlen(s)) == 0 && b.len == n;
    if (good)
        memcpy(out, b.base, n);
    cr_buf_free(&b);
    return good;
}

/* A fresh UA key pair: the private scalar and the public point. */
static void ua_keypair(uint8_t priv[32], uint8_t pub[65])
{
    EVP_PKEY *k = EVP_EC_gen("P-256");
    BIGNUM *d = NULL;
    size_t n = 0;
    ok(k != NULL && EVP_PKEY_get_bn_param(k, OSSL_PKEY_PARAM_PRIV_KEY, &d) == 1 && BN_bn2binpad(d, priv, 32) == 32 &&
       EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, 65, &n) == 1 && n == 65);
    BN_clear_free(d);
    EVP_PKEY_free(k);
}


/* Verifies an ES256 compact JWS with the raw public point k, in C (R||S turned back into DER). Returns 1 when it
 * verifies; *header and *claims get the decoded JSON (malloc'd, NUL-terminated). */
static int jwt_check_k(const char *token, size_t len, const uint8_t k[65], char **header, char **claims)
{
    const char *end = token + len, *d1 = memchr(token, '.', len);
    const char *d2 = d1 != NULL ? memchr(d1 + 1, '.', (size_t)(end - d1 - 1)) : NULL;
    char name[] = "prime256v1";
    OSSL_PARAM params[] = {
        OSSL_PARAM_construct_utf8_string(OSSL_PKEY_PARAM_GROUP_NAME, name, 0),
        OSSL_PARAM_construct_octet_string(OSSL_PKEY_PARAM_PUB_KEY, (void *)k, 65),
        OSSL_PARAM_construct_end(),
    };
    EVP_PKEY_CTX *pctx = EVP_PKEY_CTX_new_from_name(NULL, "EC", NULL);
    EVP_PKEY *pub = NULL;
    EVP_MD_CTX *md = NULL;
    ECDSA_SIG *es = NULL;
    unsigned char *der = NULL;
    cr_buf_t h, c, s;
    int good = 0, derlen;

    cr_buf_init(&h, 4096);
    cr_buf_init(&c, 4096);
    cr_buf_init(&s, 4096);
    *header = *claims = NULL;
    if (d2 == NULL || cr_base64url_decode(&h, token, (size_t)(d1 - token)) != 0 ||
        cr_base64url_decode(&c, d1 + 1, (size_t)(d2 - d1 - 1)) != 0 ||
        cr_base64url_decode(&s, d2 + 1, (size_t)(end - d2 - 1)) != 0 || s.len != 64 || cr_buf_append(&h, "", 1) != 0 || cr_buf_append(&c, "", 1) != 0)
        goto done;
    *header = strdup(h.base);
    *claims = strdup(c.base);
    if (EVP_PKEY_fromdata_init(pctx) != 1 || EVP_PKEY_fromdata(pctx, &pub, EVP_PKEY_PUBLIC_KEY, params) != 1 ||
        (es = ECDSA_SIG_new()) == NULL)
        goto done;
    ECDSA_SIG_set0(es, BN_bin2bn((unsigned char *)s.base, 32, NULL), BN_bin2bn((unsigned char *)s.base + 32, 32, NULL));
    if ((derlen = i2d_ECDSA_SIG(es, &der)) <= 0)
        goto done;
    md = EVP_MD_CTX_new();
    good = EVP_DigestVerifyInit(md, NULL, EVP_sha256(), NULL, pub) == 1 &&
           EVP_DigestVerify(md, der, (size_t)derlen, (const unsigned char *)token, (size_t)(d2 - token)) == 1;
done:
    EVP_MD_CTX_free(md);
    OPENSSL_free(der);
    ECDSA_SIG_free(es);
    EVP_PKEY_free(pub);
    EVP_PKEY_CTX_free(pctx);
    cr_buf_free(&h);
    cr_buf_free(&c);
    cr_buf_free(&s);
    return good;
}

/* ---- RFC 8291 ---------------------------------------------------------------------------------------------------- */

/* RFC 8291 section 5 (the same values in Appendix A). */
#define RFC_PLAINTEXT "When I grow up, I want to be a watermelon"
#define RFC_UA_PUBLIC "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
#define RFC_UA_PRIVATE "q1dXpw3UpT5VOmu_cf_v6ih07Aems3njxI-JWgLcM94"
#define RFC_AS_PUBLIC "BP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27mlmlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A8"
#define RFC_AS_PRIVATE "yfWPiYE-n46HLnH0KqZOF1fJJU3MYrct3AELtAQ-oRw"
#define RFC_AUTH "BTBZMqHH6r4Tts7J_aSIgg"
#define RFC_SALT "DGv6ra1nlYgDCS1FRnbzlw"
#define RFC_BODY                                                                                                        \
    "DGv6ra1nlYgDCS1FRnbzlwAAEABBBP4z9KsN6nGRTbVYI_c7VJSPQTBtkgcy27ml"                                                  \
    "mlMoZIIgDll6e3vCYLocInmYWAmS6TlzAC8wEqKK6PBru3jl7A_yl95bQpu6cVPT"                                                  \
    "pK4Mqgkf1CXztLVBSt2Ks3oZwbuwXPXLWyouBWLVWGNWQexSgSxsj_Qulcy4a-fN"

static void test_rfc8291_example(void)
{
    uint8_t ua_public[65], as_private[32], as_public[65], auth[16], salt[16], ua_private[32];
    cr_buf_t out, want;
    char *plain = NULL;
    size_t plainlen = 0;

    ok(unb64(ua_public, 65, RFC_UA_PUBLIC) && unb64(as_private, 32, RFC_AS_PRIVATE) && unb64(as_public, 65, RFC_AS_PUBLIC) &&
       unb64(auth, 16, RFC_AUTH) && unb64(salt, 16, RFC_SALT) && unb64(ua_private, 32, RFC_UA_PRIVATE));
    cr_buf_init(&out, 1 << 16);
    cr_buf_init(&want, 1 << 16);
    ok(cr_base64url_decode(&want, RFC_BODY, strlen(RFC_BODY)) == 0);
    ok(relay_webpush__encrypt_with(&out, ua_public, auth, RFC_PLAINTEXT, strlen(RFC_PLAINTEXT), as_private, salt) == 0);
    ok_bytes(out.base, out.len, want.base, want.len);
    ok_bytes(out.base + 21, 65, as_public, 65); /* the key id is the RFC's as_public, derived from as_private */

    /* and the independent receiver opens the RFC's body (its own --selftest, then through the same path) */
    ok(cr_test_webpush_decrypt(tmp, ua_private, auth, want.base, want.len, &plain, &plainlen) == 0);
    ok_bytes(plain, plainlen, RFC_PLAINTEXT, strlen(RFC_PLAINTEXT));
    free(plain);
    {
        char cmd[3 * PATH_MAX];
        snprintf(cmd, sizeof(cmd), "'%s' '%s' --selftest >/dev/null", python, decryptor);
        ok(system(cmd) == 0);
    }

    /* a scalar that is not a P-256 private key is refused */
    memset(as_private, 0, sizeof(as_private));
    cr_buf_reset(&out);
    ok(relay_webpush__encrypt_with(&out, ua_public, auth, "x", 1, as_private, salt) == CR_ERR && out.len == 0);
    memset(as_private, 0xff, sizeof(as_private)); /* above the group order */
    ok(relay_webpush__encrypt_with(&out, ua_public, auth, "x", 1, as_private, salt) == CR_ERR && out.len == 0);
    cr_buf_free(&out);
    cr_buf_free(&want);
}

/* ---- round trips and limits --------------------------------------------------------------------------------------- */

static void test_round_trips(void)
{
    static const size_t sizes[] = {0, 1, 2, 100, 3992, RELAY_WEBPUSH_MAX_PLAINTEXT};
    uint8_t priv[32], pub[65], auth[16], wrong_auth[16];
    unsigned char *msg = malloc(RELAY_WEBPUSH_MAX_PLAINTEXT + 1);
    cr_buf_t out;

    ua_keypair(priv, pub);
    ok(RAND_bytes(auth, sizeof(auth)) == 1 && RAND_bytes(msg, RELAY_WEBPUSH_MAX_PLAINTEXT + 1) == 1);
    msg[0] = 0; /* a NUL at the start and 0x02 / 0x00 at the end are data, not padding */
    cr_buf_init(&out, 1 << 16);
    for (size_t i = 0; i < sizeof(sizes) / sizeof(sizes[0]); ++i) {
        size_t len = sizes[i];
        char *plain = NULL;
        size_t plainlen = 0;
        unsigned char rs[4];
        if (len >= 2) {
            msg[len - 2] = 0x02;
            msg[len - 1] = 0x00;
        }
        cr_buf_reset(&out);
        okf(relay_webpush_encrypt(&out, pub, auth, msg, len) == 0, "encrypt %zu bytes", len);
        okf(out.len == RELAY_WEBPUSH_HEADER_LEN + len + 17, "%zu bytes give a body of %zu", len, out.len);
        memcpy(rs, out.base + 16, 4);
        ok(rs[0] == 0 && rs[1] == 0 && rs[2] == 0x10 && rs[3] == 0 && (unsigned char)out.base[20] == 65 &&
           (unsigned char)out.base[21] == 0x04);
        okf(cr_test_webpush_decrypt(tmp, priv, auth, out.base, out.len, &plain, &plainlen) == 0, "python decrypts %zu bytes", len);
        ok_bytes(plain, plainlen, msg, len);
        free(plain);
    }
    ok(out.len <= 4096); /* the largest message still fits a push service's 4096 bytes */

    /* the receiver refuses it with another auth secret */
    {
        char *plain = NULL;
        size_t plainlen = 0;
        memcpy(wrong_auth, auth, sizeof(auth));
        wrong_auth[0] ^= 1;
        ok(cr_test_webpush_decrypt(tmp, priv, wrong_auth, out.base, out.len, &plain, &plainlen) == 1 && plainlen == 0);
        free(plain);
    }

    /* every message has its own salt and ephemeral key */
    {
        cr_buf_t again;
        cr_buf_init(&again, 1 << 16);
        cr_buf_reset(&out);
        ok(relay_webpush_encrypt(&out, pub, auth, "same", 4) == 0 && relay_webpush_encrypt(&again, pub, auth, "same", 4) == 0);
        ok(memcmp(out.base, again.base, 16) != 0);            /* salt */
        ok(memcmp(out.base + 21, again.base + 21, 65) != 0);  /* as_public */
        cr_buf_free(&again);
    }

    /* 3994 bytes are refused, and out keeps what it had */
    cr_buf_reset(&out);
    cr_buf_append(&out, "keep", 4);
    ok(relay_webpush_encrypt(&out, pub, auth, msg, RELAY_WEBPUSH_MAX_PLAINTEXT + 1) == CR_ETOOLARGE);
    ok_str(cr_err_code(cr_error_last()->code), "too_large");
    ok(out.len == 4);

    /* a full out buffer */
    {
        cr_buf_t small;
        cr_buf_init(&small, 100);
        ok(relay_webpush_encrypt(&small, pub, auth, msg, 100) == CR_ETOOLARGE && small.len == 0);
        cr_buf_free(&small);
    }
    cr_buf_free(&out);
    free(msg);
}

static void test_bad_ua_keys(void)
{
    uint8_t priv[32], pub[65], bad[65], auth[16] = {1};
    cr_buf_t out;

    ua_keypair(priv, pub);
    cr_buf_init(&out, 1 << 16);

    memcpy(bad, pub, 65);
    bad[64] ^= 1; /* y no longer on the curve */
    ok(relay_webpush_encrypt(&out, bad, auth, "hi", 2) == CR_EBODY && out.len == 0);
    ok_str(cr_error_last()->field, "subscription.keys.p256dh");

    memcpy(bad, pub, 65);
    bad[0] = 0x02; /* compressed form */
    ok(relay_webpush_encrypt(&out, bad, auth, "hi", 2) == CR_EBODY && out.len == 0);

    memset(bad, 0, 65);
    bad[0] = 0x04; /* (0, 0) */
    ok(relay_webpush_encrypt(&out, bad, auth, "hi", 2) == CR_EBODY && out.len == 0);

    memset(bad, 0xff, 65);
    bad[0] = 0x04; /* coordinates above the field prime */
    ok(relay_webpush_encrypt(&out, bad, auth, "hi", 2) == CR_EBODY && out.len == 0);

    memset(bad, 0, 65); /* all zero */
    ok(relay_webpush_encrypt(&out, bad, auth, "hi", 2) == CR_EBODY && out.len == 0);

    ok(relay_webpush_encrypt(&out, pub, auth, "hi", 2) == 0); /* the good one still works */
    cr_buf_free(&out);
}

/* ---- VAPID -------------------------------------------------------------------------------------------------------- */

static int count_entries(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    while (d != NULL && (e = readdir(d)) != NULL)
        if (strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0)
            ++n;
    if (d != NULL)
        closedir(d);
    return n;
}

static void test_vapid_key(void)
{
    relay_vapid_t v, again;
    const char *dir = tmp_path("data"), *pem = tmp_path("data/vapid.pem");
    uint8_t decoded[65];
    struct stat st;
    char *before, *after;

    ok(relay_vapid_load_or_create(&v, dir) == 0); /* makes data/ too */
    ok(stat(pem, &st) == 0 && (st.st_mode & 0777) == 0600);
    ok(stat(dir, &st) == 0 && (st.st_mode & 0777) == 0700);
    ok(count_entries(dir) == 1); /* no temporary file left behind */
    ok(v.key.alg == RELAY_JWT_ES256 && v.public_key[0] == 0x04);
    ok(strlen(v.public_b64) == RELAY_WEBPUSH_B64_KEY_LEN && unb64(decoded, 65, v.public_b64));
    ok_bytes(decoded, 65, v.public_key, 65);
    before = cr_test_read_file(pem, NULL);
    ok(before != NULL && strstr(before, "-----BEGIN PRIVATE KEY-----") != NULL);

    /* a second start reuses it */
    ok(relay_vapid_load_or_create(&again, dir) == 0);
    ok_bytes(again.public_key, 65, v.public_key, 65);
    ok_str(again.public_b64, v.public_b64);
    after = cr_test_read_file(pem, NULL);
    ok(after != NULL && before != NULL && strcmp(before, after) == 0);
    ok(stat(pem, &st) == 0 && (st.st_mode & 0777) == 0600);
    relay_vapid_free(&again);
    relay_vapid_free(&again); /* idempotent */
    relay_vapid_free(&v);
    free(before);
    free(after);

    /* a key put there by an operator (SEC1 "EC PRIVATE KEY") is used as it is */
    {
        const char *dir2 = tmp_path("data2");
        char path[2 * PATH_MAX];
        EVP_PKEY *k = EVP_EC_gen("P-256");
        uint8_t pub[65];
        size_t n = 0;
        FILE *fp;
        mkdir(dir2, 0700);
        snprintf(path, sizeof(path), "%s/vapid.pem", dir2);
        {
            BIO *bio = BIO_new_file(path, "w");
            ok(bio != NULL && PEM_write_bio_PrivateKey_traditional(bio, k, NULL, NULL, 0, NULL, NULL) == 1);
            BIO_free(bio);
        }
        chmod(path, 0600);
        ok(EVP_PKEY_get_octet_string_param(k, OSSL_PKEY_PARAM_PUB_KEY, pub, 65, &n) == 1 && n == 65);
        ok(relay_vapid_load_or_create(&v, dir2) == 0);
        ok_bytes(v.public_key, 65, pub, 65);
        relay_vapid_free(&v);
        EVP_PKEY_free(k);

        /* an RSA key there is refused, naming the file */
        k = EVP_RSA_gen(2048);
        fp = fopen(path, "w");
        ok(fp != NULL && PEM_write_PrivateKey(fp, k, NULL, NULL, 0, NULL, NULL) == 1);
        fclose(fp);
        ok(relay_vapid_load_or_create(&v, dir2) == CR_ECONFIG);
        ok(strstr(cr_error_last()->message, path) != NULL);
        ok(v.key.pkey == NULL);
        EVP_PKEY_free(k);

        /* so is garbage */
        fp = fopen(path, "w");
        fputs("not a key\n", fp);
        fclose(fp);
        ok(relay_vapid_load_or_create(&v, dir2) == CR_ECONFIG);
    }

    /* a data directory that cannot be made */
    ok(relay_vapid_load_or_create(&v, tmp_path("no/such/dir")) == CR_EIO);
}

static void test_origin(void)
{
    static const struct {
        const char *url, *origin;
    } good[] = {
        {"https://fcm.googleapis.com/fcm/send/abc123?x=1", "https://fcm.googleapis.com"},
        {"https://updates.push.services.mozilla.com/wpush/v2/gAAAA", "https://updates.push.services.mozilla.com"},
        {"https://push.example.net:8443/wpush/v2/xyz", "https://push.example.net:8443"},
        {"https://push.example.net:443/p", "https://push.example.net"},
        {"https://Push.Example.NET", "https://push.example.net"},
        {"HTTPS://push.example.net#frag", "https://push.example.net"},
        {"http://127.0.0.1:9000/push/1", "http://127.0.0.1:9000"},
        {"http://localhost:80/push", "http://localhost"},
        {"http://[::1]:9000/x", "http://[::1]:9000"},
        {"https://web.push.apple.com/QGuQyavXuto", "https://web.push.apple.com"},
    };
    static const char *const bad[] = {
        "ftp://push.example.net/x", "https:///path", "https://user@push.example.net/", "https://push.example.net:99999/",
        "https://push.example.net:0/", "https://push.example.net:ab/", "push.example.net/x", "https://push example/",
        "https://[::1/", "", "https://push.example.net\"x/",
    };
    char out[300];
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); ++i) {
        okf(relay_webpush_origin(out, sizeof(out), good[i].url) == 0, "%s", good[i].url);
        ok_str(out, good[i].origin);
    }
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        int rc = relay_webpush_origin(out, sizeof(out), bad[i]);
        okf(rc == CR_EBODY, "'%s' gives %d", bad[i], rc);
    }
    ok(relay_webpush_origin(out, 10, "https://push.example.net/") == CR_ETOOLARGE);
}

static void test_vapid_authorization(void)
{
    static const struct {
        const char *endpoint, *aud;
    } cases[] = {
        {"https://fcm.googleapis.com/fcm/send/abc123", "https://fcm.googleapis.com"},
        {"https://push.example.net:8443/wpush/v2/xyz?q=1", "https://push.example.net:8443"},
        {"http://127.0.0.1:9000", "http://127.0.0.1:9000"},
    };
    relay_vapid_t v;
    cr_buf_t out;
    char *h, *c, want[512], cmd[4 * PATH_MAX + 1024], pyout[2048];

    ok(relay_vapid_load_or_create(&v, tmp_path("data")) == 0);
    cr_buf_init(&out, 1 << 16);
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); ++i) {
        const char *t, *k;
        size_t n;
        FILE *fp;
        int st;
        cr_buf_reset(&out);
        ok(relay_vapid_authorization(&out, &v, cases[i].endpoint, "mailto:ops@example.com", 1700000000) == 0);
        ok(strlen(out.base) == out.len);
        ok(strncmp(out.base, "vapid t=", 8) == 0 && (k = strstr(out.base, ", k=")) != NULL);
        ok_str(k + 4, v.public_b64);
        t = out.base + 8;
        ok(jwt_check_k(t, (size_t)(k - t), v.public_key, &h, &c));
        ok_str(h, "{\"typ\":\"JWT\",\"alg\":\"ES256\"}");
        snprintf(want, sizeof(want), "{\"aud\":\"%s\",\"exp\":%d,\"sub\":\"mailto:ops@example.com\"}", cases[i].aud,
                 1700000000 + 12 * 3600);
        ok_str(c, want);
        free(h);
        free(c);

        /* the independent checker, given only what a push service sees: t and k */
        snprintf(cmd, sizeof(cmd), "'%s' '%s' --k '%s' '%.*s'", python, verifier, k + 4, (int)(k - t), t);
        ok((fp = popen(cmd, "r")) != NULL);
        n = fread(pyout, 1, sizeof(pyout) - 1, fp);
        pyout[n] = '\0';
        st = pclose(fp);
        ok(WIFEXITED(st) && WEXITSTATUS(st) == 0);
        snprintf(want, sizeof(want),
                 "{\"claims\": {\"aud\": \"%s\", \"exp\": %d, \"sub\": \"mailto:ops@example.com\"}, "
                 "\"header\": {\"alg\": \"ES256\", \"typ\": \"JWT\"}}\n",
                 cases[i].aud, 1700000000 + 12 * 3600);
        ok_str(pyout, want);
    }

    /* another key's k does not verify it */
    {
        uint8_t priv[32], other[65];
        const char *k = strstr(out.base, ", k=");
        ua_keypair(priv, other);
        ok(!jwt_check_k(out.base + 8, (size_t)(k - out.base - 8), other, &h, &c));
        free(h);
        free(c);
    }

    cr_buf_reset(&out);
    ok(relay_vapid_authorization(&out, &v, "https://fcm.googleapis.com/x", "https://corral.example/contact", 1) == 0);
    ok(relay_vapid_authorization(&out, &v, "https://fcm.googleapis.com/x", "ops@example.com", 1) == CR_ECONFIG);
    ok(relay_vapid_authorization(&out, &v, "https://fcm.googleapis.com/x", "http://corral.example", 1) == CR_ECONFIG);
    ok(relay_vapid_authorization(&out, &v, "ftp://fcm.googleapis.com/x", "mailto:a@b.c", 1) == CR_EBODY);
    ok(strlen(out.base) == out.len); /* failures left the first header as it was */
    relay_vapid_free(&v);
    cr_buf_free(&out);
}

int main(void)
{
    if (cr_test_make_temp_dir(tmp, sizeof(tmp), "webpush", 200) != 0 || cr_test_slot_add(tmp, 0) < 0)
        return 1;
    okf(cr_test_find_program(python, sizeof(python), "python3") == 0, "python3 not found");
    snprintf(decryptor, sizeof(decryptor), "%s/tests/fakes/webpush_decrypt.py", cr_test_source_dir());
    snprintf(verifier, sizeof(verifier), "%s/tests/fakes/jwt_verify.py", cr_test_source_dir());

    subtest("RFC 8291 example", test_rfc8291_example);
    subtest("round trips and limits", test_round_trips);
    subtest("bad subscription keys", test_bad_ua_keys);
    subtest("VAPID key file", test_vapid_key);
    subtest("endpoint origins", test_origin);
    subtest("VAPID Authorization", test_vapid_authorization);
    return done_testing();
}
