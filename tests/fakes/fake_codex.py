#!/usr/bin/env -S python3 # tests/fakes/fake_codex.py — scripted stand-in for `codex app-server` (JSON-RPC over stdio)
"""A fake `codex app-server` for tests: JSON-RPC 2.0 over stdio, one JSON object a line, with the
"jsonrpc" member left out as the real server does (a client may send it; it is ignored).  What a
turn does comes from the directive language of fake_agent_common.py, in the turn's text input or
in the script file named by FAKE_CODEX_SCRIPT.

Command line (clap-style errors: "error: unexpected argument '--x' found", usage, status 2):
    fake_codex.py [-c key=value]... app-server [--listen stdio://] [-c key=value]...
    fake_codex.py --version | -V           prints "codex-cli 0.150.0"
  -c approval_policy=never|on-request|... and -c model=NAME set the defaults of new threads.

Client -> server requests (before `initialize` every request gets -32600 "Not initialized"):
  initialize {clientInfo:{name,title,version}, capabilities?}
      -> {userAgent, codexHome, platformFamily, platformOs}; a second one gets "Already initialized"
  initialized (notification)
  thread/start {cwd?, model?, approvalPolicy?, sandbox?, ...}
      -> {thread, model, modelProvider, serviceTier, cwd, instructionSources, approvalPolicy,
          approvalsReviewer, sandbox, reasoningEffort}; then notification thread/started {thread}
  thread/resume {threadId, ...} -> same shape, thread.turns filled, no notification; an unknown id
      gets -32600 "no rollout found for thread id ID"
  thread/read {threadId, includeTurns?} -> {thread}
  turn/start {threadId, input:[{type:"text",text}...], cwd?, approvalPolicy?, ...}
      -> {turn:{id, items:[], itemsView, status:"inProgress", error:null, startedAt, completedAt:null,
          durationMs:null}}; then the turn streams (below).  A thread not started/resumed on this
      connection gets -32600 "thread not found: ID"; a second turn while one runs gets -32600.
  turn/interrupt {threadId, turnId} -> {} and the turn ends with turn/completed status "interrupted"
  anything else -> -32600 "Invalid request: unknown variant `METHOD`"
Server -> client during a turn:
  thread/status/changed {threadId, status:{type:"active",activeFlags:[...]}|{type:"idle"}}
  turn/started {threadId, turn}
  item/started, item/completed {item, threadId, turnId, startedAtMs|completedAtMs}; items are
      userMessage {id, clientId, content}, agentMessage {id, text, phase, memoryCitation},
      commandExecution {id, command, cwd, processId, source, status, commandActions,
      aggregatedOutput, exitCode, durationMs}, fileChange {id, changes:[{path, kind, diff}], status}
  item/agentMessage/delta {threadId, turnId, itemId, delta}
  item/commandExecution/outputDelta {threadId, turnId, itemId, delta}
  item/commandExecution/requestApproval (server request, integer id) {threadId, turnId, itemId,
      startedAtMs, reason, command, cwd, commandActions}
  item/fileChange/requestApproval (server request) {threadId, turnId, itemId, startedAtMs, reason,
      grantRoot}
      answered {decision: "accept"|"acceptForSession"|"decline"|"cancel"} (or the object forms of
      acceptWithExecpolicyAmendment / applyNetworkPolicyAmendment, taken as accept); an error
      answer counts as decline; "cancel" also interrupts the turn
  serverRequest/resolved {threadId, requestId}
  turn/diff/updated {threadId, turnId, diff}
  error {error:{message, codexErrorInfo, additionalDetails}, willRetry, threadId, turnId}
  turn/completed {threadId, turn} with turn.status "completed" | "interrupted" | "failed"
Approval requests are sent unless the thread's approval policy is "never".  SIGTERM/SIGINT/SIGHUP:
a running turn ends "interrupted", then the process exits 0.  End of stdin exits 0.

Environment:
  FAKE_CODEX_SCRIPT      script file (see fake_agent_common.py)
  FAKE_CODEX_STATE_DIR   threads, one <threadId>.json each (else FAKE_AGENT_STATE_DIR, else
                         ~/.fake-codex/threads); thread/resume needs the file
  FAKE_CODEX_LOG         JSON lines (else FAKE_AGENT_LOG): one {"agent":"codex","event":"start",
                         "argv","cwd","env" (CORRAL_*),"pid","time"} per invocation, and one per
                         thread/start and thread/resume ({"event","thread_id","resume","cwd",...})
"""

