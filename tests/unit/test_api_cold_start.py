"""The API's cold start does not import pydantic.v1 (taskq.api.fastapi_compat), and FastAPI
still refuses a pydantic.v1 model once something has imported it. Fresh interpreters: what
a module imports is process-wide."""

from __future__ import annotations

import subprocess
import sys

from tests.unit.conftest import ROOT


def _python(code: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env={"PYTHONPATH": f"{ROOT / 'shared'}:{ROOT}", "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_building_the_app_and_its_schema_leaves_pydantic_v1_unimported() -> None:
    done = _python(
        "import sys\n"
        "from taskq.api import create_app\n"
        "app = create_app()\n"
        "assert app.openapi()['paths']\n"
        "print('pydantic.v1' in sys.modules)\n"
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "False"


def test_a_pydantic_v1_model_is_still_refused_once_v1_is_imported() -> None:
    done = _python(
        "import warnings\n"
        "warnings.simplefilter('ignore')\n"
        "from pydantic import v1\n"
        "import taskq.api\n"
        "from fastapi import FastAPI\n"
        "class Old(v1.BaseModel):\n"
        "    x: int\n"
        "app = FastAPI()\n"
        "try:\n"
        "    @app.post('/old')\n"
        "    def old(body: Old) -> None: ...\n"
        "except Exception as refused:\n"
        "    print(type(refused).__name__)\n"
    )
    assert done.returncode == 0, done.stderr
    assert "PydanticV1NotSupportedError" in done.stdout
