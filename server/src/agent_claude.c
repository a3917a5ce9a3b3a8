/* server/src/agent_claude.c — the Claude Code driver: the CLI's stream-json protocol on stdin/stdout (as the Agent
 * SDKs drive it) to and from Corral events. */
#include "agent.h"
#include "corral/buf.h"
#include "corral/error.h"
#include "corral/log.h"
#include "corral/ulid.h"
#include <msgpack.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define TOOL_RING 32 /* tool_use ids remembered, to name the tool of a tool_result */

typedef struct st_claude_pending_t {
    char rid[CR_ULID_LEN + 1]; /* ours, in approval.request */
    char *request_id;          /* the CLI's */
    cr_buf_t input;            /* the tool input as asked (msgpack), sent back as updatedInput */
} claude_pending_t;

typedef struct st_claude_tool_t {
    char *id, *name, *summary;
} claude_tool_t;

typedef struct st_claude_t {
    unsigned counter;   /* for request ids */
    char init_id[48];   /* the initialize request, answered before any prompt goes out */
    int initialized;
    cr_buf_t queue;     /* JSON lines held until initialize is answered */
    int outstanding;    /* user messages sent whose turn has not ended */
    int seen_init;      /* system/init came (once per process, with the first turn) */
    cr_buf_t last_text; /* the turn's last assistant text, "" after a tool call */
    claude_pending_t pending[HOST_AGENT_MAX_QUEUE];
    size_t npending;
    claude_tool_t tools[TOOL_RING];
    size_t tool_next;
} claude_t;

/* ---- sending -------------------------------------------------------------------------------------------------- */

static void next_request_id(claude_t *c, char *out, size_t outlen)
{
    char u[CR_ULID_LEN + 1];
    cr_ulid_new(u);
    snprintf(out, outlen, "req_%u_%.8s", ++c->counter, u + CR_ULID_LEN - 8);
}

/* Sends the msgpack message in b as a JSON line, or holds it until initialize is answered. */
static int send_msg(host_agent_t *a, cr_buf_t *b, int hold)
{
    claude_t *c = a->priv;
    int rc;
    if (hold && !c->initialized) {
        /* msgpack values back to back, sent in order when initialize is answered */
        rc = cr_buf_append(&c->queue, b->base, b->len) == 0 ? 0 : cr_error_set(CR_ETOOLARGE, NULL, "too much queued input");
    } else {
        rc = host_agent__send(a, b->base, b->len);
    }
    cr_buf_free(b);
    return rc;
}

static int send_user(host_agent_t *a, const char *text)
{
    claude_t *c = a->priv;
    cr_buf_t b;
    cr_buf_init(&b, 2 * HOST_AGENT_MAX_LINE);
    if (cr_mpw_map(&b, 4) || CR_MPW_LIT(&b, "type") || CR_MPW_LIT(&b, "user") || CR_MPW_LIT(&b, "message") ||
        cr_mpw_map(&b, 2) || CR_MPW_LIT(&b, "role") || CR_MPW_LIT(&b, "user") || CR_MPW_LIT(&b, "content") ||
        cr_mpw_str(&b, text, strlen(text)) || CR_MPW_LIT(&b, "parent_tool_use_id") || cr_mpw_nil(&b) ||
        CR_MPW_LIT(&b, "session_id") || CR_MPW_LIT(&b, "default")) {
        cr_buf_free(&b);
        return cr_error_set(CR_ETOOLARGE, "text", "the message is too large");
    }
    if (send_msg(a, &b, 1) != 0)
        return -1;
    if (c->outstanding++ == 0) {
        a->busy = 1;
        if (c->seen_init) /* the first turn says so at system/init */
            host_agent__state(a, "running");
    }
    return 0;
}

