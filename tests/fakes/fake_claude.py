#!/usr/bin/env -S python3 # tests/fakes/fake_claude.py — scripted stand-in for the `claude` CLI (stream-json protocol)
"""A fake Claude Code CLI for tests: it speaks the CLI's stream-json protocol the way the Claude Agent
SDKs drive it, but does what a script says instead of asking a model.

Command line (commander-style, like the real CLI; the options of `claude --help` are accepted and
most are ignored):

    fake_claude.py -p --verbose --output-format stream-json --input-format stream-json \\
                   --permission-prompt-tool stdio [--resume ID | --continue | --session-id UUID]
                   [--fork-session] [--model M] [--permission-mode MODE] [--allowedTools T...]
                   [--tools T...] [--max-turns N] [--replay-user-messages] [PROMPT]
    fake_claude.py -v | --version          prints "2.1.240 (Claude Code)"
    fake_claude.py -h | --help

Errors are reported as the CLI reports them (stderr, exit status 1): unknown options ("error: unknown
option '--x'"), a missing option value, an --output-format or --permission-mode outside its choices,
"Error: --input-format=stream-json requires output-format=stream-json.", "Error: When using --print,
--output-format=stream-json requires --verbose", "Error: --input-format=stream-json requires
--print.", an --permission-prompt-tool that is neither "stdio" nor an existing MCP tool, a --resume
value that is not a UUID, and an unknown session ("No conversation found with session ID: ID" on
stderr plus a result/error_during_execution line on stdout).  Print mode is -p/--print, or implied
when stdout is not a terminal (the Agent SDKs spawn the CLI without -p).

Protocol (stdin and stdout carry one JSON object a line; every line is flushed at once):
  stdin   {"type":"user","message":{"role":"user","content":"..." | [{"type":"text","text":...}]},
           "parent_tool_use_id":null,"session_id":...}                         a prompt (queued while busy)
          {"type":"control_request","request_id":R,"request":{"subtype":"initialize","hooks":...}}
          {"type":"control_request","request_id":R,"request":{"subtype":"interrupt"}}
          {"type":"control_request",...,"request":{"subtype":"set_permission_mode","mode":M}} (also
           set_model, mcp_status); any other subtype gets a control_response of subtype "error"
          {"type":"control_response","response":{"subtype":"success","request_id":R,"response":
           {"behavior":"allow","updatedInput":{...}} | {"behavior":"deny","message":M,"interrupt"?:b}}}
          {"type":"keep_alive"} and {"type":"control_cancel_request",...} are ignored
  stdout  {"type":"control_response","response":{"subtype":"success","request_id":R,"response":{...}}}
          {"type":"system","subtype":"init","session_id":S,"cwd":...,"tools":[...],"model":...,
           "permissionMode":...,"claude_code_version":...,...}   once, before the first turn's output
          {"type":"assistant","message":{"id":"msg_…","type":"message","role":"assistant","model":...,
           "content":[{"type":"text","text":...} | {"type":"tool_use","id":"toolu_…","name":...,
           "input":{...}}],"stop_reason":null,...},"parent_tool_use_id":null,"session_id":S,"uuid":...}
          {"type":"control_request","request_id":R,"request":{"subtype":"can_use_tool","tool_name":...,
           "input":{...},"permission_suggestions":[...],"tool_use_id":"toolu_…"}}  with
           --permission-prompt-tool stdio, for a tool the permission mode does not already allow
          {"type":"user","message":{"role":"user","content":[{"type":"tool_result","tool_use_id":...,
           "content":...,"is_error":b}]},"parent_tool_use_id":null,"session_id":S,"uuid":...,
           "tool_use_result":...}
          {"type":"result","subtype":"success"|"error_during_execution"|"error_max_turns","is_error":b,
           "duration_ms":...,"duration_api_ms":...,"num_turns":...,"result":"<last text>" (success only),
           "stop_reason":null,"session_id":S,"total_cost_usd":...,"usage":{...},"modelUsage":{...},
           "permission_denials":[{"tool_name","tool_use_id","tool_input"}],"terminal_reason":...,
           "errors":[...] (error subtypes),"uuid":...}                                   ends each turn
An interrupt (control_request, or SIGTERM/SIGINT/SIGHUP) during a turn answers the request, emits a
user message "[Request interrupted by user]" and a result of subtype error_during_execution with
terminal_reason "aborted_streaming" (or "aborted_tools" while a tool runs); after a signal the
process then exits 0.  A signal between turns exits 0 at once.  End of stdin ends the process after
the turn in progress (a pending permission request then fails with "Stream closed").

What a turn does comes from the directive language of fake_agent_common.py (@bash, @write, @edit,
@read, @ask, @sleep, @fail, @error, @ondeny, @history, @env, plain text) in the prompt, or from the
script file named by FAKE_CLAUDE_SCRIPT.

Environment:
  FAKE_CLAUDE_SCRIPT     script file (directive text, or JSON steps / list of per-turn step lists)
  FAKE_CLAUDE_STATE_DIR  where sessions are kept, one <session_id>.json each (else FAKE_AGENT_STATE_DIR,
                         else ~/.fake-claude/sessions); --resume only finds sessions of the same cwd,
                         as the real CLI keeps them per project directory
  FAKE_CLAUDE_LOG        append one JSON line per invocation (else FAKE_AGENT_LOG): {"agent":"claude",
                         "argv","cwd","env" (the CORRAL_* variables),"resume","session_id","pid","time",
                         and "error"/"exit_code" when it stopped before running}
"""

