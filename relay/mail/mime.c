/* mime.c — one raw RFC 5322 message into a cr_mail_t with GMime 3: the headers decoded, the text chosen among the
 * parts and converted to UTF-8 (or made from the HTML), links and codes found. Malformed input is flagged, never
 * refused, and every walk and buffer is bounded. */
#include "mime.h"
#include "corral/buf.h"
#include "corral/error.h"
#include <errno.h>
#include <gmime/gmime.h>
#include <iconv.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MIME_DEPTH_MAX 8                          /* levels of multipart walked */
#define MIME_PARTS_MAX 64                         /* parts looked at */
#define MIME_EMBED_MAX 1                          /* levels of attached message/rfc822 looked into */
#define MIME_RAW_TEXT_MAX (4u * CR_MAIL_TEXT_MAX) /* decoded bytes of one text/plain part read, before conversion */
#define MIME_RAW_HTML_MAX (2u * CR_MAIL_HTML_MAX) /* decoded bytes of one text/html part read, before conversion */

static pthread_once_t mime_once = PTHREAD_ONCE_INIT;

static void mime__init_once(void)
{
    g_mime_init();
}

void cr_mail_init(void)
{
    pthread_once(&mime_once, mime__init_once);
}

/* Appends n bytes of valid UTF-8 to b; when b would go past its limit, appends what fits up to a character boundary
 * and sets *cut. Returns 0 or CR_ENOMEM. */
static int mime__put(cr_buf_t *b, const char *p, size_t n, int *cut)
{
    if (b->len + n > b->limit) {
        size_t room = b->limit - b->len;
        while (room > 0 && ((unsigned char)p[room] & 0xC0) == 0x80)
            --room;
        n = room;
        *cut = 1;
    }
    if (n == 0)
        return 0;
    return cr_buf_append(b, p, n) == 0 ? 0 : CR_ENOMEM;
}

/* The length of the valid UTF-8 sequence at p (n bytes left), or 0 when it is not one. */
static size_t utf8_seq(const unsigned char *p, size_t n)
{
    size_t len;
    if (p[0] < 0x80)
        return 1;
    if (p[0] >= 0xC2 && p[0] <= 0xDF)
        len = 2;
    else if (p[0] >= 0xE0 && p[0] <= 0xEF)
        len = 3;
    else if (p[0] >= 0xF0 && p[0] <= 0xF4)
        len = 4;
    else
        return 0;
    if (n < len)
        return 0;
    for (size_t k = 1; k < len; ++k)
        if ((p[k] & 0xC0) != 0x80)
            return 0;
    if (len == 3 && ((p[0] == 0xE0 && p[1] < 0xA0) || (p[0] == 0xED && p[1] >= 0xA0)))
        return 0; /* overlong, or a surrogate */
    if (len == 4 && ((p[0] == 0xF0 && p[1] < 0x90) || (p[0] == 0xF4 && p[1] >= 0x90)))
        return 0; /* overlong, or past U+10FFFF */
    return len;
}

static int utf8_valid(const char *p, size_t n)
{
    for (size_t i = 0; i < n;) {
        size_t k = utf8_seq((const unsigned char *)p + i, n - i);
        if (k == 0)
            return 0;
        i += k;
    }
    return 1;
}

static const char REPLACEMENT[] = "\xEF\xBF\xBD";

/* Appends p as UTF-8: valid sequences as they are, each bad byte as U+FFFD, NUL bytes left out; with ctl set, other
 * control characters become spaces (for header values). */
static int mime__put_clean(cr_buf_t *b, const char *p, size_t n, int ctl, int *cut)
{
    size_t run = 0, i = 0;
    int rc = 0;
    while (i < n && rc == 0 && !*cut) {
        unsigned char c = (unsigned char)p[i];
        size_t k = utf8_seq((const unsigned char *)p + i, n - i);
        if (k != 0 && c != 0 && !(ctl && (c < 0x20 || c == 0x7F))) {
            i += k;
            run += k;
            continue;
        }
        rc = mime__put(b, p + i - run, run, cut);
        run = 0;
        if (rc == 0 && !*cut && c != 0)
            rc = k == 0 ? mime__put(b, REPLACEMENT, 3, cut) : mime__put(b, " ", 1, cut);
        i += k == 0 ? 1 : k;
    }
    if (rc == 0 && !*cut)
        rc = mime__put(b, p + i - run, run, cut);
    return rc;
}

