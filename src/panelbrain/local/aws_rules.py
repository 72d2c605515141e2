"""AWS's service rules that moto 5.2.5 does not hold, held by the local engine.

moto accepts things AWS refuses and lets a Catch handle errors AWS makes terminal, so a local
pass could rest on behaviour that fails in the cloud. :func:`hold` patches moto's internals for
as long as the engine runs (each patch restores moto on exit; moto's version is pinned, so its
internals are fair game) and :func:`deploy` creates what AWS checks when the stack is created.
Each rule names the AWS documentation it follows:

- state input/output over 262,144 bytes fails with ``States.DataLimitExceeded``, which
  ``States.ALL`` does not catch or retry;
- a JSONPath that selects nothing fails the state with ``States.Runtime``, which ``States.ALL``
  does not catch or retry either;
- an error leaving a Parallel branch or a Map iteration keeps its name (moto crashed on any
  ``States.*`` name there and reported ``States.Runtime``);
- an EXPRESS execution running past :attr:`AwsRules.express_duration_s` (AWS: 5 minutes) ends
  ``TIMED_OUT``, which no Catch sees;
- EXPRESS machines refuse ``.sync``, ``.waitForTaskToken`` and activity resources;
- an SQS message over its queue's ``MaximumMessageSize``, counted in UTF-8 bytes with its
  attributes, is refused; received messages stay hidden for the visibility timeout on the
  engine's SQS clock (:meth:`AwsRules.advance_queue_clock` lets time pass without waiting);
- Application Auto Scaling refuses policy types a namespace does not support (StepScaling on
  Lambda) and policies on unregistered targets;
- StartExecution through a state machine alias runs the version the alias routes it to, and
  DescribeExecution names the alias and the version (moto refuses an alias ARN outright).

DynamoDB's 400 KB item limit is one moto already holds (at 405,000 bytes, a little under AWS's
409,600): ``tests/functional/test_engine_aws_rules.py`` proves it rather than re-implementing it.
"""

from __future__ import annotations

import json
import re
import threading
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from typing import Any

from panelbrain.local.template import Template, TemplateError

# Step Functions quotas: "Maximum input or output size for a task, state, or execution: 256 KiB
# of data as a UTF-8 encoded string"; the history events cap input/output at 262,144 bytes.
# https://docs.aws.amazon.com/step-functions/latest/dg/service-quotas.html
# https://docs.aws.amazon.com/step-functions/latest/apireference/API_StateEnteredEventDetails.html
STATE_PAYLOAD_LIMIT_BYTES = 262_144

# "Express Workflows ... can run for up to five minutes."
# https://docs.aws.amazon.com/step-functions/latest/dg/choosing-workflow-type.html
EXPRESS_DURATION_LIMIT_S = 300.0

# Errors that "States.ALL" does not match: "The States.ALL error type ... can't catch the
# States.DataLimitExceeded terminal error or Runtime error types" (the Retry and Catch fields
# share the rule: "A retry or catch on States.ALL won't catch States.Runtime errors").
# https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html
BEYOND_STATES_ALL = frozenset({"States.DataLimitExceeded", "States.Runtime"})

# Express workflows "support Request Response, but they do not support Run a Job (.sync) or
# Wait for Callback (.waitForTaskToken)"; nor activities (the workflow type comparison).
# https://docs.aws.amazon.com/step-functions/latest/dg/connect-supported-services.html
# https://docs.aws.amazon.com/step-functions/latest/dg/choosing-workflow-type.html
_EXPRESS_REFUSES = re.compile(r"^arn:[^:]+:states:::.+\.(?P<pattern>sync(?::\d+)?|waitForTaskToken)$")
_ACTIVITY = re.compile(r"^arn:[^:]+:states:[^:]*:[^:]*:activity:")

# PutScalingPolicy, PolicyType: "StepScaling—Not supported for DynamoDB, Amazon Comprehend,
# Lambda, Amazon Keyspaces, Amazon MSK, Amazon ElastiCache, or Neptune. TargetTrackingScaling—Not
# supported for Amazon EMR. PredictiveScaling—Only supported for Amazon ECS."
# https://docs.aws.amazon.com/autoscaling/application/APIReference/API_PutScalingPolicy.html
_POLICY_TYPE_REFUSED_FOR = {
    "StepScaling": frozenset(
        {"dynamodb", "comprehend", "lambda", "cassandra", "kafka", "elasticache", "neptune"}
    ),
    "TargetTrackingScaling": frozenset({"elasticmapreduce"}),
}
_POLICY_TYPE_ONLY_FOR = {"PredictiveScaling": frozenset({"ecs"})}


