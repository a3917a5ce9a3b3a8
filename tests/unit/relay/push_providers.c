/* push_providers.c — unit tests of the push gateway's pure parts: notes made from real envelopes (push_note.c), device
 * records and filters, the APNs, FCM and Web Push requests as a provider receives them (URL, headers, JSON parsed
 * back, a Web Push body opened by the independent tests/fakes/webpush_decrypt.py), provider and OAuth tokens, and
 * how every documented provider answer is classified. */
#define _GNU_SOURCE
#include "harness.h"
#include "corral/buf.h"
#include "webpush_check.h"
#include "mp_text.h"
#include "proc.h"
#include "push_apns.h"
#include "push_fcm.h"
#include "push_note.h"
#include "push_webpush.h"
#include "corral/codec.h"
#include "corral/error.h"
#include "corral/json.h"
#include <msgpack.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>

#define NOW 1700000000
#define SECRET "sk_live_SECRET_STRIPE_KEY_4242"
#define APNS_TOKEN "7c2a1f0e9d8b6a5c4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d"

static char tmp[PATH_MAX], python[PATH_MAX];

/* ---- helpers ---------------------------------------------------------------------------------------------------- */

/* JSON text -> msgpack, malloc'd (tests only: inputs are trusted). */
static char *mp_of(const char *json, size_t *len)
{
    cr_buf_t b;
    cr_limits_t lax = cr_limits_default;
    lax.max_bin = lax.max_string = 8 << 20;
    cr_buf_init(&b, 16 << 20);
    if (cr_json_to_msgpack(&b, json, strlen(json), &lax) != 0) {
        fprintf(stderr, "bad test JSON: %.300s (%s)\n", json, cr_error_last()->message);
        abort();
    }
    *len = b.len;
    return b.base;
}

/* A JSON document (a provider payload) -> msgpack in a static buffer; len 0 when it is not JSON. */
static cr_buf_t jbuf;
static cr_span_t parse_json(const char *json, size_t len)
{
    cr_buf_free(&jbuf);
    cr_buf_init(&jbuf, 1 << 20);
    if (cr_json_to_msgpack(&jbuf, json, len, NULL) != 0)
        return (cr_span_t){"", 0};
    return (cr_span_t){jbuf.base, jbuf.len};
}

/* The text at path of the last parse_json (a str as is, an uint in decimal; "" when absent). */
static const char *jt(cr_span_t m, const char *path)
{
    static char out[8][8192];
    static int next;
    char *o = out[next++ % 8];
    return cr_test_mp_text(m.base, m.len, path, o, 8192);
}

/* The msgpack type at path, -1 when absent. */
static int jtype(cr_span_t m, const char *path)
{
    cr_span_t v;
    cr_mp_item_t it;
    if (cr_test_mp_path(m.base, m.len, path, &v) != 0 || cr_mp_read(v.base, v.base + v.len, &it) == 0)
        return -1;
    return it.type;
}

/* The value of header `name` of a request, NULL when absent. */
static const char *hdr(const relay_push_req_t *r, const char *name)
{
    size_t n = strlen(name);
    for (size_t i = 0; i < r->nheaders; ++i)
        if (strncmp(r->headers[i], name, n) == 0 && r->headers[i][n] == ':' && r->headers[i][n + 1] == ' ')
            return r->headers[i] + n + 2;
    return NULL;
}

/* Standard base64 -> bytes, malloc'd. */
static char *unb64(const char *s, size_t *len)
{
    cr_buf_t b;
    cr_buf_init(&b, 1 << 22);
    if (cr_base64_decode(&b, s, strlen(s)) != 0) {
        cr_buf_free(&b);
        *len = 0;
        return NULL;
    }
    *len = b.len;
    return b.base != NULL ? b.base : calloc(1, 1);
}

/* A sealed box of n bytes (0x01 || nonce || "ciphertext" || tag), random but for the version byte. */
static uint8_t *make_box(size_t n)
{
    uint8_t *box = malloc(n);
    RAND_bytes(box, (int)n);
    box[0] = 0x01;
    return box;
}

/* An event envelope (msgpack, malloc'd) of kind k with idn (NULL: none), pri and a JSON body text. */
static char *event(const char *k, const char *idn, unsigned pri, const char *body_json, size_t *len)
{
    cr_buf_t j;
    char *mp;
    cr_buf_init(&j, 16 << 20);
    cr_buf_appendf(&j, "{\"v\":1,\"k\":\"%s\",\"sid\":\"01JABCDEF\",\"seq\":7,\"ts\":1700000000000", k);
    if (idn != NULL)
        cr_buf_appendf(&j, ",\"idn\":\"%s\"", idn);
    cr_buf_appendf(&j, ",\"pri\":%u,\"b\":%s}", pri, body_json);
    cr_buf_append(&j, "", 1);
    mp = mp_of(j.base, len);
    cr_buf_free(&j);
    return mp;
}

/* A sealed event whose box is box[0..n). */
static char *sealed_event(const char *k, const uint8_t *box, size_t n, size_t *len)
{
    char *b64 = malloc(cr_base64_encoded_len(n)), *body = malloc(cr_base64_encoded_len(n) + 32), *mp;
    cr_base64_encode(b64, box, n);
    sprintf(body, "{\"$bin\":\"%s\"}", b64);
    mp = event(k, "feature-auth-agent", 2, body, len);
    free(b64);
    free(body);
    return mp;
}

static const char *approval_body = "{\"rid\":\"r1\",\"tool\":\"Bash\",\"summary\":\"npm install stripe\","
                                   "\"input\":{\"command\":\"npm install stripe\",\"env\":{\"STRIPE_KEY\":\"" SECRET "\"}}}";

/* A note of an approval.request of feature-auth-agent, plain. */
static void approval_note(relay_push_note_t *n)
{
    size_t len;
    char *env = event("approval.request", "feature-auth-agent", 2, approval_body, &len);
    ok(relay_push_note_from_event(n, env, len, "1700000000000-0", "h-laptop", "auth-refactor", NOW) == 0);
    free(env);
}

static int ends_with(const char *s, const char *suffix)
{
    size_t a = strlen(s), b = strlen(suffix);
    return a >= b && memcmp(s + a - b, suffix, b) == 0;
}

/* ---- notes ------------------------------------------------------------------------------------------------------ */

static void test_note_kinds(void)
{
    relay_push_note_t n;
    size_t len;
    char *env;

    env = event("approval.request", "feature-auth-agent", 2, approval_body, &len);
    ok(relay_push_note_from_event(&n, env, len, "1700000000000-0", "h-laptop", "auth-refactor", NOW) == 0);
    ok_str(n.title, "feature-auth-agent needs approval");
    ok_str(n.body, "Bash: npm install stripe");
    ok_str(n.category, "CORRAL_APPROVAL");
    ok_str(n.sid, "01JABCDEF");
    ok(n.seq == 7);
    ok_str(n.k, "approval.request");
    ok_str(n.host, "h-laptop");
    ok_str(n.id, "1700000000000-0");
    ok(n.sealed == NULL && n.sealed_len == 0);
    ok(n.expires_s == NOW + 3600);
    okf(memmem(&n, sizeof(n), "SECRET", 6) == NULL, "the approval's input is nowhere in the note");
    free(env);

    /* who: the session name when there is no idn, else the sid */
    env = event("question", NULL, 2, "{\"rid\":\"q1\",\"text\":\"Which database should I use?\",\"options\":[\"pg\",\"sqlite\"]}",
                &len);
    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", "auth-refactor", NOW) == 0);
    ok_str(n.title, "auth-refactor asks a question");
    ok_str(n.body, "Which database should I use?");
    ok_str(n.category, "CORRAL_QUESTION");
    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", NULL, NOW) == 0);
    ok_str(n.title, "01JABCDEF asks a question");
    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", "", NOW) == 0);
    ok_str(n.title, "01JABCDEF asks a question");
    free(env);

    env = event("diff.ready", "feature-auth-agent", 2,
                "{\"base\":\"a1\",\"head\":\"b2\",\"files\":[{\"path\":\"a.c\",\"status\":\"modified\",\"add\":100,\"del\":3},"
                "{\"path\":\"b.c\",\"status\":\"added\",\"add\":19,\"del\":0},{\"path\":\"c.c\",\"status\":\"deleted\","
                "\"add\":1,\"del\":5}],\"add\":120,\"del\":8,\"patch\":\"--- a\",\"truncated\":false}",
                &len);
    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", NULL, NOW) == 0);
    ok_str(n.title, "feature-auth-agent has changes to review");
    ok_str(n.body, "3 files changed, +120 -8");
    ok_str(n.category, "CORRAL_REVIEW");
    free(env);
    env = event("diff.ready", NULL, 2,
                "{\"base\":\"a1\",\"head\":\"b2\",\"files\":[{\"path\":\"a.c\",\"status\":\"modified\",\"add\":1,\"del\":1}],"
                "\"add\":1,\"del\":1,\"patch\":\"\",\"truncated\":false}",
                &len);
    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", "s", NOW) == 0);
    ok_str(n.body, "1 file changed, +1 -1");
    free(env);

    /* other kinds: "<who>: <k>", no category */
    env = event("agent.message", "feature-auth-agent", 1, "{\"text\":\"All tests pass.\"}", &len);
    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", NULL, NOW) == 0);
    ok_str(n.title, "feature-auth-agent: agent.message");
    ok_str(n.body, "All tests pass.");
    ok(n.category == NULL);
    free(env);
    env = event("session.state", NULL, 1, "{\"state\":\"failed\",\"reason\":\"agent exited with status 1\"}", &len);
    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", "auth-refactor", NOW) == 0);
    ok_str(n.title, "auth-refactor: session.state");
    ok_str(n.body, "failed: agent exited with status 1");
    free(env);
    env = event("inbox.message", "agent-7", 1,
                "{\"channel\":\"sms\",\"from\":\"+15550100\",\"subject\":\"Your code\",\"otp\":\"918273\"}", &len);
    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", NULL, NOW) == 0);
    ok_str(n.body, "+15550100: Your code");
    okf(memmem(&n, sizeof(n), "918273", 6) == NULL, "an inbox message's otp is never in a note");
    free(env);
    env = event("future.kind", "agent-7", 2, "{\"anything\":\"x\"}", &len);
    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", NULL, NOW) == 0);
    ok_str(n.title, "agent-7: future.kind");
    ok_str(n.body, "");
    ok(n.category == NULL);
    free(env);
}

