/* bench_actions.c — part (d) of the relay benchmark: the action round trip, from a phone's POST /v1/actions to the
 * frame on its host's downlink GET /v1/host/actions, one action at a time, both over HTTP/2 in one curl multi. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench_relay.h"
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "corral/error.h"
#include "corral/mp.h"
#include "corral/ulid.h"
#include "http_client.h"

#define WAIT_NS 5000000000ull /* an action that takes longer is counted as lost */
#define ACK_EVERY 1000        /* the host confirms what it took (the relay holds at most 10,000 per host) */
#define MARK ".bx"            /* in an aid: the action's index, 8 digits */

typedef struct st_downlink_t {
    cr_buf_t in;         /* bytes not parsed yet */
    uint64_t *t_frame;   /* bench_now_ns() when action i's frame came, 0 before */
    size_t n;
    uint64_t frames, acts;
    char last_id[64];    /* the stream id of the last action frame: the host's cursor */
    int broken;
} downlink_t;

/* The downlink's bytes: concatenated msgpack maps, {k:"act", id, act} among pings. */
static size_t on_downlink(char *p, size_t size, size_t nmemb, void *data)
{
    downlink_t *d = data;
    size_t n = size * nmemb;
    uint64_t now = bench_now_ns();
    if (cr_buf_append(&d->in, p, n) != 0)
        return 0;
    while (d->in.len > 0) {
        size_t used = 0;
        cr_span_t v;
        cr_mp_item_t it;
        const char *m;
        int rc = cr_mp_check(d->in.base, d->in.len, NULL, d->in.len, NULL, &used);
        if (rc == CR_EAGAIN)
            break;
        if (rc != 0) {
            fprintf(stderr, "  downlink: not msgpack: %s\n", cr_error_last()->message);
            d->broken = 1;
            return 0;
        }
        ++d->frames;
        if ((m = memmem(d->in.base, used, MARK, 3)) != NULL && m + 11 <= d->in.base + used) {
            size_t idx = 0;
            for (int i = 3; i < 11; ++i)
                idx = idx * 10 + (size_t)(m[i] - '0');
            if (idx < d->n && d->t_frame[idx] == 0)
                d->t_frame[idx] = now;
            ++d->acts;
            if (cr_mp_map_get(d->in.base, used, "id", &v) == 0 && cr_mp_read(v.base, v.base + v.len, &it) != 0 &&
                it.bytes.len < sizeof(d->last_id)) {
                memcpy(d->last_id, it.bytes.base, it.bytes.len);
                d->last_id[it.bytes.len] = '\0';
            }
        }
        cr_buf_consume(&d->in, used);
    }
    return n;
}

/* {v:1, k:"approve", sid, aid, ts, b:{}} */
static void build_action(call_t *c, const char *sid, size_t i)
{
    char aid[64];
    char *q;
    snprintf(aid, sizeof(aid), "%s" MARK "%08zu", bench_run_id(), i);
    c->req.len = 0;
    bench_reserve(&c->req, 256);
    q = c->req.base;
    *q++ = (char)0x86;
    q += mp_put_str(q, "v", 1);
    *q++ = 1;
    q += mp_put_str(q, "k", 1);
    q += mp_put_str(q, "approve", 7);
    q += mp_put_str(q, "sid", 3);
    q += mp_put_str(q, sid, strlen(sid));
    q += mp_put_str(q, "aid", 3);
    q += mp_put_str(q, aid, strlen(aid));
    q += mp_put_str(q, "ts", 2);
    *q++ = (char)0xcf;
    for (int k = 0; k < 8; ++k)
        *q++ = (char)(cr_now_ms() >> (56 - 8 * k));
    q += mp_put_str(q, "b", 1);
    *q++ = (char)0x80;
    c->req.len = (size_t)(q - c->req.base);
}

