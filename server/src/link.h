/* link.h — corrald's link to the relay (DESIGN.md §3): the uplink of event batches from the outbox with acks, the
 * never-ending downlink of actions with its cursor and acks, full-jitter backoff, and a status for `corral`. */
#ifndef HOST_LINK_H
#define HOST_LINK_H

#include "corral/mp.h"
#include <stddef.h>
#include <stdint.h>
#include <uv.h>

#define HOST_LINK_BATCH_N 256               /* envelopes per uplink batch (the relay takes 512) */
#define HOST_LINK_BATCH_BYTES (1u << 20)    /* bytes per uplink batch (the relay takes 1 MiB) */
#define HOST_LINK_IDLE_MS 45000L            /* a downlink silent this long is stalled (the relay pings every 20 s) */
#define HOST_LINK_BACKOFF_BASE_MS 500L
#define HOST_LINK_BACKOFF_MAX_MS 30000L
#define HOST_LINK_CURSOR_MAX 48             /* a stream id "1700000000000-0" with room to spare */

typedef struct st_host_link_t host_link_t;

/* What the link needs from its owner: the outbox (next_batch, on_acked, on_rejected) and the applier of actions
 * (on_action, on_cursor). Every callback runs from the loop, never inside a host_link_* call, and must not free the
 * link. */
typedef struct st_host_link_cbs_t {
    /* Points out[0..max) at the oldest envelopes not yet acknowledged, in order, and returns how many (0: nothing
     * pending). The bytes need to stay valid only during the call (the link copies them). Required. */
    size_t (*next_batch)(cr_span_t *out, size_t max, void *data);
    /* The relay has stored every envelope of session sid up to seq: the outbox may drop them. Required. */
    void (*on_acked)(const char *sid, uint64_t seq, void *data);
    /* The relay refused envelope `index` of the last batch next_batch gave (its sid and seq when they could be read,
     * else "" and 0) with an error code and message: the outbox must drop it (it would be refused forever) and the
     * link sends the rest. The link first sends the good envelopes before it, so index is always 0: the refused one
     * is the oldest pending, and dropping it is acknowledging (sid, seq). Required. */
    void (*on_rejected)(size_t index, const char *sid, uint64_t seq, const char *code, const char *message, void *data);
    /* An action arrived: id is its stream cursor, act its envelope (a msgpack map, checked against the limits but
     * not decoded), valid during the call. Confirm it with host_link_ack(id) once applied. Required. */
    void (*on_action)(const char *id, const char *act, size_t act_len, void *data);
    /* A note arrived (n "inbox": message mid waits in the inbox of identity idn): id is its stream cursor, confirm it
     * with host_link_ack like an action. May be NULL (notes are then skipped; a later ack covers them). */
    void (*on_note)(const char *id, const char *n, const char *idn, const char *mid, void *data);
    /* The relay has recorded cursor as applied: persist it (it is the `after` of the next start). May be NULL. */
    void (*on_cursor)(const char *cursor, void *data);
    /* The number of envelopes waiting in the outbox, for the status. May be NULL. */
    size_t (*backlog)(void *data);
    /* The state changed (see host_link_status). May be NULL. */
    void (*on_state)(void *data);
} host_link_cbs_t;

typedef struct st_host_link_config_t {
    const char *url;         /* the relay, "https://relay.example.org" (no trailing slash); http:// for loopback */
    const char *token;       /* the host token: copied into locked memory, wiped on free, never logged */
    const char *ca_file;     /* NULL: the system's CAs */
    const char *cursor;      /* the downlink's starting cursor (the last on_cursor); NULL or "": the relay's record */
    size_t batch_n;          /* 0: HOST_LINK_BATCH_N */
    size_t batch_bytes;      /* 0: HOST_LINK_BATCH_BYTES */
    long idle_ms;            /* 0: HOST_LINK_IDLE_MS */
    long backoff_base_ms;    /* 0: HOST_LINK_BACKOFF_BASE_MS */
    long backoff_max_ms;     /* 0: HOST_LINK_BACKOFF_MAX_MS */
} host_link_config_t;

typedef enum host_link_state_t {
    HOST_LINK_CONNECTING = 0, /* not connected yet, or reconnecting after an error (see last_error) */
    HOST_LINK_CONNECTED = 1,  /* the downlink is open */
    HOST_LINK_REFUSED = 2,    /* the relay refused the token (401/403): the link stopped; a new token is needed */
    HOST_LINK_STOPPED = 3,    /* host_link_free was called */
} host_link_state_t;

typedef struct st_host_link_status_t {
    host_link_state_t state;
    int uplink_retrying;      /* the last uplink batch failed and waits for its retry */
    char last_error[256];     /* the last problem, "" when none yet; never holds the token */
    size_t backlog;           /* envelopes waiting (cbs.backlog), or those of the batch in flight */
    uint64_t events_acked;    /* envelopes acknowledged since start */
    uint64_t events_rejected; /* envelopes the relay refused and the outbox dropped */
    uint64_t actions_in;      /* actions received */
    char cursor[HOST_LINK_CURSOR_MAX]; /* the last action id received ("" when none) */
} host_link_status_t;

/* Makes a link on loop (nothing is sent before host_link_start). cbs is copied; data goes to every callback.
 * Returns 0 with *out owning the link (release with host_link_free), or -1 with cr_error_last() saying why (a bad
 * URL or cursor, no memory). */
int host_link_new(host_link_t **out, uv_loop_t *loop, const host_link_config_t *conf, const host_link_cbs_t *cbs,
                  void *data);

/* Opens the downlink and sends what the outbox holds. */
void host_link_start(host_link_t *link);

/* Tells the link the outbox has new envelopes (cheap; a batch goes out when none is in flight). */
void host_link_kick(host_link_t *link);

/* Confirms that the action with cursor id (and every one before it) was applied; the link tells the relay (newer
 * cursors replace older ones not yet sent; retried on errors) and calls on_cursor once the relay recorded it.
 * Returns 0, or -1 when cursor is not a stream id. */
int host_link_ack(host_link_t *link, const char *cursor);

/* Fills *out with the link's state for display. */
void host_link_status(const host_link_t *link, host_link_status_t *out);

/* Stops everything (requests in flight are abandoned; no callback runs any more), wipes the token and frees the
 * link once libuv has closed its handles; then on_closed (may be NULL) runs from the loop with data. */
void host_link_free(host_link_t *link, void (*on_closed)(void *data), void *data);

#endif
