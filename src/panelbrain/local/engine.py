"""The local engine: the SAM template's resources on moto, with Lambda dispatched in-process.

``LocalEngine`` reads ``template.yaml``, creates on moto (an embedded AWS emulator) the tables,
topics and state machines it declares, resolves every ``DefinitionSubstitution``, and routes each
Lambda invocation to the ``Handler`` the template names, in this process. The state machine
files, handlers and adapters that run here are the ones ``sam deploy`` ships. No Docker, no
credentials, no network.

moto's Step Functions interpreter calls ``LambdaSimpleBackend.invoke`` for Lambda tasks; the
engine replaces it for as long as it runs (a moto internal: moto's version is pinned).

What CloudWatch Logs would receive, the engine keeps (:attr:`LocalEngine.logs`, and ``log_file``):
each invocation's stdout, line by line, under its function's log group, and the execution events
of every state machine the template gives a ``Logging`` configuration.
"""

from __future__ import annotations

import importlib
import json
import os
import secrets
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Collection, Iterator
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

from panelbrain.errors import BadInputError
from panelbrain.local import aws_rules
from panelbrain.local.lambda_rules import (
    DEFAULT_MEMORY_MB,
    DEFAULT_TIMEOUT_S,
    LATEST,
    ApiIntegrationError,
    ExecutionEnvironments,
    LambdaFunctionError,
    ProvisionedTarget,
    ServedBy,
    api_integration,
    function_setting,
    integration_problem,
    provisioned_targets,
    split_function_arn,
    timed_out_error,
    unknown_qualifier,
    unqualified_problem,
)
from panelbrain.local.template import Template, TemplateError, rate_seconds

# Credentials and region for the emulator only; nothing leaves the process.
_FAKE_ENV = {
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_SESSION_TOKEN": "local",
    "AWS_DEFAULT_REGION": "us-east-1",
    "AWS_REGION": "us-east-1",
}

# Who may decide reviews on a laptop: the template's Reviewers allow-list is empty by default
# (nobody may decide until the deployer names someone), which would leave local reviews stuck.
LOCAL_REVIEWER = "reviewer@example.com"

LOGS_KEPT = 50_000

Handler = Callable[[dict[str, Any], Any], Any]
Fault = Callable[[str, dict[str, Any]], None]


@dataclass(frozen=True)
class LambdaContext:
    """The parts of Lambda's context object our handlers may read."""

    function_name: str
    aws_request_id: str
    invoked_function_arn: str
    memory_limit_in_mb: int = 512
    # time.monotonic() at which Lambda stops the handler (the function's Timeout from the start);
    # None for a context built outside the engine (tests calling a handler directly).
    deadline: float | None = None

    def get_remaining_time_in_millis(self) -> int:
        """Counts down to the function's Timeout, so a handler can stop itself in time
        (https://docs.aws.amazon.com/lambda/latest/dg/python-context.html)."""
        if self.deadline is None:
            return 60_000
        return max(0, int((self.deadline - time.monotonic()) * 1000))


@dataclass
class StateTrace:
    state: str
    machine: str
    started_at: datetime
    ended_at: datetime | None = None

    @property
    def duration_ms(self) -> float | None:
        if self.ended_at is None:
            return None
        return (self.ended_at - self.started_at).total_seconds() * 1000


@dataclass
class Invocation:
    """One Lambda invocation: which version ran it (the alias, or ``$LATEST`` when invoked
    unqualified), whether a provisioned instance or an on-demand one served it, and whether
    that on-demand instance started cold."""

    function: str
    started: float
    seconds: float
    error: str | None
    qualifier: str = LATEST
    served_by: ServedBy = "on_demand"
    cold_start: bool = False
    at: datetime = field(default_factory=lambda: datetime.now(UTC))  # wall clock, to place it in a state


