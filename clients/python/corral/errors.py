"""corral.errors — the two exceptions the SDK raises: CorralError (the server's stable code) and CorralTimeout."""

from __future__ import annotations

from typing import Optional

__all__ = ["CorralError", "CorralTimeout"]


class CorralError(Exception):
    """An error answered by corrald, or met on the way to it.

    code is the server's stable snake_case code ("bad_request", "unauthorized", "not_found", "timeout", "conflict",
    "unavailable", ...); a connection failure is "unavailable" with status None, an answer the SDK cannot read is
    "bad_response". status is the HTTP status (None when there was no answer); field names the offending request
    field when the server said which. The message never holds a secret value.
    """

    def __init__(self, code: str, message: str = "", status: Optional[int] = None, field: Optional[str] = None):
        # BaseException.__init__ directly: CorralTimeout also derives from OSError, whose __init__ would read
        # (code, message) as (errno, strerror).
        BaseException.__init__(self, code, message, status, field)
        self.code = code
        self.message = message
        self.status = status
        self.field = field

    def __str__(self) -> str:
        text = self.code
        if self.message:
            text += ": " + self.message
        if self.field:
            text += " (field %s)" % self.field
        if self.status is not None:
            text += " [HTTP %d]" % self.status
        return text

    def __repr__(self) -> str:
        return "%s(code=%r, message=%r, status=%r, field=%r)" % (
            type(self).__name__, self.code, self.message, self.status, self.field)

    def __reduce__(self):
        return (type(self), (self.code, self.message, self.status, self.field))


class CorralTimeout(CorralError, TimeoutError):
    """No matching message (or code) arrived within the timeout; code "timeout", status 408.

    It is both a CorralError and a TimeoutError, so either may be caught.
    """

    def __init__(self, message: str = "", status: Optional[int] = 408, field: Optional[str] = None,
                 code: str = "timeout"):
        CorralError.__init__(self, code, message, status, field)

    def __reduce__(self):
        return (type(self), (self.message, self.status, self.field, self.code))