static void test_note_truncation(void)
{
    relay_push_note_t n;
    cr_buf_t j;
    size_t len;
    char *env, name[400];

    /* a long summary of two-byte characters: cut at a character boundary, "…" at the end */
    cr_buf_init(&j, 1 << 20);
    cr_buf_appendf(&j, "{\"rid\":\"r1\",\"tool\":\"Bash\",\"summary\":\"");
    for (int i = 0; i < 600; ++i)
        cr_buf_append(&j, "\xc3\xa9", 2); /* é */
    cr_buf_appendf(&j, "\",\"input\":{\"k\":\"" SECRET "\"}}");
    cr_buf_append(&j, "", 1);
    env = event("approval.request", "feature-auth-agent", 2, j.base, &len);
    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", NULL, NOW) == 0);
    okf(strlen(n.body) <= 511 && strlen(n.body) >= 505, "body of %zu bytes", strlen(n.body));
    ok(strncmp(n.body, "Bash: \xc3\xa9\xc3\xa9", 10) == 0);
    ok(ends_with(n.body, "\xc3\xa9\xe2\x80\xa6"));
    ok(cr_utf8_valid(n.body, strlen(n.body)));
    free(env);
    cr_buf_free(&j);

    /* a long session name of three-byte characters: the title keeps what the agent needs */
    name[0] = '\0';
    for (int i = 0; i < 120; ++i)
        strcat(name, "\xe6\x97\xa5"); /* 日: 360 bytes */
    env = event("approval.request", NULL, 2, approval_body, &len);
    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", name, NOW) == 0);
    okf(strlen(n.title) <= 191, "title of %zu bytes", strlen(n.title));
    ok(ends_with(n.title, "\xe6\x97\xa5\xe2\x80\xa6 needs approval"));
    ok(cr_utf8_valid(n.title, strlen(n.title)));
    free(env);

    /* relay_push_text_shorten itself */
    {
        char s[32] = "abc\xe6\x97\xa5\xe6\x97\xa5"; /* 9 bytes */
        relay_push_text_shorten(s, 9);
        ok_str(s, "abc\xe6\x97\xa5\xe6\x97\xa5");
        relay_push_text_shorten(s, 8); /* 5 bytes room: "abc" then the ellipsis */
        ok_str(s, "abc\xe2\x80\xa6");
        relay_push_text_shorten(s, 2);
        ok_str(s, "ab");
        relay_push_text_shorten(s, 0);
        ok_str(s, "");
    }

    /* a NUL inside a msgpack string does not end the body early */
    {
        static const char body[] = {(char)0x84, (char)0xa3, 'r', 'i', 'd', (char)0xa2, 'r', '1', (char)0xa4, 't', 'o',
                                    'o', 'l', (char)0xa4, 'B', 'a', 's', 'h', (char)0xa7, 's', 'u', 'm', 'm', 'a', 'r',
                                    'y', (char)0xa3, 'a', 0, 'b', (char)0xa5, 'i', 'n', 'p', 'u', 't', (char)0xc0};
        cr_event_t ev = {.k = CR_SPAN_LIT("approval.request"), .sid = CR_SPAN_LIT("s1"), .seq = 1, .ts = 1, .pri = 2,
                         .b = {.raw = {body, sizeof(body)}}};
        cr_buf_t out;
        cr_event_t got;
        cr_buf_init(&out, 1 << 16);
        ok(cr_event_encode(&out, &ev) == 0);
        ok(cr_event_decode(&got, out.base, out.len, NULL) == 0);
        ok(relay_push_note_from_decoded(&n, &got, "1-0", "h1", NULL, NOW) == 0);
        ok_str(n.body, "Bash: a b");
        ok_str(n.title, "s1 needs approval");
        cr_buf_free(&out);
    }
}

static void test_note_sealed_and_errors(void)
{
    relay_push_note_t n;
    uint8_t *box = make_box(300);
    size_t len;
    char *env = sealed_event("approval.request", box, 300, &len), host[100];

    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", NULL, NOW) == 0);
    ok_str(n.title, "feature-auth-agent needs approval");
    ok_str(n.body, "Open Corral to see the request");
    ok_str(n.category, "CORRAL_APPROVAL");
    okf(n.sealed != NULL && n.sealed >= (const uint8_t *)env && n.sealed + n.sealed_len <= (const uint8_t *)env + len,
        "sealed points into the envelope");
    ok_bytes(n.sealed, n.sealed_len, box, 300);
    free(env);

    /* envelopes that are not events */
    env = mp_of("{\"v\":1,\"k\":\"question\",\"seq\":1,\"ts\":1,\"pri\":2,\"b\":{\"rid\":\"q\",\"text\":\"?\"}}", &len);
    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", NULL, NOW) == CR_EENVELOPE);
    ok_str(cr_error_last()->field, "sid");
    free(env);
    env = event("question", NULL, 2, "{\"rid\":\"q\"}", &len);
    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", NULL, NOW) == CR_EBODY);
    ok(relay_push_note_from_event(&n, env, len - 1, "1-0", "h1", NULL, NOW) == CR_ETRUNCATED);
    free(env);
    env = event("question", NULL, 2, "{\"rid\":\"q\",\"text\":\"?\"}", &len);
    memset(host, 'h', sizeof(host) - 1);
    host[sizeof(host) - 1] = '\0';
    ok(relay_push_note_from_event(&n, env, len, "1-0", host, NULL, NOW) == CR_ETOOLARGE);
    ok(relay_push_note_from_event(&n, env, len, NULL, NULL, NULL, NOW) == 0 && n.id[0] == '\0' && n.host[0] == '\0');
    free(env);
    free(box);
}

/* ---- device records and filters --------------------------------------------------------------------------------- */

static cr_span_t S(const char *s)
{
    return (cr_span_t){s, strlen(s)};
}

