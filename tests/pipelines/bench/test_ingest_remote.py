"""``bench ingest --remote``: one COG from disk and over a real HTTP server on 127.0.0.1, whole and for an AOI."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.cli.main import cli


@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")  # rasterio's from_origin
def test_bench_ingest_remote_writes_bytes_fetched_and_chips_per_s(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = "bench ingest --remote --sizes 2048 --model tiny --chip-size 128 --batch-size 16 --backend torch"
    result = CliRunner().invoke(cli, [*args.split(), "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "benchmarks/results/ingest_remote_tiny_cpu.json").read_text())
    assert record["local"]["chips"] == record["http"]["chips"] == (2048 // 128) ** 2
    assert 0 < record["http_aoi"]["chips"] < record["http"]["chips"] // 5
    # the whole scene fetches (about) the file once; the tenth of it, a small part
    assert 0.5 < record["http"]["bytes_per_file"] <= 1.0
    assert record["http_aoi"]["bytes_per_file"] == record["aoi_fetched_per_file"] < record["http"]["bytes_per_file"]
    assert record["http_aoi"]["requests"] < record["http"]["requests"]
