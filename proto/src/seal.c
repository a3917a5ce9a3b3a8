/* seal.c — end-to-end sealing of bodies with XChaCha20-Poly1305-IETF and the envelope-binding AD. */
#include "corral/seal.h"
#include "corral/error.h"
#include <inttypes.h>
#include <sodium.h>
#include <stdio.h>
#include <string.h>

static size_t put(uint8_t *out, size_t pos, const void *p, size_t n)
{
    if (pos + n + 1 > CR_SEAL_AD_MAX)
        return 0;
    memcpy(out + pos, p, n);
    return pos + n;
}

static size_t build_ad(uint8_t out[CR_SEAL_AD_MAX], char domain, const char *team, cr_span_t sid, const char *x, size_t xlen,
                       cr_span_t k)
{
    size_t pos = 0;
    const char sep = '\0';
    const char dom[2] = {domain, '\0'};
    if ((pos = put(out, pos, "corral1", 8)) == 0 || /* includes the NUL separator */
        (pos = put(out, pos, dom, 2)) == 0 || (pos = put(out, pos, team, strlen(team))) == 0 ||
        (pos = put(out, pos, &sep, 1)) == 0 || (pos = put(out, pos, sid.base, sid.len)) == 0 ||
        (pos = put(out, pos, &sep, 1)) == 0 || (pos = put(out, pos, x, xlen)) == 0 || (pos = put(out, pos, &sep, 1)) == 0)
        return 0;
    if (k.len > 0 && (pos = put(out, pos, k.base, k.len)) == 0)
        return 0;
    return pos;
}

size_t cr_seal_ad_event(uint8_t out[CR_SEAL_AD_MAX], const char *team, cr_span_t sid, uint64_t seq, cr_span_t k)
{
    char num[24];
    int n = snprintf(num, sizeof(num), "%" PRIu64, seq);
    return build_ad(out, 'e', team, sid, num, (size_t)n, k);
}

size_t cr_seal_ad_action(uint8_t out[CR_SEAL_AD_MAX], const char *team, cr_span_t sid, cr_span_t aid, cr_span_t k)
{
    return build_ad(out, 'a', team, sid, aid.base, aid.len, k);
}

int cr_seal(cr_buf_t *out, const uint8_t key[CR_SEAL_KEYBYTES], const uint8_t *ad, size_t adlen, const void *pt, size_t ptlen,
            const uint8_t nonce[CR_SEAL_NONCEBYTES])
{
    uint8_t *box;
    unsigned long long clen;
    int rc;
    if ((rc = cr_buf_reserve(out, ptlen + CR_SEAL_OVERHEAD)) != 0)
        return rc;
    box = (uint8_t *)out->base + out->len;
    box[0] = CR_SEAL_VERSION;
    if (nonce != NULL)
        memcpy(box + 1, nonce, CR_SEAL_NONCEBYTES);
    else
        randombytes_buf(box + 1, CR_SEAL_NONCEBYTES);
    crypto_aead_xchacha20poly1305_ietf_encrypt(box + 1 + CR_SEAL_NONCEBYTES, &clen, pt, ptlen, ad, adlen, NULL,
                                               box + 1, key);
    out->len += 1 + CR_SEAL_NONCEBYTES + (size_t)clen;
    return 0;
}

int cr_open(cr_buf_t *out, const uint8_t key[CR_SEAL_KEYBYTES], const uint8_t *ad, size_t adlen, const void *box, size_t boxlen)
{
    const uint8_t *b = box;
    unsigned long long plen;
    int rc;
    if (boxlen < CR_SEAL_OVERHEAD)
        return cr_error_set(CR_ESEAL, "b", "a sealed body must be at least %d bytes, got %zu", CR_SEAL_OVERHEAD, boxlen);
    if (b[0] != CR_SEAL_VERSION)
        return cr_error_set(CR_ESEAL, "b", "unknown seal version 0x%02x", b[0]);
    if ((rc = cr_buf_reserve(out, boxlen - CR_SEAL_OVERHEAD)) != 0)
        return rc;
    if (crypto_aead_xchacha20poly1305_ietf_decrypt((uint8_t *)out->base + out->len, &plen, NULL, b + 1 + CR_SEAL_NONCEBYTES,
                                                   boxlen - 1 - CR_SEAL_NONCEBYTES, ad, adlen, b + 1, key) != 0) {
        sodium_memzero(out->base + out->len, boxlen - CR_SEAL_OVERHEAD);
        return cr_error_set(CR_ESEAL, "b", "the sealed body does not open: wrong team key, or it was changed or moved");
    }
    out->len += (size_t)plen;
    return 0;
}