@dataclass
class LocalEngine:
    """Owns the emulator for its lifetime; use :meth:`running`."""

    template: Template
    clients: dict[str, Any] = field(default_factory=dict)
    handlers: dict[str, Handler] = field(default_factory=dict)
    invocations: list[Invocation] = field(default_factory=list)
    faults: list[Fault] = field(default_factory=list)
    metric_lines: list[str] = field(default_factory=list)
    # What CloudWatch Logs would hold: each function's lines (what it wrote to stdout, one log
    # group per function) and each logging state machine's execution events, in the order they
    # were written; also appended to ``log_file`` (JSON lines) for ``panelbrain logs``. In
    # memory, the last LOGS_KEPT only (~60 records a reviewed query: a long load run would
    # otherwise hold them all); the file keeps every one.
    logs: deque[dict[str, Any]] = field(default_factory=lambda: deque(maxlen=LOGS_KEPT))
    log_file: Path | None = None
    _log_sink: IO[str] | None = None
    # Strict: an invocation AWS would serve but should not (a function with an alias invoked
    # unqualified) is refused, so every test fails if the template regresses; not strict: it is
    # served on demand and reported in ``violations``.
    strict: bool = True
    # The time the provisioned-concurrency schedules are read at (tests set a weekday 10:00).
    clock: Callable[[], datetime] = field(default_factory=lambda: _utc_now)
    # Seconds a function may run instead of its template Timeout (tests shorten it).
    timeout_overrides: dict[str, float] = field(default_factory=dict)
    violations: list[str] = field(default_factory=list)
    environments: ExecutionEnvironments = field(default_factory=ExecutionEnvironments)
    # AWS's service rules moto lacks (payload limits, the Express duration, SQS's clock...);
    # tests may shorten the time-based ones. See aws_rules.py.
    rules: aws_rules.AwsRules = field(default_factory=aws_rules.AwsRules)
    _provisioned: dict[str, ProvisionedTarget] | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)
    # Set when the engine stops: its handlers still running may send no more requests (below).
    closed: bool = False
    # What pre-traffic hooks reported to CodeDeploy (served by the engine: moto has no such API).
    hook_verdicts: HookVerdicts = field(default_factory=lambda: HookVerdicts())
    # Global tables another region's stack owns, whose replica this region holds (see running).
    replicas: tuple[str, ...] = ()
    # What the engine published to the datasets bucket on start: name -> publish's document.
    published_datasets: dict[str, dict[str, Any]] = field(default_factory=dict)
    # Each function environment variable the engine set, with the value it replaced.
    _env: dict[str, str | None] = field(default_factory=dict)

    @classmethod
    @contextmanager
    def running(
        cls,
        template_path: Path | None = None,
        parameters: dict[str, str] | None = None,
        bent_limits: Collection[str] = (),
        *,
        strict: bool = True,
        clock: Callable[[], datetime] | None = None,
        log_file: Path | None = None,
        region: str = "us-east-1",
        replicas: Collection[str] = (),
    ) -> Iterator[LocalEngine]:
        """``strict`` refuses what AWS would serve but should not (see :attr:`strict`);
        ``clock`` is the time provisioned-concurrency schedules are read at (default: now);
        ``log_file`` receives every log record as a JSON line (appended: a session's file keeps
        the queries of earlier runs, as a log group does); ``region`` is the emulated region
        (moto keeps one backend per account and region); ``replicas`` names global tables that
        another region's stack owns and this region holds a replica of (a SECONDARY stack's
        query store, docs/multi-region.md): the engine creates each, as that stack would have."""
        from moto import mock_aws
        from moto.awslambda_simple.models import LambdaSimpleBackend

        path = template_path or find_template()
        engine = cls(Template.load(path, {"Reviewers": LOCAL_REVIEWER, **(parameters or {})}), strict=strict)
        engine.template.region = region
        engine.replicas = tuple(replicas)
        if clock is not None:
            engine.clock = clock
        engine.log_file = log_file
        engine.template.check_parameters(frozenset(bent_limits))
        engine.rules.unqualified_start = engine._unqualified_start
        fake_env = {**_FAKE_ENV, "AWS_DEFAULT_REGION": region, "AWS_REGION": region}
        saved_env = {k: os.environ.get(k) for k in fake_env}
        original_invoke = LambdaSimpleBackend.invoke
        with ExitStack() as stack:
            os.environ.update(fake_env)
            stack.callback(_restore_env, saved_env)
            stack.enter_context(
                mock_aws(
                    config={
                        "stepfunctions": {"execute_state_machine": True},
                        "lambda": {"use_docker": False},
                        # --provider bedrock: model calls leave for the real endpoint.
                        "core": {"passthrough": {"services": ["bedrockruntime"]}},
                    }
                )
            )

            def invoke(
                _backend: Any, name: str, qualifier: Any, body: Any, headers: Any, response: Any
            ) -> bytes:
                return engine._invoke(name, qualifier, body, response)

            LambdaSimpleBackend.invoke = invoke  # type: ignore[method-assign,assignment]
            stack.callback(setattr, LambdaSimpleBackend, "invoke", original_invoke)
            _reuse_task_clients(stack)
            _reuse_parse_trees(stack)
            _honour_early_outcomes(stack)
            aws_rules.hold(stack, engine.rules)
            _stopped_invocations_send_nothing(stack)
            from panelbrain.aws import clients

            stack.enter_context(clients.override("codedeploy", engine.hook_verdicts))
            _state_machine_logs_reach(stack, engine)
            stack.callback(_release_stdout)
            if log_file is not None:
                log_file.parent.mkdir(parents=True, exist_ok=True)
                engine._log_sink = stack.enter_context(log_file.open("a", encoding="utf-8"))
            # Registered first: a deploy that fails half-way (a template AWS would refuse) must
            # not leave the functions' environment behind (DATASETS_BUCKET would send every later
            # dataset look-up in this process to an emulator that is gone).
            stack.callback(engine._undeploy_env)
            engine._deploy()
            stack.callback(engine._stop_everything_running)
            yield engine

    # -- deployment ---------------------------------------------------------------------------

    def _deploy(self) -> None:
        import boto3

        for service in (
            "stepfunctions",
            "dynamodb",
            "sns",
            "sqs",
            "s3",
            "secretsmanager",
            "cognito-idp",
            "ssm",
        ):
            self.clients[service] = boto3.client(service, region_name=self.template.region)
        t = self.template
        # A global table is one plain table here, in the engine's one region: replication between
        # regions is not emulated (``panelbrain ops failover-drill`` copies writes itself). A
        # table whose Condition is false in this stack is not created, unless it is a replica
        # another region's stack owns (``replicas``).
        tables = {
            name: resource
            for kind in ("AWS::DynamoDB::Table", "AWS::DynamoDB::GlobalTable")
            for name, resource in t.of_type(kind).items()
            if "Condition" not in resource or t.condition(resource["Condition"]) or name in self.replicas
        }
        unknown = set(self.replicas) - set(t.of_type("AWS::DynamoDB::GlobalTable"))
        if unknown:
            raise TemplateError(
                f"replicas {sorted(unknown)}: no such AWS::DynamoDB::GlobalTable in the template"
            )
        for name, resource in tables.items():
            props = resource["Properties"]
            indexes = props.get("GlobalSecondaryIndexes")
            self.clients["dynamodb"].create_table(
                TableName=t.resolve({"Ref": name}),
                AttributeDefinitions=props["AttributeDefinitions"],
                KeySchema=props["KeySchema"],
                BillingMode=props.get("BillingMode", "PAY_PER_REQUEST"),
                **({"GlobalSecondaryIndexes": indexes} if indexes else {}),
            )
        for name, resource in t.of_type("AWS::SecretsManager::Secret").items():
            # CloudFormation generates the value (GenerateSecretString); so does the engine.
            length = resource["Properties"].get("GenerateSecretString", {}).get("PasswordLength", 64)
            self.clients["secretsmanager"].create_secret(
                Name=name, SecretString=secrets.token_hex(length // 2)
            )
        for name in t.of_type("AWS::SNS::Topic"):
            self.clients["sns"].create_topic(Name=name)
        for resource in t.of_type("AWS::SSM::Parameter").values():
            props = t.resolve(resource["Properties"])
            self.clients["ssm"].put_parameter(Name=props["Name"], Value=props["Value"], Type=props["Type"])
        logs = boto3.client("logs", region_name=t.region)
        for name in t.of_type("AWS::Logs::LogGroup"):
            logs.create_log_group(logGroupName=t.log_group_name(name))
        for name, resource in t.of_type("AWS::S3::Bucket").items():
            # Outside us-east-1 S3 needs the bucket's region named
            # (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html).
            where = (
                {}
                if t.region == "us-east-1"
                else {"CreateBucketConfiguration": {"LocationConstraint": t.region}}
            )
            self.clients["s3"].create_bucket(Bucket=t.resolve({"Ref": name}), **where)
            versioning = t.resolve(resource.get("Properties", {}).get("VersioningConfiguration"))
            if versioning:
                self.clients["s3"].put_bucket_versioning(
                    Bucket=t.resolve({"Ref": name}), VersioningConfiguration={"Status": versioning["Status"]}
                )
        queues = t.of_type("AWS::SQS::Queue")
        for name in queues:  # all first: a redrive policy names another queue
            self.clients["sqs"].create_queue(QueueName=name)
        for name, resource in queues.items():
            props = t.resolve(resource.get("Properties", {}))
            attributes = {
                key: str(props[key])
                for key in ("VisibilityTimeout", "MessageRetentionPeriod", "ReceiveMessageWaitTimeSeconds")
                if key in props
            }
            if "RedrivePolicy" in props:
                attributes["RedrivePolicy"] = json.dumps(props["RedrivePolicy"])
            if attributes:
                self.clients["sqs"].set_queue_attributes(
                    QueueUrl=t.resolve({"Ref": name}), Attributes=attributes
                )
        for name in t.of_type("AWS::Serverless::Function"):
            self.handlers[name] = _import_handler(t.handler(name))
            for key, value in t.environment(name).items():
                if key in self._env and os.environ.get(key) != value:
                    raise TemplateError(
                        f"{name}: environment variable {key} differs between functions; the local "
                        "engine runs every handler in one process and needs one value"
                    )
                self._env.setdefault(key, os.environ.get(key))
                os.environ[key] = value
        # Handlers keep their clients, and the review functions their keys, for the life of a
        # container; a new emulator is a new account, so they must build them again.
        from panelbrain.aws import clients
        from panelbrain.functions import review_common

        clients.reset()
        review_common.service.cache_clear()
        review_common.secrets.cache_clear()
        # So must the handlers' other container-lifetime singletons (a module-level
        # ``functools.cache`` of a store, queue or cache adapter): they hold the table names and
        # region of the engine that built them, and an engine may run another stack's parameters
        # (a two-region stack's global table, another region: docs/multi-region.md).
        for module in {sys.modules[handler.__module__] for handler in self.handlers.values()}:
            for value in vars(module).values():
                clear = getattr(value, "cache_clear", None)
                if callable(clear):
                    clear()
        # And the agents' datasets: a new engine's containers are cold, and read their datasets
        # from its bucket (ADR 0025), not from what an earlier engine's containers loaded.
        from panelbrain.agents import context

        context.clear()
        self._publish_datasets()
        for name, resource in t.of_type("AWS::Serverless::StateMachine").items():
            alias = t.state_machine_alias(name)
            logging = _logging_configuration(t.resolve(resource["Properties"].get("Logging")))
            created = self.clients["stepfunctions"].create_state_machine(
                name=name,
                definition=t.definition(name),
                roleArn=f"arn:aws:iam::{t.account}:role/{name}Role",
                type=resource["Properties"].get("Type", "STANDARD"),
                publish=alias is not None,
                **({"loggingConfiguration": logging} if logging else {}),
            )
            if alias is not None:
                # AutoPublishAlias: a version, and the alias its callers start executions through
                # (aws_rules routes a start through an alias to the version it points at). The
                # local engine does not run CodeDeploy or the alias's DeploymentPreference: the
                # alias points at its one version from the start (docs/deploy.md).
                self.clients["stepfunctions"].create_state_machine_alias(
                    name=alias,
                    routingConfiguration=[
                        {"stateMachineVersionArn": created["stateMachineVersionArn"], "weight": 100}
                    ],
                )
        aws_rules.deploy(t, self.clients)

    def _publish_datasets(self) -> None:
        """The datasets in local files, published to the bucket the functions read them from
        (their DATASETS_BUCKET), as `panelbrain datasets publish` does for a deployed stack: the
        functions read every dataset from S3 here as they do deployed (ADR 0025)."""
        from panelbrain.data import remote
        from panelbrain.data.dictionary import local_dataset_names

        remote.forget()  # a new emulator: what an earlier engine published is not here
        if remote.bucket() is None:
            return
        for name in local_dataset_names():
            self.publish_dataset(name)

    def publish_dataset(self, name: str) -> dict[str, Any]:
        """Publish one local dataset to the functions' bucket (at start, and for one added or
        edited after: what `panelbrain datasets publish NAME` asks of a running serve)."""
        from panelbrain.data import remote
        from panelbrain.data.dictionary import dataset_dir

        bucket = remote.bucket()
        if bucket is None:
            raise BadInputError(f"the template gives no function {remote.BUCKET_ENV}: nowhere to publish")
        self.published_datasets[name] = result = remote.publish(
            self.clients["s3"], bucket, name, dataset_dir(name)
        )
        return result

    def _unqualified_start(self, problem: str) -> bool:
        """A start past a state machine's alias: reported, and refused when strict."""
        with self._lock:
            self.violations.append(problem)
        return self.strict

    def _undeploy_env(self) -> None:
        _restore_env(self._env)

    # -- Lambda -------------------------------------------------------------------------------

    def _invoke(
        self, function_name: str, qualifier: str | None, body: Any, response_headers: dict[str, str]
    ) -> bytes:
        """Lambda's Invoke API as moto's Step Functions interpreter calls it: ``function_name`` is a
        name or ARN (an alias ARN ends in ``:<alias>``), ``qualifier`` the Qualifier parameter."""
        name, qualifier = split_function_arn(function_name, qualifier)
        payload, error = self._run(name, qualifier, json.loads(body) if body else {})
        if error is not None:  # Lambda's contract: FunctionError header, errorType in the payload
            response_headers["x-amz-function-error"] = "Unhandled"
            return json.dumps(error).encode()
        return payload.encode()

    def call(self, function: str, event: dict[str, Any]) -> Any:
        """Invoke ``function`` as its event sources do: SAM connects every event source (SQS,
        schedules, API) to the AutoPublishAlias alias
        (https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-specification-generated-resources-function.html).
        Raises :class:`LambdaFunctionError` with Lambda's errorType and errorMessage."""
        payload, error = self._run(function, self.template.alias(function), event)
        if error is not None:
            raise LambdaFunctionError(function, error["errorType"], error["errorMessage"])
        return json.loads(payload)

    def api_call(self, event: dict[str, Any]) -> dict[str, Any]:
        """What API Gateway does with a REST proxy ``event``: the route's integration comes from
        the OpenAPI body of the template's API, is refused as AWS would refuse it, then the
        function its URI names (and the qualifier it names) is invoked."""
        integration = api_integration(self.template, event["httpMethod"], event["path"])
        if integration is None:
            raise ApiIntegrationError(
                f"no route {event['httpMethod']} {event['path']} in the template's APIs", 404
            )
        problem = integration_problem(self.template, integration)
        if problem is not None:
            raise ApiIntegrationError(problem, 500)
        payload, error = self._run(integration.function, integration.qualifier, event)
        if error is not None:
            raise LambdaFunctionError(integration.function, error["errorType"], error["errorMessage"])
        response: dict[str, Any] = json.loads(payload)
        return response

    @property
    def provisioned(self) -> dict[str, ProvisionedTarget]:
        """Each function's provisioned-concurrency target, from the template."""
        if self._provisioned is None:
            self._provisioned = provisioned_targets(self.template)
        return self._provisioned

    def timeout_s(self, function: str) -> float:
        """How long ``function`` may run: its Timeout, else the Globals', else Lambda's 3 s."""
        if function in self.timeout_overrides:
            return self.timeout_overrides[function]
        return float(function_setting(self.template, function, "Timeout", DEFAULT_TIMEOUT_S))

    def _run(
        self, name: str, qualifier: str | None, event: dict[str, Any]
    ) -> tuple[str, dict[str, str] | None]:
        """One invocation as Lambda runs it: (the JSON result, None) or ("", the error payload)."""
        t = self.template
        handler = self.handlers.get(name)
        if handler is None:
            return "", {"errorType": "TemplateError", "errorMessage": f"no function {name!r} in the template"}
        unknown = unknown_qualifier(t, name, qualifier)
        if unknown is not None:
            return "", {"errorType": "ResourceNotFoundException", "errorMessage": unknown}
        unqualified = unqualified_problem(t, name, qualifier)
        if unqualified is not None:
            with self._lock:
                self.violations.append(unqualified)
            if self.strict:
                return "", {
                    "errorType": "UnqualifiedInvocationError",
                    "errorMessage": f"{unqualified} The local engine is strict; "
                    "LocalEngine.running(strict=False) serves such an invocation on demand, as AWS "
                    "would, and lists it in LocalEngine.violations.",
                }
        version = qualifier or LATEST
        target = self.provisioned.get(name)
        capacity = target.capacity_at(self.clock()) if target is not None and target.alias == version else 0
        served_by, cold_start = self.environments.acquire(name, version, capacity)
        timeout_s = self.timeout_s(name)
        request_id = f"local-{secrets.token_hex(8)}"
        context = LambdaContext(
            name,
            request_id,
            t.function_arn(name) + (f":{qualifier}" if qualifier else ""),
            int(function_setting(t, name, "MemorySize", DEFAULT_MEMORY_MB)),
            deadline=time.monotonic() + timeout_s,
        )
        outcome: list[tuple[str, dict[str, str] | None]] = []

        def work() -> None:
            try:
                for fault in self.faults:
                    fault(name, event)
                outcome.append((json.dumps(handler(event, context), allow_nan=False), None))
            except Exception as exc:  # Lambda's contract: the class name is the error type
                outcome.append(("", {"errorType": type(exc).__name__, "errorMessage": str(exc)}))

        # Python cannot stop a thread: the handler runs in one, and the caller gets Lambda's
        # timeout error at the deadline while the thread runs on unobserved (Lambda would have
        # frozen the environment). Handlers can stop themselves: the context counts down.
        at, started = datetime.now(UTC), time.perf_counter()
        worker = _InvocationThread(self, target=work, name=f"lambda-{name}", daemon=True)
        _capture_stdout()
        worker.start()
        worker.join(timeout_s)
        finished = outcome[0] if outcome else None
        if finished is None:
            worker.stopped = True  # Lambda stopped it: see _stopped_invocations_send_nothing
        payload, error = finished if finished is not None else ("", timed_out_error(request_id, timeout_s))
        self.environments.release(name, version, served_by, reusable=finished is not None)
        record = Invocation(
            name,
            started,
            time.perf_counter() - started,
            error["errorType"] if error else None,
            qualifier=version,
            served_by=served_by,
            cold_start=cold_start,
            at=at,
        )
        with self._lock:
            self.invocations.append(record)
        self._function_wrote(name, request_id, worker.take_lines())
        return payload, error

    # -- logs ---------------------------------------------------------------------------------

    def _function_wrote(self, function: str, request_id: str, lines: list[tuple[datetime, str]]) -> None:
        """A function's stdout as Lambda ships it: each line an event in /aws/lambda/<function>
        (https://docs.aws.amazon.com/lambda/latest/dg/monitoring-cloudwatchlogs.html); EMF
        lines are also the engine's metric lines (CloudWatch reads metrics from them)."""
        records = []
        for at, line in lines:
            if not line.strip():
                continue
            try:
                message: Any = json.loads(line)
            except ValueError:
                message = line
            if isinstance(message, dict) and "_aws" in message:
                with self._lock:
                    self.metric_lines.append(line)
                continue
            records.append(
                {
                    "timestamp": _iso(at),
                    "log_group": f"/aws/lambda/{function}",
                    "source": function,
                    "request_id": request_id,
                    "message": message,
                }
            )
        self._keep_logs(records)

    def _state_machine_logged(self, log_group: str, history_log: dict[str, Any]) -> None:
        """One execution event, as the state machine's Logging configuration sends it."""
        arn = str(history_log.get("execution_arn", ""))
        # As Step Functions writes it: every value JSON (the event type is an enum in moto).
        message = json.loads(json.dumps(history_log, default=_json_value))
        stamp = str(message.get("event_timestamp", ""))
        record = {
            "timestamp": stamp,
            "log_group": log_group,
            "source": arn.split(":")[-2] if arn.count(":") >= 2 else arn,
            "execution_arn": arn,
            "message": message,
        }
        self._keep_logs([record])

    def _keep_logs(self, records: list[dict[str, Any]]) -> None:
        if not records:
            return
        with self._lock:
            self.logs.extend(records)
            if self._log_sink is not None and not self._log_sink.closed:
                for record in records:
                    self._log_sink.write(json.dumps(record, default=str) + "\n")
                self._log_sink.flush()

    @staticmethod
    def served(invocations: list[Invocation]) -> dict[str, int]:
        """How ``invocations`` were served: {provisioned, on_demand, cold_starts}."""
        return {
            "provisioned": sum(1 for i in invocations if i.served_by == "provisioned"),
            "on_demand": sum(1 for i in invocations if i.served_by == "on_demand"),
            "cold_starts": sum(1 for i in invocations if i.cold_start),
        }

    def task_functions(self, machine: str) -> dict[str, str]:
        """Each Lambda Task state of ``machine`` (Parallel and Map branches included) and the
        function it invokes: a plain function ARN as Resource, or lambda:invoke's FunctionName."""
        found: dict[str, str] = {}

        def walk(states: dict[str, Any]) -> None:
            for state_name, state in states.items():
                resource = str(state.get("Resource", ""))
                target = (
                    state.get("Parameters", {}).get("FunctionName")
                    if ":states:::lambda:" in resource
                    else resource
                )
                if state.get("Type") == "Task" and isinstance(target, str) and ":function:" in target:
                    found[state_name] = split_function_arn(target)[0]
                for branch in state.get("Branches", []):
                    walk(branch["States"])
                for key in ("Iterator", "ItemProcessor"):
                    if key in state:
                        walk(state[key]["States"])

        walk(json.loads(self.template.definition(machine))["States"])
        return found

    def clear_table(self, table: str) -> None:
        """Empty a table (tests use it to start from a cold result cache)."""
        dynamodb = self.clients["dynamodb"]
        keys = [k["AttributeName"] for k in self.template.resources[table]["Properties"]["KeySchema"]]
        for page in dynamodb.get_paginator("scan").paginate(TableName=table):
            for item in page["Items"]:
                dynamodb.delete_item(TableName=table, Key={k: item[k] for k in keys})

    def empty_queue(self, queue: str) -> None:
        """Delete every message waiting in ``queue`` (tests start from an empty queue)."""
        sqs, url = self.clients["sqs"], self.template.resolve({"Ref": queue})
        while messages := sqs.receive_message(QueueUrl=url, MaxNumberOfMessages=10, WaitTimeSeconds=0).get(
            "Messages", []
        ):
            for message in messages:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])

    # -- event sources ------------------------------------------------------------------------

    def deliver(self, queue: str, function: str, *, max_messages: int = 10) -> dict[str, Any] | None:
        """One poll of ``queue`` for ``function``, as Lambda's SQS event source does: receive a
        batch, invoke the handler, delete what succeeded. Returns the handler's response (None
        when no message is visible); failed records stay hidden for the queue's VisibilityTimeout
        (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html)
        on the engine's SQS clock (``rules.advance_queue_clock`` lets that time pass), then come
        back, up to the queue's maxReceiveCount, then go to its dead-letter queue."""
        sqs = self.clients["sqs"]
        url = self.template.resolve({"Ref": queue})
        received = sqs.receive_message(
            QueueUrl=url,
            MaxNumberOfMessages=max_messages,
            AttributeNames=["All"],
            MessageAttributeNames=["All"],
            WaitTimeSeconds=0,
        ).get("Messages", [])
        if not received:
            return None
        arn = self.template.resolve({"Fn::GetAtt": [queue, "Arn"]})
        event = {"Records": [_sqs_record(m, arn, self.template.region) for m in received]}
        response: dict[str, Any] = self.call(function, event) or {}
        failed = {f["itemIdentifier"] for f in response.get("batchItemFailures", [])}
        for message in received:
            if message["MessageId"] not in failed:
                sqs.delete_message(QueueUrl=url, ReceiptHandle=message["ReceiptHandle"])
        return response

    def schedules(self) -> dict[str, float]:
        """Functions the template runs on a ``rate(...)`` schedule, with the period in seconds."""
        found: dict[str, float] = {}
        for name, resource in self.template.of_type("AWS::Serverless::Function").items():
            for event in resource["Properties"].get("Events", {}).values():
                period = rate_seconds(str(event.get("Properties", {}).get("Schedule", "")))
                if event["Type"] == "Schedule" and period is not None:
                    found[name] = period
        return found

    def tick(self, function: str) -> Any:
        """Run a scheduled function once, with the event EventBridge sends it."""
        event = {
            "version": "0",
            "id": f"local-{time.monotonic_ns()}",
            "detail-type": "Scheduled Event",
            "source": "aws.events",
            "account": self.template.account,
            "time": datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "region": self.template.region,
            "resources": [f"arn:aws:events:{self.template.region}:{self.template.account}:rule/{function}"],
            "detail": {},
        }
        return self.call(function, event)

    def _stop_everything_running(self, join_s: float = 10.0) -> None:
        """On exit, nothing of this engine may act on the next one: moto's backends are process
        globals, and an execution thread or a timed-out handler left running would write into
        the tables of the engine started after it (a test would find another test's answer in
        its cold result cache). Every running execution is stopped and its thread joined (for at
        most ``join_s``); the handlers still running may send no more requests."""
        from moto.stepfunctions.parser.models import stepfunctions_parser_backends
        from moto.stepfunctions.parser.utils import TMP_THREADS

        with self._lock:
            self.closed = True
        deadline = time.monotonic() + join_s
        for account in list(stepfunctions_parser_backends):
            for backend in list(stepfunctions_parser_backends[account].values()):
                for machine in list(backend.state_machines):
                    for execution in list(machine.executions):
                        _stop_execution(execution, deadline)
        for thread in list(TMP_THREADS):
            if thread is not threading.current_thread():
                thread.join(max(0.0, deadline - time.monotonic()))
        TMP_THREADS[:] = [t for t in TMP_THREADS if t.is_alive()]

    # -- executions ---------------------------------------------------------------------------

    def state_machine_arn(self, logical_id: str) -> str:
        return self.template.state_machine_arn(logical_id)

    def start(self, machine: str, name: str, payload: dict[str, Any]) -> str:
        """Start ``machine`` as the template's callers do: through its alias when it has one."""
        template = self.template
        arn = (
            template.state_machine_alias_arn(machine)
            if template.state_machine_alias(machine) is not None
            else self.state_machine_arn(machine)
        )
        response = self.clients["stepfunctions"].start_execution(
            stateMachineArn=arn, name=name, input=json.dumps(payload)
        )
        return str(response["executionArn"])

    def settle(self, machine: str = "QueryPipelineStateMachine", timeout_s: float = 60.0) -> None:
        """Wait until no execution of ``machine`` is running (before the emulator stops, so no
        execution thread outlives it)."""
        sfn = self.clients["stepfunctions"]
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            running = sfn.list_executions(
                stateMachineArn=self.state_machine_arn(machine), statusFilter="RUNNING"
            )
            if not running["executions"]:
                return
            time.sleep(0.05)

    def execution_arn(self, machine: str, name: str) -> str:
        arn = self.state_machine_arn(machine).replace(":stateMachine:", ":execution:")
        return f"{arn}:{name}"

    def describe(self, execution_arn: str) -> dict[str, Any]:
        description: dict[str, Any] = self.clients["stepfunctions"].describe_execution(
            executionArn=execution_arn
        )
        return description

    def history(self, execution_arn: str) -> list[dict[str, Any]]:
        events: list[dict[str, Any]] = self.clients["stepfunctions"].get_execution_history(
            executionArn=execution_arn, maxResults=1000
        )["events"]
        return events

    def wait(
        self,
        execution_arn: str,
        *,
        timeout_s: float = 600.0,
        on_state: Callable[[StateTrace], None] | None = None,
        poll_s: float = 0.005,
    ) -> dict[str, Any]:
        """Poll until the execution ends; call ``on_state`` as states enter and exit."""
        deadline = time.monotonic() + timeout_s
        seen = 0
        while True:
            description = self.describe(execution_arn)
            if on_state is not None:
                events = self.history(execution_arn)
                for event in events[seen:]:
                    trace = _as_trace(event, execution_arn)
                    if trace is not None:
                        on_state(trace)
                seen = len(events)
            if description["status"] != "RUNNING":
                return description
            if time.monotonic() > deadline:
                raise TimeoutError(f"{execution_arn} still running after {timeout_s:g} s")
            time.sleep(poll_s)

    def trace(self, execution_arn: str) -> list[StateTrace]:
        """Per-state timings from the execution history (entered -> exited)."""
        machine = execution_arn.split(":")[-2]
        open_states: dict[str, StateTrace] = {}
        traces: list[StateTrace] = []
        for event in self.history(execution_arn):
            entered = event.get("stateEnteredEventDetails")
            exited = event.get("stateExitedEventDetails")
            if entered:
                trace = StateTrace(entered["name"], machine, event["timestamp"])
                open_states[entered["name"]] = trace
                traces.append(trace)
            elif exited and exited["name"] in open_states:
                open_states.pop(exited["name"]).ended_at = event["timestamp"]
        return traces


