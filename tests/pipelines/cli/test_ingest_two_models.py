"""``ingest --model`` into a library another model embedded: a table of its own beside the old, both searchable."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.cli.main import cli, main
from tests.app_data import write_scene
from tests.remoteclip.zoo_checkpoints import write_siglip
from tiles.index.chip_index import ChipIndex, index_for_model, library_models, model_table_name


def _ingest(scene: Path, db: Path, model: Path) -> dict:
    args = ["ingest", str(scene), "--db", str(db), "--model", str(model), "--chip-size", "128", "--workers", "0",
            "--backend", "torch", "--format", "json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _search(db: Path, model: Path) -> list[dict]:
    args = ["search", "a field", "--db", str(db), "--model", str(model), "-k", "3", "--backend", "torch",
            "--format", "json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_a_second_model_embeds_beside_the_first(tmp_path: Path, tiny_checkpoint: Path) -> None:
    scene, db, siglip = write_scene(tmp_path / "scene.tif"), tmp_path / "db", tmp_path / "tiny-siglip"
    write_siglip(siglip)
    first = _ingest(scene, db, tiny_checkpoint)
    second = _ingest(scene, db, siglip)

    assert first["chips"] == second["chips"] == 16
    assert library_models(db) == [first["model_id"], second["model_id"]]
    own = index_for_model(db, second["model_id"])
    assert own.table_name == model_table_name(second["model_id"]) and own.count_rows() == 16
    assert ChipIndex(db).model_id == first["model_id"] and ChipIndex(db).count_rows() == 16
    # each query model searches its own vectors (before: the second was refused by the first's table)
    assert len(_search(db, tiny_checkpoint)) == len(_search(db, siglip)) == 3
    # each table keeps its own finished-scenes log: a rerun with either model reads nothing again
    assert _ingest(scene, db, tiny_checkpoint)["unchanged"] == 1
    assert _ingest(scene, db, siglip)["unchanged"] == 1


def test_search_with_a_model_the_library_lacks_is_refused(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    scene, db, siglip = write_scene(tmp_path / "scene.tif"), tmp_path / "db", tmp_path / "tiny-siglip"
    write_siglip(siglip)
    first = _ingest(scene, db, tiny_checkpoint)
    with pytest.raises(SystemExit) as exit_info:
        main(["search", "a field", "--db", str(db), "--model", str(siglip), "--backend", "torch"])
    assert exit_info.value.code == 1
    message = capsys.readouterr().err
    assert f"holds vectors of model {first['model_id']!r}" in message and "ingest" in message
    assert library_models(db) == [first["model_id"]]  # nothing was created for the other model