import collections
import json
import os
import re
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.realpath(__file__)))
import fake_agent_common as fac  # noqa: E402

VERSION = "2.1.240"
DEFAULT_MODEL = "claude-sonnet-4-5-20250929"
MODEL_ALIASES = {"sonnet": "claude-sonnet-4-5-20250929", "opus": "claude-opus-4-1-20250805",
                 "haiku": "claude-haiku-4-5-20251001"}
ALL_TOOLS = ["Task", "Bash", "Glob", "Grep", "ExitPlanMode", "Read", "Edit", "Write", "NotebookEdit", "WebFetch",
             "TodoWrite", "WebSearch", "BashOutput", "KillShell", "Skill", "SlashCommand"]
READ_ONLY_TOOLS = {"Read", "Glob", "Grep", "TodoWrite", "BashOutput", "ExitPlanMode"}
EDIT_TOOLS = {"Edit", "Write", "NotebookEdit"}
SLASH_COMMANDS = ["compact", "context", "cost", "init", "pr-comments", "release-notes", "review", "security-review"]
PERMISSION_MODES = ["acceptEdits", "bypassPermissions", "default", "dontAsk", "plan"]

# The options of `claude --help` (2.1.2xx), as commander declares them: <value>, [optional], <list...>.
OPTION_SPEC = [
    "--add-dir <directories...>", "--agent <agent>", "--agents <json>", "--allow-dangerously-skip-permissions",
    "--allowedTools, --allowed-tools <tools...>", "--append-system-prompt <prompt>",
    "--append-system-prompt-file <file>", "--betas <betas...>", "-c, --continue", "--dangerously-skip-permissions",
    "-d, --debug [filter]", "--debug-file <path>", "--disable-slash-commands",
    "--disallowedTools, --disallowed-tools <tools...>", "--effort <level>", "--fallback-model <model>",
    "--file <specs...>", "--fork-session", "-h, --help", "--ide", "--include-hook-events",
    "--include-partial-messages", "--input-format <format>", "--json-schema <schema>",
    "--max-budget-usd <amount>", "--max-thinking-tokens <tokens>", "--max-turns <turns>",
    "--mcp-config <configs...>", "--model <model>", "-n, --name <name>", "--no-session-persistence",
    "--output-format <format>", "--permission-mode <mode>", "--permission-prompt-tool <tool>",
    "--plugin-dir <path>", "-p, --print", "--replay-user-messages", "-r, --resume [value]",
    "--resume-session-at <message>", "--session-id <uuid>", "--setting-sources <sources>",
    "--settings <file-or-json>", "--strict-mcp-config", "--system-prompt <prompt>", "--system-prompt-file <file>",
    "--thinking <mode>", "--tools <tools...>", "--verbose", "-v, --version", "-w, --worktree [name]",
]
CHOICES = {"outputFormat": ["text", "json", "stream-json"], "permissionMode": PERMISSION_MODES}

HELP = """Usage: claude [options] [command] [prompt]

Claude Code (fake, for tests) - starts an interactive session by default, use -p/--print for
non-interactive output

Arguments:
  prompt                                  Your prompt

Options:
  -p, --print                             Print response and exit (useful for pipes)
  --output-format <format>                Output format (only works with --print): "text", "json", or
                                          "stream-json" (choices: "text", "json", "stream-json")
  --input-format <format>                 Input format (only works with --print): "text" or "stream-json"
  --verbose                               Override verbose mode setting from config
  --permission-prompt-tool <tool>         MCP tool to handle permission prompts (only works with --print)
  --permission-mode <mode>                Permission mode to use for the session
  -r, --resume [value]                    Resume a conversation by session ID
  -c, --continue                          Continue the most recent conversation
  --session-id <uuid>                     Use a specific session ID for the conversation
  --model <model>                         Model for the current session
  -v, --version                           Output the version number
  -h, --help                              Display help for command
"""


class Usage(Exception):
    """A command line the CLI refuses: the message goes to stderr, the exit status is 1."""


