"""Sizing the deployment: ``capacity`` (tokens, model units, concurrency), ``cost`` (a month's
bill) and ``simulate`` (the deployed pipeline, minute by minute)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from panelbrain.cli.common import JsonOption, emit_json, err
from panelbrain.errors import BadInputError

if TYPE_CHECKING:
    from panelbrain.pricing.quotas import QuotaSet


def _account_quotas(path: Path | None, regions: list[str]) -> dict[str, QuotaSet] | None:
    """Each region's quotas from ``--quotas FILE`` (None: the table's defaults)."""
    from panelbrain.pricing.quotas import load_quota_file

    return None if path is None else {region: load_quota_file(path, region) for region in regions}


def capacity(
    queries_per_day: Annotated[float, typer.Option(help="Queries a day to plan for.")],
    peak_factor: Annotated[float, typer.Option(help="Peak minute over the day's average minute.")] = 4.0,
    profile: Annotated[
        str, typer.Option(help="seed (the document's calls) or measured (this repository's prompts).")
    ] = "seed",
    regions: Annotated[
        int, typer.Option(help="Active regions to spread the load over, each against its own quotas.")
    ] = 1,
    quotas: Annotated[
        Path | None,
        typer.Option(help="Your account's applied quotas, YAML {quota id: value or {region: value}}."),
    ] = None,
    requested_quotas: Annotated[
        Path | None,
        typer.Option(help="Write the increases to request here, for `panelbrain simulate --quotas FILE`."),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Tokens, model units, Lambda concurrency and Step Functions load; every figure against its
    account quota, the increases to request (which quota, to what, where) or the regions needed."""
    from panelbrain.cli.present import capacity_view
    from panelbrain.ops.capacity import (
        REGION_ORDER,
        SEED_PROFILE,
        measured_profile,
        plan,
        regional_plan,
    )
    from panelbrain.ops.capacity import (
        requested_quotas as as_requested,
    )

    if profile not in ("seed", "measured"):
        raise BadInputError(f"--profile must be seed or measured, got {profile!r}")
    if queries_per_day <= 0 or peak_factor < 1:
        raise BadInputError("--queries-per-day must be positive and --peak-factor at least 1")
    if not 1 <= regions <= len(REGION_ORDER):
        raise BadInputError(
            f"--regions must be between 1 and {len(REGION_ORDER)} ({', '.join(REGION_ORDER)})"
        )
    calls = SEED_PROFILE if profile == "seed" else measured_profile()
    result = plan(queries_per_day, peak_factor=peak_factor, profile=calls)
    names = list(REGION_ORDER[:regions])
    result["quotas"] = regional_plan(
        queries_per_day,
        regions,
        peak_factor=peak_factor,
        profile=calls,
        quotas=_account_quotas(quotas, names),
    )
    if requested_quotas is not None:
        import yaml

        try:
            requested_quotas.write_text(
                yaml.safe_dump(as_requested(result["quotas"]), sort_keys=True), encoding="utf-8"
            )
        except OSError as exc:
            raise BadInputError(f"--requested-quotas: {exc}") from None
        err.print(f"wrote {requested_quotas}")
    if as_json:
        emit_json(result)
        return
    capacity_view(result, queries_per_day=queries_per_day, peak_factor=peak_factor)


def cost(
    queries_per_day: Annotated[
        list[float] | None, typer.Option(help="Volumes to price (repeatable); default 100, 5,000 and 50,000.")
    ] = None,
    profile: Annotated[
        str, typer.Option(help="seed, or measured: this repository's prompts, or the usage in --usage files.")
    ] = "seed",
    usage: Annotated[
        list[Path] | None, typer.Option(help="`panelbrain ask --json` outputs whose recorded usage to price.")
    ] = None,
    regions: Annotated[
        int, typer.Option(help="Active regions sharing the load: adds replication and per-region units.")
    ] = 1,
    model_unit_hour: Annotated[
        list[str] | None,
        typer.Option(
            help="MODEL=USD: your quote per provisioned-throughput model unit and hour (repeatable)."
        ),
    ] = None,
    cache_hit_rate: Annotated[
        float | None,
        typer.Option(
            help="Result-cache hit rate to price (default the seed's 0.25); the measured one is "
            "ResultCacheHit / (ResultCacheHit + ResultCacheMiss) of the API's metrics."
        ),
    ] = None,
    as_json: JsonOption = False,
) -> None:
    """Monthly cost per component, gross spend then savings; every line with its formula."""
    from panelbrain.cli.present import cost_view
    from panelbrain.ops.capacity import SEED_PROFILE, CallProfile, measured_profile, profile_from_usage
    from panelbrain.ops.cost import Assumptions, monthly_cost

    volumes = queries_per_day or [100.0, 5_000.0, 50_000.0]
    if any(v <= 0 for v in volumes):
        raise BadInputError("--queries-per-day must be positive")
    if profile not in ("seed", "measured") or (usage and profile != "measured"):
        raise BadInputError("--profile must be seed or measured; --usage goes with --profile measured")
    calls: tuple[CallProfile, ...] = SEED_PROFILE
    if profile == "measured" and usage:
        try:
            documents = [json.loads(path.read_text(encoding="utf-8")) for path in usage]
            calls = profile_from_usage(documents)
        except (OSError, json.JSONDecodeError, ValueError, KeyError, AttributeError) as exc:
            raise BadInputError(f"--usage: {exc}") from None
    elif profile == "measured":
        calls = measured_profile()
    if cache_hit_rate is not None and not 0 <= cache_hit_rate <= 1:
        raise BadInputError(f"--cache-hit-rate must be between 0 and 1, got {cache_hit_rate:g}")
    assumptions = (
        Assumptions() if cache_hit_rate is None else Assumptions(result_cache_hit_rate=cache_hit_rate)
    )
    prices: dict[str, float] = {}
    for text in model_unit_hour or []:
        model, _, usd = text.partition("=")
        try:
            prices[model.strip()] = float(usd)
        except ValueError:
            raise BadInputError(f"--model-unit-hour {text!r} is not MODEL=USD (e.g. sonnet=40)") from None
        if model.strip() not in ("sonnet", "haiku") or prices[model.strip()] <= 0:
            raise BadInputError(
                f"--model-unit-hour {text!r}: the model is sonnet or haiku, the price positive"
            )
    if regions < 1:
        raise BadInputError("--regions must be at least 1")
    if regions > 1 or prices:
        from panelbrain.ops.cost import split_cost

        columns = [
            split_cost(v, regions, assumptions, profile=calls, model_unit_hour=prices) for v in volumes
        ]
    else:
        columns = [monthly_cost(v, assumptions, profile=calls) for v in volumes]
    if as_json:
        emit_json({"columns": columns})
        return
    cost_view(columns, volumes)


