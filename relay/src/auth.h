/* auth.h — tokens (DESIGN.md §5): crt_ + base64url(32 random bytes), stored in Redis only as SHA-256; principals;
 * per-token rate limits; the admin operations behind `corral-relay admin`. */
#ifndef RELAY_AUTH_H
#define RELAY_AUTH_H

#include "relay.h"
#include <hiredis/hiredis.h>

#define RELAY_TOKEN_PREFIX "crt_"
#define RELAY_TOKEN_LEN (4 + 43) /* crt_ + base64url of 32 bytes, unpadded */

enum { RELAY_AUTH_OK = 0, RELAY_AUTH_UNAUTHORIZED = 1, RELAY_AUTH_UNAVAILABLE = 2, RELAY_AUTH_RATE_LIMITED = 3 };

/* Finds the bearer token of rr (the Authorization header, or for WebSockets the "bearer.<token>" subprotocol),
 * looks it up in Redis and fills rr->who, then charges the token's rate limit. Calls done(relay, rr, RELAY_AUTH_*,
 * retry_after_ms) exactly once, possibly before returning. */
typedef void (*relay_auth_cb)(relay_t *relay, relay_req_t *rr, int rc, uint64_t retry_after_ms);
void relay_authenticate(relay_t *relay, relay_req_t *rr, relay_auth_cb done);

/* "admin", "host" or "device". */
const char *relay_principal_kind_name(unsigned kind);

/* Hex SHA-256 of a token (out: 65 bytes). */
void relay_token_hash(char out[65], const char *token, size_t len);

/* Makes a new random token (out: RELAY_TOKEN_LEN + 1 bytes). */
void relay_token_new(char out[RELAY_TOKEN_LEN + 1]);

/* Returns 1 when s[0..n) has the shape of a token. */
int relay_token_wellformed(const char *s, size_t n);

/* ---- admin, synchronous against Redis (corral-relay admin ...) ---------------------------------------------- */

/* Team ids are ids ([A-Za-z0-9._-]{1,64}). Each returns 0, or -1 with a message in cr_error_last (CR_EENVELOPE-free
 * codes: CR_ECONFIG for bad arguments, CR_ENOTFOUND, CR_EIO for Redis trouble). Tokens are printed once, never
 * stored in clear. */
int relay_admin_team_create(redisContext *c, const char *team, char token_out[RELAY_TOKEN_LEN + 1]);
int relay_admin_token_create(redisContext *c, const char *team, const char *kind, const char *label,
                             char token_out[RELAY_TOKEN_LEN + 1], char id_out[27]);
int relay_admin_token_revoke(redisContext *c, const char *token);
/* Writes "TEAM\tCREATED_MS\tTOKENS\n" lines to fp. */
int relay_admin_team_list(redisContext *c, FILE *fp);

#endif
