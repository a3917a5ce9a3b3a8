"""corral.otp — finds the one-time code in the text of a mail or an SMS, by the same rules as the relay's extractor.

The rules, in order of weight:
- A code labelled by a keyword beats a bare number. Keywords: code, passcode, OTP, PIN, verification/verify,
  confirm(ation), one-time, 2FA/two-factor, and 验证码 校验码 驗證碼 动态码 确认码 認証コード 確認コード 認証番号 인증번호
  인증 코드 código codice kod код пароль Bestätigungscode Sicherheitscode (with "code de vérification",
  "código de verificación" and the like covered by their "code" word). A label counts before the code ("Your code is
  483920") and, a little less, after it ("483920 is your Slack code"); the closer (counted in non-space characters,
  up to 40) the better, and the first code after a label gets a bonus and still counts up to 120 characters away
  ("Your code is below — enter it ...:\n\nKB7-9WZ"). "promo code", "zip code", "order code" and the like are not
  labels.
- Digits need not sit at a word boundary: "验证码：123456请勿泄露" gives 123456 (only ASCII letters and digits next
  to a run make it part of a longer word). Full-width digits count as digits.
- Codes are runs of 4 to 8 digits, two equal groups of digits joined by "-" or a space ("123-456", "1234 5678"; a
  space-joined pair only when labelled), or alphanumeric codes with at least one letter and one digit ("A7K9QX",
  Slack's "KB7-9WZ"); grouped codes are returned without the separator, as an input field takes them. An
  alphanumeric code with lowercase letters is kept only when labelled.
- Rank low: years (1900-2099), prices (a currency sign or word next to it), phone numbers and dates (a "+" before,
  or another digit group joined by "-", "/", "." or a space), durations ("15 minutes"), numbers after "#", order,
  invoice, account, phone, "ending in" and the like right before them. Digits inside links and mail addresses are
  not looked at.
- The subject is searched before the body: equal codes rank higher in the subject.
- extract_otp gives the best candidate when it is labelled or a bare 6- or 8-digit number, else None;
  extract_otp_candidates gives up to 8 candidates, best first, including the low-ranked ones.
"""

from __future__ import annotations

import re
from typing import Dict, List, Optional, Tuple

__all__ = ["extract_otp", "extract_otp_candidates"]

CODE_MAX = 16        # characters of a code, at most
CANDIDATES_MAX = 8   # candidates returned, at most
SCAN_MAX = 100_000   # characters of a subject or a body looked at, at most
OTP_THRESHOLD = 30   # the score a candidate needs to be "the" code

_FULLWIDTH = str.maketrans("０１２３４５６７８９", "0123456789")

# Links and mail addresses are blanked (same length) before the search, so their digits are never codes.
_MASK_RE = re.compile(
    r"(?:https?://|www\.)[^\s<>\"')\]]+"
    r"|[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)+",
    re.IGNORECASE)

_NB = r"(?<![A-Za-z])"  # no ASCII letter before
_NA = r"(?![A-Za-z])"   # no ASCII letter after

# (pattern, weight): strong labels name a code; weak ones only say that something is being verified.
_KEYWORDS: List[Tuple[str, int]] = [
    (_NB + r"(?:pass)?codes?" + _NA, 100),
    (_NB + r"(?:otp|pin|tan)" + _NA, 100),
    (_NB + r"(?:bestätigungs|sicherheits|verifizierungs|anmelde|zugangs|verificatie|bevestigings|verifierings)code",
     100),
    (_NB + r"c[óo]digo" + _NA, 100),
    (_NB + r"codice" + _NA, 100),
    (_NB + r"kod(?:u|em|y)?" + _NA, 100),
    (r"(?<![А-Яа-яЁё])код(?:а|ом)?(?![А-Яа-яЁё])", 100),
    (r"пароль", 100),
    (r"验证码|校验码|驗證碼|校驗碼|动态码|動態碼|确认码|確認碼|认证码|認證碼|动态密码|動態密碼", 100),
    (r"認証コード|確認コード|認証番号|確認番号|ワンタイムパスワード", 100),
    (r"인증\s?번호|인증\s?코드|확인\s?코드|확인\s?번호|보안\s?코드", 100),
    (_NB + r"verif(?:y|ication|ies|ying|ied)" + _NA, 70),
    (_NB + r"confirm(?:ation)?" + _NA, 70),
    (_NB + r"one[- ]?time" + _NA, 70),
    (_NB + r"(?:2fa|mfa|two[- ](?:factor|step))" + _NA, 70),
    (_NB + r"authenticat(?:e|ion|or)" + _NA, 70),
    (r"vérification|verificación|verificação|verifica" + _NA, 70),
    (r"подтвержд", 70),
]
_KEYWORD_RE = [(re.compile(p, re.IGNORECASE), w) for p, w in _KEYWORDS]

