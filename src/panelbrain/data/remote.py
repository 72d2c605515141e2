"""Datasets served from the versioned datasets bucket (``DATASETS_BUCKET``), kept in /tmp.

Deployed, no dataset travels in a function's package: ``panelbrain datasets publish`` uploads a
dataset's dictionary and data files to the bucket the template declares, and the functions that
read datasets materialise the published version into a local directory on first use, one
directory per version. The local engine publishes the built-in datasets to its emulated bucket
on start, so the functions read them the same way there (docs/adr/0025-datasets-in-s3.md).

Layout under ``datasets/<name>/``:

- ``dictionary.yaml`` and each file the dictionary names: the objects themselves. The bucket is
  versioned, so a republish adds versions and never overwrites the bytes a manifest points at.
- ``versions/<data_version>.json``: the manifest of one published version: each file's key,
  S3 version id and SHA-256. Written once, never changed.
- ``index.json``: the manifest of the current version, written last. A reader that reads it
  reads the files of exactly that version, by version id, however many publishes follow.

``data_version`` is the content hash of the published files: the result cache key includes it,
so an answer computed on older data is never served for newer data. A query reads the version
its plan pinned (:func:`materialise` with ``version``) from its manifest, so a republish while
it runs cannot mix two versions in one answer.

S3 behaviour relied on:

- In a versioning-enabled bucket every PUT stores a new version with its own version ID,
  returned in the response; earlier versions stay retrievable by ID
  (https://docs.aws.amazon.com/AmazonS3/latest/userguide/AddingObjectstoVersioningEnabledBuckets.html,
  https://docs.aws.amazon.com/AmazonS3/latest/userguide/Versioning.html).
- A GET with ``VersionId`` needs ``s3:GetObjectVersion`` (a plain GET ``s3:GetObject``), and a
  missing key answers 404 only to a caller with ``s3:ListBucket`` (403 otherwise)
  (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html).
- Reads after a successful write see it (strong read-after-write consistency), so a reader that
  sees the new index sees the objects it names
  (https://docs.aws.amazon.com/AmazonS3/latest/userguide/Welcome.html#ConsistencyModel).

Only boto3 (through :mod:`panelbrain.aws.clients`), pydantic and PyYAML are imported: the API
function reads dictionaries through this module and must not load pandas.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
import threading
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, ValidationError

from panelbrain.errors import BadInputError, DatasetNotFoundError, DictionaryError, PanelbrainError

BUCKET_ENV = "DATASETS_BUCKET"
# How long a container trusts the current version it read before it reads index.json again: a
# republish reaches every warm container within this many seconds (the API's cache look-up
# included). 0 reads it at every look-up.
REFRESH_ENV = "DATASETS_REFRESH_S"
DEFAULT_REFRESH_S = 15.0
PREFIX = "datasets/"
DICTIONARY = "dictionary.yaml"
INDEX = "index.json"
# Files beside the dictionary that travel with the data though no table names them: where the
# data comes from and under what licence.
COMPANIONS = ("LICENCE.md", "README.md")
_NAME = re.compile(r"^[a-z0-9_]{1,64}$")  # as the API accepts a dataset's name


class DatasetBucketError(PanelbrainError):
    """The datasets bucket holds something that is not a published dataset (a manifest naming a
    version that is gone, a file whose bytes do not match its manifest), or is not versioned."""


class PublishedFile(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    key: str
    version_id: str
    sha256: str
    bytes: int


class Manifest(BaseModel):
    """One published version of a dataset: what ``index.json`` and ``versions/*.json`` hold."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    data_version: str
    published_at: str
    files: dict[str, PublishedFile]


@dataclass(frozen=True)
class Materialised:
    """A dataset version in a local directory: ``directory`` holds its dictionary (and its
    data files when asked for), ``data_version`` is its content hash."""

    directory: Path
    data_version: str


def bucket() -> str | None:
    """The datasets bucket the functions read, or None: datasets come from local files."""
    return os.environ.get(BUCKET_ENV) or None


def _refresh_s() -> float:
    raw = os.environ.get(REFRESH_ENV)
    try:
        return DEFAULT_REFRESH_S if raw is None else max(0.0, float(raw))
    except ValueError:
        raise BadInputError(f"environment variable {REFRESH_ENV} must be a number, got {raw!r}") from None


def _s3() -> Any:
    from panelbrain.aws import clients

    return clients.client("s3")


def _key(name: str, file: str) -> str:
    return f"{PREFIX}{name}/{file}"


def _client_error() -> type[Exception]:
    from botocore.exceptions import ClientError  # botocore is loaded with the client already

    error: type[Exception] = ClientError
    return error


def _not_found(exc: Exception) -> bool:
    """A missing key or version: 404 (given s3:ListBucket, which the template grants)."""
    code = str(getattr(exc, "response", {}).get("Error", {}).get("Code", ""))
    return code in ("NoSuchKey", "404", "NotFound", "NoSuchVersion")


# -- reading ---------------------------------------------------------------------------------

_lock = threading.Lock()
# name -> (monotonic time read, the current manifest); manifests of pinned versions never change.
_current: dict[str, tuple[float, Manifest]] = {}
_pinned: dict[tuple[str, str], Manifest] = {}
_names: tuple[float, list[str]] | None = None


def forget() -> None:
    """Forget every manifest read: the next look-up reads the bucket again (after a publish in
    this process, and when the local engine starts a new emulator)."""
    global _names
    with _lock:
        _current.clear()
        _pinned.clear()
        _names = None


def _read_manifest(bucket_name: str, name: str, key: str, what: str) -> Manifest:
    try:
        body = _s3().get_object(Bucket=bucket_name, Key=key)["Body"].read()
    except _client_error() as exc:
        if _not_found(exc):
            raise DatasetNotFoundError(
                f"unknown dataset {name!r}: {what} is not in bucket {bucket_name} "
                f"(publish it: panelbrain datasets publish {name}); available: "
                f"{', '.join(dataset_names()) or 'none'}",
                dataset=name,
            ) from None
        raise
    try:
        return Manifest.model_validate_json(body)
    except ValidationError as exc:
        raise DatasetBucketError(f"s3://{bucket_name}/{key} is not a dataset manifest: {exc}") from None


def manifest(name: str, version: str | None = None) -> Manifest:
    """The manifest of ``version`` of ``name``, or of its current version (re-read at most every
    ``DATASETS_REFRESH_S`` seconds)."""
    bucket_name = bucket()
    if bucket_name is None:
        raise PanelbrainError(f"{BUCKET_ENV} is not set: datasets are read from local files")
    if not _NAME.fullmatch(name):
        raise DatasetNotFoundError(f"unknown dataset {name!r}: names are a-z, 0-9 and _", dataset=name)
    if version is not None:
        with _lock:
            found = _pinned.get((name, version))
        if found is None:
            key = _key(name, f"versions/{version}.json")
            found = _read_manifest(bucket_name, name, key, f"version {version}")
            with _lock:
                _pinned[(name, version)] = found
        return found
    now = time.monotonic()
    with _lock:
        cached = _current.get(name)
    if cached is not None and now - cached[0] < _refresh_s():
        return cached[1]
    current = _read_manifest(bucket_name, name, _key(name, INDEX), INDEX)
    with _lock:
        _current[name] = (now, current)
        _pinned[(name, current.data_version)] = current
    return current


def dataset_names() -> list[str]:
    """The datasets published to the bucket (those with an index.json), sorted."""
    global _names
    bucket_name = bucket()
    if bucket_name is None:
        return []
    now = time.monotonic()
    with _lock:
        names = _names
    if names is not None and now - names[0] < _refresh_s():
        return list(names[1])
    found = set()
    for page in _s3().get_paginator("list_objects_v2").paginate(Bucket=bucket_name, Prefix=PREFIX):
        for item in page.get("Contents", []):
            name, _, rest = item["Key"].removeprefix(PREFIX).partition("/")
            if rest == INDEX:
                found.add(name)
    listed = sorted(found)
    with _lock:
        _names = (now, listed)
    return listed


def cache_root() -> Path:
    """Where published versions are materialised: /tmp in Lambda (its only writable place)."""
    base = os.environ.get("PANELBRAIN_CACHE_DIR") or str(Path(tempfile.gettempdir()) / "panelbrain-cache")
    return Path(base) / "datasets"


def _download(bucket_name: str, file: str, published: PublishedFile, directory: Path) -> None:
    """One file of a version into ``directory``: the exact S3 version, checked against its
    SHA-256, renamed into place whole (concurrent readers never see a partial file)."""
    target = directory / file
    partial = directory / f".{file}.{os.getpid()}.{threading.get_ident()}.partial"
    digest = hashlib.sha256()
    try:
        response = _s3().get_object(Bucket=bucket_name, Key=published.key, VersionId=published.version_id)
    except _client_error() as exc:
        if _not_found(exc):
            raise DatasetBucketError(
                f"s3://{bucket_name}/{published.key} has no version {published.version_id}: the "
                "version this query was planned on is gone (expired); ask again"
            ) from None
        raise
    with partial.open("wb") as out:
        for chunk in response["Body"].iter_chunks(1 << 20):
            digest.update(chunk)
            out.write(chunk)
    if digest.hexdigest() != published.sha256:
        partial.unlink(missing_ok=True)
        raise DatasetBucketError(
            f"s3://{bucket_name}/{published.key} version {published.version_id} does not match "
            "its manifest's SHA-256: republish the dataset"
        )
    partial.replace(target)


def materialise(name: str, version: str | None = None, *, data: bool = True) -> Materialised:
    """The dataset ``name`` at ``version`` (default: the current one) in a local directory keyed
    by that version: its dictionary, and its data files too when ``data``. Files already there
    are not fetched again, so a warm container reads S3 once per version.

    Raises
    ------
    DatasetNotFoundError
        No such dataset (or version) is published.
    DatasetBucketError
        A file's version is gone or its bytes do not match the manifest.
    """
    found = manifest(name, version)
    directory = cache_root() / name / found.data_version
    wanted = [f for f in found.files if data or f == DICTIONARY]
    missing = [f for f in wanted if not (directory / f).is_file()]
    if missing:
        bucket_name = bucket()
        assert bucket_name is not None  # manifest() refused otherwise
        directory.mkdir(parents=True, exist_ok=True)
        for file in missing:
            _download(bucket_name, file, found.files[file], directory)
    return Materialised(directory, found.data_version)


def remote_dataset_dir(name: str, version: str | None = None, *, data: bool = False) -> Materialised | None:
    """What the dataset look-ups (:mod:`panelbrain.data.dictionary`, :mod:`panelbrain.data.catalog`)
    consult first: with ``DATASETS_BUCKET`` set, the published dataset materialised locally;
    without it, None (the local files serve)."""
    if bucket() is None:
        return None
    return materialise(name, version, data=data)


# -- publishing ------------------------------------------------------------------------------


def published_files(directory: Path) -> list[str]:
    """What publishing ``directory`` uploads: its dictionary, each table's file, and the
    companions present (licence, readme)."""
    import yaml

    from panelbrain.data.dictionary import Dataset

    dictionary = directory / DICTIONARY
    if not dictionary.is_file():
        raise BadInputError(f"{directory} has no {DICTIONARY}: not a dataset folder")
    try:
        spec = Dataset.model_validate(yaml.safe_load(dictionary.read_text(encoding="utf-8")))
    except (yaml.YAMLError, ValidationError) as exc:
        raise DictionaryError(f"{dictionary} is not a valid data dictionary: {exc}") from None
    files = [DICTIONARY]
    for table in spec.tables:
        if table.file is not None:
            if not (directory / table.file).is_file():
                raise BadInputError(
                    f"{dictionary}: table {table.name!r} names {table.file!r}, which is not there"
                )
            files.append(table.file)
    files += [c for c in COMPANIONS if (directory / c).is_file()]
    return files


def _sha256(path: Path) -> str:
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()


def content_hash(digests: dict[str, str]) -> str:
    """A dataset version's ``data_version``: a hash of its files' names and contents, so any
    change to the data or the dictionary changes it, and nothing else does."""
    text = "".join(f"{name}\0{digest}\n" for name, digest in sorted(digests.items()))
    return "sha256-" + hashlib.sha256(text.encode()).hexdigest()[:20]


def publish(s3: Any, bucket_name: str, name: str, directory: Path) -> dict[str, Any]:
    """Upload the dataset in ``directory`` as ``name``: its files, then the version's manifest,
    then ``index.json`` (last, so readers switch to a version only once all of it is there).
    Publishing the same content again uploads nothing and changes nothing.

    Returns a document naming the bucket, the data version and whether anything changed.
    """
    if not _NAME.fullmatch(name):
        raise BadInputError(f"dataset name {name!r}: use a-z, 0-9 and _ (at most 64), as the API accepts")
    files = published_files(directory)
    import yaml

    named = yaml.safe_load((directory / DICTIONARY).read_text(encoding="utf-8"))["name"]
    if named != name:
        # Its tables, the SQL guard's allow-list and the cache key all go by the dictionary's name.
        raise BadInputError(f"{directory / DICTIONARY} names the dataset {named!r}, not {name!r}")
    digests = {f: _sha256(directory / f) for f in files}
    data_version = content_hash(digests)
    where = f"s3://{bucket_name}/{PREFIX}{name}/"
    versioning = s3.get_bucket_versioning(Bucket=bucket_name).get("Status")
    if versioning != "Enabled":
        raise DatasetBucketError(
            f"bucket {bucket_name} is not versioned (status {versioning or 'never enabled'}): a "
            "republish would overwrite the data that queries in flight read"
        )
    try:
        current: Manifest | None = Manifest.model_validate_json(
            s3.get_object(Bucket=bucket_name, Key=_key(name, INDEX))["Body"].read()
        )
    except ValidationError:
        current = None  # not a manifest of ours: this publish writes one
    except _client_error() as exc:
        if not _not_found(exc):
            raise
        current = None
    if current is not None and current.data_version == data_version:
        return {"dataset": name, "where": where, "data_version": data_version, "changed": False}
    published: dict[str, PublishedFile] = {}
    for file in files:
        key = _key(name, file)
        # upload_file: multipart above its threshold (a large panel), with our digest as
        # metadata; it returns nothing, so HEAD tells the version just written, and the digest
        # proves it is ours and not a concurrent publisher's.
        s3.upload_file(
            str(directory / file), bucket_name, key, ExtraArgs={"Metadata": {"sha256": digests[file]}}
        )
        head = s3.head_object(Bucket=bucket_name, Key=key)
        if head.get("Metadata", {}).get("sha256") != digests[file] or not head.get("VersionId"):
            raise DatasetBucketError(
                f"s3://{bucket_name}/{key} changed while it was being published (another publish?): try again"
            )
        published[file] = PublishedFile(
            key=key,
            version_id=head["VersionId"],
            sha256=digests[file],
            bytes=(directory / file).stat().st_size,
        )
    document = Manifest(
        name=name,
        data_version=data_version,
        published_at=datetime.now(UTC).isoformat(timespec="seconds"),
        files=published,
    ).model_dump_json(indent=2)
    for key in (_key(name, f"versions/{data_version}.json"), _key(name, INDEX)):
        s3.put_object(Bucket=bucket_name, Key=key, Body=document.encode(), ContentType="application/json")
    forget()  # this process reads the new version at once
    return {
        "dataset": name,
        "where": where,
        "data_version": data_version,
        "previous_version": current.data_version if current else None,
        "changed": True,
        "files": {f: {"bytes": p.bytes, "version_id": p.version_id} for f, p in published.items()},
    }


def publish_summary(result: dict[str, Any]) -> str:
    """One line for people."""
    if not result["changed"]:
        return f"{result['dataset']}: unchanged at {result['data_version']} in {result['where']}"
    before = f" (was {result['previous_version']})" if result.get("previous_version") else ""
    return f"{result['dataset']}: published {result['data_version']}{before} to {result['where']}"


__all__ = [
    "BUCKET_ENV",
    "DatasetBucketError",
    "Manifest",
    "Materialised",
    "bucket",
    "content_hash",
    "dataset_names",
    "forget",
    "manifest",
    "materialise",
    "publish",
    "publish_summary",
    "remote_dataset_dir",
]