import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import fake_agent_common as fac  # noqa: E402

VERSION = "0.150.0"
DEFAULT_MODEL = "gpt-5.1-codex"
INVALID_REQUEST = -32600

USAGE = """Usage: codex app-server [OPTIONS] [COMMAND]

For more information, try '--help'."""

HELP = """[experimental] Run the app server or related tooling (fake, for tests)

Usage: codex app-server [OPTIONS] [COMMAND]

Options:
  -c, --config <key=value>  Override a configuration value
      --listen <URL>        Transport endpoint URL [default: stdio://]
  -h, --help                Print help
"""


class RpcError(Exception):
    def __init__(self, message, code=INVALID_REQUEST):
        super().__init__(message)
        self.code = code


def clap_error(msg):
    fac.eprint("error: %s\n\n%s" % (msg, USAGE))
    sys.exit(2)


def parse_args(argv):
    """Returns (config overrides, listen URL) or exits 0/2 the way clap does."""
    config = {}
    listen = "stdio://"
    sub = None
    args = list(argv)
    while args:
        a = args.pop(0)
        if a in ("-V", "--version"):
            print("codex-cli %s" % VERSION)
            sys.exit(0)
        if a in ("-h", "--help"):
            sys.stdout.write(HELP)
            sys.exit(0)
        if a in ("-c", "--config") or a.startswith("--config="):
            v = a.split("=", 1)[1] if a.startswith("--config=") else (args.pop(0) if args else None)
            if v is None:
                clap_error("a value is required for '--config <key=value>' but none was supplied")
            if "=" not in v:
                clap_error("invalid value '%s' for '--config <key=value>': Invalid override (missing '='): %s" % (v, v))
            k, val = v.split("=", 1)
            config[k.strip()] = val.strip().strip("\"'")
        elif a == "--listen" or a.startswith("--listen="):
            if sub != "app-server":
                clap_error("unexpected argument '%s' found" % a)
            listen = a.split("=", 1)[1] if "=" in a else (args.pop(0) if args else None)
            if listen is None:
                clap_error("a value is required for '--listen <URL>' but none was supplied")
        elif a.startswith("-"):
            clap_error("unexpected argument '%s' found" % a)
        elif sub is None:
            sub = a
        else:
            clap_error("unexpected argument '%s' found" % a)
    if sub != "app-server":
        fac.eprint("fake-codex: only `codex app-server` is implemented (got %s)" % (sub or "no subcommand"))
        sys.exit(2)
    if listen != "stdio://":
        fac.eprint("fake-codex: only --listen stdio:// is implemented")
        sys.exit(2)
    return config, listen


def sandbox_policy(mode, cwd):
    if mode in ("read-only", "readOnly"):
        return {"type": "readOnly"}
    if mode in ("danger-full-access", "dangerFullAccess"):
        return {"type": "dangerFullAccess"}
    return {"type": "workspaceWrite", "writableRoots": [cwd], "networkAccess": False, "excludeTmpdirEnvVar": False,
            "excludeSlashTmp": False}


class Interrupted(Exception):
    """The running turn must stop (turn/interrupt, a "cancel" decision or a signal)."""


