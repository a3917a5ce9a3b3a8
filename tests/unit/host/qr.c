/* qr.c — tests of server/src/qr.c: the terminal rendering of a QR code read back module by module equals libqrencode's
 * matrix inside a light quiet zone, in both styles; and, where the qrencode tool is installed, equals its -t UTF8. */
#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include "corral/error.h"
#include "harness.h"
#include "proc.h"
#include "qr.h"
#include <fcntl.h>
#include <qrencode.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#define SIDE_MAX (177 + 2 * HOST_QR_QUIET + 1)

static const char *const texts[] = {
    "http://127.0.0.1:8080/#pair=0123456789&k=q83vEjRWeJq83vEjRWeJq83vEjRWeJq83vEjRWeJq8s",
    "a",
    "https://relay.example.org/#pair=ABCDEFGHJK&k=AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
    "ĉu ŝi ŝatas ĝin? 🙂",
};

/* light[y][x]: 1 light, 0 dark; -1 an unknown glyph */
static signed char light[SIDE_MAX][SIDE_MAX];

/* Reads a rendering back into light[][]; returns the side (rows and columns must agree), or -1. */
static int parse(const char *s, host_qr_style_t style, int *rows_out)
{
    int y = 0, width = -1;
    while (*s != '\0') {
        const char *nl = strchr(s, '\n');
        int x = 0;
        if (nl == NULL || y + 1 >= SIDE_MAX)
            return -1;
        while (s < nl) {
            if (x >= SIDE_MAX)
                return -1;
            if (style == HOST_QR_ASCII) {
                if (nl - s < 2 || s[0] != s[1] || (s[0] != '#' && s[0] != ' '))
                    return -1;
                light[y][x] = s[0] == '#';
                s += 2;
            } else if (*s == ' ') {
                light[y][x] = light[y + 1][x] = 0;
                s += 1;
            } else if (nl - s >= 3 && memcmp(s, "\xe2\x96\x88", 3) == 0) {
                light[y][x] = light[y + 1][x] = 1;
                s += 3;
            } else if (nl - s >= 3 && memcmp(s, "\xe2\x96\x80", 3) == 0) {
                light[y][x] = 1, light[y + 1][x] = 0;
                s += 3;
            } else if (nl - s >= 3 && memcmp(s, "\xe2\x96\x84", 3) == 0) {
                light[y][x] = 0, light[y + 1][x] = 1;
                s += 3;
            } else {
                return -1;
            }
            ++x;
        }
        if (width >= 0 && x != width)
            return -1;
        width = x;
        s = nl + 1;
        y += style == HOST_QR_ASCII ? 1 : 2;
    }
    *rows_out = y;
    return width;
}

static void check_text(const char *text, host_qr_style_t style)
{
    cr_buf_t out;
    QRcode *qr = QRcode_encodeString(text, 0, QR_ECLEVEL_M, QR_MODE_8, 1);
    int side, rows = 0, want, same = 1, quiet = 1;
    cr_buf_init(&out, 1u << 20);
    ok(qr != NULL);
    okf(host_qr_render(&out, text, style) == 0, "renders \"%s\"", text);
    cr_buf_append(&out, "", 1);
    want = qr->width + 2 * HOST_QR_QUIET;
    side = parse(out.base, style, &rows);
    okf(side == want, "%s: %d columns of modules (%d + 2 x %d quiet)", style == HOST_QR_UTF8 ? "utf8" : "ascii", side,
        qr->width, HOST_QR_QUIET);
    okf(rows == (style == HOST_QR_UTF8 ? want + 1 : want), "%d module rows", rows);
    if (side == want) {
        for (int y = 0; y < rows; ++y)
            for (int x = 0; x < side; ++x) {
                int qy = y - HOST_QR_QUIET, qx = x - HOST_QR_QUIET;
                int inside = qy >= 0 && qx >= 0 && qy < qr->width && qx < qr->width;
                if (inside && light[y][x] != !(qr->data[qy * qr->width + qx] & 1))
                    same = 0;
                if (!inside && light[y][x] != 1)
                    quiet = 0;
            }
    }
    okf(same, "every module equals libqrencode's (dark modules blank, light ones drawn)");
    okf(quiet, "a quiet zone of %d light modules on every side", HOST_QR_QUIET);
    if (qr != NULL)
        QRcode_free(qr);
    cr_buf_free(&out);
}

