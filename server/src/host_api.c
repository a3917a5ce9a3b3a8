/* host_api.c — corrald's local API: libh2o on the libuv loop serving HTTP/1.1 on a unix socket; routing, token
 * scoping, JSON bodies, and long polls for `corral log -f` and `corral ask`. */
#define _GNU_SOURCE
#include "host_api.h"
#include "host_ids.h"
#include "corral/query.h"
#include "pair.h"
#include "qr.h"
#include "corral/error.h"
#include "corral/json.h"
#include "corral/log.h"
#include "corral/mp.h"
#include <errno.h>
#include <msgpack.h>
#include <h2o.h>
#include <h2o/socket/uv-binding.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <unistd.h>

enum { WAIT_TRANSCRIPT = 1, WAIT_ASK = 2 };

typedef struct st_api_wait_t api_wait_t;

struct st_api_guard_t {
    api_wait_t *w;
};

struct st_api_wait_t {
    host_api_t *api;
    h2o_req_t *req;
    struct st_api_guard_t *guard;
    int kind;
    char sid[HOST_STORE_SID_MAX + 1];
    uint64_t after;
    char rid[32];
    uv_timer_t timer;
    api_wait_t *next;
};

struct st_host_api_t {
    host_t *host;
    uv_loop_t *loop;
    h2o_globalconf_t config;
    h2o_context_t ctx;
    h2o_accept_ctx_t accept;
    uv_pipe_t listener;
    int listening, closed, never_accepted;
    char path[sizeof(((struct sockaddr_un *)0)->sun_path)];
    api_wait_t *waits;
    host_pair_t *pair; /* NULL without a relay (host_api_set_pair) */
    host_ids_t *ids;   /* the identity service (host_api_set_ids) */
};

/* ---- responses ----------------------------------------------------------------------------------------------- */

static const char *reason_of(int status)
{
    switch (status) {
    case 200: return "OK";
    case 201: return "Created";
    case 202: return "Accepted";
    case 400: return "Bad Request";
    case 401: return "Unauthorized";
    case 403: return "Forbidden";
    case 404: return "Not Found";
    case 405: return "Method Not Allowed";
    case 409: return "Conflict";
    case 413: return "Payload Too Large";
    case 502: return "Bad Gateway";
    case 503: return "Service Unavailable";
    default: return status >= 500 ? "Internal Server Error" : "OK";
    }
}

static void send_json(h2o_req_t *req, int status, const char *json, size_t len)
{
    req->res.status = status;
    req->res.reason = reason_of(status);
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CONTENT_TYPE, NULL, H2O_STRLIT("application/json"));
    h2o_add_header(&req->pool, &req->res.headers, H2O_TOKEN_CACHE_CONTROL, NULL, H2O_STRLIT("no-store"));
    h2o_send_inline(req, json, len);
}

/* Sends the msgpack value mp as JSON. */
static void send_mp(h2o_req_t *req, int status, const cr_buf_t *mp)
{
    cr_buf_t json;
    cr_limits_t lim = cr_limits_default;
    lim.max_depth += 4;
    lim.max_envelope = 64u << 20;
    cr_buf_init(&json, 64u << 20);
    if (cr_json_from_msgpack(&json, mp->base, mp->len, &lim) != 0) {
        static const char err[] = "{\"error\":{\"code\":\"internal\",\"message\":\"the answer could not be rendered\"}}";
        send_json(req, 500, err, sizeof(err) - 1);
    } else {
        send_json(req, status, json.base, json.len);
    }
    cr_buf_free(&json);
}

static void send_error(h2o_req_t *req, int status, const char *code, const char *field, const char *fmt, ...)
    __attribute__((format(printf, 5, 6)));

static void send_error(h2o_req_t *req, int status, const char *code, const char *field, const char *fmt, ...)
{
    char msg[1024];
    va_list ap;
    cr_buf_t b;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    if (!cr_utf8_valid(msg, strlen(msg)))
        snprintf(msg, sizeof(msg), "(a message that is not UTF-8)");
    cr_buf_init(&b, 8192);
    cr_mpw_error_doc(&b, code, field, msg, sizeof(msg));
    send_mp(req, status, &b);
    cr_buf_free(&b);
}

static int status_of(int code)
{
    switch (code) {
    case CR_ENOTFOUND: return 404;
    case CR_EEXISTS:
    case CR_ECONFLICT:
    case CR_ENOTFF:
    case CR_EDIRTY: return 409;
    case CR_ETOOLARGE: return 413;
    case CR_EBODY:
    case CR_EBADNAME:
    case CR_EJSON:
    case CR_EKIND:
    case CR_ECONFIG:
    case CR_EENCODING:
    case CR_EMSGPACK:
    case CR_ETOODEEP:
    case CR_ETRUNCATED:
    case CR_ETRAILING: return 400;
    default: return 500;
    }
}

static void send_cr_error(h2o_req_t *req)
{
    const cr_error_t *e = cr_error_last();
    send_error(req, status_of(e->code), cr_err_code(e->code), e->field, "%s", e->message);
}

/* ---- request helpers ----------------------------------------------------------------------------------------- */

/* The value of query parameter name (in the request's pool), "" when it has no value, NULL when absent. */
static const char *query(h2o_req_t *req, const char *name)
{
    cr_span_t v;
    if (req->query_at == SIZE_MAX ||
        cr_query_param(req->path.base + req->query_at + 1, req->path.len - req->query_at - 1, name, &v) == 0)
        return NULL;
    return h2o_strdup(&req->pool, v.base, v.len).base;
}

static uint64_t query_uint(h2o_req_t *req, const char *name, uint64_t dflt, uint64_t max)
{
    const char *v = query(req, name);
    char *end;
    unsigned long long n;
    if (v == NULL || v[0] == '\0')
        return dflt;
    errno = 0;
    n = strtoull(v, &end, 10);
    if (errno != 0 || *end != '\0')
        return dflt;
    return n > max ? max : n;
}

