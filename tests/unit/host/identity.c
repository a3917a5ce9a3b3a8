/* identity.c — unit tests of server/src/identity.c: identity keys wrapped with the team key, sealed secrets, sealed
 * inbox messages, and the identity/inbox store on disk as a user (cat, ls -l) would see it. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "identity.h"
#include "corral/codec.h"
#include "corral/error.h"
#include "corral/json.h"
#include "corral/log.h"
#include "corral/mp.h"
#include "harness.h"
#include "mp_text.h"
#include "proc.h"
#include <dirent.h>
#include <fcntl.h>
#include <limits.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char tmp[PATH_MAX];
static int dir_count;

#define TEAM "team-7f3a"
static const char *SECRET = "ghp_Zx9vQ2LmN8pRtY4wK7sJ3hF6dB1cA0eU";

static void new_dir(char *out, size_t outlen, const char *what)
{
    if (snprintf(out, outlen, "%s/%s%d", tmp, what, ++dir_count) >= (int)outlen)
        abort();
    mkdir(out, 0700);
}

static char *slurp(size_t *len, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static char *slurp(size_t *len, const char *fmt, ...)
{
    char path[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    return cr_test_read_file(path, len);
}

static int mode_of(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int mode_of(const char *fmt, ...)
{
    char path[PATH_MAX];
    struct stat st;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    return stat(path, &st) == 0 ? (int)(st.st_mode & 07777) : -1;
}

/* The team key in sodium memory, random. */
static unsigned char *team_key(void)
{
    unsigned char *k = sodium_malloc(HOST_IDN_KEY_LEN);
    randombytes_buf(k, HOST_IDN_KEY_LEN);
    return k;
}

static int has_bytes(const char *hay, size_t haylen, const void *needle, size_t n)
{
    return n > 0 && haylen >= n && memmem(hay, haylen, needle, n) != NULL;
}

/* Counts the files under dir (recursively) whose bytes hold needle. */
static int files_holding(const char *dir, const void *needle, size_t n)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int count = 0;
    if (d == NULL)
        return 0;
    while ((e = readdir(d)) != NULL) {
        char path[PATH_MAX];
        struct stat st;
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if (lstat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            count += files_holding(path, needle, n);
        } else if (S_ISREG(st.st_mode)) {
            size_t len = 0;
            char *buf = cr_test_read_file(path, &len);
            count += buf != NULL && has_bytes(buf, len, needle, n);
            free(buf);
        }
    }
    closedir(d);
    return count;
}

/* A msgpack value from JSON text (tests write maps as JSON; {"$bin": base64} is a bin). */
static void mp_from_json(cr_buf_t *out, const char *json)
{
    cr_buf_reset(out);
    if (cr_json_to_msgpack(out, json, strlen(json), NULL) != 0)
        note("bad test JSON: %s", cr_error_last()->message);
}

/* ---- names ------------------------------------------------------------------------------------------------------ */

static void test_names(void)
{
    char n63[64], n64[65], k128[129], k129[130];
    memset(n63, 'a', 63), n63[63] = '\0';
    memset(n64, 'b', 64), n64[64] = '\0';
    memset(k128, 'K', 128), k128[128] = '\0';
    memset(k129, 'K', 129), k129[129] = '\0';

    ok(host_identity_name_check("signup-bot") == 0);
    ok(host_identity_name_check("a") == 0);
    ok(host_identity_name_check("0day") == 0);
    ok(host_identity_name_check(n63) == 0);

    ok(host_identity_name_check("") == CR_EBADNAME);
    ok(strstr(cr_error_last()->message, "empty") != NULL);
    ok_str(cr_error_last()->field, "name");
    ok(host_identity_name_check("Signup") == CR_EBADNAME);
    okf(strstr(cr_error_last()->message, "\"Signup\"") != NULL && strstr(cr_error_last()->message, "lower-case") != NULL,
        "%s", cr_error_last()->message);
    ok(host_identity_name_check("-bot") == CR_EBADNAME);
    ok(host_identity_name_check("bot-") == CR_EBADNAME);
    okf(strstr(cr_error_last()->message, "must not end with '-'") != NULL, "%s", cr_error_last()->message);
    ok(host_identity_name_check("a-1") == 0);
    ok(host_identity_name_check("bot_1") == CR_EBADNAME);
    okf(strstr(cr_error_last()->message, "position 4") != NULL && strstr(cr_error_last()->message, "a-z, 0-9 and '-'"),
        "%s", cr_error_last()->message);
    ok(host_identity_name_check("a/../b") == CR_EBADNAME);
    ok(host_identity_name_check("..") == CR_EBADNAME);
    ok(host_identity_name_check("bot.x") == CR_EBADNAME);
    ok(host_identity_name_check("caf\xc3\xa9") == CR_EBADNAME);
    okf(strstr(cr_error_last()->message, "caf\\xc3\\xa9") != NULL, "%s", cr_error_last()->message);
    ok(host_identity_name_check(n64) == CR_EBADNAME);
    okf(strstr(cr_error_last()->message, "64 characters") != NULL && strstr(cr_error_last()->message, "at most 63"),
        "%s", cr_error_last()->message);

    ok(host_secret_key_check("GITHUB_TOKEN") == 0);
    ok(host_secret_key_check("_x") == 0);
    ok(host_secret_key_check("stripe.api-key_2") == 0);
    ok(host_secret_key_check(k128) == 0);
    ok(host_secret_key_check("") == CR_EBADNAME);
    ok_str(cr_error_last()->field, "key");
    ok(host_secret_key_check("1PASSWORD") == CR_EBADNAME);
    okf(strstr(cr_error_last()->message, "\"1PASSWORD\"") != NULL && strstr(cr_error_last()->message, "letter or '_'"),
        "%s", cr_error_last()->message);
    ok(host_secret_key_check("A B") == CR_EBADNAME);
    ok(host_secret_key_check("X=Y") == CR_EBADNAME);
    ok(host_secret_key_check("a/b") == CR_EBADNAME);
    ok(host_secret_key_check(k129) == CR_EBADNAME);

    char id[HOST_IDN_ID_MAX + 1], id2[HOST_IDN_ID_MAX + 1];
    host_identity_id_new(id);
    host_identity_id_new(id2);
    ok(strncmp(id, "idn_", 4) == 0 && strlen(id) == 30 && host_identity_id_check(id) == 0 && strcmp(id, id2) < 0);
    ok(host_identity_id_check("idn/1") == CR_EBADNAME);
}

/* ---- keys ------------------------------------------------------------------------------------------------------- */

