/* tests/unit/mail/mime.c — cr_mail_parse on real-looking mails: headers (RFC 2047, ISO-8859-1, ISO-2022-JP), quoted-
 * printable and base64 bodies in several charsets, multipart/alternative, nested multipart/mixed with attachments,
 * message/rfc822, HTML-only mail with the code in the markup, malformed and truncated input, bounds, threads. */
#include "harness.h"
#include "mime.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int parse(cr_mail_t *m, const char *raw)
{
    return cr_mail_parse(m, raw, strlen(raw));
}

static const char *code0(const cr_mail_t *m)
{
    return m->otp.n > 0 ? m->otp.cand[0].code : "";
}

static int valid_utf8(const char *s, size_t n)
{
    const unsigned char *p = (const unsigned char *)s;
    for (size_t i = 0; i < n;) {
        size_t k = p[i] < 0x80 ? 1 : (p[i] & 0xE0) == 0xC0 ? 2 : (p[i] & 0xF0) == 0xE0 ? 3 : (p[i] & 0xF8) == 0xF0 ? 4 : 0;
        if (k == 0 || i + k > n)
            return 0;
        for (size_t j = 1; j < k; ++j)
            if ((p[i + j] & 0xC0) != 0x80)
                return 0;
        i += k;
    }
    return 1;
}

static void test_plain_qp_latin1(void)
{
    cr_mail_t m;
    const char *raw = "Return-Path: <bounce@mail.example.fr>\r\n"
                      "From: =?UTF-8?Q?Ana_P=C3=A9rez?= <Ana.Perez@Example.FR>\r\n"
                      "To: bot <bot@corral.dev>, other@corral.dev\r\n"
                      "Subject: =?ISO-8859-1?Q?Votre_code_de_v=E9rification?=\r\n"
                      "Date: Tue, 5 Mar 2024 10:30:00 +0100\r\n"
                      "Message-ID: <20240305.abc@mail.example.fr>\r\n"
                      "MIME-Version: 1.0\r\n"
                      "Content-Type: text/plain; charset=iso-8859-1\r\n"
                      "Content-Transfer-Encoding: quoted-printable\r\n"
                      "\r\n"
                      "Bonjour,\r\n"
                      "\r\n"
                      "Votre code de v=E9rification est : 246810. Il expire dans 10 minutes, ne le partag=\r\n"
                      "ez avec personne.\r\n";
    ok(parse(&m, raw) == 0);
    ok_str(m.from, "Ana Pérez <Ana.Perez@Example.FR>");
    ok_str(m.from_addr, "ana.perez@example.fr");
    ok_str(m.to, "bot <bot@corral.dev>, other@corral.dev");
    ok_str(m.subject, "Votre code de vérification");
    ok_str(m.message_id, "20240305.abc@mail.example.fr");
    ok(m.date_ms == 1709631000000LL); /* 09:30 UTC */
    ok_str(m.text, "Bonjour,\n\nVotre code de vérification est : 246810. Il expire dans 10 minutes, ne le partagez "
                   "avec personne.\n");
    ok(m.html == NULL);
    ok(m.flags == 0);
    ok_str(code0(&m), "246810");
    cr_mail_free(&m);
    ok(m.text == NULL && m.nlinks == 0); /* zeroed */
}

static void test_alternative_base64(void)
{
    cr_mail_t m;
    const char *raw = "From: Acme <no-reply@acme.example>\r\n"
                      "To: ana@corral.dev\r\n"
                      "Subject: Your Acme verification code\r\n"
                      "Date: Mon, 01 Jan 2024 00:00:00 +0000\r\n"
                      "MIME-Version: 1.0\r\n"
                      "Content-Type: multipart/alternative; boundary=\"b1\"\r\n"
                      "\r\n"
                      "This is a multi-part message in MIME format.\r\n"
                      "--b1\r\n"
                      "Content-Type: text/plain; charset=\"utf-8\"\r\n"
                      "Content-Transfer-Encoding: base64\r\n"
                      "\r\n"
                      "SGkgQW5hLA0KDQpZb3VyIEFjbWUgdmVyaWZpY2F0aW9uIGNvZGUgaXMgMzE4MjA0Lg0KSXQgZXhwaXJlcyBpbiAxMCBtaW51dGVzLg0K\r\n"
                      "--b1\r\n"
                      "Content-Type: text/html; charset=\"utf-8\"\r\n"
                      "\r\n"
                      "<html><body><p>Hi Ana,</p><p>Your Acme verification code is <b>318204</b>.</p>"
                      "<a href=\"https://acme.example/unsubscribe\">Unsubscribe</a> "
                      "<a href=\"https://acme.example/verify?t=abc&amp;u=1\">Verify your email</a></body></html>\r\n"
                      "--b1--\r\n";
    ok(parse(&m, raw) == 0);
    ok_str(m.text, "Hi Ana,\n\nYour Acme verification code is 318204.\nIt expires in 10 minutes.\n");
    ok(m.html != NULL && strstr(m.html, "<b>318204</b>") != NULL);
    ok(m.flags == 0); /* not HTML-only: there is a plain part */
    ok(m.date_ms == 1704067200000LL);
    ok_str(code0(&m), "318204");
    ok(m.nlinks == 2);
    if (m.nlinks == 2) {
        ok_str(m.links[0], "https://acme.example/verify?t=abc&u=1");
        ok_str(m.links[1], "https://acme.example/unsubscribe");
    }
    cr_mail_free(&m);
}

