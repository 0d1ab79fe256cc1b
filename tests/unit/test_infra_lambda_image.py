"""The stand-in Lambda image's recipe (infra/lambda_image.py) and sam-api's generated env.json.

Building the image needs root, debootstrap and a Docker engine: `make test-sam` does that and
runs the API in it. These check, without Docker, what the image is made of and from where.
"""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from urllib.parse import urlsplit

import pytest

from infra import lambda_image
from infra.lambda_image import (
    BOOTSTRAP,
    IMAGE,
    OFFICIAL_IMAGE,
    PYTHON_MINOR,
    ImageBuildError,
    apt_mirror,
    recipe_digest,
    runtime_requirement,
)
from infra.samlocal import env_json
from infra.template import load_template

ROOT = Path(__file__).resolve().parents[2]


def test_the_image_runs_the_templates_python() -> None:
    runtime = load_template(ROOT / "template.yaml")["Globals"]["Function"]["Runtime"]
    assert runtime == f"python{PYTHON_MINOR}"
    assert f"python{PYTHON_MINOR}" in BOOTSTRAP and PYTHON_MINOR in IMAGE


def test_the_stand_in_has_a_name_of_its_own() -> None:
    assert not IMAGE.startswith(("public.ecr.aws/", "amazon/", "lambda/"))
    assert IMAGE != OFFICIAL_IMAGE


def test_layers_come_before_the_runtime_on_the_path_as_on_lambda() -> None:
    path = re.search(r'PYTHONPATH="([^"]+)"', BOOTSTRAP.replace("\\\n", ""))
    assert path is not None
    entries = [entry.split("$")[0] for entry in path.group(1).split(":")[:4]]
    assert entries == [
        "/var/task",
        f"/opt/python/lib/python{PYTHON_MINOR}/site-packages",
        "/opt/python",
        "/var/runtime",
    ]
    assert 'exec /usr/bin/python3.11 -m awslambdaric "$_HANDLER"' in BOOTSTRAP


def test_the_runtime_client_is_pinned_in_the_lock_within_the_extras_range() -> None:
    pin = runtime_requirement()
    assert re.fullmatch(r"awslambdaric==\d+\.\d+\.\d+", pin)
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    (declared,) = extras["lambda-image"]
    major = int(pin.split("==")[1].split(".")[0])
    low, high = (int(n) for n in re.findall(r"[<>]=?(\d+)", declared))
    assert low <= major < high, (pin, declared)


def test_a_lock_without_the_pin_is_a_clear_error(tmp_path: Path) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text("boto3==1.0\n")
    with pytest.raises(ImageBuildError, match="pins no awslambdaric"):
        runtime_requirement(lock)


def test_the_recipe_digest_changes_with_what_goes_in(monkeypatch: pytest.MonkeyPatch) -> None:
    before = recipe_digest()
    assert before == recipe_digest()
    monkeypatch.setattr(lambda_image, "BOOTSTRAP", BOOTSTRAP + "# changed\n")
    assert recipe_digest() != before


def test_the_mirror_is_the_one_apt_uses(tmp_path: Path) -> None:
    deb822 = tmp_path / "debian.sources"
    deb822.write_text(
        "Types: deb\nURIs: http://mirror.example/debian\nSuites: bookworm\n\n"
        "Types: deb\nURIs: http://mirror.example/debian-security\n"
    )
    one_line = tmp_path / "sources.list"
    one_line.write_text("# comment\ndeb http://security.example/debian-security bookworm main\n"
                        "deb http://other.example/debian bookworm main\n")  # fmt: skip
    assert apt_mirror([tmp_path / "missing", deb822]) == "http://mirror.example/debian"
    assert apt_mirror([one_line]) == "http://other.example/debian"
    assert apt_mirror([tmp_path / "missing"]) == "http://deb.debian.org/debian"


def test_sam_apis_env_json_points_the_containers_at_the_bridge() -> None:
    doc = env_json(
        ROOT / "template.yaml", endpoint="http://172.18.0.1:4599", account_id="123456789012",
        parameters={"Stage": "samtest"},
    )  # fmt: skip
    for function, env in doc.items():
        assert env["AWS_ENDPOINT_URL"] == "http://172.18.0.1:4599", function
        queue = urlsplit(env["TASKQ_QUEUE_URL"])
        assert queue.netloc == "172.18.0.1:4599"
        assert queue.path == "/123456789012/taskq-samtest-jobs"
        assert env["TASKQ_TABLE"] == "taskq-samtest-jobs"
        assert env["TASKQ_AUTH"] == "off"
