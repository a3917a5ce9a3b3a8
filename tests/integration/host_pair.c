/* host_pair.c — pairing a phone end to end: a real Redis and corral-relay, corrald on a temp git repository, `corral
 * pair` turning the relay's one-time code and the team key into a link a phone claims once; `corral up` keeping the
 * relay settings (mode 0600, token never printed) and starting corrald in the background; no relay: a clear error. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "corral/codec.h"
#include "harness.h"
#include "http_client.h"
#include "host_proc.h"
#include "proc.h"
#include "redis_server.h"
#include "relay_proc.h"
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#pragma GCC diagnostic ignored "-Wformat-truncation"

static cr_test_redis_t redis;
static cr_test_relay_t relay;
static char host_token[64];
static cr_test_host_t host;
static char env_rurl[128], env_rtok[128];

/* The corral CLI, run as host_proc.h's cr_test_host_corral. */
#define corral(...) cr_test_host_corral(&host, __VA_ARGS__)

/* The string value of "key" in the JSON text s (no escapes expected) into val; 0 or -1. */
static int json_get(char *val, size_t len, const char *s, const char *key)
{
    char pat[64];
    const char *p, *e;
    snprintf(pat, sizeof(pat), "\"%s\":\"", key);
    if ((p = strstr(s, pat)) == NULL)
        return -1;
    p += strlen(pat);
    if ((e = strchr(p, '"')) == NULL || (size_t)(e - p) >= len)
        return -1;
    memcpy(val, p, (size_t)(e - p));
    val[e - p] = '\0';
    return 0;
}

/* Starts corrald with CORRAL_RELAY_URL and CORRAL_RELAY_TOKEN set to the relay's (with_relay) or empty. */
static void start_daemon(int with_relay)
{
    snprintf(env_rurl, sizeof(env_rurl), "CORRAL_RELAY_URL=%s", with_relay ? relay.url : "");
    snprintf(env_rtok, sizeof(env_rtok), "CORRAL_RELAY_TOKEN=%s", with_relay ? host_token : "");
    okf(cr_test_host_start(&host) == 0, "corrald listens on %s", host.sock);
}

static int claim(const char *code, char *token_out, size_t len)
{
    cr_test_resp_t r = {0};
    char url[128], body[128];
    long status;
    snprintf(url, sizeof(url), "%s/v1/pair/claim", relay.url);
    snprintf(body, sizeof(body), "{\"code\":\"%s\",\"name\":\"test phone\"}", code);
    if (cr_test_http_json(&r, "POST", url, NULL, body) != 0)
        return -1;
    status = r.status;
    if (token_out != NULL && (status != 200 || json_get(token_out, len, r.body, "token") != 0))
        token_out[0] = '\0';
    cr_test_resp_free(&r);
    return (int)status;
}

/* The team key in <home>/team.key as base64url, "" when unreadable; checks its mode. */
static void team_key_b64(char *b64, size_t len)
{
    char path[2 * PATH_MAX + 16];
    unsigned char key[64];
    struct stat st;
    int fd;
    ssize_t n = -1;
    b64[0] = '\0';
    snprintf(path, sizeof(path), "%s/team.key", host.home);
    okf(stat(path, &st) == 0 && (st.st_mode & 0777) == 0600 && st.st_size == 32, "%s: 32 bytes, mode 0600", path);
    if ((fd = open(path, O_RDONLY)) >= 0) {
        n = read(fd, key, sizeof(key));
        close(fd);
    }
    if (n == 32 && len >= cr_base64url_encoded_len(32))
        cr_base64url_encode(b64, key, 32);
}

static void test_pair_and_claim(void)
{
    char code[64], url[1024], want[1024], k[64], k2[64], dev_token[128], code2[64], url2[1024];
    start_daemon(1);
    ok(corral("pair", "--json", NULL) == 0);
    okf(json_get(code, sizeof(code), host.out, "code") == 0 && strlen(code) == 10, "a 10-character code: %s%s", host.out, host.err);
    ok(json_get(url, sizeof(url), host.out, "url") == 0);
    ok(strstr(host.out, "\"expires\":") != NULL);
    okf(strstr(host.out, "\"qr_text\":\"") != NULL && (strstr(host.out, "##") != NULL || strstr(host.out, "\u2588") != NULL),
        "the answer carries the QR code");
    team_key_b64(k, sizeof(k));
    snprintf(want, sizeof(want), "%s/#pair=%s&k=%s", relay.url, code, k);
    ok_str(url, want);

    /* the phone claims the code once */
    ok(claim(code, dev_token, sizeof(dev_token)) == 200);
    okf(strncmp(dev_token, "crt_", 4) == 0, "a device token: %.8s...", dev_token);
    ok(claim(code, NULL, 0) == 404);

    /* a second code, the same team key; the plain output names link and code, no QR off a terminal */
    ok(corral("pair", NULL) == 0);
    ok(strstr(host.out, "Pairing code ") != NULL);
    okf(strstr(host.out, "\u2588") == NULL && strstr(host.out, "##") == NULL, "no QR code when stdout is not a terminal");
    ok(sscanf(strstr(host.out, "Pairing code ") + 13, "%63[0-9A-Z]", code2) == 1);
    ok(strcmp(code2, code) != 0);
    snprintf(want, sizeof(want), "/#pair=%s&k=%s\n", code2, k);
    okf(strstr(host.out, want) != NULL, "the link holds the new code and the same key:\n%s", host.out);
    team_key_b64(k2, sizeof(k2));
    ok_str(k2, k);
    ok(sscanf(strstr(host.out, "http"), "%1023s", url2) == 1);
    ok(claim(code2, NULL, 0) == 200);
    ok(strstr(host.err, host_token) == NULL && strstr(host.out, host_token) == NULL);
    ok(cr_test_host_stop(&host) == 0);
}

