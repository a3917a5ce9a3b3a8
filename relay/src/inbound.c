/* inbound.c — mail and SMS coming in to identities (DESIGN.md §8): the SMTP listener (mail.smtp_listen), POST
 * /v1/inbound/mail (a raw RFC 5322 message, HMAC-SHA256 signed with mail.inbound_secret) and POST
 * /v1/inbound/sms/twilio (Twilio's form post, X-Twilio-Signature checked with sms.twilio_auth_token). Each message is
 * parsed (GMime), its codes and links found (PCRE2), sealed to the identity's public key (crypto_box_seal) and
 * appended to the identity's inbox stream; the identity's host is told on its downlink. Nothing in plaintext is
 * stored, and nothing of a message's content is logged. */
#include "identity.h"
#include "corral/codec.h"
#include "corral/error.h"
#include "corral/log.h"
#include "corral/mp.h"
#include "corral/query.h"
#include "corral/ulid.h"
#include "mime.h"
#include "otp.h"
#include "smtp.h"
#include <inttypes.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <openssl/ssl.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define ROUTE_PK_B64 43 /* a 32-byte X25519 public key in base64url */

/* Where an address or a number goes: the team, the identity, its public key, the host that keeps it. */
typedef struct st_route_t {
    char team[65], name[64], host[65];
    unsigned char pk[crypto_box_PUBLICKEYBYTES];
} route_t;

typedef void (*route_cb)(relay_t *relay, const route_t *route, int status, void *data); /* status: 1 found, 0 none, -1 Redis away */

typedef struct st_lookup_t {
    relay_t *relay;
    route_cb cb;
    void *data;
} lookup_t;

static struct {
    cr_smtp_server_t *smtp;
    SSL_CTX *tls;
    relay_t *relay;
    uint64_t mails_in, sms_in, refused, stored_bytes;
} in;

static void on_route(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    lookup_t *l = data;
    route_t r;
    int status = -1;
    (void)rdb;
    memset(&r, 0, sizeof(r));
    if (reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 4) {
        status = 0;
        if (reply->element[0]->type == REDIS_REPLY_STRING && reply->element[1]->type == REDIS_REPLY_STRING &&
            reply->element[2]->type == REDIS_REPLY_STRING && reply->element[3]->type == REDIS_REPLY_STRING &&
            reply->element[0]->len < sizeof(r.team) && reply->element[1]->len < sizeof(r.name) &&
            reply->element[3]->len < sizeof(r.host) && reply->element[2]->len == ROUTE_PK_B64) {
            cr_buf_t pk;
            cr_buf_init(&pk, 64);
            if (cr_base64url_decode(&pk, reply->element[2]->str, reply->element[2]->len) == 0 && pk.len == sizeof(r.pk)) {
                memcpy(r.team, reply->element[0]->str, reply->element[0]->len);
                memcpy(r.name, reply->element[1]->str, reply->element[1]->len);
                memcpy(r.host, reply->element[3]->str, reply->element[3]->len);
                memcpy(r.pk, pk.base, sizeof(r.pk));
                status = 1;
            }
            cr_buf_free(&pk);
        }
    }
    l->cb(l->relay, status == 1 ? &r : NULL, status, l->data);
    free(l);
}

/* Looks up cr:mail:<addr> or cr:sms:<number>; cb runs once (also when Redis is away: status -1). */
static void route_lookup(relay_t *relay, const char *kind, const char *addr, route_cb cb, void *data)
{
    lookup_t *l = malloc(sizeof(*l));
    char key[400];
    if (l == NULL) {
        cb(relay, NULL, -1, data);
        return;
    }
    *l = (lookup_t){relay, cb, data};
    snprintf(key, sizeof(key), "cr:%s:%s", kind, addr);
    if (relay_rdb_commandf(&relay->rdb, on_route, l, "HMGET %s t n pk h", key) != 0) {
        free(l);
        cb(relay, NULL, -1, data);
    }
}

/* ---- sealing and storing one message ---------------------------------------------------------------------- */

typedef void (*store_cb)(int status, void *data); /* status: 0 stored, -1 Redis away or refused */

typedef struct st_store_t {
    store_cb cb;
    void *data;
    char *argv[11];
    size_t lens[11];
} store_t;

static void store_free(store_t *s)
{
    for (size_t i = 0; i < 11; ++i)
        free(s->argv[i]);
    free(s);
}

