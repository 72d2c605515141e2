"""Lambda's invocation rules that moto does not model, read from the template.

The local engine (``engine.py``) asks this module, for every invocation:

- whether the function was invoked the way its event sources are allowed to invoke it (SAM's
  ``AutoPublishAlias`` puts provisioned concurrency and every permission on the alias);
- whether a provisioned instance of the alias is free at the engine's clock, from the
  ``AWS::ApplicationAutoScaling::ScalableTarget`` and its scheduled actions, or the invocation
  runs on demand, cold the first time;
- how long the handler may run (the function's ``Timeout``) and what the caller gets past it.

Each rule cites the AWS documentation it follows; moto accepts all of these without complaint.
"""

from __future__ import annotations

import re
import threading
from collections import Counter
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from panelbrain.errors import PanelbrainError
from panelbrain.local.template import LOCAL_VERSION, Template, TemplateError

ServedBy = Literal["provisioned", "on_demand"]
LATEST = "$LATEST"

# Lambda's default when a function sets no Timeout (CreateFunction: "The default is 3 seconds").
# https://docs.aws.amazon.com/lambda/latest/api/API_CreateFunction.html
DEFAULT_TIMEOUT_S = 3.0
DEFAULT_MEMORY_MB = 128


class LambdaFunctionError(PanelbrainError):
    """A function invoked through the engine returned Lambda's error payload."""

    def __init__(self, function: str, error_type: str, error_message: str) -> None:
        super().__init__(f"{function} failed: {error_type}: {error_message}", function=function)
        self.error_type = error_type
        self.error_message = error_message


class UnqualifiedInvocationError(PanelbrainError):
    """A function with an alias was invoked by its unqualified ARN (strict mode refuses it)."""


class ApiIntegrationError(PanelbrainError):
    """API Gateway cannot invoke the integration's function; answered with ``status``."""

    def __init__(self, message: str, status: int = 500) -> None:
        super().__init__(message, status=status)
        self.status = status


# -- 1. the qualifier ---------------------------------------------------------------------------


def split_function_arn(name_or_arn: str, qualifier: str | None = None) -> tuple[str, str | None]:
    """``arn:aws:lambda:<region>:<account>:function:<name>[:<qualifier>]`` (or a bare name, with
    the qualifier given apart, as the Invoke API's ``Qualifier`` parameter) -> (name, qualifier)."""
    if name_or_arn.startswith("arn:"):
        parts = name_or_arn.split(":")
        return parts[6], parts[7] if len(parts) > 7 else qualifier
    name, _, own = name_or_arn.partition(":")
    return name, own or qualifier


def unqualified_problem(template: Template, function: str, qualifier: str | None) -> str | None:
    """What AWS does with an invocation of a function that has an alias, when the invocation
    names no alias (the unqualified ARN, or ``$LATEST``); None when it names the alias.

    SAM's ``AutoPublishAlias`` publishes a version, points the alias at it, and connects the
    event sources to the alias
    (https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-specification-generated-resources-function.html).
    Provisioned concurrency exists only on a version or alias, never on ``$LATEST``
    (https://docs.aws.amazon.com/lambda/latest/dg/provisioned-concurrency.html,
    https://docs.aws.amazon.com/lambda/latest/operatorguide/application-design-faq.html):
    an unqualified invocation runs ``$LATEST`` on demand while the alias's instances idle."""
    alias = template.alias(function)
    if alias is None or qualifier not in (None, LATEST):
        return None
    return (
        f"{function} was invoked by its unqualified ARN ({template.function_arn(function)}): in AWS "
        f"that runs $LATEST on demand, with cold starts, while the provisioned instances on alias "
        f"{alias!r} idle and are billed. Invoke {template.alias_arn(function)} instead "
        f"(in the template: !Ref {function}.Alias, or ${{{function}.Alias}} inside !Sub)."
    )


def unknown_qualifier(template: Template, function: str, qualifier: str | None) -> str | None:
    """An alias or version the template does not create: Lambda answers ResourceNotFoundException.
    AutoPublishAlias publishes one version locally (``!Ref Fn.Version``, which the pre-traffic
    hook invokes), so that version exists too."""
    alias = template.alias(function)
    if qualifier in (None, LATEST, alias) or (alias is not None and qualifier == LOCAL_VERSION):
        return None
    return (
        f"Function not found: {template.function_arn(function)}:{qualifier} (the template creates "
        f"only alias {alias!r} and version {LOCAL_VERSION} of {function})"
    )


# -- 2. provisioned concurrency on a schedule ---------------------------------------------------

