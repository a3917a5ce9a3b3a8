"""tests/test_otp.py — extract_otp / extract_otp_candidates on real-looking mails and SMS in several languages."""

import unittest

from corral import extract_otp, extract_otp_candidates

GITHUB_DEVICE = """Hey octocat!

A sign in attempt requires further verification because we did not recognize your device. To complete the sign in,
enter the verification code on the unrecognized device.

Device: Chrome on macOS
Verification code: 318204

If you did not attempt to sign in to your account, your password may be compromised. Visit
https://github.com/settings/security to create a new, strong password for your GitHub account.

Thanks,
The GitHub Team

GitHub, Inc. ・88 Colin P Kelly Jr Street ・San Francisco, CA 94107"""

GITHUB_LAUNCH = """Here is your GitHub launch code: 12345678

Continue signing up for GitHub by entering the code above.

Not able to enter the code? Paste the following link into your browser:
https://github.com/account_verifications/confirm/94a1c3e0-7c1f-4a9b-8d2e-123456789012

© 2024 GitHub, Inc."""

GOOGLE_RECOVERY = """Google
Verify your email

Google received a request to use ana@x.test as a recovery email for Google Account bob4821@gmail.com.

Use this code to finish setting up this recovery email:

483920

This code will expire in 24 hours.

If you don't recognize bob4821@gmail.com, you can safely ignore this email.

You received this email to let you know about important changes to your Google Account and services.
© 2024 Google LLC, 1600 Amphitheatre Parkway, Mountain View, CA 94043, USA"""

SLACK = """Confirm your email address

Your confirmation code is below — enter it in your open browser window and we'll help you get signed in.

KB7-9WZ

If you didn't request this email, there's nothing to worry about — you can safely ignore it.

Slack Technologies, LLC, 500 Howard Street, San Francisco, CA 94105"""

INSTAGRAM = """Hi ana,
Someone tried to sign up for an Instagram account with ana@x.test. If it was you, enter this confirmation code in
the app:

123456

from Meta
© Instagram. Meta Platforms, Inc., 1601 Willow Road, Menlo Park, CA 94025"""

STEAM = """Dear ana_example,

Here is the Steam Guard code you need to login to account ana_example:

F4KX9

This email was generated because of a login attempt from a web or mobile device located at 203.0.113.7 (DE)."""

X_TWITTER = """Confirm your email address

There's one quick step you need to complete before creating your X account. Let's make sure this is the right email
address for you — please confirm this is the right address to use for your new account.

Please enter this verification code to get started on X:

9g7xkmsd

Verification codes expire after two hours."""

BANK_CN = "【招商银行】您账户8812于05月01日支出人民币1280.00元，验证码：551203，请勿泄露。"


