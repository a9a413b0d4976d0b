"""Reading a chip index back in tests: its rows in a stable order, its vectors, two indexes compared."""

from __future__ import annotations

import numpy as np
import pyarrow as pa

from tiles.index.chip_index import ChipIndex


def sorted_rows(index: ChipIndex) -> pa.Table:
    """Every row of the index's table, sorted by ``chip_id``."""
    table = index.table
    assert table is not None, f"no table in {index.uri}"
    return table.to_arrow().sort_by("chip_id")


def vector_matrix(rows: pa.Table) -> np.ndarray:
    """The ``vector`` column of ``rows`` as an ``(N, D)`` array."""
    return np.stack(rows["vector"].to_numpy(zero_copy_only=False))


def assert_same_rows(got: ChipIndex, want: ChipIndex, atol: float) -> None:
    """Both indexes hold the same chips, schema and metadata, and vectors within ``atol``."""
    got_rows, want_rows = sorted_rows(got), sorted_rows(want)
    assert got_rows.num_rows == want_rows.num_rows > 0
    assert got_rows.schema.equals(want_rows.schema)
    assert got_rows.drop_columns(["vector"]).equals(want_rows.drop_columns(["vector"]))
    np.testing.assert_allclose(vector_matrix(got_rows), vector_matrix(want_rows), atol=atol)
