/* push_note.h — what a push says about an event (title, body, category, the sealed box) and which devices want it:
 * device records of cr:{T}:dev read and their filters matched (DESIGN.md §6). Pure functions: no network, no Redis. */
#ifndef RELAY_PUSH_NOTE_H
#define RELAY_PUSH_NOTE_H

#include "corral/envelope.h"
#include "corral/mp.h"
#include "push.h"
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define RELAY_PUSH_NOTE_TTL_S 3600                               /* a note is worthless an hour after the event */
#define RELAY_PUSH_SEALED_FALLBACK "Open Corral to see the request" /* the body shown when the real one is sealed */
#define RELAY_PUSH_PAYLOAD_MAX 4096                              /* APNs payload and FCM message, in bytes */
#define RELAY_PUSH_MIN_PRI_DEFAULT 2                             /* a record without filters.min_pri: only pri 2 */
#define RELAY_PUSH_DEVICE_RECORD_MAX (128 * 1024)                /* bytes of a device record, at most */

/* Makes the note of one event envelope env[0..len) (decoded with cr_event_decode and default limits). The title
 * names the agent's identity — the envelope's idn, else session_name (may be NULL or ""), else the sid: "<who> needs
 * approval" (approval.request), "<who> asks a question" (question), "<who> has changes to review" (diff.ready),
 * "<who>: <k>" for other kinds. The body is "<tool>: <summary>" (approval.request; its `input` is never read),
 * the question's text, "<n> files changed, +<add> -<del>" (diff.ready), a short text for other known kinds (never an
 * inbox message's otp), or "" — cut at a UTF-8 boundary with "…" to fit. A sealed body gives the body
 * RELAY_PUSH_SEALED_FALLBACK and out->sealed / sealed_len pointing at the box inside env (so env must outlive the
 * note). stream_id is the event's id in cr:{T}:ev and host the host id (NULL: ""); expires_s = now_s +
 * RELAY_PUSH_NOTE_TTL_S. Returns 0, an error of cr_event_decode (CR_EENVELOPE, CR_EBODY, CR_EMSGPACK, ...), or
 * CR_ETOOLARGE when stream_id or host does not fit the note; cr_error_last() says which. */
int relay_push_note_from_event(relay_push_note_t *out, const char *env, size_t len, const char *stream_id,
                               const char *host, const char *session_name, int64_t now_s);

/* The same for an envelope the caller has already decoded (ev's spans must point into memory that outlives out). */
int relay_push_note_from_decoded(relay_push_note_t *out, const cr_event_t *ev, const char *stream_id, const char *host,
                                 const char *session_name, int64_t now_s);

/* Shortens the NUL-terminated UTF-8 text s in place to at most max bytes: when it is longer, it is cut at a
 * character boundary and ends with "…" (when max < 3, cut without one). A text that fits is left alone. */
void relay_push_text_shorten(char *s, size_t max);

/* A device's filters, as its record says. The spans are msgpack arrays of strings inside the record (they point
 * into it: the record must outlive them); len 0 means "no such filter". */
typedef struct st_relay_push_filters_t {
    cr_span_t hosts;      /* when set, the event's host must be one of them */
    cr_span_t identities; /* when set, the event's idn must be one of them (an event without idn never matches) */
    cr_span_t muted;      /* sessions never pushed */
    unsigned min_pri;     /* the event's pri must be at least this (0..2) */
} relay_push_filters_t;

/* Reads a device record of cr:{T}:dev (the msgpack map pair.c writes: id, name, provider, token, env, subscription
 * {endpoint, keys {p256dh, auth}}, filters {hosts, identities, min_pri, muted}, created, updated) into *out and, when
 * filters is not NULL, its filters into *filters. provider "none" gives RELAY_PUSH_NONE and no token. The webpush
 * keys are decoded from base64url. created_ms is the record's "updated" (the time of the last registration), else
 * "created", else 0. Returns 0; a framing error of cr_mp_check (CR_EMSGPACK, CR_ETRUNCATED, CR_ETRAILING, or
 * CR_ETOOLARGE over RELAY_PUSH_DEVICE_RECORD_MAX); CR_EBODY (a field missing or of the wrong type for its provider,
 * an unknown provider, bad keys); or CR_ETOOLARGE (a token or endpoint longer than relay_push_device_t holds). In
 * every case cr_error_last() names the field. */
int relay_push_device_parse(relay_push_device_t *out, relay_push_filters_t *filters, const char *rec, size_t len);

/* Whether a device with these filters wants a push of an event of host `host` with identity idn (len 0: none),
 * priority pri and session sid: pri >= min_pri, the host listed (when hosts is set), idn listed (when identities is
 * set) and sid not muted. */
bool relay_push_filter_match(const relay_push_filters_t *f, cr_span_t host, cr_span_t idn, unsigned pri, cr_span_t sid);

/* ---- for the provider modules (push_apns.c, push_fcm.c, push_webpush.c) ------------------------------------ */

/* Builds a provider payload from *note into out, within max bytes: build(out, note, with_sealed, ctx) is called
 * first with the sealed box (when the note has one), then without it, then with the body (and at last the title)
 * shortened until the payload fits. work is scratch (a copy of note is made there). Returns 0, CR_ETOOLARGE when
 * nothing fits, or build's error; on error out is empty. */
typedef int (*relay_push__build_cb)(cr_buf_t *out, const relay_push_note_t *note, int with_sealed, const void *ctx);
int relay_push__fit(cr_buf_t *out, relay_push_note_t *work, const relay_push_note_t *note, size_t max,
                    relay_push__build_cb build, const void *ctx);

/* Appends `"key":"value"` (value JSON-escaped; a leading comma when comma is set). Returns 0, CR_ETOOLARGE or
 * CR_ENOMEM. */
int relay_push__json_kv(cr_buf_t *out, int comma, const char *key, const char *value);

/* Appends `"key":"<standard base64 of p[0..n)>"`, with a leading comma when comma is set. Same returns. */
int relay_push__json_b64(cr_buf_t *out, int comma, const char *key, const void *p, size_t n);

/* Converts a provider's JSON answer body into msgpack in mp (initialised here; the caller frees it). Returns 0, or
 * -1 when the body is empty or not JSON. */
int relay_push__answer_mp(cr_buf_t *mp, const relay_push_answer_t *ans);

/* Copies the string at a dotted path of maps ("error.status") of the msgpack map mp[0..len) into out (cut to fit,
 * NUL-terminated). Returns 0, or -1 (absent, or not a string) leaving out "". */
int relay_push__mp_text(char *out, size_t outlen, const char *mp, size_t len, const char *path);

/* Sets out->reason to s (cut to fit). */
void relay_push__reason(relay_push_outcome_t *out, const char *s);

#endif
