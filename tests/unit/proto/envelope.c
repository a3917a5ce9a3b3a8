/* envelope.c — unit tests of proto/src/envelope.c: exact bytes, every validation error, limits, batches. */
#include "corral/envelope.h"
#include "corral/error.h"
#include "corral/json.h"
#include "harness.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static cr_span_t S(const char *s)
{
    return (cr_span_t){s, strlen(s)};
}

/* JSON text -> msgpack in a static buffer (tests only). */
static cr_buf_t jbuf;
static cr_span_t J(const char *json)
{
    cr_buf_t b;
    cr_limits_t lax = cr_limits_default; /* test inputs may break the protocol's limits on purpose */
    lax.max_depth = 60;
    lax.max_string = lax.max_bin = 8 << 20;
    lax.max_elements = 1 << 20;
    cr_buf_init(&b, 8 << 20);
    if (cr_json_to_msgpack(&b, json, strlen(json), &lax) != 0) {
        fprintf(stderr, "bad test JSON: %s (%s)\n", json, cr_error_last()->message);
        abort();
    }
    cr_buf_free(&jbuf);
    jbuf = b;
    return (cr_span_t){b.base, b.len};
}

static int decode_json_event(const char *json, cr_event_t *ev)
{
    cr_span_t m = J(json);
    return cr_event_decode(ev, m.base, m.len, NULL);
}

static int expect_error(int rc, int code, const char *field)
{
    return rc == code && strcmp(cr_error_last()->field, field) == 0;
}

#define EXPECT_EV_ERR(json, code, fld)                                                                                \
    do {                                                                                                                \
        cr_event_t ev_;                                                                                                 \
        int rc_ = decode_json_event((json), &ev_);                                                                      \
        okf(expect_error(rc_, (code), (fld)), "%.200s: got %s field '%s' (%s), want %s field '%s'", (json),             \
            cr_err_code(rc_), cr_error_last()->field, cr_error_last()->message, cr_err_code(code), (fld));          \
    } while (0)

#define EXPECT_ACT_ERR(json, code, fld)                                                                               \
    do {                                                                                                                \
        cr_action_t a_;                                                                                                 \
        cr_span_t m_ = J(json);                                                                                         \
        int rc_ = cr_action_decode(&a_, m_.base, m_.len, NULL);                                                         \
        okf(expect_error(rc_, (code), (fld)), "%.200s: got %s field '%s' (%s), want %s field '%s'", (json),             \
            cr_err_code(rc_), cr_error_last()->field, cr_error_last()->message, cr_err_code(code), (fld));          \
    } while (0)

static void test_exact_bytes(void)
{
    static const unsigned char want[] = {
        0x87, 0xa1, 'v', 0x01, 0xa1, 'k', 0xad, 'a', 'g', 'e', 'n', 't', '.', 'm', 'e', 's', 's', 'a', 'g', 'e',
        0xa3, 's', 'i', 'd', 0xa2, 's', '1', 0xa3, 's', 'e', 'q', 0xcd, 0x01, 0x2c, 0xa2, 't', 's', 0x00,
        0xa3, 'p', 'r', 'i', 0x01, 0xa1, 'b', 0x81, 0xa4, 't', 'e', 'x', 't', 0xa2, 'h', 'i'};
    static const unsigned char body[] = {0x81, 0xa4, 't', 'e', 'x', 't', 0xa2, 'h', 'i'};
    cr_event_t ev = {.k = S("agent.message"), .sid = S("s1"), .seq = 300, .ts = 0, .pri = 1,
                     .b = {.raw = {(const char *)body, sizeof(body)}}};
    cr_event_t got;
    cr_buf_t out;
    cr_buf_init(&out, 1 << 20);
    ok(cr_event_encode(&out, &ev) == 0);
    ok_bytes(out.base, out.len, want, sizeof(want));
    ok(cr_event_decode(&got, out.base, out.len, NULL) == 0);
    ok(got.kind == CR_EV_AGENT_MESSAGE && got.seq == 300 && got.pri == 1 && got.ts == 0 && got.v == 1);
    ok(cr_span_eq(got.sid, "s1", 2) && got.idn.len == 0 && !got.b.sealed);
    ok_bytes(got.b.raw.base, got.b.raw.len, body, sizeof(body));
    /* zero copy: spans point into the input */
    ok(got.sid.base >= out.base && got.sid.base < out.base + out.len);

    /* with idn, the key sits between ts and pri */
    cr_buf_reset(&out);
    ev.idn = S("feature-auth-agent");
    ok(cr_event_encode(&out, &ev) == 0);
    ok(cr_event_decode(&got, out.base, out.len, NULL) == 0 && cr_span_eq(got.idn, "feature-auth-agent", 18));
    ok((unsigned char)out.base[0] == 0x88);

    /* an encode that does not fit the buffer's limit leaves it unchanged */
    cr_buf_t small;
    cr_buf_init(&small, 16);
    ok(cr_buf_append(&small, "xy", 2) == 0);
    ok(cr_event_encode(&small, &ev) == CR_ETOOLARGE && small.len == 2);
    cr_buf_free(&small);

    /* encode refuses what decode would refuse */
    ev.seq = 0;
    ok(cr_event_encode(&out, &ev) == CR_EENVELOPE && strcmp(cr_error_last()->field, "seq") == 0);
    ev.seq = 1;
    ev.sid = S("a b");
    ok(cr_event_encode(&out, &ev) == CR_EENVELOPE && strcmp(cr_error_last()->field, "sid") == 0);
    cr_buf_free(&out);
}

