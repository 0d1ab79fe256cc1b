"""Finding and running the AWS SAM CLI for the tests that need it (test_sam_*.py).

`make validate` / `make build` install it in .venv-sam; without it those tests skip with one
line. CI runs both targets, so there they always run.
"""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
REGION = "us-east-1"


def sam_path() -> str | None:
    for candidate in (os.environ.get("SAM_CLI"), str(ROOT / ".venv-sam" / "bin" / "sam")):
        if candidate and Path(candidate).exists():
            return candidate
    return shutil.which("sam")


def require_sam() -> str:
    """The sam executable, or skip the whole module with one clear line."""
    found = sam_path()
    if found is None:
        pytest.skip(
            "aws-sam-cli is not installed (make validate or make build installs it in .venv-sam)",
            allow_module_level=True,
        )
    return found


def run_sam(
    sam: str, *args: str, cwd: Path = ROOT, timeout: float = 600
) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "SAM_CLI_TELEMETRY": "0"}
    return subprocess.run(
        [sam, *args], cwd=cwd, env=env, capture_output=True, text=True, timeout=timeout
    )