# A "code" right after one of these is not a one-time code.
_NOT_A_LABEL_RE = re.compile(
    r"(?:promo(?:tion(?:al)?)?|coupon|discount|referral|invite|invitation|gift|voucher|zip|postal|post|area|country|"
    r"tracking|source|error|status|qr|bar|dress|swift|sort|tax|product|item|order|booking|reservation|flight|"
    r"cupón|cupon|descuento|rabatt|gutschein|优惠|折扣|邀请)\s*-?\s*$",
    re.IGNORECASE)

# Candidates. Plain runs are not next to an ASCII letter or digit, nor part of "1.234", "12,345", "10:30", "50%".
_NUM_RE = re.compile(r"(?<![0-9A-Za-z])(?<![0-9][.,:])[0-9]{4,8}(?![0-9A-Za-z])(?![.,:][0-9])(?!\s?%)")
_GROUP_RE = re.compile(
    r"(?<![0-9A-Za-z])(?<![0-9][-/. ])(?:([0-9]{3})([- ])([0-9]{3})|([0-9]{4})([- ])([0-9]{4}))"
    r"(?![0-9A-Za-z])(?![-/. ][0-9])(?![.,:][0-9])")
_ALNUM_RE = re.compile(
    r"(?<![0-9A-Za-z])(?<![0-9A-Za-z][.-])(?=[A-Za-z]*[0-9])(?=[0-9]*[A-Za-z])[A-Za-z0-9]{4,12}"
    r"(?![0-9A-Za-z])(?![.-][0-9A-Za-z])")
_AGROUP_RE = re.compile(
    r"(?<![0-9A-Za-z])(?<![0-9A-Za-z][.-])(?:([A-Z0-9]{3})-([A-Z0-9]{3})|([A-Z0-9]{4})-([A-Z0-9]{4}))"
    r"(?![0-9A-Za-z])(?![.-][0-9A-Za-z])")

_UNIT_RE = re.compile(
    r"[0-9]+(?:st|nd|rd|th|am|pm|[smhdkxpbg]|ms|kb|mb|gb|tb|px|fps|hz|khz|mhz|ghz|min|mins|hr|hrs|sec|secs|"
    r"kbps|mbps|gbps|kg|km|cm|mm|mph|kmh)", re.IGNORECASE)
_USERNAME_RE = re.compile(r"[a-z]{3,}[0-9]+")
_YEAR_RE = re.compile(r"(?:19|20)[0-9]{2}")
_YMD_RE = re.compile(r"(?:19|20)[0-9]{2}(?:0[1-9]|1[0-2])(?:0[1-9]|[12][0-9]|3[01])")

_CURRENCY_BEFORE_RE = re.compile(r"(?:[$€£¥₹₽₩]|usd|eur|gbp|rmb|cny|jpy|chf|inr|us\$|rs\.?)\s?$", re.IGNORECASE)
_CURRENCY_AFTER_RE = re.compile(
    r"^\s?(?:[$€£¥₹₽₩元円원]|usd|eur|gbp|rmb|cny|jpy|chf|inr|руб|dollars?|euros?|yuan|yen)", re.IGNORECASE)
