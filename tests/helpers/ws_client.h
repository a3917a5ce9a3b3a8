/* ws_client.h — a minimal RFC 6455 WebSocket client over a plain loopback TCP socket, for tests and benchmarks. */
#ifndef CORRAL_TEST_WS_CLIENT_H
#define CORRAL_TEST_WS_CLIENT_H

#include <stddef.h>
#include <stdint.h>
#include "corral/buf.h"
#include "corral/error.h"

/* Opcodes (RFC 6455 section 5.2). */
#define CR_WS_CONT 0x0
#define CR_WS_TEXT 0x1
#define CR_WS_BINARY 0x2
#define CR_WS_CLOSE 0x8
#define CR_WS_PING 0x9
#define CR_WS_PONG 0xA

/* The largest message cr_test_ws_recv reassembles; a bigger one closes the connection with 1009. */
#define CR_WS_MAX_MESSAGE (16u << 20)

/* One client connection. Small (a benchmark keeps thousands of idle ones): the buffers allocate only when used. */
typedef struct st_cr_test_ws_t {
    int fd;                /* the socket; -1 when not connected */
    int status;            /* the handshake answer's HTTP status: 101 once upgraded, else e.g. 401; 0 before */
    int close_code;        /* 0 while open; else the peer's close code (1005 when its close frame had none), 1006
                              when the connection ended without a close frame, 1002 when the peer broke the protocol,
                              1009 when its message was over CR_WS_MAX_MESSAGE */
    uint32_t pings, pongs; /* ping frames received (each answered with a pong), pong frames received */
    char protocol[32];     /* the Sec-WebSocket-Protocol the server answered, "" when none */
    char close_reason[64]; /* the reason in the peer's close frame (cut to fit), "" when none */
    char *body;            /* the body of a non-101 answer (NUL-terminated, malloc'd), else NULL */
    size_t body_len;
    uint8_t _live;         /* fd is an upgraded connection of ours */
    uint8_t _sent_close;   /* a close frame went out */
    uint8_t _msg_opcode;   /* the opcode of the fragmented message being reassembled, 0 when none */
    cr_buf_t _in;          /* bytes received, not yet parsed */
    cr_buf_t _msg;         /* the fragments of that message so far */
} cr_test_ws_t;

/* Connects to 127.0.0.1:port and upgrades path (e.g. "/v1/ws?after=0") with a random Sec-WebSocket-Key, adding
 * "Authorization: Bearer TOKEN" when token is not NULL and "Sec-WebSocket-Protocol: PROTOCOLS" when protocols (a
 * comma-separated list) is not NULL. Checks the 101 answer: Upgrade, Connection, Sec-WebSocket-Accept, and that a
 * Sec-WebSocket-Protocol answered is one of those offered. timeout_ms bounds the whole handshake. Returns
 * 0 when upgraded (ws->protocol set),
 * 1 when the server answered with another status (ws->status, ws->body; the connection is closed), or
 * -1 on a failure (a message on stderr; ws->fd is -1; nothing is held).
 * After 0 or 1, cr_test_ws_close frees what ws holds (the connection, the body); after -1 it does no harm. */
int cr_test_ws_connect(cr_test_ws_t *ws, int port, const char *path, const char *token, const char *protocols,
                       int timeout_ms);

/* Sends one frame, masked with a fresh random key as a client must. fin 0 starts or continues a fragmented message
 * (the first fragment with its opcode, the next ones with CR_WS_CONT). Returns 0, or -1 when it cannot be written
 * within 10 s or the connection is gone. */
int cr_test_ws_send_frame(cr_test_ws_t *ws, int fin, int opcode, const void *p, size_t len);

/* Sends a whole message (one final frame) of opcode CR_WS_TEXT, CR_WS_BINARY, CR_WS_PING or CR_WS_PONG. */
int cr_test_ws_send(cr_test_ws_t *ws, int opcode, const void *p, size_t len);

/* Sends a close frame with code (0: none) and reason (NULL: none). Returns 0 or -1. */
int cr_test_ws_send_close(cr_test_ws_t *ws, int code, const char *reason);

/* Waits up to timeout_ms for the next whole message, reassembling fragments, answering pings with pongs and counting
 * pongs. Appends its payload to out and sets *opcode (CR_WS_TEXT or CR_WS_BINARY; opcode may be NULL). Returns 0,
 * CR_EAGAIN on timeout (a partly received message is kept for the next call), or -1 once the connection is closed:
 * ws->close_code says how (a close frame from the peer is echoed when we had not sent one). */
int cr_test_ws_recv(cr_test_ws_t *ws, cr_buf_t *out, int *opcode, int timeout_ms);

/* Ends the connection: sends close 1000 unless a close frame already went either way, waits up to 1 s for the
 * peer's close (discarding messages), closes the socket and frees what ws holds. Idempotent. */
void cr_test_ws_close(cr_test_ws_t *ws);

/* The socket, -1 when not connected: for polling many connections at once, or writing raw bytes. */
int cr_test_ws_fd(const cr_test_ws_t *ws);

/* Computes Sec-WebSocket-Accept for a Sec-WebSocket-Key: base64(SHA-1(key ‖ "258EAFA5-E914-47DA-95CA-C5AB0DC85B11")),
 * 28 characters and a NUL into out. */
void cr_test_ws_accept_key(char out[29], const char *key);

#endif