static int control_request(host_agent_t *a, const char *subtype, char *id_out, size_t idlen, int hold)
{
    claude_t *c = a->priv;
    cr_buf_t b;
    int is_init = strcmp(subtype, "initialize") == 0;
    next_request_id(c, id_out, idlen);
    cr_buf_init(&b, 1024);
    if (cr_mpw_map(&b, 3) || CR_MPW_LIT(&b, "type") || CR_MPW_LIT(&b, "control_request") ||
        CR_MPW_LIT(&b, "request_id") || cr_mpw_str(&b, id_out, strlen(id_out)) || CR_MPW_LIT(&b, "request") ||
        cr_mpw_map(&b, is_init ? 2 : 1) || CR_MPW_LIT(&b, "subtype") || cr_mpw_str(&b, subtype, strlen(subtype)) ||
        (is_init && (CR_MPW_LIT(&b, "hooks") || cr_mpw_nil(&b)))) {
        cr_buf_free(&b);
        return -1;
    }
    return send_msg(a, &b, hold);
}

/* control_response to a request of the CLI: success with `payload` (msgpack map, may be NULL) or an error. */
static int control_response(host_agent_t *a, cr_span_t request_id, const char *payload, size_t plen, const char *error)
{
    cr_buf_t b;
    cr_buf_init(&b, 2 * HOST_AGENT_MAX_LINE);
    if (cr_mpw_map(&b, 2) || CR_MPW_LIT(&b, "type") || CR_MPW_LIT(&b, "control_response") ||
        CR_MPW_LIT(&b, "response") || cr_mpw_map(&b, 3) || CR_MPW_LIT(&b, "subtype") ||
        (error != NULL ? CR_MPW_LIT(&b, "error") : CR_MPW_LIT(&b, "success")) || CR_MPW_LIT(&b, "request_id") ||
        cr_mpw_str(&b, request_id.base, request_id.len) ||
        (error != NULL ? (CR_MPW_LIT(&b, "error") || cr_mpw_str(&b, error, strlen(error)))
                       : (CR_MPW_LIT(&b, "response") || cr_buf_append(&b, payload, plen)))) {
        cr_buf_free(&b);
        return cr_error_set(CR_ETOOLARGE, NULL, "the answer is too large");
    }
    return send_msg(a, &b, 0);
}

/* ---- the driver ----------------------------------------------------------------------------------------------- */

static int claude_args(host_agent_t *a, const host_agent_opts_t *opts, const char **argv, size_t room, size_t *n)
{
    static const char *const fixed[] = {"-p", "--verbose", "--output-format", "stream-json", "--input-format",
                                        "stream-json", "--permission-prompt-tool", "stdio"};
    size_t i = 0;
    (void)a;
    if (room < 8 + 4)
        return cr_error_set(CR_ECONFIG, "program", "the agent command line has too many words");
    for (; i < 8; ++i)
        argv[i] = fixed[i];
    if (opts->resume_id != NULL) {
        argv[i++] = "--resume";
        argv[i++] = opts->resume_id;
    }
    if (opts->instructions != NULL && opts->instructions[0] != '\0') {
        argv[i++] = "--append-system-prompt";
        argv[i++] = opts->instructions;
    }
    *n += i;
    return 0;
}

static int claude_begin(host_agent_t *a, const host_agent_opts_t *opts)
{
    claude_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    a->priv = c;
    cr_buf_init(&c->queue, 4 * HOST_AGENT_MAX_LINE);
    cr_buf_init(&c->last_text, HOST_AGENT_MAX_TEXT * 4);
    if (control_request(a, "initialize", c->init_id, sizeof(c->init_id), 0) != 0)
        return -1;
    if (opts->prompt != NULL && send_user(a, opts->prompt) != 0)
        return -1;
    return 0;
}

static void pending_drop(claude_t *c, size_t i)
{
    free(c->pending[i].request_id);
    cr_buf_free(&c->pending[i].input);
    c->pending[i] = c->pending[--c->npending];
}

static void pending_clear(claude_t *c)
{
    while (c->npending > 0)
        pending_drop(c, c->npending - 1);
}

