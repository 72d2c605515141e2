"""An analyst's own survey: `panelbrain datasets add` then `ask`, `datasets check`, and the bad
inputs `add` refuses without leaving anything behind.

The acceptance files are CES11 as fieldwork delivers it: SPSS and Stata files with numeric codes,
value labels and variable labels written by R haven (scripts/r/write_ces11_labelled.R), and a
Parquet export whose values are the labels (scripts/datasets/write_ces11_parquet.py).
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pyreadstat
import pytest
import yaml

from panelbrain.data.dictionary import load_dictionary
from panelbrain.local.ask import ask
from panelbrain.local.engine import LocalEngine

FIXTURES = Path(__file__).parent.parent / "fixtures" / "datasets"
TARGETS = FIXTURES / "ces11_targets.yaml"
FORMATS = ("sav", "dta", "parquet")

# question (worded with the value labels), measure, breakdown
QUESTIONS = [
    ("What share support a ban on abortion by province?", "abortion", "province"),
    ("What share oppose a ban by education?", "abortion", "education"),
    ("Distribution of education by gender", "education", "gender"),
    ("Share of not important by urban", "importance", "urban"),
    ("What share say very important among women?", "importance", None),
    ("Share of women among rural respondents by education", "gender", "education"),
    ("Unweighted distribution of education", "education", None),
]


def run(*args: str, datasets: Path) -> subprocess.CompletedProcess[str]:
    # A user's shell: not the functions' environment a running engine in this process carries.
    env = {k: v for k, v in os.environ.items() if k != "DATASETS_BUCKET"}
    env["PANELBRAIN_DATASETS"] = str(datasets)
    return subprocess.run(
        [sys.executable, "-m", "panelbrain.cli", *args], capture_output=True, text=True, timeout=120, env=env
    )


def assert_one_line_error(result: subprocess.CompletedProcess[str], text: str) -> None:
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: "), result.stderr
    assert text in lines[0], lines[0]


@pytest.fixture(scope="module")
def added(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """CES11 added from each fixture file, as an analyst would, into a datasets folder of its own."""
    home = tmp_path_factory.mktemp("own-datasets")
    for suffix in FORMATS:
        result = run(
            "datasets",
            "add",
            str(FIXTURES / f"ces11.{suffix}"),
            "--name",
            f"own_ces11_{suffix}",
            "--weight",
            "weight",
            "--id",
            "id",
            "--targets",
            str(TARGETS),
            "--json",
            datasets=home,
        )
        assert result.returncode == 0, result.stderr
        document = json.loads(result.stdout)
        assert document["served"] is True, document["problems"]
    return home


@pytest.fixture(scope="module")
def engine(added: Path) -> Iterator[LocalEngine]:
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PANELBRAIN_DATASETS", str(added))
        with LocalEngine.running() as running:
            yield running


@pytest.fixture
def uncached(engine: LocalEngine) -> LocalEngine:
    # Each answer computed afresh: the built-in's second asking would come from the result cache.
    engine.clear_table("ResultCacheTable")
    return engine


def labelled(dataset: str, result: dict[str, Any], measure: str, by: str | None) -> list[tuple[Any, ...]]:
    """Each row of an answer's table by its labels, so coded and worded datasets compare."""
    table = load_dictionary(dataset).main_table
    rows = []
    for row in result["table"]:
        group = (
            row["group"]
            if by is None or row["group"] == "All"
            else table.column(by).value_label(row["group"])
        )
        category = table.column(measure).value_label(row["category"])
        rows.append((group, category, row["estimate"], row["unweighted_base"], row["weighted_base"]))
    return rows


@pytest.mark.parametrize("suffix", FORMATS)
@pytest.mark.parametrize(("question", "measure", "by"), QUESTIONS, ids=[q[0][:40] for q in QUESTIONS])
def test_an_added_survey_answers_as_the_built_in_ces11(
    uncached: LocalEngine, suffix: str, question: str, measure: str, by: str | None
) -> None:
    # GIVEN CES11 added from a labelled file, and the built-in CES11
    # WHEN the same question, in the value labels' words, is asked of both
    own = ask(uncached, question, dataset=f"own_ces11_{suffix}")
    built_in = ask(uncached, question, dataset="ces11")
    # THEN the answers are the same estimates on the same bases, read the same way
    assert own["status"] == built_in["status"] == "answered", own["confidence_reasons"]
    assert own["route"] == built_in["route"]
    mine = labelled(f"own_ces11_{suffix}", own, measure, by)
    theirs = labelled("ces11", built_in, measure, by)
    assert [r[:2] for r in mine] == [r[:2] for r in theirs]
    for m, t in zip(mine, theirs, strict=True):
        assert m[2] == pytest.approx(t[2], abs=1e-12)
        assert m[3] == t[3]
        assert m[4] == pytest.approx(t[4], rel=1e-12)
    assert (own["weighting"] is None) is (built_in["weighting"] is None)


