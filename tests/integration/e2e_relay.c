/* e2e_relay.c — the whole path of issue 5 with real processes: redis-server, corral-relay, corrald on a real git
 * repository with the scripted fake Claude, and a phone (a WebSocket client with a device token). The phone sees the
 * approval request with the session's identity, approves it over REST, sees the agent go on and the diff, approves
 * the diff, and main gets the identity's commit. Then the relay is killed while an agent works and restarted: every
 * event reaches the phone exactly once. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include "corral/buf.h"
#include "corral/mp.h"
#include "corral/ulid.h"
#include "harness.h"
#include "http_client.h"
#include "mp_text.h"
#include "host_proc.h"
#include "proc.h"
#include "redis_server.h"
#include "relay_proc.h"
#include "ws_client.h"

/* paths here are a short temp dir plus short names: a cut path would fail the test loudly anyway */
#pragma GCC diagnostic ignored "-Wformat-truncation"

#define WAIT_MS 20000

static cr_test_redis_t redis;
static cr_test_relay_t relay;
static char team_admin[256], host_token[256], device_token[256];

static cr_test_host_t host;
static char claude_cmd[2 * PATH_MAX + 64], env_codex[2 * PATH_MAX + 96], env_cstate[PATH_MAX + 64], env_cmd[2 * PATH_MAX + 96],
    env_state[PATH_MAX + 64], env_log[PATH_MAX + 64], env_rurl[128], env_rtok[300];
static char sid1[80];

/* The corral CLI and git (exactly four arguments, NULL for none) in the test's repository; see host_proc.h. */
#define corral(...) cr_test_host_corral(&host, __VA_ARGS__)
#define git(a1, a2, a3, a4) cr_test_host_git(&host, a1, a2, a3, a4, NULL)

static void start_daemon(void)
{
    okf(cr_test_host_start(&host) == 0, "corrald listens on %s", host.sock);
}

/* ---- the phone ------------------------------------------------------------------------------------------------------ */

static int phone_connect(cr_test_ws_t *ws, const char *after)
{
    char path[64];
    snprintf(path, sizeof(path), "/v1/ws?after=%s", after);
    memset(ws, 0, sizeof(*ws));
    return cr_test_ws_connect(ws, relay.port, path, device_token, NULL, 5000);
}

/* Reads frames until an event of kind k (of session sid unless NULL; whose body's text is text unless NULL) arrives;
 * its envelope goes to ev (emptied first). Returns 1 when it came within timeout_ms. */
static int phone_wait(cr_test_ws_t *ws, cr_buf_t *ev, const char *k, const char *sid, const char *text, int timeout_ms)
{
    cr_buf_t f;
    char fk[32], ek[64], esid[80], etext[256];
    int64_t end = cr_test_now_ms() + timeout_ms;
    int found = 0;
    cr_buf_init(&f, 16u << 20);
    while (!found && cr_test_now_ms() < end) {
        cr_span_t e;
        int rc;
        f.len = 0;
        if ((rc = cr_test_ws_recv(ws, &f, NULL, (int)(end - cr_test_now_ms()))) != 0) {
            if (rc != CR_EAGAIN)
                note("the phone's socket closed (%d) while waiting for %s", ws->close_code, k);
            break;
        }
        if (strcmp(cr_test_mp_text(f.base, f.len, "k", fk, sizeof(fk)), "ev") != 0 ||
            cr_test_mp_path(f.base, f.len, "e", &e) != 0)
            continue;
        cr_test_mp_text(e.base, e.len, "k", ek, sizeof(ek));
        cr_test_mp_text(e.base, e.len, "sid", esid, sizeof(esid));
        cr_test_mp_text(e.base, e.len, "b.text", etext, sizeof(etext));
        if (strcmp(ek, k) == 0 && (sid == NULL || strcmp(esid, sid) == 0) && (text == NULL || strcmp(etext, text) == 0)) {
            ev->len = 0;
            cr_buf_append(ev, e.base, e.len);
            found = 1;
        }
    }
    cr_buf_free(&f);
    if (!found)
        note("the phone waited in vain for %s%s%s; corrald's log ends:\n%s", k, text != NULL ? " " : "",
             text != NULL ? text : "", cr_test_host_log_tail(&host));
    return found;
}

