#!/usr/bin/env -S python3 # tests/fakes/test_fakes.py — self-test of the fake agents, driven the way corrald will drive them
"""Runs fake_claude.py and fake_codex.py as subprocesses in a temporary directory and checks what a
host sees on their stdout, stderr, exit status, log file, state files and working directory.

    python3 tests/fakes/test_fakes.py [-v] [TestClass.test_name ...]
"""

import json
import os
import queue
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import unittest

HERE = os.path.dirname(os.path.realpath(__file__))
CLAUDE = os.path.join(HERE, "fake_claude.py")
CODEX = os.path.join(HERE, "fake_codex.py")
CLAUDE_ARGS = ["-p", "--verbose", "--output-format", "stream-json", "--input-format", "stream-json",
               "--permission-prompt-tool", "stdio"]
TIMEOUT = 20.0  # generous: ctest -j2 runs this beside ASan builds of the C tests


class Proc:
    """A fake agent under test: JSON lines in and out, stderr collected, killed at cleanup."""

    def __init__(self, test, argv, cwd, env):
        self.test = test
        self.p = subprocess.Popen(argv, cwd=cwd, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                  stderr=subprocess.PIPE)
        self.q = queue.Queue()
        self.seen = []
        self.err = []
        threading.Thread(target=self._read_out, daemon=True).start()
        threading.Thread(target=self._read_err, daemon=True).start()
        test.addCleanup(self.kill)

    def _read_out(self):
        for line in self.p.stdout:
            self.q.put(line.decode("utf-8"))
        self.q.put(None)

    def _read_err(self):
        for line in self.p.stderr:
            self.err.append(line.decode("utf-8"))

    def stderr(self):
        return "".join(self.err)

    def send(self, obj):
        self.p.stdin.write((json.dumps(obj) + "\n").encode("utf-8"))
        self.p.stdin.flush()

    def user(self, text):
        self.send({"type": "user", "message": {"role": "user", "content": text}, "parent_tool_use_id": None,
                   "session_id": ""})

    def next(self, timeout=TIMEOUT):
        try:
            line = self.q.get(timeout=timeout)
        except queue.Empty:
            self.test.fail("no output within %.1fs; seen %s; stderr %r" % (timeout, self.seen[-5:], self.stderr()))
        if line is None:
            self.q.put(None)
            return None
        try:
            obj = json.loads(line)
        except ValueError:
            self.test.fail("stdout line is not JSON: %r" % line)
        self.seen.append(obj)
        return obj

    def until(self, pred, what, timeout=TIMEOUT):
        """Reads messages until one satisfies pred; returns it and the ones skipped on the way."""
        skipped = []
        deadline = time.monotonic() + timeout
        while True:
            m = self.next(max(0.01, deadline - time.monotonic()))
            if m is None:
                self.test.fail("stdout closed before %s; skipped %s; stderr %r" % (what, skipped, self.stderr()))
            if pred(m):
                return m, skipped
            skipped.append(m)

    def close(self):
        self.p.stdin.close()

    def wait(self, timeout=TIMEOUT):
        return self.p.wait(timeout=timeout)

    def rest(self):
        """Every remaining stdout message until the process closes stdout."""
        out = []
        while True:
            m = self.next()
            if m is None:
                return out
            out.append(m)

    def kill(self):
        if self.p.poll() is None:
            self.p.kill()
            self.p.wait()
        for f in (self.p.stdin, self.p.stdout, self.p.stderr):
            try:
                f.close()
            except (OSError, ValueError):
                pass


def is_type(t, subtype=None):
    return lambda m: m.get("type") == t and (subtype is None or m.get("subtype") == subtype)


class FakeTest(unittest.TestCase):
    def setUp(self):
        self.tmp = tempfile.mkdtemp(prefix="fakes-")
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.work = os.path.join(self.tmp, "worktree")
        os.mkdir(self.work)
        self.state = os.path.join(self.tmp, "state")
        self.logfile = os.path.join(self.tmp, "agent.log")
        self.env = {k: v for k, v in os.environ.items() if not k.startswith(("CORRAL_", "FAKE_"))}
        self.env.update({"HOME": self.tmp, "CORRAL_SESSION": "s-42", "CORRAL_TOKEN": "tok-1",
                         "FAKE_CLAUDE_STATE_DIR": self.state, "FAKE_CLAUDE_LOG": self.logfile,
                         "FAKE_CODEX_STATE_DIR": self.state, "FAKE_CODEX_LOG": self.logfile})

    def log_lines(self):
        with open(self.logfile, encoding="utf-8") as f:
            return [json.loads(line) for line in f]

    def read(self, name):
        with open(os.path.join(self.work, name), encoding="utf-8") as f:
            return f.read()


