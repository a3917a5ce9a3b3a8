/* pair.c — pairing and devices: POST /v1/host/pair makes a one-time code, POST /v1/pair/claim turns it into a device
 * token, POST /v1/devices and DELETE /v1/devices/{id} keep a device's push registration (cr:{T}:dev). */
#include "auth.h"
#include "corral/codec.h"
#include "corral/error.h"
#include "corral/log.h"
#include "corral/mp.h"
#include "corral/ulid.h"
#include <msgpack.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

extern const char relay_lua_claim[];
extern const size_t relay_lua_claim_len;
static relay_script_t claim_script = {.name = "claim"};
extern const char relay_lua_devices[];
extern const size_t relay_lua_devices_len;
static relay_script_t devices_script = {.name = "devices"};

#define PAIR_TTL_S 600             /* a pairing code lives 10 minutes (DESIGN.md §4) */
#define CODE_LEN 10                /* Crockford base32 characters: 50 bits */
#define NAME_MAX_BYTES 128         /* a device's name; also its token's label (relay_principal_t.label) */
#define BODY_MAX (64 * 1024)       /* the largest claim or device body */
#define FCM_TOKEN_MAX 4096
#define APNS_TOKEN_MIN 64          /* hex digits: 32 bytes today; Apple says the length may grow */
#define APNS_TOKEN_MAX 200
#define ENDPOINT_MAX 2048
#define FILTER_IDS_MAX 128         /* ids in filters.hosts and filters.identities */
#define FILTER_MUTED_MAX 512       /* sids in filters.muted */
#define MIN_PRI_DEFAULT 2          /* only what needs a human is pushed unless the device asks for more */

/* Failed claims are limited in this relay's memory: there is no token to charge yet. A code is 10 characters of
 * Crockford base32 from libsodium's generator: 50 bits, 2^50 ≈ 1.1e15 codes. Each relay answers at most
 * CLAIM_FAIL_RATE failed claims per second (a bucket of CLAIM_FAIL_BURST, charged when a claim starts and refunded
 * when it succeeds); beyond that every claim gets 429 until it refills. A guesser at full speed makes 6,000 guesses in one code's 10 minutes: a 6000 / 2^50 ≈ 5e-12 chance to hit
 * that code. Even with 1,000 codes live at every moment of a whole year (3.2e8 guesses per relay) the chance of one
 * hit is 3.2e8 * 1000 / 2^50 ≈ 3e-4 per relay; real teams have a code live a few minutes a month. Codes are single
 * use, and die with the host token that made them. */
#define CLAIM_FAIL_RATE 10.0
#define CLAIM_FAIL_BURST 10.0

static const char code_alphabet[] = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"; /* Crockford: no I, L, O, U */

/* ---- small helpers -------------------------------------------------------------------------------------------- */

/* A validation failure: the field it is about and what is wrong, answered as 400 bad_request. */
typedef struct st_verr_t {
    char field[96];
    char msg[200];
} verr_t;

