"""env.json (for `sam local start-api --env-vars`) matches template.yaml and the compose file.

`sam local` sets only the variables a function declares in the template, and cannot
resolve `!Ref JobsTable` to a real name: env.json must give every function every one of
its variables, with the names `make dev` and LocalStack use. A renamed table, a new
variable or a new function without a matching env.json fails here.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from infra.samlocal import (
    ENV_JSON,
    LOCAL_ENDPOINT,
    LOCAL_PARAMETERS,
    check_build,
    deploy_architecture,
    env_json,
    host_architecture,
    render,
)
from infra.template import FUNCTION, Stack

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


@pytest.fixture(scope="module")
def checked_in() -> dict[str, dict[str, str]]:
    loaded: dict[str, dict[str, str]] = json.loads(ENV_JSON.read_text())
    return loaded


def test_env_json_is_what_the_template_generates(checked_in: dict[str, Any]) -> None:
    assert ENV_JSON.read_text() == render(env_json()), "run: make env.json"


def test_env_json_covers_every_function_and_every_variable(checked_in: dict[str, Any]) -> None:
    stack = Stack.from_file(TEMPLATE, parameters=LOCAL_PARAMETERS)
    functions = stack.logical_ids(FUNCTION)
    assert sorted(checked_in) == sorted(functions)
    for lid in functions:
        assert set(checked_in[lid]) == set(stack.function(lid).environment), lid
        assert checked_in[lid]["AWS_ENDPOINT_URL"] == LOCAL_ENDPOINT


def test_env_json_names_the_stack_make_dev_provisions(checked_in: dict[str, Any]) -> None:
    stack = Stack.from_file(TEMPLATE, parameters=LOCAL_PARAMETERS)
    for env in checked_in.values():
        assert env["TASKQ_TABLE"] == stack.table_name("JobsTable")
        assert env["TASKQ_KEYS_TABLE"] == stack.table_name("ApiKeysTable")
        for var, queue in (("TASKQ_QUEUE_URL", "JobQueue"), ("TASKQ_DLQ_URL", "DeadLetterQueue")):
            url = urlsplit(env[var])
            assert f"{url.scheme}://{url.netloc}" == LOCAL_ENDPOINT
            assert url.path.rsplit("/", 1)[-1] == stack.queue_name(queue)
        assert env["TASKQ_AUTH"] == "off"  # as `make dev`: the API listens on loopback only


def test_the_endpoint_is_the_compose_files_localstack_on_its_network() -> None:
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    service = compose["services"]["localstack"]
    host = urlsplit(LOCAL_ENDPOINT)
    assert host.hostname in service["networks"]["taskq-local"]["aliases"]
    assert compose["networks"]["taskq-local"]["name"] == "taskq-local"
    assert service["ports"] == [f"127.0.0.1:4566:{host.port}"]  # published on loopback only
    makefile = (ROOT / "Makefile").read_text()
    assert "--docker-network taskq-local" in makefile
    assert "--env-vars env.json" in makefile


def test_a_new_variable_missing_from_the_template_is_reported(tmp_path: Path) -> None:
    text = TEMPLATE.read_text().replace('        AWS_ENDPOINT_URL: ""\n', "")
    (tmp_path / "template.yaml").write_text(text)
    with pytest.raises(Exception, match="declares no AWS_ENDPOINT_URL"):
        env_json(tmp_path / "template.yaml")


def test_architecture_helpers(tmp_path: Path) -> None:
    assert host_architecture("x86_64") == "x86_64"
    assert host_architecture("aarch64") == "arm64"
    assert deploy_architecture(tmp_path / "none.toml", TEMPLATE) == "arm64"
    samconfig = tmp_path / "samconfig.toml"
    samconfig.write_text(
        'version = 0.1\n[default.deploy.parameters]\nparameter_overrides = "Stage=prod '
        'Architecture=x86_64"\n'
    )
    assert deploy_architecture(samconfig, TEMPLATE) == "x86_64"
    assert check_build(tmp_path, "arm64") == [f"{tmp_path}: no build here (run sam build)"]