static void test_every_kind(void)
{
    static const char *const events[] = {
        "{\"v\":1,\"k\":\"session.started\",\"sid\":\"S\",\"seq\":1,\"ts\":5,\"pri\":1,\"b\":{\"name\":\"auth\",\"agent\":\"claude\","
        "\"branch\":\"corral/auth\",\"base\":\"main\",\"prompt\":\"add login\"}}",
        "{\"v\":1,\"k\":\"session.state\",\"sid\":\"S\",\"seq\":2,\"ts\":5,\"pri\":1,\"b\":{\"state\":\"waiting\",\"reason\":\"x\"}}",
        "{\"v\":1,\"k\":\"agent.message\",\"sid\":\"S\",\"seq\":3,\"ts\":5,\"pri\":1,\"b\":{\"text\":\"done\"}}",
        "{\"v\":1,\"k\":\"agent.tool\",\"sid\":\"S\",\"seq\":4,\"ts\":5,\"pri\":1,\"b\":{\"tool\":\"Bash\",\"summary\":\"ls\"}}",
        "{\"v\":1,\"k\":\"approval.request\",\"sid\":\"S\",\"seq\":5,\"ts\":5,\"idn\":\"feature-auth-agent\",\"pri\":2,"
        "\"b\":{\"rid\":\"toolu_01\",\"tool\":\"Bash\",\"summary\":\"npm install stripe\",\"input\":{\"command\":\"npm install stripe\"}}}",
        "{\"v\":1,\"k\":\"question\",\"sid\":\"S\",\"seq\":6,\"ts\":5,\"pri\":2,\"b\":{\"rid\":\"q1\",\"text\":\"Which?\",\"options\":[\"a\",\"b\"]}}",
        "{\"v\":1,\"k\":\"diff.ready\",\"sid\":\"S\",\"seq\":7,\"ts\":5,\"pri\":2,\"b\":{\"base\":\"abc\",\"head\":\"def\",\"files\":"
        "[{\"path\":\"a.c\",\"status\":\"modified\",\"add\":3,\"del\":1}],\"add\":3,\"del\":1,\"patch\":\"--- a\\n+++ b\\n\",\"truncated\":false}}",
        "{\"v\":1,\"k\":\"action.applied\",\"sid\":\"S\",\"seq\":8,\"ts\":5,\"pri\":1,\"b\":{\"aid\":\"A1\",\"ok\":true,\"detail\":\"merged\",\"commit\":\"abc\"}}",
        "{\"v\":1,\"k\":\"inbox.message\",\"sid\":\"S\",\"seq\":9,\"ts\":5,\"pri\":1,\"b\":{\"channel\":\"email\",\"from\":\"a@b.c\",\"subject\":\"Your code\",\"otp\":\"123456\"}}",
        "{\"v\":1,\"k\":\"session.done\",\"sid\":\"S\",\"seq\":10,\"ts\":5,\"pri\":1,\"b\":{\"summary\":\"ok\",\"turns\":3,\"cost_usd\":0.42}}",
        /* a kind this version does not know is accepted (forward compatibility) */
        "{\"v\":1,\"k\":\"agent.thinking\",\"sid\":\"S\",\"seq\":11,\"ts\":5,\"pri\":0,\"b\":{\"anything\":[1,2,3]}}",
    };
    static const char *const actions[] = {
        "{\"v\":1,\"k\":\"approve\",\"sid\":\"S\",\"aid\":\"A1\",\"ref\":5,\"ts\":9,\"b\":{\"rid\":\"toolu_01\"}}",
        "{\"v\":1,\"k\":\"reject\",\"sid\":\"S\",\"aid\":\"A2\",\"ts\":9,\"b\":{\"reason\":\"no\",\"discard\":true}}",
        "{\"v\":1,\"k\":\"reply\",\"sid\":\"S\",\"aid\":\"A3\",\"ts\":9,\"b\":{\"text\":\"use b\"}}",
        "{\"v\":1,\"k\":\"reply\",\"sid\":\"S\",\"aid\":\"A4\",\"ts\":9,\"b\":{\"transcript\":\"approve\",\"audio\":{\"$bin\":\"UklGRg==\"},\"mime\":\"audio/wav\"}}",
        "{\"v\":1,\"k\":\"task\",\"sid\":\"S\",\"aid\":\"A5\",\"ts\":9,\"by\":\"dev1\",\"b\":{\"text\":\"add tests\"}}",
        "{\"v\":1,\"k\":\"interrupt\",\"sid\":\"S\",\"aid\":\"A6\",\"ts\":9}",
        "{\"v\":1,\"k\":\"suspend\",\"sid\":\"S\",\"aid\":\"A7\",\"ts\":9,\"b\":{}}",
        "{\"v\":1,\"k\":\"resume\",\"sid\":\"S\",\"aid\":\"A8\",\"ts\":9,\"b\":{}}",
    };
    for (size_t i = 0; i < sizeof(events) / sizeof(events[0]); ++i) {
        cr_event_t ev;
        int rc = decode_json_event(events[i], &ev);
        okf(rc == 0, "%s: %s", events[i], cr_error_last()->message);
        if (rc == 0) {
            cr_buf_t out;
            cr_buf_init(&out, 1 << 20);
            ok(cr_event_encode(&out, &ev) == 0);
            okf(out.len == jbuf.len && memcmp(out.base, jbuf.base, out.len) == 0, "re-encoding %s gives the same bytes", events[i]);
            cr_buf_free(&out);
        }
    }
    for (size_t i = 0; i < sizeof(actions) / sizeof(actions[0]); ++i) {
        cr_action_t a;
        cr_span_t m = J(actions[i]);
        int rc = cr_action_decode(&a, m.base, m.len, NULL);
        okf(rc == 0, "%s: %s", actions[i], cr_error_last()->message);
        if (rc == 0 && strstr(actions[i], "\"b\"") != NULL) {
            cr_buf_t out;
            cr_buf_init(&out, 1 << 20);
            ok(cr_action_encode(&out, &a) == 0);
            okf(out.len == m.len && memcmp(out.base, m.base, m.len) == 0, "re-encoding %s gives the same bytes", actions[i]);
            cr_buf_free(&out);
        }
    }
    cr_event_t ev;
    ok(decode_json_event(events[4], &ev) == 0 && ev.kind == CR_EV_APPROVAL_REQUEST && ev.pri == 2 &&
       cr_span_eq(ev.idn, "feature-auth-agent", 18));
    ok(decode_json_event(events[10], &ev) == 0 && ev.kind == CR_KIND_UNKNOWN && cr_span_eq(ev.k, "agent.thinking", 14));
    ok(strcmp(cr_kind_name(CR_ACT_RESUME), "resume") == 0 && cr_kind_parse("diff.ready", 10) == CR_EV_DIFF_READY);
    /* the full diff: the diff action and its diff.full answer */
    ok(cr_kind_parse("diff", 4) == CR_ACT_DIFF && cr_kind_is_action(CR_ACT_DIFF) && cr_kind_parse("diff.full", 9) == CR_EV_DIFF_FULL &&
       !cr_kind_is_action(CR_EV_DIFF_FULL));
    {
        cr_event_t fe;
        cr_action_t fa;
        cr_span_t m = J("{\"v\":1,\"k\":\"diff.full\",\"sid\":\"S\",\"seq\":3,\"ts\":5,\"pri\":1,"
                        "\"b\":{\"head\":\"corral/x\",\"part\":1,\"parts\":2,\"patch\":\"diff --git a/x b/x\\n\"}}");
        ok(cr_event_decode(&fe, m.base, m.len, NULL) == 0 && fe.kind == CR_EV_DIFF_FULL);
        m = J("{\"v\":1,\"k\":\"diff\",\"sid\":\"S\",\"aid\":\"A1\",\"ts\":5}");
        ok(cr_action_decode(&fa, m.base, m.len, NULL) == 0 && fa.kind == CR_ACT_DIFF);
    }
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"diff.full\",\"sid\":\"S\",\"seq\":3,\"ts\":5,\"pri\":1,\"b\":{\"head\":\"h\",\"part\":1,"
                  "\"patch\":\"p\"}}", CR_EBODY, "b.parts");
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"action.applied\",\"sid\":\"S\",\"seq\":3,\"ts\":5,\"pri\":1,\"b\":{\"aid\":\"A\",\"ok\":false,"
                  "\"heard\":7}}", CR_EBODY, "b.heard");
}

