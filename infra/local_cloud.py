"""The whole stack on one emulator: provisioned resources, functions, gateway, pollers, schedules.

What runs and how (routes, event sources, concurrency, schedules) is read from template.yaml;
this module only wires the local runners together and stops them in reverse order.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from infra.clients import local_env
from infra.gateway import HOST, LocalGateway
from infra.poller import EventSourcePoller
from infra.provision import Resources, provision
from infra.sandbox import Invocable, InvokeError, LocalFunction
from infra.scheduler import Scheduler
from infra.service import Service
from infra.template import FUNCTION, FunctionSpec, HttpRoute, Stack
from taskq.ratelimit import TokenBucket

log = logging.getLogger(__name__)

API_CONCURRENCY = 4  # sandboxes serving HTTP at once (Lambda would scale further)


class FunctionInitError(Exception):
    """A function's init failed at start (`init_functions`): its message is one line."""

    def __init__(self, function: str, error: InvokeError) -> None:
        super().__init__(f"{function} failed to start: {error}")
        self.function = function
        self.error = error


class LocalCloud(Service):
    """Runs the template's stack (Stage plus any other `parameters`) on `endpoint_url`."""

    def __init__(
        self,
        template_path: str | Path,
        *,
        endpoint_url: str,
        stage: str,
        api_port: int = 0,
        region: str = "us-east-1",
        schedule_override_s: float | None = None,
        start_scheduler: bool = True,
        parameters: Mapping[str, str] | None = None,
        customize: Callable[[FunctionSpec], FunctionSpec] | None = None,
        init_functions: bool = False,
        serve_api: bool = True,
        elsewhere: Callable[[FunctionSpec], Invocable | None] | None = None,
    ) -> None:
        self.template_path = Path(template_path).resolve()
        self.endpoint_url = endpoint_url
        self.stage = stage
        self.api_port = api_port
        self.region = region
        self.schedule_override_s = schedule_override_s
        self.start_scheduler = start_scheduler
        self.parameters = {**(parameters or {}), "Stage": stage}
        # Test hook: deploy a variant of each function (an extra layer, a shorter timeout,
        # more environment) as a second template would, before any sandbox starts.
        self.customize = customize
        # `make dev`: init one sandbox of every function before serving, so an init error
        # (a task module that cannot be imported) fails start() instead of the first request.
        self.init_functions = init_functions
        # `make sam-api`: the API is served by `sam local start-api`, everything else here.
        self.serve_api = serve_api
        # `make sam-api`: functions invoked somewhere else (a Lambda container through
        # `sam local start-lambda`) for the ones it returns a function for; here otherwise.
        self.elsewhere = elsewhere
        self.remote: dict[str, Invocable] = {}
        self.stack: Stack | None = None
        self.resources = Resources({}, {}, {})
        self.functions: dict[str, LocalFunction] = {}
        self.pollers: dict[str, EventSourcePoller] = {}  # each function's first mapping
        self.mappings: dict[str, EventSourcePoller] = {}  # every one, by "Function.Event"
        self.schedulers: dict[str, Scheduler] = {}
        self.gateway: LocalGateway | None = None
        self._api_function: str | None = None
        self._stoppers: list[Callable[[], None]] = []

    @property
    def api_url(self) -> str:
        if self.gateway is None:
            raise RuntimeError("no HttpApi function in the template, or the cloud is not started")
        return self.gateway.url

    @property
    def env(self) -> dict[str, str]:
        """What a CLI or test client needs: the API function's environment plus endpoint/region."""
        base = self.functions[self._api_function].spec.environment if self._api_function else {}
        return {**base, **local_env(self.endpoint_url, self.region)}

    def start(self) -> LocalCloud:
        try:
            self._start()
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        """Stop everything started, newest first; one failure does not keep the rest running."""
        while self._stoppers:
            stopper = self._stoppers.pop()
            try:
                stopper()
            except Exception:
                log.exception("stopping %s failed", stopper)

    def _start(self) -> None:
        def load(account_id: str = "000000000000") -> Stack:
            return Stack.from_file(
                self.template_path, parameters=self.parameters, region=self.region,
                account_id=account_id, stack_name=f"local-{self.stage}",
                endpoint_url=self.endpoint_url,
            )  # fmt: skip

        stack = load()
        self.resources = provision(stack, endpoint_url=self.endpoint_url, region=self.region)
        # ARNs name the emulator's account (moto: 123456789012); use it everywhere.
        arns = list(self.resources.queue_arns.values())
        account = arns[0].split(":")[4] if arns else stack.account_id
        stack = load(account).bind(self.resources.queue_urls, self.resources.queue_arns)
        self.stack = stack
        extra_env = local_env(self.endpoint_url, self.region)
        routes: list[tuple[HttpRoute, Invocable]] = []
        for lid in stack.logical_ids(FUNCTION):
            http, events, periods = (
                stack.http_routes(lid),
                stack.sqs_events(lid),
                stack.schedules(lid),
            )
            # Lambda scales a function to the sum of its mappings' maximum concurrency.
            mapped = sum(event.maximum_concurrency for event in events)
            concurrency = max(API_CONCURRENCY if http else 1, mapped)
            spec = stack.function(lid)
            remote = self.elsewhere(spec) if self.elsewhere else None
            function: Invocable
            if remote is not None:
                function = self.remote[lid] = remote
            else:
                function = self.functions[lid] = LocalFunction(
                    self.customize(spec) if self.customize else spec,
                    extra_env=extra_env,
                    max_concurrency=concurrency,
                )
            self._stoppers.append(function.close)
            routes += [(route, function) for route in http]
            if http and self._api_function is None:
                self._api_function = lid
            for sqs in events:
                poller = EventSourcePoller(
                    function, stack.queue_url(sqs.queue), stack.queue_arn(sqs.queue), sqs,
                    endpoint_url=self.endpoint_url, region=self.region,
                )  # fmt: skip
                self.mappings[f"{lid}.{sqs.name}"] = poller
                self.pollers.setdefault(lid, poller)  # its first (default-priority) queue's
            if periods and self.start_scheduler:
                self.schedulers[lid] = Scheduler(
                    function, periods, region=self.region, account_id=account,
                    interval_override=self.schedule_override_s,
                )  # fmt: skip
        if self.init_functions:
            self._init_all()
        if routes and self.serve_api:
            limits = stack.api_throttle()
            self.gateway = LocalGateway(
                routes, host=HOST, port=self.api_port, account_id=account,
                throttle=TokenBucket(*limits) if limits else None,
            )  # fmt: skip
            self._stoppers.append(self.gateway.start().stop)
        for poller in self.mappings.values():
            self._stoppers.append(poller.start().stop)
        for scheduler in self.schedulers.values():
            self._stoppers.append(scheduler.start().stop)

    def _init_all(self) -> None:
        """One sandbox of every function, initialised side by side (each init is mostly
        imports); the first failure in template order is raised, its log left to the caller."""

        def init(function: LocalFunction) -> InvokeError | None:
            try:
                function.warm(log_errors=False)
            except InvokeError as exc:
                return exc
            return None

        functions = list(self.functions.values())
        with ThreadPoolExecutor(max_workers=max(1, len(functions))) as pool:
            errors = list(pool.map(init, functions))
        for function, error in zip(functions, errors, strict=True):
            if error is not None:
                raise FunctionInitError(function.name, error)