class ClaudeTest(FakeTest):
    def start(self, *extra, env=None):
        return Proc(self, [CLAUDE] + CLAUDE_ARGS + list(extra), self.work, env or self.env)

    def run_cli(self, *argv, stdin=b""):
        return subprocess.run([CLAUDE] + list(argv), cwd=self.work, env=self.env, input=stdin,
                              capture_output=True, timeout=TIMEOUT)

    def answer(self, req, response):
        return {"type": "control_response", "response": {"subtype": "success", "request_id": req["request_id"],
                                                         "response": response}}

    def test_version_and_flag_errors(self):
        r = self.run_cli("--version")
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.decode(), r"^\d+\.\d+\.\d+ \(Claude Code\)\n$")
        cases = [
            (["-p", "--bogus"], "error: unknown option '--bogus'"),
            (["-p", "--output-format"], "error: option '--output-format <format>' argument missing"),
            (["-p", "--output-format", "xml"], "argument 'xml' is invalid. Allowed choices are text, json, stream-json."),
            (["-p", "--input-format", "stream-json"], "Error: --input-format=stream-json requires output-format=stream-json."),
            (["-p", "--output-format", "stream-json", "--input-format", "stream-json"],
             "Error: When using --print, --output-format=stream-json requires --verbose"),
            (CLAUDE_ARGS[:-1] + ["mcp__approve__ask"], "Error: MCP tool mcp__approve__ask (passed via --permission-prompt-tool) not found."),
            (["-p", "--permission-mode", "yolo", "hi"], "error: option '--permission-mode <mode>' argument 'yolo' is invalid."),
            (CLAUDE_ARGS + ["--resume"], "Error: --resume requires a valid session ID or session title when used with --print."),
            (CLAUDE_ARGS + ["--resume", "not-a-uuid"], 'Provided value "not-a-uuid" is not a UUID'),
        ]
        for argv, msg in cases:
            with self.subTest(argv=argv):
                r = self.run_cli(*argv)
                self.assertEqual(r.returncode, 1, r.stderr)
                self.assertIn(msg, r.stderr.decode())
                self.assertEqual(r.stdout, b"")
        logged = self.log_lines()
        self.assertEqual(len(logged), 1 + len(cases))  # one line per invocation, failures included
        self.assertEqual(logged[1]["argv"], ["-p", "--bogus"])
        self.assertIn("unknown option", logged[1]["error"])

    def test_initialize_echo_and_log(self):
        a = self.start()
        a.send({"type": "control_request", "request_id": "req_1_abcd", "request": {"subtype": "initialize", "hooks": None}})
        r = a.next()
        self.assertEqual(r["type"], "control_response")
        self.assertEqual(r["response"]["subtype"], "success")
        self.assertEqual(r["response"]["request_id"], "req_1_abcd")
        for key in ("commands", "output_style", "available_output_styles", "models", "account"):
            self.assertIn(key, r["response"]["response"])
        a.send({"type": "control_request", "request_id": "req_2", "request": {"subtype": "initialize", "hooks": None}})
        self.assertEqual(a.next()["response"], {"subtype": "error", "request_id": "req_2", "error": "Already initialized"})
        a.user("hello there")
        init = a.next()
        self.assertEqual((init["type"], init["subtype"]), ("system", "init"))
        sid = init["session_id"]
        self.assertRegex(sid, r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")
        self.assertEqual(init["cwd"], self.work)
        self.assertIn("Bash", init["tools"])
        self.assertEqual(init["permissionMode"], "default")
        msg = a.next()
        self.assertEqual(msg["type"], "assistant")
        self.assertEqual(msg["message"]["content"], [{"type": "text", "text": "hello there"}])
        self.assertEqual(msg["session_id"], sid)
        res = a.next()
        self.assertEqual((res["type"], res["subtype"], res["is_error"], res["result"]), ("result", "success", False, "hello there"))
        self.assertEqual(res["session_id"], sid)
        self.assertEqual(res["permission_denials"], [])
        for key in ("duration_ms", "num_turns", "total_cost_usd", "usage"):
            self.assertIn(key, res)
        a.user("second turn")  # the process stays up between turns; no second init
        self.assertEqual(a.next()["message"]["content"][0]["text"], "second turn")
        self.assertEqual(a.next()["type"], "result")
        a.close()
        self.assertEqual(a.wait(), 0)
        self.assertEqual(a.rest(), [])
        (line,) = self.log_lines()
        self.assertEqual(line["argv"], CLAUDE_ARGS)
        self.assertEqual(line["cwd"], self.work)
        self.assertEqual(line["env"], {"CORRAL_SESSION": "s-42", "CORRAL_TOKEN": "tok-1"})
        self.assertIsNone(line["resume"])
        self.assertEqual(line["session_id"], sid)
        with open(os.path.join(self.state, sid + ".json"), encoding="utf-8") as f:
            st = json.load(f)
        self.assertEqual([m["content"] for m in st["messages"] if m["role"] == "user"], ["hello there", "second turn"])

    def test_bash_allow_honours_updated_input(self):
        a = self.start()
        a.user("@bash echo original")
        use, _ = a.until(is_type("assistant"), "tool_use")
        block = use["message"]["content"][0]
        self.assertEqual((block["type"], block["name"], block["input"]["command"]), ("tool_use", "Bash", "echo original"))
        req = a.next()
        self.assertEqual(req["type"], "control_request")
        r = req["request"]
        self.assertEqual((r["subtype"], r["tool_name"], r["tool_use_id"]), ("can_use_tool", "Bash", block["id"]))
        self.assertEqual(r["input"]["command"], "echo original")
        self.assertIsInstance(r["permission_suggestions"], list)
        a.send(self.answer(req, {"behavior": "allow", "updatedInput": {"command": "echo changed-by-host"}}))
        tr = a.next()
        self.assertEqual(tr["type"], "user")
        tb = tr["message"]["content"][0]
        self.assertEqual((tb["type"], tb["tool_use_id"], tb["content"]), ("tool_result", block["id"], "changed-by-host"))
        self.assertNotIn("is_error", tb)
        res, _ = a.until(is_type("result"), "result")
        self.assertEqual(res["subtype"], "success")
        self.assertEqual(res["permission_denials"], [])

    def test_write_and_edit_change_the_worktree(self):
        a = self.start()
        a.user("@write notes/todo.txt one\\ntwo\n@edit notes/todo.txt two \"two and a half\"")
        for expect_tool in ("Write", "Edit"):
            req, _ = a.until(is_type("control_request"), "can_use_tool " + expect_tool)
            self.assertEqual(req["request"]["tool_name"], expect_tool)
            self.assertEqual(req["request"]["input"]["file_path"], os.path.join(self.work, "notes", "todo.txt"))
            a.send(self.answer(req, {"behavior": "allow", "updatedInput": req["request"]["input"]}))
            tr, _ = a.until(is_type("user"), "tool_result")
            self.assertNotIn("is_error", tr["message"]["content"][0])
        res, _ = a.until(is_type("result"), "result")
        self.assertEqual(res["subtype"], "success")
        self.assertEqual(self.read("notes/todo.txt"), "one\ntwo and a half")

    def test_deny_records_denial_and_stops_when_told(self):
        a = self.start()
        a.user("@ondeny stop\n@bash touch should-not-exist\n@text never said")
        req, _ = a.until(is_type("control_request"), "can_use_tool")
        a.send(self.answer(req, {"behavior": "deny", "message": "Not on my watch"}))
        tr = a.next()
        tb = tr["message"]["content"][0]
        self.assertEqual((tb["type"], tb["content"], tb["is_error"]), ("tool_result", "Not on my watch", True))
        res, skipped = a.until(is_type("result"), "result")
        texts = [b["text"] for m in skipped if m["type"] == "assistant" for b in m["message"]["content"] if b["type"] == "text"]
        self.assertEqual(texts, ["Permission to use Bash was denied, so I stopped here."])
        self.assertEqual(res["subtype"], "success")
        self.assertEqual(len(res["permission_denials"]), 1)
        d = res["permission_denials"][0]
        self.assertEqual((d["tool_name"], d["tool_use_id"], d["tool_input"]["command"]),
                         ("Bash", req["request"]["tool_use_id"], "touch should-not-exist"))
        self.assertFalse(os.path.exists(os.path.join(self.work, "should-not-exist")))

    def test_deny_with_interrupt_aborts_the_turn(self):
        a = self.start()
        a.user("@bash true\n@text never said")
        req, _ = a.until(is_type("control_request"), "can_use_tool")
        a.send(self.answer(req, {"behavior": "deny", "message": "stop everything", "interrupt": True}))
        res, _ = a.until(is_type("result"), "result")
        self.assertEqual((res["subtype"], res["is_error"]), ("error_during_execution", True))

    def test_no_permission_tool_means_denied(self):
        a = Proc(self, [CLAUDE] + CLAUDE_ARGS[:-2], self.work, self.env)
        a.user("@bash touch nope")
        res, skipped = a.until(is_type("result"), "result")
        self.assertFalse(any(m["type"] == "control_request" for m in skipped))
        tb = [m for m in skipped if m["type"] == "user"][0]["message"]["content"][0]
        self.assertEqual(tb["content"], "Claude requested permissions to use Bash, but you haven't granted it yet.")
        self.assertEqual(len(res["permission_denials"]), 1)
        b = self.start("--permission-mode", "bypassPermissions")
        b.user("@bash echo free")
        res, skipped = b.until(is_type("result"), "result")
        self.assertFalse(any(m["type"] == "control_request" for m in skipped))
        self.assertEqual([m for m in skipped if m["type"] == "user"][0]["message"]["content"][0]["content"], "free")

    def test_ask_ends_turn_and_reply_continues(self):
        a = self.start()
        a.user("Let me check.\n@ask Which colour should the button be?\n@text never said")
        res, skipped = a.until(is_type("result"), "result")
        texts = [m["message"]["content"][0]["text"] for m in skipped if m["type"] == "assistant"]
        self.assertEqual(texts, ["Let me check.", "Which colour should the button be?"])
        self.assertEqual(res["result"], "Which colour should the button be?")
        a.user("blue")
        m, _ = a.until(is_type("assistant"), "reply")
        self.assertEqual(m["message"]["content"][0]["text"], "blue")

    def test_resume_keeps_session_and_records_it(self):
        a = self.start()
        a.user("first prompt")
        res, _ = a.until(is_type("result"), "result")
        sid = res["session_id"]
        a.close()
        self.assertEqual(a.wait(), 0)
        env = dict(self.env, CORRAL_SESSION="s-43")
        b = self.start("--resume", sid, env=env)
        b.user("@history")
        init = b.next()
        self.assertEqual((init["subtype"], init["session_id"]), ("init", sid))
        m = b.next()
        self.assertEqual(m["message"]["content"][0]["text"], "History: 1 earlier user message(s); last: first prompt")
        self.assertEqual(b.next()["session_id"], sid)
        b.close()
        self.assertEqual(b.wait(), 0)
        first, second = self.log_lines()
        self.assertIsNone(first["resume"])
        self.assertEqual((second["resume"], second["session_id"]), (sid, sid))
        self.assertEqual(second["env"]["CORRAL_SESSION"], "s-43")
        with open(os.path.join(self.state, sid + ".json"), encoding="utf-8") as f:
            st = json.load(f)
        self.assertEqual([i["resume"] for i in st["invocations"]], [None, sid])

    def test_unknown_resume_fails_like_the_cli(self):
        sid = "0b6bd7d4-3f43-4d51-9a5e-2f1f5b0c1a11"
        r = self.run_cli(*(CLAUDE_ARGS + ["--resume", sid]))
        self.assertEqual(r.returncode, 1)
        self.assertEqual(r.stderr.decode(), "No conversation found with session ID: %s\n" % sid)
        (res,) = [json.loads(x) for x in r.stdout.decode().splitlines()]
        self.assertEqual((res["type"], res["subtype"], res["is_error"], res["session_id"]),
                         ("result", "error_during_execution", True, sid))
        self.assertEqual(res["errors"], ["No conversation found with session ID: %s" % sid])
        self.assertNotIn("result", res)

    def test_resume_from_another_directory_is_not_found(self):
        a = self.start()
        a.user("hi")
        res, _ = a.until(is_type("result"), "result")
        a.close()
        a.wait()
        other = os.path.join(self.tmp, "elsewhere")
        os.mkdir(other)
        r = subprocess.run([CLAUDE] + CLAUDE_ARGS + ["--resume", res["session_id"]], cwd=other, env=self.env,
                           capture_output=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 1)
        self.assertIn("No conversation found with session ID", r.stderr.decode())

    def test_interrupt_control_request(self):
        a = self.start()
        a.user("@sleep 60000\n@text never said")
        a.until(is_type("system", "init"), "init")
        t0 = time.monotonic()
        a.send({"type": "control_request", "request_id": "int_1", "request": {"subtype": "interrupt"}})
        ack = a.next()
        self.assertEqual(ack["response"]["request_id"], "int_1")
        self.assertEqual(ack["response"]["subtype"], "success")
        res, skipped = a.until(is_type("result"), "result")
        self.assertLess(time.monotonic() - t0, 30.0)  # cut short: the sleep was 60 s
        self.assertEqual((res["subtype"], res["is_error"], res["terminal_reason"]),
                         ("error_during_execution", True, "aborted_streaming"))
        self.assertEqual(skipped[-1]["message"]["content"][0]["text"], "[Request interrupted by user]")
        a.user("still alive")
        m, _ = a.until(is_type("assistant"), "next turn")
        self.assertEqual(m["message"]["content"][0]["text"], "still alive")

    def test_interrupt_while_waiting_for_permission(self):
        a = self.start()
        a.user("@bash echo hi")
        req, _ = a.until(is_type("control_request"), "can_use_tool")
        a.send({"type": "control_request", "request_id": "int_2", "request": {"subtype": "interrupt"}})
        a.until(lambda m: m.get("type") == "control_response", "interrupt ack")
        cancel = a.next()
        self.assertEqual(cancel, {"type": "control_cancel_request", "request_id": req["request_id"]})
        res, _ = a.until(is_type("result"), "result")
        self.assertEqual(res["subtype"], "error_during_execution")

    def test_sigterm_ends_turn_with_result_and_exits_0(self):
        a = self.start()
        a.user("@sleep 60000")
        a.until(is_type("system", "init"), "init")
        a.p.send_signal(signal.SIGTERM)
        res, _ = a.until(is_type("result"), "result")
        self.assertEqual(res["terminal_reason"], "aborted_streaming")
        self.assertEqual(a.wait(10), 0)

    def test_fail_exits_with_status(self):
        a = self.start()
        a.user("@fail 3 the model fell over")
        self.assertEqual(a.wait(), 3)
        self.assertIn("the model fell over", a.stderr())
        self.assertEqual([m["type"] for m in a.rest()], ["system"])

    def test_error_and_env_and_stdin_eof_during_permission(self):
        a = self.start()
        a.user("@env CORRAL_TOKEN\n@error upstream exploded")
        res, skipped = a.until(is_type("result"), "result")
        self.assertEqual(skipped[-1]["message"]["content"][0]["text"], "CORRAL_TOKEN=tok-1")
        self.assertEqual((res["subtype"], res["errors"]), ("error_during_execution", ["upstream exploded"]))
        a.user("@bash echo hi")
        a.until(is_type("control_request"), "can_use_tool")
        a.close()  # the host went away mid-question
        res, skipped = a.until(is_type("result"), "result")
        self.assertIn("Stream closed", [m for m in skipped if m["type"] == "user"][0]["message"]["content"][0]["content"])
        self.assertEqual(a.wait(), 0)

    def test_script_file_drives_turns(self):
        script = os.path.join(self.tmp, "script.json")
        with open(script, "w", encoding="utf-8") as f:
            json.dump([[{"text": "scripted one"}], ["@ask scripted question?"]], f)
        a = self.start(env=dict(self.env, FAKE_CLAUDE_SCRIPT=script))
        a.user("ignored")
        m, _ = a.until(is_type("assistant"), "turn 1")
        self.assertEqual(m["message"]["content"][0]["text"], "scripted one")
        a.user("ignored too")
        res, _ = a.until(lambda x: x.get("type") == "result" and x.get("result") != "scripted one", "turn 2")
        self.assertEqual(res["result"], "scripted question?")
        a.user("from the prompt")
        res, _ = a.until(is_type("result"), "turn 3")
        self.assertEqual(res["result"], "from the prompt")

    def test_print_mode_with_json_output(self):
        r = self.run_cli("-p", "--output-format", "json", "just this")
        self.assertEqual(r.returncode, 0, r.stderr)
        res = json.loads(r.stdout)
        self.assertEqual((res["type"], res["result"]), ("result", "just this"))

    def test_bad_stdin_line_is_fatal(self):
        a = self.start()
        a.p.stdin.write(b"this is not json\n")
        a.p.stdin.flush()
        self.assertEqual(a.wait(), 1)
        self.assertIn("Error parsing streaming input line", a.stderr())


class CodexTest(FakeTest):
    def start(self, *extra, env=None):
        self.next_id = 0
        a = Proc(self, [CODEX, "app-server"] + list(extra), self.work, env or self.env)
        return a

    def rpc(self, a, method, params):
        self.next_id += 1
        a.send({"id": self.next_id, "method": method, "params": params})
        return self.next_id

    def response(self, a, rid):
        m, skipped = a.until(lambda x: x.get("id") == rid and "method" not in x, "response %s" % rid)
        return m, skipped

    def init(self, a):
        r, _ = self.response(a, self.rpc(a, "initialize", {"clientInfo": {"name": "corrald", "title": "Corral", "version": "0.1"}}))
        a.send({"method": "initialized"})
        return r

    def new_thread(self, a, **params):
        r, _ = self.response(a, self.rpc(a, "thread/start", dict({"cwd": self.work}, **params)))
        tid = r["result"]["thread"]["id"]
        n = a.next()
        self.assertEqual((n["method"], n["params"]["thread"]["id"]), ("thread/started", tid))
        return tid

    def turn(self, a, tid, text):
        r, _ = self.response(a, self.rpc(a, "turn/start", {"threadId": tid, "input": [{"type": "text", "text": text}]}))
        self.assertEqual(r["result"]["turn"]["status"], "inProgress")
        return r["result"]["turn"]["id"]

    def completed(self, a):
        return a.until(lambda x: x.get("method") == "turn/completed", "turn/completed")

    def test_cli_errors(self):
        r = subprocess.run([CODEX, "--version"], capture_output=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 0)
        self.assertRegex(r.stdout.decode(), r"^codex-cli \d+\.\d+\.\d+\n$")
        r = subprocess.run([CODEX, "app-server", "--bogus"], capture_output=True, timeout=TIMEOUT)
        self.assertEqual(r.returncode, 2)
        self.assertTrue(r.stderr.decode().startswith("error: unexpected argument '--bogus' found"))

    def test_initialize_handshake(self):
        a = self.start()
        early, _ = self.response(a, self.rpc(a, "thread/start", {}))
        self.assertEqual(early["error"], {"code": -32600, "message": "Not initialized"})
        r = self.init(a)
        for key in ("userAgent", "codexHome", "platformFamily", "platformOs"):
            self.assertIn(key, r["result"])
        self.assertNotIn("jsonrpc", r)
        again, _ = self.response(a, self.rpc(a, "initialize", {"clientInfo": {"name": "x", "version": "1"}}))
        self.assertEqual(again["error"]["message"], "Already initialized")
        bad, _ = self.response(a, self.rpc(a, "no/such", {}))
        self.assertEqual(bad["error"]["code"], -32600)

    def test_plain_turn_streams_agent_message(self):
        a = self.start()
        self.init(a)
        tid = self.new_thread(a)
        turn_id = self.turn(a, tid, "hello codex world")
        done, skipped = self.completed(a)
        methods = [m["method"] for m in skipped]
        self.assertIn("turn/started", methods)
        deltas = "".join(m["params"]["delta"] for m in skipped if m["method"] == "item/agentMessage/delta")
        self.assertEqual(deltas, "hello codex world")
        items = [m["params"]["item"] for m in skipped if m["method"] == "item/completed"]
        self.assertEqual([i["type"] for i in items], ["userMessage", "agentMessage"])
        self.assertEqual(items[1]["text"], "hello codex world")
        self.assertEqual(done["params"]["threadId"], tid)
        self.assertEqual((done["params"]["turn"]["id"], done["params"]["turn"]["status"]), (turn_id, "completed"))
        a.close()
        self.assertEqual(a.wait(), 0)

    def test_command_approval_accept_and_decline(self):
        a = self.start()
        self.init(a)
        tid = self.new_thread(a)
        turn_id = self.turn(a, tid, "@bash echo approved-run\n@bash touch declined-file")
        req, skipped = a.until(lambda x: x.get("method") == "item/commandExecution/requestApproval", "approval 1")
        started = [m["params"]["item"] for m in skipped if m.get("method") == "item/started"][-1]
        p = req["params"]
        self.assertEqual((p["threadId"], p["turnId"], p["itemId"], p["command"]), (tid, turn_id, started["id"], "echo approved-run"))
        self.assertIsInstance(req["id"], int)
        a.send({"id": req["id"], "result": {"decision": "accept"}})
        resolved = a.next()
        self.assertEqual(resolved, {"method": "serverRequest/resolved", "params": {"threadId": tid, "requestId": req["id"]}})
        done1, _ = a.until(lambda x: x.get("method") == "item/completed", "item 1 completed")
        item = done1["params"]["item"]
        self.assertEqual((item["status"], item["exitCode"], item["aggregatedOutput"]), ("completed", 0, "approved-run\n"))
        req2, _ = a.until(lambda x: x.get("method") == "item/commandExecution/requestApproval", "approval 2")
        self.assertNotEqual(req2["id"], req["id"])
        a.send({"id": req2["id"], "result": {"decision": "decline"}})
        done2, _ = a.until(lambda x: x.get("method") == "item/completed", "item 2 completed")
        self.assertEqual(done2["params"]["item"]["status"], "declined")
        done, _ = self.completed(a)
        self.assertEqual(done["params"]["turn"]["status"], "completed")
        self.assertFalse(os.path.exists(os.path.join(self.work, "declined-file")))

    def test_file_change_approval(self):
        a = self.start()
        self.init(a)
        tid = self.new_thread(a)
        self.turn(a, tid, "@write src/new.txt made by codex")
        req, skipped = a.until(lambda x: x.get("method") == "item/fileChange/requestApproval", "approval")
        item = [m["params"]["item"] for m in skipped if m.get("method") == "item/started"][-1]
        self.assertEqual(item["type"], "fileChange")
        self.assertEqual(item["changes"][0]["path"], os.path.join(self.work, "src", "new.txt"))
        self.assertEqual(item["changes"][0]["kind"], {"type": "add"})
        self.assertIn("+made by codex", item["changes"][0]["diff"])
        self.assertFalse(os.path.exists(os.path.join(self.work, "src", "new.txt")))
        a.send({"id": req["id"], "result": {"decision": "accept"}})
        done, skipped = self.completed(a)
        self.assertIn("turn/diff/updated", [m["method"] for m in skipped])
        self.assertEqual(self.read("src/new.txt"), "made by codex")

    def test_never_policy_needs_no_approval_and_ask(self):
        a = self.start("-c", "approval_policy=never")
        self.init(a)
        tid = self.new_thread(a)
        self.turn(a, tid, "@bash echo x > out.txt\n@ask Ship it?\n@text never said")
        done, skipped = self.completed(a)
        self.assertFalse(any("requestApproval" in m.get("method", "") for m in skipped))
        texts = [m["params"]["item"]["text"] for m in skipped
                 if m.get("method") == "item/completed" and m["params"]["item"]["type"] == "agentMessage"]
        self.assertEqual(texts, ["Ship it?"])
        self.assertEqual(self.read("out.txt"), "x\n")

    def test_resume_and_unknown_thread(self):
        a = self.start()
        self.init(a)
        tid = self.new_thread(a)
        self.turn(a, tid, "remember me")
        self.completed(a)
        a.close()
        self.assertEqual(a.wait(), 0)
        b = self.start(env=dict(self.env, CORRAL_SESSION="s-99"))
        self.init(b)
        missing, _ = self.response(b, self.rpc(b, "thread/resume", {"threadId": "0190f3c2-0000-7000-8000-000000000000"}))
        self.assertEqual(missing["error"], {"code": -32600,
                                            "message": "no rollout found for thread id 0190f3c2-0000-7000-8000-000000000000"})
        r, _ = self.response(b, self.rpc(b, "thread/resume", {"threadId": tid}))
        self.assertEqual(r["result"]["thread"]["id"], tid)
        self.assertEqual(len(r["result"]["thread"]["turns"]), 1)
        self.turn(b, tid, "@history")
        done, skipped = self.completed(b)
        texts = [m["params"]["item"]["text"] for m in skipped
                 if m.get("method") == "item/completed" and m["params"]["item"]["type"] == "agentMessage"]
        self.assertEqual(texts, ["History: 1 earlier user message(s); last: remember me"])
        events = [(x["event"], x.get("thread_id"), x["env"].get("CORRAL_SESSION")) for x in self.log_lines()]
        self.assertEqual(events, [("start", None, "s-42"), ("thread/start", tid, "s-42"), ("start", None, "s-99"),
                                  ("thread/resume", tid, "s-99")])
        c = self.start()
        self.init(c)
        nf, _ = self.response(c, self.rpc(c, "turn/start", {"threadId": tid, "input": []}))
        self.assertEqual(nf["error"]["message"], "thread not found: %s" % tid)

    def test_interrupt_and_cancel(self):
        a = self.start()
        self.init(a)
        tid = self.new_thread(a)
        turn_id = self.turn(a, tid, "@sleep 60000\n@text never said")
        a.until(lambda x: x.get("method") == "turn/started", "turn/started")
        t0 = time.monotonic()
        r, _ = self.response(a, self.rpc(a, "turn/interrupt", {"threadId": tid, "turnId": turn_id}))
        self.assertEqual(r["result"], {})
        done, _ = self.completed(a)
        self.assertLess(time.monotonic() - t0, 30.0)  # cut short: the sleep was 60 s
        self.assertEqual(done["params"]["turn"]["status"], "interrupted")
        self.turn(a, tid, "@bash echo never")
        req, _ = a.until(lambda x: x.get("method") == "item/commandExecution/requestApproval", "approval")
        a.send({"id": req["id"], "result": {"decision": "cancel"}})
        done, _ = self.completed(a)
        self.assertEqual(done["params"]["turn"]["status"], "interrupted")

    def test_error_fail_and_sigterm(self):
        a = self.start()
        self.init(a)
        tid = self.new_thread(a)
        self.turn(a, tid, "@error model unavailable")
        done, skipped = self.completed(a)
        self.assertEqual(done["params"]["turn"]["status"], "failed")
        self.assertEqual(done["params"]["turn"]["error"]["message"], "model unavailable")
        self.assertIn("error", [m["method"] for m in skipped])
        self.turn(a, tid, "@sleep 60000")
        a.until(lambda x: x.get("method") == "turn/started", "turn/started")
        a.p.send_signal(signal.SIGTERM)
        done, _ = self.completed(a)
        self.assertEqual(done["params"]["turn"]["status"], "interrupted")
        self.assertEqual(a.wait(10), 0)
        b = self.start()
        self.init(b)
        tid = self.new_thread(b)
        self.turn(b, tid, "@fail 7 codex crashed")
        self.assertEqual(b.wait(), 7)
        self.assertIn("codex crashed", b.stderr())


class DirectiveTest(unittest.TestCase):
    def test_parse(self):
        sys.path.insert(0, HERE)
        import fake_agent_common as fac
        steps = fac.parse_directives("hi\nthere\n@bash ls -l\n@@literal\n@edit f 'a b' \"c\\nd\"\n@sleep soon\n@unknown x")
        self.assertEqual(steps, [
            {"op": "text", "text": "hi\nthere"},
            {"op": "bash", "command": "ls -l"},
            {"op": "text", "text": "@literal"},
            {"op": "edit", "path": "f", "old": "a b", "new": "c\nd"},
            {"op": "error", "message": "fake agent: bad directive '@sleep soon': @sleep needs a whole number, got 'soon'"},
            {"op": "text", "text": "@unknown x"},
        ])


if __name__ == "__main__":
    unittest.main()