static void remember_tool(claude_t *c, cr_span_t id, cr_span_t name, const char *summary, size_t slen)
{
    claude_tool_t *t = &c->tools[c->tool_next++ % TOOL_RING];
    free(t->id);
    free(t->name);
    free(t->summary);
    t->id = cr_strndup(id.base, id.len);
    t->name = cr_strndup(name.base, name.len);
    t->summary = cr_strndup(summary, slen);
}

static const claude_tool_t *find_tool(claude_t *c, cr_span_t id)
{
    for (size_t i = 0; i < TOOL_RING; ++i)
        if (c->tools[i].id != NULL && strlen(c->tools[i].id) == id.len && memcmp(c->tools[i].id, id.base, id.len) == 0)
            return &c->tools[i];
    return NULL;
}

static void on_assistant(host_agent_t *a, cr_span_t msg)
{
    claude_t *c = a->priv;
    cr_span_t content, parent;
    cr_mp_item_t it;
    const char *p, *end;
    int sub = host_agent__get(msg, "parent_tool_use_id", &parent) == 0 && (uint8_t)parent.base[0] != 0xc0;
    if (host_agent__get(msg, "message.content", &content) != 0 ||
        (p = content.base, end = content.base + content.len, cr_mp_read(p, end, &it)) == 0 ||
        it.type != MSGPACK_OBJECT_ARRAY)
        return;
    p += cr_mp_read(p, end, &it);
    for (uint32_t i = 0; i < it.count && !a->freed; ++i) {
        const char *next = cr_mp_skip(p, end);
        cr_span_t block = {p, (size_t)(next - p)}, type, text, name, input, id;
        p = next;
        if (host_agent__str(block, "type", &type) != 0)
            continue;
        if (cr_span_eq(type, "text", 4) && host_agent__str(block, "text", &text) == 0) {
            host_agent__message(a, sub ? 0 : 1, text.base, text.len);
            if (!sub) {
                c->last_text.len = 0;
                (void)cr_buf_append(&c->last_text, text.base, host_agent__utf8_cut(text.base, text.len, HOST_AGENT_MAX_TEXT * 2));
            }
        } else if (cr_span_eq(type, "tool_use", 8) && host_agent__str(block, "name", &name) == 0 &&
                   host_agent__get(block, "input", &input) == 0) {
            cr_buf_t summary;
            cr_buf_init(&summary, HOST_AGENT_MAX_SUMMARY * 2);
            host_agent__summary(a, &summary, name.base, name.len, input);
            if (sub) {
                /* a subagent's tool: record only */
                cr_buf_t b;
                cr_buf_init(&b, 4 * HOST_AGENT_MAX_SUMMARY);
                if (!(cr_mpw_map(&b, 2) || CR_MPW_LIT(&b, "tool") || cr_mpw_str(&b, name.base, name.len) ||
                      CR_MPW_LIT(&b, "summary") || cr_mpw_str(&b, summary.base, summary.len)))
                    host_agent__event(a, "agent.tool", 0, &b);
                cr_buf_free(&b);
            } else {
                host_agent__tool(a, name.base, name.len, summary.base, summary.len);
                c->last_text.len = 0;
            }
            if (host_agent__str(block, "id", &id) == 0)
                remember_tool(c, id, name, summary.base, summary.len);
            cr_buf_free(&summary);
        }
    }
}

/* A tool's result (a "user" message from the CLI): agent.tool {tool, summary, output, is_error} with pri 0, so the
 * transcript keeps what the command printed. */
