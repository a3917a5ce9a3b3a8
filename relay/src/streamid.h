/* streamid.h — Redis stream ids ("ms-seq") and decimal numbers as the relay reads them from clients and replies. */
#ifndef RELAY_STREAMID_H
#define RELAY_STREAMID_H

#include <stddef.h>
#include <stdint.h>

#define STREAM_ID_MAX 48 /* "18446744073709551615-18446744073709551615" + NUL */

/* Parses s[0..n) as a decimal uint64 (digits only, no overflow). Returns 0 or -1. */
int relay_parse_u64(const char *s, size_t n, uint64_t *out);

/* Parses a stream id, "ms-seq" or "ms" (meaning "ms-0"). Returns 0 or -1. */
int relay_stream_id_parse(const char *s, size_t n, uint64_t *ms, uint64_t *seq);

/* Parses a stream id into its canonical text (out: STREAM_ID_MAX bytes) and, when next is not NULL, the first id after
 * it (the very last id is its own next: nothing can follow it). Returns 0 or -1. */
int relay_stream_id_canon(const char *s, size_t n, char *out, char *next);

#endif