_MONTHS = {
    m: i
    for i, m in enumerate(
        ("JAN", "FEB", "MAR", "APR", "MAY", "JUN", "JUL", "AUG", "SEP", "OCT", "NOV", "DEC"), 1
    )
}
_DAYS = {d: i for i, d in enumerate(("SUN", "MON", "TUE", "WED", "THU", "FRI", "SAT"), 1)}


def _field(text: str, low: int, high: int, names: dict[str, int], what: str) -> frozenset[int] | None:
    """One cron field as the set of values it allows (None: any, from ``*`` or ``?``)."""
    if text in ("*", "?"):
        return None
    values: set[int] = set()
    for part in text.split(","):
        match = re.fullmatch(r"(\*|[A-Z0-9]+)(?:-([A-Z0-9]+))?(?:/(\d+))?", part.upper())
        if match is None:
            raise TemplateError(
                f"cron {what} field {text!r}: the local engine reads numbers, names, ranges, lists "
                "and steps (L, W and # are not supported)"
            )
        first, last, step = match.groups()

        def value(token: str) -> int:
            number = names.get(token) if not token.isdigit() else int(token)
            if number is None or not low <= number <= high:
                raise TemplateError(f"cron {what} field {text!r}: {token} is not in {low}-{high}")
            return number

        start = low if first == "*" else value(first)
        end = high if first == "*" or (step and last is None) else value(last) if last else start
        if end < start:
            # A range that wraps (FRI-MON) would otherwise allow nothing, silently.
            raise TemplateError(
                f"cron {what} field {text!r}: the range {first}-{last} runs backwards; the local "
                "engine does not wrap ranges: write it as two (e.g. FRI-SAT,SUN-MON)"
            )
        values.update(range(start, end + 1, int(step) if step else 1))
    return frozenset(values)


@dataclass(frozen=True)
class Cron:
    """An Application Auto Scaling schedule: ``cron(minutes hours day-of-month month day-of-week
    year)``, day-of-week 1-7 from Sunday, evaluated in the action's time zone; or ``at(...)``
    (https://docs.aws.amazon.com/autoscaling/application/userguide/scheduled-scaling-using-cron-expressions.html)."""

    expression: str
    minutes: frozenset[int] | None
    hours: frozenset[int] | None
    days: frozenset[int] | None
    months: frozenset[int] | None
    weekdays: frozenset[int] | None
    years: frozenset[int] | None
    once: datetime | None = None

    @classmethod
    def parse(cls, expression: str) -> Cron:
        at = re.fullmatch(r"at\((\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d)\)", expression.strip())
        if at:
            once = datetime.fromisoformat(at.group(1))
            return cls(expression, None, None, None, None, None, None, once)
        match = re.fullmatch(r"cron\(([^)]*)\)", expression.strip())
        fields = match.group(1).split() if match else []
        if len(fields) != 6:
            raise TemplateError(
                f"schedule {expression!r}: the local engine reads cron(minutes hours day-of-month "
                "month day-of-week year) and at(yyyy-mm-ddThh:mm:ss) (rate() has no fixed times)"
            )
        minute, hour, day, month, weekday, year = fields
        return cls(
            expression,
            _field(minute, 0, 59, {}, "minutes"),
            _field(hour, 0, 23, {}, "hours"),
            _field(day, 1, 31, {}, "day-of-month"),
            _field(month, 1, 12, _MONTHS, "month"),
            _field(weekday, 1, 7, _DAYS, "day-of-week"),
            _field(year, 1970, 2199, {}, "year"),
        )

    def _day_matches(self, day: datetime) -> bool:
        aws_weekday = (day.weekday() + 1) % 7 + 1  # Python: Monday 0; AWS cron: Sunday 1
        return (
            (self.days is None or day.day in self.days)
            and (self.months is None or day.month in self.months)
            and (self.weekdays is None or aws_weekday in self.weekdays)
            and (self.years is None or day.year in self.years)
        )

    def last_at_or_before(self, local: datetime, *, horizon_days: int = 400) -> datetime | None:
        """The latest time this schedule fired at or before ``local`` (a wall-clock time in the
        schedule's zone), looking back ``horizon_days``; None if it never did."""
        if self.once is not None:
            once = self.once.replace(tzinfo=local.tzinfo)
            return once if once <= local else None
        hours = sorted(self.hours if self.hours is not None else range(24), reverse=True)
        minutes = sorted(self.minutes if self.minutes is not None else range(60), reverse=True)
        for back in range(horizon_days + 1):
            day = local - timedelta(days=back)
            if not self._day_matches(day):
                continue
            for hour in hours:
                for minute in minutes:
                    fired = day.replace(hour=hour, minute=minute, second=0, microsecond=0)
                    if fired <= local:
                        return fired
        return None


