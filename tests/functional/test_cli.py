"""The command line as a user meets it: exit codes, one-line errors, JSON documents, files."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
import yaml

TARGETS = {"sex": {"f": 0.5, "m": 0.5}, "age": {"young": 0.3, "old": 0.7}}


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "panelbrain.cli", *args], capture_output=True, text=True, timeout=120
    )


@pytest.fixture
def respondents(tmp_path: Path) -> Path:
    path = tmp_path / "respondents.csv"
    pd.DataFrame(
        {
            "id": range(10),
            "sex": ["f"] * 6 + ["m"] * 4,
            "age": ["young", "young", "young", "old", "old", "old", "young", "old", "old", "old"],
        }
    ).to_csv(path, index=False)
    return path


@pytest.fixture
def targets(tmp_path: Path) -> Path:
    path = tmp_path / "targets.json"
    path.write_text(json.dumps(TARGETS))
    return path


def assert_one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert text in lines[0]


def test_rake_json_report_and_out_file(respondents: Path, targets: Path, tmp_path: Path) -> None:
    out = tmp_path / "weighted.parquet"
    result = run("rake", str(respondents), "--targets", str(targets), "--out", str(out), "--json")
    assert result.returncode == 0, result.stderr
    report = json.loads(result.stdout)
    assert report["n"] == 10 and report["converged"] is True
    assert {v["variable"] for v in report["variables"]} == {"sex", "age"}
    written = pd.read_parquet(out)
    assert list(written.columns) == ["id", "sex", "age", "weight"]
    assert written.weight.mean() == pytest.approx(1.0)
    assert written.groupby("sex").weight.sum().to_dict() == pytest.approx({"f": 5.0, "m": 5.0})


def test_rake_human_output_shows_the_report(respondents: Path, targets: Path) -> None:
    result = run("rake", str(respondents), "--targets", str(targets), "--cap", "3")
    assert result.returncode == 0, result.stderr
    for text in ("effective n (Kish)", "design effect", "target vs unweighted vs weighted", "young"):
        assert text in result.stdout


@pytest.mark.parametrize(
    ("targets_text", "message"),
    [
        ('{"sex": {"f": 0.5, "m": 0.6}}', "targets for 'sex' sum to 1.1, not 1"),
        ('{"sex": {"f": 0.5, "m": 0.4, "x": 0.1}}', "target category 'sex'='x' has no respondents"),
        ('{"age": {"young": 1}}', "'age'='old' appears in the data (6 respondents) but has no target"),
        ('{"region": {"n": 1}}', "unknown variable 'region': not a column of the data"),
        ('{"sex": {"f": 0.5, "m": 0.5}', "is not valid JSON: Expecting ',' delimiter at line 1"),
    ],
)
def test_rake_bad_targets_exit_2_with_one_line(
    respondents: Path, tmp_path: Path, targets_text: str, message: str
) -> None:
    path = tmp_path / "bad.json"
    path.write_text(targets_text)
    assert_one_line_error(run("rake", str(respondents), "--targets", str(path)), message)


def test_rake_missing_value_is_named(tmp_path: Path, targets: Path) -> None:
    path = tmp_path / "gaps.csv"
    path.write_text("sex,age\nf,young\n,old\nm,old\n")
    assert_one_line_error(run("rake", str(path), "--targets", str(targets)), "'sex' has 1 missing value(s)")


def test_rake_unreachable_cap_gives_the_residual(respondents: Path, tmp_path: Path) -> None:
    path = tmp_path / "t.json"
    path.write_text('{"sex": {"f": 0.2, "m": 0.8}}')
    result = run("rake", str(respondents), "--targets", str(path), "--cap", "1.5")
    assert_one_line_error(result, "makes the targets unreachable")
    assert "residual 0.2" in result.stderr


def test_rake_never_overwrites_input_or_existing_weight(respondents: Path, targets: Path) -> None:
    result = run("rake", str(respondents), "--targets", str(targets), "--out", str(respondents))
    assert_one_line_error(result, "--out must not be the input file")
    assert "weight" not in pd.read_csv(respondents).columns


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["rake", "nope.csv", "--targets", "t.json"], "input file 'nope.csv' does not exist"),
        (["rake", "x.txt", "--targets", "t.json"], "does not exist"),
        (["sql", "SELECT * FROM ces11", "--dataset", "ces99"], "unknown dataset 'ces99'"),
        (["tabulate", "abortion", "--by", "planet"], "--by 'planet' is not a column of ces11"),
        (["frobnicate"], "No such command 'frobnicate'"),
        (["rake", "--cap", "1"], "Missing argument 'INPUT'"),
    ],
)
def test_bad_input_exits_2_with_one_line(args: list[str], message: str) -> None:
    assert_one_line_error(run(*args), message)


def test_sql_rejection_names_rule_and_fragment() -> None:
    result = run("sql", "SELECT * FROM read_parquet('/etc/shadow')")
    assert_one_line_error(result, "table_function: table functions and file reads are not allowed")
    assert "READ_PARQUET('/etc/shadow')" in result.stderr


def test_sql_json_document() -> None:
    result = run("sql", "SELECT gender, count(*) AS n FROM ces11 GROUP BY 1 ORDER BY 1", "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["rows"] == [{"gender": "Female", "n": 1244}, {"gender": "Male", "n": 987}]
    assert document["sql"].endswith("LIMIT 10000")
    assert document["truncated"] is False


def test_datasets_json_lists_dictionaries_and_resolved_targets() -> None:
    result = run("datasets", "--json")
    assert result.returncode == 0, result.stderr
    documents = {d["name"]: d for d in json.loads(result.stdout)["datasets"]}
    assert set(documents) == {"ces11", "synthetic"}
    ces11 = documents["ces11"]
    assert ces11["licence"].startswith("GPL")
    assert ces11["resolved_targets"]["gender"] == {"Female": 0.514049, "Male": 0.485951}
    gender = next(c for c in ces11["tables"][0]["columns"] if c["name"] == "gender")
    assert "sex" in gender["synonyms"]


def test_tabulate_json_weighted_table() -> None:
    result = run("tabulate", "abortion", "--by", "gender", "--value", "Yes", "--json")
    assert result.returncode == 0, result.stderr
    table = json.loads(result.stdout)
    assert table["weighted"] is True and table["kind"] == "share"
    assert [r["group"] for r in table["rows"]] == ["All", "Female", "Male"]
    assert "Taylor linearisation" in table["method"]


def test_tabulate_intervals_are_r_raked_design_unless_se_fixed() -> None:
    # GIVEN importance of religion by province; R's raked-design SE for "very" in PEI is 0.0730
    # (tests/fixtures/r/ces11_rake_svyby.csv), the fixed-weight one before issue 11 0.0647
    def pei_very(*extra: str) -> tuple[float, dict[str, object]]:
        result = run("tabulate", "importance", "--by", "province", "--value", "very", "--json", *extra)
        assert result.returncode == 0, result.stderr
        table = json.loads(result.stdout)
        return next(r["se"] for r in table["rows"] if r["group"] == "PE"), table

    # WHEN tabulated by default THEN R's figure, labelled as calibrated
    se, table = pei_very()
    assert se == pytest.approx(0.07303041641237888, abs=1e-6)
    assert table["se_method"] == "calibrated" and "R survey's raked design" in table["method"]
    # WHEN tabulated with --se fixed THEN the figure from before, labelled as fixed weights
    se, table = pei_very("--se", "fixed")
    assert se == pytest.approx(0.06468177078250739, rel=1e-12)
    assert table["se_method"] == "fixed" and "weights taken as fixed" in table["method"]
    assert_one_line_error(run("tabulate", "importance", "--se", "robust"), "--se must be calibrated or fixed")


def test_export_synthetic_of_any_size(tmp_path: Path) -> None:
    out = tmp_path / "panel.csv"
    result = run("export", "synthetic", "--rows", "1234", "--seed", "9", "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert len(pd.read_csv(out)) == 1234
    assert_one_line_error(
        run("export", "ces11", "--rows", "5", "--out", str(out)), "apply to generated datasets"
    )


def test_simulate_writes_a_plot(tmp_path: Path) -> None:
    out = tmp_path / "day.png"
    result = run("simulate", "--queries-per-day", "2000", "--days", "0.25", "--plot", str(out), "--json")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["queries"] > 0
    # Each agent's invocations, split between provisioned instances and on demand.
    served = document["functions"]["BrainPlanFunction"]
    assert served["provisioned"] + served["on_demand"] == served["invocations"] > 0
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n" and out.stat().st_size > 10_000
    assert_one_line_error(run("simulate", "--queries-per-day", "10", "--plot", "day.jpg"), "must end in .png")
    bad_surge = run("simulate", "--queries-per-day", "10", "--surge", "11:00")
    assert_one_line_error(bad_surge, "HH:MM,MINUTES,PER_MINUTE")


def test_cost_prices_recorded_usage(tmp_path: Path) -> None:
    usage = tmp_path / "ask.json"
    usage.write_text(
        json.dumps(
            {
                "usage": {
                    "us.anthropic.claude-sonnet-4-5-20250929-v1:0": {
                        "input_tokens": 1_100,
                        "output_tokens": 120,
                        "cache_read_tokens": 0,
                        "cache_write_tokens": 2_500,
                    }
                }
            }
        )
    )
    result = run(
        "cost", "--profile", "measured", "--usage", str(usage), "--queries-per-day", "5000", "--json"
    )
    assert result.returncode == 0, result.stderr
    column = json.loads(result.stdout)["columns"][0]
    names = [line["line"] for line in column["lines"]]
    assert "Bedrock sonnet: cache writes" in names
    assert not any("haiku" in name for name in names)  # the recorded run used one model
    assert_one_line_error(run("cost", "--usage", str(usage)), "--usage goes with --profile measured")


def test_capacity_writes_the_increases_and_simulate_runs_against_them(tmp_path: Path) -> None:
    # GIVEN 500,000 a day, WHEN capacity plans it, THEN it lists the increases and writes them.
    requested = tmp_path / "requested.yaml"
    result = run("capacity", "--queries-per-day", "500000", "--requested-quotas", str(requested), "--json")
    assert result.returncode == 0, result.stderr
    plan = json.loads(result.stdout)
    asked = {(r["quota"], r["region"]): r["to"] for r in plan["quotas"]["requests"]}
    assert asked[("lambda.concurrent_executions", "us-east-1")] == 1_400
    assert yaml.safe_load(requested.read_text())["lambda.concurrent_executions"] == {"us-east-1": 1_400}
    # The file feeds `simulate --quotas FILE` (a short night, to stay quick).
    result = run(
        "simulate", "--queries-per-day", "500000", "--days", "0.05", "--quotas", str(requested), "--json"
    )
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["quotas"] == "requested.yaml" and document["concurrency_quota"] == 1_400
    assert document["throttles"] == 0
    bad = tmp_path / "bad.yaml"
    bad.write_text("lambda.concurrency: 5\n")
    assert_one_line_error(run("simulate", "--queries-per-day", "10", "--quotas", str(bad)), "unknown quota")
    assert_one_line_error(run("capacity", "--queries-per-day", "10", "--regions", "9"), "--regions must be")
