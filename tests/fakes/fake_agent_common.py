# tests/fakes/fake_agent_common.py — shared by the fake agents: the directive language, scripts, session state, the invocation log and stdio plumbing.
"""Code shared by fake_claude.py and fake_codex.py (Python 3 standard library only).

The directive language
----------------------
A fake agent decides what to do in a turn from a list of *steps*.  The steps come from the
script file named by the agent's script variable (FAKE_CLAUDE_SCRIPT / FAKE_CODEX_SCRIPT) or,
when there is none for this turn, from the text of the user's prompt, one directive a line:

    plain text            an assistant message with that text (consecutive lines form one message)
    @text TEXT            an assistant message with TEXT, verbatim (TEXT may itself start with '@')
    @@...                 a plain-text line that starts with '@' (the first '@' is dropped)
    @bash COMMAND         run COMMAND with /bin/sh -c in the working directory, after asking the host
                          for permission; its output goes back as the tool result
    @write PATH CONTENT   write CONTENT to PATH (relative to the working directory), after asking;
                          CONTENT is the rest of the line, with \\n, \\t, \\\\ and \\" decoded
    @edit PATH OLD NEW    replace the one occurrence of OLD by NEW in PATH, after asking; the three
                          words may be quoted ("two words" or 'two words'); escapes as for @write
    @read PATH            read PATH (a read-only tool: never asks)
    @ask QUESTION         end the turn with an assistant message that is QUESTION (the rest of the
                          steps of this turn are skipped); the host turns it into a question
    @sleep MS             wait MS milliseconds (an interrupt or a signal cuts it short)
    @fail STATUS [MSG]    crash: write MSG (or a default) on stderr and exit with STATUS, no result
    @error MSG            end the turn as failed with MSG (the process keeps running)
    @ondeny stop|continue what to do after a denied permission: stop the turn with a message saying
                          so, or go on with the next step (the default)
    @history              an assistant message describing the earlier user messages of the session
                          ("History: 2 earlier user message(s); last: ...") — checks --resume
    @env NAME             an assistant message "NAME=value" (or "NAME is not set") — checks the
                          environment the host gave the agent

A line starting with '@' followed by a word that is not a directive is plain text.  A malformed
directive ("@sleep soon") ends the turn as failed with a message saying what was wrong.

A script file is either directive text (used for the first turn of the process) or JSON: a list of
steps (the first turn) or a list of lists of steps (turn N of the process uses list N; later turns
fall back to the prompt).  A JSON step is a directive line as a string ("@bash ls") or an object
with one key: {"text": T}, {"bash": CMD}, {"write": {"path": P, "content": C}}, {"edit": {"path": P,
"old": O, "new": N}}, {"read": P}, {"ask": Q}, {"sleep": MS}, {"fail": STATUS} or {"fail": {"status":
S, "message": M}}, {"error": MSG}, {"ondeny": "stop"}, {"history": true}, {"env": NAME}.  Strings in
JSON steps are used as they are (no escape decoding).
"""

import difflib
import errno
import json
import os
import queue
import re
import secrets
import signal
import string
import subprocess
import sys
import tempfile
import threading
import time
import uuid

MAX_LINE = 16 * 1024 * 1024  # longest stdin line a fake accepts
MAX_OUTPUT = 1024 * 1024  # most bytes of a command's stdout (and of its stderr) kept
MAX_SLEEP_MS = 3600 * 1000

DIRECTIVES = ("text", "bash", "write", "edit", "read", "ask", "sleep", "fail", "error", "ondeny", "history", "env")


class ScriptError(Exception):
    """A directive or a script file that cannot be understood."""


class ToolError(Exception):
    """A tool that could not do what it was asked (the message goes back to the model)."""


# ---------------------------------------------------------------------------------------------
# Directive parsing

_ESCAPES = {"n": "\n", "t": "\t", "\\": "\\", '"': '"'}


def decode_escapes(s):
    """Returns s with \\n, \\t, \\\\ and \\" decoded; any other backslash stays as it is."""
    return re.sub(r"\\(.)", lambda m: _ESCAPES.get(m.group(1), "\\" + m.group(1)), s)


