/* rdb.c — the relay's Redis client: hiredis async with its libuv adapter, reconnection, scripts and pub/sub. */
#include "rdb.h"
#include "corral/buf.h"
#include "corral/error.h"
#include "corral/log.h"
#include <hiredis/adapters/libuv.h>
#include <openssl/sha.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const double relay_rdb_latency_bounds_ms[RELAY_RDB_LATENCY_BUCKETS] = {0.1, 0.25, 0.5, 1, 2.5, 5, 10, 50, 250, 1e300};

/* One command in flight. */
typedef struct st_call_t {
    relay_rdb_t *rdb;
    relay_rdb_cb cb;
    void *data;
    uint64_t started_ns;
    /* for a script: enough to send it again as EVAL after NOSCRIPT */
    relay_script_t *script;
    int numkeys, argc;
    const char **argv;
    size_t *argvlen;
} call_t;

static void connect_all(relay_rdb_t *rdb);
static void drop_conn(relay_rdb_t *rdb, redisAsyncContext **pac);

static void set_ready(relay_rdb_t *rdb, int ready)
{
    if (rdb->ready == ready)
        return;
    rdb->ready = ready;
    if (ready) {
        cr_log(CR_LOG_INFO, "redis: ready");
        uv_timer_stop(&rdb->retry_timer);
        rdb->backoff_ms = 0;
    } else if (!rdb->closing) {
        cr_log(CR_LOG_WARN, "redis: unavailable; writes answer 503 until it is back");
    }
    if (rdb->on_state != NULL)
        rdb->on_state(rdb, ready, rdb->cb_data);
}

static void update_ready(relay_rdb_t *rdb)
{
    set_ready(rdb, rdb->cmd_up && rdb->sub_up && rdb->scripts_pending == 0 && !rdb->closing);
}

static void record_latency(relay_rdb_t *rdb, uint64_t started_ns)
{
    double ms = (uv_hrtime() - started_ns) / 1e6;
    size_t i = 0;
    while (i + 1 < RELAY_RDB_LATENCY_BUCKETS && ms > relay_rdb_latency_bounds_ms[i])
        ++i;
    ++rdb->latency_hist[i];
    rdb->latency_sum_ms += ms;
}

static void free_call(call_t *c)
{
    free(c->argv);
    free(c);
}

static void on_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    call_t *c = privdata;
    redisReply *reply = r;
    relay_rdb_t *rdb = c->rdb;
    record_latency(rdb, c->started_ns);
    if (reply == NULL) {
        ++rdb->n_failed;
    } else if (c->script != NULL && reply->type == REDIS_REPLY_ERROR && strncmp(reply->str, "NOSCRIPT", 8) == 0 &&
               rdb->cmd != NULL && rdb->cmd_up) {
        /* the script cache was flushed: send it whole, which loads it again */
        const char **argv = c->argv;
        size_t *lens = c->argvlen;
        char nk[16];
        ++rdb->n_noscript;
        cr_log(CR_LOG_INFO, "redis: NOSCRIPT for %s; sending it again with EVAL", c->script->name);
        snprintf(nk, sizeof(nk), "%d", c->numkeys);
        argv[0] = "EVAL", lens[0] = 4;
        argv[1] = c->script->src, lens[1] = c->script->len;
        argv[2] = nk, lens[2] = strlen(nk);
        c->script = NULL;
        c->started_ns = uv_hrtime();
        if (redisAsyncCommandArgv(rdb->cmd, on_reply, c, c->argc, argv, lens) == REDIS_OK)
            return;
        reply = NULL;
    } else if (reply->type == REDIS_REPLY_ERROR) {
        ++rdb->n_failed;
        cr_log(CR_LOG_WARN, "redis: error reply: %.200s", reply->str);
    }
    if (c->cb != NULL)
        c->cb(rdb, reply, c->data);
    free_call(c);
    (void)ac;
}

static call_t *new_call(relay_rdb_t *rdb, relay_rdb_cb cb, void *data)
{
    call_t *c = calloc(1, sizeof(*c));
    if (c == NULL)
        return NULL;
    c->rdb = rdb;
    c->cb = cb;
    c->data = data;
    c->started_ns = uv_hrtime();
    ++rdb->n_commands;
    return c;
}

