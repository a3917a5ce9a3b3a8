/* auth.c — bearer tokens: lookup by SHA-256 in Redis, principals, per-token rate limits, and the admin commands. */
#include "auth.h"
#include "corral/codec.h"
#include "corral/error.h"
#include "corral/log.h"
#include "corral/ulid.h"
#include <openssl/sha.h>
#include <sodium.h>
#include <stdlib.h>
#include <string.h>

const char *relay_principal_kind_name(unsigned kind)
{
    return kind == RELAY_P_ADMIN ? "admin" : kind == RELAY_P_HOST ? "host" : kind == RELAY_P_DEVICE ? "device" : "unknown";
}

static unsigned kind_parse(const char *s, size_t n)
{
    if (n == 5 && memcmp(s, "admin", 5) == 0)
        return RELAY_P_ADMIN;
    if (n == 4 && memcmp(s, "host", 4) == 0)
        return RELAY_P_HOST;
    if (n == 6 && memcmp(s, "device", 6) == 0)
        return RELAY_P_DEVICE;
    return 0;
}

void relay_token_hash(char out[65], const char *token, size_t len)
{
    unsigned char md[SHA256_DIGEST_LENGTH];
    SHA256((const unsigned char *)token, len, md);
    cr_hex_encode(out, md, sizeof(md));
}

void relay_token_new(char out[RELAY_TOKEN_LEN + 1])
{
    unsigned char raw[32];
    randombytes_buf(raw, sizeof(raw));
    memcpy(out, RELAY_TOKEN_PREFIX, 4);
    cr_base64url_encode(out + 4, raw, sizeof(raw));
    sodium_memzero(raw, sizeof(raw));
}

