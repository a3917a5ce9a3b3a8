"""corral.client — CorralClient: an identity's email, phone, inbox and secrets through corrald's local API."""

from __future__ import annotations

import math
import os
import time
from datetime import datetime
from typing import Any, Dict, List, Optional, Union

from ._http import Transport, default_url, quote_segment
from .errors import CorralError, CorralTimeout
from .models import Identity, Message, Secret, SecretInfo

__all__ = ["CorralClient", "Inbox", "Secrets", "MAX_WAIT"]

MAX_WAIT = 300  # seconds: the longest wait= corrald takes in one long poll
DEFAULT_TIMEOUT = 30.0  # seconds an ordinary request may take

Since = Union[None, int, str, datetime, Message]


class CorralClient:
    """A client of corrald's identity API, bound to one identity.

    identity_id (an id "idn_…" or a name), url ("unix:/path/corrald.sock" or "http://127.0.0.1:PORT") and token (a
    session token "cst_…") default to CORRAL_IDENTITY, CORRAL_URL and CORRAL_TOKEN; without CORRAL_URL the CLI's
    socket ($CORRAL_HOME/corrald.sock or ~/.local/state/corral/corrald.sock) is used, without a token no
    Authorization header is sent (the owner's own access), and without an identity the one the session is bound to
    (GET /v1/whoami) is used. timeout bounds each ordinary request, in seconds; long polls get their wait on top.
    Nothing is sent until a property or method needs it.
    """

    def __init__(self, identity_id: Optional[str] = None, url: Optional[str] = None, token: Optional[str] = None,
                 timeout: float = DEFAULT_TIMEOUT):
        if identity_id is None:
            identity_id = os.environ.get("CORRAL_IDENTITY")
        if url is None:
            url = default_url()
        if token is None:
            token = os.environ.get("CORRAL_TOKEN")
        self._setup(Transport(url, token or None, timeout), identity_id or None, None)

    def _setup(self, transport: Transport, ref: Optional[str], identity: Optional[Identity]) -> None:
        self._transport = transport
        self._ref = ref
        self._identity = identity
        self.max_wait = MAX_WAIT
        self._monotonic = time.monotonic
        self._sleep = time.sleep
        self.inbox = Inbox(self)
        self.secrets = Secrets(self)

    def _bound(self, identity: Identity) -> "CorralClient":
        other = object.__new__(CorralClient)
        other._setup(self._transport, identity.id, identity)
        other.max_wait = self.max_wait
        return other

    @property
    def url(self) -> str:
        """Where corrald is: "unix:/path" or "http://host:port"."""
        return self._transport.url

    @property
    def timeout(self) -> float:
        """Seconds an ordinary request may take."""
        return self._transport.timeout

    def __repr__(self) -> str:
        who = self._identity.name if self._identity is not None else self._ref
        return "<CorralClient %s identity=%r%s>" % (self.url, who, " with token" if self._transport.has_token else "")

    # ---- the identity -------------------------------------------------------------------------------------------

    @property
    def identity(self) -> Identity:
        """The bound identity (id, name, email, phone), fetched once. Raises CorralError (not_found, unauthorized,
        unavailable, or bad_request with field "identity_id" when no identity is named nor bound)."""
        if self._identity is None:
            if self._ref is not None:
                _, data = self._transport.request("GET", "/v1/identities/" + quote_segment(self._ref))
                self._identity = Identity.from_json(data)
            else:
                who = self.whoami()
                if who["identity"] is None:
                    raise CorralError("bad_request", "no identity: pass identity_id= or set CORRAL_IDENTITY (this "
                                      "session is bound to none)", None, "identity_id")
                self._identity = who["identity"]
            if not self._identity.id:
                ident, self._identity = self._identity, None
                raise CorralError("bad_response", "corrald answered an identity without an id: %r" % (ident,))
        return self._identity

    @property
    def id(self) -> str:
        """The identity's id, "idn_…"."""
        return self.identity.id

    @property
    def name(self) -> str:
        """The identity's name."""
        return self.identity.name

    @property
    def email(self) -> str:
        """The identity's email address."""
        return self.identity.email

    @property
    def phone(self) -> Optional[str]:
        """The identity's phone number ("+1555…"), or None when it has none."""
        return self.identity.phone

    def _path(self, *rest: str) -> str:
        ref = self._identity.id if self._identity is not None else self._ref
        if ref is None:
            ref = self.identity.id
        return "/v1/identities/" + quote_segment(ref) + "".join("/" + quote_segment(r) for r in rest)

    # ---- owner use ------------------------------------------------------------------------------------------------

    def whoami(self) -> Dict[str, Any]:
        """Returns {"session": the session's name or None, "identity": its Identity or None} (GET /v1/whoami)."""
        _, data = self._transport.request("GET", "/v1/whoami")
        ident = data.get("identity")
        session = data.get("session")
        return {"session": session if isinstance(session, str) else None,
                "identity": Identity.from_json(ident) if isinstance(ident, dict) else None}

    def identities(self) -> List[Identity]:
        """Returns the identities this client may see (a session token sees only its own)."""
        _, data = self._transport.request("GET", "/v1/identities")
        items = data.get("identities")
        return [Identity.from_json(d) for d in items if isinstance(d, dict)] if isinstance(items, list) else []

    def create_identity(self, name: str, email: Optional[str] = None) -> "CorralClient":
        """Creates an identity (POST /v1/identities) and returns a client bound to it, with the same url, token and
        timeout. email is a local part or a full address (default: the name at the mail domain). Raises CorralError
        conflict when the name or address is taken, bad_request for a bad name."""
        if not isinstance(name, str) or not name:
            raise ValueError("name must be a non-empty str")
        body: Dict[str, Any] = {"name": name}
        if email is not None:
            body["email"] = email
        _, data = self._transport.request("POST", "/v1/identities", body=body)
        return self._bound(Identity.from_json(data))

    # ---- inbox and codes ------------------------------------------------------------------------------------------

    def otp(self, timeout: float = 60, subject_contains: Optional[str] = None, from_contains: Optional[str] = None,
            since: Since = None) -> str:
        """Waits up to timeout seconds for the code of the newest matching message not given yet and returns it.
        Raises CorralTimeout when none came."""
        query = {"subject_contains": subject_contains, "from_contains": from_contains, "since": _since(since)}
        data = self._long_poll(self._path("otp"), query, timeout, "code")
        code = data.get("otp")
        if not isinstance(code, str) or not code:
            raise CorralError("bad_response", "corrald answered without a code")
        return code

    def _long_poll(self, path: str, query: Dict[str, Any], timeout: float, what: str) -> Dict[str, Any]:
        """Repeats GET path with wait= at most max_wait seconds until an answer comes or timeout runs out."""
        if isinstance(timeout, bool) or not isinstance(timeout, (int, float)) or timeout < 0 or timeout != timeout:
            raise ValueError("timeout must be a number of seconds >= 0")
        deadline = self._monotonic() + timeout
        first = True
        while True:
            remaining = deadline - self._monotonic()
            if not first and remaining <= 0.05:
                raise CorralTimeout("no matching %s within %g s" % (what, timeout), last.status, None, last.code)
            first = False
            wait = min(int(self.max_wait), max(0, math.ceil(remaining)))
            started = self._monotonic()
            try:
                _, data = self._transport.request("GET", path, dict(query, wait=wait), extra_timeout=wait)
                return data
            except CorralTimeout as e:
                last = e
                # A server that gives up at once on a wait must not make this loop spin.
                if wait >= 1 and self._monotonic() - started < 0.25:
                    self._sleep(min(1.0, max(0.0, deadline - self._monotonic())))


