"""NotifyReview function (waitForTaskToken): keep the token server-side, tell the reviewers."""

import json
import os
from typing import Any

from panelbrain.aws.store import DynamoQueryStore, QueryStore

_store: QueryStore | None = None
_sns: Any = None


def handler(event: dict[str, Any], context: Any) -> dict[str, Any]:
    global _store, _sns
    _store = _store or DynamoQueryStore()
    if _sns is None:
        import boto3

        _sns = boto3.client("sns")
    query_id = event["query_id"]
    synthesis = event["synthesis"]
    _store.put_review_token(query_id, event["token"])
    body = (
        f"A panelbrain answer needs review (query {query_id}).\n\n"
        f"Question: {synthesis['question']}\n\nAnswer: {synthesis['answer']}\n\n"
        f"Confidence {synthesis['confidence']:.2f}: " + "; ".join(synthesis["confidence_reasons"]) + "\n\n"
        f"Approve or reject: panelbrain review {query_id} --approve | --reject\n"
    )
    _sns.publish(
        TopicArn=os.environ["REVIEW_TOPIC_ARN"],
        Subject=f"Review needed: {synthesis['question'][:80]}",
        Message=body,
        MessageAttributes={"query_id": {"DataType": "String", "StringValue": query_id}},
    )
    return {"notified": True, "query_id": query_id, "message": json.dumps({"length": len(body)})}
