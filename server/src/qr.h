/* qr.h — renders text as a QR code (libqrencode, ECC level M, as `qrencode` encodes it) for a terminal: Unicode half blocks, or plain ASCII. */
#ifndef HOST_QR_H
#define HOST_QR_H

#include "corral/buf.h"

#define HOST_QR_QUIET 4         /* modules of light border on every side (the quiet zone the standard asks for) */
#define HOST_QR_TEXT_MAX 1024   /* bytes of text encoded, at most */

typedef enum host_qr_style_t {
    HOST_QR_UTF8 = 0,  /* two module rows per line with ▀ ▄ █ and space, like `qrencode -t UTF8` */
    HOST_QR_ASCII = 1, /* one module row per line, two characters per module: "##" or "  " */
} host_qr_style_t;

/* Appends the QR code of text (QRcode_encodeString: ECC level M, 8-bit hint, case sensitive, the smallest version that fits — what the qrencode tool does) to out, one line per row
 * ending in '\n', with a quiet zone of HOST_QR_QUIET light modules. Light modules are the drawn ones (█, "##") and
 * dark modules are blank, as `qrencode -t UTF8` does: on a terminal with light text on a dark background that shows
 * dark modules on a light field. In the UTF-8 style the upper half of a character is the upper module: █ both light,
 * ▀ upper light, ▄ lower light, space both dark; an odd last row is paired with a light one. Returns 0, CR_ETOOLARGE
 * (text over HOST_QR_TEXT_MAX bytes, or over what a QR code holds) or -1 (libqrencode failed; cr_error_last). */
int host_qr_render(cr_buf_t *out, const char *text, host_qr_style_t style);

/* The style a terminal can show, from the first of LC_ALL, LC_CTYPE and LANG that is set and not empty: UTF-8 when
 * it names UTF-8 ("UTF-8" or "utf8", any case), else ASCII (also when none is set). */
host_qr_style_t host_qr_style_from_env(void);

#endif