static int mime__is_utf8_name(const char *cs)
{
    return g_ascii_strcasecmp(cs, "utf-8") == 0 || g_ascii_strcasecmp(cs, "utf8") == 0;
}

static int mime__is_ascii_name(const char *cs)
{
    return g_ascii_strcasecmp(cs, "us-ascii") == 0 || g_ascii_strcasecmp(cs, "ascii") == 0 ||
           g_ascii_strcasecmp(cs, "ansi_x3.4-1968") == 0;
}

/* Appends n bytes of text in charset cs (NULL: not said) to out as UTF-8. Text said to be UTF-8 or ASCII, or not
 * said, is kept when it is valid UTF-8 and otherwise read as windows-1252, as is text in a charset iconv does not
 * know. Bytes that do not convert become U+FFFD. Sets *cut when out fills up. Returns 0 or CR_ENOMEM. */
static int mime__to_utf8(cr_buf_t *out, const char *p, size_t n, const char *cs, int *cut)
{
    iconv_t cd = (iconv_t)-1;
    int rc = 0;
    if (cs != NULL && !mime__is_utf8_name(cs) && !mime__is_ascii_name(cs))
        cd = g_mime_iconv_open("UTF-8", cs);
    if (cd == (iconv_t)-1) {
        if ((cs != NULL && mime__is_utf8_name(cs)) || utf8_valid(p, n))
            return mime__put_clean(out, p, n, 0, cut);
        if ((cd = g_mime_iconv_open("UTF-8", "windows-1252")) == (iconv_t)-1) {
            for (size_t i = 0; i < n && rc == 0 && !*cut; ++i) { /* ISO-8859-1 by hand */
                unsigned char c = (unsigned char)p[i];
                char u[2] = {(char)(0xC0 | (c >> 6)), (char)(0x80 | (c & 0x3F))};
                rc = c == 0 ? 0 : c < 0x80 ? mime__put(out, p + i, 1, cut) : mime__put(out, u, 2, cut);
            }
            return rc;
        }
    }
    char chunk[4096];
    char *in = (char *)p;
    size_t inleft = n;
    while (inleft > 0 && rc == 0 && !*cut) {
        char *o = chunk;
        size_t oleft = sizeof(chunk);
        size_t r = iconv(cd, &in, &inleft, &o, &oleft);
        int err = r == (size_t)-1 ? errno : 0;
        rc = mime__put_clean(out, chunk, (size_t)(o - chunk), 0, cut);
        if (rc != 0 || *cut)
            break;
        if (err == EILSEQ) {
            rc = mime__put(out, REPLACEMENT, 3, cut);
            ++in;
            --inleft;
        } else if (err == EINVAL) { /* ends inside a character */
            rc = mime__put(out, REPLACEMENT, 3, cut);
            break;
        } else if (err != 0 && err != E2BIG) {
            break;
        }
    }
    if (rc == 0 && !*cut) { /* the shift back of a stateful charset */
        char *o = chunk;
        size_t oleft = sizeof(chunk);
        if (iconv(cd, NULL, NULL, &o, &oleft) != (size_t)-1)
            rc = mime__put_clean(out, chunk, (size_t)(o - chunk), 0, cut);
    }
    g_mime_iconv_close(cd);
    return rc;
}

/* Turns CRLF and lone CR into LF, in place. */
static void mime__unix_newlines(cr_buf_t *b)
{
    size_t w = 0;
    for (size_t r = 0; r < b->len; ++r) {
        char c = b->base[r];
        if (c == '\r') {
            if (r + 1 < b->len && b->base[r + 1] == '\n')
                continue;
            c = '\n';
        }
        b->base[w++] = c;
    }
    b->len = w;
}

/* A malloc'd NUL-terminated copy of b's bytes ("" when empty); NULL when memory runs out. */
static char *mime__take(const cr_buf_t *b)
{
    char *s = malloc(b->len + 1);
    if (s != NULL) {
        if (b->len > 0)
            memcpy(s, b->base, b->len);
        s[b->len] = '\0';
    }
    return s;
}

/* A malloc'd clean UTF-8 copy of a header value (control characters as spaces, white space at the ends trimmed);
 * "" for NULL. NULL when memory runs out. */
