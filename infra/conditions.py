"""A template's Conditions and `!If`, evaluated on the parameters a stack was bound with.

Apart from `infra.template`'s Stack, which hands over how to resolve a value and which
error to raise, so the two stay one idea each.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any


class Conditions:
    def __init__(
        self,
        section: Mapping[str, Any],
        resolve: Callable[[Any, str], str],
        error: type[Exception],
    ) -> None:
        self.section = section
        self.resolve = resolve
        self.error = error

    def holds(self, name: str, where: str) -> bool:
        """Whether the condition called `name` holds."""
        if name not in self.section:
            raise self.error(f"{where}: unknown condition {name!r}")
        return self._truth(self.section[name], f"Conditions.{name}")

    def choose(self, arg: Any, where: str) -> Any:
        """The branch `!If [condition, a, b]` takes."""
        if not (isinstance(arg, list) and len(arg) == 3 and isinstance(arg[0], str)):
            raise self.error(f"{where}: malformed !If {arg!r}")
        name, when_true, when_false = arg
        return when_true if self.holds(name, where) else when_false

    def _truth(self, value: Any, where: str) -> bool:
        if isinstance(value, dict) and len(value) == 1:
            ((fn, arg),) = value.items()
            if fn == "Condition" and isinstance(arg, str):
                return self.holds(arg, where)
            if fn == "Fn::Equals" and isinstance(arg, list) and len(arg) == 2:
                return self.resolve(arg[0], where) == self.resolve(arg[1], where)
            if fn == "Fn::Not" and isinstance(arg, list) and len(arg) == 1:
                return not self._truth(arg[0], where)
            if fn in ("Fn::And", "Fn::Or") and isinstance(arg, list):
                truths = [self._truth(a, where) for a in arg]
                return all(truths) if fn == "Fn::And" else any(truths)
        raise self.error(f"{where}: unsupported condition {value!r}")