@dataclass(frozen=True)
class ScheduledAction:
    name: str
    schedule: Cron
    zone: ZoneInfo
    min_capacity: int | None
    max_capacity: int | None


@dataclass(frozen=True)
class ProvisionedTarget:
    """One ``lambda:function:ProvisionedConcurrency`` scalable target and its schedule."""

    function: str
    alias: str
    min_capacity: int
    max_capacity: int
    actions: tuple[ScheduledAction, ...]

    def capacity_at(self, when: datetime) -> int:
        """Provisioned instances on the alias at ``when``: the minimum the latest scheduled action
        set (the target's own minimum before any fired), within its maximum. A scheduled action
        sets the target's minimum and maximum; Application Auto Scaling then keeps the capacity
        inside them (https://docs.aws.amazon.com/autoscaling/application/userguide/application-auto-scaling-scheduled-scaling.html).
        Target tracking above the minimum needs CloudWatch traffic the engine does not have:
        locally the capacity is the scheduled minimum."""
        latest: tuple[datetime, ScheduledAction] | None = None
        for action in self.actions:
            fired = action.schedule.last_at_or_before(when.astimezone(action.zone))
            if fired is not None and (latest is None or fired > latest[0]):
                latest = (fired, action)
        low, high = self.min_capacity, self.max_capacity
        if latest is not None:
            action = latest[1]
            low = action.min_capacity if action.min_capacity is not None else low
            high = action.max_capacity if action.max_capacity is not None else high
        return max(0, min(low, high))


def provisioned_targets(template: Template) -> dict[str, ProvisionedTarget]:
    """The template's provisioned-concurrency targets, by function logical id."""
    targets: dict[str, ProvisionedTarget] = {}
    for name, resource in template.of_type("AWS::ApplicationAutoScaling::ScalableTarget").items():
        props = resource.get("Properties", {})
        if props.get("ScalableDimension") != "lambda:function:ProvisionedConcurrency":
            continue
        resource_id = str(template.resolve(props["ResourceId"]))
        match = re.fullmatch(r"function:([^:]+):([^:]+)", resource_id)
        if match is None:
            raise TemplateError(f"{name}: ResourceId {resource_id!r} is not function:<name>:<alias>")
        function, alias = match.groups()
        actions = []
        for action in props.get("ScheduledActions", []):
            zone_name = str(template.resolve(action.get("Timezone", "UTC")))
            try:
                zone = ZoneInfo(zone_name)
            except (ZoneInfoNotFoundError, ValueError):
                raise TemplateError(
                    f"{name}: scheduled action {action.get('ScheduledActionName')!r} has time zone "
                    f"{zone_name!r}, which is not an IANA time zone (e.g. Europe/London)"
                ) from None
            limits = action.get("ScalableTargetAction", {})
            actions.append(
                ScheduledAction(
                    str(action.get("ScheduledActionName", "")),
                    Cron.parse(str(template.resolve(action["Schedule"]))),
                    zone,
                    int(limits["MinCapacity"]) if "MinCapacity" in limits else None,
                    int(limits["MaxCapacity"]) if "MaxCapacity" in limits else None,
                )
            )
        targets[function] = ProvisionedTarget(
            function, alias, int(props["MinCapacity"]), int(props["MaxCapacity"]), tuple(actions)
        )
    return targets


@dataclass
class ExecutionEnvironments:
    """Which execution environment serves each invocation, as Lambda chooses.

    An invocation of an alias with provisioned concurrency takes a free provisioned instance;
    when all are busy it spills over to on-demand concurrency
    (https://docs.aws.amazon.com/lambda/latest/dg/provisioned-concurrency.html). An on-demand
    invocation reuses an idle environment of the same version if there is one (warm), else
    Lambda initialises a new one (a cold start)
    (https://docs.aws.amazon.com/lambda/latest/dg/lambda-runtime-environment.html)."""

    busy_provisioned: Counter[tuple[str, str]] = field(default_factory=Counter)
    idle_on_demand: Counter[tuple[str, str]] = field(default_factory=Counter)
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def acquire(self, function: str, version: str, provisioned: int) -> tuple[ServedBy, bool]:
        """Take an environment for one invocation: (served by, cold start)."""
        key = (function, version)
        with self._lock:
            if self.busy_provisioned[key] < provisioned:
                self.busy_provisioned[key] += 1
                return "provisioned", False
            if self.idle_on_demand[key] > 0:
                self.idle_on_demand[key] -= 1
                return "on_demand", False
            return "on_demand", True

    def release(self, function: str, version: str, served_by: ServedBy, *, reusable: bool) -> None:
        """Give the environment back; one whose invocation timed out is not reused (Lambda
        resets it), so the next on-demand invocation there starts cold."""
        key = (function, version)
        with self._lock:
            if served_by == "provisioned":
                self.busy_provisioned[key] -= 1
            elif reusable:
                self.idle_on_demand[key] += 1


