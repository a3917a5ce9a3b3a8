/* redis_server.c — starts, crashes, restarts and cleans up throwaway redis-server children for integration tests. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "redis_server.h"
#include <arpa/inet.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/time.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#define READY_TIMEOUT_MS 10000
#define STOP_GRACE_MS 5000
#define POLL_MS 10
#define MAX_ATTEMPTS 5
#define MAX_SERVERS 32

/* Every server this process started and has not stopped yet. Only async-signal-safe work touches it from the
 * signal handler; `owner` keeps forked children of a test (which inherit the atexit handler) off our servers. */
static struct {
    volatile sig_atomic_t used;
    pid_t owner;
    volatile pid_t pid;
    char dir[PATH_MAX];
} servers[MAX_SERVERS];
static int hooks_installed;

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

/* Reaps pid if it has exited. Returns 1 when it is gone (reaped here or elsewhere), 0 while it runs. */
static int reap(pid_t pid, int block)
{
    for (;;) {
        pid_t got = waitpid(pid, NULL, block ? 0 : WNOHANG);
        if (got == pid || (got < 0 && errno == ECHILD))
            return 1;
        if (got == 0)
            return 0;
        if (errno != EINTR)
            return 1;
    }
}

/* SIGTERM, up to STOP_GRACE_MS for it to exit, then SIGKILL. Async-signal-safe. */
static void terminate(pid_t pid)
{
    if (kill(pid, SIGTERM) != 0 && errno == ESRCH) {
        reap(pid, 0);
        return;
    }
    for (int waited = 0; waited < STOP_GRACE_MS; waited += POLL_MS) {
        if (reap(pid, 0))
            return;
        sleep_ms(POLL_MS);
    }
    kill(pid, SIGKILL);
    reap(pid, 1);
}

/* Removes everything inside the directory open as dfd (depth-limited). Uses getdents64 rather than opendir so
 * that it is async-signal-safe (no malloc). Returns 0 when it is empty. */
static int rm_contents(int dfd, int depth)
{
    char buf[4096] __attribute__((aligned(8)));
    int removed;
    do {
        ssize_t n;
        removed = 0;
        if (lseek(dfd, 0, SEEK_SET) < 0)
            return -1;
        while ((n = getdents64(dfd, buf, sizeof(buf))) > 0) {
            for (ssize_t off = 0; off < n;) {
                struct dirent64 *d = (struct dirent64 *)(buf + off);
                const char *name = d->d_name;
                off += d->d_reclen;
                if (strcmp(name, ".") == 0 || strcmp(name, "..") == 0)
                    continue;
                if (unlinkat(dfd, name, 0) == 0) {
                    ++removed;
                } else if ((errno == EISDIR || errno == EPERM) && depth < 8) {
                    int sub = openat(dfd, name, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
                    if (sub >= 0) {
                        rm_contents(sub, depth + 1);
                        close(sub);
                    }
                    if (unlinkat(dfd, name, AT_REMOVEDIR) == 0)
                        ++removed;
                }
            }
        }
    } while (removed > 0);
    return 0;
}

static void rm_rf(const char *dir)
{
    int dfd = open(dir, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC);
    if (dfd >= 0) {
        rm_contents(dfd, 0);
        close(dfd);
    }
    rmdir(dir);
}

/* Stops server i (if this process owns it) and removes its dir. Async-signal-safe. */
static void stop_slot(int i)
{
    if (!servers[i].used || servers[i].owner != getpid())
        return;
    if (servers[i].pid > 0) {
        terminate(servers[i].pid);
        servers[i].pid = 0;
    }
    if (servers[i].dir[0] != '\0')
        rm_rf(servers[i].dir);
    servers[i].dir[0] = '\0';
    servers[i].used = 0;
}

static void stop_all(void)
{
    for (int i = 0; i < MAX_SERVERS; ++i)
        stop_slot(i);
}

static void on_signal(int sig)
{
    int saved = errno;
    stop_all();
    signal(sig, SIG_DFL);
    raise(sig); /* delivered when the handler returns: the process dies of the signal as it would have */
    errno = saved;
}

static void install_hooks(void)
{
    static const int sigs[] = {SIGINT, SIGTERM, SIGHUP, SIGPIPE}; /* the last two: a closed terminal, `| head` */
    if (hooks_installed)
        return;
    hooks_installed = 1;
    atexit(stop_all);
    for (size_t i = 0; i < sizeof(sigs) / sizeof(sigs[0]); ++i) {
        struct sigaction old, sa;
        /* leave a handler the test installed itself alone */
        if (sigaction(sigs[i], NULL, &old) != 0 || old.sa_handler != SIG_DFL || (old.sa_flags & SA_SIGINFO))
            continue;
        memset(&sa, 0, sizeof(sa));
        sa.sa_handler = on_signal;
        sigemptyset(&sa.sa_mask);
        sigaction(sigs[i], &sa, NULL);
    }
}

/* Finds redis-server on PATH, then /usr/bin. Returns 0 and the path in out, or -1. */
static int find_redis_server(char *out, size_t outlen)
{
    const char *path = getenv("PATH");
    while (path != NULL && *path != '\0') {
        const char *end = strchr(path, ':');
        size_t n = end != NULL ? (size_t)(end - path) : strlen(path);
        if (n > 0 && (size_t)snprintf(out, outlen, "%.*s/redis-server", (int)n, path) < outlen &&
            access(out, X_OK) == 0)
            return 0;
        path = end != NULL ? end + 1 : NULL;
    }
    snprintf(out, outlen, "/usr/bin/redis-server");
    return access(out, X_OK) == 0 ? 0 : -1;
}

/* A loopback TCP port nobody listens on right now (another process may still take it before redis binds it:
 * the caller retries). Returns the port or -1. */
static int free_port(void)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), port = -1;
    if (fd < 0)
        return -1;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (bind(fd, (struct sockaddr *)&sin, sizeof(sin)) == 0 && getsockname(fd, (struct sockaddr *)&sin, &len) == 0)
        port = ntohs(sin.sin_port);
    close(fd);
    return port;
}