def policy_type_refused(policy_type: str | None, namespace: str | None) -> bool:
    """Whether PutScalingPolicy refuses ``policy_type`` on a target of ``namespace`` (above);
    the engine and the production checklist both ask this."""
    only = _POLICY_TYPE_ONLY_FOR.get(policy_type or "")
    return namespace in _POLICY_TYPE_REFUSED_FOR.get(policy_type or "", frozenset()) or (
        only is not None and namespace not in only
    )


_WHAT_INSTEAD = {
    "lambda": "TargetTrackingScaling (predefined LambdaProvisionedConcurrencyUtilization, or a "
    "CustomizedMetricSpecification) or ScheduledActions on the scalable target",
}


@dataclass
class AwsRules:
    """The engine's settings for AWS's rules. The defaults are AWS's; a test may shorten the
    time-based ones on a running engine (``engine.rules.express_duration_s = 2``)."""

    express_duration_s: float = EXPRESS_DURATION_LIMIT_S
    # Seconds the engine's SQS clock is ahead of the wall clock.
    queue_clock_offset_s: float = 0.0
    # Told of a StartExecution on the unqualified ARN of a state machine that has an alias (AWS
    # runs the latest revision, past the alias's gradual deploy); returns True to refuse it.
    unqualified_start: Callable[[str], bool] | None = None

    def advance_queue_clock(self, seconds: float) -> None:
        """Let ``seconds`` pass for SQS (visibility timeouts, delays, retention) at once, so a
        test sees a failed message come back without waiting out the queue's timeout."""
        self.queue_clock_offset_s += seconds


def hold(stack: ExitStack, rules: AwsRules) -> None:
    """Patch moto so it holds every rule of this module until ``stack`` closes."""
    _express_refuses_sync_and_callbacks(stack)
    _express_duration_limit(stack, rules)
    _states_all_leaves_terminal_errors(stack)
    _closed_tasks_refuse_callbacks(stack)
    _callbacks_skip_executions_not_yet_running(stack)
    _dynamodb_items_change_one_request_at_a_time(stack)
    _branch_errors_keep_their_names(stack)
    _missing_path_is_runtime_error(stack)
    _state_payload_limit(stack)
    _sqs_message_size_in_bytes(stack)
    _sqs_clock(stack, rules)
    _scaling_policy_types_per_namespace(stack)
    _executions_start_through_aliases(stack, rules)


def deploy(template: Template, clients: dict[str, Any]) -> None:
    """Create what AWS checks when the stack is created and moto's engine setup skips: each
    queue's ``MaximumMessageSize``, and the scalable targets, scheduled actions and scaling
    policies of Application Auto Scaling (refused here as CloudFormation would refuse them)."""
    import boto3

    sqs = clients["sqs"]
    for name, resource in template.of_type("AWS::SQS::Queue").items():
        size = resource.get("Properties", {}).get("MaximumMessageSize")
        if size is not None:
            sqs.set_queue_attributes(
                QueueUrl=template.resolve({"Ref": name}),
                Attributes={"MaximumMessageSize": str(template.resolve(size))},
            )
    scaling = clients.setdefault(
        "application-autoscaling", boto3.client("application-autoscaling", region_name=template.region)
    )
    targets: dict[str, dict[str, Any]] = {}
    for name, resource in template.of_type("AWS::ApplicationAutoScaling::ScalableTarget").items():
        props = template.resolve(resource["Properties"])
        target = {key: props[key] for key in ("ServiceNamespace", "ResourceId", "ScalableDimension")}
        scaling.register_scalable_target(
            **target,
            MinCapacity=int(props["MinCapacity"]),
            MaxCapacity=int(props["MaxCapacity"]),
            **({"SuspendedState": props["SuspendedState"]} if "SuspendedState" in props else {}),
        )
        for action in props.get("ScheduledActions", []):
            scaling.put_scheduled_action(
                **target,
                ScheduledActionName=action["ScheduledActionName"],
                Schedule=action["Schedule"],
                **({"Timezone": action["Timezone"]} if "Timezone" in action else {}),
                ScalableTargetAction={k: int(v) for k, v in action.get("ScalableTargetAction", {}).items()},
            )
        targets[name] = target
    for name, resource in template.of_type("AWS::ApplicationAutoScaling::ScalingPolicy").items():
        _put_scaling_policy(scaling, template, name, resource["Properties"], targets)