static void on_stored(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    store_t *s = data;
    int ok = reply != NULL && reply->type == REDIS_REPLY_ARRAY && reply->elements == 2 &&
             reply->element[0]->type == REDIS_REPLY_STRING && strcmp(reply->element[0]->str, "ok") == 0;
    (void)rdb;
    if (ok) {
        cr_log(CR_LOG_INFO, "inbox of %s (team %.12s…): %s message %s stored, %zu bytes sealed", s->argv[10],
               s->argv[0] + 4, s->argv[4], reply->element[1]->str, s->lens[5]);
        in.stored_bytes += s->lens[5];
    } else if (reply != NULL) {
        cr_log(CR_LOG_ERROR, "inbox of %s: not stored (%s)", s->argv[10],
               reply->type == REDIS_REPLY_ERROR ? reply->str : "the identity is gone");
    }
    s->cb(ok ? 0 : -1, s->data);
    store_free(s);
}

/* Seals plain (a msgpack message) to the route's key and appends it to the identity's inbox. cb runs once. */
static void store_sealed(relay_t *relay, const route_t *r, const char *kind, const cr_buf_t *plain, store_cb cb, void *data)
{
    store_t *s = calloc(1, sizeof(*s));
    char tmp[256];
    size_t blen = plain->len + crypto_box_SEALBYTES;
    int bad = 0;
    if (s == NULL) {
        cb(-1, data);
        return;
    }
    s->cb = cb, s->data = data;
#define SETARG(i, p, n) ((s->argv[i] = cr_strndup((p), (n))) == NULL ? (bad = 1) : (s->lens[i] = (n), 0))
    snprintf(tmp, sizeof(tmp), "cr:{%s}:inbox:%s", r->team, r->name);
    SETARG(0, tmp, strlen(tmp));
    snprintf(tmp, sizeof(tmp), "cr:{%s}:act:%s", r->team, r->host);
    SETARG(1, tmp, strlen(tmp));
    snprintf(tmp, sizeof(tmp), "cr:{%s}:id:%s", r->team, r->name);
    SETARG(2, tmp, strlen(tmp));
    SETARG(3, "inbox", 5);
    SETARG(4, kind, strlen(kind));
    if ((s->argv[5] = malloc(blen)) == NULL || crypto_box_seal((unsigned char *)s->argv[5], (const unsigned char *)plain->base,
                                                               plain->len, r->pk) != 0)
        bad = 1;
    s->lens[5] = blen;
    snprintf(tmp, sizeof(tmp), "%" PRIu64, cr_now_ms());
    SETARG(6, tmp, strlen(tmp));
    snprintf(tmp, sizeof(tmp), "%" PRId64, cr_config_int(relay->conf, "mail.inbox_maxlen"));
    SETARG(7, tmp, strlen(tmp));
    snprintf(tmp, sizeof(tmp), "cr:live:{%s}", r->team);
    SETARG(8, tmp, strlen(tmp));
    SETARG(9, r->host, strlen(r->host));
    SETARG(10, r->name, strlen(r->name));
#undef SETARG
    if (bad || relay_rdb_script(&relay->rdb, &relay_identity_script, on_stored, s, 3, 11, (const char **)s->argv, s->lens) != 0) {
        cb(-1, data);
        store_free(s);
    }
}

/* ---- the message as the host will open it ------------------------------------------------------------------ */

static void w_s(cr_buf_t *b, const char *key, const char *v)
{
    cr_mpw_str(b, key, strlen(key));
    cr_mpw_str(b, v != NULL ? v : "", v != NULL ? strlen(v) : 0);
}

static void w_otp(cr_buf_t *b, const cr_otp_t *otp)
{
    CR_MPW_LIT(b, "otp");
    if (otp->n == 0)
        cr_mpw_nil(b);
    else
        cr_mpw_str(b, otp->cand[0].code, strlen(otp->cand[0].code));
    CR_MPW_LIT(b, "otp_candidates");
    cr_mpw_array(b, (uint32_t)otp->n);
    for (size_t i = 0; i < otp->n; ++i)
        cr_mpw_str(b, otp->cand[i].code, strlen(otp->cand[i].code));
}

