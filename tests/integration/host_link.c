/* host_link.c — corrald's relay link (server/src/link.c) against a real redis-server and a real corral-relay: every
 * event of the outbox stored exactly once across a relay crash, actions delivered once and not again after an ack,
 * a refused token stops the link, a poison envelope is dropped and the rest delivered. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <curl/curl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <uv.h>
#include "corral/buf.h"
#include "corral/http.h"
#include "corral/mp.h"
#include "corral/ulid.h"
#include "harness.h"
#include "http_client.h"
#include "link.h"
#include "mp_text.h"
#include "proc.h"
#include "redis_server.h"
#include "relay_proc.h"

#define PING_MS 300 /* the relay's downlink pings (CORRAL_DOWNLINK_PING_MS) */

static cr_test_redis_t redis;
static cr_test_relay_t relay;
static char host_tok[64], dev_tok[64], tok[64];
static uv_loop_t loop;

/* ---- a fake outbox: envelopes in order, dropped when acknowledged or refused ------------------------------------ */

typedef struct st_ev_t {
    char sid[16];
    uint64_t seq;
    cr_buf_t env;
    int acked, rejected;
} ev_t;

typedef struct st_outbox_t {
    ev_t *ev;
    size_t n, head;
    size_t batch[1024]; /* indices given by the last next_batch */
    size_t nbatch;
    unsigned calls;     /* next_batch calls */
    unsigned rejects;
    char rej_sid[16], rej_code[48];
    uint64_t rej_seq;
    /* downlink */
    unsigned actions;
    char act_id[64], act_aid[64], cursor[64];
    unsigned cursors;
    size_t kill_at;     /* > 0: SIGKILL the relay once this many are acked (from inside the link's callback) */
} outbox_t;

static size_t ob_acked(const outbox_t *ob);

static size_t ob_next_batch(cr_span_t *out, size_t max, void *data)
{
    outbox_t *ob = data;
    size_t k = 0;
    ++ob->calls;
    for (size_t i = ob->head; i < ob->n && k < max && k < sizeof(ob->batch) / sizeof(ob->batch[0]); ++i) {
        if (ob->ev[i].acked || ob->ev[i].rejected)
            continue;
        out[k] = (cr_span_t){ob->ev[i].env.base, ob->ev[i].env.len};
        ob->batch[k++] = i;
    }
    ob->nbatch = k;
    return k;
}

static void ob_advance(outbox_t *ob)
{
    while (ob->head < ob->n && (ob->ev[ob->head].acked || ob->ev[ob->head].rejected))
        ++ob->head;
}

static void ob_on_acked(const char *sid, uint64_t seq, void *data)
{
    outbox_t *ob = data;
    for (size_t i = 0; i < ob->n; ++i)
        if (strcmp(ob->ev[i].sid, sid) == 0 && ob->ev[i].seq <= seq)
            ob->ev[i].acked = 1;
    ob_advance(ob);
    if (ob->kill_at > 0 && ob_acked(ob) >= ob->kill_at) {
        ob->kill_at = 0;
        ok(cr_test_relay_kill(&relay) == 0); /* mid-stream: the link has more batches to send */
    }
}

static void ob_on_rejected(size_t index, const char *sid, uint64_t seq, const char *code, const char *message, void *data)
{
    outbox_t *ob = data;
    if (index < ob->nbatch)
        ob->ev[ob->batch[index]].rejected = 1;
    ++ob->rejects;
    snprintf(ob->rej_sid, sizeof(ob->rej_sid), "%s", sid);
    snprintf(ob->rej_code, sizeof(ob->rej_code), "%s", code);
    ob->rej_seq = seq;
    ob_advance(ob);
    (void)message;
}

static void ob_on_action(const char *id, const char *act, size_t act_len, void *data)
{
    outbox_t *ob = data;
    ++ob->actions;
    snprintf(ob->act_id, sizeof(ob->act_id), "%s", id);
    cr_test_mp_text(act, act_len, "aid", ob->act_aid, sizeof(ob->act_aid));
}

static void ob_on_cursor(const char *cursor, void *data)
{
    outbox_t *ob = data;
    ++ob->cursors;
    snprintf(ob->cursor, sizeof(ob->cursor), "%s", cursor);
}