static void test_keys(void)
{
    unsigned char *k = team_key(), *k2 = team_key(), *sk = NULL, *vk = NULL, *vk2 = NULL, *x = NULL;
    unsigned char pk_of_sk[HOST_IDN_KEY_LEN];
    host_identity_keys_t keys, other;
    cr_buf_t dec;
    cr_buf_init(&dec, 256);

    ok(host_identity_keys_new(&keys, k, TEAM, "idn_alpha") == 0);
    ok(host_identity_keys_new(&other, k, TEAM, "idn_alpha") == 0);
    ok(memcmp(keys.pk, other.pk, HOST_IDN_KEY_LEN) != 0); /* a new key pair each time */
    ok(keys.sk_wrapped[0] == CR_SEAL_VERSION && keys.vk_wrapped[0] == CR_SEAL_VERSION);
    ok(memcmp(keys.sk_wrapped + 1, keys.vk_wrapped + 1, CR_SEAL_NONCEBYTES) != 0); /* random nonces */
    /* the base64url forms are what the relay gets */
    ok(strlen(keys.pk_b64) == 43 && strlen(keys.sk_wrapped_b64) == 98 && strlen(keys.vk_wrapped_b64) == 98);
    ok(cr_base64url_decode(&dec, keys.sk_wrapped_b64, strlen(keys.sk_wrapped_b64)) == 0);
    ok_bytes(dec.base, dec.len, keys.sk_wrapped, HOST_IDN_WRAPPED_LEN);

    /* round trip: the unwrapped secret half is the one of pk */
    ok(host_identity_unwrap_sk(&sk, k, TEAM, "idn_alpha", keys.sk_wrapped, sizeof(keys.sk_wrapped)) == 0 && sk != NULL);
    if (sk != NULL) {
        crypto_scalarmult_base(pk_of_sk, sk);
        ok_bytes(pk_of_sk, HOST_IDN_KEY_LEN, keys.pk, HOST_IDN_KEY_LEN);
    }
    ok(host_identity_unwrap_vk(&vk, k, TEAM, "idn_alpha", keys.vk_wrapped, sizeof(keys.vk_wrapped)) == 0 && vk != NULL);
    ok(host_identity_unwrap_vk(&vk2, k, TEAM, "idn_alpha", keys.vk_wrapped, sizeof(keys.vk_wrapped)) == 0 && vk2 != NULL);
    if (vk != NULL && vk2 != NULL && sk != NULL) {
        ok(memcmp(vk, vk2, HOST_IDN_KEY_LEN) == 0);
        ok(memcmp(vk, sk, HOST_IDN_KEY_LEN) != 0);
    }

    /* the AD is the documented one: another host (or the phone) can open the box from the spec alone */
    {
        unsigned char ad[64], pt[HOST_IDN_KEY_LEN];
        unsigned long long plen = 0;
        size_t adlen = (size_t)snprintf((char *)ad, sizeof(ad), "corral-vk-v1%c%s%c%s", 0, TEAM, 0, "idn_alpha");
        ok(crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &plen, NULL, keys.vk_wrapped + 25, HOST_IDN_WRAPPED_LEN - 25, ad,
                                                      adlen, keys.vk_wrapped + 1, k) == 0 &&
           plen == HOST_IDN_KEY_LEN && vk != NULL && memcmp(pt, vk, HOST_IDN_KEY_LEN) == 0);
        adlen = (size_t)snprintf((char *)ad, sizeof(ad), "corral-idk-v1%c%s%c%s", 0, TEAM, 0, "idn_alpha");
        ok(crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &plen, NULL, keys.sk_wrapped + 25, HOST_IDN_WRAPPED_LEN - 25, ad,
                                                      adlen, keys.sk_wrapped + 1, k) == 0 &&
           sk != NULL && memcmp(pt, sk, HOST_IDN_KEY_LEN) == 0);
        sodium_memzero(pt, sizeof(pt));
    }

    /* moved or changed boxes do not open, and *out stays NULL */
    ok(host_identity_unwrap_sk(&x, k, TEAM, "idn_beta", keys.sk_wrapped, HOST_IDN_WRAPPED_LEN) == CR_ESEAL && x == NULL);
    okf(strstr(cr_error_last()->message, "does not open") != NULL, "%s", cr_error_last()->message);
    ok(host_identity_unwrap_sk(&x, k, "team-other", "idn_alpha", keys.sk_wrapped, HOST_IDN_WRAPPED_LEN) == CR_ESEAL);
    ok(host_identity_unwrap_sk(&x, k2, TEAM, "idn_alpha", keys.sk_wrapped, HOST_IDN_WRAPPED_LEN) == CR_ESEAL);
    ok(host_identity_unwrap_vk(&x, k, TEAM, "idn_alpha", keys.sk_wrapped, HOST_IDN_WRAPPED_LEN) == CR_ESEAL); /* kind */
    ok(host_identity_unwrap_sk(&x, k, TEAM, "idn_alpha", keys.vk_wrapped, HOST_IDN_WRAPPED_LEN) == CR_ESEAL);
    ok(host_identity_unwrap_sk(&x, k, TEAM, "idn_alpha", keys.sk_wrapped, HOST_IDN_WRAPPED_LEN - 1) == CR_ESEAL);
    ok(host_identity_unwrap_sk(&x, k, TEAM, "idn_alpha", other.sk_wrapped, HOST_IDN_WRAPPED_LEN) == 0 && x != NULL);
    host_secure_free(x);
    x = NULL;
    int opened = 0;
    for (size_t i = 0; i < HOST_IDN_WRAPPED_LEN; i++) {
        unsigned char t[HOST_IDN_WRAPPED_LEN];
        memcpy(t, keys.vk_wrapped, sizeof(t));
        t[i] ^= 0x01;
        opened += host_identity_unwrap_vk(&x, k, TEAM, "idn_alpha", t, sizeof(t)) != CR_ESEAL || x != NULL;
    }
    okf(opened == 0, "%d changed boxes opened", opened);
    ok(host_identity_keys_new(&other, k, "", "idn_alpha") == CR_EBADNAME);
    ok(host_identity_keys_new(&other, k, TEAM, "idn alpha") == CR_EBADNAME);

    host_secure_free(sk);
    host_secure_free(vk);
    host_secure_free(vk2);
    host_secure_free(k);
    host_secure_free(k2);
    cr_buf_free(&dec);
}

/* ---- secrets ---------------------------------------------------------------------------------------------------- */

