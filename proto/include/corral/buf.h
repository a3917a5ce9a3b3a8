/* buf.h — a growable byte buffer with a hard cap (in the spirit of curl's dynbuf). */
#ifndef CORRAL_BUF_H
#define CORRAL_BUF_H

#include <stddef.h>
#include <stdint.h>

typedef struct st_cr_buf_t {
    char *base;
    size_t len;
    size_t cap;    /* allocated */
    size_t limit;  /* never grows past this many bytes */
} cr_buf_t;

/* Initialises an empty buffer that will refuse to hold more than `limit` bytes. Allocates nothing. */
void cr_buf_init(cr_buf_t *b, size_t limit);

/* Frees the storage; the buffer is empty and reusable afterwards. */
void cr_buf_free(cr_buf_t *b);

/* Makes room for `n` more bytes. Returns 0, CR_ETOOLARGE (over the limit) or CR_ENOMEM. `base` may move. */
int cr_buf_reserve(cr_buf_t *b, size_t n);

/* Appends bytes. Returns 0, CR_ETOOLARGE or CR_ENOMEM; on error the buffer is unchanged. */
int cr_buf_append(cr_buf_t *b, const void *p, size_t n);

/* Appends formatted text (without the NUL). Same returns as cr_buf_append. */
int cr_buf_appendf(cr_buf_t *b, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Removes the first n bytes. */
void cr_buf_consume(cr_buf_t *b, size_t n);

static inline void cr_buf_reset(cr_buf_t *b)
{
    b->len = 0;
}

/* A NUL-terminated malloc'd copy of the n bytes at p (which need not hold a NUL: unlike strndup, nothing past p + n is
 * read). NULL when out of memory. The caller frees it. */
char *cr_strndup(const void *p, size_t n);

#endif
