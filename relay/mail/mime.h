/* mime.h — parses one raw RFC 5322 message with GMime into what the relay keeps of it: addresses, subject, date, the
 * plain text (or text made from the HTML), links, and the one-time codes in it. A message GMime cannot make sense
 * of is never an error: it is kept raw and flagged. */
#ifndef CR_MAIL_MIME_H
#define CR_MAIL_MIME_H

#include "otp.h"
#include <stddef.h>
#include <stdint.h>

#define CR_MAIL_TEXT_MAX (256u << 10) /* bytes of text kept; longer text is cut at a UTF-8 boundary and flagged */
#define CR_MAIL_HTML_MAX (1u << 20)   /* bytes of HTML kept; longer HTML is cut (and flagged) likewise */

enum {
    CR_MAIL_MALFORMED = 1 << 0, /* headers or MIME structure could not be parsed (or went past the walk's bounds:
                                   parts nested deeper than 8 or more than 64 of them); fields may be empty */
    CR_MAIL_TRUNCATED = 1 << 1, /* text longer than CR_MAIL_TEXT_MAX (or HTML longer than CR_MAIL_HTML_MAX) was cut */
    CR_MAIL_HTML_ONLY = 1 << 2, /* no text/plain part (or only a blank one): text was made from text/html */
};

typedef struct st_cr_mail_t {
    char *from;       /* the From header, decoded (RFC 2047) to UTF-8: "Ana <ana@example.com>"; "" when absent */
    char *from_addr;  /* just the address, lower-cased: "ana@example.com"; "" when absent */
    char *to;         /* the To header, decoded */
    char *subject;    /* decoded */
    char *message_id; /* without <>; "" when absent */
    int64_t date_ms;  /* the Date header in ms since the epoch; 0 when absent or unparseable */
    char *text;       /* the plain text, UTF-8 (converted from the part's charset, transfer encoding undone, LF line ends;
                         inline text/plain parts joined by an empty line; an attached message's text only when the
                         message has none of its own), or text made from the HTML; of a malformed message whatever
                         could be read; "" when none */
    char *html;       /* the first text/html part as UTF-8, or NULL */
    char **links;     /* verification links first */
    size_t nlinks;
    cr_otp_t otp;   /* codes from the subject and the text */
    unsigned flags; /* CR_MAIL_* */
} cr_mail_t;

/* Parses raw (len bytes, need not be NUL-terminated; NULL with len 0 is an empty message) into *out, which the caller
 * frees with cr_mail_free even when this fails. Every string field is set (valid UTF-8, "" when absent) unless memory
 * runs out. Attachments (Content-Disposition: attachment) and non-text parts are not read. Returns 0 (also for a
 * malformed message: see flags) or -1 when memory runs out (cr_error_last says so). Thread-safe. */
int cr_mail_parse(cr_mail_t *out, const char *raw, size_t len);

/* Frees what cr_mail_parse allocated and zeroes *m. NULL fields are fine. */
void cr_mail_free(cr_mail_t *m);

/* Initialises GMime once per process (idempotent, thread-safe); cr_mail_parse calls it. */
void cr_mail_init(void);

#endif