# -- 3. the function's timeout ------------------------------------------------------------------


def function_setting(template: Template, function: str, key: str, default: Any) -> Any:
    """A function property, else the template's ``Globals.Function`` value, else Lambda's default."""
    own = template.resources[function].get("Properties", {}).get(key)
    if own is not None:
        return template.resolve(own)
    inherited = template.body.get("Globals", {}).get("Function", {}).get(key)
    return template.resolve(inherited) if inherited is not None else default


def timed_out_error(request_id: str, timeout_s: float) -> dict[str, str]:
    """What the Invoke API returns for a function stopped at its timeout: ``FunctionError:
    Unhandled`` and this payload. Current runtimes report ``errorType: Sandbox.Timedout``
    (https://docs.aws.amazon.com/lambda/latest/dg/troubleshooting-invocation.html#troubleshooting-timeouts);
    Step Functions takes the payload's errorType as the error name, so Retry/Catch see
    ``Sandbox.Timedout`` (older runtimes sent no errorType, reported as ``Lambda.Unknown``:
    https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html), which
    ``States.ALL`` and ``States.TaskFailed`` match. It is not ``States.Timeout``: that is the
    Task's own TimeoutSeconds."""
    return {
        "errorType": "Sandbox.Timedout",
        "errorMessage": f"RequestId: {request_id} Error: Task timed out after {timeout_s:.2f} seconds",
    }


# -- API Gateway integrations -------------------------------------------------------------------


@dataclass(frozen=True)
class Integration:
    api: str
    method: str
    resource: str  # the OpenAPI path, e.g. /queries/{query_id}
    uri: str
    function: str
    qualifier: str | None


def api_integration(template: Template, method: str, path: str) -> Integration | None:
    """The Lambda proxy integration API Gateway would call for ``method path``, read from the
    OpenAPI ``DefinitionBody`` of the template's APIs (None when no API declares the route)."""
    for api, resource in template.of_type("AWS::Serverless::Api").items():
        paths = resource.get("Properties", {}).get("DefinitionBody", {}).get("paths", {})
        for openapi_path, operations in paths.items():
            pattern = re.sub(r"\\\{[^}]+\\\}", "[^/]+", re.escape(openapi_path))
            operation = operations.get(method.lower()) if re.fullmatch(pattern, path) else None
            integration = (operation or {}).get("x-amazon-apigateway-integration")
            if not integration:
                continue
            uri = str(template.resolve(integration["uri"]))
            found = re.search(r":lambda:path/[^/]+/functions/(.+)/invocations$", uri)
            if found is None:
                raise TemplateError(f"{api} {method} {openapi_path}: {uri!r} is not a Lambda integration URI")
            function, qualifier = split_function_arn(found.group(1))
            return Integration(api, method.upper(), openapi_path, uri, function, qualifier)
    return None


def api_routes(template: Template) -> list[tuple[str, str, str]]:
    """Every Lambda route of the template's APIs as (METHOD, OpenAPI path, function), in the
    template's order: what ``sam local start-api`` mounts."""
    routes = []
    for resource in template.of_type("AWS::Serverless::Api").values():
        paths = resource.get("Properties", {}).get("DefinitionBody", {}).get("paths", {})
        for openapi_path, operations in paths.items():
            for method in operations:
                integration = api_integration(template, method.upper(), openapi_path)
                if integration is not None and integration.resource == openapi_path:
                    routes.append((method.upper(), openapi_path, integration.function))
    return routes


def integration_problem(template: Template, integration: Integration) -> str | None:
    """API Gateway may invoke only what the function's resource policy allows. SAM grants API
    Gateway ``lambda:InvokeFunction`` on the alias when the function has one; invoking the
    unqualified function is then a permission error
    (https://docs.aws.amazon.com/lambda/latest/dg/using-aliases.html), which API Gateway answers
    with 500 Internal server error ("Execution failed due to configuration error: Invalid
    permissions on Lambda function",
    https://repost.aws/knowledge-center/api-gateway-rest-api-lambda-integrations)."""
    alias = template.alias(integration.function)
    if alias is None or integration.qualifier == alias:
        return None
    return (
        f"{integration.api} {integration.method} {integration.resource}: the integration URI invokes "
        f"{integration.function} unqualified ({integration.uri}), but SAM's AutoPublishAlias gives API "
        f"Gateway permission on alias {alias!r} only; API Gateway answers 500 (Invalid permissions on "
        f"Lambda function). Build the URI from ${{{integration.function}.Alias}}, not "
        f"${{{integration.function}.Arn}}."
    )
