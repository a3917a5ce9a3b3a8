"""test_phone_host.py — what a paired phone does to a host, end to end through real processes (redis-server,
corral-relay, corrald with the fake Claude agent and shell agents), speaking to the relay the way the web app does:

- pairing: `corral pair --json` -> the link's code and K -> POST /v1/pair/claim; the host learns its team
- sealing: after pairing, event bodies reach the relay sealed with K (the relay's copy holds no plaintext) and the
  phone opens them; the phone's sealed actions are opened and applied by the host
- the full diff on request: the `diff` action is answered with diff.full parts that join into the whole diff
- voice replies: a transcript "approve" approves; an espeak-ng recording of "approve" (no transcript) approves a
  diff through PocketSphinx and the commit lands in git; "option two" answers a question with options; free speech
  with no transcript is answered with not_understood and the agent gets nothing; a transcript of free speech is the
  reply the agent receives; each recording is kept with the session
"""
import base64
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import unittest
import urllib.parse

HERE = os.path.dirname(os.path.abspath(__file__))
SRC = os.path.dirname(os.path.dirname(os.path.dirname(HERE)))
sys.path.insert(0, os.path.join(SRC, "tests", "integration", "identities"))
sys.path.insert(0, os.path.join(SRC, "proto", "vectors"))
from stack import Stack, http, stop, wait_until  # noqa: E402
import make_vectors as mv  # noqa: E402  an independent pure-Python msgpack writer and XChaCha20-Poly1305

BIN = os.path.join(os.environ.get("CORRAL_BINARY_DIR", os.path.join(SRC, "build")), "bin")
FAKE_CLAUDE = os.path.join(SRC, "tests", "fakes", "fake_claude.py")


# ---- a small msgpack reader (the opened bodies) -------------------------------------------------------------------

def unpack(b, i=0):
    c = b[i]
    if c <= 0x7f:
        return c, i + 1
    if 0x80 <= c <= 0x8f or c in (0xde, 0xdf):
        n, i = (c & 0x0f, i + 1) if c <= 0x8f else (int.from_bytes(b[i + 1:i + 3 if c == 0xde else i + 5], "big"),
                                                    i + (3 if c == 0xde else 5))
        d = {}
        for _ in range(n):
            k, i = unpack(b, i)
            d[k], i = unpack(b, i)
        return d, i
    if 0x90 <= c <= 0x9f or c in (0xdc, 0xdd):
        n, i = (c & 0x0f, i + 1) if c <= 0x9f else (int.from_bytes(b[i + 1:i + 3 if c == 0xdc else i + 5], "big"),
                                                    i + (3 if c == 0xdc else 5))
        out = []
        for _ in range(n):
            v, i = unpack(b, i)
            out.append(v)
        return out, i
    if 0xa0 <= c <= 0xbf:
        n = c & 0x1f
        return b[i + 1:i + 1 + n].decode(), i + 1 + n
    if c in (0xd9, 0xda, 0xdb, 0xc4, 0xc5, 0xc6):
        w = {0xd9: 1, 0xda: 2, 0xdb: 4, 0xc4: 1, 0xc5: 2, 0xc6: 4}[c]
        n = int.from_bytes(b[i + 1:i + 1 + w], "big")
        raw = b[i + 1 + w:i + 1 + w + n]
        return (raw.decode() if c >= 0xd9 else raw), i + 1 + w + n
    if c == 0xc0:
        return None, i + 1
    if c in (0xc2, 0xc3):
        return c == 0xc3, i + 1
    if c in (0xcc, 0xcd, 0xce, 0xcf):
        w = {0xcc: 1, 0xcd: 2, 0xce: 4, 0xcf: 8}[c]
        return int.from_bytes(b[i + 1:i + 1 + w], "big"), i + 1 + w
    if c >= 0xe0:
        return c - 0x100, i + 1
    if c in (0xd0, 0xd1, 0xd2, 0xd3):
        w = {0xd0: 1, 0xd1: 2, 0xd2: 4, 0xd3: 8}[c]
        return int.from_bytes(b[i + 1:i + 1 + w], "big", signed=True), i + 1 + w
    if c == 0xcb:
        import struct
        return struct.unpack(">d", b[i + 1:i + 9])[0], i + 9
    raise ValueError("msgpack byte 0x%02x" % c)


def speak(path, text):
    subprocess.check_call(["espeak-ng", "-v", "en-us", "-w", path, text], stdout=subprocess.DEVNULL,
                          stderr=subprocess.DEVNULL)
    with open(path, "rb") as f:
        return f.read()