static void on_user(host_agent_t *a, cr_span_t msg)
{
    claude_t *c = a->priv;
    cr_span_t content;
    cr_mp_item_t it;
    const char *p, *end;
    if (host_agent__get(msg, "message.content", &content) != 0 ||
        (p = content.base, end = content.base + content.len, cr_mp_read(p, end, &it)) == 0 ||
        it.type != MSGPACK_OBJECT_ARRAY)
        return;
    p += cr_mp_read(p, end, &it);
    for (uint32_t i = 0; i < it.count && !a->freed; ++i) {
        const char *next = cr_mp_skip(p, end);
        cr_span_t block = {p, (size_t)(next - p)}, type, id, out = {"", 0}, v;
        const claude_tool_t *t;
        cr_mp_item_t e;
        cr_buf_t b;
        p = next;
        if (host_agent__str(block, "type", &type) != 0 || !cr_span_eq(type, "tool_result", 11) ||
            host_agent__str(block, "tool_use_id", &id) != 0 || (t = find_tool(c, id)) == NULL)
            continue;
        if (host_agent__str(block, "content", &out) != 0 && host_agent__get(block, "content", &v) == 0) {
            /* [{"type":"text","text":...}, ...]: the first text */
            const char *q = v.base, *qend = v.base + v.len;
            size_t hl = cr_mp_read(q, qend, &e);
            if (hl != 0 && e.type == MSGPACK_OBJECT_ARRAY) {
                q += hl;
                for (uint32_t j = 0; j < e.count; ++j) {
                    const char *qn = cr_mp_skip(q, qend);
                    cr_span_t tb = {q, (size_t)(qn - q)};
                    if (host_agent__str(tb, "text", &out) == 0)
                        break;
                    q = qn;
                }
            }
        }
        int is_error = host_agent__get(block, "is_error", &v) == 0 && (uint8_t)v.base[0] == 0xc3;
        cr_buf_init(&b, 4 * HOST_AGENT_MAX_TEXT);
        if (!(cr_mpw_map(&b, 4) || CR_MPW_LIT(&b, "tool") || cr_mpw_str(&b, t->name, strlen(t->name)) ||
              CR_MPW_LIT(&b, "summary") || cr_mpw_str(&b, t->summary, strlen(t->summary)) ||
              CR_MPW_LIT(&b, "output") || cr_mpw_str(&b, out.base, host_agent__utf8_cut(out.base, out.len, HOST_AGENT_MAX_TEXT)) ||
              CR_MPW_LIT(&b, "is_error") || cr_mpw_bool(&b, is_error)))
            host_agent__event(a, "agent.tool", 0, &b);
        cr_buf_free(&b);
    }
}

static void on_result(host_agent_t *a, cr_span_t msg)
{
    claude_t *c = a->priv;
    cr_span_t v, reason;
    int is_error = host_agent__get(msg, "is_error", &v) == 0 && (uint8_t)v.base[0] == 0xc3;
    int aborted = host_agent__str(msg, "terminal_reason", &reason) == 0 && reason.len >= 8 &&
                  memcmp(reason.base, "aborted_", 8) == 0;
    if (is_error && !aborted) {
        /* "Error: " and the errors, one a line */
        cr_buf_t text;
        cr_mp_item_t it;
        cr_buf_init(&text, HOST_AGENT_MAX_TEXT * 2);
        (void)cr_buf_append(&text, "Error: ", 7);
        if (host_agent__get(msg, "errors", &v) == 0 && cr_mp_read(v.base, v.base + v.len, &it) != 0 &&
            it.type == MSGPACK_OBJECT_ARRAY) {
            const char *p = v.base + cr_mp_read(v.base, v.base + v.len, &it), *end = v.base + v.len;
            for (uint32_t i = 0; i < it.count; ++i) {
                cr_mp_item_t s;
                if (cr_mp_read(p, end, &s) != 0 && s.type == MSGPACK_OBJECT_STR) {
                    if (i > 0)
                        (void)cr_buf_append(&text, "\n", 1);
                    (void)cr_buf_append(&text, s.bytes.base, s.bytes.len);
                }
                p = cr_mp_skip(p, end);
            }
        } else if (host_agent__str(msg, "subtype", &v) == 0) {
            (void)cr_buf_append(&text, v.base, v.len);
        }
        host_agent__message(a, 1, text.base, text.len);
        cr_buf_free(&text);
    }
    pending_clear(c); /* whatever was still asked belongs to the turn that ended */
    if (c->outstanding > 0)
        --c->outstanding;
    if (c->outstanding == 0) {
        a->busy = 0;
        if (is_error)
            host_agent__turn_done(a, "", 0);
        else
            host_agent__turn_done(a, c->last_text.base, c->last_text.len);
    }
    c->last_text.len = 0;
}

