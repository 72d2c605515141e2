"""How `datasets add` drafts a dictionary from a file's own metadata, and where datasets live."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import numpy as np
import pandas as pd
import pyreadstat
import pytest

from panelbrain.data.catalog import load_dataset
from panelbrain.data.check import DatasetCheckError
from panelbrain.data.dictionary import dataset_dir, dataset_names, load_dictionary, local_datasets_dir
from panelbrain.data.importer import add_dataset, sql_safe_names
from panelbrain.errors import BadInputError, DatasetNotFoundError


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    folder = tmp_path / "datasets"
    monkeypatch.setenv("PANELBRAIN_DATASETS", str(folder))
    return folder


@pytest.fixture
def fieldwork(tmp_path: Path) -> Path:
    """A small SPSS file as fieldwork delivers one: coded answers with value labels, a
    user-missing code, an endpoint-labelled scale, free text, a date and awkward names."""
    n = 40
    rng = np.random.default_rng(7)
    frame = pd.DataFrame(
        {
            "Q1.Vote": rng.choice([1.0, 2.0, 9.0], n),  # 9 = Don't know (user-missing)
            "satisfaction": rng.choice(np.arange(0.0, 11.0), n),  # 0..10, labelled at the ends only
            "region": rng.choice([1.0, 2.0, 3.0], n),  # 3 has no label
            "age": rng.integers(18, 90, n).astype(float),
            "comment": [f"free text answer number {i}" for i in range(n)],
            "interviewed": [dt.date(2026, 1, 1) + dt.timedelta(days=i) for i in range(n)],
            "select": rng.choice([1.0, 2.0], n),
        }
    )
    path = tmp_path / "fieldwork.sav"
    pyreadstat.write_sav(
        frame,
        str(path),
        column_labels={
            "Q1.Vote": "Would you vote?",
            "satisfaction": "Satisfaction (0-10)",
            "region": "Region",
        },
        variable_value_labels={
            "Q1.Vote": {1: "Yes", 2: "No", 9: "Don't know"},
            "satisfaction": {0: "Not at all", 10: "Completely"},
            "region": {1: "North", 2: "South"},
            "select": {1: "Picked", 2: "Not picked"},
        },
        missing_ranges={"Q1.Vote": [9]},
        variable_measure={
            "Q1.Vote": "nominal",
            "satisfaction": "scale",
            "region": "nominal",
            "age": "scale",
            "select": "nominal",
        },
    )
    return path


def test_a_fieldwork_file_is_drafted_from_its_own_metadata(home: Path, fieldwork: Path) -> None:
    # WHEN the file is added
    added = add_dataset(fieldwork, "fieldwork")
    table = added.spec.main_table
    # THEN names are made SQL-safe (and reported); a keyword is not left bare
    assert added.renamed == {"Q1.Vote": "q1_vote", "select": "select_"}
    assert table.column_names == ("q1_vote", "satisfaction", "region", "age", "select_")
    # ... value labels are values and labels; the user-missing code is missing, not an answer
    vote = table.column("q1_vote")
    assert vote.type == "categorical" and vote.label == "Would you vote?"
    assert [(v.value, v.label) for v in vote.values] == [("1", "Yes"), ("2", "No")]
    assert [(v.value, v.label) for v in vote.missing] == [("9", "Don't know")]
    # ... a scale labelled only at its ends is a number; whole numbers with none missing are integers
    assert table.column("satisfaction").type == "integer"
    assert table.column("age").type == "integer" and table.column("age").label == "Age"
    # ... free text and dates are not exposed
    assert "comment" not in table.column_names and "interviewed" not in table.column_names
    # ... and what the file did not say is reported, by column
    kinds = {(note.kind.split(" (")[0].split(":")[0], note.column) for note in added.notes}
    assert ("user-missing codes, read as no answer", "q1_vote") in kinds
    assert ("free text, not exposed", "comment") in kinds
    assert ("dates and times are not exposed", "interviewed") in kinds
    assert ("no variable label", "age") in kinds
    assert ("codes without value labels", "region") in kinds
    assert ("scale with labels on some values only", "satisfaction") in kinds
    # ... and the unlabelled code keeps the dataset from being served until it is labelled
    threes = int((pyreadstat.read_sav(str(fieldwork))[0].region == 3).sum())
    assert [str(p) for p in added.problems] == [
        f"region: value '3' has no label in the dictionary ({threes} rows)"
    ]
    with pytest.raises(DatasetCheckError, match="region: value '3' has no label"):
        load_dataset("fieldwork")


def test_missing_codes_are_no_answer_once_served(home: Path, fieldwork: Path) -> None:
    # GIVEN the fieldwork file added, and its unlabelled region code labelled by hand
    added = add_dataset(fieldwork, "fieldwork2")
    path = added.path / "dictionary.yaml"
    path.write_text(
        path.read_text().replace(
            "- {value: '2', label: South}",
            "- {value: '2', label: South}\n          - {value: '3', label: East}",
        )
    )
    # WHEN it is loaded
    data = load_dataset("fieldwork2")
    raw = pyreadstat.read_sav(str(fieldwork), user_missing=True)[0]
    # THEN the "Don't know" rows are missing, never counted among the answers
    assert int(data.frame.q1_vote.isna().sum()) == int((raw["Q1.Vote"] == 9).sum()) > 0
    assert set(data.frame.q1_vote.dropna()) <= {"1", "2"}
    # ... and the data on disk keeps the code as delivered
    stored = pd.read_parquet(added.path / "fieldwork2.parquet")
    assert int((stored.q1_vote == 9).sum()) == int((raw["Q1.Vote"] == 9).sum())


def test_a_csv_with_text_categories_labels_them_with_themselves(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "panel.csv"
    pd.DataFrame(
        {"id": [1, 2, 3, 4, 5, 6], "sex": ["f", "m", "f", "m", "f", "m"], "score": [1.5, 2, 3, 4, 5, 6]}
    ).to_csv(path, index=False)
    added = add_dataset(path, "panel", id_column="id")
    table = added.spec.main_table
    assert [(v.value, v.label) for v in table.column("sex").values] == [("f", "f"), ("m", "m")]
    assert table.column("score").type == "numeric"
    assert table.column("id").role == "id"
    assert added.problems == []
    assert load_dataset("panel").frame.sex.tolist() == ["f", "m", "f", "m", "f", "m"]


def test_sql_safe_names_are_unique_identifiers() -> None:
    assert sql_safe_names(["Age", "age", "2nd wave", "", "order", "Q.1 (a)"]) == {
        "Age": "age",
        "age": "age_2",
        "2nd wave": "c_2nd_wave",
        "": "column_4",
        "order": "order_",
        "Q.1 (a)": "q_1_a",
    }


def test_add_writes_nothing_when_the_targets_fail(home: Path, fieldwork: Path, tmp_path: Path) -> None:
    targets = tmp_path / "t.yaml"
    targets.write_text("q1_vote: {Yes: 0.5, Maybe: 0.5}\n")  # Yes: the category, never YAML's true
    with pytest.raises(BadInputError, match="'q1_vote' has no category 'Maybe'"):
        add_dataset(fieldwork, "refused", targets=targets)
    assert not home.exists() or list(home.iterdir()) == []


def test_add_removes_its_staging_folder_when_writing_fails(
    home: Path, fieldwork: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a failure after the staging folder exists (the data file cannot be written)
    def fail(*args: object, **kwargs: object) -> None:
        raise OSError("disk full")

    monkeypatch.setattr(pd.DataFrame, "to_parquet", fail)
    # WHEN the file is added THEN the failure surfaces and nothing is left behind
    with pytest.raises(OSError, match="disk full"):
        add_dataset(fieldwork, "half")
    assert list(home.iterdir()) == []


# --- where datasets live ------------------------------------------------------------------------


def test_the_datasets_directory_follows_the_environment(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("PANELBRAIN_DATASETS", str(tmp_path / "explicit"))
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "xdg"))
    assert local_datasets_dir() == tmp_path / "explicit"
    monkeypatch.delenv("PANELBRAIN_DATASETS")
    assert local_datasets_dir() == tmp_path / "xdg" / "panelbrain" / "datasets"
    monkeypatch.setenv("XDG_DATA_HOME", "relative/path")  # invalid by the XDG spec: ignored
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    assert local_datasets_dir() == tmp_path / "home" / ".local" / "share" / "panelbrain" / "datasets"


def test_added_datasets_are_found_beside_the_built_in_ones(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "mine.parquet"
    pd.DataFrame({"grp": ["a", "b"] * 5, "x": range(10)}).to_parquet(path)
    add_dataset(path, "mine")
    assert dataset_names() == ["ces11", "mine", "synthetic"]
    assert Path(str(dataset_dir("mine"))) == home / "mine"
    assert load_dictionary("mine").main_table.file == "mine.parquet"
    with pytest.raises(
        DatasetNotFoundError, match="unknown dataset 'theirs'; available: ces11, mine, synthetic"
    ):
        dataset_dir("theirs")


def test_an_edited_dictionary_is_read_again(home: Path, tmp_path: Path) -> None:
    path = tmp_path / "mine.csv"
    pd.DataFrame({"grp": ["a", "b"] * 5}).to_csv(path, index=False)
    added = add_dataset(path, "edited")
    assert load_dictionary("edited").main_table.column("grp").synonyms == ()
    dictionary = added.path / "dictionary.yaml"
    dictionary.write_text(
        dictionary.read_text().replace("label: Grp\n", "label: Group\n        synonyms: [team]\n")
    )
    assert load_dictionary("edited").main_table.column("grp").synonyms == ("team",)


WRITERS = {
    "zsav": lambda frame, path: pyreadstat.write_sav(
        frame,
        path,
        compress=True,
        column_labels={"q1": "Q one"},
        variable_value_labels={"q1": {1: "Yes", 2: "No"}},
    ),
    "por": lambda frame, path: pyreadstat.write_por(frame, path),
    "xpt": lambda frame, path: pyreadstat.write_xport(frame, path, column_labels={"q1": "Q one"}),
    "sas7bdat": lambda frame, path: pyreadstat.write_sas7bdat(frame, path),
}


@pytest.mark.parametrize("suffix", sorted(WRITERS))
def test_every_statistical_format_is_read_in_chunks(
    home: Path, tmp_path: Path, suffix: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN a file of 25 rows in the format, read 10 rows at a time
    monkeypatch.setattr("panelbrain.data.importer.CHUNK_ROWS", 10)
    frame = pd.DataFrame({"q1": [1.0, 2.0] * 12 + [1.0], "age": [float(20 + i) for i in range(25)]})
    path = tmp_path / f"survey.{suffix}"
    WRITERS[suffix](frame, str(path))
    seen: list[tuple[str, int]] = []
    # WHEN it is added
    add_dataset(path, f"survey_{suffix}", progress=lambda stage, done, total: seen.append((stage, done)))
    # THEN every row arrives, in chunks the progress bar follows, and the dataset is served
    assert [done for stage, done in seen if stage == "reading"] == [0, 10, 20, 25]
    data = load_dataset(f"survey_{suffix}")
    assert len(data.frame) == 25 and data.frame.age.sum() == frame.age.sum()
    assert set(data.table.column_names) == {"q1", "age"}  # .por's upper-case names made lower case
    if suffix == "zsav":
        assert [v.label for v in data.table.column("q1").values] == ["Yes", "No"]
    if suffix in ("zsav", "xpt"):
        assert data.table.column("q1").label == "Q one"
