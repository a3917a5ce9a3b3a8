"""tests/corrald_double.py — the SDK's own test double of corrald's identity API (identities, secrets, inbox long
polls), over a real unix socket or TCP. Small on purpose: the real corrald is tested against the SDK elsewhere."""

import http.server
import json
import os
import socketserver
import threading
import time
from urllib.parse import unquote

MAX_WAIT = 300


class State:
    """Identities, secrets and inboxes, plus every request seen (method, path, raw query, decoded query, headers)."""

    def __init__(self, token=None, bound=None, domain="mail.example"):
        self.token = token          # the session token required (None: no Authorization expected)
        self.bound = bound          # the name of the identity the token's session is bound to
        self.domain = domain
        self.identities = {}        # id -> {id, name, email, phone}
        self.secrets = {}           # (id, key) -> [{"value", "inject", "updated"}, ...] (index = version - 1)
        self.messages = {}          # id -> [message dict, ...] oldest first
        self.given = set()          # message ids given by inbox/otp long polls
        self.requests = []
        self.clock = None           # a FakeClock: long polls that find nothing advance it by wait and answer at once
        self.instant_timeout = False  # answer 408 at once whatever the wait (a misbehaving server)
        self.scheduled = []         # (fake time, identity name, message fields): delivered when the clock gets there
        self.cond = threading.Condition()
        self._n = 0

    def add_identity(self, name, email=None, phone=None):
        with self.cond:
            self._n += 1
            idn = "idn_%04d" % self._n
            if email is None:
                email = name + "@" + self.domain
            elif "@" not in email:
                email = email + "@" + self.domain
            self.identities[idn] = {"id": idn, "name": name, "email": email, "phone": phone}
            self.messages[idn] = []
            return self.identities[idn]

    def deliver(self, name, **msg):
        """Puts a message into the inbox of identity name and wakes the long polls."""
        with self.cond:
            idn = self.find(name)["id"]
            self._n += 1
            now = int(time.time() * 1000)
            full = {"id": "msg_%06d" % self._n, "kind": "mail", "from": "", "to": self.identities[idn]["email"],
                    "subject": "", "date": now, "received": now + self._n, "text": "", "links": [], "otp": None,
                    "otp_candidates": [], "flags": []}
            full.update(msg)
            self.messages[idn].append(full)
            self.cond.notify_all()
            return full

    def find(self, ref):
        for ident in self.identities.values():
            if ref in (ident["id"], ident["name"]):
                return ident
        return None


class FakeClock:
    """A monotonic clock the test double advances when a long poll "waits"."""

    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


