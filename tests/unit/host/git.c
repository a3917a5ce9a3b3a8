/* git.c — unit tests of server/src/git.c on real repositories in temp dirs, checked with the git command line. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "git.h"
#include "harness.h"
#include "proc.h"
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

static char root[PATH_MAX];
static int repo_count;
static const host_git_identity_t agent = {"feature-auth-agent", "feature-auth-agent@corral.example"};

/* ---- shell helpers: what a user would type ---------------------------------------------------------------------- */

/* Runs a shell command; returns its exit status (-1 when it could not run). */
static int sh(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static int sh(const char *fmt, ...)
{
    char cmd[8192];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    int st = system(cmd);
    if (st != 0)
        note("command failed (%d): %s", st, cmd);
    return st == -1 ? -1 : WEXITSTATUS(st);
}

/* Runs a shell command and returns its stdout without the final newline (one of four static buffers, so that two
 * results can be compared; valid until the fourth call after). */
static const char *out(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static const char *out(const char *fmt, ...)
{
    static char bufs[4][65536];
    static int next;
    char *buf = bufs[next++ % 4], cmd[8192];
    va_list ap;
    size_t n = 0;
    FILE *f;

    va_start(ap, fmt);
    vsnprintf(cmd, sizeof(cmd), fmt, ap);
    va_end(ap);
    buf[0] = '\0';
    if ((f = popen(cmd, "r")) == NULL)
        return buf;
    n = fread(buf, 1, sizeof(bufs[0]) - 1, f);
    pclose(f);
    buf[n] = '\0';
    while (n > 0 && buf[n - 1] == '\n')
        buf[--n] = '\0';
    return buf;
}

static void put(const char *dir, const char *rel, const char *text)
{
    char p[PATH_MAX];
    FILE *f;
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    char *slash = strrchr(p, '/');
    *slash = '\0';
    sh("mkdir -p '%s'", p);
    *slash = '/';
    if ((f = fopen(p, "wb")) == NULL) {
        note("cannot write %s", p);
        return;
    }
    fputs(text, f);
    fclose(f);
}

static void put_binary(const char *dir, const char *rel, unsigned seed)
{
    char p[PATH_MAX];
    FILE *f;
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    if ((f = fopen(p, "wb")) == NULL)
        return;
    for (unsigned i = 0; i < 600; ++i)
        fputc((int)((i * 7 + seed) % 256), f); /* has NULs: binary to git */
    fclose(f);
}

static int exists(const char *dir, const char *rel)
{
    char p[PATH_MAX];
    struct stat st;
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    return lstat(p, &st) == 0;
}

static char *slurp(const char *dir, const char *rel)
{
    char p[PATH_MAX];
    snprintf(p, sizeof(p), "%s/%s", dir, rel);
    char *s = cr_test_read_file(p, NULL);
    return s != NULL ? s : strdup("(missing)");
}

static const char *lines10 = "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\n";

/* A fresh repository on branch main with one commit: a.txt, b.txt, dir/c.txt, bin.dat, .gitignore (*.log). */
static void make_repo(char *dir, size_t len)
{
    snprintf(dir, len, "%s/repo%d", root, ++repo_count);
    sh("git init -q -b main '%s'", dir);
    put(dir, "a.txt", lines10);
    put(dir, "b.txt", "bee\n");
    put(dir, "dir/c.txt", "sea\n");
    put(dir, ".gitignore", "*.log\n");
    put_binary(dir, "bin.dat", 1);
    sh("git -C '%s' add -A && git -C '%s' commit -q -m init", dir, dir);
}

static char *rev(const char *dir, const char *what)
{
    return strdup(out("git -C '%s' rev-parse '%s' 2>/dev/null", dir, what));
}

/* ---- tests ------------------------------------------------------------------------------------------------------- */

static void test_open(void)
{
    host_git_repo_t *repo = (host_git_repo_t *)1;
    char plain[PATH_MAX + 16], dir[PATH_MAX], sub[PATH_MAX + 16];

    snprintf(plain, sizeof(plain), "%s/plain", root);
    mkdir(plain, 0755);
    ok(host_git_open(&repo, plain) == CR_ENOTFOUND);
    ok(repo == NULL);
    char want[PATH_MAX + 64];
    snprintf(want, sizeof(want), "not a git repository: %s", plain);
    ok_str(cr_error_last()->message, want);

    snprintf(sub, sizeof(sub), "%s/nope", root);
    ok(host_git_open(&repo, sub) == CR_ENOTFOUND);
    snprintf(want, sizeof(want), "no such directory: %s", sub);
    ok_str(cr_error_last()->message, want);

    make_repo(dir, sizeof(dir));
    snprintf(sub, sizeof(sub), "%s/dir", dir);
    ok(host_git_open(&repo, sub) == 0); /* from inside */
    if (repo != NULL) {
        ok_str(host_git_workdir(repo), dir);
        char branch[HOST_GIT_BRANCH_MAX], tip[HOST_GIT_OID_HEX];
        char *main_tip = rev(dir, "main");
        ok(host_git_resolve_base(branch, tip, repo, NULL) == 0);
        ok_str(branch, "main");
        ok_str(tip, main_tip);
        ok(host_git_resolve_base(branch, tip, repo, "refs/heads/main") == 0);
        ok_str(branch, "main");
        ok(host_git_resolve_base(branch, tip, repo, "nope") == CR_ENOTFOUND);
        ok_str(cr_error_last()->message, "base branch does not exist: nope");
        ok_str(cr_error_last()->field, "base");
        free(main_tip);
        host_git_close(repo);
    }
}

static void test_names(void)
{
    static const char *bad[] = {"", "a/b", "../x", "a..b", "x.lock", "-x", ".x", "x.", "a b", "a~1", "a:b", "é", NULL};
    static const char *good[] = {"feature-auth", "fix_1.2", "A", "x-y.z", NULL};
    char longname[HOST_GIT_NAME_MAX + 2];
    for (int i = 0; bad[i] != NULL; ++i)
        okf(host_git_check_name(bad[i]) == HOST_GIT_EBADNAME, "bad name \"%s\"", bad[i]);
    for (int i = 0; good[i] != NULL; ++i) {
        okf(host_git_check_name(good[i]) == 0, "good name \"%s\"", good[i]);
        okf(sh("git check-ref-format 'refs/heads/corral/%s'", good[i]) == 0, "git takes \"%s\"", good[i]);
    }
    /* the ones refused for git's reference rules, git refuses too */
    for (int i = 3; i <= 7; ++i)
        if (i != 5)
            okf(system(out("printf \"git check-ref-format 'refs/heads/corral/%%s' 2>/dev/null\" '%s'", bad[i])) != 0,
                "git refuses \"%s\"", bad[i]);
    memset(longname, 'a', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    ok(host_git_check_name(longname) == HOST_GIT_EBADNAME);
    longname[HOST_GIT_NAME_MAX] = '\0';
    ok(host_git_check_name(longname) == 0);
    ok(host_git_check_name(NULL) == HOST_GIT_EBADNAME);
}

static void test_create_remove(void)
{
    char dir[PATH_MAX], wt[PATH_MAX + 32], other[PATH_MAX + 32];
    host_git_repo_t *repo = NULL;
    host_git_session_t s, s2, s3;

    make_repo(dir, sizeof(dir));
    if (!ok(host_git_open(&repo, dir) == 0))
        return;
    char *main_tip = rev(dir, "main");

    /* a missing base: a clear message and nothing made */
    ok(host_git_session_create(&s, repo, "feat", "nope", NULL) == CR_ENOTFOUND);
    ok_str(cr_error_last()->message, "base branch does not exist: nope");
    ok_str(out("git -C '%s' branch --list 'corral/*'", dir), "");
    snprintf(wt, sizeof(wt), "%s.worktrees/feat", dir);
    ok(!exists(wt, ""));
    ok(host_git_session_create(&s, repo, "a/b", NULL, NULL) == HOST_GIT_EBADNAME);
    ok(strstr(cr_error_last()->message, "invalid session name \"a/b\"") != NULL);

    /* create: the branch at base's tip, the worktree beside the repository, checked out and clean */
    ok(host_git_session_create(&s, repo, "feat", NULL, NULL) == 0);
    ok_str(s.name, "feat");
    ok_str(s.branch, "corral/feat");
    ok_str(s.base, "main");
    ok_str(s.base_commit, main_tip);
    ok_str(s.worktree, wt);
    ok_str(out("git -C '%s' rev-parse corral/feat", dir), main_tip);
    ok_str(out("git -C '%s' rev-parse --abbrev-ref HEAD", wt), "corral/feat");
    ok_str(out("git -C '%s' status --porcelain", wt), "");
    ok_str(out("git -C '%s' worktree list --porcelain | grep -A2 '^worktree %s$' | tail -1", dir, wt),
           "branch refs/heads/corral/feat");
    ok_str(out("cat '%s/dir/c.txt'", wt), "sea");
    ok(!exists(dir, ".corral")); /* the main worktree is left alone */

    /* refused: the same name again, a name whose directory exists */
    ok(host_git_session_create(&s2, repo, "feat", NULL, NULL) == HOST_GIT_EEXISTS);
    ok_str(cr_error_last()->message, "branch corral/feat already exists");
    snprintf(other, sizeof(other), "%s.worktrees/taken", dir);
    sh("mkdir -p '%s' && touch '%s/mine'", other, other);
    ok(host_git_session_create(&s2, repo, "taken", NULL, NULL) == HOST_GIT_EEXISTS);
    ok(strstr(cr_error_last()->message, "directory already exists") != NULL);
    ok(exists(other, "mine")); /* what was there is still there */
    ok_str(out("git -C '%s' branch --list corral/taken", dir), "");

    /* another base, another path */
    sh("git -C '%s' branch dev main && git -C '%s' worktree list >/dev/null", dir, dir);
    put(dir, "d.txt", "dee\n");
    sh("git -C '%s' checkout -q dev && git -C '%s' add d.txt && git -C '%s' commit -q -m dev && git -C '%s' checkout -q main", dir,
       dir, dir, dir);
    char *dev_tip = rev(dir, "dev");
    snprintf(other, sizeof(other), "%s/elsewhere/wt2", root);
    ok(host_git_session_create(&s3, repo, "on-dev", "dev", other) == 0);
    ok_str(s3.base, "dev");
    ok_str(s3.base_commit, dev_tip);
    ok_str(out("git -C '%s' log -1 --format=%%s", other), "dev");
    ok(exists(other, "d.txt"));

    /* remove, keeping the branch; then the branch too; then nothing is left to remove */
    ok(host_git_session_remove(repo, &s, 1) == 0);
    ok(!exists(wt, ""));
    ok_str(out("git -C '%s' worktree list --porcelain | grep -c '^worktree %s$'", dir, wt), "0");
    ok_str(out("git -C '%s' branch --list corral/feat", dir), "  corral/feat");
    ok(host_git_session_remove(repo, &s, 0) == 0);
    ok_str(out("git -C '%s' branch --list corral/feat", dir), "");
    ok(host_git_session_remove(repo, &s, 0) == CR_ENOTFOUND);
    ok(host_git_session_remove(repo, &s3, 0) == 0);
    ok(!exists(other, ""));
    /* the files wait in the trash until it is emptied (corrald does that on its thread pool) */
    ok_str(out("ls -A '%s.worktrees' | grep -c '^.trash-'", dir), "2");
    ok_str(out("cat '%s.worktrees'/.trash-*/d.txt", dir), "dee");
    ok(host_git_trash_empty(dir) == 0);
    ok_str(out("ls -A '%s.worktrees' | grep -c '^.trash-'", dir), "0");
    ok_str(out("git -C '%s' worktree list | wc -l", dir), "1");
    ok_str(out("git -C '%s' worktree prune -n -v 2>&1", dir), ""); /* nothing stale left for git */
    /* the name is free again */
    ok(host_git_session_create(&s, repo, "feat", NULL, NULL) == 0);
    ok(host_git_session_remove(repo, &s, 0) == 0);
    free(dev_tip);
    free(main_tip);
    host_git_close(repo);
}

/* The spare's directory under <repo>.worktrees ("" when there is none; a second one is an error). */
static const char *spare_of(const char *dir)
{
    return out("cd '%s.worktrees' 2>/dev/null && ls -d .spare-* 2>/dev/null | sed 's|^|%s.worktrees/|'", dir, dir);
}

/* A spare worktree made ahead of time is what a session create takes: the session is then exactly what the long way
 * makes (branch, HEAD, files, a clean status, git's record), a spare behind base is brought up to date, a spare changed
 * on disk is never used, and what a crash leaves is cleaned up. */
static void test_spares(void)
{
    char dir[PATH_MAX], wt[PATH_MAX + 32], sp[PATH_MAX + 64], sp2[PATH_MAX + 64];
    host_git_repo_t *repo = NULL;
    host_git_session_t s, s2, s3, s4;

    make_repo(dir, sizeof(dir));
    if (!ok(host_git_open(&repo, dir) == 0))
        return;
    char *main_tip = rev(dir, "main");

    /* a spare: a detached worktree of main's tip that git knows, clean */
    ok(host_git_spare_make(dir, NULL) == 0);
    snprintf(sp, sizeof(sp), "%s", spare_of(dir));
    ok(strstr(sp, ".worktrees/.spare-") != NULL);
    ok_str(out("git -C '%s' rev-parse HEAD", sp), main_tip);
    ok_str(out("git -C '%s' status --porcelain", sp), "");
    ok_str(out("git -C '%s' worktree list --porcelain | grep -A2 '^worktree %s$' | tail -1", dir, sp), "detached");
    /* made again: the same one is kept */
    ok(host_git_spare_make(dir, NULL) == 0);
    ok_str(spare_of(dir), sp);

    /* a session takes it: what the long way makes, and the spare is gone */
    ok(host_git_session_create(&s, repo, "feat", NULL, NULL) == 0);
    snprintf(wt, sizeof(wt), "%s.worktrees/feat", dir);
    ok_str(s.worktree, wt);
    ok_str(s.base_commit, main_tip);
    ok_str(spare_of(dir), "");
    ok_str(out("git -C '%s' rev-parse --abbrev-ref HEAD", wt), "corral/feat");
    ok_str(out("git -C '%s' rev-parse corral/feat", dir), main_tip);
    ok_str(out("git -C '%s' status --porcelain", wt), "");
    ok_str(out("git -C '%s' worktree list --porcelain | grep -A2 '^worktree %s$' | tail -1", dir, wt),
           "branch refs/heads/corral/feat");
    ok_str(out("git -C '%s' worktree prune -n -v 2>&1", dir), "");
    ok_str(out("cat '%s/dir/c.txt'", wt), "sea");
    ok_str(out("cat '%s/.git'", wt), out("echo \"gitdir: $(git -C '%s' rev-parse --path-format=absolute --git-common-dir)/worktrees/feat\"", dir));
    /* and works as any session: a change is seen, committed and fast-forwarded */
    put(wt, "a.txt", "changed\n");
    ok(host_git_has_changes(repo, &s, HOST_GIT_SINCE_BASE) == 1);
    char id[HOST_GIT_OID_HEX];
    host_git_merge_result_t mr;
    ok(host_git_commit(id, repo, &s, &agent, "change a") == 0);
    ok(host_git_merge(&mr, repo, &s, HOST_GIT_MERGE_FF, &agent, NULL) == 0);
    host_git_merge_result_free(&mr);
    ok_str(out("git -C '%s' show main:a.txt", dir), "changed");

    /* a spare behind base: brought to the new tip when taken (a file changed, one added, one deleted) */
    ok(host_git_spare_make(dir, "refs/heads/main") == 0); /* at the new tip already */
    snprintf(sp, sizeof(sp), "%s", spare_of(dir));
    sh("git -C '%s' checkout -q main && git -C '%s' reset -q --hard", dir, dir);
    put(dir, "b.txt", "bee two\n");
    put(dir, "new/d.txt", "dee\n");
    sh("git -C '%s' rm -q dir/c.txt && git -C '%s' add -A && git -C '%s' commit -q -m next", dir, dir, dir);
    char *tip2 = rev(dir, "main");
    ok(host_git_session_create(&s2, repo, "second", NULL, NULL) == 0);
    ok_str(s2.base_commit, tip2);
    ok_str(spare_of(dir), "");
    ok_str(out("git -C '%s' status --porcelain", s2.worktree), "");
    ok_str(out("cat '%s/b.txt' '%s/new/d.txt'", s2.worktree, s2.worktree), "bee two\ndee");
    ok(!exists(s2.worktree, "dir/c.txt"));
    ok_str(out("git -C '%s' rev-parse HEAD", s2.worktree), tip2);

    /* host_git_spare_make brings an older spare up to date in place */
    ok(host_git_spare_make(dir, NULL) == 0);
    snprintf(sp, sizeof(sp), "%s", spare_of(dir));
    put(dir, "b.txt", "bee three\n");
    sh("git -C '%s' commit -q -am third", dir);
    char *tip3 = rev(dir, "main");
    ok(host_git_spare_make(dir, NULL) == 0);
    ok_str(spare_of(dir), sp);
    ok_str(out("git -C '%s' rev-parse HEAD", sp), tip3);
    ok_str(out("git -C '%s' status --porcelain", sp), "");
    ok_str(out("cat '%s/b.txt'", sp), "bee three");

    /* a spare changed on disk is not used: the session is written the long way, without the stranger's file */
    put(sp, "intruder.txt", "not from git\n");
    ok(host_git_session_create(&s3, repo, "third", NULL, NULL) == 0);
    ok(!exists(s3.worktree, "intruder.txt"));
    ok_str(out("git -C '%s' status --porcelain", s3.worktree), "");
    ok_str(out("cat '%s/b.txt'", s3.worktree), "bee three");
    ok(exists(sp, "intruder.txt")); /* left alone, no longer offered ... */
    ok(host_git_spare_make(dir, NULL) == 0);
    ok(!exists(sp, "")); /* ... and removed by the next make, which makes a clean one */
    snprintf(sp2, sizeof(sp2), "%s", spare_of(dir));
    ok(sp2[0] != '\0' && strcmp(sp2, sp) != 0);

    /* what a crash leaves (a spare with no marker) is removed; turned off, a create leaves the spare alone */
    sh("mkdir -p '%s.worktrees/.spare-0badf00d' && mkdir -p \"$(git -C '%s' rev-parse --path-format=absolute --git-common-dir)/worktrees/.spare-0badf00d\" && "
       "echo '%s.worktrees/.spare-0badf00d/.git' > \"$(git -C '%s' rev-parse --path-format=absolute --git-common-dir)/worktrees/.spare-0badf00d/gitdir\" && "
       "echo 'gitdir: x' > '%s.worktrees/.spare-0badf00d/.git'",
       dir, dir, dir, dir, dir);
    ok(host_git_spare_make(dir, NULL) == 0);
    ok_str(spare_of(dir), sp2);
    ok_str(out("ls \"$(git -C '%s' rev-parse --path-format=absolute --git-common-dir)/worktrees\" | grep -c 0badf00d", dir), "0");
    /* a spare whose directory someone deleted is replaced */
    sh("rm -rf '%s'", sp2);
    ok(host_git_spare_make(dir, NULL) == 0);
    snprintf(sp, sizeof(sp), "%s", spare_of(dir));
    ok(sp[0] != '\0' && strcmp(sp, sp2) != 0 && exists(sp, "a.txt"));
    ok_str(out("git -C '%s' worktree list | wc -l", dir), "5"); /* main, feat, second, third and the spare */
    snprintf(sp2, sizeof(sp2), "%s", sp);
    host_git_set_spares(repo, 0);
    ok(host_git_session_create(&s4, repo, "fourth", NULL, NULL) == 0);
    ok_str(spare_of(dir), sp2);
    ok_str(out("git -C '%s' status --porcelain", s4.worktree), "");

    /* sessions made from spares are removed like any other */
    ok(host_git_session_remove(repo, &s, 0) == 0);
    ok(host_git_session_remove(repo, &s2, 0) == 0);
    ok(!exists(wt, "") && !exists(s2.worktree, ""));
    ok_str(out("git -C '%s' branch --list 'corral/*' | wc -l", dir), "2");
    ok_str(out("git -C '%s' worktree prune -n -v 2>&1", dir), "");
    free(tip3);
    free(tip2);
    free(main_tip);
    host_git_close(repo);
}

/* What the new worktree holds is what git would check out: modes, symlinks, many files over several threads, the
 * index with stat data; and with .gitattributes, git's filters (eol) applied. */
static void test_checkout_content(void)
{
    char dir[PATH_MAX], name[64];
    host_git_repo_t *repo = NULL;
    host_git_session_t s;

    make_repo(dir, sizeof(dir));
    for (int i = 0; i < 600; ++i) { /* enough for every thread to get work */
        char rel[64], text[64];
        snprintf(rel, sizeof(rel), "many/d%d/e%d/f%d.txt", i % 7, i % 3, i);
        snprintf(text, sizeof(text), "file %d\n", i);
        put(dir, rel, text);
    }
    put(dir, "run.sh", "#!/bin/sh\necho hi\n");
    sh("cd '%s' && chmod +x run.sh && ln -s dir/c.txt link && git add -A && git commit -q -m more", dir);
    if (!ok(host_git_open(&repo, dir) == 0) || !ok(host_git_session_create(&s, repo, "content", NULL, NULL) == 0))
        return;
    ok_str(out("git -C '%s' status --porcelain", s.worktree), "");
    ok_str(out("git -C '%s' ls-files | wc -l", s.worktree), out("git -C '%s' ls-files | wc -l", dir));
    ok_str(out("cd '%s' && find . -path ./.git -prune -o -type f -print | wc -l", s.worktree),
           out("cd '%s' && find . -path ./.git -prune -o -type f -print | wc -l", dir));
    ok_str(out("cat '%s/many/d5/e2/f425.txt'", s.worktree), "file 425");
    ok(sh("test -x '%s/run.sh' && test ! -x '%s/a.txt'", s.worktree, s.worktree) == 0);
    ok_str(out("readlink '%s/link'", s.worktree), "dir/c.txt");
    ok_str(out("git -C '%s' ls-files --debug a.txt | grep -o 'size: [0-9]*'", s.worktree), "size: 49"); /* stat data */
    ok_str(out("git -C '%s' diff --stat", s.worktree), "");
    host_git_session_remove(repo, &s, 0);

    /* attributes: git's filters apply, as in a worktree git makes */
    put(dir, ".gitattributes", "*.txt text eol=crlf\n");
    sh("cd '%s' && git add .gitattributes && git commit -q -m attrs && git worktree add -q --detach ../attrs-by-git", dir);
    snprintf(name, sizeof(name), "attrs");
    ok(host_git_session_create(&s, repo, name, NULL, NULL) == 0);
    ok_str(out("od -c '%s/b.txt' | head -1", s.worktree), "0000000   b   e   e  \\r  \\n");
    ok(sh("cmp -s '%s/many/d1/e1/f1.txt' '%s/../attrs-by-git/many/d1/e1/f1.txt'", s.worktree, dir) == 0);
    ok_str(out("git -C '%s' status --porcelain", s.worktree), "");
    host_git_session_remove(repo, &s, 0);
    host_git_close(repo);
}

/* The numstat of everything in the worktree (untracked included, .corral/ excluded) against base, as git sees it once
 * it is all staged — in a throwaway index, so the worktree's own index is untouched. */
static const char *git_numstat(const char *wt, const char *base, const char *flags)
{
    return out("cd '%s' && cp \"$(git rev-parse --git-path index)\" ../numstat.idx && "
               "GIT_INDEX_FILE=../numstat.idx git add -A -- . ':(exclude).corral' && "
               "GIT_INDEX_FILE=../numstat.idx git diff --cached %s %s; rm -f ../numstat.idx",
               wt, flags, base);
}

static void our_numstat(char *buf, size_t len, const host_git_diff_t *d)
{
    size_t used = 0;
    buf[0] = '\0';
    for (size_t i = 0; i < d->nfiles; ++i) {
        const host_git_file_t *f = &d->files[i];
        if (f->binary)
            used += snprintf(buf + used, len - used, "%s-\t-\t%s", i > 0 ? "\n" : "", f->path);
        else
            used += snprintf(buf + used, len - used, "%s%zu\t%zu\t%s", i > 0 ? "\n" : "", f->additions, f->deletions, f->path);
    }
}

static void test_diff(void)
{
    char dir[PATH_MAX], mine[16384];
    host_git_repo_t *repo = NULL;
    host_git_session_t s;
    host_git_diff_t d;

    make_repo(dir, sizeof(dir));
    if (!ok(host_git_open(&repo, dir) == 0) || !ok(host_git_session_create(&s, repo, "d", NULL, NULL) == 0))
        return;
    const char *wt = s.worktree;

    ok(host_git_has_changes(repo, &s, HOST_GIT_SINCE_BASE) == 0);
    ok(host_git_diff(&d, repo, &s, HOST_GIT_SINCE_BASE, 0, 0) == 0);
    ok(d.nfiles == 0 && d.total_files == 0 && d.patch.len == 0);
    ok_str(d.patch.base, "");
    host_git_diff_free(&d);

    /* noise that is not a change: ignored files, .corral/ */
    put(wt, "build.log", "ignored\n");
    put(wt, ".corral/state.json", "{}\n");
    ok(host_git_has_changes(repo, &s, HOST_GIT_SINCE_BASE) == 0);

    put(wt, "a.txt", "one\nTWO\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\neleven\n"); /* modified: +2 -1 */
    ok(host_git_has_changes(repo, &s, HOST_GIT_SINCE_BASE) == 1);
    ok(host_git_has_changes(repo, &s, HOST_GIT_SINCE_HEAD) == 1);
    sh("rm '%s/b.txt'", wt);                                               /* deleted */
    put(wt, "new/deep/n.txt", "n1\nn2\nn3\n");                             /* untracked, in an untracked dir */
    put(wt, "top.txt", "t\n");                                             /* untracked */
    put_binary(wt, "bin.dat", 2);                                          /* binary, modified */
    put_binary(wt, "new.bin", 3);                                          /* binary, untracked */
    sh("cd '%s' && printf 'x\\n' > staged.txt && git add staged.txt", wt); /* added to the index */

    ok(host_git_diff(&d, repo, &s, HOST_GIT_SINCE_BASE, 0, 0) == 0);
    our_numstat(mine, sizeof(mine), &d);
    const char *theirs = git_numstat(wt, s.base_commit, "--numstat --no-renames");
    ok_str(mine, theirs);
    ok(d.total_files == 7 && d.nfiles == 7);
    ok(d.additions == 2 + 3 + 1 + 1 && d.deletions == 1 + 1);
    for (size_t i = 0; i < d.nfiles; ++i) {
        const host_git_file_t *f = &d.files[i];
        char want = strcmp(f->path, "a.txt") == 0 || strcmp(f->path, "bin.dat") == 0 ? 'M'
                    : strcmp(f->path, "b.txt") == 0                                  ? 'D'
                                                                                     : 'A';
        okf(f->status == want, "%s is %c, want %c", f->path, f->status, want);
        okf(f->binary == (strstr(f->path, ".bin") != NULL || strstr(f->path, ".dat") != NULL), "%s binary", f->path);
        ok(f->old_path == NULL);
    }
    ok(!d.patch_truncated && !d.files_truncated);
    ok(d.patch.len == strlen(d.patch.base));
    ok(strstr(d.patch.base, "diff --git a/a.txt b/a.txt\n") != NULL);
    ok(strstr(d.patch.base, "-two\n+TWO\n") != NULL);
    ok(strstr(d.patch.base, "+++ b/new/deep/n.txt\n") != NULL);
    ok(strstr(d.patch.base, "deleted file mode 100644") != NULL);
    ok(strstr(d.patch.base, "Binary files") != NULL);
    ok(strstr(d.patch.base, ".corral") == NULL && strstr(d.patch.base, "build.log") == NULL);
    /* the text patch is one git applies: on a checkout of base it gives the same numstat */
    {
        char patchfile[PATH_MAX + 16], check[PATH_MAX + 16];
        snprintf(patchfile, sizeof(patchfile), "%s/d.patch", root);
        FILE *f = fopen(patchfile, "w");
        fwrite(d.patch.base, 1, d.patch.len, f);
        fclose(f);
        snprintf(check, sizeof(check), "%s/applycheck", root);
        sh("git -C '%s' worktree add -q --detach '%s' '%s'", dir, check, s.base_commit);
        ok(sh("cd '%s' && git apply --exclude='*.bin' --exclude='*.dat' '%s'", check, patchfile) == 0);
        ok_str(out("cd '%s' && git add -A && git diff --cached --numstat --no-renames HEAD", check),
               out("cd '%s' && cp \"$(git rev-parse --git-path index)\" ../x.idx && GIT_INDEX_FILE=../x.idx git add -A -- . "
                   "':(exclude).corral' ':(exclude)*.bin' ':(exclude)*.dat' && GIT_INDEX_FILE=../x.idx git diff --cached "
                   "--numstat --no-renames %s -- . ':(exclude)*.bin' ':(exclude)*.dat'; rm -f ../x.idx",
                   wt, s.base_commit));
        sh("git -C '%s' worktree remove --force '%s'", dir, check);
    }
    host_git_diff_free(&d);
    ok(d.files == NULL && d.nfiles == 0);

    /* caps: cut with flags, never failed */
    ok(host_git_diff(&d, repo, &s, HOST_GIT_SINCE_BASE, 3, 200) == 0);
    ok(d.nfiles == 3 && d.total_files == 7 && d.files_truncated);
    ok(d.patch_truncated && d.patch.len < 200 && d.patch.len > 0 && d.patch.base[d.patch.len - 1] == '\n');
    ok(d.patch.base[d.patch.len] == '\0');
    ok(d.additions == 7 && d.deletions == 2); /* totals still count everything */
    host_git_diff_free(&d);

    /* a rename: as git -M reports it */
    sh("cd '%s' && git reset -q --hard && git clean -qfd && mv dir/c.txt dir/renamed.txt", wt);
    ok(host_git_diff(&d, repo, &s, HOST_GIT_SINCE_BASE, 0, 0) == 0);
    ok(d.nfiles == 1);
    if (d.nfiles == 1) {
        ok(d.files[0].status == 'R');
        ok_str(d.files[0].path, "dir/renamed.txt");
        ok_str(d.files[0].old_path, "dir/c.txt");
    }
    ok_str(git_numstat(wt, s.base_commit, "-M --name-status"), "R100\tdir/c.txt\tdir/renamed.txt");
    host_git_diff_free(&d);

    /* an edit undone is no change */
    sh("cd '%s' && mv dir/renamed.txt dir/c.txt", wt);
    put(wt, "a.txt", lines10);
    ok(host_git_has_changes(repo, &s, HOST_GIT_SINCE_BASE) == 0);

    /* the worktree gone: a clear error */
    host_git_session_t gone = s;
    snprintf(gone.worktree, sizeof(gone.worktree), "%.3000s/no-such-worktree", root);
    ok(host_git_diff(&d, repo, &gone, HOST_GIT_SINCE_BASE, 0, 0) == CR_ENOTFOUND);
    ok(strstr(cr_error_last()->message, "session worktree is missing") != NULL);
    ok(host_git_has_changes(repo, &gone, HOST_GIT_SINCE_BASE) == CR_ENOTFOUND);
    host_git_session_remove(repo, &s, 0);
    host_git_close(repo);
}

/* A repository with one session "s" that changed a.txt (committed on corral/s by the agent identity). */
static int setup_committed(char *dir, size_t len, host_git_repo_t **repo, host_git_session_t *s, const char *a_text)
{
    char id[HOST_GIT_OID_HEX];
    make_repo(dir, len);
    if (host_git_open(repo, dir) != 0 || host_git_session_create(s, *repo, "s", NULL, NULL) != 0)
        return -1;
    put(s->worktree, "a.txt", a_text);
    put(s->worktree, "added.txt", "added\n");
    return host_git_commit(id, *repo, s, &agent, "Session change") == 0 ? 0 : -1;
}

static void test_commit(void)
{
    char dir[PATH_MAX], id[HOST_GIT_OID_HEX];
    host_git_repo_t *repo = NULL;
    host_git_session_t s;

    make_repo(dir, sizeof(dir));
    if (!ok(host_git_open(&repo, dir) == 0) || !ok(host_git_session_create(&s, repo, "c", NULL, NULL) == 0))
        return;
    char *base = rev(dir, "main");
    ok(host_git_commit(id, repo, &s, &agent, "nothing") == HOST_GIT_NOTHING);
    ok_str(id, "");
    ok_str(out("git -C '%s' rev-parse corral/c", dir), base);

    put(s.worktree, "a.txt", "changed\n");
    sh("rm '%s/b.txt'", s.worktree);
    put(s.worktree, "sub/new.txt", "new\n");
    put(s.worktree, "x.log", "ignored\n");
    put(s.worktree, ".corral/transcript.jsonl", "{}\n");
    ok(host_git_commit(id, repo, &s, &agent, "Add the login form\n\nWith a body.") == 0);
    ok_str(out("git -C '%s' rev-parse corral/c", dir), id);
    ok_str(out("git -C '%s' log -1 --format='%%an <%%ae>|%%cn <%%ce>|%%s|%%P' corral/c", dir),
           out("echo 'feature-auth-agent <feature-auth-agent@corral.example>|feature-auth-agent "
               "<feature-auth-agent@corral.example>|Add the login form|%s'",
               base));
    ok_str(out("git -C '%s' log -1 --format=%%b corral/c", dir), "With a body.");
    ok_str(out("git -C '%s' diff --name-status main corral/c", dir), "M\ta.txt\nD\tb.txt\nA\tsub/new.txt");
    ok_str(out("git -C '%s' status --porcelain", s.worktree), "?? .corral/"); /* git itself does not know to skip it */
    ok_str(out("git -C '%s' rev-parse main", dir), base);                     /* base untouched */
    ok(host_git_has_changes(repo, &s, HOST_GIT_SINCE_HEAD) == 0);
    ok(host_git_has_changes(repo, &s, HOST_GIT_SINCE_BASE) == 1);
    ok(host_git_commit(id, repo, &s, &agent, "again") == HOST_GIT_NOTHING);

    host_git_identity_t bad = {"a <b>", "x@y"};
    put(s.worktree, "a.txt", "again\n");
    ok(host_git_commit(id, repo, &s, &bad, "m") == CR_ECONFIG);
    /* a worktree moved off its branch is refused */
    sh("git -C '%s' checkout -q --detach", s.worktree);
    ok(host_git_commit(id, repo, &s, &agent, "m") == CR_ECONFIG);
    ok(strstr(cr_error_last()->message, "is not on branch corral/c") != NULL);
    free(base);
    host_git_close(repo);
}

static void test_ff(void)
{
    char dir[PATH_MAX];
    host_git_repo_t *repo = NULL;
    host_git_session_t s;
    host_git_merge_result_t res;

    if (!ok(setup_committed(dir, sizeof(dir), &repo, &s, "ff\n") == 0))
        return;
    char *tip = rev(dir, "corral/s");
    ok(host_git_merge(&res, repo, &s, HOST_GIT_MERGE_NONE, &agent, NULL) == HOST_GIT_NOTHING);
    ok(strcmp(out("git -C '%s' rev-parse main", dir), tip) != 0);

    ok(host_git_merge(&res, repo, &s, HOST_GIT_MERGE_FF, &agent, NULL) == 0);
    ok_str(out("git -C '%s' rev-parse main", dir), tip);
    ok_str(res.base_tip, tip);
    ok_str(s.base_commit, tip);
    ok(res.checkout_updated);
    ok_str(out("git -C '%s' status --porcelain", dir), ""); /* main's checkout follows, as after git merge */
    ok_str(out("cat '%s/a.txt'", dir), "ff");
    ok_str(out("cat '%s/added.txt'", dir), "added");
    ok(host_git_has_changes(repo, &s, HOST_GIT_SINCE_BASE) == 0); /* the next diff starts here */
    ok(host_git_merge(&res, repo, &s, HOST_GIT_MERGE_FF, &agent, NULL) == HOST_GIT_NOTHING);
    host_git_merge_result_free(&res);
    free(tip);
    host_git_close(repo);
}

static void test_ff_refused(void)
{
    char dir[PATH_MAX];
    host_git_repo_t *repo = NULL;
    host_git_session_t s;
    host_git_merge_result_t res;

    if (!ok(setup_committed(dir, sizeof(dir), &repo, &s, "ff\n") == 0))
        return;
    put(dir, "b.txt", "moved on\n");
    sh("git -C '%s' commit -q -am 'base moves'", dir);
    char *main_tip = rev(dir, "main");
    ok(host_git_merge(&res, repo, &s, HOST_GIT_MERGE_FF, &agent, NULL) == HOST_GIT_ENOTFF);
    ok(strstr(cr_error_last()->message, "cannot fast-forward main to corral/s: main has 1 commit the session does not have") !=
       NULL);
    ok_str(out("git -C '%s' rev-parse main", dir), main_tip);
    ok_str(out("git -C '%s' status --porcelain", dir), "");
    char *a = slurp(dir, "a.txt");
    ok_str(a, lines10); /* untouched */
    free(a);
    host_git_merge_result_free(&res);
    free(main_tip);
    host_git_close(repo);
}

static void test_squash(void)
{
    char dir[PATH_MAX];
    host_git_repo_t *repo = NULL;
    host_git_session_t s;
    host_git_merge_result_t res;

    if (!ok(setup_committed(dir, sizeof(dir), &repo, &s, "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nTEN\n") == 0))
        return;
    put(dir, "a.txt", "ONE\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nten\n"); /* base: another line */
    sh("git -C '%s' commit -q -am 'base moves'", dir);
    char *main_tip = rev(dir, "main"), *tip = rev(dir, "corral/s");
    ok(host_git_merge(&res, repo, &s, HOST_GIT_MERGE_SQUASH, &agent, "Squash it") == 0);
    ok_str(out("git -C '%s' log -1 --format='%%P|%%an|%%s' main", dir), out("echo '%s|feature-auth-agent|Squash it'", main_tip));
    ok_str(out("cat '%s/a.txt'", dir), "ONE\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nTEN");
    ok_str(out("cat '%s/added.txt'", dir), "added");
    ok_str(out("git -C '%s' status --porcelain", dir), "");
    ok_str(out("git -C '%s' diff --stat main corral/s -- added.txt", dir), ""); /* the session's changes are in */
    ok_str(s.base_commit, tip);
    ok(host_git_has_changes(repo, &s, HOST_GIT_SINCE_BASE) == 0);
    ok(host_git_merge(&res, repo, &s, HOST_GIT_MERGE_SQUASH, &agent, NULL) == HOST_GIT_NOTHING); /* already in */
    host_git_merge_result_free(&res);
    free(main_tip);
    free(tip);
    host_git_close(repo);
}

static void test_merge(void)
{
    char dir[PATH_MAX];
    host_git_repo_t *repo = NULL;
    host_git_session_t s;
    host_git_merge_result_t res;

    if (!ok(setup_committed(dir, sizeof(dir), &repo, &s, "one\ntwo\nthree\nfour\nfive\nsix\nseven\neight\nnine\nTEN\n") == 0))
        return;
    put(dir, "b.txt", "base\n");
    sh("git -C '%s' commit -q -am 'base moves'", dir);
    char *main_tip = rev(dir, "main"), *tip = rev(dir, "corral/s");
    ok(host_git_merge(&res, repo, &s, HOST_GIT_MERGE_MERGE, &agent, NULL) == 0);
    ok_str(out("git -C '%s' log -1 --format='%%P|%%an|%%s' main", dir),
           out("echo '%s %s|feature-auth-agent|Merge branch '\\''corral/s'\\'' into main'", main_tip, tip));
    ok_str(out("git -C '%s' status --porcelain", dir), "");
    ok_str(out("cat '%s/b.txt'", dir), "base");
    ok_str(out("cat '%s/added.txt'", dir), "added");
    ok(res.checkout_updated);
    host_git_merge_result_free(&res);
    free(main_tip);
    free(tip);
    host_git_close(repo);
}

static void test_conflict(void)
{
    char dir[PATH_MAX];
    host_git_repo_t *repo = NULL;
    host_git_session_t s;
    host_git_merge_result_t res;

    if (!ok(setup_committed(dir, sizeof(dir), &repo, &s, "session\n") == 0))
        return;
    put(dir, "a.txt", "base\n");
    sh("git -C '%s' commit -q -am 'base moves'", dir);
    char *main_tip = rev(dir, "main"), *index_before = strdup(out("git -C '%s' ls-files -s --debug | md5sum", dir));
    host_git_session_t before = s;
    for (int p = HOST_GIT_MERGE_SQUASH; p <= HOST_GIT_MERGE_MERGE; ++p) {
        ok(host_git_merge(&res, repo, &s, (host_git_policy_t)p, &agent, NULL) == HOST_GIT_ECONFLICT);
        ok_str(cr_error_last()->message, "merging corral/s into main conflicts in 1 file: a.txt");
        ok(res.nconflicts == 1 && strcmp(res.conflicts[0], "a.txt") == 0);
        ok_str(out("git -C '%s' rev-parse main", dir), main_tip);
        ok_str(out("git -C '%s' status --porcelain", dir), "");
        ok_str(out("git -C '%s' ls-files -s --debug | md5sum", dir), index_before); /* the index, stat data too */
        ok_str(out("cat '%s/a.txt'", dir), "base");
        ok(!exists(dir, ".git/MERGE_HEAD"));
        ok_str(s.base_commit, before.base_commit);
        host_git_merge_result_free(&res);
    }
    ok(host_git_merge(&res, repo, &s, HOST_GIT_MERGE_FF, &agent, NULL) == HOST_GIT_ENOTFF);
    host_git_merge_result_free(&res);
    free(index_before);
    free(main_tip);
    host_git_close(repo);
}

static void test_dirty_base(void)
{
    char dir[PATH_MAX];
    host_git_repo_t *repo = NULL;
    host_git_session_t s;
    host_git_merge_result_t res;

    if (!ok(setup_committed(dir, sizeof(dir), &repo, &s, "session\n") == 0))
        return;
    char *main_tip = rev(dir, "main"), *tip = rev(dir, "corral/s");
    /* local changes in a path the merge writes: refused, nothing changed */
    put(dir, "a.txt", "my local edit\n");
    ok(host_git_merge(&res, repo, &s, HOST_GIT_MERGE_FF, &agent, NULL) == HOST_GIT_EDIRTY);
    ok(strstr(cr_error_last()->message, "main is checked out at") != NULL);
    ok(strstr(cr_error_last()->message, "a.txt") != NULL);
    ok(res.nconflicts == 1);
    ok_str(out("git -C '%s' rev-parse main", dir), main_tip);
    ok_str(out("cat '%s/a.txt'", dir), "my local edit");
    ok_str(out("git -C '%s' status --porcelain", dir), " M a.txt");
    host_git_merge_result_free(&res);
    /* an untracked file where the merge adds one: refused too */
    sh("git -C '%s' checkout -q a.txt", dir);
    put(dir, "added.txt", "mine\n");
    ok(host_git_merge(&res, repo, &s, HOST_GIT_MERGE_MERGE, &agent, NULL) == HOST_GIT_EDIRTY);
    ok_str(out("git -C '%s' rev-parse main", dir), main_tip);
    ok_str(out("cat '%s/added.txt'", dir), "mine");
    ok_str(out("git -C '%s' log --oneline main | wc -l", dir), "1");
    host_git_merge_result_free(&res);
    sh("rm '%s/added.txt'", dir);
    /* local changes elsewhere are kept, as git merge keeps them */
    put(dir, "b.txt", "my local edit\n");
    ok(host_git_merge(&res, repo, &s, HOST_GIT_MERGE_FF, &agent, NULL) == 0);
    ok_str(out("git -C '%s' rev-parse main", dir), tip);
    ok_str(out("git -C '%s' status --porcelain", dir), " M b.txt");
    ok_str(out("cat '%s/a.txt'", dir), "session");
    host_git_merge_result_free(&res);
    free(main_tip);
    free(tip);
    host_git_close(repo);
}

static void test_base_not_checked_out(void)
{
    char dir[PATH_MAX], id[HOST_GIT_OID_HEX];
    host_git_repo_t *repo = NULL;
    host_git_session_t s;
    host_git_merge_result_t res;

    make_repo(dir, sizeof(dir));
    sh("git -C '%s' branch dev", dir);
    if (!ok(host_git_open(&repo, dir) == 0) || !ok(host_git_session_create(&s, repo, "s", "dev", NULL) == 0))
        return;
    put(s.worktree, "a.txt", "x\n");
    ok(host_git_commit(id, repo, &s, &agent, "x") == 0);
    ok(host_git_merge(&res, repo, &s, HOST_GIT_MERGE_FF, &agent, NULL) == 0);
    ok_str(out("git -C '%s' rev-parse dev", dir), id);
    ok(!res.checkout_updated);
    ok_str(out("git -C '%s' status --porcelain", dir), ""); /* main, checked out, did not move */
    ok_str(out("cat '%s/b.txt'", dir), "bee");
    host_git_merge_result_free(&res);
    host_git_close(repo);
}

static void test_discard(void)
{
    char dir[PATH_MAX];
    host_git_repo_t *repo = NULL;
    host_git_session_t s;

    make_repo(dir, sizeof(dir));
    if (!ok(host_git_open(&repo, dir) == 0) || !ok(host_git_session_create(&s, repo, "x", NULL, NULL) == 0))
        return;
    const char *wt = s.worktree;
    put(wt, "a.txt", "changed\n");
    sh("rm '%s/b.txt' '%s/dir/c.txt'", wt, wt);
    put(wt, "untracked.txt", "u\n");
    put(wt, "newdir/deeper/u.txt", "u\n");
    put(wt, "staged.txt", "s\n");
    sh("git -C '%s' add staged.txt", wt);
    put(wt, "keep.log", "ignored\n");
    put(wt, ".corral/keep.json", "{}\n");
    ok(host_git_discard(repo, &s) == 0);
    ok_str(out("git -C '%s' status --porcelain", wt), "?? .corral/");
    char *a = slurp(wt, "a.txt");
    ok_str(a, lines10);
    free(a);
    ok(exists(wt, "b.txt") && exists(wt, "dir/c.txt"));
    ok(!exists(wt, "untracked.txt") && !exists(wt, "newdir") && !exists(wt, "staged.txt"));
    ok(exists(wt, "keep.log") && exists(wt, ".corral/keep.json"));
    ok(host_git_has_changes(repo, &s, HOST_GIT_SINCE_HEAD) == 0);
    ok(host_git_discard(repo, &s) == 0); /* nothing to discard is fine */
    host_git_close(repo);
}

static void test_policy(void)
{
    host_git_policy_t p;
    ok(host_git_policy_parse(&p, NULL) == 0 && p == HOST_GIT_MERGE_FF);
    ok(host_git_policy_parse(&p, "squash") == 0 && p == HOST_GIT_MERGE_SQUASH);
    ok(host_git_policy_parse(&p, "none") == 0 && p == HOST_GIT_MERGE_NONE);
    ok(host_git_policy_parse(&p, "merge") == 0 && p == HOST_GIT_MERGE_MERGE);
    ok(host_git_policy_parse(&p, "rebase") == CR_ECONFIG);
    ok_str(host_git_policy_name(HOST_GIT_MERGE_SQUASH), "squash");
}

int main(void)
{
    char home[PATH_MAX + 16];
    if (cr_test_make_temp_dir(root, sizeof(root), "corral-git", PATH_MAX - 200) != 0)
        return 1;
    cr_test_slot_add(root, 0);
    /* no user or system git configuration: a home of our own */
    snprintf(home, sizeof(home), "%s/home", root);
    mkdir(home, 0700);
    put(home, ".gitconfig",
        "[user]\n\tname = Test User\n\temail = test@example.com\n[init]\n\tdefaultBranch = main\n"
        "[advice]\n\tdetachedHead = false\n");
    setenv("HOME", home, 1);
    setenv("XDG_CONFIG_HOME", home, 1);
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    static const char *const git_env[] = {"GIT_DIR",
                                          "GIT_WORK_TREE",
                                          "GIT_INDEX_FILE",
                                          "GIT_OBJECT_DIRECTORY",
                                          "GIT_CEILING_DIRECTORIES",
                                          "GIT_AUTHOR_NAME",
                                          "GIT_AUTHOR_EMAIL",
                                          "GIT_COMMITTER_NAME",
                                          "GIT_COMMITTER_EMAIL",
                                          "GIT_CONFIG_GLOBAL",
                                          NULL};
    for (int i = 0; git_env[i] != NULL; ++i)
        unsetenv(git_env[i]);

    subtest("open and resolve the base", test_open);
    subtest("session names", test_names);
    subtest("create and remove a session", test_create_remove);
    subtest("what a new worktree holds", test_checkout_content);
    subtest("spare worktrees", test_spares);
    subtest("diff", test_diff);
    subtest("commit", test_commit);
    subtest("merge policy parsing", test_policy);
    subtest("fast-forward", test_ff);
    subtest("fast-forward refused when base moved", test_ff_refused);
    subtest("squash", test_squash);
    subtest("merge commit", test_merge);
    subtest("conflicts change nothing", test_conflict);
    subtest("a dirty base checkout", test_dirty_base);
    subtest("base not checked out", test_base_not_checked_out);
    subtest("discard", test_discard);
    return done_testing();
}