static void test_devices(void)
{
    relay_push_device_t d;
    relay_push_filters_t f;
    size_t len;
    char *rec;
    uint8_t pub[65], auth[16];
    char pub64[100], auth64[32], json[1024];

    rec = mp_of("{\"id\":\"dev-1\",\"name\":\"Ana's phone\",\"provider\":\"apns\",\"token\":\"" APNS_TOKEN "\",\"env\":"
                "\"sandbox\",\"filters\":{\"hosts\":[\"h-laptop\",\"h-ci\"],\"identities\":[\"feature-auth-agent\"],"
                "\"min_pri\":1,\"muted\":[\"s-muted\"]},\"created\":1000,\"updated\":2000}",
                &len);
    ok(relay_push_device_parse(&d, &f, rec, len) == 0);
    ok_str(d.id, "dev-1");
    ok(d.provider == RELAY_PUSH_APNS && d.sandbox == 1);
    ok_str(d.token, APNS_TOKEN);
    ok(d.created_ms == 2000);
    ok(f.min_pri == 1);
    ok(relay_push_filter_match(&f, S("h-laptop"), S("feature-auth-agent"), 2, S("s1")));
    ok(relay_push_filter_match(&f, S("h-ci"), S("feature-auth-agent"), 1, S("s1")));
    ok(!relay_push_filter_match(&f, S("h-other"), S("feature-auth-agent"), 2, S("s1")));
    ok(!relay_push_filter_match(&f, S("h-laptop"), S("feature-auth"), 2, S("s1")));
    ok(!relay_push_filter_match(&f, S("h-laptop"), S(""), 2, S("s1")));
    ok(!relay_push_filter_match(&f, S("h-laptop"), S("feature-auth-agent"), 0, S("s1")));
    ok(!relay_push_filter_match(&f, S("h-laptop"), S("feature-auth-agent"), 2, S("s-muted")));
    ok(!relay_push_filter_match(&f, S("h-lapto"), S("feature-auth-agent"), 2, S("s1"))); /* a prefix is not a match */
    ok(relay_push_device_parse(&d, NULL, rec, len) == 0); /* filters are optional for the caller */
    free(rec);

    /* what a claim writes: provider none, default filters */
    rec = mp_of("{\"id\":\"dev-2\",\"name\":\"x\",\"provider\":\"none\",\"filters\":{\"min_pri\":2},\"created\":5,"
                "\"updated\":5}",
                &len);
    ok(relay_push_device_parse(&d, &f, rec, len) == 0 && d.provider == RELAY_PUSH_NONE && d.created_ms == 5);
    ok(!relay_push_filter_match(&f, S("any"), S(""), 1, S("s1")));
    ok(relay_push_filter_match(&f, S("any"), S(""), 2, S("s1")));
    free(rec);
    rec = mp_of("{\"id\":\"dev-3\",\"provider\":\"fcm\",\"token\":\"fcm-token:APA91b_x\",\"updated\":9}", &len);
    ok(relay_push_device_parse(&d, &f, rec, len) == 0 && d.provider == RELAY_PUSH_FCM && f.min_pri == 2 &&
       f.hosts.len == 0);
    ok_str(d.token, "fcm-token:APA91b_x");
    ok(relay_push_filter_match(&f, S("any"), S(""), 2, S("s1")));
    free(rec);

    /* webpush: keys come back as bytes */
    RAND_bytes(pub, sizeof(pub));
    pub[0] = 0x04;
    RAND_bytes(auth, sizeof(auth));
    cr_base64url_encode(pub64, pub, 65);
    cr_base64url_encode(auth64, auth, 16);
    snprintf(json, sizeof(json),
             "{\"id\":\"dev-4\",\"provider\":\"webpush\",\"subscription\":{\"endpoint\":\"https://push.example.net/w/abc\","
             "\"keys\":{\"p256dh\":\"%s\",\"auth\":\"%s\"}},\"filters\":{\"min_pri\":0}}",
             pub64, auth64);
    rec = mp_of(json, &len);
    ok(relay_push_device_parse(&d, &f, rec, len) == 0 && d.provider == RELAY_PUSH_WEBPUSH && f.min_pri == 0);
    ok_str(d.endpoint, "https://push.example.net/w/abc");
    ok_bytes(d.p256dh, 65, pub, 65);
    ok_bytes(d.auth, 16, auth, 16);
    okf(relay_push_device_parse(&d, &f, rec, len - 1) == CR_ETRUNCATED, "%s", cr_error_last()->message);
    free(rec);

    /* broken records */
    static const struct {
        const char *json;
        int rc;
        const char *field;
    } bad[] = {
        {"{\"id\":\"d\",\"provider\":\"carrier-pigeon\"}", CR_EBODY, "provider"},
        {"{\"id\":\"d\"}", CR_EBODY, "provider"},
        {"{\"provider\":\"none\"}", CR_EBODY, "id"},
        {"{\"id\":\"d\",\"provider\":\"apns\"}", CR_EBODY, "token"},
        {"{\"id\":\"d\",\"provider\":\"apns\",\"token\":\"ab\",\"env\":\"staging\"}", CR_EBODY, "env"},
        {"{\"id\":\"d\",\"provider\":\"fcm\",\"token\":7}", CR_EBODY, "token"},
        {"{\"id\":\"d\",\"provider\":\"webpush\"}", CR_EBODY, "subscription"},
        {"{\"id\":\"d\",\"provider\":\"webpush\",\"subscription\":{\"endpoint\":\"https://x\",\"keys\":{\"p256dh\":\"AAAA\","
         "\"auth\":\"AAAA\"}}}",
         CR_EBODY, "subscription.keys.p256dh"},
        {"{\"id\":\"d\",\"provider\":\"none\",\"filters\":{\"min_pri\":5}}", CR_EBODY, "filters.min_pri"},
        {"{\"id\":\"d\",\"provider\":\"none\",\"filters\":{\"hosts\":\"h1\"}}", CR_EBODY, "filters.hosts"},
        {"{\"id\":\"d\",\"provider\":\"none\",\"filters\":{\"muted\":[1]}}", CR_EBODY, "filters.muted"},
        {"[1,2]", CR_EBODY, "device"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
        int rc;
        rec = mp_of(bad[i].json, &len);
        rc = relay_push_device_parse(&d, &f, rec, len);
        okf(rc == bad[i].rc && strcmp(cr_error_last()->field, bad[i].field) == 0, "%s: got %s field %s (%s)", bad[i].json,
            cr_err_code(rc), cr_error_last()->field, cr_error_last()->message);
        free(rec);
    }
    {
        char big[700];
        memset(big, 'a', 600);
        big[600] = '\0';
        snprintf(json, sizeof(json), "{\"id\":\"d\",\"provider\":\"fcm\",\"token\":\"%s\"}", big);
        rec = mp_of(json, &len);
        ok(relay_push_device_parse(&d, &f, rec, len) == CR_ETOOLARGE);
        free(rec);
        rec = mp_of("{\"id\":\"d\",\"provider\":\"none\"}", &len);
        rec = realloc(rec, len + 1);
        rec[len] = (char)0xc0;
        ok(relay_push_device_parse(&d, &f, rec, len + 1) == CR_ETRAILING);
        free(rec);
    }
}

/* ---- requests --------------------------------------------------------------------------------------------------- */

static void test_req_struct(void)
{
    relay_push_req_t r;
    char name[16];
    memset(&r, 0, sizeof(r));
    relay_push_req_free(&r); /* safe on a zeroed request */
    for (int i = 0; i < RELAY_PUSH_HEADERS_MAX; ++i) {
        snprintf(name, sizeof(name), "x-h%d", i);
        ok(relay_push_req_header(&r, name, "v") == 0);
    }
    ok(relay_push_req_header(&r, "x-one-more", "v") == -1);
    ok(r.nheaders == RELAY_PUSH_HEADERS_MAX);
    ok_str(r.headers[3], "x-h3: v");
    relay_push_req_free(&r);
    ok(r.nheaders == 0 && r.headers[0] == NULL);
    ok(relay_push_req_header(&r, "x-injected", "a\r\nevil: 1") == -1);
    ok(relay_push_req_header(&r, "x:y", "a") == -1);
    ok(r.nheaders == 0);
    relay_push_req_free(&r);
}

/* ---- APNs --------------------------------------------------------------------------------------------------------- */

static relay_jwt_key_t apns_key;

static relay_push_device_t apns_dev(int sandbox)
{
    relay_push_device_t d;
    memset(&d, 0, sizeof(d));
    snprintf(d.id, sizeof(d.id), "dev-apns");
    d.provider = RELAY_PUSH_APNS;
    snprintf(d.token, sizeof(d.token), "%s", APNS_TOKEN);
    d.sandbox = sandbox;
    return d;
}

static void test_apns_request(void)
{
    relay_push_note_t n;
    relay_push_device_t d = apns_dev(0);
    relay_push_req_t r;
    cr_span_t m;

    approval_note(&n);
    ok(relay_apns_request(&r, &n, &d, NULL, "com.example.corral", "eyJhbGciOiJFUzI1NiJ9.e30.sig") == 0);
    ok_str(r.url, "https://api.push.apple.com/3/device/" APNS_TOKEN);
    ok_str(r.method, "POST");
    ok(r.nheaders == 6);
    ok_str(hdr(&r, "authorization"), "bearer eyJhbGciOiJFUzI1NiJ9.e30.sig");
    ok_str(hdr(&r, "apns-topic"), "com.example.corral");
    ok_str(hdr(&r, "apns-push-type"), "alert");
    ok_str(hdr(&r, "apns-priority"), "10");
    ok_str(hdr(&r, "apns-expiration"), "1700003600");
    ok_str(hdr(&r, "apns-collapse-id"), "01JABCDEF");
    ok(r.body.len <= 4096);
    ok(memmem(r.body.base, r.body.len, "SECRET", 6) == NULL);
    m = parse_json(r.body.base, r.body.len);
    ok(m.len > 0);
    ok_str(jt(m, "aps.alert.title"), "feature-auth-agent needs approval");
    ok_str(jt(m, "aps.alert.body"), "Bash: npm install stripe");
    ok_str(jt(m, "aps.category"), "CORRAL_APPROVAL");
    ok_str(jt(m, "aps.thread-id"), "01JABCDEF");
    ok_str(jt(m, "aps.mutable-content"), "1");
    ok_str(jt(m, "aps.sound"), "default");
    ok_str(jt(m, "cr.sid"), "01JABCDEF");
    ok_str(jt(m, "cr.seq"), "7");
    ok(jtype(m, "cr.seq") == MSGPACK_OBJECT_POSITIVE_INTEGER);
    ok_str(jt(m, "cr.k"), "approval.request");
    ok_str(jt(m, "cr.host"), "h-laptop");
    ok_str(jt(m, "cr.id"), "1700000000000-0");
    ok(jtype(m, "cr.e") == -1);
    relay_push_req_free(&r);

    /* the sandbox host; a configured URL wins */
    d = apns_dev(1);
    ok(relay_apns_request(&r, &n, &d, "", "com.example.corral", "jwt") == 0);
    ok_str(r.url, "https://api.sandbox.push.apple.com/3/device/" APNS_TOKEN);
    relay_push_req_free(&r);
    ok(relay_apns_request(&r, &n, &d, "http://127.0.0.1:8443/", "com.example.corral", "jwt") == 0);
    ok_str(r.url, "http://127.0.0.1:8443/3/device/" APNS_TOKEN);
    relay_push_req_free(&r);

    /* JSON escaping of everything a peer chose */
    snprintf(n.title, sizeof(n.title), "q\"uote\\back\nline\x01");
    snprintf(n.body, sizeof(n.body), "tab\there </script> \xe2\x9c\x93");
    n.category = NULL;
    ok(relay_apns_request(&r, &n, &d, NULL, "com.example.corral", "jwt") == 0);
    m = parse_json(r.body.base, r.body.len);
    ok_str(jt(m, "aps.alert.title"), "q\"uote\\back\nline\x01");
    ok_str(jt(m, "aps.alert.body"), "tab\there </script> \xe2\x9c\x93");
    ok(jtype(m, "aps.category") == -1);
    relay_push_req_free(&r);

    /* errors */
    ok(relay_apns_request(&r, &n, &d, NULL, "", "jwt") == CR_ECONFIG);
    ok(relay_apns_request(&r, &n, &d, NULL, "com.example.corral", NULL) == CR_ECONFIG);
    d.provider = RELAY_PUSH_FCM;
    ok(relay_apns_request(&r, &n, &d, NULL, "com.example.corral", "jwt") == CR_EBODY);
    d = apns_dev(0);
    snprintf(d.token, sizeof(d.token), "../../x");
    ok(relay_apns_request(&r, &n, &d, NULL, "com.example.corral", "jwt") == CR_EBODY);
    relay_push_req_free(&r);
}

static void test_apns_sealed_and_size(void)
{
    relay_push_note_t n;
    relay_push_device_t d = apns_dev(0);
    relay_push_req_t r;
    cr_span_t m;
    size_t len, elen;
    uint8_t *box = make_box(1500);
    char *env = sealed_event("question", box, 1500, &len), *e;

    /* a sealed box that fits travels as "e" */
    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", NULL, NOW) == 0);
    ok(relay_apns_request(&r, &n, &d, NULL, "com.example.corral", "jwt") == 0);
    okf(r.body.len <= 4096, "payload of %zu bytes", r.body.len);
    m = parse_json(r.body.base, r.body.len);
    ok_str(jt(m, "aps.alert.body"), "Open Corral to see the request");
    ok_str(jt(m, "aps.category"), "CORRAL_QUESTION");
    e = unb64(jt(m, "cr.e"), &elen);
    ok(e != NULL);
    ok_bytes(e, elen, box, 1500);
    free(e);
    relay_push_req_free(&r);
    free(env);
    free(box);

    /* one that does not is dropped; the fallback body stays */
    box = make_box(4000);
    env = sealed_event("question", box, 4000, &len);
    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", NULL, NOW) == 0);
    ok(relay_apns_request(&r, &n, &d, NULL, "com.example.corral", "jwt") == 0);
    okf(r.body.len <= 4096, "payload of %zu bytes", r.body.len);
    m = parse_json(r.body.base, r.body.len);
    ok(jtype(m, "cr.e") == -1);
    ok_str(jt(m, "aps.alert.body"), "Open Corral to see the request");
    ok_str(jt(m, "cr.sid"), "01JABCDEF");
    relay_push_req_free(&r);
    free(env);
    free(box);

    /* text whose escaping passes 4096 bytes: the body is shortened, the payload stays JSON */
    approval_note(&n);
    memset(n.title, 0x01, 191);
    n.title[191] = '\0';
    memset(n.body, 0x02, 511);
    n.body[511] = '\0';
    ok(relay_apns_request(&r, &n, &d, NULL, "com.example.corral", "jwt") == 0);
    okf(r.body.len <= 4096 && r.body.len > 3900, "payload of %zu bytes", r.body.len);
    m = parse_json(r.body.base, r.body.len);
    ok(m.len > 0);
    ok(ends_with(jt(m, "aps.alert.body"), "\x02\xe2\x80\xa6"));
    ok(strlen(jt(m, "aps.alert.title")) == 191);
    relay_push_req_free(&r);
}

/* The "iat" claim of a compact JWS, -1 when unreadable. */
static long long jwt_iat(const char *jwt)
{
    const char *d1 = strchr(jwt, '.'), *d2 = d1 != NULL ? strchr(d1 + 1, '.') : NULL;
    cr_buf_t c;
    cr_span_t m;
    long long iat = -1;
    if (d2 == NULL)
        return -1;
    cr_buf_init(&c, 4096);
    if (cr_base64url_decode(&c, d1 + 1, (size_t)(d2 - d1 - 1)) == 0) {
        m = parse_json(c.base, c.len);
        if (m.len > 0)
            iat = atoll(jt(m, "iat"));
    }
    cr_buf_free(&c);
    return iat;
}

static void test_apns_auth(void)
{
    relay_apns_auth_t a;
    const char *tok;
    char first[1024];
    int64_t t0 = NOW;

    ok(relay_apns_auth_init(&a, &apns_key, "", "TEAM123456") == CR_ECONFIG);
    relay_apns_auth_free(&a);
    ok(relay_apns_auth_init(&a, &apns_key, "KEY1234567", "TEAM123456") == 0);
    ok(relay_apns_auth_token(&a, t0, &tok) == 1);
    ok(tok != NULL && jwt_iat(tok) == t0);
    snprintf(first, sizeof(first), "%s", tok);
    /* reused for 40 minutes */
    ok(relay_apns_auth_token(&a, t0 + 60, &tok) == 0 && strcmp(tok, first) == 0);
    ok(relay_apns_auth_token(&a, t0 + 40 * 60 - 1, &tok) == 0 && strcmp(tok, first) == 0);
    /* then renewed */
    ok(relay_apns_auth_token(&a, t0 + 40 * 60, &tok) == 1 && strcmp(tok, first) != 0);
    ok(jwt_iat(tok) == t0 + 40 * 60);
    t0 += 40 * 60;
    snprintf(first, sizeof(first), "%s", tok);

    /* a refused token is renewed, but not more than once a minute */
    ok(relay_apns_auth_refused(&a, "ExpiredProviderToken") == 0);
    ok(relay_apns_auth_token(&a, t0 + 30, &tok) == 0 && strcmp(tok, first) == 0);
    ok(relay_apns_auth_token(&a, t0 + 60, &tok) == 1 && jwt_iat(tok) == t0 + 60);
    ok(relay_apns_auth_token(&a, t0 + 61, &tok) == 0); /* the new one is not stale */
    t0 += 60;

    /* InvalidProviderToken for two tokens in a row: a configuration error (counted once per token) */
    ok(relay_apns_auth_refused(&a, "InvalidProviderToken") == 0);
    ok(relay_apns_auth_refused(&a, "InvalidProviderToken") == 0); /* the same token failing another push */
    ok(relay_apns_auth_token(&a, t0 + 60, &tok) == 1);
    ok(relay_apns_auth_refused(&a, "InvalidProviderToken") == 1);
    relay_apns_auth_accepted(&a);
    ok(relay_apns_auth_token(&a, t0 + 120, &tok) == 1);
    ok(relay_apns_auth_refused(&a, "InvalidProviderToken") == 0);

    /* a clock that jumped back makes a new token rather than one from the future */
    ok(relay_apns_auth_token(&a, t0 + 180, &tok) == 1);
    ok(relay_apns_auth_token(&a, t0 + 100, &tok) == 1 && jwt_iat(tok) == t0 + 100);
    relay_apns_auth_free(&a);
    relay_apns_auth_free(&a); /* idempotent */
}

typedef struct st_case_t {
    long status;
    const char *body;
    int64_t retry_after_ms;
    relay_push_verdict_t verdict;
    const char *reason;
    int refresh;
    int64_t retry_ms;
    int64_t dead_ms;
} case_t;

static void run_cases(const char *who, void (*classify)(relay_push_outcome_t *, const relay_push_answer_t *),
                      const case_t *cases, size_t n)
{
    for (size_t i = 0; i < n; ++i) {
        const case_t *c = &cases[i];
        relay_push_answer_t ans = {.status = c->status, .error = c->status == 0 ? "Connection refused" : NULL,
                                   .body = c->body, .body_len = c->body != NULL ? strlen(c->body) : 0,
                                   .retry_after_ms = c->retry_after_ms};
        relay_push_outcome_t o;
        classify(&o, &ans);
        okf(o.verdict == c->verdict && strcmp(o.reason, c->reason) == 0 && o.refresh_auth == c->refresh &&
                o.retry_after_ms == c->retry_ms && o.dead_since_ms == c->dead_ms,
            "%s %ld %s: got verdict %d reason '%s' refresh %d retry %lld dead %lld", who, c->status,
            c->body != NULL ? c->body : "", (int)o.verdict, o.reason, o.refresh_auth, (long long)o.retry_after_ms,
            (long long)o.dead_since_ms);
    }
}

static void test_apns_classify(void)
{
    static const case_t cases[] = {
        {200, "", -1, RELAY_PUSH_SENT, "", 0, -1, 0},
        {200, NULL, 5000, RELAY_PUSH_SENT, "", 0, -1, 0},
        {410, "{\"reason\":\"Unregistered\",\"timestamp\":1699999999123}", -1, RELAY_PUSH_DEAD, "Unregistered", 0, -1,
         1699999999123},
        {410, "{\"reason\":\"ExpiredToken\"}", -1, RELAY_PUSH_DEAD, "ExpiredToken", 0, -1, 0},
        {400, "{\"reason\":\"BadDeviceToken\"}", -1, RELAY_PUSH_DEAD, "BadDeviceToken", 0, -1, 0},
        {400, "{\"reason\":\"DeviceTokenNotForTopic\"}", -1, RELAY_PUSH_DEAD, "DeviceTokenNotForTopic", 0, -1, 0},
        {400, "{\"reason\":\"BadCollapseId\"}", -1, RELAY_PUSH_FAILED, "BadCollapseId", 0, -1, 0},
        {400, "{\"reason\":\"BadTopic\"}", -1, RELAY_PUSH_FAILED, "BadTopic", 0, -1, 0},
        {400, "{\"reason\":\"TopicDisallowed\"}", -1, RELAY_PUSH_FAILED, "TopicDisallowed", 0, -1, 0},
        {400, "{\"reason\":\"MissingTopic\"}", -1, RELAY_PUSH_FAILED, "MissingTopic", 0, -1, 0},
        {400, "{\"reason\":\"BadPriority\"}", -1, RELAY_PUSH_FAILED, "BadPriority", 0, -1, 0},
        {400, "{\"reason\":\"PayloadEmpty\"}", -1, RELAY_PUSH_FAILED, "PayloadEmpty", 0, -1, 0},
        {403, "{\"reason\":\"ExpiredProviderToken\"}", -1, RELAY_PUSH_RETRY, "ExpiredProviderToken", 1, -1, 0},
        {403, "{\"reason\":\"InvalidProviderToken\"}", -1, RELAY_PUSH_RETRY, "InvalidProviderToken", 1, -1, 0},
        {403, "{\"reason\":\"MissingProviderToken\"}", -1, RELAY_PUSH_FAILED, "MissingProviderToken", 0, -1, 0},
        {403, "{\"reason\":\"BadCertificateEnvironment\"}", -1, RELAY_PUSH_FAILED, "BadCertificateEnvironment", 0, -1, 0},
        {404, "{\"reason\":\"BadPath\"}", -1, RELAY_PUSH_FAILED, "BadPath", 0, -1, 0},
        {405, "{\"reason\":\"MethodNotAllowed\"}", -1, RELAY_PUSH_FAILED, "MethodNotAllowed", 0, -1, 0},
        {413, "{\"reason\":\"PayloadTooLarge\"}", -1, RELAY_PUSH_FAILED, "PayloadTooLarge", 0, -1, 0},
        {429, "{\"reason\":\"TooManyRequests\"}", 30000, RELAY_PUSH_RETRY, "TooManyRequests", 0, 30000, 0},
        {429, "{\"reason\":\"TooManyProviderTokenUpdates\"}", -1, RELAY_PUSH_RETRY, "TooManyProviderTokenUpdates", 0, -1, 0},
        {500, "{\"reason\":\"InternalServerError\"}", -1, RELAY_PUSH_RETRY, "InternalServerError", 0, -1, 0},
        {503, "{\"reason\":\"ServiceUnavailable\"}", 120000, RELAY_PUSH_RETRY, "ServiceUnavailable", 0, 120000, 0},
        {503, "{\"reason\":\"Shutdown\"}", -1, RELAY_PUSH_RETRY, "Shutdown", 0, -1, 0},
        {502, "<html><body>Bad Gateway</body></html>", -1, RELAY_PUSH_RETRY, "http_502", 0, -1, 0},
        {0, NULL, -1, RELAY_PUSH_RETRY, "transport", 0, -1, 0},
        {301, "", -1, RELAY_PUSH_FAILED, "http_301", 0, -1, 0},
    };
    run_cases("apns", relay_apns_classify, cases, sizeof(cases) / sizeof(cases[0]));
}

/* ---- FCM ---------------------------------------------------------------------------------------------------------- */

static relay_service_account_t sa;

static void make_service_account(void)
{
    EVP_PKEY *rsa = EVP_RSA_gen(2048);
    BIO *bio = BIO_new(BIO_s_mem());
    char *pem, *json;
    cr_buf_t j;
    long n;
    ok(rsa != NULL && PEM_write_bio_PrivateKey(bio, rsa, NULL, NULL, 0, NULL, NULL) == 1);
    n = BIO_get_mem_data(bio, &pem);
    cr_buf_init(&j, 1 << 16);
    cr_buf_appendf(&j, "{\"type\":\"service_account\",\"project_id\":\"corral-test\",\"private_key_id\":\"kid-1\","
                       "\"client_email\":\"relay@corral-test.iam.gserviceaccount.com\",\"token_uri\":"
                       "\"https://oauth2.googleapis.com/token\",\"private_key\":\"");
    for (long i = 0; i < n; ++i)
        if (pem[i] == '\n')
            cr_buf_append(&j, "\\n", 2);
        else
            cr_buf_append(&j, &pem[i], 1);
    cr_buf_append(&j, "\"}", 3);
    json = j.base;
    ok(relay_service_account_load_json(&sa, json, strlen(json), "test") == 0);
    cr_buf_free(&j);
    BIO_free(bio);
    EVP_PKEY_free(rsa);
}

static void test_fcm_token(void)
{
    relay_push_req_t r;
    relay_fcm_token_t t = {0};
    relay_push_outcome_t o;
    const char *prefix = "grant_type=urn%3Aietf%3Aparams%3Aoauth%3Agrant-type%3Ajwt-bearer&assertion=";
    char *body, *d1, *d2;
    cr_buf_t claims;
    cr_span_t m;

    ok(relay_fcm_token_request(&r, &sa, NULL, NOW) == 0);
    ok_str(r.url, "https://oauth2.googleapis.com/token");
    ok_str(r.method, "POST");
    ok_str(hdr(&r, "content-type"), "application/x-www-form-urlencoded");
    body = cr_strndup(r.body.base, r.body.len);
    ok(strncmp(body, prefix, strlen(prefix)) == 0);
    d1 = strchr(body + strlen(prefix), '.');
    d2 = d1 != NULL ? strchr(d1 + 1, '.') : NULL;
    ok(d2 != NULL && strchr(d2 + 1, '&') == NULL);
    cr_buf_init(&claims, 4096);
    ok(d2 != NULL && cr_base64url_decode(&claims, d1 + 1, (size_t)(d2 - d1 - 1)) == 0);
    m = parse_json(claims.base, claims.len);
    ok_str(jt(m, "iss"), "relay@corral-test.iam.gserviceaccount.com");
    ok_str(jt(m, "aud"), "https://oauth2.googleapis.com/token");
    ok_str(jt(m, "scope"), "https://www.googleapis.com/auth/firebase.messaging");
    ok_str(jt(m, "iat"), "1700000000");
    ok_str(jt(m, "exp"), "1700003600");
    cr_buf_free(&claims);
    free(body);
    relay_push_req_free(&r);
    ok(relay_fcm_token_request(&r, &sa, "http://127.0.0.1:9000/token", NOW) == 0);
    ok_str(r.url, "http://127.0.0.1:9000/token");
    relay_push_req_free(&r);

    /* Google's answer */
    {
        const char *a = "{\n  \"access_token\": \"ya29.c.b0Aaekm1K-token\",\n  \"expires_in\": 3599,\n  \"token_type\": "
                        "\"Bearer\"\n}";
        relay_push_answer_t ans = {.status = 200, .body = a, .body_len = strlen(a), .retry_after_ms = -1};
        ok(!relay_fcm_token_valid(&t, NOW));
        ok(relay_fcm_token_parse(&t, &o, &ans, NOW) == 0 && o.verdict == RELAY_PUSH_SENT);
        ok_str(t.access_token, "ya29.c.b0Aaekm1K-token");
        ok(t.valid_until_s == NOW + 3599 - 300);
        ok(relay_fcm_token_valid(&t, NOW + 3298));
        ok(!relay_fcm_token_valid(&t, NOW + 3299));
    }
    {
        const char *a = "{\"access_token\":\"ya29.short\",\"expires_in\":10,\"token_type\":\"Bearer\"}";
        relay_push_answer_t ans = {.status = 200, .body = a, .body_len = strlen(a), .retry_after_ms = -1};
        ok(relay_fcm_token_parse(&t, &o, &ans, NOW) == 0);
        ok_str(t.access_token, "ya29.short");
        ok(t.valid_until_s == NOW + 5); /* a short-lived token is used for half its life */
    }
    /* failures leave the old token alone */
    {
        static const struct {
            long status;
            const char *body;
            int64_t retry;
            relay_push_verdict_t verdict;
            const char *reason;
        } bad[] = {
            {400, "{\"error\":\"invalid_grant\",\"error_description\":\"Invalid JWT Signature.\"}", -1, RELAY_PUSH_FAILED,
             "invalid_grant"},
            {401, "{\"error\":\"invalid_client\",\"error_description\":\"The OAuth client was not found.\"}", -1,
             RELAY_PUSH_FAILED, "invalid_client"},
            {400, "{\"error\":\"invalid_scope\"}", -1, RELAY_PUSH_FAILED, "invalid_scope"},
            {403, "forbidden", -1, RELAY_PUSH_FAILED, "http_403"},
            {503, "{\"error\":\"internal_failure\"}", 7000, RELAY_PUSH_RETRY, "http_503"},
            {429, "", -1, RELAY_PUSH_RETRY, "http_429"},
            {0, NULL, -1, RELAY_PUSH_RETRY, "transport"},
            {200, "<html>", -1, RELAY_PUSH_FAILED, "bad_token_answer"},
            {200, "{\"expires_in\":3599,\"token_type\":\"Bearer\"}", -1, RELAY_PUSH_FAILED, "bad_token_answer"},
            {200, "{\"access_token\":\"x\",\"token_type\":\"Bearer\"}", -1, RELAY_PUSH_FAILED, "bad_token_answer"},
            {200, "{\"access_token\":\"x\",\"expires_in\":3599,\"token_type\":\"mac\"}", -1, RELAY_PUSH_FAILED,
             "bad_token_answer"},
            {200, "{\"access_token\":\"a b\",\"expires_in\":3599}", -1, RELAY_PUSH_FAILED, "bad_token_answer"},
            {200, "{\"access_token\":\"x\",\"expires_in\":-5}", -1, RELAY_PUSH_FAILED, "bad_token_answer"},
        };
        for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); ++i) {
            relay_push_answer_t ans = {.status = bad[i].status, .body = bad[i].body,
                                       .body_len = bad[i].body != NULL ? strlen(bad[i].body) : 0,
                                       .retry_after_ms = bad[i].retry};
            int rc = relay_fcm_token_parse(&t, &o, &ans, NOW);
            okf(rc == -1 && o.verdict == bad[i].verdict && strcmp(o.reason, bad[i].reason) == 0 &&
                    o.retry_after_ms == (bad[i].verdict == RELAY_PUSH_RETRY && bad[i].status != 0 ? bad[i].retry : -1),
                "%ld %s: rc %d verdict %d reason %s", bad[i].status, bad[i].body != NULL ? bad[i].body : "", rc,
                (int)o.verdict, o.reason);
        }
        ok_str(t.access_token, "ya29.short");
    }
    relay_fcm_token_free(&t);
    ok(t.access_token == NULL && !relay_fcm_token_valid(&t, NOW));
    relay_fcm_token_free(&t);
}

