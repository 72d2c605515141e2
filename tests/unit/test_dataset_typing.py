"""A coded column read as the dictionary's categories: codes written as 1 or 1.0 or "1" are
one code, the dictionary's missing codes and blanks are no answer, and a code the dictionary
does not list is refused, whatever the column's storage type."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from panelbrain.data.catalog import _categorical
from panelbrain.data.check import code_counts
from panelbrain.data.dictionary import Column
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
