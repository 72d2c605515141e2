"""The Step Functions callbacks adapter: botocore's answers become the review's own errors, and
a call the SDK retried is never taken for one that surely did not get through."""

from __future__ import annotations

from collections.abc import Iterator

import boto3
import pytest
from botocore.exceptions import ReadTimeoutError
from botocore.stub import Stubber

from panelbrain.aws.callbacks import StepFunctionsCallbacks
from panelbrain.review.ports import TaskCallbackUnavailableError, TaskTokenGoneError


@pytest.fixture
def stubbed() -> Iterator[tuple[StepFunctionsCallbacks, Stubber]]:
    client = boto3.client(
        "stepfunctions", region_name="us-east-1", aws_access_key_id="x", aws_secret_access_key="x"
    )
    with Stubber(client) as stubber:
        yield StepFunctionsCallbacks(client), stubber
        stubber.assert_no_pending_responses()


@pytest.mark.parametrize("code", ["TaskTimedOut", "TaskDoesNotExist", "InvalidToken"])
def test_a_task_that_no_longer_waits_is_token_gone(
    stubbed: tuple[StepFunctionsCallbacks, Stubber], code: str
) -> None:
    callbacks, stubber = stubbed
    stubber.add_client_error("send_task_success", code, "gone", 400)
    with pytest.raises(TaskTokenGoneError) as gone:
        callbacks.send_success("tok", "{}")
    assert (gone.value.reason, gone.value.maybe_delivered) == (code, False)


def test_gone_after_the_sdk_retried_may_have_been_delivered(
    stubbed: tuple[StepFunctionsCallbacks, Stubber],
) -> None:
    # The first attempt's answer was lost, the retry found the task closed: by that attempt?
    callbacks, stubber = stubbed
    stubber.add_client_error(
        "send_task_failure", "TaskTimedOut", "closed", 400, response_meta={"RetryAttempts": 1}
    )
    with pytest.raises(TaskTokenGoneError) as gone:
        callbacks.send_failure("tok", "ReviewRejectedError", "{}")
    assert gone.value.maybe_delivered


def test_a_throttle_is_unavailable_and_not_delivered(stubbed: tuple[StepFunctionsCallbacks, Stubber]) -> None:
    callbacks, stubber = stubbed
    stubber.add_client_error("send_task_heartbeat", "ThrottlingException", "Rate exceeded", 400)
    with pytest.raises(TaskCallbackUnavailableError, match="ThrottlingException") as busy:
        callbacks.send_heartbeat("tok")
    assert not busy.value.maybe_delivered


def test_a_lost_answer_may_have_been_delivered() -> None:
    class Unanswered:
        def send_task_success(self, **_: str) -> None:
            raise ReadTimeoutError(endpoint_url="https://states.us-east-1.amazonaws.com")

    with pytest.raises(TaskCallbackUnavailableError) as lost:
        StepFunctionsCallbacks(Unanswered()).send_success("tok", "{}")  # type: ignore[arg-type]
    assert lost.value.maybe_delivered
