/* otp.h — finds one-time codes and verification links in the text of a mail or an SMS (PCRE2), ranked so the code a
 * person would type comes first: a code labelled by a keyword (code, passcode, verification, one-time, …, in several
 * languages) beats a bare number, the subject is searched before the body, digits need not sit at a word boundary
 * ("验证码：123456请勿泄露"), alphanumeric codes are found, and dates, prices, phone numbers and years are not codes. */
#ifndef CR_MAIL_OTP_H
#define CR_MAIL_OTP_H

#include <stddef.h>

#define CR_OTP_CODE_MAX 16 /* characters of a code, at most */
#define CR_OTP_CANDS_MAX 8 /* candidates kept, best first */
#define CR_LINKS_MAX 16    /* links kept, verification links first */
#define CR_LINK_MAX 2048   /* bytes of one link, at most (longer ones are skipped) */

/* A code as a person types it: digits shown in groups ("123-456", "123 456") come without the separator ("123456");
 * a sender's letter prefix before the digits ("G-123456", "FB-12345") is left out ("123456"); a code of letters and
 * digits is kept as shown, hyphens included ("A7K-9QX"), since there the hyphen may belong to the code. */
typedef struct st_cr_otp_cand_t {
    char code[CR_OTP_CODE_MAX + 1];
    int score; /* higher is better; only the order is meaningful */
} cr_otp_cand_t;

typedef struct st_cr_otp_t {
    cr_otp_cand_t cand[CR_OTP_CANDS_MAX]; /* cand[0] is the best */
    size_t n;                             /* 0: no code found */
} cr_otp_t;

/* Finds codes in subject (may be NULL) then text (UTF-8, may be NULL), best first, into *out. Never fails: bad UTF-8
 * is tolerated (and should memory run out, out->n is 0). Thread-safe; the compiled patterns are made once.
 * Ranking: a token labelled by a keyword near it (before it: "Your code is 123456", "验证码：123456请勿泄露"; or after
 * it: "G-123456 is your Google verification code") beats a bare number; among equals the subject's come first, then
 * the text's in order. 4–10 digits, or 4–12 letters and digits with at least one digit (only when a keyword is near).
 * Not codes: numbers that are part of a date, time, decimal, amount ("$1499", "2999 €", "15%"), phone number
 * ("+1 415 555 0199", "1-800-555-0199"), or sit in a link or mail address; years, ZIP codes, order and reference
 * numbers rank low or are left out. Only the first 256 KiB of each is looked at. */
void cr_otp_extract(cr_otp_t *out, const char *subject, const char *text);

/* Decodes the HTML character reference at p (n bytes, starting with '&'): a named one mail uses ("&amp;", "&nbsp;",
 * "&eacute;", "&zwnj;", … ; the ';' is required) or a numeric one ("&#123;", "&#x1F600;"; invalid code points become
 * U+FFFD). Writes its UTF-8 into out (*outlen bytes) and returns how many bytes of p it took, or 0 when p does not
 * start a reference it knows (the '&' is then literal). */
size_t cr_html_charref(char out[8], size_t *outlen, const char *p, size_t n);

/* Finds http(s) links in text (and in html, the href attributes; either may be NULL), verification links first
 * (words like verify, confirm, activate, token in the link or around it: the anchor's text, or in text the line the link
 * is on and the one above), links to unsubscribe, preferences, policies, help, social networks and images last; ties
 * keep their order, text before html. Each link once; punctuation that ends a sentence is not part of a text link;
 * entity references in an href are decoded. Returns how many were stored in out[] (at most max); each out[i] is
 * malloc'd and owned by the caller. Returns -1 only when memory runs out (nothing is stored then). */
int cr_links_extract(char **out, size_t max, const char *text, const char *html);

#endif