def _build_options():
    table = {}
    for spec in OPTION_SPEC:
        m = re.match(r"^(.*?)(?: ([<\[])[^>\]]*?(\.\.\.)?[>\]])?$", spec)
        flags, opener, dots = m.group(1), m.group(2), m.group(3)
        kind = "flag" if not opener else ("optional" if opener == "[" else ("list" if dots else "value"))
        names = [n.strip() for n in flags.split(",")]
        long = next(n for n in names if n.startswith("--"))
        key = re.sub(r"-(\w)", lambda mm: mm.group(1).upper(), long[2:])
        opt = {"key": key, "kind": kind, "display": spec}
        for n in names:
            table[n] = opt
    return table


OPTIONS = _build_options()


def parse_args(argv):
    """Reads argv the way commander does; returns (options by key, operands); raises Usage."""
    opts = {}
    operands = []
    args = list(argv)

    def put(opt, value):
        if opt["kind"] == "list":
            opts.setdefault(opt["key"], []).append(value)
        else:
            opts[opt["key"]] = value

    def take_value(opt, inline):
        if inline is not None:
            put(opt, inline)
        elif opt["kind"] == "flag":
            put(opt, True)
        elif opt["kind"] == "optional":
            put(opt, args.pop(0) if args and not args[0].startswith("-") else True)
        else:
            if not args:
                raise Usage("error: option '%s' argument missing" % opt["display"])
            put(opt, args.pop(0))
            if opt["kind"] == "list":
                while args and not args[0].startswith("-"):
                    put(opt, args.pop(0))
        if opt["key"] in CHOICES and isinstance(opts.get(opt["key"]), str) and opts[opt["key"]] not in CHOICES[opt["key"]]:
            raise Usage("error: option '%s' argument '%s' is invalid. Allowed choices are %s." %
                        (opt["display"], opts[opt["key"]], ", ".join(CHOICES[opt["key"]])))

    while args:
        a = args.pop(0)
        if a == "--":
            operands.extend(args)
            break
        if a.startswith("--"):
            name, eq, val = a.partition("=")
            opt = OPTIONS.get(name)
            if opt is None or (eq and opt["kind"] == "flag"):
                raise Usage("error: unknown option '%s'" % a)
            take_value(opt, val if eq else None)
        elif a.startswith("-") and len(a) > 1:
            opt = OPTIONS.get(a[:2])
            if opt is None:
                raise Usage("error: unknown option '%s'" % a)
            rest = a[2:]
            if rest and opt["kind"] == "flag":
                take_value(opt, None)
                args.insert(0, "-" + rest)  # combined short flags: -pc
            else:
                take_value(opt, rest or None)
        else:
            operands.append(a)
    return opts, operands


def tool_rule_matches(rules, name, tool_input):
    """True when a --allowedTools rule ("Bash", "Bash(git diff:*)", "Write(*)") covers this call."""
    for raw in rules:
        for rule in re.findall(r"[A-Za-z_]+(?:\([^)]*\))?", raw):
            m = re.fullmatch(r"([A-Za-z_]+)(?:\((.*)\))?", rule)
            if not m or m.group(1) != name:
                continue
            pat = m.group(2)
            if pat is None or pat in ("", "*"):
                return True
            subject = tool_input.get("command") or tool_input.get("file_path") or ""
            if pat.endswith(":*") and subject.startswith(pat[:-2]):
                return True
            if pat.endswith("*") and subject.startswith(pat[:-1]):
                return True
            if subject == pat:
                return True
    return False


def split_list(values):
    out = []
    for v in values or []:
        out.extend(t for t in re.split(r"[,\s]+", v) if t)
    return out


class Invocation:
    """The one log line of this run; written once, whichever way the run ends."""

    def __init__(self, argv):
        self.record = {"agent": "claude", "time": fac.iso_now(), "pid": os.getpid(), "argv": list(argv),
                       "cwd": os.getcwd(), "env": fac.corral_env(), "resume": None, "session_id": None}
        self.done = False

    def log(self, **extra):
        if self.done:
            return
        self.done = True
        self.record.update(extra)
        try:
            fac.append_log(fac.first_env("FAKE_CLAUDE_LOG", "FAKE_AGENT_LOG"), self.record)
        except OSError as e:
            fac.eprint("fake-claude: cannot write log: %s" % e)

    def fail(self, message, status=1):
        self.log(error=message, exit_code=status)
        fac.eprint(message)
        sys.exit(status)


class Turn:
    def __init__(self):
        self.t0 = time.monotonic()
        self.api_turns = 1
        self.denials = []
        self.last_text = ""
        self.last_was_text = False
        self.used_tools = False
        self.ondeny = "continue"
        self.error = None
        self.max_turns_hit = False
        self.in_tool = False
        self.out_tokens = 0


