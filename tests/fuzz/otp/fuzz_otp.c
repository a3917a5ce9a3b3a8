/* fuzz_otp.c — libFuzzer target for cr_otp_extract and cr_links_extract: the first line is the subject, the rest the
 * text (and, again, the HTML). Codes are short, distinct, made of letters, digits and hyphens, best first; links are
 * http(s), distinct and bounded. */
#include "../fuzz.h"
#include "otp.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


static void check_otp(const cr_otp_t *o)
{
    CHECK(o->n <= CR_OTP_CANDS_MAX);
    for (size_t i = 0; i < o->n; ++i) {
        size_t n = strlen(o->cand[i].code);
        CHECK(n >= 4 && n <= CR_OTP_CODE_MAX);
        for (size_t k = 0; k < n; ++k) {
            char c = o->cand[i].code[k];
            CHECK((c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || c == '-');
        }
        CHECK(o->cand[i].score > 0);
        for (size_t j = 0; j < i; ++j)
            CHECK(strcmp(o->cand[i].code, o->cand[j].code) != 0 && o->cand[j].score >= o->cand[i].score);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *buf = malloc(size + 1);
    if (buf == NULL)
        return 0;
    memcpy(buf, data, size);
    buf[size] = '\0';
    char *nl = memchr(buf, '\n', size);
    const char *subject = buf, *text = "";
    if (nl != NULL) {
        *nl = '\0';
        text = nl + 1;
    }
    cr_otp_t o;
    cr_otp_extract(&o, subject, text);
    check_otp(&o);
    cr_otp_extract(&o, NULL, buf);
    check_otp(&o);

    char *links[CR_LINKS_MAX];
    int n = cr_links_extract(links, CR_LINKS_MAX, text, text);
    CHECK(n >= 0 && n <= CR_LINKS_MAX);
    for (int i = 0; i < n; ++i) {
        CHECK(strlen(links[i]) <= CR_LINK_MAX && strncasecmp(links[i], "http", 4) == 0);
        for (int j = 0; j < i; ++j)
            CHECK(strcmp(links[i], links[j]) != 0);
    }
    for (int i = 0; i < n; ++i)
        free(links[i]);

    char ref[8];
    size_t rl, used = cr_html_charref(ref, &rl, buf, size);
    CHECK(used <= size && rl <= 4 && (used == 0) == (rl == 0));
    free(buf);
    return 0;
}
