"""The production checklist: AWS's documented rules that cfn-lint, sam validate and moto do not hold.

Each :class:`Rule` checks one deployment (:class:`~panelbrain.ops.stack.Deployment`: SAM's output
for one set of parameter values, with the ASL as Step Functions receives it) and returns findings
that name the resource or state and what to do. :func:`run` checks every deployment (the defaults
under both ``ApiAuth`` modes and each ``samconfig.toml`` environment); ``panelbrain check`` prints
the result and ``docs/production-checklist.md`` lists the rules with their AWS sources.
Why Python over cfn-lint custom rules: docs/adr/0012-production-checklist.md.
"""

from __future__ import annotations

import fnmatch
import importlib.util
import math
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from panelbrain.local.aws_rules import policy_type_refused
from panelbrain.local.template import rate_seconds
from panelbrain.ops.stack import REFERENCE, Deployment, Machine, Source, render

# Express executions stop at 5 minutes, uncaught, so nothing persists the query
# (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-standard-vs-express.html).
EXPRESS_LIMIT_S = 300
# 30 s (10 %) below the limit: the worst case counts TimeoutSeconds, retries and backoff, but not
# state transitions, Lambda invocation overhead outside a Task's timer, or the next person adding
# a state or a retry; a budget at the limit would be crossed by the first such change, silently.
EXPRESS_BUDGET_S = 270

# AWS's recommended Retry for transient Lambda service errors, all four names
# (https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html).
LAMBDA_SERVICE_ERRORS = (
    "Lambda.ClientExecutionTimeoutException",
    "Lambda.ServiceException",
    "Lambda.AWSLambdaException",
    "Lambda.SdkClientException",
)
_MATCH_ALL = {"States.ALL", "States.TaskFailed"}

# The function that writes a query's terminal status: every path ends in a Task invoking it.
PERSIST_FUNCTIONS = frozenset({"PersistFunction"})

# A task-token state's TimeoutSecondsPath / HeartbeatSecondsPath read the workflow input, which
# the function that starts the workflow (panelbrain.functions.start_review) builds from these
# environment variables; the template feeds each from a parameter.
TOKEN_PATH_ENVIRONMENT = {
    "$.settings.timeout_s": "REVIEW_TIMEOUT_S",
    "$.settings.heartbeat_s": "REVIEW_HEARTBEAT_S",
}

# Actions AWS authorises only on Resource "*": the service defines no resource type for them.
_SFN_AUTHZ = "https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsstepfunctions.html"
_XRAY_AUTHZ = "https://docs.aws.amazon.com/service-authorization/latest/reference/list_awsx-ray.html"
_SFN_LOGS = "https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html"
WILDCARD_RESOURCE_ACTIONS = {
    # A task token names no resource: the token is the capability.
    "states:SendTaskSuccess": _SFN_AUTHZ,
    "states:SendTaskFailure": _SFN_AUTHZ,
    "states:SendTaskHeartbeat": _SFN_AUTHZ,
    "xray:PutTraceSegments": _XRAY_AUTHZ,
    "xray:PutTelemetryRecords": _XRAY_AUTHZ,
    # Step Functions' execution logging goes through CloudWatch Logs' vended-log delivery.
    "logs:CreateLogDelivery": _SFN_LOGS,
    "logs:GetLogDelivery": _SFN_LOGS,
    "logs:UpdateLogDelivery": _SFN_LOGS,
    "logs:DeleteLogDelivery": _SFN_LOGS,
    "logs:ListLogDeliveries": _SFN_LOGS,
    "logs:PutResourcePolicy": _SFN_LOGS,
    "logs:DescribeResourcePolicies": _SFN_LOGS,
    "logs:DescribeLogGroups": _SFN_LOGS,
}


_RUNBOOK = re.compile(r"docs/runbooks/([A-Za-z0-9_.-]+\.md)")


@dataclass(frozen=True)
class Rule:
    id: str
    title: str
    why: str
    source: str
    check: Callable[[Deployment], list[str]]


@dataclass
class RuleResult:
    rule: Rule
    findings: list[str] = field(default_factory=list)

    @property
    def passed(self) -> bool:
        return not self.findings


@dataclass(frozen=True)
class Leg:
    state: str
    seconds: float
    detail: str


@dataclass(frozen=True)
class WorstPath:
    machine: str
    seconds: float | None  # None: no upper bound (problem says why)
    legs: tuple[Leg, ...]
    problem: str = ""


@dataclass
class Report:
    results: list[RuleResult]
    worst_paths: list[WorstPath]
    deployments: list[str]

    @property
    def failed(self) -> list[RuleResult]:
        return [r for r in self.results if not r.passed]

    def to_dict(self) -> dict[str, Any]:
        return {
            "passed": not self.failed,
            "deployments": self.deployments,
            "rules": [
                {
                    "id": r.rule.id,
                    "title": r.rule.title,
                    "source": r.rule.source,
                    "passed": r.passed,
                    "findings": r.findings,
                }
                for r in self.results
            ],
            "express_worst_case": [
                {
                    "machine": w.machine,
                    "seconds": w.seconds,
                    "limit_s": EXPRESS_LIMIT_S,
                    "budget_s": EXPRESS_BUDGET_S,
                    "problem": w.problem or None,
                    "path": [
                        {"state": leg.state, "seconds": leg.seconds, "detail": leg.detail} for leg in w.legs
                    ],
                }
                for w in self.worst_paths
            ],
        }


def run(root: Path, source: Source | None = None) -> Report:
    """Check every rule against every deployment; a finding seen in only some names them."""
    source = source or Source.load(root)
    deployments = source.deployments()
    labels = [d.label for d in deployments]
    results: list[RuleResult] = []
    for rule in RULES:
        seen: dict[str, list[str]] = {}
        for deployment in deployments:
            for finding in dict.fromkeys(rule.check(deployment)):
                seen.setdefault(finding, []).append(deployment.label)
        findings = sorted(
            text if len(where) == len(deployments) else f"{text} [in: {', '.join(where)}]"
            for text, where in seen.items()
        )
        results.append(RuleResult(rule, findings))
    first = deployments[0]
    worst = [worst_case(first, m) for m in first.machines.values() if m.type == "EXPRESS"]
    return Report(results, worst, labels)


def report_lines(report: Report) -> list[str]:
    """The report as ``panelbrain check`` prints it: each rule PASS/FAIL, then the Express worst case."""
    lines = [f"Checked {len(report.deployments)} deployments: {', '.join(report.deployments)}"]
    for result in report.results:
        lines.append(f"{'PASS' if result.passed else 'FAIL'}  {result.rule.id}: {result.rule.title}")
        lines += [f"      - {finding}" for finding in result.findings]
    for worst in report.worst_paths:
        if worst.seconds is None:
            lines.append(f"Express worst case, {worst.machine}: unbounded ({worst.problem})")
            continue
        lines.append(
            f"Express worst case, {worst.machine}: {worst.seconds:.0f} s "
            f"(budget {EXPRESS_BUDGET_S} s, hard limit {EXPRESS_LIMIT_S} s)"
        )
        lines += [f"      {leg.state:<24} {leg.seconds:>6.0f} s  {leg.detail}" for leg in worst.legs]
    failed = report.failed
    lines.append(
        f"{len(report.results) - len(failed)} of {len(report.results)} rules pass"
        + (f"; failing: {', '.join(r.rule.id for r in failed)}" if failed else "")
    )
    return lines


