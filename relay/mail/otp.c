/* otp.c — one-time codes and verification links in the text of a mail or an SMS. Candidate tokens and the labels
 * around them ("verification code", "验证码", "order", "$") are found with PCRE2 patterns compiled once; each token is
 * then scored by its shape, the nearest label before or after it and what sits right next to it (a currency sign, a
 * clock, a date, a phone prefix, a unit). */
#define PCRE2_CODE_UNIT_WIDTH 8
#include "otp.h"
#include "corral/log.h"
#include <limits.h>
#include <pcre2.h>
#include <pthread.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define OTP_SCAN_MAX (256u << 10) /* bytes of one source looked at */
#define OTP_WINDOW (8u << 10)     /* bytes of a source scored at once */
#define OTP_CTX_BEFORE 1024       /* bytes before a window read for labels */
#define OTP_CTX_AFTER 512         /* bytes after it */
#define OTP_TOKS_MAX 512          /* tokens (anything with a digit in it) of one window */
#define OTP_LABELS_MAX 256        /* labels of one window */
#define OTP_MASKS_MAX 128         /* URLs and addresses of one window */
#define OTP_ACC_MAX 64            /* distinct codes kept while ranking */

#define W_STRONG 120 /* "verification code", "验证码", "passcode" */
#define W_WEAK 90    /* "code", "PIN", "код" */
#define W_NEG 100    /* "order", "phone", "$", "zip code" */

#define LINKS_SEEN_MAX 256 /* links looked at before the best CR_LINKS_MAX are kept */
#define LINK_CTX 160       /* bytes of text before a link read as its context */
#define ANCHOR_MAX 1024    /* bytes of an <a> element read for its text */

/* Word edges for scripts with spaces between words; CJK and Thai labels have none. */
#define LB "(?<![\\p{L}\\p{M}])"
#define RB "(?![\\p{L}\\p{M}])"
#define SP "[\\s\\x{a0}]+"
#define HY "[\\s\\x{a0}-]?"

/* Group 1: strong labels, 2: weak labels, 3: negative labels (what a number next to them is not). At one position the
 * first alternative that matches wins, so "zip code" (negative) is taken whole before "code" (weak) could be. */
static const char LABEL_RE[] =
    /* strong */
    "(" LB "(?:"
    "(?:one" HY "time|single" HY "use)" SP "(?:pass(?:word|code)|(?:verification|security|login|sign" HY "in)" SP "code|code|pin)"
    "|(?:verification|security|confirmation|authentication|authori[sz]ation|auth|login|log" HY "in|sign" HY "in|sign" HY
    "up|access|launch|activation|approval|2fa|mfa|two" HY "factor|otp|sms|account" SP "verification|e-?mail" SP
    "verification|device" SP "verification)" SP "(?:code|pin)"
    "|verification" SP "number|pass" HY "code|otp|totp|2fa|mfa"
    "|c[óo]digo" SP "(?:de" SP ")?(?:verificaci[óo]n|seguridad|confirmaci[óo]n|acceso|autenticaci[óo]n|verifica[çc][ãa]o"
    "|seguran[çc]a|confirma[çc][ãa]o|acesso|autentica[çc][ãa]o|un" SP "solo" SP "uso|uso" SP "[úu]nico)"
    "|(?:best[äa]tigungs|sicherheits|verifizierungs|verifikations|anmelde|einmal|zugangs|freischalt|aktivierungs|pr[üu]f"
    "|authentifizierungs|login)" HY "code|einmal" HY "passwort"
    "|code" SP "(?:de" SP ")?(?:v[ée]rification|s[ée]curit[ée]|confirmation|connexion|validation|acc[èe]s|activation"
    "|authentification)|code" SP "(?:à|a)" SP "usage" SP "unique|mot" SP "de" SP "passe" SP "(?:à" SP "usage" SP
    "unique|temporaire)"
    "|codice" SP "(?:di" SP ")?(?:verifica|sicurezza|conferma|accesso|attivazione|autenticazione)"
    "|код" SP "(?:подтверждения|проверки|верификации|доступа|безопасности|активации|для" SP "входа)"
    "|(?:одноразов|проверочн)\\p{L}*" SP "(?:код|пароль)"
    "|verificatiecode|beveiligingscode|bevestigingscode|inlogcode|toegangscode|eenmalige" SP "code"
    "|kod" SP "(?:weryfikacyjny|potwierdzaj\\p{L}*|bezpiecze\\p{L}*|dost\\p{L}*|jednorazowy|sms)"
    "|do[ğg]rulama" SP "kodu|onay" SP "kodu|g[üu]venlik" SP "kodu"
    "|m[ãa]" SP "(?:x[áa]c" SP "(?:minh|th[ựu]c|nh[ậa]n)|otp|b[ảa]o" SP "m[ậa]t)"
    "|kode" SP "(?:verifikasi|otp|keamanan|konfirmasi|akses)"
    ")" RB
    "|验证码|校验码|驗證碼|認證碼|认证码|动态码|動態碼|动态密码|動態密碼|确认码|確認碼|安全码|安全碼|登录码|登入碼|激活码|啟用碼"
    "|認証コード|確認コード|認証番号|確認番号|ワンタイムパスワード|ワンタイムコード|セキュリティコード|検証コード|承認コード"
    "|ログインコード"
    "|인증\\s*번호|인증\\s*코드|확인\\s*코드|확인\\s*번호|보안\\s*코드|승인\\s*번호|일회용\\s*비밀번호"
    "|رمز\\s+(?:التحقق|التفعيل|الأمان|التأكيد)|كود\\s+التحقق|קוד\\s+(?:אימות|האימות)|รหัสยืนยัน|รหัส\\s*otp"
    "|सत्यापन\\s+कोड|ओटीपी"
    ")"
    /* weak */
    "|(" LB "(?:codes?|pin|token|verify|verification|confirm|password|passwort|senha|contrase[ñn]a|clave|mot" SP "de" SP
    "passe|c[óo]digo|codice|kod|kodu|kode|mã|код\\p{L}{0,2}|пароль|(?-i:TAN|mTAN))" RB
    "|コード|코드|密码|密碼|口令|暗証番号|رمز|קוד|รหัส"
    ")"
    /* negative */
    "|(" LB "(?:"
    "order(?:" SP "(?:number|no\\.?|id|#))?|invoice|receipt|tracking|shipment|reference|ref\\.?|account" SP
    "(?:number|no\\.?|ending|#)|acct|customer" SP "(?:id|number|no\\.?)|member(?:ship)?" SP "(?:id|number|no\\.?)|ticket|case" SP
    "(?:number|no\\.?|id|#)|booking|reservation|confirmation" SP "number|transaction|txn|serial"
    "|reply|phone|telephone|tel\\.?|call|fax|mobile|cell|hotline|whatsapp"
    "|zip(?:" SP "code)?|postal" SP "code|post" HY "code|suite|ste\\.|street|st\\.|avenue|ave\\.?|road|rd\\.|blvd"
    "|boulevard|parkway|floor|p\\.?o\\.?" SP "box"
    "|price|total|subtotal|amount|balance|cost|fee|paid|usd|eur|gbp|jpy|cny|rmb|inr"
    "|promo(?:tional)?" SP "code|discount" SP "code|coupon(?:" SP "code)?|voucher(?:" SP "code)?|gift" SP
    "(?:card|code)|referral" SP "code|area" SP "code|country" SP "code|source" SP "code|product" SP "code|qr" SP "code|bar" HY
    "code"
    "|card" SP "ending|ending" SP "in|copyright"
    "|bestell(?:nummer|ung)|rechnung(?:snummer)?|kundennummer|telefon|stra(?:ß|ss)e|str\\.|postleitzahl|plz|preis"
    "|betrag|summe|sendungsnummer"
    "|commande|facture|t[ée]l[ée]phone|t[ée]l\\.|rue|prix|montant"
    "|pedido|factura|fatura|tel[ée]fono|telefone|calle|rua|precio|pre[çc]o|importe"
    "|ordine|fattura|telefono|prezzo|importo"
    "|заказ\\p{L}*|сч[её]т\\p{L}*|телефон\\p{L}*|тел\\.|цен\\p{L}*|сумм\\p{L}*|руб\\p{L}*"
    ")" RB "|[$€£¥₹₩₽¢￥©]|\\(c\\)"
    "|订单(?:号|编号)?|訂單(?:號|編號)?|单号|單號|尾号|尾號|金额|金額|余额|餘額|号码|號碼|电话|電話|致电|致電|客服|热线"
    "|熱線|邮编|郵編|邮政编码|二维码|条码|快递|运单"
    "|注文番号|お問い合わせ番号|郵便番号|〒|주문\\s*번호|전화|(?<!\\p{L})원"
    ")";

