/* server/src/agent_codex.c — the Codex driver: `codex app-server` JSON-RPC over stdio (initialize, thread/start or
 * thread/resume, turn/start, approvals) to and from Corral events. */
#include "agent.h"
#include "corral/buf.h"
#include "corral/error.h"
#include "corral/log.h"
#include "corral/ulid.h"
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#ifndef CORRAL_VERSION
#define CORRAL_VERSION "0"
#endif

#define CALL_RING 16 /* our requests awaiting an answer */
#define ITEM_RING 16 /* fileChange items remembered, for their approval requests */

enum { CALL_NONE, CALL_INIT, CALL_THREAD, CALL_TURN, CALL_OTHER };

typedef struct st_codex_pending_t {
    char rid[CR_ULID_LEN + 1];
    cr_buf_t id; /* the server request's JSON-RPC id (msgpack), echoed in the answer */
} codex_pending_t;

typedef struct st_codex_item_t {
    char *id;
    char *summary;
    cr_buf_t changes; /* msgpack of item.changes */
} codex_item_t;

typedef struct st_codex_t {
    uint64_t next_id;
    struct {
        uint64_t id;
        int what;
    } calls[CALL_RING];
    char *cwd, *resume_id, *instructions;
    char *thread_id, *turn_id;
    int ready;          /* the thread is started or resumed */
    int interrupt_wanted;
    char *queue[HOST_AGENT_MAX_QUEUE]; /* user input waiting for the thread or the running turn to end */
    size_t nqueue;
    cr_buf_t last_text;
    codex_pending_t pending[HOST_AGENT_MAX_QUEUE];
    size_t npending;
    codex_item_t items[ITEM_RING];
    size_t item_next;
} codex_t;

/* ---- sending -------------------------------------------------------------------------------------------------- */

/* Starts a request: {"method":M,"id":N,"params": — the caller appends the params value. */
static int request_head(codex_t *x, cr_buf_t *b, const char *method, int what)
{
    uint64_t id = ++x->next_id;
    x->calls[id % CALL_RING].id = id;
    x->calls[id % CALL_RING].what = what;
    return cr_mpw_map(b, 3) || CR_MPW_LIT(b, "method") || cr_mpw_str(b, method, strlen(method)) || CR_MPW_LIT(b, "id") ||
           cr_mpw_uint(b, id) || CR_MPW_LIT(b, "params");
}

static int finish_send(host_agent_t *a, cr_buf_t *b, int rc)
{
    if (rc == 0)
        rc = host_agent__send(a, b->base, b->len);
    else
        rc = cr_error_set(CR_ETOOLARGE, NULL, "the message is too large");
    cr_buf_free(b);
    return rc == 0 ? 0 : -1;
}

static int start_turn(host_agent_t *a, const char *text)
{
    codex_t *x = a->priv;
    cr_buf_t b;
    cr_buf_init(&b, 2 * HOST_AGENT_MAX_LINE);
    int rc = request_head(x, &b, "turn/start", CALL_TURN) || cr_mpw_map(&b, 2) || CR_MPW_LIT(&b, "threadId") ||
             cr_mpw_str(&b, x->thread_id, strlen(x->thread_id)) || CR_MPW_LIT(&b, "input") || cr_mpw_array(&b, 1) ||
             cr_mpw_map(&b, 2) || CR_MPW_LIT(&b, "type") || CR_MPW_LIT(&b, "text") || CR_MPW_LIT(&b, "text") ||
             cr_mpw_str(&b, text, strlen(text));
    if ((rc = finish_send(a, &b, rc)) == 0) {
        a->busy = 1;
        x->last_text.len = 0;
    }
    return rc;
}

/* Starts the next queued input, if any; returns 1 when a turn was started. */
static int next_turn(host_agent_t *a)
{
    codex_t *x = a->priv;
    char *text;
    int rc;
    if (!x->ready || a->busy || x->nqueue == 0)
        return 0;
    text = x->queue[0];
    memmove(x->queue, x->queue + 1, (--x->nqueue) * sizeof(x->queue[0]));
    rc = start_turn(a, text);
    free(text);
    return rc == 0;
}

