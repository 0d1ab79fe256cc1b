"""What the AWS SAM CLI paths need from template.yaml: env.json, the host's architecture, checks.

- `env.json` for `sam local start-api --env-vars`: every function's every template variable,
  resolved for a local stack on an emulator (LocalStack in docker-compose.yml by default).
  `sam local` only sets variables the template declares, and resolves `!Ref JobsTable` to
  nothing useful, so the file names the real table and queue URLs. Generated from the
  template, so its names cannot drift (tests/unit/test_template_envjson.py checks it).
- The build's architecture: `sam build` downloads wheels for the template's Architecture;
  a build for another CPU than the deploy's fails at import on AWS. `check-build` reads the
  ELF header of every compiled module in a build folder and says which CPU it is for.

    python -m infra.samlocal env-json [--check] [--endpoint URL] [--output env.json]
    python -m infra.samlocal host-arch
    python -m infra.samlocal deploy-arch [--samconfig samconfig.toml]
    python -m infra.samlocal check-build BUILD_DIR ARCH
"""

from __future__ import annotations

import argparse
import json
import platform
import shlex
import sys
import tomllib
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

from infra.template import FUNCTION, Stack, load_template

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
ENV_JSON = ROOT / "env.json"
# The compose file's LocalStack, as the Lambda containers of `sam local` reach it: they join
# its network (`--docker-network taskq-local`). host.docker.internal only reaches the host
# on Docker Desktop, and on Linux only ports published beyond loopback.
LOCAL_ENDPOINT = "http://localstack:4566"
LOCAL_ACCOUNT = "000000000000"  # LocalStack's default account
LOCAL_REGION = "us-east-1"
# Like `make dev`: API keys off, since the API only listens on 127.0.0.1.
LOCAL_PARAMETERS = {"Stage": "dev", "AuthMode": "off"}
ARCHITECTURES = ("arm64", "x86_64")
_ELF_MACHINES = {0x3E: "x86_64", 0xB7: "arm64"}


class SamLocalError(Exception):
    """Something to fix before a SAM command can work; a one-line message."""


def env_json(
    template: Path = TEMPLATE,
    *,
    endpoint: str = LOCAL_ENDPOINT,
    parameters: Mapping[str, str] | None = None,
    account_id: str = LOCAL_ACCOUNT,
) -> dict[str, dict[str, str]]:
    """{function logical id: {variable: value}} for `sam local --env-vars`, from the template."""
    stack = Stack.from_file(
        template,
        parameters={**LOCAL_PARAMETERS, **(parameters or {})},
        region=LOCAL_REGION,
        account_id=account_id,
        endpoint_url=endpoint,
    )
    result: dict[str, dict[str, str]] = {}
    for lid in stack.logical_ids(FUNCTION):
        env = dict(stack.function(lid).environment)
        if "AWS_ENDPOINT_URL" not in env:
            raise SamLocalError(
                f"{lid}: the template declares no AWS_ENDPOINT_URL variable, so sam local "
                "could not point the function at an emulator"
            )
        env["AWS_ENDPOINT_URL"] = endpoint
        result[lid] = dict(sorted(env.items()))
    return result


def render(doc: Mapping[str, Any]) -> str:
    return json.dumps(doc, indent=2, sort_keys=True) + "\n"


def host_architecture(machine: str | None = None) -> str:
    """The Lambda architecture this machine runs natively."""
    machine = (machine or platform.machine()).lower()
    if machine in ("x86_64", "amd64"):
        return "x86_64"
    if machine in ("aarch64", "arm64"):
        return "arm64"
    raise SamLocalError(f"no Lambda architecture runs natively on {machine!r}")


def template_architecture(template: Path = TEMPLATE) -> str:
    """The Architecture parameter's default: what a plain `sam build` builds for."""
    params = load_template(template).get("Parameters") or {}
    default = str((params.get("Architecture") or {}).get("Default", ""))
    if default not in ARCHITECTURES:
        raise SamLocalError("template.yaml: Parameters.Architecture needs a Default")
    return default


def deploy_architecture(samconfig: Path, template: Path = TEMPLATE) -> str:
    """The Architecture `sam deploy` will pass: samconfig's override, else the template's."""
    if samconfig.exists():
        with samconfig.open("rb") as fh:
            config = tomllib.load(fh)
        deploy = config.get("default", {}).get("deploy", {}).get("parameters", {})
        overrides = deploy.get("parameter_overrides", [])
        items = shlex.split(overrides) if isinstance(overrides, str) else list(overrides)
        for item in items:
            name, _, value = str(item).partition("=")
            if name == "Architecture":
                return value.strip('"')
    return template_architecture(template)


def compiled_modules(build_dir: Path) -> Iterator[tuple[Path, str]]:
    """Every compiled extension module under build_dir, with the CPU its ELF header names."""
    for path in sorted(build_dir.rglob("*.so")):
        with path.open("rb") as fh:
            header = fh.read(20)
        if header[:4] != b"\x7fELF" or len(header) < 20:
            continue
        machine = int.from_bytes(header[18:20], "little" if header[5] == 1 else "big")
        yield path, _ELF_MACHINES.get(machine, f"elf-machine-{machine:#x}")


def check_build(build_dir: Path, architecture: str) -> list[str]:
    """Problems (empty when none): compiled modules built for another CPU than `architecture`."""
    if not (build_dir / "template.yaml").exists():
        return [f"{build_dir}: no build here (run sam build)"]
    return [
        f"{path.relative_to(build_dir)} is built for {arch}, the functions run on {architecture}"
        for path, arch in compiled_modules(build_dir)
        if arch != architecture
    ]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m infra.samlocal")
    commands = parser.add_subparsers(dest="command", required=True)
    env = commands.add_parser("env-json", help="write (or --check) env.json for sam local")
    env.add_argument("--endpoint", default=LOCAL_ENDPOINT)
    env.add_argument("--output", type=Path, default=ENV_JSON)
    env.add_argument("--check", action="store_true", help="fail if the file is out of date")
    commands.add_parser("host-arch", help="print this machine's Lambda architecture")
    deploy = commands.add_parser("deploy-arch", help="print the architecture sam deploy uses")
    deploy.add_argument("--samconfig", type=Path, default=ROOT / "samconfig.toml")
    check = commands.add_parser("check-build", help="every compiled module is for ARCH")
    check.add_argument("build_dir", type=Path)
    check.add_argument("architecture", choices=ARCHITECTURES)
    args = parser.parse_args(argv)
    try:
        if args.command == "env-json":
            text = render(env_json(endpoint=args.endpoint))
            if args.check:
                current = args.output.read_text() if args.output.exists() else ""
                if current != text:
                    raise SamLocalError(f"{args.output} is out of date: run make env.json")
            else:
                args.output.write_text(text)
        elif args.command == "host-arch":
            print(host_architecture())
        elif args.command == "deploy-arch":
            print(deploy_architecture(args.samconfig))
        else:
            problems = check_build(args.build_dir, args.architecture)
            if problems:
                raise SamLocalError(f"{problems[0]} ({len(problems)} such files)")
    except SamLocalError as exc:
        print(f"samlocal: {exc}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