static relay_push_device_t fcm_dev(void)
{
    relay_push_device_t d;
    memset(&d, 0, sizeof(d));
    snprintf(d.id, sizeof(d.id), "dev-fcm");
    d.provider = RELAY_PUSH_FCM;
    snprintf(d.token, sizeof(d.token), "dGhpcyBpcyBh:APA91bHPRgkF3JUikC4ENAHEeMrd41Zxv3hVZjC9KtT8OvPVGJ");
    return d;
}

/* Every value of the map at path is a string. */
static int all_strings(cr_span_t m, const char *path)
{
    cr_span_t v;
    cr_mp_item_t it, val;
    const char *p, *end;
    if (cr_test_mp_path(m.base, m.len, path, &v) != 0)
        return 0;
    end = v.base + v.len;
    p = v.base + cr_mp_read(v.base, end, &it);
    if (it.type != MSGPACK_OBJECT_MAP)
        return 0;
    for (uint32_t i = 0; i < it.count; ++i) {
        p = cr_mp_skip(p, end); /* the key */
        if (cr_mp_read(p, end, &val) == 0 || val.type != MSGPACK_OBJECT_STR)
            return 0;
        p = cr_mp_skip(p, end);
    }
    return 1;
}

static void test_fcm_request(void)
{
    relay_push_note_t n;
    relay_push_device_t d = fcm_dev();
    relay_push_req_t r;
    cr_span_t m;
    size_t len, elen;
    uint8_t *box;
    char *env, *e;

    approval_note(&n);
    ok(relay_fcm_request(&r, &n, &d, NULL, "corral-test", "ya29.c.token", NOW) == 0);
    ok_str(r.url, "https://fcm.googleapis.com/v1/projects/corral-test/messages:send");
    ok_str(r.method, "POST");
    ok_str(hdr(&r, "authorization"), "Bearer ya29.c.token");
    ok_str(hdr(&r, "content-type"), "application/json; charset=utf-8");
    ok(r.body.len <= 4096);
    ok(memmem(r.body.base, r.body.len, "SECRET", 6) == NULL);
    m = parse_json(r.body.base, r.body.len);
    ok_str(jt(m, "message.token"), d.token);
    ok_str(jt(m, "message.data.title"), "feature-auth-agent needs approval");
    ok_str(jt(m, "message.data.body"), "Bash: npm install stripe");
    ok_str(jt(m, "message.data.sid"), "01JABCDEF");
    ok_str(jt(m, "message.data.seq"), "7");
    ok_str(jt(m, "message.data.k"), "approval.request");
    ok_str(jt(m, "message.data.host"), "h-laptop");
    ok_str(jt(m, "message.data.id"), "1700000000000-0");
    ok(jtype(m, "message.data.e") == -1);
    ok(all_strings(m, "message.data"));
    ok_str(jt(m, "message.android.priority"), "high");
    ok_str(jt(m, "message.android.collapse_key"), "01JABCDEF");
    ok_str(jt(m, "message.android.ttl"), "3600s");
    relay_push_req_free(&r);

    /* a retry later: the ttl is what is left; a configured URL */
    ok(relay_fcm_request(&r, &n, &d, "http://127.0.0.1:9001/", "corral-test", "ya29.c.token", NOW + 100) == 0);
    ok_str(r.url, "http://127.0.0.1:9001/v1/projects/corral-test/messages:send");
    m = parse_json(r.body.base, r.body.len);
    ok_str(jt(m, "message.android.ttl"), "3500s");
    relay_push_req_free(&r);

    /* sealed: "e" when the message stays within 4096 bytes */
    box = make_box(1800);
    env = sealed_event("approval.request", box, 1800, &len);
    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", NULL, NOW) == 0);
    ok(relay_fcm_request(&r, &n, &d, NULL, "corral-test", "ya29.c.token", NOW) == 0);
    okf(r.body.len <= 4096, "message of %zu bytes", r.body.len);
    m = parse_json(r.body.base, r.body.len);
    e = unb64(jt(m, "message.data.e"), &elen);
    ok(e != NULL);
    ok_bytes(e, elen, box, 1800);
    ok_str(jt(m, "message.data.body"), "Open Corral to see the request");
    ok(all_strings(m, "message.data"));
    free(e);
    relay_push_req_free(&r);
    free(env);
    free(box);
    box = make_box(3200);
    env = sealed_event("approval.request", box, 3200, &len);
    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", NULL, NOW) == 0);
    ok(relay_fcm_request(&r, &n, &d, NULL, "corral-test", "ya29.c.token", NOW) == 0);
    okf(r.body.len <= 4096, "message of %zu bytes", r.body.len);
    m = parse_json(r.body.base, r.body.len);
    ok(jtype(m, "message.data.e") == -1);
    ok_str(jt(m, "message.data.body"), "Open Corral to see the request");
    relay_push_req_free(&r);
    free(env);
    free(box);

    /* errors */
    ok(relay_fcm_request(&r, &n, &d, NULL, "", "tok", NOW) == CR_ECONFIG);
    ok(relay_fcm_request(&r, &n, &d, NULL, "a/../b", "tok", NOW) == CR_ECONFIG);
    ok(relay_fcm_request(&r, &n, &d, NULL, "corral-test", "", NOW) == CR_ECONFIG);
    ok(relay_fcm_request(&r, &n, &d, NULL, "corral-test", "tok\r\nx: y", NOW) == CR_ECONFIG);
    d.provider = RELAY_PUSH_WEBPUSH;
    ok(relay_fcm_request(&r, &n, &d, NULL, "corral-test", "tok", NOW) == CR_EBODY);
    relay_push_req_free(&r);
}

