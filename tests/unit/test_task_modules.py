"""Your own task modules: what a broken one reports, how `make dev` picks modules, and that the
API function's init (not each request) fails on a module that cannot be imported.

The problems are the ones a new user meets: a module outside tasks/ (the `my_tasks.py` of old
docs), a typo, a dependency that is not installed, a bug at import time, a module without
any @task. Each must come out as one line naming the module and the fix.
"""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid
from pathlib import Path

import pytest

from infra.dev import DevError, task_modules
from infra.template import FUNCTION, Stack
from taskq.errors import ConfigError
from taskq.tasks import TaskRegistry, load_tasks

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "template.yaml"


class Modules:
    """Throwaway task modules in a folder on sys.path, registering on a registry of their own
    (so the process-wide default registry, which other tests list, stays as it was)."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.prefix = f"tq_{uuid.uuid4().hex[:8]}"
        self.registry_module = f"{self.prefix}_registry"
        (folder / f"{self.registry_module}.py").write_text(
            "from taskq.tasks import TaskRegistry\nREGISTRY = TaskRegistry()\n"
        )
        self.registry: TaskRegistry = __import__(self.registry_module).REGISTRY

    def add(self, name: str, body: str) -> str:
        module = f"{self.prefix}_{name}"
        header = f"from {self.registry_module} import REGISTRY\n"
        (self.folder / f"{module}.py").write_text(header + textwrap.dedent(body))
        return module


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Modules:
    monkeypatch.syspath_prepend(str(tmp_path))
    return Modules(tmp_path)


GOOD = """
from pydantic import BaseModel
from taskq.tasks import JobContext

class P(BaseModel):
    n: int

@REGISTRY.task()
async def double(payload: P, ctx: JobContext) -> int:
    return payload.n * 2
"""


def test_a_module_that_registers_tasks_loads(modules: Modules) -> None:
    module = modules.add("good", GOOD)
    registry = load_tasks([module], modules.registry)
    assert [t.name for t in registry] == ["double"]
    assert registry.get("double").is_async
    assert load_tasks([module], modules.registry) is registry  # a second load is fine


def test_the_example_module_registers_an_async_task() -> None:
    """tasks/example.py, the template users copy, loads as the functions load it."""
    registry = load_tasks(["tasks.example"])
    greet = registry.get("greet")
    assert greet.is_async
    assert greet.parse({"name": "Ada"}).model_dump() == {"name": "Ada", "delay_s": 0.1}


@pytest.mark.parametrize(
    ("module", "expected"),
    [
        ("tasks.no_such_module", "there is no tasks/no_such_module.py; create it or correct"),
        ("my_tasks", "move it to tasks/my_tasks.py and list it as tasks.my_tasks in"),
        ("no_such_package.tasks", "package 'no_such_package' is not importable here"),
    ],
)
def test_a_module_that_is_not_there_names_the_fix(module: str, expected: str) -> None:
    with pytest.raises(ConfigError) as info:
        load_tasks([module], TaskRegistry())
    message = str(info.value)
    assert message.startswith(f"cannot import task module {module!r}: ")
    assert expected in message
    assert "\n" not in message


def test_a_missing_dependency_names_the_requirements_file(modules: Modules) -> None:
    module = modules.add("needy", "import surely_not_installed_anywhere\n")
    with pytest.raises(ConfigError) as info:
        load_tasks([module], modules.registry)
    message = str(info.value)
    assert "it imports 'surely_not_installed_anywhere', which is not installed" in message
    assert f"{module}.py, line 2)" in message  # the import line (line 1 is the header)
    assert "tasks/requirements.txt" in message


def test_an_error_at_import_time_names_its_file_and_line(modules: Modules) -> None:
    module = modules.add("buggy", "x = 1\nundefined_name()\n")
    with pytest.raises(ConfigError) as info:
        load_tasks([module], modules.registry)
    assert str(info.value) == (
        f"cannot import task module {module!r}: NameError: name 'undefined_name' is not "
        f"defined ({modules.folder / module}.py, line 3)"
    )
    assert isinstance(info.value.__cause__, NameError)  # the traceback stays in the logs


def test_a_syntax_error_names_its_line(modules: Modules) -> None:
    module = modules.add("typo", "def broken(:\n")
    with pytest.raises(ConfigError, match=rf"SyntaxError: .*{module}\.py, line 2\)"):
        load_tasks([module], modules.registry)


def test_a_task_defined_wrongly_names_the_line_in_the_module(modules: Modules) -> None:
    """A ConfigError of the @task decorator points at the user's line, not at taskq's."""
    module = modules.add("bare", "@REGISTRY.task()\ndef bare(payload, ctx):\n    return 1\n")
    with pytest.raises(ConfigError) as info:
        load_tasks([module], modules.registry)
    assert "annotate its first parameter with a pydantic model" in str(info.value)
    assert f"{module}.py, line " in str(info.value)


def test_a_module_without_tasks_is_refused(modules: Modules) -> None:
    module = modules.add("helpers", "def util() -> int:\n    return 1\n")
    with pytest.raises(ConfigError) as info:
        load_tasks([module], modules.registry)
    assert str(info.value) == (
        f"task module {module!r} registers no task: decorate its task functions with @task "
        "(from taskq.tasks import task), or take it out of TASKQ_TASK_MODULES (the TaskModules "
        "parameter on AWS)"
    )


def test_the_tasks_layer_folder_points_at_tasks() -> None:
    """TasksLayer's ContentUri holds symlinks to tasks/ and its requirements (a checkout made
    without symlinks, git's core.symlinks=false, would ship text files instead)."""
    layer = ROOT / "layers" / "tasks"
    assert sorted(p.name for p in layer.iterdir()) == ["requirements.txt", "tasks"]
    assert (layer / "tasks").is_symlink() and (layer / "requirements.txt").is_symlink()
    assert (layer / "tasks").resolve() == ROOT / "tasks"
    assert (layer / "requirements.txt").resolve() == ROOT / "tasks" / "requirements.txt"
    stack = Stack.from_file(TEMPLATE)
    assert stack.layer_dirs()["TasksLayer"] == layer


