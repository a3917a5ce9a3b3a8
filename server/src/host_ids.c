/* host_ids.c — corrald's identity service: identities, their vaults and inboxes, between the local API, the relay
 * and the on-disk store (see host_ids.h). */
#include "host_ids.h"
#include "pair.h"
#include "corral/codec.h"
#include "corral/error.h"
#include "corral/fs.h"
#include "corral/http.h"
#include "corral/json.h"
#include "corral/log.h"
#include "corral/mp.h"
#include "corral/seal.h"
#include <inttypes.h>
#include <limits.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <dirent.h>
#include <errno.h>
#include <unistd.h>

#define RELAY_ANSWER_MAX (64u << 20) /* an inbox page of sealed mail */
#define INBOX_PAGE "50"
#define FETCH_MAX 256               /* identities whose fetch state is kept */
#define OWNER_SID "_owner"          /* whose "given" marks the owner's own inbox reads (the CLI without a token) keep */

typedef struct st_ids_wait_t ids_wait_t;

struct st_host_ids_call_t {
    host_ids_t *ids;
    host_ids_cb cb;
    void *data;
    int detached;
    /* what the operation needs across its steps */
    host_identity_t idn;
    char key[HOST_SECRET_KEY_MAX + 1];
    char actor[128];
    char sid[64];
    char *value; /* sodium memory: a secret value to seal */
    char *blob;  /* the sealed value as sent (base64url), kept for the injection cache */
    size_t value_len;
    int inject, tries;
    uint64_t version;
    char email[HOST_IDN_EMAIL_MAX + 1];
    host_identity_keys_t keys;
    struct st_given_t *given; /* a message on its way to the asker (give) */
};

struct st_ids_wait_t {
    host_ids_call_t *call;
    char name[HOST_IDN_NAME_MAX + 1];
    host_inbox_filter_t f;
    char subject[256], from[256], since_id[HOST_INBOX_ID_MAX + 1], session[64];
    int otp;
    uv_timer_t timer;
    ids_wait_t *next;
};

typedef struct st_ids_fetch_t {
    char name[HOST_IDN_NAME_MAX + 1];
    int busy, again;
} ids_fetch_t;

struct st_host_ids_t {
    host_t *host;
    uv_loop_t *loop;
    char home[PATH_MAX], root[PATH_MAX];
    cr_http_t *http;  /* NULL without a relay */
    char url[1024];
    char *token;      /* sodium memory */
    char *ca_file;
    char team[HOST_IDN_TEAM_MAX + 1]; /* learned from the relay; kept in <home>/team.name */
    ids_wait_t *waits;
    ids_fetch_t fetch[FETCH_MAX];
    size_t nfetch;
    int closing;
};


/* ---- answers ------------------------------------------------------------------------------------------------ */

static host_ids_call_t *call_new(host_ids_t *ids, const host_ids_who_t *who, host_ids_cb cb, void *data)
{
    host_ids_call_t *c = calloc(1, sizeof(*c));
    if (c == NULL) {
        static const char err[] = "{\"error\":{\"code\":\"internal\",\"message\":\"out of memory\"}}";
        cb(500, err, sizeof(err) - 1, data);
        return NULL;
    }
    c->ids = ids, c->cb = cb, c->data = data;
    snprintf(c->actor, sizeof(c->actor), "%s", who != NULL && who->actor != NULL ? who->actor : "owner");
    snprintf(c->sid, sizeof(c->sid), "%s", who != NULL && who->sid != NULL ? who->sid : "");
    return c;
}

static void call_free(host_ids_call_t *c)
{
    if (c->value != NULL)
        host_secure_free(c->value);
    free(c->blob);
    sodium_memzero(&c->keys, sizeof(c->keys));
    free(c);
}

/* Answers with a msgpack document (converted to JSON) and frees the call. */
static void answer_mp(host_ids_call_t *c, int status, const cr_buf_t *mp)
{
    if (!c->detached) {
        cr_buf_t json;
        cr_limits_t lim = cr_limits_default;
        lim.max_depth += 4;
        lim.max_envelope = 64u << 20;
        cr_buf_init(&json, 64u << 20);
        if (cr_json_from_msgpack(&json, mp->base, mp->len, &lim) != 0) {
            static const char err[] = "{\"error\":{\"code\":\"internal\",\"message\":\"the answer could not be rendered\"}}";
            c->cb(500, err, sizeof(err) - 1, c->data);
        } else {
            c->cb(status, json.base, json.len, c->data);
        }
        if (json.base != NULL)
            sodium_memzero(json.base, json.len);
        cr_buf_free(&json);
    }
    call_free(c);
}

static void answer_json(host_ids_call_t *c, int status, const char *json, size_t len)
{
    if (!c->detached)
        c->cb(status, json, len, c->data);
    call_free(c);
}

static void answer_error(host_ids_call_t *c, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));
static void answer_error(host_ids_call_t *c, int status, const char *code, const char *field, const char *fmt, ...)
{
    char msg[600];
    va_list ap;
    cr_buf_t b;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    cr_buf_init(&b, 8192);
    cr_mpw_error_doc(&b, code, field, msg, sizeof(msg));
    answer_mp(c, status, &b);
    cr_buf_free(&b);
}

/* Answers cr_error_last() with the status its code implies. */
static void answer_cr_error(host_ids_call_t *c)
{
    const cr_error_t *e = cr_error_last();
    int st = e->code == CR_ENOTFOUND ? 404 : e->code == CR_EEXISTS || e->code == CR_ECONFLICT ? 409
             : e->code == CR_EIO || e->code == CR_ENOMEM || e->code == CR_ERR ? 500 : e->code == CR_ETOOLARGE ? 413 : 400;
    char msg[sizeof(e->message)], field[sizeof(e->field)];
    memcpy(msg, e->message, sizeof(msg));
    memcpy(field, e->field, sizeof(field));
    answer_error(c, st, cr_err_code(e->code), field[0] != '\0' ? field : NULL, "%s", msg);
}

static void w_str(cr_buf_t *b, const char *k, const char *v)
{
    cr_mpw_str(b, k, strlen(k));
    cr_mpw_str(b, v, strlen(v));
}

/* {id, name, email, phone} */
static void w_identity(cr_buf_t *b, const host_identity_t *i)
{
    cr_mpw_map(b, 4);
    w_str(b, "id", i->id);
    w_str(b, "name", i->name);
    w_str(b, "email", i->email);
    CR_MPW_LIT(b, "phone");
    if (i->phone[0] != '\0')
        cr_mpw_str(b, i->phone, strlen(i->phone));
    else
        cr_mpw_nil(b);
}

static void activity(host_ids_call_t *c, const char *op, const char *detail, const char *outcome)
{
    host_store_activity_t a = {0, c->actor, c->sid[0] != '\0' ? c->sid : NULL, c->idn.name, op, detail, outcome};
    if (host_store_activity(c->ids->host->store, &a) != 0)
        cr_log(CR_LOG_WARN, "activity.csv: %s", cr_error_last()->message);
}

/* ---- the relay ------------------------------------------------------------------------------------------------- */

typedef void (*relay_cb)(host_ids_call_t *c, long status, const char *mp, size_t len, const char *err);

typedef struct st_relay_call_t {
    host_ids_call_t *c;
    relay_cb cb;
} relay_call_t;

static void on_relay_answer(const cr_http_answer_t *a, void *data)
{
    relay_call_t *rc = data;
    host_ids_call_t *c = rc->c;
    relay_cb cb = rc->cb;
    char err[400];
    free(rc);
    if (a->status == 0) {
        snprintf(err, sizeof(err), "the relay did not answer: %s", a->error != NULL ? a->error : "?");
        cb(c, 0, NULL, 0, err);
        return;
    }
    /* an error document: pass its message on */
    if (a->status >= 400) {
        cr_span_t e, m;
        cr_mp_item_t it;
        snprintf(err, sizeof(err), "the relay answered HTTP %ld", a->status);
        if (a->body_len != 0 && cr_mp_map_get(a->body, a->body_len, "error", &e) == 0 &&
            cr_mp_map_get(e.base, e.len, "message", &m) == 0 && cr_mp_read(m.base, m.base + m.len, &it) != 0 &&
            it.type == MSGPACK_OBJECT_STR)
            snprintf(err, sizeof(err), "%.*s", (int)(it.bytes.len > 300 ? 300 : it.bytes.len), it.bytes.base);
        cb(c, a->status, a->body, a->body_len, err);
        return;
    }
    cb(c, a->status, a->body, a->body_len, NULL);
}

