"""template.yaml as the local runners see it: short tags, names, ARNs, URLs and function specs.

Every value the local cloud needs (resource names, keys, timeouts, event settings) is read
here from the SAM template, so there is no second copy of them in infra code.
"""

from __future__ import annotations

import copy
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from infra.conditions import Conditions

TABLE = "AWS::DynamoDB::Table"
QUEUE = "AWS::SQS::Queue"
FUNCTION = "AWS::Serverless::Function"
LAYER = "AWS::Serverless::LayerVersion"
HTTP_API = "AWS::Serverless::HttpApi"

# Runtimes Lambda offers for Python; the sandbox runs them all on the local interpreter.
PYTHON_RUNTIMES = frozenset(f"python3.{minor}" for minor in range(9, 15))
# Lambda starts five concurrent batches per SQS mapping when no maximum is configured.
DEFAULT_SQS_CONCURRENCY = 5

_SQS_EVENT_KEYS = frozenset(
    {"Queue", "BatchSize", "MaximumBatchingWindowInSeconds", "FunctionResponseTypes",
     "ScalingConfig", "Enabled"}
)  # fmt: skip
_SCHEDULE_EVENT_KEYS = frozenset({"Schedule", "Enabled", "State", "Description", "Name"})
_HTTP_EVENT_KEYS = frozenset({"ApiId", "Path", "Method", "PayloadFormatVersion"})
_RATE = re.compile(r"rate\((\d+) (second|minute|hour|day)(s?)\)")
_UNIT_SECONDS = {"second": 1, "minute": 60, "hour": 3600, "day": 86400}
_SUB_VAR = re.compile(r"\$\{([^}]*)\}")


class TemplateError(Exception):
    """The template holds something the local cloud cannot honour (one-line message)."""


# --- loading -------------------------------------------------------------------------------


class CfnLoader(yaml.SafeLoader):
    """SafeLoader that turns CloudFormation short tags (!Ref, !Sub …) into their long form."""


_NO_VALUE = {"Ref": "AWS::NoValue"}


def _construct(tag: str) -> Any:
    key = tag if tag in ("Ref", "Condition") else f"Fn::{tag}"

    def construct(loader: CfnLoader, node: yaml.Node) -> dict[str, Any]:
        value: Any
        if isinstance(node, yaml.ScalarNode):
            value = loader.construct_scalar(node)
            if tag == "GetAtt":
                value = str(value).split(".", 1)
        elif isinstance(node, yaml.SequenceNode):
            value = loader.construct_sequence(node, deep=True)
        else:
            assert isinstance(node, yaml.MappingNode)
            value = loader.construct_mapping(node, deep=True)
        return {key: value}

    return construct


for _tag in (
    "Ref", "GetAtt", "Sub", "Join", "Select", "If", "Equals", "Not", "FindInMap", "Split",
    "GetAZs", "ImportValue", "Base64", "Condition", "And", "Or",
):  # fmt: skip
    CfnLoader.add_constructor(f"!{_tag}", _construct(_tag))


def load_template(path: str | Path) -> dict[str, Any]:
    """Parse a SAM/CloudFormation YAML template, short tags included."""
    with open(path, encoding="utf-8") as fh:
        # CfnLoader is a SafeLoader subclass (adds only the CloudFormation tags).
        doc = yaml.load(fh, Loader=CfnLoader)  # noqa: S506  # nosec B506
    if not isinstance(doc, dict) or not isinstance(doc.get("Resources"), dict):
        raise TemplateError(f"{path}: not a template (no Resources mapping)")
    return doc


# --- what the runners get ------------------------------------------------------------------


@dataclass(frozen=True)
class FunctionSpec:
    """What a local sandbox needs to run one function as Lambda would."""

    logical_id: str
    code_uri: Path
    handler: str
    timeout: int = 3
    memory: int = 128
    runtime: str = "python3.11"
    environment: dict[str, str] = field(default_factory=dict)
    layers: tuple[Path, ...] = ()  # layer content dirs, put on sys.path after code_uri
    name: str = ""  # physical FunctionName; the logical id when empty
    arn: str = ""

    @property
    def function_name(self) -> str:
        return self.name or self.logical_id


