/* identity.h — corrald's identities (DESIGN.md §8): the key material of each identity (an X25519 inbox key pair and a
 * vault key VK, both wrapped with the team key K), secret values sealed with VK, sealed inbox messages opened with the
 * identity's key pair, and the on-disk store of identities and their inbox under a root directory
 * ($CORRAL_HOME/identities). No networking: the relay link and the local API use what is here.
 *
 * Crypto (the relay never sees a key or a plaintext; every box is CR_SEAL_VERSION ‖ nonce[24] ‖ XChaCha20-Poly1305-IETF
 * ciphertext+tag, the same layout as proto's cr_seal, with a random nonce):
 * - wrapped sk = box(K, X25519 secret half, AD = "corral-idk-v1" 0x00 team 0x00 identity-id)
 * - wrapped vk = box(K, VK, AD = "corral-vk-v1" 0x00 team 0x00 identity-id)
 * - secret blob = box(VK, value, AD = team 0x00 identity-id 0x00 key 0x00 version as 8 bytes big-endian)
 *   so a box moved to another identity, team, key or version, or a wrapped key moved to another identity, does not
 *   open. For transport the boxes are base64url (proto's codec.h).
 * - inbox messages: crypto_box_seal to the identity's public half, opened with crypto_box_seal_open.
 * K, VK, the X25519 secret half and plaintext secret values are only ever held in sodium_malloc'd memory (guarded,
 * mlock'd where the system allows) and wiped on free (host_secure_free).
 *
 * Store (open formats; directories 0700, files 0600, every file replaced atomically and fsync'd):
 *   <root>/<name>/identity.json        {"id","name","email","phone" (null when none),"pk" (base64url),"created" (ms),
 *                                       "sk_wrapped"?, "vk_wrapped"? (base64url; boxes under K, a cache of what the
 *                                       relay keeps)}
 *   <root>/<name>/inbox/<msgid>.eml    the raw message bytes as received (for an SMS, whatever raw the relay gave)
 *   <root>/<name>/inbox/<msgid>.json   {"id","kind","from","to","subject","date","received","text","links":[],
 *                                       "otp" (null when none),"otp_candidates":[],"flags":[]}; written after the .eml,
 *                                       so a message with its .json is complete (a lone .eml is ignored and rewritten)
 *   <root>/<name>/given/<session-id>   the ids of the messages already given to that session's inbox long poll, one
 *                                       a line, appended and fdatasync'd (`cat` shows them)
 * Nothing here is thread-safe beyond what the file system gives: one thread (corrald's loop) uses a root. */
#ifndef HOST_IDENTITY_H
#define HOST_IDENTITY_H

#include "corral/buf.h"
#include "corral/seal.h"
#include <stddef.h>
#include <stdint.h>

#define HOST_IDN_NAME_MAX 63                                      /* [a-z0-9][a-z0-9-]{0,62}, no final - */
#define HOST_IDN_ID_MAX 64                                        /* [A-Za-z0-9._-]{1,64}; made ones are "idn_" + ULID */
#define HOST_IDN_EMAIL_MAX 254                                    /* RFC 5321 path limit */
#define HOST_IDN_PHONE_MAX 32                                     /* E.164 "+15550100" with room to spare */
#define HOST_IDN_TEAM_MAX 128                                     /* bytes of a team id in an AD */
#define HOST_SECRET_KEY_MAX 128                                   /* [A-Za-z_][A-Za-z0-9_.-]{0,127} */
/* bytes of one secret value: its blob in base64url fits the relay's 64 KiB (49111 bytes) */
#define HOST_SECRET_VALUE_MAX ((64u << 10) / 4 * 3 - CR_SEAL_OVERHEAD)
#define HOST_IDN_KEY_LEN 32                                       /* K, VK and both X25519 halves */
#define HOST_IDN_WRAPPED_LEN (CR_SEAL_OVERHEAD + HOST_IDN_KEY_LEN) /* 73: a wrapped sk or vk */
#define HOST_IDN_WRAPPED_B64_MAX 99                               /* base64url of a wrapped key, with the NUL */
#define HOST_IDN_PK_B64_MAX 44                                    /* base64url of a public key, with the NUL */
#define HOST_SECRET_BLOB_MAX (CR_SEAL_OVERHEAD + HOST_SECRET_VALUE_MAX)

