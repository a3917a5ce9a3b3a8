/* host_sessions.c — corrald and the corral CLI end to end on a real git repository with the scripted fake Claude
 * (tests/fakes/fake_claude.py): a session asks, is approved and runs; a change becomes diff.ready and, approved, a
 * commit on main; `corral ask` from inside a session; bad input answered with a message and an exit status, leaving
 * nothing behind; suspend, a corrald restart and resume into the same conversation. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "harness.h"
#include "host_proc.h"
#include "proc.h"

/* paths here are a short temp dir plus short names: a cut path would fail the test loudly anyway */
#pragma GCC diagnostic ignored "-Wformat-truncation"

static cr_test_host_t host;
static char fake_log[PATH_MAX + 32], claude_cmd[2 * PATH_MAX + 64];
static char env_cmd[2 * PATH_MAX + 96], env_state[PATH_MAX + 64], env_log[PATH_MAX + 64];

/* The corral CLI and git (exactly four arguments, NULL for none) in the test's repository; see host_proc.h. */
#define corral(...) cr_test_host_corral(&host, __VA_ARGS__)
#define git(a1, a2, a3, a4) cr_test_host_git(&host, a1, a2, a3, a4, NULL)

/* Polls `corral ARGS` until its stdout contains want (up to 15 s). Returns 1 when it did. */
static int wait_for(const char *want, const char *a1, const char *a2, const char *a3)
{
    int64_t end = cr_test_now_ms() + 15000;
    while (cr_test_now_ms() < end) {
        corral(a1, a2, a3, NULL);
        if (strstr(host.out, want) != NULL)
            return 1;
        cr_test_sleep_ms(100);
    }
    note("waited in vain for '%s' in `corral %s %s`; last output:\n%s%s", want, a1, a2 != NULL ? a2 : "", host.out, host.err);
    return 0;
}

static void start_daemon(void)
{
    okf(cr_test_host_start(&host) == 0, "corrald listens on %s", host.sock);
}

static void test_approve_and_run(void)
{
    struct stat st;
    char sock[2 * PATH_MAX];
    snprintf(sock, sizeof(sock), "%s/corrald.sock", host.home);
    ok(stat(sock, &st) == 0 && S_ISSOCK(st.st_mode) && (st.st_mode & 0777) == 0600);
    ok(stat(host.home, &st) == 0 && (st.st_mode & 0777) == 0700);
    ok(corral("new", "@bash echo hi", "--name", "demo", NULL) == 0);
    ok(strstr(host.out, "demo: started claude on corral/demo") != NULL);
    ok(wait_for("\"k\":\"approval.request\"", "ls", "--json", NULL));
    ok(strstr(host.out, "\"state\":\"waiting\"") != NULL);
    ok(corral("approve", "demo", NULL) == 0);
    ok(strstr(host.out, "demo: approved") != NULL);
    ok(wait_for("session.state: idle", "log", "demo", NULL));
    okf(strstr(host.out, "agent.tool: Bash echo hi\n  | hi\n") != NULL, "the log shows the command's output:\n%s", host.out);
    /* the same aid twice is applied once */
    ok(corral("task", "demo", "@text queued one", "--aid", "01TESTAID000000000000000001", NULL) == 0);
    ok(corral("task", "demo", "@text queued one", "--aid", "01TESTAID000000000000000001", NULL) == 0);
    ok(strstr(host.out, "not applied again") != NULL);
    ok(wait_for("queued one", "log", "demo", NULL));
    ok(strstr(strstr(host.out, "queued one") + 1, "queued one") == NULL);
}