int relay_token_wellformed(const char *s, size_t n)
{
    if (n != RELAY_TOKEN_LEN || memcmp(s, RELAY_TOKEN_PREFIX, 4) != 0)
        return 0;
    for (size_t i = 4; i < n; ++i) {
        char c = s[i];
        if (!((c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' || c == '_'))
            return 0;
    }
    return 1;
}

/* ---- rate limits: a token bucket per token, in this relay's memory ------------------------------------------- */

#define BUCKETS 8192
typedef struct st_bucket_t {
    uint64_t key;
    double tokens;
    uint64_t last_ms;
} bucket_t;
static bucket_t buckets[BUCKETS];

/* Takes one request from the token's bucket; returns 0, or the ms until one is available. */
static uint64_t rate_take(relay_t *relay, const char *token_hash)
{
    double rate = relay->rate_per_second, burst = relay->rate_burst;
    uint64_t key = 1;
    for (int i = 0; i < 16; ++i) /* the first 64 bits of the hash: uniform, and not chosen by the client */
        key = (key << 4) | (uint64_t)(token_hash[i] <= '9' ? token_hash[i] - '0' : token_hash[i] - 'a' + 10);
    bucket_t *b = &buckets[key % BUCKETS];
    uint64_t now = uv_now(relay->loop);
    if (rate <= 0)
        return 0;
    if (b->key != key) {
        b->key = key;
        b->tokens = burst;
        b->last_ms = now;
    }
    b->tokens += (now - b->last_ms) * rate / 1000.0;
    if (b->tokens > burst)
        b->tokens = burst;
    b->last_ms = now;
    if (b->tokens >= 1) {
        b->tokens -= 1;
        return 0;
    }
    return (uint64_t)((1 - b->tokens) * 1000.0 / rate) + 1;
}

/* ---- authentication ------------------------------------------------------------------------------------------ */

typedef struct st_auth_call_t {
    relay_req_t *rr;
    relay_auth_cb done;
} auth_call_t;

/* Finds the token in the Authorization header or the WebSocket subprotocol list. */
static int find_token(h2o_req_t *req, const char **tok, size_t *len)
{
    ssize_t i = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1);
    if (i >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        if (v.len > 7 && strncasecmp(v.base, "Bearer ", 7) == 0) {
            *tok = v.base + 7;
            *len = v.len - 7;
            while (*len > 0 && (*tok)[*len - 1] == ' ')
                --*len;
            return 1;
        }
        return 0;
    }
    i = h2o_find_header_by_str(&req->headers, H2O_STRLIT("sec-websocket-protocol"), -1);
    if (i >= 0) {
        h2o_iovec_t v = req->headers.entries[i].value;
        const char *p = v.base, *end = v.base + v.len;
        while (p < end) {
            const char *comma = memchr(p, ',', (size_t)(end - p)), *stop = comma != NULL ? comma : end;
            while (p < stop && *p == ' ')
                ++p;
            if (stop - p > 7 && memcmp(p, "bearer.", 7) == 0) {
                *tok = p + 7;
                *len = (size_t)(stop - p - 7);
                while (*len > 0 && (*tok)[*len - 1] == ' ')
                    --*len;
                return 1;
            }
            p = stop + 1;
        }
    }
    return 0;
}

static void on_lookup(relay_rdb_t *rdb, redisReply *reply, void *data)
{
    auth_call_t *call = data;
    relay_req_t *rr = call->rr;
    relay_auth_cb done = call->done;
    relay_t *relay = rr->relay;
    uint64_t wait;
    free(call);
    if (reply == NULL || reply->type == REDIS_REPLY_ERROR) {
        done(relay, rr, RELAY_AUTH_UNAVAILABLE, 0);
        return;
    }
    if (reply->type != REDIS_REPLY_ARRAY || reply->elements == 0) {
        done(relay, rr, RELAY_AUTH_UNAUTHORIZED, 0);
        return;
    }
    for (size_t i = 0; i + 1 < reply->elements; i += 2) {
        redisReply *k = reply->element[i], *v = reply->element[i + 1];
        if (k->type != REDIS_REPLY_STRING || v->type != REDIS_REPLY_STRING)
            continue;
        if (strcmp(k->str, "team") == 0)
            snprintf(rr->who.team, sizeof(rr->who.team), "%s", v->str);
        else if (strcmp(k->str, "id") == 0)
            snprintf(rr->who.id, sizeof(rr->who.id), "%s", v->str);
        else if (strcmp(k->str, "label") == 0)
            snprintf(rr->who.label, sizeof(rr->who.label), "%s", v->str);
        else if (strcmp(k->str, "kind") == 0)
            rr->who.kind = kind_parse(v->str, v->len);
    }
    if (rr->who.team[0] == '\0' || rr->who.id[0] == '\0' || rr->who.kind == 0) {
        cr_log(CR_LOG_WARN, "auth: token record %.12s... is incomplete; refusing it", rr->who.token_hash);
        done(relay, rr, RELAY_AUTH_UNAUTHORIZED, 0);
        return;
    }
    if ((wait = rate_take(relay, rr->who.token_hash)) != 0) {
        done(relay, rr, RELAY_AUTH_RATE_LIMITED, wait);
        return;
    }
    done(relay, rr, RELAY_AUTH_OK, 0);
    (void)rdb;
}

void relay_authenticate(relay_t *relay, relay_req_t *rr, relay_auth_cb done)
{
    const char *tok;
    size_t len;
    auth_call_t *call;
    char key[8 + 64 + 1];
    if (!find_token(rr->req, &tok, &len) || !relay_token_wellformed(tok, len)) {
        done(relay, rr, RELAY_AUTH_UNAUTHORIZED, 0);
        return;
    }
    relay_token_hash(rr->who.token_hash, tok, len);
    snprintf(key, sizeof(key), "cr:tok:%s", rr->who.token_hash);
    if ((call = malloc(sizeof(*call))) == NULL) {
        done(relay, rr, RELAY_AUTH_UNAVAILABLE, 0);
        return;
    }
    call->rr = rr;
    call->done = done;
    if (relay_rdb_commandf(&relay->rdb, on_lookup, call, "HGETALL %s", key) != 0) {
        free(call);
        done(relay, rr, RELAY_AUTH_UNAVAILABLE, 0);
    }
}

/* ---- admin --------------------------------------------------------------------------------------------------- */

static int redis_failed(redisContext *c, redisReply *r, const char *what)
{
    int rc = cr_error_set(CR_EIO, NULL, "redis: %s failed: %s", what,
                          r == NULL ? (c->errstr[0] ? c->errstr : "no reply") : r->type == REDIS_REPLY_ERROR ? r->str : "unexpected reply");
    if (r != NULL)
        freeReplyObject(r);
    return rc;
}

/* Stores a principal for a fresh token; writes the token to token_out. */
static int make_token(redisContext *c, const char *team, const char *kind, const char *id, const char *label,
                      char token_out[RELAY_TOKEN_LEN + 1])
{
    char hash[65], now[24];
    redisReply *r;
    relay_token_new(token_out);
    relay_token_hash(hash, token_out, RELAY_TOKEN_LEN);
    snprintf(now, sizeof(now), "%llu", (unsigned long long)cr_now_ms());
    r = redisCommand(c, "HSET cr:tok:%s team %s kind %s id %s label %s created %s", hash, team, kind, id, label, now);
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        return redis_failed(c, r, "HSET");
    freeReplyObject(r);
    r = redisCommand(c, "SADD cr:{%s}:toks %s", team, hash);
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        return redis_failed(c, r, "SADD");
    freeReplyObject(r);
    return 0;
}

int relay_admin_team_create(redisContext *c, const char *team, char token_out[RELAY_TOKEN_LEN + 1])
{
    char now[24], id[CR_ULID_LEN + 1];
    redisReply *r;
    if (!cr_id_valid(team, strlen(team)))
        return cr_error_set(CR_ECONFIG, "team", "a team name is 1 to 64 characters among A-Z a-z 0-9 . _ -");
    snprintf(now, sizeof(now), "%llu", (unsigned long long)cr_now_ms());
    r = redisCommand(c, "HSETNX cr:teams %s %s", team, now);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        return redis_failed(c, r, "HSETNX");
    if (r->integer == 0) {
        freeReplyObject(r);
        return cr_error_set(CR_ECONFIG, "team", "team '%s' exists already", team);
    }
    freeReplyObject(r);
    cr_ulid_new(id);
    return make_token(c, team, "admin", id, "admin", token_out);
}

int relay_admin_token_create(redisContext *c, const char *team, const char *kind, const char *label,
                             char token_out[RELAY_TOKEN_LEN + 1], char id_out[27])
{
    redisReply *r;
    int exists;
    if (!kind_parse(kind, strlen(kind)))
        return cr_error_set(CR_ECONFIG, "kind", "--kind must be admin, host or device, got '%s'", kind);
    if (strlen(label) > 128)
        return cr_error_set(CR_ECONFIG, "label", "a label is at most 128 bytes");
    r = redisCommand(c, "HEXISTS cr:teams %s", team);
    if (r == NULL || r->type != REDIS_REPLY_INTEGER)
        return redis_failed(c, r, "HEXISTS");
    exists = r->integer == 1;
    freeReplyObject(r);
    if (!exists)
        return cr_error_set(CR_ENOTFOUND, "team", "no team '%s' (create it with: corral-relay admin team create %s)", team, team);
    cr_ulid_new(id_out);
    return make_token(c, team, kind, id_out, label[0] != '\0' ? label : kind, token_out);
}

int relay_admin_token_revoke(redisContext *c, const char *token)
{
    char hash[65];
    redisReply *r;
    char team[65] = "";
    if (!relay_token_wellformed(token, strlen(token)))
        return cr_error_set(CR_ECONFIG, "token", "that is not a Corral token (crt_ followed by 43 characters)");
    relay_token_hash(hash, token, strlen(token));
    r = redisCommand(c, "HGET cr:tok:%s team", hash);
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        return redis_failed(c, r, "HGET");
    if (r->type == REDIS_REPLY_STRING)
        snprintf(team, sizeof(team), "%s", r->str);
    freeReplyObject(r);
    if (team[0] == '\0')
        return cr_error_set(CR_ENOTFOUND, "token", "no such token (already revoked?)");
    r = redisCommand(c, "DEL cr:tok:%s", hash);
    if (r == NULL || r->type == REDIS_REPLY_ERROR)
        return redis_failed(c, r, "DEL");
    freeReplyObject(r);
    if ((r = redisCommand(c, "SREM cr:{%s}:toks %s", team, hash)) != NULL)
        freeReplyObject(r);
    /* relays close the streams this token holds, at once */
    if ((r = redisCommand(c, "PUBLISH cr:revoke %s", hash)) != NULL)
        freeReplyObject(r);
    return 0;
}

int relay_admin_team_list(redisContext *c, FILE *fp)
{
    redisReply *r = redisCommand(c, "HGETALL cr:teams");
    if (r == NULL || r->type != REDIS_REPLY_ARRAY)
        return redis_failed(c, r, "HGETALL");
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        redisReply *n = redisCommand(c, "SCARD cr:{%s}:toks", r->element[i]->str);
        fprintf(fp, "%s\t%s\t%lld\n", r->element[i]->str, r->element[i + 1]->str, n != NULL && n->type == REDIS_REPLY_INTEGER ? n->integer : 0);
        if (n != NULL)
            freeReplyObject(n);
    }
    freeReplyObject(r);
    return 0;
}
