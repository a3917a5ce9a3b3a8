/* query.h — reading one parameter of a URL query string ("after=12&limit=5"), as the relay's and corrald's HTTP
 * handlers need it. No percent-decoding: our parameters are ids, numbers and short words. */
#ifndef CORRAL_QUERY_H
#define CORRAL_QUERY_H

#include "corral/mp.h"
#include <stddef.h>

/* Finds parameter name in the query q[0..len) (without the '?'). Returns 1 with its value in *value for "name=value"
 * (the value may be empty), 2 with an empty *value for a bare "name", or 0 when it is absent. The first occurrence
 * wins; *value points into q. */
int cr_query_param(const char *q, size_t len, const char *name, cr_span_t *value);

#endif
