/* redis_server.c — starts, crashes, restarts and cleans up throwaway redis-server children for integration tests. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "redis_server.h"
#include <errno.h>
#include <stdarg.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "proc.h"

#define READY_TIMEOUT_MS 10000
#define STOP_GRACE_MS 5000
#define POLL_MS 10
#define MAX_ATTEMPTS 5

static void log_path(const cr_test_redis_t *r, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/redis.log", r->dir);
}

static void log_tail(const cr_test_redis_t *r)
{
    char path[PATH_MAX + 16], tail[2049];
    log_path(r, path, sizeof(path));
    fprintf(stderr, "redis_server: last lines of %s:\n%s\n", path, cr_test_file_tail(tail, sizeof(tail), path));
}

/* Makes r->dir (absolute, short enough for the unix socket's path) and registers it for cleanup. */
static int make_dir(cr_test_redis_t *r)
{
    static const char sockname[] = "/redis.sock";
    size_t len;
    if (cr_test_make_temp_dir(r->dir, sizeof(r->dir), "corral-redis", sizeof(r->sock) - sizeof(sockname)) != 0)
        return -1;
    len = strlen(r->dir);
    memcpy(r->sock, r->dir, len); /* fits: make_temp_dir checked the length */
    memcpy(r->sock + len, sockname, sizeof(sockname));
    if ((r->slot = cr_test_slot_add(r->dir, STOP_GRACE_MS)) < 0) {
        r->slot = 0;
        cr_test_rm_rf(r->dir);
        r->dir[0] = '\0';
        return -1;
    }
    return 0;
}