static void test_envelope_errors(void)
{
    EXPECT_EV_ERR("[1,2]", CR_EENVELOPE, "");
    EXPECT_EV_ERR("{\"k\":\"agent.message\",\"sid\":\"S\",\"seq\":1,\"ts\":5,\"pri\":1,\"b\":{\"text\":\"x\"}}", CR_EENVELOPE, "v");
    EXPECT_EV_ERR("{\"v\":2,\"k\":\"agent.message\",\"sid\":\"S\",\"seq\":1,\"ts\":5,\"pri\":1}", CR_EVERSION, "v");
    EXPECT_EV_ERR("{\"v\":1,\"sid\":\"S\",\"seq\":1,\"ts\":5,\"pri\":1}", CR_EENVELOPE, "k");
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"Agent Message\",\"sid\":\"S\",\"seq\":1,\"ts\":5,\"pri\":1}", CR_EENVELOPE, "k");
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"agent.message\",\"seq\":1,\"ts\":5,\"pri\":1}", CR_EENVELOPE, "sid");
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"agent.message\",\"sid\":\"a/b\",\"seq\":1,\"ts\":5,\"pri\":1}", CR_EENVELOPE, "sid");
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"agent.message\",\"sid\":\"\",\"seq\":1,\"ts\":5,\"pri\":1}", CR_EENVELOPE, "sid");
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"agent.message\",\"sid\":\"S\",\"ts\":5,\"pri\":1}", CR_EENVELOPE, "seq");
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"agent.message\",\"sid\":\"S\",\"seq\":0,\"ts\":5,\"pri\":1}", CR_EENVELOPE, "seq");
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"agent.message\",\"sid\":\"S\",\"seq\":-3,\"ts\":5,\"pri\":1}", CR_EENVELOPE, "seq");
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"agent.message\",\"sid\":\"S\",\"seq\":\"1\",\"ts\":5,\"pri\":1}", CR_EENVELOPE, "seq");
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"agent.message\",\"sid\":\"S\",\"seq\":1.5,\"ts\":5,\"pri\":1}", CR_EENVELOPE, "seq");
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"agent.message\",\"sid\":\"S\",\"seq\":1,\"pri\":1}", CR_EENVELOPE, "ts");
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"agent.message\",\"sid\":\"S\",\"seq\":1,\"ts\":5}", CR_EENVELOPE, "pri");
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"agent.message\",\"sid\":\"S\",\"seq\":1,\"ts\":5,\"pri\":3}", CR_EENVELOPE, "pri");
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"agent.message\",\"sid\":\"S\",\"seq\":1,\"ts\":5,\"pri\":1,\"idn\":7}", CR_EENVELOPE, "idn");
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"agent.message\",\"sid\":\"S\",\"sid\":\"T\",\"seq\":1,\"ts\":5,\"pri\":1}", CR_EENVELOPE, "sid");
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"agent.message\",\"sid\":\"S\",\"seq\":1,\"ts\":5,\"pri\":1,\"b\":\"text\"}", CR_EENVELOPE, "b");
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"agent.message\",\"sid\":\"S\",\"seq\":1,\"ts\":5,\"pri\":1,\"b\":{\"$bin\":\"AQID\"}}", CR_EENVELOPE, "b");
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"approve\",\"sid\":\"S\",\"seq\":1,\"ts\":5,\"pri\":1}", CR_EENVELOPE, "k");
    /* the message names the problem */
    EXPECT_EV_ERR("{\"v\":1,\"k\":\"agent.message\",\"sid\":\"S\",\"seq\":0,\"ts\":5,\"pri\":1}", CR_EENVELOPE, "seq");
    ok_str(cr_error_last()->message, "seq must be a positive integer, got 0");
    char json[256];
    cr_error_json(json, sizeof(json));
    ok_str(json, "{\"error\":{\"code\":\"bad_envelope\",\"message\":\"seq must be a positive integer, got 0\",\"field\":\"seq\"}}");

    /* unknown keys are ignored */
    cr_event_t ev;
    ok(decode_json_event("{\"zz\":[1,{\"q\":2}],\"v\":1,\"k\":\"agent.message\",\"sid\":\"S\",\"seq\":1,\"ts\":5,\"pri\":1,"
                         "\"b\":{\"text\":\"x\",\"extra\":null}}", &ev) == 0);

    EXPECT_ACT_ERR("{\"v\":1,\"k\":\"explode\",\"sid\":\"S\",\"aid\":\"A\",\"ts\":1}", CR_EKIND, "k");
    EXPECT_ACT_ERR("{\"v\":1,\"k\":\"diff.ready\",\"sid\":\"S\",\"aid\":\"A\",\"ts\":1}", CR_EKIND, "k");
    EXPECT_ACT_ERR("{\"v\":1,\"k\":\"approve\",\"sid\":\"S\",\"ts\":1}", CR_EENVELOPE, "aid");
    EXPECT_ACT_ERR("{\"v\":1,\"k\":\"approve\",\"sid\":\"S\",\"aid\":\"A\",\"ref\":0,\"ts\":1}", CR_EENVELOPE, "ref");
    EXPECT_ACT_ERR("{\"v\":1,\"k\":\"approve\",\"sid\":\"S\",\"aid\":\"A\",\"ts\":1,\"by\":\"x y\"}", CR_EENVELOPE, "by");
    EXPECT_ACT_ERR("{\"v\":1,\"k\":\"reply\",\"sid\":\"S\",\"aid\":\"A\",\"ts\":1,\"b\":{\"rid\":\"r\"}}", CR_EBODY, "b");
    EXPECT_ACT_ERR("{\"v\":1,\"k\":\"reply\",\"sid\":\"S\",\"aid\":\"A\",\"ts\":1,\"b\":{\"audio\":\"not bin\"}}", CR_EBODY, "b.audio");
    EXPECT_ACT_ERR("{\"v\":1,\"k\":\"task\",\"sid\":\"S\",\"aid\":\"A\",\"ts\":1,\"b\":{}}", CR_EBODY, "b.text");
    EXPECT_ACT_ERR("{\"v\":1,\"k\":\"reject\",\"sid\":\"S\",\"aid\":\"A\",\"ts\":1,\"b\":{\"discard\":\"yes\"}}", CR_EBODY, "b.discard");
}

