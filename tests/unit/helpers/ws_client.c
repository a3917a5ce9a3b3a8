/* ws_client.c — the tests' WebSocket client against a tiny in-process server that checks and writes frames itself:
 * the upgrade request and answer, masking, 7/16/64-bit lengths, fragments, ping/pong, close codes, timeouts. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <openssl/evp.h>
#include <poll.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>
#include "corral/buf.h"
#include "corral/codec.h"
#include "corral/error.h"
#include "harness.h"
#include "ws_client.h"

#define IO_TIMEOUT_MS 5000
#define MAX_FRAMES 16

/* ---- the server: its own framing code, written apart from the client's ----------------------------------------- */

enum answer { ANSWER_101, ANSWER_BAD_ACCEPT, ANSWER_OTHER_PROTOCOL, ANSWER_401, ANSWER_404_CHUNKED };

typedef struct {
    int fin, opcode, masked, len_bytes; /* len_bytes: 1, 3 or 9 — the 7-bit, 16-bit or 64-bit length form */
    unsigned char mask[4];
    size_t len;
    unsigned char *payload; /* unmasked, malloc'd */
} frame_t;

typedef struct st_server_t server_t;
struct st_server_t {
    int listen_fd, port;
    pthread_t thread;
    enum answer answer;
    const char *protocol;                /* answered in Sec-WebSocket-Protocol, NULL for none */
    const void *after_101;               /* bytes sent in the same write as the 101 */
    size_t after_101_len;
    void (*run)(server_t *s, int fd);    /* what happens after the handshake */
    char request[8192];                  /* the upgrade request as received */
    frame_t frames[MAX_FRAMES];          /* frames the server read */
    int nframes;
    int failed;                          /* the server's own I/O went wrong */
};

static server_t srv;

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void sleep_ms(long ms)
{
    struct timespec ts = {ms / 1000, (ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) != 0 && errno == EINTR)
        ;
}

static int srv_read(int fd, void *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        struct pollfd pfd = {fd, POLLIN, 0};
        ssize_t r;
        if (poll(&pfd, 1, IO_TIMEOUT_MS) <= 0)
            return -1;
        if ((r = recv(fd, (char *)p + got, n - got, 0)) <= 0)
            return -1;
        got += (size_t)r;
    }
    return 0;
}

static void srv_write(int fd, const void *p, size_t n)
{
    const char *c = p;
    while (n > 0) {
        ssize_t w = send(fd, c, n, MSG_NOSIGNAL);
        if (w <= 0) {
            srv.failed = 1;
            return;
        }
        c += w;
        n -= (size_t)w;
    }
}

