/* h2_burst.h — sends an HTTP/2-over-TLS server bursts of exactly the sizes that made h2o 2.2 drop connections
 * (net/src/h2o_uv_read.c), and checks after each that the same connection still answers a PING. */
#ifndef CORRAL_TEST_H2_BURST_H
#define CORRAL_TEST_H2_BURST_H

#include <stddef.h>

/* Connects to 127.0.0.1:port over TLS 1.3 with ALPN h2 (the certificate verified against the PEM file ca; NULL: not
 * verified), sends the HTTP/2 preface and SETTINGS, then for each of bursts[0..n): frames of a type HTTP/2 says to
 * ignore, in TLS records of at most 8192 bytes, corked into one burst of that many bytes, then a PING. Returns how
 * many bursts the connection lived through (its PING answered), n when all; -1 when it could not connect. */
int cr_test_h2_tls_bursts(int port, const char *ca, const size_t *bursts, size_t n);

#endif
