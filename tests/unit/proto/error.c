/* tests/unit/proto/error.c — error code names, the thread-local last error and its JSON document. */
#include "corral/error.h"
#include "harness.h"
#include <pthread.h>
#include <string.h>

static void test_codes(void)
{
    static const struct {
        int code;
        const char *name;
    } codes[] = {
        {CR_OK, "ok"},
        {CR_ERR, "internal"},
        {CR_ENOMEM, "no_memory"},
        {CR_EAGAIN, "incomplete"},
        {CR_ETRUNCATED, "truncated"},
        {CR_EMSGPACK, "bad_msgpack"},
        {CR_ETOOLARGE, "too_large"},
        {CR_ETOODEEP, "too_deep"},
        {CR_EENVELOPE, "bad_envelope"},
        {CR_EBODY, "bad_body"},
        {CR_EVERSION, "unsupported_version"},
        {CR_EKIND, "unknown_kind"},
        {CR_ESEAL, "bad_seal"},
        {CR_EJSON, "bad_json"},
        {CR_EENCODING, "bad_encoding"},
        {CR_ECONFIG, "bad_config"},
        {CR_ETRAILING, "trailing_bytes"},
        {CR_ENOTFOUND, "not_found"},
        {CR_EIO, "io"},
        {CR_EEXISTS, "exists"},
        {CR_ECONFLICT, "conflict"},
        {CR_ENOTFF, "not_fast_forward"},
        {CR_EDIRTY, "dirty_worktree"},
        {CR_EBADNAME, "bad_name"},
    };
    for (size_t i = 0; i < sizeof(codes) / sizeof(codes[0]); ++i)
        ok_str(cr_err_code(codes[i].code), codes[i].name);
    /* The numbers are part of the protocol. */
    ok(CR_ERR == -1 && CR_ENOMEM == -2 && CR_EAGAIN == -3 && CR_ETRUNCATED == -4 && CR_EMSGPACK == -5);
    ok(CR_ETOOLARGE == -6 && CR_ETOODEEP == -7 && CR_EENVELOPE == -8 && CR_EBODY == -9 && CR_EVERSION == -10);
    ok(CR_EKIND == -11 && CR_ESEAL == -12 && CR_EJSON == -13 && CR_EENCODING == -14 && CR_ECONFIG == -15);
    ok(CR_ETRAILING == -16 && CR_ENOTFOUND == -17 && CR_EIO == -18);
    ok(CR_EEXISTS == -19 && CR_ECONFLICT == -20 && CR_ENOTFF == -21 && CR_EDIRTY == -22 && CR_EBADNAME == -23);
    /* Unknown numbers. */
    ok_str(cr_err_code(-24), "internal");
    ok_str(cr_err_code(-1000), "internal");
    ok_str(cr_err_code(7), "internal");
}

static void test_set_last_clear(void)
{
    const cr_error_t *e;
    ok(cr_error_set(CR_EENVELOPE, "seq", "seq must be a positive integer, got %d", -3) == CR_EENVELOPE);
    e = cr_error_last();
    ok(e->code == CR_EENVELOPE);
    ok_str(e->field, "seq");
    ok_str(e->message, "seq must be a positive integer, got -3");

    ok(cr_error_set(CR_EBODY, NULL, "no field") == CR_EBODY);
    ok(e == cr_error_last()); /* the same thread-local storage */
    ok(e->code == CR_EBODY);
    ok_str(e->field, "");
    ok_str(e->message, "no field");

    cr_error_clear();
    ok(e->code == CR_OK);
    ok_str(e->field, "");
    ok_str(e->message, "");

    /* Long messages and fields are cut, still NUL-terminated. */
    char longtext[600];
    memset(longtext, 'm', sizeof(longtext) - 1);
    longtext[sizeof(longtext) - 1] = '\0';
    cr_error_set(CR_ERR, longtext, "%s", longtext);
    ok(strlen(e->message) == sizeof(e->message) - 1);
    ok(strlen(e->field) == sizeof(e->field) - 1);
}