static const char *ev_text(const cr_buf_t *ev, const char *path)
{
    static char buf[8][512];
    static int i;
    i = (i + 1) % 8;
    return cr_test_mp_text(ev->base, ev->len, path, buf[i], sizeof(buf[i]));
}

/* POST /v1/actions as the phone. Returns the HTTP status (0 when no answer). */
static long phone_act(const char *sid, const char *k, const char *rid, char *aid_out)
{
    char json[512], url[128], aid[32];
    cr_test_resp_t resp;
    long status;
    cr_ulid_new(aid);
    if (rid != NULL)
        snprintf(json, sizeof(json), "{\"sid\":\"%s\",\"k\":\"%s\",\"aid\":\"%s\",\"b\":{\"rid\":\"%s\"}}", sid, k, aid, rid);
    else
        snprintf(json, sizeof(json), "{\"sid\":\"%s\",\"k\":\"%s\",\"aid\":\"%s\",\"b\":{}}", sid, k, aid);
    snprintf(url, sizeof(url), "%s/v1/actions", relay.url);
    if (cr_test_http_json(&resp, "POST", url, device_token, json) != 0)
        return 0;
    status = resp.status;
    if (status != 202)
        note("POST /v1/actions: %ld %s", status, resp.body);
    cr_test_resp_free(&resp);
    if (aid_out != NULL)
        memcpy(aid_out, aid, sizeof(aid));
    return status;
}

/* ---- the cases ------------------------------------------------------------------------------------------------------- */

