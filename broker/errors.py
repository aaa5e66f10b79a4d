"""The broker's error hierarchy: each error carries the HTTP status, a short public
message (shown escaped on the error page) and a machine reason (logged, counted)."""

from __future__ import annotations


class BrokerError(Exception):
    status = 400
    title = "Bad request"

    def __init__(self, reason: str, message: str, **context: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason
        self.message = message
        self.context = context


class BadRequest(BrokerError):
    status = 400
    title = "Bad request"


class Forbidden(BrokerError):
    status = 403
    title = "Not allowed"


class Gone(BrokerError):
    status = 410
    title = "Preview environment gone"


class IdPError(BrokerError):
    """The identity provider failed (down, slow, or answered nonsense)."""

    status = 502
    title = "Identity provider error"


class IdPTimeout(IdPError):
    status = 504
    title = "Identity provider timed out"


class LoginRefused(BrokerError):
    """The IdP answered, but the login cannot complete (bad code, bad ID token)."""

    status = 400
    title = "Login failed"