def _put_scaling_policy(
    scaling: Any, template: Template, name: str, raw: dict[str, Any], targets: dict[str, dict[str, Any]]
) -> None:
    from botocore.exceptions import ClientError

    reference = raw.get("ScalingTargetId")
    if isinstance(reference, dict) and set(reference) == {"Ref"}:
        if reference["Ref"] not in targets:
            raise TemplateError(
                f"{name}: ScalingTargetId refers to {reference['Ref']}, which is not an "
                "AWS::ApplicationAutoScaling::ScalableTarget of the template"
            )
        target = targets[reference["Ref"]]
    else:
        keys = ("ServiceNamespace", "ResourceId", "ScalableDimension")
        target = template.resolve({k: raw[k] for k in keys if k in raw})
    props = template.resolve(raw)
    configuration = {
        key: props[key]
        for key in ("StepScalingPolicyConfiguration", "TargetTrackingScalingPolicyConfiguration")
        if key in props
    }
    try:
        scaling.put_scaling_policy(
            PolicyName=props["PolicyName"], PolicyType=props.get("PolicyType", ""), **target, **configuration
        )
    except ClientError as exc:
        namespace = target.get("ServiceNamespace", "")
        instead = _WHAT_INSTEAD.get(namespace, "a policy type the namespace supports")
        raise TemplateError(
            f"{name} ({props.get('PolicyType')} on {namespace} target {target.get('ResourceId')}): "
            f"Application Auto Scaling refuses it: {exc.response['Error']['Message']}. Use {instead} "
            "(https://docs.aws.amazon.com/autoscaling/application/APIReference/API_PutScalingPolicy.html)"
        ) from exc


# -- Step Functions -----------------------------------------------------------------------------


def express_problem(definition: str, machine: str = "") -> str | None:
    """Why AWS refuses ``definition`` for an EXPRESS machine (named ``machine``), or None."""
    try:
        document = json.loads(definition)
    except ValueError:
        return None  # moto's own validation reports the syntax
    for path, state in _states(document, "/States"):
        resource = state.get("Resource")
        if not isinstance(resource, str):
            continue
        match = _EXPRESS_REFUSES.match(resource)
        if match:
            what = f"'.{match.group('pattern').split(':')[0]}' service integration"
        elif _ACTIVITY.match(resource):
            what = "activities"
        else:
            continue
        return (
            f"Invalid State Machine Definition: 'SCHEMA_VALIDATION_FAILED: Express state machine "
            f"does not support {what} at {path}/Resource' (state machine {machine or '?'}): Express "
            "workflows support request-response integrations only; make the machine STANDARD, or "
            "move the state into a STANDARD machine the Express one starts"
        )
    return None


def _states(document: Any, path: str) -> Iterator[tuple[str, dict[str, Any]]]:
    if not isinstance(document, dict):
        return
    for name, state in document.get("States", {}).items():
        if not isinstance(state, dict):
            continue
        here = f"{path}/{name}"
        yield here, state
        for index, branch in enumerate(state.get("Branches", [])):
            yield from _states(branch, f"{here}/Branches[{index}]/States")
        for key in ("Iterator", "ItemProcessor"):
            if key in state:
                yield from _states(state[key], f"{here}/{key}/States")


def _patch(stack: ExitStack, owner: Any, attribute: str, replacement: Any) -> None:
    """Set ``owner.attribute`` until ``stack`` closes; a method a class inherits is removed
    again rather than copied down onto it."""
    if isinstance(owner, type) and attribute not in owner.__dict__:
        stack.callback(delattr, owner, attribute)
    else:
        stack.callback(setattr, owner, attribute, vars(owner)[attribute])
    setattr(owner, attribute, replacement)


def _dynamodb_items_change_one_request_at_a_time(stack: ExitStack) -> None:
    """moto evaluates a write's condition and applies the write with no lock: two threads'
    conditional writes to one item can both find the condition true, and both land (two
    terminal statuses in a query's history). DynamoDB decides a condition against the item as
    it is when the write is applied, one write at a time
    (https://docs.aws.amazon.com/amazondynamodb/latest/developerguide/WorkingWithItems.html#WorkingWithItems.ConditionalUpdate),
    so the engine serialises every write, and the reads that walk a table (a query or scan
    walking moto's item dict while another thread inserts fails with "dictionary changed size
    during iteration", which DynamoDB never answers)."""
    import threading

    from moto.dynamodb.models import DynamoDBBackend

    lock = threading.RLock()

    def serialised(original: Any) -> Any:
        def write(self: Any, *args: Any, **kwargs: Any) -> Any:
            with lock:
                return original(self, *args, **kwargs)

        return write

    writes = ("put_item", "update_item", "delete_item", "transact_write_items")
    for name in (*writes, "query", "scan", "get_item"):
        _patch(stack, DynamoDBBackend, name, serialised(getattr(DynamoDBBackend, name)))


