/* actions.h — actions from phones to hosts: accepted once by aid, queued on the session's host's stream, delivered on
 * that host's downlink (GET /v1/host/actions) wherever it is connected. Shared by REST and WebSocket frames. */
#ifndef RELAY_ACTIONS_H
#define RELAY_ACTIONS_H

#include "relay.h"

/* The outcome of one action: an HTTP-like status (202 queued, 200 duplicate, 4xx/5xx error) and the msgpack answer
 * ({aid, queued: true} / {aid, duplicate: true} / the error document). The bytes are valid only during the call. */
typedef void (*relay_action_done_cb)(void *data, int status, const char *mp, size_t len);

/* Validates the action envelope mp[0..len) (cr_action_decode), stamps `by` with the device id of `who`, and queues it
 * for the host of its session in who->team (404 not_found when the team has no such session). Calls done exactly
 * once, possibly before returning. */
void relay_action_submit(relay_t *relay, const relay_principal_t *who, const char *mp, size_t len, relay_action_done_cb done,
                         void *data);

#endif
