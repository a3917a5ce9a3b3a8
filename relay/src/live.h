/* live.h — live fan-out: the teams this relay holds live clients of, their cr:live:{T} subscriptions, and delivery of
 * notices to WebSockets and host downlinks; closing the streams of a revoked token at once. */
#ifndef RELAY_LIVE_H
#define RELAY_LIVE_H

#include "relay.h"

/* Notices on cr:live:{T}, first byte = type:
 *   'e' : new events were stored (the ingest script publishes one per batch). live.c then reads them from cr:{T}:ev
 *       after its cursor and hands listeners that want events their phone frames (on_events)
 *   'a' then "<host id>" : a new action was queued for that host (written by the action script) */
#define RELAY_NOTICE_EVENT 'e'
#define RELAY_NOTICE_ACTION 'a'

typedef struct st_relay_listener_t relay_listener_t;

/* One new event as a phone frame {k:"ev", id, host, e} in msgpack, with its stream id. Made once for all listeners. */
typedef struct st_relay_live_frame_t {
    const char *p;
    size_t len;
    uint64_t ms, seq; /* the stream id */
} relay_live_frame_t;
struct st_relay_listener_t {
    h2o_linklist_t _link;
    char team[65];
    char token_hash[65];
    /* a notice of the listener's team arrived ('a' ...); it may call relay_live_remove on l (and on no other listener) */
    void (*on_notice)(relay_listener_t *l, const char *msg, size_t len);
    /* for listeners with `events` set: new events of the team, in stream order (the frames live only during the
     * call); same rules */
    void (*on_events)(relay_listener_t *l, const relay_live_frame_t *frames, size_t n);
    /* the stream must end now: the token was revoked ("revoked"), the relay is shutting down ("shutdown") or Redis
     * went away ("unavailable": notices may have been missed); the listener must call relay_live_remove (now or later) */
    void (*on_close)(relay_listener_t *l, const char *why);
    /* optional: Redis has confirmed the team's subscription, so every notice published from now on reaches l; called
     * once, from relay_live_add when it already was. Read what was published before (the replay) only from here. */
    void (*on_ready)(relay_listener_t *l);
    uint8_t events; /* wants the team's new events (on_events); set before adding */
    uint8_t _ready;
};

/* Starts delivering the team's notices to l (subscribing to cr:live:{team} for the first listener). */
void relay_live_add(relay_t *relay, relay_listener_t *l);

/* Stops delivering (unsubscribing after the last listener). Safe to call twice. */
void relay_live_remove(relay_t *relay, relay_listener_t *l);

/* The Redis pub/sub entry point (main.c wires it); also handles cr:revoke. */
void relay_live_on_message(relay_t *relay, const char *channel, size_t channel_len, const char *msg, size_t len);

/* Redis confirmed the subscription to channel (main.c wires it): the team's listeners are ready. */
void relay_live_on_subscribed(relay_t *relay, const char *channel, size_t channel_len);

/* Ends every live stream with on_close(why): at shutdown ("shutdown") and when Redis goes away ("unavailable"). */
void relay_live_close_all(relay_t *relay, const char *why);

struct redisReply;

/* Appends the phone frame {k:"ev", id, host, e} of one cr:{T}:ev entry [id, [field, value, ...]] (as XRANGE returns
 * it) to b, and points *id at the entry's id (inside entry) when the entry has one. Returns 0, or -1 when the entry is
 * not one of ours or b is full (then b may hold part of the frame: the caller truncates it). */
int relay_live_frame(cr_buf_t *b, const struct redisReply *entry, const char **id, size_t *idlen);

/* Number of listeners (for /metrics). */
size_t relay_live_count(relay_t *relay);

#endif
