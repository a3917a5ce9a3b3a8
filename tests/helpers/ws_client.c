/* ws_client.c — the tests' WebSocket client: the HTTP/1.1 upgrade, masked frames out, frames in (fragments, ping,
 * close), with timeouts. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "ws_client.h"
#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/evp.h>
#include <poll.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>
#include "corral/codec.h"

#define WS_GUID "258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#define MAX_HEAD (16u << 10)      /* the handshake answer's status line and headers */
#define MAX_ERROR_BODY (1u << 20) /* a non-101 answer's body */
#define READ_CHUNK (64u << 10)
#define SEND_TIMEOUT_S 10
#define CLOSE_WAIT_MS 1000

static int64_t now_ms(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (int64_t)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static void random_bytes(void *p, size_t n)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = getrandom((char *)p + got, n - got, 0);
        if (r > 0)
            got += (size_t)r;
        else if (errno != EINTR)
            abort(); /* the kernel's random source does not fail on Linux >= 3.17 */
    }
}

void cr_test_ws_accept_key(char out[29], const char *key)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    if (ctx == NULL || EVP_DigestInit_ex(ctx, EVP_sha1(), NULL) != 1 || EVP_DigestUpdate(ctx, key, strlen(key)) != 1 ||
        EVP_DigestUpdate(ctx, WS_GUID, strlen(WS_GUID)) != 1 || EVP_DigestFinal_ex(ctx, md, &mdlen) != 1 || mdlen != 20)
        abort(); /* SHA-1 is always there */
    EVP_MD_CTX_free(ctx);
    cr_base64_encode(out, md, 20);
}

/* Writes all of p, through EINTR; SO_SNDTIMEO bounds a peer that does not read. Returns 0 or -1. */
static int send_all(int fd, const void *p, size_t len)
{
    const char *c = p;
    while (len > 0) {
        ssize_t n = send(fd, c, len, MSG_NOSIGNAL);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            return -1;
        c += n;
        len -= (size_t)n;
    }
    return 0;
}

/* Reads what is there (waiting until deadline) into ws->_in. Returns 1 when bytes came, 0 at the end of the stream,
 * CR_EAGAIN at the deadline, or -1 on an error. */
static int read_some(cr_test_ws_t *ws, int64_t deadline)
{
    for (;;) {
        struct pollfd pfd = {ws->fd, POLLIN, 0};
        int64_t left = deadline - now_ms();
        ssize_t n;
        int rc = poll(&pfd, 1, left > 0 ? (int)left : 0);
        if (rc < 0 && errno == EINTR)
            continue;
        if (rc < 0)
            return -1;
        if (rc == 0)
            return CR_EAGAIN;
        if (cr_buf_reserve(&ws->_in, READ_CHUNK) != 0 &&
            (ws->_in.len == ws->_in.limit || cr_buf_reserve(&ws->_in, ws->_in.limit - ws->_in.len) != 0))
            return -1;
        n = recv(ws->fd, ws->_in.base + ws->_in.len, ws->_in.cap - ws->_in.len, MSG_DONTWAIT);
        if (n < 0 && (errno == EINTR || errno == EAGAIN))
            continue;
        if (n < 0)
            return errno == ECONNRESET ? 0 : -1;
        ws->_in.len += (size_t)n;
        return (int)(n > 0 ? 1 : 0);
    }
}

/* ---- the handshake ---------------------------------------------------------------------------------------------- */

/* Finds header name among the header lines head[0..len) (after the status line) and copies its value, trimmed, to
 * out. Returns 1 when found. */
static int find_header(const char *head, size_t len, const char *name, char *out, size_t outlen)
{
    size_t nlen = strlen(name);
    const char *p = memchr(head, '\n', len), *end = head + len;
    while (p != NULL && ++p < end) {
        const char *eol = memchr(p, '\n', (size_t)(end - p)), *v;
        size_t linelen = (size_t)((eol != NULL ? eol : end) - p);
        if (linelen > nlen && strncasecmp(p, name, nlen) == 0 && p[nlen] == ':') {
            size_t vlen;
            v = p + nlen + 1;
            vlen = linelen - nlen - 1;
            while (vlen > 0 && (*v == ' ' || *v == '\t'))
                ++v, --vlen;
            while (vlen > 0 && (v[vlen - 1] == '\r' || v[vlen - 1] == ' ' || v[vlen - 1] == '\t'))
                --vlen;
            snprintf(out, outlen, "%.*s", (int)vlen, v);
            return 1;
        }
        p = eol;
    }
    return 0;
}

