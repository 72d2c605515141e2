"""Datasets served from the versioned datasets bucket (ADR 0025), on the local engine: the engine
publishes the local datasets to its emulated bucket on start, the functions read them from S3 into
the /tmp cache keyed by version, and a republish with changed data changes the data version, so
the answer and its result-cache key, while a query keeps the version its plan pinned."""

from __future__ import annotations

import csv
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from panelbrain.aws.cache import reading_key
from panelbrain.data import remote
from panelbrain.data.dictionary import dataset_dir, load_dictionary
from panelbrain.errors import BadInputError
from panelbrain.local.ask import ask
from panelbrain.local.engine import LocalEngine
from panelbrain.local.server import LocalServer

QUESTION = "What share support a ban on abortion?"
# How the planner reads QUESTION: the result cache keys an answer by its reading and version.
READING = {"intent": "share", "measure": "abortion", "values": ["Yes"], "breakdown": None, "filters": []}


def cache_key(plan: dict[str, Any], version: str) -> str:
    """The result-cache key of ``plan`` answered on CES11 at the published ``version``."""
    return reading_key(plan, load_dictionary("ces11", version))


@pytest.fixture
def cache_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    # An empty /tmp, as a new Lambda container has: whatever is there came from S3 in this test.
    monkeypatch.setenv("PANELBRAIN_CACHE_DIR", str(tmp_path / "tmp"))
    return tmp_path / "tmp" / "datasets"


@pytest.fixture
def engine(cache_dir: Path) -> Iterator[LocalEngine]:
    with LocalEngine.running() as running:
        yield running


def support(answer: dict[str, Any]) -> float:
    [row] = [r for r in answer["table"] if r["category"] == "Yes" and r["group"] == "All"]
    return float(row["estimate"])


def cached_keys(engine: LocalEngine) -> set[str]:
    items = engine.clients["dynamodb"].scan(TableName="ResultCacheTable")["Items"]
    return {item["cache_key"]["S"] for item in items}


