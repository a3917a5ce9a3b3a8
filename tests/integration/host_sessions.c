/* host_sessions.c — corrald and the corral CLI end to end on a real git repository with the scripted fake Claude
 * (tests/fakes/fake_claude.py): a session asks, is approved and runs; a change becomes diff.ready and, approved, a
 * commit on main; `corral ask` from inside a session; bad input answered with a message and an exit status, leaving
 * nothing behind; suspend, a corrald restart and resume into the same conversation. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness.h"
#include "proc.h"

/* paths here are a short temp dir plus short names: a cut path would fail the test loudly anyway */
#pragma GCC diagnostic ignored "-Wformat-truncation"

static char tmp[PATH_MAX], repo[2 * PATH_MAX + 16], home[2 * PATH_MAX + 16], corrald_bin[PATH_MAX], corral_bin[PATH_MAX];
static char fake_log[2 * PATH_MAX + 32], claude_cmd[2 * PATH_MAX + 64];
static char env_home[2 * PATH_MAX + 32], env_chome[2 * PATH_MAX + 32], env_cmd[2 * PATH_MAX + 96], env_state[2 * PATH_MAX + 64],
    env_log[2 * PATH_MAX + 64];
static const char *env[12];
static int slot;
static pid_t daemon_pid;
static char *out, *err; /* of the last run */

/* Runs argv (NULL-terminated) with the test environment, waits, and keeps its stdout and stderr in out and err.
 * Returns its exit status (-1 when it did not exit normally). */