class Server:
    def __init__(self, config, store, script, log_path):
        self.config = config
        self.store = store
        self.script = script
        self.log_path = log_path
        self.chan = fac.Channel()
        self.initialized = False
        self.threads = {}  # threads loaded on this connection, by id
        self.active = None  # (thread, turn) while a turn runs
        self.interrupt = False
        self.next_id = 0
        self.responses = {}
        self.eof = False
        self.signalled = None
        self.turn_index = 0

    # -- wire --------------------------------------------------------------------------------
    def notify(self, method, params):
        self.chan.send({"method": method, "params": params})

    def reply(self, rid, result):
        self.chan.send({"id": rid, "result": result})

    def reply_error(self, rid, code, message):
        self.chan.send({"id": rid, "error": {"code": code, "message": message}})

    def run(self):
        self.chan.install_signals()
        while not self.eof:
            self.dispatch(self.chan.get())
            if self.signalled:
                break
        sys.stdout.flush()
        os._exit(0)

    def dispatch(self, ev):
        kind = ev[0]
        if kind == "eof":
            self.eof = True
            if self.active:
                self.interrupt = True
        elif kind == "signal":
            self.signalled = ev[1]
            if self.active:
                self.interrupt = True
        elif kind == "bad":
            fac.eprint("fake-codex: ignoring a line that is not JSON: %s" % ev[2])
        else:
            msg = ev[1]
            if not isinstance(msg, dict):
                return
            if "method" in msg and "id" in msg:
                self.request(msg)
            elif "method" in msg:
                pass  # notifications: `initialized` and the like need no answer
            elif "id" in msg:
                self.responses[msg["id"]] = msg

    def wait(self, timeout):
        """Handles events for up to `timeout` seconds; raises Interrupted when the turn must stop."""
        if self.interrupt:
            raise Interrupted()
        ev = self.chan.get(timeout)
        if ev is not None:
            self.dispatch(ev)
        if self.interrupt:
            raise Interrupted()

    def sleep(self, seconds):
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            self.wait(deadline - time.monotonic())

    def ask_client(self, method, params):
        """Sends a server request and waits for its answer; returns the response object (with result
        or error).  Raises Interrupted (after serverRequest/resolved) when the turn stops first."""
        rid = self.next_id
        self.next_id += 1
        self.chan.send({"id": rid, "method": method, "params": params})
        try:
            while rid not in self.responses:
                self.wait(None)
        finally:
            self.notify("serverRequest/resolved", {"threadId": params["threadId"], "requestId": rid})
        return self.responses.pop(rid)

    # -- requests ----------------------------------------------------------------------------
    def request(self, msg):
        rid, method = msg["id"], msg["method"]
        params = msg.get("params") if isinstance(msg.get("params"), dict) else {}
        try:
            if method == "initialize":
                if self.initialized:
                    raise RpcError("Already initialized")
                self.initialized = True
                info = params.get("clientInfo") if isinstance(params.get("clientInfo"), dict) else {}
                self.reply(rid, {"userAgent": "%s/%s (%s %s; %s) fake-codex" % (
                    info.get("name", "codex_app_server"), VERSION, platform.system(), platform.release(),
                    platform.machine()), "codexHome": os.environ.get("CODEX_HOME") or os.path.expanduser("~/.codex"),
                    "platformFamily": "unix", "platformOs": sys.platform})
                return
            if not self.initialized:
                raise RpcError("Not initialized")
            handler = {"thread/start": self.thread_start, "thread/resume": self.thread_resume,
                       "thread/read": self.thread_read, "turn/start": self.turn_start,
                       "turn/interrupt": self.turn_interrupt}.get(method)
            if handler is None:
                raise RpcError("Invalid request: unknown variant `%s`" % method)
            handler(rid, params)
        except RpcError as e:
            self.reply_error(rid, e.code, str(e))

    @staticmethod
    def need(params, key):
        v = params.get(key)
        if not isinstance(v, str) or not v:
            raise RpcError("Invalid request: missing field `%s`" % key)
        return v

    def thread_obj(self, t, with_turns):
        status = {"type": "idle"}
        if self.active and self.active[0] is t:
            status = {"type": "active", "activeFlags": ["running"]}
        return {"id": t["id"], "sessionId": t["id"], "forkedFromId": None, "parentThreadId": None,
                "preview": t.get("preview", ""), "ephemeral": False, "modelProvider": "openai",
                "createdAt": t["createdAt"], "updatedAt": t["updatedAt"], "status": status,
                "path": self.store.path(t["id"]), "cwd": t["cwd"], "cliVersion": VERSION, "source": "vscode",
                "threadSource": None, "agentNickname": None, "agentRole": None, "gitInfo": None, "name": None,
                "turns": [self.turn_obj(x) for x in t["turns"]] if with_turns else []}

    @staticmethod
    def turn_obj(turn, items=None):
        return {"id": turn["id"], "items": turn["items"] if items is None else items,
                "itemsView": "full" if items is None else "notLoaded", "status": turn["status"],
                "error": turn.get("error"), "startedAt": turn.get("startedAt"), "completedAt": turn.get("completedAt"),
                "durationMs": turn.get("durationMs")}

    def thread_response(self, t, with_turns):
        return {"thread": self.thread_obj(t, with_turns), "model": t["model"], "modelProvider": "openai",
                "serviceTier": None, "cwd": t["cwd"], "instructionSources": [], "approvalPolicy": t["approvalPolicy"],
                "approvalsReviewer": "user", "sandbox": sandbox_policy(t["sandbox"], t["cwd"]),
                "reasoningEffort": "medium"}

    def log(self, event, t, resume=None):
        try:
            fac.append_log(self.log_path, {"agent": "codex", "event": event, "time": fac.iso_now(), "pid": os.getpid(),
                                           "thread_id": t["id"], "resume": resume, "cwd": os.getcwd(),
                                           "thread_cwd": t["cwd"], "env": fac.corral_env()})
        except OSError as e:
            fac.eprint("fake-codex: cannot write log: %s" % e)

    def save(self, t):
        t["updatedAt"] = int(time.time())
        self.store.save(t["id"], t)

    def apply_overrides(self, t, params):
        if isinstance(params.get("cwd"), str) and params["cwd"]:
            t["cwd"] = os.path.abspath(params["cwd"])
        if params.get("approvalPolicy") is not None:
            t["approvalPolicy"] = params["approvalPolicy"]
        if isinstance(params.get("sandbox"), str):
            t["sandbox"] = params["sandbox"]
        if isinstance(params.get("model"), str) and params["model"]:
            t["model"] = params["model"]

    def thread_start(self, rid, params):
        now = int(time.time())
        t = {"id": fac.uuid7(), "createdAt": now, "updatedAt": now, "cwd": os.getcwd(), "preview": "",
             "model": self.config.get("model", DEFAULT_MODEL),
             "approvalPolicy": self.config.get("approval_policy", "on-request"),
             "sandbox": self.config.get("sandbox_mode", "workspace-write"), "turns": [], "resumes": []}
        self.apply_overrides(t, params)
        self.threads[t["id"]] = t
        self.save(t)
        self.log("thread/start", t)
        self.reply(rid, self.thread_response(t, False))
        self.notify("thread/started", {"thread": self.thread_obj(t, False)})

    def thread_resume(self, rid, params):
        tid = self.need(params, "threadId")
        t = self.threads.get(tid)
        if t is None:
            t = self.store.load(tid) if fac.is_uuid(tid) else None
            if not isinstance(t, dict):
                raise RpcError("no rollout found for thread id %s" % tid)
            self.threads[tid] = t
        self.apply_overrides(t, params)
        t.setdefault("resumes", []).append({"time": fac.iso_now(), "pid": os.getpid(), "env": fac.corral_env()})
        self.save(t)
        self.log("thread/resume", t, resume=tid)
        self.reply(rid, self.thread_response(t, True))

    def thread_read(self, rid, params):
        tid = self.need(params, "threadId")
        t = self.threads.get(tid) or (self.store.load(tid) if fac.is_uuid(tid) else None)
        if not isinstance(t, dict):
            raise RpcError("no rollout found for thread id %s" % tid)
        self.reply(rid, {"thread": self.thread_obj(t, bool(params.get("includeTurns")))})

    def turn_interrupt(self, rid, params):
        tid, turn_id = self.need(params, "threadId"), self.need(params, "turnId")
        if not self.active or self.active[0]["id"] != tid or self.active[1]["id"] != turn_id:
            raise RpcError("no active turn to interrupt")
        self.interrupt = True
        self.reply(rid, {})

    # -- turns -------------------------------------------------------------------------------
    def turn_start(self, rid, params):
        tid = self.need(params, "threadId")
        t = self.threads.get(tid)
        if t is None:
            raise RpcError("thread not found: %s" % tid)
        if self.active:
            raise RpcError("a turn is already in progress on thread %s" % self.active[0]["id"])
        inputs = params.get("input")
        if not isinstance(inputs, list):
            raise RpcError("Invalid request: missing field `input`")
        self.apply_overrides(t, params)
        prompt = "\n".join(i.get("text", "") for i in inputs if isinstance(i, dict) and i.get("type") == "text")
        earlier = [x.get("prompt", "") for x in t["turns"]]
        turn = {"id": fac.uuid7(), "status": "inProgress", "items": [], "error": None, "startedAt": int(time.time()),
                "completedAt": None, "durationMs": None, "prompt": prompt}
        t0 = time.monotonic()
        if not t.get("preview"):
            t["preview"] = prompt[:200]
        t["turns"].append(turn)
        self.active = (t, turn)
        self.interrupt = False
        self.reply(rid, {"turn": self.turn_obj(turn, items=[])})
        self.notify("thread/status/changed", {"threadId": tid, "status": {"type": "active", "activeFlags": ["running"]}})
        self.notify("turn/started", {"threadId": tid, "turn": self.turn_obj(turn, items=[])})
        self.item_done(t, turn, {"type": "userMessage", "id": fac.new_uuid(), "clientId": None,
                                 "content": [dict(i) for i in inputs if isinstance(i, dict)]})
        steps = self.script.steps_for(self.turn_index, prompt) or [{"op": "text", "text": "(empty prompt)"}]
        self.turn_index += 1
        status, error = "completed", None
        ctx = {"ondeny": "continue", "diff": {}}
        try:
            for st in steps:
                self.wait(0)
                if self.step(t, turn, st, ctx, earlier) == "end":
                    break
        except Interrupted:
            status = "interrupted"
        except TurnFailed as e:
            status = "failed"
            error = {"message": str(e), "codexErrorInfo": None, "additionalDetails": None}
            self.notify("error", {"error": error, "willRetry": False, "threadId": tid, "turnId": turn["id"]})
        turn.update({"status": status, "error": error, "completedAt": int(time.time()),
                     "durationMs": int((time.monotonic() - t0) * 1000)})
        self.active = None
        self.save(t)
        self.notify("turn/completed", {"threadId": tid, "turn": self.turn_obj(turn)})
        self.notify("thread/status/changed", {"threadId": tid, "status": {"type": "idle"}})
        self.interrupt = False

    def item_started(self, t, turn, item):
        self.notify("item/started", {"item": item, "threadId": t["id"], "turnId": turn["id"], "startedAtMs": fac.now_ms()})

    def item_completed(self, t, turn, item):
        turn["items"].append(item)
        self.notify("item/completed", {"item": item, "threadId": t["id"], "turnId": turn["id"],
                                       "completedAtMs": fac.now_ms()})

    def item_done(self, t, turn, item):
        self.item_started(t, turn, item)
        self.item_completed(t, turn, item)

    def say(self, t, turn, text):
        iid = fac.rand_id("msg_", 32)
        self.item_started(t, turn, {"type": "agentMessage", "id": iid, "text": "", "phase": None, "memoryCitation": None})
        words = text.split(" ")
        third = max(1, (len(words) + 2) // 3)
        for k in range(0, len(words), third):
            chunk = " ".join(words[k : k + third]) + (" " if k + third < len(words) else "")
            self.notify("item/agentMessage/delta", {"threadId": t["id"], "turnId": turn["id"], "itemId": iid, "delta": chunk})
        self.item_completed(t, turn, {"type": "agentMessage", "id": iid, "text": text, "phase": None, "memoryCitation": None})

    def needs_approval(self, t):
        return t.get("approvalPolicy") != "never"

    def step(self, t, turn, st, ctx, earlier):
        op = st["op"]
        if op == "text":
            self.say(t, turn, st["text"])
        elif op == "ask":
            self.say(t, turn, st["text"])
            return "end"
        elif op == "history":
            self.say(t, turn, fac.history_text(earlier))
        elif op == "env":
            self.say(t, turn, fac.env_text(st["name"]))
        elif op == "sleep":
            self.sleep(st["ms"] / 1000.0)
        elif op == "fail":
            self.save(t)
            fac.fail_now(st["status"], st["message"], "fake-codex: scripted failure (@fail %d)" % st["status"])
        elif op == "error":
            raise TurnFailed(st["message"])
        elif op == "ondeny":
            ctx["ondeny"] = st["policy"]
        elif op == "bash":
            return self.command(t, turn, st["command"], ctx)
        elif op in ("write", "edit"):
            return self.file_change(t, turn, st, ctx)
        elif op == "read":
            path = fac.resolve_path(t["cwd"], st["path"])
            return self.command(t, turn, "cat %s" % json.dumps(path), ctx, read_path=path)
        return None

    def decide(self, t, turn, method, params):
        """Asks the client; returns "accept", "decline" or "cancel" (Interrupted when the turn stops first)."""
        resp = self.ask_client(method, params)
        result = resp.get("result") if isinstance(resp.get("result"), dict) else None
        d = result.get("decision") if result else None
        if d in ("accept", "acceptForSession") or (isinstance(d, dict) and (
                "acceptWithExecpolicyAmendment" in d or "applyNetworkPolicyAmendment" in d)):
            return "accept"
        if d == "cancel":
            return "cancel"
        return "decline"

    def after_decline(self, t, turn, ctx, what):
        if ctx["ondeny"] == "stop":
            self.say(t, turn, "The %s was declined, so I stopped here." % what)
            return "end"
        return None

    def command(self, t, turn, command, ctx, read_path=None):
        iid = fac.rand_id("call_", 24)
        read_only = read_path is not None
        actions = [{"type": "read", "command": command, "name": os.path.basename(read_path), "path": read_path}] \
            if read_only else [{"type": "unknown", "command": command}]
        item = {"type": "commandExecution", "id": iid, "command": command, "cwd": t["cwd"], "processId": None,
                "source": "agent", "status": "inProgress", "commandActions": actions, "aggregatedOutput": None,
                "exitCode": None, "durationMs": None}
        self.item_started(t, turn, item)
        if not read_only and self.needs_approval(t):
            self.notify("thread/status/changed", {"threadId": t["id"], "status": {"type": "active",
                                                  "activeFlags": ["running", "waitingOnApproval"]}})
            try:
                d = self.decide(t, turn, "item/commandExecution/requestApproval", {
                    "threadId": t["id"], "turnId": turn["id"], "itemId": iid, "startedAtMs": fac.now_ms(),
                    "environmentId": None, "command": command, "cwd": t["cwd"], "commandActions": actions})
            except Interrupted:
                self.item_completed(t, turn, dict(item, status="declined"))
                raise
            if d != "accept":
                self.item_completed(t, turn, dict(item, status="declined"))
                if d == "cancel":
                    raise Interrupted()
                return self.after_decline(t, turn, ctx, "command")
            self.notify("thread/status/changed", {"threadId": t["id"], "status": {"type": "active", "activeFlags": ["running"]}})

        def waiter(seconds):
            try:
                self.wait(seconds)
                return False
            except Interrupted:
                return True
        r = fac.run_shell(command, t["cwd"], 600, waiter)
        out = r["stdout"] + r["stderr"]
        if out:
            self.notify("item/commandExecution/outputDelta", {"threadId": t["id"], "turnId": turn["id"], "itemId": iid,
                                                             "delta": out})
        status = "completed" if r["exit_code"] == 0 else "failed"
        self.item_completed(t, turn, dict(item, status=status, aggregatedOutput=out, exitCode=r["exit_code"],
                                          durationMs=r["duration_ms"]))
        if r["interrupted"]:
            raise Interrupted()
        return None

    def file_change(self, t, turn, st, ctx):
        iid = fac.rand_id("call_", 24)
        path = fac.resolve_path(t["cwd"], st["path"])
        try:
            if st["op"] == "write":
                kind, before = fac.plan_write(path, st["content"])
                after = st["content"]
            else:
                before, after = fac.plan_edit(path, st["old"], st["new"])
                kind = "update"
        except (fac.ToolError, OSError) as e:
            item = {"type": "fileChange", "id": iid, "changes": [], "status": "failed"}
            self.item_done(t, turn, item)
            self.say(t, turn, "I could not change %s: %s" % (st["path"], e))
            return None
        diff = fac.unified_diff(path, before if kind == "update" else None, after)
        change = {"path": path, "kind": {"type": "add"} if kind == "create" else {"type": "update", "move_path": None},
                  "diff": diff}
        item = {"type": "fileChange", "id": iid, "changes": [change], "status": "inProgress"}
        self.item_started(t, turn, item)
        if self.needs_approval(t):
            self.notify("thread/status/changed", {"threadId": t["id"], "status": {"type": "active",
                                                  "activeFlags": ["running", "waitingOnApproval"]}})
            try:
                d = self.decide(t, turn, "item/fileChange/requestApproval", {
                    "threadId": t["id"], "turnId": turn["id"], "itemId": iid, "startedAtMs": fac.now_ms(),
                    "reason": None, "grantRoot": None})
            except Interrupted:
                self.item_completed(t, turn, dict(item, status="declined"))
                raise
            if d != "accept":
                self.item_completed(t, turn, dict(item, status="declined"))
                if d == "cancel":
                    raise Interrupted()
                return self.after_decline(t, turn, ctx, "file change")
            self.notify("thread/status/changed", {"threadId": t["id"], "status": {"type": "active", "activeFlags": ["running"]}})
        try:
            fac.do_write(path, after)
        except OSError:
            self.item_completed(t, turn, dict(item, status="failed"))
            return None
        self.item_completed(t, turn, dict(item, status="completed"))
        ctx["diff"][path] = diff
        self.notify("turn/diff/updated", {"threadId": t["id"], "turnId": turn["id"], "diff": "".join(ctx["diff"].values())})
        return None


class TurnFailed(Exception):
    """The @error step: the turn ends with status "failed"."""


def main(argv):
    config, _listen = parse_args(argv)
    log_path = fac.first_env("FAKE_CODEX_LOG", "FAKE_AGENT_LOG")
    fac.append_log(log_path, {"agent": "codex", "event": "start", "time": fac.iso_now(), "pid": os.getpid(),
                              "argv": list(argv), "cwd": os.getcwd(), "env": fac.corral_env(), "resume": None})
    try:
        script = fac.Script.from_env("FAKE_CODEX_SCRIPT")
    except fac.ScriptError as e:
        fac.eprint("fake-codex: %s" % e)
        return 1
    state_dir = fac.first_env("FAKE_CODEX_STATE_DIR", "FAKE_AGENT_STATE_DIR") or os.path.join(
        os.path.expanduser("~"), ".fake-codex", "threads")
    Server(config, fac.StateStore(state_dir), script, log_path).run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