/* 1 when the comma-separated list has item (case-insensitively when nocase). */
static int list_has(const char *list, const char *item, int nocase)
{
    size_t ilen = strlen(item);
    while (*list != '\0') {
        size_t n;
        while (*list == ' ' || *list == '\t' || *list == ',')
            ++list;
        n = strcspn(list, ",");
        while (n > 0 && (list[n - 1] == ' ' || list[n - 1] == '\t'))
            --n;
        if (n == ilen && n > 0 && (nocase ? strncasecmp(list, item, n) : strncmp(list, item, n)) == 0)
            return 1;
        list += strcspn(list, ",");
    }
    return 0;
}

/* Decodes a chunked body from p[0..len) into out. Returns 1 when it is complete, 0 when more is needed, -1 bad. */
static int dechunk(const char *p, size_t len, cr_buf_t *out)
{
    size_t pos = 0;
    out->len = 0;
    for (;;) {
        const char *eol = memchr(p + pos, '\n', len - pos);
        char *end;
        unsigned long size;
        if (eol == NULL)
            return 0;
        size = strtoul(p + pos, &end, 16);
        if (end == p + pos)
            return -1;
        pos = (size_t)(eol - p) + 1;
        if (size == 0)
            return 1; /* trailers are not waited for */
        if (len - pos < size + 2)
            return 0;
        if (cr_buf_append(out, p + pos, size) != 0)
            return -1;
        pos += size + 2;
    }
}

/* Reads the body of a non-101 answer whose headers end at head_len. Returns 0 or -1. */
static int read_body(cr_test_ws_t *ws, size_t head_len, int64_t deadline)
{
    char value[64];
    cr_buf_t body;
    long long clen = -1;
    int chunked = 0, rc = 0;
    cr_buf_init(&body, MAX_ERROR_BODY + 1);
    if (find_header(ws->_in.base, head_len, "Content-Length", value, sizeof(value)))
        clen = atoll(value);
    else if (find_header(ws->_in.base, head_len, "Transfer-Encoding", value, sizeof(value)))
        chunked = list_has(value, "chunked", 1);
    if (ws->status == 204 || ws->status == 304 || ws->status < 200)
        clen = 0;
    if (clen > (long long)MAX_ERROR_BODY)
        clen = MAX_ERROR_BODY;
    for (;;) {
        const char *b = ws->_in.base + head_len;
        size_t have = ws->_in.len - head_len;
        int n, done;
        if (clen >= 0)
            done = have >= (size_t)clen;
        else if (chunked)
            done = dechunk(b, have, &body) != 0;
        else
            done = 0; /* up to the end of the stream */
        if (done)
            break;
        if ((n = read_some(ws, deadline)) <= 0) {
            rc = n == 0 && clen < 0 && !chunked ? 0 : -1; /* the end of the stream ends a body of unknown length */
            break;
        }
    }
    if (!chunked) {
        size_t have = ws->_in.len - head_len;
        body.len = 0;
        cr_buf_append(&body, ws->_in.base + head_len, clen >= 0 && (size_t)clen < have ? (size_t)clen : have);
    }
    cr_buf_append(&body, "", 1);
    ws->body_len = body.len > 0 ? body.len - 1 : 0;
    ws->body = body.base != NULL ? body.base : calloc(1, 1); /* now owned by ws */
    return rc;
}