def test_the_sav_drafts_the_dictionary_from_its_labels(added: Path) -> None:
    # GIVEN the .sav added; WHEN its drafted dictionary is read
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PANELBRAIN_DATASETS", str(added))
        spec = load_dictionary("own_ces11_sav")
    table = spec.main_table
    # THEN variable labels are column labels, value labels are values, roles come from the options
    assert table.column("abortion").label == "Should abortion be banned?"
    assert [(v.value, v.label) for v in table.column("gender").values] == [("1", "Women"), ("2", "Men")]
    # ... the user-missing code is missing, not an answer
    assert [(v.value, v.label) for v in table.column("abortion").missing] == [("8", "Don't know")]
    assert "8" not in [v.value for v in table.column("abortion").values]
    assert table.column("weight").role == "design_weight" and table.column("id").role == "id"
    assert table.column("population").role == "auxiliary" and table.column("population").type == "integer"
    # ... the data sits beside it as Parquet, and its content hash is its version
    assert table.file == "own_ces11_sav.parquet"
    assert (added / "own_ces11_sav" / table.file).is_file()
    # (the drafted dictionary's: once published, the version is the published files' hash)
    drafted = yaml.safe_load((added / "own_ces11_sav" / "dictionary.yaml").read_text(encoding="utf-8"))
    assert drafted["data_version"].startswith("sha256-") and len(drafted["data_version"]) == 7 + 16


def test_datasets_lists_built_in_and_added_alike(added: Path) -> None:
    result = run("datasets", "--json", datasets=added)
    assert result.returncode == 0, result.stderr
    documents = {d["name"]: d for d in json.loads(result.stdout)["datasets"]}
    assert {documents[n]["origin"] for n in ("ces11", "synthetic")} == {"built-in"}
    for suffix in FORMATS:
        document = documents[f"own_ces11_{suffix}"]
        assert document["origin"] == "added"
        assert document["path"] == str(added / f"own_ces11_{suffix}")
        assert document["problems"] == []


# --- datasets check -----------------------------------------------------------------------------

# Each problem seeded in tests/fixtures/datasets/broken, as `datasets check` names it.
SEEDED = [
    "turnout: is in the dictionary but not in the data",
    "respondent: id '3' appears 2 times",
    "vote: value '3' has no label in the dictionary (1 row)",
    "age: value '2.5' is not a whole number (1 row)",
    "income: value 'abc' is not a number (1 row)",
    "wt: 1 row has no weight",
    "wt: weight '0' is not positive and finite (1 row)",
    "wt: weight '-1' is not positive and finite (1 row)",
    "region: 1 row has no value; weighting needs one for every respondent",
    "region: targets sum to 1.1, not 1",
    "region: target category '3' has no respondents in the data",
]


@pytest.fixture
def broken(tmp_path: Path) -> Path:
    shutil.copytree(FIXTURES / "broken", tmp_path / "broken")
    return tmp_path


def test_check_names_each_seeded_problem_and_exits_2(broken: Path) -> None:
    result = run("datasets", "check", "broken", "--json", datasets=broken)
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        "error: dataset 'broken' fails its check (11 problems): it is not served until they are fixed"
    ]
    found = [p["message"] for p in json.loads(result.stdout)["problems"]]
    for seeded in SEEDED:
        assert any(message.startswith(seeded) for message in found), (seeded, found)
    assert len(found) == len(SEEDED)


def test_a_dataset_that_fails_its_check_is_never_served(broken: Path) -> None:
    result = run("sql", "SELECT count(*) FROM broken", "--dataset", "broken", datasets=broken)
    assert_one_line_error(result, "dataset 'broken' fails its check, so it is not served")


