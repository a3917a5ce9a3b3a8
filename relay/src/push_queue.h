/* push_queue.h — the push worker every relay runs (DESIGN.md §5, §6): jobs from cr:pushq:<n> through a consumer group,
 * one notification per matching device over APNs, FCM or Web Push, outcomes recorded, retries delayed in
 * cr:pushretry:<n>, jobs of a dead relay reclaimed. */
#ifndef RELAY_PUSH_QUEUE_H
#define RELAY_PUSH_QUEUE_H

#include "relay.h"

/* The push queue of a team: a hash of its name over push.shards. */
unsigned relay_push_shard(const relay_t *relay, const char *team);

/* Reads the push.* / apns.* / fcm.* / webpush.* settings and keys (the VAPID key pair is made in data_dir on first
 * start), registers the push scripts and GET /v1/webpush/vapid. Returns 0, or CR_ECONFIG / CR_EIO with cr_error_last
 * naming the setting or file. */
int relay_push_init(relay_t *relay);

/* Redis became usable (ready 1) or went away (0): (re)creates the consumer groups and starts taking jobs. */
void relay_push_on_ready(relay_t *relay, int ready);

/* A notice on cr:pushn (msg: the shard with new jobs). */
void relay_push_on_notice(relay_t *relay, const char *msg, size_t len);

/* Stops taking jobs; those in flight go on (relay_push_busy tells how many). */
void relay_push_shutdown(relay_t *relay);

/* Jobs in flight. */
size_t relay_push_busy(relay_t *relay);

/* Aborts what is still in flight (those jobs stay pending in Redis: another relay, or this one when it is back, takes
 * them over) and closes the push client. */
void relay_push_close(relay_t *relay);

/* Writes the push figures in Prometheus text format to out. */
void relay_push_metrics(relay_t *relay, cr_buf_t *out);

#endif