/* Parses the JSON body into msgpack (b). Returns 0, or sends an error and returns -1. */
static int read_body(h2o_req_t *req, cr_buf_t *b)
{
    if (req->entity.base == NULL || req->entity.len == 0) {
        send_error(req, 400, "bad_body", NULL, "a JSON object is needed as the body");
        return -1;
    }
    if (cr_json_to_msgpack(b, req->entity.base, req->entity.len, NULL) != 0) {
        send_cr_error(req);
        return -1;
    }
    if (b->len == 0 || ((unsigned char)b->base[0] & 0xf0) != 0x80) {
        if ((unsigned char)b->base[0] != 0xde && (unsigned char)b->base[0] != 0xdf) {
            send_error(req, 400, "bad_body", NULL, "the body must be a JSON object");
            return -1;
        }
    }
    return 0;
}

/* A str field of map mp as a NUL-terminated string in the request's pool; NULL when absent. Sends an error and
 * sets *bad when the field is there but not a str. */
static const char *field_str(h2o_req_t *req, const cr_buf_t *mp, const char *key, int *bad)
{
    cr_span_t v;
    cr_mp_item_t it;
    if (*bad || cr_mp_map_get(mp->base, mp->len, key, &v) != 0)
        return NULL;
    if (cr_mp_read(v.base, v.base + v.len, &it) == 0 || it.type == 0 /* nil */)
        return NULL;
    if (it.type != 5 /* str */) {
        send_error(req, 400, "bad_body", key, "%s must be a string", key);
        *bad = 1;
        return NULL;
    }
    return h2o_strdup(&req->pool, it.bytes.base, it.bytes.len).base;
}

static int mpw_kv(cr_buf_t *b, const char *k, const char *v)
{
    return cr_mpw_str(b, k, strlen(k)) || cr_mpw_str(b, v, strlen(v));
}

static int mpw_kopt(cr_buf_t *b, const char *k, const char *v)
{
    if (v == NULL || v[0] == '\0')
        return cr_mpw_str(b, k, strlen(k)) || cr_mpw_nil(b);
    return mpw_kv(b, k, v);
}

static void session_mp(cr_buf_t *b, host_session_t *s)
{
    host_store_session_t *r = s->rec;
    int queued = host_store_task_count(r);
    cr_mpw_map(b, 18);
    mpw_kv(b, "sid", r->sid);
    mpw_kv(b, "name", r->git.name);
    mpw_kv(b, "task", r->task);
    mpw_kv(b, "agent", r->agent);
    mpw_kopt(b, "cmd", r->cmd);
    mpw_kopt(b, "identity", r->identity);
    mpw_kv(b, "state", host_store_state_name(r->state));
    mpw_kv(b, "branch", r->git.branch);
    mpw_kv(b, "base", r->git.base);
    mpw_kv(b, "worktree", r->git.worktree);
    mpw_kopt(b, "resume_id", r->resume_id);
    CR_MPW_LIT(b, "running");
    cr_mpw_bool(b, s->agent != NULL);
    CR_MPW_LIT(b, "last_seq");
    cr_mpw_uint(b, r->last_seq);
    CR_MPW_LIT(b, "created");
    cr_mpw_uint(b, r->created);
    CR_MPW_LIT(b, "updated");
    cr_mpw_uint(b, r->updated);
    CR_MPW_LIT(b, "tasks_queued");
    cr_mpw_uint(b, queued > 0 ? (uint64_t)queued : 0);
    CR_MPW_LIT(b, "needs");
    if (r->has_needs) {
        cr_mpw_map(b, 3);
        mpw_kv(b, "k", r->needs_k);
        CR_MPW_LIT(b, "seq");
        cr_mpw_uint(b, r->needs_seq);
        mpw_kv(b, "rid", r->needs_rid);
    } else if (s->ask_rid[0] != '\0') {
        cr_mpw_map(b, 2);
        mpw_kv(b, "k", "question");
        mpw_kv(b, "rid", s->ask_rid);
    } else {
        cr_mpw_nil(b);
    }
    CR_MPW_LIT(b, "exit");
    if (r->has_exit) {
        cr_mpw_map(b, 2);
        CR_MPW_LIT(b, "status");
        cr_mpw_uint(b, (uint64_t)(r->exit_status < 0 ? 0 : r->exit_status));
        CR_MPW_LIT(b, "signal");
        cr_mpw_uint(b, (uint64_t)(r->exit_signal < 0 ? 0 : r->exit_signal));
    } else {
        cr_mpw_nil(b);
    }
}

/* ---- long polls ---------------------------------------------------------------------------------------------- */

static void on_wait_closed(uv_handle_t *h)
{
    free(h->data);
}

static void wait_drop(api_wait_t *w)
{
    host_api_t *api = w->api;
    for (api_wait_t **pp = &api->waits; *pp != NULL; pp = &(*pp)->next)
        if (*pp == w) {
            *pp = w->next;
            break;
        }
    if (w->guard != NULL)
        w->guard->w = NULL;
    w->guard = NULL;
    w->req = NULL;
    uv_timer_stop(&w->timer);
    uv_close((uv_handle_t *)&w->timer, on_wait_closed);
}

static void on_guard_dispose(void *p)
{
    struct st_api_guard_t *g = p;
    if (g->w != NULL) {
        g->w->guard = NULL;
        wait_drop(g->w);
    }
}

/* Answers a transcript request: the lines after `after`; returns 0 when there were none (and nothing was sent
 * unless force). */
static int answer_transcript(h2o_req_t *req, host_session_t *s, uint64_t after, int force)
{
    char path[PATH_MAX];
    FILE *fp;
    char *line = NULL;
    size_t cap = 0, count = 0;
    ssize_t n;
    uint64_t no = 0;
    cr_buf_t out;
    if (host_store_transcript_flush(s->rec) != 0) /* what the agent said a moment ago is in the file before it is read */
        cr_log_sid(CR_LOG_ERROR, s->rec->sid, "transcript: %s", cr_error_last()->message);
    host_session_path(path, sizeof(path), s, "transcript.jsonl");
    cr_buf_init(&out, 64u << 20);
    cr_buf_append(&out, "{\"events\":[", 11);
    if ((fp = fopen(path, "r")) != NULL) {
        while ((n = getline(&line, &cap, fp)) > 0) {
            if (line[n - 1] != '\n')
                break; /* a line being written */
            ++no;
            if (no <= after)
                continue;
            if (count > 0)
                cr_buf_append(&out, ",", 1);
            if (cr_buf_append(&out, line, (size_t)n - 1) != 0) {
                --no;
                break;
            }
            if (++count == HOST_API_EVENTS_MAX)
                break;
        }
        fclose(fp);
    }
    free(line);
    if (count == 0 && !force) {
        cr_buf_free(&out);
        return 0;
    }
    cr_buf_appendf(&out, "],\"next\":%llu,\"state\":\"%s\"}", (unsigned long long)(count > 0 ? no : after),
                   host_store_state_name(s->rec->state));
    send_json(req, 200, out.base, out.len);
    cr_buf_free(&out);
    return 1;
}

