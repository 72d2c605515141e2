"""AWS adapters: each an interface with a boto3 implementation; clients injected or taken from
the one builder, :mod:`panelbrain.aws.clients`."""

from __future__ import annotations

from collections.abc import Callable


def conditional_write(write: Callable[[], object]) -> bool:
    """Run a conditional DynamoDB write: True if it was made, False if its condition failed."""
    from botocore.exceptions import ClientError

    try:
        write()
    except ClientError as exc:
        if exc.response["Error"]["Code"] == "ConditionalCheckFailedException":
            return False
        raise
    return True
