"""The system under test: moto's server and template.yaml's stack, plus a bench-only layer.

The stack runs from a copy of template.yaml that differs in three declared ways only:
1. one more layer, bench/probe_layer (the probe: a `noop` task and the AWS-call hooks);
   the sandboxes put only a function's code and layers on sys.path, as Lambda does, so the
   probe must come as a layer to be importable there;
2. TASKQ_BENCH_CALLS_DIR in the functions' environment (where the probe writes);
3. the worker's MaximumConcurrency raised to the largest the scaling runs use, so the local
   function has that many sandboxes; each run then sets the poller's own concurrency.
Code paths are made absolute because the copy lives in a temporary directory.
"""

from __future__ import annotations

import dataclasses
import threading
import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from bench.calls import CallLog
from bench.probe_layer.taskq_bench_probe import CALLS_DIR_ENV, CallRecorder
from infra.clients import client
from infra.emulator import MotoServer
from infra.local_cloud import LocalCloud
from infra.poller import EventSourcePoller
from infra.provision import Resources, provision
from infra.sandbox import LocalFunction
from infra.template import FUNCTION, LAYER, SqsEventSpec, Stack, load_template

ROOT = Path(__file__).resolve().parent.parent
TEMPLATE = ROOT / "template.yaml"
PROBE_DIR = Path(__file__).resolve().parent / "probe_layer"
API = "ApiFunction"
WORKER = "WorkerFunction"
PROBE_MODULE = "taskq_bench_probe"
REGION = "us-east-1"


def template_values() -> tuple[SqsEventSpec, dict[str, Any]]:
    """The worker's SQS event settings and function settings as template.yaml has them."""
    stack = Stack.from_file(TEMPLATE, region=REGION)
    sqs = stack.sqs_event(WORKER)
    assert sqs is not None, "the worker has no SQS event in template.yaml"
    worker = stack.function(WORKER)
    api = stack.function(API)
    return sqs, {
        "worker_memory_mb": worker.memory,
        "api_memory_mb": api.memory,
        "architecture": stack.parameters.get("Architecture", "arm64"),
        "gsi": job_indexes(stack),
    }


def job_indexes(stack: Stack) -> list[dict[str, Any]]:
    """The jobs table's GSIs, as the stack's parameters make them: their key attributes,
    projection and projected attributes (for WRU arithmetic)."""
    props = stack.properties("JobsTable", "AWS::DynamoDB::Table")
    indexes = stack.resolve_tree(props.get("GlobalSecondaryIndexes", []), "JobsTable.GSIs")
    return [
        {
            "name": gsi["IndexName"],
            "keys": [k["AttributeName"] for k in gsi["KeySchema"]],
            "projection": gsi.get("Projection", {}).get("ProjectionType", "ALL"),
            "attributes": gsi.get("Projection", {}).get("NonKeyAttributes", []),
        }
        for gsi in indexes
    ]


def derived_template(out_dir: Path, calls_dir: Path, max_concurrency: int) -> Path:
    doc = load_template(TEMPLATE)
    for res in doc["Resources"].values():
        props = res.get("Properties") or {}
        for key in ("CodeUri", "ContentUri"):
            if isinstance(props.get(key), str):
                props[key] = str((ROOT / props[key]).resolve())
    doc["Resources"]["BenchProbeLayer"] = {
        "Type": LAYER,
        "Properties": {"LayerName": "taskq-bench-probe", "ContentUri": str(PROBE_DIR)},
        "Metadata": {"BuildMethod": "python3.11"},
    }
    glob = doc["Globals"]["Function"]
    glob["Layers"] = [*glob.get("Layers", []), {"Ref": "BenchProbeLayer"}]
    glob["Environment"]["Variables"][CALLS_DIR_ENV] = str(calls_dir)
    for event in doc["Resources"][WORKER]["Properties"]["Events"].values():
        if event.get("Type") == "SQS":
            scaling = event["Properties"].setdefault("ScalingConfig", {})
            scaling["MaximumConcurrency"] = max_concurrency
    assert doc["Resources"][WORKER]["Type"] == FUNCTION
    path = out_dir / "template.bench.yaml"
    path.write_text(yaml.safe_dump(doc, sort_keys=False))
    return path