_PHONE_BEFORE_RE = re.compile(r"\+[0-9 ()-]{0,6}$")
_GROUP_BEFORE_RE = re.compile(r"[0-9]\)?[-/ ]\(?$")
_GROUP_AFTER_RE = re.compile(r"^\)?[-/ ]\(?[0-9]")
_HASH_BEFORE_RE = re.compile(r"(?:#|№|no\.)\s?$", re.IGNORECASE)
_DURATION_AFTER_RE = re.compile(
    r"^\s?(?:minutes?|mins?|seconds?|secs?|hours?|hrs?|days?|分钟|分鐘|分|秒|小时|小時|時間|분|초|минут|секунд|час)",
    re.IGNORECASE)
_ANTI_RE = re.compile(
    r"(?<![A-Za-z])(?:order|invoice|ticket|ref|reference|account|acct|tracking|booking|reservation|customer|member|"
    r"id|tel|phone|call|fax|mobile|ending in|ends in|room|suite|apt|box|version|build|"
    r"订单|单号|电话|手机|尾号|账户|账号|卡号)(?![A-Za-z])",
    re.IGNORECASE)


class _Token:
    __slots__ = ("start", "end", "code", "kind", "spaced")

    def __init__(self, start: int, end: int, code: str, kind: str, spaced: bool = False):
        self.start = start
        self.end = end
        self.code = code
        self.kind = kind      # "num", "group", "alnum"
        self.spaced = spaced  # a group joined by a space


def _nonspace(s: str) -> int:
    return len(s) - sum(1 for c in s if c.isspace())


def _keywords(text: str) -> List[Tuple[int, int, int]]:
    found = []
    for rx, weight in _KEYWORD_RE:
        for m in rx.finditer(text):
            if weight == 100 and m.group(0).lower().startswith(("code", "pass")):
                if _NOT_A_LABEL_RE.search(text, max(0, m.start() - 24), m.start()):
                    continue
            found.append((m.start(), m.end(), weight))
    return found


def _tokens(text: str) -> List[_Token]:
    toks = []
    for m in _NUM_RE.finditer(text):
        toks.append(_Token(m.start(), m.end(), m.group(0), "num"))
    for m in _GROUP_RE.finditer(text):
        a, sep, b = (m.group(1), m.group(2), m.group(3)) if m.group(1) else (m.group(4), m.group(5), m.group(6))
        toks.append(_Token(m.start(), m.end(), a + b, "group", sep == " "))
    for m in _ALNUM_RE.finditer(text):
        if _UNIT_RE.fullmatch(m.group(0)) is None:
            toks.append(_Token(m.start(), m.end(), m.group(0), "alnum"))
    for m in _AGROUP_RE.finditer(text):
        a, b = (m.group(1), m.group(2)) if m.group(1) else (m.group(3), m.group(4))
        code = a + b
        if not code.isdigit():
            toks.append(_Token(m.start(), m.end(), code, "alnum"))
    toks.sort(key=lambda t: (t.start, -t.end))
    return toks