def _callbacks_skip_executions_not_yet_running(stack: ExitStack) -> None:
    """moto finds a task token's execution by asking every execution's evaluation environment,
    and an execution that has just started has none yet: a SendTaskSuccess at that moment fails
    with AttributeError inside moto, a failure AWS never gives (a callback answers success or a
    named error: https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html).
    The lookup skips executions whose environment does not exist yet."""
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend as Backend

    get_executions = Backend._get_executions

    def with_environment(self: Backend, *args: Any, **kwargs: Any) -> list[Any]:
        return [
            e
            for e in get_executions(self, *args, **kwargs)
            if getattr(getattr(e, "exec_worker", None), "env", None) is not None
        ]

    _patch(stack, Backend, "_get_executions", with_environment)


def _closed_tasks_refuse_callbacks(stack: ExitStack) -> None:
    """moto keeps a task token answerable after its task stopped waiting: a SendTaskSuccess
    after the task timed out, or a second one after the first, is accepted (and changes
    nothing). AWS answers TaskTimedOut: "The task token has either expired or the task
    associated with the token has already been closed"
    (https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html).
    A reviewer told "decided" for a task that had timed out is the split a review table and a
    query must never show, so the token is closed the moment its task stops waiting."""
    from moto.core.exceptions import AWSError
    from moto.stepfunctions.parser.asl.component.state.exec.execute_state import ExecutionState
    from moto.stepfunctions.parser.asl.eval.callback.callback import CallbackEndpoint, CallbackPoolManager

    closed: set[str] = set()
    interrupt_all = CallbackEndpoint.interrupt_all
    notify, heartbeat = CallbackPoolManager.notify, CallbackPoolManager.heartbeat

    def closing(self: CallbackEndpoint) -> None:
        # Called once the waiting state has its outcome (an answer, a timeout, a failure).
        interrupt_all(self)
        closed.add(self.callback_id)

    def refuse_if_closed(original: Any) -> Any:
        def answered(self: CallbackPoolManager, callback_id: str, *args: Any, **kwargs: Any) -> Any:
            if callback_id in closed and self.get(callback_id) is not None:
                # moto's own TaskTimedOut reaches boto3 with no error code: name it as AWS does.
                raise AWSError(
                    "the task token has either expired or its task has already been closed",
                    exception_type="TaskTimedOut",
                )
            return original(self, callback_id, *args, **kwargs)

        return answered

    evaluate_with_timeout = ExecutionState._evaluate_with_timeout

    def closing_when_the_state_moves_on(self: Any, env: Any) -> None:
        # moto makes one token when the state is entered and hands it to every Retry attempt,
        # but the token of the attempt that failed was closed as it ended: a retried callback
        # Task (a NotifyReview that timed out) would wait on a token no reviewer or heartbeat
        # can answer, and time out. Each attempt is its own task (its own TaskScheduled event,
        # $$.State.RetryCount), so each waits on a token of its own, and the earlier attempt's
        # token stays closed, as the review core expects (ADR 0018: a later attempt's token wins).
        task = env.states.context_object.context_object_data.get("Task")
        if task and task["Token"] in closed:
            env.callback_pool_manager.add(env.states.context_object.update_task_token())
        # A state timeout (TimeoutSeconds) moves the execution on while moto's waiting thread
        # still holds the endpoint open until its next heartbeat wait ends: close the task's
        # token as the state stops waiting, however it stops.
        try:
            evaluate_with_timeout(self, env)
        finally:
            task = env.states.context_object.context_object_data.get("Task")
            if task:
                closed.add(task["Token"])

    _patch(stack, CallbackEndpoint, "interrupt_all", closing)
    _patch(stack, ExecutionState, "_evaluate_with_timeout", closing_when_the_state_moves_on)
    _patch(stack, CallbackPoolManager, "notify", refuse_if_closed(notify))
    _patch(stack, CallbackPoolManager, "heartbeat", refuse_if_closed(heartbeat))


def _express_refuses_sync_and_callbacks(stack: ExitStack) -> None:
    """moto creates an EXPRESS machine with a ``.waitForTaskToken`` state and runs it; AWS
    refuses the definition at CreateStateMachine and UpdateStateMachine."""
    from moto.core.exceptions import AWSError
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend as Backend

    def refuse(problem: str) -> Exception:
        # moto's own InvalidDefinition sets no error code; boto3 then reports "()".
        return AWSError(problem, exception_type="InvalidDefinition")

    create, update = Backend.create_state_machine, Backend.update_state_machine

    def checked_create(self: Backend, *args: Any, **kwargs: Any) -> Any:
        express = kwargs.get("sm_type") == "EXPRESS"
        problem = express_problem(kwargs.get("definition", ""), kwargs.get("name", "")) if express else None
        if problem:
            raise refuse(problem)
        return create(self, *args, **kwargs)

    def checked_update(self: Backend, arn: str, *args: Any, **kwargs: Any) -> Any:
        definition = kwargs.get("definition")
        machine = self.describe_state_machine(arn)
        if definition is not None and machine.type == "EXPRESS":
            problem = express_problem(definition, machine.name)
            if problem:
                raise refuse(problem)
        return update(self, arn, *args, **kwargs)

    _patch(stack, Backend, "create_state_machine", checked_create)
    _patch(stack, Backend, "update_state_machine", checked_update)


