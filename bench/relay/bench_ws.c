/* bench_ws.c — parts (b) and (c) of the relay benchmark, the phones' WebSockets: (b) fan-out latency from a host's
 * POST to every phone's frame, with a poster thread pacing single-event requests and this thread reading every phone
 * over epoll; (c) the relay's RSS per idle WebSocket. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "bench_relay.h"
#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <arpa/inet.h>
#include <time.h>
#include <unistd.h>
#include "proc.h"
#include "ws_client.h"

#define CONNECT_TIMEOUT_MS 10000
#define PHONE_BUF (64u << 10) /* bytes a phone reads at once; a frame is a few hundred */
#define POSTER_CALLS 64       /* requests the poster may have in flight: below h2o's 100 streams per connection, so
                                 curl never opens a second connection */
#define DRAIN_MS 5000         /* how long phones may take to receive the last frames after the last POST */
#define STAMP "~t"            /* in an event's text: the monotonic ns of its POST, 20 digits */

/* ---- opening and closing many phones ---------------------------------------------------------------------------- */

/* Opens n WebSockets of token to GET /v1/ws, then waits for each one's {k:"synced"}. *opened counts those upgraded
 * (close them with close_phones whatever happens). Returns 0 or -1 with a message. */
static int open_phones(cr_test_ws_t *ws, int n, int port, const char *token, int *opened)
{
    cr_buf_t f;
    int rc = 0;
    for (int i = 0; i < n; ++i) {
        if ((rc = cr_test_ws_connect(&ws[i], port, "/v1/ws", token, NULL, CONNECT_TIMEOUT_MS)) != 0) {
            fprintf(stderr, "  phone %d: %s (status %d)\n", i, rc > 0 ? "refused" : "failed", ws[i].status);
            if (rc > 0)
                cr_test_ws_close(&ws[i]);
            return -1;
        }
        ++*opened;
    }
    cr_buf_init(&f, CR_WS_MAX_MESSAGE);
    for (int i = 0; i < n && rc == 0; ++i) {
        int64_t deadline = cr_test_now_ms() + CONNECT_TIMEOUT_MS;
        for (;;) {
            int64_t left = deadline - cr_test_now_ms();
            f.len = 0;
            if (left <= 0 || cr_test_ws_recv(&ws[i], &f, NULL, (int)left) != 0) {
                fprintf(stderr, "  phone %d: no {k:\"synced\"} (close code %d)\n", i, ws[i].close_code);
                rc = -1;
                break;
            }
            if (memmem(f.base, f.len, "synced", 6) != NULL)
                break;
        }
    }
    cr_buf_free(&f);
    return rc;
}

/* Closes the first n phones at once: the relay sees the connections end (no close handshakes to wait for). */
static void close_phones(cr_test_ws_t *ws, int n)
{
    for (int i = 0; i < n; ++i) {
        int fd = cr_test_ws_fd(&ws[i]);
        if (fd >= 0)
            shutdown(fd, SHUT_RDWR);
        cr_test_ws_close(&ws[i]);
    }
}

/* ---- (b) the poster: single-event batches at a fixed rate, each stamped with its send time ------------------------- */

typedef struct st_poster_t {
    char base[96], url[160], token[128];
    int rate;
    double secs;
    atomic_int done;
    atomic_ullong acked;  /* events stored (200) */
    uint64_t sent, failed;
    uint64_t t_first, t_last, lag_max_ns;
    hist_t *post_lat;     /* POST to its 200 */
} poster_t;

static void on_post_done(call_t *c, void *data)
{
    poster_t *p = data;
    if (c->status == 200 && c->n > 0) {
        atomic_fetch_add(&p->acked, 1);
        hist_add(p->post_lat, c->t_done - c->t_start);
    } else if (c->n > 0 && p->failed++ < 3) {
        fprintf(stderr, "  fan-out: POST answered %ld (%s): %.*s\n", c->status, curl_easy_strerror(c->rc),
                (int)(c->resp.len < 200 ? c->resp.len : 200), c->resp.base != NULL ? c->resp.base : "");
    }
}

