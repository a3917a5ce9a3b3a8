"""corral._http — one JSON request to corrald over a unix socket ("unix:/path") or TCP ("http://host:port")."""

from __future__ import annotations

import http.client
import json
import os
import socket
from typing import Any, Dict, Mapping, Optional, Tuple
from urllib.parse import quote, urlencode, urlsplit

from .errors import CorralError, CorralTimeout

RESPONSE_MAX = 64 * 1024 * 1024  # bytes of one answer, at most

# The code an error answer without the {"error": {...}} shape is given, by status.
_STATUS_CODES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found", 405: "bad_request",
                 408: "timeout", 409: "conflict", 413: "too_large", 429: "rate_limited", 500: "internal",
                 502: "unavailable", 503: "unavailable", 504: "unavailable"}


class _UnixHTTPConnection(http.client.HTTPConnection):
    """HTTP/1.1 over a unix stream socket; the Host header says "corrald"."""

    def __init__(self, path: str, timeout: float):
        super().__init__("corrald", timeout=timeout)
        self._unix_path = path

    def connect(self) -> None:
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        try:
            sock.settimeout(self.timeout)
            sock.connect(self._unix_path)
        except BaseException:
            sock.close()
            raise
        self.sock = sock


def default_url() -> str:
    """Returns CORRAL_URL, else the socket the corral CLI would use: $CORRAL_HOME/corrald.sock or
    ~/.local/state/corral/corrald.sock, as a "unix:" URL."""
    url = os.environ.get("CORRAL_URL", "")
    if url:
        return url
    home = os.environ.get("CORRAL_HOME", "")
    if home:
        return "unix:" + os.path.join(home, "corrald.sock")
    return "unix:" + os.path.join(os.path.expanduser("~"), ".local", "state", "corral", "corrald.sock")


def quote_segment(value: str) -> str:
    """Returns value percent-encoded as one path segment (a "/" inside it is encoded too)."""
    return quote(value, safe="")


class Transport:
    """Where corrald is and how to authenticate: makes one connection per request (long polls hold theirs)."""

    def __init__(self, url: str, token: Optional[str], timeout: float):
        self.url = url
        self.timeout = float(timeout)
        if token is not None and (not token or any(c <= " " or c > "~" for c in token)):
            raise CorralError("bad_request", "the token is not a valid session token (printable ASCII, no spaces)",
                              None, "token")
        self._token = token
        if url.startswith("unix:"):
            self._unix = url[len("unix:"):]
            if not self._unix:
                raise CorralError("bad_request", "CORRAL_URL %r names no socket path" % url, None, "url")
            self._scheme, self._host, self._port, self._prefix = "unix", None, None, ""
        else:
            parts = urlsplit(url)
            if parts.scheme not in ("http", "https") or not parts.hostname:
                raise CorralError("bad_request", "CORRAL_URL %r is neither unix:/path nor http://host:port" % url,
                                  None, "url")
            self._unix = None
            self._scheme, self._host = parts.scheme, parts.hostname
            try:
                self._port = parts.port
            except ValueError:
                raise CorralError("bad_request", "CORRAL_URL %r has a bad port" % url, None, "url") from None
            self._prefix = parts.path.rstrip("/")

    @property
    def has_token(self) -> bool:
        return self._token is not None

    def _connection(self, timeout: float) -> http.client.HTTPConnection:
        if self._unix is not None:
            return _UnixHTTPConnection(self._unix, timeout)
        if self._scheme == "https":
            return http.client.HTTPSConnection(self._host, self._port, timeout=timeout)
        return http.client.HTTPConnection(self._host, self._port, timeout=timeout)

    def request(self, method: str, path: str, query: Optional[Mapping[str, Any]] = None,
                body: Optional[Mapping[str, Any]] = None, extra_timeout: float = 0.0) -> Tuple[int, Dict[str, Any]]:
        """Sends one request and returns (status, JSON object) for a 2xx answer.

        Raises CorralTimeout for 408, CorralError with the server's code for any other error answer, and
        CorralError "unavailable" when corrald cannot be reached or stops answering within timeout + extra_timeout.
        The request body (which may hold a secret value) never appears in an error.
        """
        target = self._prefix + path
        if query:
            q = [(k, _query_value(v)) for k, v in query.items() if v is not None]
            if q:
                target += "?" + urlencode(q, quote_via=quote, safe="")
        headers = {"Accept": "application/json", "Connection": "close", "User-Agent": "corral-python"}
        if self._token is not None:
            headers["Authorization"] = "Bearer " + self._token
        payload = None
        if body is not None:
            payload = json.dumps(body, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
            headers["Content-Type"] = "application/json"
        timeout = self.timeout + extra_timeout
        conn = self._connection(timeout)
        try:
            try:
                conn.request(method, target, body=payload, headers=headers)
                resp = conn.getresponse()
                status = resp.status
                raw = resp.read(RESPONSE_MAX + 1)
            except socket.timeout:
                raise CorralError("unavailable", "corrald at %s did not answer within %g s" % (self.url, timeout)) \
                    from None
            except (OSError, http.client.HTTPException) as e:
                why = str(e) or type(e).__name__
                raise CorralError("unavailable", "cannot reach corrald at %s: %s" % (self.url, why)) from None
        finally:
            conn.close()
        if len(raw) > RESPONSE_MAX:
            raise CorralError("bad_response", "the answer is larger than %d bytes" % RESPONSE_MAX, status)
        data = _decode(raw)
        if 200 <= status < 300:
            if not isinstance(data, dict):
                raise CorralError("bad_response", "the answer to %s %s is not a JSON object" % (method, path), status)
            return status, data
        raise _error_from(status, data)


def _query_value(v: Any) -> str:
    if isinstance(v, bool):
        return "true" if v else "false"
    return str(v)


def _decode(raw: bytes) -> Any:
    if not raw:
        return None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        return None


def _error_from(status: int, data: Any) -> CorralError:
    code = _STATUS_CODES.get(status, "internal" if status >= 500 else "bad_request")
    message, field = "HTTP %d" % status, None
    err = data.get("error") if isinstance(data, dict) else None
    if isinstance(err, dict):
        if isinstance(err.get("code"), str) and err["code"]:
            code = err["code"]
        if isinstance(err.get("message"), str):
            message = err["message"]
        if isinstance(err.get("field"), str):
            field = err["field"]
    if status == 408 or code == "timeout":
        return CorralTimeout(message, status, field, code)
    return CorralError(code, message, status, field)
