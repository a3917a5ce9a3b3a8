/* json.h — the one generic msgpack <-> JSON converter: bin <-> {"$bin": base64}, lossless both ways for
 * everything the protocol uses (nil, bool, int64/uint64 exactly, float64, UTF-8 str, bin, array, map). */
#ifndef CORRAL_JSON_H
#define CORRAL_JSON_H

#include <stddef.h>
#include "corral/buf.h"
#include "corral/limits.h"

/* Appends the JSON text of the one msgpack value mp[0..len) to out (compact, no whitespace, keys in their msgpack
 * order, non-ASCII written as UTF-8, control characters as \uXXXX, floats in the shortest form that reads back
 * to the same double and always with a '.' or exponent). The input must be exactly one value within lim (NULL:
 * defaults). Returns 0, CR_ETRUNCATED, CR_ETRAILING, CR_EMSGPACK, CR_ETOOLARGE, CR_ETOODEEP, CR_EENCODING or
 * CR_ENOMEM; on error out keeps its old length. */
int cr_json_from_msgpack(cr_buf_t *out, const char *mp, size_t len, const cr_limits_t *lim);

/* Appends the canonical msgpack of one JSON value json[0..len) (whitespace around it allowed) to out: ints in
 * the smallest encoding (a number with no fraction or exponent within int64/uint64 is an int; any other is a
 * float64), str8/16/32 by length, an object that is exactly {"$bin": "<standard base64>"} becomes a bin. Strict
 * RFC 8259 (no comments, no trailing commas, no NaN; \u escapes with surrogate pairs; unpaired surrogates are
 * an error). Within lim (depth, string and bin sizes, element counts). Returns 0, CR_EJSON (cr_error_last gives
 * the offset), CR_ETOOLARGE, CR_ETOODEEP, CR_EENCODING or CR_ENOMEM; on error out keeps its old length. */
int cr_json_to_msgpack(cr_buf_t *out, const char *json, size_t len, const cr_limits_t *lim);

#endif
