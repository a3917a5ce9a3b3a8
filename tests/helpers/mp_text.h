/* mp_text.h — reading one value out of a msgpack map or a JSON response as text, for assertions in tests. */
#ifndef CORRAL_TEST_MP_TEXT_H
#define CORRAL_TEST_MP_TEXT_H

#include "corral/mp.h"
#include "http_client.h"
#include <stddef.h>

/* Finds the value at a dotted path ("filters.hosts"; a number indexes an array: "devices.0.id") of the msgpack map
 * mp[0..len) (not checked: trusted bytes).
 * Returns 0 with its span in *out, or -1 when the path is absent. */
int cr_test_mp_path(const char *mp, size_t len, const char *path, cr_span_t *out);

/* The value at a dotted path ("error.code", "k") of the msgpack map mp[0..len) as text in out: a str as it is, an
 * unsigned int in decimal, a bool as true/false; "" when the bytes are not one valid msgpack value, the path is
 * absent, or the value is of another type. Returns out. */
const char *cr_test_mp_text(const char *mp, size_t len, const char *path, char *out, size_t outlen);

/* The same for a JSON response body (converted to msgpack first). Returns out. */
const char *cr_test_json_text(const cr_test_resp_t *r, const char *path, char *out, size_t outlen);

#endif