static int answer_ask(h2o_req_t *req, host_session_t *s, const char *rid, int force)
{
    cr_buf_t b;
    int have = s->ask_answer != NULL && strcmp(s->ask_answer_rid, rid) == 0;
    if (!have && !force)
        return 0;
    cr_buf_init(&b, 1u << 20);
    cr_mpw_map(&b, 2);
    mpw_kv(&b, "rid", rid);
    if (have) {
        mpw_kv(&b, "answer", s->ask_answer);
        free(s->ask_answer);
        s->ask_answer = NULL;
        s->ask_answer_rid[0] = '\0';
    } else {
        CR_MPW_LIT(&b, "pending");
        cr_mpw_bool(&b, 1);
    }
    send_mp(req, have ? 200 : 202, &b);
    cr_buf_free(&b);
    return 1;
}

/* Tries to answer a waiting request; force answers it whatever there is. Returns 1 when it was answered. */
static int wait_try(api_wait_t *w, int force)
{
    host_session_t *s = host_session_find(w->api->host, w->sid);
    h2o_req_t *req = w->req;
    int done;
    if (req == NULL)
        return 1;
    if (s == NULL) {
        wait_drop(w);
        send_error(req, 404, "not_found", "name", "the session is gone");
        return 1;
    }
    if (w->kind == WAIT_TRANSCRIPT) {
        int final = s->rec->state == HOST_STORE_DONE || s->rec->state == HOST_STORE_FAILED;
        /* detach first: answering may end the request and run the guard */
        if (w->guard != NULL)
            w->guard->w = NULL;
        w->guard = NULL;
        done = answer_transcript(req, s, w->after, force || final);
    } else {
        if (w->guard != NULL)
            w->guard->w = NULL;
        w->guard = NULL;
        done = answer_ask(req, s, w->rid, force);
    }
    if (done) {
        wait_drop(w);
        return 1;
    }
    /* not answered: guard the request again */
    w->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*w->guard), on_guard_dispose);
    w->guard->w = w;
    return 0;
}

static void on_wait_timer(uv_timer_t *t)
{
    wait_try(t->data, 1);
}

static void wait_add(host_api_t *api, h2o_req_t *req, host_session_t *s, int kind, uint64_t after, const char *rid,
                     uint64_t wait_s)
{
    api_wait_t *w = calloc(1, sizeof(*w));
    if (w == NULL)
        abort();
    w->api = api;
    w->req = req;
    w->kind = kind;
    snprintf(w->sid, sizeof(w->sid), "%s", s->rec->sid);
    w->after = after;
    if (rid != NULL)
        snprintf(w->rid, sizeof(w->rid), "%s", rid);
    uv_timer_init(api->loop, &w->timer);
    w->timer.data = w;
    uv_timer_start(&w->timer, on_wait_timer, wait_s * 1000, 0);
    w->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*w->guard), on_guard_dispose);
    w->guard->w = w;
    w->next = api->waits;
    api->waits = w;
}

void host_api_notify(host_session_t *s, void *data)
{
    host_api_t *api = data;
    api_wait_t *w, *next;
    if (api == NULL)
        return;
    for (w = api->waits; w != NULL; w = next) {
        next = w->next;
        if (strcmp(w->sid, s->rec->sid) == 0)
            wait_try(w, 0);
    }
}

static void wake_sid(host_api_t *api, const char *sid)
{
    api_wait_t *w, *next;
    for (w = api->waits; w != NULL; w = next) {
        next = w->next;
        if (strcmp(w->sid, sid) == 0)
            wait_try(w, 1);
    }
}

/* ---- handlers ------------------------------------------------------------------------------------------------ */

static void h_list(host_api_t *api, h2o_req_t *req)
{
    cr_buf_t b;
    uint32_t n = 0;
    for (host_session_t *s = api->host->sessions; s != NULL; s = s->next)
        ++n;
    cr_buf_init(&b, 64u << 20);
    cr_mpw_map(&b, 1);
    CR_MPW_LIT(&b, "sessions");
    cr_mpw_array(&b, n);
    for (host_session_t *s = api->host->sessions; s != NULL; s = s->next)
        session_mp(&b, s);
    send_mp(req, 200, &b);
    cr_buf_free(&b);
}

/* A create waits for its worktree: the request may go away meanwhile (the guard, in its pool, says so). */
typedef struct st_api_create_call_t {
    h2o_req_t *req; /* NULL once the request is gone */
    struct st_api_create_guard_t *guard;
} api_create_call_t;

struct st_api_create_guard_t {
    api_create_call_t *call;
};

static void on_create_guard_dispose(void *p)
{
    struct st_api_create_guard_t *g = p;
    if (g->call != NULL) {
        g->call->req = NULL;
        g->call->guard = NULL;
    }
}

static void on_created(host_session_t *s, int rc, void *data)
{
    api_create_call_t *c = data;
    h2o_req_t *req = c->req;
    cr_buf_t b;
    if (c->guard != NULL)
        c->guard->call = NULL;
    free(c);
    if (req == NULL)
        return; /* the client left; the session stands */
    if (rc != 0) {
        send_cr_error(req);
        return;
    }
    cr_buf_init(&b, 1u << 20);
    session_mp(&b, s);
    send_mp(req, 201, &b);
    cr_buf_free(&b);
}