@dataclass(frozen=True)
class SqsEventSpec:
    """One SQS event source mapping, as Lambda would configure it."""

    queue: str  # logical id of the AWS::SQS::Queue
    name: str = ""  # the event's name in the template (one mapping per event)
    batch_size: int = 10
    max_batching_window_s: float = 0
    function_response_types: tuple[str, ...] = ()
    maximum_concurrency: int = DEFAULT_SQS_CONCURRENCY

    @property
    def report_batch_item_failures(self) -> bool:
        return "ReportBatchItemFailures" in self.function_response_types


@dataclass(frozen=True)
class HttpRoute:
    """One HTTP API route: `method` is ANY or a verb, `path` may hold {name} and {name+}."""

    method: str
    path: str

    @property
    def key(self) -> str:
        return f"{self.method} {self.path}"


# --- the stack -----------------------------------------------------------------------------


class Stack:
    """A template with its parameters bound, resolving what the local runners need.

    Queue URLs are only known once the queues exist; `bind` records the URLs and ARNs that
    provisioning got back. Until then a URL is derived from the endpoint (moto's shape) or,
    without one, from AWS's.
    """

    def __init__(
        self,
        template: Mapping[str, Any],
        *,
        parameters: Mapping[str, str] | None = None,
        region: str = "us-east-1",
        account_id: str = "000000000000",
        stack_name: str = "taskq-local",
        endpoint_url: str | None = None,
        root: Path | None = None,
    ) -> None:
        self.template = template
        self.region = region
        self.account_id = account_id
        self.stack_name = stack_name
        self.endpoint_url = endpoint_url.rstrip("/") if endpoint_url else None
        self.root = (root or Path.cwd()).resolve()
        self.resources: dict[str, Any] = dict(template.get("Resources") or {})
        self.parameters = self._bind_parameters(dict(parameters or {}))
        self._queue_urls: dict[str, str] = {}
        self._queue_arns: dict[str, str] = {}

    @classmethod
    def from_file(cls, path: str | Path, **kwargs: Any) -> Stack:
        """Load a template; CodeUri and ContentUri are relative to its directory."""
        path = Path(path)
        return cls(load_template(path), root=path.resolve().parent, **kwargs)

    def bind(self, queue_urls: Mapping[str, str], queue_arns: Mapping[str, str]) -> Stack:
        """A copy that uses the real queue URLs and ARNs (by logical id) the emulator returned."""
        bound = copy.copy(self)
        bound._queue_urls = {**self._queue_urls, **queue_urls}
        bound._queue_arns = {**self._queue_arns, **queue_arns}
        return bound

    # resources by type

    def logical_ids(self, type_: str) -> list[str]:
        return [lid for lid, res in self.resources.items() if _type(res) == type_]

    def properties(self, logical_id: str, type_: str) -> dict[str, Any]:
        res = self.resources.get(logical_id)
        if res is None or _type(res) != type_:
            raise TemplateError(f"{logical_id}: no {type_} resource of that name")
        props = res.get("Properties") or {}
        if not isinstance(props, dict):
            raise TemplateError(f"{logical_id}.Properties: not a mapping")
        return props

    # names, ARNs, URLs

    def table_name(self, logical_id: str) -> str:
        return self._physical_name(logical_id, TABLE, "TableName")

    def table_arn(self, logical_id: str) -> str:
        return (
            f"arn:aws:dynamodb:{self.region}:{self.account_id}:table/{self.table_name(logical_id)}"
        )

    def queue_name(self, logical_id: str) -> str:
        return self._physical_name(logical_id, QUEUE, "QueueName")

    def queue_arn(self, logical_id: str) -> str:
        if logical_id in self._queue_arns:
            return self._queue_arns[logical_id]
        return f"arn:aws:sqs:{self.region}:{self.account_id}:{self.queue_name(logical_id)}"

    def queue_url(self, logical_id: str) -> str:
        if logical_id in self._queue_urls:
            return self._queue_urls[logical_id]
        base = self.endpoint_url or f"https://sqs.{self.region}.amazonaws.com"
        return f"{base}/{self.account_id}/{self.queue_name(logical_id)}"

    def dead_letter_queue(self, logical_id: str) -> str | None:
        """Logical id of the queue named by this queue's RedrivePolicy, if any."""
        redrive = self.properties(logical_id, QUEUE).get("RedrivePolicy")
        target = redrive.get("deadLetterTargetArn") if isinstance(redrive, dict) else None
        dlq = _get_att_target(target, "Arn")
        if redrive is not None and (dlq is None or _type(self.resources.get(dlq)) != QUEUE):
            raise TemplateError(
                f"{logical_id}.RedrivePolicy: deadLetterTargetArn must be !GetAtt <queue>.Arn"
            )
        return dlq

    def function_name(self, logical_id: str) -> str:
        return self._physical_name(logical_id, FUNCTION, "FunctionName")

    def function_arn(self, logical_id: str) -> str:
        name = self.function_name(logical_id)
        return f"arn:aws:lambda:{self.region}:{self.account_id}:function:{name}"

    # functions

    def function(self, logical_id: str) -> FunctionSpec:
        """The function's runtime settings, Globals merged in as SAM merges them."""
        props = self.properties(logical_id, FUNCTION)
        glob = (self.template.get("Globals") or {}).get("Function") or {}
        merged = {**glob, **props}
        where = logical_id
        runtime = self.resolve(_required(merged, "Runtime", where), f"{where}.Runtime")
        if runtime not in PYTHON_RUNTIMES:
            raise TemplateError(f"{where}.Runtime: {runtime!r} is not a Lambda Python runtime")
        handler = self.resolve(_required(merged, "Handler", where), f"{where}.Handler")
        if "." not in handler.strip("."):
            raise TemplateError(f"{where}.Handler: {handler!r} is not 'module.function'")
        code_uri = _required(merged, "CodeUri", where)
        if not isinstance(code_uri, str):
            raise TemplateError(f"{where}.CodeUri: only a local directory is supported")
        env: dict[str, str] = {}
        for source, name in ((glob, "Globals.Function"), (props, where)):
            variables = (source.get("Environment") or {}).get("Variables") or {}
            for key, value in variables.items():
                env[str(key)] = self.resolve(value, f"{name}.Environment.Variables.{key}")
        layers = [*(glob.get("Layers") or []), *(props.get("Layers") or [])]
        return FunctionSpec(
            logical_id=logical_id,
            code_uri=(self.root / code_uri).resolve(),
            handler=handler,
            timeout=self._int(merged.get("Timeout", 3), f"{where}.Timeout", 1, 900),
            memory=self._int(merged.get("MemorySize", 128), f"{where}.MemorySize", 128, 10240),
            runtime=runtime,
            environment=env,
            layers=tuple(self._layer_dir(ref, f"{where}.Layers") for ref in layers),
            name=self.function_name(logical_id),
            arn=self.function_arn(logical_id),
        )

    def sqs_event(self, logical_id: str) -> SqsEventSpec | None:
        """The function's first enabled SQS event source (its default queue's), or None."""
        events = self.sqs_events(logical_id)
        return events[0] if events else None

    def sqs_events(self, logical_id: str) -> list[SqsEventSpec]:
        """Every enabled SQS event source of the function, in template order: one event
        source mapping (and one local poller) each, as Lambda runs them."""
        events = self._events(logical_id, "SQS", _SQS_EVENT_KEYS)
        specs = [
            self._sqs_event(logical_id, name, props)
            for name, props in events
            if props.get("Enabled", True) is not False
        ]
        queues = [spec.queue for spec in specs]
        if len(set(queues)) != len(queues):
            raise TemplateError(f"{logical_id}.Events: two SQS events on one queue")
        return specs

    def _sqs_event(self, logical_id: str, name: str, props: dict[str, Any]) -> SqsEventSpec:
        where = f"{logical_id}.Events.{name}.Properties"
        queue = _get_att_target(props.get("Queue"), "Arn")
        if queue is None or _type(self.resources.get(queue)) != QUEUE:
            raise TemplateError(f"{where}.Queue: must be !GetAtt <queue in this template>.Arn")
        batch = self._int(props.get("BatchSize", 10), f"{where}.BatchSize", 1, 10000)
        window = self._int(
            props.get("MaximumBatchingWindowInSeconds", 0),
            f"{where}.MaximumBatchingWindowInSeconds", 0, 300,
        )  # fmt: skip
        if batch > 10 and window < 1:
            raise TemplateError(f"{where}.BatchSize: above 10 needs a batching window of >= 1 s")
        types = props.get("FunctionResponseTypes") or []
        if not isinstance(types, list) or any(t != "ReportBatchItemFailures" for t in types):
            raise TemplateError(f"{where}.FunctionResponseTypes: only [ReportBatchItemFailures]")
        scaling = props.get("ScalingConfig") or {}
        if set(scaling) - {"MaximumConcurrency"}:
            raise TemplateError(f"{where}.ScalingConfig: only MaximumConcurrency is supported")
        concurrency = self._int(
            scaling.get("MaximumConcurrency", DEFAULT_SQS_CONCURRENCY),
            f"{where}.ScalingConfig.MaximumConcurrency", 2, 1000,
        )  # fmt: skip
        return SqsEventSpec(queue, name, batch, window, tuple(types), concurrency)

    def schedules(self, logical_id: str) -> list[float]:
        """Periods in seconds of the function's enabled `rate(...)` Schedule events."""
        periods: list[float] = []
        for name, props in self._events(logical_id, "Schedule", _SCHEDULE_EVENT_KEYS):
            if props.get("Enabled") is False or props.get("State") == "DISABLED":
                continue
            periods.append(parse_rate(props.get("Schedule"), f"{logical_id}.Events.{name}"))
        return periods

    def http_routes(self, logical_id: str) -> list[HttpRoute]:
        """The function's HttpApi routes (payload format 2.0, `$default` stage only)."""
        routes = []
        for name, props in self._events(logical_id, "HttpApi", _HTTP_EVENT_KEYS):
            where = f"{logical_id}.Events.{name}.Properties"
            if str(props.get("PayloadFormatVersion", "2.0")) != "2.0":
                raise TemplateError(f"{where}.PayloadFormatVersion: only 2.0 is supported")
            api = props.get("ApiId")
            if api is not None:
                self._check_api(api, f"{where}.ApiId")
            path, method = props.get("Path"), props.get("Method")
            if not isinstance(path, str) or not path.startswith("/") or not isinstance(method, str):
                raise TemplateError(f"{where}: needs Path (starting with /) and Method")
            routes.append(HttpRoute(method.upper(), path))
        return routes

    def api_throttle(self) -> tuple[float, int] | None:
        """(rate per second, burst) from the HttpApi's DefaultRouteSettings, if it sets both."""
        for lid in self.logical_ids(HTTP_API):
            settings = self.resolve_tree(
                self.properties(lid, HTTP_API).get("DefaultRouteSettings") or {}, lid
            )
            rate, burst = settings.get("ThrottlingRateLimit"), settings.get("ThrottlingBurstLimit")
            if rate is not None and burst is not None:
                try:
                    return float(rate), int(burst)
                except (TypeError, ValueError):
                    raise TemplateError(
                        f"{lid}.DefaultRouteSettings: throttling limits must be numbers"
                    ) from None
        return None

    def layer_dirs(self) -> dict[str, Path]:
        """Content directory of every layer in the template, by logical id."""
        return {lid: self._layer_dir({"Ref": lid}, lid) for lid in self.logical_ids(LAYER)}

    # intrinsic functions

    def resolve(self, value: Any, where: str) -> str:
        """Evaluate a scalar or an intrinsic (Ref, GetAtt, Sub, Join) to a string."""
        if isinstance(value, bool):
            return "true" if value else "false"
        if isinstance(value, str | int | float):
            return str(value)
        if isinstance(value, dict) and len(value) == 1:
            ((fn, arg),) = value.items()
            if fn == "Ref" and isinstance(arg, str):
                return self._ref(arg, where)
            if fn == "Fn::GetAtt":
                return self._get_att(arg, where)
            if fn == "Fn::Sub":
                return self._sub(arg, where)
            if fn == "Fn::Join" and isinstance(arg, list) and len(arg) == 2:
                delimiter, items = arg
                if isinstance(items, list):
                    return str(delimiter).join(self.resolve(i, where) for i in items)
        raise TemplateError(f"{where}: unsupported value {value!r}")

    def resolve_tree(self, value: Any, where: str) -> Any:
        """Resolve intrinsics anywhere inside lists and mappings, leaving plain scalars typed.

        `!If [condition, a, b]` takes its branch; a branch of `!Ref AWS::NoValue` leaves the
        list entry or the property out, as CloudFormation does."""
        if isinstance(value, dict):
            if set(value) == {"Fn::If"}:
                conditions = Conditions(
                    self.template.get("Conditions") or {}, self.resolve, TemplateError
                )
                return self.resolve_tree(conditions.choose(value["Fn::If"], where), where)
            if value == _NO_VALUE:
                return _NO_VALUE
            if len(value) == 1 and (
                next(iter(value)) == "Ref" or next(iter(value)).startswith("Fn::")
            ):
                return self.resolve(value, where)
            resolved = {k: self.resolve_tree(v, f"{where}.{k}") for k, v in value.items()}
            return {k: v for k, v in resolved.items() if v != _NO_VALUE}
        if isinstance(value, list):
            resolved_list = [self.resolve_tree(v, f"{where}[{i}]") for i, v in enumerate(value)]
            return [v for v in resolved_list if v != _NO_VALUE]
        return value

    def _ref(self, name: str, where: str) -> str:
        if name in self.parameters:
            return self.parameters[name]
        pseudo = {
            "AWS::Region": self.region,
            "AWS::AccountId": self.account_id,
            "AWS::StackName": self.stack_name,
            "AWS::URLSuffix": "amazonaws.com",
            "AWS::Partition": "aws",
        }
        if name in pseudo:
            return pseudo[name]
        kind = _type(self.resources.get(name))
        if kind == TABLE:
            return self.table_name(name)
        if kind == QUEUE:
            return self.queue_url(name)
        if kind == FUNCTION:
            return self.function_name(name)
        raise TemplateError(f"{where}: cannot resolve !Ref {name} locally")

    def _get_att(self, arg: Any, where: str) -> str:
        if isinstance(arg, str):
            arg = arg.split(".", 1)
        if not (isinstance(arg, list) and len(arg) == 2 and all(isinstance(a, str) for a in arg)):
            raise TemplateError(f"{where}: malformed !GetAtt {arg!r}")
        name, attr = arg
        kind = _type(self.resources.get(name))
        getters = {
            (QUEUE, "Arn"): self.queue_arn,
            (QUEUE, "QueueName"): self.queue_name,
            (QUEUE, "QueueUrl"): self.queue_url,
            (TABLE, "Arn"): self.table_arn,
            (FUNCTION, "Arn"): self.function_arn,
        }
        getter = getters.get((kind or "", attr))
        if getter is None:
            raise TemplateError(f"{where}: cannot resolve !GetAtt {name}.{attr} locally")
        return getter(name)

    def _sub(self, arg: Any, where: str) -> str:
        variables: dict[str, Any] = {}
        if isinstance(arg, list) and len(arg) == 2 and isinstance(arg[1], dict):
            arg, variables = arg
        if not isinstance(arg, str):
            raise TemplateError(f"{where}: malformed !Sub {arg!r}")

        def substitute(match: re.Match[str]) -> str:
            var = match.group(1)
            if var.startswith("!"):  # ${!Literal} stays as ${Literal}
                return "${" + var[1:] + "}"
            if var in variables:
                return self.resolve(variables[var], where)
            if "." in var and "::" not in var:
                return self._get_att(var, where)
            return self._ref(var, where)

        return _SUB_VAR.sub(substitute, arg)

    # helpers

    def _bind_parameters(self, overrides: dict[str, str]) -> dict[str, str]:
        declared: dict[str, Any] = dict(self.template.get("Parameters") or {})
        unknown = set(overrides) - set(declared)
        if unknown:
            raise TemplateError(f"Parameters: unknown parameter(s) {', '.join(sorted(unknown))}")
        values = {}
        for name, decl in declared.items():
            if name in overrides:
                value = str(overrides[name])
            elif "Default" in decl:
                value = str(decl["Default"])
            else:
                raise TemplateError(f"Parameters.{name}: no value and no Default")
            pattern = decl.get("AllowedPattern")
            if pattern and not re.fullmatch(pattern, value):
                raise TemplateError(f"Parameters.{name}: {value!r} does not match {pattern}")
            allowed = decl.get("AllowedValues")
            if allowed and value not in [str(a) for a in allowed]:
                raise TemplateError(f"Parameters.{name}: {value!r} not in {allowed}")
            if decl.get("Type") == "Number":
                low, high = decl.get("MinValue", float("-inf")), decl.get("MaxValue", float("inf"))
                try:
                    ok = low <= float(value) <= high
                except ValueError:
                    ok = False
                if not ok:
                    raise TemplateError(f"Parameters.{name}: {value!r} is not a number in range")
            values[name] = value
        return values

    def _physical_name(self, logical_id: str, type_: str, prop: str) -> str:
        props = self.properties(logical_id, type_)
        if prop in props:
            return self.resolve(props[prop], f"{logical_id}.{prop}")
        return f"{self.stack_name}-{logical_id}"

    def _int(self, value: Any, where: str, low: int, high: int) -> int:
        text = self.resolve(value, where)
        try:
            number = int(text)
        except ValueError:
            raise TemplateError(f"{where}: {text!r} is not an integer") from None
        if not low <= number <= high:
            raise TemplateError(f"{where}: {number} is outside {low}..{high}")
        return number

    def _events(self, logical_id: str, type_: str, keys: frozenset[str]) -> list[tuple[str, Any]]:
        events = self.properties(logical_id, FUNCTION).get("Events") or {}
        found = []
        for name, event in events.items():
            if not isinstance(event, dict) or event.get("Type") != type_:
                continue
            props = event.get("Properties") or {}
            extra = set(props) - keys
            if extra:
                raise TemplateError(
                    f"{logical_id}.Events.{name}.Properties: {', '.join(sorted(extra))} "
                    "not supported locally"
                )
            found.append((name, props))
        return found

    def _layer_dir(self, ref: Any, where: str) -> Path:
        name = ref.get("Ref") if isinstance(ref, dict) and len(ref) == 1 else None
        if not isinstance(name, str) or _type(self.resources.get(name)) != LAYER:
            raise TemplateError(f"{where}: a layer must be !Ref to a LayerVersion in the template")
        res = self.resources[name]
        content = (res.get("Properties") or {}).get("ContentUri")
        if not isinstance(content, str):
            raise TemplateError(f"{name}.ContentUri: only a local directory is supported")
        path = (self.root / content).resolve()
        # `sam build` with a python BuildMethod puts ContentUri under python/ (what Lambda puts
        # on sys.path); without one, ContentUri must already hold that python/ directory.
        build_method = str((res.get("Metadata") or {}).get("BuildMethod", ""))
        return path if build_method.startswith("python") else path / "python"

    def _check_api(self, api: Any, where: str) -> None:
        name = api.get("Ref") if isinstance(api, dict) else None
        if not isinstance(name, str) or _type(self.resources.get(name)) != HTTP_API:
            raise TemplateError(f"{where}: must be !Ref to an AWS::Serverless::HttpApi")
        stage = (self.resources[name].get("Properties") or {}).get("StageName", "$default")
        if stage != "$default":
            raise TemplateError(f"{name}.StageName: only the $default stage is supported locally")