/* Forks and execs redis-server on r->port and r->dir. Returns 0 (r->pid set) or -1. */
static int spawn(cr_test_redis_t *r, const char *exe)
{
    char port[16], logfile[PATH_MAX + 16];
    const char *argv[] = {exe, "--port", port, "--bind", "127.0.0.1", "--dir", r->dir,
                          "--unixsocket", r->sock, "--unixsocketperm", "700", "--appendonly", "yes",
                          "--appendfsync", "everysec", "--save", "", "--daemonize", "no", "--logfile", logfile,
                          "--protected-mode", "yes", NULL};
    int logfd;
    pid_t pid;
    snprintf(port, sizeof(port), "%d", r->port);
    log_path(r, logfile, sizeof(logfile));
    /* redis writes its log there; early errors (bad arguments) go to stderr, so stdout/stderr append there too */
    if ((logfd = open(logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
        fprintf(stderr, "redis_server: %s: %s\n", logfile, strerror(errno));
        return -1;
    }
    pid = cr_test_spawn(exe, argv, NULL, logfd, logfd);
    close(logfd);
    if (pid < 0)
        return -1;
    r->pid = pid;
    cr_test_slot_set_pid(r->slot, pid);
    return 0;
}

static redisContext *connect_tcp(int port, long timeout_ms, int quiet)
{
    struct timeval tv = {timeout_ms / 1000, (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout("127.0.0.1", port, tv);
    if (c == NULL || c->err) {
        if (!quiet)
            fprintf(stderr, "redis_server: connect 127.0.0.1:%d: %s\n", port, c != NULL ? c->errstr : "no memory");
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        if (!quiet)
            fprintf(stderr, "redis_server: setting timeouts on 127.0.0.1:%d failed\n", port);
        redisFree(c);
        return NULL;
    }
    return c;
}

/* 1 when the server on r->port answers PONG and is our child (not someone else who took the port), else 0. */
static int answers(const cr_test_redis_t *r)
{
    redisContext *c = connect_tcp(r->port, 500, 1);
    redisReply *reply;
    int ready = 0;
    if (c == NULL)
        return 0;
    reply = redisCommand(c, "PING");
    if (reply != NULL && reply->type == REDIS_REPLY_STATUS && strcmp(reply->str, "PONG") == 0) {
        freeReplyObject(reply);
        reply = redisCommand(c, "INFO server");
        if (reply != NULL && reply->type == REDIS_REPLY_STRING) {
            const char *p = strstr(reply->str, "process_id:");
            ready = p != NULL && strtol(p + strlen("process_id:"), NULL, 10) == (long)r->pid;
        }
    }
    if (reply != NULL)
        freeReplyObject(reply);
    redisFree(c);
    return ready;
}

static void forget_pid(cr_test_redis_t *r)
{
    r->pid = 0;
    cr_test_slot_set_pid(r->slot, 0);
}

/* Waits until the child answers. Returns 0, 1 when it exited because it could not bind its port, or -1. */
static int wait_ready(cr_test_redis_t *r, off_t log_from)
{
    int64_t deadline = cr_test_now_ms() + READY_TIMEOUT_MS;
    for (;;) {
        if (cr_test_reap(r->pid, 0, NULL)) {
            char path[PATH_MAX + 16], *text;
            int bind_failed;
            log_path(r, path, sizeof(path));
            text = cr_test_file_read(path, log_from, 65536);
            bind_failed = text != NULL && (strstr(text, "Address already in use") != NULL ||
                                           strstr(text, "Failed listening on port") != NULL);
            free(text);
            forget_pid(r);
            if (bind_failed)
                return 1;
            fprintf(stderr, "redis_server: redis-server exited before answering PING\n");
            log_tail(r);
            return -1;
        }
        if (answers(r))
            return 0;
        if (cr_test_now_ms() > deadline) {
            fprintf(stderr, "redis_server: redis-server on port %d did not answer PING within %d ms\n", r->port,
                    READY_TIMEOUT_MS);
            log_tail(r);
            kill(r->pid, SIGKILL);
            cr_test_reap(r->pid, 1, NULL);
            forget_pid(r);
            return -1;
        }
        cr_test_sleep_ms(POLL_MS);
    }
}

/* Runs redis in r->dir until it answers; new_port picks a fresh port after a failed bind, else it retries the
 * same one. */
static int run(cr_test_redis_t *r, int new_port)
{
    char exe[PATH_MAX];
    if (cr_test_find_program(exe, sizeof(exe), "redis-server") != 0) {
        fprintf(stderr, "redis-server not found: run ./deploy/install-deps.sh\n");
        return -1;
    }
    for (int attempt = 1; attempt <= MAX_ATTEMPTS; ++attempt) {
        char path[PATH_MAX + 16];
        off_t from;
        int ret;
        log_path(r, path, sizeof(path));
        from = cr_test_file_size(path);
        if (new_port && (r->port = cr_test_free_port()) < 0) {
            fprintf(stderr, "redis_server: no free loopback port: %s\n", strerror(errno));
            return -1;
        }
        snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%d", r->port);
        if (spawn(r, exe) != 0)
            return -1;
        if ((ret = wait_ready(r, from)) <= 0)
            return ret;
        if (!new_port)
            cr_test_sleep_ms(200); /* the same port: give whoever holds it a moment */
    }
    fprintf(stderr, "redis_server: redis-server could not bind a port after %d attempts\n", MAX_ATTEMPTS);
    log_tail(r);
    return -1;
}

int cr_test_redis_start(cr_test_redis_t *r)
{
    if (r->pid > 0 || r->slot != 0) {
        fprintf(stderr, "redis_server: already started (stop it first)\n");
        return -1;
    }
    memset(r, 0, sizeof(*r));
    if (make_dir(r) != 0)
        return -1;
    if (run(r, 1) != 0) {
        cr_test_redis_stop(r);
        return -1;
    }
    return 0;
}

void cr_test_redis_stop(cr_test_redis_t *r)
{
    if (r->slot > 0) {
        cr_test_slot_stop(r->slot);
    } else {
        if (r->pid > 0)
            cr_test_terminate(r->pid, STOP_GRACE_MS);
        if (r->dir[0] != '\0')
            cr_test_rm_rf(r->dir);
    }
    r->pid = 0;
    r->dir[0] = '\0';
    r->sock[0] = '\0';
    r->slot = 0;
}

int cr_test_redis_kill(cr_test_redis_t *r)
{
    return cr_test_slot_kill(r->slot, &r->pid);
}

int cr_test_redis_restart(cr_test_redis_t *r)
{
    if (r->pid > 0 || r->slot == 0 || r->dir[0] == '\0' || r->port <= 0) {
        fprintf(stderr, "redis_server: restart needs a server that was started and is not running\n");
        return -1;
    }
    return run(r, 0);
}

redisContext *cr_test_redis_connect(const cr_test_redis_t *r)
{
    return connect_tcp(r->port, 10000, 0);
}

const char *cr_test_redis_url(const cr_test_redis_t *r)
{
    return r->url;
}

long long cr_test_redis_int(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    redisReply *x;
    long long v;
    va_start(ap, fmt);
    x = redisvCommand(c, fmt, ap);
    va_end(ap);
    v = x != NULL && x->type == REDIS_REPLY_INTEGER ? x->integer : -999;
    if (x != NULL)
        freeReplyObject(x);
    return v;
}