static char *mime__header_str(const char *s)
{
    cr_buf_t b;
    int cut = 0;
    char *out = NULL;
    cr_buf_init(&b, 64u << 10);
    if (s != NULL) {
        size_t n = strlen(s);
        while (n > 0 && g_ascii_isspace(s[n - 1]))
            --n;
        while (n > 0 && g_ascii_isspace(*s)) {
            ++s;
            --n;
        }
        if (mime__put_clean(&b, s, n, 1, &cut) != 0)
            goto done;
    }
    out = mime__take(&b);
done:
    cr_buf_free(&b);
    return out;
}

/* ---- text made from HTML ---- */

typedef struct st_mime_emit_t {
    cr_buf_t *b;
    int space; /* white space seen since the last character written */
    int nl;    /* newlines at the end of the output (2 at the start, so none are written first) */
    int cut;
    int err;
} mime_emit_t;

static void emit_bytes(mime_emit_t *e, const char *p, size_t n)
{
    if (e->err || e->cut)
        return;
    if (e->space && e->nl == 0 && mime__put(e->b, " ", 1, &e->cut) != 0)
        e->err = 1;
    e->space = 0;
    if (!e->err && !e->cut && mime__put(e->b, p, n, &e->cut) != 0)
        e->err = 1;
    e->nl = 0;
}

/* Ends the line (want 1) or the paragraph (want 2) unless that is done already. */
static void emit_break(mime_emit_t *e, int want)
{
    e->space = 0;
    while (e->nl < want && !e->err && !e->cut) {
        if (mime__put(e->b, "\n", 1, &e->cut) != 0)
            e->err = 1;
        ++e->nl;
    }
}

/* A <br>: one more newline, at most one empty line in a row. */
static void emit_newline(mime_emit_t *e)
{
    emit_break(e, e->nl < 2 ? e->nl + 1 : 2);
}

static void emit_cp(mime_emit_t *e, uint32_t cp, const char *utf8, size_t n, int pre)
{
    if (cp == 0x200B || cp == 0x200C || cp == 0x200D || cp == 0x200E || cp == 0x200F || cp == 0x2060 || cp == 0xFEFF ||
        cp == 0xAD || cp == 0x34F)
        return; /* invisible: the padding of preheaders */
    if (cp == '\n' && pre) {
        emit_newline(e);
        return;
    }
    if (cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f' || cp == 0xA0 || (cp >= 0x2000 && cp <= 0x200A) ||
        cp == 0x202F || cp == 0x3000) {
        if (pre && cp != '\r')
            emit_bytes(e, " ", 1);
        else
            e->space = 1;
        return;
    }
    emit_bytes(e, utf8, n);
}

static uint32_t utf8_decode(const char *p, size_t n)
{
    const unsigned char *s = (const unsigned char *)p;
    if (n == 1)
        return s[0];
    if (n == 2)
        return ((uint32_t)(s[0] & 0x1F) << 6) | (s[1] & 0x3F);
    if (n == 3)
        return ((uint32_t)(s[0] & 0x0F) << 12) | ((uint32_t)(s[1] & 0x3F) << 6) | (s[2] & 0x3F);
    return ((uint32_t)(s[0] & 0x07) << 18) | ((uint32_t)(s[1] & 0x3F) << 12) | ((uint32_t)(s[2] & 0x3F) << 6) | (s[3] & 0x3F);
}

static const char *find_ci(const char *h, size_t n, size_t from, const char *needle)
{
    size_t k = strlen(needle);
    for (size_t i = from; i + k <= n; ++i)
        if (g_ascii_strncasecmp(h + i, needle, k) == 0)
            return h + i;
    return NULL;
}

static int in_list(const char *name, const char *const *list)
{
    for (; *list != NULL; ++list)
        if (strcmp(name, *list) == 0)
            return 1;
    return 0;
}

static const char *const TAGS_SKIP[] = {"script", "style", "head", "title", "noscript", "template", "object", NULL};
static const char *const TAGS_PARA[] = {"p", "h1", "h2", "h3", "h4", "h5", "h6", "hr", "blockquote", NULL};
static const char *const TAGS_LINE[] = {"div",      "tr",     "li",         "ul",      "ol",      "table",  "tbody",  "thead",
                                        "tfoot",    "pre",    "section",    "article", "header",  "footer", "center", "dl",
                                        "dt",       "dd",     "form",       "address", "nav",     "aside",  "main",   "caption",
                                        "fieldset", "figure", "figcaption", "details", "summary", "body",   "html",   NULL};

