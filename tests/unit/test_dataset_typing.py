"""A coded column read as the dictionary's categories: codes written as 1 or 1.0 or "1" are
one code, the dictionary's missing codes and blanks are no answer, and a code the dictionary
does not list is refused, whatever the column's storage type."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from panelbrain.data import catalog
from panelbrain.data.catalog import _categorical
from panelbrain.data.check import DatasetCheckError, check_dataset, code_counts
from panelbrain.data.dictionary import Column, load_dictionary
from panelbrain.errors import DictionaryError

COLUMN = Column.model_validate(
    {
        "name": "q1",
        "label": "Question 1",
        "type": "categorical",
        "values": [{"value": "1", "label": "Yes"}, {"value": "2", "label": "No"}],
        "missing": [{"value": "9", "label": "Don't know"}],
    }
)


@pytest.mark.parametrize(
    "series",
    [
        pd.Series([2.0, 1.0, 9.0, np.nan, 1.0]),
        pd.Series(["2", "1", "9", " ", "1"]),
        pd.Series([2, 1, 9, None, 1.0], dtype=object),
    ],
    ids=["float codes", "text codes", "mixed object"],
)
def test_codes_read_as_the_dictionarys_categories_and_missing_codes_as_no_answer(series: pd.Series) -> None:
    # GIVEN a coded column as a file may store it
    # WHEN it is typed against its dictionary entry
    typed = _categorical(series, COLUMN, "survey")
    # THEN each row reads as its category in the dictionary's order, "Don't know" and blanks as missing
    assert list(typed.categories) == ["1", "2"]
    assert [None if pd.isna(v) else v for v in typed] == ["2", "1", None, None, "1"]


def test_a_code_the_dictionary_does_not_list_is_refused_by_name() -> None:
    # GIVEN a column holding a code the dictionary does not list
    # WHEN it is typed
    # THEN the error names the dataset, the value and the column
    with pytest.raises(DictionaryError, match=r"survey: value '3' of 'q1' is not in the dictionary"):
        _categorical(pd.Series([1.0, 3.0]), COLUMN, "survey")


def test_code_counts_merge_one_code_written_two_ways_and_leave_out_missing() -> None:
    # GIVEN a column where code 1 is written both as a number and as text, with blanks
    series = pd.Series([1, "1", 2, None, " ", 1.0], dtype=object)
    # WHEN its codes are counted
    # THEN 1 counts three rows, most frequent first, and the blanks count nowhere
    assert list(code_counts(series).items()) == [("1", 3), ("2", 1)]


FIXTURES = Path(__file__).parents[1] / "fixtures" / "datasets"


def as_parquet(source: Path, target: Path, name: str) -> Path:
    """A dataset with its CSV stored as Parquet (as `datasets add` stores data), named after
    ``target`` (a built-in's name would find the built-in)."""
    target.mkdir(parents=True)
    pd.read_csv(source / f"{name}.csv").to_parquet(target / f"{name}.parquet", index=False)
    text = (source / "dictionary.yaml").read_text().replace(f"file: {name}.csv", f"file: {name}.parquet")
    (target / "dictionary.yaml").write_text(text.replace(f"name: {name}\n", f"name: {target.name}\n", 1))
    return target


def test_a_parquet_dataset_loaded_a_few_columns_at_a_time_names_every_problem_the_check_names(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN the broken fixture stored as Parquet, loaded two columns at a time
    folder = as_parquet(FIXTURES / "broken", tmp_path / "broken", "broken")
    monkeypatch.setenv("PANELBRAIN_DATASETS", str(tmp_path))
    monkeypatch.setattr(catalog, "LOAD_BATCH_COLUMNS", 2)
    whole = check_dataset(load_dictionary("broken"), catalog.read_file(folder / "broken.parquet"))
    # WHEN it is loaded to be served
    with pytest.raises(DatasetCheckError) as refused:
        catalog.load_dataset("broken")
    # THEN it is refused with every problem the whole-file check names, in the same order
    assert len(whole) == 11
    assert refused.value.detail["problems"] == [str(p) for p in whole]


def test_a_parquet_dataset_loaded_a_few_columns_at_a_time_reads_as_the_whole_file_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # GIVEN CES11 stored as Parquet, loaded two columns at a time
    source = FIXTURES.parents[2] / "src" / "panelbrain" / "data" / "datasets" / "ces11"
    folder = as_parquet(source, tmp_path / "ces11_parquet", "ces11")
    monkeypatch.setenv("PANELBRAIN_DATASETS", str(tmp_path))
    monkeypatch.setattr(catalog, "LOAD_BATCH_COLUMNS", 2)
    spec = load_dictionary("ces11_parquet")
    # WHEN it is loaded
    loaded = catalog.load_dataset("ces11_parquet").frame
    # THEN every column reads exactly as typing the whole file at once gives
    whole = catalog._typed(catalog.read_file(folder / "ces11.parquet"), spec.main_table, "ces11")
    pd.testing.assert_frame_equal(loaded, whole)
