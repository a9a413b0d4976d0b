"""pipelines.ingest.plan: paths to raster files, and which scenes an ingest still has to do."""

from __future__ import annotations

import json
import shutil
from collections import Counter
from pathlib import Path

from pipelines.ingest.plan import IngestSummary, expand_paths, expand_sources, plan_scenes
from tiles.chips import SkipReason
from tiles.grid import ChipSpec
from tiles.index.chip_index import ChipIndex
from tiles.index.schema import scene_id_for

RASTERS = Path(__file__).resolve().parents[2] / "data" / "rasters"
SPEC = ChipSpec(chip_px=16)


def test_expand_paths_takes_files_folders_and_globs(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    for name in ("a.tif", "sub/b.TIF", "sub/c.png", "sub/notes.txt"):
        (tmp_path / name).write_bytes(b"x")
    files, missing = expand_paths([tmp_path / "sub", str(tmp_path / "*.tif"), tmp_path / "sub/notes.txt",
                                   tmp_path / "a.tif", tmp_path / "nope.tif", str(tmp_path / "*.jp2")])
    assert [f.relative_to(tmp_path).as_posix() for f in files] == ["sub/b.TIF", "sub/c.png", "a.tif", "sub/notes.txt"]
    assert [(Path(p).name, reason) for p, reason in missing] == [("nope.tif", "no such file or folder"),
                                                                  ("*.jp2", "no raster files found there")]


def test_expand_sources_keeps_urls_and_refuses_globs_that_cannot_be_listed(tmp_path: Path) -> None:
    (tmp_path / "a.tif").write_bytes(b"x")
    signed = "https://host/scenes/b.tif?X-Amz-Signature=abc"  # a '?' of an http(s) URL starts its query
    sources, missing = expand_sources([signed, tmp_path / "a.tif", "https://host/scenes/*.tif", "s3://buck*/c.tif",
                                       "gs://bucket/d.tif", signed])
    assert sources == [signed, tmp_path / "a.tif", "gs://bucket/d.tif"]
    assert missing == [
        ("https://host/scenes/*.tif", "an HTTP server cannot be listed, so its URLs cannot be globs; name each file"),
        ("s3://buck*/c.tif", "wildcards match object names, not buckets"),
    ]


def test_plan_skips_scenes_logged_with_the_same_settings_and_model(tmp_path: Path) -> None:
    files = [shutil.copy(RASTERS / name, tmp_path / name) for name in ("rgb_4326.tif", "plain.png")]
    files = [Path(f) for f in files]
    index = ChipIndex(tmp_path / "db")
    first = plan_scenes(files, index, "model-a", SPEC, 128)
    assert [(job.number, job.path, job.scene_id) for job in first.jobs] == [
        (i, path, scene_id_for(path)) for i, path in enumerate(files)
    ]
    assert first.unchanged == 0 and [stamp.scene_path for stamp in first.stamps] == [str(f) for f in files]
    first.log.mark_done([(first.stamps[0], first.jobs[0].scene_id, 0)])  # a scene of no chips, finished

    again = plan_scenes(files, index, "model-a", SPEC, 128)
    assert [job.path for job in again.jobs] == [files[1]] and again.unchanged == 1
    assert again.jobs[0].number == 0  # numbered among the jobs, not the files
    assert len(plan_scenes(files, index, "model-a", ChipSpec(chip_px=32), 128).jobs) == 2  # other settings
    assert len(plan_scenes(files, index, "model-b", SPEC, 128).jobs) == 2  # another model


def test_summary_to_dict() -> None:
    summary = IngestSummary(scenes=2, chips=30, failed=[("x.tif", "bad")], duplicates=[("b.tif", "a.tif")],
                            seconds=1.5)
    assert summary.to_dict() == {
        "scenes": 2, "chips": 30, "skipped": 0, "skipped_by": {}, "unchanged": 0,
        "duplicates": [{"path": "b.tif", "same_as": "a.tif"}],
        "failed": [{"path": "x.tif", "reason": "bad"}], "ann_index": "none", "seconds": 1.5, "chips_per_s": 20.0,
    }
    assert summary.skipped_text() == "0 skipped as empty"


def test_summary_counts_empty_windows_by_reason() -> None:
    summary = IngestSummary()
    summary.add_skipped(Counter({SkipReason.FILL: 9, SkipReason.NODATA: 2}))
    summary.add_skipped({"fill": 3, "flat": 1})
    assert summary.skipped == 15
    assert summary.to_dict()["skipped_by"] == {"fill": 12, "flat": 1, "nodata": 2}
    assert json.loads(json.dumps(summary.to_dict()))["skipped_by"] == {"fill": 12, "flat": 1, "nodata": 2}
    assert summary.skipped_text() == "15 skipped as empty: 12 black/white fill, 1 flat, 2 nodata"
