"""The options and arguments several commands share, and the parsers behind them.

Each shared option is declared once here as an `Annotated` type, so `--json` or `--id`
reads and parses the same in every command. Parsers turn command-line text into values
and refuse what cannot work with a `UsageError` (exit 2) or, inside typer's own
parsing, a `typer.BadParameter` (which names the option in the message).
"""

from __future__ import annotations

import functools
import inspect
import json
import re
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Annotated, Any

import typer

from taskq.dlq import Selector
from taskq.errors import UsageError
from taskq.models import IDEMPOTENCY_KEY_RULE, is_idempotency_key, is_job_id
from taskq.text import first_line

MESSAGE_ID_RE = re.compile(r"^[A-Za-z0-9_\-]{1,100}$")
KEY_ID_RE = re.compile(r"[0-9a-f]{16}")
_DURATION_RE = re.compile(r"^(?:(\d+)d)?(?:(\d+)h)?(?:(\d+)m)?(?:(\d+)s)?$")
_DURATION_UNITS = (86_400, 3_600, 60, 1)


# --- parsers and checks ------------------------------------------------------------


def parse_duration(text: str) -> float:
    """'30s', '15m', '2h', '7d' (or a combination such as '1h30m') in seconds."""
    match = _DURATION_RE.match(text.strip().lower())
    if not text.strip() or match is None:
        raise ValueError(f"{text!r} is not a duration (use 30s, 15m, 2h or 7d)")
    return float(sum(int(g or 0) * u for g, u in zip(match.groups(), _DURATION_UNITS, strict=True)))


def _duration_option(flag: str, help: str) -> Any:
    """A duration option; a bad value is refused by typer, naming the option it was given to."""

    def parse(value: str) -> float:
        try:
            return parse_duration(value)
        except ValueError as exc:
            raise typer.BadParameter(str(exc), param_hint=f"'{flag}'") from None

    return typer.Option(flag, parser=parse, metavar="DURATION", help=help)


def _regex(value: str) -> re.Pattern[str]:
    """--error-match compiled once, so a bad pattern fails before any message is touched."""
    try:
        return re.compile(value)
    except re.error as exc:
        raise typer.BadParameter(
            f"{value!r} is not a regular expression: {exc}", param_hint="'--error-match'"
        ) from None


