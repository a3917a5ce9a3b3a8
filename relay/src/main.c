/* main.c — corral-relay's entry point: flags and config, `admin` commands, and serving (embedded Redis, the loop). */
#include "auth.h"
#include "config.h"
#include "corral/error.h"
#include "corral/log.h"
#include "embedded.h"
#include "live.h"
#include "push_queue.h"
#include "relay.h"
#include "identity.h"
#include <signal.h>
#include <sodium.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define PROGRAM "corral-relay"

static void usage(FILE *fp)
{
    fprintf(fp, "Usage: " PROGRAM " [--config FILE]                      serve\n"
                "       " PROGRAM " [--config FILE] admin COMMAND ...     administer teams and tokens\n"
                "       " PROGRAM " --help | --version | --print-config-example\n"
                "\n"
                "The Corral relay: stores the events hosts send, fans them out live to phones, sends push\n"
                "notifications and queues the phones' actions for their hosts. With no redis.url it runs its own\n"
                "redis-server under data_dir.\n"
                "\n"
                "Admin commands (against the configured Redis; tokens are printed once and stored only hashed):\n"
                "  admin team create TEAM                         create a team, print its admin token\n"
                "  admin team ls                                  list teams: name, created (ms), tokens\n"
                "  admin token create --team TEAM --kind host|device|admin [--label L]\n"
                "                                                 print a new token of that kind\n"
                "  admin token revoke TOKEN                       revoke a token; its open streams close at once\n"
                "\n"
                "Options:\n"
                "  --config FILE             read settings from this INI file (the environment still wins)\n"
                "  --print-config-example    print a commented config file with every key at its default\n"
                "  --help                    print this help\n"
                "  --version                 print the version\n"
                "\n");
}

/* ---- admin --------------------------------------------------------------------------------------------------- */

static redisContext *admin_connect(cr_config_t *conf, relay_embedded_t *emb)
{
    const char *url = cr_config_str(conf, "redis.url");
    redisContext *c = NULL;
    char path[PATH_MAX];
    if (url[0] == '\0') {
        /* the embedded Redis: use the running relay's, or start it for this command */
        snprintf(path, sizeof(path), "%s/redis.sock", cr_config_str(conf, "data_dir"));
        c = redisConnectUnix(path);
        if (c == NULL || c->err) {
            if (c != NULL)
                redisFree(c);
            if (relay_embedded_start(emb, cr_config_str(conf, "redis.server"), cr_config_str(conf, "data_dir")) != 0)
                return NULL;
            c = redisConnectUnix(emb->socket_path);
        }
    } else if (strncmp(url, "unix://", 7) == 0) {
        c = redisConnectUnix(url + 7);
    } else if (strncmp(url, "redis://", 8) == 0) {
        char host[256] = "127.0.0.1";
        int port = 6379;
        const char *p = strchr(url + 8, '@') != NULL ? strchr(url + 8, '@') + 1 : url + 8;
        if (sscanf(p, "%255[^:/]:%d", host, &port) < 1) {
            cr_error_set(CR_ECONFIG, "redis.url", "cannot parse redis.url '%s'", url);
            return NULL;
        }
        c = redisConnect(host, port);
    }
    if (c == NULL || c->err) {
        cr_error_set(CR_EIO, "redis.url", "cannot connect to Redis: %s", c != NULL ? c->errstr : "bad redis.url");
        if (c != NULL)
            redisFree(c);
        return NULL;
    }
    return c;
}

static int admin_main(cr_config_t *conf, int argc, char **argv)
{
    relay_embedded_t emb = {0};
    redisContext *c;
    char token[RELAY_TOKEN_LEN + 1], id[27];
    int rc = -1;
    const char *what = argc >= 2 ? argv[1] : "";

    if (argc < 2 || (strcmp(argv[0], "team") != 0 && strcmp(argv[0], "token") != 0)) {
        fprintf(stderr, PROGRAM ": admin needs a command: team create|ls, token create|revoke (see --help)\n");
        return 2;
    }
    if ((c = admin_connect(conf, &emb)) == NULL) {
        fprintf(stderr, PROGRAM ": %s\n", cr_error_last()->message);
        return 1;
    }
    if (strcmp(argv[0], "team") == 0 && strcmp(what, "create") == 0 && argc == 3) {
        if ((rc = relay_admin_team_create(c, argv[2], token)) == 0)
            printf("%s\n", token);
    } else if (strcmp(argv[0], "team") == 0 && strcmp(what, "ls") == 0 && argc == 2) {
        rc = relay_admin_team_list(c, stdout);
    } else if (strcmp(argv[0], "token") == 0 && strcmp(what, "create") == 0) {
        const char *team = NULL, *kind = NULL, *label = "";
        for (int i = 2; i + 1 < argc; i += 2) {
            if (strcmp(argv[i], "--team") == 0)
                team = argv[i + 1];
            else if (strcmp(argv[i], "--kind") == 0)
                kind = argv[i + 1];
            else if (strcmp(argv[i], "--label") == 0)
                label = argv[i + 1];
        }
        if (team == NULL || kind == NULL || (argc % 2) != 0) {
            fprintf(stderr, PROGRAM ": usage: admin token create --team TEAM --kind host|device|admin [--label L]\n");
            rc = 2;
        } else if ((rc = relay_admin_token_create(c, team, kind, label, token, id)) == 0) {
            printf("%s\n", token);
        }
    } else if (strcmp(argv[0], "token") == 0 && strcmp(what, "revoke") == 0 && argc == 3) {
        if ((rc = relay_admin_token_revoke(c, argv[2])) == 0)
            fprintf(stderr, PROGRAM ": revoked\n");
    } else {
        fprintf(stderr, PROGRAM ": unknown admin command (see --help)\n");
        rc = 2;
    }
    sodium_memzero(token, sizeof(token));
    if (rc < 0)
        fprintf(stderr, PROGRAM ": %s\n", cr_error_last()->message);
    redisFree(c);
    relay_embedded_stop(&emb);
    return rc == 0 ? 0 : rc == 2 ? 2 : 1;
}

