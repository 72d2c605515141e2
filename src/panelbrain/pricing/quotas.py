"""The AWS account quotas panelbrain meets, from the dated table beside this module.

:func:`quota_table` loads ``quotas.yaml`` and validates it (every quota with its source and the
day it was checked); :class:`QuotaSet` is the value of each quota in one region, the defaults
or an account's own (``--quotas FILE``) or the increases ``panelbrain capacity`` requests.

Examples
--------
>>> quota_table().get("lambda.concurrent_executions").in_region("us-east-1")
1000.0
>>> QuotaSet.defaults("us-east-2").value("stepfunctions.standard_start_execution.rate")
150.0
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date
from functools import cache
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from panelbrain.errors import BadInputError, PanelbrainError

DEFAULT_REGION = "us-east-1"


class QuotaTableError(PanelbrainError):
    """The quota table shipped with the package is malformed."""


class Quota(BaseModel):
    """One quota, its default (per region where it differs) and where AWS states it."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    service: Literal["lambda", "stepfunctions", "bedrock", "sqs", "dynamodb", "apigateway"]
    name: str
    unit: str
    scope: str
    default: float = Field(gt=0)
    regions: dict[str, float] = Field(default_factory=dict)
    adjustable: bool
    source: str
    checked: date
    basis: Literal["documented", "assumed"]
    note: str = ""

    @field_validator("source")
    @classmethod
    def _aws_documentation(cls, url: str) -> str:
        if not url.startswith("https://docs.aws.amazon.com/"):
            raise ValueError(f"source must be an AWS documentation page, got {url!r}")
        return url

    def in_region(self, region: str) -> float:
        return float(self.regions.get(region, self.default))


class Rule(BaseModel):
    """A documented rule the quotas are applied with (e.g. Bedrock's output-token burndown)."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str
    name: str
    value: float
    source: str
    checked: date
    basis: Literal["documented", "assumed"]
    note: str = ""


class QuotaTable(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    as_of: date
    quotas: tuple[Quota, ...]
    rules: tuple[Rule, ...] = ()

    def get(self, quota_id: str) -> Quota:
        for quota in self.quotas:
            if quota.id == quota_id:
                return quota
        raise KeyError(quota_id)

    def rule(self, rule_id: str) -> float:
        return next(r.value for r in self.rules if r.id == rule_id)

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(q.id for q in self.quotas)


@cache
def quota_table() -> QuotaTable:
    text = (resources.files("panelbrain.pricing") / "quotas.yaml").read_text(encoding="utf-8")
    try:
        table = QuotaTable.model_validate(yaml.safe_load(text))
    except ValidationError as exc:
        raise QuotaTableError(f"pricing/quotas.yaml: {exc}") from None
    duplicated = {i for i in table.ids if table.ids.count(i) > 1}
    if duplicated:
        raise QuotaTableError(f"pricing/quotas.yaml: quota ids repeated: {', '.join(sorted(duplicated))}")
    return table


class QuotaSet:
    """The value of every quota in ``region``: the table's defaults, overridden where given.

    ``label`` says where the values come from (default, requested, a file's name).
    """

    def __init__(self, region: str, overrides: Mapping[str, float] | None = None, label: str = "default"):
        table = quota_table()
        self.region = region
        self.label = label
        self.values = {q.id: q.in_region(region) for q in table.quotas}
        for quota_id, value in (overrides or {}).items():
            if quota_id not in self.values:
                raise BadInputError(f"unknown quota {quota_id!r}; known: {', '.join(table.ids)}")
            self.values[quota_id] = float(value)

    @classmethod
    def defaults(cls, region: str = DEFAULT_REGION) -> QuotaSet:
        return cls(region)

    def value(self, quota_id: str) -> float:
        return self.values[quota_id]

    def changed(self) -> dict[str, float]:
        """The quotas whose value differs from the region's default."""
        defaults = QuotaSet(self.region).values
        return {k: v for k, v in self.values.items() if v != defaults[k]}


def load_quota_file(path: Path, region: str = DEFAULT_REGION) -> QuotaSet:
    """Quotas from a YAML or JSON file: ``{quota id: value}`` or ``{quota id: {region: value}}``
    (what ``panelbrain capacity --requested-quotas FILE`` writes). Quotas not named keep their
    defaults; a region not named keeps its default."""
    try:
        document: Any = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, yaml.YAMLError) as exc:
        raise BadInputError(f"--quotas {str(path)!r}: {exc}") from None
    if not isinstance(document, dict):
        raise BadInputError(f"--quotas {str(path)!r}: expected a mapping of quota id to value")
    overrides: dict[str, float] = {}
    for quota_id, value in document.items():
        if isinstance(value, dict):
            if region not in value:
                continue
            value = value[region]
        if isinstance(value, bool) or not isinstance(value, int | float) or value <= 0:
            raise BadInputError(f"--quotas {str(path)!r}: {quota_id}: {value!r} is not a positive number")
        overrides[str(quota_id)] = float(value)
    try:
        return QuotaSet(region, overrides, label=path.name)
    except BadInputError as exc:
        raise BadInputError(f"--quotas {str(path)!r}: {exc.message}") from None