@dataclass(frozen=True)
class Invocation:
    started: float  # time.time()
    duration_s: float
    records: int  # SQS records in the event (0 for HTTP)
    ok: bool


class InvocationTimer:
    """Times each invocation of a local function, as the runner (gateway, poller) sees it.

    This includes the pipe to the sandbox and JSON both ways (well under a millisecond), so
    it slightly overstates what Lambda would bill for the handler.
    """

    def __init__(self, function: LocalFunction) -> None:
        self._invoke: Callable[[Any], Any] = function.invoke
        self._lock = threading.Lock()
        self.records: list[Invocation] = []
        self.function = function
        function.invoke = self._timed  # type: ignore[method-assign]

    def _timed(self, event: Any) -> Any:
        started, t0 = time.time(), time.perf_counter()
        ok = False
        try:
            result = self._invoke(event)
            ok = True
            return result
        finally:
            records = len(event.get("Records", [])) if isinstance(event, dict) else 0
            entry = Invocation(started, time.perf_counter() - t0, records, ok)
            with self._lock:
                self.records.append(entry)

    def mark(self) -> int:
        with self._lock:
            return len(self.records)

    def since(self, mark: int) -> list[Invocation]:
        with self._lock:
            return self.records[mark:]


class BenchStack:
    """moto + the stack (no scheduler: the sweeper's minute has no part in a job's path).

    The worker may be deployed more than once (`add_worker`, other template parameters):
    each deployment keeps its sandboxes, and `use_worker` puts one behind the poller.
    """

    TEMPLATE_WORKER = "template"

    def __init__(self, workdir: Path, *, max_concurrency: int = 10) -> None:
        self.workdir = workdir
        self.calls_dir = workdir / "calls"
        self.calls = CallLog(self.calls_dir)
        self.max_concurrency = max_concurrency
        self.moto = MotoServer(log_path=workdir / "moto.log")
        self.cloud: LocalCloud | None = None
        self.timers: dict[str, InvocationTimer] = {}
        self.template_sqs, self.settings = template_values()
        self.stage = f"bench{int(time.time()) % 10**6}"
        self.workers: dict[str, InvocationTimer] = {}  # deployments of the worker, by name

    def start(self) -> BenchStack:
        self.calls_dir.mkdir(parents=True, exist_ok=True)
        self.moto.start()
        template = derived_template(self.workdir, self.calls_dir, self.max_concurrency)
        self.cloud = LocalCloud(
            template,
            endpoint_url=self.moto.url,
            stage=self.stage,
            region=REGION,
            start_scheduler=False,
            parameters={"AuthMode": "off", "TaskModules": f"taskq.demo_tasks,{PROBE_MODULE}"},
        )
        self.cloud.start()
        self.poller.stop()  # each run starts it with the settings it measures
        # The poller runs in this process: its calls are counted with the same hooks.
        CallRecorder(self.calls_dir / "poller.calls", "poller").attach(self.poller._sqs)
        self.timers = {lid: InvocationTimer(self.cloud.functions[lid]) for lid in (API, WORKER)}
        self.workers = {self.TEMPLATE_WORKER: self.timers[WORKER]}
        return self

    def stop(self) -> None:
        if self.cloud is not None:
            self.cloud.stop()
        for name, timer in self.workers.items():
            if name != self.TEMPLATE_WORKER:  # the cloud closed its own
                timer.function.close()
        self.moto.stop()

    def add_worker(self, name: str, parameters: Mapping[str, str]) -> dict[str, str]:
        """Deploy the worker again as the template makes it with these `parameters` (over
        the stack's): same code, queue and settings, sandboxes of its own. Returns the
        environment variables that differ from the template worker's; raises if none do
        (the parameters would not reach the worker)."""
        cloud = self.cloud
        assert cloud is not None and cloud.stack is not None
        stack = Stack.from_file(
            cloud.template_path,
            parameters={**cloud.parameters, **parameters},
            region=cloud.stack.region,
            account_id=cloud.stack.account_id,
            stack_name=cloud.stack.stack_name,
            endpoint_url=cloud.endpoint_url,
        ).bind(cloud.resources.queue_urls, cloud.resources.queue_arns)
        template = self.workers[self.TEMPLATE_WORKER].function
        spec = stack.function(WORKER)
        before = template.spec.environment
        changed = {k: v for k, v in spec.environment.items() if before.get(k) != v}
        if not changed or dataclasses.replace(spec, environment=before) != template.spec:
            raise RuntimeError(
                f"the worker deployed with {dict(parameters)} differs from the template's in "
                f"{'nothing' if not changed else 'more than its environment'}"
            )
        function = LocalFunction(
            spec, extra_env=template.extra_env, max_concurrency=template.max_concurrency
        )
        self.workers[name] = InvocationTimer(function)
        return changed

    def use_worker(self, name: str) -> None:
        """Put deployment `name` behind the poller (stopped: each run starts it)."""
        assert self.cloud is not None
        timer = self.workers[name]
        self.stop_poller()
        self.poller.function = timer.function
        self.cloud.functions[WORKER] = timer.function
        self.timers[WORKER] = timer

    def worker_environment(self, name: str, keys: Iterable[str]) -> dict[str, str]:
        env = self.workers[name].function.spec.environment
        return {k: env.get(k, "(unset)") for k in keys}

    @property
    def poller(self) -> EventSourcePoller:
        assert self.cloud is not None
        return self.cloud.pollers[WORKER]

    @property
    def api_url(self) -> str:
        assert self.cloud is not None
        return self.cloud.api_url

    @property
    def env(self) -> dict[str, str]:
        assert self.cloud is not None
        return self.cloud.env

    def function_name(self, lid: str) -> str:
        assert self.cloud is not None
        return self.cloud.functions[lid].name

    def source_group(self, source: str) -> str:
        """ "api", "worker" (function and its poller), or the source as is."""
        assert self.cloud is not None
        if source == self.cloud.functions[API].name:
            return "api"
        if source in (self.cloud.functions[WORKER].name, "poller"):
            return "worker"
        return source

    def process_labels(self) -> dict[int, str]:
        """pid -> component, for the CPU meter: moto, each function's sandboxes (their pids
        are in the probe's file names), everything else the bench started (load generator)."""
        labels = {self.moto.pid: "moto"}
        for path in self.calls_dir.glob("*-*.calls"):
            source, _, pid = path.stem.rpartition("-")
            if pid.isdigit():
                group = self.source_group(source)
                if group in ("api", "worker"):
                    labels[int(pid)] = f"{group} sandboxes"
        return labels

    def run_poller(self, concurrency: int, batch_size: int, window_s: float | None = None) -> None:
        poller = self.poller
        poller.stop()
        poller.spec = dataclasses.replace(
            self.template_sqs,
            maximum_concurrency=concurrency,
            batch_size=batch_size,
            max_batching_window_s=(
                self.template_sqs.max_batching_window_s if window_s is None else window_s
            ),
        )
        poller.start()

    def stop_poller(self) -> None:
        self.poller.stop()

    def provision_twin(self, suffix: str) -> Resources:
        """Another copy of the stack's tables and queues (same keys, indexes, attributes)."""
        stack = Stack.from_file(
            self.workdir / "template.bench.yaml",
            parameters={"Stage": f"{self.stage}{suffix}"[:16]},
            region=REGION,
        )
        return provision(stack, endpoint_url=self.moto.url, region=REGION)

    def client(self, service: str) -> Any:
        """An unhooked client for the bench's own reads (never counted)."""
        return client(service, endpoint_url=self.moto.url, region=REGION)