/* {id, kind: "mail", from, to, subject, date, received, text, links, otp, otp_candidates, flags, raw}. */
static int mail_message(cr_buf_t *b, const cr_mail_t *m, const char *raw, size_t len, const char *rcpt)
{
    char id[CR_ULID_LEN + 5] = "msg_";
    cr_ulid_new(id + 4);
    cr_mpw_map(b, 13);
    w_s(b, "id", id);
    w_s(b, "kind", "mail");
    w_s(b, "from", m->from);
    w_s(b, "to", m->to != NULL && m->to[0] != '\0' ? m->to : rcpt);
    w_s(b, "subject", m->subject);
    CR_MPW_LIT(b, "date"), cr_mpw_uint(b, m->date_ms > 0 ? (uint64_t)m->date_ms : 0);
    CR_MPW_LIT(b, "received"), cr_mpw_uint(b, cr_now_ms());
    w_s(b, "text", m->text);
    CR_MPW_LIT(b, "links");
    cr_mpw_array(b, (uint32_t)m->nlinks);
    for (size_t i = 0; i < m->nlinks; ++i)
        cr_mpw_str(b, m->links[i], strlen(m->links[i]));
    w_otp(b, &m->otp);
    CR_MPW_LIT(b, "flags");
    cr_mpw_array(b, (uint32_t)(((m->flags & CR_MAIL_MALFORMED) != 0) + ((m->flags & CR_MAIL_TRUNCATED) != 0) +
                               ((m->flags & CR_MAIL_HTML_ONLY) != 0)));
    if (m->flags & CR_MAIL_MALFORMED)
        CR_MPW_LIT(b, "malformed");
    if (m->flags & CR_MAIL_TRUNCATED)
        CR_MPW_LIT(b, "truncated");
    if (m->flags & CR_MAIL_HTML_ONLY)
        CR_MPW_LIT(b, "html_only");
    CR_MPW_LIT(b, "raw");
    return cr_mpw_str(b, raw, len) == 0 && cr_mp_skip(b->base, b->base + b->len) == b->base + b->len ? 0 : -1;
}

/* ---- a mail to one or more recipients -------------------------------------------------------------------- */

typedef void (*mail_done_cb)(int stored, int failed, int unknown, void *data);

typedef struct st_mail_job_t {
    relay_t *relay;
    cr_mail_t mail;
    char *raw;
    size_t len;
    char **rcpts;
    size_t nrcpts, pending;
    int stored, failed, unknown;
    mail_done_cb done;
    void *data;
    struct st_mail_rcpt_t {
        struct st_mail_job_t *job;
        size_t i;
    } *slots;
} mail_job_t;

static void mail_job_step(mail_job_t *j)
{
    if (--j->pending != 0)
        return;
    if (j->stored > 0)
        ++in.mails_in;
    j->done(j->stored, j->failed, j->unknown, j->data);
    cr_mail_free(&j->mail);
    for (size_t i = 0; i < j->nrcpts; ++i)
        free(j->rcpts[i]);
    free(j->rcpts);
    free(j->slots);
    free(j->raw);
    free(j);
}

static void on_mail_stored(int status, void *data)
{
    struct st_mail_rcpt_t *slot = data;
    if (status == 0)
        ++slot->job->stored;
    else
        ++slot->job->failed;
    mail_job_step(slot->job);
}

static void on_mail_route(relay_t *relay, const route_t *r, int status, void *data)
{
    struct st_mail_rcpt_t *slot = data;
    mail_job_t *j = slot->job;
    cr_buf_t plain;
    if (status <= 0) {
        if (status == 0)
            ++j->unknown;
        else
            ++j->failed;
        mail_job_step(j);
        return;
    }
    cr_buf_init(&plain, j->len + CR_MAIL_TEXT_MAX * 2 + (1u << 20));
    if (mail_message(&plain, &j->mail, j->raw, j->len, j->rcpts[slot->i]) != 0) {
        cr_log(CR_LOG_ERROR, "inbox of %s: the message could not be written (%zu bytes)", r->name, j->len);
        cr_buf_free(&plain);
        ++j->failed;
        mail_job_step(j);
        return;
    }
    store_sealed(relay, r, "mail", &plain, on_mail_stored, slot);
    sodium_memzero(plain.base, plain.len);
    cr_buf_free(&plain);
}

/* Stores raw for every recipient (addresses lower-cased), parsed once: parsed is the caller's parse of it, taken over
 * (zeroed here), or NULL to parse now. done runs once with the counts. The strings are copied. */
