/* agent.c — tests of server/src/agent*.c: the claude, codex and shell drivers against the real fakes
 * (tests/fakes/fake_claude.py, fake_codex.py) and /bin/sh under a PTY, on a libuv loop. */
#include "agent.h"
#include "corral/envelope.h"
#include "corral/error.h"
#include "corral/json.h"
#include "harness.h"
#include "mp_text.h"
#include "proc.h"
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <uv.h>

#define MAX_EVENTS 512
#define WAIT_MS 20000

typedef struct st_ev_t {
    char kind[32];
    int pri;
    char *body;
    size_t len;
} ev_t;

typedef struct st_rec_t {
    ev_t ev[MAX_EVENTS];
    size_t nev;
    int bad_bodies;
    char resume_id[128];
    int resume_ids;
    int turn_ends, last_asked;
    int exited, exit_status, term_signal;
    char tail[8192];
} rec_t;

static uv_loop_t loop;
static uv_timer_t tick;
static char tmp[PATH_MAX], fakes[PATH_MAX];

static void on_event(host_agent_t *a, const char *kind, int pri, const char *body, size_t len, void *data)
{
    rec_t *r = data;
    (void)a;
    if (cr_body_validate(cr_kind_parse(kind, strlen(kind)), body, len, NULL) != 0) {
        ++r->bad_bodies;
        note("invalid %s body: %s", kind, cr_error_last()->message);
    }
    if (r->nev == MAX_EVENTS)
        return;
    ev_t *e = &r->ev[r->nev++];
    snprintf(e->kind, sizeof(e->kind), "%s", kind);
    e->pri = pri;
    e->body = malloc(len);
    memcpy(e->body, body, len);
    e->len = len;
}

static void on_resume_id(host_agent_t *a, const char *id, void *data)
{
    rec_t *r = data;
    (void)a;
    snprintf(r->resume_id, sizeof(r->resume_id), "%s", id);
    ++r->resume_ids;
}

static void on_turn_end(host_agent_t *a, int asked, void *data)
{
    rec_t *r = data;
    (void)a;
    ++r->turn_ends;
    r->last_asked = asked;
}

static void on_exit_cb(host_agent_t *a, int status, int sig, const char *tail, void *data)
{
    rec_t *r = data;
    (void)a;
    ++r->exited;
    r->exit_status = status;
    r->term_signal = sig;
    snprintf(r->tail, sizeof(r->tail), "%s", tail);
}

static const host_agent_cb_t callbacks = {on_event, on_resume_id, on_turn_end, on_exit_cb};

static void rec_reset(rec_t *r)
{
    for (size_t i = 0; i < r->nev; ++i)
        free(r->ev[i].body);
    memset(r, 0, sizeof(*r));
}