static size_t ob_backlog(void *data)
{
    outbox_t *ob = data;
    size_t k = 0;
    for (size_t i = ob->head; i < ob->n; ++i)
        k += !ob->ev[i].acked && !ob->ev[i].rejected;
    return k;
}

static size_t ob_acked(const outbox_t *ob)
{
    size_t k = 0;
    for (size_t i = 0; i < ob->n; ++i)
        k += ob->ev[i].acked && !ob->ev[i].rejected;
    return k;
}

/* Appends an event envelope: seq 1 session.started, the others agent.message (bad: a body the relay refuses). */
static void ob_add(outbox_t *ob, const char *sid, uint64_t seq, int bad)
{
    ev_t *e;
    char text[32];
    ob->ev = realloc(ob->ev, (ob->n + 1) * sizeof(*ob->ev));
    e = &ob->ev[ob->n++];
    memset(e, 0, sizeof(*e));
    snprintf(e->sid, sizeof(e->sid), "%s", sid);
    e->seq = seq;
    cr_buf_init(&e->env, 4096);
    cr_mpw_map(&e->env, 7);
    CR_MPW_LIT(&e->env, "v"), cr_mpw_uint(&e->env, 1);
    CR_MPW_LIT(&e->env, "k");
    if (seq == 1)
        CR_MPW_LIT(&e->env, "session.started");
    else
        CR_MPW_LIT(&e->env, "agent.message");
    CR_MPW_LIT(&e->env, "sid"), cr_mpw_str(&e->env, sid, strlen(sid));
    CR_MPW_LIT(&e->env, "seq"), cr_mpw_uint(&e->env, seq);
    CR_MPW_LIT(&e->env, "ts"), cr_mpw_uint(&e->env, 1700000000000ull + seq);
    CR_MPW_LIT(&e->env, "pri"), cr_mpw_uint(&e->env, 1);
    CR_MPW_LIT(&e->env, "b");
    if (seq == 1) {
        cr_mpw_map(&e->env, 4);
        CR_MPW_LIT(&e->env, "name"), CR_MPW_LIT(&e->env, "linked");
        CR_MPW_LIT(&e->env, "agent"), CR_MPW_LIT(&e->env, "shell");
        CR_MPW_LIT(&e->env, "branch"), CR_MPW_LIT(&e->env, "corral/linked");
        CR_MPW_LIT(&e->env, "base"), CR_MPW_LIT(&e->env, "main");
    } else {
        cr_mpw_map(&e->env, 1);
        CR_MPW_LIT(&e->env, "text");
        if (bad) {
            cr_mpw_uint(&e->env, 42); /* text must be a str: bad_body */
        } else {
            snprintf(text, sizeof(text), "message %llu", (unsigned long long)seq);
            cr_mpw_str(&e->env, text, strlen(text));
        }
    }
}

static void ob_free(outbox_t *ob)
{
    for (size_t i = 0; i < ob->n; ++i)
        cr_buf_free(&ob->ev[i].env);
    free(ob->ev);
    memset(ob, 0, sizeof(*ob));
}

static const host_link_cbs_t cbs = {
    .next_batch = ob_next_batch,
    .on_acked = ob_on_acked,
    .on_rejected = ob_on_rejected,
    .on_action = ob_on_action,
    .on_cursor = ob_on_cursor,
    .backlog = ob_backlog,
};

/* ---- the loop --------------------------------------------------------------------------------------------------- */

static void on_tick(uv_timer_t *t)
{
    (void)t;
}

/* Runs the loop until cond(arg) holds or timeout_ms passed. Returns 1 when it holds. */
static int run_until(int (*cond)(void *arg), void *arg, long timeout_ms)
{
    uv_timer_t tick;
    int64_t deadline = cr_test_now_ms() + timeout_ms;
    int held;
    uv_timer_init(&loop, &tick);
    uv_timer_start(&tick, on_tick, 10, 10);
    while (!(held = cond(arg)) && cr_test_now_ms() < deadline)
        uv_run(&loop, UV_RUN_ONCE);
    uv_close((uv_handle_t *)&tick, NULL);
    uv_run(&loop, UV_RUN_NOWAIT);
    return held;
}

static int never(void *arg)
{
    (void)arg;
    return 0;
}

static void run_for(long ms)
{
    run_until(never, NULL, ms);
}

