/* identity.c — identities' key material, sealed secrets, sealed inbox messages and their on-disk store (formats and
 * crypto in identity.h). */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "identity.h"
#include "corral/codec.h"
#include "corral/error.h"
#include "corral/fs.h"
#include "corral/json.h"
#include "corral/log.h"
#include "corral/mp.h"
#include "corral/ulid.h"
#include "pair.h"
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <msgpack.h>
#include <sodium.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define AD_MAX 512
#define IDN_JSON_MAX (64u << 10) /* bytes of identity.json read back */
#define GIVEN_MAX (16u << 20)    /* bytes of a given/<session> file read back */

_Static_assert(HOST_IDN_KEY_LEN == crypto_box_PUBLICKEYBYTES && HOST_IDN_KEY_LEN == crypto_box_SECRETKEYBYTES &&
                   HOST_IDN_KEY_LEN == crypto_aead_xchacha20poly1305_ietf_KEYBYTES && HOST_PAIR_KEY_LEN == HOST_IDN_KEY_LEN,
               "one key length for K, VK and X25519");
_Static_assert(CR_SEAL_NONCEBYTES == crypto_aead_xchacha20poly1305_ietf_NPUBBYTES &&
                   CR_SEAL_TAGBYTES == crypto_aead_xchacha20poly1305_ietf_ABYTES,
               "the box layout of proto's seal");

/* ---- small helpers ----------------------------------------------------------------------------------------------- */

static int sodium_ready(void)
{
    if (sodium_init() < 0)
        return cr_error_set(CR_ERR, NULL, "libsodium cannot be initialised");
    return 0;
}

/* A printable, bounded copy of s for an error message: bytes outside 0x20..0x7e as \xNN, cut after 64 bytes. */
static const char *printable(char out[300], const char *s)
{
    size_t o = 0, i;
    for (i = 0; s[i] != '\0' && i < 64; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c >= 0x20 && c < 0x7f && c != '"' && c != '\\')
            out[o++] = (char)c;
        else
            o += (size_t)snprintf(out + o, 5, "\\x%02x", c);
    }
    if (s[i] != '\0') {
        memcpy(out + o, "...", 3);
        o += 3;
    }
    out[o] = '\0';
    return out;
}

static int is_lower_alnum(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9');
}

static int is_alpha_(int c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '_';
}

static int is_digit(int c)
{
    return c >= '0' && c <= '9';
}

static int io_error(const char *what, const char *path)
{
    return cr_error_set(CR_EIO, NULL, "%s %s: %s", what, path, strerror(errno));
}

