/* host_relay.h — corrald's glue between its core (host.h) and the relay link (link.h): the store's outbox feeds the
 * uplink, actions from the downlink are applied to their sessions, and the downlink cursor is kept in
 * <repo>/.corral/relay.cursor across restarts. */
#ifndef HOST_RELAY_H
#define HOST_RELAY_H

#define HOST_RELAY_GATHER_MS 40 /* how long new events (pri 0 and 1) wait for more before a batch goes to the relay */

#include "host.h"
#include "link.h"

#define HOST_RELAY_CURSOR_FILE "relay.cursor"

typedef struct st_host_relay_t host_relay_t;

/* Where the relay is. Strings are copied (the token into the link's locked memory). */
typedef struct st_host_relay_config_t {
    const char *url;     /* relay.url, required */
    const char *token;   /* relay.token, required; never logged */
    const char *ca_file; /* relay.ca_file; NULL or "": the system's CAs */
    const char *transcribe_command; /* transcribe.command for voice replies; NULL or "": PocketSphinx only */
    const char *voice_model;        /* voice.model: PocketSphinx's model directory; NULL or "": Debian's */
} host_relay_config_t;

/* Makes the link of host h to the relay, starting the downlink after the cursor saved in .corral/relay.cursor (an
 * unreadable or bad file is logged and ignored: the relay's own record is used), and starts it: the outbox's backlog
 * goes out at once. Set h->hooks.on_emitted = host_relay_kick and emitted_data = *out so new events follow.
 * Returns 0 with *out owned by the caller (host_relay_free, before host_free), or -1 with cr_error_last() saying
 * why (a bad URL, no memory). */
int host_relay_new(host_relay_t **out, host_t *h, const host_relay_config_t *conf);

/* The hooks.on_emitted of the host: tells the link the outbox has new events. What a human must see (pri 2) goes
 * at once, with whatever gathered before it; the rest waits up to HOST_RELAY_GATHER_MS for more, so that a stream
 * of agent output costs one request (and one fdatasync) per gather, not per event. data is the host_relay_t. */
void host_relay_kick(int pri, void *data);

/* Calls cb(idn, data) from the loop whenever the relay says mail arrived for identity idn (a note on the
 * downlink). */
void host_relay_on_inbox(host_relay_t *r, void (*cb)(const char *idn, void *data), void *data);

/* The link's state for display. */
void host_relay_status(const host_relay_t *r, host_link_status_t *out);

/* Stops the link (requests in flight are abandoned; what was not acknowledged stays in the outbox for the next
 * start) and frees r once libuv has closed its handles: run the loop afterwards. NULL is fine. */
void host_relay_free(host_relay_t *r);

#endif