static int is_closed(void *arg)
{
    return *(int *)arg;
}

static void on_link_closed(void *data)
{
    *(int *)data = 1;
}

static host_link_t *new_link(outbox_t *ob, const char *token, const char *cursor)
{
    host_link_t *l = NULL;
    host_link_config_t conf = {
        .url = relay.url,
        .token = token,
        .cursor = cursor,
        .batch_n = 50,
        .idle_ms = 3 * PING_MS + 1000,
        .backoff_base_ms = 100,
        .backoff_max_ms = 1000,
    };
    if (!ok(host_link_new(&l, &loop, &conf, &cbs, ob) == 0))
        return NULL;
    host_link_start(l);
    return l;
}

static void free_link(host_link_t *l)
{
    int closed = 0;
    host_link_free(l, on_link_closed, &closed);
    ok(run_until(is_closed, &closed, 5000));
}

typedef struct st_wait_t {
    host_link_t *l;
    outbox_t *ob;
    size_t want;
    host_link_state_t state;
} wait_t;

static int all_acked(void *arg)
{
    wait_t *w = arg;
    return ob_acked(w->ob) >= w->want;
}

static int in_state(void *arg)
{
    wait_t *w = arg;
    host_link_status_t st;
    host_link_status(w->l, &st);
    return st.state == w->state;
}

static int actions_at_least(void *arg)
{
    wait_t *w = arg;
    return w->ob->actions >= w->want;
}

static int cursors_at_least(void *arg)
{
    wait_t *w = arg;
    return w->ob->cursors >= w->want;
}

static int settled(void *arg)
{
    wait_t *w = arg;
    return ob_backlog(w->ob) == 0;
}

/* ---- what the relay stored -------------------------------------------------------------------------------------- */

/* Counts, with the device token, how often each seq 1..max of sid is stored (seen[seq]); returns the total. */
static size_t stored(const char *sid, unsigned *seen, uint64_t max)
{
    char url[256], after[64] = "", next[64];
    size_t total = 0;
    memset(seen, 0, (max + 1) * sizeof(*seen));
    for (;;) {
        cr_test_resp_t r = {0};
        cr_span_t evs;
        cr_mp_item_t it;
        uint32_t n;
        snprintf(url, sizeof(url), "%s/v1/sessions/%s/events?limit=1000%s%s", relay.url, sid, after[0] ? "&after=" : "", after);
        if (cr_test_http(&r, "GET", url, dev_tok, NULL, NULL, 0, CR_HTTP_ACCEPT_MSGPACK) != 0 || r.status != 200) {
            okf(0, "GET events of %s: %ld %s", sid, r.status, r.body);
            cr_test_resp_free(&r);
            return total;
        }
        if (cr_test_mp_path(r.body, r.body_len, "events", &evs) != 0 || cr_mp_read(evs.base, evs.base + evs.len, &it) == 0) {
            cr_test_resp_free(&r);
            return total;
        }
        n = it.count;
        for (uint32_t i = 0; i < n; ++i) {
            char path[32], seq[32];
            snprintf(path, sizeof(path), "events.%u.e.seq", i);
            unsigned long long s = strtoull(cr_test_mp_text(r.body, r.body_len, path, seq, sizeof(seq)), NULL, 10);
            if (s >= 1 && s <= max)
                ++seen[s];
            ++total;
        }
        cr_test_mp_text(r.body, r.body_len, "next", next, sizeof(next));
        cr_test_resp_free(&r);
        if (n == 0 || strcmp(next, after) == 0)
            return total;
        snprintf(after, sizeof(after), "%s", next);
    }
}

/* ---- tests ------------------------------------------------------------------------------------------------------ */

#define NEV 1000
static const char *const sids[3] = {"LA", "LB", "LC"};

