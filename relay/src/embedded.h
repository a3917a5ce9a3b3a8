/* embedded.h — the relay's own redis-server: started as a child on a unix socket in data_dir, AOF on, stopped on exit. */
#ifndef RELAY_EMBEDDED_H
#define RELAY_EMBEDDED_H

#include <limits.h>
#include <sys/types.h>

typedef struct st_relay_embedded_t {
    pid_t pid;
    char socket_path[108];
    char url[128]; /* unix:///...redis.sock */
} relay_embedded_t;

/* Starts `program` (redis-server) with its data and socket under data_dir (created 0700), waits until it answers
 * PING (up to 10 s). Returns 0, or CR_EIO with a message saying how to install redis-server or set redis.url. */
int relay_embedded_start(relay_embedded_t *e, const char *program, const char *data_dir);

/* Stops it (SIGTERM, which makes Redis flush its AOF, then waits; SIGKILL after 10 s). Idempotent. */
void relay_embedded_stop(relay_embedded_t *e);

#endif
