"""A stand-in for the Lambda Python base image, built offline from Debian and PyPI packages.

`sam local` runs every function in AWS's base image (public.ecr.aws/lambda/python:3.X),
which it pulls. Where no image registry is reachable (this project's machines and CI) that
pull fails, so this module builds an image with the same contract from the package
registries the machine can reach:

- a minimal Debian rootfs (`debootstrap --variant=minbase`, the suite whose python3.X is the
  template's runtime) from the Debian mirror apt is configured with;
- `awslambdaric` (AWS's runtime interface client, the version pinned in requirements.lock)
  in /var/runtime, where Lambda keeps its runtime;
- /var/runtime/bootstrap, which the runtime interface emulator SAM mounts into the container
  starts with `_HANDLER` set, and which starts awslambdaric with that handler;
- LAMBDA_TASK_ROOT=/var/task, LAMBDA_RUNTIME_DIR=/var/runtime, and layers on sys.path as on
  Lambda: /opt/python/lib/python3.X/site-packages, then /opt/python.

It is imported with `docker import` under a name of its own (IMAGE), never AWS's, and given
to SAM with `--invoke-image IMAGE --skip-pull-image`. Where the official image is present
(a laptop that pulled it) nothing is built and SAM uses that one.

    python -m infra.lambda_image ensure     # print the image to use; build it if needed
    python -m infra.lambda_image build      # build the stand-in again
"""

from __future__ import annotations

import argparse
import hashlib
import platform
import re
import shutil
import subprocess
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from infra.docker_engine import DockerError, docker, engine_answers, image_label

ROOT = Path(__file__).resolve().parent.parent
PYTHON_MINOR = "3.11"  # the template's Runtime (tests/unit checks they agree)
SUITE = "bookworm"  # the Debian release whose python3 is PYTHON_MINOR
IMAGE = f"taskq-lambda-python{PYTHON_MINOR}:local"
OFFICIAL_IMAGE = f"public.ecr.aws/lambda/python:{PYTHON_MINOR}"
RECIPE_LABEL = "taskq.recipe"
RUNTIME_PACKAGE = "awslambdaric"
# What the rootfs does not need at run time: package caches, docs, man pages, translations.
_PRUNE = (
    "var/cache/apt/archives",
    "var/lib/apt/lists",
    "usr/share/doc",
    "usr/share/man",
    "usr/share/info",
    "usr/share/locale",
)
BOOTSTRAP = f"""#!/bin/sh
# Started by the runtime interface emulator with _HANDLER set (module.function).
# Layers and the function's code on the path in Lambda's order.
export PYTHONPATH="/var/task:/opt/python/lib/python{PYTHON_MINOR}/site-packages:/opt/python:\\
/var/runtime${{PYTHONPATH:+:$PYTHONPATH}}"
cd "$LAMBDA_TASK_ROOT"
exec /usr/bin/python{PYTHON_MINOR} -m awslambdaric "$_HANDLER"
"""
_ENV = {
    "LAMBDA_TASK_ROOT": "/var/task",
    "LAMBDA_RUNTIME_DIR": "/var/runtime",
    "LANG": "C.UTF-8",
    "TZ": ":/etc/localtime",
    "PATH": "/usr/local/bin:/usr/bin:/bin:/opt/bin",
}


class ImageBuildError(Exception):
    """The stand-in image could not be built; the message is one line saying why."""


def runtime_requirement(lock: Path = ROOT / "requirements.lock") -> str:
    """`awslambdaric==X`, pinned in requirements.lock like every other dependency."""
    for line in lock.read_text().splitlines():
        if re.fullmatch(rf"{RUNTIME_PACKAGE}==[\w.]+", line.strip(), flags=re.IGNORECASE):
            return line.strip()
    raise ImageBuildError(f"requirements.lock pins no {RUNTIME_PACKAGE} version")