static void test_html_only(void)
{
    cr_mail_t m;
    const char *raw =
        "From: \"Acme\" <no-reply@acme.example>\r\n"
        "To: ana@corral.dev\r\n"
        "Subject: Confirm your email\r\n"
        "Content-Type: text/html; charset=utf-8\r\n"
        "Content-Transfer-Encoding: quoted-printable\r\n"
        "\r\n"
        "<!DOCTYPE html><html><head><title>Acme 777777</title><style>.x{width:600px} /* 888888 */</style>"
        "</head>\r\n"
        "<body><div style=3D\"display:none\">Your code is inside&zwnj;&nbsp;&zwnj;&nbsp;&#847;</div>\r\n"
        "<table><tr><td>Hi&nbsp;Ana,</td></tr><tr><td><p>Your verification   code:</p></td></tr>\r\n"
        "<tr><td style=3D\"font-size:32px\"><span>4</span><span>8</span><span>2</span><span>9</span><span>1</span=\r\n"
        "><span>3</span></td></tr>\r\n"
        "<tr><td>Or <a href=3D\"https://acme.example/verify?t=3Dabc&amp;u=3D1\">verify your email</a>.<br>Thanks =\r\n"
        "&amp; welcome &#8212; Acme<!-- 555555 --></td></tr></table>\r\n"
        "<script type=3D\"text/javascript\">var otp =3D 999999; if (a < b) {}</script>\r\n"
        "<p>a &lt; b &gt; c</p><p><a href=3D'https://acme.example/unsubscribe'>Unsubscribe</a></p></body></html>\r\n";
    ok(parse(&m, raw) == 0);
    ok(m.flags == CR_MAIL_HTML_ONLY);
    ok_str(m.text, "Your code is inside\nHi Ana,\n\nYour verification code:\n\n482913\nOr verify your email.\n"
                   "Thanks & welcome — Acme\n\na < b > c\n\nUnsubscribe");
    ok(m.html != NULL && strstr(m.html, "<span>1</span><span>3</span>") != NULL); /* QP decoded, soft breaks joined */
    ok_str(code0(&m), "482913");
    ok(m.otp.n == 1); /* nothing from the title, style, script or comment */
    ok(m.nlinks == 2);
    if (m.nlinks == 2) {
        ok_str(m.links[0], "https://acme.example/verify?t=abc&u=1");
        ok_str(m.links[1], "https://acme.example/unsubscribe");
    }
    cr_mail_free(&m);
}

