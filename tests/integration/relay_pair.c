/* relay_pair.c — pairing and devices against a real relay and Redis: one-time codes, claims, device tokens, push
 * registrations and their validation, deletion across teams. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "corral/buf.h"
#include "corral/codec.h"
#include "corral/json.h"
#include "corral/mp.h"
#include "corral/ulid.h"
#include "mp_text.h"
#include "harness.h"
#include "http_client.h"
#include "proc.h"
#include "redis_server.h"
#include "relay_proc.h"

#define PUBLIC_URL "https://relay.pair.test"

static cr_test_redis_t redis;
static cr_test_relay_t relay;
static redisContext *rc;
static char acme_admin[64], acme_host[64], acme_host2[64], other_admin[64], other_host[64];
static char dev_token[64], dev_id[32];       /* a device of acme, paired in test_pair_and_claim */
static char other_dev_token[64], other_dev_id[32]; /* a device of team "other" */

/* ---- helpers --------------------------------------------------------------------------------------------------- */

/* The error code of a response ("" when none). */
static const char *ecode(const cr_test_resp_t *r)
{
    static char code[64];
    return cr_test_json_text(r, "error.code", code, sizeof(code));
}

static const char *efield(const cr_test_resp_t *r)
{
    static char field[96];
    return cr_test_json_text(r, "error.field", field, sizeof(field));
}

/* One JSON request to the relay at path; the response in *r (freed by the caller). */
static long req(cr_test_resp_t *r, const char *method, const char *path, const char *token, const char *json)
{
    char url[256];
    snprintf(url, sizeof(url), "%s%s", relay.url, path);
    if (cr_test_http_json(r, method, url, token, json) != 0)
        return 0;
    return r->status;
}

/* Sends a request and checks its status, and its error code and field when given; frees the response. */
#define expect(method, path, token, json, status, code, fld)                                                          \
    do {                                                                                                              \
        cr_test_resp_t r_ = {0};                                                                                      \
        long st_ = req(&r_, method, path, token, json);                                                               \
        okf(st_ == (status), "%s %s -> %ld (want %d): %s", method, path, st_, status, r_.body != NULL ? r_.body : ""); \
        if ((code) != NULL)                                                                                           \
            okf(strcmp(ecode(&r_), (code) != NULL ? (code) : "") == 0, "error code %s (want %s)", ecode(&r_),       \
                (code) != NULL ? (code) : "");                                                                        \
        if ((fld) != NULL)                                                                                            \
            okf(strcmp(efield(&r_), (fld) != NULL ? (fld) : "") == 0, "error field %s (want %s)", efield(&r_),      \
                (fld) != NULL ? (fld) : "");                                                                          \
        cr_test_resp_free(&r_);                                                                                       \
    } while (0)

/* Asks for a pairing code with token; returns 0 with it in code. */
static int pair(const char *token, char *code, size_t codelen)
{
    cr_test_resp_t r = {0};
    int rv = req(&r, "POST", "/v1/host/pair", token, NULL) == 200 ? 0 : -1;
    cr_test_json_text(&r, "code", code, codelen);
    if (rv != 0)
        note("pair: %ld %s", r.status, r.body);
    cr_test_resp_free(&r);
    return rv == 0 && code[0] != '\0' ? 0 : -1;
}

/* Claims a code; returns the status, with the token and device id when 200. */
static long claim(const char *code, const char *name, char *token, size_t tokenlen, char *dev, size_t devlen)
{
    char body[512];
    cr_test_resp_t r = {0};
    long st;
    snprintf(body, sizeof(body), "{\"code\":\"%s\",\"name\":\"%s\"}", code, name);
    st = req(&r, "POST", "/v1/pair/claim", NULL, body);
    if (token != NULL)
        cr_test_json_text(&r, "token", token, tokenlen);
    if (dev != NULL)
        cr_test_json_text(&r, "device", dev, devlen);
    cr_test_resp_free(&r);
    return st;
}

static void sha256_hex(char out[65], const char *s)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)s, strlen(s), md);
    cr_hex_encode(out, md, sizeof(md));
}