static void mail_deliver(relay_t *relay, const char *raw, size_t len, cr_mail_t *parsed, const char *const *rcpts, size_t n,
                         mail_done_cb done, void *data)
{
    mail_job_t *j = calloc(1, sizeof(*j));
    if (j == NULL || (j->raw = malloc(len + 1)) == NULL || (j->rcpts = calloc(n, sizeof(char *))) == NULL ||
        (j->slots = calloc(n, sizeof(*j->slots))) == NULL) {
        if (j != NULL) {
            free(j->raw);
            free(j->rcpts);
        }
        free(j);
        if (parsed != NULL)
            cr_mail_free(parsed);
        done(0, (int)n, 0, data);
        return;
    }
    j->relay = relay, j->done = done, j->data = data, j->len = len;
    memcpy(j->raw, raw, len);
    j->raw[len] = '\0';
    if (parsed != NULL) {
        j->mail = *parsed;
        memset(parsed, 0, sizeof(*parsed)); /* now owned by j */
    } else if (cr_mail_parse(&j->mail, raw, len) != 0) {
        j->mail.flags |= CR_MAIL_MALFORMED; /* out of memory midway: keep the raw message, flagged */
    }
    j->nrcpts = n;
    j->pending = n + 1;
    for (size_t i = 0; i < n; ++i) {
        j->rcpts[i] = cr_strndup(rcpts[i], strlen(rcpts[i]));
        for (char *p = j->rcpts[i]; p != NULL && *p != '\0'; ++p)
            if (*p >= 'A' && *p <= 'Z')
                *p = (char)(*p + 32);
        j->slots[i].job = j, j->slots[i].i = i;
        if (j->rcpts[i] == NULL) {
            ++j->failed;
            --j->pending;
            continue;
        }
        route_lookup(relay, "mail", j->rcpts[i], on_mail_route, &j->slots[i]);
    }
    mail_job_step(j);
}

/* ---- SMTP ---------------------------------------------------------------------------------------------------- */

typedef struct st_smtp_call_t {
    cr_smtp_session_t *conn;
    cr_smtp_answer_fn answer;
} smtp_call_t;

static void on_smtp_route(relay_t *relay, const route_t *r, int status, void *data)
{
    smtp_call_t *c = data;
    (void)relay, (void)r;
    if (status > 0)
        c->answer(c->conn, 250, "2.1.5 OK");
    else if (status == 0)
        c->answer(c->conn, 550, "5.1.1 no such mailbox here");
    else
        c->answer(c->conn, 451, "4.3.0 temporary trouble here; try again later");
    free(c);
}

static void smtp_rcpt(cr_smtp_session_t *conn, const char *addr, cr_smtp_answer_fn answer, void *data)
{
    relay_t *relay = data;
    smtp_call_t *c = malloc(sizeof(*c));
    if (c == NULL) {
        answer(conn, 451, "4.3.0 out of memory; try again later");
        return;
    }
    c->conn = conn, c->answer = answer;
    /* addresses are routed lower-cased (identity names are lower case): Agent@domain is agent@domain */
    char lower[400];
    size_t n = strlen(addr);
    if (n >= sizeof(lower)) {
        free(c);
        answer(conn, 550, "5.1.1 no such mailbox here");
        return;
    }
    for (size_t i = 0; i <= n; ++i)
        lower[i] = (char)(addr[i] >= 'A' && addr[i] <= 'Z' ? addr[i] + 32 : addr[i]);
    route_lookup(relay, "mail", lower, on_smtp_route, c);
}

static void on_smtp_delivered(int stored, int failed, int unknown, void *data)
{
    smtp_call_t *c = data;
    if (failed > 0)
        c->answer(c->conn, 451, "4.3.0 the message could not be stored for every recipient; try again later");
    else if (stored == 0)
        c->answer(c->conn, 550, "5.1.1 no such mailbox here");
    else
        c->answer(c->conn, 250, "2.0.0 OK: stored");
    (void)unknown;
    free(c);
}

static void smtp_deliver(cr_smtp_session_t *conn, const char *from, const char *const *rcpts, size_t nrcpts, const char *msg,
                         size_t len, cr_smtp_answer_fn answer, void *data)
{
    relay_t *relay = data;
    smtp_call_t *c = malloc(sizeof(*c));
    (void)from;
    if (c == NULL) {
        answer(conn, 451, "4.3.0 out of memory; try again later");
        return;
    }
    c->conn = conn, c->answer = answer;
    mail_deliver(relay, msg, len, NULL, rcpts, nrcpts, on_smtp_delivered, c);
}

/* ---- POST /v1/inbound/mail ------------------------------------------------------------------------------------- */