def _word_at(s, i):
    """Reads one word of s starting at index i (after blanks); returns (word, next index) or (None, len)."""
    n = len(s)
    while i < n and s[i].isspace():
        i += 1
    if i >= n:
        return None, n
    if s[i] in "\"'":
        q = s[i]
        i += 1
        out = []
        while i < n and s[i] != q:
            if q == '"' and s[i] == "\\" and i + 1 < n:
                out.append(s[i : i + 2])  # kept for decode_escapes
                i += 2
                continue
            out.append(s[i])
            i += 1
        if i >= n:
            raise ScriptError("unterminated quote")
        return "".join(out), i + 1
    j = i
    while j < n and not s[j].isspace():
        j += 1
    return s[i:j], j


def split_words(s):
    """Splits s into words, honouring "double" and 'single' quotes; escapes are left for decode_escapes."""
    words = []
    i = 0
    while True:
        w, i = _word_at(s, i)
        if w is None:
            return words
        words.append(w)


def _int_arg(name, arg, lo, hi):
    try:
        v = int(arg, 10)
    except ValueError:
        raise ScriptError("@%s needs a whole number, got %r" % (name, arg)) from None
    if v < lo or v > hi:
        raise ScriptError("@%s %d is out of range %d..%d" % (name, v, lo, hi))
    return v


def parse_directive(name, arg):
    """Builds one step from directive `name` and the rest of its line; raises ScriptError."""
    if name == "text":
        return {"op": "text", "text": arg}
    if name == "bash":
        if not arg:
            raise ScriptError("@bash needs a command")
        return {"op": "bash", "command": arg}
    if name == "write":
        path, i = _word_at(arg, 0)
        if path is None:
            raise ScriptError("@write needs a path")
        rest = arg[i + 1 :] if i < len(arg) else ""
        return {"op": "write", "path": decode_escapes(path), "content": decode_escapes(rest)}
    if name == "edit":
        words = split_words(arg)
        if len(words) != 3:
            raise ScriptError("@edit needs PATH OLD NEW (quote words with spaces), got %d word(s)" % len(words))
        return {"op": "edit", "path": decode_escapes(words[0]), "old": decode_escapes(words[1]),
                "new": decode_escapes(words[2])}
    if name == "read":
        words = split_words(arg)
        if len(words) != 1:
            raise ScriptError("@read needs one path")
        return {"op": "read", "path": decode_escapes(words[0])}
    if name == "ask":
        return {"op": "ask", "text": arg or "Shall I go on?"}
    if name == "sleep":
        return {"op": "sleep", "ms": _int_arg("sleep", arg, 0, MAX_SLEEP_MS)}
    if name == "fail":
        parts = arg.split(None, 1)
        status = _int_arg("fail", parts[0], 0, 255) if parts else 1
        msg = parts[1] if len(parts) > 1 else ""
        return {"op": "fail", "status": status, "message": msg}
    if name == "error":
        return {"op": "error", "message": arg or "scripted error"}
    if name == "ondeny":
        if arg not in ("stop", "continue"):
            raise ScriptError("@ondeny takes stop or continue, got %r" % arg)
        return {"op": "ondeny", "policy": arg}
    if name == "history":
        return {"op": "history"}
    if name == "env":
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", arg):
            raise ScriptError("@env needs a variable name, got %r" % arg)
        return {"op": "env", "name": arg}
    raise ScriptError("unknown directive @%s" % name)


_DIRECTIVE_LINE = re.compile(r"@([a-z]+)(?:[ \t]+(.*))?$", re.S)


def parse_directives(text):
    """Turns prompt text into a list of steps (see the module comment); never raises.

    A malformed directive becomes an {"op": "error"} step carrying the reason.
    """
    steps = []
    buf = []

    def flush():
        joined = "\n".join(buf).strip()
        if joined:
            steps.append({"op": "text", "text": joined})
        buf.clear()

    for line in text.splitlines():
        s = line.strip()
        if s.startswith("@@"):
            buf.append(s[1:])
            continue
        m = _DIRECTIVE_LINE.match(s)
        if not m or m.group(1) not in DIRECTIVES:
            buf.append(line)
            continue
        flush()
        arg = (m.group(2) or "").strip()
        if m.group(1) == "write":  # the content keeps its inner spacing
            arg = (m.group(2) or "").lstrip()
        try:
            steps.append(parse_directive(m.group(1), arg))
        except ScriptError as e:
            steps.append({"op": "error", "message": "fake agent: bad directive %r: %s" % (s, e)})
    flush()
    return steps


