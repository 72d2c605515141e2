"""A throttle from AWS reaches Step Functions under a name its Retry rules match.

botocore raises a throttle that outlasted its own retries as ``ClientError``; Lambda reports the
class name as the error type, and no Retry names ``ClientError``: the query failed at once.
"""

from __future__ import annotations

from typing import Any

import pytest
from botocore.exceptions import ClientError

from panelbrain.aws import clients
from panelbrain.aws.failures import aws_errors
from panelbrain.errors import TransientError
from panelbrain.local.ask import ask
from panelbrain.local.engine import LocalEngine

AMBIGUOUS = "What share of people in QC strongly support a ban"  # goes to review


def throttle(operation: str, code: str = "ThrottlingException", status: int = 400) -> ClientError:
    return ClientError(
        {"Error": {"Code": code, "Message": "Rate exceeded"}, "ResponseMetadata": {"HTTPStatusCode": status}},
        operation,
    )


class ThrottledOnce:
    """The Step Functions client, except that its first StartExecution of ``machine`` is
    throttled (as AWS does past the StartExecution quota, after botocore's own retries)."""

    def __init__(self, real: Any, machine_arn: str) -> None:
        self.real, self.machine_arn, self.throttled = real, machine_arn, 0

    def start_execution(self, **kwargs: Any) -> Any:
        if kwargs["stateMachineArn"] == self.machine_arn and not self.throttled:
            self.throttled += 1
            raise throttle("StartExecution")
        return self.real.start_execution(**kwargs)

    def __getattr__(self, name: str) -> Any:
        return getattr(self.real, name)


def test_a_throttled_start_review_is_retried_and_the_query_answered(engine: LocalEngine) -> None:
    # GIVEN StartReview's StartExecution throttled once
    real = engine.clients["stepfunctions"]
    started = engine.template.environment("StartReviewFunction")["REVIEW_STATE_MACHINE_ARN"]  # its alias
    with clients.override("stepfunctions", ThrottledOnce(real, started)) as sfn:
        # WHEN a question that needs a review is asked and approved
        result = ask(engine, AMBIGUOUS, review="approve")
    # THEN the state machine retried StartReview and the reviewer's approval answered it
    assert sfn.throttled == 1
    assert (result["status"], result["route"]) == ("answered", "review_approved")
    starts = [i for i in engine.invocations if i.function == "StartReviewFunction"]
    assert [i.error for i in starts[-2:]] == ["TransientError", None]


@pytest.mark.parametrize(
    ("code", "status"),
    [
        ("ThrottlingException", 400),
        ("ProvisionedThroughputExceededException", 400),
        ("SlowDown", 503),
        ("InternalFailure", 500),
    ],
)
def test_throttles_and_server_errors_leave_a_handler_as_transient(code: str, status: int) -> None:
    @aws_errors
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise throttle("UpdateItem", code, status)

    with pytest.raises(TransientError) as raised:
        handler({}, None)
    assert code in raised.value.message and "UpdateItem" in raised.value.message


def test_other_aws_errors_keep_their_name() -> None:
    @aws_errors
    def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
        raise throttle("GetItem", "AccessDeniedException", 400)

    with pytest.raises(ClientError):
        handler({}, None)