/* Checks an "X-Corral-Signature: sha256=<hex>" (or bare hex) HMAC-SHA256 of the body with secret, in constant time. */
static int signature_ok(relay_req_t *rr, const char *header, const unsigned char *mac, size_t maclen)
{
    ssize_t i = h2o_find_header_by_str(&rr->req->headers, header, strlen(header), -1);
    char hex[2 * EVP_MAX_MD_SIZE + 1];
    h2o_iovec_t v;
    if (i < 0)
        return 0;
    v = rr->req->headers.entries[i].value;
    if (v.len > 7 && strncasecmp(v.base, "sha256=", 7) == 0)
        v.base += 7, v.len -= 7;
    if (v.len != 2 * maclen)
        return 0;
    for (size_t k = 0; k < maclen; ++k)
        snprintf(hex + 2 * k, 3, "%02x", mac[k]);
    char got[2 * EVP_MAX_MD_SIZE];
    for (size_t k = 0; k < v.len; ++k)
        got[k] = (char)(v.base[k] >= 'A' && v.base[k] <= 'F' ? v.base[k] + 32 : v.base[k]);
    return CRYPTO_memcmp(got, hex, v.len) == 0;
}

static void on_http_mail_done(int stored, int failed, int unknown, void *data)
{
    relay_req_t *rr = data;
    if (failed > 0) {
        relay_respond_unavailable(rr);
    } else if (stored == 0) {
        relay_respond_error(rr, 404, "not_found", "to", "no recipient of the message is an identity here");
    } else {
        cr_buf_t b;
        cr_buf_init(&b, 256);
        cr_mpw_map(&b, 2);
        CR_MPW_LIT(&b, "stored"), cr_mpw_uint(&b, (uint64_t)stored);
        CR_MPW_LIT(&b, "unknown"), cr_mpw_uint(&b, (uint64_t)unknown);
        relay_respond(rr, 202, b.base, b.len);
        cr_buf_free(&b);
    }
}

/* Recipients from ?to=a,b (the envelope, as the delivering MTA knows it); without it, the message's To and Cc
 * addresses at mail.domain. */
static size_t http_mail_rcpts(relay_req_t *rr, const cr_mail_t *m, char rcpts[][320], size_t max)
{
    const char *to = relay_query(rr, "to"), *domain = relay_identity_mail_domain(rr->relay);
    size_t n = 0, dl = strlen(domain);
    const char *list = to != NULL ? to : m->to;
    const char *p = list;
    while (p != NULL && *p != '\0' && n < max) {
        /* take the next token that looks like an address */
        const char *at = strchr(p, '@');
        if (at == NULL)
            break;
        const char *s = at, *e = at;
        while (s > p && strchr(" ,<>;:\"\t\r\n", s[-1]) == NULL)
            --s;
        while (*e != '\0' && strchr(" ,<>;:\"\t\r\n", *e) == NULL)
            ++e;
        if ((size_t)(e - s) < 320 && (size_t)(e - at - 1) == dl && strncasecmp(at + 1, domain, dl) == 0) {
            int dup = 0;
            char a[320];
            size_t len = (size_t)(e - s);
            for (size_t k = 0; k < len; ++k)
                a[k] = (char)(s[k] >= 'A' && s[k] <= 'Z' ? s[k] + 32 : s[k]);
            a[len] = '\0';
            for (size_t k = 0; k < n; ++k)
                dup |= strcmp(rcpts[k], a) == 0;
            if (!dup)
                memcpy(rcpts[n++], a, len + 1);
        }
        p = e;
    }
    return n;
}

static void on_inbound_mail(relay_req_t *rr)
{
    const char *secret = cr_config_str(rr->relay->conf, "mail.inbound_secret");
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    if (secret == NULL || secret[0] == '\0') {
        relay_respond_error(rr, 404, "not_found", NULL, "inbound mail over HTTP is off (mail.inbound_secret is not set)");
        return;
    }
    if (HMAC(EVP_sha256(), secret, (int)strlen(secret), (const unsigned char *)rr->body.base, rr->body.len, mac, &maclen) ==
            NULL ||
        !signature_ok(rr, "x-corral-signature", mac, maclen)) {
        ++in.refused;
        relay_respond_error(rr, 403, "forbidden", "X-Corral-Signature",
                            "the body's HMAC-SHA256 signature (X-Corral-Signature: sha256=<hex>) does not verify");
        return;
    }
    if (rr->body.len == 0) {
        relay_respond_error(rr, 400, "bad_request", NULL, "the body must be the raw message (RFC 5322)");
        return;
    }
    if (rr->body.len > (size_t)cr_config_int(rr->relay->conf, "mail.max_size")) {
        relay_respond_error(rr, 413, "too_large", NULL, "the message is larger than mail.max_size (%" PRId64 " bytes)",
                            cr_config_int(rr->relay->conf, "mail.max_size"));
        return;
    }
    /* parsed once: for the recipients (without ?to=) and for what the inboxes keep */
    cr_mail_t m;
    char rcpts[CR_SMTP_RCPTS_MAX][320];
    const char *rp[CR_SMTP_RCPTS_MAX];
    size_t n;
    memset(&m, 0, sizeof(m));
    if (cr_mail_parse(&m, rr->body.base, rr->body.len) != 0)
        m.flags |= CR_MAIL_MALFORMED; /* out of memory midway: keep the raw message, flagged */
    n = http_mail_rcpts(rr, &m, rcpts, CR_SMTP_RCPTS_MAX);
    if (n == 0) {
        cr_mail_free(&m);
        relay_respond_error(rr, 404, "not_found", "to", "the message names no recipient at @%s",
                            relay_identity_mail_domain(rr->relay));
        return;
    }
    for (size_t i = 0; i < n; ++i)
        rp[i] = rcpts[i];
    mail_deliver(rr->relay, rr->body.base, rr->body.len, &m, rp, n, on_http_mail_done, rr);
}