static void test_approve_from_phone(void)
{
    cr_test_ws_t ws;
    cr_buf_t ev;
    char rid[80], aid[32], commit[64], path[2 * PATH_MAX + 64];
    cr_buf_init(&ev, 16u << 20);
    ok(phone_connect(&ws, "0") == 0);

    ok(corral("new", "@bash echo hi\n@write hello.txt hi\n@text done writing", "--name", "auth", "--identity",
              "feature-auth-agent", NULL) == 0);
    okf(strstr(host.out, "auth: started claude") != NULL, "%s%s", host.out, host.err);

    /* the Bash request reaches the phone, naming the identity */
    ok(phone_wait(&ws, &ev, "approval.request", NULL, NULL, WAIT_MS));
    snprintf(sid1, sizeof(sid1), "%s", ev_text(&ev, "sid"));
    ok_str(ev_text(&ev, "idn"), "feature-auth-agent");
    ok_str(ev_text(&ev, "pri"), "2");
    ok_str(ev_text(&ev, "b.tool"), "Bash");
    snprintf(rid, sizeof(rid), "%s", ev_text(&ev, "b.rid"));
    ok(rid[0] != '\0');
    ok(phone_act(sid1, "approve", rid, aid) == 202);
    ok(phone_wait(&ws, &ev, "action.applied", sid1, NULL, WAIT_MS));
    ok_str(ev_text(&ev, "b.aid"), aid);
    ok_str(ev_text(&ev, "b.ok"), "true");
    ok_str(ev_text(&ev, "idn"), "feature-auth-agent");

    /* the Write request, approved the same way */
    ok(phone_wait(&ws, &ev, "approval.request", sid1, NULL, WAIT_MS));
    ok_str(ev_text(&ev, "b.tool"), "Write");
    snprintf(rid, sizeof(rid), "%s", ev_text(&ev, "b.rid"));
    ok(phone_act(sid1, "approve", rid, aid) == 202);
    ok(phone_wait(&ws, &ev, "action.applied", sid1, NULL, WAIT_MS));
    ok_str(ev_text(&ev, "b.aid"), aid);
    ok_str(ev_text(&ev, "b.ok"), "true");
    ok(phone_wait(&ws, &ev, "agent.message", sid1, "done writing", WAIT_MS));

    /* the diff */
    ok(phone_wait(&ws, &ev, "diff.ready", sid1, NULL, WAIT_MS));
    ok_str(ev_text(&ev, "pri"), "2");
    ok_str(ev_text(&ev, "b.files.0.path"), "hello.txt");
    ok_str(ev_text(&ev, "b.files.0.status"), "added");
    ok_str(ev_text(&ev, "b.files.0.add"), "1");
    ok_str(ev_text(&ev, "b.files.0.del"), "0");
    ok_str(ev_text(&ev, "b.files.1.path"), "");
    ok_str(ev_text(&ev, "b.add"), "1");
    ok_str(ev_text(&ev, "b.del"), "0");
    okf(strstr(ev_text(&ev, "b.patch"), "+++ b/hello.txt") != NULL, "patch: %s", ev_text(&ev, "b.patch"));

    /* approved from the phone: committed as the identity and fast-forwarded into main */
    ok(phone_act(sid1, "approve", NULL, aid) == 202);
    ok(phone_wait(&ws, &ev, "action.applied", sid1, NULL, WAIT_MS));
    ok_str(ev_text(&ev, "b.aid"), aid);
    okf(strcmp(ev_text(&ev, "b.ok"), "true") == 0, "detail: %s", ev_text(&ev, "b.detail"));
    okf(strstr(ev_text(&ev, "b.detail"), "merged into main (ff)") != NULL, "detail: %s", ev_text(&ev, "b.detail"));
    snprintf(commit, sizeof(commit), "%s", ev_text(&ev, "b.commit"));
    ok(strlen(commit) == 40);
    ok(git("rev-parse", "main", NULL, NULL) == 0);
    host.out[strcspn(host.out, "\n")] = '\0';
    ok_str(host.out, commit);
    ok(git("log", "--format=%an <%ae>|%s", "main", NULL) == 0);
    okf(strncmp(host.out, "feature-auth-agent <feature-auth-agent@corral.invalid>|auth: @bash echo hi\n", 75) == 0, "%s", host.out);
    okf(strstr(host.out, "|init\n") != NULL && strstr(host.out, "Merge") == NULL, "fast-forward, no merge commit:\n%s", host.out);
    ok(git("show", "main:hello.txt", NULL, NULL) == 0);
    ok_str(host.out, "hi");
    /* an action that does not apply now is answered on the phone, not lost */
    ok(phone_act(sid1, "approve", NULL, aid) == 202);
    ok(phone_wait(&ws, &ev, "action.applied", sid1, NULL, WAIT_MS));
    ok_str(ev_text(&ev, "b.aid"), aid);
    ok_str(ev_text(&ev, "b.ok"), "false");
    okf(strstr(ev_text(&ev, "b.detail"), "nothing in auth waits for an approval") != NULL, "detail: %s",
        ev_text(&ev, "b.detail"));
    /* the cursor of the applied actions is kept for the next start */
    snprintf(path, sizeof(path), "%s/.corral/relay.cursor", host.repo);
    {
        char *cur = NULL;
        int64_t end = cr_test_now_ms() + 5000;
        while (cr_test_now_ms() < end && ((cur = cr_test_file_read(path, 0, 100)) == NULL || strchr(cur, '-') == NULL)) {
            free(cur);
            cur = NULL;
            cr_test_sleep_ms(100);
        }
        okf(cur != NULL && strchr(cur, '-') != NULL, "relay.cursor holds a stream id: %s", cur != NULL ? cur : "(none)");
        free(cur);
    }
    cr_test_ws_close(&ws);
    cr_buf_free(&ev);
}

/* Lines of the session's transcript.jsonl holding needle (NULL: every line): the events the host emitted. */
static int transcript_count(const char *sid, const char *needle)
{
    char path[2 * PATH_MAX + 128], *t;
    int n = 0;
    snprintf(path, sizeof(path), "%s/.corral/sessions/%s/transcript.jsonl", host.repo, sid);
    if ((t = cr_test_file_read(path, 0, 16 << 20)) == NULL)
        return -1;
    for (char *p = t, *nl; *p != '\0'; p = nl + 1) {
        if ((nl = strchr(p, '\n')) == NULL)
            break;
        *nl = '\0';
        n += needle == NULL || strstr(p, needle) != NULL;
    }
    free(t);
    return n;
}

