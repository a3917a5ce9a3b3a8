/* host_api.h — corrald's local API: HTTP/1.1 with JSON over a unix socket (mode 0600) that the corral CLI and the
 * agents' `corral ask` use (DESIGN.md §7). Requests without a token are the owner's (the socket's mode keeps other
 * users out); a request with an agent's session token reaches only that session. */
#ifndef HOST_API_H
#define HOST_API_H

#include "host.h"
#include "pair.h"

#define HOST_API_BODY_MAX (4u << 20)   /* bytes of a request body, at most */
#define HOST_API_WAIT_MAX_S 300        /* longest long poll (?wait=S) */
#define HOST_API_EVENTS_MAX 2000       /* transcript lines in one answer */

typedef struct st_host_api_t host_api_t;

/* Listens on the unix socket sock_path (a stale socket of a dead corrald is replaced; a live one is refused with
 * CR_EEXISTS), made with mode 0600, and serves the API of h on loop. On success *out is owned by the caller
 * (host_api_close, then host_api_free). Returns 0, CR_EEXISTS, CR_ECONFIG (path too long) or CR_EIO; after CR_EIO
 * *out is set too and must be freed with host_api_free once the loop has run (its listener is closing). */
int host_api_start(host_api_t **out, host_t *h, uv_loop_t *loop, const char *sock_path);

/* Lets POST /v1/pair ask the relay for pairing codes through pair (NULL: answered 400 bad_config, "no relay
 * configured"). pair stays the caller's and must outlive the API's requests: free it after host_api_close. */
void host_api_set_pair(host_api_t *api, host_pair_t *pair);

/* Serves /v1/identities… and /v1/whoami with ids (host_ids.h; NULL: answered 503). ids stays the caller's and must
 * outlive the API's requests: free it after host_api_close. */
struct st_host_ids_t;
void host_api_set_ids(host_api_t *api, struct st_host_ids_t *ids);

/* Wakes the long polls of session s (wire it to host_hooks_t.on_event). */
void host_api_notify(host_session_t *s, void *api);

/* Stops listening, removes the socket and answers every long poll with 503. Idempotent. */
void host_api_close(host_api_t *api);

/* Releases the API after host_api_close, once the loop has run the close callbacks. h2o's context stays allocated
 * until the process exits when a connection was ever accepted (h2o 2.2 cannot dispose it while its timers are on
 * the loop): keep the pointer reachable. NULL is fine. */
void host_api_free(host_api_t *api);

#endif
