/* ws.c — (being written) the relay's ws endpoints. */
#include "relay.h"

void relay_ws_register(relay_t *relay)
{
    (void)relay;
}