static void test_secrets(void)
{
    unsigned char *vk = team_key(), *vk2 = team_key();
    cr_buf_t blob, blob2;
    char *v = NULL;
    size_t vlen = 99;
    size_t slen = strlen(SECRET);
    cr_buf_init(&blob, 1 << 20);
    cr_buf_init(&blob2, 1 << 20);

    ok(host_secret_seal(&blob, vk, TEAM, "idn_alpha", "GITHUB_TOKEN", 3, SECRET, slen) == 0);
    ok(blob.len == 1 + 24 + slen + 16 && (unsigned char)blob.base[0] == 0x01);
    ok(!has_bytes(blob.base, blob.len, SECRET, slen));
    ok(host_secret_seal(&blob2, vk, TEAM, "idn_alpha", "GITHUB_TOKEN", 3, SECRET, slen) == 0);
    ok(blob2.len == blob.len && memcmp(blob.base, blob2.base, blob.len) != 0); /* a fresh nonce each time */

    ok(host_secret_open(&v, &vlen, vk, TEAM, "idn_alpha", "GITHUB_TOKEN", 3, blob.base, blob.len) == 0 && v != NULL);
    ok(v != NULL && vlen == slen && memcmp(v, SECRET, slen) == 0 && v[slen] == '\0');
    host_secure_free(v);
    v = NULL;

    /* the AD: team 0 id 0 key 0 version (8 bytes big-endian) */
    {
        unsigned char ad[128], pt[128];
        unsigned long long plen = 0;
        size_t n = (size_t)snprintf((char *)ad, sizeof(ad), "%s%c%s%c%s%c", TEAM, 0, "idn_alpha", 0, "GITHUB_TOKEN", 0);
        memcpy(ad + n, "\0\0\0\0\0\0\0\x03", 8);
        ok(crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &plen, NULL, (unsigned char *)blob.base + 25, blob.len - 25, ad,
                                                      n + 8, (unsigned char *)blob.base + 1, vk) == 0 &&
           plen == slen && memcmp(pt, SECRET, slen) == 0);
        sodium_memzero(pt, sizeof(pt));
    }

    /* moved to another key, identity, team, version, vault key: does not open, the message never holds the value */
    ok(host_secret_open(&v, &vlen, vk, TEAM, "idn_alpha", "NPM_TOKEN", 3, blob.base, blob.len) == CR_ESEAL && v == NULL &&
       vlen == 0);
    ok(strstr(cr_error_last()->message, SECRET) == NULL && strstr(cr_error_last()->message, "does not open") != NULL);
    ok(host_secret_open(&v, &vlen, vk, TEAM, "idn_beta", "GITHUB_TOKEN", 3, blob.base, blob.len) == CR_ESEAL);
    ok(host_secret_open(&v, &vlen, vk, "team-other", "idn_alpha", "GITHUB_TOKEN", 3, blob.base, blob.len) == CR_ESEAL);
    ok(host_secret_open(&v, &vlen, vk, TEAM, "idn_alpha", "GITHUB_TOKEN", 2, blob.base, blob.len) == CR_ESEAL);
    ok(host_secret_open(&v, &vlen, vk, TEAM, "idn_alpha", "GITHUB_TOKEN", 3ull | (1ull << 40), blob.base, blob.len) ==
       CR_ESEAL);
    ok(host_secret_open(&v, &vlen, vk2, TEAM, "idn_alpha", "GITHUB_TOKEN", 3, blob.base, blob.len) == CR_ESEAL);
    /* key names that only differ where a plain concatenation would blur them */
    ok(host_secret_open(&v, &vlen, vk, TEAM "i", "dn_alpha", "GITHUB_TOKEN", 3, blob.base, blob.len) == CR_ESEAL);
    int opened = 0;
    for (size_t i = 0; i < blob.len; i++) {
        blob.base[i] ^= 0x20;
        opened += host_secret_open(&v, &vlen, vk, TEAM, "idn_alpha", "GITHUB_TOKEN", 3, blob.base, blob.len) != CR_ESEAL;
        blob.base[i] ^= 0x20;
    }
    okf(opened == 0, "%d changed blobs opened", opened);
    ok(host_secret_open(&v, &vlen, vk, TEAM, "idn_alpha", "GITHUB_TOKEN", 3, blob.base, 40) == CR_ESEAL);
    ok(v == NULL);

    /* base64url for transport round-trips */
    {
        char *b64 = malloc(cr_base64url_encoded_len(blob.len));
        cr_buf_t back;
        cr_buf_init(&back, 1 << 20);
        cr_base64url_encode(b64, blob.base, blob.len);
        ok(cr_base64url_decode(&back, b64, strlen(b64)) == 0);
        ok(host_secret_open(&v, &vlen, vk, TEAM, "idn_alpha", "GITHUB_TOKEN", 3, back.base, back.len) == 0 && v != NULL &&
           vlen == slen && memcmp(v, SECRET, slen) == 0);
        host_secure_free(v);
        v = NULL;
        cr_buf_free(&back);
        free(b64);
    }

    /* the empty value, a value at the limit and one over it, bad names */
    cr_buf_reset(&blob);
    ok(host_secret_seal(&blob, vk, TEAM, "idn_alpha", "EMPTY", 1, "", 0) == 0 && blob.len == CR_SEAL_OVERHEAD);
    ok(host_secret_open(&v, &vlen, vk, TEAM, "idn_alpha", "EMPTY", 1, blob.base, blob.len) == 0 && v != NULL && vlen == 0 &&
       v[0] == '\0');
    host_secure_free(v);
    v = NULL;
    char *big = calloc(1, HOST_SECRET_VALUE_MAX + 1);
    cr_buf_reset(&blob);
    ok(host_secret_seal(&blob, vk, TEAM, "idn_alpha", "BIG", 1, big, HOST_SECRET_VALUE_MAX) == 0);
    ok(cr_base64url_encoded_len(blob.len) - 1 <= 65536); /* what the relay takes */
    ok(host_secret_open(&v, &vlen, vk, TEAM, "idn_alpha", "BIG", 1, blob.base, blob.len) == 0 &&
       vlen == HOST_SECRET_VALUE_MAX);
    host_secure_free(v);
    v = NULL;
    size_t before = blob.len;
    ok(host_secret_seal(&blob, vk, TEAM, "idn_alpha", "BIG", 1, big, HOST_SECRET_VALUE_MAX + 1) == CR_ETOOLARGE &&
       blob.len == before);
    free(big);
    ok(host_secret_seal(&blob, vk, TEAM, "idn_alpha", "9LIVES", 1, "x", 1) == CR_EBADNAME && blob.len == before);
    ok_str(cr_error_last()->field, "key");
    ok(host_secret_open(&v, &vlen, vk, TEAM, "idn_alpha", "bad key", 1, blob.base, blob.len) == CR_EBADNAME);

    host_secure_free(vk);
    host_secure_free(vk2);
    cr_buf_free(&blob);
    cr_buf_free(&blob2);
}

/* ---- inbox messages --------------------------------------------------------------------------------------------- */

static const char *MSG_JSON =
    "{\"id\":\"msg_01JD0000000000000000000001\",\"kind\":\"mail\",\"from\":\"Ana <ana@x.test>\","
    "\"to\":\"signup-bot@mail.example\",\"subject\":\"Your code is 483920\",\"date\":1795000000000,"
    "\"received\":1795000001000,\"text\":\"Use 483920 to sign in. Not 2024.\",\"links\":[\"https://x.test/verify?t=1\"],"
    "\"otp\":\"483920\",\"otp_candidates\":[\"483920\",\"2024\"],\"flags\":[\"html_only\"],"
    "\"raw\":{\"$bin\":\"RnJvbTogQW5hIDxhbmFAeC50ZXN0PgoKVXNlIDQ4MzkyMA==\"},\"future\":{\"x\":[1,2]}}";

