/* qr.c — renders text as a QR code for a terminal with libqrencode: Unicode half blocks or "##" ASCII, quiet zone. */
#define _GNU_SOURCE
#include "qr.h"
#include "corral/error.h"
#include <errno.h>
#include <qrencode.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define GLYPH_FULL "\xe2\x96\x88"  /* █ */
#define GLYPH_UPPER "\xe2\x96\x80" /* ▀ */
#define GLYPH_LOWER "\xe2\x96\x84" /* ▄ */

/* Whether the module at (x, y) of the padded square (quiet zone included) is dark. */
static int dark_at(const QRcode *qr, int x, int y)
{
    x -= HOST_QR_QUIET;
    y -= HOST_QR_QUIET;
    if (x < 0 || y < 0 || x >= qr->width || y >= qr->width)
        return 0;
    return qr->data[(size_t)y * (size_t)qr->width + (size_t)x] & 1;
}

int host_qr_render(cr_buf_t *out, const char *text, host_qr_style_t style)
{
    QRcode *qr;
    size_t len = strlen(text);
    int side, rc = 0;

    if (len > HOST_QR_TEXT_MAX)
        return cr_error_set(CR_ETOOLARGE, NULL, "the text for the QR code is %zu bytes (at most %d)", len, HOST_QR_TEXT_MAX);
    errno = 0;
    if ((qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1)) == NULL) {
        if (errno == ERANGE)
            return cr_error_set(CR_ETOOLARGE, NULL, "the text is too long for a QR code (%zu bytes)", len);
        return cr_error_set(-1, NULL, "libqrencode could not encode the text: %s", strerror(errno));
    }
    side = qr->width + 2 * HOST_QR_QUIET;
    for (int y = 0; y < side && rc == 0; y += style == HOST_QR_UTF8 ? 2 : 1) {
        for (int x = 0; x < side && rc == 0; ++x) {
            int top = !dark_at(qr, x, y); /* 1: light, drawn */
            if (style == HOST_QR_ASCII) {
                rc = cr_buf_append(out, top ? "##" : "  ", 2);
            } else {
                int bottom = y + 1 < side ? !dark_at(qr, x, y + 1) : 1;
                const char *g = top && bottom ? GLYPH_FULL : top ? GLYPH_UPPER : bottom ? GLYPH_LOWER : " ";
                rc = cr_buf_append(out, g, strlen(g));
            }
        }
        if (rc == 0)
            rc = cr_buf_append(out, "\n", 1);
    }
    QRcode_free(qr);
    if (rc != 0)
        return cr_error_set(CR_ETOOLARGE, NULL, "the QR code does not fit its buffer");
    return 0;
}

host_qr_style_t host_qr_style_from_env(void)
{
    static const char *const vars[] = {"LC_ALL", "LC_CTYPE", "LANG"};
    for (size_t i = 0; i < sizeof(vars) / sizeof(vars[0]); ++i) {
        const char *v = getenv(vars[i]);
        if (v == NULL || v[0] == '\0')
            continue;
        return strcasestr(v, "utf-8") != NULL || strcasestr(v, "utf8") != NULL ? HOST_QR_UTF8 : HOST_QR_ASCII;
    }
    return HOST_QR_ASCII;
}
