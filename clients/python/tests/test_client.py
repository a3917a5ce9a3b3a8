"""tests/test_client.py — CorralClient against the test double of corrald over a real unix socket and over TCP:
headers, URL encoding, long polls (and their splitting past 300 s), errors, secrets that never show in a repr."""

import os
import shutil
import socket
import tempfile
import threading
import time
import unittest
from datetime import datetime, timezone
from unittest import mock

from corral import (CorralClient, CorralError, CorralTimeout, Identity, Message, Secret, SecretInfo)

from .corrald_double import Double, FakeClock, State

TOKEN = "cst_" + "0123456789abcdef" * 3
SECRET_VALUE = "ghp_S3cr3tV4lu3-never-printed"


class _Base:
    """The tests; run once over a unix socket and once over TCP (see the two classes at the end)."""

    unix = True

    def start(self, token=TOKEN, bound="signup-bot"):
        self.state = State(token=token, bound=bound)
        self.bot = self.state.add_identity("signup-bot", phone="+15550100")
        self.other = self.state.add_identity("someone-else")
        path = os.path.join(self.tmp, "corrald.sock") if self.unix else None
        self.double = Double(self.state, path)
        self.addCleanup(self.double.close)

    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="corral-sdk-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.start()

    def client(self, identity_id="signup-bot", token=TOKEN, **kw):
        return CorralClient(identity_id=identity_id, url=self.double.url, token=token, **kw)

    def polls(self, tail):
        return [r for r in self.state.requests if r["path"].endswith(tail)]

    # ---- identity and headers ----

    def test_identity_fetched_once_with_bearer_token(self):
        c = self.client()
        self.assertEqual(c.email, "signup-bot@mail.example")
        self.assertEqual((c.id, c.name, c.phone), (self.bot["id"], "signup-bot", "+15550100"))
        self.assertEqual(c.identity, Identity(self.bot["id"], "signup-bot", "signup-bot@mail.example", "+15550100"))
        reqs = self.state.requests
        self.assertEqual(len(reqs), 1)
        self.assertEqual(reqs[0]["method"], "GET")
        self.assertEqual(reqs[0]["path"], "/v1/identities/signup-bot")
        self.assertEqual(reqs[0]["headers"]["Authorization"], "Bearer " + TOKEN)
        if self.unix:
            self.assertEqual(reqs[0]["host"], "corrald")
        self.assertNotIn(TOKEN, repr(c))

    def test_environment_gives_url_token_and_identity(self):
        env = {"CORRAL_URL": self.double.url, "CORRAL_TOKEN": TOKEN, "CORRAL_IDENTITY": "signup-bot"}
        with mock.patch.dict(os.environ, env):
            c = CorralClient()
            self.assertEqual(c.url, self.double.url)
            self.assertEqual(c.phone, "+15550100")

    def test_bound_identity_comes_from_whoami_when_none_is_named(self):
        with mock.patch.dict(os.environ, {"CORRAL_IDENTITY": ""}):
            c = self.client(identity_id=None)
            self.assertEqual(c.email, "signup-bot@mail.example")
        self.assertEqual([r["path"] for r in self.state.requests], ["/v1/whoami"])

    def test_wrong_token_is_unauthorized(self):
        c = self.client(token="cst_" + "f" * 48)
        with self.assertRaises(CorralError) as cm:
            c.email
        self.assertEqual((cm.exception.code, cm.exception.status), ("unauthorized", 401))

    def test_no_token_sends_no_authorization_header(self):
        self.double.close()
        self.start(token=None, bound=None)
        with mock.patch.dict(os.environ, {"CORRAL_TOKEN": ""}):
            c = self.client(token=None)
            self.assertEqual(c.email, "signup-bot@mail.example")
        self.assertNotIn("Authorization", self.state.requests[0]["headers"])

    def test_owner_without_identity_gets_a_clear_error(self):
        self.double.close()
        self.start(token=None, bound=None)
        with mock.patch.dict(os.environ, {"CORRAL_IDENTITY": "", "CORRAL_TOKEN": ""}):
            c = self.client(identity_id=None, token=None)
            with self.assertRaises(CorralError) as cm:
                c.email
        self.assertEqual((cm.exception.code, cm.exception.field), ("bad_request", "identity_id"))

    def test_unknown_identity_is_not_found_with_the_server_message(self):
        for ref in ("nobody", "someone-else"):  # another session's identity answers 404 too
            with self.assertRaises(CorralError) as cm:
                self.client(identity_id=ref).email
            e = cm.exception
            self.assertNotIsInstance(e, CorralTimeout)
            self.assertEqual((e.code, e.status, e.message), ("not_found", 404, "no identity " + ref))
            self.assertIn("not_found", str(e))

    def test_create_identity_returns_a_bound_client_and_conflict_names_the_field(self):
        self.double.close()
        self.start(token=None, bound=None)
        owner = self.client(identity_id=None, token="")
        bot = owner.create_identity("shopper", email="buyer")
        self.assertEqual((bot.name, bot.email, bot.phone), ("shopper", "buyer@mail.example", None))
        self.assertTrue(bot.id.startswith("idn_"))
        self.assertEqual(self.state.requests[-1]["method"], "POST")
        bot.secrets.set("K", "v")  # bound to the new identity, by id
        self.assertEqual(self.state.requests[-1]["path"], "/v1/identities/%s/secrets" % bot.id)
        with self.assertRaises(CorralError) as cm:
            owner.create_identity("shopper")
        self.assertEqual((cm.exception.code, cm.exception.status, cm.exception.field), ("conflict", 409, "name"))
        self.assertEqual([i.name for i in owner.identities()], ["signup-bot", "someone-else", "shopper"])

    # ---- inbox ----

    def test_wait_for_returns_a_waiting_message_with_every_field(self):
        self.state.deliver("signup-bot", kind="mail", **{"from": "GitHub <noreply@github.com>"},
                           subject="[GitHub] Please verify your device", text="Verification code: 318204",
                           links=["https://github.com/sessions/verified-device"], otp="318204",
                           otp_candidates=["318204", "2024"], flags=["truncated"])
        m = self.client().inbox.wait_for(subject_contains="verify", timeout=5)
        self.assertIsInstance(m, Message)
        self.assertTrue(m.id.startswith("msg_"))
        self.assertEqual((m.kind, m.from_, m.sender, m.to), ("mail", "GitHub <noreply@github.com>",
                                                            "GitHub <noreply@github.com>", "signup-bot@mail.example"))
        self.assertEqual((m.subject, m.text, m.otp), ("[GitHub] Please verify your device",
                                                      "Verification code: 318204", "318204"))
        self.assertEqual((m.links, m.otp_candidates, m.flags),
                         (["https://github.com/sessions/verified-device"], ["318204", "2024"], ["truncated"]))
        self.assertIsInstance(m.received, int)
        for hidden in ("318204", "verify", "Verification"):
            self.assertNotIn(hidden, repr(m))
        q = self.polls("/inbox")[0]["query"]
        self.assertEqual((q["subject_contains"], q["wait"]), ("verify", "5"))
        self.assertNotIn("since", q)

    def test_wait_for_long_polls_until_the_mail_arrives(self):
        c = self.client()
        timer = threading.Timer(0.4, self.state.deliver, ("signup-bot",),
                                {"subject": "Verify your email", "from": "Slack <no-reply@slack.com>",
                                 "otp": "KB79WZ"})
        timer.start()
        self.addCleanup(timer.cancel)
        t0 = time.monotonic()
        m = c.inbox.wait_for(subject_contains="VERIFY", from_contains="slack", timeout=10)
        self.assertGreaterEqual(time.monotonic() - t0, 0.35)
        self.assertEqual(m.otp, "KB79WZ")
        self.assertEqual(len(self.polls("/inbox")), 1)

    def test_wait_for_raises_corral_timeout_after_the_timeout(self):
        self.state.deliver("signup-bot", subject="Welcome")
        c = self.client()
        t0 = time.monotonic()
        with self.assertRaises(TimeoutError) as cm:
            c.inbox.wait_for(subject_contains="verify", timeout=1)
        took = time.monotonic() - t0
        self.assertTrue(0.9 <= took < 5, took)
        e = cm.exception
        self.assertIsInstance(e, CorralTimeout)
        self.assertIsInstance(e, CorralError)
        self.assertEqual((e.code, e.status), ("timeout", 408))
        self.assertEqual([p["query"]["wait"] for p in self.polls("/inbox")], ["1"])

    def test_a_server_answering_408_at_once_does_not_make_it_spin(self):
        self.state.instant_timeout = True
        t0 = time.monotonic()
        with self.assertRaises(CorralTimeout):
            self.client().inbox.wait_for(timeout=2)
        self.assertGreaterEqual(time.monotonic() - t0, 1.9)
        self.assertLessEqual(len(self.polls("/inbox")), 3)

    def test_timeout_zero_asks_once_without_waiting(self):
        with self.assertRaises(CorralTimeout):
            self.client().inbox.wait_for(timeout=0)
        self.assertEqual([p["query"]["wait"] for p in self.polls("/inbox")], ["0"])

    def test_long_waits_are_split_into_polls_of_at_most_300_s(self):
        clock = FakeClock()
        self.state.clock = clock
        c = self.client()
        c._monotonic = clock
        c._sleep = lambda s: self.fail("slept %r" % s)
        with self.assertRaises(CorralTimeout) as cm:
            c.inbox.wait_for(subject_contains="verify", timeout=700)
        self.assertEqual([p["query"]["wait"] for p in self.polls("/inbox")], ["300", "300", "100"])
        self.assertIn("700 s", cm.exception.message)
        self.assertEqual(clock.now, 1700.0)

    def test_a_split_wait_returns_the_mail_from_a_later_poll(self):
        clock = FakeClock()
        self.state.clock = clock
        self.state.scheduled.append((clock.now + 450, "signup-bot", {"subject": "Verify", "otp": "771204"}))
        c = self.client()
        c._monotonic = clock
        self.assertEqual(c.otp(timeout=900, subject_contains="verify"), "771204")
        self.assertEqual([p["query"]["wait"] for p in self.polls("/otp")], ["300", "300"])

    def test_query_values_are_percent_encoded(self):
        subject = "Verify & confirm+100% ü/?#=x"
        since = datetime(2024, 5, 1, 12, 0, tzinfo=timezone.utc)
        with self.assertRaises(CorralTimeout):
            self.client().inbox.wait_for(subject_contains=subject, from_contains="a b", since=since, timeout=0)
        p = self.polls("/inbox")[0]
        for c in " +&#ü":
            self.assertEqual(p["raw_query"].count(c), 0 if c != "&" else 3, c)
        self.assertIn("subject_contains=Verify%20%26%20confirm%2B100%25%20%C3%BC%2F%3F%23%3Dx", p["raw_query"])
        self.assertEqual(p["query"]["subject_contains"], subject)
        self.assertEqual(p["query"]["from_contains"], "a b")
        self.assertEqual(p["query"]["since"], "1714564800000")

    def test_since_a_message_gives_the_next_one(self):
        first = self.state.deliver("signup-bot", subject="Verify 1", otp="111111")
        self.state.deliver("signup-bot", subject="Verify 2", otp="222222")
        c = self.client()
        m1 = c.inbox.wait_for(subject_contains="verify", timeout=0)
        self.assertEqual(m1.id, first["id"])
        m2 = c.inbox.wait_for(since=m1, timeout=0)
        self.assertEqual(m2.otp, "222222")
        self.assertEqual(self.polls("/inbox")[1]["query"]["since"], m1.id)
        with self.assertRaises(ValueError):
            c.inbox.wait_for(since=time.time(), timeout=0)  # seconds, not ms

    def test_list_is_newest_first_and_otp_gives_the_code(self):
        for i in range(3):
            self.state.deliver("signup-bot", subject="n%d" % i, otp=None if i else "483920")
        c = self.client()
        self.assertEqual([m.subject for m in c.inbox.list(limit=2)], ["n2", "n1"])
        self.assertEqual(self.polls("/inbox/list")[0]["query"], {"limit": "2"})
        self.assertEqual(c.otp(timeout=0), "483920")
        with self.assertRaises(CorralTimeout):
            c.otp(timeout=0)  # that code was given already

    # ---- secrets ----

    def test_secrets_round_trip_without_showing_values(self):
        c = self.client()
        self.assertEqual(c.secrets.set("GITHUB_TOKEN", "old-value"), 1)
        self.assertEqual(c.secrets.set("GITHUB_TOKEN", SECRET_VALUE, inject=True), 2)
        s = c.secrets.get("GITHUB_TOKEN")
        self.assertIsInstance(s, Secret)
        self.assertEqual(s, SECRET_VALUE)
        self.assertEqual((s.key, s.version, s.value), ("GITHUB_TOKEN", 2, SECRET_VALUE))
        self.assertEqual(c.secrets.get("GITHUB_TOKEN", version=1), "old-value")
        self.assertEqual(self.polls("/secrets/GITHUB_TOKEN")[-1]["query"], {"version": "1"})
        listed = c.secrets.list()
        self.assertEqual([(i.key, i.version, i.inject) for i in listed], [("GITHUB_TOKEN", 2, True)])
        self.assertIsInstance(listed[0], SecretInfo)
        for shown in (repr(s), repr([s]), repr({"t": s}), repr(listed), repr(c.secrets), "%r" % (s,)):
            self.assertNotIn(SECRET_VALUE, shown)
            self.assertNotIn("old-value", shown)
        c.secrets.delete("GITHUB_TOKEN")
        self.assertEqual(self.state.requests[-1]["method"], "DELETE")
        with self.assertRaises(CorralError) as cm:
            c.secrets.get("GITHUB_TOKEN")
        self.assertEqual((cm.exception.code, cm.exception.status), ("not_found", 404))
        with self.assertRaises(CorralError):
            c.secrets.delete("GITHUB_TOKEN")

    def test_secret_keys_are_one_path_segment(self):
        c = self.client()
        c.secrets.set("a/b c?", "v")
        self.assertEqual(c.secrets.get("a/b c?"), "v")
        self.assertEqual(self.state.requests[-1]["path"], "/v1/identities/signup-bot/secrets/a%2Fb%20c%3F")

    def test_a_failing_write_does_not_show_the_value(self):
        with self.assertRaises(CorralError) as cm:
            self.client(identity_id="nobody").secrets.set("K", SECRET_VALUE)
        e = cm.exception
        self.assertEqual(e.code, "not_found")
        for shown in (str(e), repr(e), repr(e.args)):
            self.assertNotIn(SECRET_VALUE, shown)

    # ---- corrald unreachable ----

    def test_unreachable_corrald_is_unavailable(self):
        if self.unix:
            url = "unix:" + os.path.join(self.tmp, "no-such.sock")
        else:
            s = socket.socket()
            s.bind(("127.0.0.1", 0))
            url = "http://127.0.0.1:%d" % s.getsockname()[1]
            s.close()
        with self.assertRaises(CorralError) as cm:
            CorralClient(identity_id="x", url=url, token=TOKEN).email
        self.assertEqual((cm.exception.code, cm.exception.status), ("unavailable", None))
        self.assertIn(url, cm.exception.message)