def step_from_json(item):
    """Builds the steps of one JSON script item (a directive string or a one-key object); raises ScriptError."""
    if isinstance(item, str):
        return parse_directives(item)
    if not isinstance(item, dict) or len(item) != 1:
        raise ScriptError("a script step is a string or an object with one key: %r" % (item,))
    (op, v), = item.items()
    if op == "text" and isinstance(v, str):
        return [{"op": "text", "text": v}]
    if op == "bash" and isinstance(v, str) and v:
        return [{"op": "bash", "command": v}]
    if op == "write" and isinstance(v, dict) and isinstance(v.get("path"), str) and isinstance(v.get("content", ""), str):
        return [{"op": "write", "path": v["path"], "content": v.get("content", "")}]
    if op == "edit" and isinstance(v, dict) and all(isinstance(v.get(k), str) for k in ("path", "old", "new")):
        return [{"op": "edit", "path": v["path"], "old": v["old"], "new": v["new"]}]
    if op == "read" and isinstance(v, str):
        return [{"op": "read", "path": v}]
    if op == "ask" and isinstance(v, str):
        return [{"op": "ask", "text": v or "Shall I go on?"}]
    if op == "sleep" and isinstance(v, int) and 0 <= v <= MAX_SLEEP_MS:
        return [{"op": "sleep", "ms": v}]
    if op == "fail" and isinstance(v, int) and 0 <= v <= 255:
        return [{"op": "fail", "status": v, "message": ""}]
    if op == "fail" and isinstance(v, dict) and isinstance(v.get("status", 1), int):
        return [{"op": "fail", "status": v.get("status", 1) & 255, "message": str(v.get("message", ""))}]
    if op == "error" and isinstance(v, str):
        return [{"op": "error", "message": v or "scripted error"}]
    if op == "ondeny" and v in ("stop", "continue"):
        return [{"op": "ondeny", "policy": v}]
    if op == "history":
        return [{"op": "history"}]
    if op == "env" and isinstance(v, str) and re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", v):
        return [{"op": "env", "name": v}]
    raise ScriptError("bad script step %r" % (item,))


class Script:
    """The steps of each turn: from a script file when it has some for the turn, else from the prompt."""

    def __init__(self, turns=None):
        self.turns = turns or []

    @classmethod
    def from_env(cls, *names):
        """Loads the script file named by the first of `names` that is set; raises ScriptError."""
        path = first_env(*names)
        if not path:
            return cls()
        try:
            with open(path, encoding="utf-8") as f:
                data = f.read()
        except OSError as e:
            raise ScriptError("cannot read script %s: %s" % (path, e.strerror)) from None
        head = data.lstrip()[:1]
        if head not in ("[", "{"):
            return cls([parse_directives(data)])
        try:
            obj = json.loads(data)
        except ValueError as e:
            raise ScriptError("script %s is not valid JSON: %s" % (path, e)) from None
        if isinstance(obj, dict) and isinstance(obj.get("turns"), list):
            obj = obj["turns"]
        if not isinstance(obj, list):
            raise ScriptError("script %s must be a JSON list" % path)
        if obj and all(isinstance(t, list) for t in obj):
            return cls([[s for item in t for s in step_from_json(item)] for t in obj])
        return cls([[s for item in obj for s in step_from_json(item)]])

    def steps_for(self, turn_index, prompt):
        """Returns the steps of turn `turn_index` (0-based, per process) whose prompt text is `prompt`."""
        if turn_index < len(self.turns):
            return list(self.turns[turn_index])
        return parse_directives(prompt)


# ---------------------------------------------------------------------------------------------
# Environment, ids, state and the invocation log

def first_env(*names):
    """Returns the value of the first of `names` that is set and not empty, else None."""
    for n in names:
        v = os.environ.get(n)
        if v:
            return v
    return None


def corral_env():
    """Returns the CORRAL_* variables of this process's environment."""
    return {k: v for k, v in sorted(os.environ.items()) if k.startswith("CORRAL_")}


def new_uuid():
    return str(uuid.uuid4())


def uuid7():
    """Returns a time-ordered UUID (version 7), the shape Codex uses for thread ids."""
    ms = int(time.time() * 1000) & ((1 << 48) - 1)
    r = int.from_bytes(os.urandom(10), "big")
    v = (ms << 80) | (0x7 << 76) | (((r >> 62) & 0xFFF) << 64) | (0b10 << 62) | (r & ((1 << 62) - 1))
    return str(uuid.UUID(int=v))