/* ---- POST /v1/inbound/sms/twilio ------------------------------------------------------------------------------ */

typedef struct st_form_field_t {
    char *name, *value;
} form_field_t;

/* Decodes a form-encoded name or value into a malloc'd string. */
static char *form_decode(const char *s, size_t n)
{
    char *out = malloc(n + 1);
    if (out != NULL)
        cr_form_decode(out, s, n);
    return out;
}

static int field_cmp(const void *a, const void *b)
{
    return strcmp(((const form_field_t *)a)->name, ((const form_field_t *)b)->name);
}

/* Twilio's signature: base64(HMAC-SHA1(auth token, URL + each POST field's name and value, sorted by name)). */
static int twilio_signature_ok(relay_req_t *rr, const char *token, const char *url, form_field_t *f, size_t n)
{
    ssize_t i = h2o_find_header_by_str(&rr->req->headers, H2O_STRLIT("x-twilio-signature"), -1);
    cr_buf_t msg;
    unsigned char mac[EVP_MAX_MD_SIZE];
    unsigned maclen = 0;
    char b64[64];
    if (i < 0)
        return 0;
    qsort(f, n, sizeof(*f), field_cmp);
    cr_buf_init(&msg, 1u << 20);
    int bad = cr_buf_append(&msg, url, strlen(url)) != 0;
    for (size_t k = 0; k < n; ++k)
        bad |= cr_buf_append(&msg, f[k].name, strlen(f[k].name)) != 0 || cr_buf_append(&msg, f[k].value, strlen(f[k].value)) != 0;
    if (bad || HMAC(EVP_sha1(), token, (int)strlen(token), (const unsigned char *)msg.base, msg.len, mac, &maclen) == NULL)
        maclen = 0;
    if (msg.base != NULL)
        sodium_memzero(msg.base, msg.len);
    cr_buf_free(&msg);
    if (maclen == 0)
        return 0;
    size_t bl = cr_base64_encode(b64, mac, maclen);
    h2o_iovec_t v = rr->req->headers.entries[i].value;
    return v.len == bl && CRYPTO_memcmp(v.base, b64, bl) == 0;
}

typedef struct st_sms_job_t {
    relay_req_t *rr;
    char *from, *to, *body;
} sms_job_t;

static void sms_job_free(sms_job_t *j)
{
    free(j->from);
    free(j->to);
    if (j->body != NULL)
        sodium_memzero(j->body, strlen(j->body));
    free(j->body);
    free(j);
}

/* Twilio wants TwiML back; an empty <Response/> sends no reply SMS. */
static void twiml_ok(relay_req_t *rr)
{
    static const char twiml[] = "<?xml version=\"1.0\" encoding=\"UTF-8\"?><Response></Response>";
    h2o_req_t *req = rr->req;
    if (req != NULL) {
        req->res.status = 200;
        req->res.reason = "OK";
        h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("text/xml"));
        h2o_send_inline(req, twiml, sizeof(twiml) - 1);
    }
    relay_req_release(rr);
}

static void on_sms_stored(int status, void *data)
{
    sms_job_t *j = data;
    if (status == 0) {
        ++in.sms_in;
        twiml_ok(j->rr);
    } else {
        relay_respond_unavailable(j->rr);
    }
    sms_job_free(j);
}

