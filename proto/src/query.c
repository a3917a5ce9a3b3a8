/* query.c — see corral/query.h. */
#include "corral/query.h"
#include <string.h>

int cr_query_param(const char *q, size_t len, const char *name, cr_span_t *value)
{
    size_t nlen = strlen(name);
    const char *p = q, *end = q + len;
    while (p < end) {
        const char *amp = memchr(p, '&', (size_t)(end - p)), *stop = amp != NULL ? amp : end;
        const char *eq = memchr(p, '=', (size_t)(stop - p));
        if (eq != NULL && (size_t)(eq - p) == nlen && memcmp(p, name, nlen) == 0) {
            *value = (cr_span_t){eq + 1, (size_t)(stop - eq - 1)};
            return 1;
        }
        if (eq == NULL && (size_t)(stop - p) == nlen && memcmp(p, name, nlen) == 0) {
            *value = (cr_span_t){stop, 0};
            return 2;
        }
        p = stop + 1;
    }
    return 0;
}
