"""A CloudFormation client that lists a stack's resources the way ListStackResources answers:
in pages joined by NextToken (a stack of more than 100 resources takes more than one)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any


def listing(
    stack: str, physical: Mapping[str, str], *, page_size: int = 100, region: str = "us-east-1"
) -> Any:
    """A stubbed client whose ListStackResources of ``stack`` names ``physical`` (logical id to
    physical id), ``page_size`` resources a page."""
    import boto3
    from botocore.stub import Stubber

    client = boto3.client("cloudformation", region_name=region)
    stubber = Stubber(client)
    summaries = [
        {
            "LogicalResourceId": logical,
            "PhysicalResourceId": physical_id,
            "ResourceType": "AWS::Test",
            "LastUpdatedTimestamp": "2026-12-01T00:00:00Z",
            "ResourceStatus": "CREATE_COMPLETE",
        }
        for logical, physical_id in physical.items()
    ]
    starts = range(0, max(len(summaries), 1), page_size)
    for page, start in enumerate(starts, 1):
        response: dict[str, Any] = {"StackResourceSummaries": summaries[start : start + page_size]}
        if page < len(starts):
            response["NextToken"] = f"page-{page + 1}"
        expected = {"StackName": stack, **({"NextToken": f"page-{page}"} if page > 1 else {})}
        stubber.add_response("list_stack_resources", response, expected)
    stubber.activate()
    return client