# --- Lambda functions -------------------------------------------------------------------------


def _functions(d: Deployment) -> dict[str, dict[str, Any]]:
    return d.of_type("AWS::Lambda::Function")


def _aliased(d: Deployment) -> dict[str, set[str]]:
    names: dict[str, set[str]] = {}
    for function, alias in d.aliases.values():
        names.setdefault(function, set()).add(alias)
    return names


def check_function_alias(d: Deployment) -> list[str]:
    aliased = _aliased(d)
    return [
        f"{name} has no alias: give it AutoPublishAlias (provisioned concurrency and every invoker "
        "use the alias)"
        for name in _functions(d)
        if name not in aliased
    ]


def check_function_timeout(d: Deployment) -> list[str]:
    return [
        f"{name} has no Timeout (Lambda's default is 3 s): set Timeout on the function or in Globals"
        for name in _functions(d)
        if "Timeout" not in d.properties(name)
    ]


def check_function_tracing(d: Deployment) -> list[str]:
    findings = []
    for name in _functions(d):
        properties = d.properties(name)
        mode = properties.get("TracingConfig", {}).get("Mode", "PassThrough")
        handler = str(properties.get("Handler", ""))
        builds = _builds_tracer(handler)
        if builds and mode != "Active":
            findings.append(f"{name} builds a Tracer ({handler}) but traces {mode}: set Tracing: Active")
        elif mode == "Active" and not builds:
            findings.append(
                f"{name} traces Active but builds no Tracer ({handler}): set Tracing: PassThrough, "
                "or trace its calls with panelbrain.tracing"
            )
    return findings


def _builds_tracer(handler: str) -> bool:
    """Whether the handler's module builds a Powertools Tracer (imports panelbrain.tracing);
    read from its source, so the X-Ray SDK is not imported to find out."""
    module = handler.rpartition(".")[0]
    try:
        spec = importlib.util.find_spec(module) if module else None
    except (ImportError, ValueError):
        spec = None
    if spec is None or not spec.origin or not spec.origin.endswith(".py"):
        return False
    return "panelbrain.tracing" in Path(spec.origin).read_text(encoding="utf-8")


def _alias_findings(d: Deployment, text: str, where: str) -> list[str]:
    aliased = _aliased(d)
    findings = []
    for invocation in d.invoked(text):
        if invocation.function is None:
            findings.append(
                f"{where} invokes {text}, a function this template does not declare: the checklist "
                "cannot tell it reaches an alias"
            )
            continue
        aliases = aliased.get(invocation.function)
        if aliases and invocation.qualifier not in aliases:
            how = "its unqualified ARN ($LATEST)" if invocation.qualifier is None else invocation.via
            findings.append(
                f"{where} invokes {invocation.function} through {how}, not its alias "
                f"{'/'.join(sorted(aliases))}: use !Ref {invocation.function}.Alias "
                f"(${{{invocation.function}.Alias}} in a Sub)"
            )
    return findings


def _lambda_target(d: Deployment, state: dict[str, Any]) -> str | None:
    """The text naming the function a Task invokes, or None when the Task invokes no function."""
    resource = str(state.get("Resource", ""))
    if re.match(r"arn:[a-z-]+:states:::lambda:invoke", resource):
        parameters = state.get("Parameters", {})
        if "FunctionName" in parameters:
            return render(parameters["FunctionName"])
        return "FunctionName.$ (chosen at run time)"
    return resource if d.invoked(resource) else None


def check_state_machines_invoke_aliases(d: Deployment) -> list[str]:
    findings = []
    for machine in d.machines.values():
        for name, state in machine.tasks().items():
            target = _lambda_target(d, state)
            if target is None:
                continue
            if target.startswith("FunctionName.$"):
                findings.append(
                    f"{machine.name} state {name} picks its function at run time: the checklist cannot "
                    "tell it invokes an alias; name the alias in FunctionName"
                )
                continue
            findings += _alias_findings(d, target, f"{machine.name} state {name}")
    return findings


def _integration_uris(d: Deployment) -> Iterator[tuple[str, str]]:
    for api, body in d.of_type("AWS::ApiGateway::RestApi").items():
        for path, operations in body.get("Properties", {}).get("Body", {}).get("paths", {}).items():
            for method, operation in operations.items():
                integration = (
                    operation.get("x-amazon-apigateway-integration") if isinstance(operation, dict) else None
                )
                if isinstance(integration, dict) and "uri" in integration:
                    yield f"{api} {method.upper()} {path}", render(integration["uri"])
    for name, method in d.of_type("AWS::ApiGateway::Method").items():
        uri = method.get("Properties", {}).get("Integration", {}).get("Uri")
        if uri is not None:
            yield name, render(uri)


def check_api_integrations_invoke_aliases(d: Deployment) -> list[str]:
    findings = []
    for where, uri in _integration_uris(d):
        if ":lambda:path/" in uri:
            findings += _alias_findings(d, uri, f"integration {where}")
    return findings


def check_event_sources_invoke_aliases(d: Deployment) -> list[str]:
    findings = []
    for name, mapping in d.of_type("AWS::Lambda::EventSourceMapping").items():
        findings += _alias_findings(d, render(mapping["Properties"].get("FunctionName", "")), name)
    for name, rule in d.of_type("AWS::Events::Rule").items():
        for target in rule["Properties"].get("Targets", []):
            findings += _alias_findings(d, render(target.get("Arn", "")), f"{name} target {target.get('Id')}")
    for name, schedule in d.of_type("AWS::Scheduler::Schedule").items():
        findings += _alias_findings(d, render(schedule["Properties"].get("Target", {}).get("Arn", "")), name)
    for name, permission in d.of_type("AWS::Lambda::Permission").items():
        findings += _alias_findings(d, render(permission["Properties"].get("FunctionName", "")), name)
    for name, subscription in d.of_type("AWS::SNS::Subscription").items():
        if subscription["Properties"].get("Protocol") == "lambda":
            findings += _alias_findings(d, render(subscription["Properties"].get("Endpoint", "")), name)
    return findings


# --- Deploys: gradual, guarded, through aliases (docs/deploy.md) ----------------------------------


def _hooks(d: Deployment) -> set[str]:
    """Functions some alias names as a CodeDeploy lifecycle hook."""
    found: set[str] = set()
    for alias in d.of_type("AWS::Lambda::Alias").values():
        update = alias.get("UpdatePolicy", {}).get("CodeDeployLambdaAliasUpdate", {})
        for key in ("BeforeAllowTrafficHook", "AfterAllowTrafficHook"):
            hook = REFERENCE.fullmatch(render(update.get(key, "")))
            if hook:
                found.add(hook.group(1))
    return found


