/* webpush_check.c — see webpush_check.h. */
#include "webpush_check.h"
#include "corral/buf.h"
#include "corral/codec.h"
#include "harness.h"
#include "proc.h"
#include <stdio.h>
#include <stdlib.h>
#include <sys/wait.h>

int cr_test_webpush_decrypt(const char *dir, const uint8_t priv[32], const uint8_t auth[16], const void *body, size_t len,
                            char **out, size_t *outlen)
{
    char python[PATH_MAX], req[PATH_MAX + 32], cmd[4 * PATH_MAX], p64[64], a64[32];
    char *b64 = malloc(cr_base64url_encoded_len(len));
    cr_buf_t got;
    FILE *fp;
    size_t n;
    int st;

    *out = NULL, *outlen = 0;
    snprintf(req, sizeof(req), "%s/decrypt.json", dir);
    if (b64 == NULL || cr_test_find_program(python, sizeof(python), "python3") != 0 || (fp = fopen(req, "w")) == NULL) {
        free(b64);
        return -1;
    }
    cr_base64url_encode(b64, body, len);
    cr_base64url_encode(p64, priv, 32);
    cr_base64url_encode(a64, auth, 16);
    fprintf(fp, "{\"ua_private\": \"%s\", \"auth\": \"%s\", \"body\": \"%s\"}\n", p64, a64, b64);
    fclose(fp);
    free(b64);
    snprintf(cmd, sizeof(cmd), "'%s' '%s/tests/fakes/webpush_decrypt.py' < '%s'", python, cr_test_source_dir(), req);
    if ((fp = popen(cmd, "r")) == NULL)
        return -1;
    cr_buf_init(&got, 1 << 20);
    cr_buf_reserve(&got, 8192);
    while ((n = fread(got.base + got.len, 1, got.cap - got.len - 1, fp)) > 0) {
        got.len += n;
        if (cr_buf_reserve(&got, 8192) != 0)
            break;
    }
    st = pclose(fp);
    got.base[got.len] = '\0';
    *out = got.base;
    *outlen = got.len;
    return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}
