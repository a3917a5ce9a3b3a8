"""stack.py — the real processes of Corral's identity path for tests and benchmarks: redis-server on a unix socket
(so the caller can scan it), corral-relay with its SMTP listener and webhooks, a team with its admin and host tokens,
a git repository and corrald. Used by test_identities.py and bench/identity/bench_mail.py."""
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
import urllib.error
import urllib.request

SRC = os.path.dirname(os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(pred, timeout, what):
    end = time.time() + timeout
    while time.time() < end:
        v = pred()
        if v:
            return v
        time.sleep(0.02)
    raise AssertionError("timed out waiting for " + what)


def http(method, url, body=None, headers=None, token=None, timeout=15):
    import json
    h = dict(headers or {})
    if token:
        h["Authorization"] = "Bearer " + token
    data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
    if body is not None and "Content-Type" not in h:
        h["Content-Type"] = "application/json"
    req = urllib.request.Request(url, data=data, method=method, headers=h)
    try:
        with urllib.request.urlopen(req, timeout=timeout) as r:
            return r.status, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.read()
    except (urllib.error.URLError, OSError):
        return 0, b""


def stop(p):
    if p is not None and p.poll() is None:
        p.send_signal(signal.SIGTERM)
        try:
            p.wait(15)
        except subprocess.TimeoutExpired:
            p.kill()
            p.wait()


class Stack:
    """redis-server + corral-relay + corrald in a temp dir. relay_env adds or overrides relay settings."""

    def __init__(self, bin_dir, domain="agents.test", relay_env=None, prefix="cr-idn-"):
        self.bin = bin_dir
        self.tmp = tempfile.mkdtemp(prefix=prefix)
        t = self.tmp
        self.redis_sock = os.path.join(t, "redis.sock")
        self.redis = subprocess.Popen(["redis-server", "--port", "0", "--unixsocket", self.redis_sock, "--dir", t,
                                       "--save", "", "--appendonly", "no"], stdout=subprocess.DEVNULL)
        wait_until(lambda: os.path.exists(self.redis_sock), 10, "redis-server")
        self.port, self.smtp_port = free_port(), free_port()
        self.relay_url = "http://127.0.0.1:%d" % self.port
        self.relay_env = dict(os.environ, CORRAL_HTTP_LISTEN="127.0.0.1:%d" % self.port,
                              CORRAL_REDIS_URL="unix://" + self.redis_sock, CORRAL_DATA_DIR=os.path.join(t, "relay"),
                              CORRAL_LOG_LEVEL="info", CORRAL_MAIL_DOMAIN=domain,
                              CORRAL_MAIL_SMTP_LISTEN="127.0.0.1:%d" % self.smtp_port)
        self.relay_env.update(relay_env or {})
        self.relay_log = os.path.join(t, "relay.log")
        self.relay = self.corrald = None
        self.start_relay()
        relay = os.path.join(self.bin, "corral-relay")
        self.admin = subprocess.check_output([relay, "admin", "team", "create", "acme"], env=self.relay_env).decode().strip()
        self.host_token = subprocess.check_output([relay, "admin", "token", "create", "--team", "acme", "--kind", "host"],
                                                  env=self.relay_env).decode().strip()
        self.repo, self.home = os.path.join(t, "repo"), os.path.join(t, "home")
        os.makedirs(self.repo)
        os.makedirs(self.home, mode=0o700)
        git = ["git", "-C", self.repo, "-c", "user.name=t", "-c", "user.email=t@t"]
        subprocess.check_call(["git", "init", "-q", "-b", "main", self.repo])
        with open(os.path.join(self.repo, "README"), "w") as f:
            f.write("hello\n")
        subprocess.check_call(git + ["add", "README"])
        subprocess.check_call(git + ["commit", "-q", "-m", "first"])
        self.host_env = dict(os.environ, HOME=t, CORRAL_HOME=self.home, CORRAL_RELAY_URL=self.relay_url,
                             CORRAL_RELAY_TOKEN=self.host_token, GIT_CONFIG_NOSYSTEM="1",
                             PYTHONPATH=os.path.join(SRC, "clients", "python"), PYTHONDONTWRITEBYTECODE="1")
        for k in ("CORRAL_URL", "CORRAL_TOKEN", "CORRAL_IDENTITY", "CORRAL_SESSION"):
            self.host_env.pop(k, None)
        self.host_log = os.path.join(t, "corrald.log")
        self.sock = os.path.join(self.home, "corrald.sock")
        self.start_corrald()

    def start_relay(self):
        with open(self.relay_log, "ab") as log:
            self.relay = subprocess.Popen([os.path.join(self.bin, "corral-relay")], env=self.relay_env, stdout=log,
                                          stderr=subprocess.STDOUT)
        wait_until(lambda: http("GET", self.relay_url + "/healthz", timeout=1)[0] == 200, 15, "the relay")

    def start_corrald(self):
        with open(self.host_log, "ab") as log:
            self.corrald = subprocess.Popen([os.path.join(self.bin, "corrald"), "--repo", self.repo], env=self.host_env,
                                            stdout=log, stderr=subprocess.STDOUT)
        wait_until(lambda: os.path.exists(self.sock), 15, "corrald")

    def corral(self, *args, input=None):
        return subprocess.run([os.path.join(self.bin, "corral")] + list(args), env=self.host_env, cwd=self.repo,
                              input=input, capture_output=True, text=True, timeout=120)

    @staticmethod
    def tail(path, n=4000):
        try:
            with open(path, "rb") as f:
                return f.read()[-n:].decode("utf-8", "replace")
        except OSError:
            return "(none)"

    def close(self, keep=False):
        for p in (self.corrald, self.relay, self.redis):
            stop(p)
        if not keep:
            shutil.rmtree(self.tmp, ignore_errors=True)
        return self.tmp