/* A token: a run of ASCII letters and digits holding a digit, with inner hyphens ("A7K-9QX", "G-123456",
 * "2024-01-05"), or two groups of 3–4 digits split by one space ("123 456"). Never inside a longer run. */
static const char TOKEN_RE[] = "(?<![A-Za-z0-9_])(?:(?<![0-9][ \\-])[0-9]{3,4} [0-9]{3,4}(?![A-Za-z0-9_]|[ \\-][0-9])"
                               "|(?=[A-Za-z0-9\\-]*[0-9])[A-Za-z0-9]++(?:-[A-Za-z0-9]++)*+)";

/* Links and mail addresses, whose digits are never codes. */
static const char MASK_RE[] = "(?i)(?:https?://|www\\.)[^\\s<>\"]++"
                              "|(?<![A-Za-z0-9._%+\\-])[A-Za-z0-9._%+\\-]++@[A-Za-z0-9\\-]++(?:\\.[A-Za-z0-9\\-]++)++";

/* A unit or currency right after a number (anchored at the token's end): an amount or a duration, not a code. */
static const char UNIT_RE[] = "[ \\x{a0}]?(?:%|[$€£¥₹₩₽¢￥]|(?i:usd|eur|gbp|jpy|cny|rmb|minutes?|mins?|seconds?|secs?"
                              "|hours?|hrs?|days?|weeks?|months?|years?|px|pt|kb|mb|gb|tb|km|kg|lbs?|points?|pts|users?"
                              "|items?|times)(?![\\p{L}\\p{M}])|元|円|원|분|초|시간|分钟|分鐘|秒|小时|小時|天|个|個|件|年"
                              "|月|日|руб|минут)";

/* http(s) links in plain text. */
static const char URL_RE[] = "(?i)(?<![A-Za-z0-9])https?://[A-Za-z0-9\\-._~:/?#\\[\\]@!$&*+,;=%()]++";

/* Words that make a link (or the text around it) a verification link. */
static const char LINK_GOOD_RE[] = "(?i)verif|confirm|activat|validat|magic|(?<![a-z])auth|log[-_\\s]?in|sign[-_\\s]?in"
                                   "|token|otp|2fa|one-?time|reset|passwor|onboard|invit|accept|验证|驗證|确认|確認|激活"
                                   "|認証|인증|best[äa]tig|подтверд|активац|активир";

/* Words that make a link anything but a verification link. */
static const char LINK_BAD_RE[] = "(?i)unsubscri|opt-?out|preferences|manage[-_ ]?(?:subscription|notification|email|pref)"
                                  "|privacy|terms|legal|policy|/help|support|faq|contact|report|spam|abuse"
                                  "|facebook\\.com|twitter\\.com|//x\\.com|linkedin\\.com|instagram\\.com|youtube\\.com"
                                  "|tiktok\\.com|\\.(?:png|jpe?g|gif|svg|css|js|ico|webp|bmp)(?:[?#]|$)"
                                  "|view[-_ ]?(?:in[-_ ]?browser|online|as[-_ ]?web)|web[-_ ]?version|abmelden"
                                  "|d[ée]sabonner|d[ée]sinscri|darse\\s+de\\s+baja|退订|退訂|取消订阅|配信停止|수신\\s*거부"
                                  "|отписат";

enum { RE_LABEL, RE_TOKEN, RE_MASK, RE_UNIT, RE_URL, RE_LINK_GOOD, RE_LINK_BAD, RE__COUNT };

static const struct {
    const char *name;
    const char *pattern;
    uint32_t options;
} re_src[RE__COUNT] = {
    {"label", LABEL_RE, PCRE2_CASELESS | PCRE2_UCP},
    {"token", TOKEN_RE, 0},
    {"mask", MASK_RE, 0},
    {"unit", UNIT_RE, PCRE2_UCP | PCRE2_ANCHORED}, /* anchored when compiled: JIT cannot anchor at match time */
    {"url", URL_RE, 0},
    {"link_good", LINK_GOOD_RE, PCRE2_UCP},
    {"link_bad", LINK_BAD_RE, PCRE2_UCP},
};

static pcre2_code *re[RE__COUNT];
static pcre2_match_context *re_mctx;
static pthread_once_t re_once = PTHREAD_ONCE_INIT;

