/* pair.c — (being written) the relay's pair endpoints. */
#include "relay.h"

void relay_pair_register(relay_t *relay)
{
    (void)relay;
}