def _sqs_record(message: dict[str, Any], queue_arn: str, region: str) -> dict[str, Any]:
    """An SQS message as Lambda's event source hands it to a function."""
    attributes = {
        name: {
            "stringValue": value["StringValue"],
            "stringListValues": [],
            "binaryListValues": [],
            "dataType": value["DataType"],
        }
        for name, value in message.get("MessageAttributes", {}).items()
        if "StringValue" in value
    }
    return {
        "messageId": message["MessageId"],
        "receiptHandle": message["ReceiptHandle"],
        "body": message["Body"],
        "attributes": message.get("Attributes", {}),
        "messageAttributes": attributes,
        "md5OfBody": message.get("MD5OfBody", ""),
        "eventSource": "aws:sqs",
        "eventSourceARN": queue_arn,
        "awsRegion": region,
    }


@dataclass
class HookVerdicts:
    """CodeDeploy's side of a lifecycle hook, which moto lacks: the engine records what a
    pre-traffic hook reports instead of running a deployment (docs/deploy.md says what the local
    engine does not simulate). Refuses what PutLifecycleEventHookExecutionStatus refuses: a
    missing id or a status other than Succeeded or Failed.
    https://docs.aws.amazon.com/codedeploy/latest/APIReference/API_PutLifecycleEventHookExecutionStatus.html"""

    reported: list[dict[str, str]] = field(default_factory=list)

    def put_lifecycle_event_hook_execution_status(self, **kwargs: str) -> dict[str, str]:
        execution_id = kwargs.get("lifecycleEventHookExecutionId")
        if not kwargs.get("deploymentId") or not execution_id:
            raise ValueError(
                "PutLifecycleEventHookExecutionStatus needs deploymentId and lifecycleEventHookExecutionId"
            )
        if kwargs.get("status") not in ("Succeeded", "Failed"):
            raise ValueError(
                f"PutLifecycleEventHookExecutionStatus: status {kwargs.get('status')!r} "
                "is not Succeeded or Failed"
            )
        self.reported.append(dict(kwargs))
        return {"lifecycleEventHookExecutionId": execution_id}


