/* tests/unit/mail/otp.c — cr_otp_extract on real-looking mails and SMS (many languages, labelled vs bare, subject vs
 * body, letters and digits, numbers that are not codes), cr_links_extract ranking, cr_html_charref. */
#include "harness.h"
#include "otp.h"
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* The best code for (subject, text), or "" when none is found. */
static const char *best(const char *subject, const char *text)
{
    static char code[CR_OTP_CODE_MAX + 1];
    cr_otp_t o;
    cr_otp_extract(&o, subject, text);
    snprintf(code, sizeof(code), "%s", o.n > 0 ? o.cand[0].code : "");
    return code;
}

/* Is code among the candidates? */
static int has(const char *subject, const char *text, const char *code)
{
    cr_otp_t o;
    cr_otp_extract(&o, subject, text);
    for (size_t i = 0; i < o.n; ++i)
        if (strcmp(o.cand[i].code, code) == 0)
            return 1;
    return 0;
}

static void test_english(void)
{
    ok_str(best(NULL, "Your verification code is 123456"), "123456");
    ok_str(best(NULL, "Your Amazon OTP is 602214. Do not share it with anyone."), "602214");
    ok_str(best("Your Discord login code", "Hi ana,\n\nUse this code to log in: 88213047\n\nIt expires in 10 minutes."),
           "88213047");
    /* GitHub's sign-up mail: the code on its own line, the keyword a sentence above, an address in the footer */
    const char *github = "Here's your GitHub launch code, @ana!\n\n"
                         "Continue signing up for GitHub by entering the code below:\n\n"
                         "    34907125\n\n"
                         "Open GitHub\n\n"
                         "Not able to enter the code? Paste the following link into your browser:\n"
                         "https://github.com/account_verifications/confirm/4411/abcdef0123456789\n\n"
                         "GitHub, Inc. ・88 Colin P Kelly Jr Street ・San Francisco, CA 94107\n";
    ok_str(best("🚀 Your GitHub launch code", github), "34907125");
    ok(!has("🚀 Your GitHub launch code", github, "94107"));
    ok(!has("🚀 Your GitHub launch code", github, "4411")); /* in a link */
    ok(!has("🚀 Your GitHub launch code", github, "0123456789"));
    /* Google's SMS: the "G-" is not typed */
    ok_str(best(NULL, "G-482913 is your Google verification code."), "482913");
    ok_str(best(NULL, "FB-73311 is your Facebook confirmation code"), "73311");
    /* Slack: groups of three, typed without the hyphen */
    ok_str(best("Slack confirmation code: 123-456", "Confirmation code: 123-456"), "123456");
    ok_str(best(NULL, "Your code: 482 913"), "482913");
    /* Apple: the keyword before and after the code, a ZIP in the footer */
    const char *apple = "Dear Ana,\n\nYou have selected this email address as your new Apple ID. To verify this "
                        "email address belongs to you, enter the code below on the email verification page:\n\n"
                        "482913\n\n"
                        "This code will expire three hours after this email was sent.\n\n"
                        "Apple Inc. One Apple Park Way, Cupertino, CA 95014, United States\n";
    ok_str(best("Verify your Apple ID email address", apple), "482913");
    ok(!has("Verify your Apple ID email address", apple, "95014"));
    ok_str(best(NULL, "Your Apple ID Code is: 771204. Don't share it with anyone."), "771204");
    ok_str(best(NULL, "Microsoft account\nSecurity code\nPlease use the following security code for the Microsoft "
                      "account an**@example.com.\nSecurity code: 6602\nIf you don't recognise the Microsoft account "
                      "an**@example.com, you can click here to remove your email address from that account."),
           "6602");
}

