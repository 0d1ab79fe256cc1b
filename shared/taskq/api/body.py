"""The one place a request body becomes JSON: strictly, and every refusal a problem.

FastAPI parses a JSON body with `json.loads` and answers what that raises unevenly: a
syntax error is a 422, but bytes that are not UTF-8, nesting past the parser's recursion
limit or an integer longer than Python converts are a 400 "error parsing the body", and a
key given twice silently keeps its last value (so `{"task": "echo", "task": "sleep"}`
would run whichever a proxy or a log reader did not see). Routes with a JSON body here
parse it first, with these rules, and answer any failure as a 422 problem naming "body";
FastAPI then reads the parsed value back instead of parsing again.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Coroutine
from typing import Any

from fastapi import Request, Response
from fastapi.routing import APIRoute

from taskq.api.limits import replay
from taskq.errors import InvalidRequest
from taskq.problems import is_json_media

Handler = Callable[[Request], Coroutine[Any, Any, Response]]


class DuplicateKey(ValueError):
    """Raised from inside json.loads, where the hook cannot answer; parse_json turns it into
    the 422 naming the key."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def _object(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
    """json's object_pairs_hook: an object, unless a key comes twice."""
    value = dict(pairs)
    if len(value) != len(pairs):
        seen: set[str] = set()
        for key, _ in pairs:
            if key in seen:
                raise DuplicateKey(key)
            seen.add(key)
    return value


def parse_json(raw: bytes) -> Any:
    """A JSON body (RFC 8259: UTF-8, a byte-order mark tolerated), or an InvalidRequest."""
    try:
        text = raw.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise InvalidRequest(
            f"the body is not UTF-8 (byte {exc.start}); send JSON encoded as UTF-8", field="body"
        ) from None
    try:
        return json.loads(text, object_pairs_hook=_object)
    except DuplicateKey as exc:
        raise InvalidRequest(
            f"the key {exc.key!r} appears twice in one JSON object", field="body"
        ) from None
    except json.JSONDecodeError as exc:
        raise InvalidRequest(
            f"the body is not JSON: {exc.msg} (line {exc.lineno}, column {exc.colno})",
            field="body",
        ) from None
    except RecursionError:
        # json's C scanner guards its recursion: deep nesting unwinds as this error.
        raise InvalidRequest("the body nests too deeply to parse", field="body") from None
    except ValueError:  # json.loads's only other refusal: an integer of over 4300 digits
        raise InvalidRequest("the body holds a number with too many digits", field="body") from None


class JsonRequest(Request):
    """A request whose JSON is read by `parse_json` (Starlette's reads with json.loads)."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            self._json = parse_json(await self.body())
        return self._json


class JsonBodyRoute(APIRoute):
    """A route whose JSON body is parsed by `parse_json` before FastAPI sees it.

    Parsing first, outside FastAPI's own try, lets the refusal travel as a taskq error to
    problems' handler; FastAPI's later `await request.json()` gets the parsed value.
    """

    def get_route_handler(self) -> Handler:
        handler = super().get_route_handler()
        if self.body_field is None:
            return handler

        async def parse_first(request: Request) -> Response:
            # Read through `request`, the one error handlers are given, so they can still
            # see the body; the route reads the same bytes again from `strict`.
            raw = await request.body()
            strict = JsonRequest(request.scope, replay(raw))
            if raw and is_json_media(request.headers.get("content-type")):
                await strict.json()
            return await handler(strict)

        return parse_first
