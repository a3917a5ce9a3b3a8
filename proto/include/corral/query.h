/* query.h — reading one parameter of a URL query string ("after=12&limit=5"), as the relay's and corrald's HTTP
 * handlers need it, and decoding form-encoded text where a value is free text (a subject to match, a webhook's
 * form post). */
#ifndef CORRAL_QUERY_H
#define CORRAL_QUERY_H

#include "corral/mp.h"
#include <stddef.h>

/* Finds parameter name in the query q[0..len) (without the '?'). Returns 1 with its value in *value for "name=value"
 * (the value may be empty), 2 with an empty *value for a bare "name", or 0 when it is absent. The first occurrence
 * wins; *value points into q. */
int cr_query_param(const char *q, size_t len, const char *name, cr_span_t *value);

/* Decodes application/x-www-form-urlencoded text s[0..n) ('+' is a space, %XX a byte; a '%' not followed by two hex
 * digits stays as it is) into out, which has room for n + 1 bytes, NUL-terminated. Returns the decoded length. */
size_t cr_form_decode(char *out, const char *s, size_t n);

#endif