/* Sends METHOD url/path with an optional msgpack body; cb runs once from the loop (status 0: no answer). */
static void relay_send(host_ids_call_t *c, const char *method, const char *path, const cr_buf_t *body, relay_cb cb)
{
    host_ids_t *ids = c->ids;
    cr_http_req_t req;
    relay_call_t *rc;
    char auth[300];
    memset(&req, 0, sizeof(req));
    if (ids->http == NULL || ids->closing) {
        cb(c, 0, NULL, 0, ids->http == NULL ? "no relay configured: run corral up --relay URL --token TOKEN"
                                             : "corrald is shutting down");
        return;
    }
    if ((rc = malloc(sizeof(*rc))) == NULL) {
        cb(c, 0, NULL, 0, "out of memory");
        return;
    }
    rc->c = c, rc->cb = cb;
    snprintf(req.url, sizeof(req.url), "%s%s", ids->url, path);
    req.method = method;
    req.ca_file = ids->ca_file;
    req.body_max = RELAY_ANSWER_MAX;
    cr_buf_init(&req.body, HOST_SECRET_BLOB_MAX * 2 + 65536);
    snprintf(auth, sizeof(auth), "Bearer %s", ids->token);
    int bad = cr_http_req_header(&req, "Authorization", auth) != 0 || cr_http_req_header(&req, "Accept", "application/msgpack") != 0;
    sodium_memzero(auth, sizeof(auth));
    if (body != NULL)
        bad |= cr_http_req_header(&req, "Content-Type", "application/msgpack") != 0 || cr_buf_append(&req.body, body->base, body->len) != 0;
    if (bad || cr_http_send(ids->http, &req, on_relay_answer, rc, NULL) != 0) {
        cr_http_req_free(&req);
        free(rc);
        cb(c, 0, NULL, 0, "the request to the relay could not be made");
        return;
    }
    cr_http_req_free(&req);
}

/* Answers a relay failure: no answer -> 503, the relay's 4xx -> the same status and its message. */
static void answer_relay_error(host_ids_call_t *c, long status, const char *mp, size_t len, const char *err)
{
    cr_span_t e, v;
    cr_mp_item_t it;
    char code[64] = "unavailable", field[64] = "";
    if (status == 0) {
        answer_error(c, 503, "unavailable", NULL, "%s", err != NULL ? err : "the relay is unreachable");
        return;
    }
    if (len != 0 && cr_mp_map_get(mp, len, "error", &e) == 0) {
        if (cr_mp_map_get(e.base, e.len, "code", &v) == 0 && cr_mp_read(v.base, v.base + v.len, &it) != 0 &&
            it.type == MSGPACK_OBJECT_STR && it.bytes.len < sizeof(code))
            snprintf(code, sizeof(code), "%.*s", (int)it.bytes.len, it.bytes.base);
        if (cr_mp_map_get(e.base, e.len, "field", &v) == 0 && cr_mp_read(v.base, v.base + v.len, &it) != 0 &&
            it.type == MSGPACK_OBJECT_STR && it.bytes.len < sizeof(field))
            snprintf(field, sizeof(field), "%.*s", (int)it.bytes.len, it.bytes.base);
    }
    answer_error(c, status >= 500 ? 503 : (int)status, status >= 500 ? "unavailable" : code, field[0] != '\0' ? field : NULL,
                 "%s", err != NULL ? err : "the relay refused");
}

static int mp_str(const char *mp, size_t len, const char *key, char *out, size_t outlen)
{
    cr_span_t v;
    cr_mp_item_t it;
    if (cr_mp_map_get(mp, len, key, &v) != 0 || cr_mp_read(v.base, v.base + v.len, &it) == 0)
        return -1;
    if (it.type == MSGPACK_OBJECT_NIL) {
        out[0] = '\0';
        return 0;
    }
    if (it.type != MSGPACK_OBJECT_STR || it.bytes.len >= outlen)
        return -1;
    memcpy(out, it.bytes.base, it.bytes.len);
    out[it.bytes.len] = '\0';
    return 0;
}