static void otp__compile(void)
{
    re_mctx = pcre2_match_context_create(NULL);
    if (re_mctx != NULL)
        pcre2_set_match_limit(re_mctx, 1000000);
    for (int i = 0; i < RE__COUNT; ++i) {
        int err;
        PCRE2_SIZE at;
        re[i] = pcre2_compile((PCRE2_SPTR)re_src[i].pattern, PCRE2_ZERO_TERMINATED,
                              re_src[i].options | PCRE2_UTF | PCRE2_MATCH_INVALID_UTF, &err, &at, NULL);
        if (re[i] == NULL) {
            PCRE2_UCHAR msg[160];
            pcre2_get_error_message(err, msg, sizeof(msg));
            cr_log(CR_LOG_ERROR, "otp: pattern %s does not compile at %zu: %s", re_src[i].name, (size_t)at, (const char *)msg);
            continue;
        }
        (void)pcre2_jit_compile(re[i], PCRE2_JIT_COMPLETE); /* without JIT the interpreter runs the same pattern */
    }
}

static void otp__init(void)
{
    pthread_once(&re_once, otp__compile);
}

typedef struct st_otp_span_t {
    size_t s, e;
    int w; /* labels: W_STRONG, W_WEAK or -W_NEG; tokens: 1 when it could be a code */
} otp_span_t;

/* The next match of pattern `which` in src from off. Returns 1 with *out set (out->w: the first group that took part,
 * 0 if none), or 0 when there is none. */
static int otp__next(int which, pcre2_match_data *md, const char *src, size_t len, size_t off, uint32_t opts, otp_span_t *out)
{
    if (re[which] == NULL || off > len)
        return 0;
    int rc = pcre2_match(re[which], (PCRE2_SPTR)src, len, off, opts, md, re_mctx);
    if (rc <= 0)
        return 0;
    PCRE2_SIZE *ov = pcre2_get_ovector_pointer(md);
    out->s = ov[0];
    out->e = ov[1];
    out->w = 0;
    for (int g = 1; g < rc; ++g) {
        if (ov[2 * g] != PCRE2_UNSET) {
            out->w = g;
            break;
        }
    }
    return out->e >= out->s && out->e <= len;
}

/* How many matches of `which` there are in src (each counted once, at most cap). */
static int otp__count(int which, pcre2_match_data *md, const char *src, size_t len, int cap)
{
    int n = 0;
    size_t off = 0;
    otp_span_t m;
    while (n < cap && otp__next(which, md, src, len, off, 0, &m)) {
        ++n;
        off = m.e > m.s ? m.e : m.s + 1;
    }
    return n;
}

/* UTF-8 helpers: tolerant of bad bytes (each one is one character of its own). */
static size_t utf8_put(char *out, uint32_t cp)
{
    if (cp < 0x80) {
        out[0] = (char)cp;
        return 1;
    }
    if (cp < 0x800) {
        out[0] = (char)(0xC0 | (cp >> 6));
        out[1] = (char)(0x80 | (cp & 0x3F));
        return 2;
    }
    if (cp < 0x10000) {
        out[0] = (char)(0xE0 | (cp >> 12));
        out[1] = (char)(0x80 | ((cp >> 6) & 0x3F));
        out[2] = (char)(0x80 | (cp & 0x3F));
        return 3;
    }
    out[0] = (char)(0xF0 | (cp >> 18));
    out[1] = (char)(0x80 | ((cp >> 12) & 0x3F));
    out[2] = (char)(0x80 | ((cp >> 6) & 0x3F));
    out[3] = (char)(0x80 | (cp & 0x3F));
    return 4;
}

/* The code point starting at p[i] (at most n bytes); *adv is set to its length. Bad bytes decode as 0xFFFD, length 1. */
static uint32_t utf8_get(const char *p, size_t n, size_t i, size_t *adv)
{
    const unsigned char *s = (const unsigned char *)p + i;
    size_t left = n - i;
    uint32_t cp;
    size_t len;
    *adv = 1;
    if (left == 0)
        return 0;
    if (s[0] < 0x80)
        return s[0];
    if (s[0] >= 0xC2 && s[0] <= 0xDF) {
        cp = s[0] & 0x1F;
        len = 2;
    } else if (s[0] >= 0xE0 && s[0] <= 0xEF) {
        cp = s[0] & 0x0F;
        len = 3;
    } else if (s[0] >= 0xF0 && s[0] <= 0xF4) {
        cp = s[0] & 0x07;
        len = 4;
    } else {
        return 0xFFFD;
    }
    if (left < len)
        return 0xFFFD;
    for (size_t k = 1; k < len; ++k) {
        if ((s[k] & 0xC0) != 0x80)
            return 0xFFFD;
        cp = (cp << 6) | (s[k] & 0x3F);
    }
    if ((len == 3 && (cp < 0x800 || (cp >= 0xD800 && cp <= 0xDFFF))) || (len == 4 && (cp < 0x10000 || cp > 0x10FFFF)))
        return 0xFFFD;
    *adv = len;
    return cp;
}

/* The code point that ends right before p[i] (0 at the start); *at is set to where it begins. */
static uint32_t utf8_prev(const char *p, size_t i, size_t *at)
{
    if (i == 0) {
        *at = 0;
        return 0;
    }
    size_t j = i - 1, back = 0;
    while (j > 0 && back < 3 && ((unsigned char)p[j] & 0xC0) == 0x80) {
        --j;
        ++back;
    }
    size_t adv;
    uint32_t cp = utf8_get(p, i, j, &adv);
    if (j + adv != i) { /* not one whole character: the last byte alone */
        *at = i - 1;
        return 0xFFFD;
    }
    *at = j;
    return cp;
}

static int is_space_cp(uint32_t cp)
{
    return cp == ' ' || cp == '\t' || cp == '\n' || cp == '\r' || cp == '\f' || cp == '\v' || cp == 0xA0 || cp == 0x3000 ||
           (cp >= 0x2000 && cp <= 0x200A) || cp == 0x202F;
}

static int is_digit_cp(uint32_t cp)
{
    return cp >= '0' && cp <= '9';
}

static int is_currency_cp(uint32_t cp)
{
    switch (cp) {
    case '$':
    case 0x20AC: /* € */
    case 0xA3:   /* £ */
    case 0xA5:   /* ¥ */
    case 0xA2:   /* ¢ */
    case 0x20B9: /* ₹ */
    case 0x20A9: /* ₩ */
    case 0x20BD: /* ₽ */
    case 0x20BA: /* ₺ */
    case 0x20AB: /* ₫ */
    case 0x20B1: /* ₱ */
    case 0x0E3F: /* ฿ */
    case 0xFFE5: /* ￥ */
    case 0xFFE1: /* ￡ */
        return 1;
    }
    return 0;
}

/* The distance between two points of src as a reader sees it: characters other than white space, plus one per run
 * of white space. Stops counting at limit. */
static unsigned otp__gap(const char *src, size_t a, size_t b, unsigned limit)
{
    unsigned g = 0;
    int ws = 0;
    size_t adv;
    for (size_t i = a; i < b && g < limit; i += adv) {
        uint32_t cp = utf8_get(src, b, i, &adv);
        if (is_space_cp(cp)) {
            if (!ws)
                ++g;
            ws = 1;
        } else {
            ++g;
            ws = 0;
        }
    }
    return g;
}

