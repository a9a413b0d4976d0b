"""The evaluation report: tables from known results, real PNG plots, and ``evaluate all`` end to end."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from PIL import Image

from pipelines.cli.main import cli
from pipelines.evaluation.report import write_report
from pipelines.evaluation.runner import DEFAULT_SUITE


def _classification(task: str, dataset: str, pairs: list[tuple[str, str]], **extra: Any) -> dict[str, Any]:
    rows = [{"path": f"{i}.jpg", "label": a, "pred": b, "score": 0.5} for i, (a, b) in enumerate(pairs)]
    top1 = float(np.mean([a == b for a, b in pairs]))
    return {
        "task": task,
        "model": "demo@123",
        "dataset": dataset,
        "n": len(rows),
        "metrics": {"top1": top1, "mean_per_class": top1, **extra},
        "predictions": rows,
    }


def _known_results() -> list[dict[str, Any]]:
    pairs = [("forest", "forest"), ("forest", "grass"), ("grass", "grass"), ("river", "river")]
    curve = {str(s): {"mean": 0.1 * i, "std": 0.01} for i, s in enumerate((1, 2, 4, 8, 16, 32), start=1)}
    counting = {f"top{k}": k / 10 for k in range(1, 11)} | {
        "n_chips": 12,
        "area_mae": 1.5,
        "area_rmse": 2.0,
        "area_relative_error": 0.5,
        "object": "boat",
    }
    return [
        _classification("zero-shot", "scenes", pairs, templates=["a satellite photo of {}."]),
        _classification("linear-probe", "scenes", pairs, C=10.0, n_train=40, val_top1=0.9),
        _classification("few-shot", "scenes", pairs, curve=curve, seeds=[0, 1]),
        {
            "task": "retrieval",
            "model": "demo@123",
            "dataset": "captions",
            "n": 3,
            "predictions": [],
            "metrics": {
                "i2t_R@1": 10.0,
                "i2t_R@5": 20.0,
                "i2t_R@10": 30.0,
                "t2i_R@1": 40.0,
                "t2i_R@5": 50.0,
                "t2i_R@10": 60.0,
                "mR": 35.0,
                "n_captions": 15,
            },
        },
        {
            "task": "counting",
            "model": "demo@123",
            "dataset": "harbour",
            "n": 2,
            "metrics": counting,
            "predictions": [
                {"path": "a.jpg", "true": 3, "pred": 4, "chips": []},
                {"path": "b.jpg", "true": 5, "pred": 3, "chips": []},
            ],
        },
    ]


def test_report_tables_and_plots(tmp_path: Path) -> None:
    results = _known_results()
    readme = write_report(results, tmp_path, "remoteclip-explorer evaluate all --out-dir x")
    text = readme.read_text()
    assert "`demo@123`" in text and "remoteclip-explorer evaluate all --out-dir x" in text
    assert "| scenes | zero-shot | 4 | 75.00 |" in text
    assert "C = 10.0 (chosen on validation), 40 training images" in text
    assert "| scenes | 10.0 ± 1.0 | 20.0 ± 1.0 |" in text  # few-shot means and spreads in %
    assert "| captions | 3 | 15 | 10.00 | 20.00 | 30.00 | 40.00 | 50.00 | 60.00 | **35.00** |" in text
    assert "| harbour | boat | 2 | whole image | 12 | 10.00 | 30.00 | 50.00 | 100.00 | 1.50 | 8 |" in text
    assert "- **scenes**: user data" in text
    assert "62.41" in text and "56.36" in text and "not directly comparable" in text
    assert "75.00 (scenes, 4 images)" in text
    pngs = sorted(p.name for p in tmp_path.glob("*.png"))
    assert pngs == [
        "confusion_linear-probe_scenes.png",
        "confusion_zero-shot_scenes.png",
        "counting_topk.png",
        "few_shot.png",
        "retrieval.png",
    ]
    for name in pngs:
        assert f"]({name})" in text
        with Image.open(tmp_path / name) as im:
            assert im.format == "PNG" and im.width > 300 and im.height > 200
            # not a blank canvas: a plot has many distinct colours
            assert len(np.unique(np.asarray(im.convert("RGB")).reshape(-1, 3), axis=0)) > 20
    assert json.loads((tmp_path / "results.json").read_text()) == results


def _mini_shared_data(root: Path) -> Path:
    """The layout of ../shared/data in miniature: every folder the default suite reads."""
    rng = np.random.default_rng(0)

    def image(path: Path, size: int = 48) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        Image.fromarray(rng.integers(0, 255, (size, size, 3), dtype=np.uint8)).save(path)

    for folder in ("aGrass", "bField"):
        for i in range(5):
            image(root / "rsscn7" / folder / f"{folder[0]}{i:03d}.jpg")
    ids = [*range(1, 6), *range(101, 106)]  # classes agricultural and airplane
    for i in ids:
        image(root / "ucm-captions" / "images" / f"{i}.jpg")
    (root / "captions" / "ucm").mkdir(parents=True)
    (root / "captions" / "ucm" / "train_filename.txt").write_text("".join(f"{i}.tif\n" for i in ids))
    (root / "captions" / "ucm" / "train_caps.txt").write_text(
        "".join(f"caption {j} of {i} .\n" for i in ids for j in range(5))
    )
    image(root / "airbus-aircraft" / "train" / "t.jpg", 64)
    image(root / "airbus-aircraft" / "valid" / "v.jpg", 1024)
    (root / "airbus-aircraft" / "annotations.csv").write_text(
        'id,image_id,geometry,class\n1,v.jpg,"[(10, 10), (40, 10), (40, 40), (10, 40), (10, 10)]",Airplane\n'
        '2,v.jpg,"[(600, 600), (640, 600), (640, 640), (600, 640), (600, 600)]",Truncated_airplane\n'
    )
    for i in range(5):
        image(root / "ships-google-earth" / "images" / f"boat{i}.jpg")
        (root / "ships-google-earth" / "annotations").mkdir(parents=True, exist_ok=True)
        (root / "ships-google-earth" / "annotations" / f"boat{i}.xml").write_text(
            f"<annotation><filename>boat{i}.jpg</filename><object><name>boat</name><bndbox><xmin>1</xmin>"
            "<ymin>1</ymin><xmax>9</xmax><ymax>9</ymax></bndbox></object></annotation>"
        )
    image(root / "dota" / "dota_devkit" / "images" / "P1.png", 320)
    (root / "dota" / "dota_devkit" / "labelTxt").mkdir(parents=True)
    (root / "dota" / "dota_devkit" / "labelTxt" / "P1.txt").write_text(
        "imagesource:GoogleEarth\ngsd:0.25\n"
        + "".join(f"{x} 5 {x + 8} 5 {x + 8} 13 {x} 13 ship 0\n" for x in (5, 30, 200))
    )
    image(root / "dota" / "dota_devkit" / "images" / "P2.png", 320)
    (root / "dota" / "dota_devkit" / "labelTxt" / "P2.txt").write_text(
        "imagesource:GoogleEarth\ngsd:0.25\n"
        + "".join(f"{x} 50 {x + 20} 50 {x + 20} 60 {x} 60 large-vehicle 0\n" for x in (10, 60))
    )
    return root


@pytest.mark.slow
def test_evaluate_all_end_to_end(tmp_path: Path, tiny_checkpoint: Path) -> None:
    data = _mini_shared_data(tmp_path / "data")
    out = tmp_path / "report"
    args = [
        "evaluate",
        "all",
        "--model",
        str(tiny_checkpoint),
        "--data-root",
        str(data),
        "--out-dir",
        str(out),
    ]
    run = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert run.exit_code == 0, run.output
    results = json.loads((out / "results.json").read_text())
    assert [(r["task"], r["dataset"]) for r in results] == [
        (item.task, Path(item.data).name) for item in DEFAULT_SUITE if item.root == "data"
    ]
    for r in results:
        assert set(r) == {"task", "model", "dataset", "n", "metrics", "predictions"}
        assert r["n"] == len(r["predictions"]) > 0
    counts = {
        (r["dataset"], r["metrics"]["object"]): [(p["true"], Path(p["path"]).name) for p in r["predictions"]]
        for r in results
        if r["task"] == "counting"
    }
    assert counts["airbus-aircraft", "airplane"] == [(2, "v.jpg")]  # valid/ only, truncated planes count too
    assert counts["dota_devkit", "ship"] == [(3, "P1.png")]
    assert counts["dota_devkit", "large vehicle"] == [(2, "P2.png")]
    assert len(counts["ships-google-earth", "boat"]) == 1  # the held-out fifth
    retrieval = next(r for r in results if r["task"] == "retrieval")
    assert retrieval["n"] == 2 and retrieval["metrics"]["n_captions"] == 10
    assert sorted(p.name for p in out.glob("*.png")) == [
        "confusion_linear-probe_rsscn7.png",
        "confusion_linear-probe_ucm-captions.png",
        "confusion_zero-shot_rsscn7.png",
        "confusion_zero-shot_ucm-captions.png",
        "counting_topk.png",
        "few_shot.png",
        "retrieval.png",
    ]
    assert "| rsscn7 | zero-shot | 2 |" in (out / "README.md").read_text()
    again = CliRunner().invoke(cli, args)
    assert again.exit_code != 0 and "--overwrite" in again.output


def test_evaluate_all_checks_data_before_loading_a_model(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from pipelines.cli.main import main

    (tmp_path / "data").mkdir()
    with pytest.raises(SystemExit) as exit_info:
        main(
            [
                "evaluate",
                "all",
                "--model",
                "no-such-model",
                "--data-root",
                str(tmp_path / "data"),
                "--out-dir",
                str(tmp_path / "out"),
            ]
        )
    assert exit_info.value.code == 1
    err = capsys.readouterr().err
    assert "rsscn7" in err and "no-such-model" not in err  # the data is checked first
    assert not (tmp_path / "out").exists()