/* Makes r->dir (absolute, short enough for the unix socket's path) and registers it for cleanup. */
static int make_dir(cr_test_redis_t *r)
{
    static const char leaf[] = "/corral-redis-XXXXXX", sockname[] = "/redis.sock";
    const char *tmp = getenv("TMPDIR");
    char tmpl[PATH_MAX];
    int slot = -1;
    if (tmp == NULL || tmp[0] == '\0' || strlen(tmp) + sizeof(leaf) + sizeof(sockname) > sizeof(r->sock))
        tmp = "/tmp";
    for (int i = 0; i < MAX_SERVERS && slot < 0; ++i)
        if (!servers[i].used)
            slot = i;
    if (slot < 0) {
        fprintf(stderr, "redis_server: more than %d redis-servers at once\n", MAX_SERVERS);
        return -1;
    }
    snprintf(tmpl, sizeof(tmpl), "%s%s", tmp, leaf);
    if (mkdtemp(tmpl) == NULL) {
        fprintf(stderr, "redis_server: mkdtemp %s: %s\n", tmpl, strerror(errno));
        return -1;
    }
    if (realpath(tmpl, r->dir) == NULL || strlen(r->dir) + sizeof(sockname) > sizeof(r->sock)) {
        fprintf(stderr, "redis_server: temp dir %s: cannot resolve it or it is too long for a unix socket\n", tmpl);
        rmdir(tmpl);
        r->dir[0] = '\0';
        return -1;
    }
    memcpy(r->sock, r->dir, strlen(r->dir)); /* fits: checked above */
    memcpy(r->sock + strlen(r->dir), sockname, sizeof(sockname));
    install_hooks();
    servers[slot].owner = getpid();
    servers[slot].pid = 0;
    memcpy(servers[slot].dir, r->dir, sizeof(r->dir));
    servers[slot].used = 1;
    r->slot = slot + 1;
    return 0;
}

static void log_path(const cr_test_redis_t *r, char *out, size_t outlen)
{
    snprintf(out, outlen, "%s/redis.log", r->dir);
}

static off_t log_size(const cr_test_redis_t *r)
{
    char path[PATH_MAX + 16];
    struct stat st;
    log_path(r, path, sizeof(path));
    return stat(path, &st) == 0 ? st.st_size : 0;
}

/* Reads the log from `from` (at most 64 KiB), NUL-terminated; NULL when there is nothing. */
static char *log_read(const cr_test_redis_t *r, off_t from)
{
    char path[PATH_MAX + 16], *buf;
    ssize_t n;
    int fd;
    log_path(r, path, sizeof(path));
    if ((fd = open(path, O_RDONLY | O_CLOEXEC)) < 0)
        return NULL;
    if ((buf = malloc(65536 + 1)) == NULL) {
        close(fd);
        return NULL;
    }
    n = pread(fd, buf, 65536, from);
    close(fd);
    if (n <= 0) {
        free(buf);
        return NULL;
    }
    buf[n] = '\0';
    return buf;
}

static void log_tail(const cr_test_redis_t *r)
{
    off_t size = log_size(r);
    char *text = log_read(r, size > 2048 ? size - 2048 : 0);
    fprintf(stderr, "redis_server: last lines of %s/redis.log:\n%s\n", r->dir, text != NULL ? text : "(empty)");
    free(text);
}