class Inbox:
    """The identity's inbox: client.inbox.wait_for(...), client.inbox.list(...)."""

    def __init__(self, client: CorralClient):
        self._client = client

    def wait_for(self, subject_contains: Optional[str] = None, from_contains: Optional[str] = None,
                 since: Since = None, timeout: float = 60) -> Message:
        """Waits up to timeout seconds for a matching message and returns it; raises CorralTimeout if none came.

        Without since: the oldest matching message this session has not been given yet, so a mail that arrived
        just before the call is not missed and none is given twice. since (ms since the epoch, a datetime, a
        message id or a Message) gives the oldest matching message received after it instead. Matching is a
        case-insensitive substring of the subject / the sender. Waits longer than corrald's maximum (300 s) are
        made of several long polls.
        """
        query = {"subject_contains": subject_contains, "from_contains": from_contains, "since": _since(since)}
        data = self._client._long_poll(self._client._path("inbox"), query, timeout, "message")
        msg = data.get("message")
        if not isinstance(msg, dict):
            raise CorralError("bad_response", "corrald answered without a message")
        return Message.from_json(msg)

    def list(self, limit: int = 20) -> List[Message]:
        """Returns up to limit messages of the inbox, newest first (it does not mark them as given)."""
        if isinstance(limit, bool) or not isinstance(limit, int) or limit < 1:
            raise ValueError("limit must be an int >= 1")
        _, data = self._client._transport.request("GET", self._client._path("inbox", "list"), {"limit": limit})
        items = data.get("messages")
        return [Message.from_json(d) for d in items if isinstance(d, dict)] if isinstance(items, list) else []

    def __repr__(self) -> str:
        return "<Inbox of %r>" % (self._client,)