def test_a_fixed_dataset_passes_and_is_served(broken: Path) -> None:
    # GIVEN the broken dataset with its data and dictionary mended
    folder = broken / "broken"
    frame = pd.read_csv(folder / "broken.csv").drop_duplicates("respondent")
    frame = frame[(frame.wt > 0) & frame.region.notna() & (frame.vote != 3)]
    frame = frame.assign(age=frame.age.astype(float).round().astype(int), income=pd.to_numeric(frame.income))
    frame.assign(turnout=1.0).to_csv(folder / "broken.csv", index=False)
    text = (folder / "dictionary.yaml").read_text()
    (folder / "dictionary.yaml").write_text(
        text.replace('{"1": 0.5, "2": 0.4, "3": 0.2}', '{"1": 0.5, "2": 0.5}')
    )
    # WHEN it is checked, then queried
    checked = run("datasets", "check", "broken", datasets=broken)
    queried = run("sql", "SELECT count(*) AS n FROM broken", "--dataset", "broken", "--json", datasets=broken)
    # THEN both succeed
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert "the dictionary and the data agree" in checked.stdout
    assert queried.returncode == 0, queried.stderr
    assert json.loads(queried.stdout)["rows"] == [{"n": 5}]


# --- bad input ----------------------------------------------------------------------------------