class _InvocationThread(threading.Thread):
    """The thread a handler runs in, tied to its engine; what it writes to stdout is its own."""

    def __init__(self, engine: LocalEngine, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.engine = engine
        self.stopped = False  # set when Lambda would have stopped the invocation (its timeout)
        self._lines: list[tuple[datetime, str]] = []
        self._partial = ""
        self._written = threading.Lock()

    def write(self, text: str) -> None:
        """Lines as they complete, each stamped when written (print writes the newline apart)."""
        with self._written:
            *done, self._partial = (self._partial + text).split("\n")
            now = datetime.now(UTC)
            self._lines.extend((now, line) for line in done)

    def take_lines(self) -> list[tuple[datetime, str]]:
        """The lines written so far (and a last one without its newline), handed over once."""
        with self._written:
            lines, self._lines = self._lines, []
            if self._partial:
                lines.append((datetime.now(UTC), self._partial))
                self._partial = ""
            return lines


class _InvocationStdout:
    """sys.stdout while an engine runs: a handler's thread writes into its invocation (in
    Lambda each function's stdout is its own log stream); every other thread writes through to
    the stream this one replaced (the command's own output, or a test's capture)."""

    def __init__(self, underlying: Any) -> None:
        self.underlying = underlying

    def write(self, text: str) -> int:
        thread = threading.current_thread()
        if isinstance(thread, _InvocationThread):
            thread.write(text)
            return len(text)
        written: int = self.underlying.write(text)
        return written

    def flush(self) -> None:
        if not isinstance(threading.current_thread(), _InvocationThread):
            self.underlying.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.underlying, name)