/* HGET into out (NUL-terminated; "" when absent); returns the length. */
static size_t hget(char *out, size_t outlen, const char *key, const char *field)
{
    redisReply *x = redisCommand(rc, "HGET %s %s", key, field);
    size_t n = 0;
    out[0] = '\0';
    if (x != NULL && x->type == REDIS_REPLY_STRING) {
        n = x->len < outlen - 1 ? x->len : outlen - 1;
        memcpy(out, x->str, n);
        out[n] = '\0';
    }
    if (x != NULL)
        freeReplyObject(x);
    return n;
}

/* The device record of team/id in cr:{T}:dev (msgpack) into rec; returns its length (0: none). */
static size_t device_record(char *rec, size_t reclen, const char *team, const char *id)
{
    char key[96];
    snprintf(key, sizeof(key), "cr:{%s}:dev", team);
    return hget(rec, reclen, key, id);
}

/* ---- tests ----------------------------------------------------------------------------------------------------- */

static void test_pair_and_claim(void)
{
    char code[32], key[64], val[512], hash[65], tokkey[80], buf[128], rec[4096], typed[32];
    cr_test_resp_t r = {0};
    uint64_t now = cr_now_ms();
    size_t reclen;

    ok(req(&r, "POST", "/v1/host/pair", acme_host, NULL) == 200);
    cr_test_json_text(&r, "code", code, sizeof(code));
    okf(strlen(code) == 10 && strspn(code, "0123456789ABCDEFGHJKMNPQRSTVWXYZ") == 10, "a 10-character Crockford code: %s", code);
    okf(strtoull(cr_test_json_text(&r, "expires", buf, sizeof(buf)), NULL, 10) >= now + 590000 &&
            strtoull(buf, NULL, 10) <= cr_now_ms() + 600000,
        "expires in 10 minutes: %s (now %llu)", buf, (unsigned long long)now);
    ok_str(cr_test_json_text(&r, "url", buf, sizeof(buf)), PUBLIC_URL);
    cr_test_resp_free(&r);

    /* in Redis: a global key (the claimer does not know the team), with a TTL of at most 10 minutes */
    snprintf(key, sizeof(key), "cr:pair:%s", code);
    long long ttl = cr_test_redis_int(rc, "TTL %s", key);
    okf(ttl > 590 && ttl <= 600, "TTL %lld", ttl);
    redisReply *x = redisCommand(rc, "GET %s", key);
    snprintf(val, sizeof(val), "%s", x != NULL && x->type == REDIS_REPLY_STRING ? x->str : "");
    freeReplyObject(x);
    okf(strstr(val, "\"team\":\"acme\"") != NULL, "pairing record %s", val);

    /* typed by a human: lower case, a dash, O for 0 and I/L for 1 are fine */
    size_t k = 0;
    for (size_t i = 0; code[i] != '\0'; ++i) {
        char ch = code[i];
        if (i == 5)
            typed[k++] = '-';
        typed[k++] = ch == '0' ? 'o' : ch == '1' ? 'l' : (ch >= 'A' && ch <= 'Z') ? (char)(ch - 'A' + 'a') : ch;
    }
    typed[k] = '\0';
    ok(claim(typed, "Ana's phone", dev_token, sizeof(dev_token), dev_id, sizeof(dev_id)) == 200);
    okf(strncmp(dev_token, "crt_", 4) == 0 && strlen(dev_token) == 47, "a device token (%zu chars)", strlen(dev_token));
    ok(cr_ulid_parse(dev_id, NULL));
    ok(cr_test_redis_int(rc, "EXISTS %s", key) == 0); /* consumed */

    /* the token works at once */
    expect("GET", "/v1/sessions", dev_token, NULL, 200, NULL, NULL);

    /* stored hashed, as a device principal of acme, in the team's token set, with a device record */
    sha256_hex(hash, dev_token);
    snprintf(tokkey, sizeof(tokkey), "cr:tok:%s", hash);
    ok_str((hget(buf, sizeof(buf), tokkey, "kind"), buf), "device");
    ok_str((hget(buf, sizeof(buf), tokkey, "team"), buf), "acme");
    ok_str((hget(buf, sizeof(buf), tokkey, "id"), buf), dev_id);
    ok_str((hget(buf, sizeof(buf), tokkey, "label"), buf), "Ana's phone");
    ok(cr_test_redis_int(rc, "SISMEMBER cr:{acme}:toks %s", hash) == 1);
    reclen = device_record(rec, sizeof(rec), "acme", dev_id);
    ok(reclen > 0);
    ok_str(cr_test_mp_text(rec, reclen, "id", buf, sizeof(buf)), dev_id);
    ok_str(cr_test_mp_text(rec, reclen, "name", buf, sizeof(buf)), "Ana's phone");
    ok_str(cr_test_mp_text(rec, reclen, "provider", buf, sizeof(buf)), "none");

    /* single use: the same answer as for a code that never was */
    {
        cr_test_resp_t r2 = {0};
        char body[128];
        snprintf(body, sizeof(body), "{\"code\":\"%s\",\"name\":\"thief\"}", code);
        ok(req(&r2, "POST", "/v1/pair/claim", NULL, body) == 404);
        ok_str(ecode(&r2), "not_found");
        ok_str(efield(&r2), "code");
        cr_test_resp_free(&r2);
    }
    expect("POST", "/v1/pair/claim", NULL, "{\"code\":\"ZZZZZZZZZZ\",\"name\":\"x\"}", 404, "not_found", "code");
    expect("POST", "/v1/pair/claim", NULL, "{\"code\":\"hello!\",\"name\":\"x\"}", 404, "not_found", "code");

    /* an expired code */
    ok(pair(acme_host, code, sizeof(code)) == 0);
    snprintf(key, sizeof(key), "cr:pair:%s", code);
    ok(cr_test_redis_int(rc, "PEXPIRE %s 50", key) == 1);
    cr_test_sleep_ms(150);
    ok(claim(code, "late phone", NULL, 0, NULL, 0) == 404);

    /* a code dies with the host token that made it */
    ok(pair(acme_host2, code, sizeof(code)) == 0);
    ok(cr_test_relay_admin(&relay, NULL, 0, "token", "revoke", acme_host2, NULL) == 0);
    ok(claim(code, "phone", NULL, 0, NULL, 0) == 404);

    /* admins may pair too; a device may not; nobody without a token */
    ok(pair(acme_admin, code, sizeof(code)) == 0);
    ok(claim(code, "Ben's tablet", NULL, 0, NULL, 0) == 200);
    expect("POST", "/v1/host/pair", dev_token, NULL, 403, "forbidden", NULL);
    expect("POST", "/v1/host/pair", NULL, NULL, 401, "unauthorized", NULL);

    /* bad claims */
    expect("POST", "/v1/pair/claim", NULL, "{\"name\":\"x\"}", 400, "bad_request", "code");
    expect("POST", "/v1/pair/claim", NULL, "{\"code\":\"ZZZZZZZZZZ\"}", 400, "bad_request", "name");
    expect("POST", "/v1/pair/claim", NULL, "{\"code\":7,\"name\":\"x\"}", 400, "bad_request", "code");
    expect("POST", "/v1/pair/claim", NULL, "{\"code\":\"ZZZZZZZZZZ\",\"name\":\"\"}", 400, "bad_request", "name");
    expect("POST", "/v1/pair/claim", NULL, "[1,2]", 400, "bad_request", NULL);
    expect("POST", "/v1/pair/claim", NULL, "{\"code\":", 400, "bad_json", NULL);
    expect("POST", "/v1/pair/claim", NULL, NULL, 400, "bad_request", NULL);

    /* a device of another team, for the tests below */
    ok(pair(other_host, code, sizeof(code)) == 0);
    ok(claim(code, "other phone", other_dev_token, sizeof(other_dev_token), other_dev_id, sizeof(other_dev_id)) == 200);
}

