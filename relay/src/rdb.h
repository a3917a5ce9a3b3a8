/* rdb.h — the relay's Redis: hiredis async on the libuv loop, a command and a pub/sub connection, reconnection with
 * backoff, Lua scripts by EVALSHA (reloaded on NOSCRIPT), and latency figures. */
#ifndef RELAY_RDB_H
#define RELAY_RDB_H

#include <hiredis/async.h>
#include <hiredis/hiredis.h>
#include <stdint.h>
#include <uv.h>

typedef struct st_relay_rdb_t relay_rdb_t;

/* A command's answer. `reply` is NULL when the command could not complete (the connection dropped); it is owned by
 * hiredis and valid only during the call. */
typedef void (*relay_rdb_cb)(relay_rdb_t *rdb, redisReply *reply, void *data);

/* Called when Redis becomes usable (ready = 1: both connections up, scripts loaded) or stops being (ready = 0). */
typedef void (*relay_rdb_state_cb)(relay_rdb_t *rdb, int ready, void *data);

/* Called for each pub/sub message on a subscribed channel. The bytes are valid only during the call. */
typedef void (*relay_rdb_message_cb)(relay_rdb_t *rdb, const char *channel, size_t channel_len, const char *msg, size_t len,
                                     void *data);

/* Called when Redis confirms a subscription (after relay_rdb_subscribe, and again after each reconnection): from then
 * on every message published on the channel is delivered. */
typedef void (*relay_rdb_subscribed_cb)(relay_rdb_t *rdb, const char *channel, size_t channel_len, void *data);

/* A Lua script, loaded once per connection and called by its SHA-1. */
typedef struct st_relay_script_t {
    const char *name;
    const char *src;
    size_t len;
    char sha[41];
} relay_script_t;

#define RELAY_RDB_LATENCY_BUCKETS 10
extern const double relay_rdb_latency_bounds_ms[RELAY_RDB_LATENCY_BUCKETS]; /* upper bounds; the last is +Inf */

struct st_relay_rdb_t {
    uv_loop_t *loop;
    /* where */
    char *host, *unix_path, *password;
    int port, db;
    /* connections */
    redisAsyncContext *cmd, *sub;
    int cmd_up, sub_up, scripts_pending, ready, closing;
    uv_timer_t retry_timer;
    unsigned backoff_ms;
    uint64_t down_since_ms;
    /* scripts and subscriptions, restored on every reconnect */
    relay_script_t **scripts;
    size_t nscripts;
    struct st_relay_rdb_sub_t {
        char *name;
        unsigned refs;
    } *subs;
    size_t nsubs;
    /* callbacks */
    relay_rdb_state_cb on_state;
    relay_rdb_message_cb on_message;
    relay_rdb_subscribed_cb on_subscribed; /* optional; set after relay_rdb_init */
    void *cb_data;
    /* figures for /metrics */
    uint64_t n_commands, n_failed, n_reconnects, n_noscript;
    uint64_t latency_hist[RELAY_RDB_LATENCY_BUCKETS];
    double latency_sum_ms;
};

/* Parses url (redis://[:password@]host[:port][/db] or unix:///path/to/sock[?db=N]) and prepares a client on loop.
 * Connects nothing yet. Returns 0 or CR_ECONFIG (cr_error_last names the problem). */
int relay_rdb_init(relay_rdb_t *rdb, uv_loop_t *loop, const char *url, relay_rdb_state_cb on_state,
                   relay_rdb_message_cb on_message, void *cb_data);

/* Registers a script (its sha is computed now); call before relay_rdb_start. */
void relay_rdb_add_script(relay_rdb_t *rdb, relay_script_t *script);

/* Starts connecting; reconnects with backoff (100 ms doubling to 5 s, with jitter) whenever a connection drops. */
void relay_rdb_start(relay_rdb_t *rdb);

/* Closes both connections (pending callbacks run with reply NULL) and stops reconnecting; the loop may then end. */
void relay_rdb_close(relay_rdb_t *rdb);

static inline int relay_rdb_ready(const relay_rdb_t *rdb)
{
    return rdb->ready;
}

/* Sends one command (binary-safe arguments). Returns 0, or -1 when Redis is not ready — then cb never runs. */
int relay_rdb_command(relay_rdb_t *rdb, relay_rdb_cb cb, void *data, int argc, const char **argv, const size_t *argvlen);

/* printf-like form of hiredis (%s, %b with pointer and length, %d ...). Same returns. */
int relay_rdb_commandf(relay_rdb_t *rdb, relay_rdb_cb cb, void *data, const char *fmt, ...);

/* Calls a script with EVALSHA; on NOSCRIPT it is sent again as EVAL (which also loads it). argv holds the keys then
 * the arguments; the caller keeps argv's bytes alive until cb runs. Same returns. */
int relay_rdb_script(relay_rdb_t *rdb, relay_script_t *script, relay_rdb_cb cb, void *data, int numkeys, int argc,
                     const char **argv, const size_t *argvlen);

/* Subscribes to a channel (reference counted; restored after reconnects) / drops one reference. */
void relay_rdb_subscribe(relay_rdb_t *rdb, const char *channel);
void relay_rdb_unsubscribe(relay_rdb_t *rdb, const char *channel);

#endif