/* ---- serving ------------------------------------------------------------------------------------------------- */

static void on_rdb_state(relay_rdb_t *rdb, int ready, void *data)
{
    /* notices published while a connection was down are lost: end the live streams; their clients reconnect with
     * after= and read what they missed from the streams in Redis */
    if (!ready)
        relay_live_close_all(data, "unavailable");
    relay_push_on_ready(data, ready);
    if (ready)
        relay_inbound_on_ready(data);
    (void)rdb;
}

static void on_rdb_subscribed(relay_rdb_t *rdb, const char *channel, size_t channel_len, void *data)
{
    relay_live_on_subscribed(data, channel, channel_len);
    (void)rdb;
}

static void on_rdb_message(relay_rdb_t *rdb, const char *channel, size_t channel_len, const char *msg, size_t len, void *data)
{
    if (channel_len == 8 && memcmp(channel, "cr:pushn", 8) == 0)
        relay_push_on_notice(data, msg, len);
    else
        relay_live_on_message(data, channel, channel_len, msg, len);
    (void)rdb;
}

static void on_signal(uv_signal_t *s, int signum)
{
    relay_t *relay = s->data;
    cr_log(CR_LOG_INFO, "signal %d: shutting down", signum);
    uv_signal_stop(&relay->sig_term);
    uv_signal_stop(&relay->sig_int);
    relay_shutdown(relay);
}

static int serve(cr_config_t *conf)
{
    static relay_t relay; /* large; lives for the process */
    relay_embedded_t emb = {0};
    uv_loop_t *loop = uv_default_loop();
    const char *url = cr_config_str(conf, "redis.url");

    signal(SIGPIPE, SIG_IGN);
    if (url[0] == '\0') {
        if (relay_embedded_start(&emb, cr_config_str(conf, "redis.server"), cr_config_str(conf, "data_dir")) != 0) {
            cr_log(CR_LOG_ERROR, "%s", cr_error_last()->message);
            return 1;
        }
        url = emb.url;
    }
    if (relay_init(&relay, loop, conf) != 0) {
        cr_log(CR_LOG_ERROR, "%s", cr_error_last()->message);
        relay_embedded_stop(&emb);
        return 1;
    }
    if (relay_rdb_init(&relay.rdb, loop, url, on_rdb_state, on_rdb_message, &relay) != 0) {
        cr_log(CR_LOG_ERROR, "%s", cr_error_last()->message);
        relay_embedded_stop(&emb);
        return 1;
    }
    relay.rdb.on_subscribed = on_rdb_subscribed;
    relay_register_all(&relay);
    if (relay_push_init(&relay) != 0) {
        cr_log(CR_LOG_ERROR, "%s", cr_error_last()->message);
        relay_embedded_stop(&emb);
        return 1;
    }
    if (relay_inbound_start(&relay) != 0) {
        cr_log(CR_LOG_ERROR, "%s", cr_error_last()->message);
        relay_embedded_stop(&emb);
        return 1;
    }
    relay_rdb_subscribe(&relay.rdb, "cr:revoke");
    relay_rdb_start(&relay.rdb);

    uv_signal_init(loop, &relay.sig_term);
    uv_signal_init(loop, &relay.sig_int);
    relay.sig_term.data = relay.sig_int.data = &relay;
    uv_signal_start(&relay.sig_term, on_signal, SIGTERM);
    uv_signal_start(&relay.sig_int, on_signal, SIGINT);
    cr_log(CR_LOG_INFO, PROGRAM " %s started (relay id %s)", CORRAL_VERSION, relay.relay_id);

    uv_run(loop, UV_RUN_DEFAULT);

    relay_dispose(&relay);
    relay_embedded_stop(&emb);
    cr_log(CR_LOG_INFO, PROGRAM " stopped");
    return 0;
}

int main(int argc, char **argv)
{
    cr_config_t conf;
    int rest, rc;
    if (sodium_init() < 0) {
        fprintf(stderr, PROGRAM ": libsodium failed to initialise\n");
        return 1;
    }
    if ((rc = cr_config_main(&conf, relay_config_table, PROGRAM, "relay", argc, argv, usage, &rest)) >= 0)
        return rc;
    if (rest < argc && strcmp(argv[rest], "admin") == 0) {
        rc = admin_main(&conf, argc - rest - 1, argv + rest + 1);
    } else if (rest < argc) {
        fprintf(stderr, PROGRAM ": unknown argument '%s' (see " PROGRAM " --help)\n", argv[rest]);
        rc = 2;
    } else {
        rc = serve(&conf);
    }
    cr_config_free(&conf);
    return rc;
}
