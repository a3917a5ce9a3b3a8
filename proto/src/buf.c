/* buf.c — the capped growable buffer. */
#include "corral/buf.h"
#include "corral/error.h"
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

void cr_buf_init(cr_buf_t *b, size_t limit)
{
    b->base = NULL;
    b->len = b->cap = 0;
    b->limit = limit;
}

void cr_buf_free(cr_buf_t *b)
{
    free(b->base);
    b->base = NULL;
    b->len = b->cap = 0;
}

int cr_buf_reserve(cr_buf_t *b, size_t n)
{
    size_t want, ncap;
    char *p;
    if (n > b->limit || b->len > b->limit - n)
        return cr_error_set(CR_ETOOLARGE, NULL, "buffer would exceed its limit of %zu bytes", b->limit);
    want = b->len + n;
    if (want <= b->cap)
        return 0;
    ncap = b->cap != 0 ? b->cap : 256;
    while (ncap < want)
        ncap *= 2;
    if (ncap > b->limit)
        ncap = b->limit;
    if ((p = realloc(b->base, ncap)) == NULL)
        return cr_error_set(CR_ENOMEM, NULL, "out of memory growing a buffer to %zu bytes", ncap);
    b->base = p;
    b->cap = ncap;
    return 0;
}

int cr_buf_append(cr_buf_t *b, const void *p, size_t n)
{
    int rc;
    if (n == 0)
        return 0;
    if (n > PTRDIFF_MAX) /* never true after reserve; said here so that the optimiser knows it too */
        return cr_error_set(CR_ETOOLARGE, NULL, "%zu bytes cannot be appended", n);
    if ((rc = cr_buf_reserve(b, n)) != 0)
        return rc;
    memcpy(b->base + b->len, p, n);
    b->len += n;
    return 0;
}

int cr_buf_appendf(cr_buf_t *b, const char *fmt, ...)
{
    va_list ap;
    int n, rc;
    va_start(ap, fmt);
    n = vsnprintf(NULL, 0, fmt, ap);
    va_end(ap);
    if (n < 0)
        return cr_error_set(CR_ERR, NULL, "bad format");
    if ((rc = cr_buf_reserve(b, (size_t)n)) != 0)
        return rc;
    if (n == 0)
        return 0;
    va_start(ap, fmt);
    if (b->cap - b->len > (size_t)n) {
        vsnprintf(b->base + b->len, (size_t)n + 1, fmt, ap);
    } else {
        /* No room for vsnprintf's NUL inside the limit: format aside, copy without it. */
        char *tmp = malloc((size_t)n + 1);
        if (tmp == NULL) {
            va_end(ap);
            return cr_error_set(CR_ENOMEM, NULL, "out of memory formatting %d bytes", n);
        }
        vsnprintf(tmp, (size_t)n + 1, fmt, ap);
        memcpy(b->base + b->len, tmp, (size_t)n);
        free(tmp);
    }
    va_end(ap);
    b->len += (size_t)n;
    return 0;
}

void cr_buf_consume(cr_buf_t *b, size_t n)
{
    if (n >= b->len) {
        b->len = 0;
        return;
    }
    memmove(b->base, b->base + n, b->len - n);
    b->len -= n;
}

char *cr_strndup(const void *p, size_t n)
{
    char *s = malloc(n + 1);
    if (s != NULL) {
        if (n > 0)
            memcpy(s, p, n);
        s[n] = '\0';
    }
    return s;
}
