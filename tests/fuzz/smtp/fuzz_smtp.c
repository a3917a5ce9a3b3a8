/* fuzz_smtp.c — libFuzzer target for the SMTP protocol machine (cr_smtp_session_*): any client input gives well-formed
 * replies (code, separator, printable text, CRLF), bounded output and sane deliveries (1..100 distinct recipients,
 * at most max_size bytes), nothing after 421/221, no leak when the owner answers after the session is freed — and
 * the same dialogue fed in small pieces or all at once gives exactly the same replies and messages.
 *
 * Input: one byte of settings, then what the client sends. Settings: bit 0 offers STARTTLS, bit 1 answers
 * recipients late, bit 2 answers messages late, bit 3 sets max_size 64 (else 4096), bits 4-6 pick the piece size,
 * bit 7 ends the session (timeout) halfway through. */
#include <openssl/ssl.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "corral/buf.h"
#include "corral/error.h"
#include "smtp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

typedef struct {
    int async_rcpt, async_deliver;
    size_t max_size;
    cr_smtp_session_t *ps;
    cr_smtp_answer_fn pfn;
    unsigned answers;
    cr_buf_t log; /* replies and deliveries, in order */
} run_t;

static const int codes[] = {250, 550, 451, 250, 452, 999, 250, 554};

static void check_addr(const char *a)
{
    size_t n = strlen(a);
    if (n == 0 || n > 254)
        abort();
    for (size_t i = 0; i < n; ++i)
        if ((unsigned char)a[i] < 32 || (unsigned char)a[i] > 126)
            abort();
}

/* Checks and takes the output: whole reply lines only. */
static void take_output(cr_smtp_session_t *s, run_t *r)
{
    size_t n, i = 0;
    const char *o = cr_smtp_session_output(s, &n);
    if (n > (32u << 10))
        abort();
    while (i < n) {
        const char *eol = memchr(o + i, '\n', n - i);
        size_t len;
        if (eol == NULL)
            abort();
        len = (size_t)(eol - (o + i)) + 1;
        if (len < 6 || o[i + len - 2] != '\r' || o[i] < '2' || o[i] > '5' || o[i + 1] < '0' || o[i + 1] > '9' || o[i + 2] < '0' ||
            o[i + 2] > '9' || (o[i + 3] != ' ' && o[i + 3] != '-'))
            abort();
        for (size_t k = 4; k < len - 2; ++k)
            if ((unsigned char)o[i + k] < 32 || (unsigned char)o[i + k] > 126)
                abort();
        i += len;
    }
    cr_buf_append(&r->log, o, n);
    cr_smtp_session_consume(s, n);
}

static void on_rcpt(cr_smtp_session_t *s, const char *addr, cr_smtp_answer_fn answer, void *data)
{
    run_t *r = data;
    check_addr(addr);
    if (r->pfn != NULL)
        abort();       /* one question at a time */
    take_output(s, r); /* the replies so far come first in the log */
    cr_buf_appendf(&r->log, "[rcpt %s]", addr);
    if (r->async_rcpt) {
        r->ps = s;
        r->pfn = answer;
        return;
    }
    {
        unsigned k = r->answers++;
        answer(s, codes[k % 8], (k & 1) ? NULL : "5.1.1 text\r\nwith CRLF");
    }
}

static void on_deliver(cr_smtp_session_t *s, const char *from, const char *const *rcpts, size_t nrcpts, const char *msg, size_t len,
                       cr_smtp_answer_fn answer, void *data)
{
    run_t *r = data;
    if (nrcpts == 0 || nrcpts > CR_SMTP_RCPTS_MAX || len > r->max_size || r->pfn != NULL)
        abort();
    if (from[0] != '\0')
        check_addr(from);
    for (size_t i = 0; i < nrcpts; ++i) {
        check_addr(rcpts[i]);
        for (size_t j = 0; j < i; ++j)
            if (strcmp(rcpts[i], rcpts[j]) == 0)
                abort();
    }
    take_output(s, r);
    cr_buf_appendf(&r->log, "[deliver <%s> %zu %zu:", from, nrcpts, len);
    cr_buf_append(&r->log, msg, len);
    cr_buf_appendf(&r->log, "]");
    if (r->async_deliver) {
        r->ps = s;
        r->pfn = answer;
        return;
    }
    answer(s, codes[r->answers++ % 8], NULL);
}