class TestOverUnixSocket(_Base, unittest.TestCase):
    unix = True


class TestOverTCP(_Base, unittest.TestCase):
    unix = False


class TestConfiguration(unittest.TestCase):
    def test_bad_urls_and_tokens_are_refused_before_any_request(self):
        for url in ("ftp://x", "unix:", "127.0.0.1:8080", "http://127.0.0.1:99999"):
            with self.assertRaises(CorralError) as cm:
                CorralClient(identity_id="x", url=url, token=TOKEN)
            self.assertEqual((cm.exception.code, cm.exception.field), ("bad_request", "url"), url)
        with self.assertRaises(CorralError) as cm:
            CorralClient(identity_id="x", url="unix:/s", token="cst_abc\r\nX-Evil: 1")
        self.assertEqual(cm.exception.field, "token")
        self.assertNotIn("X-Evil", str(cm.exception))

    def test_default_url_is_the_cli_socket(self):
        with mock.patch.dict(os.environ, {"CORRAL_URL": "", "CORRAL_HOME": "/srv/corral"}):
            self.assertEqual(CorralClient(identity_id="x").url, "unix:/srv/corral/corrald.sock")
        with mock.patch.dict(os.environ, {"CORRAL_URL": "", "CORRAL_HOME": "", "HOME": "/home/ana"}):
            self.assertEqual(CorralClient(identity_id="x").url, "unix:/home/ana/.local/state/corral/corrald.sock")

    def test_errors_pickle_and_read_well(self):
        import pickle
        e = pickle.loads(pickle.dumps(CorralError("conflict", "name taken", 409, "name")))
        self.assertEqual((e.code, e.message, e.status, e.field), ("conflict", "name taken", 409, "name"))
        self.assertEqual(str(e), "conflict: name taken (field name) [HTTP 409]")
        t = pickle.loads(pickle.dumps(CorralTimeout("no matching message within 5 s")))
        self.assertIsInstance(t, TimeoutError)
        self.assertEqual((t.code, t.status), ("timeout", 408))


if __name__ == "__main__":
    unittest.main()