static void test_body_errors(void)
{
#define EV(kind, body) "{\"v\":1,\"k\":\"" kind "\",\"sid\":\"S\",\"seq\":1,\"ts\":5,\"pri\":2,\"b\":" body "}"
    EXPECT_EV_ERR(EV("approval.request", "{\"tool\":\"Bash\",\"summary\":\"x\"}"), CR_EBODY, "b.rid");
    EXPECT_EV_ERR(EV("approval.request", "{\"rid\":\"r\",\"tool\":3,\"summary\":\"x\"}"), CR_EBODY, "b.tool");
    EXPECT_EV_ERR(EV("session.state", "{\"state\":\"sleeping\"}"), CR_EBODY, "b.state");
    ok_str(cr_error_last()->message, "b.state must be one of running, waiting, idle, suspended, done, failed");
    {
        cr_event_t sev;
        ok(decode_json_event(EV("session.state", "{\"state\":\"running\",\"needs\":\"question\",\"rid\":\"q7\"}"), &sev) == 0);
        ok(decode_json_event(EV("session.state", "{\"state\":\"idle\",\"needs\":\"\"}"), &sev) == 0);
    }
    EXPECT_EV_ERR(EV("session.state", "{\"state\":\"waiting\",\"needs\":\"coffee\"}"), CR_EBODY, "b.needs");
    EXPECT_EV_ERR(EV("session.state", "{\"state\":\"waiting\",\"needs\":\"question\",\"rid\":\"a b\"}"), CR_EBODY, "b.rid");
    EXPECT_EV_ERR(EV("question", "{\"rid\":\"q\",\"text\":\"?\",\"options\":[\"a\",2]}"), CR_EBODY, "b.options.1");
    EXPECT_EV_ERR(EV("diff.ready", "{\"base\":\"a\",\"head\":\"b\",\"files\":[{\"path\":\"x\",\"status\":\"weird\",\"add\":1,\"del\":0}],"
                     "\"add\":1,\"del\":0,\"patch\":\"\",\"truncated\":false}"), CR_EBODY, "b.files.0.status");
    EXPECT_EV_ERR(EV("diff.ready", "{\"base\":\"a\",\"head\":\"b\",\"files\":[{\"path\":\"x\",\"status\":\"added\",\"add\":1}],"
                     "\"add\":1,\"del\":0,\"patch\":\"\",\"truncated\":false}"), CR_EBODY, "b.files.0.del");
    EXPECT_EV_ERR(EV("diff.ready", "{\"base\":\"a\",\"head\":\"b\",\"files\":[],\"add\":1,\"del\":0,\"patch\":\"\"}"), CR_EBODY,
                  "b.truncated");
    EXPECT_EV_ERR(EV("inbox.message", "{\"channel\":\"fax\",\"from\":\"x\"}"), CR_EBODY, "b.channel");
    EXPECT_EV_ERR(EV("session.done", "{\"summary\":\"s\",\"cost_usd\":\"free\"}"), CR_EBODY, "b.cost_usd");
    EXPECT_EV_ERR(EV("action.applied", "{\"aid\":\"A\",\"ok\":1}"), CR_EBODY, "b.ok");
    EXPECT_EV_ERR(EV("agent.message", "{\"text\":\"a\",\"text\":\"b\"}"), CR_EBODY, "b.text");

    /* agent.message text is capped at 4 KiB */
    char *big = malloc(8192);
    memset(big, 0, 8192);
    strcpy(big, "{\"v\":1,\"k\":\"agent.message\",\"sid\":\"S\",\"seq\":1,\"ts\":5,\"pri\":1,\"b\":{\"text\":\"");
    size_t n = strlen(big);
    memset(big + n, 'x', 4097);
    strcpy(big + n + 4097, "\"}}");
    EXPECT_EV_ERR(big, CR_ETOOLARGE, "b.text");
    big[n + 4096] = '"', big[n + 4097] = '}', big[n + 4098] = '}', big[n + 4099] = '\0';
    cr_event_t ev;
    ok(decode_json_event(big, &ev) == 0);
    free(big);
#undef EV
}