static void test_languages(void)
{
    ok_str(best(NULL, "【淘宝】验证码：123456请勿泄露，如非本人操作请致电95188。"), "123456");
    ok(!has(NULL, "【淘宝】验证码：123456请勿泄露，如非本人操作请致电95188。", "95188"));
    ok_str(best(NULL, "【京东】您的验证码是 8842，5分钟内有效，请勿告诉他人。"), "8842");
    ok_str(best(NULL, "【工商银行】您尾号6789的卡正在进行网上支付，校验码556677，金额1200.00元。"), "556677");
    ok(!has(NULL, "【工商银行】您尾号6789的卡正在进行网上支付，校验码556677，金额1200.00元。", "6789"));
    ok_str(best(NULL, "【微信】驗證碼：304917，10分鐘內有效。"), "304917");
    ok_str(best(NULL, "認証コード：735921\nこのコードは10分間有効です。"), "735921");
    ok_str(best(NULL, "[Web발신]\n[네이버] 인증번호 [482019]를 입력해주세요."), "482019");
    ok_str(best(NULL, "Tu código de verificación es 554433"), "554433");
    ok_str(best(NULL, "Seu código de verificação do Nubank é 901234. Não compartilhe."), "901234");
    ok_str(best(NULL, "Ihr Bestätigungscode lautet: 918273"), "918273");
    ok_str(best(NULL, "Dein Code für die Anmeldung: 4711. Bestellnummer 2020301"), "4711");
    ok_str(best(NULL, "Votre code de vérification est : 246810"), "246810");
    ok_str(best(NULL, "Il tuo codice è 135790. Non condividerlo."), "135790");
    ok_str(best(NULL, "Ваш код: 864209. Никому не сообщайте его."), "864209");
    ok_str(best(NULL, "Код подтверждения 5531 для входа в Госуслуги"), "5531");
}

static void test_labelled_beats_bare(void)
{
    ok_str(best(NULL, "Order #88412377 confirmed. Your one-time passcode is 5521."), "5521");
    ok(!has(NULL, "Order #88412377 confirmed. Your one-time passcode is 5521.", "88412377"));
    ok_str(best(NULL, "Ticket 449120 was updated. Your PIN: 3390"), "3390");
    ok_str(best(NULL, "Reference 20240117. Verification code 700121."), "700121");
    /* a bare number is still a candidate when nothing is labelled */
    ok_str(best(NULL, "Welcome back!\n\n482913\n"), "482913");
    /* a number labelled as an order number is not a code at all */
    cr_otp_t o;
    cr_otp_extract(&o, NULL, "Your code is 112233. Order number 445566.");
    ok(o.n == 1);
    ok_str(o.cand[0].code, "112233");
}

static void test_subject_first(void)
{
    cr_otp_t o;
    cr_otp_extract(&o, "Your code is 111222", "Use code 333444 to sign in.");
    ok(o.n == 2);
    ok_str(o.cand[0].code, "111222");
    ok_str(o.n > 1 ? o.cand[1].code : "", "333444");
    ok(o.n > 1 && o.cand[0].score > o.cand[1].score);
    /* the same code in subject and body is one candidate */
    cr_otp_extract(&o, "123456 is your Instagram code", "Hi ana, 123456 is your Instagram code. Don't share it.");
    ok(o.n == 1);
    ok_str(o.cand[0].code, "123456");
    /* a bare number in the subject loses to a labelled one in the body */
    ok_str(best("Order 55231 shipped", "Your verification code: 908172"), "908172");
}

static void test_alphanumeric(void)
{
    ok_str(best(NULL, "Your code is A7K-9QX"), "A7K-9QX");
    ok_str(best(NULL, "ABC123 is your Acme login code"), "ABC123");
    ok_str(best("Your Steam Guard code", "Here is the Steam Guard code you need to login:\n\nF4K2B9\n"), "F4K2B9");
    ok_str(best(NULL, "Verification code: 7x9kq2"), "7x9kq2");
    /* letters and digits with no keyword near are not codes */
    ok(!has(NULL, "Meet me at room B12C4 after the talk about IPV6 and H264.", "B12C4"));
    ok_str(best(NULL, "The new iPhone15 and Windows11 are here"), "");
}