static int path_fmt(char *out, size_t outlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static int path_fmt(char *out, size_t outlen, const char *fmt, ...)
{
    va_list ap;
    int n;
    va_start(ap, fmt);
    n = vsnprintf(out, outlen, fmt, ap);
    va_end(ap);
    if (n < 0 || (size_t)n >= outlen)
        return cr_error_set(CR_EIO, NULL, "path too long: %s", out);
    return 0;
}


static int mkdir_private(const char *path)
{
    if (mkdir(path, 0700) != 0 && errno != EEXIST)
        return io_error("mkdir", path);
    return 0;
}

static int is_dir(const char *path)
{
    struct stat st;
    return stat(path, &st) == 0 && S_ISDIR(st.st_mode);
}

/* ---- names ------------------------------------------------------------------------------------------------------ */

int host_identity_name_check(const char *name)
{
    char pr[300];
    size_t n = strlen(name);
    if (n == 0)
        return cr_error_set(CR_EBADNAME, "name", "an identity name must not be empty");
    if (n > HOST_IDN_NAME_MAX)
        return cr_error_set(CR_EBADNAME, "name", "the identity name \"%s\" is %zu characters long; at most %d are allowed",
                            printable(pr, name), n, HOST_IDN_NAME_MAX);
    if (!is_lower_alnum((unsigned char)name[0]))
        return cr_error_set(CR_EBADNAME, "name",
                            "the identity name \"%s\" must start with a lower-case letter or a digit (it is also the "
                            "email address's local part)",
                            printable(pr, name));
    for (size_t i = 1; i < n; i++)
        if (!is_lower_alnum((unsigned char)name[i]) && name[i] != '-')
            return cr_error_set(CR_EBADNAME, "name",
                                "the identity name \"%s\" has a character that is not allowed at position %zu: only "
                                "a-z, 0-9 and '-' may be used",
                                printable(pr, name), i + 1);
    if (name[n - 1] == '-')
        return cr_error_set(CR_EBADNAME, "name", "the identity name \"%s\" must not end with '-' (the relay refuses it)",
                            printable(pr, name));
    return 0;
}

int host_secret_key_check(const char *key)
{
    char pr[300];
    size_t n = strlen(key);
    if (n == 0)
        return cr_error_set(CR_EBADNAME, "key", "a secret's key must not be empty");
    if (n > HOST_SECRET_KEY_MAX)
        return cr_error_set(CR_EBADNAME, "key", "the secret key \"%s\" is %zu characters long; at most %d are allowed",
                            printable(pr, key), n, HOST_SECRET_KEY_MAX);
    if (!is_alpha_((unsigned char)key[0]))
        return cr_error_set(CR_EBADNAME, "key", "the secret key \"%s\" must start with a letter or '_'", printable(pr, key));
    for (size_t i = 1; i < n; i++) {
        int c = (unsigned char)key[i];
        if (!is_alpha_(c) && !is_digit(c) && c != '.' && c != '-')
            return cr_error_set(CR_EBADNAME, "key",
                                "the secret key \"%s\" has a character that is not allowed at position %zu: only "
                                "A-Z, a-z, 0-9, '_', '.' and '-' may be used",
                                printable(pr, key), i + 1);
    }
    return 0;
}

int host_identity_id_check(const char *id)
{
    char pr[300];
    if (!cr_id_valid(id, strlen(id)))
        return cr_error_set(CR_EBADNAME, "id", "\"%s\" is not an identity id ([A-Za-z0-9._-], 1 to 64 characters)",
                            printable(pr, id));
    return 0;
}

void host_identity_id_new(char out[HOST_IDN_ID_MAX + 1])
{
    char u[CR_ULID_LEN + 1];
    cr_ulid_new(u);
    snprintf(out, HOST_IDN_ID_MAX + 1, "idn_%s", u);
}

static int team_check(const char *team)
{
    size_t n = strlen(team);
    if (n == 0 || n > HOST_IDN_TEAM_MAX)
        return cr_error_set(CR_EBADNAME, "team", "a team id must be 1 to %d bytes long, not %zu", HOST_IDN_TEAM_MAX, n);
    return 0;
}

/* A message id, also a file name: [A-Za-z0-9_-][A-Za-z0-9._-]{0,63} (never "." or "..", never a temp file's
 * leading '.'). */
static int msgid_check(const char *id, const char *field)
{
    char pr[300];
    size_t n = strlen(id);
    if (!cr_id_valid(id, n) || id[0] == '.')
        return cr_error_set(CR_EBADNAME, field, "\"%s\" is not a message id ([A-Za-z0-9_-][A-Za-z0-9._-], 1 to 64 characters)",
                            printable(pr, id));
    return 0;
}

static int session_check(const char *session)
{
    char pr[300];
    if (!cr_id_valid(session, strlen(session)) || session[0] == '.')
        return cr_error_set(CR_EBADNAME, "session", "\"%s\" is not a session id ([A-Za-z0-9_-][A-Za-z0-9._-], 1 to 64 "
                            "characters)",
                            printable(pr, session));
    return 0;
}

/* ---- boxes ------------------------------------------------------------------------------------------------------ */

void host_secure_free(void *p)
{
    if (p != NULL)
        sodium_free(p); /* wipes the whole region */
}

int host_team_key_load(unsigned char **out, const char *home)
{
    unsigned char *k;
    int rc;
    *out = NULL;
    if ((rc = sodium_ready()) != 0)
        return rc;
    if ((k = sodium_malloc(HOST_IDN_KEY_LEN)) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of locked memory for the team key");
    if ((rc = host_pair_team_key(k, home)) != 0) {
        sodium_free(k);
        return rc;
    }
    *out = k;
    return 0;
}

/* "<domain>" 0x00 team 0x00 id: the AD of a key wrapped with K. */
static size_t ad_wrap(uint8_t out[AD_MAX], const char *domain, const char *team, const char *id)
{
    size_t dl = strlen(domain), tl = strlen(team), il = strlen(id), n = 0;
    if (dl + tl + il + 2 > AD_MAX)
        return 0;
    memcpy(out, domain, dl), n += dl, out[n++] = 0;
    memcpy(out + n, team, tl), n += tl, out[n++] = 0;
    memcpy(out + n, id, il), n += il;
    return n;
}

/* team 0x00 id 0x00 key 0x00 version(8 bytes big-endian): the AD of a secret value. */
static size_t ad_secret(uint8_t out[AD_MAX], const char *team, const char *id, const char *key, uint64_t version)
{
    size_t tl = strlen(team), il = strlen(id), kl = strlen(key), n = 0;
    if (tl + il + kl + 3 + 8 > AD_MAX)
        return 0;
    memcpy(out, team, tl), n += tl, out[n++] = 0;
    memcpy(out + n, id, il), n += il, out[n++] = 0;
    memcpy(out + n, key, kl), n += kl, out[n++] = 0;
    for (int i = 0; i < 8; i++)
        out[n++] = (uint8_t)(version >> (56 - 8 * i));
    return n;
}

/* Opens a box (CR_SEAL_VERSION ‖ nonce ‖ ciphertext+tag) into pt, which has room for boxlen - CR_SEAL_OVERHEAD
 * bytes (sodium memory for anything secret). `what` names the box in the error. Returns 0 or CR_ESEAL. */
static int box_open(uint8_t *pt, size_t *ptlen, const unsigned char *key, const uint8_t *ad, size_t adlen, const void *box,
                    size_t boxlen, const char *what, const char *field)
{
    const uint8_t *b = box;
    unsigned long long plen;
    if (boxlen < CR_SEAL_OVERHEAD)
        return cr_error_set(CR_ESEAL, field, "%s must be at least %d bytes, got %zu", what, CR_SEAL_OVERHEAD, boxlen);
    if (b[0] != CR_SEAL_VERSION)
        return cr_error_set(CR_ESEAL, field, "%s has an unknown version byte 0x%02x", what, b[0]);
    if (crypto_aead_xchacha20poly1305_ietf_decrypt(pt, &plen, NULL, b + 1 + CR_SEAL_NONCEBYTES,
                                                   boxlen - 1 - CR_SEAL_NONCEBYTES, ad, adlen, b + 1, key) != 0) {
        sodium_memzero(pt, boxlen - CR_SEAL_OVERHEAD);
        return cr_error_set(CR_ESEAL, field, "%s does not open: wrong key, or it belongs to another team, identity, key "
                            "or version, or it was changed",
                            what);
    }
    *ptlen = (size_t)plen;
    return 0;
}

/* Boxes a 32-byte key with K into out[HOST_IDN_WRAPPED_LEN]. */
static int wrap_key(unsigned char out[HOST_IDN_WRAPPED_LEN], const unsigned char *k, const char *domain, const char *team,
                    const char *id, const unsigned char *key)
{
    uint8_t ad[AD_MAX];
    size_t adlen = ad_wrap(ad, domain, team, id);
    cr_buf_t b;
    int rc;
    if (adlen == 0)
        return cr_error_set(CR_EBADNAME, "id", "team and identity id are too long");
    cr_buf_init(&b, HOST_IDN_WRAPPED_LEN);
    if ((rc = cr_seal(&b, k, ad, adlen, key, HOST_IDN_KEY_LEN, NULL)) == 0)
        memcpy(out, b.base, HOST_IDN_WRAPPED_LEN);
    cr_buf_free(&b);
    return rc;
}

static int unwrap_key(unsigned char **out, const unsigned char *k, const char *domain, const char *what, const char *team,
                      const char *id, const void *wrapped, size_t len)
{
    uint8_t ad[AD_MAX];
    size_t adlen, plen;
    unsigned char *p;
    int rc;
    *out = NULL;
    if ((rc = sodium_ready()) != 0 || (rc = team_check(team)) != 0 || (rc = host_identity_id_check(id)) != 0)
        return rc;
    if ((adlen = ad_wrap(ad, domain, team, id)) == 0)
        return cr_error_set(CR_EBADNAME, "id", "team and identity id are too long");
    if (len != HOST_IDN_WRAPPED_LEN)
        return cr_error_set(CR_ESEAL, what, "a wrapped key must be %d bytes, got %zu", HOST_IDN_WRAPPED_LEN, len);
    if ((p = sodium_malloc(HOST_IDN_KEY_LEN)) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of locked memory for a key");
    if ((rc = box_open(p, &plen, k, ad, adlen, wrapped, len, what, what)) != 0) {
        sodium_free(p);
        return rc;
    }
    *out = p;
    return 0;
}

int host_identity_keys_new(host_identity_keys_t *out, const unsigned char *k, const char *team, const char *id)
{
    unsigned char *sec; /* sk ‖ vk */
    int rc;
    memset(out, 0, sizeof(*out));
    if ((rc = sodium_ready()) != 0 || (rc = team_check(team)) != 0 || (rc = host_identity_id_check(id)) != 0)
        return rc;
    if ((sec = sodium_malloc(2 * HOST_IDN_KEY_LEN)) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of locked memory for an identity's keys");
    crypto_box_keypair(out->pk, sec);
    randombytes_buf(sec + HOST_IDN_KEY_LEN, HOST_IDN_KEY_LEN);
    if ((rc = wrap_key(out->sk_wrapped, k, "corral-idk-v1", team, id, sec)) == 0)
        rc = wrap_key(out->vk_wrapped, k, "corral-vk-v1", team, id, sec + HOST_IDN_KEY_LEN);
    sodium_free(sec);
    if (rc != 0) {
        memset(out, 0, sizeof(*out));
        return rc;
    }
    cr_base64url_encode(out->pk_b64, out->pk, sizeof(out->pk));
    cr_base64url_encode(out->sk_wrapped_b64, out->sk_wrapped, sizeof(out->sk_wrapped));
    cr_base64url_encode(out->vk_wrapped_b64, out->vk_wrapped, sizeof(out->vk_wrapped));
    return 0;
}

int host_identity_unwrap_sk(unsigned char **out, const unsigned char *k, const char *team, const char *id,
                            const void *wrapped, size_t len)
{
    return unwrap_key(out, k, "corral-idk-v1", "sk_wrapped", team, id, wrapped, len);
}

int host_identity_unwrap_vk(unsigned char **out, const unsigned char *k, const char *team, const char *id,
                            const void *wrapped, size_t len)
{
    return unwrap_key(out, k, "corral-vk-v1", "vk_wrapped", team, id, wrapped, len);
}

/* ---- secrets ---------------------------------------------------------------------------------------------------- */

static int secret_ad(uint8_t ad[AD_MAX], size_t *adlen, const char *team, const char *id, const char *key, uint64_t version)
{
    int rc;
    if ((rc = sodium_ready()) != 0 || (rc = team_check(team)) != 0 || (rc = host_identity_id_check(id)) != 0 ||
        (rc = host_secret_key_check(key)) != 0)
        return rc;
    if ((*adlen = ad_secret(ad, team, id, key, version)) == 0)
        return cr_error_set(CR_EBADNAME, "key", "team, identity id and key are too long");
    return 0;
}

int host_secret_seal(cr_buf_t *out, const unsigned char *vk, const char *team, const char *id, const char *key,
                     uint64_t version, const void *value, size_t len)
{
    uint8_t ad[AD_MAX];
    size_t adlen;
    int rc;
    if ((rc = secret_ad(ad, &adlen, team, id, key, version)) != 0)
        return rc;
    if (len > HOST_SECRET_VALUE_MAX)
        return cr_error_set(CR_ETOOLARGE, "value", "a secret value may be at most %u bytes, this one is %zu",
                            HOST_SECRET_VALUE_MAX, len);
    return cr_seal(out, vk, ad, adlen, value, len, NULL);
}

int host_secret_open(char **out, size_t *outlen, const unsigned char *vk, const char *team, const char *id,
                     const char *key, uint64_t version, const void *blob, size_t bloblen)
{
    uint8_t ad[AD_MAX];
    size_t adlen, plen = 0;
    char *p;
    int rc;
    *out = NULL;
    *outlen = 0;
    if ((rc = secret_ad(ad, &adlen, team, id, key, version)) != 0)
        return rc;
    if (bloblen < CR_SEAL_OVERHEAD || bloblen > HOST_SECRET_BLOB_MAX)
        return cr_error_set(CR_ESEAL, "value", "a sealed secret must be %d to %u bytes, got %zu", CR_SEAL_OVERHEAD,
                            (unsigned)HOST_SECRET_BLOB_MAX, bloblen);
    if ((p = sodium_malloc(bloblen - CR_SEAL_OVERHEAD + 1)) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of locked memory for a secret value");
    if ((rc = box_open((uint8_t *)p, &plen, vk, ad, adlen, blob, bloblen, "the sealed secret", "value")) != 0) {
        sodium_free(p);
        return rc;
    }
    p[plen] = '\0';
    *out = p;
    *outlen = plen;
    return 0;
}

/* ---- inbox messages --------------------------------------------------------------------------------------------- */

int host_inbox_open(cr_buf_t *out, const void *sealed, size_t len, const unsigned char pk[HOST_IDN_KEY_LEN],
                    const unsigned char *sk)
{
    size_t plen;
    int rc;
    if ((rc = sodium_ready()) != 0)
        return rc;
    if (len < crypto_box_SEALBYTES)
        return cr_error_set(CR_ESEAL, "message", "a sealed message must be at least %d bytes, got %zu",
                            (int)crypto_box_SEALBYTES, len);
    plen = len - crypto_box_SEALBYTES;
    if (plen > HOST_INBOX_MSG_MAX)
        return cr_error_set(CR_ETOOLARGE, "message", "a message may be at most %u bytes, this one is %zu",
                            HOST_INBOX_MSG_MAX, plen);
    if ((rc = cr_buf_reserve(out, plen)) != 0)
        return cr_error_set(rc, "message", "no room for a message of %zu bytes", plen);
    if (crypto_box_seal_open((unsigned char *)out->base + out->len, sealed, len, pk, sk) != 0)
        return cr_error_set(CR_ESEAL, "message",
                            "the sealed message does not open: it was not sealed to this identity's key, or it was changed");
    out->len += plen;
    return 0;
}

static const cr_limits_t *inbox_limits(void)
{
    static cr_limits_t lim;
    if (lim.max_string == 0) {
        lim = cr_limits_default;
        lim.max_envelope = HOST_INBOX_MSG_MAX;
        lim.max_string = HOST_INBOX_MSG_MAX; /* raw may come as a str; each text field is held to HOST_INBOX_STR_MAX */
        lim.max_bin = HOST_INBOX_MSG_MAX;
        lim.max_elements = 4 * HOST_INBOX_LIST_MAX;
        lim.max_depth = 4;
    }
    return &lim;
}

void host_inbox_msg_clear(host_inbox_msg_t *m)
{
    if (m == NULL)
        return;
    free(m->from);
    free(m->to);
    free(m->subject);
    free(m->text);
    free(m->otp);
    for (size_t i = 0; i < m->nlinks; i++)
        free(m->links[i]);
    free(m->links);
    for (size_t i = 0; i < m->notp_candidates; i++)
        free(m->otp_candidates[i]);
    free(m->otp_candidates);
    for (size_t i = 0; i < m->nflags; i++)
        free(m->flags[i]);
    free(m->flags);
    free(m->raw);
    memset(m, 0, sizeof(*m));
}

/* Reads member key of the (checked) map: a str (or nil / absent: "" unless required) of at most max bytes without
 * NUL, malloc'd into *dup. Returns 0 or CR_EBODY / CR_ENOMEM. */
static int mp_str(char **dup, const char *mp, size_t len, const char *key, int required, size_t max)
{
    cr_span_t v;
    cr_mp_item_t it;
    const char *p = "";
    size_t n = 0;
    if (cr_mp_map_get(mp, len, key, &v) == 0 && cr_mp_read(v.base, v.base + v.len, &it) != 0 &&
        it.type != MSGPACK_OBJECT_NIL) {
        if (it.type != MSGPACK_OBJECT_STR)
            return cr_error_set(CR_EBODY, key, "\"%s\" must be a string", key);
        if (it.bytes.len > max)
            return cr_error_set(CR_EBODY, key, "\"%s\" is longer than %zu bytes", key, max);
        if (memchr(it.bytes.base, '\0', it.bytes.len) != NULL)
            return cr_error_set(CR_EBODY, key, "\"%s\" holds a NUL byte", key);
        p = it.bytes.base, n = it.bytes.len;
    } else if (required) {
        return cr_error_set(CR_EBODY, key, "\"%s\" is missing", key);
    }
    if ((*dup = cr_strndup(p, n)) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    return 0;
}

/* Reads member key, an array of str (absent or nil: empty), into *v / *n. */
static int mp_strv(char ***v, size_t *n, const char *mp, size_t len, const char *key, size_t max_each)
{
    cr_span_t s;
    cr_mp_item_t it;
    size_t hl;
    const char *p, *end;
    *v = NULL;
    *n = 0;
    if (cr_mp_map_get(mp, len, key, &s) != 0)
        return 0;
    if ((hl = cr_mp_read(s.base, s.base + s.len, &it)) == 0 || it.type == MSGPACK_OBJECT_NIL)
        return 0;
    if (it.type != MSGPACK_OBJECT_ARRAY)
        return cr_error_set(CR_EBODY, key, "\"%s\" must be an array of strings", key);
    if (it.count > HOST_INBOX_LIST_MAX)
        return cr_error_set(CR_EBODY, key, "\"%s\" has %u entries; at most %d are allowed", key, it.count, HOST_INBOX_LIST_MAX);
    if (it.count == 0)
        return 0;
    if ((*v = calloc(it.count, sizeof(**v))) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    p = s.base + hl, end = s.base + s.len;
    for (uint32_t i = 0; i < it.count; i++) {
        cr_mp_item_t e;
        if (cr_mp_read(p, end, &e) == 0 || e.type != MSGPACK_OBJECT_STR)
            return cr_error_set(CR_EBODY, key, "\"%s\" must be an array of strings (entry %u is not)", key, i);
        if (e.bytes.len > max_each || memchr(e.bytes.base, '\0', e.bytes.len) != NULL)
            return cr_error_set(CR_EBODY, key, "entry %u of \"%s\" is longer than %zu bytes or holds a NUL byte", i, key,
                                max_each);
        if (((*v)[i] = cr_strndup(e.bytes.base, e.bytes.len)) == NULL)
            return cr_error_set(CR_ENOMEM, NULL, "out of memory");
        (*n)++;
        p = cr_mp_skip(p, end);
    }
    return 0;
}

/* Checks the message's framing and limits as cr_mp_check does, member by member, except that raw may be a str that
 * is not UTF-8: the relay puts the message's bytes there as they came (8-bit mail need not be UTF-8). */
static int msg_check(const char *mp, size_t len)
{
    const char *p = mp, *end = mp + len;
    cr_mp_item_t it, k, v;
    size_t n, used;
    int rc;
    if (len > HOST_INBOX_MSG_MAX)
        return cr_error_set(CR_ETOOLARGE, NULL, "a message may be at most %u bytes, this one is %zu", HOST_INBOX_MSG_MAX, len);
    if ((n = cr_mp_read(p, end, &it)) == 0)
        return cr_error_set(CR_ETRUNCATED, NULL, "the message ends inside a value");
    if (it.type < 0)
        return cr_error_set(CR_EMSGPACK, NULL, "the message is not msgpack");
    if (it.type != MSGPACK_OBJECT_MAP)
        return cr_error_set(CR_EBODY, NULL, "a message must be a map");
    if (it.count > inbox_limits()->max_elements)
        return cr_error_set(CR_ETOOLARGE, NULL, "a message of %u members is over the limit", it.count);
    p += n;
    for (uint32_t i = 0; i < it.count; i++) {
        char key[48];
        if ((n = cr_mp_read(p, end, &k)) == 0)
            return cr_error_set(CR_ETRUNCATED, NULL, "the message ends inside a key");
        if (k.type != MSGPACK_OBJECT_STR)
            return cr_error_set(CR_EMSGPACK, NULL, "map keys must be strings");
        if (!cr_utf8_valid(k.bytes.base, k.bytes.len))
            return cr_error_set(CR_EENCODING, NULL, "a key of the message is not valid UTF-8");
        p += n;
        snprintf(key, sizeof(key), "%.*s", k.bytes.len < 40 ? (int)k.bytes.len : 40, k.bytes.base);
        if (cr_span_eq(k.bytes, "raw", 3) && (n = cr_mp_read(p, end, &v)) != 0 &&
            (v.type == MSGPACK_OBJECT_STR || v.type == MSGPACK_OBJECT_BIN)) {
            p += n; /* bounded by len, which HOST_INBOX_MSG_MAX bounds */
            continue;
        }
        if ((rc = cr_mp_check(p, (size_t)(end - p), inbox_limits(), (size_t)(end - p), key, &used)) != 0)
            return rc == CR_EAGAIN ? cr_error_set(CR_ETRUNCATED, key, "the message ends inside a value") : rc;
        p += used;
    }
    if (p != end)
        return cr_error_set(CR_ETRAILING, NULL, "%zu bytes after the message", (size_t)(end - p));
    return 0;
}

int host_inbox_msg_from_mp(host_inbox_msg_t *out, const char *mp, size_t len)
{
    cr_span_t v;
    cr_mp_item_t it;
    char *s = NULL;
    int rc;
    if ((rc = msg_check(mp, len)) != 0)
        return rc;

    if ((rc = mp_str(&s, mp, len, "id", 1, HOST_INBOX_ID_MAX)) != 0)
        return rc;
    if (msgid_check(s, "id") != 0) {
        free(s);
        return cr_error_set(CR_EBODY, "id", "\"id\" is not a message id ([A-Za-z0-9_-][A-Za-z0-9._-], 1 to 64 characters)");
    }
    memcpy(out->id, s, strlen(s) + 1);
    free(s);
    if ((rc = mp_str(&s, mp, len, "kind", 1, 16)) != 0)
        return rc;
    if (strcmp(s, "mail") != 0 && strcmp(s, "sms") != 0) {
        free(s);
        return cr_error_set(CR_EBODY, "kind", "\"kind\" must be \"mail\" or \"sms\"");
    }
    memcpy(out->kind, s, strlen(s) + 1);
    free(s);
    s = NULL;

    if (cr_mp_map_get(mp, len, "received", &v) != 0 || cr_mp_read(v.base, v.base + v.len, &it) == 0 ||
        it.type != MSGPACK_OBJECT_POSITIVE_INTEGER)
        return cr_error_set(CR_EBODY, "received", "\"received\" must be a time in ms (a non-negative integer)");
    out->received = it.u;
    out->date = 0;
    if (cr_mp_map_get(mp, len, "date", &v) == 0 && cr_mp_read(v.base, v.base + v.len, &it) != 0) {
        if (it.type == MSGPACK_OBJECT_POSITIVE_INTEGER)
            out->date = it.u;
        else if (it.type != MSGPACK_OBJECT_NEGATIVE_INTEGER && it.type != MSGPACK_OBJECT_NIL)
            return cr_error_set(CR_EBODY, "date", "\"date\" must be a time in ms");
    }

    if ((rc = mp_str(&out->from, mp, len, "from", 0, HOST_INBOX_STR_MAX)) != 0 ||
        (rc = mp_str(&out->to, mp, len, "to", 0, HOST_INBOX_STR_MAX)) != 0 ||
        (rc = mp_str(&out->subject, mp, len, "subject", 0, HOST_INBOX_STR_MAX)) != 0 ||
        (rc = mp_str(&out->text, mp, len, "text", 0, HOST_INBOX_STR_MAX)) != 0 ||
        (rc = mp_str(&s, mp, len, "otp", 0, HOST_INBOX_OTP_MAX)) != 0)
        return rc;
    if (s[0] != '\0')
        out->otp = s;
    else
        free(s);
    if ((rc = mp_strv(&out->links, &out->nlinks, mp, len, "links", HOST_INBOX_STR_MAX)) != 0 ||
        (rc = mp_strv(&out->otp_candidates, &out->notp_candidates, mp, len, "otp_candidates", HOST_INBOX_OTP_MAX)) != 0 ||
        (rc = mp_strv(&out->flags, &out->nflags, mp, len, "flags", 64)) != 0)
        return rc;

    if (cr_mp_map_get(mp, len, "raw", &v) == 0 && cr_mp_read(v.base, v.base + v.len, &it) != 0 &&
        it.type != MSGPACK_OBJECT_NIL) {
        if (it.type != MSGPACK_OBJECT_BIN && it.type != MSGPACK_OBJECT_STR)
            return cr_error_set(CR_EBODY, "raw", "\"raw\" must be bytes (bin) or a string");
        if ((out->raw = malloc(it.bytes.len + 1)) == NULL)
            return cr_error_set(CR_ENOMEM, NULL, "out of memory");
        memcpy(out->raw, it.bytes.base, it.bytes.len);
        out->raw[it.bytes.len] = '\0';
        out->raw_len = it.bytes.len;
    }
    return 0;
}

static int mpw_kstr(cr_buf_t *b, const char *key, const char *v)
{
    return cr_mpw_str(b, key, strlen(key)) || cr_mpw_str(b, v != NULL ? v : "", v != NULL ? strlen(v) : 0);
}

static int mpw_kuint(cr_buf_t *b, const char *key, uint64_t v)
{
    return cr_mpw_str(b, key, strlen(key)) || cr_mpw_uint(b, v);
}

static int mpw_kstrv(cr_buf_t *b, const char *key, char *const *v, size_t n)
{
    int rc = cr_mpw_str(b, key, strlen(key)) || cr_mpw_array(b, (uint32_t)n);
    for (size_t i = 0; rc == 0 && i < n; i++)
        rc = cr_mpw_str(b, v[i], strlen(v[i]));
    return rc;
}

/* The msgpack writers return 0 or a negative code, and || folds them to 1: give back a code. */
static int mpw_rc(int rc)
{
    return rc == 0 ? 0 : cr_error_set(CR_ETOOLARGE, NULL, "the document is too large");
}

int host_inbox_msg_to_json(cr_buf_t *out, const host_inbox_msg_t *m)
{
    cr_buf_t mp;
    int rc;
    cr_buf_init(&mp, HOST_INBOX_JSON_MAX);
    rc = cr_mpw_map(&mp, 12) || mpw_kstr(&mp, "id", m->id) || mpw_kstr(&mp, "kind", m->kind) ||
         mpw_kstr(&mp, "from", m->from) || mpw_kstr(&mp, "to", m->to) || mpw_kstr(&mp, "subject", m->subject) ||
         mpw_kuint(&mp, "date", m->date) || mpw_kuint(&mp, "received", m->received) || mpw_kstr(&mp, "text", m->text) ||
         mpw_kstrv(&mp, "links", m->links, m->nlinks) || CR_MPW_LIT(&mp, "otp") ||
         (m->otp != NULL ? cr_mpw_str(&mp, m->otp, strlen(m->otp)) : cr_mpw_nil(&mp)) ||
         mpw_kstrv(&mp, "otp_candidates", m->otp_candidates, m->notp_candidates) ||
         mpw_kstrv(&mp, "flags", m->flags, m->nflags);
    if ((rc = mpw_rc(rc)) == 0)
        rc = cr_json_from_msgpack(out, mp.base, mp.len, inbox_limits());
    cr_buf_free(&mp);
    return rc;
}

/* ---- identity.json ---------------------------------------------------------------------------------------------- */

static int identity_to_json(cr_buf_t *json, const host_identity_t *idn)
{
    char pk[HOST_IDN_PK_B64_MAX], skw[HOST_IDN_WRAPPED_B64_MAX], vkw[HOST_IDN_WRAPPED_B64_MAX];
    cr_buf_t mp;
    int rc;
    cr_base64url_encode(pk, idn->pk, sizeof(idn->pk));
    cr_buf_init(&mp, IDN_JSON_MAX);
    rc = cr_mpw_map(&mp, idn->has_wrapped ? 8 : 6) || mpw_kstr(&mp, "id", idn->id) || mpw_kstr(&mp, "name", idn->name) ||
         mpw_kstr(&mp, "email", idn->email) || CR_MPW_LIT(&mp, "phone") ||
         (idn->phone[0] != '\0' ? cr_mpw_str(&mp, idn->phone, strlen(idn->phone)) : cr_mpw_nil(&mp)) ||
         mpw_kstr(&mp, "pk", pk) || mpw_kuint(&mp, "created", idn->created);
    if (rc == 0 && idn->has_wrapped) {
        cr_base64url_encode(skw, idn->sk_wrapped, sizeof(idn->sk_wrapped));
        cr_base64url_encode(vkw, idn->vk_wrapped, sizeof(idn->vk_wrapped));
        rc = mpw_kstr(&mp, "sk_wrapped", skw) || mpw_kstr(&mp, "vk_wrapped", vkw);
    }
    if ((rc = mpw_rc(rc)) == 0 && (rc = cr_json_from_msgpack(json, mp.base, mp.len, NULL)) == 0)
        rc = cr_buf_append(json, "\n", 1);
    cr_buf_free(&mp);
    return rc;
}

/* Copies str member key into dst (cap bytes with the NUL); "" for nil or absent when optional. */
static int json_str(char *dst, size_t cap, const char *mp, size_t len, const char *key, int required, const char *file)
{
    char *s = NULL;
    int rc = mp_str(&s, mp, len, key, required, cap - 1);
    if (rc != 0) {
        if (rc == CR_ENOMEM)
            return rc;
        char why[sizeof(cr_error_last()->message)];
        snprintf(why, sizeof(why), "%s", cr_error_last()->message);
        return cr_error_set(CR_EJSON, key, "%s: %s", file, why);
    }
    memcpy(dst, s, strlen(s) + 1);
    free(s);
    return 0;
}

/* Decodes base64url member key into exactly n bytes at dst. Returns 0, 1 (absent, when optional) or CR_EJSON. */
static int json_b64(unsigned char *dst, size_t n, const char *mp, size_t len, const char *key, int required,
                    const char *file)
{
    char s[HOST_IDN_WRAPPED_B64_MAX + 8];
    cr_buf_t b;
    int rc;
    cr_span_t v;
    if (!required && cr_mp_map_get(mp, len, key, &v) != 0)
        return 1;
    if ((rc = json_str(s, sizeof(s), mp, len, key, 1, file)) != 0)
        return rc;
    cr_buf_init(&b, n + 8);
    rc = cr_base64url_decode(&b, s, strlen(s));
    if (rc == 0 && b.len == n)
        memcpy(dst, b.base, n);
    else
        rc = cr_error_set(CR_EJSON, key, "%s: \"%s\" must be %zu bytes in base64url", file, key, n);
    cr_buf_free(&b);
    return rc;
}

static int identity_from_json(host_identity_t *out, const char *json, size_t jlen, const char *file)
{
    cr_buf_t mp;
    cr_mp_item_t it;
    cr_span_t v;
    int rc;
    memset(out, 0, sizeof(*out));
    cr_buf_init(&mp, IDN_JSON_MAX);
    if ((rc = cr_json_to_msgpack(&mp, json, jlen, NULL)) != 0) {
        char why[sizeof(cr_error_last()->message)];
        snprintf(why, sizeof(why), "%s", cr_error_last()->message);
        rc = cr_error_set(CR_EJSON, NULL, "%s is not valid JSON: %s", file, why);
        goto done;
    }
    if (cr_mp_read(mp.base, mp.base + mp.len, &it) == 0 || it.type != MSGPACK_OBJECT_MAP) {
        rc = cr_error_set(CR_EJSON, NULL, "%s is not a JSON object", file);
        goto done;
    }
    if ((rc = json_str(out->id, sizeof(out->id), mp.base, mp.len, "id", 1, file)) != 0 ||
        (rc = json_str(out->name, sizeof(out->name), mp.base, mp.len, "name", 1, file)) != 0 ||
        (rc = json_str(out->email, sizeof(out->email), mp.base, mp.len, "email", 0, file)) != 0 ||
        (rc = json_str(out->phone, sizeof(out->phone), mp.base, mp.len, "phone", 0, file)) != 0 ||
        (rc = json_b64(out->pk, sizeof(out->pk), mp.base, mp.len, "pk", 1, file)) != 0)
        goto done;
    if (host_identity_id_check(out->id) != 0 || host_identity_name_check(out->name) != 0) {
        char why[sizeof(cr_error_last()->message)], field[sizeof(cr_error_last()->field)];
        snprintf(why, sizeof(why), "%s", cr_error_last()->message);
        snprintf(field, sizeof(field), "%s", cr_error_last()->field);
        rc = cr_error_set(CR_EJSON, field, "%s: %s", file, why);
        goto done;
    }
    if (cr_mp_map_get(mp.base, mp.len, "created", &v) != 0 || cr_mp_read(v.base, v.base + v.len, &it) == 0 ||
        it.type != MSGPACK_OBJECT_POSITIVE_INTEGER) {
        rc = cr_error_set(CR_EJSON, "created", "%s: \"created\" must be a time in ms", file);
        goto done;
    }
    out->created = it.u;
    int a = json_b64(out->sk_wrapped, sizeof(out->sk_wrapped), mp.base, mp.len, "sk_wrapped", 0, file);
    int b = a < 0 ? a : json_b64(out->vk_wrapped, sizeof(out->vk_wrapped), mp.base, mp.len, "vk_wrapped", 0, file);
    if (a < 0 || b < 0) {
        rc = a < 0 ? a : b;
        goto done;
    }
    if (a != b) {
        rc = cr_error_set(CR_EJSON, a == 0 ? "vk_wrapped" : "sk_wrapped", "%s: \"sk_wrapped\" and \"vk_wrapped\" go together",
                          file);
        goto done;
    }
    out->has_wrapped = a == 0;
    rc = 0;
done:
    cr_buf_free(&mp);
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

/* ---- the identity store ----------------------------------------------------------------------------------------- */

int host_identity_save(const char *root, const host_identity_t *idn, int create)
{
    char dir[PATH_MAX], path[PATH_MAX];
    cr_buf_t json;
    int rc;
    if ((rc = host_identity_name_check(idn->name)) != 0 || (rc = host_identity_id_check(idn->id)) != 0)
        return rc;
    if (memchr(idn->email, '\0', sizeof(idn->email)) == NULL || memchr(idn->phone, '\0', sizeof(idn->phone)) == NULL)
        return cr_error_set(CR_EBADNAME, "email", "the email or phone is not terminated");
    if ((rc = path_fmt(dir, sizeof(dir), "%s/%s", root, idn->name)) != 0 ||
        (rc = path_fmt(path, sizeof(path), "%s/identity.json", dir)) != 0)
        return rc;
    if ((rc = cr_mkdir_p(root, 0700)) != 0 || (rc = mkdir_private(dir)) != 0)
        return rc;
    if (create && access(path, F_OK) == 0)
        return cr_error_set(CR_EEXISTS, "name", "an identity named %s exists already", idn->name);
    cr_buf_init(&json, IDN_JSON_MAX);
    if ((rc = identity_to_json(&json, idn)) == 0)
        rc = cr_write_atomic(dir, "identity.json", json.base, json.len, 0600, 1);
    cr_buf_free(&json);
    return rc;
}

int host_identity_load(host_identity_t *out, const char *root, const char *name)
{
    char path[PATH_MAX], *json = NULL;
    size_t jlen;
    int rc;
    memset(out, 0, sizeof(*out));
    if ((rc = host_identity_name_check(name)) != 0 || (rc = path_fmt(path, sizeof(path), "%s/%s/identity.json", root, name)) != 0)
        return rc;
    if ((rc = cr_read_whole(&json, &jlen, path, IDN_JSON_MAX)) != 0) {
        if (rc == CR_ENOTFOUND)
            rc = cr_error_set(CR_ENOTFOUND, "name", "no identity named %s", name);
        return rc;
    }
    if ((rc = identity_from_json(out, json, jlen, path)) == 0 && strcmp(out->name, name) != 0)
        rc = cr_error_set(CR_EJSON, "name", "%s: \"name\" is %s, not the directory's name", path, out->name);
    free(json);
    if (rc != 0)
        memset(out, 0, sizeof(*out));
    return rc;
}

static int cmp_identities(const void *a, const void *b)
{
    const host_identity_t *x = a, *y = b;
    if (x->created != y->created)
        return x->created < y->created ? -1 : 1;
    return strcmp(x->name, y->name);
}

int host_identity_list(host_identity_t **out, size_t *n, const char *root)
{
    DIR *d;
    struct dirent *e;
    host_identity_t *list = NULL;
    size_t cnt = 0, cap = 0;
    int rc = 0;
    *out = NULL;
    *n = 0;
    if ((d = opendir(root)) == NULL)
        return errno == ENOENT ? 0 : io_error("open directory", root);
    while ((e = readdir(d)) != NULL) {
        host_identity_t idn;
        if (e->d_name[0] == '.')
            continue;
        if (host_identity_name_check(e->d_name) != 0) {
            cr_log(CR_LOG_WARN, "identity: skipping %s/%s: not an identity name", root, e->d_name);
            continue;
        }
        if ((rc = host_identity_load(&idn, root, e->d_name)) != 0) {
            if (rc == CR_ENOMEM)
                goto done;
            if (rc != CR_ENOTFOUND)
                cr_log(CR_LOG_WARN, "identity: skipping %s: %s", e->d_name, cr_error_last()->message);
            rc = 0;
            continue;
        }
        if (cnt == cap) {
            size_t ncap = cap == 0 ? 8 : cap * 2;
            host_identity_t *nl = realloc(list, ncap * sizeof(*nl));
            if (nl == NULL) {
                rc = cr_error_set(CR_ENOMEM, NULL, "out of memory listing identities");
                goto done;
            }
            list = nl, cap = ncap;
        }
        list[cnt++] = idn;
    }
    if (cnt > 1)
        qsort(list, cnt, sizeof(*list), cmp_identities);
    *out = list;
    *n = cnt;
    list = NULL;
done:
    free(list);
    closedir(d);
    return rc;
}

int host_identity_find(host_identity_t *out, const char *root, const char *key)
{
    host_identity_t *list;
    size_t n;
    int rc;
    char pr[300];
    if (host_identity_name_check(key) == 0) {
        rc = host_identity_load(out, root, key);
        if (rc != CR_ENOTFOUND)
            return rc;
    }
    if ((rc = host_identity_list(&list, &n, root)) != 0)
        return rc;
    rc = cr_error_set(CR_ENOTFOUND, "id", "no identity has the name or id \"%s\"", printable(pr, key));
    for (size_t i = 0; i < n; i++)
        if (strcmp(list[i].id, key) == 0) {
            *out = list[i];
            cr_error_clear();
            rc = 0;
            break;
        }
    free(list);
    return rc;
}

/* ---- the inbox store -------------------------------------------------------------------------------------------- */

/* <root>/<name> when the identity exists. Returns 0, CR_EBADNAME, CR_ENOTFOUND or CR_EIO. */
static int identity_dir(char *out, size_t outlen, const char *root, const char *name)
{
    int rc;
    if ((rc = host_identity_name_check(name)) != 0 || (rc = path_fmt(out, outlen, "%s/%s", root, name)) != 0)
        return rc;
    if (!is_dir(out))
        return cr_error_set(CR_ENOTFOUND, "name", "no identity named %s", name);
    return 0;
}

typedef struct st_idx_t idx_t; /* the in-memory index of an inbox: see host_inbox_find */
static idx_t *idx_find(const char *dir);
static int idx_insert(idx_t *x, const host_inbox_msg_t *m);

int host_inbox_save(const char *root, const char *name, const host_inbox_msg_t *m)
{
    char dir[PATH_MAX], file[HOST_INBOX_ID_MAX + 8], path[PATH_MAX];
    cr_buf_t json;
    int rc;
    if ((rc = msgid_check(m->id, "id")) != 0 || (rc = identity_dir(dir, sizeof(dir), root, name)) != 0)
        return rc;
    if ((rc = path_fmt(dir + strlen(dir), sizeof(dir) - strlen(dir), "/inbox")) != 0 || (rc = mkdir_private(dir)) != 0 ||
        (rc = path_fmt(path, sizeof(path), "%s/%s.json", dir, m->id)) != 0)
        return rc;
    if (access(path, F_OK) == 0)
        return 1;
    snprintf(file, sizeof(file), "%s.eml", m->id);
    if ((rc = cr_write_atomic(dir, file, m->raw != NULL ? m->raw : "", m->raw_len, 0600, 1)) != 0)
        return rc;
    cr_buf_init(&json, HOST_INBOX_JSON_MAX);
    if ((rc = host_inbox_msg_to_json(&json, m)) == 0 && (rc = cr_buf_append(&json, "\n", 1)) == 0) {
        snprintf(file, sizeof(file), "%s.json", m->id);
        rc = cr_write_atomic(dir, file, json.base, json.len, 0600, 1);
    }
    cr_buf_free(&json);
    if (rc == 0) {
        idx_t *x;
        dir[strlen(dir) - 6] = '\0'; /* the identity's directory, without /inbox */
        if ((x = idx_find(dir)) != NULL && idx_insert(x, m) != 0)
            cr_log(CR_LOG_WARN, "identity %s: %s (the message is stored)", name, cr_error_last()->message);
    }
    return rc;
}

static int load_msg(host_inbox_msg_t *m, const char *path, const char *id)
{
    char *json = NULL;
    size_t jlen;
    cr_buf_t mp;
    int rc;
    if ((rc = cr_read_whole(&json, &jlen, path, HOST_INBOX_JSON_MAX)) != 0)
        return rc;
    cr_buf_init(&mp, HOST_INBOX_JSON_MAX);
    if ((rc = cr_json_to_msgpack(&mp, json, jlen, inbox_limits())) == 0 && (rc = host_inbox_msg_from_mp(m, mp.base, mp.len)) == 0 &&
        strcmp(m->id, id) != 0)
        rc = cr_error_set(CR_EJSON, "id", "\"id\" is %s, not the file's name", m->id);
    if (rc != 0 && rc != CR_ENOMEM) {
        char why[sizeof(cr_error_last()->message)], field[sizeof(cr_error_last()->field)];
        snprintf(why, sizeof(why), "%s", cr_error_last()->message);
        snprintf(field, sizeof(field), "%s", cr_error_last()->field);
        rc = cr_error_set(CR_EJSON, field, "%s: %s", path, why);
    }
    cr_buf_free(&mp);
    free(json);
    if (rc != 0)
        host_inbox_msg_clear(m);
    return rc;
}

static int cmp_msgs(const void *a, const void *b)
{
    const host_inbox_msg_t *x = a, *y = b;
    if (x->received != y->received)
        return x->received < y->received ? -1 : 1;
    return strcmp(x->id, y->id);
}

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(char *const *)a, *(char *const *)b);
}

/* The given ids of a session: the file's complete lines, sorted for bsearch. */
typedef struct st_given_t {
    char *buf;
    char **ids;
    size_t n;
} given_t;

static void given_free(given_t *g)
{
    free(g->buf);
    free(g->ids);
    memset(g, 0, sizeof(*g));
}

static int given_load(given_t *g, const char *idn_dir, const char *session)
{
    char path[PATH_MAX];
    size_t len, cap = 0;
    int rc;
    memset(g, 0, sizeof(*g));
    if ((rc = path_fmt(path, sizeof(path), "%s/given/%s", idn_dir, session)) != 0)
        return rc;
    if ((rc = cr_read_whole(&g->buf, &len, path, GIVEN_MAX)) != 0)
        return rc == CR_ENOTFOUND ? (cr_error_clear(), 0) : rc;
    for (size_t i = 0; i < len; i++)
        cap += g->buf[i] == '\n';
    if (cap > 0 && (g->ids = malloc(cap * sizeof(*g->ids))) == NULL) {
        given_free(g);
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    }
    /* only complete lines count: a torn last line (a crash inside the append) was never acknowledged */
    for (char *p = g->buf, *nl; (nl = memchr(p, '\n', len - (size_t)(p - g->buf))) != NULL; p = nl + 1) {
        *nl = '\0';
        if (*p != '\0')
            g->ids[g->n++] = p;
    }
    if (g->n > 1)
        qsort(g->ids, g->n, sizeof(*g->ids), cmp_strp);
    return 0;
}

static int given_has(const given_t *g, const char *id)
{
    return g->n > 0 && bsearch(&id, g->ids, g->n, sizeof(*g->ids), cmp_strp) != NULL;
}

void host_inbox_list_free(host_inbox_msg_t *list, size_t n)
{
    for (size_t i = 0; i < n; i++)
        host_inbox_msg_clear(&list[i]);
    free(list);
}

int host_inbox_list(host_inbox_msg_t **out, size_t *n, const char *root, const char *name, const char *session)
{
    char dir[PATH_MAX], inbox[PATH_MAX], path[PATH_MAX];
    DIR *d = NULL;
    struct dirent *e;
    host_inbox_msg_t *list = NULL;
    size_t cnt = 0, cap = 0;
    given_t given = {0};
    int rc;
    *out = NULL;
    *n = 0;
    if ((session != NULL && (rc = session_check(session)) != 0) || (rc = identity_dir(dir, sizeof(dir), root, name)) != 0 ||
        (rc = path_fmt(inbox, sizeof(inbox), "%s/inbox", dir)) != 0)
        return rc;
    if (session != NULL && (rc = given_load(&given, dir, session)) != 0)
        return rc;
    if ((d = opendir(inbox)) == NULL) {
        rc = errno == ENOENT ? 0 : io_error("open directory", inbox);
        goto done;
    }
    while ((e = readdir(d)) != NULL) {
        char id[HOST_INBOX_ID_MAX + 1];
        size_t nl = strlen(e->d_name);
        if (e->d_name[0] == '.' || nl <= 5 || strcmp(e->d_name + nl - 5, ".json") != 0 || nl - 5 > HOST_INBOX_ID_MAX)
            continue;
        memcpy(id, e->d_name, nl - 5);
        id[nl - 5] = '\0';
        if (msgid_check(id, "id") != 0)
            continue;
        if (cnt == cap) {
            size_t ncap = cap == 0 ? 16 : cap * 2;
            host_inbox_msg_t *l2 = realloc(list, ncap * sizeof(*l2));
            if (l2 == NULL) {
                rc = cr_error_set(CR_ENOMEM, NULL, "out of memory listing the inbox");
                goto done;
            }
            list = l2, cap = ncap;
        }
        memset(&list[cnt], 0, sizeof(list[cnt]));
        if ((rc = path_fmt(path, sizeof(path), "%s/%s", inbox, e->d_name)) != 0)
            goto done;
        if ((rc = load_msg(&list[cnt], path, id)) != 0) {
            if (rc == CR_ENOMEM)
                goto done;
            cr_log(CR_LOG_WARN, "identity: skipping a message of %s: %s", name, cr_error_last()->message);
            rc = 0;
            continue;
        }
        list[cnt].given = session != NULL && given_has(&given, id);
        cnt++;
    }
    if (cnt > 1)
        qsort(list, cnt, sizeof(*list), cmp_msgs);
    *out = list;
    *n = cnt;
    list = NULL;
    cnt = 0;
    rc = 0;
done:
    if (d != NULL)
        closedir(d);
    host_inbox_list_free(list, cnt);
    given_free(&given);
    return rc;
}

int host_inbox_load_raw(host_inbox_msg_t *m, const char *root, const char *name)
{
    char dir[PATH_MAX], path[PATH_MAX], *raw;
    size_t len;
    int rc;
    if ((rc = msgid_check(m->id, "id")) != 0 || (rc = identity_dir(dir, sizeof(dir), root, name)) != 0 ||
        (rc = path_fmt(path, sizeof(path), "%s/inbox/%s.eml", dir, m->id)) != 0 ||
        (rc = cr_read_whole(&raw, &len, path, HOST_INBOX_MSG_MAX)) != 0)
        return rc;
    free(m->raw);
    m->raw = raw;
    m->raw_len = len;
    return 0;
}

/* ASCII-case-insensitive substring; an empty or NULL needle is in everything. */
static int contains_ci(const char *hay, const char *needle)
{
    size_t nl;
    if (needle == NULL || (nl = strlen(needle)) == 0)
        return 1;
    if (hay == NULL)
        return 0;
    for (const char *p = hay; *p != '\0'; p++) {
        size_t i = 0;
        while (i < nl && p[i] != '\0') {
            unsigned char a = (unsigned char)p[i], b = (unsigned char)needle[i];
            if (a >= 'A' && a <= 'Z')
                a = (unsigned char)(a + 32);
            if (b >= 'A' && b <= 'Z')
                b = (unsigned char)(b + 32);
            if (a != b)
                break;
            i++;
        }
        if (i == nl)
            return 1;
    }
    return 0;
}

/* ---- the index host_inbox_find searches ------------------------------------------------------------------------
 * Reading every <msgid>.json for each long poll costs O(inbox) file reads: with thousands of messages that is tens of
 * milliseconds per mail. So each identity's inbox is read once per process into a small in-memory index (id, times,
 * subject, from, whether it has a code) and kept up to date by host_inbox_save; each session's given marks likewise
 * by host_inbox_mark_given. corrald is the only writer of a root (see the header), so the index cannot go stale. */

typedef struct st_idx_msg_t {
    char id[HOST_INBOX_ID_MAX + 1];
    uint64_t received;
    char *subject, *from;
    int has_otp;
} idx_msg_t;

typedef struct st_idx_given_t {
    char *session;
    char **ids; /* sorted, malloc'd each */
    size_t n, cap;
} idx_given_t;

struct st_idx_t {
    char dir[PATH_MAX];
    idx_msg_t *m; /* by (received, id) */
    size_t n, cap;
    idx_given_t *gv;
    size_t ngv;
    struct st_idx_t *next;
};

static idx_t *indexes;

static int idx_cmp(const idx_msg_t *x, uint64_t received, const char *id)
{
    if (x->received != received)
        return x->received < received ? -1 : 1;
    return strcmp(x->id, id);
}

static int idx_insert(idx_t *x, const host_inbox_msg_t *m)
{
    size_t lo = 0, hi = x->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = idx_cmp(&x->m[mid], m->received, m->id);
        if (c == 0)
            return 0;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (x->n == x->cap) {
        size_t ncap = x->cap == 0 ? 64 : x->cap * 2;
        idx_msg_t *m2 = realloc(x->m, ncap * sizeof(*m2));
        if (m2 == NULL)
            return cr_error_set(CR_ENOMEM, NULL, "out of memory indexing the inbox");
        x->m = m2, x->cap = ncap;
    }
    idx_msg_t e;
    memset(&e, 0, sizeof(e));
    snprintf(e.id, sizeof(e.id), "%s", m->id);
    e.received = m->received;
    e.has_otp = m->otp != NULL;
    if ((e.subject = strdup(m->subject != NULL ? m->subject : "")) == NULL ||
        (e.from = strdup(m->from != NULL ? m->from : "")) == NULL) {
        free(e.subject);
        return cr_error_set(CR_ENOMEM, NULL, "out of memory indexing the inbox");
    }
    memmove(&x->m[lo + 1], &x->m[lo], (x->n - lo) * sizeof(*x->m));
    x->m[lo] = e;
    ++x->n;
    return 0;
}

static idx_t *idx_find(const char *dir)
{
    for (idx_t *x = indexes; x != NULL; x = x->next)
        if (strcmp(x->dir, dir) == 0)
            return x;
    return NULL;
}

/* The index of identity name under root, read from disk on first use. Returns 0 or the errors of host_inbox_list. */
static int idx_get(idx_t **out, const char *root, const char *name)
{
    char dir[PATH_MAX];
    host_inbox_msg_t *list;
    size_t n;
    idx_t *x;
    int rc;
    if ((rc = identity_dir(dir, sizeof(dir), root, name)) != 0)
        return rc;
    if ((*out = idx_find(dir)) != NULL)
        return 0;
    if ((rc = host_inbox_list(&list, &n, root, name, NULL)) != 0)
        return rc;
    if ((x = calloc(1, sizeof(*x))) == NULL) {
        host_inbox_list_free(list, n);
        return cr_error_set(CR_ENOMEM, NULL, "out of memory indexing the inbox");
    }
    snprintf(x->dir, sizeof(x->dir), "%s", dir);
    for (size_t i = 0; i < n && rc == 0; i++)
        rc = idx_insert(x, &list[i]);
    host_inbox_list_free(list, n);
    x->next = indexes;
    indexes = x; /* kept even after a failed insert: what it holds is right, a retry reads the rest */
    *out = x;
    return rc;
}

static int given_insert(idx_given_t *g, const char *id)
{
    size_t lo = 0, hi = g->n;
    while (lo < hi) {
        size_t mid = (lo + hi) / 2;
        int c = strcmp(g->ids[mid], id);
        if (c == 0)
            return 0;
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid;
    }
    if (g->n == g->cap) {
        size_t ncap = g->cap == 0 ? 16 : g->cap * 2;
        char **i2 = realloc(g->ids, ncap * sizeof(*i2));
        if (i2 == NULL)
            return cr_error_set(CR_ENOMEM, NULL, "out of memory");
        g->ids = i2, g->cap = ncap;
    }
    char *c = strdup(id);
    if (c == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    memmove(&g->ids[lo + 1], &g->ids[lo], (g->n - lo) * sizeof(*g->ids));
    g->ids[lo] = c;
    ++g->n;
    return 0;
}

static int given_contains(const idx_given_t *g, const char *id)
{
    return g->n > 0 && bsearch(&id, g->ids, g->n, sizeof(*g->ids), cmp_strp) != NULL;
}

/* The given marks of session in index x, read from disk on first use. Returns 0 with *out set, or an error. */
static int idx_given(idx_given_t **out, idx_t *x, const char *session)
{
    given_t g;
    idx_given_t *v;
    int rc;
    for (size_t i = 0; i < x->ngv; i++)
        if (strcmp(x->gv[i].session, session) == 0) {
            *out = &x->gv[i];
            return 0;
        }
    if ((rc = given_load(&g, x->dir, session)) != 0)
        return rc;
    if ((v = realloc(x->gv, (x->ngv + 1) * sizeof(*v))) == NULL) {
        given_free(&g);
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    }
    x->gv = v;
    v = &x->gv[x->ngv];
    memset(v, 0, sizeof(*v));
    if ((v->session = strdup(session)) == NULL) {
        given_free(&g);
        return cr_error_set(CR_ENOMEM, NULL, "out of memory");
    }
    ++x->ngv;
    for (size_t i = 0; i < g.n && rc == 0; i++)
        rc = given_insert(v, g.ids[i]);
    given_free(&g);
    *out = v;
    return rc;
}

int host_inbox_find(host_inbox_msg_t *out, const char *root, const char *name, const host_inbox_filter_t *f)
{
    idx_t *x;
    idx_given_t *gv = NULL;
    size_t after = 0; /* with since_id: only x->m[after..) */
    int has_since = f->since_ms != 0 || (f->since_id != NULL && f->since_id[0] != '\0');
    int rc;
    char pr[300], path[PATH_MAX];
    if (f->since_id != NULL && f->since_id[0] != '\0' && (rc = msgid_check(f->since_id, "since")) != 0)
        return rc;
    if (!has_since && f->session != NULL && (rc = session_check(f->session)) != 0)
        return rc;
    if ((rc = idx_get(&x, root, name)) != 0)
        return rc;
    if (!has_since && f->session != NULL && (rc = idx_given(&gv, x, f->session)) != 0)
        return rc;
    if (f->since_id != NULL && f->since_id[0] != '\0') {
        size_t i;
        for (i = 0; i < x->n && strcmp(x->m[i].id, f->since_id) != 0; i++)
            ;
        if (i == x->n)
            return cr_error_set(CR_ENOTFOUND, "since", "the inbox of %s holds no message %s", name, printable(pr, f->since_id));
        after = i + 1;
    }
    for (size_t k = after; k < x->n; k++) {
        const idx_msg_t *m = &x->m[f->newest ? x->n - 1 - (k - after) : k];
        if ((f->since_ms != 0 && m->received <= f->since_ms) || (gv != NULL && given_contains(gv, m->id)) ||
            (f->need_otp && !m->has_otp) || !contains_ci(m->subject, f->subject_contains) ||
            !contains_ci(m->from, f->from_contains))
            continue;
        if ((rc = path_fmt(path, sizeof(path), "%s/inbox/%s.json", x->dir, m->id)) != 0 ||
            (rc = load_msg(out, path, m->id)) != 0)
            return rc;
        out->given = 0;
        cr_error_clear();
        return 0;
    }
    return cr_error_set(CR_ENOTFOUND, NULL, "no matching message in the inbox of %s", name);
}

int host_inbox_is_given(const char *root, const char *name, const char *session, const char *msgid)
{
    char dir[PATH_MAX];
    given_t g;
    int rc;
    if ((rc = session_check(session)) != 0 || (rc = msgid_check(msgid, "id")) != 0 ||
        (rc = identity_dir(dir, sizeof(dir), root, name)) != 0)
        return rc;
    idx_t *x = idx_find(dir);
    for (size_t i = 0; x != NULL && i < x->ngv; i++)
        if (strcmp(x->gv[i].session, session) == 0)
            return given_contains(&x->gv[i], msgid);
    if ((rc = given_load(&g, dir, session)) != 0)
        return rc;
    rc = given_has(&g, msgid);
    given_free(&g);
    return rc;
}

int host_inbox_mark_given(const char *root, const char *name, const char *session, const char *msgid)
{
    char dir[PATH_MAX], path[PATH_MAX], line[HOST_INBOX_ID_MAX + 3];
    struct stat st;
    size_t len = 0;
    int fd, rc;
    if ((rc = host_inbox_is_given(root, name, session, msgid)) != 0)
        return rc < 0 ? rc : 0;
    if ((rc = identity_dir(dir, sizeof(dir), root, name)) != 0 ||
        (rc = path_fmt(dir + strlen(dir), sizeof(dir) - strlen(dir), "/given")) != 0 || (rc = mkdir_private(dir)) != 0 ||
        (rc = path_fmt(path, sizeof(path), "%s/%s", dir, session)) != 0)
        return rc;
    if ((fd = open(path, O_RDWR | O_APPEND | O_CREAT | O_CLOEXEC, 0600)) < 0)
        return io_error("open", path);
    if (fstat(fd, &st) != 0) {
        rc = io_error("stat", path);
        goto done;
    }
    if (st.st_size > 0) { /* after a torn append, start on a line of our own */
        char last;
        if (pread(fd, &last, 1, st.st_size - 1) != 1) {
            rc = io_error("read", path);
            goto done;
        }
        if (last != '\n')
            line[len++] = '\n';
    }
    len += (size_t)snprintf(line + len, sizeof(line) - len, "%s\n", msgid);
    for (size_t off = 0; off < len;) {
        ssize_t w = write(fd, line + off, len - off);
        if (w < 0 && errno == EINTR)
            continue;
        if (w < 0) {
            rc = io_error("write", path);
            goto done;
        }
        off += (size_t)w;
    }
    if (fdatasync(fd) != 0) {
        rc = io_error("fsync", path);
        goto done;
    }
    if (st.st_size == 0)
        rc = cr_fsync_dir(dir);
    if (rc == 0) {
        idx_t *x;
        dir[strlen(dir) - 6] = '\0'; /* without /given */
        if ((x = idx_find(dir)) != NULL)
            for (size_t i = 0; i < x->ngv; i++)
                if (strcmp(x->gv[i].session, session) == 0 && given_insert(&x->gv[i], msgid) != 0)
                    rc = CR_ENOMEM;
    }
done:
    close(fd);
    return rc;
}
