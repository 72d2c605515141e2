"""Step Functions task callbacks (SendTaskSuccess / SendTaskFailure / SendTaskHeartbeat) behind
:class:`panelbrain.review.ports.TaskCallbacks`, botocore's errors turned into the review's own.

Step Functions answers a callback on a token whose task no longer waits with TaskTimedOut ("The
task token has either expired or the task associated with the token has already been closed"),
TaskDoesNotExist or InvalidToken
(https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskSuccess.html,
https://docs.aws.amazon.com/step-functions/latest/apireference/API_SendTaskHeartbeat.html):
a second callback on a token the first one closed gets the same answer as one after a timeout,
so the answer alone never says whether an earlier attempt got through.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from panelbrain.aws import clients
from panelbrain.review.ports import TaskCallbackUnavailableError, TaskTokenGoneError

if TYPE_CHECKING:
    from mypy_boto3_stepfunctions import SFNClient

GONE_CODES = frozenset({"TaskTimedOut", "TaskDoesNotExist", "InvalidToken"})


class StepFunctionsCallbacks:
    """The AWS implementation; the client from the builder unless given."""

    def __init__(self, client: SFNClient | None = None) -> None:
        self._client = client

    @property
    def client(self) -> SFNClient:
        return clients.client("stepfunctions") if self._client is None else self._client

    def send_success(self, token: str, output: str) -> None:
        _translated(lambda: self.client.send_task_success(taskToken=token, output=output))

    def send_failure(self, token: str, error: str, cause: str) -> None:
        _translated(lambda: self.client.send_task_failure(taskToken=token, error=error, cause=cause))

    def send_heartbeat(self, token: str) -> None:
        _translated(lambda: self.client.send_task_heartbeat(taskToken=token))


def _translated(call: Callable[[], Any]) -> None:
    from botocore.exceptions import BotoCoreError, ClientError, HTTPClientError
    from botocore.exceptions import ConnectionError as BotoConnectionError

    try:
        call()
    except ClientError as exc:
        code = str(exc.response.get("Error", {}).get("Code", ""))
        message = str(exc.response.get("Error", {}).get("Message", ""))
        # botocore retries throttles, 5xx and lost connections itself; after a retry the
        # first attempt may have been the one Step Functions took.
        retried = int(exc.response.get("ResponseMetadata", {}).get("RetryAttempts", 0) or 0) > 0
        where = f"Step Functions {exc.operation_name}"
        if code in GONE_CODES:
            raise TaskTokenGoneError(
                code, f"{where}: the task no longer waits ({code}: {message})", maybe_delivered=retried
            ) from exc
        raise TaskCallbackUnavailableError(
            code or "ClientError",
            f"{where} failed ({code}: {message}); try again in a moment",
            maybe_delivered=retried,
        ) from exc
    except (BotoConnectionError, HTTPClientError) as exc:
        # The SDK retries lost connections and read timeouts, and the last attempt's error
        # does not say whether an earlier one got through: Step Functions may have taken it.
        raise TaskCallbackUnavailableError(
            type(exc).__name__,
            f"Step Functions could not be reached or did not answer ({exc}); the call may have been taken",
            maybe_delivered=True,
        ) from exc
    except BotoCoreError as exc:
        raise TaskCallbackUnavailableError(
            type(exc).__name__, f"the Step Functions call failed before it was sent ({exc})"
        ) from exc