int relay_rdb_command(relay_rdb_t *rdb, relay_rdb_cb cb, void *data, int argc, const char **argv, const size_t *argvlen)
{
    call_t *c;
    if (!rdb->ready || (c = new_call(rdb, cb, data)) == NULL)
        return -1;
    if (redisAsyncCommandArgv(rdb->cmd, on_reply, c, argc, argv, argvlen) != REDIS_OK) {
        free_call(c);
        return -1;
    }
    return 0;
}

int relay_rdb_commandf(relay_rdb_t *rdb, relay_rdb_cb cb, void *data, const char *fmt, ...)
{
    call_t *c;
    va_list ap;
    int rc;
    if (!rdb->ready || (c = new_call(rdb, cb, data)) == NULL)
        return -1;
    va_start(ap, fmt);
    rc = redisvAsyncCommand(rdb->cmd, on_reply, c, fmt, ap);
    va_end(ap);
    if (rc != REDIS_OK) {
        free_call(c);
        return -1;
    }
    return 0;
}

int relay_rdb_script(relay_rdb_t *rdb, relay_script_t *script, relay_rdb_cb cb, void *data, int numkeys, int argc,
                     const char **argv, const size_t *argvlen)
{
    call_t *c;
    char nk[16];
    if (!rdb->ready || (c = new_call(rdb, cb, data)) == NULL)
        return -1;
    /* argv as sent: EVALSHA sha numkeys args...; kept for a possible EVAL after NOSCRIPT */
    c->argc = argc + 3;
    if ((c->argv = malloc(c->argc * (sizeof(char *) + sizeof(size_t)))) == NULL) {
        free(c);
        return -1;
    }
    c->argvlen = (size_t *)(c->argv + c->argc);
    c->script = script;
    c->numkeys = numkeys;
    snprintf(nk, sizeof(nk), "%d", numkeys);
    c->argv[0] = "EVALSHA", c->argvlen[0] = 7;
    c->argv[1] = script->sha, c->argvlen[1] = 40;
    c->argv[2] = nk, c->argvlen[2] = strlen(nk); /* hiredis copies the arguments when it formats the command */
    memcpy(c->argv + 3, argv, argc * sizeof(char *));
    memcpy(c->argvlen + 3, argvlen, argc * sizeof(size_t));
    if (redisAsyncCommandArgv(rdb->cmd, on_reply, c, c->argc, c->argv, c->argvlen) != REDIS_OK) {
        free_call(c);
        return -1;
    }
    return 0;
}

/* ---- connections --------------------------------------------------------------------------------------------- */

static void on_retry_timer(uv_timer_t *t)
{
    relay_rdb_t *rdb = t->data;
    /* hiredis 0.14's libuv adapter ignores poll errors, so a refused or lost connect never calls on_connect: a
     * connection still not up when the timer fires is given up and made again */
    if (rdb->cmd != NULL && !rdb->cmd_up)
        drop_conn(rdb, &rdb->cmd);
    if (rdb->sub != NULL && !rdb->sub_up)
        drop_conn(rdb, &rdb->sub);
    connect_all(rdb);
}

static void schedule_retry(relay_rdb_t *rdb)
{
    unsigned delay;
    if (rdb->closing || uv_is_active((uv_handle_t *)&rdb->retry_timer))
        return;
    rdb->backoff_ms = rdb->backoff_ms == 0 ? 100 : rdb->backoff_ms * 2;
    if (rdb->backoff_ms > 5000)
        rdb->backoff_ms = 5000;
    delay = rdb->backoff_ms / 2 + randombytes_uniform(rdb->backoff_ms / 2 + 1);
    uv_timer_start(&rdb->retry_timer, on_retry_timer, delay, 0);
}