/* Forks and execs redis-server on r->port and r->dir. Returns 0 (r->pid set) or -1. */
static int spawn(cr_test_redis_t *r, const char *exe)
{
    char port[16], logfile[PATH_MAX + 16];
    const char *argv[] = {exe, "--port", port, "--bind", "127.0.0.1", "--dir", r->dir,
                          "--unixsocket", r->sock, "--unixsocketperm", "700", "--appendonly", "yes",
                          "--appendfsync", "everysec", "--save", "", "--daemonize", "no", "--logfile", logfile,
                          "--protected-mode", "yes", NULL};
    pid_t parent = getpid(), pid;
    int logfd, nullfd;
    snprintf(port, sizeof(port), "%d", r->port);
    log_path(r, logfile, sizeof(logfile));
    /* redis writes its log there; early errors (bad arguments) go to stderr, so stdout/stderr append there too */
    if ((logfd = open(logfile, O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600)) < 0) {
        fprintf(stderr, "redis_server: %s: %s\n", logfile, strerror(errno));
        return -1;
    }
    if ((nullfd = open("/dev/null", O_RDONLY | O_CLOEXEC)) < 0) {
        fprintf(stderr, "redis_server: /dev/null: %s\n", strerror(errno));
        close(logfd);
        return -1;
    }
    fflush(NULL);
    pid = fork();
    if (pid == 0) {
        sigset_t all;
        /* die with the test, even when it crashes; the parent may already be gone before prctl took effect */
        if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
            _exit(127);
        signal(SIGINT, SIG_DFL);
        signal(SIGTERM, SIG_DFL);
        signal(SIGHUP, SIG_DFL);
        sigemptyset(&all);
        sigprocmask(SIG_SETMASK, &all, NULL);
        if (dup2(nullfd, 0) < 0 || dup2(logfd, 1) < 0 || dup2(logfd, 2) < 0)
            _exit(127);
        if (close_range(3, ~0U, 0) != 0)
            for (int fd = 3; fd < 1024; ++fd)
                close(fd);
        execv(exe, (char *const *)argv);
        _exit(127);
    }
    close(logfd);
    close(nullfd);
    if (pid < 0) {
        fprintf(stderr, "redis_server: fork: %s\n", strerror(errno));
        return -1;
    }
    r->pid = pid;
    servers[r->slot - 1].pid = pid;
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

/* Waits until the child answers. Returns 0, 1 when it exited because it could not bind its port, or -1. */
static int wait_ready(cr_test_redis_t *r, off_t log_from)
{
    int64_t deadline = now_ms() + READY_TIMEOUT_MS;
    for (;;) {
        if (reap(r->pid, 0)) {
            char *text = log_read(r, log_from);
            int bind_failed = text != NULL && (strstr(text, "Address already in use") != NULL ||
                                               strstr(text, "Failed listening on port") != NULL);
            free(text);
            r->pid = 0;
            servers[r->slot - 1].pid = 0;
            if (bind_failed)
                return 1;
            fprintf(stderr, "redis_server: redis-server exited before answering PING\n");
            log_tail(r);
            return -1;
        }
        if (answers(r))
            return 0;
        if (now_ms() > deadline) {
            fprintf(stderr, "redis_server: redis-server on port %d did not answer PING within %d ms\n", r->port,
                    READY_TIMEOUT_MS);
            log_tail(r);
            kill(r->pid, SIGKILL);
            reap(r->pid, 1);
            r->pid = 0;
            servers[r->slot - 1].pid = 0;
            return -1;
        }
        sleep_ms(POLL_MS);
    }
}

/* Runs redis in r->dir until it answers; new_port picks a fresh port after a failed bind, else it retries the
 * same one. */
static int run(cr_test_redis_t *r, int new_port)
{
    char exe[PATH_MAX];
    if (find_redis_server(exe, sizeof(exe)) != 0) {
        fprintf(stderr, "redis-server not found: run ./deploy/install-deps.sh\n");
        return -1;
    }
    for (int attempt = 1; attempt <= MAX_ATTEMPTS; ++attempt) {
        off_t from = log_size(r);
        int ret;
        if (new_port && (r->port = free_port()) < 0) {
            fprintf(stderr, "redis_server: no free loopback port: %s\n", strerror(errno));
            return -1;
        }
        snprintf(r->url, sizeof(r->url), "redis://127.0.0.1:%d", r->port);
        if (spawn(r, exe) != 0)
            return -1;
        if ((ret = wait_ready(r, from)) <= 0)
            return ret;
        if (!new_port)
            sleep_ms(200); /* the same port: give whoever holds it a moment */
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
    if (r->slot > 0 && r->slot <= MAX_SERVERS) {
        stop_slot(r->slot - 1);
    } else {
        if (r->pid > 0)
            terminate(r->pid);
        if (r->dir[0] != '\0')
            rm_rf(r->dir);
    }
    r->pid = 0;
    r->dir[0] = '\0';
    r->sock[0] = '\0';
    r->slot = 0;
}

int cr_test_redis_kill(cr_test_redis_t *r)
{
    if (r->pid <= 0)
        return -1;
    kill(r->pid, SIGKILL);
    reap(r->pid, 1);
    r->pid = 0;
    if (r->slot > 0)
        servers[r->slot - 1].pid = 0;
    return 0;
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