/* nested arrays: depth 1 is the envelope map */
static void test_limits(void)
{
    cr_buf_t b;
    cr_event_t ev;
    cr_buf_init(&b, 8 << 20);
    static const char head[] = "{\"v\":1,\"k\":\"agent.thinking\",\"sid\":\"S\",\"seq\":1,\"ts\":5,\"pri\":1,\"b\":{\"x\":";
    for (int depth = 15; depth <= 17; ++depth) {
        char json[512];
        size_t n = 0;
        n += (size_t)snprintf(json + n, sizeof(json) - n, "%s", head);
        for (int i = 0; i < depth - 2; ++i)
            json[n++] = '[';
        for (int i = 0; i < depth - 2; ++i)
            json[n++] = ']';
        strcpy(json + n, "}}");
        int rc = decode_json_event(json, &ev);
        if (depth <= 16)
            okf(rc == 0, "depth %d decodes: %s", depth, cr_error_last()->message);
        else
            okf(rc == CR_ETOODEEP && strncmp(cr_error_last()->field, "b.x", 3) == 0, "depth %d is too deep: %s (%s)", depth,
                cr_err_code(rc), cr_error_last()->field);
    }

    /* a string over 64 KiB, an envelope over 256 KiB */
    {
        size_t n = 70 * 1024;
        char *json = malloc(n + 256);
        int m = snprintf(json, 256, "%s\"", head);
        memset(json + m, 'a', n);
        strcpy(json + m + n, "\"}}");
        EXPECT_EV_ERR(json, CR_ETOOLARGE, "b.x");
        free(json);
    }
    {
        cr_buf_reset(&b);
        cr_buf_appendf(&b, "%s[", head);
        for (int i = 0; i < 5; ++i) {
            cr_buf_appendf(&b, "%s\"", i ? "," : "");
            for (int j = 0; j < 60 * 1024; ++j)
                cr_buf_append(&b, "z", 1);
            cr_buf_append(&b, "\"", 1);
        }
        cr_buf_appendf(&b, "]}}");
        cr_buf_append(&b, "", 1);
        EXPECT_EV_ERR(b.base, CR_ETOOLARGE, "b.x.4"); /* the value that crosses the limit */
        /* the same envelope is fine under a larger configured limit */
        cr_limits_t lim = cr_limits_default;
        lim.max_envelope = 1 << 20;
        cr_span_t m = J(b.base);
        ok(cr_event_decode(&ev, m.base, m.len, &lim) == 0);
    }
    /* an action may be larger only by its audio */
    {
        size_t alen = 1024 * 1024;
        cr_buf_reset(&b);
        cr_buf_appendf(&b, "{\"v\":1,\"k\":\"reply\",\"sid\":\"S\",\"aid\":\"A\",\"ts\":1,\"b\":{\"transcript\":\"yes\",\"audio\":{\"$bin\":\"");
        for (size_t i = 0; i < alen / 3; ++i)
            cr_buf_append(&b, "AAAA", 4);
        cr_buf_appendf(&b, "\"}}}");
        cr_buf_append(&b, "", 1);
        cr_action_t a;
        cr_span_t m = J(b.base);
        okf(cr_action_decode(&a, m.base, m.len, NULL) == 0, "1 MiB of audio: %s", cr_error_last()->message);
    }
    /* truncated at every length: never a crash, always "truncated" */
    {
        cr_span_t m = J("{\"v\":1,\"k\":\"approval.request\",\"sid\":\"S\",\"seq\":1,\"ts\":1764000000000,\"pri\":2,"
                        "\"b\":{\"rid\":\"r\",\"tool\":\"Bash\",\"summary\":\"ls\",\"input\":{\"a\":[1.5,-7,null,true]}}}");
        char *copy = malloc(m.len);
        memcpy(copy, m.base, m.len);
        int all = 1;
        for (size_t cut = 0; cut < m.len; ++cut) {
            int rc = cr_event_decode(&ev, copy, cut, NULL);
            if (rc != CR_ETRUNCATED) {
                note("cut at %zu gives %s", cut, cr_err_code(rc));
                all = 0;
            }
        }
        ok(all);
        ok(cr_event_decode(&ev, copy, m.len, NULL) == 0);
        free(copy);
        cr_buf_reset(&b);
        cr_buf_append(&b, m.base, m.len);
        cr_buf_append(&b, "\xc0", 1);
        ok(cr_event_decode(&ev, b.base, b.len, NULL) == CR_ETRAILING);
    }
    /* bytes that are not what the protocol uses */
    {
        static const char ext[] = "\x81\xa1v\xd4\x01\x02";
        static const char never[] = "\x81\xa1v\xc1";
        static const char intkey[] = "\x81\x01\x02";
        static const char badutf8[] = "\x81\xa1k\xa2\xc3\x28";
        ok(cr_event_decode(&ev, ext, sizeof(ext) - 1, NULL) == CR_EMSGPACK && strcmp(cr_error_last()->field, "v") == 0);
        ok(cr_event_decode(&ev, never, sizeof(never) - 1, NULL) == CR_EMSGPACK);
        ok(cr_event_decode(&ev, intkey, sizeof(intkey) - 1, NULL) == CR_EMSGPACK);
        ok(cr_event_decode(&ev, badutf8, sizeof(badutf8) - 1, NULL) == CR_EENCODING && strcmp(cr_error_last()->field, "k") == 0);
        /* a header declaring four billion entries in six bytes */
        static const char huge[] = "\xdf\xff\xff\xff\xff\xa1";
        ok(cr_event_decode(&ev, huge, sizeof(huge) - 1, NULL) == CR_ETOOLARGE);
        static const char hugestr[] = "\xdb\x7f\xff\xff\xff";
        ok(cr_event_decode(&ev, hugestr, sizeof(hugestr) - 1, NULL) == CR_ETOOLARGE);
        ok(cr_event_decode(&ev, "", 0, NULL) == CR_ETRUNCATED);
    }
    cr_buf_free(&b);
}