static void on_can_use_tool(host_agent_t *a, cr_span_t request_id, cr_span_t req)
{
    claude_t *c = a->priv;
    cr_span_t tool, input;
    claude_pending_t *pd;
    cr_buf_t b, summary;
    int rc;
    if (host_agent__str(req, "tool_name", &tool) != 0 || host_agent__get(req, "input", &input) != 0) {
        control_response(a, request_id, NULL, 0, "malformed can_use_tool request");
        return;
    }
    if (c->npending == HOST_AGENT_MAX_QUEUE) {
        control_response(a, request_id, NULL, 0, "too many permission requests pending");
        return;
    }
    pd = &c->pending[c->npending++];
    cr_ulid_new(pd->rid);
    pd->request_id = cr_strndup(request_id.base, request_id.len);
    cr_buf_init(&pd->input, 2 * HOST_AGENT_MAX_LINE);
    if (pd->request_id == NULL || cr_buf_append(&pd->input, input.base, input.len) != 0) {
        pending_drop(c, c->npending - 1);
        control_response(a, request_id, NULL, 0, "out of memory");
        return;
    }
    cr_buf_init(&summary, HOST_AGENT_MAX_SUMMARY * 2);
    host_agent__summary(a, &summary, tool.base, tool.len, input);
    cr_buf_init(&b, 256 * 1024 - 4096);
    rc = cr_mpw_map(&b, 4) || CR_MPW_LIT(&b, "rid") || cr_mpw_str(&b, pd->rid, CR_ULID_LEN) || CR_MPW_LIT(&b, "tool") ||
         cr_mpw_str(&b, tool.base, host_agent__utf8_cut(tool.base, tool.len, 256)) || CR_MPW_LIT(&b, "summary") ||
         cr_mpw_str(&b, summary.base, summary.len) || CR_MPW_LIT(&b, "input");
    if (rc == 0 && host_agent__copy_trimmed(&b, input, 8192, 8) != 0)
        rc = cr_mpw_nil(&b);
    if (rc == 0)
        host_agent__event(a, "approval.request", 2, &b);
    cr_buf_free(&b);
    cr_buf_free(&summary);
}

static void claude_on_line(host_agent_t *a, char *line, size_t len)
{
    claude_t *c = a->priv;
    cr_buf_t mp;
    cr_span_t msg, type, v, rid;
    cr_buf_init(&mp, 2 * HOST_AGENT_MAX_LINE);
    if (host_agent__parse(a, &mp, line, len) != 0)
        goto done;
    msg = (cr_span_t){mp.base, mp.len};
    if (host_agent__str(msg, "type", &type) != 0)
        goto done;
    if (cr_span_eq(type, "assistant", 9)) {
        on_assistant(a, msg);
    } else if (cr_span_eq(type, "user", 4)) {
        on_user(a, msg);
    } else if (cr_span_eq(type, "result", 6)) {
        on_result(a, msg);
    } else if (cr_span_eq(type, "system", 6)) {
        if (host_agent__str(msg, "subtype", &v) == 0 && cr_span_eq(v, "init", 4) && !c->seen_init) {
            c->seen_init = 1;
            if (host_agent__str(msg, "session_id", &v) == 0)
                host_agent__resume_id(a, v.base, v.len);
            host_agent__state(a, "running");
        }
    } else if (cr_span_eq(type, "control_request", 15)) {
        if (host_agent__str(msg, "request_id", &rid) != 0 || host_agent__get(msg, "request", &v) != 0)
            goto done;
        cr_span_t sub;
        if (host_agent__str(v, "subtype", &sub) == 0 && cr_span_eq(sub, "can_use_tool", 12))
            on_can_use_tool(a, rid, v);
        else
            control_response(a, rid, NULL, 0, "corral does not handle this control request");
    } else if (cr_span_eq(type, "control_response", 16)) {
        if (host_agent__str(msg, "response.request_id", &rid) == 0 && strlen(c->init_id) == rid.len &&
            memcmp(c->init_id, rid.base, rid.len) == 0 && !c->initialized) {
            if (host_agent__str(msg, "response.subtype", &v) == 0 && cr_span_eq(v, "error", 5))
                cr_log(CR_LOG_WARN, "agent pid %ld: initialize was refused; going on", (long)a->pid);
            c->initialized = 1;
            /* what was held: msgpack values back to back */
            for (const char *p = c->queue.base, *end = p + c->queue.len; p != NULL && p < end;) {
                const char *next = cr_mp_skip(p, end);
                if (next == NULL)
                    break;
                if (host_agent__send(a, p, (size_t)(next - p)) != 0)
                    break;
                p = next;
            }
            cr_buf_free(&c->queue);
        }
    } else if (cr_span_eq(type, "control_cancel_request", 22)) {
        if (host_agent__str(msg, "request_id", &rid) == 0)
            for (size_t i = 0; i < c->npending; ++i)
                if (strlen(c->pending[i].request_id) == rid.len && memcmp(c->pending[i].request_id, rid.base, rid.len) == 0) {
                    pending_drop(c, i);
                    break;
                }
    }
done:
    cr_buf_free(&mp);
}