static int handshake_fail(cr_test_ws_t *ws, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

static int handshake_fail(cr_test_ws_t *ws, const char *fmt, ...)
{
    va_list ap;
    fprintf(stderr, "ws_client: ");
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fprintf(stderr, "\n");
    if (ws->fd >= 0)
        close(ws->fd);
    ws->fd = -1;
    cr_buf_free(&ws->_in);
    cr_buf_free(&ws->_msg);
    return -1;
}

int cr_test_ws_connect(cr_test_ws_t *ws, int port, const char *path, const char *token, const char *protocols,
                       int timeout_ms)
{
    struct sockaddr_in sin;
    struct timeval tv = {SEND_TIMEOUT_S, 0};
    unsigned char nonce[16];
    char key[32], want[29], value[256];
    cr_buf_t req;
    const char *end = NULL;
    size_t head_len;
    int64_t deadline = now_ms() + timeout_ms;
    int one = 1, rc;
    memset(ws, 0, sizeof(*ws));
    ws->fd = -1;
    cr_buf_init(&ws->_in, CR_WS_MAX_MESSAGE + 14 + READ_CHUNK);
    cr_buf_init(&ws->_msg, CR_WS_MAX_MESSAGE);
    if ((ws->fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0)) < 0)
        return handshake_fail(ws, "socket: %s", strerror(errno));
    setsockopt(ws->fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof(tv)); /* bounds connect and every send */
    setsockopt(ws->fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    memset(&sin, 0, sizeof(sin));
    sin.sin_family = AF_INET;
    sin.sin_port = htons((uint16_t)port);
    sin.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    if (connect(ws->fd, (struct sockaddr *)&sin, sizeof(sin)) != 0)
        return handshake_fail(ws, "connect 127.0.0.1:%d: %s", port, strerror(errno));

    random_bytes(nonce, sizeof(nonce));
    cr_base64_encode(key, nonce, sizeof(nonce));
    cr_buf_init(&req, 64 << 10);
    cr_buf_appendf(&req,
                   "GET %s HTTP/1.1\r\nHost: 127.0.0.1:%d\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
                   "Sec-WebSocket-Key: %s\r\nSec-WebSocket-Version: 13\r\n",
                   path, port, key);
    if (token != NULL)
        cr_buf_appendf(&req, "Authorization: Bearer %s\r\n", token);
    if (protocols != NULL)
        cr_buf_appendf(&req, "Sec-WebSocket-Protocol: %s\r\n", protocols);
    rc = cr_buf_appendf(&req, "\r\n");
    if (rc == 0)
        rc = send_all(ws->fd, req.base, req.len);
    memset(req.base, 0, req.cap); /* it held the token */
    cr_buf_free(&req);
    if (rc != 0)
        return handshake_fail(ws, "sending the upgrade request to 127.0.0.1:%d failed", port);

    /* the status line and headers */
    while ((end = ws->_in.len > 0 ? memmem(ws->_in.base, ws->_in.len, "\r\n\r\n", 4) : NULL) == NULL) {
        if (ws->_in.len > MAX_HEAD)
            return handshake_fail(ws, "the answer's headers are over %u bytes", MAX_HEAD);
        if ((rc = read_some(ws, deadline)) <= 0)
            return handshake_fail(ws, "%s before the answer's headers ended (%zu bytes received)",
                                  rc == CR_EAGAIN ? "timed out" : "the connection ended", ws->_in.len);
    }
    head_len = (size_t)(end - ws->_in.base) + 4;
    if (sscanf(ws->_in.base, "HTTP/1.%*1d %3d", &ws->status) != 1)
        return handshake_fail(ws, "not an HTTP/1.1 answer: %.40s", ws->_in.base);
    if (ws->status != 101) {
        rc = read_body(ws, head_len, deadline);
        close(ws->fd);
        ws->fd = -1;
        cr_buf_free(&ws->_in);
        cr_buf_free(&ws->_msg);
        if (rc != 0) {
            fprintf(stderr, "ws_client: the %d answer's body did not arrive whole\n", ws->status);
            return -1;
        }
        return 1;
    }

    /* a 101: check it is the upgrade we asked for */
    if (!find_header(ws->_in.base, head_len, "Upgrade", value, sizeof(value)) || strcasecmp(value, "websocket") != 0)
        return handshake_fail(ws, "101 without Upgrade: websocket");
    if (!find_header(ws->_in.base, head_len, "Connection", value, sizeof(value)) || !list_has(value, "upgrade", 1))
        return handshake_fail(ws, "101 without Connection: Upgrade");
    cr_test_ws_accept_key(want, key);
    if (!find_header(ws->_in.base, head_len, "Sec-WebSocket-Accept", value, sizeof(value)) || strcmp(value, want) != 0)
        return handshake_fail(ws, "101 with a wrong Sec-WebSocket-Accept: got '%s', want '%s'", value, want);
    if (find_header(ws->_in.base, head_len, "Sec-WebSocket-Protocol", value, sizeof(value))) {
        if (protocols == NULL || strchr(value, ',') != NULL || !list_has(protocols, value, 0))
            return handshake_fail(ws, "101 with Sec-WebSocket-Protocol '%s', which was not offered", value);
        if (strlen(value) >= sizeof(ws->protocol))
            return handshake_fail(ws, "101 with a Sec-WebSocket-Protocol too long for this client: '%s'", value);
        memcpy(ws->protocol, value, strlen(value) + 1);
    }
    if (find_header(ws->_in.base, head_len, "Sec-WebSocket-Extensions", value, sizeof(value)))
        return handshake_fail(ws, "101 with Sec-WebSocket-Extensions '%s', which was not offered", value);
    cr_buf_consume(&ws->_in, head_len); /* what follows are frames */
    ws->_live = 1;
    return 0;
}

/* ---- frames ----------------------------------------------------------------------------------------------------- */

int cr_test_ws_send_frame(cr_test_ws_t *ws, int fin, int opcode, const void *p, size_t len)
{
    unsigned char *frame, *mask;
    size_t h = 2;
    int rc;
    if (!ws->_live)
        return -1;
    if ((frame = malloc(len + 14)) == NULL)
        return -1;
    frame[0] = (unsigned char)((fin ? 0x80 : 0) | (opcode & 0x0f));
    if (len < 126) {
        frame[1] = (unsigned char)(0x80 | len);
    } else if (len <= 0xffff) {
        frame[1] = 0x80 | 126;
        frame[2] = (unsigned char)(len >> 8);
        frame[3] = (unsigned char)len;
        h = 4;
    } else {
        frame[1] = 0x80 | 127;
        for (int i = 0; i < 8; ++i)
            frame[2 + i] = (unsigned char)((uint64_t)len >> (56 - 8 * i));
        h = 10;
    }
    mask = frame + h;
    random_bytes(mask, 4);
    h += 4;
    for (size_t i = 0; i < len; ++i)
        frame[h + i] = ((const unsigned char *)p)[i] ^ mask[i & 3];
    rc = send_all(ws->fd, frame, h + len);
    free(frame);
    if (rc == 0 && opcode == CR_WS_CLOSE)
        ws->_sent_close = 1;
    return rc;
}

int cr_test_ws_send(cr_test_ws_t *ws, int opcode, const void *p, size_t len)
{
    return cr_test_ws_send_frame(ws, 1, opcode, p, len);
}

int cr_test_ws_send_close(cr_test_ws_t *ws, int code, const char *reason)
{
    unsigned char payload[125];
    size_t len = 0;
    if (code != 0) {
        size_t rlen = reason != NULL ? strlen(reason) : 0;
        if (rlen > sizeof(payload) - 2)
            rlen = sizeof(payload) - 2;
        payload[0] = (unsigned char)(code >> 8);
        payload[1] = (unsigned char)code;
        if (rlen > 0)
            memcpy(payload + 2, reason, rlen);
        len = 2 + rlen;
    }
    return cr_test_ws_send_frame(ws, 1, CR_WS_CLOSE, payload, len);
}

/* The peer broke the protocol (or sent too much): says so on stderr, closes with code, returns -1. */
static int protocol_error(cr_test_ws_t *ws, int code, const char *what)
{
    fprintf(stderr, "ws_client: %s\n", what);
    if (!ws->_sent_close)
        cr_test_ws_send_close(ws, code, NULL);
    ws->close_code = code;
    return -1;
}

/* Parses the frame at the start of ws->_in. Returns 1 with its parts set, 0 when it is not all there yet, or -1 (the
 * connection is closed). */
static int parse_frame(cr_test_ws_t *ws, int *fin, int *opcode, const char **payload, size_t *len, size_t *frame_len)
{
    const unsigned char *b = (const unsigned char *)ws->_in.base;
    size_t have = ws->_in.len, h = 2;
    uint64_t n;
    if (have < 2)
        return 0;
    if (b[0] & 0x70)
        return protocol_error(ws, 1002, "a frame with RSV bits set (no extension was agreed)");
    if (b[1] & 0x80)
        return protocol_error(ws, 1002, "a masked frame from the server");
    *fin = b[0] >> 7;
    *opcode = b[0] & 0x0f;
    n = b[1] & 0x7f;
    if (n == 126) {
        if (have < 4)
            return 0;
        n = (uint64_t)b[2] << 8 | b[3];
        h = 4;
        if (n < 126)
            return protocol_error(ws, 1002, "a frame length not in its shortest form");
    } else if (n == 127) {
        if (have < 10)
            return 0;
        n = 0;
        for (int i = 0; i < 8; ++i)
            n = n << 8 | b[2 + i];
        h = 10;
        if (n >> 63)
            return protocol_error(ws, 1002, "a frame length with its top bit set");
        if (n <= 0xffff)
            return protocol_error(ws, 1002, "a frame length not in its shortest form");
    }
    if (*opcode >= 8 && (!*fin || n > 125))
        return protocol_error(ws, 1002, "a fragmented or over-long control frame");
    if (n > CR_WS_MAX_MESSAGE)
        return protocol_error(ws, 1009, "a frame over CR_WS_MAX_MESSAGE");
    if (have - h < n)
        return 0;
    *payload = ws->_in.base + h;
    *len = (size_t)n;
    *frame_len = h + (size_t)n;
    return 1;
}

/* Handles the peer's close frame: records its code and reason, echoes it when we had not closed. Returns -1. */
static int on_close_frame(cr_test_ws_t *ws, const char *p, size_t len)
{
    int code = 1005;
    if (len == 1)
        return protocol_error(ws, 1002, "a close frame with a 1-byte payload");
    if (len >= 2) {
        code = (unsigned char)p[0] << 8 | (unsigned char)p[1];
        snprintf(ws->close_reason, sizeof(ws->close_reason), "%.*s", (int)(len - 2), p + 2);
    }
    if (!ws->_sent_close)
        cr_test_ws_send_close(ws, code == 1005 ? 0 : code, NULL);
    ws->close_code = code;
    return -1;
}

int cr_test_ws_recv(cr_test_ws_t *ws, cr_buf_t *out, int *opcode, int timeout_ms)
{
    int64_t deadline = now_ms() + (timeout_ms > 0 ? timeout_ms : 0);
    if (!ws->_live || ws->close_code != 0)
        return -1;
    for (;;) {
        const char *payload = NULL;
        size_t len = 0, frame_len = 0;
        int fin = 0, op = 0, rc;
        while ((rc = parse_frame(ws, &fin, &op, &payload, &len, &frame_len)) == 1) {
            int done = 0;
            switch (op) {
            case CR_WS_PING:
                ++ws->pings;
                if (!ws->_sent_close && cr_test_ws_send(ws, CR_WS_PONG, payload, len) != 0)
                    return protocol_error(ws, 1006, "cannot answer a ping: the connection is gone");
                break;
            case CR_WS_PONG:
                ++ws->pongs;
                break;
            case CR_WS_CLOSE:
                return on_close_frame(ws, payload, len);
            case CR_WS_TEXT:
            case CR_WS_BINARY:
                if (ws->_msg_opcode != 0)
                    return protocol_error(ws, 1002, "a new message inside a fragmented one");
                if (fin) {
                    if (cr_buf_append(out, payload, len) != 0)
                        return protocol_error(ws, 1009, "a message larger than the caller's buffer");
                    if (opcode != NULL)
                        *opcode = op;
                    done = 1;
                } else {
                    ws->_msg_opcode = (uint8_t)op;
                    ws->_msg.len = 0;
                    if (cr_buf_append(&ws->_msg, payload, len) != 0)
                        return protocol_error(ws, 1009, "a message over CR_WS_MAX_MESSAGE");
                }
                break;
            case CR_WS_CONT:
                if (ws->_msg_opcode == 0)
                    return protocol_error(ws, 1002, "a continuation frame outside a fragmented message");
                if (cr_buf_append(&ws->_msg, payload, len) != 0)
                    return protocol_error(ws, 1009, "a message over CR_WS_MAX_MESSAGE");
                if (fin) {
                    if (cr_buf_append(out, ws->_msg.base, ws->_msg.len) != 0)
                        return protocol_error(ws, 1009, "a message larger than the caller's buffer");
                    if (opcode != NULL)
                        *opcode = ws->_msg_opcode;
                    ws->_msg_opcode = 0;
                    cr_buf_free(&ws->_msg); /* an idle connection holds no buffer */
                    done = 1;
                }
                break;
            default:
                return protocol_error(ws, 1002, "a frame with a reserved opcode");
            }
            cr_buf_consume(&ws->_in, frame_len);
            if (ws->_in.len == 0)
                cr_buf_free(&ws->_in);
            if (done)
                return 0;
        }
        if (rc < 0)
            return -1;
        if ((rc = read_some(ws, deadline)) == CR_EAGAIN)
            return CR_EAGAIN;
        if (rc <= 0) {
            ws->close_code = 1006;
            return -1;
        }
    }
}

void cr_test_ws_close(cr_test_ws_t *ws)
{
    if (ws->_live) {
        if (!ws->_sent_close && ws->close_code == 0)
            cr_test_ws_send_close(ws, 1000, NULL);
        if (ws->close_code == 0) {
            int64_t deadline = now_ms() + CLOSE_WAIT_MS;
            cr_buf_t junk;
            cr_buf_init(&junk, CR_WS_MAX_MESSAGE);
            for (int64_t left; (left = deadline - now_ms()) > 0;) {
                if (cr_test_ws_recv(ws, &junk, NULL, (int)left) != 0)
                    break;
                junk.len = 0;
            }
            cr_buf_free(&junk);
        }
        close(ws->fd);
        ws->_live = 0;
    }
    ws->fd = -1; /* a failed handshake closed it already */
    free(ws->body);
    ws->body = NULL;
    ws->body_len = 0;
    cr_buf_free(&ws->_in);
    cr_buf_free(&ws->_msg);
}

int cr_test_ws_fd(const cr_test_ws_t *ws)
{
    return ws->_live ? ws->fd : -1;
}