static void h_create(host_api_t *api, h2o_req_t *req)
{
    cr_buf_t body;
    host_create_t c = {0};
    api_create_call_t *call;
    int bad = 0;
    cr_buf_init(&body, HOST_API_BODY_MAX);
    if (read_body(req, &body) != 0)
        goto done;
    c.task = field_str(req, &body, "task", &bad);
    c.name = field_str(req, &body, "name", &bad);
    c.agent = field_str(req, &body, "agent", &bad);
    c.cmd = field_str(req, &body, "cmd", &bad);
    c.identity = field_str(req, &body, "identity", &bad);
    c.base = field_str(req, &body, "base", &bad);
    if (bad)
        goto done;
    if ((call = calloc(1, sizeof(*call))) == NULL) {
        send_error(req, 500, "internal", NULL, "out of memory");
        goto done;
    }
    if (host_session_create(api->host, &c, on_created, call) != 0) {
        free(call);
        send_cr_error(req);
        goto done;
    }
    call->req = req;
    call->guard = h2o_mem_alloc_shared(&req->pool, sizeof(*call->guard), on_create_guard_dispose);
    call->guard->call = call;
done:
    cr_buf_free(&body);
}

static void h_get(h2o_req_t *req, host_session_t *s)
{
    cr_buf_t b;
    cr_buf_init(&b, 1u << 20);
    session_mp(&b, s);
    send_mp(req, 200, &b);
    cr_buf_free(&b);
}

static void h_transcript(host_api_t *api, h2o_req_t *req, host_session_t *s)
{
    uint64_t after = query_uint(req, "after", 0, UINT64_MAX), wait_s = query_uint(req, "wait", 0, HOST_API_WAIT_MAX_S);
    int final = s->rec->state == HOST_STORE_DONE || s->rec->state == HOST_STORE_FAILED;
    if (answer_transcript(req, s, after, wait_s == 0 || final || api->closed))
        return;
    wait_add(api, req, s, WAIT_TRANSCRIPT, after, NULL, wait_s);
}

static void h_diff(host_api_t *api, h2o_req_t *req, host_session_t *s)
{
    host_git_diff_t d;
    cr_buf_t b;
    if (host_git_diff(&d, api->host->git, &s->rec->git, HOST_GIT_SINCE_BASE, 0, 0) != 0) {
        send_cr_error(req);
        return;
    }
    cr_buf_init(&b, 64u << 20);
    cr_mpw_map(&b, 8);
    mpw_kv(&b, "base", s->rec->git.base);
    mpw_kv(&b, "head", s->rec->git.branch);
    CR_MPW_LIT(&b, "files");
    cr_mpw_array(&b, (uint32_t)d.nfiles);
    for (size_t i = 0; i < d.nfiles; ++i) {
        const char *st = host_file_status_word(d.files[i].status);
        cr_mpw_map(&b, 4);
        mpw_kv(&b, "path", d.files[i].path);
        mpw_kv(&b, "status", st);
        CR_MPW_LIT(&b, "add");
        cr_mpw_uint(&b, d.files[i].additions);
        CR_MPW_LIT(&b, "del");
        cr_mpw_uint(&b, d.files[i].deletions);
    }
    CR_MPW_LIT(&b, "add");
    cr_mpw_uint(&b, d.additions);
    CR_MPW_LIT(&b, "del");
    cr_mpw_uint(&b, d.deletions);
    CR_MPW_LIT(&b, "total_files");
    cr_mpw_uint(&b, d.total_files);
    CR_MPW_LIT(&b, "patch");
    cr_mpw_str(&b, d.patch.base != NULL ? d.patch.base : "", d.patch.len);
    CR_MPW_LIT(&b, "truncated");
    cr_mpw_bool(&b, d.patch_truncated || d.files_truncated);
    host_git_diff_free(&d);
    send_mp(req, 200, &b);
    cr_buf_free(&b);
}

static void h_delete(host_api_t *api, h2o_req_t *req, host_session_t *s)
{
    const char *kb = query(req, "keep_branch");
    int keep = kb != NULL && strcmp(kb, "0") != 0;
    char sid[HOST_STORE_SID_MAX + 1], name[HOST_GIT_NAME_MAX + 1];
    cr_buf_t b;
    snprintf(sid, sizeof(sid), "%s", s->rec->sid);
    snprintf(name, sizeof(name), "%s", s->rec->git.name);
    if (host_session_remove(api->host, s, keep) != 0) {
        wake_sid(api, sid);
        send_cr_error(req);
        return;
    }
    wake_sid(api, sid);
    cr_buf_init(&b, 4096);
    cr_mpw_map(&b, 3);
    mpw_kv(&b, "removed", name);
    mpw_kv(&b, "sid", sid);
    CR_MPW_LIT(&b, "kept_branch");
    cr_mpw_bool(&b, keep);
    send_mp(req, 200, &b);
    cr_buf_free(&b);
}

static void h_action(h2o_req_t *req, host_session_t *s)
{
    cr_buf_t body, b;
    host_action_result_t res;
    const char *k, *aid;
    cr_span_t bv = {NULL, 0};
    int bad = 0, rc;
    cr_buf_init(&body, HOST_API_BODY_MAX);
    if (read_body(req, &body) != 0)
        goto done;
    k = field_str(req, &body, "k", &bad);
    aid = field_str(req, &body, "aid", &bad);
    if (bad)
        goto done;
    if (k == NULL) {
        send_error(req, 400, "bad_body", "k", "the action's kind k is needed");
        goto done;
    }
    if (cr_mp_map_get(body.base, body.len, "b", &bv) == 0 && bv.len > 0 && ((unsigned char)bv.base[0] & 0xf0) != 0x80 &&
        (unsigned char)bv.base[0] != 0xc0 && (unsigned char)bv.base[0] != 0xde) {
        send_error(req, 400, "bad_body", "b", "b must be an object");
        goto done;
    }
    rc = host_action_apply(&res, s, k, aid, bv.base, bv.len);
    if (rc != 0 && !res.ok && res.detail[0] == '\0') {
        send_cr_error(req);
        goto done;
    }
    cr_buf_init(&b, 8192);
    cr_mpw_map(&b, 4 + (res.commit[0] != '\0'));
    mpw_kv(&b, "aid", res.aid);
    CR_MPW_LIT(&b, "ok");
    cr_mpw_bool(&b, res.ok);
    mpw_kv(&b, "detail", res.detail);
    CR_MPW_LIT(&b, "duplicate");
    cr_mpw_bool(&b, res.duplicate);
    if (res.commit[0] != '\0')
        mpw_kv(&b, "commit", res.commit);
    send_mp(req, res.ok ? 200 : rc == CR_ECONFLICT ? 409 : 500, &b);
    cr_buf_free(&b);
done:
    cr_buf_free(&body);
}

