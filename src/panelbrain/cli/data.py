"""The survey data itself: ``datasets`` (the dictionaries), ``sql`` (one guarded SELECT),
``rake`` (rim weighting of a file), ``tabulate`` (weighted estimates) and ``export``."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated, Any

import typer

from panelbrain.cli.common import DatasetOption, JsonOption, SeOption, emit_json, err, se_method
from panelbrain.errors import BadInputError


def datasets(as_json: JsonOption = False) -> None:
    """List the datasets: tables, columns, labels, values, synonyms and weighting targets."""
    from panelbrain.cli.present import datasets_view
    from panelbrain.data.catalog import default_targets, load_dataset
    from panelbrain.data.dictionary import dataset_names, load_dictionary

    documents = []
    for name in dataset_names():
        spec = load_dictionary(name)
        loaded = load_dataset(name, rows=1000) if spec.generated else load_dataset(name)
        targets, _ = default_targets(loaded) if spec.weighting else ({}, None)
        doc = spec.model_dump(mode="json")
        doc["resolved_targets"] = targets
        documents.append(doc)
    if as_json:
        emit_json({"datasets": documents})
        return
    datasets_view(documents)


def sql(
    statement: Annotated[str, typer.Argument(help="One SELECT statement.")],
    dataset: DatasetOption = "ces11",
    as_json: JsonOption = False,
) -> None:
    """Run one guarded, read-only SELECT against a dataset."""
    from panelbrain.cli.present import sql_document, sql_view
    from panelbrain.data.engine import QueryEngine

    result = QueryEngine.open(dataset).run(statement)
    if as_json:
        emit_json(sql_document(result))
        return
    sql_view(result)


def _read_frame(path: Path) -> Any:
    import pandas as pd

    if not path.is_file():
        raise BadInputError(f"input file {str(path)!r} does not exist")
    suffix = path.suffix.lower()
    try:
        if suffix == ".csv":
            return pd.read_csv(path)
        if suffix == ".parquet":
            return pd.read_parquet(path)
    except (ValueError, OSError) as exc:
        raise BadInputError(f"cannot read {str(path)!r}: {str(exc).splitlines()[0]}") from None
    raise BadInputError(f"input {str(path)!r} must be a .csv or .parquet file")


def _read_targets(path: Path) -> Any:
    if not path.is_file():
        raise BadInputError(f"targets file {str(path)!r} does not exist")
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise BadInputError(
            f"targets file {str(path)!r} is not valid JSON: {exc.msg} "
            f"at line {exc.lineno}, column {exc.colno}"
        ) from None


def _parse_cap(text: str | None) -> float | tuple[float, float] | None:
    if text is None:
        return None
    try:
        if ":" in text:
            low, high = text.split(":", 1)
            return float(low), float(high)
        return float(text)
    except ValueError:
        raise BadInputError(f"--cap must be a number (upper bound) or LOW:HIGH, got {text!r}") from None


def rake(
    input_path: Annotated[Path, typer.Argument(metavar="INPUT", help="Respondents, .csv or .parquet.")],
    targets: Annotated[
        Path, typer.Option("--targets", "-t", help='JSON: {"variable": {"category": proportion}}.')
    ],
    cap: Annotated[str | None, typer.Option(help="Largest weight (mean weight is 1), or LOW:HIGH.")] = None,
    out_path: Annotated[
        Path | None,
        typer.Option("--out", "-o", help="Write the rows plus a weight column (.csv or .parquet)."),
    ] = None,
    base_weight: Annotated[str | None, typer.Option(help="Column of design weights to start from.")] = None,
    weight_column: Annotated[
        str, typer.Option(help="Name of the weight column written by --out.")
    ] = "weight",
    tol: Annotated[
        float, typer.Option(help="Largest gap allowed between a weighted share and its target.")
    ] = 1e-10,
    max_iter: Annotated[int, typer.Option(help="Most raking passes before giving up.")] = 1000,
    as_json: JsonOption = False,
) -> None:
    """Rim-weight (rake) respondents to marginal targets, and report the weights' quality."""
    from panelbrain.cli.present import rake_view
    from panelbrain.data.weighting import rake as rake_frame

    frame = _read_frame(input_path)
    spec = _read_targets(targets)
    if out_path is not None:
        if out_path.suffix.lower() not in (".csv", ".parquet"):
            raise BadInputError(f"--out {str(out_path)!r} must end in .csv or .parquet")
        if out_path.resolve() == input_path.resolve():
            raise BadInputError("--out must not be the input file: the input is never overwritten")
        if weight_column in frame.columns and weight_column != base_weight:
            raise BadInputError(
                f"the input already has a column {weight_column!r}; choose another with --weight-column"
            )
    result = rake_frame(frame, spec, cap=_parse_cap(cap), tol=tol, max_iter=max_iter, base_weight=base_weight)
    if out_path is not None:
        written = frame.assign(**{weight_column: result.weights})
        if out_path.suffix.lower() == ".csv":
            written.to_csv(out_path, index=False, float_format="%.17g")
        else:
            written.to_parquet(out_path, index=False)
    report = result.report
    if as_json:
        emit_json(report.model_dump(mode="json") | ({"out": str(out_path)} if out_path else {}))
        return
    rake_view(report, out_path=out_path, weight_column=weight_column)


