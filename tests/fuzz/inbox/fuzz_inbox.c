/* fuzz_inbox.c — libFuzzer target for host_inbox_msg_from_mp, corrald's decoder of the message the relay seals for an
 * identity (what arrives is only as trustworthy as the relay and the sender): any bytes either decode into a message
 * whose fields are NUL-free, bounded and renderable as JSON, or are refused with an error; nothing leaks or crashes. */
#include "identity.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    host_inbox_msg_t m;
    cr_buf_t json;
    memset(&m, 0, sizeof(m));
    if (host_inbox_msg_from_mp(&m, (const char *)data, size) == 0) {
        if (m.from == NULL || m.to == NULL || m.subject == NULL || m.text == NULL || strlen(m.kind) == 0)
            abort();
        if (m.nlinks > HOST_INBOX_LIST_MAX || m.notp_candidates > HOST_INBOX_LIST_MAX || m.nflags > HOST_INBOX_LIST_MAX)
            abort();
        cr_buf_init(&json, HOST_INBOX_JSON_MAX * 4);
        if (host_inbox_msg_to_json(&json, &m) != 0 && size < (1u << 20))
            abort();
        cr_buf_free(&json);
    }
    host_inbox_msg_clear(&m);
    return 0;
}