static void on_sms_route(relay_t *relay, const route_t *r, int status, void *data)
{
    sms_job_t *j = data;
    cr_buf_t b;
    cr_otp_t otp;
    char id[CR_ULID_LEN + 5] = "msg_";
    char *links[CR_LINKS_MAX];
    int nl;
    if (status <= 0) {
        if (status == 0)
            relay_respond_error(j->rr, 404, "not_found", "To", "no identity holds the number %s", j->to);
        else
            relay_respond_unavailable(j->rr);
        sms_job_free(j);
        return;
    }
    cr_otp_extract(&otp, NULL, j->body);
    nl = cr_links_extract(links, CR_LINKS_MAX, j->body, NULL);
    cr_ulid_new(id + 4);
    cr_buf_init(&b, 1u << 20);
    cr_mpw_map(&b, 12);
    w_s(&b, "id", id);
    w_s(&b, "kind", "sms");
    w_s(&b, "from", j->from);
    w_s(&b, "to", j->to);
    w_s(&b, "subject", "");
    CR_MPW_LIT(&b, "date"), cr_mpw_uint(&b, cr_now_ms());
    CR_MPW_LIT(&b, "received"), cr_mpw_uint(&b, cr_now_ms());
    w_s(&b, "text", j->body);
    CR_MPW_LIT(&b, "links");
    cr_mpw_array(&b, nl > 0 ? (uint32_t)nl : 0);
    for (int i = 0; i < nl; ++i) {
        cr_mpw_str(&b, links[i], strlen(links[i]));
        free(links[i]);
    }
    w_otp(&b, &otp);
    CR_MPW_LIT(&b, "flags"), cr_mpw_array(&b, 0);
    store_sealed(relay, r, "sms", &b, on_sms_stored, j);
    sodium_memzero(b.base, b.len);
    cr_buf_free(&b);
}

static void on_inbound_sms(relay_req_t *rr)
{
    const char *token = cr_config_str(rr->relay->conf, "sms.twilio_auth_token");
    const char *url = cr_config_str(rr->relay->conf, "sms.twilio_url");
    form_field_t f[64];
    size_t n = 0;
    sms_job_t *j = NULL;
    char urlbuf[1024];
    if (token == NULL || token[0] == '\0') {
        relay_respond_error(rr, 404, "not_found", NULL, "the Twilio webhook is off (sms.twilio_auth_token is not set)");
        return;
    }
    if (url == NULL || url[0] == '\0') { /* what Twilio was told to call: http.public_url + the path */
        const char *pub = cr_config_str(rr->relay->conf, "http.public_url");
        snprintf(urlbuf, sizeof(urlbuf), "%s/v1/inbound/sms/twilio", pub != NULL ? pub : "");
        url = urlbuf;
    }
    for (const char *p = rr->body.base, *end = p + rr->body.len; p < end && n < 64;) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *e = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(e - p));
        if (eq != NULL) {
            f[n].name = form_decode(p, (size_t)(eq - p));
            f[n].value = form_decode(eq + 1, (size_t)(e - eq - 1));
            if (f[n].name == NULL || f[n].value == NULL) {
                free(f[n].name), free(f[n].value);
                break;
            }
            ++n;
        }
        p = e + 1;
    }
    if (!twilio_signature_ok(rr, token, url, f, n)) {
        ++in.refused;
        relay_respond_error(rr, 403, "forbidden", "X-Twilio-Signature", "the request's X-Twilio-Signature does not verify");
        goto done;
    }
    if ((j = calloc(1, sizeof(*j))) == NULL) {
        relay_respond_error(rr, 500, "no_memory", NULL, "out of memory");
        goto done;
    }
    j->rr = rr;
    for (size_t k = 0; k < n; ++k) {
        char **slot = strcmp(f[k].name, "From") == 0 ? &j->from : strcmp(f[k].name, "To") == 0 ? &j->to
                                                              : strcmp(f[k].name, "Body") == 0 ? &j->body : NULL;
        if (slot != NULL && *slot == NULL) {
            *slot = f[k].value;
            f[k].value = NULL;
        }
    }
    if (j->to == NULL || j->to[0] == '\0' || j->body == NULL) {
        relay_respond_error(rr, 400, "bad_request", j->to == NULL ? "To" : "Body", "From, To and Body are needed");
        sms_job_free(j);
        goto done;
    }
    if (j->from == NULL)
        j->from = cr_strndup("", 0);
    route_lookup(rr->relay, "sms", j->to, on_sms_route, j);
done:
    for (size_t k = 0; k < n; ++k) {
        free(f[k].name);
        if (f[k].value != NULL)
            sodium_memzero(f[k].value, strlen(f[k].value));
        free(f[k].value);
    }
}

/* ---- lifecycle ------------------------------------------------------------------------------------------------- */

static void on_pool(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    (void)rdb, (void)data;
    if (reply != NULL && reply->type == REDIS_REPLY_INTEGER && reply->integer > 0)
        cr_log(CR_LOG_INFO, "sms: %lld numbers added to the pool", reply->integer);
}