/* Fills c with a batch of one event, seq, whose text carries now's monotonic time (stamp != 0) or none. */
static void one_event(call_t *c, uint64_t seq, uint64_t stamp)
{
    char text[96], sid[48];
    int n = stamp != 0 ? snprintf(text, sizeof(text), "fan-out event %llu " STAMP "%020llu", (unsigned long long)seq,
                                  (unsigned long long)stamp)
                       : snprintf(text, sizeof(text), "warm-up");
    snprintf(sid, sizeof(sid), "%s.fanout", bench_run_id());
    c->req.len = 0;
    bench_reserve(&c->req, 256);
    c->req.base[0] = (char)0x91;
    c->req.len = 1 + bench_put_event(c->req.base + 1, sid, seq, text, (size_t)n);
}

static void *poster_main(void *arg)
{
    poster_t *p = arg;
    CURLM *m = multi_new();
    call_t *calls = calloc(POSTER_CALLS, sizeof(*calls));
    uint64_t total = (uint64_t)((double)p->rate * p->secs), period = 1000000000u / (uint64_t)p->rate, t0, i = 0;
    if (m == NULL || calls == NULL)
        goto out;
    if (h2_warm(m, p->base, NULL) != 0)
        goto out;
    for (int k = 0; k < POSTER_CALLS; ++k)
        if (call_init(&calls[k], p->url, p->token, NULL) != 0)
            goto out;
    /* warm up the connection with an event without a stamp (the phones ignore it) */
    one_event(&calls[0], 1, 0);
    call_start(m, &calls[0]);
    while (calls[0].busy)
        multi_step(m, 100, NULL, NULL);
    if (calls[0].status != 200) {
        fprintf(stderr, "  fan-out: the warm-up POST answered %ld (%s)\n", calls[0].status, curl_easy_strerror(calls[0].rc));
        goto out;
    }
    t0 = bench_now_ns();
    p->t_first = t0;
    while (i < total) {
        uint64_t now = bench_now_ns(), due = t0 + i * period;
        if (now >= due) {
            call_t *c = NULL;
            for (int k = 0; k < POSTER_CALLS && c == NULL; ++k)
                if (!calls[k].busy)
                    c = &calls[k];
            if (c == NULL) { /* all in flight: the relay is behind */
                multi_step(m, 1, on_post_done, p);
                continue;
            }
            if (now - due > p->lag_max_ns)
                p->lag_max_ns = now - due;
            c->n = i + 1;
            one_event(c, i + 2, bench_now_ns());
            call_start(m, c);
            multi_step(m, -1, on_post_done, p); /* out now */
            ++p->sent;
            p->t_last = bench_now_ns();
            ++i;
        } else if (due - now >= 2000000) {
            multi_step(m, (int)((due - now) / 1000000) - 1, on_post_done, p);
        } else {
            struct timespec ts = {(time_t)(due / 1000000000u), (long)(due % 1000000000u)};
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, NULL);
            multi_step(m, -1, on_post_done, p);
        }
    }
    for (int busy = 1; busy;) {
        multi_step(m, 100, on_post_done, p);
        busy = 0;
        for (int k = 0; k < POSTER_CALLS; ++k)
            busy |= calls[k].busy;
    }
out:
    for (int k = 0; calls != NULL && k < POSTER_CALLS; ++k)
        call_free(&calls[k]);
    free(calls);
    if (m != NULL)
        curl_multi_cleanup(m);
    atomic_store(&p->done, 1);
    return NULL;
}

/* ---- (b) the phones: raw frames read straight from the sockets ---------------------------------------------------- */

typedef struct st_phone_t {
    int fd;
    uint32_t len;
    uint8_t closed;
    uint64_t frames; /* stamped event frames received */
    char *buf;
} phone_t;

