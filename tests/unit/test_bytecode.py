"""infra.bytecode: a compiled build's modules load without compiling on Lambda, where SAM's
zip dates every file 1980 and the code folders are read-only."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from infra.bytecode import BytecodeError, compile_build, main

FN = "Resources:\n  Fn: {Type: AWS::Serverless::Function}\n"
SAM_ZIP_DATE = 315532800  # 1980-01-01: what a file extracted from SAM's zip says

# Imports `module` from `folder` and prints the modules Python had to compile from source.
PROBE = textwrap.dedent(
    """
    import importlib._bootstrap_external as external, json, sys
    compiled = []
    original = external.SourceLoader.source_to_code
    def counting(self, data, path, *, _optimize=-1):
        compiled.append(path)
        return original(self, data, path, _optimize=_optimize)
    external.SourceLoader.source_to_code = counting
    sys.path.insert(0, sys.argv[1])
    __import__(sys.argv[2])
    print(json.dumps([p for p in compiled if p.startswith(sys.argv[1])]))
    """
)


def _build(root: Path, runtime: str) -> Path:
    (root / "Fn").mkdir(parents=True)
    (root / "template.yaml").write_text(f"Globals:\n  Function:\n    Runtime: {runtime}\n{FN}")
    (root / "Fn" / "app.py").write_text("import helper\nVALUE = helper.VALUE + 1\n")
    (root / "Fn" / "helper.py").write_text("VALUE = 41\n")
    return root


def _as_unzipped_by_lambda(root: Path) -> None:
    for path in root.rglob("*.py"):
        os.utime(path, (SAM_ZIP_DATE, SAM_ZIP_DATE))


def _compiled_at_import(folder: Path, module: str) -> list[str]:
    done = subprocess.run(
        [sys.executable, "-I", "-c", PROBE, str(folder), module],
        env={"PYTHONDONTWRITEBYTECODE": "1"},  # as on Lambda: nothing is written back
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    return [Path(p).name for p in json.loads(done.stdout)]


def _here() -> str:
    return f"python{sys.version_info.major}.{sys.version_info.minor}"


def test_a_compiled_build_imports_without_compiling_whatever_its_dates(tmp_path: Path) -> None:
    build = _build(tmp_path, _here())
    # pip's own kind of .pyc (timestamp-checked) goes stale at SAM's 1980 dates
    subprocess.run([sys.executable, "-m", "compileall", "-q", str(build)], check=True)
    _as_unzipped_by_lambda(build)
    assert sorted(_compiled_at_import(build / "Fn", "app")) == ["app.py", "helper.py"]

    assert "compiled for" in compile_build(build)
    _as_unzipped_by_lambda(build)
    assert _compiled_at_import(build / "Fn", "app") == []


def test_a_changed_source_is_compiled_again_not_run_stale(tmp_path: Path) -> None:
    build = _build(tmp_path, _here())
    compile_build(build)
    (build / "Fn" / "helper.py").write_text("VALUE = 99\n")
    _as_unzipped_by_lambda(build)
    assert _compiled_at_import(build / "Fn", "app") == ["helper.py"]


def test_another_python_than_the_runtime_leaves_the_build_as_it_is(tmp_path: Path) -> None:
    build = _build(tmp_path, "python3.99")
    assert "left as built" in compile_build(build)
    assert not list(build.rglob("*.pyc"))


@pytest.mark.parametrize(
    ("template", "message"),
    [
        (None, "no build here"),
        ("Globals:\n  Function:\n    Runtime: nodejs20.x\n" + FN, "not python3.X"),
        (FN, "not python3.X"),
        ("- a list\n", "not a template"),
    ],
)
def test_a_folder_that_is_no_python_build_gets_one_line(
    tmp_path: Path, template: str | None, message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    if template is not None:
        (tmp_path / "template.yaml").write_text(template)
    with pytest.raises(BytecodeError, match=message):
        compile_build(tmp_path)
    assert main([str(tmp_path)]) == 1
    err = capsys.readouterr().err
    assert err.startswith("bytecode: ") and err.count("\n") == 1
