"""``bench encode`` runs end to end on a tiny architecture and writes its figures."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner

from pipelines.bench.ingest import TINY_CONFIG, bench_model
from pipelines.cli.main import cli
from pipelines.services.settings import ENV_BACKEND
from remoteclip.model_configs import register_config


def test_bench_encode_writes_results(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    register_config(
        "tiny-clip-bench", json.loads((tiny_checkpoint / "open_clip_config.json").read_text())["model_cfg"]
    )
    monkeypatch.chdir(tmp_path)
    args = "bench encode --arch tiny-clip-bench --batch-sizes 2,1,100000 --device cpu --max-seconds 5"
    args += " --max-iters 2"
    result = CliRunner().invoke(cli, args.split(), catch_exceptions=False)
    assert result.exit_code == 0, result.output
    # encode_cpu.json, or encode_cpu_1threads.json where OMP_NUM_THREADS is below the cores
    (written,) = (tmp_path / "benchmarks/results").glob("encode_cpu*.json")
    record = json.loads(written.read_text())
    assert record["device"] == "cpu" and record["precision"] == "fp32" and record["machine"]["cpu_count"]
    # PyTorch and ONNX Runtime side by side, batch by batch
    measured = [(row["arch"], row["backend"], row["batch_size"]) for row in record["results"]]
    assert measured == [
        ("tiny-clip-bench", backend, size) for size in (1, 2) for backend in ("torch", "onnx")
    ]
    assert all(row["images_per_s"] > 0 and 1 <= row["iterations"] <= 2 for row in record["results"])
    assert record["results"][0]["image_size"] == [64, 64]
    assert all(row["max_abs_diff"] < 1e-5 for row in record["results"] if row["backend"] == "onnx")
    assert [(row["batch_size"], row["speedup"] > 0) for row in record["comparison"]] == [(1, True), (2, True)]
    assert [row["backend"] for row in record["text"]] == ["torch", "onnx"]
    assert all(row["text_ms_p50"] > 0 for row in record["text"]) and record["peak_rss_mb"] > 0
    # one batch of 100,000 images would take far longer than --max-seconds: skipped, with its estimate
    assert [(row["backend"], row["batch_size"]) for row in record["skipped"]] == [
        ("torch", 100000), ("onnx", 100000)
    ]
    assert record["skipped"][0]["estimated_s"] > 5


def test_bench_encode_rejects_unknown_architecture() -> None:
    result = CliRunner().invoke(cli, ["bench", "encode", "--arch", "ViT-Q-1", "--device", "cpu"])
    assert result.exit_code == 2 and "unknown open_clip architectures ['ViT-Q-1']" in result.output



@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")  # rasterio's from_origin
def test_bench_ingest_times_an_architecture_with_seeded_random_weights(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # as bench encode times ViT-B-32 when its official weights cannot be had
    register_config("tiny-clip-ingest", TINY_CONFIG)
    monkeypatch.chdir(tmp_path)
    args = "bench ingest --sizes 256 --model tiny-clip-ingest --chip-size 32 --batch-size 8 --workers 0"
    result = CliRunner().invoke(cli, [*args.split(), "--small-scenes", "0"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "benchmarks/results/ingest_tiny-clip-ingest_cpu.json").read_text())
    assert record["model_id"].startswith("random-tiny-clip-ingest@")
    assert [(cog["backend"], cog["chips"]) for cog in record["sizes"]] == [("torch", 64), ("onnx", 64)]
    # seeded: the same weights again, so an ONNX export of them is found in the cache next time
    again = bench_model("tiny-clip-ingest", tmp_path / "again", "cpu", "torch")
    assert again.model_id == record["model_id"]

@pytest.mark.filterwarnings("ignore:Use `@` matmul:PendingDeprecationWarning")  # rasterio's from_origin
def test_bench_ingest_writes_ratios_for_a_cog_and_for_small_scenes(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = "bench ingest --sizes 256 --model tiny --chip-size 32 --batch-size 8 --workers 0 --small-scenes 12"
    result = CliRunner().invoke(cli, [*args.split(), "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "benchmarks/results/ingest_tiny_cpu.json").read_text())
    assert record["backends"] == ["torch", "onnx"]  # side by side in one run
    assert [(cog["backend"], cog["side_px"], cog["chips"]) for cog in record["sizes"]] == [
        ("torch", 256, 64), ("onnx", 256, 64)
    ]
    for cog in record["sizes"]:
        assert cog["ratio"] == pytest.approx(cog["ingest_chips_per_s"] / cog["model_only_chips_per_s"], abs=0.01)
        assert cog["peak_rss_mb"] >= cog["peak_main_mb"] > 0
    (compared,) = record["comparison"]
    assert compared["side_px"] == 256 and compared["ingest_speedup"] > 0
    assert [small["backend"] for small in record["small_scenes"]] == ["torch", "onnx"]
    for small in record["small_scenes"]:
        assert small["scenes"] == 12 and small["model_only_chips_per_s"] > 0
        # twelve commits (plus the table's creation) one by one; grouped, the whole folder in far fewer
        assert small["grouped_table_versions"] < 12 <= small["commit_per_scene_table_versions"]
        for name in ("grouped", "commit_per_scene"):
            ratio = small[f"{name}_chips_per_s"] / small["model_only_chips_per_s"]
            assert small[f"{name}_ratio"] == pytest.approx(ratio, abs=0.01)


def test_bench_app_times_the_search_page_on_a_synthetic_library(
    tiny_checkpoint: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["bench", "app", "--rows", "1000", "-k", "5", "--model", str(tiny_checkpoint), "--format", "json"]
    backend = os.environ.get(ENV_BACKEND)
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert os.environ.get(ENV_BACKEND) == backend  # each backend's run set it for the page, then put it back
    record = json.loads((tmp_path / "benchmarks/results/app_1000.json").read_text())
    assert record["rows"] == 1000 and record["queries"] > 0
    assert [run["backend"] for run in record["runs"]] == ["torch", "onnx"]  # the page with each, side by side
    for run in record["runs"]:
        assert 0 < run["page_s_p50"] <= run["page_s_p90"] <= run["page_s_max"]
        assert run["meets_target"] == (run["page_s_p50"] <= record["target_s"])
        assert 0 < run["refine_page_s_p50"] <= run["refine_page_s_p90"]  # a refine round through the page
        assert run["encode_ms_p50"] > 0 and run["search_ms_p50"] > 0


def test_bench_count_times_the_locator_on_a_large_image(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    args = ["bench", "count", "--runs", "1", "--workdir", str(tmp_path), "--format", "json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "benchmarks/results/count_cpu.json").read_text())
    assert record["size_px"] == [2560, 2560] and record["image"].endswith(".jpg")  # a held-out Airbus airport
    assert record["found"] > 0 and record["seconds_p50"] == record["seconds"][0] > 0


def test_bench_change_times_joplin_and_draws_its_top_cells(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, shared_data: Path
) -> None:
    monkeypatch.chdir(tmp_path)
    figure = tmp_path / "change.png"
    args = ["bench", "change", "--runs", "1", "--figure", str(figure), "--format", "json"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    record = json.loads((tmp_path / "benchmarks/results/change_cpu.json").read_text())
    assert record["scenes"] == [4, 6] and record["grid"]["crs"] == "EPSG:26915"
    assert record["cells_compared"] > 40 and record["seconds_p50"] == record["seconds"][0] > 0
    assert [cell["rank"] for cell in record["top_cells"]] == list(range(1, 9))
    assert figure.stat().st_size > 10_000