static void test_nested_mixed(void)
{
    cr_mail_t m;
    const char *raw = "From: shop@example.com\r\n"
                      "To: ana@corral.dev\r\n"
                      "Subject: Your receipt\r\n"
                      "Content-Type: multipart/mixed; boundary=\"outer\"\r\n"
                      "\r\n"
                      "--outer\r\n"
                      "Content-Type: multipart/alternative; boundary=\"alt\"\r\n"
                      "\r\n"
                      "--alt\r\n"
                      "Content-Type: text/plain; charset=us-ascii\r\n"
                      "\r\n"
                      "Thanks for your order. Your sign-in code is 730091.\r\n"
                      "--alt\r\n"
                      "Content-Type: multipart/related; boundary=\"rel\"\r\n"
                      "\r\n"
                      "--rel\r\n"
                      "Content-Type: text/html; charset=us-ascii\r\n"
                      "\r\n"
                      "<p>Thanks for your order. Your sign-in code is <b>730091</b>.</p><img src=\"cid:logo\">\r\n"
                      "--rel\r\n"
                      "Content-Type: image/png\r\n"
                      "Content-ID: <logo>\r\n"
                      "Content-Transfer-Encoding: base64\r\n"
                      "\r\n"
                      "iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAYAAAAfFcSJAAAADUlEQVR42mNk+M9QDwADhgGAWjR9awAAAABJRU5ErkJggg==\r\n"
                      "--rel--\r\n"
                      "\r\n"
                      "--alt--\r\n"
                      "\r\n"
                      "--outer\r\n"
                      "Content-Type: text/plain; charset=us-ascii; name=\"invoice.txt\"\r\n"
                      "Content-Disposition: attachment; filename=\"invoice.txt\"\r\n"
                      "\r\n"
                      "Invoice 999999, verification code 424242\r\n"
                      "--outer\r\n"
                      "Content-Type: text/plain; charset=us-ascii\r\n"
                      "Content-Disposition: inline\r\n"
                      "\r\n"
                      "-- \r\nAcme Shop\r\n"
                      "--outer--\r\n";
    ok(parse(&m, raw) == 0);
    ok(m.flags == 0);
    ok_str(m.text, "Thanks for your order. Your sign-in code is 730091.\n\n-- \nAcme Shop"); /* parts joined by an empty line */
    ok(m.html != NULL && strstr(m.html, "<b>730091</b>") != NULL);
    ok_str(code0(&m), "730091");
    ok(m.otp.n == 1); /* the attachment is not read */
    cr_mail_free(&m);
}

static void test_rfc822(void)
{
    cr_mail_t m;
    /* the message's own text wins over the forwarded one */
    const char *fwd = "From: ana@corral.dev\r\n"
                      "Subject: Fwd: your code\r\n"
                      "Content-Type: multipart/mixed; boundary=\"m\"\r\n"
                      "\r\n"
                      "--m\r\n"
                      "Content-Type: text/plain\r\n"
                      "\r\n"
                      "See below.\r\n"
                      "--m\r\n"
                      "Content-Type: message/rfc822\r\n"
                      "\r\n"
                      "From: bank@example.com\r\n"
                      "Subject: Code\r\n"
                      "Content-Type: text/plain\r\n"
                      "\r\n"
                      "Your one-time code is 111333.\r\n"
                      "--m--\r\n";
    ok(parse(&m, fwd) == 0);
    ok_str(m.text, "See below.");
    ok(m.otp.n == 0);
    cr_mail_free(&m);
    /* a message that is nothing but an attached message: its text is used, one level deep only */
    const char *only = "From: relay@example.com\r\n"
                       "Subject: bounce\r\n"
                       "Content-Type: message/rfc822\r\n"
                       "\r\n"
                       "From: bank@example.com\r\n"
                       "Subject: Code\r\n"
                       "Content-Type: multipart/mixed; boundary=\"x\"\r\n"
                       "\r\n"
                       "--x\r\n"
                       "Content-Type: text/plain\r\n"
                       "\r\n"
                       "Your one-time code is 111333.\r\n"
                       "--x\r\n"
                       "Content-Type: message/rfc822\r\n"
                       "\r\n"
                       "Subject: deeper\r\n"
                       "\r\n"
                       "Deeper code 222444.\r\n"
                       "--x--\r\n";
    ok(parse(&m, only) == 0);
    ok_str(m.subject, "bounce");
    ok_str(m.text, "Your one-time code is 111333.");
    ok_str(code0(&m), "111333");
    cr_mail_free(&m);
}