def recipe_digest() -> str:
    """Changes whenever what goes into the image changes: rebuild then, not otherwise."""
    parts = [SUITE, PYTHON_MINOR, runtime_requirement(), BOOTSTRAP, repr(sorted(_ENV.items()))]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def apt_mirror(sources: Sequence[Path] | None = None) -> str:
    """The Debian mirror apt uses here (deb822 `URIs:` or one-line `deb URL` entries)."""
    if sources is None:
        listed = sorted(Path("/etc/apt/sources.list.d").glob("*.sources"))
        sources = [Path("/etc/apt/sources.list"), *listed]
    for path in sources:
        if not path.exists():
            continue
        for line in path.read_text().splitlines():
            match = re.match(r"\s*(?:URIs:|deb)\s+(\S+)", line)
            if match and "security" not in match.group(1):
                return match.group(1)
    return "http://deb.debian.org/debian"


def official_image_present() -> bool:
    return image_label(OFFICIAL_IMAGE, "") is not None


def stand_in_current() -> bool:
    return image_label(IMAGE, RECIPE_LABEL) == recipe_digest()


def ensure() -> str | None:
    """The image to pass as --invoke-image, building the stand-in if it is missing or stale;
    None when the official image is present (SAM then uses it as usual)."""
    if official_image_present():
        return None
    if not stand_in_current():
        build()
    return IMAGE


def build() -> None:
    """debootstrap a rootfs, add the runtime, import it as IMAGE (about a minute)."""
    if shutil.which("debootstrap") is None:
        raise ImageBuildError("debootstrap is not installed (apt-get install debootstrap)")
    with tempfile.TemporaryDirectory(prefix="taskq-lambda-root-") as tmp:
        root = Path(tmp) / "rootfs"
        _run(
            ["debootstrap", "--variant=minbase", f"--include=python{PYTHON_MINOR},ca-certificates",
             SUITE, str(root), apt_mirror()],
            "debootstrap",
        )  # fmt: skip
        _install_runtime(root)
        for relative in _PRUNE:
            shutil.rmtree(root / relative, ignore_errors=True)
        _import(root)


def _install_runtime(root: Path) -> None:
    runtime = root / "var" / "runtime"
    _run(
        [sys.executable, "-m", "pip", "install", "--quiet", "--disable-pip-version-check",
         "--no-compile", "--target", str(runtime), "--only-binary=:all:",
         "--python-version", PYTHON_MINOR, "--implementation", "cp", "--platform",
         f"manylinux2014_{_machine()}", "-c", str(ROOT / "requirements.lock"),
         runtime_requirement()],
        "pip install awslambdaric",
    )  # fmt: skip
    (root / "var" / "task").mkdir(parents=True, exist_ok=True)
    (root / "opt").mkdir(exist_ok=True)
    bootstrap = runtime / "bootstrap"
    bootstrap.write_text(BOOTSTRAP)
    bootstrap.chmod(0o755)


def _import(root: Path) -> None:
    changes = [f"ENV {name}={value}" for name, value in _ENV.items()]
    changes += [
        "WORKDIR /var/task",
        f"LABEL {RECIPE_LABEL}={recipe_digest()}",
        'ENTRYPOINT ["/var/runtime/bootstrap"]',
    ]
    options = [arg for change in changes for arg in ("--change", change)]
    tar = subprocess.Popen(["tar", "-C", str(root), "-c", "."], stdout=subprocess.PIPE)
    try:
        docker("import", *options, "-", IMAGE, stdin=tar.stdout, timeout=600)
    finally:
        if tar.stdout is not None:
            tar.stdout.close()
        tar.wait()


def _machine() -> str:
    return "aarch64" if platform.machine().lower() in ("aarch64", "arm64") else "x86_64"


def _run(argv: list[str], what: str) -> None:
    done = subprocess.run(argv, capture_output=True, text=True, check=False, timeout=900)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        raise ImageBuildError(f"{what} failed: {lines[-1] if lines else done.returncode}")


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.lambda_image")
    parser.add_argument("command", choices=("ensure", "build"))
    args = parser.parse_args(argv)
    try:
        if not engine_answers():
            raise DockerError("no Docker engine answers (start dockerd or Docker Desktop)")
        if args.command == "build":
            build()
            print(IMAGE)
        else:
            print(ensure() or OFFICIAL_IMAGE)
    except (ImageBuildError, DockerError) as exc:
        print(f"lambda_image: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
