/* host_ids.h — corrald's identity service (DESIGN.md §8): what the local API's /v1/identities… endpoints do. It
 * makes identities (keys made here, wrapped with the team key; the record and the address on the relay), seals and
 * opens their secrets (the relay keeps only ciphertext), fetches their sealed inboxes from the relay when the
 * downlink says mail came, opens each message and keeps it on disk (identity.h's store), and answers inbox long
 * polls from there — so a session resumed days later, even with the relay away, still finds every earlier mail.
 * Every answer is a JSON document (the API's own shapes, /tmp-free: see README "Identities"). */
#ifndef HOST_IDS_H
#define HOST_IDS_H

#include "host.h"
#include "identity.h"
#include <stdint.h>
#include <uv.h>

#define HOST_IDS_WAIT_MAX_MS 300000 /* longest inbox long poll */

typedef struct st_host_ids_t host_ids_t;
typedef struct st_host_ids_call_t host_ids_call_t;

/* An answer: an HTTP status and a JSON document (the error document {"error": {code, message, field?}} for >= 400),
 * valid only during the call. */
typedef void (*host_ids_cb)(int status, const char *json, size_t len, void *data);

typedef struct st_host_ids_config_t {
    const char *home;      /* $CORRAL_HOME: team.key, and identities/ below it */
    const char *relay_url; /* NULL or "": no relay (making identities and secrets then answers 503) */
    const char *token;     /* the host token; copied into locked memory, wiped on free, never logged */
    const char *ca_file;   /* NULL or "": the system's CAs */
} host_ids_config_t;

/* Makes the service for host h (its store gets the activity records). Returns 0 with *out owned by the caller
 * (host_ids_free), or -1 with cr_error_last(). */
int host_ids_new(host_ids_t **out, host_t *h, const host_ids_config_t *conf);

/* Ends every long poll (503), stops requests in flight (their calls answer 503) and frees the service once libuv
 * has closed the HTTP client: run the loop afterwards. NULL is fine. */
void host_ids_free(host_ids_t *ids);

/* Who asks: the owner (session NULL) or an agent's session (its sid and the identity it is bound to, "" none). An
 * agent reaches only its own identity: any other answers 404, as if it did not exist. */
typedef struct st_host_ids_who_t {
    const char *sid;      /* NULL: the owner (the CLI without a token) */
    const char *identity; /* the session's identity name ("" none) */
    const char *actor;    /* for the audit trail: "owner", "session:NAME" */
} host_ids_who_t;

/* Each operation answers through cb exactly once — at once or later from the loop — unless the call is detached
 * first. It returns the call while an answer is still to come (for host_ids_detach), else NULL. */

/* POST /v1/identities {name, email?}: answered once the relay holds the identity and its address routes mail here. */
host_ids_call_t *host_ids_create(host_ids_t *ids, const host_ids_who_t *who, const char *name, const char *email,
                                 host_ids_cb cb, void *data);
/* GET /v1/identities, GET /v1/identities/{key} (key: id or name), GET /v1/whoami. */
host_ids_call_t *host_ids_list(host_ids_t *ids, const host_ids_who_t *who, host_ids_cb cb, void *data);
host_ids_call_t *host_ids_get(host_ids_t *ids, const host_ids_who_t *who, const char *key, host_ids_cb cb, void *data);
host_ids_call_t *host_ids_whoami(host_ids_t *ids, const host_ids_who_t *who, const char *session_name, host_ids_cb cb,
                                 void *data);

/* The vault: value is len bytes (read in place, never copied outside sodium memory); version 0 = the current one. */
host_ids_call_t *host_ids_secret_set(host_ids_t *ids, const host_ids_who_t *who, const char *key_idn, const char *key,
                                     const char *value, size_t len, int inject, host_ids_cb cb, void *data);
host_ids_call_t *host_ids_secret_get(host_ids_t *ids, const host_ids_who_t *who, const char *key_idn, const char *key,
                                     uint64_t version, host_ids_cb cb, void *data);
host_ids_call_t *host_ids_secret_list(host_ids_t *ids, const host_ids_who_t *who, const char *key_idn, host_ids_cb cb,
                                      void *data);
host_ids_call_t *host_ids_secret_delete(host_ids_t *ids, const host_ids_who_t *who, const char *key_idn, const char *key,
                                        host_ids_cb cb, void *data);

/* The inbox long poll: the oldest matching message the session was not given yet (with f->since_* set: the oldest
 * after that), or with otp the newest such message that has a code; 408 when wait_ms runs out. A message given
 * is recorded (durably) for the session and in the audit trail before the answer goes. */
host_ids_call_t *host_ids_inbox_wait(host_ids_t *ids, const host_ids_who_t *who, const char *key_idn,
                                     const host_inbox_filter_t *f, int otp, uint64_t wait_ms, host_ids_cb cb, void *data);
/* GET …/inbox/list?limit=N: the newest messages first, none marked given. */
host_ids_call_t *host_ids_inbox_list(host_ids_t *ids, const host_ids_who_t *who, const char *key_idn, size_t limit,
                                     host_ids_cb cb, void *data);

/* The client went away: cb will not run for this call (what it does goes on). */
void host_ids_detach(host_ids_call_t *c);

/* Mail came for identity idn (a downlink note): fetches its inbox from the relay. Also fetches every identity's
 * inbox when idn is NULL (at start and after the link reconnects). */
void host_ids_fetch(host_ids_t *ids, const char *idn);

/* The secrets of identity name marked for injection, for an agent of session sid: "KEY=VALUE" into env[] and the
 * values into values[] (sodium memory each: the caller frees both with host_secure_free once the agent started),
 * at most max; each injection is in activity.csv with a keyed hash of the value. Read from the local cache of their
 * ciphertexts (kept when they are written here), opened with the identity's vault key. Returns how many. */
size_t host_ids_secrets(host_ids_t *ids, const char *name, const char *sid, char **env, char **values, size_t max);

/* Fills the agent's environment for a session bound to identity name: CORRAL_EMAIL and CORRAL_PHONE into the two
 * buffers ("" when the identity is unknown or has none). */
void host_ids_env(host_ids_t *ids, const char *name, char *email, size_t email_len, char *phone, size_t phone_len);

#endif