/* Text a person would read in html (n bytes of valid UTF-8) into out: tags, scripts, styles and the head left out,
 * character references decoded, white space collapsed, a line per block and an empty line per paragraph. Sets *cut
 * when out fills up. Returns 0 or CR_ENOMEM. */
static int mime__html_text(cr_buf_t *out, const char *h, size_t n, int *cut)
{
    mime_emit_t e = {out, 0, 2, 0, 0};
    int pre = 0;
    size_t i = 0;
    while (i < n && !e.err && !e.cut) {
        char c = h[i];
        if (c == '<') {
            if (i + 4 <= n && memcmp(h + i, "<!--", 4) == 0) {
                const char *end = n - i >= 7 ? g_strstr_len(h + i + 4, (gssize)(n - i - 4), "-->") : NULL;
                i = end != NULL ? (size_t)(end - h) + 3 : n;
                continue;
            }
            size_t j = i + 1;
            int close = 0;
            if (j < n && h[j] == '/') {
                close = 1;
                ++j;
            }
            if (j < n && (h[j] == '!' || h[j] == '?') && !close) { /* <!DOCTYPE …>, <?xml …?> */
                const char *end = memchr(h + j, '>', n - j);
                i = end != NULL ? (size_t)(end - h) + 1 : n;
                continue;
            }
            if (j >= n || !g_ascii_isalpha(h[j])) { /* "a < b": a character */
                emit_bytes(&e, "<", 1);
                ++i;
                continue;
            }
            char name[16];
            size_t nl = 0;
            for (; j < n && (g_ascii_isalnum(h[j]) || h[j] == '-' || h[j] == ':'); ++j)
                if (nl + 1 < sizeof(name))
                    name[nl++] = g_ascii_tolower(h[j]);
            name[nl] = '\0';
            /* the tag ends at the first '>' outside quotes */
            char q = 0;
            for (; j < n; ++j) {
                if (q) {
                    if (h[j] == q)
                        q = 0;
                } else if (h[j] == '"' || h[j] == '\'') {
                    q = h[j];
                } else if (h[j] == '>') {
                    break;
                }
            }
            if (j >= n)
                break; /* a tag that never ends: the rest is inside it */
            i = j + 1;
            if (!close && in_list(name, TAGS_SKIP) && h[j - 1] != '/') {
                char endtag[24];
                snprintf(endtag, sizeof(endtag), "</%s", name);
                const char *end = find_ci(h, n, i, endtag);
                if (end == NULL) {
                    if (strcmp(name, "script") == 0 || strcmp(name, "style") == 0)
                        i = n; /* as a browser does: the rest is script */
                    continue;  /* a head or title never closed: read on */
                }
                const char *gt = memchr(end, '>', (size_t)(h + n - end));
                i = gt != NULL ? (size_t)(gt - h) + 1 : n;
                continue;
            }
            if (strcmp(name, "br") == 0) {
                emit_newline(&e);
            } else if (in_list(name, TAGS_PARA)) {
                emit_break(&e, 2);
            } else if (in_list(name, TAGS_LINE)) {
                emit_break(&e, 1);
                if (strcmp(name, "pre") == 0)
                    pre = !close;
            } else if (strcmp(name, "td") == 0 || strcmp(name, "th") == 0) {
                e.space = 1;
            }
            continue;
        }
        if (c == '&') {
            char ref[8];
            size_t rl, used = cr_html_charref(ref, &rl, h + i, n - i);
            if (used != 0) {
                emit_cp(&e, utf8_decode(ref, rl), ref, rl, pre);
                i += used;
                continue;
            }
        }
        size_t k = utf8_seq((const unsigned char *)h + i, n - i);
        if (k == 0)
            k = 1; /* not expected: html is made valid before */
        emit_cp(&e, utf8_decode(h + i, k), h + i, k, pre);
        i += k;
    }
    while (out->len > 0 && out->base[out->len - 1] == '\n')
        --out->len;
    *cut |= e.cut;
    return e.err ? CR_ENOMEM : 0;
}

/* ---- the walk over the parts ---- */

typedef struct st_mime_walk_t {
    cr_buf_t plain[2]; /* [0]: the message's own parts, [1]: those of an attached message */
    cr_buf_t html[2];
    unsigned parts;
    unsigned flags;
    int err;
} mime_walk_t;