typedef struct st_otp_scan_t {
    const char *src;
    size_t len;
    pcre2_match_data *md;
    otp_span_t masks[OTP_MASKS_MAX];
    size_t nmasks;
    otp_span_t labels[OTP_LABELS_MAX];
    size_t nlabels;
    otp_span_t toks[OTP_TOKS_MAX];
    size_t ntoks;
} otp_scan_t;

typedef struct st_otp_acc_t {
    char code[CR_OTP_CODE_MAX + 1];
    int score;
    unsigned count;
    unsigned order;
} otp_acc_t;

typedef struct st_otp_rank_t {
    otp_acc_t acc[OTP_ACC_MAX];
    size_t n;
    unsigned order;
} otp_rank_t;

static int otp__overlaps(const otp_span_t *v, size_t n, size_t s, size_t e)
{
    for (size_t i = 0; i < n; ++i)
        if (v[i].s < e && s < v[i].e)
            return 1;
    return 0;
}

/* The first token starting at or after a (tokens are in order and do not overlap). */
static size_t otp__tok_from(const otp_scan_t *sc, size_t a)
{
    size_t lo = 0, hi = sc->ntoks;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sc->toks[mid].s < a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* The first label starting at or after a (labels are in order and do not overlap). */
static size_t otp__label_from(const otp_scan_t *sc, size_t a)
{
    size_t lo = 0, hi = sc->nlabels;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (sc->labels[mid].s < a)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* Tokens lying wholly between a and b, counted up to cap. */
static unsigned otp__toks_between(const otp_scan_t *sc, size_t a, size_t b, unsigned cap)
{
    unsigned n = 0;
    for (size_t i = otp__tok_from(sc, a); i < sc->ntoks && sc->toks[i].e <= b && n < cap; ++i)
        ++n;
    return n;
}

/* Does another token than `self` that could be a code follow label l closely (the label is then that token's)? */
static int otp__claimed(const otp_scan_t *sc, size_t self, const otp_span_t *l)
{
    for (size_t i = otp__tok_from(sc, l->e); i < sc->ntoks; ++i) {
        if (otp__gap(sc->src, l->e, sc->toks[i].s, 13) > 12)
            break;
        if (i != self && sc->toks[i].w)
            return 1;
    }
    return 0;
}

/* Does a sentence end between a and b ("… this code. Reply STOP to 84088")? */
static int otp__sentence_ends(const char *src, size_t a, size_t b)
{
    for (size_t i = a; i < b; ++i) {
        char c = src[i];
        if ((c == '.' || c == '!' || c == '?') && (i + 1 == b || src[i + 1] == ' ' || src[i + 1] == '\n'))
            return 1;
        if (i + 3 <= b && (memcmp(src + i, "。", 3) == 0 || memcmp(src + i, "！", 3) == 0 || memcmp(src + i, "？", 3) == 0))
            return 1;
    }
    return 0;
}

enum { TK_NUM = 1, TK_ALNUM = 2 };

typedef struct st_otp_shape_t {
    char code[CR_OTP_CODE_MAX + 1];
    int kind;
    int base;
    int lower; /* holds lower-case letters */
} otp_shape_t;

static const int num_base[11] = {0, 0, 0, 0, 10, 20, 35, 25, 30, 12, 8}; /* by number of digits */

/* What a token is as a code: its code text, kind and a base score. Returns 0 when it cannot be a code (a date
 * 2024-01-05, a phone number 1-800-555-0199, a word with a digit in it, too short or too long). */
static int otp__shape(otp_shape_t *sh, const char *p, size_t n)
{
    size_t glen[3] = {0}, gdig[3] = {0}, galpha[3] = {0}, ng = 1, nch = 0;
    int lower = 0, upper = 0;
    memset(sh, 0, sizeof(*sh));
    if (n > 40)
        return 0;
    for (size_t i = 0; i < n; ++i) {
        char c = p[i];
        if (c == '-' || c == ' ') {
            if (ng == 3)
                return 0;
            ++ng;
            continue;
        }
        ++glen[ng - 1];
        ++nch;
        if (c >= '0' && c <= '9') {
            ++gdig[ng - 1];
        } else {
            ++galpha[ng - 1];
            if (c >= 'a' && c <= 'z')
                lower = 1;
            else
                upper = 1;
        }
    }
    size_t ndig = gdig[0] + gdig[1] + gdig[2];
    if (ndig == nch) { /* digits only: 123456, or 123-456 / 123 456 */
        if (ndig < 4 || ndig > 10)
            return 0;
        if (ng == 2 && !(glen[0] >= 3 && glen[0] <= 4 && glen[1] >= 3 && glen[1] <= 4))
            return 0;
        if (ng > 2)
            return 0;
        size_t k = 0;
        for (size_t i = 0; i < n; ++i)
            if (p[i] >= '0' && p[i] <= '9')
                sh->code[k++] = p[i];
        sh->kind = TK_NUM;
        sh->base = num_base[ndig] + (ng == 2 ? 5 : 0);
        if (ng == 1 && ndig == 4) {
            int year = (p[0] - '0') * 1000 + (p[1] - '0') * 100 + (p[2] - '0') * 10 + (p[3] - '0');
            if (year >= 1900 && year <= 2099)
                sh->base -= 35;
        }
        return 1;
    }
    /* G-123456, FB-12345: a sender's prefix before the digits one types */
    if (ng == 2 && !lower && galpha[0] == glen[0] && glen[0] <= 2 && gdig[1] == glen[1] && glen[1] >= 4 && glen[1] <= 10) {
        memcpy(sh->code, p + glen[0] + 1, glen[1]);
        sh->kind = TK_NUM;
        sh->base = num_base[glen[1]] + 10;
        return 1;
    }
    /* letters and digits: A7K-9QX, ABC123 (kept as shown, hyphens included) */
    if (nch < 4 || nch > 12 || n > CR_OTP_CODE_MAX || ndig == 0)
        return 0;
    for (size_t g = 0; g < ng; ++g)
        if (glen[g] < 2)
            return 0;
    int run = 0, longest = 0;
    for (size_t i = 0; i < n; ++i) {
        char c = p[i];
        run = ((c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z')) ? run + 1 : 0;
        if (run > longest)
            longest = run;
    }
    memcpy(sh->code, p, n);
    sh->kind = TK_ALNUM;
    sh->lower = lower;
    sh->base = lower ? 5 : 20;
    if (longest >= 5) /* a word with a number: Windows11, iPhone15 */
        sh->base -= 15;
    (void)upper;
    return 1;
}

#define REJECT INT_MIN

static int is_alnum_ascii(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z');
}

/* Is token [s, e) one space or hyphen away from another group of 3 or more digits? */
static int otp__digit_neighbour(const char *src, size_t len, size_t s, size_t e)
{
    if (s >= 2 && (src[s - 1] == ' ' || src[s - 1] == '-')) {
        size_t k = s - 1, d = 0;
        while (k > 0 && src[k - 1] >= '0' && src[k - 1] <= '9') {
            --k;
            ++d;
        }
        if (d >= 3 && (k == 0 || !is_alnum_ascii(src[k - 1])))
            return 1;
    }
    if (e + 1 < len && (src[e] == ' ' || src[e] == '-')) {
        size_t k = e + 1, d = 0;
        while (k < len && src[k] >= '0' && src[k] <= '9') {
            ++k;
            ++d;
        }
        if (d >= 3 && (k == len || !is_alnum_ascii(src[k])))
            return 1;
    }
    return 0;
}

/* What sits right next to token [s, e): REJECT for the digits of an amount, a time, a date, a decimal, a phone
 * number's prefix or an address; otherwise a (negative) adjustment. */
static int otp__context(const otp_scan_t *sc, size_t s, size_t e, int kind)
{
    const char *src = sc->src;
    size_t at, at2, adv, adv2;
    uint32_t a = utf8_prev(src, s, &at);
    uint32_t a2 = utf8_prev(src, at, &at2);
    uint32_t b = e < sc->len ? utf8_get(src, sc->len, e, &adv) : 0;
    uint32_t b2 = b != 0 ? utf8_get(src, sc->len, e + adv, &adv2) : 0;
    int adj = 0;

    if (a == '+' || a == '@' || b == '@' || a == '/' || b == '/' || b == '%')
        return REJECT;
    if ((a == '.' || a == ',' || a == ':') && is_digit_cp(a2))
        return REJECT;
    if ((b == '.' || b == ',' || b == ':') && is_digit_cp(b2))
        return REJECT;
    if (is_currency_cp(a) || (is_space_cp(a) && is_currency_cp(a2)))
        return REJECT;
    otp_span_t m;
    if (otp__next(RE_UNIT, sc->md, src, sc->len, e, 0, &m))
        return REJECT;
    if (kind == TK_NUM && otp__digit_neighbour(src, sc->len, s, e))
        return REJECT; /* a group of a longer number: 415 555 0199 */
    if (a == '#' || a == 0x2116 /* № */)
        adj -= 40;
    if (kind == TK_NUM && (a == ')' || (is_space_cp(a) && a2 == ')')))
        adj -= 40; /* (415) 555-0199 */
    /* a US state before a ZIP code: "CA 94107" */
    if (kind == TK_NUM && a == ' ' && at >= 2 && src[at - 1] >= 'A' && src[at - 1] <= 'Z' && src[at - 2] >= 'A' &&
        src[at - 2] <= 'Z' && (at == 2 || src[at - 3] == ' ' || src[at - 3] == ','))
        adj -= 30;
    return adj;
}

/* Is token [s, e) alone on its line (white space around it only)? */
static int otp__own_line(const otp_scan_t *sc, size_t s, size_t e)
{
    for (size_t i = s; i > 0; --i) {
        char c = sc->src[i - 1];
        if (c == '\n')
            break;
        if (c != ' ' && c != '\t' && c != '\r')
            return 0;
    }
    for (size_t i = e; i < sc->len; ++i) {
        char c = sc->src[i];
        if (c == '\n')
            break;
        if (c != ' ' && c != '\t' && c != '\r')
            return 0;
    }
    return 1;
}

static int f_before(unsigned g)
{
    return g <= 8 ? 100 : g >= 78 ? 0 : 100 - (int)(g - 8) * 100 / 70;
}

static int f_after(unsigned g)
{
    return g <= 12 ? 85 : g >= 36 ? 0 : 85 - (int)(g - 12) * 85 / 24;
}

static int f_neg(unsigned g)
{
    return g <= 4 ? 100 : g >= 29 ? 0 : 100 - (int)(g - 4) * 100 / 25;
}

/* The labels' part of token i's score: the best positive label before it (or after it, when the label is not some
 * other token's), minus the nearest negative label when that one is closer. *pos_gap is the best positive label's
 * distance (UINT_MAX when there is none). */
static int otp__labels(const otp_scan_t *sc, size_t i, unsigned *pos_gap)
{
    const otp_span_t *t = &sc->toks[i];
    int best = 0, neg = 0;
    unsigned best_gap = UINT_MAX, neg_gap = UINT_MAX;
    /* before it, nearest first (no label overlaps a token), until the window ends or too many tokens lie between */
    for (size_t k = otp__label_from(sc, t->s); k-- > 0;) {
        const otp_span_t *l = &sc->labels[k];
        if (t->s - l->e > OTP_CTX_BEFORE)
            break;
        unsigned g = otp__gap(sc->src, l->e, t->s, 78);
        unsigned blk = otp__toks_between(sc, l->e, t->s, 4);
        if (g >= 78 || blk > 3)
            break;
        if (l->w > 0) {
            int v = (l->w * f_before(g) / 100) >> blk;
            if (g > 3 && otp__sentence_ends(sc->src, l->e, t->s))
                v = v * 6 / 10;
            if (v > best) {
                best = v;
                best_gap = g;
            }
        } else if (neg_gap == UINT_MAX && f_neg(g) > 0) {
            neg = (W_NEG * f_neg(g) / 100) >> blk;
            neg_gap = g;
        }
    }
    /* after it, up to the next token */
    for (size_t k = otp__label_from(sc, t->e); k < sc->nlabels; ++k) {
        const otp_span_t *l = &sc->labels[k];
        if (l->s - t->e > OTP_CTX_AFTER || otp__toks_between(sc, t->e, l->s, 1) > 0)
            break;
        unsigned g = otp__gap(sc->src, t->e, l->s, 36);
        if (g >= 36)
            break;
        if (otp__claimed(sc, i, l))
            continue;
        if (l->w > 0) {
            int v = l->w * f_after(g) / 100;
            if (v > best) {
                best = v;
                best_gap = g;
            }
        } else if (g <= 12 && g < neg_gap) {
            neg = W_NEG * f_neg(g) / 100;
            neg_gap = g;
        }
    }
    *pos_gap = best_gap;
    return best - (neg_gap < best_gap ? neg : 0);
}

static void otp__add(otp_rank_t *r, const char *code, int score)
{
    for (size_t i = 0; i < r->n; ++i) {
        if (strcmp(r->acc[i].code, code) == 0) {
            if (score > r->acc[i].score)
                r->acc[i].score = score;
            ++r->acc[i].count;
            return;
        }
    }
    if (r->n == OTP_ACC_MAX) { /* full: replace the weakest if this one is better */
        size_t w = 0;
        for (size_t i = 1; i < r->n; ++i)
            if (r->acc[i].score < r->acc[w].score)
                w = i;
        if (r->acc[w].score >= score)
            return;
        r->acc[w] = r->acc[--r->n];
    }
    otp_acc_t *a = &r->acc[r->n++];
    snprintf(a->code, sizeof(a->code), "%s", code);
    a->score = score;
    a->count = 1;
    a->order = r->order++;
}

/* Scores the tokens starting in [ws, we) of src, reading labels and tokens in [cs, ce) around them. */
static void otp__window(otp_rank_t *r, otp_scan_t *sc, size_t cs, size_t ws, size_t we, size_t ce, int is_subject)
{
    const char *src = sc->src;
    size_t off;
    otp_span_t m;
    sc->nmasks = sc->nlabels = sc->ntoks = 0;
    for (off = cs; sc->nmasks < OTP_MASKS_MAX && otp__next(RE_MASK, sc->md, src, ce, off, 0, &m); off = m.e)
        sc->masks[sc->nmasks++] = m;
    for (off = cs; sc->nlabels < OTP_LABELS_MAX && otp__next(RE_LABEL, sc->md, src, ce, off, 0, &m); off = m.e) {
        if (otp__overlaps(sc->masks, sc->nmasks, m.s, m.e))
            continue;
        m.w = m.w == 1 ? W_STRONG : m.w == 2 ? W_WEAK : -W_NEG;
        sc->labels[sc->nlabels++] = m;
    }
    for (off = cs; sc->ntoks < OTP_TOKS_MAX && otp__next(RE_TOKEN, sc->md, src, ce, off, 0, &m); off = m.e) {
        otp_shape_t sh;
        if (otp__overlaps(sc->masks, sc->nmasks, m.s, m.e) || otp__overlaps(sc->labels, sc->nlabels, m.s, m.e))
            continue;
        m.w = otp__shape(&sh, src + m.s, m.e - m.s); /* tokens: 1 when it could be a code */
        sc->toks[sc->ntoks++] = m;
    }
    sc->len = ce;

    for (size_t i = otp__tok_from(sc, ws); i < sc->ntoks && sc->toks[i].s < we; ++i) {
        const otp_span_t *t = &sc->toks[i];
        otp_shape_t sh;
        unsigned pos_gap;
        if (!t->w || !otp__shape(&sh, src + t->s, t->e - t->s))
            continue;
        int ctx = otp__context(sc, t->s, t->e, sh.kind);
        if (ctx == REJECT)
            continue;
        int lab = otp__labels(sc, i, &pos_gap);
        if (sh.kind == TK_ALNUM && (pos_gap == UINT_MAX || (sh.lower && pos_gap > 12)))
            continue; /* letters and digits are a code only when something says so */
        int score = sh.base + ctx + lab + (is_subject ? 15 : 0);
        if (!is_subject && otp__own_line(sc, t->s, t->e))
            score += 20;
        if (score > 0)
            otp__add(r, sh.code, score);
    }
}

static size_t utf8_align(const char *src, size_t len, size_t i)
{
    while (i < len && ((unsigned char)src[i] & 0xC0) == 0x80)
        ++i;
    return i;
}

/* Scores the tokens of src window by window (so that a long text full of numbers is read to its end), each window
 * with some text before and after it for the labels. */
static void otp__scan(otp_rank_t *r, otp_scan_t *sc, const char *src, int is_subject)
{
    size_t len = strnlen(src, OTP_SCAN_MAX);
    sc->src = src;
    for (size_t ws = 0, we; ws < len; ws = we) {
        we = utf8_align(src, len, ws + OTP_WINDOW < len ? ws + OTP_WINDOW : len);
        size_t cs = utf8_align(src, len, ws > OTP_CTX_BEFORE ? ws - OTP_CTX_BEFORE : 0);
        size_t ce = utf8_align(src, len, we + OTP_CTX_AFTER < len ? we + OTP_CTX_AFTER : len);
        otp__window(r, sc, cs, ws, we, ce, is_subject);
    }
}

static int otp__cmp(const void *a, const void *b)
{
    const otp_acc_t *x = a, *y = b;
    int sx = x->score + 5 * (int)(x->count > 3 ? 2 : x->count - 1);
    int sy = y->score + 5 * (int)(y->count > 3 ? 2 : y->count - 1);
    if (sx != sy)
        return sx > sy ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

void cr_otp_extract(cr_otp_t *out, const char *subject, const char *text)
{
    memset(out, 0, sizeof(*out));
    otp__init();
    pcre2_match_data *md = pcre2_match_data_create(8, NULL);
    otp_scan_t *sc = malloc(sizeof(*sc));
    otp_rank_t *r = malloc(sizeof(*r));
    if (md == NULL || sc == NULL || r == NULL)
        goto done;
    r->n = 0;
    r->order = 0;
    sc->md = md;
    if (subject != NULL)
        otp__scan(r, sc, subject, 1);
    if (text != NULL)
        otp__scan(r, sc, text, 0);
    qsort(r->acc, r->n, sizeof(r->acc[0]), otp__cmp);
    for (size_t i = 0; i < r->n && out->n < CR_OTP_CANDS_MAX; ++i) {
        memcpy(out->cand[out->n].code, r->acc[i].code, sizeof(out->cand[0].code));
        out->cand[out->n].score = r->acc[i].score + 5 * (int)(r->acc[i].count > 3 ? 2 : r->acc[i].count - 1);
        ++out->n;
    }
done:
    free(r);
    free(sc);
    pcre2_match_data_free(md);
}

/* HTML character references: the Latin-1 names in code point order from 160, then the others mail uses. */
static const char *const latin1_names[96] = {
    "nbsp",   "iexcl",  "cent",   "pound",  "curren", "yen",    "brvbar", "sect",   "uml",    "copy",   "ordf",   "laquo",
    "not",    "shy",    "reg",    "macr",   "deg",    "plusmn", "sup2",   "sup3",   "acute",  "micro",  "para",   "middot",
    "cedil",  "sup1",   "ordm",   "raquo",  "frac14", "frac12", "frac34", "iquest", "Agrave", "Aacute", "Acirc",  "Atilde",
    "Auml",   "Aring",  "AElig",  "Ccedil", "Egrave", "Eacute", "Ecirc",  "Euml",   "Igrave", "Iacute", "Icirc",  "Iuml",
    "ETH",    "Ntilde", "Ograve", "Oacute", "Ocirc",  "Otilde", "Ouml",   "times",  "Oslash", "Ugrave", "Uacute", "Ucirc",
    "Uuml",   "Yacute", "THORN",  "szlig",  "agrave", "aacute", "acirc",  "atilde", "auml",   "aring",  "aelig",  "ccedil",
    "egrave", "eacute", "ecirc",  "euml",   "igrave", "iacute", "icirc",  "iuml",   "eth",    "ntilde", "ograve", "oacute",
    "ocirc",  "otilde", "ouml",   "divide", "oslash", "ugrave", "uacute", "ucirc",  "uuml",   "yacute", "thorn",  "yuml"};

static const struct {
    const char *name;
    uint32_t cp;
} other_names[] = {
    {"amp", '&'},     {"lt", '<'},       {"gt", '>'},      {"quot", '"'},    {"apos", '\''},   {"hellip", 8230}, {"mdash", 8212},
    {"ndash", 8211},  {"lsquo", 8216},   {"rsquo", 8217},  {"sbquo", 8218},  {"ldquo", 8220},  {"rdquo", 8221},  {"bdquo", 8222},
    {"bull", 8226},   {"euro", 8364},    {"trade", 8482},  {"zwnj", 8204},   {"zwj", 8205},    {"lrm", 8206},    {"rlm", 8207},
    {"ensp", 8194},   {"emsp", 8195},    {"thinsp", 8201}, {"dagger", 8224}, {"Dagger", 8225}, {"permil", 8240}, {"lsaquo", 8249},
    {"rsaquo", 8250}, {"OElig", 338},    {"oelig", 339},   {"Scaron", 352},  {"scaron", 353},  {"Yuml", 376},    {"fnof", 402},
    {"circ", 710},    {"tilde", 732},    {"larr", 8592},   {"rarr", 8594},   {"uarr", 8593},   {"darr", 8595},   {"hearts", 9829},
    {"check", 10003}, {"NewLine", '\n'}, {"Tab", '\t'},    {"colon", ':'},   {"num", '#'},
};

size_t cr_html_charref(char out[8], size_t *outlen, const char *p, size_t n)
{
    uint32_t cp = 0;
    size_t i;
    *outlen = 0;
    if (n < 3 || p[0] != '&')
        return 0;
    if (p[1] == '#') {
        int hex = n > 2 && (p[2] == 'x' || p[2] == 'X');
        size_t digits = 0;
        for (i = hex ? 3 : 2; i < n && digits < 8; ++i, ++digits) {
            char c = p[i];
            int v = c >= '0' && c <= '9'          ? c - '0'
                    : hex && c >= 'a' && c <= 'f' ? c - 'a' + 10
                    : hex && c >= 'A' && c <= 'F' ? c - 'A' + 10
                                                  : -1;
            if (v < 0)
                break;
            cp = cp * (hex ? 16 : 10) + (uint32_t)v;
        }
        if (digits == 0 || i >= n || p[i] != ';')
            return 0;
        if (cp == 0 || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF) || (cp >= 0x80 && cp <= 0x9F))
            cp = 0xFFFD;
        *outlen = utf8_put(out, cp);
        return i + 1;
    }
    for (i = 1; i < n && i < 12 && ((p[i] >= 'a' && p[i] <= 'z') || (p[i] >= 'A' && p[i] <= 'Z') || (p[i] >= '0' && p[i] <= '9'));
         ++i)
        ;
    if (i == 1 || i >= n || p[i] != ';')
        return 0;
    size_t nlen = i - 1;
    for (size_t k = 0; k < 96; ++k) {
        if (strlen(latin1_names[k]) == nlen && memcmp(latin1_names[k], p + 1, nlen) == 0) {
            *outlen = utf8_put(out, 160 + (uint32_t)k);
            return i + 1;
        }
    }
    for (size_t k = 0; k < sizeof(other_names) / sizeof(other_names[0]); ++k) {
        if (strlen(other_names[k].name) == nlen && memcmp(other_names[k].name, p + 1, nlen) == 0) {
            *outlen = utf8_put(out, other_names[k].cp);
            return i + 1;
        }
    }
    return 0;
}

typedef struct st_link_t {
    char *url;
    int score;
    unsigned order;
} link_t;

typedef struct st_links_t {
    link_t v[LINKS_SEEN_MAX];
    size_t n;
    pcre2_match_data *md;
} links_t;

static int link__score(links_t *ls, const char *url, size_t len, const char *ctx, size_t ctxlen)
{
    int good = otp__count(RE_LINK_GOOD, ls->md, url, len, 3);
    int bad = otp__count(RE_LINK_BAD, ls->md, url, len, 3);
    int cgood = ctx != NULL ? otp__count(RE_LINK_GOOD, ls->md, ctx, ctxlen, 2) : 0;
    int cbad = ctx != NULL ? otp__count(RE_LINK_BAD, ls->md, ctx, ctxlen, 2) : 0;
    return 10 * good + 8 * cgood - 12 * bad - 8 * cbad;
}

/* Adds url (len bytes, entity references already decoded) unless it is seen already, not http(s), or too long.
 * Returns -1 when memory runs out. */
static int link__add(links_t *ls, const char *url, size_t len, const char *ctx, size_t ctxlen)
{
    while (len > 0 && (url[len - 1] == ' ' || url[len - 1] == '\t' || url[len - 1] == '\r' || url[len - 1] == '\n'))
        --len;
    while (len > 0 && (url[0] == ' ' || url[0] == '\t' || url[0] == '\r' || url[0] == '\n')) {
        ++url;
        --len;
    }
    if (len == 0 || len > CR_LINK_MAX || ls->n == LINKS_SEEN_MAX)
        return 0;
    if (!((len > 7 && strncasecmp(url, "http://", 7) == 0) || (len > 8 && strncasecmp(url, "https://", 8) == 0)))
        return 0;
    for (size_t i = 0; i < len; ++i) /* a link with a control character or space in it is not one to follow */
        if ((unsigned char)url[i] <= ' ' || url[i] == 0x7f)
            return 0;
    for (size_t i = 0; i < ls->n; ++i)
        if (strlen(ls->v[i].url) == len && memcmp(ls->v[i].url, url, len) == 0)
            return 0;
    char *copy = malloc(len + 1);
    if (copy == NULL)
        return -1;
    memcpy(copy, url, len);
    copy[len] = '\0';
    ls->v[ls->n].url = copy;
    ls->v[ls->n].score = link__score(ls, copy, len, ctx, ctxlen);
    ls->v[ls->n].order = (unsigned)ls->n;
    ++ls->n;
    return 0;
}

/* Links in plain text, each with the text before it (its line and the one above) as context. */
static int link__text(links_t *ls, const char *text)
{
    size_t len = strnlen(text, OTP_SCAN_MAX), off = 0;
    otp_span_t m;
    while (otp__next(RE_URL, ls->md, text, len, off, 0, &m)) {
        size_t e = m.e;
        off = m.e > m.s ? m.e : m.s + 1;
        /* punctuation after a link belongs to the sentence; a ")" only when no "(" opened inside the link */
        for (;;) {
            char c = text[e - 1];
            if (e > m.s + 8 && (c == '.' || c == ',' || c == ';' || c == ':' || c == '!' || c == '?')) {
                --e;
                continue;
            }
            if (e > m.s + 8 && (c == ')' || c == ']')) {
                char open = c == ')' ? '(' : '[';
                int depth = 0;
                for (size_t i = m.s; i < e; ++i)
                    depth += text[i] == open ? 1 : text[i] == c ? -1 : 0;
                if (depth < 0) {
                    --e;
                    continue;
                }
            }
            break;
        }
        size_t c0 = m.s > LINK_CTX ? m.s - LINK_CTX : 0;
        int lines = 0;
        for (size_t i = m.s; i > c0; --i) {
            if (text[i - 1] == '\n' && ++lines == 2) {
                c0 = i;
                break;
            }
        }
        while (c0 < m.s && ((unsigned char)text[c0] & 0xC0) == 0x80)
            ++c0;
        if (link__add(ls, text + m.s, e - m.s, text + c0, m.s - c0) < 0)
            return -1;
    }
    return 0;
}

static int ascii_ieq(const char *p, const char *word, size_t n)
{
    return strncasecmp(p, word, n) == 0;
}

static int is_ws(char c)
{
    return c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f';
}

static size_t skip_ws(const char *p, size_t len, size_t i)
{
    while (i < len && is_ws(p[i]))
        ++i;
    return i;
}

/* hrefs of <a> and <area> elements, each with the element's text as context; references in the value decoded. */
static int link__html(links_t *ls, const char *html)
{
    size_t len = strlen(html);
    char *url = NULL, *anchor = NULL;
    int rc = 0;
    if ((url = malloc(CR_LINK_MAX + 1)) == NULL || (anchor = malloc(ANCHOR_MAX)) == NULL) {
        rc = -1;
        goto done;
    }
    for (size_t i = 0; i + 2 < len && ls->n < LINKS_SEEN_MAX;) {
        const char *lt = memchr(html + i, '<', len - i);
        if (lt == NULL)
            break;
        size_t t = (size_t)(lt - html);
        size_t nl = (t + 2 <= len && (html[t + 1] == 'a' || html[t + 1] == 'A')) ? 2
                    : (t + 5 <= len && ascii_ieq(html + t + 1, "area", 4))       ? 5
                                                                                 : 0;
        if (nl == 0 || t + nl >= len ||
            !(html[t + nl] == ' ' || html[t + nl] == '\t' || html[t + nl] == '\n' || html[t + nl] == '\r' || html[t + nl] == '/')) {
            i = t + 1;
            continue;
        }
        /* the tag ends at the first '>' outside quotes; its href is the first one */
        size_t j = t + nl, vs = 0, ve = 0;
        int found = 0;
        while (j < len && html[j] != '>') {
            char c = html[j];
            if (c == '"' || c == '\'') {
                const char *end = memchr(html + j + 1, c, len - j - 1);
                j = end == NULL ? len : (size_t)(end - html) + 1;
                continue;
            }
            if (!found && is_ws(html[j - 1]) && j + 4 <= len && ascii_ieq(html + j, "href", 4)) {
                size_t k = skip_ws(html, len, j + 4);
                if (k < len && html[k] == '=') {
                    k = skip_ws(html, len, k + 1);
                    if (k < len && (html[k] == '"' || html[k] == '\'')) {
                        const char *end = memchr(html + k + 1, html[k], len - k - 1);
                        if (end == NULL) {
                            j = len;
                            break;
                        }
                        vs = k + 1;
                        ve = (size_t)(end - html);
                        j = ve + 1;
                    } else {
                        for (vs = ve = k; ve < len && html[ve] != '>' && !is_ws(html[ve]); ++ve)
                            ;
                        j = ve;
                    }
                    found = 1;
                    continue;
                }
            }
            ++j;
        }
        if (j >= len)
            break; /* a tag that never ends: nothing after it is markup */
        i = j + 1;
        if (!found || ve - vs > 4 * CR_LINK_MAX)
            continue;
        /* decode the value's character references */
        size_t ulen = 0;
        int too_long = 0;
        for (size_t k = vs; k < ve;) {
            char ref[8];
            size_t rl, used = html[k] == '&' ? cr_html_charref(ref, &rl, html + k, ve - k) : 0;
            if (used == 0) {
                ref[0] = html[k];
                rl = 1;
                used = 1;
            }
            if (ulen + rl > CR_LINK_MAX) {
                too_long = 1;
                break;
            }
            memcpy(url + ulen, ref, rl);
            ulen += rl;
            k += used;
        }
        if (too_long)
            continue;
        /* the element's text, tags left out */
        size_t alen = 0;
        int in_tag = 0;
        for (size_t k = i; k < len && k < i + ANCHOR_MAX && alen + 1 < ANCHOR_MAX; ++k) {
            if (html[k] == '<') {
                if (k + 3 < len && html[k + 1] == '/' && (html[k + 2] == 'a' || html[k + 2] == 'A'))
                    break;
                in_tag = 1;
            } else if (html[k] == '>') {
                in_tag = 0;
            } else if (!in_tag) {
                anchor[alen++] = html[k];
            }
        }
        if (link__add(ls, url, ulen, anchor, alen) < 0) {
            rc = -1;
            goto done;
        }
    }
done:
    free(url);
    free(anchor);
    return rc;
}

static int link__cmp(const void *a, const void *b)
{
    const link_t *x = a, *y = b;
    if (x->score != y->score)
        return x->score > y->score ? -1 : 1;
    return x->order < y->order ? -1 : x->order > y->order;
}

int cr_links_extract(char **out, size_t max, const char *text, const char *html)
{
    int rc = -1;
    size_t n = 0;
    otp__init();
    links_t *ls = malloc(sizeof(*ls));
    if (ls == NULL)
        return -1;
    ls->n = 0;
    if ((ls->md = pcre2_match_data_create(8, NULL)) == NULL)
        goto done;
    if (text != NULL && link__text(ls, text) < 0)
        goto done;
    if (html != NULL && link__html(ls, html) < 0)
        goto done;
    qsort(ls->v, ls->n, sizeof(ls->v[0]), link__cmp);
    for (; n < max && n < ls->n; ++n) {
        out[n] = ls->v[n].url;
        ls->v[n].url = NULL; /* now owned by the caller */
    }
    rc = (int)n;
done:
    for (size_t i = 0; i < ls->n; ++i)
        free(ls->v[i].url);
    pcre2_match_data_free(ls->md);
    free(ls);
    return rc;
}
