/* tests/unit/mail/smtp.c — the SMTP server. The protocol machine driven directly: sequence and syntax errors,
 * addresses and parameters, pipelining with late answers, dot-unstuffing with the input split at every byte, bare
 * LF, size limits at MAIL and at DATA, line length, STARTTLS plaintext injection, the limits and the owner's texts.
 * Then the TCP server with real clients: Python's smtplib plain and with STARTTLS (exact bytes delivered), a raw
 * CVE-2011-0411 injection over real TLS, idle and data timeouts, the connection limit, a half-closing pipelining
 * client, and cr_smtp_close with clients connected and an answer outstanding. */
#include "smtp.h"
#include "certs.h"
#include "corral/buf.h"
#include "corral/error.h"
#include "harness.h"
#include "proc.h"
#include <fcntl.h>
#include <openssl/ssl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <uv.h>

/* ---- the owner: recipients starting with "unknown" do not exist ---- */

typedef struct {
    int async_rcpt, async_deliver;
    cr_smtp_session_t *ps; /* the callback waiting for its answer */
    cr_smtp_answer_fn pfn;
    char paddr[300];
    int nrcpt_calls;
    char rcpt_log[4096]; /* every address asked about, ", "-separated */
    int ndeliver;
    char from[300];
    char rcpts[8192];
    char *msg;
    size_t msglen;
    int deliver_tls;
    char deliver_helo[300];
    int deliver_code;
    const char *deliver_text;
} owner_t;

static owner_t owner;

static void owner_reset(void)
{
    free(owner.msg);
    memset(&owner, 0, sizeof(owner));
}

static int known(const char *addr)
{
    return strncmp(addr, "unknown", 7) != 0;
}

static void on_rcpt(cr_smtp_session_t *s, const char *addr, cr_smtp_answer_fn answer, void *data)
{
    owner_t *o = data;
    ++o->nrcpt_calls;
    if (strlen(o->rcpt_log) + strlen(addr) + 3 < sizeof(o->rcpt_log)) {
        if (o->rcpt_log[0] != '\0')
            strcat(o->rcpt_log, ", ");
        strcat(o->rcpt_log, addr);
    }
    snprintf(o->paddr, sizeof(o->paddr), "%s", addr);
    if (o->async_rcpt) {
        o->ps = s;
        o->pfn = answer;
        return;
    }
    answer(s, known(addr) ? 250 : 550, known(addr) ? NULL : "5.1.1 No such user here");
}

static void on_deliver(cr_smtp_session_t *s, const char *from, const char *const *rcpts, size_t nrcpts, const char *msg, size_t len,
                       cr_smtp_answer_fn answer, void *data)
{
    owner_t *o = data;
    size_t i;
    ++o->ndeliver;
    snprintf(o->from, sizeof(o->from), "%s", from);
    o->rcpts[0] = '\0';
    for (i = 0; i < nrcpts; ++i) {
        if (i > 0)
            strcat(o->rcpts, ",");
        strcat(o->rcpts, rcpts[i]);
    }
    free(o->msg);
    o->msg = malloc(len + 1);
    memcpy(o->msg, msg, len);
    o->msg[len] = '\0';
    o->msglen = len;
    o->deliver_tls = cr_smtp_session_tls(s);
    snprintf(o->deliver_helo, sizeof(o->deliver_helo), "%s", cr_smtp_session_helo(s));
    if (o->async_deliver) {
        o->ps = s;
        o->pfn = answer;
        return;
    }
    answer(s, o->deliver_code != 0 ? o->deliver_code : 250, o->deliver_text);
}

/* Answers the callback that waits. */
static void owner_answer(int code, const char *text)
{
    cr_smtp_answer_fn fn = owner.pfn;
    owner.pfn = NULL;
    if (fn != NULL)
        fn(owner.ps, code, text);
}

static cr_smtp_opts_t base_opts(void)
{
    cr_smtp_opts_t o;
    memset(&o, 0, sizeof(o));
    o.hostname = "mx.test";
    o.max_size = 1000;
    o.rcpt = on_rcpt;
    o.deliver = on_deliver;
    o.data = &owner;
    return o;
}

#define EHLO_REPLY "250-mx.test\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-PIPELINING\r\n250 ENHANCEDSTATUSCODES\r\n"
#define EHLO_REPLY_TLS                                                                                                             \
    "250-mx.test\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250-PIPELINING\r\n250-STARTTLS\r\n250 ENHANCEDSTATUSCODES\r\n"

/* ---- driving a session ---- */

static char outbuf[4][256 << 10];
static int outslot;

/* Takes the session's whole output as a string (one of four rotating buffers). */
static const char *drain(cr_smtp_session_t *s)
{
    size_t n;
    const char *o = cr_smtp_session_output(s, &n);
    char *b = outbuf[outslot++ % 4];
    if (n >= sizeof(outbuf[0]))
        n = sizeof(outbuf[0]) - 1;
    memcpy(b, o, n);
    b[n] = '\0';
    cr_smtp_session_consume(s, n);
    return b;
}

static const char *say(cr_smtp_session_t *s, const char *in)
{
    ok(cr_smtp_session_feed(s, in, strlen(in)) == 0);
    return drain(s);
}

static cr_smtp_session_t *session(const cr_smtp_opts_t *o)
{
    cr_smtp_session_t *s = NULL;
    ok(cr_smtp_session_new(&s, o, "192.0.2.1:1234") == 0);
    ok_str(drain(s), "220 mx.test ESMTP ready\r\n");
    return s;
}

static SSL_CTX *server_ctx;
static char cert_path[PATH_MAX + 16];

static void make_tls(void)
{
    char dir[PATH_MAX], key_path[PATH_MAX + 16];
    if (cr_test_make_temp_dir(dir, sizeof(dir), "smtp-test", 200) != 0)
        return;
    cr_test_slot_add(dir, 0);
    snprintf(cert_path, sizeof(cert_path), "%s/cert.pem", dir);
    snprintf(key_path, sizeof(key_path), "%s/key.pem", dir);
    if (cr_test_make_cert(cert_path, key_path) != 0)
        return;
    server_ctx = SSL_CTX_new(TLS_server_method());
    if (SSL_CTX_use_certificate_chain_file(server_ctx, cert_path) != 1 ||
        SSL_CTX_use_PrivateKey_file(server_ctx, key_path, SSL_FILETYPE_PEM) != 1) {
        SSL_CTX_free(server_ctx);
        server_ctx = NULL;
    }
}

/* ---- protocol ---- */