static void test_inbox_open(void)
{
    unsigned char *k = team_key(), *sk = NULL, *sk2 = NULL;
    host_identity_keys_t keys, other;
    cr_buf_t mp, sealed, pt;
    host_inbox_msg_t m = {0};
    cr_buf_init(&mp, 1 << 20);
    cr_buf_init(&sealed, 1 << 20);
    cr_buf_init(&pt, 1 << 20);
    mp_from_json(&mp, MSG_JSON);

    ok(host_identity_keys_new(&keys, k, TEAM, "idn_alpha") == 0 && host_identity_keys_new(&other, k, TEAM, "idn_beta") == 0);
    ok(host_identity_unwrap_sk(&sk, k, TEAM, "idn_alpha", keys.sk_wrapped, HOST_IDN_WRAPPED_LEN) == 0);
    ok(host_identity_unwrap_sk(&sk2, k, TEAM, "idn_beta", other.sk_wrapped, HOST_IDN_WRAPPED_LEN) == 0);
    /* what the relay does on arrival */
    cr_buf_reserve(&sealed, mp.len + crypto_box_SEALBYTES);
    crypto_box_seal((unsigned char *)sealed.base, (unsigned char *)mp.base, mp.len, keys.pk);
    sealed.len = mp.len + crypto_box_SEALBYTES;

    ok(host_inbox_open(&pt, sealed.base, sealed.len, keys.pk, sk) == 0);
    ok_bytes(pt.base, pt.len, mp.base, mp.len);
    ok(host_inbox_msg_from_mp(&m, pt.base, pt.len) == 0);
    ok_str(m.id, "msg_01JD0000000000000000000001");
    ok_str(m.kind, "mail");
    ok_str(m.from, "Ana <ana@x.test>");
    ok_str(m.to, "signup-bot@mail.example");
    ok_str(m.subject, "Your code is 483920");
    ok(m.date == 1795000000000ull && m.received == 1795000001000ull);
    ok(m.nlinks == 1 && strcmp(m.links[0], "https://x.test/verify?t=1") == 0);
    ok(m.otp != NULL && strcmp(m.otp, "483920") == 0);
    ok(m.notp_candidates == 2 && strcmp(m.otp_candidates[1], "2024") == 0);
    ok(m.nflags == 1 && strcmp(m.flags[0], "html_only") == 0);
    ok(m.raw != NULL && m.raw_len == 34 && memcmp(m.raw, "From: Ana <ana@x.test>\n\nUse 483920", 34) == 0);
    host_inbox_msg_clear(&m);

    /* not ours, changed, too short: nothing appended */
    size_t before = pt.len;
    ok(host_inbox_open(&pt, sealed.base, sealed.len, other.pk, sk2) == CR_ESEAL && pt.len == before);
    okf(strstr(cr_error_last()->message, "not sealed to this identity") != NULL, "%s", cr_error_last()->message);
    ok(host_inbox_open(&pt, sealed.base, sealed.len, keys.pk, sk2) == CR_ESEAL);
    sealed.base[sealed.len - 1] ^= 1;
    ok(host_inbox_open(&pt, sealed.base, sealed.len, keys.pk, sk) == CR_ESEAL && pt.len == before);
    ok(host_inbox_open(&pt, sealed.base, 20, keys.pk, sk) == CR_ESEAL);

    host_secure_free(sk);
    host_secure_free(sk2);
    host_secure_free(k);
    cr_buf_free(&mp);
    cr_buf_free(&sealed);
    cr_buf_free(&pt);
}

static int decode_json(const char *json)
{
    cr_buf_t mp;
    host_inbox_msg_t m = {0};
    int rc;
    cr_buf_init(&mp, 1 << 20);
    mp_from_json(&mp, json);
    rc = host_inbox_msg_from_mp(&m, mp.base, mp.len);
    host_inbox_msg_clear(&m);
    cr_buf_free(&mp);
    return rc;
}

static void test_msg_decode(void)
{
    cr_buf_t mp, json;
    host_inbox_msg_t m = {0};
    cr_buf_init(&mp, 1 << 20);
    cr_buf_init(&json, 1 << 20);

    /* the least a relay may send: an SMS without subject, date, otp or raw */
    mp_from_json(&mp, "{\"id\":\"msg_2\",\"kind\":\"sms\",\"received\":5,\"from\":\"+15550100\",\"text\":\"Code 1234\","
                      "\"otp\":null,\"date\":-1}");
    ok(host_inbox_msg_from_mp(&m, mp.base, mp.len) == 0);
    ok(m.otp == NULL && m.date == 0 && m.raw == NULL && m.nlinks == 0 && m.links == NULL);
    ok_str(m.subject, "");
    ok_str(m.to, "");
    ok(host_inbox_msg_to_json(&json, &m) == 0);
    cr_buf_append(&json, "", 1);
    ok_str(json.base, "{\"id\":\"msg_2\",\"kind\":\"sms\",\"from\":\"+15550100\",\"to\":\"\",\"subject\":\"\",\"date\":0,"
                      "\"received\":5,\"text\":\"Code 1234\",\"links\":[],\"otp\":null,\"otp_candidates\":[],\"flags\":[]}");
    host_inbox_msg_clear(&m);
    ok(m.from == NULL && m.id[0] == '\0');

    ok(decode_json("{\"kind\":\"mail\",\"received\":1}") == CR_EBODY);
    ok_str(cr_error_last()->field, "id");
    ok(decode_json("{\"id\":\"../x\",\"kind\":\"mail\",\"received\":1}") == CR_EBODY);
    ok_str(cr_error_last()->field, "id");
    ok(decode_json("{\"id\":\".hidden\",\"kind\":\"mail\",\"received\":1}") == CR_EBODY);
    ok(decode_json("{\"id\":\"m1\",\"kind\":\"fax\",\"received\":1}") == CR_EBODY);
    ok_str(cr_error_last()->field, "kind");
    ok(decode_json("{\"id\":\"m1\",\"kind\":\"mail\"}") == CR_EBODY);
    ok_str(cr_error_last()->field, "received");
    ok(decode_json("{\"id\":\"m1\",\"kind\":\"mail\",\"received\":1,\"links\":\"https://x\"}") == CR_EBODY);
    ok_str(cr_error_last()->field, "links");
    ok(decode_json("{\"id\":\"m1\",\"kind\":\"mail\",\"received\":1,\"flags\":[1]}") == CR_EBODY);
    ok_str(cr_error_last()->field, "flags");
    ok(decode_json("{\"id\":\"m1\",\"kind\":\"mail\",\"received\":1,\"subject\":\"a\\u0000b\"}") == CR_EBODY);
    okf(strstr(cr_error_last()->message, "NUL") != NULL, "%s", cr_error_last()->message);
    ok(decode_json("{\"id\":\"m1\",\"kind\":\"mail\",\"received\":1,\"raw\":7}") == CR_EBODY);
    ok_str(cr_error_last()->field, "raw");
    ok(decode_json("[1,2]") == CR_EBODY);
    {
        cr_buf_t big;
        cr_buf_init(&big, 1 << 20);
        cr_buf_appendf(&big, "{\"id\":\"m1\",\"kind\":\"mail\",\"received\":1,\"links\":[");
        for (int i = 0; i <= HOST_INBOX_LIST_MAX; i++)
            cr_buf_appendf(&big, "%s\"l\"", i ? "," : "");
        cr_buf_appendf(&big, "]}");
        cr_buf_append(&big, "", 1);
        ok(decode_json(big.base) == CR_EBODY);
        okf(strstr(cr_error_last()->message, "at most 256") != NULL, "%s", cr_error_last()->message);
        cr_buf_free(&big);
    }
    /* raw is the message's bytes as they came: a str the relay fills with 8-bit mail is taken as it is; any other
     * string must be UTF-8 */
    {
        static const char latin1[] = "Subject: caf\xe9\r\n\r\n\xe9t\xe9";
        cr_buf_reset(&mp);
        ok(cr_mpw_map(&mp, 5) == 0 && CR_MPW_LIT(&mp, "id") == 0 && CR_MPW_LIT(&mp, "msg_8bit") == 0 &&
           CR_MPW_LIT(&mp, "kind") == 0 && CR_MPW_LIT(&mp, "mail") == 0 && CR_MPW_LIT(&mp, "received") == 0 &&
           cr_mpw_uint(&mp, 9) == 0 && CR_MPW_LIT(&mp, "raw") == 0 && cr_mpw_str(&mp, latin1, sizeof(latin1) - 1) == 0 &&
           CR_MPW_LIT(&mp, "subject") == 0 && CR_MPW_LIT(&mp, "caf\xc3\xa9") == 0);
        ok(host_inbox_msg_from_mp(&m, mp.base, mp.len) == 0);
        ok(m.raw != NULL && m.raw_len == sizeof(latin1) - 1 && memcmp(m.raw, latin1, m.raw_len) == 0);
        ok_str(m.subject, "caf\xc3\xa9");
        host_inbox_msg_clear(&m);
        cr_buf_reset(&mp);
        ok(cr_mpw_map(&mp, 4) == 0 && CR_MPW_LIT(&mp, "id") == 0 && CR_MPW_LIT(&mp, "msg_8bit") == 0 &&
           CR_MPW_LIT(&mp, "kind") == 0 && CR_MPW_LIT(&mp, "mail") == 0 && CR_MPW_LIT(&mp, "received") == 0 &&
           cr_mpw_uint(&mp, 9) == 0 && CR_MPW_LIT(&mp, "subject") == 0 && CR_MPW_LIT(&mp, "caf\xe9") == 0);
        ok(host_inbox_msg_from_mp(&m, mp.base, mp.len) == CR_EENCODING);
        ok_str(cr_error_last()->field, "subject");
        host_inbox_msg_clear(&m);
    }

    /* framing: trailing bytes, truncated */
    mp_from_json(&mp, "{\"id\":\"m1\",\"kind\":\"mail\",\"received\":1}");
    cr_buf_append(&mp, "\xc0", 1);
    ok(host_inbox_msg_from_mp(&m, mp.base, mp.len) == CR_ETRAILING);
    host_inbox_msg_clear(&m);
    ok(host_inbox_msg_from_mp(&m, mp.base, mp.len - 3) == CR_ETRUNCATED);
    host_inbox_msg_clear(&m);

    cr_buf_free(&mp);
    cr_buf_free(&json);
}