static void test_batches(void)
{
    cr_buf_t b;
    cr_batch_t it;
    cr_span_t one;
    cr_event_t ev;
    cr_buf_init(&b, 8 << 20);
    cr_buf_appendf(&b, "[");
    for (int i = 1; i <= 512; ++i)
        cr_buf_appendf(&b, "%s{\"v\":1,\"k\":\"agent.message\",\"sid\":\"S\",\"seq\":%d,\"ts\":5,\"pri\":1,\"b\":{\"text\":\"m%d\"}}",
                       i > 1 ? "," : "", i, i);
    cr_buf_appendf(&b, "]");
    cr_buf_append(&b, "", 1);
    cr_span_t m = J(b.base);
    ok(cr_batch_open(&it, m.base, m.len, NULL) == 0 && it.count == 512);
    int n = 0, good = 1;
    while (cr_batch_next(&it, &one)) {
        ++n;
        if (cr_event_decode(&ev, one.base, one.len, NULL) != 0 || ev.seq != (uint64_t)n)
            good = 0;
    }
    ok(n == 512 && good);

    /* 513 envelopes is one too many */
    cr_buf_reset(&b);
    cr_buf_appendf(&b, "[");
    for (int i = 1; i <= 513; ++i)
        cr_buf_appendf(&b, "%s{}", i > 1 ? "," : "");
    cr_buf_appendf(&b, "]");
    cr_buf_append(&b, "", 1);
    m = J(b.base);
    ok(cr_batch_open(&it, m.base, m.len, NULL) == CR_ETOOLARGE);

    /* a broken envelope refuses the whole batch */
    m = J("[{\"v\":1},{\"v\":2}]");
    char *copy = malloc(m.len);
    memcpy(copy, m.base, m.len);
    ok(cr_batch_open(&it, copy, m.len - 1, NULL) == CR_ETRUNCATED && strcmp(cr_error_last()->field, "1") == 0);
    ok(cr_batch_open(&it, copy, m.len, NULL) == 0);
    free(copy);
    ok(cr_batch_open(&it, "\x81\xa1v\x01", 4, NULL) == CR_EMSGPACK);
    cr_limits_t lim = cr_limits_default;
    lim.max_batch_bytes = 8;
    m = J("[{\"v\":1},{\"v\":2}]");
    ok(cr_batch_open(&it, m.base, m.len, &lim) == CR_ETOOLARGE);
    cr_buf_free(&b);
}

int main(void)
{
    subtest("exact bytes", test_exact_bytes);
    subtest("every kind", test_every_kind);
    subtest("envelope errors", test_envelope_errors);
    subtest("body errors", test_body_errors);
    subtest("limits", test_limits);
    subtest("batches", test_batches);
    cr_buf_free(&jbuf);
    return done_testing();
}
