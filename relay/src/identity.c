/* identity.c — identities on the relay (DESIGN.md §8): their records and routes, their end-to-end encrypted vaults,
 * their sealed inboxes as the host fetches them, and the team's audit trail. The relay never holds a key that opens
 * any of it: hosts send public keys and wrapped blobs, and get blobs back. Every step is one call of
 * relay/lua/identity.lua, which writes the audit record in the same call. */
#include "identity.h"
#include "streamid.h"
#include "corral/codec.h"
#include "corral/error.h"
#include "corral/log.h"
#include "corral/mp.h"
#include "corral/ulid.h"
#include <inttypes.h>
#include <msgpack.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char relay_lua_identity[];
extern const size_t relay_lua_identity_len;
relay_script_t relay_identity_script = {.name = "identity"};

#define ARGS_MAX 24
#define INBOX_PAGE_DEFAULT 50
#define INBOX_PAGE_MAX 500
#define INBOX_PAGE_BYTES (8u << 20)   /* a page stops once its sealed messages reach this many bytes */
#define AUDIT_PAGE_MAX 1000
#define AUDIT_BATCH_MAX 100           /* records in one POST /v1/audit */
#define BLOB_MAX (64u << 10)          /* a wrapped key or one sealed secret, as base64url */

/* ---- small things ---------------------------------------------------------------------------------------------- */

