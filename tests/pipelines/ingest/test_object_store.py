"""Chip indexes in an object store: ``--db s3://...`` for ingest and search, over a real S3 endpoint."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner

from pipelines.cli.main import cli, main
from tests.index_rows import assert_same_rows
from tiles.index.chip_index import ChipIndex
from tiles.index.location import is_object_store_uri

RASTERS = Path(__file__).resolve().parents[2] / "data" / "rasters"
SCENES = ["rgb_4326.tif", "pan_uint16_32616.tif", "plain.png"]


def storage_flags(options: dict[str, str]) -> list[str]:
    """``--storage-option KEY=VALUE`` for each option."""
    return [arg for key, value in options.items() for arg in ("--storage-option", f"{key}={value}")]


def test_locations_that_name_an_object_store() -> None:
    assert [is_object_store_uri(x) for x in ("s3://b/lib", "gs://b", "az://c/lib", "S3://b")] == [True] * 4
    assert not any(is_object_store_uri(x) for x in ("data/library", "/abs/db", Path("rel"), "file:///tmp/db"))
    assert ChipIndex("s3://chips/library/").uri == "s3://chips/library"
    assert ChipIndex(Path("~/library")).uri == str(Path.home() / "library")


def test_cli_ingest_and_search_in_s3_match_a_local_folder(
    tmp_path: Path, tiny_checkpoint: Path, s3_server: dict[str, str]
) -> None:
    uri = "s3://chips/cli-library"
    paths = [str(RASTERS / name) for name in SCENES]
    common = ["--model", str(tiny_checkpoint), "--chip-size", "16", "--levels", "1,2", "--workers", "0"]
    common += ["--format", "json"]
    runner = CliRunner()
    local = runner.invoke(cli, ["ingest", *paths, "--db", str(tmp_path / "local"), *common])
    remote = runner.invoke(cli, ["ingest", *paths, "--db", uri, *storage_flags(s3_server), *common])
    assert local.exit_code == 0, local.output
    assert remote.exit_code == 0, remote.output
    assert json.loads(remote.stdout)["db"] == uri
    chips = json.loads(remote.stdout)["chips"]
    assert chips == json.loads(local.stdout)["chips"] > 0
    in_s3 = ChipIndex(uri, storage_options=s3_server)
    assert_same_rows(in_s3, ChipIndex(tmp_path / "local"), atol=1e-6)
    assert [scene.scene_path for scene in in_s3.scenes()] == sorted(str(Path(p).resolve()) for p in paths)

    # the finished-scenes log lives in the bucket too: a rerun reads nothing
    again = runner.invoke(cli, ["ingest", *paths, "--db", uri, *storage_flags(s3_server), *common])
    assert (json.loads(again.stdout)["unchanged"], json.loads(again.stdout)["chips"]) == (len(SCENES), 0)
    assert in_s3.count_rows() == chips

    search = ["search", "a harbour", "--model", str(tiny_checkpoint), "-k", "5", "--format", "json"]
    from_s3 = runner.invoke(cli, [*search, "--db", uri, *storage_flags(s3_server)])
    from_folder = runner.invoke(cli, [*search, "--db", str(tmp_path / "local")])
    assert from_s3.exit_code == 0, from_s3.output
    hits, expected = json.loads(from_s3.stdout), json.loads(from_folder.stdout)
    assert [h["chip_id"] for h in hits] == [h["chip_id"] for h in expected] and len(hits) == 5
    np.testing.assert_allclose([h["score"] for h in hits], [h["score"] for h in expected], atol=1e-6)


def test_object_store_options_are_checked(
    tmp_path: Path, s3_server: dict[str, str], capsys: pytest.CaptureFixture[str]
) -> None:
    runner = CliRunner()
    bad = runner.invoke(cli, ["search", "x", "--db", "s3://chips/x", "--storage-option", "aws_region"])
    assert bad.exit_code == 2 and "'aws_region' is not KEY=VALUE" in bad.output
    a_file = tmp_path / "library.txt"
    a_file.write_text("not a folder")
    not_folder = runner.invoke(cli, ["search", "x", "--db", str(a_file)])
    assert not_folder.exit_code == 2
    assert "is a file; give a folder or an object-store URI" in not_folder.output
    app = runner.invoke(cli, ["app", "--db", "s3://chips/library"])
    assert app.exit_code == 2 and "the app serves a library on local disk" in app.output

    for db, error in [
        ("s3://chips/nothing-here", "no chip index in s3://chips/nothing-here; run `remoteclip-explorer"),
        ("s3://no-such-bucket/lib", "cannot open the chip index at s3://no-such-bucket/lib: NoSuchBucket: "),
    ]:
        with pytest.raises(SystemExit) as exited:
            main(["search", "--like", "c1", "--db", db, *storage_flags(s3_server)])
        err = capsys.readouterr().err
        assert exited.value.code == 1 and err.startswith(f"Error: {error}") and err.count("\n") == 1