def tabulate(
    measure: Annotated[
        str, typer.Argument(help="Column to estimate: shares of a categorical, mean of a numeric.")
    ],
    by: Annotated[str | None, typer.Option(help="Column to break the estimate down by.")] = None,
    value: Annotated[
        list[str] | None, typer.Option(help="Only these values of a categorical measure.")
    ] = None,
    dataset: DatasetOption = "ces11",
    unweighted: Annotated[bool, typer.Option(help="Ignore the weights.")] = False,
    se: SeOption = "calibrated",
    as_json: JsonOption = False,
) -> None:
    """Weighted table of one measure, overall and by group, with 95 % intervals."""
    from panelbrain.cli.present import tabulate_view
    from panelbrain.data.catalog import load_dataset, weight_dataset
    from panelbrain.data.estimates import weighted_means, weighted_shares

    method = se_method(se)
    data = load_dataset(dataset)
    # The raking itself (weights and margins): the calibrated SE needs the margins.
    weights = None if unweighted else weight_dataset(data)
    se_choice = None if unweighted else method
    table = data.table
    if measure not in table.column_names:
        raise BadInputError(
            f"{measure!r} is not a column of {dataset} (columns: {', '.join(table.column_names)})"
        )
    if by is not None and by not in table.column_names:
        raise BadInputError(
            f"--by {by!r} is not a column of {dataset} (columns: {', '.join(table.column_names)})"
        )
    if table.column(measure).type == "categorical":
        result = weighted_shares(data.frame, measure, values=value, by=by, weights=weights, se=se_choice)
    else:
        result = weighted_means(data.frame, measure, by=by, weights=weights, se=se_choice)
    if as_json:
        emit_json(result.model_dump(mode="json"))
        return
    tabulate_view(result, table, measure=measure, by=by, weighted=weights is not None)


def export(
    dataset: Annotated[str, typer.Argument(help="Dataset name.")],
    out_path: Annotated[Path, typer.Option("--out", "-o", help="Destination .csv or .parquet.")],
    rows: Annotated[int | None, typer.Option(help="Rows to generate (generated datasets only).")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed (generated datasets only).")] = None,
) -> None:
    """Write a dataset's main table to a file (generate a synthetic panel of any size)."""
    from panelbrain.data.catalog import load_dataset
    from panelbrain.data.dictionary import load_dictionary

    if (rows is not None or seed is not None) and load_dictionary(dataset).generated is None:
        raise BadInputError(f"--rows and --seed apply to generated datasets; {dataset!r} is not one")
    suffix = out_path.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise BadInputError(f"--out {str(out_path)!r} must end in .csv or .parquet")
    with err.status(f"building {dataset}..."):
        frame = load_dataset(dataset, rows=rows, seed=seed).frame
        if suffix == ".csv":
            frame.to_csv(out_path, index=False)
        else:
            frame.to_parquet(out_path, index=False)
    err.print(f"wrote {len(frame):,} rows to {out_path}")
