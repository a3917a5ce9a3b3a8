/* relay_proc.c — starts, crashes, restarts and cleans up corral-relay children for integration tests. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "relay_proc.h"
#include "http_client.h"
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <unistd.h>

#define READY_TIMEOUT_MS 10000
#define STOP_GRACE_MS 10000
#define ADMIN_TIMEOUT_MS 10000
#define POLL_MS 20
#define PROBE_TIMEOUT_MS 500
#define MAX_ATTEMPTS 5
#define MAX_ADMIN_ARGS 32
#define N_BASE_ENV 4 /* CORRAL_HTTP_LISTEN, CORRAL_REDIS_URL, CORRAL_DATA_DIR, CORRAL_LOG_LEVEL */

/* Finds the binary (see relay_proc.h). Returns 0 with its path in r->exe, or -1 with a message on stderr. */
static int find_relay(cr_test_relay_t *r)
{
    const char *bin = getenv("CORRAL_RELAY_BIN"), *dir = getenv("CORRAL_BINARY_DIR");
    if (bin != NULL && bin[0] != '\0') {
        snprintf(r->exe, sizeof(r->exe), "%s", bin);
    } else if (dir != NULL && dir[0] != '\0') {
        snprintf(r->exe, sizeof(r->exe), "%s/bin/corral-relay", dir);
    } else {
#ifdef CORRAL_BINARY_DIR_DEFAULT
        snprintf(r->exe, sizeof(r->exe), "%s/bin/corral-relay", CORRAL_BINARY_DIR_DEFAULT);
#else
        fprintf(stderr, "relay_proc: where is corral-relay? Set CORRAL_RELAY_BIN or CORRAL_BINARY_DIR\n");
        return -1;
#endif
    }
    if (access(r->exe, X_OK) != 0) {
        fprintf(stderr, "relay_proc: %s: %s (build it, or set CORRAL_RELAY_BIN or CORRAL_BINARY_DIR)\n", r->exe,
                strerror(errno));
        return -1;
    }
    return 0;
}

static void free_env(cr_test_relay_t *r)
{
    for (size_t i = 0; r->_env != NULL && r->_env[i] != NULL; ++i)
        free(r->_env[i]);
    free(r->_env);
    r->_env = NULL;
}

/* Copies the environment the relay runs with into r->_env; the first entry is CORRAL_HTTP_LISTEN, rewritten by
 * set_port. */
static int make_env(cr_test_relay_t *r, const char *redis_url, const char *const *extra)
{
    size_t n = 0;
    while (extra != NULL && extra[n] != NULL)
        ++n;
    if ((r->_env = calloc(N_BASE_ENV + n + 1, sizeof(*r->_env))) == NULL)
        goto nomem;
    if (asprintf(&r->_env[0], "CORRAL_HTTP_LISTEN=127.0.0.1:0") < 0 ||
        asprintf(&r->_env[1], "CORRAL_REDIS_URL=%s", redis_url != NULL ? redis_url : "") < 0 ||
        asprintf(&r->_env[2], "CORRAL_DATA_DIR=%s", r->dir) < 0 ||
        asprintf(&r->_env[3], "CORRAL_LOG_LEVEL=debug") < 0)
        goto nomem;
    for (size_t i = 0; i < n; ++i)
        if ((r->_env[N_BASE_ENV + i] = strdup(extra[i])) == NULL)
            goto nomem;
    return 0;
nomem:
    fprintf(stderr, "relay_proc: out of memory\n");
    return -1;
}

static int set_port(cr_test_relay_t *r, int port)
{
    char *listen;
    if (asprintf(&listen, "CORRAL_HTTP_LISTEN=127.0.0.1:%d", port) < 0) {
        fprintf(stderr, "relay_proc: out of memory\n");
        return -1;
    }
    free(r->_env[0]);
    r->_env[0] = listen;
    r->port = port;
    snprintf(r->url, sizeof(r->url), "http://127.0.0.1:%d", port);
    return 0;
}

/* The HTTP status of GET /healthz on 127.0.0.1:port, or 0 when nothing answered within PROBE_TIMEOUT_MS. A raw
 * HTTP/1.1 request: the probe must not depend on the client under test. */