static void h_ask(host_api_t *api, h2o_req_t *req, host_session_t *s)
{
    cr_buf_t body;
    const char *text;
    char rid[32];
    int bad = 0;
    cr_buf_init(&body, HOST_API_BODY_MAX);
    if (read_body(req, &body) != 0)
        goto done;
    text = field_str(req, &body, "text", &bad);
    if (bad)
        goto done;
    {
        const char *opts[9];
        size_t nopts = 0;
        cr_span_t v, sv[9];
        if (cr_mp_map_get(body.base, body.len, "options", &v) == 0) {
            int e = cr_mp_str_array(v.base, v.len, sv, 9, &nopts);
            if (e == CR_ETOOLARGE || e == CR_ENOTFOUND) {
                send_error(req, 400, "bad_body", "options", "options must be an array of at most 9 strings");
                goto done;
            }
            if (e != 0) {
                send_error(req, 400, "bad_body", "options", "option %zu must be a string", nopts + 1);
                goto done;
            }
            for (size_t i = 0; i < nopts; ++i)
                opts[i] = h2o_strdup(&req->pool, sv[i].base, sv[i].len).base;
        }
        if (host_ask(rid, s, text, opts, nopts) != 0) {
            send_cr_error(req);
            goto done;
        }
    }
    wait_add(api, req, s, WAIT_ASK, 0, rid, query_uint(req, "wait", 60, HOST_API_WAIT_MAX_S));
done:
    cr_buf_free(&body);
}

static void h_ask_wait(host_api_t *api, h2o_req_t *req, host_session_t *s, const char *rid)
{
    if (answer_ask(req, s, rid, 0))
        return;
    if (strcmp(s->ask_rid, rid) != 0) {
        send_error(req, 404, "not_found", "rid", "no question %s is waiting", rid);
        return;
    }
    wait_add(api, req, s, WAIT_ASK, 0, rid, query_uint(req, "wait", 60, HOST_API_WAIT_MAX_S));
}

/* POST /v1/pair: a pairing code from the relay, as {code, expires, url, qr_text}; ?qr=utf8|ascii|none. */
typedef struct st_api_pair_call_t {
    h2o_req_t *req; /* NULL once the request is gone */
    struct st_api_pair_guard_t *guard;
    host_qr_style_t style;
    int with_qr;
    host_t *host;
} api_pair_call_t;

struct st_api_pair_guard_t {
    api_pair_call_t *call;
    host_pair_t *pair;
    uint64_t id;
};

static void on_pair_guard_dispose(void *p)
{
    struct st_api_pair_guard_t *g = p;
    if (g->call != NULL) {
        g->call->req = NULL;
        g->call->guard = NULL;
        host_pair_cancel(g->pair, g->id); /* runs on_pair_answer now, which frees the call */
    }
}

static void on_pair_answer(const host_pair_result_t *r, void *data)
{
    api_pair_call_t *c = data;
    h2o_req_t *req = c->req;
    host_qr_style_t style = c->style;
    int with_qr = c->with_qr;
    cr_buf_t b, qr;
    if (c->guard != NULL)
        c->guard->call = NULL;
    if (r->ok) /* pairing made K and the relay named our team: from now on bodies are sealed */
        host_seal_refresh(c->host);
    free(c);
    if (req == NULL)
        return;
    if (!r->ok) {
        send_error(req, 502, "bad_gateway", "relay.url", "%s", r->message);
        return;
    }
    cr_buf_init(&qr, 1u << 20);
    if (with_qr && host_qr_render(&qr, r->url, style) != 0) {
        cr_buf_free(&qr);
        send_cr_error(req);
        return;
    }
    cr_buf_init(&b, 2u << 20);
    cr_mpw_map(&b, 4);
    mpw_kv(&b, "code", r->code);
    CR_MPW_LIT(&b, "expires");
    cr_mpw_uint(&b, r->expires);
    mpw_kv(&b, "url", r->url);
    CR_MPW_LIT(&b, "qr_text");
    cr_mpw_str(&b, qr.base != NULL ? qr.base : "", qr.len);
    send_mp(req, 200, &b);
    sodium_memzero(b.base, b.len);
    cr_buf_free(&b);
    cr_buf_free(&qr);
}

static void h_pair(host_api_t *api, h2o_req_t *req)
{
    const char *style = query(req, "qr");
    api_pair_call_t *c;
    struct st_api_pair_guard_t *g;
    if (api->pair == NULL) {
        send_error(req, 400, "bad_config", "relay.url", "no relay configured: run corral up --relay URL --token TOKEN");
        return;
    }
    if (style != NULL && strcmp(style, "utf8") != 0 && strcmp(style, "ascii") != 0 && strcmp(style, "none") != 0) {
        send_error(req, 400, "bad_request", "qr", "qr must be utf8, ascii or none");
        return;
    }
    if ((c = calloc(1, sizeof(*c))) == NULL) {
        send_error(req, 500, "internal", NULL, "out of memory");
        return;
    }
    c->req = req;
    c->host = api->host;
    c->with_qr = style == NULL || strcmp(style, "none") != 0;
    c->style = style != NULL && strcmp(style, "ascii") == 0 ? HOST_QR_ASCII : HOST_QR_UTF8;
    g = h2o_mem_alloc_shared(&req->pool, sizeof(*g), on_pair_guard_dispose);
    g->call = NULL;
    g->pair = api->pair;
    if (host_pair_request(api->pair, on_pair_answer, c, &g->id) != 0) {
        free(c);
        send_cr_error(req);
        return;
    }
    g->call = c;
    c->guard = g;
}

