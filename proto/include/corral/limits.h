/* limits.h — the hard limits of the wire protocol (PROTOCOL.md "Limits"); defaults, configurable per process. */
#ifndef CORRAL_LIMITS_H
#define CORRAL_LIMITS_H

#include <stddef.h>

typedef struct st_cr_limits_t {
    size_t max_envelope;     /* bytes of one event envelope (and of an action without audio): 256 KiB */
    size_t max_string;       /* bytes of any str value: 64 KiB */
    size_t max_bin;          /* bytes of any bin value (audio, sealed bodies): 2 MiB */
    size_t max_patch;        /* bytes of diff.ready's patch: 64 KiB (then truncated = true) */
    size_t max_audio;        /* bytes of reply's audio: 2 MiB; an action carrying audio may be this much larger */
    size_t max_message_text; /* bytes of agent.message's text: 4 KiB */
    size_t max_batch_events; /* envelopes in one uplink batch: 512 */
    size_t max_batch_bytes;  /* bytes of one uplink batch: 1 MiB */
    size_t max_elements;     /* entries of one array or map: 65536 */
    unsigned max_depth;      /* nesting of arrays and maps, the envelope itself being 1: 16 */
} cr_limits_t;

/* The defaults of PROTOCOL.md. */
extern const cr_limits_t cr_limits_default;

/* The largest action envelope these limits admit (an envelope plus its audio). */
static inline size_t cr_limits_max_action(const cr_limits_t *l)
{
    return l->max_envelope + l->max_audio;
}

#endif