/* Writes one unmasked frame, its length in the shortest form; masked sets the mask bit (a broken server). */
static void srv_frame(int fd, int fin, int opcode, const void *p, size_t len, int masked)
{
    unsigned char h[14];
    size_t hl = 2;
    h[0] = (unsigned char)((fin ? 0x80 : 0) | opcode);
    if (len < 126) {
        h[1] = (unsigned char)len;
    } else if (len < 65536) {
        h[1] = 126, h[2] = (unsigned char)(len >> 8), h[3] = (unsigned char)len, hl = 4;
    } else {
        h[1] = 127, hl = 10;
        for (int i = 0; i < 8; ++i)
            h[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
    }
    if (masked) {
        h[1] |= 0x80;
        memset(h + hl, 0, 4); /* a zero mask: the payload reads the same */
        hl += 4;
    }
    srv_write(fd, h, hl);
    srv_write(fd, p, len);
}

static void srv_close_frame(int fd, int code, const char *reason)
{
    unsigned char p[125] = {0};
    size_t n = 0;
    if (code != 0) {
        p[0] = (unsigned char)(code >> 8), p[1] = (unsigned char)code, n = 2;
        memcpy(p + 2, reason, strlen(reason));
        n += strlen(reason);
    }
    srv_frame(fd, 1, CR_WS_CLOSE, p, n, 0);
}

/* Reads one frame into srv.frames. Returns its index or -1. */
static int srv_read_frame(int fd)
{
    unsigned char h[2], ext[8];
    frame_t *f;
    uint64_t n;
    if (srv.nframes == MAX_FRAMES || srv_read(fd, h, 2) != 0)
        return -1;
    f = &srv.frames[srv.nframes];
    memset(f, 0, sizeof(*f));
    f->fin = h[0] >> 7;
    f->opcode = h[0] & 0x0f;
    f->masked = h[1] >> 7;
    n = h[1] & 0x7f;
    f->len_bytes = 1;
    if (n == 126) {
        if (srv_read(fd, ext, 2) != 0)
            return -1;
        n = (uint64_t)ext[0] << 8 | ext[1];
        f->len_bytes = 3;
    } else if (n == 127) {
        if (srv_read(fd, ext, 8) != 0)
            return -1;
        n = 0;
        for (int i = 0; i < 8; ++i)
            n = n << 8 | ext[i];
        f->len_bytes = 9;
    }
    if (n > (64u << 20) || (f->masked && srv_read(fd, f->mask, 4) != 0))
        return -1;
    f->len = (size_t)n;
    if ((f->payload = malloc(f->len + 1)) == NULL || srv_read(fd, f->payload, f->len) != 0)
        return -1;
    for (size_t i = 0; f->masked && i < f->len; ++i)
        f->payload[i] ^= f->mask[i & 3];
    f->payload[f->len] = '\0';
    return srv.nframes++;
}

/* Sec-WebSocket-Accept, computed here with OpenSSL directly (not with the client's function). */
static void accept_of(char out[64], const char *key)
{
    static const char guid[] = "258EAFA5-E914-47DA-95CA-C5AB0DC85B11";
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen;
    char in[256];
    snprintf(in, sizeof(in), "%s%s", key, guid);
    EVP_Digest(in, strlen(in), md, &mdlen, EVP_sha1(), NULL);
    EVP_EncodeBlock((unsigned char *)out, md, (int)mdlen);
}

/* The value of a request header, "" when absent. */
static void request_header(const char *name, char *out, size_t outlen)
{
    char pat[64];
    const char *p;
    snprintf(pat, sizeof(pat), "\r\n%s:", name);
    out[0] = '\0';
    if ((p = strcasestr(srv.request, pat)) == NULL)
        return;
    p += strlen(pat);
    while (*p == ' ')
        ++p;
    snprintf(out, outlen, "%.*s", (int)strcspn(p, "\r"), p);
}

static void srv_handshake(int fd)
{
    char key[128], accept[64], head[1024];
    size_t got = 0;
    int n = 0;
    while (strstr(srv.request, "\r\n\r\n") == NULL) {
        if (got + 1 >= sizeof(srv.request) || srv_read(fd, srv.request + got, 1) != 0) {
            srv.failed = 1;
            return;
        }
        srv.request[++got] = '\0';
    }
    request_header("Sec-WebSocket-Key", key, sizeof(key));
    accept_of(accept, key);
    switch (srv.answer) {
    case ANSWER_BAD_ACCEPT:
        accept[0] = accept[0] == 'A' ? 'B' : 'A';
        /* fall through */
    case ANSWER_101:
    case ANSWER_OTHER_PROTOCOL:
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 101 Switching Protocols\r\nupgrade: WebSocket\r\nConnection: keep-alive, Upgrade\r\n"
                     "Sec-WebSocket-Accept: %s\r\n%s%s%s\r\n",
                     accept, srv.protocol != NULL ? "Sec-WebSocket-Protocol: " : "",
                     srv.protocol != NULL ? srv.protocol : "", srv.protocol != NULL ? "\r\n" : "");
        if (srv.after_101_len > 0 && (size_t)n + srv.after_101_len <= sizeof(head)) {
            memcpy(head + n, srv.after_101, srv.after_101_len);
            n += (int)srv.after_101_len;
        }
        srv_write(fd, head, (size_t)n);
        break;
    case ANSWER_401:
        /* the body after a pause, so that the client must wait for Content-Length */
        n = snprintf(head, sizeof(head),
                     "HTTP/1.1 401 Unauthorized\r\nContent-Type: application/json\r\nContent-Length: 45\r\n\r\n");
        srv_write(fd, head, (size_t)n);
        sleep_ms(50);
        srv_write(fd, "{\"error\":{\"code\":\"unauthorized\",\"message\":\"\"}}", 45);
        break;
    case ANSWER_404_CHUNKED:
        n = snprintf(head, sizeof(head), "HTTP/1.1 404 Not Found\r\nTransfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n");
        srv_write(fd, head, (size_t)n);
        sleep_ms(50);
        srv_write(fd, "6\r\n world\r\n0\r\n\r\n", 17);
        break;
    }
}