static int transcript_events(const char *sid)
{
    return transcript_count(sid, NULL);
}

/* Replays the team's events from after=0 and counts each seq of sid (seen[seq]). Returns the number of ev frames of
 * sid, or -1 when the replay did not end with synced. */
static int replay_count(const char *sid, int *seen, int max)
{
    cr_test_ws_t ws;
    cr_buf_t f;
    char k[32], esid[80], seq[32];
    int n = 0, synced = 0;
    memset(seen, 0, sizeof(int) * (size_t)max);
    if (phone_connect(&ws, "0") != 0)
        return -1;
    cr_buf_init(&f, 16u << 20);
    for (;;) {
        cr_span_t e;
        f.len = 0;
        if (cr_test_ws_recv(&ws, &f, NULL, 5000) != 0)
            break;
        cr_test_mp_text(f.base, f.len, "k", k, sizeof(k));
        if (strcmp(k, "synced") == 0) {
            synced = 1;
            break;
        }
        if (strcmp(k, "ev") != 0 || cr_test_mp_path(f.base, f.len, "e", &e) != 0)
            continue;
        if (strcmp(cr_test_mp_text(e.base, e.len, "sid", esid, sizeof(esid)), sid) != 0)
            continue;
        ++n;
        long s = atol(cr_test_mp_text(e.base, e.len, "seq", seq, sizeof(seq)));
        if (s > 0 && s < max)
            ++seen[s];
    }
    cr_buf_free(&f);
    cr_test_ws_close(&ws);
    return synced ? n : -1;
}

/* Checks that the phone gets every event of sid the host emitted, each seq once (the last ones may still be on their
 * way: waits up to WAIT_MS for the count to match). */
static void check_once(const char *sid, const char *what)
{
    int seen[512], n = -1, want = 0, bad = 0;
    int64_t end = cr_test_now_ms() + WAIT_MS;
    do {
        if (n >= 0)
            cr_test_sleep_ms(300);
        want = transcript_events(sid);
        n = replay_count(sid, seen, 512);
    } while (n != want && cr_test_now_ms() < end);
    for (int i = 1; i < 512; ++i)
        if (seen[i] != (i <= want ? 1 : 0))
            bad = i;
    okf(n == want && want > 0 && bad == 0, "%s: the phone has %d events of %s, the host emitted %d, each seq once (first bad seq %d)",
        what, n, sid, want, bad);
}

static void test_relay_outage(void)
{
    cr_test_ws_t ws;
    cr_buf_t ev;
    char sid2[80];
    int64_t end;
    cr_buf_init(&ev, 16u << 20);
    ok(phone_connect(&ws, "0") == 0);
    ok(corral("new", "@text one\n@sleep 2500\n@text two\n@bash echo three\n@text four", "--name", "busy", "--identity",
              "feature-auth-agent", NULL) == 0);
    ok(phone_wait(&ws, &ev, "agent.message", NULL, "one", WAIT_MS));
    snprintf(sid2, sizeof(sid2), "%s", ev_text(&ev, "sid"));
    /* the relay crashes while the agent works */
    ok(cr_test_relay_kill(&relay) == 0);
    cr_test_ws_close(&ws);
    end = cr_test_now_ms() + WAIT_MS;
    while (cr_test_now_ms() < end) {
        corral("log", "busy", NULL);
        if (strstr(host.out, "approval.request") != NULL)
            break;
        cr_test_sleep_ms(100);
    }
    okf(strstr(host.out, "two") != NULL && strstr(host.out, "approval.request") != NULL,
        "the agent went on without the relay:\n%s", host.out);
    /* back: the backlog drains, the phone can answer what waited */
    ok(cr_test_relay_restart(&relay) == 0);
    ok(phone_connect(&ws, "0") == 0);
    ok(phone_wait(&ws, &ev, "approval.request", sid2, NULL, WAIT_MS));
    ok_str(ev_text(&ev, "b.tool"), "Bash");
    ok(phone_act(sid2, "approve", ev_text(&ev, "b.rid"), NULL) == 202);
    ok(phone_wait(&ws, &ev, "agent.message", sid2, "four", WAIT_MS));
    cr_test_ws_close(&ws);
    check_once(sid2, "after the outage");
    check_once(sid1, "the first session");
    cr_buf_free(&ev);
}