/* Reads the decoded content of part (at most cap bytes; *cut set when there was more) and appends it, converted from
 * its charset, to dst. */
static void mime__part_text(mime_walk_t *w, GMimePart *part, cr_buf_t *dst, size_t cap)
{
    GMimeDataWrapper *content = g_mime_part_get_content(part);
    GMimeStream *src = content != NULL ? g_mime_data_wrapper_get_stream(content) : NULL;
    int cut = 0;
    cr_buf_t raw;
    if (src == NULL)
        return;
    cr_buf_init(&raw, cap);
    g_mime_stream_reset(src);
    GMimeStream *filtered = g_mime_stream_filter_new(src);
    GMimeContentEncoding enc = g_mime_data_wrapper_get_encoding(content);
    if (enc == GMIME_CONTENT_ENCODING_BASE64 || enc == GMIME_CONTENT_ENCODING_QUOTEDPRINTABLE ||
        enc == GMIME_CONTENT_ENCODING_UUENCODE) {
        GMimeFilter *dec = g_mime_filter_basic_new(enc, FALSE);
        g_mime_stream_filter_add(GMIME_STREAM_FILTER(filtered), dec);
        g_object_unref(dec);
    }
    char chunk[8192];
    for (;;) {
        ssize_t k = g_mime_stream_read(filtered, chunk, sizeof(chunk));
        if (k <= 0)
            break;
        size_t take = (size_t)k;
        if (raw.len + take > cap) {
            take = cap - raw.len;
            cut = 1;
        }
        if (take > 0 && cr_buf_append(&raw, chunk, take) != 0) {
            w->err = 1;
            break;
        }
        if (cut)
            break;
    }
    g_object_unref(filtered);
    g_mime_stream_reset(src);
    if (!w->err && raw.len > 0) {
        if (dst->len > 0 && mime__put(dst, "\n\n", 2, &cut) != 0)
            w->err = 1;
        const char *cs = g_mime_object_get_content_type_parameter(GMIME_OBJECT(part), "charset");
        if (!w->err && mime__to_utf8(dst, raw.base, raw.len, cs, &cut) != 0)
            w->err = 1;
    }
    if (cut)
        w->flags |= CR_MAIL_TRUNCATED;
    cr_buf_free(&raw);
}

static void mime__walk(mime_walk_t *w, GMimeObject *obj, unsigned depth, unsigned embed)
{
    if (obj == NULL || w->err)
        return;
    if (depth > MIME_DEPTH_MAX || ++w->parts > MIME_PARTS_MAX) {
        w->flags |= CR_MAIL_MALFORMED;
        return;
    }
    if (GMIME_IS_MULTIPART(obj)) {
        GMimeMultipart *mp = GMIME_MULTIPART(obj);
        int n = g_mime_multipart_get_count(mp);
        for (int i = 0; i < n && !w->err; ++i)
            mime__walk(w, g_mime_multipart_get_part(mp, i), depth + 1, embed);
        if (n == 0) { /* no boundary found: all of it is in the prologue, which is then the best text there is */
            const char *pro = g_mime_multipart_get_prologue(mp);
            int cut = 0;
            w->flags |= CR_MAIL_MALFORMED;
            if (pro != NULL && mime__to_utf8(&w->plain[embed ? 1 : 0], pro, strlen(pro), NULL, &cut) != 0)
                w->err = 1;
            if (cut)
                w->flags |= CR_MAIL_TRUNCATED;
        }
        return;
    }
    if (GMIME_IS_MESSAGE_PART(obj)) { /* a forwarded message: its text is used only when ours has none */
        GMimeMessage *inner = g_mime_message_part_get_message(GMIME_MESSAGE_PART(obj));
        if (embed < MIME_EMBED_MAX && inner != NULL)
            mime__walk(w, g_mime_message_get_mime_part(inner), depth + 1, embed + 1);
        return;
    }
    if (!GMIME_IS_PART(obj) || g_mime_part_is_attachment(GMIME_PART(obj)))
        return;
    GMimeContentType *ct = g_mime_object_get_content_type(obj);
    if (ct == NULL)
        return;
    if (g_mime_content_type_is_type(ct, "text", "plain")) {
        mime__part_text(w, GMIME_PART(obj), &w->plain[embed ? 1 : 0], MIME_RAW_TEXT_MAX);
    } else if (g_mime_content_type_is_type(ct, "text", "html")) {
        cr_buf_t *h = &w->html[embed ? 1 : 0];
        if (h->len == 0) /* the first HTML part is the one (the others are alternatives or parts of a digest) */
            mime__part_text(w, GMIME_PART(obj), h, MIME_RAW_HTML_MAX);
    }
}