_STDOUT_LOCK = threading.Lock()


def _capture_stdout() -> None:
    """Put the per-invocation stdout in place if it is not (something may have replaced
    sys.stdout since the last invocation: a test framework's capture between tests, say)."""
    with _STDOUT_LOCK:
        if not isinstance(sys.stdout, _InvocationStdout):
            sys.stdout = _InvocationStdout(sys.stdout)


def _release_stdout() -> None:
    with _STDOUT_LOCK:
        if isinstance(sys.stdout, _InvocationStdout):
            sys.stdout = sys.stdout.underlying


def _logging_configuration(logging: dict[str, Any] | None) -> dict[str, Any] | None:
    """A SAM state machine's ``Logging`` as CreateStateMachine's loggingConfiguration
    (https://docs.aws.amazon.com/step-functions/latest/apireference/API_LoggingConfiguration.html)."""
    if not logging:
        return None
    return {
        "level": logging.get("Level", "OFF"),
        "includeExecutionData": bool(logging.get("IncludeExecutionData", False)),
        "destinations": [
            {"cloudWatchLogsLogGroup": {"logGroupArn": d["CloudWatchLogsLogGroup"]["LogGroupArn"]}}
            for d in logging.get("Destinations", [])
        ],
    }


# What a logged execution event leaves out when IncludeExecutionData is false.
_EXECUTION_DATA = frozenset({"input", "inputDetails", "output", "outputDetails", "parameters"})