#define HOST_INBOX_ID_MAX 64          /* [A-Za-z0-9_-][A-Za-z0-9._-]{0,63} */
#define HOST_INBOX_MSG_MAX (32u << 20) /* bytes of one opened inbox message (msgpack, raw included) */
#define HOST_INBOX_JSON_MAX (8u << 20) /* bytes of a <msgid>.json read back */
#define HOST_INBOX_STR_MAX (1u << 20)  /* bytes of one text field (text, subject, ...) */
#define HOST_INBOX_LIST_MAX 256        /* entries of links, otp_candidates or flags */
#define HOST_INBOX_OTP_MAX 64          /* bytes of one code */

/* ---- names ------------------------------------------------------------------------------------------------------ */

/* Checks an identity name: [a-z0-9][a-z0-9-]{0,62} and not ending with '-' (the relay's rule), usable as an email
 * local part and a directory name. Returns 0, or CR_EBADNAME with cr_error_last() (field "name") saying what is
 * wrong with it. */
int host_identity_name_check(const char *name);

/* Checks a secret's key: [A-Za-z_][A-Za-z0-9_.-]{0,127} (an environment variable name, plus '.' and '-'). Returns 0
 * or CR_EBADNAME (field "key"). */
int host_secret_key_check(const char *key);

/* Checks an identity id: [A-Za-z0-9._-]{1,64}. Returns 0 or CR_EBADNAME (field "id"). */
int host_identity_id_check(const char *id);

/* Writes a new identity id, "idn_" + a ULID (30 characters), into out. */
void host_identity_id_new(char out[HOST_IDN_ID_MAX + 1]);

/* ---- keys ------------------------------------------------------------------------------------------------------- */

/* Frees memory from sodium_malloc (a key or a secret value given out here), wiping it. NULL is fine. */
void host_secure_free(void *p);

/* Reads the team key K from <home>/team.key (making one when there is none, see host_pair_team_key) into sodium
 * memory. On success *out (HOST_IDN_KEY_LEN bytes) belongs to the caller, who frees it with host_secure_free right
 * after use. Returns 0, CR_ECONFIG, CR_EIO or CR_ENOMEM. */
int host_team_key_load(unsigned char **out, const char *home);

/* The public part of a new identity's keys: what goes to the relay (and the pk into identity.json). */
typedef struct st_host_identity_keys_t {
    unsigned char pk[HOST_IDN_KEY_LEN];                    /* X25519 public half: the relay seals mail to it */
    unsigned char sk_wrapped[HOST_IDN_WRAPPED_LEN];        /* the secret half, boxed with K */
    unsigned char vk_wrapped[HOST_IDN_WRAPPED_LEN];        /* the vault key, boxed with K */
    char pk_b64[HOST_IDN_PK_B64_MAX];                      /* the same three in base64url */
    char sk_wrapped_b64[HOST_IDN_WRAPPED_B64_MAX];
    char vk_wrapped_b64[HOST_IDN_WRAPPED_B64_MAX];
} host_identity_keys_t;

/* Makes the keys of identity `id` of `team`: an X25519 key pair and a random vault key VK, and wraps the secret half
 * and VK with the team key k (HOST_IDN_KEY_LEN bytes). The secret half and VK exist only in sodium memory during the
 * call and are wiped before it returns. Returns 0, CR_EBADNAME (a bad team or id) or CR_ENOMEM. */
int host_identity_keys_new(host_identity_keys_t *out, const unsigned char *k, const char *team, const char *id);

/* Unwraps identity id's X25519 secret half (host_identity_unwrap_sk) or vault key (host_identity_unwrap_vk) from the
 * box `wrapped` (len bytes, raw, not base64) with the team key k. On success *out (HOST_IDN_KEY_LEN bytes of sodium
 * memory) belongs to the caller, who frees it with host_secure_free right after use. Returns 0, CR_ESEAL (wrong team
 * key, a box of another identity or team, of the other kind, or changed), CR_EBADNAME or CR_ENOMEM. */
int host_identity_unwrap_sk(unsigned char **out, const unsigned char *k, const char *team, const char *id,
                            const void *wrapped, size_t len);
int host_identity_unwrap_vk(unsigned char **out, const unsigned char *k, const char *team, const char *id,
                            const void *wrapped, size_t len);

/* ---- secrets ---------------------------------------------------------------------------------------------------- */

/* Seals version `version` of secret `key` of identity `id` of `team` with the vault key vk, appending the blob
 * (raw bytes; cr_base64url_encode for transport) to out. The value is read in place and never copied. Returns 0,
 * CR_EBADNAME (a bad team, id or key), CR_ETOOLARGE (value over HOST_SECRET_VALUE_MAX, or out's limit) or CR_ENOMEM;
 * on error out keeps its length. */
int host_secret_seal(cr_buf_t *out, const unsigned char *vk, const char *team, const char *id, const char *key,
                     uint64_t version, const void *value, size_t len);

