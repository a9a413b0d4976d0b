"""``ingest --engine ray`` on a local Ray instance: the same rows as the local engine, failures, resume, redo, a
second model's vectors in a table of their own."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipelines.ingest.local import ingest_paths
from pipelines.ingest.ray_executor import ray_ingest_paths
from remoteclip.factory import load_model
from tests.index_rows import assert_same_rows
from tests.remoteclip.zoo_checkpoints import write_siglip
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex, index_for_model, library_models, model_table_name
from tiles.index.schema import DATA_STORAGE_VERSION

pytestmark = pytest.mark.slow

RASTERS = Path(__file__).resolve().parents[2] / "data" / "rasters"
SPEC = ChipSpec(chip_px=16, levels=(1, 2))
SCENES = ["rgb_4326.tif", "pan_uint16_32616.tif", "nodata_32618.tif", "plain.png", "corrupt.tif"]


@pytest.fixture(scope="module")
def local_ray():
    """One local Ray instance for the module (ray_ingest_paths joins it instead of starting its own)."""
    import ray

    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False)
    yield ray
    ray.shutdown()


@pytest.mark.parametrize("target", ["folder", "s3"])
def test_ray_engine_writes_the_local_engines_rows(
    tmp_path: Path, tiny_model, tiny_checkpoint: Path, local_ray, target: str, request: pytest.FixtureRequest
) -> None:
    paths = [RASTERS / name for name in SCENES]
    local = ChipIndex(tmp_path / "local")
    expected = ingest_paths(paths, local, tiny_model, SPEC, workers=0, progress=False)
    if target == "s3":  # a table in an object store, written by the Ray workers over S3
        on_ray = ChipIndex("s3://chips/ray-library", storage_options=request.getfixturevalue("s3_server"))
    else:
        on_ray = ChipIndex(tmp_path / "ray")
    failures: list[tuple[str, str]] = []
    summary = ray_ingest_paths(
        paths,
        on_ray,
        tiny_model,
        str(tiny_checkpoint),
        spec=SPEC,
        batch_size=8,
        on_failure=lambda path, reason: failures.append((path, reason)),
    )

    assert (summary.scenes, summary.chips) == (expected.scenes, expected.chips) == (4, expected.chips)
    assert (summary.skipped, summary.skipped_by) == (expected.skipped, expected.skipped_by)  # nodata_32618
    assert summary.skipped_by["nodata"] > 0
    assert [Path(path).name for path, _ in failures] == ["corrupt.tif"] and "cannot read" in failures[0][1]
    assert_same_rows(on_ray, local, atol=1e-5)
    assert on_ray.table.to_lance().data_storage_version == DATA_STORAGE_VERSION

    # a rerun finds every scene done and reads nothing; the failed file is tried (and fails) again
    again = ray_ingest_paths(paths, on_ray, tiny_model, str(tiny_checkpoint), spec=SPEC)
    assert (again.unchanged, again.scenes, len(again.failed)) == (4, 0, 1)
    assert on_ray.count_rows() == expected.chips

    # a scene redone with other settings: its old chips go, the new ones are appended to the existing table
    redo, other_spec = [RASTERS / "rgb_4326.tif"], ChipSpec(chip_px=16, levels=(1,))
    ingest_paths(redo, local, tiny_model, other_spec, workers=0, progress=False)
    redone = ray_ingest_paths(redo, on_ray, tiny_model, str(tiny_checkpoint), spec=other_spec)
    assert (redone.scenes, redone.unchanged, redone.failed) == (1, 0, [])
    assert_same_rows(on_ray, local, atol=1e-5)


def test_ray_engine_writes_a_second_models_vectors_into_its_own_table(
    tmp_path: Path, tiny_model, local_ray
) -> None:
    paths, siglip = [RASTERS / "rgb_4326.tif"], tmp_path / "tiny-siglip"
    write_siglip(siglip)
    second = load_model(siglip, backend="torch")
    first = ChipIndex(tmp_path / "db")
    ingest_paths(paths, first, tiny_model, SPEC, workers=0, progress=False)
    local = ChipIndex(tmp_path / "local")
    expected = ingest_paths(paths, local, second, SPEC, workers=0, progress=False)

    own = index_for_model(tmp_path / "db", second.model_id)
    summary = ray_ingest_paths(paths, own, second, str(siglip), spec=SPEC, batch_size=8)
    assert (summary.scenes, summary.chips) == (1, expected.chips)
    assert own.table_name == model_table_name(second.model_id)
    assert library_models(tmp_path / "db") == [tiny_model.model_id, second.model_id]
    assert_same_rows(own, local, atol=1e-5)
    assert first.count_rows() == expected.chips and first.model_id == tiny_model.model_id
    # its own finished-scenes log: a rerun reads nothing
    assert ray_ingest_paths(paths, own, second, str(siglip), spec=SPEC).unchanged == 1
