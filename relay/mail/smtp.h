/* smtp.h — an SMTP server (RFC 5321) on a libuv loop for mail coming in to identities: EHLO/HELO, STARTTLS
 * (RFC 3207, OpenSSL), SIZE (RFC 1870), PIPELINING (RFC 2920), 8BITMIME, ENHANCEDSTATUSCODES (RFC 2034/3463), MAIL,
 * RCPT, DATA with dot-unstuffing and a size limit, RSET, NOOP, VRFY, HELP, QUIT, timeouts. It only speaks the protocol:
 * whether a recipient exists and where a message goes are asked of the owner through callbacks, both asynchronous,
 * and a message is answered 250 only once the owner says it is stored.
 *
 * Two layers. The protocol machine is a feed/get decoder with no sockets (cr_smtp_session_*): bytes in, reply lines
 * out, so it is unit-tested and fuzzed on its own. cr_smtp_listen wraps one session per TCP connection, adds TLS
 * (OpenSSL memory BIOs on the same libuv stream), timeouts and the connection limit.
 *
 * Choices a client can see:
 * - Command lines end with CRLF; a bare LF is accepted too (netcat, telnet). A line longer than CR_SMTP_LINE_MAX is
 *   answered 500 5.5.6 and skipped up to its end, never buffered.
 * - Message content: only CRLF ends a line, so only CRLF "." CRLF ends the data and only a "." after CRLF is
 *   unstuffed. A bare LF or CR is content and is passed on unchanged (so "\n.\n" or "\r\n.\n" cannot end the data:
 *   no SMTP smuggling). Content lines have no length limit; the message as a whole has max_size.
 * - Commands are taken one at a time even when pipelined: while the owner has not answered, later input is held
 *   (up to CR_SMTP_INPUT_MAX bytes) and replies always come in command order.
 * - Addresses must be in <>. The domain is lower-cased, the local part is kept as sent (quoted local parts keep their
 *   quotes); a source route (<@a,@b:u@d>) is dropped. MAIL FROM:<> is the null sender. RCPT TO:<postmaster> (no
 *   domain) is passed on as "postmaster". MAIL takes SIZE= and BODY=7BIT|8BITMIME; any other parameter, and any
 *   RCPT parameter, is answered 555 5.5.4.
 * - After CR_SMTP_ERRORS_MAX error replies, or CR_SMTP_JUNK_MAX NOOP/RSET/VRFY/HELP/EHLO/HELO between two delivered
 *   messages, the session says 421 4.7.0 and ends. */
#ifndef CR_MAIL_SMTP_H
#define CR_MAIL_SMTP_H

#include <openssl/ssl.h>
#include <stddef.h>
#include <uv.h>

#define CR_SMTP_LINE_MAX 1000                   /* a command line, CRLF included (RFC 5321 §4.5.3.1.4 allows 512) */
#define CR_SMTP_RCPTS_MAX 100                   /* accepted recipients of one message (§4.5.3.1.8); more: 452 4.5.3 */
#define CR_SMTP_ERRORS_MAX 20                   /* 4xx/5xx replies to one client before 421 and close */
#define CR_SMTP_JUNK_MAX 100                    /* NOOP/RSET/VRFY/HELP/EHLO/HELO between delivered messages */
#define CR_SMTP_INPUT_MAX (64u << 10)           /* unprocessed input held while the owner answers */
#define CR_SMTP_SIZE_DEFAULT (10u << 20)        /* max_size when 0 */
#define CR_SMTP_TIMEOUT_DEFAULT_MS 300000u      /* timeout_ms when 0 (RFC 5321 §4.5.3.2.7: 5 minutes) */
#define CR_SMTP_DATA_TIMEOUT_DEFAULT_MS 600000u /* data_timeout_ms when 0 (§4.5.3.2.6: 10 minutes) */
#define CR_SMTP_CONNS_DEFAULT 100               /* max_conns when 0 */

typedef struct st_cr_smtp_server_t cr_smtp_server_t;
typedef struct st_cr_smtp_session_t cr_smtp_session_t;

/* How the owner answers a recipient or a message: an SMTP reply code (250, 451, 452, 550, 552, 554…) and the text
 * after it, ideally starting with an enhanced status code ("5.1.1 No such user here"). text may be NULL or "" for a
 * default text; a text without an enhanced code of the code's class gets "X.0.0 " put in front; control and 8-bit
 * characters are replaced and the text is cut at 200 bytes. A code that is not 2xx/4xx/5xx becomes 451 4.3.0.
 * Call it exactly once per callback, from the loop's thread, during the callback or later — also after the
 * connection went away (it is then dropped, and that call is what finally frees the session). */
typedef void (*cr_smtp_answer_fn)(cr_smtp_session_t *s, int code, const char *text);

typedef struct st_cr_smtp_opts_t {
    const char *hostname;     /* said in the greeting and EHLO ("relay.example.com"); copied; NULL: "localhost" */
    size_t max_size;          /* bytes of a message (after dot-unstuffing); more is answered 552 5.3.4; 0: default */
    unsigned timeout_ms;      /* idle time (nothing read or written) before 421 4.4.2 and close; 0: default */
    unsigned data_timeout_ms; /* from 354 to the end of the data, in all; 0: default */
    size_t max_conns;         /* sessions at once; more are answered 421 4.4.5 and closed; 0: default */
    SSL_CTX *tls;             /* offers STARTTLS when set (not owned; must outlive the server) */
    /* Is addr a recipient (domain lower-cased, without <>)? Answer 2xx to accept it, 4xx/5xx to refuse it (550
     * 5.1.1 for unknown). addr stays valid until answer is called. */
    void (*rcpt)(cr_smtp_session_t *s, const char *addr, cr_smtp_answer_fn answer, void *data);
    /* A whole message: the envelope sender ("" for <>), the accepted recipients (no duplicates) and the message
     * (dot-unstuffed, line ends as received, no trace header added). Answer 250 once it is stored, else 4xx/5xx.
     * The strings and bytes stay valid until answer is called. */
    void (*deliver)(cr_smtp_session_t *s, const char *from, const char *const *rcpts, size_t nrcpts, const char *msg, size_t len,
                    cr_smtp_answer_fn answer, void *data);
    void *data; /* passed to rcpt and deliver */
} cr_smtp_opts_t;