/* Reads what is there and takes every whole frame: each stamped event gives one latency. */
static void phone_read(phone_t *p, hist_t *h, uint64_t *total)
{
    ssize_t n = recv(p->fd, p->buf + p->len, PHONE_BUF - p->len, MSG_DONTWAIT);
    uint64_t now;
    size_t off = 0;
    if (n <= 0) {
        if (n == 0 || (errno != EAGAIN && errno != EINTR))
            p->closed = 1;
        return;
    }
    now = bench_now_ns();
    p->len += (uint32_t)n;
    while (p->len - off >= 2) {
        const unsigned char *b = (const unsigned char *)p->buf + off;
        size_t have = p->len - off, hl = 2;
        uint64_t len = b[1] & 0x7f;
        if (len == 126) {
            if (have < 4)
                break;
            len = (uint64_t)b[2] << 8 | b[3];
            hl = 4;
        } else if (len == 127) {
            if (have < 10)
                break;
            len = 0;
            for (int i = 0; i < 8; ++i)
                len = len << 8 | b[2 + i];
            hl = 10;
        }
        if (len > PHONE_BUF - 16) {
            fprintf(stderr, "  phone: a frame of %llu bytes, more than this benchmark reads\n", (unsigned long long)len);
            p->closed = 1;
            return;
        }
        if (have < hl + len)
            break;
        if ((b[0] & 0x0f) == CR_WS_BINARY || (b[0] & 0x0f) == CR_WS_TEXT) {
            const char *pl = (const char *)b + hl, *m = memmem(pl, (size_t)len, STAMP, 2);
            if (m != NULL && m + 22 <= pl + len) {
                uint64_t sent = 0;
                for (int i = 2; i < 22; ++i)
                    sent = sent * 10 + (uint64_t)(m[i] - '0');
                hist_add(h, now > sent ? now - sent : 0);
                ++p->frames;
                ++*total;
            }
        } else if ((b[0] & 0x0f) == CR_WS_CLOSE) {
            p->closed = 1;
        }
        off += hl + (size_t)len;
    }
    memmove(p->buf, p->buf + off, p->len - off);
    p->len -= (uint32_t)off;
}

/* The machine's floor for fan-out: microseconds one 200-byte write() to a loopback TCP socket costs the writer (the
 * kernel delivers to the receiving socket within that call), over n sockets, nobody reading. -1 when it cannot tell. */
static double loopback_write_us(int n)
{
    int lfd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), one = 1, made = 0;
    int *fds = calloc((size_t)n * 2, sizeof(int));
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t slen = sizeof(sin);
    char msg[200];
    double us = -1;
    uint64_t t0, spent = 0;
    if (lfd < 0 || fds == NULL || bind(lfd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(lfd, 4096) != 0 ||
        getsockname(lfd, (struct sockaddr *)&sin, &slen) != 0)
        goto done;
    for (; made < n; ++made) {
        int c = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0), s;
        if (c < 0)
            break;
        if (connect(c, (struct sockaddr *)&sin, sizeof(sin)) != 0 || (s = accept(lfd, NULL, NULL)) < 0) {
            close(c);
            break;
        }
        setsockopt(s, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        fds[2 * made] = c;
        fds[2 * made + 1] = s;
    }
    if (made < n)
        goto done;
    memset(msg, 'x', sizeof(msg));
    for (int round = 0; round < 20; ++round) { /* 4 KB per socket: within any socket buffer */
        t0 = bench_now_ns();
        for (int i = 0; i < n; ++i)
            if (write(fds[2 * i + 1], msg, sizeof(msg)) != (ssize_t)sizeof(msg))
                goto done;
        spent += bench_now_ns() - t0;
    }
    us = (double)spent / 1000.0 / (20.0 * n);
done:
    for (int i = 0; i < 2 * made; ++i)
        close(fds[i]);
    free(fds);
    if (lfd >= 0)
        close(lfd);
    return us;
}