_B62 = string.ascii_letters + string.digits


def rand_id(prefix, n=24):
    return prefix + "".join(secrets.choice(_B62) for _ in range(n))


def is_uuid(s):
    return bool(re.fullmatch(r"[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}", s))


def now_ms():
    return int(time.time() * 1000)


def iso_now():
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())


class StateStore:
    """One JSON file per session/thread under a directory (created on first save)."""

    def __init__(self, directory):
        self.dir = directory

    def path(self, sid):
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._-]{0,127}", sid):
            raise ValueError("bad session id %r" % sid)
        return os.path.join(self.dir, sid + ".json")

    def load(self, sid):
        """Returns the saved state of `sid`, or None when there is none (or the id is not a safe name)."""
        try:
            with open(self.path(sid), encoding="utf-8") as f:
                return json.load(f)
        except (OSError, ValueError):
            return None

    def save(self, sid, data):
        """Writes the state of `sid` atomically (temporary file, then rename)."""
        os.makedirs(self.dir, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.dir, prefix=".tmp-")
        with os.fdopen(fd, "w", encoding="utf-8") as f:
            json.dump(data, f, ensure_ascii=False, indent=1)
            f.write("\n")
        os.replace(tmp, self.path(sid))

    def all(self):
        """Returns every saved state (unreadable files are skipped)."""
        out = []
        try:
            names = os.listdir(self.dir)
        except OSError:
            return out
        for name in names:
            if name.endswith(".json") and not name.startswith("."):
                d = self.load(name[:-5])
                if isinstance(d, dict):
                    out.append(d)
        return out