#define GERR(code, msg, status) "{\"error\":{\"code\":" #code ",\"message\":\"" msg "\",\"status\":\"" status "\""
#define FCMERR(c) ",\"details\":[{\"@type\":\"type.googleapis.com/google.firebase.fcm.v1.FcmError\",\"errorCode\":\"" c "\"}]}}"

static void test_fcm_classify(void)
{
    static const case_t cases[] = {
        {200, "{\"name\":\"projects/corral-test/messages/0:1700000000000%2a1b2c3d\"}", -1, RELAY_PUSH_SENT, "", 0, -1, 0},
        {404, GERR(404, "Requested entity was not found.", "NOT_FOUND") FCMERR("UNREGISTERED"), -1, RELAY_PUSH_DEAD,
         "UNREGISTERED", 0, -1, 0},
        {400, GERR(400, "The registration token is not a valid FCM registration token", "INVALID_ARGUMENT")
                  FCMERR("INVALID_ARGUMENT"),
         -1, RELAY_PUSH_DEAD, "INVALID_ARGUMENT", 0, -1, 0},
        {400, GERR(400, "Message is too big", "INVALID_ARGUMENT") FCMERR("INVALID_ARGUMENT"), -1, RELAY_PUSH_FAILED,
         "INVALID_ARGUMENT", 0, -1, 0},
        {400,
         GERR(400, "Invalid JSON payload received. Unknown name \\\"priority\\\" at 'message': Cannot find field.",
              "INVALID_ARGUMENT") ",\"details\":[{\"@type\":\"type.googleapis.com/google.rpc.BadRequest\",\"fieldViolations\":"
                                  "[{\"field\":\"message\",\"description\":\"Invalid JSON payload received.\"}]}]}}",
         -1, RELAY_PUSH_FAILED, "INVALID_ARGUMENT", 0, -1, 0},
        {401,
         GERR(401, "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other "
                   "valid authentication credential.",
              "UNAUTHENTICATED") "}}",
         -1, RELAY_PUSH_RETRY, "UNAUTHENTICATED", 1, -1, 0},
        {401, GERR(401, "Auth error from APNS or Web Push Service", "UNAUTHENTICATED") FCMERR("THIRD_PARTY_AUTH_ERROR"), -1,
         RELAY_PUSH_FAILED, "THIRD_PARTY_AUTH_ERROR", 0, -1, 0},
        {403, GERR(403, "SenderId mismatch", "PERMISSION_DENIED") FCMERR("SENDER_ID_MISMATCH"), -1, RELAY_PUSH_FAILED,
         "SENDER_ID_MISMATCH", 0, -1, 0},
        {403,
         GERR(403, "Permission 'cloudmessaging.messages.create' denied on resource.", "PERMISSION_DENIED") "}}", -1,
         RELAY_PUSH_FAILED, "PERMISSION_DENIED", 0, -1, 0},
        {404, GERR(404, "Requested entity was not found.", "NOT_FOUND") "}}", -1, RELAY_PUSH_FAILED, "NOT_FOUND", 0, -1, 0},
        {429, GERR(429, "Quota exceeded.", "RESOURCE_EXHAUSTED") FCMERR("QUOTA_EXCEEDED"), 60000, RELAY_PUSH_RETRY,
         "QUOTA_EXCEEDED", 0, 60000, 0},
        {500, GERR(500, "Internal error encountered.", "INTERNAL") FCMERR("INTERNAL"), -1, RELAY_PUSH_RETRY, "INTERNAL", 0,
         -1, 0},
        {503, GERR(503, "The service is currently unavailable.", "UNAVAILABLE") FCMERR("UNAVAILABLE"), 30000,
         RELAY_PUSH_RETRY, "UNAVAILABLE", 0, 30000, 0},
        {502, "<!DOCTYPE html><title>Error 502 (Server Error)!!1</title>", -1, RELAY_PUSH_RETRY, "http_502", 0, -1, 0},
        {0, NULL, -1, RELAY_PUSH_RETRY, "transport", 0, -1, 0},
    };
    run_cases("fcm", relay_fcm_classify, cases, sizeof(cases) / sizeof(cases[0]));
}

