/* host_proc.h — runs corrald and the corral CLI for integration tests: a temp dir with a git repository and a
 * CORRAL_HOME, the daemon started and stopped in it, and CLI (or git) runs whose stdout, stderr and exit status the
 * test reads. */
#ifndef CORRAL_TEST_HOST_PROC_H
#define CORRAL_TEST_HOST_PROC_H

#include <stddef.h>
#include <sys/types.h>
#include "proc.h"

/* How many entries of cr_test_host_t.env cr_test_host_init fills itself; the caller's extra entries start here. */
#define CR_TEST_HOST_ENV_BASE 5

/* The most entries env holds, the terminating NULL included. */
#define CR_TEST_HOST_ENV_MAX 24

/* One corrald with its temp dir. Zero it (or use {0}) before cr_test_host_init. */
typedef struct st_cr_test_host_t {
    char tmp[PATH_MAX];          /* the temp dir: the children's HOME, removed by cr_test_host_free and at exit */
    char repo[PATH_MAX + 16];    /* tmp + "/repo": the git repository corrald serves (cr_test_host_make_repo) */
    char home[PATH_MAX + 16];    /* tmp + "/home": CORRAL_HOME, where corrald puts its socket and settings */
    char sock[PATH_MAX + 32];    /* home + "/corrald.sock" */
    char log[PATH_MAX + 32];     /* tmp + "/corrald.log": corrald's stdout and stderr, appended across restarts */
    char corrald_bin[PATH_MAX];  /* $CORRAL_BINARY_DIR/bin/corrald */
    char corral_bin[PATH_MAX];   /* $CORRAL_BINARY_DIR/bin/corral */
    /* The environment every child runs with (cr_test_spawn's env, NULL-terminated): [0] HOME=tmp, [1] CORRAL_HOME=home,
     * [2] "CORRAL_URL=", [3] "CORRAL_TOKEN=", [4] "GIT_CONFIG_NOSYSTEM=1", then the caller's extra entries. A test may
     * replace or cut entries between runs; the strings are not copied, so they must outlive their use. */
    const char *env[CR_TEST_HOST_ENV_MAX];
    pid_t daemon_pid;            /* the running corrald; 0 when none */
    char *out, *err;             /* stdout and stderr of the last cr_test_host_run (never NULL after a run; owned here) */
    int _slot;                   /* its cleanup slot (proc.h); 0 when none */
    char _env_home[PATH_MAX + 8], _env_chome[PATH_MAX + 32];
    char _tail[4097];            /* what cr_test_host_log_tail returns */
} cr_test_host_t;

/* Makes the temp dir "$TMPDIR/<name>-XXXXXX" (short enough for the socket's name) and registers it for cleanup,
 * fills the paths from $CORRAL_BINARY_DIR, and the environment with its base entries followed by each entry of
 * extra_env (NULL-terminated, may be NULL; pointers kept, not copied). Creates neither repo nor home. Returns 0, or
 * -1 with a message on stderr (CORRAL_BINARY_DIR unset, no temp dir, too many entries). */
int cr_test_host_init(cr_test_host_t *h, const char *name, const char *const *extra_env);

/* Stops corrald if it runs, removes the temp dir and frees out and err. Idempotent. */
void cr_test_host_free(cr_test_host_t *h);

/* Runs argv (argv[0] the executable, NULL-terminated) with h->env, waits for it and keeps its stdout and stderr in
 * h->out and h->err (the previous ones are freed; each read up to 1 MiB). Returns its exit status (0..255), or -1
 * when it could not start or did not exit normally. */
int cr_test_host_run(cr_test_host_t *h, const char *const *argv);

/* Runs the corral CLI with the arguments (NULL-terminated, at most 22) as cr_test_host_run does. Returns its exit
 * status or -1. */
int cr_test_host_corral(cr_test_host_t *h, const char *first, ...) __attribute__((sentinel));

/* Runs `git -C repo ARG...` (the arguments NULL-terminated, at most 16) as cr_test_host_run does. Returns its exit
 * status, or -1 (also when git is not found). */
int cr_test_host_git(cr_test_host_t *h, const char *first, ...) __attribute__((sentinel));

/* Makes h->repo a git repository on branch main whose user is "Test <test@example.org>", with one commit "init"
 * adding README ("readme\n"). Returns 0, or -1 with the failing step and git's stderr on stderr. */
int cr_test_host_make_repo(cr_test_host_t *h);

/* Starts `corrald --repo h->repo` with h->env, its output appended to h->log, and waits up to 10 s for h->sock to
 * appear. Returns 0 when it did, -1 otherwise (the child, if any, stays in h->daemon_pid for cr_test_host_stop). */
int cr_test_host_start(cr_test_host_t *h);

/* Stops corrald: SIGTERM and up to 10 s for it to exit, then SIGKILL. Returns its wait status (0: exited 0), or -1
 * when it had to be killed or none was running; when not 0, a message and the log's tail go to stderr. */
int cr_test_host_stop(cr_test_host_t *h);

/* The last ~4 KiB of corrald's log, starting at a line ("(empty)" when there is none), for failure messages. Valid
 * until the next call on h. */
const char *cr_test_host_log_tail(cr_test_host_t *h);

#endif