static uint64_t mp_uint(const char *mp, size_t len, const char *key)
{
    cr_span_t v;
    cr_mp_item_t it;
    if (cr_mp_map_get(mp, len, key, &v) != 0 || cr_mp_read(v.base, v.base + v.len, &it) == 0 ||
        it.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return 0;
    return it.u;
}

static int b64_into(unsigned char *out, size_t want, const char *s)
{
    cr_buf_t b;
    int ok;
    cr_buf_init(&b, 4096);
    ok = cr_base64url_decode(&b, s, strlen(s)) == 0 && b.len == want;
    if (ok)
        memcpy(out, b.base, want);
    cr_buf_free(&b);
    return ok ? 0 : -1;
}

/* Reads a relay identity record into *out (keys included). Returns 0 or -1. */
static int record_read(host_identity_t *out, const char *mp, size_t len, char *team, size_t teamlen)
{
    char pk[64], wsk[128], wvk[128];
    memset(out, 0, sizeof(*out));
    if (mp_str(mp, len, "id", out->id, sizeof(out->id)) != 0 || mp_str(mp, len, "name", out->name, sizeof(out->name)) != 0 ||
        mp_str(mp, len, "email", out->email, sizeof(out->email)) != 0 ||
        mp_str(mp, len, "phone", out->phone, sizeof(out->phone)) != 0 || mp_str(mp, len, "pk", pk, sizeof(pk)) != 0 ||
        mp_str(mp, len, "wsk", wsk, sizeof(wsk)) != 0 || mp_str(mp, len, "wvk", wvk, sizeof(wvk)) != 0 ||
        b64_into(out->pk, sizeof(out->pk), pk) != 0 || b64_into(out->sk_wrapped, sizeof(out->sk_wrapped), wsk) != 0 ||
        b64_into(out->vk_wrapped, sizeof(out->vk_wrapped), wvk) != 0)
        return -1;
    out->has_wrapped = 1;
    out->created = mp_uint(mp, len, "created");
    if (team != NULL && mp_str(mp, len, "team", team, teamlen) != 0)
        return -1;
    return 0;
}

/* ---- the team -------------------------------------------------------------------------------------------------- */

static void team_save(host_ids_t *ids, const char *team)
{
    if (strcmp(ids->team, team) == 0 || team[0] == '\0')
        return;
    snprintf(ids->team, sizeof(ids->team), "%s", team);
    if (host_team_name_save(ids->home, team) != 0)
        cr_log(CR_LOG_WARN, "identities: %s", cr_error_last()->message);
}

static void team_load(host_ids_t *ids)
{
    char path[PATH_MAX + 8];
    FILE *fp;
    if (host_team_name_load(ids->home, ids->team, sizeof(ids->team)) == 0)
        return;
    snprintf(path, sizeof(path), "%s/.team", ids->root); /* where hosts before team.name kept it */
    if ((fp = fopen(path, "r")) != NULL) {
        if (fgets(ids->team, sizeof(ids->team), fp) == NULL)
            ids->team[0] = '\0';
        ids->team[strcspn(ids->team, "\r\n")] = '\0';
        fclose(fp);
        if (ids->team[0] != '\0' && host_team_name_save(ids->home, ids->team) != 0) /* moved to <home>/team.name */
            cr_log(CR_LOG_WARN, "identities: %s", cr_error_last()->message);
    }
}

/* ---- resolving who is asked for ------------------------------------------------------------------------------- */

/* Loads the identity key names (id or name) into c->idn, honouring who's reach. Answers and returns -1 when it
 * cannot. */
static int resolve(host_ids_call_t *c, const host_ids_who_t *who, const char *key)
{
    int rc = host_identity_find(&c->idn, c->ids->root, key);
    if (rc == 0 && who != NULL && who->sid != NULL && strcmp(c->idn.name, who->identity != NULL ? who->identity : "") != 0)
        rc = CR_ENOTFOUND; /* another identity than the session's own: as if it did not exist */
    if (rc == CR_ENOTFOUND) {
        answer_error(c, 404, "not_found", "identity", "no identity %s", key);
        return -1;
    }
    if (rc != 0) {
        answer_cr_error(c);
        return -1;
    }
    return 0;
}

/* ---- POST /v1/identities ----------------------------------------------------------------------------------------- */

static void create_post(host_ids_call_t *c);

static void on_create_answer(host_ids_call_t *c, long status, const char *mp, size_t len, const char *err)
{
    host_identity_t rec;
    char team[HOST_IDN_TEAM_MAX + 1];
    cr_buf_t b;
    if (status != 201) {
        activity(c, "identity.create", c->idn.name, status == 0 ? "error: relay unreachable" : "error: refused");
        answer_relay_error(c, status, mp, len, err);
        return;
    }
    if (record_read(&rec, mp, len, team, sizeof(team)) != 0 || strcmp(rec.name, c->idn.name) != 0) {
        answer_error(c, 502, "bad_gateway", NULL, "the relay's answer to the new identity is not its record");
        return;
    }
    team_save(c->ids, team);
    if (host_identity_save(c->ids->root, &rec, 1) != 0) {
        answer_cr_error(c);
        return;
    }
    c->idn = rec;
    activity(c, "identity.create", rec.email, "ok");
    cr_log(CR_LOG_INFO, "identity %s (%s) made: %s%s%s", rec.name, rec.id, rec.email, rec.phone[0] != '\0' ? ", " : "",
           rec.phone);
    cr_buf_init(&b, 4096);
    w_identity(&b, &rec);
    answer_mp(c, 201, &b);
    cr_buf_free(&b);
}

static void on_team_answer(host_ids_call_t *c, long status, const char *mp, size_t len, const char *err)
{
    char team[HOST_IDN_TEAM_MAX + 1];
    if (status != 200) {
        answer_relay_error(c, status, mp, len, err);
        return;
    }
    if (mp_str(mp, len, "team", team, sizeof(team)) != 0 || team[0] == '\0') {
        answer_error(c, 502, "bad_gateway", NULL, "the relay did not say which team this host is in");
        return;
    }
    team_save(c->ids, team);
    create_post(c);
}

static void create_post(host_ids_call_t *c)
{
    host_ids_t *ids = c->ids;
    unsigned char *k = NULL;
    cr_buf_t b;
    int rc;
    if ((rc = host_team_key_load(&k, ids->home)) != 0) {
        answer_cr_error(c);
        return;
    }
    rc = host_identity_keys_new(&c->keys, k, ids->team, c->idn.id);
    host_secure_free(k);
    if (rc != 0) {
        answer_cr_error(c);
        return;
    }
    cr_buf_init(&b, 8192);
    cr_mpw_map(&b, c->email[0] != '\0' ? 7 : 6);
    w_str(&b, "name", c->idn.name);
    w_str(&b, "id", c->idn.id);
    if (c->email[0] != '\0')
        w_str(&b, "email", c->email);
    w_str(&b, "pk", c->keys.pk_b64);
    w_str(&b, "wsk", c->keys.sk_wrapped_b64);
    w_str(&b, "wvk", c->keys.vk_wrapped_b64);
    w_str(&b, "actor", c->actor);
    relay_send(c, "POST", "/v1/identities", &b, on_create_answer);
    cr_buf_free(&b);
}

host_ids_call_t *host_ids_create(host_ids_t *ids, const host_ids_who_t *who, const char *name, const char *email,
                                 host_ids_cb cb, void *data)
{
    host_ids_call_t *c = call_new(ids, who, cb, data);
    host_identity_t existing;
    if (c == NULL)
        return NULL;
    if (who != NULL && who->sid != NULL) {
        answer_error(c, 403, "forbidden", NULL, "a session cannot make identities; its owner can (corral identity create)");
        return NULL;
    }
    if (name == NULL || host_identity_name_check(name) != 0) {
        if (name == NULL)
            answer_error(c, 400, "bad_name", "name", "name is needed");
        else
            answer_cr_error(c);
        return NULL;
    }
    if (email != NULL && strlen(email) > HOST_IDN_EMAIL_MAX) {
        answer_error(c, 400, "bad_request", "email", "email is too long");
        return NULL;
    }
    if (host_identity_load(&existing, ids->root, name) == 0) {
        answer_error(c, 409, "conflict", "name", "an identity named %s exists already", name);
        return NULL;
    }
    snprintf(c->idn.name, sizeof(c->idn.name), "%s", name);
    snprintf(c->email, sizeof(c->email), "%s", email != NULL ? email : "");
    host_identity_id_new(c->idn.id);
    if (ids->http == NULL) {
        answer_error(c, 503, "unavailable", "relay.url",
                     "identities live on the relay: run corral up --relay URL --token TOKEN first");
        return NULL;
    }
    if (ids->team[0] == '\0')
        relay_send(c, "GET", "/v1/identities", NULL, on_team_answer);
    else
        create_post(c);
    return c;
}

/* ---- GET /v1/identities[/{key}], /v1/whoami --------------------------------------------------------------------- */

host_ids_call_t *host_ids_list(host_ids_t *ids, const host_ids_who_t *who, host_ids_cb cb, void *data)
{
    host_ids_call_t *c = call_new(ids, who, cb, data);
    host_identity_t *list = NULL;
    size_t n = 0, shown = 0;
    cr_buf_t b;
    if (c == NULL)
        return NULL;
    if (host_identity_list(&list, &n, ids->root) != 0) {
        answer_cr_error(c);
        return NULL;
    }
    for (size_t i = 0; i < n; ++i)
        shown += who == NULL || who->sid == NULL || strcmp(list[i].name, who->identity != NULL ? who->identity : "") == 0;
    cr_buf_init(&b, 16u << 20);
    cr_mpw_map(&b, 1);
    CR_MPW_LIT(&b, "identities");
    cr_mpw_array(&b, (uint32_t)shown);
    for (size_t i = 0; i < n; ++i)
        if (who == NULL || who->sid == NULL || strcmp(list[i].name, who->identity != NULL ? who->identity : "") == 0)
            w_identity(&b, &list[i]);
    free(list);
    answer_mp(c, 200, &b);
    cr_buf_free(&b);
    return NULL;
}

static void on_get_answer(host_ids_call_t *c, long status, const char *mp, size_t len, const char *err)
{
    host_identity_t rec;
    char team[HOST_IDN_TEAM_MAX + 1];
    cr_buf_t b;
    if (status != 200) {
        if (status == 404)
            answer_error(c, 404, "not_found", "identity", "no identity %s", c->key);
        else
            answer_relay_error(c, status, mp, len, err);
        return;
    }
    if (record_read(&rec, mp, len, team, sizeof(team)) != 0) {
        answer_error(c, 502, "bad_gateway", NULL, "the relay's identity record could not be read");
        return;
    }
    team_save(c->ids, team);
    if (host_identity_save(c->ids->root, &rec, 1) != 0 && cr_error_last()->code != CR_EEXISTS) {
        answer_cr_error(c);
        return;
    }
    cr_buf_init(&b, 4096);
    w_identity(&b, &rec);
    answer_mp(c, 200, &b);
    cr_buf_free(&b);
}

host_ids_call_t *host_ids_get(host_ids_t *ids, const host_ids_who_t *who, const char *key, host_ids_cb cb, void *data)
{
    host_ids_call_t *c = call_new(ids, who, cb, data);
    cr_buf_t b;
    int rc;
    if (c == NULL)
        return NULL;
    rc = host_identity_find(&c->idn, ids->root, key);
    if (rc == CR_ENOTFOUND && (who == NULL || who->sid == NULL) && ids->http != NULL &&
        host_identity_name_check(key) == 0) {
        /* made by another host of the team: the relay has it, and this host's team key opens it */
        char path[200];
        snprintf(c->key, sizeof(c->key), "%s", key);
        snprintf(path, sizeof(path), "/v1/identities/%s", key);
        relay_send(c, "GET", path, NULL, on_get_answer);
        return c;
    }
    if (resolve(c, who, key) != 0)
        return NULL;
    cr_buf_init(&b, 4096);
    w_identity(&b, &c->idn);
    answer_mp(c, 200, &b);
    cr_buf_free(&b);
    return NULL;
}

host_ids_call_t *host_ids_whoami(host_ids_t *ids, const host_ids_who_t *who, const char *session_name, host_ids_cb cb,
                                 void *data)
{
    host_ids_call_t *c = call_new(ids, who, cb, data);
    cr_buf_t b;
    if (c == NULL)
        return NULL;
    cr_buf_init(&b, 4096);
    cr_mpw_map(&b, 2);
    CR_MPW_LIT(&b, "session");
    if (session_name != NULL)
        cr_mpw_str(&b, session_name, strlen(session_name));
    else
        cr_mpw_nil(&b);
    CR_MPW_LIT(&b, "identity");
    if (who != NULL && who->identity != NULL && who->identity[0] != '\0' &&
        host_identity_load(&c->idn, ids->root, who->identity) == 0)
        w_identity(&b, &c->idn);
    else
        cr_mpw_nil(&b);
    answer_mp(c, 200, &b);
    cr_buf_free(&b);
    return NULL;
}

/* ---- the vault ----------------------------------------------------------------------------------------------- */

/* Unwraps the identity's vault key with the team key k (NULL: read from team.key for this call). Answers and returns
 * NULL when it cannot. */
static unsigned char *vault_key(host_ids_call_t *c, const unsigned char *team_key)
{
    unsigned char *k = NULL, *vk = NULL;
    int rc;
    if (!c->idn.has_wrapped || c->ids->team[0] == '\0') {
        answer_error(c, 500, "internal", NULL, "identity %s has no vault key here (its record lacks the wrapped keys)",
                     c->idn.name);
        return NULL;
    }
    if (team_key == NULL && (rc = host_team_key_load(&k, c->ids->home)) != 0) {
        answer_cr_error(c);
        return NULL;
    }
    rc = host_identity_unwrap_vk(&vk, team_key != NULL ? team_key : k, c->ids->team, c->idn.id, c->idn.vk_wrapped,
                                 sizeof(c->idn.vk_wrapped));
    host_secure_free(k);
    if (rc != 0) {
        answer_error(c, 500, "bad_seal", NULL, "identity %s's vault key does not open with this host's team key",
                     c->idn.name);
        return NULL;
    }
    return vk;
}

static void secret_put(host_ids_call_t *c);

/* The injection cache: <root>/<name>/inject/<KEY> holds "<version> <sealed value, base64url>" of each secret marked for
 * injection, the same ciphertext the relay keeps, so that an agent starts with its secrets at once (even with the
 * relay away) without this host holding any plaintext at rest. keep 0 removes the key's entry. */
static void inject_cache(host_ids_call_t *c, int keep)
{
    char dir[PATH_MAX + 80], line[HOST_SECRET_BLOB_MAX * 2];
    snprintf(dir, sizeof(dir), "%s/%s/inject", c->ids->root, c->idn.name);
    if (!keep || c->blob == NULL) {
        char path[sizeof(dir) + HOST_SECRET_KEY_MAX + 2];
        snprintf(path, sizeof(path), "%s/%s", dir, c->key);
        if (unlink(path) != 0 && errno != ENOENT)
            cr_log(CR_LOG_WARN, "identity %s: cannot remove %s: %s", c->idn.name, path, strerror(errno));
        return;
    }
    int n = snprintf(line, sizeof(line), "%" PRIu64 " %s\n", c->version, c->blob);
    if (n <= 0 || (size_t)n >= sizeof(line) || cr_mkdir_p(dir, 0700) != 0 ||
        cr_write_atomic(dir, c->key, line, (size_t)n, 0600, 1) != 0)
        cr_log(CR_LOG_WARN, "identity %s: secret %s is not cached for injection: %s", c->idn.name, c->key,
               cr_error_last()->message);
}

static void on_put_answer(host_ids_call_t *c, long status, const char *mp, size_t len, const char *err)
{
    char detail[200];
    snprintf(detail, sizeof(detail), "%s v%" PRIu64, c->key, c->version);
    if (status == 409 && ++c->tries < 4) { /* written meanwhile by another: read the version again */
        c->version = 0;
        secret_put(c);
        return;
    }
    if (status != 201) {
        activity(c, "secret.write", c->key, status == 0 ? "error: relay unreachable" : "error: refused");
        answer_relay_error(c, status, mp, len, err);
        return;
    }
    activity(c, "secret.write", detail, "ok");
    inject_cache(c, c->inject);
    cr_buf_t b;
    cr_buf_init(&b, 1024);
    cr_mpw_map(&b, 2);
    w_str(&b, "key", c->key);
    CR_MPW_LIT(&b, "version"), cr_mpw_uint(&b, c->version);
    answer_mp(c, 201, &b);
    cr_buf_free(&b);
}

/* Finds the current version in a list answer, then seals version + 1. */
static void on_put_list(host_ids_call_t *c, long status, const char *mp, size_t len, const char *err)
{
    cr_span_t list;
    cr_mp_item_t it;
    uint64_t cur = 0;
    unsigned char *vk;
    cr_buf_t blob, b;
    char *b64;
    char path[300];
    if (status != 200) {
        answer_relay_error(c, status, mp, len, err);
        return;
    }
    if (cr_mp_map_get(mp, len, "secrets", &list) == 0) {
        const char *p = list.base, *end = list.base + list.len;
        size_t hl = cr_mp_read(p, end, &it);
        if (hl != 0 && it.type == MSGPACK_OBJECT_ARRAY) {
            uint32_t n = it.count;
            p += hl;
            for (uint32_t i = 0; i < n && p != NULL; ++i) {
                const char *next = cr_mp_skip(p, end);
                char key[HOST_SECRET_KEY_MAX + 1];
                if (next == NULL)
                    break;
                if (mp_str(p, (size_t)(next - p), "key", key, sizeof(key)) == 0 && strcmp(key, c->key) == 0)
                    cur = mp_uint(p, (size_t)(next - p), "version");
                p = next;
            }
        }
    }
    c->version = cur + 1;
    if ((vk = vault_key(c, NULL)) == NULL)
        return;
    cr_buf_init(&blob, HOST_SECRET_BLOB_MAX + 64);
    int rc = host_secret_seal(&blob, vk, c->ids->team, c->idn.id, c->key, c->version, c->value, c->value_len);
    host_secure_free(vk);
    if (rc != 0) {
        cr_buf_free(&blob);
        answer_cr_error(c);
        return;
    }
    if ((b64 = malloc(cr_base64url_encoded_len(blob.len) + 1)) == NULL) {
        cr_buf_free(&blob);
        answer_error(c, 500, "internal", NULL, "out of memory");
        return;
    }
    cr_base64url_encode(b64, blob.base, blob.len);
    cr_buf_free(&blob);
    free(c->blob);
    c->blob = strdup(b64);
    cr_buf_init(&b, HOST_SECRET_BLOB_MAX * 2);
    cr_mpw_map(&b, 4);
    CR_MPW_LIT(&b, "version"), cr_mpw_uint(&b, c->version);
    w_str(&b, "c", b64);
    CR_MPW_LIT(&b, "inject"), cr_mpw_bool(&b, c->inject);
    w_str(&b, "actor", c->actor);
    free(b64);
    snprintf(path, sizeof(path), "/v1/identities/%s/secrets/%s", c->idn.name, c->key);
    relay_send(c, "PUT", path, &b, on_put_answer);
    cr_buf_free(&b);
}

static void secret_put(host_ids_call_t *c)
{
    char path[200];
    snprintf(path, sizeof(path), "/v1/identities/%s/secrets", c->idn.name);
    relay_send(c, "GET", path, NULL, on_put_list);
}

host_ids_call_t *host_ids_secret_set(host_ids_t *ids, const host_ids_who_t *who, const char *key_idn, const char *key,
                                     const char *value, size_t len, int inject, host_ids_cb cb, void *data)
{
    host_ids_call_t *c = call_new(ids, who, cb, data);
    if (c == NULL || resolve(c, who, key_idn) != 0)
        return NULL;
    if (key == NULL || host_secret_key_check(key) != 0) {
        if (key == NULL)
            answer_error(c, 400, "bad_name", "key", "key is needed");
        else
            answer_cr_error(c);
        return NULL;
    }
    if (value == NULL || len > HOST_SECRET_VALUE_MAX) {
        answer_error(c, value == NULL ? 400 : 413, value == NULL ? "bad_request" : "too_large", "value",
                     value == NULL ? "value is needed" : "a secret's value is at most %u bytes", HOST_SECRET_VALUE_MAX);
        return NULL;
    }
    if ((c->value = sodium_malloc(len + 1)) == NULL) {
        answer_error(c, 500, "internal", NULL, "out of memory");
        return NULL;
    }
    memcpy(c->value, value, len);
    c->value[len] = '\0';
    c->value_len = len;
    c->inject = inject;
    snprintf(c->key, sizeof(c->key), "%s", key);
    secret_put(c);
    return c;
}

static void on_get_secret(host_ids_call_t *c, long status, const char *mp, size_t len, const char *err)
{
    char *b64 = NULL, *value = NULL;
    size_t vlen = 0;
    cr_span_t v;
    cr_mp_item_t it;
    cr_buf_t blob, b;
    unsigned char *vk;
    uint64_t version;
    if (status != 200) {
        activity(c, "secret.read", c->key, status == 404 ? "error: not found" : "error: relay");
        answer_relay_error(c, status, mp, len, err);
        return;
    }
    version = mp_uint(mp, len, "version");
    if (cr_mp_map_get(mp, len, "c", &v) != 0 || cr_mp_read(v.base, v.base + v.len, &it) == 0 || it.type != MSGPACK_OBJECT_STR ||
        version == 0) {
        answer_error(c, 502, "bad_gateway", NULL, "the relay's answer holds no sealed value");
        return;
    }
    cr_buf_init(&blob, HOST_SECRET_BLOB_MAX + 64);
    if (cr_base64url_decode(&blob, it.bytes.base, it.bytes.len) != 0) {
        cr_buf_free(&blob);
        answer_error(c, 502, "bad_gateway", NULL, "the relay's sealed value is not base64url");
        return;
    }
    if ((vk = vault_key(c, NULL)) == NULL) {
        cr_buf_free(&blob);
        return;
    }
    int rc = host_secret_open(&value, &vlen, vk, c->ids->team, c->idn.id, c->key, version, blob.base, blob.len);
    host_secure_free(vk);
    cr_buf_free(&blob);
    if (rc != 0) {
        activity(c, "secret.read", c->key, "error: does not open");
        answer_error(c, 500, "bad_seal", "key", "secret %s (version %" PRIu64 ") does not open with identity %s's vault key",
                     c->key, version, c->idn.name);
        return;
    }
    activity(c, "secret.read", c->key, "ok");
    cr_buf_init(&b, HOST_SECRET_VALUE_MAX * 2 + 1024);
    cr_mpw_map(&b, 3);
    w_str(&b, "key", c->key);
    CR_MPW_LIT(&b, "value");
    if (cr_utf8_valid(value, vlen)) {
        cr_mpw_str(&b, value, vlen);
    } else if ((b64 = sodium_malloc(cr_base64_encoded_len(vlen) + 1)) != NULL) {
        /* not text: the JSON answer carries it as {"$bin": base64} */
        cr_mpw_map(&b, 1);
        CR_MPW_LIT(&b, "$bin");
        cr_mpw_str(&b, b64, cr_base64_encode(b64, value, vlen));
        host_secure_free(b64);
    } else {
        cr_mpw_nil(&b);
    }
    CR_MPW_LIT(&b, "version"), cr_mpw_uint(&b, version);
    host_secure_free(value);
    answer_mp(c, 200, &b);
    sodium_memzero(b.base, b.len);
    cr_buf_free(&b);
}

host_ids_call_t *host_ids_secret_get(host_ids_t *ids, const host_ids_who_t *who, const char *key_idn, const char *key,
                                     uint64_t version, host_ids_cb cb, void *data)
{
    host_ids_call_t *c = call_new(ids, who, cb, data);
    char path[400];
    if (c == NULL || resolve(c, who, key_idn) != 0)
        return NULL;
    if (host_secret_key_check(key) != 0) {
        answer_cr_error(c);
        return NULL;
    }
    snprintf(c->key, sizeof(c->key), "%s", key);
    if (version != 0)
        snprintf(path, sizeof(path), "/v1/identities/%s/secrets/%s?version=%" PRIu64 "&actor=%s", c->idn.name, key, version,
                 c->actor);
    else
        snprintf(path, sizeof(path), "/v1/identities/%s/secrets/%s?actor=%s", c->idn.name, key, c->actor);
    relay_send(c, "GET", path, NULL, on_get_secret);
    return c;
}

static void on_passthrough(host_ids_call_t *c, long status, const char *mp, size_t len, const char *err)
{
    if (status < 200 || status >= 300) {
        answer_relay_error(c, status, mp, len, err);
        return;
    }
    cr_buf_t b;
    cr_buf_init(&b, len + 1);
    cr_buf_append(&b, mp, len);
    answer_mp(c, (int)status, &b);
    cr_buf_free(&b);
}

host_ids_call_t *host_ids_secret_list(host_ids_t *ids, const host_ids_who_t *who, const char *key_idn, host_ids_cb cb,
                                      void *data)
{
    host_ids_call_t *c = call_new(ids, who, cb, data);
    char path[200];
    if (c == NULL || resolve(c, who, key_idn) != 0)
        return NULL;
    snprintf(path, sizeof(path), "/v1/identities/%s/secrets", c->idn.name);
    relay_send(c, "GET", path, NULL, on_passthrough);
    return c;
}

static void on_deleted(host_ids_call_t *c, long status, const char *mp, size_t len, const char *err)
{
    activity(c, "secret.delete", c->key, status == 200 ? "ok" : "error");
    if (status == 200)
        inject_cache(c, 0);
    on_passthrough(c, status, mp, len, err);
}

host_ids_call_t *host_ids_secret_delete(host_ids_t *ids, const host_ids_who_t *who, const char *key_idn, const char *key,
                                        host_ids_cb cb, void *data)
{
    host_ids_call_t *c = call_new(ids, who, cb, data);
    char path[400];
    if (c == NULL || resolve(c, who, key_idn) != 0)
        return NULL;
    if (host_secret_key_check(key) != 0) {
        answer_cr_error(c);
        return NULL;
    }
    snprintf(c->key, sizeof(c->key), "%s", key);
    snprintf(path, sizeof(path), "/v1/identities/%s/secrets/%s?actor=%s", c->idn.name, key, c->actor);
    relay_send(c, "DELETE", path, NULL, on_deleted);
    return c;
}

/* ---- the inbox: fetching from the relay ------------------------------------------------------------------------ */

static void waits_try(host_ids_t *ids, const char *name);

static ids_fetch_t *fetch_state(host_ids_t *ids, const char *name)
{
    for (size_t i = 0; i < ids->nfetch; ++i)
        if (strcmp(ids->fetch[i].name, name) == 0)
            return &ids->fetch[i];
    if (ids->nfetch == FETCH_MAX)
        return NULL;
    ids_fetch_t *f = &ids->fetch[ids->nfetch++];
    memset(f, 0, sizeof(*f));
    snprintf(f->name, sizeof(f->name), "%s", name);
    return f;
}

static void cursor_path(host_ids_t *ids, const char *name, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/%s/inbox.cursor", ids->root, name);
}

static void fetch_start(host_ids_t *ids, const char *name);

/* Tells each session bound to the identity that a message came: an inbox.message event (pri 1) whose body {channel,
 * from, subject} is sealed with the team key (DESIGN.md §2.1), so the relay, which stores and fans out events, never
 * holds a mail's words in plaintext; a paired phone opens it with K. */
static void announce(host_ids_t *ids, const host_identity_t *idn, const host_inbox_msg_t *m)
{
    unsigned char *k = NULL;
    if (ids->team[0] == '\0' || host_team_key_load(&k, ids->home) != 0)
        return;
    for (host_session_t *s = ids->host->sessions; s != NULL; s = s->next) {
        cr_buf_t body, box, bin;
        uint8_t ad[CR_SEAL_AD_MAX];
        static const char kind[] = "inbox.message";
        if (strcmp(s->rec->identity, idn->name) != 0)
            continue;
        cr_buf_init(&body, 64u << 10);
        cr_buf_init(&box, 128u << 10);
        cr_buf_init(&bin, 128u << 10);
        cr_mpw_map(&body, 3);
        w_str(&body, "channel", strcmp(m->kind, "sms") == 0 ? "sms" : "email");
        CR_MPW_LIT(&body, "from"), cr_mpw_str(&body, m->from, strnlen(m->from, 1000));
        CR_MPW_LIT(&body, "subject"), cr_mpw_str(&body, m->subject, strnlen(m->subject, 1000));
        size_t adlen = cr_seal_ad_event(ad, ids->team, (cr_span_t){s->rec->sid, strlen(s->rec->sid)}, s->rec->last_seq + 1,
                                        (cr_span_t){kind, sizeof(kind) - 1});
        if (cr_seal(&box, k, ad, adlen, body.base, body.len, NULL) == 0) {
            /* a msgpack bin: the store and the relay see a sealed body */
            uint8_t h[5] = {0xc6, (uint8_t)(box.len >> 24), (uint8_t)(box.len >> 16), (uint8_t)(box.len >> 8), (uint8_t)box.len};
            if (cr_buf_append(&bin, h, 5) == 0 && cr_buf_append(&bin, box.base, box.len) == 0)
                host_emit(s, kind, 1, bin.base, bin.len);
        }
        sodium_memzero(body.base, body.len);
        cr_buf_free(&body);
        cr_buf_free(&box);
        cr_buf_free(&bin);
    }
    host_secure_free(k);
}

/* A page of sealed messages: open, store, move the cursor, wake the long polls, and fetch on when it was full. */
static void on_inbox_page(host_ids_call_t *c, long status, const char *mp, size_t len, const char *err)
{
    host_ids_t *ids = c->ids;
    ids_fetch_t *fs = fetch_state(ids, c->idn.name);
    cr_span_t list;
    cr_mp_item_t it;
    unsigned char *k = NULL, *sk = NULL;
    char last[64] = "", path[PATH_MAX + HOST_IDN_NAME_MAX + 2];
    size_t stored = 0, n = 0;
    int again = 0;
    if (status != 200) {
        cr_log(CR_LOG_WARN, "identity %s: inbox fetch failed: %s", c->idn.name, err != NULL ? err : "?");
        goto done;
    }
    if (host_team_key_load(&k, ids->home) != 0 ||
        host_identity_unwrap_sk(&sk, k, ids->team, c->idn.id, c->idn.sk_wrapped, sizeof(c->idn.sk_wrapped)) != 0) {
        cr_log(CR_LOG_ERROR, "identity %s: its inbox key does not open with this host's team key", c->idn.name);
        goto done;
    }
    if (cr_mp_map_get(mp, len, "messages", &list) == 0) {
        const char *p = list.base, *end = list.base + list.len;
        size_t hl = cr_mp_read(p, end, &it);
        if (hl != 0 && it.type == MSGPACK_OBJECT_ARRAY) {
            n = it.count;
            p += hl;
            for (size_t i = 0; i < n; ++i) {
                const char *next = cr_mp_skip(p, end);
                char id[64];
                cr_span_t bv;
                cr_mp_item_t bi;
                cr_buf_t sealed, plain;
                host_inbox_msg_t m;
                if (next == NULL)
                    break;
                if (mp_str(p, (size_t)(next - p), "id", id, sizeof(id)) != 0 ||
                    cr_mp_map_get(p, (size_t)(next - p), "b", &bv) != 0 || cr_mp_read(bv.base, bv.base + bv.len, &bi) == 0 ||
                    bi.type != MSGPACK_OBJECT_STR) {
                    p = next;
                    continue;
                }
                cr_buf_init(&sealed, HOST_INBOX_MSG_MAX + 1024);
                cr_buf_init(&plain, HOST_INBOX_MSG_MAX);
                memset(&m, 0, sizeof(m));
                if (cr_base64url_decode(&sealed, bi.bytes.base, bi.bytes.len) != 0 ||
                    host_inbox_open(&plain, sealed.base, sealed.len, c->idn.pk, sk) != 0 ||
                    host_inbox_msg_from_mp(&m, plain.base, plain.len) != 0) {
                    cr_log(CR_LOG_ERROR, "identity %s: inbox message %s does not open (%s); skipped", c->idn.name, id,
                           cr_error_last()->message);
                } else if (host_inbox_save(ids->root, c->idn.name, &m) < 0) {
                    cr_log(CR_LOG_ERROR, "identity %s: message %s not stored: %s", c->idn.name, id, cr_error_last()->message);
                    host_inbox_msg_clear(&m);
                    sodium_memzero(plain.base, plain.len);
                    cr_buf_free(&plain);
                    cr_buf_free(&sealed);
                    break; /* the cursor stays before it: fetched again next time */
                } else {
                    ++stored;
                    announce(ids, &c->idn, &m);
                }
                host_inbox_msg_clear(&m);
                if (plain.base != NULL)
                    sodium_memzero(plain.base, plain.len);
                cr_buf_free(&plain);
                cr_buf_free(&sealed);
                snprintf(last, sizeof(last), "%s", id);
                p = next;
            }
        }
    }
    if (last[0] != '\0') {
        snprintf(path, sizeof(path), "%s/%s", ids->root, c->idn.name);
        if (cr_write_atomic(path, "inbox.cursor", last, strlen(last), 0600, 1) != 0)
            cr_log(CR_LOG_WARN, "identity %s: %s", c->idn.name, cr_error_last()->message);
        cr_log(CR_LOG_INFO, "identity %s: %zu new message%s stored", c->idn.name, stored, stored == 1 ? "" : "s");
    }
    again = n >= (size_t)atoi(INBOX_PAGE);
done:
    host_secure_free(sk);
    host_secure_free(k);
    if (fs != NULL) {
        fs->busy = 0;
        again |= fs->again;
        fs->again = 0;
    }
    if (stored > 0)
        waits_try(ids, c->idn.name);
    char name[HOST_IDN_NAME_MAX + 1];
    snprintf(name, sizeof(name), "%s", c->idn.name);
    c->detached = 1;
    call_free(c);
    if (again && !ids->closing)
        fetch_start(ids, name);
}

static void fetch_start(host_ids_t *ids, const char *name)
{
    ids_fetch_t *fs = fetch_state(ids, name);
    host_ids_call_t *c;
    char cursor[64] = "", path[PATH_MAX + 32], url[300];
    FILE *fp;
    if (ids->http == NULL || ids->closing)
        return;
    if (fs != NULL && fs->busy) {
        fs->again = 1;
        return;
    }
    if ((c = call_new(ids, NULL, NULL, NULL)) == NULL)
        return;
    c->detached = 1;
    if (host_identity_load(&c->idn, ids->root, name) != 0 || !c->idn.has_wrapped || ids->team[0] == '\0') {
        call_free(c);
        return; /* not one of this host's identities (yet) */
    }
    cursor_path(ids, name, path, sizeof(path));
    if ((fp = fopen(path, "r")) != NULL) {
        if (fgets(cursor, sizeof(cursor), fp) == NULL)
            cursor[0] = '\0';
        cursor[strcspn(cursor, "\r\n")] = '\0';
        fclose(fp);
    }
    if (fs != NULL)
        fs->busy = 1;
    snprintf(url, sizeof(url), "/v1/identities/%s/inbox?limit=" INBOX_PAGE "%s%s", name, cursor[0] != '\0' ? "&after=" : "",
             cursor);
    relay_send(c, "GET", url, NULL, on_inbox_page);
}

void host_ids_fetch(host_ids_t *ids, const char *idn)
{
    host_identity_t *list = NULL;
    size_t n = 0;
    if (idn != NULL) {
        if (host_identity_name_check(idn) == 0)
            fetch_start(ids, idn);
        return;
    }
    if (host_identity_list(&list, &n, ids->root) != 0)
        return;
    for (size_t i = 0; i < n; ++i)
        fetch_start(ids, list[i].name);
    free(list);
}

/* ---- the inbox: long polls ------------------------------------------------------------------------------------- */

static void on_wait_closed(uv_handle_t *h)
{
    free(h->data);
}

/* Takes w out of the list and closes its timer (w is freed afterwards); its call stays. */
static void wait_drop(host_ids_t *ids, ids_wait_t *w)
{
    for (ids_wait_t **pp = &ids->waits; *pp != NULL; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    uv_timer_stop(&w->timer);
    w->timer.data = w;
    uv_close((uv_handle_t *)&w->timer, on_wait_closed);
}

typedef struct st_given_t {
    host_inbox_msg_t m;
    int otp;
} given_t;

static void on_given_audited(host_ids_call_t *c, long status, const char *mp, size_t len, const char *err);

/* Gives m to the call's session: the audit record first (an inbox read the trail cannot show does not happen), then
 * the durable mark, then the answer. Takes m over. Returns 1 when the call was answered (and freed) already, 0 when
 * the answer comes later. */
static int give(host_ids_call_t *c, host_inbox_msg_t *m, int otp)
{
    given_t *g = calloc(1, sizeof(*g));
    cr_buf_t b;
    if (g == NULL) {
        host_inbox_msg_clear(m);
        answer_error(c, 500, "internal", NULL, "out of memory");
        return 1;
    }
    g->m = *m, g->otp = otp;
    memset(m, 0, sizeof(*m));
    c->given = g;
    if (c->ids->http == NULL || c->ids->closing) { /* no relay: the local activity log is the trail */
        on_given_audited(c, 201, NULL, 0, NULL);
        return 1;
    }
    cr_buf_init(&b, 4096);
    cr_mpw_map(&b, 1);
    CR_MPW_LIT(&b, "records");
    cr_mpw_array(&b, 1);
    cr_mpw_map(&b, 5);
    w_str(&b, "actor", c->actor);
    w_str(&b, "idn", c->idn.name);
    w_str(&b, "op", otp ? "inbox.otp" : "inbox.read");
    w_str(&b, "key", g->m.id);
    w_str(&b, "outcome", "ok");
    relay_send(c, "POST", "/v1/audit", &b, on_given_audited);
    cr_buf_free(&b);
    return 0;
}

static void on_given_audited(host_ids_call_t *c, long status, const char *mp, size_t len, const char *err)
{
    given_t *g = c->given;
    cr_buf_t j;
    c->given = NULL;
    if (status != 201 && c->ids->http != NULL) {
        cr_log(CR_LOG_WARN, "identity %s: the inbox read could not be audited: %s", c->idn.name, err != NULL ? err : "?");
        host_inbox_msg_clear(&g->m);
        free(g);
        answer_relay_error(c, status, mp, len, err);
        return;
    }
    if (host_inbox_mark_given(c->ids->root, c->idn.name, c->sid[0] != '\0' ? c->sid : OWNER_SID, g->m.id) != 0) {
        host_inbox_msg_clear(&g->m);
        free(g);
        answer_cr_error(c);
        return;
    }
    activity(c, g->otp ? "inbox.otp" : "inbox.read", g->m.id, "ok");
    cr_buf_init(&j, HOST_INBOX_JSON_MAX + 1024);
    if (g->otp) {
        cr_buf_t b;
        cr_buf_init(&b, 64u << 10);
        cr_mpw_map(&b, 3);
        w_str(&b, "otp", g->m.otp != NULL ? g->m.otp : "");
        CR_MPW_LIT(&b, "candidates");
        cr_mpw_array(&b, (uint32_t)g->m.notp_candidates);
        for (size_t i = 0; i < g->m.notp_candidates; ++i)
            cr_mpw_str(&b, g->m.otp_candidates[i], strlen(g->m.otp_candidates[i]));
        w_str(&b, "message", g->m.id);
        host_inbox_msg_clear(&g->m);
        free(g);
        cr_buf_free(&j);
        answer_mp(c, 200, &b);
        cr_buf_free(&b);
        return;
    }
    int bad = cr_buf_append(&j, "{\"message\":", 11) != 0 || host_inbox_msg_to_json(&j, &g->m) != 0 ||
              cr_buf_append(&j, "}", 1) != 0;
    host_inbox_msg_clear(&g->m);
    free(g);
    if (bad)
        answer_error(c, 500, "internal", NULL, "the message could not be rendered");
    else
        answer_json(c, 200, j.base, j.len);
    cr_buf_free(&j);
}

/* Looks for the wait's message. Returns 0 when there is none yet; else the call is no longer the caller's: 1 (answered
 * and freed: given, or an error) or 2 (being given: the answer comes later). */
static int wait_find(host_ids_call_t *c, const host_inbox_filter_t *f, int otp)
{
    host_inbox_msg_t m;
    int rc;
    memset(&m, 0, sizeof(m));
    rc = host_inbox_find(&m, c->ids->root, c->idn.name, f);
    if (rc == CR_ENOTFOUND) {
        host_inbox_msg_clear(&m);
        if (f->since_id != NULL && f->since_id[0] != '\0' && strstr(cr_error_last()->message, "no message") != NULL) {
            answer_error(c, 404, "not_found", "since", "%s", cr_error_last()->message);
            return 1;
        }
        return 0;
    }
    if (rc != 0) {
        host_inbox_msg_clear(&m);
        answer_cr_error(c);
        return 1;
    }
    return give(c, &m, otp) ? 1 : 2;
}

static void waits_try(host_ids_t *ids, const char *name)
{
    ids_wait_t *w = ids->waits, *next;
    for (; w != NULL; w = next) {
        next = w->next;
        if (strcmp(w->name, name) != 0)
            continue;
        host_ids_call_t *c = w->call;
        int rc = wait_find(c, &w->f, w->otp);
        if (rc != 0) {
            wait_drop(ids, w); /* the call is answered (or being answered) */
        }
    }
}

static void on_wait_timer(uv_timer_t *t)
{
    ids_wait_t *w = t->data;
    host_ids_call_t *c = w->call;
    host_ids_t *ids = c->ids;
    wait_drop(ids, w);
    answer_error(c, 408, "timeout", NULL, "no matching message within %" PRIu64 " s", (uint64_t)(t->timeout / 1000));
}

host_ids_call_t *host_ids_inbox_wait(host_ids_t *ids, const host_ids_who_t *who, const char *key_idn,
                                     const host_inbox_filter_t *f, int otp, uint64_t wait_ms, host_ids_cb cb, void *data)
{
    host_ids_call_t *c = call_new(ids, who, cb, data);
    ids_wait_t *w;
    int rc;
    if (c == NULL || resolve(c, who, key_idn) != 0)
        return NULL;
    if ((w = calloc(1, sizeof(*w))) == NULL) {
        answer_error(c, 500, "internal", NULL, "out of memory");
        return NULL;
    }
    w->call = c;
    w->otp = otp;
    snprintf(w->name, sizeof(w->name), "%s", c->idn.name);
    snprintf(w->subject, sizeof(w->subject), "%s", f->subject_contains != NULL ? f->subject_contains : "");
    snprintf(w->from, sizeof(w->from), "%s", f->from_contains != NULL ? f->from_contains : "");
    snprintf(w->since_id, sizeof(w->since_id), "%s", f->since_id != NULL ? f->since_id : "");
    snprintf(w->session, sizeof(w->session), "%s", c->sid[0] != '\0' ? c->sid : OWNER_SID);
    w->f.subject_contains = w->subject[0] != '\0' ? w->subject : NULL;
    w->f.from_contains = w->from[0] != '\0' ? w->from : NULL;
    w->f.since_id = w->since_id[0] != '\0' ? w->since_id : NULL;
    w->f.since_ms = f->since_ms;
    w->f.session = w->session[0] != '\0' ? w->session : NULL;
    w->f.newest = otp;
    w->f.need_otp = otp;
    if ((rc = wait_find(c, &w->f, otp)) != 0 || wait_ms == 0) {
        free(w);
        if (rc == 0)
            answer_error(c, 408, "timeout", NULL, "no matching message");
        return rc == 2 ? c : NULL; /* being given: the audit call answers later */
    }
    if (wait_ms > HOST_IDS_WAIT_MAX_MS)
        wait_ms = HOST_IDS_WAIT_MAX_MS;
    uv_timer_init(ids->loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, on_wait_timer, wait_ms, 0);
    w->next = ids->waits;
    ids->waits = w;
    /* mail may be waiting on the relay that no note told of (corrald was down): look now */
    fetch_start(ids, c->idn.name);
    return c;
}

host_ids_call_t *host_ids_inbox_list(host_ids_t *ids, const host_ids_who_t *who, const char *key_idn, size_t limit,
                                     host_ids_cb cb, void *data)
{
    host_ids_call_t *c = call_new(ids, who, cb, data);
    host_inbox_msg_t *list = NULL;
    size_t n = 0;
    cr_buf_t j;
    if (c == NULL || resolve(c, who, key_idn) != 0)
        return NULL;
    if (host_inbox_list(&list, &n, ids->root, c->idn.name, NULL) != 0) {
        answer_cr_error(c);
        return NULL;
    }
    cr_buf_init(&j, 256u << 20);
    int bad = cr_buf_append(&j, "{\"messages\":[", 13) != 0;
    for (size_t i = 0, shown = 0; i < n && shown < limit && !bad; ++i, ++shown) {
        if (shown > 0)
            bad |= cr_buf_append(&j, ",", 1) != 0;
        bad |= host_inbox_msg_to_json(&j, &list[n - 1 - i]) != 0;
    }
    bad |= cr_buf_append(&j, "]}", 2) != 0;
    host_inbox_list_free(list, n);
    activity(c, "inbox.list", NULL, bad ? "error" : "ok");
    if (bad)
        answer_error(c, 500, "internal", NULL, "the inbox could not be rendered");
    else
        answer_json(c, 200, j.base, j.len);
    cr_buf_free(&j);
    return NULL;
}

void host_ids_detach(host_ids_call_t *c)
{
    host_ids_t *ids;
    if (c == NULL)
        return;
    c->detached = 1;
    ids = c->ids;
    /* a long poll whose client left ends now */
    for (ids_wait_t *w = ids->waits; w != NULL; w = w->next)
        if (w->call == c) {
            wait_drop(ids, w);
            call_free(c);
            return;
        }
}

static void on_audit_posted(host_ids_call_t *c, long status, const char *mp, size_t len, const char *err)
{
    (void)mp, (void)len;
    if (status != 201)
        cr_log(CR_LOG_WARN, "identity %s: an audit record did not reach the relay: %s (it is in activity.csv)", c->idn.name,
               err != NULL ? err : "?");
    call_free(c);
}

/* Sends one audit record to the relay without waiting (the caller has it in activity.csv already). key is the key
 * name and, where a value must be identified, its keyed hash ("KEY:v3:keyed-blake2b:…", never the value). */
static void audit_post(host_ids_t *ids, const char *idn, const char *sid, const char *op, const char *key)
{
    host_ids_call_t *c;
    cr_buf_t b;
    char actor[96], k[200];
    if (ids->http == NULL || (c = call_new(ids, NULL, NULL, NULL)) == NULL)
        return;
    c->detached = 1;
    snprintf(c->idn.name, sizeof(c->idn.name), "%s", idn);
    snprintf(actor, sizeof(actor), "corrald/session:%s", sid != NULL ? sid : "");
    snprintf(k, sizeof(k), "%s", key);
    for (char *p = k; *p != '\0'; ++p)
        if (*p == ' ')
            *p = ':';
    cr_buf_init(&b, 4096);
    cr_mpw_map(&b, 1);
    CR_MPW_LIT(&b, "records");
    cr_mpw_array(&b, 1);
    cr_mpw_map(&b, 5);
    w_str(&b, "actor", actor);
    w_str(&b, "idn", idn);
    w_str(&b, "op", op);
    w_str(&b, "key", k);
    w_str(&b, "outcome", "ok");
    relay_send(c, "POST", "/v1/audit", &b, on_audit_posted);
    cr_buf_free(&b);
}

size_t host_ids_secrets(host_ids_t *ids, const char *name, const char *sid, char **env, char **values, size_t max)
{
    host_ids_call_t *c;
    unsigned char *k = NULL, *vk;
    char dir[PATH_MAX + 80];
    DIR *d;
    struct dirent *e;
    size_t n = 0;
    if (ids == NULL || name == NULL || (c = call_new(ids, NULL, NULL, NULL)) == NULL)
        return 0;
    c->detached = 1;
    snprintf(c->actor, sizeof(c->actor), "corrald");
    snprintf(c->sid, sizeof(c->sid), "%s", sid != NULL ? sid : "");
    snprintf(dir, sizeof(dir), "%s/%s/inject", ids->root, name);
    if (host_identity_load(&c->idn, ids->root, name) != 0 || (d = opendir(dir)) == NULL) {
        call_free(c);
        return 0;
    }
    /* K once for the whole call: it opens the vault key and keys the audit's hashes */
    if (host_team_key_load(&k, ids->home) != 0) {
        cr_log(CR_LOG_WARN, "identity %s: no secret injected: %s", name, cr_error_last()->message);
        closedir(d);
        call_free(c);
        return 0;
    }
    if ((vk = vault_key(c, k)) == NULL) { /* answers nobody: the call is detached, and freed */
        host_secure_free(k);
        closedir(d);
        return 0;
    }
    while ((e = readdir(d)) != NULL && n < max) {
        char path[sizeof(dir) + 300], *buf = NULL, *space, *value = NULL;
        size_t len = 0, vlen = 0;
        uint64_t version;
        cr_buf_t blob;
        FILE *fp;
        if (e->d_name[0] == '.' || host_secret_key_check(e->d_name) != 0)
            continue;
        snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
        if ((fp = fopen(path, "r")) == NULL)
            continue;
        if (getline(&buf, &len, fp) <= 0 || (space = strchr(buf, ' ')) == NULL) {
            fclose(fp);
            free(buf);
            continue;
        }
        fclose(fp);
        version = strtoull(buf, NULL, 10);
        space[1 + strcspn(space + 1, "\r\n")] = '\0';
        cr_buf_init(&blob, HOST_SECRET_BLOB_MAX + 64);
        if (cr_base64url_decode(&blob, space + 1, strlen(space + 1)) == 0 &&
            host_secret_open(&value, &vlen, vk, ids->team, c->idn.id, e->d_name, version, blob.base, blob.len) == 0) {
            /* the audit says which value the agent got by a keyed hash of it, never the value; a secret whose record
             * cannot be written is not injected */
            size_t kl = strlen(e->d_name);
            unsigned char h[16];
            char detail[300];
            char *kv = NULL;
            host_store_activity_t rec = {0, "corrald", c->sid[0] != '\0' ? c->sid : NULL, name, "secret.inject", detail, "ok"};
            crypto_generichash(h, sizeof(h), (const unsigned char *)value, vlen, k, HOST_IDN_KEY_LEN);
            snprintf(detail, sizeof(detail), "%.128s v%" PRIu64 " keyed-blake2b:", e->d_name, version);
            for (size_t i = 0; i < 8; ++i)
                snprintf(detail + strlen(detail), 3, "%02x", h[i]);
            if (host_store_activity(ids->host->store, &rec) != 0)
                cr_log(CR_LOG_WARN, "identity %s: secret %s not injected: its audit record could not be written (%s)",
                       name, e->d_name, cr_error_last()->message);
            else if ((kv = sodium_malloc(kl + 1 + vlen + 1)) != NULL) {
                memcpy(kv, e->d_name, kl);
                kv[kl] = '=';
                memcpy(kv + kl + 1, value, vlen + 1);
                env[n] = kv;
                values[n] = value;
                value = NULL;
                ++n;
                audit_post(ids, name, sid, "secret.inject", detail);
            }
        } else {
            cr_log(CR_LOG_WARN, "identity %s: the cached secret %s does not open; not injected", name, e->d_name);
        }
        if (value != NULL)
            host_secure_free(value);
        cr_buf_free(&blob);
        free(buf);
    }
    closedir(d);
    host_secure_free(vk);
    host_secure_free(k);
    call_free(c);
    return n;
}

void host_ids_env(host_ids_t *ids, const char *name, char *email, size_t email_len, char *phone, size_t phone_len)
{
    host_identity_t i;
    email[0] = phone[0] = '\0';
    if (ids == NULL || name == NULL || name[0] == '\0' || host_identity_load(&i, ids->root, name) != 0)
        return;
    snprintf(email, email_len, "%s", i.email);
    snprintf(phone, phone_len, "%s", i.phone);
}

/* ---- life cycle ---------------------------------------------------------------------------------------------------- */

int host_ids_new(host_ids_t **out, host_t *h, const host_ids_config_t *conf)
{
    host_ids_t *ids = calloc(1, sizeof(*ids));
    *out = NULL;
    if (ids == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory"), -1;
    ids->host = h;
    ids->loop = h->loop;
    snprintf(ids->home, sizeof(ids->home), "%s", conf->home);
    snprintf(ids->root, sizeof(ids->root), "%s/identities", conf->home);
    team_load(ids);
    if (conf->relay_url != NULL && conf->relay_url[0] != '\0' && conf->token != NULL && conf->token[0] != '\0') {
        size_t n = strlen(conf->relay_url);
        while (n > 0 && conf->relay_url[n - 1] == '/')
            --n;
        snprintf(ids->url, sizeof(ids->url), "%.*s", (int)n, conf->relay_url);
        if ((ids->token = sodium_malloc(strlen(conf->token) + 1)) == NULL) {
            free(ids);
            return cr_error_set(CR_ENOMEM, NULL, "out of memory"), -1;
        }
        memcpy(ids->token, conf->token, strlen(conf->token) + 1);
        if (conf->ca_file != NULL && conf->ca_file[0] != '\0')
            ids->ca_file = strdup(conf->ca_file);
        if (cr_http_new(&ids->http, h->loop) != 0) {
            host_secure_free(ids->token);
            free(ids->ca_file);
            free(ids);
            return -1;
        }
    }
    *out = ids;
    return 0;
}

static void on_http_closed(void *data)
{
    host_ids_t *ids = data;
    free(ids->ca_file);
    free(ids);
}

void host_ids_free(host_ids_t *ids)
{
    if (ids == NULL)
        return;
    ids->closing = 1;
    while (ids->waits != NULL) {
        ids_wait_t *w = ids->waits;
        host_ids_call_t *c = w->call;
        wait_drop(ids, w);
        answer_error(c, 503, "unavailable", NULL, "corrald is shutting down");
    }
    if (ids->token != NULL)
        host_secure_free(ids->token);
    ids->token = NULL;
    if (ids->http != NULL)
        cr_http_close(ids->http, on_http_closed, ids); /* calls in flight answer (status 0) before it closes */
    else
        on_http_closed(ids);
}