def _express_duration_limit(stack: ExitStack, rules: AwsRules) -> None:
    """moto runs every execution as STANDARD (its state machines keep ``sm_type = "STANDARD"``)
    with no duration limit. AWS ends an EXPRESS execution at five minutes, TIMED_OUT; Catch
    fields do not apply to "top-level state machine execution failures"
    (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html)."""
    from moto.stepfunctions.parser.api import StateMachineType
    from moto.stepfunctions.parser.asl.component.program.program import Program
    from moto.stepfunctions.parser.asl.eval.evaluation_details import StateMachineDetails
    from moto.stepfunctions.parser.backend.execution import Execution

    original_details = Execution.get_start_state_machine_details

    def details(self: Execution) -> StateMachineDetails:
        found = original_details(self)
        setattr(found, "typ", StateMachineType(getattr(self.state_machine, "type", "STANDARD")))  # noqa: B010
        return found

    original_eval = Program.eval

    def evaluate(self: Program, env: Any) -> None:
        express = getattr(env.execution_type, "value", env.execution_type) == "EXPRESS"
        if not express or env.is_frame():
            original_eval(self, env)
            return
        own = self.timeout_seconds.timeout_seconds if self.timeout_seconds else None
        limit = rules.express_duration_s if own is None else min(own, rules.express_duration_s)
        # Program.eval runs the states on a worker thread and joins it for the program's
        # TimeoutSeconds; the Express limit is the same kind of execution-level timeout.
        env.next_state_name = self.start_at.start_at_name
        from moto.stepfunctions.parser.asl.component.eval_component import EvalComponent
        from moto.stepfunctions.parser.utils import TMP_THREADS

        worker = threading.Thread(target=EvalComponent.eval, args=(self, env), daemon=True)
        TMP_THREADS.append(worker)
        worker.start()
        worker.join(timeout=limit)
        if worker.is_alive():
            env.set_timed_out()

    _patch(stack, Execution, "get_start_state_machine_details", details)
    _patch(stack, Program, "eval", evaluate)


def _states_all_leaves_terminal_errors(stack: ExitStack) -> None:
    """moto's ``States.ALL`` matches every error; AWS's leaves States.DataLimitExceeded and
    States.Runtime to fail the execution (a Retrier or Catcher naming them still matches)."""
    from moto.stepfunctions.parser.asl.component.common.error_name.error_equals_decl import (
        ErrorEqualsDecl,
    )

    original = ErrorEqualsDecl._eval_body

    def matches(self: ErrorEqualsDecl, env: Any) -> None:
        name = getattr(env.stack[-1], "error_name", None)
        if name in BEYOND_STATES_ALL and all(n.error_name != name for n in self.error_names):
            env.stack.pop()
            env.stack.append(False)
            return
        original(self, env)

    _patch(stack, ErrorEqualsDecl, "_eval_body", matches)


def _branch_errors_keep_their_names(stack: ExitStack) -> None:
    """A Parallel branch or Map iteration that fails re-raises its error as a custom error
    name, and moto refuses custom names starting with ``States.``: a branch failing with
    States.DataLimitExceeded (or States.Timeout, States.TaskFailed, ...) surfaced as
    ``States.Runtime: ValueError``. AWS fails the Parallel/Map state with the branch's error."""
    from moto.stepfunctions.parser.asl.component.common.error_name.custom_error_name import (
        CustomErrorName,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.error_name import ErrorName
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
        StatesErrorName,
    )
    from moto.stepfunctions.parser.asl.component.state.exec.state_map.iteration import iteration_worker
    from moto.stepfunctions.parser.asl.component.state.exec.state_parallel import branches_decl

    def named(error_name: str | None = None) -> ErrorName:
        if error_name is None or not str(error_name).startswith("States."):
            return CustomErrorName(error_name=error_name)
        try:
            return StatesErrorName.from_name(error_name)
        except ValueError:  # a States.* name moto's grammar does not know: keep it as given
            unknown = CustomErrorName.__new__(CustomErrorName)
            ErrorName.__init__(unknown, error_name)
            return unknown

    _patch(stack, branches_decl, "CustomErrorName", named)
    _patch(stack, iteration_worker, "CustomErrorName", named)


