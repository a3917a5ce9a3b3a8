/* sessions.c — (being written) the relay's sessions endpoints. */
#include "relay.h"

void relay_sessions_register(relay_t *relay)
{
    (void)relay;
}