def simulate(
    queries_per_day: Annotated[float, typer.Option(help="Average queries a day.")],
    days: Annotated[float, typer.Option(help="Days to simulate.")] = 1.0,
    scaling: Annotated[
        str,
        typer.Option(
            help="template (the schedule + target tracking deployed), seed-steps (the seed's step rules, "
            "a what-if: AWS refuses step scaling for Lambda) or none."
        ),
    ] = "template",
    surge: Annotated[
        list[str] | None,
        typer.Option(
            help="Extra load HH:MM,MINUTES,PER_MINUTE on the first day (repeatable), e.g. 11:00,30,200."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Random seed.")] = 7,
    model_units: Annotated[
        str,
        typer.Option(
            help="on-demand (the account's Bedrock quotas), recommended (`panelbrain capacity`'s "
            "provisioned-throughput units) or unlimited."
        ),
    ] = "on-demand",
    quotas: Annotated[
        str,
        typer.Option(
            help="default (AWS's defaults), requested (with the increases `panelbrain capacity` asks "
            "for at this volume) or a FILE of your account's quotas."
        ),
    ] = "default",
    regions: Annotated[
        int, typer.Option(help="Simulate the first region of a split over this many regions (its share).")
    ] = 1,
    plot: Annotated[Path | None, typer.Option(help="Write a PNG of the simulated period here.")] = None,
    as_json: JsonOption = False,
) -> None:
    """Discrete-event simulation of the deployed pipeline held to the account's quotas: latency,
    cold starts, throttles by quota and what saturates first, failed questions, queue."""
    from rich.progress import Progress

    from panelbrain.cli.present import simulation_view
    from panelbrain.ops.simulate import SCALING_MODES, SimConfig, Simulation, parse_surge

    if scaling not in SCALING_MODES:
        raise BadInputError(f"--scaling must be one of {', '.join(SCALING_MODES)}, got {scaling!r}")
    try:
        surges = tuple(parse_surge(text) for text in surge or [])
    except ValueError as exc:
        raise BadInputError(f"--surge: {exc}") from None
    if plot is not None and plot.suffix.lower() != ".png":
        raise BadInputError(f"--plot {str(plot)!r} must end in .png")
    if queries_per_day <= 0 or not 0 < days <= 14:
        raise BadInputError("--queries-per-day must be positive and --days between 0 and 14")
    if model_units not in ("on-demand", "recommended", "unlimited"):
        raise BadInputError(f"--model-units must be on-demand, recommended or unlimited, got {model_units!r}")
    from panelbrain.ops.capacity import REGION_ORDER, regional_plan, requested_quotas
    from panelbrain.pricing.quotas import QuotaSet, load_quota_file

    if not 1 <= regions <= len(REGION_ORDER):
        raise BadInputError(f"--regions must be between 1 and {len(REGION_ORDER)}")
    region = REGION_ORDER[0]
    if quotas == "default":
        account = QuotaSet.defaults(region)
    elif quotas == "requested":
        increases = requested_quotas(regional_plan(queries_per_day, regions))
        account = QuotaSet(region, {q: by_region[region] for q, by_region in increases.items()}, "requested")
    else:
        account = load_quota_file(Path(quotas), region)
    config = SimConfig(
        queries_per_day / regions, days=days, scaling=scaling, seed=seed, surges=surges, quotas=account
    )
    if model_units == "recommended":
        from panelbrain.ops.capacity import recommended_tpm_quota

        config.tpm_quota = recommended_tpm_quota(queries_per_day / regions)
    elif model_units == "unlimited":  # no Bedrock throttling: Lambda scaling alone
        config.tpm_quota = {"sonnet": 1e12, "haiku": 1e12}
    with Progress(console=err, transient=True, disable=as_json) as bar:
        task = bar.add_task("simulating", total=days * 86_400)
        simulation = Simulation(config, progress=lambda now: bar.update(task, completed=now))
        result = simulation.run()
    if plot is not None:
        try:
            from panelbrain.ops.simulate import plot_day
        except ImportError:  # pragma: no cover - matplotlib is an optional extra
            raise BadInputError("--plot needs matplotlib: pip install 'panelbrain[plot]'") from None
        plot_day(simulation, str(plot))
        err.print(f"wrote {plot}")
    if as_json:
        emit_json(result)
        return
    simulation_view(result, days=days, queries_per_day=queries_per_day, scaling=scaling)