void relay_inbound_on_ready(relay_t *relay)
{
    const char *nums = cr_config_str(relay->conf, "sms.numbers");
    const char *argv[130];
    size_t lens[130], n = 2;
    char buf[4096];
    if (nums == NULL || nums[0] == '\0')
        return;
    snprintf(buf, sizeof(buf), "%s", nums);
    argv[0] = "cr:sms:pool", argv[1] = "pool";
    for (char *save = NULL, *t = strtok_r(buf, ", ", &save); t != NULL && n < 130; t = strtok_r(NULL, ", ", &save))
        argv[n++] = t;
    for (size_t i = 0; i < n; ++i)
        lens[i] = strlen(argv[i]);
    /* hiredis formats the command now; the strings may go (a NOSCRIPT retry would need them: load the pool again on
     * the next ready instead — it is idempotent) */
    static char *keep[130];
    for (size_t i = 0; i < n; ++i) {
        free(keep[i]);
        keep[i] = cr_strndup(argv[i], lens[i]);
        argv[i] = keep[i];
    }
    relay_rdb_script(&relay->rdb, &relay_identity_script, on_pool, NULL, 1, (int)n, argv, lens);
}

int relay_inbound_start(relay_t *relay)
{
    const char *listen = cr_config_str(relay->conf, "mail.smtp_listen");
    const char *cert = cr_config_str(relay->conf, "http.tls_cert"), *key = cr_config_str(relay->conf, "http.tls_key");
    cr_smtp_opts_t o;
    in.relay = relay;
    if (listen == NULL || listen[0] == '\0')
        return 0;
    if (cert != NULL && cert[0] != '\0' && key != NULL && key[0] != '\0') {
        if ((in.tls = SSL_CTX_new(TLS_server_method())) == NULL ||
            SSL_CTX_use_certificate_chain_file(in.tls, cert) != 1 ||
            SSL_CTX_use_PrivateKey_file(in.tls, key, SSL_FILETYPE_PEM) != 1) {
            if (in.tls != NULL)
                SSL_CTX_free(in.tls);
            in.tls = NULL;
            return cr_error_set(CR_ECONFIG, "http.tls_cert", "STARTTLS: cannot load %s / %s", cert, key);
        }
        SSL_CTX_set_min_proto_version(in.tls, TLS1_2_VERSION);
    }
    memset(&o, 0, sizeof(o));
    o.hostname = relay_identity_mail_domain(relay);
    o.max_size = (size_t)cr_config_int(relay->conf, "mail.max_size");
    o.timeout_ms = (unsigned)cr_config_int(relay->conf, "mail.smtp_timeout_ms");
    o.max_conns = (size_t)cr_config_int(relay->conf, "mail.smtp_max_conns");
    o.tls = in.tls;
    o.rcpt = smtp_rcpt;
    o.deliver = smtp_deliver;
    o.data = relay;
    if (cr_smtp_listen(&in.smtp, relay->loop, listen, &o) != 0)
        return CR_EIO;
    cr_log(CR_LOG_INFO, "smtp: listening on %s for @%s (port %d)%s", listen, o.hostname, cr_smtp_port(in.smtp),
           in.tls != NULL ? ", STARTTLS offered" : "");
    return 0;
}

void relay_inbound_stop(relay_t *relay)
{
    (void)relay;
    if (in.smtp != NULL) {
        cr_smtp_close(in.smtp);
        in.smtp = NULL;
    }
}

void relay_inbound_metrics(cr_buf_t *out)
{
    cr_buf_appendf(out,
                   "# HELP corral_inbound_mails_total Mails stored in at least one inbox.\n"
                   "# TYPE corral_inbound_mails_total counter\ncorral_inbound_mails_total %" PRIu64 "\n"
                   "# HELP corral_inbound_sms_total SMS stored.\n"
                   "# TYPE corral_inbound_sms_total counter\ncorral_inbound_sms_total %" PRIu64 "\n"
                   "# HELP corral_inbound_refused_total Webhook posts refused for a bad signature.\n"
                   "# TYPE corral_inbound_refused_total counter\ncorral_inbound_refused_total %" PRIu64 "\n",
                   in.mails_in, in.sms_in, in.refused);
}

void relay_inbound_register(relay_t *relay)
{
    relay_route(relay, "POST", "/v1/inbound/mail", RELAY_ROUTE_RAW, on_inbound_mail, "inbound_mail");
    relay_route(relay, "POST", "/v1/inbound/sms/twilio", RELAY_ROUTE_RAW, on_inbound_sms, "inbound_sms");
}
