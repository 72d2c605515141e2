"""The review service as the review functions build it: once per container, on first use.

``service.cache_clear()`` and ``secrets.cache_clear()`` forget them: the local engine does so for
each new emulator, whose secrets are new. Clients come from :mod:`panelbrain.aws.clients`.
"""

from __future__ import annotations

import functools
from typing import TYPE_CHECKING

from panelbrain.review.service import ReviewService

if TYPE_CHECKING:
    from panelbrain.aws.notify import Secrets


@functools.cache
def secrets() -> Secrets:
    from panelbrain.aws.notify import Secrets

    return Secrets()


@functools.cache
def service() -> ReviewService:
    from panelbrain.aws.callbacks import StepFunctionsCallbacks
    from panelbrain.aws.notify import AwsNotifier
    from panelbrain.aws.reviews import DynamoReviewStore
    from panelbrain.review.service import ReviewSettings

    return ReviewService(
        store=DynamoReviewStore(),
        callbacks=StepFunctionsCallbacks(),
        notifier=AwsNotifier(secrets()),
        signing_key=secrets().signing_key,
        settings=ReviewSettings.from_env(),
    )