static int blank(const cr_buf_t *b)
{
    for (size_t i = 0; i < b->len; ++i)
        if (!g_ascii_isspace(b->base[i]))
            return 0;
    return 1;
}

/* ---- headers ---- */

static void mime__warning(gint64 offset, GMimeParserWarning code, const gchar *item, gpointer data)
{
    unsigned *flags = data;
    (void)offset;
    (void)item;
    switch (code) {
    case GMIME_WARN_MALFORMED_MULTIPART:
    case GMIME_WARN_TRUNCATED_MESSAGE:
    case GMIME_WARN_MALFORMED_MESSAGE:
    case GMIME_CRIT_INVALID_HEADER_NAME:
    case GMIME_CRIT_MULTIPART_WITHOUT_BOUNDARY:
    case GMIME_CRIT_NESTING_OVERFLOW:
    case GMIME_WARN_PART_WITHOUT_CONTENT:
    case GMIME_CRIT_PART_WITHOUT_HEADERS_OR_CONTENT:
        *flags |= CR_MAIL_MALFORMED;
        break;
    default:
        break;
    }
}

/* The first mailbox of list (looking into a group), or NULL. */
static const char *mime__first_addr(InternetAddressList *list, int depth)
{
    int n = list != NULL ? internet_address_list_length(list) : 0;
    for (int i = 0; i < n; ++i) {
        InternetAddress *ia = internet_address_list_get_address(list, i);
        if (INTERNET_ADDRESS_IS_MAILBOX(ia)) {
            const char *a = internet_address_mailbox_get_addr(INTERNET_ADDRESS_MAILBOX(ia));
            if (a != NULL && *a != '\0')
                return a;
        } else if (INTERNET_ADDRESS_IS_GROUP(ia) && depth == 0) {
            const char *a = mime__first_addr(internet_address_group_get_members(INTERNET_ADDRESS_GROUP(ia)), 1);
            if (a != NULL)
                return a;
        }
    }
    return NULL;
}

/* An address list as a person reads it ("Ana <ana@example.com>, bo@example.com"), or the header as it came when
 * GMime found no address in it. */
static char *mime__addresses(GMimeMessage *msg, InternetAddressList *list, const char *header)
{
    if (list != NULL && internet_address_list_length(list) > 0) {
        char *s = internet_address_list_to_string(list, NULL, FALSE);
        char *out = mime__header_str(s);
        g_free(s);
        return out;
    }
    return mime__header_str(g_mime_object_get_header(GMIME_OBJECT(msg), header));
}

static int mime__headers(cr_mail_t *m, GMimeMessage *msg)
{
    InternetAddressList *from = g_mime_message_get_from(msg);
    if ((m->from = mime__addresses(msg, from, "From")) == NULL ||
        (m->to = mime__addresses(msg, g_mime_message_get_to(msg), "To")) == NULL ||
        (m->subject = mime__header_str(g_mime_message_get_subject(msg))) == NULL ||
        (m->message_id = mime__header_str(g_mime_message_get_message_id(msg))) == NULL ||
        (m->from_addr = mime__header_str(mime__first_addr(from, 0))) == NULL)
        return CR_ENOMEM;
    for (char *p = m->from_addr; *p != '\0'; ++p)
        *p = g_ascii_tolower(*p);
    GDateTime *date = g_mime_message_get_date(msg);
    if (date != NULL)
        m->date_ms = (int64_t)g_date_time_to_unix(date) * 1000 + g_date_time_get_microsecond(date) / 1000;
    return 0;
}

/* ---- the whole ---- */