/* Failed claims are limited per relay: a burst of 10, then 429 with Retry-After; a good code waits too. */
static void test_claim_rate_limit(void)
{
    char code[32], tok[64];
    int n404 = 0, got429 = 0;
    cr_test_sleep_ms(1200); /* the bucket is full again */
    ok(pair(acme_host, code, sizeof(code)) == 0);
    for (int i = 0; i < 40 && !got429; ++i) {
        cr_test_resp_t r = {0};
        long st = req(&r, "POST", "/v1/pair/claim", NULL, "{\"code\":\"0000000000\",\"name\":\"guess\"}");
        if (st == 404) {
            ++n404;
        } else if (st == 429) {
            got429 = 1;
            ok_str(ecode(&r), "rate_limited");
            okf(atoi(r.retry_after) >= 1, "Retry-After: %s", r.retry_after);
        } else {
            okf(0, "claim answered %ld", st);
        }
        cr_test_resp_free(&r);
    }
    ok(got429);
    okf(n404 >= 10 && n404 <= 20, "%d failed claims answered before the limit", n404);
    ok(claim(code, "patient phone", NULL, 0, NULL, 0) == 429); /* even a good code waits */
    cr_test_sleep_ms(1200);
    ok(claim(code, "patient phone", tok, sizeof(tok), NULL, 0) == 200);
    ok(strncmp(tok, "crt_", 4) == 0);
}

