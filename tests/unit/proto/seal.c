/* seal.c — unit tests of proto/src/seal.c: round trips, the AD rule, and clean failure on every kind of tampering. */
#define _GNU_SOURCE /* memmem */
#include "corral/error.h"
#include "corral/seal.h"
#include "harness.h"
#include <sodium.h>
#include <string.h>

static uint8_t key[32], other_key[32];

static cr_span_t S(const char *s)
{
    return (cr_span_t){s, strlen(s)};
}

static void test_roundtrip(void)
{
    static const uint8_t ad[] = "ad";
    cr_buf_t box, pt;
    cr_buf_init(&box, 1 << 20);
    cr_buf_init(&pt, 1 << 20);
    for (size_t n = 0; n < 2000; n += 333) {
        uint8_t msg[2000];
        for (size_t i = 0; i < n; ++i)
            msg[i] = (uint8_t)(i * 7);
        cr_buf_reset(&box);
        cr_buf_reset(&pt);
        ok(cr_seal(&box, key, ad, 2, msg, n, NULL) == 0 && box.len == n + CR_SEAL_OVERHEAD);
        ok((uint8_t)box.base[0] == CR_SEAL_VERSION);
        ok(cr_open(&pt, key, ad, 2, box.base, box.len) == 0);
        ok_bytes(pt.base, pt.len, msg, n);
    }
    /* two seals of the same message differ (random nonces) */
    cr_buf_t a, b;
    cr_buf_init(&a, 1024);
    cr_buf_init(&b, 1024);
    cr_seal(&a, key, ad, 2, "same", 4, NULL);
    cr_seal(&b, key, ad, 2, "same", 4, NULL);
    ok(a.len == b.len && memcmp(a.base, b.base, a.len) != 0);
    cr_buf_free(&a);
    cr_buf_free(&b);
    cr_buf_free(&box);
    cr_buf_free(&pt);
}

static void test_tampering(void)
{
    static const uint8_t ad[] = "corral1";
    cr_buf_t box, pt;
    const char *msg = "{\"rid\":\"toolu_01\",\"summary\":\"rm -rf /\"}";
    cr_buf_init(&box, 4096);
    cr_buf_init(&pt, 4096);
    ok(cr_seal(&box, key, ad, 7, msg, strlen(msg), NULL) == 0);
    cr_buf_append(&pt, "keep", 4);
    ok(cr_open(&pt, other_key, ad, 7, box.base, box.len) == CR_ESEAL && pt.len == 4);
    ok(strcmp(cr_error_last()->field, "b") == 0);
    ok(cr_open(&pt, key, ad, 6, box.base, box.len) == CR_ESEAL && pt.len == 4);
    ok(cr_open(&pt, key, (const uint8_t *)"corral2", 7, box.base, box.len) == CR_ESEAL && pt.len == 4);
    /* one changed bit anywhere: version, nonce, ciphertext, tag */
    int all = 1;
    for (size_t i = 0; i < box.len; ++i) {
        box.base[i] ^= 0x01;
        if (cr_open(&pt, key, ad, 7, box.base, box.len) != CR_ESEAL || pt.len != 4)
            all = 0;
        box.base[i] ^= 0x01;
    }
    ok(all);
    /* every truncation */
    all = 1;
    for (size_t n = 0; n < box.len; ++n)
        if (cr_open(&pt, key, ad, 7, box.base, n) != CR_ESEAL || pt.len != 4)
            all = 0;
    ok(all);
    ok(cr_open(&pt, key, ad, 7, box.base, box.len) == 0 && pt.len == 4 + strlen(msg));
    cr_buf_free(&box);
    cr_buf_free(&pt);
}

static void test_ad(void)
{
    uint8_t ad[CR_SEAL_AD_MAX];
    static const char want_ev[] = "corral1\0e\0team-1\0S1\0" "42\0approval.request";
    static const char want_act[] = "corral1\0a\0team-1\0S1\0A9\0approve";
    size_t n = cr_seal_ad_event(ad, "team-1", S("S1"), 42, S("approval.request"));
    ok_bytes(ad, n, want_ev, sizeof(want_ev) - 1);
    n = cr_seal_ad_action(ad, "team-1", S("S1"), S("A9"), S("approve"));
    ok_bytes(ad, n, want_act, sizeof(want_act) - 1);
    /* ids are bounded, so the AD always fits; an absurd team is refused rather than cut */
    char longteam[300];
    memset(longteam, 't', sizeof(longteam) - 1);
    longteam[299] = '\0';
    ok(cr_seal_ad_event(ad, longteam, S("S1"), 1, S("question")) == 0);
}