def changed_ces11(folder: Path) -> Path:
    """CES11 with its first 400 respondents turned to support a ban."""
    shutil.copytree(dataset_dir("ces11"), folder)
    with (folder / "ces11.csv").open(newline="") as f:
        rows = list(csv.DictReader(f))
    for row in rows[:400]:
        row["abortion"] = "Yes"
    with (folder / "ces11.csv").open("w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=list(rows[0]), quoting=csv.QUOTE_NONNUMERIC)
        writer.writeheader()
        writer.writerows(rows)
    return folder


def test_ask_reads_the_published_dataset_from_s3_and_a_republish_changes_version_answer_and_cache_key(
    engine: LocalEngine, cache_dir: Path, tmp_path: Path
) -> None:
    # GIVEN the engine has published CES11 from local files to its datasets bucket
    bucket = remote.bucket()
    assert bucket is not None
    first = engine.published_datasets["ces11"]["data_version"]
    assert first.startswith("sha256-")
    # WHEN a question is asked through the API, queue and pipeline
    before = ask(engine, QUESTION)
    # THEN the data functions fetched that version from S3 into the /tmp cache, keyed by version
    assert sorted(p.name for p in (cache_dir / "ces11").iterdir()) == [first]
    assert (cache_dir / "ces11" / first / "ces11.csv").read_bytes() == (
        dataset_dir("ces11") / "ces11.csv"
    ).read_bytes()
    # AND the answer is cached under that version
    assert cache_key(READING, first) in cached_keys(engine)

    # WHEN CES11 is republished with changed data and the same question asked again
    published = remote.publish(engine.clients["s3"], bucket, "ces11", changed_ces11(tmp_path / "ces11"))
    second = published["data_version"]
    after = ask(engine, QUESTION)
    # THEN the data version is the new content's hash, fetched into a directory of its own
    assert published["changed"] and second != first
    assert sorted(p.name for p in (cache_dir / "ces11").iterdir()) == sorted([first, second])
    # AND the answer was computed again, on the new data, not served from the cache
    assert after["route"] != "cache"
    assert support(after) > support(before) + 0.05
    # AND it is cached under the new version's key, beside the old one
    assert {cache_key(READING, v) for v in (first, second)} <= cached_keys(engine)


def test_a_query_planned_on_a_version_reads_it_after_a_republish(engine: LocalEngine, tmp_path: Path) -> None:
    # GIVEN CES11 published twice, the second time with changed data
    bucket = remote.bucket()
    assert bucket is not None
    first = engine.published_datasets["ces11"]["data_version"]
    second = remote.publish(engine.clients["s3"], bucket, "ces11", changed_ces11(tmp_path / "ces11"))
    # WHEN the version a plan pinned before the republish is read, and the current one
    pinned = remote.materialise("ces11", first)
    current = remote.materialise("ces11")
    # THEN the pinned one is the first version's bytes (S3 kept them), the current the second's
    assert pinned.data_version == first and current.data_version == second["data_version"]
    original = (dataset_dir("ces11") / "ces11.csv").read_bytes()
    assert (pinned.directory / "ces11.csv").read_bytes() == original
    assert (current.directory / "ces11.csv").read_bytes() != original


def test_publishing_unchanged_files_changes_nothing(engine: LocalEngine) -> None:
    bucket = remote.bucket()
    assert bucket is not None
    # WHEN the files the engine published on start are published again
    again = remote.publish(engine.clients["s3"], bucket, "ces11", dataset_dir("ces11"))
    # THEN the version stays, and no object gets a new version
    assert again == {
        "dataset": "ces11",
        "where": f"s3://{bucket}/datasets/ces11/",
        "data_version": engine.published_datasets["ces11"]["data_version"],
        "changed": False,
    }
    versions = engine.clients["s3"].list_object_versions(Bucket=bucket, Prefix="datasets/ces11/ces11.csv")
    assert len(versions["Versions"]) == 1


def test_datasets_publish_reaches_a_running_serve(engine: LocalEngine) -> None:
    from panelbrain.cli import app

    # GIVEN a running `panelbrain serve` over the engine
    server = LocalServer(engine, port=0, poll_s=0.02).start()
    try:
        # WHEN `panelbrain datasets publish` targets it, for a dataset and for a name not there
        published = CliRunner().invoke(app, ["datasets", "publish", "ces11", "--url", server.url, "--json"])
        unknown = CliRunner().invoke(app, ["datasets", "publish", "nosuch", "--url", server.url])
    finally:
        server.stop()
    # THEN the server published the local files to its bucket (unchanged since its start)
    assert published.exit_code == 0, published.output
    assert '"changed": false' in published.stdout
    assert engine.published_datasets["ces11"]["data_version"] in published.stdout
    # AND an unknown dataset is bad input (exit 2), named
    assert isinstance(unknown.exception, BadInputError)
    assert "no dataset 'nosuch' in local files" in unknown.exception.message


def test_an_answer_is_cached_under_the_version_its_plan_pinned_not_the_current_one(
    engine: LocalEngine, tmp_path: Path
) -> None:
    import json

    # GIVEN an answer computed on the version the engine published, which a republish replaced
    bucket = remote.bucket()
    assert bucket is not None
    first = engine.published_datasets["ces11"]["data_version"]
    second = remote.publish(engine.clients["s3"], bucket, "ces11", changed_ces11(tmp_path / "ces11"))
    event = json.loads((Path(__file__).parents[2] / "events" / "persist" / "pipeline.json").read_text())
    event["result"]["document"]["plan"]["data_version"] = first
    plan = event["result"]["document"]["plan"]
    # WHEN the Persist state records it
    engine.call("PersistFunction", event)
    # THEN the result cache holds it under the version it was computed on, never the newer one
    keys = cached_keys(engine)
    assert cache_key(plan, first) in keys
    assert cache_key(plan, second["data_version"]) not in keys