def _state_machine_logs_reach(stack: ExitStack, engine: LocalEngine) -> None:
    """A state machine with a ``Logging`` configuration sends its execution events to its log
    group, as AWS does (https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html),
    execution data (input, output) left out unless IncludeExecutionData: moto's interpreter
    builds each event so; the engine keeps them beside the functions' lines."""
    from moto.stepfunctions.parser import models as parser_models
    from moto.stepfunctions.parser.asl.eval.event.logging import (
        CloudWatchLoggingConfiguration,
        CloudWatchLoggingSession,
    )

    # moto's interpreter can log executions, but its backend starts every execution without a
    # logging session: the engine gives one to each execution of a machine that logs.
    from moto.stepfunctions.parser.backend.execution import Execution

    class LoggedExecution(Execution):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            machine = kwargs.get("state_machine")
            if kwargs.get("cloud_watch_logging_session") is None and machine is not None:
                configuration = CloudWatchLoggingConfiguration.from_logging_configuration(
                    state_machine_arn=machine.arn, logging_configuration=machine.loggingConfiguration
                )
                if configuration is not None:
                    kwargs["cloud_watch_logging_session"] = CloudWatchLoggingSession(
                        execution_arn=kwargs["exec_arn"], configuration=configuration
                    )
            super().__init__(*args, **kwargs)

    setattr(parser_models, "Execution", LoggedExecution)  # noqa: B010 - not re-exported by moto
    stack.callback(setattr, parser_models, "Execution", Execution)

    def publish(session: CloudWatchLoggingSession, history_log: Any) -> None:
        # Kept by the engine, not moto's log store: moto 5.2.5's own delivery fails on the
        # timestamp it was handed (already text), and nothing reads the store.
        record = dict(history_log)
        details = record.get("details")
        if isinstance(details, dict) and not session.configuration.include_execution_data:
            # "When set to false, data is excluded": a task's parameters are its input (the
            # question, the synthesis), which moto keeps; the engine drops them as AWS does.
            # https://docs.aws.amazon.com/step-functions/latest/apireference/API_LoggingConfiguration.html
            record["details"] = {k: v for k, v in details.items() if k not in _EXECUTION_DATA}
        engine._state_machine_logged(session.configuration.log_group_name, record)

    original = CloudWatchLoggingSession.publish_history_log
    CloudWatchLoggingSession.publish_history_log = publish  # type: ignore[method-assign,assignment]
    stack.callback(setattr, CloudWatchLoggingSession, "publish_history_log", original)