/* Forgets a connection and closes it; its pending callbacks run with reply NULL. */
static void drop_conn(relay_rdb_t *rdb, redisAsyncContext **pac)
{
    redisAsyncContext *ac = *pac;
    *pac = NULL;
    if (pac == &rdb->cmd)
        rdb->cmd_up = 0;
    else
        rdb->sub_up = 0;
    if (ac != NULL)
        redisAsyncDisconnect(ac);
}

static void on_disconnect(const redisAsyncContext *ac, int status)
{
    relay_rdb_t *rdb = ac->data;
    int current = ac == rdb->cmd || ac == rdb->sub;
    if (ac == rdb->cmd)
        rdb->cmd = NULL, rdb->cmd_up = 0;
    if (ac == rdb->sub)
        rdb->sub = NULL, rdb->sub_up = 0;
    if (current && !rdb->closing) {
        cr_log(CR_LOG_WARN, "redis: connection lost (%s)", status == REDIS_OK ? "closed" : ac->errstr);
        ++rdb->n_reconnects;
        /* drop the other connection too, so that both come back together with a consistent state */
        drop_conn(rdb, &rdb->cmd);
        drop_conn(rdb, &rdb->sub);
        schedule_retry(rdb);
    }
    update_ready(rdb);
}

static void on_script_loaded(redisAsyncContext *ac, void *r, void *privdata)
{
    relay_rdb_t *rdb = ac->data;
    redisReply *reply = r;
    relay_script_t *s = privdata;
    if (reply == NULL)
        return; /* the connection dropped; on_disconnect handles it */
    if (reply->type != REDIS_REPLY_STRING || strcmp(reply->str, s->sha) != 0) {
        cr_log(CR_LOG_ERROR, "redis: loading script %s failed: %s", s->name, reply->type == REDIS_REPLY_ERROR ? reply->str : "?");
        redisAsyncDisconnect(ac);
        return;
    }
    if (--rdb->scripts_pending == 0)
        update_ready(rdb);
}

static void on_setup_reply(redisAsyncContext *ac, void *r, void *privdata)
{
    redisReply *reply = r;
    if (reply != NULL && reply->type == REDIS_REPLY_ERROR) {
        cr_log(CR_LOG_ERROR, "redis: %s failed: %s", (const char *)privdata, reply->str);
        redisAsyncDisconnect(ac);
    }
}

static void on_sub_message(redisAsyncContext *ac, void *r, void *privdata)
{
    relay_rdb_t *rdb = ac->data;
    redisReply *reply = r;
    if (reply == NULL || reply->type != REDIS_REPLY_ARRAY || reply->elements < 3)
        return;
    if (reply->element[0]->type != REDIS_REPLY_STRING || reply->element[1]->type != REDIS_REPLY_STRING)
        return;
    if (strcmp(reply->element[0]->str, "message") == 0 && rdb->on_message != NULL)
        rdb->on_message(rdb, reply->element[1]->str, reply->element[1]->len, reply->element[2]->str, reply->element[2]->len,
                        rdb->cb_data);
    else if (strcmp(reply->element[0]->str, "subscribe") == 0 && rdb->on_subscribed != NULL)
        rdb->on_subscribed(rdb, reply->element[1]->str, reply->element[1]->len, rdb->cb_data);
}

static void send_setup(relay_rdb_t *rdb, redisAsyncContext *ac)
{
    if (rdb->password != NULL)
        redisAsyncCommand(ac, on_setup_reply, (void *)(uintptr_t) "AUTH", "AUTH %s", rdb->password);
    if (rdb->db != 0)
        redisAsyncCommand(ac, on_setup_reply, (void *)(uintptr_t) "SELECT", "SELECT %d", rdb->db);
}

