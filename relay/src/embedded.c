/* embedded.c — runs redis-server as the relay's child when no redis.url is configured. */
#include "embedded.h"
#include "corral/fs.h"
#include "corral/error.h"
#include "corral/log.h"
#include <errno.h>
#include <hiredis/hiredis.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static int ping(const char *sock)
{
    struct timeval tv = {0, 200000};
    redisContext *c = redisConnectUnixWithTimeout(sock, tv);
    redisReply *r;
    int ok = 0;
    if (c == NULL || c->err) {
        if (c != NULL)
            redisFree(c);
        return 0;
    }
    if ((r = redisCommand(c, "PING")) != NULL) {
        ok = r->type == REDIS_REPLY_STATUS && strcmp(r->str, "PONG") == 0;
        freeReplyObject(r);
    }
    redisFree(c);
    return ok;
}

int relay_embedded_start(relay_embedded_t *e, const char *program, const char *data_dir)
{
    char dir[PATH_MAX], logf[PATH_MAX + 16];
    int status;
    memset(e, 0, sizeof(*e));
    if (realpath(data_dir, dir) == NULL) {
        if (cr_mkdir_p(data_dir, 0700) != 0 || realpath(data_dir, dir) == NULL)
            return cr_error_set(CR_EIO, "data_dir", "cannot create data_dir %s: %s", data_dir, strerror(errno));
    }
    chmod(dir, 0700);
    if ((size_t)snprintf(e->socket_path, sizeof(e->socket_path), "%s/redis.sock", dir) >= sizeof(e->socket_path))
        return cr_error_set(CR_ECONFIG, "data_dir", "data_dir %s is too long for a unix socket path; use a shorter one", dir);
    snprintf(e->url, sizeof(e->url), "unix://%s", e->socket_path);
    snprintf(logf, sizeof(logf), "%s/redis.log", dir);
    unlink(e->socket_path);

    if ((e->pid = fork()) < 0)
        return cr_error_set(CR_EIO, NULL, "fork: %s", strerror(errno));
    if (e->pid == 0) {
        const char *argv[] = {program, "--port", "0", "--unixsocket", e->socket_path, "--unixsocketperm", "700", "--dir", dir,
                              "--appendonly", "yes", "--appendfsync", "everysec", "--save", "", "--daemonize", "no",
                              "--logfile", logf, NULL};
        prctl(PR_SET_PDEATHSIG, SIGTERM); /* never outlive the relay */
        setsid();
        execvp(program, (char *const *)argv);
        fprintf(stderr, "corral-relay: cannot run %s: %s\n", program, strerror(errno));
        _exit(127);
    }
    for (int i = 0; i < 1000; ++i) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        if (waitpid(e->pid, &status, WNOHANG) == e->pid) {
            e->pid = 0;
            if (WIFEXITED(status) && WEXITSTATUS(status) == 127)
                return cr_error_set(CR_EIO, "redis.server",
                                    "%s was not found: install it (apt-get install redis-server, or ./deploy/install-deps.sh) "
                                    "or point redis.url at a Redis you run",
                                    program);
            return cr_error_set(CR_EIO, "redis.server", "the embedded redis-server exited at start; see %s", logf);
        }
        if (ping(e->socket_path)) {
            cr_log(CR_LOG_INFO, "embedded redis: pid %d on %s (AOF, fsync every second)", (int)e->pid, e->socket_path);
            return 0;
        }
        nanosleep(&ts, NULL);
    }
    relay_embedded_stop(e);
    return cr_error_set(CR_EIO, "redis.server", "the embedded redis-server did not answer within 10 s; see %s", logf);
}

void relay_embedded_stop(relay_embedded_t *e)
{
    int status;
    if (e->pid <= 0)
        return;
    kill(e->pid, SIGTERM);
    for (int i = 0; i < 1000; ++i) {
        struct timespec ts = {0, 10 * 1000 * 1000};
        if (waitpid(e->pid, &status, WNOHANG) == e->pid) {
            e->pid = 0;
            return;
        }
        nanosleep(&ts, NULL);
    }
    kill(e->pid, SIGKILL);
    waitpid(e->pid, &status, 0);
    e->pid = 0;
}