static void test_charsets(void)
{
    cr_mail_t m;
    /* GBK in base64 */
    const char *gbk = "From: =?GB2312?B?1qe4trGm?= <service@mail.alipay.com>\r\n"
                      "Subject: =?UTF-8?B?6aqM6K+B56CB?=\r\n"
                      "Content-Type: text/plain; charset=GBK\r\n"
                      "Content-Transfer-Encoding: base64\r\n"
                      "\r\n"
                      "ob7Wp7i2saahv9Hp1qTC66O6NjA0MjExo6zH687w0LnCtqGj\r\n";
    ok(parse(&m, gbk) == 0);
    ok_str(m.from, "支付宝 <service@mail.alipay.com>");
    ok_str(m.subject, "验证码");
    ok_str(m.text, "【支付宝】验证码：604211，请勿泄露。");
    ok_str(code0(&m), "604211");
    cr_mail_free(&m);
    /* ISO-2022-JP (stateful) subject and body */
    const char *jp = "From: info@example.jp\r\n"
                     "Subject: =?ISO-2022-JP?B?GyRCRyc+WiUzITwlSSROJCpDTiRpJDsbKEI=?=\r\n"
                     "Content-Type: text/plain; charset=ISO-2022-JP\r\n"
                     "Content-Transfer-Encoding: 7bit\r\n"
                     "\r\n"
                     "\x1b$BG'>Z%3!<%I!'\x1b(B735921\r\n\x1b$B$3$N%3!<%I$O\x1b(B10\x1b$BJ,4VM-8z$G$9!#\x1b(B\r\n";
    ok(parse(&m, jp) == 0);
    ok_str(m.subject, "認証コードのお知らせ");
    ok_str(m.text, "認証コード：735921\nこのコードは10分間有効です。\n");
    ok_str(code0(&m), "735921");
    cr_mail_free(&m);
    /* KOI8-R */
    const char *koi = "Subject: code\r\n"
                      "Content-Type: text/plain; charset=koi8-r\r\n"
                      "Content-Transfer-Encoding: base64\r\n"
                      "\r\n"
                      "8NLJ18XUISD3wdsgy8/EOiA4NjQyMDk=\r\n";
    ok(parse(&m, koi) == 0);
    ok_str(m.text, "Привет! Ваш код: 864209");
    ok_str(code0(&m), "864209");
    cr_mail_free(&m);
    /* raw 8-bit UTF-8 in headers and body with no charset said; an unknown charset on Latin-1 bytes */
    const char *raw8 = "From: Jürgen <j@example.de>\r\n"
                       "Subject: Bestätigungscode 918273\r\n"
                       "Content-Type: text/plain\r\n"
                       "\r\n"
                       "Grüße\r\n";
    ok(parse(&m, raw8) == 0);
    ok_str(m.from, "Jürgen <j@example.de>");
    ok_str(m.subject, "Bestätigungscode 918273");
    ok_str(m.text, "Grüße\n");
    ok_str(code0(&m), "918273");
    cr_mail_free(&m);
    const char *unknown = "Subject: x\r\n"
                          "Content-Type: text/plain; charset=x-no-such-charset\r\n"
                          "\r\n"
                          "Gr\xfc\xdf"
                          "e \x80 5\r\n";
    ok(parse(&m, unknown) == 0);
    ok_str(m.text, "Grüße € 5\n"); /* read as windows-1252 */
    cr_mail_free(&m);
    /* bytes that are not UTF-8 in a part said to be UTF-8 become U+FFFD */
    const char *bad = "Subject: x\r\n"
                      "Content-Type: text/plain; charset=utf-8\r\n"
                      "\r\n"
                      "a\xff"
                      "b\xc3\r\n";
    ok(parse(&m, bad) == 0);
    ok_str(m.text, "a\xEF\xBF\xBD"
                   "b\xEF\xBF\xBD\n");
    cr_mail_free(&m);
}

static void test_html_only_flag(void)
{
    cr_mail_t m;
    /* an empty text/plain next to the HTML does not hide the HTML's text */
    const char *raw = "Subject: x\r\n"
                      "Content-Type: multipart/alternative; boundary=\"a\"\r\n"
                      "\r\n"
                      "--a\r\n"
                      "Content-Type: text/plain\r\n"
                      "\r\n"
                      "  \r\n"
                      "--a\r\n"
                      "Content-Type: text/html\r\n"
                      "\r\n"
                      "<pre>line 1\n  line 2</pre><ul><li>one</li><li>two</li></ul>x&nbsp;&nbsp;&nbsp;y<br><br><br><br>z\r\n"
                      "--a--\r\n";
    ok(parse(&m, raw) == 0);
    ok(m.flags == CR_MAIL_HTML_ONLY);
    ok_str(m.text, "line 1\n  line 2\none\ntwo\nx y\n\nz");
    cr_mail_free(&m);
}

