/* host_proc.c — corrald and corral CLI children on a temp git repository for integration tests. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "host_proc.h"
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SLOT_GRACE_MS 8000
#define READY_TIMEOUT_MS 10000
#define STOP_GRACE_MS 10000
#define POLL_MS 50
#define OUTPUT_MAX (1 << 20)
#define MAX_CORRAL_ARGS 22
#define MAX_GIT_ARGS 16

/* paths here are a short temp dir plus short names: a cut path would fail the test loudly anyway */
#pragma GCC diagnostic ignored "-Wformat-truncation"

int cr_test_host_init(cr_test_host_t *h, const char *name, const char *const *extra_env)
{
    const char *bdir = getenv("CORRAL_BINARY_DIR");
    size_t n = CR_TEST_HOST_ENV_BASE;
    if (bdir == NULL || bdir[0] == '\0') {
        fprintf(stderr, "%s: set CORRAL_BINARY_DIR to the build directory (ctest does)\n", name);
        return -1;
    }
    if (cr_test_make_temp_dir(h->tmp, sizeof(h->tmp), name, 60) != 0)
        return -1;
    if ((h->_slot = cr_test_slot_add(h->tmp, SLOT_GRACE_MS)) < 0) {
        fprintf(stderr, "%s: no cleanup slot left\n", name);
        h->_slot = 0;
        cr_test_rm_rf(h->tmp);
        h->tmp[0] = '\0';
        return -1;
    }
    snprintf(h->corrald_bin, sizeof(h->corrald_bin), "%s/bin/corrald", bdir);
    snprintf(h->corral_bin, sizeof(h->corral_bin), "%s/bin/corral", bdir);
    snprintf(h->repo, sizeof(h->repo), "%s/repo", h->tmp);
    snprintf(h->home, sizeof(h->home), "%s/home", h->tmp);
    snprintf(h->sock, sizeof(h->sock), "%s/corrald.sock", h->home);
    snprintf(h->log, sizeof(h->log), "%s/corrald.log", h->tmp);
    snprintf(h->_env_home, sizeof(h->_env_home), "HOME=%s", h->tmp);
    snprintf(h->_env_chome, sizeof(h->_env_chome), "CORRAL_HOME=%s", h->home);
    h->env[0] = h->_env_home;
    h->env[1] = h->_env_chome;
    h->env[2] = "CORRAL_URL=";
    h->env[3] = "CORRAL_TOKEN=";
    h->env[4] = "GIT_CONFIG_NOSYSTEM=1";
    for (; extra_env != NULL && extra_env[n - CR_TEST_HOST_ENV_BASE] != NULL; ++n) {
        if (n + 1 >= CR_TEST_HOST_ENV_MAX) {
            fprintf(stderr, "%s: more than %d environment entries\n", name, CR_TEST_HOST_ENV_MAX - 1);
            cr_test_host_free(h);
            return -1;
        }
        h->env[n] = extra_env[n - CR_TEST_HOST_ENV_BASE];
    }
    h->env[n] = NULL;
    return 0;
}

void cr_test_host_free(cr_test_host_t *h)
{
    if (h->daemon_pid > 0)
        cr_test_host_stop(h);
    free(h->out);
    free(h->err);
    h->out = h->err = NULL;
    cr_test_slot_stop(h->_slot); /* removes tmp */
    h->_slot = 0;
    h->tmp[0] = '\0';
}