class LambdaEnvironmentStoppedError(RuntimeError):
    """A request from a handler Lambda has already stopped."""


def _stopped_invocations_send_nothing(stack: ExitStack) -> None:
    """Lambda "allows a function to run" for its Timeout "before stopping it", and "if the
    Lambda function crashes or times out during the Invoke phase, Lambda resets the execution
    environment": nothing the invocation had still to do happens.
    https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html#lambda-CreateFunction-request-Timeout
    https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html#runtimes-lifecycle-invoke-with-errors
    Python cannot stop the handler's thread, so the engine stops what it could change: an AWS
    request from a timed-out invocation (or from any invocation of an engine that has stopped)
    is refused before moto sees it. A thread the handler started itself is not followed."""
    from moto.core.botocore_stubber import BotocoreStubber

    original = BotocoreStubber.__call__

    def send(stubber: Any, event_name: str, request: Any, **kwargs: Any) -> Any:
        thread = threading.current_thread()
        if isinstance(thread, _InvocationThread) and (thread.stopped or thread.engine.closed):
            raise LambdaEnvironmentStoppedError(
                f"{thread.name}: Lambda stopped this invocation (it ran past its timeout, or the "
                f"engine stopped); its request {event_name.rpartition('before-send.')[2]} was not sent"
            )
        return original(stubber, event_name, request, **kwargs)

    BotocoreStubber.__call__ = send  # type: ignore[method-assign,assignment]
    stack.callback(setattr, BotocoreStubber, "__call__", original)


def _stop_execution(execution: Any, deadline: float) -> None:
    """Stop a running moto execution; a task waiting for its token wakes, sees the stop and
    returns."""
    worker = getattr(execution, "exec_worker", None)
    # A just-started execution has no evaluation environment yet: it has one shortly.
    while worker is not None and worker.env is None and time.monotonic() < deadline:
        time.sleep(0.005)
    if execution.status != "RUNNING" or worker is None or worker.env is None:
        return
    execution.stop(stop_date=datetime.now(UTC), error="EngineStopped", cause="the local engine stopped")
    for endpoint in list(worker.env.callback_pool_manager._pool.values()):
        endpoint.interrupt_all()