static void test_diff_approve_merges(void)
{
    char path[2 * PATH_MAX + 32], *content;
    ok(corral("reply", "demo", "@write hello.txt hi", NULL) == 0);
    ok(wait_for("\"k\":\"approval.request\"", "ls", "--json", NULL));
    ok(corral("approve", "demo", NULL) == 0);
    ok(wait_for("\"k\":\"diff.ready\"", "ls", "--json", NULL));
    ok(corral("log", "demo", NULL) == 0);
    ok(strstr(host.out, "diff.ready: +1 -0 in 1 files") != NULL);
    ok(corral("diff", "demo", NULL) == 0);
    ok(strstr(host.out, "+++ b/hello.txt\n@@ -0,0 +1 @@\n+hi") != NULL);
    ok(corral("approve", "demo", "--json", NULL) == 0);
    okf(strstr(host.out, "\"ok\":true") != NULL && strstr(host.out, "merged into main (ff)") != NULL, "%s", host.out);
    ok(git("log", "--format=%an%n%s", NULL, NULL) == 0);
    ok_str(host.out, "demo-agent\ndemo: @bash echo hi\nTest\ninit\n");
    snprintf(path, sizeof(path), "%s/hello.txt", host.repo);
    content = cr_test_file_read(path, 0, 100);
    ok(content != NULL && strcmp(content, "hi") == 0);
    free(content);
    ok(corral("approve", "demo", NULL) == 4);
    ok(strstr(host.err, "nothing in demo waits for an approval") != NULL);

    /* main moved on meanwhile: a fast-forward is impossible, reported, and main is left as it was */
    ok(corral("new", "@write c.txt one", "--name", "cf", NULL) == 0);
    ok(wait_for("\"k\":\"approval.request\"", "ls", "--json", NULL));
    ok(corral("approve", "cf", NULL) == 0);
    ok(wait_for("\"k\":\"diff.ready\"", "ls", "--json", NULL));
    {
        char p2[2 * PATH_MAX];
        FILE *fp;
        snprintf(p2, sizeof(p2), "%s/other.txt", host.repo);
        fp = fopen(p2, "w");
        fputs("other\n", fp);
        fclose(fp);
    }
    ok(git("add", "other.txt", NULL, NULL) == 0);
    ok(git("commit", "-q", "-m", "other") == 0);
    ok(corral("approve", "cf", NULL) == 4);
    okf(strstr(host.err, "merge into main failed") != NULL, "%s", host.err);
    ok(git("log", "-1", "--format=%s", "main") == 0);
    ok_str(host.out, "other\n");
    snprintf(path, sizeof(path), "%s/c.txt", host.repo);
    ok(access(path, F_OK) != 0);
    ok(corral("rm", "cf", NULL) == 0);
}

/* Waits (up to 15 s) until corrald has a spare worktree ready: a corral-spare marker in git.c's spare record. */
static int wait_spare(void)
{
    char cmd[2 * PATH_MAX + 64];
    int64_t end = cr_test_now_ms() + 15000;
    snprintf(cmd, sizeof(cmd), "ls '%s'/.git/worktrees/.spare-*/corral-spare >/dev/null 2>&1", host.repo);
    while (cr_test_now_ms() < end) {
        if (system(cmd) == 0)
            return 1;
        cr_test_sleep_ms(50);
    }
    return 0;
}

