/* redis_server.h — runs a throwaway redis-server (temp dir, free loopback port, AOF on) for integration tests. */
#ifndef CORRAL_TEST_REDIS_SERVER_H
#define CORRAL_TEST_REDIS_SERVER_H

#include <limits.h>
#include <sys/types.h>
#include <hiredis/hiredis.h>

#ifndef PATH_MAX
#define PATH_MAX 4096
/* Runs one command (hiredis format) and returns its integer reply, or -999 when the reply is not an integer. */
long long cr_test_redis_int(redisContext *c, const char *fmt, ...);

#endif

/* One redis-server child. Zero it (or use {0}) before the first cr_test_redis_start. */
typedef struct st_cr_test_redis_t {
    pid_t pid;           /* the redis-server child; 0 when not running */
    int port;            /* its TCP port on 127.0.0.1; kept across kill/restart */
    char dir[PATH_MAX];  /* its temp dir (AOF, log, socket); "" once removed */
    char sock[108];      /* dir + "/redis.sock" (fits sockaddr_un.sun_path) */
    char url[48];        /* "redis://127.0.0.1:PORT" */
    int slot;            /* 1 + its index in the helper's list for atexit/signal cleanup; 0 when none */
} cr_test_redis_t;

/* Makes a temp dir, picks a free port and starts redis-server with AOF (everysec) on it, then waits until it
 * answers PING. Returns 0, or -1 with a message on stderr (e.g. when redis-server is not installed). */
int cr_test_redis_start(cr_test_redis_t *r);

/* Stops it: SIGTERM, wait, SIGKILL after 5 s; removes the temp dir. Idempotent; also done at exit and on
 * SIGINT/SIGTERM/SIGHUP/SIGPIPE for every server still running. */
void cr_test_redis_stop(cr_test_redis_t *r);

/* SIGKILLs it now (a crash) and reaps it, keeping the dir (and its AOF) and the port. Returns 0, or -1 when it
 * was not running. */
int cr_test_redis_kill(cr_test_redis_t *r);

/* Starts it again on the same port and dir (it replays its AOF) and waits until it answers PING (not LOADING).
 * Returns 0 or -1 with a message on stderr. */
int cr_test_redis_restart(cr_test_redis_t *r);

/* A new synchronous TCP connection (10 s connect and command timeouts), or NULL with a message on stderr. Free it
 * with redisFree. */
redisContext *cr_test_redis_connect(const cr_test_redis_t *r);

/* "redis://127.0.0.1:PORT". */
const char *cr_test_redis_url(const cr_test_redis_t *r);

/* Runs one command (hiredis format) and returns its integer reply, or -999 when the reply is not an integer. */
long long cr_test_redis_int(redisContext *c, const char *fmt, ...);

#endif