/* ---- Web Push ----------------------------------------------------------------------------------------------------- */

static relay_vapid_t vapid;



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

static void test_webpush_topic(void)
{
    char a[RELAY_WEBPUSH_TOPIC_LEN + 1], b[RELAY_WEBPUSH_TOPIC_LEN + 1], want[64];
    unsigned char h[32];
    unsigned int hl = 0;
    relay_webpush_topic(a, "01JABCDEF");
    ok(strlen(a) == 32 && strspn(a, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") == 32);
    ok(EVP_Digest("01JABCDEF", 9, h, &hl, EVP_sha256(), NULL) == 1 && hl == 32);
    cr_base64url_encode(want, h, 24);
    ok_str(a, want);
    relay_webpush_topic(b, "01JABCDEG");
    ok(strcmp(a, b) != 0);
}

static void test_webpush_request(void)
{
    relay_push_note_t n;
    relay_push_device_t d;
    relay_push_req_t r;
    uint8_t priv[32];
    char *plain = NULL, topic[40], *env, *e;
    size_t plainlen = 0, len, elen;
    uint8_t *box;
    cr_span_t m;

    memset(&d, 0, sizeof(d));
    snprintf(d.id, sizeof(d.id), "dev-web");
    d.provider = RELAY_PUSH_WEBPUSH;
    snprintf(d.endpoint, sizeof(d.endpoint), "https://updates.push.services.mozilla.com/wpush/v2/gAAAAABk-abc");
    ua_keypair(priv, d.p256dh);
    RAND_bytes(d.auth, sizeof(d.auth));

    approval_note(&n);
    ok(relay_webpush_request(&r, &n, &d, &vapid, "mailto:ops@example.com", NOW) == 0);
    ok_str(r.url, d.endpoint);
    ok_str(r.method, "POST");
    ok_str(hdr(&r, "ttl"), "3600");
    ok_str(hdr(&r, "urgency"), "high");
    relay_webpush_topic(topic, "01JABCDEF");
    ok_str(hdr(&r, "topic"), topic);
    ok_str(hdr(&r, "content-encoding"), "aes128gcm");
    ok_str(hdr(&r, "content-type"), "application/octet-stream");
    ok(hdr(&r, "authorization") != NULL && strncmp(hdr(&r, "authorization"), "vapid t=", 8) == 0 &&
       ends_with(hdr(&r, "authorization"), vapid.public_b64));
    ok(r.body.len > 86 && r.body.len <= 4096);
    ok(cr_test_webpush_decrypt(tmp, priv, d.auth, r.body.base, r.body.len, &plain, &plainlen) == 0);
    ok(memmem(plain, plainlen, "SECRET", 6) == NULL);
    m = parse_json(plain, plainlen);
    ok(m.len > 0);
    ok_str(jt(m, "title"), "feature-auth-agent needs approval");
    ok_str(jt(m, "body"), "Bash: npm install stripe");
    ok_str(jt(m, "sid"), "01JABCDEF");
    ok_str(jt(m, "seq"), "7");
    ok_str(jt(m, "k"), "approval.request");
    ok_str(jt(m, "host"), "h-laptop");
    ok_str(jt(m, "id"), "1700000000000-0");
    ok_str(jt(m, "category"), "CORRAL_APPROVAL");
    ok(jtype(m, "e") == -1);
    free(plain);
    relay_push_req_free(&r);

    /* later: less TTL; expired: 0 */
    ok(relay_webpush_request(&r, &n, &d, &vapid, "mailto:ops@example.com", NOW + 3000) == 0);
    ok_str(hdr(&r, "ttl"), "600");
    relay_push_req_free(&r);
    ok(relay_webpush_request(&r, &n, &d, &vapid, "mailto:ops@example.com", NOW + 4000) == 0);
    ok_str(hdr(&r, "ttl"), "0");
    relay_push_req_free(&r);

    /* sealed: "e" when it fits the 3993-byte plaintext, else dropped */
    box = make_box(2000);
    env = sealed_event("diff.ready", box, 2000, &len);
    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", NULL, NOW) == 0);
    ok(relay_webpush_request(&r, &n, &d, &vapid, "mailto:ops@example.com", NOW) == 0);
    ok(cr_test_webpush_decrypt(tmp, priv, d.auth, r.body.base, r.body.len, &plain, &plainlen) == 0);
    m = parse_json(plain, plainlen);
    e = unb64(jt(m, "e"), &elen);
    ok(e != NULL);
    ok_bytes(e, elen, box, 2000);
    ok_str(jt(m, "body"), "Open Corral to see the request");
    ok_str(jt(m, "title"), "feature-auth-agent has changes to review");
    free(e);
    free(plain);
    relay_push_req_free(&r);
    free(env);
    free(box);
    box = make_box(3000);
    env = sealed_event("diff.ready", box, 3000, &len);
    ok(relay_push_note_from_event(&n, env, len, "1-0", "h1", NULL, NOW) == 0);
    ok(relay_webpush_request(&r, &n, &d, &vapid, "mailto:ops@example.com", NOW) == 0);
    ok(cr_test_webpush_decrypt(tmp, priv, d.auth, r.body.base, r.body.len, &plain, &plainlen) == 0);
    okf(plainlen <= 3993, "plaintext of %zu bytes", plainlen);
    m = parse_json(plain, plainlen);
    ok(m.len > 0 && jtype(m, "e") == -1);
    ok_str(jt(m, "body"), "Open Corral to see the request");
    free(plain);
    relay_push_req_free(&r);
    free(env);
    free(box);

    /* errors */
    ok(relay_webpush_request(&r, &n, &d, &vapid, "ops@example.com", NOW) == CR_ECONFIG);
    snprintf(d.endpoint, sizeof(d.endpoint), "ftp://push.example.net/x");
    ok(relay_webpush_request(&r, &n, &d, &vapid, "mailto:ops@example.com", NOW) == CR_EBODY);
    d.provider = RELAY_PUSH_APNS;
    ok(relay_webpush_request(&r, &n, &d, &vapid, "mailto:ops@example.com", NOW) == CR_EBODY);
    relay_push_req_free(&r);
}

static void test_webpush_classify(void)
{
    static const case_t cases[] = {
        {201, "", -1, RELAY_PUSH_SENT, "", 0, -1, 0},
        {200, "", -1, RELAY_PUSH_SENT, "", 0, -1, 0},
        {202, "", -1, RELAY_PUSH_SENT, "", 0, -1, 0},
        {404, "{\"code\":404,\"errno\":102,\"error\":\"Not Found\",\"message\":\"Request did not validate invalid token\"}",
         -1, RELAY_PUSH_DEAD, "http_404", 0, -1, 0},
        {410, "{\"code\":410,\"errno\":106,\"error\":\"Gone\",\"message\":\"Request did not validate No such subscription\"}",
         -1, RELAY_PUSH_DEAD, "http_410", 0, -1, 0},
        {429, "", 10000, RELAY_PUSH_RETRY, "http_429", 0, 10000, 0},
        {500, "", -1, RELAY_PUSH_RETRY, "http_500", 0, -1, 0},
        {503, "", 2000, RELAY_PUSH_RETRY, "http_503", 0, 2000, 0},
        {413, "{\"code\":413,\"errno\":104,\"error\":\"Payload Too Large\"}", -1, RELAY_PUSH_FAILED, "http_413", 0, -1, 0},
        {400, "", -1, RELAY_PUSH_FAILED, "http_400", 0, -1, 0},
        {401, "{\"code\":401,\"errno\":109,\"error\":\"Unauthorized\",\"message\":\"Request did not validate missing "
              "authorization header\"}",
         -1, RELAY_PUSH_FAILED, "vapid_refused_401", 0, -1, 0},
        {403, "", -1, RELAY_PUSH_FAILED, "vapid_refused_403", 0, -1, 0},
        {0, NULL, -1, RELAY_PUSH_RETRY, "transport", 0, -1, 0},
    };
    run_cases("webpush", relay_webpush_classify, cases, sizeof(cases) / sizeof(cases[0]));
}

int main(void)
{
    if (cr_test_make_temp_dir(tmp, sizeof(tmp), "push_providers", 200) != 0 || cr_test_slot_add(tmp, 0) < 0)
        return 1;
    okf(cr_test_find_program(python, sizeof(python), "python3") == 0, "python3 not found");
    {
        EVP_PKEY *k = EVP_EC_gen("P-256");
        ok(k != NULL && relay_jwt_key_from_pkey(&apns_key, k, "apns test key") == 0);
    }
    make_service_account();
    ok(relay_vapid_load_or_create(&vapid, tmp) == 0);

    subtest("note kinds", test_note_kinds);
    subtest("note truncation", test_note_truncation);
    subtest("note sealed and errors", test_note_sealed_and_errors);
    subtest("devices and filters", test_devices);
    subtest("request struct", test_req_struct);
    subtest("apns request", test_apns_request);
    subtest("apns sealed and size", test_apns_sealed_and_size);
    subtest("apns provider token", test_apns_auth);
    subtest("apns classify", test_apns_classify);
    subtest("fcm token", test_fcm_token);
    subtest("fcm request", test_fcm_request);
    subtest("fcm classify", test_fcm_classify);
    subtest("webpush topic", test_webpush_topic);
    subtest("webpush request", test_webpush_request);
    subtest("webpush classify", test_webpush_classify);

    relay_jwt_key_free(&apns_key);
    relay_service_account_free(&sa);
    relay_vapid_free(&vapid);
    cr_buf_free(&jbuf);
    return done_testing();
}
