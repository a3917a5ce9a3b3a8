/* register.c — the one list of the relay's modules: each adds its routes and Redis scripts. */
#include "relay.h"
#include "identity.h"

void relay_register_all(relay_t *relay)
{
    relay_health_register(relay);
    relay_ingest_register(relay);
    relay_sessions_register(relay);
    relay_actions_register(relay);
    relay_pair_register(relay);
    relay_ws_register(relay);
    relay_identity_register(relay);
    relay_inbound_register(relay);
}