/* ---- the store -------------------------------------------------------------------------------------------------- */

static void make_identity(host_identity_t *idn, const char *name, uint64_t created, const host_identity_keys_t *keys)
{
    memset(idn, 0, sizeof(*idn));
    host_identity_id_new(idn->id);
    snprintf(idn->name, sizeof(idn->name), "%s", name);
    snprintf(idn->email, sizeof(idn->email), "%s@mail.example", name);
    idn->created = created;
    if (keys != NULL) {
        memcpy(idn->pk, keys->pk, sizeof(idn->pk));
        memcpy(idn->sk_wrapped, keys->sk_wrapped, sizeof(idn->sk_wrapped));
        memcpy(idn->vk_wrapped, keys->vk_wrapped, sizeof(idn->vk_wrapped));
        idn->has_wrapped = 1;
    } else {
        randombytes_buf(idn->pk, sizeof(idn->pk));
    }
}

static void test_identity_store(void)
{
    char root[PATH_MAX];
    host_identity_t a, b, c, got;
    host_identity_t *list = NULL;
    size_t n = 0;
    new_dir(root, sizeof(root), "home");
    strcat(root, "/identities"); /* made on first save */

    ok(host_identity_list(&list, &n, root) == 0 && n == 0 && list == NULL);
    make_identity(&a, "signup-bot", 3000, NULL);
    snprintf(a.phone, sizeof(a.phone), "+15550100");
    make_identity(&b, "billing", 1000, NULL);
    make_identity(&c, "zeta", 2000, NULL);
    ok(host_identity_save(root, &a, 1) == 0);
    ok(host_identity_save(root, &b, 1) == 0);
    ok(host_identity_save(root, &c, 1) == 0);
    ok(mode_of("%s", root) == 0700 && mode_of("%s/signup-bot", root) == 0700);
    ok(mode_of("%s/signup-bot/identity.json", root) == 0600);

    /* what `cat identity.json` shows */
    char *json = slurp(NULL, "%s/signup-bot/identity.json", root);
    char pk64[HOST_IDN_PK_B64_MAX], want[512];
    cr_base64url_encode(pk64, a.pk, sizeof(a.pk));
    snprintf(want, sizeof(want),
             "{\"id\":\"%s\",\"name\":\"signup-bot\",\"email\":\"signup-bot@mail.example\",\"phone\":\"+15550100\","
             "\"pk\":\"%s\",\"created\":3000}\n",
             a.id, pk64);
    ok_str(json, want);
    free(json);
    json = slurp(NULL, "%s/billing/identity.json", root);
    ok(json != NULL && strstr(json, "\"phone\":null") != NULL);
    free(json);

    ok(host_identity_load(&got, root, "signup-bot") == 0);
    ok(strcmp(got.id, a.id) == 0 && strcmp(got.name, a.name) == 0 && strcmp(got.email, a.email) == 0 &&
       strcmp(got.phone, a.phone) == 0 && memcmp(got.pk, a.pk, sizeof(a.pk)) == 0 && got.created == 3000 &&
       got.has_wrapped == 0);
    ok(host_identity_save(root, &a, 1) == CR_EEXISTS);
    okf(strstr(cr_error_last()->message, "signup-bot") != NULL, "%s", cr_error_last()->message);
    snprintf(a.phone, sizeof(a.phone), "+15550199");
    ok(host_identity_save(root, &a, 0) == 0); /* an update */
    ok(host_identity_load(&got, root, "signup-bot") == 0 && strcmp(got.phone, "+15550199") == 0);

    ok(host_identity_find(&got, root, "billing") == 0 && strcmp(got.id, b.id) == 0);
    ok(host_identity_find(&got, root, c.id) == 0 && strcmp(got.name, "zeta") == 0);
    ok(host_identity_find(&got, root, "nobody") == CR_ENOTFOUND);
    ok(host_identity_find(&got, root, "idn_NOPE") == CR_ENOTFOUND);
    okf(strstr(cr_error_last()->message, "idn_NOPE") != NULL, "%s", cr_error_last()->message);
    ok(host_identity_load(&got, root, "nobody") == CR_ENOTFOUND);
    ok(host_identity_load(&got, root, "Nobody") == CR_EBADNAME);

    /* bad names never touch the disk */
    host_identity_t bad;
    make_identity(&bad, "x", 1, NULL);
    snprintf(bad.name, sizeof(bad.name), "../escape");
    ok(host_identity_save(root, &bad, 1) == CR_EBADNAME);
    ok(mode_of("%s/../escape", root) == -1);

    /* list: by created; a broken identity.json is skipped, and load says which file and field */
    ok(host_identity_list(&list, &n, root) == 0 && n == 3);
    if (n == 3)
        ok(strcmp(list[0].name, "billing") == 0 && strcmp(list[1].name, "zeta") == 0 && strcmp(list[2].name, "signup-bot") == 0);
    free(list);
    {
        char dir[PATH_MAX + 64];
        snprintf(dir, sizeof(dir), "%s/zeta/identity.json", root);
        FILE *f = fopen(dir, "w");
        fputs("{\"id\":\"idn_z\",\"name\":\"zeta\",\"pk\":\"short\",\"created\":1}", f);
        fclose(f);
        ok(host_identity_load(&got, root, "zeta") == CR_EJSON);
        okf(strstr(cr_error_last()->message, "zeta/identity.json") != NULL && strcmp(cr_error_last()->field, "pk") == 0,
            "%s (%s)", cr_error_last()->message, cr_error_last()->field);
        snprintf(dir, sizeof(dir), "%s/not-saved-yet", root);
        mkdir(dir, 0700); /* a directory without identity.json (a create that failed) */
    }
    ok(host_identity_list(&list, &n, root) == 0 && n == 2);
    free(list);
}

