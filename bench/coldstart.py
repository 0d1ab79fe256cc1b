"""Cold start: importing a function's handler module in a fresh interpreter, as Lambda's init.

Each measurement is a new process with Lambda's sys.path (the function's code, its layers,
then the runtime's libraries) and the function's environment from template.yaml. It times
`import app` and reads the process's peak resident memory after it. Two variants:
- "local": as the local sandboxes run it (no X-Ray daemon: taskq disables its tracer);
- "aws": with AWS_XRAY_DAEMON_ADDRESS set, as Lambda sets it for `Tracing: Active`.
"""

from __future__ import annotations

import json
import os
import statistics
import subprocess
import sys
from pathlib import Path
from typing import Any

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
prefixes = {Path(p).resolve() for p in (sys.prefix, sys.base_prefix, sys.exec_prefix)}
runtime = [p for p in sys.path if p and any(Path(p).resolve().is_relative_to(x) for x in prefixes)]
sys.path[:] = [code, *layers, *runtime]
before = peak_mb()
t0 = time.perf_counter()
import app
elapsed = time.perf_counter() - t0
print(json.dumps({"import_ms": elapsed * 1000, "peak_rss_mb": peak_mb(),
                  "interpreter_rss_mb": before, "modules": len(sys.modules)}))
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


def measure_once(stack: Stack, lid: str, xray: bool) -> dict[str, Any]:
    env, code, layers = _function_env(stack, lid, xray)
    done = subprocess.run(
        [sys.executable, "-c", _PROBE, str(code), json.dumps(layers)],
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


def measure(repeats: int = 3) -> dict[str, Any]:
    """Median of `repeats` fresh imports per function and variant, plus the heavy imports."""
    stack = Stack.from_file(
        Path(__file__).resolve().parent.parent / "template.yaml",
        parameters={"AuthMode": "off"},
        region="us-east-1",
    )
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
    return out
