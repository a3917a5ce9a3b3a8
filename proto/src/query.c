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

static int hexval(char c)
{
    return c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : c >= 'A' && c <= 'F' ? c - 'A' + 10 : -1;
}

size_t cr_form_decode(char *out, const char *s, size_t n)
{
    char *o = out;
    for (size_t i = 0; i < n; ++i) {
        if (s[i] == '+') {
            *o++ = ' ';
        } else if (s[i] == '%' && i + 2 < n && hexval(s[i + 1]) >= 0 && hexval(s[i + 2]) >= 0) {
            *o++ = (char)(hexval(s[i + 1]) * 16 + hexval(s[i + 2]));
            i += 2;
        } else {
            *o++ = s[i];
        }
    }
    *o = '\0';
    return (size_t)(o - out);
}
