/* store.c — unit tests of server/src/store.c: session.json, transcript.jsonl, tasks.md, activity.csv and the durable
 * outbox, checked on disk as a user (cat, git, Python's csv module) would see them. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "store.h"
#include "corral/envelope.h"
#include "corral/error.h"
#include "corral/json.h"
#include "corral/log.h"
#include "harness.h"
#include "proc.h"
#include <dirent.h>
#include <fcntl.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static char root[PATH_MAX];
static int dir_count;

static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    return st == -1 ? -1 : WEXITSTATUS(st);
}

/* Runs a command and returns its stdout (malloc'd). */
static char *sh_out(const char *cmd)
{
    FILE *p = popen(cmd, "r");
    char *buf = calloc(1, 1 << 20);
    size_t n = 0, r;
    if (p == NULL)
        return buf;
    while ((r = fread(buf + n, 1, (1 << 20) - 1 - n, p)) > 0)
        n += r;
    pclose(p);
    return buf;
}

static void new_dir(char *out, size_t outlen, const char *what)
{
    snprintf(out, outlen, "%s/%s%d", root, what, ++dir_count);
    mkdir(out, 0755);
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec / 1e9;
}

static char *slurp(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static char *slurp(const char *fmt, ...)
{
    char path[PATH_MAX];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(path, sizeof(path), fmt, ap);
    va_end(ap);
    return cr_test_read_file(path, NULL);
}

/* Files in dir whose name starts with '.' other than . and .. (temp files). */
static int hidden_files(const char *dir)
{
    DIR *d = opendir(dir);
    struct dirent *e;
    int n = 0;
    if (d == NULL)
        return -1;
    while ((e = readdir(d)) != NULL)
        n += e->d_name[0] == '.' && strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static host_git_session_t git_of(const char *name)
{
    host_git_session_t g;
    memset(&g, 0, sizeof(g));
    snprintf(g.name, sizeof(g.name), "%s", name);
    snprintf(g.branch, sizeof(g.branch), "corral/%s", name);
    snprintf(g.base, sizeof(g.base), "main");
    snprintf(g.base_commit, sizeof(g.base_commit), "0123456789abcdef0123456789abcdef01234567");
    snprintf(g.worktree, sizeof(g.worktree), "/tmp/repo.worktrees/%s", name);
    return g;
}

/* A msgpack body map of string pairs: mp_body(&b, 2, "text", "hi", "x", "y"). */
static void mp_body(cr_buf_t *b, int n, ...)
{
    va_list ap;
    va_start(ap, n);
    cr_buf_reset(b);
    cr_mpw_map(b, (uint32_t)n);
    for (int i = 0; i < 2 * n; i++) {
        const char *s = va_arg(ap, const char *);
        cr_mpw_str(b, s, strlen(s));
    }
    va_end(ap);
}

/* ---- store layout ------------------------------------------------------------------------------------------------ */

static void test_layout(void)
{
    char repo[PATH_MAX];
    host_store_t *st = NULL;
    new_dir(repo, sizeof(repo), "repo");
    int have_git = sh("cd '%s' && git init -q . && git -c user.name=a -c user.email=a@b commit -q --allow-empty -m init",
                      repo) == 0;
    ok(host_store_open(&st, repo) == 0);
    char *gi = slurp("%s/.corral/.gitignore", repo);
    ok(gi != NULL && strcmp(gi, "*\n") == 0);
    free(gi);
    if (have_git) {
        char *ex = slurp("%s/.git/info/exclude", repo);
        ok(ex != NULL && strstr(ex, "\n.corral/\n") != NULL);
        free(ex);
        host_store_close(st);
        ok(host_store_open(&st, repo) == 0); /* twice: the line is not added again */
        ex = slurp("%s/.git/info/exclude", repo);
        ok(ex != NULL && strstr(ex, ".corral/") != NULL && strstr(strstr(ex, ".corral/") + 1, ".corral/") == NULL);
        free(ex);
        host_store_activity_t a = {0, "cli", NULL, NULL, "test", "x", "ok"};
        ok(host_store_activity(st, &a) == 0);
        char cmd[PATH_MAX + 128];
        snprintf(cmd, sizeof(cmd), "cd '%s' && git status --porcelain", repo);
        char *out = sh_out(cmd);
        okf(out[0] == '\0', "git status shows: %s", out);
        free(out);
        ok(sh("cd '%s' && git check-ignore -q .corral/activity.csv", repo) == 0);
        /* without the exclude line, .corral/.gitignore alone keeps it out */
        ok(sh("cd '%s' && sed -i '/^.corral.$/d' .git/info/exclude && test -z \"$(git status --porcelain)\"", repo) == 0);
    } else {
        note("git not found: the exclude checks are skipped");
    }
    host_store_close(st);
    ok(host_store_open(&st, "/nonexistent/corral/repo") == CR_ENOTFOUND);
}

/* ---- sessions ---------------------------------------------------------------------------------------------------- */

static void test_sessions(void)
{
    char repo[PATH_MAX], sdir[PATH_MAX + 160];
    host_store_t *st = NULL;
    host_store_session_t *s = NULL, *l = NULL;
    new_dir(repo, sizeof(repo), "repo");
    ok(host_store_open(&st, repo) == 0);
    host_git_session_t g = git_of("feature-auth");
    host_store_session_opts_t o = {NULL, "Add login\nwith \"OAuth\"", "claude", NULL, "feature-auth-agent", &g};
    ok(host_store_session_create(&s, st, &o) == 0);
    if (s == NULL)
        goto done;
    ok(strlen(s->sid) == 26);
    snprintf(sdir, sizeof(sdir), "%s/.corral/sessions/%s", repo, s->sid);
    char *json = slurp("%s/session.json", sdir);
    ok(json != NULL);
    if (json != NULL) {
        note("session.json:\n%s", json);
        ok(strstr(json, "{\n  \"sid\": \"") == json);
        ok(strstr(json, "\n  \"name\": \"feature-auth\",\n") != NULL);
        ok(strstr(json, "\n  \"task\": \"Add login\\nwith \\\"OAuth\\\"\",\n") != NULL);
        ok(strstr(json, "\n  \"state\": \"starting\",\n") != NULL);
        ok(strstr(json, "\n  \"identity\": \"feature-auth-agent\",\n") != NULL);
        ok(strstr(json, "\n  \"last_seq\": 0,\n") != NULL);
        ok(strstr(json, "\n  \"applied_aids\": []\n}\n") != NULL);
        ok(strstr(json, "\"cmd\"") == NULL && strstr(json, "\"needs\"") == NULL);
        free(json);
    }
    /* change and save: round trip */
    s->state = HOST_STORE_SUSPENDED;
    s->resume_id = strdup("claude-sess-1");
    s->has_exit = 1;
    s->exit_status = -1;
    s->exit_signal = 15;
    host_store_aid_add(s, "01JAID0000000000000000000A");
    host_store_aid_add(s, "01JAID0000000000000000000B");
    host_store_aid_add(s, "01JAID0000000000000000000A");
    ok(s->naids == 2);
    ok(host_store_session_save(s) == 0);
    ok(hidden_files(sdir) == 0);
    ok(host_store_session_load(&l, st, s->sid) == 0);
    if (l != NULL) {
        ok_str(l->git.name, "feature-auth");
        ok_str(l->task, "Add login\nwith \"OAuth\"");
        ok_str(l->agent, "claude");
        ok(l->cmd == NULL);
        ok_str(l->identity, "feature-auth-agent");
        ok_str(l->git.base_commit, g.base_commit);
        ok_str(l->git.worktree, g.worktree);
        ok(l->state == HOST_STORE_SUSPENDED);
        ok(l->resume_id != NULL && strcmp(l->resume_id, "claude-sess-1") == 0);
        ok(l->has_exit && l->exit_status == -1 && l->exit_signal == 15);
        ok(l->naids == 2 && host_store_aid_seen(l, "01JAID0000000000000000000B") &&
           !host_store_aid_seen(l, "01JAID0000000000000000000C"));
        ok(l->created == s->created && l->created > 0);
    }
    host_store_session_free(l);
    l = NULL;
    json = slurp("%s/session.json", sdir);
    ok(json != NULL && strstr(json, "  \"exit\": {\n    \"status\": -1,\n    \"signal\": 15\n  },\n") != NULL);
    free(json);

    /* a second session; a taken name; a taken sid; bad ids */
    host_store_session_t *s2 = NULL, *x = NULL;
    host_git_session_t g2 = git_of("docs"), g3 = git_of("feature-auth");
    host_store_session_opts_t o2 = {"sess-two", "write docs", "shell", "make docs", NULL, &g2};
    ok(host_store_session_create(&s2, st, &o2) == 0);
    host_store_session_opts_t o3 = {NULL, "x", "codex", NULL, NULL, &g3};
    ok(host_store_session_create(&x, st, &o3) == CR_EEXISTS && x == NULL);
    note("%s", cr_error_last()->message);
    host_git_session_t g4 = git_of("other");
    host_store_session_opts_t o4 = {"sess-two", "x", "codex", NULL, NULL, &g4};
    ok(host_store_session_create(&x, st, &o4) == CR_EEXISTS);
    host_store_session_opts_t o5 = {"../evil", "x", "codex", NULL, NULL, &g4};
    ok(host_store_session_create(&x, st, &o5) == CR_EBADNAME);
    host_store_session_opts_t o6 = {NULL, "x", "emacs", NULL, NULL, &g4};
    ok(host_store_session_create(&x, st, &o6) == CR_ECONFIG);
    ok(host_store_session_load(&x, st, "../../etc") == CR_EBADNAME);
    ok(host_store_session_load(&x, st, "..") == CR_EBADNAME);
    ok(host_store_session_load(&x, st, "nope") == CR_ENOTFOUND);

    /* list: sorted by created; find by name and sid */
    host_store_session_t **list = NULL;
    size_t n = 0;
    ok(host_store_session_list(&list, &n, st) == 0 && n == 2);
    if (n == 2)
        ok(strcmp(list[0]->sid, s->sid) == 0 && strcmp(list[1]->sid, "sess-two") == 0);
    host_store_session_list_free(list, n);
    ok(host_store_session_find(&x, st, "docs") == 0 && x != NULL && strcmp(x->sid, "sess-two") == 0);
    if (x != NULL)
        ok_str(x->cmd, "make docs");
    host_store_session_free(x);
    x = NULL;
    ok(host_store_session_find(&x, st, s->sid) == 0 && x != NULL && strcmp(x->git.name, "feature-auth") == 0);
    host_store_session_free(x);
    x = NULL;
    ok(host_store_session_find(&x, st, "missing") == CR_ENOTFOUND);

    /* a corrupt session.json: a clear error naming the file, the file untouched, list skips it */
    char path[PATH_MAX + 160];
    snprintf(path, sizeof(path), "%s/.corral/sessions/sess-two/session.json", repo);
    FILE *f = fopen(path, "w");
    fputs("{\"sid\": \"sess-two\", \"name\": ", f);
    fclose(f);
    ok(host_store_session_load(&x, st, "sess-two") == CR_EJSON);
    okf(strstr(cr_error_last()->message, "sess-two/session.json") != NULL, "%s", cr_error_last()->message);
    note("corrupt: %s", cr_error_last()->message);
    char *bad = cr_test_read_file(path, NULL);
    ok(bad != NULL && strcmp(bad, "{\"sid\": \"sess-two\", \"name\": ") == 0);
    free(bad);
    f = fopen(path, "w");
    fputs("{\"sid\": \"sess-two\", \"name\": 5}", f);
    fclose(f);
    ok(host_store_session_load(&x, st, "sess-two") == CR_EJSON && strcmp(cr_error_last()->field, "name") == 0);
    note("wrong type: %s", cr_error_last()->message);
    ok(host_store_session_list(&list, &n, st) == 0 && n == 1);
    host_store_session_list_free(list, n);
    host_store_session_free(s2);
done:
    host_store_session_free(s);
    host_store_close(st);
}

/* ---- events: transcript, summary, seqs ---------------------------------------------------------------------------- */

static void test_emit(void)
{
    char repo[PATH_MAX];
    host_store_t *st = NULL;
    host_store_session_t *s = NULL, *l = NULL;
    cr_buf_t env, body, all;
    cr_buf_init(&env, 1 << 20);
    cr_buf_init(&body, 1 << 20);
    cr_buf_init(&all, 1 << 22);
    new_dir(repo, sizeof(repo), "repo");
    ok(host_store_open(&st, repo) == 0);
    host_git_session_t g = git_of("emit");
    host_store_session_opts_t o = {"emit-1", "t", "claude", NULL, "emit-agent", &g};
    ok(host_store_session_create(&s, st, &o) == 0);
    if (s == NULL)
        goto done;
    size_t offs[8], lens[8];
    int k = 0;
#define EMIT(kind, pri)                                                                                                 \
    do {                                                                                                                \
        offs[k] = all.len;                                                                                              \
        cr_buf_reset(&env);                                                                                             \
        ok(host_store_emit(&env, s, kind, pri, body.base, body.len, NULL) == 0);                                        \
        cr_buf_append(&all, env.base, env.len);                                                                         \
        lens[k++] = env.len;                                                                                            \
    } while (0)
    mp_body(&body, 5, "name", "emit", "agent", "claude", "branch", "corral/emit", "base", "main", "prompt", "t");
    EMIT("session.started", 1);
    mp_body(&body, 1, "state", "running");
    EMIT("session.state", 1);
    ok(s->state == HOST_STORE_RUNNING && s->last_seq == 2);
    mp_body(&body, 4, "rid", "r-17", "tool", "Bash", "summary", "rm -rf build", "input", "{}");
    EMIT("approval.request", 2);
    ok(s->has_needs && strcmp(s->needs_k, "approval.request") == 0 && s->needs_seq == 3 &&
       strcmp(s->needs_rid, "r-17") == 0);
    char *json = slurp("%s/.corral/sessions/emit-1/session.json", repo);
    ok(json != NULL && strstr(json, "  \"needs\": {\n    \"k\": \"approval.request\",\n    \"seq\": 3,\n    \"rid\": "
                                    "\"r-17\"\n  },\n") != NULL);
    ok(json != NULL && strstr(json, "\"last_seq\": 3,") != NULL && strstr(json, "\"state\": \"running\",") != NULL);
    free(json);
    cr_buf_reset(&body);
    cr_mpw_map(&body, 3);
    CR_MPW_LIT(&body, "aid");
    CR_MPW_LIT(&body, "01JAID0000000000000000000A");
    CR_MPW_LIT(&body, "ok");
    cr_mpw_bool(&body, 1);
    CR_MPW_LIT(&body, "detail");
    CR_MPW_LIT(&body, "approved");
    EMIT("action.applied", 1);
    ok(!s->has_needs);
    json = slurp("%s/.corral/sessions/emit-1/session.json", repo);
    ok(json != NULL && strstr(json, "\"needs\"") == NULL && strstr(json, "\"last_seq\": 4,") != NULL);
    free(json);
    /* a bad body: nothing emitted, seq not used */
    mp_body(&body, 1, "nottext", "x");
    cr_buf_reset(&env);
    ok(host_store_emit(&env, s, "agent.message", 1, body.base, body.len, NULL) == CR_EBODY && env.len == 0);
    ok(host_store_emit(&env, s, "approve", 1, body.base, body.len, NULL) == CR_EENVELOPE);
    ok(s->last_seq == 4);
    mp_body(&body, 1, "state", "idle");
    EMIT("session.state", 1);
    ok(s->state == HOST_STORE_IDLE && s->last_seq == 5);
    {
        host_git_session_t gc = git_of("cost");
        host_store_session_opts_t oc = {"cost-1", "t", "shell", NULL, NULL, &gc};
        host_store_session_t *c = NULL;
        ok(host_store_session_create(&c, st, &oc) == 0);
        mp_body(&body, 1, "text", "a line of output");
        double t0 = now_s();
        int ne = 200, good = 1;
        for (int i = 0; c != NULL && i < ne; i++) {
            cr_buf_reset(&env);
            good = good && host_store_emit(&env, c, "agent.message", 1, body.base, body.len, NULL) == 0;
        }
        note("emit (outbox fsync, transcript line, session.json rewrite without fsync): %.1f us per event",
             (now_s() - t0) * 1e6 / ne);
        ok(good && c != NULL && c->last_seq == (uint64_t)ne);
        host_store_session_free(c);
    }

    /* transcript.jsonl: one JSON line per event, each the envelope (JSON -> msgpack gives back the same bytes) */
    char path[PATH_MAX + 160];
    snprintf(path, sizeof(path), "%s/.corral/sessions/emit-1/transcript.jsonl", repo);
    char *tr = cr_test_read_file(path, NULL);
    ok(tr != NULL);
    int lines = 0;
    for (char *p = tr, *nl; p != NULL && *p != '\0'; p = nl + 1, lines++) {
        nl = strchr(p, '\n');
        if (nl == NULL || lines >= k)
            break;
        cr_buf_t mp;
        cr_event_t ev;
        cr_buf_init(&mp, 1 << 20);
        ok(cr_json_to_msgpack(&mp, p, (size_t)(nl - p), NULL) == 0);
        ok(cr_event_decode(&ev, mp.base, mp.len, NULL) == 0 && ev.seq == (uint64_t)lines + 1 &&
           cr_span_eq(ev.sid, "emit-1", 6) && cr_span_eq(ev.idn, "emit-agent", 10));
        ok_bytes(mp.base, mp.len, all.base + offs[lines], lens[lines]);
        cr_buf_free(&mp);
    }
    ok(lines == 5);
    if (tr != NULL)
        note("transcript line 3: %.*s", (int)(strchr(strchr(strchr(tr, '\n') + 1, '\n') + 1, '\n') -
                                               strchr(strchr(tr, '\n') + 1, '\n') - 1),
             strchr(strchr(tr, '\n') + 1, '\n') + 1);
    free(tr);
    /* Python's json module reads every line */
    char cmd[2 * PATH_MAX + 400];
    snprintf(cmd, sizeof(cmd),
             "python3 -c 'import json,sys; print(\",\".join(str(json.loads(l)[\"seq\"]) for l in open(sys.argv[1])))' "
             "'%s'",
             path);
    char *py = sh_out(cmd);
    ok_str(py, "1,2,3,4,5\n");
    free(py);

    /* seqs survive a crash that lost session.json's update and the transcript: recovered from the outbox */
    host_store_session_free(s);
    s = NULL;
    host_store_close(st);
    st = NULL;
    snprintf(cmd, sizeof(cmd), "cd '%s/.corral/sessions/emit-1' && sed -i 's/\"last_seq\": 5/\"last_seq\": 1/' session.json"
             " && rm transcript.jsonl", repo);
    ok(sh("%s", cmd) == 0);
    ok(host_store_open(&st, repo) == 0);
    ok(host_store_session_load(&l, st, "emit-1") == 0 && l != NULL && l->last_seq == 5);
    if (l != NULL) {
        mp_body(&body, 1, "text", "after restart");
        cr_buf_reset(&env);
        ok(host_store_emit(&env, l, "agent.message", 1, body.base, body.len, NULL) == 0 && l->last_seq == 6);
        /* everything sent (a message is synced in a group before it leaves), acked and compacted, session.json stale
         * again: the transcript and acked file still know */
        ok(host_store_outbox_sync(host_store_outbox(st)) == 0);
        ok(host_store_outbox_ack(host_store_outbox(st), "emit-1", 6) == 0);
        ok(host_store_outbox_ack(host_store_outbox(st), "cost-1", 200) == 0);
        ok(host_store_outbox_compact(host_store_outbox(st)) == 1);
    }
    host_store_session_free(l);
    l = NULL;
    host_store_close(st);
    st = NULL;
    snprintf(cmd, sizeof(cmd), "cd '%s/.corral/sessions/emit-1' && sed -i 's/\"last_seq\": 6/\"last_seq\": 2/' session.json",
             repo);
    ok(sh("%s", cmd) == 0);
    ok(host_store_open(&st, repo) == 0);
    ok(host_store_session_load(&l, st, "emit-1") == 0 && l != NULL && l->last_seq == 6);
    ok(host_store_outbox_pending(host_store_outbox(st)) == 0 && host_store_outbox_segments(host_store_outbox(st)) == 0);
    host_store_session_free(l);
    l = NULL;
    snprintf(cmd, sizeof(cmd), "cd '%s/.corral/sessions/emit-1' && rm transcript.jsonl", repo);
    ok(sh("%s", cmd) == 0);
    ok(host_store_session_load(&l, st, "emit-1") == 0 && l != NULL && l->last_seq == 6); /* from outbox/acked */
#undef EMIT
done:
    host_store_session_free(l);
    host_store_session_free(s);
    host_store_close(st);
    cr_buf_free(&env);
    cr_buf_free(&body);
    cr_buf_free(&all);
}

/* ---- tasks.md ------------------------------------------------------------------------------------------------------ */

static void test_tasks(void)
{
    char repo[PATH_MAX];
    host_store_t *st = NULL;
    host_store_session_t *s = NULL;
    char *t = NULL;
    new_dir(repo, sizeof(repo), "repo");
    ok(host_store_open(&st, repo) == 0);
    host_git_session_t g = git_of("tasks");
    host_store_session_opts_t o = {"tasks-1", "t", "codex", NULL, NULL, &g};
    ok(host_store_session_create(&s, st, &o) == 0);
    if (s == NULL)
        goto done;
    ok(host_store_task_count(s) == 0);
    ok(host_store_task_take(&t, s) == CR_ENOTFOUND && t == NULL);
    ok(host_store_task_add(s, "") == CR_EBODY);
    ok(host_store_task_add(s, "Add tests for login") == 0);
    ok(host_store_task_add(s, "Fix the README:\n- typo\n\nthen push") == 0);
    ok(host_store_task_add(s, "third") == 0);
    ok(host_store_task_count(s) == 3);
    char *md = slurp("%s/.corral/sessions/tasks-1/tasks.md", repo);
    ok_str(md, "- [ ] Add tests for login\n- [ ] Fix the README:\n  - typo\n  \n  then push\n- [ ] third\n");
    free(md);
    ok(host_store_task_take(&t, s) == 0);
    ok_str(t, "Add tests for login");
    free(t);
    ok(host_store_task_take(&t, s) == 0);
    ok_str(t, "Fix the README:\n- typo\n\nthen push");
    free(t);
    md = slurp("%s/.corral/sessions/tasks-1/tasks.md", repo);
    ok_str(md, "- [x] Add tests for login\n- [x] Fix the README:\n  - typo\n  \n  then push\n- [ ] third\n");
    free(md);
    ok(host_store_task_count(s) == 1);
    /* a human's edit (a heading, a task added by hand) is kept */
    ok(sh("printf '# Next\\n' | cat - '%s/.corral/sessions/tasks-1/tasks.md' > '%s/t' && mv '%s/t' "
          "'%s/.corral/sessions/tasks-1/tasks.md' && printf -- '- [ ] by hand\\n' >> '%s/.corral/sessions/tasks-1/tasks.md'",
          repo, repo, repo, repo, repo) == 0);
    ok(host_store_task_take(&t, s) == 0);
    ok_str(t, "third");
    free(t);
    ok(host_store_task_take(&t, s) == 0);
    ok_str(t, "by hand");
    free(t);
    ok(host_store_task_take(&t, s) == CR_ENOTFOUND);
    md = slurp("%s/.corral/sessions/tasks-1/tasks.md", repo);
    ok(md != NULL && strncmp(md, "# Next\n- [x] Add tests", 22) == 0 && strstr(md, "- [x] by hand\n") != NULL);
    free(md);
    char sdir[PATH_MAX + 160];
    snprintf(sdir, sizeof(sdir), "%s/.corral/sessions/tasks-1", repo);
    ok(hidden_files(sdir) == 0);
done:
    host_store_session_free(s);
    host_store_close(st);
}

/* ---- activity.csv ------------------------------------------------------------------------------------------------- */

static void test_activity(void)
{
    char repo[PATH_MAX], cmd[2 * PATH_MAX + 400];
    host_store_t *st = NULL;
    new_dir(repo, sizeof(repo), "repo");
    ok(host_store_open(&st, repo) == 0);
    host_store_activity_t a = {1795000000123ull, "device:01JPHONE", "sess-1", "feature-auth-agent", "approve",
                               "rm -rf build, \"really\"\nsecond line", "ok"};
    ok(host_store_activity(st, &a) == 0);
    host_store_activity_t b = {1795000001000ull, "corrald", NULL, NULL, "merge", "plain", "error: conflict"};
    ok(host_store_activity(st, &b) == 0);
    char *csv = slurp("%s/.corral/activity.csv", repo);
    ok_str(csv, "time,actor,session,identity,operation,detail,outcome\r\n"
                "2026-11-18T11:06:40.123Z,device:01JPHONE,sess-1,feature-auth-agent,approve,"
                "\"rm -rf build, \"\"really\"\"\nsecond line\",ok\r\n"
                "2026-11-18T11:06:41.000Z,corrald,,,merge,plain,error: conflict\r\n");
    free(csv);
    snprintf(cmd, sizeof(cmd),
             "python3 -c 'import csv,json,sys; print(json.dumps(list(csv.reader(open(sys.argv[1], newline=\"\")))))' "
             "'%s/.corral/activity.csv'",
             repo);
    char *py = sh_out(cmd);
    ok_str(py, "[[\"time\", \"actor\", \"session\", \"identity\", \"operation\", \"detail\", \"outcome\"], "
               "[\"2026-11-18T11:06:40.123Z\", \"device:01JPHONE\", \"sess-1\", \"feature-auth-agent\", \"approve\", "
               "\"rm -rf build, \\\"really\\\"\\nsecond line\", \"ok\"], "
               "[\"2026-11-18T11:06:41.000Z\", \"corrald\", \"\", \"\", \"merge\", \"plain\", \"error: conflict\"]]\n");
    free(py);
    host_store_close(st);
}

/* ---- the outbox --------------------------------------------------------------------------------------------------- */

#define NSID 10
#define NEV 10000

static char text500[501];

/* The envelope of event i: session "s<i % NSID>", seq i / NSID + 1, an agent.message of ~500 bytes. */
static void make_event(cr_buf_t *out, int i)
{
    char sid[16];
    cr_buf_t body;
    cr_event_t ev;
    cr_buf_init(&body, 4096);
    snprintf(sid, sizeof(sid), "s%d", i % NSID);
    cr_mpw_map(&body, 1);
    CR_MPW_LIT(&body, "text");
    cr_mpw_str(&body, text500, 500);
    memset(&ev, 0, sizeof(ev));
    ev.v = 1;
    ev.k = CR_SPAN_LIT("agent.message");
    ev.kind = CR_EV_AGENT_MESSAGE;
    ev.sid = (cr_span_t){sid, strlen(sid)};
    ev.seq = (uint64_t)(i / NSID) + 1;
    ev.ts = 1795000000000ull + (uint64_t)i;
    ev.pri = 1;
    ev.b.raw = (cr_span_t){body.base, body.len};
    cr_buf_reset(out);
    cr_event_encode(out, &ev);
    cr_buf_free(&body);
}

/* Drains the outbox and checks it gives exactly the events i (in order) for which want(i) holds. */
static int drain_matches(host_store_outbox_t *ob, int (*want)(int), size_t *batches)
{
    cr_span_t spans[512];
    size_t n, got = 0;
    int i = 0, good = 1;
    *batches = 0;
    for (;;) {
        if (host_store_outbox_next_batch(ob, spans, &n, 512, 1 << 20) != 0)
            return 0;
        if (n == 0)
            break;
        (*batches)++;
        for (size_t j = 0; j < n; j++, got++) {
            cr_event_t ev;
            while (i < NEV && !want(i))
                i++;
            if (i >= NEV || cr_event_decode(&ev, spans[j].base, spans[j].len, NULL) != 0 ||
                ev.seq != (uint64_t)(i / NSID) + 1 || ev.ts != 1795000000000ull + (uint64_t)i) {
                if (good)
                    note("mismatch at record %zu (expected event %d)", got, i);
                good = 0;
            }
            i++;
        }
    }
    while (i < NEV && !want(i))
        i++;
    return good && i == NEV;
}

static int want_all(int i)
{
    (void)i;
    return 1;
}

/* acks: s0 fully, s1 up to 500, s2 up to 1 */
static int want_partial(int i)
{
    int sid = i % NSID, seq = i / NSID + 1;
    return !(sid == 0 || (sid == 1 && seq <= 500) || (sid == 2 && seq <= 1));
}

static int want_after_800(int i)
{
    return want_partial(i) && i / NSID + 1 > 800;
}

static void test_outbox(void)
{
    char dir[PATH_MAX];
    host_store_outbox_t *ob = NULL;
    cr_buf_t env;
    size_t batches = 0;
    cr_buf_init(&env, 1 << 20);
    memset(text500, 'x', 500);
    new_dir(dir, sizeof(dir), "outbox");
    ok(host_store_outbox_open(&ob, dir) == 0);
    if (ob == NULL)
        return;
    /* group commit: 100 appends, then one fsync */
    double t0 = now_s();
    for (int i = 0; i < NEV; i++) {
        make_event(&env, i);
        if (host_store_outbox_append(ob, env.base, env.len, HOST_STORE_NOSYNC) != 0) {
            ok(!"append");
            break;
        }
        if (i % 100 == 99)
            host_store_outbox_sync(ob);
    }
    double t1 = now_s();
    note("outbox: %d appends of %zu-byte envelopes, fsync every 100: %.1f us per event", NEV, env.len,
         (t1 - t0) * 1e6 / NEV);
    ok(host_store_outbox_pending(ob) == NEV);
    ok(host_store_outbox_segments(ob) == 2);
    note("segments: %zu", host_store_outbox_segments(ob));
    ok(drain_matches(ob, want_all, &batches));
    ok(batches == (NEV + 511) / 512);
    cr_span_t spans[8];
    size_t n = 99;
    ok(host_store_outbox_next_batch(ob, spans, &n, 8, 1 << 20) == 0 && n == 0); /* all in flight */
    host_store_outbox_rewind(ob);
    ok(host_store_outbox_next_batch(ob, spans, &n, 8, 1 << 20) == 0 && n == 8);
    ok(host_store_outbox_next_batch(ob, spans, &n, 100, 3 * env.len) == 0 && n == 3); /* byte cap */
    ok(host_store_outbox_next_batch(ob, spans, &n, 8, 1) == 0 && n == 1);             /* at least one */
    ok(host_store_outbox_ack(ob, "s0", 1000) == 0 && host_store_outbox_ack(ob, "s1", 500) == 0 &&
       host_store_outbox_ack(ob, "s2", 1) == 0 && host_store_outbox_ack(ob, "s1", 7) == 0); /* lower: ignored */
    ok(host_store_outbox_ack(ob, "bad sid!", 3) == CR_EBADNAME);
    ok(host_store_outbox_pending(ob) == NEV - 1000 - 500 - 1);
    ok(host_store_outbox_compact(ob) == 0); /* both segments still hold unacked records */
    host_store_outbox_close(ob);
    ob = NULL;

    /* restart: exactly the unacked ones, in order */
    t0 = now_s();
    ok(host_store_outbox_open(&ob, dir) == 0);
    note("outbox: reopening %d records took %.1f ms", NEV, (now_s() - t0) * 1e3);
    if (ob == NULL)
        goto done;
    ok(host_store_outbox_pending(ob) == NEV - 1000 - 500 - 1);
    ok(drain_matches(ob, want_partial, &batches));
    ok(host_store_outbox_max_seq(ob, "s3") == 1000 && host_store_outbox_max_seq(ob, "s0") == 1000 &&
       host_store_outbox_max_seq(ob, "nope") == 0);

    /* compaction: everything up to seq 800 acked -> the first segment goes */
    char seg0[PATH_MAX + 160];
    snprintf(seg0, sizeof(seg0), "%s/%020d.seg", dir, 0);
    for (int i = 0; i < NSID; i++) {
        char sid[8];
        snprintf(sid, sizeof(sid), "s%d", i);
        ok(host_store_outbox_ack(ob, sid, 800) == 0);
    }
    ok(access(seg0, F_OK) == 0);
    ok(host_store_outbox_compact(ob) == 1);
    ok(access(seg0, F_OK) != 0);
    ok(host_store_outbox_segments(ob) == 1);
    host_store_outbox_rewind(ob);
    ok(drain_matches(ob, want_after_800, &batches));
    host_store_outbox_close(ob);
    ob = NULL;
    ok(host_store_outbox_open(&ob, dir) == 0);
    if (ob == NULL)
        goto done;
    ok(host_store_outbox_pending(ob) == 2000 - 200); /* s0 was fully acked */
    ok(drain_matches(ob, want_after_800, &batches));
    /* appends continue after the deleted segment without reusing a file name */
    make_event(&env, 0);
    ok(host_store_outbox_append(ob, env.base, env.len, HOST_STORE_SYNC) == 0);
    /* everything acked: every segment goes */
    for (int i = 0; i < NSID; i++) {
        char sid[8];
        snprintf(sid, sizeof(sid), "s%d", i);
        ok(host_store_outbox_ack(ob, sid, 1000) == 0);
    }
    ok(host_store_outbox_pending(ob) == 0);
    ok(host_store_outbox_compact(ob) == 1 && host_store_outbox_segments(ob) == 0);
    char *acked = slurp("%s/acked", dir);
    ok(acked != NULL && strstr(acked, "s0 1000\n") != NULL && strstr(acked, "s9 1000\n") != NULL);
    free(acked);
    ok(hidden_files(dir) == 0);
done:
    host_store_outbox_close(ob);
    cr_buf_free(&env);
}

/* NOSYNC appends wait in memory until a flush (or 64 KiB, a sync, close): one write for many events; nothing is handed
 * out before it is durable, and what was flushed or closed is all there when the outbox is opened again. */
#define REC_HEADER_TEST 8 /* a record's header on disk: its length and its crc32, 4 bytes each */

static void test_outbox_write_buffer(void)
{
    char dir[PATH_MAX], seg[PATH_MAX + 32];
    host_store_outbox_t *ob = NULL;
    cr_span_t spans[64];
    size_t n = 0, one;
    cr_buf_t env;
    cr_buf_init(&env, 1 << 20);
    memset(text500, 'x', 500);
    new_dir(dir, sizeof(dir), "outbox-wbuf");
    snprintf(seg, sizeof(seg), "%s/%020d.seg", dir, 0);
    if (!ok(host_store_outbox_open(&ob, dir) == 0))
        return;
    make_event(&env, 0);
    one = REC_HEADER_TEST + env.len;
    ok(host_store_outbox_append(ob, env.base, env.len, HOST_STORE_NOSYNC) == 0);
    make_event(&env, 1);
    ok(host_store_outbox_append(ob, env.base, env.len, HOST_STORE_NOSYNC) == 0);
    ok(cr_test_file_size(seg) == 0);                                                 /* not written yet */
    ok(host_store_outbox_next_batch(ob, spans, &n, 64, 1 << 20) == 0 && n == 0);    /* nor handed out */
    ok(host_store_outbox_flush(ob) == 0);
    ok(cr_test_file_size(seg) == (off_t)(2 * one));                                  /* one write: both */
    ok(host_store_outbox_flush(ob) == 0 && cr_test_file_size(seg) == (off_t)(2 * one)); /* nothing twice */
    make_event(&env, 2);
    ok(host_store_outbox_append(ob, env.base, env.len, HOST_STORE_SYNC) == 0);     /* a sync writes it at once */
    ok(cr_test_file_size(seg) == (off_t)(3 * one));
    ok(host_store_outbox_next_batch(ob, spans, &n, 64, 1 << 20) == 0 && n == 3);
    for (int i = 3; i < 6; ++i) {
        make_event(&env, i);
        ok(host_store_outbox_append(ob, env.base, env.len, HOST_STORE_NOSYNC) == 0);
    }
    host_store_outbox_close(ob); /* close writes what waits */
    ob = NULL;
    ok(cr_test_file_size(seg) == (off_t)(6 * one));
    if (ok(host_store_outbox_open(&ob, dir) == 0)) {
        ok(host_store_outbox_pending(ob) == 6);
        host_store_outbox_close(ob);
    }
    cr_buf_free(&env);
}

static void test_outbox_sync_cost(void)
{
    char dir[PATH_MAX];
    host_store_outbox_t *ob = NULL;
    cr_buf_t env;
    cr_buf_init(&env, 1 << 20);
    new_dir(dir, sizeof(dir), "outbox");
    ok(host_store_outbox_open(&ob, dir) == 0);
    if (ob == NULL)
        return;
    int count = 300;
    double t0 = now_s();
    for (int i = 0; i < count; i++) {
        make_event(&env, i);
        if (host_store_outbox_append(ob, env.base, env.len, HOST_STORE_SYNC) != 0)
            break;
    }
    double t1 = now_s();
    for (int i = count; i < 2 * count; i++) {
        make_event(&env, i);
        host_store_outbox_append(ob, env.base, env.len, HOST_STORE_NOSYNC);
        if (i % 32 == 31)
            host_store_outbox_sync(ob);
    }
    host_store_outbox_sync(ob);
    double t2 = now_s();
    note("outbox: append + fsync per event: %.1f us; group commit of 32: %.1f us per event (%s)",
         (t1 - t0) * 1e6 / count, (t2 - t1) * 1e6 / count, root);
    ok(host_store_outbox_pending(ob) == (size_t)(2 * count));
    /* not durable yet -> not handed out */
    make_event(&env, 2 * count);
    cr_span_t spans[1024];
    size_t n = 0;
    ok(host_store_outbox_append(ob, env.base, env.len, HOST_STORE_NOSYNC) == 0);
    ok(host_store_outbox_next_batch(ob, spans, &n, 1024, 1 << 30) == 0 && n == (size_t)(2 * count));
    ok(host_store_outbox_next_batch(ob, spans, &n, 1024, 1 << 30) == 0 && n == 0);
    ok(host_store_outbox_sync(ob) == 0);
    ok(host_store_outbox_next_batch(ob, spans, &n, 1024, 1 << 30) == 0 && n == 1);
    /* bad input: not an event envelope */
    ok(host_store_outbox_append(ob, "\x81\xa1k\xa1x", 5, HOST_STORE_SYNC) < 0);
    ok(host_store_outbox_append(ob, "garbage", 7, HOST_STORE_SYNC) < 0);
    ok(host_store_outbox_pending(ob) == (size_t)(2 * count + 1));
    host_store_outbox_close(ob);
    cr_buf_free(&env);
}

static off_t fsize(const char *p)
{
    struct stat sb;
    return stat(p, &sb) == 0 ? sb.st_size : -1;
}

static void test_outbox_torn(void)
{
    char dir[PATH_MAX], seg[PATH_MAX + 160];
    host_store_outbox_t *ob = NULL;
    cr_buf_t env;
    size_t batches;
    cr_buf_init(&env, 1 << 20);
    new_dir(dir, sizeof(dir), "outbox");
    snprintf(seg, sizeof(seg), "%s/%020d.seg", dir, 0);
    ok(host_store_outbox_open(&ob, dir) == 0);
    if (ob == NULL)
        return;
    for (int i = 0; i < 5; i++) {
        make_event(&env, i);
        ok(host_store_outbox_append(ob, env.base, env.len, HOST_STORE_SYNC) == 0);
    }
    host_store_outbox_close(ob);
    ob = NULL;
    off_t full = fsize(seg), rec = (off_t)(8 + env.len);
    ok(full == 5 * rec);
    /* a torn tail: the last record cut short */
    ok(truncate(seg, full - 3) == 0);
    ok(host_store_outbox_open(&ob, dir) == 0);
    if (ob == NULL)
        goto done;
    ok(host_store_outbox_pending(ob) == 4 && fsize(seg) == 4 * rec);
    make_event(&env, 4);
    ok(host_store_outbox_append(ob, env.base, env.len, HOST_STORE_SYNC) == 0);
    host_store_outbox_close(ob);
    ob = NULL;
    ok(fsize(seg) == full);
    /* a flipped byte in the last record */
    int fd = open(seg, O_RDWR);
    char c;
    ok(pread(fd, &c, 1, full - 10) == 1);
    c ^= 0x20;
    ok(pwrite(fd, &c, 1, full - 10) == 1);
    close(fd);
    ok(host_store_outbox_open(&ob, dir) == 0);
    if (ob == NULL)
        goto done;
    ok(host_store_outbox_pending(ob) == 4 && fsize(seg) == 4 * rec);
    /* a half-written header */
    ok(sh("printf '\\001\\002\\003' >> '%s'", seg) == 0);
    host_store_outbox_close(ob);
    ob = NULL;
    ok(host_store_outbox_open(&ob, dir) == 0);
    if (ob == NULL)
        goto done;
    ok(host_store_outbox_pending(ob) == 4 && fsize(seg) == 4 * rec);
    cr_span_t spans[8];
    size_t n;
    ok(host_store_outbox_next_batch(ob, spans, &n, 8, 1 << 20) == 0 && n == 4);
    for (size_t i = 0; i < n; i++) {
        cr_event_t ev;
        ok(cr_event_decode(&ev, spans[i].base, spans[i].len, NULL) == 0 && ev.ts == 1795000000000ull + i);
    }
    (void)batches;
done:
    host_store_outbox_close(ob);
    cr_buf_free(&env);
}

int main(void)
{
    cr_log_init("test", CR_LOG_WARN);
    if (cr_test_make_temp_dir(root, sizeof(root), "corral-store", 200) != 0)
        return 1;
    cr_test_slot_add(root, 0);
    subtest("layout", test_layout);
    subtest("sessions", test_sessions);
    subtest("emit", test_emit);
    subtest("tasks", test_tasks);
    subtest("activity", test_activity);
    subtest("outbox", test_outbox);
    subtest("outbox write buffer", test_outbox_write_buffer);
    subtest("outbox sync cost", test_outbox_sync_cost);
    subtest("outbox torn tail", test_outbox_torn);
    return done_testing();
}