static void test_ask(void)
{
    char cmd[2 * PATH_MAX + 128], wt[2 * PATH_MAX];
    snprintf(cmd, sizeof(cmd), "@bash %s ask 'Which colour?'; %s ls; echo ls=$?", host.corral_bin, host.corral_bin);
    /* the spare corrald made after the last session is taken, and brought up to main's tip (main moved since) */
    ok(wait_spare());
    ok(corral("new", cmd, "--name", "asker", "--identity", "ana", NULL) == 0);
    okf(strstr(cr_test_host_log_tail(&host), "session asker started (claude) in ") != NULL &&
            strstr(cr_test_host_log_tail(&host), ", a spare worktree taken in ") != NULL,
        "the session took the spare:\n%s", cr_test_host_log_tail(&host));
    snprintf(wt, sizeof(wt), "%s.worktrees/asker", host.repo);
    ok(cr_test_host_git(&host, "-C", wt, "status", "--porcelain", NULL) == 0);
    ok_str(host.out, "");
    ok(cr_test_host_git(&host, "-C", wt, "log", "-1", "--format=%s", NULL) == 0);
    ok_str(host.out, "other\n");
    ok(wait_for("\"k\":\"approval.request\"", "ls", "--json", NULL));
    ok(corral("approve", "asker", NULL) == 0);
    ok(wait_for("question:", "log", "asker", NULL));
    ok(strstr(host.out, "Which colour?") != NULL);
    ok(corral("reply", "asker", "blue", NULL) == 0);
    ok(strstr(host.out, "answer given to corral ask") != NULL);
    ok(wait_for("session.state: idle", "log", "asker", NULL));
    okf(strstr(host.out, "  | blue\n") != NULL, "the agent got the answer:\n%s", host.out);
    okf(strstr(host.out, "a session token reaches only its own session") != NULL && strstr(host.out, "ls=6") != NULL,
        "a session token cannot list other sessions:\n%s", host.out);
    {
        char *log = cr_test_file_read(fake_log, 0, 1 << 20);
        ok(log != NULL && strstr(log, "\"CORRAL_IDENTITY\":\"ana\"") != NULL);
        free(log);
    }
    /* ask outside any session */
    ok(corral("ask", "hello?", NULL) == 2);
    ok(strstr(host.err, "from inside a Corral session") != NULL);
}

static void test_reject_and_follow(void)
{
    char path[2 * PATH_MAX];
    /* a denied request: the reason reaches the agent */
    ok(corral("new", "@write a.txt x", "--name", "rj", NULL) == 0);
    ok(wait_for("\"k\":\"approval.request\"", "ls", "--json", NULL));
    ok(corral("reject", "rj", "--reason", "no files please", NULL) == 0);
    ok(wait_for("session.state: idle", "log", "rj", NULL));
    okf(strstr(host.out, "agent.tool: Write a.txt (error)\n  | no files please\n") != NULL, "%s", host.out);
    snprintf(path, sizeof(path), "%s.worktrees/rj/a.txt", host.repo);
    ok(access(path, F_OK) != 0);
    /* a rejected diff with --discard: the worktree is reset and the reason is the agent's next message */
    ok(corral("reply", "rj", "@write b.txt y", NULL) == 0);
    ok(wait_for("\"k\":\"approval.request\"", "ls", "--json", NULL));
    ok(corral("approve", "rj", NULL) == 0);
    ok(wait_for("\"k\":\"diff.ready\"", "ls", "--json", NULL));
    snprintf(path, sizeof(path), "%s.worktrees/rj/b.txt", host.repo);
    ok(access(path, F_OK) == 0);
    ok(corral("reject", "rj", "--discard", "--reason", "@text not now", NULL) == 0);
    ok(strstr(host.out, "worktree reset") != NULL);
    ok(access(path, F_OK) != 0);
    ok(wait_for("  not now\n", "log", "rj", NULL));
    ok(corral("rm", "rj", NULL) == 0);
    /* log -f follows a session to its end */
    ok(corral("new", "echo hello; sleep 0.5; echo bye", "--agent", "shell", "--name", "sh", NULL) == 0);
    ok(corral("log", "sh", "-f", NULL) == 0);
    okf(strstr(host.out, "  hello\n") != NULL && strstr(host.out, "  bye\n") != NULL &&
            strstr(host.out, "session.state: done") != NULL,
        "%s", host.out);
    ok(corral("approve", "sh", NULL) == 4);
    okf(strstr(host.err, "has ended (done)") != NULL, "%s", host.err);
    ok(corral("rm", "sh", NULL) == 0);
}

