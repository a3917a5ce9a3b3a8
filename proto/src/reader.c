/* reader.c — the streaming msgpack decoder (feed bytes, get complete checked values). */
#include "corral/reader.h"
#include "corral/error.h"

void cr_reader_init(cr_reader_t *r, size_t max_value, const cr_limits_t *lim)
{
    /* room for one whole value plus a read's worth of the next */
    cr_buf_init(&r->buf, max_value + 64 * 1024);
    r->pos = 0;
    r->max_value = max_value;
    r->lim = lim != NULL ? lim : &cr_limits_default;
    r->err = 0;
}

void cr_reader_free(cr_reader_t *r)
{
    cr_buf_free(&r->buf);
    r->pos = 0;
}

int cr_reader_feed(cr_reader_t *r, const void *p, size_t n)
{
    int rc;
    if (r->err != 0)
        return r->err;
    /* drop what was given out; spans handed out earlier become invalid here, as documented */
    if (r->pos != 0) {
        cr_buf_consume(&r->buf, r->pos);
        r->pos = 0;
    }
    if ((rc = cr_buf_append(&r->buf, p, n)) != 0) {
        if (rc == CR_ETOOLARGE)
            rc = cr_error_set(CR_ETOOLARGE, NULL, "a value in the stream is over the limit of %zu bytes", r->max_value);
        r->err = rc;
    }
    return rc;
}

int cr_reader_next(cr_reader_t *r, cr_span_t *out)
{
    size_t used;
    int rc;
    if (r->err != 0)
        return r->err;
    if (r->pos == r->buf.len)
        return CR_EAGAIN;
    rc = cr_mp_check(r->buf.base + r->pos, r->buf.len - r->pos, r->lim, r->max_value, NULL, &used);
    if (rc == CR_EAGAIN)
        return CR_EAGAIN;
    if (rc != 0) {
        r->err = rc;
        return rc;
    }
    out->base = r->buf.base + r->pos;
    out->len = used;
    r->pos += used;
    return 0;
}