static void *other_thread(void *arg)
{
    const cr_error_t *e = cr_error_last();
    int *fresh = arg;
    *fresh = e->code == CR_OK && e->message[0] == '\0';
    cr_error_set(CR_EIO, "x", "from the other thread");
    return NULL;
}

static void test_thread_local(void)
{
    pthread_t t;
    int fresh = 0;
    cr_error_set(CR_ESEAL, "b", "main thread");
    pthread_create(&t, NULL, other_thread, &fresh);
    pthread_join(t, NULL);
    ok(fresh);
    ok(cr_error_last()->code == CR_ESEAL);
    ok_str(cr_error_last()->message, "main thread");
}

static void test_json(void)
{
    char out[512];
    size_t n;

    cr_error_set(CR_EENVELOPE, "seq", "seq must be a positive integer");
    n = cr_error_json(out, sizeof(out));
    ok_str(out, "{\"error\":{\"code\":\"bad_envelope\",\"message\":\"seq must be a positive integer\",\"field\":\"seq\"}}");
    ok(n == strlen(out));

    cr_error_set(CR_EJSON, NULL, "unexpected '}' at offset 3");
    n = cr_error_json(out, sizeof(out));
    ok_str(out, "{\"error\":{\"code\":\"bad_json\",\"message\":\"unexpected '}' at offset 3\"}}");
    ok(n == strlen(out));

    /* Quotes, backslashes and control characters are escaped, in the message and in the field. */
    cr_error_set(CR_EBODY, "b.files.2.\"path\"", "path \"a\\b\"\nis\tbad\x01");
    n = cr_error_json(out, sizeof(out));
    ok_str(out, "{\"error\":{\"code\":\"bad_body\",\"message\":\"path \\\"a\\\\b\\\"\\u000ais\\u0009bad\\u0001\","
                "\"field\":\"b.files.2.\\\"path\\\"\"}}");
    ok(n == strlen(out));

    /* UTF-8 passes through. */
    cr_error_set(CR_ECONFIG, "data_dir", "caf\xc3\xa9");
    cr_error_json(out, sizeof(out));
    ok_str(out, "{\"error\":{\"code\":\"bad_config\",\"message\":\"caf\xc3\xa9\",\"field\":\"data_dir\"}}");

    /* After a clear: code "ok", empty message. */
    cr_error_clear();
    cr_error_json(out, sizeof(out));
    ok_str(out, "{\"error\":{\"code\":\"ok\",\"message\":\"\"}}");
}

/* A cut document is still one well-formed JSON document: no escape sequence split at the cut. */
static void test_json_cut(void)
{
    char out[200];
    int whole = 1, fits = 1;
    for (size_t outlen = 64; outlen < sizeof(out); ++outlen) {
        size_t n;
        cr_error_set(CR_EENVELOPE, "f\x02",
                     "\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01\x01"
                     "\"\"\"\"\"\"\"\"\"\"");
        n = cr_error_json(out, outlen);
        fits &= n < outlen && strlen(out) == n;
        /* Every backslash starts a complete escape: \" \\ or \u followed by four hex digits. */
        for (size_t i = 0; i < n; ++i) {
            if (out[i] != '\\')
                continue;
            if (out[i + 1] == 'u') {
                whole &= strspn(out + i + 2, "0123456789abcdef") >= 4;
                i += 5;
            } else {
                whole &= out[i + 1] == '"' || out[i + 1] == '\\';
                ++i;
            }
        }
        whole &= n >= 3 && strcmp(out + n - 3, "\"}}") == 0;
        if (!whole) {
            note("outlen %zu: %s", outlen, out);
            break;
        }
    }
    ok(fits);
    ok(whole);
}

int main(void)
{
    subtest("codes", test_codes);
    subtest("set, last, clear", test_set_last_clear);
    subtest("thread-local", test_thread_local);
    subtest("json", test_json);
    subtest("json cut to a small buffer", test_json_cut);
    return done_testing();
}
