/* bench_git.c — how fast corrald's git layer is on a 10,000-file repository (issue 5): session creation (branch +
 * worktree, target 300 ms) both ways — taking the spare worktree corrald keeps ready (made on its thread pool after
 * each create; timed here too) and writing every file when there is none — a diff after editing 20 files and adding 3
 * (target 150 ms), and removal. Builds the repository in a temp dir ($TMPDIR, else /tmp) with the git command line,
 * then times N runs of each and prints median and p90, beside `git worktree add` and plain file writes of the same
 * files as references. Run on demand, never as a timed test. Usage: bench_git [--files N] [--runs N] [--keep]
 * [--verbose] */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "git.h"
#include "proc.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return ts.tv_sec * 1e3 + ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

/* Sorts v and prints "name  median  p90  min  max  target". */
static void report(const char *name, double *v, int n, double target)
{
    qsort(v, n, sizeof(*v), cmp_double);
    double med = n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2, p90 = v[(int)((n - 1) * 0.9 + 0.5)];
    if (target > 0)
        printf("%-34s %8.1f %8.1f %8.1f %8.1f %8.0f  %s\n", name, med, p90, v[0], v[n - 1], target,
               p90 <= target ? "met" : "MISSED");
    else
        printf("%-34s %8.1f %8.1f %8.1f %8.1f %8s\n", name, med, p90, v[0], v[n - 1], "-");
}

/* ~2 KiB of source-like text, different per file. */
static void write_file(const char *path, unsigned seed, size_t size)
{
    FILE *f = fopen(path, "w");
    if (f == NULL) {
        perror(path);
        exit(1);
    }
    size_t n = 0;
    for (unsigned line = 0; n < size; ++line)
        n += fprintf(f, "static int value_%u_%u(int x) { return x * %u + %u; } /* padding text */\n", seed, line, seed * 31 + line,
                     line * 7);
    fclose(f);
}

static int run(const char *cmd)
{
    int st = system(cmd);
    if (st != 0)
        fprintf(stderr, "failed: %s\n", cmd);
    return st;
}