class Claude:
    def __init__(self, opts, cwd, store, session, script, inv):
        self.opts = opts
        self.cwd = cwd
        self.store = store
        self.session = session
        self.sid = session["session_id"]
        self.script = script
        self.inv = inv
        self.output_format = opts.get("outputFormat", "text")
        self.stream_in = opts.get("inputFormat") == "stream-json"
        model = opts.get("model") or DEFAULT_MODEL
        self.model = MODEL_ALIASES.get(model, model)
        self.mode = "bypassPermissions" if opts.get("dangerouslySkipPermissions") else opts.get("permissionMode", "default")
        self.prompt_tool = opts.get("permissionPromptTool")
        self.allowed = list(opts.get("allowedTools") or [])  # rules may hold spaces: "Bash(git diff:*)"
        disallowed = set(split_list(opts.get("disallowedTools")))
        tools = ALL_TOOLS
        if "tools" in opts:
            listed = split_list(opts["tools"])
            tools = ALL_TOOLS if listed == ["default"] else [t for t in ALL_TOOLS if t in listed]
        self.tools = [t for t in tools if t not in disallowed]
        self.max_turns = int(opts["maxTurns"]) if str(opts.get("maxTurns", "")).isdigit() else None
        self.chan = fac.Channel(read_stdin=self.stream_in)
        self.pending = collections.deque()
        self.responses = {}
        self.eof = not self.stream_in  # without stream-json input there is no channel for answers
        self.signalled = None
        self.abort = None  # None, "interrupt" or "signal" while a turn runs
        self.in_turn = False
        self.init_sent = False
        self.initialized = False
        self.turn_index = 0
        self.final = None  # last result, for --output-format json/text

    # -- output ------------------------------------------------------------------------------
    def emit(self, obj):
        if obj.get("type") == "result":
            self.final = obj
        if self.output_format == "stream-json":
            self.chan.send(obj)

    def save(self):
        self.session["updated_at"] = fac.iso_now()
        self.store.save(self.sid, self.session)

    def usage(self, out_tokens):
        return {"input_tokens": 4, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
                "output_tokens": out_tokens, "server_tool_use": {"web_search_requests": 0, "web_fetch_requests": 0},
                "service_tier": "standard"}

    def assistant(self, turn, blocks):
        out = sum(len(json.dumps(b)) // 4 + 1 for b in blocks)
        turn.out_tokens += out
        self.emit({"type": "assistant",
                   "message": {"id": fac.rand_id("msg_01"), "type": "message", "role": "assistant",
                               "model": self.model, "content": blocks, "stop_reason": None, "stop_sequence": None,
                               "usage": self.usage(out)},
                   "parent_tool_use_id": None, "session_id": self.sid, "uuid": fac.new_uuid()})
        self.session["messages"].append({"role": "assistant", "content": blocks})

    def say(self, turn, text):
        self.assistant(turn, [{"type": "text", "text": text}])
        turn.last_text = text
        turn.last_was_text = True

    def system_init(self):
        self.emit({"type": "system", "subtype": "init", "cwd": self.cwd, "session_id": self.sid, "tools": self.tools,
                   "mcp_servers": [], "model": self.model, "permissionMode": self.mode,
                   "slash_commands": SLASH_COMMANDS, "apiKeySource": "none", "claude_code_version": VERSION,
                   "output_style": "default", "agents": ["general-purpose", "statusline-setup", "Explore", "Plan"],
                   "skills": [], "plugins": [], "uuid": fac.new_uuid(), "fast_mode_state": "off"})

    def result(self, turn, subtype, terminal, errors=None):
        ms = int((time.monotonic() - turn.t0) * 1000)
        cost = round(0.000003 * 4 * turn.api_turns + 0.000015 * turn.out_tokens, 6)
        r = {"type": "result", "subtype": subtype, "is_error": subtype != "success", "duration_ms": ms,
             "duration_api_ms": ms // 2, "num_turns": turn.api_turns}
        if subtype == "success":
            r["result"] = turn.last_text
        r.update({"stop_reason": None, "session_id": self.sid, "total_cost_usd": cost,
                  "usage": self.usage(turn.out_tokens),
                  "modelUsage": {self.model: {"inputTokens": 4 * turn.api_turns, "outputTokens": turn.out_tokens,
                                              "cacheReadInputTokens": 0, "cacheCreationInputTokens": 0,
                                              "webSearchRequests": 0, "costUSD": cost, "contextWindow": 200000}},
                  "permission_denials": turn.denials, "terminal_reason": terminal, "fast_mode_state": "off",
                  "uuid": fac.new_uuid()})
        if errors is not None:
            r["errors"] = errors
        self.emit(r)

    # -- input -------------------------------------------------------------------------------
    def control_response(self, rid, response=None, error=None):
        if error is not None:
            self.chan.send({"type": "control_response", "response": {"subtype": "error", "request_id": rid, "error": error}})
        else:
            self.chan.send({"type": "control_response",
                            "response": {"subtype": "success", "request_id": rid, "response": response or {}}})

    def handle_control(self, msg):
        rid = msg.get("request_id")
        req = msg.get("request") if isinstance(msg.get("request"), dict) else {}
        sub = req.get("subtype")
        if sub == "initialize":
            if self.initialized:
                self.control_response(rid, error="Already initialized")
                return
            self.initialized = True
            self.control_response(rid, {
                "commands": [{"name": c, "description": "", "argumentHint": ""} for c in SLASH_COMMANDS],
                "agents": [{"name": "general-purpose", "description": "General-purpose agent"}],
                "output_style": "default", "available_output_styles": ["default", "Explanatory", "Learning"],
                "models": [{"value": "default", "displayName": "Default (recommended)", "description": self.model}],
                "account": {"apiKeySource": "none", "tokenSource": "none", "apiProvider": "firstParty"},
                "pid": os.getpid()})
        elif sub == "interrupt":
            self.control_response(rid, {})
            if self.in_turn and not self.abort:
                self.abort = "interrupt"
        elif sub == "set_permission_mode":
            mode = req.get("mode")
            if mode not in PERMISSION_MODES:
                self.control_response(rid, error="Invalid permission mode: %s" % mode)
                return
            self.mode = mode
            self.control_response(rid, {"mode": mode})
        elif sub == "set_model":
            m = req.get("model") or DEFAULT_MODEL
            self.model = MODEL_ALIASES.get(m, m)
            self.control_response(rid, {})
        elif sub == "mcp_status":
            self.control_response(rid, {"mcpServers": []})
        else:
            self.control_response(rid, error="Unsupported control request subtype: %s" % sub)

    def dispatch(self, ev):
        kind = ev[0]
        if kind == "eof":
            self.eof = True
        elif kind == "signal":
            self.signalled = ev[1]
            if self.in_turn:
                self.abort = self.abort or "signal"
            else:
                self.exit(0)
        elif kind == "bad":
            fac.eprint("Error parsing streaming input line: %s: %s" % (ev[1], ev[2]))
            self.exit(1)
        else:
            msg = ev[1]
            t = msg.get("type") if isinstance(msg, dict) else None
            if t == "user":
                self.pending.append(msg)
            elif t == "control_request":
                self.handle_control(msg)
            elif t == "control_response":
                resp = msg.get("response") if isinstance(msg.get("response"), dict) else {}
                self.responses[resp.get("request_id")] = resp
            # keep_alive, control_cancel_request and anything else: nothing to do

    def wait(self, timeout):
        """Handles events for up to `timeout` seconds (returns at the first one); True when the turn must stop."""
        if self.abort:
            return True
        if self.eof:  # nothing more will come from stdin, but signals still arrive on the queue
            timeout = 0.05 if timeout is None else min(timeout, 0.05)
        ev = self.chan.get(timeout)
        if ev is not None:
            self.dispatch(ev)
        return bool(self.abort)

    def exit(self, status):
        try:
            self.save()
        except OSError:
            pass
        if self.output_format != "stream-json" and self.final is not None and status == 0:
            self.print_final()
        sys.stdout.flush()
        os._exit(status)

    def print_final(self):
        r = self.final
        if self.output_format == "json":
            sys.stdout.write(json.dumps(r, ensure_ascii=False, separators=(",", ":")) + "\n")
        elif r.get("subtype") == "success":
            sys.stdout.write(r.get("result", "") + "\n")
        else:
            sys.stdout.write("Error: %s\n" % "; ".join(r.get("errors") or [r.get("subtype")]))
        sys.stdout.flush()

    # -- turns -------------------------------------------------------------------------------
    def run_stream(self):
        while True:
            if self.pending:
                self.run_turn(self.pending.popleft())
                if self.signalled:
                    self.exit(0)
                continue
            if self.eof:
                break
            self.dispatch(self.chan.get())
        self.exit(0)

    def run_single(self, prompt):
        self.run_turn({"type": "user", "message": {"role": "user", "content": prompt}})
        self.exit(0 if self.signalled or (self.final or {}).get("subtype") == "success" else 1)

    @staticmethod
    def prompt_text(msg):
        m = msg.get("message") if isinstance(msg.get("message"), dict) else {}
        c = m.get("content")
        if isinstance(c, str):
            return c
        if isinstance(c, list):
            return "\n".join(b.get("text", "") for b in c if isinstance(b, dict) and b.get("type") == "text")
        return ""

    def run_turn(self, msg):
        turn = Turn()
        self.in_turn = True
        self.abort = None
        prompt = self.prompt_text(msg)
        if self.opts.get("replayUserMessages"):
            self.emit({"type": "user", "message": msg.get("message"), "session_id": self.sid,
                       "parent_tool_use_id": None, "uuid": fac.new_uuid(), "isReplay": True})
        if not self.init_sent:
            self.init_sent = True
            self.system_init()
        earlier = [m["content"] for m in self.session["messages"] if m.get("role") == "user" and isinstance(m.get("content"), str)]
        self.session["messages"].append({"role": "user", "content": prompt})
        steps = self.script.steps_for(self.turn_index, prompt)
        self.turn_index += 1
        if not steps:
            steps = [{"op": "text", "text": "(empty prompt)"}]
        for step in steps:
            if self.abort or self.step(turn, step, earlier) == "end":
                break
        if self.abort:
            self.emit({"type": "user", "message": {"role": "user", "content": [{"type": "text", "text": "[Request interrupted by user]"}]},
                       "parent_tool_use_id": None, "session_id": self.sid, "uuid": fac.new_uuid()})
            self.result(turn, "error_during_execution", "aborted_tools" if turn.in_tool else "aborted_streaming",
                        ["[ede_diagnostic] result_type=user last_content_type=n/a stop_reason=null"])
        elif turn.error is not None:
            self.result(turn, "error_during_execution", "error", [turn.error])
        elif turn.max_turns_hit:
            self.result(turn, "error_max_turns", "max_turns", ["Reached maximum number of turns (%d)" % self.max_turns])
        else:
            if turn.used_tools and not turn.last_was_text:
                self.say(turn, "Done.")
            self.result(turn, "success", "completed")
        self.in_turn = False
        self.save()

    def step(self, turn, st, earlier):
        op = st["op"]
        if op == "text":
            self.say(turn, st["text"])
        elif op == "ask":
            self.say(turn, st["text"])
            return "end"
        elif op == "history":
            self.say(turn, fac.history_text(earlier))
        elif op == "env":
            self.say(turn, fac.env_text(st["name"]))
        elif op == "sleep":
            deadline = time.monotonic() + st["ms"] / 1000.0
            while time.monotonic() < deadline:
                if self.wait(deadline - time.monotonic()):
                    return "end"
        elif op == "fail":
            self.save()
            fac.fail_now(st["status"], st["message"], "fake-claude: scripted failure (@fail %d)" % st["status"])
        elif op == "error":
            turn.error = st["message"]
            return "end"
        elif op == "ondeny":
            turn.ondeny = st["policy"]
        elif op == "bash":
            return self.tool(turn, "Bash", {"command": st["command"], "description": "Run: " + st["command"][:60]})
        elif op == "write":
            return self.tool(turn, "Write", {"file_path": fac.resolve_path(self.cwd, st["path"]), "content": st["content"]})
        elif op == "edit":
            return self.tool(turn, "Edit", {"file_path": fac.resolve_path(self.cwd, st["path"]), "old_string": st["old"],
                                            "new_string": st["new"], "replace_all": False})
        elif op == "read":
            return self.tool(turn, "Read", {"file_path": fac.resolve_path(self.cwd, st["path"])})
        return None

    # -- tools -------------------------------------------------------------------------------
    def tool(self, turn, name, tool_input):
        if self.max_turns is not None and turn.api_turns >= self.max_turns:
            turn.max_turns_hit = True
            return "end"
        tid = fac.rand_id("toolu_01", 22)
        self.assistant(turn, [{"type": "tool_use", "id": tid, "name": name, "input": tool_input}])
        turn.used_tools = True
        turn.last_was_text = False
        interrupt_after = False
        if name not in self.tools:
            decision = ("error", "<tool_use_error>Error: No such tool available: %s</tool_use_error>" % name)
        else:
            decision = self.permission(name, tool_input, tid)
            if decision is None:  # interrupted while waiting for the host
                return "end"
        if decision[0] == "allow":
            turn.in_tool = True
            content, is_error, tur = self.execute(name, decision[1])
            if self.abort:
                return "end"
            turn.in_tool = False
        elif decision[0] == "deny":
            content, is_error, tur = decision[1], True, "Error: " + decision[1]
            turn.denials.append({"tool_name": name, "tool_use_id": tid, "tool_input": tool_input})
            interrupt_after = decision[2]
        else:
            content, is_error, tur = decision[1], True, "Error: " + decision[1]
        block = {"tool_use_id": tid, "type": "tool_result", "content": content}
        if is_error:
            block["is_error"] = True
        self.emit({"type": "user", "message": {"role": "user", "content": [block]}, "parent_tool_use_id": None,
                   "session_id": self.sid, "uuid": fac.new_uuid(), "tool_use_result": tur})
        self.session["messages"].append({"role": "user", "content": [block]})
        turn.api_turns += 1
        if decision[0] == "deny":
            if interrupt_after:
                self.abort = "interrupt"
                return "end"
            if turn.ondeny == "stop":
                self.say(turn, "Permission to use %s was denied, so I stopped here." % name)
                return "end"
        return None

    def permission(self, name, tool_input, tid):
        """Returns ("allow", input), ("deny", message, interrupt) or None when the turn was interrupted."""
        if self.mode == "bypassPermissions" or name in READ_ONLY_TOOLS:
            return ("allow", tool_input)
        if self.mode == "acceptEdits" and name in EDIT_TOOLS:
            return ("allow", tool_input)
        if tool_rule_matches(self.allowed, name, tool_input):
            return ("allow", tool_input)
        if self.prompt_tool != "stdio":
            return ("deny", "Claude requested permissions to use %s, but you haven't granted it yet." % name, False)
        rid = fac.new_uuid()
        if name == "Bash":
            suggestions = [{"type": "addRules", "rules": [{"toolName": "Bash", "ruleContent": tool_input.get("command", "")}],
                            "behavior": "allow", "destination": "localSettings"}]
        else:
            suggestions = [{"type": "setMode", "mode": "acceptEdits", "destination": "session"}]
        self.chan.send({"type": "control_request", "request_id": rid,
                        "request": {"subtype": "can_use_tool", "tool_name": name, "input": tool_input,
                                    "permission_suggestions": suggestions, "tool_use_id": tid}})
        while rid not in self.responses:
            if self.abort:
                self.chan.send({"type": "control_cancel_request", "request_id": rid})
                return None
            if self.eof:
                return ("deny", "Tool permission request failed: Error: Stream closed", False)
            self.wait(None)
        resp = self.responses.pop(rid)
        if resp.get("subtype") == "error":
            return ("deny", "Tool permission request failed: Error: %s" % resp.get("error", ""), False)
        payload = resp.get("response") if isinstance(resp.get("response"), dict) else {}
        if payload.get("behavior") == "allow":
            updated = payload.get("updatedInput")
            return ("allow", updated if isinstance(updated, dict) else tool_input)
        if payload.get("behavior") == "deny":
            return ("deny", str(payload.get("message") or "Permission denied"), bool(payload.get("interrupt")))
        return ("deny", "Tool permission request failed: Error: invalid permission response %s" % json.dumps(payload), False)

    def execute(self, name, inp):
        """Runs a tool; returns (tool_result content, is_error, tool_use_result)."""
        try:
            if name == "Bash":
                cmd = inp.get("command")
                if not isinstance(cmd, str) or not cmd:
                    raise fac.ToolError("InputValidationError: command is required")
                timeout = inp.get("timeout") if isinstance(inp.get("timeout"), int) else 120000
                r = fac.run_shell(cmd, self.cwd, min(max(timeout, 1), 600000) / 1000.0, self.wait)
                out = r["stdout"].rstrip("\n")
                if r["stderr"].strip():
                    out = (out + "\n" if out else "") + r["stderr"].rstrip("\n")
                tur = {"stdout": r["stdout"], "stderr": r["stderr"], "interrupted": r["interrupted"], "isImage": False}
                if r["interrupted"]:
                    return "Command was aborted before completion", True, tur
                if r["timed_out"]:
                    return "Command timed out after %dms\n%s" % (timeout, out), True, tur
                if r["exit_code"] != 0:
                    return "Exit code %d\n%s" % (r["exit_code"], out), True, tur
                return out or "(No content)", False, tur
            path = inp.get("file_path")
            if not isinstance(path, str) or not os.path.isabs(path):
                raise fac.ToolError("InputValidationError: file_path must be an absolute path")
            if name == "Write":
                content = inp.get("content") if isinstance(inp.get("content"), str) else ""
                kind, before = fac.plan_write(path, content)
                fac.do_write(path, content)
                msg = ("File created successfully at: %s" % path if kind == "create"
                       else "The file %s has been updated successfully." % path)
                return msg, False, {"type": kind, "filePath": path, "content": content, "structuredPatch": [],
                                    "originalFile": before}
            if name == "Edit":
                old, new = inp.get("old_string", ""), inp.get("new_string", "")
                before, after = fac.plan_edit(path, old, new)
                fac.do_write(path, after)
                return ("The file %s has been updated successfully." % path, False,
                        {"filePath": path, "oldString": old, "newString": new, "originalFile": before,
                         "structuredPatch": [], "userModified": False, "replaceAll": False})
            if name == "Read":
                if not os.path.isfile(path):
                    raise fac.ToolError("File does not exist.")
                text = fac.read_text(path)
                numbered = "".join("%6d\t%s\n" % (i + 1, ln) for i, ln in enumerate(text.splitlines()))
                return numbered or "<system-reminder>Warning: the file exists but the contents are empty.</system-reminder>", False, \
                    {"type": "text", "file": {"filePath": path, "content": text}}
            raise fac.ToolError("No such tool available: %s" % name)
        except fac.ToolError as e:
            return "<tool_use_error>%s</tool_use_error>" % e, True, "Error: %s" % e
        except OSError as e:
            return "<tool_use_error>%s</tool_use_error>" % e, True, "Error: %s" % e


def no_conversation(inv, sid, output_format):
    """An unknown --resume id: the result line the CLI prints, its stderr sentence, status 1."""
    msg = "No conversation found with session ID: %s" % sid
    if output_format in ("stream-json", "json"):
        print(json.dumps({"type": "result", "subtype": "error_during_execution", "duration_ms": 0, "duration_api_ms": 0,
                          "is_error": True, "num_turns": 0, "stop_reason": None, "session_id": sid,
                          "total_cost_usd": 0, "usage": {"input_tokens": 0, "cache_creation_input_tokens": 0,
                                                         "cache_read_input_tokens": 0, "output_tokens": 0},
                          "modelUsage": {}, "permission_denials": [], "errors": [msg], "uuid": fac.new_uuid()},
                         separators=(",", ":")), flush=True)
    inv.fail(msg)


def main(argv):
    inv = Invocation(argv)
    try:
        opts, operands = parse_args(argv)
    except Usage as e:
        inv.fail(str(e))
    if opts.get("version"):
        inv.log(exit_code=0)
        print("%s (Claude Code)" % VERSION)
        return 0
    if opts.get("help"):
        inv.log(exit_code=0)
        sys.stdout.write(HELP)
        return 0
    resume = opts.get("resume")
    inv.record["resume"] = resume if isinstance(resume, str) else None
    print_mode = bool(opts.get("print")) or not os.isatty(1)
    out_fmt = opts.get("outputFormat", "text")
    in_fmt = opts.get("inputFormat")
    if not print_mode:
        inv.fail("fake-claude: interactive mode is not implemented; use -p/--print")
    if in_fmt and in_fmt not in ("text", "stream-json"):
        inv.fail('Error: Invalid input format "%s".' % in_fmt)
    if in_fmt == "stream-json" and out_fmt != "stream-json":
        inv.fail("Error: --input-format=stream-json requires output-format=stream-json.")
    if opts.get("replayUserMessages") and (in_fmt != "stream-json" or out_fmt != "stream-json"):
        inv.fail("Error: --replay-user-messages requires both --input-format=stream-json and --output-format=stream-json.")
    if opts.get("includePartialMessages") and out_fmt != "stream-json":
        inv.fail("Error: --include-partial-messages requires --print and --output-format=stream-json.")
    if out_fmt == "stream-json" and not opts.get("verbose"):
        inv.fail("Error: When using --print, --output-format=stream-json requires --verbose")
    ppt = opts.get("permissionPromptTool")
    if ppt is not None and ppt != "stdio":
        inv.fail("Error: MCP tool %s (passed via --permission-prompt-tool) not found. Available MCP tools: none" % ppt)
    if "maxTurns" in opts and not str(opts["maxTurns"]).isdigit():
        inv.fail("Error: --max-turns must be a positive number")
    if resume is True:
        inv.fail("Error: --resume requires a valid session ID or session title when used with --print. "
                 "Usage: claude -p --resume <session-id|title>")

    cwd = os.getcwd()
    try:
        script = fac.Script.from_env("FAKE_CLAUDE_SCRIPT")
    except fac.ScriptError as e:
        inv.fail("fake-claude: %s" % e)
    state_dir = fac.first_env("FAKE_CLAUDE_STATE_DIR", "FAKE_AGENT_STATE_DIR") or os.path.join(
        os.path.expanduser("~"), ".fake-claude", "sessions")
    store = fac.StateStore(state_dir)
    here = os.path.realpath(cwd)
    session = None
    if isinstance(resume, str):
        if not fac.is_uuid(resume):
            inv.fail('Error: --resume requires a valid session ID or session title when used with --print. '
                     'Provided value "%s" is not a UUID and does not match any session title.' % resume)
        session = store.load(resume)
        if not isinstance(session, dict) or os.path.realpath(session.get("cwd", "")) != here:
            no_conversation(inv, resume, out_fmt)
    elif opts.get("continue"):
        mine = [s for s in store.all() if os.path.realpath(s.get("cwd", "")) == here and s.get("session_id")]
        if not mine:
            inv.fail("No conversation found to continue")
        session = max(mine, key=lambda s: s.get("updated_at", ""))
    if session is not None and opts.get("forkSession"):
        session = json.loads(json.dumps(session))
        session["forked_from"] = session["session_id"]
        session["session_id"] = fac.new_uuid()
        session["invocations"] = []
    if session is None:
        sid = opts.get("sessionId")
        if sid is not None:
            if not fac.is_uuid(sid):
                inv.fail("Error: Invalid session ID. Must be a valid UUID.")
            if store.load(sid) is not None:
                inv.fail("Error: Session ID %s is already in use." % sid)
        session = {"session_id": sid or fac.new_uuid(), "cwd": cwd, "created_at": fac.iso_now(), "messages": [],
                   "invocations": []}
    session.setdefault("messages", [])
    session.setdefault("invocations", [])
    session["invocations"].append({"time": fac.iso_now(), "argv": list(argv), "cwd": cwd, "env": fac.corral_env(),
                                   "resume": inv.record["resume"], "pid": os.getpid()})

    prompt = None
    if in_fmt != "stream-json":
        prompt = operands[0] if operands else (sys.stdin.read() if not os.isatty(0) else "")
        if not prompt.strip():
            inv.fail("Error: Input must be provided either through stdin or as a prompt argument when using --print")
    inv.log(session_id=session["session_id"])
    agent = Claude(opts, cwd, store, session, script, inv)
    agent.save()
    agent.chan.install_signals()
    if prompt is not None:
        agent.run_single(prompt)
    agent.run_stream()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
