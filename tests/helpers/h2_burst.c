/* h2_burst.c — see h2_burst.h. */
#include "h2_burst.h"
#include <arpa/inet.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/ssl.h>
#include <stdint.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

/* Reads until an HTTP/2 PING ACK carrying payload: 1 when it came, 0 when the connection ended first. */
static int ping_acked(SSL *ssl, const uint8_t payload[8])
{
    uint8_t in[16384 + 9];
    size_t have = 0;
    for (;;) {
        int n = SSL_read(ssl, in + have, (int)(sizeof(in) - have));
        if (n <= 0)
            return 0;
        have += (size_t)n;
        while (have >= 9) {
            size_t len = (size_t)in[0] << 16 | (size_t)in[1] << 8 | in[2];
            if (9 + len > sizeof(in))
                return 0; /* larger than the SETTINGS we sent allow */
            if (have < 9 + len)
                break;
            if (in[3] == 6 && (in[4] & 1) && len == 8 && memcmp(in + 9, payload, 8) == 0)
                return 1;
            memmove(in, in + 9 + len, have - 9 - len);
            have -= 9 + len;
        }
    }
}

int cr_test_h2_tls_bursts(int port, const char *ca, const size_t *bursts, size_t n)
{
    static const char preface[] = "PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n";
    static const uint8_t settings[9] = {0, 0, 0, 4, 0, 0, 0, 0, 0};
    static uint8_t frame[8192];
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons((uint16_t)port)};
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    SSL *ssl = NULL;
    int fd = socket(AF_INET, SOCK_STREAM, 0), lived = -1;
    size_t b;

    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (ctx == NULL || fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) != 0)
        goto done;
    SSL_CTX_set_min_proto_version(ctx, TLS1_3_VERSION); /* a record's size is its plaintext's plus 22 bytes */
    SSL_CTX_set_alpn_protos(ctx, (const uint8_t *)"\x02h2", 3);
    if (ca != NULL) {
        SSL_CTX_load_verify_locations(ctx, ca, NULL);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    }
    ssl = SSL_new(ctx);
    SSL_set_fd(ssl, fd);
    if (SSL_connect(ssl) != 1 || SSL_write(ssl, preface, sizeof(preface) - 1) <= 0 ||
        SSL_write(ssl, settings, sizeof(settings)) <= 0)
        goto done;
    /* A burst the size of the server's read buffer makes its next read find nothing (libuv's nread == 0). */
    for (b = 0; b < n; ++b) {
        uint8_t ping[17] = {0, 0, 8, 6, 0, 0, 0, 0, 0, 'b', 'u', 'r', 's', 't', 0, 0, (uint8_t)b};
        int cork = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_CORK, &cork, sizeof(cork));
        for (size_t left = bursts[b]; left > 0;) {
            size_t rec = left < 8192 ? left : 8192, len = rec > 31 ? rec - 22 - 9 : 0; /* TLS 1.3: 5 + 1 + 16 */
            frame[0] = (uint8_t)(len >> 16), frame[1] = (uint8_t)(len >> 8), frame[2] = (uint8_t)len;
            frame[3] = 0xfa; /* an unknown frame type: ignored */
            memset(frame + 4, 0, 5);
            SSL_write(ssl, frame, (int)(9 + len));
            left -= rec < left ? rec : left;
        }
        cork = 0;
        setsockopt(fd, IPPROTO_TCP, TCP_CORK, &cork, sizeof(cork));
        if (SSL_write(ssl, ping, sizeof(ping)) <= 0 || !ping_acked(ssl, ping + 9))
            break;
    }
    lived = (int)b;
done:
    if (ssl != NULL)
        SSL_free(ssl);
    SSL_CTX_free(ctx);
    if (fd >= 0)
        close(fd);
    return lived;
}