static void test_greeting_ehlo(void)
{
    cr_smtp_opts_t o = base_opts();
    cr_smtp_session_t *s = session(&o);
    ok_str(say(s, "EHLO client.example\r\n"), EHLO_REPLY);
    ok_str(cr_smtp_session_helo(s), "client.example");
    ok_str(cr_smtp_session_peer(s), "192.0.2.1:1234");
    ok_str(say(s, "helo other.example\r\n"), "250 mx.test\r\n");
    ok_str(say(s, "EHLO\r\n"), "501 5.5.4 Syntax: EHLO hostname\r\n");
    ok_str(say(s, "EHLO caf\xc3\xa9.example\r\n"), "501 5.5.4 Error: invalid hostname\r\n");
    ok_str(cr_smtp_session_helo(s), "other.example");
    ok_str(say(s, "EHLO  spaced.example   \r\n"), EHLO_REPLY);                      /* extra blanks tolerated */
    ok_str(say(s, "STARTTLS\r\n"), "502 5.5.1 Error: command not implemented\r\n"); /* not offered without a cert */
    cr_smtp_session_free(s);

    o.tls = server_ctx;
    s = session(&o);
    ok_str(say(s, "EHLO client.example\r\n"), EHLO_REPLY_TLS);
    cr_smtp_session_free(s);

    o = base_opts();
    o.rcpt = NULL;
    ok(cr_smtp_session_new(&s, &o, NULL) == CR_ECONFIG && s == NULL);
    o = base_opts();
    o.hostname = "bad host\r\n";
    ok(cr_smtp_session_new(&s, &o, NULL) == CR_ECONFIG);
}

static void test_sequence(void)
{
    cr_smtp_opts_t o = base_opts();
    cr_smtp_session_t *s;
    owner_reset();
    s = session(&o);
    ok_str(say(s, "MAIL FROM:<a@b.example>\r\n"), "503 5.5.1 Error: send HELO/EHLO first\r\n");
    ok_str(say(s, "EHLO c\r\n"), EHLO_REPLY);
    ok_str(say(s, "RCPT TO:<one@x.example>\r\n"), "503 5.5.1 Error: need MAIL command\r\n");
    ok_str(say(s, "DATA\r\n"), "503 5.5.1 Error: need MAIL command\r\n");
    ok_str(say(s, "MAIL FROM:<a@b.example>\r\n"), "250 2.1.0 Sender OK\r\n");
    ok_str(say(s, "DATA\r\n"), "503 5.5.1 Error: need RCPT command\r\n");
    ok_str(say(s, "MAIL FROM:<a@b.example>\r\n"), "503 5.5.1 Error: nested MAIL command\r\n");
    ok_str(say(s, "RCPT TO:<unknown@x.example>\r\n"), "550 5.1.1 No such user here\r\n");
    ok_str(say(s, "DATA\r\n"), "554 5.5.0 Error: no valid recipients\r\n");
    ok_str(say(s, "RSET\r\n"), "250 2.0.0 OK\r\n");
    ok_str(say(s, "RCPT TO:<one@x.example>\r\n"), "503 5.5.1 Error: need MAIL command\r\n"); /* RSET ended it */
    ok_str(say(s, "DATA extra\r\n"), "501 5.5.4 Syntax: DATA\r\n");
    ok(owner.nrcpt_calls == 1); /* out-of-sequence commands never reach the owner */
    ok(owner.ndeliver == 0);
    ok_str(say(s, "QUIT\r\n"), "221 2.0.0 mx.test closing connection\r\n");
    ok(cr_smtp_session_status(s) == CR_SMTP_CLOSE);
    ok_str(say(s, "NOOP\r\n"), ""); /* nothing runs after QUIT */
    cr_smtp_session_free(s);
}