/* --- The TCP server --- */

/* Listens on addr ("127.0.0.1:2525", "[::1]:25", "0.0.0.0:0" for a free port) and serves one session per
 * connection until cr_smtp_close. opts is copied (rcpt and deliver are required). *out is the caller's
 * (cr_smtp_close). Returns 0, or CR_ECONFIG (bad addr or opts) / CR_EIO (bind, listen) with cr_error_last. */
int cr_smtp_listen(cr_smtp_server_t **out, uv_loop_t *loop, const char *addr, const cr_smtp_opts_t *opts);

/* The port actually bound (for "…:0"). */
int cr_smtp_port(const cr_smtp_server_t *s);

/* Sessions open right now (connections refused for the limit not counted). */
size_t cr_smtp_conns(const cr_smtp_server_t *s);

/* Stops listening and ends every connection: each client is told 421 4.3.2 where its socket takes it at once, then
 * the connection is closed. Sessions waiting for an answer stay allocated until the owner answers (the answer is
 * then dropped). Frees the server once libuv has closed the handles, so run the loop afterwards. NULL is fine. */
void cr_smtp_close(cr_smtp_server_t *s);

/* --- The protocol machine, without sockets --- */

/* What a transport does next, from cr_smtp_session_status (flags). */
enum {
    CR_SMTP_READ = 1 << 0,     /* the session takes input now: read from the client */
    CR_SMTP_WAITING = 1 << 1,  /* a callback has not been answered yet; input is held */
    CR_SMTP_STARTTLS = 1 << 2, /* send the output (its last line is 220), then do the TLS handshake, then call
                                * cr_smtp_session_tls_started; input until then is discarded */
    CR_SMTP_CLOSE = 1 << 3,    /* send the output, then close the connection; input is discarded */
    CR_SMTP_DATA = 1 << 4,     /* between 354 and the end of the data (for the data timeout) */
};

/* Why a transport ends a session (cr_smtp_session_end). */
typedef enum cr_smtp_end_t {
    CR_SMTP_END_TIMEOUT = 1,  /* 421 4.4.2 */
    CR_SMTP_END_SHUTDOWN = 2, /* 421 4.3.2 */
} cr_smtp_end_t;

/* A new session for a client at peer (text for logs, "203.0.113.5:40000"; may be NULL) with the 220 greeting
 * already in its output. opts is copied (rcpt and deliver are required; opts->tls only says whether STARTTLS is
 * offered). *out is the caller's (cr_smtp_session_free). Returns 0, CR_ECONFIG or CR_ENOMEM. */
int cr_smtp_session_new(cr_smtp_session_t **out, const cr_smtp_opts_t *opts, const char *peer);

/* Frees the session. If a callback is still unanswered, the session lingers, inert, until the owner answers. Must
 * not be called from inside the session's own callbacks. NULL is fine. */
void cr_smtp_session_free(cr_smtp_session_t *s);

/* Takes n bytes from the client and runs every command they complete, calling rcpt/deliver as needed; the replies
 * go to the output. n == 0 just goes on with input held back (after the output was drained). Input while
 * CR_SMTP_CLOSE or CR_SMTP_STARTTLS is set is discarded. Returns 0, or CR_ETOOLARGE when more than
 * CR_SMTP_INPUT_MAX bytes would wait unprocessed, or CR_ENOMEM; either way the session has then said 421 and set
 * CR_SMTP_CLOSE. Must not be called from inside the session's own callbacks. An answer given after the callback
 * returned runs the held input itself: read the output after calling it. */
int cr_smtp_session_feed(cr_smtp_session_t *s, const void *p, size_t n);

/* The reply bytes not yet taken (*len of them; not NUL-terminated), valid until the next call on the session. */
const char *cr_smtp_session_output(const cr_smtp_session_t *s, size_t *len);

/* Drops the first n bytes of the output (those sent). Call feed(s, NULL, 0) afterwards: a session stops running
 * commands while 16 KiB of replies wait. */
void cr_smtp_session_consume(cr_smtp_session_t *s, size_t n);

/* CR_SMTP_* flags: what the transport does next. */
int cr_smtp_session_status(const cr_smtp_session_t *s);

/* The TLS handshake after STARTTLS succeeded: the session starts over (EHLO needed again, everything learnt before
 * forgotten) and no longer offers STARTTLS. */
void cr_smtp_session_tls_started(cr_smtp_session_t *s);

/* Ends the session: discards held input, puts the 421 reply for why in the output and sets CR_SMTP_CLOSE. An
 * unanswered callback's answer will be dropped. */
void cr_smtp_session_end(cr_smtp_session_t *s, cr_smtp_end_t why);

/* The peer text given to cr_smtp_session_new ("" when none), the last HELO/EHLO argument ("" before one), and
 * whether the session runs over TLS — for the owner's logs and trace headers. */
const char *cr_smtp_session_peer(const cr_smtp_session_t *s);
const char *cr_smtp_session_helo(const cr_smtp_session_t *s);
int cr_smtp_session_tls(const cr_smtp_session_t *s);

#endif