static void on_connect(const redisAsyncContext *cac, int status)
{
    redisAsyncContext *ac = (redisAsyncContext *)cac;
    relay_rdb_t *rdb = ac->data;
    if (status != REDIS_OK) {
        /* hiredis frees this context after the callback, without calling on_disconnect */
        if (ac == rdb->cmd)
            rdb->cmd = NULL, rdb->cmd_up = 0;
        if (ac == rdb->sub)
            rdb->sub = NULL, rdb->sub_up = 0;
        cr_log(CR_LOG_DEBUG, "redis: connect failed: %s", ac->errstr);
        drop_conn(rdb, &rdb->cmd);
        drop_conn(rdb, &rdb->sub);
        schedule_retry(rdb);
        update_ready(rdb);
        return;
    }
    send_setup(rdb, ac);
    if (ac == rdb->cmd) {
        rdb->cmd_up = 1;
        rdb->scripts_pending = (int)rdb->nscripts;
        for (size_t i = 0; i < rdb->nscripts; ++i)
            redisAsyncCommand(ac, on_script_loaded, rdb->scripts[i], "SCRIPT LOAD %b", rdb->scripts[i]->src,
                              rdb->scripts[i]->len);
    } else {
        rdb->sub_up = 1;
        for (size_t i = 0; i < rdb->nsubs; ++i)
            redisAsyncCommand(ac, on_sub_message, NULL, "SUBSCRIBE %s", rdb->subs[i].name);
    }
    update_ready(rdb);
}

static redisAsyncContext *open_one(relay_rdb_t *rdb)
{
    redisAsyncContext *ac = rdb->unix_path != NULL ? redisAsyncConnectUnix(rdb->unix_path) : redisAsyncConnect(rdb->host, rdb->port);
    if (ac == NULL)
        return NULL;
    if (ac->err) {
        cr_log(CR_LOG_DEBUG, "redis: connect: %s", ac->errstr);
        redisAsyncFree(ac);
        return NULL;
    }
    ac->data = rdb;
    redisLibuvAttach(ac, rdb->loop);
    redisAsyncSetConnectCallback(ac, on_connect);
    redisAsyncSetDisconnectCallback(ac, on_disconnect);
    return ac;
}

static void connect_all(relay_rdb_t *rdb)
{
    if (rdb->closing)
        return;
    if (rdb->cmd == NULL)
        rdb->cmd = open_one(rdb);
    if (rdb->sub == NULL)
        rdb->sub = open_one(rdb);
    if (rdb->cmd == NULL || rdb->sub == NULL) {
        drop_conn(rdb, &rdb->cmd);
        drop_conn(rdb, &rdb->sub);
    }
    schedule_retry(rdb); /* also the connect timeout: stopped once both connections are up */
}

void relay_rdb_start(relay_rdb_t *rdb)
{
    connect_all(rdb);
}

void relay_rdb_close(relay_rdb_t *rdb)
{
    rdb->closing = 1;
    uv_timer_stop(&rdb->retry_timer);
    uv_close((uv_handle_t *)&rdb->retry_timer, NULL);
    drop_conn(rdb, &rdb->cmd);
    drop_conn(rdb, &rdb->sub);
    set_ready(rdb, 0);
    for (size_t i = 0; i < rdb->nsubs; ++i)
        free(rdb->subs[i].name);
    free(rdb->subs);
    free(rdb->scripts);
    free(rdb->host);
    free(rdb->unix_path);
    if (rdb->password != NULL)
        sodium_free(rdb->password);
    rdb->subs = NULL;
    rdb->scripts = NULL;
    rdb->host = rdb->unix_path = rdb->password = NULL;
}

/* ---- subscriptions and scripts ------------------------------------------------------------------------------- */

void relay_rdb_subscribe(relay_rdb_t *rdb, const char *channel)
{
    struct st_relay_rdb_sub_t *subs;
    for (size_t i = 0; i < rdb->nsubs; ++i)
        if (strcmp(rdb->subs[i].name, channel) == 0) {
            ++rdb->subs[i].refs;
            return;
        }
    if ((subs = realloc(rdb->subs, (rdb->nsubs + 1) * sizeof(*subs))) == NULL)
        return;
    rdb->subs = subs;
    subs[rdb->nsubs].name = strdup(channel);
    subs[rdb->nsubs].refs = 1;
    ++rdb->nsubs;
    if (rdb->sub != NULL && rdb->sub_up)
        redisAsyncCommand(rdb->sub, on_sub_message, NULL, "SUBSCRIBE %s", channel);
}