int cr_test_host_run(cr_test_host_t *h, const char *const *argv)
{
    char op[PATH_MAX + 16], ep[PATH_MAX + 16];
    int ofd, efd, status = 0;
    pid_t pid;
    free(h->out);
    free(h->err);
    h->out = h->err = NULL;
    snprintf(op, sizeof(op), "%s/run.out", h->tmp);
    snprintf(ep, sizeof(ep), "%s/run.err", h->tmp);
    ofd = open(op, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    efd = open(ep, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    pid = ofd >= 0 && efd >= 0 ? cr_test_spawn(argv[0], argv, h->env, ofd, efd) : -1;
    if (ofd >= 0)
        close(ofd);
    if (efd >= 0)
        close(efd);
    if (pid > 0)
        cr_test_reap(pid, 1, &status);
    h->out = cr_test_file_read(op, 0, OUTPUT_MAX);
    h->err = cr_test_file_read(ep, 0, OUTPUT_MAX);
    if (h->out == NULL)
        h->out = strdup("");
    if (h->err == NULL)
        h->err = strdup("");
    if (h->out == NULL || h->err == NULL)
        abort(); /* out of memory for an empty string */
    if (pid < 0)
        return -1;
    return WIFEXITED(status) ? WEXITSTATUS(status) : -1;
}

/* Appends first and the arguments after it in ap (up to a NULL) to argv[0..n-1], keeping at most max entries before
 * the terminating NULL, and runs it. Returns what cr_test_host_run returns. */
static int run_va(cr_test_host_t *h, const char **argv, int n, int max, const char *first, va_list ap)
{
    argv[n++] = first;
    while (n < max && (argv[n] = va_arg(ap, const char *)) != NULL)
        ++n;
    argv[n] = NULL;
    return cr_test_host_run(h, argv);
}

int cr_test_host_corral(cr_test_host_t *h, const char *first, ...)
{
    const char *argv[MAX_CORRAL_ARGS + 2] = {h->corral_bin};
    va_list ap;
    int rc;
    va_start(ap, first);
    rc = run_va(h, argv, 1, MAX_CORRAL_ARGS + 1, first, ap);
    va_end(ap);
    return rc;
}

int cr_test_host_git(cr_test_host_t *h, const char *first, ...)
{
    char gitexe[PATH_MAX];
    const char *argv[MAX_GIT_ARGS + 4] = {gitexe, "-C", h->repo};
    va_list ap;
    int rc;
    if (cr_test_find_program(gitexe, sizeof(gitexe), "git") != 0)
        return -1;
    va_start(ap, first);
    rc = run_va(h, argv, 3, MAX_GIT_ARGS + 3, first, ap);
    va_end(ap);
    return rc;
}

int cr_test_host_make_repo(cr_test_host_t *h)
{
    char gitexe[PATH_MAX], readme[PATH_MAX + 32];
    const char *step = "find git";
    FILE *fp;
    int rc = -1;
    if (cr_test_find_program(gitexe, sizeof(gitexe), "git") != 0)
        goto done;
    {
        const char *init[] = {gitexe, "init", "-q", "-b", "main", h->repo, NULL};
        step = "git init";
        if (cr_test_host_run(h, init) != 0)
            goto done;
    }
    step = "git config user.name";
    if (cr_test_host_git(h, "config", "user.name", "Test", NULL) != 0)
        goto done;
    step = "git config user.email";
    if (cr_test_host_git(h, "config", "user.email", "test@example.org", NULL) != 0)
        goto done;
    step = "write README";
    snprintf(readme, sizeof(readme), "%s/README", h->repo);
    if ((fp = fopen(readme, "w")) == NULL)
        goto done;
    fputs("readme\n", fp);
    if (fclose(fp) != 0)
        goto done;
    step = "git add README";
    if (cr_test_host_git(h, "add", "README", NULL) != 0)
        goto done;
    step = "git commit";
    if (cr_test_host_git(h, "commit", "-q", "-m", "init", NULL) != 0)
        goto done;
    rc = 0;
done:
    if (rc != 0)
        fprintf(stderr, "host_proc: making the repository %s failed at %s: %s\n", h->repo, step,
                h->err != NULL ? h->err : "");
    return rc;
}

int cr_test_host_start(cr_test_host_t *h)
{
    const char *argv[] = {h->corrald_bin, "--repo", h->repo, NULL};
    int fd;
    int64_t end = cr_test_now_ms() + READY_TIMEOUT_MS;
    if ((fd = open(h->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
        perror(h->log);
        return -1;
    }
    h->daemon_pid = cr_test_spawn(h->corrald_bin, argv, h->env, fd, fd);
    close(fd);
    if (h->daemon_pid < 0) {
        h->daemon_pid = 0;
        return -1;
    }
    cr_test_slot_set_pid(h->_slot, h->daemon_pid);
    while (cr_test_now_ms() < end && access(h->sock, F_OK) != 0)
        cr_test_sleep_ms(POLL_MS);
    return access(h->sock, F_OK) == 0 ? 0 : -1;
}

int cr_test_host_stop(cr_test_host_t *h)
{
    int status = 0, gone = 0;
    if (h->daemon_pid <= 0) {
        fprintf(stderr, "host_proc: corrald is not running\n");
        return -1;
    }
    kill(h->daemon_pid, SIGTERM);
    for (int i = 0; i < STOP_GRACE_MS / POLL_MS && !(gone = cr_test_reap(h->daemon_pid, 0, &status)); ++i)
        cr_test_sleep_ms(POLL_MS);
    if (!gone) {
        cr_test_terminate(h->daemon_pid, 100);
        status = -1;
    }
    cr_test_slot_set_pid(h->_slot, 0);
    h->daemon_pid = 0;
    if (status != 0)
        fprintf(stderr, "host_proc: corrald ended with wait status %d; its log ends:\n%s\n", status,
                cr_test_host_log_tail(h));
    return status;
}

const char *cr_test_host_log_tail(cr_test_host_t *h)
{
    return cr_test_file_tail(h->_tail, sizeof(h->_tail), h->log);
}