static void test_uplink_crash(void)
{
    outbox_t ob = {0};
    uint64_t per[3] = {0};
    host_link_t *l;
    host_link_status_t st;
    wait_t w = {.ob = &ob, .want = 300};

    for (int i = 0; i < NEV; ++i) {
        int s = i % 3;
        ob_add(&ob, sids[s], ++per[s], 0);
    }
    ob.kill_at = 300;
    if ((l = new_link(&ob, host_tok, NULL)) == NULL)
        return;
    w.l = l;
    w.state = HOST_LINK_CONNECTED;
    okf(run_until(all_acked, &w, 30000), "300 acked before the crash: %zu", ob_acked(&ob));
    okf(relay.pid == 0, "the relay was killed");
    run_for(700); /* the link fails, backs off, retries against a dead port */
    host_link_status(l, &st);
    okf(st.state == HOST_LINK_CONNECTING, "not connected while the relay is down (state %d)", (int)st.state);
    okf(st.last_error[0] != '\0', "an error is shown: %s", st.last_error);
    okf(strstr(st.last_error, host_tok) == NULL, "the error never holds the token");
    okf(ob_backlog(&ob) > 0, "a backlog is left: %zu", ob_backlog(&ob));
    /* as if the host had lost its last 100 acks: those events go again, and the relay must not store them twice */
    {
        size_t k = 0, i = ob.n;
        while (i > 0 && k < 100)
            if (ob.ev[--i].acked)
                ob.ev[i].acked = 0, ++k;
        for (ob.head = 0; ob.head < ob.n && ob.ev[ob.head].acked; ++ob.head)
            ;
        okf(k == 100, "100 acks forgotten");
        host_link_kick(l); /* the outbox has something to send again */
    }
    ok(cr_test_relay_restart(&relay) == 0);
    w.want = NEV;
    okf(run_until(all_acked, &w, 60000), "every event acked after the restart: %zu of %d", ob_acked(&ob), NEV);
    okf(run_until(in_state, &w, 10000), "the downlink is open again");
    host_link_status(l, &st);
    okf(st.backlog == 0, "no backlog: %zu", st.backlog);
    okf(st.events_rejected == 0, "nothing refused");
    /* the first resent batch (50) is acked as duplicates with the session's highest stored seq, which covers the rest */
    okf(cr_test_relay_metric(&relay, "corral_events_duplicate_total") >= 50, "resent events acked as duplicates: %lld",
        cr_test_relay_metric(&relay, "corral_events_duplicate_total"));

    for (int s = 0; s < 3; ++s) {
        unsigned *seen = calloc(per[s] + 1, sizeof(*seen));
        size_t total = stored(sids[s], seen, per[s]), once = 0;
        for (uint64_t q = 1; q <= per[s]; ++q)
            once += seen[q] == 1;
        okf(total == per[s] && once == per[s], "session %s: %zu stored, %zu of %llu exactly once", sids[s], total, once,
            (unsigned long long)per[s]);
        free(seen);
    }
    free_link(l);
    ob_free(&ob);
}

/* Posts a task action for sid from the device; its aid goes to aid. Returns the status. */
static long post_action(const char *sid, char aid[CR_ULID_LEN + 1])
{
    char url[256], json[256];
    cr_test_resp_t r = {0};
    long st;
    cr_ulid_new(aid);
    snprintf(url, sizeof(url), "%s/v1/actions", relay.url);
    snprintf(json, sizeof(json), "{\"sid\": \"%s\", \"k\": \"task\", \"aid\": \"%s\", \"b\": {\"text\": \"go\"}}", sid, aid);
    st = cr_test_http_json(&r, "POST", url, dev_tok, json) == 0 ? r.status : 0;
    cr_test_resp_free(&r);
    return st;
}

