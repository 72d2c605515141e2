"""``panelbrain datasets publish NAME``: a dataset's dictionary and data to the datasets bucket.

With ``--stack`` (and ``--region`` / ``--profile`` or the AWS environment) to the deployed
stack's ``DatasetsBucket``, found through CloudFormation as ``panelbrain ops`` finds its
resources; without it to the emulated bucket of a running ``panelbrain serve`` (``--url``), whose
functions read it at once. ``panelbrain ask`` needs no publish for the datasets in local files:
its engine publishes them when it starts. See docs/adr/0025-datasets-in-s3.md.
"""

from __future__ import annotations

from typing import Annotated, Any

import typer

from panelbrain.cli.common import LOCAL_URL, JsonOption, emit_json, out, post_to_serve, stack_errors
from panelbrain.errors import BadInputError, PanelbrainError

DATASETS_BUCKET = "DatasetsBucket"  # the bucket's logical id in template.yaml


class PublishServerError(PanelbrainError):
    """No ``panelbrain serve`` answered, or it failed the publish (exit 1)."""


def stack_bucket(cloudformation: Any, stack: str) -> str:
    """The physical name of ``stack``'s datasets bucket, found as ``panelbrain ops`` finds the
    stack's resources."""
    from panelbrain.ops.operate import physical_ids

    bucket = physical_ids(cloudformation, stack).get(DATASETS_BUCKET)
    if bucket:
        return bucket
    raise BadInputError(
        f"stack {stack} has no {DATASETS_BUCKET}: deploy this version of template.yaml first (sam deploy)"
    )


def _to_stack(name: str, stack: str, region: str | None, profile: str | None) -> dict[str, Any]:
    from botocore.exceptions import NoRegionError

    from panelbrain.aws import clients
    from panelbrain.data import remote
    from panelbrain.data.dictionary import dataset_dir, local_dataset_names

    if name not in local_dataset_names():
        raise BadInputError(
            f"no dataset {name!r} in local files; there are {', '.join(local_dataset_names())}"
        )
    with stack_errors(stack, "for"):
        try:
            bucket = stack_bucket(clients.client("cloudformation", region=region, profile=profile), stack)
            return remote.publish(
                clients.client("s3", region=region, profile=profile), bucket, name, dataset_dir(name)
            )
        except NoRegionError:  # a BotoCoreError: named here, before stack_errors sees it
            raise BadInputError("no AWS region for --stack: pass --region or set AWS_REGION") from None


def _to_local(name: str, url: str, timeout_s: float = 300.0) -> dict[str, Any]:
    return post_to_serve(
        url,
        f"/local/datasets/{name}/publish",
        {},
        error=PublishServerError,
        unreachable="start one to publish to its engine, or pass --stack NAME for a deployed stack "
        "(`panelbrain ask` publishes the local datasets to its own engine by itself)",
        route="publish",
        failed=f"to publish {name}",
        timeout_s=timeout_s,
    )


def publish(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The dataset (see `panelbrain datasets`).")],
    stack: Annotated[
        str | None,
        typer.Option(
            "--stack",
            envvar="PANELBRAIN_STACK",
            help="A deployed stack: publish to its datasets bucket (AWS credentials needed). "
            "Unset: the local server's engine.",
        ),
    ] = None,
    region: Annotated[str | None, typer.Option("--region", help="The stack's region.")] = None,
    profile: Annotated[str | None, typer.Option("--profile", help="An AWS profile.")] = None,
    url: Annotated[
        str,
        typer.Option(
            "--url", envvar="PANELBRAIN_URL", help="A `panelbrain serve` on this machine (without --stack)."
        ),
    ] = LOCAL_URL,
    as_json: JsonOption = False,
) -> None:
    """Publish a dataset's dictionary and data to the datasets bucket the functions read.

    Its content hash becomes its data version: answers cached for the older data are not served
    for the new. Publishing unchanged files changes nothing."""
    from panelbrain.data.remote import publish_summary

    result = _to_stack(name, stack, region, profile) if stack else _to_local(name, url)
    if as_json:
        emit_json(result)
        return
    out.print(publish_summary(result))