int relay_identity_name_ok(const char *s, size_t n)
{
    if (n == 0 || n > 63 || !((s[0] >= 'a' && s[0] <= 'z') || (s[0] >= '0' && s[0] <= '9')))
        return 0;
    for (size_t i = 1; i < n; ++i)
        if (!((s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '-'))
            return 0;
    return s[n - 1] != '-';
}

static int key_ok(const char *s, size_t n)
{
    if (n == 0 || n > 128 || !((s[0] >= 'A' && s[0] <= 'Z') || (s[0] >= 'a' && s[0] <= 'z') || s[0] == '_'))
        return 0;
    for (size_t i = 1; i < n; ++i)
        if (!((s[i] >= 'A' && s[i] <= 'Z') || (s[i] >= 'a' && s[i] <= 'z') || (s[i] >= '0' && s[i] <= '9') || s[i] == '_' ||
              s[i] == '.' || s[i] == '-'))
            return 0;
    return 1;
}

static int b64url_ok(cr_span_t v, size_t max)
{
    if (v.len == 0 || v.len > max)
        return 0;
    for (size_t i = 0; i < v.len; ++i) {
        char c = v.base[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/* Reads the str `key` of the body map. Returns 1 (found), 0 (absent) or -1 (present but not a string). */
static int body_str(relay_req_t *rr, const char *key, cr_span_t *out)
{
    cr_span_t v;
    cr_mp_item_t it;
    out->base = NULL, out->len = 0;
    if (rr->body.len == 0 || cr_mp_map_get(rr->body.base, rr->body.len, key, &v) != 0)
        return 0;
    if (cr_mp_read(v.base, v.base + v.len, &it) == 0)
        return -1;
    if (it.type == MSGPACK_OBJECT_NIL)
        return 0;
    if (it.type != MSGPACK_OBJECT_STR)
        return -1;
    *out = it.bytes;
    return 1;
}

/* One script call between its sending and Redis' answer: the arguments are copies that live here. */
typedef struct st_icall_t {
    relay_req_t *rr;
    int argc, nkeys, bad;
    char *argv[ARGS_MAX]; /* the KEYS, then the ARGV (read with ARG) */
    size_t lens[ARGS_MAX];
    char name[64], key[129];
    uint64_t u; /* a step's number: the version asked for, the page size */
} icall_t;

#define ARG(c, i) ((c)->argv[(c)->nkeys + (i)]) /* ARGV[i + 1] of the script */

static icall_t *icall_new(relay_req_t *rr)
{
    icall_t *c = calloc(1, sizeof(*c));
    if (c != NULL)
        c->rr = rr;
    return c;
}

static void icall_free(icall_t *c)
{
    for (int i = 0; i < c->argc; ++i)
        free(c->argv[i]);
    free(c);
}

static int icall_arg(icall_t *c, const char *p, size_t n)
{
    if (c->argc >= ARGS_MAX || (c->argv[c->argc] = cr_strndup(p, n)) == NULL) {
        c->bad = 1;
        return -1;
    }
    c->lens[c->argc++] = n;
    return 0;
}

static int icall_argf(icall_t *c, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
static int icall_argf(icall_t *c, const char *fmt, ...)
{
    char tmp[512];
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(tmp, sizeof(tmp), fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= sizeof(tmp)) {
        c->bad = 1;
        return -1;
    }
    return icall_arg(c, tmp, (size_t)n);
}

/* Sends the call; on failure answers 503 (or 500) and frees c. */
static void icall_send(icall_t *c, relay_rdb_cb cb)
{
    if (c->argc == 0 || c->bad) {
        relay_respond_error(c->rr, 500, "internal", NULL, "the relay could not build the request");
        icall_free(c);
        return;
    }
    if (relay_rdb_script(&c->rr->relay->rdb, &relay_identity_script, cb, c, c->nkeys, c->argc, (const char **)c->argv,
                         c->lens) != 0) {
        relay_respond_unavailable(c->rr);
        icall_free(c);
    }
}

/* The audit trail's actor: the host's principal and, when the host names one, who on the host asked
 * ("session:NAME", "owner"). */
static void actor_of(relay_req_t *rr, char *out, size_t outlen)
{
    cr_span_t a = {NULL, 0};
    const char *q = relay_query(rr, "actor");
    if (q != NULL)
        a.base = q, a.len = strlen(q);
    else
        (void)body_str(rr, "actor", &a);
    int ok = a.len > 0 && a.len <= 80;
    for (size_t i = 0; ok && i < a.len; ++i)
        ok = (unsigned char)a.base[i] > 0x20 && (unsigned char)a.base[i] < 0x7f;
    const char *kind = rr->who.kind == RELAY_P_ADMIN ? "admin" : rr->who.kind == RELAY_P_HOST ? "host" : "device";
    if (ok)
        snprintf(out, outlen, "%s:%s/%.*s", kind, rr->who.id, (int)a.len, a.base);
    else
        snprintf(out, outlen, "%s:%s", kind, rr->who.id);
}

static int reply_is(redisReply *r, const char *word)
{
    return r != NULL && r->type == REDIS_REPLY_ARRAY && r->elements >= 1 && r->element[0]->type == REDIS_REPLY_STRING &&
           strcmp(r->element[0]->str, word) == 0;
}

static void unexpected(relay_req_t *rr, redisReply *reply, const char *what)
{
    cr_log(CR_LOG_ERROR, "identity %s: unexpected reply (type %d%s%s)", what, reply->type,
           reply->type == REDIS_REPLY_ERROR ? ": " : "", reply->type == REDIS_REPLY_ERROR ? reply->str : "");
    relay_respond_error(rr, 500, "internal", NULL, "the relay could not %s", what);
}

/* The identity name in the path: answers 400 and returns -1 when it is not one. */
static int path_name(relay_req_t *rr, size_t i, char *out)
{
    h2o_iovec_t p = rr->params[i];
    if (!relay_identity_name_ok(p.base, p.len)) {
        relay_respond_error(rr, 400, "bad_name", "name",
                            "an identity name is 1 to 63 of a-z, 0-9 and '-', starting with a letter or digit");
        return -1;
    }
    memcpy(out, p.base, p.len);
    out[p.len] = '\0';
    return 0;
}

static void w_str(cr_buf_t *b, const char *s)
{
    cr_mpw_str(b, s, strlen(s));
}

/* Writes an identity record (HGETALL pairs) as a map; phone '' becomes nil, created a number. */
static void w_record(cr_buf_t *b, redisReply *rec, const char *team)
{
    static const char *const fields[] = {"id", "name", "email", "phone", "pk", "wsk", "wvk", "host", "created"};
    const size_t nf = sizeof(fields) / sizeof(fields[0]);
    cr_mpw_map(b, (uint32_t)nf + 1);
    CR_MPW_LIT(b, "team"), w_str(b, team);
    for (size_t f = 0; f < nf; ++f) {
        const redisReply *v = NULL;
        for (size_t i = 0; i + 1 < rec->elements; i += 2)
            if (rec->element[i]->type == REDIS_REPLY_STRING && strcmp(rec->element[i]->str, fields[f]) == 0)
                v = rec->element[i + 1];
        w_str(b, fields[f]);
        if (v == NULL || v->type != REDIS_REPLY_STRING || (v->len == 0 && strcmp(fields[f], "phone") == 0))
            cr_mpw_nil(b);
        else if (strcmp(fields[f], "created") == 0)
            cr_mpw_uint(b, strtoull(v->str, NULL, 10));
        else
            cr_mpw_str(b, v->str, v->len);
    }
}

static void respond_buf(relay_req_t *rr, int status, cr_buf_t *b)
{
    /* a write that failed (out of memory, over the buffer's cap) left the buffer unchanged, so the document lacks an
     * item its headers promise: it does not end where the buffer does */
    if (b->len == 0 || cr_mp_skip(b->base, b->base + b->len) != b->base + b->len)
        relay_respond_error(rr, 500, "no_memory", NULL, "the relay ran out of memory writing the answer");
    else
        relay_respond(rr, status, b->base, b->len);
    cr_buf_free(b);
}

/* ---- POST /v1/identities --------------------------------------------------------------------------------------- */

static void on_created(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    icall_t *c = data;
    relay_req_t *rr = c->rr;
    (void)rdb;
    if (reply == NULL) {
        relay_respond_unavailable(rr);
    } else if (reply_is(reply, "ok") && reply->elements == 2) {
        /* ARGV: 'create', team, name, id, email, pk, wsk, wvk, host, now, ... */
        cr_buf_t b;
        cr_buf_init(&b, 1u << 20);
        cr_mpw_map(&b, 10);
        CR_MPW_LIT(&b, "team"), w_str(&b, rr->who.team);
        CR_MPW_LIT(&b, "id"), w_str(&b, ARG(c, 3));
        CR_MPW_LIT(&b, "name"), w_str(&b, ARG(c, 2));
        CR_MPW_LIT(&b, "email"), w_str(&b, ARG(c, 4));
        CR_MPW_LIT(&b, "phone");
        if (reply->element[1]->len == 0)
            cr_mpw_nil(&b);
        else
            cr_mpw_str(&b, reply->element[1]->str, reply->element[1]->len);
        CR_MPW_LIT(&b, "pk"), w_str(&b, ARG(c, 5));
        CR_MPW_LIT(&b, "wsk"), w_str(&b, ARG(c, 6));
        CR_MPW_LIT(&b, "wvk"), w_str(&b, ARG(c, 7));
        CR_MPW_LIT(&b, "host"), w_str(&b, ARG(c, 8));
        CR_MPW_LIT(&b, "created"), cr_mpw_uint(&b, strtoull(c->argv[9], NULL, 10));
        cr_log(CR_LOG_INFO, "identity %s (%s) of team %s created by %s", ARG(c, 2), ARG(c, 3), rr->who.team, rr->who.id);
        respond_buf(rr, 201, &b);
    } else if (reply_is(reply, "exists")) {
        relay_respond_error(rr, 409, "conflict", "name", "the team already has an identity named %s", ARG(c, 2));
    } else if (reply_is(reply, "addr_taken")) {
        relay_respond_error(rr, 409, "conflict", "email", "the address %s is taken", ARG(c, 4));
    } else {
        unexpected(rr, reply, "create the identity");
    }
    icall_free(c);
}

static void on_create(relay_req_t *rr)
{
    relay_t *relay = rr->relay;
    cr_span_t name, email, id, pk, wsk, wvk;
    char addr[320], actor[200];
    const char *domain = relay_identity_mail_domain(relay);
    icall_t *c;

    if (body_str(rr, "name", &name) != 1 || !relay_identity_name_ok(name.base, name.len)) {
        relay_respond_error(rr, 400, "bad_name", "name",
                            "name is needed: 1 to 63 of a-z, 0-9 and '-', starting with a letter or digit");
        return;
    }
    if (body_str(rr, "id", &id) != 1 || id.len < 4 || id.len > 64 || !b64url_ok(id, 64)) {
        relay_respond_error(rr, 400, "bad_request", "id", "id is needed: 4 to 64 of A-Z, a-z, 0-9, '-' and '_'");
        return;
    }
    if (body_str(rr, "pk", &pk) != 1 || pk.len != 43 || !b64url_ok(pk, 43)) {
        relay_respond_error(rr, 400, "bad_request", "pk", "pk is needed: the X25519 public key, 32 bytes in base64url");
        return;
    }
    if (body_str(rr, "wsk", &wsk) != 1 || !b64url_ok(wsk, BLOB_MAX) || body_str(rr, "wvk", &wvk) != 1 ||
        !b64url_ok(wvk, BLOB_MAX)) {
        relay_respond_error(rr, 400, "bad_request", wsk.len == 0 ? "wsk" : "wvk",
                            "wsk and wvk are needed: the wrapped identity and vault keys, in base64url");
        return;
    }
    switch (body_str(rr, "email", &email)) {
    case -1:
        relay_respond_error(rr, 400, "bad_request", "email", "email must be a string");
        return;
    case 0:
        snprintf(addr, sizeof(addr), "%.*s@%s", (int)name.len, name.base, domain);
        break;
    default: {
        const char *at = memchr(email.base, '@', email.len);
        size_t local = at != NULL ? (size_t)(at - email.base) : email.len;
        char lower[64];
        if (local == 0 || local > 63) {
            relay_respond_error(rr, 400, "bad_request", "email", "email's local part must be 1 to 63 characters");
            return;
        }
        for (size_t i = 0; i < local; ++i)
            lower[i] = (char)(email.base[i] >= 'A' && email.base[i] <= 'Z' ? email.base[i] + 32 : email.base[i]);
        if (!relay_identity_name_ok(lower, local) && !(local > 0 && strspn(lower, "abcdefghijklmnopqrstuvwxyz0123456789.-_+") >= local)) {
            relay_respond_error(rr, 400, "bad_request", "email", "email's local part may hold a-z, 0-9, '.', '-', '_', '+'");
            return;
        }
        if (at != NULL && (email.len - local - 1 != strlen(domain) || strncasecmp(at + 1, domain, strlen(domain)) != 0)) {
            relay_respond_error(rr, 400, "bad_request", "email", "this relay receives mail for @%s only", domain);
            return;
        }
        snprintf(addr, sizeof(addr), "%.*s@%s", (int)local, lower, domain);
    }
    }
    if ((c = icall_new(rr)) == NULL) {
        relay_respond_error(rr, 500, "no_memory", NULL, "out of memory");
        return;
    }
    actor_of(rr, actor, sizeof(actor));
    c->nkeys = 5;
    if (icall_argf(c, "cr:{%s}:id:%.*s", rr->who.team, (int)name.len, name.base) | icall_argf(c, "cr:mail:%s", addr) |
        icall_argf(c, "cr:sms:pool") | icall_argf(c, "cr:{%s}:audit", rr->who.team) |
        icall_argf(c, "cr:{%s}:ids", rr->who.team) | icall_arg(c, "create", 6) |
        icall_arg(c, rr->who.team, strlen(rr->who.team)) | icall_arg(c, name.base, name.len) | icall_arg(c, id.base, id.len) |
        icall_arg(c, addr, strlen(addr)) | icall_arg(c, pk.base, pk.len) | icall_arg(c, wsk.base, wsk.len) |
        icall_arg(c, wvk.base, wvk.len) | icall_arg(c, rr->who.id, strlen(rr->who.id)) |
        icall_argf(c, "%" PRIu64, cr_now_ms()) | icall_arg(c, actor, strlen(actor)) |
        icall_argf(c, "%" PRId64, relay_identity_audit_maxlen(relay)))
        c->bad = 1; /* icall_send answers 500 */
    icall_send(c, on_created);
}

/* ---- GET /v1/identities, GET /v1/identities/{name} ------------------------------------------------------------- */

static void on_listed(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    icall_t *c = data;
    relay_req_t *rr = c->rr;
    (void)rdb;
    if (reply == NULL) {
        relay_respond_unavailable(rr);
    } else if (reply->type != REDIS_REPLY_ARRAY) {
        unexpected(rr, reply, "list the identities");
    } else if (c->name[0] != '\0') { /* one of them */
        redisReply *rec = NULL;
        for (size_t i = 0; i < reply->elements; ++i) {
            redisReply *r = reply->element[i];
            for (size_t j = 0; j + 1 < r->elements; j += 2)
                if (strcmp(r->element[j]->str, "name") == 0 && strcmp(r->element[j + 1]->str, c->name) == 0)
                    rec = r;
        }
        if (rec == NULL) {
            relay_respond_error(rr, 404, "not_found", "name", "no identity named %s", c->name);
        } else {
            cr_buf_t b;
            cr_buf_init(&b, 1u << 20);
            w_record(&b, rec, rr->who.team);
            respond_buf(rr, 200, &b);
        }
    } else {
        cr_buf_t b;
        cr_buf_init(&b, 64u << 20);
        cr_mpw_map(&b, 2);
        CR_MPW_LIT(&b, "team"), w_str(&b, rr->who.team);
        CR_MPW_LIT(&b, "identities");
        cr_mpw_array(&b, (uint32_t)reply->elements);
        for (size_t i = 0; i < reply->elements; ++i)
            w_record(&b, reply->element[i], rr->who.team);
        respond_buf(rr, 200, &b);
    }
    icall_free(c);
}

static void list_or_get(relay_req_t *rr, const char *name)
{
    icall_t *c = icall_new(rr);
    if (c == NULL) {
        relay_respond_error(rr, 500, "no_memory", NULL, "out of memory");
        return;
    }
    if (name != NULL)
        snprintf(c->name, sizeof(c->name), "%s", name);
    c->nkeys = 1;
    icall_argf(c, "cr:{%s}:ids", rr->who.team);
    icall_arg(c, "list", 4);
    icall_argf(c, "cr:{%s}:id:", rr->who.team);
    icall_send(c, on_listed);
}

static void on_list(relay_req_t *rr)
{
    list_or_get(rr, NULL);
}

static void on_get(relay_req_t *rr)
{
    char name[64];
    if (path_name(rr, 0, name) == 0)
        list_or_get(rr, name);
}

/* ---- the vault: /v1/identities/{name}/secrets[/{key}] ------------------------------------------------------------ */

/* Starts a vault step for the identity and key of the path: KEYS vault, id, audit; ARGV step. Returns NULL after
 * answering when the path is bad. */
static icall_t *vault_call(relay_req_t *rr, const char *step, int with_key)
{
    icall_t *c;
    char name[64];
    if (path_name(rr, 0, name) != 0)
        return NULL;
    if (with_key && !key_ok(rr->params[1].base, rr->params[1].len)) {
        relay_respond_error(rr, 400, "bad_name", "key",
                            "a secret's key is 1 to 128 of A-Z, a-z, 0-9, '_', '.' and '-', not starting with a digit");
        return NULL;
    }
    if ((c = icall_new(rr)) == NULL) {
        relay_respond_error(rr, 500, "no_memory", NULL, "out of memory");
        return NULL;
    }
    memcpy(c->name, name, sizeof(name));
    if (with_key)
        snprintf(c->key, sizeof(c->key), "%.*s", (int)rr->params[1].len, rr->params[1].base);
    c->nkeys = 3;
    icall_argf(c, "cr:{%s}:vault:%s", rr->who.team, name);
    icall_argf(c, "cr:{%s}:id:%s", rr->who.team, name);
    icall_argf(c, "cr:{%s}:audit", rr->who.team);
    icall_arg(c, step, strlen(step));
    return c;
}

/* The arguments every vault step ends its audit record with: now, the actor, the identity, the audit stream's length. */
static void audit_args(icall_t *c, relay_req_t *rr, const char *actor)
{
    icall_argf(c, "%" PRIu64, cr_now_ms());
    icall_arg(c, actor, strlen(actor));
    icall_arg(c, c->name, strlen(c->name));
    icall_argf(c, "%" PRId64, relay_identity_audit_maxlen(rr->relay));
}

static void no_identity(relay_req_t *rr, const char *name)
{
    relay_respond_error(rr, 404, "not_found", "name", "no identity named %s", name);
}

static void on_vput_reply(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    icall_t *c = data;
    relay_req_t *rr = c->rr;
    (void)rdb;
    if (reply == NULL) {
        relay_respond_unavailable(rr);
    } else if (reply_is(reply, "ok") && reply->elements == 2) {
        cr_buf_t b;
        cr_buf_init(&b, 4096);
        cr_mpw_map(&b, 2);
        CR_MPW_LIT(&b, "key"), w_str(&b, c->key);
        CR_MPW_LIT(&b, "version"), cr_mpw_uint(&b, (uint64_t)reply->element[1]->integer);
        cr_log(CR_LOG_INFO, "identity %s of team %s: secret %s version %lld written", c->name, rr->who.team, c->key,
               reply->element[1]->integer);
        respond_buf(rr, 201, &b);
    } else if (reply_is(reply, "noid")) {
        no_identity(rr, c->name);
    } else if (reply_is(reply, "conflict") && reply->elements == 2) {
        relay_respond_error(rr, 409, "conflict", "version", "secret %s is at version %lld; write version %lld", c->key,
                            reply->element[1]->integer, reply->element[1]->integer + 1);
    } else {
        unexpected(rr, reply, "store the secret");
    }
    icall_free(c);
}

/* PUT {version, c: sealed value (base64url), inject?} — the host seals with the identity's vault key; the version is
 * part of what it sealed, so it must be the next one. */
static void on_vput(relay_req_t *rr)
{
    cr_span_t blob, v;
    cr_mp_item_t it;
    uint64_t version = 0;
    int inject = 0;
    char actor[200];
    icall_t *c;
    if (rr->body.len != 0 && cr_mp_map_get(rr->body.base, rr->body.len, "version", &v) == 0 &&
        cr_mp_read(v.base, v.base + v.len, &it) != 0 && it.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
        version = it.u;
    if (version == 0 || version > (1ull << 40)) {
        relay_respond_error(rr, 400, "bad_request", "version", "version is needed: the version sealed, current + 1");
        return;
    }
    if (body_str(rr, "c", &blob) != 1 || !b64url_ok(blob, BLOB_MAX)) {
        relay_respond_error(rr, 400, "bad_request", "c", "c is needed: the sealed value in base64url, at most %u bytes",
                            BLOB_MAX);
        return;
    }
    if (rr->body.len != 0 && cr_mp_map_get(rr->body.base, rr->body.len, "inject", &v) == 0 &&
        cr_mp_read(v.base, v.base + v.len, &it) != 0 && it.type == MSGPACK_OBJECT_BOOLEAN)
        inject = it.u != 0;
    if ((c = vault_call(rr, "vput", 1)) == NULL)
        return;
    actor_of(rr, actor, sizeof(actor));
    icall_arg(c, c->key, strlen(c->key));
    icall_argf(c, "%" PRIu64, version);
    icall_arg(c, blob.base, blob.len);
    icall_arg(c, inject ? "1" : "0", 1);
    audit_args(c, rr, actor);
    icall_argf(c, "%d", RELAY_VAULT_VERSIONS);
    icall_send(c, on_vput_reply);
}

static void on_vget_reply(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    icall_t *c = data;
    relay_req_t *rr = c->rr;
    (void)rdb;
    if (reply == NULL) {
        relay_respond_unavailable(rr);
    } else if (reply_is(reply, "ok") && reply->elements == 3 && reply->element[2]->type == REDIS_REPLY_STRING) {
        cr_buf_t b;
        cr_buf_init(&b, BLOB_MAX + 4096);
        cr_mpw_map(&b, 3);
        CR_MPW_LIT(&b, "key"), w_str(&b, c->key);
        CR_MPW_LIT(&b, "version");
        cr_mpw_uint(&b, reply->element[1]->type == REDIS_REPLY_STRING ? strtoull(reply->element[1]->str, NULL, 10)
                                                                        : (uint64_t)reply->element[1]->integer);
        CR_MPW_LIT(&b, "c"), cr_mpw_str(&b, reply->element[2]->str, reply->element[2]->len);
        respond_buf(rr, 200, &b);
    } else if (reply_is(reply, "noid")) {
        no_identity(rr, c->name);
    } else if (reply_is(reply, "nokey")) {
        relay_respond_error(rr, 404, "not_found", "key", "identity %s has no secret %s", c->name, c->key);
    } else if (reply_is(reply, "noversion")) {
        relay_respond_error(rr, 404, "not_found", "version", "secret %s has no version %" PRIu64 " (the last %d are kept)",
                            c->key, c->u, RELAY_VAULT_VERSIONS);
    } else {
        unexpected(rr, reply, "read the secret");
    }
    icall_free(c);
}

static void on_vget(relay_req_t *rr)
{
    const char *ver = relay_query(rr, "version");
    char actor[200], *end = NULL;
    icall_t *c;
    uint64_t v = 0;
    if (ver != NULL && ((v = strtoull(ver, &end, 10)) == 0 || *end != '\0')) {
        relay_respond_error(rr, 400, "bad_request", "version", "version must be a positive integer");
        return;
    }
    if ((c = vault_call(rr, "vget", 1)) == NULL)
        return;
    c->u = v;
    actor_of(rr, actor, sizeof(actor));
    icall_arg(c, c->key, strlen(c->key));
    if (v != 0)
        icall_argf(c, "%" PRIu64, v);
    else
        icall_arg(c, "", 0);
    audit_args(c, rr, actor);
    icall_send(c, on_vget_reply);
}

static void on_vdel_reply(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    icall_t *c = data;
    relay_req_t *rr = c->rr;
    (void)rdb;
    if (reply == NULL) {
        relay_respond_unavailable(rr);
    } else if (reply_is(reply, "ok")) {
        cr_buf_t b;
        cr_buf_init(&b, 4096);
        cr_mpw_map(&b, 2);
        CR_MPW_LIT(&b, "key"), w_str(&b, c->key);
        CR_MPW_LIT(&b, "deleted"), cr_mpw_bool(&b, 1);
        cr_log(CR_LOG_INFO, "identity %s of team %s: secret %s deleted", c->name, rr->who.team, c->key);
        respond_buf(rr, 200, &b);
    } else if (reply_is(reply, "noid")) {
        no_identity(rr, c->name);
    } else if (reply_is(reply, "nokey")) {
        relay_respond_error(rr, 404, "not_found", "key", "identity %s has no secret %s", c->name, c->key);
    } else {
        unexpected(rr, reply, "delete the secret");
    }
    icall_free(c);
}

static void on_vdel(relay_req_t *rr)
{
    char actor[200];
    icall_t *c = vault_call(rr, "vdel", 1);
    if (c == NULL)
        return;
    actor_of(rr, actor, sizeof(actor));
    icall_arg(c, c->key, strlen(c->key));
    audit_args(c, rr, actor);
    icall_send(c, on_vdel_reply);
}

static void on_vlist_reply(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    icall_t *c = data;
    relay_req_t *rr = c->rr;
    (void)rdb;
    if (reply == NULL) {
        relay_respond_unavailable(rr);
    } else if (reply_is(reply, "ok") && reply->elements == 2 && reply->element[1]->type == REDIS_REPLY_ARRAY) {
        redisReply *l = reply->element[1];
        cr_buf_t b;
        cr_buf_init(&b, 16u << 20);
        cr_mpw_map(&b, 1);
        CR_MPW_LIT(&b, "secrets");
        cr_mpw_array(&b, (uint32_t)l->elements);
        for (size_t i = 0; i < l->elements; ++i) {
            redisReply *e = l->element[i];
            const char *meta = e->elements == 3 ? e->element[2]->str : "";
            const char *colon = strchr(meta, ':');
            cr_mpw_map(&b, 4);
            CR_MPW_LIT(&b, "key"), cr_mpw_str(&b, e->element[0]->str, e->element[0]->len);
            CR_MPW_LIT(&b, "version"), cr_mpw_uint(&b, strtoull(e->element[1]->str, NULL, 10));
            CR_MPW_LIT(&b, "updated"), cr_mpw_uint(&b, strtoull(meta, NULL, 10));
            CR_MPW_LIT(&b, "inject"), cr_mpw_bool(&b, colon != NULL && colon[1] == '1');
        }
        respond_buf(rr, 200, &b);
    } else if (reply_is(reply, "noid")) {
        no_identity(rr, c->name);
    } else {
        unexpected(rr, reply, "list the secrets");
    }
    icall_free(c);
}

static void on_vlist(relay_req_t *rr)
{
    icall_t *c = vault_call(rr, "vlist", 0);
    if (c != NULL)
        icall_send(c, on_vlist_reply);
}

/* ---- GET /v1/identities/{name}/inbox?after=ID&limit=N: the sealed messages, oldest first ---------------------- */

static void on_inbox_range(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    icall_t *c = data;
    relay_req_t *rr = c->rr;
    (void)rdb;
    if (reply == NULL) {
        relay_respond_unavailable(rr);
    } else if (reply->type != REDIS_REPLY_ARRAY) {
        unexpected(rr, reply, "read the inbox");
    } else {
        cr_buf_t b;
        size_t n = 0, bytes = 0;
        char next[STREAM_ID_MAX] = "";
        for (; n < reply->elements && (n == 0 || bytes < INBOX_PAGE_BYTES); ++n) {
            redisReply *f = reply->element[n]->element[1];
            for (size_t j = 0; j + 1 < f->elements; j += 2)
                bytes += f->element[j + 1]->len;
        }
        cr_buf_init(&b, (size_t)bytes * 2 + (1u << 20));
        cr_mpw_map(&b, 2);
        CR_MPW_LIT(&b, "messages");
        cr_mpw_array(&b, (uint32_t)n);
        for (size_t i = 0; i < n; ++i) {
            redisReply *e = reply->element[i], *f = e->element[1];
            const redisReply *k = NULL, *blob = NULL, *t = NULL;
            for (size_t j = 0; j + 1 < f->elements; j += 2) {
                const char *fn = f->element[j]->str;
                if (strcmp(fn, "k") == 0)
                    k = f->element[j + 1];
                else if (strcmp(fn, "b") == 0)
                    blob = f->element[j + 1];
                else if (strcmp(fn, "t") == 0)
                    t = f->element[j + 1];
            }
            cr_mpw_map(&b, 4);
            CR_MPW_LIT(&b, "id"), cr_mpw_str(&b, e->element[0]->str, e->element[0]->len);
            CR_MPW_LIT(&b, "k"), k != NULL ? cr_mpw_str(&b, k->str, k->len) : CR_MPW_LIT(&b, "mail");
            CR_MPW_LIT(&b, "t"), cr_mpw_uint(&b, t != NULL ? strtoull(t->str, NULL, 10) : 0);
            CR_MPW_LIT(&b, "b");
            if (blob == NULL) {
                cr_mpw_str(&b, "", 0);
            } else {
                char *enc = malloc(cr_base64url_encoded_len(blob->len) + 1);
                if (enc == NULL) {
                    cr_mpw_nil(&b);
                } else {
                    cr_mpw_str(&b, enc, cr_base64url_encode(enc, blob->str, blob->len));
                    free(enc);
                }
            }
            snprintf(next, sizeof(next), "%s", e->element[0]->str);
        }
        CR_MPW_LIT(&b, "next");
        if (next[0] != '\0')
            w_str(&b, next);
        else
            cr_mpw_nil(&b);
        respond_buf(rr, 200, &b);
    }
    icall_free(c);
}

static void on_inbox_exists(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    icall_t *c = data;
    relay_req_t *rr = c->rr;
    char key[200], start[STREAM_ID_MAX + 1], count[16];
    const char *after = relay_query(rr, "after");
    if (reply == NULL) {
        relay_respond_unavailable(rr);
        icall_free(c);
        return;
    }
    if (reply->type != REDIS_REPLY_INTEGER || reply->integer == 0) {
        no_identity(rr, c->name);
        icall_free(c);
        return;
    }
    snprintf(key, sizeof(key), "cr:{%s}:inbox:%s", rr->who.team, c->name);
    if (after != NULL && after[0] != '\0')
        snprintf(start, sizeof(start), "(%s", after);
    else
        snprintf(start, sizeof(start), "-");
    snprintf(count, sizeof(count), "%" PRIu64, c->u);
    if (relay_rdb_commandf(rdb, on_inbox_range, c, "XRANGE %s %s + COUNT %s", key, start, count) != 0) {
        relay_respond_unavailable(rr);
        icall_free(c);
    }
}

static void on_inbox(relay_req_t *rr)
{
    char name[64], key[200], *end = NULL;
    const char *after = relay_query(rr, "after"), *limit = relay_query(rr, "limit");
    uint64_t n = INBOX_PAGE_DEFAULT;
    uint64_t ms, seq;
    icall_t *c;
    if (path_name(rr, 0, name) != 0)
        return;
    if (after != NULL && after[0] != '\0' && relay_stream_id_parse(after, strlen(after), &ms, &seq) != 0) {
        relay_respond_error(rr, 400, "bad_request", "after", "after must be a message id (ms-seq)");
        return;
    }
    if (limit != NULL && ((n = strtoull(limit, &end, 10)) == 0 || *end != '\0' || n > INBOX_PAGE_MAX)) {
        relay_respond_error(rr, 400, "bad_request", "limit", "limit must be 1 to %d", INBOX_PAGE_MAX);
        return;
    }
    if ((c = icall_new(rr)) == NULL) {
        relay_respond_error(rr, 500, "no_memory", NULL, "out of memory");
        return;
    }
    memcpy(c->name, name, sizeof(name));
    c->u = n;
    snprintf(key, sizeof(key), "cr:{%s}:id:%s", rr->who.team, name);
    if (relay_rdb_commandf(&rr->relay->rdb, on_inbox_exists, c, "EXISTS %s", key) != 0) {
        relay_respond_unavailable(rr);
        icall_free(c);
    }
}

/* ---- the audit trail: POST /v1/audit (hosts add what happened on their side), GET /v1/audit (the team's admin) ---- */

static int audit_word_ok(const char *s, size_t n, size_t max)
{
    if (n > max)
        return 0;
    for (size_t i = 0; i < n; ++i)
        if ((unsigned char)s[i] <= 0x20 || (unsigned char)s[i] >= 0x7f)
            return 0;
    return 1;
}

/* A POST /v1/audit between its call and Redis' answer: the arguments live here (a NOSCRIPT retry sends them again). */
typedef struct st_audit_call_t {
    relay_req_t *rr;
    const char **argv;
    size_t *lens;
    char (*store)[300];
    char key[160], maxlen[24];
} audit_call_t;

static void audit_call_free(audit_call_t *c)
{
    free(c->argv);
    free(c->lens);
    free(c->store);
    free(c);
}

static void on_audit_added(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    audit_call_t *c = data;
    relay_req_t *rr = c->rr;
    (void)rdb;
    if (reply == NULL) {
        relay_respond_unavailable(rr);
    } else if (reply->type != REDIS_REPLY_INTEGER) {
        unexpected(rr, reply, "write the audit records");
    } else {
        cr_buf_t b;
        cr_buf_init(&b, 256);
        cr_mpw_map(&b, 1);
        CR_MPW_LIT(&b, "written"), cr_mpw_uint(&b, (uint64_t)reply->integer);
        respond_buf(rr, 201, &b);
    }
    audit_call_free(c);
}

/* {records: [{t?, actor?, idn, op, key?, outcome}]}: each field is a short printable word (a value is never sent: a
 * record that must show which value was used carries a keyed hash of it in key). */
static void on_audit_post(relay_req_t *rr)
{
    static const char *const fields[] = {"t", "actor", "idn", "op", "key", "outcome"};
    cr_span_t list, v;
    cr_mp_item_t it;
    const char *p, *end;
    char actor_base[200], tmp[300];
    audit_call_t *c = NULL;
    size_t n;
    if (rr->body.len == 0 || cr_mp_map_get(rr->body.base, rr->body.len, "records", &list) != 0 ||
        cr_mp_read(list.base, list.base + list.len, &it) == 0 || it.type != MSGPACK_OBJECT_ARRAY || it.count == 0 ||
        it.count > AUDIT_BATCH_MAX) {
        relay_respond_error(rr, 400, "bad_request", "records", "records is needed: an array of 1 to %d records",
                            AUDIT_BATCH_MAX);
        return;
    }
    n = (size_t)it.count;
    actor_of(rr, actor_base, sizeof(actor_base));
    if ((c = calloc(1, sizeof(*c))) == NULL || (c->argv = calloc(3 + 6 * n, sizeof(*c->argv))) == NULL ||
        (c->lens = calloc(3 + 6 * n, sizeof(*c->lens))) == NULL || (c->store = calloc(6 * n, sizeof(*c->store))) == NULL) {
        relay_respond_error(rr, 500, "no_memory", NULL, "out of memory");
        goto fail;
    }
    c->rr = rr;
    snprintf(c->key, sizeof(c->key), "cr:{%s}:audit", rr->who.team);
    snprintf(c->maxlen, sizeof(c->maxlen), "%" PRId64, relay_identity_audit_maxlen(rr->relay));
    c->argv[0] = c->key, c->argv[1] = "audit", c->argv[2] = c->maxlen;
    p = list.base + cr_mp_read(list.base, list.base + list.len, &it);
    end = list.base + list.len;
    for (size_t r = 0; r < n; ++r) {
        const char *rec = p, *next = cr_mp_skip(p, end);
        if (next == NULL || cr_mp_read(p, end, &it) == 0 || it.type != MSGPACK_OBJECT_MAP) {
            relay_respond_error(rr, 400, "bad_request", "records", "record %zu is not an object", r);
            goto fail;
        }
        for (size_t f = 0; f < 6; ++f) {
            char *out = c->store[r * 6 + f];
            cr_span_t s = {NULL, 0};
            if (cr_mp_map_get(rec, (size_t)(next - rec), fields[f], &v) == 0 && cr_mp_read(v.base, v.base + v.len, &it) != 0) {
                if (it.type == MSGPACK_OBJECT_STR)
                    s = it.bytes;
                else if (it.type == MSGPACK_OBJECT_POSITIVE_INTEGER && f == 0)
                    snprintf(tmp, sizeof(tmp), "%" PRIu64, it.u), s.base = tmp, s.len = strlen(tmp);
            }
            if (f == 0 && s.len == 0)
                snprintf(tmp, sizeof(tmp), "%" PRIu64, cr_now_ms()), s.base = tmp, s.len = strlen(tmp);
            if (!audit_word_ok(s.base, s.len, f == 4 ? 128 : 80) || ((f == 2 || f == 3 || f == 5) && s.len == 0)) {
                relay_respond_error(rr, 400, "bad_request", fields[f],
                                    "record %zu: %s must be a printable word without spaces%s", r, fields[f],
                                    f == 2 || f == 3 || f == 5 ? " (needed)" : "");
                goto fail;
            }
            if (f == 1)
                snprintf(out, 300, "%s%s%.*s", actor_base, s.len != 0 ? "/" : "", (int)s.len, s.base);
            else
                snprintf(out, 300, "%.*s", (int)s.len, s.base);
            c->argv[3 + r * 6 + f] = out;
            c->lens[3 + r * 6 + f] = strlen(out);
        }
        p = next;
    }
    for (size_t i = 0; i < 3; ++i)
        c->lens[i] = strlen(c->argv[i]);
    if (relay_rdb_script(&rr->relay->rdb, &relay_identity_script, on_audit_added, c, 1, (int)(3 + 6 * n), c->argv,
                         c->lens) == 0)
        return;
    relay_respond_unavailable(rr);
fail:
    if (c != NULL)
        audit_call_free(c);
}

static void on_audit_range(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    relay_req_t *rr = data;
    static const char *const names[][2] = {{"t", "t"}, {"a", "actor"}, {"i", "idn"}, {"o", "op"}, {"k", "key"}, {"r", "outcome"}};
    (void)rdb;
    if (reply == NULL) {
        relay_respond_unavailable(rr);
    } else if (reply->type != REDIS_REPLY_ARRAY) {
        unexpected(rr, reply, "read the audit trail");
    } else {
        cr_buf_t b;
        cr_buf_init(&b, 64u << 20);
        cr_mpw_map(&b, 2);
        CR_MPW_LIT(&b, "records");
        cr_mpw_array(&b, (uint32_t)reply->elements);
        for (size_t i = 0; i < reply->elements; ++i) {
            redisReply *e = reply->element[i], *f = e->element[1];
            cr_mpw_map(&b, 7);
            CR_MPW_LIT(&b, "id"), cr_mpw_str(&b, e->element[0]->str, e->element[0]->len);
            for (size_t k = 0; k < 6; ++k) {
                const redisReply *v = NULL;
                for (size_t j = 0; j + 1 < f->elements; j += 2)
                    if (strcmp(f->element[j]->str, names[k][0]) == 0)
                        v = f->element[j + 1];
                w_str(&b, names[k][1]);
                if (k == 0)
                    cr_mpw_uint(&b, v != NULL ? strtoull(v->str, NULL, 10) : 0);
                else if (v != NULL)
                    cr_mpw_str(&b, v->str, v->len);
                else
                    cr_mpw_str(&b, "", 0);
            }
        }
        CR_MPW_LIT(&b, "next");
        if (reply->elements != 0)
            cr_mpw_str(&b, reply->element[reply->elements - 1]->element[0]->str,
                       reply->element[reply->elements - 1]->element[0]->len);
        else
            cr_mpw_nil(&b);
        respond_buf(rr, 200, &b);
    }
}

static void on_audit_get(relay_req_t *rr)
{
    const char *after = relay_query(rr, "after"), *limit = relay_query(rr, "limit");
    char key[160], start[STREAM_ID_MAX + 1], *end = NULL;
    uint64_t n = 100, ms, seq;
    if (after != NULL && after[0] != '\0' && relay_stream_id_parse(after, strlen(after), &ms, &seq) != 0) {
        relay_respond_error(rr, 400, "bad_request", "after", "after must be a record id (ms-seq)");
        return;
    }
    if (limit != NULL && ((n = strtoull(limit, &end, 10)) == 0 || *end != '\0' || n > AUDIT_PAGE_MAX)) {
        relay_respond_error(rr, 400, "bad_request", "limit", "limit must be 1 to %d", AUDIT_PAGE_MAX);
        return;
    }
    snprintf(key, sizeof(key), "cr:{%s}:audit", rr->who.team);
    snprintf(start, sizeof(start), after != NULL && after[0] != '\0' ? "(%s" : "-", after);
    if (relay_rdb_commandf(&rr->relay->rdb, on_audit_range, rr, "XRANGE %s %s + COUNT %" PRIu64, key, start, n) != 0)
        relay_respond_unavailable(rr);
}

/* ---- configuration and registration ------------------------------------------------------------------------- */

const char *relay_identity_mail_domain(relay_t *relay)
{
    const char *d = cr_config_str(relay->conf, "mail.domain");
    return d != NULL && d[0] != '\0' ? d : "corral.localhost";
}

int64_t relay_identity_audit_maxlen(relay_t *relay)
{
    return cr_config_int(relay->conf, "audit.maxlen");
}

void relay_identity_register(relay_t *relay)
{
    relay_identity_script.src = relay_lua_identity;
    relay_identity_script.len = relay_lua_identity_len;
    relay_rdb_add_script(&relay->rdb, &relay_identity_script);
    const unsigned who = RELAY_P_HOST | RELAY_P_ADMIN;
    relay_route(relay, "POST", "/v1/identities", who, on_create, "identity_create");
    relay_route(relay, "GET", "/v1/identities", who, on_list, "identity_list");
    relay_route(relay, "GET", "/v1/identities/{}", who, on_get, "identity_get");
    relay_route(relay, "GET", "/v1/identities/{}/secrets", who, on_vlist, "secret_list");
    relay_route(relay, "PUT", "/v1/identities/{}/secrets/{}", who, on_vput, "secret_put");
    relay_route(relay, "GET", "/v1/identities/{}/secrets/{}", who, on_vget, "secret_get");
    relay_route(relay, "DELETE", "/v1/identities/{}/secrets/{}", who, on_vdel, "secret_delete");
    relay_route(relay, "GET", "/v1/identities/{}/inbox", who, on_inbox, "inbox_read");
    relay_route(relay, "POST", "/v1/audit", RELAY_P_HOST, on_audit_post, "audit_add");
    relay_route(relay, "GET", "/v1/audit", RELAY_P_ADMIN, on_audit_get, "audit_list");
}