int main(int argc, char **argv)
{
    int files = 10000, runs = 10, keep = 0, verbose = 0;
    char root[PATH_MAX], repo_dir[PATH_MAX + 16], p[PATH_MAX + 256], cmd[3 * PATH_MAX];
    host_git_repo_t *repo = NULL;

    for (int i = 1; i < argc; ++i) {
        if (strcmp(argv[i], "--files") == 0 && i + 1 < argc)
            files = atoi(argv[++i]);
        else if (strcmp(argv[i], "--runs") == 0 && i + 1 < argc)
            runs = atoi(argv[++i]);
        else if (strcmp(argv[i], "--keep") == 0)
            keep = 1;
        else if (strcmp(argv[i], "--verbose") == 0)
            verbose = 1;
        else {
            fprintf(stderr, "usage: bench_git [--files N] [--runs N] [--keep] [--verbose]\n");
            return 2;
        }
    }
    if (files < 100 || runs < 1 || runs > 1000)
        return 2;
    if (cr_test_make_temp_dir(root, sizeof(root), "corral-bench-git", PATH_MAX - 300) != 0)
        return 1;
    if (!keep)
        cr_test_slot_add(root, 0);
    snprintf(p, sizeof(p), "%s/home", root);
    mkdir(p, 0700);
    setenv("HOME", p, 1);
    setenv("XDG_CONFIG_HOME", p, 1);
    setenv("GIT_CONFIG_NOSYSTEM", "1", 1);
    unsetenv("GIT_DIR");
    unsetenv("GIT_WORK_TREE");
    unsetenv("GIT_INDEX_FILE");

    /* the repository: files spread over nested directories (10 x 10 x N/100), ~2 KiB each, one commit */
    double t0 = now_ms();
    snprintf(repo_dir, sizeof(repo_dir), "%s/repo", root);
    snprintf(cmd, sizeof(cmd), "git init -q -b main '%s'", repo_dir);
    if (run(cmd) != 0)
        return 1;
    for (int i = 0; i < files; ++i) {
        int a = i % 10, b = (i / 10) % 10;
        snprintf(p, sizeof(p), "%s/src/mod%d/part%d", repo_dir, a, b);
        if (i < 100) {
            snprintf(cmd, sizeof(cmd), "mkdir -p '%s'", p);
            run(cmd);
        }
        snprintf(p, sizeof(p), "%s/src/mod%d/part%d/file%05d.c", repo_dir, a, b, i);
        write_file(p, (unsigned)i, 2048);
    }
    snprintf(p, sizeof(p), "%s/.gitignore", repo_dir);
    write_file(p, 0, 1);
    snprintf(cmd, sizeof(cmd), "cd '%s' && git add -A && git -c user.name=bench -c user.email=bench@example.com commit -q -m init",
             repo_dir);
    if (run(cmd) != 0)
        return 1;
    struct statfs sf;
    const char *fs = statfs(repo_dir, &sf) != 0 ? "?" : sf.f_type == 0x01021994 ? "tmpfs" : sf.f_type == 0xEF53 ? "ext4" : "other";
    printf("repository: %d files of ~2 KiB in %s (%s; made in %.1f s); %ld CPUs online\n", files, repo_dir, fs,
           (now_ms() - t0) / 1e3, sysconf(_SC_NPROCESSORS_ONLN));

    if (host_git_open(&repo, repo_dir) != 0) {
        fprintf(stderr, "open: %s\n", cr_error_last()->message);
        return 1;
    }
    double *t_create = calloc(runs, sizeof(double)), *t_diff = calloc(runs, sizeof(double)),
           *t_diff_head = calloc(runs, sizeof(double)), *t_has = calloc(runs, sizeof(double)),
           *t_commit = calloc(runs, sizeof(double)), *t_discard = calloc(runs, sizeof(double)),
           *t_remove = calloc(runs, sizeof(double));
    size_t dfiles = 0, dadd = 0, ddel = 0, plen = 0;
    host_git_identity_t who = {"bench-agent", "bench-agent@corral.example"};

    host_git_session_t *ss = calloc(runs, sizeof(*ss)), *cs = calloc(runs, sizeof(*cs));
    double *t_cold = calloc(runs, sizeof(double)), *t_spare = calloc(runs, sizeof(double));
    static char block[2048];
    memset(block, 'x', sizeof(block));
    double *t_floor = calloc(runs, sizeof(double)), *t_cli = calloc(runs, sizeof(double));
    /* All sessions are made first and removed last: ext4 scans past inodes freed in the last ~30 s when it allocates
     * new ones (recently_deleted()), so making 10,000 files right after removing 10,000 measures that, not us. The
     * same files written by plain open/write/close, and `git worktree add`, are timed in between as references: on a
     * busy disk the kernel's cost of making files dominates and moves a lot from minute to minute. */
    for (int r = 0; r < runs; ++r) {
        char name[32];
        double t;
        /* what corrald does on its thread pool after each create: a spare of base's tip, then the create takes it */
        t = now_ms();
        if (host_git_spare_make(repo_dir, NULL) != 0) {
            fprintf(stderr, "spare: %s\n", cr_error_last()->message);
            return 1;
        }
        t_spare[r] = now_ms() - t;
        snprintf(name, sizeof(name), "bench-%d", r);
        host_git_set_spares(repo, 1);
        t = now_ms();
        if (host_git_session_create(&ss[r], repo, name, NULL, NULL) != 0) {
            fprintf(stderr, "create: %s\n", cr_error_last()->message);
            return 1;
        }
        t_create[r] = now_ms() - t;
        if (!ss[r].from_spare) {
            fprintf(stderr, "create did not take the spare\n");
            return 1;
        }
        /* and with no spare: every file written */
        snprintf(name, sizeof(name), "cold-%d", r);
        host_git_set_spares(repo, 0);
        t = now_ms();
        if (host_git_session_create(&cs[r], repo, name, NULL, NULL) != 0) {
            fprintf(stderr, "create: %s\n", cr_error_last()->message);
            return 1;
        }
        t_cold[r] = now_ms() - t;

        t = now_ms();
        for (int i = 0; i < files; ++i) {
            int a = i % 10, b = (i / 10) % 10;
            if (i < 100) {
                snprintf(p, sizeof(p), "%s/floor%d/src/mod%d/part%d", root, r, a, b);
                snprintf(cmd, sizeof(cmd), "%s", p);
                for (char *c = cmd + strlen(root) + 1; *c != '\0'; ++c)
                    if (*c == '/') {
                        *c = '\0';
                        mkdir(cmd, 0755);
                        *c = '/';
                    }
                mkdir(cmd, 0755);
            }
            snprintf(p, sizeof(p), "%s/floor%d/src/mod%d/part%d/file%05d.c", root, r, a, b, i);
            int fd = open(p, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
            if (fd < 0 || write(fd, block, sizeof(block)) != (ssize_t)sizeof(block) || close(fd) != 0) {
                perror(p);
                return 1;
            }
        }
        t_floor[r] = now_ms() - t;

        snprintf(cmd, sizeof(cmd), "git -C '%s' worktree add -q -b cli-%d '%s/cli%d'", repo_dir, r, root, r);
        t = now_ms();
        if (run(cmd) != 0)
            return 1;
        t_cli[r] = now_ms() - t;
        if (verbose)
            printf("run %d: create %.1f ms from the spare (made in %.1f ms), %.1f ms written in full; git worktree add "
                   "%.1f ms, plain writes %.1f ms\n",
                   r, t_create[r], t_spare[r], t_cold[r], t_cli[r], t_floor[r]);
    }
    for (int r = 0; r < runs; ++r) {
        host_git_session_t *s = &ss[r];
        host_git_diff_t d;
        char id[HOST_GIT_OID_HEX];
        double t;

        /* an agent's turn: 20 files edited, 3 new */
        for (int i = 0; i < 20; ++i) {
            int k = (i * 487 + r * 13) % files;
            snprintf(p, sizeof(p), "%s/src/mod%d/part%d/file%05d.c", s->worktree, k % 10, (k / 10) % 10, k);
            write_file(p, (unsigned)(k + 100000 + r), 2048);
        }
        for (int i = 0; i < 3; ++i) {
            snprintf(p, sizeof(p), "%s/src/mod%d/new%d.c", s->worktree, i, i);
            write_file(p, (unsigned)(200000 + i), 1500);
        }
        t = now_ms();
        int has = host_git_has_changes(repo, s, HOST_GIT_SINCE_HEAD);
        t_has[r] = now_ms() - t;
        t = now_ms();
        if (host_git_diff(&d, repo, s, HOST_GIT_SINCE_BASE, 0, 0) != 0) {
            fprintf(stderr, "diff: %s\n", cr_error_last()->message);
            return 1;
        }
        t_diff[r] = now_ms() - t;
        dfiles = d.total_files, dadd = d.additions, ddel = d.deletions, plen = d.patch.len;
        host_git_diff_free(&d);
        if (has != 1 || dfiles != 23) {
            fprintf(stderr, "unexpected: has_changes %d, %zu files\n", has, dfiles);
            return 1;
        }
        t = now_ms();
        host_git_diff(&d, repo, s, HOST_GIT_SINCE_HEAD, 0, 0);
        t_diff_head[r] = now_ms() - t;
        host_git_diff_free(&d);

        t = now_ms();
        if (r % 2 == 0) {
            if (host_git_commit(id, repo, s, &who, "bench") != 0) {
                fprintf(stderr, "commit: %s\n", cr_error_last()->message);
                return 1;
            }
            t_commit[r / 2] = now_ms() - t;
        } else {
            if (host_git_discard(repo, s) != 0) {
                fprintf(stderr, "discard: %s\n", cr_error_last()->message);
                return 1;
            }
            t_discard[r / 2] = now_ms() - t;
        }
    }
    for (int r = 0; r < runs; ++r) {
        double t = now_ms();
        if (host_git_session_remove(repo, &ss[r], 0) != 0) {
            fprintf(stderr, "remove: %s\n", cr_error_last()->message);
            return 1;
        }
        t_remove[r] = now_ms() - t;
        host_git_session_remove(repo, &cs[r], 0);
    }
    double t_trash = now_ms();
    if (host_git_trash_empty(repo_dir) != 0) {
        fprintf(stderr, "trash: %s\n", cr_error_last()->message);
        return 1;
    }
    t_trash = (now_ms() - t_trash) / (2 * runs);
    free(ss);
    free(cs);

    printf("diff: %zu files, +%zu -%zu, patch %zu bytes\n\n", dfiles, dadd, ddel, plen);
    printf("%-34s %8s %8s %8s %8s %8s\n", "ms (N runs)", "median", "p90", "min", "max", "target");
    report("create, taking the spare", t_create, runs, 300);
    report("create, every file written", t_cold, runs, 0);
    report("  spare made (thread pool, before)", t_spare, runs, 0);
    report("  ref: git worktree add (CLI)", t_cli, runs, 0);
    report("  ref: 10,000 x open/write 2K/close", t_floor, runs, 0);
    report("diff since base (20 edited, 3 new)", t_diff, runs, 150);
    report("diff since head", t_diff_head, runs, 150);
    report("has_changes", t_has, runs, 0);
    if (runs / 2 + runs % 2 > 0)
        report("commit (stage all + commit)", t_commit, runs / 2 + runs % 2, 0);
    if (runs / 2 > 0)
        report("discard", t_discard, runs / 2, 0);
    report("remove (worktree to trash + branch)", t_remove, runs, 0);
    printf("%-34s %8.1f  (mean per worktree: its files deleted)\n", "  trash emptied (thread pool, after)", t_trash);
    host_git_close(repo);
    free(t_floor), free(t_cli), free(t_cold), free(t_spare);
    free(t_create), free(t_diff), free(t_diff_head), free(t_has), free(t_commit), free(t_discard), free(t_remove);
    if (keep)
        printf("\nkept %s\n", root);
    return 0;
}
