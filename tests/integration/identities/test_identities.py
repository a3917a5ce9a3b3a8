#!/usr/bin/env python3
"""test_identities.py — issue 6 end to end with real processes: redis-server, corral-relay (its SMTP listener and
webhooks), corrald on a real git repository, two agent sessions bound to two identities, a small sign-up service that
mails codes over SMTP (smtplib, a real SMTP client) and texts them through the Twilio webhook (signed as Twilio
signs), and the Python SDK inside the agents. Then: suspend, restart corrald (relay down), resume — the earlier mail
is still in the inbox; Redis holds no plaintext secret or mail (a canary scan of every key); no log holds a secret;
and each kind of bad input gets its clear answer. Run by ctest (integration_identities) with CORRAL_BINARY_DIR set."""
import base64
import hashlib
import hmac
import json
import os
import random
import shutil
import smtplib
import ssl
import tempfile
import subprocess
import sys
import threading
import unittest
import urllib.parse
from email.message import EmailMessage
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from stack import SRC, Stack, http, stop, wait_until  # noqa: E402

BIN = os.path.join(os.environ.get("CORRAL_BINARY_DIR", os.path.join(SRC, "build")), "bin")
DOMAIN = "agents.test"
TWILIO_TOKEN = "twilio-test-token-0123456789abcdef"
INBOUND_SECRET = "inbound-secret-for-the-test"
NUMBERS = ["+15550100", "+15550101", "+15550102"]
CANARY_SECRET = "CANARY-SECRET-%08x" % random.getrandbits(32)
CANARY_MAIL = "CANARY-MAIL-%08x" % random.getrandbits(32)
MAX_SIZE = 300000


def twilio_signature(url, params, token=TWILIO_TOKEN):
    s = url + "".join(k + params[k] for k in sorted(params))
    return base64.b64encode(hmac.new(token.encode(), s.encode(), hashlib.sha1).digest()).decode()


class Service:
    """The sign-up service an agent registers with: it mails (SMTP) or texts (the Twilio webhook) a code to the
    address or number it was given, and checks the code it gets back."""

    def __init__(self, smtp_port, relay_url):
        self.codes, self.verified, self.lock = {}, {}, threading.Lock()
        self.smtp_port, self.relay_url = smtp_port, relay_url
        svc = self

        class H(BaseHTTPRequestHandler):
            def log_message(self, *a):
                pass

            def do_POST(self):
                doc = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
                code = "%06d" % random.randint(100000, 999999)
                out = {"ok": True}
                if self.path == "/signup":
                    with svc.lock:
                        svc.codes[doc["email"]] = code
                    svc.mail(doc["email"], code)
                elif self.path == "/signup_sms":
                    with svc.lock:
                        svc.codes[doc["phone"]] = code
                    svc.text(doc["phone"], code)
                elif self.path == "/verify":
                    with svc.lock:
                        ok = svc.codes.get(doc["who"]) == doc["code"]
                        svc.verified[doc["who"]] = ok
                    out = {"ok": ok}
                b = json.dumps(out).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(b)))
                self.end_headers()
                self.wfile.write(b)

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), H)
        self.url = "http://127.0.0.1:%d" % self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def mail(self, to, code):
        m = EmailMessage()
        m["From"] = "Acme <no-reply@acme.example>"
        m["To"] = to
        m["Subject"] = "Your Acme verification code"
        m.set_content("Welcome to Acme!\n\nYour verification code is %s. It expires in 10 minutes.\n\n"
                      "Or open https://acme.example/verify?token=%s\n" % (code, code))
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=10) as s:
            s.send_message(m)

    def text(self, number, code):
        url = self.relay_url + "/v1/inbound/sms/twilio"
        params = {"From": "+15005550006", "To": number, "Body": "Your Acme code is %s" % code, "MessageSid": "SM" + code}
        status, body = http("POST", url, urllib.parse.urlencode(params).encode(),
                            {"Content-Type": "application/x-www-form-urlencoded",
                             "X-Twilio-Signature": twilio_signature(url, params)})
        assert status == 200, (status, body)