/* Opens a blob made by host_secret_seal with the same vk, team, id, key and version. On success *out holds the
 * value followed by a NUL (in sodium memory, owned by the caller: host_secure_free right after use) and *outlen its
 * length without the NUL. Returns 0, CR_ESEAL (anything else: the message never includes the value), CR_EBADNAME or
 * CR_ENOMEM. */
int host_secret_open(char **out, size_t *outlen, const unsigned char *vk, const char *team, const char *id,
                     const char *key, uint64_t version, const void *blob, size_t bloblen);

/* ---- the inbox message ------------------------------------------------------------------------------------------- */

/* One inbox message: what the relay sends (sealed), what <msgid>.json holds (all but raw), what the API answers. */
typedef struct st_host_inbox_msg_t {
    char id[HOST_INBOX_ID_MAX + 1]; /* "msg_…" */
    char kind[8];                   /* "mail" or "sms" */
    char *from;                     /* the fields below are malloc'd and owned by the message, never NULL once */
    char *to;                       /* decoded or loaded ("" when the relay sent none) */
    char *subject;
    char *text;
    uint64_t date;     /* the message's own date, ms since the epoch; 0 when it has none */
    uint64_t received; /* when the relay received it, ms since the epoch */
    char **links;      /* nlinks malloc'd strings, verification links first */
    size_t nlinks;
    char *otp;         /* the best code, or NULL when none */
    char **otp_candidates; /* best first (otp_candidates[0] is otp) */
    size_t notp_candidates;
    char **flags;      /* "malformed", "truncated", "html_only", … as the relay sent them */
    size_t nflags;
    char *raw;         /* the raw message bytes (malloc'd, raw_len bytes, NUL after them); NULL when not loaded */
    size_t raw_len;
    int given;         /* set by host_inbox_list for its session: 1 when given already */
} host_inbox_msg_t;

/* Decodes the msgpack map the relay seals for an identity (keys id, kind, from, to, subject, date, received, text,
 * links, otp, otp_candidates, flags, raw; unknown keys are ignored) into *out, which must be zeroed (or cleared) and
 * which the caller clears with host_inbox_msg_clear even when this fails. id (a message id), kind ("mail" or "sms")
 * and received (uint) are required; from, to, subject, text are str, date a uint (a negative int or nil reads as 0),
 * otp a str or nil, links / otp_candidates / flags arrays of str (at most HOST_INBOX_LIST_MAX), raw a bin or str
 * (the relay sends a str holding the message's bytes as they came, which need not be UTF-8: it is not checked). Other
 * strings must be UTF-8 without NUL bytes. Returns 0, or CR_EBODY (cr_error_last names the field), CR_EMSGPACK,
 * CR_ETRUNCATED, CR_ETRAILING, CR_ETOOLARGE, CR_ETOODEEP, CR_EENCODING or CR_ENOMEM. */
int host_inbox_msg_from_mp(host_inbox_msg_t *out, const char *mp, size_t len);

/* Appends the message's JSON object (the <msgid>.json form, also the API's "message" object; compact, no newline)
 * to out. Returns 0, CR_ETOOLARGE or CR_ENOMEM. */
int host_inbox_msg_to_json(cr_buf_t *out, const host_inbox_msg_t *m);

/* Frees what the message owns and zeroes it. NULL is fine. */
void host_inbox_msg_clear(host_inbox_msg_t *m);

/* Opens an inbox message sealed with crypto_box_seal to the key pair (pk, sk), appending the plaintext (the msgpack
 * map for host_inbox_msg_from_mp) to out. Returns 0, CR_ESEAL (not sealed to this key pair, or changed),
 * CR_ETOOLARGE (over HOST_INBOX_MSG_MAX or out's limit) or CR_ENOMEM; on error out keeps its length. */
int host_inbox_open(cr_buf_t *out, const void *sealed, size_t len, const unsigned char pk[HOST_IDN_KEY_LEN],
                    const unsigned char *sk);

/* ---- the store -------------------------------------------------------------------------------------------------- */

/* An identity's record (plain data). */
typedef struct st_host_identity_t {
    char id[HOST_IDN_ID_MAX + 1];
    char name[HOST_IDN_NAME_MAX + 1];
    char email[HOST_IDN_EMAIL_MAX + 1];
    char phone[HOST_IDN_PHONE_MAX + 1]; /* "" when it has none (null in JSON) */
    unsigned char pk[HOST_IDN_KEY_LEN];
    uint64_t created; /* ms since the epoch */
    int has_wrapped;  /* sk_wrapped and vk_wrapped are set */
    unsigned char sk_wrapped[HOST_IDN_WRAPPED_LEN];
    unsigned char vk_wrapped[HOST_IDN_WRAPPED_LEN];
} host_identity_t;