def check_gradual_deploys(d: Deployment) -> list[str]:
    """Every function alias (a hook's aside: it must not be shifted gradually itself) is updated by
    CodeDeploy, through a deployment group that rolls back on alarms; every hook's name lets SAM's
    CodeDeploy role invoke it."""
    findings = []
    hooks = _hooks(d)
    for alias_name, (function, alias) in sorted(d.aliases.items()):
        if function in hooks:
            continue
        update = d.resources[alias_name].get("UpdatePolicy", {}).get("CodeDeployLambdaAliasUpdate")
        if not update:
            findings.append(
                f"{function} alias {alias} changes all at once with no rollback: give the function a "
                "DeploymentPreference (with Alarms)"
            )
            continue
        group = REFERENCE.fullmatch(render(update.get("DeploymentGroupName", "")))
        properties = d.properties(group.group(1)) if group else {}
        alarms = properties.get("AlarmConfiguration", {}).get("Alarms", [])
        rollback = properties.get("AutoRollbackConfiguration", {})
        if not alarms or "DEPLOYMENT_STOP_ON_ALARM" not in rollback.get("Events", []):
            findings.append(
                f"{function} alias {alias}: its deployment group rolls back on no alarm: add Alarms to its "
                "DeploymentPreference"
            )
    for hook in sorted(hooks):
        name = render(d.properties(hook).get("FunctionName", ""))
        if not name.startswith("CodeDeployHook_"):
            findings.append(
                f"{hook} is a CodeDeploy hook named {name or 'by CloudFormation'}: SAM's CodeDeploy role "
                "invokes only functions named CodeDeployHook_*; set FunctionName"
            )
    return findings


def check_executions_start_through_aliases(d: Deployment) -> list[str]:
    """A function that starts a state machine which has an alias starts it through the alias."""
    aliased = set(d.state_machine_aliases.values())
    findings = []
    for name, body in sorted(_functions(d).items()):
        for variable, value in body["Properties"].get("Environment", {}).get("Variables", {}).items():
            target = REFERENCE.fullmatch(render(value))
            if target and target.group(1) in aliased:
                findings.append(
                    f"{name} {variable} names {target.group(1)} unqualified: its executions run the "
                    f"latest revision at once, past the alias's gradual deploy; use !Ref "
                    f"{target.group(1)}Alias<name>"
                )
    return findings


# --- Scaling, API Gateway, alarms ---------------------------------------------------------------


def check_scaling_policy_types(d: Deployment) -> list[str]:
    findings = []
    for name, policy in d.of_type("AWS::ApplicationAutoScaling::ScalingPolicy").items():
        properties = policy["Properties"]
        kind = str(properties.get("PolicyType", ""))
        namespace = properties.get("ServiceNamespace")
        target = REFERENCE.fullmatch(render(properties.get("ScalingTargetId", "")))
        if namespace is None and target:
            namespace = d.properties(target.group(1)).get("ServiceNamespace")
        if policy_type_refused(kind, namespace):
            findings.append(
                f"{name} is a {kind} policy on a {namespace} target, which Application Auto Scaling "
                "refuses: use TargetTrackingScaling (predefined or customized metric) or scheduled actions"
            )
    return findings