/* Drains output, answers late, fakes the TLS handshake, and lets held input run, until nothing moves. */
static void settle(cr_smtp_session_t *s, run_t *r)
{
    for (int guard = 0; guard < 100000; ++guard) {
        size_t n;
        int st;
        take_output(s, r);
        st = cr_smtp_session_status(s);
        if (st & CR_SMTP_CLOSE)
            return;
        if (st & CR_SMTP_STARTTLS) {
            cr_buf_appendf(&r->log, "[tls]");
            cr_smtp_session_tls_started(s);
            continue;
        }
        if ((st & CR_SMTP_WAITING) && r->pfn != NULL) {
            cr_smtp_answer_fn fn = r->pfn;
            unsigned k = r->answers++;
            r->pfn = NULL;
            fn(r->ps, codes[k % 8], (k & 2) ? "2.1.5 fine" : NULL);
            continue;
        }
        if (cr_smtp_session_feed(s, NULL, 0) != 0)
            abort();
        cr_smtp_session_output(s, &n);
        if (n == 0)
            return;
    }
    abort(); /* no progress */
}

static SSL_CTX *tls_ctx(void)
{
    static SSL_CTX *ctx;
    if (ctx == NULL)
        ctx = SSL_CTX_new(TLS_server_method()); /* only offered here; never used for a handshake */
    return ctx;
}

static int saw_tls(const cr_buf_t *log)
{
    for (size_t i = 0; i + 5 <= log->len; ++i)
        if (memcmp(log->base + i, "[tls]", 5) == 0)
            return 1;
    return 0;
}

/* Runs the dialogue in pieces of `piece` bytes; the log tells what happened. */
static void run(const uint8_t *p, size_t n, uint8_t cfg, size_t piece, run_t *r)
{
    cr_smtp_opts_t o;
    cr_smtp_session_t *s;
    size_t off = 0;
    int closed = 0;
    memset(&o, 0, sizeof(o));
    memset(r, 0, sizeof(*r));
    cr_buf_init(&r->log, 64u << 20);
    r->async_rcpt = (cfg >> 1) & 1;
    r->async_deliver = (cfg >> 2) & 1;
    r->max_size = (cfg & 8) ? 64 : 4096;
    o.hostname = "fuzz.test";
    o.max_size = r->max_size;
    o.tls = (cfg & 1) ? tls_ctx() : NULL;
    o.rcpt = on_rcpt;
    o.deliver = on_deliver;
    o.data = r;
    if (cr_smtp_session_new(&s, &o, "fuzz") != 0)
        abort();
    settle(s, r);
    while (off < n) {
        size_t k = n - off < piece ? n - off : piece;
        int rc;
        if ((cfg & 0x80) && off >= n / 2 && !closed) {
            cr_smtp_session_end(s, CR_SMTP_END_TIMEOUT);
            settle(s, r); /* takes the 421 */
            closed = 1;
        }
        closed |= (cr_smtp_session_status(s) & CR_SMTP_CLOSE) != 0; /* its output was taken by settle */
        rc = cr_smtp_session_feed(s, p + off, k);
        if (rc != 0 && (rc != CR_ETOOLARGE || !(cr_smtp_session_status(s) & CR_SMTP_CLOSE)))
            abort();
        off += k;
        if (closed) { /* nothing more may come out */
            size_t m;
            cr_smtp_session_output(s, &m);
            if (m != 0)
                abort();
        }
        settle(s, r);
    }
    cr_smtp_session_free(s);
    if (r->pfn != NULL) { /* answered after the session is gone: dropped, and it frees the session */
        cr_smtp_answer_fn fn = r->pfn;
        r->pfn = NULL;
        fn(r->ps, 250, NULL);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const size_t pieces[] = {1, 2, 3, 7, 16, 64, 512, 65536};
    run_t a, b;
    uint8_t cfg;
    if (size < 1)
        return 0;
    cfg = data[0];
    run(data + 1, size - 1, cfg, pieces[(cfg >> 4) & 7], &a);
    /* Where the pieces fall must not matter — except that STARTTLS throws away the rest of its own piece and a
     * halfway timeout depends on the pieces, and input past the hold limit can only arrive all at once. */
    if (!(cfg & 0x80) && size < 16384 && !saw_tls(&a.log)) {
        run(data + 1, size - 1, cfg, 65536, &b);
        if (a.log.len != b.log.len || (a.log.len > 0 && memcmp(a.log.base, b.log.base, a.log.len) != 0)) {
            fprintf(stderr, "in pieces:\n%.*s\nat once:\n%.*s\n", (int)a.log.len, a.log.base, (int)b.log.len, b.log.base);
            abort();
        }
        cr_buf_free(&b.log);
    }
    cr_buf_free(&a.log);
    return 0;
}