def _label(text: str, tok: _Token, toks: List[_Token], kws: List[Tuple[int, int, int]]) -> Tuple[int, int]:
    """Returns (label score, start of the nearest keyword before the token or -1)."""
    best, nearest_before = 0, -1
    for ks, ke, w in kws:
        if ke <= tok.start and tok.start - ke <= 400:
            dist = _nonspace(text[ke:tok.start])
            first = not any(ke <= o.start and o.end <= tok.start for o in toks)
            if dist <= 40:
                best = max(best, w - 2 * dist + (15 if first else 0))
                nearest_before = max(nearest_before, ke)
            elif first and dist <= 120:
                # "Your code is below — enter it in the browser window ...:\n\nKB7-9WZ"
                best = max(best, w - 40 - dist // 2)
        elif ks >= tok.end and ks - tok.end <= 120:
            dist = _nonspace(text[tok.end:ks])
            if dist <= 30:
                s = (w * 4) // 5 - 2 * dist
                if not any(tok.end <= o.start and o.end <= ks for o in toks):
                    s += 10
                best = max(best, s)
    return best, nearest_before


def _score(text: str, tok: _Token, toks: List[_Token], kws: List[Tuple[int, int, int]]) -> Optional[int]:
    code = tok.code
    label, nearest_kw = _label(text, tok, toks, kws)
    if tok.kind == "num" or tok.kind == "group":
        n = len(code)
        base = {6: 40, 8: 32, 5: 28, 7: 28}.get(n, 20)
        if tok.kind == "group":
            if tok.spaced and label <= 0:
                return None
            base -= 10
    else:
        if not any(c.islower() for c in code):
            letters = sum(1 for c in code if c.isalpha())
            digits = len(code) - letters
            base = 25 if len(code) >= 6 and letters >= 2 and digits >= 2 else 10
        elif label > 0:
            base = 0 if _USERNAME_RE.fullmatch(code) is None else -20
        else:
            return None
    score = base + label

    before = text[max(0, tok.start - 12):tok.start]
    after = text[tok.end:tok.end + 12]
    if tok.kind != "alnum":
        if len(code) == 4 and _YEAR_RE.fullmatch(code):
            score -= 60
        elif len(code) == 8 and (_YMD_RE.fullmatch(code) or (_YEAR_RE.fullmatch(code[:4])
                                                            and _YEAR_RE.fullmatch(code[4:]))):
            score -= 50
        if _CURRENCY_BEFORE_RE.search(before) or _CURRENCY_AFTER_RE.search(after):
            score -= 80
        if _PHONE_BEFORE_RE.search(before):
            score -= 80
        if tok.kind == "num" and (_GROUP_BEFORE_RE.search(before) or _GROUP_AFTER_RE.search(after)):
            score -= 70
        if _DURATION_AFTER_RE.search(after):
            score -= 50
    if _HASH_BEFORE_RE.search(before):
        score -= 40
    anti_end = -1
    for m in _ANTI_RE.finditer(text, max(0, tok.start - 24), tok.start):
        anti_end = m.end()
    if anti_end > nearest_kw and _nonspace(text[anti_end:tok.start]) <= 8:
        score -= 60
    return score


def _scan(text: Optional[str], bonus: int, scores: Dict[str, List[int]]) -> None:
    if not text:
        return
    text = text[:SCAN_MAX].translate(_FULLWIDTH)
    text = _MASK_RE.sub(lambda m: " " * len(m.group(0)), text)
    kws = _keywords(text)
    toks = _tokens(text)
    for tok in toks:
        if len(tok.code) > CODE_MAX:
            continue
        s = _score(text, tok, toks, kws)
        if s is not None:
            scores.setdefault(tok.code, []).append(s + bonus)


def _ranked(text: Optional[str], subject: Optional[str]) -> List[Tuple[str, int]]:
    scores: Dict[str, List[int]] = {}
    _scan(subject, 10, scores)
    _scan(text, 0, scores)
    ranked = []
    order = {code: i for i, code in enumerate(scores)}
    for code, ss in scores.items():
        ranked.append((code, max(ss) + 5 * min(len(ss) - 1, 2)))
    ranked.sort(key=lambda cs: (-cs[1], order[cs[0]]))
    return ranked


def extract_otp_candidates(text: Optional[str], subject: Optional[str] = None) -> List[str]:
    """Returns up to 8 codes found in subject (searched first) and text, best first; [] when there is none.

    Low-ranked candidates (years, prices, phone numbers, ...) are included after the likely ones.
    """
    return [code for code, _ in _ranked(text, subject)[:CANDIDATES_MAX]]


def extract_otp(text: Optional[str], subject: Optional[str] = None) -> Optional[str]:
    """Returns the one-time code a person would type from this mail or SMS, or None when there is none.

    The best candidate is the code only when it is labelled by a keyword or is a bare 6- or 8-digit number.
    """
    ranked = _ranked(text, subject)
    if ranked and ranked[0][1] >= OTP_THRESHOLD:
        return ranked[0][0]
    return None
