"""One measured shim over FastAPI: its check for pydantic.v1 models, without importing
pydantic.v1 when nothing has.

For every annotation of every route, FastAPI asks whether it is a pydantic.v1 model (to
refuse one), and imports pydantic.v1 to answer: about 60 ms of the API's cold start, a
sixth of its dependencies' whole import, for a module taskq never uses (README,
Benchmarks). No class can be a pydantic.v1 model before pydantic.v1 is imported, so while
it is not in sys.modules the answer is "no" without the import; once anything has
imported it (a task module with a v1 model), FastAPI's own check runs as before.

FastAPI keeps this check in a private module: if a release moves or drops it, nothing is
patched and FastAPI behaves as shipped (tests/unit/test_api_cold_start.py then fails, to
say the import is back).
"""

from __future__ import annotations

import sys
from typing import Any

V1_MODULE = "pydantic.v1"


def skip_v1_import_when_unused() -> bool:
    """Install the check; whether FastAPI still has the function it wraps."""
    try:
        from fastapi._compat import shared
    except ImportError:  # pragma: no cover - a FastAPI without it
        return False
    original = getattr(shared, "is_pydantic_v1_model_class", None)
    if original is None or getattr(original, "taskq_shim", False):
        return original is not None

    def is_pydantic_v1_model_class(cls: Any) -> bool:
        return V1_MODULE in sys.modules and bool(original(cls))

    is_pydantic_v1_model_class.taskq_shim = True  # type: ignore[attr-defined]
    shared.is_pydantic_v1_model_class = is_pydantic_v1_model_class
    return True