def _states_failure(env: Any, error: str, cause: str) -> Exception:
    """A failure moto raises as its own for a States.* error: ``error`` is the type's name in
    moto's StatesErrorNameType (StatesRuntime, StatesStatesDataLimitExceeded)."""
    from moto.stepfunctions.parser.api import (
        ExecutionFailedEventDetails,
        HistoryEventType,
        TaskFailedEventDetails,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.failure_event import (
        FailureEvent,
        FailureEventException,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name import (
        StatesErrorName,
    )
    from moto.stepfunctions.parser.asl.component.common.error_name.states_error_name_type import (
        StatesErrorNameType,
    )
    from moto.stepfunctions.parser.asl.eval.event.event_detail import EventDetails

    typ = getattr(StatesErrorNameType, error)
    details = (
        EventDetails(taskFailedEventDetails=TaskFailedEventDetails(error=typ.to_name(), cause=cause))  # type: ignore[typeddict-item]  # moto's TypedDicts are total
        if error == "StatesRuntime"
        else EventDetails(  # type: ignore[typeddict-item]
            executionFailedEventDetails=ExecutionFailedEventDetails(error=typ.to_name(), cause=cause)
        )
    )
    return FailureEventException(
        failure_event=FailureEvent(
            env=env,
            error_name=StatesErrorName(typ=typ),
            event_type=HistoryEventType.TaskFailed,
            event_details=details,
        )
    )


def _state_name(env: Any) -> str:
    state = env.states.context_object.context_object_data.get("State") or {}
    return str(state.get("Name", "?"))


def _missing_path_is_runtime_error(stack: ExitStack) -> None:
    """In a Task's Parameters or ResultSelector, moto turns a path that selects nothing into an
    ordinary task failure (error "Exception") that Retry and Catch on States.ALL handle. AWS
    fails the state with States.Runtime ("The JSONPath ... could not be found in the input"),
    which States.ALL does not catch
    (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html)."""
    from moto.stepfunctions.parser.asl.component.common.parargs import Parameters
    from moto.stepfunctions.parser.asl.component.common.result_selector import ResultSelector
    from moto.stepfunctions.parser.asl.utils.json_path import NoSuchJsonPathError

    for component in (Parameters, ResultSelector):
        original = component._eval_body

        def evaluate(self: Any, env: Any, _original: Callable[[Any, Any], None] = original) -> None:
            try:
                _original(self, env)
            except NoSuchJsonPathError as missing:
                # moto prefixes the state's name and event id, as AWS does.
                raise _states_failure(
                    env,
                    "StatesRuntime",
                    f"The JSONPath '{missing.json_path}' specified for the field "
                    f"'{getattr(env, 'next_field_name', '?')}' could not be found in the input "
                    f"'{json.dumps(missing.data, separators=(',', ':'))[:1000]}'",
                ) from missing

        _patch(stack, component, "_eval_body", evaluate)


def _within_payload_limit(value: Any) -> bool:
    text = value if isinstance(value, str) else json.dumps(value, separators=(",", ":"))
    return len(text.encode("utf-8")) <= STATE_PAYLOAD_LIMIT_BYTES


def _state_payload_limit(stack: ExitStack) -> None:
    """moto checks a state's output and a task's result against 256 KiB but refuses exactly
    262,144 bytes (AWS's maximum, inclusive), counts a Lambda task's Invoke response rather than
    its payload, and never checks a state's input after Parameters, which AWS reports as
    States.DataLimitExceeded too
    (https://docs.aws.amazon.com/step-functions/latest/dg/concepts-error-handling.html)."""
    from moto.stepfunctions.parser.asl.component.common.parargs import Parameters
    from moto.stepfunctions.parser.asl.component.state import state
    from moto.stepfunctions.parser.asl.component.state.exec.state_task import state_task_lambda
    from moto.stepfunctions.parser.asl.component.state.exec.state_task.service import state_task_service

    for module in (state, state_task_lambda, state_task_service):
        _patch(stack, module, "is_within_size_quota", _within_payload_limit)

    # A Lambda task's result is the function's payload; moto measured the whole Invoke response
    # around it (status code, version) and refused payloads a little under the limit.
    lambda_task = state_task_lambda.StateTaskLambda
    verify = lambda_task._verify_size_quota

    def verify_payload(self: Any, env: Any, value: Any) -> None:
        verify(self, env, value["Payload"] if isinstance(value, dict) and "Payload" in value else value)

    _patch(stack, lambda_task, "_verify_size_quota", verify_payload)

    original = Parameters._eval_body

    def evaluate(self: Parameters, env: Any) -> None:
        original(self, env)
        if not _within_payload_limit(env.stack[-1]):
            raise _states_failure(
                env,
                "StatesStatesDataLimitExceeded",
                f"The state/task '{_state_name(env)}' has an input after Parameters with a size "
                "exceeding the maximum number of bytes service limit.",
            )

    _patch(stack, Parameters, "_eval_body", evaluate)  # over the missing-path patch: both hold


# -- SQS ----------------------------------------------------------------------------------------


def message_size(body: str, attributes: dict[str, Any] | None) -> int:
    """A message's size as SQS counts it: the body and every attribute's name, type and value,
    in bytes (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_MessageAttributeValue.html:
    "All parts of the message attribute, including Name, Type, and Value, are part of the
    message size restriction")."""
    size = len(body.encode("utf-8"))
    for name, value in (attributes or {}).items():
        size += len(name.encode("utf-8")) + len(str(value.get("DataType", "")).encode("utf-8"))
        if "StringValue" in value:
            size += len(str(value["StringValue"]).encode("utf-8"))
        binary = value.get("BinaryValue")
        if binary is not None:
            size += len(binary) if isinstance(binary, bytes) else len(str(binary).encode("utf-8"))
    return size


def _sqs_message_size_in_bytes(stack: ExitStack) -> None:
    """moto compares the body's length in characters with the queue's MaximumMessageSize and
    ignores attributes. SQS counts UTF-8 bytes, attributes included, against MaximumMessageSize
    ("The limit of how many bytes a message can contain before Amazon SQS rejects it", up to
    and by default 1,048,576 bytes since AWS raised the limit from 256 KiB:
    https://docs.aws.amazon.com/AWSSimpleQueueService/latest/APIReference/API_SetQueueAttributes.html,
    https://aws.amazon.com/blogs/compute/more-room-to-build-serverless-services-now-support-payloads-up-to-1-mb/)."""
    from moto.sqs.exceptions import InvalidParameterValue
    from moto.sqs.models import SQSBackend

    original = SQSBackend.send_message

    def send(self: SQSBackend, queue_name: str, message_body: str, *args: Any, **kwargs: Any) -> Any:
        queue = self.get_queue(queue_name)
        limit = int(queue.maximum_message_size)  # type: ignore[attr-defined]
        attributes = kwargs.get("message_attributes", args[0] if args else None)
        if message_size(message_body, attributes) > limit:
            raise InvalidParameterValue(
                f"One or more parameters are invalid. Reason: Message must be shorter than {limit} bytes."
            )
        return original(self, queue_name, message_body, *args, **kwargs)

    _patch(stack, SQSBackend, "send_message", send)


def _sqs_clock(stack: ExitStack, rules: AwsRules) -> None:
    """SQS's clock, ahead of the wall clock by ``rules.queue_clock_offset_s``: a received message
    is hidden for its visibility timeout
    (https://docs.aws.amazon.com/AWSSimpleQueueService/latest/SQSDeveloperGuide/sqs-visibility-timeout.html)
    and a test moves the clock instead of sleeping through it."""
    from moto.sqs import models

    wall, wall_millis = getattr(models, "unix_time"), getattr(models, "unix_time_millis")  # noqa: B009

    def now(*args: Any) -> float:
        return float(wall(*args)) + rules.queue_clock_offset_s

    def now_millis(*args: Any) -> float:
        return float(wall_millis(*args)) + rules.queue_clock_offset_s * 1000.0

    _patch(stack, models, "unix_time", now)
    _patch(stack, models, "unix_time_millis", now_millis)


# -- Application Auto Scaling -------------------------------------------------------------------


def _scaling_policy_types_per_namespace(stack: ExitStack) -> None:
    """moto accepts any policy type on any target, registered or not; AWS refuses a type the
    namespace does not support (PolicyType in
    https://docs.aws.amazon.com/autoscaling/application/APIReference/API_PutScalingPolicy.html)
    and a policy for a target nobody registered ("You cannot create a scaling policy until you
    have registered the resource as a scalable target", same page)."""
    from moto.applicationautoscaling.exceptions import AWSValidationException
    from moto.applicationautoscaling.models import ApplicationAutoscalingBackend as Backend
    from moto.core.exceptions import JsonRESTError

    original = Backend.put_scaling_policy

    def put(
        self: Backend,
        policy_name: str,
        service_namespace: str,
        resource_id: str,
        scalable_dimension: str,
        policy_body: dict[str, Any],
        policy_type: str | None,
    ) -> Any:
        if policy_type_refused(policy_type, service_namespace):
            raise AWSValidationException(
                f"{policy_type} is not supported for service namespace {service_namespace}"
            )
        if resource_id not in self.targets.get(scalable_dimension, {}):
            raise JsonRESTError(
                "ObjectNotFoundException",
                f"No scalable target registered for service namespace: {service_namespace}, "
                f"resource ID: {resource_id}, scalable dimension: {scalable_dimension}",
            )
        return original(
            self, policy_name, service_namespace, resource_id, scalable_dimension, policy_body, policy_type
        )

    _patch(stack, Backend, "put_scaling_policy", put)


# -- Step Functions versions and aliases ----------------------------------------------------------


def _executions_start_through_aliases(stack: ExitStack, rules: AwsRules) -> None:
    """StartExecution takes a state machine's alias ARN: Step Functions picks one of the versions
    the alias routes to (by their weights), associates the execution with the alias and that
    version, and the execution runs that version to its end, whatever the alias points to later;
    DescribeExecution returns ``stateMachineAliasArn`` and ``stateMachineVersionArn``. An alias
    that does not exist is refused.
    https://docs.aws.amazon.com/step-functions/latest/dg/execution-alias-version-associate.html
    https://docs.aws.amazon.com/step-functions/latest/apireference/API_DescribeExecution.html
    moto refuses every alias ARN at StartExecution. The engine runs the version's definition on
    the machine itself (so ListExecutions and DescribeExecution on the machine's ARN see it, as
    in AWS), and refuses a version whose definition is no longer the machine's: the engine
    deploys once and never shifts an alias, so that would be a version it cannot run.

    A start on the unqualified ARN of a machine that has an alias runs in AWS (the latest
    revision, at once, whatever the alias's deployment is doing): :attr:`AwsRules.unqualified_start`
    decides (the engine refuses it when strict, and reports it either way)."""
    import random

    from moto.core.exceptions import AWSError
    from moto.stepfunctions.exceptions import StateMachineDoesNotExist
    from moto.stepfunctions.parser.models import StepFunctionsParserBackend as Backend
    from moto.stepfunctions.responses import StepFunctionResponse

    start, describe = Backend.start_execution, StepFunctionResponse.describe_execution

    def routed_start(self: Backend, state_machine_arn: str, *args: Any, **kwargs: Any) -> Any:
        parts = state_machine_arn.split(":")
        if len(parts) == 7 and rules.unqualified_start is not None:
            aliases = sorted(getattr(self.describe_state_machine(state_machine_arn), "aliases", {}))
            problem = (
                f"StartExecution on {state_machine_arn}, the unqualified ARN of a state machine with "
                f"alias {'/'.join(aliases)}: in AWS it runs the latest revision at once, past the "
                f"alias's gradual deploy. Start it through {state_machine_arn}:{aliases[0]} "
                "(in the template: !Ref <Machine>Alias<alias>)."
                if aliases
                else None
            )
            if problem is not None and rules.unqualified_start(problem):
                raise AWSError(problem, exception_type="UnqualifiedStartError")
        if len(parts) != 8 or parts[7].isdigit():  # unqualified, or a version (moto runs those)
            return start(self, state_machine_arn, *args, **kwargs)
        machine = self.describe_state_machine(":".join(parts[:7]))
        alias = machine.aliases.get(parts[7])
        if alias is None:
            raise StateMachineDoesNotExist(f"State Machine Does Not Exist: '{state_machine_arn}'")
        routes = alias.routing_configuration
        chosen = random.choices(routes, weights=[float(r["weight"]) for r in routes])[0]
        version = self.describe_state_machine(chosen["stateMachineVersionArn"])
        if version.definition != machine.definition:
            raise StateMachineDoesNotExist(
                f"{state_machine_arn} routes to {version.arn}, whose definition is no longer the "
                "machine's: the local engine runs only the definition it deployed"
            )
        execution = start(self, machine.arn, *args, **kwargs)
        setattr(execution, "state_machine_alias_arn", alias.arn)  # noqa: B010 - moto has no such field
        setattr(execution, "state_machine_version_arn", version.arn)  # noqa: B010
        return execution

    def described(self: StepFunctionResponse) -> Any:
        result = describe(self)
        execution = self.stepfunction_backend.describe_execution(self._get_param("executionArn"))
        for attribute, key in (
            ("state_machine_alias_arn", "stateMachineAliasArn"),
            ("state_machine_version_arn", "stateMachineVersionArn"),
        ):
            if getattr(execution, attribute, None):
                body = result.result
                assert isinstance(body, dict)  # moto's describe_execution builds a dict
                body[key] = getattr(execution, attribute)
        return result

    _patch(stack, Backend, "start_execution", routed_start)
    _patch(stack, StepFunctionResponse, "describe_execution", described)
