/* server/src/main.c — corrald's entry point: flags, config, the repository's host core, its local API on a unix socket,
 * and a graceful stop on SIGTERM/SIGINT (agents are ended cleanly so their sessions can be resumed). */
#include "config.h"
#include "corral/fs.h"
#include "corral/error.h"
#include "corral/log.h"
#include "host.h"
#include "host_api.h"
#include "host_ids.h"
#include "host_relay.h"
#include "pair.h"
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#ifndef CORRAL_VERSION
#error "CORRAL_VERSION must be defined by the build (the top CMakeLists.txt does)"
#endif

#define PROGRAM "corrald"

static void usage(FILE *fp)
{
    fprintf(fp, "Usage: " PROGRAM " [--config FILE] [--repo DIR]\n"
                "       " PROGRAM " --help | --version | --print-config-example\n"
                "\n"
                "The Corral host: runs AI coding agents in git worktrees, one session each, turns what they do\n"
                "into events and applies the actions that come back. The corral CLI talks to it over the unix\n"
                "socket <home>/corrald.sock (mode 0600).\n"
                "\n"
                "Options:\n"
                "  --repo DIR                the git repository whose sessions to run (default: the one containing\n"
                "                            the current directory)\n"
                "  --config FILE             read settings from this INI file (the environment still wins)\n"
                "  --print-config-example    print a commented config file with every key at its default\n"
                "  --help                    print this help\n"
                "  --version                 print the version\n"
                "\n"
                "Exit status: 0 after a clean stop, 1 when the host cannot start, 2 for bad flags or config.\n"
                "\n");
}

/* the API's h2o context lives until exit (host_api_free): reachable from here */
static host_api_t *the_api;

typedef struct st_daemon_t {
    uv_loop_t loop;
    host_t *host;
    host_api_t *api;
    host_relay_t *relay; /* NULL without relay.url and relay.token */
    host_pair_t *pair;   /* POST /v1/pair's pairing codes; NULL without relay.url and relay.token */
    host_ids_t *ids;     /* identities: their vaults on the relay, their inboxes here */
    uv_signal_t sig_term, sig_int;
    int stopped; /* on_shutdown_done ran: run_loop returns */
} daemon_t;

static void on_inbox_note(const char *idn, void *data)
{
    host_ids_fetch(data, idn);
}

static void identity_env(const char *name, char *email, size_t email_len, char *phone, size_t phone_len, void *data)
{
    host_ids_env(data, name, email, email_len, phone, phone_len);
}

static size_t identity_secrets(const char *name, const char *sid, char **env, char **values, size_t max, void *data)
{
    return host_ids_secrets(data, name, sid, env, values, max);
}

static void on_shutdown_done(void *data)
{
    daemon_t *d = data;
    host_relay_free(d->relay); /* what the agents said last is in the outbox even if it did not go out yet */
    d->relay = NULL;
    host_api_close(d->api);
    d->stopped = 1;
    uv_stop(&d->loop);
}

/* Runs the loop until on_shutdown_done. Under load it wakes at most once per window (loop.coalesce_ms): a wake-up
 * sooner than that after the last one is followed by a sleep for the rest of the window, so that what ten agents write
 * meanwhile is read in one pass, with fewer wake-ups, reads and writes per event (interrupt coalescing, as NICs do).
 * An event after a quiet spell is handled at once; one in a busy spell waits at most the window. */
static void run_loop(daemon_t *d, uint64_t window_ms)
{
    uint64_t window_ns = window_ms * 1000000u, last = 0;
    while (!d->stopped && uv_run(&d->loop, UV_RUN_ONCE) != 0) {
        uint64_t now = uv_hrtime();
        if (window_ns > 0 && !d->stopped && now - last < window_ns) {
            struct timespec ts = {0, (long)(window_ns - (now - last))};
            nanosleep(&ts, NULL);
            now = uv_hrtime();
        }
        last = now;
    }
}