static void test_restart_cursor(void)
{
    char path[2 * PATH_MAX + 64], want[128], *cur, *log;
    int before = transcript_count(sid1, "\"k\":\"action.applied\"");
    snprintf(path, sizeof(path), "%s/.corral/relay.cursor", host.repo);
    cur = cr_test_file_read(path, 0, 100);
    ok(cur != NULL);
    if (cur == NULL)
        return;
    cur[strcspn(cur, "\n")] = '\0';
    ok(cr_test_host_stop(&host) == 0);
    start_daemon();
    snprintf(want, sizeof(want), "downlink after %s", cur);
    snprintf(path, sizeof(path), "%s/corrald.log", host.tmp);
    {
        int64_t end = cr_test_now_ms() + 10000;
        int open_seen = 0;
        while (!open_seen && cr_test_now_ms() < end) {
            log = cr_test_file_read(path, 0, 64u << 20);
            open_seen = log != NULL && strstr(log, "relay: link connected") != NULL &&
                        strstr(strstr(log, want), "relay: link connected") != NULL;
            free(log);
            if (!open_seen)
                cr_test_sleep_ms(100);
        }
        okf(open_seen, "corrald starts the downlink after %s and connects", cur);
    }
    /* the actions before the cursor were not applied again; what the host emitted meanwhile reached the phone once */
    okf(before == 4 && transcript_count(sid1, "\"k\":\"action.applied\"") == before, "%d action.applied events", before);
    check_once(sid1, "after the restart");
    free(cur);
}

/* The same flow with the fake Codex (app-server JSON-RPC): its approvals and its diff go through the phone too. */
static void test_codex(void)
{
    cr_test_ws_t ws;
    cr_buf_t ev;
    char sid[80], rid[80], aid[32];
    cr_buf_init(&ev, 16u << 20);
    ok(phone_connect(&ws, "0") == 0);
    ok(corral("new", "@bash echo hi\n@write codex.txt from codex\n@text codex done", "--name", "cx", "--agent", "codex",
              "--identity", "codex-agent", NULL) == 0);
    okf(strstr(host.out, "cx: started codex") != NULL, "%s%s", host.out, host.err);
    /* the replay from 0 holds the earlier sessions too: this one is the session.started named cx */
    while (phone_wait(&ws, &ev, "session.started", NULL, NULL, WAIT_MS) && strcmp(ev_text(&ev, "b.name"), "cx") != 0)
        ;
    snprintf(sid, sizeof(sid), "%s", ev_text(&ev, "sid"));
    ok_str(ev_text(&ev, "b.agent"), "codex");
    for (int i = 0; i < 2; ++i) {
        ok(phone_wait(&ws, &ev, "approval.request", sid, NULL, WAIT_MS));
        ok_str(ev_text(&ev, "idn"), "codex-agent");
        snprintf(rid, sizeof(rid), "%s", ev_text(&ev, "b.rid"));
        ok(phone_act(sid, "approve", rid, aid) == 202);
        ok(phone_wait(&ws, &ev, "action.applied", sid, NULL, WAIT_MS));
        ok_str(ev_text(&ev, "b.aid"), aid);
        ok_str(ev_text(&ev, "b.ok"), "true");
    }
    ok(phone_wait(&ws, &ev, "agent.message", sid, "codex done", WAIT_MS));
    ok(phone_wait(&ws, &ev, "diff.ready", sid, NULL, WAIT_MS));
    ok_str(ev_text(&ev, "b.files.0.path"), "codex.txt");
    ok_str(ev_text(&ev, "b.add"), "1");
    ok(phone_act(sid, "approve", NULL, aid) == 202);
    ok(phone_wait(&ws, &ev, "action.applied", sid, NULL, WAIT_MS));
    okf(strcmp(ev_text(&ev, "b.ok"), "true") == 0, "detail: %s", ev_text(&ev, "b.detail"));
    ok(git("log", "-1", "--format=%an", "main") == 0);
    ok_str(host.out, "codex-agent\n");
    ok(git("show", "main:codex.txt", NULL, NULL) == 0);
    ok_str(host.out, "from codex");
    cr_test_ws_close(&ws);
    check_once(sid, "codex");
    cr_buf_free(&ev);
}