def _reuse_task_clients(stack: ExitStack) -> None:
    """moto's interpreter builds a new boto3 client for every Lambda task (milliseconds each,
    which the local engine would add to every state); one client per region serves them all."""
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import lambda_eval_utils

    original = getattr(lambda_eval_utils, "boto_client_for")  # noqa: B009 - not re-exported by moto
    cache: dict[tuple[str, str], Any] = {}
    lock = threading.Lock()

    def cached(region: str, service: str, state_credentials: Any = None) -> Any:
        with lock:
            if (region, service) not in cache:
                cache[(region, service)] = original(region, service, state_credentials)
            return cache[(region, service)]

    setattr(lambda_eval_utils, "boto_client_for", cached)  # noqa: B010
    stack.callback(setattr, lambda_eval_utils, "boto_client_for", original)


def _honour_early_outcomes(stack: ExitStack) -> None:
    """moto starts watching a waiting task's heartbeats only once the Lambda that received the
    token has returned. A decision sent before that (the notifier has already stored the token,
    so a fast reviewer or a test can) is kept, but the watch then waits a whole heartbeat
    interval for a signal that came earlier and reports a heartbeat timeout. AWS takes a token's
    outcome at any time; so does the engine: a watch set up after an outcome starts signalled."""
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint, HeartbeatEndpoint

    original = CallbackEndpoint.setup_heartbeat_endpoint

    def setup(self: CallbackEndpoint, heartbeat_seconds: int) -> HeartbeatEndpoint:
        endpoint = original(self, heartbeat_seconds=heartbeat_seconds)
        if self.get_outcome() is not None:
            endpoint.notify()  # type: ignore[no-untyped-call]
        return endpoint

    CallbackEndpoint.setup_heartbeat_endpoint = setup  # type: ignore[method-assign]
    stack.callback(setattr, CallbackEndpoint, "setup_heartbeat_endpoint", original)

    # The same for an invocation that fails after its task was answered (a NotifyReview that ran
    # out of time once the reviewers had been told and one had decided): moto fails the attempt
    # and retries it, so the answer is lost and the review waits for a decision already taken.
    # For AWS the answer closed the task (a later callback on its token answers TaskTimedOut:
    # https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html),
    # so the state goes on with that answer and the invocation's failure changes nothing.
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import (
        state_task_service_lambda as lambda_task,
    )

    task_class = lambda_task.StateTaskServiceLambda

    invoke = task_class._eval_service_task

    def answered_before_failing(self: Any, env: Any, *args: Any, **kwargs: Any) -> None:
        try:
            invoke(self, env, *args, **kwargs)
        except Exception:
            task = env.states.context_object.context_object_data.get("Task")
            endpoint = env.callback_pool_manager.get(task["Token"]) if task else None
            if endpoint is None or endpoint.get_outcome() is None:
                raise
            env.stack.append({})  # the invocation's result, which a callback task discards

    task_class._eval_service_task = answered_before_failing  # type: ignore[method-assign]
    stack.callback(setattr, task_class, "_eval_service_task", invoke)


def _reuse_parse_trees(stack: ExitStack) -> None:
    """moto lexes and parses the whole ASL (a pure-Python ANTLR grammar, ~30 ms) at every
    execution start. The parse tree of a definition never changes, so keep it and rebuild only
    the evaluation components from it, fresh for each execution (they hold execution state)."""
    from moto.stepfunctions.parser.asl.parse import asl_parser
    from moto.stepfunctions.parser.asl.parse.preprocessor import Preprocessor

    original = asl_parser.AmazonStateLanguageParser.parse
    trees: dict[str, Any] = {}
    lock = threading.Lock()

    def parse(definition: str) -> tuple[Any, Any]:
        with lock:
            tree = trees.get(definition)
        if tree is None:
            program, tree = original(definition)
            with lock:
                trees[definition] = tree
            return program, tree
        return Preprocessor().visit(tree), tree

    asl_parser.AmazonStateLanguageParser.parse = staticmethod(parse)  # type: ignore[method-assign]
    stack.callback(setattr, asl_parser.AmazonStateLanguageParser, "parse", staticmethod(original))


def _as_trace(event: dict[str, Any], execution_arn: str) -> StateTrace | None:
    machine = execution_arn.split(":")[-2]
    if "stateEnteredEventDetails" in event:
        return StateTrace(event["stateEnteredEventDetails"]["name"], machine, event["timestamp"])
    if "stateExitedEventDetails" in event:
        name = event["stateExitedEventDetails"]["name"]
        return StateTrace(name, machine, event["timestamp"], event["timestamp"])
    return None


def _iso(at: datetime) -> str:
    """UTC to the millisecond, as Step Functions stamps its events: 2026-12-02T05:55:43.872Z."""
    return at.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _json_value(value: Any) -> Any:
    if isinstance(value, datetime):
        return _iso(value)
    return getattr(value, "value", str(value))


def _utc_now() -> datetime:
    return datetime.now(UTC)


def _import_handler(path: str) -> Handler:
    module_name, _, attribute = path.rpartition(".")
    try:
        handler: Handler = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as exc:
        raise TemplateError(f"handler {path!r} cannot be imported: {exc}") from exc
    return handler


def _restore_env(saved: dict[str, str | None]) -> None:
    for key, value in saved.items():
        if value is None:
            os.environ.pop(key, None)
        else:
            os.environ[key] = value


def find_template(start: Path | None = None) -> Path:
    """The project's template.yaml: from ``PANELBRAIN_TEMPLATE``, else the nearest ancestor."""
    configured = os.environ.get("PANELBRAIN_TEMPLATE")
    if configured:
        return Path(configured)
    here = (start or Path.cwd()).resolve()
    for folder in (here, *here.parents):
        candidate = folder / "template.yaml"
        if candidate.is_file():
            return candidate
    package_root = Path(__file__).resolve().parents[3]
    if (package_root / "template.yaml").is_file():
        return package_root / "template.yaml"
    raise TemplateError("no template.yaml found: run from the project folder or set PANELBRAIN_TEMPLATE")