static void on_signal(uv_signal_t *sig, int signum)
{
    daemon_t *d = sig->data;
    cr_log(CR_LOG_INFO, "signal %d: ending the agents so their sessions can be resumed", signum);
    uv_signal_stop(&d->sig_term);
    uv_signal_stop(&d->sig_int);
    host_shutdown(d->host);
}

/* Makes dir (and its parents) with mode 0700 and sets dir itself to 0700. Returns 0 or -1 (errno). */
static int make_home(const char *dir)
{
    return cr_mkdir_p(dir, 0700) != 0 ? -1 : chmod(dir, 0700);
}

static void drain(uv_loop_t *loop)
{
    for (int i = 0; i < 100 && uv_run(loop, UV_RUN_NOWAIT) != 0; ++i)
        ;
}

int main(int argc, char **argv)
{
    cr_config_t conf;
    static daemon_t d; /* static: what the loop holds at exit stays reachable */
    host_opts_t opts = {0};
    char home[PATH_MAX], sock[PATH_MAX + 32], url[PATH_MAX + 48];
    const char *repo = NULL, *h;
    int rest, rc, status = 1;

    /* --repo is ours; the shared flags go to cr_config_main */
    char **args = calloc((size_t)argc + 1, sizeof(*args));
    int nargs = 0;
    if (args == NULL)
        return 1;
    for (int i = 0; i < argc; ++i) {
        if (i > 0 && strcmp(argv[i], "--repo") == 0) {
            if (i + 1 >= argc) {
                fprintf(stderr, PROGRAM ": --repo needs a directory\n");
                free(args);
                return 2;
            }
            repo = argv[++i];
        } else if (i > 0 && strncmp(argv[i], "--repo=", 7) == 0) {
            repo = argv[i] + 7;
        } else {
            args[nargs++] = argv[i];
        }
    }
    rc = cr_config_main(&conf, host_config_table, PROGRAM, "corrald", nargs, args, usage, &rest);
    if (rc < 0 && rest < nargs) {
        fprintf(stderr, PROGRAM ": unknown argument '%s' (see " PROGRAM " --help)\n", args[rest]);
        cr_config_free(&conf);
        rc = 2;
    }
    free(args);
    if (rc >= 0)
        return rc;
    signal(SIGPIPE, SIG_IGN);
    memset(&d, 0, sizeof(d));

    h = cr_config_str(&conf, "home");
    if (h[0] == '~' && (h[1] == '/' || h[1] == '\0')) {
        const char *env_home = getenv("HOME");
        if (env_home == NULL || env_home[0] == '\0') {
            fprintf(stderr, PROGRAM ": home is %s but $HOME is not set\n", h);
            goto done;
        }
        snprintf(home, sizeof(home), "%s%s", env_home, h + 1);
    } else {
        snprintf(home, sizeof(home), "%s", h);
    }
    if (make_home(home) != 0) {
        fprintf(stderr, PROGRAM ": cannot make the directory %s: %s\n", home, strerror(errno));
        goto done;
    }
    snprintf(sock, sizeof(sock), "%s/corrald.sock", home);
    snprintf(url, sizeof(url), "unix:%s", sock);

    uv_loop_init(&d.loop);
    opts.repo = repo;
    opts.claude_cmd = cr_config_str(&conf, "agent.claude_cmd");
    opts.codex_cmd = cr_config_str(&conf, "agent.codex_cmd");
    opts.merge_policy = cr_config_str(&conf, "merge.policy");
    opts.url = url;
    opts.home = home;
    opts.seal = cr_config_str(&conf, "relay.seal");
    opts.no_spares = !cr_config_bool(&conf, "worktree.spare");
    if ((rc = host_new(&d.host, &d.loop, &opts)) != 0) {
        fprintf(stderr, PROGRAM ": %s\n", cr_error_last()->message);
        goto done_loop;
    }
    if ((rc = host_api_start(&d.api, d.host, &d.loop, sock)) != 0) {
        fprintf(stderr, PROGRAM ": %s\n", cr_error_last()->message);
        goto done_loop;
    }
    the_api = d.api;
    d.host->hooks.on_event = host_api_notify;
    d.host->hooks.event_data = d.api;
    d.host->hooks.on_shutdown_done = on_shutdown_done;
    d.host->hooks.shutdown_data = &d;
    if (cr_config_str(&conf, "relay.url")[0] != '\0' && cr_config_str(&conf, "relay.token")[0] != '\0') {
        host_relay_config_t rconf = {cr_config_str(&conf, "relay.url"), cr_config_str(&conf, "relay.token"),
                                     cr_config_str(&conf, "relay.ca_file"), cr_config_str(&conf, "transcribe.command"),
                                     cr_config_str(&conf, "voice.model")};
        if (host_relay_new(&d.relay, d.host, &rconf) != 0) {
            fprintf(stderr, PROGRAM ": relay: %s\n", cr_error_last()->message);
            goto done_loop;
        }
        d.host->hooks.on_emitted = host_relay_kick;
        d.host->hooks.emitted_data = d.relay;
    } else if (cr_config_str(&conf, "relay.url")[0] != '\0') {
        cr_log(CR_LOG_WARN, "relay.url is set but relay.token is not: not connecting to the relay");
    }
    if (cr_config_str(&conf, "relay.url")[0] != '\0' && cr_config_str(&conf, "relay.token")[0] != '\0') {
        host_pair_config_t pconf = {cr_config_str(&conf, "relay.url"), cr_config_str(&conf, "relay.token"),
                                    cr_config_str(&conf, "relay.ca_file"), home};
        if (host_pair_new(&d.pair, &d.loop, &pconf) != 0) {
            fprintf(stderr, PROGRAM ": pairing: %s\n", cr_error_last()->message);
            goto done_loop;
        }
        host_api_set_pair(d.api, d.pair);
    }
    {
        host_ids_config_t iconf = {home, cr_config_str(&conf, "relay.url"), cr_config_str(&conf, "relay.token"),
                                   cr_config_str(&conf, "relay.ca_file")};
        if (host_ids_new(&d.ids, d.host, &iconf) != 0) {
            fprintf(stderr, PROGRAM ": identities: %s\n", cr_error_last()->message);
            goto done_loop;
        }
        host_api_set_ids(d.api, d.ids);
        d.host->hooks.identity_env = identity_env;
        d.host->hooks.identity_secrets = identity_secrets;
        d.host->hooks.identity_data = d.ids;
        if (d.relay != NULL)
            host_relay_on_inbox(d.relay, on_inbox_note, d.ids);
        host_ids_fetch(d.ids, NULL); /* mail that came while corrald was down */
    }
    uv_signal_init(&d.loop, &d.sig_term);
    uv_signal_init(&d.loop, &d.sig_int);
    d.sig_term.data = d.sig_int.data = &d;
    uv_signal_start(&d.sig_term, on_signal, SIGTERM);
    uv_signal_start(&d.sig_int, on_signal, SIGINT);
    cr_log(CR_LOG_INFO, PROGRAM " %s: repository %s, socket %s", CORRAL_VERSION, host_git_workdir(d.host->git), sock);
    run_loop(&d, (uint64_t)cr_config_int(&conf, "loop.coalesce_ms"));
    uv_close((uv_handle_t *)&d.sig_term, NULL);
    uv_close((uv_handle_t *)&d.sig_int, NULL);
    status = 0;
    cr_log(CR_LOG_INFO, PROGRAM ": stopped");
done_loop:
    host_relay_free(d.relay);
    host_api_close(d.api);
    host_pair_free(d.pair); /* after the API: a pairing request in flight is answered, then the client closes */
    host_ids_free(d.ids);
    host_free(d.host);
    drain(&d.loop);
    host_api_free(d.api);
    drain(&d.loop);
    if (the_api == NULL && uv_loop_close(&d.loop) != 0)
        cr_log(CR_LOG_DEBUG, "the loop still had handles at exit");
done:
    cr_config_free(&conf);
    return status;
}