static void test_headers_absent_or_odd(void)
{
    cr_mail_t m;
    const char *raw = "To: undisclosed-recipients:;\r\n"
                      "Subject: hello\r\n"
                      "Date: not a date at all\r\n"
                      "\r\n"
                      "Body 1\r\n";
    ok(parse(&m, raw) == 0);
    ok_str(m.from, "");
    ok_str(m.from_addr, "");
    ok_str(m.message_id, "");
    ok(m.date_ms == 0);
    ok_str(m.subject, "hello");
    ok_str(m.text, "Body 1\n");
    cr_mail_free(&m);
    /* From is a group: the first mailbox in it is the address */
    const char *group = "From: Team: Bo <BO@Example.com>, cy@example.com;\r\n\r\nx\r\n";
    ok(parse(&m, group) == 0);
    ok_str(m.from_addr, "bo@example.com");
    cr_mail_free(&m);
}

static void test_malformed(void)
{
    cr_mail_t m;
    /* a multipart whose boundary never comes and that stops in the middle: what could be read is there */
    const char *raw = "From: Acme <no-reply@acme.example>\r\n"
                      "Subject: Your code\r\n"
                      "Message-ID: <m1@acme.example>\r\n"
                      "Content-Type: multipart/alternative; boundary=\"never\"\r\n"
                      "\r\n"
                      "--nev\r\n"
                      "Content-Type: text/plain\r\n"
                      "\r\n"
                      "Your code is 556677 and then the mail just st";
    ok(parse(&m, raw) == 0);
    ok((m.flags & CR_MAIL_MALFORMED) != 0);
    ok_str(m.from_addr, "no-reply@acme.example");
    ok_str(m.subject, "Your code");
    ok_str(m.message_id, "m1@acme.example");
    ok(strstr(m.text, "Your code is 556677 and then the mail just st") != NULL); /* the bytes after the headers */
    ok_str(code0(&m), "556677");
    cr_mail_free(&m);
    /* a multipart with no boundary at all */
    const char *nob = "From: a@example.com\r\n"
                      "Subject: no boundary\r\n"
                      "Content-Type: multipart/mixed\r\n"
                      "\r\n"
                      "Your code is 556677\r\n";
    ok(parse(&m, nob) == 0);
    ok((m.flags & CR_MAIL_MALFORMED) != 0);
    ok_str(m.subject, "no boundary");
    ok_str(m.text, "Your code is 556677\n");
    ok_str(code0(&m), "556677");
    cr_mail_free(&m);
    /* not a mail at all */
    ok(parse(&m, "\x01\x02 garbage: \xff\xfe\n\n") == 0);
    ok((m.flags & CR_MAIL_MALFORMED) != 0);
    ok(m.text != NULL && valid_utf8(m.text, strlen(m.text)));
    cr_mail_free(&m);
    ok(cr_mail_parse(&m, "", 0) == 0);
    ok(m.flags == CR_MAIL_MALFORMED && m.from != NULL && m.text != NULL && m.text[0] == '\0');
    cr_mail_free(&m);
    ok(cr_mail_parse(&m, NULL, 0) == 0);
    cr_mail_free(&m);
    /* raw is not read past len (no NUL needed) */
    char exact[] = {'S', 'u', 'b', 'j', 'e', 'c', 't', ':', ' ', 'h', 'i', '\n', '\n', 'b', 'o', 'd', 'y'};
    ok(cr_mail_parse(&m, exact, sizeof(exact)) == 0);
    ok_str(m.subject, "hi");
    ok_str(m.text, "body");
    cr_mail_free(&m);
}

static void test_truncated(void)
{
    cr_mail_t m;
    const char *head = "Subject: big\r\nContent-Type: text/plain; charset=utf-8\r\n\r\nYour verification code is 314159.\r\n";
    size_t hl = strlen(head), n = hl + CR_MAIL_TEXT_MAX + 1000;
    char *raw = malloc(n);
    memcpy(raw, head, hl);
    for (size_t i = hl; i + 3 <= n; i += 3)
        memcpy(raw + i, "验", 3); /* three bytes a character: the cut must not split one */
    n = hl + (n - hl) / 3 * 3;
    ok(cr_mail_parse(&m, raw, n) == 0);
    ok((m.flags & CR_MAIL_TRUNCATED) != 0);
    size_t tl = strlen(m.text);
    ok(tl <= CR_MAIL_TEXT_MAX && tl > CR_MAIL_TEXT_MAX - 4);
    ok(valid_utf8(m.text, tl));
    ok_str(code0(&m), "314159");
    cr_mail_free(&m);
    free(raw);
    /* just at the limit is not cut */
    head = "Subject: x\r\n\r\n";
    hl = strlen(head);
    raw = malloc(hl + CR_MAIL_TEXT_MAX);
    memcpy(raw, head, hl);
    memset(raw + hl, 'a', CR_MAIL_TEXT_MAX);
    ok(cr_mail_parse(&m, raw, hl + CR_MAIL_TEXT_MAX) == 0);
    ok(m.flags == 0 && strlen(m.text) == CR_MAIL_TEXT_MAX);
    cr_mail_free(&m);
    free(raw);
}

