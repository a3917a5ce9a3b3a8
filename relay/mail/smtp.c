/* smtp.c — the SMTP server: the protocol machine (cr_smtp_session_*, no sockets) and its transport (cr_smtp_listen:
 * libuv TCP, OpenSSL through memory BIOs for STARTTLS, timeouts, the connection limit). See smtp.h for the contract
 * and the choices a client can see. */
#include "smtp.h"
#include "corral/buf.h"
#include "corral/error.h"
#include "corral/log.h"
#include <limits.h>
#include <openssl/err.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define OUT_HIGH (16u << 10)              /* replies waiting before commands stop running */
#define OUT_LIMIT (OUT_HIGH + (8u << 10)) /* hard cap of the output (one command's replies fit above OUT_HIGH) */
#define HOST_MAX 255
#define HELO_MAX 255
#define ADDR_MAX 254   /* a path is at most 256 octets with its <> (RFC 5321 §4.5.3.1.3) */
#define LOCAL_MAX 64   /* §4.5.3.1.1 */
#define DOMAIN_MAX 255 /* §4.5.3.1.2 */
#define ANSWER_TEXT_MAX 200
#define READ_CHUNK (16u << 10)
#define LINGER_MS 2000u /* after our last reply, how long we drain what the client still sends */

enum { ST_INIT, ST_READY, ST_MAIL, ST_DATA };
enum { PEND_NONE, PEND_RCPT, PEND_DELIVER };
enum { D_BOL, D_LINE, D_CR, D_DOT, D_DOTCR }; /* where the data reader is: line start, mid-line, after CR, ... */

struct st_cr_smtp_session_t {
    cr_smtp_opts_t opts; /* hostname points to our own copy */
    char hostname[HOST_MAX + 1];
    char peer[80];
    char helo[HELO_MAX + 1];
    cr_buf_t in;    /* input not yet run (held while an answer is awaited) */
    cr_buf_t out;   /* replies not yet taken */
    cr_buf_t msg;   /* the message being received, capped at max_size */
    size_t scanned; /* bytes of `in` already searched for a LF */
    int state;
    int dstate;
    unsigned tls : 1, starttls : 1, closing : 1, skipping : 1, in_process : 1, dead : 1, answered : 1, too_big : 1, nomem : 1;
    char *from;
    char *rcpts[CR_SMTP_RCPTS_MAX];
    size_t nrcpts;
    size_t rcpt_tries; /* RCPT commands with good syntax in this transaction */
    int pending;
    char *pend_addr;
    int ans_code;
    char ans_text[ANSWER_TEXT_MAX + 16];
    unsigned errors, junk;
    void (*wake)(cr_smtp_session_t *s, void *data); /* the transport: an answer came after its callback returned */
    void *wake_data;
};

