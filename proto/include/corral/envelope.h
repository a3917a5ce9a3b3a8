/* envelope.h — the event and action envelopes of PROTOCOL.md as C types: encode, decode, strict validation. */
#ifndef CORRAL_ENVELOPE_H
#define CORRAL_ENVELOPE_H

#include <stdint.h>
#include "corral/buf.h"
#include "corral/limits.h"
#include "corral/mp.h"

#define CR_PROTOCOL_VERSION 1

typedef enum cr_kind_t {
    CR_KIND_UNKNOWN = 0, /* an event kind this version does not know: stored and shown, body checked generically */
    /* events (host -> relay -> phones) */
    CR_EV_SESSION_STARTED,
    CR_EV_SESSION_STATE,
    CR_EV_AGENT_MESSAGE,
    CR_EV_AGENT_TOOL,
    CR_EV_APPROVAL_REQUEST,
    CR_EV_QUESTION,
    CR_EV_DIFF_READY,
    CR_EV_ACTION_APPLIED,
    CR_EV_INBOX_MESSAGE,
    CR_EV_SESSION_DONE,
    CR_EV_DIFF_FULL,
    /* actions (phone -> relay -> host) */
    CR_ACT_APPROVE = 32,
    CR_ACT_REJECT,
    CR_ACT_REPLY,
    CR_ACT_TASK,
    CR_ACT_INTERRUPT,
    CR_ACT_SUSPEND,
    CR_ACT_RESUME,
    CR_ACT_DIFF,
} cr_kind_t;

/* The wire name of a kind ("approval.request"); NULL for CR_KIND_UNKNOWN. */
const char *cr_kind_name(cr_kind_t kind);

/* The kind of a wire name, CR_KIND_UNKNOWN when it is none of the above. */
cr_kind_t cr_kind_parse(const char *s, size_t len);

static inline int cr_kind_is_action(cr_kind_t k)
{
    return k >= CR_ACT_APPROVE;
}

/* A body as it travels: the msgpack bytes of the "b" value, either a map (plain) or a bin (sealed, PROTOCOL.md
 * "Sealing"). An absent "b" decodes as the empty map. */
typedef struct st_cr_body_t {
    cr_span_t raw;   /* the msgpack value, header included */
    int sealed;      /* raw is a bin */
    cr_span_t box;   /* when sealed: the bin's payload, 0x01 || nonce[24] || ciphertext || tag[16] */
} cr_body_t;

/* An event envelope. Decoded spans point into the caller's input buffer (zero copy). */
typedef struct st_cr_event_t {
    uint32_t v;
    cr_kind_t kind;
    cr_span_t k;    /* the kind as sent (kept even when unknown) */
    cr_span_t sid;
    uint64_t seq;   /* >= 1 */
    uint64_t ts;    /* ms since the epoch */
    cr_span_t idn;  /* len 0 when absent */
    uint8_t pri;    /* 0 record, 1 live, 2 push */
    cr_body_t b;
} cr_event_t;

/* An action envelope. */
typedef struct st_cr_action_t {
    uint32_t v;
    cr_kind_t kind;
    cr_span_t k;
    cr_span_t sid;
    cr_span_t aid;  /* client-made id, the idempotency key */
    uint64_t ref;   /* seq of the event it answers; 0 when absent */
    uint64_t ts;
    cr_span_t by;   /* device id stamped by the relay; len 0 when absent */
    cr_body_t b;
} cr_action_t;

/* Decodes and validates one event envelope that is exactly mp[0..len): framing and limits (lim, NULL for the
 * defaults), the envelope's fields, and a plain body against its kind's schema. On success *out points into mp.
 * Returns 0 or CR_ETRUNCATED, CR_ETRAILING, CR_EMSGPACK, CR_ETOOLARGE, CR_ETOODEEP, CR_EENCODING, CR_EVERSION,
 * CR_EENVELOPE, CR_EBODY; cr_error_last() gives the message and the field. */
int cr_event_decode(cr_event_t *out, const char *mp, size_t len, const cr_limits_t *lim);

/* The same for an action. An action kind this version does not know is CR_EKIND. */
int cr_action_decode(cr_action_t *out, const char *mp, size_t len, const cr_limits_t *lim);

/* Checks a plain body (msgpack bytes of one map) against the schema of `kind`: required fields present, every
 * known field of its type, enums and limits. Unknown fields are allowed. Returns 0, CR_EBODY, or a framing error. */
int cr_body_validate(cr_kind_t kind, const char *mp, size_t len, const cr_limits_t *lim);

/* Appends the canonical msgpack of an envelope to out: keys in the order of PROTOCOL.md, optional keys only when
 * set, ints in their smallest form, b copied from ev->b.raw verbatim (an empty span writes {}). The envelope is
 * validated first (CR_EENVELOPE naming the field); the body's bytes are trusted to be one msgpack value.
 * Returns 0, CR_EENVELOPE, CR_ETOOLARGE (out's limit) or CR_ENOMEM; on error out keeps its old length. */
int cr_event_encode(cr_buf_t *out, const cr_event_t *ev);
int cr_action_encode(cr_buf_t *out, const cr_action_t *act);

/* An uplink batch: a msgpack array of event envelopes, at most lim->max_batch_events and lim->max_batch_bytes. */
typedef struct st_cr_batch_t {
    const char *pos, *end;
    uint32_t count, index;
} cr_batch_t;

/* Checks the batch's framing and limits. Returns 0, CR_ETRUNCATED, CR_ETRAILING, CR_EMSGPACK, CR_ETOOLARGE. */
int cr_batch_open(cr_batch_t *it, const char *mp, size_t len, const cr_limits_t *lim);

/* Gives the next envelope's bytes; returns 1, or 0 after the last. */
int cr_batch_next(cr_batch_t *it, cr_span_t *out);

#endif