void part_fanout(double secs, int nphones, int rate, const cr_test_redis_t *r)
{
    char dev[128];
    cr_test_ws_t *ws = calloc((size_t)nphones, sizeof(*ws));
    phone_t *phones = calloc((size_t)nphones, sizeof(*phones));
    poster_t *p = calloc(1, sizeof(*p));
    hist_t *lat = hist_new();
    pthread_t th;
    int opened = 0, ep = -1, started = 0, complete = 0, closed = 0;
    uint64_t received = 0, expected = 0, drain_until = 0, t_open, t_end;
    double cpu0, cpu1, rcpu0, rcpu1, dcpu0, dcpu1, floor_us;
    const cr_test_relay_t *rl;

    printf("\n(b) fan-out: %d phones of one team, a host posting 1 event per request at %d events/s for %.0f s\n", nphones,
           rate, secs);
    if (ws == NULL || phones == NULL || p == NULL)
        goto fail;
    floor_us = loopback_write_us(nphones);
    printf("  this machine's floor: one 200-byte write() to a loopback TCP socket costs %.2f us, so a write to each of\n"
           "  %d phones costs %.2f ms of CPU; %d events/s each written alone to each phone would need %.1f cores\n",
           floor_us, nphones, floor_us * nphones / 1000, rate, floor_us * nphones * rate / 1e6);
    if (bench_relay_start() != 0 || bench_team("fanout") != 0 || bench_token(dev, sizeof(dev), "fanout", "device", "phones") != 0 ||
        bench_token(p->token, sizeof(p->token), "fanout", "host", "poster") != 0)
        goto fail;
    rl = bench_relay();
    snprintf(p->base, sizeof(p->base), "%s", rl->url);
    snprintf(p->url, sizeof(p->url), "%s/v1/host/events", rl->url);
    p->rate = rate;
    p->secs = secs;
    p->post_lat = hist_new();
    t_open = bench_now_ns();
    if (open_phones(ws, nphones, rl->port, dev, &opened) != 0)
        goto fail;
    printf("  %d phones connected and synced in %.2f s\n", nphones, (double)(bench_now_ns() - t_open) / 1e9);
    if ((ep = epoll_create1(EPOLL_CLOEXEC)) < 0)
        goto fail;
    for (int i = 0; i < nphones; ++i) {
        struct epoll_event ev = {.events = EPOLLIN, .data.u32 = (uint32_t)i};
        phones[i].fd = cr_test_ws_fd(&ws[i]);
        if ((phones[i].buf = malloc(PHONE_BUF)) == NULL || epoll_ctl(ep, EPOLL_CTL_ADD, phones[i].fd, &ev) != 0)
            goto fail;
        /* nothing was posted before synced, so nothing is left in the client's own buffer */
    }

    bench_perf_start("b");
    cpu0 = bench_cpu_s(rl->pid);
    rcpu0 = bench_cpu_s(getpid());
    dcpu0 = bench_cpu_s(r->pid);
    if (pthread_create(&th, NULL, poster_main, p) != 0)
        goto fail;
    started = 1;
    for (;;) {
        struct epoll_event evs[512];
        int n = epoll_wait(ep, evs, 512, 20);
        for (int k = 0; k < n; ++k) {
            phone_t *ph = &phones[evs[k].data.u32];
            phone_read(ph, lat, &received);
            if (ph->closed) {
                epoll_ctl(ep, EPOLL_CTL_DEL, ph->fd, NULL);
                ++closed;
            }
        }
        if (atomic_load(&p->done)) {
            expected = (uint64_t)atomic_load(&p->acked) * (uint64_t)nphones;
            if (received >= expected)
                break;
            if (drain_until == 0)
                drain_until = bench_now_ns() + (uint64_t)DRAIN_MS * 1000000u;
            else if (bench_now_ns() > drain_until)
                break;
        }
    }
    t_end = bench_now_ns();
    pthread_join(th, NULL);
    started = 0;
    cpu1 = bench_cpu_s(rl->pid);
    rcpu1 = bench_cpu_s(getpid());
    dcpu1 = bench_cpu_s(r->pid);
    bench_perf_stop();
    for (int i = 0; i < nphones; ++i)
        complete += phones[i].frames == atomic_load(&p->acked);
    {
        double posting = p->t_last > p->t_first ? (double)(p->t_last - p->t_first) / 1e9 : 0;
        double wall = (double)(t_end - p->t_first) / 1e9;
        printf("  posted %llu events in %.2f s (%.0f/s, the poster at most %.2f ms late), %llu stored, %llu failed; "
               "POST p50 %.2f ms, p99 %.2f ms\n",
               (unsigned long long)p->sent, posting, posting > 0 ? (double)p->sent / posting : 0, (double)p->lag_max_ns / 1e6,
               (unsigned long long)atomic_load(&p->acked), (unsigned long long)p->failed, hist_pct_ms(p->post_lat, 50),
               hist_pct_ms(p->post_lat, 99));
        printf("  frames received %llu of %llu expected (%d of %d phones got every one, %d closed), %.0f frames/s\n",
               (unsigned long long)received, (unsigned long long)expected, complete, nphones, closed,
               wall > 0 ? (double)received / wall : 0);
        printf("  latency POST -> phone frame: p50 %.2f ms, p99 %.2f ms, p99.9 %.2f ms, max %.2f ms\n", hist_pct_ms(lat, 50),
               hist_pct_ms(lat, 99), hist_pct_ms(lat, 99.9), hist_max_ms(lat));
        printf("  CPU over %.1f s: relay %.0f%% of a core, redis-server %.0f%%, this benchmark %.0f%% (poster and phones)\n",
               wall, wall > 0 ? 100 * (cpu1 - cpu0) / wall : 0, wall > 0 ? 100 * (dcpu1 - dcpu0) / wall : 0,
               wall > 0 ? 100 * (rcpu1 - rcpu0) / wall : 0);
    }
    {
        char fig[64];
        int dflt = nphones == 1000 && rate == 1000;
        snprintf(fig, sizeof(fig), "(b) fan-out p50 (%d phones, %d ev/s)", nphones, rate);
        bench_row(fig, NULL, 0, "%.2f ms", hist_pct_ms(lat, 50));
        snprintf(fig, sizeof(fig), "(b) fan-out p99 (%d phones, %d ev/s)", nphones, rate);
        bench_row(fig, dflt ? "<= 5 ms" : NULL, hist_count(lat) > 0 && hist_pct_ms(lat, 99) <= 5.0 && received == expected, "%.2f ms%s",
                  hist_pct_ms(lat, 99), received == expected ? "" : " (frames lost)");
        snprintf(fig, sizeof(fig), "(b) fan-out p99.9 (%d phones, %d ev/s)", nphones, rate);
        bench_row(fig, NULL, 0, "%.2f ms", hist_pct_ms(lat, 99.9));
        bench_row("(b) frames received / expected", NULL, 0, "%llu / %llu", (unsigned long long)received,
                  (unsigned long long)expected);
        bench_row("(b) floor: loopback write() of 200 bytes", NULL, 0, "%.2f us", floor_us);
    }
    goto done;
fail:
    fprintf(stderr, "  (b) could not run%s\n", opened > 0 ? "" : ": no phone connected");
    bench_row("(b) fan-out p99", "<= 5 ms", 0, "failed");
done:
    if (started)
        pthread_join(th, NULL);
    bench_perf_stop();
    if (ep >= 0)
        close(ep);
    if (ws != NULL)
        close_phones(ws, opened);
    bench_relay_stop();
    for (int i = 0; phones != NULL && i < nphones; ++i)
        free(phones[i].buf);
    if (p != NULL)
        free(p->post_lat);
    free(p);
    free(phones);
    free(ws);
    free(lat);
}