static void test_not_codes(void)
{
    ok_str(best(NULL, "Thanks for signing up! See you soon."), "");
    ok_str(best(NULL, "Meeting at 10:30 on 2024-05-01 in room 4."), "");
    ok_str(best(NULL, "Total: $1499.00, paid with card ending 4421."), "");
    ok_str(best(NULL, "Your invoice of 2999 € is attached. Saving 15%."), "");
    ok_str(best(NULL, "Call us at 1-800-555-0199 or +1 415 555 0199 any time."), "");
    ok_str(best(NULL, "© 2024 Acme, Inc. All rights reserved."), "");
    ok_str(best(NULL, "Posted on March 5, 2024 by ana. 1,234,567 views. Version 3.14159."), "");
    ok_str(best(NULL, "Write to ana1987@example.com or see https://example.com/p/884421"), "");
    ok_str(best(NULL, "Use promo code 50OFF2024 for your next order"), "");
    /* a year and a time next to a code do not beat it */
    const char *t = "On March 5, 2024 at 10:30 you asked to sign in. Your code: 7788";
    ok_str(best(NULL, t), "7788");
    ok(!has(NULL, t, "2024"));
    /* phone numbers and addresses near a labelled code */
    const char *p = "Call +1 (415) 555-0199 if this wasn't you. Your PIN is 4410.";
    ok_str(best(NULL, p), "4410");
    ok(!has(NULL, p, "5550199"));
    const char *a = "Acme Inc, 1 Main Street, Springfield, IL 62704\nYour security code: 909090";
    ok_str(best(NULL, a), "909090");
    ok(!has(NULL, a, "62704"));
}

static void test_edges(void)
{
    cr_otp_t o;
    cr_otp_extract(&o, NULL, NULL);
    ok(o.n == 0);
    cr_otp_extract(&o, "", "");
    ok(o.n == 0);
    /* bad UTF-8 around the code does not stop it being found */
    ok_str(best(NULL, "\xff\xfe code: 123456 \xc3\x28 \xed\xa0\x80"), "123456");
    ok_str(best(NULL, "verification code \xe9\xaa"), "");
    /* too long, too short */
    ok_str(best(NULL, "Your code is 12345678901"), "");
    ok_str(best(NULL, "Your code is 123"), "");
    /* never more than CR_OTP_CANDS_MAX, best first, scores not increasing */
    cr_otp_extract(&o, NULL, "111111, 222222, 333333, 444444, 555555, 666666, 777777, 888888, 999999, 123123, 456456");
    ok(o.n == CR_OTP_CANDS_MAX);
    int sorted = 1;
    for (size_t i = 1; i < o.n; ++i)
        sorted &= o.cand[i - 1].score >= o.cand[i].score;
    ok(sorted);
    /* a long text with the code at the end */
    size_t n = 200000;
    char *big = malloc(n + 64);
    for (size_t i = 0; i < n; ++i)
        big[i] = "lorem ipsum dolor sit amet 12 "[i % 30];
    strcpy(big + n, " Your verification code: 246802");
    ok_str(best(NULL, big), "246802");
    free(big);
}