class Secrets:
    """The identity's secrets: get / set / list / delete. Values are never logged nor shown in a repr."""

    def __init__(self, client: CorralClient):
        self._client = client

    def get(self, key: str, version: Optional[int] = None) -> Secret:
        """Returns the value of secret key (its latest version, or version) as a Secret, a str whose repr hides it.
        Raises CorralError not_found when there is no such secret or version."""
        _check_key(key)
        if version is not None and (isinstance(version, bool) or not isinstance(version, int) or version < 1):
            raise ValueError("version must be an int >= 1")
        _, data = self._client._transport.request("GET", self._client._path("secrets", key), {"version": version})
        value = data.get("value")
        if not isinstance(value, str):
            raise CorralError("bad_response", "corrald answered secret %s without a value" % key)
        ver = data.get("version")
        return Secret(value, key, ver if isinstance(ver, int) and not isinstance(ver, bool) else None)

    def set(self, key: str, value: str, inject: bool = False) -> int:
        """Stores value as the next version of secret key and returns that version number. inject=True makes it an
        environment variable of sessions bound to this identity."""
        _check_key(key)
        if not isinstance(value, str):
            raise TypeError("a secret value must be a str")
        body = {"key": key, "value": value, "inject": bool(inject)}
        _, data = self._client._transport.request("POST", self._client._path("secrets"), body=body)
        ver = data.get("version")
        if not isinstance(ver, int) or isinstance(ver, bool):
            raise CorralError("bad_response", "corrald answered secret %s without a version" % key)
        return ver

    def list(self) -> List[SecretInfo]:
        """Returns the secrets' names, versions, update times and inject flags (never their values)."""
        _, data = self._client._transport.request("GET", self._client._path("secrets"))
        items = data.get("secrets")
        return [SecretInfo.from_json(d) for d in items if isinstance(d, dict)] if isinstance(items, list) else []

    def delete(self, key: str) -> None:
        """Deletes secret key (every version). Raises CorralError not_found when there is none."""
        _check_key(key)
        self._client._transport.request("DELETE", self._client._path("secrets", key))

    def __repr__(self) -> str:
        return "<Secrets of %r>" % (self._client,)


def _check_key(key: Any) -> None:
    if not isinstance(key, str) or not key:
        raise ValueError("a secret key must be a non-empty str")


def _since(since: Since) -> Optional[Union[int, str]]:
    if since is None:
        return None
    if isinstance(since, Message):
        return since.id
    if isinstance(since, datetime):
        return int(since.timestamp() * 1000)
    if isinstance(since, bool):
        raise TypeError("since must be ms since the epoch, a datetime, a message id or a Message")
    if isinstance(since, (int, float)):
        if 0 < since < 1e11:
            raise ValueError("since=%r looks like seconds: pass milliseconds since the epoch "
                             "(int(time.time() * 1000)) or a datetime" % (since,))
        return int(since)
    if isinstance(since, str):
        return since or None
    raise TypeError("since must be ms since the epoch, a datetime, a message id or a Message")