int cr_mail_parse(cr_mail_t *out, const char *raw, size_t len)
{
    static const char *fallback[] = {"UTF-8", "windows-1252", NULL};
    mime_walk_t w;
    GMimeParserOptions *opts = NULL;
    GMimeStream *stream = NULL;
    GMimeParser *parser = NULL;
    GMimeMessage *msg = NULL;
    cr_buf_t text;
    char *links[CR_LINKS_MAX];
    int rc = -1, cut = 0;

    memset(out, 0, sizeof(*out));
    memset(&w, 0, sizeof(w));
    cr_buf_init(&text, CR_MAIL_TEXT_MAX);
    for (int i = 0; i < 2; ++i) {
        cr_buf_init(&w.plain[i], CR_MAIL_TEXT_MAX);
        cr_buf_init(&w.html[i], CR_MAIL_HTML_MAX);
    }
    if (raw == NULL)
        len = 0;
    cr_mail_init();

    opts = g_mime_parser_options_new();
    g_mime_parser_options_set_fallback_charsets(opts, fallback);
    g_mime_parser_options_set_allow_addresses_without_domain(opts, TRUE);
    g_mime_parser_options_set_warning_callback(opts, mime__warning, &w.flags);
    stream = g_mime_stream_mem_new_with_buffer(raw != NULL ? raw : "", len);
    parser = g_mime_parser_new_with_stream(stream);
    g_mime_parser_set_format(parser, GMIME_FORMAT_MESSAGE);
    msg = g_mime_parser_construct_message(parser, opts);

    if (msg == NULL) { /* nothing GMime could read: the bytes themselves are the text */
        w.flags |= CR_MAIL_MALFORMED;
        if ((out->from = mime__header_str(NULL)) == NULL || (out->from_addr = mime__header_str(NULL)) == NULL ||
            (out->to = mime__header_str(NULL)) == NULL || (out->subject = mime__header_str(NULL)) == NULL ||
            (out->message_id = mime__header_str(NULL)) == NULL)
            goto done;
        if (mime__to_utf8(&w.plain[0], raw, len, NULL, &cut) != 0)
            goto done;
    } else {
        if (mime__headers(out, msg) != 0)
            goto done;
        mime__walk(&w, g_mime_message_get_mime_part(msg), 0, 0);
        if (w.err)
            goto done;
    }

    /* the message's own text first, an attached message's only when the message has none */
    int use = (!blank(&w.plain[0]) || !blank(&w.html[0])) ? 0 : 1;
    mime__unix_newlines(&w.plain[use]);
    mime__unix_newlines(&w.html[use]);
    if (!blank(&w.plain[use])) {
        if (mime__put(&text, w.plain[use].base, w.plain[use].len, &cut) != 0)
            goto done;
    } else if (w.html[use].len > 0) {
        w.flags |= CR_MAIL_HTML_ONLY;
        if (mime__html_text(&text, w.html[use].base, w.html[use].len, &cut) != 0)
            goto done;
    }
    if (cut)
        w.flags |= CR_MAIL_TRUNCATED;
    if ((out->text = mime__take(&text)) == NULL)
        goto done;
    if (w.html[use].len > 0 && (out->html = mime__take(&w.html[use])) == NULL)
        goto done;

    int nlinks = cr_links_extract(links, CR_LINKS_MAX, out->text, out->html);
    if (nlinks < 0)
        goto done;
    if (nlinks > 0) {
        if ((out->links = malloc((size_t)nlinks * sizeof(*out->links))) == NULL) {
            for (int i = 0; i < nlinks; ++i)
                free(links[i]);
            goto done;
        }
        memcpy(out->links, links, (size_t)nlinks * sizeof(*out->links)); /* now owned by out */
        out->nlinks = (size_t)nlinks;
    }
    cr_otp_extract(&out->otp, out->subject, out->text);
    rc = 0;

done:
    out->flags = w.flags;
    if (msg != NULL)
        g_object_unref(msg);
    if (parser != NULL)
        g_object_unref(parser);
    if (stream != NULL)
        g_object_unref(stream);
    if (opts != NULL)
        g_mime_parser_options_free(opts); /* after the message: its headers point at the options */
    for (int i = 0; i < 2; ++i) {
        cr_buf_free(&w.plain[i]);
        cr_buf_free(&w.html[i]);
    }
    cr_buf_free(&text);
    if (rc != 0)
        cr_error_set(CR_ENOMEM, NULL, "out of memory parsing a mail");
    return rc;
}

void cr_mail_free(cr_mail_t *m)
{
    if (m == NULL)
        return;
    free(m->from);
    free(m->from_addr);
    free(m->to);
    free(m->subject);
    free(m->message_id);
    free(m->text);
    free(m->html);
    for (size_t i = 0; i < m->nlinks; ++i)
        free(m->links[i]);
    free(m->links);
    memset(m, 0, sizeof(*m));
}
