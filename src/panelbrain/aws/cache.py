"""The result cache: an answered reading, kept for its dataset's freshness window.

Key: a hash of what was asked, not of how it was typed: the dataset, its data version, the plan
in canonical form (intent, measure, counted values, breakdown, filters as the codes they keep)
and the weighting. Paraphrases and follow-ups that resolve to an answered reading share its key,
and a new data version never serves an old answer (deployed and on the local engine the data
version is the published dataset's content hash, and an answer is keyed by the version its plan
read: docs/adr/0025-datasets-in-s3.md). TTL: 1 h for real-time data, 24 h for
historical. DynamoDB deletes expired items late (hours to days after their TTL), so expiry is
checked on every read.
"""

from __future__ import annotations

import hashlib
import json
from abc import ABC, abstractmethod
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any

from panelbrain.aws import DynamoTable

if TYPE_CHECKING:
    from panelbrain.data.dictionary import Dataset

TTL_SECONDS = {"real_time": 3_600, "historical": 86_400}


def canonical_reading(plan: Mapping[str, Any], spec: Dataset) -> dict[str, Any]:
    """What decides the numbers of ``plan``, one way only: codes sorted, a negated filter as the
    codes it keeps ("not in Quebec" is the nine other provinces), two filters on a column as the
    codes both keep, and weighting only where the dataset has targets."""
    table = spec.main_table
    kept: dict[str, set[str]] = {}
    for entry in plan.get("filters") or []:
        codes = {str(v) for v in entry["values"]}
        if entry.get("negate"):
            codes = {v.value for v in table.column(str(entry["column"])).values} - codes
        column = str(entry["column"])
        kept[column] = kept[column] & codes if column in kept else codes
    weighting = spec.weighting
    weighted = bool(plan.get("weighted", True)) and weighting is not None
    return {
        "intent": plan["intent"],
        "measure": plan["measure"],
        "values": sorted({str(v) for v in plan.get("values") or []}) if plan["intent"] == "share" else [],
        "breakdown": plan.get("breakdown") or None,
        "filters": {column: sorted(codes) for column, codes in sorted(kept.items())},
        # The targets the weights were raked to are part of the answer: new targets, new key.
        "weighting": weighting.model_dump(mode="json") if weighted and weighting is not None else None,
    }


def reading_key(plan: Mapping[str, Any], spec: Dataset) -> str:
    """The cache key of a resolved plan over ``spec`` (its dataset and data version)."""
    text = json.dumps(
        {"dataset": spec.name, "data_version": spec.data_version, "reading": canonical_reading(plan, spec)},
        sort_keys=True,
        separators=(",", ":"),
    )
    return hashlib.sha256(text.encode()).hexdigest()


class ResultCache(ABC):
    @abstractmethod
    def get(self, key: str) -> dict[str, Any] | None:
        """The cached result, or None if absent or past its expiry."""

    @abstractmethod
    def put(self, key: str, result: dict[str, Any], ttl_s: int) -> None: ...


class DynamoResultCache(ResultCache, DynamoTable):
    """DynamoDB implementation; table from ``RESULT_CACHE_TABLE`` and the client from the
    builder unless given; TTL attribute ``expires_at``."""

    table_env = "RESULT_CACHE_TABLE"

    def get(self, key: str) -> dict[str, Any] | None:
        item = self.client.get_item(TableName=self.table_name, Key={"cache_key": {"S": key}}).get("Item")
        if item is None or float(item["expires_at"]["N"]) <= self.clock():
            return None
        result: dict[str, Any] = json.loads(item["result"]["S"])
        return result

    def put(self, key: str, result: dict[str, Any], ttl_s: int) -> None:
        self.client.put_item(
            TableName=self.table_name,
            Item={
                "cache_key": {"S": key},
                "result": {"S": json.dumps(result)},
                "expires_at": {"N": str(int(self.clock() + ttl_s))},
            },
        )