static int send_interrupt(host_agent_t *a)
{
    codex_t *x = a->priv;
    cr_buf_t b;
    cr_buf_init(&b, 4096);
    int rc = request_head(x, &b, "turn/interrupt", CALL_OTHER) || cr_mpw_map(&b, 2) || CR_MPW_LIT(&b, "threadId") ||
             cr_mpw_str(&b, x->thread_id, strlen(x->thread_id)) || CR_MPW_LIT(&b, "turnId") ||
             cr_mpw_str(&b, x->turn_id, strlen(x->turn_id));
    x->interrupt_wanted = 0;
    return finish_send(a, &b, rc);
}

/* The answer to a server request: {"id":ID,"result":{"decision":D}} or {"id":ID,"error":{...}}. */
static int respond(host_agent_t *a, const char *id, size_t idlen, const char *decision, const char *error)
{
    cr_buf_t b;
    cr_buf_init(&b, 4096);
    int rc = cr_mpw_map(&b, 2) || CR_MPW_LIT(&b, "id") || cr_buf_append(&b, id, idlen);
    if (decision != NULL)
        rc = rc || CR_MPW_LIT(&b, "result") || cr_mpw_map(&b, 1) || CR_MPW_LIT(&b, "decision") ||
             cr_mpw_str(&b, decision, strlen(decision));
    else
        rc = rc || CR_MPW_LIT(&b, "error") || cr_mpw_map(&b, 2) || CR_MPW_LIT(&b, "code") ||
             cr_buf_append(&b, "\xd1\x80\xa7", 3) /* int16 -32601 */ || CR_MPW_LIT(&b, "message") ||
             cr_mpw_str(&b, error, strlen(error));
    return finish_send(a, &b, rc);
}

/* ---- the driver ----------------------------------------------------------------------------------------------- */

static int codex_args(host_agent_t *a, const host_agent_opts_t *opts, const char **argv, size_t room, size_t *n)
{
    (void)a;
    (void)opts;
    if (room < 2)
        return cr_error_set(CR_ECONFIG, "program", "the agent command line has too many words");
    argv[0] = "app-server";
    *n += 1;
    return 0;
}

