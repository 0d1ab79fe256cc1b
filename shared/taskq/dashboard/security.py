"""Who may use the dashboard, and which requests may change anything.

- Host: on loopback without a token, every request must name a loopback host (with the
  dashboard's port). A page that rebinds its own DNS name to 127.0.0.1 sends its own name
  in Host, and is refused before it can read or change anything.
- Token: when one is configured (required to bind anything but loopback), every request
  carries it: the cookie set by opening the URL with `?token=` once, or an
  `Authorization: Bearer` header. Without it: 401.
- State changes (every POST): the Origin header (or, when a client sends none, the
  Referer) must be the dashboard's own origin, and the form's `csrf` field must be the
  token derived from this browser's session cookie. A page on another origin can neither
  read that token nor send our Origin, so a replayed form is refused with 403.

Tokens are HMACs under a secret made at start: nothing is stored, and a restart signs
everyone out. The operator's AWS credentials never reach a page: every AWS call is made
by this process.
"""

from __future__ import annotations

import hashlib
import hmac
import ipaddress
import secrets
from dataclasses import dataclass, field
from urllib.parse import parse_qs, urlsplit

from starlette.requests import Request

SESSION_COOKIE = "taskq_dashboard_session"
AUTH_COOKIE = "taskq_dashboard_auth"
CSRF_FIELD = "csrf"
TOKEN_PARAM = "token"  # noqa: S105 (the query parameter's name, not a token)
FORM_MAX_BYTES = 1024 * 1024  # a DLQ selection of thousands of message ids fits
FORM_MAX_FIELDS = 20_000
SAFE_METHODS = frozenset({"GET", "HEAD"})
LOOPBACK_NAMES = ("127.0.0.1", "localhost", "[::1]")


class Refused(Exception):
    """A request the guard turns away: its HTTP status and the one line it is told."""

    def __init__(self, status: int, reason: str) -> None:
        super().__init__(reason)
        self.status = status
        self.reason = reason


def is_loopback(host: str) -> bool:
    """True for 127.0.0.0/8, ::1 and localhost: addresses only this machine can reach."""
    if host.strip("[]") == "localhost":
        return True
    try:
        return ipaddress.ip_address(host.strip("[]")).is_loopback
    except ValueError:
        return False


@dataclass
class Guard:
    """The checks for one running dashboard (its port, its token, its secret)."""

    port: int
    token: str | None = None
    secret: bytes = field(default_factory=lambda: secrets.token_bytes(32), repr=False)

    def _sign(self, purpose: str, value: str) -> str:
        message = f"{purpose}:{value}".encode()
        return hmac.new(self.secret, message, hashlib.sha256).hexdigest()

    # --- every request ------------------------------------------------------------------

    def check_host(self, request: Request) -> None:
        """Without a token, only loopback host names (DNS rebinding sends another)."""
        if self.token is not None:
            return  # the token guards; Host is whatever name reaches this machine
        host = request.headers.get("host", "")
        allowed = {f"{name}:{self.port}" for name in LOOPBACK_NAMES}
        if self.port == 80:
            allowed |= set(LOOPBACK_NAMES)
        if host.lower() not in allowed:
            raise Refused(403, f"host {host!r} is not this dashboard's (open it on 127.0.0.1)")

    def logs_in(self, request: Request) -> bool:
        """True when this request brings the right ?token= (the caller sets the cookie)."""
        given = request.query_params.get(TOKEN_PARAM)
        return self.token is not None and given is not None and self._same(given, self.token)

    def auth_cookie(self) -> str:
        """The value of the cookie that stands for the token after a log-in."""
        assert self.token is not None
        return self._sign("auth", self.token)

    def check_token(self, request: Request) -> None:
        """With a token configured: the cookie or a Bearer header must carry it."""
        if self.token is None:
            return
        bearer = request.headers.get("authorization", "")
        if bearer.lower().startswith("bearer ") and self._same(bearer[7:].strip(), self.token):
            return
        cookie = request.cookies.get(AUTH_COOKIE, "")
        if cookie and self._same(cookie, self.auth_cookie()):
            return
        raise Refused(401, "this dashboard needs its token: open the URL it printed at start")

    # --- sessions and state changes -----------------------------------------------------

    @staticmethod
    def new_session() -> str:
        return secrets.token_urlsafe(24)

    def csrf_token(self, session: str) -> str:
        """The token forms of this session carry; derived, so nothing is stored."""
        return self._sign("csrf", session)

    def check_origin(self, request: Request) -> None:
        """A state change must come from a page of this dashboard (same scheme, host, port)."""
        host = request.headers.get("host", "").lower()
        own = {f"http://{host}", f"https://{host}"}
        origin = request.headers.get("origin")
        if origin is None or origin == "null":
            referer = urlsplit(request.headers.get("referer", ""))
            origin = f"{referer.scheme}://{referer.netloc}" if referer.netloc else None
        if origin is None:
            raise Refused(403, "refused: a change must come from the dashboard's own page")
        if origin.lower() not in own:
            raise Refused(403, f"refused: a change from another origin ({origin})")

    def check_csrf(self, request: Request, sent: str | None) -> None:
        session = request.cookies.get(SESSION_COOKIE, "")
        if not session or not sent or not self._same(sent, self.csrf_token(session)):
            raise Refused(403, "refused: the form's token is missing or not this session's")

    @staticmethod
    def _same(given: str, expected: str) -> bool:
        return hmac.compare_digest(given.encode(), expected.encode())


@dataclass(frozen=True)
class Form:
    """An urlencoded form body, checked: every value of each field, in order."""

    fields: dict[str, list[str]]

    def first(self, name: str) -> str | None:
        values = self.fields.get(name)
        return values[0] if values else None

    def all(self, name: str) -> list[str]:
        return list(self.fields.get(name, []))


async def checked_form(guard: Guard, request: Request) -> Form:
    """The body of a state-changing request, after its Origin and CSRF token passed.

    Every POST route calls this first: nothing changes before both checks.
    """
    guard.check_origin(request)
    body = await _bounded_body(request)
    try:
        fields = parse_qs(
            body.decode("utf-8"),
            keep_blank_values=True,
            strict_parsing=False,
            max_num_fields=FORM_MAX_FIELDS,
        )
    except (UnicodeDecodeError, ValueError):
        raise Refused(400, "the form is not valid urlencoded UTF-8") from None
    form = Form(fields)
    guard.check_csrf(request, form.first(CSRF_FIELD))
    return form


async def _bounded_body(request: Request) -> bytes:
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > FORM_MAX_BYTES:
        raise Refused(413, f"the form is larger than {FORM_MAX_BYTES} bytes")
    kind = request.headers.get("content-type", "").split(";")[0].strip().lower()
    if kind not in ("", "application/x-www-form-urlencoded"):
        raise Refused(415, "send the form as application/x-www-form-urlencoded")
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_MAX_BYTES:
            raise Refused(413, f"the form is larger than {FORM_MAX_BYTES} bytes")
    return body
