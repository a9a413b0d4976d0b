"""``evaluate calibration`` on small class folders with the tiny model: what it fits and what it reports."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from click.testing import CliRunner
from PIL import Image

from pipelines.cli.main import cli
from pipelines.evaluation.calibration import evaluate_calibration
from pipelines.evaluation.readers import read_classification
from pipelines.evaluation.runner import ImageEmbedder
from remoteclip.calibration import load_calibration


def class_folders(root: Path, classes: dict[str, int], per_class: int = 4) -> Path:
    """One folder per class of flat-coloured JPEGs with noise (each class its own brightness)."""
    rng = np.random.default_rng(len(classes))
    for name, level in classes.items():
        (root / name).mkdir(parents=True)
        for i in range(per_class):
            pixels = np.clip(level + rng.normal(0, 20, (64, 64, 3)), 0, 255).astype(np.uint8)
            Image.fromarray(pixels).save(root / name / f"{name}{i}.jpg")
    return root


def test_calibration_fits_cut_offs_and_temperature(tmp_path: Path, tiny_model: object) -> None:
    sets = [
        read_classification(class_folders(tmp_path / "a", {"forest": 40, "beach": 200})),
        read_classification(class_folders(tmp_path / "b", {"harbor": 90, "desert": 160, "river": 20})),
    ]
    calibration, report = evaluate_calibration(tiny_model, sets, ImageEmbedder(tiny_model))
    assert calibration.fitted and calibration.model_id == tiny_model.model_id
    assert (calibration.weak_z, calibration.strong_z, calibration.temperature) == (
        report["weak_z"],
        report["strong_z"],
        report["temperature"],
    )
    assert calibration.weak_z <= calibration.strong_z
    assert report["fitted_on"] == ["a every image (8 images)", "b every image (12 images)"]
    for name in ("a", "b"):
        assert 0.0 <= report[f"{name}_ece_after"] <= 1.0
        assert (
            report[f"{name}_nll_after"] <= report[f"{name}_nll_before"] + 0.05
        )  # pooled fit, near each best
    assert 0.0 <= report["none_when_class_absent"] <= 1.0 and len(report["nonsense_best_z"]) == 12


def test_the_command_writes_what_the_app_loads(
    tmp_path: Path, tiny_checkpoint: Path, tiny_model: object
) -> None:
    root = tmp_path / "data"
    class_folders(root / "rsscn7", {"aGrass": 60, "bField": 180}, per_class=10)
    ucm = root / "ucm-captions" / "images"
    ucm.mkdir(parents=True)
    for image_id in [*range(1, 11), *range(101, 111)]:  # the first two UC Merced classes, by image id
        Image.fromarray(np.full((64, 64, 3), 40 if image_id < 100 else 200, np.uint8)).save(
            ucm / f"{image_id}.jpg"
        )
    out = tmp_path / "cal.json"
    result = CliRunner().invoke(
        cli,
        [
            "evaluate",
            "calibration",
            "--model",
            str(tiny_checkpoint),
            "--data-root",
            str(root),
            "--write",
            str(out),
            "--format",
            "json",
        ],
    )
    assert result.exit_code == 0, result.output
    assert json.loads(result.output[result.output.index("{") :])["model"] == tiny_model.model_id
    assert load_calibration(tiny_model, out).fitted