void host_api_set_pair(host_api_t *api, host_pair_t *pair)
{
    api->pair = pair;
}

static int method_is(h2o_req_t *req, const char *m)
{
    return h2o_memis(req->method.base, req->method.len, m, strlen(m));
}

/* ---- identities (host_ids.c does the work; this maps requests to it) -------------------------------------------- */

typedef struct st_api_ids_ctx_t api_ids_ctx_t;
struct st_api_ids_guard_t {
    host_ids_call_t *call;
    api_ids_ctx_t *ctx;
};
struct st_api_ids_ctx_t {
    h2o_req_t *req;
    struct st_api_ids_guard_t *guard;
};

void host_api_set_ids(host_api_t *api, host_ids_t *ids)
{
    api->ids = ids;
}

static void on_ids_answer(int status, const char *json, size_t len, void *data)
{
    api_ids_ctx_t *ctx = data;
    if (ctx->guard != NULL)
        ctx->guard->call = NULL, ctx->guard->ctx = NULL;
    if (ctx->req != NULL)
        send_json(ctx->req, status, json, len);
    free(ctx);
}

static void on_ids_guard_dispose(void *p)
{
    struct st_api_ids_guard_t *g = p;
    if (g->call != NULL) { /* the client left before the answer: it will not come */
        host_ids_detach(g->call);
        free(g->ctx);
    }
}

static api_ids_ctx_t *ids_ctx(h2o_req_t *req)
{
    api_ids_ctx_t *ctx = calloc(1, sizeof(*ctx));
    if (ctx == NULL)
        send_error(req, 500, "internal", NULL, "out of memory");
    else
        ctx->req = req;
    return ctx;
}

/* Watches the request for a call whose answer is still to come (call NULL: answered already, ctx freed). */
static void ids_pending(h2o_req_t *req, api_ids_ctx_t *ctx, host_ids_call_t *call)
{
    struct st_api_ids_guard_t *g;
    if (call == NULL)
        return;
    g = h2o_mem_alloc_shared(&req->pool, sizeof(*g), on_ids_guard_dispose);
    g->call = call;
    g->ctx = ctx;
    ctx->guard = g;
}

/* A query parameter, percent-decoded ('+' is a space) into the request's pool; NULL when absent. */
static const char *query_text(h2o_req_t *req, const char *name)
{
    const char *v = query(req, name);
    char *out;
    if (v == NULL)
        return NULL;
    out = h2o_mem_alloc_pool(&req->pool, strlen(v) + 1);
    cr_form_decode(out, v, strlen(v));
    return out;
}

static void h_identities(host_api_t *api, h2o_req_t *req, host_session_t *tok, char seg[][128], size_t nseg)
{
    char actor[HOST_STORE_SID_MAX + 16];
    host_ids_who_t who = {NULL, NULL, "owner"};
    api_ids_ctx_t *ctx;
    host_ids_call_t *call = NULL;
    cr_buf_t mp;
    int bad = 0;

    if (api->ids == NULL) {
        send_error(req, 503, "unavailable", NULL, "identities are not served by this corrald");
        return;
    }
    if (tok != NULL) {
        snprintf(actor, sizeof(actor), "session:%s", tok->rec->git.name);
        who.sid = tok->rec->sid;
        who.identity = tok->rec->identity;
        who.actor = actor;
    }
    if (strcmp(seg[1], "whoami") == 0) {
        if (nseg != 2 || !method_is(req, "GET")) {
            send_error(req, 405, "method_not_allowed", NULL, "not allowed here");
            return;
        }
        if ((ctx = ids_ctx(req)) != NULL)
            ids_pending(req, ctx, host_ids_whoami(api->ids, &who, tok != NULL ? tok->rec->git.name : NULL, on_ids_answer, ctx));
        return;
    }
    cr_buf_init(&mp, HOST_API_BODY_MAX);
    if (nseg == 2 && method_is(req, "POST")) {
        const char *name, *email;
        if (read_body(req, &mp) != 0)
            goto done;
        name = field_str(req, &mp, "name", &bad);
        email = field_str(req, &mp, "email", &bad);
        if (bad || (ctx = ids_ctx(req)) == NULL)
            goto done;
        call = host_ids_create(api->ids, &who, name, email, on_ids_answer, ctx);
    } else if (nseg == 2 && method_is(req, "GET")) {
        if ((ctx = ids_ctx(req)) == NULL)
            goto done;
        call = host_ids_list(api->ids, &who, on_ids_answer, ctx);
    } else if (nseg == 3 && method_is(req, "GET")) {
        if ((ctx = ids_ctx(req)) == NULL)
            goto done;
        call = host_ids_get(api->ids, &who, seg[2], on_ids_answer, ctx);
    } else if (nseg == 4 && strcmp(seg[3], "secrets") == 0 && method_is(req, "POST")) {
        const char *key, *value;
        cr_span_t v;
        cr_mp_item_t it;
        int inject = 0;
        if (read_body(req, &mp) != 0)
            goto done;
        key = field_str(req, &mp, "key", &bad);
        value = field_str(req, &mp, "value", &bad);
        if (!bad && cr_mp_map_get(mp.base, mp.len, "inject", &v) == 0 && cr_mp_read(v.base, v.base + v.len, &it) != 0)
            inject = it.type == MSGPACK_OBJECT_BOOLEAN && it.u != 0;
        if (bad || (ctx = ids_ctx(req)) == NULL)
            goto done;
        call = host_ids_secret_set(api->ids, &who, seg[2], key, value, value != NULL ? strlen(value) : 0, inject,
                                   on_ids_answer, ctx);
        if (value != NULL)
            sodium_memzero((char *)value, strlen(value));
    } else if (nseg == 4 && strcmp(seg[3], "secrets") == 0 && method_is(req, "GET")) {
        if ((ctx = ids_ctx(req)) == NULL)
            goto done;
        call = host_ids_secret_list(api->ids, &who, seg[2], on_ids_answer, ctx);
    } else if (nseg == 5 && strcmp(seg[3], "secrets") == 0 && method_is(req, "GET")) {
        if ((ctx = ids_ctx(req)) == NULL)
            goto done;
        call = host_ids_secret_get(api->ids, &who, seg[2], seg[4], query_uint(req, "version", 0, UINT32_MAX), on_ids_answer,
                                   ctx);
    } else if (nseg == 5 && strcmp(seg[3], "secrets") == 0 && method_is(req, "DELETE")) {
        if ((ctx = ids_ctx(req)) == NULL)
            goto done;
        call = host_ids_secret_delete(api->ids, &who, seg[2], seg[4], on_ids_answer, ctx);
    } else if (nseg == 5 && strcmp(seg[3], "inbox") == 0 && strcmp(seg[4], "list") == 0 && method_is(req, "GET")) {
        if ((ctx = ids_ctx(req)) == NULL)
            goto done;
        call = host_ids_inbox_list(api->ids, &who, seg[2], query_uint(req, "limit", 20, 1000), on_ids_answer, ctx);
    } else if (nseg == 4 && (strcmp(seg[3], "inbox") == 0 || strcmp(seg[3], "otp") == 0) && method_is(req, "GET")) {
        host_inbox_filter_t f;
        const char *since = query_text(req, "since");
        char *end = NULL;
        memset(&f, 0, sizeof(f));
        f.subject_contains = query_text(req, "subject_contains");
        f.from_contains = query_text(req, "from_contains");
        if (since != NULL && since[0] != '\0') {
            unsigned long long ms = strtoull(since, &end, 10);
            if (end != NULL && *end == '\0')
                f.since_ms = ms;
            else
                f.since_id = since;
        }
        if ((ctx = ids_ctx(req)) == NULL)
            goto done;
        call = host_ids_inbox_wait(api->ids, &who, seg[2], &f, strcmp(seg[3], "otp") == 0,
                                   query_uint(req, "wait", 0, HOST_IDS_WAIT_MAX_MS / 1000) * 1000, on_ids_answer, ctx);
    } else if (nseg <= 5) {
        send_error(req, 405, "method_not_allowed", NULL, "not allowed here");
        goto done;
    } else {
        send_error(req, 404, "not_found", NULL, "no such endpoint");
        goto done;
    }
    ids_pending(req, ctx, call);
done:
    if (mp.base != NULL)
        sodium_memzero(mp.base, mp.len);
    if (req->entity.base != NULL)
        sodium_memzero((char *)req->entity.base, req->entity.len);
    cr_buf_free(&mp);
}