static int codex_begin(host_agent_t *a, const host_agent_opts_t *opts)
{
    codex_t *x = calloc(1, sizeof(*x));
    cr_buf_t b;
    int rc;
    if (x == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    a->priv = x;
    cr_buf_init(&x->last_text, HOST_AGENT_MAX_TEXT * 4);
    if ((x->cwd = strdup(opts->cwd)) == NULL ||
        (opts->resume_id != NULL && (x->resume_id = strdup(opts->resume_id)) == NULL) ||
        (opts->instructions != NULL && opts->instructions[0] != '\0' &&
         (x->instructions = strdup(opts->instructions)) == NULL) ||
        (opts->prompt != NULL && (x->queue[x->nqueue++] = strdup(opts->prompt)) == NULL))
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    cr_buf_init(&b, 4096);
    rc = request_head(x, &b, "initialize", CALL_INIT) || cr_mpw_map(&b, 1) || CR_MPW_LIT(&b, "clientInfo") ||
         cr_mpw_map(&b, 3) || CR_MPW_LIT(&b, "name") || CR_MPW_LIT(&b, "corral") || CR_MPW_LIT(&b, "title") ||
         CR_MPW_LIT(&b, "Corral") || CR_MPW_LIT(&b, "version") || CR_MPW_LIT(&b, CORRAL_VERSION);
    return finish_send(a, &b, rc);
}

/* Gives up on the agent: a message the user sees, a note for on_exit, and the process is asked to end. */
static void fail_agent(host_agent_t *a, const char *what, cr_span_t msg)
{
    char text[600];
    int n = snprintf(text, sizeof(text), "codex: %s failed: %.*s", what, (int)(msg.len > 400 ? 400 : msg.len), msg.base);
    host_agent__message(a, 1, text, (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1);
    host_agent__note(a, "corral: %s", text);
    cr_log(CR_LOG_WARN, "agent pid %ld: %s", (long)a->pid, text);
    host_agent__abort(a);
}

static void open_thread(host_agent_t *a)
{
    codex_t *x = a->priv;
    cr_buf_t b;
    int rc;
    cr_buf_init(&b, 2 * HOST_AGENT_MAX_LINE);
    rc = cr_mpw_map(&b, 1) || CR_MPW_LIT(&b, "method") || CR_MPW_LIT(&b, "initialized");
    if (finish_send(a, &b, rc) != 0)
        return;
    cr_buf_init(&b, 2 * HOST_AGENT_MAX_LINE);
    rc = request_head(x, &b, x->resume_id != NULL ? "thread/resume" : "thread/start", CALL_THREAD) ||
         cr_mpw_map(&b, 1 + (x->resume_id != NULL) + (x->instructions != NULL)) || CR_MPW_LIT(&b, "cwd") ||
         cr_mpw_str(&b, x->cwd, strlen(x->cwd));
    if (x->resume_id != NULL)
        rc = rc || CR_MPW_LIT(&b, "threadId") || cr_mpw_str(&b, x->resume_id, strlen(x->resume_id));
    if (x->instructions != NULL)
        rc = rc || CR_MPW_LIT(&b, "developerInstructions") || cr_mpw_str(&b, x->instructions, strlen(x->instructions));
    finish_send(a, &b, rc);
}

static void on_response(host_agent_t *a, cr_span_t msg, uint64_t id)
{
    codex_t *x = a->priv;
    cr_span_t v, err = {"(no message)", 12};
    int what = x->calls[id % CALL_RING].id == id ? x->calls[id % CALL_RING].what : CALL_NONE;
    int failed = host_agent__get(msg, "error", &v) == 0;
    if (failed)
        (void)host_agent__str(msg, "error.message", &err);
    switch (what) {
    case CALL_INIT:
        if (failed)
            fail_agent(a, "initialize", err);
        else
            open_thread(a);
        break;
    case CALL_THREAD:
        if (failed) {
            fail_agent(a, x->resume_id != NULL ? "thread/resume" : "thread/start", err);
        } else if (host_agent__str(msg, "result.thread.id", &v) == 0) {
            free(x->thread_id);
            x->thread_id = cr_strndup(v.base, v.len);
            x->ready = 1;
            host_agent__resume_id(a, v.base, v.len);
            next_turn(a);
        }
        break;
    case CALL_TURN:
        if (failed) {
            char text[600];
            int n = snprintf(text, sizeof(text), "codex: turn/start failed: %.*s", (int)(err.len > 400 ? 400 : err.len),
                             err.base);
            host_agent__message(a, 1, text, (size_t)n);
            a->busy = 0;
            if (!next_turn(a))
                host_agent__turn_done(a, "", 0);
        } else if (host_agent__str(msg, "result.turn.id", &v) == 0 && x->turn_id == NULL) {
            x->turn_id = cr_strndup(v.base, v.len);
            if (x->interrupt_wanted)
                send_interrupt(a);
        }
        break;
    default:
        break;
    }
}

static void forget_item(codex_t *x, cr_span_t id)
{
    for (size_t i = 0; i < ITEM_RING; ++i) {
        codex_item_t *it = &x->items[i];
        if (it->id != NULL && strlen(it->id) == id.len && memcmp(it->id, id.base, id.len) == 0) {
            free(it->id);
            free(it->summary);
            cr_buf_free(&it->changes);
            memset(it, 0, sizeof(*it));
        }
    }
}

static const codex_item_t *find_item(codex_t *x, cr_span_t id)
{
    for (size_t i = 0; i < ITEM_RING; ++i)
        if (x->items[i].id != NULL && strlen(x->items[i].id) == id.len && memcmp(x->items[i].id, id.base, id.len) == 0)
            return &x->items[i];
    return NULL;
}

/* The paths of a fileChange item's changes, relative to the worktree, comma-separated. */
static void change_paths(host_agent_t *a, cr_span_t changes, cr_buf_t *out)
{
    cr_mp_item_t it;
    const char *p = changes.base, *end = changes.base + changes.len;
    size_t hl = cr_mp_read(p, end, &it);
    if (hl == 0 || it.type != MSGPACK_OBJECT_ARRAY)
        return;
    p += hl;
    for (uint32_t i = 0; i < it.count && out->len < HOST_AGENT_MAX_SUMMARY; ++i) {
        const char *next = cr_mp_skip(p, end);
        cr_span_t ch = {p, (size_t)(next - p)}, path;
        if (host_agent__str(ch, "path", &path) == 0) {
            if (out->len != 0)
                (void)cr_buf_append(out, ", ", 2);
            host_agent__relpath(a, out, path.base, path.len);
        }
        p = next;
    }
}

static void item_result(host_agent_t *a, cr_span_t item)
{
    cr_span_t cmd, out = {"", 0}, status;
    cr_buf_t b;
    if (host_agent__str(item, "command", &cmd) != 0 || host_agent__str(item, "status", &status) != 0 ||
        !(cr_span_eq(status, "completed", 9) || cr_span_eq(status, "failed", 6)))
        return;
    (void)host_agent__str(item, "aggregatedOutput", &out);
    while (out.len > 0 && out.base[out.len - 1] == '\n')
        --out.len;
    cr_buf_init(&b, 4 * HOST_AGENT_MAX_TEXT);
    if (!(cr_mpw_map(&b, 4) || CR_MPW_LIT(&b, "tool") || CR_MPW_LIT(&b, "shell") || CR_MPW_LIT(&b, "summary") ||
          cr_mpw_str(&b, cmd.base, host_agent__utf8_cut(cmd.base, cmd.len, HOST_AGENT_MAX_SUMMARY)) ||
          CR_MPW_LIT(&b, "output") || cr_mpw_str(&b, out.base, host_agent__utf8_cut(out.base, out.len, HOST_AGENT_MAX_TEXT)) ||
          CR_MPW_LIT(&b, "is_error") || cr_mpw_bool(&b, !cr_span_eq(status, "completed", 9))))
        host_agent__event(a, "agent.tool", 0, &b);
    cr_buf_free(&b);
}

static void on_item(host_agent_t *a, cr_span_t params, int completed)
{
    codex_t *x = a->priv;
    cr_span_t item, type, v, id;
    if (host_agent__get(params, "item", &item) != 0 || host_agent__str(item, "type", &type) != 0)
        return;
    if (cr_span_eq(type, "agentMessage", 12)) {
        if (completed && host_agent__str(item, "text", &v) == 0) {
            host_agent__message(a, 1, v.base, v.len);
            x->last_text.len = 0;
            (void)cr_buf_append(&x->last_text, v.base, host_agent__utf8_cut(v.base, v.len, HOST_AGENT_MAX_TEXT * 2));
        }
    } else if (cr_span_eq(type, "commandExecution", 16)) {
        if (!completed && host_agent__str(item, "command", &v) == 0) {
            host_agent__tool(a, "shell", 5, v.base, v.len);
        } else if (completed) {
            item_result(a, item);
            x->last_text.len = 0;
        }
    } else if (cr_span_eq(type, "fileChange", 10)) {
        if (host_agent__str(item, "id", &id) != 0)
            return;
        if (completed) {
            forget_item(x, id);
            x->last_text.len = 0;
        } else if (host_agent__get(item, "changes", &v) == 0) {
            cr_buf_t paths;
            codex_item_t *slot = &x->items[x->item_next++ % ITEM_RING];
            cr_buf_init(&paths, HOST_AGENT_MAX_SUMMARY * 2);
            change_paths(a, v, &paths);
            if (paths.len == 0)
                (void)cr_buf_append(&paths, "(no files)", 10);
            host_agent__tool(a, "edit", 4, paths.base, paths.len);
            free(slot->id);
            free(slot->summary);
            cr_buf_free(&slot->changes);
            slot->id = cr_strndup(id.base, id.len);
            slot->summary = cr_strndup(paths.base, paths.len);
            cr_buf_init(&slot->changes, 64 * 1024);
            if (host_agent__copy_trimmed(&slot->changes, v, 8192, 6) != 0)
                slot->changes.len = 0;
            cr_buf_free(&paths);
        }
    } else if (cr_span_eq(type, "mcpToolCall", 11) && !completed) {
        cr_span_t server, tool;
        if (host_agent__str(item, "server", &server) == 0 && host_agent__str(item, "tool", &tool) == 0)
            host_agent__tool(a, "mcp", 3, tool.base, tool.len);
    } else if (cr_span_eq(type, "webSearch", 9) && !completed) {
        if (host_agent__str(item, "query", &v) == 0)
            host_agent__tool(a, "web_search", 10, v.base, v.len);
    }
}

static void on_approval(host_agent_t *a, cr_span_t id, cr_span_t method, cr_span_t params)
{
    codex_t *x = a->priv;
    int is_cmd = cr_span_eq(method, "item/commandExecution/requestApproval", 37);
    cr_span_t v, item_id;
    cr_buf_t b;
    codex_pending_t *pd;
    int rc;
    if (x->npending == HOST_AGENT_MAX_QUEUE) {
        respond(a, id.base, id.len, "decline", NULL);
        return;
    }
    pd = &x->pending[x->npending++];
    cr_ulid_new(pd->rid);
    cr_buf_init(&pd->id, 256);
    if (cr_buf_append(&pd->id, id.base, id.len) != 0) {
        cr_buf_free(&pd->id);
        --x->npending;
        respond(a, id.base, id.len, "decline", NULL);
        return;
    }
    cr_buf_init(&b, 256 * 1024 - 4096);
    rc = cr_mpw_map(&b, 4) || CR_MPW_LIT(&b, "rid") || cr_mpw_str(&b, pd->rid, CR_ULID_LEN) || CR_MPW_LIT(&b, "tool");
    if (is_cmd) {
        if (host_agent__str(params, "command", &v) != 0)
            v = (cr_span_t){"(command)", 9};
        rc = rc || CR_MPW_LIT(&b, "shell") || CR_MPW_LIT(&b, "summary") ||
             cr_mpw_str(&b, v.base, host_agent__utf8_cut(v.base, v.len, HOST_AGENT_MAX_SUMMARY)) ||
             CR_MPW_LIT(&b, "input");
        if (rc == 0 && host_agent__copy_trimmed(&b, params, 8192, 8) != 0)
            rc = cr_mpw_nil(&b);
    } else {
        const codex_item_t *it = host_agent__str(params, "itemId", &item_id) == 0 ? find_item(x, item_id) : NULL;
        const char *summary = it != NULL && it->summary != NULL ? it->summary : "file changes";
        rc = rc || CR_MPW_LIT(&b, "edit") || CR_MPW_LIT(&b, "summary") || cr_mpw_str(&b, summary, strlen(summary)) ||
             CR_MPW_LIT(&b, "input") || cr_mpw_map(&b, 2) || CR_MPW_LIT(&b, "changes");
        if (rc == 0)
            rc = it != NULL && it->changes.len != 0 ? cr_buf_append(&b, it->changes.base, it->changes.len) : cr_mpw_nil(&b);
        rc = rc || CR_MPW_LIT(&b, "reason");
        if (rc == 0)
            rc = host_agent__str(params, "reason", &v) == 0 ? cr_mpw_str(&b, v.base, host_agent__utf8_cut(v.base, v.len, 4096))
                                                          : cr_mpw_nil(&b);
    }
    if (rc == 0)
        host_agent__event(a, "approval.request", 2, &b);
    cr_buf_free(&b);
}

static void pending_drop(codex_t *x, size_t i)
{
    cr_buf_free(&x->pending[i].id);
    x->pending[i] = x->pending[--x->npending];
}

static void on_turn_completed(host_agent_t *a, cr_span_t params)
{
    codex_t *x = a->priv;
    cr_span_t status;
    int ok = host_agent__str(params, "turn.status", &status) == 0 && cr_span_eq(status, "completed", 9);
    free(x->turn_id);
    x->turn_id = NULL;
    x->interrupt_wanted = 0;
    while (x->npending > 0)
        pending_drop(x, x->npending - 1);
    a->busy = 0;
    if (next_turn(a))
        return; /* queued input: the agent is not idle */
    if (ok)
        host_agent__turn_done(a, x->last_text.base, x->last_text.len);
    else
        host_agent__turn_done(a, "", 0);
    x->last_text.len = 0;
}

static void codex_on_line(host_agent_t *a, char *line, size_t len)
{
    codex_t *x = a->priv;
    cr_buf_t mp;
    cr_span_t msg, method, id, params = {"\x80", 1}, v;
    cr_mp_item_t it;
    int has_method, has_id;
    cr_buf_init(&mp, 2 * HOST_AGENT_MAX_LINE);
    if (host_agent__parse(a, &mp, line, len) != 0)
        goto done;
    msg = (cr_span_t){mp.base, mp.len};
    has_method = host_agent__str(msg, "method", &method) == 0;
    has_id = host_agent__get(msg, "id", &id) == 0;
    (void)host_agent__get(msg, "params", &params);
    if (!has_method) {
        if (has_id && cr_mp_read(id.base, id.base + id.len, &it) != 0 && it.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            on_response(a, msg, it.u);
    } else if (has_id) {
        if (cr_span_eq(method, "item/commandExecution/requestApproval", 37) ||
            cr_span_eq(method, "item/fileChange/requestApproval", 31))
            on_approval(a, id, method, params);
        else
            respond(a, id.base, id.len, NULL, "corral does not handle this request");
    } else if (cr_span_eq(method, "turn/started", 12)) {
        if (x->turn_id == NULL && host_agent__str(params, "turn.id", &v) == 0) {
            x->turn_id = cr_strndup(v.base, v.len);
            if (x->interrupt_wanted)
                send_interrupt(a);
        }
        a->busy = 1;
        host_agent__state(a, "running");
    } else if (cr_span_eq(method, "item/started", 12)) {
        on_item(a, params, 0);
    } else if (cr_span_eq(method, "item/completed", 14)) {
        on_item(a, params, 1);
    } else if (cr_span_eq(method, "error", 5)) {
        int retry = host_agent__get(params, "willRetry", &v) == 0 && (uint8_t)v.base[0] == 0xc3;
        if (!retry && host_agent__str(params, "error.message", &v) == 0) {
            char text[HOST_AGENT_MAX_TEXT];
            int n = snprintf(text, sizeof(text), "Error: %.*s", (int)(v.len > 4000 ? 4000 : v.len), v.base);
            host_agent__message(a, 1, text, (size_t)n < sizeof(text) ? (size_t)n : sizeof(text) - 1);
        }
    } else if (cr_span_eq(method, "turn/completed", 14)) {
        on_turn_completed(a, params);
    } else if (cr_span_eq(method, "serverRequest/resolved", 22)) {
        /* answered, or cancelled because the turn stopped: no longer ours to answer */
        if (host_agent__get(params, "requestId", &v) == 0)
            for (size_t i = 0; i < x->npending; ++i)
                if (x->pending[i].id.len == v.len && memcmp(x->pending[i].id.base, v.base, v.len) == 0) {
                    pending_drop(x, i);
                    break;
                }
    }
done:
    cr_buf_free(&mp);
}

static int codex_reply(host_agent_t *a, const char *text)
{
    codex_t *x = a->priv;
    if (x->nqueue == HOST_AGENT_MAX_QUEUE)
        return cr_error_set(CR_ETOOLARGE, NULL, "too many messages are waiting for the agent");
    if ((x->queue[x->nqueue] = strdup(text)) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    ++x->nqueue;
    next_turn(a);
    return 0;
}

static int codex_approve(host_agent_t *a, const char *rid, int allow, const char *message)
{
    codex_t *x = a->priv;
    (void)message; /* app-server's decisions carry no text */
    for (size_t i = 0; i < x->npending; ++i) {
        if (strcmp(x->pending[i].rid, rid) != 0)
            continue;
        int rc = respond(a, x->pending[i].id.base, x->pending[i].id.len, allow ? "accept" : "decline", NULL);
        pending_drop(x, i);
        return rc;
    }
    return cr_error_set(CR_ENOTFOUND, "rid", "no pending approval request %s", rid);
}

static int codex_interrupt(host_agent_t *a)
{
    codex_t *x = a->priv;
    if (!a->busy)
        return 0;
    if (x->turn_id == NULL) {
        x->interrupt_wanted = 1; /* sent when turn/start answers */
        return 0;
    }
    return send_interrupt(a);
}

static void codex_ended(host_agent_t *a)
{
    codex_t *x = a->priv;
    if (x != NULL)
        while (x->npending > 0)
            pending_drop(x, x->npending - 1);
}

static void codex_dispose(host_agent_t *a)
{
    codex_t *x = a->priv;
    if (x == NULL)
        return;
    codex_ended(a);
    for (size_t i = 0; i < x->nqueue; ++i)
        free(x->queue[i]);
    for (size_t i = 0; i < ITEM_RING; ++i) {
        free(x->items[i].id);
        free(x->items[i].summary);
        cr_buf_free(&x->items[i].changes);
    }
    cr_buf_free(&x->last_text);
    free(x->cwd);
    free(x->resume_id);
    free(x->instructions);
    free(x->thread_id);
    free(x->turn_id);
    free(x);
    a->priv = NULL;
}

const host_agent_driver_t host_agent_codex_driver = {
    .args = codex_args,
    .begin = codex_begin,
    .on_line = codex_on_line,
    .reply = codex_reply,
    .approve = codex_approve,
    .interrupt = codex_interrupt,
    .ended = codex_ended,
    .dispose = codex_dispose,
};
