"""The review service as the review functions build it: once per container, on first use.

``service.cache_clear()`` forgets it (the local engine does so for each new emulator; tests
do so to inject stand-ins through the environment).
"""

from __future__ import annotations

import functools

from panelbrain.review.service import ReviewService


@functools.cache
def service() -> ReviewService:
    import boto3

    from panelbrain.aws.notify import AwsNotifier, Secrets
    from panelbrain.aws.reviews import DynamoReviewStore
    from panelbrain.review.service import ReviewSettings

    secrets = Secrets()
    return ReviewService(
        store=DynamoReviewStore(),
        stepfunctions=boto3.client("stepfunctions"),
        notifier=AwsNotifier(secrets),
        signing_key=secrets.signing_key,
        settings=ReviewSettings.from_env(),
    )


@functools.cache
def slack_signing_secret() -> str | None:
    from panelbrain.aws.notify import AwsNotifier

    notifier = service().notifier
    assert isinstance(notifier, AwsNotifier)
    config = notifier.secrets.slack()
    return config.signing_secret if config else None
