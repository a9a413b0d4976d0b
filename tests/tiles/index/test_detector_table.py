"""The ``detectors`` table beside ``chips``: real LanceDB tables in a temporary folder."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from tiles.index.chip_index import ChipIndex
from tiles.index.detector_table import DETECTORS_TABLE, DetectorTable, StoredDetector, detectors_schema
from tiles.index.errors import ChipIndexError


def stored(name: str, dim: int = 8, seed: int = 0, query: str = "solar farms") -> StoredDetector:
    direction = np.random.default_rng(seed).normal(size=dim).astype(np.float32)
    return StoredDetector(
        name=name,
        query=query,
        positive_ids=("a1", "a2"),
        negative_ids=("b1",),
        direction=direction / np.linalg.norm(direction),
        scale=17.5,
        bias=-4.25,
        threshold=0.7,
        model_id="m@1",
        created_at="2025-01-02T03:04:05+00:00",
    )


def test_saved_detectors_round_trip_and_a_name_is_replaced(tmp_path: Path) -> None:
    table = DetectorTable(tmp_path / "db")  # a folder opens its library
    assert table.list() == [] and table.table is None
    first = stored("solar", seed=1)
    table.save(first)
    table.save(stored("dams", seed=2, query="dams"))
    got = DetectorTable(ChipIndex(tmp_path / "db")).get("solar")
    np.testing.assert_array_equal(got.direction, first.direction)
    assert got.direction.dtype == np.float32
    assert (got.positive_ids, got.negative_ids) == (("a1", "a2"), ("b1",))
    assert (got.scale, got.bias, got.threshold, got.model_id) == (17.5, -4.25, 0.7, "m@1")
    assert (got.query, got.created_at) == ("solar farms", first.created_at)

    table.save(stored("solar", seed=3, query="solar panels"))  # the same name again: replaced
    summaries = table.list()
    assert [(s.name, s.query, s.positives, s.negatives) for s in summaries] == [
        ("dams", "dams", 2, 1),
        ("solar", "solar panels", 2, 1),
    ]
    np.testing.assert_array_equal(table.get("solar").direction, stored("x", seed=3).direction)
    assert DETECTORS_TABLE in table.index.db.table_names()


def test_missing_names_are_refused_naming_the_saved_ones(tmp_path: Path) -> None:
    table = DetectorTable(tmp_path / "db")
    with pytest.raises(ChipIndexError, match="has none yet; save one"):
        table.get("solar")
    table.save(stored("solar"))
    table.save(stored("dams"))
    with pytest.raises(ChipIndexError, match="no detector 'roads'.*saved detectors: dams, solar"):
        table.get("roads")
    with pytest.raises(ChipIndexError, match="saved detectors: dams, solar"):
        table.delete("roads")
    table.delete("dams")
    assert [s.name for s in table.list()] == ["solar"]
    with pytest.raises(ChipIndexError, match="saved detectors: solar$"):
        table.get("dams")


def test_another_embedding_length_waits_for_the_old_detectors_to_go(tmp_path: Path) -> None:
    table = DetectorTable(tmp_path / "db")
    table.save(stored("solar", dim=8))
    with pytest.raises(ChipIndexError, match="8-d embeddings, this one is 16-d"):
        table.save(stored("dams", dim=16))
    table.delete("solar")
    table.save(stored("dams", dim=16))  # the empty table takes the new length
    assert table.get("dams").direction.shape == (16,)


def test_exemplars_round_trip_and_an_older_table_gains_their_columns(tmp_path: Path) -> None:
    rng = np.random.default_rng(5)
    exemplars = rng.normal(size=(3, 8)).astype(np.float32)
    with_exemplars = dataclasses.replace(stored("solar"), exemplars=exemplars, exemplar_weight=1.0)
    table = DetectorTable(tmp_path / "db")
    table.save(with_exemplars)
    got = table.get("solar")
    np.testing.assert_array_equal(got.exemplars, exemplars)
    assert got.exemplar_weight == 1.0
    # a table saved before detectors had exemplars: its detectors read back without them
    old_schema = pa.schema([f for f in detectors_schema(8) if f.name not in ("exemplars", "exemplar_weight")])
    old = stored("dams", seed=2)
    row = {f.name: getattr(old, f.name) for f in old_schema} | {"direction": old.direction.tolist(),
                                                                  "positive_ids": ["a1", "a2"], "negative_ids": ["b1"]}
    ChipIndex(tmp_path / "old").db.create_table(DETECTORS_TABLE, pa.Table.from_pylist([row], schema=old_schema))
    older = DetectorTable(tmp_path / "old")
    dams = older.get("dams")
    assert dams.exemplars.shape == (0, 8) and dams.exemplar_weight == 0.0
    np.testing.assert_array_equal(dams.direction, old.direction)
    older.save(with_exemplars)  # the next save adds the columns
    np.testing.assert_array_equal(older.get("solar").exemplars, exemplars)
    assert older.get("dams").exemplars.shape == (0, 8)
    assert [s.name for s in older.list()] == ["dams", "solar"]