@unittest.skipUnless(shutil.which("espeak-ng"), "espeak-ng is not installed (deploy/install-deps.sh installs it)")
class PhoneHost(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.st = st = Stack(BIN, prefix="cr-phone-")
        stop(st.corrald)  # again, with the fake Claude as the claude agent
        if os.path.exists(st.sock):  # so that start_corrald waits for the new one's socket, not the old one's
            os.unlink(st.sock)
        cls.state = os.path.join(st.tmp, "fake-claude")
        st.host_env.update(CORRAL_AGENT_CLAUDE_CMD=FAKE_CLAUDE, FAKE_CLAUDE_STATE_DIR=cls.state,
                           FAKE_CLAUDE_LOG=os.path.join(st.tmp, "fake-claude.log"), CORRAL_LOG_LEVEL="debug",
                           PATH=BIN + os.pathsep + os.environ.get("PATH", ""))  # agents run `corral ask`
        st.start_corrald()
        cls.audio = tempfile.mkdtemp(prefix="cr-phone-audio-")

    @classmethod
    def tearDownClass(cls):
        keep = bool(os.environ.get("CORRAL_KEEP_TMP"))
        tmp = cls.st.close(keep=keep)
        shutil.rmtree(cls.audio, ignore_errors=True)
        if keep:
            print("kept", tmp, file=sys.stderr)

    def corral(self, *args, check=True):
        r = self.st.corral(*args)
        if check and r.returncode != 0:
            self.fail("corral %s -> %d\n%s%s\ncorrald log:\n%s" % (" ".join(args), r.returncode, r.stdout, r.stderr,
                                                                 Stack.tail(self.st.host_log)))
        return r

    # ---- the phone's side -------------------------------------------------------------------------------------------

    def events(self, sid, missing_ok=False):
        st, body = http("GET", "%s/v1/sessions/%s/events?limit=1000" % (self.st.relay_url, sid), token=self.token)
        if st == 404 and missing_ok:  # none of its events has reached the relay yet
            return []
        self.assertEqual(st, 200, body)
        out = []
        for item in json.loads(body)["events"]:
            e = item["e"]
            b = e.get("b", {})
            if isinstance(b, dict) and "$bin" in b:
                box = base64.b64decode(b["$bin"])
                self.assertEqual(box[0], 1)
                plain = mv.xchacha20poly1305_decrypt(self.key, box[1:25], box[25:],
                                                     mv.ad_event(self.team, sid, e["seq"], e["k"]))
                e = dict(e, b=unpack(plain)[0], sealed=True)
            out.append(e)
        return out

    def wait_event(self, sid, pred, what, timeout=30):
        def find():
            for e in self.events(sid, missing_ok=True):
                if pred(e):
                    return e
            return None
        return wait_until(find, timeout, what + "; corrald log:\n" + Stack.tail(self.st.host_log))

    def act(self, sid, k, body, ref=None):
        aid = "01PHONE%019d" % (int(time.time() * 1e6) % 10**19)
        nonce = os.urandom(24)
        box = b"\x01" + nonce + mv.xchacha20poly1305_encrypt(self.key, nonce, mv.mp(body),
                                                             mv.ad_action(self.team, sid, aid, k))
        env = {"sid": sid, "k": k, "aid": aid, "b": {"$bin": base64.b64encode(box).decode()}}
        if ref:
            env["ref"] = ref
        st, resp = http("POST", self.st.relay_url + "/v1/actions", env, token=self.token)
        self.assertEqual(st, 202, resp)
        return aid

    def applied(self, sid, aid):
        return self.wait_event(sid, lambda e: e["k"] == "action.applied" and e["b"].get("aid") == aid,
                               "action.applied for " + aid)["b"]

    def sid_of(self, name):
        return [x for x in json.loads(self.corral("ls", "--json").stdout)["sessions"] if x["name"] == name][0]["sid"]

    # ---- the tests, in name order -----------------------------------------------------------------------------------

    def test_1_pair_and_sealing(self):
        link = json.loads(self.corral("pair", "--json").stdout)["url"]
        frag = urllib.parse.parse_qs(urllib.parse.urlparse(link).fragment)
        code, k = frag["pair"][0], frag["k"][0]
        st, body = http("POST", self.st.relay_url + "/v1/pair/claim", {"code": code, "name": "test phone"})
        self.assertEqual(st, 200, body)
        claim = json.loads(body)
        cls = type(self)
        cls.token, cls.team = claim["token"], claim["team"]
        cls.key = base64.urlsafe_b64decode(k + "=" * (-len(k) % 4))
        self.assertEqual(len(self.key), 32)
        with open(os.path.join(self.st.home, "team.name")) as f:
            self.assertEqual(f.read().strip(), self.team)  # the host learned its team from the pairing answer
        # a session started now: its events reach the relay sealed, and open with K
        self.corral("new", "@write notes.txt hello from the agent\n@text wrote it", "--name", "s-claude")
        cls.sid = sid = self.sid_of("s-claude")
        req = self.wait_event(sid, lambda e: e["k"] == "approval.request", "the approval.request")
        self.assertTrue(req.get("sealed"), req)
        self.assertEqual(req["b"]["tool"], "Write")
        st, raw = http("GET", "%s/v1/sessions/%s/events?limit=1000" % (self.st.relay_url, sid), token=self.token)
        self.assertNotIn(b"hello from the agent", raw)  # the relay holds no plaintext
        self.assertNotIn(b"notes.txt", raw)
        # the transcript on the host stays plain for the person at the host
        tr = self.corral("log", "s-claude").stdout
        self.assertIn("notes.txt", tr)
        cls.req = req

    def test_2_transcript_approves(self):
        sid = self.sid
        wav = speak(os.path.join(self.audio, "yes.wav"), "yes")
        aid = self.act(sid, "reply", {"rid": self.req["b"]["rid"], "transcript": "Approve.", "audio": wav,
                                      "mime": "audio/wav"}, ref=self.req["seq"])
        a = self.applied(sid, aid)
        self.assertTrue(a["ok"], a)
        self.assertEqual(a["heard"], "Approve.")
        self.assertIn("approved", a["detail"])
        # the agent went on and wrote the file; the turn ends with a diff to review
        diff = self.wait_event(sid, lambda e: e["k"] == "diff.ready", "the diff.ready")
        self.assertEqual([f["path"] for f in diff["b"]["files"]], ["notes.txt"])
        # the recording is kept with the session
        audio_dir = [os.path.join(r, d) for r, ds, _ in os.walk(os.path.join(self.st.repo, ".corral", "sessions"))
                     for d in ds if d == "audio"]
        self.assertTrue(audio_dir and os.path.exists(os.path.join(audio_dir[0], aid + ".wav")), audio_dir)
        type(self).diff = diff

    def test_3_full_diff_on_request(self):
        sid = self.sid
        aid = self.act(sid, "diff", {})
        a = self.applied(sid, aid)
        self.assertTrue(a["ok"], a)
        parts = [e for e in self.events(sid) if e["k"] == "diff.full"]
        self.assertTrue(parts and all(p.get("sealed") for p in parts))
        n = parts[-1]["b"]["parts"]
        whole = "".join(p["b"]["patch"] for p in sorted(parts[-n:], key=lambda p: p["b"]["part"]))
        self.assertIn("+hello from the agent", whole)
        self.assertEqual(whole, self.diff["b"]["patch"])  # small: the same as the diff.ready's
        # the session still waits for its review (the host's record: the relay sees only sealed bodies)
        mine = [x for x in json.loads(self.corral("ls", "--json").stdout)["sessions"] if x["sid"] == sid][0]
        self.assertEqual(mine["needs"]["k"], "diff.ready", mine)

    def test_4_spoken_approve_commits(self):
        sid = self.sid
        wav = speak(os.path.join(self.audio, "approve.wav"), "approve")
        aid = self.act(sid, "reply", {"audio": wav, "mime": "audio/wav"}, ref=self.diff["seq"])
        a = self.applied(sid, aid)
        self.assertTrue(a["ok"], a)
        self.assertEqual(a["heard"], "approve")
        self.assertTrue(a.get("commit"), a)
        log = subprocess.check_output(["git", "-C", self.st.repo, "log", "--format=%H %s", "main"], text=True)
        self.assertIn(a["commit"], log)
        self.assertTrue(os.path.exists(os.path.join(self.st.repo, "notes.txt")))

    def test_5_question_with_options_by_voice(self):
        script = ("a=$(corral ask 'Which database?' --option staging --option production --option 'skip the tests'); "
                  "echo \"ANSWER1=$a\"; b=$(corral ask 'Anything else?'); echo \"ANSWER2=$b\"; sleep 30")
        self.corral("new", "ask twice", "--name", "s-ask", "--agent", "shell", "--cmd", script)
        sid = self.sid_of("s-ask")
        q = self.wait_event(sid, lambda e: e["k"] == "question", "the question")
        self.assertEqual(q["b"]["options"], ["staging", "production", "skip the tests"])
        wav = speak(os.path.join(self.audio, "option2.wav"), "option two")
        a = self.applied(sid, self.act(sid, "reply", {"rid": q["b"]["rid"], "audio": wav, "mime": "audio/wav"}))
        self.assertTrue(a["ok"], a)
        self.wait_event(sid, lambda e: e["k"] == "agent.message" and "ANSWER1=production" in e["b"]["text"],
                        "the agent to print its answer")
        # free speech, no transcript: a clear error, and the agent gets nothing
        q2 = self.wait_event(sid, lambda e: e["k"] == "question" and e["b"]["text"] == "Anything else?", "question 2")
        wav = speak(os.path.join(self.audio, "free.wav"), "use the staging database please")
        a = self.applied(sid, self.act(sid, "reply", {"rid": q2["b"]["rid"], "audio": wav, "mime": "audio/wav"}))
        self.assertFalse(a["ok"], a)
        self.assertEqual(a["code"], "not_understood")
        self.assertIn("could not make out", a["detail"])
        # the same with the phone's transcript: the agent receives the words
        a = self.applied(sid, self.act(sid, "reply", {"rid": q2["b"]["rid"], "transcript": "use the staging database",
                                                      "audio": wav, "mime": "audio/wav"}))
        self.assertTrue(a["ok"], a)
        self.wait_event(sid, lambda e: e["k"] == "agent.message" and "ANSWER2=use the staging database" in e["b"]["text"],
                        "the agent to print the spoken reply")

    def test_6_bad_input(self):
        sid = self.sid_of("s-ask")
        # a body sealed with another key: refused with a clear detail, nothing applied
        good = self.key
        type(self).key = bytes(32)
        try:
            aid = self.act(sid, "task", {"text": "never"})
        finally:
            type(self).key = good
        a = self.applied(sid, aid)
        self.assertFalse(a["ok"])
        self.assertIn("sealed body", a["detail"])
        # audio that is not audio: bad_audio
        q = self.corral("ls", "--json")
        self.assertEqual(q.returncode, 0)
        aid = self.act(sid, "reply", {"audio": b"RIFF\x00\x00\x00\x00WAVEjunk", "mime": "audio/wav"})
        a = self.applied(sid, aid)
        self.assertFalse(a["ok"], a)
        self.assertIn(a["code"], ("bad_audio", "not_understood"))

    def test_7_ask_bad_options(self):
        # POST /v1/ask with options that are not an array of at most 9 strings: 400 bad_body naming the field, and no
        # question is asked (the agent posts them itself, with its own session token)
        poster = (
            "import http.client, json, os, socket\n"
            "class C(http.client.HTTPConnection):\n"
            "    def connect(self):\n"
            "        self.sock = socket.socket(socket.AF_UNIX); self.sock.connect(os.environ['CORRAL_URL'][5:])\n"
            "for opts in (['a'] * 10, 'a', ['a', 3]):\n"
            "    c = C('corrald'); c.request('POST', '/v1/ask?wait=1', json.dumps({'text': 'q?', 'options': opts}),\n"
            "        {'Authorization': 'Bearer ' + os.environ['CORRAL_TOKEN'], 'Content-Type': 'application/json'})\n"
            "    r = c.getresponse(); print('ASK', r.status, r.read().decode(), flush=True)\n")
        path = os.path.join(self.st.tmp, "poster.py")
        with open(path, "w") as f:
            f.write(poster)
        self.corral("new", "post bad options", "--name", "s-badask", "--agent", "shell", "--cmd",
                    "python3 %s; sleep 30" % path)
        sid = self.sid_of("s-badask")
        msgs = []
        def three():
            msgs[:] = [e["b"]["text"] for e in self.events(sid, missing_ok=True)
                       if e["k"] == "agent.message" and "ASK " in e["b"]["text"]]
            return len("".join(msgs).split("ASK ")) > 3 or None
        wait_until(three, 30, "three answers; corrald log:\n" + Stack.tail(self.st.host_log))
        text = "".join(msgs)
        self.assertEqual(text.count("ASK 400"), 3, text)
        self.assertEqual(text.count("options must be an array of at most 9 strings"), 2, text)
        self.assertIn("option 2 must be a string", text)
        self.assertFalse([e for e in self.events(sid) if e["k"] == "question"])


if __name__ == "__main__":
    unittest.main(verbosity=2)