class TestExtractOtp(unittest.TestCase):
    def check(self, text, expected, subject=None):
        self.assertEqual(extract_otp(text, subject), expected, (subject, text))

    # ---- real-looking mails ----

    def test_github_device_verification(self):
        self.check(GITHUB_DEVICE, "318204", "[GitHub] Please verify your device")

    def test_github_launch_code_has_eight_digits_and_the_year_ranks_low(self):
        self.check(GITHUB_LAUNCH, "12345678", "🚀 Your GitHub launch code")
        cands = extract_otp_candidates(GITHUB_LAUNCH)
        self.assertEqual(cands[0], "12345678")
        self.assertLess(cands.index("12345678"), cands.index("2024"))
        self.assertNotIn("123456789012", cands)

    def test_google_recovery_mail_code_on_its_own_line(self):
        self.check(GOOGLE_RECOVERY, "483920", "Email verification code: 483920")
        self.check(GOOGLE_RECOVERY, "483920")
        cands = extract_otp_candidates(GOOGLE_RECOVERY)
        self.assertEqual(cands[0], "483920")
        self.assertEqual(cands[-1], "2024")  # the year comes last
        self.assertNotIn("4821", cands)  # digits in a mail address are not looked at

    def test_slack_grouped_alphanumeric_code_loses_its_dash(self):
        self.check(SLACK, "KB79WZ", "Slack confirmation code: KB7-9WZ")
        self.check(SLACK, "KB79WZ")

    def test_instagram_code_in_subject_and_body(self):
        self.check(INSTAGRAM, "123456", "123456 is your Instagram code")

    def test_steam_guard_short_alphanumeric_code(self):
        self.check(STEAM, "F4KX9", "Your Steam account: Access from new web or mobile device")

    def test_lowercase_alphanumeric_code_when_labelled(self):
        self.check(X_TWITTER, "9g7xkmsd", "Confirm your email address")

    # ---- SMS ----

    def test_google_sms_with_prefix(self):
        self.check("G-123456 is your Google verification code.", "123456")

    def test_code_after_the_number(self):
        self.check("A7K9QX is your login code", "A7K9QX")
        self.check("Enter 558201 to confirm your sign-in.", "558201")

    def test_apple_domain_bound_sms(self):
        self.check("Your Apple ID Code is: 123456. Don't share it with anyone.\n\n@apple.com #123456 %apple.com",
                   "123456")

    def test_whatsapp_grouped_digits_and_link(self):
        self.check("Your WhatsApp code: 123-456\nYou can also tap on this link to verify your phone: "
                   "v.whatsapp.com/123456\nDon't share this code with others", "123456")

    def test_short_labelled_codes(self):
        self.check("Your Uber code: 4821. Never share this code. Reply STOP ENDSTOP to unsubscribe.", "4821")
        self.check("Your Microsoft account security code is 4829.", "4829")
        self.check("Your PIN is 0042", "0042")

    def test_bank_otp_next_to_an_amount(self):
        self.check("Your OTP for transaction of INR 5,000.00 at AMAZON is 482019. Valid for 10 mins.", "482019")

    def test_one_time_passcode_with_a_duration(self):
        self.check("Your one-time passcode is 928371. It is valid for 600 seconds.", "928371")
        self.check("Your code 839201 expires in 1440 minutes", "839201")

    def test_username_with_digits_is_not_the_code(self):
        self.check("Your verification code for account john42 is 123456", "123456")

    # ---- other languages ----

    def test_chinese(self):
        self.check("验证码：123456请勿泄露", "123456")  # no word boundary around the digits
        self.check("验证码123456请勿泄露", "123456")
        self.check("【腾讯云】验证码：483920，5分钟内有效，请勿泄露。如非本人操作请忽略。", "483920")
        self.check("您的验证码是483920，有效期10分钟。客服电话4008123123", "483920")
        self.check("【支付宝】校验码 739102，你正在使用支付宝，需要进行校验，切勿告诉他人。", "739102")
        self.check("【某银行】您的動態碼為：602211，請於5分鐘內輸入。", "602211")
        self.check(BANK_CN, "551203")
        self.assertEqual(extract_otp_candidates(BANK_CN)[0], "551203")

    def test_japanese_and_korean(self):
        self.check("認証コード：739201 このコードを他人に教えないでください。", "739201")
        self.check("[Web발신]\n[카카오] 인증번호 [482913]를 입력해주세요.", "482913")
        self.check("네이버 인증 코드는 604312 입니다.", "604312")

    def test_european_languages(self):
        self.check("Код подтверждения: 4821. Никому не сообщайте его.", "4821")
        self.check("Tu código de verificación es 602918", "602918")
        self.check("Seu código de verificação é 118209. Não compartilhe.", "118209")
        self.check("Ihr Bestätigungscode lautet 551203. Er ist 10 Minuten gültig.", "551203")
        self.check("Votre code de vérification est 889102.", "889102")
        self.check("Il tuo codice di verifica è 442019", "442019")
        self.check("Twój kod weryfikacyjny to 730021", "730021")

    def test_full_width_digits(self):
        self.check("Your code is １２３４５６", "123456")

    # ---- ranking ----

    def test_labelled_code_beats_an_earlier_bare_number(self):
        self.check("Order 88776655 confirmed. Your verification code is 402913.", "402913")
        self.check("Ref 20231115 logged at 10:30. Verification code: 402913", "402913")

    def test_alphanumeric_code_beats_a_later_order_number(self):
        self.check("Your code: A7K9QX. It expires in 15 minutes. Order 123456", "A7K9QX")

    def test_subject_comes_before_body(self):
        self.check("Use code 333444 to log in.", "111222", "Your code is 111222")
        self.assertEqual(extract_otp_candidates("Use code 333444 to log in.", "Your code is 111222"),
                         ["111222", "333444"])

    def test_promo_codes_are_not_labels(self):
        self.check("Use promo code SAVE20 for 20% off. Your verification code is 771204.", "771204")
        self.check("Use promo code SAVE20 at checkout", None)

    def test_bare_six_digit_number_is_a_code(self):
        self.check("123456", "123456")

    def test_years_prices_phones_dates_and_times_are_not_codes(self):
        text = "Your total is $1234 and your order number is 98765432. Call +1 415-555-0100 by 2024-05-01 10:30."
        self.check(text, None)
        cands = extract_otp_candidates(text)
        self.assertNotIn("415", cands)
        self.assertNotIn("1030", cands)
        self.check("Meeting at 1530 in room 4521", None)
        self.check("Your order 123456 has shipped", None)
        self.check("Amount: ¥12800元，卡尾号8812", None)
        self.check("Call us at +1 415-555-0100 or 1-800-555-0199", None)
        self.check("Your appointment on 05/01/2024 is confirmed. Total €1299,00.", None)
        self.check("Hi, version 2.4.1 is out. Build 20240501.", None)
        self.check("Card 4111 1111 1111 1111 expires 12/2027", None)
        self.check("© 2024 Example Inc. All rights reserved.", None)

    def test_digits_in_links_and_addresses_are_not_codes(self):
        self.check("Click https://example.com/verify?code=998877 to verify", None)
        self.check("Write to support123456@example.com", None)
        self.check("Your Microsoft account security code is 4829. Or use https://account.live.com/x?code=99887766",
                   "4829")

    def test_nothing_to_find(self):
        for text in (None, "", "Welcome to Example! Your account is ready.", "2FA is on", "Price 50%"):
            self.check(text, None)
            self.assertEqual(extract_otp_candidates(text), [])
        self.assertEqual(extract_otp_candidates(None, None), [])

    def test_candidates_are_bounded_and_best_first(self):
        text = "Your code is 918273. " + " ".join("%d" % (1000 + 7 * i) for i in range(40))
        cands = extract_otp_candidates(text)
        self.assertEqual(cands[0], "918273")
        self.assertEqual(len(cands), 8)
        self.assertEqual(len(set(cands)), 8)
        self.assertTrue(all(len(c) <= 16 for c in cands))

    def test_huge_input_is_cut_not_slow(self):
        text = "Verification code: 204816\n" + ("lorem ipsum 12 ab " * 200000)
        self.assertEqual(extract_otp(text), "204816")


if __name__ == "__main__":
    unittest.main()