static void test_bad_input(void)
{
    char path[2 * PATH_MAX + 64], notrepo[2 * PATH_MAX + 16], h2[2 * PATH_MAX + 16], eh2[2 * PATH_MAX + 32];
    ok(corral("approve", "nosuch", NULL) == 3);
    ok(strstr(host.err, "no session named nosuch") != NULL);
    ok(corral("log", "nosuch", NULL) == 3);
    ok(corral("new", "again", "--name", "demo", NULL) == 4);
    ok(strstr(host.err, "exists already") != NULL);
    /* two creates of one name at once (worktrees are made off the loop): one is made, the other refused */
    {
        char script[4 * PATH_MAX + 256], *st[2], *err[2];
        const char *argv[] = {"/bin/sh", "-c", script, NULL};
        snprintf(script, sizeof(script),
                 "for i in 1 2; do ('%s' new 'sleep 30' --name twin --agent shell >/dev/null 2>'%s'/twin$i.err; "
                 "echo $? >'%s'/twin$i.st) & done; wait",
                 host.corral_bin, host.tmp, host.tmp);
        okf(cr_test_host_run(&host, argv) == 0, "%s", host.err);
        for (int i = 0; i < 2; ++i) {
            snprintf(path, sizeof(path), "%s/twin%d.st", host.tmp, i + 1);
            st[i] = cr_test_file_read(path, 0, 100);
            snprintf(path, sizeof(path), "%s/twin%d.err", host.tmp, i + 1);
            err[i] = cr_test_file_read(path, 0, 4096);
        }
        int one = st[0] != NULL && st[1] != NULL &&
                  ((strcmp(st[0], "0\n") == 0 && strcmp(st[1], "4\n") == 0) || (strcmp(st[0], "4\n") == 0 && strcmp(st[1], "0\n") == 0));
        okf(one, "exit statuses %s and %s", st[0] != NULL ? st[0] : "?", st[1] != NULL ? st[1] : "?");
        const char *loser = one && strcmp(st[0], "4\n") == 0 ? err[0] : err[1];
        okf(loser != NULL && (strstr(loser, "exists already") != NULL || strstr(loser, "is being made") != NULL), "%s",
            loser != NULL ? loser : "(none)");
        for (int i = 0; i < 2; ++i)
            free(st[i]), free(err[i]);
        ok(git("branch", "--list", "corral/twin", NULL) == 0);
        ok(strstr(host.out, " corral/twin\n") != NULL && strchr(host.out, '\n') == strrchr(host.out, '\n'));
        ok(corral("rm", "twin", NULL) == 0);
    }
    ok(corral("new", "x", "--name", "b1", "--base", "nosuchbranch", NULL) == 3);
    okf(strstr(host.err, "nosuchbranch") != NULL, "%s", host.err);
    ok(corral("new", "x", "--name", "b2", "--cmd", "/nonexistent/claude", NULL) == 3);
    okf(strstr(host.err, "not found") != NULL, "%s", host.err);
    ok(corral("new", "x", "--name", "../evil", NULL) == 1);
    ok(corral("new", "x", NULL) == 2);
    ok(corral("frobnicate", NULL) == 2);
    /* nothing was left behind by the refused ones */
    ok(git("branch", "--list", "corral/b*", NULL) == 0);
    ok_str(host.out, "");
    snprintf(path, sizeof(path), "%s.worktrees/b2", host.repo);
    ok(access(path, F_OK) != 0);
    ok(corral("ls", NULL) == 0);
    ok(strstr(host.out, "b1") == NULL && strstr(host.out, "b2") == NULL);
    /* not a git repository */
    snprintf(notrepo, sizeof(notrepo), "%s/notrepo", host.tmp);
    snprintf(h2, sizeof(h2), "%s/h2", host.tmp);
    snprintf(eh2, sizeof(eh2), "CORRAL_HOME=%s", h2);
    mkdir(notrepo, 0700);
    {
        const char *argv[] = {host.corrald_bin, "--repo", notrepo, NULL};
        const char *saved = host.env[1];
        host.env[1] = eh2;
        ok(cr_test_host_run(&host, argv) == 1);
        host.env[1] = saved;
        okf(strstr(host.err, "not a git repository") != NULL, "%s", host.err);
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
    okf(cr_test_host_stop(&host) == 0, "corrald stops cleanly on SIGTERM");
    start_daemon();
    ok(corral("ls", NULL) == 0);
    ok(strstr(host.out, "suspended") != NULL);
    ok(corral("resume", "demo", NULL) == 0);
    okf(strstr(host.out, sid) != NULL, "resumed the conversation %s: %s", sid, host.out);
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
    ok(cr_test_host_stop(&host) == 0);
    start_daemon();
    ok(wait_for("\"state\":\"suspended\"", "ls", "--json", NULL));
    ok(corral("reply", "demo", "hello", NULL) == 4);
    ok(strstr(host.err, "not running") != NULL);
}

static void test_rm(void)
{
    char path[2 * PATH_MAX + 64];
    ok(corral("rm", "demo", NULL) == 0);
    ok(git("branch", "--list", "corral/demo", NULL) == 0);
    ok_str(host.out, "");
    snprintf(path, sizeof(path), "%s.worktrees/demo", host.repo);
    ok(access(path, F_OK) != 0);
    { /* its files went to the trash, which corrald empties in the background */
        char cmd[2 * PATH_MAX + 64];
        int64_t end = cr_test_now_ms() + 15000;
        int st = 0;
        snprintf(cmd, sizeof(cmd), "ls -A '%s.worktrees' | grep -q '^.trash-'", host.repo);
        while ((st = system(cmd)) == 0 && cr_test_now_ms() < end)
            cr_test_sleep_ms(50);
        okf(st != 0, "the trash was emptied");
    }
    ok(corral("rm", "asker", "--keep-branch", NULL) == 0);
    ok(git("branch", "--list", "corral/asker", NULL) == 0);
    ok(strstr(host.out, "corral/asker") != NULL);
    ok(corral("ls", "--json", NULL) == 0);
    ok_str(host.out, "{\"sessions\":[]}\n");
}

int main(void)
{
    char statedir[PATH_MAX + 16];
    const char *extra[] = {env_cmd, env_state, env_log, NULL};
    if (cr_test_host_init(&host, "host-sessions", extra) != 0)
        return 1;
    snprintf(statedir, sizeof(statedir), "%s/fake", host.tmp);
    snprintf(fake_log, sizeof(fake_log), "%s/fake.log", host.tmp);
    snprintf(claude_cmd, sizeof(claude_cmd), "python3 %s/tests/fakes/fake_claude.py", cr_test_source_dir());
    snprintf(env_cmd, sizeof(env_cmd), "CORRAL_AGENT_CLAUDE_CMD=%s", claude_cmd);
    snprintf(env_state, sizeof(env_state), "FAKE_CLAUDE_STATE_DIR=%s", statedir);
    snprintf(env_log, sizeof(env_log), "FAKE_CLAUDE_LOG=%s", fake_log);
    mkdir(statedir, 0700);
    ok(cr_test_host_make_repo(&host) == 0);
    start_daemon();
    subtest("a session asks, is approved and runs", test_approve_and_run);
    subtest("an approved diff is committed and fast-forwarded into main", test_diff_approve_merges);
    subtest("corral ask from inside a session", test_ask);
    subtest("reject a request and a diff; follow a log", test_reject_and_follow);
    subtest("bad input: a message, an exit status, nothing left behind", test_bad_input);
    subtest("suspend, restart corrald, resume the same conversation", test_suspend_restart_resume);
    subtest("rm removes worktree, branch and record", test_rm);
    okf(cr_test_host_stop(&host) == 0, "corrald exits 0 after SIGTERM");
    cr_test_host_free(&host);
    return done_testing();
}