static int claude_reply(host_agent_t *a, const char *text)
{
    return send_user(a, text);
}

static int claude_approve(host_agent_t *a, const char *rid, int allow, const char *message)
{
    claude_t *c = a->priv;
    for (size_t i = 0; i < c->npending; ++i) {
        claude_pending_t *pd = &c->pending[i];
        cr_buf_t b;
        int rc;
        if (strcmp(pd->rid, rid) != 0)
            continue;
        cr_buf_init(&b, 2 * HOST_AGENT_MAX_LINE);
        if (allow) {
            rc = cr_mpw_map(&b, 2) || CR_MPW_LIT(&b, "behavior") || CR_MPW_LIT(&b, "allow") ||
                 CR_MPW_LIT(&b, "updatedInput") || cr_buf_append(&b, pd->input.base, pd->input.len);
        } else {
            const char *m = message != NULL && message[0] != '\0' ? message : "The user denied this action.";
            rc = cr_mpw_map(&b, 2) || CR_MPW_LIT(&b, "behavior") || CR_MPW_LIT(&b, "deny") ||
                 CR_MPW_LIT(&b, "message") || cr_mpw_str(&b, m, strlen(m));
        }
        if (rc == 0)
            rc = control_response(a, (cr_span_t){pd->request_id, strlen(pd->request_id)}, b.base, b.len, NULL);
        else
            rc = cr_error_set(CR_ETOOLARGE, "message", "the answer is too large");
        cr_buf_free(&b);
        pending_drop(c, i);
        return rc == 0 ? 0 : -1;
    }
    return cr_error_set(CR_ENOTFOUND, "rid", "no pending approval request %s", rid);
}

static int claude_interrupt(host_agent_t *a)
{
    char id[48];
    if (!a->busy)
        return 0;
    return control_request(a, "interrupt", id, sizeof(id), 1) == 0 ? 0 : -1;
}

static void claude_ended(host_agent_t *a)
{
    claude_t *c = a->priv;
    if (c != NULL) {
        pending_clear(c);
        c->outstanding = 0;
    }
}

static void claude_dispose(host_agent_t *a)
{
    claude_t *c = a->priv;
    if (c == NULL)
        return;
    pending_clear(c);
    for (size_t i = 0; i < TOOL_RING; ++i) {
        free(c->tools[i].id);
        free(c->tools[i].name);
        free(c->tools[i].summary);
    }
    cr_buf_free(&c->queue);
    cr_buf_free(&c->last_text);
    free(c);
    a->priv = NULL;
}

const host_agent_driver_t host_agent_claude_driver = {
    .args = claude_args,
    .begin = claude_begin,
    .on_line = claude_on_line,
    .reply = claude_reply,
    .approve = claude_approve,
    .interrupt = claude_interrupt,
    .ended = claude_ended,
    .dispose = claude_dispose,
};
