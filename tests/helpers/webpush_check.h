/* webpush_check.h — opening a Web Push body with the independent RFC 8291 implementation in Python
 * (tests/fakes/webpush_decrypt.py, pyca/cryptography), for tests of what the relay encrypts. */
#ifndef CORRAL_TEST_WEBPUSH_CHECK_H
#define CORRAL_TEST_WEBPUSH_CHECK_H

#include <stddef.h>
#include <stdint.h>

/* Asks webpush_decrypt.py (run by python3 from PATH) to open body with the UA's private scalar and auth secret,
 * writing its request into dir. Stores the plaintext in *out (malloc'd, NUL-terminated; the caller frees it) and
 * its length in *outlen. Returns the script's exit status (0: it opened), or -1 when it could not run. */
int cr_test_webpush_decrypt(const char *dir, const uint8_t priv[32], const uint8_t auth[16], const void *body, size_t len,
                            char **out, size_t *outlen);

#endif