static int runv(const char *const *argv)
{
    char op[2 * PATH_MAX + 16], ep[2 * PATH_MAX + 16];
    int ofd, efd, status = 0;
    pid_t pid;
    free(out);
    free(err);
    snprintf(op, sizeof(op), "%s/run.out", tmp);
    snprintf(ep, sizeof(ep), "%s/run.err", tmp);
    ofd = open(op, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    efd = open(ep, O_WRONLY | O_CREAT | O_TRUNC, 0600);
    pid = cr_test_spawn(argv[0], argv, env, ofd, efd);
    close(ofd);
    close(efd);
    if (pid < 0)
        return -1;
    cr_test_reap(pid, 1, &status);
    out = cr_test_file_read(op, 0, 1 << 20);
    err = cr_test_file_read(ep, 0, 1 << 20);
    if (out == NULL)
        out = strdup("");
    if (err == NULL)
        err = strdup("");
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Runs the corral CLI with the arguments (NULL-terminated). */
static int corral(const char *first, ...)
{
    const char *argv[24];
    int n = 0;
    va_list ap;
    argv[n++] = corral_bin;
    argv[n++] = first;
    va_start(ap, first);
    while (n < 23 && (argv[n] = va_arg(ap, const char *)) != NULL)
        ++n;
    va_end(ap);
    argv[n] = NULL;
    return runv(argv);
}

static int git(const char *a1, const char *a2, const char *a3, const char *a4)
{
    char gitexe[PATH_MAX];
    const char *argv[] = {gitexe, "-C", repo, a1, a2, a3, a4, NULL};
    if (cr_test_find_program(gitexe, sizeof(gitexe), "git") != 0)
        return -1;
    return runv(argv);
}

/* Polls `corral ARGS` until its stdout contains want (up to 15 s). Returns 1 when it did. */
static int wait_for(const char *want, const char *a1, const char *a2, const char *a3)
{
    int64_t end = cr_test_now_ms() + 15000;
    while (cr_test_now_ms() < end) {
        corral(a1, a2, a3, NULL);
        if (strstr(out, want) != NULL)
            return 1;
        cr_test_sleep_ms(100);
    }
    note("waited in vain for '%s' in `corral %s %s`; last output:\n%s%s", want, a1, a2 != NULL ? a2 : "", out, err);
    return 0;
}

static void start_daemon(void)
{
    const char *argv[] = {corrald_bin, "--repo", repo, NULL};
    char logp[2 * PATH_MAX + 16], sock[2 * PATH_MAX + 16];
    int fd;
    int64_t end = cr_test_now_ms() + 10000;
    snprintf(logp, sizeof(logp), "%s/corrald.log", tmp);
    snprintf(sock, sizeof(sock), "%s/corrald.sock", home);
    fd = open(logp, O_WRONLY | O_CREAT | O_APPEND, 0600);
    daemon_pid = cr_test_spawn(corrald_bin, argv, env, fd, fd);
    close(fd);
    cr_test_slot_set_pid(slot, daemon_pid);
    while (cr_test_now_ms() < end && access(sock, F_OK) != 0)
        cr_test_sleep_ms(50);
    okf(access(sock, F_OK) == 0, "corrald listens on %s", sock);
}

static int stop_daemon(void)
{
    int status = 0, gone = 0;
    kill(daemon_pid, SIGTERM);
    for (int i = 0; i < 200 && !(gone = cr_test_reap(daemon_pid, 0, &status)); ++i)
        cr_test_sleep_ms(50);
    if (!gone)
        cr_test_terminate(daemon_pid, 100), status = -1;
    cr_test_slot_set_pid(slot, 0);
    daemon_pid = 0;
    if (status != 0) {
        char logp[2 * PATH_MAX], tail[4096];
        snprintf(logp, sizeof(logp), "%s/corrald.log", tmp);
        note("corrald ended with wait status %d; its log ends:\n%s", status, cr_test_file_tail(tail, sizeof(tail), logp));
    }
    return status;
}

static void test_approve_and_run(void)
{
    struct stat st;
    char sock[2 * PATH_MAX];
    snprintf(sock, sizeof(sock), "%s/corrald.sock", home);
    ok(stat(sock, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600);
    ok(stat(home, &st) == 0 && (st.st_mode & 0777) == 0700);
    ok(corral("new", "@bash echo hi", "--name", "demo", NULL) == 0);
    ok(strstr(out, "demo: started claude on corral/demo") != NULL);
    ok(wait_for("\"k\":\"approval.request\"", "ls", "--json", NULL));
    ok(strstr(out, "\"state\":\"waiting\"") != NULL);
    ok(corral("approve", "demo", NULL) == 0);
    ok(strstr(out, "demo: approved") != NULL);
    ok(wait_for("session.state: idle", "log", "demo", NULL));
    okf(strstr(out, "agent.tool: Bash echo hi\n  | hi\n") != NULL, "the log shows the command's output:\n%s", out);
    /* the same aid twice is applied once */
    ok(corral("task", "demo", "@text queued one", "--aid", "01TESTAID000000000000000001", NULL) == 0);
    ok(corral("task", "demo", "@text queued one", "--aid", "01TESTAID000000000000000001", NULL) == 0);
    ok(strstr(out, "not applied again") != NULL);
    ok(wait_for("queued one", "log", "demo", NULL));
    ok(strstr(strstr(out, "queued one") + 1, "queued one") == NULL);
}

static void test_diff_approve_merges(void)
{
    char path[2 * PATH_MAX + 32], *content;
    ok(corral("reply", "demo", "@write hello.txt hi", NULL) == 0);
    ok(wait_for("\"k\":\"approval.request\"", "ls", "--json", NULL));
    ok(corral("approve", "demo", NULL) == 0);
    ok(wait_for("\"k\":\"diff.ready\"", "ls", "--json", NULL));
    ok(corral("log", "demo", NULL) == 0);
    ok(strstr(out, "diff.ready: +1 -0 in 1 files") != NULL);
    ok(corral("diff", "demo", NULL) == 0);
    ok(strstr(out, "+++ b/hello.txt\n@@ -0,0 +1 @@\n+hi") != NULL);
    ok(corral("approve", "demo", "--json", NULL) == 0);
    okf(strstr(out, "\"ok\":true") != NULL && strstr(out, "merged into main (ff)") != NULL, "%s", out);
    ok(git("log", "--format=%an%n%s", NULL, NULL) == 0);
    ok_str(out, "demo-agent\ndemo: @bash echo hi\nTest\ninit\n");
    snprintf(path, sizeof(path), "%s/hello.txt", repo);
    content = cr_test_file_read(path, 0, 100);
    ok(content != NULL && strcmp(content, "hi") == 0);
    free(content);
    ok(corral("approve", "demo", NULL) == 4);
    ok(strstr(err, "nothing in demo waits for an approval") != NULL);

    /* main moved on meanwhile: a fast-forward is impossible, reported, and main is left as it was */
    ok(corral("new", "@write c.txt one", "--name", "cf", NULL) == 0);
    ok(wait_for("\"k\":\"approval.request\"", "ls", "--json", NULL));
    ok(corral("approve", "cf", NULL) == 0);
    ok(wait_for("\"k\":\"diff.ready\"", "ls", "--json", NULL));
    {
        char p2[2 * PATH_MAX];
        FILE *fp;
        snprintf(p2, sizeof(p2), "%s/other.txt", repo);
        fp = fopen(p2, "w");
        fputs("other\n", fp);
        fclose(fp);
    }
    ok(git("add", "other.txt", NULL, NULL) == 0);
    ok(git("commit", "-q", "-m", "other") == 0);
    ok(corral("approve", "cf", NULL) == 4);
    okf(strstr(err, "merge into main failed") != NULL, "%s", err);
    ok(git("log", "-1", "--format=%s", "main") == 0);
    ok_str(out, "other\n");
    snprintf(path, sizeof(path), "%s/c.txt", repo);
    ok(access(path, F_OK) != 0);
    ok(corral("rm", "cf", NULL) == 0);
}

static void test_ask(void)
{
    char cmd[2 * PATH_MAX + 128];
    snprintf(cmd, sizeof(cmd), "@bash %s ask 'Which colour?'; %s ls; echo ls=$?", corral_bin, corral_bin);
    ok(corral("new", cmd, "--name", "asker", "--identity", "ana", NULL) == 0);
    ok(wait_for("\"k\":\"approval.request\"", "ls", "--json", NULL));
    ok(corral("approve", "asker", NULL) == 0);
    ok(wait_for("question:", "log", "asker", NULL));
    ok(strstr(out, "Which colour?") != NULL);
    ok(corral("reply", "asker", "blue", NULL) == 0);
    ok(strstr(out, "answer given to corral ask") != NULL);
    ok(wait_for("session.state: idle", "log", "asker", NULL));
    okf(strstr(out, "  | blue\n") != NULL, "the agent got the answer:\n%s", out);
    okf(strstr(out, "a session token reaches only its own session") != NULL && strstr(out, "ls=6") != NULL,
        "a session token cannot list other sessions:\n%s", out);
    {
        char *log = cr_test_file_read(fake_log, 0, 1 << 20);
        ok(log != NULL && strstr(log, "\"CORRAL_IDENTITY\":\"ana\"") != NULL);
        free(log);
    }
    /* ask outside any session */
    ok(corral("ask", "hello?", NULL) == 2);
    ok(strstr(err, "from inside a Corral session") != NULL);
}

static void test_reject_and_follow(void)
{
    char path[2 * PATH_MAX];
    /* a denied request: the reason reaches the agent */
    ok(corral("new", "@write a.txt x", "--name", "rj", NULL) == 0);
    ok(wait_for("\"k\":\"approval.request\"", "ls", "--json", NULL));
    ok(corral("reject", "rj", "--reason", "no files please", NULL) == 0);
    ok(wait_for("session.state: idle", "log", "rj", NULL));
    okf(strstr(out, "agent.tool: Write a.txt (error)\n  | no files please\n") != NULL, "%s", out);
    snprintf(path, sizeof(path), "%s.worktrees/rj/a.txt", repo);
    ok(access(path, F_OK) != 0);
    /* a rejected diff with --discard: the worktree is reset and the reason is the agent's next message */
    ok(corral("reply", "rj", "@write b.txt y", NULL) == 0);
    ok(wait_for("\"k\":\"approval.request\"", "ls", "--json", NULL));
    ok(corral("approve", "rj", NULL) == 0);
    ok(wait_for("\"k\":\"diff.ready\"", "ls", "--json", NULL));
    snprintf(path, sizeof(path), "%s.worktrees/rj/b.txt", repo);
    ok(access(path, F_OK) == 0);
    ok(corral("reject", "rj", "--discard", "--reason", "@text not now", NULL) == 0);
    ok(strstr(out, "worktree reset") != NULL);
    ok(access(path, F_OK) != 0);
    ok(wait_for("  not now\n", "log", "rj", NULL));
    ok(corral("rm", "rj", NULL) == 0);
    /* log -f follows a session to its end */
    ok(corral("new", "echo hello; sleep 0.5; echo bye", "--agent", "shell", "--name", "sh", NULL) == 0);
    ok(corral("log", "sh", "-f", NULL) == 0);
    okf(strstr(out, "  hello\n") != NULL && strstr(out, "  bye\n") != NULL && strstr(out, "session.state: done") != NULL,
        "%s", out);
    ok(corral("approve", "sh", NULL) == 4);
    okf(strstr(err, "has ended (done)") != NULL, "%s", err);
    ok(corral("rm", "sh", NULL) == 0);
}

static void test_bad_input(void)
{
    char path[2 * PATH_MAX + 64], notrepo[2 * PATH_MAX + 16], h2[2 * PATH_MAX + 16], eh2[2 * PATH_MAX + 32];
    ok(corral("approve", "nosuch", NULL) == 3);
    ok(strstr(err, "no session named nosuch") != NULL);
    ok(corral("log", "nosuch", NULL) == 3);
    ok(corral("new", "again", "--name", "demo", NULL) == 4);
    ok(strstr(err, "exists already") != NULL);
    ok(corral("new", "x", "--name", "b1", "--base", "nosuchbranch", NULL) == 3);
    okf(strstr(err, "nosuchbranch") != NULL, "%s", err);
    ok(corral("new", "x", "--name", "b2", "--cmd", "/nonexistent/claude", NULL) == 3);
    okf(strstr(err, "not found") != NULL, "%s", err);
    ok(corral("new", "x", "--name", "../evil", NULL) == 1);
    ok(corral("new", "x", NULL) == 2);
    ok(corral("frobnicate", NULL) == 2);
    /* nothing was left behind by the refused ones */
    ok(git("branch", "--list", "corral/b*", NULL) == 0);
    ok_str(out, "");
    snprintf(path, sizeof(path), "%s.worktrees/b2", repo);
    ok(access(path, F_OK) != 0);
    ok(corral("ls", NULL) == 0);
    ok(strstr(out, "b1") == NULL && strstr(out, "b2") == NULL);
    /* not a git repository */
    snprintf(notrepo, sizeof(notrepo), "%s/notrepo", tmp);
    snprintf(h2, sizeof(h2), "%s/h2", tmp);
    snprintf(eh2, sizeof(eh2), "CORRAL_HOME=%s", h2);
    mkdir(notrepo, 0700);
    {
        const char *argv[] = {corrald_bin, "--repo", notrepo, NULL};
        const char *saved = env[1];
        env[1] = eh2;
        ok(runv(argv) == 1);
        env[1] = saved;
        okf(strstr(err, "not a git repository") != NULL, "%s", err);
    }
}

static void test_suspend_restart_resume(void)
{
    char *log, *p, sid[64] = "";
    ok(corral("suspend", "demo", NULL) == 0);
    ok(wait_for("\"state\":\"suspended\"", "ls", "--json", NULL));
    log = cr_test_file_read(fake_log, 0, 1 << 20);
    ok(log != NULL && (p = strstr(log, "\"session_id\":\"")) != NULL);
    if (log != NULL && (p = strstr(log, "\"session_id\":\"")) != NULL)
        snprintf(sid, sizeof(sid), "%.36s", p + 14);
    ok(strstr(log != NULL ? log : "", "\"CORRAL_TOKEN\":\"cst_") != NULL);
    ok(strstr(log != NULL ? log : "", "\"CORRAL_URL\":\"unix:") != NULL);
    free(log);
    okf(stop_daemon() == 0, "corrald stops cleanly on SIGTERM");
    start_daemon();
    ok(corral("ls", NULL) == 0);
    ok(strstr(out, "suspended") != NULL);
    ok(corral("resume", "demo", NULL) == 0);
    okf(strstr(out, sid) != NULL, "resumed the conversation %s: %s", sid, out);
    {
        char want[128];
        int found = 0;
        snprintf(want, sizeof(want), "\"--resume\",\"%s\"", sid);
        for (int i = 0; i < 100 && !found; ++i) {
            log = cr_test_file_read(fake_log, 0, 1 << 20);
            found = log != NULL && strstr(log, want) != NULL;
            free(log);
            if (!found)
                cr_test_sleep_ms(100);
        }
        okf(found, "the fake was started with %s", want);
    }
    ok(corral("reply", "demo", "@history", NULL) == 0);
    ok(wait_for("earlier user message", "log", "demo", NULL));
    /* a session was running when corrald stopped: suspended, resumable */
    ok(stop_daemon() == 0);
    start_daemon();
    ok(wait_for("\"state\":\"suspended\"", "ls", "--json", NULL));
    ok(corral("reply", "demo", "hello", NULL) == 4);
    ok(strstr(err, "not running") != NULL);
}

static void test_rm(void)
{
    char path[2 * PATH_MAX + 64];
    ok(corral("rm", "demo", NULL) == 0);
    ok(git("branch", "--list", "corral/demo", NULL) == 0);
    ok_str(out, "");
    snprintf(path, sizeof(path), "%s.worktrees/demo", repo);
    ok(access(path, F_OK) != 0);
    ok(corral("rm", "asker", "--keep-branch", NULL) == 0);
    ok(git("branch", "--list", "corral/asker", NULL) == 0);
    ok(strstr(out, "corral/asker") != NULL);
    ok(corral("ls", "--json", NULL) == 0);
    ok_str(out, "{\"sessions\":[]}\n");
}

int main(void)
{
    const char *bdir = getenv("CORRAL_BINARY_DIR");
    char gitexe[PATH_MAX], statedir[2 * PATH_MAX + 16];
    if (bdir == NULL) {
        fprintf(stderr, "host_sessions: set CORRAL_BINARY_DIR to the build directory (ctest does)\n");
        return 1;
    }
    if (cr_test_make_temp_dir(tmp, sizeof(tmp), "host-sessions", 60) != 0 || (slot = cr_test_slot_add(tmp, 8000)) < 0)
        return 1;
    snprintf(corrald_bin, sizeof(corrald_bin), "%s/bin/corrald", bdir);
    snprintf(corral_bin, sizeof(corral_bin), "%s/bin/corral", bdir);
    snprintf(repo, sizeof(repo), "%s/repo", tmp);
    snprintf(home, sizeof(home), "%s/home", tmp);
    snprintf(statedir, sizeof(statedir), "%s/fake", tmp);
    snprintf(fake_log, sizeof(fake_log), "%s/fake.log", tmp);
    snprintf(claude_cmd, sizeof(claude_cmd), "python3 %s/tests/fakes/fake_claude.py", cr_test_source_dir());
    snprintf(env_home, sizeof(env_home), "HOME=%s", tmp);
    snprintf(env_chome, sizeof(env_chome), "CORRAL_HOME=%s", home);
    snprintf(env_cmd, sizeof(env_cmd), "CORRAL_AGENT_CLAUDE_CMD=%s", claude_cmd);
    snprintf(env_state, sizeof(env_state), "FAKE_CLAUDE_STATE_DIR=%s", statedir);
    snprintf(env_log, sizeof(env_log), "FAKE_CLAUDE_LOG=%s", fake_log);
    env[0] = env_home;
    env[1] = env_chome;
    env[2] = env_cmd;
    env[3] = env_state;
    env[4] = env_log;
    env[5] = "CORRAL_URL=";
    env[6] = "CORRAL_TOKEN=";
    env[7] = "GIT_CONFIG_NOSYSTEM=1";
    env[8] = NULL;
    mkdir(statedir, 0700);
    if (cr_test_find_program(gitexe, sizeof(gitexe), "git") != 0)
        return 1;
    {
        const char *init[] = {gitexe, "init", "-q", "-b", "main", repo, NULL};
        char rp[2 * PATH_MAX + 16];
        FILE *fp;
        ok(runv(init) == 0);
        ok(git("config", "user.name", "Test", NULL) == 0);
        ok(git("config", "user.email", "test@example.org", NULL) == 0);
        snprintf(rp, sizeof(rp), "%s/README", repo);
        fp = fopen(rp, "w");
        fputs("readme\n", fp);
        fclose(fp);
        ok(git("add", "README", NULL, NULL) == 0);
        ok(git("commit", "-q", "-m", "init") == 0);
    }
    start_daemon();
    subtest("a session asks, is approved and runs", test_approve_and_run);
    subtest("an approved diff is committed and fast-forwarded into main", test_diff_approve_merges);
    subtest("corral ask from inside a session", test_ask);
    subtest("reject a request and a diff; follow a log", test_reject_and_follow);
    subtest("bad input: a message, an exit status, nothing left behind", test_bad_input);
    subtest("suspend, restart corrald, resume the same conversation", test_suspend_restart_resume);
    subtest("rm removes worktree, branch and record", test_rm);
    okf(stop_daemon() == 0, "corrald exits 0 after SIGTERM");
    free(out);
    free(err);
    cr_test_slot_stop(slot);
    return done_testing();
}