/* Wraps a box as a msgpack bin in out. */
static int seal_as_bin(cr_buf_t *out, const uint8_t key[CR_SEAL_KEYBYTES], const uint8_t *ad, size_t adlen, const char *body,
                       size_t bodylen, const uint8_t *nonce)
{
    size_t old = out->len, boxlen = bodylen + CR_SEAL_OVERHEAD;
    uint8_t hdr[5];
    size_t hn;
    int rc;
    if (boxlen < 256) {
        hdr[0] = 0xc4, hdr[1] = (uint8_t)boxlen, hn = 2;
    } else if (boxlen < 65536) {
        hdr[0] = 0xc5, hdr[1] = (uint8_t)(boxlen >> 8), hdr[2] = (uint8_t)boxlen, hn = 3;
    } else {
        hdr[0] = 0xc6, hdr[1] = (uint8_t)(boxlen >> 24), hdr[2] = (uint8_t)(boxlen >> 16), hdr[3] = (uint8_t)(boxlen >> 8),
        hdr[4] = (uint8_t)boxlen, hn = 5;
    }
    if ((rc = cr_buf_append(out, hdr, hn)) != 0 || (rc = cr_seal(out, key, ad, adlen, body, bodylen, nonce)) != 0) {
        out->len = old;
        return rc;
    }
    return 0;
}

int cr_event_seal_body(cr_buf_t *out_bin, const uint8_t key[CR_SEAL_KEYBYTES], const char *team, const cr_event_t *ev,
                       const char *body, size_t bodylen, const uint8_t *nonce)
{
    uint8_t ad[CR_SEAL_AD_MAX];
    size_t adlen = cr_seal_ad_event(ad, team, ev->sid, ev->seq, ev->k);
    if (adlen == 0)
        return cr_error_set(CR_EENVELOPE, "sid", "team, sid and k are too long to seal");
    return seal_as_bin(out_bin, key, ad, adlen, body, bodylen, nonce);
}

int cr_action_seal_body(cr_buf_t *out_bin, const uint8_t key[CR_SEAL_KEYBYTES], const char *team, const cr_action_t *act,
                        const char *body, size_t bodylen, const uint8_t *nonce)
{
    uint8_t ad[CR_SEAL_AD_MAX];
    size_t adlen = cr_seal_ad_action(ad, team, act->sid, act->aid, act->k);
    if (adlen == 0)
        return cr_error_set(CR_EENVELOPE, "sid", "team, sid, aid and k are too long to seal");
    return seal_as_bin(out_bin, key, ad, adlen, body, bodylen, nonce);
}

static int open_and_validate(cr_buf_t *out, const uint8_t key[CR_SEAL_KEYBYTES], const uint8_t *ad, size_t adlen,
                             const cr_body_t *b, cr_kind_t kind, const cr_limits_t *lim)
{
    size_t old = out->len;
    int rc;
    if (!b->sealed)
        return cr_buf_append(out, b->raw.base, b->raw.len);
    if (adlen == 0)
        return cr_error_set(CR_ESEAL, "b", "team and ids are too long to open the body");
    if ((rc = cr_open(out, key, ad, adlen, b->box.base, b->box.len)) != 0)
        return rc;
    if ((rc = cr_body_validate(kind, out->base + old, out->len - old, lim)) != 0) {
        sodium_memzero(out->base + old, out->len - old);
        out->len = old;
        return rc;
    }
    return 0;
}

int cr_event_open_body(cr_buf_t *out, const uint8_t key[CR_SEAL_KEYBYTES], const char *team, const cr_event_t *ev,
                       const cr_limits_t *lim)
{
    uint8_t ad[CR_SEAL_AD_MAX];
    size_t adlen = cr_seal_ad_event(ad, team, ev->sid, ev->seq, ev->k);
    return open_and_validate(out, key, ad, adlen, &ev->b, ev->kind, lim);
}

int cr_action_open_body(cr_buf_t *out, const uint8_t key[CR_SEAL_KEYBYTES], const char *team, const cr_action_t *act,
                        const cr_limits_t *lim)
{
    uint8_t ad[CR_SEAL_AD_MAX];
    size_t adlen = cr_seal_ad_action(ad, team, act->sid, act->aid, act->k);
    return open_and_validate(out, key, ad, adlen, &act->b, act->kind, lim);
}
