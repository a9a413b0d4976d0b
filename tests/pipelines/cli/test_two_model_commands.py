"""``label``, ``detector`` and ``prune-empty`` on a library two models embedded: each reads the table of the model
it is given (``--model``), and a detector saved with one model refuses the other's table."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.cli.main import cli, main
from pipelines.ingest.local import ingest_paths
from pipelines.services.detectors import apply_detector, get_detector
from remoteclip.factory import LoadedModel, load_model
from tests.bordered_scene import write_bordered_scene
from tests.remoteclip.zoo_checkpoints import write_siglip
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex, index_for_model, library_models

RASTERS = Path(__file__).resolve().parents[2] / "data" / "rasters"
SPEC = ChipSpec(chip_px=16, levels=(1, 2))
pytestmark = pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")


@pytest.fixture(scope="module")
def library(tmp_path_factory: pytest.TempPathFactory, tiny_model: LoadedModel) -> dict[str, object]:
    """A library ingested as before the empty-chip rule: the tiny CLIP (A) of a bordered scene (16 chips, 8
    empty) and a textured one (8), the tiny SigLIP (B) of the bordered scene only, in a table of its own."""
    root = tmp_path_factory.mktemp("two_models")
    bordered = write_bordered_scene(root / "bordered.tif")
    textured = shutil.copy(RASTERS / "rgb_4326.tif", root / "rgb_4326.tif")
    siglip = root / "tiny-siglip"
    write_siglip(siglip)
    second = load_model(siglip, backend="torch")
    db = root / "db"
    with pytest.MonkeyPatch.context() as patched:
        patched.setattr("tiles.chips.empty_reason", lambda *args: None)
        for paths, model in (([bordered, textured], tiny_model), ([bordered], second)):
            ingest_paths(paths, index_for_model(db, model.model_id), model, SPEC, workers=0, progress=False)
    assert library_models(db) == [tiny_model.model_id, second.model_id]
    return {"db": db, "a": tiny_model.model_id, "b": second.model_id, "siglip": siglip, "bordered": bordered}


def invoke(*args: str) -> str:
    result = CliRunner().invoke(cli, list(args))
    assert result.exit_code == 0, result.output
    return result.stdout


def chip_ids(index: ChipIndex) -> list[str]:
    assert index.table is not None
    return index.table.to_arrow()["chip_id"].to_pylist()


def refused(capsys: pytest.CaptureFixture, *args: str) -> str:
    """The message of a command that exits 1."""
    with pytest.raises(SystemExit) as exit_info:
        main(list(args))
    assert exit_info.value.code == 1
    return capsys.readouterr().err


def test_label_reads_the_given_models_table(
    library: dict, tiny_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    db = ["--db", str(library["db"])]
    typed = ["label", *db, "--classes", "forest, water", "--backend", "torch", "--format", "json"]
    first = json.loads(invoke(*typed, "--model", str(tiny_checkpoint)))
    second = json.loads(invoke(*typed, "--model", str(library["siglip"])))
    assert (first["model_id"], first["chips"]) == (library["a"], 24)
    assert (second["model_id"], second["chips"]) == (library["b"], 16)  # before: refused by the chips table

    ids = chip_ids(index_for_model(library["db"], library["b"]))
    invoke("detector", "save", "fields", "fields", "--positive", ids[0], "--negative", ids[-1], *db,
           "--model", str(library["siglip"]), "--backend", "torch")
    # detectors alone: the detector's model's table, or --model as a model id the library holds
    alone = json.loads(invoke("label", *db, "--detector", "fields", "--format", "json"))
    assert (alone["model_id"], alone["chips"]) == (library["b"], 16)
    assert json.loads(invoke("label", *db, "--detector", "fields", "--model", library["b"], "--format", "json"))[
        "chips"
    ] == 16
    message = refused(capsys, "label", *db, "--detector", "fields", "--model", library["a"])
    assert f"detector 'fields' was made with model {library['b']!r}" in message
    assert f"holds vectors of model {library['a']!r}" in message
    invoke("detector", "delete", "fields", *db)


def test_detector_apply_reads_its_models_table_and_refuses_the_others(
    library: dict, tiny_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    db = ["--db", str(library["db"])]
    first, second = ChipIndex(library["db"]), index_for_model(library["db"], library["b"])
    ids = chip_ids(first)
    invoke("detector", "save", "roofs", "roofs", "--positive", ids[0], "--negative", ids[-1], *db,
           "--model", str(tiny_checkpoint), "--backend", "torch")
    ids = chip_ids(second)
    invoke("detector", "save", "fields", "fields", "--positive", ids[0], "--negative", ids[-1], *db,
           "--model", str(library["siglip"]), "--backend", "torch")
    listed = {d["name"]: d["model_id"] for d in json.loads(invoke("detector", "list", *db, "--format", "json"))}
    assert listed == {"roofs": library["a"], "fields": library["b"]}

    apply = ["detector", "apply", *db, "--threshold", "0.01", "--format", "json"]
    roofs = json.loads(invoke(*apply[:2], "roofs", *apply[2:]))
    fields = json.loads(invoke(*apply[:2], "fields", *apply[2:]))
    expected = apply_detector(second, get_detector(second, "fields"), threshold=0.01)
    assert expected and [d["chip_id"] for d in fields] == [d.hit.chip_id for d in expected]
    # B's table holds the bordered scene only; A's detections come from both of A's scenes
    assert {d["scene_path"] for d in fields} == {str(library["bordered"])}
    assert len({d["scene_path"] for d in roofs}) == 2
    # --model as what it was ingested with (loaded for its id) or as the id
    by_path = json.loads(invoke(*apply[:2], "fields", *apply[2:], "--model", str(library["siglip"])))
    by_id = json.loads(invoke(*apply[:2], "fields", *apply[2:], "--model", library["b"]))
    assert by_path == by_id == fields

    message = refused(capsys, *apply[:2], "roofs", *db, "--model", library["b"])
    assert f"detector 'roofs' was made with model {library['a']!r}" in message
    assert f"holds vectors of model {library['b']!r}" in message
    for name in ("roofs", "fields"):
        invoke("detector", "delete", name, *db)


def test_prune_empty_prunes_the_given_models_table(library: dict, tmp_path: Path) -> None:
    db = tmp_path / "db"
    shutil.copytree(library["db"], db)
    first, second = ChipIndex(db), index_for_model(db, library["b"])

    dry = invoke("prune-empty", "--db", str(db), "--model", library["b"], "--dry-run")
    assert "bordered.tif: 8 of 16 chips empty" in dry and "8 empty chips in 1 scenes" in dry
    assert "1 scenes" in invoke("prune-empty", "--db", str(db), "--model", str(library["siglip"]))
    assert (first.count_rows(), second.count_rows()) == (24, 8)  # A's chips untouched
    assert "8 empty chips in 2 scenes, 8 deleted" in invoke("prune-empty", "--db", str(db))  # the first table
    assert (first.count_rows(), second.count_rows()) == (16, 8)