def _weights(tmp_path: Path, weights: list[float | None]) -> Path:
    path = tmp_path / "weights.csv"
    pd.DataFrame({"id": range(len(weights)), "sex": ["f", "m"] * (len(weights) // 2), "w": weights}).to_csv(
        path, index=False
    )
    return path


def _targets(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "targets.yaml"
    path.write_text(text)
    return path


def _garbage(tmp_path: Path, name: str) -> Path:
    path = tmp_path / name
    path.write_bytes(b"this is not a survey file\x00\x01\x02" * 10)
    return path


def _header_only(tmp_path: Path) -> Path:
    path = tmp_path / "empty.csv"
    path.write_text("id,sex,w\n")
    return path


def _empty_sav(tmp_path: Path) -> Path:
    path = tmp_path / "empty.sav"
    pyreadstat.write_sav(pd.DataFrame({"q1": pd.Series([], dtype="float64")}), str(path))
    return path


BAD_INPUTS = [
    ("missing file", lambda t: [str(t / "nowhere.sav"), "--name", "x"], "does not exist"),
    (
        "unsupported type",
        lambda t: [str(_garbage(t, "survey.xlsx")), "--name", "x"],
        ".xlsx is not a supported",
    ),
    (
        "unreadable .sav",
        lambda t: [str(_garbage(t, "survey.sav")), "--name", "x"],
        "not a readable SPSS file",
    ),
    (
        "unreadable .dta",
        lambda t: [str(_garbage(t, "survey.dta")), "--name", "x"],
        "not a readable Stata file",
    ),
    (
        "unreadable .parquet",
        lambda t: [str(_garbage(t, "s.parquet")), "--name", "x"],
        "not a readable Parquet file",
    ),
    ("no rows (csv)", lambda t: [str(_header_only(t)), "--name", "x"], "has no rows"),
    ("no rows (sav)", lambda t: [str(_empty_sav(t)), "--name", "x"], "has no rows"),
    (
        "built-in name",
        lambda t: [str(FIXTURES / "ces11.sav"), "--name", "ces11"],
        "exists (built into panelbrain)",
    ),
    (
        "name not SQL-safe",
        lambda t: [str(FIXTURES / "ces11.sav"), "--name", "My Survey"],
        "lower-case SQL name",
    ),
    (
        "weight with zeros",
        lambda t: [str(_weights(t, [1.0, 0.0, 1.0, 2.0])), "--name", "x", "--weight", "w"],
        "--weight 'w': weight '0' is not positive and finite (1 row)",
    ),
    (
        "weight with missing values",
        lambda t: [str(_weights(t, [1.0, None, 1.0, None])), "--name", "x", "--weight", "w"],
        "--weight 'w': 2 rows have no weight",
    ),
    (
        "targets naming an unknown column",
        lambda t: [
            str(FIXTURES / "ces11.sav"),
            "--name",
            "x",
            "--targets",
            str(_targets(t, "region: {North: 1.0}\n")),
        ],
        "unknown column 'region'",
    ),
    (
        "targets naming an unknown category",
        lambda t: [
            str(FIXTURES / "ces11.sav"),
            "--name",
            "x",
            "--targets",
            str(_targets(t, "gender: {Women: 0.5, Martians: 0.5}\n")),
        ],
        "'gender' has no category 'Martians' (its values: 1 (Women), 2 (Men))",
    ),
    (
        "targets not summing to 1",
        lambda t: [
            str(FIXTURES / "ces11.sav"),
            "--name",
            "x",
            "--targets",
            str(_targets(t, "gender: {Women: 0.6, Men: 0.6}\n")),
        ],
        "gender: targets sum to 1.2, not 1",
    ),
]


@pytest.mark.parametrize(("case", "arguments", "message"), BAD_INPUTS, ids=[b[0] for b in BAD_INPUTS])
def test_add_refuses_bad_input_and_leaves_nothing_behind(
    tmp_path: Path, case: str, arguments: Any, message: str
) -> None:
    # GIVEN an empty datasets folder and a bad input
    home = tmp_path / "datasets"
    home.mkdir()
    inputs = tmp_path / "inputs"
    inputs.mkdir()
    # WHEN it is added
    result = run("datasets", "add", *arguments(inputs), datasets=home)
    # THEN exit 2, one error line naming what and where, and no dataset, not even a staged one
    assert_one_line_error(result, message)
    assert list(home.iterdir()) == []


def test_add_refuses_a_name_already_added(tmp_path: Path) -> None:
    home = tmp_path / "datasets"
    first = run("datasets", "add", str(FIXTURES / "ces11.parquet"), "--name", "mine", datasets=home)
    assert first.returncode == 0, first.stderr
    before = sorted(p.name for p in home.rglob("*"))
    again = run("datasets", "add", str(FIXTURES / "ces11.dta"), "--name", "mine", datasets=home)
    assert_one_line_error(again, "a dataset named 'mine' exists (already added)")
    assert sorted(p.name for p in home.rglob("*")) == before


def test_an_added_table_is_queried_by_its_own_name(tmp_path: Path) -> None:
    # GIVEN a CSV added under a table name of its own, with names SQL cannot use bare (a space, a
    # keyword)
    home = tmp_path / "datasets"
    path = tmp_path / "wave.csv"
    pd.DataFrame({"Resp ID": range(1, 7), "Group": ["a", "b"] * 3}).to_csv(path, index=False)
    added = run("datasets", "add", str(path), "--name", "wave", "--table", "respondents", datasets=home)
    assert added.returncode == 0, added.stderr
    for name in ("Resp ID", "resp_id", "Group", "group_"):  # the renames are reported
        assert name in added.stdout
    # WHEN it is queried in SQL by the table's and the column's new names
    result = run(
        "sql",
        "SELECT group_, count(*) AS n FROM respondents GROUP BY 1 ORDER BY 1",
        "--dataset",
        "wave",
        "--json",
        datasets=home,
    )
    # THEN the rows come back
    assert result.returncode == 0, result.stderr
    assert json.loads(result.stdout)["rows"] == [{"group_": "a", "n": 3}, {"group_": "b", "n": 3}]
    listing = run("datasets", datasets=home)
    assert "(added, " in listing.stdout and "(built in)" in listing.stdout


def test_a_synonym_added_by_hand_is_understood(added: Path, uncached: LocalEngine) -> None:
    # GIVEN the .sav added afresh, and a question using a word its labels do not have
    result = run("datasets", "add", str(FIXTURES / "ces11.sav"), "--name", "own_synonyms", datasets=added)
    assert result.returncode == 0, result.stderr
    uncached.publish_dataset("own_synonyms")  # the engine was running: as `datasets publish` does
    question = "What share say religion is very important among women?"
    before = ask(uncached, question, dataset="own_synonyms")
    assert any("could not place 'religion'" in reason for reason in before["confidence_reasons"])
    # WHEN the analyst adds the word as a synonym of the column, by editing the dictionary
    path = added / "own_synonyms" / "dictionary.yaml"
    text = path.read_text()
    path.write_text(
        text.replace(
            "label: Importance of religion\n", "label: Importance of religion\n        synonyms: [religion]\n"
        )
    )
    uncached.publish_dataset("own_synonyms")
    uncached.clear_table("ResultCacheTable")
    after = ask(uncached, question, dataset="own_synonyms")
    # THEN every word is placed, and the estimate is the same
    assert not any("could not place" in reason for reason in after["confidence_reasons"])
    assert after["confidence"] > before["confidence"]
    assert after["table"][0]["estimate"] == pytest.approx(before["table"][0]["estimate"], abs=1e-12)
