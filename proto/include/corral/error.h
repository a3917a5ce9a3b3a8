/* error.h — the shared core's error codes (numbers never change) and the thread-local last error. */
#ifndef CORRAL_ERROR_H
#define CORRAL_ERROR_H

#include <stddef.h>

/* Every function of the shared core returns 0 (CR_OK) or one of these negative codes. The numbers and the
 * wire names (cr_err_code) are part of the protocol: never renumber, only append. */
typedef enum cr_err_t {
    CR_OK = 0,
    CR_ERR = -1,           /* "internal": anything not listed below */
    CR_ENOMEM = -2,        /* "no_memory" */
    CR_EAGAIN = -3,        /* "incomplete": a stream decoder needs more bytes (not an error of the peer) */
    CR_ETRUNCATED = -4,    /* "truncated": the input ends inside a value */
    CR_EMSGPACK = -5,      /* "bad_msgpack": bytes that are not msgpack, or a type the protocol never uses */
    CR_ETOOLARGE = -6,     /* "too_large": over a limit of PROTOCOL.md "Limits" */
    CR_ETOODEEP = -7,      /* "too_deep": nesting deeper than the limit */
    CR_EENVELOPE = -8,     /* "bad_envelope": an envelope field missing, of the wrong type or with a bad value */
    CR_EBODY = -9,         /* "bad_body": a body field missing, of the wrong type or with a bad value */
    CR_EVERSION = -10,     /* "unsupported_version" */
    CR_EKIND = -11,        /* "unknown_kind": an action kind this version cannot apply */
    CR_ESEAL = -12,        /* "bad_seal": a sealed body that does not open (wrong key, AD or bytes) */
    CR_EJSON = -13,        /* "bad_json" */
    CR_EENCODING = -14,    /* "bad_encoding": bad base64, hex or UTF-8 */
    CR_ECONFIG = -15,      /* "bad_config" */
    CR_ETRAILING = -16,    /* "trailing_bytes": bytes after a complete value where none may follow */
    CR_ENOTFOUND = -17,    /* "not_found" */
    CR_EIO = -18,          /* "io": a system call failed; the message says which and why */
    CR_EEXISTS = -19,      /* "exists": something of that name exists already (a session, branch, worktree) */
    CR_ECONFLICT = -20,    /* "conflict": a merge conflicts; the message lists the paths */
    CR_ENOTFF = -21,       /* "not_fast_forward": the base moved on, a fast-forward is impossible */
    CR_EDIRTY = -22,       /* "dirty_worktree": local changes in the way */
    CR_EBADNAME = -23,     /* "bad_name": a name that cannot be used (a session name git cannot take) */
} cr_err_t;

/* The stable snake_case wire name of an error code ("bad_envelope"); "internal" for unknown numbers. */
const char *cr_err_code(int err);

/* The last error raised on this thread: its code, the message naming the problem, and the field it is about
 * ("" when none; nested fields are dotted, "b.files.2.path"). Valid until the next error on this thread. */
typedef struct st_cr_error_t {
    int code;
    char field[96];
    char message[256];
} cr_error_t;

const cr_error_t *cr_error_last(void);

/* Records an error for cr_error_last() and returns `code`, so `return cr_error_set(CR_EENVELOPE, "seq", "...")` reads
 * naturally. `field` may be NULL. */
int cr_error_set(int code, const char *field, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Forgets the last error. */
void cr_error_clear(void);

/* Writes the last error as the JSON error document of PROTOCOL.md ({"error":{"code","message","field"}}) into out
 * (NUL-terminated, cut to outlen). Returns the length written. */
size_t cr_error_json(char *out, size_t outlen);

#endif
