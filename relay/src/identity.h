/* identity.h — identities on the relay (DESIGN.md §8): records, routes for mail and SMS, sealed vaults and inboxes,
 * the audit trail (identity.c), and mail and SMS coming in (inbound.c). */
#ifndef RELAY_IDENTITY_H
#define RELAY_IDENTITY_H

#include "relay.h"
#include <stdint.h>

#define RELAY_VAULT_VERSIONS 10 /* versions of a secret kept */

extern relay_script_t relay_identity_script; /* relay/lua/identity.lua */

/* Whether s[0..n) is an identity name: 1 to 63 of a-z, 0-9 and '-', not starting or ending with '-'. */
int relay_identity_name_ok(const char *s, size_t n);

/* mail.domain ("corral.localhost" when unset) and audit.maxlen. */
const char *relay_identity_mail_domain(relay_t *relay);
int64_t relay_identity_audit_maxlen(relay_t *relay);

/* The routes of identity.c and inbound.c. */
void relay_identity_register(relay_t *relay);
void relay_inbound_register(relay_t *relay);

/* Starts the SMTP listener (mail.smtp_listen) and fills the SMS number pool (sms.numbers) once Redis is ready; stops
 * the listener at shutdown. relay_inbound_start returns 0 or CR_ECONFIG / CR_EIO. */
int relay_inbound_start(relay_t *relay);
void relay_inbound_on_ready(relay_t *relay);
void relay_inbound_stop(relay_t *relay);

/* Appends the corral_inbound_* counters to a /metrics answer. */
void relay_inbound_metrics(cr_buf_t *out);

#endif