static int healthz_status(int port)
{
    struct sockaddr_in sin;
    struct timeval tv = {0, PROBE_TIMEOUT_MS * 1000};
    char req[128], resp[64];
    size_t got = 0;
    int64_t deadline = cr_test_now_ms() + PROBE_TIMEOUT_MS;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), status = 0, len;
    if (fd < 0)
        return 0;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    len = snprintf(req, sizeof(req), "GET /healthz HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nConnection: close\r\n\r\n", port);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)); /* bounds connect and send */
    if (connect(fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || send(fd, req, (size_t)len, MSG_NOSIGNAL) != len)
        goto done;
    while (got < sizeof(resp) - 1 && memchr(resp, '\n', got) == NULL) {
        struct pollfd pfd = {fd, POLLIN, 0};
        int64_t left = deadline - cr_test_now_ms();
        ssize_t n;
        if (left <= 0 || poll(&pfd, 1, (int)left) <= 0)
            goto done;
        if ((n = recv(fd, resp + got, sizeof(resp) - 1 - got, 0)) <= 0)
            break;
        got += (size_t)n;
    }
    resp[got] = '\0';
    if (sscanf(resp, "HTTP/1.%*d %d", &status) != 1)
        status = 0;
done:
    close(fd);
    return status;
}

static void print_tail(cr_test_relay_t *r)
{
    fprintf(stderr, "relay_proc: last lines of %s:\n%s\n", r->log, cr_test_relay_log_tail(r));
}

static void describe_exit(char *out, size_t outlen, int status)
{
    if (status >= 0 && WIFEXITED(status))
        snprintf(out, outlen, "exited with status %d", WEXITSTATUS(status));
    else if (status >= 0 && WIFSIGNALED(status))
        snprintf(out, outlen, "was killed by signal %d", WTERMSIG(status));
    else
        snprintf(out, outlen, "exited");
}

static void forget_pid(cr_test_relay_t *r)
{
    r->pid = 0;
    cr_test_slot_set_pid(r->_slot, 0);
}

/* Waits until the child answers /healthz. Returns 0, 1 when it exited because it could not bind its port, or -1. */
static int wait_ready(cr_test_relay_t *r, off_t log_from)
{
    int64_t deadline = cr_test_now_ms() + READY_TIMEOUT_MS;
    for (;;) {
        int status;
        if (cr_test_reap(r->pid, 0, &status)) {
            char *text = cr_test_file_read(r->log, log_from, 1 << 20), how[64];
            int bind_failed = text != NULL && (strcasestr(text, "address already in use") != NULL ||
                                               strstr(text, "EADDRINUSE") != NULL);
            free(text);
            forget_pid(r);
            if (bind_failed)
                return 1;
            describe_exit(how, sizeof(how), status);
            fprintf(stderr, "relay_proc: %s %s before /healthz answered\n", r->exe, how);
            print_tail(r);
            return -1;
        }
        /* 200 from someone else who holds the port while ours fails to bind does not count */
        if (healthz_status(r->port) == 200 && cr_test_pid_listens(r->pid, r->port) != 0)
            return 0;
        if (cr_test_now_ms() > deadline) {
            fprintf(stderr, "relay_proc: %s on port %d did not answer GET /healthz with 200 within %d ms\n", r->exe,
                    r->port, READY_TIMEOUT_MS);
            print_tail(r);
            kill(r->pid, SIGKILL);
            cr_test_reap(r->pid, 1, NULL);
            forget_pid(r);
            return -1;
        }
        cr_test_sleep_ms(POLL_MS);
    }
}

