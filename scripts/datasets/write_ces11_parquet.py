"""CES11 as a Parquet export, for the `panelbrain datasets add` acceptance tests.

Parquet carries no value labels, so each categorical column holds its labels as the values
("Alberta", "Women", "Support a ban"), in the dictionary's order (a pandas categorical); numbers
stay numbers. Run from the repository root, after `make install`:

    .venv/bin/python scripts/datasets/write_ces11_parquet.py [OUT_DIR]

OUT_DIR defaults to tests/fixtures/datasets. The .sav and .dta beside it come from
scripts/r/write_ces11_labelled.R.
"""

from __future__ import annotations

import sys
from pathlib import Path

from panelbrain.data.catalog import load_dataset


def main() -> None:
    out = Path(sys.argv[1] if len(sys.argv) > 1 else "tests/fixtures/datasets")
    data = load_dataset("ces11")
    frame = data.frame.copy()
    for column in data.table.columns:
        if column.type == "categorical":
            frame[column.name] = frame[column.name].cat.rename_categories(
                {v.value: v.label for v in column.values}
            )
    out.mkdir(parents=True, exist_ok=True)
    frame.to_parquet(out / "ces11.parquet", index=False)
    sys.stderr.write(f"wrote {out / 'ces11.parquet'}\n")


if __name__ == "__main__":
    main()
