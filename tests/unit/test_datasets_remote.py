"""panelbrain.data.remote on an emulated S3 bucket: what publishing refuses, what a reader gets,
and the dataset look-up with and without DATASETS_BUCKET."""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from moto import mock_aws

from panelbrain.aws import clients
from panelbrain.data import remote
from panelbrain.data.dictionary import dataset_dir, dataset_names, load_dictionary
from panelbrain.errors import DatasetNotFoundError
from tests.cloudformation_stubs import listing

BUCKET = "datasets-bucket"


@pytest.fixture
def s3(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
    monkeypatch.setenv("PANELBRAIN_CACHE_DIR", str(tmp_path / "tmp"))
    with mock_aws():
        import boto3

        client = boto3.client("s3", region_name="us-east-1")
        client.create_bucket(Bucket=BUCKET)
        with clients.override("s3", client):
            remote.forget()
            yield client
    remote.forget()


def versioned(s3: Any) -> None:
    s3.put_bucket_versioning(Bucket=BUCKET, VersioningConfiguration={"Status": "Enabled"})


def test_publishing_to_a_bucket_without_versioning_is_refused(s3: Any) -> None:
    # A republish would overwrite the bytes queries in flight read.
    with pytest.raises(remote.DatasetBucketError, match="is not versioned"):
        remote.publish(s3, BUCKET, "ces11", dataset_dir("ces11"))
    assert "Contents" not in s3.list_objects_v2(Bucket=BUCKET)


def test_the_lookup_reads_the_bucket_when_it_is_set_and_local_files_otherwise(
    s3: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    versioned(s3)
    published = remote.publish(s3, BUCKET, "ces11", dataset_dir("ces11"))
    # WITHOUT the bucket: the package's files, under the dictionary's own version label
    assert load_dictionary("ces11").data_version == "carData-3.0-5"
    assert dataset_names() == ["ces11", "synthetic"]
    # WITH it: what is published, under its content hash
    monkeypatch.setenv(remote.BUCKET_ENV, BUCKET)
    assert dataset_names() == ["ces11"]
    spec = load_dictionary("ces11")
    assert spec.data_version == published["data_version"]
    assert spec.main_table.column("gender").value_label("Female") == "Women"
    # AND an unpublished dataset is named as such, with what is published
    with pytest.raises(
        DatasetNotFoundError, match=r"unknown dataset 'synthetic'.*publish it.*available: ces11"
    ):
        load_dictionary("synthetic")


def test_a_file_whose_bytes_do_not_match_its_manifest_is_refused(
    s3: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a published version whose manifest says another SHA-256 for the data
    versioned(s3)
    published = remote.publish(s3, BUCKET, "ces11", dataset_dir("ces11"))
    index = json.loads(s3.get_object(Bucket=BUCKET, Key="datasets/ces11/index.json")["Body"].read())
    index["files"]["ces11.csv"]["sha256"] = "0" * 64
    s3.put_object(Bucket=BUCKET, Key="datasets/ces11/index.json", Body=json.dumps(index).encode())
    monkeypatch.setenv(remote.BUCKET_ENV, BUCKET)
    remote.forget()
    # WHEN a reader materialises it
    with pytest.raises(remote.DatasetBucketError, match="does not match its manifest"):
        remote.materialise("ces11")
    # THEN nothing half-read is left for the next reader
    folder = tmp_path / "tmp" / "datasets" / "ces11" / published["data_version"]
    assert not (folder / "ces11.csv").exists()
    assert not [p for p in folder.iterdir() if p.name.endswith(".partial")]


def test_the_content_hash_changes_with_any_published_file_and_only_then(tmp_path: Path) -> None:
    copy = tmp_path / "ces11"
    shutil.copytree(dataset_dir("ces11"), copy)
    digests = {f: remote._sha256(copy / f) for f in remote.published_files(copy)}
    assert sorted(digests) == ["LICENCE.md", "ces11.csv", "dictionary.yaml"]
    before = remote.content_hash(digests)
    (copy / "unrelated.txt").write_text("not published")
    assert remote.content_hash({f: remote._sha256(copy / f) for f in remote.published_files(copy)}) == before
    (copy / "dictionary.yaml").write_text((copy / "dictionary.yaml").read_text() + "\n# edited\n")
    assert remote.content_hash({f: remote._sha256(copy / f) for f in remote.published_files(copy)}) != before


def test_publish_with_a_stack_finds_its_datasets_bucket_through_cloudformation() -> None:
    from panelbrain.cli.publish import stack_bucket
    from panelbrain.errors import BadInputError

    # GIVEN a stack listing its payload and datasets buckets
    found = stack_bucket(
        listing("pb", {"PayloadBucket": "pb-payloadbucket-1", "DatasetsBucket": "pb-datasetsbucket-2"}), "pb"
    )
    # THEN publish targets the datasets bucket's physical name
    assert found == "pb-datasetsbucket-2"
    # AND a stack of an older template (no datasets bucket) is named as such
    with pytest.raises(BadInputError, match="stack pb has no DatasetsBucket: deploy this version"):
        stack_bucket(listing("pb", {"PayloadBucket": "pb-payloadbucket-1"}), "pb")


def test_publishing_a_folder_under_another_name_than_its_dictionary_is_refused(s3: Any) -> None:
    from panelbrain.errors import BadInputError

    versioned(s3)
    # The tables, the SQL guard's allow-list and the cache key go by the dictionary's name.
    with pytest.raises(BadInputError, match="names the dataset 'ces11', not 'ces12'"):
        remote.publish(s3, BUCKET, "ces12", dataset_dir("ces11"))
    assert "Versions" not in s3.list_object_versions(Bucket=BUCKET)
