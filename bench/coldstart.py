"""Cold start: importing a function's handler module in a fresh interpreter, as Lambda's init.

Each measurement is a new process with Lambda's sys.path (the function's code, its layers,
then the runtime's libraries) and the function's environment from template.yaml. It times
`import app` and reads the process's peak resident memory after it. Two variants:
- "local": as the local sandboxes run it (no X-Ray daemon: taskq disables its tracer);
- "aws": with AWS_XRAY_DAEMON_ADDRESS set, as Lambda sets it for `Tracing: Active`.

Against what: the same interpreter importing only the function's own dependencies, measured
in the same run, alternated with the handler's runs. Which dependencies is recorded, not
listed: one more run of `import app` watches every `import` statement executed by the
function's own code (its code directory and layers) and notes the third-party modules (and
separately the standard-library ones) those statements name, with their `from` lists; the
baseline imports exactly those, in that order, and nothing of taskq. The worker imports
aioboto3 later, on its first AWS call: its runs also time that import and the opening of
the first aioboto3 client right after `import app`, in the same process, as the first batch
pays them.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

from infra.bytecode import compile_hash_checked
from infra.clients import DUMMY_CREDENTIALS
from infra.template import Stack

# Peak memory from /proc's VmHWM: unlike ru_maxrss it starts afresh at exec (ru_maxrss keeps
# the forked parent's peak, the bench's, whenever that was larger).
_PROBE = r"""
import json, resource, sys, time
from pathlib import Path
def peak_mb():
    try:
        with open("/proc/self/status") as fh:
            for line in fh:
                if line.startswith("VmHWM:"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
code, layers = sys.argv[1], json.loads(sys.argv[2])
mode = json.loads(sys.argv[3]) if len(sys.argv) > 3 else {}
prefixes = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
runtime = [p for p in sys.path if p and any(Path(p).resolve().is_relative_to(x) for x in prefixes)]
sys.path[:] = [code, *layers, *runtime]
roots = tuple(str(Path(p).resolve()) for p in (code, *layers))
recorded = {"third_party": [], "stdlib": []}
if mode.get("record"):
    import builtins
    real_import = builtins.__import__
    def own(top):
        return any((Path(r) / top).exists() or (Path(r) / (top + ".py")).exists() for r in roots)
    def watching(name, globals=None, locals=None, fromlist=(), level=0):
        where = (globals or {}).get("__file__") or ""
        if level == 0 and where and str(Path(where).resolve()).startswith(roots):
            top = name.partition(".")[0]
            if not own(top) and top != "__future__":
                kind = "stdlib" if top in sys.stdlib_module_names else "third_party"
                entry = [name, [str(f) for f in (fromlist or ())]]
                if entry not in recorded[kind]:
                    recorded[kind].append(entry)
        return real_import(name, globals, locals, fromlist, level)
    builtins.__import__ = watching
before = peak_mb()
t0 = time.perf_counter()
if "deps" in mode:
    for name, fromlist in mode["deps"]:
        __import__(name, fromlist=fromlist)
else:
    import app
elapsed = time.perf_counter() - t0
out = {"import_ms": elapsed * 1000, "peak_rss_mb": peak_mb(),
       "interpreter_rss_mb": before, "modules": len(sys.modules)}
if mode.get("record"):
    builtins.__import__ = real_import
    out["recorded"] = recorded
if mode.get("first_batch"):
    # What the worker's first AWS call adds (taskq.aio.AioClient): aioboto3's import, then
    # one aioboto3 client opened on the process's loop, as the first batch opens it.
    import asyncio, os
    t1 = time.perf_counter()
    import aioboto3
    t2 = time.perf_counter()
    from taskq import aws
    async def open_client():
        context = aioboto3.Session().client(
            "dynamodb", region_name=os.environ["AWS_REGION"], config=aws.CLIENT_CONFIG)
        client = await context.__aenter__()
        opened = time.perf_counter()
        await context.__aexit__(None, None, None)
        return opened
    loop = asyncio.new_event_loop()
    t3 = time.perf_counter()
    opened = loop.run_until_complete(open_client())
    out["aioboto3_import_ms"] = (t2 - t1) * 1000
    out["first_client_ms"] = (opened - t3) * 1000
print(json.dumps(out))
"""

FUNCTIONS = {"api": "ApiFunction", "worker": "WorkerFunction"}


def _function_env(stack: Stack, lid: str, xray: bool) -> tuple[dict[str, str], Path, list[str]]:
    spec = stack.function(lid)
    env = {k: os.environ[k] for k in ("PATH", "HOME", "LANG", "TMPDIR") if k in os.environ}
    env.update(spec.environment)
    env.update(DUMMY_CREDENTIALS)
    env.update(
        {
            "AWS_REGION": "us-east-1",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_LAMBDA_FUNCTION_NAME": spec.function_name,
            "AWS_LAMBDA_FUNCTION_MEMORY_SIZE": str(spec.memory),
            "AWS_EXECUTION_ENV": f"AWS_Lambda_{spec.runtime}",
            "LAMBDA_TASK_ROOT": str(spec.code_uri),
            "_HANDLER": spec.handler,
            "PYTHONDONTWRITEBYTECODE": "1",
        }
    )
    env.pop("AWS_ENDPOINT_URL", None)
    if xray:
        env["AWS_XRAY_DAEMON_ADDRESS"] = "169.254.79.129:2000"  # never contacted by an import
    return env, spec.code_uri, [str(p) for p in spec.layers]


def measure_once(
    stack: Stack, lid: str, xray: bool, mode: dict[str, Any] | None = None
) -> dict[str, Any]:
    """One fresh interpreter: `import app` (or, with mode["deps"], only those imports)."""
    env, code, layers = _function_env(stack, lid, xray)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(code), json.dumps(layers), json.dumps(mode or {})],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    if done.returncode != 0:
        tail = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
        raise RuntimeError(f"{lid}: import failed: {tail}")
    result: dict[str, Any] = json.loads(done.stdout.strip().splitlines()[-1])
    return result


def slowest_imports(stack: Stack, lid: str, top: int = 8) -> list[dict[str, Any]]:
    """The heaviest imports under `app` (python -X importtime), by cumulative time."""
    env, code, layers = _function_env(stack, lid, False)
    done = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", _PROBE, str(code), json.dumps(layers)],
        cwd=code,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    rows: list[tuple[int, int, str]] = []
    inside = False
    for line in reversed(done.stderr.splitlines()):  # importtime prints children first
        if not line.startswith("import time:") or "|" not in line:
            continue
        _, cumulative_us, raw_name = line.split("|", 2)
        depth = (len(raw_name) - len(raw_name.lstrip(" "))) // 2
        module = raw_name.strip()
        if module == "app" and depth == 0:
            inside = True
            continue
        if inside and depth == 0:
            break
        if inside and 1 <= depth <= 4:
            rows.append((int(cumulative_us.strip()), depth, module))
    chosen: list[dict[str, Any]] = []
    for cumulative, depth, name in sorted(rows, reverse=True):
        root = name.split(".")[0]
        if any(c["module"].split(".")[0] == root and c["module"] != "taskq" for c in chosen) and (
            root != "taskq"
        ):
            continue  # one line per third-party package: its largest import
        chosen.append(
            {"module": name, "depth": depth, "cumulative_ms": round(cumulative / 1000, 1)}
        )
        if len(chosen) >= top:
            break
    return chosen


def cache_bytecode(stack: Stack) -> None:
    """Every function's code and layers compiled as the build ships them (infra/bytecode.py:
    hash-checked .pyc), as the dependencies' are by pip. Otherwise a fresh clone's taskq
    modules, or any edited since their last import, are compiled in every measured import
    (the probe writes no bytecode), and the dependencies' never: the ratio would weigh
    compiling against loading."""
    specs = [stack.function(lid) for lid in FUNCTIONS.values()]
    for folder in sorted({p for spec in specs for p in (spec.code_uri, *spec.layers)}):
        compile_hash_checked(folder)


def measure(repeats: int = 3) -> dict[str, Any]:
    """Median of `repeats` fresh imports per function and variant, plus the heavy imports."""
    stack = Stack.from_file(
        Path(__file__).resolve().parent.parent / "template.yaml",
        parameters={"AuthMode": "off"},
        region="us-east-1",
    )
    cache_bytecode(stack)
    out: dict[str, Any] = {}
    for variant, xray in (("local", False), ("aws", True)):
        for name, lid in FUNCTIONS.items():
            runs = [measure_once(stack, lid, xray) for _ in range(repeats)]
            out[f"{name}:{variant}"] = {
                "import_ms": round(statistics.median(r["import_ms"] for r in runs), 1),
                "import_ms_all": [round(r["import_ms"], 1) for r in runs],
                "peak_rss_mb": round(statistics.median(r["peak_rss_mb"] for r in runs), 1),
                "interpreter_rss_mb": round(
                    statistics.median(r["interpreter_rss_mb"] for r in runs), 1
                ),
                "modules": runs[0]["modules"],
            }
    out["slowest_imports"] = {name: slowest_imports(stack, lid) for name, lid in FUNCTIONS.items()}
    out["dependencies"] = {
        name: against_dependencies(stack, lid, repeats) for name, lid in FUNCTIONS.items()
    }
    return out


def against_dependencies(stack: Stack, lid: str, repeats: int = 3) -> dict[str, Any]:
    """The handler's import next to the import of its own dependencies, alternated; the
    worker's runs also time what its first batch adds (aioboto3)."""
    recorded = measure_once(stack, lid, False, {"record": True})["recorded"]
    third_party = recorded["third_party"]
    with_stdlib = third_party + recorded["stdlib"]
    first_batch = lid == FUNCTIONS["worker"]
    app_runs, dep_runs, std_runs = [], [], []
    for _ in range(repeats):
        app_runs.append(measure_once(stack, lid, False, {"first_batch": first_batch}))
        dep_runs.append(measure_once(stack, lid, False, {"deps": third_party}))
        std_runs.append(measure_once(stack, lid, False, {"deps": with_stdlib}))
    app_ms = statistics.median(r["import_ms"] for r in app_runs)
    deps_ms = statistics.median(r["import_ms"] for r in dep_runs)
    std_ms = statistics.median(r["import_ms"] for r in std_runs)
    out: dict[str, Any] = {
        "import_ms": round(app_ms, 1),
        "import_ms_all": [round(r["import_ms"], 1) for r in app_runs],
        "dependencies_ms": round(deps_ms, 1),
        "dependencies_ms_all": [round(r["import_ms"], 1) for r in dep_runs],
        "ratio": round(app_ms / deps_ms, 3) if deps_ms else None,
        "with_stdlib_ms": round(std_ms, 1),
        "ratio_with_stdlib": round(app_ms / std_ms, 3) if std_ms else None,
        "dependencies": [_spelled(name, fromlist) for name, fromlist in third_party],
        "stdlib": sorted({name.partition(".")[0] for name, _ in recorded["stdlib"]}),
        "modules": statistics.median(r["modules"] for r in app_runs),
        "dependency_modules": statistics.median(r["modules"] for r in dep_runs),
    }
    if first_batch:
        aio_ms = statistics.median(r["aioboto3_import_ms"] for r in app_runs)
        client_ms = statistics.median(r["first_client_ms"] for r in app_runs)
        out["first_batch"] = {
            "aioboto3_import_ms": round(aio_ms, 1),
            "first_client_ms": round(client_ms, 1),
            "import_plus_first_batch_ms": round(app_ms + aio_ms + client_ms, 1),
        }
    return out


def _spelled(name: str, fromlist: list[str]) -> str:
    return f"from {name} import {', '.join(fromlist)}" if fromlist else f"import {name}"
