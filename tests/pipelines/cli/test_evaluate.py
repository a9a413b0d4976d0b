"""``remoteclip-explorer evaluate`` end to end: a tiny model over tiny datasets written to tmp_path."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pipelines.cli.main import cli
from pipelines.evaluation import metrics
from remoteclip.encode import encode_images, encode_texts

COLOURS = {"Dense_Forest": (20, 110, 30), "SeaLake": (20, 40, 160), "bare_soil": (170, 120, 70)}


def _image(path: Path, colour: tuple[int, int, int], seed: int, size: int = 48) -> Path:
    rng = np.random.default_rng(seed)
    pixels = np.clip(np.array(colour) + rng.normal(0, 12, (size, size, 3)), 0, 255).astype(np.uint8)
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(pixels).save(path)
    return path


@pytest.fixture(scope="module")
def class_folders(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("scenes") / "scenes"
    for c, (name, colour) in enumerate(COLOURS.items()):
        for i in range(10):
            _image(root / name / f"{name}_{i}.png", colour, seed=100 * c + i)
    return root


def _run(args: list[str]) -> dict[str, Any]:
    result = CliRunner().invoke(cli, ["evaluate", *args, "--format", "json"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def _check_classification(result: dict[str, Any], task: str, n: int) -> None:
    assert set(result) == {"task", "model", "dataset", "n", "metrics", "predictions"}
    assert result["task"] == task and result["dataset"] == "scenes" and result["n"] == n
    assert 0.0 <= result["metrics"]["top1"] <= 1.0
    assert len(result["predictions"]) == n
    for row in result["predictions"]:
        assert set(row) == {"path", "label", "pred", "score"}
        assert row["label"] in ("dense forest", "sea lake", "bare soil") and 0.0 <= row["score"] <= 1.0
    hits = np.mean([row["label"] == row["pred"] for row in result["predictions"]])
    assert result["metrics"]["top1"] == pytest.approx(hits)


def test_zero_shot_json_and_out_file(class_folders: Path, tiny_checkpoint: Path, tmp_path: Path) -> None:
    out = tmp_path / "zs.json"
    result = _run(
        ["zero-shot", "--data", str(class_folders), "--model", str(tiny_checkpoint), "--out", str(out)]
    )
    _check_classification(result, "zero-shot", 30)  # a plain folder: zero-shot scores every image
    assert json.loads(out.read_text()) == result
    assert result["metrics"]["templates"] == ["a satellite photo of {}."]
    again = CliRunner().invoke(
        cli,
        [
            "evaluate",
            "zero-shot",
            "--data",
            str(class_folders),
            "--model",
            str(tiny_checkpoint),
            "--out",
            str(out),
        ],
    )
    assert again.exit_code != 0 and "--overwrite" in again.output


@pytest.mark.parametrize("task", ["linear-probe", "knn"])
def test_probes_separate_colour_classes(task: str, class_folders: Path, tiny_checkpoint: Path) -> None:
    result = _run([task, "--data", str(class_folders), "--model", str(tiny_checkpoint)])
    _check_classification(result, task, 6)  # 20 % of each class held out
    assert result["metrics"]["top1"] == 1.0  # solid colours are separable even for random features


def test_few_shot_curve(class_folders: Path, tiny_checkpoint: Path) -> None:
    result = _run(["few-shot", "--data", str(class_folders), "--model", str(tiny_checkpoint)])
    _check_classification(result, "few-shot", 6)
    curve = result["metrics"]["curve"]
    assert list(curve) == ["1", "2", "4", "8", "16", "32"]
    assert all(0 <= v["mean"] <= 1 and v["std"] >= 0 for v in curve.values())
    assert result["metrics"]["top1"] == curve["32"]["mean"]


def test_retrieval_csv_matches_direct_computation(
    tmp_path: Path, tiny_checkpoint: Path, tiny_model: Any
) -> None:
    colours = [*COLOURS.values(), (200, 200, 200), (10, 10, 10)]
    lines, paths, captions = ["filepath,caption"], [], []
    for i, colour in enumerate(colours):
        paths.append(_image(tmp_path / "img" / f"{i}.png", colour, seed=i))
        for caption in (f"a photo number {i}", f"another caption for {i}"):
            lines.append(f"img/{i}.png,{caption}")
            captions.append(caption)
    (tmp_path / "caps.csv").write_text("\n".join(lines) + "\n")
    result = _run(["retrieval", "--data", str(tmp_path / "caps.csv"), "--model", str(tiny_checkpoint)])
    assert set(result) == {"task", "model", "dataset", "n", "metrics", "predictions"}
    assert result["n"] == 5 and result["metrics"]["n_captions"] == 10
    images = encode_images(tiny_model, [Image.open(p).convert("RGB") for p in paths])
    expected = metrics.retrieval_recall(
        images, encode_texts(tiny_model, captions), np.repeat(np.arange(5), 2)
    )
    for key, value in expected.items():
        assert result["metrics"][key] == pytest.approx(value, abs=1e-6)
    assert 0 <= result["metrics"]["mR"] <= 100
    assert result["predictions"][0]["captions"] == [
        "a photo number 0",
        "another caption for 0",
    ]
    assert all(len(row["t2i_ranks"]) == 2 and 0 <= row["i2t_rank"] < 10 for row in result["predictions"])


def _voc(path: Path, image: str, boxes: list[tuple[int, int, int, int]]) -> None:
    objects = "".join(
        f"<object><name>boat</name><bndbox><xmin>{a}</xmin><ymin>{b}</ymin><xmax>{c}</xmax><ymax>{d}</ymax>"
        "</bndbox></object>"
        for a, b, c, d in boxes
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(f"<annotation><filename>{image}</filename>{objects}</annotation>")


def test_counting_voc_known_counts(tmp_path: Path, tiny_checkpoint: Path) -> None:
    truth = {"a": 1, "b": 3, "c": 12}  # image c is outside RemoteCount's 1..10: area count only
    for i, (name, n) in enumerate(truth.items()):
        _image(tmp_path / "images" / f"{name}.png", (30, 60, 120), seed=i, size=64)
        _voc(
            tmp_path / "annotations" / f"{name}.xml",
            f"{name}.png",
            [(2 + 5 * j, 2, 6 + 5 * j, 6) for j in range(n)],
        )
    result = _run(["counting", "--data", str(tmp_path), "--model", str(tiny_checkpoint)])
    assert set(result) == {"task", "model", "dataset", "n", "metrics", "predictions"}
    rows = {Path(r["path"]).stem: r for r in result["predictions"]}
    assert {k: r["true"] for k, r in rows.items()} == truth
    assert all(set(r) == {"path", "true", "pred", "chips"} and r["pred"] >= 0 for r in rows.values())
    m = result["metrics"]
    assert m["object"] == "boat" and m["n_chips"] == 2
    assert m["top10"] == 1.0  # ten captions: the true count is always among the top ten
    assert [m[f"top{k}"] for k in range(1, 11)] == sorted(m[f"top{k}"] for k in range(1, 11))
    assert m["area_mae"] == pytest.approx(np.mean([abs(r["true"] - r["pred"]) for r in rows.values()]))
    chipped = _run(["counting", "--data", str(tmp_path), "--model", str(tiny_checkpoint), "--chip-px", "32"])
    assert all(len(r["chips"]) == 4 for r in chipped["predictions"])
    assert {Path(r["path"]).stem: sum(c["true"] for c in r["chips"]) for r in chipped["predictions"]} == truth


def test_zero_shot_folder_named_like_shared_dataset_scores_every_image(
    tmp_path: Path, tiny_checkpoint: Path
) -> None:
    root = tmp_path / "rsscn7"  # named like ../shared/data/rsscn7: the name must not choose a split
    for c, (name, colour) in enumerate(zip(("aGrass", "bField", "cIndustry"), COLOURS.values(), strict=True)):
        for i in range(5):
            _image(root / name / f"{name[0]}{i:03d}.png", colour, seed=10 * c + i)
    result = _run(["zero-shot", "--data", str(root), "--model", str(tiny_checkpoint)])
    assert result["dataset"] == "rsscn7" and result["n"] == 15 and len(result["predictions"]) == 15
    assert {Path(row["path"]) for row in result["predictions"]} == set(root.glob("*/*.png"))


def test_split_option_on_shared_rsscn7(shared_data: Path, tiny_checkpoint: Path) -> None:
    from pipelines.datasets import splits

    args = ["--data", str(shared_data / "rsscn7"), "--split", "rsscn7", "--model", str(tiny_checkpoint)]
    result = _run(["zero-shot", *args])
    assert set(result) == {"task", "model", "dataset", "n", "metrics", "predictions"}
    held_out = splits.rsscn7(shared_data).test
    assert result["dataset"] == "rsscn7" and result["n"] == len(held_out) == 84
    assert [Path(row["path"]) for row in result["predictions"]] == list(held_out)
    knn = _run(["knn", *args])
    assert knn["n"] == 84 and knn["metrics"]["n_train"] == 336


def test_unknown_split_is_one_line_error(
    class_folders: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    from pipelines.cli.main import main

    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "zero-shot", "--data", str(class_folders), "--split", "nope"])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip() == (
        "Error: unknown classification split 'nope'; choose one of rsscn7, ucm-captions"
    )


@pytest.mark.parametrize(
    ("task", "names"),
    [("zero-shot", "rsscn7, ucm-captions"), ("retrieval", "ucm-captions"), ("counting", "airbus-aircraft")],
)
def test_help_documents_split(task: str, names: str) -> None:
    result = CliRunner().invoke(cli, ["evaluate", task, "--help"])
    assert result.exit_code == 0
    text = " ".join(result.output.split())
    assert "--split NAME" in text and names in text and "never chooses a split" in text


def test_bad_data_is_one_line_error(
    tmp_path: Path, tiny_checkpoint: Path, capsys: pytest.CaptureFixture
) -> None:
    from pipelines.cli.main import main

    (tmp_path / "empty").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(["evaluate", "knn", "--data", str(tmp_path / "empty"), "--model", str(tiny_checkpoint)])
    assert exit_info.value.code == 1
    assert capsys.readouterr().err.strip().startswith("Error:")


def test_evaluate_feedback_reports_precision_per_round(tmp_path: Path, tiny_checkpoint: Path) -> None:
    from tests.pipelines.evaluation.test_calibration import class_folders as write_class_folders

    data = write_class_folders(tmp_path / "scenes", {"forest": 40, "beach": 200, "harbor": 120}, per_class=12)
    out, plot = tmp_path / "feedback.json", tmp_path / "feedback.png"
    result = CliRunner().invoke(
        cli,
        ["evaluate", "feedback", "--data", str(data), "--model", str(tiny_checkpoint), "--out", str(out),
         "--plot", str(plot)],
    )
    assert result.exit_code == 0, result.output
    report = json.loads(out.read_text())
    assert [row["class"] for row in report["predictions"]] == ["beach", "forest", "harbor"]
    assert all(len(row["precision_at_20"]) == 4 for row in report["predictions"])  # rounds 0-3
    assert "precision_at_20_round_3" in report["metrics"] and "beach: " in result.output
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