def _references(value: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(value, dict):
        if set(value) == {"Ref"}:
            found.add(str(value["Ref"]))
        elif set(value) == {"Fn::GetAtt"}:
            found.add(render(value).strip("<>").split(".")[0])
        else:
            for inner in value.values():
                found |= _references(inner)
    elif isinstance(value, list):
        for inner in value:
            found |= _references(inner)
    elif isinstance(value, str):
        found |= {m.group(1) for m in REFERENCE.finditer(value)}
    return found


def _depends_on(d: Deployment, start: str) -> set[str]:
    """Everything CloudFormation creates before ``start`` (references and DependsOn, transitively)."""
    seen: set[str] = set()
    stack = [start]
    while stack:
        body = d.resources.get(stack.pop(), {})
        depends = body.get("DependsOn", [])
        edges = _references(body.get("Properties", {})) | set(
            [depends] if isinstance(depends, str) else depends
        )
        for name in edges & set(d.resources) - seen:
            seen.add(name)
            stack.append(name)
    return seen


def check_api_gateway_account(d: Deployment) -> list[str]:
    logged = [
        n for n, s in d.of_type("AWS::ApiGateway::Stage").items() if s["Properties"].get("AccessLogSetting")
    ]
    if not logged:
        return []
    accounts = d.of_type("AWS::ApiGateway::Account")
    if not accounts:
        return [
            f"{', '.join(logged)} writes access logs but the stack sets no AWS::ApiGateway::Account "
            "CloudWatch role: the stage fails to create in a region without one; add the account and its role"
        ]
    findings = []
    for name, account in accounts.items():
        role = REFERENCE.fullmatch(render(account["Properties"].get("CloudWatchRoleArn", "")))
        trust = str(d.properties(role.group(1)).get("AssumeRolePolicyDocument", "")) if role else ""
        if "apigateway.amazonaws.com" not in trust:
            findings.append(
                f"{name}'s CloudWatchRoleArn is not a role of this stack that apigateway.amazonaws.com may "
                "assume: point it at one (with AmazonAPIGatewayPushToCloudWatchLogs)"
            )
    findings += [
        f"{stage} writes access logs but does not depend on {', '.join(accounts)}: CloudFormation may "
        "create it first and fail; add DependsOn to the API"
        for stage in logged
        if not set(accounts) & _depends_on(d, stage)
    ]
    return findings


def _alarm_topics(d: Deployment) -> dict[str, list[str]]:
    topics: dict[str, list[str]] = {}
    for name, alarm in d.of_type("AWS::CloudWatch::Alarm").items():
        for key in ("AlarmActions", "OKActions", "InsufficientDataActions"):
            for action in alarm["Properties"].get(key, []):
                target = REFERENCE.fullmatch(render(action))
                if target and d.resources.get(target.group(1), {}).get("Type") == "AWS::SNS::Topic":
                    topics.setdefault(target.group(1), []).append(name)
    return topics


def _allows(statement: dict[str, Any], service: str, action: str) -> bool:
    principal = statement.get("Principal", {})
    services = principal.get("Service", []) if isinstance(principal, dict) else []
    services = [services] if isinstance(services, str) else services
    actions = statement.get("Action", [])
    actions = [actions] if isinstance(actions, str) else actions
    return (
        statement.get("Effect") == "Allow"
        and service in services
        and any(fnmatch.fnmatchcase(action, pattern) for pattern in actions)
    )


def check_alarm_topic_key(d: Deployment) -> list[str]:
    findings = []
    for topic, alarms in _alarm_topics(d).items():
        key = render(d.properties(topic).get("KmsMasterKeyId", ""))
        if key == "alias/aws/sns" or key.endswith(":alias/aws/sns"):
            findings.append(
                f"{topic} (target of {', '.join(sorted(alarms))}) is encrypted with alias/aws/sns, which "
                "CloudWatch cannot use: encrypt it with a customer managed key that allows "
                "cloudwatch.amazonaws.com"
            )
            continue
        owned = REFERENCE.fullmatch(key)
        if not owned or d.resources.get(owned.group(1), {}).get("Type") != "AWS::KMS::Key":
            continue
        statements = d.properties(owned.group(1)).get("KeyPolicy", {}).get("Statement", [])
        missing = [
            action
            for action in ("kms:Decrypt", "kms:GenerateDataKey")
            if not any(_allows(s, "cloudwatch.amazonaws.com", action) for s in statements)
        ]
        if missing:
            findings.append(
                f"{owned.group(1)} encrypts alarm topic {topic} but its key policy does not allow "
                f"cloudwatch.amazonaws.com {', '.join(missing)}: add kms:Decrypt and kms:GenerateDataKey*"
            )
    return findings


def check_review_subscriptions_filtered(d: Deployment) -> list[str]:
    """Review e-mails carry links that decide as their one recipient; each reaches only the
    subscription its recipient attribute names, if the subscription filters on it."""
    topics: set[str] = set()
    for function in d.of_type("AWS::Lambda::Function").values():
        variables = function["Properties"].get("Environment", {}).get("Variables", {})
        for key in ("REVIEW_TOPIC_ARN", "ESCALATION_TOPIC_ARN"):
            topic = REFERENCE.fullmatch(render(variables.get(key, "")))
            if topic:
                topics.add(topic.group(1))
    findings = []
    for name, subscription in d.of_type("AWS::SNS::Subscription").items():
        properties = subscription["Properties"]
        topic = REFERENCE.fullmatch(render(properties.get("TopicArn", "")))
        if not topic or topic.group(1) not in topics:
            continue
        scope = properties.get("FilterPolicyScope", "MessageAttributes")
        if scope != "MessageAttributes" or "recipient" not in (properties.get("FilterPolicy") or {}):
            findings.append(
                f"{name} subscribes to review topic {topic.group(1)} without a FilterPolicy on the "
                "recipient message attribute: it receives every reviewer's links, each of which decides "
                "as its own recipient; filter it on its endpoint's address"
            )
    return findings


def check_sqs_redrive(d: Deployment) -> list[str]:
    queues = d.of_type("AWS::SQS::Queue")
    dead_letter = {
        m.group(1)
        for q in queues.values()
        for m in [
            REFERENCE.fullmatch(
                render(q["Properties"].get("RedrivePolicy", {}).get("deadLetterTargetArn", ""))
            )
        ]
        if m
    }
    findings = []
    for name, queue in queues.items():
        if name in dead_letter:
            continue
        target = REFERENCE.fullmatch(
            render(queue["Properties"].get("RedrivePolicy", {}).get("deadLetterTargetArn", ""))
        )
        if not target or target.group(1) not in queues:
            findings.append(
                f"{name} has no RedrivePolicy to a dead-letter queue of this stack: a message that always "
                "fails is received forever; add one (maxReceiveCount) and a DLQ"
            )
    return findings


def check_sqs_alarms(d: Deployment) -> list[str]:
    watched = {
        m.group(1)
        for alarm in d.of_type("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("Namespace") == "AWS/SQS"
        for dimension in alarm["Properties"].get("Dimensions", [])
        if dimension.get("Name") == "QueueName"
        for m in [REFERENCE.fullmatch(render(dimension.get("Value", "")))]
        if m
    }
    return [
        f"{name} has no CloudWatch alarm on an AWS/SQS metric: add one (ApproximateNumberOfMessagesVisible; "
        "for a dead-letter queue, > 0)"
        for name in d.of_type("AWS::SQS::Queue")
        if name not in watched
    ]


def check_alarm_runbooks(d: Deployment) -> list[str]:
    findings = []
    for name, alarm in d.of_type("AWS::CloudWatch::Alarm").items():
        description = str(alarm["Properties"].get("AlarmDescription", ""))
        named = _RUNBOOK.findall(description)
        if not named:
            findings.append(
                f"{name}'s AlarmDescription names no runbook: add 'Runbook: docs/runbooks/<name>.md' "
                "(in quotes: ': ' ends a plain YAML scalar)"
            )
        findings += [
            f"{name} names docs/runbooks/{runbook}, which does not exist: write it or fix the name"
            for runbook in named
            if not (d.root / "docs" / "runbooks" / runbook).is_file()
        ]
    return findings


# --- State machines ---------------------------------------------------------------------------


def check_machine_definitions(d: Deployment) -> list[str]:
    return [f"{name} {problem}" for name, problem in d.machine_errors.items()]


def check_express_logging(d: Deployment) -> list[str]:
    findings = []
    for name, machine in d.machines.items():
        if machine.type != "EXPRESS":
            continue
        logging = d.properties(name).get("LoggingConfiguration", {})
        if logging.get("Level") not in ("ALL", "ERROR") or not logging.get("Destinations"):
            findings.append(
                f"{name} is EXPRESS without Logging at level ALL or ERROR to a log group: its executions "
                "leave no history; set Logging (Level ALL, IncludeExecutionData false)"
            )
    return findings


def check_tracing(d: Deployment) -> list[str]:
    return [
        f"{name} is not traced: set Tracing: {{Enabled: true}}"
        for name in d.machines
        if d.properties(name).get("TracingConfiguration", {}).get("Enabled") is not True
    ]


def check_express_integrations(d: Deployment) -> list[str]:
    return [
        f"{machine.name} is EXPRESS but state {name} uses {state['Resource']}: Express supports request-"
        "response integrations only; move the wait into a STANDARD workflow"
        for machine in d.machines.values()
        if machine.type == "EXPRESS"
        for name, state in machine.tasks().items()
        if re.search(r"\.(sync(:\d+)?|waitForTaskToken)$", str(state.get("Resource", "")))
    ]


def check_express_timeout_alarm(d: Deployment) -> list[str]:
    alarmed = {
        m.group(1)
        for alarm in d.of_type("AWS::CloudWatch::Alarm").values()
        if alarm["Properties"].get("Namespace") == "AWS/States"
        and alarm["Properties"].get("MetricName") == "ExecutionsTimedOut"
        for dimension in alarm["Properties"].get("Dimensions", [])
        for m in [REFERENCE.fullmatch(render(dimension.get("Value", "")))]
        if m
    }
    return [
        f"{name} is EXPRESS with no alarm on AWS/States ExecutionsTimedOut: a timed-out execution "
        "persists nothing; add one"
        for name, machine in d.machines.items()
        if machine.type == "EXPRESS" and name not in alarmed
    ]


def check_express_budget(d: Deployment) -> list[str]:
    findings = []
    for machine in d.machines.values():
        if machine.type != "EXPRESS":
            continue
        worst = worst_case(d, machine)
        if worst.seconds is None:
            findings.append(f"{machine.name}: {worst.problem}")
        elif worst.seconds > EXPRESS_BUDGET_S:
            route = " -> ".join(leg.state for leg in worst.legs)
            findings.append(
                f"{machine.name}: worst case {worst.seconds:.0f} s is over the {EXPRESS_BUDGET_S} s budget "
                f"(Express stops at {EXPRESS_LIMIT_S} s, uncaught) along {route}: lower TimeoutSeconds, "
                "MaxAttempts or IntervalSeconds on that path"
            )
    return findings


def _function_timeout(d: Deployment, function: str | None) -> int | None:
    if function is None or function not in d.resources:
        return None
    return int(d.properties(function).get("Timeout", 3))


def _invoked_function(d: Deployment, state: dict[str, Any]) -> str | None:
    target = _lambda_target(d, state)
    invocations = d.invoked(target) if target else []
    return invocations[0].function if invocations else None


def _is_token_task(state: dict[str, Any]) -> bool:
    return str(state.get("Resource", "")).endswith(".waitForTaskToken")


def _is_persist(d: Deployment, state: dict[str, Any]) -> bool:
    return state.get("Type") == "Task" and _invoked_function(d, state) in PERSIST_FUNCTIONS


def check_task_timeouts(d: Deployment) -> list[str]:
    findings = []
    for machine in d.machines.values():
        for name, state in machine.tasks().items():
            function = _invoked_function(d, state)
            # A token task's timer is the wait for a decision, not the function's run.
            if function is None or _is_token_task(state):
                continue
            limit = _function_timeout(d, function)
            timeout = state.get("TimeoutSeconds")
            if not isinstance(timeout, int):
                findings.append(
                    f"{machine.name} state {name} has no TimeoutSeconds: set it above {function}'s "
                    f"Timeout ({limit} s)"
                )
            elif limit is not None and timeout <= limit:
                findings.append(
                    f"{machine.name} state {name} times out at {timeout} s, not after {function}'s own "
                    f"Timeout ({limit} s): the Task gives up first and the function's error is lost; "
                    f"raise TimeoutSeconds above {limit} or lower the function's Timeout"
                )
    return findings


def _retriers_match(state: dict[str, Any], error: str) -> bool:
    return any(
        error in r.get("ErrorEquals", []) or _MATCH_ALL & set(r.get("ErrorEquals", []))
        for r in state.get("Retry", [])
    )


def check_task_retries(d: Deployment) -> list[str]:
    return [
        f"{machine.name} state {name} does not retry Lambda service errors: add a Retry on "
        f"{', '.join(LAMBDA_SERVICE_ERRORS)}"
        for machine in d.machines.values()
        for name, state in machine.tasks().items()
        if _invoked_function(d, state) is not None
        and not _is_persist(d, state)
        and not _retriers_match(state, "Lambda.ServiceException")
    ]


def check_lambda_retry_names(d: Deployment) -> list[str]:
    findings = []
    for machine in d.machines.values():
        for name, (state, _, _) in machine.states.items():
            for retrier in state.get("Retry", []):
                names = set(retrier.get("ErrorEquals", []))
                if names & _MATCH_ALL or not names & set(LAMBDA_SERVICE_ERRORS):
                    continue
                missing = [e for e in LAMBDA_SERVICE_ERRORS if e not in names]
                if missing:
                    findings.append(
                        f"{machine.name} state {name} retries Lambda service errors but not "
                        f"{', '.join(missing)}: add them to that Retry"
                    )
    return findings


def _unpersisted_ends(d: Deployment, block: dict[str, Any], start: str) -> list[str]:
    """States reachable from ``start`` (Next, Choices, Default) that end a path without a Persist."""
    states = block.get("States", {})
    seen: set[str] = set()
    ends: list[str] = []
    pending = [start]
    while pending:
        name = pending.pop()
        if name in seen or name not in states:
            continue
        seen.add(name)
        state = states[name]
        following = [c.get("Next") for c in state.get("Choices", [])] + [
            state.get("Default"),
            state.get("Next"),
        ]
        following = [n for n in following if n]
        terminal = state.get("End") is True or state.get("Type") in ("Succeed", "Fail")
        if terminal and not _is_persist(d, state):
            ends.append(name)
        pending += following
    return sorted(ends)


def _catch_all(state: dict[str, Any]) -> str | None:
    for catcher in state.get("Catch", []):
        if "States.ALL" in catcher.get("ErrorEquals", []):
            return str(catcher.get("Next"))
    return None


def check_task_catches(d: Deployment) -> list[str]:
    findings = []
    for machine in d.machines.values():
        for name, state in machine.tasks().items():
            if _is_persist(d, state):
                continue
            # The innermost States.ALL catcher: the Task's own, else its enclosing Parallel's or Map's.
            _, block, enclosing = machine.states[name]
            handler, owner = _catch_all(state), name
            for outer in reversed(enclosing):
                if handler is not None:
                    break
                outer_state, block, _ = machine.states[outer]
                handler, owner = _catch_all(outer_state), outer
            if handler is None:
                findings.append(
                    f"{machine.name} state {name} has no Catch on States.ALL (nor does a Parallel around "
                    "it): when its retries run out the execution fails and no terminal status is persisted; "
                    "add a Catch leading to a Persist task"
                )
                continue
            unpersisted = _unpersisted_ends(d, block, handler)
            if unpersisted:
                findings.append(
                    f"{machine.name} state {owner}'s States.ALL Catch goes to {handler}, whose path ends in "
                    f"{', '.join(unpersisted)} without persisting: end it in a Persist task"
                )
    return findings


def check_paths_end_in_persist(d: Deployment) -> list[str]:
    return [
        f"{machine.name}: the path through {end} ends without a Persist task: the query keeps a "
        "non-terminal status; end it in one"
        for machine in d.machines.values()
        for end in _unpersisted_ends(d, machine.definition, str(machine.definition.get("StartAt")))
    ]


def check_persist_retries(d: Deployment) -> list[str]:
    return [
        f"{machine.name} state {name} persists a terminal status but does not retry States.ALL: a "
        "transient error there loses the outcome; add a Retry on States.ALL"
        for machine in d.machines.values()
        for name, state in machine.tasks().items()
        if _is_persist(d, state)
        and not any("States.ALL" in r.get("ErrorEquals", []) for r in state.get("Retry", []))
    ]


# --- Task tokens, heartbeats and parameters -----------------------------------------------------


def _sweep_interval(d: Deployment) -> tuple[int | None, str]:
    """How often heartbeats are sent: the schedule of the functions allowed SendTaskHeartbeat."""
    senders = {
        function
        for function, body in _functions(d).items()
        for role in [REFERENCE.fullmatch(render(body["Properties"].get("Role", "")))]
        if role and "states:SendTaskHeartbeat" in str(d.properties(role.group(1)).get("Policies", ""))
    }
    intervals = []
    for rule in d.of_type("AWS::Events::Rule").values():
        period = rate_seconds(str(rule["Properties"].get("ScheduleExpression", "")))
        targets = {
            i.function for t in rule["Properties"].get("Targets", []) for i in d.invoked(render(t.get("Arn")))
        }
        if period is not None and targets & senders:
            intervals.append(period)
    if not senders:
        return None, "no function is allowed states:SendTaskHeartbeat"
    if not intervals:
        return None, f"{', '.join(sorted(senders))} sends heartbeats but on no rate(...) schedule"
    return min(intervals), ""


def _token_value(
    d: Deployment, machine: Machine, state: dict[str, Any], field_name: str
) -> tuple[int | None, str, str]:
    """(seconds, where the value comes from, the parameter behind it or '')."""
    if isinstance(state.get(field_name), int):
        return int(state[field_name]), field_name, ""
    path = state.get(f"{field_name}Path")
    if path is None:
        return None, f"no {field_name} or {field_name}Path", ""
    variable = TOKEN_PATH_ENVIRONMENT.get(str(path))
    if variable is None:
        return None, f"{field_name}Path {path} is not one the checklist can trace to the template", ""
    # A function starts the machine through its ARN or one of its aliases.
    names = {machine.name} | {a for a, m in d.state_machine_aliases.items() if m == machine.name}
    starters = [
        name
        for name, body in _functions(d).items()
        if {f"<<{n}>>" for n in names}
        & {render(v) for v in body["Properties"].get("Environment", {}).get("Variables", {}).values()}
    ]
    for starter in starters:
        variables = d.properties(starter).get("Environment", {}).get("Variables", {})
        raw = (
            d.raw_resources.get(starter, {}).get("Properties", {}).get("Environment", {}).get("Variables", {})
        )
        if variable in variables and str(variables[variable]).isdigit():
            parameter = raw.get(variable, {}).get("Ref", "") if isinstance(raw.get(variable), dict) else ""
            return int(variables[variable]), f"{field_name}Path {path} <- {starter} {variable}", parameter
    return None, f"{field_name}Path {path}: no function starting {machine.name} sets {variable}", ""


def _token_tasks(d: Deployment) -> Iterator[tuple[Machine, str, dict[str, Any]]]:
    for machine in d.machines.values():
        for name, state in machine.tasks().items():
            if _is_token_task(state):
                yield machine, name, state


def check_token_timeouts(d: Deployment) -> list[str]:
    findings = []
    sweep, why_not = _sweep_interval(d)
    for machine, name, state in _token_tasks(d):
        where = f"{machine.name} state {name}"
        timeout, timeout_from, _ = _token_value(d, machine, state, "TimeoutSeconds")
        heartbeat, heartbeat_from, _ = _token_value(d, machine, state, "HeartbeatSeconds")
        if timeout is None:
            findings.append(f"{where}: {timeout_from}: a lost token waits a year; set one")
        if heartbeat is None:
            findings.append(
                f"{where}: {heartbeat_from}: a dead worker is noticed only at the timeout; set one"
            )
            continue
        if sweep is None:
            findings.append(f"{where} waits on heartbeats but {why_not}")
        elif heartbeat < 2 * sweep:
            findings.append(
                f"{where} heartbeat {heartbeat} s ({heartbeat_from}) is under two sweep intervals "
                f"({2 * sweep} s): one late or failed sweep fails the review; raise it"
            )
        if timeout is not None and heartbeat >= timeout:
            findings.append(
                f"{where} heartbeat {heartbeat} s ({heartbeat_from}) is not below its timeout {timeout} s "
                f"({timeout_from}): lower the heartbeat or raise the timeout"
            )
    return findings


def check_heartbeat_minimum(d: Deployment) -> list[str]:
    sweep, _ = _sweep_interval(d)
    if sweep is None:
        return []  # reported by the task-token rule
    findings = []
    for machine, name, state in _token_tasks(d):
        _, _, parameter = _token_value(d, machine, state, "HeartbeatSeconds")
        if not parameter:
            continue
        minimum = d.parameter_specs.get(parameter, {}).get("MinValue")
        if minimum is None or float(minimum) < 2 * sweep:
            findings.append(
                f"{parameter} (heartbeat of {machine.name} state {name}) allows {minimum or 'any value'}: "
                f"set MinValue to at least {2 * sweep} (two sweep intervals)"
            )
    return sorted(set(findings))


def check_inference_profile_prefix(d: Deployment) -> list[str]:
    spec = d.parameter_specs.get("InferenceProfilePrefix")
    if spec is None:
        return []
    allowed = [str(v) for v in spec.get("AllowedValues", [])]
    findings = []
    if not allowed:
        findings.append(
            "InferenceProfilePrefix has no AllowedValues: list the geography prefixes (us, eu, ...)"
        )
    bare = [v for v in allowed if v.lower() in ("none", "")]
    if bare:
        findings.append(
            f"InferenceProfilePrefix allows {bare[0]!r}, which sends the bare model id on demand, which "
            "these models refuse: remove it (use a provisioned-throughput ARN instead)"
        )
    value = d.parameters.get("InferenceProfilePrefix", "")
    if value.lower() in ("none", ""):
        findings.append(f"this deployment sets InferenceProfilePrefix={value!r}: choose a geography prefix")
    return findings


# An inference profile may be called from its source regions and keeps inference within its
# geography (https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-support.html);
# a global profile may route to any commercial region.
GEOGRAPHY = {"us": "us", "ca": "us", "eu": "eu", "ap": "apac"}


def check_data_residency(d: Deployment) -> list[str]:
    """A region of a two-region deployment keeps inference in its own geography
    (docs/multi-region.md), and names the other region as its replica's."""
    role = d.parameters.get("FailoverRole", "NONE")
    if role == "NONE":
        return []
    findings = []
    prefix = d.parameters.get("InferenceProfilePrefix", "")
    expected = GEOGRAPHY.get(d.region.split("-")[0])
    if prefix == "global":
        findings.append(
            f"FailoverRole={role} in {d.region} with InferenceProfilePrefix=global: inference may run in "
            f"any region; use the geography's profile ({expected or 'us, eu or apac'})"
        )
    elif expected and prefix != expected:
        findings.append(
            f"FailoverRole={role} in {d.region} with InferenceProfilePrefix={prefix}: a {prefix} profile "
            f"is not callable from {d.region} (use {expected})"
        )
    if d.parameters.get("ReplicaRegion") == d.region:
        findings.append(f"FailoverRole={role} in {d.region} names its own region as ReplicaRegion")
    return findings


def check_reviewers(d: Deployment) -> list[str]:
    spec = d.parameter_specs.get("Reviewers")
    if spec is None:
        return []
    findings = []
    if "Default" in spec and not str(spec["Default"]).strip():
        findings.append(
            "Reviewers defaults to empty: every decision is refused and every review times out; "
            "remove the default so a deploy must name the reviewers"
        )
    if "Reviewers" in d.parameters and not d.parameters["Reviewers"].strip() and "Default" not in spec:
        findings.append("this deployment sets Reviewers to empty: name the reviewers")
    return findings


def check_parameter_values(d: Deployment) -> list[str]:
    findings = []
    for name, value in d.parameters.items():
        spec = d.parameter_specs.get(name)
        if spec is None:
            findings.append(f"parameter {name} does not exist in the template: remove the override")
            continue
        problem = _parameter_problem(spec, value)
        if problem:
            findings.append(f"{name}={value!r} {problem}: CloudFormation refuses the deploy")
    return findings


def _parameter_problem(spec: dict[str, Any], value: str) -> str:
    allowed = spec.get("AllowedValues")
    if allowed is not None and value not in [str(v) for v in allowed]:
        return f"is not one of {allowed}"
    if spec.get("Type") == "Number":
        try:
            number = float(value)
        except ValueError:
            return "is not a number"
        if "MinValue" in spec and number < float(spec["MinValue"]):
            return f"is below MinValue {spec['MinValue']}"
        if "MaxValue" in spec and number > float(spec["MaxValue"]):
            return f"is above MaxValue {spec['MaxValue']}"
    if "AllowedPattern" in spec and not re.fullmatch(str(spec["AllowedPattern"]), value):
        return f"does not match AllowedPattern {spec['AllowedPattern']}"
    if "MinLength" in spec and len(value) < int(spec["MinLength"]):
        return f"is shorter than MinLength {spec['MinLength']}"
    return ""


# --- IAM ---------------------------------------------------------------------------------------


def _statements(d: Deployment) -> Iterator[tuple[str, dict[str, Any]]]:
    for name, role in d.of_type("AWS::IAM::Role").items():
        for policy in role["Properties"].get("Policies", []):
            for statement in _as_list(policy.get("PolicyDocument", {}).get("Statement", [])):
                yield f"{name} {policy.get('PolicyName', '')}".strip(), statement
    for kind in ("AWS::IAM::Policy", "AWS::IAM::ManagedPolicy"):
        for name, policy in d.of_type(kind).items():
            for statement in _as_list(policy["Properties"].get("PolicyDocument", {}).get("Statement", [])):
                yield name, statement


def _as_list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else [value]


def check_wildcard_resources(d: Deployment) -> list[str]:
    findings = []
    for where, statement in _statements(d):
        if statement.get("Effect") != "Allow" or "*" not in _as_list(statement.get("Resource", [])):
            continue
        extra = [a for a in _as_list(statement.get("Action", [])) if a not in WILDCARD_RESOURCE_ACTIONS]
        if extra:
            findings.append(
                f"{where} allows {', '.join(extra)} on Resource '*': name the resources (only actions "
                "AWS defines no resource type for may use '*'; see WILDCARD_RESOURCE_ACTIONS)"
            )
    return findings


# --- The Express worst case ---------------------------------------------------------------------


class _UnboundedError(Exception):
    pass


def _retry_cost(retriers: list[dict[str, Any]]) -> tuple[int, float]:
    """(attempts, seconds of backoff) when every retrier is used up, each on its own errors."""
    attempts, backoff = 1, 0.0
    for retrier in retriers:
        # ASL defaults: MaxAttempts 3, IntervalSeconds 1, BackoffRate 2.0.
        tries = int(retrier.get("MaxAttempts", 3))
        interval = float(retrier.get("IntervalSeconds", 1))
        rate = float(retrier.get("BackoffRate", 2.0))
        cap = float(retrier.get("MaxDelaySeconds", math.inf))
        attempts += tries
        backoff += sum(min(interval * rate**k, cap) for k in range(tries))
    return attempts, backoff


def worst_case(d: Deployment, machine: Machine) -> WorstPath:
    """The slowest path through ``machine``: every retry used, backoff waited, Catch edges taken
    after the last retry, a Parallel as slow as its slowest branch."""

    def through(block: dict[str, Any], name: str, visiting: frozenset[str]) -> tuple[float, list[Leg]]:
        if name in visiting:
            raise _UnboundedError(f"state {name} is on a loop: the worst case has no upper bound")
        state = block["States"][name]
        kind = state.get("Type")
        inner = ""
        if kind == "Task":
            attempt = _attempt_seconds(d, name, state)
        elif kind in ("Parallel", "Map"):
            branches = state.get("Branches") or [state.get("ItemProcessor") or state.get("Iterator")]
            if kind == "Map" and state.get("MaxConcurrency", 0) not in (0, None):
                raise _UnboundedError(
                    f"Map state {name} runs its items in batches of {state['MaxConcurrency']}: "
                    "the worst case depends on the item count"
                )
            runs = [through(b, b["StartAt"], frozenset()) for b in branches]
            attempt, legs = max(runs, key=lambda r: r[0])
            inner = (
                " [slowest branch: " + " -> ".join(f"{leg.state} {leg.seconds:.0f} s" for leg in legs) + "]"
            )
        elif kind == "Wait":
            if not isinstance(state.get("Seconds"), int):
                raise _UnboundedError(f"Wait state {name} waits a time chosen at run time: no upper bound")
            attempt = float(state["Seconds"])
        else:
            attempt = 0.0
        attempts, backoff = _retry_cost(state.get("Retry", []))
        seconds = attempts * attempt + backoff
        detail = f"{attempts} x {attempt:.0f} s" + (f" + {backoff:.0f} s backoff" if backoff else "") + inner
        following = [c.get("Next") for c in state.get("Choices", [])] + [
            state.get("Default"),
            state.get("Next"),
        ]
        following += [c.get("Next") for c in state.get("Catch", [])]
        best: tuple[float, list[Leg]] = (0.0, [])
        for successor in dict.fromkeys(n for n in following if n):
            candidate = through(block, str(successor), visiting | {name})
            if candidate[0] > best[0]:
                best = candidate
        return seconds + best[0], [Leg(name, seconds, detail), *best[1]]

    try:
        total, legs = through(machine.definition, str(machine.definition["StartAt"]), frozenset())
    except _UnboundedError as exc:
        return WorstPath(machine.name, None, (), str(exc))
    return WorstPath(machine.name, total, tuple(legs))


def _attempt_seconds(d: Deployment, name: str, state: dict[str, Any]) -> float:
    if isinstance(state.get("TimeoutSeconds"), int):
        return float(state["TimeoutSeconds"])
    # Without a Task timer a Lambda invocation still ends at the function's own Timeout.
    limit = _function_timeout(d, _invoked_function(d, state))
    if limit is None:
        raise _UnboundedError(f"Task {name} has no TimeoutSeconds: the worst case has no upper bound")
    return float(limit)


RULES: list[Rule] = [
    Rule(
        "scaling-policy-types",
        "Scaling policies use a type Application Auto Scaling offers for the target's namespace "
        "(no StepScaling on lambda)",
        "PutScalingPolicy refuses StepScaling for Lambda (and six other namespaces): the stack fails",
        "https://docs.aws.amazon.com/autoscaling/application/APIReference/API_ScalingPolicy.html",
        check_scaling_policy_types,
    ),
    Rule(
        "api-gateway-account",
        "A stage with access logging has an AWS::ApiGateway::Account with a CloudWatch role it depends on",
        "without the account-level role the stage fails to create in a fresh region",
        "https://docs.aws.amazon.com/apigateway/latest/developerguide/set-up-logging.html",
        check_api_gateway_account,
    ),
    Rule(
        "api-integrations-invoke-alias",
        "OpenAPI Lambda integrations invoke the alias of a function that has one",
        "SAM grants API Gateway permission on the alias only: the unqualified ARN answers 500",
        "https://docs.aws.amazon.com/lambda/latest/dg/using-aliases.html",
        check_api_integrations_invoke_aliases,
    ),
    Rule(
        "state-machines-invoke-alias",
        "State machine Tasks invoke the alias of a function that has one",
        "provisioned concurrency lives on the alias: $LATEST is on demand with cold starts",
        "https://docs.aws.amazon.com/lambda/latest/dg/API_PutProvisionedConcurrencyConfig.html",
        check_state_machines_invoke_aliases,
    ),
    Rule(
        "event-sources-invoke-alias",
        "Event source mappings, schedules, subscriptions and permissions name the alias",
        "an invoker of the unqualified function bypasses the alias and its provisioned concurrency",
        "https://docs.aws.amazon.com/lambda/latest/dg/using-aliases.html",
        check_event_sources_invoke_aliases,
    ),
    Rule(
        "alarm-topic-key",
        "No alarm topic is encrypted with alias/aws/sns; a customer managed key allows CloudWatch",
        "CloudWatch cannot use the AWS managed SNS key: alarm notifications are silently dropped",
        "https://docs.aws.amazon.com/sns/latest/dg/sns-key-management.html#compatibility-with-aws-services",
        check_alarm_topic_key,
    ),
    Rule(
        "express-logging",
        "Express state machines log to CloudWatch Logs (level ALL or ERROR)",
        "Express keeps no execution history of its own",
        "https://docs.aws.amazon.com/step-functions/latest/dg/cw-logs.html",
        check_express_logging,
    ),
    Rule(
        "state-machine-tracing",
        "Every state machine has X-Ray tracing enabled",
        "a query's path across Step Functions and Lambda is otherwise invisible",
        "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-properties-stepfunctions-statemachine-tracingconfiguration.html",
        check_tracing,
    ),
    Rule(
        "express-budget",
        f"The Express worst case (timeouts x attempts + backoff, Catch edges) is <= {EXPRESS_BUDGET_S} s",
        f"Express stops at {EXPRESS_LIMIT_S} s and that failure cannot be caught: nothing persists",
        "https://docs.aws.amazon.com/step-functions/latest/dg/concepts-standard-vs-express.html",
        check_express_budget,
    ),
    Rule(
        "express-timeout-alarm",
        "Every Express state machine has an alarm on AWS/States ExecutionsTimedOut",
        "a timed-out Express execution leaves its query unanswered and unpersisted",
        "https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html",
        check_express_timeout_alarm,
    ),
    Rule(
        "inference-profile-prefix",
        "InferenceProfilePrefix allows no 'none' and no deployment uses it",
        "Sonnet 4.5 and Haiku 4.5 are refused on demand by bare model id",
        "https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-support.html",
        check_inference_profile_prefix,
    ),
    Rule(
        "data-residency",
        "A two-region deployment's inference profile stays in its region's geography, never global",
        "a global profile may send data to any commercial region; another geography's is not callable",
        "https://docs.aws.amazon.com/bedrock/latest/userguide/inference-profiles-support.html",
        check_data_residency,
    ),
    Rule(
        "reviewers-required",
        "Reviewers has no empty default",
        "with an empty allow-list every review decision is refused and every review times out",
        "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/parameters-section-structure.html",
        check_reviewers,
    ),
    Rule(
        "review-subscriptions-filtered",
        "Every subscription to a review topic filters on its recipient",
        "an unfiltered subscription receives every reviewer's decision links",
        "https://docs.aws.amazon.com/sns/latest/dg/message-filtering.html",
        check_review_subscriptions_filtered,
    ),
    Rule(
        "heartbeat-minimum",
        "The heartbeat parameter's MinValue is at least two sweep intervals",
        "a heartbeat shorter than the sweep fails reviews that are still open",
        "https://docs.aws.amazon.com/step-functions/latest/dg/sfn-stuck-execution.html",
        check_heartbeat_minimum,
    ),
    Rule(
        "lambda-retry-names",
        "Every Retry on Lambda service errors names all four, "
        "Lambda.ClientExecutionTimeoutException included",
        "AWS lists four transient Lambda service errors; a missing one fails the execution",
        "https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html",
        check_lambda_retry_names,
    ),
    Rule(
        "function-alias",
        "Every function has an alias (AutoPublishAlias)",
        "provisioned concurrency and safe invokers need a published version behind an alias",
        "https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/sam-specification-generated-resources-function.html",
        check_function_alias,
    ),
    Rule(
        "gradual-deploys",
        "Every function alias is shifted by CodeDeploy with alarms that roll it back; hooks are "
        "named CodeDeployHook_*",
        "an alias switched at once sends every request to an untried version, with no way back but "
        "another deploy; SAM's CodeDeploy role may invoke only CodeDeployHook_* functions",
        "https://docs.aws.amazon.com/serverless-application-model/latest/developerguide/automating-updates-to-serverless-apps.html",
        check_gradual_deploys,
    ),
    Rule(
        "executions-start-through-alias",
        "Functions start a state machine that has an alias through the alias",
        "an unqualified start runs the latest revision, skipping the version's gradual deploy",
        "https://docs.aws.amazon.com/step-functions/latest/dg/execution-alias-version-associate.html",
        check_executions_start_through_aliases,
    ),
    Rule(
        "function-timeout",
        "Every function sets Timeout",
        "Lambda's 3 s default stops real work mid-way",
        "https://docs.aws.amazon.com/lambda/latest/dg/configuration-timeout.html",
        check_function_timeout,
    ),
    Rule(
        "function-tracing",
        "A function traces Active exactly when it builds a Tracer",
        "a Tracer's segments are dropped under PassThrough; Active without one records an empty "
        "segment per invocation, while PassThrough still passes a query's trace on",
        "https://aws.amazon.com/blogs/compute/streamlining-trace-sampling-behavior-for-aws-lambda-functions-with-aws-x-ray/",
        check_function_tracing,
    ),
    Rule(
        "task-timeout-over-function",
        "Every Lambda Task's TimeoutSeconds exceeds its function's Timeout",
        "the function's own timeout (Lambda.Unknown / Sandbox.Timedout) should fire first, with its error",
        "https://docs.aws.amazon.com/step-functions/latest/dg/sfn-stuck-execution.html",
        check_task_timeouts,
    ),
    Rule(
        "sqs-redrive",
        "Every SQS queue other than a dead-letter queue has a RedrivePolicy to a DLQ",
        "a poison message is otherwise received until it expires",
        "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html",
        check_sqs_redrive,
    ),
    Rule(
        "sqs-alarms",
        "Every SQS queue, dead-letter queues included, has an alarm",
        "a backlog or a dead letter nobody sees is a query nobody answers",
        "https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-dead-letter-queues.html",
        check_sqs_alarms,
    ),
    Rule(
        "task-token-timeouts",
        "Every task-token state has a timeout and a heartbeat, heartbeat >= two sweep intervals "
        "and < timeout, in every deployment",
        "a lost token otherwise waits a year; a heartbeat at or past the timeout never fires",
        "https://docs.aws.amazon.com/step-functions/latest/dg/sfn-stuck-execution.html",
        check_token_timeouts,
    ),
    Rule(
        "task-retries-lambda-errors",
        "Every Lambda Task (Persist tasks aside) retries Lambda service errors",
        "transient Lambda service errors otherwise fail the query",
        "https://docs.aws.amazon.com/step-functions/latest/dg/bp-lambda-serviceexception.html",
        check_task_retries,
    ),
    Rule(
        "task-catch-persists",
        "Every Task that can fail is caught on States.ALL by a path that ends in a Persist task",
        "an uncaught failure ends the execution with the query's status never written",
        "https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html",
        check_task_catches,
    ),
    Rule(
        "paths-end-in-persist",
        "Every path from StartAt ends in a Persist task",
        "a path that ends elsewhere leaves the query in a non-terminal status",
        "https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html",
        check_paths_end_in_persist,
    ),
    Rule(
        "persist-retries-all",
        "Persist tasks retry States.ALL",
        "the last write of an execution has no Catch to fall back on",
        "https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html",
        check_persist_retries,
    ),
    Rule(
        "express-request-response-only",
        "Express state machines use no .sync or .waitForTaskToken integrations",
        "Express supports request-response only: AWS refuses the definition (moto does not)",
        "https://docs.aws.amazon.com/step-functions/latest/dg/integrate-optimized.html",
        check_express_integrations,
    ),
    Rule(
        "alarm-runbooks",
        "Every alarm's AlarmDescription names a docs/runbooks/<name>.md that exists",
        "an alert should map to a documented response",
        "https://docs.aws.amazon.com/wellarchitected/latest/framework/ops06-bp01.html",
        check_alarm_runbooks,
    ),
    Rule(
        "iam-wildcard-resources",
        "No IAM statement allows Resource '*' except for actions AWS defines no resource type for",
        "least privilege; the allow-list names each exception with its AWS source",
        "https://docs.aws.amazon.com/IAM/latest/UserGuide/best-practices.html",
        check_wildcard_resources,
    ),
    Rule(
        "machine-definitions",
        "Every state machine's ASL loads with all its DefinitionSubstitutions",
        "a ${placeholder} without a substitution reaches Step Functions literally",
        "https://docs.aws.amazon.com/AWSCloudFormation/latest/TemplateReference/aws-resource-stepfunctions-statemachine.html",
        check_machine_definitions,
    ),
    Rule(
        "parameter-values",
        "Defaults and samconfig.toml overrides satisfy each parameter's constraints",
        "CloudFormation refuses a deploy whose parameter breaks AllowedValues, MinValue or AllowedPattern",
        "https://docs.aws.amazon.com/AWSCloudFormation/latest/UserGuide/parameters-section-structure.html",
        check_parameter_values,
    ),
]