class Identities(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        certdir = tempfile.mkdtemp(prefix="cr-idn-cert-")
        cls.certdir = certdir
        subprocess.check_call(["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
                               "-days", "2", "-subj", "/CN=" + DOMAIN, "-keyout", os.path.join(certdir, "key.pem"),
                               "-out", os.path.join(certdir, "cert.pem")], stdout=subprocess.DEVNULL,
                              stderr=subprocess.DEVNULL)
        cls.st = Stack(BIN, DOMAIN, {
            "CORRAL_HTTP_TLS_CERT": os.path.join(certdir, "cert.pem"), "CORRAL_HTTP_TLS_KEY": os.path.join(certdir, "key.pem"),
            "CORRAL_LOG_LEVEL": "debug", "CORRAL_MAIL_MAX_SIZE": str(MAX_SIZE),
            "CORRAL_MAIL_INBOUND_SECRET": INBOUND_SECRET, "CORRAL_SMS_NUMBERS": ",".join(NUMBERS),
            "CORRAL_SMS_TWILIO_AUTH_TOKEN": TWILIO_TOKEN})
        st = cls.st
        st.relay_env["CORRAL_SMS_TWILIO_URL"] = st.relay_url + "/v1/inbound/sms/twilio"
        stop(st.relay)  # again, now that the webhook's URL is known
        st.start_relay()
        cls.tmp, cls.redis_sock, cls.relay_url, cls.smtp_port = st.tmp, st.redis_sock, st.relay_url, st.smtp_port
        cls.relay_log, cls.host_log, cls.repo, cls.home = st.relay_log, st.host_log, st.repo, st.home
        cls.admin, cls.host_env = st.admin, st.host_env
        cls.service = Service(cls.smtp_port, cls.relay_url)

    @classmethod
    def tearDownClass(cls):
        cls.service.httpd.shutdown()
        cls.service.httpd.server_close()
        tmp = cls.st.close(keep=bool(os.environ.get("CORRAL_KEEP_TMP")))
        shutil.rmtree(cls.certdir, ignore_errors=True)
        if os.environ.get("CORRAL_KEEP_TMP"):
            print("kept", tmp, file=sys.stderr)

    def corral(self, *args, input=None, check=True):
        r = subprocess.run([os.path.join(BIN, "corral")] + list(args), env=self.host_env, cwd=self.repo, input=input,
                           capture_output=True, text=True, timeout=120)
        if check and r.returncode != 0:
            self.fail("corral %s -> %d\nstdout: %s\nstderr: %s\ncorrald log:\n%s" % (
                " ".join(args), r.returncode, r.stdout, r.stderr, self.tail(self.host_log)))
        return r

    tail = staticmethod(Stack.tail)

    def find_worktree(self, name):
        # the worktree's place is corrald's choice: ask git
        out = subprocess.check_output(["git", "-C", self.repo, "worktree", "list", "--porcelain"], text=True)
        for line in out.splitlines():
            if line.startswith("worktree ") and line.rstrip().endswith("/" + name):
                return line[len("worktree "):]
        self.fail("no worktree for session %s in:\n%s" % (name, out))

    # ---- the tests (run in name order) ----------------------------------------------------------------------------

    def test_1_seed_loop_two_identities(self):
        a = json.loads(self.corral("identity", "create", "alice-bot", "--json").stdout)
        b = json.loads(self.corral("identity", "create", "bob-bot", "--json").stdout)
        self.assertEqual(a["email"], "alice-bot@" + DOMAIN)
        self.assertEqual(b["email"], "bob-bot@" + DOMAIN)
        self.assertIn(a["phone"], NUMBERS)
        self.assertIn(b["phone"], NUMBERS)
        self.assertNotEqual(a["phone"], b["phone"])
        # the same name again: a conflict, and the first one is untouched
        r = self.corral("identity", "create", "alice-bot", check=False)
        self.assertEqual(r.returncode, 4, r.stderr)
        ls = self.corral("identity", "ls").stdout
        self.assertIn("alice-bot@" + DOMAIN, ls)
        agent = os.path.join(SRC, "tests", "integration", "identities", "signup_agent.py")
        self.corral("new", "sign up at acme by mail", "--name", "s-alice", "--agent", "shell", "--identity", "alice-bot",
                    "--cmd", "python3 -u %s %s mail bob-bot" % (agent, self.service.url))
        self.corral("new", "sign up at acme by mail", "--name", "s-bob", "--agent", "shell", "--identity", "bob-bot",
                    "--cmd", "python3 -u %s %s mail" % (agent, self.service.url))
        wait_until(lambda: len(self.service.verified) >= 2, 60,
                   "both agents to verify; corrald log:\n" + self.tail(self.host_log))
        self.assertEqual(self.service.verified, {a["email"]: True, b["email"]: True})
        for name, who in (("s-alice", a), ("s-bob", b)):
            wt = self.find_worktree(name)
            rec = json.load(open(os.path.join(wt, "signed-up.json")))
            self.assertEqual(rec["who"], who["email"])
            self.assertEqual(rec["code"], self.service.codes[who["email"]])  # its own code, never the other's
        # alice's agent tried to reach bob's identity with its session token: 404, as if it did not exist
        self.assertEqual(open(os.path.join(self.find_worktree("s-alice"), "cross.txt")).read(), "404 not_found")
        type(self).alice, type(self).bob = a, b

    def test_1b_phone_sees_sealed_inbox_message(self):
        """The session bound to alice-bot gets an inbox.message event whose body is sealed with the team key: the relay
        (and so Redis) holds neither sender nor subject in plaintext, and a phone with K opens it."""
        sys.path.insert(0, os.path.join(SRC, "proto", "vectors"))
        import make_vectors as mv  # an independent pure-Python XChaCha20-Poly1305
        sid = [x for x in json.loads(self.corral("ls", "--json").stdout)["sessions"] if x["name"] == "s-alice"][0]["sid"]
        team = open(os.path.join(self.home, "team.name")).read().strip()
        key = open(os.path.join(self.home, "team.key"), "rb").read()

        def sealed_event():
            st, body = http("GET", "%s/v1/sessions/%s/events?limit=1000" % (self.relay_url, sid), token=self.admin)
            self.assertEqual(st, 200, body)
            evs = [e["e"] for e in json.loads(body)["events"] if e["e"]["k"] == "inbox.message"]
            return evs[0] if evs else None
        ev = wait_until(sealed_event, 15, "the inbox.message event on the relay")
        self.assertEqual(ev["idn"], "alice-bot")
        box = base64.b64decode(ev["b"]["$bin"])
        self.assertEqual(box[0], 1)
        plain = mv.xchacha20poly1305_decrypt(key, box[1:25], box[25:], mv.ad_event(team, sid, ev["seq"], "inbox.message"))
        self.assertIn(b"Your Acme verification code", plain)
        self.assertIn(b"email", plain)
        self.assertNotIn(b"Acme verification", json.dumps(ev).encode())

    def test_2_sms_through_twilio(self):
        agent = os.path.join(SRC, "tests", "integration", "identities", "signup_agent.py")
        self.corral("identity", "create", "carol-bot")
        carol = json.loads(self.corral("identity", "show", "carol-bot", "--json").stdout)
        self.assertIn(carol["phone"], NUMBERS)
        self.corral("new", "sign up at acme by sms", "--name", "s-carol", "--agent", "shell", "--identity", "carol-bot",
                    "--cmd", "python3 -u %s %s sms" % (agent, self.service.url))
        wait_until(lambda: carol["phone"] in self.service.verified, 60,
                   "the SMS agent to verify; corrald log:\n" + self.tail(self.host_log))
        self.assertTrue(self.service.verified[carol["phone"]])
        # a bad signature: 403, and nothing is stored
        url = self.relay_url + "/v1/inbound/sms/twilio"
        params = {"From": "+15005550006", "To": carol["phone"], "Body": "Your code is 111111"}
        st, body = http("POST", url, urllib.parse.urlencode(params).encode(),
                        {"Content-Type": "application/x-www-form-urlencoded",
                         "X-Twilio-Signature": twilio_signature(url, params, "wrong-token")})
        self.assertEqual(st, 403)
        self.assertEqual(json.loads(body)["error"]["code"], "forbidden")
        out = json.loads(self.corral("inbox", "--list", "--identity", "carol-bot", "--json").stdout)
        self.assertEqual([m["text"] for m in out["messages"] if "111111" in m["text"]], [])

    def test_3_secrets_and_canary(self):
        r = self.corral("secret", "set", "ACME_PASSWORD", "--identity", "alice-bot", "--inject", input=CANARY_SECRET + "\n")
        self.assertIn("ACME_PASSWORD v1", r.stdout)
        self.corral("secret", "set", "ACME_PASSWORD", "--identity", "alice-bot", "--inject", input=CANARY_SECRET + "-2\n")
        self.assertEqual(self.corral("secret", "get", "ACME_PASSWORD", "--identity", "alice-bot").stdout.strip(),
                         CANARY_SECRET + "-2")
        self.assertEqual(self.corral("secret", "get", "ACME_PASSWORD", "--identity", "alice-bot", "--version", "1")
                         .stdout.strip(), CANARY_SECRET)
        ls = self.corral("secret", "ls", "--identity", "alice-bot").stdout
        self.assertIn("ACME_PASSWORD  v2  inject", ls)
        self.assertNotIn(CANARY_SECRET, ls)
        # corral run: injected as an environment variable, masked in the output
        r = self.corral("run", "--identity", "alice-bot", "--", "sh", "-c", 'echo "pw=$ACME_PASSWORD"; test -n "$ACME_PASSWORD"')
        self.assertEqual(r.stdout.strip(), "pw=****")
        # a session of alice-bot gets the injected secret in its environment; what it prints of it is masked in events
        self.corral("new", "use the password", "--name", "s-inject", "--agent", "shell", "--identity", "alice-bot",
                    "--cmd", "sh -c 'echo \"$CORRAL_IDENTITY $CORRAL_EMAIL $CORRAL_PHONE\" > who.txt; "
                    "printf %s \"$ACME_PASSWORD\" | sha256sum > pw.sha; echo \"pw=$ACME_PASSWORD\"; sleep 60'")
        wt = self.find_worktree("s-inject")
        got = wait_until(lambda: os.path.exists(os.path.join(wt, "pw.sha")) and open(os.path.join(wt, "pw.sha")).read(), 20,
                         "the agent's pw.sha")
        self.assertEqual(got.split()[0], hashlib.sha256((CANARY_SECRET + "-2").encode()).hexdigest())
        self.assertEqual(open(os.path.join(wt, "who.txt")).read().split(),
                         ["alice-bot", "alice-bot@" + DOMAIN, self.alice["phone"]])
        log = wait_until(lambda: ("pw=" in self.corral("log", "s-inject").stdout) and self.corral("log", "s-inject").stdout,
                         20, "the agent's output in its log")
        self.assertIn("pw=" + "*" * len(CANARY_SECRET + "-2"), log)
        self.assertNotIn(CANARY_SECRET, log)
        act = open(os.path.join(self.repo, ".corral", "activity.csv")).read()
        self.assertIn("secret.inject", act)
        self.assertIn("keyed-blake2b:", act)
        self.corral("suspend", "s-inject")
        # bob cannot read alice's vault: no such key there
        r = self.corral("secret", "get", "ACME_PASSWORD", "--identity", "bob-bot", check=False)
        self.assertEqual(r.returncode, 3, r.stderr)
        # a mail with a canary body
        m = EmailMessage()
        m["From"] = "ops@acme.example"
        m["To"] = "alice-bot@" + DOMAIN
        m["Subject"] = "internal note"
        m.set_content("the canary is " + CANARY_MAIL)
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=10) as s:
            s.ehlo()
            self.assertTrue(s.has_extn("starttls"), "the relay offers STARTTLS with its certificate")
            ctx = ssl.create_default_context(cafile=os.path.join(self.certdir, "cert.pem"))
            ctx.check_hostname = False
            s.starttls(context=ctx)
            s.send_message(m)
        msg = json.loads(self.corral("inbox", "--identity", "alice-bot", "--subject", "internal", "--wait", "10",
                                     "--json").stdout)["message"]
        self.assertIn(CANARY_MAIL, msg["text"])
        # scan every key of Redis: no plaintext secret, no plaintext mail body
        cli = ["redis-cli", "-s", self.redis_sock]
        keys = subprocess.check_output(cli + ["--scan"], text=True).split()
        self.assertTrue(any(k.startswith("cr:{") and ":inbox:alice-bot" in k for k in keys), keys)
        self.assertTrue(any(":vault:alice-bot" in k for k in keys), keys)
        reads = {"string": ["GET"], "hash": ["HGETALL"], "stream": ["XRANGE", "-", "+"], "set": ["SMEMBERS"],
                 "zset": ["ZRANGE", "0", "-1", "WITHSCORES"], "list": ["LRANGE", "0", "-1"]}
        for k in keys:
            kind = subprocess.check_output(cli + ["TYPE", k], text=True).strip()
            self.assertIn(kind, reads, k)
            cmd = reads[kind]
            dump = subprocess.check_output(cli + ["--no-raw", cmd[0], k] + cmd[1:])
            for canary in (CANARY_SECRET, CANARY_MAIL):
                self.assertNotIn(canary.encode(), dump, "key %s holds %s" % (k, canary))
                for enc in (base64.b64encode(canary.encode()), base64.urlsafe_b64encode(canary.encode()).rstrip(b"=")):
                    self.assertNotIn(enc[:16], dump, "key %s holds %s encoded" % (k, canary))
        # no log holds the secret
        for log in (self.relay_log, self.host_log):
            self.assertNotIn(CANARY_SECRET, open(log, errors="replace").read(), log)
        # nor any event or file of the sessions
        for root, _, files in os.walk(os.path.join(self.repo, ".corral")):
            for f in files:
                p = os.path.join(root, f)
                if os.path.isfile(p):
                    self.assertNotIn(CANARY_SECRET.encode(), open(p, "rb").read(), p)
        # the audit trail (admin token): writes and reads of the secret, named by key, never by value
        st, body = http("GET", self.relay_url + "/v1/audit?limit=1000", token=self.admin)
        self.assertEqual(st, 200, body)
        recs = json.loads(body)["records"]
        ops = [(r["op"], r["idn"], r["key"]) for r in recs]
        self.assertIn(("identity.create", "alice-bot", ""), ops)
        self.assertIn(("secret.write", "alice-bot", "ACME_PASSWORD"), ops)
        self.assertIn(("secret.read", "alice-bot", "ACME_PASSWORD"), ops)
        self.assertTrue(any(o == "inbox.read" and i == "alice-bot" for o, i, _ in ops), ops)
        self.assertTrue(any(o == "secret.inject" and k.startswith("ACME_PASSWORD:v2:keyed-blake2b:") for o, _, k in ops), ops)
        self.assertNotIn(CANARY_SECRET, body.decode())

    def test_4_bad_input(self):
        # unknown recipient: 550
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=10) as s:
            with self.assertRaises(smtplib.SMTPRecipientsRefused) as cm:
                s.sendmail("x@acme.example", ["nobody@" + DOMAIN], "Subject: hi\r\n\r\nhello\r\n")
            self.assertEqual(cm.exception.recipients["nobody@" + DOMAIN][0], 550)
        # oversized: 552
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=10) as s:
            big = "Subject: big\r\n\r\n" + ("x" * 998 + "\r\n") * (MAX_SIZE // 1000 + 10)
            s.ehlo()
            s.esmtp_features.pop("size", None)  # so the client does not refuse it itself: the server must
            with self.assertRaises(smtplib.SMTPDataError) as cm:
                s.sendmail("x@acme.example", ["alice-bot@" + DOMAIN], big)
            self.assertEqual(cm.exception.smtp_code, 552)
        # malformed MIME: kept raw and flagged, not lost
        raw = ("From: broken@acme.example\r\nTo: alice-bot@%s\r\nSubject: broken mime\r\nMIME-Version: 1.0\r\n"
               "Content-Type: multipart/mixed; boundary=\"never-closed\"\r\n\r\n--never-closed\r\n"
               "Content-Type: text/plain\r\nContent-Transfer-Encoding: base64\r\n\r\n@@@not base64 at all@@@\r\n" % DOMAIN)
        with smtplib.SMTP("127.0.0.1", self.smtp_port, timeout=10) as s:
            s.sendmail("broken@acme.example", ["alice-bot@" + DOMAIN], raw)
        msg = json.loads(self.corral("inbox", "--identity", "alice-bot", "--subject", "broken", "--wait", "10",
                                     "--json").stdout)["message"]
        self.assertEqual(msg["subject"], "broken mime")
        self.assertIn("malformed", msg["flags"])
        eml = os.path.join(self.home, "identities", "alice-bot", "inbox", msg["id"] + ".eml")
        self.assertEqual(open(eml, "rb").read().replace(b"\r\n", b"\n"), raw.encode().replace(b"\r\n", b"\n"))
        # HTTP inbound mail: a bad signature is 403, a good one stores
        body = b"From: a@b.example\r\nTo: bob-bot@" + DOMAIN.encode() + b"\r\nSubject: via http\r\n\r\ncode 424242\r\n"
        st, _ = http("POST", self.relay_url + "/v1/inbound/mail", body,
                     {"Content-Type": "message/rfc822", "X-Corral-Signature": "sha256=" + "0" * 64})
        self.assertEqual(st, 403)
        sig = hmac.new(INBOUND_SECRET.encode(), body, hashlib.sha256).hexdigest()
        st, resp = http("POST", self.relay_url + "/v1/inbound/mail", body,
                        {"Content-Type": "message/rfc822", "X-Corral-Signature": "sha256=" + sig})
        self.assertEqual(st, 202, resp)
        self.assertEqual(self.corral("otp", "--identity", "bob-bot", "--subject", "via http", "--wait", "10").stdout.strip(),
                         "424242")

    def test_4b_two_teams_one_address(self):
        relay = os.path.join(BIN, "corral-relay")
        subprocess.check_output([relay, "admin", "team", "create", "other"], env=self.st.relay_env)
        tok = subprocess.check_output([relay, "admin", "token", "create", "--team", "other", "--kind", "host"],
                                      env=self.st.relay_env).decode().strip()
        rec = {"name": "alice-bot", "id": "idn_other1", "pk": "A" * 43, "wsk": "B" * 98, "wvk": "C" * 98}
        st, body = http("POST", self.relay_url + "/v1/identities", rec, token=tok)
        self.assertEqual(st, 409, body)
        self.assertEqual(json.loads(body)["error"]["field"], "email")
        # nor can the other team see the first team's identity
        st, body = http("GET", self.relay_url + "/v1/identities/alice-bot", token=tok)
        self.assertEqual(st, 404, body)

    def test_5_suspend_restart_resume(self):
        before = [m["subject"] for m in json.loads(self.corral("inbox", "--list", "--identity", "alice-bot", "--json")
                                                  .stdout)["messages"]]
        self.assertIn("Your Acme verification code", before)
        self.corral("suspend", "s-alice")
        wait_until(lambda: "suspended" in self.corral("ls").stdout, 20, "s-alice to be suspended")
        stop(self.st.corrald)
        stop(self.st.relay)  # the relay is away too: the copies on this machine are what the session finds
        self.st.start_corrald()
        self.corral("resume", "s-alice")
        wt = self.find_worktree("s-alice")
        seen = wait_until(lambda: os.path.exists(os.path.join(wt, "inbox-after-resume.json")) and
                          json.load(open(os.path.join(wt, "inbox-after-resume.json"))), 30,
                          "the resumed agent to list its inbox; corrald log:\n" + self.tail(self.host_log))
        self.assertEqual(sorted(seen), sorted(before))
        self.st.start_relay()


if __name__ == "__main__":
    unittest.main(verbosity=2)