static void make_msg(host_inbox_msg_t *m, const char *id, uint64_t received, const char *from, const char *subject,
                     const char *otp)
{
    memset(m, 0, sizeof(*m));
    snprintf(m->id, sizeof(m->id), "%s", id);
    snprintf(m->kind, sizeof(m->kind), "mail");
    m->from = strdup(from);
    m->to = strdup("signup-bot@mail.example");
    m->subject = strdup(subject);
    m->text = strdup("hello");
    m->received = received;
    m->date = received - 500;
    if (otp != NULL) {
        m->otp = strdup(otp);
        m->otp_candidates = calloc(1, sizeof(char *));
        m->otp_candidates[0] = strdup(otp);
        m->notp_candidates = 1;
    }
    char raw[256];
    int n = snprintf(raw, sizeof(raw), "From: %s\r\nSubject: %s\r\n\r\nhello\r\n", from, subject);
    m->raw = malloc((size_t)n + 1);
    memcpy(m->raw, raw, (size_t)n + 1);
    m->raw_len = (size_t)n;
}

static void test_inbox_store(void)
{
    char root[PATH_MAX], inbox[PATH_MAX + 32];
    host_identity_t idn;
    host_inbox_msg_t m1, m2, m3, m4, got = {0};
    host_inbox_msg_t *list = NULL;
    size_t n = 0;
    new_dir(root, sizeof(root), "idstore");
    make_identity(&idn, "signup-bot", 1, NULL);
    ok(host_identity_save(root, &idn, 1) == 0);
    snprintf(inbox, sizeof(inbox), "%s/signup-bot/inbox", root);

    make_msg(&m1, "msg_c", 3000, "GitHub <noreply@github.com>", "[GitHub] Please verify your device", "483920");
    make_msg(&m2, "msg_a", 1000, "Ana <ana@x.test>", "Lunch?", NULL);
    make_msg(&m3, "msg_b", 2000, "Stripe <support@stripe.com>", "Your Stripe verification code", "771204");
    make_msg(&m4, "msg_d", 3000, "Ana <ana@x.test>", "Re: Lunch?", NULL); /* same time as m1: then by id */

    ok(host_inbox_list(&list, &n, root, "signup-bot", NULL) == 0 && n == 0);
    ok(host_inbox_save(root, "nobody", &m1) == CR_ENOTFOUND);
    ok(host_inbox_save(root, "signup-bot", &m1) == 0);
    ok(host_inbox_save(root, "signup-bot", &m2) == 0);
    ok(host_inbox_save(root, "signup-bot", &m3) == 0);
    ok(host_inbox_save(root, "signup-bot", &m4) == 0);
    ok(mode_of("%s", inbox) == 0700);
    ok(mode_of("%s/msg_c.eml", inbox) == 0600 && mode_of("%s/msg_c.json", inbox) == 0600);

    /* on disk: the raw bytes, and the metadata as JSON */
    size_t len = 0;
    char *eml = slurp(&len, "%s/msg_c.eml", inbox);
    ok(eml != NULL && len == m1.raw_len && memcmp(eml, m1.raw, len) == 0);
    free(eml);
    char *json = slurp(NULL, "%s/msg_c.json", inbox);
    ok_str(json, "{\"id\":\"msg_c\",\"kind\":\"mail\",\"from\":\"GitHub <noreply@github.com>\",\"to\":\"signup-bot@mail.example\","
                 "\"subject\":\"[GitHub] Please verify your device\",\"date\":2500,\"received\":3000,\"text\":\"hello\","
                 "\"links\":[],\"otp\":\"483920\",\"otp_candidates\":[\"483920\"],\"flags\":[]}\n");
    free(json);

    /* idempotent: a second save of the same id writes nothing, even with other contents */
    struct stat st1, st2;
    char path[PATH_MAX + 64];
    snprintf(path, sizeof(path), "%s/msg_c.json", inbox);
    stat(path, &st1);
    free(m1.subject);
    m1.subject = strdup("changed");
    ok(host_inbox_save(root, "signup-bot", &m1) == 1);
    stat(path, &st2);
    ok(st1.st_ino == st2.st_ino);
    json = slurp(NULL, "%s/msg_c.json", inbox);
    ok(json != NULL && strstr(json, "changed") == NULL);
    free(json);

    /* a lone .eml (a crash between the two writes), a temp file and junk are not messages */
    FILE *f;
    snprintf(path, sizeof(path), "%s/msg_e.eml", inbox);
    f = fopen(path, "w");
    fputs("From: x\r\n\r\nhalf", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/.msg_f.json.tmp.abc123", inbox);
    f = fopen(path, "w");
    fputs("{", f);
    fclose(f);
    snprintf(path, sizeof(path), "%s/msg_g.json", inbox);
    f = fopen(path, "w");
    fputs("{\"id\":\"msg_other\",\"kind\":\"mail\",\"received\":1}", f);
    fclose(f);

    ok(host_inbox_list(&list, &n, root, "signup-bot", NULL) == 0 && n == 4);
    if (n == 4) {
        ok(strcmp(list[0].id, "msg_a") == 0 && strcmp(list[1].id, "msg_b") == 0 && strcmp(list[2].id, "msg_c") == 0 &&
           strcmp(list[3].id, "msg_d") == 0);
        ok(list[0].raw == NULL && strcmp(list[1].subject, "Your Stripe verification code") == 0);
        ok(list[2].otp != NULL && strcmp(list[2].otp, "483920") == 0 && list[0].otp == NULL);
        ok(host_inbox_load_raw(&list[2], root, "signup-bot") == 0 && list[2].raw_len == m1.raw_len &&
           memcmp(list[2].raw, m1.raw, m1.raw_len) == 0);
    }
    host_inbox_list_free(list, n);

    /* a lone .eml is completed by the next save */
    host_inbox_msg_t m5;
    make_msg(&m5, "msg_e", 500, "x@x.test", "late", NULL);
    ok(host_inbox_save(root, "signup-bot", &m5) == 0);
    eml = slurp(&len, "%s/msg_e.eml", inbox);
    ok(eml != NULL && len == m5.raw_len && memcmp(eml, m5.raw, len) == 0);
    free(eml);
    ok(host_inbox_list(&list, &n, root, "signup-bot", NULL) == 0 && n == 5 && strcmp(list[0].id, "msg_e") == 0);
    host_inbox_list_free(list, n);

    /* ids that are not file names */
    host_inbox_msg_t bad;
    make_msg(&bad, "../../x", 1, "a", "b", NULL);
    ok(host_inbox_save(root, "signup-bot", &bad) == CR_EBADNAME);
    snprintf(bad.id, sizeof(bad.id), "..");
    ok(host_inbox_save(root, "signup-bot", &bad) == CR_EBADNAME);

    host_inbox_msg_clear(&m1);
    host_inbox_msg_clear(&m2);
    host_inbox_msg_clear(&m3);
    host_inbox_msg_clear(&m4);
    host_inbox_msg_clear(&m5);
    host_inbox_msg_clear(&bad);
    host_inbox_msg_clear(&got);
}

static void test_given(void)
{
    char root[PATH_MAX];
    host_identity_t idn;
    host_inbox_msg_t m, got = {0};
    host_inbox_msg_t *list = NULL;
    size_t n = 0;
    new_dir(root, sizeof(root), "given");
    make_identity(&idn, "signup-bot", 1, NULL);
    ok(host_identity_save(root, &idn, 1) == 0);
    const char *S1 = "01JD7ZSESSION0000000000001", *S2 = "01JD7ZSESSION0000000000002";

    make_msg(&m, "msg_1", 1000, "Ana <ana@x.test>", "Lunch?", NULL);
    host_inbox_save(root, "signup-bot", &m);
    host_inbox_msg_clear(&m);
    make_msg(&m, "msg_2", 2000, "GitHub <noreply@github.com>", "[GitHub] Please verify your device", "483920");
    host_inbox_save(root, "signup-bot", &m);
    host_inbox_msg_clear(&m);
    make_msg(&m, "msg_3", 3000, "Stripe <support@stripe.com>", "Your STRIPE verification code", "771204");
    host_inbox_save(root, "signup-bot", &m);
    host_inbox_msg_clear(&m);

    /* the long poll: oldest not given yet, then the next */
    host_inbox_filter_t f = {.session = S1};
    ok(host_inbox_find(&got, root, "signup-bot", &f) == 0 && strcmp(got.id, "msg_1") == 0);
    host_inbox_msg_clear(&got);
    ok(host_inbox_is_given(root, "signup-bot", S1, "msg_1") == 0);
    ok(host_inbox_mark_given(root, "signup-bot", S1, "msg_1") == 0);
    ok(host_inbox_mark_given(root, "signup-bot", S1, "msg_1") == 0); /* twice: one line */
    ok(host_inbox_is_given(root, "signup-bot", S1, "msg_1") == 1);
    ok(host_inbox_is_given(root, "signup-bot", S2, "msg_1") == 0);
    ok(host_inbox_find(&got, root, "signup-bot", &f) == 0 && strcmp(got.id, "msg_2") == 0);
    host_inbox_msg_clear(&got);
    ok(host_inbox_mark_given(root, "signup-bot", S1, "msg_2") == 0);

    /* what `cat given/<session>` shows; mode 0600 */
    char *txt = slurp(NULL, "%s/signup-bot/given/%s", root, S1);
    ok_str(txt, "msg_1\nmsg_2\n");
    free(txt);
    ok(mode_of("%s/signup-bot/given/%s", root, S1) == 0600 && mode_of("%s/signup-bot/given", root) == 0700);

    /* the marks are on disk, nothing is kept in memory: a listing sees them, per session */
    ok(host_inbox_list(&list, &n, root, "signup-bot", S1) == 0 && n == 3);
    if (n == 3)
        ok(list[0].given == 1 && list[1].given == 1 && list[2].given == 0);
    host_inbox_list_free(list, n);
    ok(host_inbox_list(&list, &n, root, "signup-bot", S2) == 0 && n == 3);
    if (n == 3)
        ok(list[0].given == 0 && list[1].given == 0 && list[2].given == 0);
    host_inbox_list_free(list, n);

    /* filters: case-insensitive subject / from, since (ms or id) overrides the marks, newest, otp */
    host_inbox_filter_t fs = {.session = S2, .subject_contains = "stripe VERIFICATION"};
    ok(host_inbox_find(&got, root, "signup-bot", &fs) == 0 && strcmp(got.id, "msg_3") == 0);
    host_inbox_msg_clear(&got);
    host_inbox_filter_t ff = {.session = S2, .from_contains = "NOREPLY@github"};
    ok(host_inbox_find(&got, root, "signup-bot", &ff) == 0 && strcmp(got.id, "msg_2") == 0);
    host_inbox_msg_clear(&got);
    host_inbox_filter_t fn = {.session = S1, .subject_contains = "lunch"};
    ok(host_inbox_find(&got, root, "signup-bot", &fn) == CR_ENOTFOUND); /* msg_1 was given to S1 */
    okf(strstr(cr_error_last()->message, "no matching message") != NULL, "%s", cr_error_last()->message);
    host_inbox_filter_t fsince = {.session = S1, .since_ms = 999};
    ok(host_inbox_find(&got, root, "signup-bot", &fsince) == 0 && strcmp(got.id, "msg_1") == 0);
    host_inbox_msg_clear(&got);
    fsince.since_ms = 1000; /* strictly after */
    ok(host_inbox_find(&got, root, "signup-bot", &fsince) == 0 && strcmp(got.id, "msg_2") == 0);
    host_inbox_msg_clear(&got);
    host_inbox_filter_t fid = {.session = S1, .since_id = "msg_2"};
    ok(host_inbox_find(&got, root, "signup-bot", &fid) == 0 && strcmp(got.id, "msg_3") == 0);
    host_inbox_msg_clear(&got);
    fid.since_id = "msg_3";
    ok(host_inbox_find(&got, root, "signup-bot", &fid) == CR_ENOTFOUND);
    fid.since_id = "msg_404";
    ok(host_inbox_find(&got, root, "signup-bot", &fid) == CR_ENOTFOUND);
    okf(strstr(cr_error_last()->message, "msg_404") != NULL && strcmp(cr_error_last()->field, "since") == 0, "%s",
        cr_error_last()->message);
    host_inbox_filter_t fotp = {.session = S2, .need_otp = 1, .newest = 1};
    ok(host_inbox_find(&got, root, "signup-bot", &fotp) == 0 && strcmp(got.id, "msg_3") == 0 && got.otp != NULL &&
       strcmp(got.otp, "771204") == 0);
    host_inbox_msg_clear(&got);
    fotp.newest = 0;
    ok(host_inbox_find(&got, root, "signup-bot", &fotp) == 0 && strcmp(got.id, "msg_2") == 0);
    host_inbox_msg_clear(&got);

    /* a torn append (crash mid-write) is not a mark, and the next mark still lands on its own line */
    {
        char path[PATH_MAX + 64];
        snprintf(path, sizeof(path), "%s/signup-bot/given/%s", root, S2);
        FILE *fp = fopen(path, "w");
        fputs("msg_", fp);
        fclose(fp);
        ok(host_inbox_is_given(root, "signup-bot", S2, "msg_1") == 0);
        ok(host_inbox_mark_given(root, "signup-bot", S2, "msg_3") == 0);
        ok(host_inbox_is_given(root, "signup-bot", S2, "msg_3") == 1);
        txt = slurp(NULL, "%s", path);
        ok_str(txt, "msg_\nmsg_3\n");
        free(txt);
    }

    ok(host_inbox_mark_given(root, "signup-bot", "../x", "msg_1") == CR_EBADNAME);
    ok_str(cr_error_last()->field, "session");
    ok(host_inbox_mark_given(root, "signup-bot", S1, "a/b") == CR_EBADNAME);
    ok(host_inbox_mark_given(root, "nobody", S1, "msg_1") == CR_ENOTFOUND);
    host_inbox_filter_t fbad = {.session = ".."};
    ok(host_inbox_find(&got, root, "signup-bot", &fbad) == CR_EBADNAME);
}

/* Everything corrald does with an identity, then a search of every file written for the secrets. */
static void test_no_secret_on_disk(void)
{
    char home[PATH_MAX], root[PATH_MAX + 16];
    unsigned char *k = NULL, *sk = NULL, *vk = NULL;
    host_identity_keys_t keys;
    host_identity_t idn;
    cr_buf_t blob, mp, sealed, pt;
    host_inbox_msg_t m = {0};
    char *v = NULL;
    size_t vlen;
    new_dir(home, sizeof(home), "secrets");
    snprintf(root, sizeof(root), "%s/identities", home);
    cr_buf_init(&blob, 1 << 20);
    cr_buf_init(&mp, 1 << 20);
    cr_buf_init(&sealed, 1 << 20);
    cr_buf_init(&pt, 1 << 20);

    ok(host_team_key_load(&k, home) == 0 && k != NULL);
    ok(mode_of("%s/team.key", home) == 0600);
    if (k == NULL)
        return;
    make_identity(&idn, "signup-bot", 1, NULL);
    ok(host_identity_keys_new(&keys, k, TEAM, idn.id) == 0);
    memcpy(idn.pk, keys.pk, sizeof(idn.pk));
    memcpy(idn.sk_wrapped, keys.sk_wrapped, sizeof(idn.sk_wrapped));
    memcpy(idn.vk_wrapped, keys.vk_wrapped, sizeof(idn.vk_wrapped));
    idn.has_wrapped = 1;
    ok(host_identity_save(root, &idn, 1) == 0);
    ok(host_identity_unwrap_vk(&vk, k, TEAM, idn.id, idn.vk_wrapped, HOST_IDN_WRAPPED_LEN) == 0);
    ok(host_identity_unwrap_sk(&sk, k, TEAM, idn.id, idn.sk_wrapped, HOST_IDN_WRAPPED_LEN) == 0);
    if (vk == NULL || sk == NULL)
        goto done;
    ok(host_secret_seal(&blob, vk, TEAM, idn.id, "GITHUB_TOKEN", 1, SECRET, strlen(SECRET)) == 0);
    ok(host_secret_open(&v, &vlen, vk, TEAM, idn.id, "GITHUB_TOKEN", 1, blob.base, blob.len) == 0);

    mp_from_json(&mp, MSG_JSON);
    cr_buf_reserve(&sealed, mp.len + crypto_box_SEALBYTES);
    crypto_box_seal((unsigned char *)sealed.base, (unsigned char *)mp.base, mp.len, idn.pk);
    sealed.len = mp.len + crypto_box_SEALBYTES;
    ok(host_inbox_open(&pt, sealed.base, sealed.len, idn.pk, sk) == 0 && host_inbox_msg_from_mp(&m, pt.base, pt.len) == 0);
    ok(host_inbox_save(root, "signup-bot", &m) == 0);
    ok(host_inbox_mark_given(root, "signup-bot", "S1", m.id) == 0);

    /* the reloaded identity opens what it sealed: the wrapped keys in identity.json are the real ones */
    host_identity_t back;
    unsigned char *vk2 = NULL;
    char *v2 = NULL;
    size_t v2len;
    ok(host_identity_load(&back, root, "signup-bot") == 0 && back.has_wrapped);
    ok(host_identity_unwrap_vk(&vk2, k, TEAM, back.id, back.vk_wrapped, HOST_IDN_WRAPPED_LEN) == 0);
    ok(vk2 != NULL && host_secret_open(&v2, &v2len, vk2, TEAM, back.id, "GITHUB_TOKEN", 1, blob.base, blob.len) == 0 &&
       v2len == strlen(SECRET));
    host_secure_free(v2);
    host_secure_free(vk2);

    /* the files: the value, sk and VK (raw, base64url and hex) appear in none; the pk does, in identity.json */
    char b64[64], hex[80];
    ok(files_holding(home, SECRET, strlen(SECRET)) == 0);
    ok(files_holding(home, sk, HOST_IDN_KEY_LEN) == 0);
    ok(files_holding(home, vk, HOST_IDN_KEY_LEN) == 0);
    cr_base64url_encode(b64, sk, HOST_IDN_KEY_LEN);
    ok(files_holding(home, b64, strlen(b64)) == 0);
    cr_base64url_encode(b64, vk, HOST_IDN_KEY_LEN);
    ok(files_holding(home, b64, strlen(b64)) == 0);
    cr_hex_encode(hex, vk, HOST_IDN_KEY_LEN);
    ok(files_holding(home, hex, strlen(hex)) == 0);
    cr_base64url_encode(b64, idn.pk, HOST_IDN_KEY_LEN);
    ok(files_holding(home, b64, strlen(b64)) == 1); /* the check itself finds what is there */
    ok(files_holding(home, k, HOST_IDN_KEY_LEN) == 1); /* only team.key holds K */
    ok(mode_of("%s/signup-bot/inbox/%s.eml", root, m.id) == 0600 && mode_of("%s/signup-bot/inbox/%s.json", root, m.id) == 0600);

    /* the same team key comes back from team.key */
    unsigned char *k2 = NULL;
    ok(host_team_key_load(&k2, home) == 0 && k2 != NULL && memcmp(k, k2, HOST_IDN_KEY_LEN) == 0);
    host_secure_free(k2);
done:
    host_inbox_msg_clear(&m);
    host_secure_free(v);
    host_secure_free(sk);
    host_secure_free(vk);
    host_secure_free(k);
    cr_buf_free(&blob);
    cr_buf_free(&mp);
    cr_buf_free(&sealed);
    cr_buf_free(&pt);
}

int main(void)
{
    cr_log_init("test", CR_LOG_ERROR);
    if (sodium_init() < 0)
        return 1;
    if (cr_test_make_temp_dir(tmp, sizeof(tmp), "corral-identity", 200) != 0)
        return 1;
    cr_test_slot_add(tmp, 0);
    subtest("names", test_names);
    subtest("keys", test_keys);
    subtest("secrets", test_secrets);
    subtest("inbox open", test_inbox_open);
    subtest("message decode", test_msg_decode);
    subtest("identity store", test_identity_store);
    subtest("inbox store", test_inbox_store);
    subtest("given", test_given);
    subtest("no secret on disk", test_no_secret_on_disk);
    return done_testing();
}
