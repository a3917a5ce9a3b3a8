/* seal.h — end-to-end sealing of bodies with the team key (XChaCha20-Poly1305-IETF, PROTOCOL.md "Sealing"). */
#ifndef CORRAL_SEAL_H
#define CORRAL_SEAL_H

#include <stdint.h>
#include "corral/buf.h"
#include "corral/envelope.h"

#define CR_SEAL_KEYBYTES 32
#define CR_SEAL_NONCEBYTES 24
#define CR_SEAL_TAGBYTES 16
#define CR_SEAL_VERSION 0x01
#define CR_SEAL_OVERHEAD (1 + CR_SEAL_NONCEBYTES + CR_SEAL_TAGBYTES)
#define CR_SEAL_AD_MAX 256

/* Builds the associated data that binds a sealed body to its envelope. Returns its length (at most
 * CR_SEAL_AD_MAX), or 0 if an id is too long.
 *   event:  "corral1" 0x00 "e" 0x00 team 0x00 sid 0x00 decimal(seq) 0x00 k
 *   action: "corral1" 0x00 "a" 0x00 team 0x00 sid 0x00 aid 0x00 k */
size_t cr_seal_ad_event(uint8_t out[CR_SEAL_AD_MAX], const char *team, cr_span_t sid, uint64_t seq, cr_span_t k);
size_t cr_seal_ad_action(uint8_t out[CR_SEAL_AD_MAX], const char *team, cr_span_t sid, cr_span_t aid, cr_span_t k);

/* Appends the box 0x01 || nonce || XChaCha20-Poly1305(key, pt, ad) to out. `nonce` NULL draws a random one (always,
 * outside test vectors). Returns 0, CR_ETOOLARGE or CR_ENOMEM. */
int cr_seal(cr_buf_t *out, const uint8_t key[CR_SEAL_KEYBYTES], const uint8_t *ad, size_t adlen, const void *pt,
            size_t ptlen, const uint8_t nonce[CR_SEAL_NONCEBYTES]);

/* Opens a box and appends the plaintext to out. Returns 0, or CR_ESEAL for a wrong key, wrong AD, a changed byte,
 * an unknown version byte or a box too short (out unchanged), or CR_ETOOLARGE / CR_ENOMEM. */
int cr_open(cr_buf_t *out, const uint8_t key[CR_SEAL_KEYBYTES], const uint8_t *ad, size_t adlen, const void *box,
            size_t boxlen);

/* Seals a plain body (msgpack map bytes) for an event with ev->sid, ev->seq and ev->k, appending the msgpack bin
 * that goes in "b" to out_bin. */
int cr_event_seal_body(cr_buf_t *out_bin, const uint8_t key[CR_SEAL_KEYBYTES], const char *team, const cr_event_t *ev,
                       const char *body, size_t bodylen, const uint8_t *nonce);
int cr_action_seal_body(cr_buf_t *out_bin, const uint8_t key[CR_SEAL_KEYBYTES], const char *team,
                        const cr_action_t *act, const char *body, size_t bodylen, const uint8_t *nonce);

/* Opens the sealed body of a decoded envelope, appends the plain body (msgpack map) to out and validates it against
 * the kind's schema. Returns 0, CR_ESEAL, CR_EBODY or a framing error. A plain body is copied as is. */
int cr_event_open_body(cr_buf_t *out, const uint8_t key[CR_SEAL_KEYBYTES], const char *team, const cr_event_t *ev,
                       const cr_limits_t *lim);
int cr_action_open_body(cr_buf_t *out, const uint8_t key[CR_SEAL_KEYBYTES], const char *team, const cr_action_t *act,
                        const cr_limits_t *lim);

#endif