/* Runs the relay until it answers; new_port picks a fresh port after a failed bind, else it retries the same one. */
static int run(cr_test_relay_t *r, int new_port)
{
    for (int attempt = 1; attempt <= MAX_ATTEMPTS; ++attempt) {
        const char *argv[] = {r->exe, NULL};
        off_t from = cr_test_file_size(r->log);
        int logfd, ret;
        if (new_port) {
            int port = cr_test_free_port();
            if (port < 0) {
                fprintf(stderr, "relay_proc: no free loopback port: %s\n", strerror(errno));
                return -1;
            }
            if (set_port(r, port) != 0)
                return -1;
        }
        if ((logfd = open(r->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
            fprintf(stderr, "relay_proc: %s: %s\n", r->log, strerror(errno));
            return -1;
        }
        r->pid = cr_test_spawn(r->exe, argv, (const char *const *)r->_env, logfd, logfd);
        close(logfd);
        if (r->pid < 0) {
            r->pid = 0;
            return -1;
        }
        cr_test_slot_set_pid(r->_slot, r->pid);
        if ((ret = wait_ready(r, from)) <= 0)
            return ret;
        if (!new_port)
            cr_test_sleep_ms(200); /* the same port: give whoever holds it a moment */
    }
    fprintf(stderr, "relay_proc: corral-relay could not bind a port after %d attempts\n", MAX_ATTEMPTS);
    print_tail(r);
    return -1;
}

int cr_test_relay_start(cr_test_relay_t *r, const char *redis_url, const char *const *extra_env)
{
    if (r->pid > 0 || r->_slot != 0) {
        fprintf(stderr, "relay_proc: already started (stop it first)\n");
        return -1;
    }
    memset(r, 0, sizeof(*r));
    if (find_relay(r) != 0)
        return -1;
    /* short: the embedded Redis puts its unix socket (sun_path, 107 bytes) in here */
    if (cr_test_make_temp_dir(r->dir, sizeof(r->dir), "corral-relay", 80) != 0)
        return -1;
    if ((size_t)snprintf(r->log, sizeof(r->log), "%s/relay.log", r->dir) >= sizeof(r->log) ||
        (r->_slot = cr_test_slot_add(r->dir, STOP_GRACE_MS)) < 0) {
        r->_slot = 0;
        cr_test_rm_rf(r->dir);
        r->dir[0] = '\0';
        return -1;
    }
    if (make_env(r, redis_url, extra_env) != 0 || run(r, 1) != 0) {
        cr_test_relay_stop(r);
        return -1;
    }
    return 0;
}

void cr_test_relay_stop(cr_test_relay_t *r)
{
    if (r->pid > 0)
        cr_test_terminate(r->pid, STOP_GRACE_MS);
    cr_test_slot_set_pid(r->_slot, 0);
    if (r->log[0] != '\0')
        cr_test_file_tail(r->_tail, sizeof(r->_tail), r->log); /* kept for cr_test_relay_log_tail */
    if (r->_slot > 0)
        cr_test_slot_stop(r->_slot); /* removes the dir */
    else if (r->dir[0] != '\0')
        cr_test_rm_rf(r->dir);
    free_env(r);
    r->pid = 0;
    r->dir[0] = '\0';
    r->log[0] = '\0';
    r->_slot = 0;
}

int cr_test_relay_kill(cr_test_relay_t *r)
{
    return cr_test_slot_kill(r->_slot, &r->pid);
}

int cr_test_relay_restart(cr_test_relay_t *r)
{
    if (r->_slot == 0 || r->dir[0] == '\0' || r->port <= 0 || r->_env == NULL) {
        fprintf(stderr, "relay_proc: restart needs a relay that was started and not stopped\n");
        return -1;
    }
    if (r->pid > 0) {
        cr_test_terminate(r->pid, STOP_GRACE_MS);
        forget_pid(r);
    }
    return run(r, 0);
}

const char *cr_test_relay_log_tail(cr_test_relay_t *r)
{
    if (r->log[0] != '\0')
        cr_test_file_tail(r->_tail, sizeof(r->_tail), r->log);
    else if (r->_tail[0] == '\0')
        snprintf(r->_tail, sizeof(r->_tail), "(empty)");
    return r->_tail; /* after a stop (or a failed start): the tail kept before the dir went away */
}

static int is_space(char c)
{
    return c == ' ' || c == '\t' || c == '\r' || c == '\n';
}

int cr_test_relay_admin(const cr_test_relay_t *r, char *out, size_t outlen, ...)
{
    const char *argv[MAX_ADMIN_ARGS + 3];
    size_t argc = 0, got = 0;
    char scratch[4096], how[64];
    int pipefd[2], logfd, status = -1, timed_out = 0, into_out;
    int64_t deadline = cr_test_now_ms() + ADMIN_TIMEOUT_MS;
    pid_t pid;
    va_list ap;
    if (out != NULL && outlen > 0)
        out[0] = '\0';
    if (r->_env == NULL || r->exe[0] == '\0' || r->log[0] == '\0') {
        fprintf(stderr, "relay_proc: admin needs a relay that was started and not stopped\n");
        return -1;
    }
    argv[argc++] = r->exe;
    argv[argc++] = "admin";
    va_start(ap, outlen);
    for (const char *a; (a = va_arg(ap, const char *)) != NULL;) {
        if (argc == MAX_ADMIN_ARGS + 2) {
            va_end(ap);
            fprintf(stderr, "relay_proc: admin takes at most %d arguments\n", MAX_ADMIN_ARGS);
            return -1;
        }
        argv[argc++] = a;
    }
    va_end(ap);
    argv[argc] = NULL;
    if (pipe2(pipefd, O_CLOEXEC) != 0) {
        fprintf(stderr, "relay_proc: pipe: %s\n", strerror(errno));
        return -1;
    }
    if ((logfd = open(r->log, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
        fprintf(stderr, "relay_proc: %s: %s\n", r->log, strerror(errno));
        close(pipefd[0]);
        close(pipefd[1]);
        return -1;
    }
    pid = cr_test_spawn(r->exe, argv, (const char *const *)r->_env, pipefd[1], logfd);
    close(pipefd[1]);
    close(logfd);
    if (pid < 0) {
        close(pipefd[0]);
        return -1;
    }
    /* all of stdout, keeping what fits; a full pipe must never block the child */
    for (;;) {
        struct pollfd pfd = {pipefd[0], POLLIN, 0};
        int64_t left = deadline - cr_test_now_ms();
        ssize_t n;
        if (left <= 0) {
            timed_out = 1;
            break;
        }
        if (poll(&pfd, 1, (int)left) < 0 && errno != EINTR)
            break;
        if (pfd.revents == 0)
            continue;
        into_out = out != NULL && got + 1 < outlen;
        n = into_out ? read(pipefd[0], out + got, outlen - 1 - got) : read(pipefd[0], scratch, sizeof(scratch));
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            break;
        if (into_out)
            got += (size_t)n;
    }
    close(pipefd[0]);
    if (timed_out) {
        kill(pid, SIGKILL);
        cr_test_reap(pid, 1, NULL);
        fprintf(stderr, "relay_proc: `corral-relay admin %s ...` took more than %d ms\n", argv[2] != NULL ? argv[2] : "",
                ADMIN_TIMEOUT_MS);
        return -1;
    }
    cr_test_reap(pid, 1, &status);
    if (out != NULL && outlen > 0) {
        size_t start = 0;
        out[got] = '\0';
        while (got > 0 && is_space(out[got - 1]))
            out[--got] = '\0';
        while (is_space(out[start]))
            ++start;
        memmove(out, out + start, got - start + 1);
    }
    if (status < 0 || !WIFEXITED(status)) {
        describe_exit(how, sizeof(how), status);
        fprintf(stderr, "relay_proc: `corral-relay admin %s ...` %s\n", argv[2] != NULL ? argv[2] : "", how);
        return -1;
    }
    return WEXITSTATUS(status);
}

long long cr_test_relay_metric(const cr_test_relay_t *r, const char *name)
{
    char url[256];
    cr_test_resp_t resp = {0};
    long long v = -1;
    size_t n = strlen(name);
    snprintf(url, sizeof(url), "%s/metrics", r->url);
    if (cr_test_http(&resp, "GET", url, NULL, NULL, NULL, 0, 0) == 0 && resp.status == 200 && resp.body != NULL)
        for (const char *p = resp.body; p != NULL && *p != '\0'; p = strchr(p, '\n') != NULL ? strchr(p, '\n') + 1 : NULL)
            if (strncmp(p, name, n) == 0 && p[n] == ' ') {
                v = strtoll(p + n + 1, NULL, 10);
                break;
            }
    cr_test_resp_free(&resp);
    return v;
}