static void test_no_relay(void)
{
    start_daemon(0);
    ok(corral("pair", NULL) == 1);
    okf(strstr(host.err, "no relay configured: run corral up --relay URL --token TOKEN") != NULL, "%s", host.err);
    ok(corral("pair", "--json", NULL) == 1);
    ok(strstr(host.out, "\"code\":\"bad_config\"") != NULL);
    ok(cr_test_host_stop(&host) == 0);
}

static void test_relay_refuses(void)
{
    char bad[128];
    snprintf(bad, sizeof(bad), "crt_%s", "0000000000000000000000000000000000000000000000000000000000000000");
    snprintf(host_token, sizeof(host_token), "%s", bad);
    start_daemon(1);
    ok(corral("pair", NULL) == 1);
    okf(strstr(host.err, "the relay refused") != NULL && strstr(host.err, "401") != NULL, "%s", host.err);
    ok(cr_test_host_stop(&host) == 0);
}

static void test_up(void)
{
    char ini[2 * PATH_MAX + 16], sock[2 * PATH_MAX + 16], code[64], *text;
    struct stat st;
    long pid = 0;
    const char *p;
    snprintf(ini, sizeof(ini), "%s/corrald.ini", host.home);
    snprintf(sock, sizeof(sock), "%s/corrald.sock", host.home);
    host.env[CR_TEST_HOST_ENV_BASE] = NULL; /* no CORRAL_RELAY_* at all: an empty one would win over the file */
    ok(corral("up", "--relay", relay.url, NULL) == 2);
    okf(corral("up", "--relay", relay.url, "--token", host_token, "--repo", host.repo, NULL) == 0, "%s%s", host.out, host.err);
    ok(strstr(host.out, host_token) == NULL && strstr(host.err, host_token) == NULL);
    ok(stat(ini, &st) == 0 && (st.st_mode & 0777) == 0600);
    text = cr_test_file_read(ini, 0, 1 << 16);
    okf(text != NULL && strstr(text, "[relay]\n") != NULL && strstr(text, host_token) != NULL, "%s", text);
    free(text);
    ok((p = strstr(host.out, "(pid ")) != NULL && sscanf(p, "(pid %ld)", &pid) == 1 && pid > 0);
    ok(corral("ls", NULL) == 0);
    okf(corral("pair", "--json", NULL) == 0, "%s%s", host.out, host.err);
    ok(json_get(code, sizeof(code), host.out, "code") == 0);
    ok(claim(code, NULL, 0) == 200);
    ok(corral("up", NULL) == 0);
    ok(strstr(host.out, "already running") != NULL);
    if (pid > 0) {
        kill((pid_t)pid, SIGTERM);
        for (int i = 0; i < 200 && kill((pid_t)pid, 0) == 0; ++i)
            cr_test_sleep_ms(50);
        ok(kill((pid_t)pid, 0) != 0);
        if (kill((pid_t)pid, 0) == 0)
            kill((pid_t)pid, SIGKILL);
    }
    ok(access(sock, F_OK) != 0);
    host.env[CR_TEST_HOST_ENV_BASE] = env_rurl;
}

int main(void)
{
    const char *extra[] = {env_rurl, env_rtok, "LANG=C", "LC_ALL=", NULL};
    char gitexe[PATH_MAX];
    int status;
    if (cr_test_host_init(&host, "host-pair", extra) != 0)
        return 1;
    if (cr_test_redis_start(&redis) != 0 || cr_test_relay_start(&relay, cr_test_redis_url(&redis), NULL) != 0) {
        ok(0);
        return done_testing();
    }
    ok(cr_test_relay_admin(&relay, NULL, 0, "team", "create", "acme", NULL) == 0);
    ok(cr_test_relay_admin(&relay, host_token, sizeof(host_token), "token", "create", "--team", "acme", "--kind", "host",
                           NULL) == 0);
    if (cr_test_find_program(gitexe, sizeof(gitexe), "git") != 0)
        return 1;
    {
        const char *init[] = {gitexe, "init", "-q", "-b", "main", host.repo, NULL};
        const char *cfg1[] = {gitexe, "-C", host.repo, "-c", "user.name=T", "-c", "user.email=t@example.org", "commit", "-q",
                              "--allow-empty", "-m", "init", NULL};
        ok(cr_test_host_run(&host, init) == 0);
        ok(cr_test_host_run(&host, cfg1) == 0);
    }
    subtest("corral pair: a code and the team key in a link, claimed once", test_pair_and_claim);
    subtest("corral pair without a relay: a clear error", test_no_relay);
    subtest("corral up keeps the relay settings and starts corrald in the background", test_up);
    subtest("the relay refuses the token: its message", test_relay_refuses);
    status = done_testing();
    if (status != 0)
        note("relay log:\n%s", cr_test_relay_log_tail(&relay));
    cr_test_host_free(&host);
    cr_test_relay_stop(&relay);
    cr_test_redis_stop(&redis);
    return status;
}