static void test_envelopes(void)
{
    static const char body[] = "\x83\xa3rid\xa1r\xa4tool\xa4" "Bash\xa7summary\xa2ls";
    cr_event_t ev = {.k = S("approval.request"), .sid = S("S1"), .seq = 7, .ts = 1, .pri = 2, .idn = S("agent-1")};
    cr_buf_t bin, env, opened;
    cr_event_t got;
    cr_buf_init(&bin, 4096);
    cr_buf_init(&env, 4096);
    cr_buf_init(&opened, 4096);
    ok(cr_event_seal_body(&bin, key, "team-1", &ev, body, sizeof(body) - 1, NULL) == 0);
    ev.b.raw = (cr_span_t){bin.base, bin.len};
    ok(cr_event_encode(&env, &ev) == 0);
    ok(cr_event_decode(&got, env.base, env.len, NULL) == 0 && got.b.sealed);
    /* the relay sees the envelope, not the body */
    ok(memmem(env.base, env.len, "Bash", 4) == NULL && memmem(env.base, env.len, "agent-1", 7) != NULL);
    ok(cr_event_open_body(&opened, key, "team-1", &got, NULL) == 0);
    ok_bytes(opened.base, opened.len, body, sizeof(body) - 1);
    /* moved to another team, session or seq, it does not open */
    cr_buf_reset(&opened);
    ok(cr_event_open_body(&opened, key, "team-2", &got, NULL) == CR_ESEAL && opened.len == 0);
    got.seq = 8;
    ok(cr_event_open_body(&opened, key, "team-1", &got, NULL) == CR_ESEAL);
    got.seq = 7;
    got.sid = S("S2");
    ok(cr_event_open_body(&opened, key, "team-1", &got, NULL) == CR_ESEAL);

    /* a sealed body that opens but is not a valid body for its kind is refused */
    static const char bad[] = "\x81\xa4tool\xa4" "Bash";
    cr_buf_reset(&bin);
    cr_buf_reset(&env);
    ev.b.raw.len = 0;
    ok(cr_event_seal_body(&bin, key, "team-1", &ev, bad, sizeof(bad) - 1, NULL) == 0);
    ev.b.raw = (cr_span_t){bin.base, bin.len};
    ok(cr_event_encode(&env, &ev) == 0 && cr_event_decode(&got, env.base, env.len, NULL) == 0);
    cr_buf_reset(&opened);
    ok(cr_event_open_body(&opened, key, "team-1", &got, NULL) == CR_EBODY && opened.len == 0);
    ok(strcmp(cr_error_last()->field, "b.rid") == 0);

    /* actions */
    static const char reply[] = "\x81\xa4text\xa3yes";
    cr_action_t act = {.k = S("reply"), .sid = S("S1"), .aid = S("01JD0000000000000000000001"), .ts = 2};
    cr_action_t agot;
    cr_buf_reset(&bin);
    cr_buf_reset(&env);
    ok(cr_action_seal_body(&bin, key, "team-1", &act, reply, sizeof(reply) - 1, NULL) == 0);
    act.b.raw = (cr_span_t){bin.base, bin.len};
    ok(cr_action_encode(&env, &act) == 0 && cr_action_decode(&agot, env.base, env.len, NULL) == 0);
    cr_buf_reset(&opened);
    ok(cr_action_open_body(&opened, key, "team-1", &agot, NULL) == 0);
    ok_bytes(opened.base, opened.len, reply, sizeof(reply) - 1);
    agot.aid = S("01JD0000000000000000000002");
    cr_buf_reset(&opened);
    ok(cr_action_open_body(&opened, key, "team-1", &agot, NULL) == CR_ESEAL);
    cr_buf_free(&bin);
    cr_buf_free(&env);
    cr_buf_free(&opened);
}

int main(void)
{
    if (sodium_init() < 0)
        return 1;
    randombytes_buf(key, sizeof(key));
    memcpy(other_key, key, sizeof(key));
    other_key[31] ^= 0x80;
    subtest("round trip", test_roundtrip);
    subtest("tampering", test_tampering);
    subtest("associated data", test_ad);
    subtest("envelopes", test_envelopes);
    return done_testing();
}