int main(void)
{
    char statedir[PATH_MAX + 16];
    const char *extra[] = {env_cmd, env_state, env_log, env_rurl, env_rtok, env_codex, env_cstate, NULL};
    if (cr_test_host_init(&host, "e2e-relay", extra) != 0)
        return 1;
    if (cr_test_redis_start(&redis) != 0 || cr_test_relay_start(&relay, cr_test_redis_url(&redis), NULL) != 0) {
        ok(!"redis-server and corral-relay start");
        return done_testing();
    }
    ok(cr_test_relay_admin(&relay, team_admin, sizeof(team_admin), "team", "create", "acme", NULL) == 0);
    ok(cr_test_relay_admin(&relay, device_token, sizeof(device_token), "token", "create", "--team", "acme", "--kind",
                           "device", "--label", "phone", NULL) == 0);
    ok(cr_test_relay_admin(&relay, host_token, sizeof(host_token), "token", "create", "--team", "acme", "--kind", "host",
                           "--label", "laptop", NULL) == 0);
    snprintf(statedir, sizeof(statedir), "%s/fake", host.tmp);
    snprintf(claude_cmd, sizeof(claude_cmd), "python3 %s/tests/fakes/fake_claude.py", cr_test_source_dir());
    snprintf(env_cmd, sizeof(env_cmd), "CORRAL_AGENT_CLAUDE_CMD=%s", claude_cmd);
    snprintf(env_state, sizeof(env_state), "FAKE_CLAUDE_STATE_DIR=%s", statedir);
    snprintf(env_log, sizeof(env_log), "FAKE_CLAUDE_LOG=%s/fake.log", host.tmp);
    snprintf(env_rurl, sizeof(env_rurl), "CORRAL_RELAY_URL=%s", relay.url);
    snprintf(env_rtok, sizeof(env_rtok), "CORRAL_RELAY_TOKEN=%s", host_token);
    snprintf(env_codex, sizeof(env_codex), "CORRAL_AGENT_CODEX_CMD=python3 %s/tests/fakes/fake_codex.py",
             cr_test_source_dir());
    snprintf(env_cstate, sizeof(env_cstate), "FAKE_CODEX_STATE_DIR=%s", statedir);
    mkdir(statedir, 0700);
    ok(cr_test_host_make_repo(&host) == 0);
    start_daemon();
    subtest("the phone approves a command, an edit and the diff; main gets the identity's commit", test_approve_from_phone);
    subtest("the relay crashes while the agent works: every event reaches the phone exactly once", test_relay_outage);
    subtest("a restarted corrald goes on after its saved cursor: no action applied twice", test_restart_cursor);
    subtest("the same flow with the fake Codex", test_codex);
    okf(cr_test_host_stop(&host) == 0, "corrald exits 0 after SIGTERM");
    {
        char *all = cr_test_file_read(host.log, 0, 64u << 20);
        ok(all != NULL && strstr(all, "relay: link connected") != NULL);
        okf(all != NULL && strstr(all, host_token) == NULL, "the host token is never logged");
        free(all);
    }
    cr_test_host_free(&host);
    cr_test_relay_stop(&relay);
    cr_test_redis_stop(&redis);
    return done_testing();
}