static void *thread_main(void *arg)
{
    int *bad = arg;
    for (int i = 0; i < 200; ++i) {
        cr_otp_t o;
        cr_otp_extract(&o, "Your code", "验证码：123456请勿泄露");
        if (o.n == 0 || strcmp(o.cand[0].code, "123456") != 0)
            ++*bad;
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

static void free_links(char **v, int n)
{
    for (int i = 0; i < n; ++i)
        free(v[i]);
}

static void test_links(void)
{
    char *v[CR_LINKS_MAX];
    const char *text = "Read our blog: https://example.com/blog/2024/spring.\n"
                       "Unsubscribe: https://example.com/unsubscribe?u=12\n"
                       "To confirm your email address, open https://example.com/verify?token=abc123&u=12.\n"
                       "(Or see https://example.com/help/faq)\n";
    int n = cr_links_extract(v, CR_LINKS_MAX, text, NULL);
    ok(n == 4);
    if (n == 4) {
        ok_str(v[0], "https://example.com/verify?token=abc123&u=12");
        ok_str(v[1], "https://example.com/blog/2024/spring"); /* neutral: in order */
        ok_str(v[3], "https://example.com/unsubscribe?u=12"); /* last */
        int faq = strcmp(v[2], "https://example.com/help/faq") == 0;
        ok(faq);
    }
    free_links(v, n);

    /* html: entity references decoded, the anchor's text counts, duplicates once, mailto and relative links left out */
    const char *html = "<p><a href=\"https://t.example.net/c/AbC?x=1&amp;y=2\" style=\"x\">Confirm your account</a>"
                       "<a href='https://example.com/about'>About</a> <A HREF=https://example.com/about>again</A>"
                       "<a href=\"mailto:help@example.com\">Help</a><a href=\"/relative\">rel</a>"
                       "<a data-href=\"https://example.com/nothere\">no</a>"
                       "<img src=\"https://example.com/logo.png\"></p>";
    n = cr_links_extract(v, CR_LINKS_MAX, "See https://example.com/about", html);
    ok(n == 2);
    if (n == 2) {
        ok_str(v[0], "https://t.example.net/c/AbC?x=1&y=2");
        ok_str(v[1], "https://example.com/about");
    }
    free_links(v, n);

    /* max is respected; the verification link survives the cut */
    char many[4096] = "";
    for (int i = 0; i < 30; ++i)
        snprintf(many + strlen(many), sizeof(many) - strlen(many), "https://example.com/p/%d\n", i);
    strcat(many, "Activate: https://example.com/activate/xyz\n");
    n = cr_links_extract(v, 3, many, NULL);
    ok(n == 3);
    if (n == 3) {
        ok_str(v[0], "https://example.com/activate/xyz");
        ok_str(v[1], "https://example.com/p/0");
    }
    free_links(v, n);

    /* a link longer than CR_LINK_MAX is skipped */
    char *longl = malloc(CR_LINK_MAX + 64);
    strcpy(longl, "https://example.com/");
    memset(longl + 20, 'a', CR_LINK_MAX);
    longl[20 + CR_LINK_MAX] = '\0';
    n = cr_links_extract(v, CR_LINKS_MAX, longl, NULL);
    ok(n == 0);
    free(longl);

    /* Chinese punctuation ends a link */
    n = cr_links_extract(v, CR_LINKS_MAX, "点击https://x.cn/v/8K2p，完成验证", NULL);
    ok(n == 1 && strcmp(v[0], "https://x.cn/v/8K2p") == 0);
    free_links(v, n);
    ok(cr_links_extract(v, CR_LINKS_MAX, NULL, NULL) == 0);
}

static void test_charref(void)
{
    char out[8];
    size_t n;
    ok(cr_html_charref(out, &n, "&amp;x", 6) == 5 && n == 1 && out[0] == '&');
    ok(cr_html_charref(out, &n, "&eacute;", 8) == 8 && n == 2 && memcmp(out, "é", 2) == 0);
    ok(cr_html_charref(out, &n, "&#x1F600;", 9) == 9 && n == 4 && memcmp(out, "😀", 4) == 0);
    ok(cr_html_charref(out, &n, "&#20320;", 8) == 8 && n == 3 && memcmp(out, "你", 3) == 0);
    ok(cr_html_charref(out, &n, "&#0;", 4) == 4 && n == 3 && memcmp(out, "\xEF\xBF\xBD", 3) == 0);
    ok(cr_html_charref(out, &n, "&copy=1", 7) == 0); /* no ';': literal, as in a query string */
    ok(cr_html_charref(out, &n, "&nosuch;", 8) == 0);
    ok(cr_html_charref(out, &n, "&#;", 3) == 0);
    ok(cr_html_charref(out, &n, "&#99999999;", 11) == 11 && n == 3 && memcmp(out, "\xEF\xBF\xBD", 3) == 0);
    ok(cr_html_charref(out, &n, "&#999999999;", 12) == 0); /* more digits than any code point has */
}

int main(void)
{
    subtest("english mails", test_english);
    subtest("other languages", test_languages);
    subtest("labelled beats bare", test_labelled_beats_bare);
    subtest("subject first", test_subject_first);
    subtest("letters and digits", test_alphanumeric);
    subtest("numbers that are not codes", test_not_codes);
    subtest("edges", test_edges);
    subtest("threads", test_threads);
    subtest("links", test_links);
    subtest("character references", test_charref);
    return done_testing();
}