static int on_req(h2o_handler_t *self, h2o_req_t *req)
{
    host_api_t *api = *(host_api_t **)(self + 1);
    host_session_t *tok = NULL, *s;
    char seg[5][128];
    size_t nseg = 0;
    const char *p = req->path_normalized.base, *end = p + req->path_normalized.len;
    ssize_t auth;

    if (api->closed) {
        send_error(req, 503, "unavailable", NULL, "corrald is shutting down");
        return 0;
    }
    /* split the path into at most 4 segments */
    while (p < end) {
        const char *q;
        while (p < end && *p == '/')
            ++p;
        if (p >= end)
            break;
        q = memchr(p, '/', (size_t)(end - p));
        if (q == NULL)
            q = end;
        if (nseg == 5 || (size_t)(q - p) >= sizeof(seg[0])) {
            send_error(req, 404, "not_found", NULL, "no such endpoint");
            return 0;
        }
        memcpy(seg[nseg], p, (size_t)(q - p));
        seg[nseg++][q - p] = '\0';
        p = q;
    }
    if (nseg < 2 || strcmp(seg[0], "v1") != 0) {
        send_error(req, 404, "not_found", NULL, "no such endpoint");
        return 0;
    }
    if ((auth = h2o_find_header(&req->headers, H2O_TOKEN_AUTHORIZATION, -1)) >= 0) {
        h2o_iovec_t v = req->headers.entries[auth].value;
        char t[HOST_TOKEN_LEN + 1];
        if (v.len != 7 + HOST_TOKEN_LEN || strncasecmp(v.base, "Bearer ", 7) != 0) {
            send_error(req, 401, "unauthorized", NULL, "a session token is expected (Authorization: Bearer cst_...)");
            return 0;
        }
        memcpy(t, v.base + 7, HOST_TOKEN_LEN);
        t[HOST_TOKEN_LEN] = '\0';
        if ((tok = host_session_by_token(api->host, t)) == NULL) {
            send_error(req, 401, "unauthorized", NULL, "this session token is not valid (any more)");
            return 0;
        }
    }
    if (strcmp(seg[1], "ask") == 0) {
        if (tok == NULL) {
            send_error(req, 401, "unauthorized", NULL,
                       "corral ask works from inside a session (CORRAL_TOKEN and CORRAL_URL are not set)");
            return 0;
        }
        if (nseg == 2 && method_is(req, "POST"))
            h_ask(api, req, tok);
        else if (nseg == 3 && method_is(req, "GET"))
            h_ask_wait(api, req, tok, seg[2]);
        else
            send_error(req, 405, "method_not_allowed", NULL, "not allowed here");
        return 0;
    }
    if (strcmp(seg[1], "pair") == 0 && nseg == 2) {
        if (tok != NULL)
            send_error(req, 403, "forbidden", NULL, "a session token cannot pair a phone");
        else if (method_is(req, "POST"))
            h_pair(api, req);
        else
            send_error(req, 405, "method_not_allowed", NULL, "not allowed here");
        return 0;
    }
    if (strcmp(seg[1], "identities") == 0 || strcmp(seg[1], "whoami") == 0) {
        h_identities(api, req, tok, seg, nseg);
        return 0;
    }
    if (strcmp(seg[1], "sessions") != 0 || nseg > 4) {
        send_error(req, 404, "not_found", NULL, "no such endpoint");
        return 0;
    }
    if (nseg == 2) {
        if (tok != NULL) {
            send_error(req, 403, "forbidden", NULL, "a session token reaches only its own session");
            return 0;
        }
        if (method_is(req, "GET"))
            h_list(api, req);
        else if (method_is(req, "POST"))
            h_create(api, req);
        else
            send_error(req, 405, "method_not_allowed", NULL, "not allowed here");
        return 0;
    }
    s = host_session_find(api->host, seg[2]);
    if (tok != NULL && s != tok) {
        send_error(req, 403, "forbidden", NULL, "a session token reaches only its own session");
        return 0;
    }
    if (s == NULL) {
        send_error(req, 404, "not_found", "name", "no session named %s", seg[2]);
        return 0;
    }
    if (nseg == 3 && method_is(req, "GET"))
        h_get(req, s);
    else if (nseg == 3 && method_is(req, "DELETE") && tok == NULL)
        h_delete(api, req, s);
    else if (nseg == 4 && strcmp(seg[3], "transcript") == 0 && method_is(req, "GET"))
        h_transcript(api, req, s);
    else if (nseg == 4 && strcmp(seg[3], "diff") == 0 && method_is(req, "GET"))
        h_diff(api, req, s);
    else if (nseg == 4 && strcmp(seg[3], "actions") == 0 && method_is(req, "POST"))
        h_action(req, s);
    else if (nseg == 3 || nseg == 4)
        send_error(req, 405, "method_not_allowed", NULL, "not allowed here");
    else
        send_error(req, 404, "not_found", NULL, "no such endpoint");
    return 0;
}

