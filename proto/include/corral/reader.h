/* reader.h — a streaming msgpack decoder, feed/get: bytes in, complete checked values out. For the downlink
 * stream and WebSocket frames; never touches a socket. */
#ifndef CORRAL_READER_H
#define CORRAL_READER_H

#include "corral/buf.h"
#include "corral/limits.h"
#include "corral/mp.h"

typedef struct st_cr_reader_t {
    cr_buf_t buf;
    size_t pos;            /* start of the first value not yet given out */
    size_t max_value;      /* the largest single value accepted */
    const cr_limits_t *lim;
    int err;               /* sticky: once the stream is bad it stays bad */
} cr_reader_t;

/* Initialises a reader that accepts values of at most max_value bytes within lim (NULL: defaults). */
void cr_reader_init(cr_reader_t *r, size_t max_value, const cr_limits_t *lim);
void cr_reader_free(cr_reader_t *r);

/* Adds bytes. Returns 0, the sticky error, CR_ETOOLARGE (more buffered than one value may be) or CR_ENOMEM.
 * Spans given out by cr_reader_next are invalid afterwards. */
int cr_reader_feed(cr_reader_t *r, const void *p, size_t n);

/* Gives the next complete value (checked as cr_mp_check does). Returns 0 with *out set, CR_EAGAIN when more bytes
 * are needed, or an error that sticks (CR_EMSGPACK, CR_ETOOLARGE, CR_ETOODEEP, CR_EENCODING). */
int cr_reader_next(cr_reader_t *r, cr_span_t *out);

/* Bytes buffered that are not yet part of a value given out. */
static inline size_t cr_reader_pending(const cr_reader_t *r)
{
    return r->buf.len - r->pos;
}

#endif
