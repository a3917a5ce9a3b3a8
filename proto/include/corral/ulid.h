/* ulid.h — ULID identifiers (26 chars of Crockford base32: 48-bit milliseconds + 80 random bits), monotonic. */
#ifndef CORRAL_ULID_H
#define CORRAL_ULID_H

#include <stddef.h>
#include <stdint.h>

#define CR_ULID_LEN 26

/* Writes a new ULID (26 chars + NUL) into out. Within one millisecond successive ids of this process increase
 * (the random part is incremented), so ids sort in creation order. Thread-safe. */
void cr_ulid_new(char out[CR_ULID_LEN + 1]);

/* Same, with a given time (ms since the epoch) and 10 bytes of randomness; for tests and vectors. */
void cr_ulid_make(char out[CR_ULID_LEN + 1], uint64_t ms, const uint8_t rnd[10]);

/* Returns 1 if s is a well-formed ULID (26 Crockford base32 chars, first char 0-7), setting *ms when not NULL. */
int cr_ulid_parse(const char *s, uint64_t *ms);

/* Returns 1 if s[0..n) is a valid protocol id: [A-Za-z0-9._-]{1,64}. */
int cr_id_valid(const char *s, size_t n);

/* Milliseconds since the epoch (CLOCK_REALTIME). */
uint64_t cr_now_ms(void);

#endif