void part_actions(int n)
{
    char host_tok[128], dev[128], url[160], line[96], sid[64], json[128];
    struct curl_slist *resolve = NULL;
    downlink_t d = {0};
    call_t dl = {0}, post = {0};
    CURLM *m = NULL;
    hist_t *rt = hist_new(), *post_lat = hist_new();
    cr_test_resp_t resp;
    uint64_t lost = 0, failed = 0, t0;
    long status = 0;
    const cr_test_relay_t *rl;

    printf("\n(d) action round trip: a phone POSTs %d actions one at a time, a host holds its downlink\n", n);
    cr_buf_init(&d.in, 16u << 20);
    d.n = (size_t)n;
    if ((d.t_frame = calloc((size_t)n, sizeof(*d.t_frame))) == NULL)
        goto fail;
    if (bench_relay_start() != 0 || bench_team("actions") != 0 ||
        bench_token(host_tok, sizeof(host_tok), "actions", "host", "laptop") != 0 ||
        bench_token(dev, sizeof(dev), "actions", "device", "phone") != 0)
        goto fail;
    rl = bench_relay();

    /* the session the actions are for: the host posts its first event */
    snprintf(sid, sizeof(sid), "%s.act", bench_run_id());
    {
        char body[256];
        size_t len;
        body[0] = (char)0x91;
        len = 1 + bench_put_event(body + 1, sid, 1, "session for the action benchmark", 32);
        snprintf(url, sizeof(url), "%s/v1/host/events", rl->url);
        if (cr_test_http(&resp, "POST", url, host_tok, "application/msgpack", body, len, CR_HTTP_H2C) != 0 ||
            resp.status != 200) {
            fprintf(stderr, "  the session's event answered %ld: %.200s\n", resp.status, resp.body);
            cr_test_resp_free(&resp);
            goto fail;
        }
        cr_test_resp_free(&resp);
    }

    /* the downlink on a connection of its own (its own host name), the phone's POSTs on another */
    m = multi_new();
    snprintf(line, sizeof(line), "host.bench:%d:127.0.0.1", rl->port);
    resolve = curl_slist_append(resolve, line);
    snprintf(url, sizeof(url), "http://host.bench:%d", rl->port);
    if (m == NULL || h2_warm(m, url, resolve) != 0 || h2_warm(m, rl->url, NULL) != 0)
        goto fail;
    strncat(url, "/v1/host/actions", sizeof(url) - strlen(url) - 1);
    if (call_init(&dl, url, host_tok, resolve) != 0)
        goto fail;
    curl_easy_setopt(dl.easy, CURLOPT_HTTPGET, 1L);
    curl_easy_setopt(dl.easy, CURLOPT_WRITEFUNCTION, on_downlink);
    curl_easy_setopt(dl.easy, CURLOPT_WRITEDATA, &d);
    dl.busy = 1;
    curl_multi_add_handle(m, dl.easy);
    for (t0 = bench_now_ns(); status == 0 && bench_now_ns() - t0 < WAIT_NS;) {
        multi_step(m, 50, NULL, NULL);
        curl_easy_getinfo(dl.easy, CURLINFO_RESPONSE_CODE, &status);
    }
    if (status != 200 || !dl.busy) {
        fprintf(stderr, "  the downlink answered %ld\n", status);
        goto fail;
    }
    snprintf(url, sizeof(url), "%s/v1/actions", rl->url);
    if (call_init(&post, url, dev, NULL) != 0)
        goto fail;

    bench_perf_start("d");
    for (int i = 0; i < n && !d.broken; ++i) {
        uint64_t start;
        build_action(&post, sid, (size_t)i);
        call_start(m, &post);
        start = post.t_start;
        multi_step(m, -1, NULL, NULL);
        /* until the answer came and, when it was 202, the frame too */
        while ((post.busy || (post.status == 202 && d.t_frame[i] == 0)) && bench_now_ns() - start < WAIT_NS && dl.busy)
            multi_step(m, 50, NULL, NULL);
        while (post.busy) /* an answer that has not come within WAIT_NS still ends the request */
            multi_step(m, 50, NULL, NULL);
        if (post.status != 202) {
            if (failed++ < 3)
                fprintf(stderr, "  action %d answered %ld (%s): %.*s\n", i, post.status, curl_easy_strerror(post.rc),
                        (int)(post.resp.len < 200 ? post.resp.len : 200), post.resp.base != NULL ? post.resp.base : "");
            continue;
        }
        hist_add(post_lat, post.t_done - start);
        if (d.t_frame[i] == 0)
            ++lost;
        else
            hist_add(rt, d.t_frame[i] - start);
        if ((i + 1) % ACK_EVERY == 0 && d.last_id[0] != '\0') {
            snprintf(url, sizeof(url), "%s/v1/host/actions/ack", rl->url);
            snprintf(json, sizeof(json), "{\"cursor\":\"%s\"}", d.last_id);
            if (cr_test_http_json(&resp, "POST", url, host_tok, json) != 0 || resp.status != 200)
                fprintf(stderr, "  the host's ack answered %ld: %.200s\n", resp.status, resp.body);
            cr_test_resp_free(&resp);
        }
    }
    bench_perf_stop();
    printf("  %llu actions queued (%llu refused), %llu reached the downlink (%llu frames on it), %llu not within 5 s\n",
           (unsigned long long)hist_count(post_lat), (unsigned long long)failed, (unsigned long long)hist_count(rt),
           (unsigned long long)d.frames, (unsigned long long)lost);
    printf("  POST -> 202: p50 %.2f ms, p99 %.2f ms;  POST -> downlink frame: p50 %.2f ms, p99 %.2f ms, max %.2f ms\n",
           hist_pct_ms(post_lat, 50), hist_pct_ms(post_lat, 99), hist_pct_ms(rt, 50), hist_pct_ms(rt, 99), hist_max_ms(rt));
    bench_row("(d) action round trip p50", NULL, 0, "%.2f ms", hist_pct_ms(rt, 50));
    bench_row("(d) action round trip p99", "<= 5 ms", hist_pct_ms(rt, 99) <= 5.0 && lost == 0 && failed == 0 && hist_count(rt) > 0,
              "%.2f ms%s", hist_pct_ms(rt, 99), lost + failed > 0 ? " (some lost)" : "");
    bench_row("(d) action POST -> 202 p50 / p99", NULL, 0, "%.2f / %.2f ms", hist_pct_ms(post_lat, 50),
              hist_pct_ms(post_lat, 99));
    goto done;
fail:
    fprintf(stderr, "  (d) could not run\n");
    bench_row("(d) action round trip p99", "<= 5 ms", 0, "failed");
done:
    memset(host_tok, 0, sizeof(host_tok));
    memset(dev, 0, sizeof(dev));
    if (m != NULL) {
        if (dl.busy)
            curl_multi_remove_handle(m, dl.easy);
        if (post.busy)
            curl_multi_remove_handle(m, post.easy);
    }
    call_free(&dl);
    call_free(&post);
    if (m != NULL)
        curl_multi_cleanup(m);
    curl_slist_free_all(resolve);
    bench_relay_stop();
    cr_buf_free(&d.in);
    free(d.t_frame);
    free(rt);
    free(post_lat);
}