def parse_rate(expression: Any, where: str) -> float:
    """Seconds between runs of an EventBridge `rate(N unit)` expression."""
    match = _RATE.fullmatch(expression) if isinstance(expression, str) else None
    if match is None:
        raise TemplateError(
            f"{where}.Schedule: {expression!r} is not rate(N unit); no cron locally"
        )
    value, unit, plural = int(match.group(1)), match.group(2), match.group(3)
    if value < 1 or (value == 1) == bool(plural):
        raise TemplateError(
            f"{where}.Schedule: {expression!r} (1 takes a singular unit, N>1 plural)"
        )
    return float(value * _UNIT_SECONDS[unit])


def _type(resource: Any) -> str | None:
    return resource.get("Type") if isinstance(resource, dict) else None


def _required(props: Mapping[str, Any], key: str, where: str) -> Any:
    if key not in props:
        raise TemplateError(f"{where}.{key}: missing (neither in the function nor in Globals)")
    return props[key]


def _get_att_target(value: Any, attribute: str) -> str | None:
    arg = value.get("Fn::GetAtt") if isinstance(value, dict) and len(value) == 1 else None
    if isinstance(arg, str):
        arg = arg.split(".", 1)
    if isinstance(arg, list) and len(arg) == 2 and arg[1] == attribute:
        return str(arg[0])
    return None
