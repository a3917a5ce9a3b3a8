/* ingest.c — (being written) the relay's ingest endpoints. */
#include "relay.h"

void relay_ingest_register(relay_t *relay)
{
    (void)relay;
}