static void test_syntax(void)
{
    cr_smtp_opts_t o = base_opts();
    cr_smtp_session_t *s;
    char line[1200];
    size_t i;
    owner_reset();
    s = session(&o);
    say(s, "EHLO c\r\n");
    ok_str(say(s, "MAIL FROM:a@b.example\r\n"), "501 5.1.7 Bad sender address syntax\r\n");
    ok_str(say(s, "MAIL TO:<a@b.example>\r\n"), "501 5.5.4 Syntax: MAIL FROM:<address>\r\n");
    ok_str(say(s, "MAIL FROM:<a@b.example> FOO=1\r\n"), "555 5.5.4 Unsupported option: FOO\r\n");
    ok_str(say(s, "MAIL FROM:<a@b.example> SIZE=1001\r\n"), "552 5.3.4 Error: message size exceeds fixed maximum message size\r\n");
    ok_str(say(s, "MAIL FROM:<a@b.example> SIZE=99999999999999999999999\r\n"), "501 5.5.4 Bad SIZE parameter\r\n");
    ok_str(say(s, "MAIL FROM:<a@b.example> SIZE=12x\r\n"), "501 5.5.4 Bad SIZE parameter\r\n");
    ok_str(say(s, "MAIL FROM:<a@b.example> BODY=BINARYMIME\r\n"), "501 5.5.4 Bad BODY parameter\r\n");
    ok_str(say(s, "MAIL FROM:<a@b.example>junk\r\n"), "501 5.5.4 Syntax error in parameters\r\n");
    ok_str(say(s, "mail from: <Ana.Lopez+tag@Example.COM> size=1000 BODY=8bitmime\r\n"), "250 2.1.0 Sender OK\r\n");
    ok_str(say(s, "RCPT TO:<one@x.example> NOTIFY=NEVER\r\n"), "555 5.5.4 Unsupported option: NOTIFY\r\n");
    ok_str(say(s, "RCPT TO:<>\r\n"), "501 5.1.3 Bad recipient address syntax\r\n");
    ok_str(say(s, "RCPT TO:<a..b@x.example>\r\n"), "501 5.1.3 Bad recipient address syntax\r\n");
    ok_str(say(s, "RCPT TO:<a@-x.example>\r\n"), "501 5.1.3 Bad recipient address syntax\r\n");
    ok_str(say(s, "RCPT TO:<a@x.example\r\n"), "501 5.1.3 Bad recipient address syntax\r\n");
    ok_str(say(s, "RCPT TO:<@relay.one,@relay.two:Bob@X.Example>\r\n"), "250 2.1.5 Recipient OK\r\n");
    ok_str(say(s, "RCPT TO:<\"john doe\"@X.example>\r\n"), "250 2.1.5 Recipient OK\r\n");
    ok_str(say(s, "RCPT TO:<Postmaster>\r\n"), "250 2.1.5 Recipient OK\r\n");
    ok_str(say(s, "RCPT TO:<eve@[192.0.2.7]>\r\n"), "250 2.1.5 Recipient OK\r\n");
    ok_str(owner.rcpt_log, "Bob@x.example, \"john doe\"@x.example, postmaster, eve@[192.0.2.7]");
    ok_str(say(s, "DATA\r\nhi\r\n.\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 OK: queued\r\n");
    ok_str(owner.from, "Ana.Lopez+tag@example.com"); /* the domain lower-cased, the local part as sent */
    ok_str(owner.rcpts, "Bob@x.example,\"john doe\"@x.example,postmaster,eve@[192.0.2.7]");
    cr_smtp_session_free(s);

    s = session(&o);
    ok_str(say(s, "AUTH PLAIN AGFuYQBzZWNyZXQ=\r\n"), "502 5.5.1 Error: authentication not enabled\r\n");
    ok_str(say(s, "VRFY bob\r\n"), "252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery\r\n");
    ok_str(say(s, "EXPN staff\r\n"), "502 5.5.1 Error: command not implemented\r\n");
    ok_str(say(s, "BDAT 10 LAST\r\n"), "502 5.5.1 Error: command not implemented\r\n");
    ok_str(say(s, "XYZZY\r\n"), "500 5.5.2 Error: command not recognized\r\n");
    ok_str(say(s, "\r\n"), "500 5.5.2 Error: bad syntax\r\n");
    ok_str(say(s, "NO\x01OP\r\n"), "500 5.5.2 Error: bad characters in command\r\n");
    ok_str(say(s, "noop whatever\r\n"), "250 2.0.0 OK\r\n");
    ok_str(say(s, "NOOP\n"), "250 2.0.0 OK\r\n"); /* a bare LF ends a command line */
    ok_str(say(s, "HELP\r\n"), "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT\r\n");
    cr_smtp_session_free(s);

    /* Line length: 1000 bytes with the CRLF pass, 1001 do not; the rest of a long line is skipped, not buffered. */
    s = session(&o);
    memcpy(line, "NOOP ", 5);
    for (i = 5; i < 998; ++i)
        line[i] = 'x';
    memcpy(line + 998, "\r\n", 3);
    ok_str(say(s, line), "250 2.0.0 OK\r\n");
    memcpy(line + 998, "x\r\n", 4);
    ok_str(say(s, line), "500 5.5.6 Error: line too long\r\n");
    for (i = 0; i < 3000; ++i)
        ok(cr_smtp_session_feed(s, "y", 1) == 0);
    ok_str(drain(s), "500 5.5.6 Error: line too long\r\n");
    ok_str(say(s, "still the same line\r\nNOOP\r\n"), "250 2.0.0 OK\r\n");
    cr_smtp_session_free(s);

    /* Errors add up to a 421. */
    s = session(&o);
    {
        char want[4096] = "";
        for (i = 0; i < CR_SMTP_ERRORS_MAX; ++i)
            strcat(want, "500 5.5.2 Error: command not recognized\r\n");
        strcat(want, "421 4.7.0 mx.test Error: too many errors\r\n");
        for (i = 0; i < CR_SMTP_ERRORS_MAX + 5; ++i)
            cr_smtp_session_feed(s, "FOO\r\n", 5);
        ok_str(drain(s), want);
        ok(cr_smtp_session_status(s) == CR_SMTP_CLOSE);
    }
    cr_smtp_session_free(s);
}

static void test_transaction(void)
{
    cr_smtp_opts_t o = base_opts();
    cr_smtp_session_t *s;
    owner_reset();
    s = session(&o);
    ok_str(say(s, "EHLO c\r\nMAIL FROM:<>\r\nRCPT TO:<one@x.example>\r\nRCPT TO:<ONE@X.example>\r\nRCPT TO:<one@x.example>\r\n"
                  "DATA\r\n"),
           EHLO_REPLY "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n250 2.1.5 Recipient OK\r\n"
                      "354 End data with <CR><LF>.<CR><LF>\r\n");
    ok(owner.nrcpt_calls == 2); /* the exact duplicate is not asked again */
    ok(cr_smtp_session_status(s) == (CR_SMTP_READ | CR_SMTP_DATA));
    ok_str(say(s, "Subject: hi\r\n\r\nbody\r\n.\r\n"), "250 2.0.0 OK: queued\r\n");
    ok(owner.ndeliver == 1);
    ok_str(owner.from, ""); /* the null sender */
    ok_str(owner.rcpts, "one@x.example,ONE@x.example");
    ok_bytes(owner.msg, owner.msglen, "Subject: hi\r\n\r\nbody\r\n", 21);
    ok_str(owner.deliver_helo, "c");

    /* The owner refuses the message: its text, the transaction ends. */
    owner.deliver_code = 451;
    owner.deliver_text = "4.3.0 Storage is down";
    ok_str(say(s, "MAIL FROM:<a@b.example>\r\nRCPT TO:<one@x.example>\r\nDATA\r\n"),
           "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
    ok_str(say(s, "x\r\n.\r\nRCPT TO:<one@x.example>\r\n"), "451 4.3.0 Storage is down\r\n503 5.5.1 Error: need MAIL command\r\n");

    /* An empty message. */
    owner.deliver_code = 0;
    owner.deliver_text = NULL;
    ok_str(say(s, "MAIL FROM:<a@b.example>\r\nRCPT TO:<one@x.example>\r\nDATA\r\n.\r\n"),
           "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 OK: queued\r\n");
    ok(owner.ndeliver == 3 && owner.msglen == 0);
    cr_smtp_session_free(s);
}

static void test_pipelining_async(void)
{
    cr_smtp_opts_t o = base_opts();
    cr_smtp_session_t *s;
    owner_reset();
    owner.async_rcpt = owner.async_deliver = 1;
    s = session(&o);
    ok_str(say(s, "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<one@x.example>\r\nRCPT TO:<unknown@x.example>\r\n"),
           EHLO_REPLY "250 2.1.0 Sender OK\r\n");
    ok(cr_smtp_session_status(s) == CR_SMTP_WAITING);
    ok_str(owner.paddr, "one@x.example");
    /* More input while the owner thinks: held, not run, not reordered. */
    ok_str(say(s, "RCPT TO:<two@x.example>\r\nDATA\r\n"), "");
    ok(owner.nrcpt_calls == 1);
    owner_answer(250, NULL);
    ok_str(drain(s), "250 2.1.5 Recipient OK\r\n");
    ok_str(owner.paddr, "unknown@x.example");
    owner_answer(550, NULL);
    ok_str(drain(s), "550 5.1.1 No such user here\r\n");
    ok_str(owner.paddr, "two@x.example");
    owner_answer(250, "2.1.5 two is fine");
    ok_str(drain(s), "250 2.1.5 two is fine\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
    ok(cr_smtp_session_status(s) == (CR_SMTP_READ | CR_SMTP_DATA));

    /* 250 for the message only once the owner says it is stored; QUIT waits behind it. */
    ok_str(say(s, "Subject: t\r\n\r\nhi\r\n.\r\nQUIT\r\n"), "");
    ok(owner.ndeliver == 1);
    ok_str(owner.rcpts, "one@x.example,two@x.example");
    ok_bytes(owner.msg, owner.msglen, "Subject: t\r\n\r\nhi\r\n", 18);
    ok(cr_smtp_session_status(s) == CR_SMTP_WAITING);
    owner_answer(250, "2.0.0 Queued as 01ABC");
    ok_str(drain(s), "250 2.0.0 Queued as 01ABC\r\n221 2.0.0 mx.test closing connection\r\n");
    ok(cr_smtp_session_status(s) == CR_SMTP_CLOSE);
    cr_smtp_session_free(s);

    /* What the owner says is made safe for the wire. */
    s = session(&o);
    say(s, "EHLO c\r\nMAIL FROM:<a@b.example>\r\n");
    say(s, "RCPT TO:<one@x.example>\r\n");
    owner_answer(250, "all\r\n250 good");
    ok_str(drain(s), "250 2.0.0 all??250 good\r\n");
    say(s, "RCPT TO:<two@x.example>\r\n");
    owner_answer(354, "go ahead");
    ok_str(drain(s), "451 4.3.0 Local error in processing\r\n");
    say(s, "RCPT TO:<three@x.example>\r\n");
    owner_answer(450, "5.1.1 wrong class");
    ok_str(drain(s), "450 4.0.0 5.1.1 wrong class\r\n");
    say(s, "RCPT TO:<four@x.example>\r\n");
    owner_answer(550, "5.7.1 Policy says no");
    ok_str(drain(s), "550 5.7.1 Policy says no\r\n");
    owner_answer(250, NULL); /* a second answer is ignored */
    ok_str(drain(s), "");

    /* Freed while the owner still thinks: the answer arrives later and is dropped (ASan watches). */
    say(s, "RCPT TO:<five@x.example>\r\n");
    ok(cr_smtp_session_status(s) == CR_SMTP_WAITING);
    cr_smtp_session_free(s);
    owner_answer(250, NULL);
    owner_reset();
}

/* The dialogue of test_split, whose data ends with CRLF "." CRLF in the middle of the input. */
static const char split_dialogue[] = "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<one@x.example>\r\nDATA\r\n"
                                     "x\r\n..y\r\n.z\r\n\r\n.\r\nQUIT\r\n";
static const char split_transcript[] = EHLO_REPLY "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n"
                                                  "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 OK: queued\r\n"
                                                  "221 2.0.0 mx.test closing connection\r\n";

static void test_dots_and_splits(void)
{
    cr_smtp_opts_t o = base_opts();
    cr_smtp_session_t *s;
    size_t n = strlen(split_dialogue), i, bad = 0;
    char got[2048];

    owner_reset();
    s = session(&o);
    say(s, "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<one@x.example>\r\nDATA\r\n");
    ok_str(say(s, "..a\r\n.b\r\n...\r\nplain\r\n..\r\n.\r\n"), "250 2.0.0 OK: queued\r\n");
    ok_str(owner.msg, ".a\r\nb\r\n..\r\nplain\r\n.\r\n");

    /* Bare LF and bare CR are content: neither "\n.\n" nor "\r\n.\n" nor "\n.\r\n" ends the data. */
    say(s, "MAIL FROM:<a@b.example>\r\nRCPT TO:<one@x.example>\r\nDATA\r\n");
    ok_str(say(s, "a\n.\nb\r\n.\n\r\nc\n.\r\nd\r.\r\n"), "");
    ok(owner.ndeliver == 1);
    ok_str(say(s, "\r\n.\r\n"), "250 2.0.0 OK: queued\r\n");
    ok_str(owner.msg, "a\n.\nb\r\n\n\r\nc\n.\r\nd\r.\r\n\r\n");
    cr_smtp_session_free(s);

    /* The same dialogue cut in two at every byte offset gives the same replies and the same message. */
    for (i = 0; i <= n; ++i) {
        owner_reset();
        s = session(&o);
        cr_smtp_session_feed(s, split_dialogue, i);
        snprintf(got, sizeof(got), "%s", drain(s));
        cr_smtp_session_feed(s, split_dialogue + i, n - i);
        strncat(got, drain(s), sizeof(got) - strlen(got) - 1);
        if (strcmp(got, split_transcript) != 0 || owner.msg == NULL || strcmp(owner.msg, "x\r\n.y\r\nz\r\n\r\n") != 0) {
            if (bad++ == 0)
                note("split at %zu: got %s / message %s", i, got, owner.msg != NULL ? owner.msg : "(none)");
        }
        cr_smtp_session_free(s);
    }
    okf(bad == 0, "%zu of %zu split points differ", bad, n + 1);

    /* And fed one byte at a time. */
    owner_reset();
    s = session(&o);
    got[0] = '\0';
    for (i = 0; i < n; ++i) {
        cr_smtp_session_feed(s, split_dialogue + i, 1);
        strncat(got, drain(s), sizeof(got) - strlen(got) - 1);
    }
    ok_str(got, split_transcript);
    ok_str(owner.msg, "x\r\n.y\r\nz\r\n\r\n");
    cr_smtp_session_free(s);
    owner_reset();
}

static void test_size(void)
{
    cr_smtp_opts_t o = base_opts();
    cr_smtp_session_t *s;
    char chunk[4096];
    int i, fails = 0;
    owner_reset();
    o.max_size = 10;
    s = session(&o);
    say(s, "EHLO c\r\n");
    ok_str(say(s, "MAIL FROM:<a@b.example> SIZE=11\r\n"), "552 5.3.4 Error: message size exceeds fixed maximum message size\r\n");
    ok_str(say(s, "MAIL FROM:<a@b.example> SIZE=10\r\nRCPT TO:<one@x.example>\r\nDATA\r\n12345678\r\n.\r\n"),
           "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 OK: queued\r\n");
    ok_str(owner.msg, "12345678\r\n");
    /* The limit is on the unstuffed message: 11 bytes on the wire, 10 kept. */
    ok_str(say(s, "MAIL FROM:<a@b.example>\r\nRCPT TO:<one@x.example>\r\nDATA\r\n..2345678\r\n.\r\n"),
           "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 OK: queued\r\n");
    ok_str(owner.msg, ".2345678\r\n");
    ok(owner.ndeliver == 2);
    /* One byte over: read to the end, then refused; the session goes on. */
    ok_str(say(s, "MAIL FROM:<a@b.example>\r\nRCPT TO:<one@x.example>\r\nDATA\r\n123456789\r\n"),
           "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n354 End data with <CR><LF>.<CR><LF>\r\n");
    ok_str(say(s, ".\r\n"), "552 5.3.4 Error: message exceeds fixed maximum message size\r\n");
    ok(owner.ndeliver == 2);
    /* 4 MB against a 10-byte limit, then a good message. */
    say(s, "MAIL FROM:<a@b.example>\r\nRCPT TO:<one@x.example>\r\nDATA\r\n");
    memset(chunk, 'z', sizeof(chunk));
    for (i = 0; i < 1024; ++i)
        fails += cr_smtp_session_feed(s, chunk, sizeof(chunk)) != 0;
    ok(fails == 0);
    ok_str(say(s, "\r\n.\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<one@x.example>\r\nDATA\r\nok\r\n.\r\n"),
           "552 5.3.4 Error: message exceeds fixed maximum message size\r\n250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n"
           "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 OK: queued\r\n");
    ok_str(owner.msg, "ok\r\n");
    cr_smtp_session_free(s);
    owner_reset();
}

static void test_starttls_injection(void)
{
    cr_smtp_opts_t o = base_opts();
    cr_smtp_session_t *s;
    if (server_ctx == NULL) {
        ok(!"no TLS context");
        return;
    }
    owner_reset();
    o.tls = server_ctx;
    s = session(&o);
    ok_str(say(s, "EHLO c\r\nMAIL FROM:<a@b.example>\r\nSTARTTLS now\r\n"),
           EHLO_REPLY_TLS "250 2.1.0 Sender OK\r\n501 5.5.4 Syntax: STARTTLS\r\n");
    /* Plaintext pipelined behind STARTTLS is thrown away, in the same packet or later. */
    ok_str(say(s, "STARTTLS\r\nRSET\r\nMAIL FROM:<evil@x.example>\r\nRCPT TO:<victim@x.example>\r\n"),
           "220 2.0.0 Ready to start TLS\r\n");
    ok(cr_smtp_session_status(s) == CR_SMTP_STARTTLS);
    ok_str(say(s, "RCPT TO:<victim@x.example>\r\n"), "");
    ok(!cr_smtp_session_tls(s));
    cr_smtp_session_tls_started(s);
    ok(cr_smtp_session_tls(s));
    ok(cr_smtp_session_status(s) == CR_SMTP_READ);
    /* Everything learnt before is forgotten: EHLO again, and the transaction is gone. */
    ok_str(cr_smtp_session_helo(s), "");
    ok_str(say(s, "RCPT TO:<victim@x.example>\r\n"), "503 5.5.1 Error: need MAIL command\r\n");
    ok_str(say(s, "MAIL FROM:<a@b.example>\r\n"), "503 5.5.1 Error: send HELO/EHLO first\r\n");
    ok_str(say(s, "EHLO c\r\n"), EHLO_REPLY); /* no STARTTLS any more */
    ok_str(say(s, "STARTTLS\r\n"), "503 5.5.1 Error: TLS already active\r\n");
    ok(owner.nrcpt_calls == 0);
    cr_smtp_session_free(s);
}

static void test_limits(void)
{
    cr_smtp_opts_t o = base_opts();
    cr_smtp_session_t *s;
    char line[64], *big;
    const char *out;
    size_t i, n452 = 0, total = 0;
    int rounds = 0;
    cr_buf_t in;

    /* Recipients: 100 accepted, then 452; the message goes to the 100. */
    owner_reset();
    s = session(&o);
    say(s, "EHLO c\r\nMAIL FROM:<a@b.example>\r\n");
    for (i = 0; i < CR_SMTP_RCPTS_MAX; ++i) {
        snprintf(line, sizeof(line), "RCPT TO:<r%zu@x.example>\r\n", i);
        cr_smtp_session_feed(s, line, strlen(line));
    }
    out = drain(s);
    ok(strlen(out) == CR_SMTP_RCPTS_MAX * strlen("250 2.1.5 Recipient OK\r\n"));
    ok_str(say(s, "RCPT TO:<one-more@x.example>\r\n"), "452 4.5.3 Error: too many recipients\r\n");
    ok_str(say(s, "DATA\r\nx\r\n.\r\n"), "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 OK: queued\r\n");
    ok(strncmp(owner.rcpts, "r0@x.example,r1@x.example,", 26) == 0 && strstr(owner.rcpts, "r99@x.example") != NULL &&
       strstr(owner.rcpts, "one-more") == NULL);

    /* Backpressure: replies pile up past 16 KiB, commands stop until the output is taken, none is lost. */
    cr_buf_init(&in, 1 << 20);
    cr_buf_appendf(&in, "MAIL FROM:<a@b.example>\r\n");
    for (i = 0; i < CR_SMTP_RCPTS_MAX; ++i)
        cr_buf_appendf(&in, "RCPT TO:<r%zu@x.example>\r\n", i);
    for (i = 0; i < 600; ++i)
        cr_buf_appendf(&in, "RCPT TO:<s%zu@x.example>\r\n", i);
    cr_buf_appendf(&in, "RSET\r\n");
    ok(cr_smtp_session_feed(s, in.base, in.len) == 0);
    ok(!(cr_smtp_session_status(s) & CR_SMTP_READ));
    for (;;) {
        size_t olen;
        const char *p;
        cr_smtp_session_output(s, &olen);
        ok(olen < (24u << 10));
        out = drain(s);
        total += strlen(out);
        for (p = out; (p = strstr(p, "452 4.5.3")) != NULL; ++p)
            ++n452;
        if (strstr(out, "250 2.0.0 OK\r\n") != NULL || ++rounds > 20)
            break;
        cr_smtp_session_feed(s, NULL, 0);
    }
    ok(rounds >= 1);
    ok(n452 == 600);
    ok(cr_smtp_session_status(s) == CR_SMTP_READ);
    cr_buf_free(&in);
    cr_smtp_session_free(s);

    /* NOOP and friends: 100 between messages, then 421. */
    s = session(&o);
    for (i = 0; i < CR_SMTP_JUNK_MAX; ++i)
        cr_smtp_session_feed(s, "NOOP\r\n", 6);
    ok(strlen(drain(s)) == CR_SMTP_JUNK_MAX * 14);
    ok_str(say(s, "NOOP\r\n"), "421 4.7.0 mx.test Error: too many commands\r\n");
    ok(cr_smtp_session_status(s) == CR_SMTP_CLOSE);
    cr_smtp_session_free(s);

    /* Input held while the owner thinks is capped. */
    owner.async_rcpt = 1;
    s = session(&o);
    say(s, "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<one@x.example>\r\n");
    big = malloc(CR_SMTP_INPUT_MAX + 1);
    memset(big, 'N', CR_SMTP_INPUT_MAX + 1);
    ok(cr_smtp_session_feed(s, big, CR_SMTP_INPUT_MAX + 1) == CR_ETOOLARGE);
    free(big);
    ok_str(drain(s), "421 4.7.0 mx.test Error: too much pipelined input\r\n");
    ok(cr_smtp_session_status(s) == CR_SMTP_CLOSE);
    owner_answer(250, NULL); /* too late: dropped */
    ok_str(drain(s), "");
    cr_smtp_session_free(s);

    /* The transport's timeout. */
    owner_reset();
    s = session(&o);
    say(s, "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<one@x.example>\r\nDATA\r\npartial");
    cr_smtp_session_end(s, CR_SMTP_END_TIMEOUT);
    ok_str(drain(s), "421 4.4.2 mx.test Error: timeout exceeded\r\n");
    ok(cr_smtp_session_status(s) == CR_SMTP_CLOSE);
    ok_str(say(s, "\r\n.\r\n"), "");
    ok(owner.ndeliver == 0);
    cr_smtp_session_free(s);
}

/* ---- over TCP ---- */

static uv_loop_t *loop;

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until cond(arg) or ms pass. Returns whether cond held. */
static int run_until(int (*cond)(void *), void *arg, int ms)
{
    uv_timer_t tick;
    int64_t end = cr_test_now_ms() + ms;
    int met;
    uv_timer_init(loop, &tick);
    uv_timer_start(&tick, on_tick, 5, 5);
    while (!(met = cond(arg)) && cr_test_now_ms() < end)
        uv_run(loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(loop, UV_RUN_NOWAIT);
    return met;
}

static int flag_set(void *p)
{
    return *(int *)p;
}

/* Closes the server and checks that the loop ends up with nothing alive (the server freed its handles). */
static void stop_server(cr_smtp_server_t *srv)
{
    int64_t end = cr_test_now_ms() + 5000;
    cr_smtp_close(srv);
    while (cr_test_now_ms() < end) {
        uv_run(loop, UV_RUN_NOWAIT);
        if (!uv_loop_alive(loop))
            break;
        cr_test_sleep_ms(2);
    }
    ok(!uv_loop_alive(loop));
}

/* A raw client on the loop: sends what it is told, keeps everything it receives until EOF. */
typedef struct {
    uv_tcp_t tcp;
    uv_connect_t creq;
    uv_shutdown_t sreq;
    uv_timer_t drip;
    char got[16384];
    size_t ngot;
    int connected, eof, closed, dripping;
    int64_t t0, t_eof;
    const char *first; /* sent on connect */
    int shut;          /* half-close after first */
} client_t;

static void client_closed(uv_handle_t *h)
{
    client_t *c = h->data;
    c->closed = 1;
}

static void client_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    client_t *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->got + c->ngot, (unsigned)(sizeof(c->got) - 1 - c->ngot));
}

static void client_stop_drip(client_t *c)
{
    if (c->dripping) {
        c->dripping = 0;
        uv_close((uv_handle_t *)&c->drip, NULL);
    }
}

static void client_read(uv_stream_t *st, ssize_t n, const uv_buf_t *buf)
{
    client_t *c = st->data;
    (void)buf;
    if (n > 0) {
        c->ngot += (size_t)n;
        c->got[c->ngot] = '\0';
        return;
    }
    if (n < 0 && !c->eof) {
        c->eof = 1;
        c->t_eof = cr_test_now_ms();
        client_stop_drip(c);
        uv_close((uv_handle_t *)&c->tcp, client_closed);
    }
}

static void client_written(uv_write_t *req, int status)
{
    (void)status;
    free(req);
}

static void client_send(client_t *c, const char *text)
{
    uv_write_t *req = malloc(sizeof(*req));
    uv_buf_t b = uv_buf_init((char *)text, (unsigned)strlen(text));
    if (c->eof || uv_write(req, (uv_stream_t *)&c->tcp, &b, 1, client_written) != 0)
        free(req);
}

static void client_connected(uv_connect_t *req, int status)
{
    client_t *c = req->data;
    if (status != 0) {
        c->eof = 1;
        uv_close((uv_handle_t *)&c->tcp, client_closed);
        return;
    }
    c->connected = 1;
    uv_read_start((uv_stream_t *)&c->tcp, client_alloc, client_read);
    if (c->first != NULL)
        client_send(c, c->first);
    if (c->shut) {
        c->sreq.data = c;
        uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, NULL);
    }
}

static void client_start(client_t *c, int port, const char *first, int shut)
{
    struct sockaddr_in sa;
    memset(c, 0, sizeof(*c));
    c->first = first;
    c->shut = shut;
    c->t0 = cr_test_now_ms();
    uv_tcp_init(loop, &c->tcp);
    c->tcp.data = c;
    c->creq.data = c;
    uv_ip4_addr("127.0.0.1", port, &sa);
    uv_tcp_connect(&c->creq, &c->tcp, (struct sockaddr *)&sa, client_connected);
}

static void client_close(client_t *c)
{
    client_stop_drip(c);
    if (!c->eof) {
        c->eof = 1;
        uv_close((uv_handle_t *)&c->tcp, client_closed);
    }
    run_until(flag_set, &c->closed, 2000);
}

static void on_drip(uv_timer_t *t)
{
    client_send(t->data, "x");
}

static void client_drip(client_t *c, int every_ms)
{
    uv_timer_init(loop, &c->drip);
    c->drip.data = c;
    c->dripping = 1;
    uv_timer_start(&c->drip, on_drip, (uint64_t)every_ms, (uint64_t)every_ms);
}

static int client_has_eof(void *p)
{
    return ((client_t *)p)->eof;
}

static int client_has_bytes(void *p)
{
    return ((client_t *)p)->ngot > 0;
}

static const char *want_text;

/* Whether the client has received want_text (a suffix of what it expects so far). */
static int client_has_text(void *p)
{
    return strstr(((client_t *)p)->got, want_text) != NULL;
}

static cr_smtp_server_t *start_server(const cr_smtp_opts_t *o)
{
    cr_smtp_server_t *srv = NULL;
    ok(cr_smtp_listen(&srv, loop, "127.0.0.1:0", o) == 0);
    ok(srv != NULL && cr_smtp_port(srv) > 0);
    return srv;
}

/* ---- Python ---- */

static uv_process_t py_proc;
static int py_done;
static int64_t py_status;

static void on_py_exit(uv_process_t *p, int64_t status, int sig)
{
    (void)sig;
    py_status = status;
    py_done = 1;
    uv_close((uv_handle_t *)p, NULL);
}

/* Runs python3 -c script port mode cafile on the loop and returns what it printed (malloc'd), NULL if it failed. */
static char *run_python(const char *script, int port, const char *mode)
{
    static char py[PATH_MAX];
    char outpath[PATH_MAX + 64], portstr[16];
    char *args[7];
    uv_process_options_t po;
    uv_stdio_container_t stdio[3];
    int fd, rc;
    char *out;
    if (py[0] == '\0' && cr_test_find_program(py, sizeof(py), "python3") != 0) {
        note("python3 not found");
        return NULL;
    }
    snprintf(outpath, sizeof(outpath), "%s.%s.out", cert_path, mode);
    snprintf(portstr, sizeof(portstr), "%d", port);
    if ((fd = open(outpath, O_WRONLY | O_CREAT | O_TRUNC, 0600)) < 0)
        return NULL;
    args[0] = py;
    args[1] = (char *)"-c";
    args[2] = (char *)script;
    args[3] = portstr;
    args[4] = (char *)mode;
    args[5] = cert_path;
    args[6] = NULL;
    memset(&po, 0, sizeof(po));
    stdio[0].flags = UV_IGNORE;
    stdio[1].flags = UV_INHERIT_FD;
    stdio[1].data.fd = fd;
    stdio[2].flags = UV_INHERIT_FD;
    stdio[2].data.fd = 2;
    po.file = py;
    po.args = args;
    po.exit_cb = on_py_exit;
    po.stdio_count = 3;
    po.stdio = stdio;
    py_done = 0;
    rc = uv_spawn(loop, &py_proc, &po);
    close(fd);
    if (rc != 0) {
        note("cannot run python3: %s", uv_strerror(rc));
        return NULL;
    }
    if (!run_until(flag_set, &py_done, 30000)) {
        uv_process_kill(&py_proc, SIGKILL);
        run_until(flag_set, &py_done, 5000);
        note("python3 did not finish");
    }
    out = cr_test_file_read(outpath, 0, 1 << 20);
    okf(py_status == 0, "python exited with %lld", (long long)py_status);
    return out;
}

static const char smtplib_script[] =
    "import smtplib, ssl, sys, json\n"
    "port, mode, cafile = int(sys.argv[1]), sys.argv[2], sys.argv[3]\n"
    "msg = (b'From: Ana <ana@example.com>\\r\\nTo: agent@mx.test\\r\\nSubject: hello\\r\\n\\r\\n'\n"
    "       b'line one\\r\\n.leading dot\\r\\n..two dots\\r\\n.\\r\\n\\xc3\\xa9t\\xc3\\xa9 8bit\\r\\n')\n"
    "s = smtplib.SMTP('127.0.0.1', port, local_hostname='client.test', timeout=10)\n"
    "if mode == 'tls':\n"
    "    s.starttls(context=ssl.create_default_context(cafile=cafile))\n"
    "refused = s.sendmail('Ana@Example.COM', ['agent@MX.test', 'unknown@mx.test'], msg, mail_options=['BODY=8BITMIME'])\n"
    "print(json.dumps({'refused': {k: [v[0], v[1].decode()] for k, v in refused.items()},\n"
    "                  'starttls': s.has_extn('starttls')}, sort_keys=True))\n"
    "s.quit()\n";

static const char python_msg[] = "From: Ana <ana@example.com>\r\nTo: agent@mx.test\r\nSubject: hello\r\n\r\n"
                                 "line one\r\n.leading dot\r\n..two dots\r\n.\r\n\xc3\xa9t\xc3\xa9 8bit\r\n";

static void smtplib_run(int tls)
{
    cr_smtp_opts_t o = base_opts();
    cr_smtp_server_t *srv;
    char *out;
    owner_reset();
    o.tls = server_ctx;
    o.max_size = 1 << 20;
    srv = start_server(&o);
    out = run_python(smtplib_script, cr_smtp_port(srv), tls ? "tls" : "plain");
    ok(out != NULL);
    if (out != NULL)
        ok_str(out, tls ? "{\"refused\": {\"unknown@mx.test\": [550, \"5.1.1 No such user here\"]}, \"starttls\": false}\n"
                        : "{\"refused\": {\"unknown@mx.test\": [550, \"5.1.1 No such user here\"]}, \"starttls\": true}\n");
    free(out);
    ok(owner.ndeliver == 1);
    ok_str(owner.from, "Ana@example.com");
    ok_str(owner.rcpts, "agent@mx.test");
    ok(owner.msg != NULL && ok_bytes(owner.msg, owner.msglen, python_msg, sizeof(python_msg) - 1));
    ok_str(owner.deliver_helo, "client.test");
    ok(owner.deliver_tls == tls);
    stop_server(srv);
}

static void test_tcp_smtplib_plain(void)
{
    smtplib_run(0);
}

static void test_tcp_smtplib_starttls(void)
{
    if (server_ctx == NULL) {
        ok(!"no TLS context");
        return;
    }
    smtplib_run(1);
}

static const char inject_script[] =
    "import socket, ssl, sys\n"
    "port, cafile = int(sys.argv[1]), sys.argv[3]\n"
    "def line(sk):\n"
    "    b = b''\n"
    "    while not b.endswith(b'\\n'):\n"
    "        c = sk.recv(1)\n"
    "        if not c: break\n"
    "        b += c\n"
    "    return b\n"
    "def reply(sk):\n"
    "    out = []\n"
    "    while True:\n"
    "        l = line(sk)\n"
    "        out.append(l.decode().rstrip())\n"
    "        if len(l) < 4 or l[3:4] != b'-': return '|'.join(out)\n"
    "s = socket.create_connection(('127.0.0.1', port), timeout=10)\n"
    "print(reply(s))\n"
    "s.sendall(b'EHLO inject.test\\r\\n'); print(reply(s))\n"
    "s.sendall(b'STARTTLS\\r\\nRSET\\r\\nMAIL FROM:<evil@example.com>\\r\\nRCPT TO:<victim@mx.test>\\r\\n')\n"
    "print(reply(s))\n"
    "t = ssl.create_default_context(cafile=cafile).wrap_socket(s, server_hostname='localhost')\n"
    "t.sendall(b'EHLO inject.test\\r\\n'); print(reply(t))\n"
    "t.sendall(b'MAIL FROM:<good@example.com>\\r\\n'); print(reply(t))\n"
    "t.sendall(b'QUIT\\r\\n'); print(reply(t))\n";

static void test_tcp_starttls_injection(void)
{
    cr_smtp_opts_t o = base_opts();
    cr_smtp_server_t *srv;
    char *out;
    if (server_ctx == NULL) {
        ok(!"no TLS context");
        return;
    }
    owner_reset();
    o.tls = server_ctx;
    srv = start_server(&o);
    out = run_python(inject_script, cr_smtp_port(srv), "inject");
    ok(out != NULL);
    if (out != NULL)
        ok_str(out, "220 mx.test ESMTP ready\n"
                    "250-mx.test|250-SIZE 1000|250-8BITMIME|250-PIPELINING|250-STARTTLS|250 ENHANCEDSTATUSCODES\n"
                    "220 2.0.0 Ready to start TLS\n"
                    "250-mx.test|250-SIZE 1000|250-8BITMIME|250-PIPELINING|250 ENHANCEDSTATUSCODES\n"
                    "250 2.1.0 Sender OK\n"
                    "221 2.0.0 mx.test closing connection\n");
    free(out);
    ok(owner.nrcpt_calls == 0);

    /* A client that goes on in plaintext after 220 gets no answer: the bytes go to the TLS handshake, which fails. */
    {
        client_t c;
        client_start(&c, cr_smtp_port(srv), "EHLO c\r\nSTARTTLS\r\n", 0);
        want_text = "220 2.0.0 Ready to start TLS\r\n";
        ok(run_until(client_has_text, &c, 3000));
        client_send(&c, "MAIL FROM:<evil@example.com>\r\nRCPT TO:<victim@mx.test>\r\n");
        ok(run_until(client_has_eof, &c, 3000));
        ok_str(c.got, "220 mx.test ESMTP ready\r\n" EHLO_REPLY_TLS "220 2.0.0 Ready to start TLS\r\n");
        ok(owner.nrcpt_calls == 0);
        client_close(&c);
    }
    stop_server(srv);
}

static void test_tcp_timeouts(void)
{
    cr_smtp_opts_t o = base_opts();
    cr_smtp_server_t *srv;
    client_t c;
    int64_t took;
    owner_reset();
    o.timeout_ms = 300;
    o.data_timeout_ms = 900;
    srv = start_server(&o);

    /* Idle: nothing after EHLO. */
    client_start(&c, cr_smtp_port(srv), "EHLO c\r\n", 0);
    ok(run_until(client_has_eof, &c, 5000));
    took = c.t_eof - c.t0;
    okf(took >= 280 && took < 2500, "closed after %lld ms", (long long)took);
    ok_str(c.got, "220 mx.test ESMTP ready\r\n" EHLO_REPLY "421 4.4.2 mx.test Error: timeout exceeded\r\n");
    client_close(&c);

    /* Data: a byte every 100 ms keeps the idle timer away, the total DATA time does not. */
    client_start(&c, cr_smtp_port(srv), "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<one@x.example>\r\nDATA\r\n", 0);
    client_drip(&c, 100);
    ok(run_until(client_has_eof, &c, 5000));
    took = c.t_eof - c.t0;
    okf(took >= 850 && took < 3000, "closed after %lld ms", (long long)took);
    ok_str(c.got, "220 mx.test ESMTP ready\r\n" EHLO_REPLY "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n"
                  "354 End data with <CR><LF>.<CR><LF>\r\n421 4.4.2 mx.test Error: timeout exceeded\r\n");
    ok(owner.ndeliver == 0);
    client_close(&c);
    stop_server(srv);
}

static size_t want_conns;
static cr_smtp_server_t *conns_srv;

static int conns_are(void *p)
{
    (void)p;
    return cr_smtp_conns(conns_srv) == want_conns;
}

static void test_tcp_max_conns(void)
{
    cr_smtp_opts_t o = base_opts();
    cr_smtp_server_t *srv;
    client_t c1, c2, c3, c4;
    o.max_conns = 2;
    srv = start_server(&o);
    conns_srv = srv;
    client_start(&c1, cr_smtp_port(srv), NULL, 0);
    client_start(&c2, cr_smtp_port(srv), NULL, 0);
    ok(run_until(client_has_bytes, &c1, 3000) && run_until(client_has_bytes, &c2, 3000));
    ok(cr_smtp_conns(srv) == 2);
    client_start(&c3, cr_smtp_port(srv), NULL, 0);
    ok(run_until(client_has_eof, &c3, 3000));
    ok_str(c3.got, "421 4.4.5 mx.test Error: too many connections, try again later\r\n");
    ok_str(c1.got, "220 mx.test ESMTP ready\r\n");
    ok(cr_smtp_conns(srv) == 2);
    /* One leaves: room for a new one. */
    client_send(&c1, "QUIT\r\n");
    ok(run_until(client_has_eof, &c1, 3000));
    ok_str(c1.got, "220 mx.test ESMTP ready\r\n221 2.0.0 mx.test closing connection\r\n");
    want_conns = 1;
    ok(run_until(conns_are, NULL, 3000));
    client_start(&c4, cr_smtp_port(srv), NULL, 0);
    ok(run_until(client_has_bytes, &c4, 3000));
    ok_str(c4.got, "220 mx.test ESMTP ready\r\n");
    client_close(&c1);
    client_close(&c2);
    client_close(&c3);
    client_close(&c4);
    want_conns = 0;
    ok(run_until(conns_are, NULL, 3000));
    stop_server(srv);
}

static void on_late_answer(uv_timer_t *t)
{
    (void)t;
    owner_answer(250, "2.0.0 stored late");
}

static void test_tcp_half_close(void)
{
    cr_smtp_opts_t o = base_opts();
    cr_smtp_server_t *srv;
    client_t c;
    uv_timer_t late;
    owner_reset();
    owner.async_deliver = 1;
    srv = start_server(&o);
    /* Everything pipelined in one packet, then a half-close; the owner stores the message 200 ms later. */
    client_start(&c, cr_smtp_port(srv),
                 "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<one@x.example>\r\nDATA\r\nhi\r\n.\r\nQUIT\r\n", 1);
    uv_timer_init(loop, &late);
    uv_timer_start(&late, on_late_answer, 200, 0);
    ok(run_until(client_has_eof, &c, 5000));
    ok_str(c.got, "220 mx.test ESMTP ready\r\n" EHLO_REPLY "250 2.1.0 Sender OK\r\n250 2.1.5 Recipient OK\r\n"
                  "354 End data with <CR><LF>.<CR><LF>\r\n250 2.0.0 stored late\r\n221 2.0.0 mx.test closing connection\r\n");
    ok_str(owner.msg, "hi\r\n");
    uv_close((uv_handle_t *)&late, NULL);
    client_close(&c);

    /* A half-close without QUIT: the replies still arrive before the server closes. */
    client_start(&c, cr_smtp_port(srv), "EHLO c\r\nNOOP\r\n", 1);
    ok(run_until(client_has_eof, &c, 5000));
    ok_str(c.got, "220 mx.test ESMTP ready\r\n" EHLO_REPLY "250 2.0.0 OK\r\n");
    client_close(&c);
    stop_server(srv);
}

static int owner_waits(void *p)
{
    (void)p;
    return owner.pfn != NULL;
}

static void test_tcp_close(void)
{
    cr_smtp_opts_t o = base_opts();
    cr_smtp_server_t *srv;
    client_t c1, c2;
    owner_reset();
    owner.async_rcpt = 1;
    srv = start_server(&o);
    client_start(&c1, cr_smtp_port(srv), "EHLO c\r\n", 0);
    client_start(&c2, cr_smtp_port(srv), "EHLO c\r\nMAIL FROM:<a@b.example>\r\nRCPT TO:<one@x.example>\r\n", 0);
    ok(run_until(owner_waits, NULL, 3000));
    want_text = "250 ENHANCEDSTATUSCODES\r\n";
    ok(run_until(client_has_text, &c1, 3000));
    want_text = "250 2.1.0 Sender OK\r\n";
    ok(run_until(client_has_text, &c2, 3000));
    cr_smtp_close(srv);
    ok(run_until(client_has_eof, &c1, 3000) && run_until(client_has_eof, &c2, 3000));
    ok_str(c1.got, "220 mx.test ESMTP ready\r\n" EHLO_REPLY "421 4.3.2 mx.test Service shutting down\r\n");
    ok_str(c2.got, "220 mx.test ESMTP ready\r\n" EHLO_REPLY "250 2.1.0 Sender OK\r\n421 4.3.2 mx.test Service shutting down\r\n");
    client_close(&c1);
    client_close(&c2);
    stop_server(NULL);
    /* The owner answers after the server is gone: dropped, and the session is freed then (ASan checks both). */
    owner_answer(250, NULL);
    ok(owner.pfn == NULL);
}

static void test_listen_errors(void)
{
    cr_smtp_opts_t o = base_opts();
    cr_smtp_server_t *srv = NULL;
    ok(cr_smtp_listen(&srv, loop, "nonsense", &o) == CR_ECONFIG && srv == NULL);
    ok(cr_smtp_listen(&srv, loop, "127.0.0.1:99999", &o) == CR_ECONFIG);
    ok(cr_smtp_listen(&srv, loop, "203.0.113.300:25", &o) == CR_ECONFIG);
    o.deliver = NULL;
    ok(cr_smtp_listen(&srv, loop, "127.0.0.1:0", &o) == CR_ECONFIG);
    cr_smtp_close(NULL);
}

int main(void)
{
    loop = uv_default_loop();
    make_tls();
    ok(server_ctx != NULL);
    subtest("greeting and EHLO", test_greeting_ehlo);
    subtest("command sequence", test_sequence);
    subtest("syntax, addresses, parameters, line length", test_syntax);
    subtest("a transaction", test_transaction);
    subtest("pipelining with late answers", test_pipelining_async);
    subtest("dot-unstuffing, bare LF, every split", test_dots_and_splits);
    subtest("size limit at MAIL and DATA", test_size);
    subtest("STARTTLS plaintext injection", test_starttls_injection);
    subtest("limits", test_limits);
    subtest("listen errors", test_listen_errors);
    subtest("TCP: smtplib plain", test_tcp_smtplib_plain);
    subtest("TCP: smtplib STARTTLS", test_tcp_smtplib_starttls);
    subtest("TCP: STARTTLS injection over real TLS", test_tcp_starttls_injection);
    subtest("TCP: timeouts", test_tcp_timeouts);
    subtest("TCP: max_conns", test_tcp_max_conns);
    subtest("TCP: pipelining and half-close", test_tcp_half_close);
    subtest("TCP: cr_smtp_close", test_tcp_close);
    owner_reset();
    ok(uv_loop_close(loop) == 0);
    SSL_CTX_free(server_ctx);
    return done_testing();
}