#define HEX64 "0123456789abcdef0123456789ABCDEF0123456789abcdef0123456789abcdef"
/* a P-256 public key (uncompressed, 65 bytes) and a 16-byte auth secret, base64url */
#define P256DH "BCVxsr7N_eNgVRqvHtD0zTZsEc6-VV-JvLexhqUzORcxaOzi6-AYWXvTBHm4bjyPjs7Vd8pZGH6SRpkNtoIAiw4"
#define AUTH "BTBZMqHH6r4Tts7J_aSIgg"

static void test_devices_register(void)
{
    char rec[4096], buf[256];
    size_t reclen;
    cr_test_resp_t r = {0};

    /* each provider, by the device itself: the id is its own */
    ok(req(&r, "POST", "/v1/devices", dev_token,
           "{\"name\":\"Ana's iPhone\",\"provider\":\"apns\",\"token\":\"" HEX64 "\",\"env\":\"sandbox\"}") == 201);
    ok_str(cr_test_json_text(&r, "id", buf, sizeof(buf)), dev_id);
    cr_test_resp_free(&r);
    reclen = device_record(rec, sizeof(rec), "acme", dev_id);
    ok_str(cr_test_mp_text(rec, reclen, "provider", buf, sizeof(buf)), "apns");
    ok_str(cr_test_mp_text(rec, reclen, "token", buf, sizeof(buf)), "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef");
    ok_str(cr_test_mp_text(rec, reclen, "env", buf, sizeof(buf)), "sandbox");
    ok_str(cr_test_mp_text(rec, reclen, "name", buf, sizeof(buf)), "Ana's iPhone");
    ok_str(cr_test_mp_text(rec, reclen, "filters.min_pri", buf, sizeof(buf)), "2");

    expect("POST", "/v1/devices", dev_token, "{\"provider\":\"apns\",\"token\":\"" HEX64 "\"}", 201, NULL, NULL);
    reclen = device_record(rec, sizeof(rec), "acme", dev_id);
    ok_str(cr_test_mp_text(rec, reclen, "env", buf, sizeof(buf)), "production");
    ok_str(cr_test_mp_text(rec, reclen, "name", buf, sizeof(buf)), "Ana's phone"); /* the paired name when none is given */

    expect("POST", "/v1/devices", dev_token, "{\"name\":\"Pixel\",\"provider\":\"fcm\",\"token\":\"dGVzdA:APA91bH-x_y\"}", 201,
           NULL, NULL);
    reclen = device_record(rec, sizeof(rec), "acme", dev_id);
    ok_str(cr_test_mp_text(rec, reclen, "provider", buf, sizeof(buf)), "fcm");
    ok_str(cr_test_mp_text(rec, reclen, "token", buf, sizeof(buf)), "dGVzdA:APA91bH-x_y");

    expect("POST", "/v1/devices", dev_token,
           "{\"name\":\"Browser\",\"provider\":\"webpush\",\"subscription\":{\"endpoint\":\"https://push.example.net/wp/abc\","
           "\"expirationTime\":null,\"keys\":{\"p256dh\":\"" P256DH "\",\"auth\":\"" AUTH "==\"}},"
           "\"filters\":{\"hosts\":[\"h1\",\"h-2\"],\"identities\":[\"feature-auth-agent\"],\"min_pri\":1,\"muted\":[\"S1\"]}}",
           201, NULL, NULL);
    reclen = device_record(rec, sizeof(rec), "acme", dev_id);
    ok_str(cr_test_mp_text(rec, reclen, "provider", buf, sizeof(buf)), "webpush");
    ok_str(cr_test_mp_text(rec, reclen, "subscription.endpoint", buf, sizeof(buf)), "https://push.example.net/wp/abc");
    ok_str(cr_test_mp_text(rec, reclen, "subscription.keys.p256dh", buf, sizeof(buf)), P256DH);
    ok_str(cr_test_mp_text(rec, reclen, "subscription.keys.auth", buf, sizeof(buf)), AUTH); /* padding dropped */
    ok_str(cr_test_mp_text(rec, reclen, "filters.min_pri", buf, sizeof(buf)), "1");
    {
        cr_span_t v;
        ok(cr_test_mp_path(rec, reclen, "filters.hosts", &v) == 0);
        ok_bytes(v.base, v.len, "\x92\xa2h1\xa3h-2", 8);
        ok(cr_test_mp_path(rec, reclen, "filters.muted", &v) == 0);
        ok_bytes(v.base, v.len, "\x91\xa2S1", 4);
        ok(cr_test_mp_path(rec, reclen, "token", &v) != 0); /* nothing left of the fcm registration */
    }

    expect("POST", "/v1/devices", dev_token, "{\"name\":\"Quiet\",\"provider\":\"none\"}", 201, NULL, NULL);
    reclen = device_record(rec, sizeof(rec), "acme", dev_id);
    ok_str(cr_test_mp_text(rec, reclen, "provider", buf, sizeof(buf)), "none");

    /* msgpack in, msgpack out */
    {
        static const char mp[] = "\x82\xa4name\xa2mp\xa8provider\xa4none";
        char url[256];
        cr_test_resp_t m = {0};
        snprintf(url, sizeof(url), "%s/v1/devices", relay.url);
        ok(cr_test_http(&m, "POST", url, dev_token, "application/msgpack", mp, sizeof(mp) - 1, CR_HTTP_ACCEPT_MSGPACK) == 0);
        ok(m.status == 201);
        ok(strstr(m.content_type, "msgpack") != NULL);
        ok_str(cr_test_mp_text(m.body, m.body_len, "id", buf, sizeof(buf)), dev_id);
        cr_test_resp_free(&m);
    }

    /* validation: 400 bad_request naming the field */
    struct {
        const char *json, *field;
    } bad[] = {
        {"{\"name\":\"x\",\"provider\":\"sms\"}", "provider"},
        {"{\"name\":\"x\"}", "provider"},
        {"{\"name\":\"x\",\"provider\":7}", "provider"},
        {"{\"provider\":\"apns\"}", "token"},
        {"{\"provider\":\"apns\",\"token\":\"xyz0123456789abcdef0123456789abcdef0123456789abcdef0123456789abc\"}", "token"},
        {"{\"provider\":\"apns\",\"token\":\"0123456789abcdef\"}", "token"},
        {"{\"provider\":\"apns\",\"token\":\"" HEX64 "\",\"env\":\"staging\"}", "env"},
        {"{\"provider\":\"fcm\"}", "token"},
        {"{\"provider\":\"fcm\",\"token\":\"has space\"}", "token"},
        {"{\"provider\":\"fcm\",\"token\":\"abc\",\"env\":\"sandbox\"}", "env"},
        {"{\"provider\":\"webpush\"}", "subscription"},
        {"{\"provider\":\"webpush\",\"subscription\":\"https://x\"}", "subscription"},
        {"{\"provider\":\"webpush\",\"subscription\":{\"keys\":{\"p256dh\":\"" P256DH "\",\"auth\":\"" AUTH "\"}}}",
         "subscription.endpoint"},
        {"{\"provider\":\"webpush\",\"subscription\":{\"endpoint\":\"http://push.example/x\",\"keys\":{\"p256dh\":\"" P256DH
         "\",\"auth\":\"" AUTH "\"}}}",
         "subscription.endpoint"},
        {"{\"provider\":\"webpush\",\"subscription\":{\"endpoint\":\"https://push.example/x\"}}", "subscription.keys"},
        {"{\"provider\":\"webpush\",\"subscription\":{\"endpoint\":\"https://push.example/x\",\"keys\":{\"p256dh\":\"AAAA\","
         "\"auth\":\"" AUTH "\"}}}",
         "subscription.keys.p256dh"},
        {"{\"provider\":\"webpush\",\"subscription\":{\"endpoint\":\"https://push.example/x\",\"keys\":{\"p256dh\":\"" P256DH
         "\",\"auth\":\"AAAA\"}}}",
         "subscription.keys.auth"},
        {"{\"provider\":\"webpush\",\"subscription\":{\"endpoint\":\"https://push.example/x\",\"keys\":{\"p256dh\":\"" P256DH
         "\"}}}",
         "subscription.keys.auth"},
        {"{\"provider\":\"none\",\"token\":\"" HEX64 "\"}", "token"},
        {"{\"provider\":\"none\",\"filters\":{\"min_pri\":3}}", "filters.min_pri"},
        {"{\"provider\":\"none\",\"filters\":{\"min_pri\":-1}}", "filters.min_pri"},
        {"{\"provider\":\"none\",\"filters\":{\"hosts\":\"h1\"}}", "filters.hosts"},
        {"{\"provider\":\"none\",\"filters\":{\"hosts\":[\"ok\",\"not ok!\"]}}", "filters.hosts.1"},
        {"{\"provider\":\"none\",\"filters\":{\"identities\":[1]}}", "filters.identities.0"},
        {"{\"provider\":\"none\",\"filters\":[]}", "filters"},
        {"{\"provider\":\"none\",\"name\":\"\"}", "name"},
        {"{\"provider\":\"none\",\"name\":\"a\\nb\"}", "name"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i)
        expect("POST", "/v1/devices", dev_token, bad[i].json, 400, "bad_request", bad[i].field);
    {
        /* sizes are bounded: a name over 128 bytes, more than 128 host ids, a body over 64 KiB */
        cr_buf_t big;
        cr_buf_init(&big, 1 << 20);
        cr_buf_appendf(&big, "{\"provider\":\"none\",\"name\":\"%0200d\"}", 0);
        cr_buf_append(&big, "", 1);
        expect("POST", "/v1/devices", dev_token, big.base, 400, "bad_request", "name");
        cr_buf_reset(&big);
        cr_buf_appendf(&big, "{\"provider\":\"none\",\"filters\":{\"hosts\":[");
        for (int i = 0; i < 129; ++i)
            cr_buf_appendf(&big, "%s\"h%d\"", i ? "," : "", i);
        cr_buf_appendf(&big, "]}}");
        cr_buf_append(&big, "", 1);
        expect("POST", "/v1/devices", dev_token, big.base, 400, "bad_request", "filters.hosts");
        cr_buf_reset(&big);
        cr_buf_appendf(&big, "{\"provider\":\"none\",\"pad\":[");
        for (int i = 0; i < 3000; ++i)
            cr_buf_appendf(&big, "%s\"%030d\"", i ? "," : "", i);
        cr_buf_appendf(&big, "]}");
        cr_buf_append(&big, "", 1);
        expect("POST", "/v1/devices", dev_token, big.base, 413, "too_large", NULL);
        cr_buf_free(&big);
    }
    expect("POST", "/v1/devices", dev_token, "[]", 400, "bad_request", NULL);
    expect("POST", "/v1/devices", dev_token, NULL, 400, "bad_request", NULL);
    /* what failed changed nothing */
    reclen = device_record(rec, sizeof(rec), "acme", dev_id);
    ok_str(cr_test_mp_text(rec, reclen, "name", buf, sizeof(buf)), "mp");

    /* who may register what */
    expect("POST", "/v1/devices", acme_host, "{\"provider\":\"none\"}", 403, "forbidden", NULL);
    expect("POST", "/v1/devices", NULL, "{\"provider\":\"none\"}", 401, "unauthorized", NULL);
    expect("POST", "/v1/devices", dev_token, "{\"provider\":\"none\",\"id\":\"someone-else\"}", 403, "forbidden", "id");
    ok(req(&r, "POST", "/v1/devices", acme_admin, "{\"name\":\"kiosk\",\"provider\":\"none\"}") == 201);
    ok(cr_ulid_parse(cr_test_json_text(&r, "id", buf, sizeof(buf)), NULL));
    ok(device_record(rec, sizeof(rec), "acme", buf) > 0);
    cr_test_resp_free(&r);
    ok(req(&r, "POST", "/v1/devices", acme_admin, "{\"id\":\"ops-pager\",\"provider\":\"fcm\",\"token\":\"t0k\"}") == 201);
    ok_str(cr_test_json_text(&r, "id", buf, sizeof(buf)), "ops-pager");
    cr_test_resp_free(&r);
    expect("POST", "/v1/devices", acme_admin, "{\"id\":\"bad id\",\"provider\":\"none\"}", 400, "bad_request", "id");
}

static void test_devices_delete(void)
{
    char path[128], rec[4096];
    /* another team's device: 404 for the admin and the device of acme, and it stays */
    snprintf(path, sizeof(path), "/v1/devices/%s", other_dev_id);
    expect("DELETE", path, acme_admin, NULL, 404, "not_found", NULL);
    expect("DELETE", path, dev_token, NULL, 404, "not_found", NULL);
    ok(device_record(rec, sizeof(rec), "other", other_dev_id) > 0);
    /* unknown ids, a malformed one */
    expect("DELETE", "/v1/devices/01HZZZZZZZZZZZZZZZZZZZZZZZ", acme_admin, NULL, 404, "not_found", NULL);
    expect("DELETE", "/v1/devices/no%20such", acme_admin, NULL, 404, "not_found", NULL);
    /* a device sees only itself */
    expect("DELETE", "/v1/devices/ops-pager", dev_token, NULL, 404, "not_found", NULL);
    ok(device_record(rec, sizeof(rec), "acme", "ops-pager") > 0);
    expect("DELETE", "/v1/devices/ops-pager", acme_host, NULL, 403, "forbidden", NULL);
    /* deleting: 204 with no body, then 404 */
    {
        char url[256];
        cr_test_resp_t r = {0};
        snprintf(url, sizeof(url), "%s/v1/devices/ops-pager", relay.url);
        ok(cr_test_http(&r, "DELETE", url, acme_admin, NULL, NULL, 0, 0) == 0);
        ok(r.status == 204);
        ok(r.body_len == 0);
        cr_test_resp_free(&r);
    }
    ok(device_record(rec, sizeof(rec), "acme", "ops-pager") == 0);
    expect("DELETE", "/v1/devices/ops-pager", acme_admin, NULL, 404, "not_found", NULL);
    snprintf(path, sizeof(path), "/v1/devices/%s", dev_id);
    expect("DELETE", path, dev_token, NULL, 204, NULL, NULL);
    ok(device_record(rec, sizeof(rec), "acme", dev_id) == 0);
    expect("DELETE", path, dev_token, NULL, 404, "not_found", NULL);
    /* the other team's admin can delete its own */
    snprintf(path, sizeof(path), "/v1/devices/%s", other_dev_id);
    expect("DELETE", path, other_admin, NULL, 204, NULL, NULL);
}

int main(void)
{
    const char *env[] = {"CORRAL_HTTP_PUBLIC_URL=" PUBLIC_URL, NULL};
    if (cr_test_redis_start(&redis) != 0 || (rc = cr_test_redis_connect(&redis)) == NULL) {
        ok(0);
        return done_testing();
    }
    if (cr_test_relay_start(&relay, cr_test_redis_url(&redis), env) != 0) {
        ok(0);
        return done_testing();
    }
    ok(cr_test_relay_admin(&relay, acme_admin, sizeof(acme_admin), "team", "create", "acme", NULL) == 0);
    ok(cr_test_relay_admin(&relay, acme_host, sizeof(acme_host), "token", "create", "--team", "acme", "--kind", "host", NULL) == 0);
    ok(cr_test_relay_admin(&relay, acme_host2, sizeof(acme_host2), "token", "create", "--team", "acme", "--kind", "host",
                           "--label", "laptop", NULL) == 0);
    ok(cr_test_relay_admin(&relay, other_admin, sizeof(other_admin), "team", "create", "other", NULL) == 0);
    ok(cr_test_relay_admin(&relay, other_host, sizeof(other_host), "token", "create", "--team", "other", "--kind", "host",
                           NULL) == 0);

    subtest("a host's code becomes a phone's device token, once", test_pair_and_claim);
    subtest("failed claims are rate limited", test_claim_rate_limit);
    subtest("devices register for push, strictly validated", test_devices_register);
    subtest("devices are deleted only within their team", test_devices_delete);

    int status = done_testing();
    if (status != 0)
        note("relay log:\n%s", cr_test_relay_log_tail(&relay));
    redisFree(rc);
    cr_test_relay_stop(&relay);
    cr_test_redis_stop(&redis);
    return status;
}