static void test_matrix(void)
{
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); ++i) {
        check_text(texts[i], HOST_QR_UTF8);
        check_text(texts[i], HOST_QR_ASCII);
    }
}

static void test_limits(void)
{
    char *big = malloc(HOST_QR_TEXT_MAX + 2);
    cr_buf_t out;
    memset(big, 'x', HOST_QR_TEXT_MAX + 1);
    big[HOST_QR_TEXT_MAX + 1] = '\0';
    cr_buf_init(&out, 1u << 20);
    ok(host_qr_render(&out, big, HOST_QR_UTF8) == CR_ETOOLARGE);
    ok(out.len == 0);
    cr_buf_free(&out);
    cr_buf_init(&out, 64);
    ok(host_qr_render(&out, texts[0], HOST_QR_UTF8) == CR_ETOOLARGE); /* the buffer's own cap */
    cr_buf_free(&out);
    free(big);
}

static void test_style_from_env(void)
{
    unsetenv("LC_ALL");
    unsetenv("LC_CTYPE");
    unsetenv("LANG");
    ok(host_qr_style_from_env() == HOST_QR_ASCII);
    setenv("LANG", "en_US.UTF-8", 1);
    ok(host_qr_style_from_env() == HOST_QR_UTF8);
    setenv("LC_CTYPE", "C", 1);
    ok(host_qr_style_from_env() == HOST_QR_ASCII);
    setenv("LC_ALL", "de_DE.utf8", 1);
    ok(host_qr_style_from_env() == HOST_QR_UTF8);
    setenv("LC_ALL", "", 1);
    ok(host_qr_style_from_env() == HOST_QR_ASCII);
    setenv("LC_ALL", "POSIX", 1);
    ok(host_qr_style_from_env() == HOST_QR_ASCII);
}

/* Strips trailing blanks of every line (the tool and we may differ in them only). */
static void strip_lines(char *s)
{
    char *w = s, *line = s;
    for (char *p = s;; ++p) {
        if (*p == '\n' || *p == '\0') {
            char *e = w;
            while (e > line && e[-1] == ' ')
                --e;
            w = e;
            if (*p == '\0')
                break;
            *w++ = '\n';
            line = w;
        } else {
            *w++ = *p;
        }
    }
    *w = '\0';
}

static void test_same_as_qrencode(void)
{
    char exe[4096], tmp[4096], path[4200];
    if (cr_test_find_program(exe, sizeof(exe), "qrencode") != 0) {
        note("the qrencode tool is not installed: skipping the comparison with qrencode -t UTF8");
        ok(1);
        return;
    }
    if (cr_test_make_temp_dir(tmp, sizeof(tmp), "qr", 200) != 0)
        return;
    snprintf(path, sizeof(path), "%s/out", tmp);
    for (size_t i = 0; i < sizeof(texts) / sizeof(texts[0]); ++i) {
        const char *argv[] = {exe, "-t", "UTF8", "-m", "4", "-l", "M", "-o", "-", texts[i], NULL};
        const char *env[] = {"LANG=C.UTF-8", NULL};
        int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600), status = 0;
        pid_t pid = cr_test_spawn(exe, argv, env, fd, 2);
        char *theirs;
        cr_buf_t ours;
        close(fd);
        cr_test_reap(pid, 1, &status);
        theirs = cr_test_file_read(path, 0, 1 << 20);
        cr_buf_init(&ours, 1u << 20);
        host_qr_render(&ours, texts[i], HOST_QR_UTF8);
        cr_buf_append(&ours, "", 1);
        if (theirs != NULL) {
            strip_lines(theirs);
            strip_lines(ours.base);
            ok_str(ours.base, theirs);
        } else {
            ok(!"qrencode wrote nothing");
        }
        free(theirs);
        cr_buf_free(&ours);
    }
}

int main(void)
{
    subtest("the rendering is libqrencode's matrix in a quiet zone", test_matrix);
    subtest("too long a text, too small a buffer", test_limits);
    subtest("UTF-8 or ASCII from LC_ALL, LC_CTYPE, LANG", test_style_from_env);
    subtest("the same as qrencode -t UTF8 (when installed)", test_same_as_qrencode);
    return done_testing();
}