static void tick_cb(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until *flag >= want or WAIT_MS pass; returns 1 when it got there. */
static int run_until(const int *flag, int want)
{
    int64_t deadline = cr_test_now_ms() + WAIT_MS;
    while (*flag < want && cr_test_now_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    return *flag >= want;
}

static void run_for(int ms)
{
    int64_t until = cr_test_now_ms() + ms;
    while (cr_test_now_ms() < until)
        uv_run(&loop, UV_RUN_ONCE);
}

static int count_kind(const rec_t *r, const char *kind)
{
    int n = 0;
    for (size_t i = 0; i < r->nev; ++i)
        n += strcmp(r->ev[i].kind, kind) == 0;
    return n;
}

/* The n-th (0-based) event of kind, or NULL. */
static const ev_t *find(const rec_t *r, const char *kind, int n)
{
    for (size_t i = 0; i < r->nev; ++i)
        if (strcmp(r->ev[i].kind, kind) == 0 && n-- == 0)
            return &r->ev[i];
    return NULL;
}

static const char *field(const ev_t *e, const char *path)
{
    static char buf[8][8192];
    static int k;
    char *out = buf[k++ % 8];
    if (e == NULL)
        return "";
    return cr_test_mp_text(e->body, e->len, path, out, sizeof(buf[0]));
}

/* The value at path as JSON text ("" when absent). */
static const char *json_at(const ev_t *e, const char *path)
{
    static char out[8192];
    cr_span_t v;
    cr_buf_t b;
    out[0] = '\0';
    if (e == NULL || cr_test_mp_path(e->body, e->len, path, &v) != 0)
        return out;
    cr_buf_init(&b, sizeof(out) - 1);
    if (cr_json_from_msgpack(&b, v.base, v.len, NULL) == 0) {
        memcpy(out, b.base, b.len);
        out[b.len] = '\0';
    }
    cr_buf_free(&b);
    return out;
}

/* 1 when some agent.message has exactly this text. */
static int has_message(const rec_t *r, const char *text)
{
    for (int i = 0; find(r, "agent.message", i) != NULL; ++i)
        if (strcmp(field(find(r, "agent.message", i), "text"), text) == 0)
            return 1;
    return 0;
}

static int wait_message(rec_t *r, const char *text)
{
    int64_t deadline = cr_test_now_ms() + WAIT_MS;
    while (!has_message(r, text) && !r->exited && cr_test_now_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    return has_message(r, text);
}

static int wait_kind(rec_t *r, const char *kind, int n)
{
    int64_t deadline = cr_test_now_ms() + WAIT_MS;
    while (count_kind(r, kind) < n && !r->exited && cr_test_now_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    return count_kind(r, kind) >= n;
}

/* Frees the agent and lets the loop close its handles. */
static void done_with(host_agent_t *a)
{
    host_agent_free(a);
    for (int i = 0; i < 50; ++i)
        uv_run(&loop, UV_RUN_NOWAIT);
}

static char dirs[16][PATH_MAX + 64];
static int ndirs;

/* A fresh worktree directory under the test's temp dir. */
static const char *workdir(const char *name)
{
    char *d = dirs[ndirs++ % 16];
    snprintf(d, PATH_MAX + 64, "%s/%s", tmp, name);
    mkdir(d, 0700);
    return d;
}

static char program_buf[2][PATH_MAX + 32];

static const char *fake(const char *which)
{
    char *p = program_buf[which[1] == 'o'];
    snprintf(p, PATH_MAX + 32, "python3 %s/fake_%s.py", fakes, which);
    return p;
}

static char env_store[8][PATH_MAX + 64];
static const char *env_list[9];

static const char *const *fake_env(void)
{
    snprintf(env_store[0], sizeof(env_store[0]), "FAKE_CLAUDE_STATE_DIR=%s/claude-state", tmp);
    snprintf(env_store[1], sizeof(env_store[1]), "FAKE_CLAUDE_LOG=%s/claude.log", tmp);
    snprintf(env_store[2], sizeof(env_store[2]), "FAKE_CODEX_STATE_DIR=%s/codex-state", tmp);
    snprintf(env_store[3], sizeof(env_store[3]), "FAKE_CODEX_LOG=%s/codex.log", tmp);
    snprintf(env_store[4], sizeof(env_store[4]), "CORRAL_SESSION=s-one");
    snprintf(env_store[5], sizeof(env_store[5]), "CORRAL_TOKEN=tok-123");
    for (int i = 0; i < 6; ++i)
        env_list[i] = env_store[i];
    env_list[6] = NULL;
    return env_list;
}

static host_agent_t *start(rec_t *r, host_agent_kind_t kind, const char *program, const char *cwd, const char *prompt,
                           const char *resume)
{
    host_agent_opts_t o = {kind, program, cwd, fake_env(), prompt, resume, NULL};
    host_agent_t *a = NULL;
    rec_reset(r);
    if (host_agent_start(&a, &loop, &o, &callbacks, r) != 0) {
        note("start failed: %s", cr_error_last()->message);
        return NULL;
    }
    return a;
}

static int file_has(const char *path, const char *needle)
{
    char *s = cr_test_read_file(path, NULL);
    int yes = s != NULL && strstr(s, needle) != NULL;
    free(s);
    return yes;
}

/* ---- claude --------------------------------------------------------------------------------------------------- */

static rec_t R;

static void test_claude_bash(void)
{
    host_agent_t *a = start(&R, HOST_AGENT_CLAUDE, fake("claude"), workdir("c-bash"), "@bash echo hi", NULL);
    const ev_t *ap;
    if (!ok(a != NULL))
        return;
    ok(host_agent_busy(a));
    ok(wait_kind(&R, "approval.request", 1));
    ap = find(&R, "approval.request", 0);
    ok_str(field(ap, "tool"), "Bash");
    ok_str(field(ap, "summary"), "echo hi");
    ok_str(field(ap, "input.command"), "echo hi");
    ok(ap != NULL && ap->pri == 2);
    ok(strlen(field(ap, "rid")) == 26);
    ok(R.resume_ids == 1 && strlen(R.resume_id) == 36); /* the session's UUID, from system/init */
    ok(find(&R, "session.state", 0) != NULL);
    ok_str(field(find(&R, "session.state", 0), "state"), "running");
    ok_str(field(find(&R, "agent.tool", 0), "tool"), "Bash");
    ok_str(field(find(&R, "agent.tool", 0), "summary"), "echo hi");
    ok(host_agent_approve(a, "01ARZ3NDEKTSV4RRFFQ69G5FAV", 1, NULL) == CR_ENOTFOUND);
    ok(host_agent_approve(a, field(ap, "rid"), 1, NULL) == 0);
    ok(host_agent_approve(a, field(ap, "rid"), 1, NULL) == CR_ENOTFOUND); /* answered once */
    ok(run_until(&R.turn_ends, 1));
    ok(R.last_asked == 0);
    ok(!host_agent_busy(a));
    /* the command's output, recorded (pri 0) as the tool's result */
    const ev_t *res = find(&R, "agent.tool", 1);
    ok_str(field(res, "output"), "hi");
    ok_str(field(res, "is_error"), "false");
    ok(res != NULL && res->pri == 0);
    ok(has_message(&R, "Done."));
    ok(find(&R, "question", 0) == NULL);
    host_agent_stop(a, 5000);
    ok(run_until(&R.exited, 1));
    ok(R.exit_status == 0 && R.term_signal == 0);
    ok(host_agent_reply(a, "more") != 0); /* it has ended */
    ok(R.bad_bodies == 0);
    done_with(a);
}

static void test_claude_deny(void)
{
    const char *wd = workdir("c-deny");
    char path[PATH_MAX + 256];
    host_agent_t *a = start(&R, HOST_AGENT_CLAUDE, fake("claude"), wd, "@bash touch denied.txt", NULL);
    if (!ok(a != NULL))
        return;
    ok(wait_kind(&R, "approval.request", 1));
    ok(host_agent_approve(a, field(find(&R, "approval.request", 0), "rid"), 0, "not now, thanks") == 0);
    ok(run_until(&R.turn_ends, 1));
    snprintf(path, sizeof(path), "%s/denied.txt", wd);
    ok(access(path, F_OK) != 0); /* the command never ran */
    /* the model got the message as the tool's error, and the CLI recorded the denial */
    ok_str(field(find(&R, "agent.tool", 1), "output"), "not now, thanks");
    ok_str(field(find(&R, "agent.tool", 1), "is_error"), "true");
    ok(R.bad_bodies == 0);
    host_agent_stop(a, 5000);
    ok(run_until(&R.exited, 1));
    snprintf(path, sizeof(path), "%s/claude-state/%s.json", tmp, R.resume_id);
    ok(file_has(path, "not now, thanks"));
    done_with(a);
}

static void test_claude_write(void)
{
    const char *wd = workdir("c-write");
    char path[PATH_MAX + 256], *s;
    host_agent_t *a = start(&R, HOST_AGENT_CLAUDE, fake("claude"), wd, "@write f.txt hello", NULL);
    if (!ok(a != NULL))
        return;
    ok(wait_kind(&R, "approval.request", 1));
    ok_str(field(find(&R, "approval.request", 0), "tool"), "Write");
    ok_str(field(find(&R, "approval.request", 0), "summary"), "f.txt"); /* relative to the worktree */
    ok_str(field(find(&R, "approval.request", 0), "input.content"), "hello");
    snprintf(path, sizeof(path), "%s/f.txt", wd);
    ok(access(path, F_OK) != 0); /* not before the approval */
    ok(host_agent_approve(a, field(find(&R, "approval.request", 0), "rid"), 1, NULL) == 0);
    ok(run_until(&R.turn_ends, 1));
    s = cr_test_read_file(path, NULL);
    ok(s != NULL && strcmp(s, "hello") == 0);
    free(s);
    host_agent_stop(a, 5000);
    ok(run_until(&R.exited, 1));
    ok(R.bad_bodies == 0);
    done_with(a);
}

static void test_claude_ask(void)
{
    host_agent_t *a = start(&R, HOST_AGENT_CLAUDE, fake("claude"), workdir("c-ask"), "Let me check.\n@ask Which one?", NULL);
    const ev_t *q;
    if (!ok(a != NULL))
        return;
    ok(run_until(&R.turn_ends, 1));
    ok(R.last_asked == 1);
    q = find(&R, "question", 0);
    ok_str(field(q, "text"), "Which one?");
    ok(q != NULL && q->pri == 2 && strlen(field(q, "rid")) == 26);
    ok(has_message(&R, "Let me check."));
    ok(!host_agent_busy(a));
    ok(host_agent_reply(a, "The second one.") == 0);
    ok(host_agent_busy(a));
    ok(run_until(&R.turn_ends, 2));
    ok(R.last_asked == 0);
    ok(has_message(&R, "The second one."));
    ok(count_kind(&R, "question") == 1);
    ok(count_kind(&R, "session.state") == 2); /* running at each turn */
    host_agent_stop(a, 5000);
    ok(run_until(&R.exited, 1));
    ok(R.bad_bodies == 0);
    done_with(a);
}

static void test_claude_resume_env(void)
{
    const char *wd = workdir("c-resume");
    char id[128], log[PATH_MAX + 32], needle[256];
    host_agent_opts_t o = {HOST_AGENT_CLAUDE, fake("claude"), wd, fake_env(), "remember the milk", NULL,
                           "You are Ada, the team's agent."};
    host_agent_t *a = NULL;
    rec_reset(&R);
    setenv("CORRAL_RELAY_TOKEN", "host-secret", 1); /* corrald's own configuration must not reach agents */
    ok(host_agent_start(&a, &loop, &o, &callbacks, &R) == 0);
    if (a == NULL)
        return;
    ok(run_until(&R.turn_ends, 1));
    snprintf(id, sizeof(id), "%s", R.resume_id);
    ok(strlen(id) == 36);
    host_agent_stop(a, 5000);
    ok(run_until(&R.exited, 1));
    done_with(a);

    o.resume_id = id;
    o.prompt = "@history\n@env CORRAL_SESSION\n@env CORRAL_RELAY_TOKEN";
    o.instructions = NULL;
    rec_reset(&R);
    ok(host_agent_start(&a, &loop, &o, &callbacks, &R) == 0);
    if (a == NULL)
        return;
    ok(run_until(&R.turn_ends, 1));
    ok_str(R.resume_id, id);
    ok(has_message(&R, "History: 1 earlier user message(s); last: remember the milk"));
    ok(has_message(&R, "CORRAL_SESSION=s-one"));
    ok(has_message(&R, "CORRAL_RELAY_TOKEN is not set"));
    snprintf(log, sizeof(log), "%s/claude.log", tmp);
    snprintf(needle, sizeof(needle), "\"--resume\",\"%s\"", id);
    ok(file_has(log, needle));
    ok(file_has(log, "\"--append-system-prompt\",\"You are Ada, the team's agent.\""));
    ok(file_has(log, "\"--permission-prompt-tool\",\"stdio\""));
    host_agent_stop(a, 5000);
    ok(run_until(&R.exited, 1));
    ok(R.bad_bodies == 0);
    done_with(a);
    unsetenv("CORRAL_RELAY_TOKEN");
}

static void test_claude_fail_and_interrupt(void)
{
    host_agent_t *a = start(&R, HOST_AGENT_CLAUDE, fake("claude"), workdir("c-fail"), "@fail 3 the model fell over", NULL);
    if (!ok(a != NULL))
        return;
    ok(run_until(&R.exited, 1));
    ok(R.exit_status == 3);
    ok_str(R.tail, "the model fell over");
    ok(host_agent_pid(a) == 0);
    done_with(a);

    /* a failed turn: the error as a message, then the turn ends; the agent stays up */
    a = start(&R, HOST_AGENT_CLAUDE, fake("claude"), workdir("c-error"), "@error quota exceeded", NULL);
    if (!ok(a != NULL))
        return;
    ok(run_until(&R.turn_ends, 1));
    ok(has_message(&R, "Error: quota exceeded"));
    ok(R.last_asked == 0 && R.exited == 0);
    host_agent_stop(a, 5000);
    ok(run_until(&R.exited, 1));
    done_with(a);

    /* a session id the CLI does not know */
    a = start(&R, HOST_AGENT_CLAUDE, fake("claude"), workdir("c-error"), "hello", "6b1f5a4e-0000-4000-8000-000000000000");
    if (!ok(a != NULL))
        return;
    ok(run_until(&R.exited, 1));
    ok(R.exit_status == 1);
    ok(has_message(&R, "Error: No conversation found with session ID: 6b1f5a4e-0000-4000-8000-000000000000"));
    ok(strstr(R.tail, "No conversation found") != NULL);
    ok(R.bad_bodies == 0);
    done_with(a);

    a = start(&R, HOST_AGENT_CLAUDE, fake("claude"), workdir("c-int"), "@sleep 30000\nnot reached", NULL);
    if (!ok(a != NULL))
        return;
    ok(wait_kind(&R, "session.state", 1));
    ok(host_agent_busy(a));
    ok(host_agent_interrupt(a) == 0);
    ok(run_until(&R.turn_ends, 1));
    ok(!host_agent_busy(a) && R.last_asked == 0);
    ok(!has_message(&R, "not reached"));
    ok(count_kind(&R, "agent.message") == 0); /* an interrupt is not an error to report */
    /* stop while a turn runs: SIGTERM ends it well before the grace period */
    ok(host_agent_reply(a, "@sleep 30000") == 0);
    uv_run(&loop, UV_RUN_NOWAIT);
    int64_t t0 = cr_test_now_ms();
    host_agent_stop(a, 10000);
    ok(run_until(&R.exited, 1));
    okf(cr_test_now_ms() - t0 < 5000, "stopped in %lld ms", (long long)(cr_test_now_ms() - t0));
    ok(R.exit_status == 0);
    ok(R.bad_bodies == 0);
    done_with(a);
}

static void test_not_found(void)
{
    host_agent_opts_t o = {HOST_AGENT_CLAUDE, "/nonexistent/bin/claude-xyz -p", tmp, NULL, "hi", NULL, NULL};
    host_agent_t *a = (host_agent_t *)1;
    ok(host_agent_start(&a, &loop, &o, &callbacks, &R) == CR_ENOTFOUND);
    ok(a == NULL);
    ok(strstr(cr_error_last()->message, "agent program not found: /nonexistent/bin/claude-xyz") != NULL);
    note("%s", cr_error_last()->message);
    o.kind = HOST_AGENT_CODEX;
    o.program = "corral-no-such-agent";
    ok(host_agent_start(&a, &loop, &o, &callbacks, &R) == CR_ENOTFOUND);
    ok(strstr(cr_error_last()->message, "agent program not found: corral-no-such-agent") != NULL);
    o.program = "python3";
    o.cwd = "/nonexistent/worktree";
    ok(host_agent_start(&a, &loop, &o, &callbacks, &R) == CR_ENOTFOUND);
    ok(strstr(cr_error_last()->message, "/nonexistent/worktree") != NULL);
    o.cwd = tmp;
    o.program = "python3 'unterminated";
    ok(host_agent_start(&a, &loop, &o, &callbacks, &R) == CR_ECONFIG);
}

/* A program that prints a line over the limit, then a good one: the long line is dropped, the next one counts. */
static void test_long_line(void)
{
    char prog[PATH_MAX + 64], script[PATH_MAX + 32];
    FILE *fp;
    host_agent_t *a;
    snprintf(script, sizeof(script), "%s/longline.py", tmp);
    fp = fopen(script, "w");
    fputs("import sys\n"
          "sys.stdout.write('{\"type\":\"assistant\",\"x\":\"' + 'a' * (2 * 1024 * 1024) + '\"}\\n')\n"
          "sys.stdout.write('{\"type\":\"system\",\"subtype\":\"init\",\"session_id\":\"after-the-long-line\"}\\n')\n"
          "sys.stdout.write('{\"type\":\"assistant\",\"message\":{\"content\":[{\"type\":\"text\",\"text\":\"x' + "
          "'\\u00e9' * 5000 + '\"}]}}\\n')\n"
          "sys.stdout.write('not json at all\\n')\n"
          "sys.stdout.write('{\"type\":\"result\",\"is_error\":false}')\n" /* no newline at the end */
          "sys.stdout.flush()\n",
          fp);
    fclose(fp);
    snprintf(prog, sizeof(prog), "python3 %s", script);
    a = start(&R, HOST_AGENT_CLAUDE, prog, tmp, NULL, NULL);
    if (!ok(a != NULL))
        return;
    ok(run_until(&R.exited, 1));
    ok_str(R.resume_id, "after-the-long-line");
    ok(strstr(R.tail, "dropped a line of agent output longer than") != NULL);
    /* the text, cut to 4 KiB at a character boundary */
    const char *t = field(find(&R, "agent.message", 0), "text");
    okf(strlen(t) == 4095 && (unsigned char)t[4093] == 0xc3, "message of %zu bytes", strlen(t));
    ok(R.turn_ends == 1); /* the last line, without its newline, still counted */
    ok(R.bad_bodies == 0);
    done_with(a);
}

static void test_abandon(void)
{
    host_agent_t *a = start(&R, HOST_AGENT_CLAUDE, fake("claude"), workdir("c-abandon"), "@sleep 30000", NULL);
    pid_t pid;
    if (!ok(a != NULL))
        return;
    ok(wait_kind(&R, "session.state", 1));
    pid = host_agent_pid(a);
    ok(pid > 0);
    host_agent_free(a); /* kills it; no callback runs */
    uv_run(&loop, UV_RUN_DEFAULT);
    ok(R.exited == 0);
    ok(kill(pid, 0) != 0); /* gone and reaped */
}

/* ---- codex ---------------------------------------------------------------------------------------------------- */

static void test_codex_flow(void)
{
    const char *wd = workdir("x-flow");
    char path[PATH_MAX + 256], log[PATH_MAX + 32], id[128], needle[256], *s;
    host_agent_t *a = start(&R, HOST_AGENT_CODEX, fake("codex"), wd,
                            "@bash echo hi\n@bash touch no.txt\n@write f.txt hello\n@ask Which one?", NULL);
    const ev_t *ap;
    if (!ok(a != NULL))
        return;
    ok(wait_kind(&R, "approval.request", 1));
    ok(R.resume_ids == 1 && strlen(R.resume_id) == 36);
    ok(host_agent_busy(a));
    ap = find(&R, "approval.request", 0);
    ok_str(field(ap, "tool"), "shell");
    ok_str(field(ap, "summary"), "echo hi");
    ok(ap != NULL && ap->pri == 2);
    ok(host_agent_approve(a, field(ap, "rid"), 1, NULL) == 0);
    ok(wait_kind(&R, "approval.request", 2));
    ok_str(field(find(&R, "approval.request", 1), "summary"), "touch no.txt");
    ok(host_agent_approve(a, field(find(&R, "approval.request", 1), "rid"), 0, "no") == 0);
    ok(wait_kind(&R, "approval.request", 3));
    ap = find(&R, "approval.request", 2);
    ok_str(field(ap, "tool"), "edit");
    ok_str(field(ap, "summary"), "f.txt");
    ok(strstr(json_at(ap, "input.changes"), "f.txt") != NULL && strstr(json_at(ap, "input.changes"), "+hello") != NULL);
    ok(host_agent_approve(a, field(ap, "rid"), 1, NULL) == 0);
    ok(run_until(&R.turn_ends, 1));
    ok(R.last_asked == 1);
    ok_str(field(find(&R, "question", 0), "text"), "Which one?");
    ok(!host_agent_busy(a));
    /* the approved command ran, the declined one did not, the file was written */
    int found = 0;
    for (int i = 0; find(&R, "agent.tool", i) != NULL; ++i)
        if (strcmp(field(find(&R, "agent.tool", i), "output"), "hi") == 0)
            found = 1;
    ok(found);
    snprintf(path, sizeof(path), "%s/no.txt", wd);
    ok(access(path, F_OK) != 0);
    snprintf(path, sizeof(path), "%s/f.txt", wd);
    s = cr_test_read_file(path, NULL);
    ok(s != NULL && strcmp(s, "hello") == 0);
    free(s);
    /* a reply is the next turn */
    ok(host_agent_reply(a, "@env CORRAL_TOKEN") == 0);
    ok(run_until(&R.turn_ends, 2));
    ok(R.last_asked == 0);
    ok(has_message(&R, "CORRAL_TOKEN=tok-123"));
    ok(R.bad_bodies == 0);
    snprintf(id, sizeof(id), "%s", R.resume_id);
    host_agent_stop(a, 5000);
    ok(run_until(&R.exited, 1));
    ok(R.exit_status == 0);
    done_with(a);

    /* resume the thread */
    a = start(&R, HOST_AGENT_CODEX, fake("codex"), wd, "@history", id);
    if (!ok(a != NULL))
        return;
    ok(run_until(&R.turn_ends, 1));
    ok_str(R.resume_id, id);
    ok(has_message(&R, "History: 2 earlier user message(s); last: @env CORRAL_TOKEN"));
    snprintf(log, sizeof(log), "%s/codex.log", tmp);
    ok(file_has(log, "\"event\":\"thread/resume\""));
    snprintf(needle, sizeof(needle), "\"resume\":\"%s\"", id);
    ok(file_has(log, needle));
    host_agent_stop(a, 5000);
    ok(run_until(&R.exited, 1));
    ok(R.bad_bodies == 0);
    done_with(a);

    /* an unknown thread: the user is told, the agent ends */
    a = start(&R, HOST_AGENT_CODEX, fake("codex"), wd, "hello", "0199a000-0000-7000-8000-000000000000");
    if (!ok(a != NULL))
        return;
    ok(run_until(&R.exited, 1));
    ok(strstr(field(find(&R, "agent.message", 0), "text"), "no rollout found") != NULL);
    ok(strstr(R.tail, "thread/resume failed") != NULL);
    done_with(a);
}

static void test_codex_fail_interrupt(void)
{
    host_agent_t *a = start(&R, HOST_AGENT_CODEX, fake("codex"), workdir("x-fail"), "@fail 4 codex crashed", NULL);
    if (!ok(a != NULL))
        return;
    ok(run_until(&R.exited, 1));
    ok(R.exit_status == 4);
    ok_str(R.tail, "codex crashed");
    done_with(a);

    a = start(&R, HOST_AGENT_CODEX, fake("codex"), workdir("x-int"), "@sleep 30000\nnot reached", NULL);
    if (!ok(a != NULL))
        return;
    ok(wait_kind(&R, "session.state", 1));
    ok(host_agent_interrupt(a) == 0);
    ok(run_until(&R.turn_ends, 1));
    ok(!has_message(&R, "not reached"));
    ok(!host_agent_busy(a));
    host_agent_stop(a, 5000);
    ok(run_until(&R.exited, 1));
    ok(R.exit_status == 0);
    ok(R.bad_bodies == 0);
    done_with(a);
}

/* ---- shell ---------------------------------------------------------------------------------------------------- */

static void test_shell(void)
{
    host_agent_t *a = start(&R, HOST_AGENT_SHELL, "printf 'a\\nb\\n'", workdir("s-print"), NULL, NULL);
    if (!ok(a != NULL))
        return;
    ok(host_agent_busy(a));
    ok(run_until(&R.exited, 1));
    ok(R.exit_status == 0 && R.term_signal == 0);
    ok(count_kind(&R, "agent.message") == 2);
    ok_str(field(find(&R, "agent.message", 0), "text"), "a");
    ok_str(field(find(&R, "agent.message", 1), "text"), "b");
    ok(find(&R, "agent.message", 0) != NULL && find(&R, "agent.message", 0)->pri == 1);
    ok(host_agent_approve(a, "x", 1, NULL) == CR_ENOTFOUND);
    done_with(a);

    /* a terminal (isatty), colours stripped, input typed, the environment and the exit status */
    a = start(&R, HOST_AGENT_SHELL,
              "test -t 0 && echo tty; printf '\\033[1;32mgreen\\033[0m\\n'; echo \"$CORRAL_SESSION\"; "
              "read x; echo \"got $x\"; exit 3",
              workdir("s-read"), NULL, NULL);
    if (!ok(a != NULL))
        return;
    ok(wait_message(&R, "s-one"));
    ok(has_message(&R, "tty"));
    ok(has_message(&R, "green"));
    ok(host_agent_reply(a, "yes") == 0);
    ok(run_until(&R.exited, 1));
    ok(has_message(&R, "got yes"));
    ok(!has_message(&R, "yes")); /* no echo of what was typed */
    ok(R.exit_status == 3);
    ok(R.bad_bodies == 0);
    done_with(a);

    /* stop: a command that ignores SIGTERM and SIGHUP is killed after the grace period */
    a = start(&R, HOST_AGENT_SHELL, "trap '' TERM HUP; echo ready; while :; do sleep 1; done", workdir("s-stop"), NULL,
              NULL);
    if (!ok(a != NULL))
        return;
    ok(wait_message(&R, "ready"));
    int64_t t0 = cr_test_now_ms();
    host_agent_stop(a, 300);
    ok(run_until(&R.exited, 1));
    ok(R.term_signal == SIGKILL);
    okf(cr_test_now_ms() - t0 >= 250, "killed after %lld ms", (long long)(cr_test_now_ms() - t0));
    done_with(a);

    /* interrupt is ^C on the terminal. Not right after "ready": dash loses a SIGINT that comes while it is about to
     * exec its last command, as it would for a human typing ^C that fast. */
    a = start(&R, HOST_AGENT_SHELL, "trap 'echo interrupted; exit 5' INT; echo ready; while :; do sleep 0.1; done",
              workdir("s-int"), NULL, NULL);
    if (!ok(a != NULL))
        return;
    ok(wait_message(&R, "ready"));
    run_for(300);
    ok(host_agent_interrupt(a) == 0);
    ok(run_until(&R.exited, 1));
    ok(has_message(&R, "interrupted"));
    ok(R.exit_status == 5);
    done_with(a);
}

int main(void)
{
    signal(SIGPIPE, SIG_IGN);
    if (cr_test_make_temp_dir(tmp, sizeof(tmp), "corral-agent", 200) != 0)
        return 1;
    cr_test_slot_add(tmp, 0);
    snprintf(fakes, sizeof(fakes), "%s/tests/fakes", cr_test_source_dir());
    uv_loop_init(&loop);
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, tick_cb, 20, 20); /* wakes UV_RUN_ONCE up, so waits see their deadline */
    uv_unref((uv_handle_t *)&tick);

    subtest("not found", test_not_found);
    subtest("claude: bash, approve", test_claude_bash);
    subtest("claude: deny", test_claude_deny);
    subtest("claude: write", test_claude_write);
    subtest("claude: ask and reply", test_claude_ask);
    subtest("claude: resume, env, instructions", test_claude_resume_env);
    subtest("claude: fail, interrupt, stop", test_claude_fail_and_interrupt);
    subtest("claude: a line over the limit", test_long_line);
    subtest("abandon a running agent", test_abandon);
    subtest("codex: approvals, question, reply, resume", test_codex_flow);
    subtest("codex: fail, interrupt", test_codex_fail_interrupt);
    subtest("shell", test_shell);

    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_DEFAULT);
    ok(uv_loop_close(&loop) == 0); /* no handle left open */
    rec_reset(&R);
    return done_testing();
}