static void *server_main(void *arg)
{
    int fd = accept(srv.listen_fd, NULL, NULL);
    (void)arg;
    if (fd < 0) {
        srv.failed = 1;
        return NULL;
    }
    srv_handshake(fd);
    if (!srv.failed && srv.run != NULL)
        srv.run(&srv, fd);
    close(fd);
    return NULL;
}

/* Starts a server for one connection: answer (with after_101 in the same write as a 101), then run. Returns its
 * port. */
static int server_start_ex(enum answer answer, const char *protocol, void (*run)(server_t *, int), const void *after_101,
                           size_t after_101_len)
{
    struct sockaddr_in sin;
    socklen_t len = sizeof(sin);
    memset(&srv, 0, sizeof(srv));
    srv.answer = answer;
    srv.protocol = protocol;
    srv.run = run;
    srv.after_101 = after_101;
    srv.after_101_len = after_101_len;
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if ((srv.listen_fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0 ||
        bind(srv.listen_fd, (struct sockaddr *)&sin, sizeof(sin)) != 0 || listen(srv.listen_fd, 4) != 0 ||
        getsockname(srv.listen_fd, (struct sockaddr *)&sin, &len) != 0 ||
        pthread_create(&srv.thread, NULL, server_main, NULL) != 0) {
        note("cannot start the test server: %s", strerror(errno));
        exit(1);
    }
    srv.port = ntohs(sin.sin_port);
    return srv.port;
}

static int server_start(enum answer answer, const char *protocol, void (*run)(server_t *, int))
{
    return server_start_ex(answer, protocol, run, NULL, 0);
}

static void server_join(void)
{
    pthread_join(srv.thread, NULL);
    close(srv.listen_fd);
}

static void server_free(void)
{
    for (int i = 0; i < srv.nframes; ++i)
        free(srv.frames[i].payload);
    srv.nframes = 0;
}

/* ---- scenarios ------------------------------------------------------------------------------------------------- */

static void run_echo_until_close(server_t *s, int fd)
{
    int i;
    while ((i = srv_read_frame(fd)) >= 0) {
        frame_t *f = &s->frames[i];
        if (f->opcode == CR_WS_CLOSE) {
            srv_frame(fd, 1, CR_WS_CLOSE, f->payload, f->len, 0);
            return;
        }
        if (f->opcode == CR_WS_PING)
            srv_frame(fd, 1, CR_WS_PONG, f->payload, f->len, 0);
        else
            srv_frame(fd, 1, f->opcode, f->payload, f->len, 0);
    }
}

static void run_read_until_close(server_t *s, int fd)
{
    int i;
    while ((i = srv_read_frame(fd)) >= 0)
        if (s->frames[i].opcode == CR_WS_CLOSE) {
            srv_frame(fd, 1, CR_WS_CLOSE, s->frames[i].payload, s->frames[i].len, 0);
            return;
        }
}

/* ---- tests ----------------------------------------------------------------------------------------------------- */

static void test_accept_key(void)
{
    char out[29];
    cr_test_ws_accept_key(out, "dGhlIHNhbXBsZSBub25jZQ==");
    ok_str(out, "s3pPLMBiTxaQ9kYGzzhZRbK+xOo="); /* RFC 6455 section 1.3 (and Python's hashlib + base64) */
    cr_test_ws_accept_key(out, "x3JJHMbDL1EzLkh9GBhXDw==");
    ok_str(out, "HSmrc0sMlYUkAGmm5OPpG2HaGWk="); /* the example of Wikipedia's WebSocket article */
}

static void test_handshake(void)
{
    cr_test_ws_t ws;
    char v[256], first_key[256];
    cr_buf_t key;
    int port = server_start(ANSWER_101, "corral.v1", run_read_until_close);
    ok(cr_test_ws_connect(&ws, port, "/v1/ws?after=0", "crt_secret", "corral.v1, bearer.crt_secret", 5000) == 0);
    ok(ws.status == 101);
    ok_str(ws.protocol, "corral.v1");
    ok(cr_test_ws_fd(&ws) >= 0);
    cr_test_ws_close(&ws);
    server_join();
    ok(!srv.failed);
    ok(strncmp(srv.request, "GET /v1/ws?after=0 HTTP/1.1\r\n", 29) == 0);
    request_header("Host", v, sizeof(v));
    okf(strcmp(v, "127.0.0.1") == 0 || strncmp(v, "127.0.0.1:", 10) == 0, "Host: %s", v);
    request_header("Upgrade", v, sizeof(v));
    ok(strcasecmp(v, "websocket") == 0);
    request_header("Connection", v, sizeof(v));
    ok(strcasestr(v, "upgrade") != NULL);
    request_header("Sec-WebSocket-Version", v, sizeof(v));
    ok_str(v, "13");
    request_header("Authorization", v, sizeof(v));
    ok_str(v, "Bearer crt_secret");
    request_header("Sec-WebSocket-Protocol", v, sizeof(v));
    ok_str(v, "corral.v1, bearer.crt_secret");
    request_header("Sec-WebSocket-Key", v, sizeof(v));
    snprintf(first_key, sizeof(first_key), "%s", v);
    cr_buf_init(&key, 64);
    ok(cr_base64_decode(&key, v, strlen(v)) == 0 && key.len == 16); /* RFC 6455 4.1: 16 random bytes, base64 */
    cr_buf_free(&key);
    /* the close handshake the client started */
    ok(srv.nframes == 1 && srv.frames[0].opcode == CR_WS_CLOSE && srv.frames[0].masked && srv.frames[0].len == 2 &&
       srv.frames[0].payload[0] == 1000 >> 8 && srv.frames[0].payload[1] == (1000 & 0xff));
    server_free();

    /* no token, no protocol: neither header; a fresh key */
    port = server_start(ANSWER_101, NULL, run_read_until_close);
    ok(cr_test_ws_connect(&ws, port, "/v1/ws", NULL, NULL, 5000) == 0);
    ok_str(ws.protocol, "");
    cr_test_ws_close(&ws);
    server_join();
    request_header("Authorization", v, sizeof(v));
    ok_str(v, "");
    request_header("Sec-WebSocket-Protocol", v, sizeof(v));
    ok_str(v, "");
    request_header("Sec-WebSocket-Key", v, sizeof(v));
    okf(strcmp(v, first_key) != 0, "the same key twice: %s", v);
    server_free();
}

static void test_bad_answers(void)
{
    cr_test_ws_t ws;
    int port = server_start(ANSWER_BAD_ACCEPT, NULL, NULL);
    note("two ws_client errors on stderr are expected here");
    ok(cr_test_ws_connect(&ws, port, "/", NULL, NULL, 5000) == -1);
    ok(ws.fd == -1 && cr_test_ws_fd(&ws) == -1);
    cr_test_ws_close(&ws); /* harmless */
    server_join();

    port = server_start(ANSWER_OTHER_PROTOCOL, "chat", NULL);
    ok(cr_test_ws_connect(&ws, port, "/", NULL, "corral.v1", 5000) == -1);
    server_join();

    port = server_start(ANSWER_401, NULL, NULL);
    ok(cr_test_ws_connect(&ws, port, "/v1/ws", "crt_bad", NULL, 5000) == 1);
    ok(ws.status == 401);
    ok(ws.body != NULL && ws.body_len == 45);
    ok(ws.body != NULL && strstr(ws.body, "\"unauthorized\"") != NULL);
    ok(cr_test_ws_fd(&ws) == -1);
    cr_test_ws_close(&ws);
    ok(ws.body == NULL);
    server_join();

    port = server_start(ANSWER_404_CHUNKED, NULL, NULL);
    ok(cr_test_ws_connect(&ws, port, "/nope", NULL, NULL, 5000) == 1);
    ok(ws.status == 404);
    ok(ws.body != NULL && ws.body_len == 11 && strcmp(ws.body, "hello world") == 0);
    cr_test_ws_close(&ws);
    server_join();

    /* nobody listening */
    {
        struct sockaddr_in sin;
        socklen_t len = sizeof(sin);
        int fd = socket(AF_INET, SOCK_STREAM, 0);
        memset(&sin, 0, sizeof(sin));
        sin.sin_family = AF_INET;
        sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
        bind(fd, (struct sockaddr *)&sin, sizeof(sin));
        getsockname(fd, (struct sockaddr *)&sin, &len);
        close(fd);
        note("a ws_client connect error on stderr is expected here");
        ok(cr_test_ws_connect(&ws, ntohs(sin.sin_port), "/", NULL, NULL, 1000) == -1);
        cr_test_ws_close(&ws);
    }
}

static unsigned char pattern(size_t j, int i)
{
    return (unsigned char)(j * 31 + (size_t)i * 7 + 1);
}

static void test_lengths_and_masking(void)
{
    static const size_t sizes[] = {0, 1, 125, 126, 65535, 65536, 300000};
    static const int len_bytes[] = {1, 1, 1, 3, 3, 9, 9};
    const size_t n = sizeof(sizes) / sizeof(sizes[0]);
    cr_test_ws_t ws;
    cr_buf_t msg, got;
    int port = server_start(ANSWER_101, NULL, run_echo_until_close), distinct_masks = 0, op;
    cr_buf_init(&msg, 1 << 20);
    cr_buf_init(&got, 1 << 20);
    ok(cr_test_ws_connect(&ws, port, "/echo", NULL, NULL, 5000) == 0);
    for (size_t i = 0; i < n; ++i) {
        msg.len = 0;
        for (size_t j = 0; j < sizes[i]; ++j) {
            unsigned char c = pattern(j, (int)i);
            cr_buf_append(&msg, &c, 1);
        }
        ok(cr_test_ws_send(&ws, CR_WS_BINARY, msg.base, msg.len) == 0);
        got.len = 0;
        op = -1;
        okf(cr_test_ws_recv(&ws, &got, &op, 5000) == 0, "echo of %zu bytes", sizes[i]);
        ok(op == CR_WS_BINARY);
        ok_bytes(got.base, got.len, msg.base, msg.len);
    }
    ok(cr_test_ws_send(&ws, CR_WS_TEXT, "hello", 5) == 0);
    got.len = 0;
    ok(cr_test_ws_recv(&ws, &got, &op, 5000) == 0 && op == CR_WS_TEXT);
    ok_bytes(got.base, got.len, "hello", 5);
    cr_test_ws_close(&ws);
    server_join();
    ok(!srv.failed);
    ok(srv.nframes == (int)n + 2);
    for (size_t i = 0; i < n && (int)i < srv.nframes; ++i) {
        frame_t *f = &srv.frames[i];
        int same = f->len == sizes[i];
        for (size_t j = 0; same && j < f->len; ++j)
            same = f->payload[j] == pattern(j, (int)i);
        okf(f->masked, "frame %zu is masked", i);
        okf(f->fin && f->opcode == CR_WS_BINARY, "frame %zu: fin %d opcode %d", i, f->fin, f->opcode);
        okf(f->len_bytes == len_bytes[i], "%zu bytes: a %d-byte length, want %d", sizes[i], f->len_bytes, len_bytes[i]);
        okf(same, "frame %zu unmasks to what was sent", i);
        if (i > 0 && memcmp(f->mask, srv.frames[i - 1].mask, 4) != 0)
            ++distinct_masks;
    }
    okf(distinct_masks >= (int)n - 2, "mask keys change from frame to frame (%d of %zu differ)", distinct_masks, n - 1);
    cr_buf_free(&msg);
    cr_buf_free(&got);
    server_free();
}

static void run_fragments(server_t *s, int fd)
{
    static const unsigned char cont_part[] = {0x00, 0x04, 'l', 'o', ',', ' '};
    /* "Hel" was sent with the 101; a ping between fragments; one fragment a byte at a time */
    srv_frame(fd, 1, CR_WS_PING, "p1", 2, 0);
    for (size_t i = 0; i < sizeof(cont_part); ++i) {
        srv_write(fd, cont_part + i, 1);
        sleep_ms(2);
    }
    srv_frame(fd, 1, CR_WS_CONT, "world", 5, 0);
    srv_frame(fd, 1, CR_WS_BINARY, "\x01\x02", 2, 0);
    /* then the client's pong, and the client's fragmented text */
    for (int i; (i = srv_read_frame(fd)) >= 0;)
        if (s->frames[i].opcode == CR_WS_CLOSE) {
            srv_frame(fd, 1, CR_WS_CLOSE, s->frames[i].payload, s->frames[i].len, 0);
            return;
        }
}

static void test_fragments_and_ping(void)
{
    static const unsigned char first[] = {0x01, 0x03, 'H', 'e', 'l'}; /* text, not final */
    cr_test_ws_t ws;
    cr_buf_t got;
    int op = -1, port;
    cr_buf_init(&got, 1 << 20);
    port = server_start_ex(ANSWER_101, NULL, run_fragments, first, sizeof(first));
    ok(cr_test_ws_connect(&ws, port, "/frag", NULL, NULL, 5000) == 0);
    ok(cr_test_ws_recv(&ws, &got, &op, 5000) == 0);
    ok(op == CR_WS_TEXT);
    ok_bytes(got.base, got.len, "Hello, world", 12);
    ok(ws.pings == 1);
    got.len = 0;
    ok(cr_test_ws_recv(&ws, &got, &op, 5000) == 0 && op == CR_WS_BINARY);
    ok_bytes(got.base, got.len, "\x01\x02", 2);
    /* a fragmented message from the client */
    ok(cr_test_ws_send_frame(&ws, 0, CR_WS_TEXT, "ab", 2) == 0);
    ok(cr_test_ws_send_frame(&ws, 0, CR_WS_CONT, "cd", 2) == 0);
    ok(cr_test_ws_send_frame(&ws, 1, CR_WS_CONT, "ef", 2) == 0);
    cr_test_ws_close(&ws);
    server_join();
    ok(!srv.failed);
    ok(srv.nframes == 5);
    if (srv.nframes == 5) {
        frame_t *f = srv.frames;
        ok(f[0].opcode == CR_WS_PONG && f[0].masked && f[0].len == 2 && memcmp(f[0].payload, "p1", 2) == 0);
        ok(f[1].opcode == CR_WS_TEXT && !f[1].fin && f[1].masked && memcmp(f[1].payload, "ab", 2) == 0);
        ok(f[2].opcode == CR_WS_CONT && !f[2].fin && memcmp(f[2].payload, "cd", 2) == 0);
        ok(f[3].opcode == CR_WS_CONT && f[3].fin && memcmp(f[3].payload, "ef", 2) == 0);
        ok(f[4].opcode == CR_WS_CLOSE && f[4].len == 2 && f[4].payload[0] == 0x03 && f[4].payload[1] == 0xe8);
    }
    cr_buf_free(&got);
    server_free();
}

static void run_close_4001(server_t *s, int fd)
{
    srv_frame(fd, 1, CR_WS_TEXT, "last", 4, 0);
    srv_close_frame(fd, 4001, "token revoked");
    srv_read_frame(fd); /* the echo */
}

static void run_close_empty(server_t *s, int fd)
{
    srv_close_frame(fd, 0, "");
    srv_read_frame(fd);
}

static void run_eof(server_t *s, int fd)
{
    srv_frame(fd, 1, CR_WS_TEXT, "bye", 3, 0);
}

static void run_masked(server_t *s, int fd)
{
    srv_frame(fd, 1, CR_WS_TEXT, "oops", 4, 1);
    srv_read_frame(fd);
}

static void run_long_form(server_t *s, int fd)
{
    static const unsigned char f[] = {0x82, 126, 0x00, 0x03, 'a', 'b', 'c'}; /* 3 in the 16-bit form */
    srv_write(fd, f, sizeof(f));
    srv_read_frame(fd);
}

static void test_close(void)
{
    cr_test_ws_t ws;
    cr_buf_t got;
    int op, port;
    cr_buf_init(&got, 1 << 20);

    /* the server closes with a code and reason: the message before it arrives, then -1 and the code, echoed */
    port = server_start(ANSWER_101, NULL, run_close_4001);
    ok(cr_test_ws_connect(&ws, port, "/", NULL, NULL, 5000) == 0);
    ok(cr_test_ws_recv(&ws, &got, &op, 5000) == 0);
    ok_bytes(got.base, got.len, "last", 4);
    ok(cr_test_ws_recv(&ws, &got, &op, 5000) == -1);
    ok(ws.close_code == 4001);
    ok_str(ws.close_reason, "token revoked");
    ok(cr_test_ws_recv(&ws, &got, &op, 5000) == -1); /* and stays closed */
    cr_test_ws_close(&ws);
    server_join();
    ok(srv.nframes == 1 && srv.frames[0].opcode == CR_WS_CLOSE && srv.frames[0].masked && srv.frames[0].len == 2 &&
       (srv.frames[0].payload[0] << 8 | srv.frames[0].payload[1]) == 4001);
    server_free();

    /* a close frame without a code: 1005, echoed without one */
    port = server_start(ANSWER_101, NULL, run_close_empty);
    ok(cr_test_ws_connect(&ws, port, "/", NULL, NULL, 5000) == 0);
    ok(cr_test_ws_recv(&ws, &got, &op, 5000) == -1);
    ok(ws.close_code == 1005);
    cr_test_ws_close(&ws);
    server_join();
    ok(srv.nframes == 1 && srv.frames[0].opcode == CR_WS_CLOSE && srv.frames[0].len == 0);
    server_free();

    /* the connection ends without a close frame: 1006 */
    port = server_start(ANSWER_101, NULL, run_eof);
    ok(cr_test_ws_connect(&ws, port, "/", NULL, NULL, 5000) == 0);
    got.len = 0;
    ok(cr_test_ws_recv(&ws, &got, &op, 5000) == 0);
    ok_bytes(got.base, got.len, "bye", 3);
    ok(cr_test_ws_recv(&ws, &got, &op, 5000) == -1);
    ok(ws.close_code == 1006);
    cr_test_ws_close(&ws);
    server_join();

    /* a server that masks, or writes a length in a longer form than needed, broke the protocol: 1002 */
    note("two ws_client protocol errors on stderr are expected here");
    port = server_start(ANSWER_101, NULL, run_masked);
    ok(cr_test_ws_connect(&ws, port, "/", NULL, NULL, 5000) == 0);
    ok(cr_test_ws_recv(&ws, &got, &op, 5000) == -1);
    ok(ws.close_code == 1002);
    cr_test_ws_close(&ws);
    server_join();
    ok(srv.nframes == 1 && srv.frames[0].opcode == CR_WS_CLOSE && srv.frames[0].len == 2 &&
       (srv.frames[0].payload[0] << 8 | srv.frames[0].payload[1]) == 1002);
    server_free();
    port = server_start(ANSWER_101, NULL, run_long_form);
    ok(cr_test_ws_connect(&ws, port, "/", NULL, NULL, 5000) == 0);
    ok(cr_test_ws_recv(&ws, &got, &op, 5000) == -1 && ws.close_code == 1002);
    cr_test_ws_close(&ws);
    server_join();
    server_free();
    cr_buf_free(&got);
}

static void test_timeout_and_pong(void)
{
    cr_test_ws_t ws;
    cr_buf_t got;
    int64_t start;
    int op, rc, port = server_start(ANSWER_101, NULL, run_echo_until_close);
    cr_buf_init(&got, 1 << 20);
    ok(cr_test_ws_connect(&ws, port, "/", NULL, NULL, 5000) == 0);
    start = now_ms();
    rc = cr_test_ws_recv(&ws, &got, &op, 150);
    ok(rc == CR_EAGAIN);
    okf(now_ms() - start >= 140 && now_ms() - start < 2000, "waited %lld ms", (long long)(now_ms() - start));
    ok(cr_test_ws_recv(&ws, &got, &op, 0) == CR_EAGAIN);
    /* our ping comes back as a pong: counted, not returned */
    ok(cr_test_ws_send(&ws, CR_WS_PING, "x", 1) == 0);
    ok(cr_test_ws_recv(&ws, &got, &op, 300) == CR_EAGAIN);
    ok(ws.pongs == 1);
    ok(got.len == 0);
    ok(cr_test_ws_send(&ws, CR_WS_TEXT, "go", 2) == 0);
    ok(cr_test_ws_recv(&ws, &got, &op, 5000) == 0 && op == CR_WS_TEXT);
    ok_bytes(got.base, got.len, "go", 2);
    cr_test_ws_close(&ws);
    server_join();
    cr_buf_free(&got);
    server_free();
}

static void test_small(void)
{
    okf(sizeof(cr_test_ws_t) <= 256, "an idle connection's struct is %zu bytes", sizeof(cr_test_ws_t));
}

int main(void)
{
    subtest("accept key (RFC 6455 example)", test_accept_key);
    subtest("handshake request and answer", test_handshake);
    subtest("bad and non-101 answers", test_bad_answers);
    subtest("lengths and masking", test_lengths_and_masking);
    subtest("fragments and ping", test_fragments_and_ping);
    subtest("close codes", test_close);
    subtest("timeout and pong", test_timeout_and_pong);
    subtest("small struct", test_small);
    return done_testing();
}