/* Writes <root>/<idn->name>/identity.json (making root and the identity's directory, mode 0700, when missing), mode
 * 0600, replaced atomically. With create set, an identity of that name must not exist yet (ids are not checked for
 * uniqueness: make them with host_identity_id_new). Returns 0, CR_EBADNAME (a bad name or id), CR_EEXISTS (create, and
 * the name is taken) or CR_EIO. */
int host_identity_save(const char *root, const host_identity_t *idn, int create);

/* Loads <root>/<name>/identity.json into *out. Returns 0, CR_EBADNAME, CR_ENOTFOUND, CR_EJSON (the file is not the
 * expected JSON object; the message names the file and the field) or CR_EIO. */
int host_identity_load(host_identity_t *out, const char *root, const char *name);

/* Loads the identity whose id or name is key (the name is tried first). Returns 0, CR_ENOTFOUND or CR_EIO. */
int host_identity_find(host_identity_t *out, const char *root, const char *key);

/* Loads every identity under root, sorted by created (then name); one whose identity.json does not load is skipped
 * with a warning in the log. *out is a malloc'd array of *n records (NULL when none), freed by the caller with
 * free(). A missing root is an empty list. Returns 0, CR_ENOMEM or CR_EIO. */
int host_identity_list(host_identity_t **out, size_t *n, const char *root);

/* Stores an opened message of identity `name`: <msgid>.eml (raw, empty when m->raw is NULL), then <msgid>.json,
 * both 0600, atomically and fsync'd. Idempotent: a message whose .json exists already is left as it is. Returns 0
 * (stored now), 1 (stored before: nothing written), CR_EBADNAME (a bad name or message id), CR_ENOTFOUND (no such
 * identity) or CR_EIO. */
int host_inbox_save(const char *root, const char *name, const host_inbox_msg_t *m);

/* Loads the metadata of every complete message of identity `name` (the .json files; raw is not loaded), oldest
 * first (by received, then id). With session (a session id) set, each message's `given` says whether that session
 * was given it. A .json that does not load is skipped with a warning. *out is a malloc'd array of *n messages (NULL
 * when none), freed with host_inbox_list_free. Returns 0, CR_EBADNAME, CR_ENOTFOUND (no such identity), CR_ENOMEM or
 * CR_EIO. */
int host_inbox_list(host_inbox_msg_t **out, size_t *n, const char *root, const char *name, const char *session);
void host_inbox_list_free(host_inbox_msg_t *list, size_t n);

/* Reads the raw bytes of message msgid into m->raw / m->raw_len (replacing what was there). Returns 0, CR_EBADNAME,
 * CR_ENOTFOUND, CR_ETOOLARGE or CR_EIO. */
int host_inbox_load_raw(host_inbox_msg_t *m, const char *root, const char *name);

/* What an inbox query looks for. Every member may be NULL / 0. */
typedef struct st_host_inbox_filter_t {
    const char *subject_contains; /* ASCII-case-insensitive substring of the subject */
    const char *from_contains;    /* ASCII-case-insensitive substring of from */
    uint64_t since_ms;            /* only messages received after this time (ms) */
    const char *since_id;         /* only messages after this one in the list's order */
    const char *session;          /* without since_ms / since_id: skip messages this session was given already */
    int newest;                   /* the newest match instead of the oldest */
    int need_otp;                 /* only messages with a code */
} host_inbox_filter_t;

/* Finds the oldest (or newest) message of identity `name` that matches f, into *out (cleared by the caller with
 * host_inbox_msg_clear; raw not loaded). The caller marks it given (host_inbox_mark_given) once it has answered.
 * Returns 0, CR_ENOTFOUND (no identity, no match, or since_id is no message of this inbox: cr_error_last says
 * which), CR_EBADNAME, CR_ENOMEM or CR_EIO. */
int host_inbox_find(host_inbox_msg_t *out, const char *root, const char *name, const host_inbox_filter_t *f);

/* Records that session was given message msgid (durably: appended and fdatasync'd; marking twice writes once).
 * Returns 0, CR_EBADNAME (a bad name, session or message id), CR_ENOTFOUND (no such identity) or CR_EIO. */
int host_inbox_mark_given(const char *root, const char *name, const char *session, const char *msgid);

/* Returns 1 when session was given msgid, 0 when not, or CR_EBADNAME / CR_EIO. */
int host_inbox_is_given(const char *root, const char *name, const char *session, const char *msgid);

#endif