class Handler(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"

    def log_message(self, format, *args):
        pass

    def do_GET(self):
        self._serve("GET")

    def do_POST(self):
        self._serve("POST")

    def do_DELETE(self):
        self._serve("DELETE")

    # ---- plumbing ----

    def _send(self, status, obj):
        body = json.dumps(obj).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def _error(self, status, code, message, field=None):
        err = {"code": code, "message": message}
        if field:
            err["field"] = field
        self._send(status, {"error": err})

    def _serve(self, method):
        st = self.server.state
        path, _, raw_query = self.path.partition("?")
        query = {}
        for part in raw_query.split("&") if raw_query else []:
            k, _, v = part.partition("=")
            query.setdefault(unquote(k), unquote(v))
        body = None
        n = int(self.headers.get("Content-Length") or 0)
        if n:
            body = json.loads(self.rfile.read(n).decode())
        with st.cond:
            st.requests.append({"method": method, "path": path, "raw_query": raw_query, "query": query,
                                "headers": dict(self.headers.items()), "host": self.headers.get("Host")})
        auth = self.headers.get("Authorization")
        if st.token is not None and auth != "Bearer " + st.token:
            return self._error(401, "unauthorized", "a session token is required")
        if st.token is None and auth is not None:
            return self._error(401, "unauthorized", "unknown token")
        seg = [unquote(s) for s in path.split("/")[1:]]
        if seg[:1] != ["v1"]:
            return self._error(404, "not_found", "no route " + path)
        seg = seg[1:]
        with st.cond:
            return self._route(st, method, seg, query, body)

    def _visible(self, st, ref):
        ident = st.find(ref)
        if ident is None or (st.token is not None and ident["name"] != st.bound):
            return None
        return ident

    def _route(self, st, method, seg, query, body):
        if seg == ["whoami"] and method == "GET":
            ident = st.find(st.bound) if st.bound else None
            return self._send(200, {"session": "sess-1" if st.token else None, "identity": ident})
        if seg == ["identities"] and method == "POST":
            name = (body or {}).get("name")
            if not isinstance(name, str) or not name:
                return self._error(400, "bad_request", "name is required", "name")
            if st.find(name) is not None:
                return self._error(409, "conflict", "identity %s exists" % name, "name")
            return self._send(201, st.add_identity(name, body.get("email")))
        if seg == ["identities"] and method == "GET":
            idents = [i for i in st.identities.values() if st.token is None or i["name"] == st.bound]
            return self._send(200, {"identities": idents})
        if len(seg) < 2 or seg[0] != "identities":
            return self._error(404, "not_found", "no route")
        ident = self._visible(st, seg[1])
        if ident is None:
            return self._error(404, "not_found", "no identity %s" % seg[1])
        idn, rest = ident["id"], seg[2:]
        if rest == [] and method == "GET":
            return self._send(200, ident)
        if rest == ["secrets"] and method == "POST":
            if not body.get("key") or not isinstance(body.get("value"), str):
                return self._error(400, "bad_request", "key and value are required", "key")
            versions = st.secrets.setdefault((idn, body["key"]), [])
            versions.append({"value": body["value"], "inject": body.get("inject") is True,
                             "updated": int(time.time() * 1000)})
            return self._send(201, {"key": body["key"], "version": len(versions)})
        if rest == ["secrets"] and method == "GET":
            out = [{"key": k, "version": len(v), "updated": v[-1]["updated"], "inject": v[-1]["inject"]}
                   for (i, k), v in sorted(st.secrets.items()) if i == idn and v]
            return self._send(200, {"secrets": out})
        if len(rest) == 2 and rest[0] == "secrets":
            versions = st.secrets.get((idn, rest[1]))
            if not versions:
                return self._error(404, "not_found", "no secret %s" % rest[1])
            if method == "DELETE":
                del st.secrets[(idn, rest[1])]
                return self._send(200, {"key": rest[1], "deleted": True})
            ver = int(query.get("version") or len(versions))
            if not 1 <= ver <= len(versions):
                return self._error(404, "not_found", "no version %d of %s" % (ver, rest[1]))
            return self._send(200, {"key": rest[1], "value": versions[ver - 1]["value"], "version": ver})
        if rest == ["inbox", "list"] and method == "GET":
            limit = int(query.get("limit") or 20)
            return self._send(200, {"messages": list(reversed(st.messages[idn]))[:limit]})
        if rest in (["inbox"], ["otp"]) and method == "GET":
            return self._long_poll(st, idn, query, rest == ["otp"])
        return self._error(404, "not_found", "no route")

    def _match(self, st, idn, query, want_code):
        subj = query.get("subject_contains", "").lower()
        frm = query.get("from_contains", "").lower()
        since = query.get("since")
        after = None
        if since:
            if since.isdigit():
                after = int(since)
            else:
                ref = [m for m in st.messages[idn] if m["id"] == since]
                after = ref[0]["received"] if ref else None
        found = [m for m in st.messages[idn]
                 if subj in m["subject"].lower() and frm in m["from"].lower()
                 and (after is None or m["received"] > after) and (since or m["id"] not in st.given)
                 and (not want_code or m["otp"])]
        if not found:
            return None
        return found[-1] if want_code else found[0]

    def _long_poll(self, st, idn, query, want_code):
        wait = int(query.get("wait", "60"))
        if not 0 <= wait <= MAX_WAIT:
            return self._error(400, "bad_request", "wait must be 0..%d" % MAX_WAIT, "wait")
        deadline = time.monotonic() + wait
        while True:
            m = self._match(st, idn, query, want_code)
            if m is not None:
                st.given.add(m["id"])
                if want_code:
                    return self._send(200, {"otp": m["otp"], "candidates": m["otp_candidates"], "message": m["id"]})
                return self._send(200, {"message": m})
            left = deadline - time.monotonic()
            if st.instant_timeout:
                left = 0
            if st.clock is not None:
                due = [s for s in st.scheduled if s[0] <= st.clock.now + wait]
                if due:
                    st.scheduled.remove(due[0])
                    st.clock.now = max(st.clock.now, due[0][0])
                    st.deliver(due[0][1], **due[0][2])
                    continue
                st.clock.now += wait
                left = 0
            if left <= 0:
                return self._error(408, "timeout", "no matching message within %d s" % wait)
            st.cond.wait(left)


class _UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


class _TCPServer(socketserver.ThreadingMixIn, http.server.HTTPServer):
    daemon_threads = True


class Double:
    """Runs the double on a unix socket (path) or on 127.0.0.1:free port (path None); .url, .state, .close()."""

    def __init__(self, state, path=None):
        if path is not None:
            self.server = _UnixServer(path, Handler)
            self.url = "unix:" + path
        else:
            self.server = _TCPServer(("127.0.0.1", 0), Handler)
            self.url = "http://127.0.0.1:%d" % self.server.server_address[1]
        self.server.state = state
        self.state = state
        self.path = path
        self.thread = threading.Thread(target=self.server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self.thread.start()

    def close(self):
        if self.thread is None:
            return
        self.server.shutdown()
        self.server.server_close()
        self.thread.join()
        self.thread = None
        if self.path is not None and os.path.exists(self.path):
            os.unlink(self.path)