def append_log(path, record):
    """Appends `record` as one JSON line to the log at `path` (no-op when path is None); one write, so
    concurrent fakes never interleave within a line."""
    if not path:
        return
    line = (json.dumps(record, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    try:
        os.write(fd, line)
    finally:
        os.close(fd)


# ---------------------------------------------------------------------------------------------
# stdio: a reader thread turns stdin lines into events; writes are whole lines, flushed at once

class Channel:
    """Newline-delimited JSON over fd 0 / fd 1.

    get() returns one event: ("msg", obj), ("bad", line, reason), ("eof",) or ("signal", signum).
    send() writes one JSON object as one line; a closed stdout ends the process (status 1).
    """

    def __init__(self, read_stdin=True):
        self.q = queue.Queue()
        self._wlock = threading.Lock()
        if read_stdin:
            t = threading.Thread(target=self._reader, name="stdin-reader", daemon=True)
            t.start()

    def _reader(self):
        buf = b""
        while True:
            try:
                chunk = os.read(0, 65536)
            except InterruptedError:
                continue
            except OSError:
                chunk = b""
            if not chunk:
                if buf.strip():
                    self._line(buf)
                self.q.put(("eof",))
                return
            buf += chunk
            while True:
                nl = buf.find(b"\n")
                if nl < 0:
                    break
                line, buf = buf[:nl], buf[nl + 1 :]
                if line.strip():
                    self._line(line)
            if len(buf) > MAX_LINE:
                self.q.put(("bad", buf[:200].decode("utf-8", "replace"), "line longer than %d bytes" % MAX_LINE))
                buf = b""

    def _line(self, raw):
        text = raw.decode("utf-8", "replace")
        try:
            obj = json.loads(text)
        except ValueError as e:
            self.q.put(("bad", text, str(e)))
            return
        self.q.put(("msg", obj))

    def get(self, timeout=None):
        """Returns the next event, or None when `timeout` seconds pass first."""
        try:
            return self.q.get(timeout=timeout) if timeout is None or timeout > 0 else self.q.get_nowait()
        except queue.Empty:
            return None

    def send(self, obj):
        data = (json.dumps(obj, ensure_ascii=False, separators=(",", ":")) + "\n").encode("utf-8")
        with self._wlock:
            view = memoryview(data)
            while view:
                try:
                    n = os.write(1, view)
                except InterruptedError:
                    continue
                except OSError as e:
                    if e.errno in (errno.EPIPE, errno.EBADF):
                        os._exit(1)
                    raise
                view = view[n:]

    def install_signals(self):
        """Makes SIGTERM, SIGINT and SIGHUP arrive as ("signal", n) events instead of killing us."""
        def handler(signum, _frame):
            self.q.put(("signal", signum))
        for s in (signal.SIGTERM, signal.SIGINT, signal.SIGHUP):
            signal.signal(s, handler)


def eprint(*args):
    print(*args, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------
# Tools

def resolve_path(cwd, path):
    return os.path.normpath(path if os.path.isabs(path) else os.path.join(cwd, path))


def run_shell(command, cwd, timeout_s, wait):
    """Runs `command` with /bin/sh -c in `cwd`.

    `wait(seconds)` is called while the command runs; it returns True when the command must be
    stopped (an interrupt or a signal).  Returns a dict: exit_code (None when killed), stdout,
    stderr (each at most MAX_OUTPUT bytes, decoded), interrupted, timed_out, duration_ms.
    """
    t0 = time.monotonic()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        p = subprocess.Popen(["/bin/sh", "-c", command], cwd=cwd, stdin=subprocess.DEVNULL, stdout=out,
                             stderr=err, start_new_session=True)
        interrupted = timed_out = False
        while p.poll() is None:
            if time.monotonic() - t0 > timeout_s:
                timed_out = True
            elif wait(0.02):
                interrupted = True
            if interrupted or timed_out:
                try:
                    os.killpg(p.pid, signal.SIGKILL)
                except OSError:
                    pass
                p.wait()
                break
        out.seek(0)
        err.seek(0)
        so = out.read(MAX_OUTPUT).decode("utf-8", "replace")
        se = err.read(MAX_OUTPUT).decode("utf-8", "replace")
    code = None if (interrupted or timed_out) else p.returncode
    return {"exit_code": code, "stdout": so, "stderr": se, "interrupted": interrupted, "timed_out": timed_out,
            "duration_ms": int((time.monotonic() - t0) * 1000)}


def read_text(path):
    with open(path, encoding="utf-8", errors="replace", newline="") as f:
        return f.read()


def plan_write(path, content):
    """Returns (kind, before) for writing `content` to `path`: kind is "create" or "update"."""
    if os.path.isdir(path):
        raise ToolError("Path is a directory: %s" % path)
    if os.path.exists(path):
        return "update", read_text(path)
    return "create", None


def do_write(path, content):
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    with open(path, "w", encoding="utf-8", newline="") as f:
        f.write(content)


def plan_edit(path, old, new):
    """Returns (before, after) for replacing the single occurrence of `old` by `new`; raises ToolError
    with Claude Code's own wording when the file or the string is not there."""
    if not os.path.exists(path):
        raise ToolError("File does not exist.")
    before = read_text(path)
    if old == new:
        raise ToolError("No changes to make: old_string and new_string are exactly the same.")
    n = before.count(old) if old else 0
    if n == 0:
        raise ToolError("String to replace not found in file.\nString: %s" % old)
    if n > 1:
        raise ToolError("Found %d matches of the string to replace, but replace_all is false. To replace all "
                        "occurrences, set replace_all to true. To replace only one occurrence, please provide "
                        "more context to uniquely identify the instance.\nString: %s" % (n, old))
    return before, before.replace(old, new, 1)


def unified_diff(path, before, after):
    """A unified diff of one file (before None means the file is new)."""
    a = (before or "").splitlines(keepends=True)
    b = after.splitlines(keepends=True)
    lines = difflib.unified_diff(a, b, "/dev/null" if before is None else "a/" + path.lstrip("/"),
                                 "b/" + path.lstrip("/"), n=3)
    out = []
    for ln in lines:
        out.append(ln if ln.endswith("\n") else ln + "\n\\ No newline at end of file\n")
    return "".join(out)


def history_text(user_texts):
    """The @history answer for the earlier user messages `user_texts` (oldest first)."""
    if not user_texts:
        return "History: no earlier messages."
    return "History: %d earlier user message(s); last: %s" % (len(user_texts), user_texts[-1])


def env_text(name):
    v = os.environ.get(name)
    return "%s is not set" % name if v is None else "%s=%s" % (name, v)


def fail_now(status, message, default):
    """The @fail step: message on stderr, exit at once with `status` (no result, like a crash)."""
    eprint(message or default)
    sys.stdout.flush()
    os._exit(status)