static int bad(verr_t *e, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int bad(verr_t *e, const char *field, const char *fmt, ...)
{
    va_list ap;
    snprintf(e->field, sizeof(e->field), "%s", field);
    va_start(ap, fmt);
    vsnprintf(e->msg, sizeof(e->msg), fmt, ap);
    va_end(ap);
    return -1;
}

static void pk_lit(msgpack_packer *pk, const char *s)
{
    msgpack_pack_str_with_body(pk, s, strlen(s));
}

static void pk_span(msgpack_packer *pk, cr_span_t s)
{
    msgpack_pack_str_with_body(pk, s.base, s.len);
}

/* Checks that rr->body holds exactly one msgpack map of at most BODY_MAX bytes. Returns 0, or answers the error
 * (400 / 413) and returns -1. */
static int body_map(relay_req_t *rr)
{
    size_t used;
    cr_mp_item_t it;
    if (rr->body.len == 0) {
        relay_respond_error(rr, 400, "bad_request", NULL, "a JSON or msgpack object is needed as the body");
        return -1;
    }
    if (rr->body.len > BODY_MAX) {
        relay_respond_error(rr, 413, "too_large", NULL, "the body is over %d bytes", BODY_MAX);
        return -1;
    }
    if (cr_mp_check(rr->body.base, rr->body.len, &rr->relay->limits, BODY_MAX, NULL, &used) != 0) {
        relay_respond_cr_error(rr);
        return -1;
    }
    if (used != rr->body.len) {
        relay_respond_error(rr, 400, "trailing_bytes", NULL, "bytes follow the body's object");
        return -1;
    }
    if (cr_mp_read(rr->body.base, rr->body.base + rr->body.len, &it) == 0 || it.type != MSGPACK_OBJECT_MAP) {
        relay_respond_error(rr, 400, "bad_request", NULL, "the body must be an object");
        return -1;
    }
    return 0;
}

/* Looks up key in the checked map mp[0..len). Returns 1 and fills *it (and *raw with the value's bytes) when present
 * and not nil, else 0 (a nil is the same as absent). */
static int field(const char *mp, size_t len, const char *key, cr_mp_item_t *it, cr_span_t *raw)
{
    cr_span_t v;
    if (cr_mp_map_get(mp, len, key, &v) != 0 || cr_mp_read(v.base, v.base + v.len, it) == 0 || it->type == MSGPACK_OBJECT_NIL)
        return 0;
    if (raw != NULL)
        *raw = v;
    return 1;
}

/* Reads an optional string field: 0 absent, 1 present (span in *out), -1 wrong type (e filled). */
static int str_field(const char *mp, size_t len, const char *key, const char *path, cr_span_t *out, verr_t *e)
{
    cr_mp_item_t it;
    if (!field(mp, len, key, &it, NULL))
        return 0;
    if (it.type != MSGPACK_OBJECT_STR)
        return bad(e, path, "%s must be a string", path);
    *out = it.bytes;
    return 1;
}

/* A device name: 1..NAME_MAX_BYTES bytes of UTF-8 (checked by cr_mp_check) without control characters. */
static int name_check(cr_span_t s, const char *path, verr_t *e)
{
    if (s.len == 0 || s.len > NAME_MAX_BYTES)
        return bad(e, path, "%s must be 1 to %d bytes", path, NAME_MAX_BYTES);
    for (size_t i = 0; i < s.len; ++i)
        if ((unsigned char)s.base[i] < 0x20 || s.base[i] == 0x7f)
            return bad(e, path, "%s must not contain control characters", path);
    return 0;
}

/* Printable ASCII without spaces (what an FCM token or a URL may hold). */
static int visible_ascii(cr_span_t s)
{
    for (size_t i = 0; i < s.len; ++i)
        if ((unsigned char)s.base[i] <= 0x20 || (unsigned char)s.base[i] >= 0x7f)
            return 0;
    return 1;
}

/* Sends 204 No Content (no body) and frees rr. */
static void respond_no_content(relay_req_t *rr)
{
    h2o_req_t *req = rr->req;
    relay_req_release(rr);
    if (req == NULL)
        return;
    req->res.status = 204;
    req->res.reason = "No Content";
    h2o_send_inline(req, "", 0);
}

/* ---- POST /v1/host/pair --------------------------------------------------------------------------------------- */

typedef struct st_pair_call_t {
    relay_req_t *rr;
    int tries;
    uint64_t created;
    char code[CODE_LEN + 1];
    char url[320]; /* where phones reach this relay ("" when unknown) */
} pair_call_t;

static void pair_try(pair_call_t *c);

static void pair_free(pair_call_t *c)
{
    sodium_memzero(c->code, sizeof(c->code));
    free(c);
}

static void on_pair_set(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    pair_call_t *c = data;
    relay_req_t *rr = c->rr;
    const char *url = c->url;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    if (reply == NULL) {
        relay_respond_unavailable(rr);
        goto done;
    }
    if (reply->type == REDIS_REPLY_NIL && c->tries < 3) { /* the code exists already (odds 2^-50): draw another */
        pair_try(c);
        return;
    }
    if (reply->type != REDIS_REPLY_STATUS) {
        cr_log(CR_LOG_ERROR, "pair: SET of a pairing code answered type %d (%s)", reply->type,
               reply->type == REDIS_REPLY_ERROR ? reply->str : "-");
        relay_respond_error(rr, 500, "internal", NULL, "the relay could not store the pairing code");
        goto done;
    }
    cr_log(CR_LOG_INFO, "pair: %s %s of team %s made a pairing code", relay_principal_kind_name(rr->who.kind), rr->who.id,
           rr->who.team);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, url[0] != '\0' ? 4 : 3);
    pk_lit(&pk, "code");
    pk_lit(&pk, c->code);
    pk_lit(&pk, "team"); /* the host seals bodies with K and its team's name (PROTOCOL.md "Sealing") */
    pk_lit(&pk, rr->who.team);
    pk_lit(&pk, "expires");
    msgpack_pack_uint64(&pk, c->created + PAIR_TTL_S * 1000ull);
    if (url[0] != '\0') {
        pk_lit(&pk, "url");
        pk_lit(&pk, url);
    }
    relay_respond(rr, 200, sb.data, sb.size);
    sodium_memzero(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
done:
    pair_free(c);
    (void)rdb;
}

/* Draws a code and stores it with SET NX EX (one command: a code never lives without its TTL). */
static void pair_try(pair_call_t *c)
{
    relay_req_t *rr = c->rr;
    char value[256];
    ++c->tries;
    for (size_t i = 0; i < CODE_LEN; ++i)
        c->code[i] = code_alphabet[randombytes_uniform(32)];
    c->code[CODE_LEN] = '\0';
    c->created = cr_now_ms();
    /* team and id are ids ([A-Za-z0-9._-], checked by on_pair) and the hash is hex: nothing to escape */
    snprintf(value, sizeof(value), "{\"team\":\"%s\",\"host\":\"%s\",\"by\":\"%s\",\"created\":%llu}", rr->who.team,
             rr->who.id, rr->who.token_hash, (unsigned long long)c->created);
    if (relay_rdb_commandf(&rr->relay->rdb, on_pair_set, c, "SET cr:pair:%s %s NX EX %d", c->code, value, PAIR_TTL_S) != 0) {
        relay_respond_unavailable(rr);
        pair_free(c);
    }
}

/* The relay's URL for phones: http.public_url, else the scheme and authority the host reached us by (a Host header
 * of host name, IP literal and port characters only; anything else gives ""). */
static void pair_url(char *out, size_t outlen, relay_req_t *rr)
{
    const char *conf = cr_config_str(rr->relay->conf, "http.public_url");
    h2o_iovec_t a;
    out[0] = '\0';
    if (conf[0] != '\0') {
        snprintf(out, outlen, "%s", conf);
        return;
    }
    if (rr->req == NULL || (a = rr->req->input.authority).len == 0 || a.len > 255)
        return;
    for (size_t i = 0; i < a.len; ++i) {
        char ch = a.base[i];
        int fine = (ch >= 'a' && ch <= 'z') || (ch >= 'A' && ch <= 'Z') || (ch >= '0' && ch <= '9');
        if (!fine && (ch == '\0' || strchr(".-:[]", ch) == NULL))
            return;
    }
    snprintf(out, outlen, "%s://%.*s", rr->req->input.scheme == &H2O_URL_SCHEME_HTTPS ? "https" : "http", (int)a.len, a.base);
}

static void on_pair(relay_req_t *rr)
{
    pair_call_t *c;
    if (!cr_id_valid(rr->who.team, strlen(rr->who.team)) || !cr_id_valid(rr->who.id, strlen(rr->who.id))) {
        cr_log(CR_LOG_ERROR, "pair: token %.12s... has a malformed team or id", rr->who.token_hash);
        relay_respond_error(rr, 500, "internal", NULL, "this token's record is malformed");
        return;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        relay_respond_error(rr, 500, "internal", NULL, "out of memory");
        return;
    }
    c->rr = rr;
    pair_url(c->url, sizeof(c->url), rr);
    pair_try(c);
}

/* ---- POST /v1/pair/claim -------------------------------------------------------------------------------------- */

static double claim_bucket = CLAIM_FAIL_BURST;
static uint64_t claim_bucket_ms;

/* Refills the failed-claims bucket; returns the ms until a claim may be tried, 0 when one may now. */
static uint64_t claim_wait(relay_t *relay)
{
    uint64_t now = uv_now(relay->loop);
    claim_bucket += (double)(now - claim_bucket_ms) * CLAIM_FAIL_RATE / 1000.0;
    if (claim_bucket > CLAIM_FAIL_BURST)
        claim_bucket = CLAIM_FAIL_BURST;
    claim_bucket_ms = now;
    return claim_bucket >= 1 ? 0 : (uint64_t)((1 - claim_bucket) * 1000.0 / CLAIM_FAIL_RATE) + 1;
}

/* Gives back the charge of a claim that was not a failed guess. */
static void claim_refund(void)
{
    claim_bucket = claim_bucket + 1 < CLAIM_FAIL_BURST ? claim_bucket + 1 : CLAIM_FAIL_BURST;
}

static void claim_failed(relay_req_t *rr)
{
    relay_respond_error(rr, 404, "not_found", "code", "no such pairing code (it may have expired or been used)");
}

/* Normalises what a human typed: dashes and spaces dropped, upper case, O -> 0, I and L -> 1 (Crockford). Returns 0
 * with CODE_LEN characters in out, or -1. */
static int code_normalize(char out[CODE_LEN + 1], cr_span_t s)
{
    size_t k = 0;
    if (s.len > 4 * CODE_LEN)
        return -1;
    for (size_t i = 0; i < s.len; ++i) {
        char ch = s.base[i];
        if (ch == '-' || ch == ' ')
            continue;
        if (ch >= 'a' && ch <= 'z')
            ch = (char)(ch - 'a' + 'A');
        if (ch == 'O')
            ch = '0';
        else if (ch == 'I' || ch == 'L')
            ch = '1';
        if (ch == '\0' || strchr(code_alphabet, ch) == NULL || k == CODE_LEN)
            return -1;
        out[k++] = ch;
    }
    out[k] = '\0';
    return k == CODE_LEN ? 0 : -1;
}

/* A claim in flight; holds the new token, so it lives in sodium_malloc'd memory and is wiped. */
typedef struct st_claim_call_t {
    relay_req_t *rr;
    char token[RELAY_TOKEN_LEN + 1];
    char hash[65];
    char dev[CR_ULID_LEN + 1];
    char k_pair[8 + CODE_LEN + 1];
    char k_tok[7 + 64 + 1];
    char name[NAME_MAX_BYTES + 1];
    char now[24];
    msgpack_sbuffer record;
    const char *argv[6]; /* the script's arguments live until its reply (a NOSCRIPT retry sends them again) */
    size_t lens[6];
} claim_call_t;

static void claim_free(claim_call_t *c)
{
    msgpack_sbuffer_destroy(&c->record);
    sodium_free(c); /* wipes it */
}

/* The device record kept in cr:{T}:dev (what push reads): a msgpack map
 *   {id, name, provider: apns|fcm|webpush|none, token? (apns: lower-case hex; fcm), env? (apns: sandbox|production),
 *    subscription? {endpoint, keys: {p256dh, auth}} (webpush; keys base64url without padding),
 *    filters: {hosts?: [id], identities?: [name], min_pri: 0..2, muted?: [sid]}, created? (at pairing), updated}.
 * This writes the record a claim makes: provider none, the default filters. */
static void claim_record(msgpack_packer *pk, const char *id, const char *name, uint64_t now)
{
    msgpack_pack_map(pk, 6);
    pk_lit(pk, "id");
    pk_lit(pk, id);
    pk_lit(pk, "name");
    pk_lit(pk, name);
    pk_lit(pk, "provider");
    pk_lit(pk, "none");
    pk_lit(pk, "filters");
    msgpack_pack_map(pk, 1);
    pk_lit(pk, "min_pri");
    msgpack_pack_uint8(pk, MIN_PRI_DEFAULT);
    pk_lit(pk, "created");
    msgpack_pack_uint64(pk, now);
    pk_lit(pk, "updated");
    msgpack_pack_uint64(pk, now);
}

static void on_claim_reply(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    claim_call_t *c = data;
    relay_req_t *rr = c->rr;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    if (reply == NULL) {
        claim_refund();
        relay_respond_unavailable(rr); /* the code may be spent; the phone asks its host for a new one */
        goto done;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements < 1 || reply->element[0]->type != REDIS_REPLY_STRING) {
        cr_log(CR_LOG_ERROR, "claim.lua: unexpected reply (type %d: %s)", reply->type,
               reply->type == REDIS_REPLY_ERROR ? reply->str : "-");
        relay_respond_error(rr, 500, "internal", NULL, "the relay could not complete the pairing");
        goto done;
    }
    if (strcmp(reply->element[0]->str, "ok") != 0 || reply->elements < 2 || reply->element[1]->type != REDIS_REPLY_STRING) {
        claim_failed(rr);
        goto done;
    }
    claim_refund();
    cr_log(CR_LOG_INFO, "pair: device %s of team %s paired", c->dev, reply->element[1]->str);
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    msgpack_pack_map(&pk, 3);
    pk_lit(&pk, "token");
    pk_lit(&pk, c->token);
    pk_lit(&pk, "device");
    pk_lit(&pk, c->dev);
    pk_lit(&pk, "team");
    msgpack_pack_str_with_body(&pk, reply->element[1]->str, reply->element[1]->len);
    relay_respond(rr, 200, sb.data, sb.size);
    sodium_memzero(sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
done:
    claim_free(c);
    (void)rdb;
}

static void on_claim(relay_req_t *rr)
{
    relay_t *relay = rr->relay;
    const char *mp = rr->body.base;
    size_t len = rr->body.len;
    cr_span_t code_s = {NULL, 0}, name_s = {NULL, 0};
    char code[CODE_LEN + 1];
    verr_t e = {{0}, {0}};
    uint64_t wait, now;
    int rc;
    claim_call_t *c;
    msgpack_packer pk;

    if ((wait = claim_wait(relay)) != 0) {
        char ra[24];
        snprintf(ra, sizeof(ra), "%llu", (unsigned long long)((wait + 999) / 1000));
        if (rr->req != NULL) {
            h2o_iovec_t v = h2o_strdup(&rr->req->pool, ra, SIZE_MAX);
            h2o_add_header(&rr->req->pool, &rr->req->res.headers, H2O_TOKEN_RETRY_AFTER, NULL, v.base, v.len);
        }
        relay_respond_error(rr, 429, "rate_limited", NULL, "too many failed pairing claims; retry after %s s", ra);
        return;
    }
    if (body_map(rr) != 0)
        return;
    if ((rc = str_field(mp, len, "code", "code", &code_s, &e)) <= 0 ||
        (rc = str_field(mp, len, "name", "name", &name_s, &e)) <= 0 || name_check(name_s, "name", &e) != 0) {
        if (rc == 0)
            bad(&e, code_s.base == NULL ? "code" : "name", "%s is needed", code_s.base == NULL ? "code" : "name");
        relay_respond_error(rr, 400, "bad_request", e.field, "%s", e.msg);
        return;
    }
    claim_bucket -= 1; /* charged before Redis answers, so concurrent guesses cannot overdraw it; refunded on success */
    if (code_normalize(code, code_s) != 0) {
        claim_failed(rr);
        return;
    }
    if (!relay_rdb_ready(&relay->rdb)) {
        claim_refund();
        relay_respond_unavailable(rr);
        return;
    }
    if ((c = sodium_malloc(sizeof(*c))) == NULL) {
        relay_respond_error(rr, 500, "internal", NULL, "out of memory");
        return;
    }
    memset(c, 0, sizeof(*c));
    c->rr = rr;
    now = cr_now_ms();
    relay_token_new(c->token);
    relay_token_hash(c->hash, c->token, RELAY_TOKEN_LEN);
    cr_ulid_new(c->dev);
    memcpy(c->name, name_s.base, name_s.len);
    snprintf(c->k_pair, sizeof(c->k_pair), "cr:pair:%s", code);
    snprintf(c->k_tok, sizeof(c->k_tok), "cr:tok:%s", c->hash);
    snprintf(c->now, sizeof(c->now), "%llu", (unsigned long long)now);
    msgpack_sbuffer_init(&c->record);
    msgpack_packer_init(&pk, &c->record, msgpack_sbuffer_write);
    claim_record(&pk, c->dev, c->name, now);
    c->argv[0] = c->k_pair, c->argv[1] = c->k_tok, c->argv[2] = c->dev, c->argv[3] = c->name, c->argv[4] = c->now;
    c->argv[5] = c->record.data;
    for (size_t i = 0; i < 5; ++i)
        c->lens[i] = strlen(c->argv[i]);
    c->lens[5] = c->record.size;
    sodium_memzero(code, sizeof(code));
    if (relay_rdb_script(&relay->rdb, &claim_script, on_claim_reply, c, 2, 6, c->argv, c->lens) != 0) {
        claim_free(c);
        claim_refund();
        relay_respond_unavailable(rr);
    }
}

/* ---- POST /v1/devices ----------------------------------------------------------------------------------------- */

/* A validated registration; spans point into the request body. */
typedef struct st_device_t {
    cr_span_t name, provider, token, env, endpoint, p256dh, auth;
    cr_span_t hosts, identities, muted; /* raw msgpack arrays (len 0: absent) */
    unsigned min_pri;
} device_t;

/* Checks an array of ids (protocol ids: [A-Za-z0-9._-]{1,64}) of at most max entries; raw gets its bytes. */
static int ids_field(const char *mp, size_t len, const char *key, const char *path, size_t max, cr_span_t *raw, verr_t *e)
{
    cr_mp_item_t it, el;
    cr_span_t v;
    const char *p, *end;
    char fp[96];
    raw->len = 0;
    if (!field(mp, len, key, &it, &v))
        return 0;
    if (it.type != MSGPACK_OBJECT_ARRAY)
        return bad(e, path, "%s must be an array of ids", path);
    if (it.count > max)
        return bad(e, path, "%s holds at most %zu ids", path, max);
    p = v.base + cr_mp_read(v.base, v.base + v.len, &it);
    end = v.base + v.len;
    for (uint32_t i = 0; i < it.count; ++i) {
        size_t hn = cr_mp_read(p, end, &el);
        if (hn == 0 || el.type != MSGPACK_OBJECT_STR || !cr_id_valid(el.bytes.base, el.bytes.len)) {
            snprintf(fp, sizeof(fp), "%s.%u", path, i);
            return bad(e, fp, "%s must be an id (1 to 64 of A-Z a-z 0-9 . _ -)", fp);
        }
        p = cr_mp_skip(p, end);
    }
    *raw = v;
    return 0;
}

/* Checks a base64url key (padding tolerated and dropped) that decodes to want bytes; *out is the unpadded text. */
static int b64url_key(cr_span_t s, size_t want, const char *path, cr_span_t *out, verr_t *e)
{
    cr_buf_t b;
    int rc;
    while (s.len > 0 && s.base[s.len - 1] == '=')
        --s.len;
    if (s.len > 4 * want)
        return bad(e, path, "%s is too long", path);
    cr_buf_init(&b, want + 8);
    rc = cr_base64url_decode(&b, s.base, s.len);
    if (rc != 0 || b.len != want) {
        cr_buf_free(&b);
        return bad(e, path, "%s must be base64url of %zu bytes", path, want);
    }
    rc = want == 65 && (unsigned char)b.base[0] != 0x04 ? -1 : 0; /* an uncompressed P-256 point */
    cr_buf_free(&b);
    if (rc != 0)
        return bad(e, path, "%s must be an uncompressed P-256 public key", path);
    *out = s;
    return 0;
}

static int endpoint_check(cr_span_t s, verr_t *e)
{
    const char *path = "subscription.endpoint";
    if (s.len == 0 || s.len > ENDPOINT_MAX)
        return bad(e, path, "%s must be 1 to %d bytes", path, ENDPOINT_MAX);
    if (s.len <= 8 || strncmp(s.base, "https://", 8) != 0 || s.base[8] == '/' || !visible_ascii(s))
        return bad(e, path, "%s must be an https:// URL", path);
    return 0;
}

/* Validates a registration body (a checked map) into d. Returns 0 or -1 with e filled. */
static int device_parse(device_t *d, const char *mp, size_t len, verr_t *e)
{
    cr_mp_item_t it;
    cr_span_t sub, keys, fil;
    int rc;
    memset(d, 0, sizeof(*d));
    d->min_pri = MIN_PRI_DEFAULT;
    if ((rc = str_field(mp, len, "name", "name", &d->name, e)) < 0 || (rc == 1 && name_check(d->name, "name", e) != 0))
        return -1;
    if ((rc = str_field(mp, len, "provider", "provider", &d->provider, e)) < 0)
        return -1;
    if (rc == 0)
        return bad(e, "provider", "provider is needed: apns, fcm, webpush or none");
    if ((rc = str_field(mp, len, "token", "token", &d->token, e)) < 0 || str_field(mp, len, "env", "env", &d->env, e) < 0)
        return -1;
    int has_sub = field(mp, len, "subscription", &it, &sub);
    if (has_sub && it.type != MSGPACK_OBJECT_MAP)
        return bad(e, "subscription", "subscription must be an object");

    if (cr_span_eq(d->provider, "apns", 4)) {
        if (d->token.len == 0)
            return bad(e, "token", "token is needed for apns (the device token in hex)");
        if (d->token.len < APNS_TOKEN_MIN || d->token.len > APNS_TOKEN_MAX || (d->token.len & 1) != 0)
            return bad(e, "token", "an apns token is %d to %d hex digits", APNS_TOKEN_MIN, APNS_TOKEN_MAX);
        for (size_t i = 0; i < d->token.len; ++i) {
            char ch = d->token.base[i];
            if (!((ch >= '0' && ch <= '9') || (ch >= 'a' && ch <= 'f') || (ch >= 'A' && ch <= 'F')))
                return bad(e, "token", "an apns token is hex digits only");
        }
        if (d->env.len == 0)
            d->env = CR_SPAN_LIT("production");
        else if (!cr_span_eq(d->env, "production", 10) && !cr_span_eq(d->env, "sandbox", 7))
            return bad(e, "env", "env must be sandbox or production");
    } else if (cr_span_eq(d->provider, "fcm", 3)) {
        if (d->token.len == 0)
            return bad(e, "token", "token is needed for fcm (the registration token)");
        if (d->token.len > FCM_TOKEN_MAX || !visible_ascii(d->token))
            return bad(e, "token", "an fcm token is 1 to %d printable ASCII characters", FCM_TOKEN_MAX);
    } else if (cr_span_eq(d->provider, "webpush", 7)) {
        cr_span_t v;
        if (!has_sub)
            return bad(e, "subscription", "subscription {endpoint, keys: {p256dh, auth}} is needed for webpush");
        if ((rc = str_field(sub.base, sub.len, "endpoint", "subscription.endpoint", &d->endpoint, e)) < 0)
            return -1;
        if (rc == 0)
            return bad(e, "subscription.endpoint", "subscription.endpoint is needed");
        if (endpoint_check(d->endpoint, e) != 0)
            return -1;
        if (!field(sub.base, sub.len, "keys", &it, &keys) || it.type != MSGPACK_OBJECT_MAP)
            return bad(e, "subscription.keys", "subscription.keys {p256dh, auth} is needed");
        if ((rc = str_field(keys.base, keys.len, "p256dh", "subscription.keys.p256dh", &v, e)) < 0)
            return -1;
        if (rc == 0)
            return bad(e, "subscription.keys.p256dh", "subscription.keys.p256dh is needed");
        if (b64url_key(v, 65, "subscription.keys.p256dh", &d->p256dh, e) != 0)
            return -1;
        if ((rc = str_field(keys.base, keys.len, "auth", "subscription.keys.auth", &v, e)) < 0)
            return -1;
        if (rc == 0)
            return bad(e, "subscription.keys.auth", "subscription.keys.auth is needed");
        if (b64url_key(v, 16, "subscription.keys.auth", &d->auth, e) != 0)
            return -1;
    } else if (!cr_span_eq(d->provider, "none", 4)) {
        return bad(e, "provider", "provider must be apns, fcm, webpush or none");
    }
    if (d->token.len != 0 && !cr_span_eq(d->provider, "apns", 4) && !cr_span_eq(d->provider, "fcm", 3))
        return bad(e, "token", "token is only for apns and fcm");
    if (d->env.len != 0 && !cr_span_eq(d->provider, "apns", 4))
        return bad(e, "env", "env is only for apns");
    if (has_sub && !cr_span_eq(d->provider, "webpush", 7))
        return bad(e, "subscription", "subscription is only for webpush");

    if (field(mp, len, "filters", &it, &fil)) {
        if (it.type != MSGPACK_OBJECT_MAP)
            return bad(e, "filters", "filters must be an object");
        if (ids_field(fil.base, fil.len, "hosts", "filters.hosts", FILTER_IDS_MAX, &d->hosts, e) != 0 ||
            ids_field(fil.base, fil.len, "identities", "filters.identities", FILTER_IDS_MAX, &d->identities, e) != 0 ||
            ids_field(fil.base, fil.len, "muted", "filters.muted", FILTER_MUTED_MAX, &d->muted, e) != 0)
            return -1;
        if (field(fil.base, fil.len, "min_pri", &it, NULL)) {
            if (it.type != MSGPACK_OBJECT_POSITIVE_INTEGER || it.u > 2)
                return bad(e, "filters.min_pri", "filters.min_pri must be 0, 1 or 2");
            d->min_pri = (unsigned)it.u;
        }
    }
    return 0;
}

/* Writes the record (see claim_record) of a registration. */
static void device_record(msgpack_packer *pk, msgpack_sbuffer *sb, const device_t *d, const char *id, const char *name,
                          uint64_t now)
{
    int apns = cr_span_eq(d->provider, "apns", 4), webpush = cr_span_eq(d->provider, "webpush", 7);
    msgpack_pack_map(pk, 5 + (d->token.len != 0) + (d->env.len != 0) + webpush);
    pk_lit(pk, "id");
    pk_lit(pk, id);
    pk_lit(pk, "name");
    if (d->name.len != 0)
        pk_span(pk, d->name);
    else
        pk_lit(pk, name);
    pk_lit(pk, "provider");
    pk_span(pk, d->provider);
    if (d->token.len != 0) {
        pk_lit(pk, "token");
        if (apns) { /* one spelling, as APNs' URL wants it */
            char hex[APNS_TOKEN_MAX + 1];
            for (size_t i = 0; i < d->token.len; ++i) {
                char ch = d->token.base[i];
                hex[i] = (char)(ch >= 'A' && ch <= 'F' ? ch - 'A' + 'a' : ch);
            }
            msgpack_pack_str_with_body(pk, hex, d->token.len);
        } else {
            pk_span(pk, d->token);
        }
    }
    if (d->env.len != 0) {
        pk_lit(pk, "env");
        pk_span(pk, d->env);
    }
    if (webpush) {
        pk_lit(pk, "subscription");
        msgpack_pack_map(pk, 2);
        pk_lit(pk, "endpoint");
        pk_span(pk, d->endpoint);
        pk_lit(pk, "keys");
        msgpack_pack_map(pk, 2);
        pk_lit(pk, "p256dh");
        pk_span(pk, d->p256dh);
        pk_lit(pk, "auth");
        pk_span(pk, d->auth);
    }
    pk_lit(pk, "filters");
    msgpack_pack_map(pk, 1 + (d->hosts.len != 0) + (d->identities.len != 0) + (d->muted.len != 0));
    if (d->hosts.len != 0) {
        pk_lit(pk, "hosts");
        msgpack_sbuffer_write(sb, d->hosts.base, d->hosts.len); /* checked above: an array of id strings */
    }
    if (d->identities.len != 0) {
        pk_lit(pk, "identities");
        msgpack_sbuffer_write(sb, d->identities.base, d->identities.len);
    }
    pk_lit(pk, "min_pri");
    msgpack_pack_uint8(pk, (uint8_t)d->min_pri);
    if (d->muted.len != 0) {
        pk_lit(pk, "muted");
        msgpack_sbuffer_write(sb, d->muted.base, d->muted.len);
    }
    pk_lit(pk, "updated");
    msgpack_pack_uint64(pk, now);
}

typedef struct st_device_call_t {
    relay_req_t *rr;
    char id[65];
} device_call_t;

static void on_device_stored(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    device_call_t *c = data;
    relay_req_t *rr = c->rr;
    if (reply == NULL) {
        relay_respond_unavailable(rr);
    } else if (reply->type != REDIS_REPLY_INTEGER) {
        cr_log(CR_LOG_ERROR, "devices: HSET answered type %d (%s)", reply->type,
               reply->type == REDIS_REPLY_ERROR ? reply->str : "-");
        relay_respond_error(rr, 500, "internal", NULL, "the relay could not store the device");
    } else {
        msgpack_sbuffer sb;
        msgpack_packer pk;
        msgpack_sbuffer_init(&sb);
        msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
        msgpack_pack_map(&pk, 1);
        pk_lit(&pk, "id");
        pk_lit(&pk, c->id);
        cr_log(CR_LOG_INFO, "devices: %s of team %s registered device %s", rr->who.id, rr->who.team, c->id);
        relay_respond(rr, 201, sb.data, sb.size);
        msgpack_sbuffer_destroy(&sb);
    }
    free(c);
    (void)rdb;
}

static void on_device_register(relay_req_t *rr)
{
    const char *mp = rr->body.base;
    size_t len = rr->body.len;
    device_t d;
    verr_t e = {{0}, {0}};
    cr_span_t id_s = {NULL, 0};
    device_call_t *c;
    msgpack_sbuffer sb;
    msgpack_packer pk;
    char key[96];
    int rc = 0;

    if (body_map(rr) != 0)
        return;
    if (device_parse(&d, mp, len, &e) != 0 || (rc = str_field(mp, len, "id", "id", &id_s, &e)) < 0) {
        relay_respond_error(rr, 400, "bad_request", e.field, "%s", e.msg);
        return;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        relay_respond_error(rr, 500, "internal", NULL, "out of memory");
        return;
    }
    c->rr = rr;
    if (rr->who.kind == RELAY_P_DEVICE) {
        /* a device registers itself: its id is its principal's */
        if (rc == 1 && !(id_s.len == strlen(rr->who.id) && memcmp(id_s.base, rr->who.id, id_s.len) == 0)) {
            free(c);
            relay_respond_error(rr, 403, "forbidden", "id", "a device token registers only its own device");
            return;
        }
        snprintf(c->id, sizeof(c->id), "%s", rr->who.id);
    } else if (rc == 1) {
        if (!cr_id_valid(id_s.base, id_s.len)) {
            free(c);
            relay_respond_error(rr, 400, "bad_request", "id", "id must be 1 to 64 of A-Z a-z 0-9 . _ -");
            return;
        }
        snprintf(c->id, sizeof(c->id), "%.*s", (int)id_s.len, id_s.base);
    } else {
        cr_ulid_new(c->id);
    }
    msgpack_sbuffer_init(&sb);
    msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    device_record(&pk, &sb, &d, c->id, rr->who.kind == RELAY_P_DEVICE ? rr->who.label : "device", cr_now_ms());
    snprintf(key, sizeof(key), "cr:{%s}:dev", rr->who.team);
    rc = relay_rdb_commandf(&rr->relay->rdb, on_device_stored, c, "HSET %s %s %b", key, c->id, sb.data, sb.size);
    msgpack_sbuffer_destroy(&sb);
    if (rc != 0) {
        free(c);
        relay_respond_unavailable(rr);
    }
}

/* ---- DELETE /v1/devices/{id} ---------------------------------------------------------------------------------- */

static void on_device_deleted(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    relay_req_t *rr = data;
    if (reply == NULL) {
        relay_respond_unavailable(rr);
    } else if (reply->type != REDIS_REPLY_INTEGER) {
        cr_log(CR_LOG_ERROR, "devices: HDEL answered type %d", reply->type);
        relay_respond_error(rr, 500, "internal", NULL, "the relay could not delete the device");
    } else if (reply->integer == 0) {
        relay_respond_error(rr, 404, "not_found", "id", "no such device");
    } else {
        cr_log(CR_LOG_INFO, "devices: %s of team %s deleted a device", rr->who.id, rr->who.team);
        respond_no_content(rr);
    }
    (void)rdb;
}

static void on_device_delete(relay_req_t *rr)
{
    h2o_iovec_t id = rr->params[0];
    char key[96];
    /* another team's id is simply not in this team's hash; a device sees only itself */
    if (!cr_id_valid(id.base, id.len) ||
        (rr->who.kind == RELAY_P_DEVICE && !(id.len == strlen(rr->who.id) && memcmp(id.base, rr->who.id, id.len) == 0))) {
        relay_respond_error(rr, 404, "not_found", "id", "no such device");
        return;
    }
    snprintf(key, sizeof(key), "cr:{%s}:dev", rr->who.team);
    if (relay_rdb_commandf(&rr->relay->rdb, on_device_deleted, rr, "HDEL %s %b", key, id.base, id.len) != 0)
        relay_respond_unavailable(rr);
}

/* ---- GET /v1/devices: what each device gets, and how its pushes went ------------------------------------------- */

/* The value of "<id>:<what>" in the HGETALL reply st, or NULL. */
static const redisReply *status_of(const redisReply *st, const char *id, size_t idlen, const char *what)
{
    size_t wl = strlen(what);
    for (size_t i = 0; st != NULL && st->type == REDIS_REPLY_ARRAY && i + 1 < st->elements; i += 2) {
        const redisReply *k = st->element[i];
        if (k->type == REDIS_REPLY_STRING && k->len == idlen + 1 + wl && memcmp(k->str, id, idlen) == 0 &&
            k->str[idlen] == ':' && memcmp(k->str + idlen + 1, what, wl) == 0 && st->element[i + 1]->type == REDIS_REPLY_STRING)
            return st->element[i + 1];
    }
    return NULL;
}

/* Writes one device's record without its push credentials (token, subscription), with last_ok and last_error. */
static int devlist_entry(cr_buf_t *b, const redisReply *id, const redisReply *rec, const redisReply *st)
{
    const char *p = rec->str, *end = rec->str + rec->len;
    const redisReply *ok = status_of(st, id->str, id->len, "ok"), *err = status_of(st, id->str, id->len, "err");
    cr_mp_item_t m, k;
    size_t n = cr_mp_read(p, end, &m), kept = 0, mark;
    if (n == 0 || m.type != MSGPACK_OBJECT_MAP)
        return 0; /* not a record: left out */
    p += n;
    mark = b->len;
    if (cr_mpw_map(b, 0xffff)) /* count patched below: a map16 header */
        return -1;
    for (uint32_t i = 0; i < m.count; ++i) {
        const char *kstart = p, *vend;
        if ((n = cr_mp_read(p, end, &k)) == 0 || (vend = cr_mp_skip(p + n, end)) == NULL)
            return 0;
        p = vend;
        if (k.type == MSGPACK_OBJECT_STR && (cr_span_eq(k.bytes, "token", 5) || cr_span_eq(k.bytes, "subscription", 12)))
            continue;
        if (cr_buf_append(b, kstart, (size_t)(vend - kstart)) != 0)
            return -1;
        ++kept;
    }
    if (ok != NULL && (CR_MPW_LIT(b, "last_ok") || cr_mpw_uint(b, strtoull(ok->str, NULL, 10))))
        return -1;
    if (err != NULL && (CR_MPW_LIT(b, "last_error") || cr_mpw_str(b, err->str, err->len)))
        return -1;
    kept += (ok != NULL) + (err != NULL);
    b->base[mark + 1] = (char)(kept >> 8), b->base[mark + 2] = (char)kept;
    return 1;
}

static void on_devlist(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    relay_req_t *rr = data;
    const redisReply *devs, *st;
    cr_buf_t b;
    size_t mark, n = 0;
    int rc;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements != 2 ||
        (devs = reply->element[0])->type != REDIS_REPLY_ARRAY) {
        relay_respond_unavailable(rr);
        return;
    }
    st = reply->element[1];
    cr_buf_init(&b, 16u << 20);
    rc = cr_mpw_map(&b, 1) || CR_MPW_LIT(&b, "devices");
    mark = b.len;
    rc = rc || cr_mpw_array(&b, 0xffff); /* count patched below: an array16 header */
    for (size_t i = 0; rc == 0 && i + 1 < devs->elements; i += 2) {
        const redisReply *id = devs->element[i], *rec = devs->element[i + 1];
        int r;
        if (id->type != REDIS_REPLY_STRING || rec->type != REDIS_REPLY_STRING)
            continue;
        /* a device sees only itself */
        if (rr->who.kind == RELAY_P_DEVICE && !(id->len == strlen(rr->who.id) && memcmp(id->str, rr->who.id, id->len) == 0))
            continue;
        if ((r = devlist_entry(&b, id, rec, st)) < 0 || n + 1 > 0xffff)
            rc = -1;
        n += r > 0;
    }
    if (rc == 0) {
        b.base[mark + 1] = (char)(n >> 8), b.base[mark + 2] = (char)n;
        relay_respond(rr, 200, b.base, b.len);
    } else {
        relay_respond_error(rr, 500, "internal", NULL, "too many devices to list");
    }
    cr_buf_free(&b);
    (void)rdb;
}

/* GET /v1/devices: the team's devices (a device token: itself) without their push credentials, with last_ok (ms) and
 * last_error ("<reason> <ms>") of their pushes. */
static void on_device_list(relay_req_t *rr)
{
    char dev[96], st[96];
    const char *argv[] = {dev, st};
    size_t lens[2];
    snprintf(dev, sizeof(dev), "cr:{%s}:dev", rr->who.team);
    snprintf(st, sizeof(st), "cr:{%s}:devst", rr->who.team);
    lens[0] = strlen(dev), lens[1] = strlen(st);
    if (relay_rdb_script(&rr->relay->rdb, &devices_script, on_devlist, rr, 2, 2, argv, lens) != 0)
        relay_respond_unavailable(rr);
}

void relay_pair_register(relay_t *relay)
{
    claim_script.src = relay_lua_claim;
    claim_script.len = relay_lua_claim_len;
    relay_rdb_add_script(&relay->rdb, &claim_script);
    devices_script.src = relay_lua_devices;
    devices_script.len = relay_lua_devices_len;
    relay_rdb_add_script(&relay->rdb, &devices_script);
    claim_bucket_ms = uv_now(relay->loop);
    relay_route(relay, "POST", "/v1/host/pair", RELAY_P_HOST | RELAY_P_ADMIN, on_pair, "host_pair");
    relay_route(relay, "POST", "/v1/pair/claim", 0, on_claim, "pair_claim");
    relay_route(relay, "POST", "/v1/devices", RELAY_P_DEVICE | RELAY_P_ADMIN, on_device_register, "devices_register");
    relay_route(relay, "DELETE", "/v1/devices/{}", RELAY_P_DEVICE | RELAY_P_ADMIN, on_device_delete, "devices_delete");
    relay_route(relay, "GET", "/v1/devices", RELAY_P_DEVICE | RELAY_P_ADMIN, on_device_list, "devices_list");
}
