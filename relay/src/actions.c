/* actions.c — (being written) the relay's actions endpoints. */
#include "relay.h"

void relay_actions_register(relay_t *relay)
{
    (void)relay;
}

#include "actions.h"
void relay_action_submit(relay_t *relay, const relay_principal_t *who, const char *mp, size_t len, relay_action_done_cb done,
                         void *data)
{
    static const char err[] = "\x81\xa5" "error\x82\xa4" "code\xabunavailable\xa7message\xafnot implemented";
    done(data, 503, err, sizeof(err) - 1);
    (void)relay, (void)who, (void)mp, (void)len;
}
