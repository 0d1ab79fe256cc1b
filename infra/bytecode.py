"""Bytecode for what `sam build` made, valid on Lambda: every cold start then loads
compiled modules instead of compiling them.

SAM zips a build with every entry dated 1980 (samcli's make_zip_with_permissions leaves
ZipInfo's default date, aws-lambda-builders#924), so the timestamp-checked .pyc files pip
writes never match their sources on Lambda, and /var/task and /opt are read-only: each new
execution environment compiles every module it imports, taskq's and its dependencies', and
throws the result away. Hash-checked .pyc files (PEP 552) are valid whatever the dates say,
and a source that differs from its .pyc is still compiled, so stale code never runs.

    python -m infra.bytecode BUILD_DIR      (make build, deploy and sam-host-build run it)
"""

from __future__ import annotations

import compileall
import py_compile
import re
import sys
from collections.abc import Sequence
from pathlib import Path

from infra.template import TemplateError, load_template


class BytecodeError(Exception):
    """The build cannot be compiled here (no build, or another Python than its runtime)."""


def runtime_of(build_dir: Path) -> str:
    """The Python runtime the built template's functions declare (Globals.Function)."""
    template = build_dir / "template.yaml"
    if not template.exists():
        raise BytecodeError(f"{build_dir}: no build here (run sam build)")
    try:
        functions = (load_template(template).get("Globals") or {}).get("Function") or {}
    except TemplateError as exc:
        raise BytecodeError(str(exc)) from exc
    runtime = str(functions.get("Runtime", ""))
    if not re.fullmatch(r"python3\.\d+", runtime):
        raise BytecodeError(f"{template}: Globals.Function.Runtime is {runtime!r}, not python3.X")
    return runtime


def compile_hash_checked(folder: Path) -> bool:
    """Every module under `folder` compiled to a hash-checked .pyc, replacing any other kind
    (pip's are timestamp-checked), one process per CPU; False if a file did not compile."""
    return compileall.compile_dir(
        str(folder),
        quiet=1,
        force=True,
        workers=0,
        invalidation_mode=py_compile.PycInvalidationMode.CHECKED_HASH,
    )


def compile_build(build_dir: Path) -> str:
    """Compile every module of the build, hash-checked; says what it did in one line."""
    runtime = runtime_of(build_dir)
    here = f"python{sys.version_info.major}.{sys.version_info.minor}"
    if here != runtime:  # its .pyc would carry another tag, which Lambda ignores
        return f"{build_dir} left as built: this is {here}, the functions run {runtime}"
    # A file that does not compile (e.g. a dependency's for another Python) is compiled at
    # import, as before.
    if not compile_hash_checked(build_dir):
        return f"{build_dir} compiled for {runtime}, but for the files named above"
    return f"{build_dir} compiled for {runtime} (hash-checked .pyc)"


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if len(args) != 1:
        print("usage: python -m infra.bytecode BUILD_DIR", file=sys.stderr)
        return 2
    build_dir = Path(args[0])
    try:
        print(f"bytecode: {compile_build(build_dir)}")
    except BytecodeError as exc:
        print(f"bytecode: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