static void test_actions(void)
{
    outbox_t ob = {0};
    host_link_t *l;
    char aid[CR_ULID_LEN + 1], aid2[CR_ULID_LEN + 1], id1[64];
    wait_t w = {.ob = &ob, .state = HOST_LINK_CONNECTED};

    if ((l = new_link(&ob, host_tok, NULL)) == NULL)
        return;
    w.l = l;
    ok(run_until(in_state, &w, 10000));
    ok(post_action("LA", aid) == 202);
    w.want = 1;
    okf(run_until(actions_at_least, &w, 10000), "the action arrives on the downlink");
    ok_str(ob.act_aid, aid);
    snprintf(id1, sizeof(id1), "%s", ob.act_id);
    run_for(3 * PING_MS); /* pings come and go; nothing is delivered twice */
    okf(ob.actions == 1, "delivered once: %u", ob.actions);

    /* the relay crashes before the ack: the link reconnects after its cursor and gets nothing again */
    ok(cr_test_relay_kill(&relay) == 0);
    run_for(300);
    ok(cr_test_relay_restart(&relay) == 0);
    ok(run_until(in_state, &w, 10000));
    run_for(3 * PING_MS);
    okf(ob.actions == 1, "not again after a reconnect: %u", ob.actions);

    ok(host_link_ack(l, id1) == 0);
    w.want = 1;
    okf(run_until(cursors_at_least, &w, 10000), "the relay recorded the ack");
    ok_str(ob.cursor, id1);
    free_link(l);

    /* a restarted host (no cursor of its own: the relay's record) gets only what came after the ack */
    ob.actions = 0;
    if ((l = new_link(&ob, host_tok, NULL)) == NULL)
        return;
    w.l = l;
    ok(run_until(in_state, &w, 10000));
    run_for(3 * PING_MS);
    okf(ob.actions == 0, "the acked action is not delivered again: %u", ob.actions);
    ok(post_action("LB", aid2) == 202);
    w.want = 1;
    ok(run_until(actions_at_least, &w, 10000));
    ok_str(ob.act_aid, aid2);
    run_for(2 * PING_MS);
    okf(ob.actions == 1, "only the new one: %u", ob.actions);
    free_link(l);
    ob_free(&ob);
}

static void test_refused(void)
{
    outbox_t ob = {0};
    host_link_t *l;
    host_link_status_t st;
    unsigned calls;
    const char *bad = "crt_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA";
    wait_t w = {.ob = &ob, .state = HOST_LINK_REFUSED};

    ob_add(&ob, "LR", 1, 0);
    if ((l = new_link(&ob, bad, NULL)) == NULL)
        return;
    w.l = l;
    okf(run_until(in_state, &w, 10000), "the link reports the refusal");
    host_link_status(l, &st);
    okf(strstr(st.last_error, "refused the token") != NULL, "last error: %s", st.last_error);
    okf(strstr(st.last_error, bad) == NULL, "without the token");
    calls = ob.calls;
    run_for(1500);
    host_link_status(l, &st);
    okf(st.state == HOST_LINK_REFUSED && ob.calls == calls, "and stops: state %d, %u more batches", (int)st.state,
        ob.calls - calls);
    ok(ob_acked(&ob) == 0);
    free_link(l);
    ob_free(&ob);
}

static void test_poison(void)
{
    outbox_t ob = {0};
    host_link_t *l;
    unsigned seen[11];
    size_t total;
    wait_t w = {.ob = &ob};

    for (uint64_t q = 1; q <= 10; ++q)
        ob_add(&ob, "LP", q, q == 5);
    if ((l = new_link(&ob, host_tok, NULL)) == NULL)
        return;
    w.l = l;
    okf(run_until(settled, &w, 15000), "the outbox drains: %zu left", ob_backlog(&ob));
    okf(ob.rejects == 1, "one envelope refused: %u", ob.rejects);
    ok_str(ob.rej_sid, "LP");
    okf(ob.rej_seq == 5, "seq %llu", (unsigned long long)ob.rej_seq);
    ok_str(ob.rej_code, "bad_body");
    okf(ob_acked(&ob) == 9, "the other 9 acked: %zu", ob_acked(&ob));
    total = stored("LP", seen, 10);
    okf(total == 9, "9 stored: %zu", total);
    for (unsigned q = 1; q <= 10; ++q)
        okf(seen[q] == (q == 5 ? 0u : 1u), "seq %u stored %u times", q, seen[q]);
    free_link(l);
    ob_free(&ob);
}

static void test_stall(void)
{
    outbox_t ob = {0};
    host_link_t *l;
    host_link_status_t st;
    wait_t w = {.ob = &ob, .state = HOST_LINK_CONNECTED};

    if ((l = new_link(&ob, host_tok, NULL)) == NULL)
        return;
    w.l = l;
    ok(run_until(in_state, &w, 10000));
    ok(kill(relay.pid, SIGSTOP) == 0); /* the connection stays up, but nothing (not even a ping) comes any more */
    w.state = HOST_LINK_CONNECTING;
    okf(run_until(in_state, &w, 20000), "a silent downlink is given up"); /* idle timeout, or connect timeout mid-reconnect */
    host_link_status(l, &st);
    okf(strstr(st.last_error, "downlink") != NULL, "last error: %s", st.last_error);
    ok(kill(relay.pid, SIGCONT) == 0);
    w.state = HOST_LINK_CONNECTED;
    okf(run_until(in_state, &w, 15000), "and opened again once the relay answers");
    free_link(l);
    ob_free(&ob);
}