void relay_rdb_unsubscribe(relay_rdb_t *rdb, const char *channel)
{
    for (size_t i = 0; i < rdb->nsubs; ++i) {
        if (strcmp(rdb->subs[i].name, channel) != 0)
            continue;
        if (--rdb->subs[i].refs > 0)
            return;
        if (rdb->sub != NULL && rdb->sub_up)
            redisAsyncCommand(rdb->sub, NULL, NULL, "UNSUBSCRIBE %s", channel);
        free(rdb->subs[i].name);
        rdb->subs[i] = rdb->subs[--rdb->nsubs];
        return;
    }
}

void relay_rdb_add_script(relay_rdb_t *rdb, relay_script_t *script)
{
    unsigned char md[SHA_DIGEST_LENGTH];
    relay_script_t **scripts = realloc(rdb->scripts, (rdb->nscripts + 1) * sizeof(*scripts));
    CR_ASSERT(scripts != NULL);
    SHA1((const unsigned char *)script->src, script->len, md);
    for (int i = 0; i < SHA_DIGEST_LENGTH; ++i)
        sprintf(script->sha + i * 2, "%02x", md[i]);
    rdb->scripts = scripts;
    rdb->scripts[rdb->nscripts++] = script;
}

/* ---- setup --------------------------------------------------------------------------------------------------- */

int relay_rdb_init(relay_rdb_t *rdb, uv_loop_t *loop, const char *url, relay_rdb_state_cb on_state,
                   relay_rdb_message_cb on_message, void *cb_data)
{
    memset(rdb, 0, sizeof(*rdb));
    rdb->loop = loop;
    rdb->on_state = on_state;
    rdb->on_message = on_message;
    rdb->cb_data = cb_data;
    rdb->port = 6379;
    if (strncmp(url, "unix://", 7) == 0) {
        const char *path = url + 7, *q = strchr(path, '?');
        size_t n = q != NULL ? (size_t)(q - path) : strlen(path);
        if (n == 0 || path[0] != '/')
            return cr_error_set(CR_ECONFIG, "redis.url", "redis.url: a unix socket URL is unix:///absolute/path, got '%s'", url);
        rdb->unix_path = cr_strndup(path, n);
        if (q != NULL && sscanf(q, "?db=%d", &rdb->db) != 1)
            return cr_error_set(CR_ECONFIG, "redis.url", "redis.url: expected ?db=N after the socket path");
    } else if (strncmp(url, "redis://", 8) == 0) {
        const char *p = url + 8, *at = strchr(p, '@'), *slash, *colon;
        if (at != NULL) {
            const char *pw = memchr(p, ':', (size_t)(at - p));
            if (pw != NULL && at - pw > 1) {
                rdb->password = sodium_malloc((size_t)(at - pw));
                memcpy(rdb->password, pw + 1, (size_t)(at - pw - 1));
                rdb->password[at - pw - 1] = '\0';
            }
            p = at + 1;
        }
        slash = strchr(p, '/');
        colon = memchr(p, ':', slash != NULL ? (size_t)(slash - p) : strlen(p));
        size_t hostlen = colon != NULL ? (size_t)(colon - p) : slash != NULL ? (size_t)(slash - p) : strlen(p);
        if (hostlen == 0)
            return cr_error_set(CR_ECONFIG, "redis.url", "redis.url: no host in '%s'", url);
        rdb->host = cr_strndup(p, hostlen);
        if (colon != NULL && (sscanf(colon + 1, "%d", &rdb->port) != 1 || rdb->port <= 0 || rdb->port > 65535))
            return cr_error_set(CR_ECONFIG, "redis.url", "redis.url: bad port in '%s'", url);
        if (slash != NULL && slash[1] != '\0' && sscanf(slash + 1, "%d", &rdb->db) != 1)
            return cr_error_set(CR_ECONFIG, "redis.url", "redis.url: bad database number in '%s'", url);
    } else {
        return cr_error_set(CR_ECONFIG, "redis.url", "redis.url must start with redis:// or unix://, got '%s'", url);
    }
    uv_timer_init(loop, &rdb->retry_timer);
    rdb->retry_timer.data = rdb;
    return 0;
}