/* ---- small ASCII helpers (no locale) ---- */

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int is_alnum(int c)
{
    return is_digit(c) || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

static int to_lower(int c)
{
    return c >= 'A' && c <= 'Z' ? c + ('a' - 'A') : c;
}

static int is_atext(int c)
{
    return is_alnum(c) || (c != '\0' && strchr("!#$%&'*+-/=?^_`{|}~", c) != NULL);
}

/* Whether the n bytes at p are lit, ignoring case. */
static int ieq(const char *p, size_t n, const char *lit)
{
    size_t i;
    if (strlen(lit) != n)
        return 0;
    for (i = 0; i < n; ++i)
        if (to_lower((unsigned char)p[i]) != to_lower((unsigned char)lit[i]))
            return 0;
    return 1;
}

/* Whether the NUL-terminated s starts with lit, ignoring case. */
static int iprefix(const char *s, const char *lit)
{
    size_t n = strlen(lit);
    return strlen(s) >= n && ieq(s, n, lit);
}

/* ---- replies ---- */

static void session_close(cr_smtp_session_t *s)
{
    s->closing = 1;
    s->skipping = 0;
    s->scanned = 0;
    cr_buf_reset(&s->in);
}

/* Puts one reply line (CRLF added) into the output. A reply that does not fit ends the session. */
__attribute__((format(printf, 2, 3))) static void reply(cr_smtp_session_t *s, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(line, sizeof(line) - 2, fmt, ap);
    va_end(ap);
    if (n < 0)
        return;
    if ((size_t)n > sizeof(line) - 3)
        n = (int)sizeof(line) - 3;
    line[n++] = '\r';
    line[n++] = '\n';
    if (cr_buf_append(&s->out, line, (size_t)n) != 0)
        session_close(s);
}

/* An error reply that counts towards CR_SMTP_ERRORS_MAX. */
__attribute__((format(printf, 2, 3))) static void reply_err(cr_smtp_session_t *s, const char *fmt, ...)
{
    char line[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(line, sizeof(line), fmt, ap);
    va_end(ap);
    reply(s, "%s", line);
    if (++s->errors >= CR_SMTP_ERRORS_MAX && !s->closing) {
        reply(s, "421 4.7.0 %s Error: too many errors", s->hostname);
        session_close(s);
    }
}

/* Counts a command that moves no mail; past CR_SMTP_JUNK_MAX the session ends. Returns 1 when it did. */
static int junk(cr_smtp_session_t *s)
{
    if (++s->junk <= CR_SMTP_JUNK_MAX)
        return 0;
    reply(s, "421 4.7.0 %s Error: too many commands", s->hostname);
    session_close(s);
    return 1;
}

/* ---- the transaction ---- */

static void reset_tx(cr_smtp_session_t *s)
{
    size_t i;
    free(s->from);
    s->from = NULL;
    for (i = 0; i < s->nrcpts; ++i)
        free(s->rcpts[i]);
    s->nrcpts = 0;
    s->rcpt_tries = 0;
    cr_buf_free(&s->msg);
    if (s->state != ST_INIT)
        s->state = ST_READY;
}

/* ---- addresses ---- */

enum { PATH_NULL_OK = 1, PATH_POSTMASTER_OK = 2 };

/* Parses a domain or address literal at *pp (lower-cased into out, NUL-terminated; room for outmax bytes and the
 * NUL). Returns its length and moves *pp past it, or -1. */
static int parse_domain(const char **pp, const char *end, char *out, size_t outmax)
{
    const char *p = *pp;
    size_t n = 0;
    if (p < end && *p == '[') {
        out[n++] = '[';
        ++p;
        while (p < end && *p != ']') {
            int c = (unsigned char)*p++;
            if (c < 33 || c > 126 || c == '[' || c == '\\' || n + 2 > outmax)
                return -1;
            out[n++] = (char)to_lower(c);
        }
        if (p == end || n == 1)
            return -1;
        out[n++] = ']';
        ++p;
    } else {
        for (;;) {
            size_t start = n;
            while (p < end && (is_alnum((unsigned char)*p) || *p == '-')) {
                if (n >= outmax)
                    return -1;
                out[n++] = (char)to_lower((unsigned char)*p++);
            }
            if (n == start || n - start > 63 || out[start] == '-' || out[n - 1] == '-')
                return -1;
            if (p < end && *p == '.' && p + 1 < end && is_alnum((unsigned char)p[1])) {
                if (n >= outmax)
                    return -1;
                out[n++] = '.';
                ++p;
                continue;
            }
            break;
        }
    }
    out[n] = '\0';
    *pp = p;
    return (int)n;
}

/* Parses a reverse- or forward-path "<…>" at *pp into out (room for ADDR_MAX + 1): "local@domain" with the domain
 * lower-cased, "" for <> (PATH_NULL_OK), "postmaster" for <postmaster> (PATH_POSTMASTER_OK). A source route is
 * dropped. Returns 0 and moves *pp past the ">", or -1. */
static int parse_path(const char **pp, const char *end, int flags, char *out)
{
    char local[LOCAL_MAX + 1], domain[DOMAIN_MAX + 1];
    const char *p = *pp;
    size_t nl = 0;
    int nd;
    if (p >= end || *p != '<')
        return -1;
    ++p;
    if (p < end && *p == '>') {
        if (!(flags & PATH_NULL_OK))
            return -1;
        out[0] = '\0';
        *pp = p + 1;
        return 0;
    }
    if (p < end && *p == '@') { /* A-d-l ":" — a source route, ignored (§4.1.2, §C) */
        for (;;) {
            ++p;
            if (parse_domain(&p, end, domain, DOMAIN_MAX) < 0)
                return -1;
            if (p < end && *p == ',' && p + 1 < end && p[1] == '@') {
                ++p;
                continue;
            }
            if (p < end && *p == ':') {
                ++p;
                break;
            }
            return -1;
        }
    }
    if (p < end && *p == '"') { /* Quoted-string, kept with its quotes and escapes */
        local[nl++] = *p++;
        for (;;) {
            int c;
            if (p >= end || nl + 2 > LOCAL_MAX)
                return -1;
            c = (unsigned char)*p;
            if (c == '"') {
                local[nl++] = *p++;
                break;
            }
            if (c == '\\') {
                if (p + 1 >= end || (unsigned char)p[1] < 32 || (unsigned char)p[1] > 126)
                    return -1;
                local[nl++] = *p++;
                local[nl++] = *p++;
                continue;
            }
            if (c < 32 || c > 126)
                return -1;
            local[nl++] = *p++;
        }
    } else { /* Dot-string */
        for (;;) {
            size_t start = nl;
            while (p < end && is_atext((unsigned char)*p)) {
                if (nl >= LOCAL_MAX)
                    return -1;
                local[nl++] = *p++;
            }
            if (nl == start)
                return -1;
            if (p < end && *p == '.') {
                if (nl >= LOCAL_MAX)
                    return -1;
                local[nl++] = *p++;
                continue;
            }
            break;
        }
    }
    local[nl] = '\0';
    if (p < end && *p == '>' && (flags & PATH_POSTMASTER_OK) && ieq(local, nl, "postmaster")) {
        strcpy(out, "postmaster");
        *pp = p + 1;
        return 0;
    }
    if (p >= end || *p != '@')
        return -1;
    ++p;
    if ((nd = parse_domain(&p, end, domain, DOMAIN_MAX)) < 0 || p >= end || *p != '>')
        return -1;
    if (nl + 1 + (size_t)nd > ADDR_MAX)
        return -1;
    memcpy(out, local, nl);
    out[nl] = '@';
    memcpy(out + nl + 1, domain, (size_t)nd + 1);
    *pp = p + 1;
    return 0;
}

/* Runs the ESMTP parameters after a path (" KEY=VALUE KEY"). For MAIL (size not NULL) SIZE= and BODY= are known and
 * *size gets SIZE (saturated); for RCPT none is. Returns 0, or puts the error reply and returns -1. */
static int parse_params(cr_smtp_session_t *s, const char *p, const char *end, unsigned long long *size)
{
    int seen_size = 0, seen_body = 0;
    while (p < end) {
        const char *key, *val = NULL;
        size_t nkey, nval = 0;
        if (*p != ' ') {
            reply_err(s, "501 5.5.4 Syntax error in parameters");
            return -1;
        }
        while (p < end && *p == ' ')
            ++p;
        if (p == end)
            break;
        key = p;
        while (p < end && *p != ' ' && *p != '=')
            ++p;
        nkey = (size_t)(p - key);
        if (p < end && *p == '=') {
            val = ++p;
            while (p < end && *p != ' ')
                ++p;
            nval = (size_t)(p - val);
        }
        {
            size_t i;
            int good = nkey > 0 && is_alnum((unsigned char)key[0]) && (val == NULL || nval > 0);
            for (i = 0; good && i < nkey; ++i)
                good = is_alnum((unsigned char)key[i]) || key[i] == '-';
            for (i = 0; good && i < nval; ++i)
                good = (unsigned char)val[i] >= 33 && (unsigned char)val[i] <= 126 && val[i] != '=';
            if (!good) {
                reply_err(s, "501 5.5.4 Syntax error in parameters");
                return -1;
            }
        }
        if (size != NULL && ieq(key, nkey, "SIZE")) {
            unsigned long long v = 0;
            size_t i;
            if (seen_size++ || val == NULL || nval > 20) {
                reply_err(s, "501 5.5.4 Bad SIZE parameter");
                return -1;
            }
            for (i = 0; i < nval; ++i) {
                if (!is_digit((unsigned char)val[i])) {
                    reply_err(s, "501 5.5.4 Bad SIZE parameter");
                    return -1;
                }
                v = v > (ULLONG_MAX - 9) / 10 ? ULLONG_MAX : v * 10 + (unsigned)(val[i] - '0');
            }
            *size = v;
        } else if (size != NULL && ieq(key, nkey, "BODY")) {
            if (seen_body++ || val == NULL || !(ieq(val, nval, "7BIT") || ieq(val, nval, "8BITMIME"))) {
                reply_err(s, "501 5.5.4 Bad BODY parameter");
                return -1;
            }
        } else {
            reply_err(s, "555 5.5.4 Unsupported option: %.*s", (int)(nkey > 32 ? 32 : nkey), key);
            return -1;
        }
    }
    return 0;
}

/* ---- the owner's answers ---- */

/* Whether text starts with an enhanced status code of class cls ("5.1.1 " or "5.1.1" alone). */
static int has_enhanced(const char *t, int cls)
{
    int part, digits;
    if (t[0] != '0' + cls || t[1] != '.')
        return 0;
    t += 2;
    for (part = 0; part < 2; ++part) {
        for (digits = 0; is_digit((unsigned char)*t); ++t)
            ++digits;
        if (digits < 1 || digits > 3)
            return 0;
        if (part == 0 && *t++ != '.')
            return 0;
    }
    return *t == ' ' || *t == '\0';
}

/* Keeps the owner's answer as "<enhanced> text" in s->ans_text, safe to put on the wire. */
static void take_answer(cr_smtp_session_t *s, int code, const char *text)
{
    char clean[ANSWER_TEXT_MAX + 1];
    size_t n = 0;
    int cls;
    if (code < 200 || code > 599 || code / 100 == 3) {
        code = 451;
        text = "4.3.0 Local error in processing";
    }
    cls = code / 100;
    for (; text != NULL && text[n] != '\0' && n < ANSWER_TEXT_MAX; ++n) {
        unsigned char c = (unsigned char)text[n];
        clean[n] = c >= 32 && c < 127 ? (char)c : '?';
    }
    clean[n] = '\0';
    while (n > 0 && clean[n - 1] == ' ')
        clean[--n] = '\0';
    s->ans_code = code;
    if (n == 0) {
        const char *def;
        if (cls == 2)
            def = s->pending == PEND_RCPT ? "2.1.5 Recipient OK" : "2.0.0 OK: queued";
        else if (cls == 4)
            def = "4.3.0 Try again later";
        else
            def = s->pending == PEND_RCPT ? "5.1.1 No such user here" : "5.0.0 Message rejected";
        snprintf(s->ans_text, sizeof(s->ans_text), "%s", def);
    } else if (has_enhanced(clean, cls)) {
        snprintf(s->ans_text, sizeof(s->ans_text), "%s", clean);
    } else {
        snprintf(s->ans_text, sizeof(s->ans_text), "%d.0.0 %s", cls, clean);
    }
}

static void process(cr_smtp_session_t *s);

static void session_destroy(cr_smtp_session_t *s)
{
    reset_tx(s);
    free(s->pend_addr);
    cr_buf_free(&s->in);
    cr_buf_free(&s->out);
    cr_buf_free(&s->msg);
    free(s);
}

/* The answer function handed to rcpt and deliver. */
static void session_answer(cr_smtp_session_t *s, int code, const char *text)
{
    if (s->pending == PEND_NONE || s->answered)
        return;
    if (s->dead) {
        session_destroy(s);
        return;
    }
    take_answer(s, code, text);
    s->answered = 1;
    if (!s->in_process) {
        process(s);
        if (s->wake != NULL)
            s->wake(s, s->wake_data); /* may not touch s after this */
    }
}

/* Replies to an answered callback and moves on. */
static void finish_pending(cr_smtp_session_t *s)
{
    int code = s->ans_code, ok = code / 100 == 2, was = s->pending;
    s->pending = PEND_NONE;
    s->answered = 0;
    if (was == PEND_RCPT) {
        if (ok) {
            s->rcpts[s->nrcpts++] = s->pend_addr; /* now owned by the transaction */
            reply(s, "%d %s", code, s->ans_text);
        } else {
            free(s->pend_addr);
            reply_err(s, "%d %s", code, s->ans_text); /* refused recipients count: no address harvesting */
        }
        s->pend_addr = NULL;
        return;
    }
    reply(s, "%d %s", code, s->ans_text);
    reset_tx(s);
    if (ok)
        s->junk = 0;
}

/* ---- DATA ---- */

/* Adds message bytes, up to max_size. */
static void msg_add(cr_smtp_session_t *s, const void *p, size_t n)
{
    int rc;
    if (s->too_big || s->nomem || n == 0)
        return;
    if ((rc = cr_buf_append(&s->msg, p, n)) != 0) {
        if (rc == CR_ETOOLARGE)
            s->too_big = 1;
        else
            s->nomem = 1;
        cr_buf_free(&s->msg); /* read on to the end without keeping anything */
    }
}

/* The data ended ("\r\n.\r\n"): refuse it or hand it to the owner. */
static void end_data(cr_smtp_session_t *s)
{
    s->state = ST_MAIL;
    if (s->too_big) {
        reply(s, "552 5.3.4 Error: message exceeds fixed maximum message size");
        reset_tx(s);
        return;
    }
    if (s->nomem) {
        reply(s, "452 4.3.1 Error: insufficient system storage");
        reset_tx(s);
        return;
    }
    s->pending = PEND_DELIVER;
    s->answered = 0;
    s->opts.deliver(s, s->from, (const char *const *)s->rcpts, s->nrcpts, s->msg.base != NULL ? s->msg.base : "", s->msg.len,
                    session_answer, s->opts.data);
}

/* Reads message content: unstuffs dots, finds CRLF "." CRLF. Returns the bytes used (up to and including the end
 * marker, after which the data has ended). */
static size_t data_bytes(cr_smtp_session_t *s, const char *p, size_t n)
{
    size_t i = 0;
    while (i < n) {
        char c;
        switch (s->dstate) {
        case D_LINE: {
            const char *cr = memchr(p + i, '\r', n - i);
            size_t run = cr != NULL ? (size_t)(cr - (p + i)) : n - i;
            msg_add(s, p + i, run);
            i += run;
            if (cr != NULL) {
                s->dstate = D_CR;
                ++i;
            }
            break;
        }
        case D_BOL:
            c = p[i++];
            if (c == '.') {
                s->dstate = D_DOT;
            } else if (c == '\r') {
                s->dstate = D_CR;
            } else {
                msg_add(s, &c, 1);
                s->dstate = D_LINE;
            }
            break;
        case D_CR:
            c = p[i++];
            if (c == '\n') {
                msg_add(s, "\r\n", 2);
                s->dstate = D_BOL;
            } else if (c == '\r') {
                msg_add(s, "\r", 1);
            } else {
                msg_add(s, "\r", 1);
                msg_add(s, &c, 1);
                s->dstate = D_LINE;
            }
            break;
        case D_DOT: /* a "." at the start of a line: dropped; what follows is content unless it is CRLF */
            if (p[i] == '\r') {
                ++i;
                s->dstate = D_DOTCR;
            } else {
                s->dstate = D_LINE;
            }
            break;
        case D_DOTCR:
            c = p[i++];
            if (c == '\n') {
                end_data(s);
                return i;
            }
            msg_add(s, "\r", 1);
            if (c == '\r') {
                s->dstate = D_CR;
            } else {
                msg_add(s, &c, 1);
                s->dstate = D_LINE;
            }
            break;
        }
    }
    return i;
}

/* ---- commands ---- */

static void cmd_hello(cr_smtp_session_t *s, int ehlo, const char *arg)
{
    size_t n = strcspn(arg, " "), i;
    if (junk(s))
        return;
    if (n == 0) {
        reply_err(s, "501 5.5.4 Syntax: %s hostname", ehlo ? "EHLO" : "HELO");
        return;
    }
    if (n > HELO_MAX) {
        reply_err(s, "501 5.5.4 Error: hostname too long");
        return;
    }
    for (i = 0; i < n; ++i) {
        if ((unsigned char)arg[i] < 33 || (unsigned char)arg[i] > 126) {
            reply_err(s, "501 5.5.4 Error: invalid hostname");
            return;
        }
    }
    reset_tx(s);
    s->state = ST_READY;
    memcpy(s->helo, arg, n);
    s->helo[n] = '\0';
    if (!ehlo) {
        reply(s, "250 %s", s->hostname);
        return;
    }
    reply(s, "250-%s", s->hostname);
    reply(s, "250-SIZE %zu", s->opts.max_size);
    reply(s, "250-8BITMIME");
    reply(s, "250-PIPELINING");
    if (s->opts.tls != NULL && !s->tls)
        reply(s, "250-STARTTLS");
    reply(s, "250 ENHANCEDSTATUSCODES");
}

static void cmd_mail(cr_smtp_session_t *s, const char *arg, const char *end)
{
    char addr[ADDR_MAX + 1];
    unsigned long long size = 0;
    const char *p;
    if (s->state == ST_INIT) {
        reply_err(s, "503 5.5.1 Error: send HELO/EHLO first");
        return;
    }
    if (s->state == ST_MAIL) {
        reply_err(s, "503 5.5.1 Error: nested MAIL command");
        return;
    }
    if (!iprefix(arg, "FROM:")) {
        reply_err(s, "501 5.5.4 Syntax: MAIL FROM:<address>");
        return;
    }
    for (p = arg + 5; p < end && *p == ' '; ++p)
        ;
    if (parse_path(&p, end, PATH_NULL_OK, addr) != 0) {
        reply_err(s, "501 5.1.7 Bad sender address syntax");
        return;
    }
    if (parse_params(s, p, end, &size) != 0)
        return;
    if (size > s->opts.max_size) {
        reply(s, "552 5.3.4 Error: message size exceeds fixed maximum message size");
        return;
    }
    if ((s->from = cr_strndup(addr, strlen(addr))) == NULL) {
        reply(s, "452 4.3.1 Error: insufficient system storage");
        return;
    }
    s->state = ST_MAIL;
    reply(s, "250 2.1.0 Sender OK");
}

static void cmd_rcpt(cr_smtp_session_t *s, const char *arg, const char *end)
{
    char addr[ADDR_MAX + 1];
    const char *p;
    size_t i;
    if (s->state != ST_MAIL) {
        reply_err(s, "503 5.5.1 Error: need MAIL command");
        return;
    }
    if (!iprefix(arg, "TO:")) {
        reply_err(s, "501 5.5.4 Syntax: RCPT TO:<address>");
        return;
    }
    for (p = arg + 3; p < end && *p == ' '; ++p)
        ;
    if (parse_path(&p, end, PATH_POSTMASTER_OK, addr) != 0) {
        reply_err(s, "501 5.1.3 Bad recipient address syntax");
        return;
    }
    if (parse_params(s, p, end, NULL) != 0)
        return;
    ++s->rcpt_tries;
    for (i = 0; i < s->nrcpts; ++i) {
        if (strcmp(s->rcpts[i], addr) == 0) {
            reply(s, "250 2.1.5 Recipient OK");
            return;
        }
    }
    if (s->nrcpts >= CR_SMTP_RCPTS_MAX) {
        reply(s, "452 4.5.3 Error: too many recipients");
        return;
    }
    if ((s->pend_addr = cr_strndup(addr, strlen(addr))) == NULL) {
        reply(s, "452 4.3.1 Error: insufficient system storage");
        return;
    }
    s->pending = PEND_RCPT;
    s->answered = 0;
    s->opts.rcpt(s, s->pend_addr, session_answer, s->opts.data);
}

static void cmd_data(cr_smtp_session_t *s, const char *arg)
{
    if (*arg != '\0') {
        reply_err(s, "501 5.5.4 Syntax: DATA");
        return;
    }
    if (s->state != ST_MAIL) {
        reply_err(s, "503 5.5.1 Error: need MAIL command");
        return;
    }
    if (s->rcpt_tries == 0) {
        reply_err(s, "503 5.5.1 Error: need RCPT command");
        return;
    }
    if (s->nrcpts == 0) {
        reply_err(s, "554 5.5.0 Error: no valid recipients");
        return;
    }
    cr_buf_free(&s->msg);
    cr_buf_init(&s->msg, s->opts.max_size);
    s->too_big = s->nomem = 0;
    s->dstate = D_BOL;
    s->state = ST_DATA;
    reply(s, "354 End data with <CR><LF>.<CR><LF>");
}

static void cmd_starttls(cr_smtp_session_t *s, const char *arg)
{
    if (s->opts.tls == NULL) {
        reply_err(s, "502 5.5.1 Error: command not implemented");
        return;
    }
    if (s->tls) {
        reply_err(s, "503 5.5.1 Error: TLS already active");
        return;
    }
    if (*arg != '\0') {
        reply_err(s, "501 5.5.4 Syntax: STARTTLS");
        return;
    }
    reply(s, "220 2.0.0 Ready to start TLS");
    reset_tx(s);
    s->state = ST_INIT;
    s->helo[0] = '\0';
    s->starttls = 1;
    /* Anything the client pipelined after STARTTLS came in plaintext: never run it (CVE-2011-0411). */
    cr_buf_reset(&s->in);
    s->scanned = 0;
    s->skipping = 0;
}

/* Runs one command line (without its line end, no control characters but TAB). */
static void command(cr_smtp_session_t *s, char *line, size_t len)
{
    size_t nverb = 0;
    char *arg, *end = line + len;
    while (end > line && (end[-1] == ' ' || end[-1] == '\t'))
        *--end = '\0';
    while (line + nverb < end && line[nverb] != ' ')
        ++nverb;
    for (arg = line + nverb; arg < end && *arg == ' '; ++arg)
        ;
    if (nverb == 0) {
        reply_err(s, "500 5.5.2 Error: bad syntax");
    } else if (ieq(line, nverb, "EHLO") || ieq(line, nverb, "HELO")) {
        cmd_hello(s, to_lower((unsigned char)line[0]) == 'e', arg);
    } else if (ieq(line, nverb, "MAIL")) {
        cmd_mail(s, arg, end);
    } else if (ieq(line, nverb, "RCPT")) {
        cmd_rcpt(s, arg, end);
    } else if (ieq(line, nverb, "DATA")) {
        cmd_data(s, arg);
    } else if (ieq(line, nverb, "RSET")) {
        if (*arg != '\0') {
            reply_err(s, "501 5.5.4 Syntax: RSET");
        } else if (!junk(s)) {
            reset_tx(s);
            reply(s, "250 2.0.0 OK");
        }
    } else if (ieq(line, nverb, "NOOP")) {
        if (!junk(s))
            reply(s, "250 2.0.0 OK");
    } else if (ieq(line, nverb, "QUIT")) {
        reply(s, "221 2.0.0 %s closing connection", s->hostname);
        session_close(s);
    } else if (ieq(line, nverb, "STARTTLS")) {
        cmd_starttls(s, arg);
    } else if (ieq(line, nverb, "VRFY")) {
        if (*arg == '\0')
            reply_err(s, "501 5.5.4 Syntax: VRFY address");
        else if (!junk(s))
            reply(s, "252 2.5.2 Cannot VRFY user; try RCPT to attempt delivery");
    } else if (ieq(line, nverb, "HELP")) {
        if (!junk(s))
            reply(s, "214 2.0.0 Commands: EHLO HELO MAIL RCPT DATA RSET NOOP VRFY HELP QUIT%s",
                  s->opts.tls != NULL && !s->tls ? " STARTTLS" : "");
    } else if (ieq(line, nverb, "AUTH")) {
        reply_err(s, "502 5.5.1 Error: authentication not enabled");
    } else if (ieq(line, nverb, "EXPN") || ieq(line, nverb, "BDAT") || ieq(line, nverb, "ETRN") || ieq(line, nverb, "TURN") ||
               ieq(line, nverb, "ATRN") || ieq(line, nverb, "SEND") || ieq(line, nverb, "SOML") || ieq(line, nverb, "SAML")) {
        reply_err(s, "502 5.5.1 Error: command not implemented");
    } else {
        reply_err(s, "500 5.5.2 Error: command not recognized");
    }
}

/* Takes the next complete command line out of s->in and runs it. Returns 0 when there is none yet. */
static int next_line(cr_smtp_session_t *s)
{
    char line[CR_SMTP_LINE_MAX + 1];
    const char *lf = NULL;
    size_t n, len, i;
    if (s->in.len > s->scanned)
        lf = memchr(s->in.base + s->scanned, '\n', s->in.len - s->scanned);
    if (lf == NULL) {
        if (s->skipping) {
            cr_buf_reset(&s->in);
            s->scanned = 0;
            return 0;
        }
        if (s->in.len >= CR_SMTP_LINE_MAX) { /* with its LF still to come it is too long already */
            cr_buf_reset(&s->in);
            s->scanned = 0;
            s->skipping = 1;
            reply_err(s, "500 5.5.6 Error: line too long");
            return 1;
        }
        s->scanned = s->in.len;
        return 0;
    }
    n = (size_t)(lf - s->in.base) + 1;
    s->scanned = 0;
    if (s->skipping) {
        s->skipping = 0;
        cr_buf_consume(&s->in, n);
        return 1;
    }
    if (n > CR_SMTP_LINE_MAX) {
        cr_buf_consume(&s->in, n);
        reply_err(s, "500 5.5.6 Error: line too long");
        return 1;
    }
    len = n - 1;
    if (len > 0 && s->in.base[len - 1] == '\r')
        --len;
    memcpy(line, s->in.base, len);
    line[len] = '\0';
    cr_buf_consume(&s->in, n);
    for (i = 0; i < len; ++i) {
        unsigned char c = (unsigned char)line[i];
        if ((c < 32 && c != '\t') || c == 127) {
            reply_err(s, "500 5.5.2 Error: bad characters in command");
            return 1;
        }
    }
    command(s, line, len);
    return 1;
}

/* Runs held input and answered callbacks for as long as the session can. */
static void process(cr_smtp_session_t *s)
{
    if (s->in_process || s->dead)
        return;
    s->in_process = 1;
    while (!s->closing && !s->starttls) {
        if (s->pending != PEND_NONE) {
            if (!s->answered)
                break;
            finish_pending(s);
            continue;
        }
        if (s->out.len >= OUT_HIGH)
            break;
        if (s->state == ST_DATA) {
            if (s->in.len == 0)
                break;
            cr_buf_consume(&s->in, data_bytes(s, s->in.base, s->in.len));
            continue;
        }
        if (!next_line(s))
            break;
    }
    s->in_process = 0;
}

/* ---- the session's public face ---- */

static void apply_defaults(cr_smtp_opts_t *o)
{
    if (o->max_size == 0)
        o->max_size = CR_SMTP_SIZE_DEFAULT;
    if (o->timeout_ms == 0)
        o->timeout_ms = CR_SMTP_TIMEOUT_DEFAULT_MS;
    if (o->data_timeout_ms == 0)
        o->data_timeout_ms = CR_SMTP_DATA_TIMEOUT_DEFAULT_MS;
    if (o->max_conns == 0)
        o->max_conns = CR_SMTP_CONNS_DEFAULT;
}

/* Checks opts and copies the hostname into host. Returns 0 or CR_ECONFIG. */
static int check_opts(const cr_smtp_opts_t *opts, char *host)
{
    const char *h = opts->hostname != NULL ? opts->hostname : "localhost";
    size_t i, n = strlen(h);
    if (opts->rcpt == NULL || opts->deliver == NULL)
        return cr_error_set(CR_ECONFIG, "smtp", "the SMTP server needs rcpt and deliver callbacks");
    if (n == 0 || n > HOST_MAX)
        return cr_error_set(CR_ECONFIG, "smtp.hostname", "the SMTP hostname must have 1 to %d characters", HOST_MAX);
    for (i = 0; i < n; ++i)
        if ((unsigned char)h[i] <= 32 || (unsigned char)h[i] >= 127)
            return cr_error_set(CR_ECONFIG, "smtp.hostname", "the SMTP hostname must be printable ASCII without spaces");
    memcpy(host, h, n + 1);
    return 0;
}

int cr_smtp_session_new(cr_smtp_session_t **out, const cr_smtp_opts_t *opts, const char *peer)
{
    cr_smtp_session_t *s;
    char host[HOST_MAX + 1];
    int rc;
    *out = NULL;
    if ((rc = check_opts(opts, host)) != 0)
        return rc;
    if ((s = calloc(1, sizeof(*s))) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory for an SMTP session");
    s->opts = *opts;
    apply_defaults(&s->opts);
    memcpy(s->hostname, host, sizeof(host));
    s->opts.hostname = s->hostname;
    snprintf(s->peer, sizeof(s->peer), "%s", peer != NULL ? peer : "");
    cr_buf_init(&s->in, CR_SMTP_INPUT_MAX);
    cr_buf_init(&s->out, OUT_LIMIT);
    cr_buf_init(&s->msg, s->opts.max_size);
    reply(s, "220 %s ESMTP ready", s->hostname);
    *out = s;
    return 0;
}

void cr_smtp_session_free(cr_smtp_session_t *s)
{
    if (s == NULL)
        return;
    s->wake = NULL;
    if (s->pending != PEND_NONE && !s->answered) {
        /* The owner still holds addr / the message and will answer: linger until then. */
        s->dead = 1;
        s->closing = 1;
        cr_buf_free(&s->in);
        cr_buf_free(&s->out);
        return;
    }
    session_destroy(s);
}

int cr_smtp_session_feed(cr_smtp_session_t *s, const void *data, size_t n)
{
    const char *p = data;
    if (s->closing || s->starttls || s->dead)
        return 0;
    if (n > 0 && s->in.len == 0 && s->state == ST_DATA) {
        /* Content streams straight into the message; only what follows its end is held. */
        size_t k;
        s->in_process = 1;
        k = data_bytes(s, p, n);
        s->in_process = 0;
        p += k;
        n -= k;
        if (s->closing || s->starttls)
            return 0;
    }
    if (n > 0) {
        int rc = cr_buf_append(&s->in, p, n);
        if (rc != 0) {
            session_close(s);
            reply(s, "421 4.7.0 %s Error: %s", s->hostname,
                  rc == CR_ETOOLARGE ? "too much pipelined input" : "insufficient system storage");
            return rc == CR_ETOOLARGE ? cr_error_set(CR_ETOOLARGE, NULL, "more than %u bytes of SMTP input held", CR_SMTP_INPUT_MAX)
                                      : CR_ENOMEM;
        }
    }
    process(s);
    return 0;
}

const char *cr_smtp_session_output(const cr_smtp_session_t *s, size_t *len)
{
    *len = s->out.len;
    return s->out.base != NULL ? s->out.base : "";
}

void cr_smtp_session_consume(cr_smtp_session_t *s, size_t n)
{
    cr_buf_consume(&s->out, n > s->out.len ? s->out.len : n);
}

int cr_smtp_session_status(const cr_smtp_session_t *s)
{
    int st = 0;
    if (s->closing)
        return CR_SMTP_CLOSE;
    if (s->starttls)
        return CR_SMTP_STARTTLS;
    if (s->pending != PEND_NONE && !s->answered)
        st |= CR_SMTP_WAITING;
    else if (s->out.len < OUT_HIGH)
        st |= CR_SMTP_READ;
    if (s->state == ST_DATA)
        st |= CR_SMTP_DATA;
    return st;
}

void cr_smtp_session_tls_started(cr_smtp_session_t *s)
{
    s->starttls = 0;
    s->tls = 1;
    reset_tx(s);
    s->state = ST_INIT;
    s->helo[0] = '\0';
    cr_buf_reset(&s->in);
    s->scanned = 0;
    s->skipping = 0;
}

void cr_smtp_session_end(cr_smtp_session_t *s, cr_smtp_end_t why)
{
    if (s->closing)
        return;
    session_close(s);
    s->starttls = 0;
    if (why == CR_SMTP_END_TIMEOUT)
        reply(s, "421 4.4.2 %s Error: timeout exceeded", s->hostname);
    else
        reply(s, "421 4.3.2 %s Service shutting down", s->hostname);
}

const char *cr_smtp_session_peer(const cr_smtp_session_t *s)
{
    return s->peer;
}

const char *cr_smtp_session_helo(const cr_smtp_session_t *s)
{
    return s->helo;
}

int cr_smtp_session_tls(const cr_smtp_session_t *s)
{
    return s->tls;
}

/* ---- the TCP transport ---- */

enum { TLS_NONE, TLS_HANDSHAKE, TLS_UP };

typedef struct st_smtp_conn_t smtp_conn_t;

struct st_smtp_conn_t {
    cr_smtp_server_t *server;
    smtp_conn_t *prev, *next;
    uv_tcp_t tcp;
    uv_timer_t timer;
    uv_write_t wreq;
    uv_shutdown_t sreq;
    cr_smtp_session_t *sess; /* NULL: refused for the connection limit */
    SSL *ssl;
    int tls;
    int handles; /* libuv handles not yet closed */
    unsigned writing : 1, closed : 1, shutting : 1, lingering : 1, eof : 1, reading : 1, in_pump : 1, again : 1;
    char *wdata;      /* the bytes of the write in flight */
    uint64_t idle_at; /* loop time when the idle timeout strikes */
    uint64_t data_at; /* loop time when the data timeout strikes; 0: not in DATA */
    char peer[80];
    char rbuf[READ_CHUNK];
};

struct st_cr_smtp_server_t {
    uv_loop_t *loop;
    uv_tcp_t listener;
    cr_smtp_opts_t opts;
    char hostname[HOST_MAX + 1];
    int port;
    smtp_conn_t *conns;
    size_t nsessions, nrefused;
    unsigned closing : 1, listener_closed : 1;
};

static void conn_pump(smtp_conn_t *c);

static void server_maybe_free(cr_smtp_server_t *srv)
{
    if (srv->closing && srv->listener_closed && srv->conns == NULL)
        free(srv);
}

static void conn_free(smtp_conn_t *c)
{
    cr_smtp_server_t *srv = c->server;
    if (c->prev != NULL)
        c->prev->next = c->next;
    else
        srv->conns = c->next;
    if (c->next != NULL)
        c->next->prev = c->prev;
    if (c->sess != NULL) {
        --srv->nsessions;
        cr_smtp_session_free(c->sess); /* lingers if the owner still has to answer */
    } else {
        --srv->nrefused;
    }
    SSL_free(c->ssl);
    free(c->wdata);
    free(c);
    server_maybe_free(srv);
}

static void on_conn_handle_close(uv_handle_t *h)
{
    smtp_conn_t *c = h->data;
    if (--c->handles == 0)
        conn_free(c);
}

/* Closes the connection at once (pending writes are cancelled). */
static void close_now(smtp_conn_t *c)
{
    if (c->closed)
        return;
    c->closed = 1;
    cr_log(CR_LOG_DEBUG, "smtp %s: closed", c->peer);
    uv_close((uv_handle_t *)&c->tcp, on_conn_handle_close);
    uv_close((uv_handle_t *)&c->timer, on_conn_handle_close);
}

static void on_timer(uv_timer_t *t);

static void arm_timer(smtp_conn_t *c)
{
    uint64_t now = uv_now(c->server->loop), at = c->idle_at;
    if (c->data_at != 0 && c->data_at < at)
        at = c->data_at;
    uv_timer_start(&c->timer, on_timer, at > now ? at - now : 0, 0);
}

/* Progress: the idle timeout starts over. */
static void touch(smtp_conn_t *c)
{
    c->idle_at = uv_now(c->server->loop) + c->server->opts.timeout_ms;
    arm_timer(c);
}

static void on_alloc(uv_handle_t *h, size_t suggested, uv_buf_t *buf)
{
    smtp_conn_t *c = h->data;
    (void)suggested;
    *buf = uv_buf_init(c->rbuf, sizeof(c->rbuf));
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf);

static void start_reading(smtp_conn_t *c)
{
    if (!c->reading && !c->eof && uv_read_start((uv_stream_t *)&c->tcp, on_alloc, on_read) == 0)
        c->reading = 1;
}

static void stop_reading(smtp_conn_t *c)
{
    if (c->reading) {
        uv_read_stop((uv_stream_t *)&c->tcp);
        c->reading = 0;
    }
}

/* The bytes to put on the wire now: the session's output (through TLS when it is up) and TLS's own records.
 * Returns a malloc'd buffer with *len bytes, NULL with *len 0 when there is nothing, NULL with *len 1 on failure. */
static char *gather(smtp_conn_t *c, size_t *len)
{
    size_t olen = 0;
    const char *o = c->sess != NULL ? cr_smtp_session_output(c->sess, &olen) : "";
    char *buf;
    *len = 0;
    if (c->tls == TLS_UP && olen > 0) {
        if (SSL_write(c->ssl, o, (int)olen) != (int)olen) {
            *len = 1;
            return NULL;
        }
        cr_smtp_session_consume(c->sess, olen);
    }
    if (c->tls != TLS_NONE) {
        BIO *wbio = SSL_get_wbio(c->ssl);
        size_t pending = BIO_ctrl_pending(wbio);
        if (pending == 0)
            return NULL;
        if ((buf = malloc(pending)) == NULL || BIO_read(wbio, buf, (int)pending) != (int)pending) {
            free(buf);
            *len = 1;
            return NULL;
        }
        *len = pending;
        return buf;
    }
    if (olen == 0)
        return NULL;
    if ((buf = malloc(olen)) == NULL) {
        *len = 1;
        return NULL;
    }
    memcpy(buf, o, olen);
    cr_smtp_session_consume(c->sess, olen);
    *len = olen;
    return buf;
}

static void on_write(uv_write_t *req, int status)
{
    smtp_conn_t *c = req->data;
    free(c->wdata);
    c->wdata = NULL;
    c->writing = 0;
    if (c->closed)
        return;
    if (status < 0) {
        close_now(c);
        return;
    }
    touch(c);
    if (c->sess != NULL && !c->shutting)
        cr_smtp_session_feed(c->sess, NULL, 0); /* the output drained: go on with held input */
    conn_pump(c);
}

/* Starts writing buf (taken over). Returns 0 or -1. */
static int write_bytes(smtp_conn_t *c, char *buf, size_t len)
{
    uv_buf_t b = uv_buf_init(buf, (unsigned)len);
    c->wdata = buf; /* now owned by the write */
    c->wreq.data = c;
    if (uv_write(&c->wreq, (uv_stream_t *)&c->tcp, &b, 1, on_write) != 0) {
        free(buf);
        c->wdata = NULL;
        return -1;
    }
    c->writing = 1;
    return 0;
}

/* Sends what there is to send, one write at a time. Returns 0 or -1. */
static int flush(smtp_conn_t *c)
{
    size_t len;
    char *buf;
    if (c->writing)
        return 0;
    buf = gather(c, &len);
    if (buf == NULL)
        return len == 0 ? 0 : -1;
    return write_bytes(c, buf, len);
}

static void on_shutdown(uv_shutdown_t *req, int status)
{
    smtp_conn_t *c = req->data;
    if (c->closed)
        return;
    if (status < 0 || c->eof) {
        close_now(c);
        return;
    }
    /* Drain what the client still sends for a moment, so that closing does not reset the connection before the
     * client has read our last reply. */
    c->lingering = 1;
    start_reading(c);
    c->idle_at = uv_now(c->server->loop) + (c->server->opts.timeout_ms < LINGER_MS ? c->server->opts.timeout_ms : LINGER_MS);
    c->data_at = 0;
    arm_timer(c);
}

/* The last reply is sent: say goodbye (TLS close_notify, FIN) and close. */
static void begin_close(smtp_conn_t *c)
{
    if (c->shutting || c->closed)
        return;
    stop_reading(c);
    c->shutting = 1;
    if (c->tls == TLS_UP) {
        size_t len;
        char *buf;
        SSL_shutdown(c->ssl);
        if ((buf = gather(c, &len)) != NULL && write_bytes(c, buf, len) != 0) {
            close_now(c);
            return;
        }
    }
    c->sreq.data = c;
    if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
        close_now(c);
}

static void log_ssl_error(smtp_conn_t *c, const char *what)
{
    char err[256];
    unsigned long e = ERR_get_error();
    if (e != 0)
        ERR_error_string_n(e, err, sizeof(err));
    else
        snprintf(err, sizeof(err), "connection closed");
    ERR_clear_error();
    cr_log(CR_LOG_INFO, "smtp %s: %s: %s", c->peer, what, err);
}

static int start_tls(smtp_conn_t *c)
{
    BIO *rbio, *wbio;
    if ((c->ssl = SSL_new(c->server->opts.tls)) == NULL) {
        log_ssl_error(c, "cannot start TLS");
        return -1;
    }
    rbio = BIO_new(BIO_s_mem());
    wbio = BIO_new(BIO_s_mem());
    if (rbio == NULL || wbio == NULL) {
        BIO_free(rbio);
        BIO_free(wbio);
        log_ssl_error(c, "cannot start TLS");
        return -1;
    }
    SSL_set_bio(c->ssl, rbio, wbio); /* now owned by the SSL */
    SSL_set_options(c->ssl, SSL_OP_NO_RENEGOTIATION);
    SSL_set_accept_state(c->ssl);
    c->tls = TLS_HANDSHAKE;
    return 0;
}

/* Runs the TLS handshake and hands decrypted input to the session while it takes some. Returns 0, or -1 when the
 * connection is done for (handshake failure, close_notify, a TLS error). */
static int tls_input(smtp_conn_t *c)
{
    if (c->tls == TLS_HANDSHAKE) {
        int r = SSL_do_handshake(c->ssl);
        if (r != 1) {
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                return 0;
            log_ssl_error(c, "TLS handshake failed");
            return -1;
        }
        c->tls = TLS_UP;
        cr_smtp_session_tls_started(c->sess);
        cr_log(CR_LOG_DEBUG, "smtp %s: TLS up (%s, %s)", c->peer, SSL_get_version(c->ssl), SSL_get_cipher_name(c->ssl));
    }
    while (c->tls == TLS_UP && (cr_smtp_session_status(c->sess) & CR_SMTP_READ)) {
        int n = SSL_read(c->ssl, c->rbuf, (int)sizeof(c->rbuf));
        if (n > 0) {
            cr_smtp_session_feed(c->sess, c->rbuf, (size_t)n);
            continue;
        }
        if (SSL_get_error(c->ssl, n) == SSL_ERROR_WANT_READ)
            return 0;
        if (SSL_get_error(c->ssl, n) != SSL_ERROR_ZERO_RETURN)
            log_ssl_error(c, "TLS read failed");
        return -1;
    }
    return 0;
}

/* Moves the connection on after anything happened: TLS input, output, STARTTLS, close, reading, timers. */
static void conn_pump(smtp_conn_t *c)
{
    if (c->closed || c->shutting)
        return;
    if (c->in_pump) {
        c->again = 1;
        return;
    }
    c->in_pump = 1;
    do {
        size_t olen;
        int st;
        c->again = 0;
        if (c->tls != TLS_NONE && tls_input(c) != 0) {
            close_now(c);
            break;
        }
        if (flush(c) != 0) {
            close_now(c);
            break;
        }
        if (c->tls == TLS_HANDSHAKE) {
            start_reading(c);
            break;
        }
        st = cr_smtp_session_status(c->sess);
        cr_smtp_session_output(c->sess, &olen);
        /* The session says goodbye, or the client half-closed and everything it sent is answered. */
        if ((st & CR_SMTP_CLOSE) || (c->eof && !(st & CR_SMTP_WAITING))) {
            stop_reading(c);
            if (!c->writing && olen == 0)
                begin_close(c);
            break;
        }
        if (st & CR_SMTP_STARTTLS) {
            stop_reading(c);
            if (!c->writing && olen == 0) {
                if (start_tls(c) != 0) {
                    close_now(c);
                    break;
                }
                start_reading(c);
            }
            break;
        }
        if (st & CR_SMTP_DATA) {
            if (c->data_at == 0) {
                c->data_at = uv_now(c->server->loop) + c->server->opts.data_timeout_ms;
                arm_timer(c);
            }
        } else if (c->data_at != 0) {
            c->data_at = 0;
            arm_timer(c);
        }
        if (st & CR_SMTP_READ) {
            start_reading(c);
        } else {
            stop_reading(c);
        }
    } while (c->again && !c->closed && !c->shutting);
    c->in_pump = 0;
}

static void on_read(uv_stream_t *stream, ssize_t nread, const uv_buf_t *buf)
{
    smtp_conn_t *c = stream->data;
    (void)buf;
    if (c->closed)
        return;
    if (nread < 0) {
        if (nread != UV_EOF || c->lingering || c->sess == NULL || c->tls == TLS_HANDSHAKE) {
            close_now(c);
            return;
        }
        /* A half-close: answer what was sent, then close. */
        stop_reading(c);
        c->eof = 1;
        conn_pump(c);
        return;
    }
    if (nread == 0 || c->lingering || c->sess == NULL)
        return;
    touch(c);
    if (c->tls == TLS_NONE) {
        cr_smtp_session_feed(c->sess, c->rbuf, (size_t)nread);
    } else if (BIO_write(SSL_get_rbio(c->ssl), c->rbuf, (int)nread) != (int)nread) {
        close_now(c);
        return;
    }
    conn_pump(c);
}

static void on_timer(uv_timer_t *t)
{
    smtp_conn_t *c = t->data;
    uint64_t now = uv_now(c->server->loop);
    if (c->closed)
        return;
    if (c->idle_at > now && (c->data_at == 0 || c->data_at > now)) {
        arm_timer(c);
        return;
    }
    if (c->shutting || c->lingering || c->sess == NULL || c->tls == TLS_HANDSHAKE ||
        (cr_smtp_session_status(c->sess) & CR_SMTP_CLOSE)) {
        close_now(c); /* it does not read what we say: give up on it */
        return;
    }
    cr_log(CR_LOG_INFO, "smtp %s: %s timeout", c->peer, c->idle_at <= now ? "idle" : "data");
    cr_smtp_session_end(c->sess, CR_SMTP_END_TIMEOUT);
    c->data_at = 0;
    c->idle_at = now + (c->server->opts.timeout_ms < LINGER_MS ? c->server->opts.timeout_ms : LINGER_MS);
    arm_timer(c);
    conn_pump(c);
}

static void on_session_wake(cr_smtp_session_t *s, void *data)
{
    (void)s;
    conn_pump(data);
}

static void peer_name(smtp_conn_t *c)
{
    struct sockaddr_storage ss;
    int len = (int)sizeof(ss);
    char ip[64];
    snprintf(c->peer, sizeof(c->peer), "?");
    if (uv_tcp_getpeername(&c->tcp, (struct sockaddr *)&ss, &len) != 0)
        return;
    if (ss.ss_family == AF_INET && uv_ip4_name((struct sockaddr_in *)&ss, ip, sizeof(ip)) == 0)
        snprintf(c->peer, sizeof(c->peer), "%s:%u", ip, ntohs(((struct sockaddr_in *)&ss)->sin_port));
    else if (ss.ss_family == AF_INET6 && uv_ip6_name((struct sockaddr_in6 *)&ss, ip, sizeof(ip)) == 0)
        snprintf(c->peer, sizeof(c->peer), "[%s]:%u", ip, ntohs(((struct sockaddr_in6 *)&ss)->sin6_port));
}

static void on_connection(uv_stream_t *listener, int status)
{
    cr_smtp_server_t *srv = listener->data;
    smtp_conn_t *c;
    if (status < 0) {
        cr_log(CR_LOG_WARN, "smtp: accept failed: %s", uv_strerror(status));
        return;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        cr_log(CR_LOG_ERROR, "smtp: out of memory for a connection");
        return;
    }
    c->server = srv;
    uv_tcp_init(srv->loop, &c->tcp);
    uv_timer_init(srv->loop, &c->timer);
    c->tcp.data = c->timer.data = c;
    c->handles = 2;
    c->next = srv->conns;
    if (srv->conns != NULL)
        srv->conns->prev = c;
    srv->conns = c;
    ++srv->nrefused; /* until it has a session */
    if (uv_accept(listener, (uv_stream_t *)&c->tcp) != 0) {
        close_now(c);
        return;
    }
    uv_tcp_nodelay(&c->tcp, 1);
    peer_name(c);
    touch(c);
    if (srv->nsessions >= srv->opts.max_conns) {
        char line[HOST_MAX + 64];
        int n = snprintf(line, sizeof(line), "421 4.4.5 %s Error: too many connections, try again later\r\n", srv->hostname);
        char *buf;
        cr_log(CR_LOG_WARN, "smtp %s: refused: %zu sessions open", c->peer, srv->nsessions);
        if (srv->nrefused > srv->opts.max_conns || (buf = cr_strndup(line, (size_t)n)) == NULL ||
            write_bytes(c, buf, (size_t)n) != 0) {
            close_now(c);
            return;
        }
        c->shutting = 1;
        c->sreq.data = c;
        if (uv_shutdown(&c->sreq, (uv_stream_t *)&c->tcp, on_shutdown) != 0)
            close_now(c);
        return;
    }
    if (cr_smtp_session_new(&c->sess, &srv->opts, c->peer) != 0) {
        cr_log(CR_LOG_ERROR, "smtp %s: %s", c->peer, cr_error_last()->message);
        close_now(c);
        return;
    }
    --srv->nrefused;
    ++srv->nsessions;
    c->sess->wake = on_session_wake;
    c->sess->wake_data = c;
    cr_log(CR_LOG_DEBUG, "smtp %s: connected", c->peer);
    conn_pump(c);
}

/* Parses "host:port" ("[v6]:port" too) into addr. */
static int parse_addr(const char *s, struct sockaddr_storage *addr)
{
    char host[256];
    const char *colon = strrchr(s, ':');
    char *endp;
    long port;
    if (colon == NULL || (size_t)(colon - s) >= sizeof(host))
        return cr_error_set(CR_ECONFIG, "smtp.listen", "smtp.listen must be host:port, got '%s'", s);
    port = strtol(colon + 1, &endp, 10);
    if (endp == colon + 1 || *endp != '\0' || port < 0 || port > 65535)
        return cr_error_set(CR_ECONFIG, "smtp.listen", "smtp.listen must be host:port, got '%s'", s);
    memcpy(host, s, (size_t)(colon - s));
    host[colon - s] = '\0';
    memset(addr, 0, sizeof(*addr));
    if (host[0] == '[') {
        size_t n = strlen(host);
        if (n < 2 || host[n - 1] != ']')
            return cr_error_set(CR_ECONFIG, "smtp.listen", "smtp.listen: bad IPv6 address in '%s'", s);
        host[n - 1] = '\0';
        if (uv_ip6_addr(host + 1, (int)port, (struct sockaddr_in6 *)addr) != 0)
            return cr_error_set(CR_ECONFIG, "smtp.listen", "smtp.listen: bad IPv6 address in '%s'", s);
        return 0;
    }
    if (uv_ip4_addr(host[0] != '\0' ? host : "0.0.0.0", (int)port, (struct sockaddr_in *)addr) != 0)
        return cr_error_set(CR_ECONFIG, "smtp.listen", "smtp.listen: '%s' is not an IPv4 address (use [::1]:port for IPv6)", s);
    return 0;
}

static void on_listener_close(uv_handle_t *h)
{
    cr_smtp_server_t *srv = h->data;
    srv->listener_closed = 1;
    server_maybe_free(srv);
}

int cr_smtp_listen(cr_smtp_server_t **out, uv_loop_t *loop, const char *addr, const cr_smtp_opts_t *opts)
{
    cr_smtp_server_t *srv;
    struct sockaddr_storage sa, bound;
    int rc, len = (int)sizeof(bound);
    char host[HOST_MAX + 1];
    *out = NULL;
    if ((rc = check_opts(opts, host)) != 0 || (rc = parse_addr(addr, &sa)) != 0)
        return rc;
    if ((srv = calloc(1, sizeof(*srv))) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory for the SMTP server");
    srv->loop = loop;
    srv->opts = *opts;
    apply_defaults(&srv->opts);
    memcpy(srv->hostname, host, sizeof(host));
    srv->opts.hostname = srv->hostname;
    uv_tcp_init(loop, &srv->listener);
    srv->listener.data = srv;
    if ((rc = uv_tcp_bind(&srv->listener, (struct sockaddr *)&sa, 0)) != 0 ||
        (rc = uv_listen((uv_stream_t *)&srv->listener, 128, on_connection)) != 0 ||
        (rc = uv_tcp_getsockname(&srv->listener, (struct sockaddr *)&bound, &len)) != 0) {
        srv->closing = 1;
        uv_close((uv_handle_t *)&srv->listener, on_listener_close); /* frees srv */
        return cr_error_set(CR_EIO, "smtp.listen", "cannot listen for SMTP on %s: %s", addr, uv_strerror(rc));
    }
    srv->port =
        ntohs(bound.ss_family == AF_INET6 ? ((struct sockaddr_in6 *)&bound)->sin6_port : ((struct sockaddr_in *)&bound)->sin_port);
    cr_log(CR_LOG_INFO, "smtp: listening on %s (port %d, max %zu bytes, %s)", addr, srv->port, srv->opts.max_size,
           srv->opts.tls != NULL ? "STARTTLS offered" : "no TLS");
    *out = srv;
    return 0;
}

int cr_smtp_port(const cr_smtp_server_t *s)
{
    return s->port;
}

size_t cr_smtp_conns(const cr_smtp_server_t *s)
{
    return s->nsessions;
}

void cr_smtp_close(cr_smtp_server_t *s)
{
    smtp_conn_t *c;
    if (s == NULL || s->closing)
        return;
    s->closing = 1;
    uv_close((uv_handle_t *)&s->listener, on_listener_close);
    for (c = s->conns; c != NULL; c = c->next) {
        if (c->closed)
            continue;
        if (c->sess != NULL && !c->shutting && !c->writing && c->tls != TLS_HANDSHAKE &&
            !(cr_smtp_session_status(c->sess) & (CR_SMTP_CLOSE | CR_SMTP_STARTTLS))) {
            size_t len;
            char *buf;
            cr_smtp_session_end(c->sess, CR_SMTP_END_SHUTDOWN);
            if ((buf = gather(c, &len)) != NULL) {
                uv_buf_t b = uv_buf_init(buf, (unsigned)len);
                uv_try_write((uv_stream_t *)&c->tcp, &b, 1); /* best effort: whatever the socket takes now */
                free(buf);
            }
        }
        close_now(c);
    }
}