# --- which modules `make dev` loads ---------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (None, None),  # unset: the template's TaskModules as it is
        (" ", None),
        ("tasks.example", "taskq.demo_tasks,tasks.example"),
        ("tasks.a, tasks.b", "taskq.demo_tasks,tasks.a,tasks.b"),
        ("taskq.demo_tasks,tasks.a", "taskq.demo_tasks,tasks.a"),  # no module twice
        ("tasks.example,-taskq.demo_tasks", "tasks.example"),  # the demo tasks left out
    ],
)
def test_your_modules_are_added_to_the_templates_default(
    value: str | None, expected: str | None
) -> None:
    assert task_modules(value, "taskq.demo_tasks") == expected


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("tasks/example.py", "'tasks/example.py' is not a module name"),
        ("tasks.example,", None),  # a trailing comma is harmless
        ("-taskq.demo_tasks", "leaves no task module"),
        ("tasks..example", "not a module name"),
    ],
)
def test_a_module_list_that_cannot_work_is_one_line(value: str, message: str | None) -> None:
    if message is None:
        assert task_modules(value, "taskq.demo_tasks") == "taskq.demo_tasks,tasks.example"
        return
    with pytest.raises(DevError, match=message):
        task_modules(value, "taskq.demo_tasks")


# --- the API function: init fails, not each request ----------------------------------------


def _import_handler(logical_id: str, modules: str) -> subprocess.CompletedProcess[str]:
    """Import a function's handler module in a fresh interpreter with only its code and layers
    on sys.path (as Lambda's init does) and the template's environment for `modules`."""
    stack = Stack.from_file(TEMPLATE, parameters={"AuthMode": "off", "TaskModules": modules})
    assert logical_id in stack.logical_ids(FUNCTION)
    fn = stack.function(logical_id)
    script = (
        "import importlib, sys\n"
        "sys.path[:0] = sys.argv[1:]\n"
        "importlib.import_module('app')\n"
        "print('imported')\n"
    )
    env = {**os.environ, **fn.environment, "PYTHONSAFEPATH": "1", "AWS_REGION": "us-east-1"}
    env.pop("PYTHONPATH", None)
    return subprocess.run(
        [sys.executable, "-c", script, str(fn.code_uri), *(str(p) for p in fn.layers)],
        cwd=fn.code_uri, env=env, capture_output=True, text=True, timeout=60,
    )  # fmt: skip


def test_the_api_init_fails_on_a_task_module_that_cannot_be_imported() -> None:
    done = _import_handler("ApiFunction", "taskq.demo_tasks,tasks.no_such_module")
    assert done.returncode != 0
    assert "imported" not in done.stdout
    assert done.stderr.strip().splitlines()[-1] == (
        "taskq.errors.ConfigError: cannot import task module 'tasks.no_such_module': there is "
        "no tasks/no_such_module.py; create it or correct TASKQ_TASK_MODULES (the TaskModules "
        "parameter on AWS)"
    )


def test_the_api_imports_tasks_from_its_layer_and_the_sweeper_never_does() -> None:
    assert _import_handler("ApiFunction", "tasks.example").stdout.strip() == "imported"
    # The sweeper ships without the tasks layer and never runs a task: a broken module list
    # must not stop it from recovering jobs.
    done = _import_handler("SweeperFunction", "tasks.no_such_module")
    assert (done.returncode, done.stdout.strip()) == (0, "imported"), done.stderr
