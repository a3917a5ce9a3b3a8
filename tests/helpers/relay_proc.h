/* relay_proc.h — runs a real corral-relay process (temp data dir, free loopback port, config by environment) for
 * integration tests, and its `admin` commands against the same Redis. */
#ifndef CORRAL_TEST_RELAY_PROC_H
#define CORRAL_TEST_RELAY_PROC_H

#include <stddef.h>
#include <sys/types.h>
#include "proc.h"

/* One corral-relay child. Zero it (or use {0}) before the first cr_test_relay_start.
 *
 * The binary: $CORRAL_RELAY_BIN when set, else $CORRAL_BINARY_DIR/bin/corral-relay, else
 * CORRAL_BINARY_DIR_DEFAULT "/bin/corral-relay" when that macro is defined at compile time (CMake:
 * target_compile_definitions(corral_test_harness PRIVATE CORRAL_BINARY_DIR_DEFAULT="${CMAKE_BINARY_DIR}")). */
typedef struct st_cr_test_relay_t {
    pid_t pid;            /* the relay; 0 when not running */
    int port;             /* its plain (HTTP/1.1 + h2c) port on 127.0.0.1; kept across kill/restart */
    char url[64];         /* "http://127.0.0.1:PORT" (no trailing slash) */
    char dir[PATH_MAX];   /* its temp dir, also its data_dir (embedded Redis, VAPID keys, ...); "" once removed */
    char log[PATH_MAX];   /* dir + "/relay.log": the relay's stdout and stderr, appended across restarts */
    char exe[PATH_MAX];   /* the corral-relay binary */
    char **_env;          /* every "KEY=VALUE" it runs with (NULL-terminated, malloc'd) */
    int _slot;            /* its cleanup slot (proc.h); 0 when none */
    char _tail[4097];     /* what cr_test_relay_log_tail returns */
} cr_test_relay_t;

/* Makes a temp dir, picks a free port and starts corral-relay with CORRAL_HTTP_LISTEN=127.0.0.1:PORT,
 * CORRAL_REDIS_URL=redis_url ("" for its embedded Redis), CORRAL_DATA_DIR=dir, CORRAL_LOG_LEVEL=debug, then each
 * "KEY=VALUE" of extra_env (NULL-terminated, may be NULL; these win), with stdout and stderr going to r->log. Waits
 * until GET /healthz answers 200 from this very process (polling every 20 ms, up to 10 s); picks another port and
 * tries again when the port was taken. Returns 0, or -1 with a message and the log's tail on stderr (everything
 * cleaned up). */
int cr_test_relay_start(cr_test_relay_t *r, const char *redis_url, const char *const *extra_env);

/* Stops it gracefully: SIGTERM, up to 10 s for in-flight requests and streams to finish, then SIGKILL; removes the
 * dir and frees what start allocated. Idempotent; also done at exit and on SIGINT/SIGTERM/SIGHUP/SIGPIPE for every
 * relay still running. */
void cr_test_relay_stop(cr_test_relay_t *r);

/* SIGKILLs it now (a crash) and reaps it, keeping dir, port and environment for cr_test_relay_restart. Returns 0,
 * or -1 when it was not running. */
int cr_test_relay_kill(cr_test_relay_t *r);

/* Starts it again on the same port, dir and environment and waits for /healthz as start does. A relay still
 * running is first stopped gracefully (SIGTERM, as cr_test_relay_stop, keeping the dir). Returns 0 or -1 with a
 * message and the log's tail on stderr (the dir is kept: cr_test_relay_stop removes it). */
int cr_test_relay_restart(cr_test_relay_t *r);

/* The last ~4 KiB of its log, starting at a line ("(empty)" when there is none), for failure messages. Valid until
 * the next call on r. */
const char *cr_test_relay_log_tail(cr_test_relay_t *r);

/* Runs `corral-relay admin ARG...` (the args NULL-terminated) with the relay's environment, so against the same
 * Redis, e.g. cr_test_relay_admin(r, tok, sizeof(tok), "team", "create", "acme", NULL). Its stdout, with leading
 * and trailing whitespace trimmed, goes to out (NUL-terminated, cut to outlen; out may be NULL); its stderr is
 * appended to r->log. Returns its exit status (0..255), or -1 when it could not run, died of a signal or took more
 * than 10 s (a message on stderr). The arguments are never printed (they may hold tokens). */
int cr_test_relay_admin(const cr_test_relay_t *r, char *out, size_t outlen, ...) __attribute__((sentinel));

/* The value of the sample `name` (a metric without labels, or with them written out: name{code="x"}) in GET /metrics
 * of relay r; -1 when absent or unreachable. */
long long cr_test_relay_metric(const cr_test_relay_t *r, const char *name);

#endif