def parse_payload(text: str | None, stdin: Callable[[], str] | None = None) -> dict[str, Any]:
    """--payload: a JSON object inline, `@file`, or `@-` for stdin."""
    if text is None:
        return {}
    what = "--payload"
    if text.startswith("@"):
        path = text[1:]
        what = f"--payload {text}"
        try:
            text = (stdin or sys.stdin.read)() if path == "-" else Path(path).read_text("utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            # An OSError's strerror ("No such file or directory") omits the errno and the
            # path, which the message already names.
            reason = first_line(getattr(exc, "strerror", None) or exc)
            raise UsageError(f"cannot read --payload file {path!r}: {reason}") from None
    try:
        value = json.loads(text)
    except json.JSONDecodeError as exc:
        raise UsageError(f"{what} is not JSON: {exc}") from None
    if not isinstance(value, dict):
        raise UsageError(f"{what} must be a JSON object, got {type(value).__name__}")
    return value


def job_id(value: str) -> str:
    """The value, when it is a job id; checked before AWS is asked about it."""
    if not is_job_id(value):
        raise UsageError(f"{value!r} is not a job id (32 lowercase hex characters)")
    return value


def job_or_message_id(value: str, what: str = "") -> str:
    """The value, when it is a job id or a DLQ message id (what `dlq` commands select by)."""
    if not (is_job_id(value) or MESSAGE_ID_RE.match(value)):
        raise UsageError(f"{what}{value!r} is neither a job id nor a DLQ message id")
    return value


def key_id(value: str) -> str:
    """The value, when it is an API key id (the 16 hex characters `keys ls` shows)."""
    if not KEY_ID_RE.fullmatch(value):
        raise UsageError(f"{value!r} is not a key id (16 hex characters; see taskq keys ls)")
    return value


def idempotency_key(value: str | None) -> str | None:
    """The key, when the API would accept it too (so a script can switch between them)."""
    if value is not None and not is_idempotency_key(value):
        raise UsageError(f"--idempotency-key must be {IDEMPOTENCY_KEY_RULE}")
    return value


def make_selector(
    ids: list[str],
    task: str | None,
    error_match: re.Pattern[str] | None,
    older_than: float | None,
    newer_than: float | None,
    everything: bool,
    *,
    required: bool,
) -> Selector:
    """The DLQ selector from the options; a changing command must say what it takes."""
    for ident in ids:
        job_or_message_id(ident, what="--id ")
    selector = Selector(
        ids=frozenset(ids),
        task=task,
        error_match=error_match,
        older_than_s=older_than,
        newer_than_s=newer_than,
        everything=everything,
    )
    if everything and selector.has_criteria:
        raise UsageError("--all takes every message: do not combine it with other selectors")
    if required and not everything and not selector.has_criteria:
        raise UsageError(
            "say which messages: --id, --task, --error-match, --older-than, --newer-than, or --all"
        )
    if older_than is not None and newer_than is not None and newer_than <= older_than:
        raise UsageError("--newer-than must be longer than --older-than, or nothing matches")
    return selector


# --- shared declarations -----------------------------------------------------------

JsonOpt = Annotated[bool, typer.Option("--json", help="Print JSON on stdout (for scripts).")]
JobIdArg = Annotated[str, typer.Argument(metavar="ID", help="The job id (32 hex characters).")]
IdsOpt = Annotated[
    list[str] | None,
    typer.Option(
        "--id",
        metavar="ID",
        help="A job id or DLQ message id; repeat for several.",
        show_default=False,
    ),
]
TaskOpt = Annotated[
    str | None, typer.Option("--task", metavar="TASK", help="Only this task's messages.")
]
ErrorOpt = Annotated[
    re.Pattern[str] | None,
    typer.Option(
        "--error-match",
        parser=_regex,
        metavar="REGEX",
        help="Only messages whose last error matches this regular expression.",
    ),
]
OlderOpt = Annotated[
    float | None, _duration_option("--older-than", "Failed at least this long ago (15m, 2h).")
]
NewerOpt = Annotated[
    float | None, _duration_option("--newer-than", "Failed at most this long ago (30s, 7d).")
]
DelayOpt = Annotated[
    float | None,
    _duration_option("--delay", "Run no sooner than this from now (8s, 20m, 2d; up to 365d)."),
]
RunAtOpt = Annotated[
    str | None,
    typer.Option(
        "--run-at",
        metavar="TIME",
        help="Run no sooner than this RFC 3339 time, e.g. 2027-01-31T09:00:00+01:00.",
    ),
]
AllOpt = Annotated[bool, typer.Option("--all", help="Every message (when no selector is given).")]
MaxOpt = Annotated[
    int | None, typer.Option("--max", min=1, help="Take at most this many messages.")
]
DryRunOpt = Annotated[
    bool, typer.Option("--dry-run", help="Show what would happen; change nothing.")
]
YesOpt = Annotated[bool, typer.Option("--yes", "-y", help="Do not ask for confirmation.")]


# --- the DLQ selector options, declared once for every command that selects messages ---

_SELECTOR_PARAMS = tuple(
    inspect.Parameter(name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None, annotation=kind)
    for name, kind in (
        ("ids", IdsOpt),
        ("task", TaskOpt),
        ("error_match", ErrorOpt),
        ("older_than", OlderOpt),
        ("newer_than", NewerOpt),
    )
)
_ALL_PARAM = inspect.Parameter(
    "everything", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=False, annotation=AllOpt
)

Command = Callable[..., None]


def selects_messages(*, changes: bool) -> Callable[[Command], Command]:
    """Give a DLQ command the selector options; the command receives one `selector`.

    Typer takes each option from a parameter of the command function, and `dlq ls`,
    `redrive` and `purge` select messages with the same five (plus --all for the two
    that change messages, which must say what they take). Rather than repeat them in
    every signature, this puts them into the command's signature, right after the typer
    context, and hands the command the `Selector` made from them.
    """
    added = (*_SELECTOR_PARAMS, _ALL_PARAM) if changes else _SELECTOR_PARAMS

    def decorate(command: Command) -> Command:
        signature = inspect.signature(command, eval_str=True)
        context, *own = (p for p in signature.parameters.values() if p.name != "selector")
        params = [context, *added, *own]

        @functools.wraps(command)
        def with_selector(*args: Any, **kwargs: Any) -> None:
            selector = make_selector(
                kwargs.pop("ids") or [],
                kwargs.pop("task"),
                kwargs.pop("error_match"),
                kwargs.pop("older_than"),
                kwargs.pop("newer_than"),
                kwargs.pop("everything", False),
                required=changes,
            )
            command(*args, selector=selector, **kwargs)

        with_selector.__signature__ = signature.replace(parameters=params)  # type: ignore[attr-defined]
        with_selector.__annotations__ = {p.name: p.annotation for p in params}
        return with_selector

    return decorate