/* ---- (c) idle WebSockets ------------------------------------------------------------------------------------------- */

void part_idle(int n)
{
    char dev[128];
    cr_test_ws_t *ws = calloc((size_t)n, sizeof(*ws));
    int opened = 0;
    long before, after;
    uint64_t t0;
    double per;
    const cr_test_relay_t *rl;

    printf("\n(c) RSS per idle WebSocket: %d authenticated WebSockets, synced, then idle\n", n);
    if (ws == NULL || bench_relay_start() != 0 || bench_team("idle") != 0 ||
        bench_token(dev, sizeof(dev), "idle", "device", "phones") != 0)
        goto fail;
    rl = bench_relay();
    cr_test_sleep_ms(200);
    before = bench_rss_kib(rl->pid);
    t0 = bench_now_ns();
    if (open_phones(ws, n, rl->port, dev, &opened) != 0)
        goto fail;
    printf("  %d WebSockets opened and synced in %.2f s\n", n, (double)(bench_now_ns() - t0) / 1e9);
    cr_test_sleep_ms(1000);
    after = bench_rss_kib(rl->pid);
    per = (double)(after - before) / n;
    printf("  relay RSS %ld KiB before, %ld KiB after (+%ld KiB): %.2f KiB per idle WebSocket; /metrics says %llu open\n",
           before, after, after - before, per, (unsigned long long)bench_metric("corral_websockets_open"));
    bench_row("(c) RSS per idle WebSocket", "<= 16 KiB", before > 0 && after > 0 && per <= 16.0, "%.2f KiB", per);
    bench_row("(c) relay RSS before / after", NULL, 0, "%ld / %ld KiB", before, after);
    goto done;
fail:
    fprintf(stderr, "  (c) could not run (%d WebSockets opened)\n", opened);
    bench_row("(c) RSS per idle WebSocket", "<= 16 KiB", 0, "failed");
done:
    if (ws != NULL)
        close_phones(ws, opened);
    bench_relay_stop();
    free(ws);
}
