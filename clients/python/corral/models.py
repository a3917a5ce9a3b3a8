"""corral.models — what corrald answers with: Identity, Message, Secret (a str whose repr hides it), SecretInfo."""

from __future__ import annotations

from typing import Any, Dict, List, Optional

__all__ = ["Identity", "Message", "Secret", "SecretInfo"]


def _str(d: Dict[str, Any], key: str, default: str = "") -> str:
    v = d.get(key)
    return v if isinstance(v, str) else default


def _opt_str(d: Dict[str, Any], key: str) -> Optional[str]:
    v = d.get(key)
    return v if isinstance(v, str) else None


def _int(d: Dict[str, Any], key: str) -> Optional[int]:
    v = d.get(key)
    return v if isinstance(v, int) and not isinstance(v, bool) else None


def _str_list(d: Dict[str, Any], key: str) -> List[str]:
    v = d.get(key)
    return [x for x in v if isinstance(x, str)] if isinstance(v, list) else []


class Identity:
    """An identity: id ("idn_…"), name, email address and phone number (None when it has none)."""

    __slots__ = ("id", "name", "email", "phone")

    def __init__(self, id: str, name: str, email: str, phone: Optional[str] = None):
        self.id = id
        self.name = name
        self.email = email
        self.phone = phone

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Identity":
        return cls(_str(d, "id"), _str(d, "name"), _str(d, "email"), _opt_str(d, "phone"))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Identity) and (self.id, self.name, self.email, self.phone) == (
            other.id, other.name, other.email, other.phone)

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return "Identity(id=%r, name=%r, email=%r, phone=%r)" % (self.id, self.name, self.email, self.phone)


class Message:
    """A mail or an SMS in an identity's inbox.

    Fields: id ("msg_…"), kind ("mail" or "sms"), sender (also from_: "Ana <ana@x.test>" or a phone number), to,
    subject, date and received (ms since the epoch; None if unknown), text, links (verification links first),
    otp (the code the relay found, or None), otp_candidates (best first), flags ("malformed", "truncated").
    Its repr shows neither the text, the subject nor the code.
    """

    __slots__ = ("id", "kind", "sender", "to", "subject", "date", "received", "text", "links", "otp",
                 "otp_candidates", "flags")

    def __init__(self, id: str, kind: str = "mail", sender: str = "", to: str = "", subject: str = "",
                 date: Optional[int] = None, received: Optional[int] = None, text: str = "",
                 links: Optional[List[str]] = None, otp: Optional[str] = None,
                 otp_candidates: Optional[List[str]] = None, flags: Optional[List[str]] = None):
        self.id = id
        self.kind = kind
        self.sender = sender
        self.to = to
        self.subject = subject
        self.date = date
        self.received = received
        self.text = text
        self.links = list(links or [])
        self.otp = otp
        self.otp_candidates = list(otp_candidates or [])
        self.flags = list(flags or [])

    @property
    def from_(self) -> str:
        """The sender, as the "from" field of the API (from is a Python keyword)."""
        return self.sender

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "Message":
        return cls(id=_str(d, "id"), kind=_str(d, "kind", "mail"), sender=_str(d, "from"), to=_str(d, "to"),
                   subject=_str(d, "subject"), date=_int(d, "date"), received=_int(d, "received"),
                   text=_str(d, "text"), links=_str_list(d, "links"), otp=_opt_str(d, "otp"),
                   otp_candidates=_str_list(d, "otp_candidates"), flags=_str_list(d, "flags"))

    def to_dict(self) -> Dict[str, Any]:
        """Returns the message as the API's JSON object."""
        return {"id": self.id, "kind": self.kind, "from": self.sender, "to": self.to, "subject": self.subject,
                "date": self.date, "received": self.received, "text": self.text, "links": list(self.links),
                "otp": self.otp, "otp_candidates": list(self.otp_candidates), "flags": list(self.flags)}

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Message) and self.to_dict() == other.to_dict()

    def __hash__(self) -> int:
        return hash(self.id)

    def __repr__(self) -> str:
        return "<Message %s %s from %r, received %r, %d chars%s%s>" % (
            self.id, self.kind, self.sender, self.received, len(self.text), ", has a code" if self.otp else "",
            (", flags " + ",".join(self.flags)) if self.flags else "")


class Secret(str):
    """A secret value: a str (use it as one), with .key and .version; its repr never shows the value.

    str(secret), f-strings and print() do show it: they are how a program uses it.
    """

    key: str
    version: Optional[int]

    def __new__(cls, value: str, key: str = "", version: Optional[int] = None) -> "Secret":
        self = super().__new__(cls, value)
        self.key = key
        self.version = version
        return self

    @property
    def value(self) -> str:
        """The value as a plain str."""
        return str.__str__(self)

    def __repr__(self) -> str:
        return "<Secret %s v%s (%d chars)>" % (self.key or "?", self.version if self.version is not None else "?",
                                                len(self))


class SecretInfo:
    """A secret's name and state without its value: key, version, updated (ms since the epoch), inject."""

    __slots__ = ("key", "version", "updated", "inject")

    def __init__(self, key: str, version: Optional[int] = None, updated: Optional[int] = None, inject: bool = False):
        self.key = key
        self.version = version
        self.updated = updated
        self.inject = inject

    @classmethod
    def from_json(cls, d: Dict[str, Any]) -> "SecretInfo":
        return cls(_str(d, "key"), _int(d, "version"), _int(d, "updated"), d.get("inject") is True)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, SecretInfo) and (self.key, self.version, self.updated, self.inject) == (
            other.key, other.version, other.updated, other.inject)

    def __hash__(self) -> int:
        return hash((self.key, self.version))

    def __repr__(self) -> str:
        return "SecretInfo(key=%r, version=%r, updated=%r, inject=%r)" % (self.key, self.version, self.updated,
                                                                          self.inject)