static int make_token(char *out, const char *kind)
{
    return cr_test_relay_admin(&relay, out, 64, "token", "create", "--team", "acme", "--kind", kind, NULL);
}

/* ---- the shared client: a request sent from inside a streaming callback ------------------------------------------ */

typedef struct st_nested_t {
    cr_http_t *h;
    int sent, send_rc;
    long status; /* of the request sent from inside the stream */
    uint64_t stream_id;
} nested_t;

static void on_nested_answer(const cr_http_answer_t *a, void *data)
{
    ((nested_t *)data)->status = a->status;
}

static void on_stream_end(const cr_http_answer_t *a, void *data)
{
    (void)a, (void)data;
}

/* The downlink's first bytes: sends another request right here, inside curl (a link acking an action it was just
 * given does this). */
static int on_stream_data(const char *p, size_t n, void *data)
{
    nested_t *t = data;
    cr_http_req_t req;
    (void)p, (void)n;
    if (t->sent)
        return 0;
    t->sent = 1;
    memset(&req, 0, sizeof(req));
    snprintf(req.url, sizeof(req.url), "%s/healthz", relay.url);
    req.method = "GET";
    t->send_rc = cr_http_send(t->h, &req, on_nested_answer, t, NULL);
    cr_http_req_free(&req);
    return 0;
}

static int nested_done(void *arg)
{
    return ((nested_t *)arg)->status != 0;
}

static void test_send_inside_stream(void)
{
    nested_t t = {0};
    cr_http_req_t req;
    char auth[128];
    int closed = 0;
    if (!ok(cr_http_new(&t.h, &loop) == 0))
        return;
    cr_http_set_host_connections(t.h, 4);
    memset(&req, 0, sizeof(req));
    snprintf(req.url, sizeof(req.url), "%s/v1/host/actions", relay.url);
    req.method = "GET";
    req.total_ms = -1;
    req.on_data = on_stream_data;
    snprintf(auth, sizeof(auth), "Bearer %s", host_tok);
    ok(cr_http_req_header(&req, "Authorization", auth) == 0);
    ok(cr_http_send(t.h, &req, on_stream_end, &t, &t.stream_id) == 0);
    okf(run_until(nested_done, &t, 10000), "the request sent from inside the stream's callback was answered");
    ok(t.send_rc == 0);
    ok(t.status == 200);
    cr_http_close(t.h, on_link_closed, &closed);
    run_until(is_closed, &closed, 5000);
}

int main(void)
{
    char ping_env[64];
    const char *env[] = {ping_env, NULL};
    snprintf(ping_env, sizeof(ping_env), "CORRAL_DOWNLINK_PING_MS=%d", PING_MS);
    curl_global_init(CURL_GLOBAL_DEFAULT);
    uv_loop_init(&loop);
    if (cr_test_redis_start(&redis) != 0 || cr_test_relay_start(&relay, cr_test_redis_url(&redis), env) != 0) {
        ok(0);
        return done_testing();
    }
    ok(cr_test_relay_admin(&relay, tok, sizeof(tok), "team", "create", "acme", NULL) == 0);
    ok(make_token(host_tok, "host") == 0);
    ok(make_token(dev_tok, "device") == 0);

    subtest("1,000 events of 3 sessions stored exactly once across a relay crash", test_uplink_crash);
    subtest("an action arrives once; after the ack and a reconnect it does not come again", test_actions);
    subtest("a stalled downlink is dropped and reopened", test_stall);
    subtest("a refused token is reported and stops the link", test_refused);
    subtest("a poison envelope is dropped, the rest delivered", test_poison);
    subtest("the shared client takes a request sent from inside a streaming callback", test_send_inside_stream);

    int status = done_testing();
    if (status != 0)
        note("relay log:\n%s", cr_test_relay_log_tail(&relay));
    cr_test_relay_stop(&relay);
    cr_test_redis_stop(&redis);
    uv_loop_close(&loop);
    curl_global_cleanup();
    return status;
}