static void test_bounds(void)
{
    cr_mail_t m;
    char *raw = malloc(1 << 20);
    size_t n = 0;
    /* multiparts nested 20 deep with the text at the bottom: the walk stops, the mail is flagged */
    n += (size_t)sprintf(raw + n, "Subject: deep\r\nContent-Type: multipart/mixed; boundary=\"b0\"\r\n\r\n");
    for (int i = 1; i < 20; ++i)
        n += (size_t)sprintf(raw + n, "--b%d\r\nContent-Type: multipart/mixed; boundary=\"b%d\"\r\n\r\n", i - 1, i);
    n += (size_t)sprintf(raw + n, "--b19\r\nContent-Type: text/plain\r\n\r\ncode 123456\r\n");
    for (int i = 19; i >= 0; --i)
        n += (size_t)sprintf(raw + n, "--b%d--\r\n", i);
    ok(cr_mail_parse(&m, raw, n) == 0);
    ok((m.flags & CR_MAIL_MALFORMED) != 0);
    ok_str(m.subject, "deep");
    ok_str(m.text, "");
    cr_mail_free(&m);
    /* 100 text parts: the first 63 are read, the rest are not */
    n = (size_t)sprintf(raw, "Subject: many\r\nContent-Type: multipart/mixed; boundary=\"b\"\r\n\r\n");
    for (int i = 0; i < 100; ++i)
        n += (size_t)sprintf(raw + n, "--b\r\nContent-Type: text/plain\r\n\r\npart%d\r\n", i);
    n += (size_t)sprintf(raw + n, "--b--\r\n");
    ok(cr_mail_parse(&m, raw, n) == 0);
    ok((m.flags & CR_MAIL_MALFORMED) != 0);
    ok(strncmp(m.text, "part0\n\npart1\n\n", 14) == 0);
    ok(strstr(m.text, "\n\npart62") != NULL && strstr(m.text, "part63") == NULL);
    cr_mail_free(&m);
    free(raw);
}

static void *thread_main(void *arg)
{
    int *bad = arg;
    const char *raw = "From: =?UTF-8?B?5pSv5LuY5a6d?= <a@example.com>\r\n"
                      "Subject: =?ISO-8859-1?Q?V=E9rification?=\r\n"
                      "Content-Type: text/html; charset=utf-8\r\n"
                      "\r\n"
                      "<p>Votre code&nbsp;: <b>246810</b></p>\r\n";
    for (int i = 0; i < 50; ++i) {
        cr_mail_t m;
        if (parse(&m, raw) != 0 || strcmp(m.subject, "Vérification") != 0 || strcmp(code0(&m), "246810") != 0 ||
            strcmp(m.text, "Votre code : 246810") != 0)
            ++*bad;
        cr_mail_free(&m);
    }
    return NULL;
}

static void test_threads(void)
{
    pthread_t th[4];
    int bad[4] = {0};
    for (int i = 0; i < 4; ++i)
        pthread_create(&th[i], NULL, thread_main, &bad[i]);
    for (int i = 0; i < 4; ++i)
        pthread_join(th[i], NULL);
    ok(bad[0] + bad[1] + bad[2] + bad[3] == 0);
}

int main(void)
{
    cr_mail_init();
    cr_mail_init(); /* idempotent */
    subtest("plain, quoted-printable, ISO-8859-1, RFC 2047", test_plain_qp_latin1);
    subtest("multipart/alternative, base64", test_alternative_base64);
    subtest("HTML only, the code in the markup", test_html_only);
    subtest("empty plain part, HTML text layout", test_html_only_flag);
    subtest("nested multipart/mixed, attachments", test_nested_mixed);
    subtest("message/rfc822", test_rfc822);
    subtest("charsets", test_charsets);
    subtest("absent and odd headers", test_headers_absent_or_odd);
    subtest("malformed", test_malformed);
    subtest("truncated", test_truncated);
    subtest("bounds", test_bounds);
    subtest("threads", test_threads);
    return done_testing();
}