/* ---- the listener -------------------------------------------------------------------------------------------- */

static void on_accept(uv_stream_t *listener, int status)
{
    host_api_t *api = listener->data;
    uv_pipe_t *conn;
    h2o_socket_t *sock;
    if (status != 0)
        return;
    conn = h2o_mem_alloc(sizeof(*conn));
    uv_pipe_init(listener->loop, conn, 0);
    if (uv_accept(listener, (uv_stream_t *)conn) != 0) {
        uv_close((uv_handle_t *)conn, (uv_close_cb)free);
        return;
    }
    sock = h2o_uv_socket_create((uv_stream_t *)conn, (uv_close_cb)free);
    h2o_accept(&api->accept, sock);
}

/* Whether a server answers on the unix socket at path. */
static int socket_alive(const char *path)
{
    struct sockaddr_un sa = {.sun_family = AF_UNIX};
    int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0), alive;
    if (fd < 0)
        return 0;
    snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
    alive = connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0;
    close(fd);
    return alive;
}

int host_api_start(host_api_t **out, host_t *h, uv_loop_t *loop, const char *sock_path)
{
    host_api_t *api;
    h2o_hostconf_t *hc;
    h2o_pathconf_t *pc;
    h2o_handler_t *handler;
    mode_t old;
    int rc;

    *out = NULL;
    if (strlen(sock_path) >= sizeof(api->path))
        return cr_error_set(CR_ECONFIG, "home", "the socket path is too long for a unix socket (%zu bytes, at most %zu): %s",
                            strlen(sock_path), sizeof(api->path) - 1, sock_path);
    if (socket_alive(sock_path))
        return cr_error_set(CR_EEXISTS, "home", "another corrald is running on %s", sock_path);
    if (unlink(sock_path) != 0 && errno != ENOENT)
        return cr_error_set(CR_EIO, "home", "cannot remove the stale socket %s: %s", sock_path, strerror(errno));
    if ((api = calloc(1, sizeof(*api))) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    api->host = h;
    api->loop = loop;
    snprintf(api->path, sizeof(api->path), "%s", sock_path);
    h2o_config_init(&api->config);
    api->config.server_name = h2o_iovec_init(H2O_STRLIT("corrald"));
    api->config.max_request_entity_size = HOST_API_BODY_MAX;
    api->config.http1.req_timeout = (HOST_API_WAIT_MAX_S + 60) * 1000;
    hc = h2o_config_register_host(&api->config, h2o_iovec_init(H2O_STRLIT("default")), 65535);
    pc = h2o_config_register_path(hc, "/", 0);
    handler = h2o_create_handler(pc, sizeof(*handler) + sizeof(host_api_t *));
    *(host_api_t **)(handler + 1) = api;
    handler->on_req = on_req;
    h2o_context_init(&api->ctx, loop, &api->config);
    api->accept.ctx = &api->ctx;
    api->accept.hosts = api->config.hosts;

    uv_pipe_init(loop, &api->listener, 0);
    api->listener.data = api;
    old = umask(0177);
    rc = uv_pipe_bind(&api->listener, sock_path);
    umask(old);
    if (rc == 0 && chmod(sock_path, 0600) != 0)
        rc = -errno;
    if (rc == 0)
        rc = uv_listen((uv_stream_t *)&api->listener, 128, on_accept);
    if (rc != 0) {
        uv_close((uv_handle_t *)&api->listener, NULL);
        api->closed = 1;
        api->never_accepted = 1;
        *out = api;
        return cr_error_set(CR_EIO, "home", "cannot listen on %s: %s", sock_path, uv_strerror(rc));
    }
    api->listening = 1;
    cr_log(CR_LOG_INFO, "local API on unix:%s", sock_path);
    *out = api;
    return 0;
}

void host_api_close(host_api_t *api)
{
    if (api == NULL || api->closed)
        return;
    api->closed = 1;
    if (api->listening) {
        uv_close((uv_handle_t *)&api->listener, NULL);
        api->listening = 0;
        unlink(api->path);
    }
    while (api->waits != NULL) {
        api_wait_t *w = api->waits;
        h2o_req_t *req = w->req;
        wait_drop(w);
        if (req != NULL)
            send_error(req, 503, "unavailable", NULL, "corrald is shutting down");
    }
    h2o_context_request_shutdown(&api->ctx);
}

void host_api_free(host_api_t *api)
{
    if (api == NULL)
        return;
    if (api->listening || !api->closed)
        host_api_close(api);
    /* h2o 2.2's context keeps timers on the loop until its last connection is gone, and disposing it earlier trips its
     * assertions; like corral-relay we leave the context to the process's exit. Only the listener-failed case, where
     * no connection was ever accepted, is disposed. */
    if (api->never_accepted) {
        h2o_context_dispose(&api->ctx);
        h2o_config_dispose(&api->config);
        free(api);
    }
}
