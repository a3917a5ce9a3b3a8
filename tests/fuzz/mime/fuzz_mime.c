/* fuzz_mime.c — libFuzzer target for cr_mail_parse: any bytes parse (malformed input is flagged, never refused), every
 * field comes back as bounded, valid UTF-8, and the links and codes keep their limits. */
#include "../fuzz.h"
#include "mime.h"
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>


static int valid_utf8(const char *s)
{
    const unsigned char *p = (const unsigned char *)s;
    while (*p) {
        size_t k = p[0] < 0x80 ? 1 : (p[0] & 0xE0) == 0xC0 ? 2 : (p[0] & 0xF0) == 0xE0 ? 3 : (p[0] & 0xF8) == 0xF0 ? 4 : 0;
        if (k == 0)
            return 0;
        for (size_t j = 1; j < k; ++j)
            if ((p[j] & 0xC0) != 0x80)
                return 0;
        p += k;
    }
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cr_mail_t m;
    CHECK(cr_mail_parse(&m, (const char *)data, size) == 0);
    const char *fields[] = {m.from, m.from_addr, m.to, m.subject, m.message_id, m.text};
    for (size_t i = 0; i < sizeof(fields) / sizeof(fields[0]); ++i)
        CHECK(fields[i] != NULL && valid_utf8(fields[i]));
    CHECK(strlen(m.text) <= CR_MAIL_TEXT_MAX);
    CHECK(m.html == NULL || (valid_utf8(m.html) && strlen(m.html) <= CR_MAIL_HTML_MAX));
    CHECK(m.nlinks <= CR_LINKS_MAX);
    for (size_t i = 0; i < m.nlinks; ++i)
        CHECK(strlen(m.links[i]) <= CR_LINK_MAX && strncasecmp(m.links[i], "http", 4) == 0);
    CHECK(m.otp.n <= CR_OTP_CANDS_MAX);
    for (size_t i = 0; i < m.otp.n; ++i)
        CHECK(m.otp.cand[i].code[0] != '\0' && (i == 0 || m.otp.cand[i - 1].score >= m.otp.cand[i].score));
    CHECK((m.flags & ~(unsigned)(CR_MAIL_MALFORMED | CR_MAIL_TRUNCATED | CR_MAIL_HTML_ONLY)) == 0);
    cr_mail_free(&m);
    return 0;
}
